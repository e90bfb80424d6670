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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np

from . import _core
from ._validate import check_num_threads
from .masks import BoxMasks

__all__ = [
    "Decoded",
    "DecoderSpec",
    "decode_detr",
    "decode_end_to_end",
    "decode_probability_map",
    "decode_yolo",
    "decode_yolo_seg",
    "decode_yolov5",
    "decode_yolov5_seg",
    "select_decoder",
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


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return type(a).__name__


def _as_output(a: Any, name: str) -> np.ndarray:
    if a is None or isinstance(a, (str, bytes)):
        raise ValueError(f"{name}: expected a float array, got {_describe(a)}")
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


def _threshold(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(float(v)):
        raise ValueError(f"{name}: expected a number, got {v!r}")
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
    threshold: float = 0.3,
    box_threshold: float = 0.5,
    min_area: int = 1,
    masks: bool = True,
    image_shape: Optional[tuple[int, int]] = None,
    num_threads: int = -1,
) -> Decoded:
    """DBNet-style probability maps ``(B, 1, H, W)`` or ``(B, H, W)`` to one box per region.

    Each map is binarised with ``p > threshold`` (as DBNet does) and split into 8-connected
    components (the same components as ``cv2.connectedComponents(connectivity=8)``). A
    component with at least ``min_area`` map pixels gives:

    - the box of its pixels, ``[x_min, y_min, x_max + 1, y_max + 1]`` in map pixels, scaled to
      the model input by ``input_size / (H, W)`` (1 for DBNet, whose map is the input size),
      then mapped to the image, clipped to the tile;
    - score = mean probability over the component's pixels; kept when
      ``score >= box_threshold``; class 0;
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
        arr, t, size[0], size[1], mode, _threshold(threshold, "threshold"),
        _threshold(box_threshold, "box_threshold"), int(min_area), bool(masks),
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


# --------------------------------------------------------------------------------------------
# Segmentation (mask prototypes) and DETR-style decoders
# --------------------------------------------------------------------------------------------


def _check_nan(arr: np.ndarray, name: str) -> None:
    if np.isnan(arr).any():
        idx = tuple(int(v) for v in np.argwhere(np.isnan(arr))[0])
        raise ValueError(f"{name}: expected no NaN, got NaN at index {idx}")


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
    2. zeroed outside the box scaled to proto pixels (pixel ``p`` kept where
       ``x1 * mw / input_w <= p < x2 * mw / input_w``, likewise in y);
    3. upsampled bilinearly to the model input (``align_corners=False``, as ``cv2.resize``
       ``INTER_LINEAR`` and ``F.interpolate(mode="bilinear")``), set where ``> 0`` (= sigmoid
       ``> 0.5``);
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
                                check_num_threads(num_threads))
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
                                  check_num_threads(num_threads))
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
