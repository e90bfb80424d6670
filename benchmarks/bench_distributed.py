"""The Ray Data engine (fissure.distributed.run) against the single-process folder run
(fissure.runs.run_folder) on the same folder, at equal cores.

Configurations (each a whole folder run into a fresh run directory, model build included;
the local Ray instance is started once, before the rounds, and its start is reported apart):

* ``local 1x2``: ``run_folder``, one detector with 2 threads (the single-machine engine);
* ``ray 1x2``: ``distributed.run``, 1 actor reserving 2 CPUs, its detector with 2 threads
  (the same parallelism: the difference is the engine's overhead);
* ``ray 2x1``: ``distributed.run``, 2 actors of 1 CPU, each detector with 1 thread (how one
  would use Ray on a machine: one actor per core);

each Ray one with 1 image per actor call (``b1``, the default) and with 4 (``b4``: reading
and writing overlap the model within a call).

Each run is timed at every input's commit (both engines append the manifest through
``Run.commit``): "first result" is the time from the call to the first committed input (model
build; for Ray also the actors' start and the executor's), "per image" the time from the
start of the first image's model run (stamped by the job, wall clock) to the last commit,
divided by the images: every per-image cost of the engine (task dispatch, reading, writing,
the manifest), none of the start. (The first image's read is outside it for both engines.) Overhead per image = Ray's rate - the local
run's rate. Rounds are interleaved (each round runs every configuration, in a rotated order),
after one warm-up Ray run (worker processes, imports, file caches).

    PYTHONPATH=python python benchmarks/bench_distributed.py                  # toy detector
    PYTHONPATH=python python benchmarks/bench_distributed.py --detector ocr   # PP-OCRv4 det

``--detector toy``: the bright-spot detector (a tiny model: the engine's overhead is the
largest share it can be); ``ocr``: PP-OCRv4 det (DBNet, rapidocr-onnxruntime wheel) at
640 px tiles, a real model's cost per tile. Needs ``ray[data]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OCR_REL = "models/ch_PP-OCRv4_det_infer.onnx"


def make_folder(root: Path, n: int, h: int, w: int, detector: str) -> tuple[list[Path], dict]:
    import cv2

    from fissure.detection.toy import bright_spot_model, bright_spots

    d = root / "imgs"
    d.mkdir()
    paths = []
    for i in range(n):
        img, _ = bright_spots(h, w, 12, seed=i, value=200)
        if detector == "ocr":
            rng = np.random.default_rng(i)
            for _ in range(12):
                x, y = int(rng.integers(20, w - 200)), int(rng.integers(40, h - 20))
                cv2.putText(img, f"LOT {int(rng.integers(100))}", (x, y),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2, cv2.LINE_AA)
        p = d / f"im{i:03d}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    if detector == "toy":
        model = root / "blobs.onnx"
        model.write_bytes(bright_spot_model())
        kwargs: dict = {"model": str(model), "tile_size": 256}
    else:
        spec = importlib.util.find_spec("rapidocr_onnxruntime")
        if spec is None or spec.origin is None:
            raise SystemExit("--detector ocr needs rapidocr-onnxruntime (pip install --no-deps)")
        kwargs = {"model": str(Path(spec.origin).parent / OCR_REL), "tile_size": 640,
                  "decoder": "probability_map", "decoder_options": {"mask_threshold": 0.3},
                  "conf_threshold": 0.5, "class_names": ["text"],
                  "preprocess": {"mode": "none", "rgb": False, "mean": (0.5, 0.5, 0.5),
                                 "std": (0.5, 0.5, 0.5)}}
    return paths, kwargs


def stamped_job_class():
    """DetectJob whose rows carry ``t0``: the wall-clock time its process() began (the same
    clock in every process of this machine), so both engines' steady rate can be timed from
    the first image's processing to the last commit, without the actors' start."""
    from fissure.jobs import DetectJob

    class Stamped(DetectJob):
        def process(self, image, item):
            t0 = time.time()
            outcome = super().process(image, item)
            outcome.row["t0"] = t0
            return outcome

    return Stamped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", choices=["toy", "ocr"], default="toy")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", default="1536x2048", help="HxW of each image")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import ray

    from fissure import distributed
    from fissure.jobs import DetectJob
    from fissure.runs import Run, run_folder

    h, w = (int(v) for v in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="fissure-bench-ray-"))
    try:
        paths, kw = make_folder(tmp, args.images, h, w, args.detector)
        model = kw.pop("model")

        Stamped = stamped_job_class()

        def job(threads: int) -> DetectJob:
            return Stamped(model, backend="onnxruntime", num_threads=threads, **kw)

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
        ray_start = time.perf_counter() - t

        commits: list[float] = []
        commit = Run.commit

        def timed_commit(self: Run, record: dict) -> None:  # both engines commit here
            commit(self, record)
            commits.append(time.time())

        Run.commit = timed_commit  # type: ignore[method-assign]
        configs = {
            "local 1x2": lambda out: run_folder(job(2), paths, out),
            "ray 1x2 b1": lambda out: distributed.run(job(2), paths, out, actors=1, num_cpus=2,
                                                      batch_size=1),
            "ray 1x2 b4": lambda out: distributed.run(job(2), paths, out, actors=1, num_cpus=2,
                                                      batch_size=4),
            "ray 2x1 b1": lambda out: distributed.run(job(1), paths, out, actors=2, num_cpus=1,
                                                      batch_size=1),
            "ray 2x1 b4": lambda out: distributed.run(job(1), paths, out, actors=2, num_cpus=1,
                                                      batch_size=4),
        }
        names = list(configs)
        got: dict[str, list[tuple[float, float, float]]] = {k: [] for k in names}
        dets: dict[str, int] = {}
        for name in names:  # warm-up: Ray's worker processes, imports, file caches
            if name.startswith("ray"):
                distributed.run(job(1), paths[:2], tmp / "warm", actors=2, num_cpus=1)
                shutil.rmtree(tmp / "warm")
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                out = tmp / f"out-{name.replace(' ', '_')}-{r}"
                commits.clear()
                t = time.time()
                report = configs[name](out)
                wall = time.time() - t
                assert report.exit_status == 0 and len(commits) == len(paths), name
                dets[name] = sum(x["row"]["detections"] for x in report.records)
                first = commits[0] - t
                began = min(x["row"]["t0"] for x in report.records)
                per = (commits[-1] - began) / len(paths)  # from the first image's model run
                got[name].append((wall, first, per))
                shutil.rmtree(out)
                print(f"round {r + 1} {name}: wall {wall:.2f} s, first result {first:.2f} s, "
                      f"{per * 1000:.0f} ms / image", file=sys.stderr)
        ray.shutdown()
        assert len(set(dets.values())) == 1, dets  # the same detections from every engine
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = len(paths)

    def med(name: str, i: int) -> float:
        return statistics.median(v[i] for v in got[name])

    base = med("local 1x2", 2)
    print(f"\n{n} images {h}x{w} ({h * w / 1e6:.1f} MP), detector {args.detector}, "
          f"{args.rounds} interleaved rounds, medians. first result: from the call to the "
          f"first input committed (model build, actors' start); per image: (last commit - "
          f"start of the first image's model run) / {n}; local Ray start {ray_start:.1f} s "
          "(once per process, not counted)\n")
    print(f"| engine | actors x threads | images / call | wall s, {n} images | "
          "first result s | ms / image | overhead ms / image | overhead per image |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        per = med(name, 2)
        over = "-" if name == "local 1x2" else f"{(per - base) * 1000:+.0f}"
        pct = "-" if name == "local 1x2" else f"{(per - base) / base * 100:+.1f}%"
        calls = "-" if name.startswith("local") else name.split()[2][1:]
        print(f"| {name.split()[0]} | {name.split()[1]} | {calls} | {med(name, 0):.2f} | "
              f"{med(name, 1):.2f} | {per * 1000:.0f} | {over} | {pct} |")


if __name__ == "__main__":
    main()
