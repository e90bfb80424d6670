"""ONNX Runtime backend: CPU execution provider, or CUDA under the VRAM budget.

Thread-safety: ``run`` may be called from several threads at once (ONNX Runtime's
``InferenceSession.run`` is thread-safe and releases the GIL). ``submit`` hands the batch to a
small pool of Python threads that call ``run``; ONNX Runtime's own ``run_async`` is not used
because it borrows a thread from the intra-op pool and refuses to run at all when that pool
has one thread (``num_threads=1``), which is the setting that overlaps best on small CPUs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

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

__all__ = ["OnnxRuntimeBackend", "cuda_provider_options", "f16_model", "session_options"]

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"the onnxruntime backend needs ONNX Runtime: {PIP_HINTS['onnxruntime']}"
        ) from exc
    return onnxruntime


def cuda_provider_options(vram_budget_mb: int, device_id: int = 0) -> Dict[str, str]:
    """CUDA execution provider options for a VRAM budget (the 2 GB rule in DESIGN.md).

    ``gpu_mem_limit`` caps ONNX Runtime's arena at the budget, ``kSameAsRequested`` grows the
    arena by what each allocation needs instead of doubling (doubling overshoots a small
    budget), and heuristic cuDNN algorithm search avoids the exhaustive search's large
    temporary workspaces and its first-run delay.
    """
    mb = int(vram_budget_mb)
    if mb <= 0:
        raise ValueError(f"vram_budget_mb: expected a positive number of MiB, got {vram_budget_mb}")
    return {
        "device_id": str(int(device_id)),
        "gpu_mem_limit": str(mb * 1024 * 1024),
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
    }


def cache_dir() -> Path:
    """Where fissure caches what it derives from models: ``$FISSURE_CACHE``, else
    ``~/.cache/fissure``."""
    env = os.environ.get("FISSURE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fissure"


def f16_model(model: Union[str, Path, bytes]) -> Path:
    """The f16 copy of an f32 ONNX model (for ONNX Runtime CUDA), converted once with ONNX
    Runtime's own converter (``onnxruntime.transformers.float16``, ``keep_io_types=True``: the
    inputs and outputs stay float32, so preprocessing and decoding do not change) and cached as
    ``<cache_dir()>/f16/<sha256 of the model>.onnx``, written atomically. Needs the ``onnx``
    package."""
    from ..io import _atomic_write_bytes, sha256_file

    if isinstance(model, (bytes, bytearray)):
        key = hashlib.sha256(bytes(model)).hexdigest()
    else:
        key = sha256_file(model)
    out = cache_dir() / "f16" / f"{key}.onnx"
    if out.is_file():
        return out
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"precision='f16' converts the model with the onnx package: {PIP_HINTS['onnx']}"
        ) from exc
    m = onnx.load_from_string(bytes(model)) if isinstance(model, (bytes, bytearray)) \
        else onnx.load(str(model))
    try:
        m16 = convert_float_to_float16(m, keep_io_types=True)
    except Exception as exc:  # noqa: BLE001 - the converter raises assorted errors
        raise ModelLoadError(f"could not convert the model to f16: {exc}") from exc
    payload = m16.SerializeToString()
    src = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
    diff = f16_probe_difference(src, payload)
    if diff is not None and diff > F16_TOLERANCE:
        raise ModelLoadError(
            "precision='f16': the f16 conversion changes this model's outputs (largest "
            f"difference {diff:.3g} of the f32 output's scale on a probe input, tolerance "
            f"{F16_TOLERANCE}); use precision='f32' (PP-OCRv4 det is one such model: constants "
            "that overflow f16)")
    _atomic_write_bytes(out, payload)
    return out


#: the largest output difference the f16 conversion may make on a probe input, as a share of
#: the f32 output's largest magnitude (at least 1)
F16_TOLERANCE = 0.05


def f16_probe_difference(f32: Union[str, bytes], f16: bytes, seed: int = 0) -> Optional[float]:
    """Runs the f32 model and its f16 conversion on ONNX Runtime's CPU provider on two probe
    inputs (uniform in [0, 1] and in [-1, 1]; one image of the static size, else 640 x 640) and
    returns the largest absolute output difference divided by ``max(1, |f32 output|.max())``.
    None where the model cannot be probed (several inputs, a non-float input, a failure)."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    try:
        a = ort.InferenceSession(f32, so, providers=["CPUExecutionProvider"])
        b = ort.InferenceSession(f16, so, providers=["CPUExecutionProvider"])
        inputs = a.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            return None
        dims = [d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape]
        if len(dims) == 4:
            n = dims[0] or 1
            if dims[1] in (1, 3, 4) or dims[3] not in (1, 3, 4):  # NCHW
                shape = [n, dims[1] or 3, dims[2] or 640, dims[3] or 640]
            else:
                shape = [n, dims[1] or 640, dims[2] or 640, dims[3]]
        else:
            shape = [d or 1 for d in dims]
        rng = np.random.default_rng(seed)
        worst = 0.0
        for lo in (0.0, -1.0):
            x = rng.uniform(lo, 1.0, shape).astype(np.float32)
            feed = {inputs[0].name: x}
            for ya, yb in zip(a.run(None, feed), b.run(None, feed)):
                ya = np.asarray(ya, np.float64)
                yb = np.asarray(yb, np.float64)
                if ya.shape != yb.shape:
                    return float("inf")
                if ya.size == 0:
                    continue
                scale = max(1.0, float(np.nanmax(np.abs(ya))))
                d = np.abs(ya - yb)
                d[np.isnan(ya) & np.isnan(yb)] = 0.0
                worst = max(worst, float(np.nanmax(np.where(np.isnan(d), np.inf, d))) / scale)
        return worst
    except Exception:  # noqa: BLE001 - a model the CPU cannot probe: no verdict
        return None


def session_options(num_threads: int = -1) -> Any:
    """SessionOptions: full graph optimisation, sequential execution, ``num_threads`` intra-op."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = 0 if num_threads == -1 else int(num_threads)  # 0: ORT's default
    so.inter_op_num_threads = 1
    return so


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(f"onnxruntime: tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
    return TensorSpec(node.name, shape, dtype)


class OnnxRuntimeBackend(BackendBase):
    """One ``onnxruntime.InferenceSession`` behind the :class:`~fissure.backends.Backend` protocol.

    Parameters mirror :func:`fissure.backends.open_model`; ``async_workers`` is the number of
    Python threads that serve ``submit`` (each calls ``session.run``; default 1, which
    overlaps inference with the caller's own work such as preprocessing the next batch).
    ``io_binding`` runs through an ``IOBinding`` (inputs bound from host memory, outputs
    allocated by ONNX Runtime on the host); ``None`` turns it on for CUDA only.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: Union[str, Path, bytes],
        device: str = "auto",
        *,
        num_threads: int = -1,
        precision: Optional[str] = None,
        vram_budget_mb: int = 2048,
        device_id: int = 0,
        async_workers: int = 1,
        io_binding: Optional[bool] = None,
        available_providers: Optional[Sequence[str]] = None,
    ) -> None:
        ort = import_onnxruntime()
        source, fmt = resolve_model_source(model)
        where = str(source) if isinstance(source, Path) else "<bytes>"
        if fmt != "onnx":
            raise ValueError(
                f"{where}: onnxruntime reads .onnx models only, not {fmt}; "
                f"use backend='openvino' ({PIP_HINTS['openvino']})"
            )
        if precision not in (None, "f32", "f16"):
            raise ValueError(
                f"precision={precision!r}: onnxruntime runs the model in its own precision "
                "(or, on CUDA, 'f16': converted once and cached); use backend='openvino' for "
                "bf16 inference"
            )
        if async_workers < 1:
            raise ValueError(f"async_workers: expected >= 1, got {async_workers}")
        providers_here = list(
            ort.get_available_providers() if available_providers is None else available_providers
        )
        dev = device.lower()
        if dev == "auto":
            from .auto import nvidia_gpu_count

            dev = "cuda" if CUDA_EP in providers_here and nvidia_gpu_count() > 0 else "cpu"
        if dev == "gpu":
            dev = "cuda"
        if dev == "npu":
            raise ValueError(
                "device='npu': onnxruntime here has no NPU provider; "
                f"use backend='openvino' for Intel NPUs ({PIP_HINTS['openvino']})"
            )
        if dev not in ("cpu", "cuda"):
            raise ValueError(
                f"device={device!r}: onnxruntime supports 'auto', 'cpu' and 'cuda' (or 'gpu')"
            )
        if precision == "f16" and dev != "cuda":
            raise ValueError(
                "precision='f16': ONNX Runtime runs converted f16 models on CUDA only "
                "(device='cuda'); on a CPU use backend='openvino' with precision='f16' or 'bf16'"
            )
        providers: List[Any]
        if dev == "cuda":
            if CUDA_EP not in providers_here:
                raise BackendNotInstalledError(
                    f"device='cuda' needs the CUDA build of ONNX Runtime (providers here: "
                    f"{providers_here}): {PIP_HINTS['onnxruntime-gpu']}"
                )
            providers = [(CUDA_EP, cuda_provider_options(vram_budget_mb, device_id)), CPU_EP]
        else:
            providers = [CPU_EP]
        so = session_options(num_threads)
        if precision == "f16":
            source = f16_model(source)  # converted once, cached by the model's sha256
        src = str(source) if isinstance(source, Path) else source
        try:
            sess = ort.InferenceSession(src, sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelLoadError(f"onnxruntime could not load the model {where}: {exc}") from exc
        if dev == "cuda" and CUDA_EP not in sess.get_providers():
            raise RuntimeError(
                "onnxruntime could not start the CUDA execution provider (no GPU, driver, CUDA "
                "or cuDNN libraries?); use device='cpu'"
            )
        try:
            metadata = dict(sess.get_modelmeta().custom_metadata_map)
        except Exception:  # noqa: BLE001 - metadata is informative only
            metadata = {}
        spec = ModelSpec(
            inputs=tuple(_spec(n) for n in sess.get_inputs()),
            outputs=tuple(_spec(n) for n in sess.get_outputs()),
            source=where,
            metadata={str(k): str(v) for k, v in metadata.items()},
        )
        super().__init__(spec)
        self._ort = ort
        self._sess = sess
        self._out_names = [t.name for t in spec.outputs]
        self.device = f"cuda:{int(device_id)}" if dev == "cuda" else "cpu"
        if precision == "f16":
            self.inference_precision = f"f16 (converted copy {Path(str(source)).name}, f32 I/O)"
        self.num_threads = num_threads
        self.providers = list(sess.get_providers())
        self.provider_options = sess.get_provider_options()
        self._io_binding = (dev == "cuda") if io_binding is None else bool(io_binding)
        self._workers = int(async_workers)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pool_lock = threading.Lock()

    @property
    def session(self) -> Any:
        """The underlying ``onnxruntime.InferenceSession`` (for inspection)."""
        return self._sess

    @property
    def max_in_flight(self) -> int:
        return self._workers + 1  # one queued behind each worker so none idles

    def _run(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if self._io_binding:
            binding = self._sess.io_binding()  # one per call: an IOBinding is not shareable
            for k, v in feed.items():
                binding.bind_cpu_input(k, v)
            for n in self._out_names:
                binding.bind_output(n, "cpu")
            self._sess.run_with_iobinding(binding)
            outs = binding.copy_outputs_to_cpu()
        else:
            outs = self._sess.run(self._out_names, feed)
        return dict(zip(self._out_names, outs))

    def _submit(self, feed: Dict[str, np.ndarray]) -> "Future[Dict[str, np.ndarray]]":
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="fissure-ort")
            return self._pool.submit(self._run, feed)

    def _close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._sess = None

    def _repr_extra(self) -> str:
        return f" threads={self.num_threads}" + (" io_binding" if self._io_binding else "")
