"""Box-local instance masks.

A detection's mask lives over its own integer pixel region, never as a full-image array:
mask ``i`` is a ``(h_i, w_i)`` bitmap covering columns ``x0_i .. x0_i + w_i - 1`` and rows
``y0_i .. y0_i + h_i - 1`` of the image. All bitmaps are stored back to back in one uint8
buffer. A float box ``[x1, y1, x2, y2]`` owns the region
``x0 = floor(x1), y0 = floor(y1), w = ceil(x2) - x0, h = ceil(y2) - y0``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = ["BoxMasks", "regions_from_boxes"]


def regions_from_boxes(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) int32 regions ``[x0, y0, w, h]`` owned by float xyxy boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.floor(b[:, 0])
    y0 = np.floor(b[:, 1])
    w = np.ceil(b[:, 2]) - x0
    h = np.ceil(b[:, 3]) - y0
    return np.ascontiguousarray(np.stack([x0, y0, w, h], axis=1), dtype=np.int32)


class BoxMasks:
    """A set of box-local masks (one per detection), stored compactly.

    Attributes:
        data: flat uint8 buffer (values 0 or 1) holding every bitmap, row-major, back to back.
        offsets: (N + 1,) int64; bitmap ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
        regions: (N, 4) int32 ``[x0, y0, w, h]``; ``offsets[i+1] - offsets[i] == w_i * h_i``.
        image_shape: ``(height, width)`` of the image the masks belong to, or None.
    """

    __slots__ = ("data", "image_shape", "offsets", "regions")

    def __init__(
        self,
        data: Any,
        offsets: Any,
        regions: Any,
        image_shape: Optional[tuple[int, int]] = None,
        *,
        validate: bool = True,
    ) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1)
        self.regions = np.ascontiguousarray(regions, dtype=np.int32).reshape(-1, 4)
        self.image_shape = (
            None if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
        )
        if validate:
            self._validate()

    def _validate(self) -> None:
        n = self.regions.shape[0]
        if self.offsets.shape != (n + 1,):
            raise ValueError(
                f"offsets: expected shape ({n + 1},) for {n} masks, got {self.offsets.shape}"
            )
        if n == 0:
            if self.offsets[0] != 0:
                raise ValueError("offsets: expected [0] for an empty set of masks")
            return
        w = self.regions[:, 2].astype(np.int64)
        h = self.regions[:, 3].astype(np.int64)
        if (w < 0).any() or (h < 0).any():
            raise ValueError("regions: widths and heights must be >= 0")
        if self.offsets[0] != 0 or not np.array_equal(np.diff(self.offsets), w * h):
            raise ValueError("offsets: expected offsets[0] == 0 and offsets[i+1]-offsets[i] == w*h")
        if self.offsets[-1] != self.data.size:
            raise ValueError(
                f"data: expected {int(self.offsets[-1])} bytes for these regions, got {self.data.size}"
            )
        if self.data.size and self.data.max() > 1:
            raise ValueError("data: expected 0/1 values")

    def __len__(self) -> int:
        return int(self.regions.shape[0])

    def __repr__(self) -> str:
        return (
            f"BoxMasks(n={len(self)}, bytes={self.data.size}, image_shape={self.image_shape})"
        )

    def mask(self, i: int) -> np.ndarray:
        """Bitmap ``i`` as an (h, w) bool array (a copy)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"mask index {i} out of range for {n} masks")
        i %= n
        x0, y0, w, h = (int(v) for v in self.regions[i])
        return self.data[self.offsets[i] : self.offsets[i + 1]].reshape(h, w).astype(bool)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + self.offsets.nbytes + self.regions.nbytes)
