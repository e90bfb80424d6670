"""Shared machinery of the benchmark suites (pytest-benchmark): rounds, extra_info.

Each benchmark prepares one implementation's inputs outside the timing, runs it for a
fixed number of rounds (chosen per case so that the whole suite stays within minutes on two
cores: slow peers get fewer rounds, never smaller inputs) and stores in ``extra_info`` what
the tables need: suite, case, op, library, whether it is a peer, and the output count.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import _impls  # noqa: E402

#: Timed rounds by case, then overrides for slow implementations (seconds per call in
#: the comment, as measured on the 2-core reference machine).
ROUNDS = {"2k": 15, "20k": 7, "crowded-20k": 7, "100k": 3, "masked-2k": 5}
ROUNDS_OVERRIDE = {
    ("cv2-nms", "20k"): 2,  # ~1.5 s
    ("cv2-nms", "crowded-20k"): 2,  # ~0.6 s
    ("cv2-nms", "100k"): 1,  # ~45 s: quadratic
    ("sv-nms", "2k"): 5,  # ~0.7 s
    ("sv-nmm", "20k"): 2,  # ~1.5 s
    ("sv-nmm", "100k"): 1,  # ~18 s
    ("sahi-objects", "20k"): 3,
    ("sahi-objects", "crowded-20k"): 3,
    ("sahi-objects", "100k"): 2,
    ("sv-detections-nms", "2k"): 5,  # ~0.7 s
    ("sv-detections-nmm", "20k"): 2,  # ~2 s
    ("sv-detections-nmm", "crowded-20k"): 3,
    ("sv-detections-nmm", "100k"): 1,  # ~25 s
    ("sahi-polygons", "masked-2k"): 3,  # ~1 s
    ("sv-compact", "masked-2k"): 2,  # ~3 s
}
QUICK = os.environ.get("FISSURE_BENCH_QUICK") == "1"  # one round each: smoke-test the suite


def rounds_for(key: str, case: str) -> int:
    if QUICK:
        return 1
    return ROUNDS_OVERRIDE.get((key, case), ROUNDS.get(case, 3))


def run_benchmark(benchmark: Any, suite: str, impl: _impls.Impl, case_name: str) -> None:
    case = _impls.SUITES[suite][1](case_name)
    reason = impl.skip(case)
    if reason:
        pytest.skip(reason)
    args = impl.prepare(case)
    rounds = rounds_for(impl.key, case_name)
    benchmark.group = f"{suite} | {case_name} | {impl.op}"
    benchmark.extra_info.update(
        suite=suite, case=case_name, n=len(case), op=impl.op, impl=impl.key,
        library=impl.library, peer=impl.peer,
    )
    result = benchmark.pedantic(
        impl.run, args=(args,), rounds=rounds, iterations=1,
        warmup_rounds=1 if rounds >= 3 else 0,
    )
    benchmark.extra_info["count"] = int(impl.count(result))
