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

Set ``FISSURE_BACKEND=python`` to run the pure-numpy twins (``fissure._reference.specular``;
slow; the tests' oracle) instead
of the C++ core. See ``docs/specular.md``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from . import _core, _reference
from ._optional import require_cv2
from .io import as_image
from ._validate import as_boxes, as_int, check_num_threads, describe
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

# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _as_image(image: Any, name: str = "image") -> np.ndarray:
    """:func:`fissure.io.as_image` with gray read in place (V = gray, S = 0 equals the
    repeated image's mask)."""
    # V and S are symmetric in the channels: a channel-reversed view (img[..., ::-1]) holds
    # the same pixels; reading it forwards avoids a copy.
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.strides[2] < 0:
        image = image[:, :, ::-1]
    return as_image(image, name, gray=True)


def _as_mask(mask: Any, name: str = "mask", shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """An (H, W) bool or uint8 array (nonzero = set) with contiguous rows."""
    if mask is None or isinstance(mask, (str, bytes)):
        raise TypeError(f"{name}: expected an (H, W) bool array, got {describe(mask)}")
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
        raise TypeError(f"{name}: expected an (H, W) bool array, got {describe(out)}")
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


def _mask_args(image: Any, v_min: Any, s_max: Any, dilate: Any, rgb: Any, num_threads: Any,
               out: Any) -> tuple[np.ndarray, int, int, int, int, Optional[np.ndarray]]:
    """specular_mask's arguments checked (shared with its twin)."""
    img = _as_image(image)
    vm = as_int(v_min, "v_min", 0, 255)
    sm = as_int(s_max, "s_max", 0, 255)
    r = as_int(dilate, "dilate", 0, MAX_DILATE)
    if not isinstance(rgb, (bool, np.bool_)):
        raise TypeError(f"rgb: expected a bool, got {rgb!r}")
    nt = check_num_threads(num_threads)
    o = _as_out(out, img.shape[:2])
    if o is not None and np.may_share_memory(o, img):
        raise ValueError("out: must not share memory with the image")
    return img, vm, sm, r, nt, o


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
    if _reference.active():
        return _reference.specular.specular_mask(image, v_min=v_min, s_max=s_max, dilate=dilate,
                                                 rgb=rgb, num_threads=num_threads, out=out)
    img, vm, sm, r, nt, o = _mask_args(image, v_min, s_max, dilate, rgb, num_threads, out)
    return _core.specular_mask(img, vm, sm, r, o, nt)


#: an image with more glare than this (share of pixels under the glare rule, undilated) gets
#: a warning when glare is not masked
GLARE_WARN = 0.005


def glare_warning(path: Any, image: np.ndarray, option: str, threads: int = -1,
                  boxes: Any = None) -> str | None:
    """The warning line for an image whose glare is not masked but matters: more than
    ``GLARE_WARN`` of its pixels under the glare rule (V > 240, S < 30), or glare inside
    any of the predicted region ``boxes``; it names ``option``. None otherwise."""
    glare = specular_mask(image, num_threads=threads)
    share = float(glare.mean()) if glare.size else 0.0
    touching = 0
    for x0, y0, x1, y1 in np.asarray(boxes if boxes is not None else [], np.int64).reshape(-1, 4):
        touching += bool(glare[y0:y1, x0:x1].any())
    if share <= GLARE_WARN and not touching:
        return None
    gray = image.ndim == 2 or (np.array_equal(image[..., 0], image[..., 1])
                               and np.array_equal(image[..., 1], image[..., 2]))
    rule = "V > 240, S < 30" + ("; in a gray image every pixel above 240" if gray else "")
    what = f"{share:.2%} of the pixels are glare ({rule})"
    if touching:
        what += f" and {touching} of the {len(boxes)} regions touch it"
    return (f"fissure: warning: {path}: {what}; glare is scored like the rest of the image: "
            f"if it is specular reflection, not a defect, mask it with {option}")


def disc_kernel(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 disc (0/1): ``cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1))``.

    Note that OpenCV's "ellipse" of radius 1 is a plus sign and every radius rounds its row
    half-widths with ``round(r * sqrt(1 - (dy / r)**2))``; this is that exact shape.
    """
    r = as_int(radius, "radius", 0, MAX_DILATE)
    half = np.asarray(_core.disc_half_widths(r))
    cols = np.arange(-r, r + 1)
    return (np.abs(cols)[None, :] <= half[:, None]).astype(np.uint8)


def _dilate_args(mask: Any, radius: Any, num_threads: Any,
                 out: Any) -> tuple[np.ndarray, int, int, Optional[np.ndarray]]:
    """dilate_disc's arguments checked (shared with its twin)."""
    m = _as_mask(mask)
    r = as_int(radius, "radius", 0, MAX_DILATE)
    nt = check_num_threads(num_threads)
    o = _as_out(out, m.shape)
    if o is not None and np.may_share_memory(o, m):
        raise ValueError("out: must not share memory with the mask")
    return m, r, nt, o


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
    if _reference.active():
        return _reference.specular.dilate_disc(mask, radius, num_threads=num_threads, out=out)
    m, r, nt, o = _dilate_args(mask, radius, num_threads, out)
    return _core.dilate_disc(m, r, o, nt)


# ---------------------------------------------------------------------------------------------
# Uses
# ---------------------------------------------------------------------------------------------


def _fraction_args(mask: Any, boxes: Any, masks: Any,
                   num_threads: Any) -> tuple[np.ndarray, Optional[np.ndarray], int]:
    """glare_fraction's arguments checked (shared with its twin); boxes None with masks."""
    m = _as_mask(mask)
    nt = check_num_threads(num_threads)
    if (boxes is None) == (masks is None):
        raise ValueError("glare_fraction: give exactly one of boxes or masks")
    if masks is not None:
        if not isinstance(masks, BoxMasks):
            raise TypeError(f"masks: expected a fissure.BoxMasks, got {describe(masks)}")
        if masks.image_shape is not None and tuple(masks.image_shape) != m.shape:
            raise ValueError(f"masks: image_shape {tuple(masks.image_shape)} does not match the "
                             f"glare mask's shape {m.shape}")
        return m, None, nt
    return m, as_boxes(boxes), nt


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
    if _reference.active():
        return _reference.specular.glare_fraction(mask, boxes, masks=masks,
                                                  num_threads=num_threads)
    m, b, nt = _fraction_args(mask, boxes, masks, num_threads)
    if masks is not None:
        return _core.glare_fraction_masks(m, *masks._args(), num_threads=nt)
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
        raise TypeError(f"anomaly_map: expected an (H, W) array, got {describe(anomaly_map)}")
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
