"""Output decoders: a batch of model outputs (one batch item per tile) to detections.

Every decoder takes the whole batch output, the batch's tiles ``(T, 4)`` int xyxy in image
pixels (one per batch item) and the model's input geometry (``input_size`` ``(h, w)`` and the
preprocessing ``mode``: ``"letterbox"``, ``"resize"`` or ``"none"``, as in
:class:`fissure.PreprocessConfig`; the letterbox pad value does not matter). The heavy loops
run in the C++ core with the GIL released. Each decoder:

1. maps model-input pixels back to the image: ``x_img = (x - pad_x) / r + tile_x0`` for a
   letterbox (:func:`fissure.letterbox_params`), ``x_img = x * tile_w / input_w + tile_x0``
   for a resize (per axis), ``x_img = x + tile_x0`` for ``"none"`` (computed in float64,
   rounded once to float32);
2. clips each box to its tile and drops boxes with zero area after clipping;
3. keeps ``score >= conf_threshold`` (inclusive).

Results come ordered by tile, then by candidate index. NaN anywhere in an output raises
ValueError (a NaN box cannot be placed; a NaN score would silently vanish).
See ``docs/decoders.md``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np

from .. import _core
from .._validate import check_num_threads, describe
from ..masks import BoxMasks

__all__ = [
    "KINDS",
    "Decoded",
    "DecoderOptionError",
    "DecoderSpec",
    "check_decoder_options",
    "decode_detr",
    "decode_dfine",
    "decode_end_to_end",
    "decode_end_to_end_seg",
    "decode_paddle_nms",
    "decode_paddle_raw",
    "decode_probability_map",
    "decode_rtdetr",
    "decode_yolo",
    "decode_yolo_seg",
    "decode_yolov5",
    "decode_yolov5_seg",
    "decode_yolox_raw",
    "select_decoder",
    "yolox_grid_count",
]

_MODES = ("resize", "letterbox", "none")
Mode = Literal["letterbox", "resize", "none"]


@dataclass
class Decoded:
    """Detections decoded from one batch, in image coordinates.

    Attributes:
        boxes: (N, 4) float32 xyxy.
        scores: (N,) float32.
        class_ids: (N,) int64.
        tile_index: (N,) int64, the batch item (tile) each detection came from.
        masks: box-local :class:`fissure.BoxMasks` in image pixels, or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    tile_index: np.ndarray
    masks: Optional[BoxMasks] = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _as_output(a: Any, name: str) -> np.ndarray:
    if a is None or isinstance(a, (str, bytes)):
        raise ValueError(f"{name}: expected a float array, got {describe(a)}")
    arr = np.asarray(a)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_tiles(tiles: Any) -> np.ndarray:
    arr = np.asarray(tiles)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)
                                   or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"tiles: expected a (T, 4) integer array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"tiles: expected shape (T, 4) as [x0, y0, x1, y1], got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and (
            not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise ValueError("tiles: expected integer pixel coordinates")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    bad = (out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"tiles: expected x1 > x0 and y1 > y0, tile {i} is {out[i].tolist()}")
    return out


def _as_input_size(size: Any) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"input_size: expected (h, w), got {size!r}")
    out = []
    for v in size:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= int(v) <= 65535:
            raise ValueError(f"input_size: expected two ints in 1..65535, got {size!r}")
        out.append(int(v))
    return out[0], out[1]


def _check_common(output: np.ndarray, tiles: np.ndarray, mode: str, input_size: tuple[int, int],
                  name: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    if output.shape[0] != tiles.shape[0]:
        raise ValueError(
            f"tiles: expected one tile per batch item ({output.shape[0]} for {name} of shape "
            f"{output.shape}), got {tiles.shape[0]}")
    if mode == "none":
        th = tiles[:, 3] - tiles[:, 1]
        tw = tiles[:, 2] - tiles[:, 0]
        bad = (th != input_size[0]) | (tw != input_size[1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"tiles: mode 'none' expects every tile to be input_size {input_size}, tile {i} "
                f"is {int(th[i])}x{int(tw[i])}")
    if np.isnan(output).any():
        idx = tuple(int(v) for v in np.argwhere(np.isnan(output))[0])
        raise ValueError(f"{name}: expected no NaN, got NaN at index {idx}")


def _threshold(v: Any, name: str, *, finite: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(float(v)):
        raise ValueError(f"{name}: expected a number, got {v!r}")
    if finite and not math.isfinite(float(v)):
        raise ValueError(f"{name}: expected a finite number, got {v!r}")
    return float(v)


def _wrap(res: tuple, image_shape: Optional[tuple[int, int]]) -> Decoded:
    boxes, scores, class_ids, tile_index, masks = res
    bm = None
    if masks is not None:
        data, offsets, regions = masks
        bm = BoxMasks(data, offsets, regions, image_shape, validate=False)
    return Decoded(boxes, scores, class_ids, tile_index, bm)

def _channels_first(arr: np.ndarray, layout: str) -> bool:
    """The layout of a rank-3 YOLO output: the smaller of the last two axes holds the values."""
    if layout == "auto":
        if arr.shape[1] == arr.shape[2]:
            raise ValueError(
                f"output: shape {arr.shape} is ambiguous; pass layout='channels_first' or "
                "'channels_last'")
        return bool(arr.shape[1] < arr.shape[2])
    if layout in ("channels_first", "channels_last"):
        return layout == "channels_first"
    raise ValueError(f"layout: expected 'auto', 'channels_first' or 'channels_last', "
                     f"got {layout!r}")


def _decode_boxes(core_fn: Any, arr: np.ndarray, tiles: Any, input_size: Any, mode: str,
                  conf_threshold: float, num_threads: int, *layout: bool) -> Decoded:
    """Shared tail of the box decoders: geometry checks, the core call, the result."""
    t = _as_tiles(tiles)
    size = _as_input_size(input_size)
    _check_common(arr, t, mode, size, "output")
    res = core_fn(arr, t, size[0], size[1], mode, *layout,
                  _threshold(conf_threshold, "conf_threshold"), check_num_threads(num_threads))
    return _wrap(res, None)


def decode_probability_map(
    maps: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "resize",
    *,
    mask_threshold: float = 0.3,
    conf_threshold: float = 0.5,
    min_area: int = 1,
    masks: bool = True,
    image_shape: Optional[tuple[int, int]] = None,
    num_threads: int = -1,
) -> Decoded:
    """DBNet-style probability maps ``(B, 1, H, W)`` or ``(B, H, W)`` to one box per region.

    Each map is binarised with ``p > mask_threshold`` (as DBNet does) and split into 8-connected
    components (the same components as ``cv2.connectedComponents(connectivity=8)``). A
    component with at least ``min_area`` map pixels gives:

    - the box of its pixels, ``[x_min, y_min, x_max + 1, y_max + 1]`` in map pixels, scaled to
      the model input by ``input_size / (H, W)`` (1 for DBNet, whose map is the input size),
      then mapped to the image, clipped to the tile;
    - score = mean probability over the component's pixels; kept when
      ``score >= conf_threshold``; class 0;
    - when ``masks``, a box-local mask over the image pixels of its box (the region
      :func:`fissure.regions_from_boxes` owns): each image pixel takes the component
      membership of the map pixel under its centre. With the map at input resolution and no
      scaling (``mode="none"``) this is exactly the component's pixels.

    Components are ordered by their first pixel in raster order within each tile.
    ``image_shape`` is only recorded on the masks.
    """
    arr = _as_output(maps, "maps")
    if arr.ndim == 4:
        if arr.shape[1] != 1:
            raise ValueError(f"maps: expected shape (B, 1, H, W) or (B, H, W), got {arr.shape}")
        arr = arr.reshape(arr.shape[0], arr.shape[2], arr.shape[3])
    if arr.ndim != 3 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"maps: expected shape (B, 1, H, W) or (B, H, W), got {arr.shape}")
    t = _as_tiles(tiles)
    size = _as_input_size(input_size)
    _check_common(arr, t, mode, size, "maps")
    if isinstance(min_area, bool) or not isinstance(min_area, numbers.Integral) or min_area < 0:
        raise ValueError(f"min_area: expected a non-negative int, got {min_area!r}")
    res = _core.decode_probability_map(
        arr, t, size[0], size[1], mode, _threshold(mask_threshold, "mask_threshold", finite=True),
        _threshold(conf_threshold, "conf_threshold"), int(min_area), bool(masks),
        check_num_threads(num_threads))
    return _wrap(res, image_shape)


def decode_yolo(
    output: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    layout: Literal["auto", "channels_first", "channels_last"] = "auto",
    num_threads: int = -1,
) -> Decoded:
    """YOLOv8 / YOLO11 detection output to boxes.

    ``output`` is ``(B, 4 + C, N)`` (``layout="channels_first"``, what Ultralytics exports) or
    ``(B, N, 4 + C)`` (``"channels_last"``): ``cx, cy, w, h`` in model-input pixels, then C
    class scores (already sigmoid). score = max class score, class = its first argmax.
    ``layout="auto"`` picks channels-first when ``4 + C < N`` is read off the shape (the
    smaller of the two last axes holds the values), and raises when they are equal.
    """
    arr = _as_output(output, "output")
    if arr.ndim != 3:
        raise ValueError(f"output: expected shape (B, 4 + C, N) or (B, N, 4 + C), got {arr.shape}")
    channels_first = _channels_first(arr, layout)
    dims = arr.shape[1] if channels_first else arr.shape[2]
    if dims < 5:
        raise ValueError(f"output: expected 4 box values and at least one class score per "
                         f"candidate, got {dims} values (shape {arr.shape})")
    return _decode_boxes(_core.decode_yolo, arr, tiles, input_size, mode, conf_threshold,
                         num_threads, channels_first)


def decode_end_to_end(
    output: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    num_threads: int = -1,
) -> Decoded:
    """End-to-end (NMS-free) output ``(B, K, 6)``: ``x1, y1, x2, y2, score, class`` per row,
    boxes in model-input pixels (YOLOv10 / YOLO26 exports). Class values are rounded to the
    nearest int and must be non-negative."""
    arr = _as_output(output, "output")
    if arr.ndim != 3 or arr.shape[2] != 6:
        raise ValueError(f"output: expected shape (B, K, 6), got {arr.shape}")
    return _decode_boxes(_core.decode_end_to_end, arr, tiles, input_size, mode,
                         conf_threshold, num_threads)


def decode_yolov5(
    output: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    num_threads: int = -1,
) -> Decoded:
    """YOLOv5-style output ``(B, N, 5 + C)``: ``cx, cy, w, h, objectness``, C class scores.
    score = max over classes of ``objectness * class score`` (float32), class = first argmax."""
    arr = _as_output(output, "output")
    if arr.ndim != 3 or arr.shape[2] < 6:
        raise ValueError(f"output: expected shape (B, N, 5 + C) with C >= 1, got {arr.shape}")
    return _decode_boxes(_core.decode_yolov5, arr, tiles, input_size, mode, conf_threshold,
                         num_threads)


#: The strides of YOLOX's three heads (P3, P4, P5).
YOLOX_STRIDES = (8, 16, 32)


def yolox_grid_count(input_size: Any, strides: Sequence[int] = YOLOX_STRIDES) -> int:
    """The anchors of a raw YOLOX head at ``input_size`` ``(h, w)``: the sum over ``strides``
    of ``(h // s) * (w // s)`` (3549 at 416 x 416: 52 * 52 + 26 * 26 + 13 * 13)."""
    h, w = _as_input_size(input_size)
    return sum((h // int(s)) * (w // int(s)) for s in strides)


def yolox_grid(input_size: Any, strides: Sequence[int] = YOLOX_STRIDES
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(grids, expanded_strides)`` of YOLOX's ``demo_postprocess``: ``(N, 2)`` int64 cell
    (x, y) in raster order per stride, and ``(N, 1)`` the stride of each anchor."""
    h, w = _as_input_size(input_size)
    grids, exp = [], []
    for s in strides:
        hs, ws = h // int(s), w // int(s)
        xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        exp.append(np.full((hs * ws, 1), int(s)))
    return np.concatenate(grids).astype(np.int64), np.concatenate(exp).astype(np.int64)


def decode_yolox_raw(
    output: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    num_threads: int = -1,
) -> Decoded:
    """A raw YOLOX head (exported without ``decode_in_inference``) ``(B, N, 5 + C)``: per
    anchor ``dx, dy, log w, log h, objectness, C class scores`` on grids at strides 8, 16 and
    32 over the model input (N = :func:`yolox_grid_count` of ``input_size``, else ValueError).

    The grid decode is YOLOX's own ``demo_postprocess``: ``cx = (dx + grid_x) * stride``,
    ``cy = (dy + grid_y) * stride``, ``w = exp(log w) * stride``, ``h = exp(log h) * stride``
    (computed in float64, stored in float32); the decoded ``(cx, cy, w, h, obj, cls...)`` is
    exactly YOLOv5's layout and goes through :func:`decode_yolov5` (score = max of
    ``obj * cls``, the same tile mapping, clipping and threshold)."""
    arr = _as_output(output, "output")
    if arr.ndim != 3 or arr.shape[2] < 6:
        raise ValueError(f"output: expected shape (B, N, 5 + C) with C >= 1, got {arr.shape}")
    size = _as_input_size(input_size)
    n = yolox_grid_count(size)
    if arr.shape[1] != n:
        raise ValueError(
            f"output: a raw YOLOX head at input_size {size} has {n} anchors (strides "
            f"{', '.join(map(str, YOLOX_STRIDES))}), got {arr.shape[1]} (shape {arr.shape})")
    _check_nan(arr, "output")
    grids, strides = yolox_grid(size)
    out = arr.copy()
    with np.errstate(over="ignore"):
        out[..., :2] = (arr[..., :2] + grids) * strides
        out[..., 2:4] = np.exp(arr[..., 2:4]) * strides
    return decode_yolov5(out, tiles, size, mode, conf_threshold=conf_threshold,
                         num_threads=num_threads)


def _rows(arr: np.ndarray, tiles: Any, input_size: tuple[int, int], mode: str,
          conf_threshold: float, num_threads: int) -> Decoded:
    """Decodes ``(B, K, 6)`` rows ``x1, y1, x2, y2, score, class`` in model-input pixels (the
    end-to-end layout the decoders below convert to) with :func:`decode_end_to_end`."""
    return decode_end_to_end(np.ascontiguousarray(arr, np.float32), tiles, input_size, mode,
                             conf_threshold=conf_threshold, num_threads=num_threads)


#: RT-DETR output layouts: Ultralytics before 8.4.47 exports ``(B, 300, 4 + C)`` class
#: probabilities; from 8.4.47 the head ranks in the graph: ``(B, K, 6)`` = cx, cy, w, h, score,
#: class.
RTDETR_LAYOUTS = ("auto", "classes", "ranked")


def decode_rtdetr(
    output: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "resize",
    *,
    conf_threshold: float = 0.25,
    layout: Literal["auto", "classes", "ranked"] = "auto",
    num_threads: int = -1,
) -> Decoded:
    """Ultralytics RT-DETR outputs; boxes ``cx, cy, w, h`` normalised to ``[0, 1]`` of the model
    input, in one of two layouts:

    - ``layout="ranked"`` (Ultralytics >= 8.4.47): ``(B, K, 6)`` = box, score, class; the head
      already took the top K (query, class) pairs;
    - ``layout="classes"`` (earlier): ``(B, Q, 4 + C)`` = box, C class probabilities (the graph
      applies the sigmoid); score = the highest, class = the first class with it.

    ``"auto"`` reads ``"ranked"`` from 6 values per row and ``"classes"`` otherwise (a 2-class
    model of the older layout also has 6: :func:`select_decoder` decides it from the model's
    metadata). As ``RTDETRPredictor.postprocess``: ``x1 = cx - w / 2`` (float32, its
    ``xywh2xyxy``), then times the input width and height. Ultralytics stretches the image into
    the input (``scale_fill``, no letterbox), hence ``mode="resize"``. Kept where ``score >=
    conf_threshold`` (Ultralytics keeps ``> conf``)."""
    arr = _as_output(output, "output")
    if arr.ndim != 3 or arr.shape[2] < 5:
        raise ValueError(f"output: expected shape (B, Q, 4 + C) with C >= 1, or (B, K, 6), "
                         f"got {arr.shape}")
    if layout not in RTDETR_LAYOUTS:
        raise ValueError(f"layout: expected one of {RTDETR_LAYOUTS}, got {layout!r}")
    ranked = layout == "ranked" or (layout == "auto" and arr.shape[2] == 6)
    if ranked and arr.shape[2] != 6:
        raise ValueError(f"output: layout='ranked' expects shape (B, K, 6) = cx, cy, w, h, "
                         f"score, class, got {arr.shape}")
    _check_nan(arr, "output")
    size = _as_input_size(input_size)
    rows = np.empty(arr.shape[:2] + (6,), np.float32)
    half = arr[..., 2:4] / np.float32(2)
    scale = np.array([size[1], size[0]], np.float32)
    rows[..., 0:2] = (arr[..., 0:2] - half) * scale
    rows[..., 2:4] = (arr[..., 0:2] + half) * scale
    if ranked:
        rows[..., 4:6] = arr[..., 4:6]
    else:
        probs = arr[..., 4:]
        rows[..., 4] = probs.max(axis=2)
        rows[..., 5] = probs.argmax(axis=2)
    return _rows(rows, tiles, size, mode, conf_threshold, num_threads)


def decode_dfine(
    labels: Any,
    boxes: Any,
    scores: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "resize",
    *,
    conf_threshold: float = 0.25,
    num_threads: int = -1,
) -> Decoded:
    """D-FINE / DEIM / RT-DETRv2 deploy outputs (their ``PostProcessor`` in the graph):
    ``labels`` ``(B, Q)`` integer class ids, ``boxes`` ``(B, Q, 4)`` ``x1, y1, x2, y2`` in the
    pixels of the ``orig_target_sizes`` input, ``scores`` ``(B, Q)``. :class:`TiledDetector`
    feeds ``orig_target_sizes = [input_w, input_h]``, so boxes arrive in model-input pixels;
    these models resize (no letterbox), hence ``mode="resize"``."""
    lb = np.asarray(labels)
    b = _as_output(boxes, "boxes")
    sc = _as_output(scores, "scores")
    if b.ndim != 3 or b.shape[2] != 4:
        raise ValueError(f"boxes: expected shape (B, Q, 4), got {b.shape}")
    if sc.shape != b.shape[:2]:
        raise ValueError(f"scores: expected shape (B, Q) = {b.shape[:2]} to match boxes "
                         f"{b.shape}, got {sc.shape}")
    if lb.shape != b.shape[:2]:
        raise ValueError(f"labels: expected shape (B, Q) = {b.shape[:2]} to match boxes "
                         f"{b.shape}, got {lb.shape}")
    if not (np.issubdtype(lb.dtype, np.integer) or np.issubdtype(lb.dtype, np.floating)):
        raise ValueError(f"labels: expected integer class ids, got dtype {lb.dtype}")
    rows = np.empty(b.shape[:2] + (6,), np.float32)
    rows[..., :4] = b
    rows[..., 4] = sc
    rows[..., 5] = lb
    return _rows(rows, tiles, input_size, mode, conf_threshold, num_threads)


def decode_paddle_nms(
    rows: Any,
    counts: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "resize",
    *,
    conf_threshold: float = 0.25,
    num_threads: int = -1,
) -> Decoded:
    """PaddleDetection exports with the NMS in the graph (``multiclass_nms3`` through
    paddle2onnx): ``rows`` ``(N, 6)`` = ``class, score, x1, y1, x2, y2`` for the whole batch,
    image after image, and ``counts`` ``(B,)`` how many rows each image has. Boxes are in
    input pixels divided by the ``scale_factor`` input; :class:`TiledDetector` feeds
    ``scale_factor = [1, 1]``, so they are model-input pixels. Rows with a negative class
    (Paddle's placeholder when an image has no detection) are skipped. PP-YOLOE resizes
    without a letterbox, hence ``mode="resize"``."""
    r = _as_output(rows, "rows")
    c = np.asarray(counts)
    if r.ndim != 2 or r.shape[1] != 6:
        raise ValueError(f"rows: expected shape (N, 6) = class, score, x1, y1, x2, y2, "
                         f"got {r.shape}")
    if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"counts: expected a (B,) integer array, got {c.dtype} {c.shape}")
    _check_nan(r, "rows")
    c = c.astype(np.int64)
    if (c < 0).any() or int(c.sum()) > r.shape[0]:
        raise ValueError(f"counts: expected non-negative counts summing to at most the "
                         f"{r.shape[0]} rows, got {c.tolist()}")
    k = max(int(c.max()) if c.size else 0, 1)
    out = np.zeros((c.shape[0], k, 6), np.float32)
    out[..., 4] = -np.inf
    start = 0
    for i, n in enumerate(c.tolist()):
        part = r[start:start + n]
        start += n
        part = part[part[:, 0] >= 0]
        out[i, :len(part), :4] = part[:, 2:6]
        out[i, :len(part), 4] = part[:, 1]
        out[i, :len(part), 5] = part[:, 0]
    return _rows(out, tiles, input_size, mode, conf_threshold, num_threads)


def decode_paddle_raw(
    boxes: Any,
    scores: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "resize",
    *,
    conf_threshold: float = 0.25,
    num_threads: int = -1,
) -> Decoded:
    """PaddleDetection exports without the NMS (PP-YOLOE ``exclude_nms``, PicoDet):
    ``boxes`` ``(B, N, 4)`` ``x1, y1, x2, y2`` in input pixels divided by ``scale_factor`` (fed
    as 1, so model-input pixels) and ``scores`` ``(B, C, N)`` class probabilities. Each
    candidate gives one detection: score = its highest class probability, class = the first
    class with it. The NMS Paddle would run per image is left to the merge over the whole
    image (as for the YOLO heads)."""
    b = _as_output(boxes, "boxes")
    sc = _as_output(scores, "scores")
    if b.ndim != 3 or b.shape[2] != 4:
        raise ValueError(f"boxes: expected shape (B, N, 4), got {b.shape}")
    if sc.ndim != 3 or sc.shape[0] != b.shape[0] or sc.shape[2] != b.shape[1] or sc.shape[1] < 1:
        raise ValueError(f"scores: expected shape (B, C, N) = ({b.shape[0]}, C, {b.shape[1]}) "
                         f"to match boxes {b.shape}, got {sc.shape}")
    _check_nan(sc, "scores")
    rows = np.empty(b.shape[:2] + (6,), np.float32)
    rows[..., :4] = b
    rows[..., 4] = sc.max(axis=1)
    rows[..., 5] = sc.argmax(axis=1)
    return _rows(rows, tiles, input_size, mode, conf_threshold, num_threads)


# --------------------------------------------------------------------------------------------
# Segmentation (mask prototypes) and DETR-style decoders
# --------------------------------------------------------------------------------------------


def _check_nan(arr: np.ndarray, name: str) -> None:
    if np.isnan(arr).any():
        idx = tuple(int(v) for v in np.argwhere(np.isnan(arr))[0])
        raise ValueError(f"{name}: expected no NaN, got NaN at index {idx}")


def _crop(crop: Any) -> str:
    if crop not in ("input", "proto"):
        raise ValueError(f"crop: expected 'input' or 'proto', got {crop!r}")
    return str(crop)


def _as_protos(protos: Any, batch: int) -> np.ndarray:
    pr = _as_output(protos, "protos")
    if pr.ndim != 4 or min(pr.shape[1:]) < 1:
        raise ValueError(f"protos: expected shape (B, M, mh, mw) with M, mh, mw >= 1, "
                         f"got {pr.shape}")
    if pr.shape[0] != batch:
        raise ValueError(f"protos: expected the output's batch size {batch}, got shape {pr.shape}")
    _check_nan(pr, "protos")
    return pr


def decode_yolo_seg(
    output: Any,
    protos: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    layout: Literal["auto", "channels_first", "channels_last"] = "auto",
    masks: bool = True,
    crop: Literal["input", "proto"] = "input",
    drop_empty: bool = True,
    image_shape: Optional[tuple[int, int]] = None,
    num_threads: int = -1,
) -> Decoded:
    """YOLOv8 / YOLO11 segmentation output to boxes and box-local masks.

    ``output`` (Ultralytics' ``output0``) is ``(B, 4 + C + M, N)`` (``"channels_first"``, what
    Ultralytics exports) or ``(B, N, 4 + C + M)``: ``cx, cy, w, h`` in model-input pixels, C
    class scores, M mask coefficients. ``protos`` (``output1``) is ``(B, M, mh, mw)``. Boxes,
    scores and classes are decoded as :func:`decode_yolo`. With ``masks`` each detection gets a
    mask with Ultralytics' ``process_mask(..., upsample=True)`` semantics (its default, not
    ``retina_masks``):

    1. logits = coefficients . prototypes at proto resolution (float32);
    2. ``crop="input"`` (Ultralytics >= 8.4.100): upsampled bilinearly to the model input
       (``align_corners=False``, as ``cv2.resize`` ``INTER_LINEAR`` and
       ``F.interpolate(mode="bilinear")``), set where ``> 0`` (= sigmoid ``> 0.5``), kept at
       the input pixels ``i`` with ``x1 <= i < x2`` (likewise in y). ``crop="proto"`` (earlier
       releases): zeroed outside the box scaled to proto pixels (``p`` kept where
       ``x1 * mw / input_w <= p < x2 * mw / input_w``), then upsampled and set where ``> 0``;
    3. ``drop_empty`` (Ultralytics >= 8.4.0): a detection whose mask has no pixel set at the
       model input is dropped;
    4. each image pixel of the detection's region (``regions_from_boxes`` of its image box,
       inside the tile) takes the model-input pixel under its centre.

    Only the pixels a region needs are computed. ``image_shape`` is recorded on the masks.
    """
    arr = _as_output(output, "output")
    if arr.ndim != 3:
        raise ValueError(f"output: expected shape (B, 4 + C + M, N) or (B, N, 4 + C + M), "
                         f"got {arr.shape}")
    pr = _as_protos(protos, arr.shape[0])
    channels_first = _channels_first(arr, layout)
    dims = arr.shape[1] if channels_first else arr.shape[2]
    m = pr.shape[1]
    if dims - 4 - m < 1:
        raise ValueError(
            f"output: expected 4 + C + M values per candidate with C >= 1 and M = {m} (the "
            f"channels of protos {pr.shape}), got {dims} (output shape {arr.shape})")
    t = _as_tiles(tiles)
    size = _as_input_size(input_size)
    _check_common(arr, t, mode, size, "output")
    res = _core.decode_yolo_seg(arr, pr, t, size[0], size[1], mode, channels_first,
                                _threshold(conf_threshold, "conf_threshold"), bool(masks),
                                check_num_threads(num_threads), _crop(crop), bool(drop_empty))
    return _wrap(res, image_shape)


def decode_yolov5_seg(
    output: Any,
    protos: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    masks: bool = True,
    crop: Literal["input", "proto"] = "input",
    drop_empty: bool = True,
    image_shape: Optional[tuple[int, int]] = None,
    num_threads: int = -1,
) -> Decoded:
    """YOLOv5 segmentation output ``(B, N, 5 + C + M)`` (``cx, cy, w, h, objectness``, C class
    scores, M mask coefficients) and ``protos`` ``(B, M, mh, mw)``. Scores as
    :func:`decode_yolov5` (max of ``objectness * class score``), masks as
    :func:`decode_yolo_seg`."""
    arr = _as_output(output, "output")
    if arr.ndim != 3:
        raise ValueError(f"output: expected shape (B, N, 5 + C + M), got {arr.shape}")
    pr = _as_protos(protos, arr.shape[0])
    m = pr.shape[1]
    if arr.shape[2] - 5 - m < 1:
        raise ValueError(
            f"output: expected shape (B, N, 5 + C + M) with C >= 1 and M = {m} (the channels "
            f"of protos {pr.shape}), got {arr.shape}")
    t = _as_tiles(tiles)
    size = _as_input_size(input_size)
    _check_common(arr, t, mode, size, "output")
    res = _core.decode_yolov5_seg(arr, pr, t, size[0], size[1], mode,
                                  _threshold(conf_threshold, "conf_threshold"), bool(masks),
                                  check_num_threads(num_threads), _crop(crop), bool(drop_empty))
    return _wrap(res, image_shape)


def decode_end_to_end_seg(
    output: Any,
    protos: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "letterbox",
    *,
    conf_threshold: float = 0.25,
    masks: bool = True,
    crop: Literal["input", "proto"] = "input",
    drop_empty: bool = True,
    image_shape: Optional[tuple[int, int]] = None,
    num_threads: int = -1,
) -> Decoded:
    """End-to-end (NMS-free) segmentation (YOLO26-seg exports): ``output`` ``(B, K, 6 + M)`` =
    ``x1, y1, x2, y2, score, class`` in model-input pixels and M mask coefficients, ``protos``
    ``(B, M, mh, mw)``. Boxes as :func:`decode_end_to_end`, masks as :func:`decode_yolo_seg`
    (Ultralytics' ``process_mask(..., upsample=True)``)."""
    arr = _as_output(output, "output")
    if arr.ndim != 3:
        raise ValueError(f"output: expected shape (B, K, 6 + M), got {arr.shape}")
    pr = _as_protos(protos, arr.shape[0])
    if arr.shape[2] != 6 + pr.shape[1]:
        raise ValueError(f"output: expected shape (B, K, 6 + M) with M = {pr.shape[1]} (the "
                         f"channels of protos {pr.shape}), got {arr.shape}")
    t = _as_tiles(tiles)
    size = _as_input_size(input_size)
    _check_common(arr, t, mode, size, "output")
    res = _core.decode_end_to_end_seg(arr, pr, t, size[0], size[1], mode,
                                      _threshold(conf_threshold, "conf_threshold"), bool(masks),
                                      check_num_threads(num_threads), _crop(crop),
                                      bool(drop_empty))
    return _wrap(res, image_shape)


def decode_detr(
    boxes: Any,
    logits: Any,
    tiles: Any,
    input_size: Any,
    mode: Mode = "resize",
    *,
    mask_logits: Any = None,
    conf_threshold: float = 0.5,
    score: Literal["sigmoid", "softmax"] = "sigmoid",
    top_k: Optional[int] = None,
    image_shape: Optional[tuple[int, int]] = None,
    num_threads: int = -1,
) -> Decoded:
    """DETR-style outputs (RF-DETR, DETR, Deformable DETR) to boxes and optional masks.

    ``boxes`` is ``(B, Q, 4)``: ``cx, cy, w, h`` normalised to ``[0, 1]`` of the model input
    (``x1 = cx - 0.5 * w`` in float32, then times ``input_w``). ``logits`` is ``(B, Q, C)``:

    - ``score="sigmoid"`` (RF-DETR, Deformable DETR): ``p = sigmoid(logit)`` per class;
    - ``score="softmax"`` (original DETR): ``p = softmax`` over all C logits, whose last class
      is "no object" and is never reported.

    Probabilities are computed in float64 and rounded to float32. By default each query gives
    one detection: score = its highest probability, class = the first class with it, in query
    order. ``top_k=k`` does what RF-DETR's postprocess does instead: the k most probable
    (query, class) pairs over all queries and classes (RF-DETR uses ``num_select=300``), in
    descending probability (ties: lower query, then lower class), so one query can give several
    detections. Either way ``score >= conf_threshold`` is kept.

    ``mask_logits`` ``(B, Q, mh, mw)`` (optional, RF-DETR segmentation): each detection's map is
    upsampled bilinearly to the model input (``align_corners=False``) and set where ``> 0``; each
    image pixel of the detection's region takes the model-input pixel under its centre. The
    mask is not cropped to the box in model space (as RF-DETR), but only its box's region is
    stored. ``mode`` defaults to ``"resize"`` (RF-DETR and DETR resize, they do not letterbox).
    """
    b = _as_output(boxes, "boxes")
    lg = _as_output(logits, "logits")
    if b.ndim != 3 or b.shape[2] != 4:
        raise ValueError(f"boxes: expected shape (B, Q, 4), got {b.shape}")
    if lg.ndim != 3 or lg.shape[:2] != b.shape[:2] or lg.shape[2] < 1:
        raise ValueError(f"logits: expected shape (B, Q, C) = ({b.shape[0]}, {b.shape[1]}, C) "
                         f"with C >= 1 to match boxes {b.shape}, got {lg.shape}")
    if score not in ("sigmoid", "softmax"):
        raise ValueError(f"score: expected 'sigmoid' or 'softmax', got {score!r}")
    if score == "softmax":
        if lg.shape[2] < 2:
            raise ValueError(f"logits: score='softmax' expects C >= 2 (the classes and a "
                             f"trailing no-object class), got {lg.shape}")
        _check_nan(lg, "logits")
        if not np.isfinite(lg).all():
            idx = tuple(int(v) for v in np.argwhere(~np.isfinite(lg))[0])
            raise ValueError(f"logits: score='softmax' expects finite logits, got "
                             f"{lg[idx]} at index {idx}")
    if top_k is None:
        k = 0
    elif isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"top_k: expected None or a positive int, got {top_k!r}")
    else:
        k = int(top_k)
    ml = None
    if mask_logits is not None:
        ml = _as_output(mask_logits, "mask_logits")
        if ml.ndim != 4 or ml.shape[:2] != b.shape[:2] or min(ml.shape[2:]) < 1:
            raise ValueError(f"mask_logits: expected shape (B, Q, mh, mw) = ({b.shape[0]}, "
                             f"{b.shape[1]}, mh, mw) to match boxes {b.shape}, got {ml.shape}")
        _check_nan(ml, "mask_logits")
    t = _as_tiles(tiles)
    size = _as_input_size(input_size)
    _check_common(b, t, mode, size, "boxes")
    _check_nan(lg, "logits")
    res = _core.decode_detr(b, lg, ml, t, size[0], size[1], mode,
                            _threshold(conf_threshold, "conf_threshold"), score, k,
                            check_num_threads(num_threads))
    return _wrap(res, image_shape)


# --------------------------------------------------------------------------------------------
# Automatic selection from the model's output specs
# --------------------------------------------------------------------------------------------

KINDS = ("yolo", "yolov5", "end_to_end", "yolo_seg", "yolov5_seg", "end_to_end_seg", "detr",
         "detr_seg", "rtdetr", "dfine", "paddle_nms", "paddle_raw", "probability_map",
         "yolox_raw")
DecoderKind = Literal["yolo", "yolov5", "end_to_end", "yolo_seg", "yolov5_seg", "end_to_end_seg",
                      "detr", "detr_seg", "rtdetr", "dfine", "paddle_nms", "paddle_raw",
                      "probability_map", "yolox_raw"]
#: The kinds that ``"auto"`` never picks (only by name): a raw YOLOX head looks like YOLOv5.
_EXPLICIT_ONLY = ("yolox_raw",)

#: Largest K of an end-to-end (B, K, 6) output read as end-to-end (YOLOv10 / YOLO26 use 300).
MAX_END_TO_END = 300
#: The candidate axis of a YOLO output is at least this many times its value axis.
CANDIDATE_RATIO = 4
#: A rank-3 probability map has both sides >= this and within PROBMAP_ASPECT of each other.
PROBMAP_MIN_SIDE = 32
PROBMAP_ASPECT = 2

_ACCEPTED = """accepted layouts (B = batch, ? = dynamic, axes in any output order):
  probability_map  one (B, 1, H, W); or one (B, H, W) with H, W both dynamic, or both >= 32
                   and within 2x of each other
  end_to_end       one (B, K, 6) with a static K <= 300  (YOLOv10, YOLO26)
  end_to_end_seg   (B, K, 6+M) with a static K <= 300 and protos (B, M, mh, mw)  (YOLO26-seg)
  rtdetr           one (B, Q, 4+C), static Q <= 300, 4+C != 6 and < Q  (Ultralytics RT-DETR)
  yolo             one (B, 4+C, N), N dynamic or >= 4 * (4+C)  (YOLOv8/11: channels first)
  yolov5           one (B, N, 5+C), N dynamic or > 300 and >= 4 * (5+C)  (YOLOv5)
  yolo_seg         (B, 4+C+M, N) and protos (B, M, mh, mw), as yolo
  yolov5_seg       (B, N, 5+C+M) and protos (B, M, mh, mw), as yolov5
  detr             boxes (B, Q, 4) and logits (B, Q, C)
  detr_seg         boxes (B, Q, 4), logits (B, Q, C) and mask logits (B, Q, mh, mw)
  dfine            labels (B, Q) integer, boxes (B, Q, 4), scores (B, Q)  (D-FINE, DEIM)
  paddle_nms       rows (N, 6) and counts (B,)  (PaddleDetection, NMS in the graph)
  paddle_raw       boxes (B, N, 4) and scores (B, C, N)  (PaddleDetection without NMS)
  yolox_raw        one (B, N, 5+C), N = the YOLOX grid count (strides 8/16/32); by name only"""

#: The decoder's inputs (roles), in the order its function takes them.
_ROLES = {
    "yolo": ("output",), "yolov5": ("output",), "end_to_end": ("output",),
    "probability_map": ("maps",), "yolo_seg": ("output", "protos"),
    "yolov5_seg": ("output", "protos"), "detr": ("boxes", "logits"),
    "detr_seg": ("boxes", "logits", "mask_logits"), "yolox_raw": ("output",),
    "end_to_end_seg": ("output", "protos"), "rtdetr": ("output",),
    "dfine": ("labels", "boxes", "scores"), "paddle_nms": ("rows", "counts"),
    "paddle_raw": ("boxes", "scores"),
}
_OPTIONS = {
    "yolo": ("layout",), "yolov5": (), "end_to_end": (),
    "probability_map": ("mask_threshold", "min_area", "masks"),
    "yolo_seg": ("layout", "masks", "crop", "drop_empty"),
    "yolov5_seg": ("masks", "crop", "drop_empty"),
    "detr": ("score", "top_k"), "detr_seg": ("score", "top_k", "masks"), "yolox_raw": (),
    "end_to_end_seg": ("masks", "crop", "drop_empty"), "rtdetr": ("layout",), "dfine": (), "paddle_nms": (),
    "paddle_raw": (),
}


class DecoderOptionError(ValueError):
    """A decoder option that the decoder does not take, or a value it does not accept;
    ``option`` names it, ``reason`` says what was expected."""

    def __init__(self, option: str, value: Any, reason: str) -> None:
        super().__init__(f"decoder option {option}={value!r}: {reason}")
        self.option, self.value, self.reason = option, value, reason


def _check_option(kind: str, key: str, v: Any) -> Optional[str]:
    """Why ``v`` is not a valid value of option ``key`` (None when it is)."""
    if key in ("mask_threshold",):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return "expected a number"
        if not math.isfinite(float(v)):
            return "expected a finite number"
    elif key == "min_area":
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            return "expected a non-negative int"
    elif key in ("masks", "drop_empty"):
        if not isinstance(v, (bool, np.bool_)):
            return "expected true or false"
    elif key == "crop":
        if v not in ("input", "proto"):
            return "expected input or proto"
    elif key == "layout" and kind == "rtdetr":
        if v not in RTDETR_LAYOUTS:
            return "expected one of " + ", ".join(RTDETR_LAYOUTS)
    elif key == "layout":
        if v not in ("auto", "channels_first", "channels_last"):
            return "expected one of auto, channels_first, channels_last"
    elif key == "score":
        if v not in ("sigmoid", "softmax"):
            return "expected one of sigmoid, softmax"
    elif key == "top_k":
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < 1):
            return "expected a positive int"
    return None


def check_decoder_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a ``kind`` decoder, checked before any model output is decoded.

    Raises :class:`DecoderOptionError` (a ValueError) for an option the kind does not take
    (naming those it takes) or a value it does not accept; returns the options as a dict.
    """
    if kind not in _OPTIONS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    allowed = _OPTIONS[kind]
    for key, v in options.items():
        if key not in allowed:
            takes = ", ".join(allowed) if allowed else "no options"
            raise DecoderOptionError(key, v, f"the {kind} decoder takes {takes}")
        why = _check_option(kind, key, v)
        if why:
            raise DecoderOptionError(key, v, why)
    return dict(options)


@dataclass(frozen=True)
class DecoderSpec:
    """A decoder chosen for a model's outputs (see :func:`select_decoder`).

    Attributes:
        kind: one of :data:`KINDS` (the layouts are listed in ``docs/decoders.md`` and, by
            model family, in ``docs/models.md``).
        inputs: ``(role, output name, output index)`` per decoder input, e.g.
            ``(("output", "output0", 0), ("protos", "output1", 1))``.
        layout: ``"channels_first"`` / ``"channels_last"`` for the YOLO kinds, else None.
    """

    kind: str
    inputs: tuple[tuple[str, str, int], ...]
    layout: Optional[str] = None

    @property
    def output_names(self) -> dict[str, str]:
        """Role -> output name."""
        return {role: name for role, name, _ in self.inputs}

    def _arrays(self, outputs: Any) -> list[Any]:
        if isinstance(outputs, dict):
            missing = [name for _, name, _ in self.inputs if name not in outputs]
            if missing:
                raise ValueError(
                    f"outputs: expected arrays named {[n for _, n, _ in self.inputs]} for the "
                    f"{self.kind} decoder, missing {missing} (got {sorted(outputs)})")
            return [outputs[name] for _, name, _ in self.inputs]
        if isinstance(outputs, (list, tuple)):
            need = max(i for _, _, i in self.inputs) + 1
            if len(outputs) < need:
                raise ValueError(f"outputs: expected at least {need} arrays in the model's "
                                 f"output order, got {len(outputs)}")
            return [outputs[i] for _, _, i in self.inputs]
        raise TypeError(f"outputs: expected a dict of name -> array (backend.run's result) or "
                        f"a list in the model's output order, got {type(outputs).__name__}")

    def decode(
        self,
        outputs: Any,
        tiles: Any,
        *,
        input_size: Any,
        mode: Mode,
        conf_threshold: float,
        image_shape: Optional[tuple[int, int]] = None,
        num_threads: int = -1,
        **options: Any,
    ) -> Decoded:
        """Decodes one batch of model outputs.

        Args:
            outputs: ``{name: array}`` as ``backend.run`` returns it (or a list in the model's
                output order).
            tiles, input_size, mode: as every decoder (one tile per batch item).
            conf_threshold: the score threshold (a probability map's mean-probability cutoff).
            image_shape: recorded on the masks of the kinds that make masks.
            options: the kind's own options: ``layout`` (yolo, yolo_seg), ``masks``
                (yolo_seg, yolov5_seg, detr_seg, probability_map), ``score`` and ``top_k``
                (detr, detr_seg), ``mask_threshold`` and ``min_area`` (probability_map).
        """
        allowed = _OPTIONS[self.kind]
        bad = sorted(set(options) - set(allowed))
        if bad:
            raise TypeError(f"decode: the {self.kind} decoder takes the options {list(allowed)}, "
                            f"got {bad}")
        arrays = self._arrays(outputs)
        k = self.kind
        common: dict[str, Any] = {"conf_threshold": conf_threshold, "num_threads": num_threads}
        if k in ("yolo", "yolo_seg") and "layout" not in options and self.layout is not None:
            options["layout"] = self.layout
        if k == "yolo":
            return decode_yolo(arrays[0], tiles, input_size, mode, **common, **options)
        if k == "yolov5":
            return decode_yolov5(arrays[0], tiles, input_size, mode, **common)
        if k == "yolox_raw":
            return decode_yolox_raw(arrays[0], tiles, input_size, mode, **common)
        if k == "end_to_end":
            return decode_end_to_end(arrays[0], tiles, input_size, mode, **common)
        if k == "end_to_end_seg":
            return decode_end_to_end_seg(arrays[0], arrays[1], tiles, input_size, mode,
                                         image_shape=image_shape, **common, **options)
        if k == "rtdetr":
            if "layout" not in options and self.layout is not None:
                options["layout"] = self.layout
            return decode_rtdetr(arrays[0], tiles, input_size, mode, **common, **options)
        if k == "dfine":
            return decode_dfine(arrays[0], arrays[1], arrays[2], tiles, input_size, mode,
                                **common)
        if k == "paddle_nms":
            return decode_paddle_nms(arrays[0], arrays[1], tiles, input_size, mode, **common)
        if k == "paddle_raw":
            return decode_paddle_raw(arrays[0], arrays[1], tiles, input_size, mode, **common)
        if k == "yolo_seg":
            return decode_yolo_seg(arrays[0], arrays[1], tiles, input_size, mode,
                                   image_shape=image_shape, **common, **options)
        if k == "yolov5_seg":
            return decode_yolov5_seg(arrays[0], arrays[1], tiles, input_size, mode,
                                     image_shape=image_shape, **common, **options)
        if k in ("detr", "detr_seg"):
            ml = None
            if k == "detr_seg" and options.pop("masks", True):
                ml = arrays[2]
            return decode_detr(arrays[0], arrays[1], tiles, input_size, mode, mask_logits=ml,
                               image_shape=image_shape, **common, **options)
        return decode_probability_map(arrays[0], tiles, input_size, mode,
                                      conf_threshold=conf_threshold, image_shape=image_shape,
                                      num_threads=num_threads, **options)


def _shape_of(spec: Any, i: int) -> tuple[str, tuple[Optional[int], ...]]:
    name = getattr(spec, "name", None)
    shape = getattr(spec, "shape", None)
    if not isinstance(name, str) or not isinstance(shape, (tuple, list)):
        raise TypeError(f"outputs[{i}]: expected a TensorSpec (name, shape), got "
                        f"{type(spec).__name__}")
    dims: list[Optional[int]] = []
    for d in shape:
        if d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool) and d < 0):
            dims.append(None)
        elif isinstance(d, numbers.Integral) and not isinstance(d, bool):
            dims.append(int(d))
        else:  # a symbolic dimension name
            dims.append(None)
    return name, tuple(dims)


def _fmt(shape: tuple[Optional[int], ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _same(a: Optional[int], b: Optional[int]) -> bool:
    """Static dims must agree; a dynamic one agrees with anything."""
    return a is None or b is None or a == b


def _candidate_layout(a: Optional[int], b: Optional[int], min_values: int) -> Optional[str]:
    """Layout of a YOLO output (B, a, b): the value axis is static and the candidate axis is
    dynamic or CANDIDATE_RATIO times longer; None when the shape does not say."""
    if a is not None and a >= min_values and (b is None or b >= CANDIDATE_RATIO * a):
        return "channels_first"
    if b is not None and b >= min_values and (a is None or a >= CANDIDATE_RATIO * b):
        return "channels_last"
    return None


def _yolo_family(kind: str, shape: tuple[Optional[int], ...], m: Optional[int],
                 explicit: bool) -> tuple[Optional[str], str]:
    """(layout, "") when `shape` fits `kind` (yolo, yolov5, yolo_seg, yolov5_seg) with m mask
    coefficients (0 for the detection kinds, None when dynamic), else (None, why)."""
    if len(shape) != 3:
        return None, f"expected a rank-3 output, got {_fmt(shape)}"
    v5 = kind.startswith("yolov5")
    head = 5 if v5 else 4
    need = head + 1 + (m or 0)
    _, a, b = shape
    layout = _candidate_layout(a, b, need)
    if layout is None and explicit:
        # An explicit kind only needs the value axis: the static one, or the smaller one.
        if a is not None and (b is None or a < b):
            layout = "channels_first"
        elif b is not None and (a is None or b < a):
            layout = "channels_last"
    if layout is None:
        return None, f"{_fmt(shape)} has no clear value axis"
    if v5 and layout != "channels_last":
        return None, f"{_fmt(shape)} is channels-first; YOLOv5 outputs are (B, N, 5+C)"
    if not v5 and not explicit and layout != "channels_first":
        return None, f"{_fmt(shape)} is channels-last, read as YOLOv5"
    values = a if layout == "channels_first" else b
    if values is not None and values < need:
        return None, (f"{_fmt(shape)} has {values} values per candidate, expected at least "
                      f"{need} ({head} box{' + objectness' if v5 else ''} + 1 class"
                      f"{f' + {m} mask coefficients' if m else ''})")
    return layout, ""


#: The first Ultralytics release whose RT-DETR export ranks in the graph ((B, K, 6) rows).
RTDETR_RANKED_SINCE = (8, 4, 47)


def select_decoder(outputs: Sequence[Any], *, name: str = "auto",
                   input_size: Any = None, metadata: Any = None) -> DecoderSpec:
    """Picks the decoder for a model from its output specs.

    Args:
        outputs: the model's outputs in order, as :class:`fissure.backends.TensorSpec` (any
            object with ``name`` and ``shape``, ``None`` for a dynamic dimension), e.g.
            ``backend.outputs``.
        name: ``"auto"``, or one of the kinds to force it (its outputs are then matched by
            shape to the decoder's inputs, with looser layout rules).
        input_size: the model input ``(h, w)`` when known (``TiledDetector`` passes its
            own). ``"auto"`` never picks ``yolox_raw``; with ``input_size`` given, a
            channels-last ``(B, N, 5+C)`` output whose N is the raw YOLOX grid count at that
            size (:func:`yolox_grid_count`) fits both ``yolov5`` and ``yolox_raw`` and raises
            ValueError naming both instead of guessing.
        metadata: the model's :class:`fissure.backends.ModelMetadata` when known
            (``TiledDetector`` passes it). An Ultralytics head named ``RTDETRDecoder`` selects
            ``rtdetr`` (its ``(B, K, 6)`` rows look like ``end_to_end``'s but hold normalised
            cx, cy, w, h), with the ``"classes"`` layout for exports before Ultralytics 8.4.47.

    Returns:
        a :class:`DecoderSpec` whose ``decode(outputs, tiles, input_size=..., mode=...,
        conf_threshold=...)`` decodes ``backend.run``'s result.

    The rules, on static dimensions only (a dynamic one never decides), are in
    ``docs/decoders.md``. YOLOv5 and YOLOv8 outputs cannot be told apart by shape: channels-last
    ``(B, N, 5+C)`` is read as YOLOv5 and channels-first ``(B, 4+C, N)`` as YOLOv8/11 (what the
    two exporters produce); pass ``name`` to override. Anything ambiguous or unmatched raises
    ValueError listing the shapes and the accepted layouts.
    """
    if isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence):
        raise TypeError(f"outputs: expected a sequence of TensorSpec, got {type(outputs).__name__}")
    if name != "auto" and name not in KINDS:
        raise ValueError(f"name: expected 'auto' or one of {KINDS}, got {name!r}")
    specs = [_shape_of(s, i) for i, s in enumerate(outputs)]
    ints = [_is_integer(getattr(s, "dtype", None)) for s in outputs]
    size = _as_input_size(input_size) if input_size is not None else None
    if getattr(metadata, "head", None) == "RTDETRDecoder" and name in ("auto", "rtdetr"):
        spec, why = _match("rtdetr", specs, explicit=True, ints=ints)
        if spec is None:
            shapes = ", ".join(f"{n} {_fmt(s)}" for n, s in specs) or "none"
            raise ValueError(f"select_decoder: the model's metadata names an RT-DETR head, but "
                             f"its outputs [{shapes}] are not RT-DETR's: {why}")
        values = specs[spec.inputs[0][2]][1][2]
        version = getattr(metadata, "version", None)
        old = version is not None and tuple(version) < RTDETR_RANKED_SINCE
        layout = "classes" if values != 6 or old else "ranked"
        return DecoderSpec("rtdetr", spec.inputs, layout)
    kinds = tuple(k for k in KINDS if k not in _EXPLICIT_ONLY) if name == "auto" else (name,)
    found: list[DecoderSpec] = []
    reasons: list[str] = []
    for kind in kinds:
        spec, why = _match(kind, specs, explicit=name != "auto", ints=ints)
        if spec is not None:
            found.append(spec)
        elif why and (name != "auto" or len(_ROLES[kind]) == len(specs)):
            reasons.append(f"  {kind}: {why}")
    shapes = ", ".join(f"{n} {_fmt(s)}" for n, s in specs) or "none"
    if (name == "auto" and len(found) == 1 and found[0].kind == "yolov5"
            and size is not None and specs[0][1][1] == yolox_grid_count(size)):
        raise ValueError(
            f"select_decoder: the output [{shapes}] is ambiguous at input size "
            f"{size[0]}x{size[1]}: {specs[0][1][1]} candidates is also the raw YOLOX grid count "
            f"(strides 8, 16, 32), so it fits both 'yolov5' (boxes already decoded) and "
            f"'yolox_raw' (grid offsets and log sizes); pass decoder=\"yolox_raw\" or "
            f"decoder=\"yolov5\" (select_decoder(..., name=...)) explicitly")
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(
            f"select_decoder: the outputs [{shapes}] are ambiguous: they fit "
            f"{[f.kind for f in found]}; pass decoder= (select_decoder(..., name=...)) "
            f"explicitly\n{_ACCEPTED}")
    detail = ("\n" + "\n".join(reasons)) if reasons else ""
    raise ValueError(
        f"select_decoder: no decoder {'of kind ' + repr(name) + ' ' if name != 'auto' else ''}"
        f"matches the outputs [{shapes}]{detail}\n{_ACCEPTED}\n"
        f"pass decoder= (select_decoder(..., name=...)) explicitly")


def _spec(kind: str, specs: list, idx: Sequence[int], layout: Optional[str] = None) -> DecoderSpec:
    roles = _ROLES[kind]
    return DecoderSpec(kind, tuple((r, specs[i][0], i) for r, i in zip(roles, idx)), layout)


def _batch_ok(specs: list, idx: Sequence[int]) -> bool:
    return all(_same(specs[idx[0]][1][0], specs[i][1][0]) for i in idx)


def _is_integer(dtype: Any) -> Optional[bool]:
    """Whether an output's dtype is an integer type (None when unknown)."""
    if dtype is None:
        return None
    try:
        return bool(np.issubdtype(np.dtype(dtype), np.integer))
    except TypeError:
        return None


def _match(kind: str, specs: list, explicit: bool,
           ints: Optional[list] = None) -> tuple[Optional[DecoderSpec], str]:
    """The spec of `kind` for these outputs, or (None, why not)."""
    n = len(specs)
    ranks = [len(s) for _, s in specs]
    ints = ints if ints is not None else [None] * n
    if kind == "end_to_end_seg":
        if n != 2 or sorted(ranks) != [3, 4]:
            return None, f"expects a rank-3 output and rank-4 protos, got {n} outputs"
        io, ip = (0, 1) if ranks[0] == 3 else (1, 0)
        s, p = specs[io][1], specs[ip][1]
        if not _batch_ok(specs, [io, ip]):
            return None, f"batch sizes differ: {_fmt(s)} and {_fmt(p)}"
        if s[2] is not None and p[1] is not None and s[2] != 6 + p[1]:
            return None, f"{_fmt(s)} does not hold 6 + M values with M = {p[1]} (protos {_fmt(p)})"
        if not explicit and (s[1] is None or s[1] > MAX_END_TO_END or s[2] is None
                             or p[1] is None):
            return None, f"expects (B, K, 6 + M) with a static K <= {MAX_END_TO_END}, got {_fmt(s)}"
        return _spec(kind, specs, [io, ip]), ""
    if kind == "rtdetr":
        if n != 1:
            return None, f"expects one output, got {n}"
        s = specs[0][1]
        if len(s) != 3 or (s[2] is not None and s[2] < 5):
            return None, f"expects (B, Q, 4 + C) with C >= 1, got {_fmt(s)}"
        if not explicit and (s[1] is None or s[1] > MAX_END_TO_END or s[2] is None
                             or s[2] == 6 or s[2] >= s[1]):
            return None, (f"expects (B, Q, 4 + C) with a static Q <= {MAX_END_TO_END}, "
                          f"4 + C != 6 (that is end-to-end) and 4 + C < Q, got {_fmt(s)}")
        return _spec(kind, specs, [0]), ""
    if kind == "dfine":
        if n != 3 or sorted(ranks) != [2, 2, 3]:
            return None, f"expects labels (B, Q), boxes (B, Q, 4), scores (B, Q), got {n} outputs"
        ib = ranks.index(3)
        two = [i for i in range(n) if ranks[i] == 2]
        if specs[ib][1][2] not in (None, 4):
            return None, f"boxes {_fmt(specs[ib][1])}: expects (B, Q, 4)"
        lab = [i for i in two if ints[i]]
        if len(lab) != 1:
            lab = [i for i in two if "label" in specs[i][0].lower()]
        if len(lab) != 1:
            return None, "expects one integer (B, Q) labels output"
        il = lab[0]
        isc = next(i for i in two if i != il)
        idx = [il, ib, isc]
        if not _batch_ok(specs, idx) or not all(_same(specs[ib][1][1], specs[i][1][1])
                                                for i in idx):
            return None, "labels, boxes and scores must share B and Q"
        return _spec(kind, specs, idx), ""
    if kind == "paddle_nms":
        if n != 2 or sorted(ranks) != [1, 2]:
            return None, f"expects rows (N, 6) and counts (B,), got {n} outputs of ranks {ranks}"
        ir, ic = (0, 1) if ranks[0] == 2 else (1, 0)
        if specs[ir][1][1] not in (None, 6):
            return None, f"rows {_fmt(specs[ir][1])}: expects (N, 6)"
        if ints[ic] is False:
            return None, f"counts {_fmt(specs[ic][1])}: expects integers"
        return _spec(kind, specs, [ir, ic]), ""
    if kind == "paddle_raw":
        if n != 2 or ranks != [3, 3]:
            return None, f"expects boxes (B, N, 4) and scores (B, C, N), got {n} outputs"
        fours = [i for i in (0, 1) if specs[i][1][2] == 4]
        if len(fours) == 2:
            fours = [i for i in (0, 1) if "box" in specs[i][0].lower()] or fours
        if len(fours) != 1:
            return None, "expects boxes (B, N, 4): exactly one rank-3 output ending in 4"
        ib = fours[0]
        isc = 1 - ib
        b, sc = specs[ib][1], specs[isc][1]
        if not _batch_ok(specs, [ib, isc]) or not _same(b[1], sc[2]):
            return None, f"boxes {_fmt(b)} and scores {_fmt(sc)}: expects scores (B, C, N)"
        if not explicit and sc[2] is not None and sc[1] is not None and sc[1] >= sc[2]:
            return None, f"scores {_fmt(sc)}: expects more candidates N than classes C"
        return _spec(kind, specs, [ib, isc]), ""
    if kind == "probability_map":
        if n != 1:
            return None, f"expects one output, got {n}"
        s = specs[0][1]
        if len(s) == 4 and s[1] == 1:
            return _spec(kind, specs, [0]), ""
        if len(s) == 3:
            h, w = s[1], s[2]
            if h is None and w is None:
                return _spec(kind, specs, [0]), ""
            if h is not None and w is not None and (
                    explicit or (min(h, w) >= PROBMAP_MIN_SIDE
                                 and max(h, w) <= PROBMAP_ASPECT * min(h, w))):
                return _spec(kind, specs, [0]), ""
        return None, f"expects (B, 1, H, W) or (B, H, W), got {_fmt(s)}"
    if kind == "end_to_end":
        if n != 1:
            return None, f"expects one output, got {n}"
        s = specs[0][1]
        if len(s) == 3 and s[2] == 6 and (
                (s[1] is not None and s[1] <= MAX_END_TO_END) or explicit):
            return _spec(kind, specs, [0]), ""
        return None, f"expects (B, K, 6) with K <= {MAX_END_TO_END}, got {_fmt(s)}"
    if kind == "yolox_raw":
        if n != 1:
            return None, f"expects one output, got {n}"
        s = specs[0][1]
        if len(s) != 3 or (s[2] is not None and s[2] < 6):
            return None, f"expects (B, N, 5+C) with C >= 1, got {_fmt(s)}"
        return _spec(kind, specs, [0], "channels_last"), ""
    if kind in ("yolo", "yolov5"):
        if n != 1:
            return None, f"expects one output, got {n}"
        s = specs[0][1]
        if kind == "yolov5" and not explicit and len(s) == 3 and s[2] == 6 and (
                s[1] is None or s[1] <= MAX_END_TO_END):
            return None, (f"{_fmt(s)} is end-to-end (B, K, 6) when K <= {MAX_END_TO_END}, and "
                          f"could be either with a dynamic K")
        if kind == "yolov5" and not explicit and len(s) == 3 and s[1] is not None \
                and s[1] <= MAX_END_TO_END:
            return None, (f"{_fmt(s)} has {s[1]} <= {MAX_END_TO_END} rows: a query output "
                          f"(RT-DETR), not a YOLOv5 grid")
        layout, why = _yolo_family(kind, s, 0, explicit)
        return (_spec(kind, specs, [0], layout), "") if layout else (None, why)
    if kind in ("yolo_seg", "yolov5_seg"):
        if n != 2 or sorted(ranks) != [3, 4]:
            return None, f"expects a rank-3 output and rank-4 protos, got {n} outputs"
        io, ip = (0, 1) if ranks[0] == 3 else (1, 0)
        s, p = specs[io][1], specs[ip][1]
        if not _batch_ok(specs, [io, ip]):
            return None, f"batch sizes differ: {_fmt(s)} and {_fmt(p)}"
        if not explicit and s[1] is not None and s[1] <= MAX_END_TO_END and s[2] is not None \
                and p[1] is not None and s[2] == 6 + p[1]:
            return None, f"{_fmt(s)} looks like an end-to-end segmentation output (K, 6 + M)"
        layout, why = _yolo_family(kind, s, p[1], explicit)
        return (_spec(kind, specs, [io, ip], layout), "") if layout else (None, why)
    # detr, detr_seg
    want = 2 if kind == "detr" else 3
    if n != want or ranks.count(3) != 2 or (kind == "detr_seg" and ranks.count(4) != 1):
        return None, (f"expects boxes (B, Q, 4), logits (B, Q, C)"
                      f"{' and mask logits (B, Q, mh, mw)' if kind == 'detr_seg' else ''}, "
                      f"got {n} outputs of ranks {ranks}")
    r3 = [i for i in range(n) if ranks[i] == 3]
    fours = [i for i in r3 if specs[i][1][2] == 4]
    if len(fours) == 2:  # C == 4 too: tell them apart by name
        named = [i for i in r3 if any(k in specs[i][0].lower() for k in ("box", "dets", "bbox"))]
        if len(named) != 1:
            return None, "both rank-3 outputs end in 4 and their names do not say which is boxes"
        fours = named
    if len(fours) != 1:
        return None, "expects boxes (B, Q, 4): no rank-3 output ends in 4"
    ib = fours[0]
    il = next(i for i in r3 if i != ib)
    if not explicit and specs[il][1][2] is None:
        return None, (f"logits {_fmt(specs[il][1])}: expects a static class axis (B, Q, C); "
                      f"a dynamic last axis is PaddleDetection's scores (B, C, N)")
    idx = [ib, il] + ([ranks.index(4)] if kind == "detr_seg" else [])
    if not _batch_ok(specs, idx) or not all(_same(specs[ib][1][1], specs[i][1][1]) for i in idx):
        return None, "boxes, logits (and masks) must share B and Q"
    return _spec(kind, specs, idx), ""
