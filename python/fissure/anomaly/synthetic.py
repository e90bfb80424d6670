"""Synthetic inspection surfaces with planted defects and exact ground truth.

Used by ``fissure demo`` and by the accuracy tests and benchmarks: a brushed-metal surface
of any size (stationary texture: defect-free samples of it are what PatchCore learns), and
small defects drawn into it (scratches, cracks, pits, stains) with their exact pixel masks,
plus specular glints (bright, unsaturated highlights that are not defects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from .._optional import require_cv2

__all__ = ["DEFECT_KINDS", "PlantedDefect", "SyntheticSurface", "brushed_metal", "plant_defects"]

DEFECT_KINDS = ("scratch", "crack", "pit", "stain")


def _check_size(height: int, width: int) -> None:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 16 <= v <= 30000:
            raise ValueError(f"{name}: expected an int in 16..30000, got {v!r}")


def brushed_metal(height: int, width: int, *, seed: int = 0,
                  tint: tuple[float, float, float] = (6.0, 2.0, -4.0)) -> np.ndarray:
    """A (height, width, 3) uint8 BGR brushed-metal surface: horizontal streaks (noise
    smoothed along x), fine grain and a slow illumination gradient. Any two seeds give
    different samples of the same texture."""
    cv2 = require_cv2("synthetic surfaces")

    _check_size(height, width)
    rng = np.random.default_rng(seed)
    # a coarse streak layer (brushing marks of varied width), made at quarter height
    coarse = rng.standard_normal((max(height // 4, 1), width), dtype=np.float32)
    coarse = cv2.blur(coarse, (161, 1), borderType=cv2.BORDER_REFLECT_101)
    coarse = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    a, b = rng.uniform(-8, 8, 2).astype(np.float32)
    cy, cx = rng.uniform(-0.5, 0.5, 2).astype(np.float32)
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    yy_all = np.linspace(-1.0, 1.0, height, dtype=np.float32)
    out = np.empty((height, width, 3), np.uint8)
    tint_v = np.asarray(tint, np.float32)
    # the rest is row-local (streaks are smoothed along x only): bands of rows keep the
    # float32 temporaries small at 12 MP and beyond
    band = 256
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band)
        streak = rng.standard_normal((y1 - y0, width), dtype=np.float32)
        v = cv2.blur(streak, (81, 1), borderType=cv2.BORDER_REFLECT_101) * np.float32(81.0)
        v += coarse[y0:y1] * np.float32(60.0)
        v += rng.standard_normal((y1 - y0, width), dtype=np.float32) * np.float32(2.5)
        yy = yy_all[y0:y1, None]
        # slow illumination: a tilted plane plus one broad bump
        v += np.float32(132.0) + a * xx + b * yy
        v += np.float32(10.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / np.float32(0.5))
        out[y0:y1] = np.clip(v[..., None] + tint_v, 0, 255).astype(np.uint8)
    return out


@dataclass
class PlantedDefect:
    """One planted defect: its kind, its xyxy box and its pixel area."""

    kind: str
    box: tuple[int, int, int, int]
    area: int


@dataclass
class SyntheticSurface:
    """An image with planted defects.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        defects: the planted defects, in label order.
        labels: (H, W) int32: 0 where defect-free, ``i + 1`` on defect ``i``'s pixels.
        glints: (H, W) bool: the specular glints' cores (not defects).
        glint_boxes: (G, 4) int xyxy of each glint.
    """

    image: np.ndarray
    defects: list[PlantedDefect]
    labels: np.ndarray
    glints: np.ndarray = field(repr=False)
    glint_boxes: np.ndarray = field(repr=False)

    @property
    def defect_mask(self) -> np.ndarray:
        return self.labels > 0


def _polyline(rng: np.random.Generator, x: float, y: float, steps: int, step: float,
              turn: float) -> np.ndarray:
    ang = rng.uniform(0, 2 * math.pi)
    pts = [(x, y)]
    for _ in range(steps):
        ang += rng.normal(0, turn)
        x += step * math.cos(ang)
        y += step * math.sin(ang)
        pts.append((x, y))
    return np.round(np.array(pts, np.float64)).astype(np.int32)


def _draw_defect(kind: str, rng: np.random.Generator, cx: int, cy: int,
                 size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders one defect in a local window: (alpha in [0, 1], colour delta (3,), rim) where
    rim is an optional second alpha for a bright edge (pits)."""
    cv2 = require_cv2("synthetic surfaces")

    s = size
    win = np.zeros((2 * s + 1, 2 * s + 1), np.float32)
    rim = np.zeros_like(win)
    c = np.array([s, s])
    if kind == "scratch":
        ang = rng.uniform(0, math.pi)
        half = rng.uniform(0.5, 0.95) * s
        bend = rng.normal(0, 0.08 * s)
        t = np.linspace(-1, 1, 24)
        px = c[0] + t * half * math.cos(ang) - bend * (1 - t ** 2) * math.sin(ang)
        py = c[1] + t * half * math.sin(ang) + bend * (1 - t ** 2) * math.cos(ang)
        pts = np.round(np.stack([px, py], 1) * 16).astype(np.int32)
        cv2.polylines(win, [pts], False, 1.0, thickness=int(rng.integers(2, 4)),
                      lineType=cv2.LINE_AA, shift=4)
        delta = np.full(3, rng.choice([-1.0, 1.0]) * rng.uniform(45, 70), np.float32)
    elif kind == "crack":
        pts = _polyline(rng, s, s, int(rng.integers(10, 18)), s / 12.0, 0.5)
        pts = np.clip(pts, 0, 2 * s)
        cv2.polylines(win, [pts], False, 1.0, thickness=2, lineType=cv2.LINE_AA)
        k = int(rng.integers(1, len(pts) - 1))  # one branch
        br = np.clip(_polyline(rng, *pts[k].tolist(), 6, s / 14.0, 0.6), 0, 2 * s)
        cv2.polylines(win, [br], False, 1.0, thickness=1, lineType=cv2.LINE_AA)
        delta = np.full(3, -rng.uniform(70, 95), np.float32)
    elif kind == "pit":
        r = s * rng.uniform(0.45, 0.7)
        cv2.circle(win, (s * 16, s * 16), int(r * 16), 1.0, -1, cv2.LINE_AA, shift=4)
        off = (int((s - 0.3 * r) * 16), int((s - 0.3 * r) * 16))
        cv2.circle(rim, off, int(r * 16), 1.0, 2, cv2.LINE_AA, shift=4)
        rim *= 1.0 - win
        delta = np.full(3, -rng.uniform(60, 85), np.float32)
    elif kind == "stain":
        for _ in range(int(rng.integers(2, 5))):
            ax = (int(rng.uniform(0.3, 0.6) * s), int(rng.uniform(0.2, 0.45) * s))
            ctr = (int(s + rng.normal(0, 0.15 * s)), int(s + rng.normal(0, 0.15 * s)))
            cv2.ellipse(win, ctr, ax, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
        win = cv2.GaussianBlur(win, (0, 0), 1.5) * np.float32(0.6)
        # brownish: less blue, more red
        delta = np.array([-55, -25, 20], np.float32) * np.float32(rng.uniform(0.8, 1.1))
    else:
        raise ValueError(f"defect kind: expected one of {DEFECT_KINDS}, got {kind!r}")
    return np.clip(win, 0, 1), delta, rim


def plant_defects(
    image: np.ndarray,
    n_defects: int = 12,
    *,
    kinds: tuple[str, ...] = DEFECT_KINDS,
    size_range: tuple[int, int] = (14, 40),
    n_glints: int = 0,
    seed: int = 0,
    margin: int = 48,
) -> SyntheticSurface:
    """Draws ``n_defects`` small defects (cycling through ``kinds``) and ``n_glints`` specular
    glints into a copy of a BGR uint8 ``image``, at random places that do not touch each
    other. ``size_range`` is the half-size of a defect's window in pixels (a defect spans up
    to about twice that). A defect's ground-truth pixels are those its alpha covers by at
    least 0.25.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"plant_defects: expected an (H, W, 3) uint8 BGR image, got "
                         f"{img.shape} {img.dtype}")
    if any(k not in DEFECT_KINDS for k in kinds) or not kinds:
        raise ValueError(f"kinds: expected a non-empty subset of {DEFECT_KINDS}, got {kinds!r}")
    lo, hi = int(size_range[0]), int(size_range[1])
    if not 3 <= lo <= hi <= 400:
        raise ValueError(f"size_range: expected 3 <= lo <= hi <= 400, got {size_range!r}")
    h, w = img.shape[:2]
    if min(h, w) < 2 * (hi + margin) + 1:
        raise ValueError(f"plant_defects: image {w}x{h} too small for size_range {size_range}")
    rng = np.random.default_rng(seed)
    out = img.copy()
    labels = np.zeros((h, w), np.int32)
    glints = np.zeros((h, w), bool)
    taken: list[tuple[int, int, int]] = []  # (cx, cy, radius) of everything placed

    def place(radius: int) -> Optional[tuple[int, int]]:
        for _ in range(200):
            cx = int(rng.integers(radius + margin, w - radius - margin))
            cy = int(rng.integers(radius + margin, h - radius - margin))
            if all((cx - x) ** 2 + (cy - y) ** 2 > (radius + r + margin) ** 2
                   for x, y, r in taken):
                taken.append((cx, cy, radius))
                return cx, cy
        return None

    defects: list[PlantedDefect] = []
    for i in range(int(n_defects)):
        kind = kinds[i % len(kinds)]
        s = int(rng.integers(lo, hi + 1))
        if kind == "pit":
            s = max(lo, s // 3)
        where = place(s)
        if where is None:
            break
        cx, cy = where
        alpha, delta, rim = _draw_defect(kind, rng, cx, cy, s)
        y0, x0 = cy - s, cx - s
        sl = (slice(y0, y0 + 2 * s + 1), slice(x0, x0 + 2 * s + 1))
        win = out[sl].astype(np.float32)
        win += alpha[..., None] * delta[None, None, :]
        win += rim[..., None] * np.float32(45.0)
        out[sl] = np.clip(np.round(win), 0, 255).astype(np.uint8)
        gt = (alpha >= 0.25) | (rim >= 0.25)
        if not gt.any():
            continue
        labels[sl][gt] = len(defects) + 1
        ys, xs = np.nonzero(gt)
        defects.append(PlantedDefect(kind, (int(x0 + xs.min()), int(y0 + ys.min()),
                                            int(x0 + xs.max() + 1), int(y0 + ys.max() + 1)),
                                     int(gt.sum())))
    gboxes = []
    for _ in range(int(n_glints)):
        sx = float(rng.uniform(6, 14))
        sy = sx * float(rng.uniform(0.35, 0.7))  # highlights stretch along the brushing
        r = int(3.5 * sx)
        where = place(r)
        if where is None:
            break
        cx, cy = where
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
        g = np.exp(-0.5 * ((xx / sx) ** 2 + (yy / sy) ** 2))
        sl = (slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1))
        # blend towards over-exposed white: the core clips at 255 (unsaturated, V = 255)
        a = np.clip(g * 1.6, 0, 1)[..., None]
        win = out[sl].astype(np.float32) * (1 - a) + np.float32(255.0) * a
        out[sl] = np.clip(np.round(win), 0, 255).astype(np.uint8)
        glints[sl] |= g > 0.5
        gboxes.append((cx - r, cy - r, cx + r + 1, cy + r + 1))
    return SyntheticSurface(out, defects, labels, glints,
                            np.array(gboxes, np.int64).reshape(-1, 4))
