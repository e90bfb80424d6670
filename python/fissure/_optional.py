"""Optional dependencies, imported when first needed, with an install hint when missing.

OpenCV policy (docs/install.md): fissure depends on no particular OpenCV distribution. Every
distribution (opencv-python, opencv-python-headless, opencv-contrib-python, ...) installs the
same ``cv2`` module, and two of them in one environment overwrite each other's files, so a
hard requirement on one would clash with libraries that require another (SAHI, rapidocr and
Ultralytics require opencv-python). The parts that need OpenCV (image files, overlays,
PatchCore, polygons) import ``cv2`` when first used; ``pip install "fissure[cv]"`` adds the
headless build for environments that have no OpenCV yet.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

__all__ = ["OPENCV_DISTRIBUTIONS", "opencv_distributions", "require_cv2"]

#: The PyPI distributions that install the ``cv2`` module.
OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def opencv_distributions() -> dict[str, str]:
    """The installed OpenCV distributions and their versions (more than one is a clash)."""
    found = {}
    for name in OPENCV_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def require_cv2(what: str) -> Any:
    """The ``cv2`` module; ImportError naming ``what`` needed it and how to install it."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            f"{what} needs OpenCV (the cv2 module), which is not installed: "
            'pip install "fissure[cv]" (adds opencv-python-headless), or any one OpenCV '
            "distribution, e.g. opencv-python if another library needs that one"
        ) from e
    return cv2
