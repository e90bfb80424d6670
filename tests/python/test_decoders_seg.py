"""Segmentation (YOLOv8/11-seg, YOLOv5-seg) and DETR-style decoders against plain numpy + cv2
references of the documented semantics (Ultralytics' process_mask(upsample=True), RF-DETR's
postprocess)."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure.detection.decoders import decode_detr, decode_yolo_seg, decode_yolov5_seg

cv2 = pytest.importorskip("cv2")
from test_decoders import _to_image, _transform  # noqa: E402  (the box decoders' reference geometry)

# Mask bits are compared exactly wherever the reference's upsampled logit is farther than this
# from 0 (or exactly 0, where the crop zeroed every tap); closer than that, float32 summation
# order (BLAS vs a plain loop) may flip a bit.
EPS = 1e-4


# --------------------------------------------------------------------------------------------
# Reference geometry (the rules of docs/decoders.md, written out with numpy; box geometry from
# test_decoders)
# --------------------------------------------------------------------------------------------


def _sample_region(up, img_box, tile, input_size, mode):
    """Values of an input-size map `up` at the centres of the image pixels of img_box's region;
    NaN where the centre falls outside the input."""
    rx, ry, px, py = _transform(tile, input_size, mode)
    x0, y0, w, h = (int(v) for v in fissure.regions_from_boxes(img_box[None])[0])
    ix = np.floor((x0 + np.arange(w) + 0.5 - tile[0]) * rx + px).astype(np.int64)
    iy = np.floor((y0 + np.arange(h) + 0.5 - tile[1]) * ry + py).astype(np.int64)
    ih, iw = input_size
    okx, oky = (ix >= 0) & (ix < iw), (iy >= 0) & (iy < ih)
    vals = np.full((h, w), np.nan, np.float64)
    vals[np.ix_(oky, okx)] = up[np.ix_(iy[oky], ix[okx])]
    return (x0, y0, w, h), vals


def _check_mask(got, i, region, vals):
    """Mask i of got equals (vals > 0) (0 where NaN), except where |vals| < EPS."""
    assert tuple(int(v) for v in got.masks.regions[i]) == region
    _x0, _y0, w, h = region
    bm = got.masks.data[got.masks.offsets[i]:got.masks.offsets[i + 1]].reshape(h, w)
    expect = np.where(np.isnan(vals), 0, vals > 0).astype(np.uint8)
    sure = np.isnan(vals) | (vals == 0) | (np.abs(vals) >= EPS)
    np.testing.assert_array_equal(bm[sure], expect[sure])
    return int((~sure).sum())


def _tiles(rng, b, size):
    out = []
    for _ in range(b):
        th = int(rng.integers(size[0] // 2, size[0] * 2))
        tw = int(rng.integers(size[1] // 2, size[1] * 2))
        x0, y0 = int(rng.integers(0, 500)), int(rng.integers(0, 500))
        out.append([x0, y0, x0 + tw, y0 + th])
    return np.array(out, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# YOLO segmentation
# --------------------------------------------------------------------------------------------


def _ref_process_mask(coeff, protos, box_model, input_size, crop="input"):
    """Ultralytics process_mask(upsample=True) for one detection, as float logits at input size
    (the caller thresholds at 0). crop="input" (Ultralytics >= 8.4.100): bilinear upsample of
    the logits, zero outside the input pixels x1 <= i < x2; crop="proto" (earlier): zero
    outside the box at proto resolution, then the bilinear upsample."""
    m, mh, mw = protos.shape
    ih, iw = input_size
    logits = (coeff.astype(np.float64) @ protos.reshape(m, -1).astype(np.float64))
    logits = logits.reshape(mh, mw).astype(np.float32)
    x1, y1, x2, y2 = (np.float32(v) for v in box_model)
    if crop == "input":
        up = cv2.resize(logits, (iw, ih), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        r = np.arange(iw, dtype=np.float32)
        c = np.arange(ih, dtype=np.float32)
        keep = ((c >= y1) & (c < y2))[:, None] & ((r >= x1) & (r < x2))[None, :]
        return np.where(keep, up, 0.0)
    rw, rh = np.float32(mw / iw), np.float32(mh / ih)
    r = np.arange(mw, dtype=np.float32)
    c = np.arange(mh, dtype=np.float32)
    keep = ((c >= y1 * rh) & (c < y2 * rh))[:, None] & ((r >= x1 * rw) & (r < x2 * rw))[None, :]
    cropped = np.where(keep, logits, np.float32(0)).astype(np.float32)
    return cv2.resize(cropped, (iw, ih), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def _ref_yolo_seg(out_cf, protos, tiles, input_size, mode, conf, v5=False, crop="proto",
                  drop_empty=False):
    """out_cf: (B, V, N) with V = 4 [+1 objectness] + C + M (channels first)."""
    m = protos.shape[1]
    dets = []
    for t in range(out_cf.shape[0]):
        o = out_cf[t]
        head = 5 if v5 else 4
        cls = o[head:o.shape[0] - m]
        if v5:
            cls = o[4][None] * cls
        s, a = cls.max(axis=0), cls.argmax(axis=0)
        cx, cy, w, h = o[0], o[1], o[2], o[3]
        hw, hh = w * np.float32(0.5), h * np.float32(0.5)
        model = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], 1).astype(np.float32)
        for i in np.flatnonzero(s >= np.float32(conf)):
            f, keep = _to_image(model[i].astype(np.float64), tiles[t], input_size, mode)
            if not keep[0]:
                continue
            up = _ref_process_mask(o[o.shape[0] - m:, i], protos[t], model[i], input_size, crop)
            if drop_empty and not (up > 0).any():
                continue
            region, vals = _sample_region(up, f[0], tiles[t], input_size, mode)
            dets.append((f[0], s[i], int(a[i]), t, region, vals))
    return dets


def _assert_dets(got, dets):
    assert len(got) == len(dets)
    if not dets:
        return
    np.testing.assert_array_equal(got.boxes, np.array([d[0] for d in dets], np.float32))
    np.testing.assert_array_equal(got.scores, np.array([d[1] for d in dets], np.float32))
    np.testing.assert_array_equal(got.class_ids, [d[2] for d in dets])
    np.testing.assert_array_equal(got.tile_index, [d[3] for d in dets])
    assert got.masks is not None and len(got.masks.regions) == len(got)
    unsure = sum(_check_mask(got, i, d[4], d[5]) for i, d in enumerate(dets))
    total = int(got.masks.data.size)
    assert unsure <= max(8, total // 1000)
    assert got.masks.data.sum() > 0  # the test exercises set pixels


def _random_seg(rng, b, c, m, n, input_size, head=4):
    ih, iw = input_size
    out = np.empty((b, head + c + m, n), np.float32)
    out[:, 0] = rng.uniform(-10, iw + 10, (b, n))
    out[:, 1] = rng.uniform(-10, ih + 10, (b, n))
    out[:, 2] = rng.uniform(2, iw / 2, (b, n))
    out[:, 3] = rng.uniform(2, ih / 2, (b, n))
    out[:, 4:head + c] = rng.random((b, head - 4 + c, n), dtype=np.float32)
    out[:, head + c:] = rng.normal(size=(b, m, n)).astype(np.float32)
    return out


@pytest.mark.parametrize("crop", ["input", "proto"])
@pytest.mark.parametrize("mode", ["letterbox", "resize", "none"])
@pytest.mark.parametrize("seed", range(2))
def test_yolo_seg_matches_numpy(mode, seed, crop):
    rng = np.random.default_rng(seed)
    size = (64, 96)
    b, c, m, n = 3, 3, 8, 60
    out = _random_seg(rng, b, c, m, n, size)
    protos = rng.normal(size=(b, m, size[0] // 4, size[1] // 4)).astype(np.float32)
    if mode == "none":
        tiles = np.array([[i * 30, 7, i * 30 + 96, 71] for i in range(b)], np.int64)
    else:
        tiles = _tiles(rng, b, size)
    dets = _ref_yolo_seg(out, protos, tiles, size, mode, 0.4, crop=crop, drop_empty=True)
    got = decode_yolo_seg(out, protos, tiles, size, mode, conf_threshold=0.4, crop=crop)
    _assert_dets(got, dets)
    # drop_empty=False keeps the detections whose mask is empty (Ultralytics before 8.4.0)
    every = _ref_yolo_seg(out, protos, tiles, size, mode, 0.4, crop=crop)
    _assert_dets(decode_yolo_seg(out, protos, tiles, size, mode, conf_threshold=0.4, crop=crop,
                                 drop_empty=False), every)
    # channels-last, auto-detected, one thread
    last = np.ascontiguousarray(out.transpose(0, 2, 1))
    got2 = decode_yolo_seg(last, protos, tiles, size, mode, conf_threshold=0.4, num_threads=1,
                           crop=crop)
    _assert_dets(got2, dets)
    np.testing.assert_array_equal(got2.masks.data, got.masks.data)
    # masks=False: same boxes, no masks
    nom = decode_yolo_seg(out, protos, tiles, size, mode, conf_threshold=0.4, masks=False)
    assert nom.masks is None  # without masks nothing is dropped for an empty one
    np.testing.assert_array_equal(nom.boxes, np.array([d[0] for d in every], np.float32))


def test_yolo_seg_proto_resolution_not_a_quarter():
    # Protos at another ratio (and non-square) still follow the same rules.
    rng = np.random.default_rng(4)
    size = (48, 80)
    out = _random_seg(rng, 2, 2, 5, 40, size)
    protos = rng.normal(size=(2, 5, 15, 33)).astype(np.float32)
    tiles = _tiles(rng, 2, size)
    dets = _ref_yolo_seg(out, protos, tiles, size, "letterbox", 0.3, crop="input", drop_empty=True)
    _assert_dets(decode_yolo_seg(out, protos, tiles, size, "letterbox", conf_threshold=0.3), dets)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_yolov5_seg_matches_numpy(mode):
    rng = np.random.default_rng(7)
    size = (64, 64)
    b, c, m, n = 2, 4, 6, 80
    cf = _random_seg(rng, b, c, m, n, size, head=5)
    protos = rng.normal(size=(b, m, 16, 16)).astype(np.float32)
    tiles = _tiles(rng, b, size)
    out = np.ascontiguousarray(cf.transpose(0, 2, 1))
    for crop in ("input", "proto"):
        dets = _ref_yolo_seg(cf, protos, tiles, size, mode, 0.2, v5=True, crop=crop,
                             drop_empty=True)
        _assert_dets(decode_yolov5_seg(out, protos, tiles, size, mode, conf_threshold=0.2,
                                       crop=crop), dets)


def test_yolo_seg_mask_of_a_known_shape():
    # One prototype that is +1 on a 4x4 proto block and -1 elsewhere, coefficient 1: with mode
    # "none" and protos at 1/4 resolution, the mask is the bilinear upsample's positive part.
    size = (32, 32)
    protos = -np.ones((1, 1, 8, 8), np.float32)
    protos[0, 0, 2:6, 2:6] = 1.0
    out = np.zeros((1, 6, 4), np.float32)
    out[0, :, 0] = [16, 16, 32, 32, 0.9, 1.0]  # the box covers the whole input
    tiles = np.array([[100, 100, 132, 132]])
    d = decode_yolo_seg(out, protos, tiles, size, "none", layout="channels_first")
    assert len(d) == 1
    np.testing.assert_array_equal(d.masks.regions, [[100, 100, 32, 32]])
    bm = d.masks.data.reshape(32, 32)
    # proto pixels 2..5 cover input pixels 8..23; along an edge the bilinear ramp crosses 0
    # between input pixels 7 and 8 (-0.25, +0.25); at the corners of the block both axes blend
    # with -1: input (8, 8) reads proto (1..2, 1..2) with weights 0.375 / 0.625 per axis,
    # (-1 * 0.375 + 0.25 * 0.625) = -0.21875 < 0, so the four corner pixels stay unset.
    expect = np.zeros((32, 32), np.uint8)
    expect[8:24, 8:24] = 1
    expect[[8, 8, 23, 23], [8, 23, 8, 23]] = 0
    np.testing.assert_array_equal(bm, expect)
    # A box over the left half only. crop="proto": proto columns >= 4 are cropped to 0 before
    # upsampling; crop="input": the upsampled mask is cut at input column 16.
    out[0, :4, 0] = [8, 16, 16, 32]
    d = decode_yolo_seg(out, protos, tiles, size, "none", layout="channels_first", crop="input")
    np.testing.assert_array_equal(d.masks.regions, [[100, 100, 16, 32]])
    expect = np.zeros((32, 16), np.uint8)
    expect[8:24, 8:16] = 1
    expect[[8, 23], [8, 8]] = 0
    np.testing.assert_array_equal(d.masks.data.reshape(32, 16), expect)
    d = decode_yolo_seg(out, protos, tiles, size, "none", layout="channels_first", crop="proto")
    np.testing.assert_array_equal(d.masks.regions, [[100, 100, 16, 32]])
    bm = d.masks.data.reshape(32, 16)
    expect = np.zeros((32, 16), np.uint8)
    expect[8:24, 8:16] = 1
    # Left corners as above; right ones now blend with the cropped 0s instead of -1:
    # input (8, 15): row 1 -> -1 * 0.625 + 0 * 0.375, row 2 -> 0.625, blended 0.15625 > 0.
    expect[[8, 23], [8, 8]] = 0
    np.testing.assert_array_equal(bm, expect)


def test_yolo_seg_masks_stay_inside_tile_and_empty():
    rng = np.random.default_rng(2)
    out = _random_seg(rng, 1, 2, 4, 30, (64, 64))
    protos = rng.normal(size=(1, 4, 16, 16)).astype(np.float32)
    tiles = np.array([[1000, 2000, 1100, 2050]])
    d = decode_yolo_seg(out, protos, tiles, 64, "letterbox", conf_threshold=0.0,
                        image_shape=(3000, 4000))
    assert d.masks.image_shape == (3000, 4000)
    r = d.masks.regions
    assert (r[:, 0] >= 1000).all() and (r[:, 0] + r[:, 2] <= 1100).all()
    assert (r[:, 1] >= 2000).all() and (r[:, 1] + r[:, 3] <= 2050).all()
    d.masks._validate()
    e = decode_yolo_seg(out, protos, tiles, 64, conf_threshold=2.0)
    assert len(e) == 0 and e.masks is not None and len(e.masks.regions) == 0


# --------------------------------------------------------------------------------------------
# DETR
# --------------------------------------------------------------------------------------------


def _probs(logits, score):
    x = logits.astype(np.float64)
    if score == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True))[..., :-1].astype(np.float32)


def _ref_detr(boxes, logits, tiles, input_size, mode, conf, score, top_k=None, mask_logits=None):
    ih, iw = input_size
    dets = []
    for t in range(boxes.shape[0]):
        p = _probs(logits[t], score)  # (Q, K)
        if top_k is None:
            pairs = [(q, int(p[q].argmax())) for q in range(p.shape[0])]
        else:
            flat = p.reshape(-1)
            order = np.lexsort((np.arange(flat.size), -flat))[:top_k]  # desc, ties by index
            pairs = [(int(f) // p.shape[1], int(f) % p.shape[1]) for f in order]
        for q, k in pairs:
            s = p[q, k]
            if not s >= np.float32(conf):
                continue
            cx, cy, w, h = boxes[t, q]
            half = np.float32(0.5)
            xyxy = np.array([cx - half * w, cy - half * h, cx + half * w, cy + half * h],
                            np.float32).astype(np.float64) * [iw, ih, iw, ih]
            f, keep = _to_image(xyxy, tiles[t], input_size, mode)
            if not keep[0]:
                continue
            region = vals = None
            if mask_logits is not None:
                up = cv2.resize(mask_logits[t, q], (iw, ih), interpolation=cv2.INTER_LINEAR)
                region, vals = _sample_region(up.astype(np.float64), f[0], tiles[t], input_size,
                                              mode)
            dets.append((f[0], s, k, t, region, vals))
    return dets


def _random_detr(rng, b, q, c, masks=None):
    boxes = np.empty((b, q, 4), np.float32)
    boxes[..., :2] = rng.uniform(-0.05, 1.05, (b, q, 2))
    boxes[..., 2:] = rng.uniform(0.01, 0.5, (b, q, 2))
    logits = rng.normal(-1.0, 2.0, (b, q, c)).astype(np.float32)
    logits[:, ::5, 1] = logits[:, ::5, 0]  # ties
    ml = None if masks is None else rng.normal(size=(b, q) + masks).astype(np.float32)
    return boxes, logits, ml


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
@pytest.mark.parametrize("score", ["sigmoid", "softmax"])
def test_detr_matches_numpy(mode, score):
    rng = np.random.default_rng(11)
    size = (56, 72)
    boxes, logits, _ = _random_detr(rng, 3, 40, 6)
    tiles = _tiles(rng, 3, size)
    conf = 0.5 if score == "sigmoid" else 0.3
    dets = _ref_detr(boxes, logits, tiles, size, mode, conf, score)
    got = decode_detr(boxes, logits, tiles, size, mode, conf_threshold=conf, score=score)
    assert got.masks is None and len(dets) > 5
    np.testing.assert_array_equal(got.boxes, np.array([d[0] for d in dets], np.float32))
    np.testing.assert_array_equal(got.scores, np.array([d[1] for d in dets], np.float32))
    np.testing.assert_array_equal(got.class_ids, [d[2] for d in dets])
    np.testing.assert_array_equal(got.tile_index, [d[3] for d in dets])


@pytest.mark.parametrize("score", ["sigmoid", "softmax"])
def test_detr_top_k_matches_numpy(score):
    rng = np.random.default_rng(12)
    size = (64, 64)
    boxes, logits, _ = _random_detr(rng, 2, 30, 5)
    logits[0, 3, 2] = logits[0, 7, 1] = 9.0  # tie across queries
    tiles = _tiles(rng, 2, size)
    for k in (1, 17, 10_000):
        dets = _ref_detr(boxes, logits, tiles, size, "resize", 0.05, score, top_k=k)
        got = decode_detr(boxes, logits, tiles, size, conf_threshold=0.05, score=score, top_k=k)
        assert len(got) == len(dets)
        np.testing.assert_array_equal(got.boxes, np.array([d[0] for d in dets], np.float32))
        np.testing.assert_array_equal(got.scores, np.array([d[1] for d in dets], np.float32))
        np.testing.assert_array_equal(got.class_ids, [d[2] for d in dets])
        np.testing.assert_array_equal(got.tile_index, [d[3] for d in dets])


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_detr_masks_match_numpy(mode):
    rng = np.random.default_rng(13)
    size = (64, 80)
    boxes, logits, ml = _random_detr(rng, 2, 25, 3, masks=(16, 20))
    tiles = _tiles(rng, 2, size)
    dets = _ref_detr(boxes, logits, tiles, size, mode, 0.3, "sigmoid", mask_logits=ml)
    got = decode_detr(boxes, logits, tiles, size, mode, mask_logits=ml, conf_threshold=0.3,
                      image_shape=(2000, 2000))
    assert len(got) == len(dets) > 0
    np.testing.assert_array_equal(got.boxes, np.array([d[0] for d in dets], np.float32))
    unsure = sum(_check_mask(got, i, d[4], d[5]) for i, d in enumerate(dets))
    assert unsure <= 8 and got.masks.data.sum() > 0
    assert got.masks.image_shape == (2000, 2000)


def test_detr_box_exact_known_values():
    # RF-DETR scales normalised boxes by the original size; with mode="resize" that is
    # x_norm * input_w / (input_w / tile_w) = x_norm * tile_w.
    boxes = np.array([[[0.5, 0.5, 0.5, 0.25], [0.1, 0.1, 0.1, 0.1]]], np.float32)
    logits = np.array([[[3.0, -1.0], [-5.0, -6.0]]], np.float32)
    tiles = np.array([[100, 200, 300, 600]])  # 200 x 400 (w x h)
    d = decode_detr(boxes, logits, tiles, (32, 32), conf_threshold=0.5)
    np.testing.assert_allclose(d.boxes, [[150, 350, 250, 450]], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(d.class_ids, [0])
    np.testing.assert_allclose(d.scores, [1 / (1 + np.exp(-3.0))], rtol=1e-7)


# --------------------------------------------------------------------------------------------
# End-to-end segmentation (YOLO26-seg): rows x1, y1, x2, y2, score, class, M coefficients
# --------------------------------------------------------------------------------------------


def _ref_e2e_seg(rows, protos, tiles, input_size, mode, conf, crop="input", drop_empty=True):
    m = protos.shape[1]
    dets = []
    for t in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            r = rows[t, i]
            if not r[4] >= np.float32(conf):
                continue
            f, keep = _to_image(r[:4].astype(np.float64), tiles[t], input_size, mode)
            if not keep[0]:
                continue
            up = _ref_process_mask(r[6:6 + m], protos[t], r[:4], input_size, crop)
            if drop_empty and not (up > 0).any():
                continue
            region, vals = _sample_region(up, f[0], tiles[t], input_size, mode)
            dets.append((f[0], r[4], int(round(float(r[5]))), t, region, vals))
    return dets


@pytest.mark.parametrize("crop", ["input", "proto"])
@pytest.mark.parametrize("mode", ["letterbox", "resize", "none"])
def test_end_to_end_seg_matches_numpy(mode, crop):
    from fissure.detection.decoders import decode_end_to_end_seg

    rng = np.random.default_rng(5)
    size = (64, 96)
    b, k, m = 3, 40, 8
    rows = np.empty((b, k, 6 + m), np.float32)
    x1 = rng.uniform(-10, size[1], (b, k))
    y1 = rng.uniform(-10, size[0], (b, k))
    rows[..., 0], rows[..., 1] = x1, y1
    rows[..., 2] = x1 + rng.uniform(2, size[1] / 2, (b, k))
    rows[..., 3] = y1 + rng.uniform(2, size[0] / 2, (b, k))
    rows[..., 4] = rng.random((b, k))
    rows[..., 5] = rng.integers(0, 5, (b, k))
    rows[..., 6:] = rng.normal(size=(b, k, m))
    protos = rng.normal(size=(b, m, 16, 24)).astype(np.float32)
    if mode == "none":
        tiles = np.array([[i * 30, 7, i * 30 + 96, 71] for i in range(b)], np.int64)
    else:
        tiles = _tiles(rng, b, size)
    dets = _ref_e2e_seg(rows, protos, tiles, size, mode, 0.3, crop)
    got = decode_end_to_end_seg(rows, protos, tiles, size, mode, conf_threshold=0.3, crop=crop)
    _assert_dets(got, dets)
    every = _ref_e2e_seg(rows, protos, tiles, size, mode, 0.3, crop, drop_empty=False)
    _assert_dets(decode_end_to_end_seg(rows, protos, tiles, size, mode, conf_threshold=0.3,
                                       crop=crop, drop_empty=False), every)
    nom = decode_end_to_end_seg(rows, protos, tiles, size, mode, conf_threshold=0.3, masks=False)
    assert nom.masks is None  # without masks nothing is dropped for an empty one
    np.testing.assert_array_equal(nom.boxes, decode_end_to_end_seg(
        rows, protos, tiles, size, mode, conf_threshold=0.3, crop=crop, drop_empty=False).boxes)
    with pytest.raises(ValueError, match=r"6 \+ M"):
        decode_end_to_end_seg(rows[..., :-1], protos, tiles, size, mode)
    bad = rows.copy()
    bad[0, 0, 4], bad[0, 0, 5] = 0.99, -3
    with pytest.raises(ValueError, match="not a valid class id"):
        decode_end_to_end_seg(bad, protos, tiles, size, mode)
