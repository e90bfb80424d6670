"""The bundled PatchCore backbones side by side: file size, time of one 224x224 tile with ONNX
Runtime and OpenVINO (f32, 2 threads, rounds interleaved across the models), and each
process's peak RSS after loading the model and running it (a fresh process per model and
runtime).

    PYTHONPATH=python python benchmarks/bench_backbones.py [--rounds 30]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
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
