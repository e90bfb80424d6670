"""Folder runs: the streaming run (fissure.runs.run_folder: read-ahead thread, model, write-
behind thread, manifest) against the loop it replaced (read, detect, write, one after the
other in one thread), on a folder of 24 MP JPEG photos.

    PYTHONPATH=python python benchmarks/bench_folder.py [--images 50] [--rounds 3]
        [--detector toy|ocr] [--size 6000x4000]

Both sides run the same job (fissure.jobs.DetectJob: TiledDetector, 640 px tiles, a COCO
JSON and a JPEG overlay per image) over the same files; rounds interleave the two sides and
the table gives medians. "read+write share" is the time the model thread spent waiting for
reading and writing, as a share of wall time (the streaming run's own accounting in
summary.json ``run.timings``); for the loop it is its reading and writing time.

``--detector toy``: the toy bright-spot detector (a one-node ONNX graph): the model costs
almost nothing, so this is the worst case for the I/O share. ``--detector ocr``: the
PP-OCRv4 det from the rapidocr-onnxruntime wheel, a real network with a real cost per tile.

Not a pytest file: a plain script that prints a Markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_folder(n: int, w: int, h: int) -> Path:
    """``n`` JPEG photos (quality 90) of brushed metal with bright spots, cached."""
    import cv2

    from fissure.anomaly.synthetic import brushed_metal

    d = Path(os.environ.get("FISSURE_BENCH_CACHE", Path(tempfile.gettempdir()) / "fissure-bench")) \
        / f"folder-{w}x{h}"
    d.mkdir(parents=True, exist_ok=True)
    base = None
    for i in range(n):
        p = d / f"photo{i:03d}.jpg"
        if p.exists():
            continue
        if base is None:
            base = brushed_metal(h, w, seed=1)
        rng = np.random.default_rng(i)
        img = np.roll(base, int(rng.integers(0, w)), axis=1).copy()
        for _ in range(8):
            x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            img[y:y + 24, x:x + 30] = (200, 200, 200)
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return d


def job_for(detector: str, tmp: Path):
    from fissure.jobs import DetectJob

    if detector == "toy":
        from fissure.detection.toy import bright_spot_model

        model = tmp / "spots.onnx"
        model.write_bytes(bright_spot_model())
        return DetectJob(str(model), tile_size=640, backend="onnxruntime")
    from bench_inspect import OCR_REL

    import importlib.util

    from fissure import PreprocessConfig

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        raise SystemExit("--detector ocr needs rapidocr-onnxruntime (pip install --no-deps)")
    cfg = PreprocessConfig(input_size=(640, 640), mode="none", rgb=False,
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return DetectJob(str(Path(spec.origin).parent / OCR_REL), tile_size=640,
                     decoder="probability_map", decoder_options={"mask_threshold": 0.3},
                     conf_threshold=0.5, preprocess=cfg, class_names=["text"])


def serial_loop(job, paths: list[Path], out: Path) -> dict:
    """The loop before folder runs: read, process, write, in one thread."""
    from fissure import io as fio
    from fissure.runs import Run, write_outcome

    run = Run(job, paths, out)
    t0 = time.perf_counter()
    io_s = 0.0
    with job:
        for it in run.items:
            t = time.perf_counter()
            img = fio.read_image(it.path)
            io_s += time.perf_counter() - t
            outcome = job.process(img, it)
            t = time.perf_counter()
            write_outcome(out, outcome)
            io_s += time.perf_counter() - t
    wall = time.perf_counter() - t0
    return {"wall": wall, "io_share": io_s / wall}


def streaming(job, paths: list[Path], out: Path) -> dict:
    from fissure.runs import run_folder

    report = run_folder(job, paths, out)
    t = report.timings
    return {"wall": t["wall_s"],
            "io_share": (t["read_wait_s"] + t["write_wait_s"]) / t["wall_s"],
            "read_s": t["read_s"], "write_s": t["write_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--detector", choices=["toy", "ocr"], default="toy")
    ap.add_argument("--size", default="6000x4000")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    folder = make_folder(a.images, w, h)
    paths = sorted(folder.glob("*.jpg"))[:a.images]
    tmp = Path(tempfile.mkdtemp(prefix="fissure-folder-"))
    job = job_for(a.detector, tmp)
    res: dict[str, list[dict]] = {"loop": [], "stream": []}
    try:
        for r in range(a.rounds):
            for name, fn in (("loop", serial_loop), ("stream", streaming)):
                out = tmp / f"{name}{r}"
                res[name].append(fn(job, paths, out))
                shutil.rmtree(out, ignore_errors=True)
                print(f"round {r} {name}: {res[name][-1]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in res[name])

    n = len(paths)
    print(f"{n} images {w}x{h} JPEG, detector {a.detector}, {a.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPUs")
    print()
    print("| run | wall s (median) | images/s | read+write share of wall |")
    print("|---|---:|---:|---:|")
    for name, label in (("loop", "serial loop (before)"), ("stream", "run_folder (streaming)")):
        print(f"| {label} | {med(name, 'wall'):.1f} | {n / med(name, 'wall'):.3f} | "
              f"{100 * med(name, 'io_share'):.1f}% |")
    print(f"\nspeed-up {med('loop', 'wall') / med('stream', 'wall'):.2f}x; the streaming run "
          f"read for {med('stream', 'read_s'):.1f} s and wrote for {med('stream', 'write_s'):.1f}"
          " s on its own threads")


if __name__ == "__main__":
    main()
