"""Bad input to the specular API raises TypeError / ValueError naming what was expected and
what came; nothing reaches the core unchecked, and the core refuses what slips through."""

from __future__ import annotations

import numpy as np
import pytest

import fissure
from fissure import BoxMasks, _core

IMG = np.zeros((4, 5, 3), np.uint8)
MASK = np.zeros((4, 5), bool)


@pytest.mark.parametrize(
    ("image", "exc", "match"),
    [
        (IMG.astype(np.float32), TypeError, "expected dtype uint8.*float32.*scale"),
        (IMG.astype(np.float64), TypeError, "expected dtype uint8.*float64"),
        (IMG.astype(bool), TypeError, "expected dtype uint8.*bool"),
        (IMG.astype(np.int8), TypeError, "expected dtype uint8.*int8"),
        (np.zeros((4, 5, 2), np.uint8), ValueError, r"expected shape \(H, W, 3\).*\(4, 5, 2\)"),
        (np.zeros((4, 5, 5), np.uint8), ValueError, r"expected shape \(H, W, 3\)"),
        (np.zeros(12, np.uint8), ValueError, r"expected shape \(H, W, 3\), \(H, W\).*\(12,\)"),
        (np.zeros((2, 4, 5, 3), np.uint8), ValueError, "expected shape.*\\(2, 4, 5, 3\\)"),
        (np.zeros((), np.uint8), ValueError, "expected shape"),
        (np.zeros((0, 5, 3), np.uint8), ValueError, "non-empty.*\\(0, 5, 3\\)"),
        (np.zeros((4, 0, 3), np.uint8), ValueError, "non-empty"),
        (np.zeros((0, 0), np.uint8), ValueError, "non-empty"),
        (None, TypeError, "expected an \\(H, W, 3\\)"),
        ("no-such-image.png", FileNotFoundError, "no such image file"),
        ([[1.5, 2.0]], TypeError, "uint8"),
    ],
)
def test_bad_images(image: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fissure.specular_mask(image)


def test_one_intake_policy_for_16_bit_and_alpha() -> None:
    """fissure.io.as_image's policy: uint16 is scaled with >> 8, BGRA loses its alpha channel,
    gray equals its three-channel repeat (the same rules as preprocess_tiles and the detector)."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    img[1:3, 2:5] = 250
    want = fissure.specular_mask(img)
    assert want.any()
    wide = img.astype(np.uint16) << 8 | rng.integers(0, 256, img.shape, dtype=np.uint16)
    np.testing.assert_array_equal(fissure.specular_mask(wide), want)
    bgra = np.concatenate([img, rng.integers(0, 256, (6, 7, 1), dtype=np.uint8)], axis=2)
    np.testing.assert_array_equal(fissure.specular_mask(bgra), want)
    gray = img[:, :, 0].copy()
    np.testing.assert_array_equal(fissure.specular_mask(gray),
                                  fissure.specular_mask(np.repeat(gray[:, :, None], 3, 2)))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"v_min": -1}, ValueError, "v_min: expected an int in 0..255, got -1"),
        ({"v_min": 256}, ValueError, "v_min: expected an int in 0..255, got 256"),
        ({"s_max": -1}, ValueError, "s_max: expected an int in 0..255"),
        ({"s_max": 300}, ValueError, "s_max: expected an int in 0..255, got 300"),
        ({"v_min": 240.0}, TypeError, "v_min: expected an int.*240.0.*float"),
        ({"v_min": "240"}, TypeError, "v_min: expected an int"),
        ({"s_max": True}, TypeError, "s_max: expected an int"),
        ({"s_max": None}, TypeError, "s_max: expected an int"),
        ({"dilate": -1}, ValueError, "dilate: expected an int in 0..254, got -1"),
        ({"dilate": 255}, ValueError, "dilate: expected an int in 0..254"),
        ({"dilate": 1.5}, TypeError, "dilate: expected an int"),
        ({"num_threads": 0}, ValueError, "num_threads"),
        ({"num_threads": 1.0}, TypeError, "num_threads"),
        ({"rgb": "yes"}, TypeError, "rgb: expected a bool"),
        ({"out": np.zeros((4, 6), bool)}, ValueError, "out: expected shape \\(4, 5\\)"),
        ({"out": np.zeros((4, 5), np.float32)}, TypeError, "out: expected dtype bool or uint8"),
        ({"out": np.zeros((4, 10), bool)[:, ::2]}, ValueError, "out: expected contiguous rows"),
        ({"out": [[0] * 5] * 4}, TypeError, "out: expected an \\(H, W\\) bool array"),
    ],
)
def test_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fissure.specular_mask(IMG, **kwargs)


def test_read_only_out() -> None:
    out = np.zeros((4, 5), bool)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fissure.specular_mask(IMG, out=out)


def test_out_overlapping_the_image() -> None:
    img = np.zeros((4, 15), np.uint8)
    with pytest.raises(ValueError, match="share memory with the image"):
        fissure.specular_mask(img.reshape(4, 5, 3), out=img[:, :5])


def test_numpy_integer_thresholds_accepted() -> None:
    assert not fissure.specular_mask(IMG, v_min=np.uint8(240), s_max=np.int64(30)).any()


def test_extreme_thresholds_select_nothing() -> None:
    white = np.full((3, 70, 3), 255, np.uint8)
    assert fissure.specular_mask(white, v_min=254).all()
    assert not fissure.specular_mask(white, v_min=255).any()
    assert not fissure.specular_mask(white, s_max=0).any()
    assert not fissure.specular_mask(white, s_max=0, dilate=3).any()
    assert not fissure.specular_mask(white[..., 0], s_max=0).any()


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: _core.specular_mask(IMG.astype(np.float32)), TypeError, "expected dtype uint8"),
        (lambda: _core.specular_mask(np.zeros(5, np.uint8)), ValueError, "expected shape"),
        (lambda: _core.specular_mask(np.zeros((0, 5, 3), np.uint8)), ValueError, "non-empty"),
        (lambda: _core.specular_mask(np.zeros((4, 10, 3), np.uint8)[:, ::2]), ValueError,
         "contiguous.*np.ascontiguousarray"),
        (lambda: _core.specular_mask(np.zeros((4, 5, 6), np.uint8)[..., ::2]), ValueError,
         "adjacent bytes"),
        (lambda: _core.specular_mask(IMG, 256), ValueError, "v_min"),
        (lambda: _core.specular_mask(IMG, 240, -3), ValueError, "s_max"),
        (lambda: _core.specular_mask(IMG, 240, 30, 900), ValueError, "dilate"),
        (lambda: _core.specular_mask(IMG, out=np.zeros((5, 4), bool)), ValueError, "out"),
        (lambda: _core.dilate_disc(np.zeros((4, 5), np.float32), 2), TypeError, "bool or uint8"),
        (lambda: _core.dilate_disc(MASK, 2, MASK), ValueError, "must not be the input"),
        (lambda: _core.dilate_disc(np.zeros((4, 10), bool)[:, ::2], 2), ValueError, "contiguous"),
        (lambda: _core.glare_fraction_boxes(MASK, np.zeros((2, 3), np.float32)), ValueError,
         "boxes"),
        (lambda: _core.glare_fraction_boxes(np.zeros((4, 5, 1), bool), np.zeros((2, 4), np.float32)),
         ValueError, "\\(H, W\\)"),
        (lambda: _core.glare_fraction_masks(MASK, np.zeros(3, np.uint8),
                                            np.array([0, 4], np.int64),
                                            np.array([[0, 0, 2, 2]], np.int32)), ValueError, "expected 4 bytes"),
        (lambda: _core.specular_threshold_table(256, 0), ValueError, "v_min"),
        (lambda: _core.disc_half_widths(-1), ValueError, "radius"),
    ],
)
def test_core_refuses(call: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        call()  # type: ignore[operator]


def test_dilate_errors() -> None:
    with pytest.raises(ValueError, match="radius: expected an int in 0..254, got 255"):
        fissure.dilate_disc(MASK, 255)
    with pytest.raises(TypeError, match="radius"):
        fissure.dilate_disc(MASK, 2.0)
    with pytest.raises(TypeError, match="mask: expected dtype bool or uint8.*float64"):
        fissure.dilate_disc(MASK.astype(float), 2)
    with pytest.raises(ValueError, match="mask: expected shape \\(H, W\\)"):
        fissure.dilate_disc(np.zeros((2, 3, 4), bool), 2)
    with pytest.raises(ValueError, match="share memory"):
        m = np.zeros((4, 5), bool)
        fissure.dilate_disc(m, 1, out=m)
    with pytest.raises(TypeError, match="radius"):
        fissure.disc_kernel(None)  # type: ignore[arg-type]


def test_glare_fraction_errors() -> None:
    boxes = np.array([[0, 0, 2, 2]], np.float32)
    with pytest.raises(ValueError, match="exactly one of boxes or masks"):
        fissure.glare_fraction(MASK)
    bm = BoxMasks.from_full(np.ones((1, 4, 5), bool))
    with pytest.raises(ValueError, match="exactly one of boxes or masks"):
        fissure.glare_fraction(MASK, boxes, masks=bm)
    with pytest.raises(TypeError, match="masks: expected a fissure.BoxMasks"):
        fissure.glare_fraction(MASK, masks=np.ones((1, 4, 5), bool))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mask: expected dtype bool or uint8.*float32"):
        fissure.glare_fraction(MASK.astype(np.float32), boxes)
    with pytest.raises(ValueError, match="boxes: expected shape \\(N, 4\\)"):
        fissure.glare_fraction(MASK, [[1, 2, 3]])
    with pytest.raises(ValueError, match="x2 >= x1"):
        fissure.glare_fraction(MASK, [[3, 0, 1, 2]])
    with pytest.raises(ValueError, match="finite"):
        fissure.glare_fraction(MASK, [[0, 0, np.nan, 2]])
    other = BoxMasks.from_full(np.ones((1, 6, 6), bool))
    with pytest.raises(ValueError, match="image_shape \\(6, 6\\) does not match.*\\(4, 5\\)"):
        fissure.glare_fraction(MASK, masks=other)


def test_suppress_inpaint_draw_errors() -> None:
    amap = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="mask: expected shape \\(4, 5\\).*\\(4, 6\\)"):
        fissure.suppress_glare(amap, np.zeros((4, 6), bool))
    with pytest.raises(ValueError, match="anomaly_map: expected shape \\(H, W\\)"):
        fissure.suppress_glare(np.zeros(5), MASK)
    with pytest.raises(TypeError, match="anomaly_map: expected a numeric array"):
        fissure.suppress_glare(np.array([["a"]]), MASK)
    with pytest.raises(TypeError, match="value: expected a number"):
        fissure.suppress_glare(amap, MASK, value="0")  # type: ignore[arg-type]
    pytest.importorskip("cv2")
    with pytest.raises(ValueError, match="method: expected one of"):
        fissure.inpaint_specular(IMG, method="fast")
    with pytest.raises(ValueError, match="radius: expected a positive number"):
        fissure.inpaint_specular(IMG, radius=0)
    with pytest.raises(TypeError, match="radius"):
        fissure.inpaint_specular(IMG, radius="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask: expected shape \\(4, 5\\)"):
        fissure.inpaint_specular(IMG, np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="color: expected three ints"):
        fissure.draw_specular(IMG, MASK, color=(255, 0))
    with pytest.raises(ValueError, match="color: expected three ints"):
        fissure.draw_specular(IMG, MASK, color=(256, 0, 0))
    with pytest.raises(TypeError, match="color"):
        fissure.draw_specular(IMG, MASK, color="red")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha: expected a number in \\[0, 1\\]"):
        fissure.draw_specular(IMG, MASK, alpha=1.5)
    with pytest.raises(ValueError, match=r"expected shape \(H, W, 3\)"):
        fissure.draw_specular(np.zeros((4, 5, 2), np.uint8), MASK)


def test_backend_env_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FISSURE_BACKEND", "gpu")
    with pytest.raises(ValueError, match="FISSURE_BACKEND"):
        fissure.specular_mask(IMG)
