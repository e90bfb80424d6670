"""Engine calls shared by the drop-ins, with zero-area detections kept out of the index.

A zero-area box (``x1 == x2`` or ``y1 == y2``), or an empty mask when overlaps are measured
on masks, overlaps nothing: its IoU and IoS with any other detection are 0, so at a
threshold that 0 cannot reach it is never suppressed, never suppresses and never merges.
Such detections are handed to the engine's spatial index only when the threshold lets 0
match (``threshold <= 0`` with ``match="ge"``), and otherwise added back as kept
detections / singleton groups in exactly the place the engine's order puts them. This
keeps the drop-ins independent of how the index treats boxes without extent (two
point-sized boxes at different places made ``fissure.nms`` loop forever at the time of
writing).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

import fissure
from fissure.masks import BoxMasks

__all__ = ["groups", "nms"]


def _zero_area(boxes32: np.ndarray, masks: Optional[BoxMasks], mask_metric: bool) -> np.ndarray:
    if mask_metric and masks is not None:
        return masks.areas() == 0
    return (boxes32[:, 2] == boxes32[:, 0]) | (boxes32[:, 3] == boxes32[:, 1])


def _zero_can_match(threshold: float, match: str) -> bool:
    return float(np.float32(threshold)) <= 0 if match == "ge" else False


def _rank(boxes32: np.ndarray, scores32: np.ndarray, order: Optional[np.ndarray]) -> np.ndarray:
    """Processing rank of every detection: the explicit order, or SAHI's score order."""
    n = scores32.shape[0]
    if order is None:
        b = boxes32
        order = np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], -scores32))
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(n)
    return rank


def _split(boxes32: np.ndarray, kw: dict[str, Any]) -> Optional[np.ndarray]:
    """Indices of the detections the engine must see, or None when that is all of them."""
    masks = kw.get("masks")
    zero = _zero_area(boxes32, masks, bool(kw.get("mask_metric", False)))
    if not zero.any() or _zero_can_match(kw.get("threshold", 0.5), kw.get("match", "ge")):
        return None
    return np.flatnonzero(~zero)


def _subset_kwargs(kw: dict[str, Any], live: np.ndarray, rank: np.ndarray) -> dict[str, Any]:
    sub = dict(kw)
    if sub.get("masks") is not None:
        sub["masks"] = sub["masks"][live]
    if sub.get("order") is not None:
        sub["order"] = np.argsort(rank[live], kind="stable").astype(np.int64)
    return sub


def nms(boxes32: np.ndarray, scores32: np.ndarray, class_ids: Optional[np.ndarray],
        **kw: Any) -> np.ndarray:
    """``fissure.nms`` with zero-area detections kept outside the index (same output)."""
    live = _split(boxes32, kw)
    if live is None:
        return np.asarray(fissure.nms(boxes32, scores32, class_ids, **kw), dtype=np.int64)
    n = scores32.shape[0]
    rank = _rank(boxes32, scores32, kw.get("order"))
    sub_cls = None if class_ids is None else class_ids[live]
    kept = live[np.asarray(
        fissure.nms(boxes32[live], scores32[live], sub_cls, **_subset_kwargs(kw, live, rank)),
        dtype=np.int64)]
    dead = np.setdiff1d(np.arange(n), live)
    kept = np.concatenate([kept, dead])
    if kw.get("order") is not None:  # kept indices in processing order
        return kept[np.argsort(rank[kept], kind="stable")]
    if class_ids is None or kw.get("class_agnostic", False):
        return kept[np.argsort(rank[kept], kind="stable")]
    # SAHI: per class ascending in processing order, then a stable sort by score descending.
    cls = class_ids[kept]
    return kept[np.lexsort((rank[kept], cls, -scores32[kept]))]


def groups(name: str, boxes32: np.ndarray, scores32: np.ndarray,
           class_ids: Optional[np.ndarray], **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """CSR groups ``(group_offsets, members)`` of ``fissure.greedy_nmm`` / ``fissure.nmm``.

    Groups come in the engine's order (classes ascending, then keeper order); zero-area
    detections that cannot match are singleton groups in their place.
    """
    fn = getattr(fissure, name)
    live = _split(boxes32, kw)
    if live is None:
        res = fn(boxes32, scores32, class_ids, **kw)
        return (np.asarray(res.group_offsets, dtype=np.int64),
                np.asarray(res.members, dtype=np.int64))
    n = scores32.shape[0]
    rank = _rank(boxes32, scores32, kw.get("order"))
    sub_cls = None if class_ids is None else class_ids[live]
    res = fn(boxes32[live], scores32[live], sub_cls, **_subset_kwargs(kw, live, rank))
    offsets = np.asarray(res.group_offsets, dtype=np.int64)
    members = live[np.asarray(res.members, dtype=np.int64)]
    dead = np.setdiff1d(np.arange(n), live)
    sizes = np.concatenate([np.diff(offsets), np.ones(dead.size, dtype=np.int64)])
    keepers = np.concatenate([members[offsets[:-1]], dead])
    starts = np.concatenate([offsets[:-1], offsets[-1] + np.arange(dead.size)])
    members = np.concatenate([members, dead])
    if class_ids is None or kw.get("class_agnostic", False):
        perm = np.argsort(rank[keepers], kind="stable")
    else:
        perm = np.lexsort((rank[keepers], class_ids[keepers]))
    sizes = sizes[perm]
    new_offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=new_offsets[1:])
    within = np.arange(int(new_offsets[-1]), dtype=np.int64) - np.repeat(new_offsets[:-1], sizes)
    take = np.repeat(starts[perm], sizes) + within
    return new_offsets, members[take]
