"""``fissure info`` and ``fissure specular``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (Images, add_overlay_format, no_inputs, outputs_of_one_image,
                      write_overlay)

__all__ = ["add_info_parser", "add_specular_parser", "cmd_info", "cmd_specular"]


def cmd_info(args: argparse.Namespace) -> int:
    from ..info import info

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
    cv = d["opencv"]
    if not cv:
        print('  opencv    : not installed (image files and PatchCore need it: pip install "fissure[cv]")')
    else:
        print(f"  opencv    : {', '.join(f'{k} {v}' for k, v in cv.items())}")
        if len(cv) > 1:
            print("  warning   : more than one OpenCV distribution is installed; they share the cv2 "
                  "module and overwrite each other. Keep one (pip uninstall the others, then "
                  "pip install --force-reinstall --no-deps the one you keep); docs/install.md")
    print(f"  python    : {d['python']} on {d['platform']}")
    print(f"  compiler  : {d['compiler']}")
    return 0


def cmd_specular(args: argparse.Namespace) -> int:
    """Glare masks for images: a mask PNG, an overlay PNG and a JSON summary per image."""
    from ..io import write_image_atomic, write_json_atomic
    from ..specular import draw_specular, specular_mask

    out = Path(args.out)
    images = Images(args.inputs, "specular", args.quiet)
    if not images.paths:
        return no_inputs()
    summary = []
    failed = images.skipped  # unreadable images and those that failed, in order
    for _, path, image in images:
        try:
            mask = specular_mask(image, v_min=args.v_min, s_max=args.s_max, dilate=args.dilate,
                                 num_threads=args.threads)
        except Exception as exc:
            if not images.fail(path, exc):
                raise
            continue
        stem = path.stem
        picture = draw_specular(image, mask)
        with outputs_of_one_image():
            write_image_atomic(out / f"{stem}_specular_mask.png", mask.astype(np.uint8) * 255)
            write_overlay(out, f"{stem}_specular_overlay", picture, args.overlay_format)
        frac = float(mask.mean()) if mask.size else 0.0
        summary.append({"image": str(path), "height": image.shape[0], "width": image.shape[1],
                        "glare_pixels": int(mask.sum()), "glare_fraction": frac})
    write_json_atomic(out / "specular.json", {
        "v_min": args.v_min, "s_max": args.s_max, "dilate": args.dilate, "images": summary,
        "failed": failed})
    print(f"fissure specular: {len(summary)} image(s) written to {out}"
          + (f", {len(failed)} failed (skipped)" if failed else ""))
    return 1 if failed else 0


def add_info_parser(sub: Any) -> None:
    """Registers ``fissure info``."""
    s = sub.add_parser("info", help="version, SIMD path, threads and installed backends")
    s.set_defaults(func=cmd_info)


def add_specular_parser(sub: Any) -> None:
    """Registers ``fissure specular``."""
    s = sub.add_parser("specular", help="glare masks and overlays for images (HSV V > v_min, S < s_max)")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--v-min", type=int, default=240, help="glare when V > v_min (default 240)")
    s.add_argument("--s-max", type=int, default=30, help="glare when S < s_max (default 30)")
    s.add_argument("--dilate", type=int, default=0, help="grow the mask by a disc of this radius")
    add_overlay_format(s)
    s.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_specular)
