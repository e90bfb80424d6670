"""Specular mask: fissure's fused kernel against OpenCV's cvtColor(BGR2HSV) + inRange (and +
cv2.dilate), and against a plain copy of the image (the memory-bandwidth floor), side by side.

pytest-benchmark:
    PYTHONPATH=python python -m pytest benchmarks/bench_specular.py --benchmark-only

Table (median of --repeat interleaved runs, markdown):
    PYTHONPATH=python python benchmarks/bench_specular.py [--sizes 12,24] [--threads 1,all]
        [--dilate 5] [--repeat 15]

Each configuration is checked bit for bit against OpenCV before it is timed. Both sides
allocate their output on every call (cv2 also allocates the HSV image); the copy writes into
a preallocated array (np.copyto, single-threaded). Env knobs: FISSURE_BENCH_SEED (image seed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np
import pytest

import fissure
from fissure import _core

from _machine import platform_line

cv2 = pytest.importorskip("cv2") if __name__ != "__main__" else __import__("cv2")

SIZES = {12: (3000, 4000), 24: (4000, 6000)}  # megapixels -> (H, W)
DILATE = 5


def make_image(h: int, w: int, seed: int | None = None) -> np.ndarray:
    """A product-photo-like BGR image: smooth shading, sensor noise, a few hundred specular
    highlights (white, low-saturation cores with a soft halo): about 1% of the pixels are glare."""
    rng = np.random.default_rng(int(os.environ.get("FISSURE_BENCH_SEED", "7")) if seed is None
                                else seed)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    shade = 90 + 60 * np.sin(3 * xx + 2 * yy) * np.cos(2 * yy - xx)
    img = np.empty((h, w, 3), np.uint8)
    for c, tint in enumerate((1.0, 0.9, 0.8)):
        img[..., c] = np.clip(shade * tint + rng.normal(0, 6, (h, w)).astype(np.float32), 0, 255)
    n = int(h * w * 0.01 / 250)  # glare cores of ~250 px
    cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
    rad = rng.uniform(5, 15, n)
    for y, x, r in zip(cy, cx, rad):
        y0, y1, x0, x1 = max(0, y - 16), min(h, y + 17), max(0, x - 16), min(w, x + 17)
        d = np.hypot(*np.mgrid[y0 - y:y1 - y, x0 - x:x1 - x])
        glow = np.clip((r + 4 - d) / 6, 0, 1)[..., None]  # white core, 6 px soft edge
        patch = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = np.clip(patch * (1 - glow) + 254 * glow, 0, 255).astype(np.uint8)
    return img


def _kernel(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def opencv_fn(img: np.ndarray, dilate: int) -> Callable[[], np.ndarray]:
    k = _kernel(dilate) if dilate else None

    def run() -> np.ndarray:
        m = cv2.inRange(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), (0, 0, 241), (180, 29, 255))
        return cv2.dilate(m, k) if k is not None else m

    return run


def fissure_fn(img: np.ndarray, dilate: int, threads: int) -> Callable[[], np.ndarray]:
    return lambda: fissure.specular_mask(img, dilate=dilate, num_threads=threads)


def copy_fn(img: np.ndarray) -> Callable[[], np.ndarray]:
    dst = np.empty_like(img)
    return lambda: np.copyto(dst, img) or dst


def all_threads() -> int:
    return int(_core.hardware_threads())


# ---------------------------------------------------------------------------------------------
# pytest-benchmark
# ---------------------------------------------------------------------------------------------

_IMAGES: dict[int, np.ndarray] = {}


def _image(mp: int) -> np.ndarray:
    if mp not in _IMAGES:
        _IMAGES[mp] = make_image(*SIZES[mp])
    return _IMAGES[mp]


@pytest.mark.parametrize("mp", sorted(SIZES), ids=lambda m: f"{m}MP")
@pytest.mark.parametrize("threads", [1, -1], ids=["1thread", "allthreads"])
@pytest.mark.parametrize("dilate", [0, DILATE], ids=["mask", f"mask+dilate{DILATE}"])
@pytest.mark.parametrize("impl", ["fissure", "opencv", "copy"])
def bench_specular(benchmark, impl: str, dilate: int, threads: int, mp: int) -> None:  # noqa: ANN001
    if impl == "copy" and (dilate or threads != 1):
        pytest.skip("one copy baseline per size")
    img = _image(mp)
    n = threads if threads > 0 else all_threads()
    benchmark.group = f"specular {mp}MP dilate={dilate} threads={n}"
    if impl == "opencv":
        cv2.setNumThreads(n)
        fn = opencv_fn(img, dilate)
    elif impl == "fissure":
        fn = fissure_fn(img, dilate, n)
        want = opencv_fn(img, dilate)() > 0
        assert np.array_equal(fn(), want)
    else:
        fn = copy_fn(img)
    benchmark(fn)


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _medians(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time (ms) of each function; the functions run interleaved, round-robin, so
    a slow spell on a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():  # warm up (page faults, thread pools)
        f()
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="12,24", help="megapixels: 12 (4000x3000), 24 (6000x4000)")
    ap.add_argument("--threads", default="1,all", help="comma list of counts, 'all' = every core")
    ap.add_argument("--dilate", type=int, default=DILATE, help="radius for the +dilate rows")
    ap.add_argument("--repeat", type=int, default=15, help="timed runs per configuration")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = [all_threads() if t == "all" else int(t) for t in args.threads.split(",")]

    print(platform_line("cv2", simd=_core.specular_simd_level()))
    print()
    print("| image | threads | op | OpenCV ms | fissure ms | speed-up | copy ms | fissure / copy |")
    print("|---|---|---|---|---|---|---|---|")
    for mp in sizes:
        img = make_image(*SIZES[mp])
        h, w = img.shape[:2]
        for n in threads:
            cv2.setNumThreads(n)
            for r in (0, args.dilate):
                ours, theirs = fissure_fn(img, r, n), opencv_fn(img, r)
                if not np.array_equal(ours(), theirs() > 0):
                    raise SystemExit(f"mismatch with OpenCV at {mp} MP, dilate={r}")
                t = _medians({"cv": theirs, "ours": ours, "copy": copy_fn(img)}, args.repeat)
                op = "mask" if r == 0 else f"mask + dilate r={r}"
                print(f"| {mp} MP ({w}x{h}) | {n} | {op} | {t['cv']:.1f} | {t['ours']:.1f} | "
                      f"{t['cv'] / t['ours']:.1f}x | {t['copy']:.1f} | "
                      f"{t['ours'] / t['copy']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
