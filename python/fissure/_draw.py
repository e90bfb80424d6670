"""Drawing helpers shared by the overlays (``Detections.draw``, ``heatmap_overlay``)."""

from __future__ import annotations

__all__ = ["place_tag"]


def place_tag(box: tuple[int, int, int, int], tw: int, th: int, W: int, H: int,
              gap: int = 0) -> tuple[int, int]:
    """Top-left corner of a ``tw`` x ``th`` tag for the inclusive pixel box ``(x0, y0, x1,
    y1)``: above the box, else below it, else inside at its top, at the box's left edge; kept
    within the ``W`` x ``H`` image where it fits."""
    x0, y0, x1, y1 = box
    if y0 - gap - th >= 0:
        top = y0 - gap - th
    elif y1 + 1 + gap + th <= H:
        top = y1 + 1 + gap
    else:
        top = max(y0, 0)
    left = min(max(x0, 0), max(W - tw, 0))
    return left, min(top, max(H - th, 0))
