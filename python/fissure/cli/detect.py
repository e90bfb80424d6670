"""``fissure detect``: tiled detection over images, a COCO-style JSON and an overlay per image."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import (Images, add_overlay_format, class_names, no_inputs, unique_stem,
                      write_overlay)

__all__ = ["add_parser", "cmd_detect"]


def cmd_detect(args: argparse.Namespace) -> int:
    """Tiled detection over images: per image a COCO-style JSON and an overlay PNG."""
    import time

    from ..detection import TiledDetector
    from ..io import write_json_atomic
    from ..preprocess import PreprocessConfig

    out = Path(args.out)
    inputs = Images(args.inputs, "detect", args.quiet)
    if not inputs.paths:
        return no_inputs()
    preprocess = None
    if args.input_size or args.mode or args.mean or args.std or args.bgr:
        size = args.input_size or [args.tile_size]
        kw: dict = {"input_size": (size[0], size[-1])}
        if args.mode:
            kw["mode"] = args.mode
        else:
            kw["mode"] = "letterbox"
        if args.mean:
            kw["mean"] = tuple(args.mean)
        if args.std:
            kw["std"] = tuple(args.std)
        kw["rgb"] = not args.bgr
        preprocess = PreprocessConfig(**kw)
    decoder_options = {}
    for item in args.decoder_option or []:
        key, _, val = item.partition("=")
        if not _:
            print(f"fissure: error: --decoder-option {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        try:
            decoder_options[key] = int(val)
        except ValueError:
            try:
                decoder_options[key] = float(val)
            except ValueError:
                decoder_options[key] = val
    det = TiledDetector(
        args.model, backend=args.backend, device=args.device, tile_size=args.tile_size,
        overlap_ratio=args.overlap_ratio, merge=args.merge, match_metric=args.match_metric,
        match_threshold=args.match_threshold, class_agnostic=args.class_agnostic,
        conf_threshold=args.conf_threshold, full_image_pass=args.full_image_pass,
        vram_budget_mb=args.vram_budget_mb, decoder=args.decoder,
        decoder_options=decoder_options, preprocess=preprocess, specular=args.specular,
        class_names=class_names(args.classes), batch_size=args.batch_size,
        num_threads=args.threads, precision=args.precision)
    images = total = 0
    used: set = set()
    t0 = time.perf_counter()
    with det:
        for image_id, path, image in inputs:
            dets = det(image)
            stem = unique_stem(path, used)
            h, w = image.shape[:2]
            names = det.class_names or {}
            cats = sorted(set(int(c) for c in dets.class_ids) | set(names))
            write_json_atomic(out / f"{stem}.json", {
                "image": {"id": image_id, "file_name": str(path), "height": h, "width": w},
                "annotations": dets.to_coco(image_id=image_id),
                "categories": [{"id": c, "name": names.get(c, str(c))} for c in cats],
            })
            if not args.no_overlay:
                write_overlay(out, f"{stem}_overlay", dets.draw(image), args.overlay_format)
            images += 1
            total += len(dets)
            inputs.bar.set_postfix(dets=len(dets))
    dt = time.perf_counter() - t0
    print(f"fissure detect: {images} image(s), {total} detection(s) in {dt:.1f} s "
          f"({images / dt if dt > 0 else 0:.2f} img/s), written to {out}"
          + (f"; {inputs.failed} skipped (unreadable)" if inputs.failed else ""))
    return 1 if inputs.failed else 0


def add_parser(sub: Any) -> None:
    """Registers ``fissure detect``."""
    s = sub.add_parser("detect", help="tiled detection: COCO JSON and overlays per image")
    s.add_argument("model", help="model file (.onnx, OpenVINO .xml, .tflite)")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, gpu, npu")
    s.add_argument("--precision", default=None, help="f32, f16 or bf16 (OpenVINO)")
    s.add_argument("--tile-size", type=int, default=640, help="tile size in pixels (default 640)")
    s.add_argument("--overlap-ratio", type=float, default=0.2, help="tile overlap ratio (default 0.2)")
    s.add_argument("--conf-threshold", type=float, default=0.25, help="confidence threshold (default 0.25)")
    s.add_argument("--merge", default="greedy_nmm", choices=["greedy_nmm", "nmm", "nms", "none"])
    s.add_argument("--match-metric", default="ios", choices=["ios", "iou"])
    s.add_argument("--match-threshold", type=float, default=0.5)
    s.add_argument("--class-agnostic", action="store_true", help="merge across classes")
    s.add_argument("--full-image-pass", action="store_true",
                   help="also run the whole image resized (SAHI's standard prediction)")
    s.add_argument("--decoder", default="auto", help="output decoder (default: from the shapes)")
    s.add_argument("--decoder-option", action="append", metavar="KEY=VALUE",
                   help="extra decoder argument, e.g. mask_threshold=0.3 (repeatable)")
    s.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="model input h [w] (default: the model's, or the slice size)")
    s.add_argument("--mode", choices=["letterbox", "resize", "none"], default=None,
                   help="tile to input: letterbox (default), resize or none")
    s.add_argument("--mean", type=float, nargs=3, default=None, help="per-channel mean after /255")
    s.add_argument("--std", type=float, nargs=3, default=None, help="per-channel std after /255")
    s.add_argument("--bgr", action="store_true", help="feed BGR (default: RGB)")
    s.add_argument("--specular", choices=["mask", "flag"], default=None,
                   help="mask out (drop) or flag detections lying mostly under glare")
    s.add_argument("--classes", default=None, help="class names: a text file or a,b,c")
    s.add_argument("--batch-size", type=int, default=None,
                   help="tiles per batch (default: sized to --vram-budget-mb)")
    s.add_argument("--vram-budget-mb", type=int, default=2048)
    s.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    s.add_argument("--no-overlay", action="store_true", help="write JSON only")
    add_overlay_format(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_detect)
