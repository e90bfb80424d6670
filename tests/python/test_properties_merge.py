"""Property tests: fissure.nms / greedy_nmm / nmm (the C++ core) against their pure-numpy
twins in fissure._reference.merge, on adversarial inputs: ties in scores and coordinates,
duplicates, zero-area boxes, coordinates up to 1e6, classes or not, box and mask metrics.
Budgets: tests/python/conftest.py (hypothesis profiles)."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure._reference import merge as reference
from fissure.masks import BoxMasks, regions_from_boxes
from hypothesis import given
from hypothesis import strategies as st
from test_merge_reference import assert_same as assert_same_groups

SCORES = st.one_of(
    st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0]),  # ties
    st.floats(0.0, 1.0, width=32),
)
SMALL = st.integers(0, 24)  # a small grid: many overlaps, exact ties
LARGE = st.floats(0.0, 1e6, width=32, allow_subnormal=False)


@st.composite
def detections(draw, max_n: int = 24, small_only: bool = False):
    """(boxes, scores, class_ids): boxes on a small grid or anywhere up to 1e6, with
    duplicates and zero widths/heights."""
    n = draw(st.integers(0, max_n))
    coord = SMALL if small_only else st.one_of(SMALL, SMALL.map(lambda v: v + 0.5), LARGE)
    size = st.one_of(st.just(0), st.integers(0, 12)) if small_only else st.one_of(
        st.just(0), st.integers(0, 12), st.floats(0.0, 1e6, width=32))
    rows: list[list[float]] = []
    for _ in range(n):
        if rows and draw(st.integers(0, 4)) == 0:
            rows.append(list(rows[draw(st.integers(0, len(rows) - 1))]))  # a duplicate
            continue
        x, y = draw(coord), draw(coord)
        rows.append([x, y, x + draw(size), y + draw(size)])
    boxes = np.array(rows, np.float32).reshape(-1, 4)
    boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0])  # float32 rounding of x + w
    boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1])
    scores = np.array([draw(SCORES) for _ in range(n)], np.float32)
    classes = np.array([draw(st.integers(0, 2)) for _ in range(n)], np.int64)
    return boxes, scores, classes


def knobs(merge: bool):
    kw = {
        "match_threshold": st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.9, 1.0]),
        "match_metric": st.sampled_from(["iou", "ios"]),
        "class_agnostic": st.booleans(),
        "match": st.sampled_from(["ge", "gt"]),
    }
    if merge:
        kw["recheck"] = st.sampled_from(["sahi", "strict", "keep", "off"])
    return st.fixed_dictionaries(kw)


def assert_same(a: fissure.MergeResult, b: fissure.MergeResult) -> None:
    assert_same_groups(a, b)
    assert (a.masks is None) == (b.masks is None)
    if a.masks is not None:
        assert a.masks.equals(b.masks)


def random_masks(boxes: np.ndarray, seed: int, density: float) -> BoxMasks:
    """One box-local mask per (small) box over its region, random pixels."""
    rng = np.random.default_rng(seed)
    reg = regions_from_boxes(boxes)
    crops = [rng.random((int(h), int(w))) < density for _, _, w, h in reg]
    return BoxMasks.from_crops(reg, crops, regions=True)


@given(detections(), knobs(merge=False))
def test_nms_equals_reference(dets, kw) -> None:
    boxes, scores, classes = dets
    for cls in (classes, None):
        np.testing.assert_array_equal(
            fissure.nms(boxes, scores, cls, **kw), reference.nms(boxes, scores, cls, **kw)
        )


@pytest.mark.parametrize("name", ["greedy_nmm", "nmm"])
@given(dets=detections(), kw=knobs(merge=True))
def test_merges_equal_reference(name: str, dets, kw) -> None:
    boxes, scores, classes = dets
    for cls in (classes, None):
        assert_same(
            getattr(fissure, name)(boxes, scores, cls, **kw),
            getattr(reference, name)(boxes, scores, cls, **kw),
        )


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
@given(
    dets=detections(max_n=14, small_only=True),
    kw=knobs(merge=True),
    seed=st.integers(0, 2**32 - 1),
    density=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    mask_metric=st.booleans(),
)
def test_masks_equal_reference(name: str, dets, kw, seed: int, density: float,
                               mask_metric: bool) -> None:
    boxes, scores, classes = dets
    masks = random_masks(boxes, seed, density)
    if name == "nms":
        kw = {k: v for k, v in kw.items() if k != "recheck"}
        got = fissure.nms(boxes, scores, classes, masks=masks, mask_metric=True, **kw)
        np.testing.assert_array_equal(
            got, reference.nms(boxes, scores, classes, masks=masks, mask_metric=True, **kw)
        )
        return
    fn = getattr(fissure, name)
    assert_same(
        fn(boxes, scores, classes, masks=masks, mask_metric=mask_metric, **kw),
        getattr(reference, name)(boxes, scores, classes, masks=masks, mask_metric=mask_metric,
                                 **kw),
    )
