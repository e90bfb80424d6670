"""The ``fissure`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import info

    d = info()
    print(f"fissure {d['version']}")
    print(f"  simd path : {d['simd']} (cpu supports {d['cpu_simd']}; FISSURE_SIMD lowers it)")
    print(f"  threads   : {d['threads']} (num_threads=-1; FISSURE_NUM_THREADS overrides)")
    for name, ver in d["backends"].items():
        print(f"  {name:<10}: {ver if ver else 'not installed'}")
    a = d["auto_backend"]
    if a["backend"]:
        print(f"  auto backend: {a['backend']} on {a['device']} ({a['reason']})")
    else:
        print(f"  auto backend: none ({a['reason']})")
    print(f"  python    : {d['python']} on {d['platform']}")
    print(f"  compiler  : {d['compiler']}")
    return 0


def _cmd_specular(args: argparse.Namespace) -> int:
    """Glare masks for images: a mask PNG, an overlay PNG and a JSON summary per image."""
    from .io import expand_inputs, read_image, write_image_atomic, write_json_atomic
    from .specular import draw_specular, specular_mask

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None

    out = Path(args.out)
    paths = list(expand_inputs(args.inputs))
    if not paths:
        print("fissure: error: no input images found", file=sys.stderr)
        return 2
    failed = 0
    it = tqdm(paths, desc="specular", unit="img", disable=args.quiet) if tqdm else paths
    summary = []
    for path in it:
        try:
            image = read_image(path)
        except (OSError, ValueError) as exc:
            failed += 1
            msg = f"fissure: skipped {path}: {exc}"
            if tqdm is not None:
                tqdm.write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr)
            continue
        mask = specular_mask(image, v_min=args.v_min, s_max=args.s_max, dilate=args.dilate,
                             num_threads=args.threads)
        stem = path.stem
        write_image_atomic(out / f"{stem}_specular_mask.png", mask.astype(np.uint8) * 255)
        write_image_atomic(out / f"{stem}_specular_overlay.png", draw_specular(image, mask))
        frac = float(mask.mean()) if mask.size else 0.0
        summary.append({"image": str(path), "height": image.shape[0], "width": image.shape[1],
                        "glare_pixels": int(mask.sum()), "glare_fraction": frac})
    write_json_atomic(out / "specular.json", {
        "v_min": args.v_min, "s_max": args.s_max, "dilate": args.dilate, "images": summary})
    print(f"fissure specular: {len(summary)} image(s) written to {out}"
          + (f", {failed} skipped (unreadable)" if failed else ""))
    return 1 if failed else 0


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fissure",
        description="Find small defects in high-resolution images on cheap hardware.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("info", help="version, SIMD path, threads and installed backends")
    s.set_defaults(func=_cmd_info)
    s = sub.add_parser("specular", help="glare masks and overlays for images (HSV V > v_min, S < s_max)")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--v-min", type=int, default=240, help="glare when V > v_min (default 240)")
    s.add_argument("--s-max", type=int, default=30, help="glare when S < s_max (default 30)")
    s.add_argument("--dilate", type=int, default=0, help="grow the mask by a disc of this radius")
    s.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_specular)
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
