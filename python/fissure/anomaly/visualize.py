"""Anomaly overlays a person reads at a glance.

The picture is the image itself wherever the anomaly map is well below the threshold (those
pixels are copied unchanged). Colour appears only where the map approaches the threshold
(``map >= 0.5 * threshold``: yellow, faint, its opacity growing towards the threshold) or
passes it (orange to dark red, strong). Defect regions (the mask's 8-connected components)
are outlined and numbered 1, 2, ... in the order of ``AnomalyResult.boxes`` and of the
``regions`` of ``AnomalyResult.to_dict()``. Masked glare, which is never scored, is hatched
and outlined in blue. A legend box in the corner that covers the fewest regions explains the
marks and carries a colour bar with the threshold marked (on images too small to hold it
without hiding much of them, it is left out). Fonts and line widths grow with
the image so that the marks stay readable on a 12 MP picture.

Memory: one uint8 copy of the image (the output) plus temporaries of one band of rows; the
map is never copied whole.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._draw import place_tag
from .._optional import require_cv2

__all__ = ["heatmap_overlay"]

#: the colour scale's stops (BGR): at half the threshold, at the threshold, at the top
_LOW, _AT, _TOP = (0, 230, 255), (0, 140, 255), (0, 0, 190)
#: masked glare: hatch and outline colour (BGR), and the hatching's period in line widths
_GLARE = (200, 110, 30)
_BAND = 128  # rows per band of the colouring pass (temporaries: ~20 MB at 4000 px wide)


def _scale(h: int, w: int) -> tuple[float, int]:
    """(font scale, line width) for an image of this size: readable when the picture is
    shown whole on a screen (a 4000 px side gives 1.6 and 4)."""
    side = max(h, w)
    return max(0.35, side / 2500.0), max(1, round(side / 1000.0))


def _lut(lo: float, t: float, hi: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """256 BGR colours (float32) and opacities over ``lo .. hi``: yellow to orange with the
    opacity rising from ``alpha / 4`` to ``alpha / 2`` below ``t``, orange to dark red at
    ``alpha`` from ``t`` on."""
    u = (np.arange(256, dtype=np.float64) + 0.5) / 256.0
    ut = min(max((t - lo) / (hi - lo), 0.0), 1.0)
    lo_c, at_c, top_c = (np.asarray(c, np.float64) for c in (_LOW, _AT, _TOP))
    below = u < ut
    f_lo = np.where(below, u / max(ut, 1e-12), 0.0)[:, None]
    f_hi = np.where(below, 0.0, (u - ut) / max(1.0 - ut, 1e-12))[:, None]
    col = np.where(below[:, None], lo_c + (at_c - lo_c) * f_lo, at_c + (top_c - at_c) * f_hi)
    a = np.where(below, alpha * (0.25 + 0.25 * f_lo[:, 0]), alpha)
    return col.astype(np.float32), a.astype(np.float32)


def _colour(out: np.ndarray, amap: np.ndarray, lo: float, hi: float, col: np.ndarray,
            a: np.ndarray) -> None:
    """Blends the scale's colours into ``out`` where ``amap >= lo``, band by band."""
    k = 255.0 / (hi - lo)
    for y in range(0, amap.shape[0], _BAND):
        band = amap[y:y + _BAND]
        sel = band >= lo  # NaN compares False: left as it is
        if not sel.any():
            continue
        idx = np.clip((band[sel] - lo) * k, 0.0, 255.0).astype(np.uint8)
        sub = out[y:y + _BAND]
        px = sub[sel].astype(np.float32)
        w = a[idx][:, None]
        px += w * (col[idx] - px)
        sub[sel] = np.rint(px).astype(np.uint8)


def _hatch_glare(out: np.ndarray, glare: np.ndarray, lw: int) -> list:
    """Diagonal hatching over the glare pixels and a blue outline around them; returns the
    outlines' bounding boxes (for the legend's placement)."""
    cv2 = require_cv2("heatmap overlays")

    g8 = glare.view(np.uint8)
    contours = _outer_contours(glare)
    period = 4 * lw + 2
    boxes = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        boxes.append((x, y, x + w, y + h))
        sub = out[y:y + h, x:x + w]
        gy, gx = np.ogrid[y:y + h, x:x + w]
        on = (((gx + gy) % period) < lw) & (g8[y:y + h, x:x + w] != 0)
        sub[on] = _GLARE
    if contours:
        cv2.drawContours(out, contours, -1, _GLARE, max(2, lw), lineType=cv2.LINE_8)
    return boxes


def _outer_contours(mask: np.ndarray) -> list:
    """The outer border of each 8-connected component of ``mask`` (islands inside another
    component's hole included), every border pixel listed."""
    cv2 = require_cv2("heatmap overlays")

    if not mask.any():
        return []
    m8 = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    contours, hier = cv2.findContours(m8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    return [c for c, h in zip(contours, hier[0]) if h[3] < 0]


def _tag(out: np.ndarray, text: str, box: tuple[int, int, int, int], fs: float, lw: int,
         ink: tuple[int, int, int], paper: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Draws ``text`` on a filled tag beside ``box`` (:func:`place_tag`); returns the tag's
    xyxy (exclusive) rectangle."""
    cv2 = require_cv2("heatmap overlays")

    font = cv2.FONT_HERSHEY_SIMPLEX
    tt = max(1, lw // 2 + (lw > 1))
    (tw, th), base = cv2.getTextSize(text, font, fs, tt)
    pad = max(1, lw)
    W, H = out.shape[1], out.shape[0]
    x, y = place_tag(box, tw + 2 * pad, th + base + 2 * pad, W, H, gap=lw)
    x1, y1 = x + tw + 2 * pad, y + th + base + 2 * pad
    cv2.rectangle(out, (x, y), (x1 - 1, y1 - 1), paper, -1)
    cv2.putText(out, text, (x + pad, y + pad + th), font, fs, ink, tt, cv2.LINE_AA)
    return x, y, x1, y1


def _legend(out: np.ndarray, lo: float, t: float, hi: float, col: np.ndarray, alpha: float,
            glare: bool, avoid: list, fs: float, lw: int) -> bool:
    """A legend box with the colour bar (threshold marked), in the corner or edge that covers
    the fewest of ``avoid`` (boxes); not drawn (False) when it would take more than half the
    image's width or a third of its height."""
    cv2 = require_cv2("heatmap overlays")

    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = max(0.4, 0.65 * fs)
    tt = max(1, lw // 2)
    H, W = out.shape[:2]
    (_, th), base = cv2.getTextSize("Ag", font, fs, tt)
    line = th + base + 2 * lw
    pad = 2 * lw + 2
    rows = [("region", "defect (> threshold), # as in JSON")]
    if glare:
        rows.append(("glare", "glare: masked, not scored"))
    title = "anomaly score (faint from 50% of threshold)"
    labels = [f"{lo:.3g}", f"threshold {t:.3g}", f"{hi:.3g}"]
    text_w = max(cv2.getTextSize(s, font, fs, tt)[0][0] for s in [title] + [r[1] for r in rows])
    sw = 3 * line  # a sample's width
    bar_h = line
    box_w = max(text_w + sw + 3 * pad, 2 * pad + sum(
        cv2.getTextSize(s, font, fs, tt)[0][0] for s in labels) + 4 * pad)
    box_h = pad + line * (1 + len(rows)) + bar_h + line + pad
    if box_w > W // 2 or box_h > H // 3:
        return False  # no room: a legend would hide much of a small image
    m = 2 * lw  # margin from the image's edge
    mid = (W - box_w) // 2
    corners = [(W - box_w - m, m), (m, m), (W - box_w - m, H - box_h - m), (m, H - box_h - m),
               (mid, m), (mid, H - box_h - m)]

    def covered(c):
        x, y = c
        return sum(max(0, min(x + box_w, b[2]) - max(x, b[0])) *
                   max(0, min(y + box_h, b[3]) - max(y, b[1])) for b in avoid)

    x, y = min(corners, key=covered)
    x, y = max(x, 0), max(y, 0)
    panel = out[y:y + box_h, x:x + box_w]
    panel[:] = (0.25 * panel.astype(np.float32) + 0.75 * 255).astype(np.uint8)  # light paper
    cv2.rectangle(out, (x, y), (x + box_w - 1, y + box_h - 1), (60, 60, 60), max(1, lw // 2))
    ink = (20, 20, 20)
    cy = y + pad
    cv2.putText(out, title, (x + pad, cy + th), font, fs, ink, tt, cv2.LINE_AA)
    cy += line
    for kind, text in rows:
        sx0, sy0, sx1, sy1 = x + pad, cy, x + pad + sw, cy + th + base
        if kind == "region":
            sub = out[sy0:sy1 + 1, sx0:sx1 + 1]
            sub[:] = np.rint(sub * (1 - alpha) + col[200] * alpha).astype(np.uint8)
            cv2.rectangle(out, (sx0, sy0), (sx1, sy1), (0, 0, 0), lw + 2)
            cv2.rectangle(out, (sx0, sy0), (sx1, sy1), (255, 255, 255), max(1, lw // 2))
        else:
            sub = out[sy0:sy1 + 1, sx0:sx1 + 1]
            gy, gx = np.ogrid[:sub.shape[0], :sub.shape[1]]
            sub[((gx + gy) % (4 * lw + 2)) < lw] = _GLARE
            cv2.rectangle(out, (sx0, sy0), (sx1, sy1), _GLARE, lw)
        cv2.putText(out, text, (sx1 + pad, cy + th), font, fs, ink, tt, cv2.LINE_AA)
        cy += line
    # the colour bar: the scale's colours at the opacity they get, over mid grey
    bx0, bx1 = x + pad, x + box_w - pad
    n = max(bx1 - bx0, 1)
    u = np.clip(((np.arange(n) + 0.5) / n * 256).astype(np.int64), 0, 255)
    _, a = _lut(lo, t, hi, alpha)
    grey = np.float32(128)
    strip = grey + a[u][:, None] * (col[u] - grey)
    bar = out[cy:cy + bar_h, bx0:bx0 + n]
    bar[:] = np.rint(strip[None, : bar.shape[1]]).astype(np.uint8)
    tx = bx0 + int(round((t - lo) / (hi - lo) * n))
    cv2.line(out, (tx, cy - lw), (tx, cy + bar_h + lw), (0, 0, 0), max(2, lw))
    cy += bar_h + lw
    # the ends' labels at the bar's ends; the threshold's centred on its mark, moved aside
    # (never over the end labels) when the mark is near an end
    widths = [cv2.getTextSize(s, font, fs, tt)[0][0] for s in labels]
    gap = 2 * pad
    mid_left = min(max(tx - widths[1] // 2, bx0 + widths[0] + gap), bx1 - widths[2] - gap - widths[1])
    for s, left in zip(labels, (bx0, mid_left, bx1 - widths[2])):
        cv2.putText(out, s, (left, cy + th), font, fs, ink, tt, cv2.LINE_AA)
    return True


def heatmap_overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    threshold: float,
    *,
    mask: Optional[np.ndarray] = None,
    glare: Optional[np.ndarray] = None,
    boxes: Optional[np.ndarray] = None,
    alpha: float = 0.45,
    legend: bool = True,
) -> np.ndarray:
    """Returns a BGR uint8 picture of ``image`` with the anomalies marked (module docstring).

    Args:
        image: (H, W) gray or (H, W, 3) BGR uint8.
        anomaly_map: (H, W) at the image's resolution.
        threshold: the pixel threshold (finite).
        mask: the defect mask (default ``anomaly_map > threshold``).
        glare: (H, W) bool mask of the glare that was masked out (hatched), or None.
        boxes: (K, 4) xyxy of the regions to number, in their order (default: the mask's
            8-connected components in OpenCV's label order, as ``PatchCore.predict`` lists
            them).
        alpha: opacity of the colour where the map passes the threshold; where it only
            approaches it, the opacity rises from ``alpha / 4`` to ``alpha / 2``.
        legend: draw the legend box and colour bar (where it fits in half the image's width
            and a third of its height).
    """
    cv2 = require_cv2("heatmap overlays")

    from ..io import as_image

    img = as_image(image)
    amap = np.asarray(anomaly_map)
    if amap.ndim != 2 or amap.shape != img.shape[:2]:
        raise ValueError(f"heatmap_overlay: expected an (H, W) map of the image's size "
                         f"{img.shape[:2]}, got {amap.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"heatmap_overlay: alpha must be in [0, 1], got {alpha!r}")
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"heatmap_overlay: threshold must be finite, got {threshold!r}")
    H, W = img.shape[:2]
    m = (amap > t) if mask is None else np.asarray(mask, bool)
    if m.shape != (H, W):
        raise ValueError(f"heatmap_overlay: mask shape {m.shape} differs from the image's "
                         f"{(H, W)}")
    g = None if glare is None else np.asarray(glare, bool)
    if g is not None and g.shape != (H, W):
        raise ValueError(f"heatmap_overlay: glare shape {g.shape} differs from the image's "
                         f"{(H, W)}")
    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    fs, lw = _scale(H, W)
    lo = 0.5 * t
    top = float(np.nanmax(amap)) if amap.size else 0.0
    hi = max(top if np.isfinite(top) else lo, 2.0 * t, lo + 1e-6)
    if t <= 0:
        lo, hi = t, max(hi, t + 1e-6)
    col, a = _lut(lo, t, hi, float(alpha))
    if amap.size:
        _colour(out, amap, lo, hi, col, a)
    avoid: list = []
    if g is not None and g.any():
        avoid += _hatch_glare(out, g, lw)
    contours = _outer_contours(m)
    if boxes is None and contours:
        # OpenCV's label order, as PatchCore.predict lists its regions (the label image is
        # the one full-size temporary beside the output; AnomalyResult.overlay passes boxes)
        _, _, st, _ = cv2.connectedComponentsWithStats(m.view(np.uint8), connectivity=8)
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in st[1:, :4]], np.float32)
    elif boxes is None:
        boxes = np.zeros((0, 4), np.float32)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if contours:
        # a dark line under a white one: visible on bright and dark surfaces alike
        cv2.drawContours(out, contours, -1, (0, 0, 0), lw + 2, lineType=cv2.LINE_8)
        cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, lw // 2),
                         lineType=cv2.LINE_8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist(), start=1):
        box = (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)) - 1, int(np.ceil(y1)) - 1)
        avoid.append((box[0], box[1], box[2] + 1, box[3] + 1))
        avoid.append(_tag(out, str(i), box, fs, lw, (255, 255, 255), (0, 0, 0)))
    if legend:
        _legend(out, lo, t, hi, col, float(alpha), g is not None and bool(g.any()), avoid,
                fs, lw)
    return out
