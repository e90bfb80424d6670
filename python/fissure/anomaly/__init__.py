"""Anomaly detection (PatchCore)."""

from .embed import embed_patches

__all__ = ["embed_patches"]
