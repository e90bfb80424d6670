"""Inference backends: one protocol over ONNX Runtime and OpenVINO.

>>> from fissure.backends import open_model
>>> with open_model("det.onnx", backend="openvino", precision="f32") as m:  # doctest: +SKIP
...     print(m.inputs)            # [TensorSpec(name='x', shape=(None, 3, None, None), ...)]
...     out = m.run(batch)         # {output name: array}
...     for out in m.run_async(batches):   # ordered, overlapped
...         ...

See docs/backends.md for the auto rules, precision and thread-safety.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional, Union

from .._validate import check_num_threads
from .auto import Choice, Environment, auto_backend, choose, probe
from .base import (
    Backend,
    BackendBase,
    BackendNotInstalledError,
    Batch,
    ModelLoadError,
    ModelMetadata,
    ModelSpec,
    TensorSpec,
    check_batch,
    resolve_model_source,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendNotInstalledError",
    "Batch",
    "Choice",
    "Environment",
    "ModelLoadError",
    "ModelMetadata",
    "ModelSpec",
    "TensorSpec",
    "auto_backend",
    "check_batch",
    "choose",
    "open_model",
    "probe",
]

BACKENDS = ("onnxruntime", "openvino")
#: each runtime's own ``open_model`` options (``backend="auto"`` drops the other one's)
_ORT_OPTIONS = frozenset({"async_workers", "io_binding", "device_id", "available_providers"})
_OPENVINO_OPTIONS = frozenset({"hint", "num_requests", "cache_dir"})
DEVICES = ("auto", "cpu", "cuda", "gpu", "npu")


def open_model(
    model: Union[str, Path, bytes],
    backend: str = "auto",
    device: str = "auto",
    *,
    num_threads: int = -1,
    precision: Optional[str] = None,
    vram_budget_mb: int = 2048,
    **options: Any,
) -> BackendBase:
    """Load ``model`` on a backend and return it (a :class:`Backend`).

    model: a path to ``.onnx``, OpenVINO ``.xml`` (with its ``.bin`` beside it) or ``.tflite``
        (OpenVINO only), or the bytes of an ONNX model.
    backend: ``"auto"`` (rules in :mod:`fissure.backends.auto`), ``"onnxruntime"`` or
        ``"openvino"``.
    device: ``"auto"``, ``"cpu"``, ``"cuda"`` (ONNX Runtime), ``"gpu"`` (CUDA for ONNX
        Runtime, Intel GPU for OpenVINO), ``"npu"`` (OpenVINO); OpenVINO also takes its own
        device strings such as ``"GPU.1"``.
    num_threads: intra-op threads; -1 leaves the runtime's default (all physical cores).
    precision: ``None`` (device default; OpenVINO on a bf16-capable CPU runs bf16),
        ``"f32"``, ``"f16"`` or ``"bf16"`` (the last two OpenVINO only).
    vram_budget_mb: the GPU budget; ONNX Runtime CUDA gets it as ``gpu_mem_limit``
        (OpenVINO has no equivalent cap and ignores it).
    options: passed to the backend class (ONNX Runtime: ``async_workers``, ``io_binding``,
        ``device_id``; OpenVINO: ``hint``, ``num_requests``, ``cache_dir``). With
        ``backend="auto"`` the other runtime's options are dropped, so one call can carry
        both (``TiledDetector`` passes ``hint="throughput"`` this way).

    Errors: FileNotFoundError (model or IR .bin missing), ModelLoadError (a ValueError: the
    runtime could not parse the model; the message names the runtime), BackendNotInstalledError
    (an ImportError naming the pip command), ValueError (unknown backend/device/precision).
    """
    num_threads = check_num_threads(num_threads)
    if not isinstance(backend, str) or backend.lower() not in ("auto",) + BACKENDS:
        raise ValueError(f"backend={backend!r}: expected 'auto', 'onnxruntime' or 'openvino'")
    if not isinstance(device, str) or not device:
        raise ValueError(f"device={device!r}: expected one of {DEVICES}")
    b = backend.lower()
    # Check the file before choosing, so a missing model is reported as missing.
    source, fmt = resolve_model_source(model)
    if b == "auto":
        if device.lower() not in DEVICES:
            raise ValueError(f"device={device!r}: with backend='auto' expected one of {DEVICES}")
        env = probe()
        c = choose(env, fmt, device)
        b, device = c.backend, c.device
        # options meant for the runtime that was not chosen are dropped
        other = _OPENVINO_OPTIONS if b == "onnxruntime" else _ORT_OPTIONS
        options = {k: v for k, v in options.items() if k not in other}
        if (b == "openvino" and device == "cpu" and fmt == "onnx" and env.onnxruntime
                and precision in (None, "f32")):
            # an ONNX model OpenVINO cannot compile (an op it reads differently) still runs:
            # "auto" falls back to ONNX Runtime on the CPU, and says so
            from .openvino import OpenVINOBackend

            try:
                return OpenVINOBackend(source, device, num_threads=num_threads,
                                       precision=precision, **options)
            except ModelLoadError as e:
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                why = next((ln for ln in lines if ln.startswith("While validating node")),
                           lines[-1] if lines else "")
                warnings.warn(f"backend='auto': OpenVINO could not compile {Path(str(source)).name}"
                              f" ({why[:160]}); running it on ONNX Runtime (CPU) instead",
                              RuntimeWarning, stacklevel=2)
                b = "onnxruntime"
                options = {k: v for k, v in options.items() if k not in _OPENVINO_OPTIONS}
    if b == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            source, device, num_threads=num_threads, precision=precision,
            vram_budget_mb=vram_budget_mb, **options,
        )
    from .openvino import OpenVINOBackend

    return OpenVINOBackend(
        source, device, num_threads=num_threads, precision=precision, **options
    )
