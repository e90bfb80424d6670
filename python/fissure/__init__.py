"""fissure: find small defects in high-resolution images on cheap hardware.

The public API is pure Python over the private compiled module ``fissure._core``.
"""

from __future__ import annotations

from ._version import __version__
from .info import info
from .masks import BoxMasks, regions_from_boxes
from .merge import MergeResult, greedy_nmm, nmm, nms
from .tiling import auto_slice_params, slice_grid

__all__ = [
    "BoxMasks",
    "MergeResult",
    "__version__",
    "auto_slice_params",
    "greedy_nmm",
    "info",
    "nmm",
    "nms",
    "regions_from_boxes",
    "slice_grid",
]
