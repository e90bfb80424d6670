"""fissure.kcenter_greedy against plain numpy greedy k-center loops (the documented fixed
float32 order: exact equality; numpy's own sum and anomalib's KCenterGreedy semantics on
untied data), and fissure.random_projection against its definition and the
Johnson-Lindenstrauss figures anomalib's projection gives."""

from __future__ import annotations

from collections.abc import Iterator

import fissure
import numpy as np
import pytest
from fissure import _core
from oracles.simd import forced_level, levels
from fissure.anomaly import jl_min_dims, sparse_random_matrix


@pytest.fixture(params=levels("knn"))
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    with forced_level("knn", request.param):
        yield request.param


def sqdist_fixed(f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances in the documented order: 16 lanes summed in sequence, then a tree."""
    n, d = f.shape
    s = (f - c) ** 2
    dp = -(-d // 16) * 16
    s = np.concatenate([s, np.zeros((n, dp - d), np.float32)], axis=1).reshape(n, dp // 16, 16)
    acc = np.zeros((n, 16), np.float32)
    for t in range(dp // 16):
        acc += s[:, t]
    a8 = acc[:, :8] + acc[:, 8:]
    a4 = a8[:, :4] + a8[:, 4:]
    a2 = a4[:, :2] + a4[:, 2:]
    return a2[:, 0] + a2[:, 1]


def greedy_numpy(f: np.ndarray, n: int, start: int, dist=sqdist_fixed) -> np.ndarray:
    """The plain algorithm: min distance to the selected set, argmax (first on ties) over the
    rows not selected yet."""
    f = f.astype(np.float32)
    mind = np.full(len(f), np.inf, np.float32)
    sel = [start]
    for _ in range(n - 1):
        mind[sel[-1]] = -1.0
        np.minimum(mind, dist(f, f[sel[-1]]), out=mind)
        sel.append(int(np.argmax(mind)))
    return np.array(sel, np.int64)


def greedy_anomalib(f: np.ndarray, n: int, start: int) -> np.ndarray:
    """anomalib's KCenterGreedy loop (peers.md 3.3) in numpy: Euclidean distances,
    mind[idx] = 0 after each pick, argmax, the start point included."""
    f = f.astype(np.float32)
    idx = start
    sel = [idx]
    mind = None
    for _ in range(n - 1):
        d = np.linalg.norm(f - f[idx], axis=1)
        mind = d if mind is None else np.minimum(mind, d)
        idx = int(np.argmax(mind))
        mind[idx] = 0
        sel.append(idx)
    return np.array(sel, np.int64)


@pytest.mark.parametrize(("N", "d", "n", "start"),
                         [(2000, 128, 150, 0), (1500, 37, 100, 11), (400, 5, 400, 399),
                          (600, 16, 60, 3), (300, 1, 40, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_matches_numpy_fixed_order(simd: str, rng: np.random.Generator, N: int, d: int, n: int,
                                   start: int, dtype: type) -> None:
    f = rng.standard_normal((N, d)).astype(dtype)
    got = fissure.kcenter_greedy(f, n, start_index=start)
    assert got.dtype == np.int64 and got.shape == (n,)
    np.testing.assert_array_equal(got, greedy_numpy(f, n, start))
    assert len(set(got.tolist())) == n


def test_matches_numpy_sum_and_anomalib_on_random_data(rng: np.random.Generator) -> None:
    # On untied data the summation order and sqrt do not change any argmax.
    f = rng.standard_normal((3000, 64)).astype(np.float32)
    got = fissure.kcenter_greedy(f, 200, start_index=17)
    plain = greedy_numpy(f, 200, 17, dist=lambda x, c: ((x - c) ** 2).sum(axis=1))
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_array_equal(got, greedy_anomalib(f, 200, 17))


def test_duplicates_and_ties(simd: str, rng: np.random.Generator) -> None:
    # Integer grid {0,1,2}^4: exact distances, many ties, 81 distinct points among 500 rows.
    f = rng.integers(0, 3, (500, 4)).astype(np.float32)
    got = fissure.kcenter_greedy(f, 200, start_index=5)
    np.testing.assert_array_equal(got, greedy_numpy(f, 200, 5))
    assert len(set(got.tolist())) == 200  # never a row twice
    distinct = len(np.unique(f, axis=0))
    # while distinct points remain, anomalib's loop picks the same rows
    np.testing.assert_array_equal(got[:distinct], greedy_anomalib(f, distinct, 5))
    assert len(np.unique(f[got[:distinct]], axis=0)) == distinct


def test_threads_agree(rng: np.random.Generator) -> None:
    f = rng.standard_normal((20000, 24)).astype(np.float32)
    one = fissure.kcenter_greedy(f, 80, start_index=9, num_threads=1)
    np.testing.assert_array_equal(one, fissure.kcenter_greedy(f, 80, start_index=9))
    np.testing.assert_array_equal(one, fissure.kcenter_greedy(f, 80, start_index=9,
                                                              num_threads=3))
    np.testing.assert_array_equal(one, greedy_numpy(f, 80, 9))


def test_n_equals_one_and_all(rng: np.random.Generator) -> None:
    f = rng.standard_normal((30, 3)).astype(np.float32)
    np.testing.assert_array_equal(fissure.kcenter_greedy(f, 1, start_index=4), [4])
    every = fissure.kcenter_greedy(f, 30)
    assert sorted(every.tolist()) == list(range(30))


@pytest.mark.parametrize(
    ("f", "n", "kw", "exc", "match"),
    [
        (np.ones((5, 3), np.int64), 2, {}, TypeError, "features: expected a float32 or float16"),
        (np.ones(5, np.float32), 2, {}, ValueError, r"expected shape \(n, d\)"),
        (np.ones((0, 3), np.float32), 1, {}, ValueError, "at least one row"),
        (np.ones((5, 3), np.float32), 0, {}, ValueError, r"n: expected an int in 1..5, got 0"),
        (np.ones((5, 3), np.float32), 6, {}, ValueError, r"n: expected an int in 1..5, got 6"),
        (np.ones((5, 3), np.float32), 2.5, {}, TypeError, "n: expected an int"),
        (np.ones((5, 3), np.float32), 2, {"start_index": 5}, ValueError, "start_index"),
        (np.ones((5, 3), np.float32), 2, {"start_index": -1}, ValueError, "start_index"),
        (np.ones((5, 3), np.float32), 2, {"num_threads": 0}, ValueError, "num_threads"),
    ],
)
def test_bad_input(f: np.ndarray, n: object, kw: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fissure.kcenter_greedy(f, n, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e20])
def test_non_finite_or_huge(bad: float) -> None:
    f = np.ones((6, 3), np.float32)
    f[4, 2] = bad
    with pytest.raises(ValueError, match="features: .*row 4"):
        fissure.kcenter_greedy(f, 2)


# ---------------------------------------------------------------------------------------------
# Random projection
# ---------------------------------------------------------------------------------------------


def test_jl_dims_match_anomalib_figures() -> None:
    # peers.md 3.3: eps 0.9 gives 295 / 301 / 319 / 336 for these bank sizes.
    assert [jl_min_dims(n, 0.9) for n in (156_800, 204_800, 409_600, 819_200)] == [
        295, 301, 319, 336]


def test_projection_is_features_times_sparse_matrix(rng: np.random.Generator) -> None:
    f = rng.standard_normal((3000, 1536)).astype(np.float32)
    p = fissure.random_projection(f, 128, seed=3)
    r = sparse_random_matrix(1536, 128, seed=3)
    assert p.shape == (3000, 128) and p.dtype == np.float32
    np.testing.assert_allclose(p, f.astype(np.float64) @ r.T.astype(np.float64), rtol=1e-4,
                               atol=1e-3)
    scale = np.sqrt(np.sqrt(1536)) / np.sqrt(128)
    assert set(np.unique(r).tolist()) <= {0.0, np.float32(scale), np.float32(-scale)}
    density = (r != 0).mean()
    assert abs(density - 1 / np.sqrt(1536)) < 0.004  # 196k draws of p = 0.0255
    np.testing.assert_array_equal(p, fissure.random_projection(f, 128, seed=3))
    assert not np.array_equal(p, fissure.random_projection(f, 128, seed=4))
    # float16 features project as their float32 widening
    h = f[:500].astype(np.float16)
    np.testing.assert_array_equal(fissure.random_projection(h, 64),
                                  fissure.random_projection(h.astype(np.float32), 64))


def test_projection_preserves_distances(rng: np.random.Generator) -> None:
    f = rng.standard_normal((400, 1536)).astype(np.float32)
    p = fissure.random_projection(f)  # JL width for 400 rows at eps 0.9
    assert p.shape[1] == jl_min_dims(400, 0.9)
    i, j = rng.integers(0, 400, (2, 500))
    i, j = i[i != j], j[i != j]
    ratio = ((p[i] - p[j]) ** 2).sum(1) / ((f[i] - f[j]) ** 2).sum(1)
    assert abs(np.median(ratio) - 1) < 0.1 and (ratio > 0.1).all() and (ratio < 1.9).all()


def test_projection_errors(rng: np.random.Generator) -> None:
    f = rng.standard_normal((100, 20)).astype(np.float32)
    with pytest.raises(ValueError, match="raise eps or pass out_dims"):
        fissure.random_projection(f)
    with pytest.raises(ValueError, match="eps"):
        fissure.random_projection(f, eps=1.5)
    with pytest.raises(ValueError, match="out_dims"):
        fissure.random_projection(f, 0)
    with pytest.raises(TypeError, match="float"):
        fissure.random_projection(f.astype(np.int32), 4)
    f[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        fissure.random_projection(f, 4)


def _at_offset(a: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of a whose buffer starts at `offset` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("offset", [0, 16, 32, 48])
def test_buffer_alignment_does_not_change_selection(simd: str, rng: np.random.Generator,
                                                    offset: int) -> None:
    # 64-byte aligned float32 rows take the AVX-512 loop, others the two-register loop.
    f = rng.standard_normal((1200, 64)).astype(np.float32)
    g = _at_offset(f, offset)
    assert g.ctypes.data % 64 == offset
    np.testing.assert_array_equal(fissure.kcenter_greedy(g, 90, start_index=2),
                                  greedy_numpy(f, 90, 2))


# ---------------------------------------------------------------------------------------------
# The pruned pass: rows whose minimum provably cannot change are skipped (a projected lower
# bound with rounding allowances). Forced on and off through the test hook, on data where the
# skipping is heavy and the margins are thin, against the plain numpy loop.
# ---------------------------------------------------------------------------------------------


def _opts(f: np.ndarray, n: int, start: int, *, prune: int, k: int = 0,
          threads: int = -1) -> tuple[np.ndarray, dict]:
    return _core._kcenter_greedy_opts(np.ascontiguousarray(f), n, start, threads, prune, k)


def _all_levels(fn) -> None:  # type: ignore[no-untyped-def]
    for level in levels("knn"):
        with forced_level("knn", level):
            fn(level)


def _clusters(rng: np.random.Generator, n: int, d: int, centres: int, spread: float,
              dup: float = 0.0) -> np.ndarray:
    c = rng.standard_normal((centres, d)) * 10
    f = c[rng.integers(0, centres, n)] + rng.standard_normal((n, d)) * spread
    if dup:  # exact duplicates of earlier rows
        m = int(n * dup)
        f[rng.integers(0, n, m)] = f[rng.integers(0, n, m)]
    return f.astype(np.float32)


@pytest.mark.parametrize(("d", "k"), [(16, 8), (40, 8), (64, 16), (96, 24), (160, 32)])
def test_pruned_equals_plain_on_clusters(rng: np.random.Generator, d: int, k: int) -> None:
    # Tight clusters: after the first picks nearly every row is skipped.
    f = _clusters(rng, 2500, d, 30, 0.5, dup=0.05)
    n = 400
    ref = greedy_numpy(f, n, 7)

    def check(level: str) -> None:
        got, st = _opts(f, n, 7, prune=1, k=k)
        np.testing.assert_array_equal(got, ref, err_msg=level)
        assert st["pruned_steps"] > 0
        # the skipping is real: far fewer exact distances than the plain loop's n * N
        assert st["rows_computed"] < 0.25 * n * len(f), st
        plain, st0 = _opts(f, n, 7, prune=0)
        np.testing.assert_array_equal(plain, ref)
        assert st0["pruned_steps"] == 0 and st0["rows_computed"] == (n - 1) * len(f)

    _all_levels(check)


def test_pruned_float16_and_threads(rng: np.random.Generator) -> None:
    f = _clusters(rng, 3000, 64, 40, 1.0).astype(np.float16)
    ref = greedy_numpy(f, 300, 11)
    for threads in (1, 2, 3):
        got, st = _opts(f, 300, 11, prune=1, k=16, threads=threads)
        np.testing.assert_array_equal(got, ref)
        assert st["rows_computed"] < 0.5 * 300 * len(f)
    np.testing.assert_array_equal(fissure.kcenter_greedy(f, 300, start_index=11), ref)


def test_pruned_integer_grid_ties(rng: np.random.Generator) -> None:
    # Integer coordinates in 0..255 (sums below 2^24: every distance is exact): distances to the
    # new centre often equal a row's minimum or fall below it by 1, the thinnest margins there
    # are; plus exact duplicates and ties for the argmax. Selecting every row exercises the
    # end, where only duplicates remain.
    f = rng.integers(0, 256, (700, 16)).astype(np.float32)
    f[350:] = f[rng.integers(0, 350, 350)]  # half the rows duplicate the other half
    ref = greedy_numpy(f, 700, 3)
    _all_levels(lambda level: np.testing.assert_array_equal(
        _opts(f, 700, 3, prune=1, k=8)[0], ref, err_msg=level))
    g = rng.integers(0, 3, (900, 24)).astype(np.float32)  # {0,1,2}^24: ties everywhere
    np.testing.assert_array_equal(_opts(g, 500, 0, prune=1, k=8)[0], greedy_numpy(g, 500, 0))


@pytest.mark.parametrize("scale", [1e-21, 1e-12, 1.0, 1e9, 1e17])
def test_pruned_at_extreme_scales(rng: np.random.Generator, scale: float) -> None:
    # Tiny values: squared differences underflow to subnormals (the bounds' absolute terms);
    # huge ones: squared norms near the 4e37 limit (the projection's scale, binary16 range).
    f = (_clusters(rng, 1500, 32, 20, 0.3).astype(np.float64) * (scale / 30)).astype(np.float32)
    assert np.isfinite(f).all() and (f != 0).any()
    ref = greedy_numpy(f, 300, 5)
    _all_levels(lambda level: np.testing.assert_array_equal(
        _opts(f, 300, 5, prune=1, k=8)[0], ref, err_msg=f"{level} scale {scale}"))


def test_pruned_offset_data_and_degenerate_rows(rng: np.random.Generator) -> None:
    # A large common offset (distances tiny next to the norms), constant columns, and a
    # block of identical rows: the basis is built from a degenerate sample.
    f = _clusters(rng, 1200, 48, 12, 0.05) + np.float32(1000.0)
    f[:, :10] = 3.0
    f[100:400] = f[100]
    np.testing.assert_array_equal(_opts(f, 400, 0, prune=1, k=16)[0], greedy_numpy(f, 400, 0))
    same = np.ones((200, 32), np.float32)  # every row identical: picks in index order
    np.testing.assert_array_equal(_opts(same, 50, 9, prune=1, k=8)[0],
                                  [9] + list(range(9)) + list(range(10, 50)))


def test_unstructured_data_falls_back_to_plain_passes(rng: np.random.Generator) -> None:
    # Uniform noise in 128 dimensions: the bound cannot prune, the pass switches to plain
    # streaming and back; the selection is unchanged.
    f = rng.random((2000, 128), dtype=np.float32)
    got, st = _opts(f, 120, 1, prune=1, k=16)
    assert st["plain_steps"] > 1
    np.testing.assert_array_equal(got, greedy_numpy(f, 120, 1))


@pytest.mark.parametrize("k", [8, 16])
def test_pruned_when_the_bound_is_tight(rng: np.random.Generator, k: int) -> None:
    # Rows inside a k-dimensional coordinate subspace: the projection keeps (nearly) the whole
    # distance, so the bound sits at the true distance and only the rounding allowances
    # separate "skip" from "update". Integer coordinates make many distances equal to a row's
    # minimum or 1 below it; duplicates add exact ties.
    f = np.zeros((1500, 2 * k), np.float32)
    f[:, :k] = rng.integers(0, 700, (1500, k))  # squared distances < 2^24: exact
    f[1000:] = f[rng.integers(0, 1000, 500)]
    ref = greedy_numpy(f, 1200, 2)
    _all_levels(lambda level: np.testing.assert_array_equal(
        _opts(f, 1200, 2, prune=1, k=k)[0], ref, err_msg=level))
