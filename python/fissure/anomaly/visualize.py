"""Heatmap overlays of anomaly maps.

The map is normalised around the calibrated threshold as anomalib's visualiser does (the
threshold sits at the middle of the colour scale): ``v = clip((map - t) / span + 0.5, 0, 1)``
with ``span`` twice the threshold (or the map's range above it, when larger), coloured with
OpenCV's JET map and blended over the image; defect regions get an outline.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["heatmap_overlay"]


def heatmap_overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    threshold: float,
    *,
    mask: Optional[np.ndarray] = None,
    alpha: float = 0.45,
    outline: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Returns a BGR uint8 picture: ``image`` with the coloured ``anomaly_map`` blended in at
    ``alpha`` and the outline of ``mask`` (default ``anomaly_map > threshold``) drawn in
    ``outline``.

    ``image`` is (H, W) gray or (H, W, 3) BGR uint8; ``anomaly_map`` is (H, W) at the image's
    resolution.
    """
    import cv2

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
    # one float32 working copy, transformed in place (a 12 MP map is 48 MB per temporary)
    v = np.nan_to_num(amap.astype(np.float32, copy=True), copy=False, nan=0.0, posinf=0.0,
                      neginf=0.0)
    m = (v > t) if mask is None else np.asarray(mask, bool)
    if m.shape != img.shape[:2]:
        raise ValueError(f"heatmap_overlay: mask shape {m.shape} differs from the image's "
                         f"{img.shape[:2]}")
    top = float(v.max()) if v.size else 0.0
    span = max(2.0 * abs(t), 2.0 * (top - t), 1e-12)
    v -= t
    v *= 255.0 / span
    v += 0.5 * 255.0 + 0.5
    np.clip(v, 0.0, 255.0, out=v)
    heat = cv2.applyColorMap(v.astype(np.uint8), cv2.COLORMAP_JET)
    del v
    out = cv2.addWeighted(heat, float(alpha), img, 1.0 - float(alpha), 0.0)
    del heat
    if m.any():
        contours, _ = cv2.findContours(m.view(np.uint8) if m.dtype == bool else m.astype(np.uint8),
                                       cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        thick = max(1, round(max(img.shape[:2]) / 1500))
        cv2.drawContours(out, contours, -1, outline, thick, lineType=cv2.LINE_8)
    return out
