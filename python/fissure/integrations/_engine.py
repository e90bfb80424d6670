"""Engine calls shared by the drop-ins: kept indices and CSR groups as int64 arrays."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

import fissure

__all__ = ["groups", "nms"]


def nms(boxes32: np.ndarray, scores32: np.ndarray, class_ids: Optional[np.ndarray],
        **kw: Any) -> np.ndarray:
    """``fissure.nms``'s kept indices as int64."""
    return np.asarray(fissure.nms(boxes32, scores32, class_ids, **kw), dtype=np.int64)


def groups(name: str, boxes32: np.ndarray, scores32: np.ndarray,
           class_ids: Optional[np.ndarray], **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """CSR groups ``(group_offsets, members)`` of ``fissure.greedy_nmm`` / ``fissure.nmm``,
    in the engine's order (classes ascending, then keeper order)."""
    res = getattr(fissure, name)(boxes32, scores32, class_ids, **kw)
    return (np.asarray(res.group_offsets, dtype=np.int64),
            np.asarray(res.members, dtype=np.int64))
