"""Anomaly detection (PatchCore): patch embedding, the search core over memory banks, and
the PatchCore object.

See ``docs/patchcore_core.md``.
"""

from __future__ import annotations

from .embed import embed_patches
from .patchcore import AnomalyResult, PatchCore
from .search import (
    jl_min_dims,
    kcenter_greedy,
    knn_search,
    random_projection,
    sparse_random_matrix,
)

__all__ = [
    "AnomalyResult",
    "PatchCore",
    "embed_patches",
    "jl_min_dims",
    "kcenter_greedy",
    "knn_search",
    "random_projection",
    "sparse_random_matrix",
]
