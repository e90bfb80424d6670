"""fissure: find small defects in high-resolution images on cheap hardware.

The public API is pure Python over the private compiled module ``fissure._core``.
"""

from __future__ import annotations

from ._version import __version__

try:
    from . import _core  # noqa: F401  (the compiled core; everything below needs it)
except ImportError as _exc:  # pragma: no cover - depends on how fissure was installed
    import glob as _glob
    import os as _os

    _here = _os.path.dirname(__file__)
    _built = _glob.glob(_os.path.join(_here, "_core*"))
    _why = ("is not built" if not [f for f in _built if not f.endswith((".pyi", ".py"))]
            else f"does not load ({_exc})")
    raise ImportError(
        f"fissure's compiled core (fissure._core) {_why} in {_here}. Install the package "
        "with `pip install .` (it builds the core), or in a source checkout run "
        "`tools/dev_build.sh` and then `PYTHONPATH=python ...`"
    ) from None

from .anomaly import AnomalyModel, AnomalyResult, PatchCore, kcenter_greedy, knn_search, random_projection
from .change import ChangeDetector, change_map
from .detection import Detections, DetectStats, TiledDetector, select_decoder
from .info import info
from .inspection import InspectedRegion, InspectionResult, Inspector
from .masks import BoxMasks, regions_from_boxes
from .merge import MergeResult, greedy_nmm, nmm, nms
from .preprocess import PreprocessConfig, letterbox_params, preprocess_tiles
from .specular import (
    dilate_disc,
    disc_kernel,
    draw_specular,
    glare_fraction,
    inpaint_specular,
    specular_mask,
    suppress_glare,
)
from .tiling import auto_slice_params, slice_grid

__all__ = [
    "AnomalyModel",
    "AnomalyResult",
    "BoxMasks",
    "ChangeDetector",
    "change_map",
    "DetectStats",
    "Detections",
    "MergeResult",
    "PatchCore",
    "PreprocessConfig",
    "__version__",
    "auto_slice_params",
    "dilate_disc",
    "disc_kernel",
    "draw_specular",
    "glare_fraction",
    "greedy_nmm",
    "info",
    "InspectedRegion",
    "InspectionResult",
    "Inspector",
    "inpaint_specular",
    "kcenter_greedy",
    "knn_search",
    "letterbox_params",
    "nmm",
    "nms",
    "preprocess_tiles",
    "random_projection",
    "regions_from_boxes",
    "select_decoder",
    "slice_grid",
    "specular_mask",
    "suppress_glare",
    "TiledDetector",
]
