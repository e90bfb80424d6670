"""The main job's cost: ``fissure demo`` (12 MP surface, PatchCore fit + predict) timed in
fresh processes, medians of fit, predict and total seconds and of the process's peak RSS,
with ONNX Runtime and with OpenVINO running the backbone.

    PYTHONPATH=python python benchmarks/bench_demo.py [--repeat 3]

Each run is a new interpreter (``python -m fissure demo --json``) so that every peak RSS
counts one demo only; the demo itself checks planted vs found defects and false alarms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _machine import platform_line

CODE = """
import json, sys
import fissure.anomaly.patchcore as pcm
backend = sys.argv[1]
orig = pcm.PatchCore.__init__
def init(self, *a, **k):
    k.setdefault("backend", backend)
    orig(self, *a, **k)
pcm.PatchCore.__init__ = init
from fissure.demo import run_demo
r = run_demo(sys.argv[2], progress=False)
print(json.dumps(r))
"""


def run_once(backend: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([sys.executable, "-c", CODE, backend, d], capture_output=True,
                           text=True, env=os.environ.copy(), check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{platform_line('onnxruntime', 'openvino')}; fissure demo defaults "
          f"(4000x3000 surface, 16 defects, 8 glints, 2 training samples 1536x1536, "
          f"coreset 1%, tile 512, overlap 0.25); median of {args.repeat} fresh processes\n")
    print("| backbone backend | generate s | fit s | predict 12 MP s | total s | peak RSS MB | found | false alarms |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in ("onnxruntime", "openvino"):
        runs = [run_once(backend) for _ in range(args.repeat)]
        med = {k: statistics.median(r["seconds"][k] for r in runs)
               for k in ("generate", "fit", "predict", "total")}
        peak = statistics.median(r["peak_rss_bytes"] for r in runs) / 2**20
        found = {f"{r['found']}/{r['planted_count']}" for r in runs}
        fa = {r["false_alarms"] for r in runs}
        print(f"| {backend} | {med['generate']:.1f} | {med['fit']:.1f} | {med['predict']:.1f} | "
              f"{med['total']:.1f} | {peak:.0f} | {', '.join(sorted(found))} | "
              f"{', '.join(map(str, sorted(fa)))} |", flush=True)


if __name__ == "__main__":
    main()
