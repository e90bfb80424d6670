"""Decoders reject bad input with ValueError naming what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest
from fissure.detection.decoders import (
    decode_detr,
    decode_end_to_end,
    decode_probability_map,
    decode_yolo,
    decode_yolo_seg,
    decode_yolov5,
    decode_yolov5_seg,
)

TILES1 = np.array([[0, 0, 64, 64]], np.int64)


def test_probability_map_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"maps: expected shape \(B, 1, H, W\)"):
        decode_probability_map(np.zeros((1, 2, 8, 8), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"maps: expected shape"):
        decode_probability_map(np.zeros((8, 8), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"maps: expected shape"):
        decode_probability_map(np.zeros((1, 0, 8), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match="floating-point"):
        decode_probability_map(np.zeros((1, 8, 8), np.uint8), TILES1, 64)
    with pytest.raises(ValueError, match="min_area"):
        decode_probability_map(np.zeros((1, 8, 8), np.float32), TILES1, 64, min_area=-1)
    # float64 and float16 are converted
    m = np.zeros((1, 8, 8), np.float64)
    m[0, 2:4, 2:4] = 1
    assert len(decode_probability_map(m, TILES1, 8, "resize")) == 1
    assert len(decode_probability_map(m.astype(np.float16), TILES1, 8, "resize")) == 1


@pytest.mark.parametrize("fn,out", [
    (decode_probability_map, np.zeros((2, 8, 8), np.float32)),
    (decode_yolo, np.zeros((2, 6, 10), np.float32)),
    (decode_end_to_end, np.zeros((2, 5, 6), np.float32)),
    (decode_yolov5, np.zeros((2, 10, 7), np.float32)),
])
def test_tile_count_mismatch(fn, out):
    with pytest.raises(ValueError, match=r"one tile per batch item \(2 .*got 1"):
        fn(out, TILES1, 64)


@pytest.mark.parametrize("fn,out", [
    (decode_probability_map, np.zeros((1, 8, 8), np.float32)),
    (decode_yolo, np.zeros((1, 6, 10), np.float32)),
    (decode_end_to_end, np.zeros((1, 5, 6), np.float32)),
    (decode_yolov5, np.zeros((1, 10, 7), np.float32)),
])
def test_nan_raises_and_bad_geometry(fn, out):
    bad = out.copy()
    bad.flat[3] = np.nan
    with pytest.raises(ValueError, match="expected no NaN"):
        fn(bad, TILES1, 64)
    with pytest.raises(ValueError, match="mode: expected one of"):
        fn(out, TILES1, 64, "stretch")
    with pytest.raises(ValueError, match="input_size"):
        fn(out, TILES1, (0, 64))
    with pytest.raises(ValueError, match="input_size"):
        fn(out, TILES1, (64, 64, 3))
    with pytest.raises(ValueError, match=r"tiles: expected x1 > x0"):
        fn(out, np.array([[10, 0, 10, 64]]), 64)
    with pytest.raises(ValueError, match=r"tiles: expected shape \(T, 4\)"):
        fn(out, np.array([0, 0, 64, 64]), 64)
    with pytest.raises(ValueError, match="integer pixel"):
        fn(out, np.array([[0, 0, 64.5, 64]]), 64)
    with pytest.raises(ValueError, match="mode 'none' expects every tile"):
        fn(out, np.array([[0, 0, 32, 64]]), 64, "none")
    with pytest.raises(ValueError, match="floating-point"):
        fn(out.astype(np.int32), TILES1, 64)


def test_yolo_layouts():
    with pytest.raises(ValueError, match="ambiguous"):
        decode_yolo(np.zeros((1, 8, 8), np.float32), TILES1, 64)
    d = decode_yolo(np.zeros((1, 8, 8), np.float32), TILES1, 64, layout="channels_last")
    assert len(d) == 0
    with pytest.raises(ValueError, match="layout"):
        decode_yolo(np.zeros((1, 6, 8), np.float32), TILES1, 64, layout="nchw")
    with pytest.raises(ValueError, match="at least one class score"):
        decode_yolo(np.zeros((1, 4, 8), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"expected shape \(B, 4 \+ C, N\)"):
        decode_yolo(np.zeros((6, 8), np.float32), TILES1, 64)


def test_other_shapes():
    with pytest.raises(ValueError, match=r"expected shape \(B, K, 6\), got \(1, 5, 7\)"):
        decode_end_to_end(np.zeros((1, 5, 7), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"expected shape \(B, N, 5 \+ C\)"):
        decode_yolov5(np.zeros((1, 5, 5), np.float32), TILES1, 64)
    out = np.zeros((1, 1, 6), np.float32)
    out[0, 0] = [1, 1, 5, 5, 0.9, -1]
    with pytest.raises(ValueError, match="not a valid class id"):
        decode_end_to_end(out, TILES1, 64)


def test_conf_threshold_type():
    with pytest.raises(ValueError, match="conf_threshold"):
        decode_yolo(np.zeros((1, 6, 10), np.float32), TILES1, 64, conf_threshold=float("nan"))
    with pytest.raises(ValueError, match="conf_threshold"):
        decode_yolo(np.zeros((1, 6, 10), np.float32), TILES1, 64, conf_threshold="0.5")


# --------------------------------------------------------------------------------------------
# Segmentation and DETR decoders
# --------------------------------------------------------------------------------------------

SEG = np.zeros((1, 4 + 2 + 3, 40), np.float32)  # 2 classes, 3 mask coefficients
PROTOS = np.zeros((1, 3, 16, 16), np.float32)
V5SEG = np.zeros((1, 40, 5 + 2 + 3), np.float32)
DBOX = np.full((1, 5, 4), 0.5, np.float32)
DLOG = np.zeros((1, 5, 3), np.float32)
DMASK = np.zeros((1, 5, 8, 8), np.float32)


def test_seg_proto_channels_and_shapes():
    with pytest.raises(ValueError, match=r"4 \+ C \+ M .*M = 6 .*got 9"):
        decode_yolo_seg(SEG, np.zeros((1, 6, 16, 16), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"5 \+ C \+ M\) with C >= 1 and M = 5"):
        decode_yolov5_seg(V5SEG, np.zeros((1, 5, 16, 16), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"protos: expected shape \(B, M, mh, mw\)"):
        decode_yolo_seg(SEG, np.zeros((1, 3, 16), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"protos: expected shape \(B, M, mh, mw\)"):
        decode_yolo_seg(SEG, np.zeros((1, 3, 0, 16), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"protos: expected the output's batch size 1"):
        decode_yolo_seg(SEG, np.zeros((2, 3, 16, 16), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"protos: expected the output's batch size 1"):
        decode_yolov5_seg(V5SEG, np.zeros((2, 3, 16, 16), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match="protos: expected a floating-point"):
        decode_yolo_seg(SEG, PROTOS.astype(np.int8), TILES1, 64)
    with pytest.raises(ValueError, match=r"output: expected shape \(B, 4 \+ C \+ M, N\)"):
        decode_yolo_seg(SEG[0], PROTOS, TILES1, 64)
    with pytest.raises(ValueError, match="layout"):
        decode_yolo_seg(SEG, PROTOS, TILES1, 64, layout="chw")


@pytest.mark.parametrize("fn,out", [(decode_yolo_seg, SEG), (decode_yolov5_seg, V5SEG)])
def test_seg_nan_and_geometry(fn, out):
    bad = out.copy()
    bad.flat[7] = np.nan
    with pytest.raises(ValueError, match="output: expected no NaN"):
        fn(bad, PROTOS, TILES1, 64)
    badp = PROTOS.copy()
    badp[0, 2, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"protos: expected no NaN, got NaN at index \(0, 2, 3, 4\)"):
        fn(out, badp, TILES1, 64)
    with pytest.raises(ValueError, match=r"one tile per batch item \(1 .*got 2"):
        fn(out, PROTOS, np.array([[0, 0, 64, 64]] * 2), 64)
    with pytest.raises(ValueError, match="mode: expected one of"):
        fn(out, PROTOS, TILES1, 64, "crop")
    with pytest.raises(ValueError, match="conf_threshold"):
        fn(out, PROTOS, TILES1, 64, conf_threshold=None)


def test_detr_errors():
    with pytest.raises(ValueError, match=r"boxes: expected shape \(B, Q, 4\), got \(1, 5, 3\)"):
        decode_detr(DLOG, DLOG, TILES1, 64)
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, Q, C\) = \(1, 5, C\)"):
        decode_detr(DBOX, np.zeros((1, 4, 3), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"logits: expected shape"):
        decode_detr(DBOX, np.zeros((2, 5, 3), np.float32), TILES1, 64)
    with pytest.raises(ValueError, match=r"mask_logits: expected shape \(B, Q, mh, mw\)"):
        decode_detr(DBOX, DLOG, TILES1, 64, mask_logits=np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"mask_logits: expected shape"):
        decode_detr(DBOX, DLOG, TILES1, 64, mask_logits=np.zeros((1, 5, 8), np.float32))
    with pytest.raises(ValueError, match="score: expected 'sigmoid' or 'softmax'"):
        decode_detr(DBOX, DLOG, TILES1, 64, score="relu")
    with pytest.raises(ValueError, match="C >= 2"):
        decode_detr(DBOX, DLOG[..., :1], TILES1, 64, score="softmax")
    inf = DLOG.copy()
    inf[0, 1, 2] = np.inf
    with pytest.raises(ValueError, match="finite logits"):
        decode_detr(DBOX, inf, TILES1, 64, score="softmax")
    assert len(decode_detr(DBOX, inf, TILES1, 64, conf_threshold=0.9)) == 1  # sigmoid(inf) = 1
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="top_k"):
            decode_detr(DBOX, DLOG, TILES1, 64, top_k=k)
    for arr, name in [(DBOX, "boxes"), (DLOG, "logits"), (DMASK, "mask_logits")]:
        bad = arr.copy()
        bad.flat[2] = np.nan
        args = {"boxes": DBOX, "logits": DLOG, "mask_logits": DMASK}
        args[name] = bad
        with pytest.raises(ValueError, match=f"{name}: expected no NaN"):
            decode_detr(args["boxes"], args["logits"], TILES1, 64,
                        mask_logits=args["mask_logits"])
    with pytest.raises(ValueError, match=r"one tile per batch item \(1 .*got 2"):
        decode_detr(DBOX, DLOG, np.array([[0, 0, 64, 64]] * 2), 64)
    with pytest.raises(ValueError, match="floating-point"):
        decode_detr(DBOX, DLOG.astype(np.int64), TILES1, 64)
