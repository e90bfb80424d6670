"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling): fissure.kcenter_greedy
against the plain loops on the same features, in one run.

Two tables:

``fit``: PatchCore's own fit features: every 3x3-pooled patch embedding of the bundled
EfficientNet-Lite0 backbone on normal cells of the elpv dataset (300 x 300, 1,444 patches each),
stored as float16 the way ``PatchCore.fit`` stores them, 152 dimensions (below the JL width, so
k-center runs on them unprojected, as in ``fit``). Rows: fissure (its default, the pruned
pass), fissure with the pruning off (one plain streaming pass per step: the previous
implementation) and the plain numpy loop. Needs onnxruntime, opencv and elpv-dataset::

    PYTHONPATH=python python benchmarks/bench_kcenter.py fit [--rows 90000]
        [--ratios 0.1,0.01] [--threads 1,2] [--repeat 3] [--numpy-steps 200]

``anomalib``: anomalib's ``KCenterGreedy`` (torch; written out below from its source at HEAD:
``SparseRandomProjection(eps=0.9)``, then per step ``torch.linalg.norm`` of the difference to
the last pick, a running ``torch.minimum``, ``argmax``, ``min_d[idx] = 0``, indices kept as
tensors) against fissure on the SAME projected features, both on the same number of threads
(``torch.set_num_threads``). Features: a seeded Gaussian mixture (64 centres) of 1536-d rows,
projected to the Johnson-Lindenstrauss width. Needs torch (run it from a venv that has torch;
fissure's extension loads there with ``PYTHONPATH=python``)::

    PYTHONPATH=python python benchmarks/bench_kcenter.py anomalib [--rows 100000]
        [--dims 1536] [--ratios 0.1,0.01] [--threads 2] [--steps 300] [--repeat 3]

anomalib's loop costs the same at every step (one pass over all N rows), so it is timed over
its first ``--steps`` steps and extrapolated linearly to the full coreset (the table says so).
The numpy loop of ``fit`` is extrapolated the same way from ``--numpy-steps``. fissure is
always timed over the full selection. Before timing, the selections are compared: fissure's
must equal the plain loop's (fit: the whole selection; anomalib: the timed prefix).

pytest-benchmark (small, synthetic):
    PYTHONPATH=python python -m pytest -c benchmarks/pytest.ini benchmarks/bench_kcenter.py
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from typing import Callable

import fissure
import numpy as np
from fissure import _core

from _machine import platform_line

try:
    import pytest
except ImportError:  # pragma: no cover - the torch venv has no pytest
    pytest = None  # type: ignore[assignment]


def make_features(n: int, d: int, seed: int = 0) -> np.ndarray:
    """A Gaussian mixture (64 centres at scale 3, unit noise) in d dimensions, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d), dtype=np.float32) * 3
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 8192):  # bounded temporaries at 1536 dims
        m = min(8192, n - s)
        out[s:s + m] = centres[rng.integers(0, 64, m)] + rng.standard_normal((m, d),
                                                                            dtype=np.float32)
    return out


def patchcore_fit_features(rows: int) -> np.ndarray:
    """(rows, 152) float16: PatchCore.fit's training embeddings of normal elpv cells."""
    import cv2
    import elpv_dataset
    from fissure.anomaly.patchcore import PatchCore

    root = os.path.join(os.path.dirname(elpv_dataset.__file__), "data")
    lab = np.genfromtxt(os.path.join(root, "labels.csv"), dtype=["|S19", "<f8", "|S4"],
                        names=["path", "p", "t"])
    paths = [os.path.join(root, p.decode()) for p, pr in zip(lab["path"], lab["p"]) if pr == 0]
    pc = PatchCore(tile_size=None)
    out: list[np.ndarray] = []
    total = 0
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        for _, emb in pc._embed_tiles(pc._prepare(img), pc._tiles(*img.shape[:2])):
            r = emb.reshape(-1, emb.shape[-1]).astype(np.float16)
            out.append(r)
            total += len(r)
        if total >= rows:
            break
    return np.concatenate(out)[:rows]


def numpy_greedy(f: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """The plain loop (numpy's float32 sum; selected rows excluded as in fissure)."""
    f = np.asarray(f, np.float32)
    mind = np.full(len(f), np.inf, np.float32)
    sel = [start]
    for _ in range(n - 1):
        c = sel[-1]
        mind[c] = -1.0
        np.minimum(mind, ((f - f[c]) ** 2).sum(axis=1), out=mind)
        sel.append(int(np.argmax(mind)))
    return np.array(sel, np.int64)


# ---------------------------------------------------------------------------------------------
# anomalib's KCenterGreedy, in torch (src/anomalib/models/components/sampling/k_center_greedy.py
# and components/dimensionality_reduction/random_projection.py at HEAD; peers.md 3.3)
# ---------------------------------------------------------------------------------------------


def anomalib_projection_matrix(d: int, n_rows: int, eps: float = 0.9, seed: int = 0):
    """anomalib's SparseRandomProjection.fit: JL width, density 1/sqrt(d), per output row a
    Binomial(d, density) count of columns drawn without replacement, entries +-1, the whole
    scaled by sqrt(1/density)/sqrt(width); stored dense as a torch tensor."""
    import torch

    width = int(4 * math.log(n_rows) / (eps**2 / 2 - eps**3 / 3))
    density = 1 / math.sqrt(d)
    rng = np.random.default_rng(seed)
    m = np.zeros((width, d), np.float32)
    for r in range(width):
        nnz = rng.binomial(d, density)
        cols = rng.choice(d, nnz, replace=False)
        m[r, cols] = rng.choice([-1.0, 1.0], nnz)
    m *= math.sqrt(1 / density) / math.sqrt(width)
    return torch.from_numpy(m)


def anomalib_select(features, coreset_size: int, start: int, steps: int | None = None) -> list[int]:
    """anomalib's select_coreset_idxs on already projected features (torch float32 (N, d*)),
    with its random start replaced by `start`: the start is the first index (PR #3509),
    distances are torch.linalg.norm (PR #2968), picks stay tensors until the end (PR #3651),
    and min_distances[idx] = 0 after each pick. `steps` stops early (timing prefix)."""
    import torch

    idx = torch.tensor(start)
    selected = [idx]
    min_distances = None
    todo = coreset_size - 1 if steps is None else min(steps, coreset_size - 1)
    for _ in range(todo):
        distances = torch.linalg.norm(features - features[idx], dim=1, keepdim=True)
        if min_distances is None:
            min_distances = distances
        else:
            min_distances = torch.minimum(min_distances, distances)
        idx = torch.argmax(min_distances)
        min_distances[idx] = 0
        selected.append(idx)
    return torch.stack(selected).tolist()


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def all_threads() -> int:
    return int(_core.hardware_threads())


def _median(fn: Callable[[], object], repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, the runs interleaved (A B C A B C ...) so that the
    load of a shared machine falls on all of them alike."""
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def _load() -> str:
    try:
        la = os.getloadavg()
        return f"load average {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f}"
    except OSError:  # pragma: no cover
        return "load average unknown"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def table_fit(args: argparse.Namespace) -> None:
    f = patchcore_fit_features(args.rows)
    N, d = f.shape
    print(f"PatchCore fit features: {N} x {d} float16 (elpv normal cells, bundled backbone)")
    print(platform_line(simd=_core.knn_simd_level()) + "; " + _load())
    print()
    print("| N | d | selected | threads | numpy loop s (extrapolated) | fissure plain pass s "
          "| fissure s | plain / fissure | numpy / fissure | exact distances computed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    # numpy's per-step cost is constant: time a prefix once
    steps = min(args.numpy_steps, N - 1)
    t_np = _median(lambda: numpy_greedy(f, steps + 1), 1) / steps
    for ratio in (float(r) for r in args.ratios.split(",")):
        n = max(1, int(N * ratio))
        ref = fissure.kcenter_greedy(f, n)
        plain, _ = _core._kcenter_greedy_opts(f, n, 0, 1, 0, 0)
        if not np.array_equal(ref, plain):
            raise SystemExit(f"pruned and plain selections differ at ratio {ratio}")
        if not np.array_equal(ref[:steps + 1], numpy_greedy(f, min(n, steps + 1))):
            raise SystemExit(f"selection differs from the numpy loop at ratio {ratio}")
        for th in (all_threads() if t == "all" else int(t) for t in args.threads.split(",")):
            _, st = _core._kcenter_greedy_opts(f, n, 0, th, -1, 0)
            t = _interleaved({
                "fissure": lambda: fissure.kcenter_greedy(f, n, num_threads=th),  # noqa: B023
                "plain": lambda: _core._kcenter_greedy_opts(f, n, 0, th, 0, 0),  # noqa: B023
            }, args.repeat)
            frac = st["rows_computed"] / (max(n - 1, 1) * N)
            tn = t_np * (n - 1)
            print(f"| {N} | {d} | {n} | {th} | {tn:.1f} | {t['plain']:.2f} | {t['fissure']:.3f} "
                  f"| {t['plain'] / t['fissure']:.1f}x | {tn / t['fissure']:.0f}x "
                  f"| {frac:.2%} |", flush=True)


def table_anomalib(args: argparse.Namespace) -> None:
    import torch

    th = all_threads() if args.threads == "all" else int(args.threads)
    torch.set_num_threads(th)
    x = make_features(args.rows, args.dims)
    R = anomalib_projection_matrix(args.dims, args.rows)
    xt = torch.from_numpy(x)
    t0 = time.perf_counter()
    proj_t = xt @ R.T  # anomalib's transform
    t_proj_torch = time.perf_counter() - t0
    proj = proj_t.numpy()
    t0 = time.perf_counter()
    fissure.random_projection(x, proj.shape[1])
    t_proj_fissure = time.perf_counter() - t0
    del xt, x
    N, dp = proj.shape
    print(f"anomalib KCenterGreedy (torch {torch.__version__}) vs fissure.kcenter_greedy on the "
          f"same {N} x {dp} float32 projection of {N} x {args.dims} features "
          f"(Gaussian mixture); {th} threads each")
    print(f"projection: anomalib's torch matmul {t_proj_torch:.2f} s, "
          f"fissure.random_projection {t_proj_fissure:.2f} s (not in the times below)")
    print(platform_line(simd=_core.knn_simd_level()) + "; " + _load())
    print()
    print("| N | d (projected) | ratio | selected | anomalib s | fissure s | anomalib / fissure "
          "| same picks (prefix) | exact distances computed |")
    print("|---|---|---|---|---|---|---|---|---|")
    steps = args.steps
    per_step = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        a_sel = anomalib_select(proj_t, N, 0, steps=steps)
        per_step.append((time.perf_counter() - t0) / steps)
    a_step = statistics.median(per_step)
    for ratio in (float(r) for r in args.ratios.split(",")):
        n = int(N * ratio)
        sel = fissure.kcenter_greedy(proj, n, num_threads=th)
        m = min(len(a_sel), n)
        same = int(np.argmin(np.append(sel[:m] == np.array(a_sel[:m]), False)))
        _, st = _core._kcenter_greedy_opts(proj, n, 0, th, -1, 0)
        tf = _median(lambda: fissure.kcenter_greedy(proj, n, num_threads=th), args.repeat)  # noqa: B023
        ta = a_step * (n - 1)
        frac = st["rows_computed"] / (max(n - 1, 1) * N)
        note = f" (first {steps} steps, x{(n - 1) / steps:.1f})" if steps < n - 1 else ""
        print(f"| {N} | {dp} | {ratio} | {n} | {ta:.1f}{note} | {tf:.2f} | {ta / tf:.0f}x "
              f"| {same} of {m} | {frac:.2%} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="table", required=True)
    a = sub.add_parser("fit", help="PatchCore's fit features (152-d, float16)")
    a.add_argument("--rows", type=int, default=90000)
    a.add_argument("--ratios", default="0.1,0.01")
    a.add_argument("--threads", default="1,all", help="comma list, 'all' = every core")
    a.add_argument("--repeat", type=int, default=3)
    a.add_argument("--numpy-steps", type=int, default=200, help="numpy loop steps timed")
    b = sub.add_parser("anomalib", help="anomalib's KCenterGreedy in torch vs fissure")
    b.add_argument("--rows", type=int, default=100000)
    b.add_argument("--dims", type=int, default=1536)
    b.add_argument("--ratios", default="0.1,0.01")
    b.add_argument("--threads", default="all", help="one count for both, 'all' = every core")
    b.add_argument("--steps", type=int, default=300, help="anomalib steps timed (extrapolated)")
    b.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.table == "fit":
        table_fit(args)
    else:
        table_anomalib(args)


# ---------------------------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------------------------

if pytest is not None:
    _F: dict[tuple[int, int], np.ndarray] = {}

    def _features(n: int, d: int) -> np.ndarray:
        if (n, d) not in _F:
            _F[(n, d)] = make_features(n, d)
        return _F[(n, d)]

    @pytest.mark.parametrize("rows", [20000, 100000])
    @pytest.mark.parametrize("threads", [1, -1], ids=["1thread", "allthreads"])
    @pytest.mark.parametrize("impl", ["fissure", "fissure-f16", "fissure-plain", "numpy"])
    def bench_kcenter(benchmark, impl: str, threads: int, rows: int) -> None:
        f = _features(rows, 128)
        n = threads if threads > 0 else all_threads()
        benchmark.group = f"kcenter N={rows} d=128 select=1000 threads={n}"
        if impl == "numpy":
            if threads == 1:
                pytest.skip("numpy runs single-threaded: one row")
            fn: Callable[[], object] = lambda: numpy_greedy(f, 100)
            benchmark.extra_info["selected"] = 100
        elif impl == "fissure-plain":
            fn = lambda: _core._kcenter_greedy_opts(f, 1000, 0, n, 0, 0)
        else:
            g = f.astype(np.float16) if impl == "fissure-f16" else f
            fn = lambda: fissure.kcenter_greedy(g, 1000, num_threads=n)
        benchmark.pedantic(fn, rounds=3, warmup_rounds=1)


if __name__ == "__main__":
    main()
