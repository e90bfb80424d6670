"""preprocess_tiles and PreprocessConfig refuse bad input with messages naming expected vs got."""

from __future__ import annotations

import numpy as np
import pytest

from fissure import PreprocessConfig, letterbox_params, preprocess_tiles
from fissure import _core

IMG = np.zeros((100, 120, 3), np.uint8)
TILES = np.array([[0, 0, 50, 50]], np.int64)
CFG = PreprocessConfig(input_size=(32, 32))


@pytest.mark.parametrize(
    "image,exc,match",
    [(np.zeros((100, 120, 3), np.float32), TypeError, "expected dtype uint8"),
     (np.zeros((100, 120, 2), np.uint8), ValueError, r"expected shape \(H, W, 3\)"),
     (np.zeros((100, 120, 3, 1), np.uint8), ValueError, r"expected shape \(H, W, 3\)"),
     (np.zeros((0, 120, 3), np.uint8), ValueError, "non-empty"),
     (None, TypeError, "expected an"),
     ],
)
def test_bad_image(image, exc, match) -> None:
    with pytest.raises(exc, match=match):
        preprocess_tiles(image, TILES, CFG)


def test_gray_and_bgra_follow_the_one_intake_policy() -> None:
    """Gray is repeated into three channels and BGRA loses its alpha, as in specular_mask and
    the detector (fissure.io.as_image)."""
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (100, 120), dtype=np.uint8)
    bgr = np.repeat(gray[:, :, None], 3, 2)
    want = preprocess_tiles(bgr, TILES, CFG)
    np.testing.assert_array_equal(preprocess_tiles(gray, TILES, CFG), want)
    bgra = np.concatenate([bgr, np.full((100, 120, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(preprocess_tiles(bgra, TILES, CFG), want)


@pytest.mark.parametrize(
    "tiles,exc,match",
    [(np.array([[0, 0, 121, 50]]), ValueError, "outside"),
     (np.array([[-1, 0, 10, 10]]), ValueError, "outside"),
     (np.array([[0, 0, 10, 101]]), ValueError, "outside"),
     (np.array([[5, 0, 5, 10]]), ValueError, "empty"),
     (np.array([[5, 9, 10, 3]]), ValueError, "empty"),
     (np.array([[0.0, 0, 10, 10]]), TypeError, "integer"),
     (np.array([[0, 0, 10]]), ValueError, r"\(T, 4\)"),
     ],
)
def test_bad_tiles(tiles, exc, match) -> None:
    with pytest.raises(exc, match=match):
        preprocess_tiles(IMG, tiles, CFG)


def test_bad_tiles_in_core_too() -> None:
    out = np.empty((1, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match="outside"):
        _core.preprocess_tiles(IMG, np.array([[0, 0, 121, 5]], np.int64), out, 32, 32)
    with pytest.raises(ValueError, match="empty"):
        _core.preprocess_tiles(IMG, np.array([[3, 0, 3, 5]], np.int64), out, 32, 32)
    with pytest.raises(ValueError, match="std"):
        _core.preprocess_tiles(IMG, TILES, out, 32, 32, std=(1.0, 0.0, 1.0))
    with pytest.raises(TypeError):
        _core.preprocess_tiles(IMG, TILES.astype(np.int32), out, 32, 32)


def test_mode_none_requires_input_size() -> None:
    with pytest.raises(ValueError, match=r"mode 'none' expects every tile to be 32 x 32"):
        preprocess_tiles(IMG, TILES, PreprocessConfig(input_size=(32, 32), mode="none"))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [({"std": (1, 0, 1)}, ValueError, "std"),
     ({"std": (1, 1)}, ValueError, "three numbers"),
     ({"mean": (0, float("nan"), 0)}, ValueError, "finite"),
     ({"mode": "stretch"}, ValueError, "mode"),
     ({"interpolation": "cubic"}, ValueError, "interpolation"),
     ({"dtype": "float64"}, ValueError, "dtype"),
     ({"input_size": (0, 32)}, ValueError, "input_size"),
     ({"input_size": (32,)}, TypeError, "input_size"),
     ({"pad_value": 256}, ValueError, "pad_value"),
     ({"pad_value": 1.5}, TypeError, "pad_value"),
     ({"scale": float("inf")}, ValueError, "scale"),
     ],
)
def test_bad_config(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        PreprocessConfig(**kwargs)


def test_config_normalises_fields() -> None:
    c = PreprocessConfig(input_size=64, mean=0.5, std=2, dtype=np.float16)  # type: ignore[arg-type]
    assert c.input_size == (64, 64) and c.mean == (0.5,) * 3 and c.std == (2.0,) * 3
    assert c.dtype == "float16"
    with pytest.raises(Exception):
        c.rgb = False  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    "out,exc,match",
    [(np.empty((1, 3, 32, 32), np.float64), TypeError, "expected dtype float32"),
     (np.empty((1, 3, 32, 32), np.float16), TypeError, "expected dtype float32"),
     (np.empty((2, 3, 32, 32), np.float32), ValueError, r"expected shape \(1, 3, 32, 32\)"),
     (np.empty((1, 32, 32, 3), np.float32), ValueError, "expected shape"),
     (np.empty((1, 3, 32, 64), np.float32)[..., ::2], ValueError, "C-contiguous"),
     ([0.0], TypeError, "expected a"),
     ],
)
def test_bad_out(out, exc, match) -> None:
    with pytest.raises(exc, match=match):
        preprocess_tiles(IMG, TILES, CFG, out=out)


def test_read_only_out() -> None:
    out = np.empty((1, 3, 32, 32), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        preprocess_tiles(IMG, TILES, CFG, out=out)


def test_bad_config_type_and_threads() -> None:
    with pytest.raises(TypeError, match="PreprocessConfig"):
        preprocess_tiles(IMG, TILES, {"input_size": (32, 32)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        preprocess_tiles(IMG, TILES, CFG, num_threads=0)


def test_letterbox_errors() -> None:
    with pytest.raises(ValueError, match="tile_h"):
        letterbox_params(0, 10, 32, 32)
    with pytest.raises(ValueError, match="empty"):
        letterbox_params(1, 5000, 640, 640)
    with pytest.raises(ValueError, match="empty"):
        preprocess_tiles(np.zeros((10, 5000, 3), np.uint8), np.array([[0, 0, 5000, 1]]),
                         PreprocessConfig(input_size=(640, 640), mode="letterbox"))
