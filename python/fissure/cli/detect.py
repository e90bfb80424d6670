"""``fissure detect``: tiled detection over images, a COCO-style JSON and an overlay per image."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from ._common import (Images, add_overlay_format, add_run_args, class_names, error, no_inputs,
                      run_job)

__all__ = ["add_parser", "cmd_detect", "describe_lines"]



def _option_value(text: str) -> Any:
    """A --decoder-option value: an int, a float, true/false, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def decoder_options(items: Optional[list[str]]) -> dict[str, Any]:
    """``--decoder-option KEY=VALUE`` items as a dict (values through :func:`_option_value`);
    ValueError naming the item that is not KEY=VALUE."""
    opts: dict[str, Any] = {}
    for item in items or []:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--decoder-option {item}: expected KEY=VALUE")
        opts[key] = _option_value(val)
    return opts


def preprocess_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--mode``, ``--mean``, ``--std`` and ``--bgr`` set, laid over the model's own
    preprocessing (``TiledDetector(preprocess=dict)``); empty when none was given."""
    pre: dict[str, Any] = {}
    if args.mode:
        pre["mode"] = args.mode
    if args.mean:
        pre["mean"] = tuple(args.mean)
    if args.std:
        pre["std"] = tuple(args.std)
    if args.bgr:
        pre["rgb"] = False
    return pre


def describe_lines(d: dict) -> list[str]:
    """``TiledDetector.describe()`` as the two lines ``fissure detect`` prints first."""
    p, m = d["preprocess"], d["merge"]
    def nums(v: list) -> str:  # one number when all are equal
        return f"{v[0]:g}" if len(set(v)) == 1 else ",".join(f"{x:g}" for x in v)

    names = d["class_names"]
    if names is None:
        classes = "class ids (no names)"
    else:
        shown = ", ".join(list(names.values())[:6]) + (", ..." if len(names) > 6 else "")
        classes = f"{len(names)} class name(s) from {d['class_names_source']}: {shown}"
    decoder = d["decoder"]["kind"] + (f" {d['decoder']['layout']}" if d["decoder"]["layout"] else "")
    return [
        f"fissure detect: {Path(d['model']).name} on {d['backend']} {d['device']}, precision "
        f"{d['precision']}; decoder {decoder}; {classes}",
        f"  input {p['input_size'][0]}x{p['input_size'][1]}"
        + (f" (rounded up from {d['input_size_rounded_from'][0]}x"
           f"{d['input_size_rounded_from'][1]} to stride {d['stride']})"
           if d.get("input_size_rounded_from") else "")
        + f" {d['input']['layout']} {p['dtype']} "
        f"{p['mode']}, {'RGB' if p['rgb'] else 'BGR'} x{p['scale']:.6g} mean {nums(p['mean'])} "
        f"std {nums(p['std'])}; tiles {d['tile_size'][0]}x{d['tile_size'][1]} overlap "
        f"{nums(d['overlap_ratio'])}; conf >= {d['conf_threshold']:g}; merge {m['method']} "
        f"{m['match_metric']} >= {m['match_threshold']:g}"
        f"{' class-agnostic' if m['class_agnostic'] else ''}"
        + (f"; specular {d['specular']}" if d["specular"] else ""),
    ]


def _physical_memory() -> int:
    """This machine's memory in bytes (0 where the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Tiled detection over images: per image a COCO-style JSON and an overlay PNG, and a
    ``summary.json``. Exit status as every command's (``_common``): 0, 1 when some images were
    skipped, 2 when nothing was done."""
    from ..detection.decoders import KINDS, DecoderOptionError
    from ..jobs import DetectJob

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return error(f"--out: expected a folder, got the file {out}")
    if args.decoder not in ("auto",) + KINDS:
        return error(f"--decoder {args.decoder}: expected one of auto, {', '.join(KINDS)}")
    try:
        options = decoder_options(args.decoder_option)
    except ValueError as exc:
        return error(str(exc))
    inputs = Images(args.inputs, "detect", args.quiet)
    if not inputs.paths:
        return no_inputs()
    preprocess: Optional[dict] = None
    if args.input_size or args.mode or args.mean or args.std or args.bgr:
        # only what was given; the rest (input size, mode) comes from the model as without flags
        preprocess = {}
        if args.input_size:
            preprocess["input_size"] = (args.input_size[0], args.input_size[-1])
            need = 3 * 4 * args.input_size[0] * args.input_size[-1]  # one float32 tile
            ram = _physical_memory()
            if ram and need * 4 > ram:  # the batch, its double buffer and the model's first layer
                return error(f"--input-size {args.input_size[0]} {args.input_size[-1]}: one "
                             f"input tile alone takes {need / 2**30:.1f} GiB, too much for this "
                             f"machine's {ram / 2**30:.0f} GiB of memory; nothing was done")
        preprocess.update(preprocess_overrides(args))
    job = DetectJob(
        args.model, overlay=not args.no_overlay, overlay_format=args.overlay_format,
        backend=args.backend, device=args.device, tile_size=args.tile_size,
        overlap_ratio=args.overlap_ratio, merge=args.merge, match_metric=args.match_metric,
        match_threshold=args.match_threshold, class_agnostic=args.class_agnostic,
        conf_threshold=args.conf_threshold, full_image_pass=args.full_image_pass,
        vram_budget_mb=args.vram_budget_mb, decoder=args.decoder,
        decoder_options=options, preprocess=preprocess, specular=args.specular,
        class_names=class_names(args.classes), batch_size=args.batch_size,
        num_threads=args.threads, precision=args.precision)
    try:
        job.open()
    except DecoderOptionError as exc:
        given = next((i for i in args.decoder_option or [] if i.partition("=")[0] == exc.option),
                     exc.option)
        return error(f"--decoder-option {given}: {exc.reason}")
    except ValueError as exc:
        if "the model's stride is" in str(exc):
            return error(str(exc).replace("input size", "--input-size", 1)
                         if args.input_size else str(exc) + " (pass --input-size)")
        if "select_decoder" not in str(exc):
            raise
        return error(str(exc).replace("select_decoder: ", "").replace(
            'pass decoder="yolox_raw" or decoder="yolov5" (select_decoder(..., name=...)) '
            "explicitly", "pass --decoder yolox_raw or --decoder yolov5").replace(
            "pass decoder= (select_decoder(..., name=...)) explicitly",
            "pass --decoder KIND (" + ", ".join(KINDS) + ")"))
    for line in describe_lines(job.describe()):
        print(line, flush=True)
    return run_job(job, inputs, args, out)


def add_parser(sub: Any) -> None:
    """Registers ``fissure detect``."""
    from ..detection.decoders import KINDS

    s = sub.add_parser("detect", help="tiled detection: COCO JSON and overlays per image",
                       description="Tiled detection over images: per image NAME.json (COCO "
                       "annotations, categories, the detector's settings) and "
                       "NAME_overlay.png, and a summary.json. Exit status: 0 all done, 1 some "
                       "images skipped (unreadable or failed), 2 nothing done (an input "
                       "matched no file, bad options, unusable model).")
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
    s.add_argument("--decoder", default="auto", metavar="KIND",
                   help="output decoder: auto (chosen from the output shapes; default) or one "
                        f"of {', '.join(KINDS)}")
    s.add_argument("--decoder-option", action="append", metavar="KEY=VALUE",
                   help="decoder option, e.g. mask_threshold=0.3, min_area=4, masks=false, "
                        "layout=channels_last, score=softmax, top_k=300 (repeatable)")
    s.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="model input h [w] (default: the model's; for a dynamic input its "
                        "metadata imgsz, else the tile size)")
    s.add_argument("--mode", choices=["letterbox", "resize", "none"], default=None,
                   help="tile to input: letterbox, resize or none (default: the model family's own: resize for RT-DETR, DETR, D-FINE and PaddleDetection, else letterbox)")
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
    add_run_args(s)
    s.set_defaults(func=cmd_detect)
