"""Backends on tiny ONNX models built here with onnx.helper; numpy is the oracle."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fissure.backends import (  # noqa: E402
    Backend,
    BackendNotInstalledError,
    ModelLoadError,
    TensorSpec,
    check_batch,
    open_model,
)

BACKENDS: List[str] = []
for _name in ("onnxruntime", "openvino"):
    try:
        __import__(_name)
        BACKENDS.append(_name)
    except ImportError:  # pragma: no cover - CI installs both
        pass
if not BACKENDS:  # pragma: no cover
    pytest.skip("neither onnxruntime nor openvino is installed", allow_module_level=True)

both = pytest.mark.skipif(len(BACKENDS) < 2, reason="needs onnxruntime and openvino")


# ---------------------------------------------------------------------------------- models


def _model_bytes(graph: "onnx.GraphProto") -> bytes:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8  # readable by every runtime version we support
    onnx.checker.check_model(m)
    return m.SerializeToString()


def conv_weights(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return (r.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5,
            r.standard_normal(4).astype(np.float32))


def conv_model(seed: int = 7) -> bytes:
    """x (N, 3, H, W) dynamic N/H/W -> conv (3x3, pad 1, known weights) and relu(conv)."""
    w, b = conv_weights(seed)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("conv", TensorProto.FLOAT, ["N", 4, "H", "W"])
    z = helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["N", 4, "H", "W"])
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
    ]
    g = helper.make_graph(nodes, "conv", [x], [y, z],
                          initializer=[numpy_helper.from_array(w, "w"),
                                       numpy_helper.from_array(b, "b")])
    return _model_bytes(g)


def conv_oracle(x: np.ndarray, seed: int = 7) -> np.ndarray:
    w, b = conv_weights(seed)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # N,C,H,W,3,3
    return np.einsum("nchwij,ocij->nohw", win, w.astype(np.float64)) + b[None, :, None, None]


def add_mul_model() -> bytes:
    """a, b (2, 4) float32 static -> out = (a + b) * k with k = [1, 2, 3, 4]."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 4])
    o = helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4])
    k = numpy_helper.from_array(np.array([1, 2, 3, 4], np.float32), "k")
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Mul", ["s", "k"], ["out"])]
    return _model_bytes(helper.make_graph(nodes, "addmul", [a, b], [o], initializer=[k]))


@pytest.fixture(scope="module")
def conv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("models") / "conv.onnx"
    p.write_bytes(conv_model())
    return p


def _open(model, backend: str, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("num_threads", 1)
    if backend == "openvino":
        kw.setdefault("precision", "f32")  # this CPU defaults to bf16
    return open_model(model, backend, "cpu", **kw)


# ---------------------------------------------------------------------------- correctness


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_matches_numpy_at_dynamic_shapes(backend: str, conv_path: Path,
                                              rng: np.random.Generator) -> None:
    with _open(conv_path, backend) as m:
        assert isinstance(m, Backend)
        assert m.name == backend and m.device.lower() == "cpu"
        assert m.inputs == [TensorSpec("x", (None, 3, None, None), np.float32)]
        assert [t.name for t in m.outputs] == ["conv", "relu"]
        assert m.spec.is_dynamic and m.spec.input.name == "x"
        for shape in [(1, 3, 8, 8), (3, 3, 17, 5), (2, 3, 1, 32)]:
            x = rng.standard_normal(shape).astype(np.float32)
            out = m.run(x)
            want = conv_oracle(x)
            assert set(out) == {"conv", "relu"}
            assert out["conv"].dtype == np.float32 and out["conv"].shape == want.shape
            np.testing.assert_allclose(out["conv"], want, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(out["relu"], np.maximum(want, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_inputs_by_name(backend: str, rng: np.random.Generator) -> None:
    with _open(add_mul_model(), backend) as m:
        assert [t.name for t in m.inputs] == ["a", "b"]
        assert all(t.is_static and t.shape == (2, 4) for t in m.inputs)
        a = rng.standard_normal((2, 4)).astype(np.float32)
        b = rng.standard_normal((2, 4)).astype(np.float32)
        out = m.run({"b": b, "a": a})
        np.testing.assert_allclose(out["out"], (a + b) * np.array([1, 2, 3, 4]), rtol=1e-6)
        with pytest.raises(ValueError, match="pass a dict"):
            m.run(a)


@both
def test_backends_agree_at_f32(conv_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 24, 40)).astype(np.float32)
    with _open(conv_path, "onnxruntime") as a, _open(conv_path, "openvino") as b:
        ra, rb = a.run(x), b.run(x)
        assert b.inference_precision == "f32"
    for k in ("conv", "relu"):
        np.testing.assert_allclose(ra[k], rb[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_equals_sync_in_order(backend: str, conv_path: Path,
                                    rng: np.random.Generator) -> None:
    xs = [rng.standard_normal((1, 3, 16 + i, 16)).astype(np.float32) for i in range(7)]
    with _open(conv_path, backend) as m:
        sync = [m.run(x) for x in xs]
        submitted: List[int] = []

        def lazy():  # the consumer's generator: submission must stay bounded ahead of results
            for i, x in enumerate(xs):
                submitted.append(i)
                yield x

        got = []
        for i, out in enumerate(m.run_async(lazy(), max_in_flight=2)):
            assert len(submitted) <= i + 3  # at most max_in_flight + the one being pulled
            got.append(out)
        assert len(got) == len(xs)
        for s, a in zip(sync, got):
            assert a["conv"].shape == s["conv"].shape
            np.testing.assert_array_equal(a["conv"], s["conv"])
        # submit copies the input: refilling the caller's buffer does not change the result
        buf = xs[0].copy()
        fut = m.submit(buf)
        buf[:] = 0
        np.testing.assert_array_equal(fut.result()["relu"], sync[0]["relu"])
        assert list(m.run_async([])) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_from_two_threads(backend: str, conv_path: Path, rng: np.random.Generator) -> None:
    xs = [rng.standard_normal((1, 3, 12, 12)).astype(np.float32) for _ in range(2)]
    with _open(conv_path, backend) as m:
        want = [m.run(x)["conv"] for x in xs]
        got: Dict[int, List[np.ndarray]] = {0: [], 1: []}

        def work(k: int) -> None:
            for _ in range(10):
                got[k].append(m.run(xs[k])["conv"])

        ts = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for k in (0, 1):
        assert len(got[k]) == 10
        for g in got[k]:
            np.testing.assert_array_equal(g, want[k])


def test_onnxruntime_io_binding_gives_the_same_outputs(conv_path: Path,
                                                       rng: np.random.Generator) -> None:
    pytest.importorskip("onnxruntime")
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    with _open(conv_path, "onnxruntime", io_binding=True) as a, \
            _open(conv_path, "onnxruntime") as b:
        assert "io_binding" in repr(a)
        ra, rb = a.run(x), b.run(x)
    for k in ra:
        np.testing.assert_array_equal(ra[k], rb[k])


def test_onnxruntime_session_and_cuda_options() -> None:
    ort = pytest.importorskip("onnxruntime")
    from fissure.backends.onnxruntime import cuda_provider_options, session_options

    assert cuda_provider_options(2048) == {
        "device_id": "0",
        "gpu_mem_limit": str(2048 * 1024 * 1024),
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
    }
    with pytest.raises(ValueError, match="vram_budget_mb"):
        cuda_provider_options(0)
    so = session_options(2)
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.intra_op_num_threads == 2
    assert session_options(-1).intra_op_num_threads == 0


def test_openvino_config_and_precision(conv_path: Path) -> None:
    pytest.importorskip("openvino")
    from fissure.backends.openvino import compile_config

    assert compile_config() == {"PERFORMANCE_HINT": "LATENCY"}  # no cache dir, no precision
    assert compile_config(num_threads=2, precision="bf16", hint="throughput") == {
        "PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "bf16",
        "INFERENCE_NUM_THREADS": 2,
    }
    with pytest.raises(ValueError, match="hint"):
        compile_config(hint="fast")
    with _open(conv_path, "openvino", hint="throughput", num_requests=3) as m:
        assert m.max_in_flight == 3 and m.inference_precision == "f32"
        assert int(m.compiled_model.get_property("INFERENCE_NUM_THREADS")) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_from_bytes(backend: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 3, 5, 6)).astype(np.float32)
    with _open(conv_model(), backend) as m:
        assert m.spec.source == "<bytes>"
        np.testing.assert_allclose(m.run(x)["conv"], conv_oracle(x), rtol=1e-4, atol=1e-4)


def test_openvino_reads_ir(conv_path: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "conv.xml"
    ov.save_model(ov.Core().read_model(str(conv_path)), str(xml), compress_to_fp16=False)
    x = rng.standard_normal((1, 3, 7, 7)).astype(np.float32)
    with _open(xml, "openvino") as m:
        np.testing.assert_allclose(m.run(x)["conv"], conv_oracle(x), rtol=1e-4, atol=1e-4)
    xml.with_suffix(".bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"conv\.bin"):
        _open(xml, "openvino")


def test_close_and_context_manager(conv_path: Path) -> None:
    m = _open(conv_path, BACKENDS[0])
    with m:
        assert "closed" not in repr(m)
    assert m.closed and "closed" in repr(m)
    m.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        m.run(np.zeros((1, 3, 4, 4), np.float32))


# --------------------------------------------------------------------------------- errors


def test_check_batch_messages() -> None:
    specs = [TensorSpec("x", (None, 3, 8, 8), np.float32)]
    ok = np.zeros((2, 3, 8, 8), np.float32)
    assert check_batch(ok, specs)["x"] is ok
    f = check_batch(np.asfortranarray(ok), specs)["x"]
    assert f.flags.c_contiguous
    with pytest.raises(ValueError, match=r"expected dtype float32, got float64.*astype"):
        check_batch(ok.astype(np.float64), specs)
    with pytest.raises(ValueError, match=r"expected rank 4 \(\?, 3, 8, 8\), got rank 3"):
        check_batch(ok[0], specs)
    with pytest.raises(ValueError, match=r"got \(2, 4, 8, 8\) \(dimension 1 must be 3\)"):
        check_batch(np.zeros((2, 4, 8, 8), np.float32), specs)
    with pytest.raises(ValueError, match=r"missing \['x'\]; unknown \['y'\]"):
        check_batch({"y": ok}, specs)
    with pytest.raises(TypeError, match="numpy array"):
        check_batch([[1.0]], specs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a numpy array"):
        check_batch({"x": [1.0]}, specs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_inputs_are_refused_before_the_runtime(backend: str) -> None:
    with _open(add_mul_model(), backend) as m:
        a = np.zeros((2, 4), np.float32)
        with pytest.raises(ValueError, match=r"input 'a': expected shape \(2, 4\), got \(3, 4\)"):
            m.run({"a": np.zeros((3, 4), np.float32), "b": a})
        with pytest.raises(ValueError, match=r"input 'b': expected dtype float32, got int64"):
            m.run({"a": a, "b": np.zeros((2, 4), np.int64)})
        with pytest.raises(ValueError, match=r"expected rank 2"):
            m.submit({"a": a, "b": a[None]})


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file(backend: str, tmp_path: Path) -> None:
    p = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        open_model(p, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_model_names_the_backend(backend: str, damage: str, tmp_path: Path) -> None:
    good = conv_model()
    data = {"garbage": b"\x08\x07not an onnx model at all" * 10,
            "truncated": good[: len(good) // 2], "empty": b""}[damage]
    p = tmp_path / "bad.onnx"
    p.write_bytes(data)
    with pytest.raises(ModelLoadError, match=backend if damage != "empty" else "empty") as e:
        _open(p, backend)
    assert isinstance(e.value, ValueError)
    assert "bad.onnx" in str(e.value)


def test_unknown_names(conv_path: Path) -> None:
    with pytest.raises(ValueError, match="backend='tensorrt'"):
        open_model(conv_path, "tensorrt")
    with pytest.raises(ValueError, match="device='tpu'"):
        open_model(conv_path, "auto", "tpu")
    with pytest.raises(ValueError, match="unknown model format '.pt'"):
        open_model(conv_path.with_suffix(".pt"), BACKENDS[0])
    with pytest.raises(TypeError, match="num_threads"):
        open_model(conv_path, BACKENDS[0], num_threads=1.5)  # type: ignore[arg-type]
    if "onnxruntime" in BACKENDS:
        with pytest.raises(ValueError, match="device='tpu'"):
            open_model(conv_path, "onnxruntime", "tpu")
        with pytest.raises(ValueError, match="precision='bf16'.*openvino"):
            open_model(conv_path, "onnxruntime", "cpu", precision="bf16")
        with pytest.raises(ValueError, match="npu.*openvino"):
            open_model(conv_path, "onnxruntime", "npu")
    if "openvino" in BACKENDS:
        with pytest.raises(ValueError, match="device='tpu'"):
            open_model(conv_path, "openvino", "tpu")
        with pytest.raises(ValueError, match="cuda.*onnxruntime"):
            open_model(conv_path, "openvino", "cuda")
        with pytest.raises(ValueError, match="precision='int3'"):
            open_model(conv_path, "openvino", precision="int3")


def test_onnxruntime_refuses_other_formats(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    p = tmp_path / "m.tflite"
    p.write_bytes(b"TFL3 pretend")
    with pytest.raises(ValueError, match="onnxruntime reads .onnx models only.*openvino"):
        open_model(p, "onnxruntime")


def test_cuda_without_onnxruntime_gpu(conv_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(BackendNotInstalledError, match="pip install onnxruntime-gpu"):
        open_model(conv_path, "onnxruntime", "cuda")


@pytest.mark.parametrize("module", ["onnxruntime", "openvino"])
def test_backend_not_installed_names_pip(module: str, conv_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=f"pip install {module}"):
        open_model(conv_path, module)
