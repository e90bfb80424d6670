"""``Detections``: the result of tiled detection, with box-local masks.

Modelled on supervision's ``sv.Detections`` (0.31): the same indexing (an int gives a
length-1 set, slices / int arrays / bool arrays give subsets, a string reads ``data``),
``merge``, ``is_empty`` and ``area``. The differences: masks are
:class:`~fissure.masks.BoxMasks` (each mask over its own pixel region, never an
``(N, H, W)`` array), dtypes are fixed (float32 boxes and scores, int64 class ids), scores and
class ids are always present, and the set knows its class names and image shape. Outputs:
COCO results and datasets (compressed RLE straight from the box-local bitmaps), supervision
``Detections`` (with ``CompactMask`` or dense masks), drawn overlays, and glare filtering.
See ``docs/detections.md``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._draw import place_tag
from .._optional import require_cv2
from ..io import as_image
from .._validate import as_boxes, as_class_ids, as_scores, check_threshold, describe
from ..masks import BoxMasks, _as_image_shape

__all__ = ["PALETTE", "Detections", "coco_dataset"]

#: BGR colours by class id (``PALETTE[class_id % len(PALETTE)]``): the 20 colours of
#: matplotlib's tab20 palette, converted to BGR.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (232, 199, 174), (14, 127, 255), (120, 187, 255), (44, 160, 44),
    (138, 223, 152), (40, 39, 214), (150, 152, 255), (189, 103, 148), (213, 176, 197),
    (75, 86, 140), (148, 156, 196), (194, 119, 227), (210, 182, 247), (127, 127, 127),
    (199, 199, 199), (34, 189, 188), (141, 219, 219), (207, 190, 23), (229, 218, 158),
)

_CLASS_NAME_KEY = "class_name"  # supervision.config.CLASS_NAME_DATA_FIELD


#: What ``specular=`` may say for detections: drop those on glare, or flag them.
_SPECULAR = ("mask", "flag")


def _as_class_names(value: Any) -> dict[int, str] | None:
    """None, or a dict {int: str}; a list/tuple becomes {index: name}."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    else:
        raise TypeError(
            "class_names: expected a dict {class_id: name} or a list of names, got "
            f"{describe(value)}"
        )
    out: dict[int, str] = {}
    for k, v in items:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise TypeError(f"class_names: expected integer class ids as keys, got {k!r}")
        if not isinstance(v, str):
            raise TypeError(f"class_names[{int(k)}]: expected a str, got {describe(v)}")
        out[int(k)] = v
    return out


def _as_data(data: Any, n: int) -> dict[str, np.ndarray]:
    """A new dict of arrays whose first axis has length n."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TypeError(f"data: expected a dict of per-detection arrays, got {describe(data)}")
    out: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"data: expected str keys, got {key!r}")
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(f"data[{key!r}]: expected an array of length {n}, got "
                            f"{describe(value)}")
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(
                f"data[{key!r}]: expected an array whose first axis has length {n} (one entry "
                f"per detection), got shape {arr.shape}"
            )
        out[key] = arr
    return out


def _as_index(key: Any, n: int) -> slice | np.ndarray:
    """A slice or a 1-D int64 array of valid, non-negative positions."""
    if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, (bool, np.bool_)):
        i = int(key)
        if not -n <= i < n:
            raise IndexError(f"detection index {i} out of range for {n} detections")
        i %= n
        return slice(i, i + 1)
    if isinstance(key, slice):
        return key
    if key is None or isinstance(key, (bool, np.bool_, bytes, float)):
        raise TypeError(
            "Detections indices must be int, slice, str, or 1-D int/bool arrays, got "
            f"{describe(key)}"
        )
    arr = np.asarray(key)
    if arr.size == 0 and arr.ndim == 1:
        return np.zeros(0, np.int64)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise IndexError(f"boolean index: expected shape ({n},), got {arr.shape}")
        return np.flatnonzero(arr).astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1:
        idx = arr.astype(np.int64)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError(
                f"detection index {int(idx[bad][0])} out of range for {n} detections"
            )
        return np.where(idx < 0, idx + n, idx)
    raise TypeError(
        "Detections indices must be int, slice, str, or 1-D int/bool arrays, got "
        f"{describe(arr)}"
    )


def _category_map(category_ids: Any) -> Mapping[int, Any] | None:
    if category_ids is None:
        return None
    if not isinstance(category_ids, Mapping):
        raise TypeError(
            "category_ids: expected a dict {class_id: category_id}, got "
            f"{describe(category_ids)}"
        )
    return category_ids


@dataclass(eq=False)
class Detections:
    """Detections of one image: boxes, scores, class ids, optional box-local masks.

    Attributes:
        boxes: (N, 4) float32 ``[x1, y1, x2, y2]`` in image pixels (finite, ``x2 >= x1``,
            ``y2 >= y1``).
        scores: (N,) float32 confidences (finite).
        class_ids: (N,) int64 class ids.
        masks: :class:`~fissure.masks.BoxMasks` with N masks, or None. Mask ``i`` covers its
            own region (usually the box's), not the whole image.
        class_names: ``{class_id: name}`` or None; a list/tuple of names is turned into
            ``{index: name}``.
        image_shape: ``(height, width)`` of the image, or None. Taken from the masks when
            they carry one; masks without one are clipped to it.
        data: per-detection extra arrays whose first axis has length N (for example
            ``"tile_index"``, ``"glare_fraction"``); lists are turned into arrays.

    Inputs are converted where that loses nothing (integer or float64 boxes to float32,
    integral float class ids to int64); NaN or infinite boxes and scores, wrong shapes and
    wrong types raise ValueError / TypeError naming what was expected.

    Examples:
        >>> d = Detections(np.array([[10, 10, 20, 30]]), np.array([0.9]), np.array([2]),
        ...                class_names=["a", "b", "c"])
        >>> d.labels
        ['c 0.90']
        >>> d[d.scores > 0.5].boxes.tolist()
        [[10.0, 10.0, 20.0, 30.0]]
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: BoxMasks | None = None
    class_names: dict[int, str] | None = None
    image_shape: tuple[int, int] | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = as_boxes(self.boxes, "boxes")
        n = self.boxes.shape[0]
        if self.scores is None:
            raise TypeError(f"scores: expected a numeric ({n},) array, got None")
        self.scores = as_scores(self.scores, n, "scores")
        if self.class_ids is None:
            raise TypeError(f"class_ids: expected an integer ({n},) array, got None")
        self.class_ids = as_class_ids(self.class_ids, n, "class_ids")
        self.class_names = _as_class_names(self.class_names)
        self.image_shape = (
            None if self.image_shape is None else _as_image_shape(self.image_shape)
        )
        if self.masks is not None:
            if not isinstance(self.masks, BoxMasks):
                raise TypeError(
                    f"masks: expected a fissure.BoxMasks or None, got {describe(self.masks)}"
                )
            if len(self.masks) != n:
                raise ValueError(f"masks: expected {n} masks to match the boxes, "
                                 f"got {len(self.masks)}")
            ms = self.masks.image_shape
            if self.image_shape is None:
                self.image_shape = ms
            elif ms is None:
                self.masks = self.masks.clip(self.image_shape)
            elif tuple(ms) != self.image_shape:
                raise ValueError(
                    f"masks: image_shape {tuple(ms)} does not match image_shape "
                    f"{self.image_shape}"
                )
        self.data = _as_data(self.data, n)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def empty(
        cls,
        image_shape: tuple[int, int] | None = None,
        class_names: Any = None,
    ) -> Detections:
        """A set of zero detections (no masks)."""
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            None,
            class_names,
            image_shape,
        )

    def _replace(self, **changes: Any) -> Detections:
        """A new set sharing this one's fields except ``changes`` (no re-validation)."""
        out = object.__new__(Detections)
        for name in ("boxes", "scores", "class_ids", "masks", "class_names", "image_shape"):
            setattr(out, name, changes.get(name, getattr(self, name)))
        out.data = changes.get("data", dict(self.data))
        return out

    # -- basics ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def is_empty(self) -> bool:
        """True when there are no detections."""
        return len(self) == 0

    def __iter__(self) -> Iterator[Detections]:
        """Each detection as a length-1 ``Detections`` (``self[i]``); supervision yields
        tuples instead."""
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key: Any) -> Any:
        """A subset, or a ``data`` entry.

        * int: a length-1 ``Detections`` (as supervision); IndexError when out of range.
        * slice, 1-D int array/list, bool array of length N: a ``Detections`` with boxes,
          scores, class ids, masks and every ``data`` array indexed alike (copies).
        * str: ``data[key]``, or None when there is no such key (as supervision).
        """
        if isinstance(key, str):
            return self.data.get(key)
        idx = _as_index(key, len(self))
        return self._replace(
            boxes=np.ascontiguousarray(self.boxes[idx]).copy(),
            scores=self.scores[idx].copy(),
            class_ids=self.class_ids[idx].copy(),
            masks=None if self.masks is None else self.masks[idx],
            data={k: v[idx].copy() for k, v in self.data.items()},
        )

    def __setitem__(self, key: str, value: Any) -> None:
        """Sets ``data[key]`` (an array or list of length N), as supervision does."""
        if not isinstance(key, str):
            raise TypeError(f"Detections item assignment takes a str key, got {key!r}")
        self.data[key] = _as_data({key: value}, len(self))[key]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        if (self.masks is None) != (other.masks is None):
            return False
        return (
            np.array_equal(self.boxes, other.boxes)
            and np.array_equal(self.scores, other.scores)
            and np.array_equal(self.class_ids, other.class_ids)
            and (self.masks is None or self.masks.equals(other.masks))  # type: ignore[arg-type]
            and self.class_names == other.class_names
            and self.image_shape == other.image_shape
            and self.data.keys() == other.data.keys()
            and all(np.array_equal(v, other.data[k]) for k, v in self.data.items())
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n = len(self)
        parts = [f"n={n}"]
        if n:
            ids, counts = np.unique(self.class_ids, return_counts=True)
            names = self.class_names or {}
            shown = [f"{names.get(int(c), int(c))!s}: {int(k)}" for c, k in zip(ids, counts)]
            if len(shown) > 6:
                shown = shown[:6] + [f"... {len(shown) - 6} more"]
            parts.append("classes={" + ", ".join(shown) + "}")
            parts.append(f"scores={float(self.scores.min()):.3g}..{float(self.scores.max()):.3g}")
        parts.append("masks=None" if self.masks is None else f"masks={len(self.masks)} box-local")
        parts.append(f"image_shape={self.image_shape}")
        if self.data:
            parts.append(f"data={sorted(self.data)}")
        return "Detections(" + ", ".join(parts) + ")"

    # -- joining --------------------------------------------------------------------------

    @classmethod
    def merge(cls, detections_list: Sequence[Detections]) -> Detections:
        """Concatenates sets in order (supervision's ``Detections.merge``).

        Empty sets are ignored (as in supervision), except that their image shapes and class
        names must agree with the others'. The non-empty sets must all have masks or all have
        none (ValueError otherwise) and the same ``data`` keys. Image shapes must agree where
        set; class names are united (the same id with two names is an error).
        """
        if isinstance(detections_list, Detections) or not isinstance(
            detections_list, Sequence
        ):
            raise TypeError(
                f"detections_list: expected a list of Detections, got {describe(detections_list)}"
            )
        items = list(detections_list)
        for k, d in enumerate(items):
            if not isinstance(d, Detections):
                raise TypeError(f"detections_list[{k}]: expected Detections, got {describe(d)}")
        shapes = {d.image_shape for d in items if d.image_shape is not None}
        if len(shapes) > 1:
            raise ValueError(f"merge: detections belong to different images {sorted(shapes)}")
        shape = next(iter(shapes)) if shapes else None
        names: dict[int, str] | None = None
        for d in items:
            if d.class_names is None:
                continue
            names = {} if names is None else names
            for cid, name in d.class_names.items():
                if names.setdefault(cid, name) != name:
                    raise ValueError(
                        f"merge: class {cid} is named both {names[cid]!r} and {name!r}"
                    )
        full = [d for d in items if len(d)]
        if not full:
            return cls.empty(shape, names)
        with_masks = [d.masks is not None for d in full]
        if any(with_masks) and not all(with_masks):
            raise ValueError(
                "merge: all or none of the non-empty detections must have masks (give the "
                "others masks, e.g. BoxMasks.from_crops of full boxes, or drop masks with "
                "d.masks = None)"
            )
        keys = [set(d.data) for d in full]
        if any(k != keys[0] for k in keys):
            raise ValueError(
                "merge: all non-empty detections must have the same data keys, got "
                f"{[sorted(k) for k in keys]}"
            )
        masks = None
        if all(with_masks):
            masks = BoxMasks.concatenate([d.masks for d in full])  # type: ignore[misc]
            if shape is not None and masks.image_shape is None:
                masks = masks.clip(shape)
        return cls(
            np.concatenate([d.boxes for d in full]),
            np.concatenate([d.scores for d in full]),
            np.concatenate([d.class_ids for d in full]),
            masks,
            names,
            shape,
            {k: np.concatenate([d.data[k] for d in full]) for k in keys[0]},
        )

    # -- statistics -----------------------------------------------------------------------

    @property
    def box_area(self) -> np.ndarray:
        """(N,) float32 ``(x2 - x1) * (y2 - y1)``."""
        b = self.boxes
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    @property
    def area(self) -> np.ndarray:
        """(N,) set pixels per mask (int64) when there are masks, else the box areas
        (float32), as supervision's ``area``."""
        if self.masks is not None:
            return self.masks.areas()
        return self.box_area

    @property
    def labels(self) -> list[str]:
        """Per detection ``"name 0.87"``: the class name (the id when unnamed) and score."""
        names = self.class_names or {}
        return [
            f"{names.get(c, str(c))} {s:.2f}"
            for c, s in zip(self.class_ids.tolist(), self.scores.tolist())
        ]

    @property
    def names(self) -> list[str]:
        """Per detection, the class name (``str(class_id)`` when it has none)."""
        names = self.class_names or {}
        return [names.get(c, str(c)) for c in self.class_ids.tolist()]

    # -- COCO -----------------------------------------------------------------------------

    def to_coco(
        self,
        image_id: Any = 0,
        *,
        category_ids: Mapping[int, Any] | None = None,
        start_id: int = 1,
        iscrowd: int = 0,
    ) -> list[dict[str, Any]]:
        """COCO result / annotation dicts, one per detection, JSON-serialisable.

        Each dict has ``id`` (``start_id + i``), ``image_id``, ``category_id`` (the class id,
        or ``category_ids[class_id]``), ``bbox`` ``[x, y, w, h]`` (floats, from the box),
        ``score``, ``iscrowd`` and ``area``: the mask's pixel count when there are masks
        (equal to ``pycocotools.mask.area``), else the box's ``w * h``. With masks,
        ``segmentation`` is compressed RLE ``{"size": [H, W], "counts": str}`` over the whole
        image, computed from the box-local bitmaps (byte-identical to
        ``pycocotools.mask.encode`` of the full mask); this needs ``image_shape``.
        """
        cmap = _category_map(category_ids)
        sid = int(start_id) if isinstance(start_id, numbers.Integral) else None
        if sid is None or isinstance(start_id, bool):
            raise TypeError(f"start_id: expected an int, got {start_id!r}")
        if isinstance(iscrowd, bool) or iscrowd not in (0, 1):
            raise ValueError(f"iscrowd: expected 0 or 1, got {iscrowd!r}")
        if isinstance(image_id, np.integer):
            image_id = int(image_id)
        if not isinstance(image_id, (int, str)):
            raise TypeError(f"image_id: expected an int or str, got {image_id!r}")
        cids: list[Any] = self.class_ids.tolist()
        if cmap is not None:
            missing = sorted({c for c in cids if c not in cmap})
            if missing:
                raise ValueError(f"category_ids: no category for class ids {missing}")
            cids = [cmap[c] for c in cids]
            cids = [int(c) if isinstance(c, np.integer) else c for c in cids]
        b = self.boxes.astype(np.float64)
        xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
        rles: list[dict[str, Any]] | None = None
        if self.masks is not None:
            if self.image_shape is None:
                raise ValueError(
                    "to_coco: masks need an image_shape for COCO RLE; set "
                    "detections.image_shape = (H, W)"
                )
            rles = self.masks.to_coco_rle(self.image_shape)
            areas = self.masks.areas().tolist()
        else:
            areas = (xywh[:, 2] * xywh[:, 3]).tolist()
        out = []
        for i, (bbox, score, cid, area) in enumerate(
            zip(xywh.tolist(), self.scores.tolist(), cids, areas)
        ):
            ann: dict[str, Any] = {
                "id": sid + i,
                "image_id": image_id,
                "category_id": cid,
                "bbox": bbox,
                "score": score,
                "area": float(area),
                "iscrowd": int(iscrowd),
            }
            if rles is not None:
                r = rles[i]
                ann["segmentation"] = {"size": list(r["size"]),
                                       "counts": r["counts"].decode("ascii")}
            out.append(ann)
        return out

    # -- supervision ----------------------------------------------------------------------

    def to_supervision(self, dense: bool = False) -> Any:
        """supervision ``Detections``: ``xyxy``, ``confidence``, ``class_id`` (copies), masks
        and ``data`` (copied).

        Masks become supervision's ``CompactMask`` built from our crop runs (no full image)
        or, with ``dense=True`` or a supervision without ``CompactMask``, an ``(N, H, W)``
        bool array; either needs ``image_shape``. With ``class_names``, ``data["class_name"]``
        holds each detection's name (``str(class_id)`` when unnamed) as supervision's
        loaders do, unless ``data`` already has that key.
        """
        try:
            import supervision as sv
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_supervision needs supervision: pip install supervision") from e
        mask: Any = None
        if self.masks is not None:
            if self.image_shape is None:
                raise ValueError("to_supervision: masks need an image_shape; set "
                                 "detections.image_shape = (H, W)")
            has_compact = True
            try:
                from supervision.detection.compact_mask import CompactMask  # noqa: F401
            except ImportError:  # pragma: no cover - supervision < 0.28
                has_compact = False
            if dense or not has_compact:
                mask = self.masks.to_full(self.image_shape)
            else:
                mask = self.masks.to_supervision(self.image_shape)
        data: dict[str, Any] = {k: v.copy() for k, v in self.data.items()}
        if self.class_names is not None and _CLASS_NAME_KEY not in data:
            data[_CLASS_NAME_KEY] = np.array(self.names, dtype=str)
        return sv.Detections(
            xyxy=self.boxes.copy(),
            mask=mask,
            confidence=self.scores.copy(),
            class_id=self.class_ids.copy(),
            data=data,
        )

    @classmethod
    def from_supervision(
        cls,
        detections: Any,
        image_shape: tuple[int, int] | None = None,
        *,
        class_names: Any = None,
    ) -> Detections:
        """From supervision ``Detections``.

        * ``confidence`` None becomes 1.0 for every detection, ``class_id`` None becomes 0.
        * ``mask``: a ``CompactMask`` is decoded run by run (its crops become the regions);
          dense ``(N, H, W)`` masks are cropped to each mask's tight region (nothing is
          lost); None stays None. The image shape comes from the masks, or ``image_shape``
          (they must agree).
        * ``data`` is copied (lists become arrays); ``tracker_id``, when set, is kept as
          ``data["tracker_id"]``; ``metadata`` is dropped.
        * ``class_names``: given, or else read from ``data["class_name"]`` when each class id
          has one name there (that entry then leaves ``data``).
        """
        try:
            import supervision as sv
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("from_supervision needs supervision: pip install supervision") from e
        if not isinstance(detections, sv.Detections):
            raise TypeError(
                f"detections: expected a supervision Detections, got {describe(detections)}"
            )
        xyxy = np.asarray(detections.xyxy)
        n = len(detections)
        conf = detections.confidence
        scores = np.ones(n, np.float32) if conf is None else conf
        cid = detections.class_id
        class_ids = np.zeros(n, np.int64) if cid is None else cid
        shape = None if image_shape is None else _as_image_shape(image_shape)
        masks: BoxMasks | None = None
        if detections.mask is not None:
            m = detections.mask
            if isinstance(m, np.ndarray):
                if m.ndim != 3 or m.shape[0] != n:
                    raise ValueError(f"detections.mask: expected shape ({n}, H, W), got {m.shape}")
                if shape is not None and tuple(m.shape[1:]) != shape:
                    raise ValueError(f"detections.mask: shape {m.shape[1:]} does not match "
                                     f"image_shape {shape}")
                masks = BoxMasks.from_full(m if m.dtype in (np.bool_, np.uint8) else m != 0)
            else:
                masks = BoxMasks.from_supervision(m)
                if shape is not None and masks.image_shape != shape:
                    raise ValueError(f"detections.mask: CompactMask image_shape "
                                     f"{masks.image_shape} does not match image_shape {shape}")
        data = {
            k: np.array(v) for k, v in detections.data.items()
        }
        if detections.tracker_id is not None and "tracker_id" not in data:
            data["tracker_id"] = np.array(detections.tracker_id)
        names = _as_class_names(class_names)
        if names is None and _CLASS_NAME_KEY in data and cid is not None:
            pairs = {(int(c), str(s)) for c, s in zip(np.asarray(cid).tolist(),
                                                        data[_CLASS_NAME_KEY].tolist())}
            derived = dict(pairs)
            if len(derived) == len(pairs):
                names = derived
                del data[_CLASS_NAME_KEY]
        elif names is not None and _CLASS_NAME_KEY in data:
            del data[_CLASS_NAME_KEY]
        return cls(
            xyxy,
            scores,
            class_ids,
            masks,
            names,
            shape,
            data,
        )

    # -- drawing --------------------------------------------------------------------------

    def color(self, class_id: int) -> tuple[int, int, int]:
        """The BGR colour of a class: ``PALETTE[class_id % len(PALETTE)]``."""
        return PALETTE[int(class_id) % len(PALETTE)]

    def draw(
        self,
        image: Any,
        *,
        boxes: bool = True,
        masks: bool = True,
        labels: bool = True,
        alpha: float = 0.4,
        thickness: int = 2,
    ) -> np.ndarray:
        """A BGR uint8 copy of ``image`` with the detections drawn on it.

        In this order: mask tints (each mask's set pixels become
        ``floor((1 - alpha) * pixel + alpha * colour + 0.5)``, in detection order, touching
        only the mask's region), box outlines (``cv2.rectangle``, ``thickness`` pixels drawn
        *inside* the box's pixel region ``floor(x1) .. ceil(x2) - 1``), and labels
        (``"name 0.87"``, ``cv2.putText`` on a filled tag of the class colour at the box's left
        edge, placed so that it does not cover the object: just above the box, else just
        below it, and inside it at its top only when neither fits; moved left to stay within
        the image). Colours come from :data:`PALETTE`
        by class id.

        Args:
            image: (H, W, 3) BGR, or (H, W) / (H, W, 1) gray uint8 (converted to BGR); must
                match ``image_shape`` when that is set.
            alpha: mask opacity in [0, 1].
            thickness: box outline width in pixels (>= 1).
        """
        out = np.array(as_image(image), order="C", copy=True)
        H, W = out.shape[:2]
        if self.image_shape is not None and self.image_shape != (H, W):
            raise ValueError(f"image: shape {(H, W)} does not match image_shape "
                             f"{self.image_shape}")
        for flag, name in ((boxes, "boxes"), (masks, "masks"), (labels, "labels")):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name}: expected a bool, got {flag!r}")
        a = check_threshold(alpha, "alpha")
        if isinstance(thickness, bool) or not isinstance(thickness, numbers.Integral):
            raise TypeError(f"thickness: expected an int >= 1, got {thickness!r}")
        if thickness < 1:
            raise ValueError(f"thickness: expected an int >= 1, got {thickness}")
        if not len(self):
            return out
        cv2 = require_cv2("Detections.draw")
        colors = np.array([self.color(c) for c in self.class_ids.tolist()], np.float64)
        if masks and self.masks is not None and a > 0:
            m = self.masks
            for i in range(len(m)):
                x0, y0, w, h = (int(v) for v in m.regions[i])
                xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
                if xa >= xb or ya >= yb:
                    continue
                bm = m.data[m.offsets[i]:m.offsets[i + 1]].reshape(h, w)
                sel = bm[ya - y0:yb - y0, xa - x0:xb - x0].view(bool)
                sub = out[ya:yb, xa:xb]
                px = sub[sel].astype(np.float64)
                sub[sel] = np.floor((1.0 - a) * px + a * colors[i] + 0.5).astype(np.uint8)
        # The regions regions_from_boxes gives, computed in float64 and clipped before the int
        # cast: coordinates stay within what OpenCV's int arithmetic handles (drawing clips
        # anyway), and huge finite boxes do not wrap.
        b = self.boxes.astype(np.float64).reshape(-1, 4)
        fx0, fy0 = np.floor(b[:, 0]), np.floor(b[:, 1])
        fx1 = np.maximum(np.ceil(b[:, 2]), fx0 + 1)
        fy1 = np.maximum(np.ceil(b[:, 3]), fy0 + 1)
        lim = max(H, W) + thickness + 2
        x0s = np.clip(fx0, -lim, lim).astype(np.int64)
        y0s = np.clip(fy0, -lim, lim).astype(np.int64)
        x1s = np.clip(fx1 - 1, -lim, lim).astype(np.int64)
        y1s = np.clip(fy1 - 1, -lim, lim).astype(np.int64)
        if boxes:
            for i in range(len(self)):
                col = tuple(int(v) for v in colors[i])
                for k in range(thickness):
                    if x0s[i] + k > x1s[i] - k or y0s[i] + k > y1s[i] - k:
                        break
                    cv2.rectangle(out, (int(x0s[i] + k), int(y0s[i] + k)),
                                  (int(x1s[i] - k), int(y1s[i] - k)), col, 1)
        if labels:
            font, scale, tt = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
            for i, text in enumerate(self.labels):
                col = tuple(int(v) for v in colors[i])
                (tw, th), base = cv2.getTextSize(text, font, scale, tt)
                x, top = place_tag((int(x0s[i]), int(y0s[i]), int(x1s[i]), int(y1s[i])),
                                   tw + 3, th + base + 2, W, H)
                cv2.rectangle(out, (x, top), (x + tw + 2, top + th + base + 1), col, -1)
                lum = 0.114 * col[0] + 0.587 * col[1] + 0.299 * col[2]
                ink = (0, 0, 0) if lum > 127 else (255, 255, 255)
                cv2.putText(out, text, (x + 1, top + th + 1), font, scale, ink, tt, cv2.LINE_AA)
        return out

    # -- glare ----------------------------------------------------------------------------

    def glare_fraction(self, glare_mask: Any) -> np.ndarray:
        """(N,) float32 fraction of each detection under glare: of its mask's set pixels
        when there are masks, else of its box's pixel region (see
        :func:`fissure.specular.glare_fraction`). An empty mask gives 0."""
        from ..specular import _as_mask, glare_fraction

        g = _as_mask(glare_mask, "glare_mask")
        if self.image_shape is not None and g.shape != self.image_shape:
            raise ValueError(f"glare_mask: expected shape {self.image_shape} to match "
                             f"image_shape, got {g.shape}")
        if self.masks is not None:
            return glare_fraction(g, masks=self.masks)
        return glare_fraction(g, self.boxes)

    def filter_specular(
        self, glare_mask: Any, *, specular: str = "mask", specular_threshold: float = 0.5
    ) -> Detections:
        """Masks out (drops) or flags detections that sit mostly on specular glare.

        Args:
            glare_mask: (H, W) bool or uint8 glare mask (``fissure.specular_mask(image)``).
            specular: ``"mask"``: keep the detections whose glare fraction is
                ``< specular_threshold`` (glare is not a defect); ``"flag"``: keep all and set
                ``data["glare_fraction"]`` (float32) and ``data["specular"]`` (bool, fraction
                ``>= specular_threshold``).
            specular_threshold: in [0, 1].
        """
        if specular not in _SPECULAR:
            raise ValueError(f"specular: expected one of {_SPECULAR}, got {specular!r}")
        t = check_threshold(specular_threshold, "specular_threshold")
        frac = self.glare_fraction(glare_mask)
        hit = frac >= t
        if specular == "mask":
            return self[~hit]
        data = dict(self.data)
        data["glare_fraction"] = frac.astype(np.float32)
        data["specular"] = hit
        return self._replace(data=data)


def coco_dataset(
    images: Sequence[Any],
    detections_list: Sequence[Detections],
    class_names: Any = None,
    *,
    category_ids: Mapping[int, Any] | None = None,
    start_image_id: int = 1,
) -> dict[str, Any]:
    """A COCO dataset dict ``{"images", "annotations", "categories"}``, JSON-serialisable.

    Args:
        images: one per detection set: a file name (str or path), or a dict with COCO image
            fields (``file_name``, optional ``id``, ``width``, ``height``; copied). Missing
            ``id`` is ``start_image_id + index``; missing ``width``/``height`` come from the
            detections' ``image_shape``.
        detections_list: the detections of each image.
        class_names: ``{class_id: name}`` or a list; default: the union of the detections'
            ``class_names`` (ids without a name are named by their id).
        category_ids: optional ``{class_id: category_id}`` (as :meth:`Detections.to_coco`).

    Annotation ids run from 1 over all images.
    """
    import os

    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(f"images: expected a list of file names or dicts, got {describe(images)}")
    dets = list(detections_list)
    if len(images) != len(dets):
        raise ValueError(f"detections_list: expected {len(images)} entries (one per image), "
                         f"got {len(dets)}")
    for k, d in enumerate(dets):
        if not isinstance(d, Detections):
            raise TypeError(f"detections_list[{k}]: expected Detections, got {describe(d)}")
    cmap = _category_map(category_ids)
    names = _as_class_names(class_names)
    if names is None:
        names = {}
        for d in dets:
            names.update(d.class_names or {})
    present = {int(c) for d in dets for c in np.unique(d.class_ids).tolist()}
    if cmap is not None and present - set(cmap):
        raise ValueError(f"category_ids: no category for class ids {sorted(present - set(cmap))}")
    categories = []
    for c in sorted(present | set(names)):
        if cmap is not None and c not in cmap:
            continue  # a named class that no detection uses and that has no category
        cat = c if cmap is None else cmap[c]
        cat = int(cat) if isinstance(cat, np.integer) else cat
        categories.append({"id": cat, "name": names.get(c, str(c)), "supercategory": ""})
    out_images = []
    annotations: list[dict[str, Any]] = []
    for k, (img, d) in enumerate(zip(images, dets)):
        if isinstance(img, Mapping):
            rec = dict(img)
        elif isinstance(img, (str, os.PathLike)):
            rec = {"file_name": os.fspath(img)}
        else:
            raise TypeError(f"images[{k}]: expected a file name or a dict, got {describe(img)}")
        rec.setdefault("id", start_image_id + k)
        if d.image_shape is not None:
            h, w = d.image_shape
            if rec.setdefault("height", h) != h or rec.setdefault("width", w) != w:
                raise ValueError(
                    f"images[{k}]: width/height {rec['width']}x{rec['height']} do not match "
                    f"the detections' image_shape {d.image_shape}"
                )
        out_images.append(rec)
        annotations.extend(
            d.to_coco(rec["id"], category_ids=cmap, start_id=len(annotations) + 1)
        )
    return {"images": out_images, "annotations": annotations, "categories": categories}
