"""fissure's C++ merge against independent oracles: the pure-numpy reference
(fissure._reference) at larger N and for every knob, supervision's NMS for match="gt", and a
full-image numpy oracle for the mask metric and merged masks."""

from __future__ import annotations

import fissure
import numpy as np
import pytest
from fissure._reference import merge as _reference
from fissure.masks import BoxMasks, regions_from_boxes


def cluster_inputs(
    rng: np.random.Generator, n: int, n_cls: int = 3, span: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile-like detections: clusters of near-duplicates (one object seen by several tiles)
    plus scattered boxes; integer and fractional coordinates mixed."""
    centers = rng.uniform(0, span, (max(1, n // 12), 2))
    which = rng.integers(0, len(centers), n)
    wh = rng.integers(4, 60, (len(centers), 2))[which] + rng.integers(-3, 4, (n, 2))
    xy = centers[which] + rng.integers(-6, 7, (n, 2))
    scattered = rng.random(n) < 0.2
    xy[scattered] = rng.uniform(0, span, (int(scattered.sum()), 2))
    boxes = np.concatenate([xy, xy + np.maximum(wh, 0)], axis=1)
    frac = rng.random(n) < 0.3
    boxes[~frac] = np.round(boxes[~frac])
    scores = np.round(rng.random(n), 2).astype(np.float32)
    return boxes.astype(np.float32), scores, rng.integers(0, n_cls, n)


def assert_same(a: fissure.MergeResult, b: fissure.MergeResult) -> None:
    assert len(a) == len(b)
    for name in ("boxes", "scores", "class_ids", "keep", "group_offsets", "members", "dropped"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize(
    ("metric", "thr"), [("iou", 0.5), ("ios", 0.5), ("iou", 0.3), ("ios", 0.8), ("iou", 0.0)]
)
def test_larger_inputs_equal_reference(
    name: str, metric: str, thr: float, rng: np.random.Generator
) -> None:
    boxes, scores, classes = cluster_inputs(rng, 1500)
    for agnostic in (False, True):
        kw = {"match_threshold": thr, "match_metric": metric, "class_agnostic": agnostic}
        ours = getattr(fissure, name)(boxes, scores, classes, **kw)
        ref = getattr(_reference, name)(boxes, scores, classes, **kw)
        if name == "nms":
            np.testing.assert_array_equal(ours, ref)
        else:
            assert_same(ours, ref)


@pytest.mark.parametrize("name", ["greedy_nmm", "nmm"])
@pytest.mark.parametrize("recheck", ["sahi", "strict", "keep", "off"])
def test_recheck_modes(name: str, recheck: str, rng: np.random.Generator) -> None:
    boxes, scores, classes = cluster_inputs(rng, 800, span=600)
    fn = getattr(fissure, name)
    res = fn(boxes, scores, classes, match_metric="iou", match_threshold=0.4, recheck=recheck)
    assert_same(
        res,
        getattr(_reference, name)(
            boxes, scores, classes, match_metric="iou", match_threshold=0.4, recheck=recheck
        ),
    )
    selected = fn(boxes, scores, classes, match_metric="iou", match_threshold=0.4, recheck="off")
    members = res.members.tolist()
    if recheck in ("sahi", "strict"):
        # every selected index is either merged or dropped, exactly once
        assert sorted(members + res.dropped.tolist()) == list(range(len(boxes)))
        assert res.keep.tolist() == selected.keep.tolist()
        if recheck == "sahi":
            assert res.dropped.size > 0  # IOU against a growing box does lose candidates here
    elif recheck == "keep":
        assert sorted(members) == list(range(len(boxes))) and res.dropped.size == 0
        singles = set(res.keep.tolist()) - set(selected.keep.tolist())
        assert singles and all(len(g) == 1 for g in res.groups() if int(g[0]) in singles)
    else:
        assert sorted(members) == list(range(len(boxes))) and res.dropped.size == 0
    # the union box covers every member, the score is their max
    for g, grp in enumerate(res.groups()):
        b = boxes[grp]
        np.testing.assert_array_equal(
            res.boxes[g], [b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()]
        )
        assert res.scores[g] == scores[grp].max()


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
def test_threads_do_not_change_results(name: str, rng: np.random.Generator) -> None:
    boxes, scores, classes = cluster_inputs(rng, 20000, n_cls=8, span=6000)
    one = getattr(fissure, name)(boxes, scores, classes, num_threads=1)
    every = getattr(fissure, name)(boxes, scores, classes, num_threads=-1)
    if name == "nms":
        np.testing.assert_array_equal(one, every)
    else:
        assert_same(one, every)


@pytest.mark.parametrize("name", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize("match", ["ge", "gt"])
def test_order_and_match_knobs_equal_reference(
    name: str, match: str, rng: np.random.Generator
) -> None:
    for trial in range(6):
        boxes, scores, classes = cluster_inputs(rng, 400, span=500)
        order = rng.permutation(len(boxes)) if trial % 2 == 0 else None
        thr = [0.0, 0.25, 0.5, 1 / 3, 0.75, 1.0][trial]
        kw = {
            "match_threshold": thr,
            "match_metric": ["iou", "ios"][trial % 2],
            "match": match,
            "order": order,
            "class_agnostic": trial % 3 == 0,
        }
        ours = getattr(fissure, name)(boxes, scores, classes, **kw)
        ref = getattr(_reference, name)(boxes, scores, classes, **kw)
        if name == "nms":
            np.testing.assert_array_equal(ours, ref)
        else:
            assert_same(ours, ref)


def tie_inputs(
    rng: np.random.Generator, n: int, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Few distinct scores and x1 values (with -0.0 next to 0.0, negatives and a denormal),
    so most (score, x1) sort keys repeat and y1, x2, y2 and then the index decide; some rows
    are exact duplicates."""
    score_pool = np.array([0.0, -0.0, -0.5, 1e-45, 0.25, 0.5, 0.75, 1.0], np.float32)
    x_pool = np.array([-0.0, 0.0, -3.0, 1.0, 2.5, 3.0], np.float32)
    scores = rng.choice(score_pool, n)
    x1 = rng.choice(x_pool, n)
    y1 = rng.integers(0, 4, n).astype(np.float32)
    w = rng.integers(0, 5, n).astype(np.float32)
    h = rng.integers(0, 5, n).astype(np.float32)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1)
    dup = rng.random(n) < 0.1
    src = rng.integers(0, n, int(dup.sum()))
    boxes[dup], scores[dup] = boxes[src], scores[src]
    return boxes, scores, rng.choice(classes, n)


@pytest.mark.parametrize("n", [40, 700, 3000])
@pytest.mark.parametrize(
    "classes", [np.array([3, 7]), np.array([-(2**40), 5, 2**40])], ids=["dense", "sparse"]
)
def test_sort_ties_equal_reference(n: int, classes: np.ndarray, rng: np.random.Generator) -> None:
    """The engine's sort (a radix sort of the scores, long runs of equal scores by x1, then
    a comparison sort of what is left tied; a comparison sort below 256 boxes; classes by
    counting sort, or by a stable sort when the ids are sparse) against SAHI's lexsort: with IoU 1.0 nothing but duplicates
    merges, so the greedy NMM keepers list the processing order itself. At 3000, runs of
    one score exceed 256 boxes (the x1 radix pass)."""
    for _ in range(3 if n < 1000 else 1):
        boxes, scores, cls = tie_inputs(rng, n, classes)
        sahi_order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
        for agnostic in (False, True):
            for name, metric, thr in (("greedy_nmm", "iou", 1.0), ("greedy_nmm", "ios", 0.5),
                                      ("nms", "iou", 0.5), ("nmm", "iou", 0.3)):
                kw = {"match_threshold": thr, "match_metric": metric, "class_agnostic": agnostic}
                ours = getattr(fissure, name)(boxes, scores, cls, **kw)
                ref = getattr(_reference, name)(boxes, scores, cls, **kw)
                given = getattr(fissure, name)(boxes, scores, cls, order=sahi_order, **kw)
                if name == "nms":  # with `order`, NMS lists the kept in that order
                    np.testing.assert_array_equal(ours, ref)
                    np.testing.assert_array_equal(np.sort(ours), np.sort(given))
                else:
                    assert_same(ours, ref)
                    assert_same(ours, given)
            if agnostic:  # the processing order itself
                keep = fissure.greedy_nmm(boxes, scores, cls, match_threshold=1.0,
                                          match_metric="iou", class_agnostic=True).keep
                expect = [int(i) for i in sahi_order]
                merged = set(fissure.greedy_nmm(boxes, scores, cls, match_threshold=1.0,
                                                match_metric="iou", class_agnostic=True).members.tolist())
                assert keep.tolist() == [i for i in expect if i in set(keep.tolist())]
                assert merged == set(range(n))


def test_order_equal_to_the_score_sort_changes_nothing(rng: np.random.Generator) -> None:
    boxes, scores, classes = cluster_inputs(rng, 1000)
    sahi_order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    for name in ("greedy_nmm", "nmm"):
        assert_same(
            getattr(fissure, name)(boxes, scores, classes),
            getattr(fissure, name)(boxes, scores, classes, order=sahi_order),
        )
    np.testing.assert_array_equal(
        fissure.nms(boxes, scores, class_agnostic=True),
        fissure.nms(boxes, scores, class_agnostic=True, order=sahi_order),
    )


def test_match_gt_equals_supervision_nms(rng: np.random.Generator) -> None:
    sv = pytest.importorskip("supervision")
    for trial in range(40):
        n = int(rng.integers(1, 150))
        x1, y1 = rng.integers(0, 60, n), rng.integers(0, 60, n)
        w, h = rng.integers(1, 30, n), rng.integers(1, 30, n)
        boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
        scores = (
            rng.permutation(n).astype(np.float32) / n
        )  # distinct: supervision's sort is not stable
        classes = rng.integers(0, 3, n)
        thr = float(rng.choice([0.0, 0.25, 0.5, 0.75, 1 / 3, 0.3, 0.7]))
        preds = np.concatenate([boxes, scores[:, None], classes[:, None]], axis=1)
        want = sv.box_non_max_suppression(preds, iou_threshold=thr)
        order = np.flip(scores.argsort())
        keep = fissure.nms(boxes, scores, classes, match_threshold=thr, match="gt", order=order)
        got = np.zeros(n, dtype=bool)
        got[keep] = True
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial} thr {thr}")


def test_backend_env_selects_reference(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, twin_calls
) -> None:
    boxes, scores, classes = cluster_inputs(rng, 300)
    cpp = fissure.nmm(boxes, scores, classes, match_metric="iou")
    assert not twin_calls
    monkeypatch.setenv("FISSURE_BACKEND", "python")
    py = fissure.nmm(boxes, scores, classes, match_metric="iou")
    assert twin_calls == {"nmm": 1}
    assert_same(cpp, py)
    fissure.greedy_nmm(boxes, scores, classes)
    fissure.nms(boxes, scores, classes)
    assert twin_calls == {"nmm": 1, "greedy_nmm": 1, "nms": 1}
    monkeypatch.setenv("FISSURE_BACKEND", "fortran")
    with pytest.raises(ValueError, match="FISSURE_BACKEND"):
        fissure.nms(boxes, scores)


def test_zero_threshold_is_not_quadratic() -> None:
    rng = np.random.default_rng(3)
    boxes, scores, classes = cluster_inputs(rng, 200_000, n_cls=4, span=6000)
    assert len(fissure.nms(boxes, scores, classes, match_threshold=0.0)) == 4
    res = fissure.greedy_nmm(boxes, scores, classes, match_threshold=0.0, recheck="off")
    assert len(res) == 4 and res.members.size == len(boxes)
    res = fissure.nmm(
        boxes, scores, classes, match_threshold=0.0, order=rng.permutation(len(boxes)), recheck="off"
    )
    assert res.members.size == len(boxes)


def test_empty_input() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert fissure.nms(empty, []).shape == (0,)
    res = fissure.greedy_nmm(empty, np.zeros(0), masks=BoxMasks(np.zeros(0), [0], np.zeros((0, 4))))
    assert len(res) == 0 and res.boxes.shape == (0, 4) and res.group_offsets.tolist() == [0]
    assert res.masks is not None and len(res.masks) == 0
    assert res.groups() == []


# ---------------------------------------------------------------------------------------
# Masks against a full-image numpy oracle
# ---------------------------------------------------------------------------------------
H, W = 70, 90


def full_masks_and_boxmasks(
    rng: np.random.Generator, boxes: np.ndarray
) -> tuple[np.ndarray, BoxMasks]:
    """Random blobs inside each box's region, as full (N, H, W) masks and as BoxMasks cropped
    from them by hand."""
    regions = regions_from_boxes(boxes)
    full = np.zeros((len(boxes), H, W), dtype=bool)
    chunks, offsets = [], [0]
    for i, (x0, y0, w, h) in enumerate(regions.tolist()):
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(1, max(h, w, 1))
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (rng.random((h, w)) < 0.9)
        full[i, y0 : y0 + h, x0 : x0 + w] = blob
        crop = full[i, y0 : y0 + h, x0 : x0 + w]
        chunks.append(crop.astype(np.uint8).reshape(-1))
        offsets.append(offsets[-1] + w * h)
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return full, BoxMasks(data, offsets, regions, (H, W))


def mask_inputs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xy = rng.uniform(0, 60, (n, 2))
    wh = rng.uniform(0, 25, (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [W - 1, H - 1])], axis=1).astype(np.float32)
    return boxes, np.round(rng.random(n), 1).astype(np.float32), rng.integers(0, 2, n)


def naive_mask_nms(
    full: np.ndarray, boxes: np.ndarray, scores: np.ndarray, thr: float, metric: str
) -> list[int]:
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    area = full.reshape(len(full), -1).sum(axis=1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        for j in order[pos + 1 :]:
            inter = int(np.logical_and(full[i], full[j]).sum())
            den = area[i] + area[j] - inter if metric == "iou" else min(area[i], area[j])
            if (inter / den if den > 0 else 0.0) >= thr:
                suppressed[j] = True
    return keep


@pytest.mark.parametrize("metric", ["iou", "ios"])
def test_mask_metric_nms_equals_full_image_oracle(metric: str, rng: np.random.Generator) -> None:
    for _ in range(15):
        n = int(rng.integers(1, 40))
        boxes, scores, _ = mask_inputs(rng, n)
        full, masks = full_masks_and_boxmasks(rng, boxes)
        thr = float(rng.choice([0.1, 0.3, 0.5]))
        got = fissure.nms(
            boxes, scores, match_threshold=thr, match_metric=metric, masks=masks, mask_metric=True
        )
        assert got.tolist() == naive_mask_nms(full, boxes, scores, thr, metric)


@pytest.mark.parametrize("name", ["greedy_nmm", "nmm"])
@pytest.mark.parametrize("mask_metric", [False, True])
def test_merged_masks_equal_full_image_or(
    name: str, mask_metric: bool, rng: np.random.Generator
) -> None:
    for _ in range(10):
        n = int(rng.integers(1, 40))
        boxes, scores, classes = mask_inputs(rng, n)
        full, masks = full_masks_and_boxmasks(rng, boxes)
        kw = {"match_threshold": 0.3, "match_metric": "ios", "masks": masks, "mask_metric": mask_metric}
        res = getattr(fissure, name)(boxes, scores, classes, **kw)
        assert_same(res, getattr(_reference, name)(boxes, scores, classes, **kw))
        m = res.masks
        assert isinstance(m, BoxMasks) and len(m) == len(res) and m.image_shape == (H, W)
        for g, grp in enumerate(res.groups()):
            want = np.logical_or.reduce(full[grp], axis=0)
            x0, y0, w, h = m.regions[g].tolist()
            r = masks.regions[grp].astype(np.int64)
            assert (x0, y0) == (r[:, 0].min(), r[:, 1].min())
            assert (x0 + w, y0 + h) == ((r[:, 0] + r[:, 2]).max(), (r[:, 1] + r[:, 3]).max())
            got = np.zeros((H, W), dtype=bool)
            got[y0 : y0 + h, x0 : x0 + w] = m.mask(g)
            np.testing.assert_array_equal(got, want)
