"""Model metadata (Ultralytics' metadata_props) read by both backends, and what TiledDetector
does with it: class names, the input size of a dynamic model, the task checked against the
decoder. Models are built here with onnx.helper; the real check is an Ultralytics YOLOv8n
export shipped in the nudenet wheel (skipped when it is not installed).
"""

from __future__ import annotations

import numpy as np
import pytest

from fissure import TiledDetector
from fissure.backends import ModelMetadata, open_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from test_detect import yolo_constant_model  # noqa: E402

BACKENDS = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("openvino") is None, reason="openvino missing"))]

ULTRA = {"names": "{0: 'crack', 1: 'scratch'}", "stride": "32", "imgsz": "[320, 320]",
         "task": "detect", "batch": "1", "half": "False", "author": "Ultralytics"}


def with_metadata(model: bytes, props: dict) -> bytes:
    m = onnx.load_from_string(model)
    onnx.helper.set_model_props(m, props)
    return m.SerializeToString()


def one_box_model(input_hw: tuple) -> bytes:
    """YOLOv8-style output (1, 4 + 2, 32): one candidate, a 32 x 32 box centred at (160, 160)
    in model-input pixels, class 1 at 0.9; the other candidates score 0."""
    v = np.zeros((1, 6, 32), np.float32)
    v[0, :, 0] = [160, 160, 32, 32, 0.0, 0.9]
    return yolo_constant_model(v, input_hw)


def test_parse_is_literal_only() -> None:
    md = ModelMetadata.parse(ULTRA)
    assert md.names == {0: "crack", 1: "scratch"}
    assert md.imgsz == (320, 320) and md.stride == 32 and md.task == "detect"
    assert md.batch == 1 and md.half is False
    assert ModelMetadata.parse({"names": "['a', 'b']", "imgsz": "640"}).names == {0: "a", 1: "b"}
    assert ModelMetadata.parse({"imgsz": "640"}).imgsz == (640, 640)
    # code is never run: a call, a name, garbage and wrong types all read as absent
    evil = ModelMetadata.parse({"names": "__import__('os').system('false')",
                                "imgsz": "[0, 640]", "stride": "'32'", "half": "1",
                                "batch": "True"})
    assert evil == ModelMetadata()
    assert ModelMetadata.parse({"names": "{'a': 'x'}"}).names is None
    assert ModelMetadata.parse({}) == ModelMetadata()


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_read_metadata_props(backend: str) -> None:
    model = with_metadata(one_box_model(("H", "W")), ULTRA)
    with open_model(model, backend, "cpu") as m:
        assert {k: m.spec.metadata[k] for k in ULTRA} == ULTRA
        assert m.spec.model_metadata == ModelMetadata.parse(ULTRA)
    with open_model(one_box_model(("H", "W")), backend, "cpu") as m:
        assert m.spec.model_metadata == ModelMetadata()


@pytest.mark.parametrize("backend", BACKENDS)
def test_detector_uses_names_and_imgsz(backend: str) -> None:
    image = np.zeros((640, 640, 3), np.uint8)
    model = with_metadata(one_box_model(("H", "W")), ULTRA)
    with TiledDetector(model, backend=backend, device="cpu", tile_size=640,
                       precision="f32" if backend == "openvino" else None) as det:
        assert det.class_names == {0: "crack", 1: "scratch"}
        d = det.describe()
        assert d["preprocess"]["input_size"] == [320, 320]  # imgsz, not the 640 tile
        assert d["class_names"] == {"0": "crack", "1": "scratch"}
        assert d["class_names_source"] == "model metadata" and d["model_task"] == "detect"
        dets = det(image)
    # the 640 tile was letterboxed into 320 (scale 0.5): the box (144..176) maps to 288..352
    np.testing.assert_array_equal(dets.boxes, [[288, 288, 352, 352]])
    assert dets.class_ids.tolist() == [1] and dets.labels == ["scratch 0.90"]
    # names the caller gives win; no metadata: the tile size and no names, as before
    with TiledDetector(model, backend=backend, class_names=["a", "b"]) as det:
        assert det.class_names == {0: "a", 1: "b"} and det.describe()["class_names_source"] == "given"
    with TiledDetector(one_box_model(("H", "W")), backend=backend, tile_size=640) as det:
        assert det.class_names is None and det.preprocess.input_size == (640, 640)


def test_task_is_checked_against_the_decoder() -> None:
    base = one_box_model((320, 320))
    for task in ("pose", "obb", "classify"):
        with pytest.raises(ValueError, match=f"task='{task}'.*does not decode"):
            TiledDetector(with_metadata(base, {"task": task}), backend="onnxruntime")
    with pytest.raises(ValueError, match="task='segment'.*yolo_seg"):
        TiledDetector(with_metadata(base, {"task": "segment"}), backend="onnxruntime")
    with TiledDetector(with_metadata(base, {"task": "detect"}), backend="onnxruntime") as det:
        assert det.decoder.kind == "yolo"


def _nudenet_model():
    from test_backends_real import _package_file

    return _package_file("nudenet", "320n.onnx")


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_ultralytics_export(backend: str) -> None:
    """A YOLOv8n export (dynamic input, Ultralytics metadata): the detector takes its input
    size and class names from the file, and its tile's raw output is the runtime's own."""
    path = _nudenet_model()
    with open_model(path, backend, "cpu", precision="f32" if backend == "openvino" else None) as m:
        md = m.spec.model_metadata
        assert m.inputs[0].shape == (None, 3, None, None)
        n_classes = m.outputs[0].shape[1] - 4
    assert md.task == "detect" and md.imgsz == (320, 320) and md.stride == 32
    assert md.names is not None and sorted(md.names) == list(range(n_classes))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 700, 3), dtype=np.uint8)
    with TiledDetector(path, backend=backend, device="cpu", tile_size=320,
                       precision="f32" if backend == "openvino" else None) as det:
        d = det.describe()
        assert d["decoder"]["kind"] == "yolo" and d["preprocess"]["input_size"] == [320, 320]
        assert det.class_names == md.names and d["class_names_source"] == "model metadata"
        dets = det(image)
        assert set(dets.class_ids.tolist()) <= set(md.names)
        assert det.stats is not None and det.stats.tiles == 6
