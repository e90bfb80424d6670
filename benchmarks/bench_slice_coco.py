"""``fissure slice-coco`` against SAHI's ``sahi.slicing.slice_coco`` on a generated dataset.

    PYTHONPATH=python python benchmarks/bench_slice_coco.py [--images 20] [--rounds 3]

The dataset (built once into ``--workdir``): ``--images`` JPEG photos of 4000x3000 (smooth
content with sensor-like noise, quality 90), each with ``--polygons`` polygon annotations
(convex and concave, 8..300 px, a third of them box-only), 3 categories. Both libraries cut
it into 512x512 tiles with 0.2 overlap (SAHI's defaults, PNG tiles) and write the tiles and
the COCO JSON. Rows: SAHI (PIL writes PNG at zlib level 6), fissure at its default (OpenCV's
PNG level 1: the same pixels, larger files) and fissure at level 6 (SAHI's file sizes), so
the part of the gap that is the PNG level shows. Each run is a fresh process: the wall time of the call (imports excluded),
its CPU time (user + system, all threads: steadier than wall time on a shared machine) and
its peak RSS (``VmHWM`` after resetting it, minus ``VmRSS`` before; see ``_peak.py``).
Rounds are interleaved (SAHI, fissure, then fissure, SAHI, ...); the table gives medians.
The outputs of the last round are compared (same tile names, same COCO dict).

This is a script, not a pytest-benchmark suite (one call is many seconds and spawns
processes); ``python -m pytest benchmarks`` collects nothing from it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import ctypes, gc, json, sys, time
impl, ann, img, out, workers = sys.argv[1:6]
kw = {}
if impl == "sahi":
    from sahi.slicing import slice_coco
    import logging; logging.getLogger("sahi").setLevel(logging.ERROR)
else:
    from fissure.slice_coco import slice_coco
    if int(workers):
        kw["num_workers"] = int(workers)
    if impl == "fissure-l6":
        kw["png_compression"] = 6
import cv2, numpy, shapely, tqdm  # imported before the measurement, for both
def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
gc.collect()
try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
except OSError:
    pass
open("/proc/self/clear_refs", "w").write("5")
before = kb("VmRSS")
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0 = cpu()
t0 = time.perf_counter()
coco, path = slice_coco(ann, img, "sliced", out, slice_height=512, slice_width=512,
                        overlap_height_ratio=0.2, overlap_width_ratio=0.2, **kw)
dt = time.perf_counter() - t0
dc = cpu() - c0
import os
size = sum(e.stat().st_size for e in os.scandir(out) if e.name.endswith(".png"))
print(json.dumps({"seconds": dt, "cpu_seconds": dc, "peak_mb": (kb("VmHWM") - before) / 1024, "out_mb": size / 2**20,
                  "tiles": len(coco["images"]), "annotations": len(coco["annotations"])}))
"""


def build(workdir: Path, n_images: int, n_polygons: int, h: int = 3000, w: int = 4000) -> Path:
    import cv2
    import numpy as np

    root = workdir / f"data_{n_images}x{n_polygons}_{w}x{h}"
    ann_path = root / "coco.json"
    if ann_path.is_file():
        return ann_path
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261204)
    images, anns = [], []
    for i in range(n_images):
        small = rng.integers(40, 220, (h // 100, w // 100, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img += rng.normal(0, 4, (h, w, 1)).astype(np.int16)
        img = np.clip(img, 0, 255).astype(np.uint8)
        name = f"img_{i:03d}.jpg"
        cv2.imwrite(str(root / "images" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        for _ in range(n_polygons):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(4, 150)
            k = int(rng.integers(5, 13))
            t = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = r * rng.uniform(0.4, 1.0, k)  # star-shaped: often concave
            xs = np.clip(cx + rad * np.cos(t), 0, w)
            ys = np.clip(cy + rad * np.sin(t), 0, h)
            bbox = [float(xs.min()), float(ys.min()), float(np.ptp(xs)), float(np.ptp(ys))]
            if bbox[2] < 1 or bbox[3] < 1:
                continue
            a = {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(rng.integers(1, 4)),
                 "bbox": bbox, "iscrowd": 0, "area": bbox[2] * bbox[3]}
            if rng.random() < 2 / 3:
                a["segmentation"] = [np.stack([xs, ys], 1).ravel().round(1).tolist()]
            anns.append(a)
    cats = [{"id": 1, "name": "scratch"}, {"id": 2, "name": "dent"}, {"id": 3, "name": "pit"}]
    ann_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann_path


def run_one(impl: str, ann: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent / "python") + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", CHILD, impl, str(ann), str(ann.parent / "images"),
                        str(out), str(workers)], capture_output=True, text=True, env=env,
                       check=False)
    if r.returncode != 0:
        raise SystemExit(f"{impl} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--polygons", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="fissure's num_workers (0: default)")
    ap.add_argument("--impls", default="sahi,fissure,fissure-l6",
                    help="comma-separated: sahi, fissure, fissure-l6 (PNG level 6)")
    ap.add_argument("--workdir", default="/tmp/fissure-bench-slice-coco")
    args = ap.parse_args()
    work = Path(args.workdir)
    t0 = time.perf_counter()
    ann = build(work, args.images, args.polygons)
    print(f"dataset: {ann} ({time.perf_counter() - t0:.1f} s)", flush=True)
    impls = [k.strip() for k in args.impls.split(",") if k.strip()]
    results: dict[str, list[dict]] = {k: [] for k in impls}
    for r in range(args.rounds):
        order = impls if r % 2 == 0 else impls[::-1]
        for impl in order:
            res = run_one(impl, ann, work / f"out_{impl}", args.workers)
            results[impl].append(res)
            print(f"round {r + 1} {impl}: {res['seconds']:.2f} s "
                  f"(CPU {res['cpu_seconds']:.2f} s), peak {res['peak_mb']:.0f} MB, "
                  f"{res['tiles']} tiles, {res['annotations']} annotations", flush=True)
    med = {k: statistics.median(x["seconds"] for x in v) for k, v in results.items()}
    cpu = {k: statistics.median(x["cpu_seconds"] for x in v) for k, v in results.items()}
    peak = {k: statistics.median(x["peak_mb"] for x in v) for k, v in results.items()}
    n_tiles = results[impls[0]][-1]["tiles"]
    labels = {"sahi": "SAHI 0.12.8 slice_coco (PIL, PNG level 6)",
              "fissure": "fissure slice_coco (OpenCV, PNG level 1, default)",
              "fissure-l6": "fissure slice_coco, png_compression=6"}
    sys.path.insert(0, str(HERE))
    from _machine import platform_line

    print()
    print(platform_line("sahi", "shapely", "cv2", "PIL"))
    print()
    print(f"| {args.images} images 4000x3000, {args.polygons} annotations each, 512/0.2, "
          f"{n_tiles} PNG tiles | median wall s ({args.rounds}r) | SAHI / row, wall "
          "| median CPU s | SAHI / row, CPU | peak RSS MB | tiles MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in impls:
        ratio = f"{med['sahi'] / med[k]:.1f}x" if "sahi" in med else "-"
        cratio = f"{cpu['sahi'] / cpu[k]:.1f}x" if "sahi" in cpu else "-"
        print(f"| {labels[k]} | {med[k]:.2f} | {ratio} | {cpu[k]:.2f} | {cratio} | "
              f"{peak[k]:.0f} | {results[k][-1]['out_mb']:.0f} |")
    if "sahi" in impls:
        a = json.loads((work / "out_sahi" / "sliced_coco.json").read_text())
        for k in impls:
            if k == "sahi":
                continue
            b = json.loads((work / f"out_{k}" / "sliced_coco.json").read_text())
            files = (sorted(p.name for p in (work / "out_sahi").glob("*.png"))
                     == sorted(p.name for p in (work / f"out_{k}").glob("*.png")))
            print(f"{k}: COCO dict identical to SAHI's: {a == b}; tile names identical: {files}")


if __name__ == "__main__":
    main()
