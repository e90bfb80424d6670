"""``fissure demo``: the built-in example, end to end with no data and no download.

Generates a 12 MP brushed-metal surface with small planted defects (scratches, cracks, pits,
stains) and specular glints, fits PatchCore with the bundled backbone on defect-free samples
of the same surface, predicts the test surface tile by tile with glare masked, and checks
the result against the planted ground truth: defects found, false alarms, time and peak
memory. Writes the overlay (``heatmap.jpg``), a JSON report, the test image, the
defect-free training samples (``normal/``) and the memory bank, so that ``fissure anomaly fit``
and ``predict`` can be tried on them next (:func:`next_commands`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._optional import require_cv2

__all__ = ["evaluate", "next_commands", "peak_rss_bytes", "run_demo"]


def next_commands(out_dir: Path) -> list[str]:
    """The commands the demo suggests next (README.md's set-up section shows them for the
    default folder): fit a bank from the saved defect-free samples, predict the saved
    surface with it."""
    out = Path(out_dir).as_posix()
    return [f"fissure anomaly fit {out}/normal --out {out}/bank.safetensors --specular mask",
            f"fissure anomaly predict {out}/bank.safetensors {out}/surface.png "
            f"--out {out}/predict"]


def peak_rss_bytes() -> Optional[int]:
    """This process's peak resident set size in bytes, or None where the OS does not say."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def evaluate(mask: np.ndarray, labels: np.ndarray, glints: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Compares a predicted defect mask with planted ground truth.

    A planted defect (label ``i + 1`` in ``labels``) is found when a predicted region (an
    8-connected component of ``mask``) covers any of its pixels; a predicted region that
    covers no planted defect is a false alarm (and ``on_glints`` counts those that touch a
    glint).
    """
    cv2 = require_cv2("the demo")

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    n, comp = cv2.connectedComponents(m, connectivity=8)
    hit_regions = np.zeros(n, bool)
    on_defect = labels > 0
    hit_regions[np.unique(comp[on_defect])] = True
    found = np.unique(labels[on_defect & (m > 0)])
    false_ids = np.flatnonzero(~hit_regions[1:]) + 1
    on_glints = 0
    if glints is not None and false_ids.size:
        touched = np.zeros(n, bool)
        touched[np.unique(comp[glints])] = True
        on_glints = int(touched[false_ids].sum())
    return {"found": sorted(int(v) - 1 for v in found), "regions": int(n - 1),
            "false_alarms": int(false_ids.size), "false_on_glints": on_glints}


def run_demo(
    out_dir: Optional[Path] = Path("fissure-demo"),
    *,
    width: int = 4000,
    height: int = 3000,
    n_defects: int = 16,
    n_glints: int = 8,
    train_size: int = 1536,
    n_train: int = 2,
    coreset_ratio: float = 0.01,
    seed: int = 0,
    num_threads: int = -1,
    progress: bool = True,
    log: Any = None,
    overlay_format: str = "jpg",
) -> dict[str, Any]:
    """Runs the example and returns its report (what ``fissure demo --json`` prints).

    ``log`` is called with one line per finished step (None: silent). ``overlay_format``:
    ``"jpg"`` (quality 90) or ``"png"`` for ``heatmap.*``.
    """
    if overlay_format not in ("jpg", "png"):
        raise ValueError(f"overlay_format: expected 'jpg' or 'png', got {overlay_format!r}")
    from .anomaly import PatchCore
    from .anomaly.synthetic import brushed_metal, plant_defects
    from .io import write_image_atomic, write_json_atomic

    say = log or (lambda _line: None)
    t_start = time.perf_counter()
    surf = plant_defects(brushed_metal(height, width, seed=seed + 100), n_defects,
                         n_glints=n_glints, seed=seed + 200)
    normals = [brushed_metal(train_size, train_size, seed=seed + 1 + i) for i in range(n_train)]
    kinds: dict[str, int] = {}
    for d in surf.defects:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    t_gen = time.perf_counter() - t_start
    say(f"surface {width}x{height} ({width * height / 1e6:.1f} MP): "
        f"{len(surf.defects)} planted defects ("
        + ", ".join(f"{v} {k}{'es' if k.endswith('ch') else 's'}" for k, v in kinds.items())
        + f"), {len(surf.glint_boxes)} specular glints; generated in {t_gen:.1f} s")

    pc = PatchCore(coreset_ratio=coreset_ratio, specular="mask", seed=seed,
                   num_threads=num_threads)
    t0 = time.perf_counter()
    pc.fit(normals, progress=progress)
    t_fit = time.perf_counter() - t0
    st = pc.stats
    say(f"fit: {n_train} defect-free samples {train_size}x{train_size}, "
        f"{st['train_patches']:,} patches -> bank of {st['bank_size']:,} (k-center "
        f"{coreset_ratio:.0%}), {t_fit:.1f} s")

    t0 = time.perf_counter()
    res = pc.predict(surf.image)
    t_pred = time.perf_counter() - t0
    ev = evaluate(res.mask, surf.labels, surf.glints)
    found = set(ev["found"])
    by_kind = {k: [0, 0] for k in kinds}
    for i, d in enumerate(surf.defects):
        by_kind[d.kind][1] += 1
        by_kind[d.kind][0] += i in found
    n_tiles = len(pc._tiles(height, width))
    say(f"predict: {n_tiles} tiles of {pc.tile_size[1] if pc.tile_size else width} px, image score "
        f"{res.score:.1f} (threshold {res.image_threshold:.1f}): "
        f"{'ANOMALOUS' if res.is_anomalous else 'normal'}, {t_pred:.1f} s")
    say(f"found {len(found)}/{len(surf.defects)} planted defects ("
        + ", ".join(f"{k} {a}/{b}" for k, (a, b) in by_kind.items())
        + f"); false alarms: {ev['false_alarms']}"
        + (f" ({ev['false_on_glints']} at glints)" if ev["false_on_glints"] else ""))
    glare_px = int(res.glare.sum()) if res.glare is not None else 0
    say(f"glare: {glare_px:,} px masked (V > 240, S < 30, grown {pc.specular_dilate} px) over "
        f"{len(surf.glint_boxes)} glints")

    # a further defect-free sample: it should be called normal with no regions
    clean = brushed_metal(train_size, train_size, seed=seed + 50)
    t0 = time.perf_counter()
    res_clean = pc.predict(clean)
    t_clean = time.perf_counter() - t0
    say(f"defect-free sample {train_size}x{train_size}: score {res_clean.score:.1f}: "
        f"{'ANOMALOUS' if res_clean.is_anomalous else 'normal'}, "
        f"{len(res_clean.boxes)} regions, {t_clean:.1f} s")

    report: dict[str, Any] = {
        "image": {"width": width, "height": height, "megapixels": width * height / 1e6},
        "planted": [
            {"kind": d.kind, "box": list(d.box), "area": d.area, "found": i in found}
            for i, d in enumerate(surf.defects)
        ],
        "glints": surf.glint_boxes.tolist(),
        "found": len(found),
        "planted_count": len(surf.defects),
        "false_alarms": ev["false_alarms"],
        "false_alarms_on_glints": ev["false_on_glints"],
        "by_kind": {k: {"found": a, "planted": b} for k, (a, b) in by_kind.items()},
        "result": res.to_dict(),
        "defect_free_sample": {"score": res_clean.score, "is_anomalous": res_clean.is_anomalous,
                               "regions": len(res_clean.boxes)},
        "fit": {"images": n_train, "size": train_size, "coreset_ratio": coreset_ratio,
                **{k: v for k, v in st.items()}},
        "seconds": {"generate": t_gen, "fit": t_fit, "predict": t_pred,
                    "predict_defect_free": t_clean},
    }
    if out_dir is not None:
        out = Path(out_dir)
        t0 = time.perf_counter()
        heatmap = f"heatmap.{overlay_format}"
        write_image_atomic(out / heatmap, res.overlay(surf.image))
        write_image_atomic(out / "surface.png", surf.image)
        normal_files = [f"normal/normal_{i}.png" for i in range(1, n_train + 1)]
        for name, img in zip(normal_files, normals):
            write_image_atomic(out / name, img)
        pc.save(out / "bank.safetensors")
        report["seconds"]["write"] = time.perf_counter() - t0
        files = [heatmap, "report.json", "surface.png", *normal_files, "bank.safetensors"]
        report["files"] = [str(out / n) for n in files]
        report["bytes_written"] = sum((out / n).stat().st_size for n in files
                                      if n != "report.json")
    report["seconds"]["total"] = time.perf_counter() - t_start
    peak = peak_rss_bytes()  # the whole run, the pictures' encoding included
    report["peak_rss_bytes"] = peak
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "report.json", report)
    mem = f", peak memory {peak / 2**20:,.0f} MB" if peak else ""
    say(f"total {report['seconds']['total']:.1f} s{mem}")
    if out_dir is not None:
        size = report["bytes_written"] + (Path(out_dir) / "report.json").stat().st_size
        say(f"wrote {Path(out_dir).as_posix()}/: heatmap.{overlay_format} (overlay), report.json, "
            f"surface.png, normal/ ({n_train} defect-free samples), bank.safetensors; "
            f"{size / 1e6:.1f} MB")
        say("next, the same from the command line:")
        for cmd in next_commands(Path(out_dir)):
            say("  " + cmd)
    return report
