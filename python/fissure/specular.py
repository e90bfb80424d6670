"""Specular highlights (glare): masks bit-exact with OpenCV's 8-bit HSV, and their uses.

Glare on polished metal, glass, glaze or jewellery is the commonest false defect. The accepted
rule masks a pixel when, in OpenCV's 8-bit HSV, ``V > v_min`` and ``S < s_max`` (defaults 240
and 30). :func:`specular_mask` computes exactly

    cv2.inRange(cv2.cvtColor(img, cv2.COLOR_BGR2HSV),
                (0, 0, v_min + 1), (180, s_max - 1, 255)) > 0

in one fused pass over the pixels (no HSV image, the GIL released, row bands on the core's
threads), optionally dilated by a disc exactly as ``cv2.dilate`` with a ``MORPH_ELLIPSE``
kernel. OpenCV's S is ``(diff * sdiv[V] + 2048) >> 12`` with ``sdiv[v] = round(255 * 4096 / v)``
and ``diff = V - min``; that rounding is reproduced, not approximated.

Uses in the pipelines:

* :func:`glare_fraction`: the fraction of each detection's box (or box-local mask) under
  glare, to drop or flag detections that mostly sit on a highlight;
* :func:`suppress_glare`: an anomaly map with the glare pixels set to a value (0);
* :func:`inpaint_specular`: highlights filled with OpenCV's inpainting before an image goes
  to an anomaly model;
* :func:`draw_specular`: the mask drawn over the image, for people who would rather look.

Set ``FISSURE_BACKEND=python`` to run the pure-numpy twins (slow; the tests' oracle) instead
of the C++ core. See ``docs/specular.md``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from . import _core
from ._optional import require_cv2
from ._validate import as_boxes, check_num_threads
from .masks import BoxMasks

__all__ = [
    "MAX_DILATE",
    "dilate_disc",
    "disc_kernel",
    "draw_specular",
    "glare_fraction",
    "inpaint_specular",
    "specular_mask",
    "suppress_glare",
]

#: Largest dilation radius.
MAX_DILATE = 254

_BACKENDS = ("cpp", "python")


def _backend() -> str:
    name = os.environ.get("FISSURE_BACKEND", "cpp").strip().lower() or "cpp"
    if name not in _BACKENDS:
        raise ValueError(f"FISSURE_BACKEND: expected one of {_BACKENDS}, got {name!r}")
    return name


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return type(a).__name__


def _as_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int in {lo}..{hi}, got {value!r} "
                        f"({type(value).__name__})")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: expected an int in {lo}..{hi}, got {v}")
    return v


def _as_image(image: Any, name: str = "image") -> np.ndarray:
    """An (H, W, 3) or (H, W) uint8 array whose pixels are contiguous within a row.

    Row strides are free (crops and flipped views are read in place); a view whose pixels or
    channels are not adjacent bytes (``img[:, ::2]``, Fortran order) is copied once."""
    if image is None or isinstance(image, (str, bytes)):
        raise TypeError(f"{name}: expected an (H, W, 3) or (H, W) uint8 array, got "
                        f"{_describe(image)}")
    a = image if isinstance(image, np.ndarray) else np.asarray(image)
    if a.dtype != np.uint8:
        hint = ""
        if np.issubdtype(a.dtype, np.floating):
            hint = "; scale floats to 0..255 and convert, e.g. (img * 255).round().astype(np.uint8)"
        elif a.dtype == np.uint16:
            hint = "; convert to 8 bits first, e.g. (img >> 8).astype(np.uint8)"
        raise TypeError(f"{name}: expected dtype uint8 (8-bit BGR or gray), got {a.dtype}{hint}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3:
        if a.shape[2] != 3:
            msg = f"{name}: expected 3 channels (BGR or RGB), got shape {a.shape}"
            if a.shape[2] == 4:
                msg += "; drop the alpha channel with image[..., :3]"
            raise ValueError(msg)
    elif a.ndim != 2:
        raise ValueError(f"{name}: expected shape (H, W, 3) or (H, W), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {a.shape}")
    if a.ndim == 3:
        # V and S are symmetric in the channels: a channel-reversed view (img[..., ::-1]) holds
        # the same pixels; reading it forwards avoids a copy.
        if a.strides[2] == -1:
            a = a[:, :, ::-1]
        if a.strides[2] != 1 or (a.shape[1] > 1 and a.strides[1] != 3):
            a = np.ascontiguousarray(a)
    elif a.shape[1] > 1 and a.strides[1] != 1:
        a = np.ascontiguousarray(a)
    return a


def _as_mask(mask: Any, name: str = "mask", shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """An (H, W) bool or uint8 array (nonzero = set) with contiguous rows."""
    if mask is None or isinstance(mask, (str, bytes)):
        raise TypeError(f"{name}: expected an (H, W) bool array, got {_describe(mask)}")
    m = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
    if m.dtype != np.bool_ and m.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype bool or uint8 (nonzero = set), got {m.dtype}; "
                        f"convert with {name} > 0")
    if m.ndim != 2:
        raise ValueError(f"{name}: expected shape (H, W), got {m.shape}")
    if shape is not None and m.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} to match the image, got {m.shape}")
    if m.shape[1] > 1 and m.strides[1] != 1:
        m = np.ascontiguousarray(m)
    return m


def _as_out(out: Any, shape: tuple[int, int], name: str = "out") -> Optional[np.ndarray]:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected an (H, W) bool array, got {_describe(out)}")
    if out.dtype != np.bool_ and out.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype bool or uint8, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {out.shape}")
    if out.shape[1] > 1 and out.strides[1] != 1:
        raise ValueError(f"{name}: expected contiguous rows (out.strides[1] == 1)")
    if not out.flags.writeable:
        raise ValueError(f"{name}: the array is read-only")
    return out


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def specular_mask(
    image: Any,
    *,
    v_min: int = 240,
    s_max: int = 30,
    dilate: int = 0,
    rgb: bool = False,
    num_threads: int = -1,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """(H, W) bool mask of the specular highlights of an 8-bit image.

    A pixel is glare when, in OpenCV's 8-bit HSV, ``V > v_min`` and ``S < s_max``; the mask is
    bit for bit ``cv2.inRange(cv2.cvtColor(image, cv2.COLOR_BGR2HSV), (0, 0, v_min + 1),
    (180, s_max - 1, 255)) > 0``, then dilated by a disc of radius ``dilate`` as
    ``cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2r+1, 2r+1)))``.

    Args:
        image: (H, W, 3) uint8 BGR (or RGB with ``rgb=True``), or (H, W) / (H, W, 1) uint8
            gray. Gray pixels have S = 0: they are glare when ``V > v_min`` (and
            ``s_max >= 1``), as the same image converted with ``GRAY2BGR``. Any row stride is
            read in place; views whose pixels are not contiguous within a row are copied.
        v_min: V must exceed this (0..255; 255 selects nothing).
        s_max: S must be below this (0..255; 0 selects nothing).
        dilate: radius of the disc the mask is grown by (0..254; 0: no dilation). Highlights
            have halos; 2-5 px is typical.
        rgb: the channel order of a colour image. V and S do not depend on it (max and min of
            the channels), so the mask is the same; accepted for clarity at call sites.
        num_threads: threads of the core's pool (-1: all cores).
        out: optional (H, W) bool or uint8 array with contiguous rows to write into.

    Returns:
        (H, W) bool array (``out`` when given, holding 0/1).

    Examples:
        >>> img = np.zeros((2, 2, 3), np.uint8); img[0, 0] = 250
        >>> specular_mask(img).tolist()
        [[True, False], [False, False]]
    """
    img = _as_image(image)
    vm = _as_int(v_min, "v_min", 0, 255)
    sm = _as_int(s_max, "s_max", 0, 255)
    r = _as_int(dilate, "dilate", 0, MAX_DILATE)
    if not isinstance(rgb, (bool, np.bool_)):
        raise TypeError(f"rgb: expected a bool, got {rgb!r}")
    nt = check_num_threads(num_threads)
    o = _as_out(out, img.shape[:2])
    if o is not None and np.may_share_memory(o, img):
        raise ValueError("out: must not share memory with the image")
    if _backend() == "python":
        res = _ref_specular_mask(img, vm, sm)
        if r:
            res = _ref_dilate_disc(res, r)
        if o is None:
            return res
        o[...] = res
        return o
    return _core.specular_mask(img, vm, sm, r, o, nt)


def disc_kernel(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 disc (0/1): ``cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1))``.

    Note that OpenCV's "ellipse" of radius 1 is a plus sign and every radius rounds its row
    half-widths with ``round(r * sqrt(1 - (dy / r)**2))``; this is that exact shape.
    """
    r = _as_int(radius, "radius", 0, MAX_DILATE)
    half = np.asarray(_core.disc_half_widths(r))
    cols = np.arange(-r, r + 1)
    return (np.abs(cols)[None, :] <= half[:, None]).astype(np.uint8)


def dilate_disc(
    mask: Any,
    radius: int,
    *,
    num_threads: int = -1,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """(H, W) bool: a mask (bool or uint8, nonzero = set) dilated by the disc of ``radius``.

    Equal to ``cv2.dilate(mask, disc_kernel(radius)) > 0`` with OpenCV's default border
    (pixels outside the image never set anything). O(H * W * radius / vector width); rows
    without a set pixel nearby cost almost nothing.
    """
    m = _as_mask(mask)
    r = _as_int(radius, "radius", 0, MAX_DILATE)
    nt = check_num_threads(num_threads)
    o = _as_out(out, m.shape)
    if o is not None and np.may_share_memory(o, m):
        raise ValueError("out: must not share memory with the mask")
    if _backend() == "python":
        res = _ref_dilate_disc(m != 0, r)
        if o is None:
            return res
        o[...] = res
        return o
    return _core.dilate_disc(m, r, o, nt)


# ---------------------------------------------------------------------------------------------
# Uses
# ---------------------------------------------------------------------------------------------


def glare_fraction(
    mask: Any,
    boxes: Any = None,
    *,
    masks: Optional[BoxMasks] = None,
    num_threads: int = -1,
) -> np.ndarray:
    """(N,) float32 fraction of each detection under glare.

    With ``boxes`` ((N, 4) xyxy): the fraction of the box's pixel region (``floor(x1) ..
    ceil(x2)``, ``floor(y1) .. ceil(y2)``, as :func:`fissure.masks.regions_from_boxes`,
    clipped to the image) that is set in ``mask``; 0 for a box with no pixel in the image.
    With ``masks`` (:class:`~fissure.masks.BoxMasks`): the fraction of each mask's set pixels
    that are set in ``mask`` (pixels outside the image count as not glare); 0 for an empty mask.

    Args:
        mask: (H, W) bool or uint8 glare mask, e.g. from :func:`specular_mask`.
        boxes: (N, 4) xyxy boxes in the mask's pixel coordinates.
        masks: box-local masks instead of boxes (give exactly one of the two).
        num_threads: threads of the core's pool (-1: all cores).

    Examples:
        Drop detections that are mostly highlight::

            keep = glare_fraction(specular_mask(img), boxes) <= 0.5
    """
    m = _as_mask(mask)
    nt = check_num_threads(num_threads)
    if (boxes is None) == (masks is None):
        raise ValueError("glare_fraction: give exactly one of boxes or masks")
    if masks is not None:
        if not isinstance(masks, BoxMasks):
            raise TypeError(f"masks: expected a fissure.BoxMasks, got {_describe(masks)}")
        if masks.image_shape is not None and tuple(masks.image_shape) != m.shape:
            raise ValueError(f"masks: image_shape {tuple(masks.image_shape)} does not match the "
                             f"glare mask's shape {m.shape}")
        if _backend() == "python":
            return _ref_glare_fraction_masks(m, masks)
        return _core.glare_fraction_masks(m, *masks._args(), num_threads=nt)
    b = as_boxes(boxes)
    if _backend() == "python":
        return _ref_glare_fraction_boxes(m, b)
    return _core.glare_fraction_boxes(m, b, num_threads=nt)


def suppress_glare(anomaly_map: Any, mask: Any, value: float = 0.0) -> np.ndarray:
    """A copy of an anomaly map with the glare pixels set to ``value`` (default 0).

    Args:
        anomaly_map: (H, W) or (..., H, W) numeric map at the mask's resolution (resize the
            map or the mask first when they differ).
        mask: (H, W) bool or uint8 glare mask.
        value: what glare pixels become.

    Returns:
        A new array of the map's shape and dtype.
    """
    if anomaly_map is None or isinstance(anomaly_map, (str, bytes)):
        raise TypeError(f"anomaly_map: expected an (H, W) array, got {_describe(anomaly_map)}")
    a = np.asarray(anomaly_map)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"anomaly_map: expected a numeric array, got dtype {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"anomaly_map: expected shape (H, W) or (..., H, W), got {a.shape}")
    m = _as_mask(mask, shape=a.shape[-2:])
    if isinstance(value, (str, bytes)) or not isinstance(value, (numbers.Number, np.generic)):
        raise TypeError(f"value: expected a number, got {value!r}")
    out = np.array(a, copy=True)
    out[..., m != 0] = value
    return out




_INPAINT = {"telea": "INPAINT_TELEA", "ns": "INPAINT_NS"}


def inpaint_specular(
    image: Any,
    mask: Any = None,
    radius: float = 3.0,
    method: str = "telea",
    *,
    v_min: int = 240,
    s_max: int = 30,
    dilate: int = 2,
    num_threads: int = -1,
) -> np.ndarray:
    """The image with its highlights filled by OpenCV's inpainting (``cv2.inpaint``).

    Args:
        image: (H, W, 3) or (H, W) uint8.
        mask: (H, W) bool/uint8 pixels to fill; None computes ``specular_mask(image, v_min=...,
            s_max=..., dilate=...)`` (a small dilation covers the halo around a highlight).
        radius: the inpainting neighbourhood radius in pixels (> 0).
        method: ``"telea"`` (Telea's fast marching) or ``"ns"`` (Navier-Stokes).

    Returns:
        A new uint8 array of the image's shape. Needs ``opencv-python-headless``.
    """
    img = _as_image(image)
    if not isinstance(method, str) or method.lower() not in _INPAINT:
        raise ValueError(f"method: expected one of {sorted(_INPAINT)}, got {method!r}")
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, numbers.Real):
        raise TypeError(f"radius: expected a positive number, got {radius!r}")
    if not (float(radius) > 0 and np.isfinite(radius)):
        raise ValueError(f"radius: expected a positive number, got {radius}")
    if mask is None:
        m = specular_mask(img, v_min=v_min, s_max=s_max, dilate=dilate, num_threads=num_threads)
    else:
        m = _as_mask(mask, shape=img.shape[:2])
    cv2 = require_cv2("inpaint_specular")
    src = np.ascontiguousarray(img)
    if not m.any():
        return src.copy()
    m8 = np.ascontiguousarray(m, dtype=np.uint8)
    flag = getattr(cv2, _INPAINT[method.lower()])
    return np.asarray(cv2.inpaint(src, m8, float(radius), flag))


def draw_specular(
    image: Any,
    mask: Any,
    color: Sequence[int] = (255, 0, 255),
    alpha: float = 0.5,
) -> np.ndarray:
    """A new (H, W, 3) uint8 image with the mask blended over it in ``color``.

    ``out = round((1 - alpha) * image + alpha * color)`` on the masked pixels, the image
    elsewhere. ``color`` is in the image's channel order (BGR for OpenCV images; the default
    magenta is the same in both orders). Gray images are drawn on as three equal channels.
    """
    img = _as_image(image)
    m = _as_mask(mask, shape=img.shape[:2])
    if isinstance(color, (str, bytes)) or not isinstance(color, (Sequence, np.ndarray)):
        raise TypeError(f"color: expected three ints in 0..255, got {color!r}")
    c = np.asarray(color)
    if c.shape != (3,) or not (np.issubdtype(c.dtype, np.integer)) or (c < 0).any() or (
        c > 255
    ).any():
        raise ValueError(f"color: expected three ints in 0..255, got {color!r}")
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha}")
    out = np.array(np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img, copy=True)
    sel = m != 0
    px = out[sel].astype(np.float32)
    out[sel] = np.clip(np.rint(px * (1.0 - a) + c.astype(np.float32) * a), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# Pure-numpy twins (FISSURE_BACKEND=python; the tests' oracle)
# ---------------------------------------------------------------------------------------------


def _ref_threshold_table(v_min: int, s_max: int) -> np.ndarray:
    """T[v]: diff < T[v] iff OpenCV's S(v, diff) < s_max (and v > v_min); from the formula."""
    v = np.arange(256, dtype=np.int64)
    sdiv = np.zeros(256, dtype=np.int64)
    sdiv[1:] = np.floor((255 << 12) / v[1:] + 0.5).astype(np.int64)
    d = np.arange(256, dtype=np.int64)
    s = (d[None, :] * sdiv[:, None] + 2048) >> 12  # S for (v, diff)
    ok = (s < s_max) & (d[None, :] <= v[:, None])
    t = ok.sum(axis=1)  # ok is a prefix in diff: S grows with diff
    t[: v_min + 1] = 0
    return t.astype(np.uint8)


def _ref_specular_mask(img: np.ndarray, v_min: int, s_max: int) -> np.ndarray:
    t = _ref_threshold_table(v_min, s_max)
    if img.ndim == 2:
        return t[img] > 0  # diff = 0
    v = img.max(axis=2)
    d = v - img.min(axis=2)
    return d < t[v]


def _ref_dilate_disc(mask: np.ndarray, r: int) -> np.ndarray:
    m = mask != 0
    if r == 0:
        return m.copy()
    h, w = m.shape
    pad = np.zeros((h + 2 * r, w + 2 * r), dtype=bool)
    pad[r:r + h, r:r + w] = m
    out = np.zeros_like(m)
    k = disc_kernel(r)
    for dy, dx in zip(*np.nonzero(k)):
        out |= pad[dy:dy + h, dx:dx + w]
    return out


def _ref_glare_fraction_boxes(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros(len(boxes), dtype=np.float32)
    b = boxes.astype(np.float64)
    for i, (x1, y1, x2, y2) in enumerate(b):
        x0, y0 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
        xe, ye = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
        area = max(xe - x0, 0) * max(ye - y0, 0)
        if area:
            out[i] = np.count_nonzero(mask[y0:ye, x0:xe]) / area
    return out


def _ref_glare_fraction_masks(mask: np.ndarray, masks: BoxMasks) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros(len(masks), dtype=np.float32)
    for i in range(len(masks)):
        bm = masks.mask(i) != 0
        x0, y0, mw, mh = (int(v) for v in masks.regions[i])
        total = int(bm.sum())
        if not total:
            continue
        canvas = np.zeros((mh, mw), dtype=bool)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + mw, w), min(y0 + mh, h)
        if cx1 > cx0 and cy1 > cy0:
            canvas[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = mask[cy0:cy1, cx0:cx1] != 0
        out[i] = np.count_nonzero(bm & canvas) / total
    return out
