"""Optional dependencies, imported when first needed, with an install hint when missing."""

from __future__ import annotations

from typing import Any

__all__ = ["require_cv2"]


def require_cv2(what: str) -> Any:
    """The ``cv2`` module; ImportError naming ``what`` needed it and how to install it."""
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{what} needs OpenCV: pip install opencv-python-headless (or fissure[cv])"
        ) from e
    return cv2
