"""Reading images and writing results atomically."""

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

__all__ = ["expand_inputs", "read_image", "sha256_file", "write_image_atomic", "write_json_atomic"]

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
    """Encodes by the file's suffix and writes it atomically (temporary file, fsync, rename)."""
    cv2 = require_cv2("writing images")
    p = Path(path)
    ok, buf = cv2.imencode(p.suffix or ".png", np.asarray(image))
    if not ok:
        raise ValueError(f"cannot encode an image as {p.suffix or '.png'}: {p}")
    _atomic_write_bytes(p, buf.tobytes())
    return p


def write_json_atomic(path: PathLike, obj: Any) -> Path:
    """Writes JSON atomically (temporary file, fsync, rename)."""
    p = Path(path)
    _atomic_write_bytes(p, (json.dumps(obj, indent=2) + "\n").encode())
    return p
