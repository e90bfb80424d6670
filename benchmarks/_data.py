"""Deterministic tile predictions for the merge and mask benchmarks.

Every case models what a sliced detector hands to the merge step on one 6000x4000 image cut
into 640x640 tiles with 0.2 overlap (SAHI's grid: 96 tiles). Objects are placed on the
image; every tile that sees enough of an object reports it, clipped to the tile and with a
little localisation jitter, so an object in an overlap band comes back two or four times.
Detections are listed tile by tile in row-major order, the order SAHI and supervision
concatenate them in. A few per cent are low-score false positives.

Cases:
  * ``boxes(n)``: small defects (6..64 px), 5 classes, exactly ``n`` detections.
  * ``boxes(n, crowded=True)``: the same, but objects are 60..200 px and packed around
    ``n // 400`` hot spots, so every box overlaps hundreds of others.
  * ``masked(n)``: ``n`` detections with elliptic instance masks (8..60 px semi-axes),
    each as a tight box-local crop.

Converters give the peers' own representations of the same detections: SAHI's ``(N, 6)``
array and ``ObjectPrediction`` lists (polygon masks), supervision ``Detections``,
OpenCV's ``NMSBoxesBatched`` arguments, and fissure's ``BoxMasks``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

IMAGE_H = 4000
IMAGE_W = 6000
SLICE = 640
OVERLAP = 0.2
NUM_CLASSES = 5
SEED = 20261123

__all__ = [
    "IMAGE_H",
    "IMAGE_W",
    "Boxes",
    "Masked",
    "boxes",
    "masked",
    "tiles",
]


@functools.lru_cache(maxsize=1)
def tiles() -> np.ndarray:
    """(96, 4) int64 xyxy tiles of the benchmark image, SAHI's grid."""
    try:
        import fissure

        grid = fissure.slice_grid(IMAGE_H, IMAGE_W, SLICE, SLICE, OVERLAP, OVERLAP)
    except ImportError:  # pragma: no cover - the benchmarks normally run with fissure built
        from sahi.slicing import get_slice_bboxes

        grid = get_slice_bboxes(IMAGE_H, IMAGE_W, SLICE, SLICE, False, OVERLAP, OVERLAP)
    return np.asarray(grid, dtype=np.int64).reshape(-1, 4)


@dataclass(frozen=True, eq=False)
class Boxes:
    """Detections as plain arrays: the input every library gets, in its own form."""

    name: str
    boxes: np.ndarray  # (N, 4) float32 xyxy, image coordinates
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    # ---- the peers' representations -------------------------------------------------
    def sahi_array(self) -> np.ndarray:
        """SAHI's ``ObjectPredictionList.tonumpy()`` layout: (N, 6) float32."""
        out = np.empty((len(self), 6), dtype=np.float32)
        out[:, :4] = self.boxes
        out[:, 4] = self.scores
        out[:, 5] = self.class_ids
        return out

    def sahi_predictions(self) -> list[Any]:
        """One ``sahi.prediction.ObjectPrediction`` per detection (image coordinates)."""
        from sahi.prediction import ObjectPrediction

        boxes = self.boxes.tolist()
        scores = self.scores.tolist()
        cats = self.class_ids.tolist()
        return [
            ObjectPrediction(bbox=b, category_id=c, category_name=f"c{c}", score=s)
            for b, s, c in zip(boxes, scores, cats)
        ]

    def sv_detections(self) -> Any:
        import supervision as sv

        return sv.Detections(
            xyxy=self.boxes.copy(), confidence=self.scores.copy(), class_id=self.class_ids.copy()
        )

    def sv_predictions(self) -> np.ndarray:
        """supervision's ``(N, 6)`` NMS input, as ``Detections`` builds it (float64)."""
        return np.hstack(
            (self.boxes, self.scores.reshape(-1, 1), self.class_ids.reshape(-1, 1))
        )

    def cv2_args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``cv2.dnn.NMSBoxesBatched`` inputs: xywh float64 boxes, float32 scores, int32 ids."""
        b = self.boxes.astype(np.float64)
        xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
        return xywh, self.scores.astype(np.float32), self.class_ids.astype(np.int32)


@dataclass(frozen=True, eq=False)
class Masked(Boxes):
    """Detections with box-local instance masks: crop ``i`` covers ``regions[i]``."""

    crops: tuple[np.ndarray, ...] = ()  # (h_i, w_i) bool, tight around the mask
    regions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))  # [x0,y0,w,h]

    def box_masks(self) -> Any:
        """fissure ``BoxMasks`` over each detection's box (the box is the crop)."""
        from fissure.masks import BoxMasks

        sizes = self.regions[:, 2].astype(np.int64) * self.regions[:, 3]
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        data = np.concatenate([c.reshape(-1) for c in self.crops]).astype(np.uint8)
        return BoxMasks(data, offsets, self.regions, (IMAGE_H, IMAGE_W))

    def sahi_predictions(self) -> list[Any]:
        """``ObjectPrediction`` with COCO polygon masks, as SAHI's models make them."""
        from sahi.prediction import ObjectPrediction
        from sahi.utils.cv import get_coco_segmentation_from_bool_mask

        out = []
        for i, crop in enumerate(self.crops):
            x0, y0 = int(self.regions[i, 0]), int(self.regions[i, 1])
            seg = get_coco_segmentation_from_bool_mask(crop)
            seg = [[v + (x0 if k % 2 == 0 else y0) for k, v in enumerate(p)] for p in seg]
            out.append(
                ObjectPrediction(
                    bbox=self.boxes[i].tolist(),
                    category_id=int(self.class_ids[i]),
                    category_name=f"c{int(self.class_ids[i])}",
                    score=float(self.scores[i]),
                    segmentation=seg,
                    full_shape=[IMAGE_H, IMAGE_W],
                )
            )
        return out

    def sv_dense_bytes(self) -> int:
        """Bytes of supervision's dense ``(N, H, W)`` bool mask stack for these detections."""
        return len(self) * IMAGE_H * IMAGE_W

    def sv_compact_detections(self) -> Any:
        """supervision ``Detections`` whose masks are a ``CompactMask`` (crop RLE)."""
        import supervision as sv
        from supervision.detection.compact_mask import CompactMask

        parts = []
        for i, crop in enumerate(self.crops):
            h, w = crop.shape
            local = CompactMask.from_dense(
                crop[None], np.array([[0, 0, w - 1, h - 1]], np.float32), image_shape=(h, w)
            )
            x0, y0 = int(self.regions[i, 0]), int(self.regions[i, 1])
            parts.append(local.with_offset(x0, y0, (IMAGE_H, IMAGE_W)))
        return sv.Detections(
            xyxy=self.boxes.copy(),
            confidence=self.scores.copy(),
            class_id=self.class_ids.copy(),
            mask=CompactMask.merge(parts),
        )


# ---------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------


def _objects(rng: np.random.Generator, m: int, crowded: bool, n: int) -> dict[str, np.ndarray]:
    if crowded:
        k = max(1, n // 400)
        hot = np.stack([rng.uniform(300, IMAGE_W - 300, k), rng.uniform(300, IMAGE_H - 300, k)], 1)
        which = rng.integers(0, k, m)
        cx = hot[which, 0] + rng.normal(0, 40, m)
        cy = hot[which, 1] + rng.normal(0, 40, m)
        size = np.exp(rng.uniform(np.log(60), np.log(200), m))
    else:
        cx = rng.uniform(0, IMAGE_W, m)
        cy = rng.uniform(0, IMAGE_H, m)
        size = np.exp(rng.uniform(np.log(6), np.log(64), m))
    aspect = np.exp(rng.uniform(-0.4, 0.4, m))
    w = size * np.sqrt(aspect)
    h = size / np.sqrt(aspect)
    x1 = np.clip(cx - w / 2, 0, IMAGE_W)
    x2 = np.clip(cx + w / 2, 0, IMAGE_W)
    y1 = np.clip(cy - h / 2, 0, IMAGE_H)
    y2 = np.clip(cy + h / 2, 0, IMAGE_H)
    return {
        "xyxy": np.stack([x1, y1, x2, y2], 1),
        "cls": rng.integers(0, NUM_CLASSES, m),
        "score": 0.3 + 0.65 * rng.beta(4, 2, m),
    }


def _sightings(obj: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(object index, tile index) for every tile that sees >= 40% of an object's extent."""
    b = obj["xyxy"]
    w = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    objs, tls = [], []
    for t, (tx1, ty1, tx2, ty2) in enumerate(tiles()):
        vw = np.minimum(b[:, 2], tx2) - np.maximum(b[:, 0], tx1)
        vh = np.minimum(b[:, 3], ty2) - np.maximum(b[:, 1], ty1)
        seen = np.flatnonzero((vw >= 0.4 * w) & (vh >= 0.4 * h))
        objs.append(seen)
        tls.append(np.full(seen.size, t, dtype=np.int64))
    return np.concatenate(objs), np.concatenate(tls)


def _detections(
    rng: np.random.Generator, n: int, crowded: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exactly ``n`` detections in tile order: boxes, scores, class ids, object ids."""
    m = max(8, int(n / 1.5))
    while True:
        obj = _objects(rng, m, crowded, n)
        oi, ti = _sightings(obj)
        n_fp = int(0.04 * n)
        if oi.size + n_fp >= n:
            break
        m = int(m * 1.3) + 8
    # Keep whole objects in creation order until n - n_fp sightings are reached.
    by_obj = np.argsort(oi, kind="stable")
    oi, ti = oi[by_obj], ti[by_obj]
    oi, ti = oi[: n - n_fp], ti[: n - n_fp]
    t = tiles()[ti].astype(np.float64)
    b = obj["xyxy"][oi].copy()
    full = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
    # Clip to the tile that saw it, then jitter the edges by a few per cent of the size.
    b[:, 0] = np.maximum(b[:, 0], t[:, 0])
    b[:, 1] = np.maximum(b[:, 1], t[:, 1])
    b[:, 2] = np.minimum(b[:, 2], t[:, 2])
    b[:, 3] = np.minimum(b[:, 3], t[:, 3])
    seen = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / full
    size = np.sqrt(full)
    b += rng.normal(0, 1, b.shape) * (0.03 * size + 0.3)[:, None]
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], t[:, [0]], t[:, [2]])
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], t[:, [1]], t[:, [3]])
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    score = obj["score"][oi] * np.sqrt(seen) + rng.normal(0, 0.03, oi.size)
    cls = obj["cls"][oi]
    # False positives: small random boxes with low scores, each in a random tile.
    ft = rng.integers(0, len(tiles()), n_fp)
    tf = tiles()[ft].astype(np.float64)
    fw = rng.uniform(4, 24, n_fp)
    fh = rng.uniform(4, 24, n_fp)
    fx = rng.uniform(tf[:, 0], tf[:, 2] - fw)
    fy = rng.uniform(tf[:, 1], tf[:, 3] - fh)
    fb = np.stack([fx, fy, fx + fw, fy + fh], 1)
    fs = rng.uniform(0.05, 0.35, n_fp)
    fc = rng.integers(0, NUM_CLASSES, n_fp)
    boxes = np.concatenate([b, fb])
    scores = np.clip(np.concatenate([score, fs]), 0.01, 0.999)
    cls = np.concatenate([cls, fc])
    tile_of = np.concatenate([ti, ft])
    obj_of = np.concatenate([oi, -1 - np.arange(n_fp)])
    order = np.argsort(tile_of, kind="stable")  # tile by tile, as the slicers emit them
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, IMAGE_W)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, IMAGE_H)
    return (
        np.ascontiguousarray(boxes[order], dtype=np.float32),
        np.ascontiguousarray(scores[order], dtype=np.float32),
        np.ascontiguousarray(cls[order], dtype=np.int64),
        obj_of[order],
    )


@functools.lru_cache(maxsize=8)
def boxes(n: int, crowded: bool = False, seed: Optional[int] = None) -> Boxes:
    """``n`` tile detections on the 6000x4000 image (see the module docstring)."""
    rng = np.random.default_rng((SEED if seed is None else seed) + n + (7 if crowded else 0))
    b, s, c, _ = _detections(rng, n, crowded)
    name = f"{'crowded-' if crowded else ''}{n // 1000}k" if n >= 1000 else str(n)
    return Boxes(name, b, s, c)


def _ellipse_crop(
    rng: np.random.Generator, cx: float, cy: float, ax: float, ay: float, th: float, tile: np.ndarray
) -> tuple[Optional[np.ndarray], int, int]:
    """Rasterise one jittered ellipse clipped to ``tile``: (crop, x0, y0) or (None, 0, 0)."""
    cx += rng.normal(0, 0.7)
    cy += rng.normal(0, 0.7)
    ax *= 1 + rng.normal(0, 0.04)
    ay *= 1 + rng.normal(0, 0.04)
    r = max(ax, ay) + 1
    x0 = int(max(np.floor(cx - r), tile[0]))
    y0 = int(max(np.floor(cy - r), tile[1]))
    x1 = int(min(np.ceil(cx + r), tile[2]))
    y1 = int(min(np.ceil(cy + r), tile[3]))
    if x1 <= x0 or y1 <= y0:
        return None, 0, 0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = np.cos(th), np.sin(th)
    u = (c * dx + s * dy) / ax
    v = (-s * dx + c * dy) / ay
    m = u * u + v * v <= 1.0
    if not m.any():
        return None, 0, 0
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    crop = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.ascontiguousarray(crop), x0 + int(cols[0]), y0 + int(rows[0])


@functools.lru_cache(maxsize=2)
def masked(n: int = 2000, seed: Optional[int] = None) -> Masked:
    """``n`` masked tile detections on the 6000x4000 image, tight crops as masks."""
    rng = np.random.default_rng((SEED if seed is None else seed) + 31 * n)
    m = max(8, int(n / 1.4))
    cx = rng.uniform(0, IMAGE_W, m)
    cy = rng.uniform(0, IMAGE_H, m)
    ax = np.exp(rng.uniform(np.log(8), np.log(60), m))
    ay = ax * np.exp(rng.uniform(-0.5, 0.5, m))
    th = rng.uniform(0, np.pi, m)
    obj = {
        "xyxy": np.stack([cx - ax, cy - ay, cx + ax, cy + ay], 1),
        "cls": rng.integers(0, NUM_CLASSES, m),
        "score": 0.3 + 0.65 * rng.beta(4, 2, m),
    }
    oi, ti = _sightings(obj)
    order = np.argsort(ti, kind="stable")
    oi, ti = oi[order], ti[order]
    crops, regions, scores, cls = [], [], [], []
    for o, t in zip(oi.tolist(), ti.tolist()):
        crop, x0, y0 = _ellipse_crop(rng, cx[o], cy[o], ax[o], ay[o], th[o], tiles()[t])
        if crop is None:
            continue
        crops.append(crop)
        regions.append((x0, y0, crop.shape[1], crop.shape[0]))
        scores.append(obj["score"][o] + rng.normal(0, 0.03))
        cls.append(obj["cls"][o])
        if len(crops) == n:
            break
    if len(crops) < n:
        raise RuntimeError(f"masked(): only {len(crops)} detections generated for n={n}")
    reg = np.asarray(regions, dtype=np.int32)
    bx = np.stack(
        [reg[:, 0], reg[:, 1], reg[:, 0] + reg[:, 2], reg[:, 1] + reg[:, 3]], 1
    ).astype(np.float32)
    return Masked(
        f"masked-{n // 1000}k" if n >= 1000 else f"masked-{n}",
        bx,
        np.clip(np.asarray(scores), 0.01, 0.999).astype(np.float32),
        np.asarray(cls, dtype=np.int64),
        tuple(crops),
        reg,
    )
