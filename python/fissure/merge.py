"""Overlap merging of detections: NMS, greedy NMM and transitive NMM.

By default every function equals SAHI 0.12.8's postprocess box for box (``sahi.postprocess``:
``NMSPostprocess``, ``GreedyNMMPostprocess``, ``NMMPostprocess`` and the ``nms`` /
``greedy_nmm`` / ``nmm`` backend functions with its numpy backend), but runs in C++ over a
spatial index: no N x N matrix, linear memory, the GIL released.

SAHI's rules, reproduced exactly:

* **Order**: score descending, ties by ``x1, y1, x2, y2`` ascending, then input index.
* **Metric** in float32, in numpy's operation order: ``IOU = inter / ((a_i + a_j) - inter)``,
  ``IOS = inter / min(a_i, a_j)`` ("intersection over smaller"), 0 when the denominator is
  0. A pair matches when ``metric >= float32(threshold)``. ``threshold == 0`` matches every
  pair (solved from the order alone, no pairwise work).
* **Per class** unless ``class_agnostic``: classes ascending, each on its own. NMS output is
  then sorted by score descending (stable); merge output is grouped by class ascending.
* **Greedy NMM**: each surviving box in order takes every later surviving box that matches
  it. **NMM** (transitive): an unclaimed box becomes a keeper; every box claims, for its
  keeper, the unclaimed boxes it matches and dominates (lower score, or equal score and
  coordinates ``<=`` its own), in ascending index order.
* **The re-check** (SAHI's ``_apply_merge``): the group's candidates, in order, are tested
  again in float64 against the *growing* merged box; with SAHI 0.12.8 the test is
  ``metric >= threshold`` (older SAHI releases used a strict ``>``: ``recheck="strict"``).
  A candidate that fails is silently dropped by SAHI (``recheck="sahi"``, listed in
  ``MergeResult.dropped``); ``recheck="keep"`` emits it as its own detection instead and
  ``recheck="off"`` merges every selected candidate.
* **Merging** two detections: the union box, the max score, the class of the higher score
  (on a tie, the later-merged one's).

Knobs for other conventions: ``order`` (an explicit processing order), ``match="gt"``
(match only when ``metric > match_threshold``, the float32 metric compared with the float64
threshold as supervision's NMS and torchvision do; the re-check then uses ``>`` too) and
``mask_metric`` (pixel IoU / IoS of the box-local masks instead of the boxes). See
``docs/merge.md`` for the details and the SAHI behaviours reproduced.

Set the environment variable ``FISSURE_BACKEND=python`` to run the pure-numpy reference
implementation (``fissure._reference.merge``, quadratic; the same signatures) instead of the
C++ core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._validate import as_boxes, as_class_ids, as_scores, check_num_threads, check_threshold
from . import _reference
from .masks import BoxMasks

__all__ = ["MergeResult", "greedy_nmm", "nmm", "nms"]

_METRICS = ("iou", "ios")
_MATCHES = ("ge", "gt")
_RECHECKS = ("sahi", "strict", "keep", "off")


@dataclass(frozen=True, eq=False)
class MergeResult:
    """The detections left after greedy NMM or NMM: ``M`` groups of input detections.

    Attributes:
        boxes: ``(M, 4)`` float32, xyxy union box of each group's merged members.
        scores: ``(M,)`` float32, the max score of the merged members.
        class_ids: ``(M,)`` int64, the class of the higher score while folding (on a tie,
            the later-merged member's, as SAHI's ``merge_object_prediction_pair``).
        keep: ``(M,)`` int64, each group's keeper: an index into the input.
        group_offsets: ``(M + 1,)`` int64 CSR offsets into ``members``.
        members: ``(K,)`` int64 input indices; group ``g`` is
            ``members[group_offsets[g]:group_offsets[g + 1]]``, the keeper first, then the
            candidates actually merged, in merge order.
        dropped: ``(D,)`` int64 input indices of candidates the re-check removed (SAHI drops
            them silently); empty with ``recheck="keep"`` or ``"off"``.
        masks: the merged masks (raster OR of the members' masks over the bounding rectangle
            of their regions) when masks were given, else None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    keep: np.ndarray
    group_offsets: np.ndarray
    members: np.ndarray
    dropped: np.ndarray
    masks: Optional[BoxMasks] = None

    def __len__(self) -> int:
        return int(self.keep.shape[0])

    def groups(self) -> list[np.ndarray]:
        """Members of each group, as a list of ``M`` int64 arrays."""
        o = self.group_offsets
        return [self.members[o[g] : o[g + 1]] for g in range(len(self))]

    def __repr__(self) -> str:
        return (
            f"MergeResult(n={len(self)}, members={self.members.shape[0]}, "
            f"dropped={self.dropped.shape[0]}, masks={self.masks!r})"
        )


@dataclass(frozen=True)
class _Args:
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: Optional[np.ndarray]
    threshold: float
    metric: str
    class_agnostic: bool
    masks: Optional[BoxMasks]
    mask_metric: bool
    match: str
    order: Optional[np.ndarray]
    recheck: str
    num_threads: int

    @property
    def n(self) -> int:
        return int(self.boxes.shape[0])


def _choice(value: Any, name: str, choices: tuple[str, ...], *, lower: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {choices}, got {type(value).__name__}")
    v = value.lower() if lower else value
    if v not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return v


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _as_order(order: Any, n: int) -> Optional[np.ndarray]:
    if order is None:
        return None
    arr = np.asarray(order)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"order: expected an integer permutation of range({n}), got dtype {arr.dtype}"
        )
    if arr.shape != (n,):
        raise ValueError(f"order: expected shape ({n},) to match the boxes, got {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if n:
        bad = (out < 0) | (out >= n)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"order: expected a permutation of range({n}), got {int(out[k])} at position {k}"
            )
        counts = np.bincount(out, minlength=n)
        if (counts != 1).any():
            i = int(np.flatnonzero(counts != 1)[0])
            raise ValueError(
                f"order: expected a permutation of range({n}), index {i} appears {int(counts[i])} times"
            )
    return out


def _prepare(
    boxes: Any,
    scores: Any,
    class_ids: Any,
    *,
    match_threshold: Any,
    match_metric: Any,
    class_agnostic: Any,
    masks: Any,
    mask_metric: Any,
    match: Any,
    order: Any,
    num_threads: Any,
    recheck: Any = "sahi",
    check_values: bool = True,
) -> _Args:
    """Validates and converts every argument (shared by the C++ and reference paths).

    ``check_values=False`` leaves the box and score values (finite, ``x2 >= x1``,
    ``y2 >= y1``) to the C++ core, which checks the same rules in its one pass over the
    input; :func:`_core_checked` then reruns this with the checks on to raise the usual
    message.
    """
    b = as_boxes(boxes, check_values=check_values)
    n = int(b.shape[0])
    s = as_scores(scores, n, check_values=check_values)
    c = None if class_ids is None else as_class_ids(class_ids, n)
    thr = check_threshold(match_threshold, "match_threshold")
    met = _choice(match_metric, "match_metric", _METRICS, lower=True)
    agn = _flag(class_agnostic, "class_agnostic")
    mm = _flag(mask_metric, "mask_metric")
    mat = _choice(match, "match", _MATCHES)
    rc = _choice(recheck, "recheck", _RECHECKS)
    nt = check_num_threads(num_threads)
    if masks is not None:
        if not isinstance(masks, BoxMasks):
            raise TypeError(f"masks: expected a fissure.BoxMasks, got {type(masks).__name__}")
        if len(masks) != n:
            raise ValueError(f"masks: expected {n} masks (one per box), got {len(masks)}")
    elif mm:
        raise ValueError("mask_metric=True: expected masks, got None")
    o = _as_order(order, n)
    return _Args(b, s, c, thr, met, agn, masks, mm, mat, o, rc, nt)


def _mask_arrays(a: _Args) -> tuple[Any, Any, Any]:
    if a.masks is None:
        return None, None, None
    m = a.masks
    return (
        np.ascontiguousarray(m.data, dtype=np.uint8),
        np.ascontiguousarray(m.offsets, dtype=np.int64),
        np.ascontiguousarray(m.regions, dtype=np.int32),
    )


def _core_call(fn_name: str, a: _Args) -> Any:
    from . import _core

    md, mo, mr = _mask_arrays(a)
    kwargs: dict[str, Any] = {
        "metric": a.metric,
        "threshold": a.threshold,
        "match": a.match,
        "class_agnostic": a.class_agnostic,
        "order": a.order,
        "mask_data": md,
        "mask_offsets": mo,
        "mask_regions": mr,
        "mask_metric": a.mask_metric,
        "num_threads": a.num_threads,
    }
    if fn_name != "nms":
        kwargs["recheck"] = a.recheck
    return getattr(_core, fn_name)(a.boxes, a.scores, a.class_ids, **kwargs)


def _core_checked(fn_name: str, args: dict[str, Any]) -> Any:
    """Runs the core on arguments prepared without the value checks (the core makes them);
    when the core rejects the input, the Python checks run to raise their own message."""
    a = _prepare(check_values=False, **args)
    try:
        return a, _core_call(fn_name, a)
    except ValueError:
        _prepare(**args)  # raises the Python layer's message for bad values
        raise


def _result(out: tuple, masks: Optional[BoxMasks]) -> MergeResult:
    boxes, scores, class_ids, keep, offsets, members, dropped, md, mo, mr = out
    merged = None
    if md is not None:
        merged = BoxMasks(
            md, mo, mr, masks.image_shape if masks is not None else None, validate=False
        )
    return MergeResult(boxes, scores, class_ids, keep, offsets, members, dropped, merged)


def nms(
    boxes: Any,
    scores: Any,
    class_ids: Any = None,
    *,
    match_threshold: float = 0.5,
    match_metric: str = "iou",
    class_agnostic: bool = False,
    masks: Optional[BoxMasks] = None,
    mask_metric: bool = False,
    match: str = "ge",
    order: Any = None,
    num_threads: int = -1,
) -> np.ndarray:
    """Non-maximum suppression, equal to SAHI's ``nms`` / ``batched_nms``.

    Args:
        boxes: ``(N, 4)`` xyxy boxes (converted to float32; finite, ``x2 >= x1``, ``y2 >= y1``).
        scores: ``(N,)`` scores (float32).
        class_ids: ``(N,)`` integer classes, or None for a single class.
        threshold: overlap threshold in ``[0, 1]``; 0 matches every pair.
        metric: ``"iou"`` or ``"ios"`` (intersection over the smaller area).
        class_agnostic: suppress across classes.
        masks: box-local masks, one per box; only used with ``mask_metric``.
        mask_metric: compute the metric on the masks (pixel counts) instead of the boxes.
        match: ``"ge"`` (SAHI: ``metric >= threshold``) or ``"gt"`` (``metric > threshold``,
            as supervision's NMS).
        order: an explicit processing order (a permutation of ``range(N)``) replacing the
            score sort; the kept indices then come out in this order.
        num_threads: threads for the per-class partitions; -1 uses every core.

    Returns:
        ``(K,)`` int64 kept indices, score descending (SAHI's order: per class, then a stable
        sort by score over classes ascending).

    Examples:
        >>> import numpy as np, fissure
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
        >>> fissure.nms(b, np.array([0.9, 0.8, 0.7], np.float32)).tolist()
        [0, 2]
    """
    kw = dict(match_threshold=match_threshold, match_metric=match_metric,
              class_agnostic=class_agnostic, masks=masks, mask_metric=mask_metric, match=match,
              order=order, num_threads=num_threads)
    if _reference.active():
        return _reference.merge.nms(boxes, scores, class_ids, **kw)
    return _core_checked("nms", dict(boxes=boxes, scores=scores, class_ids=class_ids, **kw))[1]


def _merge(fn_name: str, args: dict[str, Any]) -> MergeResult:
    """greedy_nmm / nmm with their arguments (the public functions' ``locals()``)."""
    if _reference.active():
        return getattr(_reference.merge, fn_name)(**args)
    a, out = _core_checked(fn_name, args)
    return _result(out, a.masks)


_MERGE_ARGS_DOC = """
    Args:
        boxes: ``(N, 4)`` xyxy boxes (converted to float32; finite, ``x2 >= x1``, ``y2 >= y1``).
        scores: ``(N,)`` scores (float32).
        class_ids: ``(N,)`` integer classes, or None for a single class.
        match_threshold: overlap threshold in ``[0, 1]``; 0 matches every pair.
        match_metric: ``"ios"`` (intersection over the smaller area) or ``"iou"``.
        class_agnostic: merge across classes (the merged class is the higher score's).
        masks: box-local masks, one per box: merged by raster OR into ``MergeResult.masks``.
        recheck: ``"sahi"`` (SAHI 0.12.8: candidates failing the re-check against the growing
            merged box are dropped and listed in ``MergeResult.dropped``), ``"strict"`` (the
            same with ``>``, as older SAHI releases), ``"keep"`` (they become their own
            detections, right after the group they failed) or ``"off"`` (merge every
            selected candidate).
        match: ``"ge"`` (SAHI: ``metric >= threshold``) or ``"gt"`` (``metric > threshold``).
        order: an explicit processing order (a permutation of ``range(N)``) replacing the
            score sort.
        mask_metric: compute the metric (selection and re-check) on the masks instead of
            the boxes.
        num_threads: threads for the per-class partitions; -1 uses every core.

    Returns:
        A :class:`MergeResult`, groups ordered by class ascending, then keeper order.
"""


def greedy_nmm(
    boxes: Any,
    scores: Any,
    class_ids: Any = None,
    *,
    match_threshold: float = 0.5,
    match_metric: str = "ios",
    class_agnostic: bool = False,
    masks: Optional[BoxMasks] = None,
    recheck: str = "sahi",
    match: str = "ge",
    order: Any = None,
    mask_metric: bool = False,
    num_threads: int = -1,
) -> MergeResult:
    return _merge("greedy_nmm", locals())


def nmm(
    boxes: Any,
    scores: Any,
    class_ids: Any = None,
    *,
    match_threshold: float = 0.5,
    match_metric: str = "ios",
    class_agnostic: bool = False,
    masks: Optional[BoxMasks] = None,
    recheck: str = "sahi",
    match: str = "ge",
    order: Any = None,
    mask_metric: bool = False,
    num_threads: int = -1,
) -> MergeResult:
    return _merge("nmm", locals())


greedy_nmm.__doc__ = (
    """Greedy non-maximum merging, equal to SAHI's ``GreedyNMMPostprocess``.

    Each surviving box, in score order, takes every later surviving box whose overlap with
    it reaches the threshold; the group is then folded with SAHI's re-check.
"""
    + _MERGE_ARGS_DOC
)
nmm.__doc__ = (
    """Transitive non-maximum merging, equal to SAHI's ``NMMPostprocess``.

    Walking the boxes in score order, an unclaimed box becomes a keeper, and every box claims
    for its keeper the unclaimed boxes it matches and dominates, so chains of overlaps end in
    one group; the group is then folded with SAHI's re-check.
"""
    + _MERGE_ARGS_DOC
)
