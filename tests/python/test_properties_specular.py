"""Property tests: fissure.specular_mask and dilate_disc (the C++ core) against OpenCV
(cvtColor BGR2HSV + inRange, cv2.dilate with fissure.disc_kernel) and against the numpy
twins (fissure._reference.specular). Budgets: tests/python/conftest.py."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure._reference import specular as reference
from hypothesis import given
from hypothesis import strategies as st

cv2 = pytest.importorskip("cv2")

LEVELS = st.sampled_from([0, 1, 29, 30, 31, 127, 239, 240, 241, 254, 255])


@st.composite
def images(draw):
    """Small BGR images: pixels near the thresholds, grey, saturated, or random."""
    h, w = draw(st.integers(1, 33)), draw(st.integers(1, 33))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "bright", "grey"]))
    if kind == "random":
        img = rng.integers(0, 256, (h, w, 3))
    elif kind == "bright":
        img = 255 - rng.integers(0, 40, (h, w, 3))
    else:
        img = np.repeat(rng.integers(200, 256, (h, w, 1)), 3, axis=2)
    return np.ascontiguousarray(img, dtype=np.uint8)


def opencv_mask(img: np.ndarray, v_min: int, s_max: int, dilate: int) -> np.ndarray:
    if v_min >= 255 or s_max <= 0:  # empty ranges (inRange would saturate the bounds)
        m = np.zeros(img.shape[:2], np.uint8)
    else:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        m = cv2.inRange(hsv, (0, 0, v_min + 1), (180, s_max - 1, 255))
    if dilate:
        m = cv2.dilate(m, fissure.disc_kernel(dilate))
    return m > 0


@given(images(), st.one_of(LEVELS, st.integers(0, 255)), st.one_of(LEVELS, st.integers(0, 255)),
       st.integers(0, 5))
def test_specular_mask_equals_opencv(img: np.ndarray, v_min: int, s_max: int,
                                     dilate: int) -> None:
    got = fissure.specular_mask(img, v_min=v_min, s_max=s_max, dilate=dilate)
    want = opencv_mask(img, v_min, s_max, dilate)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        reference.specular_mask(img, v_min=v_min, s_max=s_max, dilate=dilate), want)
    # a strided view (every other column) reads the same pixels
    view = img[:, ::2]
    np.testing.assert_array_equal(
        fissure.specular_mask(view, v_min=v_min, s_max=s_max),
        opencv_mask(np.ascontiguousarray(view), v_min, s_max, 0))


@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.sampled_from([0.0, 0.01, 0.2, 1.0]), st.integers(0, 9))
def test_dilate_disc_equals_opencv(h: int, w: int, seed: int, density: float, r: int) -> None:
    m = np.random.default_rng(seed).random((h, w)) < density
    want = cv2.dilate(m.astype(np.uint8), fissure.disc_kernel(r)) > 0 if r else m
    np.testing.assert_array_equal(fissure.dilate_disc(m, r), want)
