"""Property tests: fissure.slice_grid and auto_slice_params (the C++ core) against SAHI's
get_slice_bboxes / get_auto_slice_params for image sizes up to 1e5. Budgets: conftest.py."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sahi_slicing = pytest.importorskip("sahi.slicing")

SIZES = st.one_of(st.integers(1, 64), st.integers(1, 5000), st.integers(1, 100_000))
RATIOS = st.one_of(st.sampled_from([0.0, 0.2, 0.5, 0.9]), st.floats(0.0, 0.95))


@st.composite
def grids(draw):
    h, w = draw(SIZES), draw(SIZES)
    # slices from tiny to larger than the image, at most ~60 tiles per side
    sh = draw(st.integers(max(1, h // 60), 2 * h + 2))
    sw = draw(st.integers(max(1, w // 60), 2 * w + 2))
    return h, w, sh, sw, draw(RATIOS), draw(RATIOS)


@given(grids())
def test_slice_grid_equals_sahi(args) -> None:
    h, w, sh, sw, rh, rw = args
    ours = fissure.slice_grid(h, w, sh, sw, rh, rw)
    ref = sahi_slicing.get_slice_bboxes(h, w, sh, sw, False, rh, rw)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, np.asarray(ref, dtype=np.int64).reshape(-1, 4))


@given(SIZES, SIZES)
def test_auto_slice_equals_sahi(h: int, w: int) -> None:
    assert fissure.auto_slice_params(h, w) == tuple(sahi_slicing.get_auto_slice_params(h, w))
    ours = fissure.slice_grid(h, w, None, None)
    ref = sahi_slicing.get_slice_bboxes(h, w, None, None, True)
    np.testing.assert_array_equal(ours, np.asarray(ref, dtype=np.int64).reshape(-1, 4))
