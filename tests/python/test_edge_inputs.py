"""Edge inputs that used to give silent wrong results: huge finite boxes, oversized RLE
sizes, far-away polygon vertices, non-finite thresholds, wrong constructor dtypes and an
``out`` buffer aliasing the image."""

from __future__ import annotations

import numpy as np
import pytest

import fissure
from fissure import BoxMasks, regions_from_boxes
from fissure.detection.decoders import decode_probability_map
from fissure.masks import MAX_MASK_PIXELS
from fissure.preprocess import PreprocessConfig, preprocess_tiles

HUGE = 1e30


def _object() -> np.ndarray:
    full = np.zeros((1, 8, 8), bool)
    full[0, 2:6, 2:6] = True  # a 4 x 4 object
    return full


@pytest.mark.parametrize(
    "box",
    [
        [-HUGE, -HUGE, HUGE, HUGE],
        [0, 0, HUGE, HUGE],
        [-HUGE, -HUGE, 8, 8],
        [-3e9, -3e9, 3e9, 3e9],
    ],
)
def test_from_full_clips_huge_boxes_in_float(box) -> None:
    bm = BoxMasks.from_full(_object(), [box])
    assert bm.areas().tolist() == [16]
    assert bm.regions.tolist() == [[0, 0, 8, 8]]


@pytest.mark.parametrize("box", [[-HUGE, -HUGE, HUGE, HUGE], [1, 1, HUGE, 7]])
def test_from_tile_masks_clips_huge_boxes_in_float(box) -> None:
    full = _object()
    assert BoxMasks.from_tile_masks(full, [box]).areas().tolist() == [16]
    probs = full.astype(np.float32)
    image_box = np.array(box, np.float64) + [5, 7, 5, 7]  # image coordinates
    got = BoxMasks.from_tile_masks(probs, [image_box], (5, 7), (30, 40), box_coords="image")
    assert got.areas().tolist() == [16]
    assert got.tight_regions().tolist() == [[7, 9, 4, 4]]


def test_huge_boxes_far_away_give_empty_masks() -> None:
    full = _object()
    for box in ([HUGE / 2, HUGE / 2, HUGE, HUGE], [-HUGE, -HUGE, -HUGE / 2, -HUGE / 2]):
        assert BoxMasks.from_full(full, [box]).areas().tolist() == [0]
        assert BoxMasks.from_tile_masks(full, [box]).areas().tolist() == [0]


def test_from_coco_rle_clips_huge_boxes() -> None:
    rles = BoxMasks.from_full(_object()).to_coco_rle()
    got = BoxMasks.from_coco_rle(rles, [[-HUGE, -HUGE, HUGE, HUGE]])
    assert got.areas().tolist() == [16]


def test_regions_from_boxes_refuses_what_int32_cannot_hold() -> None:
    assert regions_from_boxes(np.array([[0.5, 1, 2.5, 3]])).tolist() == [[0, 1, 3, 2]]
    for box in ([0, 0, HUGE, HUGE], [-HUGE, 0, 1, 1], [-2e9, 0, 2e9, 1]):
        with pytest.raises(ValueError, match="int32"):
            regions_from_boxes(np.array([box]))


def test_from_crops_refuses_huge_boxes() -> None:
    with pytest.raises(ValueError, match="int32"):
        BoxMasks.from_crops([[0, 0, HUGE, HUGE]], [np.zeros((1, 1), bool)])


def test_detections_draw_huge_boxes() -> None:
    det = fissure.Detections(
        np.array([[-HUGE, -HUGE, HUGE, HUGE]], np.float32),
        np.ones(1, np.float32),
        np.zeros(1, np.int64),
        image_shape=(8, 8),
    )
    canvas = det.draw(np.zeros((8, 8, 3), np.uint8))
    assert canvas.shape == (8, 8, 3)


@pytest.mark.parametrize("size", [[2**31 + 4, 2], [2, 2**32 + 1], [2**32 + 4, 1]])
def test_coco_rle_sides_beyond_int32_are_refused(size) -> None:
    with pytest.raises(ValueError, match="int32"):
        BoxMasks.from_coco_rle([{"size": size, "counts": [0, 4]}])


def test_coco_rle_beyond_the_pixel_limit_is_refused_before_allocating() -> None:
    side = 70000  # 4.9e9 pixels, all set: a few bytes of RLE
    full = BoxMasks(np.ones(1, np.uint8), [0, 1], [[0, 0, 1, 1]])
    rle = full.to_coco_rle((side, side))[0]
    assert len(rle["counts"]) < 64
    rle_all = {"size": [side, side], "counts": [0, side * side]}
    for r in (rle, rle_all):
        with pytest.raises(ValueError, match="MAX_MASK_PIXELS"):
            BoxMasks.from_coco_rle([r])
        with pytest.raises(ValueError, match="MAX_MASK_PIXELS"):
            BoxMasks.from_coco_rle([r], [[0, 0, 1, 1]])
    assert MAX_MASK_PIXELS == 2**31 - 1


@pytest.mark.parametrize("v", [1e300, -1e300, 2.0**40, 1e10])
def test_polygons_far_out_of_range_are_refused(v) -> None:
    with pytest.raises(ValueError, match="out of range"):
        BoxMasks.from_polygons([[[0, 0, v, 0, v, v]]], (8, 8))


def test_polygons_reaching_outside_still_fill() -> None:
    pytest.importorskip("cv2")
    got = BoxMasks.from_polygons([[[-1e6, -1e6, 1e6, -1e6, 1e6, 1e6, -1e6, 1e6]]], (8, 8))
    assert got.areas().tolist() == [64]


def test_polygons_beyond_the_pixel_limit_are_refused() -> None:
    pytest.importorskip("cv2")
    with pytest.raises(ValueError, match="MAX_MASK_PIXELS"):
        BoxMasks.from_polygons([[[0, 0, 4, 0, 4, 4]]], (70000, 70000))


@pytest.mark.parametrize("thr", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_non_finite_mask_thresholds_are_refused(thr) -> None:
    probs = _object().astype(np.float32)
    with pytest.raises(ValueError, match="mask_threshold"):
        BoxMasks.from_tile_masks(probs, [[0, 0, 8, 8]], mask_threshold=thr)
    pm = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="mask_threshold"):
        decode_probability_map(pm, [[0, 0, 8, 8]], 8, mask_threshold=thr)


@pytest.mark.parametrize(
    "data, offsets, regions, exc",
    [
        (np.array([0.7, 1.2]), [0, 2], [[0, 0, 2, 1]], TypeError),
        (np.array([1, 0], np.int64), [0, 2], [[0, 0, 2, 1]], TypeError),
        (np.array([257, 256], np.int64), [0, 2], [[0, 0, 2, 1]], TypeError),
        (np.zeros(2, np.uint8), np.array([0.0, 2.5]), [[0, 0, 2, 1]], TypeError),
        (np.zeros(2, np.uint8), [0, 2], np.array([[0.0, 0.0, 2.9, 1.0]]), TypeError),
        (np.zeros(2, np.uint8), [0, 2], np.array([[2**32, 0, 2, 1]]), ValueError),
        (np.zeros(2, np.uint8), [0, 2], np.array([[0, 0, 2**32 + 2, 1]]), ValueError),
        (np.zeros(2, np.uint8), np.array([0, 2], np.uint64) + np.uint64(2**63), [[0, 0, 2, 1]],
         ValueError),
    ],
)
def test_constructor_enforces_dtypes(data, offsets, regions, exc) -> None:
    with pytest.raises(exc):
        BoxMasks(data, offsets, regions)
    with pytest.raises(exc):
        BoxMasks(data, offsets, regions, validate=False)


def test_constructor_accepts_documented_dtypes() -> None:
    bm = BoxMasks(np.array([True, False]), np.array([0, 2], np.int32), np.array([[0, 0, 2, 1]]))
    assert bm.data.dtype == np.uint8 and bm.regions.dtype == np.int32
    assert bm.areas().tolist() == [1]
    assert len(BoxMasks(np.zeros(0), [0], np.zeros((0, 4)))) == 0  # empty arrays of any dtype


def test_preprocess_out_aliasing_the_image_is_refused() -> None:
    cfg = PreprocessConfig(input_size=(4, 4))
    buf = np.zeros((1, 3, 4, 4), np.float32)
    img = buf.view(np.uint8).reshape(-1)[:192].reshape(8, 8, 3)
    with pytest.raises(ValueError, match="must not share memory with the image"):
        preprocess_tiles(img, [[0, 0, 8, 8]], cfg, out=buf)
    ok = preprocess_tiles(img.copy(), [[0, 0, 8, 8]], cfg, out=np.empty_like(buf))
    assert ok.shape == (1, 3, 4, 4)


@pytest.mark.parametrize("origin", [(0, -2), (-3, 0), (5, 0), (0, 9)])
def test_tile_wholly_outside_the_image_gives_empty_masks(origin) -> None:
    # a 1 x 1 tile placed outside a 1 x 1 image: every mask is empty (used to raise)
    got = BoxMasks.from_tile_masks(np.ones((1, 1, 1), bool), [[0, 0, 1, 1]], origin, (1, 1))
    assert got.areas().tolist() == [0]
    assert got.image_shape == (1, 1)
