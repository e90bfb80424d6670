"""Helpers shared by the ``fissure`` commands: input images behind a progress bar, error
lines, exit statuses and output names."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Images", "class_names", "error", "is_runtime_error", "no_inputs", "one_line",
           "unique_stem"]


class Images:
    """A command's input images (files, folders, globs) behind a progress bar. Iterating yields
    ``(number, path, image)`` with ``number`` counting every input from 1; a file that cannot
    be read is reported on stderr, counted in ``failed`` and skipped."""

    def __init__(self, inputs: Sequence[str], desc: str, quiet: bool) -> None:
        from ..io import expand_inputs

        self.paths = list(expand_inputs(inputs))
        self.desc, self.quiet, self.failed = desc, quiet, 0
        self.bar: Any = None

    def __iter__(self) -> Iterator[tuple[int, Path, np.ndarray]]:
        from tqdm import tqdm

        from ..io import read_image

        self.bar = tqdm(self.paths, desc=self.desc, unit="img", disable=self.quiet)
        for number, path in enumerate(self.bar, start=1):
            try:
                image = read_image(path)
            except (OSError, ValueError) as exc:
                self.failed += 1
                tqdm.write(f"fissure: skipped {path}: {exc}", file=sys.stderr)
                continue
            yield number, path, image


def no_inputs() -> int:
    print("fissure: error: no input images found", file=sys.stderr)
    return 2


def class_names(spec: str | None) -> list[str] | None:
    if not spec:
        return None
    path = Path(spec)
    if path.is_file():
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return [n.strip() for n in spec.split(",")]


def unique_stem(path: Path, used: set) -> str:
    stem, k = path.stem, 1
    while stem in used:
        k += 1
        stem = f"{path.stem}_{k}"
    used.add(stem)
    return stem


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def error(message: str) -> int:
    print(f"fissure: error: {message}", file=sys.stderr)
    return 2


def is_runtime_error(exc: BaseException) -> bool:
    """Errors that the model run itself raises: RuntimeError/MemoryError and the backends' own
    exception types (ONNX Runtime's derive from Exception directly). Anything else is a bug and
    keeps its traceback."""
    if isinstance(exc, (RuntimeError, MemoryError, ValueError)):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("onnxruntime", "openvino"))


def add_overlay_format(parser: Any) -> None:
    """``--overlay-format jpg|png``: how a command writes its overlay pictures."""
    parser.add_argument(
        "--overlay-format", choices=["jpg", "png"], default="jpg",
        help="overlay pictures as JPEG, quality 90 (about a seventh of the PNG's size on a "
             "12 MP photo), or as lossless PNG (default jpg)")


def write_overlay(out: Path, name: str, picture: np.ndarray, fmt: str) -> Path:
    """Writes an overlay picture as ``out/NAME.FMT`` (``--overlay-format``), atomically."""
    from ..io import write_image_atomic

    return write_image_atomic(out / f"{name}.{fmt}", picture)
