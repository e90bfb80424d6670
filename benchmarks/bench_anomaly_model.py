"""An anomalib EfficientAD-S export run tiled on a 12 MP image: wall time and peak RSS.

Model: ``efficientad_s/model.onnx`` (+ ``model.onnx.data``, ~32 MB) written by
``models/build_anomalib.py`` into its cache (default ``~/.cache/fissure/anomalib``; or
``FISSURE_BENCH_ANOMALIB=/path/to/model.onnx``): anomalib 2.7's own ``to_onnx`` of an
EfficientAd(model_size="small") with random weights (the real graph: PDN teacher and student,
autoencoder, quantile map normalisation, PostProcessor min-max normalisation and thresholds;
dynamic input, resized inside to 256 x 256). Image: a 4000 x 3000 synthetic texture with a
few dark blobs. Tiles: the model's size (256), overlap 0.25 (336 tiles), batch 1 (fissure's
CPU default).

Each (backend) runs in its own fresh process: build the image, open the model, warm up on a
512 x 512 crop, trim the heap, reset the kernel's peak-RSS counter, then time one
``AnomalyModel.predict``. ``peak RSS`` is the process's ``VmHWM`` over that call (model,
image, stitched map and all); ``call peak`` is ``VmHWM - VmRSS`` before the call (the method
of _peak.py).

    PYTHONPATH=python python benchmarks/bench_anomaly_model.py              # table
    PYTHONPATH=python python benchmarks/bench_anomaly_model.py --quick      # 2 MP smoke test
    PYTHONPATH=python python -m pytest -c benchmarks/pytest.ini benchmarks/bench_anomaly_model.py

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _machine import platform_line, status_kb, trim_heap  # noqa: E402

CACHE = Path.home() / ".cache" / "fissure" / "anomalib" / "efficientad_s" / "model.onnx"


def model_path() -> Path:
    return Path(os.environ.get("FISSURE_BENCH_ANOMALIB", str(CACHE)))


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth texture with sensor noise and a few dark blobs (BGR uint8), built in strips
    so that building it never holds more than the image and one strip of temporaries."""
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.uint8)
    x = np.arange(w, dtype=np.float32)[None, :]
    for y0 in range(0, h, 500):
        y = np.arange(y0, min(h, y0 + 500), dtype=np.float32)[:, None]
        for c, (a, f) in enumerate(((30, 5.0), (25, 6.0), (20, 9.0))):
            v = 120 + a * np.sin(x / f + c) * np.cos(y / (f + 2)) + rng.normal(0, 4, (len(y), w))
            out[y0:y0 + len(y), :, c] = np.clip(v, 0, 255)
    for _ in range(8):
        cy, cx = int(rng.integers(50, h - 50)), int(rng.integers(50, w - 50))
        out[cy - 12:cy + 12, cx - 12:cx + 12] = 20
    return out


def run_one(backend: str, h: int, w: int, threads: int) -> dict:
    """One measurement in this process (called in a fresh interpreter by main)."""
    from fissure import AnomalyModel

    img = image(h, w)
    t0 = time.perf_counter()
    am = AnomalyModel(model_path(), backend=backend, device="cpu", num_threads=threads)
    open_s = time.perf_counter() - t0
    am.predict(img[:512, :512])  # warm-up
    trim_heap()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kb("VmRSS")
    t0 = time.perf_counter()
    res = am.predict(img)
    seconds = time.perf_counter() - t0
    peak = status_kb("VmHWM")
    return {"backend": backend, "image": f"{w}x{h}", "tiles": int(len(am.tiles(h, w))),
            "tile": list(am.tile_size), "open_s": open_s, "predict_s": seconds,
            "peak_rss_mb": peak / 1024.0, "call_peak_mb": (peak - before) / 1024.0,
            "regions": int(len(res.boxes)), "score": float(res.score)}


def measure(backend: str, h: int, w: int, threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "python"), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, __file__, "--one", backend, "--size", f"{h}x{w}",
                        "--threads", str(threads)], capture_output=True, text=True, env=env,
                       check=False)
    if p.returncode != 0:
        return {"backend": backend, "error": p.stderr.strip().splitlines()[-1:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_efficientad_12mp(benchmark) -> None:  # noqa: ANN001
    import pytest

    if not model_path().is_file():
        pytest.skip(f"no EfficientAD export at {model_path()} (run models/build_anomalib.py)")
    from fissure import AnomalyModel

    img = image(3000, 4000)
    am = AnomalyModel(model_path(), backend="onnxruntime", device="cpu")
    benchmark.group = "anomalib EfficientAD-S 12 MP"
    benchmark.pedantic(am.predict, args=(img,), rounds=1, iterations=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", default="3000x4000", help="HxW (default 3000x4000, 12 MP)")
    ap.add_argument("--quick", action="store_true", help="2 MP, ONNX Runtime only")
    ap.add_argument("--threads", type=int, default=-1)
    ap.add_argument("--backends", default="onnxruntime,openvino")
    args = ap.parse_args()
    h, w = (int(v) for v in ("1200x1600" if args.quick else args.size).split("x"))
    if args.one:
        print(json.dumps(run_one(args.one, h, w, args.threads)))
        return 0
    if not model_path().is_file():
        print(f"no EfficientAD export at {model_path()}: run models/build_anomalib.py",
              file=sys.stderr)
        return 2
    print(platform_line("onnxruntime", "openvino"))
    print("| backend | image | tiles | open s | predict s | peak RSS MB | call peak MB |")
    print("|---|---|---|---|---|---|---|")
    for b in (["onnxruntime"] if args.quick else args.backends.split(",")):
        r = measure(b, h, w, args.threads)
        if "error" in r:
            print(f"| {b} | error: {r['error']} |")
            continue
        print(f"| {b} | {r['image']} | {r['tiles']} | {r['open_s']:.2f} | {r['predict_s']:.1f} "
              f"| {r['peak_rss_mb']:.0f} | {r['call_peak_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
