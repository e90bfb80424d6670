"""A position-aware PatchCore memory bank for registered parts (every image shows the part at
the same place: solar cells, labels, stamped parts).

The patch grid is cut into ``block x block`` regions; a test patch in a region is compared
only with bank patches whose grid position lies in that region grown by ``reach`` cells on
each side (clipped to the grid). Normal structure that belongs somewhere else on the part (a
dark cut corner of a mono cell, a busbar) then no longer explains away a defect that looks
like it in the middle. The search stays exact: :func:`position_knn` runs the exact
``knn_search`` once per region over that region's bank rows (docs/patchcore_elpv.md).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["position_knn", "position_regions"]


def _positive(v: object, name: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < lo:
        raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    return int(v)


def position_regions(h: int, w: int, block: int, reach: int
                     ) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """The regions of an ``h x w`` patch grid: ``((y0, y1, x0, x1), (gy0, gy1, gx0, gx1))``
    per region, the region's cells (half-open) and the cells its patches search (the region
    grown by ``reach``, clipped to the grid), row-major.

    >>> position_regions(5, 4, 4, 1)[0]
    ((0, 4, 0, 4), (0, 5, 0, 4))
    """
    h, w = _positive(h, "h", 1), _positive(w, "w", 1)
    block, reach = _positive(block, "block", 1), _positive(reach, "reach", 0)
    out = []
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            y1, x1 = min(y0 + block, h), min(x0 + block, w)
            out.append(((y0, y1, x0, x1), (max(0, y0 - reach), min(h, y1 + reach),
                                           max(0, x0 - reach), min(w, x1 + reach))))
    return out


def position_knn(bank: np.ndarray, bank_pos: np.ndarray, queries: np.ndarray,
                 grid: tuple[int, int], block: int, reach: int, k: int = 1, *,
                 num_threads: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest bank rows of each query among the bank rows of its region.

    Args:
        bank: (nb, d) float32 / float16 memory bank.
        bank_pos: (nb, 2) int grid positions (row, column) of the bank rows.
        queries: (n * gh * gw, d) queries: ``n`` images' patch grids, row-major.
        grid: ``(gh, gw)``, the patch grid of the queries (and of the bank's images).
        block, reach: the regions (:func:`position_regions`).
        k: neighbours per query.

    Returns:
        ``(D, I)`` as :func:`fissure.anomaly.search.knn_search` (squared L2 ascending, int64
        ids into ``bank``; ``-1`` / ``FLT_MAX`` where a region holds fewer than ``k`` rows).
    """
    from .search import knn_search

    gh, gw = (_positive(v, "grid", 1) for v in grid)
    bank_pos = np.asarray(bank_pos)
    if bank_pos.ndim != 2 or bank_pos.shape[1] != 2 or bank_pos.shape[0] != len(bank):
        raise ValueError(f"bank_pos: expected shape ({len(bank)}, 2), got {bank_pos.shape}")
    q = np.asarray(queries)
    if q.ndim != 2 or q.shape[0] % (gh * gw):
        raise ValueError(f"queries: expected (n * {gh} * {gw}, d) rows, got {q.shape}")
    n, d = q.shape[0] // (gh * gw), q.shape[1]
    qg = q.reshape(n, gh, gw, d)
    dist = np.full((n, gh, gw, k), np.finfo(np.float32).max, np.float32)
    ids = np.full((n, gh, gw, k), -1, np.int64)
    py, px = bank_pos[:, 0], bank_pos[:, 1]
    for (y0, y1, x0, x1), (gy0, gy1, gx0, gx1) in position_regions(gh, gw, block, reach):
        rows = np.flatnonzero((py >= gy0) & (py < gy1) & (px >= gx0) & (px < gx1))
        if rows.size == 0:
            continue
        sub = qg[:, y0:y1, x0:x1].reshape(-1, d)
        dd, ii = knn_search(np.ascontiguousarray(bank[rows]), sub, k, num_threads=num_threads)
        shape = (n, y1 - y0, x1 - x0, k)
        dist[:, y0:y1, x0:x1] = dd.reshape(shape)
        ids[:, y0:y1, x0:x1] = np.where(ii >= 0, rows[np.maximum(ii, 0)], -1).reshape(shape)
    return dist.reshape(-1, k), ids.reshape(-1, k)
