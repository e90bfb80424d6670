"""Threshold-free evaluation of anomaly scores: the area under the ROC curve.

``auroc`` is exact (the Mann-Whitney U statistic, ties counted one half), as
``sklearn.metrics.roc_auc_score`` and torchmetrics' ``BinaryAUROC(thresholds=None)`` (the
metric anomalib reports) compute it. ``pixel_auroc`` flattens anomaly maps and ground-truth
masks first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

__all__ = ["auroc", "pixel_auroc"]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) for boolean
    ``labels`` (True = anomalous). Exact, O(n log n); tied scores count one half.

    Raises ValueError for mismatched lengths, non-finite scores, or labels of one class only.
    """
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"auroc: expected 1-D scores and labels of one length, got {s.shape} "
                         f"and {y.shape}")
    if s.dtype.kind not in "iuf" or y.dtype.kind not in "biu":
        raise TypeError(f"auroc: expected numeric scores and boolean labels, got {s.dtype} and "
                        f"{y.dtype}")
    if y.dtype.kind != "b":
        if np.any((y != 0) & (y != 1)):
            raise ValueError("auroc: integer labels must be 0 or 1")
        y = y.astype(bool)
    s = s.astype(np.float64, copy=False)
    if not np.all(np.isfinite(s)):
        raise ValueError("auroc: scores contain NaN or infinity")
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"auroc: needs both classes, got {n_pos} anomalous and {n_neg} normal")
    order = np.argsort(s, kind="stable")
    ss = s[order]
    # average 1-based ranks over runs of tied scores
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    ends = np.r_[starts[1:], ss.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.repeat(avg, ends - starts)
    rank_pos = float(ranks[y[order]].sum())
    return (rank_pos - n_pos * (n_pos + 1) / 2.0) / (float(n_pos) * float(n_neg))


def pixel_auroc(maps: Union[np.ndarray, Sequence[np.ndarray]],
                masks: Union[np.ndarray, Sequence[np.ndarray]]) -> float:
    """AUROC over every pixel of one or more anomaly maps against their ground-truth masks
    (same shapes, pair by pair)."""
    if isinstance(maps, np.ndarray):
        maps, masks = [maps], [np.asarray(masks)]
    maps, masks = list(maps), list(masks)
    if len(maps) != len(masks) or not maps:
        raise ValueError(f"pixel_auroc: expected as many maps as masks (at least one), got "
                         f"{len(maps)} and {len(masks)}")
    for m, g in zip(maps, masks):
        if np.shape(m) != np.shape(g):
            raise ValueError(f"pixel_auroc: map {np.shape(m)} and mask {np.shape(g)} differ in shape")
    s = np.concatenate([np.asarray(m, np.float32).ravel() for m in maps])
    y = np.concatenate([np.asarray(g).astype(bool).ravel() for g in masks])
    return auroc(s, y)
