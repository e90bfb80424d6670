"""``fissure inspect --anomaly BANK_OR_MODEL [--detector MODEL] INPUT... --out DIR``: the
inspection cascade (:class:`fissure.Inspector`) over images, folders or globs.

Writes per image ``NAME.json`` (verdict, regions with label, class, confidence, verdict) and
``NAME_inspect.jpg`` (or ``.png``; the anomaly overlay with each region numbered, named and
boxed by verdict), ``summary.csv`` (one row per image: verdict, region counts, worst score)
and ``summary.json``; with ``--review-dir``, each region in the review band as a crop with
context and a line in ``review.csv`` (and ``review.json``, the same rows). Each file is written atomically. Exit statuses: 0 done,
1 some inputs skipped, 2 nothing done. See docs/inspect.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_inspect"]

def cmd_inspect(args: argparse.Namespace) -> int:
    from ..jobs import InspectJob
    from ._common import Images, error, no_inputs, one_line, run_job

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return error(f"--out: expected a folder, got the file {out}")
    review_dir = Path(args.review_dir) if args.review_dir else None
    if review_dir is not None and review_dir.exists() and not review_dir.is_dir():
        return error(f"--review-dir: expected a folder, got the file {review_dir}")
    inputs = Images(args.inputs, "inspect", args.quiet)
    if not inputs.paths:
        return no_inputs()
    job = InspectJob(args.anomaly, args.detector, review_dir=review_dir,
                     overlay=not args.no_overlay, overlay_format=args.overlay_format,
                     review=args.review, specular=args.specular, backend=args.backend,
                     device=args.device, num_threads=args.threads)
    try:
        job.open()
    except (OSError, ValueError, TypeError, ImportError) as exc:
        return error(f"cannot set up the inspection: {one_line(exc)}")
    rc = run_job(job, inputs, args, out)
    if rc == 1 and not (out / "summary.json").exists():
        return 2
    if rc == 1:
        import json

        if not json.loads((out / "summary.json").read_text())["images"]:
            return 2  # every input failed: nothing was inspected
    return rc


def _band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    return low, high


def add_parser(sub: Any) -> None:
    """Registers ``fissure inspect`` on the ``fissure`` command's subparsers."""
    from ._common import add_overlay_format, add_run_args, add_runtime_args

    p = sub.add_parser(
        "inspect", help="anomaly map -> candidate regions -> detector on their tiles",
        description="The inspection cascade: an anomaly model (a PatchCore memory bank or an "
                    "anomalib export) marks candidate regions, an optional detector names "
                    "them running only on the tiles that hold them; each region and image "
                    "gets a verdict: defect, review or ok.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--anomaly", required=True, metavar="BANK_OR_MODEL",
                   help="memory bank (.safetensors) or anomalib export (.onnx, .xml)")
    p.add_argument("--detector", default=None, metavar="MODEL",
                   help="detector model (as for 'fissure detect'); default: none")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--review", type=_band, default=None, metavar="LOW,HIGH",
                   help="region scores that go to a person (default: the bank's calibrated "
                        "band, else 0.8x..1.25x the threshold)")
    p.add_argument("--review-dir", default=None, metavar="DIR",
                   help="write each review region as a crop with context, and review.csv")
    p.add_argument("--specular", default=None, choices=["mask"],
                   help="mask: glare is not a defect (the anomaly stage masks it, detections "
                        "on it are dropped); default: as the bank or model was set")
    p.add_argument("--no-overlay", action="store_true", help="write JSON and CSV only")
    add_overlay_format(p)
    add_runtime_args(p)
    add_run_args(p)
    p.set_defaults(func=cmd_inspect)
