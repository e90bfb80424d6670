"""Images in, results out: the one image intake of fissure (:func:`as_image`), reading image
files, and writing results atomically.

The image policy, the same for every function that takes an image:

- a path (``str`` or ``os.PathLike``) is read with :func:`read_image` (same rules below);
- ``(H, W, 3)`` uint8 is BGR, taken as is (no copy);
- ``(H, W)`` or ``(H, W, 1)`` uint8 is grayscale, repeated into three channels (functions
  whose result only depends on the pixel values, such as :func:`fissure.specular_mask`, read
  it in place and give the same result as for the repeated image);
- ``(H, W, 4)`` uint8 is BGRA: the alpha channel is dropped, not composited;
- uint16 of those shapes is scaled to 8 bits with ``>> 8``;
- anything else (float, bool, signed, other channel counts, empty) raises TypeError or
  ValueError naming what was expected, with a conversion hint for floats.

Row strides are free (crops and flipped views are read in place); a view whose pixels or
channels are not adjacent bytes (``img[:, ::2]``, Fortran order) is copied once.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Union

import numpy as np

from ._optional import require_cv2
from ._validate import describe

__all__ = [
    "as_image",
    "expand_inputs",
    "read_image",
    "sha256_file",
    "write_image_atomic",
    "write_json_atomic",
]

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}


def expand_inputs(inputs: Iterable[PathLike]) -> Iterator[Path]:
    """Files, folders (their images, sorted) and glob patterns, in the order given."""
    for item in inputs:
        s = os.fspath(item)
        p = Path(s)
        if p.is_dir():
            yield from sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in s for ch in "*?["):
            yield from (Path(q) for q in sorted(glob.glob(s, recursive=True)))
        else:
            yield p


def read_image(path: PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 BGR.

    Grayscale files are expanded to three channels, an alpha channel is dropped and 16-bit
    images are scaled to 8 bits (``>> 8``). Raises ``FileNotFoundError`` for a missing file
    and ``ValueError`` for one OpenCV cannot decode.
    """
    cv2 = require_cv2("reading images")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such image file: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f"cannot decode image file: {p}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"{p}: expected an 8- or 16-bit image, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img)


def as_image(image: Any, name: str = "image", *, gray: bool = False) -> np.ndarray:
    """An image (array or path) under the one policy of this module's docstring.

    Returns an (H, W, 3) uint8 BGR array whose pixels are adjacent bytes within a row (a view
    where possible). With ``gray=True`` a grayscale input comes back as (H, W) instead (for
    callers that read gray directly and give the same result as for the repeated image).
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if image is None or isinstance(image, bytes) or not hasattr(image, "__array__"):
        raise TypeError(f"{name}: expected an (H, W, 3) uint8 BGR array, an (H, W) gray one or "
                        f"a path, got {describe(image)}")
    a = image if isinstance(image, np.ndarray) else np.asarray(image)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        hint = ""
        if np.issubdtype(a.dtype, np.floating):
            hint = ("; scale floats to 0..255 and convert, e.g. "
                    "np.clip(img * 255, 0, 255).round().astype(np.uint8) for floats in [0, 1]")
        raise TypeError(f"{name}: expected dtype uint8 (or uint16), got {a.dtype}{hint}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim == 2:
        if a.shape[0] and a.shape[1] and not gray:
            a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{name}: expected shape (H, W, 3), (H, W), (H, W, 1) or (H, W, 4), "
                         f"got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {a.shape}")
    if a.ndim == 3:
        if a.strides[2] != 1 or (a.shape[1] > 1 and a.strides[1] != 3):
            a = np.ascontiguousarray(a)
    elif a.shape[1] > 1 and a.strides[1] != 1:
        a = np.ascontiguousarray(a)
    return a


def sha256_file(path: PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
        if hasattr(os, "fchmod"):
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_image_atomic(path: PathLike, image: np.ndarray) -> Path:
    """Encodes by the file's suffix (PNG: lossless, zlib level 1; JPEG: quality 90) and
    writes it atomically (temporary file, fsync, rename)."""
    cv2 = require_cv2("writing images")
    p = Path(path)
    suffix = (p.suffix or ".png").lower()
    # PNG: zlib level 1 with the default filtering is a third smaller than OpenCV's default
    # (run-length) on a 12 MP photo, at the same speed
    params = ([cv2.IMWRITE_PNG_COMPRESSION, 1] if suffix == ".png" else
              [cv2.IMWRITE_JPEG_QUALITY, 90] if suffix in (".jpg", ".jpeg") else [])
    ok, buf = cv2.imencode(p.suffix or ".png", np.asarray(image), params)
    if not ok:
        raise ValueError(f"cannot encode an image as {p.suffix or '.png'}: {p}")
    _atomic_write_bytes(p, buf.tobytes())
    return p


def write_json_atomic(path: PathLike, obj: Any) -> Path:
    """Writes JSON atomically (temporary file, fsync, rename)."""
    p = Path(path)
    _atomic_write_bytes(p, (json.dumps(obj, indent=2) + "\n").encode())
    return p
