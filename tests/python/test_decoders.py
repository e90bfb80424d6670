"""Decoders against straightforward numpy / OpenCV references."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure.detection.decoders import (
    decode_end_to_end,
    decode_probability_map,
    decode_yolo,
    decode_yolov5,
)

cv2 = pytest.importorskip("cv2")


# --------------------------------------------------------------------------------------------
# Reference geometry
# --------------------------------------------------------------------------------------------


def _transform(tile, input_size, mode):
    x0, y0, x1, y1 = (int(v) for v in tile)
    th, tw = y1 - y0, x1 - x0
    ih, iw = input_size
    if mode == "letterbox":
        r, px, py = fissure.letterbox_params(th, tw, ih, iw)
        return r, r, float(px), float(py)
    if mode == "resize":
        return iw / tw, ih / th, 0.0, 0.0
    return 1.0, 1.0, 0.0, 0.0


def _to_image(xyxy_model, tile, input_size, mode):
    """(n, 4) float64 model-pixel boxes -> clipped float32 image boxes and a keep mask."""
    rx, ry, px, py = _transform(tile, input_size, mode)
    b = np.asarray(xyxy_model, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = np.clip((b[:, 0] - px) / rx + tile[0], tile[0], tile[2])
    out[:, 1] = np.clip((b[:, 1] - py) / ry + tile[1], tile[1], tile[3])
    out[:, 2] = np.clip((b[:, 2] - px) / rx + tile[0], tile[0], tile[2])
    out[:, 3] = np.clip((b[:, 3] - py) / ry + tile[1], tile[1], tile[3])
    f = out.astype(np.float32)
    keep = (f[:, 2] > f[:, 0]) & (f[:, 3] > f[:, 1])
    return f, keep


def _tiles(rng, b, size=(96, 128)):
    out = []
    for _ in range(b):
        th = int(rng.integers(size[0] // 2, size[0] * 2))
        tw = int(rng.integers(size[1] // 2, size[1] * 2))
        x0, y0 = int(rng.integers(0, 500)), int(rng.integers(0, 500))
        out.append([x0, y0, x0 + tw, y0 + th])
    return np.array(out, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Probability maps
# --------------------------------------------------------------------------------------------


def _ref_probmap(maps, tiles, input_size, mode, threshold, box_threshold, min_area):
    boxes, scores, tidx, comps = [], [], [], []
    b, h, w = maps.shape
    sx, sy = input_size[1] / w, input_size[0] / h
    for t in range(b):
        fg = (maps[t] > threshold).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        for k in range(1, n):
            x, y, cw, ch, area = stats[k]
            if area < min_area:
                continue
            score = np.float32(maps[t][labels == k].astype(np.float64).mean())
            if not score >= np.float32(box_threshold):
                continue
            model = [[x * sx, y * sy, (x + cw) * sx, (y + ch) * sy]]
            f, keep = _to_image(model, tiles[t], input_size, mode)
            if keep[0]:
                boxes.append(f[0])
                scores.append(score)
                tidx.append(t)
                comps.append((t, labels == k))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), tidx, comps


def _blobs(rng, b, h, w, n_blobs=6):
    maps = rng.random((b, h, w), dtype=np.float32) * 0.25
    for t in range(b):
        for _ in range(n_blobs):
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            ry, rx = rng.integers(1, max(2, h // 5)), rng.integers(1, max(2, w // 5))
            yy, xx = np.ogrid[:h, :w]
            blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            maps[t][blob] = rng.uniform(0.35, 1.0, size=int(blob.sum())).astype(np.float32)
    return maps


def _sorted_rows(boxes, scores):
    key = np.lexsort((scores, boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0]))
    return boxes[key], scores[key]


@pytest.mark.parametrize("mode", ["none", "resize", "letterbox"])
@pytest.mark.parametrize("seed", range(4))
def test_probability_map_matches_cv2(mode, seed):
    rng = np.random.default_rng(seed)
    h, w = 64, 80
    b = 3
    maps = _blobs(rng, b, h, w)
    if mode == "none":
        tiles = np.array([[i * 50, 7, i * 50 + w, 7 + h] for i in range(b)], np.int64)
    else:
        tiles = _tiles(rng, b)
    got = decode_probability_map(maps[:, None], tiles, (h, w), mode, mask_threshold=0.3,
                                 conf_threshold=0.5, min_area=3)
    rb, rs, rt, _comps = _ref_probmap(maps, tiles, (h, w), mode, 0.3, 0.5, 3)
    assert len(got) == len(rs)
    assert got.boxes.dtype == np.float32 and got.class_ids.dtype == np.int64
    assert (got.class_ids == 0).all()
    np.testing.assert_array_equal(np.sort(got.tile_index), np.sort(np.array(rt, np.int64)))
    for t in range(b):
        gb, gs = _sorted_rows(got.boxes[got.tile_index == t], got.scores[got.tile_index == t])
        sel = np.array(rt) == t
        eb, es = _sorted_rows(rb[sel], rs[sel])
        np.testing.assert_allclose(gb, eb, rtol=0, atol=1e-3)
        np.testing.assert_allclose(gs, es, rtol=1e-5)
    assert got.masks is not None and len(got.masks.regions) == len(got)
    np.testing.assert_array_equal(got.masks.regions, fissure.regions_from_boxes(got.boxes))


def test_probability_map_masks_exact_for_mode_none():
    rng = np.random.default_rng(11)
    h, w = 48, 60
    maps = _blobs(rng, 2, h, w, n_blobs=8)
    tiles = np.array([[100, 200, 100 + w, 200 + h], [0, 0, w, h]], np.int64)
    got = decode_probability_map(maps, tiles, (h, w), "none", mask_threshold=0.3, conf_threshold=0.0)
    for t in range(2):
        n, labels = cv2.connectedComponents((maps[t] > 0.3).astype(np.uint8), connectivity=8)
        assert (got.tile_index == t).sum() == n - 1
    for i in range(len(got)):
        t = int(got.tile_index[i])
        x0, y0, rw, rh = (int(v) for v in got.masks.regions[i])
        bm = got.masks.data[got.masks.offsets[i]:got.masks.offsets[i + 1]].reshape(rh, rw)
        n, labels = cv2.connectedComponents((maps[t] > 0.3).astype(np.uint8), connectivity=8)
        lx, ly = x0 - tiles[t, 0], y0 - tiles[t, 1]
        crop = labels[ly:ly + rh, lx:lx + rw]
        k = crop[bm.astype(bool)]
        assert k.size > 0 and (k == k[0]).all()
        np.testing.assert_array_equal(bm, (crop == k[0]).astype(np.uint8))
        np.testing.assert_allclose(got.scores[i], maps[t][labels == k[0]].mean(), rtol=1e-5)


def test_probability_map_masks_letterbox_cover_component():
    # A 2x upscaled letterbox: each map pixel covers about 0.5 image pixels.
    rng = np.random.default_rng(3)
    maps = _blobs(rng, 1, 64, 64, n_blobs=3)
    tiles = np.array([[10, 20, 42, 36]], np.int64)  # 32 x 16 tile -> r = 2, pad_y = 16
    got = decode_probability_map(maps, tiles, (64, 64), "letterbox", conf_threshold=0.0)
    assert got.masks is not None
    for i in range(len(got)):
        x0, y0, rw, rh = got.masks.regions[i]
        assert tiles[0, 0] <= x0 and x0 + rw <= tiles[0, 2]
        assert tiles[0, 1] <= y0 and y0 + rh <= tiles[0, 3]


def test_probability_map_options():
    maps = np.zeros((1, 1, 10, 10), np.float32)
    maps[0, 0, 1:3, 1:3] = 0.9  # area 4, mean 0.9
    maps[0, 0, 6, 6] = 0.4  # area 1, mean 0.4
    tiles = np.array([[0, 0, 10, 10]])
    d = decode_probability_map(maps, tiles, 10, "none", mask_threshold=0.3, conf_threshold=0.0)
    assert len(d) == 2
    np.testing.assert_array_equal(d.boxes, [[1, 1, 3, 3], [6, 6, 7, 7]])
    np.testing.assert_allclose(d.scores, [0.9, 0.4], rtol=1e-6)
    assert len(decode_probability_map(maps, tiles, 10, "none", conf_threshold=0.5)) == 1
    assert len(decode_probability_map(maps, tiles, 10, "none", min_area=2,
                                      conf_threshold=0.0)) == 1
    # inclusive box threshold
    assert len(decode_probability_map(maps, tiles, 10, "none",
                                      conf_threshold=float(np.float32(0.9)))) == 1
    # strict binarisation: p == threshold is background
    assert len(decode_probability_map(maps, tiles, 10, "none", mask_threshold=0.4,
                                      conf_threshold=0.0)) == 1
    d = decode_probability_map(maps, tiles, 10, "none", conf_threshold=0.0, masks=False)
    assert d.masks is None
    empty = decode_probability_map(np.zeros((2, 5, 5), np.float32),
                                   np.array([[0, 0, 5, 5]] * 2), 5, "none")
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and len(empty.masks.regions) == 0


def test_probability_map_large_snake_component():
    # A serpentine path: union-find must merge many provisional labels into one component.
    h, w = 41, 41
    fg = np.zeros((h, w), np.uint8)
    fg[::2, :] = 1
    for i, y in enumerate(range(1, h, 2)):
        fg[y, (w - 1) if i % 2 == 0 else 0] = 1
    maps = fg.astype(np.float32)
    d = decode_probability_map(maps[None], np.array([[0, 0, w, h]]), (h, w), "none")
    assert len(d) == 1
    np.testing.assert_array_equal(d.boxes, [[0, 0, w, h]])
    # V shapes join only at the bottom row
    v = np.zeros((5, 9), np.float32)
    for i in range(5):
        v[i, i] = v[i, 8 - i] = 1
    d = decode_probability_map(v[None], np.array([[0, 0, 9, 5]]), (5, 9), "none")
    assert len(d) == 1


# --------------------------------------------------------------------------------------------
# YOLO-style box decoders
# --------------------------------------------------------------------------------------------


def _ref_yolo(out_cf, tiles, input_size, mode, conf):
    """out_cf: (B, 4 + C, N)."""
    boxes, scores, cls, tidx = [], [], [], []
    for t in range(out_cf.shape[0]):
        o = out_cf[t]
        cs = o[4:]
        s = cs.max(axis=0)
        a = cs.argmax(axis=0)
        cx, cy, w, h = o[0], o[1], o[2], o[3]
        half_w, half_h = w * np.float32(0.5), h * np.float32(0.5)
        model = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1)
        sel = s >= np.float32(conf)
        f, keep = _to_image(model[sel].astype(np.float64), tiles[t], input_size, mode)
        boxes.append(f[keep])
        scores.append(s[sel][keep])
        cls.append(a[sel][keep])
        tidx.append(np.full(int(keep.sum()), t))
    return (np.concatenate(boxes).reshape(-1, 4), np.concatenate(scores),
            np.concatenate(cls).astype(np.int64), np.concatenate(tidx).astype(np.int64))


def _random_yolo(rng, b, c, n, input_size):
    ih, iw = input_size
    out = np.empty((b, 4 + c, n), np.float32)
    out[:, 0] = rng.uniform(-20, iw + 20, (b, n))
    out[:, 1] = rng.uniform(-20, ih + 20, (b, n))
    out[:, 2] = rng.uniform(0, iw / 3, (b, n))
    out[:, 3] = rng.uniform(0, ih / 3, (b, n))
    out[:, 4:] = rng.random((b, c, n), dtype=np.float32)
    # some ties in class scores
    out[:, 5, ::7] = out[:, 4, ::7]
    return out


def _assert_same(got, ref):
    rb, rs, rc, rt = ref
    assert len(got) == len(rs)
    np.testing.assert_array_equal(got.boxes, rb)
    np.testing.assert_array_equal(got.scores, rs)
    np.testing.assert_array_equal(got.class_ids, rc)
    np.testing.assert_array_equal(got.tile_index, rt)
    assert got.masks is None


@pytest.mark.parametrize("mode", ["letterbox", "resize", "none"])
@pytest.mark.parametrize("seed", range(3))
def test_yolo_matches_numpy(mode, seed):
    rng = np.random.default_rng(seed)
    size = (96, 128)
    out = _random_yolo(rng, 3, 5, 300, size)
    tiles = _tiles(rng, 3, size) if mode != "none" else np.array(
        [[i * 10, i * 20, i * 10 + 128, i * 20 + 96] for i in range(3)])
    ref = _ref_yolo(out, tiles, size, mode, 0.5)
    _assert_same(decode_yolo(out, tiles, size, mode, conf_threshold=0.5), ref)
    # channels-last layout, auto-detected and explicit
    last = np.ascontiguousarray(out.transpose(0, 2, 1))
    _assert_same(decode_yolo(last, tiles, size, mode, conf_threshold=0.5), ref)
    _assert_same(decode_yolo(last, tiles, size, mode, conf_threshold=0.5,
                             layout="channels_last", num_threads=1), ref)


def test_yolo_threshold_inclusive_and_clipping():
    out = np.zeros((1, 6, 3), np.float32)
    out[0, :4, 0] = [50, 50, 20, 20]
    out[0, 4, 0] = 0.5
    out[0, :4, 1] = [-30, 50, 20, 20]  # entirely left of the tile: zero area after clipping
    out[0, 5, 1] = 0.9
    out[0, :4, 2] = [5, 5, 20, 20]  # partly outside: clipped
    out[0, 5, 2] = 0.7
    tiles = np.array([[100, 200, 200, 300]])
    d = decode_yolo(out, tiles, (100, 100), "none", conf_threshold=0.5, layout="channels_first")
    np.testing.assert_array_equal(d.boxes, [[140, 240, 160, 260], [100, 200, 115, 215]])
    np.testing.assert_array_equal(d.class_ids, [0, 1])
    np.testing.assert_allclose(d.scores, [0.5, 0.7])
    assert len(decode_yolo(out, tiles, (100, 100), "none", conf_threshold=0.51,
                           layout="channels_first")) == 1


def test_yolo_letterbox_roundtrip():
    # A 200x100 (w x h) tile letterboxed into 64x64: r = 0.32, pad_y = 16.
    r, px, py = fissure.letterbox_params(100, 200, 64, 64)
    tile = np.array([[1000, 2000, 1200, 2100]])
    img_box = np.array([1050.0, 2025.0, 1150.0, 2075.0])
    x1, y1 = (img_box[0] - 1000) * r + px, (img_box[1] - 2000) * r + py
    x2, y2 = (img_box[2] - 1000) * r + px, (img_box[3] - 2000) * r + py
    out = np.zeros((1, 5, 8), np.float32)
    out[0, :, 0] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9]
    d = decode_yolo(out, tile, 64, "letterbox")
    np.testing.assert_allclose(d.boxes[0], img_box, atol=1e-3)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_end_to_end_matches_numpy(mode):
    rng = np.random.default_rng(5)
    size = (64, 96)
    b, k = 4, 50
    out = np.empty((b, k, 6), np.float32)
    out[..., 0] = rng.uniform(-10, 90, (b, k))
    out[..., 1] = rng.uniform(-10, 60, (b, k))
    out[..., 2] = out[..., 0] + rng.uniform(0, 30, (b, k)).astype(np.float32)
    out[..., 3] = out[..., 1] + rng.uniform(0, 30, (b, k)).astype(np.float32)
    out[..., 4] = rng.random((b, k), dtype=np.float32)
    out[..., 5] = rng.integers(0, 80, (b, k))
    tiles = _tiles(rng, b, size)
    boxes, scores, cls, tidx = [], [], [], []
    for t in range(b):
        sel = out[t, :, 4] >= np.float32(0.3)
        f, keep = _to_image(out[t, sel, :4], tiles[t], size, mode)
        boxes.append(f[keep])
        scores.append(out[t, sel, 4][keep])
        cls.append(out[t, sel, 5][keep].astype(np.int64))
        tidx.append(np.full(int(keep.sum()), t, np.int64))
    ref = tuple(np.concatenate(v) for v in (boxes, scores, cls, tidx))
    _assert_same(decode_end_to_end(out, tiles, size, mode, conf_threshold=0.3), ref)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_yolov5_matches_numpy(mode):
    rng = np.random.default_rng(9)
    size = (64, 64)
    b, n, c = 2, 200, 4
    cf = _random_yolo(rng, b, c, n, size)
    obj = rng.random((b, n), dtype=np.float32)
    out = np.concatenate([cf[:, :4], obj[:, None], cf[:, 4:]], axis=1).transpose(0, 2, 1)
    out = np.ascontiguousarray(out)
    prod = np.concatenate([cf[:, :4], obj[:, None] * cf[:, 4:]], axis=1)
    tiles = _tiles(rng, b, size)
    ref = _ref_yolo(prod, tiles, size, mode, 0.2)
    _assert_same(decode_yolov5(out, tiles, size, mode, conf_threshold=0.2), ref)


def test_empty_outputs():
    tiles = np.zeros((0, 4), np.int64)
    d = decode_yolo(np.zeros((0, 6, 10), np.float32), tiles, 64, conf_threshold=0.1)
    assert len(d) == 0 and d.boxes.shape == (0, 4)
    d = decode_end_to_end(np.zeros((1, 0, 6), np.float32), np.array([[0, 0, 64, 64]]), 64)
    assert len(d) == 0
