"""Fast screening of PatchCore feature choices on ELPV, from cached patch embeddings.

``bench_elpv.py`` fits and predicts with the real ``PatchCore`` per row (minutes per split);
this script embeds every ELPV cell once per (backbone, input size, intensity normalisation)
with the real ``PatchCore`` embedding path (the bundled backend, ``embed_patches``), caches the
(cells, h, w, D) float16 embeddings, and then evaluates many bank / search / score choices on
the same protocol as ``bench_elpv.py`` (``split``: 60% of the normal cells train, every 5th
training cell is held out of the bank as ``fit``'s ``holdout=0.2`` does; test = the other
normal cells + every defective cell; exact image AUROC):

* ``layers``: ``both`` (stride 8 + 16, the default), ``s8`` (the stride-8 columns only),
  ``s16`` (the stride-16 columns, upsampled to the stride-8 grid as the embedding does);
* ``ratio``: the k-center coreset ratio (``fissure.anomaly.search.kcenter_greedy``, the C++
  selection ``fit`` uses; 1 = the whole training set);
* ``knn``: the patch score is the mean distance to its ``knn`` nearest bank entries (1: the
  nearest, PatchCore's);
* ``pos``: ``None`` (one bank for every position) or ``(block, k)``: the patch grid is cut into
  ``block x block`` regions and a test patch in a region searches only the bank patches whose
  grid position lies in that region grown by ``k`` cells on each side (exact search per region,
  ``fissure.anomaly.search.knn_search``);
* the image score is the largest patch score (``scoring="max"``; anomalib's reweighting
  ranks these cells the same, docs/patchcore_elpv.md).

    PYTHONPATH=python python benchmarks/screen_elpv.py --types poly --seeds 0,1 \
        --configs base,pos4k1 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from bench_elpv import Elpv, elpv_index, split  # noqa: E402

CACHE = os.environ.get("ELPV_CACHE", "/tmp/elpv_cache")


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    backbone: str = "lite0"
    input_size: int = 224
    norm: str = "none"  # or "std": per-cell standardisation before the backbone
    layers: str = "both"
    ratio: float = 0.04
    knn: int = 1
    pos: Optional[tuple[int, int]] = None


MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python",
                      "fissure", "models")


def backbone_path(name: str) -> Optional[str]:
    return None if name == "lite0" else os.path.join(MODELS, f"efficientnet_{name}_s8s16.onnx")


def pc_manifest(name: str) -> dict:
    f = "manifest.json" if name == "lite0" else f"efficientnet_{name}_s8s16.json"
    return json.load(open(os.path.join(MODELS, f)))


def normalise_cell(img: np.ndarray, mode: str) -> np.ndarray:
    if mode == "none":
        return img
    if mode == "std":  # each cell to mean 128, standard deviation 48
        f = img.astype(np.float32)
        f = (f - f.mean()) / max(float(f.std()), 1.0) * 48.0 + 128.0
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)
    raise ValueError(mode)


def embeddings(ds: Elpv, idx: np.ndarray, cfg: Config, threads: int) -> tuple[np.ndarray, int]:
    """(len(ds), h, w, D) float16 embeddings of the cells ``idx`` (others zero), cached;
    and the stride-8 part's width."""
    from fissure.anomaly import PatchCore

    os.makedirs(CACHE, exist_ok=True)
    kinds = sorted(set(ds.types[idx]))
    key = f"{cfg.backbone}_{cfg.input_size}_{cfg.norm}_{'_'.join(kinds)}"
    path = os.path.join(CACHE, key + ".npy")
    meta_path = os.path.join(CACHE, key + ".json")
    if os.path.exists(path) and os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        arr = np.load(path, mmap_mode="r")
        if set(meta["cells"]) >= set(int(i) for i in idx):
            return arr, meta["c8"]
    pc = PatchCore(backbone_path(cfg.backbone), tile_size=None, input_size=cfg.input_size,
                   intensity=None,  # normalise_cell does it
                   num_threads=threads)
    norm = pc_manifest(cfg.backbone)["input"]
    pc.scale, pc.mean, pc.std = float(norm["scale"]), tuple(norm["mean"]), tuple(norm["std"])
    c8 = {o["name"]: o["channels"] for o in pc_manifest(cfg.backbone)["outputs"]}["feat8"]
    cells = np.flatnonzero(((ds.probs == 0) | (ds.probs >= 0.5)) & np.isin(ds.types, kinds))
    t = time.perf_counter()
    out = None
    for j, i in enumerate(cells):
        img = normalise_cell(ds.load([i])[0], cfg.norm)
        (_, emb), = list(pc._embed_tiles(img, pc._tiles(*img.shape[:2])))
        if out is None:
            out = np.zeros((len(ds.paths),) + emb.shape[1:], np.float16)
        out[i] = emb[0]
    print(f"# embedded {len(cells)} cells ({key}) in {time.perf_counter() - t:.1f} s",
          flush=True)
    np.save(path + ".tmp.npy", out)
    os.replace(path + ".tmp.npy", path)
    json.dump({"cells": [int(c) for c in cells], "c8": int(c8)}, open(meta_path, "w"))
    return out, c8


def columns(emb: np.ndarray, layers: str, c8: int) -> np.ndarray:
    if layers == "both":
        return emb
    if layers == "s8":
        return emb[..., :c8]
    if layers == "s16":
        return emb[..., c8:]
    raise ValueError(layers)


def patch_scores(bank: np.ndarray, bank_pos: np.ndarray, test: np.ndarray, cfg: Config,
                 threads: int) -> np.ndarray:
    """(n_test, h, w) patch scores of test embeddings (n_test, h, w, D)."""
    from fissure.anomaly.search import knn_search

    n, h, w, d = test.shape
    if cfg.pos is None:
        dist, _ = knn_search(bank, test.reshape(-1, d).astype(np.float32), cfg.knn,
                             num_threads=threads)
        return np.sqrt(np.maximum(dist, 0)).mean(1).reshape(n, h, w)
    from fissure.anomaly.positional import position_knn

    dist, _ = position_knn(bank, bank_pos, test.reshape(-1, d).astype(np.float32), (h, w),
                           *cfg.pos, cfg.knn, num_threads=threads)
    return np.sqrt(np.maximum(dist, 0)).mean(1).reshape(n, h, w)


def run(ds: Elpv, cell_type: str, seed: int, cfg: Config, threads: int) -> dict[str, Any]:
    from fissure.anomaly import auroc
    from fissure.anomaly.search import kcenter_greedy

    train, test, labels = split(ds, cell_type, seed=seed)
    in_bank = np.array([c for j, c in enumerate(train) if j % 5 != 4])
    emb, c8 = embeddings(ds, np.r_[train, test], cfg, threads)
    tr = columns(np.asarray(emb[in_bank]), cfg.layers, c8)
    _, h, w, d = tr.shape
    feats = np.ascontiguousarray(tr.reshape(-1, d))
    pos = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2)
    pos = np.tile(pos, (len(in_bank), 1))
    t0 = time.perf_counter()
    n = max(1, int(feats.shape[0] * cfg.ratio))
    if n < feats.shape[0]:
        rng = np.random.default_rng(seed)
        sel = np.sort(kcenter_greedy(feats, n, start_index=int(rng.integers(feats.shape[0])),
                                     num_threads=threads))
    else:
        sel = np.arange(feats.shape[0])
    bank = np.ascontiguousarray(feats[sel], np.float32)
    t1 = time.perf_counter()
    te = columns(np.asarray(emb[test]), cfg.layers, c8)
    s = patch_scores(bank, pos[sel], te, cfg, threads)
    t2 = time.perf_counter()
    score = s.reshape(len(test), -1).max(1)
    return {"config": cfg.name, "type": cell_type, "seed": seed, "auroc": auroc(score, labels),
            "bank": int(bank.shape[0]), "dims": int(d), "coreset_s": t1 - t0,
            "search_s": t2 - t1, "cfg": dataclasses.asdict(cfg)}


CONFIGS = {c.name: c for c in [
    Config("base"),
    Config("s8", layers="s8"),
    Config("s16", layers="s16"),
    Config("knn3", knn=3),
    Config("r10", ratio=0.10),
    Config("r02", ratio=0.02),
    Config("in256", input_size=256),
    Config("in192", input_size=192),
    Config("std", norm="std"),
    Config("pos4k1", pos=(4, 1)),
    Config("pos4k2", pos=(4, 2)),
    Config("pos7k2", pos=(7, 2)),
    Config("pos4k1r10", pos=(4, 1), ratio=0.10),
    Config("pos4k1r25", pos=(4, 1), ratio=0.25),
    Config("pos4k2r25", pos=(4, 2), ratio=0.25),
    Config("pos4k1full", pos=(4, 1), ratio=1.0),
    Config("lite1", backbone="lite1"),
    Config("lite2", backbone="lite2"),
    Config("lite1_in240", backbone="lite1", input_size=240),
    Config("lite2_in256", backbone="lite2", input_size=256),
    Config("lite2_knn3", backbone="lite2", knn=3),
    Config("lite2_r10", backbone="lite2", ratio=0.10),
]}


def table(rows: list[dict]) -> str:
    """Config x type: mean, min..max and the seeds, the last row per (config, type, seed)."""
    last = {(r["config"], r["type"], r["seed"]): r for r in rows}
    groups: dict = {}
    for (c, t, sd), r in last.items():
        groups.setdefault((c, t), []).append((sd, r))
    lines = ["| config | backbone | input | layers | coreset ratio | patch score | position-aware "
             "(block, reach) | type | seeds | image AUROC mean | min .. max |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (c, t), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cfg = rs[0][1]["cfg"]
        a = np.array([r["auroc"] for _, r in rs])
        seeds = ",".join(str(sd) for sd, _ in sorted(rs, key=lambda x: x[0]))
        pos = "-" if cfg["pos"] is None else f"{cfg['pos'][0]}, {cfg['pos'][1]}"
        lines.append(f"| {c} | {cfg['backbone']} | {cfg['input_size']} | {cfg['layers']} | "
                     f"{cfg['ratio']:g} | mean of {cfg['knn']} NN | {pos} | {t} | {seeds} | "
                     f"**{a.mean():.4f}** | {a.min():.4f} .. {a.max():.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="poly")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--configs", default="base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="", help="append each row (JSON) to this file")
    ap.add_argument("--table", default="",
                    help="print the markdown table (mean and range over seeds) of a --out file")
    a = ap.parse_args()
    if a.table:
        print(table([json.loads(x) for x in open(a.table) if x.strip()]))
        return
    ds = elpv_index()
    rows = []
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        for t in a.types.split(","):
            for seed in (int(s) for s in a.seeds.split(",")):
                r = run(ds, t, seed, cfg, a.threads)
                rows.append(r)
                print(f"{name:14s} {t} seed {seed}: AUROC {r['auroc']:.4f}  bank {r['bank']}"
                      f"  coreset {r['coreset_s']:.1f}s search {r['search_s']:.1f}s", flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
