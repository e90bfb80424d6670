"""The auto rules as a pure function of a faked environment; `fissure info` prints the choice."""

from __future__ import annotations

import pytest

from fissure.backends import BackendNotInstalledError, Choice, Environment, choose
from fissure.cli import main

CPU_ORT = ("CPUExecutionProvider",)
GPU_ORT = ("CUDAExecutionProvider", "CPUExecutionProvider")


def env(ort=True, providers=CPU_ORT, ov=True, devices=("CPU",),  # type: ignore[no-untyped-def]
        gpus=0, machine="x86_64"):
    return Environment(ort, providers if ort else (), ov, devices if ov else (), gpus, machine)


@pytest.mark.parametrize(
    "e, want",
    [
        # NVIDIA GPU with onnxruntime-gpu: ONNX Runtime on CUDA, even when OpenVINO sees a GPU
        (env(providers=GPU_ORT, gpus=1, devices=("CPU", "GPU")), ("onnxruntime", "cuda")),
        # the CUDA provider without a GPU (or a GPU without the provider) is not CUDA
        (env(providers=GPU_ORT, gpus=0), ("openvino", "cpu")),
        (env(providers=CPU_ORT, gpus=1), ("openvino", "cpu")),
        # Intel GPU, else NPU, seen by OpenVINO
        (env(devices=("CPU", "GPU.0", "GPU.1", "NPU")), ("openvino", "gpu")),
        (env(devices=("CPU", "NPU")), ("openvino", "npu")),
        (env(ort=False, devices=("CPU", "GPU")), ("openvino", "gpu")),
        # CPU: OpenVINO first on x86 when both are installed, ONNX Runtime first on ARM
        (env(), ("openvino", "cpu")),
        (env(machine="AMD64"), ("openvino", "cpu")),
        (env(machine="aarch64"), ("onnxruntime", "cpu")),
        (env(machine="arm64", ov=False), ("onnxruntime", "cpu")),
        (env(machine="aarch64", ort=False), ("openvino", "cpu")),
        (env(ov=False), ("onnxruntime", "cpu")),
        (env(ort=False), ("openvino", "cpu")),
    ],
)
def test_rules(e: Environment, want: tuple) -> None:
    c = choose(e)
    assert (c.backend, c.device) == want
    assert c.reason and str(c) == f"{c.backend} on {c.device} ({c.reason})"


def test_nothing_installed_names_both_pip_commands() -> None:
    with pytest.raises(BackendNotInstalledError,
                       match="pip install openvino.*pip install onnxruntime"):
        choose(env(ort=False, ov=False))


def test_explicit_device_narrows_the_choice() -> None:
    both_gpus = env(providers=GPU_ORT, gpus=1, devices=("CPU", "GPU", "NPU"))
    assert choose(both_gpus, device="cpu") == choose(env(), device="auto")
    assert choose(both_gpus, device="npu").backend == "openvino"
    assert choose(both_gpus, device="gpu") == Choice("onnxruntime", "cuda",
                                                     choose(both_gpus).reason)
    assert (choose(env(devices=("CPU", "GPU")), device="gpu").backend,
            choose(env(devices=("CPU", "GPU")), device="gpu").device) == ("openvino", "gpu")
    with pytest.raises(BackendNotInstalledError, match="onnxruntime-gpu"):
        choose(env(), device="cuda")
    with pytest.raises(BackendNotInstalledError, match="no NPU"):
        choose(env(), device="npu")
    with pytest.raises(ValueError, match="device='tpu'"):
        choose(env(), device="tpu")


def test_formats_only_openvino_reads() -> None:
    for fmt in ("tflite", "openvino-ir"):
        c = choose(env(providers=GPU_ORT, gpus=1), fmt)
        assert (c.backend, c.device) == ("openvino", "cpu") and fmt in c.reason
        assert choose(env(devices=("CPU", "GPU")), fmt).device == "gpu"
        with pytest.raises(BackendNotInstalledError, match="pip install openvino"):
            choose(env(ov=False), fmt)
        with pytest.raises(ValueError, match="cuda"):
            choose(env(), fmt, device="cuda")
    # ONNX keeps the ordinary rules
    assert choose(env(machine="aarch64"), "onnx").backend == "onnxruntime"


def test_info_prints_the_auto_choice(capsys: pytest.CaptureFixture[str]) -> None:
    from fissure.backends import auto_backend
    from fissure.info import info

    d = info()["auto_backend"]
    assert set(d) == {"backend", "device", "reason"}
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    try:
        c = auto_backend()
    except ImportError:
        assert "auto backend: none (" in out
    else:
        assert f"auto backend: {c.backend} on {c.device} ({c.reason})" in out
