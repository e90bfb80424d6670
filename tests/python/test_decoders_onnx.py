"""Decoding real ONNX Runtime outputs: tiny graphs (input -> ignored, constant output) built
with onnx.helper emit known tensors; the decode of what the runtime returns is checked exactly."""

from __future__ import annotations

import numpy as np
import pytest
from fissure.decoders import (
    decode_end_to_end,
    decode_probability_map,
    decode_yolo,
    decode_yolov5,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper


def _run_constant_model(value: np.ndarray, input_shape=(1, 3, 8, 8)) -> np.ndarray:
    """A graph whose output is `value` (a Constant) plus 0 * sum(images), so it has an input."""
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(value, "cv"))
    red = helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0)
    zero = helper.make_node("Constant", [], ["z"],
                            value=numpy_helper.from_array(np.array(0, np.float32), "zv"))
    mul = helper.make_node("Mul", ["s", "z"], ["sz"])
    add = helper.make_node("Add", ["c", "sz"], ["output0"])
    graph = helper.make_graph(
        [const, red, zero, mul, add], "const",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(value.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"images": np.ones(input_shape, np.float32)})
    return out


def test_onnx_probability_map():
    m = np.zeros((2, 1, 16, 16), np.float32)
    m[0, 0, 2:5, 3:7] = 0.8  # 4 x 3 block
    m[0, 0, 10, 10] = 0.6
    m[0, 0, 11, 11] = 0.7  # diagonal neighbour: same component
    m[1, 0, 0:16, 0] = 0.9
    out = _run_constant_model(m, (2, 3, 16, 16))
    tiles = np.array([[100, 50, 116, 66], [0, 0, 16, 16]], np.int64)
    d = decode_probability_map(out, tiles, (16, 16), "none")
    np.testing.assert_array_equal(
        d.boxes, np.array([[103, 52, 107, 55], [110, 60, 112, 62], [0, 0, 1, 16]], np.float32))
    np.testing.assert_allclose(d.scores, [0.8, 0.65, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(d.tile_index, [0, 0, 1])
    np.testing.assert_array_equal(d.masks.regions, [[103, 52, 4, 3], [110, 60, 2, 2], [0, 0, 1, 16]])
    np.testing.assert_array_equal(d.masks.data[d.masks.offsets[1]:d.masks.offsets[2]], [1, 0, 0, 1])


def test_onnx_yolo():
    out = np.zeros((1, 7, 10), np.float32)  # 3 classes, 10 anchors, channels first
    out[0, :4, 2] = [32, 32, 16, 8]
    out[0, 4:, 2] = [0.1, 0.8, 0.3]
    out[0, :4, 7] = [60, 20, 10, 10]  # spills past the right and top edges of the tile
    out[0, :4, 9] = [30, 5, 10, 10]  # lies in the top padding: no area after clipping
    out[0, 4:, 9] = [0.9, 0.0, 0.0]
    out[0, 4:, 7] = [0.6, 0.2, 0.1]
    got = _run_constant_model(out, (1, 3, 64, 64))
    # A 128 x 64 (w x h) tile letterboxed into 64 x 64: r = 0.5, pad_y = 16.
    tiles = np.array([[1000, 500, 1128, 564]], np.int64)
    d = decode_yolo(got, tiles, (64, 64), "letterbox", conf_threshold=0.5)
    np.testing.assert_array_equal(
        d.boxes, np.array([[1048, 524, 1080, 540], [1110, 500, 1128, 518]], np.float32))
    np.testing.assert_array_equal(d.class_ids, [1, 0])
    np.testing.assert_array_equal(d.scores, np.array([0.8, 0.6], np.float32))


def test_onnx_end_to_end_and_yolov5():
    e2e = np.zeros((1, 4, 6), np.float32)
    e2e[0, 0] = [10, 20, 30, 40, 0.9, 3]
    e2e[0, 1] = [10, 20, 30, 40, 0.1, 2]
    got = _run_constant_model(e2e, (1, 3, 64, 64))
    d = decode_end_to_end(got, np.array([[0, 0, 128, 128]]), (64, 64), "resize")
    np.testing.assert_array_equal(d.boxes, [[20, 40, 60, 80]])
    np.testing.assert_array_equal(d.class_ids, [3])

    v5 = np.zeros((1, 3, 7), np.float32)
    v5[0, 0] = [32, 32, 10, 20, 0.5, 0.9, 0.4]
    v5[0, 1] = [32, 32, 10, 20, 0.2, 0.9, 0.4]
    got = _run_constant_model(v5, (1, 3, 64, 64))
    d = decode_yolov5(got, np.array([[0, 0, 64, 64]]), (64, 64), "none", conf_threshold=0.25)
    np.testing.assert_array_equal(d.boxes, [[27, 22, 37, 42]])
    np.testing.assert_array_equal(d.scores, np.array([np.float32(0.5) * np.float32(0.9)]))
    np.testing.assert_array_equal(d.class_ids, [0])
