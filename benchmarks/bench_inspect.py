"""The inspection cascade against the detector run on every tile, at equal recall.

Surfaces: the demo's (``fissure demo``: 4000 x 3000 brushed metal, 16 planted dark defects,
8 specular glints, same seeds) and a sparse 24 MP one (6000 x 4000, 4 dark defects, 4
glints; ``--big``), each with bright coloured squares added (BGR 255, 255, 200: not glare,
saturation 55). The anomaly stage is the demo's PatchCore (two 1536 px defect-free samples,
1% coreset, glare masked); the detector is the toy bright-spot detector
(fissure.detection.toy, a real ONNX graph whose only class is "bright spot"), so it names the
squares and nothing else: the dark defects stay "anomaly".

Recall: squares named ("bright spot" region over each; every tile: a detection over each)
and planted dark defects found (a region over each). False: detections on glints. Times are
medians of interleaved rounds over the same anomaly result: the cascade's detector stage
(``Inspector.cascade``: plan, ``detect_tiles``, region masks, matching) against
``TiledDetector.__call__`` on every tile; the anomaly stage (once) is what both pipelines
share, so "pipeline" = anomaly + detector stage.

    PYTHONPATH=python python benchmarks/bench_inspect.py [--rounds 5] [--tiles 640,320] [--big]

Not a pytest file: a plain script that prints a Markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fissure import Inspector, PatchCore, TiledDetector
from fissure.anomaly.synthetic import brushed_metal, plant_defects
from fissure.inspection import _overlap

SQUARE = (255, 255, 200)


def surface(h: int, w: int, n_defects: int, n_glints: int, n_squares: int, seed: int,
            defect_seed: int):
    surf = plant_defects(brushed_metal(h, w, seed=seed), n_defects, n_glints=n_glints,
                         seed=defect_seed)
    img = surf.image.copy()
    rng = np.random.default_rng(seed)
    taken = np.concatenate([np.array([d.box for d in surf.defects], np.float64).reshape(-1, 4),
                            surf.glint_boxes.astype(np.float64).reshape(-1, 4)])
    squares: list[list[int]] = []
    while len(squares) < n_squares:
        x, y = int(rng.integers(60, w - 80)), int(rng.integers(60, h - 80))
        b = np.array([[x - 150, y - 150, x + 164, y + 164]], np.float64)
        if _overlap(b, taken).max(initial=0) > 0 or (
                squares and _overlap(b, np.array(squares, np.float64)).max() > 0):
            continue
        img[y:y + 14, x:x + 14] = SQUARE
        squares.append([x, y, x + 14, y + 14])
    defects = np.array([d.box for d in surf.defects], np.float64)
    return img, np.array(squares, np.float64), defects, surf.glint_boxes.astype(np.float64)


def covered(boxes, targets: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(len(targets), bool)
    return (_overlap(b, targets) >= 0.5).any(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tiles", default="640,320", help="detector tile sizes")
    ap.add_argument("--big", action="store_true", help="add the 24 MP sparse surface")
    args = ap.parse_args()
    bank = PatchCore(coreset_ratio=0.01, specular="mask", seed=0).fit(
        [brushed_metal(1536, 1536, seed=s) for s in (1, 2)])
    cases = [("demo 12 MP: 16 defects, 8 glints, 4 squares", (3000, 4000, 16, 8, 4, 100, 200))]
    if args.big:
        cases.append(("24 MP sparse: 4 defects, 4 glints, 4 squares",
                      (4000, 6000, 4, 4, 4, 9, 10)))
    print("| surface | tile | tiles run / all | squares named: cascade / every tile | dark "
          "defects found (cascade) | detections on glints: cascade / every tile | detector "
          "stage: cascade / every tile (s) | ratio | anomaly stage (s) | pipeline ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    from fissure.detection.toy import bright_spot_model

    model = bright_spot_model()
    for name, (h, w, nd, ng, ns, seed, dseed) in cases:
        img, squares, defects, glints = surface(h, w, nd, ng, ns, seed, dseed)
        t = time.perf_counter()
        res = bank.predict(img)
        t_anomaly = time.perf_counter() - t
        for tile in (int(v) for v in args.tiles.split(",")):
            det = TiledDetector(model, tile_size=tile, conf_threshold=0.9,
                                decoder_options={"mask_threshold": 0.9},
                                class_names=["bright spot"])
            insp = Inspector(bank, det, specular="mask")
            casc, full = [], []
            for _ in range(args.rounds):  # interleaved rounds
                t = time.perf_counter()
                r = insp.cascade(img, res)
                casc.append(time.perf_counter() - t)
                t = time.perf_counter()
                every = det(img)
                full.append(time.perf_counter() - t)
            named = [g.box for g in r.regions if g.label == "bright spot"]
            rc, rf = covered(named, squares).mean(), covered(every.boxes, squares).mean()
            found = covered([g.box for g in r.regions], defects).mean()
            fc = int((_overlap(glints, np.asarray(r.detections.boxes, np.float64)) > 0)
                     .any(0).sum()) if len(r.detections) else 0
            ff = int((_overlap(glints, np.asarray(every.boxes, np.float64)) > 0)
                     .any(0).sum()) if len(every) else 0
            mc, mf = statistics.median(casc), statistics.median(full)
            print(f"| {name} | {tile} | {r.tiles_run} / {r.tiles_total} | {rc:.2f} / {rf:.2f} "
                  f"| {found:.2f} | {fc} / {ff} | {mc:.3f} / {mf:.3f} | {mf / mc:.1f}x "
                  f"| {t_anomaly:.1f} | {(t_anomaly + mf) / (t_anomaly + mc):.2f}x |",
                  flush=True)
            det.close()


if __name__ == "__main__":
    main()
