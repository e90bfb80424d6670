"""fissure: find small defects in high-resolution images on cheap hardware.

The public API is pure Python over the private compiled module ``fissure._core``.
"""

from __future__ import annotations

from ._version import __version__
from .decoders import Decoded, decode_end_to_end, decode_probability_map, decode_yolo, decode_yolov5
from .detections import Detections
from .info import info
from .masks import BoxMasks, regions_from_boxes
from .merge import MergeResult, greedy_nmm, nmm, nms
from .preprocess import PreprocessConfig, letterbox_params, preprocess_tiles
from .specular import (
    dilate_disc,
    disc_kernel,
    draw_specular,
    glare_fraction,
    inpaint_specular,
    specular_mask,
    suppress_glare,
)
from .tiling import auto_slice_params, slice_grid

__all__ = [
    "BoxMasks",
    "Decoded",
    "Detections",
    "MergeResult",
    "PreprocessConfig",
    "__version__",
    "auto_slice_params",
    "decode_end_to_end",
    "decode_probability_map",
    "decode_yolo",
    "decode_yolov5",
    "dilate_disc",
    "disc_kernel",
    "draw_specular",
    "glare_fraction",
    "greedy_nmm",
    "info",
    "inpaint_specular",
    "letterbox_params",
    "nmm",
    "nms",
    "preprocess_tiles",
    "regions_from_boxes",
    "slice_grid",
    "specular_mask",
    "suppress_glare",
]
