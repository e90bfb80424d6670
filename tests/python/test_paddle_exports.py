"""Real PaddleDetection exports (built by models/build_paddle.py: PP-YOLOE+ and PP-YOLOE+-SOD
from paddledet's own model code, tiny widths, converted by paddle2onnx; in tests/data/models/),
with Paddle Inference's own outputs as the oracle:

- ``ppyoloe*_nms``: the multiclass NMS in the graph (rows (N, 6) + counts (1,), one image at a
  time); ``ppyoloe*_raw``: exported without NMS (boxes (B, N, 4), scores (B, C, N));
- per file: ONNX Runtime reproduces Paddle's outputs; fissure's decoder, fed the outputs at
  ``scale_factor = [1, 1]`` and mapping them itself, equals what Paddle gives in the original
  image's pixels with the real ``scale_factor``; a blank image gives nothing; and the tiled
  output on a large mosaic equals an independent loop (SAHI's slicing, cv2.resize, ONNX
  Runtime with the real per-tile ``scale_factor``, Paddle's rows as they come, SAHI's merge).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fissure import TiledDetector
from fissure.backends import open_model
from fissure.detection.decoders import select_decoder

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sahi")
from oracles.tiled_loop import assert_same_detections, tiled_loop  # noqa: E402
from test_ultralytics_exports import mosaic  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "models"
MODELS = ["ppyoloe_nms", "ppyoloe_raw", "ppyoloe_sod_nms", "ppyoloe_sod_raw"]


def _ref(name: str) -> dict:
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    r = np.asarray(rows, np.float64).reshape(-1, 6)
    return r[np.lexsort((np.round(r[:, 3], 2), np.round(r[:, 2], 2), r[:, 0]))]


@pytest.mark.parametrize("name", MODELS)
def test_runtime_reproduces_paddle(name: str) -> None:
    ref = _ref(name)
    sess = ort.InferenceSession(str(DATA / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    for p in ("", "scaled_", "blank_"):
        x = ref[f"{p}input"] if f"{p}input" in ref else ref["input"]
        got = sess.run(None, {"image": x, "scale_factor": ref[f"{p}scale_factor"]})
        if name.endswith("_nms"):  # the same rows; Paddle orders them by class, ONNX by score
            assert got[1].tolist() == ref[f"{p}paddle_out_1"].tolist()
            np.testing.assert_allclose(_sorted_rows(got[0]), _sorted_rows(ref[f"{p}paddle_out_0"]),
                                       atol=1e-4, rtol=1e-4)
        else:
            for i, g in enumerate(got):
                np.testing.assert_allclose(g, ref[f"{p}paddle_out_{i}"], atol=1e-4, rtol=1e-4)


def _paddle_boxes_in_image(rows: np.ndarray, h: int, w: int) -> np.ndarray:
    """Paddle's rows in original-image pixels, clipped to the image, zero-area ones dropped,
    as (x1, y1, x2, y2, score, class)."""
    r = np.asarray(rows, np.float64)
    b = r[:, 2:6].copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    b = b.astype(np.float32)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return np.concatenate([b[keep], r[keep][:, [1, 0]].astype(np.float32)], 1)


@pytest.mark.parametrize("name", ["ppyoloe_nms", "ppyoloe_sod_nms"])
def test_nms_rows_map_back_as_paddle_scales_them(name: str) -> None:
    """fissure feeds scale_factor = 1 and maps model-input boxes to the image itself; Paddle
    divides by the real scale_factor in the graph. The original image is one tile."""
    ref = _ref(name)
    h, w = ref["orig_image"].shape[:2]
    with open_model(DATA / f"{name}.onnx", "onnxruntime") as m:
        spec = select_decoder(m.outputs)
    assert spec.kind == "paddle_nms"
    thr = json.loads(str(ref["nms_settings"]))["score_threshold"]
    d = spec.decode({str(n): ref[f"out_{i}"] for i, n in enumerate(ref["out_names"])},
                    np.array([[0, 0, w, h]]), input_size=(320, 320), mode="resize",
                    conf_threshold=thr)
    theirs = _paddle_boxes_in_image(ref["scaled_paddle_out_0"], h, w)
    assert len(d) == len(theirs) >= 5
    ours = np.concatenate([d.boxes, d.scores[:, None], d.class_ids[:, None]], 1)
    np.testing.assert_allclose(_sorted_rows(ours[:, [5, 4, 0, 1, 2, 3]]),
                               _sorted_rows(theirs[:, [5, 4, 0, 1, 2, 3]]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", ["ppyoloe_raw", "ppyoloe_sod_raw"])
def test_raw_boxes_map_back_as_paddle_scales_them(name: str) -> None:
    ref = _ref(name)
    h, w = ref["orig_image"].shape[:2]
    with open_model(DATA / f"{name}.onnx", "onnxruntime") as m:
        spec = select_decoder(m.outputs)
    assert spec.kind == "paddle_raw"
    thr = json.loads(str(ref["nms_settings"]))["score_threshold"]
    d = spec.decode({str(n): ref[f"out_{i}"] for i, n in enumerate(ref["out_names"])},
                    np.array([[0, 0, w, h]]), input_size=(320, 320), mode="resize",
                    conf_threshold=thr)
    boxes, scores = ref["scaled_out_0"][0], ref["scaled_out_1"][0]  # ONNX Runtime, real factor
    rows = np.concatenate([scores.argmax(0)[:, None], scores.max(0)[:, None], boxes], 1)
    theirs = _paddle_boxes_in_image(rows[rows[:, 1] >= np.float32(thr)], h, w)
    assert len(d) == len(theirs) >= 5
    np.testing.assert_allclose(d.boxes, theirs[:, :4], atol=1e-3, rtol=0)
    np.testing.assert_array_equal(d.scores, theirs[:, 4])
    np.testing.assert_array_equal(d.class_ids, theirs[:, 5].astype(np.int64))


def test_blank_image_gives_nothing() -> None:
    ref = _ref("ppyoloe_nms")
    with open_model(DATA / "ppyoloe_nms.onnx", "onnxruntime") as m:
        spec = select_decoder(m.outputs)
    d = spec.decode({str(n): ref[f"blank_out_{i}"] for i, n in enumerate(ref["out_names"])},
                    np.array([[0, 0, 320, 320]]), input_size=320, mode="resize",
                    conf_threshold=0.0)
    assert ref["blank_out_0"].shape == (0, 6) and len(d) == 0


def _paddle_tile(name: str, sess, thr: float):
    raw = name.endswith("_raw")

    def run(crop):
        th, tw = crop.shape[:2]
        x = cv2.resize(crop, (320, 320), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        x = np.ascontiguousarray((x.astype(np.float32) * np.float32(1 / 255)).transpose(2, 0, 1)[None])
        sf = np.array([[320 / th, 320 / tw]], np.float32)  # Paddle's real factor: [sy, sx]
        a, b = sess.run(None, {"image": x, "scale_factor": sf})
        if raw:
            s = b[0].max(0)
            keep = s >= np.float32(thr)
            return a[0][keep], s[keep], b[0].argmax(0)[keep]
        rows = a[: int(b[0])]
        return rows[:, 2:6], rows[:, 1], rows[:, 0].astype(np.int64)
    return run


@pytest.mark.parametrize("name", ["ppyoloe_nms", "ppyoloe_raw", "ppyoloe_sod_nms"])
def test_tiled_equals_the_paddle_route(name: str) -> None:
    # 1800 x 2000: no tile of this mosaic has exactly one box over the NMS threshold, where
    # paddle2onnx's NMS graph fails (test_nms_export_failure_is_explained)
    image = mosaic(1800, 2000)
    sess = ort.InferenceSession(str(DATA / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    thr = json.loads(str(_ref(name)["nms_settings"]))["score_threshold"]
    ref = tiled_loop(image, 640, 0.2, _paddle_tile(name, sess, thr))
    with TiledDetector(DATA / f"{name}.onnx", backend="onnxruntime", conf_threshold=thr) as det:
        d = det.describe()
        assert d["preprocess"]["mode"] == "resize" and d["extra_inputs"] == {"scale_factor": [1, 1]}
        assert d["decoder"]["kind"] == ("paddle_raw" if name.endswith("_raw") else "paddle_nms")
        dets = det(image)
        if name.endswith("_nms"):
            assert det.stats.batch_size == 1
    assert_same_detections(dets, ref)


def test_nms_export_failure_is_explained() -> None:
    """On 2000 x 1500 one tile has exactly one box over 0.3: the paddle2onnx graph itself fails
    there (a Squeeze drops the last axis); the error says why and what export works."""
    with TiledDetector(DATA / "ppyoloe_nms.onnx", backend="onnxruntime") as det:
        with pytest.raises(RuntimeError, match="exactly one box passes.*exclude_nms"):
            det(mosaic(2000, 1500))


def test_nms_export_refuses_batches() -> None:
    with pytest.raises(ValueError, match="one image at a time"):
        TiledDetector(DATA / "ppyoloe_nms.onnx", backend="onnxruntime", batch_size=4)
