"""Pure-numpy twins of :mod:`fissure.specular` (same signatures, same argument checks): the
HSV rule from OpenCV's formula, a disc dilation by shifted ORs, glare fractions by loops."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..masks import BoxMasks

__all__ = ["dilate_disc", "glare_fraction", "specular_mask", "threshold_table"]


def specular_mask(image: Any, *, v_min: int = 240, s_max: int = 30, dilate: int = 0,
                  rgb: bool = False, num_threads: int = -1,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
    """Twin of :func:`fissure.specular_mask`."""
    from ..specular import _mask_args

    img, vm, sm, r, _, o = _mask_args(image, v_min, s_max, dilate, rgb, num_threads, out)
    res = _mask(img, vm, sm)
    if r:
        res = _dilate(res, r)
    return _into(res, o)


def dilate_disc(mask: Any, radius: int, *, num_threads: int = -1,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """Twin of :func:`fissure.dilate_disc`."""
    from ..specular import _dilate_args

    m, r, _, o = _dilate_args(mask, radius, num_threads, out)
    return _into(_dilate(m != 0, r), o)


def glare_fraction(mask: Any, boxes: Any = None, *, masks: Optional[BoxMasks] = None,
                   num_threads: int = -1) -> np.ndarray:
    """Twin of :func:`fissure.glare_fraction`."""
    from ..specular import _fraction_args

    m, b, _ = _fraction_args(mask, boxes, masks, num_threads)
    if masks is not None:
        return _fraction_masks(m, masks)
    assert b is not None
    return _fraction_boxes(m, b)


def _into(res: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    if out is None:
        return res
    out[...] = res
    return out


def threshold_table(v_min: int, s_max: int) -> np.ndarray:
    """T[v]: diff < T[v] iff OpenCV's S(v, diff) < s_max (and v > v_min); from the formula."""
    v = np.arange(256, dtype=np.int64)
    sdiv = np.zeros(256, dtype=np.int64)
    sdiv[1:] = np.floor((255 << 12) / v[1:] + 0.5).astype(np.int64)
    d = np.arange(256, dtype=np.int64)
    s = (d[None, :] * sdiv[:, None] + 2048) >> 12  # S for (v, diff)
    ok = (s < s_max) & (d[None, :] <= v[:, None])
    t = ok.sum(axis=1)  # ok is a prefix in diff: S grows with diff
    t[: v_min + 1] = 0
    return t.astype(np.uint8)


def _mask(img: np.ndarray, v_min: int, s_max: int) -> np.ndarray:
    t = threshold_table(v_min, s_max)
    if img.ndim == 2:
        return t[img] > 0  # diff = 0
    v = img.max(axis=2)
    d = v - img.min(axis=2)
    return d < t[v]


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    m = mask != 0
    if r == 0:
        return m.copy()
    h, w = m.shape
    pad = np.zeros((h + 2 * r, w + 2 * r), dtype=bool)
    pad[r:r + h, r:r + w] = m
    out = np.zeros_like(m)
    from ..specular import disc_kernel

    k = disc_kernel(r)
    for dy, dx in zip(*np.nonzero(k)):
        out |= pad[dy:dy + h, dx:dx + w]
    return out


def _fraction_boxes(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros(len(boxes), dtype=np.float32)
    b = boxes.astype(np.float64)
    for i, (x1, y1, x2, y2) in enumerate(b):
        x0, y0 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
        xe, ye = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
        area = max(xe - x0, 0) * max(ye - y0, 0)
        if area:
            out[i] = np.count_nonzero(mask[y0:ye, x0:xe]) / area
    return out


def _fraction_masks(mask: np.ndarray, masks: BoxMasks) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros(len(masks), dtype=np.float32)
    for i in range(len(masks)):
        bm = masks.mask(i) != 0
        x0, y0, mw, mh = (int(v) for v in masks.regions[i])
        total = int(bm.sum())
        if not total:
            continue
        canvas = np.zeros((mh, mw), dtype=bool)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + mw, w), min(y0 + mh, h)
        if cx1 > cx0 and cy1 > cy0:
            canvas[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = mask[cy0:cy1, cx0:cx1] != 0
        out[i] = np.count_nonzero(bm & canvas) / total
    return out
