"""Tiled detection: run a detection or segmentation model over a high-resolution image tile
by tile and merge the results, SAHI-style.

The flow of one call (``docs/detect.md``)::

    image -> slice_grid (SAHI's get_slice_bboxes)
          -> BatchFeeder: tiles preprocessed in C++ into in-flight + 1 batch buffers, batch
             k + 1 prepared in the background while the model runs batch k
          -> backend.submit (ONNX Runtime / OpenVINO): up to max_in_flight batches running
             while finished ones are decoded (1: backend.run, synchronous)
          -> decoder (YOLO, YOLO-seg, end-to-end, DETR, probability map) in image pixels
          -> merge (greedy NMM / NMM / NMS, SAHI-exact)
          -> optional glare filter (specular mask) -> fissure.Detections
"""

from __future__ import annotations

import collections
import math
import numbers
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional, Union

import numpy as np

from ..io import as_image
from .._validate import check_num_threads, int_pair, optional_positive_int
from ..backends import Backend, BackendBase, open_model
from .decoders import KINDS, Decoded, check_decoder_options, select_decoder
from .detections import _SPECULAR, Detections
from ..masks import BoxMasks
from ..merge import greedy_nmm, nmm, nms
from ..preprocess import PreprocessConfig, preprocess_tiles
from ..scheduler import (
    BatchCost,
    BatchFeeder,
    choose_batch_size,
    gpu_memory_used,
    measure_batch_cost,
    rss_bytes,
)
from ..specular import specular_mask
from ..tiling import slice_grid

__all__ = ["DetectStats", "TiledDetector"]

_MERGES = ("greedy_nmm", "nmm", "nms", "none")
#: The PERFORMANCE_HINT a detector compiles an OpenVINO model with when it opens it and keeps
#: batches in flight: THROUGHPUT (several streams, one request per stream plus one) measured
#: faster than LATENCY's one stream on a CPU (docs/benchmarks.md, pipelined tiled detection).
TILED_OPENVINO_HINT = "throughput"
_METRICS = ("ios", "iou")
#: The decoders that read each Ultralytics task's outputs (its ``task`` metadata).
_TASK_DECODERS = {"detect": ("yolo", "yolov5", "end_to_end", "detr", "yolox_raw", "rtdetr",
                             "dfine", "paddle_nms", "paddle_raw"),
                  "segment": ("yolo_seg", "yolov5_seg", "end_to_end_seg", "detr_seg")}


#: The extra model inputs fissure fills (lower-case name -> role), each (B, 2) per batch item:
#: PaddleDetection's ``scale_factor`` (fed 1, 1: boxes come out in model-input pixels) and
#: ``im_shape`` (the input h, w); D-FINE / DEIM / RT-DETRv2's ``orig_target_sizes`` (the
#: input w, h: boxes come out in model-input pixels).
_EXTRA_INPUTS = {"scale_factor": "scale_factor", "im_shape": "im_shape",
                 "orig_target_sizes": "orig_target_sizes"}
#: The decoders of models that stretch the image into the input (no letterbox).
_RESIZE_KINDS = ("detr", "detr_seg", "rtdetr", "dfine", "paddle_nms", "paddle_raw")


def _default_mode(outputs: Any, decoder: Any, size: tuple[int, int], metadata: Any) -> str:
    """The preprocessing mode a model's own pipeline uses: ``"resize"`` for the families that
    stretch (RT-DETR, DETR, D-FINE, PaddleDetection), else Ultralytics' ``"letterbox"``."""
    kind = getattr(decoder, "kind", decoder)
    if kind == "auto":
        try:
            kind = select_decoder(outputs, input_size=size, metadata=metadata).kind
        except ValueError:
            return "letterbox"  # the decoder selection below reports it
    return "resize" if kind in _RESIZE_KINDS else "letterbox"


def _ratio_pair(v: Any, name: str) -> tuple[float, float]:
    vals = v if isinstance(v, Sequence) and not isinstance(v, str) else (v, v)
    if len(vals) != 2:
        raise ValueError(f"{name}: expected a number or a pair (h, w), got {v!r}")
    out = []
    for x in vals:
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or not 0 <= float(x) < 1:
            raise ValueError(f"{name}: expected ratios in [0, 1), got {v!r}")
        out.append(float(x))
    return out[0], out[1]


def _real(v: Any, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not lo <= float(v) <= hi:
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def _choice(v: Any, name: str, choices: Sequence[Optional[str]]) -> Any:
    if v not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {v!r}")
    return v


@dataclass
class DetectStats:
    """Where the time of the last call went (seconds) and how it was batched.

    ``model_s`` is the time the model had work: synchronously the model's own runs
    (backend.run); with batches in flight (``in_flight > 1``) the union over batches of the
    time from submitting a batch to its result. ``overhead_s`` is everything else: slicing,
    waiting for preprocessing that did not overlap, decoding and merging that did not overlap
    the model, the glare filter. ``wait_s`` and ``decode_s`` are the time the calling thread
    spent waiting for preprocessing and decoding (overlapped or not).
    """

    tiles: int = 0
    batches: int = 0
    batch_size: int = 0
    in_flight: int = 1
    total_s: float = 0.0
    model_s: float = 0.0
    wait_s: float = 0.0
    decode_s: float = 0.0
    merge_s: float = 0.0
    specular_s: float = 0.0
    raw_detections: int = 0
    batch_cost: Optional[BatchCost] = field(default=None, repr=False)

    @property
    def overhead_s(self) -> float:
        return max(0.0, self.total_s - self.model_s)


def _union_length(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of closed intervals (the time any batch was in flight)."""
    total, end = 0.0, -math.inf
    for lo, hi in sorted(spans):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


class TiledDetector:
    """Runs a detection or segmentation model over an image tile by tile and merges the
    tile predictions as SAHI does.

    Args:
        model: a model file (.onnx, OpenVINO .xml, .tflite), ONNX bytes, or an open backend
            from :func:`fissure.backends.open_model` (shared, not closed by the detector).
        backend, device, precision: passed to :func:`fissure.backends.open_model`.
        tile_size: tile size in pixels, an int or (h, w); tiles are SAHI's, full-size.
        overlap_ratio: tile overlap ratio, a float or (h, w); overlap px = int(ratio * size).
        merge: ``"greedy_nmm"`` (SAHI's default), ``"nmm"``, ``"nms"`` or ``"none"``.
        match_metric, match_threshold, class_agnostic: the merge's metric (``"ios"`` or
            ``"iou"``), threshold (match when ``>=``) and whether classes merge together.
        conf_threshold: the decoder keeps ``score >= conf_threshold``.
        full_image_pass: also run the whole image resized to the model input and merge its
            predictions with the tiles' (SAHI's ``perform_standard_pred``). Off by default: it
            costs a full forward pass and finds nothing tiny (docs/detect.md).
        vram_budget_mb: the memory budget that sizes batches (and ONNX Runtime CUDA's
            ``gpu_mem_limit``); the rule is in :mod:`fissure.scheduler`.
        decoder: ``"auto"`` (chosen from the output shapes) or a name from
            :func:`fissure.select_decoder` (``fissure.detection.decoders.KINDS``), or a decoder object
            (a :class:`~fissure.detection.DecoderSpec`, or anything with its ``decode``).
            When the model's metadata names an Ultralytics ``task``, a decoder that cannot
            read that task's outputs is a ValueError.
        decoder_options: extra keyword arguments for the decoder (e.g. ``mask_threshold`` of a
            probability map).
        preprocess: a :class:`PreprocessConfig`, or a dict of some of its settings (e.g.
            ``{"mean": ..., "std": ...}``) laid over the defaults; default: the model's
            static input size (or
            for a dynamic input the model metadata's ``imgsz``, else the tile size),
            Ultralytics letterbox with pad 114 (a plain resize for the families that stretch:
            RT-DETR, DETR, D-FINE, PaddleDetection), RGB, /255, the model input's float dtype.
            Extra inputs of PaddleDetection (``scale_factor``, ``im_shape``) and D-FINE
            (``orig_target_sizes``) exports are filled so boxes come out in input pixels.
            NCHW inputs ``(N, 3, H, W)`` and NHWC ones ``(N, H, W, 3)`` (TFLite) are both
            read; NHWC batches are transposed after preprocessing.
        specular: ``None``, ``"mask"`` (remove detections whose glare fraction is
            ``>= specular_threshold``) or ``"flag"`` (keep them, set
            ``data["glare_fraction"]`` and ``data["specular"]``); glare is
            :func:`fissure.specular_mask` with its defaults.
        class_names: names per class id (list or dict) for labels and COCO categories;
            default: the model metadata's ``names`` (Ultralytics exports), else none.
        batch_size: tiles per batch; None measures the model on a first batch and sizes
            batches to ``vram_budget_mb`` (at most ``max_batch``: 1 with ONNX Runtime on a CPU, 4
            with OpenVINO on a CPU, 16 on a GPU).
        num_threads: the model's intra-op threads and the core's preprocessing threads
            (-1: all cores).
        max_in_flight: batches submitted to the model at once (``backend.submit``) while the
            finished ones are decoded and the next one is preprocessed; 1 runs each batch
            with ``backend.run`` and decodes it before the next (synchronous). None: the
            backend's ``max_in_flight`` (OpenVINO: its infer requests, at least 2), except
            ONNX Runtime on a CPU, which runs synchronously (docs/detect.md). The results
            are the same either way. An OpenVINO model the detector opens is compiled with
            the THROUGHPUT hint (several streams), or LATENCY when ``max_in_flight=1``.

    Calling the detector on an image (array or path) returns :class:`fissure.Detections`;
    ``detector.stats`` then tells where the time went; :meth:`describe` tells what runs. A detector may be called from several
    threads at once.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike[str], bytes, Backend],
        *,
        backend: str = "auto",
        device: str = "auto",
        tile_size: Union[int, tuple[int, int]] = 640,
        overlap_ratio: Union[float, tuple[float, float]] = 0.2,
        merge: str = "greedy_nmm",
        match_metric: str = "ios",
        match_threshold: float = 0.5,
        class_agnostic: bool = False,
        conf_threshold: float = 0.25,
        full_image_pass: bool = False,
        vram_budget_mb: int = 2048,
        decoder: Any = "auto",
        decoder_options: Optional[Mapping[str, Any]] = None,
        preprocess: Optional[PreprocessConfig] = None,
        specular: Optional[str] = None,
        specular_threshold: float = 0.5,
        class_names: Union[Sequence[str], Mapping[int, str], None] = None,
        batch_size: Optional[int] = None,
        max_batch: Optional[int] = None,
        num_threads: int = -1,
        precision: Optional[str] = None,
        max_in_flight: Optional[int] = None,
    ) -> None:
        self.tile_size = int_pair(tile_size, "tile_size", 1, 65535)
        self.overlap_ratio = _ratio_pair(overlap_ratio, "overlap_ratio")
        self.merge = _choice(merge, "merge", _MERGES)
        self.match_metric = _choice(match_metric, "match_metric", _METRICS)
        self.match_threshold = _real(match_threshold, "match_threshold", 0.0, 1.0)
        self.class_agnostic = bool(class_agnostic)
        self.conf_threshold = _real(conf_threshold, "conf_threshold")
        self.full_image_pass = bool(full_image_pass)
        self.vram_budget_mb = _real(vram_budget_mb, "vram_budget_mb", 1.0)
        self.specular = _choice(specular, "specular", (None,) + _SPECULAR)
        self.specular_threshold = _real(specular_threshold, "specular_threshold", 0.0, 1.0)
        self.num_threads = check_num_threads(num_threads)
        optional_positive_int(batch_size, "batch_size")
        optional_positive_int(max_batch, "max_batch")
        optional_positive_int(max_in_flight, "max_in_flight")
        self._max_in_flight = None if max_in_flight is None else int(max_in_flight)
        self.decoder_options = dict(decoder_options or {})
        self.class_names_source: Optional[str] = "given" if class_names is not None else None
        if isinstance(class_names, Mapping):
            self.class_names: Optional[dict[int, str]] = {int(k): str(v) for k, v in class_names.items()}
        elif class_names is not None:
            self.class_names = {i: str(n) for i, n in enumerate(class_names)}
        else:
            self.class_names = None

        if isinstance(model, BackendBase) or isinstance(model, Backend):
            self.backend: Any = model
            self._owns_backend = False
        else:
            # OpenVINO: several streams for batches in flight (THROUGHPUT), one stream with
            # every thread on it for the synchronous loop (LATENCY); ignored by ONNX Runtime
            opts: dict[str, Any] = {}
            if isinstance(backend, str) and backend.lower() in ("auto", "openvino"):
                opts["hint"] = "latency" if self._max_in_flight == 1 else TILED_OPENVINO_HINT
            self.backend = open_model(model, backend, device, num_threads=self.num_threads,
                                      precision=precision, vram_budget_mb=int(self.vram_budget_mb),
                                      **opts)
            self._owns_backend = True
        try:
            self._setup_model(preprocess, decoder, batch_size, max_batch)
        except BaseException:
            self.close()
            raise
        self._lock = threading.Lock()
        self._cost: Optional[BatchCost] = None
        self._local = threading.local()

    # -- model geometry -------------------------------------------------------------------
    def _setup_model(self, preprocess: Optional[PreprocessConfig], decoder: Any,
                     batch_size: Optional[int], max_batch: Optional[int]) -> None:
        spec = self.backend.spec
        images = [t for t in spec.inputs if t.rank == 4]
        if len(images) != 1:
            names = ", ".join(str(t) for t in spec.inputs)
            raise ValueError(f"model: expected one image input (rank 4), got {len(images)} "
                             f"among its inputs ({names})")
        inp = images[0]
        self.extra_inputs: dict[str, str] = {}
        for t in spec.inputs:
            if t is inp:
                continue
            role = _EXTRA_INPUTS.get(t.name.lower())
            if role is None or t.rank != 2 or t.shape[1] not in (None, 2):
                raise ValueError(
                    f"model input {t}: fissure feeds the image input and, by name, "
                    f"{', '.join(sorted(_EXTRA_INPUTS))} as (B, 2); it cannot fill this one "
                    f"(wrap the model in a backend whose run() supplies it)")
            self.extra_inputs[t.name] = role
        self._extra_specs = {t.name: t for t in spec.inputs if t.name in self.extra_inputs}
        if inp.rank == 4 and inp.shape[3] == 3 and inp.shape[1] != 3:
            self.layout = "NHWC"  # TFLite and Keras exports: channels last
            static_hw = (inp.shape[1], inp.shape[2])
        elif inp.rank == 4 and inp.shape[1] in (None, 3):
            self.layout = "NCHW"
            static_hw = (inp.shape[2], inp.shape[3])
        else:
            raise ValueError(f"model input {inp}: expected an image input, NCHW (N, 3, H, W) "
                             "or NHWC (N, H, W, 3)")
        if inp.dtype not in (np.float32, np.float16):
            raise ValueError(f"model input {inp}: expected float32 or float16 input")
        self.input_name = inp.name
        meta = spec.model_metadata
        self.model_metadata = meta
        if self.class_names is None and meta.names:
            self.class_names = dict(meta.names)
            self.class_names_source = "model metadata"
        stride = meta.stride if meta.stride is not None and meta.stride > 0 else None
        self.stride: Optional[int] = stride
        self.input_size_from: Optional[list[int]] = None
        overrides: dict[str, Any] = {}
        if isinstance(preprocess, Mapping):
            overrides = dict(preprocess)
            known = {f.name for f in fields(PreprocessConfig)}
            unknown = sorted(set(map(str, overrides)) - known)
            if unknown:
                raise ValueError(f"preprocess: unknown settings {unknown}; expected some of "
                                 f"{sorted(known)} (PreprocessConfig's fields)")
            preprocess = None
        explicit_size = preprocess is not None or "input_size" in overrides
        if preprocess is None:
            # a dynamic side: the exporter's imgsz (what the model was trained at), else the tile,
            # rounded up to the model's stride (as Ultralytics does): letterboxing pads the tile
            if "input_size" in overrides:
                size = int_pair(overrides.pop("input_size"), "preprocess input_size", 1, 65535)
            else:
                dyn = meta.imgsz if meta.imgsz is not None else self.tile_size
                asked = (static_hw[0] if static_hw[0] is not None else dyn[0],
                         static_hw[1] if static_hw[1] is not None else dyn[1])
                size = tuple(int(v) if fixed is not None or stride is None
                             else -(-int(v) // stride) * stride
                             for v, fixed in zip(asked, static_hw))
                if size != tuple(asked):
                    self.input_size_from = [int(asked[0]), int(asked[1])]
            kw: dict[str, Any] = {"mode": _default_mode(spec.outputs, decoder, size, meta),
                                  "dtype": np.dtype(inp.dtype).name}
            kw.update(overrides)
            preprocess = PreprocessConfig(input_size=(size[0], size[1]), **kw)
        elif not isinstance(preprocess, PreprocessConfig):
            raise TypeError(f"preprocess: expected a PreprocessConfig or a dict of its settings, "
                            f"got {type(preprocess).__name__}")
        if explicit_size and stride is not None:
            bad = [(axis, v) for axis, (v, fixed) in enumerate(zip(preprocess.input_size, static_hw))
                   if fixed is None and v % stride]
            if bad:
                axis, v = bad[0]
                lo, hi = v // stride * stride, -(-v // stride) * stride
                near = f"{lo} or {hi}" if lo > 0 else f"{hi}"
                raise ValueError(
                    f"input size {preprocess.input_size[0]}x{preprocess.input_size[1]}: the "
                    f"model's stride is {stride} (its metadata), and its {'hw'[axis]} = {v} is "
                    f"not a multiple of it; the nearest valid sizes are {near}")
        for axis, (want, got) in enumerate(zip(static_hw, preprocess.input_size)):
            if want is not None and want != got:
                raise ValueError(
                    f"preprocess.input_size {preprocess.input_size}: the model input {inp} "
                    f"fixes {'hw'[axis]} = {want}")
        if np.dtype(preprocess.dtype) != np.dtype(inp.dtype):
            raise ValueError(f"preprocess.dtype {preprocess.dtype}: the model input {inp} "
                             f"expects {np.dtype(inp.dtype).name}")
        self.preprocess = preprocess
        self.static_batch: Optional[int] = inp.shape[0]
        if self.static_batch is not None and batch_size is not None and batch_size != self.static_batch:
            raise ValueError(f"batch_size={batch_size}: the model input {inp} fixes the batch "
                             f"to {self.static_batch}")
        self.batch_size = int(batch_size) if batch_size is not None else None
        on_gpu = not str(getattr(self.backend, "device", "cpu")).lower().startswith("cpu")
        # CPU: ONNX Runtime runs tiles one at a time (measured on 2 quiet cores, PP-OCRv4 det
        # over 24 MP: batch 1 0.145 img/s and 446 MB RSS, batch 4 0.134 img/s and 809 MB);
        # OpenVINO keeps batches of up to 4
        cpu_batch = 1 if self.backend.name == "onnxruntime" else 4
        self.max_batch = int(max_batch) if max_batch is not None else (16 if on_gpu else cpu_batch)
        self._on_gpu = on_gpu
        if isinstance(decoder, str):
            self.decoder: Any = select_decoder(spec.outputs, name=decoder,
                                               input_size=preprocess.input_size, metadata=meta)
        elif callable(getattr(decoder, "decode", None)):
            self.decoder = decoder  # a DecoderSpec, or an object with DecoderSpec's decode()
        else:
            raise TypeError(f"decoder: expected 'auto', a decoder kind or an object with a "
                            f"decode() method, got {type(decoder).__name__}")
        kind = getattr(self.decoder, "kind", None)
        if kind in KINDS:
            self.decoder_options = check_decoder_options(kind, self.decoder_options)
        if kind == "paddle_nms" and self.static_batch is None:
            # paddle2onnx's multiclass NMS runs one image at a time (its count output is (1,))
            counts = next((t for t in spec.outputs if t.rank == 1), None)
            if counts is not None and counts.shape[0] == 1:
                if batch_size not in (None, 1):
                    raise ValueError(
                        f"batch_size={batch_size}: this PaddleDetection export's NMS runs one "
                        f"image at a time (its count output {counts} is (1,)); use batch_size=1 "
                        f"or export without NMS (paddle_raw)")
                self.batch_size = 1
        if meta.task is not None and kind in KINDS:
            fits = _TASK_DECODERS.get(meta.task, ())
            if kind not in fits:
                raise ValueError(
                    f"decoder {kind!r}: the model's metadata says task={meta.task!r}, "
                    + (f"whose outputs the {'/'.join(fits)} decoders read" if fits else
                       "which fissure does not decode (it decodes 'detect' and 'segment' "
                       "models)"))

    def _to_model(self, x: np.ndarray) -> np.ndarray:
        """A preprocessed NCHW batch in the model's layout (NHWC models: transposed)."""
        if self.layout == "NHWC":
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x

    def _model_error(self, e: Exception) -> Exception:
        """What a runtime failure on a tile is raised as (the exception itself, or for
        paddle2onnx's NMS graph a RuntimeError explaining it)."""
        if isinstance(e, (ValueError, TypeError)) or getattr(self.decoder, "kind", None) != "paddle_nms":
            return e
        err = RuntimeError(
            f"the model failed on a tile: {str(e).strip().splitlines()[0][:300]}. "
            f"paddle2onnx's conversion of PaddleDetection's multiclass NMS fails in the "
            f"runtime when exactly one box passes its score threshold (and OpenVINO cannot "
            f"compile it); export the model without NMS (PaddleDetection's "
            f"exclude_nms=True) and fissure's merge does the NMS (docs/models.md)")
        err.__cause__ = e
        return err

    def _run_model(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self.backend.run(feed)
        except Exception as e:
            err = self._model_error(e)
            if err is e:
                raise
            raise err from e

    def _submit(self, feed: dict[str, np.ndarray]) -> "Future[dict[str, np.ndarray]]":
        """Starts a batch without copying it when the backend is fissure's own (the feeder's
        buffer then stays untouched until the batch is done: ``_run_tiles``)."""
        if isinstance(self.backend, BackendBase):
            return self.backend.submit(feed, copy=False)
        return self.backend.submit(feed)

    @property
    def max_in_flight(self) -> int:
        """Batches kept submitted to the model at once (1: synchronous ``backend.run``)."""
        if self._max_in_flight is not None:
            return self._max_in_flight
        b = self.backend
        if not callable(getattr(b, "submit", None)):
            return 1
        if getattr(b, "name", None) == "onnxruntime" and not self._on_gpu:
            return 1  # measured: no gain on a CPU (docs/benchmarks.md, pipelined detection)
        try:
            depth = int(getattr(b, "max_in_flight", 1))
        except (TypeError, ValueError):
            return 1
        return max(1, depth)

    def _extra_values(self, cfg: PreprocessConfig) -> dict[str, list]:
        """The row each extra input gets (the same for every batch item)."""
        h, w = cfg.input_size
        rows = {"scale_factor": [1, 1], "im_shape": [h, w], "orig_target_sizes": [w, h]}
        return {name: rows[role] for name, role in self.extra_inputs.items()}

    def _feed(self, x: np.ndarray, cfg: Optional[PreprocessConfig] = None) -> dict[str, np.ndarray]:
        """The model's inputs for a preprocessed batch ``x`` (in the model's layout): the image
        and the extra inputs a PaddleDetection or D-FINE export takes, sized to the batch."""
        feed = {self.input_name: x}
        if self.extra_inputs:
            for name, row in self._extra_values(cfg or self.preprocess).items():
                dtype = self._extra_specs[name].dtype
                feed[name] = np.tile(np.asarray(row, dtype=dtype), (x.shape[0], 1))
        return feed

    def describe(self) -> dict[str, Any]:
        """What this detector runs, as plain JSON-ready values: the backend, device and
        precision actually used, the model input, the decoder, the preprocessing, tiling,
        merge and glare settings and the class names (with where they came from).
        ``fissure detect`` prints it and records it in every output JSON."""
        b = self.backend
        cfg = self.preprocess
        inp = next(t for t in b.spec.inputs if t.name == self.input_name)
        # OpenVINO reports what the device runs; ONNX Runtime runs the model as exported
        precision = getattr(b, "inference_precision", None) or (
            f"as exported ({np.dtype(inp.dtype).name} input)")
        meta = self.model_metadata
        d = getattr(self.decoder, "kind", None) or type(self.decoder).__name__
        return {
            "model": str(b.spec.source),
            "backend": str(getattr(b, "name", "?")),
            "device": str(getattr(b, "device", "?")),
            "precision": str(precision),
            "input": {"name": inp.name, "shape": list(inp.shape),
                      "dtype": np.dtype(inp.dtype).name, "layout": self.layout},
            "extra_inputs": self._extra_values(cfg),
            "decoder": {"kind": d, "layout": getattr(self.decoder, "layout", None),
                        "options": dict(self.decoder_options)},
            "preprocess": {"input_size": list(cfg.input_size), "mode": cfg.mode,
                           "pad_value": cfg.pad_value, "rgb": cfg.rgb, "scale": cfg.scale,
                           "mean": list(cfg.mean), "std": list(cfg.std), "dtype": cfg.dtype,
                           "interpolation": cfg.interpolation},
            "stride": self.stride,
            "input_size_rounded_from": self.input_size_from,
            "tile_size": list(self.tile_size),
            "overlap_ratio": list(self.overlap_ratio),
            "full_image_pass": self.full_image_pass,
            "conf_threshold": self.conf_threshold,
            "merge": {"method": self.merge, "match_metric": self.match_metric,
                      "match_threshold": self.match_threshold,
                      "class_agnostic": self.class_agnostic},
            "specular": self.specular,
            "batch_size": self.static_batch if self.static_batch is not None else self.batch_size,
            "class_names": ({str(k): v for k, v in sorted(self.class_names.items())}
                            if self.class_names is not None else None),
            "class_names_source": self.class_names_source,
            "model_task": meta.task,
        }

    # -- batching -------------------------------------------------------------------------
    def _measure(self, image: np.ndarray, tile: np.ndarray) -> BatchCost:
        x1 = self._to_model(preprocess_tiles(image, tile[None], self.preprocess,
                                             num_threads=self.num_threads))
        x2 = np.concatenate([x1, x1])
        out_bytes = [0]

        def run(n: int) -> None:
            res = self.backend.run(self._feed(x1 if n == 1 else x2))
            out_bytes[0] = sum(int(v.nbytes) for v in res.values()) // n

        dev = str(getattr(self.backend, "device", "cpu"))
        if self._on_gpu and dev.startswith("cuda"):
            did = int(dev.split(":")[1]) if ":" in dev else 0
            memory: Any = lambda: gpu_memory_used(did)
            source = "gpu"
        else:
            memory, source = rss_bytes, "rss"
        cost = measure_batch_cost(run, 0.0, memory=memory, source=source)
        io = 2.0 * x1.nbytes + out_bytes[0]
        return BatchCost(cost.fixed_bytes, max(cost.per_tile_bytes, io), cost.source)

    def _batch_size_for(self, image: np.ndarray, tiles: np.ndarray) -> int:
        if self.static_batch is not None:
            return self.static_batch
        if self.batch_size is not None:
            return min(self.batch_size, len(tiles))
        if self.max_batch == 1 or len(tiles) == 1:
            return 1
        with self._lock:
            if self._cost is None:
                self._cost = self._measure(image, tiles[0])
            cost = self._cost
        # each batch in flight holds its own activations, input buffer and outputs
        depth = self.max_in_flight
        if depth > 1:
            cost = BatchCost(cost.fixed_bytes, cost.per_tile_bytes * depth, cost.source)
        return choose_batch_size(self.vram_budget_mb, cost, self.max_batch, len(tiles))

    @property
    def batch_cost(self) -> Optional[BatchCost]:
        """The measured cost that sizes batches (None until the first call measures it)."""
        return self._cost

    # -- one image --------------------------------------------------------------------------
    def _decode(self, out: dict[str, np.ndarray], count: int, run: int, tiles: np.ndarray,
                image: np.ndarray, cfg: PreprocessConfig) -> Decoded:
        if count != run:  # a static batch of `run` items padded with stale tiles
            out = {k: v[:count] for k, v in out.items()}
        return self.decoder.decode(
            out, tiles, input_size=cfg.input_size, mode=cfg.mode,
            conf_threshold=self.conf_threshold, image_shape=image.shape[:2],
            num_threads=self.num_threads, **self.decoder_options)

    def _run_tiles(self, image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig,
                   batch_size: int, stats: DetectStats) -> list[Decoded]:
        depth = self.max_in_flight
        nb = -(-len(tiles) // batch_size)
        depth = max(1, min(depth, nb))
        stats.in_flight = max(stats.in_flight, depth)
        if depth == 1:
            return self._run_tiles_sync(image, tiles, cfg, batch_size, stats)
        return self._run_tiles_pipelined(image, tiles, cfg, batch_size, stats, depth)

    def _run_tiles_sync(self, image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig,
                        batch_size: int, stats: DetectStats) -> list[Decoded]:
        found: list[Decoded] = []
        feeder = BatchFeeder(image, tiles, cfg, batch_size=batch_size, num_threads=self.num_threads)
        with feeder:
            t_wait = time.perf_counter()
            for b, buf, count in feeder:
                t0 = time.perf_counter()
                stats.wait_s += t0 - t_wait
                x = self._to_model(buf if self.static_batch is not None else buf[:count])
                out = self._run_model(self._feed(x, cfg))
                t1 = time.perf_counter()
                stats.model_s += t1 - t0
                found.append(self._decode(out, count, x.shape[0], feeder.batch_tiles(b), image,
                                          cfg))
                t_wait = time.perf_counter()
                stats.decode_s += t_wait - t1
                stats.batches += 1
        return found

    def _run_tiles_pipelined(self, image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig,
                             batch_size: int, stats: DetectStats, depth: int) -> list[Decoded]:
        """Keeps up to ``depth`` batches submitted to the model; while they run, the oldest
        finished one is decoded and the feeder prepares the next one. The feeder has
        ``depth + 1`` buffers: a batch's buffer is refilled only after its result is in
        (batch b + depth + 1 reuses batch b's buffer, and is started once b is decoded), so the
        backend may read the buffer in place. Decoded batches come out in submission order, so
        the merge sees exactly what the synchronous path gives it."""
        found: list[Decoded] = []
        # (batch, tiles in it, items run, future, submitted at, [finished at])
        pending: collections.deque = collections.deque()
        spans: list[tuple[float, float]] = []

        def finish() -> None:
            b, count, run, fut, t_sub, done = pending[0]
            try:
                out = fut.result()
            except Exception as e:
                err = self._model_error(e)
                if err is e:
                    raise
                raise err from e
            pending.popleft()
            t1 = time.perf_counter()
            spans.append((t_sub, done[0] if done else t1))
            found.append(self._decode(out, count, run, feeder.batch_tiles(b), image, cfg))
            stats.decode_s += time.perf_counter() - t1
            stats.batches += 1

        feeder = BatchFeeder(image, tiles, cfg, batch_size=batch_size,
                             num_threads=self.num_threads, num_buffers=depth + 1)
        with feeder:
            try:
                t_wait = time.perf_counter()
                for b, buf, count in feeder:
                    t0 = time.perf_counter()
                    stats.wait_s += t0 - t_wait
                    x = self._to_model(buf if self.static_batch is not None else buf[:count])
                    done: list[float] = []
                    fut = self._submit(self._feed(x, cfg))
                    fut.add_done_callback(lambda _f, d=done: d.append(time.perf_counter()))
                    pending.append((b, count, x.shape[0], fut, t0, done))
                    if len(pending) >= depth:
                        finish()  # frees the buffer the feeder fills next
                    t_wait = time.perf_counter()
                while pending:
                    finish()
            finally:
                # an error: let the batches still in flight finish before their buffers go
                for _b, _c, _r, fut, _t, _d in pending:
                    try:
                        fut.result()
                    except Exception:  # noqa: BLE001 - the first error is the one raised
                        pass
        stats.model_s += _union_length(spans)
        return found

    def _merge(self, found: list[Decoded], image_shape: tuple[int, int]) -> Detections:
        boxes = np.concatenate([d.boxes for d in found]) if found else np.zeros((0, 4), np.float32)
        scores = np.concatenate([d.scores for d in found]) if found else np.zeros(0, np.float32)
        class_ids = np.concatenate([d.class_ids for d in found]) if found else np.zeros(0, np.int64)
        with_masks = [d.masks is not None for d in found]
        masks: Optional[BoxMasks] = None
        if any(with_masks):
            if not all(with_masks):  # pragma: no cover - one decoder per detector
                raise RuntimeError("some batches decoded masks and some did not")
            masks = BoxMasks.concatenate([d.masks for d in found])  # type: ignore[misc]
        kw = dict(match_threshold=self.match_threshold, match_metric=self.match_metric,
                  class_agnostic=self.class_agnostic, masks=masks, num_threads=self.num_threads)
        if self.merge == "none" or len(scores) == 0:
            pass
        elif self.merge == "nms":
            keep = nms(boxes, scores, class_ids, **kw)  # type: ignore[arg-type]
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
            masks = masks[keep] if masks is not None else None
        else:
            fn = greedy_nmm if self.merge == "greedy_nmm" else nmm
            r = fn(boxes, scores, class_ids, **kw)  # type: ignore[arg-type]
            boxes, scores, class_ids, masks = r.boxes, r.scores, r.class_ids, r.masks
        return Detections(boxes, scores, class_ids, masks=masks, class_names=self.class_names,
                          image_shape=image_shape)

    def __call__(self, image: Any) -> Detections:
        """Detections in ``image`` (an array or a path; see :func:`fissure.io.as_image`)."""
        t_start = time.perf_counter()
        img = as_image(image)
        h, w = img.shape[:2]
        stats = DetectStats()
        tiles = slice_grid(h, w, self.tile_size[0], self.tile_size[1],
                           self.overlap_ratio[0], self.overlap_ratio[1])
        bs = self._batch_size_for(img, tiles)
        stats.tiles, stats.batch_size, stats.batch_cost = len(tiles), bs, self._cost
        found = self._run_tiles(img, tiles, self.preprocess, bs, stats)
        if self.full_image_pass:
            cfg = self.preprocess
            if cfg.mode == "none":
                cfg = replace(cfg, mode="letterbox")
            one = 1 if self.static_batch is None else self.static_batch
            found += self._run_tiles(img, np.array([[0, 0, w, h]], np.int64), cfg, one, stats)
        stats.raw_detections = sum(len(d) for d in found)
        t0 = time.perf_counter()
        dets = self._merge(found, (h, w))
        t1 = time.perf_counter()
        stats.merge_s = t1 - t0
        if self.specular is not None:
            glare = specular_mask(img, num_threads=self.num_threads)
            dets = dets.filter_specular(glare, specular=self.specular,
                                        specular_threshold=self.specular_threshold)
            stats.specular_s = time.perf_counter() - t1
        stats.total_s = time.perf_counter() - t_start
        self._local.stats = stats
        return dets

    def detect_tiles(self, image: Any, tiles: Any) -> Detections:
        """Detections on the given tiles only, merged as :meth:`__call__` merges (the cascade of
        :class:`fissure.Inspector` runs the detector where candidates are). ``tiles`` is
        ``(T, 4)`` int xyxy inside the image; no tile gives no detections."""
        t_start = time.perf_counter()
        img = as_image(image)
        h, w = img.shape[:2]
        t = np.asarray(tiles)
        if t.size == 0:
            t = np.zeros((0, 4), np.int64)
        if (t.ndim != 2 or t.shape[1] != 4 or not np.issubdtype(t.dtype, np.integer)):
            raise ValueError(f"tiles: expected a (T, 4) integer array, got {t.dtype} {t.shape}")
        t = np.ascontiguousarray(t, np.int64)
        bad = (t[:, 0] < 0) | (t[:, 1] < 0) | (t[:, 2] > w) | (t[:, 3] > h) | \
              (t[:, 2] <= t[:, 0]) | (t[:, 3] <= t[:, 1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"tiles: tile {i} {t[i].tolist()} is empty or outside the "
                             f"{w}x{h} image")
        stats = DetectStats()
        stats.tiles = len(t)
        found: list[Decoded] = []
        if len(t):
            bs = self._batch_size_for(img, t)
            stats.batch_size, stats.batch_cost = bs, self._cost
            found = self._run_tiles(img, t, self.preprocess, bs, stats)
        stats.raw_detections = sum(len(d) for d in found)
        t0 = time.perf_counter()
        dets = self._merge(found, (h, w))
        stats.merge_s = time.perf_counter() - t0
        if self.specular is not None and len(dets):
            glare = specular_mask(img, num_threads=self.num_threads)
            dets = dets.filter_specular(glare, specular=self.specular,
                                        specular_threshold=self.specular_threshold)
        stats.total_s = time.perf_counter() - t_start
        self._local.stats = stats
        return dets

    @property
    def stats(self) -> Optional[DetectStats]:
        """Timings of this thread's last call, or None before the first."""
        return getattr(self._local, "stats", None)

    def close(self) -> None:
        """Closes the backend if the detector opened it."""
        if getattr(self, "_owns_backend", False):
            self.backend.close()

    def __enter__(self) -> TiledDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"TiledDetector(backend={getattr(self.backend, 'name', '?')}, "
                f"decoder={getattr(self.decoder, 'kind', '?')}, tile_size={self.tile_size}, "
                f"overlap_ratio={self.overlap_ratio}, merge={self.merge!r}, "
                f"input={self.preprocess.input_size} {self.preprocess.mode})")
