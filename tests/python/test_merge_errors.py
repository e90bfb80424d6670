"""Bad input to the merge functions: the right exception, naming what was expected and what
came; never a crash."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure import _core
from fissure.masks import BoxMasks

BOXES = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], np.float32)
SCORES = np.array([0.9, 0.8, 0.7], np.float32)
ONE_MASK = BoxMasks(np.ones(100, np.uint8), [0, 100], [[0, 0, 10, 10]])


def _masks_for(boxes: np.ndarray) -> BoxMasks:
    regions = np.array([[0, 0, 2, 2]] * len(boxes), np.int32)
    return BoxMasks(np.ones(4 * len(boxes), np.uint8), np.arange(len(boxes) + 1) * 4, regions)


CASES = [
    ({"boxes": [[0, 0, np.nan, 1]], "scores": [0.5]}, ValueError, "finite"),
    ({"boxes": [[0, 0, np.inf, 1]], "scores": [0.5]}, ValueError, "finite"),
    ({"boxes": [[5, 0, 1, 1]], "scores": [0.5]}, ValueError, "x2 >= x1"),
    ({"boxes": [[0, 5, 1, 1]], "scores": [0.5]}, ValueError, "y2 >= y1"),
    ({"boxes": BOXES[:, :3]}, ValueError, r"expected shape \(N, 4\)"),
    ({"boxes": "boxes"}, TypeError, "expected an \\(N, 4\\) array"),
    ({"boxes": np.array([["a", "b", "c", "d"]])}, TypeError, "numeric"),
    ({"scores": SCORES[:2]}, ValueError, r"scores: expected shape \(3,\)"),
    ({"scores": np.array([0.9, np.nan, 0.7])}, ValueError, "scores must be finite"),
    ({"scores": np.array(["a", "b", "c"])}, TypeError, "scores: expected a numeric"),
    ({"class_ids": [0, 1]}, ValueError, r"class_ids: expected shape \(3,\)"),
    ({"class_ids": [0.5, 1, 2]}, ValueError, "integer class ids"),
    ({"class_ids": np.array(["a", "b", "c"])}, TypeError, "class_ids: expected integer"),
    ({"class_ids": [0.0, 1e30, 2.0]}, ValueError, "within int64"),
    ({"class_ids": np.array([0, 2**64 - 1, 2], np.uint64)}, ValueError, "within int64"),
    ({"match_threshold": 1.5}, ValueError, r"match_threshold: expected a value in \[0, 1\], got 1.5"),
    ({"match_threshold": -0.1}, ValueError, r"match_threshold: expected a value in \[0, 1\]"),
    ({"match_threshold": float("nan")}, ValueError, "threshold"),
    ({"match_threshold": "0.5"}, TypeError, "match_threshold: expected a number"),
    ({"match_metric": "giou"}, ValueError, r"match_metric: expected one of \('iou', 'ios'\), got 'giou'"),
    ({"match_metric": 1}, TypeError, "match_metric: expected one of"),
    ({"match": "le"}, ValueError, r"match: expected one of \('ge', 'gt'\), got 'le'"),
    ({"class_agnostic": "yes"}, TypeError, "class_agnostic: expected a bool"),
    ({"order": [0, 1]}, ValueError, r"order: expected shape \(3,\)"),
    ({"order": [0, 1, 1]}, ValueError, "index 1 appears 2 times"),
    ({"order": [0, 1, 3]}, ValueError, r"permutation of range\(3\), got 3 at position 2"),
    ({"order": [0, -1, 2]}, ValueError, "got -1 at position 1"),
    ({"order": [0.0, 1.0, 2.0]}, TypeError, "order: expected an integer permutation"),
    ({"masks": ONE_MASK}, ValueError, r"masks: expected 3 masks \(one per box\), got 1"),
    ({"masks": np.zeros((3, 4, 4), bool)}, TypeError, "masks: expected a fissure.BoxMasks"),
    ({"mask_metric": True}, ValueError, "mask_metric=True: expected masks"),
    ({"num_threads": 0}, ValueError, "num_threads"),
    ({"num_threads": 1.5}, TypeError, "num_threads"),
]


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize(("kwargs", "exc", "message"), CASES)
def test_bad_arguments(name: str, kwargs: dict, exc: type, message: str) -> None:
    args = {"boxes": BOXES, "scores": SCORES}
    args.update(kwargs)
    boxes, scores = args.pop("boxes"), args.pop("scores")
    with pytest.raises(exc, match=message):
        getattr(fissure, name)(boxes, scores, **args)


@pytest.mark.parametrize("name", ["greedy_nmm", "nmm"])
@pytest.mark.parametrize(
    ("recheck", "exc", "message"),
    [
        ("SAHI", ValueError, "recheck: expected one of"),
        ("drop", ValueError, "got 'drop'"),
        (None, TypeError, "recheck"),
    ],
)
def test_bad_recheck(name: str, recheck: object, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        getattr(fissure, name)(BOXES, SCORES, recheck=recheck)


def test_metric_names_are_case_insensitive() -> None:
    a = fissure.nms(BOXES, SCORES, match_metric="IOU", match_threshold=0.1)
    b = fissure.nms(BOXES, SCORES, match_metric="iou", match_threshold=0.1)
    np.testing.assert_array_equal(a, b)


# The compiled layer checks shapes and dtypes itself (the Python layer is not the only caller).
CORE_CASES = [
    (
        lambda: _core.nms(BOXES.astype(np.float64), SCORES),
        TypeError,
        "incompatible function arguments",
    ),
    (
        lambda: _core.nms(np.asfortranarray(np.ones((3, 4), np.float32)), SCORES),
        TypeError,
        "incompatible",
    ),
    (
        lambda: _core.nms(BOXES[:, :3].copy(), SCORES),
        ValueError,
        r"boxes: expected shape \(n, 4\), got \(3, 3\)",
    ),
    (
        lambda: _core.nms(BOXES, SCORES[:2].copy()),
        ValueError,
        r"scores: expected shape \(3,\), got \(2,\)",
    ),
    (
        lambda: _core.nms(BOXES, SCORES, np.zeros(2, np.int64)),
        ValueError,
        r"class_ids: expected shape \(3,\)",
    ),
    (lambda: _core.nms(BOXES, SCORES, metric="x"), ValueError, "metric: expected 'iou' or 'ios'"),
    (lambda: _core.nms(BOXES, SCORES, threshold=float("nan")), ValueError, "threshold"),
    (lambda: _core.nms(BOXES, SCORES, order=np.array([0, 0, 1])), ValueError, "appears twice"),
    (lambda: _core.nms(BOXES, SCORES, order=np.array([0, 5, 1])), ValueError, "permutation"),
    (lambda: _core.nms(BOXES, SCORES, mask_metric=True), ValueError, "mask_metric: expected masks"),
    (lambda: _core.greedy_nmm(BOXES, SCORES, recheck="nope"), ValueError, "recheck: expected"),
    (
        lambda: _core.greedy_nmm(BOXES, SCORES, mask_data=np.ones(4, np.uint8)),
        ValueError,
        "together",
    ),
    (
        lambda: _core.greedy_nmm(
            BOXES,
            SCORES,
            mask_data=np.ones(11, np.uint8),
            mask_offsets=np.array([0, 4, 8, 12]),
            mask_regions=np.array([[0, 0, 2, 2]] * 3, np.int32),
        ),
        ValueError,
        "mask_data: expected 12 bytes",
    ),
    (
        lambda: _core.greedy_nmm(
            BOXES,
            SCORES,
            mask_data=np.ones(12, np.uint8),
            mask_offsets=np.array([0, 4, 9, 12]),
            mask_regions=np.array([[0, 0, 2, 2]] * 3, np.int32),
        ),
        ValueError,
        "must equal w \\* h",
    ),
    (
        lambda: _core.greedy_nmm(
            BOXES,
            SCORES,
            mask_data=np.ones(12, np.uint8),
            mask_offsets=np.array([0, 4, 8, 12]),
            mask_regions=np.array([[0, 0, 2, 2]] * 2, np.int32),
        ),
        ValueError,
        r"mask_regions: expected shape \(3, 4\)",
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), CORE_CASES)
def test_core_checks(call: object, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        call()  # type: ignore[operator]


def test_inputs_are_converted_explicitly() -> None:
    """Lists, float64 and int boxes, Fortran order: converted in Python, same answer."""
    ref = fissure.greedy_nmm(BOXES, SCORES)
    for boxes in (
        BOXES.tolist(),
        BOXES.astype(np.float64),
        BOXES.astype(np.int32),
        np.asfortranarray(BOXES),
    ):
        res = fissure.greedy_nmm(boxes, SCORES.tolist(), [0, 0, 0], masks=None)
        np.testing.assert_array_equal(res.boxes, ref.boxes)
        np.testing.assert_array_equal(res.members, ref.members)
    res = fissure.greedy_nmm(BOXES, SCORES, masks=_masks_for(BOXES))
    assert res.masks is not None and len(res.masks) == len(res)


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
def test_bad_values_keep_the_python_message(name: str) -> None:
    """The value checks run in the core; a rejection reruns the Python checks, whose
    message (with the offending row) is the one raised."""
    good = [[0, 0, 1, 1]]
    fn = getattr(fissure, name)
    with pytest.raises(ValueError, match=r"row 1 is \[0\.0, 0\.0, nan, 1\.0\]"):
        fn(np.array(good + [[0, 0, np.nan, 1]], np.float32), np.array([0.9, 0.8], np.float32))
    with pytest.raises(ValueError, match=r"x2 >= x1 and y2 >= y1, row 1 is \[5\.0, 0\.0, 1\.0, 1\.0\]"):
        fn(np.array(good + [[5, 0, 1, 1]], np.float32), np.array([0.9, 0.8], np.float32))
    with pytest.raises(ValueError, match=r"scores must be finite, index 1 is nan"):
        fn(np.array(good * 2, np.float32), np.array([0.9, np.nan], np.float32))
