"""Slice grids, equal to SAHI's ``get_slice_bboxes``."""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from . import _core

__all__ = ["auto_slice_params", "slice_grid"]

#: Largest size the core takes (int64); SAHI's arithmetic is exact below it.
_MAX_SIZE = 2**63 - 1


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {value!r}")
    if not (0 < int(value) <= _MAX_SIZE):
        raise ValueError(f"{name}: expected a positive int at most 2**63 - 1, got {value}")
    return int(value)


def _check_ratio(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    v = float(value)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{name}: expected a ratio in [0, 1), got {value}")
    return v


def auto_slice_params(height: int, width: int) -> tuple[int, int, int, int]:
    """SAHI's automatic slice choice for an image of this size.

    Returns ``(x_overlap, y_overlap, slice_width, slice_height)`` in pixels, exactly as
    ``sahi.slicing.get_auto_slice_params``.
    """
    h = _check_size(height, "height")
    w = _check_size(width, "width")
    return tuple(int(v) for v in _core.auto_slice_params(h, w))  # type: ignore[return-value]


def slice_grid(
    height: int,
    width: int,
    slice_height: Optional[int] = 640,
    slice_width: Optional[int] = 640,
    overlap_height_ratio: float = 0.2,
    overlap_width_ratio: float = 0.2,
) -> np.ndarray:
    """Tiles covering an image, as SAHI's ``get_slice_bboxes`` makes them.

    Overlap in pixels is ``int(ratio * slice)`` (truncated). Tiles walk row-major, and the
    last tile of each row and column is snapped inward so that it keeps the full slice size
    (an image smaller than a slice gives one tile clipped to the image). When either slice
    size is None, SAHI's automatic slice resolution picks sizes and overlaps. Sizes up to
    ``2**63 - 1`` are exact; a grid of more than ``2**30`` tiles raises ``ValueError``.

    Returns:
        (T, 4) int64 array of ``[x_min, y_min, x_max, y_max]`` tiles.

    Examples:
        >>> slice_grid(1000, 1000, 512, 512)[:3, 0].tolist()
        [0, 410, 488]
    """
    h = _check_size(height, "height")
    w = _check_size(width, "width")
    if slice_height is not None and slice_width is not None:
        sh = _check_size(slice_height, "slice_height")
        sw = _check_size(slice_width, "slice_width")
        oh = int(_check_ratio(overlap_height_ratio, "overlap_height_ratio") * sh)
        ow = int(_check_ratio(overlap_width_ratio, "overlap_width_ratio") * sw)
    else:
        ow, oh, sw, sh = auto_slice_params(h, w)
    return _core.slice_grid(h, w, sh, sw, oh, ow)
