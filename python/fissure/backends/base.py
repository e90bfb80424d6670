"""The backend protocol, the model's tensor specs, errors and the checks every backend shares.

A backend owns one compiled model on one device. The rest of fissure (the scheduler, the
decoders, ``TiledDetector``) sees only what is here:

- ``backend.inputs`` / ``backend.outputs``: a list of :class:`TensorSpec` (name, shape with
  ``None`` for a dynamic dimension, numpy dtype), in the model's order;
- ``backend.run(batch) -> {name: array}``: synchronous, checked before the runtime sees it;
- ``backend.submit(batch) -> Future``: asynchronous; ``backend.run_async(batches)`` yields the
  results in submission order while later batches are still running;
- ``backend.name`` (``"onnxruntime"`` / ``"openvino"``), ``backend.device`` (what it runs on),
  ``backend.close()`` and ``with backend: ...``.
"""

from __future__ import annotations

import ast
import collections
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
    runtime_checkable,
)

import numpy as np
from .._validate import describe

__all__ = [
    "Backend",
    "BackendBase",
    "BackendNotInstalledError",
    "Batch",
    "ModelLoadError",
    "ModelMetadata",
    "ModelSpec",
    "TensorSpec",
    "check_batch",
    "model_format",
    "resolve_model_source",
]

Batch = Union[np.ndarray, Mapping[str, np.ndarray]]
Dim = Optional[int]

#: pip commands named in errors when a runtime is missing.
PIP_HINTS = {
    "onnxruntime": "pip install onnxruntime  (or onnxruntime-gpu for NVIDIA CUDA)",
    "onnxruntime-gpu": "pip install onnxruntime-gpu  (and uninstall the CPU-only onnxruntime)",
    "openvino": "pip install openvino",
    "onnx": "pip install onnx",
}


class BackendNotInstalledError(ImportError):
    """The runtime a backend needs is not importable; the message names the pip command."""


class ModelLoadError(ValueError):
    """A model file exists but the runtime could not parse or compile it."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    ``shape`` holds ints for static dimensions and ``None`` for dynamic ones (a symbolic
    name, ``-1`` or ``?`` in the model all become ``None``). ``dtype`` is a numpy dtype.
    """

    name: str
    shape: Tuple[Dim, ...]
    dtype: Any  # normalised to a numpy dtype (np.float32 and "float32" are accepted)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(d is not None for d in self.shape)

    def shape_str(self) -> str:
        return "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + (
            ",)" if len(self.shape) == 1 else ")"
        )

    def __str__(self) -> str:
        return f"{self.name}: {self.shape_str()} {self.dtype}"


def _literal(text: str) -> Any:
    """A Python literal from metadata text (``ast.literal_eval``: never code); None if not one."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


@dataclass(frozen=True)
class ModelMetadata:
    """What an exporter wrote into the model file, read back (Ultralytics' keys).

    ``names``: class id -> name (Ultralytics writes a dict literal, ``"{0: 'person'}"``);
    ``imgsz``: the input (h, w) it was trained and exported at; ``stride``: its largest
    stride; ``task``: ``"detect"``, ``"segment"``, ``"pose"``, ``"obb"``, ``"classify"``;
    ``batch``, ``half``: the export's batch and fp16 flag; ``head``: the head module
    (``"Detect"``, ``"Segment26"``, ``"RTDETRDecoder"``, ...; Ultralytics >= 8.4); ``end2end``:
    whether the head is NMS-free; ``version``: the exporter's version as ``(major, minor,
    patch)``. A key that is absent or does not parse is None. Metadata texts are parsed with
    ``ast.literal_eval``, never evaluated.
    """

    names: Optional[Dict[int, str]] = None
    imgsz: Optional[Tuple[int, int]] = None
    stride: Optional[int] = None
    task: Optional[str] = None
    batch: Optional[int] = None
    half: Optional[bool] = None
    head: Optional[str] = None
    end2end: Optional[bool] = None
    version: Optional[Tuple[int, int, int]] = None

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> "ModelMetadata":
        names: Optional[Dict[int, str]] = None
        v = _literal(raw["names"]) if "names" in raw else None
        if isinstance(v, dict) and all(isinstance(k, int) and not isinstance(k, bool)
                                       for k in v):
            names = {int(k): str(n) for k, n in v.items()}
        elif isinstance(v, (list, tuple)):
            names = {i: str(n) for i, n in enumerate(v)}
        imgsz: Optional[Tuple[int, int]] = None
        v = _literal(raw["imgsz"]) if "imgsz" in raw else None
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v, v]
        if (isinstance(v, (list, tuple)) and len(v) == 2
                and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)):
            imgsz = (int(v[0]), int(v[1]))

        def integer(key: str) -> Optional[int]:
            x = _literal(raw[key]) if key in raw else None
            return int(x) if isinstance(x, int) and not isinstance(x, bool) else None

        def flag(key: str) -> Optional[bool]:
            x = _literal(raw[key]) if key in raw else None
            return x if isinstance(x, bool) else None

        def text(key: str) -> Optional[str]:
            return str(raw[key]).strip() or None if raw.get(key) else None

        version = None
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)\S*", raw.get("version", "").strip())
        if m and raw.get("author", "").strip() == "Ultralytics":
            version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return cls(names, imgsz, integer("stride"), text("task"), integer("batch"), flag("half"),
                   text("head"), flag("end2end"), version)


@dataclass(frozen=True)
class ModelSpec:
    """The model's inputs and outputs as a backend sees them (``backend.spec``), and the
    metadata stored in the model file (``metadata``: key -> text, e.g. ONNX
    ``metadata_props``; :attr:`model_metadata` parses the keys fissure uses)."""

    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    source: str = field(default="<bytes>")
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def model_metadata(self) -> ModelMetadata:
        """:attr:`metadata` parsed (:class:`ModelMetadata`)."""
        return ModelMetadata.parse(self.metadata)

    @property
    def input(self) -> TensorSpec:
        """The single input; ValueError if the model has several."""
        if len(self.inputs) != 1:
            names = ", ".join(t.name for t in self.inputs)
            raise ValueError(f"the model has {len(self.inputs)} inputs ({names}); pick one by name")
        return self.inputs[0]

    @property
    def is_dynamic(self) -> bool:
        return not all(t.is_static for t in self.inputs)


@runtime_checkable
class Backend(Protocol):
    """What the rest of fissure needs from an inference backend."""

    name: str
    device: str

    @property
    def inputs(self) -> List[TensorSpec]: ...

    @property
    def outputs(self) -> List[TensorSpec]: ...

    @property
    def spec(self) -> ModelSpec: ...

    def run(self, batch: Batch) -> Dict[str, np.ndarray]: ...

    def submit(self, batch: Batch) -> "Future[Dict[str, np.ndarray]]": ...

    def run_async(
        self, batches: Iterable[Batch], *, max_in_flight: Optional[int] = None
    ) -> Iterator[Dict[str, np.ndarray]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------------------------
# model files

_SUFFIX_FORMAT = {".onnx": "onnx", ".xml": "openvino-ir", ".tflite": "tflite"}


def model_format(model: Union[str, Path, bytes, bytearray, memoryview]) -> str:
    """``"onnx"``, ``"openvino-ir"`` or ``"tflite"`` from the suffix; bytes are ONNX."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return "onnx"
    p = Path(model)
    fmt = _SUFFIX_FORMAT.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{p}: unknown model format {p.suffix!r}; expected .onnx, .xml (OpenVINO IR with its "
            ".bin) or .tflite"
        )
    return fmt


def resolve_model_source(
    model: Union[str, Path, bytes, bytearray, memoryview],
) -> Tuple[Union[Path, bytes], str]:
    """Check that a model path exists (and an IR's .bin next to it); return (source, format)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        if not data:
            raise ModelLoadError("model bytes are empty")
        return data, "onnx"
    if not isinstance(model, (str, Path)):
        raise TypeError(f"model: expected a path or ONNX bytes, got {type(model).__name__}")
    p = Path(model)
    fmt = model_format(p)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {p}")
    if fmt == "openvino-ir":
        b = p.with_suffix(".bin")
        if not b.is_file():
            raise FileNotFoundError(f"OpenVINO IR weights not found: {b} (needed by {p})")
    if p.stat().st_size == 0:
        raise ModelLoadError(f"{p}: the model file is empty")
    return p, fmt


# --------------------------------------------------------------------------------------------
# input checks


def check_batch(batch: Batch, inputs: Iterable[TensorSpec]) -> Dict[str, np.ndarray]:
    """Turn ``batch`` into ``{input name: C-contiguous array}`` checked against ``inputs``.

    A bare array is accepted when the model has exactly one input. Rank, dtype and every
    static dimension must match; messages name what was expected and what came. Arrays are
    never cast (a float64 batch into a float32 model is an error, not a silent copy).
    """
    specs = list(inputs)
    if isinstance(batch, np.ndarray):
        if len(specs) != 1:
            names = ", ".join(t.name for t in specs)
            raise ValueError(
                f"the model has {len(specs)} inputs ({names}); pass a dict {{name: array}}"
            )
        feed: Dict[str, Any] = {specs[0].name: batch}
    elif isinstance(batch, Mapping):
        feed = dict(batch)
        want = [t.name for t in specs]
        missing = [n for n in want if n not in feed]
        extra = [n for n in feed if n not in want]
        if missing or extra:
            raise ValueError(
                f"input names: expected {want}, got {list(feed)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {extra}" if extra else "")
            )
    else:
        raise TypeError(
            f"batch: expected a numpy array or a dict {{name: array}}, got {type(batch).__name__}"
        )
    out: Dict[str, np.ndarray] = {}
    for t in specs:
        a = feed[t.name]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"input {t.name!r}: expected a numpy array, got {describe(a)}")
        if a.dtype != t.dtype:
            raise ValueError(
                f"input {t.name!r}: expected dtype {t.dtype}, got {a.dtype} "
                f"(convert with .astype(np.{t.dtype.name}))"
            )
        if a.ndim != t.rank:
            raise ValueError(
                f"input {t.name!r}: expected rank {t.rank} {t.shape_str()}, "
                f"got rank {a.ndim} shape {a.shape}"
            )
        for i, (want_d, got_d) in enumerate(zip(t.shape, a.shape)):
            if want_d is not None and want_d != got_d:
                raise ValueError(
                    f"input {t.name!r}: expected shape {t.shape_str()}, got {a.shape} "
                    f"(dimension {i} must be {want_d})"
                )
        out[t.name] = np.ascontiguousarray(a)
    return out


# --------------------------------------------------------------------------------------------
# shared behaviour


class BackendBase:
    """Shared parts of the concrete backends: specs, checks, ordered async, close, repr."""

    name: str = "?"
    device: str = "?"

    def __init__(self, spec: ModelSpec) -> None:
        self._spec = spec
        self._closed = False
        self._lock = threading.Lock()

    # -- specs
    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def inputs(self) -> List[TensorSpec]:
        return list(self._spec.inputs)

    @property
    def outputs(self) -> List[TensorSpec]:
        return list(self._spec.outputs)

    # -- running
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} backend is closed")

    def run(self, batch: Batch) -> Dict[str, np.ndarray]:
        """Run one batch; returns ``{output name: array}`` (arrays the caller owns)."""
        self._check_open()
        return self._run(check_batch(batch, self._spec.inputs))

    def submit(self, batch: Batch, *, copy: bool = True) -> "Future[Dict[str, np.ndarray]]":
        """Start one batch and return a Future of its outputs.

        The input is checked now and copied, so the caller may refill its buffer at once
        (double buffering). ``copy=False`` skips the copy of arrays that are already
        C-contiguous: the runtime then reads the caller's memory, which must not change until
        the future is done (``TiledDetector`` keeps one feeder buffer per batch in flight for
        this). Errors from the runtime are raised by ``future.result()``.
        """
        self._check_open()
        feed = check_batch(batch, self._spec.inputs)
        if copy:
            feed = {k: np.array(v, copy=True) for k, v in feed.items()}
        return self._submit(feed)

    def run_async(
        self, batches: Iterable[Batch], *, max_in_flight: Optional[int] = None
    ) -> Iterator[Dict[str, np.ndarray]]:
        """Yield the outputs of ``batches`` in order, keeping up to ``max_in_flight`` running.

        The iterable is consumed lazily, so a generator that preprocesses batch k+1 overlaps
        the inference of batch k. ``max_in_flight`` defaults to the backend's natural depth
        (``self.max_in_flight``).
        """
        depth = self.max_in_flight if max_in_flight is None else int(max_in_flight)
        if depth < 1:
            raise ValueError(f"max_in_flight: expected >= 1, got {depth}")
        pending: Deque[Future] = collections.deque()
        try:
            for b in batches:
                pending.append(self.submit(b))
                while len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:  # the consumer stopped early: let the rest finish quietly
                f.cancel()

    @property
    def max_in_flight(self) -> int:
        """How many submitted batches ``run_async`` keeps running by default."""
        return 2

    # -- to implement
    def _run(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _submit(  # pragma: no cover
        self, feed: Dict[str, np.ndarray]
    ) -> "Future[Dict[str, np.ndarray]]":
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover
        pass

    # -- lifetime
    def close(self) -> None:
        """Wait for submitted batches, then free the session. Calling it twice is fine."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "BackendBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:  # noqa: BLE001
            pass

    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        ins = ", ".join(str(t) for t in self._spec.inputs)
        outs = ", ".join(str(t) for t in self._spec.outputs)
        state = " closed" if self._closed else ""
        extra = self._repr_extra()
        return (
            f"<{type(self).__name__} {self.name} on {self.device}{extra}{state} "
            f"model={self._spec.source} inputs=[{ins}] outputs=[{outs}]>"
        )
