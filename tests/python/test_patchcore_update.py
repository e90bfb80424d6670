"""PatchCore.update, the feedback loop: confirmed normals join the memory bank without a re-fit.

Oracles: planted ground truth on synthetic brushed metal (a benign texture variation the bank
has not seen raises false alarms; after one update with a few images of it the false alarms
on held-out images of it are gone while the planted defects are still found), and a naive
reference (with a coreset that keeps everything, update equals fit on the union of the images;
the thresholds equal the larger of the old ones and the held-out new tile's values as predict
computes them)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import PatchCore
from fissure.anomaly.synthetic import brushed_metal, plant_defects
from fissure.demo import evaluate
from test_patchcore import pool_backbone, texture

S = 384
BASE = (6.0, 2.0, -4.0)        # brushed_metal's default tint: what the bank is fitted on
VARIANT = (-20.0, 0.0, 25.0)   # a benign variation: a bluish batch of the same metal


def metal(seed: int, tint=BASE) -> np.ndarray:
    return brushed_metal(S, S, seed=seed, tint=tint)


def false_alarms(pc: PatchCore, tint, seeds) -> int:
    """Regions on defect-free images: every one is a false alarm."""
    return sum(len(pc.predict(metal(s, tint)).boxes) for s in seeds)


def recall(pc: PatchCore, tint, seeds) -> tuple[int, int, int]:
    """(found, planted, false alarms) over images with planted defects."""
    found = planted = fa = 0
    for s in seeds:
        surf = plant_defects(metal(s, tint), 4, seed=s, size_range=(10, 24), margin=24)
        ev = evaluate(pc.predict(surf.image).mask, surf.labels, None)
        found += len(ev["found"])
        planted += len(surf.defects)
        fa += ev["false_alarms"]
    return found, planted, fa


@pytest.fixture(scope="module")
def metal_bank():
    pc = PatchCore(coreset_ratio=0.1, tile_size=192, backend="onnxruntime", num_threads=2)
    return pc.fit([metal(s) for s in range(4)])


def clone(pc: PatchCore) -> PatchCore:
    other = PatchCore.__new__(PatchCore)
    other.__dict__.update(pc.__dict__)
    other.bank = pc.bank.copy()
    other.calibration = dict(pc.calibration)
    other.stats = {}
    return other


def test_a_benign_variation_stops_alarming_after_one_update(metal_bank) -> None:
    pc = clone(metal_bank)
    held_out = range(60, 64)
    before_fa = false_alarms(pc, VARIANT, held_out)
    before = recall(pc, VARIANT, range(70, 72))
    base_before = recall(pc, BASE, range(90, 92))
    assert before_fa >= 4  # the variation is not in the bank: it alarms
    assert false_alarms(pc, BASE, range(50, 53)) == 0  # while the fitted texture does not
    rows, thr = pc.bank.shape[0], pc.threshold
    pc.update([metal(s, VARIANT) for s in range(80, 85)])
    st = pc.stats
    assert st["bank_size_before"] == rows and st["threshold_before"] == thr
    # the old rows stay, in order; the new ones are int(new patches * the bank's ratio)
    np.testing.assert_array_equal(pc.bank[:rows], metal_bank.bank)
    assert pc.bank.shape[0] == rows + int(st["new_patches"] * 0.1) == st["bank_size"]
    assert pc.threshold >= thr and pc.image_threshold >= metal_bank.image_threshold
    after_fa = false_alarms(pc, VARIANT, held_out)
    after = recall(pc, VARIANT, range(70, 72))
    assert after_fa <= before_fa // 4, (before_fa, after_fa)
    assert after[2] <= before[2]
    # the planted defects are still found, on the variation and on the fitted texture
    assert after[0] >= before[0] - 1 and after[0] >= 0.75 * after[1], (before, after)
    base_after = recall(pc, BASE, range(90, 92))
    assert base_after[0] >= base_before[0] - 1 and base_after[2] <= base_before[2]


def test_update_equals_fit_on_the_union_when_the_coreset_keeps_everything(tmp_path) -> None:
    bb = pool_backbone(tmp_path)
    kw = dict(tile_size=None, coreset_ratio=1.0, holdout=0.2, threshold_margin=0.3,
              backend="onnxruntime", precision=None, num_threads=2)
    old = [texture(128, 128, s) for s in range(5)]      # tile 4 of 0..4 held out
    new = [texture(128, 128, 100 + s) for s in range(5)]  # and tile 4 of these
    new[2] = np.ascontiguousarray(new[2][:, :, ::-1])  # a colour variation among them
    ref = PatchCore(bb, **kw).fit(old + new)
    pc = PatchCore(bb, **kw).fit(old)
    thr, ithr = pc.threshold, pc.image_threshold
    pc.update(new)
    np.testing.assert_array_equal(pc.bank, ref.bank)
    # the new held-out tile (new[4]) scored as predict scores it, against the grown bank (up
    # to float16: held-out embeddings are kept in float16, as fit keeps them)
    r = pc.predict(new[4])
    np.testing.assert_allclose(pc.threshold, max(thr, float(r.anomaly_map.max()) * 1.3),
                               rtol=2e-3)
    np.testing.assert_allclose(pc.image_threshold, max(ithr, r.score * 1.3), rtol=2e-3)
    # the stored maximum of old[4] was measured against the smaller bank: never below fit's
    assert pc.threshold >= ref.threshold - 1e-9 and pc.image_threshold >= ref.image_threshold - 1e-9
    assert pc.calibration["holdout_tiles"] == 2 and pc.calibration["updates"] == 1
    assert pc.calibration["train_patches"] == ref.stats["train_patches"]


def test_images_already_represented_change_little(tmp_path) -> None:
    bb = pool_backbone(tmp_path)
    pc = PatchCore(bb, tile_size=128, coreset_ratio=0.25, backend="onnxruntime",
                   precision=None, num_threads=2).fit([texture(256, 256, s) for s in range(6)])
    probe = [texture(256, 256, 300 + s) for s in range(3)]
    scores = [pc.predict(p).anomaly_map.max() for p in probe]
    thr = pc.threshold
    pc.update([texture(256, 256, 200 + s) for s in range(3)])
    after = [pc.predict(p).anomaly_map.max() for p in probe]
    assert thr <= pc.threshold <= 1.1 * thr
    np.testing.assert_allclose(after, scores, rtol=0.15)
    assert all(a <= s + 1e-4 for a, s in zip(after, scores))  # a grown bank: never farther
    img = texture(256, 256, 400)
    img[100:124, 60:90] = 250
    assert pc.predict(img).is_anomalous


def test_patches_already_in_the_bank_are_not_added_again(tmp_path) -> None:
    bb = pool_backbone(tmp_path)
    imgs = [texture(128, 128, s) for s in range(4)]
    pc = PatchCore(bb, tile_size=None, coreset_ratio=1.0, holdout=0.0, backend="onnxruntime",
                   precision=None, num_threads=2).fit(imgs)
    bank, thr = pc.bank.copy(), pc.threshold
    pc.update(imgs, coreset_ratio=0.5)
    assert pc.stats["added_rows"] == 0 and pc.stats["holdout_tiles"] == 0
    np.testing.assert_array_equal(pc.bank, bank)
    assert pc.threshold == thr  # nothing held out: the thresholds stay


def test_a_review_crop_is_one_tile_at_its_size(metal_bank) -> None:
    pc = clone(metal_bank)
    img = metal(61, VARIANT)
    r = pc.predict(img)
    y, x = np.unravel_index(np.argmax(r.anomaly_map), r.anomaly_map.shape)
    y0, x0 = min(max(0, y - 24), S - 48), min(max(0, x - 32), S - 64)
    crop = img[y0:y0 + 48, x0:x0 + 64]  # the reviewer's crop around the worst spot
    rows = pc.bank.shape[0]
    pc.update([crop], coreset_ratio=0.25)
    assert pc.stats["new_tiles"] == 1 and pc.stats["holdout_tiles"] == 0
    assert pc.stats["new_patches"] == (48 // 8) * (64 // 8)
    assert pc.bank.shape[0] == rows + int(pc.stats["new_patches"] * 0.25)
    assert pc.threshold == metal_bank.threshold  # no held-out tile: the thresholds stay
    after = pc.predict(img)
    assert after.anomaly_map[y0:y0 + 48, x0:x0 + 64].max() < r.anomaly_map[y0:y0 + 48, x0:x0 + 64].max()


def test_bad_input_is_refused_and_leaves_the_model_unchanged(metal_bank, tmp_path) -> None:
    pc = clone(metal_bank)
    bank, thr, cal = pc.bank.copy(), pc.threshold, dict(pc.calibration)
    with pytest.raises(ValueError, match="32 x 32"):
        pc.update([metal(1, VARIANT), metal(1, VARIANT)[:31, :200]])
    with pytest.raises(ValueError, match="at least one normal image"):
        pc.update([])
    with pytest.raises(ValueError, match="coreset_ratio"):
        pc.update([metal(1)], coreset_ratio=0.0)
    with pytest.raises(TypeError, match="uint8"):
        pc.update([metal(1).astype(np.float32)])
    with pytest.raises(FileNotFoundError):
        pc.update([tmp_path / "missing.png"])
    np.testing.assert_array_equal(pc.bank, bank)
    assert pc.threshold == thr and pc.calibration == cal
    failed = []
    pc.update([metal(1)[:20, :20], metal(81, VARIANT)], on_error=lambda i, e: failed.append(e))
    assert len(failed) == 1 and "32 x 32" in str(failed[0]) and pc.stats["new_tiles"] == 9
    with pytest.raises(RuntimeError, match="fit"):
        PatchCore(backend="onnxruntime", num_threads=2).update([metal(1)])


def test_the_calibration_travels_with_the_bank(metal_bank, tmp_path) -> None:
    path = metal_bank.save(tmp_path / "b.safetensors")
    got = PatchCore.load(path, backend="onnxruntime", num_threads=2)
    assert got.calibration == metal_bank.calibration
    assert got.review_band == metal_bank.review_band
    # an update of the loaded bank equals one of the fitted object
    a, b = clone(metal_bank), got
    imgs = [metal(s, VARIANT) for s in range(80, 82)]
    a.update(imgs)
    b.update(imgs)
    np.testing.assert_array_equal(a.bank, b.bank)
    assert (a.threshold, a.image_threshold, a.calibration) == (b.threshold, b.image_threshold,
                                                               b.calibration)
    b.save(tmp_path / "b2.safetensors")
    again = PatchCore.load(tmp_path / "b2.safetensors", backend="onnxruntime", num_threads=2)
    assert again.calibration["updates"] == 1 and again.threshold == b.threshold
    # edited statistics: refused by the checksum; a bank without them still updates
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from fissure.anomaly.patchcore import _checksum

    with safe_open(str(path), framework="numpy") as f:
        meta, arr = f.metadata(), f.get_tensor("bank")
    edited = dict(meta, calibration=json.dumps({**metal_bank.calibration, "pixel_max": 0.0}))
    save_file({"bank": arr}, str(tmp_path / "edited.safetensors"), metadata=edited)
    with pytest.raises(ValueError, match="checksum"):
        PatchCore.load(tmp_path / "edited.safetensors")
    bad = dict(meta, calibration=json.dumps({**metal_bank.calibration, "holdout": 2}))
    bad["sha256"] = _checksum(arr, bad)
    save_file({"bank": arr}, str(tmp_path / "bad.safetensors"), metadata=bad)
    with pytest.raises(ValueError, match="calibration holdout"):
        PatchCore.load(tmp_path / "bad.safetensors")
    older = {k: v for k, v in meta.items() if k != "calibration"}
    older["sha256"] = _checksum(arr, older)
    save_file({"bank": arr}, str(tmp_path / "older.safetensors"), metadata=older)
    old = PatchCore.load(tmp_path / "older.safetensors", backend="onnxruntime", num_threads=2,
                         coreset_ratio=0.1)
    assert old.calibration is None
    lo, hi = old.review_band
    assert lo == pytest.approx(old.threshold / 1.25) and hi == pytest.approx(old.threshold * 1.25)
    old.update(imgs)
    np.testing.assert_array_equal(old.bank, a.bank)
    assert old.threshold == pytest.approx(a.threshold) and old.calibration["updates"] == 1


def test_the_review_band_comes_from_the_calibration(tmp_path) -> None:
    bb = pool_backbone(tmp_path)
    imgs = [texture(128, 128, s) for s in range(5)]  # the fifth is the held-out tile
    pc = PatchCore(bb, tile_size=None, coreset_ratio=0.5, threshold_margin=0.4,
                   backend="onnxruntime", precision=None, num_threads=2)
    assert pc.review_band is None
    pc.fit(imgs)
    lo, hi = pc.review_band
    # low: the held-out normal tile's largest map value, as predict computes it (up to the
    # float16 the held-out embeddings are kept in)
    assert lo == pytest.approx(float(pc.predict(imgs[4]).anomaly_map.max()), rel=2e-3)
    assert lo < pc.threshold < hi
    assert hi == pytest.approx(pc.threshold * 1.4) and pc.threshold == pytest.approx(lo * 1.4)
    ilo, ihi = pc.image_review_band
    assert ilo == pytest.approx(pc.predict(imgs[4]).score, rel=2e-3)
    assert ihi == pytest.approx(pc.image_threshold * 1.4)


def test_a_float16_bank_and_a_gray_crop(tmp_path) -> None:
    bb = pool_backbone(tmp_path)
    pc = PatchCore(bb, tile_size=64, coreset_ratio=0.5, bank_dtype="float16",
                   backend="onnxruntime", precision=None, num_threads=2)
    pc.fit([texture(128, 128, s) for s in range(3)])
    rows = pc.bank.shape[0]
    gray = cv2.cvtColor(texture(128, 128, 9), cv2.COLOR_BGR2GRAY)[10:50, 20:60]
    pc.update([gray])
    assert pc.bank.dtype == np.float16 and pc.bank.shape[0] == rows + int(25 * 0.5)
    path = pc.save(tmp_path / "b.safetensors")
    got = PatchCore.load(path, bb, backend="onnxruntime", precision=None, num_threads=2)
    np.testing.assert_array_equal(got.bank, pc.bank)
    assert got.calibration == pc.calibration and got.coreset_ratio == 0.5
