"""The ``fissure`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

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


class _Images:
    """A command's input images (files, folders, globs) behind a progress bar. Iterating yields
    ``(number, path, image)`` with ``number`` counting every input from 1; a file that cannot
    be read is reported on stderr, counted in ``failed`` and skipped."""

    def __init__(self, inputs: Sequence[str], desc: str, quiet: bool) -> None:
        from .io import expand_inputs

        self.paths = list(expand_inputs(inputs))
        self.desc, self.quiet, self.failed = desc, quiet, 0
        self.bar: Any = None

    def __iter__(self) -> Iterator[tuple[int, Path, np.ndarray]]:
        from tqdm import tqdm

        from .io import read_image

        self.bar = tqdm(self.paths, desc=self.desc, unit="img", disable=self.quiet)
        for number, path in enumerate(self.bar, start=1):
            try:
                image = read_image(path)
            except (OSError, ValueError) as exc:
                self.failed += 1
                tqdm.write(f"fissure: skipped {path}: {exc}", file=sys.stderr)
                continue
            yield number, path, image


def _no_inputs() -> int:
    print("fissure: error: no input images found", file=sys.stderr)
    return 2


def _cmd_specular(args: argparse.Namespace) -> int:
    """Glare masks for images: a mask PNG, an overlay PNG and a JSON summary per image."""
    from .io import write_image_atomic, write_json_atomic
    from .specular import draw_specular, specular_mask

    out = Path(args.out)
    images = _Images(args.inputs, "specular", args.quiet)
    if not images.paths:
        return _no_inputs()
    summary = []
    for _, path, image in images:
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
          + (f", {images.failed} skipped (unreadable)" if images.failed else ""))
    return 1 if images.failed else 0


def _class_names(spec: Optional[str]) -> Optional[list[str]]:
    if not spec:
        return None
    path = Path(spec)
    if path.is_file():
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return [n.strip() for n in spec.split(",")]


def _unique_stem(path: Path, used: set) -> str:
    stem, k = path.stem, 1
    while stem in used:
        k += 1
        stem = f"{path.stem}_{k}"
    used.add(stem)
    return stem


def _cmd_detect(args: argparse.Namespace) -> int:
    """Tiled detection over images: per image a COCO-style JSON and an overlay PNG."""
    import time

    from .detect import TiledDetector
    from .io import write_image_atomic, write_json_atomic
    from .preprocess import PreprocessConfig

    out = Path(args.out)
    inputs = _Images(args.inputs, "detect", args.quiet)
    if not inputs.paths:
        return _no_inputs()
    preprocess = None
    if args.input_size or args.mode or args.mean or args.std or args.bgr:
        size = args.input_size or [args.slice_size]
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
        args.model, backend=args.backend, device=args.device, slice_size=args.slice_size,
        overlap_ratio=args.overlap, merge=args.merge, match_metric=args.match_metric,
        match_threshold=args.match_threshold, class_agnostic=args.class_agnostic,
        confidence_threshold=args.conf, full_image_pass=args.full_image_pass,
        vram_budget_mb=args.vram_budget_mb, decoder=args.decoder,
        decoder_options=decoder_options, preprocess=preprocess, specular=args.specular,
        class_names=_class_names(args.classes), batch_size=args.batch_size,
        num_threads=args.threads, precision=args.precision)
    images = total = 0
    used: set = set()
    t0 = time.perf_counter()
    with det:
        for image_id, path, image in inputs:
            dets = det(image)
            stem = _unique_stem(path, used)
            h, w = image.shape[:2]
            names = det.class_names or {}
            cats = sorted(set(int(c) for c in dets.class_ids) | set(names))
            write_json_atomic(out / f"{stem}.json", {
                "image": {"id": image_id, "file_name": str(path), "height": h, "width": w},
                "annotations": dets.to_coco(image_id=image_id),
                "categories": [{"id": c, "name": names.get(c, str(c))} for c in cats],
            })
            if not args.no_overlay:
                write_image_atomic(out / f"{stem}_overlay.png", dets.draw(image))
            images += 1
            total += len(dets)
            inputs.bar.set_postfix(dets=len(dets))
    dt = time.perf_counter() - t0
    print(f"fissure detect: {images} image(s), {total} detection(s) in {dt:.1f} s "
          f"({images / dt if dt > 0 else 0:.2f} img/s), written to {out}"
          + (f"; {inputs.failed} skipped (unreadable)" if inputs.failed else ""))
    return 1 if inputs.failed else 0


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
    s = sub.add_parser("detect", help="tiled detection: COCO JSON and overlays per image")
    s.add_argument("model", help="model file (.onnx, OpenVINO .xml, .tflite)")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, gpu, npu")
    s.add_argument("--precision", default=None, help="f32, f16 or bf16 (OpenVINO)")
    s.add_argument("--slice-size", type=int, default=640, help="tile size in pixels (default 640)")
    s.add_argument("--overlap", type=float, default=0.2, help="tile overlap ratio (default 0.2)")
    s.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    s.add_argument("--merge", default="greedy_nmm", choices=["greedy_nmm", "nmm", "nms", "none"])
    s.add_argument("--match-metric", default="ios", choices=["ios", "iou"])
    s.add_argument("--match-threshold", type=float, default=0.5)
    s.add_argument("--class-agnostic", action="store_true", help="merge across classes")
    s.add_argument("--full-image-pass", action="store_true",
                   help="also run the whole image resized (SAHI's standard prediction)")
    s.add_argument("--decoder", default="auto", help="output decoder (default: from the shapes)")
    s.add_argument("--decoder-option", action="append", metavar="KEY=VALUE",
                   help="extra decoder argument, e.g. threshold=0.3 (repeatable)")
    s.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="model input h [w] (default: the model's, or the slice size)")
    s.add_argument("--mode", choices=["letterbox", "resize", "none"], default=None,
                   help="tile to input: letterbox (default), resize or none")
    s.add_argument("--mean", type=float, nargs=3, default=None, help="per-channel mean after /255")
    s.add_argument("--std", type=float, nargs=3, default=None, help="per-channel std after /255")
    s.add_argument("--bgr", action="store_true", help="feed BGR (default: RGB)")
    s.add_argument("--specular", choices=["drop", "flag"], default=None,
                   help="drop or flag detections lying mostly under glare")
    s.add_argument("--classes", default=None, help="class names: a text file or a,b,c")
    s.add_argument("--batch-size", type=int, default=None,
                   help="tiles per batch (default: sized to --vram-budget-mb)")
    s.add_argument("--vram-budget-mb", type=int, default=2048)
    s.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    s.add_argument("--no-overlay", action="store_true", help="write JSON only")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_detect)
    try:
        from . import demo
    except ImportError:  # pragma: no cover - demo is part of the package
        demo = None  # type: ignore[assignment]
    if demo is not None:
        demo.add_parser(sub)
    from .anomaly import cli as anomaly_cli

    anomaly_cli.add_parser(sub)
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
