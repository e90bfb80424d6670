"""The scheduler: double-buffered batch feeding equals one preprocess_tiles call, the budget
rule equals its formula, and cost measurement reads memory as documented."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import fissure
from fissure.scheduler import (
    BatchCost,
    BatchFeeder,
    choose_batch_size,
    measure_batch_cost,
    rss_bytes,
)

MB = 1 << 20


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 7, 100])
@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_feeder_batches_equal_one_preprocess_call(batch_size: int, mode: str) -> None:
    img = _image(700, 1100)
    tiles = fissure.slice_grid(700, 1100, 256, 300, 0.2, 0.1)
    cfg = fissure.PreprocessConfig(input_size=(128, 160), mode=mode, mean=(0.4, 0.5, 0.6),
                                   std=(0.2, 0.3, 0.25))
    ref = fissure.preprocess_tiles(img, tiles, cfg)
    got, seen_tiles = [], []
    with BatchFeeder(img, tiles, cfg, batch_size=batch_size) as f:
        assert f.num_batches == math.ceil(len(tiles) / batch_size)
        for b, buf, count in f:
            assert buf.shape == (batch_size, 3, 128, 160)
            assert count == min(batch_size, len(tiles) - b * batch_size)
            got.append(buf[:count].copy())
            seen_tiles.append(f.batch_tiles(b))
    np.testing.assert_array_equal(np.concatenate(got), ref)
    np.testing.assert_array_equal(np.concatenate(seen_tiles), tiles)


def test_feeder_alternates_buffers_and_prefetches() -> None:
    img = _image(600, 600)
    tiles = fissure.slice_grid(600, 600, 200, 200, 0.0, 0.0)  # 9 tiles
    cfg = fissure.PreprocessConfig(input_size=(200, 200), mode="none")
    ref = fissure.preprocess_tiles(img, tiles, cfg)
    with BatchFeeder(img, tiles, cfg, batch_size=2) as f:
        slots = []
        for b, buf, count in f:
            slots.append(0 if buf is f.slots[0] else 1)
            # by the time the caller holds batch b, batch b + 1 is being written into the
            # other buffer; after wait() it is complete and equal to the reference
            np.testing.assert_array_equal(buf[:count], ref[2 * b: 2 * b + count])
        assert slots == [0, 1, 0, 1, 0]


def test_feeder_float16_equals_preprocess() -> None:
    img = _image(300, 500, 3)
    tiles = fissure.slice_grid(300, 500, 160, 160)
    cfg = fissure.PreprocessConfig(input_size=(96, 96), dtype="float16")
    ref = fissure.preprocess_tiles(img, tiles, cfg)
    out = np.concatenate([buf[:c].copy() for _, buf, c in BatchFeeder(img, tiles, cfg, batch_size=4)])
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, ref)


def test_feeder_reads_strided_views_in_place() -> None:
    big = _image(500, 800, 5)
    view = big[50:450, 100:700]
    tiles = fissure.slice_grid(400, 600, 128, 128)
    cfg = fissure.PreprocessConfig(input_size=(128, 128), mode="none")
    ref = fissure.preprocess_tiles(np.ascontiguousarray(view), tiles, cfg)
    out = np.concatenate([buf[:c].copy() for _, buf, c in BatchFeeder(view, tiles, cfg, batch_size=3)])
    np.testing.assert_array_equal(out, ref)


def test_feeder_errors() -> None:
    img = _image(100, 100)
    cfg = fissure.PreprocessConfig(input_size=(64, 64))
    with pytest.raises(ValueError, match="batch_size"):
        BatchFeeder(img, [[0, 0, 50, 50]], cfg, batch_size=0)
    with pytest.raises(ValueError, match="at least one tile"):
        BatchFeeder(img, np.zeros((0, 4), np.int64), cfg)
    with pytest.raises(ValueError, match="tile"):
        BatchFeeder(img, [[0, 0, 150, 50]], cfg)
    with pytest.raises(TypeError, match="uint8"):
        BatchFeeder(img.astype(np.float32), [[0, 0, 50, 50]], cfg)
    with pytest.raises(TypeError, match="PreprocessConfig"):
        BatchFeeder(img, [[0, 0, 50, 50]], {"input_size": 64})  # type: ignore[arg-type]
    # mode 'none' with a tile of the wrong size is refused up front, not in the thread
    with pytest.raises(ValueError):
        BatchFeeder(img, [[0, 0, 50, 50]], fissure.PreprocessConfig(input_size=(64, 64), mode="none"))


def test_native_feeder_protocol_errors() -> None:
    from fissure import _core

    img = _image(64, 64)
    tiles = np.array([[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 32, 64]], np.int64)
    s0 = np.empty((1, 3, 16, 16), np.float32)
    s1 = np.empty((1, 3, 16, 16), np.float32)
    f = _core.BatchFeeder(img, tiles, s0, s1, 1, 16, 16)
    f.start(0)
    with pytest.raises(ValueError, match="still holds batch 0"):
        f.start(2)  # same buffer as batch 0, which nobody consumed
    assert f.wait(0) == 0
    with pytest.raises(ValueError, match="expected 0 <= b < 3"):
        f.wait(3)
    assert f.wait(1) == 1  # never started: runs on the caller
    f.start(5)  # past the end: a no-op
    f.close()
    with pytest.raises(ValueError, match="closed"):
        f.wait(2)
    with pytest.raises(ValueError, match="overlap"):
        _core.BatchFeeder(img, tiles, s0, s0, 1, 16, 16)
    with pytest.raises(ValueError, match="shape"):
        _core.BatchFeeder(img, tiles, s0, np.empty((2, 3, 16, 16), np.float32), 1, 16, 16)
    with pytest.raises(TypeError, match="dtype of slot0"):
        _core.BatchFeeder(img, tiles, s0, np.empty((1, 3, 16, 16), np.float16), 1, 16, 16)


def test_feeders_in_parallel_threads() -> None:
    img = _image(512, 512, 7)
    tiles = fissure.slice_grid(512, 512, 128, 128)
    cfg = fissure.PreprocessConfig(input_size=(64, 64))
    ref = fissure.preprocess_tiles(img, tiles, cfg)
    results: list = [None] * 4

    def work(i: int) -> None:
        results[i] = np.concatenate([b[:c].copy() for _, b, c in BatchFeeder(img, tiles, cfg, batch_size=i + 1)])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, ref)


@pytest.mark.parametrize("budget,fixed,per_tile,max_batch,n", [
    (2048, 48 * MB, 100 * MB, 64, 96),
    (2048, 0, 0, 8, 96),
    (2048, 0, 0, 8, 3),
    (100, 200 * MB, 10 * MB, 8, 96),   # over budget before the first tile: still 1
    (512, 12.5 * MB, 33.3 * MB, 16, 1000),
    (1, 0, 1, 4, 10),
    (2048, 0, 1, 4, 0),
])
def test_choose_batch_size_formula(budget: float, fixed: float, per_tile: float, max_batch: int,
                                   n: int) -> None:
    expect = max_batch
    if per_tile > 0:
        expect = int(min(max(math.floor((budget * MB - fixed) / per_tile), 1), max_batch))
    if n >= 1:
        expect = min(expect, n)
    assert choose_batch_size(budget, BatchCost(fixed, per_tile), max_batch, n) == max(expect, 1)


def test_choose_batch_size_errors() -> None:
    with pytest.raises(ValueError, match="vram_budget_mb"):
        choose_batch_size(0, BatchCost(0, 1), 4, 10)
    with pytest.raises(ValueError, match="vram_budget_mb"):
        choose_batch_size(float("nan"), BatchCost(0, 1), 4, 10)
    with pytest.raises(ValueError, match="max_batch"):
        choose_batch_size(10, BatchCost(0, 1), 0, 10)
    with pytest.raises(ValueError, match="finite"):
        choose_batch_size(10, BatchCost(0, float("inf")), 4, 10)


def test_measure_batch_cost_reads_memory_around_each_run() -> None:
    readings = iter([1000 * MB, 1300 * MB, 1350 * MB])
    calls = []
    cost = measure_batch_cost(calls.append, 5 * MB, memory=lambda: next(readings))
    assert calls == [1, 2]
    assert cost == BatchCost(300 * MB, 50 * MB, "rss")
    # growth below the I/O floor: the floor wins
    readings = iter([0, 10, 11])
    assert measure_batch_cost(lambda n: None, 7 * MB, memory=lambda: next(readings)).per_tile_bytes == 7 * MB
    # nothing readable: the I/O estimate alone
    cost = measure_batch_cost(lambda n: None, 3.0, memory=lambda: None)
    assert cost == BatchCost(0.0, 3.0, "io")


def test_rss_bytes_sees_an_allocation() -> None:
    import mmap

    # a fresh anonymous mapping (not memory the allocator already holds), every page written
    block = mmap.mmap(-1, 64 * MB)
    try:
        before = rss_bytes()
        view = np.frombuffer(block, np.uint8)
        view[::4096] = 1
        after = rss_bytes()
        del view
    finally:
        block.close()
    assert after - before >= 48 * MB


@pytest.mark.parametrize("num_buffers", [2, 3, 4, 6])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_feeder_buffers_stay_valid_for_num_buffers_minus_one_batches(num_buffers: int,
                                                                     batch_size: int) -> None:
    """With n buffers, batch b's buffer (batch b % n) still holds batch b when n - 1 more batches
    have been yielded (what keeps n - 1 batches in flight): checked against one
    preprocess_tiles call on the same tiles, the independent reference."""
    img = _image(600, 900, 3)
    tiles = fissure.slice_grid(600, 900, 200, 200, 0.2, 0.2)
    cfg = fissure.PreprocessConfig(input_size=(64, 64), mean=(0.3, 0.4, 0.5), std=(0.2, 0.2, 0.3))
    ref = fissure.preprocess_tiles(img, tiles, cfg)
    held: list = []
    with BatchFeeder(img, tiles, cfg, batch_size=batch_size, num_buffers=num_buffers) as f:
        nb = -(-len(tiles) // batch_size)
        assert f.num_buffers == min(num_buffers, max(2, nb))
        for b, buf, c in f:
            assert buf is f.slots[b % f.num_buffers]
            held.append((b, buf, c))
            held = held[-(f.num_buffers - 1):]  # the batches a caller may still have in flight
            for hb, hbuf, hc in held:
                lo = hb * batch_size
                np.testing.assert_array_equal(hbuf[:hc], ref[lo:lo + hc])


def test_feeder_num_buffers_errors_and_the_native_slots() -> None:
    from fissure import _core

    img = _image(64, 64)
    cfg = fissure.PreprocessConfig(input_size=(16, 16))
    for bad in (0, 1, -2, True, 2.0, "3"):
        with pytest.raises(ValueError, match="num_buffers"):
            BatchFeeder(img, [[0, 0, 32, 32]], cfg, num_buffers=bad)  # type: ignore[arg-type]
    tiles = np.array([[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 32, 64], [32, 32, 64, 64]], np.int64)
    s = [np.empty((1, 3, 16, 16), np.float32) for _ in range(3)]
    f = _core.BatchFeeder(img, tiles, s[0], s[1], 1, 16, 16, more_slots=[s[2]])
    assert f.num_slots == 3
    f.start(0)
    f.start(1)
    f.start(2)
    with pytest.raises(ValueError, match="still holds batch 0"):
        f.start(3)  # buffer 0 holds batch 0, not consumed yet
    assert [f.wait(b) for b in range(3)] == [0, 1, 2]
    assert f.wait(3) == 0
    f.close()
    with pytest.raises(ValueError, match="overlap"):
        _core.BatchFeeder(img, tiles, s[0], s[1], 1, 16, 16, more_slots=[s[0]])
    big = np.empty((2, 3, 16, 16), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        _core.BatchFeeder(img, tiles, big[:1], s[1], 1, 16, 16, more_slots=[big[:1]])
    with pytest.raises(ValueError, match="shape"):
        _core.BatchFeeder(img, tiles, s[0], s[1], 1, 16, 16, more_slots=[big])
    with pytest.raises(TypeError, match="dtype of slot0"):
        _core.BatchFeeder(img, tiles, s[0], s[1], 1, 16, 16,
                          more_slots=[np.empty((1, 3, 16, 16), np.float16)])
