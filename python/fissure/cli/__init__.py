"""The ``fissure`` command: ``fissure info | specular | detect | demo | anomaly fit/predict/update | change | inspect | bench | quantize``.

One module per command family; ``_common`` holds what they share (inputs behind a progress
bar, error lines, exit statuses, output names).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, Optional

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from . import anomaly, bench, change, demo, detect, inspect, quantize, slice_coco, specular

    p = argparse.ArgumentParser(
        prog="fissure",
        description="Find small defects in high-resolution images on cheap hardware.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    specular.add_info_parser(sub)
    specular.add_specular_parser(sub)
    detect.add_parser(sub)
    demo.add_parser(sub)
    anomaly.add_parser(sub)
    change.add_parser(sub)
    inspect.add_parser(sub)
    bench.add_parser(sub)
    slice_coco.add_parser(sub)
    quantize.add_parser(sub)
    return p


def _stdout_to_devnull() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush does
    not raise again (the recipe in Python's signal module documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is not a file (captured): nothing is left to flush into the pipe


def _run(argv: Optional[Sequence[str]]) -> int:
    from ..backends import BackendNotInstalledError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (ValueError, TypeError, OSError, BackendNotInstalledError) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        print(f"fissure: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # e.g. buffers for an --input-size too large for this machine
        print(f"fissure: error: out of memory ({' '.join(str(exc).split()) or 'MemoryError'}); "
              "nothing more was done", file=sys.stderr)
        return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one ``fissure`` command; returns its exit status (see ``_common``: 0 done, 1 some
    inputs skipped, 2 nothing done, 130 interrupted, 141 output pipe closed)."""
    errors = _printable(sys.stdout)
    errors_err = _printable(sys.stderr)
    previous_show = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        rc = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
        return rc
    except KeyboardInterrupt:
        print("\nfissure: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `fissure info | head -1`
        _stdout_to_devnull()
        return 141
    finally:
        warnings.showwarning = previous_show
        for stream, previous in ((sys.stdout, errors), (sys.stderr, errors_err)):
            if previous is not None:
                try:
                    stream.reconfigure(errors=previous)  # type: ignore[union-attr]
                except (AttributeError, ValueError, OSError):
                    pass


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Optional[str] = None) -> None:
    """Warnings during a command print as one line, ``fissure: warning: ...``."""
    try:
        print(f"fissure: warning: {message}", file=file or sys.stderr)
    except (OSError, ValueError):
        pass


def _printable(stream: Any) -> Optional[str]:
    """Lets ``stream`` (stdout, stderr) print any path: a file name that its encoding cannot
    write (undecodable bytes, PYTHONIOENCODING=ascii) comes out backslash-escaped instead of
    failing the run. Returns the previous error handler (None: left as it was)."""
    errors = getattr(stream, "errors", None)
    if errors in (None, "backslashreplace") or not hasattr(stream, "reconfigure"):
        return None
    try:
        stream.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError, OSError):
        return None
    return errors
