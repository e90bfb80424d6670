"""The inspection cascade (fissure.Inspector, fissure inspect) on planted ground truth: a
PatchCore fitted on defect-free synthetic brushed metal, a test surface with planted dark
defects (scratch, pit, stain, crack) and planted bright squares, and a real ONNX detector that
fires on bright pixels only (fissure.detection.toy). Oracles: the planted boxes; the detector
run on every tile of the image (restricted to the candidate regions it must equal); the
review band's rule."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from fissure import Inspector, PatchCore, TiledDetector
from fissure.anomaly.synthetic import brushed_metal, plant_defects
from fissure.detection.toy import bright_spot_model
from fissure.inspection import _overlap, plan_tiles

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

SPOTS = [(800, 150), (1350, 880), (90, 600)]  # (x, y) of 14 x 14 bright squares
SPOT = 14


@pytest.fixture(scope="module")
def bank() -> PatchCore:
    normals = [brushed_metal(512, 512, seed=s) for s in (1, 2)]
    return PatchCore(coreset_ratio=0.05, tile_size=256, backend="onnxruntime",
                     num_threads=2).fit(normals)


@pytest.fixture(scope="module")
def surface():
    surf = plant_defects(brushed_metal(1024, 1536, seed=7), 4, seed=3,
                         kinds=("scratch", "pit", "stain", "crack"))
    img = surf.image.copy()
    for x, y in SPOTS:
        img[y:y + SPOT, x:x + SPOT] = 255
    spot_boxes = np.array([[x, y, x + SPOT, y + SPOT] for x, y in SPOTS], np.float64)
    defect_boxes = np.array([d.box for d in surf.defects], np.float64)
    # the planted squares keep clear of the planted defects (each region holds one kind)
    assert _overlap(spot_boxes + [-120, -120, 120, 120], defect_boxes).max() == 0
    return img, spot_boxes, defect_boxes


def spot_detector(**kw) -> TiledDetector:
    return TiledDetector(bright_spot_model(), backend="onnxruntime", tile_size=256,
                         conf_threshold=0.9, decoder_options={"mask_threshold": 0.9},
                         class_names=["bright spot"], num_threads=2, **kw)


def _region_of(result, box):
    hits = [r for r in result.regions
            if _overlap(np.array([r.box]), np.asarray([box], np.float64))[0, 0] >= 0.5]
    assert len(hits) == 1, (box, [r.box for r in result.regions])
    return hits[0]


def test_cascade_names_what_it_can_and_keeps_the_rest(bank, surface) -> None:
    img, spots, defects = surface
    with spot_detector() as det:
        result = Inspector(bank, det)(img)
        # every planted defect and square is one region; the squares are named by the detector
        for b in spots:
            r = _region_of(result, b)
            assert (r.label, r.class_id, r.verdict) == ("bright spot", 0, "defect")
            assert r.confidence == pytest.approx(1.0)
        for b in defects:  # dark defects: no class explains them, they stay as anomalies
            r = _region_of(result, b)
            assert r.label == "anomaly" and r.class_id is None and r.verdict == "defect"
        assert len(result.regions) == len(spots) + len(defects)
        assert result.verdict == "defect"
        # the detector ran on the candidates' tiles only
        assert 0 < result.tiles_run < result.tiles_total
        assert det.stats.tiles == result.tiles_run
        # ... and found what the detector run on every tile finds inside the candidates
        every = det(img)
    grown = Inspector(bank, None)._grown(np.array([r.box for r in result.regions]), *img.shape[:2])
    inside = (_overlap(grown, every.boxes.astype(np.float64)) >= 0.5).any(0)
    np.testing.assert_array_equal(np.sort(every.boxes[inside], 0), np.sort(result.detections.boxes, 0))
    assert len(every) == len(spots)


def test_review_band_sets_the_verdicts(bank, surface) -> None:
    img = surface[0]
    low, high = bank.review_band
    assert low <= bank.threshold < high
    alone = Inspector(bank)(img)
    assert alone.detections is None and alone.tiles_run == 0 and alone.review == (low, high)
    scores = sorted(r.score for r in alone.regions)
    mid = scores[len(scores) // 2]
    # a band holding the lower half of the region scores: those go to a person
    r = Inspector(bank, review=(0.0, mid))(img)
    for reg in r.regions:
        assert reg.verdict == ("review" if reg.score < mid else "defect")
    assert r.counts()["review"] == sum(s < mid for s in scores)
    # every region below the band's low end: ok, and the image with it
    r = Inspector(bank, review=(scores[-1] + 1, scores[-1] + 2))(img)
    assert r.verdict == "ok" and all(reg.verdict == "ok" for reg in r.regions)
    # a confirmed class wins over the band (confirm=True), not with confirm=False
    with spot_detector() as det:
        band = (0.0, scores[-1] + 1)
        r = Inspector(bank, det, review=band)(img)
        assert {reg.verdict for reg in r.regions if reg.class_id is not None} == {"defect"}
        r = Inspector(bank, det, review=band, confirm=False)(img)
        assert {reg.verdict for reg in r.regions} == {"review"}


def test_clean_surface_is_ok(bank) -> None:
    with spot_detector() as det:
        r = Inspector(bank, det)(brushed_metal(600, 700, seed=11))
    assert r.verdict == "ok" and r.regions == [] and r.tiles_run == 0
    assert len(r.detections) == 0


def test_plan_tiles_cover_each_box() -> None:
    boxes = np.array([[10, 10, 20, 20], [500, 300, 900, 700], [12, 11, 22, 19]], np.float64)
    tiles = plan_tiles(boxes, (800, 1000), (256, 256))
    assert len({tuple(t) for t in tiles.tolist()}) == len(tiles)  # no duplicates
    assert (tiles[:, 2] - tiles[:, 0] == 256).all() and (tiles[:, 3] - tiles[:, 1] == 256).all()
    assert (tiles[:, :2] >= 0).all() and (tiles[:, 2] <= 1000).all() and (tiles[:, 3] <= 800).all()
    for b in boxes:  # every pixel of every box lies in some tile
        ys, xs = np.mgrid[int(b[1]):int(b[3]), int(b[0]):int(b[2])]
        inside = np.zeros(xs.shape, bool)
        for t in tiles:
            inside |= (xs >= t[0]) & (xs < t[2]) & (ys >= t[1]) & (ys < t[3])
        assert inside.all()
    # the two small boxes share one tile: 1 + the large box's grid
    assert len(tiles) == 1 + len(plan_tiles(boxes[1:2], (800, 1000), (256, 256)))
    assert plan_tiles(np.zeros((0, 4)), (800, 1000), (256, 256)).shape == (0, 4)


def test_bad_arguments(bank) -> None:
    with pytest.raises(TypeError, match="anomaly: expected"):
        Inspector(42)
    with pytest.raises(TypeError, match="detector: expected"):
        Inspector(bank, 3.5)
    with pytest.raises(ValueError, match="review: expected finite low <= high"):
        Inspector(bank, review=(5, 1))
    with pytest.raises(ValueError, match="review: expected"):
        Inspector(bank, review="high")
    with pytest.raises(ValueError, match="match_threshold"):
        Inspector(bank, match_threshold=0)
    with spot_detector() as det:
        with pytest.raises(ValueError, match="tiles: tile 0"):
            det.detect_tiles(np.zeros((100, 100, 3), np.uint8), np.array([[0, 0, 200, 50]]))


def test_cli_inspect(tmp_path, bank, surface, capsys) -> None:
    from fissure.cli import main

    img = surface[0]
    bank.save(tmp_path / "bank.safetensors")
    (tmp_path / "spots.onnx").write_bytes(bright_spot_model())
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), brushed_metal(600, 700, seed=11))
    scores = sorted(r.score for r in Inspector(bank)(img).regions)
    band = f"0,{scores[len(scores) // 2]}"
    rc = main(["inspect", "--anomaly", str(tmp_path / "bank.safetensors"), "--detector",
               str(tmp_path / "spots.onnx"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
               "--out", str(tmp_path / "o"), "--review", band, "--review-dir",
               str(tmp_path / "rev"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "2 image(s): 1 defect, 0 review, 1 ok" in out
    rows = list(csv.DictReader((tmp_path / "o" / "summary.csv").read_text().splitlines()))
    assert [r["verdict"] for r in rows] == ["defect", "ok"]
    doc = json.loads((tmp_path / "o" / "a.json").read_text())
    assert len(doc["regions"]) == int(rows[0]["regions"]) == 7
    review = list(csv.DictReader((tmp_path / "rev" / "review.csv").read_text().splitlines()))
    assert len(review) == sum(r["verdict"] == "review" for r in doc["regions"]) > 0
    manifest = json.loads((tmp_path / "rev" / "review.json").read_text())
    assert [m["region"] for m in manifest] == [int(r["region"]) for r in review]
    for r in review:
        crop = cv2.imread(str(tmp_path / "rev" / r["crop"]))
        assert crop is not None and crop.shape[0] > float(r["y2"]) - float(r["y1"])
    assert (tmp_path / "o" / "a_inspect.jpg").exists()
    # --resume with one more image: only that one is inspected; review.csv keeps a's rows
    cv2.imwrite(str(tmp_path / "c.png"), brushed_metal(600, 700, seed=12))
    # what a run killed mid-write leaves in both folders (the name an atomic write gives its
    # temporary); resume removes them, and a file of the user's own stays
    for folder in ("o", "rev"):
        (tmp_path / folder / ".a_crop.jpg.k3x9q2zw.tmp").write_bytes(b"half")
    (tmp_path / "rev" / "notes.txt").write_text("mine")
    rc = main(["inspect", "--anomaly", str(tmp_path / "bank.safetensors"), "--detector",
               str(tmp_path / "spots.onnx"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
               str(tmp_path / "c.png"), "--out", str(tmp_path / "o"), "--review", band,
               "--review-dir", str(tmp_path / "rev"), "--quiet", "--resume"])
    out = capsys.readouterr().out
    assert rc == 0 and "3 image(s): 1 defect, 0 review, 2 ok" in out
    assert "2 done before, resumed" in out
    again = list(csv.DictReader((tmp_path / "rev" / "review.csv").read_text().splitlines()))
    assert again == review
    for folder in ("o", "rev"):
        assert not [f for f in os.listdir(tmp_path / folder) if f.endswith(".tmp")]
    assert (tmp_path / "rev" / "notes.txt").read_text() == "mine"
    from fissure.cli import build_parser

    ns = build_parser().parse_args(["inspect", "--anomaly", "b", "x.png", "--out", "o",
                                    "--specular", "mask"])
    assert ns.specular == "mask"
    # a bank that is not one: exit 2, one line
    (tmp_path / "bad.safetensors").write_bytes(b"not a bank")
    rc = main(["inspect", "--anomaly", str(tmp_path / "bad.safetensors"), str(tmp_path / "a.png"),
               "--out", str(tmp_path / "o2"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fissure: error: cannot set up the inspection") and "\n" == err[-1]


def test_region_masks_are_box_local_components(bank, surface) -> None:
    img = surface[0]
    result = Inspector(bank)(img)
    mask = result.anomaly.mask
    painted = np.zeros_like(mask)
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    assert len(result.regions) == n - 1
    for r in result.regions:
        x1, y1, x2, y2 = (int(v) for v in r.box)
        assert r.mask.shape == (y2 - y1, x2 - x1) and r.mask.dtype == bool
        # the region's own component (independent: the label under its mask is one label)
        comp = np.unique(labels[y1:y2, x1:x2][r.mask])
        assert comp.size == 1 and r.area == int((labels == comp[0]).sum())
        painted[y1:y2, x1:x2] |= r.mask
        assert result.to_dict()["regions"][r.id - 1]["area"] == r.area
    np.testing.assert_array_equal(painted, mask)


def test_specular_mask_keeps_glare_out_of_both_stages(bank) -> None:
    surf = plant_defects(brushed_metal(768, 1024, seed=21), 2, n_glints=4, seed=5,
                         kinds=("scratch", "pit"))
    img = surf.image.copy()
    # a bright but coloured square: the detector's class, not glare (saturation 55 > 30)
    img[400:414, 500:514] = (255, 255, 200)
    square = np.array([500, 400, 514, 414], np.float64)
    glints = surf.glint_boxes.astype(np.float64)
    assert _overlap(square[None] + [-100, -100, 100, 100], glints).max(initial=0) == 0
    with spot_detector() as det:
        every = det(img)
        on_glints = (_overlap(glints, every.boxes.astype(np.float64)) > 0).any(0)
        assert on_glints.sum() >= 1  # the detector alone fires on highlights
        masked = Inspector(bank, det, specular="mask")(img)
    assert bank.specular is None  # the bank passed in is unchanged
    assert masked.anomaly.glare is not None
    for r in masked.regions:  # no candidate and no named region on a glint
        assert _overlap(np.array([r.box]), glints).max(initial=0) == 0
    assert _overlap(glints, masked.detections.boxes.astype(np.float64)).max(initial=0) == 0
    r = _region_of(masked, square)
    assert (r.label, r.verdict) == ("bright spot", "defect")
    for d in surf.defects:
        assert _region_of(masked, np.asarray(d.box, np.float64)).label == "anomaly"
    with pytest.raises(ValueError, match="specular: expected None or 'mask'"):
        Inspector(bank, specular="flag")


def test_plan_tiles_shares_a_tile_between_near_candidates() -> None:
    # a 100 px candidate and a small one 60 px away: one 256 px tile holds both
    boxes = np.array([[300, 300, 400, 400], [460, 330, 470, 340]], np.float64)
    tiles = plan_tiles(boxes, (1000, 1000), (256, 256))
    assert len(tiles) == 1
    t = tiles[0]
    for b in boxes:
        assert t[0] <= b[0] and t[1] <= b[1] and t[2] >= b[2] and t[3] >= b[3]
    # far apart: one tile each
    far = np.array([[10, 10, 20, 20], [900, 900, 910, 910]], np.float64)
    assert len(plan_tiles(far, (1000, 1000), (256, 256))) == 2
    with pytest.raises(ValueError, match="image_shape"):
        plan_tiles(far, (0, 10), (256, 256))


def test_cascade_on_a_given_anomaly_result(bank, surface) -> None:
    img = surface[0]
    insp = Inspector(bank)
    res = bank.predict(img)
    a, b = insp.cascade(img, res), insp(img)
    assert [r.to_dict() for r in a.regions] == [r.to_dict() for r in b.regions]
    assert set(b.seconds) == {"anomaly", "detector", "total"}
    with pytest.raises(ValueError, match="anomaly_result: expected the anomaly result"):
        insp.cascade(img[:100, :100], res)


def test_exported_anomaly_model_file_and_its_default_band(tmp_path) -> None:
    """An anomalib-style export whose map is the image's brightness (channel mean / 255) opened
    from its file: the normalised threshold 0.5, the default band 0.4..0.625 around it, and
    patches of known brightness whose region scores and verdicts follow exactly."""
    pytest.importorskip("onnx")
    from oracles.anomaly_graphs import mean_map_export

    mean_map_export(tmp_path / "mean.onnx")
    img = np.zeros((500, 640, 3), np.uint8)
    patches = {"faint": ((60, 60), 115), "review": ((300, 100), 140), "bright": ((420, 300), 200)}
    for (x, y), v in patches.values():
        img[y:y + 20, x:x + 20] = v
    det = TiledDetector(bright_spot_model(), backend="onnxruntime", tile_size=256,
                        conf_threshold=0.6, decoder_options={"mask_threshold": 0.6},
                        class_names=["bright spot"], num_threads=2)
    with Inspector(tmp_path / "mean.onnx", det, backend="onnxruntime") as insp:
        assert insp.anomaly.threshold == 0.5 and insp.review_band() == (0.4, 0.625)
        r = insp(img)
    det.close()
    assert len(r.regions) == 2  # 115 / 255 = 0.45 is below the threshold: no region
    review = _region_of(r, np.array([300, 100, 320, 120], np.float64))
    bright = _region_of(r, np.array([420, 300, 440, 320], np.float64))
    assert review.score == pytest.approx(140 / 255, abs=1e-4) and review.label == "anomaly"
    assert review.verdict == "review"
    assert bright.score == pytest.approx(200 / 255, abs=1e-4) and bright.label == "bright spot"
    assert bright.verdict == "defect" and r.verdict == "defect"
    assert r.counts() == {"defect": 1, "review": 1, "ok": 0}
