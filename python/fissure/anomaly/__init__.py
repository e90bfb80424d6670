"""Anomaly detection (PatchCore): patch embedding, the search core over memory banks, the
PatchCore object, and exported anomalib models run tiled (:class:`AnomalyModel`).

See ``docs/patchcore_core.md``.
"""

from __future__ import annotations

from .embed import embed_patches
from .metrics import auroc, pixel_auroc, rates_at, threshold_for
from .model import AnomalyModel
from .patchcore import AnomalyResult, PatchCore, standardize_intensity
from .search import (
    jl_min_dims,
    kcenter_greedy,
    knn_search,
    random_projection,
    sparse_random_matrix,
)
from .visualize import heatmap_overlay

__all__ = [
    "AnomalyModel",
    "AnomalyResult",
    "PatchCore",
    "auroc",
    "embed_patches",
    "heatmap_overlay",
    "jl_min_dims",
    "kcenter_greedy",
    "knn_search",
    "pixel_auroc",
    "random_projection",
    "rates_at",
    "sparse_random_matrix",
    "standardize_intensity",
    "threshold_for",
]
