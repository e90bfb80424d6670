"""TiledDetector end to end on real ONNX Runtime / OpenVINO runs of small computing models.

The "bright blob" model (``fissure.detection.toy.bright_spot_model``) is a real graph: it
averages the input's channels into a probability map (N, 1, H, W), so a planted white square
on a dark image (``fissure.detection.toy.bright_spots``) is a component the probability-map
decoder finds. Oracles: the planted ground truth, and an independent pipeline made of SAHI's
slicing, ONNX Runtime per tile, cv2.connectedComponentsWithStats and SAHI's own
GreedyNMMPostprocess on ObjectPredictions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fissure
from fissure import TiledDetector
from fissure.io import as_image

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fissure.detection.toy import bright_spot_model as blob_model  # noqa: E402
from fissure.detection.toy import bright_spots as planted  # noqa: E402


def yolo_constant_model(value: np.ndarray, input_hw: tuple[int, int]) -> bytes:
    """images (N, 3, h, w) -> output0 = value (1, 4+C, A) broadcast over the batch."""
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(value, "cv"))
    red = helper.make_node("ReduceSum", ["images"], ["s"], axes=[1, 2, 3], keepdims=1)
    zero = helper.make_node("Constant", [], ["z"],
                            value=numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zv"))
    sq = helper.make_node("Squeeze", ["s"], ["s3"], axes=[3])
    mul = helper.make_node("Mul", ["s3", "z"], ["sz"])
    add = helper.make_node("Add", ["c", "sz"], ["output0"])
    graph = helper.make_graph(
        [const, red, zero, sq, mul, add], "yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", *value.shape[1:]])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def assert_found(boxes: np.ndarray, gt: np.ndarray) -> None:
    """Every planted box is detected exactly; anything else is a fragment inside one of them.

    Greedy NMM (SAHI's) compares candidates with the keeper's box only: a 2-pixel sliver that a
    tile edge cut from a square crossing a tile corner can fail IOS >= 0.5 against the keeper
    (itself a cut piece) and survive on its own. The exact SAHI comparison is
    test_equals_sahi_pipeline."""
    got = {tuple(b) for b in np.asarray(boxes, np.float64).tolist()}
    want = {tuple(b) for b in np.asarray(gt, np.float64).tolist()}
    assert want <= got, sorted(want - got)[:5]
    for x0, y0, x1, y1 in got - want:
        assert any(x0 >= a and y0 >= b and x1 <= c and y1 <= d for a, b, c, d in want)
    assert len(got - want) <= max(2, len(want) // 20)


def sort_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(-1, 4)
    return a[np.lexsort(a.T[::-1])]


def sahi_pipeline(model: bytes, image: np.ndarray, tile_size: int, overlap: float,
                  thr: float = 0.3, box_thr: float = 0.5) -> np.ndarray:
    """SAHI slicing + ONNX Runtime per tile + cv2 components + SAHI GreedyNMMPostprocess."""
    cv2 = pytest.importorskip("cv2")
    slicing = pytest.importorskip("sahi.slicing")
    from sahi.postprocess.combine import GreedyNMMPostprocess
    from sahi.prediction import ObjectPrediction

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    h, w = image.shape[:2]
    preds = []
    for x0, y0, x1, y1 in slicing.get_slice_bboxes(
            h, w, tile_size, tile_size, overlap_height_ratio=overlap, overlap_width_ratio=overlap):
        tile = image[y0:y1, x0:x1, ::-1].astype(np.float32) * np.float32(1 / 255)
        (pm,) = sess.run(None, {"images": tile.transpose(2, 0, 1)[None].copy()})
        p = pm[0, 0]
        n, labels, stats, _ = cv2.connectedComponentsWithStats((p > thr).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            score = float(p[labels == k].astype(np.float64).mean())
            if score < box_thr:
                continue
            bx, by, bw, bh = (int(v) for v in stats[k, :4])
            preds.append(ObjectPrediction(bbox=[bx + x0, by + y0, bx + bw + x0, by + bh + y0],
                                          score=score, category_id=0, category_name="0"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        merged = GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS")(preds)
    return np.array([p.bbox.to_xyxy() for p in merged], np.float64).reshape(-1, 4)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_planted_blobs_found_exactly(backend: str) -> None:
    pytest.importorskip(backend)
    img, gt = planted(1000, 1500, 60, seed=1)
    with TiledDetector(blob_model(), backend=backend, tile_size=256, overlap_ratio=0.25,
                       conf_threshold=0.5, precision="f32" if backend == "openvino" else None,
                       decoder_options={"mask_threshold": 0.3}) as det:
        d = det(img)
        assert det.decoder.kind == "probability_map"
        st = det.stats
    assert isinstance(d, fissure.Detections)
    assert_found(d.boxes, gt)
    assert d.masks is not None and len(d.masks) == len(d)
    # every merged mask is its full rectangle
    areas = (d.boxes[:, 2] - d.boxes[:, 0]) * (d.boxes[:, 3] - d.boxes[:, 1])
    np.testing.assert_array_equal(d.masks.areas(), areas.astype(np.int64))
    assert st.tiles == len(fissure.slice_grid(1000, 1500, 256, 256, 0.25, 0.25))
    assert st.raw_detections > len(gt)  # squares in overlaps were seen twice, then merged
    assert st.batches == -(-st.tiles // st.batch_size)


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_equals_sahi_pipeline(batch_size: int | None) -> None:
    # squares up to 90 px with a 64 px overlap: some are cut by every tile that sees them
    img, gt = planted(900, 1300, 40, seed=2, size=(10, 90))
    ref = sahi_pipeline(blob_model(), img, 320, 0.2)
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=320, overlap_ratio=0.2,
                       conf_threshold=0.5, batch_size=batch_size) as det:
        d = det(img)
    np.testing.assert_array_equal(sort_rows(d.boxes), sort_rows(ref))
    np.testing.assert_array_equal(d.class_ids, np.zeros(len(d), np.int64))


def test_static_batch_model_pads_the_last_batch() -> None:
    img, gt = planted(700, 700, 20, seed=3)
    with TiledDetector(blob_model((4, 3, 200, 200)), backend="onnxruntime", tile_size=200,
                       overlap_ratio=0.3, conf_threshold=0.5) as det:
        d = det(img)
        assert det.stats.batch_size == 4
        assert det.stats.tiles % 4 != 0  # the last batch is partial
    ref = sahi_pipeline(blob_model(), img, 200, 0.3)
    np.testing.assert_array_equal(sort_rows(d.boxes), sort_rows(ref))


def test_yolo_decoder_constant_box_per_tile_merged_as_sahi() -> None:
    """A model that reports the same box in every tile: the tiles' boxes shifted to the image
    and merged by SAHI's GreedyNMMPostprocess are the oracle."""
    from sahi.postprocess.combine import GreedyNMMPostprocess
    from sahi.prediction import ObjectPrediction

    out = np.zeros((1, 6, 32), np.float32)  # 2 classes, 32 anchors
    out[0, :4, 3] = [150, 140, 60, 50]   # cx, cy, w, h in model pixels (straddles tiles)
    out[0, 4:, 3] = [0.2, 0.9]
    out[0, :4, 5] = [20, 20, 10, 10]
    out[0, 4:, 5] = [0.7, 0.1]
    img = np.zeros((500, 700, 3), np.uint8)
    with TiledDetector(yolo_constant_model(out, (256, 256)), backend="onnxruntime",
                       tile_size=256, overlap_ratio=0.25) as det:
        d = det(img)
        assert det.decoder.kind == "yolo"
    preds = []
    for x0, y0, _, _ in fissure.slice_grid(500, 700, 256, 256, 0.25, 0.25):
        preds.append(ObjectPrediction(bbox=[120 + x0, 115 + y0, 180 + x0, 165 + y0], score=0.9,
                                      category_id=1, category_name="1"))
        preds.append(ObjectPrediction(bbox=[15 + x0, 15 + y0, 25 + x0, 25 + y0], score=0.7,
                                      category_id=0, category_name="0"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        merged = GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS")(preds)
    want = np.array([p.bbox.to_xyxy() for p in merged], np.float64)
    want_cls = np.array([p.category.id for p in merged])
    order_w = np.lexsort(np.c_[want, want_cls].T[::-1])
    got = np.c_[d.boxes.astype(np.float64), d.class_ids]
    order_g = np.lexsort(got.T[::-1])
    np.testing.assert_array_equal(got[order_g], np.c_[want, want_cls][order_w])


def test_full_image_pass_adds_the_whole_image_prediction() -> None:
    # one huge square: larger than a tile, so tiles only see parts of it; the full pass sees it
    img = np.zeros((600, 600, 3), np.uint8)
    img[100:500, 100:500] = 255
    kw = dict(backend="onnxruntime", tile_size=200, overlap_ratio=0.2, conf_threshold=0.5,
              merge="none")
    with TiledDetector(blob_model(), **kw) as det:
        tiles_only = det(img)
    with TiledDetector(blob_model(), full_image_pass=True, **kw) as det:
        both = det(img)
    assert len(both) == len(tiles_only) + 1
    # the whole image letterboxed into 200 x 200 (scale 1/3): the square at 100..500 maps to
    # 33.33..166.67 -> pixels 33..166 (+1) -> image 99..501 after the inverse scale
    extra = sort_rows(both.boxes)
    assert any(np.allclose(b, [99, 99, 501, 501], atol=3) for b in extra)


@pytest.mark.parametrize("mode", ["mask", "flag"])
def test_specular_drop_and_flag(mode: str) -> None:
    img, gt = planted(600, 800, 12, seed=4)  # white squares: V = 255, S = 0, all glare
    # recolour half the squares a saturated colour: not glare, still bright for the model
    for x0, y0, x1, y1 in gt[::2].astype(int):
        img[y0:y1, x0:x1] = (255, 255, 120)
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=256,
                       conf_threshold=0.3, specular=mode) as det:
        d = det(img)
    glare = fissure.specular_mask(img)
    frac = fissure.glare_fraction(glare, masks=None, boxes=gt)
    if mode == "mask":
        np.testing.assert_array_equal(sort_rows(d.boxes), sort_rows(gt[frac < 0.5]))
    else:
        np.testing.assert_array_equal(sort_rows(d.boxes), sort_rows(gt))
        order = np.lexsort(np.asarray(d.boxes, np.float64).T[::-1])
        assert d.data["specular"][order].tolist() == (
            frac[np.lexsort(gt.astype(np.float64).T[::-1])] >= 0.5).tolist()


def test_images_smaller_than_a_tile_and_conversions() -> None:
    img, gt = planted(150, 220, 4, seed=5, size=(6, 20))
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=256,
                       conf_threshold=0.5) as det:
        ref = det(img)
        assert det.stats.tiles == 1
        # one 150 x 220 tile letterboxed up into 256 x 256 (r = 256 / 220): boxes come back
        # through the inverse scale, within a pixel of the planted ones
        np.testing.assert_allclose(sort_rows(ref.boxes), sort_rows(gt), atol=1.0)
        gray = img[:, :, 0].copy()
        gray[gray < 250] = 0
        d_gray = det(gray)
        np.testing.assert_allclose(sort_rows(d_gray.boxes), sort_rows(gt), atol=1.0)
        bgra = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
        np.testing.assert_array_equal(det(bgra).boxes, ref.boxes)
        np.testing.assert_array_equal(det(img.astype(np.uint16) * 257).boxes, ref.boxes)
        with pytest.raises(TypeError, match="uint8"):
            det(img.astype(np.float32))
        with pytest.raises(ValueError, match="shape"):
            det(np.zeros((10, 10, 2), np.uint8))
        with pytest.raises(ValueError, match="non-empty"):
            det(np.zeros((0, 10, 3), np.uint8))
        with pytest.raises(FileNotFoundError):
            det("/nonexistent/image.png")


def test_as_image_conversions() -> None:
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(as_image(g), np.repeat(g[:, :, None], 3, 2))
    np.testing.assert_array_equal(as_image(g[:, :, None]), np.repeat(g[:, :, None], 3, 2))
    w = np.full((2, 2), 65535, np.uint16)
    assert as_image(w).max() == 255 and as_image(w).dtype == np.uint8
    x = np.zeros((2, 2, 3), np.uint8)
    assert as_image(x) is x


def test_model_errors(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        TiledDetector(str(bad), backend="onnxruntime")
    with pytest.raises(FileNotFoundError):
        TiledDetector(str(tmp_path / "missing.onnx"), backend="onnxruntime")
    # outputs that match no decoder: a clear error naming the shapes
    node = helper.make_node("Identity", ["images"], ["out"])
    g = helper.make_graph([node], "id",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 64, 64])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    with pytest.raises(ValueError, match="decoder"):
        TiledDetector(m.SerializeToString(), backend="onnxruntime")
    with pytest.raises(ValueError, match="merge"):
        TiledDetector(blob_model(), backend="onnxruntime", merge="wbf")
    with pytest.raises(ValueError, match="tile_size"):
        TiledDetector(blob_model(), backend="onnxruntime", tile_size=0)
    with pytest.raises(ValueError, match="overlap_ratio"):
        TiledDetector(blob_model(), backend="onnxruntime", overlap_ratio=1.0)
    with pytest.raises(ValueError, match="specular"):
        TiledDetector(blob_model(), backend="onnxruntime", specular="yes")
    with pytest.raises(ValueError, match="fixes the batch"):
        TiledDetector(blob_model((2, 3, 64, 64)), backend="onnxruntime", batch_size=3)
    with pytest.raises(ValueError, match="input_size"):
        TiledDetector(blob_model((1, 3, 64, 64)), backend="onnxruntime",
                      preprocess=fissure.PreprocessConfig(input_size=(32, 32)))


def test_batch_size_is_measured_and_bounded_by_the_budget() -> None:
    img, _ = planted(800, 800, 5, seed=6)
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=200) as det:
        assert det.max_batch == 1  # ONNX Runtime on a CPU: one tile at a time by default
        det(img)
        assert det.stats.batch_size == 1 and det.batch_cost is None  # nothing to measure
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=200, max_batch=4) as det:
        det(img)
        cost = det.batch_cost
        assert cost is not None and cost.per_tile_bytes >= 2 * 3 * 200 * 200 * 4
        assert 1 <= det.stats.batch_size <= 4
    # a budget below the measured fixed cost still runs, one tile at a time
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=200,
                       vram_budget_mb=1) as det:
        d = det(img)
        assert det.stats.batch_size == 1
        assert len(d) == 5


def test_detector_is_thread_safe() -> None:
    import threading

    img, gt = planted(700, 900, 25, seed=7)
    with TiledDetector(blob_model(), backend="onnxruntime", tile_size=256,
                       conf_threshold=0.5) as det:
        ref = sort_rows(det(img).boxes)
        out: list = [None] * 4

        def work(i: int) -> None:
            out[i] = sort_rows(det(img).boxes)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for o in out:
        np.testing.assert_array_equal(o, ref)
    np.testing.assert_array_equal(ref, sort_rows(gt))
