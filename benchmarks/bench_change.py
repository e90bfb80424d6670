"""Before/after change maps (``fissure.ChangeDetector``) against the obvious baseline: align,
then ``cv2.absdiff`` and threshold.

Pairs: ``fissure.change.synthetic_pair`` (a machined-part-like surface: scikit-image's CC0
gravel texture with drilled holes and raised pads). The after view is shifted by (23, -17)
px, rotated by 3 degrees, scaled by 1.03 and relit (gain 1.15, gamma 0.85), with sensor noise
(sigma 2) on both; planted in it: 3 scratches, 3 pits (``plant_defects``) and one missing
feature, whose exact pixels are the ground truth. Seeds 0..``--seeds``-1 at 768 x 1024, one
pair at 12 MP (3000 x 4000) for the time, and the same pairs without planted changes.

Methods, on the same pairs:

* ``change map``: ``ChangeDetector()`` defaults (ORB + RANSAC homography refined by ECC,
  or not with ``--no-ecc``; histogram matching, EfficientNet-Lite0 patches, neighbourhood
  radius 1, threshold median + 10 MAD);
* ``absdiff``: the same kind of homography (found by ``align_images``, timed),
  ``cv2.warpPerspective`` of the before image, ``cv2.absdiff``, maximum over channels; thresholded by the same rule
  (median + 10 x 1.4826 MAD of the map over the covered pixels, regions of >= 16 px);
* ``absdiff, relit``: as ``absdiff`` after ``fissure.change.match_histograms`` (the change
  map's own relighting): the baseline given the one step that is not in its name.

Reported: pixel AUROC (``fissure.anomaly.pixel_auroc`` over the pixels the warped before
image covers), planted changes found (a region touching them), false regions (touching no
planted change; on the no-change pairs every region is false), wall time per pair.

    PYTHONPATH=python python benchmarks/bench_change.py                # table (~1-2 min)
    PYTHONPATH=python python benchmarks/bench_change.py --write-docs   # ... into docs/benchmarks.md
    PYTHONPATH=python python benchmarks/bench_change.py --no-ecc --write-docs   # keypoints only
    PYTHONPATH=python python -m pytest benchmarks/bench_change.py      # pytest-benchmark timings

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _machine import platform_line, write_marked_block

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Change maps (before/after)"
METHODS = ("change map", "absdiff", "absdiff, relit")


def evaluate(mask: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(found, planted, false regions) as in tests/python/test_change.py."""
    import cv2

    n, lab = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    found = sum(bool(mask[truth == i].any()) for i in range(1, int(truth.max()) + 1))
    false = sum(not (truth[lab == k] > 0).any() for k in range(1, n))
    return found, int(truth.max()), false


def absdiff(before: np.ndarray, after: np.ndarray, relit: bool,
            ecc_refine: bool = True) -> dict[str, Any]:
    """The baseline, timed from alignment to regions."""
    import cv2

    from fissure.change import _drop_small, align_images, calibrate_threshold, match_histograms

    t0 = time.perf_counter()
    a = align_images(before, after, ecc_refine=ecc_refine)
    h, w = after.shape[:2]
    warped = cv2.warpPerspective(before, a.homography, (w, h))
    valid = cv2.warpPerspective(np.full(before.shape[:2], 255, np.uint8), a.homography,
                                (w, h)) == 255
    if relit:
        warped = match_histograms(warped, after, valid)
    d = cv2.absdiff(after, warped).max(2).astype(np.float32)
    d[~valid] = 0
    t, _ = calibrate_threshold(d, valid, 10.0, 1.0)
    mask, _, _ = _drop_small(d > t, d, 16)
    return {"map": d, "mask": mask, "valid": valid, "s": time.perf_counter() - t0}


def ours(det: Any, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = det.compare(before, after)
    return {"map": r.change_map, "mask": r.mask, "valid": r.valid,
            "s": time.perf_counter() - t0}


def run(seeds: int, big: bool, ecc_refine: bool = True) -> dict[str, Any]:
    from fissure.anomaly.metrics import pixel_auroc
    from fissure.change import ChangeDetector, synthetic_pair

    det = ChangeDetector(ecc_refine=ecc_refine)
    det.model  # noqa: B018  opened before the clock runs
    cases = [(f"768x1024 seed {s}", dict(seed=s)) for s in range(seeds)]
    if big:
        cases.append(("3000x4000 (12 MP) seed 0", dict(height=3000, width=4000, seed=0)))
    rows: dict[str, dict[str, list]] = {m: {"auroc": [], "found": [], "planted": [],
                                           "false": [], "clean_false": [], "s": [],
                                           "s12": []} for m in METHODS}
    for name, kw in cases:
        pair = synthetic_pair(**kw)
        clean = synthetic_pair(**kw, n_defects=0, missing=0)
        for m in METHODS:
            run_ = (lambda b, a: ours(det, b, a)) if m == "change map" else (
                lambda b, a, m=m: absdiff(b, a, relit=m.endswith("relit"), ecc_refine=ecc_refine))
            res = run_(pair.before, pair.after)
            v = res["valid"]
            f, n, fa = evaluate(res["mask"], pair.truth)
            cres = run_(clean.before, clean.after)
            row = rows[m]
            row["auroc"].append(pixel_auroc(res["map"][v], pair.truth[v] > 0))
            row["found"].append(f)
            row["planted"].append(n)
            row["false"].append(fa)
            row["clean_false"].append(evaluate(cres["mask"], clean.truth)[2])
            (row["s12"] if "12 MP" in name else row["s"]).append(res["s"])
            print(f"{name:28s} {m:15s} AUROC {row['auroc'][-1]:.4f} found {f}/{n} "
                  f"false {fa} no-change false {row['clean_false'][-1]} {res['s']:.2f} s",
                  flush=True)
    return rows


def table(rows: dict[str, Any], seeds: int) -> str:
    lines = ["| method | pixel AUROC (mean, min) | found | false regions | no-change false regions | s / pair 768 x 1024 | s / pair 12 MP |",
             "|---|---|---|---|---|---|---|"]
    for m in METHODS:
        r = rows[m]
        s12 = f"{r['s12'][0]:.1f}" if r["s12"] else "-"
        lines.append(f"| {m} | {np.mean(r['auroc']):.4f}, {np.min(r['auroc']):.4f} | "
                     f"{sum(r['found'])}/{sum(r['planted'])} | {sum(r['false'])} | "
                     f"{sum(r['clean_false'])} | {np.median(r['s']):.2f} | {s12} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="pairs at 768 x 1024 (default 5)")
    ap.add_argument("--no-12mp", action="store_true", help="leave out the 12 MP pair")
    ap.add_argument("--no-ecc", action="store_true", help="keypoint homographies only (no "
                    "ECC refinement), for the change map and the baselines alike")
    ap.add_argument("--write-docs", action="store_true", help="write the table into "
                    "docs/benchmarks.md")
    args = ap.parse_args()
    rows = run(args.seeds, not args.no_12mp, not args.no_ecc)
    cmd = "PYTHONPATH=python python benchmarks/bench_change.py" + (
        f" --seeds {args.seeds}" if args.seeds != 5 else "") + (
        " --no-12mp" if args.no_12mp else "") + (" --no-ecc" if args.no_ecc else "")
    block = (f"```\n{cmd}\n```\n\n{platform_line('cv2', 'onnxruntime', 'openvino')}\n\n"
             f"{args.seeds} pairs at 768 x 1024 (7 planted changes each, plus the same pairs "
             "without changes)" + ("" if args.no_12mp else " and one at 12 MP")
             + "; the times include alignment; AUROC and regions over all the pairs.\n\n"
             + table(rows, args.seeds))
    print(block)
    if args.write_docs:
        tag, title = ("CHANGE_NOECC", "### Keypoint homographies only (`--no-ecc`)") \
            if args.no_ecc else ("CHANGE", SECTION)
        write_marked_block(str(ROOT / "docs" / "benchmarks.md"), tag, block, title)


# ---------------------------------------------------------------------------- pytest-benchmark


def _pair() -> Any:
    from fissure.change import synthetic_pair

    return synthetic_pair(seed=0)


def bench_change_map(benchmark: Any) -> None:
    from fissure.change import ChangeDetector

    pair, det = _pair(), ChangeDetector()
    det.model  # noqa: B018
    benchmark.pedantic(det.compare, args=(pair.before, pair.after), rounds=3, iterations=1)


def bench_absdiff_baseline(benchmark: Any) -> None:
    pair = _pair()
    benchmark.pedantic(absdiff, args=(pair.before, pair.after, False), rounds=3, iterations=1)


if __name__ == "__main__":
    main()
