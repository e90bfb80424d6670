"""The merge speed goals, measured interleaved: fissure against SAHI's fastest backend.

    PYTHONPATH=python python benchmarks/bench_merge_goals.py [--rounds 9] [--cases 20k,100k,crowded-20k]

For each case (benchmarks/_data.py, the inputs of bench_merge.py) and op (NMS IoU 0.5 and
greedy NMM IoS 0.5, per class), every round times one call of each implementation: fissure
with 1 thread and with all threads, SAHI 0.12's ``batched_nms`` / ``batched_greedy_nmm``
with its numpy and its numba backends. The order of the implementations rotates from round
to round, so that a busy machine slows every side alike; the table shows medians. The
ratio is the faster SAHI backend's median over fissure's. Before timing, fissure's answer
is checked against SAHI's (NMS: the same kept indices in the same order; greedy NMM: the
same keepers with the same members).

Prints a markdown table (goal: at least 20x, each op and case).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import _data  # noqa: E402
from _machine import platform_line  # noqa: E402

CASES = {"20k": (20000, False), "100k": (100000, False), "crowded-20k": (20000, True)}
GOAL = 20.0


def _sahi(op: str, backend: str, arr: np.ndarray):
    from sahi.postprocess import combine
    from sahi.postprocess.backends import set_postprocess_backend

    fn = combine.batched_nms if op == "nms" else combine.batched_greedy_nmm
    metric = "IOU" if op == "nms" else "IOS"

    def run():
        set_postprocess_backend(backend)
        return fn(arr, metric, 0.5)

    run()  # numba: load the JIT cache outside the timing
    return run


def _fissure(op: str, c, threads: int):
    import fissure

    if op == "nms":
        return lambda: fissure.nms(c.boxes, c.scores, c.class_ids, match_threshold=0.5,
                                   match_metric="iou", num_threads=threads)
    return lambda: fissure.greedy_nmm(c.boxes, c.scores, c.class_ids, match_threshold=0.5,
                                      match_metric="ios", num_threads=threads)


def _check(op: str, ours, theirs) -> None:
    if op == "nms":
        assert np.asarray(ours).tolist() == [int(i) for i in theirs], "NMS differs from SAHI"
        return
    want = {int(k): sorted(int(v) for v in vs) for k, vs in theirs.items()}
    got = {}
    for g, members in enumerate(ours.groups()):
        got[int(ours.keep[g])] = members.tolist()
    assert set(got) == set(want), "greedy NMM keepers differ from SAHI"
    dropped = set(ours.dropped.tolist())
    for k, cands in want.items():
        merged = [i for i in cands if i != k]
        assert sorted(got[k][1:] + [i for i in merged if i in dropped]) == sorted(merged), \
            "greedy NMM groups differ from SAHI"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--cases", default="20k,100k,crowded-20k")
    a = ap.parse_args()
    n_all = os.cpu_count() or 1
    rows = []
    t_start = time.perf_counter()
    for name in a.cases.split(","):
        n, crowded = CASES[name]
        c = _data.boxes(n, crowded)
        arr = c.sahi_array()
        for op in ("nms", "greedy_nmm"):
            impls = {
                "fissure-t1": _fissure(op, c, 1),
                f"fissure-t{n_all}": _fissure(op, c, -1),
                "sahi-numpy": _sahi(op, "numpy", arr),
                "sahi-numba": _sahi(op, "numba", arr),
            }
            _check(op, impls["fissure-t1"](), impls["sahi-numpy"]())
            _check(op, impls[f"fissure-t{n_all}"](), impls["sahi-numba"]())
            times = {k: [] for k in impls}
            keys = list(impls)
            for r in range(a.rounds):
                for k in keys[r % len(keys):] + keys[: r % len(keys)]:
                    t = time.perf_counter()
                    impls[k]()
                    times[k].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            peer = min(med["sahi-numpy"], med["sahi-numba"])
            peer_name = "numpy" if med["sahi-numpy"] <= med["sahi-numba"] else "numba"
            rows.append((name, op, med, peer, peer_name, n_all))
            print(f"{name} {op}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items()),
                  file=sys.stderr, flush=True)
    took = time.perf_counter() - t_start
    print(f"Command: `PYTHONPATH=python python benchmarks/bench_merge_goals.py --rounds {a.rounds}`"
          f" ({a.rounds} interleaved rounds, medians; took {took / 60:.1f} min)\n")
    print(platform_line("sahi", "numba"))
    print()
    print("| goal: >= 20x SAHI's fastest backend | SAHI numpy | SAHI numba | fissure 1 thread "
          f"| fissure {rows[0][5]} threads | ratio 1 thread | ratio {rows[0][5]} threads | met |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, op, med, peer, peer_name, n_all in rows:
        r1 = peer / med["fissure-t1"]
        rn = peer / med[f"fissure-t{n_all}"]
        best = max(r1, rn)
        print(f"| {name} {'NMS' if op == 'nms' else 'greedy NMM'} | {med['sahi-numpy'] * 1e3:.1f} ms "
              f"| {med['sahi-numba'] * 1e3:.1f} ms | {med['fissure-t1'] * 1e3:.2f} ms "
              f"| {med[f'fissure-t{n_all}'] * 1e3:.2f} ms | {r1:.1f}x | {rn:.1f}x "
              f"| {'met' if best >= GOAL else 'missed'} ({best:.1f}x) |")


if __name__ == "__main__":
    main()
