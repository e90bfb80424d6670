"""The pipeline helpers: glare fraction per box / box-local mask, anomaly-map suppression,
inpainting and the overlay."""

from __future__ import annotations

import numpy as np
import pytest

import fissure
from fissure import BoxMasks, _reference


def glare_plane(rng: np.random.Generator, h: int = 120, w: int = 170) -> np.ndarray:
    m = rng.random((h, w)) < 0.05
    m[20:60, 30:90] = True
    return m


def random_boxes(rng: np.random.Generator, n: int, h: int, w: int, big: bool = False) -> np.ndarray:
    x1 = rng.uniform(-30, w + 10, n)
    y1 = rng.uniform(-30, h + 10, n)
    bw = rng.uniform(0.5 * w, 1.5 * w, n) if big else rng.uniform(0, 60, n)
    bh = rng.uniform(0.5 * h, 1.5 * h, n) if big else rng.uniform(0, 60, n)
    b = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
    b[: n // 10] = np.round(b[: n // 10])  # integer coordinates
    b[n // 10: n // 5, 2] = b[n // 10: n // 5, 0]  # zero width
    return b


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("threads", [1, -1])
def test_glare_fraction_boxes(big: bool, threads: int, rng: np.random.Generator) -> None:
    m = glare_plane(rng)
    n = 300 if big else 500  # big boxes cover the image many times: summed-area table path
    boxes = random_boxes(rng, n, *m.shape, big=big)
    got = fissure.glare_fraction(m, boxes, num_threads=threads)
    assert got.dtype == np.float32 and got.shape == (n,)
    assert np.array_equal(got, _reference.specular.glare_fraction(m, boxes))
    assert ((got >= 0) & (got <= 1)).all()


def test_glare_fraction_simple_cases() -> None:
    m = np.zeros((10, 10), bool)
    m[0:5, 0:5] = True
    boxes = [[0, 0, 5, 5], [0, 0, 10, 10], [5, 5, 10, 10], [0.5, 0.5, 4.2, 4.9], [-5, -5, 2.5, 2],
             [20, 20, 30, 30], [3, 3, 3, 8]]
    got = fissure.glare_fraction(m, boxes)
    assert got.tolist() == [1.0, 0.25, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert fissure.glare_fraction(m, np.zeros((0, 4))).shape == (0,)
    # uint8 masks count nonzero
    assert fissure.glare_fraction(m.astype(np.uint8) * 255, boxes).tolist() == got.tolist()


def test_glare_fraction_box_masks(rng: np.random.Generator) -> None:
    m = glare_plane(rng)
    h, w = m.shape
    data, offsets, regions = [], [0], []
    for _ in range(80):
        x0, y0 = int(rng.integers(-20, w)), int(rng.integers(-20, h))
        mw, mh = int(rng.integers(0, 50)), int(rng.integers(0, 50))
        bm = (rng.random((mh, mw)) < rng.random()).astype(np.uint8)
        data.append(bm.ravel())
        offsets.append(offsets[-1] + bm.size)
        regions.append([x0, y0, mw, mh])
    bms = BoxMasks(np.concatenate(data), offsets, regions)
    for threads in (1, -1):
        got = fissure.glare_fraction(m, masks=bms, num_threads=threads)
        assert got.dtype == np.float32 and got.shape == (80,)
        assert np.array_equal(got, _reference.specular.glare_fraction(m, masks=bms))


def test_glare_fraction_full_box_masks_equal_boxes(rng: np.random.Generator) -> None:
    m = glare_plane(rng)
    boxes = np.array([[10, 10, 50, 40], [0, 0, 170, 120], [100, 5, 160, 115]], np.float32)
    bms = BoxMasks.from_full(np.ones((3, *m.shape), bool) & _box_planes(boxes, m.shape), boxes)
    assert np.allclose(fissure.glare_fraction(m, masks=bms), fissure.glare_fraction(m, boxes),
                       rtol=0, atol=1e-7)


def _box_planes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    planes = np.zeros((len(boxes), *shape), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        planes[i, y1:y2, x1:x2] = True
    return planes


def test_glare_fraction_python_backend(monkeypatch: pytest.MonkeyPatch,
                                       rng: np.random.Generator, twin_calls) -> None:
    m = glare_plane(rng)
    boxes = random_boxes(rng, 50, *m.shape)
    want = fissure.glare_fraction(m, boxes)
    assert not twin_calls
    monkeypatch.setenv("FISSURE_BACKEND", "python")
    assert np.array_equal(fissure.glare_fraction(m, boxes), want)
    assert twin_calls == {"glare_fraction": 1}


def test_suppress_glare() -> None:
    amap = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = np.zeros((3, 4), bool)
    m[1, 1:3] = True
    out = fissure.suppress_glare(amap, m)
    assert out.dtype == np.float32 and out is not amap
    assert out[1, 1] == 0 and out[1, 2] == 0 and out.sum() == amap.sum() - 5 - 6
    assert amap[1, 1] == 5  # untouched
    assert fissure.suppress_glare(amap, m, value=-1.0)[1, 1] == -1.0
    batch = np.stack([amap, amap + 1])[None]  # (1, 2, 3, 4): leading axes broadcast
    got = fissure.suppress_glare(batch, m)
    assert got.shape == batch.shape and (got[..., 1, 1] == 0).all()
    assert fissure.suppress_glare(amap.astype(np.float64), m.astype(np.uint8)).dtype == np.float64


def test_inpaint_specular_uses_cv2_inpaint(rng: np.random.Generator) -> None:
    cv2 = pytest.importorskip("cv2")
    img = rng.integers(40, 120, (60, 80, 3), dtype=np.uint8)
    img[20:30, 30:45] = 255
    m = fissure.specular_mask(img, dilate=2)
    assert m[25, 35]
    out = fissure.inpaint_specular(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, cv2.inpaint(img, m.astype(np.uint8), 3.0, cv2.INPAINT_TELEA))
    assert out[25, 37].max() < 200  # the highlight is filled from its surroundings
    assert np.array_equal(out[~m], img[~m])
    ns = fissure.inpaint_specular(img, m, 5, "NS")
    assert np.array_equal(ns, cv2.inpaint(img, m.astype(np.uint8), 5.0, cv2.INPAINT_NS))
    flat = np.full((10, 10, 3), 30, np.uint8)
    assert np.array_equal(fissure.inpaint_specular(flat), flat)  # nothing to fill
    grey = img[..., 0].copy()
    assert fissure.inpaint_specular(grey, m).shape == grey.shape


def test_draw_specular() -> None:
    img = np.full((4, 5, 3), 100, np.uint8)
    m = np.zeros((4, 5), bool)
    m[1, 2] = True
    out = fissure.draw_specular(img, m)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and out is not img
    assert out[1, 2].tolist() == [178, 50, 178]  # round(0.5 * 100 + 0.5 * (255, 0, 255))
    assert np.array_equal(np.delete(out.reshape(-1, 3), 7, 0), np.delete(img.reshape(-1, 3), 7, 0))
    assert fissure.draw_specular(img, m, color=(0, 255, 0), alpha=1.0)[1, 2].tolist() == [0, 255, 0]
    assert np.array_equal(fissure.draw_specular(img, m, alpha=0.0), img)
    grey = np.full((4, 5), 100, np.uint8)
    g = fissure.draw_specular(grey, m)
    assert g.shape == (4, 5, 3) and g[1, 2].tolist() == [178, 50, 178] and g[0, 0].tolist() == [
        100, 100, 100]


def test_glare_warning_share_and_boxes() -> None:
    """The unmasked-glare warning: silent at or below GLARE_WARN, otherwise naming the share
    under the rule (the oracle: OpenCV's own HSV conversion) and the boxes that touch glare."""
    cv2 = pytest.importorskip("cv2")
    from fissure.specular import GLARE_WARN, glare_warning

    img = np.full((100, 100, 3), (40, 90, 150), np.uint8)  # coloured, dark: no glare
    assert glare_warning("a.png", img, "--specular mask") is None
    img[10:13, 10:14] = 255  # 12 px = 0.12% <= 0.5%: still silent
    assert glare_warning("a.png", img, "--specular mask") is None
    # ... unless a region touches it
    msg = glare_warning("a.png", img, "--specular mask", boxes=[[5, 5, 20, 20], [50, 50, 60, 60]])
    assert msg is not None and "1 of the 2 regions touch it" in msg
    img[40:50, 40:100] = 250  # + 600 px
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    share = float(((hsv[..., 2] > 240) & (hsv[..., 1] < 30)).mean())
    assert share > GLARE_WARN
    msg = glare_warning("dir/b.png", img, "--specular mask")
    assert msg is not None and msg.startswith("fissure: warning: dir/b.png: ")
    assert f"{share:.2%} of the pixels are glare" in msg and "--specular mask" in msg
    assert "gray image" not in msg
    gray = np.full((100, 100), 120, np.uint8)
    gray[:20] = 245
    msg = glare_warning("g.png", gray, "--x")
    assert msg is not None and "in a gray image every pixel above 240" in msg
