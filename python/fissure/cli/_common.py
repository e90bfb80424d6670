"""Helpers shared by the ``fissure`` commands: input images behind a progress bar, error
lines, exit statuses and output names.

Exit statuses, the same for every command (docs/detect.md, docs/anomaly_cli.md):

- 0: every input was processed;
- 1: some inputs could not be read (or failed in the model) and were skipped; the others
  were processed and written, and the run's summary lists the failures;
- 2: nothing was done and nothing written: an input matched no file (a mistyped path,
  glob or an empty folder), invalid options, an unusable model or bank;
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runs import is_runtime_error, one_line, read_error

__all__ = [
    "class_names",
    "error",
    "Images",
    "is_runtime_error",
    "no_inputs",
    "NoInputError",
    "one_line",
    "outputs_of_one_image",
]


class NoInputError(ValueError):
    """An input (file, folder or glob) that matched no image: the command does nothing and
    exits with 2, naming the input."""


def _unmatched(inputs: Sequence[str]) -> list[str]:
    """The inputs that match no image file: a path that does not exist, a glob matching
    nothing, a folder without images (each with the reason)."""
    from ..io import IMAGE_SUFFIXES

    bad = []
    for item in inputs:
        s = os.fspath(item)
        p = Path(s)
        if p.is_dir():
            if not any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir()):
                bad.append(f"{s} (a folder without images)")
        elif any(ch in s for ch in "*?["):
            if not glob.glob(s, recursive=True):
                bad.append(f"{s} (the pattern matched no file)")
        elif not p.exists():
            bad.append(f"{s} (no such file or folder)")
    return bad


class Images:
    """A command's input images (files, folders, globs) behind a progress bar. Iterating yields
    ``(number, path, image)`` with ``number`` counting every input from 1; a file that cannot
    be read is reported on stderr, counted in ``failed``, listed in ``skipped`` and skipped.
    An input that matches no file raises :class:`NoInputError` before anything is read."""

    def __init__(self, inputs: Sequence[str], desc: str, quiet: bool) -> None:
        from ..io import expand_inputs, max_image_pixels

        max_image_pixels()  # a malformed FISSURE_MAX_IMAGE_PIXELS: exit 2 before anything
        bad = _unmatched(inputs)
        if bad:
            raise NoInputError("no input images match " + "; ".join(bad)
                               + "; nothing was done")
        self.paths = list(expand_inputs(inputs))
        self.desc, self.quiet, self.failed = desc, quiet, 0
        self.skipped: list[dict[str, str]] = []
        self.bar: Any = None

    def __iter__(self) -> Iterator[tuple[int, Path, np.ndarray]]:
        from tqdm import tqdm

        from ..io import read_image

        self.bar = tqdm(self.paths, desc=self.desc, unit="img", disable=self.quiet)
        for number, path in enumerate(self.bar, start=1):
            try:
                image = read_image(path)
            except (OSError, ValueError, MemoryError) as exc:
                self.failed += 1
                msg = read_error(exc)
                self.skipped.append({"path": str(path), "error": msg})
                tqdm.write(f"fissure: skipped {path}: {msg}", file=sys.stderr)
                continue
            yield number, path, image

    def fail(self, path: Path, exc: BaseException) -> bool:
        """Records that processing ``path`` failed with ``exc`` and reports it, when ``exc`` is
        an error of the run itself (:func:`is_runtime_error`); returns False for anything else
        (a bug: the caller re-raises it with its traceback)."""
        if not is_runtime_error(exc):
            return False
        msg = f"{type(exc).__name__}: {one_line(exc)}"
        self.skipped.append({"path": str(path), "error": msg})
        write = self.bar.write if self.bar is not None else print
        write(f"fissure: skipped {path}: {msg}", file=sys.stderr)
        return True




def no_inputs() -> int:
    print("fissure: error: no input images found", file=sys.stderr)
    return 2


def class_names(spec: str | None) -> list[str] | None:
    if not spec:
        return None
    path = Path(spec)
    if path.is_file():
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return [n.strip() for n in spec.split(",")]


def error(message: str) -> int:
    print(f"fissure: error: {message}", file=sys.stderr)
    return 2


def add_runtime_args(parser: Any, *, quiet: bool = True) -> None:
    """``--backend``, ``--device``, ``--threads`` (and ``--quiet``): where a command runs its
    model, the same on every command."""
    parser.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, gpu, npu")
    parser.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_run_args(parser: Any) -> None:
    """How a folder run runs: ``--resume`` (skip what the run directory's manifest lists as
    done, retry what failed), ``--engine local|ray`` and Ray's placement options."""
    parser.add_argument("--resume", action="store_true",
                        help="go on with the run in --out: skip the inputs its manifest lists "
                             "as done (same path, size, mtime), retry those that failed")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: this process (default); ray: a pool of Ray actors "
                             "(pip install 'fissure[ray]'; docs/distributed.md)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--actors", type=int, default=None,
                        help="Ray actors, each holding one model (default: one per "
                             "--cpus-per-actor CPUs of the cluster)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0,
                        help="CPUs Ray reserves per actor (default 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0,
                        help="GPUs Ray reserves per actor, e.g. 0.5 for two actors per GPU "
                             "(default 0)")


def run_job(job: Any, inputs: "Images", args: Any, out: Path) -> int:
    """Runs ``job`` over ``inputs`` into the run directory ``out`` (:mod:`fissure.runs`)
    on the engine ``args.engine`` chose; prints the final line; returns the exit status:
    0, 1 when some inputs failed, 130 when interrupted
    (the manifest holds what was done: ``--resume`` goes on)."""
    from ..runs import RunMismatchError, run_folder

    try:
        if getattr(args, "engine", "local") == "ray":
            from ..distributed import run as run_ray

            job.close()  # each actor builds its own model
            report = run_ray(job, inputs.paths, out, resume=args.resume,
                             address=args.address, actors=args.actors,
                             num_cpus=args.cpus_per_actor, num_gpus=args.gpus_per_actor,
                             progress=not args.quiet)
        else:
            report = run_folder(job, inputs.paths, out, resume=args.resume,
                                progress=not args.quiet, desc=job.command.split()[-1])
    except RunMismatchError as exc:
        return error(str(exc))
    done = sum(r is not None and r["status"] == "ok" for r in report.records)
    if report.interrupted:
        print(f"fissure: interrupted: {done} of {len(report.records)} input(s) done, recorded "
              f"in {out / 'manifest.jsonl'}; rerun with --resume to go on", file=sys.stderr)
        return 130
    if report.summary is None:
        return error("nothing was done")
    failures = report.failed
    print(report.line + f", written to {out}"
          + (f"; {failures} failed (skipped)" if failures else ""))
    return 1 if failures else 0


def add_overlay_format(parser: Any) -> None:
    """``--overlay-format jpg|png``: how a command writes its overlay pictures."""
    parser.add_argument(
        "--overlay-format", choices=["jpg", "png"], default="jpg",
        help="overlay pictures as JPEG, quality 90 (about a seventh of the PNG's size on a "
             "12 MP photo), or as lossless PNG (default jpg)")


def write_overlay(out: Path, name: str, picture: np.ndarray, fmt: str) -> Path:
    """Writes an overlay picture as ``out/NAME.FMT`` (``--overlay-format``), atomically."""
    from ..io import write_image_atomic

    return write_image_atomic(out / f"{name}.{fmt}", picture)


@contextlib.contextmanager
def outputs_of_one_image() -> Iterator[None]:
    """Writes one image's output files as a unit: a Ctrl-C (SIGINT) arriving meanwhile is held
    until they are all written, then raised (the run stops with 130 and the image's outputs
    are complete; each file is atomic on its own). Writing takes milliseconds, so the run
    still stops within a second. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt
