"""Post-training INT8 quantization of a model, calibrated on tiles of the user's own images.

The tiles are cut and preprocessed exactly as the detector will cut and preprocess them at
run time: the same :func:`fissure.tiling.slice_grid` grid, the same
:class:`fissure.PreprocessConfig` (resolved by :class:`fissure.TiledDetector` itself from the
model, its metadata and the options given), the same :func:`fissure.preprocess_tiles`. The
images are split into calibration images and held-out images (``holdout``); the quantized
model is checked against the float model on the held-out tiles only, and is written only when
it passes the accuracy gate (see ``docs/quantize.md``):

- detection / segmentation models: each held-out tile is run through both models with the
  detector's own decoder and merge (:meth:`fissure.TiledDetector.detect_tiles`), and the
  INT8 detections are matched one-to-one to the float detections of the same tile and class
  at IoU >= 0.5 (greedy, highest INT8 score first). Recall = matched / float detections,
  precision = matched / INT8 detections; the model is refused when the recall is below
  ``min_recall`` (default 0.9);
- feature backbones (PatchCore's, ``task="features"``): the patch embeddings
  (:func:`fissure.anomaly.embed_patches` of every output map) of both models are compared
  per patch; the model is refused when the mean cosine similarity is below ``min_cosine``
  (default 0.9).

Backends: ONNX Runtime (``onnxruntime.quantization.quantize_static``, QDQ format, per-channel
weights, a :class:`~onnxruntime.quantization.CalibrationDataReader` over the calibration
tiles) writes an ``.onnx``; OpenVINO (NNCF's ``nncf.quantize``, ``pip install
"fissure[quantize]"``) writes an OpenVINO IR ``.xml`` with its ``.bin``.

Nothing is written when anything fails or the gate refuses; the output appears by an atomic
rename after the check passed.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

__all__ = [
    "AccuracyGateError",
    "QuantizeReport",
    "head_nodes",
    "match_detections",
    "quantize_model",
]

_BACKENDS = ("onnxruntime", "openvino")
_TASKS = ("auto", "detect", "features")
_CALIBRATION = ("minmax", "entropy", "percentile")
#: the IoU at which an INT8 detection counts as the float model's detection
MATCH_IOU = 0.5

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class QuantizeReport:
    """What :func:`quantize_model` did and how the INT8 model compares with the float one.

    ``recall`` / ``precision`` (detection models) and ``cosine`` (feature backbones) are
    measured on the tiles of the held-out images only; ``passed`` tells whether the gate
    (``min_recall`` / ``min_cosine``) let the model through, ``output`` where it was written
    (None when it was not)."""

    model: str
    output: Optional[str]
    backend: str
    task: str
    passed: bool
    calibration_images: int
    calibration_tiles: int
    holdout_images: int
    holdout_tiles: int
    tile_size: tuple[int, int]
    overlap_ratio: tuple[float, float]
    input_size: tuple[int, int]
    # detection models
    float_detections: int = 0
    int8_detections: int = 0
    matched: int = 0
    recall: Optional[float] = None
    precision: Optional[float] = None
    min_recall: Optional[float] = None
    # feature backbones
    cosine: Optional[float] = None
    min_cosine_patch: Optional[float] = None
    relative_error: dict[str, float] = field(default_factory=dict)
    min_cosine: Optional[float] = None
    #: the held-out images (paths; ``"images[i]"`` for an array given)
    holdout_sources: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        d = asdict(self)
        d["tile_size"] = list(self.tile_size)
        d["overlap_ratio"] = list(self.overlap_ratio)
        d["input_size"] = list(self.input_size)
        return d

    def lines(self) -> list[str]:
        """The report as the lines ``fissure quantize`` prints."""
        out = [f"fissure quantize: {Path(self.model).name} -> INT8 on {self.backend} "
               f"({self.task}); calibrated on {self.calibration_tiles} tile(s) of "
               f"{self.calibration_images} image(s), checked on {self.holdout_tiles} tile(s) "
               f"of {self.holdout_images} held-out image(s); tiles {self.tile_size[0]}x"
               f"{self.tile_size[1]} overlap {self.overlap_ratio[0]:g}, input "
               f"{self.input_size[0]}x{self.input_size[1]}"]
        if self.task == "detect":
            out.append(f"  against the float model (IoU >= {MATCH_IOU:g}, same class): recall "
                       f"{_fmt(self.recall)} ({self.matched}/{self.float_detections}), precision "
                       f"{_fmt(self.precision)} ({self.matched}/{self.int8_detections}); gate: "
                       f"recall >= {self.min_recall:g}")
        else:
            errs = ", ".join(f"{k} {v:.4f}" for k, v in self.relative_error.items())
            out.append(f"  against the float model: patch-embedding cosine mean "
                       f"{_fmt(self.cosine)}, min {_fmt(self.min_cosine_patch)}; relative L2 "
                       f"error per output: {errs}; gate: mean cosine >= {self.min_cosine:g}")
        s = self.seconds
        out.append(f"  time: calibration + quantization {s.get('quantize', 0):.1f} s, check "
                   f"{s.get('check', 0):.1f} s")
        return out


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.4f}"


class AccuracyGateError(ValueError):
    """The INT8 model failed the accuracy gate and was not written; ``report`` holds the
    measurements."""

    def __init__(self, message: str, report: QuantizeReport) -> None:
        super().__init__(message)
        self.report = report


# ------------------------------------------------------------------------------ matching


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_detections(ref_boxes: Any, ref_classes: Any, boxes: Any, scores: Any, classes: Any,
                     iou: float = MATCH_IOU) -> int:
    """How many of ``boxes`` match a reference box one-to-one: greedily, highest score first,
    each to the unmatched reference box of the same class with the largest IoU, when that IoU
    is ``>= iou`` (COCO's matching rule)."""
    ref_classes = np.asarray(ref_classes).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    if len(ref_classes) == 0 or len(classes) == 0:
        return 0
    m = _iou(boxes, ref_boxes)
    m[classes[:, None] != ref_classes[None, :]] = -1.0
    taken = np.zeros(len(ref_classes), bool)
    found = 0
    for i in np.argsort(-np.asarray(scores, np.float64).reshape(-1), kind="stable"):
        row = np.where(taken, -1.0, m[i])
        j = int(np.argmax(row))
        if row[j] >= iou:
            taken[j] = True
            found += 1
    return found


# ------------------------------------------------------------------------------ inputs


def _check_ratio(v: Any, name: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueError(f"{name}: expected a number, got {v!r}")
    v = float(v)
    if v < lo or v > hi or (open_lo and v == lo):
        raise ValueError(f"{name}: expected a number in {'(' if open_lo else '['}{lo:g}, "
                         f"{hi:g}], got {v!r}")
    return v


def _image_list(images: Any) -> list[Any]:
    """Paths (files, folders, globs, expanded) and arrays, in order."""
    from .io import expand_inputs

    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    out: list[Any] = []
    for item in images:
        if isinstance(item, np.ndarray):
            out.append(item)
        elif isinstance(item, (str, os.PathLike)):
            found = list(expand_inputs([item]))
            if not found:
                raise ValueError(f"images: {os.fspath(item)} matches no image file")
            out.extend(found)
        else:
            raise TypeError(f"images: expected paths or (H, W, 3) uint8 arrays, got "
                            f"{type(item).__name__}")
    return out


def _load(item: Any) -> np.ndarray:
    from .io import as_image, read_image

    if isinstance(item, np.ndarray):
        return as_image(item)
    try:
        return read_image(item)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the image {item}: {exc}") from exc


def _split(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(calibration indices, held-out indices): a seeded shuffle, at least one of each."""
    if n < 2:
        raise ValueError(f"images: expected at least 2 images (some to calibrate, some held "
                         f"out to check the INT8 model against the float one), got {n}")
    k = min(n - 1, max(1, int(round(holdout * n))))
    order = np.random.default_rng(seed).permutation(n)
    return sorted(int(i) for i in order[k:]), sorted(int(i) for i in order[:k])


class _TileSource:
    """The tiles of some images as model input batches of one, re-iterable (NNCF may iterate
    more than once), holding one image at a time. ``limit`` caps the tiles: evenly spaced
    over all of them (the image sizes come from the file headers)."""

    def __init__(self, items: list[Any], grid: Any, prepare: Any, limit: Optional[int]) -> None:
        from .io import image_file_size

        self.items, self.grid, self.prepare = items, grid, prepare
        counts = []
        for item in items:
            if isinstance(item, np.ndarray):
                h, w = item.shape[:2]
            else:
                size = image_file_size(item)
                if size is None:
                    h, w = _load(item).shape[:2]
                else:
                    w, h = size
            counts.append(len(grid(h, w)))
        total = sum(counts)
        if limit is not None and total > limit:
            pick = set(np.unique(np.linspace(0, total - 1, limit).round().astype(int)).tolist())
        else:
            pick = set(range(total))
        self.pick: list[list[int]] = []
        start = 0
        for c in counts:
            self.pick.append([i - start for i in range(start, start + c) if i in pick])
            start += c
        self.count = sum(len(p) for p in self.pick)

    def images(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image, the chosen tiles of it) per image."""
        for item, chosen in zip(self.items, self.pick):
            if not chosen:
                continue
            img = _load(item)
            tiles = self.grid(*img.shape[:2])
            keep = [i for i in chosen if i < len(tiles)]
            yield img, tiles[keep]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for img, tiles in self.images():
            for t in tiles:
                yield self.prepare(img, t[None])

    def __len__(self) -> int:
        return self.count


# ------------------------------------------------------------------------------ quantizers

#: the layers with weights: the output head is the graph from the last of these to the outputs
_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def head_nodes(proto: Any) -> list[str]:
    """The names of an ONNX graph's output head: every node reached walking back from the
    graph outputs before a weighted layer (Conv, ConvTranspose, Gemm, MatMul), and those last
    weighted layers themselves. Kept in float, they keep box coordinates, scores and
    probability maps out of an 8-bit activation grid (a YOLO concatenates 0..640 boxes with
    0..1 scores into one tensor: one scale for both wipes out the scores)."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    todo = [o.name for o in proto.graph.output]
    seen: set[str] = set()
    names: list[str] = []
    while todo:
        node = producer.get(todo.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name:
            names.append(node.name)
        if node.op_type not in _WEIGHTED:
            todo.extend(node.input)
    return names



def _require(backend: str) -> None:
    """BackendNotInstalledError, with the install command, when what ``backend``'s
    quantization needs is missing (before any image is read)."""
    from importlib.util import find_spec

    from .backends import BackendNotInstalledError

    need = {"onnxruntime": (("onnx", "onnx"), ("onnxruntime", "onnxruntime")),
            "openvino": (("nncf", "nncf"), ("openvino", "openvino"))}[backend]
    missing = [dist for module, dist in need if find_spec(module) is None]
    if missing:
        raise BackendNotInstalledError(
            f"quantizing for {backend} needs {' and '.join(missing)}, not installed: "
            "pip install 'fissure[quantize]'")


def _quantize_onnxruntime(model: Path, tiles: _TileSource, out: Path, *, per_channel: bool,
                          reduce_range: bool, calibration: str, float_head: bool,
                          workdir: Path) -> list[str]:
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        proto = onnx.load(str(model))
    except Exception as exc:  # noqa: BLE001 - onnx raises its own DecodeError
        raise ValueError(f"model {model}: not a readable ONNX model ({exc})") from exc
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    src = model
    if opset < 13:  # per-channel DequantizeLinear (its axis) needs opset 13
        from onnx import version_converter

        proto = version_converter.convert_version(proto, 13)
        src = workdir / "opset13.onnx"
        onnx.save(proto, str(src))
    pre = workdir / "pre.onnx"
    try:  # ONNX Runtime's recommended preparation: shape inference, constant folding, fusions
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - the model quantizes without it, only less fused
        pre = src

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(tiles)

        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            return next(self.it, None)

        def rewind(self) -> None:
            self.it = iter(tiles)

    exclude = head_nodes(onnx.load(str(pre))) if float_head else []
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibration]
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, reduce_range=reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=method, nodes_to_exclude=exclude)
    # (not CalibMaxIntermediateOutputs: ONNX Runtime 1.32 drops the tensors it collected
    # when that cap is reached instead of folding them into the ranges)
    # keep the exporter's metadata (class names, stride, imgsz: what the detector reads)
    q = onnx.load(str(out))
    have = {p.key for p in q.metadata_props}
    for p in onnx.load(str(model), load_external_data=False).metadata_props:
        if p.key not in have:
            q.metadata_props.add(key=p.key, value=p.value)
    onnx.save(q, str(out))
    return exclude


def _quantize_openvino(model: Path, tiles: _TileSource, out: Path, *,
                       float_head: bool) -> list[str]:
    import nncf
    import openvino as ov

    try:
        ov_model = ov.Core().read_model(str(model))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
        raise ValueError(f"model {model}: OpenVINO could not read it "
                         f"({str(exc).strip().splitlines()[0][:300]})") from exc
    exclude = _ov_head_nodes(ov_model) if float_head else []
    scope = nncf.IgnoredScope(names=exclude, validate=False) if exclude else None
    q = nncf.quantize(ov_model, nncf.Dataset(tiles), subset_size=max(1, len(tiles)),
                      ignored_scope=scope)
    ov.save_model(q, str(out))
    return exclude


def _ov_head_nodes(ov_model: Any) -> list[str]:
    """:func:`head_nodes` on an OpenVINO model (friendly names)."""
    weighted = {"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                "GroupConvolutionBackpropData", "MatMul"}
    todo = [r.input_value(0).get_node() for r in ov_model.get_results()]
    seen: set[str] = set()
    names: list[str] = []
    while todo:
        node = todo.pop()
        name = node.get_friendly_name()
        if name in seen:
            continue
        seen.add(name)
        kind = node.get_type_name()
        if kind in ("Parameter", "Constant", "Result"):
            continue
        names.append(name)
        if kind not in weighted:
            todo.extend(v.get_node() for v in node.input_values())
    return names


# ------------------------------------------------------------------------------ the checks


def _check_detections(fdet: Any, qdet: Any, holdout: _TileSource) -> dict[str, Any]:
    nf = nq = matched = tiles = 0
    for img, chosen in holdout.images():
        for t in chosen:
            a = fdet.detect_tiles(img, t[None])
            b = qdet.detect_tiles(img, t[None])
            nf += len(a)
            nq += len(b)
            matched += match_detections(a.boxes, a.class_ids, b.boxes, b.scores, b.class_ids)
            tiles += 1
    return {"float_detections": nf, "int8_detections": nq, "matched": matched,
            "recall": matched / nf if nf else None, "precision": matched / nq if nq else None}


def _check_features(fmodel: Any, qmodel: Any, holdout: _TileSource, maps: list[str],
                    num_threads: int) -> dict[str, Any]:
    from .anomaly import embed_patches

    cos_sum, n, worst = 0.0, 0, 1.0
    err_num = {k: 0.0 for k in maps}
    err_den = {k: 0.0 for k in maps}
    for feed in holdout:
        a = fmodel.run(feed)
        b = qmodel.run(feed)
        for k in maps:
            fa, fb = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
            err_num[k] += float(((fa - fb) ** 2).sum())
            err_den[k] += float((fa ** 2).sum())
        ea = embed_patches([a[k] for k in maps], num_threads=num_threads)
        eb = embed_patches([b[k] for k in maps], num_threads=num_threads)
        ea = ea.reshape(-1, ea.shape[-1]).astype(np.float64)
        eb = eb.reshape(-1, eb.shape[-1]).astype(np.float64)
        na, nb = np.linalg.norm(ea, axis=1), np.linalg.norm(eb, axis=1)
        ok = (na > 0) & (nb > 0)
        cos = np.where(ok, (ea * eb).sum(axis=1) / np.where(ok, na * nb, 1.0),
                       np.where((na == 0) & (nb == 0), 1.0, 0.0))
        cos_sum += float(cos.sum())
        n += len(cos)
        worst = min(worst, float(cos.min()))
    return {"cosine": cos_sum / n if n else None, "min_cosine_patch": worst if n else None,
            "relative_error": {k: math.sqrt(err_num[k] / err_den[k]) if err_den[k] else 0.0
                               for k in maps}}


# ------------------------------------------------------------------------------ the API


def _is_bundled_backbone(path: Path) -> bool:
    from . import models
    from .io import sha256_file

    try:
        return sha256_file(path) == models.backbone_manifest()["sha256"]
    except (OSError, ValueError, KeyError):
        return False


def _feature_config(path: Path, tile: tuple[int, int], preprocess: Any) -> Any:
    """The preprocessing of a feature backbone: tiles at native size; the bundled backbone's
    normalisation from its manifest, else ImageNet's (as :class:`fissure.anomaly.PatchCore`
    does), with ``preprocess`` laid over it."""
    from dataclasses import fields, replace

    from . import models
    from .preprocess import PreprocessConfig

    if _is_bundled_backbone(path):
        norm = models.backbone_manifest()["input"]
        cfg = PreprocessConfig(input_size=tile, mode="none",
                               rgb=str(norm.get("color", "RGB")).upper() == "RGB",
                               scale=float(norm.get("scale", 1 / 255)),
                               mean=tuple(float(v) for v in norm["mean"]),
                               std=tuple(float(v) for v in norm["std"]))
    else:
        cfg = PreprocessConfig(input_size=tile, mode="none", rgb=True, scale=1 / 255,
                               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    if isinstance(preprocess, PreprocessConfig):
        return preprocess
    if preprocess:
        known = {f.name for f in fields(PreprocessConfig)}
        unknown = sorted(set(map(str, preprocess)) - known)
        if unknown:
            raise ValueError(f"preprocess: unknown settings {unknown}; expected some of "
                             f"{sorted(known)} (PreprocessConfig's fields)")
        over = dict(preprocess)
        if "input_size" in over:
            from ._validate import int_pair

            over["input_size"] = int_pair(over["input_size"], "preprocess input_size", 1, 65535)
            over.setdefault("mode", "resize")
        cfg = replace(cfg, **over)
    return cfg


def quantize_model(
    model: PathLike,
    images: Any,
    out: PathLike,
    *,
    backend: str = "onnxruntime",
    task: str = "auto",
    tile_size: Union[int, tuple[int, int]] = 640,
    overlap_ratio: Union[float, tuple[float, float]] = 0.2,
    conf_threshold: float = 0.25,
    decoder: Any = "auto",
    decoder_options: Optional[Mapping[str, Any]] = None,
    preprocess: Any = None,
    merge: str = "greedy_nmm",
    match_metric: str = "ios",
    match_threshold: float = 0.5,
    class_agnostic: bool = False,
    holdout: float = 0.2,
    min_recall: float = 0.9,
    min_cosine: float = 0.9,
    max_calibration_tiles: Optional[int] = 64,
    max_holdout_tiles: Optional[int] = 64,
    calibration: str = "minmax",
    per_channel: bool = True,
    reduce_range: bool = True,
    float_head: bool = True,
    seed: int = 0,
    num_threads: int = -1,
) -> QuantizeReport:
    """Quantizes ``model`` to INT8, calibrated on tiles of ``images``, checks it against the
    float model on the tiles of held-out images, and writes it to ``out`` when it passes.

    Args:
        model: the float model (``.onnx``; for ``backend="openvino"`` also OpenVINO ``.xml``).
        images: image files, folders, globs or (H, W, 3) uint8 BGR arrays (at least 2: a
            seeded ``holdout`` fraction of them, at least one, is held out for the check).
        out: the INT8 model to write: ``.onnx`` (ONNX Runtime) or ``.xml`` (OpenVINO IR; its
            ``.bin`` is written beside it).
        backend: ``"onnxruntime"`` (quantize_static, QDQ, per-channel weights) or
            ``"openvino"`` (NNCF; ``pip install "fissure[quantize]"``).
        task: ``"detect"`` (a model :class:`fissure.TiledDetector` runs: recall/precision
            gate), ``"features"`` (a feature backbone such as PatchCore's: cosine gate) or
            ``"auto"`` (features for the bundled PatchCore backbone and for models no decoder
            reads, else detect).
        tile_size, overlap_ratio, conf_threshold, decoder, decoder_options, preprocess,
            merge, match_metric, match_threshold, class_agnostic: as
            :class:`fissure.TiledDetector` takes them (the run-time settings: calibration
            tiles are the tiles the detector will see). For features, ``tile_size`` and
            ``overlap_ratio`` cut the tiles (PatchCore's default is 512 and 0.25) and
            ``preprocess`` is a dict over the backbone's normalisation.
        holdout: the fraction of images held out for the check (0 < holdout < 1).
        min_recall: the gate of a detection model: the INT8 model's recall of the float
            model's detections on the held-out tiles must be at least this (0..1; more than 1
            refuses every model).
        min_cosine: the gate of a feature backbone: the mean cosine similarity of the INT8
            and float patch embeddings must be at least this (default 0.9: the bundled
            backbone's ONNX Runtime INT8 copy at 0.946 keeps PatchCore's ELPV AUROC,
            docs/quantize.md).
        max_calibration_tiles, max_holdout_tiles: caps (evenly spaced over all tiles; None:
            every tile).
        calibration: ``"minmax"`` (default), ``"entropy"`` or ``"percentile"`` (ONNX Runtime's
            calibration methods; OpenVINO takes only the default, NNCF's own estimation).
        per_channel, reduce_range: ONNX Runtime's per-channel weights (default on) and 7-bit
            weights (default on: x86 CPUs without VNNI, AVX2 ones, multiply uint8 activations
            by int8 weights with a saturating instruction, and full 8-bit weights overflow it:
            the bundled backbone's embedding cosine drops from 0.95 to 0.84 on such a CPU;
            False for a model that will only run on VNNI / ARM CPUs).
        float_head: keep the output head in float (:func:`head_nodes`: the last weighted
            layers and everything after them: box decoding, sigmoid, concatenations);
            False quantizes it too.
        seed: the seed of the calibration / hold-out split.
        num_threads: threads of the check's models and preprocessing.

    Returns:
        the :class:`QuantizeReport`.

    Raises:
        AccuracyGateError (a ValueError, with ``.report``): the INT8 model failed the gate, or
            the float model found nothing on the held-out tiles to check against; nothing was
            written.
        ValueError / TypeError: bad arguments, an unreadable model or image.
        BackendNotInstalledError: NNCF (OpenVINO) is not installed.
    """
    from ._validate import check_num_threads, int_pair
    from .tiling import slice_grid

    t_start = time.perf_counter()
    src = Path(os.fspath(model))
    dst = Path(os.fspath(out))
    if backend not in _BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(_BACKENDS)}, got {backend!r}")
    if task not in _TASKS:
        raise ValueError(f"task: expected one of {', '.join(_TASKS)}, got {task!r}")
    if calibration not in _CALIBRATION:
        raise ValueError(f"calibration: expected one of {', '.join(_CALIBRATION)}, got "
                         f"{calibration!r}")
    if backend == "openvino" and calibration != "minmax":
        raise ValueError(f"calibration {calibration!r}: the ONNX Runtime backend's choice; "
                         "OpenVINO quantizes with NNCF's own range estimation")
    _require(backend)
    if not src.is_file():
        raise FileNotFoundError(f"no such model file: {src}")
    want = ".onnx" if backend == "onnxruntime" else ".xml"
    if dst.suffix.lower() != want:
        raise ValueError(f"out: the {backend} INT8 model is written as {want}, got {dst}")
    if backend == "onnxruntime" and src.suffix.lower() != ".onnx":
        raise ValueError(f"model {src}: ONNX Runtime quantizes .onnx models")
    if dst.exists() and dst.is_dir():
        raise ValueError(f"out: {dst} is a folder; expected a model file name")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"out: {dst} is the float model itself; write the INT8 model elsewhere")
    holdout = _check_ratio(holdout, "holdout", 0.0, 1.0, open_lo=True)
    if holdout >= 1.0:
        raise ValueError(f"holdout: expected a number in (0, 1), got {holdout!r}")
    min_recall = _check_ratio(min_recall, "min_recall", 0.0, 2.0)
    min_cosine = _check_ratio(min_cosine, "min_cosine", -1.0, 2.0)
    for name, cap in (("max_calibration_tiles", max_calibration_tiles),
                      ("max_holdout_tiles", max_holdout_tiles)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, numbers.Integral)
                                or cap < 1):
            raise ValueError(f"{name}: expected a positive int or None, got {cap!r}")
    num_threads = check_num_threads(num_threads)
    items = _image_list(images)
    cal_idx, hold_idx = _split(len(items), holdout, seed)

    from .detection import TiledDetector

    fdet: Any = None
    features: Optional[bool] = None if task == "auto" else task == "features"
    if features is None and _is_bundled_backbone(src):
        features = True
    det_kw: dict[str, Any] = dict(
        device="cpu", tile_size=tile_size, overlap_ratio=overlap_ratio,
        conf_threshold=conf_threshold, decoder=decoder, decoder_options=decoder_options,
        merge=merge, match_metric=match_metric, match_threshold=match_threshold,
        class_agnostic=class_agnostic, batch_size=1, num_threads=num_threads)
    if not features:
        try:
            fdet = TiledDetector(str(src), backend=backend, precision=(
                "f32" if backend == "openvino" else None), preprocess=preprocess, **det_kw)
        except ValueError as exc:
            if features is None and "select_decoder" in str(exc):
                features = True  # no decoder reads its outputs: a feature extractor
            else:
                raise
        else:
            features = False

    fmodel: Any = None
    try:
        if features:
            from .backends import open_model

            tile = int_pair(tile_size, "tile_size", 1, 65535)
            ov_ratio = overlap_ratio if isinstance(overlap_ratio, (tuple, list)) else (
                overlap_ratio, overlap_ratio)
            ratio = (_check_ratio(ov_ratio[0], "overlap_ratio", 0.0, 0.95),
                     _check_ratio(ov_ratio[-1], "overlap_ratio", 0.0, 0.95))
            cfg = _feature_config(src, tile, preprocess)
            fmodel = open_model(str(src), backend, "cpu", num_threads=num_threads,
                                precision="f32" if backend == "openvino" else None)
            maps = [t.name for t in fmodel.spec.outputs if t.rank == 4]
            if not maps:
                raise ValueError(f"model {src}: no (B, C, H, W) feature output to check "
                                 "(task='features' needs a backbone's feature maps)")
            input_name = fmodel.spec.inputs[0].name
            from .preprocess import preprocess_tiles

            def prepare(img: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
                return {input_name: preprocess_tiles(img, t, cfg, num_threads=num_threads)}
        else:
            tile, ratio, cfg = fdet.tile_size, fdet.overlap_ratio, fdet.preprocess

            def prepare(img: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
                from .preprocess import preprocess_tiles

                x = preprocess_tiles(img, t, cfg, num_threads=num_threads)
                return fdet._feed(fdet._to_model(x), cfg)

        def grid(h: int, w: int) -> np.ndarray:
            if features and (h < tile[0] or w < tile[1]):
                raise ValueError(f"an image of {w}x{h} is smaller than the {tile[1]}x{tile[0]} "
                                 "tile (pass a smaller tile_size)")
            return slice_grid(h, w, tile[0], tile[1], ratio[0], ratio[1])

        cal = _TileSource([items[i] for i in cal_idx], grid, prepare, max_calibration_tiles)
        hold = _TileSource([items[i] for i in hold_idx], grid, prepare, max_holdout_tiles)
        report = QuantizeReport(
            model=str(src), output=None, backend=backend,
            task="features" if features else "detect", passed=False,
            calibration_images=len(cal_idx), calibration_tiles=len(cal),
            holdout_images=len(hold_idx), holdout_tiles=len(hold),
            tile_size=(int(tile[0]), int(tile[1])),
            overlap_ratio=(float(ratio[0]), float(ratio[1])),
            input_size=(int(cfg.input_size[0]), int(cfg.input_size[1])),
            min_recall=None if features else min_recall,
            min_cosine=min_cosine if features else None,
            holdout_sources=[f"images[{i}]" if isinstance(items[i], np.ndarray)
                             else str(items[i]) for i in hold_idx],
            settings={"calibration": calibration, "per_channel": per_channel,
                      "reduce_range": reduce_range, "float_head": float_head, "seed": seed,
                      "max_calibration_tiles": max_calibration_tiles,
                      "max_holdout_tiles": max_holdout_tiles, "holdout": holdout})

        dst.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=str(dst.parent)))
        try:
            qpath = work / dst.name
            t0 = time.perf_counter()
            if backend == "onnxruntime":
                kept = _quantize_onnxruntime(src, cal, qpath, per_channel=per_channel,
                                             reduce_range=reduce_range,
                                             calibration=calibration, float_head=float_head,
                                             workdir=work)
            else:
                kept = _quantize_openvino(src, cal, qpath, float_head=float_head)
            report.settings["float_head_nodes"] = len(kept)
            t1 = time.perf_counter()
            report.seconds["quantize"] = t1 - t0
            if features:
                from .backends import open_model

                qmodel = open_model(str(qpath), backend, "cpu", num_threads=num_threads)
                try:
                    r = _check_features(fmodel, qmodel, hold, maps, num_threads)
                finally:
                    qmodel.close()
                report.cosine = r["cosine"]
                report.min_cosine_patch = r["min_cosine_patch"]
                report.relative_error = r["relative_error"]
                report.passed = report.cosine is not None and report.cosine >= min_cosine
                why = (f"the INT8 model's patch embeddings have mean cosine similarity "
                       f"{_fmt(report.cosine)} to the float model's, below min_cosine "
                       f"{min_cosine:g}")
            else:
                qdet = TiledDetector(str(qpath), backend=backend, preprocess=cfg,
                                     class_names=fdet.class_names,
                                     **{**det_kw, "decoder": fdet.decoder,
                                        "decoder_options": fdet.decoder_options})
                try:
                    r = _check_detections(fdet, qdet, hold)
                finally:
                    qdet.close()
                for k, v in r.items():
                    setattr(report, k, v)
                if report.float_detections == 0:
                    report.passed = False
                    why = ("the float model finds nothing on the held-out tiles, so the INT8 "
                           "model cannot be checked against it (give images with the objects "
                           "the model finds, or lower conf_threshold)")
                else:
                    report.passed = report.recall is not None and report.recall >= min_recall
                    why = (f"the INT8 model finds {report.matched} of the float model's "
                           f"{report.float_detections} detections on the held-out tiles "
                           f"(recall {_fmt(report.recall)}), below min_recall {min_recall:g}")
            report.seconds["check"] = time.perf_counter() - t1
            if not report.passed:
                report.seconds["total"] = time.perf_counter() - t_start
                raise AccuracyGateError(f"refused: {why}; nothing was written", report)
            _publish(qpath, dst, backend)
            report.output = str(dst)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if fdet is not None:
            fdet.close()
        if fmodel is not None:
            fmodel.close()
    report.seconds["total"] = time.perf_counter() - t_start
    return report


def _publish(qpath: Path, dst: Path, backend: str) -> None:
    """Moves the checked model into place by renames (the temporary folder is beside ``dst``:
    the same file system): an OpenVINO IR's ``.bin`` first, then the ``.xml`` that names it."""
    for p in (qpath, qpath.with_suffix(".bin") if backend == "openvino" else None):
        if p is not None:
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
    if backend == "openvino":
        os.replace(qpath.with_suffix(".bin"), dst.with_suffix(".bin"))
    os.replace(qpath, dst)
