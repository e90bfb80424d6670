"""Model-input rounding to the stride of a dynamic model, and raw YOLOX heads.

Real models: an Ultralytics YOLOv8n export from the nudenet wheel (dynamic input, metadata
``stride=32``) and ddddocr's ``common_det.onnx`` (a raw YOLOX head, (1, 3549, 6) at 416 x 416,
MIT). Each is checked against an independent per-tile loop: SAHI's slicing, an OpenCV
letterbox, ONNX Runtime, the model's own decode (decode_yolo, or YOLOX's demo_postprocess
written out in numpy + the usual obj * cls scores) and fissure.greedy_nmm. Skipped when a
wheel is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fissure
from fissure import PreprocessConfig, TiledDetector
from fissure.backends import TensorSpec
from fissure.detection.decoders import decode_yolo, decode_yolox_raw, select_decoder

cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from test_backends_real import _package_file  # noqa: E402
from test_preprocess import ultralytics_letterbox  # noqa: E402


def _without_imgsz(path: Path) -> bytes:
    """The nudenet export with its metadata's imgsz removed (stride=32 kept): the detector's
    input size then comes from the tile size."""
    m = onnx.load(str(path))
    props = {p.key: p.value for p in m.metadata_props if p.key != "imgsz"}
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, props)
    return m.SerializeToString()


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 235, np.uint8)
    for _ in range(40):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax = (int(rng.integers(10, 80)), int(rng.integers(10, 80)))
        cv2.ellipse(img, (cx, cy), ax, float(rng.integers(0, 180)), 0, 360, c, -1)
    for i in range(30):
        x, y = int(rng.integers(0, w - 120)), int(rng.integers(30, h))
        cv2.putText(img, "AB7xq"[: 2 + i % 4], (x, y), cv2.FONT_HERSHEY_SIMPLEX,
                    float(rng.uniform(0.8, 1.8)), (20, 20, 20), 2, cv2.LINE_AA)
    return img


def _oracle(model: bytes, image: np.ndarray, tile: int, input_hw: tuple, cfg_scale: float,
            rgb: bool, decode) -> tuple:
    from sahi.slicing import get_slice_bboxes

    h, w = image.shape[:2]
    tiles = np.array(get_slice_bboxes(h, w, tile, tile, overlap_height_ratio=0.2,
                                      overlap_width_ratio=0.2), np.int64)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    boxes, scores, cls = [], [], []
    for t in tiles:
        crop = image[t[1]:t[3], t[0]:t[2]]
        lb = ultralytics_letterbox(crop, input_hw, 114, cv2.INTER_LINEAR)
        if rgb:
            lb = lb[:, :, ::-1]
        x = (lb.astype(np.float32) * np.float32(cfg_scale)).transpose(2, 0, 1)[None]
        out = sess.run(None, {name: np.ascontiguousarray(x)})[0]
        d = decode(out, t[None])
        boxes.append(d.boxes), scores.append(d.scores), cls.append(d.class_ids)
    r = fissure.greedy_nmm(np.concatenate(boxes), np.concatenate(scores), np.concatenate(cls),
                           match_threshold=0.5, match_metric="ios")
    return r.boxes, r.scores, r.class_ids


def _assert_same(dets, ref) -> None:
    boxes, scores, cls = ref
    assert len(dets) == len(scores) > 0
    o1 = np.lexsort((dets.boxes[:, 1], dets.boxes[:, 0], dets.class_ids))
    o2 = np.lexsort((boxes[:, 1], boxes[:, 0], cls))
    np.testing.assert_allclose(dets.boxes[o1], boxes[o2], atol=1e-3, rtol=0)
    np.testing.assert_allclose(dets.scores[o1], scores[o2], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(dets.class_ids[o1], cls[o2])


# --- stride rounding ---------------------------------------------------------------------------


def test_dynamic_input_rounds_up_to_the_stride() -> None:
    model = _without_imgsz(_package_file("nudenet", "320n.onnx"))
    image = _scene(1100, 900, 0)
    with TiledDetector(model, backend="onnxruntime", tile_size=500, conf_threshold=0.05,
                       batch_size=1) as det:
        d = det.describe()
        assert d["preprocess"]["input_size"] == [512, 512] and d["stride"] == 32
        assert d["input_size_rounded_from"] == [500, 500] and d["tile_size"] == [500, 500]
        dets = det(image)
    ref = _oracle(model, image, 500, (512, 512), 1 / 255, True,
                  lambda out, t: decode_yolo(out, t, (512, 512), "letterbox",
                                             conf_threshold=0.05))
    _assert_same(dets, ref)


def test_multiples_of_the_stride_are_kept_and_imgsz_still_wins() -> None:
    path = _package_file("nudenet", "320n.onnx")
    with TiledDetector(_without_imgsz(path), backend="onnxruntime", tile_size=640) as det:
        assert det.preprocess.input_size == (640, 640)
        assert det.describe()["input_size_rounded_from"] is None
    with TiledDetector(path, backend="onnxruntime", tile_size=500) as det:
        assert det.preprocess.input_size == (320, 320)  # the metadata's imgsz


def test_explicit_input_size_off_the_stride_is_refused() -> None:
    path = _package_file("nudenet", "320n.onnx")
    cfg = PreprocessConfig(input_size=(500, 512), mode="letterbox")
    with pytest.raises(ValueError) as e:
        TiledDetector(path, backend="onnxruntime", tile_size=500, preprocess=cfg)
    msg = str(e.value)
    assert "\n" not in msg and "stride is 32" in msg and "480 or 512" in msg
    ok = PreprocessConfig(input_size=(512, 512), mode="letterbox")
    with TiledDetector(path, backend="onnxruntime", tile_size=500, preprocess=ok) as det:
        assert det.preprocess.input_size == (512, 512)


def test_cli_refuses_input_size_off_the_stride(tmp_path, capsys) -> None:
    from fissure.cli import main

    path = _package_file("nudenet", "320n.onnx")
    cv2.imwrite(str(tmp_path / "a.png"), _scene(300, 300, 1))
    rc = main(["detect", str(path), str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
               "--tile-size", "500", "--input-size", "500", "--backend", "onnxruntime"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.startswith("fissure: error: --input-size 500x500: the model's stride is 32")
    assert "480 or 512" in err


def test_partial_preprocess_keeps_the_model_defaults(tmp_path, capsys) -> None:
    """A dict of some PreprocessConfig settings (the CLI's --mode/--mean/--std/--bgr without
    --input-size) is laid over the defaults: the input size still comes from the model (its
    imgsz, or the tile rounded up to the stride), never the raw tile size."""
    from fissure.cli import main

    path = _package_file("nudenet", "320n.onnx")
    with TiledDetector(path, backend="onnxruntime", tile_size=500,
                       preprocess={"mean": (0.1, 0.2, 0.3), "rgb": False}) as det:
        cfg = det.preprocess
        assert cfg.input_size == (320, 320) and cfg.mode == "letterbox"
        assert cfg.mean == (0.1, 0.2, 0.3) and cfg.rgb is False
    with TiledDetector(_without_imgsz(path), backend="onnxruntime", tile_size=500,
                       preprocess={"mode": "resize"}) as det:
        assert det.preprocess.input_size == (512, 512) and det.preprocess.mode == "resize"
    with pytest.raises(ValueError, match=r"preprocess input_size|stride is 32"):
        TiledDetector(path, backend="onnxruntime", preprocess={"input_size": 500})
    with pytest.raises(ValueError, match=r"unknown settings \['size'\]"):
        TiledDetector(path, backend="onnxruntime", preprocess={"size": 320})
    cv2.imwrite(str(tmp_path / "a.png"), _scene(300, 300, 1))
    rc = main(["detect", str(path), str(tmp_path / "a.png"), "--out",
               str(tmp_path / "o"), "--tile-size", "500", "--mode", "resize", "--backend",
               "onnxruntime", "--quiet", "--no-overlay"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    import json

    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    pre = summary["detector"]["preprocess"]
    assert pre["input_size"] == [320, 320] and pre["mode"] == "resize"


# --- raw YOLOX heads -----------------------------------------------------------------------------


def yolox_demo_postprocess(outputs: np.ndarray, img_size: tuple) -> np.ndarray:
    """YOLOX's demo_postprocess (yolox/utils/demo_utils.py, p6=False), written out."""
    grids, expanded_strides = [], []
    strides = [8, 16, 32]
    hsizes = [img_size[0] // s for s in strides]
    wsizes = [img_size[1] // s for s in strides]
    for hsize, wsize, stride in zip(hsizes, wsizes, strides):
        xv, yv = np.meshgrid(np.arange(wsize), np.arange(hsize))
        grid = np.stack((xv, yv), 2).reshape(1, -1, 2)
        grids.append(grid)
        expanded_strides.append(np.full((*grid.shape[:2], 1), stride))
    grids = np.concatenate(grids, 1)
    expanded_strides = np.concatenate(expanded_strides, 1)
    outputs = outputs.copy()
    outputs[..., :2] = (outputs[..., :2] + grids) * expanded_strides
    outputs[..., 2:4] = np.exp(outputs[..., 2:4]) * expanded_strides
    return outputs


def _yolox_oracle_decode(out: np.ndarray, tile: np.ndarray, conf: float):
    """Per tile: demo_postprocess, score = obj * cls (max over classes), boxes from the
    letterboxed input back to the image, clipped to the tile, score >= conf."""
    p = yolox_demo_postprocess(out, (416, 416))[0]
    s = p[:, 4:5] * p[:, 5:]
    cls = s.argmax(1)
    score = s.max(1)
    x0, y0, x1, y1 = (int(v) for v in tile[0])
    r, px, py = fissure.letterbox_params(y1 - y0, x1 - x0, 416, 416)
    cx, cy, w, h = (p[:, i].astype(np.float64) for i in range(4))
    b = np.stack([(cx - w / 2 - px) / r + x0, (cy - h / 2 - py) / r + y0,
                  (cx + w / 2 - px) / r + x0, (cy + h / 2 - py) / r + y0], 1)
    b[:, [0, 2]] = b[:, [0, 2]].clip(x0, x1)
    b[:, [1, 3]] = b[:, [1, 3]].clip(y0, y1)
    b = b.astype(np.float32)
    keep = (score >= conf) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])

    class D:
        boxes, scores, class_ids = b[keep], score[keep].astype(np.float32), cls[keep]
    return D


def test_yolox_raw_matches_demo_postprocess() -> None:
    path = _package_file("ddddocr", "common_det.onnx")
    image = _scene(900, 1000, 2)
    cfg = PreprocessConfig(input_size=(416, 416), mode="letterbox", scale=1.0, rgb=False)
    with TiledDetector(path, backend="onnxruntime", tile_size=416, decoder="yolox_raw",
                       preprocess=cfg, batch_size=1, conf_threshold=0.3) as det:
        assert det.describe()["decoder"]["kind"] == "yolox_raw"
        dets = det(image)
    ref = _oracle(path.read_bytes(), image, 416, (416, 416), 1.0, False,
                  lambda out, t: _yolox_oracle_decode(out, t, 0.3))
    _assert_same(dets, ref)
    # the boxes are glyph-sized, not the 1-2 px slivers a YOLOv5 read of the raw head gives
    w = dets.boxes[:, 2] - dets.boxes[:, 0]
    assert np.median(w) > 8


def test_yolox_raw_is_never_a_silent_auto_choice() -> None:
    path = _package_file("ddddocr", "common_det.onnx")
    with pytest.raises(ValueError) as e:
        TiledDetector(path, backend="onnxruntime")
    msg = str(e.value)
    assert "'yolov5'" in msg and "'yolox_raw'" in msg
    assert 'decoder="yolox_raw"' in msg and 'decoder="yolov5"' in msg
    with TiledDetector(path, backend="onnxruntime", decoder="yolov5") as det:
        assert det.decoder.kind == "yolov5"  # the user's choice is taken as given
    # the spec alone: auto refuses at any input size whose grid count is the anchor count
    for hw in ((416, 416), (640, 640), (320, 480)):
        n = sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32))
        out = [TensorSpec("output", (1, n, 6), np.float32)]
        with pytest.raises(ValueError, match="yolox_raw"):
            select_decoder(out, input_size=hw)
        assert select_decoder(out, name="yolox_raw", input_size=hw).kind == "yolox_raw"
    # unambiguous: YOLOv5's own anchor count (3 per cell) at its input size
    assert select_decoder([TensorSpec("o", (1, 25200, 85), np.float32)],
                          input_size=(640, 640)).kind == "yolov5"


def test_decode_yolox_raw_exact_and_checked() -> None:
    rng = np.random.default_rng(3)
    raw = rng.normal(0, 0.5, (2, 3549, 7)).astype(np.float32)
    raw[..., 4:] = rng.uniform(0, 1, (2, 3549, 3)).astype(np.float32)
    tiles = np.array([[0, 0, 416, 416], [100, 50, 516, 466]], np.int64)
    d = decode_yolox_raw(raw, tiles, (416, 416), "none", conf_threshold=0.5)
    p = yolox_demo_postprocess(raw, (416, 416))
    s = p[..., 4:5] * p[..., 5:]
    ti, ai = np.nonzero(s.max(2) >= 0.5)
    assert len(d) > 0
    ref = []
    for t, a in zip(ti, ai):
        cx, cy, w, h = (float(v) for v in p[t, a, :4])
        x0, y0 = tiles[t, :2]
        b = np.clip([cx - w / 2 + x0, cy - h / 2 + y0, cx + w / 2 + x0, cy + h / 2 + y0],
                    [x0, y0, x0, y0], [x0 + 416, y0 + 416, x0 + 416, y0 + 416])
        ref.append(b)
    ref = np.array(ref, np.float32)
    keep = (ref[:, 2] > ref[:, 0]) & (ref[:, 3] > ref[:, 1])
    np.testing.assert_allclose(d.boxes, ref[keep], atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="has 2100 anchors .*got 3549"):
        decode_yolox_raw(raw, tiles, (320, 320), "none")
