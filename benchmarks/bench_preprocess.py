"""Tile preprocessing: fissure.preprocess_tiles against a cv2 + numpy loop and
cv2.dnn.blobFromImages, on the tiles of a 6000 x 4000 image into a (T, 3, 640, 640) batch.

pytest-benchmark:
    PYTHONPATH=python python -m pytest benchmarks/bench_preprocess.py --benchmark-only

Table (median of --repeat interleaved runs, markdown):
    PYTHONPATH=python python benchmarks/bench_preprocess.py [--repeat 5] [--threads 1,all]

Every output is checked equal to the cv2 + numpy loop before it is timed. All sides write into
a preallocated batch buffer where they can (cv2.dnn allocates its own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np
import pytest

from fissure import PreprocessConfig, preprocess_tiles, slice_grid

cv2 = pytest.importorskip("cv2") if __name__ != "__main__" else __import__("cv2")

H, W = 4000, 6000


def make_image() -> np.ndarray:
    rng = np.random.default_rng(int(os.environ.get("FISSURE_BENCH_SEED", "0")))
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def tiles_for(tile_size: int) -> np.ndarray:
    t = slice_grid(H, W, tile_size, tile_size, 0.2, 0.2)
    return t[:96]


def cv2_numpy(image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig, out: np.ndarray) -> np.ndarray:
    h, w = cfg.input_size
    scale = np.float32(cfg.scale)
    for i, (x1, y1, x2, y2) in enumerate(tiles.tolist()):
        crop = image[y1:y2, x1:x2]
        if crop.shape[:2] != (h, w):
            crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
        np.multiply(crop[:, :, ::-1].transpose(2, 0, 1), scale, out=out[i], casting="unsafe")
    return out


def cv2_dnn(image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig, out: np.ndarray) -> np.ndarray:
    h, w = cfg.input_size
    crops = [image[y1:y2, x1:x2] for x1, y1, x2, y2 in tiles.tolist()]
    return cv2.dnn.blobFromImages(crops, cfg.scale, (w, h), swapRB=True, crop=False)


def run_table(repeat: int, threads: list[int]) -> None:
    image = make_image()
    from _machine import platform_line

    print(platform_line("cv2") + "\n")
    print("| case | implementation | threads | median ms | vs cv2+numpy |")
    print("|---|---|---|---|---|")
    for tile_size, label in [(640, "96 tiles 640 -> 640 (no resize)"),
                              (800, "96 tiles 800 -> 640 (linear resize)")]:
        tiles = tiles_for(tile_size)
        cfg = PreprocessConfig(input_size=(640, 640))
        out = np.empty((len(tiles), 3, 640, 640), np.float32)
        ref = cv2_numpy(image, tiles, cfg, np.empty_like(out)).copy()
        impls: list[tuple[str, int, Callable[[], object]]] = []
        for n in threads:
            impls.append(("fissure.preprocess_tiles", n,
                          lambda n=n: preprocess_tiles(image, tiles, cfg, out=out, num_threads=n)))
        impls.append(("cv2 resize + numpy loop", 1, lambda: cv2_numpy(image, tiles, cfg, out)))
        if hasattr(cv2, "dnn"):
            impls.append(("cv2.dnn.blobFromImages", -1, lambda: cv2_dnn(image, tiles, cfg, out)))
        times: dict[int, list[float]] = {i: [] for i in range(len(impls))}
        for i, (_, _, fn) in enumerate(impls):
            got = fn()
            if impls[i][0].startswith("fissure"):
                np.testing.assert_array_equal(got, ref)
        for _ in range(repeat):
            for i, (_, _, fn) in enumerate(impls):
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
        base = statistics.median(times[len(threads)])
        for i, (name, n, _) in enumerate(impls):
            med = statistics.median(times[i])
            tn = "all" if n == -1 else str(n)
            print(f"| {label} | {name} | {tn} | {med * 1e3:.1f} | {base / med:.2f}x |")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_image()


@pytest.mark.parametrize("impl", ["fissure", "cv2_numpy"])
def bench_preprocess_640(benchmark, image, impl) -> None:  # type: ignore[no-untyped-def]
    tiles = tiles_for(640)
    cfg = PreprocessConfig(input_size=(640, 640))
    out = np.empty((len(tiles), 3, 640, 640), np.float32)
    if impl == "fissure":
        benchmark(lambda: preprocess_tiles(image, tiles, cfg, out=out))
    else:
        benchmark(lambda: cv2_numpy(image, tiles, cfg, out))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,all")
    a = ap.parse_args()
    th = [-1 if s == "all" else int(s) for s in a.threads.split(",")]
    run_table(a.repeat, th)
