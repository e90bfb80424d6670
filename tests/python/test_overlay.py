"""The anomaly overlay (heatmap_overlay, AnomalyResult.overlay) against what a reader needs:
the image untouched where the map is well below the threshold, colour where it approaches or
passes it, regions numbered as in the JSON, glare marked apart from defects, a legend with
a colour bar; oracles are the inputs (pixels, masks, boxes) themselves."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from fissure.anomaly import AnomalyResult, heatmap_overlay
from fissure.anomaly.patchcore import _regions

H, W, T = 600, 800, 10.0


def disc(cy: int, cx: int, r: float, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A map with two defects well over T (a cone each), a patch at 0.7 T (approaching) and a
    glare disc where the map is 0 (as predict leaves it); the glare mask."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    amap = np.zeros((H, W), np.float32)
    for cy, cx, peak in ((300, 250, 4 * T), (450, 600, 3 * T), (200, 620, 5 * T)):
        amap = np.maximum(amap, peak * np.clip(1 - np.hypot(yy - cy, xx - cx) / 30, 0, 1))
    amap[420:450, 100:140] = 0.7 * T
    glare = disc(120, 420, 14)
    amap[glare] = 0
    return amap, glare


def result(amap: np.ndarray, glare: np.ndarray) -> AnomalyResult:
    mask = amap > T
    boxes, scores = _regions(mask, amap)  # the regions as PatchCore.predict lists them
    return AnomalyResult(float(amap.max()), amap, mask, boxes, scores, T, T, glare)


def grow(m: np.ndarray, r: int) -> np.ndarray:
    return cv2.dilate(m.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)


def bbox(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_far_below_threshold_the_image_is_unchanged(rng: np.random.Generator) -> None:
    amap, glare = scene()
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    before = img.copy()
    r = result(amap, glare)
    plain = heatmap_overlay(img, amap, T, glare=glare, boxes=r.boxes, legend=False)
    np.testing.assert_array_equal(img, before)  # the input is not touched
    # what may change: the coloured map (>= T / 2), near the regions (outline and number
    # tags just outside them) and around the glare
    near = amap >= 0.5 * T
    for x0, y0, x1, y1 in r.boxes.astype(int):
        near[max(y0 - 40, 0):y1 + 40, max(x0 - 10, 0):x1 + 40] = True
    near |= grow(glare, 3)
    np.testing.assert_array_equal(plain[~near], img[~near])
    # the legend adds one compact box at the image's edge and changes nothing else
    full = heatmap_overlay(img, amap, T, glare=glare, boxes=r.boxes)
    x0, y0, x1, y1 = bbox(changed(full, plain))
    assert (x1 - x0) <= W // 2 and (y1 - y0) <= H // 3
    assert min(x0, y0, W - x1, H - y1) < 10
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(full[outside], plain[outside])
    # a map far below the threshold everywhere: the picture is the image, legend aside
    quiet = heatmap_overlay(img, np.full((H, W), 0.49 * T, np.float32), T, legend=False)
    np.testing.assert_array_equal(quiet, img)
    gray = img[..., 1]
    np.testing.assert_array_equal(
        heatmap_overlay(gray, np.zeros((H, W), np.float32), T, legend=False),
        cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))


def test_above_threshold_is_coloured_strongly_and_approaching_faintly() -> None:
    amap, glare = scene()
    img = np.full((H, W, 3), 128, np.uint8)
    out = heatmap_overlay(img, amap, T, glare=glare, legend=False)
    diff = np.abs(out.astype(int) - img).sum(axis=2)
    over = amap > T
    assert (diff[over] > 0).all()
    approach = np.zeros((H, W), bool)
    approach[425:445, 105:135] = True  # inside the 0.7 T patch
    assert (diff[approach] > 0).all()
    inner = cv2.erode(over.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert diff[approach].mean() < 0.6 * diff[inner].mean()
    # warm colours: red over blue where the map passes the threshold
    o = out[inner].astype(int)
    assert (o[:, 2] > o[:, 0] + 60).all()


def test_regions_are_numbered_as_in_the_json(rng: np.random.Generator) -> None:
    amap, glare = scene()
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    r = result(amap, glare)
    regions = r.to_dict()["regions"]
    assert len(regions) == 3 and [g["id"] for g in regions] == [1, 2, 3]
    json_boxes = np.array([g["box"] for g in regions], np.float32)
    # the overlay numbers the JSON's boxes in the JSON's order; by default, the mask's
    # regions in the order predict lists them
    want = heatmap_overlay(img, amap, T, glare=glare, boxes=json_boxes)
    np.testing.assert_array_equal(r.overlay(img), want)
    np.testing.assert_array_equal(heatmap_overlay(img, amap, T, glare=glare), want)
    full = heatmap_overlay(img, amap, T, glare=glare, boxes=json_boxes, legend=False)
    for i, (x0, y0, x1, y1) in enumerate(json_boxes.astype(int)):
        before = heatmap_overlay(img, amap, T, glare=glare, boxes=json_boxes[:i], legend=False)
        after = heatmap_overlay(img, amap, T, glare=glare, boxes=json_boxes[:i + 1],
                                legend=False)
        tag = changed(after, before)  # region i's number, and nothing else
        tx0, ty0, tx1, ty1 = bbox(tag)
        # near its region: above it (there is room), starting at its left edge
        assert ty1 <= y0 and y0 - ty0 < 40 and abs(tx0 - x0) <= 2 and tx1 < x1 + 40
        np.testing.assert_array_equal(full[tag], after[tag])
        if i:  # drawn alone it would read "1": the number depends on the position
            alone = heatmap_overlay(img, amap, T, glare=glare, boxes=json_boxes[i:i + 1],
                                    legend=False)
            assert (alone[tag] != after[tag]).any()


@pytest.mark.parametrize("seed", range(4))
def test_default_numbering_follows_the_predicted_regions(seed: int) -> None:
    """Without boxes, regions are numbered in PatchCore.predict's order (OpenCV's labels):
    random blobs, touching diagonally, and an island inside another region's hole."""
    g = np.random.default_rng(seed)
    h, w = 400, 500
    amap = np.zeros((h, w), np.float32)
    for _ in range(25):
        cy, cx, r = g.integers(0, h), g.integers(0, w), g.integers(2, 20)
        amap[disc(cy, cx, r, h, w)] = 2 * T
    amap[g.random((h, w)) < 0.002] = 2 * T  # single pixels
    ring = disc(200, 250, 40, h, w) & ~disc(200, 250, 30, h, w)
    amap[disc(200, 250, 40, h, w)] = 0
    amap[ring | disc(200, 250, 5, h, w)] = 2 * T
    boxes, _ = _regions(amap > T, amap)
    img = np.full((h, w, 3), 128, np.uint8)
    np.testing.assert_array_equal(heatmap_overlay(img, amap, T, legend=False),
                                  heatmap_overlay(img, amap, T, boxes=boxes, legend=False))


def test_glare_is_hatched_in_blue_and_explained() -> None:
    amap, glare = scene()
    img = np.full((H, W, 3), 128, np.uint8)
    out = heatmap_overlay(img, amap, T, glare=glare, legend=False)
    d = changed(out, img)
    inside = cv2.erode(glare.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    share = d[inside].mean()
    assert 0.1 < share < 0.7  # hatched, not filled
    g = out[glare & d].astype(int)
    assert (g[:, 0] > g[:, 2] + 60).all()  # blue, where defects are red
    assert d[grow(glare, 2) & ~glare].any()  # outlined
    # the legend has a line for it only when there is glare
    with_g = changed(heatmap_overlay(img, amap, T, glare=glare), out)
    no_g = changed(heatmap_overlay(img, amap, T), heatmap_overlay(img, amap, T, legend=False))
    hg, hn = bbox(with_g), bbox(no_g)
    assert hg[3] - hg[1] > hn[3] - hn[1]


def test_legend_has_a_colour_bar_with_the_scale() -> None:
    amap, glare = scene()
    img = np.full((H, W, 3), 128, np.uint8)
    plain = heatmap_overlay(img, amap, T, legend=False)
    full = heatmap_overlay(img, amap, T)
    x0, y0, x1, y1 = bbox(changed(full, plain))
    box = full[y0:y1, x0:x1].astype(int)
    b, g, r = box[..., 0], box[..., 1], box[..., 2]
    # the bar runs through the warm colours: reds (past the threshold) and yellows/oranges
    assert ((r > 150) & (b < 90) & (g < 90)).sum() > 50
    assert ((r > 150) & (g > 110) & (b < 110)).sum() > 50
    # a small image has no room for it: left out rather than covering the picture
    small = np.zeros((120, 160), np.float32)
    s_img = np.full((120, 160, 3), 128, np.uint8)
    np.testing.assert_array_equal(heatmap_overlay(s_img, small, T), s_img)


def test_marks_grow_with_the_image() -> None:
    def tag_height(h: int, w: int) -> int:
        amap = np.zeros((h, w), np.float32)
        amap[disc(h // 2, w // 2, h / 40, h, w)] = 2 * T
        img = np.full((h, w, 3), 128, np.uint8)
        boxes = _regions(amap > T, amap)[0]
        a = heatmap_overlay(img, amap, T, boxes=boxes, legend=False)
        b = heatmap_overlay(img, amap, T, boxes=boxes[:0], legend=False)
        x0, y0, x1, y1 = bbox(changed(a, b))
        return y1 - y0

    small, big = tag_height(600, 800), tag_height(3000, 4000)
    assert big >= 40 and big >= 3 * small


def test_memory_is_one_image_copy_and_bands() -> None:
    h, w = 1500, 2000
    amap = np.zeros((h, w), np.float32)
    amap[disc(700, 900, 200, h, w)] = 2 * T
    img = np.full((h, w, 3), 128, np.uint8)
    glare = disc(200, 1500, 60, h, w)
    r = result(amap, glare)
    tracemalloc.start()
    try:
        r.overlay(img)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the output and less than one float32 map's worth of temporaries
    assert peak < img.nbytes + 2 * h * w


def test_bad_input() -> None:
    amap, glare = scene()
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(ValueError, match="size"):
        heatmap_overlay(img, amap[:-1], T)
    with pytest.raises(ValueError, match="glare"):
        heatmap_overlay(img, amap, T, glare=glare[:-1])
    with pytest.raises(ValueError, match="threshold"):
        heatmap_overlay(img, amap, float("nan"))
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(img, amap, T, alpha=2)
