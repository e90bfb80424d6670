"""Detections.draw against a numpy reference of the blend and the outlines, and
Detections.filter_specular against a numpy reference of the glare fractions."""

from __future__ import annotations

import numpy as np
import pytest
from fissure import BoxMasks, Detections
from fissure.detection.detections import PALETTE

cv2 = pytest.importorskip("cv2")

H, W = 60, 90


def scene(rng: np.random.Generator):
    """Three non-overlapping boxes with blob masks inside them; the full masks."""
    boxes = np.array([[5.5, 8.2, 30.0, 40.7], [40, 10, 61, 30], [62.3, 35, 85, 55]], np.float32)
    full = np.zeros((3, H, W), bool)
    yy, xx = np.mgrid[:H, :W]
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        full[i] = ((xx - cx) / ((x2 - x1) / 2.5)) ** 2 + ((yy - cy) / ((y2 - y1) / 2.5)) ** 2 < 1
        full[i] &= rng.random((H, W)) < 0.9
    d = Detections(boxes, [0.87, 0.5, 0.25], [0, 3, 21], BoxMasks.from_full(full, boxes),
                   {0: "crack", 3: "pit"})
    return d, full


def regions(boxes: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Inclusive pixel bounds (x0, y0, x1, y1) of each box: floor(x1) .. ceil(x2) - 1."""
    out = []
    for x1, y1, x2, y2 in boxes.astype(np.float64):
        out.append((int(np.floor(x1)), int(np.floor(y1)), int(np.ceil(x2)) - 1,
                    int(np.ceil(y2)) - 1))
    return out


def blend_reference(image: np.ndarray, full: np.ndarray, colors, alpha: float) -> np.ndarray:
    out = image.astype(np.float64).copy()
    for m, c in zip(full, colors):
        out[m] = np.floor((1 - alpha) * out[m] + alpha * np.asarray(c, np.float64) + 0.5)
    return out.astype(np.uint8)


def outside_all_boxes(d: Detections) -> np.ndarray:
    inside = np.zeros((H, W), bool)
    for x0, y0, x1, y1 in regions(d.boxes):
        inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    return ~inside


@pytest.mark.parametrize("alpha", [0.0, 0.4, 0.75, 1.0])
def test_mask_tint_is_the_exact_blend(rng: np.random.Generator, alpha: float) -> None:
    d, full = scene(rng)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    before = img.copy()
    out = d.draw(img, boxes=False, labels=False, alpha=alpha)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(img, before)  # the input is not touched
    colors = [PALETTE[c % len(PALETTE)] for c in d.class_ids.tolist()]
    np.testing.assert_array_equal(out, blend_reference(img, full, colors, alpha))


def test_boxes_have_the_class_colour_and_nothing_outside_changes(
    rng: np.random.Generator,
) -> None:
    d, _full = scene(rng)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    t = 3
    out = d.draw(img, masks=False, labels=False, thickness=t)
    outside = outside_all_boxes(d)
    np.testing.assert_array_equal(out[outside], img[outside])
    want = img.copy()
    for (x0, y0, x1, y1), c in zip(regions(d.boxes), d.class_ids.tolist()):
        ring = np.zeros((H, W), bool)
        ring[y0:y1 + 1, x0:x1 + 1] = True
        ring[y0 + t:y1 + 1 - t, x0 + t:x1 + 1 - t] = False
        want[ring] = PALETTE[c % len(PALETTE)]
    np.testing.assert_array_equal(out, want)
    # masks, boxes and no labels: still nothing outside the boxes changes
    out2 = d.draw(img, labels=False)
    np.testing.assert_array_equal(out2[outside], img[outside])
    assert (out2 != img).any()


def test_labels_are_drawn_near_their_boxes(rng: np.random.Generator) -> None:
    d, _ = scene(rng)
    img = np.full((H, W, 3), 128, np.uint8)
    plain = d.draw(img, labels=False)
    out = d.draw(img)
    changed = (out != plain).any(axis=2)
    assert changed.any()
    _ys, xs = np.nonzero(changed)
    x0s = [r[0] for r in regions(d.boxes)]
    assert xs.min() >= min(x0s)  # labels start at a box's left edge
    assert d.labels == ["crack 0.87", "pit 0.50", "21 0.25"]


def test_labels_do_not_cover_the_objects(rng: np.random.Generator) -> None:
    """A tag sits above its box, below it when there is no room above, inside only when
    neither fits, and within the image."""
    h, w = 120, 160
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cases = {  # box -> where its tag must be
        "middle": ([50, 50, 110, 90], "above"),
        "top edge": ([30, 2, 90, 60], "below"),
        "full height": ([40, 0, 100, 120], "inside"),
        "right edge": ([140, 60, 160, 100], "above"),
    }
    for name, (box, where) in cases.items():
        d = Detections([box], [0.87], [3], class_names={3: "scratch"})
        plain = d.draw(img, labels=False)
        out = d.draw(img)
        tag = (out != plain).any(axis=2)
        assert tag.any(), name
        ys, xs = np.nonzero(tag)
        (x0, y0, x1, y1), = regions(d.boxes)
        inner = np.zeros((h, w), bool)
        inner[y0 + 2:y1 - 1, x0 + 2:x1 - 1] = True  # inside, away from the outline
        if where == "above":
            assert ys.max() < y0 and not tag[inner].any(), name
        elif where == "below":
            assert ys.min() > y1 and not tag[inner].any(), name
        else:
            assert ys.min() == max(y0, 0), name
        # within the image and starting at the box's left edge unless that would cut it (the
        # tag has the outline's colour, so inside the box its first column shows no change)
        assert xs.max() < w and (abs(xs.min() - x0) <= 1 or xs.max() == w - 1), name


def test_gray_input_is_drawn_as_bgr(rng: np.random.Generator) -> None:
    d, _ = scene(rng)
    gray = rng.integers(0, 256, (H, W), dtype=np.uint8)
    want = d.draw(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    np.testing.assert_array_equal(d.draw(gray), want)
    np.testing.assert_array_equal(d.draw(gray[:, :, None]), want)


def test_draw_edge_cases_and_errors(rng: np.random.Generator) -> None:
    d, _ = scene(rng)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Detections.empty().draw(img), img)
    # a box far outside the image and a zero-size box draw without error
    far = Detections([[-1e9, -1e9, 1e9, 5], [10, 10, 10, 10]], [0.5, 0.5], [1, 2])
    out = far.draw(img, labels=False, thickness=1)
    assert (out[10, 10] == PALETTE[2]).all()
    with pytest.raises(ValueError, match="does not match image_shape"):
        d.draw(img[:-1])
    with pytest.raises(TypeError, match="uint8"):
        d.draw(img.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        d.draw(np.zeros((H, W, 2), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        d.draw(img, alpha=1.5)
    with pytest.raises(ValueError, match="thickness"):
        d.draw(img, thickness=0)
    with pytest.raises(TypeError, match="boxes"):
        d.draw(img, boxes="yes")


# -- glare ------------------------------------------------------------------------------------


def glare_reference_boxes(glare: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = np.zeros(len(boxes), np.float64)
    for i, (x0, y0, x1, y1) in enumerate(regions(boxes)):
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x1 + 1, glare.shape[1]), min(y1 + 1, glare.shape[0])
        if xa < xb and ya < yb:
            out[i] = glare[ya:yb, xa:xb].mean()
    return out


def glare_reference_masks(glare: np.ndarray, full: np.ndarray) -> np.ndarray:
    return np.array([(glare & m).sum() / m.sum() if m.any() else 0.0 for m in full])


@pytest.mark.parametrize("with_masks", [False, True])
def test_filter_specular(rng: np.random.Generator, with_masks: bool) -> None:
    d, full = scene(rng)
    if not with_masks:
        d = d._replace(masks=None)
    glare = np.zeros((H, W), bool)
    glare[5:35, 0:28] = True  # covers most of box 0
    glare[20:30, 40:61] = True  # half of box 1
    glare[rng.random((H, W)) < 0.05] = True
    want = (glare_reference_masks(glare, full) if with_masks
            else glare_reference_boxes(glare, d.boxes))
    flagged = d.filter_specular(glare, specular="flag", specular_threshold=0.5)
    assert len(flagged) == len(d)
    frac = flagged.data["glare_fraction"]
    assert frac.dtype == np.float32
    np.testing.assert_allclose(frac, want, rtol=1e-6)
    np.testing.assert_array_equal(flagged.data["specular"], want >= 0.5)
    assert "glare_fraction" not in d.data  # the original is unchanged
    for t in (0.0, 0.3, 0.5, 0.9, 1.0, float(frac[1]), float(frac[0])):  # ties are dropped
        kept = d.filter_specular(glare.view(np.uint8), specular_threshold=t)
        np.testing.assert_array_equal(kept.boxes, d.boxes[frac < t])
        assert kept.class_names == d.class_names
    with pytest.raises(ValueError, match="specular"):
        d.filter_specular(glare, specular="mark")
    with pytest.raises(ValueError, match="threshold"):
        d.filter_specular(glare, specular_threshold=2)
    with pytest.raises(ValueError, match="glare_mask"):
        d._replace(image_shape=(H, W)).filter_specular(glare[:-1])
    with pytest.raises(TypeError, match="glare_mask"):
        d.filter_specular(glare.astype(np.float32))


def test_overlapping_masks_blend_in_detection_order(rng: np.random.Generator) -> None:
    full = np.zeros((3, H, W), bool)
    full[0, 10:30, 10:40] = True
    full[1, 20:40, 30:60] = True
    full[2, 5:50, 35:38] = True
    boxes = np.array([[10, 10, 40, 30], [30, 20, 60, 40], [35, 5, 38, 50]], np.float32)
    d = Detections(boxes, [0.9, 0.8, 0.7], [1, 5, 9], BoxMasks.from_full(full, boxes))
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    colors = [PALETTE[c] for c in (1, 5, 9)]
    out = d.draw(img, boxes=False, labels=False, alpha=0.6)
    np.testing.assert_array_equal(out, blend_reference(img, full, colors, 0.6))
    # the order matters where masks overlap, so this is not a vacuous check
    rev = blend_reference(img, full[::-1], colors[::-1], 0.6)
    assert (rev != out).any()
