"""Input checks shared by the public API. Messages name what was expected and what came."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_boxes",
    "as_int",
    "describe",
    "as_class_ids",
    "as_scores",
    "check_num_threads",
    "check_threshold",
]


def describe(a: Any) -> str:
    """What came, for error messages: an array's shape and dtype, or the type's name."""
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def as_boxes(
    boxes: Any, name: str = "boxes", *, allow_degenerate: bool = True, check_values: bool = True
) -> np.ndarray:
    """(N, 4) xyxy boxes as a C-contiguous float32 array; finite, x2 >= x1, y2 >= y1.

    ``check_values=False`` checks the type and shape only, for a caller whose next step
    checks the values itself (the C++ merge does, with the same rules)."""
    if isinstance(boxes, (str, bytes)) or boxes is None:
        raise TypeError(f"{name}: expected an (N, 4) array of xyxy boxes, got {describe(boxes)}")
    arr = np.asarray(boxes)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name}: expected a numeric (N, 4) array, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (N, 4) as [x1, y1, x2, y2], got {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and check_values:
        if not np.isfinite(out).all():
            bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            raise ValueError(f"{name}: coordinates must be finite, row {bad} is {arr[bad].tolist()}")
        wrong = (out[:, 2] < out[:, 0]) | (out[:, 3] < out[:, 1])
        if wrong.any():
            bad = int(np.flatnonzero(wrong)[0])
            raise ValueError(
                f"{name}: expected x2 >= x1 and y2 >= y1, row {bad} is {out[bad].tolist()}"
            )
        if not allow_degenerate:
            flat = (out[:, 2] == out[:, 0]) | (out[:, 3] == out[:, 1])
            if flat.any():
                bad = int(np.flatnonzero(flat)[0])
                raise ValueError(f"{name}: row {bad} has zero area: {out[bad].tolist()}")
    return out


def as_scores(scores: Any, n: int, name: str = "scores", *, check_values: bool = True) -> np.ndarray:
    """(N,) float32 scores, finite (``check_values=False``: type and shape only)."""
    arr = np.asarray(scores)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name}: expected a numeric ({n},) array, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) to match the boxes, got {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and check_values and not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ValueError(f"{name}: scores must be finite, index {bad} is {arr[bad]}")
    return out


def as_class_ids(class_ids: Any, n: int, name: str = "class_ids") -> np.ndarray:
    """(N,) int64 class ids; None means one class (all zeros)."""
    if class_ids is None:
        return np.zeros(n, dtype=np.int64)
    arr = np.asarray(class_ids)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) to match the boxes, got {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: expected class ids within int64, got {int(arr.max())}")
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return np.ascontiguousarray(arr, dtype=np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
            raise ValueError(f"{name}: expected integer class ids, got non-integral floats")
        if arr.size and (np.abs(arr) >= 2.0**63).any():
            raise ValueError(f"{name}: expected class ids within int64, got {arr[np.abs(arr) >= 2.0**63][0]}")
        return np.ascontiguousarray(arr, dtype=np.int64)
    raise TypeError(f"{name}: expected integer class ids, got dtype {arr.dtype}")


def as_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """An int (not a bool) within [lo, hi] where given: TypeError / ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        if lo is not None and hi is not None:
            want = f"an int in {lo}..{hi}"
        else:
            want = f"an int >= {lo}" if lo is not None else f"an int <= {hi}"
        raise ValueError(f"{name}: expected {want}, got {v}")
    return v


def check_threshold(value: Any, name: str = "threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1], got {type(value).__name__}")
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name}: expected a value in [0, 1], got {value}")
    return v


def check_num_threads(num_threads: Any) -> int:
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads: expected an int (-1 for all cores), got {num_threads!r}")
    n = int(num_threads)
    if n == 0 or n < -1:
        raise ValueError(f"num_threads: expected -1 (all cores) or a positive count, got {n}")
    return n


def optional_positive_int(value: Any, name: str) -> int | None:
    """None, or an int >= 1 (not a bool): ValueError otherwise."""
    if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(
            value, numbers.Integral) or value < 1):
        raise ValueError(f"{name}: expected None or a positive int, got {value!r}")
    return None if value is None else int(value)


def ratio_in(value: Any, name: str, lo: float, hi: float) -> float:
    """A real number (not a bool) in [lo, hi]: ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        raise ValueError(f"{name}: expected a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def int_pair(value: Any, name: str, lo: int, hi: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each in [lo, hi], as a tuple (ValueError otherwise)."""
    vals = value if isinstance(value, Sequence) and not isinstance(value, str) else (value, value)
    if len(vals) != 2 or any(isinstance(x, bool) or not isinstance(x, numbers.Integral)
                             or not lo <= int(x) <= hi for x in vals):
        raise ValueError(f"{name}: expected an int or a pair (h, w) of ints in {lo}..{hi}, "
                         f"got {value!r}")
    return int(vals[0]), int(vals[1])
