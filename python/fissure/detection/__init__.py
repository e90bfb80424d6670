"""Tiled detection: the detector (:class:`TiledDetector`), the output decoders and their
automatic selection (:mod:`fissure.detection.decoders`), and the result object
(:class:`Detections`: COCO export, supervision conversion, drawing).

See ``docs/detect.md``, ``docs/decoders.md`` and ``docs/detections.md``.
"""

from __future__ import annotations

from .decoders import Decoded, DecoderSpec, select_decoder
from .detections import Detections, coco_dataset
from .detector import DetectStats, TiledDetector

__all__ = [
    "Decoded",
    "DecoderSpec",
    "DetectStats",
    "Detections",
    "TiledDetector",
    "coco_dataset",
    "select_decoder",
]
