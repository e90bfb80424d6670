"""``backend="auto"``: which runtime and device to use, as a pure function of the environment.

:func:`choose` takes an :class:`Environment` (what is installed, which ONNX Runtime providers
and OpenVINO devices exist, whether an NVIDIA GPU is present, the CPU architecture) and
returns a :class:`Choice`. :func:`probe` reads the real environment. The rules, in order
(docs/backends.md explains them):

1. A model only one runtime reads decides: ``.xml`` / ``.tflite`` -> OpenVINO.
2. An NVIDIA GPU with onnxruntime-gpu (CUDA provider) -> ONNX Runtime on CUDA.
3. An Intel GPU, else an Intel NPU, seen by OpenVINO -> OpenVINO on it.
4. CPU: on x86 OpenVINO first when both are installed (it ran PP-OCRv4 det 1.7-1.9x faster
   than ONNX Runtime at f32 in ``benchmarks/bench_backends.py``); elsewhere (ARM) ONNX
   Runtime first; otherwise whichever one is installed.
5. Neither installed -> :class:`BackendNotInstalledError` naming the pip commands.

An explicit ``device`` narrows the choice (``cuda`` -> ONNX Runtime, ``npu`` -> OpenVINO,
``gpu`` -> CUDA if present, else an Intel GPU, ``cpu`` -> rule 4).
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .base import PIP_HINTS, BackendNotInstalledError

__all__ = ["Choice", "Environment", "auto_backend", "choose", "nvidia_gpu_count", "probe"]

_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


@dataclass(frozen=True)
class Environment:
    """Facts the auto rules depend on (fakes in tests, :func:`probe` for real)."""

    onnxruntime: bool = False
    ort_providers: Tuple[str, ...] = ()
    openvino: bool = False
    openvino_devices: Tuple[str, ...] = ()
    nvidia_gpus: int = 0
    machine: str = field(default_factory=platform.machine)

    @property
    def is_x86(self) -> bool:
        return self.machine.lower() in _X86


@dataclass(frozen=True)
class Choice:
    backend: str  # "onnxruntime" | "openvino"
    device: str  # fissure device name: "cpu" | "cuda" | "gpu" | "npu"
    reason: str

    def __str__(self) -> str:
        return f"{self.backend} on {self.device} ({self.reason})"


def _has_ov(env: Environment, kind: str) -> bool:
    return any(d == kind or d.startswith(kind + ".") for d in env.openvino_devices)


def _cpu_choice(env: Environment) -> Optional[Choice]:
    if env.onnxruntime and env.openvino:
        if env.is_x86:
            return Choice("openvino", "cpu",
                          "x86 CPU with both installed: OpenVINO measured faster")
        return Choice("onnxruntime", "cpu", f"{env.machine} CPU: ONNX Runtime preferred off x86")
    if env.openvino:
        return Choice("openvino", "cpu", "CPU; only OpenVINO is installed")
    if env.onnxruntime:
        return Choice("onnxruntime", "cpu", "CPU; only ONNX Runtime is installed")
    return None


def _not_installed(what: str) -> BackendNotInstalledError:
    return BackendNotInstalledError(
        f"{what}: no inference backend is installed; {PIP_HINTS['openvino']} or "
        f"{PIP_HINTS['onnxruntime']}"
    )


def choose(env: Environment, model_format: Optional[str] = None, device: str = "auto") -> Choice:
    """Apply the auto rules to ``env``; pure (no imports, no I/O)."""
    dev = device.lower()
    if dev not in ("auto", "cpu", "cuda", "gpu", "npu"):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda', 'gpu' or 'npu'")
    cuda = env.onnxruntime and "CUDAExecutionProvider" in env.ort_providers and env.nvidia_gpus > 0

    if model_format in ("openvino-ir", "tflite"):
        if not env.openvino:
            raise BackendNotInstalledError(
                f"a {model_format} model needs OpenVINO: {PIP_HINTS['openvino']}"
            )
        if dev == "cuda":
            raise ValueError(f"device='cuda' runs ONNX models only; a {model_format} model "
                             "runs on OpenVINO ('cpu', 'gpu', 'npu')")
        for kind in (("GPU", "NPU") if dev == "auto" else (dev.upper(),)):
            if kind != "CPU" and _has_ov(env, kind):
                return Choice("openvino", kind.lower(),
                              f"{model_format} model; Intel {kind} present")
        return Choice("openvino", "cpu", f"{model_format} model: only OpenVINO reads it")

    if dev == "cuda":
        if cuda:
            return Choice("onnxruntime", "cuda",
                          "device='cuda' asked; NVIDIA GPU + onnxruntime-gpu")
        raise BackendNotInstalledError(
            f"device='cuda' needs an NVIDIA GPU and onnxruntime-gpu: {PIP_HINTS['onnxruntime-gpu']}"
        )
    if dev in ("auto", "gpu") and cuda:
        return Choice("onnxruntime", "cuda", "NVIDIA GPU with onnxruntime-gpu")
    if env.openvino:
        kinds = {"auto": ("GPU", "NPU"), "gpu": ("GPU",), "npu": ("NPU",)}.get(dev, ())
        for kind in kinds:
            if _has_ov(env, kind):
                return Choice("openvino", kind.lower(), f"Intel {kind} seen by OpenVINO")
    if dev in ("gpu", "npu"):
        raise BackendNotInstalledError(
            f"device={dev!r}: no {'GPU' if dev == 'gpu' else 'NPU'} usable here (NVIDIA needs "
            f"{PIP_HINTS['onnxruntime-gpu']}; Intel GPU/NPU need {PIP_HINTS['openvino']} "
            "and the device driver)"
        )
    c = _cpu_choice(env)
    if c is None:
        raise _not_installed("backend='auto'")
    return c


# --------------------------------------------------------------------------------------------
# probing the real machine


def nvidia_gpu_count() -> int:
    """NVIDIA GPUs the CUDA driver reports (0 without a driver); loads no CUDA runtime."""
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll", "libcuda.dylib"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        try:
            if cuda.cuInit(0) != 0:
                return 0
            n = ctypes.c_int(0)
            if cuda.cuDeviceGetCount(ctypes.byref(n)) != 0:
                return 0
            return int(n.value)
        except AttributeError:
            return 0
    return 0


def probe() -> Environment:
    """What this process can use. Imports the runtimes that are installed (not cheap: ~0.5 s)."""
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    has_ov = importlib.util.find_spec("openvino") is not None
    providers: Tuple[str, ...] = ()
    devices: Tuple[str, ...] = ()
    if has_ort:
        try:
            import onnxruntime

            providers = tuple(onnxruntime.get_available_providers())
        except Exception:  # noqa: BLE001 - a broken install counts as missing
            has_ort = False
    if has_ov:
        try:
            import openvino

            devices = tuple(openvino.Core().available_devices)
        except Exception:  # noqa: BLE001
            has_ov = False
    gpus = nvidia_gpu_count() if "CUDAExecutionProvider" in providers else 0
    return Environment(has_ort, providers, has_ov, devices, gpus, platform.machine())


def auto_backend(model_format: Optional[str] = None, device: str = "auto") -> Choice:
    """:func:`choose` applied to :func:`probe` (what ``fissure info`` prints)."""
    return choose(probe(), model_format, device)
