"""PatchCore's search core: exact kNN, greedy k-center coreset, sparse random projection.

* :func:`knn_search` mirrors faiss ``IndexFlatL2.search(x, k)``: squared L2 distances
  ascending and int64 ids, ``-1`` / ``FLT_MAX`` where the bank has fewer than ``k`` rows.
  Exact; the bank may be float16 (stored, widened exactly, computed in float32). Distances
  and top-k are fused in C++: no ``nq x nb`` matrix is ever built.
* :func:`kcenter_greedy` is the greedy k-center (farthest point) selection anomalib and the
  original PatchCore use to subsample the memory bank, in memory O(N) besides the features.
  Its float32 arithmetic has one fixed order on every CPU path, so it selects exactly what
  a numpy implementation of the same order selects.
* :func:`random_projection` is the very sparse Johnson-Lindenstrauss projection anomalib
  applies before the greedy selection (its own ``SparseRandomProjection``, eps 0.9).

All three release the GIL in their long calls. See ``docs/patchcore_core.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _core
from .._validate import as_int, check_num_threads, describe

__all__ = [
    "jl_min_dims",
    "kcenter_greedy",
    "knn_search",
    "random_projection",
    "sparse_random_matrix",
]

#: Rows projected per chunk in :func:`random_projection` (bounds the float32 temporaries).
_PROJECT_CHUNK = 1 << 15


def _as_features(a: Any, name: str, *, keep_f16: bool, allow_empty: bool = False) -> np.ndarray:
    """A C-contiguous (n, d) float32 (or float16 when keep_f16) array; float64 is converted."""
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{name}: expected an (n, d) float array, got {describe(a)}")
    arr = np.asarray(a)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name}: expected a float32"
            f"{' or float16' if keep_f16 else ''} array (float64 is converted), "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        hint = "; for a single vector pass x[None, :]" if arr.ndim == 1 else ""
        raise ValueError(f"{name}: expected shape (n, d), got {arr.shape}{hint}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one column, got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one row, got shape {arr.shape}")
    dtype = np.float16 if (keep_f16 and arr.dtype == np.float16) else np.float32
    return np.ascontiguousarray(arr, dtype=dtype)


def knn_search(
    bank: np.ndarray, queries: np.ndarray, k: int = 1, *, num_threads: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest bank rows of each query, exactly, in squared L2.

    Same contract as faiss ``IndexFlatL2(d).add(bank); index.search(queries, k)``.

    Args:
        bank: (nb, d) float32 or float16 memory bank (float16 stays float16 in memory and is
            widened exactly; float64 is converted to float32). At least one row.
        queries: (nq, d) queries, converted to float32. ``nq`` may be 0.
        k: neighbours per query, ``k >= 1``; may exceed ``nb`` (the tail is padded).
        num_threads: -1 for all cores (the core's pool), else a positive count.

    Returns:
        ``(D, I)``: (nq, k) float32 squared distances ascending and (nq, k) int64 bank row
        ids; ties go to the lower id; where ``k > nb`` the tail is ``I = -1`` and
        ``D = FLT_MAX`` (3.4028235e38), as faiss.

    Distances are computed as ``(|q|^2 + |b|^2) - 2 q.b`` in float32 and clamped at 0, which
    is faiss's route for 20 or more queries (BLAS); ids equal faiss's on untied data and
    distances agree to float32 rounding of that expansion. On CPUs with AVX512_BF16, searches
    with enough work per query (``nb * d >= 50_000 * (k + 1)``, ``d >= 8``, ``nq >= 64``,
    ``nb >= 256``) find candidates with a bfloat16 pass whose error is bounded, then return
    the exact top k of the float32 direct-difference distances (a query equal to a bank row
    gets 0); the same ids, 1.2-2x sooner (docs/patchcore_core.md).

    Raises:
        TypeError: non-float arrays or a non-int ``k``.
        ValueError: wrong shapes, an empty bank, mismatched widths, ``k < 1``, NaN or
            infinite values, or values so large that squared norms would overflow float32.
    """
    b = _as_features(bank, "bank", keep_f16=True)
    q = _as_features(queries, "queries", keep_f16=False, allow_empty=True)
    if q.shape[1] != b.shape[1]:
        raise ValueError(
            f"queries: expected {b.shape[1]} columns to match the bank {b.shape}, "
            f"got shape {q.shape}"
        )
    kk = as_int(k, "k", 1)
    threads = check_num_threads(num_threads)
    D, I = _core.knn_search(b, q, kk, threads)
    return D, I


def kcenter_greedy(
    features: np.ndarray, n: int, *, start_index: int = 0, num_threads: int = -1
) -> np.ndarray:
    """Greedy k-center (farthest point) selection of ``n`` rows of ``features``.

    ``min_dist`` (squared L2 to the selected set) starts from row ``start_index``; each step
    selects the row with the largest ``min_dist`` (ties: the lowest index) among the rows not
    yet selected, then lowers ``min_dist`` with the distances to it. The first index is
    ``start_index``. Selected rows are never selected again: when fewer than ``n`` distinct
    rows exist the remaining picks are the lowest-index unselected duplicates.

    The squared distance is computed in float32 in one fixed order on every CPU path
    (``docs/patchcore_core.md``), so the selection equals a numpy implementation of that
    order exactly, and is the same on every machine.

    Args:
        features: (N, d) float32 or float16 features, usually already projected
            (:func:`random_projection`); float64 is converted to float32.
        n: how many to select, ``1 <= n <= N``.
        start_index: the first centre, ``0 <= start_index < N``.
        num_threads: -1 for all cores, else a positive count.

    Returns:
        (n,) int64 row indices in selection order.
    """
    f = _as_features(features, "features", keep_f16=True)
    nn = as_int(n, "n", 1, f.shape[0])
    start = as_int(start_index, "start_index", 0, f.shape[0] - 1)
    threads = check_num_threads(num_threads)
    return _core.kcenter_greedy(f, nn, start, threads)


def jl_min_dims(n_samples: int, eps: float = 0.9) -> int:
    """Johnson-Lindenstrauss target dimension ``int(4 ln N / (eps^2/2 - eps^3/3))``, the
    formula of sklearn's ``johnson_lindenstrauss_min_dim`` and anomalib's projection."""
    n = as_int(n_samples, "n_samples", 1)
    e = float(eps)
    if not (0.0 < e < 1.0):
        raise ValueError(f"eps: expected 0 < eps < 1, got {eps}")
    return int(4 * math.log(n) / (e**2 / 2 - e**3 / 3))


def sparse_random_matrix(
    in_dims: int,
    out_dims: int,
    *,
    seed: int = 0,
    density: float | str = "auto",
) -> np.ndarray:
    """(out_dims, in_dims) float32 very sparse random projection matrix (Li et al.): each
    entry is nonzero with probability ``density`` (``"auto"``: ``1/sqrt(in_dims)``), nonzeros
    are ``+-sqrt(1/density)/sqrt(out_dims)`` with equal odds. Stored dense. Drawn from
    ``numpy.random.default_rng(seed)``: the same distribution as sklearn's and anomalib's
    ``SparseRandomProjection``, not the same draws."""
    din = as_int(in_dims, "in_dims", 1)
    dout = as_int(out_dims, "out_dims", 1)
    if isinstance(density, str):
        if density != "auto":
            raise ValueError(f"density: expected 'auto' or a float in (0, 1], got {density!r}")
        dens = 1.0 / math.sqrt(din)
    else:
        dens = float(density)
        if not (0.0 < dens <= 1.0):
            raise ValueError(f"density: expected a float in (0, 1], got {density}")
    rng = np.random.default_rng(seed)
    nonzero = rng.random((dout, din)) < dens
    sign = np.where(rng.random((dout, din)) < 0.5, -1.0, 1.0)
    scale = math.sqrt(1.0 / dens) / math.sqrt(dout)
    return np.where(nonzero, sign * scale, 0.0).astype(np.float32)


def random_projection(
    features: np.ndarray,
    out_dims: int | None = None,
    *,
    seed: int = 0,
    eps: float = 0.9,
    density: float | str = "auto",
) -> np.ndarray:
    """Project (N, d) features to ``out_dims`` with a very sparse random matrix.

    Args:
        features: (N, d) float features (float16 is widened chunk by chunk).
        out_dims: target width; ``None``: the Johnson-Lindenstrauss dimension for N rows and
            ``eps`` (anomalib: eps 0.9, about ``24.7 ln N``).
        seed: seed of the matrix (:func:`sparse_random_matrix`).
        eps: distortion for the automatic ``out_dims``; ignored when ``out_dims`` is given.
        density: nonzero fraction of the matrix, ``"auto"`` = ``1/sqrt(d)``.

    Returns:
        (N, out_dims) float32 ``features @ R.T``.

    Raises:
        ValueError: the automatic width exceeds ``d`` (raise ``eps`` or give ``out_dims``),
            bad shapes, NaN or infinite values.
    """
    f = np.asarray(features)
    if f.dtype.kind != "f":
        raise TypeError(f"features: expected a float array, got dtype {f.dtype}")
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"features: expected a non-empty (N, d) array, got shape {f.shape}")
    n_rows, d = f.shape
    if out_dims is None:
        dims = jl_min_dims(n_rows, eps)
        if dims > d:
            raise ValueError(
                f"eps={eps} and {n_rows} rows give a Johnson-Lindenstrauss width of {dims}, "
                f"more than the {d} input columns; raise eps or pass out_dims"
            )
    else:
        dims = as_int(out_dims, "out_dims", 1)
    r_t = np.ascontiguousarray(sparse_random_matrix(d, dims, seed=seed, density=density).T)
    out = np.empty((n_rows, dims), np.float32)
    for s in range(0, n_rows, _PROJECT_CHUNK):
        chunk = np.asarray(f[s:s + _PROJECT_CHUNK], dtype=np.float32)
        if not np.isfinite(chunk).all():
            bad = s + int(np.flatnonzero(~np.isfinite(chunk).all(axis=1))[0])
            raise ValueError(f"features: expected finite values, row {bad} has NaN or inf")
        np.matmul(chunk, r_t, out=out[s:s + _PROJECT_CHUNK])
    return out
