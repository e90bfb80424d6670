"""INT8 models from ``fissure.quantize``: speed, peak memory and accuracy against float.

Three real models:

* PP-OCRv4 det (DBNet, rapidocr-onnxruntime) on 1280x1280 rendered text pages, 640-px tiles
  (overlap 0.2), preprocessing as rapidocr (BGR, (x/255 - 0.5)/0.5), probability-map decoder
  (mask_threshold 0.3, conf 0.5);
* YOLOv8n (nudenet's 320n.onnx, an Ultralytics export) on 640x640 canvases holding copies of
  skimage's astronaut photo (faces), 320-px tiles, the model's own settings, conf 0.2;
* the bundled PatchCore backbone (EfficientNet-Lite0, feat8 + feat16) on ELPV solar cells,
  as ``bench_elpv.py``'s recommended setting runs it (the whole 300x300 cell resized to 224).

For each: ``quantize_model`` builds an ONNX Runtime INT8 model (QDQ, per-channel) and an
OpenVINO INT8 IR (NNCF) from tiles of the calibration images and reports recall / precision
of the INT8 detections against the float model's on the held-out images' tiles (IoU 0.5), or
for the backbone the patch-embedding cosine similarity; for the backbone the image AUROC of
PatchCore on ELPV (mono and poly, ``bench_elpv.py``'s protocol and recommended setting) with
the float and both INT8 backbones.

Speed: tiles per second of the model alone on one preprocessed tile (batch 1, the
runtime's default threads = both cores), for ONNX Runtime f32 / INT8 and OpenVINO f32 /
default precision (bf16 where the CPU has it, else f32) / INT8; rounds interleaved (each
round runs every variant ``--tiles`` times, the order rotating), medians over rounds.
Peak memory: a fresh process per variant loads the model and runs 5 tiles; the figure is
its VmHWM minus its VmRSS before loading (the runtime and model, not the interpreter).

    PYTHONPATH=python python benchmarks/bench_quantize.py               # ~12 min on 2 cores
    PYTHONPATH=python python benchmarks/bench_quantize.py --no-elpv     # without the AUROC (~5 min)
    PYTHONPATH=python python benchmarks/bench_quantize.py --write-docs  # ... into docs/benchmarks.md

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _machine import platform_line, status_kb, trim_heap, write_marked_block  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("ort-f32", "ort-int8", "ov-f32", "ov-default", "ov-int8")


# ---------------------------------------------------------------------------- data


def ocr_model() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"


def yolo_model() -> Path:
    import nudenet

    return Path(nudenet.__file__).parent / "320n.onnx"


def ocr_pages(n: int) -> list[np.ndarray]:
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from test_detect_real import render_page

    return [render_page(1280, 1280, 150, seed=100 + s, textured=True)[0] for s in range(n)]


def face_canvases(n: int) -> list[np.ndarray]:
    import cv2
    import skimage.data

    src = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    out = []
    for s in range(n):
        rng = np.random.default_rng(200 + s)
        canvas = rng.integers(90, 140, (640, 640, 3), dtype=np.uint8)
        for _ in range(3):
            k = float(rng.uniform(0.35, 0.6))
            a = cv2.resize(src, None, fx=k, fy=k)
            y, x = int(rng.integers(0, 640 - a.shape[0])), int(rng.integers(0, 640 - a.shape[1]))
            canvas[y:y + a.shape[0], x:x + a.shape[1]] = a
        out.append(canvas)
    return out


def elpv_cells(n: int) -> list[np.ndarray]:
    """Training cells of both types (``bench_elpv.py``'s split), as BGR."""
    import bench_elpv

    ds = bench_elpv.elpv_index()
    idx: list[int] = []
    for t in bench_elpv.TYPES:
        train, _, _ = bench_elpv.split(ds, t)
        idx += list(train[: n // 2])
    return [np.repeat(c[:, :, None], 3, axis=2) for c in ds.load(idx)]


CASES: dict[str, dict[str, Any]] = {
    "ppocr": dict(model=ocr_model, images=lambda: ocr_pages(6), input=(640, 640), kw=dict(
        tile_size=640, overlap_ratio=0.2, decoder="probability_map",
        decoder_options={"mask_threshold": 0.3}, conf_threshold=0.5, holdout=0.34,
        preprocess={"mode": "none", "rgb": False, "mean": (0.5,) * 3, "std": (0.5,) * 3})),
    "yolov8n": dict(model=yolo_model, images=lambda: face_canvases(16), input=(320, 320), kw=dict(
        tile_size=320, overlap_ratio=0.0, conf_threshold=0.2, holdout=0.25)),
    "backbone": dict(model=lambda: __import__("fissure.models", fromlist=["x"]).default_backbone(),
                     images=lambda: elpv_cells(80), input=(224, 224), kw=dict(
                         tile_size=300, overlap_ratio=0.0, preprocess={"input_size": 224},
                         holdout=0.2)),
}


# ---------------------------------------------------------------------------- speed


def open_variant(variant: str, f32: Path, int8: dict[str, Path]) -> Any:
    from fissure.backends import open_model

    if variant == "ort-f32":
        return open_model(str(f32), "onnxruntime", "cpu")
    if variant == "ort-int8":
        return open_model(str(int8["onnxruntime"]), "onnxruntime", "cpu")
    if variant == "ov-f32":
        return open_model(str(f32), "openvino", "cpu", precision="f32")
    if variant == "ov-default":
        return open_model(str(f32), "openvino", "cpu")
    return open_model(str(int8["openvino"]), "openvino", "cpu")


def one_input(model: Any, size: tuple[int, int]) -> dict[str, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32) * 0.5
    return {model.spec.inputs[0].name: x}


def speed(f32: Path, int8: dict[str, Path], size: tuple[int, int], rounds: int,
          tiles: int) -> dict[str, dict[str, float]]:
    models = {v: open_variant(v, f32, int8) for v in VARIANTS}
    feeds = {v: one_input(m, size) for v, m in models.items()}
    for v, m in models.items():  # warm-up
        m.run(feeds[v])
    per: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        for v in order:
            t = time.perf_counter()
            for _ in range(tiles):
                models[v].run(feeds[v])
            per[v].append((time.perf_counter() - t) / tiles)
    out = {}
    for v, m in models.items():
        prec = {"ort-int8": "int8 (QDQ)", "ov-int8": "int8 (NNCF)"}.get(v) or getattr(
            m, "inference_precision", None) or "f32"
        out[v] = {"tiles_s": 1.0 / statistics.median(per[v]), "ms": 1000 * statistics.median(
            per[v]), "spread": (max(per[v]) - min(per[v])) / statistics.median(per[v]),
            "precision": str(prec)}
        m.close()
    return out


def child_peak(variant: str, f32: str, int8_json: str, h: int, w: int) -> None:
    """In a fresh process: load one variant, run 5 tiles, print the peak RSS growth."""
    trim_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = status_kb("VmRSS")
    m = open_variant(variant, Path(f32), {k: Path(v) for k, v in json.loads(int8_json).items()})
    feed = one_input(m, (h, w))
    for _ in range(5):
        m.run(feed)
    print(json.dumps({"peak_mb": (status_kb("VmHWM") - before) / 1024}))


def peak(variant: str, f32: Path, int8: dict[str, Path], size: tuple[int, int]) -> float:
    r = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(f32),
         json.dumps({k: str(v) for k, v in int8.items()}), str(size[0]), str(size[1])],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "python")})
    return float(json.loads(r.stdout.strip().splitlines()[-1])["peak_mb"])


# ---------------------------------------------------------------------------- ELPV


def elpv_auroc(int8: dict[str, Path]) -> list[dict[str, Any]]:
    """bench_elpv's recommended setting with the float and both INT8 backbones."""
    import bench_elpv
    from fissure import models
    from fissure.anomaly import PatchCore, auroc

    norm = models.backbone_manifest()["input"]
    s = bench_elpv.RECOMMENDED
    ds = bench_elpv.elpv_index()
    rows = []
    for t in bench_elpv.TYPES:
        train, test, labels = bench_elpv.split(ds, t, train_frac=s.train_frac, seed=s.split_seed)
        train_imgs, test_imgs = ds.load(train), ds.load(test)
        for name, path, backend in (("f32", None, "openvino"),
                                    ("ort-int8", int8["onnxruntime"], "onnxruntime"),
                                    ("ov-int8", int8["openvino"], "openvino")):
            pc = PatchCore(None if path is None else str(path), tile_size=None,
                           input_size=s.input_size, coreset_ratio=s.ratio(len(train)),
                           holdout=s.holdout, seed=s.seed, backend=backend,
                           precision="f32" if path is None else None)
            if path is not None:  # PatchCore takes a custom backbone as ImageNet-normalised:
                # give it the bundled backbone's normalisation (its manifest)
                pc.scale, pc.rgb = float(norm["scale"]), True
                pc.mean = tuple(float(v) for v in norm["mean"])
                pc.std = tuple(float(v) for v in norm["std"])
            t0 = time.perf_counter()
            pc.fit(train_imgs)
            fit_s = time.perf_counter() - t0
            scores, times = [], []
            for img in test_imgs:
                t1 = time.perf_counter()
                scores.append(pc.predict(img).score)
                times.append(time.perf_counter() - t1)
            rows.append({"type": t, "backbone": name, "auroc": auroc(np.asarray(scores), labels),
                         "fit_s": fit_s, "predict_ms": 1000 * statistics.median(times)})
            print(f"  ELPV {t} {name}: AUROC {rows[-1]['auroc']:.4f}, fit {fit_s:.1f} s, "
                  f"predict {rows[-1]['predict_ms']:.1f} ms", flush=True)
    return rows


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--tiles", type=int, default=4, help="tiles per variant per round")
    ap.add_argument("--no-elpv", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--child", nargs=5, metavar=("VARIANT", "F32", "INT8", "H", "W"))
    a = ap.parse_args()
    if a.child:
        v, f32, i8, h, w = a.child
        child_peak(v, f32, i8, int(h), int(w))
        return
    from fissure.quantize import AccuracyGateError, quantize_model

    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="fissure-bench-quantize-"))
    results: dict[str, Any] = {}
    for name in a.cases.split(","):
        case = CASES[name]
        f32 = Path(case["model"]())
        images = case["images"]()
        int8: dict[str, Path] = {}
        reports = {}
        for backend, suffix in (("onnxruntime", ".onnx"), ("openvino", ".xml")):
            out = work / f"{name}_int8{suffix}"
            try:
                r = quantize_model(f32, images, out, backend=backend, min_recall=0.0,
                                   min_cosine=0.0, **case["kw"])
            except AccuracyGateError as exc:  # min 0 gates: only "nothing to check"
                r = exc.report
            reports[backend] = r
            int8[backend] = out
            print("\n".join(r.lines()), flush=True)
        sp = speed(f32, int8, case["input"], a.rounds, a.tiles)
        pk = {v: peak(v, f32, int8, case["input"]) for v in VARIANTS}
        for v in VARIANTS:
            print(f"  {name} {v}: {sp[v]['tiles_s']:.2f} tiles/s ({sp[v]['ms']:.1f} ms, "
                  f"{sp[v]['precision']}), peak {pk[v]:.0f} MB", flush=True)
        results[name] = {"reports": {k: r.to_dict() for k, r in reports.items()},
                         "speed": sp, "peak_mb": pk,
                         "size_mb": {"f32": f32.stat().st_size / 2**20,
                                     "ort-int8": int8["onnxruntime"].stat().st_size / 2**20,
                                     "ov-int8": (int8["openvino"].with_suffix(".bin")
                                                 .stat().st_size / 2**20)}}
        if name == "backbone" and not a.no_elpv:
            results[name]["elpv"] = elpv_auroc(int8)
    results["minutes"] = (time.perf_counter() - t_all) / 60
    results["load"] = os.getloadavg()[0]
    text = tables(results, a)
    print(text)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    with open(ROOT / "benchmarks" / "results" / "quantize.json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    if a.write_docs:
        write_marked_block(str(ROOT / "docs" / "benchmarks.md"), "QUANTIZE", text,
                           "## INT8 quantization (fissure quantize)")


def tables(results: dict[str, Any], a: argparse.Namespace) -> str:
    lines = [f"Command: `PYTHONPATH=python python benchmarks/bench_quantize.py` (took "
             f"{results['minutes']:.1f} min; {a.rounds} interleaved rounds x {a.tiles} tiles "
             f"per variant, medians). {platform_line('onnxruntime', 'openvino', 'nncf')}; "
             f"1-minute load average at the end {results['load']:.1f} (a shared machine: "
             "other jobs ran at the same time).", "",
             "Speed (model only, batch 1, both cores) and peak memory (fresh process: model "
             "load + 5 tiles):", "",
             "| model | tile input | variant | precision run | tiles/s | ms/tile | vs ORT f32 "
             "| round spread | peak MB | file MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        if not isinstance(res, dict) or "speed" not in res:
            continue
        size = CASES[name]["input"]
        base = res["speed"]["ort-f32"]["tiles_s"]
        files = {"ort-f32": res["size_mb"]["f32"], "ov-f32": res["size_mb"]["f32"],
                 "ov-default": res["size_mb"]["f32"], "ort-int8": res["size_mb"]["ort-int8"],
                 "ov-int8": res["size_mb"]["ov-int8"]}
        for v in VARIANTS:
            s = res["speed"][v]
            lines.append(f"| {name} | {size[0]}x{size[1]} | {v} | {s['precision']} | "
                         f"{s['tiles_s']:.2f} | {s['ms']:.1f} | {s['tiles_s'] / base:.2f}x | "
                         f"{100 * s['spread']:.0f}% | {res['peak_mb'][v]:.0f} | "
                         f"{files[v]:.1f} |")
    lines += ["", "Accuracy of the INT8 model against the float model on the held-out images' "
              "tiles (`quantize_model`'s report):", "",
              "| model | backend | calibration tiles | held-out tiles | recall | precision | "
              "matched / float / INT8 | embedding cosine (mean, min) | quantize s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        if not isinstance(res, dict) or "reports" not in res:
            continue
        for backend, r in res["reports"].items():
            if r["task"] == "detect":
                acc = (f"{r['recall']:.3f} | {r['precision']:.3f} | {r['matched']} / "
                       f"{r['float_detections']} / {r['int8_detections']} | - ")
            else:
                acc = f"- | - | - | {r['cosine']:.4f}, {r['min_cosine_patch']:.4f} "
            lines.append(f"| {name} | {backend} | {r['calibration_tiles']} | "
                         f"{r['holdout_tiles']} | {acc}| {r['seconds'].get('quantize', 0):.0f} |")
    elpv = results.get("backbone", {}).get("elpv") if isinstance(results.get("backbone"),
                                                                 dict) else None
    if elpv:
        lines += ["", "PatchCore image AUROC on ELPV (`bench_elpv.py`'s protocol and recommended "
                  "setting: input 224, coreset 0.04, anomalib b=9), float vs INT8 backbone:", "",
                  "| cell type | backbone | AUROC | fit s | predict ms |", "|---|---|---|---|---|"]
        for r in elpv:
            lines.append(f"| {r['type']} | {r['backbone']} | {r['auroc']:.4f} | {r['fit_s']:.1f} "
                         f"| {r['predict_ms']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
