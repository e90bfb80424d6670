"""PatchCore anomaly detection, trained on defect-free images only.

A pretrained CNN's patch features (stride 8 and 16, pooled and concatenated: anomalib's
embedding) of normal images go into a memory bank, thinned by greedy k-center selection over
a sparse random projection; a test patch's distance to its nearest bank entry is its anomaly
score. High-resolution images are cut into tiles at native resolution (SAHI's grid) that the
backbone sees one batch at a time; tile score maps are stitched into a full-resolution map.
See docs/patchcore.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .._optional import require_cv2
from .._validate import check_num_threads, int_pair, optional_positive_int, ratio_in
from ..io import as_image, sha256_file
from ..preprocess import PreprocessConfig
from ..scheduler import BatchFeeder
from ..tiling import slice_grid
from .embed import embed_patches

__all__ = ["AnomalyResult", "PatchCore", "standardize_intensity"]

FORMAT = "fissure.patchcore"
#: 2: the checksum ("sha256") covers the metadata as well as the bank (1: the bank only)
FORMAT_VERSION = 2
_SCORINGS = ("anomalib", "max")
#: the smallest tile_size / input_size: twice the backbone's coarsest stride (16), so that the
#: coarsest layer gives at least a 2 x 2 map (a smaller tile would run one backbone call per
#: few pixels and score nothing meaningful)
MIN_TILE = 32
#: the bank's settings, restored by load() through the constructor (its own checks)
_BANK_SETTINGS = ("layers", "tile_size", "overlap_ratio", "input_size", "num_neighbors",
                  "scoring", "intensity")
_INTENSITIES = (None, "standardize")
#: ``intensity="standardize"``: each image's 8-bit values are mapped to this mean and
#: standard deviation (over all pixels and channels) before the backbone
STANDARD_MEAN, STANDARD_STD = 128.0, 48.0


def standardize_intensity(image: Any, *, mean: float = STANDARD_MEAN,
                          std: float = STANDARD_STD) -> np.ndarray:
    """The image with its 8-bit values mapped linearly to ``mean`` and standard deviation
    ``std``, rounded to the nearest integer and clipped to 0..255 (``PatchCore``'s
    ``intensity="standardize"``).

    One mean and one standard deviation over all pixels and channels (colours keep their
    ratios); an image with a standard deviation below 1 (nearly flat) is only shifted. The
    map is the same for every pixel: ``clip(rint((v - m) / max(s, 1) * std + mean))``.

    Args:
        image: an (H, W, 3) uint8 BGR array, an (H, W) gray one, or a path (as
            :func:`fissure.io.as_image` takes it).
        mean, std: the target mean (0..255) and standard deviation (> 0).

    Returns:
        (H, W, 3) uint8.
    """
    cv2 = require_cv2("standardize_intensity")
    mean = _finite(mean, "mean")
    std = _finite(std, "std", 1e-6)
    if mean > 255.0:
        raise ValueError(f"mean: expected a number in 0..255, got {mean!r}")
    img = as_image(image)
    if img.size == 0:
        raise ValueError(f"image: expected a non-empty image, got shape {img.shape}")
    m_c, s_c = cv2.meanStdDev(img)  # per channel, float64
    m_c, s_c = m_c.ravel(), s_c.ravel()
    m = float(m_c.mean())  # the channels have equal counts
    var = float((s_c * s_c + m_c * m_c).mean()) - m * m
    sd = max(math.sqrt(max(var, 0.0)), 1.0)
    lut = np.clip(np.rint((np.arange(256, dtype=np.float64) - m) / sd * std + mean), 0, 255)
    return cv2.LUT(np.ascontiguousarray(img), lut.astype(np.uint8))


@dataclass
class AnomalyResult:
    """One image's PatchCore result.

    Attributes:
        score: image anomaly score (anomalib's reweighted nearest-neighbour distance, or the
            plain maximum patch distance with ``scoring="max"``).
        anomaly_map: (H, W) float32 at the image's resolution: patch distances, nearest
            upsampled, stitched over tiles (mean where tiles overlap), Gaussian sigma 4.
        mask: (H, W) bool, ``anomaly_map > threshold``.
        boxes: (K, 4) float32 xyxy of the mask's 8-connected regions.
        box_scores: (K,) float32, the map's maximum inside each region.
        threshold: the pixel threshold used (calibrated at fit time).
        image_threshold: the image-score threshold (calibrated at fit time).
        glare: (H, W) bool specular mask when ``specular`` was set, else None.
    """

    score: float
    anomaly_map: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    threshold: float
    image_threshold: float
    glare: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def is_anomalous(self) -> bool:
        return bool(self.score > self.image_threshold)

    def overlay(self, image: Any, *, alpha: float = 0.45, legend: bool = True) -> np.ndarray:
        """The image (array or path) with this result marked on it
        (:func:`fissure.anomaly.heatmap_overlay`): unchanged where the map is well below the
        threshold, coloured where it approaches or passes it, the defect regions outlined and
        numbered as in :meth:`to_dict` (``regions[i]`` is number ``i + 1``), masked glare
        hatched, and a legend with the colour bar."""
        from .visualize import heatmap_overlay

        return heatmap_overlay(as_image(image), self.anomaly_map, self.threshold,
                               mask=self.mask, glare=self.glare, boxes=self.boxes, alpha=alpha,
                               legend=legend)

    def to_dict(self) -> dict:
        return {
            "score": float(self.score),
            "is_anomalous": self.is_anomalous,
            "image_threshold": float(self.image_threshold),
            "pixel_threshold": float(self.threshold),
            "regions": [
                {"id": i, "box": [float(v) for v in b], "score": float(s)}
                for i, (b, s) in enumerate(zip(self.boxes.tolist(), self.box_scores.tolist()),
                                           start=1)
            ],
            "height": int(self.anomaly_map.shape[0]),
            "width": int(self.anomaly_map.shape[1]),
        }


def _checksum(bank: np.ndarray, meta: dict) -> str:
    """sha256 over the bank (dtype, shape, bytes) and every other metadata field (canonical
    JSON, sorted keys): a changed value anywhere in the file is caught."""
    h = hashlib.sha256()
    settings = {k: v for k, v in meta.items() if k != "sha256"}
    h.update(json.dumps([bank.dtype.name, list(bank.shape), settings], sort_keys=True).encode())
    h.update(np.ascontiguousarray(bank).tobytes())
    return h.hexdigest()


def _size_pair(v: Any, name: str) -> Optional[tuple[int, int]]:
    return None if v is None else int_pair(v, name, MIN_TILE, 8192)


def _finite(v: Any, name: str, lo: float = 0.0) -> float:
    """A finite float >= lo (a bank's threshold or normalisation value)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) \
            or float(v) < lo:
        raise ValueError(f"{name}: expected a finite number >= {lo:g}, got {v!r}")
    return float(v)


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """anomalib's GaussianBlur2d(sigma, kernel 2 * int(4 sigma + 0.5) + 1, reflect border)."""
    cv2 = require_cv2("PatchCore")

    k = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(a, (k, k), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def _nearest_up(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """torch F.interpolate(mode='nearest') of a (gh, gw) map to (h, w): src = floor(dst * in / out)."""
    gh, gw = grid.shape
    ys = np.minimum((np.arange(h) * (gh / h)).astype(np.int64), gh - 1)
    xs = np.minimum((np.arange(w) * (gw / w)).astype(np.int64), gw - 1)
    return grid[ys[:, None], xs[None, :]]


class PatchCore:
    """PatchCore with a bundled EfficientNet-Lite0 backbone, running on the host in bounded
    memory.

    Args:
        backbone: a bundled backbone's name, ``"lite0"`` (EfficientNet-Lite0, the default:
            the smallest and fastest) or ``"lite2"`` (EfficientNet-Lite2: deeper and wider,
            slower; better on ELPV's poly cells only without the intensity standardisation,
            docs/patchcore_elpv.md), or an ONNX file whose outputs include
            ``layers`` as (B, C, H, W) maps (ImageNet normalisation).
        coreset_ratio: fraction of training patches kept in the memory bank (0 < r <= 1).
            The default 0.01 suits the high-resolution images fissure is for (a 12 MP image
            alone gives ~350k patches); from few small images (hundreds of patches each) a
            larger ratio gains accuracy (docs/anomaly_cli.md, "Defaults and why").
        num_neighbors: ``b`` of anomalib's image-score reweighting (1: plain maximum).
        tile_size: tile size in image pixels (int or (h, w), each 32..8192: at least twice
            the backbone's coarsest stride, 16); images are cut with SAHI's grid at
            ``overlap_ratio`` and tiles run at native resolution. None: the whole image is
            one tile.
        input_size: resize each tile to this (h, w), each 32..8192, before the backbone
            (None: native).
        layers: backbone output names to embed, finest first.
        intensity: ``"standardize"`` (the default): each image, before it is tiled, is
            mapped to mean 128 and standard deviation 48 of its 8-bit values
            (:func:`standardize_intensity`), so that exposure and gain that vary from shot
            to shot do not enter the bank (on ELPV's solar cells +1.9 points image AUROC on
            poly cells, docs/patchcore_elpv.md); ``None``: the pixels as they come (banks
            written before this option load as ``None``). A defect that is only a change of
            the whole image's brightness is normalised away with it; use ``None`` there.
        scoring: ``"anomalib"`` (reweighted, b = num_neighbors) or ``"max"`` (the paper's
            plain maximum patch distance).
        specular: ``None`` or ``"mask"`` (glare is not a defect): patches touching glare score 0 and the map
            is 0 under glare (``fissure.specular_mask`` with its default V > 240, S < 30,
            grown by ``specular_dilate`` pixels: a highlight's halo is bright too).
        specular_dilate: radius in pixels the glare mask is grown by (0..254).
        holdout: fraction of the training tiles kept out of the bank to calibrate the
            thresholds (every k-th tile).
        threshold_margin: the thresholds are the largest image score and the largest blurred
            map value seen on the held-out tiles, times ``1 + threshold_margin``: a test image
            larger than the held-out set samples further into the tail of the normal
            distribution, so the plain maximum would flag defect-free images.
        bank_dtype: ``"float32"`` or ``"float16"`` storage of the bank.
        backend, device, precision: passed to :func:`fissure.backends.open_model`.
        seed: seeds the random projection and the coreset's start.
    """

    def __init__(
        self,
        backbone: Union[str, "os.PathLike[str]", None] = None,
        *,
        coreset_ratio: float = 0.01,
        num_neighbors: int = 9,
        tile_size: Union[int, tuple[int, int], None] = 512,
        overlap_ratio: float = 0.25,
        input_size: Union[int, tuple[int, int], None] = None,
        layers: Sequence[str] = ("feat8", "feat16"),
        intensity: Optional[str] = "standardize",
        scoring: str = "anomalib",
        specular: Optional[str] = None,
        specular_dilate: int = 40,
        holdout: float = 0.2,
        threshold_margin: float = 0.25,
        bank_dtype: str = "float32",
        batch_size: Optional[int] = None,
        backend: str = "auto",
        device: str = "auto",
        precision: Optional[str] = "f32",
        seed: int = 0,
        num_threads: int = -1,
    ) -> None:
        if isinstance(coreset_ratio, bool) or not isinstance(coreset_ratio, numbers.Real) or not (
                0.0 < float(coreset_ratio) <= 1.0):
            raise ValueError(f"coreset_ratio: expected a number in (0, 1], got {coreset_ratio!r}")
        if isinstance(num_neighbors, bool) or not isinstance(num_neighbors, numbers.Integral) or num_neighbors < 1:
            raise ValueError(f"num_neighbors: expected a positive int, got {num_neighbors!r}")
        if scoring not in _SCORINGS:
            raise ValueError(f"scoring: expected one of {_SCORINGS}, got {scoring!r}")
        if intensity not in _INTENSITIES:
            raise ValueError(f"intensity: expected one of {_INTENSITIES}, got {intensity!r}")
        if specular not in (None, "mask"):
            raise ValueError(f"specular: expected None or 'mask', got {specular!r}")
        if isinstance(specular_dilate, bool) or not isinstance(specular_dilate, numbers.Integral) or not (
                0 <= specular_dilate <= 254):
            raise ValueError(f"specular_dilate: expected an int in 0..254, got {specular_dilate!r}")
        if isinstance(holdout, bool) or not isinstance(holdout, numbers.Real) or not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout: expected a number in [0, 1), got {holdout!r}")
        if isinstance(threshold_margin, bool) or not isinstance(threshold_margin, numbers.Real) or not (
                0.0 <= threshold_margin <= 10.0):
            raise ValueError(f"threshold_margin: expected a number in [0, 10], got {threshold_margin!r}")
        if bank_dtype not in ("float32", "float16"):
            raise ValueError(f"bank_dtype: expected 'float32' or 'float16', got {bank_dtype!r}")
        ratio_in(overlap_ratio, "overlap_ratio", 0.0, 0.9)
        optional_positive_int(batch_size, "batch_size")
        self.coreset_ratio = float(coreset_ratio)
        self.num_neighbors = int(num_neighbors)
        self.tile_size = _size_pair(tile_size, "tile_size")
        self.overlap_ratio = float(overlap_ratio)
        self.input_size = _size_pair(input_size, "input_size")
        self.layers = tuple(str(x) for x in layers)
        if not self.layers:
            raise ValueError("layers: expected at least one backbone output name")
        self.scoring = scoring
        self.intensity = intensity
        self.specular = specular
        self.specular_dilate = int(specular_dilate)
        self.holdout = float(holdout)
        self.threshold_margin = float(threshold_margin)
        self.bank_dtype = bank_dtype
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self.num_threads = check_num_threads(num_threads)
        self._backend_args = (backend, device, precision)

        from .. import models

        #: the bundled backbone's name ("lite0", "lite2"), None for a user's file
        self.backbone_name: Optional[str] = None
        if backbone is None or (isinstance(backbone, str) and backbone in models.BACKBONES):
            self.backbone_name = "lite0" if backbone is None else str(backbone)
            path = models.backbone_file(self.backbone_name)
            manifest = models.backbone_manifest(self.backbone_name)
            self.backbone_sha256 = models.verify_backbone(path, self.backbone_name)
            norm = manifest["input"]
            self.scale = float(norm.get("scale", 1.0 / 255.0))
            self.mean = tuple(float(v) for v in norm["mean"])
            self.std = tuple(float(v) for v in norm["std"])
            self.rgb = str(norm.get("color", "RGB")).upper() == "RGB"
        else:
            path = Path(backbone)
            if not path.is_file():
                raise FileNotFoundError(f"no such backbone file: {path}")
            self.backbone_sha256 = sha256_file(path)
            # ImageNet normalisation, as timm / torchvision backbones expect
            self.scale = 1.0 / 255.0
            self.mean, self.std, self.rgb = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True
        self.backbone_path = path
        self._model: Any = None
        self.bank: Optional[np.ndarray] = None
        self.threshold: Optional[float] = None
        self.image_threshold: Optional[float] = None
        self.stats: dict[str, Any] = {}
        #: the calibration statistics (fit, update; stored in the bank since format 2 files
        #: written by this version): the largest held-out normal pixel-map value and image
        #: score before the margin, the margin, the coreset ratio, the hold-out fraction,
        #: held-out tiles and training patches so far, update rounds. None: unknown (a bank
        #: written before they were stored)
        self.calibration: Optional[dict[str, Any]] = None

    # -- the backbone ------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            from ..backends import open_model

            backend, device, precision = self._backend_args
            model = open_model(self.backbone_path, backend, device,
                               num_threads=self.num_threads, precision=precision)
            names = [o.name for o in model.outputs]
            missing = [n for n in self.layers if n not in names]
            if missing:  # not kept: every later call raises this same error again
                raise ValueError(f"backbone {self.backbone_path}: no output named {missing}; it "
                                 f"has {names} (pass layers=...)")
            self._input_name = model.inputs[0].name
            self._model = model
        return self._model

    def _batch(self) -> int:
        """Tiles per backbone call: as given, else 1 on a CPU (larger batches only grow the
        runtime's activation memory there: measured 531 vs 297 MB RSS after the demo's fit at
        the same speed) and 8 on a GPU."""
        if self.batch_size is not None:
            return self.batch_size
        on_gpu = not str(getattr(self.model, "device", "cpu")).lower().startswith("cpu")
        return 8 if on_gpu else 1

    def _config(self, tile_hw: tuple[int, int]) -> PreprocessConfig:
        size = self.input_size or tile_hw
        return PreprocessConfig(input_size=size, mode="resize" if self.input_size else "none",
                                rgb=self.rgb, scale=self.scale, mean=self.mean, std=self.std)

    def _tiles(self, h: int, w: int) -> np.ndarray:
        if self.tile_size is None or (h <= self.tile_size[0] and w <= self.tile_size[1]):
            return np.array([[0, 0, w, h]], np.int64)
        th, tw = min(self.tile_size[0], h), min(self.tile_size[1], w)
        return slice_grid(h, w, th, tw, self.overlap_ratio, self.overlap_ratio)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """The image the backbone sees (``intensity``), before tiling."""
        return standardize_intensity(image) if self.intensity == "standardize" else image

    def _embed_tiles(self, image: np.ndarray, tiles: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """Yields (tiles of the batch, (b, gh, gw, D) embeddings)."""
        model = self.model
        # tiles of one image share a size except an image smaller than the tile: group them
        sizes = (tiles[:, 3] - tiles[:, 1]) * 100000 + (tiles[:, 2] - tiles[:, 0])
        for s in np.unique(sizes):
            group = tiles[sizes == s]
            th, tw = int(group[0, 3] - group[0, 1]), int(group[0, 2] - group[0, 0])
            cfg = self._config((th, tw))
            with BatchFeeder(image, group, cfg, batch_size=min(self._batch(), len(group)),
                             num_threads=self.num_threads) as feeder:
                for b, buf, count in feeder:
                    out = model.run({self._input_name: buf[:count]})
                    feats = [out[n] for n in self.layers]
                    yield feeder.batch_tiles(b), embed_patches(feats, num_threads=self.num_threads)

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, images: Iterable[Any], *, progress: bool = False,
            on_error: Optional[Callable[[Any, Exception], None]] = None) -> "PatchCore":
        """Learns "normal" from defect-free images (paths or arrays), streamed one at a time.

        Embeddings accumulate on the host (float16); a fraction ``holdout`` of the tiles
        (every k-th) is kept out to calibrate the thresholds; the rest are projected
        (sparse random projection, anomalib's eps = 0.9), thinned by greedy k-center and the
        selected original embeddings become the bank.

        ``on_error(image, exc)``: when given, an image that fails (unreadable, or the backbone
        fails on it) is passed to it with the exception and left out entirely (none of its
        tiles are kept); it may re-raise. Without it the exception propagates.
        """
        import time

        from .search import jl_min_dims, kcenter_greedy, random_projection

        t0 = time.perf_counter()
        train, held, tile_no, dim = self._embed_normals(images, "fit", progress, on_error)
        if tile_no == 0:
            raise ValueError("fit: expected at least one normal image, got none")
        if not train:  # one tile in all: calibrate on it as well
            train = [r for r, _, _ in held]
        t1 = time.perf_counter()
        feats = np.concatenate(train)
        del train
        n = max(1, int(feats.shape[0] * self.coreset_ratio))
        if n < feats.shape[0]:
            # anomalib's sparse random projection (eps = 0.9); when its Johnson-Lindenstrauss
            # width is not smaller than the features', k-center runs on the features themselves
            if jl_min_dims(feats.shape[0]) < feats.shape[1]:
                proj = random_projection(feats.astype(np.float32), seed=self.seed)
            else:
                proj = feats
            rng = np.random.default_rng(self.seed)
            sel = kcenter_greedy(proj, n, start_index=int(rng.integers(feats.shape[0])),
                                 num_threads=self.num_threads)
            del proj
        else:
            sel = np.arange(feats.shape[0])
        self.bank = np.ascontiguousarray(feats[np.sort(sel)], dtype=self.bank_dtype)
        t2 = time.perf_counter()
        # thresholds: the largest held-out normal values (each held-out tile's image score,
        # computed as predict computes it, and its blurred pixel map)
        calib = held if held else [(feats[: min(len(feats), 4096)], None, None)]
        pix, img_scores = self._calibrate(calib, self.bank)
        grow = 1.0 + self.threshold_margin
        pixel_max = max(pix) if pix else max(img_scores)
        self.image_threshold = max(img_scores) * grow
        self.threshold = pixel_max * grow
        self.calibration = {
            "pixel_max": float(pixel_max), "image_max": float(max(img_scores)),
            "threshold_margin": self.threshold_margin, "coreset_ratio": self.coreset_ratio,
            "holdout": self.holdout, "holdout_tiles": len(held),
            "train_patches": int(feats.shape[0]), "updates": 0}
        self.stats = {"fit_embed_s": t1 - t0, "coreset_s": t2 - t1,
                      "calibrate_s": time.perf_counter() - t2, "train_patches": int(feats.shape[0]),
                      "bank_size": int(self.bank.shape[0]), "dims": int(dim or 0),
                      "holdout_tiles": len(held)}
        return self

    def _embed_normals(self, images: Iterable[Any], desc: str, progress: bool,
                       on_error: Optional[Callable[[Any, Exception], None]],
                       min_side: int = 0) -> tuple[list, list, int, Optional[int]]:
        """Embeds normal images one at a time: (training rows, held-out tiles as (rows, grid,
        tile size), tiles seen, feature width). Every ``round(1 / holdout)``-th tile is held
        out. An image with a side below ``min_side`` raises a ValueError (through ``on_error``
        when given)."""
        items: Iterable[Any] = (
            [images] if isinstance(images, (str, os.PathLike, np.ndarray)) else images)
        it = items
        if progress:
            from tqdm import tqdm

            total = len(items) if isinstance(items, Sized) else None
            it = tqdm(items, desc=desc, unit="img", total=total)
        train: list[np.ndarray] = []
        held: list[tuple[np.ndarray, tuple[int, int], tuple[int, int]]] = []
        k_hold = int(round(1.0 / self.holdout)) if self.holdout > 0 else 0
        tile_no = 0
        dim = None
        for item in it:
            # one image's tiles are kept only once all of them are embedded
            img_train: list[np.ndarray] = []
            img_held: list[tuple[np.ndarray, tuple[int, int], tuple[int, int]]] = []
            n = tile_no
            try:
                img = as_image(item)
                if min(img.shape[:2]) < min_side:
                    raise ValueError(
                        f"{desc}: a {img.shape[1]} x {img.shape[0]} image or crop is smaller "
                        f"than the smallest the backbone scores, {min_side} x {min_side} "
                        "pixels; crop a larger region around the false alarm")
                for btiles, emb in self._embed_tiles(self._prepare(img),
                                                     self._tiles(*img.shape[:2])):
                    for (x0, y0, x1, y1), e in zip(btiles.tolist(), emb):
                        rows = e.reshape(-1, e.shape[-1])
                        if k_hold and n % k_hold == k_hold - 1:
                            # the tile's own size: its map is upsampled to it, as in predict
                            img_held.append((rows.astype(np.float16), e.shape[:2],
                                             (y1 - y0, x1 - x0)))
                        else:
                            img_train.append(rows.astype(np.float16))
                        n += 1
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(item, exc)
                continue
            train += img_train
            held += img_held
            if img_train or img_held:
                dim = (img_train or [r for r, _, _ in img_held])[0].shape[1]
            tile_no = n
        return train, held, tile_no, dim

    def _calibrate(self, calib: Sequence[tuple[np.ndarray, Any, Any]],
                   bank: np.ndarray) -> tuple[list[float], list[float]]:
        """Each held-out tile's blurred-map maximum (tiles with a grid) and image score
        against ``bank``, computed as predict computes them."""
        from .search import knn_search

        pix, img_scores = [], []
        for rows, grid, size in calib:
            q = rows.astype(np.float32)
            d, _ = knn_search(bank, q, 1, num_threads=self.num_threads)
            s = np.sqrt(np.maximum(d[:, 0], 0))
            k = int(np.argmax(s))
            img_scores.append(self._reweight(q[k], bank)
                              if self.scoring == "anomalib" and self.num_neighbors > 1
                              else float(s[k]))
            if grid is not None:
                m = _gaussian_blur(_nearest_up(s.reshape(grid).astype(np.float32), *size), 4.0)
                pix.append(float(m.max()))
        return pix, img_scores

    # -- update: the feedback loop ---------------------------------------------------------
    def update(self, images: Iterable[Any], *, coreset_ratio: Optional[float] = None,
               progress: bool = False,
               on_error: Optional[Callable[[Any, Exception], None]] = None) -> "PatchCore":
        """Adds confirmed-normal images or crops to the memory bank, in place; returns self.

        The images (paths or arrays: whole images, or review crops around a false alarm) are
        embedded with the bank's own tiling, input size, layers and normalisation: an image
        larger than a tile is tiled as in :meth:`fit`; one no larger than a tile is one tile
        at its own size (as :meth:`predict` sees it), so a crop must be at least ``MIN_TILE``
        (32) pixels on each side, else a ValueError.

        As in :meth:`fit`, every ``round(1 / holdout)``-th new tile is held out for the
        calibration; the rest are the new training patches. The bank keeps every row it has
        (they stand for training images that are not here any more) and gains
        ``max(1, int(new patches * coreset_ratio))`` of the new patches, chosen by greedy
        k-center on the union with the bank rows as centres already selected: each step
        adds the new patch farthest from the bank and from the patches added so far (fewer
        when the rest already lie in the bank). The bank grows as :meth:`fit` on the old and
        the new images together would grow it. ``coreset_ratio``: None takes the bank's
        (stored in its calibration statistics, else the constructor's).

        The calibration is re-run: the held-out new tiles are scored against the grown bank,
        as predict scores them, and each threshold becomes ``max(the stored held-out
        maximum, the new held-out maximum) * (1 + threshold_margin)``. The stored maximum was
        measured against the old bank; a bank that only grows can only lower those tiles'
        patch distances, so the combined value is an upper bound of the maximum over all
        held-out tiles: the thresholds never fall in an update, and rise only where the new
        normals' held-out tiles score higher than anything seen before. With fewer new tiles
        than ``round(1 / holdout)`` none is held out and the thresholds stay. A bank without
        stored statistics takes ``threshold / (1 + threshold_margin)`` as its maximum.

        Nothing changes when it raises (no images, a crop too small, the backbone failing).
        ``on_error(image, exc)`` as in :meth:`fit`. The statistics of the round are in
        ``stats``.
        """
        import time

        from .search import jl_min_dims, knn_search, random_projection

        bank = self._check_fitted()
        cal = dict(self.calibration or {})
        if coreset_ratio is None:
            ratio = float(cal.get("coreset_ratio", self.coreset_ratio))
        elif isinstance(coreset_ratio, bool) or not isinstance(coreset_ratio, numbers.Real) or \
                not 0.0 < float(coreset_ratio) <= 1.0:
            raise ValueError(f"coreset_ratio: expected None or a number in (0, 1], got "
                             f"{coreset_ratio!r}")
        else:
            ratio = float(coreset_ratio)
        t0 = time.perf_counter()
        train, held, tile_no, _ = self._embed_normals(images, "update", progress, on_error,
                                                      min_side=MIN_TILE)
        if tile_no == 0:
            raise ValueError("update: expected at least one normal image or crop, got none")
        t1 = time.perf_counter()
        new = np.concatenate(train) if train else np.zeros((0, bank.shape[1]), np.float16)
        del train
        if new.shape[1] != bank.shape[1]:
            raise ValueError(f"update: the new patches have {new.shape[1]} features, the bank "
                             f"{bank.shape[1]}; the bank does not belong to this backbone")
        n_add = min(new.shape[0], max(1, int(new.shape[0] * ratio))) if len(new) else 0
        if n_add == new.shape[0] and ratio >= 1.0:
            sel = np.arange(new.shape[0])
        elif n_add:
            both = np.concatenate([bank.astype(np.float32), new.astype(np.float32)])
            if jl_min_dims(both.shape[0]) < both.shape[1]:  # as fit: project when it is smaller
                both = random_projection(both, seed=self.seed)
            old_p, new_p = both[: bank.shape[0]], np.ascontiguousarray(both[bank.shape[0]:])
            del both
            # k-center with the bank's rows already selected: min_dist starts at each new
            # patch's squared distance to its nearest bank row
            d, _ = knn_search(np.ascontiguousarray(old_p), new_p, 1,
                              num_threads=self.num_threads)
            min_dist = np.maximum(d[:, 0], 0.0).astype(np.float32)
            # each step's distances as |x|^2 - 2 x.c + |c|^2 (one matrix-vector product)
            sq = np.einsum("ij,ij->i", new_p, new_p)
            tiny = 1e-6 * max(float(sq.max()), 1e-12)  # below it: a duplicate, not a gap
            picks = []
            for _ in range(n_add):
                j = int(np.argmax(min_dist))
                if not min_dist[j] > tiny:  # the rest lie in the bank already
                    break
                picks.append(j)
                dj = sq - 2.0 * (new_p @ new_p[j]) + sq[j]
                np.minimum(min_dist, np.maximum(dj, 0.0), out=min_dist)
                min_dist[j] = 0.0
            sel = np.sort(np.asarray(picks, np.int64))
        else:
            sel = np.zeros(0, np.int64)
        grown = np.ascontiguousarray(np.concatenate([bank, new[sel].astype(bank.dtype)]))
        t2 = time.perf_counter()
        pix, img_scores = self._calibrate(held, grown)
        grow = 1.0 + self.threshold_margin
        margin = float(cal.get("threshold_margin", self.threshold_margin))
        old_pix = float(cal.get("pixel_max", float(self.threshold) / (1.0 + margin)))  # type: ignore[arg-type]
        old_img = float(cal.get("image_max", float(self.image_threshold) / (1.0 + margin)))  # type: ignore[arg-type]
        pixel_max = max([old_pix, *pix])
        image_max = max([old_img, *img_scores])
        before = (int(bank.shape[0]), float(self.threshold), float(self.image_threshold))  # type: ignore[arg-type]
        # every value is computed: now the model changes
        self.bank = grown
        self.threshold = pixel_max * grow
        self.image_threshold = image_max * grow
        cal.update({
            "pixel_max": pixel_max, "image_max": image_max,
            "threshold_margin": self.threshold_margin, "coreset_ratio": ratio,
            "holdout": self.holdout,
            "holdout_tiles": int(cal.get("holdout_tiles", 0)) + len(held),
            "train_patches": int(cal.get("train_patches", 0)) + int(new.shape[0]),
            "updates": int(cal.get("updates", 0)) + 1})
        self.calibration = cal
        self.stats = {"update_embed_s": t1 - t0, "coreset_s": t2 - t1,
                      "calibrate_s": time.perf_counter() - t2, "new_tiles": tile_no,
                      "new_patches": int(new.shape[0]), "added_rows": int(len(sel)),
                      "holdout_tiles": len(held), "bank_size_before": before[0],
                      "bank_size": int(grown.shape[0]), "threshold_before": before[1],
                      "image_threshold_before": before[2]}
        return self

    @property
    def review_band(self) -> Optional[tuple[float, float]]:
        """``(low, high)`` around the pixel threshold, in anomaly-map units (the map, region
        scores): ``low`` is the largest value the held-out normal tiles produced (the
        threshold divided by ``1 + threshold_margin``), ``high`` the threshold times
        ``1 + threshold_margin``. Below ``low`` a value is within what normal tiles gave;
        from ``low`` to the threshold it is in the safety margin; from the threshold to
        ``high`` it is flagged but within one margin step, where false alarms on a benign
        variation the bank has not seen lie: the values a person should review. None before
        fit or load."""
        return self._band(self.threshold, "pixel_max")

    @property
    def image_review_band(self) -> Optional[tuple[float, float]]:
        """As :attr:`review_band`, for image scores around ``image_threshold``."""
        return self._band(self.image_threshold, "image_max")

    def _band(self, threshold: Optional[float], key: str) -> Optional[tuple[float, float]]:
        if threshold is None:
            return None
        cal = self.calibration or {}
        grow = 1.0 + float(cal.get("threshold_margin", self.threshold_margin))
        low = float(cal[key]) if key in cal else float(threshold) / grow
        return min(low, float(threshold)), float(threshold) * grow

    # -- the image threshold for a target rate -----------------------------------------------
    def calibrate(self, normal: Iterable[Any], defective: Optional[Iterable[Any]] = None, *,
                  false_alarm_rate: Optional[float] = None,
                  miss_rate: Optional[float] = None) -> dict[str, Any]:
        """Sets ``image_threshold`` for a target rate from held-out images; returns a report.

        ``fit`` sets the image threshold from its held-out normal tiles alone (their largest
        score times ``1 + threshold_margin``): almost no false alarms, at whatever miss rate
        that gives. ``calibrate`` scores images that were *not* used to fit (defect-free
        ``normal`` ones, and optionally labelled ``defective`` ones; paths or arrays, as
        :meth:`predict` takes them) and sets the threshold for one target
        (:func:`fissure.anomaly.threshold_for`):

        * ``false_alarm_rate=f``: the normal scores' upper quantile, so that at most
          ``floor(f * n)`` of them are flagged; the fewest misses for that budget.
        * ``miss_rate=m`` (needs ``defective``): the largest threshold that misses at most
          ``floor(m * n_d)`` of the defective images; the fewest false alarms for that budget.

        The pixel threshold is not changed. The report: ``image_threshold`` (new) and
        ``previous``, and the false-alarm / miss rates on these images at both
        (``false_alarm_rate``, ``miss_rate``, ``previous_false_alarm_rate``,
        ``previous_miss_rate``; miss rates None without defective images), ``n_normal``,
        ``n_defective``, and the image ``scores`` (``normal``, ``defective``). The target is
        recorded in ``calibration`` and saved with the bank. Nothing changes when it raises.
        """
        from .metrics import rates_at, threshold_for

        self._check_fitted()
        if (false_alarm_rate is None) == (miss_rate is None):
            raise ValueError("calibrate: give exactly one of false_alarm_rate and miss_rate")
        if miss_rate is not None and defective is None:
            raise ValueError("calibrate: miss_rate needs labelled defective images")

        def scores(items: Any) -> np.ndarray:
            if isinstance(items, (str, os.PathLike, np.ndarray)):
                items = [items]
            return np.asarray([self.predict(x).score for x in items], np.float64)

        ns = scores(normal)
        if ns.size == 0:
            raise ValueError("calibrate: expected at least one normal image, got none")
        ds = None if defective is None else scores(defective)
        if ds is not None and ds.size == 0:
            raise ValueError("calibrate: defective: expected at least one image, got none")
        t = threshold_for(ns, ds, false_alarm_rate=false_alarm_rate, miss_rate=miss_rate)
        previous = float(self.image_threshold)  # type: ignore[arg-type]
        fa, miss = rates_at(t, ns, ds)
        fa0, miss0 = rates_at(previous, ns, ds)
        self.image_threshold = t
        cal = dict(self.calibration or {})
        cal["image_target"] = ({"false_alarm_rate": float(false_alarm_rate)}
                               if false_alarm_rate is not None
                               else {"miss_rate": float(miss_rate)})  # type: ignore[arg-type]
        cal["image_target"].update({"n_normal": int(ns.size),
                                    "n_defective": 0 if ds is None else int(ds.size)})
        self.calibration = cal
        return {"image_threshold": t, "previous": previous, "false_alarm_rate": fa,
                "miss_rate": miss, "previous_false_alarm_rate": fa0,
                "previous_miss_rate": miss0, "n_normal": int(ns.size),
                "n_defective": 0 if ds is None else int(ds.size),
                "scores": {"normal": ns, "defective": ds}}

    # -- predict -----------------------------------------------------------------------------
    def _check_fitted(self) -> np.ndarray:
        if self.bank is None or self.threshold is None or self.image_threshold is None:
            raise RuntimeError("PatchCore: call fit() or PatchCore.load() first")
        return self.bank

    def predict(self, image: Any) -> AnomalyResult:
        """Scores an image (path or array): the image score, a full-resolution anomaly map,
        the defect mask and its regions."""
        from .search import knn_search

        bank = self._check_fitted()
        img = as_image(image)
        h, w = img.shape[:2]
        tiles = self._tiles(h, w)
        acc = np.zeros((h, w), np.float32)
        cnt = np.zeros((h, w), np.uint16)  # tiles covering each pixel (<= 100 at overlap 0.9)
        glare = None
        if self.specular == "mask":
            from ..specular import specular_mask

            glare = specular_mask(img, dilate=self.specular_dilate, num_threads=self.num_threads)
        best = (-1.0, None)  # (score, embedding row) of the most anomalous patch
        for btiles, emb in self._embed_tiles(self._prepare(img), tiles):
            b, gh, gw, dd = emb.shape
            d, _ = knn_search(bank, emb.reshape(-1, dd), 1, num_threads=self.num_threads)
            s = np.sqrt(np.maximum(d[:, 0], 0)).reshape(b, gh, gw)
            for i, (x0, y0, x1, y1) in enumerate(btiles.tolist()):
                si = s[i]
                if glare is not None and glare[y0:y1, x0:x1].any():
                    frac = _block_mean(glare[y0:y1, x0:x1], gh, gw)
                    si = np.where(frac > 0.0, 0.0, si).astype(np.float32)
                k = int(np.argmax(si))
                if si.flat[k] > best[0]:
                    best = (float(si.flat[k]), emb[i].reshape(-1, dd)[k].copy())
                acc[y0:y1, x0:x1] += _nearest_up(si.astype(np.float32), y1 - y0, x1 - x0)
                cnt[y0:y1, x0:x1] += 1
        np.divide(acc, np.maximum(cnt, 1), out=acc)
        del cnt
        amap = _gaussian_blur(acc, 4.0)
        del acc
        if glare is not None:
            amap[glare] = 0.0
        score = best[0]
        if self.scoring == "anomalib" and self.num_neighbors > 1 and best[1] is not None:
            score = self._reweight(best[1], bank)
        mask = amap > self.threshold
        boxes, box_scores = _regions(mask, amap)
        return AnomalyResult(float(score), amap, mask, boxes, box_scores, float(self.threshold),
                             float(self.image_threshold), glare)

    def _reweight(self, patch: np.ndarray, bank: np.ndarray) -> float:
        """anomalib's image score: w * s* with w = 1 - softmax(|m_test* - m_j|)[0] over the
        b nearest bank entries m_j of m*, the nearest bank entry of the worst test patch."""
        from .search import knn_search

        q = patch[None].astype(np.float32)
        d, i = knn_search(bank, q, 1)
        s_star = float(np.sqrt(max(float(d[0, 0]), 0.0)))
        b = min(self.num_neighbors, bank.shape[0])
        if b < 2:
            # a one-row bank: the softmax over one neighbour is 1 and the weight 0 (every image
            # would score 0); the plain nearest distance instead
            return s_star
        _, nb = knn_search(bank, bank[i[0, :1]].astype(np.float32), b)
        dist = np.sqrt(np.maximum(((bank[nb[0]].astype(np.float32) - q) ** 2).sum(1), 0))
        e = np.exp(dist - dist.max())
        w = 1.0 - float(e[0] / e.sum())
        return w * s_star

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Writes the bank and its metadata as safetensors, atomically."""
        from safetensors.numpy import save

        from ..io import _atomic_write_bytes

        bank = self._check_fitted()
        meta = {
            "format": FORMAT, "format_version": str(FORMAT_VERSION),
            "backbone_sha256": self.backbone_sha256, "layers": json.dumps(list(self.layers)),
            "backbone": self.backbone_name or "",
            "tile_size": json.dumps(self.tile_size), "overlap_ratio": repr(self.overlap_ratio),
            "input_size": json.dumps(self.input_size),
            "normalisation": json.dumps({"scale": self.scale, "mean": self.mean, "std": self.std,
                                         "rgb": self.rgb}),
            "threshold": repr(float(self.threshold)),  # type: ignore[arg-type]
            "image_threshold": repr(float(self.image_threshold)),  # type: ignore[arg-type]
            "num_neighbors": str(self.num_neighbors), "scoring": self.scoring,
            "intensity": json.dumps(self.intensity),
            "specular": json.dumps(self.specular), "specular_dilate": str(self.specular_dilate),
        }
        if self.calibration is not None:
            meta["calibration"] = json.dumps(self.calibration, sort_keys=True)
        meta["sha256"] = _checksum(bank, meta)
        p = Path(path)
        _atomic_write_bytes(p, save({"bank": np.ascontiguousarray(bank)}, metadata=meta))
        return p

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"],
             backbone: Union[str, "os.PathLike[str]", None] = None, **kwargs: Any) -> "PatchCore":
        """Reads a bank written by :meth:`save`; refuses a corrupt, truncated or foreign file,
        or a bank built with another backbone, with a ValueError saying which.

        ``backbone=None`` takes the bundled backbone the bank records (``"lite0"`` for banks
        written before banks recorded it); a bank built from a file of your own needs that
        file.

        The bank's thresholds, tiling, layers, normalisation, scoring and glare handling are
        restored from the file and checked by the constructor's own rules (a value it would
        refuse is refused here too); ``specular`` / ``specular_dilate`` given in ``kwargs``
        override the saved ones. The file's checksum covers the bank and every setting."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no such memory-bank file: {p}")
        clash = sorted(set(kwargs) & set(_BANK_SETTINGS))
        if clash:
            raise TypeError(f"PatchCore.load: {', '.join(clash)} come(s) from the bank file; "
                            "fit a new bank to change them")
        meta, bank = _read_bank(p)
        from .. import models

        saved_name = meta.get("backbone", "lite0")  # banks written before it: the default
        if backbone is None and saved_name:
            if saved_name not in models.BACKBONES:
                raise ValueError(f"{p}: the bank was built with backbone {saved_name!r}, which "
                                 f"this fissure does not bundle ({sorted(models.BACKBONES)})")
            backbone = saved_name
        elif backbone is None:
            raise ValueError(f"{p}: the bank was built with a backbone file of your own "
                             f"(sha256 {str(meta.get('backbone_sha256'))[:16]}...); pass it "
                             "as backbone=")
        try:
            settings = _settings_from_meta(meta)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{p}: invalid PatchCore metadata ({exc})") from None
        from_bank = set(settings) - set(kwargs)
        settings.update({k: kwargs.pop(k) for k in ("specular", "specular_dilate")
                         if k in kwargs})
        try:
            pc = cls(backbone, **settings, **kwargs)
        except ValueError as exc:  # the constructor's messages start with the option's name
            if str(exc).split(":", 1)[0].split("[", 1)[0] in from_bank:
                raise ValueError(f"{p}: invalid PatchCore metadata ({exc})") from None
            raise
        try:
            norm = json.loads(meta["normalisation"])
            if not isinstance(norm, dict) or not isinstance(norm.get("rgb"), bool):
                raise ValueError(f"normalisation: expected scale, mean, std and rgb, got {norm!r}")
            mean, std = norm["mean"], norm["std"]
            if not isinstance(mean, list) or not isinstance(std, list) or len(mean) != 3 \
                    or len(std) != 3:
                raise ValueError(f"normalisation: expected 3 means and 3 stds, got {norm!r}")
            pc.mean = tuple(_finite(v, "normalisation mean", -math.inf) for v in mean)
            pc.std = tuple(_finite(v, "normalisation std", 1e-6) for v in std)
            pc.scale = _finite(norm["scale"], "normalisation scale", 1e-9)
            pc.rgb = norm["rgb"]
            pc.threshold = _finite(float(meta["threshold"]), "threshold")
            pc.image_threshold = _finite(float(meta["image_threshold"]), "image_threshold")
            if "calibration" in meta:
                pc.calibration = _calibration_from_meta(meta["calibration"])
                for key in ("threshold_margin", "coreset_ratio", "holdout"):
                    if key not in kwargs:
                        setattr(pc, key, pc.calibration[key])
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{p}: invalid PatchCore metadata ({exc})") from None
        built_with = str(meta.get("backbone_sha256"))
        if built_with != pc.backbone_sha256:
            was = f"the bundled {saved_name!r}" if saved_name else "a backbone file"
            raise ValueError(
                f"{p}: the bank was built with {was} (backbone sha256 {built_with[:16]}...), "
                f"this backbone ({pc.backbone_name or pc.backbone_path.name}) is "
                f"{pc.backbone_sha256[:16]}...; load it with the backbone it was built with")
        pc.bank = bank
        pc.bank_dtype = bank.dtype.name
        return pc


def _settings_from_meta(meta: dict) -> dict[str, Any]:
    """The constructor's keywords as the bank's metadata gives them (the constructor checks
    them)."""
    def number(key: str, kind: type) -> Any:
        v = json.loads(meta[key])
        if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int):
            raise ValueError(f"{key}: expected {'a number' if kind is float else 'an int'}, "
                             f"got {meta[key]!r}")
        return v

    def size(key: str) -> Any:
        v = json.loads(meta[key])
        return tuple(v) if isinstance(v, list) else v

    layers = json.loads(meta["layers"])
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise ValueError(f"layers: expected a list of output names, got {meta['layers']!r}")
    return {
        "layers": tuple(layers), "tile_size": size("tile_size"),
        "overlap_ratio": number("overlap_ratio", float), "input_size": size("input_size"),
        "num_neighbors": number("num_neighbors", int), "scoring": meta["scoring"],
        # banks written before the option: the pixels as they came
        "intensity": json.loads(meta.get("intensity", "null")),
        "specular": json.loads(meta.get("specular", "null")),
        "specular_dilate": number("specular_dilate", int) if "specular_dilate" in meta else 40,
    }


def _calibration_from_meta(text: str) -> dict[str, Any]:
    """The bank's calibration statistics, each checked (the checksum already matched)."""
    cal = json.loads(text)
    if not isinstance(cal, dict):
        raise ValueError(f"calibration: expected an object, got {text!r}")
    limits = {"pixel_max": (0.0, math.inf), "image_max": (0.0, math.inf),
              "threshold_margin": (0.0, 10.0), "coreset_ratio": (1e-12, 1.0),
              "holdout": (0.0, 1.0 - 1e-12)}
    out: dict[str, Any] = {}
    for key, (lo, hi) in limits.items():
        v = _finite(cal.get(key), f"calibration {key}", lo)
        if v > hi:
            raise ValueError(f"calibration {key}: expected at most {hi:g}, got {v!r}")
        out[key] = v
    for key in ("holdout_tiles", "train_patches", "updates"):
        v = cal.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"calibration {key}: expected an int >= 0, got {v!r}")
        out[key] = v
    if isinstance(cal.get("image_target"), dict):  # set by calibrate()
        out["image_target"] = cal["image_target"]
    return out


def _read_bank(p: Path) -> tuple[dict, np.ndarray]:
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="numpy") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            if meta.get("format") != FORMAT or keys != ["bank"]:
                raise ValueError(f"{p}: not a fissure PatchCore bank (format "
                                 f"{meta.get('format')!r}, tensors {keys})")
            bank = f.get_tensor("bank")
    except ValueError:
        raise
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ValueError(f"{p}: cannot read the memory bank ({type(exc).__name__}: {exc}); "
                         f"the file is corrupt or truncated") from None
    version = meta.get("format_version")
    if version == "1":
        raise ValueError(f"{p}: bank format version 1, whose checksum does not cover its "
                         f"settings; this fissure reads version {FORMAT_VERSION}: re-fit the "
                         "bank (fissure anomaly fit, or PatchCore.fit and save)")
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{p}: bank format version {version!r}, this fissure reads "
                         f"{FORMAT_VERSION}: re-fit the bank with this fissure")
    if bank.ndim != 2 or bank.dtype not in (np.float32, np.float16) or bank.shape[0] < 1:
        raise ValueError(f"{p}: expected a (N, D) float32/float16 bank, got {bank.shape} {bank.dtype}")
    if _checksum(bank, meta) != meta.get("sha256"):
        raise ValueError(f"{p}: the bank's checksum does not match its contents (a corrupt or "
                         "edited file); re-fit the bank")
    return meta, bank


def _block_mean(mask: np.ndarray, gh: int, gw: int) -> np.ndarray:
    """Fraction of each patch cell (the tile split into a gh x gw grid) that is set."""
    h, w = mask.shape
    ys = (np.arange(gh + 1) * h) // gh
    xs = (np.arange(gw + 1) * w) // gw
    c = np.zeros((h + 1, w + 1), np.int64)
    c[1:, 1:] = np.cumsum(np.cumsum(mask.astype(np.int64), 0), 1)
    tot = c[ys[1:, None], xs[None, 1:]] - c[ys[:-1, None], xs[None, 1:]] - c[ys[1:, None], xs[None, :-1]] + c[ys[:-1, None], xs[None, :-1]]
    area = (ys[1:] - ys[:-1])[:, None] * (xs[1:] - xs[:-1])[None, :]
    return tot / np.maximum(area, 1)


def _regions(mask: np.ndarray, amap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cv2 = require_cv2("PatchCore")

    if not mask.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    n, labels, st, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in st[1:, :4]], np.float32).reshape(-1, 4)
    scores = np.zeros(n - 1, np.float32)
    np.maximum.at(scores, labels[mask] - 1, amap[mask])
    return boxes, scores
