"""``fissure change BEFORE... AFTER --out DIR``: a before/after change map from the command
line (:class:`fissure.ChangeDetector`).

With one BEFORE it compares the pair; with several (golden mode: images of a good part) the
references' patches together form the reference. Writes, into DIR, ``change.json`` (the
regions, the threshold and its rule, each reference's alignment report, timings),
``change_overlay.jpg`` (or ``.png``: the after image with the changes marked) and
``change_mask.png`` (255 where changed); each file atomically. Exit statuses: 0 done (with or
without changes; ``changed`` in the JSON and the printed line say which), 2 nothing done (an
unreadable image, bad options, or an alignment that was refused: the message gives its
numbers). See docs/change.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_parser", "cmd_change"]


def cmd_change(args: argparse.Namespace) -> int:
    from ..change import ChangeDetector
    from ..io import read_image, write_image_atomic, write_json_atomic
    from ._common import error, write_overlay

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return error(f"--out: expected a folder, got the file {out}")
    befores = [read_image(p) for p in args.before]  # an unreadable file: ValueError, exit 2
    after = read_image(args.after)
    det = ChangeDetector(
        args.backbone, align=args.align, radius=args.radius, threshold=args.threshold,
        sigma=args.sigma, min_area=args.min_area, specular=args.specular,
        relight=None if args.no_relight else "match", min_inliers=args.min_inliers,
        ecc_refine=not args.no_ecc_refine, tile_size=args.tile_size, backend=args.backend,
        device=args.device, num_threads=args.threads)
    result = det.compare(befores if len(befores) > 1 else befores[0], after)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"before": [str(p) for p in args.before], "after": str(args.after),
                           **result.to_dict()}
    write_json_atomic(out / "change.json", doc)
    write_image_atomic(out / "change_mask.png", result.mask.astype(np.uint8) * np.uint8(255))
    write_overlay(out, "change_overlay", result.overlay(after), args.overlay_format)
    a = result.alignment
    quality = (f"{a.inliers} inliers ({a.inlier_ratio:.0%}), RMSE {a.reprojection_error:.2f} px"
               if a.method in ("orb", "sift") else
               f"ECC {a.ecc:.3f}" if a.method == "ecc" else "identity")
    print(f"fissure change: {len(result.boxes)} changed region(s); aligned by {a.method} "
          f"({quality}, {a.valid_fraction:.0%} of the after image covered); threshold "
          f"{result.threshold:.4g} ({result.threshold_rule}); "
          f"{result.timings.get('total_s', 0.0):.1f} s; written to {out}")
    return 0


def add_parser(sub: Any) -> None:
    """Registers ``fissure change`` on the ``fissure`` command's subparsers."""
    from ._common import add_overlay_format, add_runtime_args

    p = sub.add_parser(
        "change", help="before/after change map (or a part against golden references)",
        description="Aligns BEFORE to AFTER, compares their backbone patches neighbourhood by "
                    "neighbourhood and writes the change map's regions. Several BEFORE images: "
                    "golden mode (their patches together are the reference).")
    p.add_argument("before", nargs="+", metavar="BEFORE",
                   help="the reference image(s): the same scene earlier, or good parts")
    p.add_argument("after", metavar="AFTER", help="the image to find changes in")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--align", choices=["auto", "features", "ecc", "none"], default="auto",
                   help="auto: ORB, then AKAZE, then ECC (default); none: same size, no warp")
    p.add_argument("--no-ecc-refine", action="store_true",
                   help="keep the feature homography as it is (default: refined by ECC)")
    p.add_argument("--min-inliers", type=int, default=30,
                   help="refuse a feature alignment with fewer RANSAC inliers (default 30)")
    p.add_argument("--radius", type=int, default=1,
                   help="neighbourhood radius in patch cells of 8 px (default 1)")
    p.add_argument("--threshold", type=float, default=None,
                   help="fixed map threshold (default: median + SIGMA x MAD of the pair's map)")
    p.add_argument("--sigma", type=float, default=10.0,
                   help="the calibrated threshold's MAD multiple (default 10)")
    p.add_argument("--min-area", type=int, default=16, help="smallest region in px (default 16)")
    p.add_argument("--specular", choices=["mask"], default=None,
                   help="glare in either image is not a change")
    p.add_argument("--no-relight", action="store_true",
                   help="do not match the reference's histogram to the after image's")
    p.add_argument("--tile-size", type=int, default=512, help="tile size in px (default 512)")
    p.add_argument("--backbone", default=None, help="ONNX backbone (default: bundled)")
    add_runtime_args(p, quiet=False)
    add_overlay_format(p)
    p.set_defaults(func=cmd_change)
