"""``with_nms`` / ``with_nmm`` for supervision ``Detections``, on fissure's merge engine.

Call them where you would call the methods::

    from fissure.integrations.supervision import with_nms, with_nmm

    kept = with_nms(detections, threshold=0.5)            # == detections.with_nms(0.5)
    merged = with_nmm(detections, threshold=0.5, overlap_metric="IOS")

The result equals supervision's own ``Detections.with_nms`` / ``Detections.with_nmm`` of the
installed release (tested against supervision 0.31.2): same rows, same order, same dtypes,
same ``data`` and ``metadata``. What that means, read from supervision's source:

* Order: scores sorted with numpy's ``argsort`` (not stable) and reversed. Ties therefore
  come out in an order numpy chooses; this module recomputes that permutation from an
  array of the same dtype and hands it to the engine as the processing order.
* NMS suppresses when ``IoU > threshold`` (strict), per class unless ``class_agnostic``;
  the kept rows stay in input order.
* NMM is greedy per class: the best remaining box takes every remaining box with
  ``IoU >= threshold`` against it. Each group becomes one detection: union box, confidence
  the box-area-weighted mean of the group (computed here vectorised over all groups),
  class, tracker id and ``data`` of the highest-confidence member, masks OR-ed.
* With masks, overlap is measured on the full-resolution masks (0.31.2 no longer
  downsamples). Mask NMM is transitive inside a group: the union of the masks taken so far
  is compared with what remains, again and again. Both are computed here on box-local
  crops of the masks, never on ``(N, H, W)`` stacks, with supervision's float32/float64
  pixel-count arithmetic. Dense masks in give dense masks out, ``CompactMask`` in gives
  ``CompactMask`` out.

Differences (see docs/api_differences.md): supervision computes box IoU in float64 and
rounds it to float32, the engine computes it in float32 (SAHI's convention), so a pair
whose IoU lies within about 1e-7 of the threshold can be decided differently; float64 box
coordinates are rounded to float32 before the box metric. Oriented-box detections are
handed to supervision itself.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

try:
    import supervision as sv
    from supervision.detection.utils.iou_and_nms import OverlapMetric
except ImportError as exc:  # pragma: no cover - exercised only without supervision
    raise ImportError("fissure.integrations.supervision needs supervision>=0.26") from exc

try:
    from supervision.detection.compact_mask import CompactMask
except ImportError:  # pragma: no cover - supervision < 0.28
    CompactMask = None  # type: ignore[assignment,misc]

from fissure.masks import BoxMasks

from . import _engine

__all__ = ["with_nmm", "with_nms"]

_OBB_KEY = "xyxyxyxy"  # supervision.config.ORIENTED_BOX_COORDINATES


# ---------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------


def _check_detections(detections: Any) -> None:
    if not isinstance(detections, sv.Detections):
        raise TypeError(
            f"detections: expected a supervision Detections, got {type(detections).__name__}"
        )


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold: expected a number in [0, 1], got {type(threshold).__name__}")
    t = float(threshold)
    if not 0 <= t <= 1:
        raise ValueError(
            f"Value of `iou_threshold` must be in the closed range from 0 to 1, {threshold} given."
        )
    return t


def _metric_name(overlap_metric: Any) -> str:
    try:
        return OverlapMetric.from_value(overlap_metric).value.lower()
    except (ValueError, AttributeError) as exc:
        raise ValueError(
            f"overlap_metric: expected OverlapMetric.IOU / IOS or 'IOU' / 'IOS', "
            f"got {overlap_metric!r}"
        ) from exc


def _prediction_dtype(d: Any, class_agnostic: bool) -> np.dtype:
    """dtype of the ``(N, 5|6)`` array supervision's ``_build_nms_predictions`` stacks."""
    parts = [d.xyxy, np.asarray(d.confidence)]
    if not class_agnostic:
        parts.append(np.asarray(d.class_id))
    return np.result_type(*parts)


def _class_ids(d: Any, class_agnostic: bool, operation: str) -> Optional[np.ndarray]:
    if class_agnostic:
        return None
    if d.class_id is None:
        raise ValueError(
            f"Detections class_id must be given for {operation} to be executed. If you "
            f"intended to perform class agnostic {operation} set class_agnostic=True."
        )
    return np.asarray(d.class_id)


def _engine_class_ids(class_ids: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if class_ids is None:
        return None
    if np.issubdtype(class_ids.dtype, np.integer):
        return class_ids.astype(np.int64, copy=False)
    # supervision compares class ids as floats: map equal values to equal integers.
    return np.unique(class_ids.astype(np.float64), return_inverse=True)[1].astype(np.int64)


def _gt_rule(threshold: float) -> tuple[float, str]:
    """Engine (threshold, match) equal to supervision's ``float32_metric > threshold``.

    The engine compares its float32 metric with ``float32(threshold)``; supervision compares
    a float32 value with the float64 threshold. ``v > t`` for float32 ``v`` is ``v > f``
    when ``f = float32(t) <= t`` and ``v >= f`` when ``f > t``.
    """
    f = float(np.float32(threshold))
    return (f, "ge") if f > threshold else (f, "gt")


def _mask_gt_rule(threshold: float, image_shape: tuple[int, int]) -> tuple[float, str]:
    """Engine (threshold, match) equal to supervision's mask-NMS test ``ratio > threshold``.

    The engine computes mask overlaps in float64 from exact pixel counts and compares them
    with the float64 threshold. supervision counts in float64 above 2**24 pixels per image
    (the same test), but in float32 up to that: ``float32(x) > t``. Rounding is monotonic,
    so that is ``x`` beyond the midpoint between two neighbouring float32 values, the tie
    going to the even one; a ratio of pixel counts is never within a float64 rounding
    error of such a midpoint unless equal to it, so the float64 test on the midpoint is
    exact.
    """
    h, w = image_shape
    if h * w > 2**24:
        return threshold, "gt"
    if threshold >= 1.0:
        return 1.0, "gt"  # a ratio never exceeds 1
    f = np.float32(threshold)
    if float(f) <= threshold:  # float32(x) > t  <=>  float32(x) >= next float32 above f
        lo, hi = f, np.nextafter(f, np.float32(2))
    else:  # float32(x) > t  <=>  float32(x) >= f
        lo, hi = np.nextafter(f, np.float32(-1)), f
    mid = (float(lo) + float(hi)) / 2
    hi_even = (int(np.asarray(hi).view(np.uint32)) & 1) == 0
    return mid, "ge" if hi_even else "gt"


# ---------------------------------------------------------------------------------------
# with_nms
# ---------------------------------------------------------------------------------------


def with_nms(
    detections: Any,
    threshold: float = 0.5,
    class_agnostic: bool = False,
    overlap_metric: Any = OverlapMetric.IOU,
    *,
    num_threads: int = -1,
) -> Any:
    """``detections.with_nms(threshold, class_agnostic, overlap_metric)``, on fissure.

    Args:
        detections: a ``supervision.Detections`` with ``confidence`` (and ``class_id``
            unless ``class_agnostic``). Masks, dense or ``CompactMask``, switch the overlap
            to mask IoU / IoS as in supervision.
        threshold: suppress a detection when its overlap with a kept, better one is
            strictly greater than this (in [0, 1]).
        class_agnostic: suppress across classes.
        overlap_metric: ``OverlapMetric.IOU`` / ``IOS`` or the strings.
        num_threads: engine threads (-1: all cores).

    Returns:
        A new ``Detections`` with the kept rows in input order (``detections`` itself when
        it is empty, as supervision does).
    """
    _check_detections(detections)
    if len(detections) == 0:
        return detections
    if detections.confidence is None:
        raise ValueError("Detections confidence must be given for NMS to be executed.")
    class_ids = _class_ids(detections, class_agnostic, "NMS")
    if detections.mask is None and _OBB_KEY in detections.data:
        return detections.with_nms(threshold, class_agnostic, overlap_metric)
    t = _check_threshold(threshold)
    metric = _metric_name(overlap_metric)
    dtype = _prediction_dtype(detections, class_agnostic)
    # NMS appends a zero class column with np.c_ before sorting when class-agnostic,
    # which promotes the array to float64: sort in that dtype, or ties may fall otherwise.
    sort_dtype = np.result_type(dtype, np.float64) if class_agnostic else dtype
    order = np.flip(np.asarray(detections.confidence).astype(sort_dtype).argsort())
    order = order.astype(np.int64)
    scores = np.asarray(detections.confidence).astype(dtype)
    n = len(detections)
    keep = np.zeros(n, dtype=bool)
    masks = None
    if detections.mask is not None:
        masks = BoxMasks.from_supervision(detections.mask, num_threads=num_threads)
        assert masks.image_shape is not None
        thr, match = _mask_gt_rule(t, masks.image_shape)
    else:
        thr, match = _gt_rule(t)
    kept = _engine.nms(
        np.asarray(detections.xyxy).astype(dtype).astype(np.float32),
        scores.astype(np.float32),
        _engine_class_ids(class_ids),
        match_threshold=thr,
        match_metric=metric,
        match=match,
        order=order,
        class_agnostic=class_agnostic,
        masks=masks,
        mask_metric=masks is not None,
        num_threads=num_threads,
    )
    keep[np.asarray(kept, dtype=np.int64)] = True
    return detections[keep]


# ---------------------------------------------------------------------------------------
# with_nmm
# ---------------------------------------------------------------------------------------


def _per_class_order(scores: np.ndarray, class_ids: Optional[np.ndarray]) -> np.ndarray:
    """supervision's NMM processing order: per class (ascending) ``argsort`` reversed.

    Each class's argsort runs on that class's own scores, exactly as
    ``_non_max_merge_per_category`` slices them, so ties fall the same way.
    """
    if class_ids is None:
        return np.flip(scores.argsort()).astype(np.int64)
    parts = []
    for c in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == c)
        parts.append(idx[np.flip(scores[idx].argsort())])
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def with_nmm(
    detections: Any,
    threshold: float = 0.5,
    class_agnostic: bool = False,
    overlap_metric: Any = OverlapMetric.IOU,
    *,
    num_threads: int = -1,
) -> Any:
    """``detections.with_nmm(threshold, class_agnostic, overlap_metric)``, on fissure.

    Args:
        detections: a ``supervision.Detections`` with ``confidence`` (and ``class_id``
            unless ``class_agnostic``); masks switch to supervision's transitive mask NMM.
        threshold: merge when the overlap is ``>=`` this (in [0, 1]).
        class_agnostic: merge across classes (the merged class is the best member's).
        overlap_metric: ``OverlapMetric.IOU`` / ``IOS`` or the strings.
        num_threads: engine threads (-1: all cores).

    Returns:
        A new ``Detections``, one row per group: classes ascending, then best-first.
    """
    _check_detections(detections)
    if len(detections) == 0:
        return detections
    if detections.confidence is None:
        raise ValueError("Detections confidence must be given for NMM to be executed.")
    class_ids = _class_ids(detections, class_agnostic, "NMM")
    if detections.mask is None and _OBB_KEY in detections.data:
        return detections.with_nmm(threshold, class_agnostic, overlap_metric)
    t = _check_threshold(threshold)
    metric = _metric_name(overlap_metric)
    dtype = _prediction_dtype(detections, class_agnostic)
    scores = np.asarray(detections.confidence).astype(dtype)
    cls_col = None if class_ids is None else class_ids.astype(dtype)
    order = _per_class_order(scores, cls_col)
    crops = None
    if detections.mask is not None:
        crops = _Crops(BoxMasks.from_supervision(detections.mask, num_threads=num_threads))
        offsets, members = _mask_nmm_groups(crops, order, cls_col, t, metric)
    else:
        offsets, members = _engine.groups(
            "greedy_nmm",
            np.asarray(detections.xyxy).astype(dtype).astype(np.float32),
            scores.astype(np.float32),
            _engine_class_ids(class_ids),
            match_threshold=t,
            match_metric=metric,
            match="ge",
            recheck="off",
            order=order,
            class_agnostic=class_agnostic,
            num_threads=num_threads,
        )
    return _merge_groups(detections, offsets, members, crops)


def _merge_groups(
    d: Any, offsets: np.ndarray, members: np.ndarray, crops: Optional[_Crops]
) -> Any:
    """One detection per CSR group, as ``_merge_detection_group`` + ``Detections.merge``."""
    starts = offsets[:-1]
    sizes = np.diff(offsets)
    keepers = members[starts]
    out = d[keepers]  # class_id, tracker_id, data, metadata of the winner (the keeper)
    multi = np.flatnonzero(sizes > 1)
    if multi.size == 0:
        return out
    xyxy_in = np.asarray(d.xyxy)
    conf_in = np.asarray(d.confidence)
    # Union boxes, per group, in the input dtype and then float32 like supervision.
    gid = np.repeat(np.arange(sizes.size), sizes)
    mb = xyxy_in[members]
    lo = np.full((sizes.size, 2), np.inf)
    hi = np.full((sizes.size, 2), -np.inf)
    np.minimum.at(lo, gid, mb[:, :2].astype(np.float64))
    np.maximum.at(hi, gid, mb[:, 2:].astype(np.float64))
    union = np.concatenate([lo, hi], axis=1).astype(np.float32)
    # Box-area-weighted confidence over the whole group, in float64, then float32.
    if np.issubdtype(xyxy_in.dtype, np.integer):
        wh = (mb[:, 2:].astype(np.int64) - mb[:, :2].astype(np.int64)).astype(np.float64)
    else:
        c = mb.astype(np.promote_types(mb.dtype, np.float64))
        wh = c[:, 2:] - c[:, :2]
    areas = wh[:, 0] * wh[:, 1]
    conf64 = conf_in[members].astype(np.float64)
    num = np.add.reduceat(areas * conf64, starts)
    den = np.add.reduceat(areas, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        weighted = (num / den).astype(np.float32)
    positive = den > 0

    # dtypes of Detections.merge over singleton rows (input dtype) and merged rows (float32).
    has_single = bool((sizes == 1).any())
    xyxy_dtype = np.result_type(xyxy_in.dtype, np.float32) if has_single else np.dtype(np.float32)
    merged_conf_dtypes = {np.dtype(np.float32)} if positive[multi].any() else set()
    if (~positive[multi]).any():
        merged_conf_dtypes.add(conf_in.dtype)
    conf_dtype = np.result_type(*(merged_conf_dtypes | ({conf_in.dtype} if has_single else set())))

    xyxy = out.xyxy.astype(xyxy_dtype)
    xyxy[multi] = union[multi]
    conf = out.confidence.astype(conf_dtype)
    good = multi[positive[multi]]
    conf[good] = weighted[good]
    out.xyxy = xyxy
    out.confidence = conf
    if d.mask is not None:
        assert crops is not None
        out.mask = _merged_masks(d.mask, out.mask, crops, offsets, members, multi)
    return out


# ---------------------------------------------------------------------------------------
# masks, box-local
# ---------------------------------------------------------------------------------------


class _Crops:
    """Box-local crops of a ``BoxMasks``: crop ``i`` covers ``[y0:y1, x0:x1]`` (views)."""

    __slots__ = ("area", "crops", "image_shape", "x0", "x1", "y0", "y1")

    def __init__(self, bm: BoxMasks) -> None:
        r = bm.regions.astype(np.int64)
        self.x0, self.y0 = r[:, 0], r[:, 1]
        self.x1, self.y1 = r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]
        o = bm.offsets
        data = bm.data.view(bool)
        self.crops = [
            data[o[i] : o[i + 1]].reshape(int(r[i, 3]), int(r[i, 2])) for i in range(len(bm))
        ]
        self.area = bm.areas()
        assert bm.image_shape is not None
        self.image_shape = bm.image_shape

    def count_dtype(self) -> type:
        """supervision counts pixels in float32 up to 2**24 pixels per image, else float64."""
        h, w = self.image_shape
        return np.float32 if h * w <= 2**24 else np.float64

    def intersection(self, i: int, canvas: np.ndarray, cx0: int, cy0: int) -> int:
        """Set pixels shared by crop ``i`` and ``canvas`` (placed at ``cx0, cy0``)."""
        ch, cw = canvas.shape
        ax0 = max(int(self.x0[i]), cx0)
        ay0 = max(int(self.y0[i]), cy0)
        ax1 = min(int(self.x1[i]), cx0 + cw)
        ay1 = min(int(self.y1[i]), cy0 + ch)
        if ax1 <= ax0 or ay1 <= ay0:
            return 0
        a = self.crops[i][ay0 - int(self.y0[i]) : ay1 - int(self.y0[i]),
                          ax0 - int(self.x0[i]) : ax1 - int(self.x0[i])]
        b = canvas[ay0 - cy0 : ay1 - cy0, ax0 - cx0 : ax1 - cx0]
        return int(np.count_nonzero(a & b))


def _ratio(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray, metric: str,
           dtype: type) -> np.ndarray:
    """supervision's mask overlap from pixel counts, in its count dtype (0 if no denominator)."""
    i: np.ndarray = inter.astype(dtype)
    a: np.ndarray = area_a.astype(dtype)
    b: np.ndarray = area_b.astype(dtype)
    denom = (a + b - i) if metric == "iou" else np.minimum(a, b)
    out: np.ndarray = np.zeros(i.shape, dtype=dtype)
    np.divide(i, denom, out=out, where=denom != 0)
    return out.astype(np.float64)


def _mask_nmm_groups(crops: _Crops, order: np.ndarray, cls_col: Optional[np.ndarray],
                     threshold: float, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """supervision's transitive mask NMM (``_group_overlapping_masks``), as CSR groups."""
    dtype = crops.count_dtype()
    cats = np.zeros(order.size) if cls_col is None else cls_col.astype(np.float64)
    groups: list[list[int]] = []
    # order is already per class (ascending) and best-first inside each class.
    bounds = np.flatnonzero(np.diff(cats[order])) + 1
    for part in np.split(order, bounds):
        remaining = part.tolist()  # best first; supervision pops from the end of argsort
        while remaining:
            idx = remaining.pop(0)
            group = [idx]
            if not remaining:
                groups.append(group)
                break
            if threshold <= 0:  # every overlap, even 0, is >= 0
                group.extend(remaining)
                remaining = []
                groups.append(group)
                break
            cx0, cy0 = int(crops.x0[idx]), int(crops.y0[idx])
            canvas = crops.crops[idx].copy()
            union_area = int(crops.area[idx])
            while remaining:
                rem = np.asarray(remaining, dtype=np.int64)
                ch, cw = canvas.shape
                touch = rem[
                    (crops.x0[rem] < cx0 + cw) & (crops.x1[rem] > cx0)
                    & (crops.y0[rem] < cy0 + ch) & (crops.y1[rem] > cy0)
                ]
                if touch.size == 0:
                    break
                inter = np.array(
                    [crops.intersection(int(j), canvas, cx0, cy0) for j in touch], dtype=np.int64
                )
                r = _ratio(inter, crops.area[touch], np.full(touch.size, union_area), metric,
                           dtype)
                hit = touch[r >= threshold]
                if hit.size == 0:
                    break
                hit_set = set(hit.tolist())
                taken = [j for j in remaining if j in hit_set]  # best first
                remaining = [j for j in remaining if j not in hit_set]
                group.extend(taken)
                canvas, cx0, cy0 = _grow(canvas, cx0, cy0, crops, taken)
                union_area = int(np.count_nonzero(canvas))
            groups.append(group)
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    members = np.array([i for g in groups for i in g], dtype=np.int64)
    return offsets, members


def _grow(canvas: np.ndarray, cx0: int, cy0: int, crops: _Crops,
          idx: list[int]) -> tuple[np.ndarray, int, int]:
    """OR crops ``idx`` into ``canvas`` (at ``cx0, cy0``), enlarging it as needed."""
    ch, cw = canvas.shape
    nx0 = min([cx0] + [int(crops.x0[j]) for j in idx if crops.crops[j].size])
    ny0 = min([cy0] + [int(crops.y0[j]) for j in idx if crops.crops[j].size])
    nx1 = max([cx0 + cw] + [int(crops.x1[j]) for j in idx if crops.crops[j].size])
    ny1 = max([cy0 + ch] + [int(crops.y1[j]) for j in idx if crops.crops[j].size])
    out = np.zeros((ny1 - ny0, nx1 - nx0), dtype=bool)
    out[cy0 - ny0 : cy0 - ny0 + ch, cx0 - nx0 : cx0 - nx0 + cw] |= canvas
    for j in idx:
        c = crops.crops[j]
        if c.size:
            y, x = int(crops.y0[j]) - ny0, int(crops.x0[j]) - nx0
            out[y : y + c.shape[0], x : x + c.shape[1]] |= c
    return out, nx0, ny0


def _merged_masks(mask_in: Any, mask_out: Any, crops: _Crops, offsets: np.ndarray,
                  members: np.ndarray, multi: np.ndarray) -> Any:
    """Output masks: the keeper's mask per group (``mask_out``), the members' OR where merged.

    ``CompactMask`` output keeps the keepers' run-length crops as they are and encodes only
    the merged unions; dense output pastes the unions into the keepers' planes.
    """
    unions: list[tuple[int, np.ndarray, int, int]] = []
    for g in multi.tolist():
        idx = members[offsets[g] : offsets[g + 1]].tolist()
        nonempty = [j for j in idx if crops.crops[j].size]
        if not nonempty:
            continue
        j0 = nonempty[0]
        canvas, x0, y0 = _grow(crops.crops[j0].copy(), int(crops.x0[j0]), int(crops.y0[j0]),
                               crops, nonempty[1:])
        unions.append((g, canvas, x0, y0))
    if not unions:
        return mask_out
    if CompactMask is not None and isinstance(mask_in, CompactMask):
        rows = np.array([g for g, _, _, _ in unions], dtype=np.int64)
        regions = np.array([(x0, y0, c.shape[1], c.shape[0]) for _, c, x0, y0 in unions],
                           dtype=np.int64)
        encoded = BoxMasks.from_crops(
            regions, [c for _, c, _, _ in unions], crops.image_shape, regions=True
        ).to_supervision(crops.image_shape)
        m = len(mask_out)
        keep_rows = np.setdiff1d(np.arange(m), rows)
        joined = CompactMask.merge([mask_out[keep_rows], encoded])
        position = np.empty(m, dtype=np.int64)
        position[keep_rows] = np.arange(keep_rows.size)
        position[rows] = keep_rows.size + np.arange(rows.size)
        return joined[position]
    out = np.asarray(mask_out)
    for g, canvas, x0, y0 in unions:
        ch, cw = canvas.shape
        out[g, y0 : y0 + ch, x0 : x0 + cw] |= canvas
    return out
