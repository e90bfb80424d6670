"""Running a test at each SIMD level of one kernel family of the C++ core (knn, specular,
preprocess): the core's ``_<family>_force_simd`` switch and its ``<family>_simd_level``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fissure import _core


@contextmanager
def forced_level(family: str, level: str) -> Iterator[str]:
    """Forces ``family``'s kernels to ``level`` for the block; yields the level the core now
    reports (lower than asked when the CPU or FISSURE_SIMD caps it); restores the previous."""
    force = getattr(_core, f"_{family}_force_simd")
    prev = force(level)
    try:
        yield getattr(_core, f"{family}_simd_level")()
    finally:
        force(prev)


def levels(family: str, order: Sequence[str] = ("scalar", "avx2", "avx512")) -> list[str]:
    """The levels of ``order`` up to the best one ``family`` picks on this machine."""
    with forced_level(family, "none") as best:
        pass
    return list(order[: order.index(best) + 1]) if best in order else ["scalar"]
