"""The implementations the benchmarks compare, on the same inputs.

Every entry prepares its own representation of a case outside the timed region, then
runs one call. ``count`` reduces a result to the number of output detections, so a table
can show that everyone answered the same. ``skip`` says why a peer cannot run a case
(for example supervision's N x N matrices), with the memory it would need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

import _data

GB = 1024**3


@dataclass(frozen=True)
class Impl:
    key: str  # unique within its suite, used on the command line
    library: str  # shown in the tables
    op: str  # what is computed; rows compare implementations of the same op
    peer: bool  # a peer (ratios are taken against the fastest peer)
    prepare: Callable[[Any], Any]  # case -> prepared arguments (untimed)
    run: Callable[[Any], Any]  # prepared arguments -> result (timed)
    count: Callable[[Any], int]  # result -> number of output detections
    skip: Callable[[Any], Optional[str]] = lambda case: None


def _all_threads() -> int:
    return os.cpu_count() or 1


def _warm(run: Callable[[Any], Any], args: tuple) -> tuple:
    """Run once on the first 200 detections (thread pool start-up etc.), return args."""
    run(tuple(a[:200] for a in args))
    return args


# ---------------------------------------------------------------------------------------
# merge suite: boxes only
# ---------------------------------------------------------------------------------------

NMS = "nms (IoU 0.5, per class)"
GNMM = "greedy_nmm (IoS 0.5, per class)"
POST = "SAHI postprocess objects (GreedyNMM IoS 0.5)"


def _fissure_nms(threads: int) -> Impl:
    def run(a: Any) -> Any:
        import fissure

        return fissure.nms(a[0], a[1], a[2], match_threshold=0.5, match_metric="iou", num_threads=threads)

    return Impl(
        f"fissure-nms-t{threads}",
        f"fissure ({'1 thread' if threads == 1 else f'{_all_threads()} threads'})",
        NMS, False, lambda c: _warm(run, (c.boxes, c.scores, c.class_ids)), run, len,
    )


def _fissure_gnmm(threads: int) -> Impl:
    def run(a: Any) -> Any:
        import fissure

        return fissure.greedy_nmm(
            a[0], a[1], a[2], match_threshold=0.5, match_metric="ios", num_threads=threads
        )

    return Impl(
        f"fissure-gnmm-t{threads}",
        f"fissure ({'1 thread' if threads == 1 else f'{_all_threads()} threads'})",
        GNMM, False, lambda c: _warm(run, (c.boxes, c.scores, c.class_ids)), run,
        lambda r: len(r.keep),
    )


def _sahi(op: str, backend: str) -> Impl:
    def prepare(c: Any) -> Any:
        from sahi.postprocess.backends import set_postprocess_backend

        set_postprocess_backend(backend)
        arr = c.sahi_array()
        _sahi_fn(op)(arr[:300], "IOU", 0.5)  # numba: load the JIT cache outside the timing
        return arr

    def run(arr: Any) -> Any:
        return _sahi_fn(op)(arr, "IOU" if op == "nms" else "IOS", 0.5)

    return Impl(f"sahi-{backend}-{op}", f"SAHI 0.12 {backend}", NMS if op == "nms" else GNMM,
                True, prepare, run, len)


def _sahi_fn(op: str) -> Callable[..., Any]:
    from sahi.postprocess import combine

    return combine.batched_nms if op == "nms" else combine.batched_greedy_nmm


def _sv_nms_bytes(c: Any) -> int:
    # box_iou_batch: 4 float64 N x N bounds, intersection and normaliser (+ a temporary):
    # about 7 float64 N x N arrays at its peak.
    return 7 * 8 * len(c) ** 2


def _sv_nms() -> Impl:
    def skip(c: Any) -> Optional[str]:
        need = _sv_nms_bytes(c)
        if need > 8 * GB:
            return f"OOM-skipped (needs ~{need / GB:.0f} GB: 7 float64 N x N arrays)"
        return None

    def run(p: Any) -> Any:
        from supervision.detection.utils.iou_and_nms import box_non_max_suppression

        return box_non_max_suppression(p, 0.5)

    return Impl("sv-nms", "supervision 0.31", NMS, True, lambda c: c.sv_predictions(), run,
                lambda r: int(np.count_nonzero(r)), skip)


def _sv_nmm() -> Impl:
    def run(p: Any) -> Any:
        from supervision.detection.utils.iou_and_nms import OverlapMetric, box_non_max_merge

        return box_non_max_merge(p, 0.5, OverlapMetric.IOS)

    return Impl("sv-nmm", "supervision 0.31", GNMM, True, lambda c: c.sv_predictions(), run, len)


def _cv2_nms() -> Impl:
    def run(a: Any) -> Any:
        import cv2

        return cv2.dnn.NMSBoxesBatched(a[0], a[1], a[2], 0.0, 0.5)

    return Impl("cv2-nms", f"OpenCV {_cv2_version()} NMSBoxesBatched", NMS, True,
                lambda c: c.cv2_args(), run, len)


def _cv2_version() -> str:
    try:
        import cv2

        return cv2.__version__
    except ImportError:  # pragma: no cover
        return "?"


def _sahi_objects(fissure_dropin: bool) -> Impl:
    def prepare(c: Any) -> Any:
        from sahi.postprocess.backends import set_postprocess_backend

        set_postprocess_backend("auto")
        preds = c.sahi_predictions()
        cls = _post_class(fissure_dropin)
        cls(0.5, "IOS", False)(preds[:200])  # warm up (numba JIT cache)
        return preds

    def run(preds: Any) -> Any:
        return _post_class(fissure_dropin)(0.5, "IOS", False)(list(preds))

    return Impl(
        "fissure-sahi-dropin" if fissure_dropin else "sahi-objects",
        "fissure.integrations.sahi" if fissure_dropin else "SAHI 0.12 (auto: numba)",
        POST, not fissure_dropin, prepare, run, len,
    )


def _post_class(fissure_dropin: bool) -> Any:
    if fissure_dropin:
        from fissure.integrations.sahi import GreedyNMMPostprocess
    else:
        from sahi.postprocess.combine import GreedyNMMPostprocess
    return GreedyNMMPostprocess


SV_NMS = "supervision Detections.with_nms (IoU 0.5)"
SV_NMM = "supervision Detections.with_nmm (IoS 0.5)"


def _sv_detections(op: str, fissure_dropin: bool) -> Impl:
    def prepare(c: Any) -> Any:
        d = c.sv_detections()
        run(d[:200])
        return d

    def run(d: Any) -> Any:
        from supervision.detection.utils.iou_and_nms import OverlapMetric

        if fissure_dropin:
            from fissure.integrations import supervision as fsv

            if op == "nms":
                return fsv.with_nms(d, 0.5, False, OverlapMetric.IOU)
            return fsv.with_nmm(d, 0.5, False, OverlapMetric.IOS)
        if op == "nms":
            return d.with_nms(0.5, False, OverlapMetric.IOU)
        return d.with_nmm(0.5, False, OverlapMetric.IOS)

    def skip(c: Any) -> Optional[str]:
        if op == "nms" and not fissure_dropin and _sv_nms_bytes(c) > 8 * GB:
            return f"OOM-skipped (needs ~{_sv_nms_bytes(c) / GB:.0f} GB: 7 float64 N x N arrays)"
        return None

    return Impl(
        f"fissure-sv-dropin-{op}" if fissure_dropin else f"sv-detections-{op}",
        "fissure.integrations.supervision" if fissure_dropin else "supervision 0.31 Detections",
        SV_NMS if op == "nms" else SV_NMM, not fissure_dropin, prepare, run, len, skip,
    )


def merge_impls() -> list[Impl]:
    n = _all_threads()
    return [
        _fissure_nms(1), *([_fissure_nms(n)] if n > 1 else []),
        _sahi("nms", "numpy"), _sahi("nms", "numba"), _sv_nms(), _cv2_nms(),
        _fissure_gnmm(1), *([_fissure_gnmm(n)] if n > 1 else []),
        _sahi("greedy_nmm", "numpy"), _sahi("greedy_nmm", "numba"), _sv_nmm(),
        _sahi_objects(True), _sahi_objects(False),
        _sv_detections("nms", True), _sv_detections("nms", False),
        _sv_detections("nmm", True), _sv_detections("nmm", False),
    ]


MERGE_CASES = [(2000, False), (20000, False), (100000, False), (20000, True)]


def merge_case(name: str) -> Any:
    for n, crowded in MERGE_CASES:
        c = _data.boxes(n, crowded)
        if c.name == name:
            return c
    raise KeyError(name)


# ---------------------------------------------------------------------------------------
# mask suite: greedy NMM with instance masks, 2k detections on 6000 x 4000
# ---------------------------------------------------------------------------------------

MASK_OP = "greedy NMM + masks (IoS 0.5, per class)"


def _fissure_masks(threads: int) -> Impl:
    def run(a: Any) -> Any:
        import fissure

        return fissure.greedy_nmm(
            a[0], a[1], a[2], match_threshold=0.5, match_metric="ios", masks=a[3], num_threads=threads
        )

    return Impl(
        f"fissure-masks-t{threads}",
        f"fissure box-local ({'1 thread' if threads == 1 else f'{_all_threads()} threads'})",
        MASK_OP, False, lambda c: _warm_masks(run, (c.boxes, c.scores, c.class_ids, c.box_masks())),
        run, lambda r: len(r.keep),
    )


def _sahi_polygons(fissure_dropin: bool) -> Impl:
    def prepare(c: Any) -> Any:
        from sahi.postprocess.backends import set_postprocess_backend

        set_postprocess_backend("auto")
        preds = c.sahi_predictions()
        _post_class(fissure_dropin)(0.5, "IOS", False)(preds[:100])
        return preds

    def run(preds: Any) -> Any:
        return _post_class(fissure_dropin)(0.5, "IOS", False)(list(preds))

    return Impl(
        "fissure-sahi-dropin-masks" if fissure_dropin else "sahi-polygons",
        "fissure.integrations.sahi (polygons in/out)" if fissure_dropin
        else "SAHI 0.12 polygons (shapely)",
        MASK_OP, not fissure_dropin, prepare, run, len,
    )


def _sv_dense() -> Impl:
    def skip(c: Any) -> Optional[str]:
        need = c.sv_dense_bytes()
        return f"OOM-skipped (dense (N, H, W) masks alone: ~{need / GB:.0f} GB)"

    return Impl("sv-dense-masks", "supervision 0.31 dense masks", MASK_OP, True,
                lambda c: None, lambda a: None, len, skip)


def _sv_compact(fissure_dropin: bool) -> Impl:
    def run(d: Any) -> Any:
        from supervision.detection.utils.iou_and_nms import OverlapMetric

        if fissure_dropin:
            from fissure.integrations.supervision import with_nmm

            return with_nmm(d, 0.5, False, OverlapMetric.IOS)
        return d.with_nmm(0.5, False, OverlapMetric.IOS)

    return Impl(
        "fissure-sv-dropin-compact" if fissure_dropin else "sv-compact",
        "fissure.integrations.supervision (CompactMask in/out)" if fissure_dropin
        else "supervision 0.31 CompactMask",
        MASK_OP, not fissure_dropin, lambda c: c.sv_compact_detections(), run, len,
    )


def _warm_masks(run: Callable[[Any], Any], args: tuple) -> tuple:
    small = _data.masked(200)
    run((small.boxes, small.scores, small.class_ids, small.box_masks()))
    return args


def mask_impls() -> list[Impl]:
    n = _all_threads()
    return [
        _fissure_masks(1), *([_fissure_masks(n)] if n > 1 else []),
        _sahi_polygons(False), _sahi_polygons(True),
        _sv_dense(), _sv_compact(False), _sv_compact(True),
    ]


MASK_CASES = [2000]


def mask_case(name: str) -> Any:
    for n in MASK_CASES:
        c = _data.masked(n)
        if c.name == name:
            return c
    raise KeyError(name)


SUITES = {
    "merge": (merge_impls, merge_case, [f"{'crowded-' if c else ''}{n // 1000}k" for n, c in MERGE_CASES]),
    "masks": (mask_impls, mask_case, [f"masked-{n // 1000}k" for n in MASK_CASES]),
}


def find(suite: str, key: str) -> Impl:
    for impl in SUITES[suite][0]():
        if impl.key == key:
            return impl
    raise KeyError(f"{suite}/{key}")
