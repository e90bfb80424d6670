"""Tiled detection end to end: fissure.TiledDetector against supervision's InferenceSlicer and a
SAHI slicing loop, on the same model, the same tiles and the same images.

Model: PP-OCRv4 det (DBNet, ``pip install --no-deps rapidocr-onnxruntime``, or
FISSURE_BENCH_MODEL=/path/to/model.onnx). Images: rendered text pages (light texture, small
dark words 10-16 px tall, one per 64x150 cell, exact ground truth from cv2.getTextSize):
12 MP (4000x3000, 1000 words) and 24 MP (6000x4000, 2000 words). Tiles: 640 px, overlap 0.2
(SAHI's grid; supervision's ``overlap_wh=128`` gives the same grid on these sizes: checked).
Every method preprocesses as rapidocr does (BGR, ``(x / 255 - 0.5) / 0.5``), binarises the map
with ``p > 0.3``, splits 8-connected components, scores each by its mean probability, keeps
``score >= 0.5`` and returns one detection with an instance mask per component, merged with
greedy NMM / NMM at IoS 0.5 (SAHI's default postprocess):

* ``fissure-ort`` / ``fissure-ov``: ``TiledDetector`` (ONNX Runtime; OpenVINO f32), C++
  double-buffered preprocessing, batches sized by the budget rule, box-local masks.
  ``fissure-ort-b1``: the same with ``batch_size=1`` (the peers run one tile at a time).
* ``sv-dense``: ``sv.InferenceSlicer`` (supervision 0.31.2, defaults but
  ``overlap_filter="non_max_merge"``, ``overlap_metric="ios"``) with an ONNX Runtime callback
  that returns ``sv.Detections`` with dense (N, 640, 640) masks, as a user writes it; the
  slicer moves them into full-image (N, H, W) masks.
* ``sv-compact``: the same with ``compact_masks=True`` (RLE CompactMask).
* ``sahi``: ``sahi.slicing.get_slice_bboxes``, ONNX Runtime per tile, cv2 components, SAHI
  ``ObjectPrediction``s with the mask as COCO polygons (``get_coco_segmentation_from_bool_mask``,
  as SAHI's model wrappers do), shifted to the image, ``GreedyNMMPostprocess(0.5, "IOS")``.

Equal threads: ONNX Runtime ``intra_op_num_threads`` (and OpenVINO's ``INFERENCE_NUM_THREADS``)
= ``--threads`` (default: all cores) for every method, inter-op 1, full graph optimisation,
sequential execution; fissure's preprocessing uses the same count.

Each (method, image) runs in its own fresh process: build the page, open the model, warm up on
a 1280x768 crop (6 tiles, twice), cap the address space (``--mem-cap-gb`` above what the process already
maps, so a peer that runs out of memory fails with MemoryError instead of taking the machine),
reset the kernel's peak-RSS counter, then time ``--repeat`` calls. Peak RSS is the process's
``VmHWM`` over those calls, and the call's own peak is ``VmHWM - VmRSS`` before the first call
(the method in _peak.py). Recall against the ground truth (a word is found when a detection's
centre lies in its box) shows that the methods give the same answer.

    PYTHONPATH=python python benchmarks/bench_detect.py                 # table (~10 min)
    PYTHONPATH=python python benchmarks/bench_detect.py --write-docs    # ... into docs/benchmarks.md
    PYTHONPATH=python python benchmarks/bench_detect.py --quick         # smoke test: 2 MP, 1 call
    PYTHONPATH=python python benchmarks/bench_detect.py --pipeline      # synchronous vs batches
        # in flight (VARIANTS) against the SAHI loop: 24 MP, 3 interleaved rounds (~15 min);
        # add `--threads 1` under `taskset -c 0` for pinned one-thread figures
    PYTHONPATH=python python -m pytest -c benchmarks/pytest.ini benchmarks/bench_detect.py

Measured, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _machine import platform_line, status_kb, trim_heap, write_marked_block  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE, OVERLAP = 640, 0.2
THRESH, BOX_THRESH = 0.3, 0.5
#: (height, width, words, seed, timed calls)
IMAGES: dict[str, tuple[int, int, int, int, int]] = {
    "12MP": (3000, 4000, 1000, 12, 3),
    "24MP": (4000, 6000, 2000, 24, 2),
    "2MP": (1200, 1600, 150, 2, 1),  # --quick
}
METHODS = ("fissure-ort", "fissure-ort-b1", "fissure-ov", "sv-dense", "sv-compact", "sahi")
LABELS = {
    "fissure-ort": "fissure TiledDetector, ONNX Runtime",
    "fissure-ort-b1": "fissure TiledDetector, ONNX Runtime, batch_size=1",
    "fissure-ov": "fissure TiledDetector, OpenVINO f32",
    "sv-dense": "supervision 0.31 InferenceSlicer, dense masks",
    "sv-compact": "supervision 0.31 InferenceSlicer, compact_masks=True",
    "sahi": "SAHI 0.12 loop (get_slice_bboxes + GreedyNMMPostprocess)",
}
PEERS = ("sv-dense", "sv-compact", "sahi")
#: timed calls for slow peers (supervision's mask NMM: ~1 minute per 12 MP page)
SLOW_REPEAT = {"sv-dense": 1, "sv-compact": 1}
WORDS = ("defect", "crack", "scratch", "fissure", "tile", "glare", "panel", "cell", "7391",
         "A-42", "edge", "burr", "dent", "pit", "void", "chip", "x0.5", "lot 9", "seam", "QC")


# ---------------------------------------------------------------------------- inputs


def model_path() -> Path:
    env = os.environ.get("FISSURE_BENCH_MODEL")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("PP-OCRv4 det not found: pip install --no-deps "
                                "rapidocr-onnxruntime (or set FISSURE_BENCH_MODEL)")
    return Path(next(iter(spec.submodule_search_locations))) / "models/ch_PP-OCRv4_det_infer.onnx"


def render_page(h: int, w: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A light textured page with n small dark words, one per 64x150 cell; (BGR image, boxes)
    (:func:`fissure.bench.text_page`)."""
    from fissure.bench import text_page

    return text_page(h, w, n, seed, words=WORDS)


def recall(gt: np.ndarray, boxes: np.ndarray) -> float:
    """Fraction of words with a detection centre inside their box (padded by 2 px)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return 0.0
    g = gt + np.array([-2, -2, 2, 2])
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    hit = ((cx[None] >= g[:, 0, None]) & (cx[None] < g[:, 2, None])
           & (cy[None] >= g[:, 1, None]) & (cy[None] < g[:, 3, None]))
    return float(hit.any(axis=1).mean())


def sahi_grid(h: int, w: int) -> np.ndarray:
    from sahi.slicing import get_slice_bboxes

    return np.asarray(get_slice_bboxes(h, w, SLICE, SLICE, OVERLAP, OVERLAP), np.int64)


def sv_grid(h: int, w: int) -> np.ndarray:
    import supervision as sv

    ov = int(OVERLAP * SLICE)
    return np.asarray(sv.InferenceSlicer._generate_offset((w, h), (SLICE, SLICE), (ov, ov)),
                      np.int64)


# ---------------------------------------------------------------------------- methods


def _ort_session(threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path()), so, providers=["CPUExecutionProvider"])


def _tile_components(sess: Any, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """What a user's per-tile callback computes: numpy preprocessing, ORT, cv2 components.
    Returns (xyxy float32 in tile pixels, scores, labels image, kept component ids)."""
    import cv2

    x = (tile.astype(np.float32) / 255.0 - 0.5) / 0.5
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    p = sess.run(None, {sess.get_inputs()[0].name: x})[0][0, 0]
    n, labels, st, _ = cv2.connectedComponentsWithStats((p > THRESH).astype(np.uint8),
                                                        connectivity=8)
    if n <= 1:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), labels, np.zeros(0, np.int64)
    sums = np.bincount(labels.ravel(), weights=p.ravel(), minlength=n)[1:]
    scores = (sums / st[1:, cv2.CC_STAT_AREA]).astype(np.float32)
    keep = np.flatnonzero(scores >= BOX_THRESH)
    s = st[1:][keep]
    xyxy = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], 1).astype(np.float32)
    return xyxy, scores[keep], labels, keep + 1


def make_fissure(threads: int, backend: str, batch_size: int | None = None, *,
                 precision: str | None = "f32", max_in_flight: int | None = None,
                 options: dict | None = None) -> Callable[[np.ndarray], Any]:
    """fissure's TiledDetector; ``options`` (backend options such as OpenVINO's ``hint``, ONNX
    Runtime's ``async_workers``) open the backend first with ``open_model``."""
    from fissure import TiledDetector
    from fissure.backends import open_model
    from fissure.preprocess import PreprocessConfig

    cfg = PreprocessConfig(input_size=(SLICE, SLICE), mode="none", rgb=False,
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model: Any = str(model_path())
    if options:
        model = open_model(model, backend, "cpu", num_threads=threads, precision=precision,
                           **options)
    det = TiledDetector(model, backend=backend, device="cpu", tile_size=SLICE,
                        overlap_ratio=OVERLAP, decoder="probability_map",
                        decoder_options={"mask_threshold": THRESH}, conf_threshold=BOX_THRESH,
                        preprocess=cfg, num_threads=threads, batch_size=batch_size,
                        precision=precision, max_in_flight=max_in_flight)

    def run(img: np.ndarray) -> Any:
        return det(img)

    run.detector = det  # type: ignore[attr-defined]
    return run


#: fissure variants for the pipelining comparison (``--methods``): name -> make_fissure kwargs.
#: "auto" is TiledDetector's defaults (backend="auto": OpenVINO on this x86 CPU, its default
#: precision: bf16 on a CPU with AVX512_BF16/AMX); "-sync" is max_in_flight=1, the synchronous
#: loop fissure ran before batches were kept in flight.
VARIANTS: dict[str, dict[str, Any]] = {
    "fissure-auto": dict(backend="auto", precision=None),
    "fissure-auto-sync": dict(backend="auto", precision=None, max_in_flight=1,
                              options={"hint": "latency"}),
    "fissure-auto-tput": dict(backend="openvino", precision=None,
                              options={"hint": "throughput"}),
    "fissure-auto-tput-b1": dict(backend="openvino", precision=None, batch_size=1,
                                 options={"hint": "throughput"}),
    "fissure-auto-tput-b2": dict(backend="openvino", precision=None, batch_size=2,
                                 options={"hint": "throughput"}),
    "fissure-auto-tput-b4": dict(backend="openvino", precision=None, batch_size=4,
                                 options={"hint": "throughput"}),
    "fissure-auto-tput-b1-r3": dict(backend="openvino", precision=None, batch_size=1,
                                    max_in_flight=3,
                                    options={"hint": "throughput", "num_requests": 3}),
    "fissure-auto-b1": dict(backend="auto", precision=None, batch_size=1),
    "fissure-ov-sync": dict(backend="openvino", max_in_flight=1),
    "fissure-ort-pipe": dict(backend="onnxruntime", precision=None, max_in_flight=2),
    "fissure-ort-pipe2": dict(backend="onnxruntime", precision=None, max_in_flight=3,
                              options={"async_workers": 2}, split_threads=True),
}
for _k, _v in VARIANTS.items():
    LABELS.setdefault(_k, "fissure TiledDetector, " + ", ".join(
        f"{k}={v}" for k, v in _v.items() if k not in ("options", "split_threads"))
        + "".join(f", {k}={v}" for k, v in (_v.get("options") or {}).items())
        + (", intra-op threads split between the workers" if _v.get("split_threads") else ""))


def make_sv(threads: int, compact: bool) -> Callable[[np.ndarray], Any]:
    import supervision as sv

    sess = _ort_session(threads)

    def callback(tile: np.ndarray) -> Any:
        xyxy, scores, labels, ids = _tile_components(sess, tile)
        masks = labels[None] == ids[:, None, None]
        return sv.Detections(xyxy=xyxy, confidence=scores,
                             class_id=np.zeros(len(scores), int), mask=masks)

    slicer = sv.InferenceSlicer(callback, slice_wh=SLICE, overlap_wh=int(OVERLAP * SLICE),
                                overlap_filter="non_max_merge", overlap_metric="ios",
                                iou_threshold=0.5, compact_masks=compact)
    return slicer


def make_sahi(threads: int) -> Callable[[np.ndarray], Any]:
    from sahi.postprocess.combine import GreedyNMMPostprocess
    from sahi.prediction import ObjectPrediction
    from sahi.slicing import get_slice_bboxes
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    sess = _ort_session(threads)
    merge = GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS", class_agnostic=False)

    def run(img: np.ndarray) -> list:
        h, w = img.shape[:2]
        preds = []
        for x0, y0, x1, y1 in get_slice_bboxes(h, w, SLICE, SLICE, OVERLAP, OVERLAP):
            xyxy, scores, labels, ids = _tile_components(sess, img[y0:y1, x0:x1])
            for box, score, i in zip(xyxy.tolist(), scores.tolist(), ids.tolist()):
                seg = get_coco_segmentation_from_bool_mask(labels == i)
                if not seg:
                    continue  # as SAHI's wrappers: a mask without a polygon is dropped
                preds.append(ObjectPrediction(
                    bbox=box, category_id=0, category_name="text", score=score,
                    segmentation=seg, shift_amount=[x0, y0], full_shape=[h, w],
                ).get_shifted_object_prediction())
        return merge(preds)

    return run


def make(method: str, threads: int) -> Callable[[np.ndarray], Any]:
    if method == "fissure-ort":
        return make_fissure(threads, "onnxruntime")
    if method == "fissure-ort-b1":
        return make_fissure(threads, "onnxruntime", batch_size=1)
    if method == "fissure-ov":
        return make_fissure(threads, "openvino")
    if method in VARIANTS:
        kw = dict(VARIANTS[method])
        if kw.pop("split_threads", False):
            threads = max(1, threads // int(kw["options"]["async_workers"]))
        return make_fissure(threads, **kw)
    if method in ("sv-dense", "sv-compact"):
        return make_sv(threads, method == "sv-compact")
    if method == "sahi":
        return make_sahi(threads)
    raise ValueError(f"method: expected one of {METHODS + tuple(VARIANTS)}, got {method!r}")


def result_boxes(method: str, result: Any) -> np.ndarray:
    if method.startswith("fissure"):
        return np.asarray(result.boxes)
    if method.startswith("sv"):
        return np.asarray(result.xyxy)
    return np.asarray([p.bbox.to_xyxy() for p in result], np.float64).reshape(-1, 4)


# ---------------------------------------------------------------------------- one process




def worker(method: str, image: str, threads: int, repeat: int, cap_gb: float) -> dict:
    """One method on one image in this (fresh) process; a JSON-able dict of results."""
    h, w, n, seed, _ = IMAGES[image]
    img, gt = render_page(h, w, n, seed)
    out: dict[str, Any] = {"method": method, "image": image, "threads": threads, "words": n,
                           "tiles": len(sahi_grid(h, w))}
    run = make(method, threads)
    crop = np.ascontiguousarray(img[:768, :1280])
    for _ in range(2):  # warm-up (6 tiles, twice: ORT plans memory on a shape's second run)
        run(crop)
    trim_heap()
    if cap_gb > 0:
        limit = status_kb("VmSize") * 1024 + int(cap_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        out["cap_gb"] = cap_gb
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kb("VmRSS")
    times: list[float] = []
    overheads: list[float] = []
    result = None
    try:
        for _ in range(repeat):
            result = None
            gc.collect()
            t0 = time.perf_counter()
            result = run(img)
            times.append(time.perf_counter() - t0)
            if method.startswith("fissure"):
                st = run.detector.stats  # type: ignore[attr-defined]
                overheads.append(st.overhead_s / st.total_s)
                out.update(model_s=st.model_s, total_s=st.total_s, batch_size=st.batch_size,
                           wait_s=st.wait_s, decode_s=st.decode_s, merge_s=st.merge_s,
                           in_flight=st.in_flight)
    except MemoryError as exc:
        out["failed"] = (f"MemoryError after {time.perf_counter() - t0:.0f} s "
                         f"(address space capped at +{cap_gb:g} GB): {str(exc)[:120]}")
    except Exception as exc:  # noqa: BLE001 - a peer failing otherwise: record it, do not crash
        out["failed"] = f"{type(exc).__name__}: {str(exc)[:160]}"
    out["load"] = os.getloadavg()[0]  # the machine's 1-minute load at the end
    out["rss_before_mb"] = before / 1024
    out["peak_rss_mb"] = status_kb("VmHWM") / 1024
    out["call_peak_mb"] = (status_kb("VmHWM") - before) / 1024
    if times and "failed" not in out:
        out["times"] = times
        out["count"] = len(result_boxes(method, result))
        out["recall"] = recall(gt, result_boxes(method, result))
        if overheads:
            out["overhead"] = statistics.median(overheads)
    return out


def run_worker(method: str, image: str, threads: int, repeat: int, cap_gb: float,
               timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, image,
           "--threads", str(threads), "--repeat", str(repeat), "--mem-cap-gb", str(cap_gb)]
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"method": method, "image": image, "failed": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"method": method, "image": image,
                "failed": f"process exited with {p.returncode}: {tail[:160]}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------- table


def table(rows: list[dict]) -> str:
    lines = [("| image | method | img/s | median s | fissure-ort speed-up | peak RSS | call peak "
              "| its call peak / fissure-ort's | dets | recall | overhead |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for image in dict.fromkeys(r["image"] for r in rows):
        rs = [r for r in rows if r["image"] == image]
        ref = next((r for r in rs if r["method"] == "fissure-ort" and "times" in r), None)
        for r in rs:
            label = LABELS.get(r["method"], r["method"])
            if "times" not in r:
                lines.append(f"| {image} | {label} | failed: {r.get('failed', '?')} "
                             f"| | | {r.get('peak_rss_mb', 0):.0f} MB | | | | | |")
                continue
            med = statistics.median(r["times"])
            speed = rss = ""
            if ref is not None and r is not ref:
                speed = f"{med / statistics.median(ref['times']):.2f}x"
                rss = f"{r['call_peak_mb'] / max(ref['call_peak_mb'], 1e-9):.2f}x"
            ov = f"{100 * r['overhead']:.1f}%" if "overhead" in r else ""
            lines.append(
                f"| {image} | {label} | {1 / med:.3f} | {med:.2f} ({len(r['times'])}r) | {speed} "
                f"| {r['peak_rss_mb']:.0f} MB | {r['call_peak_mb']:.0f} MB | {rss} | {r['count']} "
                f"| {r['recall']:.3f} | {ov} |")
    return "\n".join(lines)


def goals(rows: list[dict]) -> str:
    out = []
    for image in dict.fromkeys(r["image"] for r in rows):
        rs = {r["method"]: r for r in rows if r["image"] == image}
        ref = rs.get("fissure-ort")
        if not ref or "times" not in ref:
            continue
        t_ref = statistics.median(ref["times"])
        ok = [m for m in PEERS if m in rs and "times" in rs[m]]
        speed = ", ".join(f"{statistics.median(rs[m]['times']) / t_ref:.2f}x vs {m}" for m in ok)
        mem = ", ".join(f"{rs[m]['call_peak_mb'] / max(ref['call_peak_mb'], 1e-9):.1f}x vs {m}"
                        for m in ok)
        failed = ", ".join(m for m in PEERS if m in rs and "times" not in rs[m])
        out.append(f"- {image}: speed {speed or 'no peer ran'}; call peak RSS {mem or '-'}"
                   + (f"; could not run: {failed}" if failed else "")
                   + f"; fissure-ort overhead {100 * ref.get('overhead', float('nan')):.1f}% of "
                     f"wall (model {ref.get('model_s', 0):.2f} s of {ref.get('total_s', 0):.2f} s, "
                     f"batch {ref.get('batch_size', '?')})")
    return "\n".join(out)


PIPELINE_METHODS = ("sahi", "fissure-auto-sync", "fissure-auto", "fissure-auto-tput",
                    "fissure-ort", "fissure-ort-pipe")


def pipeline_table(rows: list[dict]) -> str:
    """The pipelining comparison: per method the median over every timed call of every round,
    and the goals of pipelined detection: fissure's defaults >= 2.5x the SAHI loop's img/s and
    >= 1.3x the synchronous loop's with the same backend and precision."""
    by: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["image"], r["method"])
        agg = by.setdefault(key, {"times": [], "rounds": 0, "failed": None, "r": r})
        if "times" in r:
            agg["times"] += r["times"]
            agg["rounds"] += 1
            agg["r"] = r
        else:
            agg["failed"] = r.get("failed", "?")
    med = {k: statistics.median(v["times"]) for k, v in by.items() if v["times"]}
    lines = ["| image | method | img/s | median s (calls) | vs SAHI loop | vs synchronous "
             "(same backend, precision) | batch | in flight | model busy | decode s | dets "
             "| recall | peak RSS |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sync_of = {"fissure-auto": "fissure-auto-sync", "fissure-auto-tput": "fissure-auto-sync",
               "fissure-auto-tput-b4": "fissure-auto-sync",
               "fissure-auto-tput-b1-r3": "fissure-auto-sync",
               "fissure-auto-b1": "fissure-auto-sync", "fissure-auto-tput-b1": "fissure-auto-sync",
               "fissure-auto-tput-b2": "fissure-auto-sync", "fissure-ov": "fissure-ov-sync",
               "fissure-ort-pipe": "fissure-ort", "fissure-ort-pipe2": "fissure-ort"}
    goals_out = []
    for (image, method), v in by.items():
        label = LABELS.get(method, method)
        if (image, method) not in med:
            lines.append(f"| {image} | {label} | failed: {v['failed']} | | | | | | | | | | |")
            continue
        m, r = med[(image, method)], v["r"]
        sahi = med.get((image, "sahi"))
        sync = med.get((image, sync_of.get(method, "")))
        vs_sahi = f"{sahi / m:.2f}x" if sahi and method != "sahi" else ""
        vs_sync = f"{sync / m:.2f}x" if sync else ""
        busy = (f"{100 * r['model_s'] / r['total_s']:.0f}%" if r.get("total_s") else "")
        lines.append(
            f"| {image} | {label} | {1 / m:.3f} | {m:.2f} ({len(v['times'])}) | {vs_sahi} "
            f"| {vs_sync} | {r.get('batch_size', '')} | {r.get('in_flight', '')} | {busy} "
            f"| {r.get('decode_s', 0):.2f} | {r.get('count', '')} | {r.get('recall', 0):.3f} "
            f"| {r.get('peak_rss_mb', 0):.0f} MB |")
        if method == "fissure-auto" and sahi:
            goals_out.append(f"- {image}: fissure defaults (pipelined) vs the SAHI loop on ONNX "
                             f"Runtime: {sahi / m:.2f}x (goal 2.5x: "
                             f"{'met' if sahi / m >= 2.5 else 'missed'})")
        if method == "fissure-auto" and sync:
            goals_out.append(f"- {image}: fissure defaults pipelined vs synchronous (same "
                             f"backend and precision): {sync / m:.2f}x (goal 1.3x: "
                             f"{'met' if sync / m >= 1.3 else 'missed'})")
    return "\n".join(lines) + ("\n\nGoals:\n\n" + "\n".join(goals_out) if goals_out else "")


def write_docs(text: str) -> None:
    write_marked_block(os.path.join(ROOT, "docs", "benchmarks.md"), "DETECT", text,
                       "## Tiled detection")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "IMAGE"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="one 2 MP page, one call per method")
    ap.add_argument("--images", default="12MP,24MP")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=0, help="timed calls (default: per image)")
    ap.add_argument("--mem-cap-gb", type=float, default=8.0,
                    help="address-space cap above the warmed-up process (0: none)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per method and image")
    ap.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--pipeline", action="store_true",
                    help="the pipelining comparison: synchronous vs batches in flight against "
                         "the SAHI loop (default methods: " + ",".join(PIPELINE_METHODS)
                         + "; 24 MP; 3 interleaved rounds)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="interleaved rounds: every method once per round, in order "
                         "(default 1; 3 with --pipeline)")
    a = ap.parse_args()
    if a.worker:
        method, image = a.worker
        print(json.dumps(worker(method, image, a.threads, a.repeat or IMAGES[image][4],
                                a.mem_cap_gb)))
        return
    if a.pipeline and "--methods" not in sys.argv:
        a.methods = ",".join(PIPELINE_METHODS)
    if a.pipeline and "--images" not in sys.argv:
        a.images = "24MP"
    rounds = a.rounds or (3 if a.pipeline else 1)
    images = ["2MP"] if a.quick else a.images.split(",")
    methods = a.methods.split(",")
    for image in images:
        h, w = IMAGES[image][:2]
        same = np.array_equal(sahi_grid(h, w), sv_grid(h, w))
        print(f"{image}: {len(sahi_grid(h, w))} tiles; supervision's grid "
              f"{'equals' if same else 'DIFFERS from'} SAHI's", file=sys.stderr)
    rows = []
    for image in images:
        for rnd in range(rounds):
            for method in methods:
                repeat = 1 if a.quick else (a.repeat or SLOW_REPEAT.get(method, IMAGES[image][4]))
                t0 = time.perf_counter()
                r = run_worker(method, image, a.threads, repeat, a.mem_cap_gb, a.timeout)
                r["round"] = rnd
                print(f"  {image} {method} round {rnd + 1}: {time.perf_counter() - t0:.0f} s "
                      f"{r.get('failed', '')} {[round(t, 2) for t in r.get('times', [])]}",
                      file=sys.stderr, flush=True)
                rows.append(r)
    if a.pipeline:
        cmd = "PYTHONPATH=python python benchmarks/bench_detect.py" + "".join(
            f" {x}" for x in sys.argv[1:] if x != "--write-docs")
        aff = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        loads = [r["load"] for r in rows if "load" in r]
        text = (f"Command: `{cmd}`. "
                f"{platform_line('onnxruntime', 'openvino', 'sahi')}; {a.threads} thread(s) for "
                f"every method, CPUs {aff}; {rounds} interleaved rounds of {repeat} call(s); "
                f"1-minute load average after each method {min(loads):.1f}..{max(loads):.1f}."
                f"\n\n{pipeline_table(rows)}")
        print(text)
        if a.write_docs:
            tag = "PIPELINE" if a.threads > 1 else "PIPELINE-1T"
            write_marked_block(os.path.join(ROOT, "docs", "benchmarks.md"), tag, text,
                               "## Pipelined tiled detection")
        return
    cmd = "PYTHONPATH=python python benchmarks/bench_detect.py" + "".join(
        f" {x}" for x in sys.argv[1:] if x != "--write-docs")
    loads = [r["load"] for r in rows if "load" in r]
    load = f"; 1-minute load average after each method {min(loads):.1f}..{max(loads):.1f}" if loads else ""
    text = (f"Command: `{cmd}`. {platform_line('onnxruntime', 'openvino', 'supervision', 'sahi')}; {a.threads} threads for every method "
            f"(ONNX Runtime intra-op / OpenVINO inference threads; fissure's preprocessing)"
            f"{load}.\n\n"
            f"{table(rows)}\n\nGoals (fissure-ort against each peer: time ratio, call-peak "
            f"ratio; scheduler overhead = (wall - model run) / wall):\n\n{goals(rows)}")
    print(text)
    if a.write_docs:
        write_docs(text)
    with open(os.path.join(ROOT, "build", "bench_detect.json") if os.path.isdir(
            os.path.join(ROOT, "build")) else os.devnull, "w") as f:
        json.dump(rows, f, indent=1)


# ---------------------------------------------------------------------------- pytest-benchmark

try:
    import pytest
except ImportError:  # pragma: no cover - the __main__ table needs no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    _QUICK = os.environ.get("FISSURE_BENCH_QUICK") == "1"

    @pytest.mark.parametrize("image", ["2MP"] if _QUICK else ["12MP", "24MP"])
    @pytest.mark.parametrize("method", METHODS)
    def bench_detect(benchmark: Any, method: str, image: str) -> None:
        """In-process timings (peak memory and the capped dense-mask attempt: the __main__)."""
        try:
            model_path().stat()
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        for mod in ("onnxruntime", "openvino", "supervision", "sahi"):
            pytest.importorskip(mod)
        if method == "sv-dense" and image != "2MP":
            pytest.skip("dense full-image (N, H, W) masks: ~1 GB per 100 detections at 12 MP; "
                        "the __main__ runs it under a memory cap")
        h, w, n, seed, rounds = IMAGES[image]
        img, gt = render_page(h, w, n, seed)
        run = make(method, os.cpu_count() or 1)
        run(np.ascontiguousarray(img[:768, :1280]))
        benchmark.group = f"detect | {image}"
        benchmark.extra_info.update(method=method, image=image, peer=method in PEERS)
        rounds = 1 if _QUICK else SLOW_REPEAT.get(method, rounds)
        result = benchmark.pedantic(run, args=(img,), rounds=rounds,
                                    iterations=1)
        benchmark.extra_info["count"] = len(result_boxes(method, result))
        benchmark.extra_info["recall"] = recall(gt, result_boxes(method, result))


if __name__ == "__main__":
    main()
