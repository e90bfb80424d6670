"""Tile preprocessing: fissure.preprocess_tiles against cv2.resize + the same numpy
normalisation, on the tiles of a 6000 x 4000 image into a (T, 3, 640, 640) float32 batch.

pytest-benchmark:
    PYTHONPATH=python python -m pytest benchmarks/bench_preprocess.py --benchmark-only

Table (median of --repeat interleaved rounds, markdown):
    PYTHONPATH=python python benchmarks/bench_preprocess.py [--repeat 7] [--threads 1,all]
        [--cases area]

Cases: 640 -> 640 (no resize), 1024 -> 640 and 800 -> 640 (shrink), 320 -> 640 (enlarge),
960 x 720 letterboxed into 640 x 640, each with INTER_LINEAR, and the two shrinks with
INTER_AREA. "1" runs both sides on one thread pinned to one core (cv2.setNumThreads(1),
num_threads=1, sched_setaffinity); "all" lets both use every core (cv2's default threads,
num_threads=-1). Every fissure output is checked equal to the cv2 + numpy output first; both
sides write into a preallocated batch buffer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np
import pytest

from fissure import PreprocessConfig, _core, preprocess_tiles, slice_grid

cv2 = pytest.importorskip("cv2") if __name__ != "__main__" else __import__("cv2")

H, W = 4000, 6000
N_TILES = 96
CV_INTERP = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}


def make_image() -> np.ndarray:
    rng = np.random.default_rng(int(os.environ.get("FISSURE_BENCH_SEED", "0")))
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def tiles_for(tile_size: int, tile_w: int = 0) -> np.ndarray:
    tw = tile_w or tile_size
    return slice_grid(H, W, tile_size, tw, 0.2, 0.2)[:N_TILES]


def cv2_numpy(image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig, out: np.ndarray) -> np.ndarray:
    """cv2.resize (or Ultralytics' letterbox with cv2.resize) + numpy float32 normalisation."""
    h, w = cfg.input_size
    interp = CV_INTERP[cfg.interpolation]
    scale = np.float32(cfg.scale)
    for i, (x1, y1, x2, y2) in enumerate(tiles.tolist()):
        crop = image[y1:y2, x1:x2]
        if cfg.mode == "letterbox":
            _r, nw, nh, px, py = _core.letterbox_params(y2 - y1, x2 - x1, h, w)
            if (nh, nw) != crop.shape[:2]:
                crop = cv2.resize(crop, (nw, nh), interpolation=interp)
            crop = cv2.copyMakeBorder(crop, py, h - nh - py, px, w - nw - px,
                                      cv2.BORDER_CONSTANT, value=(cfg.pad_value,) * 3)
        elif crop.shape[:2] != (h, w):
            crop = cv2.resize(crop, (w, h), interpolation=interp)
        np.multiply(crop[:, :, ::-1].transpose(2, 0, 1), scale, out=out[i], casting="unsafe")
    return out


CASES = [
    ("640 -> 640 (no resize)", 640, 0, "resize", "linear"),
    ("1024 -> 640 linear", 1024, 0, "resize", "linear"),
    ("800 -> 640 linear", 800, 0, "resize", "linear"),
    ("320 -> 640 linear (enlarge)", 320, 0, "resize", "linear"),
    ("960x720 letterbox -> 640 linear", 720, 960, "letterbox", "linear"),
    ("1024 -> 640 area", 1024, 0, "resize", "area"),
    ("800 -> 640 area", 800, 0, "resize", "area"),
]


def run_table(repeat: int, threads: list[int], only: str = "") -> None:
    image = make_image()
    from _machine import platform_line

    all_cpus = os.sched_getaffinity(0)
    default_cv_threads = cv2.getNumThreads()
    print(platform_line("cv2") + f"; fissure kernels: {_core.preprocess_simd_level()}\n")
    print("| case | threads | fissure ms | cv2.resize + numpy ms | speed-up |")
    print("|---|---|---:|---:|---:|")
    for label, th, tw, mode, interp in CASES:
        if only and only not in label:
            continue
        tiles = tiles_for(th, tw)
        cfg = PreprocessConfig(input_size=(640, 640), mode=mode, interpolation=interp)
        out = np.empty((len(tiles), 3, 640, 640), np.float32)
        ref = np.empty_like(out)
        for n in threads:
            if n == 1:
                os.sched_setaffinity(0, {min(all_cpus)})
                cv2.setNumThreads(1)
            else:
                os.sched_setaffinity(0, all_cpus)
                cv2.setNumThreads(default_cv_threads)
            impls: list[Callable[[], object]] = [
                lambda n=n: preprocess_tiles(image, tiles, cfg, out=out, num_threads=n),
                lambda: cv2_numpy(image, tiles, cfg, ref)]
            for fn in impls:
                fn()
            np.testing.assert_array_equal(out, ref)
            times: list[list[float]] = [[], []]
            for _ in range(repeat):
                for i, fn in enumerate(impls):
                    t0 = time.perf_counter()
                    fn()
                    times[i].append(time.perf_counter() - t0)
            ours, theirs = (statistics.median(t) for t in times)
            tn = "all" if n == -1 else str(n)
            print(f"| {label} | {tn} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | "
                  f"{theirs / ours:.2f}x |", flush=True)
    os.sched_setaffinity(0, all_cpus)
    cv2.setNumThreads(default_cv_threads)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_image()


@pytest.mark.parametrize("impl", ["fissure", "cv2_numpy"])
@pytest.mark.parametrize("tile,interp", [(640, "linear"), (800, "linear"), (800, "area")])
def bench_preprocess_640(benchmark, image, impl, tile, interp) -> None:  # type: ignore[no-untyped-def]
    tiles = tiles_for(tile)
    cfg = PreprocessConfig(input_size=(640, 640), interpolation=interp)
    out = np.empty((len(tiles), 3, 640, 640), np.float32)
    if impl == "fissure":
        benchmark(lambda: preprocess_tiles(image, tiles, cfg, out=out))
    else:
        benchmark(lambda: cv2_numpy(image, tiles, cfg, out))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", default="1,all")
    ap.add_argument("--cases", default="", help="only the cases whose label contains this")
    a = ap.parse_args()
    th = [-1 if s == "all" else int(s) for s in a.threads.split(",")]
    run_table(a.repeat, th, a.cases)
