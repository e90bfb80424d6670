"""Before/after change maps and golden-sample inspection.

:func:`change_map` (and :class:`ChangeDetector`, which holds the settings and the backbone)
compares an image of a part or surface ("after") with one or a few reference images of it
("before": the same part earlier, or a few images of a good part, the golden sample):

1. **align** each reference to the after image: ORB (then SIFT) keypoints matched with
   Lowe's ratio test and a RANSAC homography (``cv2.findHomography``), refined by ECC
   (``cv2.findTransformECC``, homography; ``ecc_refine``), or ECC alone from the identity
   when features fail or are not wanted. The report
   (:class:`Alignment`) gives the method, matches, inliers, inlier ratio and the inliers'
   reprojection RMSE in after-image pixels; an alignment with too few inliers, a poor
   inlier ratio, a large reprojection error or an implausible homography is refused with a
   ValueError giving these numbers. The reference is warped into the after image's frame
   (the map is in the after image's pixels, where the changes are to be found); pixels the
   warped reference does not cover are *out of frame*: never a change.
2. **relight**: the warped reference's histogram is matched to the after image's, channel
   by channel, over the pixels both cover (a global gain, offset or gamma change is a
   monotonic map of intensities, which histogram matching undoes); then out-of-frame
   reference pixels are filled with the after image's own pixels, so the frame's edge does
   not look like a change to the backbone.
3. **embed** both, tile by tile (SAHI's grid, native resolution), with the same backbone and
   code as :class:`fissure.anomaly.PatchCore` (stride-8 patches of EfficientNet-Lite0's
   stride-8 and stride-16 features, pooled and concatenated).
4. **score** each after-patch at grid cell (i, j) by its nearest-neighbour distance to the
   reference patches in the (2r+1) x (2r+1) cells around (i, j) (``radius`` r = 1: +-8 px
   plus what the pooled features already absorb, so a misalignment of a pixel or two and
   texture shifting by a cell do not show), and, symmetrically, each reference patch by its
   distance to the after-patches around it (a feature that disappeared shows as well as
   one that appeared); the cell's score is the larger of the two. With several references
   (golden mode) the reference side is the union of their patches: the after-patch's
   distance is the minimum over the references, and so is the disappeared-feature score.
   This is the exact kNN of :func:`fissure.knn_search` with k = 1 over each cell's
   neighbourhood bank of (2r+1)^2 patches per reference, computed vectorised in numpy as
   one squared-L2 pass per neighbour offset (9 for r = 1) over the whole tile grid.
5. **stitch** cell scores to a full-resolution map as PatchCore does (nearest upsampling,
   mean over tile overlaps, Gaussian sigma 4); out-of-frame pixels are set to 0, and so is
   glare in either image with ``specular="mask"`` (off by default: on a gray surface the
   glare rule, V > 240 and S < 30, also covers a bright scratch).
6. **threshold** to regions: a given ``threshold``, or one calibrated from the pair itself:
   ``median + k * 1.4826 * MAD`` of the map over the valid pixels (``k`` = ``sigma``,
   default 10), but at least ``min_threshold``. The bulk of a change map is unchanged
   surface, so its median and MAD describe the noise of the comparison; a change is a far
   outlier. Regions are the mask's 8-connected components of at least ``min_area`` pixels.

See docs/change.md.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._optional import require_cv2
from .io import as_image

__all__ = ["Alignment", "ChangePair", "ChangeDetector", "ChangeResult", "align_images",
           "calibrate_threshold", "change_map", "match_histograms", "neighbourhood_distance",
           "synthetic_pair"]

ALIGN_MODES = ("auto", "features", "ecc", "none")
#: the longest side images are aligned at (keypoints and ECC); the homography is scaled back
ALIGN_SIDE = 1600


# ---------------------------------------------------------------------------- alignment


@dataclass
class Alignment:
    """How one reference was aligned to the after image.

    Attributes:
        method: ``"orb"``, ``"sift"``, ``"ecc"`` or ``"none"`` (the one that succeeded).
        homography: (3, 3) float64 mapping reference pixel coordinates to after-image ones.
        keypoints: keypoints found in (reference, after) image (features only).
        matches: matches passing the ratio test (features only).
        inliers: RANSAC inliers (features only).
        inlier_ratio: inliers / matches.
        reprojection_error: RMSE of the inliers' reprojection, after-image pixels.
        ecc: ECC's correlation coefficient (ECC only; 1 is perfect).
        valid_fraction: share of the after image the warped reference covers.
        attempts: one line per method tried, with why a failed one was refused.
    """

    method: str
    homography: np.ndarray
    keypoints: tuple[int, int] = (0, 0)
    matches: int = 0
    inliers: int = 0
    inlier_ratio: float = 0.0
    reprojection_error: float = 0.0
    ecc: Optional[float] = None
    valid_fraction: float = 1.0
    attempts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "method": self.method, "homography": [[float(v) for v in r] for r in self.homography],
            "keypoints": list(self.keypoints), "matches": int(self.matches),
            "inliers": int(self.inliers), "inlier_ratio": float(self.inlier_ratio),
            "reprojection_error": float(self.reprojection_error),
            "ecc": None if self.ecc is None else float(self.ecc),
            "valid_fraction": float(self.valid_fraction), "attempts": list(self.attempts),
        }


def _gray_small(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    cv2 = require_cv2("change detection")
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    s = min(1.0, side / max(g.shape))
    if s < 1.0:
        g = cv2.resize(g, (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))),
                       interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(g), s


def _scale_h(h_small: np.ndarray, s_ref: float, s_dst: float) -> np.ndarray:
    """The full-resolution homography from one between images scaled by s_ref and s_dst."""
    a = np.diag([s_ref, s_ref, 1.0])
    b = np.diag([1.0 / s_dst, 1.0 / s_dst, 1.0])
    h = b @ h_small @ a
    return h / h[2, 2]


def _plausible(h: np.ndarray, ref_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Optional[str]:
    """Why a homography is implausible for two views of one surface (None: it is fine)."""
    if not np.all(np.isfinite(h)):
        return "not finite"
    det = float(np.linalg.det(h[:2, :2]))
    if det <= 0:
        return f"mirrored or degenerate (det {det:.3g})"
    scale = math.sqrt(det)
    if not 0.25 <= scale <= 4.0:
        return f"scale {scale:.3g} outside 0.25..4"
    rh, rw = ref_hw
    corners = np.array([[0, 0, 1], [rw, 0, 1], [rw, rh, 1], [0, rh, 1]], np.float64).T
    p = h @ corners
    if np.any(p[2] <= 1e-9):
        return "maps the reference's corners to infinity"
    return None


def _features(ref: np.ndarray, dst: np.ndarray, kind: str, min_inliers: int,
              min_inlier_ratio: float, max_error: float, side: int) -> tuple[Optional[Alignment], str]:
    cv2 = require_cv2("change detection")
    gr, sr = _gray_small(ref, side)
    gd, sd = _gray_small(dst, side)
    if kind == "orb":
        det = cv2.ORB_create(nfeatures=5000, fastThreshold=10)
        norm = cv2.NORM_HAMMING
    else:  # SIFT: in OpenCV's main modules since 4.4 (AKAZE is not in every build)
        det = cv2.SIFT_create(nfeatures=5000)
        norm = cv2.NORM_L2
    kr, dr = det.detectAndCompute(gr, None)
    kd, dd = det.detectAndCompute(gd, None)
    nk = (len(kr), len(kd))
    if dr is None or dd is None or len(kr) < 4 or len(kd) < 4:
        return None, f"{kind}: {nk[0]} and {nk[1]} keypoints, too few"
    pairs = cv2.BFMatcher(norm).knnMatch(dr, dd, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < max(4, min_inliers):
        return None, (f"{kind}: {nk[0]}/{nk[1]} keypoints, {len(good)} matches pass the ratio "
                      f"test (needs {max(4, min_inliers)})")
    src = np.float32([kr[m.queryIdx].pt for m in good])
    dstp = np.float32([kd[m.trainIdx].pt for m in good])
    h, inl = cv2.findHomography(src, dstp, cv2.RANSAC, 3.0 * sd, maxIters=5000, confidence=0.999)
    if h is None or inl is None:
        return None, f"{kind}: {len(good)} matches, no homography found"
    inl = inl.ravel().astype(bool)
    n_in = int(inl.sum())
    ratio = n_in / len(good)
    proj = cv2.perspectiveTransform(src[inl][None].astype(np.float64), h)[0]
    err = float(np.sqrt(np.mean(np.sum((proj - dstp[inl]) ** 2, 1)))) / sd if n_in else math.inf
    hf = _scale_h(h, sr, sd)
    why = _plausible(hf, ref.shape[:2], dst.shape[:2])
    a = Alignment(kind, hf, nk, len(good), n_in, ratio, err)
    line = (f"{kind}: {nk[0]}/{nk[1]} keypoints, {len(good)} matches, {n_in} inliers "
            f"({ratio:.0%}), reprojection RMSE {err:.2f} px")
    if n_in < min_inliers or ratio < min_inlier_ratio or err > max_error or why:
        need = (f"needs >= {min_inliers} inliers, ratio >= {min_inlier_ratio:.0%}, "
                f"RMSE <= {max_error:g} px")
        return None, line + (f"; homography {why}" if why else "") + f" ({need})"
    return a, line


def _ecc(ref: np.ndarray, dst: np.ndarray, init: Optional[np.ndarray], min_ecc: float,
         side: int) -> tuple[Optional[Alignment], str]:
    cv2 = require_cv2("change detection")
    side = min(side, 1000)
    gr, sr = _gray_small(ref, side)
    gd, sd = _gray_small(dst, side)
    # ECC's warp maps template (after) coordinates to input (reference) coordinates
    if init is None:
        w = np.diag([sr / sd, sr / sd, 1.0]).astype(np.float32)
    else:
        hs = np.diag([sd, sd, 1.0]) @ init @ np.diag([1.0 / sr, 1.0 / sr, 1.0])
        w = np.linalg.inv(hs).astype(np.float32)
        w /= w[2, 2]
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    try:
        cc, w = cv2.findTransformECC(gd.astype(np.float32), gr.astype(np.float32), w,
                                     cv2.MOTION_HOMOGRAPHY, crit, None, 5)
    except cv2.error as exc:
        return None, f"ecc: did not converge ({' '.join(str(exc).split())[-120:]})"
    h = np.linalg.inv(w.astype(np.float64))
    hf = _scale_h(h / h[2, 2], sr, sd)
    why = _plausible(hf, ref.shape[:2], dst.shape[:2])
    line = f"ecc: correlation {cc:.3f}"
    if cc < min_ecc or why:
        return None, line + (f"; homography {why}" if why else "") + f" (needs >= {min_ecc:g})"
    return Alignment("ecc", hf, ecc=float(cc)), line


def align_images(reference: Any, image: Any, *, align: str = "auto", min_inliers: int = 30,
                 min_inlier_ratio: float = 0.25, max_reprojection_error: float = 3.0,
                 min_ecc: float = 0.6, ecc_refine: bool = True,
                 side: int = ALIGN_SIDE) -> Alignment:
    """The homography taking ``reference`` onto ``image`` (arrays or paths), with its quality.

    ``align``: ``"auto"`` (ORB, then SIFT, then ECC from the identity: the first accepted),
    ``"features"`` (ORB, then SIFT), ``"ecc"`` (ECC from the identity only: small motions),
    ``"none"`` (identity; the images must have one size). ``ecc_refine``: refine an accepted
    feature homography with ECC (default; kept only when ECC accepts it). Raises ValueError, with
    every attempt's numbers, when no method gives an acceptable alignment.
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"align: expected one of {ALIGN_MODES}, got {align!r}")
    ref, dst = as_image(reference, "reference"), as_image(image, "image")
    if align == "none":
        if ref.shape[:2] != dst.shape[:2]:
            raise ValueError(f"align='none': the images must have one size, got "
                             f"{ref.shape[1]}x{ref.shape[0]} and {dst.shape[1]}x{dst.shape[0]}")
        return Alignment("none", np.eye(3), attempts=["none: identity"])
    attempts: list[str] = []
    result: Optional[Alignment] = None
    if align in ("auto", "features"):
        for kind in ("orb", "sift"):
            result, line = _features(ref, dst, kind, min_inliers, min_inlier_ratio,
                                     max_reprojection_error, side)
            attempts.append(line)
            if result is not None:
                break
    if result is not None and ecc_refine:
        refined, line = _ecc(ref, dst, result.homography, min_ecc, side)
        attempts.append(line + (" (refinement kept)" if refined else " (refinement dropped)"))
        if refined is not None:
            result.ecc, result.homography = refined.ecc, refined.homography
    if result is None and align in ("auto", "ecc"):
        result, line = _ecc(ref, dst, None, min_ecc, side)
        attempts.append(line)
    if result is None:
        raise ValueError("cannot align the images: " + "; ".join(attempts))
    result.attempts = attempts
    return result


def match_histograms(source: np.ndarray, template: np.ndarray,
                     valid: Optional[np.ndarray] = None) -> np.ndarray:
    """``source`` (uint8, (H, W) or (H, W, C)) with each channel's intensities mapped onto
    ``template``'s (same shape), both counted over ``valid`` pixels only: the monotonic
    intensity map that undoes a global gain, offset or gamma change. The map is piecewise
    linear through the 100 quantiles 0.5 %, 1.5 %, ... 99.5 % of each (continued linearly
    beyond them), not level by level: sensor noise and the few changed pixels do not bend
    it."""
    src, tpl = np.asarray(source), np.asarray(template)
    if src.shape != tpl.shape or src.dtype != np.uint8 or tpl.dtype != np.uint8:
        raise ValueError(f"match_histograms: expected two uint8 images of one shape, got "
                         f"{src.shape} {src.dtype} and {tpl.shape} {tpl.dtype}")
    out = np.empty_like(src)
    s3 = src.reshape(src.shape[0], src.shape[1], -1)
    t3 = tpl.reshape(s3.shape)
    o3 = out.reshape(s3.shape)
    m = None if valid is None else np.asarray(valid, bool)
    qs = np.linspace(0.5, 99.5, 100)
    levels = np.arange(256, dtype=np.float64)
    for c in range(s3.shape[2]):
        sc, tc = s3[..., c], t3[..., c]
        sv = (sc[m] if m is not None else sc).ravel()
        tv = (tc[m] if m is not None else tc).ravel()
        if sv.size < 100 or tv.size < 100:
            o3[..., c] = sc
            continue
        # quantiles from the histograms (exact, O(256)), interpolated within each level
        sq = _quantiles(np.bincount(sv, minlength=256), qs)
        tq = _quantiles(np.bincount(tv, minlength=256), qs)
        sq = sq + np.arange(sq.size) * 1e-6  # strictly increasing for np.interp
        lut = np.interp(levels, sq, tq)
        # beyond the extreme quantiles: continue with the end segments' slopes
        lo_slope = (tq[5] - tq[0]) / max(sq[5] - sq[0], 1e-6)
        hi_slope = (tq[-1] - tq[-6]) / max(sq[-1] - sq[-6], 1e-6)
        lut = np.where(levels < sq[0], tq[0] + (levels - sq[0]) * lo_slope, lut)
        lut = np.where(levels > sq[-1], tq[-1] + (levels - sq[-1]) * hi_slope, lut)
        o3[..., c] = np.clip(np.round(lut), 0, 255).astype(np.uint8)[sc]
    return out


def _quantiles(hist: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Percentiles ``qs`` of the uint8 values a 256-bin histogram counts, each level's count
    spread evenly over [level - 0.5, level + 0.5)."""
    c = np.concatenate([[0.0], np.cumsum(hist, dtype=np.float64)])
    edges = np.arange(257, dtype=np.float64) - 0.5
    return np.interp(qs / 100.0 * c[-1], c, edges)


# ---------------------------------------------------------------------------- scoring


def neighbourhood_distance(query: np.ndarray, bank: np.ndarray, radius: int) -> np.ndarray:
    """For (gh, gw, D) grids ``query`` and ``bank``: each query cell's squared L2 distance to
    its nearest bank cell within ``radius`` cells (Chebyshev), cells outside the grid left
    out: the exact k = 1 nearest neighbour over each cell's (2r+1)^2 neighbourhood bank."""
    q = np.asarray(query, np.float32)
    b = np.asarray(bank, np.float32)
    if q.ndim != 3 or q.shape != b.shape:
        raise ValueError(f"neighbourhood_distance: expected two (gh, gw, D) grids of one shape, "
                         f"got {q.shape} and {b.shape}")
    gh, gw, _ = q.shape
    best = np.full((gh, gw), np.inf, np.float32)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            y0, y1 = max(0, -dy), min(gh, gh - dy)
            x0, x1 = max(0, -dx), min(gw, gw - dx)
            if y0 >= y1 or x0 >= x1:
                continue
            d = q[y0:y1, x0:x1] - b[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            np.minimum(best[y0:y1, x0:x1], np.einsum("ijk,ijk->ij", d, d), out=best[y0:y1, x0:x1])
    return best


@dataclass
class ChangeResult:
    """The change map of one after image against its reference(s).

    Attributes:
        change_map: (H, W) float32 in the after image's frame: the stitched, blurred patch
            distances (0 out of frame and under masked glare).
        mask: (H, W) bool, ``change_map > threshold`` (regions below ``min_area`` removed).
        boxes: (K, 4) float32 xyxy of the changed regions.
        box_scores: (K,) float32: the map's maximum in each region.
        threshold: the threshold used.
        threshold_rule: ``"given"`` or how it was calibrated (``"median 4.5 + 10 x MAD 0.7"``...).
        alignments: one :class:`Alignment` per reference.
        valid: (H, W) bool: the pixels at least one warped reference covers.
        glare: (H, W) bool masked glare, or None.
        timings: seconds per stage.
    """

    change_map: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    threshold: float
    threshold_rule: str
    alignments: list[Alignment]
    valid: np.ndarray = field(repr=False)
    glare: Optional[np.ndarray] = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def alignment(self) -> Alignment:
        """The first (or only) reference's alignment."""
        return self.alignments[0]

    @property
    def changed(self) -> bool:
        return bool(len(self.boxes))

    def overlay(self, image: Any, *, alpha: float = 0.45, legend: bool = True) -> np.ndarray:
        """The after image (array or path) with the changes marked
        (:func:`fissure.anomaly.heatmap_overlay`: regions outlined and numbered as in
        :meth:`to_dict`, masked glare hatched)."""
        from .anomaly.visualize import heatmap_overlay

        return heatmap_overlay(as_image(image), self.change_map, self.threshold, mask=self.mask,
                               glare=self.glare, boxes=self.boxes, alpha=alpha, legend=legend)

    def to_dict(self) -> dict:
        return {
            "changed": self.changed,
            "threshold": float(self.threshold), "threshold_rule": self.threshold_rule,
            "regions": [{"id": i, "box": [float(v) for v in b], "score": float(s)}
                        for i, (b, s) in enumerate(zip(self.boxes.tolist(),
                                                       self.box_scores.tolist()), start=1)],
            "height": int(self.change_map.shape[0]), "width": int(self.change_map.shape[1]),
            "valid_fraction": float(self.valid.mean()),
            "alignments": [a.to_dict() for a in self.alignments],
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        }


def _real(v: Any, name: str, lo: float, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) \
            or not lo <= float(v) <= hi:
        raise ValueError(f"{name}: expected a finite number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= int(v) <= hi:
        raise ValueError(f"{name}: expected an int in {lo}..{hi}, got {v!r}")
    return int(v)


class ChangeDetector:
    """Before/after change maps with the bundled backbone (module docstring).

    Args:
        backbone: ONNX backbone as for :class:`fissure.anomaly.PatchCore` (default: bundled).
        align: ``"auto"``, ``"features"``, ``"ecc"`` or ``"none"`` (:func:`align_images`).
        radius: neighbourhood radius r in patch cells (stride 8 px): 0..4.
        symmetric: also score reference patches against the after image (a feature that
            disappeared); the cell's score is the larger direction.
        relight: match the reference's histogram to the after image's (``"match"``) or not
            (``None``).
        threshold: a fixed map threshold; None: ``median + sigma * 1.4826 * MAD`` of the
            pair's map over valid pixels, at least ``min_threshold``.
        sigma, min_threshold: the calibration rule's constants.
        min_area: regions of fewer pixels are dropped.
        specular: ``"mask"``: glare (V > 240, S < 30, grown by ``specular_dilate``) in the
            after image or a warped reference is not a change (map 0 there); None (default):
            scored like the rest (on a gray surface the rule covers every near-white pixel,
            a bright scratch included).
        smooth: Gaussian sigma (px) both images are blurred with before the backbone (the
            warped reference is interpolated, the after image not; 0: off).
        min_inliers, min_inlier_ratio, max_reprojection_error, min_ecc: the alignment's
            acceptance rules (:func:`align_images`).
        ecc_refine: refine a feature homography with ECC (default; kept only when ECC
            accepts it): keypoints locate the surface to a few tenths of a pixel, ECC to a
            few hundredths, and a residual misalignment is what lights up sharp edges.
        tile_size, overlap_ratio, layers, backend, device, precision, batch_size,
        num_threads: the embedding's, as PatchCore's.
    """

    def __init__(
        self,
        backbone: Union[str, "os.PathLike[str]", None] = None,
        *,
        align: str = "auto",
        radius: int = 1,
        symmetric: bool = True,
        relight: Optional[str] = "match",
        threshold: Optional[float] = None,
        sigma: float = 10.0,
        min_threshold: float = 1.0,
        min_area: int = 16,
        specular: Optional[str] = None,
        specular_dilate: int = 24,
        smooth: float = 1.0,
        min_inliers: int = 30,
        min_inlier_ratio: float = 0.25,
        max_reprojection_error: float = 3.0,
        min_ecc: float = 0.6,
        ecc_refine: bool = True,
        tile_size: Union[int, tuple[int, int], None] = 512,
        overlap_ratio: float = 0.25,
        layers: Sequence[str] = ("feat8", "feat16"),
        batch_size: Optional[int] = None,
        backend: str = "auto",
        device: str = "auto",
        precision: Optional[str] = "f32",
        num_threads: int = -1,
    ) -> None:
        from .anomaly.patchcore import PatchCore

        if align not in ALIGN_MODES:
            raise ValueError(f"align: expected one of {ALIGN_MODES}, got {align!r}")
        if relight not in (None, "match"):
            raise ValueError(f"relight: expected None or 'match', got {relight!r}")
        if specular not in (None, "mask"):
            raise ValueError(f"specular: expected None or 'mask', got {specular!r}")
        if not isinstance(symmetric, bool) or not isinstance(ecc_refine, bool):
            raise ValueError("symmetric, ecc_refine: expected True or False")
        self.align = align
        self.radius = _int(radius, "radius", 0, 4)
        self.symmetric = symmetric
        self.relight = relight
        self.threshold = None if threshold is None else _real(threshold, "threshold", 0.0)
        self.sigma = _real(sigma, "sigma", 0.0, 1000.0)
        self.min_threshold = _real(min_threshold, "min_threshold", 0.0)
        self.min_area = _int(min_area, "min_area", 1, 1 << 30)
        self.specular = specular
        self.specular_dilate = _int(specular_dilate, "specular_dilate", 0, 254)
        self.smooth = _real(smooth, "smooth", 0.0, 10.0)
        self.min_inliers = _int(min_inliers, "min_inliers", 4, 1 << 20)
        self.min_inlier_ratio = _real(min_inlier_ratio, "min_inlier_ratio", 0.0, 1.0)
        self.max_reprojection_error = _real(max_reprojection_error, "max_reprojection_error",
                                            0.0)
        self.min_ecc = _real(min_ecc, "min_ecc", -1.0, 1.0)
        self.ecc_refine = ecc_refine
        # the embedding is PatchCore's own (backbone, normalisation, tiling, batches)
        self._pc = PatchCore(backbone, tile_size=tile_size, overlap_ratio=overlap_ratio,
                             intensity=None,  # its embedding path reads the pixels as given
                             layers=layers, batch_size=batch_size, backend=backend,
                             device=device, precision=precision, num_threads=num_threads)
        self.num_threads = self._pc.num_threads

    @property
    def model(self) -> Any:
        """The backbone session (opened on first use)."""
        return self._pc.model

    def align_to(self, reference: Any, image: Any) -> Alignment:
        """:func:`align_images` with this detector's rules."""
        return align_images(reference, image, align=self.align, min_inliers=self.min_inliers,
                            min_inlier_ratio=self.min_inlier_ratio,
                            max_reprojection_error=self.max_reprojection_error,
                            min_ecc=self.min_ecc, ecc_refine=self.ecc_refine)

    def warp(self, reference: np.ndarray, image: np.ndarray,
             alignment: Alignment) -> tuple[np.ndarray, np.ndarray]:
        """``reference`` warped into ``image``'s frame (relit when ``relight``; out-of-frame
        pixels filled with ``image``'s) and the bool mask of the pixels it covers."""
        cv2 = require_cv2("change detection")
        h, w = image.shape[:2]
        hm = alignment.homography
        if alignment.method == "none":
            warped = reference.copy()
            valid = np.ones((h, w), bool)
        else:
            warped = cv2.warpPerspective(reference, hm, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            cover = cv2.warpPerspective(np.full(reference.shape[:2], 255, np.uint8), hm, (w, h),
                                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                        borderValue=0)
            valid = cover == 255  # fully inside: the edge's blended pixels are out
        if self.relight == "match":
            warped = match_histograms(warped, image, valid)
        if not valid.all():
            warped[~valid] = image[~valid]
        alignment.valid_fraction = float(valid.mean())
        return warped, valid

    def compare(self, before: Any, after: Any) -> ChangeResult:
        """The change map of ``after`` (array or path) against ``before``: one reference image,
        or a list of them (golden mode: their patches form the reference bank)."""
        import time

        from .anomaly.patchcore import _block_mean, _gaussian_blur, _nearest_up, _regions

        t0 = time.perf_counter()
        refs_in = list(before) if isinstance(before, (list, tuple)) else [before]
        if not refs_in:
            raise ValueError("before: expected an image or a non-empty list of images")
        img = as_image(after, "after")
        if min(img.shape[:2]) < 32:
            raise ValueError(f"after: expected an image of at least 32 x 32, got "
                             f"{img.shape[1]}x{img.shape[0]}")
        h, w = img.shape[:2]
        alignments, refs, valids = [], [], []
        for i, r in enumerate(refs_in):
            name = f"before[{i}]" if len(refs_in) > 1 else "before"
            ref = as_image(r, name)
            try:
                a = self.align_to(ref, img)
            except ValueError as exc:
                if len(refs_in) == 1:
                    raise
                raise ValueError(f"{name}: {exc}") from None
            warped, valid = self.warp(ref, img, a)
            alignments.append(a)
            refs.append(warped)
            valids.append(valid)
        t1 = time.perf_counter()
        glare = None
        if self.specular == "mask":
            from .specular import specular_mask

            glare = specular_mask(img, dilate=self.specular_dilate, num_threads=self.num_threads)
            for r, v in zip(refs, valids):
                glare |= specular_mask(r, dilate=self.specular_dilate,
                                       num_threads=self.num_threads) & v
        if self.smooth > 0:
            # the warped reference was interpolated (slightly blurred), the after image not:
            # a mild blur of both evens out sharpness and sensor noise before the backbone
            cv2 = require_cv2("change detection")
            img = cv2.GaussianBlur(img, (0, 0), self.smooth)
            refs = [cv2.GaussianBlur(r, (0, 0), self.smooth) for r in refs]
        pc = self._pc
        tiles = pc._tiles(h, w)
        acc = np.zeros((h, w), np.float32)
        cnt = np.zeros((h, w), np.uint16)
        rad = self.radius
        streams = [pc._embed_tiles(img, tiles)] + [pc._embed_tiles(r, tiles) for r in refs]
        for batches in zip(*streams):
            btiles, emb = batches[0]
            ref_embs = [e for _, e in batches[1:]]
            gh, gw = emb.shape[1:3]
            for t, (x0, y0, x1, y1) in enumerate(btiles.tolist()):
                fwd = np.full((gh, gw), np.inf, np.float32)
                back = np.full((gh, gw), np.inf, np.float32)
                for re, v in zip(ref_embs, valids):
                    # a reference counts only where it covers the cell entirely
                    cov = _block_mean(v[y0:y1, x0:x1], gh, gw) >= 1.0
                    d = neighbourhood_distance(emb[t], re[t], rad)
                    fwd = np.minimum(fwd, np.where(cov, d, np.inf))
                    if self.symmetric:
                        d2 = neighbourhood_distance(re[t], emb[t], rad)
                        back = np.minimum(back, np.where(cov, d2, np.inf))
                s = fwd if not self.symmetric else np.maximum(fwd, np.where(
                    np.isfinite(back), back, fwd))
                s = np.where(np.isfinite(s), np.sqrt(np.maximum(s, 0)), 0.0).astype(np.float32)
                if glare is not None and glare[y0:y1, x0:x1].any():  # as PatchCore: cells
                    s[_block_mean(glare[y0:y1, x0:x1], gh, gw) > 0] = 0.0  # touching glare
                acc[y0:y1, x0:x1] += _nearest_up(s, y1 - y0, x1 - x0)
                cnt[y0:y1, x0:x1] += 1
        np.divide(acc, np.maximum(cnt, 1), out=acc)
        del cnt
        t2 = time.perf_counter()
        cmap = _gaussian_blur(acc, 4.0)
        del acc
        valid = np.logical_or.reduce(valids) if len(valids) > 1 else valids[0]
        cmap[~valid] = 0.0
        if glare is not None:
            cmap[glare] = 0.0
        if self.threshold is not None:
            thr, rule = self.threshold, "given"
        else:
            calib = valid if glare is None else valid & ~glare
            thr, rule = calibrate_threshold(cmap, calib, self.sigma, self.min_threshold)
        mask = cmap > thr
        boxes, scores = _regions(mask, cmap)
        if len(boxes):
            mask, boxes, scores = _drop_small(mask, cmap, self.min_area)
        t3 = time.perf_counter()
        return ChangeResult(cmap, mask, boxes, scores, float(thr), rule, alignments, valid,
                            glare, {"align_s": t1 - t0, "embed_score_s": t2 - t1,
                                    "map_s": t3 - t2, "total_s": t3 - t0})


def calibrate_threshold(cmap: np.ndarray, valid: np.ndarray, sigma: float,
                        floor: float) -> tuple[float, str]:
    """``max(floor, median + sigma * 1.4826 * MAD)`` of ``cmap`` over ``valid`` (every 4th
    pixel in each direction: the statistics of a smooth map need no more)."""
    v = cmap[::4, ::4][valid[::4, ::4]]
    if v.size == 0:
        return float(floor), f"min_threshold {floor:g} (no valid pixel)"
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    t = med + sigma * mad
    if t < floor:
        return float(floor), (f"min_threshold {floor:g} (median {med:.3g} + {sigma:g} x MAD "
                              f"{mad:.3g} = {t:.3g} is lower)")
    return float(t), f"median {med:.3g} + {sigma:g} x MAD {mad:.3g}"


def _drop_small(mask: np.ndarray, cmap: np.ndarray,
                min_area: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cv2 = require_cv2("change detection")
    from .anomaly.patchcore import _regions

    n, labels, st, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    small = np.flatnonzero(st[1:, cv2.CC_STAT_AREA] < min_area) + 1
    if len(small):
        mask = mask & ~np.isin(labels, small)
    b, s = _regions(mask, cmap)
    return mask, b, s


def change_map(before: Any, after: Any, *, align: str = "auto", **kwargs: Any) -> ChangeResult:
    """One-call change detection: ``ChangeDetector(align=align, **kwargs).compare(before,
    after)`` (``before``: one image or a list, golden mode). For many pairs build the
    :class:`ChangeDetector` once: it keeps the backbone session open."""
    return ChangeDetector(align=align, **kwargs).compare(before, after)


# ---------------------------------------------------------------------------- synthetic pairs


@dataclass
class ChangePair:
    """A synthetic before/after pair with exact ground truth (:func:`synthetic_pair`).

    Attributes:
        before, after: (H, W, 3) uint8 BGR.
        truth: (H, W) int32 in the after image's frame: 0 unchanged, ``i + 1`` on change i.
        kinds: the kind of each change (``"scratch"``, ``"pit"``, ``"missing"``).
        homography: (3, 3) the true map from before to after pixel coordinates.
    """

    before: np.ndarray
    after: np.ndarray
    truth: np.ndarray
    kinds: list[str]
    homography: np.ndarray


def _part_world(h: int, w: int, rng: np.random.Generator,
                skip: int = -1) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """A machined-part-like scene: scikit-image's CC0 gravel texture (upscaled x2, contrast
    reduced to 40..200) with a grid of drilled holes and raised pads; returns the image and
    each feature's (x0, y0, local mask). Feature ``skip`` is not drawn (a missing feature)."""
    cv2 = require_cv2("synthetic pairs")
    from skimage import data

    tex = data.gravel().astype(np.float32)
    tex = cv2.resize(tex, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    tex = np.concatenate([tex, tex[::-1]], 0)
    tex = np.concatenate([tex, tex[:, ::-1]], 1)  # mirrored both ways: no seams
    tex = np.tile(tex, (-(-h // 2048), -(-w // 2048)))[:h, :w]
    lo, hi = np.percentile(tex, [1, 99])
    base = np.clip(40 + (tex - lo) * (120.0 / max(hi - lo, 1e-6)), 30, 200)
    feats: list[tuple[int, int, np.ndarray]] = []  # (x0, y0, local mask) of each feature
    img = base.copy()
    step, half = 180, 40
    k = 0
    for y in range(step // 2, h - step // 3, step):
        for x in range(step // 2, w - step // 3, step):
            x0, y0 = max(0, x - half), max(0, y - half)
            x1, y1 = min(w, x + half), min(h, y + half)
            c = (x - x0, y - y0)
            m = np.zeros((y1 - y0, x1 - x0), np.uint8)
            ring = np.zeros_like(m)
            if (x // step + y // step) % 2 == 0:  # a drilled hole: dark, a bright rim
                r = int(rng.integers(12, 20))
                cv2.circle(m, c, r, 255, -1, cv2.LINE_AA)
                cv2.circle(ring, c, r + 3, 255, 3, cv2.LINE_AA)
                val, rim = 25.0, 175.0
            else:  # a raised pad: bright, a dark edge
                a, b = int(rng.integers(16, 28)), int(rng.integers(10, 18))
                cv2.rectangle(m, (c[0] - a, c[1] - b), (c[0] + a, c[1] + b), 255, -1)
                cv2.rectangle(ring, (c[0] - a - 3, c[1] - b - 3), (c[0] + a + 3, c[1] + b + 3),
                              255, 2)
                val, rim = 165.0, 80.0
            feats.append((x0, y0, (m > 0) | (ring > 0)))
            if k != skip:
                win = img[y0:y1, x0:x1]
                al = m.astype(np.float32) / 255
                win[...] = win * (1 - al) + val * al
                ar = ring.astype(np.float32) / 255 * (1 - al)
                win[...] = win * (1 - ar) + rim * ar
            k += 1
    tint = np.array([0.0, 3.0, 8.0], np.float32)
    return np.clip(img[..., None] + tint, 0, 255).astype(np.uint8), feats


def synthetic_pair(height: int = 768, width: int = 1024, *, seed: int = 0,
                   shift: tuple[float, float] = (23.0, -17.0),
                   angle: float = 3.0, scale: float = 1.03, gain: float = 1.15,
                   gamma: float = 0.85, n_defects: int = 6, missing: int = 1, noise: float = 2.0) -> ChangePair:
    """A before/after pair of a machined-part-like surface: the after view is shifted by
    ``shift`` px, rotated by ``angle`` degrees and scaled by ``scale`` about the centre,
    relit (``255 * gain * (v / 255) ** gamma``), with sensor noise (sigma ``noise``) on both,
    and with changes planted in it: ``n_defects`` small scratches and pits, alternating
    (``fissure.anomaly.synthetic.plant_defects``, half-size 10..18 px), and ``missing``
    (0 or 1) feature (a drilled hole or a raised pad) removed. With both counts 0 nothing
    changed but the view and the light."""
    cv2 = require_cv2("synthetic pairs")
    from .anomaly.synthetic import plant_defects

    h, w = _int(height, "height", 256, 8192), _int(width, "width", 256, 8192)
    rng = np.random.default_rng(seed)
    pad = max(h, w) // 4
    world_h, world_w = h + 2 * pad, w + 2 * pad
    state = rng.bit_generator.state
    world, feats = _part_world(world_h, world_w, rng)
    # before: the centre crop of the world
    t_before = np.array([[1, 0, -pad], [0, 1, -pad], [0, 0, 1]], np.float64)
    a = math.radians(angle)
    c = np.array([w / 2, h / 2])
    rot = np.array([[scale * math.cos(a), -scale * math.sin(a)],
                    [scale * math.sin(a), scale * math.cos(a)]])
    # after = similarity about the image centre applied to before coordinates, plus shift
    m = np.eye(3)
    m[:2, :2] = rot
    m[:2, 2] = c - rot @ c + np.asarray(shift, np.float64)
    world_to_after = m @ t_before
    # a missing feature: one well inside the after view
    inside = []
    for i, (fx, fy, f) in enumerate(feats):
        ys, xs = np.nonzero(f)
        p = world_to_after @ np.array([fx + xs.mean(), fy + ys.mean(), 1.0])
        if 80 < p[0] < w - 80 and 80 < p[1] < h - 80:
            inside.append(i)
    gone = [int(v) for v in rng.permutation(inside)[: _int(missing, "missing", 0, 1)]]
    world_after = world
    if gone:
        rng2 = np.random.default_rng()
        rng2.bit_generator.state = state  # the same features, one left out
        world_after, _ = _part_world(world_h, world_w, rng2, skip=gone[0])
    before = world[pad:pad + h, pad:pad + w].copy()
    after = cv2.warpAffine(world_after, world_to_after[:2], (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    lut = np.clip(255.0 * gain * (np.arange(256) / 255.0) ** gamma, 0, 255).round().astype(np.uint8)
    after = lut[after]
    truth = np.zeros((h, w), np.int32)
    kinds: list[str] = []
    n_def = _int(n_defects, "n_defects", 0, 100)
    if n_def:
        # the changes lie where the before view covers the after one, 48 px inside its edge
        cover = cv2.warpAffine(np.full((h, w), 255, np.uint8), m[:2], (w, h)) == 255
        cover = cv2.erode(cover.view(np.uint8), np.ones((97, 97), np.uint8)) > 0
        for attempt in range(50):
            surf = plant_defects(after, n_def, kinds=("scratch", "pit"), size_range=(10, 18),
                                 seed=seed + 1 + 1000 * attempt, margin=40)
            if cover[surf.labels > 0].all():
                break
        after = surf.image
        truth = surf.labels.copy()
        kinds = [d.kind for d in surf.defects]
    for g in gone:
        fx, fy, f = feats[g]
        fw = np.zeros((world_h, world_w), np.uint8)
        fw[fy:fy + f.shape[0], fx:fx + f.shape[1]] = f * np.uint8(255)
        fm = cv2.warpAffine(fw, world_to_after[:2], (w, h), flags=cv2.INTER_LINEAR) > 127
        kinds.append("missing")
        truth[fm & (truth == 0)] = len(kinds)
    sig = _real(noise, "noise", 0.0, 50.0)
    if sig:
        for im in (before, after):
            im[...] = np.clip(im + rng.normal(0, sig, im.shape), 0, 255).astype(np.uint8)
    return ChangePair(before, after, truth, kinds, m)
