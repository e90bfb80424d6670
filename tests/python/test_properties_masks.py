"""Property tests: box-local masks (fissure.BoxMasks, the C++ core) against pycocotools and
plain numpy: dense crops, COCO RLE encode / decode (compressed and not), areas, the OR of
merged masks (pycocotools.mask.merge), local RLE round trips, and polygons against a
full-image cv2.fillPoly. Budgets: tests/python/conftest.py (hypothesis profiles)."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure.masks import BoxMasks, regions_from_boxes
from hypothesis import given
from hypothesis import strategies as st

mask_util = pytest.importorskip("pycocotools.mask")


@st.composite
def full_masks(draw):
    """(N, H, W) bool masks: empty, full, sparse or dense, on small images (odd sizes)."""
    h, w = draw(st.integers(1, 23)), draw(st.integers(1, 23))
    n = draw(st.integers(0, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]))
    return rng.random((n, h, w)) < density


@st.composite
def boxes_for(draw, n: int, h: int, w: int):
    """(n, 4) float boxes reaching outside the image, fractional, zero-size or huge."""
    edge = st.one_of(
        st.integers(-4, max(h, w) + 4),
        st.floats(-4.0, max(h, w) + 4.0, width=32),
        st.sampled_from([-1e30, -3e9, 1e6, 3e9, 1e30]),
    )
    rows = []
    for _ in range(n):
        a, b, c, d = draw(edge), draw(edge), draw(edge), draw(edge)
        rows.append([min(a, c), min(b, d), max(a, c), max(b, d)])
    return np.array(rows, np.float32).reshape(-1, 4)


def box_windows(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, H, W) bool: the pixels of each box's region (floor / ceil), clipped to the image."""
    b = boxes.astype(np.float64)
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.zeros((len(b), h, w), bool)
    for i, (x1, y1, x2, y2) in enumerate(b):
        out[i] = (xs >= np.floor(x1)) & (xs < np.ceil(x2)) & (ys >= np.floor(y1)) & (
            ys < np.ceil(y2))
    return out


def coco_encode(full: np.ndarray) -> list[dict]:
    return mask_util.encode(np.asfortranarray(full.transpose(1, 2, 0).astype(np.uint8)))


@given(full_masks(), st.data())
def test_crops_and_rle_match_pycocotools(full: np.ndarray, data) -> None:
    n, h, w = full.shape
    with_boxes = data.draw(st.booleans())
    if with_boxes:
        boxes = data.draw(boxes_for(n, h, w))
        want = full & box_windows(boxes, h, w)
        bm = BoxMasks.from_full(full, boxes)
    else:
        boxes = None
        want = full
        bm = BoxMasks.from_full(full)
    assert bm.image_shape == (h, w)
    np.testing.assert_array_equal(bm.to_full(), want)
    np.testing.assert_array_equal(bm.areas(), want.reshape(n, h * w).sum(axis=1))
    rles = bm.to_coco_rle()
    if n == 0:
        assert rles == []
        return
    ref = coco_encode(want)
    assert [r["counts"] for r in rles] == [r["counts"] for r in ref]
    assert all(r["size"] == [h, w] for r in rles)
    np.testing.assert_array_equal(bm.areas(), mask_util.area(ref))
    # decode: straight into box-local bitmaps, tight or over given boxes
    back = BoxMasks.from_coco_rle(ref)
    np.testing.assert_array_equal(back.to_full(), mask_util.decode(ref).transpose(2, 0, 1) > 0)
    if with_boxes:
        cut = BoxMasks.from_coco_rle(ref, boxes)
        np.testing.assert_array_equal(cut.to_full(), want)
        np.testing.assert_array_equal(cut.regions, bm.regions)
    # uncompressed counts, as pycocotools' frPyObjects reads them
    raw = bm.to_coco_rle(compressed=False)
    again = mask_util.frPyObjects([dict(r) for r in raw], h, w)
    assert [r["counts"] for r in again] == [r["counts"] for r in ref]
    np.testing.assert_array_equal(BoxMasks.from_coco_rle(raw).to_full(), want)
    # crop-scoped runs round trip
    counts, offs = bm.to_local_rle()
    assert BoxMasks.from_local_rle(counts, offs, bm.regions, (h, w)).equals(bm)


@given(full_masks(), st.data())
def test_tile_masks_threshold_and_origin(full: np.ndarray, data) -> None:
    n, th, tw = full.shape
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    probs = rng.random(full.shape).astype(np.float32)
    thr = data.draw(st.sampled_from([0.0, 0.25, 0.5, 0.999, 1.0]))
    boxes = data.draw(boxes_for(n, th, tw))
    ox, oy = data.draw(st.integers(-5, 30)), data.draw(st.integers(-5, 30))
    H, W = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    got = BoxMasks.from_tile_masks(probs, boxes, (ox, oy), (H, W), mask_threshold=thr)
    tile = (probs > np.float32(thr)) & box_windows(boxes, th, tw)
    want = np.zeros((n, H, W), bool)
    for i in range(n):
        ys, xs = np.nonzero(tile[i])
        ys, xs = ys + oy, xs + ox
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        want[i, ys[ok], xs[ok]] = True
    np.testing.assert_array_equal(got.to_full(), want)


@given(full_masks(), st.floats(0.0, 1.0), st.sampled_from(["iou", "ios"]))
def test_merged_masks_are_pycocotools_unions(full: np.ndarray, thr: float, metric: str) -> None:
    n, h, w = full.shape
    bm = BoxMasks.from_full(full)
    boxes = bm.tight_boxes()
    scores = np.linspace(1.0, 0.5, n, dtype=np.float32) if n else np.zeros(0, np.float32)
    res = fissure.greedy_nmm(boxes, scores, masks=bm, match_threshold=thr, match_metric=metric,
                             recheck="off")
    assert res.masks is not None and len(res.masks) == len(res)
    rles = coco_encode(full) if n else []
    merged = res.masks.to_coco_rle((h, w))
    for g, members in enumerate(res.groups()):
        union = mask_util.merge([rles[i] for i in members.tolist()], intersect=0)
        assert merged[g]["counts"] == union["counts"]


@st.composite
def polygons(draw):
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    coord = st.one_of(st.integers(-10, 40), st.floats(-10.0, 40.0),
                      st.sampled_from([-1e6, 1e6, 1e8]))
    per_mask = []
    for _ in range(draw(st.integers(0, 4))):
        polys = []
        for _ in range(draw(st.integers(0, 3))):
            k = draw(st.integers(3, 7))
            polys.append([draw(coord) for _ in range(2 * k)])
        per_mask.append(polys)
    return per_mask, (h, w)


@given(polygons())
def test_polygons_match_a_full_image_fill(args) -> None:
    cv2 = pytest.importorskip("cv2")
    per_mask, (h, w) = args
    got = BoxMasks.from_polygons(per_mask, (h, w))
    assert len(got) == len(per_mask)
    for i, polys in enumerate(per_mask):
        canvas = np.zeros((h, w), np.uint8)
        pts = [np.round(np.array(p, np.float64).reshape(-1, 2)).astype(np.int32) for p in polys]
        if pts:
            cv2.fillPoly(canvas, pts, (1,))
        np.testing.assert_array_equal(got[i].to_full()[0], canvas > 0)


@given(st.lists(st.lists(st.floats(-1e7, 1e7, width=32), min_size=4, max_size=4), max_size=6))
def test_regions_from_boxes_is_floor_and_ceil(rows) -> None:
    b = np.array([[min(r[0], r[2]), min(r[1], r[3]), max(r[0], r[2]), max(r[1], r[3])]
                  for r in rows], np.float32).reshape(-1, 4)
    reg = regions_from_boxes(b).astype(np.int64)
    f = b.astype(np.float64)
    np.testing.assert_array_equal(reg[:, 0], np.floor(f[:, 0]))
    np.testing.assert_array_equal(reg[:, 1], np.floor(f[:, 1]))
    np.testing.assert_array_equal(reg[:, 0] + reg[:, 2], np.ceil(f[:, 2]))
    np.testing.assert_array_equal(reg[:, 1] + reg[:, 3], np.ceil(f[:, 3]))
