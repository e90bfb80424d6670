"""Decoders reject bad input with ValueError naming what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest
from fissure.decoders import (
    decode_end_to_end,
    decode_probability_map,
    decode_yolo,
    decode_yolov5,
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
