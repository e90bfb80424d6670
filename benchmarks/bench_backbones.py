"""The bundled PatchCore backbones side by side: file size, time of one 224x224 tile with ONNX
Runtime and OpenVINO (f32, 2 threads, rounds interleaved across the models), and each
process's peak RSS after loading the model and running it (a fresh process per model and
runtime).

    PYTHONPATH=python python benchmarks/bench_backbones.py [--rounds 30]
    PYTHONPATH=python python benchmarks/bench_backbones.py --elpv-predict

``--elpv-predict``: PatchCore.predict on ELPV poly cells (300 px, input_size 224) with each
bundled backbone, banks of the same size as the recommended settings' (13,861 rows: fitted on
150 training cells at the ratio that gives it), 2 threads, 15 rounds of 4 cells interleaved
across the backbones; medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python",
                      "fissure", "models")
NAMES = ("lite0", "lite1", "lite2")


def path(name: str) -> str:
    return os.path.join(MODELS, f"efficientnet_{name}_s8s16.onnx")


def session(name: str, runtime: str):
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        s = ort.InferenceSession(path(name), so, providers=["CPUExecutionProvider"])
        return lambda: s.run(None, {"images": x})
    import openvino as ov

    core = ov.Core()
    c = core.compile_model(core.read_model(path(name)), "CPU",
                           {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})
    return lambda: c({"images": x})


def peak_rss(name: str, runtime: str) -> float:
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import bench_backbones as b; f = b.session({name!r}, {runtime!r}); "
            "[f() for _ in range(5)]; "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def elpv_predict(rounds: int = 15) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_elpv import elpv_index, split

    from fissure.anomaly import PatchCore

    ds = elpv_index()
    train, test, _ = split(ds, "poly")
    tr, te = ds.load(train[:150]), ds.load(test[:4])
    in_bank = 150 - 150 // 5
    pcs = {n: PatchCore(n, tile_size=None, input_size=224, num_threads=2,
                        coreset_ratio=13861.5 / (in_bank * 28 * 28)).fit(tr)
           for n in ("lite0", "lite2")}
    t: dict = {n: [] for n in pcs}
    for _ in range(rounds):
        for n, pc in pcs.items():
            for img in te:
                s = time.perf_counter()
                pc.predict(img)
                t[n].append(time.perf_counter() - s)
    m = {n: 1000 * statistics.median(v) for n, v in t.items()}
    for n, pc in pcs.items():
        print(f"{n}: bank {pc.bank.shape}, predict median {m[n]:.1f} ms")
    print(f"lite2 / lite0: {m['lite2'] / m['lite0']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--elpv-predict", action="store_true")
    a = ap.parse_args()
    if a.elpv_predict:
        elpv_predict()
        return
    names = [n for n in NAMES if os.path.exists(path(n))]
    runs = {(n, r): session(n, r) for n in names for r in ("onnxruntime", "openvino")}
    for f in runs.values():
        f(), f()
    times: dict = {k: [] for k in runs}
    for _ in range(a.rounds):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    rows = []
    for n in names:
        rows.append({"backbone": n, "mb": os.path.getsize(path(n)) / 1e6,
                     **{f"{r}_ms": 1000 * statistics.median(times[(n, r)])
                        for r in ("onnxruntime", "openvino")},
                     **{f"{r}_rss_mb": peak_rss(n, r) for r in ("onnxruntime", "openvino")}})
    print("| backbone | file MB | ORT ms / 224² tile | OpenVINO ms / 224² tile | peak RSS MB "
          "(ORT / OpenVINO) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['mb']:.1f} | {r['onnxruntime_ms']:.1f} | "
              f"{r['openvino_ms']:.1f} | {r['onnxruntime_rss_mb']:.0f} / "
              f"{r['openvino_rss_mb']:.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
