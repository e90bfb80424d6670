"""fissure.Detections: construction, indexing, merge and areas against supervision's
``sv.Detections`` with dense masks; conversion to and from supervision."""

from __future__ import annotations

import numpy as np
import pytest
from fissure import BoxMasks, Detections
from oracles import mask_reference as ref

sv = pytest.importorskip("supervision")
from supervision.detection.compact_mask import CompactMask

H, W = 48, 64


def box_crop(full: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Numpy oracle: each full mask keeps only its box's pixel region (floor/ceil, clipped)."""
    out = np.zeros_like(full)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.float64)):
        xa, ya = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        xb, yb = min(int(np.ceil(x2)), full.shape[2]), min(int(np.ceil(y2)), full.shape[1])
        if xa < xb and ya < yb:
            out[i, ya:yb, xa:xb] = full[i, ya:yb, xa:xb]
    return out


def make_case(rng: np.random.Generator, n: int = 25):
    """(ours, sv twin with dense masks): masks cropped to the boxes on both sides."""
    full = ref.random_full_masks(rng, n, H, W)
    boxes = ref.random_boxes_for(rng, full)
    boxes = np.clip(boxes, 0, [W, H, W, H]).astype(np.float32)
    dense = box_crop(full, boxes)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    ids = rng.integers(0, 4, n)
    data = {"tile_index": rng.integers(0, 9, n), "feat": rng.normal(size=(n, 3))}
    ours = Detections(boxes, scores, ids, BoxMasks.from_full(full, boxes),
                      ["a", "b", "c", "d"], data=data)
    twin = sv.Detections(xyxy=boxes.copy(), mask=dense, confidence=scores.copy(),
                         class_id=ids.copy(), data={k: v.copy() for k, v in data.items()})
    return ours, twin


def assert_same(ours: Detections, twin) -> None:
    np.testing.assert_array_equal(ours.boxes, twin.xyxy)
    np.testing.assert_array_equal(ours.scores, twin.confidence)
    np.testing.assert_array_equal(ours.class_ids, twin.class_id)
    if twin.mask is None:
        assert ours.masks is None
    else:
        dense = twin.mask.to_dense() if isinstance(twin.mask, CompactMask) else twin.mask
        np.testing.assert_array_equal(ours.masks.to_full((H, W)), dense)
    assert set(ours.data) <= set(twin.data)
    for k, v in ours.data.items():
        np.testing.assert_array_equal(v, twin.data[k])


# -- construction and validation ----------------------------------------------------------


def test_dtypes_and_conversions() -> None:
    d = Detections([[1, 2, 3, 4]], [1], np.array([2.0]), class_names=("x", "y", "z"))
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (1, 4)
    assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int64
    assert d.class_names == {0: "x", 1: "y", 2: "z"}
    assert d.labels == ["z 1.00"] and d.names == ["z"]
    e = Detections.empty((10, 20), {3: "q"})
    assert len(e) == 0 and e.is_empty() and e.image_shape == (10, 20)
    assert e.boxes.shape == (0, 4) and e.class_names == {3: "q"}
    assert not Detections([[0, 0, 1, 1]], [0.5], [0]).is_empty()


def test_image_shape_from_masks_and_masks_clipped_to_image_shape() -> None:
    full = np.zeros((1, 10, 12), bool)
    full[0, 2:5, 3:9] = True
    m = BoxMasks.from_full(full)
    d = Detections([[3, 2, 9, 5]], [0.5], [0], m)
    assert d.image_shape == (10, 12)
    # masks without an image shape are cut to the one given
    moved = m.shift(5, 0)
    d2 = Detections([[8, 2, 14, 5]], [0.5], [0], moved, image_shape=(10, 12))
    want = np.zeros((1, 10, 12), bool)
    want[0, 2:5, 8:12] = True
    np.testing.assert_array_equal(d2.masks.to_full(), want)
    with pytest.raises(ValueError, match="does not match image_shape"):
        Detections([[3, 2, 9, 5]], [0.5], [0], m, image_shape=(11, 12))


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"boxes": [[0, 0, np.nan, 1]]}, ValueError, "finite"),
        ({"boxes": [[0, 0, 1]]}, ValueError, r"\(N, 4\)"),
        ({"boxes": [[2, 0, 1, 1]]}, ValueError, "x2 >= x1"),
        ({"boxes": "abc"}, TypeError, "boxes"),
        ({"scores": [np.nan]}, ValueError, "finite"),
        ({"scores": [0.1, 0.2]}, ValueError, r"expected shape \(1,\)"),
        ({"scores": None}, TypeError, "scores"),
        ({"class_ids": [0.5]}, ValueError, "integer"),
        ({"class_ids": ["a"]}, TypeError, "class ids"),
        ({"class_ids": None}, TypeError, "class_ids"),
        ({"masks": np.zeros((1, 4, 4), bool)}, TypeError, "BoxMasks"),
        ({"masks": BoxMasks.empty()}, ValueError, "expected 1 masks"),
        ({"class_names": "abc"}, TypeError, "class_names"),
        ({"class_names": {0: 1}}, TypeError, r"class_names\[0\]"),
        ({"class_names": {"a": "b"}}, TypeError, "integer class ids"),
        ({"image_shape": (0, 5)}, ValueError, "positive"),
        ({"image_shape": 5}, TypeError, "height, width"),
        ({"data": {"t": [1, 2]}}, ValueError, "length 1"),
        ({"data": {"t": 3}}, ValueError, "length 1"),
        ({"data": {1: [1]}}, TypeError, "str keys"),
        ({"data": [1]}, TypeError, "dict"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, err, match) -> None:
    args = {"boxes": [[0, 0, 1, 1]], "scores": [0.5], "class_ids": [0]}
    args.update(kwargs)
    with pytest.raises(err, match=match):
        Detections(**args)


def test_repr_is_short_and_names_classes() -> None:
    d = Detections([[0, 0, 1, 1], [0, 0, 2, 2]], [0.25, 0.75], [1, 1], class_names=["a", "b"],
                   data={"tile_index": [0, 1]})
    r = repr(d)
    assert r.startswith("Detections(n=2") and "b: 2" in r and "0.25..0.75" in r
    assert "tile_index" in r and len(r) < 200
    assert repr(Detections.empty()).startswith("Detections(n=0")


# -- indexing against supervision -----------------------------------------------------------


def test_indexing_equals_supervision(rng: np.random.Generator) -> None:
    ours, twin = make_case(rng)
    n = len(ours)
    keys = [
        slice(None),
        slice(3, 11),
        slice(None, None, 3),
        slice(-5, None),
        slice(7, 2),
        [4, 0, 0, n - 1],
        np.array([-1, 2]),
        np.array([], dtype=np.int64),
        [],
        twin.confidence > 0.5,
        twin.class_id == 2,
        np.zeros(n, bool),
    ]
    for key in keys:
        assert_same(ours[key], twin[key])
    for i in (0, 5, -1, np.int32(3)):
        got, want = ours[i], twin[i]
        assert len(got) == 1
        assert_same(got, want)
    np.testing.assert_array_equal(ours["tile_index"], twin["tile_index"])
    assert ours["missing"] is None and twin["missing"] is None
    # iteration yields the same rows as integer indexing
    assert [d.boxes.tolist() for d in ours] == [[b.tolist()] for b in twin.xyxy]


def test_indexing_copies_and_keeps_metadata(rng: np.random.Generator) -> None:
    ours, _ = make_case(rng, 6)
    sub = ours[1:3]
    sub.boxes[:] = 0
    sub.data["tile_index"][:] = -1
    assert (ours.boxes[1:3] != 0).any() and (ours.data["tile_index"][1:3] != -1).all()
    assert sub.class_names == ours.class_names and sub.image_shape == ours.image_shape


def test_bad_indices() -> None:
    d = Detections([[0, 0, 1, 1]] * 3, [0.5] * 3, [0] * 3)
    with pytest.raises(IndexError, match="out of range"):
        d[3]
    with pytest.raises(IndexError, match="out of range"):
        d[[0, -4]]
    with pytest.raises(IndexError, match=r"boolean index: expected shape \(3,\)"):
        d[np.array([True, False])]
    for bad in (1.5, None, True, np.zeros((2, 2), int)):
        with pytest.raises(TypeError, match="indices"):
            d[bad]


def test_setitem_sets_data() -> None:
    d = Detections([[0, 0, 1, 1]] * 2, [0.5] * 2, [0] * 2)
    d["names"] = ["p", "q"]
    assert d.data["names"].tolist() == ["p", "q"]
    with pytest.raises(ValueError, match="length 2"):
        d["x"] = [1]


def test_equality() -> None:
    a = Detections([[0, 0, 1, 1]], [0.5], [0], data={"t": [1]})
    b = Detections([[0, 0, 1, 1]], [0.5], [0], data={"t": [1]})
    assert a == b
    assert a != Detections([[0, 0, 1, 1]], [0.5], [1], data={"t": [1]})
    assert a != Detections([[0, 0, 1, 1]], [0.5], [0], data={"t": [2]})
    assert a != Detections([[0, 0, 1, 1]], [0.5], [0])


# -- merge and area ---------------------------------------------------------------------------


def test_merge_equals_supervision(rng: np.random.Generator) -> None:
    parts = [make_case(rng, n) for n in (7, 0, 12, 1)]
    got = Detections.merge([p[0] for p in parts])
    want = sv.Detections.merge([p[1] for p in parts])
    assert_same(got, want)
    assert got.image_shape == (H, W) and got.class_names == {0: "a", 1: "b", 2: "c", 3: "d"}


def test_merge_rules() -> None:
    m = BoxMasks.from_full(np.ones((1, 8, 8), bool))
    with_m = Detections([[0, 0, 8, 8]], [0.5], [0], m)
    without = Detections([[0, 0, 2, 2]], [0.5], [0], image_shape=(8, 8))
    with pytest.raises(ValueError, match="all or none"):
        Detections.merge([with_m, without])
    # empty sets are ignored for the mask rule, as in supervision
    assert len(Detections.merge([with_m, Detections.empty((8, 8))])) == 1
    with pytest.raises(ValueError, match="different images"):
        Detections.merge([without, Detections.empty((9, 8))])
    with pytest.raises(ValueError, match="named both"):
        Detections.merge([Detections.empty(class_names=["a"]),
                          Detections.empty(class_names=["b"])])
    with pytest.raises(ValueError, match="same data keys"):
        Detections.merge([without, Detections([[0, 0, 1, 1]], [1], [0], data={"t": [1]})])
    with pytest.raises(TypeError, match="list of Detections"):
        Detections.merge(without)
    e = Detections.merge([])
    assert len(e) == 0 and e.image_shape is None


def test_area_equals_supervision(rng: np.random.Generator) -> None:
    ours, twin = make_case(rng)
    np.testing.assert_array_equal(ours.area, twin.area)
    assert ours.area.dtype == np.int64
    no_masks = ours._replace(masks=None)
    twin.mask = None
    np.testing.assert_allclose(no_masks.area, twin.area, rtol=1e-6)
    np.testing.assert_allclose(no_masks.box_area, twin.box_area, rtol=1e-6)


# -- supervision conversion -----------------------------------------------------------------


@pytest.mark.parametrize("dense", [False, True])
def test_to_supervision(rng: np.random.Generator, dense: bool) -> None:
    ours, twin = make_case(rng)
    got = ours.to_supervision(dense=dense)
    assert isinstance(got, sv.Detections)
    assert isinstance(got.mask, np.ndarray if dense else CompactMask)
    if dense:
        assert got.mask.dtype == np.bool_ and got.mask.shape == (len(ours), H, W)
    assert_same(ours, got)
    np.testing.assert_array_equal(got.data["class_name"],
                                  np.array(["a", "b", "c", "d"])[twin.class_id])
    # supervision's own operations accept the result
    np.testing.assert_array_equal(got.area, twin.area)
    assert_same(ours[got.confidence > 0.3], got[got.confidence > 0.3])


def test_to_supervision_without_masks_or_names() -> None:
    d = Detections([[0, 0, 2, 3]], [0.5], [7])
    s = d.to_supervision()
    assert s.mask is None and "class_name" not in s.data
    np.testing.assert_array_equal(s.xyxy, [[0, 0, 2, 3]])
    with pytest.raises(ValueError, match="image_shape"):
        Detections([[0, 0, 2, 3]], [0.5], [7], BoxMasks.from_crops([[0, 0, 2, 3]],
                   [np.ones((3, 2), bool)])).to_supervision()


@pytest.mark.parametrize("kind", ["dense", "compact"])
def test_from_supervision(rng: np.random.Generator, kind: str) -> None:
    _ours, twin = make_case(rng)
    if kind == "compact":
        twin.mask = CompactMask.from_dense(twin.mask, twin.xyxy, image_shape=(H, W))
    twin.data["class_name"] = np.array(["a", "b", "c", "d"])[twin.class_id]
    got = Detections.from_supervision(twin)
    assert_same(got, twin)
    assert got.image_shape == (H, W)
    assert got.class_names == {int(c): "abcd"[c] for c in np.unique(twin.class_id)}
    assert "class_name" not in got.data


def test_from_supervision_dense_masks_keep_pixels_outside_the_box() -> None:
    m = np.zeros((1, 10, 10), bool)
    m[0, 1:3, 1:3] = True
    m[0, 8, 8] = True  # outside the box: supervision keeps it, so do we
    s = sv.Detections(xyxy=np.array([[1.0, 1, 3, 3]]), mask=m)
    np.testing.assert_array_equal(Detections.from_supervision(s).masks.to_full(), m)


def test_from_supervision_defaults() -> None:
    s = sv.Detections(xyxy=np.array([[1, 2, 3, 4], [0, 0, 5, 5]]),
                      tracker_id=np.array([7, 8]))
    d = Detections.from_supervision(s, image_shape=(10, 10))
    assert d.scores.tolist() == [1.0, 1.0] and d.class_ids.tolist() == [0, 0]
    assert d.masks is None and d.image_shape == (10, 10)
    assert d.data["tracker_id"].tolist() == [7, 8]
    assert len(Detections.from_supervision(sv.Detections.empty())) == 0
    with pytest.raises(TypeError, match="supervision Detections"):
        Detections.from_supervision(d)
    with pytest.raises(ValueError, match="does not match image_shape"):
        Detections.from_supervision(
            sv.Detections(xyxy=np.array([[0.0, 0, 1, 1]]), mask=np.ones((1, 4, 4), bool)),
            image_shape=(5, 4),
        )


def test_from_supervision_inconsistent_class_names_stay_in_data() -> None:
    s = sv.Detections(xyxy=np.zeros((2, 4)), class_id=np.array([0, 0]),
                      data={"class_name": np.array(["x", "y"])})
    d = Detections.from_supervision(s)
    assert d.class_names is None and d.data["class_name"].tolist() == ["x", "y"]
    d2 = Detections.from_supervision(s, class_names=["z"])
    assert d2.class_names == {0: "z"} and "class_name" not in d2.data


@pytest.mark.parametrize("dense", [False, True])
def test_round_trip_through_supervision(rng: np.random.Generator, dense: bool) -> None:
    ours, _ = make_case(rng)
    back = Detections.from_supervision(ours.to_supervision(dense=dense),
                                       class_names=ours.class_names)
    np.testing.assert_array_equal(back.boxes, ours.boxes)
    np.testing.assert_array_equal(back.scores, ours.scores)
    np.testing.assert_array_equal(back.class_ids, ours.class_ids)
    np.testing.assert_array_equal(back.masks.to_full(), ours.masks.to_full())
    assert back.class_names == ours.class_names and back.image_shape == ours.image_shape
    assert back.data.keys() == ours.data.keys()
    for k in ours.data:
        np.testing.assert_array_equal(back.data[k], ours.data[k])
