"""Whole models of the families with extra inputs, run tiled: PaddleDetection (``image`` +
``scale_factor``, boxes (B, N, 4) and scores (B, C, N)) and D-FINE / DEIM (``images`` +
``orig_target_sizes``, labels / boxes / scores from the PostProcessor in the graph).

The models are built here with onnx.helper, with the families' own input and output contract
and their in-graph post-processing written as ONNX ops (a pooled-colour "detector" stands in for
the network so each tile's output depends on its pixels). The oracle is an independent route
(tests/python/oracles/tiled_loop.py): SAHI's slicing, cv2.resize per tile, ONNX Runtime fed the
REAL per-tile ``scale_factor`` / ``orig_target_sizes`` (so the graph itself puts the boxes in
tile pixels, as the families' own deploy code does), the family's own decode, SAHI's
GreedyNMMPostprocess. TiledDetector instead feeds 1 / the input size and maps the boxes itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from fissure import TiledDetector

cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sahi")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from oracles.tiled_loop import assert_same_detections, tiled_loop  # noqa: E402

H, W = 320, 384  # model input (not square: [w, h] and [h, w] orders differ)
S = H  # PaddleDetection stand-in: square
CELL = 32
N = (H // CELL) * (W // CELL)


def _cell_boxes(h: int = H, w: int = W, frac: float = 0.6) -> np.ndarray:
    """(n, 4) normalised xyxy: a box of frac of a cell at each cell's centre, raster order."""
    gh, gw = h // CELL, w // CELL
    j, i = np.meshgrid(np.arange(gw), np.arange(gh))
    cx, cy = (j.ravel() + 0.5) / gw, (i.ravel() + 0.5) / gh
    hx, hy = frac / gw / 2, frac / gh / 2
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], 1).astype(np.float32)


def _pooled(inp: str, out: str) -> list:
    """image (B, 3, h, w) -> (B, 3, n): each cell's mean colour (the stand-in network)."""
    return [helper.make_node("AveragePool", [inp], ["pool"], kernel_shape=[CELL, CELL],
                             strides=[CELL, CELL]),
            helper.make_node("Reshape", ["pool", "flat_shape"], [out])]


def paddle_raw_model() -> bytes:
    """PaddleDetection without NMS (paddle2onnx names): image, scale_factor (B, 2) = [sy, sx]
    -> boxes (B, N, 4) = cell boxes in input pixels / [sx, sy, sx, sy], scores (B, 3, N)."""
    boxes = _cell_boxes(S, S) * S
    n = (S // CELL) ** 2
    nodes = _pooled("image", "tmp_20") + [
        helper.make_node("Gather", ["scale_factor", "order"], ["sf4"], axis=1),
        helper.make_node("Unsqueeze", ["sf4", "ax1"], ["sf4u"]),
        helper.make_node("Div", ["cell_boxes", "sf4u"], ["concat_14.tmp_0"]),
    ]
    inits = [numpy_helper.from_array(np.array([0, 3, n], np.int64), "flat_shape"),
             numpy_helper.from_array(np.array([1, 0, 1, 0], np.int64), "order"),
             numpy_helper.from_array(np.array([1], np.int64), "ax1"),
             numpy_helper.from_array(boxes[None], "cell_boxes")]
    graph = helper.make_graph(
        nodes, "ppyoloe_like",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, S, S]),
         helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, ["B", 2])],
        [helper.make_tensor_value_info("concat_14.tmp_0", TensorProto.FLOAT, ["B", n, 4]),
         helper.make_tensor_value_info("tmp_20", TensorProto.FLOAT, ["B", 3, n])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def dfine_model() -> bytes:
    """D-FINE's deploy contract: images, orig_target_sizes (B, 2) int64 = [w, h] -> labels
    (B, Q) int64, boxes (B, Q, 4) xyxy in orig_target_sizes pixels, scores (B, Q): its
    PostProcessor (sigmoid, top-Q over Q * C, label = index % C, query = index // C, boxes
    gathered and scaled) on logits = 8 * (cell colour) - 4."""
    nodes = _pooled("images", "pooled") + [
        helper.make_node("Transpose", ["pooled"], ["pt"], perm=[0, 2, 1]),
        helper.make_node("Mul", ["pt", "eight"], ["p8"]),
        helper.make_node("Sub", ["p8", "four"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["prob"]),
        helper.make_node("Reshape", ["prob", "qc_shape"], ["prob_flat"]),
        helper.make_node("TopK", ["prob_flat", "k"], ["scores", "index"], axis=1),
        helper.make_node("Mod", ["index", "nc"], ["labels"]),
        helper.make_node("Div", ["index", "nc"], ["query"]),
        helper.make_node("Gather", ["cell_boxes", "query"], ["nboxes"], axis=0),
        helper.make_node("Cast", ["orig_target_sizes"], ["sizes_f"], to=TensorProto.FLOAT),
        helper.make_node("Tile", ["sizes_f", "rep"], ["sizes4"]),
        helper.make_node("Unsqueeze", ["sizes4", "ax1"], ["sizes4u"]),
        helper.make_node("Mul", ["nboxes", "sizes4u"], ["boxes"]),
    ]
    inits = [numpy_helper.from_array(np.array([0, 3, N], np.int64), "flat_shape"),
             numpy_helper.from_array(np.array(8, np.float32), "eight"),
             numpy_helper.from_array(np.array(4, np.float32), "four"),
             numpy_helper.from_array(np.array([0, 3 * N], np.int64), "qc_shape"),
             numpy_helper.from_array(np.array([N], np.int64), "k"),
             numpy_helper.from_array(np.array(3, np.int64), "nc"),
             numpy_helper.from_array(_cell_boxes(), "cell_boxes"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "rep"),
             numpy_helper.from_array(np.array([1], np.int64), "ax1")]
    graph = helper.make_graph(
        nodes, "dfine_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, H, W]),
         helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64, ["B", 2])],
        [helper.make_tensor_value_info("labels", TensorProto.INT64, ["B", N]),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["B", N, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", N])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def scene(h: int, w: int, seed: int) -> np.ndarray:
    """Dark background with saturated rectangles of random colours and sizes."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 20, np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        bw, bh = int(rng.integers(20, 160)), int(rng.integers(20, 160))
        img[y:y + bh, x:x + bw] = rng.integers(0, 256, 3)
    return img


def _tile_input(crop: np.ndarray, h: int = S, w: int = S) -> np.ndarray:
    x = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    return np.ascontiguousarray((x.astype(np.float32) * np.float32(1 / 255)).transpose(2, 0, 1)[None])


def test_paddle_raw_model_tiled_equals_the_paddle_route() -> None:
    model = paddle_raw_model()
    image = scene(1500, 2100, 1)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    def run_tile(crop):
        th, tw = crop.shape[:2]
        sf = np.array([[S / th, S / tw]], np.float32)  # PaddleDetection's scale_factor: [sy, sx]
        boxes, scores = sess.run(None, {"image": _tile_input(crop), "scale_factor": sf})
        s = scores[0].max(0)
        keep = s >= np.float32(0.3)
        return boxes[0][keep], s[keep], scores[0].argmax(0)[keep]

    ref = tiled_loop(image, 640, 0.2, run_tile)
    with TiledDetector(model, backend="onnxruntime", conf_threshold=0.3) as det:
        d = det.describe()
        assert d["decoder"]["kind"] == "paddle_raw" and d["preprocess"]["mode"] == "resize"
        assert d["extra_inputs"] == {"scale_factor": [1, 1]}
        dets = det(image)
    assert_same_detections(dets, ref)
    assert len(dets) > 50


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_dfine_model_tiled_equals_the_postprocessor_route(backend: str) -> None:
    pytest.importorskip(backend)
    model = dfine_model()
    image = scene(1300, 1700, 2)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    def run_tile(crop):
        th, tw = crop.shape[:2]
        labels, boxes, scores = sess.run(None, {
            "images": _tile_input(crop, H, W), "orig_target_sizes": np.array([[tw, th]], np.int64)})
        keep = scores[0] >= np.float32(0.6)
        return boxes[0][keep], scores[0][keep], labels[0][keep]

    ref = tiled_loop(image, 512, 0.25, run_tile)
    with TiledDetector(model, backend=backend, tile_size=512, overlap_ratio=0.25,
                       conf_threshold=0.6, batch_size=2,
                       precision="f32" if backend == "openvino" else None) as det:
        d = det.describe()
        assert d["decoder"]["kind"] == "dfine" and d["preprocess"]["mode"] == "resize"
        assert d["extra_inputs"] == {"orig_target_sizes": [W, H]}
        dets = det(image)
    assert_same_detections(dets, ref, atol=2e-3 if backend == "openvino" else 1e-3)
    assert len(dets) > 50


def test_unknown_extra_input_is_refused() -> None:
    m = onnx.load_from_string(paddle_raw_model())
    m.graph.input[1].name = "threshold"
    for node in m.graph.node:
        node.input[:] = ["threshold" if i == "scale_factor" else i for i in node.input]
    with pytest.raises(ValueError, match=r"model input threshold.*cannot fill this one"):
        TiledDetector(m.SerializeToString(), backend="onnxruntime")
