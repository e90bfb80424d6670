"""fissure.knn_search against a float64 numpy brute force, faiss
IndexFlatL2 when installed, and exact-tie ground truth; every SIMD path this CPU has."""

from __future__ import annotations

from collections.abc import Iterator

import fissure
import numpy as np
import pytest
from fissure import _core

FLT_MAX = np.finfo(np.float32).max


def _levels() -> list[str]:
    order = ["scalar", "avx2", "avx512"]
    prev = _core._knn_force_simd("none")
    try:
        best = _core.knn_simd_level()
    finally:
        _core._knn_force_simd(prev)
    return order[: order.index(best) + 1] if best in order else ["scalar"]


@pytest.fixture(params=_levels())
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    prev = _core._knn_force_simd(request.param)
    try:
        assert _core.knn_simd_level() == request.param
        yield request.param
    finally:
        _core._knn_force_simd(prev)


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
    # The norm expansion cancels: the self-distance is a few float32 ulps of 2|b|^2, clamped
    # at 0 (never negative), as faiss's BLAS path.
    norms = (bank[::7].astype(np.float64) ** 2).sum(1)
    assert (D >= 0).all()
    assert (D[:, 0] <= 16 * np.finfo(np.float32).eps * 2 * norms).all()


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
        (BANK, Q, 0, ValueError, "k: expected k >= 1"),
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
