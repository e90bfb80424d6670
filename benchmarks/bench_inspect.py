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
        [--detector toy|ocr]

``--detector ocr`` swaps in a real pretrained detector with a real cost per tile: PP-OCRv4
det (DBNet, from the rapidocr-onnxruntime wheel), with dark stamped words (markings, 16-20 px
tall) planted instead of the squares; recall = words named "text".

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
WORDS = ("LOT 7", "A-42", "QC", "9131", "SN 88", "OK-3")
OCR_REL = "models/ch_PP-OCRv4_det_infer.onnx"


def ocr_detector(tile: int) -> TiledDetector:
    """PP-OCRv4 det (DBNet, from the rapidocr-onnxruntime wheel) with its own preprocessing,
    as in tests/python/test_detect_real.py: a real pretrained detector, one class (text)."""
    import importlib.util
    from pathlib import Path

    from fissure import PreprocessConfig

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        raise SystemExit("--detector ocr needs rapidocr-onnxruntime (pip install --no-deps)")
    cfg = PreprocessConfig(input_size=(tile, tile), mode="none", rgb=False,
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return TiledDetector(str(Path(spec.origin).parent / OCR_REL), tile_size=tile,
                         decoder="probability_map", decoder_options={"mask_threshold": 0.3},
                         conf_threshold=0.5, preprocess=cfg, class_names=["text"])


def stamp(img: np.ndarray, x: int, y: int, rng: np.random.Generator) -> list[int]:
    """A dark stamped marking (a short word, 16-20 px tall); returns its box."""
    import cv2

    text = WORDS[int(rng.integers(len(WORDS)))]
    scale = float(rng.uniform(0.7, 0.85))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.putText(img, text, (x, y + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 2,
                cv2.LINE_AA)
    return [x, y, x + tw, y + th + base]


def surface(h: int, w: int, n_defects: int, n_glints: int, n_squares: int, seed: int,
            defect_seed: int, marks: str = "squares"):
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
        if marks == "words":
            squares.append(stamp(img, x, y, rng))
        else:
            img[y:y + 14, x:x + 14] = SQUARE
            squares.append([x, y, x + 14, y + 14])
    defects = np.array([d.box for d in surf.defects], np.float64)
    return img, np.array(squares, np.float64), defects, surf.glint_boxes.astype(np.float64)


def covered(boxes, targets: np.ndarray) -> np.ndarray:
    """Targets (planted boxes) at least half inside one of ``boxes`` (regions)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(len(targets), bool)
    return (_overlap(b, targets) >= 0.5).any(0)


def detected(dets, targets: np.ndarray) -> np.ndarray:
    """Targets with a detection lying at least half inside the target's box grown by 8 px
    (the rule the cascade names a region by, applied to the planted box)."""
    b = np.asarray(dets.boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(len(targets), bool)
    return (_overlap(targets + [-8, -8, 8, 8], b) >= 0.5).any(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tiles", default="640,320", help="detector tile sizes")
    ap.add_argument("--big", action="store_true", help="add the 24 MP sparse surface")
    ap.add_argument("--detector", default="toy", choices=["toy", "ocr"],
                    help="toy: bright-spot detector, bright squares planted; ocr: PP-OCRv4 "
                         "det, dark stamped words planted")
    args = ap.parse_args()
    bank = PatchCore(coreset_ratio=0.01, specular="mask", seed=0).fit(
        [brushed_metal(1536, 1536, seed=s) for s in (1, 2)])
    marks = "words" if args.detector == "ocr" else "squares"
    label = "text" if args.detector == "ocr" else "bright spot"
    cases = [(f"demo 12 MP: 16 defects, 8 glints, 4 {marks}", (3000, 4000, 16, 8, 4, 100, 200))]
    if args.big:
        cases.append((f"24 MP sparse: 4 defects, 4 glints, 4 {marks}",
                      (4000, 6000, 4, 4, 4, 9, 10)))
    print(f"| surface | tile | tiles run / all | {marks} named: cascade / every tile | dark "
          "defects found (cascade) | detections on glints: cascade / every tile | detector "
          "stage: cascade / every tile (s) | ratio | anomaly stage (s) | pipeline ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    from fissure.detection.toy import bright_spot_model

    model = bright_spot_model() if args.detector == "toy" else None
    for name, (h, w, nd, ng, ns, seed, dseed) in cases:
        img, squares, defects, glints = surface(h, w, nd, ng, ns, seed, dseed, marks)
        t = time.perf_counter()
        res = bank.predict(img)
        t_anomaly = time.perf_counter() - t
        for tile in (int(v) for v in args.tiles.split(",")):
            det = ocr_detector(tile) if args.detector == "ocr" else TiledDetector(
                model, tile_size=tile, conf_threshold=0.9,
                decoder_options={"mask_threshold": 0.9}, class_names=["bright spot"])
            insp = Inspector(bank, det, specular="mask")
            insp.cascade(img, res), det(img)  # warm-up: sessions, batch sizing
            casc, full = [], []
            for _ in range(args.rounds):  # interleaved rounds
                t = time.perf_counter()
                r = insp.cascade(img, res)
                casc.append(time.perf_counter() - t)
                t = time.perf_counter()
                every = det(img)
                full.append(time.perf_counter() - t)
            named = [g.box for g in r.regions if g.label == label]
            # recall: planted marks named by a region (cascade) / detected (every tile)
            rc = (covered(named, squares) & detected(r.detections, squares)).mean()
            rf = detected(every, squares).mean()
            found = covered([g.box for g in r.regions], defects).mean()
            if args.detector == "ocr":  # what the real detector says about the dark defects
                found_txt = covered(named, defects).mean()
                print(f"<!-- {name} tile {tile}: defects the detector calls text: "
                      f"{found_txt:.2f}; detections: cascade {len(r.detections)}, every tile "
                      f"{len(every)} -->")
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
