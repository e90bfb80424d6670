"""Drop-in integrations for users of the peer libraries.

Each submodule imports its peer only when it is imported itself, so ``import fissure``
never pulls in SAHI or supervision:

* :mod:`fissure.integrations.sahi`: SAHI postprocess classes (``NMSPostprocess``,
  ``GreedyNMMPostprocess``, ``NMMPostprocess``) with SAHI's constructor and call signature,
  and :func:`~fissure.integrations.sahi.use_fissure_postprocess` to make
  ``sahi.predict.get_sliced_prediction`` use them.
* :mod:`fissure.integrations.supervision`: ``with_nms`` / ``with_nmm`` for
  ``sv.Detections``, equal to ``Detections.with_nms`` / ``Detections.with_nmm``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["sahi", "supervision"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
