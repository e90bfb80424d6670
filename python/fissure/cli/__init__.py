"""The ``fissure`` command: ``fissure info | specular | detect | demo | anomaly fit/predict``.

One module per command family; ``_common`` holds what they share (inputs behind a progress
bar, error lines, exit statuses, output names).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from . import anomaly, demo, detect, specular

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
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (ValueError, TypeError, OSError) as exc:
        print(f"fissure: error: {exc}", file=sys.stderr)
        return 2
