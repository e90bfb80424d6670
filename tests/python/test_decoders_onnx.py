"""Decoding real ONNX Runtime outputs: tiny graphs (input -> ignored, constant output) built
with onnx.helper emit known tensors; the decode of what the runtime returns is checked exactly."""

from __future__ import annotations

import numpy as np
import pytest
from fissure.detection.decoders import (
    decode_end_to_end,
    decode_probability_map,
    decode_yolo,
    decode_yolov5,
    select_decoder,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper


def _constant_model(values: dict, input_shape=(1, 3, 8, 8)) -> bytes:
    """A graph whose outputs are `values` (Constants) plus 0 * sum(images), so it has an input;
    the outputs keep the dict's order and names."""
    nodes = [helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
             helper.make_node("Constant", [], ["z"],
                              value=numpy_helper.from_array(np.array(0, np.float32), "zv")),
             helper.make_node("Mul", ["s", "z"], ["sz"])]
    outs = []
    for i, (name, value) in enumerate(values.items()):
        nodes.append(helper.make_node("Constant", [], [f"c{i}"],
                                      value=numpy_helper.from_array(value, f"cv{i}")))
        nodes.append(helper.make_node("Add", [f"c{i}", "sz"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, "const",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _run_constant_model(value: np.ndarray, input_shape=(1, 3, 8, 8)) -> np.ndarray:
    """Runs a one-output constant graph through ONNX Runtime."""
    sess = ort.InferenceSession(_constant_model({"output0": value}, input_shape),
                                providers=["CPUExecutionProvider"])
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


# --------------------------------------------------------------------------------------------
# New layouts through the whole path: backend.outputs -> select_decoder -> spec.decode(run())
# --------------------------------------------------------------------------------------------


def _open(values: dict, input_shape):
    from fissure.backends import open_model

    return open_model(_constant_model(values, input_shape), "onnxruntime", "cpu")


def _images(shape):
    return np.ones(shape, np.float32)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_onnx_yolo_seg_through_select(mode):
    from test_decoders_seg import _assert_dets, _random_seg, _ref_yolo_seg, _tiles

    rng = np.random.default_rng(21)
    size = (32, 48)
    out = _random_seg(rng, 2, 2, 3, 40, size)
    protos = rng.normal(size=(2, 3, 8, 12)).astype(np.float32)
    with _open({"output0": out, "output1": protos}, (2, 3) + size) as be:
        spec = select_decoder(be.outputs)
        assert spec.kind == "yolo_seg" and spec.layout == "channels_first"
        assert spec.output_names == {"output": "output0", "protos": "output1"}
        res = be.run(_images((2, 3) + size))
    tiles = _tiles(rng, 2, size)
    got = spec.decode(res, tiles, input_size=size, mode=mode, conf_threshold=0.3)
    _assert_dets(got, _ref_yolo_seg(out, protos, tiles, size, mode, 0.3, crop="input",
                                    drop_empty=True))
    # the same through a list in output order
    got2 = spec.decode([res["output0"], res["output1"]], tiles, input_size=size, mode=mode,
                       conf_threshold=0.3)
    np.testing.assert_array_equal(got2.masks.data, got.masks.data)


def test_onnx_yolov5_seg_through_select():
    from test_decoders_seg import _assert_dets, _random_seg, _ref_yolo_seg, _tiles

    rng = np.random.default_rng(22)
    size = (32, 32)
    cf = _random_seg(rng, 1, 3, 4, 200, size, head=5)
    protos = rng.normal(size=(1, 4, 8, 8)).astype(np.float32)
    out = np.ascontiguousarray(cf.transpose(0, 2, 1))
    # protos first in the model's outputs: roles come from shapes, not order
    with _open({"proto": protos, "output0": out}, (1, 3) + size) as be:
        spec = select_decoder(be.outputs)
        res = be.run(_images((1, 3) + size))
    assert spec.kind == "yolov5_seg"
    assert spec.inputs == (("output", "output0", 1), ("protos", "proto", 0))
    tiles = _tiles(rng, 1, size)
    got = spec.decode(res, tiles, input_size=size, mode="letterbox", conf_threshold=0.2)
    _assert_dets(got, _ref_yolo_seg(cf, protos, tiles, size, "letterbox", 0.2, v5=True,
                                    crop="input", drop_empty=True))


@pytest.mark.parametrize("with_masks", [False, True])
def test_onnx_detr_through_select(with_masks):
    from test_decoders_seg import _check_mask, _random_detr, _ref_detr, _tiles

    rng = np.random.default_rng(23)
    size = (48, 48)
    boxes, logits, ml = _random_detr(rng, 2, 30, 4, masks=(12, 12) if with_masks else None)
    values = {"dets": boxes, "labels": logits}
    if with_masks:
        values["masks"] = ml
    with _open(values, (2, 3) + size) as be:
        spec = select_decoder(be.outputs)
        res = be.run(_images((2, 3) + size))
    assert spec.kind == ("detr_seg" if with_masks else "detr")
    tiles = _tiles(rng, 2, size)
    got = spec.decode(res, tiles, input_size=size, mode="resize", conf_threshold=0.4,
                      image_shape=(1000, 1000))
    dets = _ref_detr(boxes, logits, tiles, size, "resize", 0.4, "sigmoid", mask_logits=ml)
    assert len(got) == len(dets) > 0
    np.testing.assert_array_equal(got.boxes, np.array([d[0] for d in dets], np.float32))
    np.testing.assert_array_equal(got.scores, np.array([d[1] for d in dets], np.float32))
    np.testing.assert_array_equal(got.class_ids, [d[2] for d in dets])
    if with_masks:
        assert sum(_check_mask(got, i, d[4], d[5]) for i, d in enumerate(dets)) <= 8
        # masks=False drops them
        assert spec.decode(res, tiles, input_size=size, mode="resize", conf_threshold=0.4,
                           masks=False).masks is None
    else:
        assert got.masks is None
    top = spec.decode(res, tiles, input_size=size, mode="resize", conf_threshold=0.4,
                      score="softmax", top_k=5)
    ref = _ref_detr(boxes, logits, tiles, size, "resize", 0.4, "softmax", top_k=5)
    np.testing.assert_array_equal(top.scores, np.array([d[1] for d in ref], np.float32))


def test_onnx_detection_kinds_through_select():
    # The detection layouts of the tests above: select_decoder picks the decoder they were
    # decoded with, and spec.decode gives that decoder's result.
    yolo = np.zeros((1, 7, 40), np.float32)
    yolo[0, :4, 2] = [32, 32, 16, 8]
    yolo[0, 4:, 2] = [0.1, 0.8, 0.3]
    e2e = np.zeros((1, 4, 6), np.float32)
    e2e[0, 0] = [10, 20, 30, 40, 0.9, 3]
    v5 = np.zeros((1, 320, 7), np.float32)  # N > 300: (B, <= 300, 4 + C) is RT-DETR's
    v5[0, 0] = [32, 32, 10, 20, 0.5, 0.9, 0.4]
    pm = np.zeros((1, 1, 64, 64), np.float32)
    pm[0, 0, 2:5, 3:7] = 0.8
    tiles = np.array([[0, 0, 64, 64]])
    for value, kind, direct in [(yolo, "yolo", decode_yolo), (e2e, "end_to_end", decode_end_to_end),
                                (v5, "yolov5", decode_yolov5),
                                (pm, "probability_map", decode_probability_map)]:
        with _open({"out": value}, (1, 3, 64, 64)) as be:
            spec = select_decoder(be.outputs)
            res = be.run(_images((1, 3, 64, 64)))
        assert spec.kind == kind
        got = spec.decode(res, tiles, input_size=64, mode="none", conf_threshold=0.25)
        ref = direct(value, tiles, 64, "none", **(
            {"conf_threshold": 0.25} if kind == "probability_map" else {"conf_threshold": 0.25}))
        assert len(got) == len(ref) == 1
        np.testing.assert_array_equal(got.boxes, ref.boxes)
        np.testing.assert_array_equal(got.scores, ref.scores)
        np.testing.assert_array_equal(got.class_ids, ref.class_ids)
