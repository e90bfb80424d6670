"""Anomaly detection (PatchCore): the search core over memory banks.

See :mod:`fissure.anomaly.search` and ``docs/patchcore_core.md``.
"""

from __future__ import annotations

from .search import (
    jl_min_dims,
    kcenter_greedy,
    knn_search,
    random_projection,
    sparse_random_matrix,
)

__all__ = [
    "jl_min_dims",
    "kcenter_greedy",
    "knn_search",
    "random_projection",
    "sparse_random_matrix",
]
