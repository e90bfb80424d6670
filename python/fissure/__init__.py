"""fissure: find small defects in high-resolution images on cheap hardware.

The public API is pure Python over the private compiled module ``fissure._core``.
"""

from __future__ import annotations

from ._version import __version__
from .anomaly import AnomalyResult, PatchCore, kcenter_greedy, knn_search, random_projection
from .decoders import (
    Decoded,
    DecoderSpec,
    decode_detr,
    decode_end_to_end,
    decode_probability_map,
    decode_yolo,
    decode_yolo_seg,
    decode_yolov5,
    decode_yolov5_seg,
    select_decoder,
)
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
    "AnomalyResult",
    "BoxMasks",
    "Decoded",
    "DecoderSpec",
    "Detections",
    "MergeResult",
    "PatchCore",
    "PreprocessConfig",
    "__version__",
    "auto_slice_params",
    "decode_detr",
    "decode_end_to_end",
    "decode_probability_map",
    "decode_yolo",
    "decode_yolo_seg",
    "decode_yolov5",
    "decode_yolov5_seg",
    "dilate_disc",
    "disc_kernel",
    "draw_specular",
    "glare_fraction",
    "greedy_nmm",
    "info",
    "inpaint_specular",
    "kcenter_greedy",
    "knn_search",
    "letterbox_params",
    "nmm",
    "nms",
    "preprocess_tiles",
    "random_projection",
    "regions_from_boxes",
    "select_decoder",
    "slice_grid",
    "specular_mask",
    "suppress_glare",
]
