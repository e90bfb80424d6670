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
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_inspect"]

SUMMARY_FIELDS = ("image", "verdict", "regions", "defect", "review", "ok", "worst_score",
                  "image_score", "detector_tiles", "seconds")
REVIEW_FIELDS = ("image", "region", "x1", "y1", "x2", "y2", "score", "low", "high", "label",
                 "crop")


def _csv_bytes(fields: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def cmd_inspect(args: argparse.Namespace) -> int:
    from .. import Inspector
    from ..io import _atomic_write_bytes, write_image_atomic, write_json_atomic
    from ._common import (SUMMARY, Images, error, finish_run, no_inputs, one_line,
                          outputs_of_one_image, unique_stem, write_overlay)

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return error(f"--out: expected a folder, got the file {out}")
    review_dir = Path(args.review_dir) if args.review_dir else None
    if review_dir is not None and review_dir.exists() and not review_dir.is_dir():
        return error(f"--review-dir: expected a folder, got the file {review_dir}")
    inputs = Images(args.inputs, "inspect", args.quiet)
    if not inputs.paths:
        return no_inputs()
    try:
        inspector = Inspector(args.anomaly, args.detector, review=args.review,
                              specular=args.specular, backend=args.backend, device=args.device, num_threads=args.threads)
        band = inspector.review_band()
    except (OSError, ValueError, TypeError, ImportError) as exc:
        return error(f"cannot set up the inspection: {one_line(exc)}")
    used: set = {SUMMARY, "review"}
    rows: list[dict[str, Any]] = []
    review_rows: list[dict[str, Any]] = []
    verdicts = {"defect": 0, "review": 0, "ok": 0}
    t0 = time.perf_counter()
    with inspector:
        for _number, path, image in inputs:
            t = time.perf_counter()
            try:
                result = inspector(image)
            except Exception as exc:
                if not inputs.fail(path, exc):
                    raise
                continue
            seconds = time.perf_counter() - t
            stem = unique_stem(path, used)
            doc = {"path": str(path), **result.to_dict()}
            picture = None if args.no_overlay else result.overlay(image)
            counts = result.counts()
            verdicts[result.verdict] += 1
            with outputs_of_one_image():
                write_json_atomic(out / f"{stem}.json", doc)
                if picture is not None:
                    write_overlay(out, f"{stem}_inspect", picture, args.overlay_format)
                if review_dir is not None:
                    h, w = image.shape[:2]
                    for r in result.regions:
                        if r.verdict != "review":
                            continue
                        x1, y1, x2, y2 = r.box
                        cw, ch = max(x2 - x1, 16), max(y2 - y1, 16)  # context: the box again
                        a, b = int(max(0, x1 - cw)), int(max(0, y1 - ch))
                        c, d = int(min(w, x2 + cw)), int(min(h, y2 + ch))
                        name = f"{stem}_r{r.id}.png"
                        write_image_atomic(review_dir / name, image[b:d, a:c])
                        review_rows.append({"image": str(path), "region": r.id, "x1": x1,
                                            "y1": y1, "x2": x2, "y2": y2,
                                            "score": round(r.score, 6), "low": band[0],
                                            "high": band[1], "label": r.label, "crop": name})
            worst = max((r.score for r in result.regions), default=0.0)
            rows.append({"image": str(path), "verdict": result.verdict,
                         "regions": len(result.regions), **counts,
                         "worst_score": round(worst, 6),
                         "image_score": round(float(result.anomaly.score), 6),
                         "detector_tiles": f"{result.tiles_run}/{result.tiles_total}",
                         "seconds": round(seconds, 3)})
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(out / "summary.csv", _csv_bytes(SUMMARY_FIELDS, rows))
    if review_dir is not None:
        _atomic_write_bytes(review_dir / "review.csv", _csv_bytes(REVIEW_FIELDS, review_rows))
        write_json_atomic(review_dir / "review.json", review_rows)
    summary = {"anomaly": str(args.anomaly), "detector": args.detector,
               "review_band": [float(v) for v in band], "images": rows,
               "verdicts": verdicts, "failed": inputs.skipped,
               "seconds": time.perf_counter() - t0}
    line = (f"fissure inspect: {len(rows)} image(s): {verdicts['defect']} defect, "
            f"{verdicts['review']} review, {verdicts['ok']} ok; review band "
            f"[{band[0]:.4g}, {band[1]:.4g})"
            + (f"; {len(review_rows)} region(s) for review in {review_dir}"
               if review_dir is not None else "") + f"; written to {out}")
    if not rows and inputs.skipped:
        print(line, file=sys.stdout)
        return 2
    return finish_run(out, summary, line, len(inputs.skipped))


def _band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    return low, high


def add_parser(sub: Any) -> None:
    """Registers ``fissure inspect`` on the ``fissure`` command's subparsers."""
    from ._common import add_overlay_format, add_runtime_args

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
    p.set_defaults(func=cmd_inspect)
