"""Polygons against OpenCV/SAHI on full images, and supervision's CompactMask."""

from __future__ import annotations

import numpy as np
import pytest

from fissure import BoxMasks
from oracles import mask_reference as ref

cv2 = pytest.importorskip("cv2")


def sahi_polygons(full: np.ndarray) -> list:
    """SAHI's get_coco_segmentation_from_bool_mask, on a full-image mask (oracle)."""
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    return get_coco_segmentation_from_bool_mask(full)


def sahi_fill(polys: list, H: int, W: int) -> np.ndarray:
    from sahi.utils.cv import get_bool_mask_from_coco_segmentation

    return get_bool_mask_from_coco_segmentation(polys, W, H)


def cv2_polygons(full: np.ndarray) -> list:
    """The same recipe written directly against OpenCV, without SAHI."""
    padded = cv2.copyMakeBorder(full.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    res = cv2.findContours(padded, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(-1, -1))
    contours = res[0] if len(res) == 2 else res[1]
    return [c.reshape(-1).tolist() for c in contours if c.shape[0] >= 3]


@pytest.mark.parametrize(("H", "W"), [(1, 1), (9, 13), (40, 31), (64, 80)])
def test_polygons_equal_opencv_on_full_images(rng: np.random.Generator, H: int, W: int) -> None:
    masks = ref.random_full_masks(rng, 40, H, W)
    boxes = ref.random_boxes_for(rng, masks)
    for bm in (BoxMasks.from_full(masks), BoxMasks.from_full(masks, boxes)):
        full = bm.to_full()
        ours = bm.to_coco_polygons()
        for i in range(len(bm)):
            assert ours[i] == cv2_polygons(full[i])
        for p in (bm.to_polygons(j) for j in range(len(bm))):
            assert all(a.dtype == np.int32 and a.shape[1] == 2 and len(a) >= 3 for a in p)


def test_polygons_equal_sahi(rng: np.random.Generator) -> None:
    pytest.importorskip("sahi")
    masks = ref.random_full_masks(rng, 30, 50, 60, kinds=("blob", "noise", "border", "stripes"))
    bm = BoxMasks.from_full(masks)
    for i, polys in enumerate(bm.to_coco_polygons()):
        assert polys == sahi_polygons(masks[i])


def test_from_polygons_equals_sahi_fill(rng: np.random.Generator) -> None:
    pytest.importorskip("sahi")
    H, W = 60, 70
    masks = ref.random_full_masks(
        rng, 30, H, W, kinds=("blob", "noise", "border", "stripes", "pixel")
    )
    polys = BoxMasks.from_full(masks).to_coco_polygons()
    # random float polygons too, some reaching outside the image, plus an empty mask
    for _ in range(15):
        k = int(rng.integers(3, 9))
        c = rng.uniform(-10, 80, 2)
        pts = c + rng.uniform(-20, 20, (k, 2))
        polys.append([pts.reshape(-1).tolist(), (pts * 0.5 + 10).reshape(-1).tolist()])
    polys.append([])
    bm = BoxMasks.from_polygons(polys, (H, W))
    assert bm.image_shape == (H, W)
    full = bm.to_full()
    for i, p in enumerate(polys):
        np.testing.assert_array_equal(full[i], sahi_fill(p, H, W), err_msg=f"mask {i}")
    # (K, 2) arrays work too
    arr = [[np.asarray(q, dtype=np.float64).reshape(-1, 2) for q in p] for p in polys]
    assert BoxMasks.from_polygons(arr, (H, W)).equals(bm)


def test_polygon_input_errors() -> None:
    with pytest.raises(ValueError, match="x1, y1"):
        BoxMasks.from_polygons([[[1, 2, 3]]], (10, 10))
    with pytest.raises(ValueError, match="finite"):
        BoxMasks.from_polygons([[[1, 2, 3, np.nan, 5, 6]]], (10, 10))
    with pytest.raises(TypeError, match="list of polygon"):
        BoxMasks.from_polygons("abc", (10, 10))
    with pytest.raises(ValueError, match="positive"):
        BoxMasks.from_polygons([], (0, 10))


class TestSupervision:
    sv = pytest.importorskip("supervision")

    def test_to_supervision_equals_from_dense(self, rng: np.random.Generator) -> None:
        from supervision.detection.compact_mask import CompactMask

        H, W = 45, 57
        masks = ref.random_full_masks(rng, 40, H, W)
        boxes = ref.random_boxes_for(rng, masks)
        bm = BoxMasks.from_full(masks, boxes)
        cm = bm.to_supervision()
        assert isinstance(cm, CompactMask) and cm.shape == (40, H, W)
        np.testing.assert_array_equal(cm.to_dense(), bm.to_full())
        np.testing.assert_array_equal(cm.area, bm.areas())
        # runs equal supervision's own encoder on the same crops
        from supervision.detection.utils.converters import _mask_to_rle_counts

        for i in range(len(bm)):
            if bm.regions[i, 2] and bm.regions[i, 3]:
                np.testing.assert_array_equal(cm._rles[i], _mask_to_rle_counts(bm.mask(i)))

    def test_from_supervision_roundtrip(self, rng: np.random.Generator) -> None:
        from supervision.detection.compact_mask import CompactMask

        H, W = 38, 29
        masks = ref.random_full_masks(rng, 30, H, W)
        boxes = ref.random_boxes_for(rng, masks)
        cm = CompactMask.from_dense(masks, boxes, image_shape=(H, W))
        bm = BoxMasks.from_supervision(cm)
        assert bm.image_shape == (H, W)
        np.testing.assert_array_equal(bm.to_full(), cm.to_dense())
        back = bm.to_supervision()
        np.testing.assert_array_equal(back.to_dense(), cm.to_dense())
        # dense masks go through from_full
        assert BoxMasks.from_supervision(masks).equals(BoxMasks.from_full(masks))

    def test_empty_and_outside(self) -> None:
        bm = BoxMasks.from_crops(
            np.array([[3, 4, 0, 0], [0, 0, 2, 2]], np.int32),
            [np.zeros((0, 0), bool), np.ones((2, 2), bool)],
            (5, 5),
            regions=True,
        )
        cm = bm.to_supervision()
        assert cm._crop_shapes.tolist() == [[1, 1], [2, 2]]
        np.testing.assert_array_equal(cm.to_dense(), bm.to_full())
        assert len(BoxMasks.empty((5, 5)).to_supervision()) == 0


def test_local_rle_roundtrip(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 50, 33, 44)
    bm = BoxMasks.from_full(masks, ref.random_boxes_for(rng, masks))
    counts, run_offsets = bm.to_local_rle()
    assert counts.dtype == np.int32 and run_offsets.dtype == np.int64
    for i in range(len(bm)):
        c = counts[run_offsets[i] : run_offsets[i + 1]].tolist()
        r = bm.regions[i]
        assert c == ref.coco_counts(bm.mask(i)) if r[2] and r[3] else c == [0]
    back = BoxMasks.from_local_rle(counts, run_offsets, bm.regions, bm.image_shape)
    assert back.equals(bm)
    with pytest.raises(ValueError, match="summing"):
        BoxMasks.from_local_rle(counts[:-1], run_offsets.clip(max=len(counts) - 1), bm.regions)
    with pytest.raises(ValueError, match="run_offsets"):
        BoxMasks.from_local_rle(counts, run_offsets[:-1], bm.regions)
