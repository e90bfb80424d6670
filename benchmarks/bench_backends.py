"""Inference backends: ONNX Runtime against OpenVINO (f32, and OpenVINO's bf16) on the real
PP-OCRv4 det model (DBNet, dynamic input) at 640x640, batch 1 and 4, with 1 and 2 threads.

pytest-benchmark:
    PYTHONPATH=python python -m pytest benchmarks/bench_backends.py --benchmark-only

Table (markdown; min and median of --repeat interleaved runs per configuration):
    PYTHONPATH=python python benchmarks/bench_backends.py [--batches 1,4] [--threads 1,2]
        [--repeat 7] [--no-async]

Needs onnxruntime, openvino, and the model from ``pip install --no-deps rapidocr-onnxruntime``
(or FISSURE_BENCH_MODEL=/path/to/model.onnx). The input is a rendered text page normalised as
PP-OCR does; every configuration is first checked against ONNX Runtime f32 (max abs difference
of the probability map is printed, not asserted). The async section times 8 single-tile
batches through ``run`` one after another and through ``run_async`` (overlapped). Measured,
never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest

from fissure.backends import open_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import platform_line  # noqa: E402

CONFIGS = [("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16")]


def model_path() -> Path:
    env = os.environ.get("FISSURE_BENCH_MODEL")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "PP-OCRv4 det not found: pip install --no-deps rapidocr-onnxruntime "
            "(or set FISSURE_BENCH_MODEL)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models/ch_PP-OCRv4_det_infer.onnx"


def make_batch(n: int, size: int = 640) -> np.ndarray:
    """n rendered text pages (white, black text), normalised as PP-OCR det: (x/255-0.5)/0.5."""
    import cv2

    pages = []
    for k in range(n):
        img = np.full((size, size, 3), 255, np.uint8)
        for i in range(6):
            cv2.putText(img, f"tile {k} line {i}: fissure 0123456789", (20, 60 + 95 * i),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.9 + 0.1 * i, (0, 0, 0), 2, cv2.LINE_AA)
        pages.append(img)
    x = (np.stack(pages).astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _open(backend: str, precision: str, threads: int, **kw):  # type: ignore[no-untyped-def]
    return open_model(model_path(), backend, "cpu", num_threads=threads,
                      precision=precision if backend == "openvino" else None, **kw)


# ------------------------------------------------------------------------- pytest-benchmark


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("backend,precision", CONFIGS)
def bench_run(benchmark, backend: str, precision: str,  # type: ignore[no-untyped-def]
             batch: int, threads: int) -> None:
    pytest.importorskip(backend)
    try:
        model_path().stat()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    x = make_batch(batch)
    with _open(backend, precision, threads) as m:
        m.run(x)  # warm-up: OpenVINO compiles dynamic shapes on first use
        benchmark.extra_info.update(backend=backend, precision=precision, device=m.device)
        benchmark(m.run, x)


# ------------------------------------------------------------------------------ table


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-async", action="store_true")
    a = ap.parse_args()
    batches = [int(b) for b in a.batches.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    print(f"PP-OCRv4 det, 640x640, CPU. {platform_line('onnxruntime', 'openvino')}")
    print(f"model: {model_path()}\n")
    print("| batch | threads | backend | precision | min ms | median ms | ms / tile "
          "| vs ORT f32 (median) | prob-map diff vs ORT f32: max / mean |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for b in batches:
        x = make_batch(b)
        for t in threads:
            models = {c: _open(c[0], c[1], t) for c in CONFIGS}
            ref = None
            diffs: Dict[Tuple[str, str], Tuple[float, float]] = {}
            for c, m in models.items():  # warm-up and agreement check
                out = next(iter(m.run(x).values()))
                ref = out if ref is None else ref
                d = np.abs(out - ref)
                diffs[c] = (float(d.max()), float(d.mean()))
            times: Dict[Tuple[str, str], List[float]] = {c: [] for c in models}
            for _ in range(a.repeat):  # interleaved, so background load hits all alike
                for c, m in models.items():
                    times[c].append(_time(lambda m=m: m.run(x)))
            base = statistics.median(times[CONFIGS[0]])
            for c, ts in times.items():
                med = statistics.median(ts)
                print(f"| {b} | {t} | {c[0]} | {c[1]} | {min(ts) * 1e3:.1f} | {med * 1e3:.1f} "
                      f"| {med * 1e3 / b:.1f} | {base / med:.2f}x "
                      f"| {diffs[c][0]:.1e} / {diffs[c][1]:.1e} |")
            for m in models.values():
                m.close()
    if a.no_async:
        return
    print("\nOverlap: 8 single-tile batches, run() one after another vs run_async() "
          "(default depth), f32; median of 3\n")
    print("| backend | sequential ms | run_async ms | speed-up |")
    print("|---|---:|---:|---:|")
    xs = [make_batch(1) for _ in range(8)]
    runs = [("onnxruntime", 2, {}), ("onnxruntime", 1, {"async_workers": 2}),
            ("openvino", 2, {}), ("openvino", 2, {"hint": "throughput"})]
    for backend, t, kw in runs:
        with _open(backend, "f32", t, **kw) as m:
            m.run(xs[0])
            list(m.run_async(xs[:2]))
            seq = statistics.median(_time(lambda: [m.run(x) for x in xs]) for _ in range(3))
            asy = statistics.median(_time(lambda: list(m.run_async(xs))) for _ in range(3))
            if backend == "openvino":
                label = f"openvino, {m.config['PERFORMANCE_HINT']}, {m.num_requests} request(s)"
            else:
                workers = kw.get("async_workers", 1)
                label = f"onnxruntime, {t} intra-op thread(s), {workers} worker(s)"
            print(f"| {label} | {seq * 1e3:.0f} | {asy * 1e3:.0f} | {seq / asy:.2f}x |")


if __name__ == "__main__":
    main()
