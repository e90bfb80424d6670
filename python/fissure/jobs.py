"""The jobs of folder runs (:mod:`fissure.runs`, :mod:`fissure.distributed`): what
``fissure detect``, ``fissure anomaly predict`` and ``fissure inspect`` do to each image and
which files they write.

A job is a picklable recipe (the model's path and settings) until :meth:`Job.open` builds the
model, once per process or per Ray actor::

    from fissure.jobs import DetectJob
    from fissure.runs import run_folder

    report = run_folder(DetectJob("best.onnx", tile_size=640), paths, "runs/shift-1",
                        resume=True)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .runs import Item, Job, Outcome, jsonable

__all__ = ["AnomalyJob", "DetectJob", "InspectJob"]


def _file_id(path: Any) -> Any:
    """A model or bank file as the settings record it: path, size and mtime (a re-exported
    model is another run); anything that is not a file as its repr."""
    if isinstance(path, (str, os.PathLike)):
        try:
            st = os.stat(path)
            return {"path": os.path.abspath(os.fspath(path)), "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns}
        except OSError:
            return os.fspath(path)
    return repr(type(path).__name__)


class _ModelJob(Job):
    """A job holding one model object, built by :meth:`build` in :meth:`open`; pickles
    without it (a Ray actor builds its own)."""

    _model: Any = None

    def build(self) -> Any:
        raise NotImplementedError

    def open(self) -> None:
        if self._model is None:
            self._model = self.build()
            self._describe = self.describe_model(self._model)

    def close(self) -> None:
        model, self._model = self._model, None
        close = getattr(model, "close", None)
        if close is not None:
            close()

    def describe_model(self, model: Any) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return getattr(self, "_describe", {})

    @property
    def model(self) -> Any:
        self.open()
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_model", None)
        state.pop("log", None)
        return state


class DetectJob(_ModelJob):
    """``fissure detect`` on one image: :class:`fissure.TiledDetector` with ``detector``
    keyword arguments; writes ``STEM.json`` (COCO-style annotations, categories, the
    detector's settings) and ``STEM_overlay.jpg`` (or ``.png``; none with ``overlay=False``)."""

    command = "detect"
    csv_fields = ("path", "result", "detections", "seconds")

    def __init__(self, model: Any, *, overlay: bool = True, overlay_format: str = "jpg",
                 **detector: Any) -> None:
        if overlay_format not in ("jpg", "png"):
            raise ValueError(f"overlay_format: expected 'jpg' or 'png', got {overlay_format!r}")
        self.model_path, self.overlay, self.overlay_format = model, bool(overlay), overlay_format
        self.detector = detector

    def settings(self) -> dict[str, Any]:
        return {"model": _file_id(self.model_path), "detector": jsonable(self.detector),
                "overlay": self.overlay and self.overlay_format}

    def build(self) -> Any:
        from .detection import TiledDetector

        return TiledDetector(self.model_path, **self.detector)

    def describe_model(self, model: Any) -> dict[str, Any]:
        return model.describe()

    def process(self, image: np.ndarray, item: Item) -> Outcome:
        det = self.model
        t = time.perf_counter()
        dets = det(image)
        seconds = time.perf_counter() - t
        names = det.class_names or {}
        h, w = image.shape[:2]
        cats = sorted(set(int(c) for c in dets.class_ids) | set(names))
        doc = {
            "image": {"id": item.index + 1, "file_name": item.path, "height": h, "width": w},
            "annotations": dets.to_coco(image_id=item.index + 1),
            "categories": [{"id": c, "name": names.get(c, str(c))} for c in cats],
            "detector": self.describe(),
            "seconds": seconds,
        }
        files: dict[str, Any] = {f"{item.stem}.json": doc}
        if self.overlay:
            files[f"{item.stem}_overlay.{self.overlay_format}"] = dets.draw(image)
        return Outcome({"path": item.path, "result": f"{item.stem}.json",
                        "detections": len(dets), "seconds": seconds}, files)

    def postfix(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"dets": row["detections"]}

    def summarize(self, rows: list[dict[str, Any]], failed: list[dict[str, str]],
                  seconds: float) -> tuple[dict[str, Any], str]:
        total = sum(r["detections"] for r in rows)
        n = len(rows)
        return ({"detector": self.describe(), "images": rows, "detections": total,
                 "failed": failed, "seconds": seconds},
                f"fissure detect: {n} image(s), {total} detection(s) in {seconds:.1f} s "
                f"({n / seconds if seconds > 0 else 0:.2f} img/s)")


class AnomalyJob(_ModelJob):
    """``fissure anomaly predict`` on one image: a PatchCore memory bank
    (:meth:`fissure.PatchCore.load` with ``options``) or an anomalib export
    (:class:`fissure.anomaly.AnomalyModel`, by the suffix .onnx / .xml); writes ``STEM.json``
    (score, verdict, regions) and ``STEM_heatmap.jpg`` (or ``.png``). Images with glare that
    matters and is not masked get a warning line (``glare_warnings``)."""

    command = "anomaly predict"
    csv_fields = ("path", "result", "score", "is_anomalous", "regions", "seconds")
    MODEL_SUFFIXES = (".onnx", ".xml")

    def __init__(self, bank: Any, *, threshold: Optional[float] = None,
                 image_threshold: Optional[float] = None, overlay: bool = True,
                 overlay_format: str = "jpg", glare_warnings: bool = True,
                 **options: Any) -> None:
        if overlay_format not in ("jpg", "png"):
            raise ValueError(f"overlay_format: expected 'jpg' or 'png', got {overlay_format!r}")
        self.bank, self.threshold, self.image_threshold = bank, threshold, image_threshold
        self.overlay, self.overlay_format = bool(overlay), overlay_format
        self.glare_warnings, self.options = bool(glare_warnings), options

    @property
    def is_model(self) -> bool:
        return Path(os.fspath(self.bank)).suffix.lower() in self.MODEL_SUFFIXES

    def settings(self) -> dict[str, Any]:
        return {("model" if self.is_model else "bank"): _file_id(self.bank),
                "threshold": self.threshold, "image_threshold": self.image_threshold,
                "options": jsonable(self.options), "overlay": self.overlay and self.overlay_format}

    def build(self) -> Any:
        if self.is_model:
            from .anomaly import AnomalyModel

            pc = AnomalyModel(self.bank, **self.options)
        else:
            from .anomaly import PatchCore

            opts = dict(self.options)
            backbone = opts.pop("backbone", None)
            pc = PatchCore.load(self.bank, backbone, **opts)
            pc.model  # noqa: B018  the bank's layers, the backbone, the device: now
        if self.threshold is not None:
            pc.threshold = self.threshold
        if self.image_threshold is not None:
            pc.image_threshold = self.image_threshold
        return pc

    def describe_model(self, model: Any) -> dict[str, Any]:
        return {("model" if self.is_model else "bank"): os.fspath(self.bank),
                "pixel_threshold": float(model.threshold),
                "image_threshold": float(model.image_threshold)}

    def process(self, image: np.ndarray, item: Item) -> Outcome:
        pc = self.model
        t = time.perf_counter()
        result = pc.predict(image)
        seconds = time.perf_counter() - t
        if self.glare_warnings and not pc.specular:
            from .specular import glare_warning

            warn = glare_warning(item.path, image, "--specular mask",
                                 self.options.get("num_threads", -1), result.boxes)
            if warn:
                self.log(warn)
        files: dict[str, Any] = {f"{item.stem}.json": {"path": item.path, **result.to_dict(),
                                                       "seconds": seconds}}
        if self.overlay:
            files[f"{item.stem}_heatmap.{self.overlay_format}"] = result.overlay(image)
        return Outcome({"path": item.path, "result": f"{item.stem}.json",
                        "score": float(result.score), "is_anomalous": bool(result.is_anomalous),
                        "regions": len(result.boxes), "seconds": seconds}, files)

    def postfix(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"anomalous": row["is_anomalous"]}

    def summarize(self, rows: list[dict[str, Any]], failed: list[dict[str, str]],
                  seconds: float) -> tuple[dict[str, Any], str]:
        anomalous = sum(bool(r["is_anomalous"]) for r in rows)
        n = len(rows)
        return ({**self.describe(), "images": rows, "anomalous": anomalous, "failed": failed,
                 "seconds": seconds},
                f"fissure anomaly predict: {n} image(s), {anomalous} anomalous in "
                f"{seconds:.1f} s ({n / seconds if seconds > 0 else 0:.2f} img/s)")


class InspectJob(_ModelJob):
    """``fissure inspect`` on one image: :class:`fissure.Inspector` (an anomaly bank or
    model, an optional detector, ``options``); writes ``STEM.json`` (verdict, regions) and
    ``STEM_inspect.jpg``; with ``review_dir``, each region in the review band as a crop with
    context, listed at the end in ``review.csv`` and ``review.json`` there."""

    command = "inspect"
    reserved_stems = ("review",)
    csv_fields = ("image", "verdict", "regions", "defect", "review", "ok", "worst_score",
                  "image_score", "detector_tiles", "seconds")
    REVIEW_FIELDS = ("image", "region", "x1", "y1", "x2", "y2", "score", "low", "high",
                     "label", "crop")

    def __init__(self, anomaly: Any, detector: Any = None, *, review_dir: Any = None,
                 overlay: bool = True, overlay_format: str = "jpg", **options: Any) -> None:
        if overlay_format not in ("jpg", "png"):
            raise ValueError(f"overlay_format: expected 'jpg' or 'png', got {overlay_format!r}")
        self.anomaly, self.detector = anomaly, detector
        self.review_dir = None if review_dir is None else os.path.abspath(os.fspath(review_dir))
        self.overlay, self.overlay_format, self.options = bool(overlay), overlay_format, options

    def output_dirs(self) -> tuple[str, ...]:
        return () if self.review_dir is None else (self.review_dir,)

    def settings(self) -> dict[str, Any]:
        return {"anomaly": _file_id(self.anomaly),
                "detector": None if self.detector is None else _file_id(self.detector),
                "review_dir": self.review_dir, "options": jsonable(self.options),
                "overlay": self.overlay and self.overlay_format}

    def build(self) -> Any:
        from .inspection import Inspector

        insp = Inspector(self.anomaly, self.detector, **self.options)
        self.band = tuple(float(v) for v in insp.review_band())
        return insp

    def describe_model(self, model: Any) -> dict[str, Any]:
        return {"anomaly": os.fspath(self.anomaly),
                "detector": None if self.detector is None else os.fspath(self.detector),
                "review_band": list(self.band)}

    def process(self, image: np.ndarray, item: Item) -> Outcome:
        insp = self.model
        t = time.perf_counter()
        result = insp(image)
        seconds = time.perf_counter() - t
        files: dict[str, Any] = {f"{item.stem}.json": {"path": item.path, **result.to_dict()}}
        if self.overlay:
            files[f"{item.stem}_inspect.{self.overlay_format}"] = result.overlay(image)
        review: list[dict[str, Any]] = []
        if self.review_dir is not None:
            h, w = image.shape[:2]
            for r in result.regions:
                if r.verdict != "review":
                    continue
                x1, y1, x2, y2 = r.box
                cw, ch = max(x2 - x1, 16), max(y2 - y1, 16)  # context: the box again
                a, b = int(max(0, x1 - cw)), int(max(0, y1 - ch))
                c, d = int(min(w, x2 + cw)), int(min(h, y2 + ch))
                name = f"{item.stem}_r{r.id}.png"
                files[os.path.join(self.review_dir, name)] = np.ascontiguousarray(
                    image[b:d, a:c])
                review.append({"image": item.path, "region": r.id, "x1": x1, "y1": y1,
                               "x2": x2, "y2": y2, "score": round(r.score, 6),
                               "low": self.band[0], "high": self.band[1], "label": r.label,
                               "crop": name})
        worst = max((r.score for r in result.regions), default=0.0)
        row = {"image": item.path, "verdict": result.verdict, "regions": len(result.regions),
               **result.counts(), "worst_score": round(worst, 6),
               "image_score": round(float(result.anomaly.score), 6),
               "detector_tiles": f"{result.tiles_run}/{result.tiles_total}",
               "seconds": round(seconds, 3)}
        if review:
            row["review_regions"] = review
        return Outcome(row, files)

    def postfix(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"verdict": row["verdict"]}

    def summarize(self, rows: list[dict[str, Any]], failed: list[dict[str, str]],
                  seconds: float) -> tuple[dict[str, Any], str]:
        verdicts = {"defect": 0, "review": 0, "ok": 0}
        for r in rows:
            verdicts[r["verdict"]] += 1
        shown = [{k: v for k, v in r.items() if k != "review_regions"} for r in rows]
        band = self.describe().get("review_band", [float("nan")] * 2)
        n_review = sum(len(r.get("review_regions", ())) for r in rows)
        line = (f"fissure inspect: {len(rows)} image(s): {verdicts['defect']} defect, "
                f"{verdicts['review']} review, {verdicts['ok']} ok; review band "
                f"[{band[0]:.4g}, {band[1]:.4g})"
                + (f"; {n_review} region(s) for review in {self.review_dir}"
                   if self.review_dir is not None else ""))
        return ({"anomaly": os.fspath(self.anomaly),
                 "detector": None if self.detector is None else os.fspath(self.detector),
                 "review_band": band, "images": shown, "verdicts": verdicts,
                 "failed": failed, "seconds": seconds}, line)

    def summary_files(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self.review_dir is None:
            return {}
        from .runs import csv_bytes

        review = [x for r in rows for x in r.get("review_regions", ())]
        return {os.path.join(self.review_dir, "review.csv"): csv_bytes(review, self.REVIEW_FIELDS),
                os.path.join(self.review_dir, "review.json"): review}
