"""The inspection cascade against the detector run on every tile, at equal recall.

A PatchCore bank fitted on two defect-free brushed-metal samples; test surfaces with planted
dark defects (scratches, cracks, pits, stains) and planted bright squares; the toy bright-spot
detector (fissure.detection.toy, a real ONNX graph whose only class is "bright spot") at
640-px tiles. Recall: the planted squares the detector names (the cascade: a region labelled
"bright spot" over each square; every tile: a detection over each square). Times are medians
of interleaved rounds; the cascade's detector stage is TiledDetector.detect_tiles on the
planned tiles, its total includes the anomaly stage (which the every-tile run does not have).

    PYTHONPATH=python python benchmarks/bench_inspect.py [--rounds 3] [--big]

--big adds the 24 MP (6000 x 4000) sparse-defect surface. Not a pytest file: a plain script
that prints a Markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fissure import Inspector, PatchCore, TiledDetector
from fissure.anomaly.synthetic import brushed_metal, plant_defects
from fissure.detection.toy import bright_spot_model
from fissure.inspection import _overlap


def surface(h: int, w: int, n_defects: int, n_spots: int, seed: int):
    surf = plant_defects(brushed_metal(h, w, seed=seed), n_defects, seed=seed + 1)
    img = surf.image.copy()
    rng = np.random.default_rng(seed)
    defects = np.array([d.box for d in surf.defects], np.float64)
    spots: list[list[int]] = []
    while len(spots) < n_spots:
        x, y = int(rng.integers(60, w - 80)), int(rng.integers(60, h - 80))
        b = np.array([[x - 150, y - 150, x + 164, y + 164]], np.float64)
        if _overlap(b, defects).max(initial=0) > 0 or (
                spots and _overlap(b, np.array(spots, np.float64)).max() > 0):
            continue
        img[y:y + 14, x:x + 14] = 255
        spots.append([x, y, x + 14, y + 14])
    return img, np.array(spots, np.float64)


def recall(boxes: np.ndarray, spots: np.ndarray) -> float:
    if len(boxes) == 0:
        return 0.0
    return float((_overlap(np.asarray(boxes, np.float64), spots) >= 0.5).any(0).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big", action="store_true")
    args = ap.parse_args()
    bank = PatchCore(coreset_ratio=0.01).fit([brushed_metal(1536, 1536, seed=s) for s in (1, 2)])
    det = TiledDetector(bright_spot_model(), conf_threshold=0.9,
                        decoder_options={"mask_threshold": 0.9}, class_names=["bright spot"])
    cases = [("12 MP, 16 defects + 8 squares", (3000, 4000, 16, 8, 5))]
    if args.big:
        cases.append(("24 MP sparse, 4 defects + 4 squares", (4000, 6000, 4, 4, 9)))
    print("| surface | tiles run / all | recall cascade / every tile | detector stage: cascade "
          "/ every tile (s) | ratio | cascade total (s) |")
    print("|---|---|---|---|---|---|")
    insp = Inspector(bank, det)
    for name, (h, w, nd, ns, seed) in cases:
        img, spots = surface(h, w, nd, ns, seed)
        casc, full, total = [], [], []
        for _ in range(args.rounds):  # interleaved rounds
            t = time.perf_counter()
            r = insp(img)
            total.append(time.perf_counter() - t)
            casc.append(r.seconds["detector"])
            t = time.perf_counter()
            every = det(img)
            full.append(time.perf_counter() - t)
        named = [reg.box for reg in r.regions if reg.label == "bright spot"]
        rc, rf = recall(np.array(named).reshape(-1, 4), spots), recall(every.boxes, spots)
        mc, mf = statistics.median(casc), statistics.median(full)
        print(f"| {name} | {r.tiles_run} / {r.tiles_total} | {rc:.2f} / {rf:.2f} | "
              f"{mc:.3f} / {mf:.3f} | {mf / mc:.1f}x | {statistics.median(total):.1f} |")


if __name__ == "__main__":
    main()
