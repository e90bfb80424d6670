"""``fissure quantize``: post-training INT8 quantization calibrated on the user's own images,
checked against the float model on held-out images (docs/quantize.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import Images, error, no_inputs
from .detect import decoder_options, preprocess_overrides

__all__ = ["add_parser", "cmd_quantize"]


def cmd_quantize(args: argparse.Namespace) -> int:
    """Quantizes, prints the report; exit 0 written, 2 refused by the gate or nothing done."""
    from ..quantize import AccuracyGateError, quantize_model

    try:
        options = decoder_options(args.decoder_option)
    except ValueError as exc:
        return error(str(exc))
    inputs = Images(args.inputs, "quantize", True)
    if not inputs.paths:
        return no_inputs()
    preprocess: dict[str, Any] = preprocess_overrides(args)
    if args.input_size:
        preprocess["input_size"] = (args.input_size[0], args.input_size[-1])
    try:
        report = quantize_model(
            args.model, inputs.paths, args.out, backend=args.backend, task=args.task,
            tile_size=args.tile_size, overlap_ratio=args.overlap_ratio, conf_threshold=args.conf_threshold,
            decoder=args.decoder, decoder_options=options, preprocess=preprocess or None,
            merge=args.merge, match_metric=args.match_metric,
            match_threshold=args.match_threshold, class_agnostic=args.class_agnostic,
            holdout=args.holdout, min_recall=args.min_recall, min_cosine=args.min_cosine,
            max_calibration_tiles=args.calibration_tiles or None,
            max_holdout_tiles=args.holdout_tiles or None, calibration=args.calibration,
            per_channel=not args.per_tensor, reduce_range=not args.full_range,
            float_head=not args.quantize_head, seed=args.seed, num_threads=args.threads)
    except AccuracyGateError as exc:
        for line in exc.report.lines():
            print(line)
        _write_report(args, exc.report)
        return error(str(exc))
    for line in report.lines():
        print(line)
    _write_report(args, report)
    print(f"written to {report.output}")
    return 0


def _write_report(args: argparse.Namespace, report: Any) -> None:
    if args.report:
        from ..io import write_json_atomic

        write_json_atomic(Path(args.report), report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict()), file=sys.stderr)


def add_parser(sub: Any) -> None:
    """Registers ``fissure quantize``."""
    from ..detection.decoders import KINDS

    s = sub.add_parser(
        "quantize", help="INT8 model calibrated on your images, checked against the float one",
        description="Post-training INT8 quantization: calibrated on the tiles of your images "
        "(cut and preprocessed as `fissure detect` cuts them), checked against the float model "
        "on the tiles of held-out images (recall and precision of its detections at IoU 0.5; "
        "for a feature backbone the cosine similarity of its patch embeddings); written only "
        "when the check passes. Exit status: 0 written, 2 refused or nothing done.")
    s.add_argument("model", help="the float model (.onnx; OpenVINO also .xml)")
    s.add_argument("inputs", nargs="+", metavar="IMAGES", help="image files, folders or globs "
                   "(at least 2: some calibrate, some are held out)")
    s.add_argument("--out", required=True, help="the INT8 model: .onnx (onnxruntime) or .xml "
                   "(openvino, with its .bin)")
    s.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino"],
                   help="onnxruntime: quantize_static, QDQ (default); openvino: NNCF "
                        "(pip install 'fissure[quantize]')")
    s.add_argument("--task", default="auto", choices=["auto", "detect", "features"],
                   help="detect: a detector's gate (recall); features: a backbone's (cosine); "
                        "auto: features for PatchCore's bundled backbone and models no decoder "
                        "reads")
    s.add_argument("--min-recall", type=float, default=0.9,
                   help="refuse an INT8 model whose recall of the float model's detections on "
                        "the held-out tiles is below this (default 0.9)")
    s.add_argument("--min-cosine", type=float, default=0.9,
                   help="features: refuse below this mean patch-embedding cosine similarity "
                        "(default 0.9)")
    s.add_argument("--holdout", type=float, default=0.2,
                   help="fraction of the images held out for the check (default 0.2, at least "
                        "one image)")
    s.add_argument("--calibration-tiles", type=int, default=64,
                   help="at most this many calibration tiles, evenly spaced (default 64; 0: all)")
    s.add_argument("--holdout-tiles", type=int, default=64,
                   help="at most this many held-out tiles checked (default 64; 0: all)")
    s.add_argument("--calibration", default="minmax", choices=["minmax", "entropy", "percentile"],
                   help="ONNX Runtime's calibration method (default minmax)")
    s.add_argument("--per-tensor", action="store_true",
                   help="ONNX Runtime: one scale per weight tensor (default: per channel)")
    s.add_argument("--full-range", action="store_true",
                   help="ONNX Runtime: 8-bit weights (default 7-bit: AVX2 CPUs without VNNI "
                        "saturate on 8-bit; full range only for VNNI / ARM targets)")
    s.add_argument("--quantize-head", action="store_true",
                   help="quantize the output head too (default: kept in float)")
    s.add_argument("--seed", type=int, default=0, help="seed of the calibration/hold-out split")
    s.add_argument("--report", default=None, help="also write the report as JSON here")
    s.add_argument("--json", action="store_true", help="print the report as JSON on stderr")
    # the detector's options, as `fissure detect` takes them
    s.add_argument("--tile-size", type=int, default=640, help="tile size in pixels (default 640)")
    s.add_argument("--overlap-ratio", type=float, default=0.2,
                   help="tile overlap ratio (default 0.2)")
    s.add_argument("--conf-threshold", type=float, default=0.25,
                   help="confidence threshold (default 0.25)")
    s.add_argument("--merge", default="greedy_nmm", choices=["greedy_nmm", "nmm", "nms", "none"])
    s.add_argument("--match-metric", default="ios", choices=["ios", "iou"])
    s.add_argument("--match-threshold", type=float, default=0.5)
    s.add_argument("--class-agnostic", action="store_true", help="merge across classes")
    s.add_argument("--decoder", default="auto", metavar="KIND",
                   help=f"output decoder: auto or one of {', '.join(KINDS)}")
    s.add_argument("--decoder-option", action="append", metavar="KEY=VALUE",
                   help="decoder option, e.g. mask_threshold=0.3 (repeatable)")
    s.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="model input h [w] (default: the model's, as fissure detect)")
    s.add_argument("--mode", choices=["letterbox", "resize", "none"], default=None,
                   help="tile to input (default: the model family's own, as fissure detect)")
    s.add_argument("--mean", type=float, nargs=3, default=None, help="per-channel mean after /255")
    s.add_argument("--std", type=float, nargs=3, default=None, help="per-channel std after /255")
    s.add_argument("--bgr", action="store_true", help="feed BGR (default: RGB)")
    s.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    s.set_defaults(func=cmd_quantize)
