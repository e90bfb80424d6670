"""Box-local instance masks.

A detection's mask lives over its own integer pixel region, never as a full-image array:
mask ``i`` is a ``(h_i, w_i)`` bitmap covering columns ``x0_i .. x0_i + w_i - 1`` and rows
``y0_i .. y0_i + h_i - 1`` of the image. All bitmaps are stored back to back in one uint8
buffer. A float box ``[x1, y1, x2, y2]`` owns the region
``x0 = floor(x1), y0 = floor(y1), w = ceil(x2) - x0, h = ceil(y2) - y0``.

Conversions (heavy loops in the C++ core, GIL released): dense ``(N, H, W)`` masks, a
model's per-tile masks, COCO RLE (pycocotools' format, computed without a full image),
crop-scoped RLE, polygons (OpenCV, optional) and supervision's ``CompactMask`` (optional).
See ``docs/masks.md``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._optional import require_cv2
from ._validate import as_boxes, as_int, check_num_threads, describe

__all__ = ["BoxMasks", "MAX_MASK_PIXELS", "regions_from_boxes"]

_I32 = np.iinfo(np.int32)

#: The largest image (height * width) whose masks are decoded from COCO RLE or polygons:
#: geometry is int32, and a few bytes of RLE must not make gigabytes of bitmap.
MAX_MASK_PIXELS = 2**31 - 1
# Polygon vertices beyond this are refused: OpenCV rasterises in int32 arithmetic.
_MAX_POLY_COORD = _I32.max // 2


def _box_edges(boxes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 ``floor(x1), floor(y1), ceil(x2), ceil(y2)`` of (N, 4) xyxy boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.floor(b[:, 0]), np.floor(b[:, 1]), np.ceil(b[:, 2]), np.ceil(b[:, 3])


def regions_from_boxes(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) int32 regions ``[x0, y0, w, h]`` owned by float xyxy boxes.

    Raises ValueError where a region does not fit int32 geometry (coordinates beyond
    +-2**31, or non-finite ones); the mask constructors clip boxes to the image first."""
    x0, y0, x1, y1 = _box_edges(boxes)
    lo, hi = float(_I32.min), float(_I32.max)
    ok = (
        np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
        & (x0 >= lo) & (y0 >= lo) & (x1 <= hi) & (y1 <= hi)
        & (x1 - x0 <= hi) & (y1 - y0 <= hi)
    )
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"boxes: row {bad} ({np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[bad].tolist()}) "
            "gives a region outside the int32 range"
        )
    return np.ascontiguousarray(np.stack([x0, y0, x1 - x0, y1 - y0], axis=1), dtype=np.int32)


def _clipped_box_regions(boxes: Any, x_lo: Any, y_lo: Any, x_hi: Any, y_hi: Any,
                         dx: Any = 0, dy: Any = 0) -> np.ndarray:
    """The regions of boxes moved by (-dx, -dy) and cut to [x_lo, x_hi) x [y_lo, y_hi), the
    clipping done in float64 before any integer cast (so huge finite boxes clip correctly).
    Bounds and shifts are scalars or per-row arrays of ints; as ``_clip_regions`` does, a
    region that misses the window becomes zero-size, its origin clamped into the window."""
    fx0, fy0, fx1, fy1 = _box_edges(boxes)
    dx = np.asarray(dx, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    x_lo, x_hi = np.asarray(x_lo, np.float64), np.asarray(x_hi, np.float64)
    y_lo, y_hi = np.asarray(y_lo, np.float64), np.asarray(y_hi, np.float64)
    x0 = np.clip(fx0 - dx, x_lo, x_hi)
    y0 = np.clip(fy0 - dy, y_lo, y_hi)
    x1 = np.clip(fx1 - dx, x_lo, x_hi)
    y1 = np.clip(fy1 - dy, y_lo, y_hi)
    w = np.maximum(x1 - x0, 0)
    h = np.maximum(y1 - y0, 0)
    out = np.stack([x0, y0, w, h], axis=1).astype(np.int64)
    return np.ascontiguousarray(out, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------------------------


def _as_image_shape(value: Any, name: str = "image_shape") -> tuple[int, int]:
    """(height, width) from a 2- or 3-tuple (an image's ``.shape`` works); both positive."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name}: expected (height, width), got {describe(value)}")
    if len(value) not in (2, 3):
        raise ValueError(f"{name}: expected (height, width), got {tuple(value)}")
    out = []
    for v in value[:2]:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name}: expected integer (height, width), got {tuple(value)}")
        out.append(int(v))
    if out[0] <= 0 or out[1] <= 0:
        raise ValueError(f"{name}: expected positive (height, width), got {tuple(out)}")
    if out[0] > _I32.max or out[1] > _I32.max:
        raise ValueError(f"{name}: height and width must fit int32 (<= {_I32.max}), got {tuple(out)}")
    return out[0], out[1]


def _check_pixels(shape: tuple[int, int], name: str) -> None:
    """ValueError when an image of ``shape`` has more than MAX_MASK_PIXELS pixels."""
    if shape[0] * shape[1] > MAX_MASK_PIXELS:
        raise ValueError(
            f"{name}: {shape[0]} x {shape[1]} is more than MAX_MASK_PIXELS = {MAX_MASK_PIXELS} "
            "pixels"
        )


def _finite_threshold(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def _typed(a: Any, name: str, dtype: Any, allowed: str) -> np.ndarray:
    """``a`` as C-contiguous ``dtype``: TypeError for another kind of dtype, ValueError where a
    value would not survive the cast. ``allowed``: "bitmap" (bool/uint8) or "int"."""
    arr = np.asarray(a)
    if arr.size == 0:
        return np.ascontiguousarray(arr, dtype=dtype)
    if allowed == "bitmap":
        if arr.dtype != np.bool_ and arr.dtype != np.uint8:
            raise TypeError(f"{name}: expected dtype uint8 or bool, got {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=dtype)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected an integer dtype, got {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.dtype != dtype:
        if arr.dtype == np.uint64:
            too_big = int(arr.max()) > info.max
        else:
            too_big = arr.max() > info.max or arr.min() < info.min
        if too_big:
            raise ValueError(f"{name}: values leave the {np.dtype(dtype).name} range")
    return np.ascontiguousarray(arr, dtype=dtype)


def _as_regions(regions: Any, name: str = "regions") -> np.ndarray:
    """(N, 4) int32 ``[x0, y0, w, h]`` with sizes >= 0."""
    arr = np.asarray(regions)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if not (np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected integer [x0, y0, w, h] regions, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (N, 4) as [x0, y0, w, h], got {arr.shape}")
    a64 = arr.astype(np.int64)
    if a64.size and (a64.min() < _I32.min or (a64[:, :2] + a64[:, 2:]).max() > _I32.max):
        raise ValueError(f"{name}: coordinates leave the int32 range")
    if a64.size and (a64[:, 2:] < 0).any():
        bad = int(np.flatnonzero((a64[:, 2:] < 0).any(axis=1))[0])
        raise ValueError(f"{name}: expected sizes >= 0, row {bad} is {arr[bad].tolist()}")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _clip_regions(regions: np.ndarray, x_lo: Any, y_lo: Any, x_hi: Any, y_hi: Any) -> np.ndarray:
    """Intersects regions with [x_lo, x_hi) x [y_lo, y_hi) (scalars or per-row arrays).

    A region that misses the window becomes zero-size, its origin clamped into the window."""
    r = regions.astype(np.int64)
    x0 = np.clip(r[:, 0], x_lo, x_hi)
    y0 = np.clip(r[:, 1], y_lo, y_hi)
    x1 = np.clip(r[:, 0] + r[:, 2], x_lo, x_hi)
    y1 = np.clip(r[:, 1] + r[:, 3], y_lo, y_hi)
    w = np.maximum(x1 - x0, 0)
    h = np.maximum(y1 - y0, 0)
    return np.ascontiguousarray(np.stack([x0, y0, w, h], axis=1), dtype=np.int32)


def _as_planes(masks: Any, name: str, *, allow_float: bool) -> np.ndarray:
    """(N, H, W) C-contiguous bool/uint8 (and float32 when allowed) planes."""
    if not isinstance(masks, np.ndarray):
        if isinstance(masks, (str, bytes)) or masks is None:
            raise TypeError(f"{name}: expected an (N, H, W) array, got {describe(masks)}")
        masks = np.asarray(masks)
    dt = masks.dtype
    if dt == np.bool_ or dt == np.uint8:
        pass
    elif allow_float and np.issubdtype(dt, np.floating):
        if dt != np.float32:
            masks = masks.astype(np.float32)
    else:
        want = "bool, uint8 or float" if allow_float else "bool or uint8"
        raise TypeError(f"{name}: expected dtype {want}, got {dt}")
    if masks.ndim != 3:
        hint = " (add a leading axis for one mask)" if masks.ndim == 2 else ""
        raise ValueError(f"{name}: expected shape (N, height, width){hint}, got {masks.shape}")
    return np.ascontiguousarray(masks)


def _as_bitmap(crop: Any, name: str) -> np.ndarray:
    a = np.asarray(crop)
    if a.dtype != np.bool_ and a.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype bool or uint8, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (h, w) bitmap, got shape {a.shape}")
    return a




def _normalise_counts(counts: Any, i: int) -> Union[bytes, np.ndarray]:
    """bytes for a compressed counts string, C-contiguous int64 for uncompressed counts."""
    if isinstance(counts, bytes):
        return counts
    if isinstance(counts, str):
        try:
            return counts.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"rles[{i}]['counts']: expected an ASCII counts string") from None
    if isinstance(counts, (Sequence, np.ndarray)):
        arr = np.asarray(counts)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
            raise TypeError(
                f"rles[{i}]['counts']: expected a 1-D list of integer run lengths, got "
                f"{describe(arr)}"
            )
        return np.ascontiguousarray(arr, dtype=np.int64)
    raise TypeError(
        f"rles[{i}]['counts']: expected bytes, str or a list of ints, got {type(counts).__name__}"
    )


def _check_rle_size(rle: Any, i: int, shape: Optional[tuple[int, int]]) -> tuple[int, int]:
    """Checks one COCO RLE dict's keys and size against the shape so far; returns the shape."""
    if not isinstance(rle, Mapping):
        raise TypeError(
            f"rles[{i}]: expected a dict with 'size' and 'counts', got {type(rle).__name__}"
        )
    if "size" not in rle or "counts" not in rle:
        raise ValueError(f"rles[{i}]: expected keys 'size' and 'counts', got {sorted(rle)}")
    size = rle["size"]
    try:
        size_t = _as_image_shape(size, f"rles[{i}]['size']")
    except (TypeError, ValueError) as e:
        raise type(e)(f"{e} (COCO size is [height, width])") from None
    if len(size) != 2:
        raise ValueError(f"rles[{i}]['size']: expected [height, width], got {list(size)}")
    if shape is not None and size_t != shape:
        raise ValueError(
            f"rles[{i}]['size']: expected {list(shape)} like the others, got {list(size_t)}"
        )
    return size_t


# ---------------------------------------------------------------------------------------------
# BoxMasks
# ---------------------------------------------------------------------------------------------


class BoxMasks:
    """A set of box-local masks (one per detection), stored compactly.

    Attributes:
        data: flat uint8 buffer (values 0 or 1) holding every bitmap, row-major, back to back.
        offsets: (N + 1,) int64; bitmap ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
        regions: (N, 4) int32 ``[x0, y0, w, h]``; ``offsets[i+1] - offsets[i] == w_i * h_i``.
        image_shape: ``(height, width)`` of the image the masks belong to, or None. When set,
            every region lies inside the image.

    The arrays are treated as immutable: operations may share them between sets (slicing
    and ``shift`` do), so do not write into them in place.
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
        self.data = _typed(data, "data", np.uint8, "bitmap").reshape(-1)
        self.offsets = _typed(offsets, "offsets", np.int64, "int").reshape(-1)
        self.regions = _typed(regions, "regions", np.int32, "int").reshape(-1, 4)
        self.image_shape = None if image_shape is None else _as_image_shape(image_shape)
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
            if self.data.size:
                raise ValueError(f"data: expected 0 bytes for 0 masks, got {self.data.size}")
            return
        w = self.regions[:, 2].astype(np.int64)
        h = self.regions[:, 3].astype(np.int64)
        if (w < 0).any() or (h < 0).any():
            bad = int(np.flatnonzero((w < 0) | (h < 0))[0])
            raise ValueError(
                f"regions: widths and heights must be >= 0, row {bad} is "
                f"{self.regions[bad].tolist()}"
            )
        if self.offsets[0] != 0 or not np.array_equal(np.diff(self.offsets), w * h):
            raise ValueError("offsets: expected offsets[0] == 0 and offsets[i+1]-offsets[i] == w*h")
        if self.offsets[-1] != self.data.size:
            raise ValueError(
                f"data: expected {int(self.offsets[-1])} bytes for these regions, "
                f"got {self.data.size}"
            )
        if self.data.size and self.data.max() > 1:
            raise ValueError("data: expected 0/1 values")
        if self.image_shape is not None:
            self._check_inside(self.image_shape)

    def _check_inside(self, image_shape: tuple[int, int]) -> None:
        if not len(self):
            return
        H, W = image_shape
        r = self.regions.astype(np.int64)
        out = (r[:, 0] < 0) | (r[:, 1] < 0) | (r[:, 0] + r[:, 2] > W) | (r[:, 1] + r[:, 3] > H)
        if out.any():
            bad = int(np.flatnonzero(out)[0])
            raise ValueError(
                f"regions: expected regions inside the image of shape {image_shape}, row {bad} "
                f"is [x0, y0, w, h] = {self.regions[bad].tolist()} (use clip() to cut masks "
                f"to an image)"
            )

    @classmethod
    def _trusted(
        cls, triple: tuple[np.ndarray, np.ndarray, np.ndarray], image_shape: Any = None
    ) -> BoxMasks:
        """Wraps the core's output (already consistent) without re-validating it."""
        data, offsets, regions = triple
        return cls(data, offsets, regions, image_shape, validate=False)

    def _args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.data, self.offsets, self.regions

    def _canvas(self, image_shape: Any, what: str) -> tuple[int, int]:
        if image_shape is not None:
            return _as_image_shape(image_shape)
        if self.image_shape is None:
            raise ValueError(f"{what}: these masks have no image_shape, pass image_shape=(H, W)")
        return self.image_shape

    # -- basics ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.regions.shape[0])

    def __repr__(self) -> str:
        return f"BoxMasks(n={len(self)}, bytes={self.data.size}, image_shape={self.image_shape})"

    def mask(self, i: int) -> np.ndarray:
        """Bitmap ``i`` as an (h, w) bool array (a copy)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"mask index {i} out of range for {n} masks")
        i %= n
        _, _, w, h = (int(v) for v in self.regions[i])
        return self.data[self.offsets[i] : self.offsets[i + 1]].reshape(h, w).astype(bool)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + self.offsets.nbytes + self.regions.nbytes)

    @property
    def region_boxes(self) -> np.ndarray:
        """(N, 4) float32 xyxy boxes of the regions (not of the set pixels: see tight_boxes)."""
        r = self.regions.astype(np.float32)
        return np.ascontiguousarray(
            np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
        )

    def equals(self, other: BoxMasks) -> bool:
        """Same regions, same bitmaps and same image_shape."""
        return (
            isinstance(other, BoxMasks)
            and self.image_shape == other.image_shape
            and np.array_equal(self.regions, other.regions)
            and np.array_equal(self.data, other.data)
        )

    @classmethod
    def empty(cls, image_shape: Optional[tuple[int, int]] = None) -> BoxMasks:
        """A set of zero masks."""
        return cls(
            np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros((0, 4), np.int32), image_shape
        )

    # -- construction from dense arrays ---------------------------------------------------

    @classmethod
    def from_full(cls, masks: Any, boxes: Any = None, *, num_threads: int = -1) -> BoxMasks:
        """Box-local masks from full-image masks.

        Args:
            masks: (N, H, W) bool or uint8 (nonzero is set) full-image masks.
            boxes: (N, 4) xyxy boxes; mask ``i`` keeps only the pixels of its box's region
                (clipped to the image). None: each mask keeps its tight bounding region
                (an empty mask gets a zero-size region at (0, 0)).

        Returns:
            BoxMasks with ``image_shape == (H, W)``.
        """
        planes = _as_planes(masks, "masks", allow_float=False)
        nt = check_num_threads(num_threads)
        n, H, W = planes.shape
        if H == 0 or W == 0:
            raise ValueError(f"masks: expected a non-empty image, got shape {planes.shape}")
        if boxes is None:
            src = _core.dense_tight_regions(planes, num_threads=nt)
        else:
            b = as_boxes(boxes)
            if b.shape[0] != n:
                raise ValueError(f"boxes: expected {n} boxes to match the masks, got {b.shape[0]}")
            src = _clipped_box_regions(b, 0, 0, W, H)
        return cls._trusted(_core.crop_dense(planes, src, None, num_threads=nt), (H, W))

    @classmethod
    def from_tile_masks(
        cls,
        masks: Any,
        boxes: Any,
        tile_origin: Any = (0, 0),
        image_shape: Optional[tuple[int, int]] = None,
        *,
        mask_threshold: float = 0.5,
        box_coords: str = "tile",
        num_threads: int = -1,
    ) -> BoxMasks:
        """Box-local masks from a model's per-tile masks: the detector path.

        Each mask is cropped to its detection's box and moved to image coordinates; only the
        pixels inside the boxes are read, and nothing of tile or image size is allocated.

        Args:
            masks: (N, th, tw) masks at tile resolution (already resized to the tile): bool or
                uint8 (nonzero is set), or float probabilities (set where ``> mask_threshold``;
                float16/float64 are converted to float32 first).
            boxes: (N, 4) xyxy boxes, in tile coordinates (``box_coords="tile"``) or image
                coordinates (``"image"``).
            tile_origin: (x, y) of the tile in the image, one pair for all masks or (N, 2), one
                per mask (several tiles of one batch in one call).
            image_shape: when given, regions are also clipped to the image and the result
                carries it.
            mask_threshold: cut-off for float masks.

        A region is the box's region clipped to the tile (and the image).
        """
        planes = _as_planes(masks, "masks", allow_float=True)
        nt = check_num_threads(num_threads)
        n, th, tw = planes.shape
        b = as_boxes(boxes)
        if b.shape[0] != n:
            raise ValueError(f"boxes: expected {n} boxes to match the masks, got {b.shape[0]}")
        org = np.asarray(tile_origin)
        if not np.issubdtype(org.dtype, np.integer):
            raise TypeError(f"tile_origin: expected integer (x, y), got dtype {org.dtype}")
        if org.shape == (2,):
            org = np.broadcast_to(org, (n, 2))
        elif org.shape != (n, 2):
            raise ValueError(f"tile_origin: expected shape (2,) or ({n}, 2), got {org.shape}")
        org64 = org.astype(np.int64)
        if box_coords not in ("tile", "image"):
            raise ValueError(f"box_coords: expected 'tile' or 'image', got {box_coords!r}")
        threshold = _finite_threshold(mask_threshold, "mask_threshold")
        dx, dy = (org64[:, 0], org64[:, 1]) if box_coords == "image" else (0, 0)
        x_lo, y_lo, x_hi, y_hi = 0, 0, tw, th
        shape = None
        if image_shape is not None:
            shape = _as_image_shape(image_shape)
            # a tile wholly outside the image gives an empty window inside the tile
            x_lo = np.minimum(np.maximum(0, -org64[:, 0]), tw)
            y_lo = np.minimum(np.maximum(0, -org64[:, 1]), th)
            x_hi = np.maximum(x_lo, np.minimum(tw, shape[1] - org64[:, 0]))
            y_hi = np.maximum(y_lo, np.minimum(th, shape[0] - org64[:, 1]))
        src = _clipped_box_regions(b, x_lo, y_lo, x_hi, y_hi, dx, dy)
        if n and (org64.min() < _I32.min or org64.max() > _I32.max):
            raise ValueError("tile_origin: values leave the int32 range")
        shifts = np.ascontiguousarray(org64, dtype=np.int32)
        out = _core.crop_dense(planes, src, shifts, threshold, num_threads=nt)
        return cls._trusted(out, shape)

    @classmethod
    def from_crops(
        cls,
        boxes_or_regions: Any,
        crops: Sequence[Any],
        image_shape: Optional[tuple[int, int]] = None,
        *,
        regions: bool = False,
    ) -> BoxMasks:
        """Box-local masks from one bitmap per detection.

        Args:
            boxes_or_regions: (N, 4) xyxy float boxes (default) or, with ``regions=True``,
                integer ``[x0, y0, w, h]`` regions. Crop ``i`` must have the shape
                ``(h_i, w_i)`` of region ``i``.
            crops: N 2-D bool or uint8 bitmaps (nonzero is set).
            image_shape: when given, masks are clipped to the image and carry its shape.
        """
        reg = (
            _as_regions(boxes_or_regions)
            if regions
            else regions_from_boxes(as_boxes(boxes_or_regions))
        )
        if isinstance(crops, np.ndarray) and crops.ndim == 3:
            crops = list(crops)
        if isinstance(crops, (str, bytes)) or not isinstance(crops, Sequence):
            raise TypeError(f"crops: expected a sequence of 2-D bitmaps, got {describe(crops)}")
        n = reg.shape[0]
        if len(crops) != n:
            raise ValueError(f"crops: expected {n} bitmaps to match the regions, got {len(crops)}")
        parts = []
        for i, c in enumerate(crops):
            a = _as_bitmap(c, f"crops[{i}]")
            want = (int(reg[i, 3]), int(reg[i, 2]))
            if a.shape != want:
                raise ValueError(
                    f"crops[{i}]: expected shape (h, w) = {want} for region "
                    f"{reg[i].tolist()}, got {a.shape}"
                )
            parts.append((a != 0).reshape(-1) if a.dtype == np.uint8 else a.reshape(-1))
        data = np.concatenate(parts).view(np.uint8) if parts else np.zeros(0, np.uint8)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(reg[:, 2].astype(np.int64) * reg[:, 3], out=offsets[1:])
        out = cls(data, offsets, reg, validate=False)
        return out if image_shape is None else out.clip(image_shape)

    # -- dense output ---------------------------------------------------------------------

    def to_full(
        self, image_shape: Optional[tuple[int, int]] = None, *, num_threads: int = -1
    ) -> np.ndarray:
        """(N, H, W) bool full-image masks (memory-heavy: for interop only).

        Pixels outside ``image_shape`` (default: the set's own) are dropped."""
        H, W = self._canvas(image_shape, "to_full")
        out = np.zeros((len(self), H, W), dtype=bool)
        _core.paste_dense(*self._args(), out, num_threads=check_num_threads(num_threads))
        return out

    def paste(self, i: int, canvas: np.ndarray, value: Any = True) -> np.ndarray:
        """Writes ``value`` into a 2-D ``canvas`` (any dtype) where mask ``i`` is set, clipping
        to the canvas; returns the canvas."""
        if not isinstance(canvas, np.ndarray) or canvas.ndim < 2:
            raise TypeError(f"canvas: expected an (H, W) numpy array, got {describe(canvas)}")
        bm = self.mask(i)
        x0, y0, w, h = (int(v) for v in self.regions[i % len(self)])
        H, W = canvas.shape[:2]
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + w, W), min(y0 + h, H)
        if xa < xb and ya < yb:
            sub = bm[ya - y0 : yb - y0, xa - x0 : xb - x0]
            canvas[ya:yb, xa:xb][sub] = value
        return canvas

    def to_label_image(
        self, image_shape: Optional[tuple[int, int]] = None, dtype: Any = np.int32
    ) -> np.ndarray:
        """(H, W) label image: pixel = 1 + index of the last mask covering it, 0 elsewhere."""
        H, W = self._canvas(image_shape, "to_label_image")
        out = np.zeros((H, W), dtype=dtype)
        if len(self) and np.iinfo(out.dtype).max < len(self):
            raise ValueError(f"dtype: {out.dtype} cannot hold {len(self)} labels")
        for i in range(len(self)):
            self.paste(i, out, i + 1)
        return out

    # -- statistics -----------------------------------------------------------------------

    def areas(self, *, num_threads: int = -1) -> np.ndarray:
        """(N,) int64 set pixels per mask."""
        return _core.areas(*self._args(), num_threads=check_num_threads(num_threads))

    def tight_boxes(self, *, num_threads: int = -1) -> np.ndarray:
        """(N, 4) float32 xyxy boxes of the set pixels (exclusive ends: a single pixel at
        (x, y) gives [x, y, x + 1, y + 1]). An empty mask gives the zero-size box
        ``[x0, y0, x0, y0]`` at its region's origin."""
        b = _core.tight_bounds(*self._args(), num_threads=check_num_threads(num_threads))
        return b.astype(np.float32)

    def tight_regions(self, *, num_threads: int = -1) -> np.ndarray:
        """(N, 4) int32 ``[x0, y0, w, h]`` of the set pixels; empty -> ``[x0, y0, 0, 0]``."""
        b = _core.tight_bounds(*self._args(), num_threads=check_num_threads(num_threads))
        b[:, 2:] -= b[:, :2]
        return b

    # -- re-framing -----------------------------------------------------------------------

    def reframe(
        self,
        regions: Any,
        image_shape: Optional[tuple[int, int]] = None,
        *,
        num_threads: int = -1,
    ) -> BoxMasks:
        """Moves each mask onto ``regions[i]`` (image coordinates): pixels inside both the old
        and the new region are kept, the rest of the new region is empty.

        The result carries ``image_shape`` when given (the regions must then lie inside it),
        else the set's own image_shape if every new region lies inside it, else None."""
        reg = _as_regions(regions)
        if reg.shape[0] != len(self):
            raise ValueError(f"regions: expected {len(self)} regions, got {reg.shape[0]}")
        out = self._trusted(
            _core.reframe(*self._args(), reg, num_threads=check_num_threads(num_threads))
        )
        if image_shape is not None:
            shape = _as_image_shape(image_shape)
            out._check_inside(shape)
            out.image_shape = shape
        elif self.image_shape is not None:
            try:
                out._check_inside(self.image_shape)
                out.image_shape = self.image_shape
            except ValueError:
                pass
        return out

    def tighten(self, *, num_threads: int = -1) -> BoxMasks:
        """The same masks over their tight regions (empty masks get zero-size regions)."""
        return self.reframe(self.tight_regions(num_threads=num_threads), num_threads=num_threads)

    def clip(
        self, image_shape: Optional[tuple[int, int]] = None, *, num_threads: int = -1
    ) -> BoxMasks:
        """Cuts every region to the image (default: the set's own ``image_shape``). A mask
        entirely outside gets a zero-size region. The result carries the image shape."""
        H, W = self._canvas(image_shape, "clip")
        new = _clip_regions(self.regions, 0, 0, W, H)
        if np.array_equal(new, self.regions):
            return BoxMasks(self.data, self.offsets, self.regions, (H, W), validate=False)
        out = self._trusted(
            _core.reframe(*self._args(), new, num_threads=check_num_threads(num_threads))
        )
        out.image_shape = (H, W)
        return out

    def shift(self, dx: int, dy: int, image_shape: Optional[tuple[int, int]] = None) -> BoxMasks:
        """Moves every mask by (dx, dy) pixels; the bitmaps are shared, not copied.

        Moved masks may leave their old image, so the result has no image_shape unless one is
        given; then masks are clipped to it (as for tile -> image: ``shift(x, y, (H, W))``)."""
        dx, dy = as_int(dx, "dx"), as_int(dy, "dy")
        r = self.regions.astype(np.int64)
        r[:, 0] += dx
        r[:, 1] += dy
        if len(self) and (r[:, :2].min() < _I32.min or (r[:, :2] + r[:, 2:]).max() > _I32.max):
            raise ValueError(f"shift: ({dx}, {dy}) moves regions out of the int32 range")
        out = BoxMasks(self.data, self.offsets, r.astype(np.int32), None, validate=False)
        return out if image_shape is None else out.clip(image_shape)

    # -- selection and joining ------------------------------------------------------------

    def __getitem__(self, key: Any) -> BoxMasks:
        """A subset as BoxMasks: int, slice, integer array/list or bool mask of length N."""
        n = len(self)
        if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(
            key, (bool, np.bool_)
        ):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"mask index {i} out of range for {n} masks")
            key = slice(i % n, i % n + 1)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                stop = max(start, stop)
                a, b = int(self.offsets[start]), int(self.offsets[stop])
                return BoxMasks(
                    self.data[a:b],
                    self.offsets[start : stop + 1] - a,
                    self.regions[start:stop],
                    self.image_shape,
                    validate=False,
                )
            index = np.arange(start, stop, step, dtype=np.int64)
        else:
            if isinstance(key, (str, bytes)) or key is None or isinstance(key, (bool, np.bool_)):
                raise TypeError(
                    f"BoxMasks indices must be int, slice or arrays, got {describe(key)}"
                )
            arr = np.asarray(key)
            if arr.dtype == np.bool_:
                if arr.shape != (n,):
                    raise IndexError(f"boolean index: expected shape ({n},), got {arr.shape}")
                index = np.flatnonzero(arr).astype(np.int64)
            elif arr.size == 0:
                index = np.zeros(0, np.int64)
            elif np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1:
                index = arr.astype(np.int64)
                if ((index < -n) | (index >= n)).any():
                    bad = int(index[(index < -n) | (index >= n)][0])
                    raise IndexError(f"mask index {bad} out of range for {n} masks")
                index = np.where(index < 0, index + n, index)
            else:
                raise TypeError(
                    "BoxMasks indices must be int, slice, or 1-D int/bool arrays, "
                    f"got {describe(arr)}"
                )
        return self._trusted(
            _core.gather(*self._args(), np.ascontiguousarray(index)), self.image_shape
        )

    @classmethod
    def concatenate(cls, masks_list: Sequence[BoxMasks]) -> BoxMasks:
        """Joins sets in order. Image shapes must agree where they are set."""
        items = list(masks_list)
        for k, m in enumerate(items):
            if not isinstance(m, BoxMasks):
                raise TypeError(f"masks_list[{k}]: expected BoxMasks, got {type(m).__name__}")
        shapes = {m.image_shape for m in items if m.image_shape is not None}
        if len(shapes) > 1:
            raise ValueError(f"concatenate: masks belong to different images {sorted(shapes)}")
        shape = shapes.pop() if shapes else None
        if not items:
            return cls.empty()
        data = np.concatenate([m.data for m in items])
        regions = np.concatenate([m.regions for m in items])
        base = np.cumsum([0] + [int(m.offsets[-1]) for m in items[:-1]])
        offsets = np.concatenate([[0]] + [m.offsets[1:] + b for m, b in zip(items, base)])
        out = cls(data, offsets, regions, None, validate=False)
        if shape is not None:
            out._check_inside(shape)
            out.image_shape = shape
        return out

    # -- COCO RLE -------------------------------------------------------------------------

    def to_coco_rle(
        self,
        image_shape: Optional[tuple[int, int]] = None,
        *,
        compressed: bool = True,
        num_threads: int = -1,
    ) -> list[dict[str, Any]]:
        """COCO RLE dicts, exactly as ``pycocotools.mask.encode`` gives them for the full
        masks: ``{"size": [H, W], "counts": bytes}`` (or a list of ints with
        ``compressed=False``). Runs are computed from the box-local bitmaps alone.

        Pixels outside ``image_shape`` (default: the set's own) are dropped. For JSON, decode
        the bytes: ``rle["counts"].decode("ascii")``."""
        H, W = self._canvas(image_shape, "to_coco_rle")
        nt = check_num_threads(num_threads)
        if compressed:
            return _core.encode_coco(*self._args(), H, W, num_threads=nt)
        counts, run_offsets = _core.encode_runs(*self._args(), H, W, num_threads=nt)
        flat = counts.tolist()
        bounds = run_offsets.tolist()
        return [{"size": [H, W], "counts": flat[a:b]} for a, b in zip(bounds[:-1], bounds[1:])]

    @classmethod
    def from_coco_rle(
        cls,
        rles: Sequence[Mapping[str, Any]],
        boxes: Any = None,
        *,
        image_shape: Optional[tuple[int, int]] = None,
        num_threads: int = -1,
    ) -> BoxMasks:
        """Decodes COCO RLE dicts straight into box-local bitmaps (no full-image decode).

        Args:
            rles: dicts with ``"size": [H, W]`` (the same for all) and ``"counts"`` as a
                compressed string (bytes or str) or a list of run lengths.
            boxes: (N, 4) xyxy boxes: mask ``i`` keeps the pixels in its box's region (clipped
                to the image). None: each mask gets the tight region of its set pixels.
            image_shape: required only to give an empty list a shape; otherwise it must match.

        An image larger than ``MAX_MASK_PIXELS`` (height * width) or with a side beyond int32
        is refused with ValueError before anything is allocated.
        """
        if isinstance(rles, (Mapping, str, bytes)):
            raise TypeError("rles: expected a list of RLE dicts (wrap a single dict in a list)")
        items = list(rles)
        shape = None if image_shape is None else _as_image_shape(image_shape)
        counts: list = []
        good_size: Any = None  # a 'size' value already checked: equal ones skip the checks
        for i, rle in enumerate(items):
            if type(rle) is dict:
                size, c = rle.get("size"), rle.get("counts")
                if type(c) is bytes and type(size) is list and size == good_size:
                    counts.append(c)  # the common case, kept cheap
                    continue
            shape = _check_rle_size(rle, i, shape)
            good_size = rle["size"] if type(rle["size"]) is list else None
            counts.append(_normalise_counts(rle["counts"], i))
        nt = check_num_threads(num_threads)
        n = len(items)
        if n:
            _check_pixels(shape, "rles[0]['size']")
        regions = None
        if boxes is not None:
            b = as_boxes(boxes)
            if b.shape[0] != n:
                raise ValueError(f"boxes: expected {n} boxes to match the RLEs, got {b.shape[0]}")
            if n:
                regions = _clipped_box_regions(b, 0, 0, shape[1], shape[0])
        if n == 0:
            return cls.empty(shape)
        return cls._trusted(
            _core.decode_coco(counts, shape[0], shape[1], regions, num_threads=nt), shape
        )

    # -- crop-scoped RLE (compact storage) ------------------------------------------------

    def to_local_rle(self, *, num_threads: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Column-major runs of each mask over its own region (the COCO convention scoped to
        the crop, as supervision's CompactMask stores them), CSR:
        ``(counts int32, run_offsets int64)``; mask i's runs are
        ``counts[run_offsets[i]:run_offsets[i + 1]]``. Store with ``regions`` and
        ``image_shape``; decode with ``from_local_rle``."""
        counts, run_offsets = _core.encode_local_runs(
            *self._args(), num_threads=check_num_threads(num_threads)
        )
        if counts.size and counts.max() > _I32.max:
            raise ValueError("to_local_rle: a run exceeds the int32 range")
        return counts.astype(np.int32), run_offsets

    @classmethod
    def from_local_rle(
        cls,
        counts: Any,
        run_offsets: Any,
        regions: Any,
        image_shape: Optional[tuple[int, int]] = None,
        *,
        num_threads: int = -1,
    ) -> BoxMasks:
        """Inverse of ``to_local_rle``: runs must sum to each region's area."""
        c = np.asarray(counts)
        if c.size and not np.issubdtype(c.dtype, np.integer):
            raise TypeError(f"counts: expected integer run lengths, got dtype {c.dtype}")
        ro = np.asarray(run_offsets)
        if ro.size and not np.issubdtype(ro.dtype, np.integer):
            raise TypeError(f"run_offsets: expected integers, got dtype {ro.dtype}")
        reg = _as_regions(regions)
        out = cls._trusted(
            _core.decode_local_runs(
                np.ascontiguousarray(c.reshape(-1), dtype=np.int64),
                np.ascontiguousarray(ro.reshape(-1), dtype=np.int64),
                reg,
                num_threads=check_num_threads(num_threads),
            )
        )
        if image_shape is not None:
            shape = _as_image_shape(image_shape)
            out._check_inside(shape)
            out.image_shape = shape
        return out

    # -- supervision ----------------------------------------------------------------------

    def to_supervision(self, image_shape: Optional[tuple[int, int]] = None) -> Any:
        """supervision's ``CompactMask`` (crop RLE), built from our runs without a full image.

        Masks are clipped to the image first. A zero-size region becomes CompactMask's own
        convention for empty masks: a 1x1 empty crop at the region's origin (clamped)."""
        try:
            from supervision.detection.compact_mask import CompactMask
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_supervision needs supervision>=0.28: pip install supervision"
            ) from e
        H, W = self._canvas(image_shape, "to_supervision")
        m = self.clip((H, W))
        counts, run_offsets = m.to_local_rle()
        rles = np.split(counts, run_offsets[1:-1]) if len(m) else []
        reg = m.regions.copy()
        zero = (reg[:, 2] == 0) | (reg[:, 3] == 0)
        if zero.any():
            one = np.ones(1, np.int32)
            for i in np.flatnonzero(zero):
                rles[i] = one
            reg[zero, 0] = np.minimum(reg[zero, 0], W - 1)
            reg[zero, 1] = np.minimum(reg[zero, 1], H - 1)
            reg[zero, 2:] = 1
        return CompactMask(
            rles,
            np.ascontiguousarray(reg[:, [3, 2]], dtype=np.int32),
            np.ascontiguousarray(reg[:, :2], dtype=np.int32),
            (H, W),
        )

    @classmethod
    def from_supervision(cls, mask: Any, xyxy: Any = None, *, num_threads: int = -1) -> BoxMasks:
        """From supervision: a ``CompactMask`` (decoded run by run, no full image) or dense
        ``(N, H, W)`` masks (``from_full(mask, xyxy)``)."""
        try:
            from supervision.detection.compact_mask import CompactMask
        except ImportError:  # pragma: no cover - depends on the environment
            CompactMask = None
        if CompactMask is not None and isinstance(mask, CompactMask):
            rles = list(mask._rles)
            crop = np.asarray(mask._crop_shapes, dtype=np.int64).reshape(-1, 2)
            org = np.asarray(mask._offsets, dtype=np.int64).reshape(-1, 2)
            regions = np.stack([org[:, 0], org[:, 1], crop[:, 1], crop[:, 0]], axis=1)
            lengths = np.array([len(r) for r in rles], dtype=np.int64)
            run_offsets = np.zeros(len(rles) + 1, np.int64)
            np.cumsum(lengths, out=run_offsets[1:])
            counts = np.concatenate(rles).astype(np.int64) if rles else np.zeros(0, np.int64)
            return cls.from_local_rle(
                counts, run_offsets, regions, tuple(mask._image_shape), num_threads=num_threads
            )
        return cls.from_full(mask, xyxy, num_threads=num_threads)

    # -- polygons (OpenCV) ----------------------------------------------------------------

    def to_polygons(self, i: int) -> list[np.ndarray]:
        """Outer and hole contours of mask ``i`` as (K, 2) int32 arrays in image coordinates,
        as SAHI makes COCO polygons: ``cv2.findContours(RETR_LIST, CHAIN_APPROX_SIMPLE)`` on
        the bitmap with a 1-pixel zero border; contours with fewer than 3 points dropped."""
        cv2 = require_cv2("polygon conversions")
        bm = self.mask(i).view(np.uint8)
        x0, y0 = (int(v) for v in self.regions[i % len(self), :2])
        if bm.size == 0:
            return []
        padded = np.zeros((bm.shape[0] + 2, bm.shape[1] + 2), np.uint8)
        padded[1:-1, 1:-1] = bm
        res = cv2.findContours(
            padded, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(x0 - 1, y0 - 1)
        )
        contours = res[0] if len(res) == 2 else res[1]
        return [c.reshape(-1, 2) for c in contours if c.shape[0] >= 3]

    def to_coco_polygons(self) -> list[list[list[int]]]:
        """Per mask, COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (see to_polygons)."""
        return [[p.reshape(-1).tolist() for p in self.to_polygons(i)] for i in range(len(self))]

    @classmethod
    def from_polygons(
        cls, polygons_per_mask: Sequence[Sequence[Any]], image_shape: tuple[int, int]
    ) -> BoxMasks:
        """Rasterises polygons into box-local bitmaps as SAHI does on a full image
        (vertices rounded, ``cv2.fillPoly`` of all of a mask's polygons at once), but only
        over the polygons' bounding region, clipped to the image.

        Args:
            polygons_per_mask: per mask, a list of polygons, each flat ``[x1, y1, ...]`` or
                (K, 2); a mask without polygons is empty (zero-size region). Coordinates must
                be finite and within +-(2**30 - 1) (ValueError otherwise).
            image_shape: (height, width), at most ``MAX_MASK_PIXELS`` pixels.
        """
        cv2 = require_cv2("polygon conversions")
        H, W = _as_image_shape(image_shape)
        _check_pixels((H, W), "image_shape")
        if isinstance(polygons_per_mask, (str, bytes)) or not isinstance(
            polygons_per_mask, Sequence
        ):
            raise TypeError(
                "polygons_per_mask: expected a list of polygon lists, "
                f"got {describe(polygons_per_mask)}"
            )
        n = len(polygons_per_mask)
        regions = np.zeros((n, 4), np.int32)
        bitmaps = []
        for i, polys in enumerate(polygons_per_mask):
            if isinstance(polys, np.ndarray) and polys.ndim == 2 and polys.shape[1] == 2:
                polys = [polys]
            if isinstance(polys, (str, bytes)) or not isinstance(polys, (Sequence, np.ndarray)):
                raise TypeError(
                    f"polygons_per_mask[{i}]: expected a list of polygons, got {describe(polys)}"
                )
            pts = []
            for k, p in enumerate(polys):
                a = np.asarray(p, dtype=np.float64)
                if a.size % 2 or a.ndim > 2 or (a.ndim == 2 and a.shape[1] != 2):
                    raise ValueError(
                        f"polygons_per_mask[{i}][{k}]: expected [x1, y1, x2, y2, ...] or (K, 2), "
                        f"got shape {a.shape}"
                    )
                if not np.isfinite(a).all():
                    raise ValueError(f"polygons_per_mask[{i}][{k}]: coordinates must be finite")
                if a.size and np.abs(a).max() > _MAX_POLY_COORD:
                    raise ValueError(
                        f"polygons_per_mask[{i}][{k}]: coordinates out of range (|v| <= "
                        f"{_MAX_POLY_COORD}), got {float(np.abs(a).max())}"
                    )
                if a.size:
                    pts.append(a.reshape(-1, 2).round().astype(np.int64))
            if not pts:
                bitmaps.append(np.zeros(0, np.uint8))
                continue
            allp = np.concatenate(pts)
            lo, hi = allp.min(axis=0), allp.max(axis=0) + 1
            x0, y0 = int(np.clip(lo[0], 0, W)), int(np.clip(lo[1], 0, H))
            x1, y1 = int(np.clip(hi[0], 0, W)), int(np.clip(hi[1], 0, H))
            w, h = max(x1 - x0, 0), max(y1 - y0, 0)
            regions[i] = (x0, y0, w, h)
            if w == 0 or h == 0:
                bitmaps.append(np.zeros(0, np.uint8))
                continue
            if (np.abs(allp - [x0, y0]) > _I32.max // 2).any():
                raise ValueError(f"polygons_per_mask[{i}]: coordinates out of range")
            canvas = np.zeros((h, w), np.uint8)
            cv2.fillPoly(canvas, [(p - [x0, y0]).astype(np.int32) for p in pts], (1,))
            bitmaps.append(canvas.reshape(-1))
        data = np.concatenate(bitmaps) if bitmaps else np.zeros(0, np.uint8)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(regions[:, 2].astype(np.int64) * regions[:, 3], out=offsets[1:])
        return cls(data, offsets, regions, (H, W), validate=False)
