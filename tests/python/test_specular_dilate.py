"""Disc dilation equals cv2.dilate with OpenCV's MORPH_ELLIPSE element, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import fissure

cv2 = pytest.importorskip("cv2")

from oracles.simd import forced_level  # noqa: E402
from test_specular import available_levels, cv_mask, near_threshold_image  # noqa: E402


@pytest.fixture(params=["scalar", "sse4", "avx2", "avx512"])
def level(request: pytest.FixtureRequest):
    if request.param not in available_levels():
        pytest.skip(f"CPU has no {request.param}")
    with forced_level("specular", request.param) as got:
        if got != request.param:
            pytest.skip("FISSURE_SIMD caps the level")
        yield request.param


def cv_dilate(mask: np.ndarray, r: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(np.ascontiguousarray(mask, dtype=np.uint8), k) > 0


@pytest.mark.parametrize("r", [*range(0, 61), 100, 254])
def test_disc_kernel_is_opencv_ellipse(r: int) -> None:
    k = fissure.disc_kernel(r)
    assert k.dtype == np.uint8
    assert np.array_equal(k, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def test_radius_one_is_a_plus() -> None:
    assert fissure.disc_kernel(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


SHAPES = [(1, 1), (1, 40), (37, 1), (2, 2), (13, 200), (70, 65), (33, 129), (64, 64), (5, 300)]
DENSITIES = [0.0, 0.002, 0.03, 0.3, 1.0]


@pytest.mark.parametrize("r", [*range(0, 17), 20, 31, 40])
def test_dilate_matches_cv2(level: str, r: int, rng: np.random.Generator) -> None:
    for shape in SHAPES:
        for density in DENSITIES:
            m = rng.random(shape) < density
            want = cv_dilate(m, r)
            for threads in (1, -1):
                got = fissure.dilate_disc(m, r, num_threads=threads)
                assert got.dtype == np.bool_
                assert np.array_equal(got, want), (shape, density, threads)


def test_single_pixels_draw_the_disc(level: str) -> None:
    for r in (1, 2, 5, 9, 15):
        m = np.zeros((2 * r + 5, 2 * r + 7), bool)
        m[r + 2, r + 3] = True
        got = fissure.dilate_disc(m, r)
        assert np.array_equal(got[2:2 * r + 3, 3:2 * r + 4], fissure.disc_kernel(r) > 0)
        assert got.sum() == fissure.disc_kernel(r).sum()
        corner = np.zeros((9, 11), bool)  # the border never contributes, the disc is cut
        corner[0, 0] = True
        assert np.array_equal(fissure.dilate_disc(corner, r), cv_dilate(corner, r))


@pytest.mark.parametrize("threads", [1, 2, 3, -1])
def test_large_many_bands(level: str, threads: int, rng: np.random.Generator) -> None:
    m = rng.random((701, 333)) < 0.001  # > 64k pixels: several row bands per thread
    m[300:320, 100:140] = True
    for r in (1, 6, 15, 33):
        assert np.array_equal(fissure.dilate_disc(m, r, num_threads=threads), cv_dilate(m, r))


def test_uint8_values_and_views(rng: np.random.Generator) -> None:
    m = (rng.random((50, 90)) < 0.01).astype(np.uint8) * rng.integers(1, 256, (50, 90)).astype(
        np.uint8)
    want = cv_dilate(m > 0, 4)
    assert np.array_equal(fissure.dilate_disc(m, 4), want)
    big = np.zeros((60, 100), np.uint8)
    big[5:55, 7:97] = m
    assert np.array_equal(fissure.dilate_disc(big[5:55, 7:97], 4), want)  # strided rows
    assert np.array_equal(fissure.dilate_disc(m[::-1], 4), want[::-1])  # negative row stride
    row = np.broadcast_to(m[20], m.shape)  # row stride 0
    assert np.array_equal(fissure.dilate_disc(row, 4), cv_dilate(np.ascontiguousarray(row) > 0, 4))
    assert np.array_equal(fissure.glare_fraction(row, [[0, 0, 90, 50]]),
                          np.array([np.count_nonzero(m[20]) / 90], np.float32))
    assert np.array_equal(fissure.dilate_disc(np.asfortranarray(m), 4), want)  # copied
    # copied; OpenCV's disc is not symmetric under transposition (r = 4: 1 px at the top, 3 at
    # the side), so compare with the dilation of the transposed mask
    assert np.array_equal(fissure.dilate_disc(m.T, 4), cv_dilate(m.T > 0, 4))
    out = np.zeros((50, 90), bool)
    assert fissure.dilate_disc(m, 4, out=out) is out and np.array_equal(out, want)


@pytest.mark.parametrize("r", [1, 2, 3, 5, 8, 12, 15])
def test_specular_with_dilation(level: str, r: int, rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, 123, 257)
    img[rng.random((123, 257)) < 0.9] = 0  # sparse highlights, like real images
    want = cv_dilate(cv_mask(img), r)
    for threads in (1, -1):
        assert np.array_equal(fissure.specular_mask(img, dilate=r, num_threads=threads), want)
    assert np.array_equal(fissure.specular_mask(img[..., 0].copy(), v_min=100, dilate=r),
                          cv_dilate(cv_mask(img[..., 0].copy(), 100), r))


def test_specular_with_dilation_large_threads(level: str, rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, 480, 640)
    img[rng.random((480, 640)) < 0.95] = 10
    want = cv_dilate(cv_mask(img), 7)
    for threads in (1, 2, -1):
        assert np.array_equal(fissure.specular_mask(img, dilate=7, num_threads=threads), want)


def test_numpy_twin(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator,
                    twin_calls) -> None:
    monkeypatch.setenv("FISSURE_BACKEND", "python")
    m = rng.random((40, 57)) < 0.02
    for r in (0, 1, 4, 9):
        assert np.array_equal(fissure.dilate_disc(m, r), cv_dilate(m, r))
    assert twin_calls == {"dilate_disc": 4}


def test_large_outputs_streamed(level: str, rng: np.random.Generator) -> None:
    """Outputs of 4M+ pixels are written with non-temporal stores row by row (unaligned heads
    and tails with ordinary stores): check the fused and the plain dilation there, into an
    output whose rows start at every alignment."""
    h, w = 2049, 2051
    img = np.full((h, w, 3), 40, np.uint8)
    ys, xs = rng.integers(0, h, 3000), rng.integers(0, w, 3000)
    img[ys, xs] = 250
    img[100:140, 500:900] = 255
    want_mask = cv_mask(img)
    want = cv_dilate(want_mask, 3)
    buf = np.zeros(h * w + 64, bool)
    out = buf[5:5 + h * w].reshape(h, w)
    for threads in (1, -1):
        assert np.array_equal(fissure.specular_mask(img, dilate=3, num_threads=threads), want)
        assert np.array_equal(fissure.dilate_disc(want_mask, 3, num_threads=threads), want)
        buf[:] = True
        fissure.specular_mask(img, dilate=3, out=out, num_threads=threads)
        assert np.array_equal(out, want) and buf[:5].all() and buf[5 + h * w:].all()
