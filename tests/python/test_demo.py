"""``fissure demo`` and the synthetic surfaces it is made of, against planted ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fissure.anomaly import PatchCore
from fissure.anomaly.synthetic import DEFECT_KINDS, brushed_metal, plant_defects
from fissure.cli import main
from fissure.demo import evaluate, run_demo
from fissure.specular import specular_mask


def test_brushed_metal_is_seeded_and_stationary() -> None:
    a = brushed_metal(256, 320, seed=1)
    assert a.shape == (256, 320, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, brushed_metal(256, 320, seed=1))
    assert not np.array_equal(a, brushed_metal(256, 320, seed=2))
    # brushed: far more variation across rows than along them
    g = a[..., 1].astype(np.float64)
    assert np.abs(np.diff(g, axis=0)).mean() > 3 * np.abs(np.diff(g, axis=1)).mean()
    with pytest.raises(ValueError, match="height"):
        brushed_metal(8, 100)


def test_plant_defects_ground_truth_is_exact() -> None:
    base = brushed_metal(600, 800, seed=3)
    s = plant_defects(base, 8, n_glints=3, seed=4)
    assert [d.kind for d in s.defects] == [DEFECT_KINDS[i % 4] for i in range(8)]
    changed = np.any(s.image != base, axis=2)
    for i, d in enumerate(s.defects):
        on = s.labels == i + 1
        ys, xs = np.nonzero(on)
        # the box is the tight box of the label's pixels, the area its count
        assert d.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert d.area == on.sum()
        # a defect changes most of the pixels it is labelled on
        assert changed[on].mean() > 0.8
    # outside the defects' and glints' windows the image is untouched
    touched = s.labels > 0
    for x0, y0, x1, y1 in s.glint_boxes:
        touched[y0:y1, x0:x1] = True
    k = np.ones((101, 101), np.uint8)
    import cv2

    near = cv2.dilate(touched.astype(np.uint8), k) > 0
    assert not changed[~near].any()
    # glints are specular highlights by fissure's HSV rule, defects are not
    glare = specular_mask(s.image)
    for x0, y0, x1, y1 in s.glint_boxes:
        assert glare[y0:y1, x0:x1].any()
    assert not (glare & (s.labels > 0)).any()


def test_evaluate_counts_against_a_naive_reference() -> None:
    labels = np.zeros((40, 60), np.int32)
    labels[5:8, 5:8] = 1          # found by region A
    labels[20:22, 40:44] = 2      # missed
    glints = np.zeros((40, 60), bool)
    glints[30:33, 10:13] = True
    mask = np.zeros((40, 60), bool)
    mask[6:12, 6:12] = True       # region A, touches defect 1
    mask[30:35, 5:12] = True      # false alarm on a glint
    mask[2:4, 50:55] = True       # false alarm elsewhere
    mask[14, 14] = True           # diagonal neighbour of nothing: its own false region
    ev = evaluate(mask, labels, glints)
    assert ev == {"found": [0], "regions": 4, "false_alarms": 3, "false_on_glints": 1}


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rep = run_demo(out, width=1600, height=1200, n_defects=8, n_glints=3, train_size=768,
                   seed=5, progress=False)
    return out, rep


def test_demo_finds_planted_defects_without_false_alarms(small_demo) -> None:
    out, rep = small_demo
    assert rep["planted_count"] == 8
    assert rep["found"] >= 7
    assert rep["false_alarms"] <= 1
    assert rep["result"]["is_anomalous"]
    assert not rep["defect_free_sample"]["is_anomalous"]
    assert rep["defect_free_sample"]["regions"] == 0
    assert rep["peak_rss_bytes"] is None or rep["peak_rss_bytes"] > 0
    assert json.loads((out / "report.json").read_text())["found"] == rep["found"]


def test_demo_outputs_reload(small_demo) -> None:
    from fissure.io import read_image

    out, rep = small_demo
    overlay = read_image(out / "heatmap.jpg")
    surface = read_image(out / "surface.png")
    assert overlay.shape == surface.shape == (1200, 1600, 3)
    # the saved bank predicts the saved surface exactly as the demo did
    r = PatchCore.load(out / "bank.safetensors").predict(surface)
    assert r.score == pytest.approx(rep["result"]["score"], rel=1e-5)
    assert len(r.boxes) == len(rep["result"]["regions"])


def test_demo_cli_json_and_errors(tmp_path, capsys) -> None:
    assert main(["demo", "--json", "--width", "640", "--height", "480", "--defects", "3",
                 "--glints", "1", "--train-size", "512", "--out", str(tmp_path / "d")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["image"] == {"width": 640, "height": 480, "megapixels": 640 * 480 / 1e6}
    assert (tmp_path / "d" / "heatmap.jpg").is_file()
    assert main(["demo", "--width", "8", "--out", str(tmp_path / "e")]) == 2
    assert "width" in capsys.readouterr().err
