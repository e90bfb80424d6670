"""The feedback loop measured: false alarms on a held-out set before and after one
``PatchCore.update`` round, on the demo's surface with a benign texture variation the bank has
not seen, and the planted defects' recall before and after.

    PYTHONPATH=python python benchmarks/bench_update.py [--threads -1]

The bank is the demo's (``fissure demo``: two defect-free brushed-metal samples of
1536 x 1536, coreset 1 %, tile 512, glare masked). The variation is the same metal with
another tint (a bluish batch: ``tint=(-20, 0, 25)`` instead of ``(6, 2, -4)``). Held out, never
shown to update: four defect-free variation samples of 1536 x 1536 (every region on them is a
false alarm) and a demo-sized 4000 x 3000 variation surface with 16 planted defects and 8
glints (recall, and false alarms by the demo's own rule). The fitted texture's own demo
surface is scored too: an update must not cost recall there.

Two update rounds, each from the demo's bank:

* ``images``: two further defect-free variation samples of 1536 x 1536;
* ``crops``: what a reviewer sends back: a 128 x 128 crop around each false alarm on one
  further (not held-out) defect-free variation sample.

Ground truth is planted (``fissure.anomaly.synthetic``); regions are counted by the demo's
``evaluate``.
"""

from __future__ import annotations

import argparse
import time

from _machine import platform_line

VARIANT = (-20.0, 0.0, 25.0)
SIDE = 1536


def _regions(mask) -> int:
    import cv2

    return cv2.connectedComponents(mask.view("uint8"), connectivity=8)[0] - 1


def main() -> None:
    from fissure.anomaly import PatchCore
    from fissure.anomaly.synthetic import brushed_metal, plant_defects
    from fissure.demo import evaluate

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=-1)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--intensity", choices=["standardize", "none"], default="standardize",
                    help="PatchCore's intensity setting (default: its default, standardize)")
    args = ap.parse_args()
    kw = dict(num_threads=args.threads, backend=args.backend,
              intensity=None if args.intensity == "none" else args.intensity)

    def fitted() -> PatchCore:  # the demo's bank (run_demo's settings, seed 0)
        pc = PatchCore(coreset_ratio=0.01, specular="mask", seed=0, **kw)
        return pc.fit([brushed_metal(SIDE, SIDE, seed=1 + i) for i in range(2)])

    held_clean = [brushed_metal(SIDE, SIDE, seed=500 + i, tint=VARIANT) for i in range(4)]
    var_surf = plant_defects(brushed_metal(3000, 4000, seed=600, tint=VARIANT), 16,
                             n_glints=8, seed=601)
    base_surf = plant_defects(brushed_metal(3000, 4000, seed=100), 16, n_glints=8, seed=200)

    def measure(pc: PatchCore, old: tuple = ()) -> dict:
        maps = [pc.predict(im).anomaly_map for im in held_clean]
        fa_clean = sum(_regions(m > pc.threshold) for m in maps)
        # the same maps at the old bank's pixel threshold: what the grown bank alone does
        fa_old_thr = sum(_regions(m > old[0]) for m in maps) if old else fa_clean
        ev_v = evaluate(pc.predict(var_surf.image).mask, var_surf.labels, var_surf.glints)
        ev_b = evaluate(pc.predict(base_surf.image).mask, base_surf.labels, base_surf.glints)
        return {"fa_clean": fa_clean, "fa_old_thr": fa_old_thr, "fa_var": ev_v["false_alarms"],
                "found_var": len(ev_v["found"]), "fa_base": ev_b["false_alarms"],
                "found_base": len(ev_b["found"]), "rows": int(pc.bank.shape[0]),
                "thr": float(pc.threshold), "ithr": float(pc.image_threshold)}

    print(f"{platform_line('onnxruntime', 'openvino')}; demo bank (2 x {SIDE}^2 samples, "
          "coreset 1%, tile 512, glare masked); variation tint (-20, 0, 25)\n")
    t = time.perf_counter()
    base = fitted()
    t_fit = time.perf_counter() - t
    before = measure(base)
    review = brushed_metal(SIDE, SIDE, seed=700, tint=VARIANT)
    r = base.predict(review)
    crops = []
    for x0, y0, x1, y1 in r.boxes.astype(int).tolist():
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        cx, cy = min(max(cx, 64), SIDE - 64), min(max(cy, 64), SIDE - 64)
        crops.append(review[cy - 64:cy + 64, cx - 64:cx + 64])
    rounds = {"images": [brushed_metal(SIDE, SIDE, seed=800 + i, tint=VARIANT) for i in range(2)],
              "crops": crops}
    n_var = len(var_surf.defects)
    n_base = len(base_surf.defects)
    print(f"fit {t_fit:.1f} s; the review sample has {len(crops)} false alarm(s) -> "
          f"{len(crops)} crop(s) of 128 x 128\n")
    print("| bank | update input | update s | bank rows | pixel thr | image thr | "
          "false alarms, 4 held-out variation samples | the same at the demo bank's pixel "
          "threshold | variation surface: found | "
          "variation surface: false alarms | fitted-texture surface: found | "
          "fitted-texture surface: false alarms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def row(name: str, what: str, secs: str, m: dict) -> None:
        print(f"| {name} | {what} | {secs} | {m['rows']} | {m['thr']:.2f} | {m['ithr']:.2f} | "
              f"{m['fa_clean']} | {m['fa_old_thr']} | {m['found_var']}/{n_var} | {m['fa_var']} | "
              f"{m['found_base']}/{n_base} | {m['fa_base']} |", flush=True)

    row("demo bank", "-", "-", before)
    for name, items in rounds.items():
        if not items:
            print(f"| updated ({name}) | nothing to send |" + " - |" * 10)
            continue
        pc = fitted()
        t = time.perf_counter()
        pc.update(items)
        dt = time.perf_counter() - t
        what = (f"{len(items)} samples {SIDE}^2" if name == "images"
                else f"{len(items)} crops 128^2")
        row(f"updated ({name})", what, f"{dt:.1f}", measure(pc, (before["thr"],)))


if __name__ == "__main__":
    main()
