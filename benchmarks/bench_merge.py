"""Box merging on the same tile predictions: fissure vs SAHI, supervision and OpenCV.

Cases (benchmarks/_data.py): 2k, 20k and 100k detections from 96 overlapping 640-px tiles
of a 6000x4000 image, 5 classes, plus a crowded 20k case where every box overlaps hundreds
of others. Ops: NMS (IoU 0.5), greedy NMM (IoS 0.5, SAHI's default), and SAHI's object-level
GreedyNMM postprocess (ObjectPrediction lists in and out); all per class.
"""

from __future__ import annotations

import pytest

import _impls
from _harness import run_benchmark

CASES = _impls.SUITES["merge"][2]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", _impls.merge_impls(), ids=lambda i: i.key)
def bench_merge(benchmark, impl, case):
    run_benchmark(benchmark, "merge", impl, case)
