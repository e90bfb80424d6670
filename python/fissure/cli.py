"""The ``fissure`` command."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import info

    d = info()
    print(f"fissure {d['version']}")
    print(f"  simd path : {d['simd']} (cpu supports {d['cpu_simd']}; FISSURE_SIMD lowers it)")
    print(f"  threads   : {d['threads']} (num_threads=-1; FISSURE_NUM_THREADS overrides)")
    for name, ver in d["backends"].items():
        print(f"  {name:<10}: {ver if ver else 'not installed'}")
    print(f"  python    : {d['python']} on {d['platform']}")
    print(f"  compiler  : {d['compiler']}")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fissure",
        description="Find small defects in high-resolution images on cheap hardware.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("info", help="version, SIMD path, threads and installed backends")
    s.set_defaults(func=_cmd_info)
    try:
        from . import demo
    except ImportError:  # pragma: no cover - demo is part of the package
        demo = None  # type: ignore[assignment]
    if demo is not None:
        demo.add_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (ValueError, TypeError, OSError) as exc:
        print(f"fissure: error: {exc}", file=sys.stderr)
        return 2
