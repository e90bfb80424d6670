"""``fissure bench``: throughput, latency, memory and VRAM of a model run tiled, per backend and
precision, optionally side by side with the way SAHI's loop and supervision's slicer run it.

:func:`run_bench` returns a JSON-able report (:data:`BENCH_SCHEMA_VERSION`, checked by
:func:`validate_report`); ``fissure bench`` prints it as a table and writes it with ``--json``.
``docs/bench.md`` explains every field.

Every configuration (a backend, a device and a precision; or a peer loop) runs in a fresh child
process of its own, so one configuration's memory does not pollute another's: the child's
peak RSS (``ru_maxrss``) is the row's, and on an NVIDIA GPU a sampling thread in the child reads
the process's VRAM through NVML (``nvidia-ml-py``) every few milliseconds and keeps the peak.
The children stay alive between rounds so rounds can be interleaved (CPU rows; GPU rows run
one at a time so they do not share the GPU). Times are medians over rounds.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

__all__ = [
    "BENCH_SCHEMA_VERSION",
    "CONFIGS",
    "Config",
    "VramSampler",
    "batch_from_vram_growth",
    "compare_detections",
    "gpu_check_verdict",
    "paired_ratio",
    "run_bench",
    "test_image",
    "validate_report",
]

#: The version of the report's layout (``schema_version``); bumped on any incompatible change.
BENCH_SCHEMA_VERSION = 1
MB = 1 << 20
DEVICES = ("auto", "cpu", "cuda", "gpu")
#: Detection agreement with the CPU f32 reference that counts as "the same output": boxes
#: matched one to one (same class) at IoU >= ``iou``, recall and precision >= ``min``.
TOLERANCE = {"f32": {"iou": 0.9, "min": 0.99}, "f16": {"iou": 0.8, "min": 0.95},
             "bf16": {"iou": 0.8, "min": 0.95}}
_PREFIX = "FISSURE-BENCH "


@dataclass(frozen=True)
class Config:
    """One row: ``kind`` "fissure" (TiledDetector), "sahi-style" or "supervision-style"."""

    backend: str
    device: str
    precision: str
    kind: str = "fissure"

    @property
    def name(self) -> str:
        base = f"{self.backend}/{self.device}/{self.precision}"
        return base if self.kind == "fissure" else f"{self.kind} ({base})"

    @property
    def on_nvidia(self) -> bool:
        return self.device == "cuda"


#: Every configuration ``fissure bench`` knows, in table order.
CONFIGS = (
    Config("onnxruntime", "cpu", "f32"),
    Config("onnxruntime", "cuda", "f32"),
    Config("onnxruntime", "cuda", "f16"),
    Config("openvino", "cpu", "f32"),
    Config("openvino", "cpu", "bf16"),
    Config("openvino", "cpu", "f16"),
    Config("openvino", "gpu", "f32"),
    Config("openvino", "gpu", "f16"),
)
REFERENCE = CONFIGS[0]


# ------------------------------------------------------------------------------ pure helpers


#: share of the budget kept free when the batch is extrapolated from two measured peaks: on an
#: H200 (ONNX Runtime 1.31 CUDA, PP-OCRv4 det) the peak at the chosen batch came out 4% (f32,
#: batch 9) and 14% (f16, batch 16) above the straight line through batches 1 and 2 (cuDNN
#: picks other algorithms and workspaces at other batch sizes; the arena grows in chunks)
VRAM_HEADROOM = 0.15


def batch_from_vram_growth(peak_small: float, peak_large: float, small: int, large: int,
                           budget_mb: float, max_batch: int = 16,
                           num_tiles: Optional[int] = None,
                           headroom: float = VRAM_HEADROOM) -> dict[str, Any]:
    """The largest batch whose predicted peak VRAM fits the budget, from the process's peak VRAM
    (bytes) measured at two batch sizes ``small < large``: ``per_tile = (peak_large -
    peak_small) / (large - small)``, ``fixed = peak_small - small * per_tile`` (the CUDA
    context, the weights, the runtime's workspace), ``batch = floor((budget - fixed) /
    per_tile)`` with ``budget`` less ``headroom`` of it (:data:`VRAM_HEADROOM`: the growth is
    not quite linear), clamped to ``[1, max_batch]`` and to ``num_tiles``. No growth gives
    ``max_batch``. Returns ``{"batch_size", "fixed_mb", "per_tile_mb", "predicted_peak_mb"}``.
    """
    if not 0.0 <= headroom < 1.0:
        raise ValueError(f"headroom: expected a share in [0, 1), got {headroom!r}")
    if not 0 < small < large:
        raise ValueError(f"batch sizes: expected 0 < small < large, got {small}, {large}")
    if not budget_mb > 0:
        raise ValueError(f"budget_mb: expected a positive number, got {budget_mb!r}")
    budget = float(budget_mb) * MB * (1.0 - headroom)
    per_tile = max(0.0, (float(peak_large) - float(peak_small)) / (large - small))
    fixed = float(peak_small) - small * per_tile
    if per_tile <= 0.0:
        b = int(max_batch)
    else:
        b = int(math.floor((budget - fixed) / per_tile))
    b = max(1, min(b, int(max_batch)))
    if num_tiles is not None and num_tiles >= 1:
        b = min(b, int(num_tiles))
    return {"batch_size": b, "fixed_mb": fixed / MB, "per_tile_mb": per_tile / MB,
            "predicted_peak_mb": (fixed + b * per_tile) / MB}


def paired_ratio(peer_round_s: Sequence[float], base_round_s: Sequence[float]) -> Optional[float]:
    """The median over rounds of ``peer / base`` within the same round: with interleaved rounds a
    load change on a shared machine hits both sides of a pair alike, so this is steadier than the
    ratio of the medians. None without complete pairs."""
    pairs = [p / b for p, b in zip(peer_round_s, base_round_s) if b > 0]
    if not pairs or len(peer_round_s) != len(base_round_s):
        return None
    return float(statistics.median(pairs))


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def compare_detections(ref_boxes: Any, boxes: Any, ref_classes: Any = None, classes: Any = None,
                       *, iou: float = 0.9) -> dict[str, Any]:
    """How well ``boxes`` reproduce ``ref_boxes`` (both (N, 4) xyxy): matched one to one, within
    a class when classes are given, greedily by IoU (highest first, ties by index), a pair
    counting when IoU >= ``iou``. Returns ``{"reference", "candidate", "matched", "recall",
    "precision", "iou"}``; recall = matched / reference, precision = matched / candidate (1.0
    when the denominator is 0)."""
    a = np.asarray(ref_boxes, np.float64).reshape(-1, 4)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ca = np.zeros(len(a), np.int64) if ref_classes is None else np.asarray(ref_classes).reshape(-1)
    cb = np.zeros(len(b), np.int64) if classes is None else np.asarray(classes).reshape(-1)
    matched = 0
    for c in np.union1d(ca, cb):
        ia, ib = np.flatnonzero(ca == c), np.flatnonzero(cb == c)
        if len(ia) == 0 or len(ib) == 0:
            continue
        m = _iou_matrix(a[ia], b[ib])
        rows, cols = np.nonzero(m >= iou)
        if len(rows) == 0:
            continue
        order = np.lexsort((cols, rows, -m[rows, cols]))
        used_a = np.zeros(len(ia), bool)
        used_b = np.zeros(len(ib), bool)
        for r, k in zip(rows[order], cols[order]):
            if not used_a[r] and not used_b[k]:
                used_a[r] = used_b[k] = True
                matched += 1
    return {"reference": int(len(a)), "candidate": int(len(b)), "matched": matched,
            "recall": matched / len(a) if len(a) else 1.0,
            "precision": matched / len(b) if len(b) else 1.0, "iou": float(iou)}


#: the words of :func:`text_page`
PAGE_WORDS = ("defect", "crack", "scratch", "fissure", "tile", "glare", "panel", "cell", "7391",
              "A-42", "edge", "burr", "dent", "pit", "void", "chip", "x0.5", "lot 9", "seam", "QC")


def _page(rng: np.random.Generator, h: int, w: int, n: int, textured: bool,
          words: Sequence[str], cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    if textured:
        gray = cv2.GaussianBlur(rng.integers(228, 256, (h, w), dtype=np.uint8), (0, 0), 1.5)
    else:
        gray = np.full((h, w), 255, np.uint8)
    img = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    ch, cw = cell
    rows, cols = h // ch, w // cw
    if n > rows * cols:
        raise ValueError(f"n: at most {rows * cols} words fit a {h}x{w} page, got {n}")
    boxes = []
    for k in (rng.choice(rows * cols, size=n, replace=False) if n > 0 else ()):
        r, c = divmod(int(k), cols)
        text = words[int(rng.integers(len(words)))]
        scale = float(rng.uniform(0.45, 0.7))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = c * cw + int(rng.integers(4, max(5, cw - tw - 4)))
        y = r * ch + th + int(rng.integers(4, max(5, ch - th - base - 4)))
        ink = int(rng.integers(0, 70))
        cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (ink, ink, ink), 1,
                    cv2.LINE_AA)
        boxes.append((x, y - th, x + tw, y + base))
    return img, np.asarray(boxes, np.float64).reshape(-1, 4)


def text_page(height: int, width: int, n: int, seed: int = 0, *, textured: bool = True,
              words: Sequence[str] = PAGE_WORDS,
              cell: tuple[int, int] = (64, 150)) -> tuple[np.ndarray, np.ndarray]:
    """A light page (a blurred light-grey texture, or white) with ``n`` small dark words, one
    per cell of a ``cell`` = (h, w) grid (cells picked at random), each at a random place,
    scale 0.45..0.7 (text 10..16 px tall): the small-object task of the detection benchmarks
    and tests (PP-OCR det finds the words). Returns (BGR uint8 image, ground-truth boxes
    x1, y1, x2, y2 from cv2.getTextSize: the top of the tallest glyph to the bottom of the
    baseline)."""
    return _page(np.random.default_rng(seed), height, width, n, textured, words, cell)


def test_image(height: int = 4000, width: int = 6000, seed: int = 0) -> np.ndarray:
    """The generated test image (24 MP by default): a light, slightly noisy page with small
    dark words (10-16 px tall, one per 64 x 150 cell in a third of the cells: PP-OCR det finds
    them) and some filled shapes of 20-120 px in colour, BGR uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    rows, cols = height // 64, width // 150
    words = ("defect", "crack", "scratch", "A-42", "lot 9", "QC", "7391", "seam", "burr", "pit")
    img, _ = _page(rng, height, width, max(1, rows * cols // 3) if rows and cols else 0, True,
                   words, (64, 150))
    for _ in range(max(1, height * width // 400_000)):
        s = int(rng.integers(20, 120))
        x, y = int(rng.integers(0, max(1, width - s))), int(rng.integers(0, max(1, height - s)))
        color = tuple(int(v) for v in rng.integers(0, 200, 3))
        cv2.rectangle(img, (x, y), (x + s, y + s), color, -1)
    return img


# ------------------------------------------------------------------------------ NVML


def nvml_module() -> Any:
    """The ``pynvml`` module of nvidia-ml-py, or None when it is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class VramSampler:
    """The peak GPU memory of a process, sampled through NVML in a background thread every
    ``interval_s`` (5 ms).

    Each sample reads the process's own entry in ``nvmlDeviceGetComputeRunningProcesses``
    (method ``"process"``). Where the driver does not list the process (containers show other
    pid namespaces; some drivers give no per-process figure), it reads the device's used
    memory minus what was used when sampling began (``"device-delta"``: it counts any other
    process's growth too). ``peak_mb`` is the peak of the process figure when there was one,
    else of the device delta. ``nvml`` replaces the module (tests pass a fake).
    """

    def __init__(self, device_index: int = 0, pid: Optional[int] = None,
                 interval_s: float = 0.005, nvml: Any = None) -> None:
        self.nvml = nvml if nvml is not None else nvml_module()
        if self.nvml is None:
            raise ImportError("reading VRAM needs nvidia-ml-py: pip install nvidia-ml-py")
        self.pid = os.getpid() if pid is None else int(pid)
        self.interval_s = float(interval_s)
        self.device_index = int(device_index)
        self.nvml.nvmlInit()
        self.handle = self.nvml.nvmlDeviceGetHandleByIndex(self.device_index)
        self.baseline = int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        self.peak_process = -1
        self.peak_delta = -1
        self.samples = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def gpu_name(self) -> str:
        name = self.nvml.nvmlDeviceGetName(self.handle)
        return name.decode() if isinstance(name, bytes) else str(name)

    def gpu_total_mb(self) -> float:
        return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).total) / MB

    def sample(self) -> tuple[int, str]:
        """One reading: (bytes, "process" or "device-delta"); also updates the peaks."""
        used: Optional[int] = None
        try:
            for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
                if int(p.pid) == self.pid and p.usedGpuMemory is not None:
                    used = int(p.usedGpuMemory)
                    break
        except Exception:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED etc.: fall back
            used = None
        with self._lock:
            self.samples += 1
            if used is not None:
                self.peak_process = max(self.peak_process, used)
                return used, "process"
            delta = max(0, int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used) - self.baseline)
            self.peak_delta = max(self.peak_delta, delta)
            return delta, "device-delta"

    @property
    def method(self) -> Optional[str]:
        if self.peak_process >= 0:
            return "process"
        return "device-delta" if self.peak_delta >= 0 else None

    @property
    def peak_bytes(self) -> Optional[int]:
        if self.peak_process >= 0:
            return self.peak_process
        return self.peak_delta if self.peak_delta >= 0 else None

    @property
    def peak_mb(self) -> Optional[float]:
        b = self.peak_bytes
        return None if b is None else b / MB

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_process = self.peak_delta = -1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> VramSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="fissure-nvml", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample()
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------------------------ availability


def _ort_providers() -> Optional[list[str]]:
    try:
        import onnxruntime
    except ImportError:
        return None
    return list(onnxruntime.get_available_providers())


def _ov_devices() -> Optional[list[str]]:
    try:
        import openvino
    except ImportError:
        return None
    try:
        return list(openvino.Core().available_devices)
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        return None


def unavailable_reason(cfg: Config, providers: Optional[list[str]] = None,
                       ov_devices: Optional[list[str]] = None, gpus: Optional[int] = None,
                       have_onnx: Optional[bool] = None) -> Optional[str]:
    """Why ``cfg`` cannot run here (None: it can, as far as can be told without running it)."""
    import importlib.util

    if cfg.backend == "onnxruntime":
        if providers is None:
            return "ONNX Runtime is not installed (pip install onnxruntime)"
        if cfg.device == "cpu":
            if cfg.precision != "f32":
                return (f"ONNX Runtime on the CPU runs the model as exported (f32); "
                        f"{cfg.precision} runs on CUDA or OpenVINO")
            return None
        if "CUDAExecutionProvider" not in providers:
            return (f"this ONNX Runtime has no CUDA provider (providers: {', '.join(providers)}); "
                    "pip install onnxruntime-gpu")
        if gpus is None:
            from .backends.auto import nvidia_gpu_count

            gpus = nvidia_gpu_count()
        if gpus < 1:
            return "no NVIDIA GPU (the CUDA driver reports none)"
        if cfg.precision == "f16":
            if have_onnx is None:
                have_onnx = importlib.util.find_spec("onnx") is not None
            if not have_onnx:
                return "the f16 conversion needs the onnx package (pip install onnx)"
        elif cfg.precision != "f32":
            return f"ONNX Runtime CUDA runs f32 or converted f16, not {cfg.precision}"
        return None
    if ov_devices is None:
        return "OpenVINO is not installed (pip install openvino)"
    want = "CPU" if cfg.device == "cpu" else "GPU"
    if not any(d == want or d.startswith(want + ".") for d in ov_devices):
        return f"OpenVINO sees no {want} (devices: {', '.join(ov_devices) or 'none'})"
    if want == "GPU" and cfg.precision == "bf16":
        return "OpenVINO GPUs run f32 or f16"
    return None


def select_configs(device: str = "auto", backends: Optional[Sequence[str]] = None,
                   precisions: Optional[Sequence[str]] = None) -> list[Config]:
    """The configurations for ``device`` (``auto``: all; ``cpu``; ``cuda``: ONNX Runtime CUDA;
    ``gpu``: CUDA and Intel GPUs), narrowed to ``backends`` and ``precisions``. When GPU rows
    are asked the ONNX Runtime CPU f32 row comes too: it is the reference their detections are
    compared against."""
    dev = str(device).lower()
    if dev not in DEVICES:
        raise ValueError(f"--device {device}: expected one of {', '.join(DEVICES)}")
    for name, given, known in (("backend", backends, ("onnxruntime", "openvino")),
                               ("precision", precisions, ("f32", "f16", "bf16"))):
        bad = [v for v in given or () if v not in known]
        if bad:
            raise ValueError(f"{name} {bad[0]!r}: expected one of {', '.join(known)}")
    devices = {"auto": ("cpu", "cuda", "gpu"), "cpu": ("cpu",), "cuda": ("cuda",),
               "gpu": ("cuda", "gpu")}[dev]
    out = [c for c in CONFIGS if c.device in devices
           and (not backends or c.backend in backends)
           and (not precisions or c.precision in precisions)]
    if backends and "onnxruntime" in backends and precisions and "f16" in precisions \
            and "cpu" in devices:
        out.insert(0, Config("onnxruntime", "cpu", "f16"))  # asked for: listed as refused
    if any(c.device != "cpu" for c in out) and REFERENCE not in out:
        out.insert(0, REFERENCE)
    if not out:
        raise ValueError(f"no configuration matches --device {device}, backends {backends}, "
                         f"precisions {precisions}")
    return out


# ------------------------------------------------------------------------------ child process


def _cv2_preprocess(crop: np.ndarray, cfg: Any) -> np.ndarray:
    """A tile to a (1, 3, h, w) input the way a user's per-tile callback writes it with cv2 and
    numpy (the same geometry as fissure's C++ preprocessing)."""
    import cv2

    from . import _core

    ih, iw = cfg.input_size
    h, w = crop.shape[:2]
    interp = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST,
              "area": cv2.INTER_AREA}[cfg.interpolation]
    if cfg.mode == "none":
        if (h, w) != (ih, iw):
            raise ValueError(f"mode 'none': a {w}x{h} tile is not the model's {iw}x{ih} input")
        x = crop
    elif cfg.mode == "resize":
        x = cv2.resize(crop, (iw, ih), interpolation=interp)
    else:
        _r, nw, nh, px, py = _core.letterbox_params(h, w, ih, iw)
        resized = crop if (nw, nh) == (w, h) else cv2.resize(crop, (nw, nh), interpolation=interp)
        x = np.full((ih, iw, 3), cfg.pad_value, np.uint8)
        x[py:py + nh, px:px + nw] = resized
    if cfg.rgb:
        x = x[..., ::-1]
    x = (x.astype(np.float32) * np.float32(cfg.scale) - np.asarray(cfg.mean, np.float32)) \
        / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(cfg.dtype, copy=False)


def _sv_grid(h: int, w: int, th: int, tw: int, oh: int, ow: int) -> np.ndarray:
    """supervision 0.31's ``InferenceSlicer._generate_offset`` (the slicer's grid)."""
    def starts(size: int, sl: int, stride: int) -> list[int]:
        if size <= sl:
            return [0]
        if stride == sl:
            return list(range(0, size, stride))
        last = size - sl
        s = list(range(0, last, stride))
        if not s or s[-1] != last:
            s.append(last)
        return s

    xs, ys = starts(w, tw, tw - ow), starts(h, th, th - oh)
    return np.array([[x, y, min(x + tw, w), min(y + th, h)] for y in ys for x in xs], np.int64)


def _nms_numpy(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
               thr: float) -> np.ndarray:
    """supervision's ``box_non_max_suppression`` (per class, IoU > thr suppresses), with one
    row of IoUs at a time instead of its N x N matrix."""
    order = np.argsort(-scores, kind="stable")
    keep = np.ones(len(order), bool)
    b = boxes[order]
    c = classes[order]
    for i in range(len(order)):
        if not keep[i]:
            continue
        rest = np.arange(i + 1, len(order))
        rest = rest[keep[rest] & (c[rest] == c[i])]
        if len(rest):
            ious = _iou_matrix(b[i:i + 1].astype(np.float64), b[rest].astype(np.float64))[0]
            keep[rest[ious > thr]] = False
    return np.sort(order[keep])


class _Timer:
    def __init__(self) -> None:
        self.stages = {"read": 0.0, "preprocess": 0.0, "model": 0.0, "decode": 0.0, "merge": 0.0}
        self.tile_ms: list[float] = []


def _detector_kwargs(job: dict) -> dict:
    kw = dict(job.get("detector") or {})
    pre = kw.pop("preprocess", None)
    if pre:
        kw["preprocess"] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in pre.items()}
    return kw


def _worker_setup(job: dict, sampler: Optional[VramSampler]) -> tuple[Callable, dict]:
    """The callable that runs one image ``(image, timer) -> (boxes, scores, class_ids)``, and what
    the parent should know about it."""
    from .backends import open_model
    from .detection import TiledDetector
    from .tiling import slice_grid

    cfg = Config(**job["config"])
    kw = _detector_kwargs(job)
    threads = int(job.get("threads", -1))
    precision = None if cfg.backend == "onnxruntime" and cfg.precision == "f32" else cfg.precision
    device = cfg.device
    backend = open_model(job["model"], cfg.backend, device, num_threads=threads,
                         precision=precision, vram_budget_mb=int(job["vram_budget_mb"]))
    info: dict[str, Any] = {}
    user_batch = kw.pop("batch_size", None)
    det = TiledDetector(backend, num_threads=threads, batch_size=user_batch, **kw)
    info["describe"] = det.describe()
    info["implementation"] = "fissure.TiledDetector"
    first = job["first_image_shape"]
    tiles = slice_grid(first[0], first[1], det.tile_size[0], det.tile_size[1],
                       det.overlap_ratio[0], det.overlap_ratio[1])
    info["tiles_per_image"] = int(len(tiles))
    if cfg.kind == "fissure":
        if (cfg.on_nvidia and sampler is not None and user_batch is None
                and det.static_batch is None and len(tiles) > 1):
            info["vram_batch"] = _vram_batch(det, sampler, job, len(tiles))
            det = TiledDetector(backend, num_threads=threads,
                                batch_size=info["vram_batch"]["batch_size"], **kw)
            info["batch_source"] = "measured VRAM growth (batch 1 -> 2)"
        elif user_batch is not None or det.static_batch is not None:
            info["batch_source"] = "given" if user_batch is not None else "fixed by the model"
        else:
            info["batch_source"] = "budget rule (fissure.scheduler, " + (
                "GPU memory" if cfg.device != "cpu" else "RSS") + " growth)"
        return _fissure_runner(det), info
    info["batch_source"] = "one tile per run (as the peer)"
    if cfg.kind == "sahi-style":
        return _sahi_runner(det, info), info
    return _sv_runner(det, info), info


def _vram_batch(det: Any, sampler: VramSampler, job: dict, num_tiles: int) -> dict:
    import numpy as np

    from .preprocess import preprocess_tiles

    h, w = det.tile_size
    img = np.zeros((h, w, 3), np.uint8)
    x1 = det._to_model(preprocess_tiles(img, np.array([[0, 0, w, h]], np.int64), det.preprocess))
    peaks = []
    for n in (1, 2):
        x = np.concatenate([x1] * n)
        sampler.reset_peak()
        for _ in range(2):  # the second run at a shape is what the arena settles on
            det.backend.run(det._feed(x))
        sampler.sample()
        peaks.append(sampler.peak_bytes or 0)
    out = batch_from_vram_growth(peaks[0], peaks[1], 1, 2, float(job["vram_budget_mb"]),
                                 det.max_batch, num_tiles)
    out.update(peak_b1_mb=peaks[0] / MB, peak_b2_mb=peaks[1] / MB, method=sampler.method)
    return out


def _fissure_runner(det: Any) -> Callable:
    state: dict[str, Any] = {"timer": None}
    run_model = det._run_model

    def timed(feed: dict) -> dict:
        t0 = time.perf_counter()
        out = run_model(feed)
        dt = (time.perf_counter() - t0) * 1000.0
        n = next(iter(feed.values())).shape[0]
        if state["timer"] is not None:
            state["timer"].tile_ms.extend([dt / n] * n)
        return out

    det._run_model = timed  # instance attribute: per-batch times for the tile latencies

    def run(img: np.ndarray, timer: _Timer) -> tuple:
        state["timer"] = timer
        d = det(img)
        st = det.stats
        timer.stages["preprocess"] += st.wait_s
        timer.stages["model"] += st.model_s
        timer.stages["decode"] += st.decode_s
        timer.stages["merge"] += st.merge_s + st.specular_s
        timer.batch_size = st.batch_size  # type: ignore[attr-defined]
        return d.boxes, d.scores, d.class_ids

    run.detector = det  # type: ignore[attr-defined]
    return run


def _tile_pass(det: Any, img: np.ndarray, tile: np.ndarray, timer: _Timer,
               local: bool) -> Any:
    """One tile the way a per-tile callback runs it: crop, cv2 preprocessing, one model run,
    fissure's decoder; boxes in image pixels (``local``: in crop pixels)."""
    x0, y0, x1, y1 = (int(v) for v in tile)
    t0 = time.perf_counter()
    crop = img[y0:y1, x0:x1]
    x = det._to_model(_cv2_preprocess(crop, det.preprocess))
    t1 = time.perf_counter()
    out = det.backend.run(det._feed(x))
    t2 = time.perf_counter()
    box = np.array([[0, 0, x1 - x0, y1 - y0]] if local else [[x0, y0, x1, y1]], np.int64)
    shape = (y1 - y0, x1 - x0) if local else img.shape[:2]
    d = det.decoder.decode(out, box, input_size=det.preprocess.input_size,
                           mode=det.preprocess.mode, conf_threshold=det.conf_threshold,
                           image_shape=shape, num_threads=det.num_threads, **det.decoder_options)
    t3 = time.perf_counter()
    timer.stages["preprocess"] += t1 - t0
    timer.stages["model"] += t2 - t1
    timer.stages["decode"] += t3 - t2
    timer.tile_ms.append((t2 - t1) * 1000.0)
    return d


def _sahi_runner(det: Any, info: dict) -> Callable:
    """SAHI's way: its grid, a model run per tile, ObjectPredictions shifted to the image,
    ``GreedyNMMPostprocess`` (SAHI itself when installed, else fissure's SAHI-exact merge)."""
    from .merge import greedy_nmm

    th, tw = det.tile_size
    rh, rw = det.overlap_ratio
    try:
        from sahi.postprocess.combine import GreedyNMMPostprocess
        from sahi.prediction import ObjectPrediction
        from sahi.slicing import get_slice_bboxes
        import sahi

        real = True
        info["implementation"] = (f"SAHI {getattr(sahi, '__version__', '?')} (get_slice_bboxes, "
                                  "ObjectPrediction, GreedyNMMPostprocess) around a per-tile "
                                  "ONNX Runtime run")
        post = GreedyNMMPostprocess(match_threshold=det.match_threshold,
                                    match_metric=det.match_metric.upper(),
                                    class_agnostic=det.class_agnostic)
    except ImportError:
        real = False
        info["implementation"] = ("SAHI-style equivalent loop (sahi not installed): SAHI's grid, "
                                  "a per-tile ONNX Runtime run, fissure's SAHI-exact greedy NMM")

    def run(img: np.ndarray, timer: _Timer) -> tuple:
        from .tiling import slice_grid

        h, w = img.shape[:2]
        grid = (np.asarray(get_slice_bboxes(h, w, th, tw, rh, rw), np.int64) if real
                else slice_grid(h, w, th, tw, rh, rw))
        preds: list = []
        parts = []
        for tile in grid:
            d = _tile_pass(det, img, tile, timer, local=False)
            if real:
                t0 = time.perf_counter()
                for b, s, c in zip(d.boxes.tolist(), d.scores.tolist(), d.class_ids.tolist()):
                    preds.append(ObjectPrediction(bbox=b, category_id=int(c),
                                                  category_name=str(c), score=s,
                                                  full_shape=[h, w]))
                timer.stages["decode"] += time.perf_counter() - t0
            else:
                parts.append((d.boxes, d.scores, d.class_ids))
        t0 = time.perf_counter()
        if real:
            merged = post(preds)
            boxes = np.array([p.bbox.to_xyxy() for p in merged], np.float32).reshape(-1, 4)
            scores = np.array([p.score.value for p in merged], np.float32)
            classes = np.array([p.category.id for p in merged], np.int64)
        else:
            b = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 4), np.float32)
            s = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.float32)
            c = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
            r = greedy_nmm(b, s, c, match_threshold=det.match_threshold,
                           match_metric=det.match_metric, class_agnostic=det.class_agnostic)
            boxes, scores, classes = r.boxes, r.scores, r.class_ids
        timer.stages["merge"] += time.perf_counter() - t0
        return boxes, scores, classes

    return run


def _sv_runner(det: Any, info: dict) -> Callable:
    """supervision's way: ``InferenceSlicer`` (its grid with ``overlap_wh`` = the overlap in
    pixels, a callback per tile returning tile-local detections, NMS at IoU 0.5 per class);
    supervision itself when installed, else the same steps in numpy."""
    th, tw = det.tile_size
    oh, ow = int(det.overlap_ratio[0] * th), int(det.overlap_ratio[1] * tw)
    try:
        import supervision as sv

        real = True
        info["implementation"] = (f"supervision {sv.__version__} InferenceSlicer (NMS, IoU 0.5) "
                                  "with a per-tile ONNX Runtime callback")
    except ImportError:
        real = False
        info["implementation"] = ("supervision-style equivalent (supervision not installed): "
                                  "its slicer grid, a per-tile callback, per-class NMS at IoU "
                                  "0.5 in numpy")

    def run(img: np.ndarray, timer: _Timer) -> tuple:
        h, w = img.shape[:2]
        if real:
            def callback(crop: np.ndarray) -> Any:
                ch, cw = crop.shape[:2]
                d = _tile_pass(det, crop, np.array([0, 0, cw, ch]), timer, local=True)
                return sv.Detections(xyxy=np.asarray(d.boxes, np.float32).reshape(-1, 4),
                                     confidence=d.scores, class_id=d.class_ids.astype(int))

            t0 = time.perf_counter()
            stages0 = sum(timer.stages[k] for k in ("preprocess", "model", "decode"))
            slicer = sv.InferenceSlicer(callback, slice_wh=(tw, th), overlap_wh=(ow, oh),
                                        iou_threshold=0.5)
            r = slicer(img)
            inner = sum(timer.stages[k] for k in ("preprocess", "model", "decode")) - stages0
            timer.stages["merge"] += max(0.0, time.perf_counter() - t0 - inner)
            return (np.asarray(r.xyxy, np.float32).reshape(-1, 4),
                    np.asarray(r.confidence, np.float32), np.asarray(r.class_id, np.int64))
        parts = []
        for tile in _sv_grid(h, w, th, tw, oh, ow):
            d = _tile_pass(det, img, tile, timer, local=True)
            parts.append((d.boxes + np.array([tile[0], tile[1]] * 2, np.float32), d.scores,
                          d.class_ids))
        t0 = time.perf_counter()
        b = np.concatenate([p[0] for p in parts])
        s = np.concatenate([p[1] for p in parts])
        c = np.concatenate([p[2] for p in parts])
        keep = _nms_numpy(b, s, c, 0.5)
        timer.stages["merge"] += time.perf_counter() - t0
        return b[keep], s[keep], c[keep]

    return run


def _send(obj: dict) -> None:
    sys.stdout.write(_PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _worker_main() -> None:
    """The child: one configuration, driven over stdin (``round``, ``quit``)."""
    from .io import read_image

    job = json.loads(sys.stdin.readline())
    cfg = Config(**job["config"])
    sampler: Optional[VramSampler] = None
    vram_note = None
    if cfg.on_nvidia:
        try:  # CUDA and cuDNN from the nvidia-* pip wheels, where installed (ORT >= 1.21)
            import onnxruntime

            getattr(onnxruntime, "preload_dlls", lambda: None)()
        except Exception:  # noqa: BLE001 - the session's own error says what is missing
            pass
        try:
            sampler = VramSampler(int(job.get("device_id", 0))).start()
        except Exception as exc:  # noqa: BLE001 - no NVML: the row says why
            vram_note = f"unavailable: {' '.join(str(exc).split())}"
    try:
        runner, info = _worker_setup(job, sampler)
        img0 = read_image(job["images"][0])
        wh = min(img0.shape[0], 2 * job["tile"][0]), min(img0.shape[1], 3 * job["tile"][1])
        crop = np.ascontiguousarray(img0[:wh[0], :wh[1]])
        del img0
        for _ in range(int(job.get("warmup", 1))):
            runner(crop, _Timer())
        info["rss_after_warmup_mb"] = _rss_mb()
    except Exception as exc:  # noqa: BLE001 - reported as the row's reason
        _send({"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"})
        return
    _send({"ready": info})
    saved = False
    for line in sys.stdin:
        cmd = line.strip()
        if cmd != "round":
            break
        per_image = []
        timer = _Timer()
        try:
            for k, path in enumerate(job["images"]):
                t0 = time.perf_counter()
                img = read_image(path)
                t1 = time.perf_counter()
                timer.stages["read"] += t1 - t0
                boxes, scores, classes = runner(img, timer)
                per_image.append(time.perf_counter() - t0)
                if not saved:
                    np.savez(os.path.join(job["out_dir"], f"{job['row']}_{k}.npz"),
                             boxes=np.asarray(boxes, np.float32), scores=np.asarray(scores),
                             class_ids=np.asarray(classes, np.int64))
        except Exception as exc:  # noqa: BLE001
            _send({"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"})
            return
        saved = True
        _send({"round": {"image_s": per_image, "stages_s": timer.stages,
                         "tile_ms": timer.tile_ms,
                         "batch_size": getattr(timer, "batch_size", None)}})
    _send({"done": {"peak_rss_mb": _peak_rss_mb(), **finish_sampler(sampler, vram_note)}})


def finish_sampler(sampler: Optional[VramSampler], note: Optional[str] = None) -> dict:
    """Stops ``sampler`` and returns what a row reports of it: peak VRAM, how it was read,
    the GPU's name and memory (read before NVML is shut down: every call fails after)."""
    if sampler is None:
        return {"peak_vram_mb": None, "vram_method": note, "gpu": None}
    gpu = {"name": sampler.gpu_name(), "total_mb": sampler.gpu_total_mb()}
    sampler.stop()
    return {"peak_vram_mb": sampler.peak_mb, "vram_method": sampler.method, "gpu": gpu}


def _rss_mb() -> float:
    from .scheduler import rss_bytes

    return rss_bytes() / MB


def _peak_rss_mb() -> Optional[float]:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: no getrusage
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024.0


class _WorkerError(RuntimeError):
    pass


class _Worker:
    """The parent's handle on one child."""

    def __init__(self, job: dict, timeout_s: float) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.timeout_s = timeout_s
        self.p = subprocess.Popen(
            [sys.executable, "-c", "from fissure.bench import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        self.send(json.dumps(job))

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        try:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child ended: recv() reports why

    def recv(self) -> dict:
        assert self.p.stdout is not None
        timer = threading.Timer(self.timeout_s, self.p.kill)
        timer.start()
        try:
            while True:
                line = self.p.stdout.readline()
                if not line:
                    self.p.wait()
                    self.stderr.seek(0)
                    tail = [ln for ln in self.stderr.read().splitlines() if ln.strip()]
                    why = tail[-1] if tail else "no output"
                    raise _WorkerError(f"the child process ended ({self.p.returncode}): "
                                       f"{why[:300]}")
                if line.startswith(_PREFIX):
                    msg = json.loads(line[len(_PREFIX):])
                    if "error" in msg:
                        raise _WorkerError(msg["error"])
                    return msg
        finally:
            timer.cancel()

    def close(self) -> dict:
        self.send("quit")
        try:
            return self.recv()["done"]
        finally:
            self.p.wait()
            self._release()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self._release()

    def _release(self) -> None:
        for f in (self.p.stdin, self.p.stdout, self.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


# ------------------------------------------------------------------------------ the report


def _empty_row(cfg: Config, reason: Optional[str]) -> dict[str, Any]:
    return {"name": cfg.name, "kind": cfg.kind, "backend": cfg.backend, "device": cfg.device,
            "precision": cfg.precision, "available": reason is None, "reason": reason,
            "implementation": None, "precision_run": None, "images_per_s": None,
            "image_s_median": None, "round_s": [], "tile_latency_ms": None, "stages_s": None,
            "tiles_per_image": None, "batch_size": None, "batch_source": None,
            "vram_batch": None, "peak_rss_mb": None, "peak_vram_mb": None, "vram_method": None,
            "fits_budget": None, "detections": None, "agreement": None, "ratio": None,
            "ratio_paired": None}


def _median_stages(rounds: list[dict], n_images: int) -> dict[str, float]:
    keys = rounds[0]["stages_s"].keys()
    return {k: statistics.median(r["stages_s"][k] for r in rounds) / n_images for k in keys}


def _finish_row(row: dict, info: dict, rounds: list[dict], done: dict, n_images: int,
                budget_mb: float) -> None:
    row["implementation"] = info.get("implementation")
    row["precision_run"] = info.get("describe", {}).get("precision")
    row["tiles_per_image"] = info.get("tiles_per_image")
    row["batch_source"] = info.get("batch_source")
    row["vram_batch"] = info.get("vram_batch")
    per_round = [sum(r["image_s"]) for r in rounds]
    row["round_s"] = per_round
    med = statistics.median(per_round)
    row["image_s_median"] = med / n_images
    row["images_per_s"] = n_images / med if med > 0 else None
    tiles = np.asarray([t for r in rounds for t in r["tile_ms"]], np.float64)
    row["tile_latency_ms"] = ({"p50": float(np.percentile(tiles, 50)),
                               "p95": float(np.percentile(tiles, 95))} if len(tiles) else None)
    row["stages_s"] = _median_stages(rounds, n_images)
    bs = rounds[-1].get("batch_size")
    row["batch_size"] = int(bs) if bs else 1
    row["peak_rss_mb"] = done.get("peak_rss_mb")
    row["peak_vram_mb"] = done.get("peak_vram_mb")
    row["vram_method"] = done.get("vram_method")
    if row["device"] == "cuda":
        v = row["peak_vram_mb"]
        row["fits_budget"] = None if v is None else bool(v <= budget_mb)
    elif row["device"] == "cpu" and row["peak_rss_mb"] is not None:
        row["fits_budget"] = bool(row["peak_rss_mb"] <= budget_mb)


def _load_dets(out_dir: str, row: int, k: int) -> Optional[dict]:
    p = os.path.join(out_dir, f"{row}_{k}.npz")
    if not os.path.exists(p):
        return None
    with np.load(p) as z:
        return {k2: z[k2] for k2 in z.files}


def run_bench(model: Union[str, os.PathLike], images: Optional[Sequence[Union[str, os.PathLike]]]
              = None, *, device: str = "auto", vram_budget_mb: float = 2048,
              backends: Optional[Sequence[str]] = None,
              precisions: Optional[Sequence[str]] = None, compare: bool = False,
              rounds: int = 3, warmup: int = 1, tile_size: int = 640,
              overlap_ratio: float = 0.2, threads: int = -1,
              detector: Optional[dict] = None, image_size: tuple[int, int] = (4000, 6000),
              timeout_s: float = 1800.0, device_id: int = 0,
              progress: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Benchmarks ``model`` tiled over ``images`` (default: :func:`test_image` of
    ``image_size`` (h, w), 24 MP) on every available configuration of ``device`` and returns
    the report (``docs/bench.md``; :func:`validate_report` checks its layout).

    ``detector``: extra :class:`fissure.TiledDetector` keyword arguments as JSON-able values
    (decoder, decoder_options, conf_threshold, preprocess as a dict, merge, batch_size ...).
    ``compare``: also run the SAHI-style and supervision-style loops on the reference
    configuration's device and report their time ratios against fissure's row there.
    """
    from . import __version__
    from .io import read_image, write_image_atomic

    say = progress or (lambda s: None)
    mp = Path(model)
    if not mp.is_file():
        raise FileNotFoundError(f"model {model}: no such file")
    if isinstance(vram_budget_mb, bool) or not float(vram_budget_mb) > 0:
        raise ValueError(f"--vram-budget {vram_budget_mb}: expected a positive number of MiB")
    if int(rounds) < 1:
        raise ValueError(f"--rounds {rounds}: expected >= 1")
    configs = select_configs(device, backends, precisions)
    tmp = tempfile.TemporaryDirectory(prefix="fissure-bench-")
    try:
        img_info = []
        paths: list[str] = []
        if images:
            for p in images:
                img = read_image(p)  # unreadable: an error before anything runs
                img_info.append({"path": str(p), "height": int(img.shape[0]),
                                 "width": int(img.shape[1]), "generated": False})
                paths.append(str(p))
                del img
        else:
            h, w = int(image_size[0]), int(image_size[1])
            say(f"generating a {w}x{h} test image")
            path = Path(tmp.name) / f"test_{w}x{h}.png"
            write_image_atomic(path, test_image(h, w))
            img_info.append({"path": None, "height": h, "width": w, "generated": True})
            paths.append(str(path))
        det_kw = dict(detector or {})
        det_kw.setdefault("tile_size", int(tile_size))
        det_kw.setdefault("overlap_ratio", float(overlap_ratio))
        providers, ov_devices = _ort_providers(), _ov_devices()
        rows: list[dict] = []
        plans: list[tuple[int, Config]] = []
        for cfg in configs:
            reason = unavailable_reason(cfg, providers, ov_devices)
            rows.append(_empty_row(cfg, reason))
            if reason is None:
                plans.append((len(rows) - 1, cfg))
        compare_base: Optional[Config] = None
        if compare:
            cuda_f32 = Config("onnxruntime", "cuda", "f32")
            compare_base = next((c for _, c in plans if c == cuda_f32), None) or REFERENCE
            for kind in ("sahi-style", "supervision-style"):
                cfg = Config(compare_base.backend, compare_base.device, "f32", kind)
                reason = unavailable_reason(compare_base, providers, ov_devices)
                rows.append(_empty_row(cfg, reason))
                if reason is None:
                    plans.append((len(rows) - 1, cfg))
        job_base = {"model": str(mp), "images": paths, "vram_budget_mb": float(vram_budget_mb),
                    "threads": int(threads), "detector": det_kw, "warmup": int(warmup),
                    "out_dir": tmp.name, "device_id": int(device_id),
                    "first_image_shape": [img_info[0]["height"], img_info[0]["width"]],
                    "tile": [int(det_kw["tile_size"])] * 2 if isinstance(det_kw["tile_size"], int)
                    else list(det_kw["tile_size"])}
        gpu_info = None
        sequential = [(i, c) for i, c in plans if c.device != "cpu"]
        together = [(i, c) for i, c in plans if c.device == "cpu"]
        for group, interleave in ([[p] for p in sequential], False), ([together], True):
            for members in group:
                if not members:
                    continue
                g = _run_group(members, job_base, rows, int(rounds), timeout_s, say,
                               float(vram_budget_mb))
                gpu_info = gpu_info or g
        ref_i = next((i for i, r in enumerate(rows) if r["name"] == REFERENCE.name
                      and r["images_per_s"] is not None), None)
        for i, row in enumerate(rows):
            if row["images_per_s"] is None:
                continue
            dets = [_load_dets(tmp.name, i, k) for k in range(len(paths))]
            row["detections"] = int(sum(len(d["boxes"]) for d in dets if d is not None))
            if ref_i is None or i == ref_i:
                continue
            tol = TOLERANCE.get(row["precision"], TOLERANCE["f32"])
            ref = [_load_dets(tmp.name, ref_i, k) for k in range(len(paths))]
            if any(d is None for d in ref + dets):
                continue
            a = compare_detections(np.concatenate([_offset(d["boxes"], k) for k, d in enumerate(ref)]),
                                   np.concatenate([_offset(d["boxes"], k) for k, d in enumerate(dets)]),
                                   np.concatenate([d["class_ids"] for d in ref]),
                                   np.concatenate([d["class_ids"] for d in dets]), iou=tol["iou"])
            a.update(reference_row=REFERENCE.name, min_required=tol["min"],
                     ok=bool(a["recall"] >= tol["min"] and a["precision"] >= tol["min"]))
            row["agreement"] = a
        compare_out = None
        if compare_base is not None:
            base = next((r for r in rows if r["name"] == compare_base.name), None)
            compare_out = {"against": compare_base.name, "ratios": {}, "ratios_paired": {}}
            for row in rows:
                if row["kind"] == "fissure":
                    continue
                if base and base["image_s_median"] and row["image_s_median"]:
                    row["ratio"] = row["image_s_median"] / base["image_s_median"]
                    row["ratio_paired"] = paired_ratio(row["round_s"], base["round_s"])
                compare_out["ratios"][row["kind"]] = row["ratio"]
                compare_out["ratios_paired"][row["kind"]] = row["ratio_paired"]
        avail = [r for r in rows if r["images_per_s"] is not None and r["kind"] == "fissure"]
        return {
            "schema_version": BENCH_SCHEMA_VERSION,
            "fissure_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": _machine(providers, ov_devices, gpu_info),
            "model": {"path": str(mp), "sha256": _sha(mp)},
            "images": img_info,
            "settings": {"device": device, "vram_budget_mb": float(vram_budget_mb),
                         "rounds": int(rounds), "warmup": int(warmup), "threads": int(threads),
                         "compare": bool(compare), "interleaved": True, "detector": det_kw},
            "rows": rows,
            "compare": compare_out,
            "summary": {
                "fastest": max(avail, key=lambda r: r["images_per_s"])["name"] if avail else None,
                "cuda_available": any(r["device"] == "cuda" and r["images_per_s"] is not None
                                      for r in rows),
                "all_fit_budget": all(r["fits_budget"] is not False for r in rows),
            },
        }
    finally:
        tmp.cleanup()


def _offset(boxes: np.ndarray, k: int) -> np.ndarray:
    """Boxes of image ``k`` moved apart from the other images' so one matching covers all."""
    return np.asarray(boxes, np.float64).reshape(-1, 4) + k * 1e6


def _sha(p: Path) -> str:
    from .io import sha256_file

    return sha256_file(p)


def _machine(providers: Optional[list[str]], ov_devices: Optional[list[str]],
             gpu: Optional[dict]) -> dict[str, Any]:
    def version(mod: str) -> Optional[str]:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:  # noqa: BLE001
            return None

    ort = next((n for n in ("onnxruntime-gpu", "onnxruntime") if version(n)), "onnxruntime")
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "onnxruntime": version(ort),
            "onnxruntime_providers": providers, "openvino": version("openvino"),
            "openvino_devices": ov_devices, "nvml": nvml_module() is not None, "gpu": gpu}


def _run_group(members: list[tuple[int, Config]], job_base: dict, rows: list[dict],
               rounds: int, timeout_s: float, say: Callable[[str], None],
               budget_mb: float) -> Optional[dict]:
    """Starts one child per member, runs ``rounds`` rounds interleaved, closes them."""
    workers: dict[int, _Worker] = {}
    infos: dict[int, dict] = {}
    results: dict[int, list[dict]] = {i: [] for i, _ in members}
    gpu = None
    try:
        for i, cfg in members:
            say(f"{cfg.name}: loading and warming up")
            job = dict(job_base, config=cfg.__dict__, row=i)
            w = _Worker(job, timeout_s)
            try:
                infos[i] = w.recv()["ready"]
                workers[i] = w
            except _WorkerError as exc:
                w.kill()
                rows[i]["available"] = False
                rows[i]["reason"] = str(exc)
        for r in range(rounds):
            for i, cfg in members:
                if i not in workers:
                    continue
                say(f"{cfg.name}: round {r + 1}/{rounds}")
                workers[i].send("round")
                try:
                    results[i].append(workers[i].recv()["round"])
                except _WorkerError as exc:
                    workers.pop(i).kill()
                    rows[i]["available"] = False
                    rows[i]["reason"] = str(exc)
        for i, w in list(workers.items()):
            try:
                done = w.close()
            except _WorkerError as exc:
                rows[i]["available"] = False
                rows[i]["reason"] = str(exc)
                continue
            finally:
                workers.pop(i)
            gpu = gpu or done.get("gpu")
            _finish_row(rows[i], infos[i], results[i], done, len(job_base["images"]), budget_mb)
    finally:
        for w in workers.values():
            w.kill()
    return gpu


# ------------------------------------------------------------------------------ schema

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
#: The report's layout: key -> accepted types (a dict: a nested object checked the same way).
ROW_SCHEMA: dict[str, Any] = {
    "name": str, "kind": str, "backend": str, "device": str, "precision": str,
    "available": bool, "reason": _OPT_STR, "implementation": _OPT_STR,
    "precision_run": _OPT_STR, "images_per_s": _OPT_NUM, "image_s_median": _OPT_NUM,
    "round_s": list, "tile_latency_ms": ({"p50": _NUM, "p95": _NUM}, type(None)),
    "stages_s": ({"read": _NUM, "preprocess": _NUM, "model": _NUM, "decode": _NUM,
                  "merge": _NUM}, type(None)),
    "tiles_per_image": (int, type(None)), "batch_size": (int, type(None)),
    "batch_source": _OPT_STR, "vram_batch": (dict, type(None)), "peak_rss_mb": _OPT_NUM,
    "peak_vram_mb": _OPT_NUM, "vram_method": _OPT_STR, "fits_budget": (bool, type(None)),
    "detections": (int, type(None)),
    "agreement": ({"reference": int, "candidate": int, "matched": int, "recall": _NUM,
                   "precision": _NUM, "iou": _NUM, "reference_row": str,
                   "min_required": _NUM, "ok": bool}, type(None)),
    "ratio": _OPT_NUM, "ratio_paired": _OPT_NUM,
}
REPORT_SCHEMA: dict[str, Any] = {
    "schema_version": int, "fissure_version": str, "created": str, "machine": dict,
    "model": {"path": str, "sha256": str}, "images": list, "settings": dict,
    "rows": list,
    "compare": ({"against": str, "ratios": dict, "ratios_paired": dict}, type(None)),
    "summary": {"fastest": _OPT_STR, "cuda_available": bool, "all_fit_budget": bool},
}
IMAGE_SCHEMA = {"path": _OPT_STR, "height": int, "width": int, "generated": bool}


def _check(obj: Any, schema: Any, where: str, errors: list[str]) -> None:
    alts = schema if isinstance(schema, tuple) else (schema,)
    for alt in alts:
        if isinstance(alt, dict):
            if isinstance(obj, dict):
                missing = sorted(set(alt) - set(obj))
                extra = sorted(set(obj) - set(alt))
                if missing:
                    errors.append(f"{where}: missing keys {missing}")
                if extra:
                    errors.append(f"{where}: unexpected keys {extra}")
                for k in alt:
                    if k in obj:
                        _check(obj[k], alt[k], f"{where}.{k}", errors)
                return
        elif isinstance(obj, alt) and not (alt in (int, float) and isinstance(obj, bool)):
            return
    errors.append(f"{where}: {type(obj).__name__} {obj!r:.60} does not match the schema")


def validate_report(report: Any) -> list[str]:
    """The ways ``report`` departs from the bench report's schema (empty: it conforms)."""
    errors: list[str] = []
    _check(report, REPORT_SCHEMA, "report", errors)
    if errors:
        return errors
    if report["schema_version"] != BENCH_SCHEMA_VERSION:
        errors.append(f"report.schema_version: expected {BENCH_SCHEMA_VERSION}")
    for k, im in enumerate(report["images"]):
        _check(im, IMAGE_SCHEMA, f"report.images[{k}]", errors)
    for k, row in enumerate(report["rows"]):
        _check(row, ROW_SCHEMA, f"report.rows[{k}]", errors)
        if isinstance(row, dict) and row.get("available") and row.get("images_per_s") is None:
            errors.append(f"report.rows[{k}]: available but without a measurement")
    return errors


# ------------------------------------------------------------------------------ gpu-check


def gpu_check_verdict(report: dict) -> tuple[int, list[str]]:
    """``tools/gpu-check.sh``'s verdict on a report: ``(status, lines)``; status 0 when every
    CUDA row ran within the budget with outputs matching the CPU reference (TOLERANCE), 1 when
    one did not (or its VRAM could not be read), 3 when no CUDA row could run."""
    lines: list[str] = []
    cuda = [r for r in report["rows"] if r["device"] == "cuda" and r["kind"] == "fissure"]
    ran = [r for r in cuda if r["images_per_s"] is not None]
    if not ran:
        why = "; ".join(f"{r['name']}: {r['reason']}" for r in cuda) or "no CUDA row was asked"
        return 3, [f"CUDA unavailable: {why}"]
    status = 0
    budget = report["settings"]["vram_budget_mb"]
    for r in cuda:
        if r["images_per_s"] is None:
            lines.append(f"SKIP {r['name']}: {r['reason']}")
            continue
        v = r["peak_vram_mb"]
        if v is None:
            status = 1
            lines.append(f"FAIL {r['name']}: peak VRAM unknown ({r['vram_method']})")
        elif v > budget:
            status = 1
            lines.append(f"FAIL {r['name']}: peak VRAM {v:.0f} MiB > budget {budget:.0f} MiB")
        else:
            lines.append(f"ok   {r['name']}: peak VRAM {v:.0f} MiB <= {budget:.0f} MiB "
                         f"({r['vram_method']}), batch {r['batch_size']}")
        a = r["agreement"]
        if a is None:
            status = 1
            lines.append(f"FAIL {r['name']}: no CPU reference detections to compare with")
        elif not a["ok"]:
            status = 1
            lines.append(f"FAIL {r['name']}: differs from the CPU: recall {a['recall']:.4f}, "
                         f"precision {a['precision']:.4f} at IoU >= {a['iou']} (need >= "
                         f"{a['min_required']})")
        else:
            lines.append(f"ok   {r['name']}: matches the CPU: recall {a['recall']:.4f}, "
                         f"precision {a['precision']:.4f} at IoU >= {a['iou']} "
                         f"({a['matched']} of {a['reference']} detections)")
            if a["reference"] == 0 and a["candidate"] == 0:
                lines.append(f"note {r['name']}: no detections on either side: the output "
                             "comparison says nothing for this model and image")
    return status, lines


# ------------------------------------------------------------------------------ table


def format_table(report: dict) -> str:
    """The report as a Markdown table (what ``fissure bench`` prints)."""
    head = ("| configuration | img/s | tile p50 / p95 ms | read / pre / model / decode / merge s "
            "| batch | peak RSS MB | peak VRAM MB | fits | dets | agrees | ratio |")
    out = [head, "|" + "---|" * 11]

    def f(v: Any, spec: str = ".3g") -> str:
        return "" if v is None else format(v, spec)

    for r in report["rows"]:
        if r["images_per_s"] is None:
            out.append(f"| {r['name']} | unavailable: {r['reason']} |" + " |" * 9)
            continue
        t, s, a = r["tile_latency_ms"], r["stages_s"], r["agreement"]
        ran = r["precision_run"]
        name = r["name"] + (f" (runs {ran})" if ran in TOLERANCE and ran != r["precision"] else "")
        out.append(
            f"| {name} | {r['images_per_s']:.3f} | "
            + (f"{t['p50']:.1f} / {t['p95']:.1f}" if t else "") + " | "
            + " / ".join(f"{s[k]:.2f}" for k in ("read", "preprocess", "model", "decode", "merge"))
            + f" | {r['batch_size']} | {f(r['peak_rss_mb'], '.0f')} | "
            f"{f(r['peak_vram_mb'], '.0f')} | "
            + ("" if r["fits_budget"] is None else ("yes" if r["fits_budget"] else "NO"))
            + f" | {r['detections']} | "
            + ("" if a is None else f"{'yes' if a['ok'] else 'no'} ({a['recall']:.3f}/{a['precision']:.3f})")
            + f" | {'' if r['ratio'] is None else format(r['ratio'], '.2f') + 'x'}"
            + (f" (paired {r['ratio_paired']:.2f}x)" if r.get("ratio_paired") is not None else "")
            + " |")
    return "\n".join(out)
