"""The inspection cascade of seed 001: an anomaly model marks candidate regions on the whole
image, a detector names them, running only on the tiles that hold candidates.

:class:`Inspector` takes the anomaly stage (a :class:`fissure.PatchCore`, a memory-bank file,
a :class:`fissure.AnomalyModel` or an anomalib export file) and optionally a detector (a
:class:`fissure.TiledDetector` or a model file). Calling it on an image returns an
:class:`InspectionResult`: the anomaly result (full-resolution map, mask, regions), each
region's verdict (``defect``, ``review`` or ``ok``), the detector's class and confidence where
it found something in the region (``anomaly`` where no class explains it: never dropped), and
the image's verdict. See docs/inspect.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .io import as_image
from .tiling import slice_grid

__all__ = ["InspectedRegion", "InspectionResult", "Inspector", "plan_tiles", "VERDICTS"]

#: Verdicts, worst first.
VERDICTS = ("defect", "review", "ok")
#: Files read as an anomalib export (else a PatchCore memory bank).
MODEL_SUFFIXES = (".onnx", ".xml")


@dataclass
class InspectedRegion:
    """One candidate region of the anomaly stage and what the cascade made of it.

    Attributes:
        id: 1-based number (as on the overlay and in the anomaly result's regions).
        box: ``(x1, y1, x2, y2)`` in image pixels.
        score: the anomaly map's maximum in the region.
        label: the detector's class name (or id as text) where a detection falls in the
            region, else ``"anomaly"`` (a defect of no known class).
        class_id: the detector's class id, or None.
        confidence: the detector's score, or None.
        verdict: ``"defect"``, ``"review"`` or ``"ok"``.
        mask: ``(y2 - y1, x2 - x1)`` bool, box-local: the region's own pixels of the anomaly
            mask (its 8-connected component), never a full-image array.
    """

    id: int
    box: tuple[float, float, float, float]
    score: float
    label: str = "anomaly"
    class_id: Optional[int] = None
    confidence: Optional[float] = None
    verdict: str = "defect"
    mask: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    @property
    def area(self) -> int:
        """The region's pixels (of its box-local mask; the box's area without one)."""
        if self.mask is not None:
            return int(np.count_nonzero(self.mask))
        x1, y1, x2, y2 = self.box
        return int(round((x2 - x1) * (y2 - y1)))

    def to_dict(self) -> dict:
        return {"id": self.id, "box": [float(v) for v in self.box], "score": float(self.score),
                "area": self.area, "label": self.label, "class_id": self.class_id,
                "confidence": None if self.confidence is None else float(self.confidence),
                "verdict": self.verdict}


@dataclass
class InspectionResult:
    """One image's inspection.

    Attributes:
        anomaly: the anomaly stage's :class:`fissure.AnomalyResult` (map, mask, regions).
        regions: the candidates with their labels and verdicts, in the anomaly result's order.
        verdict: the image's: its worst region's (``ok`` without regions).
        review: the ``(low, high)`` band of region scores that goes to a person.
        detections: what the detector found on the planned tiles (None without a detector).
        tiles_run: detector tiles run (the plan); ``tiles_total``: the tiles a detector run
            over the whole image would take.
    """

    anomaly: Any
    regions: list[InspectedRegion]
    verdict: str
    review: tuple[float, float]
    detections: Any = None
    tiles_run: int = 0
    tiles_total: int = 0
    seconds: dict = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Regions per verdict."""
        return {v: sum(r.verdict == v for r in self.regions) for v in VERDICTS}

    def to_dict(self) -> dict:
        a = self.anomaly
        return {
            "verdict": self.verdict,
            "counts": self.counts(),
            "review_band": [float(v) for v in self.review],
            "image_score": float(a.score),
            "pixel_threshold": float(a.threshold),
            "regions": [r.to_dict() for r in self.regions],
            "detector_tiles": {"run": self.tiles_run, "whole_image": self.tiles_total},
            "height": int(a.anomaly_map.shape[0]),
            "width": int(a.anomaly_map.shape[1]),
            "seconds": {k: float(v) for k, v in self.seconds.items()},
        }

    def overlay(self, image: Any, *, alpha: float = 0.45) -> np.ndarray:
        """The anomaly overlay (:meth:`fissure.AnomalyResult.overlay`) with each region's
        number, label and verdict written beside its box; review regions are boxed in amber,
        defects in red, ok ones in green."""
        from ._optional import require_cv2

        cv2 = require_cv2("InspectionResult.overlay")
        out = self.anomaly.overlay(image, alpha=alpha)
        h, w = out.shape[:2]
        fs = max(0.5, min(h, w) / 1500)
        lw = max(1, int(round(fs * 2)))
        colours = {"defect": (40, 40, 230), "review": (0, 190, 255), "ok": (60, 200, 60)}
        for r in self.regions:
            x1, y1, x2, y2 = (int(round(v)) for v in r.box)
            c = colours[r.verdict]
            pad = 3 * lw
            cv2.rectangle(out, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), c, lw)
            text = f"{r.id} {r.label} {r.verdict}"
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, lw)
            ty = y1 - pad - 4 if y1 - pad - 4 - th > 0 else y2 + pad + th + 4
            cv2.putText(out, text, (max(0, min(x1, w - tw)), ty), cv2.FONT_HERSHEY_SIMPLEX, fs,
                        c, lw, cv2.LINE_AA)
        return out


def plan_tiles(boxes: np.ndarray, image_shape: tuple[int, int], tile_size: tuple[int, int],
               overlap_ratio: tuple[float, float] = (0.2, 0.2)) -> np.ndarray:
    """The detector tiles that cover candidate boxes: for each box, SAHI's grid over the box
    grown to at least one tile and centred on it, clamped to the image. Boxes are taken
    largest first; a box that already lies whole inside a planned tile adds none (nearby
    candidates share a tile), and identical tiles run once. Returns ``(T, 4)`` int64 xyxy
    tiles in a deterministic order (raster order of their origins)."""
    h, w = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image_shape: expected positive (H, W), got {image_shape!r}")
    th, tw = min(int(tile_size[0]), h), min(int(tile_size[1]), w)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        raise ValueError("boxes: expected finite xyxy boxes")
    order = np.lexsort((b[:, 1], b[:, 0], -(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
    out: dict[tuple[int, int, int, int], None] = {}
    for x1, y1, x2, y2 in b[order]:
        x1, y1 = max(x1, 0.0), max(y1, 0.0)
        x2, y2 = min(x2, float(w)), min(y2, float(h))
        if out:
            t = np.array(list(out), np.int64)
            if ((t[:, 0] <= x1) & (t[:, 1] <= y1) & (t[:, 2] >= x2) & (t[:, 3] >= y2)).any():
                continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        bw, bh = max(x2 - x1, tw), max(y2 - y1, th)
        ax = int(min(max(math.floor(cx - bw / 2), 0), w - math.ceil(bw)))
        ay = int(min(max(math.floor(cy - bh / 2), 0), h - math.ceil(bh)))
        ax, ay = max(ax, 0), max(ay, 0)
        aw, ah = min(int(math.ceil(bw)), w - ax), min(int(math.ceil(bh)), h - ay)
        for g in slice_grid(ah, aw, th, tw, overlap_ratio[0], overlap_ratio[1]):
            out[(int(g[0]) + ax, int(g[1]) + ay, int(g[2]) + ax, int(g[3]) + ay)] = None
    if not out:
        return np.zeros((0, 4), np.int64)
    return np.array(sorted(out, key=lambda t: (t[1], t[0], t[3], t[2])), np.int64)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over the area of the b box (IoS of the detection)."""
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area = np.clip((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9, None)
    return inter / area[None, :]


def _region_masks(mask: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """Box-local masks of the anomaly mask's 8-connected regions: for each box, the
    components of the mask over the box and a 1 px ring around it whose bounding box is the
    box (the region's own pixels; a neighbour's pixels reaching into the box reach the ring
    too, so they are not taken). Work over the boxes only, never over the whole image."""
    if len(boxes) == 0:
        return []
    from ._optional import require_cv2

    cv2 = require_cv2("Inspector")
    h, w = mask.shape[:2]
    out: list[np.ndarray] = []
    for b in np.asarray(boxes, np.float64):
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        a, c = max(x1 - 1, 0), max(y1 - 1, 0)
        crop = np.ascontiguousarray(mask[c:min(y2 + 1, h), a:min(x2 + 1, w)], np.uint8)
        n, labels, st, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
        own = [i for i in range(1, n) if (st[i, 0] + a, st[i, 1] + c, st[i, 0] + a + st[i, 2],
                                          st[i, 1] + c + st[i, 3]) == (x1, y1, x2, y2)]
        local = labels[y1 - c:y2 - c, x1 - a:x2 - a]
        # a box that is not one component's (another model's regions): its mask crop
        out.append(np.isin(local, own) if own else local > 0)
    return out


class Inspector:
    """The cascade: anomaly map -> candidate regions -> detector on the candidates' tiles.

    Args:
        anomaly: a :class:`fissure.PatchCore` (fitted or loaded), a memory-bank file
            (``.safetensors``), a :class:`fissure.AnomalyModel`, or an anomalib export
            (``.onnx`` / ``.xml``).
        detector: None (the anomaly stage alone), a :class:`fissure.TiledDetector`, or a
            model file opened as one with its defaults.
        review: ``(low, high)`` region scores (anomaly-map units) that go to a person: a
            region scoring in ``[low, high)`` is ``review``, from ``high`` on ``defect``.
            Default: the anomaly model's own band (``PatchCore.review_band``: the largest
            held-out normal value to one margin step above the threshold), else the pixel
            threshold times ``(0.8, 1.25)``.
        match_threshold: a detection explains a region when at least this fraction of the
            detection's box lies inside the region's box grown by ``context``.
        context: the region's box is grown by this fraction of its size (at least 8 px) on
            each side when matching and when planning tiles.
        confirm: a region the detector explains is a ``defect`` even inside the review band.
        specular: ``None`` (default: each stage as it is set) or ``"mask"`` (glare is not a
            defect, in either stage): the anomaly stage masks glare (a model set otherwise is
            used through a shallow copy set to ``"mask"``; the object passed in is not
            changed) and detections lying mostly (``>= 0.5`` of their box) on that glare are
            dropped before matching, so a highlight next to a candidate cannot name it.
        backend, device, num_threads: for files opened here.

    A detector's own specular setting and thresholds apply on its tiles as well.
    """

    def __init__(
        self,
        anomaly: Any,
        detector: Any = None,
        *,
        review: Optional[tuple[float, float]] = None,
        match_threshold: float = 0.5,
        context: float = 0.25,
        confirm: bool = True,
        specular: Optional[str] = None,
        backend: str = "auto",
        device: str = "auto",
        num_threads: int = -1,
    ) -> None:
        if specular not in (None, "mask"):
            raise ValueError(f"specular: expected None or 'mask', got {specular!r}")
        self.specular = specular
        self.anomaly = self._open_anomaly(anomaly, backend, device, num_threads)
        if specular == "mask" and getattr(self.anomaly, "specular", "mask") != "mask":
            import copy

            self.anomaly = copy.copy(self.anomaly)
            self.anomaly.specular = "mask"
        self._owns_detector = False
        if detector is None or callable(getattr(detector, "detect_tiles", None)):
            self.detector = detector
        elif isinstance(detector, (str, os.PathLike, bytes)):
            from .detection import TiledDetector

            self.detector = TiledDetector(detector, backend=backend, device=device,
                                          num_threads=num_threads)
            self._owns_detector = True
        else:
            raise TypeError(f"detector: expected None, a TiledDetector or a model file, got "
                            f"{type(detector).__name__}")
        if not (isinstance(match_threshold, (int, float)) and 0 < match_threshold <= 1):
            raise ValueError(f"match_threshold: expected a number in (0, 1], got {match_threshold!r}")
        if not (isinstance(context, (int, float)) and 0 <= context <= 10):
            raise ValueError(f"context: expected a number in [0, 10], got {context!r}")
        self.match_threshold = float(match_threshold)
        self.context = float(context)
        self.confirm = bool(confirm)
        self._review = None if review is None else self._check_review(review)

    @staticmethod
    def _open_anomaly(anomaly: Any, backend: str, device: str, num_threads: int) -> Any:
        if callable(getattr(anomaly, "predict", None)):
            return anomaly
        if isinstance(anomaly, (str, os.PathLike)):
            p = Path(anomaly)
            if p.suffix.lower() in MODEL_SUFFIXES:
                from .anomaly import AnomalyModel

                return AnomalyModel(p, backend=backend, device=device, num_threads=num_threads)
            from .anomaly import PatchCore

            return PatchCore.load(p, backend=backend, device=device, num_threads=num_threads)
        raise TypeError(f"anomaly: expected a PatchCore, an AnomalyModel, a memory-bank file or "
                        f"an anomalib export, got {type(anomaly).__name__}")

    @staticmethod
    def _check_review(review: Any) -> tuple[float, float]:
        try:
            low, high = (float(v) for v in review)
        except (TypeError, ValueError):
            raise ValueError(f"review: expected (low, high), got {review!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"review: expected finite low <= high, got {review!r}")
        return low, high

    def review_band(self) -> tuple[float, float]:
        """The ``(low, high)`` band in use (see the class docstring)."""
        if self._review is not None:
            return self._review
        band = getattr(self.anomaly, "review_band", None)
        if band is not None and not callable(band):
            return self._check_review(band)
        t = getattr(self.anomaly, "threshold", None)
        if t is None:
            raise ValueError("review: the anomaly model has no threshold yet (fit or load it)")
        return float(t) * 0.8, float(t) * 1.25

    def _grown(self, boxes: np.ndarray, h: int, w: int) -> np.ndarray:
        b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
        gx = np.maximum((b[:, 2] - b[:, 0]) * self.context, 8.0)
        gy = np.maximum((b[:, 3] - b[:, 1]) * self.context, 8.0)
        b[:, 0] = np.clip(b[:, 0] - gx, 0, w)
        b[:, 2] = np.clip(b[:, 2] + gx, 0, w)
        b[:, 1] = np.clip(b[:, 1] - gy, 0, h)
        b[:, 3] = np.clip(b[:, 3] + gy, 0, h)
        return b

    def __call__(self, image: Any) -> InspectionResult:
        """Inspects one image (array or path)."""
        import time

        img = as_image(image)
        t0 = time.perf_counter()
        res = self.anomaly.predict(img)
        t1 = time.perf_counter()
        out = self.cascade(img, res)
        out.seconds = {"anomaly": t1 - t0, "detector": out.seconds["detector"],
                       "total": time.perf_counter() - t0}
        return out

    def cascade(self, image: Any, anomaly_result: Any) -> InspectionResult:
        """The stages after the anomaly model, on its result for ``image`` (computed
        elsewhere, e.g. to try several detectors or bands on one map): tile plan, detector,
        matching, verdicts. ``Inspector(...)(image)`` is ``cascade(image, predict(image))``."""
        import time

        img = as_image(image)
        h, w = img.shape[:2]
        res = anomaly_result
        amap = getattr(res, "anomaly_map", None)
        if amap is None or tuple(np.shape(amap)) != (h, w):
            raise ValueError(f"anomaly_result: expected the anomaly result of this {w}x{h} "
                             f"image, got a map of shape {np.shape(amap)}")
        t1 = time.perf_counter()
        low, high = self.review_band()
        boxes = np.asarray(res.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(res.box_scores, np.float64).reshape(-1)
        masks = _region_masks(np.asarray(res.mask), boxes)
        regions = [InspectedRegion(i + 1, tuple(float(v) for v in b), float(s), mask=m)
                   for i, (b, s, m) in enumerate(zip(boxes, scores, masks))]
        dets, run, total = None, 0, 0
        if self.detector is not None:
            det = self.detector
            total = len(slice_grid(h, w, det.tile_size[0], det.tile_size[1],
                                   det.overlap_ratio[0], det.overlap_ratio[1]))
            grown = self._grown(boxes, h, w)
            tiles = plan_tiles(grown, (h, w), det.tile_size, det.overlap_ratio)
            run = len(tiles)
            dets = det.detect_tiles(img, tiles)
            glare = getattr(res, "glare", None)
            if self.specular == "mask" and glare is not None and len(dets):
                dets = dets.filter_specular(glare, specular="mask", specular_threshold=0.5)
            if len(dets) and len(regions):
                ios = _overlap(grown, np.asarray(dets.boxes, np.float64))
                for i, r in enumerate(regions):
                    hits = np.flatnonzero(ios[i] >= self.match_threshold)
                    if hits.size:
                        best = hits[np.argmax(np.asarray(dets.scores)[hits])]
                        cid = int(dets.class_ids[best])
                        names = getattr(det, "class_names", None) or {}
                        r.class_id, r.confidence = cid, float(dets.scores[best])
                        r.label = str(names.get(cid, cid))
        for r in regions:
            if self.confirm and r.class_id is not None:
                r.verdict = "defect"
            elif r.score >= high:
                r.verdict = "defect"
            elif r.score >= low:
                r.verdict = "review"
            else:
                r.verdict = "ok"
        worst = min((VERDICTS.index(r.verdict) for r in regions), default=VERDICTS.index("ok"))
        t2 = time.perf_counter()
        return InspectionResult(res, regions, VERDICTS[worst], (low, high), dets, run, total,
                                {"detector": t2 - t1, "total": t2 - t1})

    def close(self) -> None:
        if self._owns_detector and self.detector is not None:
            self.detector.close()

    def __enter__(self) -> "Inspector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


