"""Box-local masks against dense masks and the naive twins in tests/python/oracles/mask_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from fissure import BoxMasks
from oracles import mask_reference as ref

SHAPES = [(1, 1), (1, 7), (7, 1), (13, 17), (32, 32), (61, 40)]


def triple(bm: BoxMasks):
    return bm.data, bm.offsets, bm.regions


def assert_same(bm: BoxMasks, expected) -> None:
    data, offsets, regions = expected
    np.testing.assert_array_equal(bm.regions, regions)
    np.testing.assert_array_equal(bm.offsets, offsets)
    np.testing.assert_array_equal(bm.data, data)


@pytest.mark.parametrize(("H", "W"), SHAPES)
def test_from_full_tight_and_roundtrip(rng: np.random.Generator, H: int, W: int) -> None:
    masks = ref.random_full_masks(rng, 40, H, W)
    bm = BoxMasks.from_full(masks)
    assert bm.image_shape == (H, W)
    assert_same(bm, ref.from_full(masks))
    np.testing.assert_array_equal(bm.to_full(), masks)
    assert bm.to_full().dtype == bool
    # uint8 input with values other than 1 reads as set where nonzero
    u8 = masks.astype(np.uint8) * 7
    assert_same(BoxMasks.from_full(u8), ref.from_full(masks))


@pytest.mark.parametrize(("H", "W"), SHAPES)
def test_from_full_with_boxes(rng: np.random.Generator, H: int, W: int) -> None:
    masks = ref.random_full_masks(rng, 40, H, W)
    boxes = ref.random_boxes_for(rng, masks)
    bm = BoxMasks.from_full(masks, boxes)
    assert_same(bm, ref.from_full(masks, boxes))
    # the full image restricted to each box's clipped region
    full = bm.to_full()
    np.testing.assert_array_equal(full, ref.to_full(*ref.from_full(masks, boxes), H, W))
    np.testing.assert_array_equal(full & ~masks, np.zeros_like(masks))


def test_from_full_threads_agree(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 64, 300, 200)
    one = BoxMasks.from_full(masks, num_threads=1)
    many = BoxMasks.from_full(masks, num_threads=-1)
    assert one.equals(many)
    assert np.array_equal(one.areas(num_threads=1), many.areas(num_threads=2))


def test_from_full_noncontiguous_and_empty() -> None:
    m = np.zeros((4, 10, 12), bool)
    m[:, 2:5, 3:9] = True
    bm = BoxMasks.from_full(m[::2])  # a strided view is copied visibly, not rejected
    assert len(bm) == 2 and bm.regions.tolist() == [[3, 2, 6, 3]] * 2
    e = BoxMasks.from_full(np.zeros((0, 5, 6), bool))
    assert len(e) == 0 and e.image_shape == (5, 6) and e.to_full().shape == (0, 5, 6)
    assert e.to_coco_rle() == [] and e.areas().shape == (0,) and e.tight_boxes().shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("box_coords", ["tile", "image"])
def test_from_tile_masks_vs_paste_and_crop(
    rng: np.random.Generator, dtype, box_coords: str
) -> None:
    H, W, th, tw = 70, 90, 32, 40
    n = 60
    if np.dtype(dtype).kind == "f":
        masks = rng.random((n, th, tw)).astype(dtype)
    else:
        masks = ref.random_full_masks(rng, n, th, tw).astype(dtype)
    # per-detection tile origins, some tiles hanging over the image's right/bottom edge
    origins = np.stack([rng.integers(-5, W - 10, n), rng.integers(-5, H - 10, n)], axis=1)
    boxes = np.sort(rng.uniform(-4, 44, (n, 2, 2)), axis=1).transpose(0, 2, 1).reshape(n, 4)
    boxes = boxes[:, [0, 2, 1, 3]].astype(np.float32)  # x1, y1, x2, y2 in tile coordinates
    if box_coords == "image":
        boxes = boxes + np.tile(origins, 2).astype(np.float32)
    for shape in (None, (H, W)):
        bm = BoxMasks.from_tile_masks(
            masks, boxes, origins, shape, box_coords=box_coords, mask_threshold=0.5
        )
        # float64 is thresholded after conversion to float32 (documented)
        as_used = masks.astype(np.float32) if masks.dtype == np.float64 else masks
        expected = ref.from_tile_masks(as_used, boxes, origins, shape, 0.5, box_coords)
        assert_same(bm, expected)
        assert bm.image_shape == shape


def test_from_tile_masks_single_origin_equals_shift(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 20, 64, 64)
    boxes = ref.random_boxes_for(rng, masks)
    a = BoxMasks.from_tile_masks(masks, boxes, (128, 64), (300, 400))
    b = BoxMasks.from_full(masks, boxes).shift(128, 64, (300, 400))
    assert a.equals(b)


def test_from_crops(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 12, 30, 40)
    full = BoxMasks.from_full(masks)
    crops = [full.mask(i) for i in range(len(full))]
    again = BoxMasks.from_crops(full.regions, crops, regions=True)
    assert np.array_equal(again.data, full.data) and np.array_equal(again.regions, full.regions)
    boxes = full.region_boxes + np.float32(0.25) * np.array([1, 1, -1, -1], np.float32) * (
        full.regions[:, 2:3] > 0
    )
    via_boxes = BoxMasks.from_crops(boxes, crops, (30, 40))
    assert via_boxes.equals(full)
    # uint8 crops with values > 1, and clipping to an image
    shifted = BoxMasks.from_crops(
        full.regions + [5, 5, 0, 0], [c.astype(np.uint8) * 3 for c in crops], (30, 40), regions=True
    )
    np.testing.assert_array_equal(shifted.to_full(), ref.to_full(*triple(full.shift(5, 5)), 30, 40))


def test_reframe_clip_tighten_shift(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 50, 40, 50)
    bm = BoxMasks.from_full(masks)
    new = bm.regions.astype(np.int64) + rng.integers(-6, 7, (len(bm), 4))
    new[:, 2:] = np.maximum(new[:, 2:], 0)
    got = bm.reframe(new.astype(np.int32))
    outside = (
        (new[:, :2] < 0).any()
        or (new[:, 0] + new[:, 2] > 50).any()
        or (new[:, 1] + new[:, 3] > 40).any()
    )
    assert got.image_shape == (None if outside else (40, 50))
    expected = ref.reframe(*triple(bm), new)
    np.testing.assert_array_equal(got.data, expected[0])
    np.testing.assert_array_equal(got.regions, expected[2])

    moved = bm.shift(-7, 11)
    assert moved.image_shape is None and np.shares_memory(moved.data, bm.data)
    clipped = moved.clip((40, 50))
    np.testing.assert_array_equal(clipped.to_full(), ref.to_full(*triple(moved), 40, 50))
    r = clipped.regions.astype(np.int64)
    assert (
        (r[:, 0] >= 0).all() and (r[:, 0] + r[:, 2] <= 50).all() and (r[:, 1] + r[:, 3] <= 40).all()
    )

    tight = bm.tighten()
    np.testing.assert_array_equal(tight.to_full(), masks)
    tr = bm.tight_regions()
    np.testing.assert_array_equal(tight.regions, tr)
    np.testing.assert_array_equal(tight.areas(), bm.areas())


def test_areas_and_tight_boxes_vs_numpy(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 80, 45, 33)
    boxes = ref.random_boxes_for(rng, masks)
    for bm in (BoxMasks.from_full(masks), BoxMasks.from_full(masks, boxes)):
        np.testing.assert_array_equal(bm.areas(), ref.areas(*triple(bm)))
        assert bm.areas().dtype == np.int64
        tb = bm.tight_boxes()
        assert tb.dtype == np.float32 and tb.shape == (len(bm), 4)
        np.testing.assert_array_equal(tb, ref.tight_boxes(*triple(bm)))
    np.testing.assert_array_equal(BoxMasks.from_full(masks).areas(), masks.sum(axis=(1, 2)))


def test_areas_of_a_large_mask() -> None:
    # more than 255 set pixels per block and per mask
    m = np.ones((1, 999, 1001), bool)
    m[0, ::3, ::7] = False
    assert BoxMasks.from_full(m).areas().tolist() == [int(m.sum())]


def test_getitem_and_concatenate(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 30, 20, 25)
    bm = BoxMasks.from_full(masks)
    for key in (
        3,
        -1,
        slice(2, 9),
        slice(None, None, 3),
        slice(8, 2, -2),
        slice(5, 5),
        [4, 0, 4],
        np.array([], dtype=np.int64),
        np.arange(30) % 2 == 0,
        [-2, 1],
    ):
        sub = bm[key]
        assert isinstance(sub, BoxMasks) and sub.image_shape == (20, 25)
        idx = np.arange(30)[key] if not isinstance(key, int) else np.array([key % 30])
        np.testing.assert_array_equal(sub.to_full(), masks[idx])
    assert BoxMasks.concatenate([bm[:10], bm[10:], BoxMasks.empty((20, 25))]).equals(bm)
    assert len(BoxMasks.concatenate([])) == 0
    with pytest.raises(IndexError):
        bm[30]
    with pytest.raises(IndexError):
        bm[[0, 31]]
    with pytest.raises(IndexError):
        bm[np.ones(29, bool)]
    with pytest.raises(TypeError):
        bm["a"]
    with pytest.raises(TypeError):
        bm[1.5]
    with pytest.raises(ValueError, match="different images"):
        BoxMasks.concatenate([bm, BoxMasks.empty((5, 5))])


def test_paste_and_label_image(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 10, 20, 30)
    bm = BoxMasks.from_full(masks)
    labels = bm.to_label_image()
    expected = np.zeros((20, 30), np.int32)
    for i in range(10):
        expected[masks[i]] = i + 1
    np.testing.assert_array_equal(labels, expected)
    canvas = np.zeros((10, 10), np.float32)
    bm.paste(0, canvas, 2.5)
    np.testing.assert_array_equal(canvas, np.where(masks[0][:10, :10], 2.5, 0).astype(np.float32))


def test_memory_of_many_small_masks_on_a_24mp_image(rng: np.random.Generator) -> None:
    """2,000 small masks on 6000x4000: kilobytes to megabytes, never the 48 GB of dense masks."""
    H, W, n = 4000, 6000, 2000
    xy = np.stack([rng.uniform(0, W - 64, n), rng.uniform(0, H - 64, n)], axis=1)
    wh = rng.uniform(4, 48, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    tiles = rng.random((n, 64, 64)) < 0.5
    origins = np.floor(xy).astype(np.int64)
    bm = BoxMasks.from_tile_masks(tiles, boxes - np.tile(origins, 2), origins, (H, W))
    assert len(bm) == n
    assert bm.nbytes < 8 * 1024 * 1024, bm.nbytes
    assert bm.nbytes < n * H * W / 10_000
    rles = bm.to_coco_rle()
    assert len(rles) == n and all(r["size"] == [H, W] for r in rles)
    back = BoxMasks.from_coco_rle(rles, bm.region_boxes)
    assert back.equals(bm)
    assert back.nbytes == bm.nbytes


def test_concurrent_calls_from_python_threads(rng: np.random.Generator) -> None:
    """The core releases the GIL and keeps no shared state: threads get the serial answers."""
    from concurrent.futures import ThreadPoolExecutor

    masks = ref.random_full_masks(rng, 200, 120, 90)
    bm = BoxMasks.from_full(masks)
    rles = bm.to_coco_rle()

    def work(k: int):
        if k % 3 == 0:
            return bm.to_coco_rle() == rles
        if k % 3 == 1:
            return BoxMasks.from_coco_rle(rles).equals(bm)
        return np.array_equal(BoxMasks.from_full(masks).to_full(), masks)

    with ThreadPoolExecutor(4) as ex:
        assert all(ex.map(work, range(24)))
