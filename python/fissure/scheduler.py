"""The tiled-inference scheduler: batch sizing under a memory budget and multi-buffered
tile preprocessing.

:class:`BatchFeeder` fills ``num_buffers`` (default two) reusable batch buffers from the tiles
of one image in the C++ core: while the caller runs the model on batch ``k`` (ONNX Runtime and
OpenVINO release the GIL), a native background thread preprocesses batch ``k + 1`` into the
next buffer. With ``num_buffers = n`` a batch's buffer stays valid while ``n - 2`` later
batches are yielded, so up to ``n - 1`` batches can be in flight in an asynchronous model
(``TiledDetector`` with ``backend.max_in_flight`` requests).

:func:`choose_batch_size` is the budget rule (see ``docs/scheduler.md``)::

    batch = floor((budget - fixed) / per_tile), clamped to [1, max_batch] and to the tile count

where ``fixed`` and ``per_tile`` are measured by :func:`measure_batch_cost` on a first batch.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from . import _core
from ._validate import check_num_threads
from .io import as_image
from .preprocess import PreprocessConfig, _as_tiles

__all__ = [
    "BatchCost",
    "BatchFeeder",
    "choose_batch_size",
    "gpu_memory_used",
    "measure_batch_cost",
    "rss_bytes",
]

MB = 1 << 20


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 1:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class BatchCost:
    """The measured memory cost of the model: ``fixed_bytes`` once plus ``per_tile_bytes``
    for each tile of a batch, and how it was measured (``"rss"``, ``"gpu"`` or ``"io"``)."""

    fixed_bytes: float
    per_tile_bytes: float
    source: str = "rss"


def choose_batch_size(budget_mb: float, cost: BatchCost, max_batch: int, num_tiles: int) -> int:
    """``floor((budget - fixed) / per_tile)`` clamped to ``[1, max_batch]`` and to ``num_tiles``.

    A budget too small for even one tile still gives 1 (the model must run); a per-tile cost
    of zero gives ``max_batch``.

    Examples:
        >>> choose_batch_size(2048, BatchCost(48 * 2**20, 100 * 2**20), 64, 96)
        20
    """
    if isinstance(budget_mb, bool) or not isinstance(budget_mb, numbers.Real) or not (
            math.isfinite(float(budget_mb)) and float(budget_mb) > 0):
        raise ValueError(f"vram_budget_mb: expected a positive number, got {budget_mb!r}")
    mb = _positive_int(max_batch, "max_batch")
    n = max(int(num_tiles), 0)
    if mb >= 2**63 or n >= 2**63:
        raise TypeError("max_batch, num_tiles: expected values that fit in int64")
    budget = float(budget_mb) * MB
    fixed, per_tile = float(cost.fixed_bytes), float(cost.per_tile_bytes)
    if not (budget > 0.0) or not math.isfinite(budget):
        raise ValueError(f"budget: expected a positive, finite number of bytes, got {budget:f}")
    if not (math.isfinite(fixed) and math.isfinite(per_tile)):
        raise ValueError("batch cost: expected finite byte counts")
    b = mb
    if per_tile > 0.0:
        q = (budget - max(0.0, fixed)) / per_tile
        fit = float(math.floor(q)) if math.isfinite(q) else q  # as double floor()
        b = 1 if fit < 1.0 else (mb if fit >= float(mb) else int(fit))
    if n >= 1 and b > n:
        b = n
    return max(b, 1)


def rss_bytes() -> int:
    """This process's resident set size now (Linux: /proc/self/statm; elsewhere the peak)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def gpu_memory_used(device_id: int = 0) -> Optional[int]:
    """Bytes in use on NVIDIA GPU ``device_id`` as nvidia-smi reports them, or None when
    nvidia-smi is missing or fails (then the scheduler falls back to the I/O estimate)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i",
             str(int(device_id))], capture_output=True, text=True, timeout=10, check=True)
        return int(float(out.stdout.strip().splitlines()[0])) * MB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def measure_batch_cost(run: Callable[[int], Any], io_bytes_per_tile: float, *,
                       memory: Callable[[], Optional[int]] = rss_bytes,
                       source: str = "rss") -> BatchCost:
    """Measures the model's memory cost with two calls: ``run(1)`` then ``run(2)`` (a batch of
    one tile, then of two), reading ``memory()`` before and after each.

    ``fixed`` is the growth over the first call (weights touched, workspace for one tile, the
    runtime's first-run allocations: an over-estimate of the fixed part, which errs on the
    safe side). ``per_tile`` is the growth from the first to the second call (the arena grows
    for the second tile), never less than ``io_bytes_per_tile`` (the tile's input and output
    arrays, twice for the two feeder buffers). When ``memory()`` gives None, the cost is the
    I/O estimate alone (``source="io"``).
    """
    m0 = memory()
    run(1)
    m1 = memory()
    run(2)
    m2 = memory()
    io = float(io_bytes_per_tile)
    if m0 is None or m1 is None or m2 is None:
        return BatchCost(0.0, io, "io")
    fixed = float(max(0, m1 - m0))
    per_tile = max(float(m2 - m1), io)
    return BatchCost(fixed, per_tile, source)


class BatchFeeder:
    """Preprocesses the tiles of one image, batch by batch, into reusable buffers.

    Iterating yields ``(b, batch, count)``: the batch index, the (batch_size, 3, h, w) buffer
    holding it (only the first ``count`` items are tiles of this batch; the rest hold stale
    data) and the number of tiles. Batch ``b`` goes to buffer ``b % num_buffers``; when batch
    ``b`` is yielded the C++ core is already filling batch ``b + 1`` in a background thread,
    so batch ``b``'s buffer is valid until ``num_buffers - 1`` more batches have been yielded
    (with the default two buffers: until the next iteration).

    Args:
        image: (H, W, 3) uint8 BGR; must not change while the feeder lives.
        tiles: (T, 4) integer xyxy tiles inside the image.
        config: how tiles become model input (:class:`fissure.PreprocessConfig`).
        batch_size: tiles per batch (the buffers' first dimension).
        num_threads: threads of the core's pool for each batch (-1: all cores).
        num_buffers: how many batch buffers (>= 2); ``k + 1`` to keep ``k`` batches in
            flight in an asynchronous model while the next one is prepared.
    """

    def __init__(self, image: Any, tiles: Any, config: Optional[PreprocessConfig] = None, *,
                 batch_size: int = 1, num_threads: int = -1, num_buffers: int = 2) -> None:
        cfg = config if config is not None else PreprocessConfig()
        if not isinstance(cfg, PreprocessConfig):
            raise TypeError(f"config: expected a PreprocessConfig, got {type(cfg).__name__}")
        bs = _positive_int(batch_size, "batch_size")
        nbuf = _positive_int(num_buffers, "num_buffers")
        if nbuf < 2:
            raise ValueError(f"num_buffers: expected >= 2, got {num_buffers!r}")
        n = check_num_threads(num_threads)
        img = as_image(image)
        t = _as_tiles(tiles, img.shape[0], img.shape[1])
        if t.shape[0] == 0:
            raise ValueError("tiles: expected at least one tile")
        h, w = cfg.input_size
        dtype = np.dtype(cfg.dtype)
        self.config = cfg
        self.tiles = t
        nbuf = min(nbuf, max(2, -(-t.shape[0] // bs)))  # no more buffers than batches
        self.slots = tuple(np.empty((bs, 3, h, w), dtype) for _ in range(nbuf))
        self._f = _core.BatchFeeder(
            img, t, self.slots[0], self.slots[1], bs, h, w, mode=cfg.mode,
            interpolation=cfg.interpolation, pad_value=cfg.pad_value, rgb=cfg.rgb,
            scale=cfg.scale, mean=cfg.mean, std=cfg.std, num_threads=n,
            more_slots=list(self.slots[2:]))

    @property
    def batch_size(self) -> int:
        return int(self._f.batch_size)

    @property
    def num_buffers(self) -> int:
        """How many batch buffers the feeder fills round-robin (at most one per batch, at
        least two)."""
        return len(self.slots)

    @property
    def num_batches(self) -> int:
        return int(self._f.num_batches)

    def batch_tiles(self, b: int) -> np.ndarray:
        """The (count, 4) tiles of batch ``b``."""
        lo = b * self.batch_size
        return self.tiles[lo: lo + int(self._f.batch_count(b))]

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, int]]:
        f = self._f
        f.start(0)
        for b in range(self.num_batches):
            slot = f.wait(b)
            f.start(b + 1)  # into the buffer of batch b + 1 - num_buffers, which is consumed
            yield b, self.slots[slot], int(f.batch_count(b))

    def close(self) -> None:
        """Waits for background work and lets go of the image."""
        self._f.close()

    def __enter__(self) -> BatchFeeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
