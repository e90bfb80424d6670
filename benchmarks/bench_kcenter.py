"""Greedy k-center coreset selection: fissure.kcenter_greedy (float32 and float16 storage)
against the plain numpy loop over the same projected features (per step: distances to the
new centre, running minimum, argmax: O(N d), memory O(N d)). anomalib's KCenterGreedy is the
same loop in torch (torch.linalg.norm per step); torch is not installed here, so it is not
timed (DESIGN.md records ~12 min for 100k x 1536 at 10% on the reference machine).

pytest-benchmark (small):
    PYTHONPATH=python python -m pytest -c benchmarks/pytest.ini benchmarks/bench_kcenter.py

Table (median of --repeat runs, markdown):
    PYTHONPATH=python python benchmarks/bench_kcenter.py [--rows 20000,100000] [--dims 128]
        [--select 200] [--threads 1,all] [--repeat 3]

``--select`` is the number of points selected per timed run: each step costs the same, so a
full 10% coreset takes (0.1 N / select) times as long; the table also gives ms per step.
Every configuration is checked first: fissure's selection must equal the numpy loop's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import fissure
import numpy as np
import pytest
from _machine import cpu_model
from fissure import _core


def make_features(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Projected-feature-like data: a Gaussian mixture (clusters of patches) in d dims."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d), dtype=np.float32) * 3
    return (centres[rng.integers(0, 64, n)] + rng.standard_normal((n, d), dtype=np.float32))


def numpy_greedy(f: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """The plain loop (numpy's own float32 sum; selected rows excluded as in fissure)."""
    mind = np.full(len(f), np.inf, np.float32)
    sel = [start]
    for _ in range(n - 1):
        c = sel[-1]
        mind[c] = -1.0
        np.minimum(mind, ((f - f[c]) ** 2).sum(axis=1), out=mind)
        sel.append(int(np.argmax(mind)))
    return np.array(sel, np.int64)


def numpy_gemv_greedy(f: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """The fastest plain-numpy loop: |x|^2 - 2 x.c + |c|^2 by one BLAS matrix-vector product
    per step (one read of the matrix). Its rounding differs, so near-ties may select
    differently; the table reports how many of its picks agree."""
    xn = (f.astype(np.float32) ** 2).sum(1)
    mind = np.full(len(f), np.inf, np.float32)
    sel = [start]
    for _ in range(n - 1):
        c = sel[-1]
        mind[c] = -1.0
        d = xn - 2 * (f @ f[c]) + xn[c]
        np.minimum(mind, d, out=mind)
        mind[sel] = -1.0
        sel.append(int(np.argmax(mind)))
    return np.array(sel, np.int64)


def all_threads() -> int:
    return int(_core.hardware_threads())


def platform_line() -> str:
    cpu = cpu_model(platform.processor() or platform.machine())
    info = fissure.info()
    return (f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, fissure {info['version']} "
            f"(SIMD path {_core.knn_simd_level()}, {info['compiler']})")


# ---------------------------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------------------------

_F: dict[tuple[int, int], np.ndarray] = {}


def _features(n: int, d: int) -> np.ndarray:
    if (n, d) not in _F:
        _F[(n, d)] = make_features(n, d)
    return _F[(n, d)]


@pytest.mark.parametrize("rows", [20000, 100000])
@pytest.mark.parametrize("threads", [1, -1], ids=["1thread", "allthreads"])
@pytest.mark.parametrize("impl", ["fissure", "fissure-f16", "numpy"])
def bench_kcenter(benchmark, impl: str, threads: int, rows: int) -> None:
    f = _features(rows, 128)
    n = threads if threads > 0 else all_threads()
    benchmark.group = f"kcenter N={rows} d=128 select=100 threads={n}"
    if impl == "numpy":
        if threads == 1:
            pytest.skip("numpy runs single-threaded: one row")
        fn: Callable[[], object] = lambda: numpy_greedy(f, 100)
    else:
        g = f.astype(np.float16) if impl == "fissure-f16" else f
        fn = lambda: fissure.kcenter_greedy(g, 100, num_threads=n)
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", default="20000,100000", help="feature rows N, comma list")
    ap.add_argument("--dims", default="128", help="projected widths, comma list")
    ap.add_argument("--select", type=int, default=200, help="points selected per timed run")
    ap.add_argument("--threads", default="1,all", help="comma list of counts, 'all' = every core")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per configuration")
    args = ap.parse_args()
    threads = [all_threads() if t == "all" else int(t) for t in args.threads.split(",")]

    print(platform_line())
    print()
    print("| N | d | selected | threads | numpy s | numpy gemv s (agree) | fissure s "
          "| fissure f16 s | numpy / fissure | gemv / fissure | gemv / fissure f16 "
          "| fissure ms/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rows in (int(r) for r in args.rows.split(",")):
        for d in (int(x) for x in args.dims.split(",")):
            f = make_features(rows, d)
            f16 = f.astype(np.float16)
            sel = numpy_greedy(f, args.select)
            if not np.array_equal(sel, fissure.kcenter_greedy(f, args.select)):
                raise SystemExit(f"selection differs from numpy at N={rows} d={d}")
            tn = _median(lambda: numpy_greedy(f, args.select), args.repeat)  # noqa: B023
            tg = _median(lambda: numpy_gemv_greedy(f, args.select), args.repeat)  # noqa: B023
            agree = float((numpy_gemv_greedy(f, args.select) == sel).mean())
            for n in threads:
                t32 = _median(lambda: fissure.kcenter_greedy(f, args.select, num_threads=n),  # noqa: B023
                              args.repeat)
                t16 = _median(lambda: fissure.kcenter_greedy(f16, args.select, num_threads=n),  # noqa: B023
                              args.repeat)
                print(f"| {rows} | {d} | {args.select} | {n} | {tn:.3f} | {tg:.3f} ({agree:.0%}) | "
                      f"{t32:.3f} | {t16:.3f} | {tn / t32:.1f}x | {tg / t32:.1f}x | "
                      f"{tg / t16:.1f}x | {1e3 * t32 / args.select:.3f} |", flush=True)


if __name__ == "__main__":
    main()
