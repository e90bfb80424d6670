"""fissure.nms / greedy_nmm / nmm against SAHI itself (the installed sahi.postprocess).

Two oracles from SAHI: the backend functions (``nms``, ``greedy_nmm``, ``nmm`` and their
``batched_*`` forms, numpy and numba backends), which give the selection before the
re-check; and the object-level postprocess classes, which give the final detections box for
box. Inputs sit on a small integer grid so that exact ties, duplicates, zero-area boxes and
metrics exactly at the threshold are common.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import fissure
import numpy as np
import pytest

combine = pytest.importorskip("sahi.postprocess.combine")
backends = pytest.importorskip("sahi.postprocess.backends")
sahi_utils = pytest.importorskip("sahi.postprocess.utils")
ObjectPrediction = pytest.importorskip("sahi.prediction").ObjectPrediction

THRESHOLDS = [0.0, 0.1, 0.25, 1 / 3, 0.4, 0.5, 0.6, 0.7, 0.9, 1.0]


@pytest.fixture(params=["numpy", "numba"])
def sahi_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "numba":
        pytest.importorskip("numba")
    backends.set_postprocess_backend(request.param)
    yield request.param
    backends.set_postprocess_backend("auto")


@pytest.fixture
def numpy_backend() -> Iterator[None]:
    backends.set_postprocess_backend("numpy")
    yield
    backends.set_postprocess_backend("auto")


def grid_inputs(
    rng: np.random.Generator,
    n: int,
    span: int = 40,
    max_wh: int = 20,
    n_cls: int = 3,
    n_scores: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x1 = rng.integers(0, span, n)
    y1 = rng.integers(0, span, n)
    w = rng.integers(0, max_wh, n)
    h = rng.integers(0, max_wh, n)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
    if n > 1:  # exact duplicates of earlier rows
        dup = np.flatnonzero(rng.random(n) < 0.12)
        dup = dup[dup > 0]
        boxes[dup] = boxes[rng.integers(0, dup)]
    scores = (rng.integers(1, n_scores + 1, n) / n_scores).astype(np.float32)
    classes = rng.integers(0, n_cls, n).astype(np.int64)
    return boxes, scores, classes


def as_sahi_array(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes, scores[:, None], classes[:, None].astype(np.float32)], axis=1)


def sahi_select(name: str, preds: np.ndarray, metric: str, thr: float, agnostic: bool) -> object:
    fn = getattr(combine, name if agnostic else f"batched_{name}")
    if len(preds) == 0:
        return [] if name == "nms" else {}
    return fn(preds, match_metric=metric.upper(), match_threshold=thr)


def groups_of(result: fissure.MergeResult) -> list[list[int]]:
    return [g.tolist() for g in result.groups()]


def to_objects(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list:
    return [
        ObjectPrediction(
            bbox=[float(v) for v in boxes[i]],
            score=float(scores[i]),
            category_id=int(classes[i]),
            category_name=str(int(classes[i])),
        )
        for i in range(len(boxes))
    ]


def sahi_recheck_dropped(objects: list, keep_to_merge: dict, metric: str, thr: float) -> list[int]:
    """SAHI's _apply_merge loop, recording the candidates its has_match rejects."""
    dropped = []
    for keep, cands in keep_to_merge.items():
        merged = objects[keep]
        for c in cands:
            if sahi_utils.has_match(merged, objects[c], metric.upper(), thr):
                merged = sahi_utils.merge_object_prediction_pair(merged, objects[c])
            else:
                dropped.append(c)
    return dropped


# ---------------------------------------------------------------------------------------
# Selection: equal to the backend functions, numpy and numba
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
def test_selection_equals_sahi_backends(
    sahi_backend: str, name: str, rng: np.random.Generator
) -> None:
    checked = 0
    for _ in range(150):
        n = int(rng.integers(0, 70))
        boxes, scores, classes = grid_inputs(rng, n, max_wh=int(rng.integers(1, 25)))
        thr = float(rng.choice(THRESHOLDS))
        metric = str(rng.choice(["iou", "ios"]))
        agnostic = bool(rng.integers(0, 2))
        ref = sahi_select(name, as_sahi_array(boxes, scores, classes), metric, thr, agnostic)
        kw = {"match_threshold": thr, "match_metric": metric, "class_agnostic": agnostic}
        if name == "nms":
            ours = fissure.nms(boxes, scores, classes, **kw)
            assert ours.dtype == np.int64
            assert ours.tolist() == list(ref), (n, thr, metric, agnostic)
        else:
            res = getattr(fissure, name)(boxes, scores, classes, recheck="off", **kw)
            assert groups_of(res) == [[k, *v] for k, v in ref.items()], (n, thr, metric, agnostic)
        checked += 1
    assert checked == 150


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
def test_float_coordinates_equal_sahi_numpy(
    numpy_backend: None, name: str, rng: np.random.Generator
) -> None:
    """Non-integer float32 coordinates: parity needs the same float32 operation order."""
    for _ in range(60):
        n = int(rng.integers(1, 80))
        xy = rng.uniform(0, 50, (n, 2))
        wh = rng.uniform(0, 20, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = rng.random(n).astype(np.float32)
        classes = rng.integers(0, 2, n)
        thr = float(rng.uniform(0.05, 0.95))
        metric = str(rng.choice(["iou", "ios"]))
        ref = sahi_select(name, as_sahi_array(boxes, scores, classes), metric, thr, False)
        if name == "nms":
            assert fissure.nms(boxes, scores, classes, match_threshold=thr, match_metric=metric).tolist() == ref
        else:
            res = getattr(fissure, name)(
                boxes, scores, classes, match_threshold=thr, match_metric=metric, recheck="off"
            )
            assert groups_of(res) == [[k, *v] for k, v in ref.items()]


@pytest.mark.parametrize("crowded", [False, True], ids=["sparse-csr", "streaming"])
@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
def test_large_inputs_equal_sahi_sparse_paths(
    numpy_backend: None, name: str, crowded: bool, rng: np.random.Generator
) -> None:
    """N >= 2000 takes SAHI's STRtree paths (CSR, or streaming rows when crowded)."""
    n = 2600
    span = 300 if crowded else 3000
    boxes, scores, classes = grid_inputs(rng, n, span=span, max_wh=60, n_cls=2, n_scores=40)
    for metric, thr in [("iou", 0.5), ("ios", 0.5), ("iou", 0.25)]:
        ref = sahi_select(name, as_sahi_array(boxes, scores, classes), metric, thr, False)
        if name == "nms":
            assert fissure.nms(boxes, scores, classes, match_threshold=thr, match_metric=metric).tolist() == ref
        else:
            res = getattr(fissure, name)(
                boxes, scores, classes, match_threshold=thr, match_metric=metric, recheck="off"
            )
            assert groups_of(res) == [[k, *v] for k, v in ref.items()]


# ---------------------------------------------------------------------------------------
# Final detections: equal to the object-level postprocess classes, box for box
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "cls"),
    [("greedy_nmm", "GreedyNMMPostprocess"), ("nmm", "NMMPostprocess"), ("nms", "NMSPostprocess")],
)
def test_postprocess_equals_sahi_box_for_box(
    numpy_backend: None, name: str, cls: str, rng: np.random.Generator
) -> None:
    post_cls = getattr(combine, cls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SAHI's 0/0 in has_match
        for _ in range(90):
            n = int(rng.integers(0, 60))
            boxes, scores, classes = grid_inputs(rng, n, max_wh=int(rng.integers(1, 25)))
            thr = float(rng.choice(THRESHOLDS))
            metric = str(rng.choice(["iou", "ios"]))
            agnostic = bool(rng.integers(0, 2))
            objects = to_objects(boxes, scores, classes)
            out = (
                post_cls(match_threshold=thr, match_metric=metric.upper(), class_agnostic=agnostic)(
                    list(objects)
                )
                if n
                else []
            )
            kw = {"match_threshold": thr, "match_metric": metric, "class_agnostic": agnostic}
            if name == "nms":
                keep = fissure.nms(boxes, scores, classes, **kw)
                assert [objects[i] for i in keep] == list(out)
                continue
            res = getattr(fissure, name)(boxes, scores, classes, **kw)
            assert len(res) == len(out)
            want_boxes = np.array([p.bbox.to_xyxy() for p in out], dtype=np.float64).reshape(-1, 4)
            np.testing.assert_array_equal(res.boxes.astype(np.float64), want_boxes)
            assert res.scores.tolist() == [p.score.value for p in out]
            assert res.class_ids.tolist() == [p.category.id for p in out]
            # The dropped candidates are the ones SAHI's own has_match rejects.
            sel = sahi_select(name, as_sahi_array(boxes, scores, classes), metric, thr, agnostic)
            assert res.dropped.tolist() == sahi_recheck_dropped(objects, sel, metric, thr)
            merged = set(res.members.tolist())
            assert merged.isdisjoint(res.dropped.tolist())
            assert len(merged) + len(res.dropped) == n


def test_peers_example_a_ios_at_threshold(numpy_backend: None) -> None:
    """IOS exactly 0.5 at threshold 0.5. SAHI 0.12.8's has_match uses >=, so the candidate is
    merged (older releases used >, dropping it: recheck="strict" reproduces that)."""
    boxes = np.array([[0, 0, 100, 100], [50, 0, 150, 100]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    out = combine.GreedyNMMPostprocess(0.5, "IOS", True)(
        to_objects(boxes, scores, np.zeros(2, int))
    )
    res = fissure.greedy_nmm(boxes, scores, match_threshold=0.5, match_metric="ios")
    assert [p.bbox.to_xyxy() for p in out] == res.boxes.tolist()
    assert res.boxes.tolist() == [[0, 0, 150, 100]] and res.dropped.size == 0
    strict = fissure.greedy_nmm(boxes, scores, match_threshold=0.5, match_metric="ios", recheck="strict")
    assert strict.boxes.tolist() == [[0, 0, 100, 100]] and strict.dropped.tolist() == [1]


def test_peers_example_b_iou_recheck_loses_c(numpy_backend: None) -> None:
    boxes = np.array([[100, 0, 200, 100], [140, 0, 240, 100], [60, 0, 160, 100]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    out = combine.GreedyNMMPostprocess(0.4, "IOU", True)(
        to_objects(boxes, scores, np.zeros(3, int))
    )
    res = fissure.greedy_nmm(boxes, scores, match_threshold=0.4, match_metric="iou")
    assert [p.bbox.to_xyxy() for p in out] == res.boxes.tolist() == [[100, 0, 240, 100]]
    assert res.dropped.tolist() == [2]
    assert res.groups()[0].tolist() == [0, 1]
    kept = fissure.greedy_nmm(boxes, scores, match_threshold=0.4, match_metric="iou", recheck="keep")
    assert kept.boxes.tolist() == [[100, 0, 240, 100], [60, 0, 160, 100]]
    assert kept.dropped.size == 0
    off = fissure.greedy_nmm(boxes, scores, match_threshold=0.4, match_metric="iou", recheck="off")
    assert off.boxes.tolist() == [[60, 0, 240, 100]]


def test_nmm_match_all_tied_top_scores(sahi_backend: str) -> None:
    """threshold 0: SAHI's nmm_match_all leaves every box tied with the top score (and not a
    duplicate of it) as a keeper of nothing, even identical pairs among them."""
    boxes = np.array(
        [[5, 5, 9, 9], [0, 0, 4, 4], [5, 5, 9, 9], [0, 0, 4, 4], [1, 1, 3, 3], [7, 0, 9, 2]],
        np.float32,
    )
    scores = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.9], np.float32)
    classes = np.zeros(6, np.int64)
    ref = sahi_select("nmm", as_sahi_array(boxes, scores, classes), "iou", 0.0, True)
    res = fissure.nmm(
        boxes, scores, classes, match_threshold=0.0, match_metric="iou", class_agnostic=True, recheck="off"
    )
    assert groups_of(res) == [[k, *v] for k, v in ref.items()]


def test_category_tie_goes_to_the_later_merged(numpy_backend: None) -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 9, 10]], np.float32)
    scores = np.array([0.5, 0.5, 0.5], np.float32)
    classes = np.array([3, 1, 2])
    out = combine.GreedyNMMPostprocess(0.5, "IOS", True)(to_objects(boxes, scores, classes))
    res = fissure.greedy_nmm(boxes, scores, classes, match_threshold=0.5, class_agnostic=True)
    # Order by coordinates: 2 (x2 = 9), then 1, then 0; every tie hands the class on.
    assert res.groups()[0].tolist() == [2, 1, 0]
    assert res.class_ids.tolist() == [p.category.id for p in out] == [3]


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@st.composite
def _box_sets(draw: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 25))
    coords = st.integers(0, 12)
    rows = [draw(st.tuples(coords, coords, st.integers(0, 8), st.integers(0, 8))) for _ in range(n)]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rows], np.float32).reshape(-1, 4)
    scores = np.array([draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])) for _ in range(n)], np.float32)
    classes = np.array([draw(st.integers(0, 1)) for _ in range(n)], np.int64)
    return boxes, scores, classes


@hypothesis.settings(
    max_examples=150, deadline=None, suppress_health_check=list(hypothesis.HealthCheck)
)
@hypothesis.given(
    data=_box_sets(),
    thr=st.sampled_from([0.0, 0.2, 0.25, 0.5, 0.75, 1.0]),
    metric=st.sampled_from(["iou", "ios"]),
    agnostic=st.booleans(),
)
def test_hypothesis_greedy_and_nmm_equal_sahi(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], thr: float, metric: str, agnostic: bool
) -> None:
    boxes, scores, classes = data
    backends.set_postprocess_backend("numpy")
    try:
        preds = as_sahi_array(boxes, scores, classes)
        for name in ("greedy_nmm", "nmm"):
            ref = sahi_select(name, preds, metric, thr, agnostic)
            res = getattr(fissure, name)(
                boxes,
                scores,
                classes,
                match_threshold=thr,
                match_metric=metric,
                class_agnostic=agnostic,
                recheck="off",
            )
            assert groups_of(res) == [[k, *v] for k, v in ref.items()]
        assert fissure.nms(
            boxes, scores, classes, match_threshold=thr, match_metric=metric, class_agnostic=agnostic
        ).tolist() == list(sahi_select("nms", preds, metric, thr, agnostic))
    finally:
        backends.set_postprocess_backend("auto")
