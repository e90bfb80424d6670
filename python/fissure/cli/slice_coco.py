"""``fissure slice-coco ANNOTATIONS IMAGE_DIR --out DIR``: cut a COCO dataset into training
tiles (:func:`fissure.slice_coco.slice_coco`, SAHI's ``slice_coco`` semantics).

Writes the tiles, ``{name}_coco.json`` (default name ``sliced``) and, with ``--yolo``,
``labels/*.txt`` and ``data.yaml`` into DIR. Exit statuses: 0 done; 2 nothing done (a
missing or malformed COCO file, an image it lists missing on disk, bad options). An image
that cannot be decoded midway also exits 2 (the tiles written so far stay; the JSON is not
written). See docs/slice_coco.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_slice_coco"]


def cmd_slice_coco(args: argparse.Namespace) -> int:
    from ..slice_coco import slice_coco
    from ._common import error

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return error(f"--out: expected a folder, got the file {out}")
    size = args.slice_size
    if len(size) == 1:
        sh = sw = size[0]
    elif len(size) == 2:
        sh, sw = size
    else:
        return error(f"--slice-size: expected S or H W, got {len(size)} numbers")
    try:
        coco, path = _run(slice_coco, args, out, sh, sw)
    except ImportError as exc:  # shapely missing: nothing was done
        return error(str(exc))
    if not args.quiet:
        print(f"fissure slice-coco: {len(coco['images'])} tile(s), "
              f"{len(coco['annotations'])} annotation(s); written to {path}")
    return 0


def _run(slice_coco: Any, args: argparse.Namespace, out: Path, sh: int, sw: int) -> Any:
    return slice_coco(
        args.annotations, args.image_dir, args.name, str(out),
        ignore_negative_samples=args.ignore_negative, slice_height=sh, slice_width=sw,
        overlap_height_ratio=args.overlap_ratio, overlap_width_ratio=args.overlap_ratio,
        min_area_ratio=args.min_area_ratio, out_ext=args.ext, yolo=args.yolo,
        negative_fraction=args.negative_fraction, seed=args.seed,
        rle_as_box=args.rle_as_box, num_workers=args.workers,
        png_compression=args.png_compression, progress=not args.quiet)


def add_parser(sub: Any) -> None:
    """Registers ``fissure slice-coco`` on the ``fissure`` command's subparsers."""
    p = sub.add_parser(
        "slice-coco", help="cut a COCO dataset into training tiles (SAHI slice_coco)",
        description="Cuts every image of a COCO dataset into tiles on SAHI's grid, clips the "
                    "annotations (boxes, polygons, RLE) to each tile and writes the tiles and a "
                    "COCO JSON equal to sahi.slicing.slice_coco's (optionally YOLO labels).")
    p.add_argument("annotations", metavar="ANNOTATIONS", help="the COCO JSON file")
    p.add_argument("image_dir", metavar="IMAGE_DIR", help="folder of the images it lists")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default="sliced",
                   help="output JSON name: {NAME}_coco.json (default sliced)")
    p.add_argument("--slice-size", type=int, nargs="+", default=[512], metavar="N",
                   help="tile size: S, or H W (default 512)")
    p.add_argument("--overlap-ratio", type=float, default=0.2,
                   help="overlap between tiles as a fraction of the size (default 0.2)")
    p.add_argument("--min-area-ratio", type=float, default=0.1,
                   help="keep a clipped annotation with at least this fraction of its area "
                        "(default 0.1)")
    neg = p.add_mutually_exclusive_group()
    neg.add_argument("--ignore-negative", action="store_true",
                     help="leave out tiles without annotations")
    neg.add_argument("--negative-fraction", type=float, default=None, metavar="F",
                     help="keep this fraction of the tiles without annotations (seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed of --negative-fraction (default 0)")
    p.add_argument("--yolo", action="store_true",
                   help="also write labels/*.txt (YOLO) and data.yaml")
    p.add_argument("--ext", default=None, help="tile file extension (default .png)")
    p.add_argument("--png-compression", type=int, default=None, metavar="0-9",
                   help="zlib level of PNG tiles (default OpenCV's 1; SAHI writes 6)")
    p.add_argument("--rle-as-box", action="store_true",
                   help="treat RLE masks as their bbox, as SAHI does (default: clip the mask)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads writing tiles (default: CPUs, at most 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    p.set_defaults(func=cmd_slice_coco)
