"""``fissure bench``: images/s, tile latency, stage times, batch size, peak RSS and VRAM of a
model run tiled, per backend and precision (``docs/bench.md``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import error

__all__ = ["add_parser", "cmd_bench"]


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    try:
        if sep and int(w) > 0 and int(h) > 0:
            return int(h), int(w)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 6000x4000, got {text!r}")


def _csv(text: str) -> list[str]:
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import DEVICES, format_table, run_bench, validate_report
    from ..io import write_json_atomic
    from .detect import decoder_options, preprocess_overrides

    if args.device.lower() not in DEVICES:
        return error(f"--device {args.device}: expected one of {', '.join(DEVICES)}")
    if args.vram_budget <= 0:
        return error(f"--vram-budget {args.vram_budget:g}: expected a positive number of MiB")
    if args.rounds < 1:
        return error(f"--rounds {args.rounds}: expected >= 1")
    if not Path(args.model).is_file():
        return error(f"model {args.model}: no such file")
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        return error(f"image {missing[0]}: no such file; nothing was done")
    det: dict[str, Any] = {}
    if args.decoder:
        det["decoder"] = args.decoder
    if args.decoder_option:
        try:
            det["decoder_options"] = decoder_options(args.decoder_option)
        except ValueError as exc:
            return error(str(exc))
    if args.conf_threshold is not None:
        det["conf_threshold"] = args.conf_threshold
    if args.batch_size is not None:
        det["batch_size"] = args.batch_size
    pre = preprocess_overrides(args)
    if pre:
        det["preprocess"] = pre

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"fissure bench: {msg}", file=sys.stderr, flush=True)

    report = run_bench(
        args.model, args.images or None, device=args.device.lower(),
        vram_budget_mb=args.vram_budget, backends=_csv(args.backends) if args.backends else None,
        precisions=_csv(args.precisions) if args.precisions else None, compare=args.compare,
        rounds=args.rounds, warmup=args.warmup, tile_size=args.tile_size,
        overlap_ratio=args.overlap_ratio, threads=args.threads, detector=det,
        image_size=args.image_size, progress=progress)
    problems = validate_report(report)
    if problems:  # pragma: no cover - a bug: the report must match its own schema
        raise RuntimeError("bench report off its schema: " + "; ".join(problems[:3]))
    imgs = report["images"]
    what = ("generated test image " if imgs[0]["generated"] else f"{len(imgs)} image(s), first ")
    print(f"fissure bench: {Path(args.model).name}; {what}{imgs[0]['width']}x"
          f"{imgs[0]['height']}; {report['rows'][0]['tiles_per_image'] or '?'} tiles; budget "
          f"{args.vram_budget:g} MiB; {args.rounds} round(s), medians")
    print(format_table(report))
    if report["compare"]:
        for r in report["rows"]:
            if r["kind"] != "fissure":
                print(f"  {r['kind']}: {r['implementation'] or r['reason']}")
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in report["compare"]["ratios"].items()
                           if v is not None)
        paired = ", ".join(f"{k} {v:.2f}x" for k, v in
                           report["compare"]["ratios_paired"].items() if v is not None)
        if ratios:
            print(f"  seconds per image relative to {report['compare']['against']}: {ratios} "
                  f"(ratio of medians); {paired} (median of per-round ratios)")
    if args.json:
        write_json_atomic(args.json, report)
        print(f"fissure bench: report written to {args.json}")
    return 0


def add_parser(sub: Any) -> None:
    """Registers ``fissure bench``."""
    s = sub.add_parser(
        "bench", help="throughput, latency, RSS and VRAM per backend and precision",
        description="Runs MODEL tiled over IMAGES (default: a generated 24 MP test image) on "
                    "every available backend, device and precision, each in its own process; "
                    "prints a table and writes a JSON report (docs/bench.md).")
    s.add_argument("model", help="model file (.onnx, OpenVINO .xml)")
    s.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default: generated)")
    s.add_argument("--device", default="auto", help="auto (all), cpu, cuda or gpu")
    s.add_argument("--vram-budget", type=float, default=2048.0, metavar="MIB",
                   help="memory budget in MiB (default 2048): sizes batches; each row says "
                        "whether its peak fits")
    s.add_argument("--backends", default=None, help="comma list: onnxruntime,openvino")
    s.add_argument("--precisions", default=None, help="comma list: f32,f16,bf16")
    s.add_argument("--compare", action="store_true",
                   help="also run the SAHI-style loop and supervision's slicer; print ratios")
    s.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    s.add_argument("--warmup", type=int, default=1, help="warm-up runs on a crop (default 1)")
    s.add_argument("--tile-size", type=int, default=640)
    s.add_argument("--overlap-ratio", type=float, default=0.2)
    s.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    s.add_argument("--image-size", type=_size, default=(4000, 6000), metavar="WxH",
                   help="size of the generated image (default 6000x4000)")
    s.add_argument("--decoder", default=None, metavar="KIND", help="as fissure detect")
    s.add_argument("--decoder-option", action="append", metavar="KEY=VALUE")
    s.add_argument("--conf-threshold", type=float, default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--mode", choices=["letterbox", "resize", "none"], default=None)
    s.add_argument("--mean", type=float, nargs=3, default=None)
    s.add_argument("--std", type=float, nargs=3, default=None)
    s.add_argument("--bgr", action="store_true", help="feed BGR (default: RGB)")
    s.add_argument("--json", default=None, metavar="PATH", help="write the report here")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_bench)
