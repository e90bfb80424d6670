"""OpenVINO backend: CPU, and Intel GPU / NPU / AUTO when present.

Reads ``.onnx`` (path or bytes), OpenVINO IR (``.xml`` with its ``.bin``) and ``.tflite``.

Precision: OpenVINO picks an inference precision per device unless told. On CPUs with
AVX512_BF16 or AMX the CPU plugin runs **bf16** by default (AVX2-only CPUs: f32), which is
faster and changes results in the third significant digit; pass ``precision="f32"`` wherever
outputs are compared with another backend or a reference.

Thread-safety: ``run`` is safe from several threads; each calling thread gets its own infer
request (an OpenVINO infer request must never be shared between threads). ``submit`` feeds an
``AsyncInferQueue`` of ``num_requests`` requests under a lock, so tiles overlap each other and
the caller's own work.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .base import (
    PIP_HINTS,
    BackendBase,
    BackendNotInstalledError,
    ModelLoadError,
    ModelSpec,
    TensorSpec,
    resolve_model_source,
)

__all__ = ["OpenVINOBackend", "compile_config"]

_PRECISIONS = {"f32": "f32", "f16": "f16", "bf16": "bf16"}
_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
_DEVICE_PREFIXES = ("CPU", "GPU", "NPU", "AUTO", "HETERO", "MULTI")


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"the openvino backend needs OpenVINO: {PIP_HINTS['openvino']}"
        ) from exc
    return openvino


def compile_config(
    *, num_threads: int = -1, precision: Optional[str] = None, hint: str = "latency",
    cache_dir: Optional[Union[str, Path]] = None,
) -> Dict[str, Any]:
    """The properties passed to ``Core.compile_model``.

    ``PERFORMANCE_HINT`` is LATENCY (one stream, all threads on one request) or THROUGHPUT
    (several streams, for many batches in flight). ``INFERENCE_PRECISION_HINT`` is set only
    when ``precision`` is given. ``CACHE_DIR`` only when ``cache_dir`` is given: nothing is
    written to disk otherwise.
    """
    h = _HINTS.get(str(hint).lower())
    if h is None:
        raise ValueError(f"hint={hint!r}: expected 'latency' or 'throughput'")
    cfg: Dict[str, Any] = {"PERFORMANCE_HINT": h}
    if precision is not None:
        p = _PRECISIONS.get(str(precision).lower())
        if p is None:
            raise ValueError(f"precision={precision!r}: expected None, 'f32', 'f16' or 'bf16'")
        cfg["INFERENCE_PRECISION_HINT"] = p
    if num_threads != -1:
        cfg["INFERENCE_NUM_THREADS"] = int(num_threads)
    if cache_dir is not None:
        cfg["CACHE_DIR"] = str(cache_dir)
    return cfg


def openvino_device(device: str, available: List[str]) -> str:
    """Map fissure's device names onto an OpenVINO device string, checking it is present."""
    d = device.strip()
    low = d.lower()
    if low == "cuda":
        raise ValueError(
            "device='cuda' is an ONNX Runtime device; OpenVINO runs on 'cpu', 'gpu' (Intel) "
            "or 'npu'. Use backend='onnxruntime' for NVIDIA GPUs"
        )
    if low == "auto":
        # OpenVINO's AUTO plugin is only worth its start-up logic when there is a choice.
        return "AUTO" if any(not a.startswith("CPU") for a in available) else "CPU"
    up = d.upper()
    if not up.startswith(_DEVICE_PREFIXES):
        raise ValueError(
            f"device={device!r}: expected 'auto', 'cpu', 'gpu', 'npu' or an OpenVINO device "
            f"string such as 'GPU.0' or 'AUTO:GPU,CPU'"
        )
    base = up.split(":")[0]
    if base in ("CPU", "GPU", "NPU") or base.startswith(("GPU.", "NPU.")):
        if not any(a == base or a.startswith(base + ".") for a in available):
            raise RuntimeError(
                f"device={device!r}: OpenVINO sees no {base} here (available: {available})"
            )
    return up


def _spec(port: Any, i: int, kind: str) -> TensorSpec:
    try:
        name = port.get_any_name()
    except RuntimeError:  # some tflite outputs carry no tensor name
        name = f"{kind}{i}"
    ps = port.get_partial_shape()
    if ps.rank.is_dynamic:
        raise ModelLoadError(f"openvino: {kind} {name!r} has a dynamic rank, which is unsupported")
    shape = tuple(None if d.is_dynamic else int(d.get_length()) for d in ps)
    return TensorSpec(name, shape, np.dtype(port.get_element_type().to_dtype()))


def model_metadata(model: Any) -> Dict[str, str]:
    """The exporter's metadata in an ``openvino.Model``'s runtime info, as key -> text.

    OpenVINO keeps an ONNX model's ``metadata_props`` under ``rt_info['framework']``;
    Ultralytics' OpenVINO export writes its keys under ``rt_info['model_info']`` (read
    first, so the framework section's copy of a key wins).
    """
    out: Dict[str, str] = {}
    try:
        info = model.get_rt_info()
        sections = [info[k] for k in ("model_info", "framework") if k in info]
    except Exception:  # noqa: BLE001 - metadata is informative only
        return out
    for section in sections:
        if not isinstance(section, dict):
            continue
        for k, v in section.items():
            try:
                text = v.astype(str) if hasattr(v, "astype") else str(v)
            except Exception:  # noqa: BLE001 - a value that is not text
                continue
            out[str(k)] = str(text)
    return out


class OpenVINOBackend(BackendBase):
    """One compiled OpenVINO model behind the :class:`~fissure.backends.Backend` protocol.

    ``hint`` sets ``PERFORMANCE_HINT`` ('latency' by default, 'throughput' when many batches
    are kept in flight with ``run_async``); ``num_requests`` sizes the async queue (default:
    the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``, at least 2) and is
    ``max_in_flight``.
    """

    name = "openvino"

    def __init__(
        self,
        model: Union[str, Path, bytes],
        device: str = "auto",
        *,
        num_threads: int = -1,
        precision: Optional[str] = None,
        hint: str = "latency",
        num_requests: Optional[int] = None,
        cache_dir: Optional[Union[str, Path]] = None,
    ) -> None:
        ov = import_openvino()
        source, fmt = resolve_model_source(model)
        config = compile_config(
            num_threads=num_threads, precision=precision, hint=hint, cache_dir=cache_dir
        )
        core = ov.Core()
        ov_device = openvino_device(device, list(core.available_devices))
        where = str(source) if isinstance(source, Path) else "<bytes>"
        try:
            m = core.read_model(str(source) if isinstance(source, Path) else source)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise ModelLoadError(f"openvino could not read the {fmt} model {where}: {exc}") from exc
        try:
            compiled = core.compile_model(m, ov_device, config)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(
                f"openvino could not compile the model {where} for {ov_device}: {exc}"
            ) from exc
        spec = ModelSpec(
            inputs=tuple(_spec(p, i, "input") for i, p in enumerate(compiled.inputs)),
            outputs=tuple(_spec(p, i, "output") for i, p in enumerate(compiled.outputs)),
            source=where,
            metadata=model_metadata(m),
        )
        super().__init__(spec)
        self._ov = ov
        self._core = core
        self._compiled = compiled
        self.device = ov_device
        self.num_threads = num_threads
        self.config = dict(config)
        if num_requests is None:
            try:
                num_requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            except Exception:  # noqa: BLE001 - a plugin may not report it
                num_requests = 1
            # at least two, so that one batch runs while the caller collects the other (with
            # one stream the second waits in the plugin's queue: the device never idles)
            num_requests = max(2, num_requests)
        if int(num_requests) < 1:
            raise ValueError(f"num_requests: expected >= 1, got {num_requests}")
        self.num_requests = max(1, int(num_requests))
        self._local = threading.local()
        self._queue: Any = None
        self._queue_lock = threading.Lock()

    @property
    def compiled_model(self) -> Any:
        """The ``openvino.CompiledModel`` (for inspection)."""
        return self._compiled

    @property
    def inference_precision(self) -> str:
        """The precision the device actually runs (e.g. 'bf16' on this CPU by default)."""
        try:
            t = self._compiled.get_property("INFERENCE_PRECISION_HINT")
            return str(t.get_type_name()) if hasattr(t, "get_type_name") else str(t)
        except Exception:  # noqa: BLE001 - AUTO / NPU may not expose it
            return "unknown"

    @property
    def max_in_flight(self) -> int:
        return self.num_requests

    def _outputs(self, request: Any) -> Dict[str, np.ndarray]:
        return {
            t.name: np.array(request.get_output_tensor(i).data, copy=True)
            for i, t in enumerate(self._spec.outputs)
        }

    def _inputs(self, feed: Dict[str, np.ndarray]) -> Dict[int, np.ndarray]:
        return {i: feed[t.name] for i, t in enumerate(self._spec.inputs)}

    def _run(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self._compiled.create_infer_request()
        req.infer(self._inputs(feed), share_inputs=True, share_outputs=True)
        return self._outputs(req)  # copied: the request reuses its output tensors

    def _on_done(self, request: Any, userdata: Any) -> None:
        fut, _feed = userdata  # _feed kept alive until the request has read it
        try:
            res = self._outputs(request)
        except Exception as exc:  # noqa: BLE001
            try:
                fut.set_exception(exc)
            except InvalidStateError:
                pass
            return
        try:
            fut.set_result(res)
        except InvalidStateError:  # cancelled by a consumer that stopped early
            pass

    def _submit(self, feed: Dict[str, np.ndarray]) -> "Future[Dict[str, np.ndarray]]":
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        with self._queue_lock:
            if self._queue is None:
                self._queue = self._ov.AsyncInferQueue(self._compiled, self.num_requests)
                self._queue.set_callback(self._on_done)
            # blocks (GIL released) while every request is busy
            self._queue.start_async(self._inputs(feed), (fut, feed), share_inputs=True)
        return fut

    def _close(self) -> None:
        with self._queue_lock:
            q, self._queue = self._queue, None
        if q is not None:
            q.wait_all()
        self._local = threading.local()
        self._compiled = None

    def _repr_extra(self) -> str:
        p = self.config.get("INFERENCE_PRECISION_HINT", "device default")
        return f" precision={p} hint={self.config['PERFORMANCE_HINT'].lower()}"
