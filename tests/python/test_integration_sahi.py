"""fissure.integrations.sahi against the installed SAHI, prediction for prediction."""

from __future__ import annotations

import copy

import numpy as np
import pytest

sahi = pytest.importorskip("sahi")
pytest.importorskip("shapely")
cv2 = pytest.importorskip("cv2")

from sahi.postprocess import combine as sahi_combine  # noqa: E402
from sahi.postprocess.backends import (  # noqa: E402
    get_postprocess_backend,
    set_postprocess_backend,
)
from sahi.models.base import DetectionModel  # noqa: E402
from sahi.prediction import ObjectPrediction  # noqa: E402

from fissure.integrations import sahi as fsahi  # noqa: E402

SAHI_CLASSES = {
    "NMS": sahi_combine.NMSPostprocess,
    "GREEDYNMM": sahi_combine.GreedyNMMPostprocess,
    "NMM": sahi_combine.NMMPostprocess,
}
OUR_CLASSES = {
    "NMS": fsahi.NMSPostprocess,
    "GREEDYNMM": fsahi.GreedyNMMPostprocess,
    "NMM": fsahi.NMMPostprocess,
}


@pytest.fixture(autouse=True)
def _restore_backend():
    before = get_postprocess_backend()
    yield
    set_postprocess_backend(before)


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------


def _preds(boxes, scores, cats, masks=None, full_shape=None) -> list[ObjectPrediction]:
    out = []
    for i, (b, s, c) in enumerate(zip(boxes, scores, cats)):
        out.append(
            ObjectPrediction(
                bbox=list(b),
                category_id=int(c),
                category_name=f"cat{int(c)}",
                score=s,
                segmentation=None if masks is None else masks[i],
                full_shape=full_shape,
            )
        )
    return out


def integer_case(rng: np.random.Generator, n: int, classes: int = 3):
    """Small integer boxes on a coarse grid: exact threshold hits, duplicates, score ties."""
    x1 = rng.integers(0, 40, n)
    y1 = rng.integers(0, 40, n)
    w = rng.integers(1, 12, n)
    h = rng.integers(1, 12, n)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], 1).tolist()
    dup = rng.random(n) < 0.1
    for i in np.flatnonzero(dup)[1:]:
        boxes[i] = list(boxes[i - 1])
    scores = rng.choice([0.3, 0.5, 0.5, 0.7, 0.9, 0.9], n).tolist()
    cats = rng.integers(0, classes, n).tolist()
    return boxes, scores, cats


def float_case(rng: np.random.Generator, n: int, classes: int = 3, extent: float = 300.0):
    """Float boxes with clusters of jittered duplicates, like overlapping tiles produce."""
    m = max(1, n // 3)
    cx = rng.uniform(0, extent, m)
    cy = rng.uniform(0, extent, m)
    size = rng.uniform(5, 60, m)
    pick = rng.integers(0, m, n)
    jit = rng.normal(0, 3, (n, 4))
    x1 = np.clip(cx[pick] - size[pick] / 2 + jit[:, 0], 0, None)
    y1 = np.clip(cy[pick] - size[pick] / 2 + jit[:, 1], 0, None)
    x2 = x1 + np.maximum(1.0, size[pick] + jit[:, 2])
    y2 = y1 + np.maximum(1.0, size[pick] + jit[:, 3])
    boxes = np.stack([x1, y1, x2, y2], 1).tolist()
    scores = rng.uniform(0.05, 1.0, n)
    scores[rng.random(n) < 0.1] = 0.5  # some exact ties
    cats = rng.integers(0, classes, n).tolist()
    return boxes, scores.tolist(), cats


# ---------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------


def run_sahi(name, preds, thr, metric, agnostic, backend):
    set_postprocess_backend(backend)
    return SAHI_CLASSES[name](thr, metric, agnostic)(list(preds))


def run_ours(name, preds, thr, metric, agnostic):
    return OUR_CLASSES[name](thr, metric, agnostic)(list(preds))


def assert_same(ours, theirs, inputs):
    assert len(ours) == len(theirs)
    ids = {id(p) for p in inputs}
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert list(map(float, a.bbox.to_xyxy())) == list(map(float, b.bbox.to_xyxy())), k
        assert a.score.value == b.score.value, k
        assert a.category.id == b.category.id and a.category.name == b.category.name, k
        assert a.bbox.shift_amount == b.bbox.shift_amount, k
        # Unmerged predictions are handed back as the very same objects, as SAHI does.
        assert (id(a) in ids) == (id(b) in ids), k
        if id(b) in ids:
            assert a is b, k


def sahi_agree(name, preds, thr, metric, agnostic):
    """SAHI's numpy and numba backends on the same input, or None when they disagree."""
    a = run_sahi(name, preds, thr, metric, agnostic, "numpy")
    b = run_sahi(name, preds, thr, metric, agnostic, "numba")
    try:
        assert_same(a, b, preds)
    except AssertionError:
        return None
    return a


CONFIGS = [
    (name, metric, thr, agnostic)
    for name in ("NMS", "GREEDYNMM", "NMM")
    for metric in ("IOU", "IOS")
    for thr in (0.5, 0.25, 0.7)
    for agnostic in (False, True)
]


@pytest.mark.parametrize("name,metric,thr,agnostic", CONFIGS)
def test_integer_boxes_equal_sahi(rng, name, metric, thr, agnostic):
    for trial in range(4):
        preds = _preds(*integer_case(rng, int(rng.integers(1, 60))))
        expected = sahi_agree(name, preds, thr, metric, agnostic)
        assert expected is not None, "SAHI's backends disagree on integer boxes"
        assert_same(run_ours(name, preds, thr, metric, agnostic), expected, preds)


@pytest.mark.parametrize("name,metric,thr,agnostic", CONFIGS[::2])
def test_float_boxes_equal_sahi(rng, name, metric, thr, agnostic):
    skipped = 0
    for trial in range(4):
        preds = _preds(*float_case(rng, int(rng.integers(20, 120))))
        expected = sahi_agree(name, preds, thr, metric, agnostic)
        if expected is None:  # a metric within float rounding of the threshold
            skipped += 1
            continue
        assert_same(run_ours(name, preds, thr, metric, agnostic), expected, preds)
    assert skipped <= 1


@pytest.mark.parametrize("name", ["NMS", "GREEDYNMM", "NMM"])
def test_threshold_zero_matches_everything(rng, name):
    preds = _preds(*integer_case(rng, 30))
    for agnostic in (False, True):
        expected = run_sahi(name, preds, 0.0, "IOU", agnostic, "numpy")
        assert_same(run_ours(name, preds, 0.0, "IOU", agnostic), expected, preds)


@pytest.mark.parametrize("thr", [-0.5, 1.5])
def test_thresholds_outside_0_1(rng, thr):
    preds = _preds(*integer_case(rng, 40))
    for name in ("NMS", "GREEDYNMM", "NMM"):
        for agnostic in (False, True):
            expected = run_sahi(name, preds, thr, "IOU", agnostic, "numpy")
            assert_same(run_ours(name, preds, thr, "IOU", agnostic), expected, preds)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name,metric", [("NMS", "IOU"), ("GREEDYNMM", "IOS"), ("NMM", "IOS")])
def test_large_input_sparse_paths(rng, backend, name, metric):
    # >= 2000 boxes sends SAHI down its STRtree / streaming paths.
    preds = _preds(*float_case(rng, 2600, classes=5, extent=2000.0))
    expected = run_sahi(name, preds, 0.5, metric, False, backend)
    assert_same(run_ours(name, preds, 0.5, metric, False), expected, preds)


def zero_area_case(rng, n):
    """Integer boxes of which a third have no width or no height (points and lines)."""
    boxes, scores, cats = integer_case(rng, n)
    for i in range(0, n, 3):
        x1, y1, x2, y2 = boxes[i]
        boxes[i] = [x1, y1, x1, y1] if i % 2 else ([x1, y1, x1, y2] if i % 4 else [x1, y1, x2, y1])
    return boxes, scores, cats


@pytest.mark.parametrize("name", ["NMS", "GREEDYNMM", "NMM"])
@pytest.mark.parametrize("metric", ["IOU", "IOS"])
def test_zero_area_boxes(rng, name, metric):
    # Two point-sized boxes at different places: the engine's index once looped on these.
    points = _preds([[10, 10, 10, 10], [10, 12, 10, 12], [0, 0, 4, 4]], [0.9, 0.8, 0.7], [0, 0, 0])
    for preds in [points] + [_preds(*zero_area_case(rng, 40)) for _ in range(3)]:
        for thr in (0.5, 0.25):
            for agnostic in (False, True):
                expected = run_sahi(name, preds, thr, metric, agnostic, "numpy")
                assert_same(run_ours(name, preds, thr, metric, agnostic), expected, preds)


def test_recheck_drops_like_sahi():
    # SAHI's _apply_merge re-checks against the growing box: C no longer matches it.
    preds = _preds(
        [[100, 0, 200, 100], [140, 0, 240, 100], [60, 0, 160, 100]], [0.9, 0.8, 0.7], [0, 0, 0]
    )
    expected = run_sahi("GREEDYNMM", preds, 0.4, "IOU", True, "numpy")
    ours = run_ours("GREEDYNMM", preds, 0.4, "IOU", True)
    assert len(ours) == 1 and ours[0].bbox.to_xyxy() == [100.0, 0.0, 240.0, 100.0]
    assert_same(ours, expected, preds)


def test_exact_threshold_candidate_is_merged_in_0_12_8():
    # IOS exactly 0.5 at threshold 0.5: selected (>=) and, in 0.12.8, merged (>=).
    preds = _preds([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], [1, 2])
    expected = run_sahi("GREEDYNMM", preds, 0.5, "IOS", True, "numpy")
    ours = run_ours("GREEDYNMM", preds, 0.5, "IOS", True)
    assert_same(ours, expected, preds)
    assert len(ours) == 1 and ours[0].category.id == 1


def test_category_of_a_tie_goes_to_the_candidate():
    preds = _preds([[0, 0, 10, 10], [1, 0, 11, 10]], [0.8, 0.8], [3, 4])
    expected = run_sahi("GREEDYNMM", preds, 0.5, "IOU", True, "numpy")
    ours = run_ours("GREEDYNMM", preds, 0.5, "IOU", True)
    assert_same(ours, expected, preds)


def test_shift_amount_and_numpy_scores_survive(rng):
    boxes, scores, cats = float_case(rng, 40)
    preds = [
        ObjectPrediction(bbox=b, category_id=c, score=np.float32(s), shift_amount=[3, 7])
        for b, s, c in zip(boxes, scores, cats)
    ]
    expected = run_sahi("GREEDYNMM", preds, 0.5, "IOS", False, "numpy")
    assert_same(run_ours("GREEDYNMM", preds, 0.5, "IOS", False), expected, preds)


def test_empty_and_single():
    for name in OUR_CLASSES:
        assert run_ours(name, [], 0.5, "IOU", True) == []
        one = _preds([[1, 2, 3, 4]], [0.5], [0])
        assert run_ours(name, one, 0.5, "IOU", True)[0] is one[0]


def test_input_list_is_not_modified(rng):
    preds = _preds(*float_case(rng, 60))
    before = list(preds)
    run_ours("GREEDYNMM", preds, 0.5, "IOS", True)
    assert all(a is b for a, b in zip(preds, before))


def test_errors():
    with pytest.raises(TypeError, match="ObjectPrediction"):
        fsahi.NMSPostprocess()([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match="list"):
        fsahi.GreedyNMMPostprocess()(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="match_metric"):
        fsahi.GreedyNMMPostprocess(match_metric="iou")
    with pytest.raises(TypeError, match="match_threshold"):
        fsahi.NMSPostprocess(match_threshold="0.5")
    with pytest.raises(ValueError, match="names"):
        fsahi.use_fissure_postprocess(["SOFTNMS"])


def test_is_a_sahi_postprocess():
    p = fsahi.GreedyNMMPostprocess(0.3, "IOS", False)
    assert isinstance(p, sahi_combine.PostprocessPredictions)
    assert (p.match_threshold, p.match_metric, p.class_agnostic) == (0.3, "IOS", False)


# ---------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------

H, W = 240, 320


def ellipse_polygons(cx, cy, ax, ay, theta):
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    yy, xx = np.mgrid[0:H, 0:W]
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = np.cos(theta), np.sin(theta)
    m = ((c * dx + s * dy) / ax) ** 2 + ((-s * dx + c * dy) / ay) ** 2 <= 1
    return get_coco_segmentation_from_bool_mask(m)


def masked_case(rng, n_obj=10, copies=3):
    boxes, scores, cats, segs = [], [], [], []
    for _ in range(n_obj):
        cx, cy = rng.uniform(30, W - 30), rng.uniform(30, H - 30)
        ax, ay = rng.uniform(6, 25), rng.uniform(6, 25)
        th = rng.uniform(0, np.pi)
        cat = int(rng.integers(0, 2))
        for _ in range(copies):
            seg = ellipse_polygons(
                cx + rng.normal(0, 1.5), cy + rng.normal(0, 1.5),
                ax * (1 + rng.normal(0, 0.05)), ay * (1 + rng.normal(0, 0.05)), th,
            )
            segs.append(seg)
            boxes.append([0, 0, 1, 1])  # replaced by SAHI from the polygons
            scores.append(float(rng.uniform(0.3, 0.95)))
            cats.append(cat)
    return _preds(boxes, scores, cats, masks=segs, full_shape=[H, W])


def mask_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else inter / union


@pytest.mark.parametrize("name,metric", [("GREEDYNMM", "IOS"), ("GREEDYNMM", "IOU"), ("NMM", "IOS")])
@pytest.mark.parametrize("agnostic", [False, True])
def test_masks_close_to_sahi(rng, name, metric, agnostic):
    preds = masked_case(rng)
    expected = run_sahi(name, copy.deepcopy(preds), 0.5, metric, agnostic, "numpy")
    ours = run_ours(name, preds, 0.5, metric, agnostic)
    assert len(ours) == len(expected)
    merged = 0
    for a, b in zip(ours, expected):
        assert a.category.id == b.category.id
        assert a.score.value == b.score.value
        assert np.max(np.abs(np.subtract(a.bbox.to_xyxy(), b.bbox.to_xyxy()))) <= 1.0
        assert (a.mask is None) == (b.mask is None)
        if a.mask is not None:
            assert a.mask.full_shape == b.mask.full_shape
            assert mask_iou(a.mask.bool_mask, b.mask.bool_mask) >= 0.98
            merged += len(b.mask.segmentation) > 0
    assert merged > 0


def test_mask_raster_matches_sahi_bool_mask(rng):
    # Box-local rasterisation of a prediction equals SAHI's full-image bool_mask there.
    preds = masked_case(rng, n_obj=4, copies=1)
    for p in preds:
        polys = fsahi._polygons_of(p)
        pts = np.concatenate(polys)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        local = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        cv2.fillPoly(local, [q - [x0, y0] for q in polys], (1,))
        full = p.mask.bool_mask
        assert full.sum() == local.sum()
        assert np.array_equal(full[y0 : y1 + 1, x0 : x1 + 1], local.astype(bool))


def test_mixed_masks_drop_the_mask_like_sahi(rng):
    preds = masked_case(rng, n_obj=1, copies=2)
    b = preds[1].bbox.to_xyxy()
    preds[1] = ObjectPrediction(bbox=b, category_id=preds[1].category.id, score=0.1)
    expected = run_sahi("GREEDYNMM", copy.deepcopy(preds), 0.5, "IOS", True, "numpy")
    ours = run_ours("GREEDYNMM", preds, 0.5, "IOS", True)
    assert len(ours) == len(expected) == 1
    assert ours[0].mask is None and expected[0].mask is None
    assert ours[0].bbox.to_xyxy() == [float(v) for v in expected[0].bbox.to_xyxy()]


# ---------------------------------------------------------------------------------------
# get_sliced_prediction
# ---------------------------------------------------------------------------------------


class _BlobModel(DetectionModel):
    """A stand-in detector: bright rectangles in the tile become detections."""

    def load_model(self):
        self.model = "blobs"

    def set_model(self, model, **kwargs):
        self.model = model

    def perform_inference(self, image):
        gray = image[..., 0]
        n, _, stats, _ = cv2.connectedComponentsWithStats((gray > 0).astype(np.uint8))
        self._original_predictions = [
            (x, y, x + w, y + h, float(gray[y:y + h, x:x + w].max()) / 255.0)
            for x, y, w, h, _ in stats[1:n]
        ]

    def _create_object_prediction_list_from_original_predictions(
        self, shift_amount_list=[[0, 0]], full_shape_list=None
    ):
        shift = shift_amount_list[0] if shift_amount_list else [0, 0]
        full = full_shape_list[0] if full_shape_list else None
        self._object_prediction_list_per_image = [[
            ObjectPrediction(
                bbox=[x1, y1, x2, y2], category_id=int(s * 10) % 2, score=s,
                shift_amount=list(shift), full_shape=full,
            )
            for x1, y1, x2, y2, s in self._original_predictions
            if s >= self.confidence_threshold
        ]]


def test_use_fissure_postprocess_in_get_sliced_prediction(rng):
    from sahi.predict import POSTPROCESS_NAME_TO_CLASS, get_sliced_prediction

    image = np.zeros((700, 900, 3), np.uint8)
    for _ in range(60):
        x, y = rng.integers(0, 860), rng.integers(0, 660)
        w, h = rng.integers(5, 40, 2)
        image[y:y + h, x:x + w] = rng.integers(80, 255)
    model = _BlobModel(model="blobs", confidence_threshold=0.3)
    kwargs = dict(slice_height=256, slice_width=256, verbose=0, perform_standard_pred=False)
    for ptype, metric in [("GREEDYNMM", "IOS"), ("NMS", "IOU"), ("NMM", "IOS")]:
        set_postprocess_backend("numpy")
        theirs = get_sliced_prediction(
            image, model, postprocess_type=ptype, postprocess_match_metric=metric, **kwargs
        ).object_prediction_list
        with fsahi.use_fissure_postprocess():
            assert POSTPROCESS_NAME_TO_CLASS[ptype] is fsahi.POSTPROCESS_NAME_TO_CLASS[ptype]
            ours = get_sliced_prediction(
                image, model, postprocess_type=ptype, postprocess_match_metric=metric, **kwargs
            ).object_prediction_list
        assert POSTPROCESS_NAME_TO_CLASS[ptype] is SAHI_CLASSES[ptype]
        assert len(ours) == len(theirs) > 10
        for a, b in zip(ours, theirs):
            assert [float(v) for v in a.bbox.to_xyxy()] == [float(v) for v in b.bbox.to_xyxy()]
            assert a.score.value == b.score.value and a.category.id == b.category.id
    handle = fsahi.use_fissure_postprocess("NMS")
    assert POSTPROCESS_NAME_TO_CLASS["NMS"] is fsahi.NMSPostprocess
    handle.restore()
    handle.restore()
    assert POSTPROCESS_NAME_TO_CLASS["NMS"] is SAHI_CLASSES["NMS"]
