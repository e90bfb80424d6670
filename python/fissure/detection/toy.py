"""A toy detector for examples and tests: a tiny ONNX graph built on the spot, and images
with exact ground truth for it. It detects nothing real.

:func:`bright_spot_model` is a real ONNX model whose output is the input's brightness, shaped
as a probability map: ``images (N, 3, H, W) -> maps (N, 1, H, W)``, the mean over the
channels. With the default preprocessing (``x / 255``) and the probability-map decoder that
:class:`fissure.TiledDetector` selects for it, every bright spot on a dark image is one
detection with a box-local mask. :func:`bright_spots` draws such an image, so an example can
run the whole tiled pipeline (slicing, batching, ONNX Runtime or OpenVINO, decoding, merging)
and check the answer without a trained model or a download. For a real detector pass your
own model file to :class:`~fissure.TiledDetector`.

Building the model needs the ``onnx`` package (``pip install onnx``, or ``fissure[onnx]``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = ["bright_spot_model", "bright_spots"]


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the toy model is built with onnx: pip install onnx "
                          "(or fissure[onnx])") from e
    return onnx


def bright_spot_model(static: Optional[tuple[int, int, int, int]] = None) -> bytes:
    """The bytes of an ONNX model ``images (N, 3, H, W) -> maps (N, 1, H, W)``: the mean over
    the channels (opset 13). Dynamic N, H, W unless ``static`` gives the input shape."""
    onnx = _require_onnx()
    from onnx import TensorProto, helper

    shape: list[Any] = list(static) if static else ["N", 3, "H", "W"]
    out_shape = [shape[0], 1, shape[2], shape[3]]
    node = helper.make_node("ReduceMean", ["images"], ["maps"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node], "bright_spots",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT, out_shape)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return bytes(m.SerializeToString())


def bright_spots(height: int, width: int, n: int, seed: int = 0,
                 size: tuple[int, int] = (6, 40), margin: int = 2,
                 value: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy (height, width, 3) uint8 image (pixels 0..39) with ``n`` filled rectangles
    of brightness ``value``, sides in ``[size[0], size[1])``, at least ``margin`` px apart.

    Returns ``(image, boxes)``: boxes ``(n, 4)`` float32 xyxy, the exact ground truth of
    :func:`bright_spot_model`. White (255) spots are also specular glare under
    :func:`fissure.specular_mask` (V > 240, S < 30); ``value=200`` gives spots that are not.
    """
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
    occupied = np.zeros((height, width), bool)
    boxes: list[list[int]] = []
    tries = 0
    while len(boxes) < n:
        tries += 1
        if tries > 1000 * (n + 1):
            raise ValueError(f"bright_spots: cannot place {n} spots of sides {size} px, "
                             f"{margin} px apart, in {height}x{width}")
        bw, bh = (int(v) for v in rng.integers(size[0], size[1], 2))
        x, y = int(rng.integers(0, width - bw)), int(rng.integers(0, height - bh))
        y0, y1, x0, x1 = max(0, y - margin), y + bh + margin, max(0, x - margin), x + bw + margin
        if occupied[y0:y1, x0:x1].any():
            continue
        occupied[y0:y1, x0:x1] = True
        img[y:y + bh, x:x + bw] = value
        boxes.append([x, y, x + bw, y + bh])
    return img, np.array(boxes, np.float32).reshape(-1, 4)
