"""Property tests: fissure.knn_search (the C++ core) against a float64 numpy brute force on
well-conditioned data (ids where the neighbours are clearly separated, distances to a
relative tolerance; exact ids and distances on small-integer data, full of ties), and
fissure.kcenter_greedy against the plain numpy greedy loop of test_kcenter.py.
Budgets: tests/python/conftest.py."""

from __future__ import annotations

import fissure
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from test_kcenter import greedy_numpy

FLT_MAX = np.finfo(np.float32).max


@st.composite
def searches(draw):
    nb, nq, d = draw(st.integers(1, 300)), draw(st.integers(0, 70)), draw(st.integers(1, 48))
    k = draw(st.integers(1, nb + 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    bank = (rng.standard_normal((nb, d)) * scale).astype(np.float32)
    queries = (rng.standard_normal((nq, d)) * scale).astype(np.float32)
    if nq and draw(st.booleans()):
        queries[: nq // 2] = bank[rng.integers(0, nb, nq // 2)]  # queries equal to bank rows
    if draw(st.booleans()):
        bank = bank.astype(np.float16)
    return bank, queries, k


def check_padding(D: np.ndarray, I: np.ndarray, nb: int, k: int) -> None:
    if k > nb:
        assert (I[:, nb:] == -1).all() and (D[:, nb:] == FLT_MAX).all()


@given(searches())
def test_knn_matches_float64_brute_force(args) -> None:
    bank, queries, k = args
    nb = bank.shape[0]
    D, I = fissure.knn_search(bank, queries, k)
    assert D.shape == I.shape == (queries.shape[0], k)
    check_padding(D, I, nb, k)
    b64, q64 = bank.astype(np.float64), queries.astype(np.float64)
    full = ((q64[:, None, :] - b64[None, :, :]) ** 2).sum(axis=2)
    kk = min(k, nb)
    for qi in range(queries.shape[0]):
        order = np.argsort(full[qi], kind="stable")
        ref = full[qi, order]
        tol = 1e-5 * (1 + bank.shape[1] / 8) * ((q64[qi] ** 2).sum() + (b64 ** 2).sum(1).max())
        got_i = I[qi, :kk]
        assert len(set(got_i.tolist())) == kk and (got_i >= 0).all()
        np.testing.assert_allclose(D[qi, :kk], ref[:kk], rtol=1e-4, atol=tol)
        # each returned id really is a neighbour of its rank
        np.testing.assert_allclose(full[qi, got_i], ref[:kk], rtol=1e-4, atol=tol)
        # where the rank is clearly separated from the others, the id is the reference's
        for j in range(kk):
            gaps = np.abs(ref - ref[j])
            gaps[j] = np.inf
            if gaps.min() > 4 * tol + 1e-3 * ref[j]:
                assert got_i[j] == order[j], (qi, j)


@given(st.integers(1, 200), st.integers(0, 40), st.integers(1, 9), st.integers(1, 40),
       st.integers(0, 2**32 - 1))
def test_knn_exact_on_small_integers(nb: int, nq: int, d: int, k: int, seed: int) -> None:
    # values in {-2..2}: every distance is an exact small integer in float32, many ties;
    # ties go to the lower id
    rng = np.random.default_rng(seed)
    bank = rng.integers(-2, 3, (nb, d)).astype(np.float32)
    queries = rng.integers(-2, 3, (nq, d)).astype(np.float32)
    D, I = fissure.knn_search(bank, queries, k)
    check_padding(D, I, nb, k)
    full = ((queries[:, None, :].astype(np.int64) - bank[None].astype(np.int64)) ** 2).sum(2)
    kk = min(k, nb)
    order = np.argsort(full, axis=1, kind="stable")[:, :kk]
    np.testing.assert_array_equal(I[:, :kk], order)
    np.testing.assert_array_equal(D[:, :kk], np.take_along_axis(full, order, 1))


@st.composite
def coresets(draw):
    N, d = draw(st.integers(1, 250)), draw(st.integers(1, 40))
    make = {
        "normal": lambda g: g.standard_normal((N, d)),
        "grid": lambda g: g.integers(0, 3, (N, d)),  # ties and duplicates
        "repeated": lambda g: np.repeat(g.standard_normal((-(-N // 4), d)), 4, axis=0)[:N],
    }[draw(st.sampled_from(["normal", "grid", "repeated"]))]
    f = make(np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    n = draw(st.integers(1, N))
    return f.astype(dtype), n, draw(st.integers(0, N - 1))


@given(coresets())
def test_kcenter_equals_numpy_greedy(args) -> None:
    f, n, start = args
    got = fissure.kcenter_greedy(f, n, start_index=start)
    np.testing.assert_array_equal(got, greedy_numpy(f, n, start))
    assert len(set(got.tolist())) == n
