"""The decoders of the exported layouts beyond YOLO: Ultralytics RT-DETR, D-FINE / DEIM deploy
outputs, PaddleDetection with the NMS in the graph and without it. Each against a plain numpy
reference written from the family's own post-processing (Ultralytics' RTDETRPredictor,
D-FINE's PostProcessor, PaddleDetection's multiclass_nms output) and the documented geometry
of docs/decoders.md."""

from __future__ import annotations

import numpy as np
import pytest

from fissure.detection.decoders import (decode_dfine, decode_paddle_nms, decode_paddle_raw,
                                        decode_rtdetr)
from test_decoders import _tiles, _to_image

SIZE = (96, 128)  # (h, w)


def _ref(model_xyxy, scores, classes, tiles, mode, conf):
    """Per batch item and row: model-pixel boxes -> clipped image boxes, score >= conf."""
    boxes, sc, cl, ti = [], [], [], []
    for t in range(len(tiles)):
        f, keep = _to_image(model_xyxy[t], tiles[t], SIZE, mode)
        ok = keep & (scores[t] >= np.float32(conf))
        boxes.append(f[ok]), sc.append(scores[t][ok]), cl.append(classes[t][ok])
        ti.append(np.full(int(ok.sum()), t))
    return (np.concatenate(boxes), np.concatenate(sc).astype(np.float32),
            np.concatenate(cl).astype(np.int64), np.concatenate(ti))


def _same(got, ref):
    boxes, scores, classes, tile_index = ref
    assert len(got) == len(scores) > 0
    np.testing.assert_allclose(got.boxes, boxes, atol=1e-3, rtol=0)
    np.testing.assert_array_equal(got.scores, scores)
    np.testing.assert_array_equal(got.class_ids, classes)
    np.testing.assert_array_equal(got.tile_index, tile_index)


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_rtdetr_matches_ultralytics_postprocess(mode):
    rng = np.random.default_rng(1)
    b, q, c = 3, 50, 4
    out = np.empty((b, q, 4 + c), np.float32)
    out[..., :2] = rng.uniform(0, 1, (b, q, 2))
    out[..., 2:4] = rng.uniform(0.01, 0.5, (b, q, 2))
    out[..., 4:] = rng.random((b, q, c))
    tiles = _tiles(rng, b, SIZE)
    # RTDETRPredictor.postprocess: xywh2xyxy on the normalised boxes (float32), max / argmax
    # over classes, then x * input w, y * input h
    xy, wh = out[..., :2], out[..., 2:4] / np.float32(2)
    xyxy = np.concatenate([xy - wh, xy + wh], -1) * np.array([128, 96, 128, 96], np.float32)
    ref = _ref(xyxy, out[..., 4:].max(-1), out[..., 4:].argmax(-1), tiles, mode, 0.4)
    _same(decode_rtdetr(out, tiles, SIZE, mode, conf_threshold=0.4), ref)
    with pytest.raises(ValueError, match=r"\(B, Q, 4 \+ C\)"):
        decode_rtdetr(out[..., :4], tiles, SIZE)
    out[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        decode_rtdetr(out, tiles, SIZE)


def test_dfine_matches_postprocessor():
    rng = np.random.default_rng(2)
    b, q, c = 2, 60, 3
    # D-FINE's PostProcessor: sigmoid, top-k over Q * C, labels = index % C, boxes gathered
    # from cxcywh * [w, h, w, h] of orig_target_sizes (here the model input)
    logits = rng.normal(size=(b, q, c)).astype(np.float32)
    cxcywh = np.concatenate([rng.uniform(0, 1, (b, q, 2)), rng.uniform(0.02, 0.4, (b, q, 2))],
                            -1).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    flat = p.reshape(b, -1)
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :q]
    scores = np.take_along_axis(flat, idx, 1).astype(np.float32)
    labels = (idx % c).astype(np.int64)
    qi = idx // c
    xyxy = np.concatenate([cxcywh[..., :2] - cxcywh[..., 2:] / 2,
                           cxcywh[..., :2] + cxcywh[..., 2:] / 2], -1)
    boxes = (np.take_along_axis(xyxy, qi[..., None], 1)
             * np.array([128, 96, 128, 96], np.float32)).astype(np.float32)
    tiles = _tiles(rng, b, SIZE)
    ref = _ref(boxes, scores, labels, tiles, "resize", 0.6)
    _same(decode_dfine(labels, boxes, scores, tiles, SIZE, conf_threshold=0.6), ref)
    with pytest.raises(ValueError, match="labels: expected shape"):
        decode_dfine(labels[:, :5], boxes, scores, tiles, SIZE)
    with pytest.raises(ValueError, match="scores: expected shape"):
        decode_dfine(labels, boxes, scores[:, :5], tiles, SIZE)


def _paddle_rows(rng, counts, c):
    rows = []
    for n in counts:
        x1 = rng.uniform(-5, 120, n)
        y1 = rng.uniform(-5, 90, n)
        r = np.stack([rng.integers(0, c, n), rng.random(n), x1, y1,
                      x1 + rng.uniform(1, 40, n), y1 + rng.uniform(1, 40, n)], 1)
        rows.append(r.astype(np.float32))
    return rows


def test_paddle_nms_rows_per_image():
    rng = np.random.default_rng(3)
    counts = [5, 0, 7]
    parts = _paddle_rows(rng, counts, 3)
    rows = np.concatenate(parts)
    tiles = _tiles(rng, 3, SIZE)
    ref_boxes = [p[:, 2:6] for p in parts]
    ref = _ref(ref_boxes, [p[:, 1] for p in parts], [p[:, 0].astype(np.int64) for p in parts],
               tiles, "resize", 0.2)
    got = decode_paddle_nms(rows, np.array(counts, np.int32), tiles, SIZE, conf_threshold=0.2)
    _same(got, ref)
    # Paddle's placeholder row for an image without detections (class -1) is skipped
    dummy = np.array([[-1, 1.0, 0, 0, 0, 0]], np.float32)
    rows2 = np.concatenate([parts[0], dummy, parts[2]])
    got2 = decode_paddle_nms(rows2, np.array([5, 1, 7], np.int32), tiles, SIZE,
                             conf_threshold=0.2)
    _same(got2, ref)
    with pytest.raises(ValueError, match="counts: expected non-negative counts"):
        decode_paddle_nms(rows, np.array([5, 0, 99], np.int32), tiles, SIZE)
    with pytest.raises(ValueError, match=r"rows: expected shape \(N, 6\)"):
        decode_paddle_nms(rows[:, :5], np.array(counts, np.int32), tiles, SIZE)
    with pytest.raises(ValueError, match="counts: expected a"):
        decode_paddle_nms(rows, np.array(counts, np.float32), tiles, SIZE)


def test_paddle_raw_max_class_per_candidate():
    rng = np.random.default_rng(4)
    b, n, c = 2, 80, 3
    x1 = rng.uniform(-5, 120, (b, n))
    y1 = rng.uniform(-5, 90, (b, n))
    boxes = np.stack([x1, y1, x1 + rng.uniform(1, 40, (b, n)), y1 + rng.uniform(1, 40, (b, n))],
                     -1).astype(np.float32)
    scores = rng.random((b, c, n)).astype(np.float32)
    tiles = _tiles(rng, b, SIZE)
    ref = _ref(boxes, scores.max(1), scores.argmax(1), tiles, "resize", 0.7)
    _same(decode_paddle_raw(boxes, scores, tiles, SIZE, conf_threshold=0.7), ref)
    with pytest.raises(ValueError, match=r"scores: expected shape \(B, C, N\)"):
        decode_paddle_raw(boxes, scores.transpose(0, 2, 1), tiles, SIZE)
