"""Exact kNN (PatchCore's memory-bank search): fissure.knn_search against faiss IndexFlatL2
(when installed) and a chunked numpy brute force (anomalib's route since PR #3415: 1024-row
query chunks, |q|^2 - 2 q.b + |b|^2 by matmul, then top-k), on the same inputs.

pytest-benchmark (a small set; FISSURE_BENCH_KNN=full for every size below):
    PYTHONPATH=python python -m pytest -c benchmarks/pytest.ini benchmarks/bench_knn.py

Table (median of --repeat interleaved runs, markdown):
    PYTHONPATH=python python benchmarks/bench_knn.py [--banks 10000,50000] [--dims 1536,152]
        [--queries 784,25000] [--k 1,9] [--threads 1,all] [--repeat 3] [--no-numpy]

The bank is a float32 Gaussian (seeded); a float16 copy of it is timed as a separate column,
and so is fissure with its bfloat16 first pass off (the float32 path alone; on CPUs with AVX512_BF16
the first pass runs where nb * d >= 50,000 * (k + 1), d >= 8, nq >= 64). --repeat-large sets fewer runs for
the largest products (timed without a warm-up run).
Every configuration is checked before it is timed: fissure's ids must equal faiss's (or the
numpy brute force's). numpy's BLAS uses its own thread pool (all cores): its rows are marked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import fissure
import numpy as np
import pytest
from _machine import platform_line
from fissure import _core

try:
    import faiss
except ImportError:  # pragma: no cover
    faiss = None


def make_data(nb: int, nq: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((nb, d), dtype=np.float32)
    q = rng.standard_normal((nq, d), dtype=np.float32)
    return bank, q


def all_threads() -> int:
    return int(_core.hardware_threads())


def fissure_fn(bank: np.ndarray, q: np.ndarray, k: int, threads: int) -> Callable[[], object]:
    return lambda: fissure.knn_search(bank, q, k, num_threads=threads)


def fissure_fp32_fn(bank: np.ndarray, q: np.ndarray, k: int, threads: int) -> Callable[[], object]:
    """fissure with the bfloat16 first pass off: the float32 blocked path alone."""

    def run() -> object:
        prev = _core._knn_force_bf16("off")
        try:
            return fissure.knn_search(bank, q, k, num_threads=threads)
        finally:
            _core._knn_force_bf16(prev)

    return run


def faiss_fn(bank: np.ndarray, q: np.ndarray, k: int, threads: int) -> Callable[[], object]:
    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(bank)

    def run() -> object:
        faiss.omp_set_num_threads(threads)
        return index.search(q, k)

    return run


def numpy_fn(bank: np.ndarray, q: np.ndarray, k: int, chunk: int = 1024) -> Callable[[], object]:
    bn = (bank.astype(np.float32) ** 2).sum(1)

    def run() -> tuple[np.ndarray, np.ndarray]:
        D = np.empty((len(q), k), np.float32)
        I = np.empty((len(q), k), np.int64)
        for s in range(0, len(q), chunk):
            qc = q[s:s + chunk]
            dist = (qc ** 2).sum(1)[:, None] + bn[None, :] - 2 * (qc @ bank.T)
            np.maximum(dist, 0, out=dist)
            part = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < len(bank) else \
                np.argsort(dist, axis=1)[:, :k]
            pd = np.take_along_axis(dist, part, 1)
            order = np.argsort(pd, axis=1, kind="stable")
            I[s:s + chunk] = np.take_along_axis(part, order, 1)
            D[s:s + chunk] = np.take_along_axis(pd, order, 1)
        return D, I

    return run


# ---------------------------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------------------------

QUICK_CASES = [(10000, 784, 152, 1), (10000, 784, 1536, 1), (10000, 784, 1536, 9)]
FULL_CASES = [(nb, nq, d, k) for nb in (10000, 50000) for nq in (784, 25000)
              for d in (1536, 152) for k in (1, 9)]
CASES = FULL_CASES if os.environ.get("FISSURE_BENCH_KNN") == "full" else QUICK_CASES
_DATA: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}


def _data(nb: int, nq: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    if (nb, nq, d) not in _DATA:
        _DATA[(nb, nq, d)] = make_data(nb, nq, d)
    return _DATA[(nb, nq, d)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"nb{c[0]}-nq{c[1]}-d{c[2]}-k{c[3]}")
@pytest.mark.parametrize("threads", [1, -1], ids=["1thread", "allthreads"])
@pytest.mark.parametrize("impl", ["fissure", "fissure-f16", "faiss", "numpy"])
def bench_knn(benchmark, impl: str, threads: int, case: tuple) -> None:
    nb, nq, d, k = case
    bank, q = _data(nb, nq, d)
    n = threads if threads > 0 else all_threads()
    benchmark.group = f"knn nb={nb} nq={nq} d={d} k={k} threads={n}"
    if impl == "faiss":
        if faiss is None:
            pytest.skip("faiss-cpu not installed")
        fn = faiss_fn(bank, q, k, n)
    elif impl == "numpy":
        if threads == 1:
            pytest.skip("numpy's BLAS pool is not set per call")
        fn = numpy_fn(bank, q, k)
    elif impl == "fissure-f16":
        fn = fissure_fn(bank.astype(np.float16), q, k, n)
    else:
        fn = fissure_fn(bank, q, k, n)
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _medians(fns: dict[str, Callable[[], object]], repeat: int,
             warm: bool = True) -> dict[str, float]:
    """Median wall time (s) of each function, interleaved round-robin after one warm-up."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values() if warm else ():
        f()
    for _ in range(repeat):
        for key, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def _cell(v: float | None) -> str:
    return f"{v:.3f}" if v is not None else "-"


def _ratio(v: float | None, ours: float) -> str:
    return f"{v / ours:.2f}x" if v is not None else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--banks", default="10000", help="bank rows, comma list (e.g. 10000,50000)")
    ap.add_argument("--dims", default="152,1536", help="feature widths")
    ap.add_argument("--queries", default="784", help="query counts (e.g. 784,25000)")
    ap.add_argument("--k", default="1,9", help="neighbour counts")
    ap.add_argument("--threads", default="1,all", help="comma list of counts, 'all' = every core")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per configuration")
    ap.add_argument("--no-numpy", action="store_true", help="skip the numpy brute force")
    ap.add_argument("--repeat-large", type=int, default=None,
                    help="timed runs where queries x bank x d > 1e11 (default: --repeat)")
    args = ap.parse_args()
    threads = [all_threads() if t == "all" else int(t) for t in args.threads.split(",")]

    print(platform_line("faiss", simd=_core.knn_simd_level()))
    print()
    print("| bank | queries | d | k | threads | faiss s | numpy s | fissure s | fissure f16 s "
          "| fissure fp32 path s | faiss / fissure | numpy / fissure |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for nb in _ints(args.banks):
        for d in _ints(args.dims):
            for nq in _ints(args.queries):
                bank, q = make_data(nb, nq, d)
                bank16 = bank.astype(np.float16)
                for k in _ints(args.k):
                    for n in threads:
                        fns: dict[str, Callable[[], object]] = {
                            "ours": fissure_fn(bank, q, k, n),
                            "f16": fissure_fn(bank16, q, k, n),
                            "fp32": fissure_fp32_fn(bank, q, k, n),
                        }
                        if faiss is not None:
                            fns["faiss"] = faiss_fn(bank, q, k, n)
                        if not args.no_numpy and n == threads[-1]:
                            fns["numpy"] = numpy_fn(bank, q, k)
                        ref = fns.get("faiss", fns.get("numpy"))
                        if ref is not None:
                            _, Iref = ref()  # type: ignore[misc]
                            _, Iours = fns["ours"]()  # type: ignore[misc]
                            agree = float((Iref == Iours).mean())
                            if agree < 0.999:
                                raise SystemExit(f"ids disagree ({agree:.4f}) at nb={nb} d={d}")
                        large = nq * nb * d > 1e11 and args.repeat_large is not None
                        # (the id check above already ran ours and the reference once)
                        t = _medians(fns, args.repeat_large if large else args.repeat,
                                     warm=not large)
                        tf, tn = t.get("faiss"), t.get("numpy")
                        print(f"| {nb} | {nq} | {d} | {k} | {n} | {_cell(tf)} | "
                              f"{_cell(tn) + (' (BLAS: all)' if tn is not None else '')} | "
                              f"{t['ours']:.3f} | {t['f16']:.3f} | {t['fp32']:.3f} | "
                              f"{_ratio(tf, t['ours'])} | {_ratio(tn, t['ours'])} |", flush=True)


if __name__ == "__main__":
    main()
