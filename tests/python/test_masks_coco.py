"""COCO RLE of box-local masks against pycocotools (the reference implementation)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fissure import BoxMasks, _core
from oracles import mask_reference as ref

mask_utils = pytest.importorskip("pycocotools.mask")

SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (17, 13), (33, 64), (64, 33), (101, 77)]


def coco_encode(masks: np.ndarray) -> list:
    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


@pytest.mark.parametrize(("H", "W"), SHAPES)
def test_encode_is_byte_identical(rng: np.random.Generator, H: int, W: int) -> None:
    masks = ref.random_full_masks(rng, 60, H, W)
    expected = coco_encode(masks)
    assert BoxMasks.from_full(masks).to_coco_rle() == expected
    boxes = ref.random_boxes_for(rng, masks)
    # box regions cut the masks: compare with the encoding of what they keep
    for bm in (BoxMasks.from_full(masks), BoxMasks.from_full(masks, boxes)):
        full = bm.to_full()
        ours = bm.to_coco_rle()
        assert ours == coco_encode(full)  # dicts: size [H, W] and the same counts bytes
        assert all(type(r["counts"]) is bytes and r["size"] == [H, W] for r in ours)
        unc = bm.to_coco_rle(compressed=False)
        for i, r in enumerate(unc):
            assert r["counts"] == ref.coco_counts(full[i])
            assert ref.coco_string_from_counts(r["counts"]) == ours[i]["counts"]


def test_special_masks_byte_identical() -> None:
    H, W = 7, 5
    cases = np.zeros((8, H, W), bool)
    cases[1] = True  # full image
    cases[2, 0, 0] = True  # first pixel
    cases[3, -1, -1] = True  # last pixel
    cases[4, :, 0] = True  # first column
    cases[5, :, -1] = True  # last column: ends on a run of ones
    cases[6, 0, :] = True  # top row
    cases[7, 1:-1, 1:-1] = True
    bm = BoxMasks.from_full(cases)
    assert bm.to_coco_rle() == coco_encode(cases)
    assert bm.to_coco_rle(compressed=False)[0]["counts"] == [H * W]
    assert bm.to_coco_rle(compressed=False)[1]["counts"] == [0, H * W]
    # a region spanning every row: runs of ones join across columns
    assert bm.to_coco_rle(compressed=False)[4]["counts"] == [0, H, H * (W - 1)]


def test_large_counts_use_several_characters(rng: np.random.Generator) -> None:
    H, W = 1500, 1700  # counts above 2**20 need five 5-bit groups; deltas go negative
    masks = np.zeros((3, H, W), bool)
    masks[0, 1000:1003, 1600:1601] = True
    masks[1, 0:5, 0:2] = True
    masks[1, -5:, -2:] = True
    masks[2, 700:900, 10:1690] = rng.random((200, 1680)) < 0.001
    bm = BoxMasks.from_full(masks)
    assert bm.to_coco_rle() == coco_encode(masks)
    back = BoxMasks.from_coco_rle(bm.to_coco_rle())
    assert back.equals(bm)


@pytest.mark.parametrize(("H", "W"), SHAPES)
def test_decode_vs_pycocotools(rng: np.random.Generator, H: int, W: int) -> None:
    masks = ref.random_full_masks(rng, 50, H, W)
    rles = coco_encode(masks)
    decoded = mask_utils.decode(rles).transpose(2, 0, 1).astype(bool)
    # tight regions, compressed bytes
    bm = BoxMasks.from_coco_rle(rles)
    assert bm.image_shape == (H, W)
    np.testing.assert_array_equal(bm.to_full(), decoded)
    assert bm.equals(BoxMasks.from_full(decoded))
    # str counts (as json.load gives them) and uncompressed list counts
    as_json = json.loads(
        json.dumps([{"size": r["size"], "counts": r["counts"].decode()} for r in rles])
    )
    assert BoxMasks.from_coco_rle(as_json).equals(bm)
    unc = [{"size": [H, W], "counts": ref.coco_counts(m)} for m in masks]
    assert BoxMasks.from_coco_rle(unc).equals(bm)
    # box regions: the decoded full masks cropped to each clipped region
    boxes = ref.random_boxes_for(rng, masks)
    bb = BoxMasks.from_coco_rle(rles, boxes)
    assert bb.equals(BoxMasks.from_full(decoded, boxes))


@pytest.mark.parametrize(("H", "W"), SHAPES)
def test_area_and_bbox_vs_pycocotools(rng: np.random.Generator, H: int, W: int) -> None:
    masks = ref.random_full_masks(rng, 50, H, W)
    rles = coco_encode(masks)
    bm = BoxMasks.from_full(masks, ref.random_boxes_for(rng, masks))
    full = bm.to_full()
    rles = coco_encode(full)
    np.testing.assert_array_equal(bm.areas(), mask_utils.area(rles).astype(np.int64))
    coco_boxes = mask_utils.toBbox(rles)  # xywh, all zero for an empty mask
    tb = bm.tight_boxes()
    empty = bm.areas() == 0
    xywh = np.concatenate([tb[:, :2], tb[:, 2:] - tb[:, :2]], axis=1)
    np.testing.assert_array_equal(xywh[~empty], coco_boxes[~empty].astype(np.float32))
    # empty masks: zero-size box at the region's origin (pycocotools says [0, 0, 0, 0])
    np.testing.assert_array_equal(tb[empty][:, :2], bm.regions[empty][:, :2].astype(np.float32))
    assert (xywh[empty][:, 2:] == 0).all()


def test_regions_reaching_outside_the_canvas(rng: np.random.Generator) -> None:
    masks = ref.random_full_masks(rng, 30, 40, 50)
    bm = BoxMasks.from_full(masks).shift(9, -6)  # no image_shape any more
    with pytest.raises(ValueError, match="image_shape"):
        bm.to_coco_rle()
    ours = bm.to_coco_rle((40, 50))
    assert ours == coco_encode(ref.to_full(bm.data, bm.offsets, bm.regions, 40, 50))


def test_counts_string_codec_vs_transcription(rng: np.random.Generator) -> None:
    for _ in range(300):
        m = int(rng.integers(1, 40))
        counts = rng.integers(0, 2 ** int(rng.integers(1, 34)), m).astype(np.int64)
        s = _core.coco_counts_to_string(counts)
        assert s == ref.coco_string_from_counts(counts.tolist())
        assert _core.coco_counts_from_string(s).tolist() == counts.tolist()
        assert ref.counts_from_coco_string(s) == counts.tolist()


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        (b"0", "summing to 20"),  # too short: 0 pixels
        (b"4", "summing to 20"),  # 4 of 20
        (b"4d", "truncated"),  # continuation bit set on the last char
        (b"4\x7f", "characters '0'..'o'"),
        (b"4 0", "characters '0'..'o'"),
        (b"oooooooooooooo0", "more than 12"),
        ([5, 5, 5], "summing to 20"),
        ([5, -5, 20], "counts >= 0"),
        ([25], "more by count"),
        ([], "summing to 20"),
    ],
)
def test_corrupt_rles_raise(counts, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BoxMasks.from_coco_rle([{"size": [4, 5], "counts": counts}])


@pytest.mark.parametrize(
    ("rles", "exc", "match"),
    [
        ({"size": [4, 5], "counts": b"d0"}, TypeError, "list of RLE dicts"),
        ([{"size": [4, 5]}], ValueError, "'size' and 'counts'"),
        ([["size", "counts"]], TypeError, "expected a dict"),
        ([{"size": [4], "counts": [20]}], ValueError, "height, width"),
        ([{"size": [0, 5], "counts": [0]}], ValueError, "positive"),
        ([{"size": [-4, 5], "counts": [20]}], ValueError, "positive"),
        (
            [{"size": [4, 5], "counts": [20]}, {"size": [5, 4], "counts": [20]}],
            ValueError,
            "like the others",
        ),
        ([{"size": [4, 5], "counts": [2.0, 18.0]}], TypeError, "integer run lengths"),
        ([{"size": [4, 5], "counts": 20}], TypeError, "bytes, str or a list"),
        ([{"size": [4, 5], "counts": "é"}], ValueError, "ASCII"),
    ],
)
def test_malformed_rle_dicts(rles, exc, match: str) -> None:
    with pytest.raises(exc, match=match):
        BoxMasks.from_coco_rle(rles)


def test_rle_boxes_and_shape_checks() -> None:
    rle = [{"size": [4, 5], "counts": [20]}]
    with pytest.raises(ValueError, match="expected 1 boxes"):
        BoxMasks.from_coco_rle(rle, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="like the others"):
        BoxMasks.from_coco_rle(rle, image_shape=(5, 4))
    assert BoxMasks.from_coco_rle([], image_shape=(3, 3)).image_shape == (3, 3)
    # a box entirely outside the image gives an empty zero-size mask
    out = BoxMasks.from_coco_rle(
        [{"size": [4, 5], "counts": [0, 20]}], np.array([[10, 10, 12, 12]], np.float32)
    )
    assert out.regions[0, 2:].tolist() == [0, 0] and out.areas().tolist() == [0]


def test_zero_length_runs_decode() -> None:
    # supervision splits long runs with zero-length runs; pycocotools' decoder accepts them
    counts = [3, 0, 2, 4, 0, 1, 10]
    rle = [{"size": [4, 5], "counts": counts}]
    full = ref.decode_counts(counts, 4, 5)
    assert BoxMasks.from_coco_rle(rle).equals(BoxMasks.from_full(full[None]))


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None)
@given(
    s=st.binary(max_size=12)
    | st.text(alphabet=[chr(c) for c in range(48, 112)], max_size=12).map(str.encode),
    H=st.integers(1, 6),
    W=st.integers(1, 6),
)
def test_fuzzed_counts_strings_raise_or_match_pycocotools(s: bytes, H: int, W: int) -> None:
    try:
        bm = BoxMasks.from_coco_rle([{"size": [H, W], "counts": s}])
    except ValueError:
        return
    # accepted strings are well-formed: pycocotools decodes them to the same pixels
    expected = mask_utils.decode({"size": [H, W], "counts": s}).astype(bool)
    np.testing.assert_array_equal(bm.to_full()[0], expected)


@settings(max_examples=200, deadline=None)
@given(
    H=st.integers(1, 9),
    W=st.integers(1, 9),
    data=st.data(),
)
def test_fuzzed_masks_roundtrip(H: int, W: int, data) -> None:
    bits = data.draw(st.lists(st.booleans(), min_size=H * W, max_size=H * W))
    m = np.array(bits, dtype=bool).reshape(1, H, W)
    box = data.draw(st.lists(st.floats(-3, 12, allow_nan=False), min_size=4, max_size=4))
    box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
    for bm in (BoxMasks.from_full(m), BoxMasks.from_full(m, [box])):
        rles = bm.to_coco_rle()
        assert rles == coco_encode(bm.to_full())
        assert BoxMasks.from_coco_rle(rles, bm.region_boxes if len(bm) else None).equals(bm)
