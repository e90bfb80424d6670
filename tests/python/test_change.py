"""Before/after change maps (fissure.change): recall of planted changes on a shifted, rotated,
rescaled and relit pair, no false regions, against the align + absdiff baseline; golden mode;
the neighbourhood kNN against knn_search; alignment, refusal and bad input; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")

import fissure  # noqa: E402
from fissure.anomaly.metrics import pixel_auroc  # noqa: E402
from fissure.change import (ChangeDetector, align_images, match_histograms,  # noqa: E402
                            neighbourhood_distance, synthetic_pair)


def evaluate(mask: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(changes found, changes planted, false regions): a change is found when a region of the
    mask touches its pixels; a region touching no planted change is a false region."""
    n, lab = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    found = sum(bool(mask[truth == i].any()) for i in range(1, int(truth.max()) + 1))
    false = sum(not (truth[lab == k] > 0).any() for k in range(1, n))
    return found, int(truth.max()), false


def absdiff_map(before: np.ndarray, after: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """The obvious baseline: warp with the same homography, cv2.absdiff, max over channels."""
    warped = cv2.warpPerspective(before, homography, after.shape[1::-1])
    return cv2.absdiff(after, warped).max(2).astype(np.float32)


@pytest.fixture(scope="module")
def detector() -> ChangeDetector:
    return ChangeDetector(num_threads=2)


@pytest.fixture(scope="module")
def pair():
    # shifted (23, -17) px, rotated 3 degrees, scaled 1.03, relit (gain 1.15, gamma 0.85),
    # 3 scratches, 3 pits and one missing feature planted
    return synthetic_pair(seed=0)


@pytest.fixture(scope="module")
def result(detector, pair):
    return detector.compare(pair.before, pair.after)


def test_planted_changes_found_no_false_regions(result, pair) -> None:
    found, planted, false = evaluate(result.mask, pair.truth)
    assert planted == 7 and set(pair.kinds) == {"scratch", "pit", "missing"}
    assert found / planted >= 0.95, (found, planted)
    assert false == 0
    assert result.changed and len(result.boxes) == len(result.box_scores)
    assert np.all(result.box_scores > result.threshold)


def test_beats_absdiff_baseline(result, pair) -> None:
    v = result.valid
    ours = pixel_auroc(result.change_map[v], pair.truth[v] > 0)
    base = pixel_auroc(absdiff_map(pair.before, pair.after, result.alignment.homography)[v],
                       pair.truth[v] > 0)
    print(f"pixel AUROC: change map {ours:.4f}, align + absdiff {base:.4f}")
    assert ours >= 0.97
    assert ours > base + 0.1


def test_alignment_recovers_true_homography(result, pair) -> None:
    a = result.alignment
    assert a.method in ("orb", "sift") and a.inliers >= 30 and a.inlier_ratio > 0.5
    assert 0 < a.reprojection_error < 3.0
    h, w = pair.after.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)[None]
    est = cv2.perspectiveTransform(corners, a.homography)[0]
    true = cv2.perspectiveTransform(corners, pair.homography)[0]
    assert np.abs(est - true).max() < 1.5
    d = result.to_dict()
    assert d["alignments"][0]["inliers"] == a.inliers and len(d["regions"]) == len(result.boxes)
    json.dumps(d)


def test_ecc_alignment_small_motion() -> None:
    q = synthetic_pair(512, 640, seed=4, n_defects=0, missing=0, angle=1.0, shift=(6.0, -4.0),
                       scale=1.01)
    h, w = q.after.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)[None]
    true = cv2.perspectiveTransform(corners, q.homography)[0]
    for mode, refine in (("ecc", False), ("features", True), ("features", False)):
        a = align_images(q.before, q.after, align=mode, ecc_refine=refine)
        err = np.abs(cv2.perspectiveTransform(corners, a.homography)[0] - true).max()
        assert err < (0.25 if mode == "ecc" or refine else 1.5), (mode, refine, err)
        assert (a.ecc is not None) == (mode == "ecc" or refine)


def test_no_change_no_region(detector) -> None:
    for seed in (0, 1, 2):
        q = synthetic_pair(seed=seed, n_defects=0, missing=0)
        r = detector.compare(q.before, q.after)
        assert len(r.boxes) == 0 and not r.mask.any(), (seed, r.threshold, r.change_map.max())


def test_small_misalignment_and_relight_do_not_light_up() -> None:
    q = synthetic_pair(512, 640, seed=5, n_defects=0, missing=0, angle=0.0, scale=1.0,
                       shift=(0.0, 0.0), gain=1.0, gamma=1.0)
    det = ChangeDetector(align="none", num_threads=2)  # the 1-2 px offset is left in
    for dx, dy in ((1, 0), (2, 1), (2, 2)):
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        after = cv2.warpAffine(q.after, m, (640, 512), borderMode=cv2.BORDER_REFLECT_101)
        after = np.clip(after * 1.1 + 5, 0, 255).astype(np.uint8)
        r = det.compare(q.before, after)
        assert len(r.boxes) == 0, (dx, dy)
        base = cv2.absdiff(after, q.before).max(2)
        assert (base > 40).mean() > 0.001  # the baseline does light up here


def test_golden_mode_union_of_references(detector, pair) -> None:
    # a second good part seen from another view and light: no changes of its own
    other = synthetic_pair(seed=0, n_defects=0, missing=0, shift=(-15.0, 11.0), angle=-2.0,
                           scale=0.98, gain=0.9, gamma=1.1).after
    r = detector.compare([pair.before, other], pair.after)
    found, planted, false = evaluate(r.mask, pair.truth)
    assert found / planted >= 0.95 and false == 0
    assert len(r.alignments) == 2


def test_neighbourhood_distance_equals_knn_search() -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((6, 7, 5)).astype(np.float32)
    b = rng.standard_normal((6, 7, 5)).astype(np.float32)
    for radius in (0, 1, 2):
        got = neighbourhood_distance(q, b, radius)
        for i in range(6):
            for j in range(7):
                ys = slice(max(0, i - radius), i + radius + 1)
                xs = slice(max(0, j - radius), j + radius + 1)
                bank = b[ys, xs].reshape(-1, 5)
                d, _ = fissure.knn_search(bank, q[i, j][None], 1)
                assert got[i, j] == pytest.approx(float(d[0, 0]), rel=1e-4, abs=1e-4)


def test_match_histograms_undoes_gain_and_gamma(pair) -> None:
    img = pair.before
    lut = np.clip(255 * 1.2 * (np.arange(256) / 255) ** 0.8, 0, 255).round().astype(np.uint8)
    relit = lut[img]
    back = match_histograms(relit, img)
    assert np.abs(back.astype(int) - img).mean() < 1.0
    assert np.abs(relit.astype(int) - img).mean() > 15


def test_alignment_refused_with_numbers() -> None:
    rng = np.random.default_rng(0)
    a = synthetic_pair(384, 512, seed=1, n_defects=0, missing=0).before
    noise = rng.integers(0, 256, a.shape, dtype=np.uint8)
    with pytest.raises(ValueError, match="cannot align.*inliers"):
        align_images(a, noise, align="features")
    with pytest.raises(ValueError, match="one size"):
        align_images(a, a[:300], align="none")
    with pytest.raises(ValueError, match=r"before\[1\]: cannot align"):
        ChangeDetector(align="features").compare([a, noise], a)


@pytest.mark.parametrize("kwargs", [
    {"align": "sift"}, {"radius": -1}, {"radius": 1.5}, {"threshold": float("nan")},
    {"relight": "yes"}, {"specular": "on"}, {"min_inliers": 2}, {"sigma": -1.0},
])
def test_bad_options_are_value_errors(kwargs) -> None:
    with pytest.raises(ValueError):
        ChangeDetector(**kwargs)


def test_bad_inputs(detector, pair) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        detector.compare([], pair.after)
    with pytest.raises(ValueError, match="at least 32"):
        detector.compare(pair.before, pair.after[:20, :20])
    with pytest.raises(TypeError):
        detector.compare(pair.before, pair.after.astype(np.float32))
    with pytest.raises(FileNotFoundError):
        detector.compare("/nonexistent/before.png", pair.after)


def test_glare_masked_on_request() -> None:
    q = synthetic_pair(512, 640, seed=2, n_defects=0, missing=0)
    after = q.after.copy()
    cv2.circle(after, (320, 256), 14, (255, 255, 255), -1)  # a highlight in one image only
    plain = ChangeDetector(num_threads=2).compare(q.before, after)
    masked = ChangeDetector(specular="mask", num_threads=2).compare(q.before, after)
    assert plain.mask[256, 320] and len(masked.boxes) == 0 and masked.glare[256, 320]


def test_top_level_exports(pair) -> None:
    assert fissure.ChangeDetector is ChangeDetector
    assert "change_map" in fissure.__all__ and "ChangeDetector" in fissure.__all__


def test_cli(tmp_path, pair) -> None:
    from fissure.cli import main

    cv2.imwrite(str(tmp_path / "before.png"), pair.before)
    cv2.imwrite(str(tmp_path / "after.png"), pair.after)
    out = tmp_path / "out"
    rc = main(["change", str(tmp_path / "before.png"), str(tmp_path / "after.png"), "--out",
               str(out), "--threads", "2"])
    assert rc == 0
    doc = json.loads((out / "change.json").read_text())
    assert doc["changed"] and doc["alignments"][0]["method"] in ("orb", "sift")
    mask = cv2.imread(str(out / "change_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == pair.after.shape[:2]
    found, planted, false = evaluate(mask > 0, pair.truth)
    assert found / planted >= 0.95 and false == 0
    assert (out / "change_overlay.jpg").is_file()
    # an alignment that is refused: exit 2, nothing written
    noise = np.random.default_rng(0).integers(0, 256, pair.after.shape, dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    out2 = tmp_path / "out2"
    rc = main(["change", str(tmp_path / "before.png"), str(tmp_path / "noise.png"), "--out",
               str(out2), "--align", "features"])
    assert rc == 2 and not out2.exists()


def test_cli_golden_arguments() -> None:
    from fissure.cli import build_parser

    a = build_parser().parse_args(["change", "g1.png", "g2.png", "part.png", "--out", "o"])
    assert a.before == ["g1.png", "g2.png"] and a.after == "part.png"
