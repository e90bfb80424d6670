"""Exported anomalib models (EfficientAD, PatchCore, PaDiM, ...) run tile by tile.

anomalib 2.x exports (``engine.export`` / ``anomalib export``, ONNX or OpenVINO IR) carry
their own pre-processing (resize to the training size, ImageNet normalisation) and
post-processing (min-max normalisation around the calibrated thresholds, thresholding) inside
the graph: the input is ``input`` (N, 3, H, W) float32 RGB in [0, 1]; the outputs are
``pred_score`` (N,), ``pred_label`` (N,) bool, ``anomaly_map`` (N, 1, h, w) and ``pred_mask``
(N, 1, h, w) bool, where (h, w) is the size the graph resized to. :class:`AnomalyModel` cuts
an image with SAHI's grid, runs the tiles a batch at a time, resizes each tile's
``anomaly_map`` to the tile (bilinear) and stitches them into one full-resolution map with
tapered weights where tiles overlap, and returns the same :class:`AnomalyResult` as
:class:`fissure.PatchCore`. See docs/models.md.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from .._optional import require_cv2
from .._validate import check_num_threads, int_pair, optional_positive_int, ratio_in
from ..io import as_image
from ..preprocess import PreprocessConfig
from ..scheduler import BatchFeeder
from ..tiling import slice_grid
from .patchcore import AnomalyResult, _regions

__all__ = ["AnomalyModel", "ANOMALIB_OUTPUTS", "taper_weights"]

#: the outputs of an anomalib 2.x export (``InferenceBatch``'s fields, in its order); an
#: export made without thresholding has only the first and the third
ANOMALIB_OUTPUTS = ("pred_score", "pred_label", "anomaly_map", "pred_mask")
#: metadata keys (ONNX ``metadata_props``, OpenVINO ``rt_info``) read for the thresholds when
#: present; anomalib writes none of them, a user may add them (docs/models.md)
META_PIXEL = ("pixel_threshold", "anomalib.pixel_threshold")
META_IMAGE = ("image_threshold", "anomalib.image_threshold")
#: the normalised threshold of an anomalib 2.x export with the default sensitivity (0.5):
#: ``PostProcessor.normalized_pixel_threshold = 1 - pixel_sensitivity``
NORMALISED_THRESHOLD = 0.5
#: the input a dynamic-size export is probed with (odd, so no training size matches it), and
#: the working size assumed when its map comes back at that size (anomalib's default)
PROBE = (67, 61)
DEFAULT_SIZE = (256, 256)
#: tile sizes below this are refused (the smallest backbone stride anomalib models use x 2)
MIN_TILE = 16
ModelPath = Union[str, "os.PathLike[str]"]


def taper_weights(n: int, lo_inner: bool, hi_inner: bool, ramp: int) -> np.ndarray:
    """The 1-D blending weight of a tile ``n`` pixels long: 1 in its interior, a linear ramp
    ``(i + 0.5) / ramp`` over the ``ramp`` pixels next to an edge that faces another tile
    (``lo_inner``: the start edge, ``hi_inner``: the end edge), so that across an overlap of
    ``ramp`` pixels two tiles cross-fade; edges on the image border are not tapered. Every
    weight is > 0."""
    w = np.ones(n, np.float64)
    r = min(int(ramp), n)
    if r > 0:
        ramp_up = (np.arange(r, dtype=np.float64) + 0.5) / r
        if lo_inner:
            w[:r] = np.minimum(w[:r], ramp_up)
        if hi_inner:
            w[n - r:] = np.minimum(w[n - r:], ramp_up[::-1])
    return w


def _read_threshold(meta: dict, keys: tuple[str, ...]) -> Optional[float]:
    for k in keys:
        if k in meta:
            try:
                v = float(str(meta[k]).strip())
            except ValueError:
                continue
            if math.isfinite(v):
                return v
    return None


def _onnx_threshold(path: Path, output: str) -> Optional[float]:
    """The constant a ``Greater`` node compares with to make ``output`` (anomalib's
    ``preds > threshold``), read from the ONNX graph; None when the graph does not show one
    (or the ``onnx`` package is not installed)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - informative only: the backend reports bad files
        return None
    g = m.graph
    consts: dict[str, np.ndarray] = {}
    for t in g.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL and int(np.prod(t.dims or [1])) == 1:
            try:
                consts[t.name] = numpy_helper.to_array(t)
            except Exception:  # noqa: BLE001
                pass
    producer: dict[str, Any] = {}
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    arr = numpy_helper.to_array(a.t)
                    if arr.size == 1:
                        consts[node.output[0]] = arr
        for o in node.output:
            producer[o] = node
    name = output
    for _ in range(8):  # through Identity / Cast / Reshape-like wrappers to the comparison
        node = producer.get(name)
        if node is None:
            return None
        if node.op_type == "Greater" and len(node.input) == 2 and node.input[1] in consts:
            v = float(np.asarray(consts[node.input[1]]).reshape(()))
            return v if math.isfinite(v) else None
        if node.op_type in ("Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze") and node.input:
            name = node.input[0]
            continue
        return None
    return None


def _openvino_threshold(path: Path, output: str) -> Optional[float]:
    """As :func:`_onnx_threshold`, from an OpenVINO IR (the ``Greater`` op feeding the
    result named ``output``)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    try:
        model = ov.Core().read_model(str(path))
        res = [r for r in model.outputs if output in r.get_names()]
        if not res:
            return None
        node = res[0].get_node()
        for _ in range(8):
            t = node.get_type_name()
            if t == "Greater":
                c = node.input_value(1).get_node()
                if c.get_type_name() == "Convert":
                    c = c.input_value(0).get_node()
                if c.get_type_name() != "Constant":
                    return None
                arr = np.asarray(c.get_data())
                if arr.size != 1:
                    return None
                v = float(arr.reshape(()))
                return v if math.isfinite(v) else None
            if t in ("Result", "Convert", "Reshape", "Unsqueeze", "Squeeze"):
                node = node.input_value(0).get_node()
                continue
            return None
    except Exception:  # noqa: BLE001 - informative only
        return None
    return None


class AnomalyModel:
    """An anomalib 2.x export (ONNX ``.onnx`` or OpenVINO IR ``.xml``) run tiled over large
    images.

    Args:
        model: the exported file.
        tile_size: tile size in image pixels (int or (h, w)); default: the model's working size
            (its static input size, else the size of the ``anomaly_map`` it returns on a probe
            run, which is the size anomalib's graph resizes to; 256 for a graph whose map
            follows its input's size). Images are cut with SAHI's grid.
        overlap_ratio: tile overlap, as SAHI (pixels = ``int(ratio * tile)``), 0..0.9.
        batch_size: tiles per model call (None: 1 on a CPU, 8 on a GPU; 1 for a model whose
            batch dimension is fixed at 1).
        threshold: the map threshold of the defect mask (``anomaly_map > threshold``);
            default: read from the model (metadata key ``pixel_threshold``, else the constant
            the graph compares ``anomaly_map`` with to make ``pred_mask``), else 0.5 (anomalib's
            normalised threshold).
        image_threshold: the image-score threshold of ``is_anomalous``; default as
            ``threshold`` (``image_threshold``, the constant behind ``pred_label``, 0.5).
        specular: ``None`` or ``"mask"`` (glare is not a defect): the map is 0 under glare
            (``fissure.specular_mask``, V > 240, S < 30, grown by ``specular_dilate``) and a
            tile touching glare scores the maximum of its map outside glare instead of its
            ``pred_score``.
        specular_dilate: radius in pixels the glare mask is grown by (0..254).
        backend, device, precision, num_threads: passed to :func:`fissure.backends.open_model`.
    """

    def __init__(
        self,
        model: ModelPath,
        *,
        tile_size: Union[int, tuple[int, int], None] = None,
        overlap_ratio: float = 0.25,
        batch_size: Optional[int] = None,
        threshold: Optional[float] = None,
        image_threshold: Optional[float] = None,
        specular: Optional[str] = None,
        specular_dilate: int = 40,
        backend: str = "auto",
        device: str = "auto",
        precision: Optional[str] = "f32",
        num_threads: int = -1,
    ) -> None:
        ratio_in(overlap_ratio, "overlap_ratio", 0.0, 0.9)
        optional_positive_int(batch_size, "batch_size")
        if specular not in (None, "mask"):
            raise ValueError(f"specular: expected None or 'mask', got {specular!r}")
        if isinstance(specular_dilate, bool) or not isinstance(specular_dilate, numbers.Integral) \
                or not 0 <= specular_dilate <= 254:
            raise ValueError(f"specular_dilate: expected an int in 0..254, got {specular_dilate!r}")
        for name, v in (("threshold", threshold), ("image_threshold", image_threshold)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)
                                  or not math.isfinite(float(v))):
                raise ValueError(f"{name}: expected None or a finite number, got {v!r}")
        if isinstance(model, (bytes, bytearray, memoryview)) or not isinstance(
                model, (str, os.PathLike)):
            raise TypeError(f"model: expected the path of an .onnx or .xml export, got "
                            f"{type(model).__name__}")
        path = Path(model)
        if path.suffix.lower() not in (".onnx", ".xml"):
            raise ValueError(f"{path}: expected an anomalib export (.onnx, or OpenVINO IR .xml "
                             f"with its .bin), got a {path.suffix or 'suffix-less'} file")
        self.path = path
        self.overlap_ratio = float(overlap_ratio)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.specular = specular
        self.specular_dilate = int(specular_dilate)
        self.num_threads = check_num_threads(num_threads)

        from ..backends import ModelLoadError, open_model

        try:
            self.model = open_model(path, backend, device, num_threads=self.num_threads,
                                    precision=precision)
        except ModelLoadError as exc:
            if "external" not in str(exc).lower():
                raise
            raise ModelLoadError(
                f"{path}: its weights are stored in a file beside it that cannot be read "
                f"(anomalib 2.x writes {path.name}.data next to {path.name}: keep the two "
                f"together) ({exc})") from None
        spec = self.model.spec
        names = [o.name for o in spec.outputs]
        if "anomaly_map" not in names:
            self.model.close()
            hint = ""
            if names == ["output"] or (path.parent / "metadata.json").is_file():
                hint = ("; this looks like an anomalib 1.x export (the bare torch model, "
                        "normalisation in metadata.json beside it): export it again with "
                        "anomalib 2.x, whose graph holds its pre- and post-processing")
            raise ValueError(
                f"{path}: not an anomalib export: expected the outputs "
                f"{', '.join(ANOMALIB_OUTPUTS)} (anomaly_map at least), got "
                f"{', '.join(names)}{hint}")
        if len(spec.inputs) != 1:
            self.model.close()
            raise ValueError(f"{path}: expected one image input (N, 3, H, W), got "
                             f"{', '.join(str(t) for t in spec.inputs)}")
        inp = spec.inputs[0]
        if inp.rank != 4 or inp.shape[1] not in (None, 3) or inp.dtype not in (
                np.float32, np.float16):
            self.model.close()
            raise ValueError(f"{path}: expected an input (N, 3, H, W) float32 (anomalib's "
                             f"'input'), got {inp}")
        self.input_name = inp.name
        self.input_dtype = "float16" if inp.dtype == np.float16 else "float32"
        self.outputs = tuple(names)
        self._fixed_batch = inp.shape[0]
        self.dynamic_input = inp.shape[2] is None or inp.shape[3] is None
        if self.dynamic_input:
            self.input_size = self._probe_size()
        else:
            self.input_size = (int(inp.shape[2]), int(inp.shape[3]))  # type: ignore[arg-type]
        self.tile_size = (self.input_size if tile_size is None
                          else int_pair(tile_size, "tile_size", MIN_TILE, 8192))

        meta = dict(spec.metadata)
        self.threshold_source: dict[str, str] = {}
        thr, src = self._threshold(threshold, meta, META_PIXEL, "pred_mask", names)
        ithr, isrc = self._threshold(image_threshold, meta, META_IMAGE, "pred_label", names)
        self.threshold = float(thr)
        self.image_threshold = float(ithr)
        self.threshold_source = {"threshold": src, "image_threshold": isrc}

    # -- the model ---------------------------------------------------------------------------
    def _threshold(self, given: Optional[float], meta: dict, keys: tuple[str, ...],
                   output: str, names: Any) -> tuple[float, str]:
        """A threshold and where it came from: the argument, the metadata, the constant the
        graph compares ``output`` against, else the normalised default."""
        if given is not None:
            return float(given), "argument"
        v = _read_threshold(meta, keys)
        if v is not None:
            return v, "metadata"
        v = self._graph_threshold(output) if output in names else None
        if v is not None:
            return v, "graph"
        return NORMALISED_THRESHOLD, "default"

    def _graph_threshold(self, output: str) -> Optional[float]:
        if self.path.suffix.lower() == ".onnx":
            return _onnx_threshold(self.path, output)
        return _openvino_threshold(self.path, output)

    def _probe_size(self) -> tuple[int, int]:
        """A dynamic-size export resizes inside to its training size and returns the map at
        that size: one small run tells it. A graph whose map follows the input's size has no
        working size of its own: anomalib's default image size, 256, then."""
        ph, pw = PROBE
        x = np.zeros((1, 3, ph, pw), self.input_dtype)
        try:
            out = self.model.run({self.input_name: x})
        except Exception as exc:
            self.model.close()
            raise ValueError(f"{self.path}: the model does not run on a (1, 3, {ph}, {pw}) "
                             f"input ({type(exc).__name__}: {exc})") from None
        amap = np.asarray(out["anomaly_map"])
        if amap.ndim < 2 or amap.shape[-1] < 1 or amap.shape[-2] < 1:
            self.model.close()
            raise ValueError(f"{self.path}: anomaly_map: expected (N, 1, h, w), got "
                             f"{amap.shape}")
        size = (int(amap.shape[-2]), int(amap.shape[-1]))
        return DEFAULT_SIZE if size == PROBE else size

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> "AnomalyModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<AnomalyModel {self.path.name} input {self.input_size} "
                f"{'dynamic' if self.dynamic_input else 'static'}, tile {self.tile_size}, "
                f"overlap {self.overlap_ratio}, thresholds pixel {self.threshold:g} "
                f"image {self.image_threshold:g}>")

    def _batch(self) -> int:
        if self._fixed_batch is not None:
            return int(self._fixed_batch)
        if self.batch_size is not None:
            return self.batch_size
        on_gpu = not str(getattr(self.model, "device", "cpu")).lower().startswith("cpu")
        return 8 if on_gpu else 1

    def tiles(self, height: int, width: int) -> np.ndarray:
        """The (T, 4) xyxy tiles of an image of this size (SAHI's grid; an image smaller than
        the tile is one tile)."""
        th, tw = min(self.tile_size[0], height), min(self.tile_size[1], width)
        return slice_grid(height, width, th, tw, self.overlap_ratio, self.overlap_ratio)

    def _config(self, th: int, tw: int) -> PreprocessConfig:
        # what fissure feeds: RGB in [0, 1], unnormalised (the graph normalises); a
        # dynamic-size graph gets the tile at native size (it resizes inside), a static one
        # the tile resized to its input (cv2 INTER_LINEAR)
        size = (th, tw) if self.dynamic_input else self.input_size
        return PreprocessConfig(input_size=size, mode="none" if size == (th, tw) else "resize",
                                rgb=True, scale=1.0 / 255.0, mean=(0.0, 0.0, 0.0),
                                std=(1.0, 1.0, 1.0),
                                dtype="float16" if self.input_dtype == "float16" else "float32")

    def run_tiles(self, image: Any, tiles: Any = None) -> Iterator[tuple[np.ndarray, dict]]:
        """Runs the model on the tiles of an image, a batch at a time; yields (the batch's
        (b, 4) tiles, {output name: array}) with the model's raw outputs."""
        img = as_image(image)
        t = self.tiles(*img.shape[:2]) if tiles is None else np.asarray(tiles, np.int64)
        sizes = (t[:, 3] - t[:, 1]) * 100000 + (t[:, 2] - t[:, 0])
        for s in np.unique(sizes):
            group = t[sizes == s]
            th, tw = int(group[0, 3] - group[0, 1]), int(group[0, 2] - group[0, 0])
            bs = self._batch()
            with BatchFeeder(img, group, self._config(th, tw),
                             batch_size=bs if self._fixed_batch else min(bs, len(group)),
                             num_threads=self.num_threads) as feeder:
                for b, buf, count in feeder:
                    n = buf.shape[0] if self._fixed_batch else count
                    out = self.model.run({self.input_name: buf[:n]})
                    yield feeder.batch_tiles(b), {k: np.asarray(v)[:count] for k, v in out.items()}

    # -- predict -----------------------------------------------------------------------------
    def predict(self, image: Any) -> AnomalyResult:
        """Scores an image (path or array): the image score, the stitched full-resolution
        anomaly map, the defect mask and its regions (see the class docstring)."""
        cv2 = require_cv2("AnomalyModel")
        img = as_image(image)
        h, w = img.shape[:2]
        tiles = self.tiles(h, w)
        glare = None
        if self.specular == "mask":
            from ..specular import specular_mask

            glare = specular_mask(img, dilate=self.specular_dilate, num_threads=self.num_threads)
        ramp_y = int(self.overlap_ratio * min(self.tile_size[0], h))
        ramp_x = int(self.overlap_ratio * min(self.tile_size[1], w))
        acc = np.zeros((h, w), np.float32)
        # slice_grid's tiles are the product of their row and column spans, and a tile's
        # weight is wy(y) * wx(x): the sum of the weights at (y, x) is Wy(y) * Wx(x)
        wsum_y = np.zeros(h, np.float64)
        wsum_x = np.zeros(w, np.float64)
        for y0, y1 in {(int(a), int(b)) for a, b in tiles[:, [1, 3]]}:
            wsum_y[y0:y1] += taper_weights(y1 - y0, y0 > 0, y1 < h, ramp_y)
        for x0, x1 in {(int(a), int(b)) for a, b in tiles[:, [0, 2]]}:
            wsum_x[x0:x1] += taper_weights(x1 - x0, x0 > 0, x1 < w, ramp_x)
        has_score = "pred_score" in self.outputs
        score = -math.inf
        for btiles, out in self.run_tiles(img, tiles):
            maps = np.asarray(out["anomaly_map"], np.float32)
            maps = maps.reshape(maps.shape[0], maps.shape[-2], maps.shape[-1])
            scores = (np.asarray(out["pred_score"], np.float64).reshape(maps.shape[0], -1)[:, 0]
                      if has_score else None)
            for i, (x0, y0, x1, y1) in enumerate(btiles.tolist()):
                m = maps[i]
                if m.shape != (y1 - y0, x1 - x0):
                    m = cv2.resize(m, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                wy = taper_weights(y1 - y0, y0 > 0, y1 < h, ramp_y).astype(np.float32)
                wx = taper_weights(x1 - x0, x0 > 0, x1 < w, ramp_x).astype(np.float32)
                acc[y0:y1, x0:x1] += m * wy[:, None] * wx[None, :]
                g = None if glare is None else glare[y0:y1, x0:x1]
                if g is not None and g.any():
                    free = m[~g]
                    s = float(free.max()) if free.size else 0.0
                else:
                    s = float(scores[i]) if scores is not None else float(m.max())
                score = max(score, s)
        acc /= wsum_y.astype(np.float32)[:, None]
        acc /= wsum_x.astype(np.float32)[None, :]
        if glare is not None:
            acc[glare] = 0.0
        mask = acc > self.threshold
        boxes, box_scores = _regions(mask, acc)
        image_threshold = self.image_threshold if has_score else self.threshold
        return AnomalyResult(float(score), acc, mask, boxes, box_scores, float(self.threshold),
                             float(image_threshold), glare)
