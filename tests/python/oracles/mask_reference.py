"""Naive NumPy twins of the box-local mask conversions: the test oracle.

Written for clarity, one mask and one pixel rule at a time, sharing no code with
``fissure.masks`` or the C++ core. Slow; never used at run time.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

__all__ = [
    "areas",
    "bitmaps",
    "box_region",
    "clip_region",
    "coco_counts",
    "coco_string_from_counts",
    "counts_from_coco_string",
    "decode_counts",
    "from_full",
    "from_tile_masks",
    "reframe",
    "tight_boxes",
    "to_full",
]


def box_region(box: Any) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) owned by a float xyxy box: floor of the start, ceil of the end."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x0, y0 = math.floor(x1), math.floor(y1)
    return x0, y0, math.ceil(x2) - x0, math.ceil(y2) - y0


def clip_region(r: Any, x_lo: int, y_lo: int, x_hi: int, y_hi: int) -> tuple[int, int, int, int]:
    x0, y0, w, h = (int(v) for v in r)
    a = min(max(x0, x_lo), x_hi)
    b = min(max(y0, y_lo), y_hi)
    c = min(max(x0 + w, x_lo), x_hi)
    d = min(max(y0 + h, y_lo), y_hi)
    return a, b, max(c - a, 0), max(d - b, 0)


def bitmaps(data: np.ndarray, offsets: np.ndarray, regions: np.ndarray) -> list[np.ndarray]:
    """The (h, w) bool bitmaps of a (data, offsets, regions) triple."""
    out = []
    for i in range(len(regions)):
        w, h = int(regions[i][2]), int(regions[i][3])
        out.append(np.asarray(data[int(offsets[i]) : int(offsets[i + 1])]).reshape(h, w) != 0)
    return out


def _pack(regions: list, maps: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = [0]
    for m in maps:
        offsets.append(offsets[-1] + m.size)
    data = np.concatenate([m.reshape(-1) for m in maps]) if maps else np.zeros(0, bool)
    return (
        data.astype(np.uint8),
        np.array(offsets, dtype=np.int64),
        np.array(regions, dtype=np.int32).reshape(-1, 4),
    )


def from_full(masks: np.ndarray, boxes: Optional[np.ndarray] = None):
    """Crop each (H, W) mask to its box's region clipped to the image, or to its tight
    region (empty -> (0, 0, 0, 0))."""
    n, H, W = masks.shape
    regions, maps = [], []
    for i in range(n):
        m = masks[i] != 0
        if boxes is None:
            ys, xs = np.nonzero(m)
            if len(ys) == 0:
                r = (0, 0, 0, 0)
            else:
                r = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        else:
            r = clip_region(box_region(boxes[i]), 0, 0, W, H)
        x0, y0, w, h = (int(v) for v in r)
        regions.append((x0, y0, w, h))
        maps.append(m[y0 : y0 + h, x0 : x0 + w].copy())
    return _pack(regions, maps)


def to_full(data, offsets, regions, H: int, W: int) -> np.ndarray:
    """Paste each bitmap into an (H, W) canvas, pixel by pixel, dropping what falls outside."""
    out = np.zeros((len(regions), H, W), dtype=bool)
    for i, m in enumerate(bitmaps(data, offsets, regions)):
        x0, y0 = int(regions[i][0]), int(regions[i][1])
        for y, x in zip(*np.nonzero(m)):
            if 0 <= y0 + y < H and 0 <= x0 + x < W:
                out[i, y0 + y, x0 + x] = True
    return out


def from_tile_masks(masks, boxes, origins, image_shape=None, threshold=0.5, box_coords="tile"):
    """Paste each tile mask into a full-image canvas at its tile origin, then crop to the
    detection's box region clipped to the tile's footprint (and to the image)."""
    n, th, tw = masks.shape
    origins = np.broadcast_to(np.asarray(origins, dtype=np.int64), (n, 2))
    regions, maps = [], []
    for i in range(n):
        ox, oy = int(origins[i][0]), int(origins[i][1])
        m = masks[i] > threshold if masks.dtype.kind == "f" else masks[i] != 0
        x0, y0, w, h = box_region(boxes[i])
        if box_coords == "tile":
            x0, y0 = x0 + ox, y0 + oy
        # the tile's footprint in image coordinates, cut by the image when known
        fx0, fy0, fx1, fy1 = ox, oy, ox + tw, oy + th
        if image_shape is not None:
            fx0, fy0 = max(fx0, 0), max(fy0, 0)
            fx1, fy1 = min(fx1, image_shape[1]), min(fy1, image_shape[0])
            fx1, fy1 = max(fx1, fx0), max(fy1, fy0)
        r = clip_region((x0, y0, w, h), fx0, fy0, fx1, fy1)
        # canvas large enough to hold the tile and the region, with the image origin at (px, py)
        px, py = max(0, -min(ox, r[0])), max(0, -min(oy, r[1]))
        CW = px + max(ox + tw, r[0] + r[2]) + 1
        CH = py + max(oy + th, r[1] + r[3]) + 1
        canvas = np.zeros((CH, CW), dtype=bool)
        canvas[py + oy : py + oy + th, px + ox : px + ox + tw] = m
        rx, ry, rw, rh = r
        regions.append(r)
        maps.append(canvas[py + ry : py + ry + rh, px + rx : px + rx + rw].copy())
    return _pack(regions, maps)


def reframe(data, offsets, regions, new_regions):
    """Each mask moved onto its new region, via pixel coordinates."""
    maps = []
    for i, m in enumerate(bitmaps(data, offsets, regions)):
        x0, y0 = int(regions[i][0]), int(regions[i][1])
        nx, ny, nw, nh = (int(v) for v in new_regions[i])
        out = np.zeros((nh, nw), dtype=bool)
        for y, x in zip(*np.nonzero(m)):
            gx, gy = x0 + x, y0 + y
            if nx <= gx < nx + nw and ny <= gy < ny + nh:
                out[gy - ny, gx - nx] = True
        maps.append(out)
    return _pack([tuple(int(v) for v in r) for r in new_regions], maps)


def areas(data, offsets, regions) -> np.ndarray:
    return np.array([int(m.sum()) for m in bitmaps(data, offsets, regions)], dtype=np.int64)


def tight_boxes(data, offsets, regions) -> np.ndarray:
    """xyxy (exclusive ends) of set pixels via argwhere; empty -> (x0, y0, x0, y0)."""
    out = []
    for i, m in enumerate(bitmaps(data, offsets, regions)):
        x0, y0 = int(regions[i][0]), int(regions[i][1])
        pts = np.argwhere(m)
        if len(pts) == 0:
            out.append((x0, y0, x0, y0))
        else:
            (ya, xa), (yb, xb) = pts.min(axis=0), pts.max(axis=0)
            out.append((x0 + xa, y0 + ya, x0 + xb + 1, y0 + yb + 1))
    return np.array(out, dtype=np.float32).reshape(-1, 4)


def coco_counts(mask: np.ndarray) -> list[int]:
    """COCO run lengths of a full (H, W) mask: column-major, zeros first."""
    flat = (np.asarray(mask) != 0).reshape(-1, order="F")
    counts, cur, run = [], False, 0
    for v in flat.tolist():
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    return counts


def decode_counts(counts: list[int], H: int, W: int) -> np.ndarray:
    flat = np.zeros(H * W, dtype=bool)
    pos = 0
    for j, c in enumerate(counts):
        if j % 2:
            flat[pos : pos + c] = True
        pos += c
    assert pos == H * W
    return flat.reshape((H, W), order="F")


def coco_string_from_counts(counts: list[int]) -> bytes:
    """pycocotools' rleToString, transcribed: deltas from the fourth count, 5-bit groups."""
    out = bytearray()
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        while True:
            g = x & 0x1F
            x >>= 5
            more = x != -1 if g & 0x10 else x != 0
            out.append(g + (0x20 if more else 0) + 48)
            if not more:
                break
    return bytes(out)


def counts_from_coco_string(s: bytes) -> list[int]:
    """pycocotools' rleFrString, transcribed (assumes a well-formed string)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k = 0, 0
        while True:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            p += 1
            k += 1
            if not c & 0x20:
                if c & 0x10:
                    x -= 1 << (5 * k)
                break
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


# ---------------------------------------------------------------------------------------------
# Random cases for tests
# ---------------------------------------------------------------------------------------------

KINDS = ("noise", "blob", "empty", "full", "pixel", "border", "stripes")


def random_full_masks(rng: np.random.Generator, n: int, H: int, W: int, kinds=KINDS) -> np.ndarray:
    """(n, H, W) bool masks of mixed kinds: noisy rectangles, ellipses, empty, full image,
    single pixels, rectangles touching the image border, and stripes (many runs)."""
    out = np.zeros((n, H, W), dtype=bool)
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "empty":
            continue
        if kind == "full":
            out[i] = True
            continue
        if kind == "pixel":
            out[i, rng.integers(H), rng.integers(W)] = True
            continue
        x0, x1 = sorted(int(v) for v in rng.integers(0, W + 1, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, H + 1, 2))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        if kind == "border":
            side = int(rng.integers(4))
            if side == 0:
                x0 = 0
            elif side == 1:
                y0 = 0
            elif side == 2:
                x1 = W
            else:
                y1 = H
        x1, y1 = min(x1, W), min(y1, H)
        x0, y0 = min(x0, x1 - 1), min(y0, y1 - 1)
        h, w = y1 - y0, x1 - x0
        if kind in ("noise", "border"):
            out[i, y0:y1, x0:x1] = rng.random((h, w)) < rng.uniform(0.05, 0.95)
        elif kind == "blob":
            yy, xx = np.mgrid[0:h, 0:w]
            cy, cx = (h - 1) / 2, (w - 1) / 2
            out[i, y0:y1, x0:x1] = ((yy - cy) / max(h / 2, 0.5)) ** 2 + (
                (xx - cx) / max(w / 2, 0.5)
            ) ** 2 <= 1
        else:  # stripes
            period = int(rng.integers(1, 4))
            out[i, y0:y1, x0:x1] = (np.arange(h)[:, None] // period + np.arange(w)) % 2 == 0
    return out


def random_boxes_for(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """(n, 4) float32 xyxy boxes near each mask's tight box: fractional, padded, sometimes
    reaching outside the image, sometimes cutting into the mask."""
    n, H, W = masks.shape
    out = np.zeros((n, 4), dtype=np.float32)
    for i in range(n):
        ys, xs = np.nonzero(masks[i])
        if len(ys):
            b = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
        else:
            x, y = rng.uniform(0, W), rng.uniform(0, H)
            b = np.array([x, y, x + rng.uniform(0, 5), y + rng.uniform(0, 5)])
        pad = rng.uniform(-3, 6, 4) * np.array([1, 1, 1, 1])
        b = b + np.array([-pad[0], -pad[1], pad[2], pad[3]])
        b[2], b[3] = max(b[2], b[0]), max(b[3], b[1])
        out[i] = b
    return out
