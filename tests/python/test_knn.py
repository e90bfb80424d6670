"""fissure.knn_search against a float64 numpy brute force, faiss
IndexFlatL2 when installed, and exact-tie ground truth; every SIMD path this CPU has."""

from __future__ import annotations

from collections.abc import Iterator

import fissure
import numpy as np
import pytest
from fissure import _core
from oracles.simd import forced_level, levels

FLT_MAX = np.finfo(np.float32).max


@pytest.fixture(params=levels("knn"))
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    with forced_level("knn", request.param) as got:
        assert got == request.param
        yield request.param


def brute_force(bank: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 (|q|^2 + |b|^2 - 2 q.b: float32 data, so rounding is ~1e-16 relative), stable
    sort (ties: lower id); padded as faiss."""
    b = bank.astype(np.float64)
    q64 = q.astype(np.float64)
    d = (q64**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * (q64 @ b.T)
    d = np.maximum(d, 0)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    D = np.full((len(q), k), FLT_MAX, np.float64)
    I = np.full((len(q), k), -1, np.int64)
    m = min(k, len(bank))
    I[:, :m] = order[:, :m]
    D[:, :m] = np.take_along_axis(d, order[:, :m], 1)
    return D, I


def assert_matches(D: np.ndarray, I: np.ndarray, Dr: np.ndarray, Ir: np.ndarray, d: int) -> None:
    assert D.dtype == np.float32 and I.dtype == np.int64
    np.testing.assert_array_equal(I, Ir)
    real = Ir >= 0
    # float32 norm expansion: error of a few ulps of |q|^2 + |b|^2 (~2d for unit normals)
    np.testing.assert_allclose(D[real], Dr[real], rtol=1e-5, atol=1e-5 * 4 * d + 1e-4)
    assert (D[~real] == FLT_MAX).all()


@pytest.mark.parametrize(
    ("nb", "nq", "d", "k"),
    [(500, 64, 152, 9), (301, 7, 37, 3), (1000, 1, 16, 1), (4, 30, 8, 6), (60, 250, 1, 2),
     (257, 33, 300, 1)],
)
def test_matches_brute_force(simd: str, rng: np.random.Generator, nb: int, nq: int, d: int,
                             k: int) -> None:
    bank = rng.standard_normal((nb, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    D, I = fissure.knn_search(bank, q, k)
    assert D.shape == I.shape == (nq, k)
    assert_matches(D, I, *brute_force(bank, q, k), d)


def test_float16_bank_is_the_widened_float32_bank(simd: str, rng: np.random.Generator) -> None:
    bank16 = rng.standard_normal((700, 90)).astype(np.float16)
    q = rng.standard_normal((50, 90)).astype(np.float32)
    D16, I16 = fissure.knn_search(bank16, q, 5)
    D32, I32 = fissure.knn_search(bank16.astype(np.float32), q, 5)
    np.testing.assert_array_equal(I16, I32)
    np.testing.assert_array_equal(D16, D32)
    assert_matches(D16, I16, *brute_force(bank16.astype(np.float32), q, 5), 90)


def test_exact_ties_go_to_the_lower_id(simd: str, rng: np.random.Generator) -> None:
    # Small integers: every norm, dot product and distance is exact in float32, so the
    # stable-sorted float64 brute force is the ground truth, ties included.
    bank = rng.integers(-2, 3, (400, 12)).astype(np.float32)
    bank[200:] = bank[:200]  # every row twice
    q = rng.integers(-2, 3, (40, 12)).astype(np.float32)
    D, I = fissure.knn_search(bank, q, 10)
    Dr, Ir = brute_force(bank, q, 10)
    np.testing.assert_array_equal(I, Ir)
    np.testing.assert_array_equal(D, Dr.astype(np.float32))


def test_fewer_rows_than_k_pads_like_faiss(simd: str) -> None:
    bank = np.eye(3, 5, dtype=np.float32)
    q = np.zeros((2, 5), np.float32)
    D, I = fissure.knn_search(bank, q, 5)
    np.testing.assert_array_equal(I, [[0, 1, 2, -1, -1]] * 2)
    np.testing.assert_array_equal(D[:, :3], 1.0)
    assert (D[:, 3:] == FLT_MAX).all()


def test_identical_rows_give_zero_distance(simd: str, rng: np.random.Generator) -> None:
    bank = (rng.standard_normal((300, 64)) * 30).astype(np.float32)
    D, I = fissure.knn_search(bank, bank[::7], 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(0, 300, 7))
    # Distances are re-ranked by direct differences: a query equal to a row gets exactly 0
    # (the norm expansion alone would leave a few float32 ulps of 2|b|^2).
    assert (D[:, 0] == 0).all()


def test_thread_counts_and_bank_splits_agree(rng: np.random.Generator) -> None:
    bank = rng.standard_normal((3000, 40)).astype(np.float32)
    for nq in (2, 1100):  # 2 queries: the bank is split over the threads; 1100: 3 blocks
        q = rng.standard_normal((nq, 40)).astype(np.float32)
        one = fissure.knn_search(bank, q, 4, num_threads=1)
        many = fissure.knn_search(bank, q, 4, num_threads=-1)
        four = fissure.knn_search(bank, q, 4, num_threads=4)
        for other in (many, four):
            np.testing.assert_array_equal(one[0], other[0])
            np.testing.assert_array_equal(one[1], other[1])
        assert_matches(*one, *brute_force(bank, q, 4), 40)


def test_views_float64_and_empty_queries(rng: np.random.Generator) -> None:
    big = rng.standard_normal((200, 60))
    bank, q = big[::2, :30], big[1::2, 30:]  # strided float64 views
    D, I = fissure.knn_search(bank, q, 3)
    assert_matches(D, I, *brute_force(bank.astype(np.float32), q.astype(np.float32), 3), 30)
    D0, I0 = fissure.knn_search(bank, np.empty((0, 30), np.float32), 3)
    assert D0.shape == I0.shape == (0, 3)


def test_matches_faiss(simd: str, rng: np.random.Generator) -> None:
    faiss = pytest.importorskip("faiss")
    bank = rng.standard_normal((2000, 152)).astype(np.float32)
    for nq, k in ((5, 3), (300, 9)):  # faiss: direct differences below 20 queries, BLAS above
        q = rng.standard_normal((nq, 152)).astype(np.float32)
        index = faiss.IndexFlatL2(152)
        index.add(bank)
        Df, If = index.search(q, k)
        D, I = fissure.knn_search(bank, q, k)
        np.testing.assert_array_equal(I, If)
        np.testing.assert_allclose(D, Df, rtol=1e-5, atol=1e-3)
    index = faiss.IndexFlatL2(152)
    index.add(bank[:3])
    Df, If = index.search(q[:4], 6)
    D, I = fissure.knn_search(bank[:3], q[:4], 6)
    np.testing.assert_array_equal(I, If)  # -1 padding
    np.testing.assert_array_equal(D[:, 3:], Df[:, 3:])  # FLT_MAX padding
    np.testing.assert_allclose(D[:, :3], Df[:, :3], rtol=1e-5, atol=1e-3)


def _clusters(rng: np.random.Generator, nb: int, nq: int, d: int, offset: float,
              spread: float, n_clusters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.standard_normal((n_clusters, d))
    bank = offset + centres[rng.integers(0, n_clusters, nb)] + spread * rng.standard_normal((nb, d))
    q = offset + centres[rng.integers(0, n_clusters, nq)] + spread * rng.standard_normal((nq, d))
    return bank.astype(np.float32), q.astype(np.float32)


@pytest.mark.parametrize(("offset", "k"), [(1e4, 1), (1e4, 5), (-3e3, 3)])
def test_tight_clusters_far_from_the_origin(simd: str, rng: np.random.Generator, offset: float,
                                            k: int) -> None:
    # |q|^2 ~ 1.5e10 next to distances ~0.03: the norm expansion alone cancels completely.
    # The data sit on float32's 2^-10 grid near 1e4, so float64 direct differences are exact
    # and exact ties occur: they go to the lower id.
    bank, q = _clusters(rng, 5000, 784, 152, offset, 1e-2)
    dd = direct64(bank, q)
    D, I = fissure.knn_search(bank, q, k)
    np.testing.assert_array_equal(I, np.argsort(dd, axis=1, kind="stable")[:, :k])
    np.testing.assert_allclose(D, np.sort(dd, axis=1)[:, :k], rtol=2e-5)
    # few queries: the bank is split over the threads, the lists merged
    D2, I2 = fissure.knn_search(bank, q[:3], k)
    np.testing.assert_array_equal(I2, I[:3])
    np.testing.assert_array_equal(D2, D[:3])
    if k == 1:
        faiss = pytest.importorskip("faiss")
        index = faiss.IndexFlatL2(152)
        index.add(bank)
        np.testing.assert_array_equal(I, index.search(q, 1)[1])


def test_distances_are_the_same_on_every_level(rng: np.random.Generator) -> None:
    # The reported distance is the direct difference in one fixed float32 order: bit for bit
    # the same on every SIMD level and thread count.
    bank, q = _clusters(rng, 3000, 200, 96, 50.0, 0.1)
    out = []
    for level in levels("knn"):
        with forced_level("knn", level):
            out.append(fissure.knn_search(bank, q, 4))
            out.append(fissure.knn_search(bank, q, 4, num_threads=1))
    for D, I in out[1:]:
        np.testing.assert_array_equal(I, out[0][1])
        np.testing.assert_array_equal(D, out[0][0])


def test_crowded_queries_get_every_distance(simd: str, rng: np.random.Generator) -> None:
    # 3000 copies of one row: every query near it ties them all, its candidates overflow and
    # every row's distance is computed directly; ties go to the lowest ids.
    prev = _core._knn_force_bf16("off")
    try:
        bank = np.repeat(rng.standard_normal((1, 64)).astype(np.float32), 3100, axis=0)
        bank[3000:] = rng.standard_normal((100, 64)).astype(np.float32)
        q = (bank[0] + 0.05 * rng.standard_normal((40, 64))).astype(np.float32)
        D, I, st = _core._knn_search_stats(bank, q, 5)
    finally:
        _core._knn_force_bf16(prev)
    assert st["fp32_queries"] == 40 and st["direct_queries"] >= 40
    np.testing.assert_array_equal(I, np.tile(np.arange(5), (40, 1)))
    dd = direct64(bank, q)
    np.testing.assert_allclose(D, np.sort(dd, axis=1)[:, :5], rtol=2e-5)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

BANK = np.ones((5, 4), np.float32)
Q = np.zeros((2, 4), np.float32)


@pytest.mark.parametrize(
    ("bank", "q", "k", "exc", "match"),
    [
        (BANK.astype(np.int32), Q, 1, TypeError, "bank: expected a float32 or float16"),
        (BANK, Q.astype(np.int64), 1, TypeError, "queries: expected a float32"),
        (BANK, Q.astype(np.complex64), 1, TypeError, "queries"),
        (None, Q, 1, TypeError, "bank"),
        (BANK[0], Q, 1, ValueError, r"bank: expected shape \(n, d\), got \(4,\); for a single"),
        (BANK, Q[0], 1, ValueError, r"queries: expected shape \(n, d\)"),
        (np.ones((0, 4), np.float32), Q, 1, ValueError, "bank: expected at least one row"),
        (np.ones((5, 0), np.float32), Q[:, :0], 1, ValueError, "at least one column"),
        (BANK, np.zeros((2, 3), np.float32), 1, ValueError, "expected 4 columns"),
        (BANK, Q, 0, ValueError, "k: expected an int >= 1"),
        (BANK, Q, True, TypeError, "k: expected an int"),
        (BANK, Q, 2.0, TypeError, "k: expected an int"),
    ],
)
def test_bad_input(bank: object, q: object, k: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fissure.knn_search(bank, q, k)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(bad: float) -> None:
    bank = BANK.copy()
    bank[3, 1] = bad
    with pytest.raises(ValueError, match="bank: expected finite values, row 3 column 1"):
        fissure.knn_search(bank, Q)
    q = Q.copy()
    q[1, 2] = bad
    with pytest.raises(ValueError, match="queries: expected finite values, row 1 column 2"):
        fissure.knn_search(BANK, q)
    with pytest.raises(ValueError, match="row 3"):
        fissure.knn_search(bank.astype(np.float16), Q)


def test_huge_values_and_threads() -> None:
    bank = BANK.copy()
    bank[2] = 1e19
    with pytest.raises(ValueError, match="bank: values too large: row 2"):
        fissure.knn_search(bank, Q)
    with pytest.raises(ValueError, match="num_threads"):
        fissure.knn_search(BANK, Q, num_threads=0)


# ---------------------------------------------------------------------------------------------
# Wide features: the bfloat16 first pass (candidates with proven error intervals) and the
# float32 re-ranking by direct differences. Forced on for small inputs; the answer must be the
# exact top k of float32 distances, as the float64 brute force says.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def bf16_on() -> Iterator[None]:
    if not _core._knn_bf16_available():
        pytest.skip("this CPU has no AVX512_BF16")
    prev = _core._knn_force_bf16("on")
    try:
        yield
    finally:
        _core._knn_force_bf16(prev)


def direct64(bank: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64 squared distances by direct differences (exact for float32 inputs up to 1e-16)."""
    b = bank.astype(np.float64)
    return np.stack([((b - r) ** 2).sum(1) for r in q.astype(np.float64)])


def assert_exact_top_k(D: np.ndarray, I: np.ndarray, dd: np.ndarray, k: int,
                       rtol: float = 2e-6, datol: float = 1e-30) -> None:
    """I holds k distinct rows whose true distances are the k smallest (rows whose distance is
    within float32 rounding of the k-th may trade places; exact ties go to the lower id), and D
    is their distance within float32 rounding."""
    assert D.dtype == np.float32 and I.dtype == np.int64
    true = np.sort(dd, axis=1)[:, :k]
    got = np.take_along_axis(dd, I, 1)
    assert all(len(set(r.tolist())) == k for r in I)
    np.testing.assert_allclose(got, true, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(D, got, rtol=1e-5, atol=datol)
    exact = np.argsort(dd, axis=1, kind="stable")[:, :k]
    # where the float64 distances are separated by more than rounding, the ids are the same
    gap = np.diff(np.sort(dd, axis=1)[:, : k + 1], axis=1)
    clear = (gap > rtol * true[:, -1:]).all(1)
    np.testing.assert_array_equal(I[clear], exact[clear])


@pytest.mark.parametrize(("nb", "nq", "d", "k"),
                         [(1500, 80, 600, 1), (700, 130, 1536, 9), (300, 70, 37, 5),
                          (2000, 64, 513, 30), (400, 6, 1024, 399)])
def test_bf16_pass_is_exact(bf16_on: None, rng: np.random.Generator, nb: int, nq: int, d: int,
                            k: int) -> None:
    bank = rng.standard_normal((nb, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    q[:5] = bank[[3, 3, 10, 99, 200]]  # queries equal to bank rows: distance exactly 0
    D, I = fissure.knn_search(bank, q, k)
    assert_exact_top_k(D, I, direct64(bank, q), k)
    assert (D[:5, 0] == 0).all() and list(I[:5, 0]) == [3, 3, 10, 99, 200]
    # the same ids as the float32 path, threads and float16 banks as everywhere
    _core._knn_force_bf16("off")
    D32, I32 = fissure.knn_search(bank, q, k)
    _core._knn_force_bf16("on")
    np.testing.assert_allclose(D, D32, rtol=1e-5, atol=1e-5 * 4 * d)
    assert (I == I32).mean() > 0.99
    D1, I1 = fissure.knn_search(bank, q, k, num_threads=1)
    np.testing.assert_array_equal(I1, I)
    np.testing.assert_array_equal(D1, D)


def test_bf16_pass_float16_bank_and_ties(bf16_on: None, rng: np.random.Generator) -> None:
    bank16 = rng.standard_normal((900, 700)).astype(np.float16)
    q = rng.standard_normal((66, 700)).astype(np.float32)
    D16, I16 = fissure.knn_search(bank16, q, 7)
    D32, I32 = fissure.knn_search(bank16.astype(np.float32), q, 7)
    np.testing.assert_array_equal(I16, I32)
    np.testing.assert_array_equal(D16, D32)
    assert_exact_top_k(D16, I16, direct64(bank16, q), 7)
    # Small integers: every distance exact and most of them tied; every row twice.
    bank = rng.integers(-2, 3, (1200, 512)).astype(np.float32)
    bank[600:] = bank[:600]
    q = rng.integers(-2, 3, (70, 512)).astype(np.float32)
    D, I = fissure.knn_search(bank, q, 12)
    dd = direct64(bank, q)
    np.testing.assert_array_equal(I, np.argsort(dd, axis=1, kind="stable")[:, :12])
    np.testing.assert_array_equal(D, np.sort(dd, axis=1)[:, :12].astype(np.float32))


def test_bf16_pass_crowded_candidates_fall_back(bf16_on: None, rng: np.random.Generator) -> None:
    # 5000 copies of one row (every query ties them all: its candidates overflow and it takes
    # the float32 route, where they crowd again and every row's distance is computed) and
    # queries far from everything (all distances equal to bf16's precision).
    bank = np.repeat(rng.standard_normal((1, 640)).astype(np.float32), 5100, axis=0)
    bank[5000:] = rng.standard_normal((100, 640)).astype(np.float32)
    q = (rng.standard_normal((70, 640)) * 0.01 + 50).astype(np.float32)
    q[:10] = bank[0] + rng.standard_normal((10, 640)).astype(np.float32) * 0.1
    D, I = fissure.knn_search(bank, q, 5)
    dd = direct64(bank, q)
    np.testing.assert_array_equal(I[:10], np.tile(np.arange(5), (10, 1)))  # ties: lowest ids
    assert_exact_top_k(D, I, dd, 5, rtol=1e-5, datol=1e-5 * 4 * 640 * 50**2)


def test_bf16_pass_drops_passed_candidates(bf16_on: None, rng: np.random.Generator) -> None:
    # Rows on a line towards the query, nearer with every id: each row beats the ones before
    # and becomes a candidate, so a query collects 6,000 candidates of which only the last
    # few stay live. Its list fills, the dead entries are dropped and it stays on the bf16
    # pass: direct differences, so the small distances to the nearest rows (0.25, 1.0 next to
    # |q|^2 ~ 1.5e6) come out to float32 rounding of themselves; the float32 path's norm
    # expansion carries a few ulps of 2|q|^2 (~0.25 each) instead.
    d, nb = 152, 6000
    q = (rng.standard_normal((1, d)) * 100).astype(np.float32)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    steps = np.arange(nb, 0, -1, dtype=np.float64)[:, None] - 1.0   # nb-1, ..., 1, 0
    bank = (q.astype(np.float64) + steps * 0.5 * v).astype(np.float32)
    bank[-1] = q[0]
    queries = np.repeat(q, 64, axis=0)
    D, I = fissure.knn_search(bank, queries, 3)
    dd = direct64(bank, queries)
    assert_exact_top_k(D, I, dd, 3)
    np.testing.assert_array_equal(I, np.tile([nb - 1, nb - 2, nb - 3], (64, 1)))
    true = np.sort(dd, axis=1)[:, :3]
    assert (D[:, 0] == 0).all()
    np.testing.assert_allclose(D, true, rtol=1e-5)
    # the float32 route re-ranks by the same direct differences: the same answer
    _core._knn_force_bf16("off")
    D32, I32, st = _core._knn_search_stats(bank, queries, 3)
    assert st["fp32_queries"] == 64
    np.testing.assert_array_equal(I32, I)
    np.testing.assert_array_equal(D32, D)


@pytest.mark.parametrize("scale", [1e-18, 1e-12, 1e3, 1e16])
def test_bf16_pass_at_extreme_scales(bf16_on: None, rng: np.random.Generator,
                                     scale: float) -> None:
    # 1e-18: squared differences near the float32 subnormal range (bf16 flushing, the
    # intervals' absolute terms); 1e16 at 600 columns: squared norms near the 4e37 limit.
    bank = (rng.standard_normal((800, 600)) * scale).astype(np.float32)
    q = (rng.standard_normal((64, 600)) * scale).astype(np.float32)
    q[0] = bank[17]
    D, I = fissure.knn_search(bank, q, 4)
    assert_exact_top_k(D, I, direct64(bank, q), 4, rtol=1e-5)
    assert D[0, 0] == 0 and I[0, 0] == 17


def test_bf16_pass_auto_rule(rng: np.random.Generator) -> None:
    # 'auto': nb * d >= 50,000 * (k + 1), d >= 8, >= 64 queries and >= 256 rows take the bf16
    # pass where the CPU has it; both routes return direct differences (a query equal to a row
    # gets 0 exactly), the test hook says which route ran.
    bf16 = _core._knn_bf16_available()  # AVX512_BF16 and the SIMD level not capped below it
    prev = _core._knn_force_bf16("auto")

    def route(nb: int, d: int, nq: int, k: int) -> str:
        bank = (rng.standard_normal((nb, d)) * 30).astype(np.float32)
        D, I, st = _core._knn_search_stats(bank, bank[:nq], k)
        np.testing.assert_array_equal(I[:, 0], np.arange(nq))
        assert (D[:, 0] == 0).all()
        return "bf16" if st["bf16_queries"] == nq else "fp32"

    try:
        cases = [
            ((600, 512, 64, 1), "bf16"),    # 307k >= 100k
            ((600, 512, 63, 1), "fp32"),    # 63 queries
            ((2000, 152, 64, 1), "bf16"),   # PatchCore's width: 304k >= 100k
            ((2000, 152, 64, 9), "fp32"),   # 304k < 500k
            ((3300, 152, 64, 9), "bf16"),   # 502k >= 500k
            ((20000, 8, 64, 1), "bf16"),    # 160k, 8 columns
            ((20000, 7, 64, 1), "fp32"),    # 7 columns
            ((255, 1536, 64, 1), "fp32"),   # 255 rows
        ]
        for (nb, d, nq, k), want in cases:
            assert route(nb, d, nq, k) == (want if bf16 else "fp32"), (nb, d, nq, k)
    finally:
        _core._knn_force_bf16(prev)
