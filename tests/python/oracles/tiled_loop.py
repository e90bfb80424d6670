"""An independent tiled pipeline: SAHI's slicing, the caller's per-tile model run and decode
(the model family's own post-processing, written in the test), boxes shifted into the image
and clipped to their tile, then SAHI's own GreedyNMMPostprocess. The oracle the model-family
tests compare TiledDetector with."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np


def sahi_merge(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
               match_threshold: float = 0.5, match_metric: str = "IOS"):
    """SAHI's GreedyNMMPostprocess (per class) on plain arrays; (boxes, scores, classes)."""
    from sahi.postprocess.combine import GreedyNMMPostprocess
    from sahi.prediction import ObjectPrediction

    preds = [ObjectPrediction(bbox=[float(v) for v in b], score=float(s), category_id=int(c),
                              category_name=str(int(c)))
             for b, s, c in zip(boxes, scores, classes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        merged = GreedyNMMPostprocess(match_threshold=match_threshold,
                                      match_metric=match_metric, class_agnostic=False)(preds)
    return (np.array([p.bbox.to_xyxy() for p in merged], np.float64).reshape(-1, 4),
            np.array([p.score.value for p in merged], np.float64),
            np.array([p.category.id for p in merged], np.int64))


def tiled_loop(image: np.ndarray, tile_size: int, overlap: float,
               run_tile: Callable[[np.ndarray], tuple], match_threshold: float = 0.5):
    """``run_tile(crop)`` returns (boxes xyxy in the crop's pixels, scores, classes) after the
    family's own decode and threshold; boxes are shifted, clipped to the tile, zero-area ones
    dropped, and all tiles merged by SAHI. Returns (boxes, scores, classes)."""
    from sahi.slicing import get_slice_bboxes

    h, w = image.shape[:2]
    all_b, all_s, all_c = [], [], []
    for x0, y0, x1, y1 in get_slice_bboxes(h, w, tile_size, tile_size,
                                           overlap_height_ratio=overlap,
                                           overlap_width_ratio=overlap):
        b, s, c = run_tile(image[y0:y1, x0:x1])
        b = np.asarray(b, np.float64).reshape(-1, 4) + [x0, y0, x0, y0]
        b[:, [0, 2]] = b[:, [0, 2]].clip(x0, x1)
        b[:, [1, 3]] = b[:, [1, 3]].clip(y0, y1)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        all_b.append(b[keep]), all_s.append(np.asarray(s)[keep]), all_c.append(np.asarray(c)[keep])
    return sahi_merge(np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_c),
                      match_threshold)


def assert_same_detections(dets, ref, atol: float = 1e-3) -> None:
    """fissure Detections equal the oracle's (boxes within atol px, scores to float32, classes
    exactly), whatever the order."""
    boxes, scores, classes = ref
    assert len(dets) == len(scores) > 0, (len(dets), len(scores))
    # order both by class and box rounded to 0.01 px (ties of the last bits cannot reorder)
    def order(b, c):
        r = np.round(np.asarray(b, np.float64), 2)
        return np.lexsort((r[:, 3], r[:, 2], r[:, 1], r[:, 0], c))
    o1, o2 = order(dets.boxes, dets.class_ids), order(boxes, classes)
    np.testing.assert_allclose(dets.boxes[o1], boxes[o2], atol=atol, rtol=0)
    np.testing.assert_allclose(dets.scores[o1], scores[o2], atol=1e-6, rtol=1e-6)
    np.testing.assert_array_equal(dets.class_ids[o1], classes[o2])
