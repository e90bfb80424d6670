"""Tile preprocessing: crop, resize or letterbox, normalise and pack NCHW batches in C++.

:func:`preprocess_tiles` turns the tiles of one (H, W, 3) uint8 BGR image into a model's
(T, 3, h, w) float32 or float16 input batch in one call on the core's thread pool, with the
GIL released. Each tile is read through the image in place (no crop copy), resampled exactly
as ``cv2.resize`` does on uint8 (INTER_LINEAR's fixed-point weights, INTER_NEAREST,
INTER_AREA), placed
whole (``mode="resize"``) or letterboxed as Ultralytics does, channel-swapped, scaled and
normalised as numpy would in float32::

    (resized.astype(np.float32) * np.float32(scale) - mean) / std     # per output channel

and written NCHW into ``out`` when given (reuse two buffers to overlap preprocessing of batch
k+1 with inference of batch k). See ``docs/preprocess.md``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np

from . import _core
from .io import as_image
from ._validate import check_num_threads, describe

__all__ = ["PreprocessConfig", "letterbox_params", "preprocess_tiles"]

_MODES = ("resize", "letterbox", "none")
_INTERPOLATIONS = ("linear", "nearest", "area")
_DTYPES = ("float32", "float16")


def _positive_int(v: Any, name: str, hi: int = 65535) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {v!r} ({type(v).__name__})")
    if not 1 <= int(v) <= hi:
        raise ValueError(f"{name}: expected an int in 1..{hi}, got {int(v)}")
    return int(v)


def _triple(v: Any, name: str) -> tuple[float, float, float]:
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        v = (v, v, v)
    try:
        vals = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected three numbers (one per output channel), got {v!r}")
    if len(vals) != 3:
        raise ValueError(f"{name}: expected three numbers (one per output channel), got {len(vals)}")
    if not all(math.isfinite(x) for x in vals):
        raise ValueError(f"{name}: expected finite numbers, got {vals}")
    return vals  # type: ignore[return-value]


@dataclass(frozen=True)
class PreprocessConfig:
    """How tiles become a model's input.

    Attributes:
        input_size: the model's (h, w).
        mode: ``"resize"`` stretches each tile to ``input_size``; ``"letterbox"`` keeps its
            aspect ratio as Ultralytics' LetterBox does (see :func:`letterbox_params`) and fills
            the rest with ``pad_value``; ``"none"`` requires every tile to be ``input_size``.
        pad_value: letterbox fill, in input pixel units (0..255), normalised like a pixel.
        rgb: swap the input's BGR to RGB (output channel c takes input channel 2 - c).
        scale: multiplies the pixel value first.
        mean, std: per output channel, applied after ``scale``: ``(x * scale - mean) / std``.
            A single number is used for all three channels.
        dtype: ``"float32"`` or ``"float16"`` (rounded to nearest even, as numpy's astype).
        interpolation: ``"linear"`` (cv2.INTER_LINEAR), ``"nearest"`` (cv2.INTER_NEAREST) or
            ``"area"`` (cv2.INTER_AREA: pixel-area means when shrinking, OpenCV's two-tap
            area weights when enlarging), each bit-exact with ``cv2.resize`` on uint8.
    """

    input_size: tuple[int, int] = (640, 640)
    mode: Literal["resize", "letterbox", "none"] = "resize"
    pad_value: int = 114
    rgb: bool = True
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    dtype: Literal["float32", "float16"] = "float32"
    interpolation: Literal["linear", "nearest", "area"] = "linear"

    def __post_init__(self) -> None:
        size = self.input_size
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            size = (int(size), int(size))
        if not isinstance(size, Sequence) or len(size) != 2:
            raise TypeError(f"input_size: expected (h, w), got {self.input_size!r}")
        object.__setattr__(self, "input_size", (_positive_int(size[0], "input_size[0]"),
                                                _positive_int(size[1], "input_size[1]")))
        if self.mode not in _MODES:
            raise ValueError(f"mode: expected one of {_MODES}, got {self.mode!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation: expected one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        dt = np.dtype(self.dtype).name if not isinstance(self.dtype, str) else self.dtype
        if dt not in _DTYPES:
            raise ValueError(f"dtype: expected one of {_DTYPES}, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dt)
        pv = self.pad_value
        if isinstance(pv, (bool, np.bool_)) or not isinstance(pv, numbers.Integral):
            raise TypeError(f"pad_value: expected an int in 0..255, got {pv!r}")
        if not 0 <= int(pv) <= 255:
            raise ValueError(f"pad_value: expected an int in 0..255, got {int(pv)}")
        object.__setattr__(self, "pad_value", int(pv))
        object.__setattr__(self, "rgb", bool(self.rgb))
        if not isinstance(self.scale, numbers.Real) or not math.isfinite(float(self.scale)):
            raise ValueError(f"scale: expected a finite number, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        std = _triple(self.std, "std")
        if any(np.float32(s) == 0 for s in std):
            raise ValueError(f"std: expected nonzero values, got {std}")
        object.__setattr__(self, "std", std)


def letterbox_params(tile_h: int, tile_w: int, input_h: int, input_w: int) -> tuple[float, int, int]:
    """Ultralytics' letterbox geometry for a (tile_h, tile_w) tile in an (input_h, input_w) input.

    ``r = min(input_h / tile_h, input_w / tile_w)``; the tile is resized to
    ``(round(tile_h * r), round(tile_w * r))`` and placed at ``(pad_x, pad_y) =
    (round(dw / 2 - 0.1), round(dh / 2 - 0.1))`` where dw, dh are the leftover widths
    (Python's round: half to even). A point (x, y) of the model input maps back to the tile as
    ``((x - pad_x) / r, (y - pad_y) / r)``.

    Returns:
        (r, pad_x, pad_y).

    Examples:
        >>> letterbox_params(480, 640, 640, 640)
        (1.0, 0, 80)
    """
    th = _positive_int(tile_h, "tile_h", hi=2**31 - 1)
    tw = _positive_int(tile_w, "tile_w", hi=2**31 - 1)
    r, _nw, _nh, px, py = _core.letterbox_params(th, tw, _positive_int(input_h, "input_h"),
                                                 _positive_int(input_w, "input_w"))
    return float(r), int(px), int(py)


def _as_tiles(tiles: Any, height: int, width: int) -> np.ndarray:
    if tiles is None or isinstance(tiles, (str, bytes)):
        raise TypeError(f"tiles: expected a (T, 4) int64 array of xyxy tiles, got {describe(tiles)}")
    t = np.asarray(tiles)
    if t.ndim == 1 and t.size == 0:
        t = t.reshape(0, 4)
    if not (np.issubdtype(t.dtype, np.integer)):
        raise TypeError(f"tiles: expected integer xyxy tiles (as slice_grid gives), got dtype {t.dtype}")
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"tiles: expected shape (T, 4) as [x1, y1, x2, y2], got {t.shape}")
    t = np.ascontiguousarray(t, dtype=np.int64)
    if t.size:
        out = (t[:, 0] < 0) | (t[:, 1] < 0) | (t[:, 2] > width) | (t[:, 3] > height)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(f"tiles: tile {i} {t[i].tolist()} is outside the {height} x {width} "
                             f"image (expected 0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height})")
        empty = (t[:, 2] <= t[:, 0]) | (t[:, 3] <= t[:, 1])
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise ValueError(f"tiles: tile {i} {t[i].tolist()} is empty "
                             f"(expected x1 < x2 and y1 < y2)")
    return t


def preprocess_tiles(
    image: Any,
    tiles: Any,
    config: Optional[PreprocessConfig] = None,
    *,
    out: Optional[np.ndarray] = None,
    num_threads: int = -1,
) -> np.ndarray:
    """The tiles of an image as a model's (T, 3, h, w) NCHW input batch.

    Args:
        image: (H, W, 3) uint8 BGR. Any row stride is read in place (crops, flipped rows);
            a view whose pixels are not 3 adjacent bytes is copied once.
        tiles: (T, 4) integer xyxy tiles inside the image, e.g. from :func:`slice_grid`.
        config: a :class:`PreprocessConfig` (default: 640 x 640 resize, RGB, /255, float32).
        out: optional C-contiguous, writeable (T, 3, h, w) array of the config's dtype to fill
            (a reusable batch buffer); it is returned. It must not share memory with the
            image (ValueError).
        num_threads: threads of the core's pool (-1: all cores).

    Returns:
        (T, 3, h, w) float32 or float16 array.

    Examples:
        >>> img = np.full((8, 8, 3), 255, np.uint8)
        >>> cfg = PreprocessConfig(input_size=(4, 4))
        >>> preprocess_tiles(img, [[0, 0, 8, 8]], cfg).shape
        (1, 3, 4, 4)
    """
    cfg = config if config is not None else PreprocessConfig()
    if not isinstance(cfg, PreprocessConfig):
        raise TypeError(f"config: expected a PreprocessConfig, got {type(cfg).__name__}")
    n = check_num_threads(num_threads)
    img = as_image(image)
    t = _as_tiles(tiles, img.shape[0], img.shape[1])
    h, w = cfg.input_size
    if cfg.mode == "none" and t.size:
        sizes = np.stack([t[:, 3] - t[:, 1], t[:, 2] - t[:, 0]], axis=1)
        bad = (sizes[:, 0] != h) | (sizes[:, 1] != w)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"tiles: mode 'none' expects every tile to be {h} x {w} (h x w), "
                             f"tile {i} {t[i].tolist()} is {sizes[i, 0]} x {sizes[i, 1]}")
    dtype = np.dtype(cfg.dtype)
    shape = (t.shape[0], 3, h, w)
    if out is None:
        out = np.empty(shape, dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a {shape} {dtype} array, got {describe(out)}")
        if out.dtype != dtype:
            raise TypeError(f"out: expected dtype {dtype} (config.dtype), got {out.dtype}")
        if out.shape != shape:
            raise ValueError(f"out: expected shape {shape}, got {out.shape}")
        if not out.flags.c_contiguous:
            raise ValueError("out: expected a C-contiguous array")
        if not out.flags.writeable:
            raise ValueError("out: the array is read-only")
        if np.may_share_memory(out, img) or (
            isinstance(image, np.ndarray) and np.may_share_memory(out, image)
        ):
            raise ValueError("out: must not share memory with the image")
    if t.shape[0] == 0:
        return out
    return _core.preprocess_tiles(
        img, t, out, h, w, mode=cfg.mode, interpolation=cfg.interpolation,
        pad_value=cfg.pad_value, rgb=cfg.rgb, scale=cfg.scale, mean=cfg.mean, std=cfg.std,
        num_threads=n)
