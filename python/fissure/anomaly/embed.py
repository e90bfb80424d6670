"""PatchCore's patch embedding from backbone feature maps (anomalib's recipe, in C++)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from .. import _core
from .._validate import check_num_threads

__all__ = ["embed_patches"]


def embed_patches(
    features: Sequence[Any],
    *,
    grid: Optional[tuple[int, int]] = None,
    pool: int = 3,
    num_threads: int = -1,
) -> np.ndarray:
    """Patch embeddings ``(B, h, w, sum C)`` float32 from backbone feature maps.

    As anomalib's PatchCore: each ``(B, C, H, W)`` map is average-pooled over a
    ``pool x pool`` window (stride 1, zero padding counted, i.e. torch's
    ``AvgPool2d(3, 1, 1)``), resampled bilinearly to ``grid`` (torch's
    ``F.interpolate(mode="bilinear", align_corners=False)``; maps already on the grid are only
    pooled), and the channels are concatenated in the order given. Rows of
    ``out.reshape(-1, D)`` are the patches, row-major over the grid.

    Args:
        features: the backbone's maps, finest first (e.g. stride 8, then stride 16).
        grid: the output ``(h, w)``; default: the first map's.
        pool: odd window size; 1 disables pooling.
        num_threads: threads of the core's pool (-1: all cores).

    Examples:
        >>> f8 = np.ones((1, 2, 4, 4), np.float32)
        >>> f16 = np.ones((1, 3, 2, 2), np.float32)
        >>> embed_patches([f8, f16]).shape
        (1, 4, 4, 5)
    """
    if isinstance(features, np.ndarray) or not isinstance(features, Sequence) or not features:
        raise ValueError("features: expected a non-empty list of (B, C, H, W) arrays")
    maps = []
    for i, f in enumerate(features):
        a = np.asarray(f)
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"features[{i}]: expected a float array, got dtype {a.dtype}")
        if a.ndim != 4 or 0 in a.shape:
            raise ValueError(f"features[{i}]: expected a non-empty (B, C, H, W) array, got {a.shape}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"features[{i}]: expected finite values, got NaN or inf")
        maps.append(a)
    b = maps[0].shape[0]
    for i, a in enumerate(maps):
        if a.shape[0] != b:
            raise ValueError(f"features[{i}]: expected batch {b} as features[0], got {a.shape[0]}")
    if grid is None:
        gh, gw = maps[0].shape[2], maps[0].shape[3]
    else:
        if (not isinstance(grid, Sequence) or len(grid) != 2 or any(
                isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in grid)):
            raise ValueError(f"grid: expected (h, w) positive ints, got {grid!r}")
        gh, gw = int(grid[0]), int(grid[1])
    if isinstance(pool, bool) or not isinstance(pool, numbers.Integral) or pool < 1 or pool % 2 == 0:
        raise ValueError(f"pool: expected an odd int >= 1, got {pool!r}")
    return _core.embed_patches(maps, gh, gw, int(pool), check_num_threads(num_threads))
