"""Pure-numpy twins of the C++ core's public functions: naive, obviously right, slow.

Each twin has the public function's signature and validates its arguments with the same
helpers, so a twin can stand in for the public function anywhere. They serve two purposes:

* the fallback selected with the environment variable ``FISSURE_BACKEND=python`` (read on
  every call by :func:`active`, the one switch): the public functions of
  :mod:`fissure.merge` and :mod:`fissure.specular` then call their twin here;
* the tests' oracles for the core (test-only oracles that the package itself never uses live
  under ``tests/python/oracles``).

Modules: :mod:`fissure._reference.merge` (``nms``, ``greedy_nmm``, ``nmm``) and
:mod:`fissure._reference.specular` (``specular_mask``, ``dilate_disc``, ``glare_fraction``).
"""

from __future__ import annotations

import os

__all__ = ["BACKENDS", "active", "merge", "specular"]

#: The values ``FISSURE_BACKEND`` may take: the C++ core (default) or the numpy twins.
BACKENDS = ("cpp", "python")


def active() -> bool:
    """True when ``FISSURE_BACKEND=python`` routes the public functions to their twins.

    Raises ValueError for a value other than ``cpp``, ``python`` or empty.
    """
    name = os.environ.get("FISSURE_BACKEND", "cpp").strip().lower() or "cpp"
    if name not in BACKENDS:
        raise ValueError(f"FISSURE_BACKEND: expected one of {BACKENDS}, got {name!r}")
    return name == "python"


from . import merge, specular  # noqa: E402  (the twins import the switch above)
