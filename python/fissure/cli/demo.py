"""``fissure demo``: PatchCore end to end on a synthetic 12 MP surface."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..demo import run_demo
from ._common import add_overlay_format

__all__ = ["add_parser", "cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    if args.json:
        r = run_demo(args.out, width=args.width, height=args.height, n_defects=args.defects,
                     n_glints=args.glints, train_size=args.train_size, seed=args.seed,
                     num_threads=args.threads, progress=False,
                     overlay_format=args.overlay_format)
        print(json.dumps(r, indent=2))
        return 0
    print(f"fissure demo: PatchCore on a synthetic {args.width}x{args.height} surface, "
          "trained on defect-free samples only", flush=True)
    run_demo(args.out, width=args.width, height=args.height, n_defects=args.defects,
             n_glints=args.glints, train_size=args.train_size, seed=args.seed,
             num_threads=args.threads, progress=not args.quiet,
             log=lambda line: print("  " + line, flush=True), overlay_format=args.overlay_format)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="the built-in example: PatchCore finds planted defects on a 12 MP surface",
        description="Generates a 12 MP brushed-metal surface with planted scratches, cracks, "
                    "pits, stains and specular glints, fits PatchCore on defect-free samples, "
                    "predicts with glare masked and reports found defects, false alarms, time "
                    "and peak memory.")
    p.add_argument("--out", type=Path, default=Path("fissure-demo"),
                   help="folder for heatmap.jpg, report.json, surface.png, normal/ (the "
                        "defect-free samples), bank.safetensors (default: ./fissure-demo)")
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--defects", type=int, default=16, help="planted defects (default 16)")
    p.add_argument("--glints", type=int, default=8, help="specular glints (default 8)")
    p.add_argument("--train-size", type=int, default=1536,
                   help="side of each defect-free training sample (default 1536)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_overlay_format(p)
    p.set_defaults(func=cmd_demo)
