"""Greedy NMM with instance masks: 2k masked detections on a 6000x4000 image.

fissure merges box-local bitmaps (raster OR over the union box); SAHI merges COCO polygons
with shapely unions; supervision needs (N, H, W) masks (48 GB here: skipped) or its
crop-RLE CompactMask. The drop-ins are timed too: they take and return the peers' own
representations, conversions included.
"""

from __future__ import annotations

import pytest

import _impls
from _harness import run_benchmark

CASES = _impls.SUITES["masks"][2]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", _impls.mask_impls(), ids=lambda i: i.key)
def bench_masks(benchmark, impl, case):
    run_benchmark(benchmark, "masks", impl, case)
