"""PatchCore's pixel-level accuracy on real textures with small synthetic defects: tiled at
native resolution against one whole-image pass at 640 px.

Normal surfaces: scikit-image's CC0 textures ``brick``, ``grass`` and ``gravel`` (512x512 gray
uint8, shipped in the scikit-image wheel). Each texture is cut into a training half (rows
0..255) and a test half (rows 256..511) so that no test pixel is seen in training; both halves
are upscaled x4 with ``cv2.INTER_CUBIC`` (256x512 -> 1024x2048, 2.1 MP: the texture seen at
inspection resolution) and converted to BGR.

* training (defect-free): the training half and its three flips (left-right, up-down, both);
* defect images: the test half and its three flips, each with ``--defects`` small defects from
  ``fissure.anomaly.synthetic.plant_defects`` (scratches, cracks, pits, stains cycled; window
  half-size ``--size-range`` px at x4, scaled with ``--scale``; seeds 100..103); its label map
  is the ground truth;
* defect-free test images: the same four flips of the test half without defects.

Methods (bundled EfficientNet-Lite0 backbone, default PatchCore settings otherwise, the same
training images, ``holdout=0.25`` so that the whole-image model keeps one of its four training
images to calibrate its thresholds):

* ``tiled``: ``PatchCore(tile_size=512)``, SAHI's grid with overlap 0.25 at native resolution
  (15 tiles per 1024x2048 image), k-center coreset ``--coreset`` (default 1%, the demo's);
* ``whole``: ``PatchCore(tile_size=None, input_size=(h, w))`` with the long side 640 (320x640), as
  a model that sees the whole picture at 640 px; it keeps every training patch
  (``coreset_ratio=1.0``: 9,600 patches, no thinning handicap). Its map is upsampled to the
  full resolution, so its mask is compared with the same ground truth.

Reported per texture and method: pixel AUROC (``fissure.anomaly.pixel_auroc`` over all eight
test maps against the label masks; the defect-free images add negatives only), image AUROC
(four defect images against four defect-free ones; ``result.score``), defects found (a region
of ``result.mask`` touching the defect, ``fissure.demo.evaluate``) per kind, false alarms
(regions touching no defect, on the defect images) and regions on the defect-free images, the
defects *separable* by some threshold (the map's peak on the defect exceeds the map's maximum
over every defect-free test image: found at a threshold with no false alarm on those), fit
time and the median predict time per image.

    PYTHONPATH=python python benchmarks/bench_textures.py                 # table (~5 min)
    PYTHONPATH=python python benchmarks/bench_textures.py --write-docs    # ... into docs/benchmarks.md
    PYTHONPATH=python python benchmarks/bench_textures.py --quick         # gravel at x2, smoke test
    PYTHONPATH=python python benchmarks/bench_textures.py --seeds 0,1,2 --json out.json
    PYTHONPATH=python python benchmarks/bench_textures.py --threshold-margin 0.15   # other margin

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _machine import platform_line, write_marked_block

ROOT = Path(__file__).resolve().parents[1]
TEXTURES = ("brick", "grass", "gravel")
METHODS = ("tiled", "whole")
LABELS = {
    "tiled": "tiled 512 px, native",
    "whole": "whole image at 640 px",
}
KIND_ORDER = ("scratch", "crack", "pit", "stain")
SECTION = "## PatchCore on textures (synthetic defects)"


# ---------------------------------------------------------------------------- inputs


def flips(a: np.ndarray) -> list[np.ndarray]:
    """The image and its left-right, up-down and both-ways flips (contiguous copies)."""
    return [np.ascontiguousarray(f) for f in (a, a[:, ::-1], a[::-1], a[::-1, ::-1])]


def upscale_bgr(gray: np.ndarray, scale: int) -> np.ndarray:
    import cv2

    h, w = gray.shape
    up = cv2.resize(gray, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(up, cv2.COLOR_GRAY2BGR)


@dataclass
class Case:
    texture: str
    train: list[np.ndarray]
    surfaces: list[Any]  # SyntheticSurface: defect images with labels
    clean: list[np.ndarray]


def build_case(texture: str, *, scale: int = 4, n_defects: int = 12,
               size_range: tuple[int, int] = (12, 32), seed: int = 0) -> Case:
    """Training half -> 4 normal samples; test half -> 4 defect images + 4 defect-free."""
    from fissure.anomaly.synthetic import plant_defects
    from skimage import data

    gray = getattr(data, texture)()
    if gray.ndim != 2:
        raise ValueError(f"{texture}: expected a gray texture, got {gray.shape}")
    half = gray.shape[0] // 2
    train = flips(upscale_bgr(gray[:half], scale))
    test = flips(upscale_bgr(gray[half:], scale))
    lo, hi = (max(3, round(v * scale / 4)) for v in size_range)
    margin = max(8, 8 * scale)
    surfaces = [plant_defects(img, n_defects, size_range=(lo, hi), margin=margin,
                              seed=100 + 1000 * seed + i) for i, img in enumerate(test)]
    return Case(texture, train, surfaces, test)


# ---------------------------------------------------------------------------- methods


def make_model(method: str, h: int, w: int, *, coreset: float, seed: int, threads: int,
               margin: float | None = None, intensity: str | None = "standardize",
               backbone: str = "lite0") -> Any:
    from fissure.anomaly import PatchCore

    kw: dict[str, Any] = {} if margin is None else {"threshold_margin": margin}
    kw["intensity"] = intensity
    if method == "tiled":
        return PatchCore(backbone, tile_size=512, coreset_ratio=coreset, holdout=0.25, seed=seed,
                         num_threads=threads, **kw)
    if method == "whole":
        f = 640.0 / max(h, w)
        return PatchCore(backbone, tile_size=None, input_size=(round(h * f), round(w * f)), coreset_ratio=1.0,
                         holdout=0.25, seed=seed, num_threads=threads, **kw)
    raise ValueError(method)


def run_method(method: str, case: Case, *, coreset: float = 0.01, seed: int = 0,
               threads: int = -1, margin: float | None = None,
               intensity: str | None = "standardize", backbone: str = "lite0") -> dict[str, Any]:
    from fissure.anomaly import auroc, pixel_auroc
    from fissure.demo import evaluate

    h, w = case.clean[0].shape[:2]
    pc = make_model(method, h, w, coreset=coreset, seed=seed, threads=threads, margin=margin,
                    intensity=intensity, backbone=backbone)
    t0 = time.perf_counter()
    pc.fit(case.train)
    fit_s = time.perf_counter() - t0

    maps, masks, scores, is_defect, pred_s = [], [], [], [], []
    found_by_kind = {k: [0, 0] for k in KIND_ORDER}
    false_alarms = 0
    peaks: list[np.ndarray] = []  # per defect image: the map's peak on each planted defect
    for surf in case.surfaces:
        t0 = time.perf_counter()
        r = pc.predict(surf.image)
        pred_s.append(time.perf_counter() - t0)
        ev = evaluate(r.mask, surf.labels)
        hit = set(ev["found"])
        for i, d in enumerate(surf.defects):
            found_by_kind[d.kind][1] += 1
            found_by_kind[d.kind][0] += i in hit
        false_alarms += ev["false_alarms"]
        pk = np.zeros(len(surf.defects), np.float32)
        np.maximum.at(pk, surf.labels[surf.labels > 0] - 1, r.anomaly_map[surf.labels > 0])
        peaks.append(pk)
        maps.append(r.anomaly_map)
        masks.append(surf.labels > 0)
        scores.append(r.score)
        is_defect.append(True)
    clean_regions, clean_max, clean_flagged = 0, -np.inf, 0
    for img in case.clean:
        t0 = time.perf_counter()
        r = pc.predict(img)
        pred_s.append(time.perf_counter() - t0)
        clean_regions += len(r.boxes)
        clean_flagged += r.is_anomalous
        clean_max = max(clean_max, float(r.anomaly_map.max()))
        maps.append(r.anomaly_map)
        masks.append(np.zeros(r.anomaly_map.shape, bool))
        scores.append(r.score)
        is_defect.append(False)
    px = pixel_auroc(maps, masks)
    del maps, masks
    planted = sum(b for _, b in found_by_kind.values())
    found = sum(a for a, _ in found_by_kind.values())
    all_peaks = np.concatenate(peaks)
    return {
        "texture": case.texture, "method": method, "seed": seed,
        "image": f"{w}x{h}", "tiles": len(pc._tiles(h, w)),
        "input": (f"{pc.input_size[1]}x{pc.input_size[0]}" if pc.input_size
                  else f"{pc.tile_size[1]}x{pc.tile_size[0]}" if pc.tile_size else f"{w}x{h}"),
        "backend": f"{pc.model.name} {pc.model.device}",
        "pixel_auroc": px,
        "image_auroc": auroc(np.asarray(scores), np.asarray(is_defect)),
        "found": found, "planted": planted,
        "found_by_kind": {k: v for k, v in found_by_kind.items() if v[1]},
        "separable": int((all_peaks > clean_max).sum()),
        "false_alarms": false_alarms, "clean_regions": clean_regions,
        "clean_flagged": int(clean_flagged), "defect_flagged": int(sum(
            s > pc.image_threshold for s, d in zip(scores, is_defect) if d)),
        "threshold": float(pc.threshold), "image_threshold": float(pc.image_threshold),
        "bank": int(pc.stats["bank_size"]), "train_patches": int(pc.stats["train_patches"]),
        "coreset_ratio": pc.coreset_ratio, "threshold_margin": pc.threshold_margin,
        "fit_s": fit_s, "predict_s": statistics.median(pred_s),
        "defect_px": int(sum(int((s.labels > 0).sum()) for s in case.surfaces)),
        "load": os.getloadavg()[0],
    }


# ---------------------------------------------------------------------------- report


def table(rows: list[dict]) -> str:
    head = ("| texture | method | input | tiles | bank | pixel AUROC | image AUROC | found "
            "| scratch / crack / pit / stain | separable | false alarms | regions on defect-free "
            "| fit s | predict s/img |")
    out = [head, "|" + "---|" * 2 + "---:|" * (head.count("|") - 3)]
    for r in rows:
        kinds = " / ".join(f"{r['found_by_kind'][k][0]}/{r['found_by_kind'][k][1]}"
                           for k in KIND_ORDER if k in r["found_by_kind"])
        out.append(
            f"| {r['texture']} | {LABELS[r['method']]} | {r['input']} | {r['tiles']} "
            f"| {r['bank']:,} | {r['pixel_auroc']:.4f} | {r['image_auroc']:.3f} "
            f"| {r['found']}/{r['planted']} | {kinds} | {r['separable']}/{r['planted']} "
            f"| {r['false_alarms']} | {r['clean_regions']} | {r['fit_s']:.1f} "
            f"| {r['predict_s']:.2f} |")
    return "\n".join(out)


def seed_summary(rows: list[dict]) -> str:
    """One line per texture and method over several seeds: min..max of each figure."""
    lines = []
    keys = sorted({(r["texture"], r["method"]) for r in rows},
                  key=lambda k: (k[0], METHODS.index(k[1])))
    for tex, m in keys:
        rs = [r for r in rows if r["texture"] == tex and r["method"] == m]
        px = [r["pixel_auroc"] for r in rs]
        fd = [r["found"] for r in rs]
        lines.append(f"- {tex}, {LABELS[m]}, seeds {','.join(str(r['seed']) for r in rs)}: "
                     f"pixel AUROC {min(px):.4f}..{max(px):.4f}, found {min(fd)}..{max(fd)} of "
                     f"{rs[0]['planted']}, false alarms {min(r['false_alarms'] for r in rs)}.."
                     f"{max(r['false_alarms'] for r in rs)}")
    return "\n".join(lines)


def write_docs(block: str) -> None:
    write_marked_block(str(ROOT / "docs" / "benchmarks.md"), "TEXTURES", block, SECTION)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--textures", default=",".join(TEXTURES))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4: 2.1 MP)")
    ap.add_argument("--defects", type=int, default=12, help="defects per defect image")
    ap.add_argument("--size-range", default="12,32",
                    help="plant_defects window half-size at x4, px (default 12,32)")
    ap.add_argument("--coreset", type=float, default=0.01, help="tiled coreset ratio")
    ap.add_argument("--seeds", default="0", help="comma-separated defect-placement seeds")
    ap.add_argument("--threshold-margin", type=float, default=None,
                    help="PatchCore threshold_margin (default: PatchCore's own)")
    ap.add_argument("--threads", type=int, default=-1)
    ap.add_argument("--intensity", choices=["standardize", "none"], default="standardize",
                    help="PatchCore's intensity setting (default: its default, standardize)")
    ap.add_argument("--backbone", default="lite0", help="a bundled backbone (default lite0)")
    ap.add_argument("--quick", action="store_true", help="gravel at x2, one seed")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--write-docs", action="store_true",
                    help="write the table into docs/benchmarks.md (its own section, at the end)")
    a = ap.parse_args(argv)
    if a.quick:
        a.textures, a.scale = "gravel", 2
    size_range = tuple(int(v) for v in a.size_range.split(","))
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    t_all = time.perf_counter()
    for tex in a.textures.split(","):
        for seed in seeds:
            case = build_case(tex, scale=a.scale, n_defects=a.defects,
                              size_range=size_range, seed=seed)  # type: ignore[arg-type]
            for m in a.methods.split(","):
                r = run_method(m, case, coreset=a.coreset, seed=seed, threads=a.threads,
                               margin=a.threshold_margin,
                               intensity=None if a.intensity == "none" else a.intensity,
                               backbone=a.backbone)
                rows.append(r)
                print(f"{tex} seed {seed} {m}: pixel AUROC {r['pixel_auroc']:.4f}, image AUROC "
                      f"{r['image_auroc']:.3f}, found {r['found']}/{r['planted']} "
                      f"{r['found_by_kind']}, separable {r['separable']}, false alarms "
                      f"{r['false_alarms']}, regions on defect-free {r['clean_regions']}, fit "
                      f"{r['fit_s']:.1f} s, predict {r['predict_s']:.2f} s/img, load "
                      f"{r['load']:.1f}", file=sys.stderr, flush=True)
    total = time.perf_counter() - t_all
    args = list(argv if argv is not None else sys.argv[1:])
    shown = [v for i, v in enumerate(args)  # the command without where its output goes
             if v != "--write-docs" and not v.startswith("--json")
             and not (i and args[i - 1] == "--json")]
    cmd = " ".join(["PYTHONPATH=python python benchmarks/bench_textures.py"] + shown)
    loads = [r["load"] for r in rows]
    block = (f"Command: `{cmd}`. {platform_line('onnxruntime', 'openvino', 'skimage')}; backbone on {rows[0]['backend']}, "
             f"{a.threads if a.threads > 0 else os.cpu_count()} threads; 1-minute load average "
             f"after each row {min(loads):.1f}..{max(loads):.1f}; whole run {total / 60:.1f} min.\n"
             f"Images {rows[0]['image']} (x{a.scale}), {a.defects} defects per defect image "
             f"(half-size {size_range[0]}..{size_range[1]} px at x4), 4 defect + 4 defect-free "
             f"test images per texture, 4 training images; threshold margin "
             f"{rows[0]['threshold_margin']:g}.\n\n" + table(rows))
    if len(seeds) > 1:
        block += "\n\n" + seed_summary(rows)
    print(block)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    if a.write_docs:
        write_docs(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
