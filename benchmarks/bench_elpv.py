"""PatchCore on ELPV: image AUROC of ``fissure.anomaly.PatchCore`` on real solar-cell defects.

Data: the ELPV dataset (``pip install elpv-dataset``; 2,624 300x300 8-bit electroluminescence
images of mono- and polycrystalline solar cells, each with a defect probability 0, 1/3, 2/3 or
1 given by an expert; images CC-BY-NC-SA 4.0, used here, never copied into the repository).

Protocol, per cell type (docs/patchcore_elpv.md):

* normal = probability 0, defective = probability >= 0.5 (2/3 and 1); the uncertain 1/3 cells
  are left out;
* the normal cells are shuffled with ``numpy.random.default_rng(split_seed)`` and the first
  ``train_frac`` (60%) train PatchCore, the rest are held-out normal test cells;
* the test set is every held-out normal cell plus every defective cell of that type;
* PatchCore fits on the training cells (``holdout=0.2``: every 5th training cell calibrates the
  thresholds and is not in the bank) and predicts every test cell; the image AUROC of
  ``AnomalyResult.score`` is exact (``fissure.anomaly.auroc``, ties one half);
* the baseline is the same pipeline with the greedy k-center selection replaced by a uniform
  random subset of the same size (``numpy.random.default_rng(seed).choice``, no replacement),
  i.e. kNN to a random subset of the training patches.

Timings: fit is the whole ``PatchCore.fit`` call (backbone load, embedding, coreset,
calibration); predict is the median wall time of one ``PatchCore.predict`` on a 300x300 cell.
Peak RSS is the process's ``VmHWM`` after the row, with the kernel's peak counter reset before
it (so it includes the loaded cells of that type and the backbone).

    PYTHONPATH=python python benchmarks/bench_elpv.py                # recommended settings (~6 min)
    PYTHONPATH=python python benchmarks/bench_elpv.py --write-docs   # ... into docs/benchmarks.md
    PYTHONPATH=python python benchmarks/bench_elpv.py --sweep all    # the options explored (~1 h)
    PYTHONPATH=python python benchmarks/bench_elpv.py --sweep all --write-docs   # ... into
                                                                     # docs/patchcore_elpv.md
    PYTHONPATH=python python benchmarks/bench_elpv.py --quick        # smoke test (~30 s)

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _machine import platform_line, status_kb, trim_heap, write_marked_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ("mono", "poly")


# ---------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Elpv:
    """The dataset's index: file names, defect probabilities and cell types (no pixels)."""

    root: str
    paths: np.ndarray
    probs: np.ndarray
    types: np.ndarray

    def load(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The (300, 300) uint8 cells at ``indices``, read with PIL as the package's reader does."""
        from PIL import Image

        out = []
        for i in indices:
            with Image.open(os.path.join(self.root, self.paths[i])) as im:
                out.append(np.asarray(im))
        return out


def elpv_index() -> Elpv:
    """The label file of the installed ``elpv-dataset`` package, parsed as its own
    ``elpv_dataset.utils.load_dataset`` parses it (without loading every image)."""
    import elpv_dataset

    root = os.path.join(os.path.dirname(elpv_dataset.__file__), "data")
    data = np.genfromtxt(os.path.join(root, "labels.csv"), dtype=["|S19", "<f8", "|S4"],
                         names=["path", "probability", "type"])
    return Elpv(root, np.char.decode(data["path"]), data["probability"],
                np.char.decode(data["type"]))


def split(ds: Elpv, cell_type: str, *, train_frac: float = 0.6, seed: int = 0,
          max_train: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train indices, test indices, test labels: True = defective) for one cell type.

    Normal cells (probability 0) are shuffled with ``default_rng(seed)``; the first
    ``round(train_frac * n)`` train (the first ``max_train`` of those if given), the others
    are normal test cells; every cell with probability >= 0.5 is a defective test cell."""
    if cell_type not in TYPES:
        raise ValueError(f"cell_type: expected one of {TYPES}, got {cell_type!r}")
    good = np.flatnonzero((ds.types == cell_type) & (ds.probs == 0))
    bad = np.flatnonzero((ds.types == cell_type) & (ds.probs >= 0.5))
    good = np.random.default_rng(seed).permutation(good)
    n_train = round(train_frac * len(good))
    train = good[:n_train] if max_train is None else good[:min(n_train, max_train)]
    test = np.r_[good[n_train:], bad]
    labels = np.r_[np.zeros(len(good) - n_train, bool), np.ones(len(bad), bool)]
    return train, test, labels


# ---------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Setting:
    """One PatchCore configuration and protocol variant.

    ``bank``: a target bank size; the coreset ratio is then ``bank / training patches`` so that
    settings with different grids keep equally large banks. Otherwise ``coreset_ratio``.
    ``scores``: (score, num_neighbors) pairs predicted with one fitted model."""

    name: str
    input_size: int | None = 224
    intensity: str | None = "standardize"
    backbone: str = "lite0"
    coreset_ratio: float = 0.04
    bank: int | None = None
    sampler: str = "kcenter"  # or "random"
    scores: tuple[tuple[str, int], ...] = (("anomalib", 9),)
    train_frac: float = 0.6
    max_train: int | None = None
    split_seed: int = 0
    seed: int = 0
    holdout: float = 0.2

    def ratio(self, n_train: int) -> float:
        if self.bank is None:
            return self.coreset_ratio
        side = self.input_size or 300
        grid = -(-side // 8)  # the stride-8 grid, ceil (TF-SAME)
        k = round(1.0 / self.holdout) if self.holdout > 0 else 0
        in_bank = n_train - (n_train // k if k else 0)
        patches = in_bank * grid * grid
        return min(1.0, (self.bank + 0.5) / patches)


#: the settings this benchmark recommends (docs/patchcore_elpv.md)
RECOMMENDED = Setting("recommended", input_size=224, coreset_ratio=0.04,
                      scores=(("anomalib", 9), ("max", 1)))


def sweeps() -> dict[str, list[Setting]]:
    """The options explored, by group. Banks of a group have the same target size."""
    size = [Setting(f"input {s or 300}, k-center 10k", input_size=s, bank=10000)
            for s in (None, 448, 224, 160)]
    size += [Setting(f"input {s or 300}, random 10k", input_size=s, bank=10000, sampler="random")
             for s in (None, 448, 160)]
    bank = [Setting(f"input 224, {smp} {b // 1000}k", bank=b, sampler=smp)
            for b in (2500, 5000, 20000) for smp in ("kcenter", "random")]
    bank.append(Setting("input 224, random 10k", bank=10000, sampler="random"))
    score = [Setting("input 224, ratio 0.04: score variants",
                     scores=(("anomalib", 9), ("anomalib", 3), ("max", 1)))]
    seeds = [Setting(f"recommended, split seed {s}, {smp}", split_seed=s, seed=s, sampler=smp)
             for s in (1, 2) for smp in ("kcenter", "random")]
    train = [Setting(f"recommended, {n} training cells, {smp}", max_train=n, sampler=smp)
             for n in (40, 100) for smp in ("kcenter", "random")]
    train += [Setting(f"recommended, train_frac {f}", train_frac=f) for f in (0.5, 0.7)]
    full = [Setting("input 224, whole bank (coreset_ratio 1)", coreset_ratio=1.0)]
    # intensity standardisation on / off over split seeds 0-4: at the recommended settings,
    # and at PatchCore()'s own defaults (native 300 px, coreset_ratio 0.01)
    intensity = [Setting(f"recommended, intensity {i}, split seed {k}", intensity=i,
                         split_seed=k, seed=k)
                 for k in range(5) for i in ("standardize", None)]
    default = [Setting(f"PatchCore() defaults, intensity {i}, split seed {k}", input_size=None,
                       coreset_ratio=0.01, intensity=i, split_seed=k, seed=k)
               for k in range(5) for i in ("standardize", None)]
    # the bundled EfficientNet-Lite2 with the standardisation, at the recommended settings
    lite2 = [Setting(f"recommended, lite2, intensity standardize, split seed {k}",
                     backbone="lite2", split_seed=k, seed=k) for k in range(5)]
    return {"size": size, "bank": bank, "score": score, "seeds": seeds, "train": train,
            "full": full, "intensity": intensity, "default": default, "lite2": lite2}


#: sweep groups that ``--sweep all`` runs ("full" searches the whole training set: ~25 min)
ALL = ("size", "bank", "score", "seeds", "train")


# ---------------------------------------------------------------------------- one row


@contextlib.contextmanager
def random_bank(seed: int) -> Iterator[None]:
    """Inside, PatchCore.fit keeps a uniform random subset of its training patches instead of
    the greedy k-center coreset (same size, same everything else): fit imports
    ``kcenter_greedy`` from ``fissure.anomaly.search`` when it runs, so replacing that module
    attribute swaps the selection only."""
    from fissure.anomaly import search

    original = search.kcenter_greedy

    def pick(features: np.ndarray, n: int, *, start_index: int = 0,
             num_threads: int = -1) -> np.ndarray:
        del start_index, num_threads
        rng = np.random.default_rng(seed)
        return rng.choice(features.shape[0], int(n), replace=False).astype(np.int64)

    search.kcenter_greedy = pick  # type: ignore[assignment]
    try:
        yield
    finally:
        search.kcenter_greedy = original  # type: ignore[assignment]


def reset_peak() -> int:
    """Resets the kernel's peak-RSS counter; returns VmRSS in kB (0 where not possible)."""
    trim_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_kb("VmRSS")
    except OSError:  # pragma: no cover - no clear_refs
        return 0


def evaluate(ds: Elpv, cell_type: str, s: Setting, *, threads: int = -1,
             max_test: int | None = None) -> list[dict]:
    """Fits one PatchCore and scores the test cells; one dict per score variant."""
    from fissure.anomaly import PatchCore, auroc

    train, test, labels = split(ds, cell_type, train_frac=s.train_frac, seed=s.split_seed,
                                max_train=s.max_train)
    if max_test is not None:  # --quick: a balanced subset
        rng = np.random.default_rng(s.split_seed)
        keep = np.r_[rng.permutation(np.flatnonzero(~labels))[:max_test // 2],
                     rng.permutation(np.flatnonzero(labels))[:max_test - max_test // 2]]
        test, labels = test[np.sort(keep)], labels[np.sort(keep)]
    rss0 = reset_peak()
    train_imgs = ds.load(train)
    test_imgs = ds.load(test)
    score0, nn0 = s.scores[0]
    ratio = s.ratio(len(train))
    pc = PatchCore(s.backbone, tile_size=None, input_size=s.input_size, coreset_ratio=ratio,
                   intensity=s.intensity, scoring=score0,
                   num_neighbors=nn0, holdout=s.holdout, seed=s.seed, num_threads=threads)
    t0 = time.perf_counter()
    with random_bank(s.seed) if s.sampler == "random" else contextlib.nullcontext():
        pc.fit(train_imgs)
    fit_s = time.perf_counter() - t0
    del train_imgs
    backend = f"{pc.model.name} {pc.model.device}"
    rows = []
    for score, nn in s.scores:
        pc.scoring, pc.num_neighbors = score, nn
        scores, times, flagged = [], [], []
        for img in test_imgs:
            t = time.perf_counter()
            r = pc.predict(img)
            times.append(time.perf_counter() - t)
            scores.append(r.score)
            flagged.append(r.is_anomalous)
        sc, fl = np.asarray(scores), np.asarray(flagged)
        rows.append({
            "setting": s.name, "type": cell_type, "sampler": s.sampler,
            "input": s.input_size or 300, "score": score if score == "max" else f"{score} b={nn}",
            "coreset_ratio": ratio, "train": len(train),
            "bank_cells": len(train) - pc.stats["holdout_tiles"],
            "train_patches": pc.stats["train_patches"], "bank": pc.stats["bank_size"],
            "test_normal": int((~labels).sum()), "test_defective": int(labels.sum()),
            "auroc": auroc(sc, labels), "fit_s": fit_s, "embed_s": pc.stats["fit_embed_s"],
            "coreset_s": pc.stats["coreset_s"], "predict_ms": 1000 * statistics.median(times),
            "tpr": float(fl[labels].mean()), "fpr": float(fl[~labels].mean()),
            "peak_rss_mb": status_kb("VmHWM") / 1024, "rss_before_mb": rss0 / 1024,
            "backend": backend, "load": os.getloadavg()[0], "split_seed": s.split_seed,
            "max_train": s.max_train, "scores": sc.tolist(), "labels": labels.tolist(),
            "image_threshold": float(pc.image_threshold),
        })
    return rows


# ---------------------------------------------------------------------------- tables


def machine_line(threads: int) -> str:
    n = os.cpu_count() or 1
    return (f"{platform_line('onnxruntime', 'openvino')}; PatchCore num_threads="
            f"{threads if threads > 0 else n}")


def table(rows: list[dict], *, sweep: bool = False) -> str:
    head = ["type", "bank from", "input", "score", "train cells (in bank)", "train patches",
            "bank", "test normal / defective", "image AUROC", "fit s (embed / coreset)",
            "predict ms/img", "TPR / FPR at fit threshold", "peak RSS MB"]
    if sweep:
        head = ["setting"] + head
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        smp = "k-center" if r["sampler"] == "kcenter" else "random subset"
        cells = [r["type"], smp, str(r["input"]), r["score"],
                 f"{r['train']} ({r['bank_cells']})", f"{r['train_patches']:,}",
                 f"{r['bank']:,}", f"{r['test_normal']} / {r['test_defective']}",
                 f"**{r['auroc']:.4f}**" if not sweep else f"{r['auroc']:.4f}",
                 f"{r['fit_s']:.1f} ({r['embed_s']:.1f} / {r['coreset_s']:.1f})",
                 f"{r['predict_ms']:.1f}", f"{r['tpr']:.2f} / {r['fpr']:.2f}",
                 f"{r['peak_rss_mb']:.0f}"]
        if sweep:
            cells = [r["setting"]] + cells
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_table(rows: list[dict]) -> str:
    """One line per (configuration, cell type) over the split seeds of a ``--sweep intensity``
    or ``--sweep default`` run: the AUROC per seed, its mean and range, the median predict
    time and the mean true-positive rate at the fit threshold."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        cfg = r["setting"].split(", split seed")[0]
        groups.setdefault((cfg, r["type"]), []).append(r)
    lines = ["| settings | type | AUROC per split seed 0 / 1 / 2 / 3 / 4 | mean | min .. max | "
             "predict ms/cell (median of rows) | TPR / FPR at fit threshold (mean) |",
             "|---|---|---|---|---|---|---|"]
    for (cfg, ct), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rs = sorted(rs, key=lambda r: r["split_seed"])
        a = [r["auroc"] for r in rs]
        lines.append(
            f"| {cfg} | {ct} | {' / '.join(f'{v:.4f}' for v in a)} | **{statistics.mean(a):.4f}**"
            f" | {min(a):.4f} .. {max(a):.4f} | "
            f"{statistics.median(r['predict_ms'] for r in rs):.1f} | "
            f"{statistics.mean(r['tpr'] for r in rs):.2f} / "
            f"{statistics.mean(r['fpr'] for r in rs):.2f} |")
    return "\n".join(lines)


def threshold_summary(rows: list[dict]) -> str:
    """The threshold study (:func:`threshold_study`) of every row of a ``--sweep intensity``
    run, averaged over its split seeds: per settings, cell type and threshold rule, the mean
    false-alarm and miss rates on the unseen halves (min .. max of the misses)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        cfg = r["setting"].split(", split seed")[0]
        for t in threshold_study(r):
            groups.setdefault((r["type"], cfg, t["rule"]), []).append(t)
    lines = ["| type | settings | threshold rule | unseen half: false alarms (mean) | "
             "unseen half: misses (mean) | misses min .. max | seeds |",
             "|---|---|---|---|---|---|---|"]
    order = {k: i for i, k in enumerate(dict.fromkeys(k[2] for k in groups))}
    for (ct, cfg, rule), ts in sorted(groups.items(),
                                      key=lambda kv: (kv[0][0], order[kv[0][2]], kv[0][1])):
        miss = [t["miss"] for t in ts]
        lines.append(f"| {ct} | {cfg} | {rule} | {statistics.mean(t['fa'] for t in ts):.1%} | "
                     f"**{statistics.mean(miss):.1%}** | {min(miss):.1%} .. {max(miss):.1%} | "
                     f"{len(ts)} |")
    return "\n".join(lines)


def write_docs(text: str, *, sweep: bool = False) -> None:
    """The default run goes to the end of docs/benchmarks.md, a sweep into
    docs/patchcore_elpv.md (between its markers)."""
    path = os.path.join(ROOT, "docs", "patchcore_elpv.md" if sweep else "benchmarks.md")
    write_marked_block(path, "ELPV SWEEP" if sweep else "ELPV", text,
                       "## The options explored" if sweep else "## PatchCore on ELPV")


# ---------------------------------------------------------------------------- thresholds


def threshold_study(r: dict, *, seed: int = 0) -> list[dict]:
    """What the image threshold does to the miss rate: the held-out normal test cells and the
    defective cells are each cut in two halves (``default_rng(seed)``); the first halves
    stand for the labelled images a user keeps aside to calibrate (``PatchCore.calibrate``
    computes exactly ``threshold_for`` on their scores), the second halves measure the
    false-alarm and miss rates the threshold then gives on unseen cells."""
    from fissure.anomaly import rates_at, threshold_for

    sc, lab = np.asarray(r["scores"]), np.asarray(r["labels"], bool)
    rng = np.random.default_rng(seed)
    norm, bad = rng.permutation(np.flatnonzero(~lab)), rng.permutation(np.flatnonzero(lab))
    cal_n, ev_n = sc[norm[:len(norm) // 2]], sc[norm[len(norm) // 2:]]
    cal_d, ev_d = sc[bad[:len(bad) // 2]], sc[bad[len(bad) // 2:]]
    rules = [("fit (held-out training tiles' max x 1.25)", r["image_threshold"])]
    for f in (0.0, 0.01, 0.05, 0.10):
        rules.append((f"calibrate(false_alarm_rate={f:g})",
                      threshold_for(cal_n, false_alarm_rate=f)))
    for m in (0.05, 0.20):
        rules.append((f"calibrate(miss_rate={m:g}, defective)",
                      threshold_for(cal_n, cal_d, miss_rate=m)))
    out = []
    for name, t in rules:
        fa_c, miss_c = rates_at(t, cal_n, cal_d)
        fa, miss = rates_at(t, ev_n, ev_d)
        out.append({"type": r["type"], "rule": name, "threshold": float(t), "fa_cal": fa_c,
                    "miss_cal": miss_c, "fa": fa, "miss": miss, "n_cal": (len(cal_n), len(cal_d)),
                    "n_eval": (len(ev_n), len(ev_d))})
    return out


def threshold_table(rows: list[dict]) -> str:
    lines = ["| type | threshold rule | threshold | calibration half: false alarms / misses | "
             "unseen half: false alarms / misses |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['type']} | {r['rule']} | {r['threshold']:.4f} | "
                     f"{r['fa_cal']:.1%} / {r['miss_cal']:.1%} | {r['fa']:.1%} / "
                     f"{r['miss']:.1%} |")
    n = rows[0]
    return "\n".join(lines) + (f"\n\n(mono halves: {n['n_cal'][0]} normal + {n['n_cal'][1]} "
                               "defective to calibrate, the rest unseen; poly likewise)")


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--threads", type=int, default=-1, help="PatchCore num_threads (-1: all)")
    ap.add_argument("--sweep", default="",
                    help=f"comma-separated groups of {sorted(sweeps())} or 'all' instead of "
                         "the recommended settings")
    ap.add_argument("--no-baseline", action="store_true", help="skip the random-subset rows")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 40 training cells, 60 test cells per type")
    ap.add_argument("--thresholds", action="store_true",
                    help="the recommended settings' threshold study (miss rate at a fixed "
                    "false-alarm rate) instead of the table")
    ap.add_argument("--json", default="", help="also write the rows to this file")
    ap.add_argument("--seed-table", nargs="+", default=None, metavar="JSON",
                    help="print the per-seed summary of the rows in these --json files "
                    "(of --sweep intensity / default) and exit")
    ap.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    a = ap.parse_args()
    if a.seed_table:
        rows = [r for f in a.seed_table for r in json.load(open(f))]
        print(seed_table(rows))
        print()
        print(threshold_summary(rows))
        return
    ds = elpv_index()
    types = a.types.split(",")
    if a.thresholds:
        study = []
        for ct in types:
            r = evaluate(ds, ct, dataclasses.replace(RECOMMENDED, scores=RECOMMENDED.scores[:1]),
                         threads=a.threads)[0]
            print(f"  {ct}: AUROC {r['auroc']:.4f}", file=sys.stderr, flush=True)
            study += threshold_study(r)
        print("Command: `PYTHONPATH=python python benchmarks/bench_elpv.py --thresholds"
              f"{' --threads %d' % a.threads if a.threads > 0 else ''}`\n\n"
              + threshold_table(study))
        return
    if a.sweep:
        groups = sweeps()
        names = list(ALL) if a.sweep == "all" else a.sweep.split(",")
        settings = [s for g in names for s in groups[g]]
    else:
        base = dataclasses.replace(RECOMMENDED, max_train=40) if a.quick else RECOMMENDED
        settings = [base]
        if not a.no_baseline:
            settings.append(dataclasses.replace(base, name="random baseline", sampler="random",
                                                scores=base.scores[:1]))
    t_all = time.perf_counter()
    rows: list[dict] = []
    for s in settings:
        for ct in types:
            t0 = time.perf_counter()
            rs = evaluate(ds, ct, s, threads=a.threads, max_test=60 if a.quick else None)
            rows.extend(rs)
            for r in rs:
                print(f"  {s.name} | {ct} | {r['sampler']} | {r['score']}: AUROC "
                      f"{r['auroc']:.4f}, bank {r['bank']}, fit {r['fit_s']:.1f} s "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    minutes = (time.perf_counter() - t_all) / 60
    cmd = "PYTHONPATH=python python benchmarks/bench_elpv.py" + "".join(
        f" {x}" for x in sys.argv[1:] if x != "--write-docs")
    loads = [r["load"] for r in rows]
    text = (f"Command: `{cmd}` (took {minutes:.1f} min). {machine_line(a.threads)}; backbone "
            f"on {rows[0]['backend']}, f32; 1-minute load average after each row "
            f"{min(loads):.1f}..{max(loads):.1f}.\n\n{table(rows, sweep=bool(a.sweep))}")
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.write_docs:
        write_docs(text, sweep=bool(a.sweep))


# ---------------------------------------------------------------------------- pytest-benchmark

try:
    import pytest
except ImportError:  # pragma: no cover - the __main__ table needs no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.mark.parametrize("cell_type", TYPES)
    def bench_elpv_predict(benchmark: Any, cell_type: str) -> None:
        """Time of one PatchCore.predict on a 300x300 cell at the recommended settings (fitted
        on 40 training cells; the __main__ reports the full evaluation)."""
        pytest.importorskip("elpv_dataset")
        from fissure.anomaly import PatchCore

        ds = elpv_index()
        train, test, _ = split(ds, cell_type, max_train=40)
        pc = PatchCore(tile_size=None, input_size=RECOMMENDED.input_size,
                       coreset_ratio=RECOMMENDED.coreset_ratio).fit(ds.load(train))
        img = ds.load(test[:1])[0]
        pc.predict(img)
        benchmark.group = "patchcore elpv predict"
        benchmark.extra_info.update(cell_type=cell_type, bank=pc.stats["bank_size"])
        benchmark.pedantic(pc.predict, args=(img,), rounds=20, iterations=1)


if __name__ == "__main__":
    main()
