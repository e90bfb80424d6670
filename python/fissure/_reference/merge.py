"""Pure-numpy twins of :mod:`fissure.merge` (same signatures): naive and quadratic, written to be obviously
right rather than fast. They are the test oracle for the C++ core, and the fallback selected
with ``FISSURE_BACKEND=python``.

Every step follows SAHI 0.12.8 (``sahi/postprocess``) literally: the float32 metric of
``_numpy_backend.compute_metric_matrix``, the loops of ``nms_from_matrix``,
``greedy_nmm_from_matrix`` and ``nmm_from_matrix`` (restricted to the boxes still in play),
``*_match_all`` for a zero threshold, ``_batched_apply`` for classes, and ``_apply_merge``
with ``has_match`` (float64) and ``merge_object_prediction_pair`` for the fold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..masks import BoxMasks

__all__ = ["greedy_nmm", "nmm", "nms"]


# ---------------------------------------------------------------------------------------
# Public twins: the same signatures as fissure.merge
# ---------------------------------------------------------------------------------------
def nms(boxes: Any, scores: Any, class_ids: Any = None, **kwargs: Any) -> np.ndarray:
    """Reference twin of :func:`fissure.nms` (same arguments; recheck is not one of them)."""
    if "recheck" in kwargs:
        raise TypeError("nms() got an unexpected keyword argument 'recheck'")
    from ..merge import _prepare

    kwargs.setdefault("match_threshold", 0.5)
    kwargs.setdefault("match_metric", "iou")
    return _nms(_prepare(boxes, scores, class_ids, **_defaults(kwargs)))


def greedy_nmm(boxes: Any, scores: Any, class_ids: Any = None, **kwargs: Any) -> Any:
    """Reference twin of :func:`fissure.greedy_nmm` (same arguments)."""
    from ..merge import _prepare

    return _greedy_nmm(_prepare(boxes, scores, class_ids, **_defaults(kwargs)))


def nmm(boxes: Any, scores: Any, class_ids: Any = None, **kwargs: Any) -> Any:
    """Reference twin of :func:`fissure.nmm` (same arguments)."""
    from ..merge import _prepare

    return _nmm(_prepare(boxes, scores, class_ids, **_defaults(kwargs)))


def _defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {
        "match_threshold": 0.5,
        "match_metric": "ios",
        "class_agnostic": False,
        "masks": None,
        "mask_metric": False,
        "match": "ge",
        "order": None,
        "num_threads": -1,
        "recheck": "sahi",
    }
    unknown = set(kwargs) - set(out)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
    out.update(kwargs)
    return out


# ---------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------
def _partitions(a: Any) -> list[np.ndarray]:
    """Index sets per class ascending (np.unique + np.where), or everything at once."""
    n = a.n
    if n == 0:
        return []
    if a.class_agnostic or a.class_ids is None:
        return [np.arange(n)]
    return [np.flatnonzero(a.class_ids == c) for c in np.unique(a.class_ids)]


def _ordered(a: Any, idx: np.ndarray) -> np.ndarray:
    """The partition's indices in processing order."""
    if a.order is not None:
        rank = np.empty(a.n, dtype=np.int64)
        rank[a.order] = np.arange(a.n)
        return idx[np.argsort(rank[idx], kind="stable")]
    b = a.boxes[idx]
    return idx[np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], -a.scores[idx]))]


def _match_all(a: Any) -> bool:
    if a.match != "ge":
        return False
    return a.threshold <= 0 if a.mask_metric else np.float32(a.threshold) <= 0


def _box_metric_row(a: Any, i: int, js: np.ndarray) -> np.ndarray:
    """float32 metric of box i against boxes js, as compute_metric_matrix does."""
    boxes = a.boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inter_x1 = np.maximum(boxes[i, 0], boxes[js, 0])
    inter_y1 = np.maximum(boxes[i, 1], boxes[js, 1])
    inter_x2 = np.minimum(boxes[i, 2], boxes[js, 2])
    inter_y2 = np.minimum(boxes[i, 3], boxes[js, 3])
    inter = np.maximum(np.float32(0), inter_x2 - inter_x1) * np.maximum(
        np.float32(0), inter_y2 - inter_y1
    )
    if a.metric == "iou":
        denom = areas[i] + areas[js] - inter
    else:
        denom = np.minimum(areas[i], areas[js])
    out = np.zeros(len(js), dtype=np.float32)
    np.divide(inter, denom, out=out, where=denom > 0)
    return out


def _bitmap(m: BoxMasks, i: int) -> tuple[int, int, np.ndarray]:
    x0, y0, w, h = (int(v) for v in m.regions[i])
    return x0, y0, m.data[m.offsets[i] : m.offsets[i + 1]].reshape(h, w) != 0


def _paste(canvas: np.ndarray, cx: int, cy: int, m: BoxMasks, i: int) -> np.ndarray:
    """Mask i as a bool array the shape of the canvas whose top-left pixel is (cx, cy)."""
    x0, y0, bm = _bitmap(m, i)
    full = np.zeros(canvas.shape, dtype=bool)
    full[y0 - cy : y0 - cy + bm.shape[0], x0 - cx : x0 - cx + bm.shape[1]] = bm
    return full


def _bounding_region(m: BoxMasks, items: Any) -> tuple[int, int, int, int]:
    r = m.regions[np.asarray(items, dtype=np.int64)].astype(np.int64)
    x0, y0 = int(r[:, 0].min()), int(r[:, 1].min())
    x1, y1 = int((r[:, 0] + r[:, 2]).max()), int((r[:, 1] + r[:, 3]).max())
    return x0, y0, x1 - x0, y1 - y0


def _mask_ratio(inter: int, a1: int, a2: int, metric: str) -> float:
    den = a1 + a2 - inter if metric == "iou" else min(a1, a2)
    return inter / den if den > 0 else 0.0


def _mask_metric_row(a: Any, i: int, js: np.ndarray) -> np.ndarray:
    """Pixel IoU / IoS of mask i against masks js, on a canvas covering both."""
    m = a.masks
    out = np.zeros(len(js), dtype=np.float64)
    for k, j in enumerate(js):
        x0, y0, w, h = _bounding_region(m, [i, j])
        canvas = np.zeros((h, w), dtype=bool)
        pi, pj = _paste(canvas, x0, y0, m, i), _paste(canvas, x0, y0, m, int(j))
        out[k] = _mask_ratio(int((pi & pj).sum()), int(pi.sum()), int(pj.sum()), a.metric)
    return out


def _matches(a: Any, i: int, js: np.ndarray) -> np.ndarray:
    """Whether box i matches each of js (the selection test)."""
    js = np.asarray(js, dtype=np.int64)
    if len(js) == 0:
        return np.zeros(0, dtype=bool)
    if a.mask_metric:
        v = _mask_metric_row(a, i, js)
        return v >= a.threshold if a.match == "ge" else v > a.threshold
    v = _box_metric_row(a, i, js)
    if a.match == "ge":  # SAHI's numpy: float32 matrix >= python float, i.e. float32(thr)
        return v >= np.float32(a.threshold)
    return v.astype(np.float64) > a.threshold  # supervision: float32 metric vs float64 thr


def _dominates(a: Any, i: int, j: int) -> bool:
    """nmm_from_matrix's dominates[i, j]: j != i and j scores lower, or equal and
    coords(j) <= coords(i) lexicographically."""
    if i == j:
        return False
    si, sj = a.scores[i], a.scores[j]
    if si != sj:
        return bool(si > sj)
    return tuple(a.boxes[j].tolist()) <= tuple(a.boxes[i].tolist())


# ---------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------
def _nms(a: Any) -> np.ndarray:
    kept_all: list[int] = []
    for idx in _partitions(a):
        ordr = _ordered(a, idx)
        if _match_all(a):
            kept_all.append(int(ordr[0]))
            continue
        suppressed = np.zeros(a.n, dtype=bool)
        for pos, i in enumerate(ordr):
            if suppressed[i]:
                continue
            kept_all.append(int(i))
            rest = ordr[pos + 1 :]
            live = rest[~suppressed[rest]]
            suppressed[live[_matches(a, int(i), live)]] = True
    if a.order is not None:
        rank = {int(v): k for k, v in enumerate(a.order)}
        kept_all.sort(key=lambda i: rank[i])
    elif not (a.class_agnostic or a.class_ids is None):
        kept_all.sort(key=lambda i: a.scores[i], reverse=True)  # stable, like batched_nms
    return np.asarray(kept_all, dtype=np.int64)


def _greedy_groups(a: Any, ordr: np.ndarray) -> list[list[int]]:
    groups: list[list[int]] = []
    suppressed = np.zeros(a.n, dtype=bool)
    for pos, i in enumerate(ordr):
        if suppressed[i]:
            continue
        rest = ordr[pos + 1 :]
        live = rest[~suppressed[rest]]
        take = live if _match_all(a) else live[_matches(a, int(i), live)]
        suppressed[take] = True
        groups.append([int(i)] + [int(j) for j in take])
    return groups


def _nmm_groups(a: Any, ordr: np.ndarray) -> list[list[int]]:
    idx_sorted = np.sort(ordr)  # the partition in index order (np.where)
    if _match_all(a) and a.order is None:
        # nmm_match_all: the top claims every lower score and its own exact duplicates; the
        # other boxes tied with the top stay keepers of nothing.
        top = int(ordr[0])
        tied = a.scores[idx_sorted] == a.scores[top]
        dup = tied & np.all(a.boxes[idx_sorted] == a.boxes[top], axis=1)
        claimed = (~tied | dup) & (idx_sorted != top)
        groups = [[top] + [int(j) for j in idx_sorted[claimed]]]
        for i in ordr:
            i = int(i)
            if i != top and a.scores[i] == a.scores[top] and not np.all(a.boxes[i] == a.boxes[top]):
                groups.append([i])
        return groups
    keeper_of: dict[int, int] = {}
    lists: dict[int, list[int]] = {}
    for i in ordr:
        i = int(i)
        others = idx_sorted[idx_sorted != i]
        match = np.ones(len(others), dtype=bool) if _match_all(a) else _matches(a, i, others)
        matched = [int(j) for j in others[match] if _dominates(a, i, int(j))]
        if i not in keeper_of:
            keeper_of[i] = i
            lists[i] = [i]
        k = keeper_of[i]
        for j in matched:
            if j not in keeper_of:
                lists[k].append(j)
                keeper_of[j] = k
    return list(lists.values())


# ---------------------------------------------------------------------------------------
# The fold: _apply_merge with has_match and merge_object_prediction_pair
# ---------------------------------------------------------------------------------------
def _has_match_boxes(a: Any, merged: list[float], c: int, strict: bool) -> bool:
    """sahi.postprocess.utils.has_match on Python floats (float64)."""
    b1 = merged
    b2 = [float(v) for v in a.boxes[c]]
    area1 = (b1[2] - b1[0]) * (b1[3] - b1[1])
    area2 = (b2[2] - b2[0]) * (b2[3] - b2[1])
    w = max(min(b1[2], b2[2]) - max(b1[0], b2[0]), 0.0)
    h = max(min(b1[3], b2[3]) - max(b1[1], b2[1]), 0.0)
    inter = w * h
    den = area1 + area2 - inter if a.metric == "iou" else min(area1, area2)
    if den == 0:
        v = math.nan if inter == 0 else math.inf  # numpy's 0/0 and x/0
    else:
        v = inter / den
    return v > a.threshold if strict else v >= a.threshold


def _fold(a: Any, groups: list[list[int]]) -> Any:
    from ..merge import MergeResult

    strict = a.recheck == "strict" or a.match == "gt"
    cls = a.class_ids if a.class_ids is not None else np.zeros(a.n, dtype=np.int64)
    out_boxes: list[list[float]] = []
    out_scores: list[float] = []
    out_cls: list[int] = []
    out_members: list[list[int]] = []
    dropped: list[int] = []
    for group in groups:
        k = group[0]
        box = [float(v) for v in a.boxes[k]]
        score = float(a.scores[k])
        cat = int(cls[k])
        members = [k]
        singles: list[int] = []
        check = a.recheck != "off" and len(group) > 1
        canvas = None
        if check and a.mask_metric:
            cx, cy, cw, ch = _bounding_region(a.masks, group)
            canvas = (cx, cy, np.zeros((ch, cw), dtype=bool))
            canvas[2][...] = _paste(canvas[2], cx, cy, a.masks, k)
        for c in group[1:]:
            ok = True
            if check and canvas is not None:
                cx, cy, cm = canvas
                pc = _paste(cm, cx, cy, a.masks, c)
                v = _mask_ratio(int((cm & pc).sum()), int(cm.sum()), int(pc.sum()), a.metric)
                ok = v > a.threshold if strict else v >= a.threshold
            elif check:
                ok = _has_match_boxes(a, box, c, strict)
            if ok:
                b = [float(v) for v in a.boxes[c]]
                box = [min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3])]
                sc = float(a.scores[c])
                cat = cat if score > sc else int(cls[c])  # get_merged_category
                score = max(score, sc)
                members.append(c)
                if canvas is not None:
                    canvas[2][...] |= pc
            elif a.recheck == "keep":
                singles.append(c)
            else:
                dropped.append(c)
        out_boxes.append(box)
        out_scores.append(score)
        out_cls.append(cat)
        out_members.append(members)
        for s in singles:
            out_boxes.append([float(v) for v in a.boxes[s]])
            out_scores.append(float(a.scores[s]))
            out_cls.append(int(cls[s]))
            out_members.append([s])

    sizes = [len(g) for g in out_members]
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(sizes, dtype=np.int64)
    members = np.asarray([i for g in out_members for i in g], dtype=np.int64)
    merged_masks = _merge_masks(a.masks, out_members) if a.masks is not None else None
    return MergeResult(
        boxes=np.asarray(out_boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.asarray(out_scores, dtype=np.float32),
        class_ids=np.asarray(out_cls, dtype=np.int64),
        keep=np.asarray([g[0] for g in out_members], dtype=np.int64),
        group_offsets=offsets,
        members=members,
        dropped=np.asarray(dropped, dtype=np.int64),
        masks=merged_masks,
    )


def _merge_masks(m: BoxMasks, groups: list[list[int]]) -> BoxMasks:
    """OR of each group's masks over the bounding rectangle of the members' regions."""
    chunks: list[np.ndarray] = []
    regions = np.zeros((len(groups), 4), dtype=np.int32)
    offsets = np.zeros(len(groups) + 1, dtype=np.int64)
    for g, items in enumerate(groups):
        x0, y0, w, h = _bounding_region(m, items)
        canvas = np.zeros((h, w), dtype=bool)
        for i in items:
            canvas |= _paste(canvas, x0, y0, m, i)
        regions[g] = (x0, y0, w, h)
        offsets[g + 1] = offsets[g] + w * h
        chunks.append(canvas.astype(np.uint8).reshape(-1))
    data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)
    return BoxMasks(data, offsets, regions, m.image_shape)


def _run_merge(a: Any, select: Any) -> Any:
    groups: list[list[int]] = []
    for idx in _partitions(a):
        groups.extend(select(a, _ordered(a, idx)))
    return _fold(a, groups)


def _greedy_nmm(a: Any) -> Any:
    return _run_merge(a, _greedy_groups)


def _nmm(a: Any) -> Any:
    return _run_merge(a, _nmm_groups)
