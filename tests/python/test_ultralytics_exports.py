"""Real Ultralytics exports (built by models/build_ultralytics.py with Ultralytics' own export,
tiny widths, untrained weights: the real graphs and output layouts) in tests/data/models/,
each with the library's own post-processing of one reference input as the oracle:

- YOLO26 end-to-end detection (dynamic input) and segmentation, YOLOv10 end-to-end detection,
  RT-DETR (Ultralytics >= 8.4.47: (B, K, 6) normalised cx, cy, w, h, score, class), a YOLO11-seg
  exported with ``nms=True``;
- per file: ONNX Runtime reproduces the export's raw outputs; fissure's decoder (chosen by
  ``decoder="auto"`` from the shapes and the metadata) on the reference input equals the
  library's ``dets`` (and its masks, IoU >= 0.99); TiledDetector takes names, input size and
  mode from the file alone; and the tiled output on a large mosaic equals an independent
  per-tile loop (SAHI's slicing, an OpenCV letterbox / stretch, ONNX Runtime, the family's own
  decode written in numpy, SAHI's GreedyNMMPostprocess).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from fissure import TiledDetector
from fissure.backends import ModelMetadata, open_model
from fissure.detection.decoders import select_decoder

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sahi")
from oracles.tiled_loop import assert_same_detections, tiled_loop  # noqa: E402
from test_preprocess import ultralytics_letterbox  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "models"
# name -> (decoder kind, preprocessing mode of the family)
MODELS = {
    "yolo26_det": ("end_to_end", "letterbox"),
    "yolo26_seg": ("end_to_end_seg", "letterbox"),
    "yolov10_det": ("end_to_end", "letterbox"),
    "rtdetr_det": ("rtdetr", "resize"),
    "yolo11_seg_nms": ("end_to_end_seg", "letterbox"),
}
NAMES = {0: "crack", 1: "scratch", 2: "stain"}


def _ref(name: str) -> dict:
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _outputs(ref: dict) -> dict:
    return {str(n): ref[f"out_{i}"] for i, n in enumerate(ref["out_names"])}


@pytest.mark.parametrize("name", MODELS)
def test_runtime_reproduces_the_export(name: str) -> None:
    ref = _ref(name)
    sess = ort.InferenceSession(str(DATA / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: ref["input"]})
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, ref[f"out_{i}"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_decoder_equals_the_library_postprocess(name: str) -> None:
    """One tile that is the reference input itself (mode "none"): the boxes, scores, classes
    (and masks) fissure decodes equal Ultralytics' own post-processing of the same outputs."""
    ref = _ref(name)
    kind, _ = MODELS[name]
    h, w = ref["input"].shape[2:]
    with open_model(DATA / f"{name}.onnx", "onnxruntime") as m:
        meta = m.spec.model_metadata
        spec = select_decoder(m.outputs, input_size=(h, w), metadata=meta)
    assert spec.kind == kind
    conf = float(ref["conf"])
    d = spec.decode(_outputs(ref), np.array([[0, 0, w, h]]), input_size=(h, w), mode="none",
                    conf_threshold=conf, image_shape=(h, w))
    # Ultralytics' rows, clipped to the input and without the zero-area ones fissure drops
    dets = ref["dets"].astype(np.float64)
    lib = dets.copy()
    lib[:, [0, 2]] = lib[:, [0, 2]].clip(0, w)
    lib[:, [1, 3]] = lib[:, [1, 3]].clip(0, h)
    lib = lib.astype(np.float32)
    keep = (lib[:, 2] > lib[:, 0]) & (lib[:, 3] > lib[:, 1]) & (dets[:, 4] > conf)
    assert keep.sum() >= 3, "the reference should hold detections"
    assert len(d) == int(keep.sum())
    np.testing.assert_allclose(d.boxes, lib[keep, :4], atol=1e-3, rtol=0)
    np.testing.assert_array_equal(d.scores, lib[keep, 4])
    np.testing.assert_array_equal(d.class_ids, lib[keep, 5].astype(np.int64))
    if "masks" in ref:
        assert d.masks is not None
        full = d.masks.to_full((h, w))
        for i, j in enumerate(np.flatnonzero(keep)):
            # fissure stores the box's region; Ultralytics' mask is cropped to the box too
            x0, y0, rw, rh = (int(v) for v in d.masks.regions[i])
            region = np.zeros((h, w), bool)
            region[max(y0, 0):y0 + rh, max(x0, 0):x0 + rw] = True
            theirs = ref["masks"][j] & region
            inter = (full[i] & theirs).sum()
            union = (full[i] | theirs).sum()
            assert union == 0 or inter / union >= 0.99, (i, inter, union)


@pytest.mark.parametrize("name", MODELS)
def test_detector_configures_itself_from_the_file(name: str) -> None:
    kind, mode = MODELS[name]
    with TiledDetector(DATA / f"{name}.onnx", backend="onnxruntime") as det:
        d = det.describe()
    assert d["decoder"]["kind"] == kind and d["preprocess"]["mode"] == mode
    assert d["preprocess"]["input_size"] == [320, 320] and d["stride"] == 32
    assert det.class_names == NAMES and d["class_names_source"] == "model metadata"
    if kind == "rtdetr":
        assert d["decoder"]["layout"] == "ranked"


def test_rtdetr_metadata_decides_its_six_values() -> None:
    """RT-DETR's (B, K, 6) rows have end_to_end's shape: without the metadata's head they would
    be read as pixel xyxy (the reason the metadata decides), and an export from before
    Ultralytics 8.4.47 with six values is a 2-class (B, 300, 4 + C)."""
    with open_model(DATA / "rtdetr_det.onnx", "onnxruntime") as m:
        outs, meta = m.outputs, m.spec.model_metadata
    assert meta.head == "RTDETRDecoder" and meta.version is not None
    assert select_decoder(outs).kind == "end_to_end"
    assert select_decoder(outs, metadata=meta).layout == "ranked"
    old = ModelMetadata(head="RTDETRDecoder", version=(8, 3, 40))
    assert select_decoder(outs, metadata=old).layout == "classes"


# --- tiled, against an independent loop ----------------------------------------------------------


def mosaic(h: int, w: int) -> np.ndarray:
    """scikit-image pictures tiled (and flipped) into an h x w BGR image."""
    data = pytest.importorskip("skimage.data")
    pics = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = np.zeros((h, w, 3), np.uint8)
    y, i = 0, 0
    while y < h:
        x, row_h = 0, 0
        while x < w:
            p = pics[i % len(pics)][:, :, ::-1]
            p = p[::-1] if (i // 4) % 2 else p
            ph, pw = min(p.shape[0], h - y), min(p.shape[1], w - x)
            out[y:y + ph, x:x + pw] = p[:ph, :pw]
            x += pw
            row_h = max(row_h, ph)
            i += 1
        y += row_h
    return out


def _family_tile(name: str, sess, conf: float):
    """run_tile for the oracle: the family's own preprocessing and decode, boxes in tile px."""
    kind, mode = MODELS[name]

    def run(crop):
        th, tw = crop.shape[:2]
        if mode == "letterbox":
            x = ultralytics_letterbox(crop, (320, 320), 114, cv2.INTER_LINEAR)
        else:  # RT-DETR: LetterBox(scale_fill=True), a plain stretch
            x = cv2.resize(crop, (320, 320), interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray((x[:, :, ::-1].astype(np.float32) * np.float32(1 / 255))
                                 .transpose(2, 0, 1)[None])
        rows = sess.run(None, {"images": x})[0][0].astype(np.float32)
        keep = rows[:, 4] >= np.float32(conf)
        rows = rows[keep]
        if kind == "rtdetr":  # xywh2xyxy on normalised values, times the tile size
            xy, half = rows[:, :2], rows[:, 2:4] / np.float32(2)
            b = np.concatenate([xy - half, xy + half], 1).astype(np.float64) * [tw, th, tw, th]
        else:  # x1, y1, x2, y2 in the letterboxed input: undo Ultralytics' letterbox
            r = min(320 / th, 320 / tw)
            pw, ph = (320 - round(tw * r)) / 2, (320 - round(th * r)) / 2
            b = (rows[:, :4].astype(np.float64) - [pw, ph, pw, ph]) / r
        return b, rows[:, 4], rows[:, 5].astype(np.int64)
    return run


@pytest.mark.parametrize("name", ["yolo26_det", "yolo26_seg", "rtdetr_det"])
def test_tiled_equals_the_independent_loop(name: str) -> None:
    image = mosaic(3000, 4000)  # 12 MP
    conf = float(_ref(name)["conf"])
    sess = ort.InferenceSession(str(DATA / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    # The untrained RT-DETR answers with its anchor boxes, on an 8-px grid: many pairs overlap
    # by exactly half (IOS = 0.5), where the last bit of either side's arithmetic decides a
    # merge; 0.55 keeps the comparison off those ties.
    thr = 0.55 if name == "rtdetr_det" else 0.5
    ref = tiled_loop(image, 640, 0.2, _family_tile(name, sess, conf), match_threshold=thr)
    with TiledDetector(DATA / f"{name}.onnx", backend="onnxruntime", conf_threshold=conf,
                       match_threshold=thr,
                       decoder_options={"masks": False} if "seg" in name else None) as det:
        dets = det(image)
    assert_same_detections(dets, ref)


def test_cli_needs_only_the_model(tmp_path) -> None:
    """fissure detect on an Ultralytics export: no flags but the model, the image and --out."""
    from fissure.cli import main

    cv2.imwrite(str(tmp_path / "a.png"), mosaic(900, 1200))
    rc = main(["detect", str(DATA / "yolo26_det.onnx"), str(tmp_path / "a.png"), "--out",
               str(tmp_path / "o"), "--quiet", "--conf-threshold", "0.5"])
    assert rc == 0
    d = json.loads((tmp_path / "o" / "summary.json").read_text())["detector"]
    assert d["decoder"]["kind"] == "end_to_end" and d["preprocess"]["input_size"] == [320, 320]
    assert d["class_names"] == {"0": "crack", "1": "scratch", "2": "stain"}


def test_rfdetr_export_decodes_as_its_postprocess() -> None:
    """RF-DETR Nano exported by rfdetr's own export (its ONNX is 107 MB, not shipped: the .npz
    holds the raw outputs ``dets`` (1, 300, 4) and ``labels`` (1, 300, C + 1) and rfdetr's own
    postprocess + threshold). select_decoder reads the layout; decode_detr with RF-DETR's
    top-k over (query, class) equals its detections."""
    from fissure.backends import TensorSpec

    ref = _ref("rfdetr_det")
    outs = [TensorSpec(str(n), tuple(ref[f"out_{i}"].shape), np.float32)
            for i, n in enumerate(ref["out_names"])]
    spec = select_decoder(outs)
    assert spec.kind == "detr" and spec.output_names == {"boxes": "dets", "logits": "labels"}
    conf = float(ref["conf"])
    d = spec.decode({str(n): ref[f"out_{i}"] for i, n in enumerate(ref["out_names"])},
                    np.array([[0, 0, 384, 384]]), input_size=384, mode="none",
                    conf_threshold=conf, top_k=300)
    lib = ref["dets"]
    keep = (lib[:, 2] > lib[:, 0]) & (lib[:, 3] > lib[:, 1]) & (lib[:, 4] > conf)
    assert len(d) == int(keep.sum()) >= 5
    np.testing.assert_allclose(d.boxes, lib[keep, :4], atol=1e-3, rtol=0)
    np.testing.assert_allclose(d.scores, lib[keep, 4], rtol=1e-6, atol=0)
    np.testing.assert_array_equal(d.class_ids, lib[keep, 5].astype(np.int64))


def test_auto_backend_falls_back_when_openvino_cannot_compile(tmp_path, capsys) -> None:
    """OpenVINO cannot compile the YOLO26-seg export (its GatherElements takes indices smaller
    than the data, as ONNX allows); backend="auto" then runs it on ONNX Runtime and says so."""
    pytest.importorskip("openvino")
    from fissure.backends import choose, probe
    from fissure.cli import main

    if choose(probe(), "onnx", "auto").backend != "openvino":
        pytest.skip("backend='auto' picks ONNX Runtime on this machine")
    with pytest.warns(RuntimeWarning, match="OpenVINO could not compile yolo26_seg.onnx .*"
                                            "ONNX Runtime"):
        det = TiledDetector(DATA / "yolo26_seg.onnx")
    with det:
        assert det.describe()["backend"] == "onnxruntime"
    with pytest.raises(ValueError, match="openvino could not compile"):
        TiledDetector(DATA / "yolo26_seg.onnx", backend="openvino")
    cv2.imwrite(str(tmp_path / "a.png"), mosaic(400, 500))
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as outside pytest: shown, not raised
        rc = main(["detect", str(DATA / "yolo26_seg.onnx"), str(tmp_path / "a.png"), "--out",
                   str(tmp_path / "o"), "--quiet", "--no-overlay"])
    err = capsys.readouterr().err
    assert rc == 0 and err.startswith("fissure: warning: backend='auto': OpenVINO could not")
    assert "Traceback" not in err and err.count("\n") == 1
