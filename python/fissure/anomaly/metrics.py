"""Threshold-free evaluation of anomaly scores: the area under the ROC curve.

``auroc`` is exact (the Mann-Whitney U statistic, ties counted one half), as
``sklearn.metrics.roc_auc_score`` and torchmetrics' ``BinaryAUROC(thresholds=None)`` (the
metric anomalib reports) compute it. ``pixel_auroc`` flattens anomaly maps and ground-truth
masks first. ``threshold_for`` picks an image threshold for a target false-alarm or miss
rate from scored held-out images; ``rates_at`` reads both rates at a threshold
(``score > threshold`` is flagged, as ``AnomalyResult.is_anomalous``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

__all__ = ["auroc", "pixel_auroc", "rates_at", "threshold_for"]


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


def _scores(v: object, name: str, allow_empty: bool = False) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "iuf" or a.ndim != 1:
        raise TypeError(f"{name}: expected a 1-D array of numeric scores, got "
                        f"{a.dtype} {a.shape}")
    if a.size == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one score")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: scores contain NaN or infinity")
    return a


def _rate(v: object, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(v) < 1.0:
        raise ValueError(f"{name}: expected a rate in [0, 1), got {v!r}")
    return float(v)


def rates_at(threshold: float, normal: np.ndarray,
             defective: Union[np.ndarray, None] = None) -> tuple[float, Union[float, None]]:
    """(false-alarm rate, miss rate) at ``threshold``: the fraction of ``normal`` scores
    above it and of ``defective`` scores at or below it (None without defective scores)."""
    n = _scores(normal, "normal")
    fa = float(np.count_nonzero(n > threshold)) / n.size
    if defective is None:
        return fa, None
    d = _scores(defective, "defective")
    return fa, float(np.count_nonzero(d <= threshold)) / d.size


def threshold_for(normal: np.ndarray, defective: Union[np.ndarray, None] = None, *,
                  false_alarm_rate: Union[float, None] = None,
                  miss_rate: Union[float, None] = None) -> float:
    """The image threshold for one target rate, from held-out scores (``score > threshold``
    is flagged).

    * ``false_alarm_rate=f``: the smallest threshold that flags at most ``floor(f * n)`` of
      the ``n`` normal scores, i.e. the normal scores' upper quantile: fewest misses for that
      false-alarm budget. ``f = 0``: the largest normal score.
    * ``miss_rate=m`` (needs ``defective``): the largest threshold that misses (scores at or
      below it) at most ``floor(m * n_d)`` of the defective scores, i.e. just below the
      ``floor(m * n_d) + 1``-th smallest defective score: fewest false alarms for that miss
      budget.

    The rates hold on these scores; on new images they are estimates whose error shrinks
    with the number of held-out images (1% of 100 normal images is one image).

    Raises:
        ValueError: not exactly one target, a rate outside [0, 1), ``miss_rate`` without
            defective scores, empty or non-finite scores.
    """
    if (false_alarm_rate is None) == (miss_rate is None):
        raise ValueError("threshold_for: give exactly one of false_alarm_rate and miss_rate")
    n = np.sort(_scores(normal, "normal"))
    if false_alarm_rate is not None:
        j = int(np.floor(_rate(false_alarm_rate, "false_alarm_rate") * n.size + 1e-9))
        return float(n[n.size - 1 - j])
    if defective is None:
        raise ValueError("threshold_for: miss_rate needs the defective images' scores")
    d = np.sort(_scores(defective, "defective"))
    j = int(np.floor(_rate(miss_rate, "miss_rate") * d.size + 1e-9))
    return float(np.nextafter(d[j], -np.inf))
