"""SAHI postprocess classes backed by fissure's merge engine.

Swap one object and get SAHI's answer, box for box::

    from fissure.integrations.sahi import GreedyNMMPostprocess

    postprocess = GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS",
                                       class_agnostic=False)
    merged = postprocess(object_predictions)      # list[sahi ObjectPrediction]

``sahi.predict.get_sliced_prediction`` builds its postprocess object itself, looking the
class up by name in ``sahi.predict.POSTPROCESS_NAME_TO_CLASS``; there is no argument to
pass one in. :func:`use_fissure_postprocess` swaps our classes into that table (and
restores SAHI's on exit when used as a context manager)::

    from fissure.integrations.sahi import use_fissure_postprocess

    with use_fissure_postprocess():
        result = get_sliced_prediction(image, model, slice_height=640, slice_width=640)

What "SAHI's answer" means, for sahi 0.12.8 (the version this module is tested against):

* Selection: the engine reproduces SAHI's candidate selection on the float32 ``(N, 6)``
  array SAHI builds (score descending, ties by x1, y1, x2, y2 ascending; a pair matches
  when its metric is ``>=`` the threshold; per category unless class-agnostic).
* Merging (greedy NMM and NMM): SAHI re-checks every selected candidate against the
  growing merged box before merging it (``has_match``, ``>=`` in 0.12.8, in float64 on the
  predictions' own coordinates) and silently drops candidates that fail. This module
  reproduces that re-check exactly, in float64, vectorised over all groups.
* The merged prediction: union box, the highest score, the category of the higher score
  with ties going to the later candidate, the keeper's ``shift_amount``; predictions that
  nothing merged into are returned as the very same objects.
* Masks: SAHI stores polygons and merges them with shapely unions. Here every mask that
  takes part in a merge is rasterised over its own box (``cv2.fillPoly``, SAHI's rounding),
  OR-ed over the union box and turned back into polygons with SAHI's own contour
  function. Boxes of masked merges come out within a pixel of SAHI's and masks agree to a
  rasterised IoU above 0.98 (see docs/api_differences.md), not polygon for polygon.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

try:
    from sahi.postprocess.combine import PostprocessPredictions as _SahiBase
    from sahi.prediction import ObjectPrediction
except ImportError as exc:  # pragma: no cover - exercised only without sahi installed
    raise ImportError(
        "fissure.integrations.sahi needs SAHI: pip install 'sahi>=0.12' shapely"
    ) from exc

from . import _engine

__all__ = [
    "GreedyNMMPostprocess",
    "NMMPostprocess",
    "NMSPostprocess",
    "POSTPROCESS_NAME_TO_CLASS",
    "use_fissure_postprocess",
]

_METRICS = {"IOU": "iou", "IOS": "ios"}


def _check_predictions(object_predictions: Any) -> list[Any]:
    if isinstance(object_predictions, (str, bytes)) or not isinstance(
        object_predictions, Sequence
    ):
        raise TypeError(
            "object_predictions: expected a list of sahi ObjectPrediction, got "
            f"{type(object_predictions).__name__}"
        )
    preds = list(object_predictions)
    for i, p in enumerate(preds):
        if not isinstance(p, ObjectPrediction):
            raise TypeError(
                f"object_predictions[{i}]: expected a sahi ObjectPrediction, got "
                f"{type(p).__name__}"
            )
    return preds


class _Arrays:
    """The numbers SAHI's postprocess reads from a list of predictions.

    ``boxes32``/``scores32`` are what SAHI's ``tonumpy()`` holds (float32), used for
    selection; ``boxes64``/``scores64`` are the predictions' own values, which SAHI's
    re-check and merge arithmetic use.
    """

    __slots__ = ("boxes32", "boxes64", "categories", "has_mask", "scores32", "scores64")

    def __init__(self, preds: list[Any]) -> None:
        n = len(preds)
        self.boxes64 = np.array([p.bbox.box for p in preds], dtype=np.float64).reshape(n, 4)
        self.scores64 = np.array([p.score.value for p in preds], dtype=np.float64).reshape(n)
        self.categories = np.array([p.category.id for p in preds], dtype=np.int64).reshape(n)
        self.boxes32 = self.boxes64.astype(np.float32)
        self.scores32 = self.scores64.astype(np.float32)
        self.has_mask = np.array([p.mask is not None for p in preds], dtype=bool).reshape(n)


class _FissurePostprocess(_SahiBase):  # type: ignore[misc]
    """Common constructor: SAHI's signature plus fissure's ``num_threads``."""

    def __init__(
        self,
        match_threshold: float = 0.5,
        match_metric: str = "IOU",
        class_agnostic: bool = True,
        *,
        num_threads: int = -1,
    ) -> None:
        if isinstance(match_threshold, bool) or not isinstance(match_threshold, numbers.Real):
            raise TypeError(
                f"match_threshold: expected a number, got {type(match_threshold).__name__}"
            )
        if not isinstance(match_metric, str) or match_metric not in _METRICS:
            raise ValueError(f"match_metric: expected 'IOU' or 'IOS', got {match_metric!r}")
        super().__init__(
            match_threshold=float(match_threshold),
            match_metric=match_metric,
            class_agnostic=bool(class_agnostic),
        )
        self.num_threads: int = num_threads

    def _engine_kwargs(self) -> dict[str, Any]:
        thr, match = self.match_threshold, "ge"
        if thr < 0:  # SAHI: every pair matches, as at 0
            thr = 0.0
        elif thr > 1:  # SAHI: no pair matches (a metric never exceeds 1)
            thr, match = 1.0, "gt"
        return {
            "match_threshold": thr,
            "match": match,
            "match_metric": _METRICS[self.match_metric],
            "class_agnostic": self.class_agnostic,
            "num_threads": self.num_threads,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(match_threshold={self.match_threshold}, "
            f"match_metric={self.match_metric!r}, class_agnostic={self.class_agnostic})"
        )


class NMSPostprocess(_FissurePostprocess):
    """SAHI's ``NMSPostprocess``: keeps the best of overlapping predictions, merges nothing.

    Returns the kept ``ObjectPrediction`` objects themselves, in SAHI's order (score
    descending).
    """

    def __call__(self, object_predictions: list[Any]) -> list[Any]:
        preds = _check_predictions(object_predictions)
        if not preds:
            return []
        a = _Arrays(preds)
        keep = _engine.nms(a.boxes32, a.scores32, a.categories, **self._engine_kwargs())
        return [preds[i] for i in keep.tolist()]


class NMMPostprocess(_FissurePostprocess):
    """SAHI's ``NMMPostprocess``: transitive non-maximum merging."""

    _engine_name = "nmm"

    def __call__(self, object_predictions: list[Any]) -> list[Any]:
        preds = _check_predictions(object_predictions)
        if not preds:
            return []
        a = _Arrays(preds)
        offsets, members = _engine.groups(
            self._engine_name, a.boxes32, a.scores32, a.categories, recheck="off",
            **self._engine_kwargs(),
        )
        folded = _fold_groups(a, offsets, members, self.match_metric, self.match_threshold)
        return _build_outputs(preds, a, offsets, members, folded)


class GreedyNMMPostprocess(NMMPostprocess):
    """SAHI's ``GreedyNMMPostprocess``: each keeper merges what overlaps it directly."""

    _engine_name = "greedy_nmm"


#: Our classes under the names SAHI's ``POSTPROCESS_NAME_TO_CLASS`` uses.
POSTPROCESS_NAME_TO_CLASS: dict[str, type] = {
    "GREEDYNMM": GreedyNMMPostprocess,
    "NMM": NMMPostprocess,
    "NMS": NMSPostprocess,
}


# ---------------------------------------------------------------------------------------
# SAHI's merge, vectorised over groups
# ---------------------------------------------------------------------------------------


class _Folded:
    __slots__ = ("boxes", "category_member", "merged", "score_member", "with_mask")

    def __init__(self, boxes: np.ndarray, merged: np.ndarray, score_member: np.ndarray,
                 category_member: np.ndarray, with_mask: np.ndarray) -> None:
        self.boxes = boxes  # (M, 4) float64 growing box after the whole fold
        self.merged = merged  # (len(members),) bool: member merged (keepers: True)
        self.score_member = score_member  # (M,) member whose score the output carries
        self.category_member = category_member  # (M,) member whose category it carries
        self.with_mask = with_mask  # (M,) output keeps a mask


def _sahi_metric(cur: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """``calculate_bbox_iou`` / ``calculate_bbox_ios`` of SAHI, row by row, same float64 ops."""
    area1 = (cur[:, 2] - cur[:, 0]) * (cur[:, 3] - cur[:, 1])
    area2 = (cand[:, 2] - cand[:, 0]) * (cand[:, 3] - cand[:, 1])
    w = (np.minimum(cur[:, 2], cand[:, 2]) - np.maximum(cur[:, 0], cand[:, 0])).clip(min=0)
    h = (np.minimum(cur[:, 3], cand[:, 3]) - np.maximum(cur[:, 1], cand[:, 1])).clip(min=0)
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "IOU":
            return inter / (area1 + area2 - inter)
        return inter / np.minimum(area1, area2)


def _fold_groups(
    a: _Arrays, offsets: np.ndarray, members: np.ndarray, metric: str, threshold: float
) -> _Folded:
    """SAHI's ``_apply_merge`` over CSR groups, one candidate position at a time.

    For every group the keeper is position 0; candidate ``k`` is re-checked against the box
    grown from the candidates merged before it (``metric >= threshold`` in float64, SAHI
    0.12.8's ``has_match``) and merged or dropped. Loops over positions, not groups.
    """
    m = offsets.size - 1
    starts = offsets[:-1]
    lens = np.diff(offsets)
    keepers = members[starts]
    cur = a.boxes64[keepers].copy()
    run_score = a.scores64[keepers].copy()
    score_member = keepers.copy()
    category_member = keepers.copy()
    has_mask = a.has_mask
    with_mask = has_mask[keepers].copy()
    merged = np.zeros(members.size, dtype=bool)
    merged[starts] = True
    if m:
        by_len = np.argsort(-lens, kind="stable")
        sorted_lens = lens[by_len]
        for k in range(1, int(sorted_lens[0]) if sorted_lens.size else 0):
            g = by_len[: int(np.searchsorted(-sorted_lens, -k, side="left"))]
            pos = starts[g] + k
            cand = members[pos]
            ok = _sahi_metric(cur[g], a.boxes64[cand], metric) >= threshold
            if not ok.any():
                continue
            g, pos, cand = g[ok], pos[ok], cand[ok]
            merged[pos] = True
            cb = a.boxes64[cand]
            cur[g, :2] = np.minimum(cur[g, :2], cb[:, :2])
            cur[g, 2:] = np.maximum(cur[g, 2:], cb[:, 2:])
            s = a.scores64[cand]
            # get_merged_category: the running prediction keeps its category only when
            # its score is strictly higher; get_merged_score: max() keeps the first maximum.
            take_cat = ~(run_score[g] > s)
            category_member[g[take_cat]] = cand[take_cat]
            higher = s > run_score[g]
            score_member[g[higher]] = cand[higher]
            run_score[g] = np.maximum(run_score[g], s)
            with_mask[g] &= has_mask[cand]
    return _Folded(cur, merged, score_member, category_member, with_mask)


def _polygons_of(pred: Any) -> list[np.ndarray]:
    """A prediction's polygons as SAHI rasterises them (vertices rounded to ints)."""
    return [
        np.asarray(p, dtype=np.float64).reshape(-1, 2).round().astype(np.int32)
        for p in pred.mask.segmentation
        if len(p) >= 2
    ]


def _merged_segmentation(
    preds: list[Any], idx: np.ndarray, full_shape: tuple[int, int]
) -> list[list[float]]:
    """OR of the members' masks over their union box, back as COCO polygons."""
    import cv2
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    height, width = full_shape
    polys = [_polygons_of(preds[i]) for i in idx.tolist()]
    pts = [p for ps in polys for p in ps if p.size]
    if not pts:
        return []
    allpts = np.concatenate(pts)
    x0 = max(int(allpts[:, 0].min()), 0)
    y0 = max(int(allpts[:, 1].min()), 0)
    x1 = min(int(allpts[:, 0].max()), width - 1)
    y1 = min(int(allpts[:, 1].max()), height - 1)
    if x1 < x0 or y1 < y0:
        return []
    canvas = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shift = np.array([x0, y0], dtype=np.int32)
    for ps in polys:
        if ps:
            # One fillPoly call per prediction, as SAHI's Mask.bool_mask draws it.
            layer = np.zeros_like(canvas)
            cv2.fillPoly(layer, [p - shift for p in ps], (1,))
            canvas |= layer
    seg = get_coco_segmentation_from_bool_mask(canvas)
    return [[v + (x0 if k % 2 == 0 else y0) for k, v in enumerate(p)] for p in seg]


def _build_outputs(
    preds: list[Any], a: _Arrays, offsets: np.ndarray, members: np.ndarray, f: _Folded
) -> list[Any]:
    starts = offsets[:-1]
    merged_count = (
        np.add.reduceat(f.merged, starts).tolist() if members.size else [0] * starts.size
    )
    keepers = members[starts].tolist()
    category_member = f.category_member.tolist()
    score_member = f.score_member.tolist()
    with_mask = f.with_mask.tolist()
    boxes = f.boxes.tolist()
    out: list[Any] = []
    for g, keeper_index in enumerate(keepers):
        keeper = preds[keeper_index]
        if merged_count[g] <= 1:
            out.append(keeper)  # nothing merged: SAHI hands back the same object
            continue
        cat = preds[category_member[g]].category
        segmentation: Optional[list[list[float]]] = None
        full_shape = None
        if with_mask[g]:
            full_shape = keeper.mask.full_shape
            lo, hi = int(offsets[g]), int(offsets[g + 1])
            idx = members[lo:hi][f.merged[lo:hi]]
            segmentation = _merged_segmentation(preds, idx, (full_shape[0], full_shape[1]))
            if not segmentation:  # SAHI would raise on an empty union; keep the box instead
                segmentation, full_shape = None, None
        out.append(
            ObjectPrediction(
                bbox=boxes[g],
                category_id=cat.id,
                category_name=cat.name,
                segmentation=segmentation,
                score=preds[score_member[g]].score.value,
                shift_amount=list(keeper.bbox.shift_amount),
                full_shape=full_shape,
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# get_sliced_prediction hook
# ---------------------------------------------------------------------------------------

_install_lock = threading.Lock()


class use_fissure_postprocess:  # noqa: N801 - used like a function
    """Make SAHI's ``get_sliced_prediction`` (and ``predict``) build fissure's classes.

    SAHI picks the postprocess class by name from the module-level dict
    ``sahi.predict.POSTPROCESS_NAME_TO_CLASS`` at every call, so replacing the entries
    there is enough; nothing else in SAHI changes. Works as a context manager (SAHI's
    classes come back on exit) or as a plain call followed by :meth:`restore`.

    The table is process-global: do not switch it while another thread is inside
    ``get_sliced_prediction``.

    Args:
        names: which of ``"GREEDYNMM"``, ``"NMM"``, ``"NMS"`` to replace (default: all
            three; SAHI's experimental ``"LSNMS"`` is left alone).
    """

    def __init__(self, names: Sequence[str] = ("GREEDYNMM", "NMM", "NMS")) -> None:
        import sahi.predict

        if isinstance(names, str):
            names = (names,)
        unknown = [n for n in names if n not in POSTPROCESS_NAME_TO_CLASS]
        if unknown:
            raise ValueError(
                f"names: expected a subset of {sorted(POSTPROCESS_NAME_TO_CLASS)}, got {unknown}"
            )
        self._table = sahi.predict.POSTPROCESS_NAME_TO_CLASS
        with _install_lock:
            self._saved = {n: self._table.get(n) for n in names}
            for n in names:
                self._table[n] = POSTPROCESS_NAME_TO_CLASS[n]

    def restore(self) -> None:
        """Put SAHI's own classes back (idempotent)."""
        with _install_lock:
            for n, cls in self._saved.items():
                if cls is None:
                    self._table.pop(n, None)
                elif self._table.get(n) is POSTPROCESS_NAME_TO_CLASS[n]:
                    self._table[n] = cls
            self._saved = {}

    def __enter__(self) -> use_fissure_postprocess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
