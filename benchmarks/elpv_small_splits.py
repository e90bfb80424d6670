"""The small ELPV test over many splits: the configuration of
tests/python/test_patchcore_elpv.py (60 training cells, 50 normal + 50 defective test cells
per type, PatchCore's defaults otherwise) on split seeds 0..N-1, with its image AUROC and that
of the naive "darker cell = defective" score: the spread docs/patchcore_elpv.md ("The test")
quotes to justify the test's floors.

    PYTHONPATH=python python benchmarks/elpv_small_splits.py 20     # ~5 min on 2 cores
"""

from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(n_seeds: int) -> None:
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import test_patchcore_elpv as t
    from bench_elpv import elpv_index

    from fissure.anomaly import PatchCore, auroc

    ds = elpv_index()
    probs, types, load = ds.probs, ds.types, ds.load

    res: dict[str, list[tuple[float, float]]] = {}
    for seed in range(n_seeds):
        t.SPLIT_SEED = seed  # split() reads the module's seed
        for ct in ("mono", "poly"):
            train, test, labels = t.split(probs, types, ct)
            imgs = load(test)
            pc = PatchCore(tile_size=None, input_size=224, coreset_ratio=0.04, seed=0,
                           num_threads=2).fit(load(train))
            got = auroc(np.array([pc.predict(i).score for i in imgs]), labels)
            naive = auroc(-np.array([i.astype(np.float64).mean() for i in imgs]), labels)
            res.setdefault(ct, []).append((got, naive))
            print(seed, ct, round(got, 4), round(naive, 4), flush=True)
    for ct, v in res.items():
        g = np.array([a for a, _ in v])
        d = np.array([a - b for a, b in v])
        print(f"{ct}: min {g.min():.3f} median {np.median(g):.3f} max {g.max():.3f}; "
              f"smallest margin over the darkness score {d.min():.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
