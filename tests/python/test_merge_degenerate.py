"""Degenerate inputs that once hung the spatial index: every box of zero area."""

from __future__ import annotations

import numpy as np
import pytest

import fissure
from fissure._reference import merge as _reference


@pytest.mark.parametrize("func", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize(
    "boxes",
    [
        [[0, 2, 0, 2], [0, 0, 0, 0]],            # two points
        [[5, 2, 5, 2], [5, 0, 5, 0], [9, 9, 9, 9]],
        [[0, 0, 0, 7], [3, 0, 3, 7]],            # two vertical segments
        [[1e6, 1e6, 1e6, 1e6], [0, 0, 0, 0]],    # far apart
    ],
)
def test_zero_area_boxes_finish_and_match_reference(func: str, boxes: list) -> None:
    b = np.asarray(boxes, np.float32)
    s = np.linspace(1.0, 0.25, len(b)).astype(np.float32)
    for metric in ("iou", "ios"):
        for thr in (0.0, 0.5, 0.75, 1.0):
            got = getattr(fissure, func)(b, s, None, match_threshold=thr, match_metric=metric,
                                         class_agnostic=True)
            ref = getattr(_reference, func)(b, s, None, match_threshold=thr, match_metric=metric,
                                            class_agnostic=True)
            if func == "nms":
                np.testing.assert_array_equal(got, ref)
            else:
                np.testing.assert_array_equal(got.keep, ref.keep)
                np.testing.assert_array_equal(got.boxes, ref.boxes)


def test_many_random_zero_area_boxes_match_reference(rng: np.random.Generator) -> None:
    for _ in range(50):
        n = int(rng.integers(1, 80))
        xy = rng.integers(0, 30, size=(n, 2)).astype(np.float32)
        b = np.concatenate([xy, xy], axis=1)
        s = rng.integers(1, 4, size=n).astype(np.float32) / 4
        c = rng.integers(0, 2, size=n)
        np.testing.assert_array_equal(
            fissure.greedy_nmm(b, s, c, match_threshold=0.5).keep,
            _reference.greedy_nmm(b, s, c, match_threshold=0.5).keep,
        )
