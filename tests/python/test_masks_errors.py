"""Bad input raises TypeError/ValueError naming what was expected and what came; no crash."""

from __future__ import annotations

import numpy as np
import pytest

from fissure import BoxMasks, _core


def small() -> BoxMasks:
    m = np.zeros((2, 6, 8), bool)
    m[0, 1:3, 2:5] = True
    m[1, 4, 7] = True
    return BoxMasks.from_full(m)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (
            (np.zeros(6, np.uint8), [0, 6], [[0, 0, 3, 2]]),
            {"image_shape": (1, 3)},
            "inside the image",
        ),
        (
            (np.zeros(6, np.uint8), [0, 6], [[-1, 0, 3, 2]]),
            {"image_shape": (9, 9)},
            "inside the image",
        ),
        ((np.zeros(6, np.uint8), [0, 6], [[0, 0, 3, 2]]), {"image_shape": (0, 9)}, "positive"),
        ((np.zeros(6, np.uint8), [0, 5], [[0, 0, 3, 2]]), {}, r"offsets\[i\+1\]"),
        ((np.zeros(6, np.uint8), [0, 6, 7], [[0, 0, 3, 2]]), {}, r"expected shape \(2,\)"),
        ((np.zeros(5, np.uint8), [0, 6], [[0, 0, 3, 2]]), {}, "expected 6 bytes"),
        ((np.full(6, 2, np.uint8), [0, 6], [[0, 0, 3, 2]]), {}, "0/1"),
        ((np.zeros(6, np.uint8), [0, 6], [[0, 0, -3, -2]]), {}, ">= 0"),
        ((np.zeros(3, np.uint8), [0], np.zeros((0, 4))), {}, "0 bytes"),
    ],
)
def test_constructor_checks(args, kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BoxMasks(*args, **kwargs)


def test_image_shape_types() -> None:
    with pytest.raises(TypeError, match="height, width"):
        BoxMasks.empty(image_shape="ab")
    with pytest.raises(TypeError, match="integer"):
        BoxMasks.empty(image_shape=(2.5, 3))
    with pytest.raises(ValueError, match="height, width"):
        BoxMasks.empty(image_shape=(1, 2, 3, 4))
    assert BoxMasks.empty(image_shape=(4, 5, 3)).image_shape == (4, 5)  # an image's .shape


def test_core_rejects_inconsistent_arrays_without_crashing() -> None:
    bm = small()
    # bypass the Python checks: the core checks the layout itself
    bad = BoxMasks(bm.data[:-1], bm.offsets, bm.regions, validate=False)
    for call in (
        bad.areas,
        bad.tight_boxes,
        bad.to_local_rle,
        lambda: bad.to_full((6, 8)),
        lambda: bad.to_coco_rle((6, 8)),
        lambda: bad[[0]],
        bad.tighten,
    ):
        with pytest.raises(ValueError, match="bytes of bitmaps"):
            call()
    huge = BoxMasks(
        bm.data,
        bm.offsets,
        np.array([[0, 0, 3, 2], [2**31 - 1, 0, 1, 1]], np.int32),
        validate=False,
    )
    with pytest.raises(ValueError, match="int32"):
        huge.areas()
    neg = BoxMasks(
        bm.data,
        np.array([0, 6, 7]),
        np.array([[0, 0, -3, -2], [0, 0, 1, 1]], np.int32),
        validate=False,
    )
    with pytest.raises(ValueError, match="negative size"):
        neg.areas()
    with pytest.raises(ValueError, match="expected shape"):
        _core.areas(bm.data, bm.offsets[:-1], bm.regions)
    with pytest.raises(TypeError):
        _core.areas(bm.data.astype(np.int16), bm.offsets, bm.regions)
    with pytest.raises(ValueError, match="inside the"):
        _core.crop_dense(np.zeros((1, 4, 4), np.uint8), np.array([[2, 2, 3, 1]], np.int32))
    with pytest.raises(ValueError, match="out of range"):
        _core.gather(bm.data, bm.offsets, bm.regions, np.array([0, 2]))
    with pytest.raises(TypeError, match="dtype"):
        _core.dense_tight_regions(np.zeros((1, 2, 2), np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.dense_tight_regions(np.zeros((1, 4, 4), np.uint8)[:, ::2])
    with pytest.raises(ValueError, match="planes"):
        _core.paste_dense(bm.data, bm.offsets, bm.regions, np.zeros((3, 6, 8), bool))
    with pytest.raises(ValueError, match="writeable"):
        out = np.zeros((2, 6, 8), bool)
        out.flags.writeable = False
        _core.paste_dense(bm.data, bm.offsets, bm.regions, out)


def test_from_full_errors() -> None:
    with pytest.raises(TypeError, match="bool or uint8, got float32"):
        BoxMasks.from_full(np.zeros((1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="leading axis"):
        BoxMasks.from_full(np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="non-empty image"):
        BoxMasks.from_full(np.zeros((2, 0, 3), bool))
    with pytest.raises(ValueError, match="expected 2 boxes"):
        BoxMasks.from_full(np.zeros((2, 3, 3), bool), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="x2 >= x1"):
        BoxMasks.from_full(np.zeros((1, 3, 3), bool), [[2, 0, 1, 1]])
    with pytest.raises(TypeError, match="expected an"):
        BoxMasks.from_full(None)
    with pytest.raises(ValueError, match="num_threads"):
        BoxMasks.from_full(np.zeros((1, 3, 3), bool), num_threads=0)


def test_from_tile_masks_errors() -> None:
    m = np.zeros((2, 8, 8), np.float32)
    b = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(2, 2\)"):
        BoxMasks.from_tile_masks(m, b, np.zeros((3, 2), int))
    with pytest.raises(TypeError, match="integer"):
        BoxMasks.from_tile_masks(m, b, (1.5, 2.0))
    with pytest.raises(ValueError, match="box_coords"):
        BoxMasks.from_tile_masks(m, b, box_coords="world")
    with pytest.raises(TypeError, match="dtype"):
        BoxMasks.from_tile_masks(m.astype(np.int64), b)
    with pytest.raises(ValueError, match="expected 2 boxes"):
        BoxMasks.from_tile_masks(m, b[:1])
    with pytest.raises(TypeError, match="threshold"):
        BoxMasks.from_tile_masks(m, b, mask_threshold="0.5")


def test_from_crops_errors() -> None:
    with pytest.raises(ValueError, match=r"expected shape \(h, w\) = \(2, 3\)"):
        BoxMasks.from_crops(np.array([[0, 0, 3, 2]]), [np.zeros((3, 2), bool)], regions=True)
    with pytest.raises(ValueError, match="expected 1 bitmaps"):
        BoxMasks.from_crops(np.array([[0, 0, 3, 2]]), [], regions=True)
    with pytest.raises(TypeError, match="bool or uint8"):
        BoxMasks.from_crops(np.array([[0, 0, 1, 1]]), [np.zeros((1, 1), np.float64)], regions=True)
    with pytest.raises(TypeError, match="integer"):
        BoxMasks.from_crops(np.array([[0, 0, 1.0, 1]]), [np.zeros((1, 1), bool)], regions=True)
    with pytest.raises(ValueError, match=">= 0"):
        BoxMasks.from_crops(np.array([[0, 0, -1, 1]]), [np.zeros((1, 1), bool)], regions=True)


def test_method_errors() -> None:
    bm = small()
    with pytest.raises(TypeError, match="dx"):
        bm.shift(1.5, 0)
    with pytest.raises(ValueError, match="int32"):
        bm.shift(2**31 - 2, 0)
    with pytest.raises(ValueError, match="expected 2 regions"):
        bm.reframe(np.zeros((3, 4), np.int32))
    with pytest.raises(ValueError, match="inside the image"):
        bm.reframe(bm.regions + [100, 0, 0, 0], image_shape=(6, 8))
    no_shape = bm.shift(0, 0)
    for call in (no_shape.to_full, no_shape.to_coco_rle, no_shape.clip, no_shape.to_label_image):
        with pytest.raises(ValueError, match="image_shape"):
            call()
    with pytest.raises(IndexError):
        bm.mask(5)
    with pytest.raises(TypeError, match="canvas"):
        bm.paste(0, [[0]])
    with pytest.raises(ValueError, match="cannot hold"):
        BoxMasks.from_full(np.ones((300, 2, 2), bool)).to_label_image(dtype=np.uint8)
