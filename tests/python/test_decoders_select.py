"""select_decoder: the documented rules on every layout (the real exporters' shapes as the
known answer), dynamic dimensions, ambiguity and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from fissure.backends import TensorSpec
from fissure.detection.decoders import DecoderSpec, decode_yolo, select_decoder


def T(name, *shape):
    return TensorSpec(name, shape, np.float32)


N = None  # a dynamic dimension

# (outputs, kind, layout, roles): shapes as the exporters write them.
CASES = [
    # YOLOv8n / YOLO11n at 640, static and fully dynamic (batch, h, w)
    ([T("output0", 1, 84, 8400)], "yolo", "channels_first", {"output": "output0"}),
    ([T("output0", N, 84, N)], "yolo", "channels_first", {"output": "output0"}),
    ([T("output0", 1, 5, 2100)], "yolo", "channels_first", {"output": "output0"}),  # 1 class
    # YOLOv5s at 640
    ([T("output0", 1, 25200, 85)], "yolov5", "channels_last", {"output": "output0"}),
    ([T("output0", N, N, 85)], "yolov5", "channels_last", {"output": "output0"}),
    ([T("output0", 1, 25200, 6)], "yolov5", "channels_last", {"output": "output0"}),  # 1 class
    # YOLOv10 / YOLO26 end-to-end
    ([T("output0", 1, 300, 6)], "end_to_end", None, {"output": "output0"}),
    ([T("output0", N, 300, 6)], "end_to_end", None, {"output": "output0"}),
    # YOLO26-seg end-to-end (K, 6 + M) and protos, in either order
    ([T("output0", 1, 300, 38), T("output1", 1, 32, 160, 160)], "end_to_end_seg", None,
     {"output": "output0", "protos": "output1"}),
    ([T("output1", N, 32, 80, 80), T("output0", N, 300, 38)], "end_to_end_seg", None,
     {"output": "output0", "protos": "output1"}),
    # Ultralytics RT-DETR (B, 300, 4 + C)
    ([T("output0", 1, 300, 84)], "rtdetr", None, {"output": "output0"}),
    ([T("output0", N, 300, 7)], "rtdetr", None, {"output": "output0"}),
    # D-FINE / DEIM deploy outputs (labels int64), any order
    ([TensorSpec("labels", (N, 300), np.int64), T("boxes", N, 300, 4), T("scores", N, 300)],
     "dfine", None, {"labels": "labels", "boxes": "boxes", "scores": "scores"}),
    ([T("scores", 1, 300), TensorSpec("labels", (1, 300), np.int64), T("boxes", 1, 300, 4)],
     "dfine", None, {"labels": "labels", "boxes": "boxes", "scores": "scores"}),
    # PaddleDetection (paddle2onnx): NMS in the graph, and without it (static and dynamic)
    ([T("multiclass_nms3_0.tmp_0", N, 6), TensorSpec("multiclass_nms3_0.tmp_2", (N,), np.int32)],
     "paddle_nms", None, {"rows": "multiclass_nms3_0.tmp_0", "counts": "multiclass_nms3_0.tmp_2"}),
    ([T("concat_14.tmp_0", 1, 2100, 4), T("tmp_20", 1, 3, 2100)], "paddle_raw", None,
     {"boxes": "concat_14.tmp_0", "scores": "tmp_20"}),
    ([T("tmp_20", N, 80, N), T("concat_14.tmp_0", N, N, 4)], "paddle_raw", None,
     {"boxes": "concat_14.tmp_0", "scores": "tmp_20"}),
    # DBNet (PP-OCRv4 det: dynamic), rank-3 maps
    ([T("sigmoid_0.tmp_0", N, 1, N, N)], "probability_map", None, {"maps": "sigmoid_0.tmp_0"}),
    ([T("maps", 1, 1, 640, 640)], "probability_map", None, {"maps": "maps"}),
    ([T("maps", 2, 480, 640)], "probability_map", None, {"maps": "maps"}),
    ([T("maps", N, N, N)], "probability_map", None, {"maps": "maps"}),
    # YOLOv8n-seg / YOLO11n-seg, in either output order
    ([T("output0", 1, 116, 8400), T("output1", 1, 32, 160, 160)], "yolo_seg", "channels_first",
     {"output": "output0", "protos": "output1"}),
    ([T("output1", N, 32, N, N), T("output0", N, 116, N)], "yolo_seg", "channels_first",
     {"output": "output0", "protos": "output1"}),
    # YOLOv5s-seg
    ([T("output0", 1, 25200, 117), T("output1", 1, 32, 160, 160)], "yolov5_seg", "channels_last",
     {"output": "output0", "protos": "output1"}),
    # RF-DETR (dets, labels[, masks]) and DETR-style names
    ([T("dets", 1, 300, 4), T("labels", 1, 300, 91)], "detr", None,
     {"boxes": "dets", "logits": "labels"}),
    ([T("pred_logits", N, 100, 92), T("pred_boxes", N, 100, 4)], "detr", None,
     {"boxes": "pred_boxes", "logits": "pred_logits"}),
    ([T("labels", 1, 300, 4), T("dets", 1, 300, 4)], "detr", None,  # C == 4: names decide
     {"boxes": "dets", "logits": "labels"}),
    ([T("dets", 1, 200, 4), T("labels", 1, 200, 2), T("masks", 1, 200, 108, 108)], "detr_seg",
     None, {"boxes": "dets", "logits": "labels", "mask_logits": "masks"}),
]


@pytest.mark.parametrize("outputs,kind,layout,roles", CASES)
def test_select_known_layouts(outputs, kind, layout, roles):
    spec = select_decoder(outputs)
    assert isinstance(spec, DecoderSpec)
    assert spec.kind == kind
    if kind in ("yolo", "yolo_seg", "yolov5", "yolov5_seg"):
        assert spec.layout == layout
    else:
        assert spec.layout is None
    assert spec.output_names == roles
    names = [o.name for o in outputs]
    for _role, name, index in spec.inputs:
        assert names[index] == name
    # naming its own kind gives the same choice
    assert select_decoder(outputs, name=kind) == spec


def _error(outputs, **kw):
    with pytest.raises(ValueError) as e:
        select_decoder(outputs, **kw)
    msg = str(e.value)
    assert "accepted layouts" in msg and "decoder=" in msg
    return msg


@pytest.mark.parametrize("outputs", [
    [T("o", 1, N, 6)],  # end-to-end, or a one-class YOLOv5 with dynamic N
    [T("o", 1, 100, 300)],  # neither a clear candidate axis nor a map (3x aspect)
    [T("o", 1, 20, 60)],  # too short for a map, too few candidates for YOLO
    [T("o", 1, 3, 8400)],  # too few values per candidate for any YOLO
    [T("o", 1, 2, 64, 64)],  # two-channel map
    [T("o", 1, N, 64, 64)],
    [T("o", 1, 36, 8400), T("p", 1, 32, 160, 160)],  # 36 < 4 + 1 + 32
    [T("o", 2, 116, 8400), T("p", 1, 32, 160, 160)],  # batch sizes differ
    [T("a", 1, 300, 4), T("b", 1, 300, 4)],  # C == 4 and no names to tell boxes apart
    [T("dets", 1, 300, 4), T("labels", 1, 200, 91)],  # Q differs
    [T("a", 1, 300, 5), T("b", 1, 300, 91)],  # no (B, Q, 4)
    [T("a", 1, 300, 4), T("b", 1, 300, 91), T("c", 1, 300, 91)],
    [T("a", 1, 84, 8400), T("b", 1, 84, 8400), T("c", 1, 84, 8400), T("d", 1, 4)],
    [],
])
def test_select_unmatched_or_ambiguous(outputs):
    msg = _error(outputs)
    for o in outputs:
        assert o.name in msg


def test_select_error_lists_shapes_and_reasons():
    msg = _error([T("o", 1, N, 6)])
    assert "o (1, ?, 6)" in msg
    assert "could be either" in msg  # the yolov5 / end_to_end reason
    msg = _error([T("o", 1, 84, 8400)], name="yolov5")
    assert "channels-first" in msg


def test_select_explicit_names():
    # YOLOv8 exported channels-last: auto reads it as YOLOv5, name="yolo" overrides
    out = [T("output0", 1, 8400, 84)]
    assert select_decoder(out).kind == "yolov5"
    spec = select_decoder(out, name="yolo")
    assert spec.kind == "yolo" and spec.layout == "channels_last"
    # explicit names loosen the size rules but still need the right structure
    assert select_decoder([T("o", 1, 600, 6)], name="end_to_end").kind == "end_to_end"
    assert select_decoder([T("o", 1, 84, 300)], name="yolo").layout == "channels_first"
    assert select_decoder([T("o", 1, 100, 300)], name="probability_map").kind == "probability_map"
    _error([T("o", 1, 84, 8400)], name="detr")
    _error([T("o", 1, 84, 8400), T("p", 1, 32, 160, 160)], name="yolov5_seg")
    with pytest.raises(ValueError, match="name: expected 'auto' or one of"):
        select_decoder([T("o", 1, 84, 8400)], name="yolov8")


def test_select_bad_arguments():
    with pytest.raises(TypeError, match="TensorSpec"):
        select_decoder([(1, 84, 8400)])
    with pytest.raises(TypeError, match="sequence of TensorSpec"):
        select_decoder(T("o", 1, 84, 8400))


def test_spec_decode_options_and_errors():
    spec = select_decoder([T("output0", 1, 6, 10)], name="yolo")
    out = np.zeros((1, 6, 10), np.float32)
    out[0, :, 3] = [20, 20, 10, 10, 0.1, 0.7]
    tiles = np.array([[0, 0, 64, 64]])
    got = spec.decode({"output0": out}, tiles, input_size=64, mode="none", conf_threshold=0.5)
    ref = decode_yolo(out, tiles, 64, "none", conf_threshold=0.5)
    np.testing.assert_array_equal(got.boxes, ref.boxes)
    np.testing.assert_array_equal(got.class_ids, [1])
    with pytest.raises(TypeError, match=r"takes the options \['layout'\], got \['top_k'\]"):
        spec.decode({"output0": out}, tiles, input_size=64, mode="none", conf_threshold=0.5,
                    top_k=3)
    with pytest.raises(ValueError, match=r"expected arrays named \['output0'\].*missing"):
        spec.decode({"other": out}, tiles, input_size=64, mode="none", conf_threshold=0.5)
    with pytest.raises(ValueError, match="at least 1 arrays"):
        spec.decode([], tiles, input_size=64, mode="none", conf_threshold=0.5)
    with pytest.raises(TypeError, match="dict of name -> array"):
        spec.decode(out, tiles, input_size=64, mode="none", conf_threshold=0.5)
    # the probability-map kind maps conf_threshold to its conf_threshold and takes its own options
    pm = select_decoder([T("maps", 1, 1, 8, 8)])
    maps = np.zeros((1, 1, 8, 8), np.float32)
    maps[0, 0, 1:3, 1:3] = 0.6
    tiles8 = np.array([[0, 0, 8, 8]])
    kw = {"input_size": 8, "mode": "none"}
    assert len(pm.decode({"maps": maps}, tiles8, conf_threshold=0.5, **kw)) == 1
    assert len(pm.decode({"maps": maps}, tiles8, conf_threshold=0.7, **kw)) == 0
    assert len(pm.decode({"maps": maps}, tiles8, conf_threshold=0.5, mask_threshold=0.6, **kw)) == 0
    assert pm.decode({"maps": maps}, tiles8, conf_threshold=0.5, masks=False, **kw).masks is None
