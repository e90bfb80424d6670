"""The measurements behind ``fissure anomaly fit``'s defaults (docs/anomaly_cli.md).

Three parts:

* ``demo``: the ``fissure demo`` surface (4000x3000, 16 planted defects, 8 specular glints,
  seed 0) and its two 1536x1536 defect-free samples: defects found, false alarms (and how
  many of them sit on a glint), the regions on a further defect-free sample, bank size,
  fit and predict seconds, for each coreset ratio with glare masked or not;
* ``bright``: four white scratches on a 1600x1200 surface, found with glare masked or not
  (a bright defect matches the glare rule too);
* ``elpv``: image AUROC on the ELPV solar cells (``pip install elpv-dataset``) with the
  command's own settings (tile 512, so a 300x300 cell is one tile at native size), a quicker
  subset of ``benchmarks/bench_elpv.py``'s protocol: per cell type the first
  ``--elpv-train`` (100) of the shuffled normal training cells fit, the test set is every
  held-out normal cell and every defective (probability >= 0.5) cell. Also the share of the
  cells the glare rule (V > 240, S < 30) marks more than 0.5% of; for each coreset ratio
  with glare masked or not.

    PYTHONPATH=python python benchmarks/bench_cli_defaults.py            # all (~25 min)
    PYTHONPATH=python python benchmarks/bench_cli_defaults.py --part demo

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

RATIOS = (0.1, 0.02, 0.01)
GLARE = (None, "mask")


def timed_fit(images: list, ratio: float, spec: str | None, threads: int) -> tuple:
    """(PatchCore fitted on ``images``, seconds the fit took)."""
    from fissure.anomaly import PatchCore

    pc = PatchCore(coreset_ratio=ratio, specular=spec, num_threads=threads)
    t0 = time.perf_counter()
    pc.fit(images)
    return pc, time.perf_counter() - t0


def demo_rows(threads: int) -> list[dict]:
    from fissure.anomaly.synthetic import brushed_metal, plant_defects
    from fissure.demo import evaluate

    surf = plant_defects(brushed_metal(3000, 4000, seed=100), 16, n_glints=8, seed=200)
    normals = [brushed_metal(1536, 1536, seed=1 + i) for i in range(2)]
    clean = brushed_metal(1536, 1536, seed=50)
    rows = []
    for ratio in RATIOS:
        for spec in GLARE:
            pc, fit_s = timed_fit(normals, ratio, spec, threads)
            t0 = time.perf_counter()
            r = pc.predict(surf.image)
            pred_s = time.perf_counter() - t0
            ev = evaluate(r.mask, surf.labels, surf.glints)
            rc = pc.predict(clean)
            rows.append({"coreset_ratio": ratio, "specular": spec or "off",
                         "found": len(ev["found"]), "regions": ev["regions"],
                         "false_alarms": ev["false_alarms"],
                         "false_on_glints": ev["false_on_glints"],
                         "clean_regions": len(rc.boxes), "clean_anomalous": rc.is_anomalous,
                         "bank": pc.stats["bank_size"], "fit_s": fit_s, "predict_s": pred_s})
            print(rows[-1], flush=True)
    return rows


def bright_rows(threads: int) -> list[dict]:
    """Four white (255) scratches, 3 px wide, on a 1600x1200 surface: bright defects that the
    glare rule also matches."""
    import cv2

    from fissure.anomaly import PatchCore
    from fissure.anomaly.synthetic import brushed_metal

    img = brushed_metal(1200, 1600, seed=300).copy()
    lines = [((200, 200), (260, 240)), ((900, 300), (960, 330)), ((500, 800), (520, 870)),
             ((1300, 1000), (1370, 1010))]
    for a, b in lines:
        cv2.line(img, a, b, (255, 255, 255), 3)
    normals = [brushed_metal(768, 768, seed=s) for s in (1, 2)]
    rows = []
    for spec in GLARE:
        r = PatchCore(specular=spec, num_threads=threads).fit(normals).predict(img)
        found = sum(bool(r.mask[min(a[1], b[1]):max(a[1], b[1]) + 1,
                                min(a[0], b[0]):max(a[0], b[0]) + 1].any()) for a, b in lines)
        rows.append({"specular": spec or "off", "white_scratches_found": found,
                     "of": len(lines), "regions": len(r.boxes)})
        print(rows[-1], flush=True)
    return rows


def elpv_rows(threads: int, n_train: int) -> list[dict]:
    from bench_elpv import TYPES, elpv_index, split
    from fissure.anomaly import auroc
    from fissure.specular import specular_mask

    ds = elpv_index()
    rows = []
    for cell_type in TYPES:
        train, test, labels = split(ds, cell_type, max_train=n_train)
        train_imgs, test_imgs = ds.load(train), ds.load(test)
        glary = np.mean([specular_mask(im).mean() > 0.005 for im in test_imgs])
        for ratio in RATIOS:
            for spec in GLARE:
                pc, fit_s = timed_fit(train_imgs, ratio, spec, threads)
                scores, times = [], []
                for im in test_imgs:
                    t = time.perf_counter()
                    scores.append(pc.predict(im).score)
                    times.append(time.perf_counter() - t)
                rows.append({"type": cell_type, "coreset_ratio": ratio, "specular": spec or "off",
                             "train": len(train), "test_normal": int((~labels).sum()),
                             "test_defective": int(labels.sum()),
                             "auroc": auroc(np.asarray(scores), labels),
                             "bank": pc.stats["bank_size"], "fit_s": fit_s,
                             "predict_ms": 1000 * statistics.median(times),
                             "cells_over_half_percent_glare": float(glary)})
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["demo", "bright", "elpv", "all"], default="all")
    ap.add_argument("--threads", type=int, default=-1)
    ap.add_argument("--elpv-train", type=int, default=100)
    a = ap.parse_args()
    if a.part in ("demo", "all"):
        demo_rows(a.threads)
    if a.part in ("bright", "all"):
        bright_rows(a.threads)
    if a.part in ("elpv", "all"):
        elpv_rows(a.threads, a.elpv_train)


if __name__ == "__main__":
    main()
