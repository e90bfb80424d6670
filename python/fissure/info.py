"""What this installation of fissure is: version, SIMD path, threads, backends."""

from __future__ import annotations

import importlib.util
import platform
from typing import Any

from . import _core
from ._optional import opencv_distributions
from ._version import __version__

__all__ = ["info"]

_BACKENDS = ("onnxruntime", "openvino")


def _backend_version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        from importlib.metadata import version

        dist = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")}.get(
            name, (name,)
        )
        for d in dist:
            try:
                return version(d)
            except Exception:  # noqa: BLE001 - try the next distribution name
                continue
    except ImportError:  # pragma: no cover
        pass
    return "installed"


def _auto_backend() -> dict[str, Any]:
    """What ``backend="auto"`` picks here, or why nothing can be picked."""
    from .backends.auto import auto_backend

    try:
        c = auto_backend()
    except ImportError as exc:  # no backend installed: the message names what to install
        return {"backend": None, "device": None, "reason": str(exc)}
    return {"backend": c.backend, "device": c.device, "reason": c.reason}


def info() -> dict[str, Any]:
    """A dict describing this installation (what ``fissure info`` prints).

    Keys: ``version``, ``simd`` (the path the core selected), ``cpu_simd`` (the best the CPU
    supports), ``threads`` (used for ``num_threads=-1``), ``backends`` (name -> version or
    None when not importable), ``auto_backend`` (``backend``, ``device``, ``reason``: what
    ``open_model(..., backend="auto")`` picks for an ONNX model), ``opencv`` (the installed
    OpenCV distributions -> version; two or more overwrite each other's ``cv2``),
    ``python``, ``platform``, ``compiler``.
    """
    build = dict(_core.build_info())
    return {
        "version": __version__,
        "simd": _core.simd_level(),
        "cpu_simd": _core.cpu_simd_level(),
        "threads": int(_core.hardware_threads()),
        "backends": {b: _backend_version(b) for b in _BACKENDS},
        "auto_backend": _auto_backend(),
        "opencv": opencv_distributions(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "compiler": build.get("compiler", "unknown"),
    }
