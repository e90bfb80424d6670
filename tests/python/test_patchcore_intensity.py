"""PatchCore's per-image intensity standardisation (``intensity="standardize"``, the default):
the mapping against a float64 numpy reference, exposure invariance of the scores, the setting
saved with the bank, banks written before it loading as ``None``, and bad input refused."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import PatchCore, standardize_intensity

from test_patchcore import pool_backbone, texture


def reference(img: np.ndarray, mean: float = 128.0, std: float = 48.0) -> np.ndarray:
    """The mapping written out in float64 numpy: one mean and one population standard
    deviation over every value, std floored at 1, round half to even, clip."""
    a = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    f = a.astype(np.float64)
    sd = max(float(f.std()), 1.0)
    return np.clip(np.rint((f - f.mean()) / sd * std + mean), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("case", ["dim", "bright", "colour", "gray", "flat", "two-level",
                                  "saturated", "strided"])
def test_standardize_matches_numpy(case) -> None:
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    if case == "dim":
        img = rng.integers(10, 60, (97, 131, 3), dtype=np.uint8)
    elif case == "bright":
        img = rng.integers(180, 256, (64, 64, 3), dtype=np.uint8)
    elif case == "colour":
        img = np.stack([rng.integers(0, 80, (50, 70)), rng.integers(100, 200, (50, 70)),
                        rng.integers(200, 256, (50, 70))], axis=2).astype(np.uint8)
    elif case == "gray":
        img = rng.integers(30, 140, (80, 90), dtype=np.uint8)
    elif case == "flat":
        img = np.full((40, 40, 3), 77, np.uint8)
    elif case == "two-level":
        img = np.zeros((40, 40, 3), np.uint8)
        img[:, 20:] = 200
    elif case == "saturated":  # a long tail: the mapped values clip at 0 and 255
        img = np.full((60, 60, 3), 20, np.uint8)
        img[:3, :3] = 255
    else:
        img = rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)[::2, ::3]
    out = standardize_intensity(img)
    ref = reference(img)
    assert out.shape == ref.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, ref)
    if case in ("dim", "bright", "gray", "colour"):
        assert abs(float(out.mean()) - 128.0) < 1.0 and abs(float(out.std()) - 48.0) < 1.0
    if case == "flat":  # nearly flat: shifted to the mean, not blown up
        assert (out == 128).all()


def test_standardize_targets_and_errors(tmp_path) -> None:
    img = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(standardize_intensity(img, mean=100, std=20),
                                  reference(img, 100, 20))
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, img)
    np.testing.assert_array_equal(standardize_intensity(path), reference(img))
    for kw in ({"std": 0}, {"std": float("nan")}, {"mean": 300}, {"mean": -1}):
        with pytest.raises(ValueError):
            standardize_intensity(img, **kw)
    with pytest.raises(TypeError, match="uint8"):
        standardize_intensity(img.astype(np.float32))
    with pytest.raises(ValueError):
        standardize_intensity(np.zeros((0, 5, 3), np.uint8))


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return pool_backbone(tmp_path_factory.mktemp("pc_int"))


def _fit(bb, intensity="standardize", map_image=lambda img: img, **kw):
    """A bank of four 256 x 256 textures, each passed through ``map_image`` first."""
    pc = PatchCore(bb, tile_size=128, overlap_ratio=0.25, coreset_ratio=0.25,
                   intensity=intensity, backend="onnxruntime", precision=None, **kw)
    return pc.fit([map_image(texture(256, 256, s)) for s in range(4)])


def test_standardize_is_the_default_and_predict_sees_the_mapped_image(backbone) -> None:
    pc = _fit(backbone, "standardize")
    assert PatchCore(backbone).intensity == "standardize"
    raw = _fit(backbone, None)
    img = texture(256, 320, 50)
    img[100:120, 200:230] = 240
    # oracle: intensity=None on images mapped by the numpy reference gives the same bank and
    # the same prediction
    mapped = _fit(backbone, None, map_image=reference)
    np.testing.assert_array_equal(pc.bank, mapped.bank)
    a, b = pc.predict(img), mapped.predict(reference(img))
    assert a.score == pytest.approx(b.score, rel=1e-6)
    np.testing.assert_allclose(a.anomaly_map, b.anomaly_map, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(pc.bank, raw.bank)


def test_exposure_change_is_not_an_anomaly(backbone) -> None:
    """A defect-free image taken darker and with less contrast (v -> 0.6 v + 10): without the
    standardisation the whole image lights up; with it the score stays that of the original,
    while a planted stain is still found."""
    std, raw = _fit(backbone, "standardize"), _fit(backbone, None)
    img = texture(256, 256, 60)
    dark = np.clip(img.astype(np.float32) * 0.6 + 10, 0, 255).astype(np.uint8)
    assert raw.predict(dark).score > 3 * raw.predict(img).score
    assert raw.predict(dark).is_anomalous
    s0, s1 = std.predict(img).score, std.predict(dark).score
    assert s1 < 1.5 * s0 and not std.predict(dark).is_anomalous
    stain = dark.copy()
    stain[100:124, 100:130] = 30
    r = std.predict(stain)
    assert r.is_anomalous and r.score > 2 * s1
    y, x = np.unravel_index(np.argmax(r.anomaly_map), r.anomaly_map.shape)
    assert 80 <= y <= 144 and 80 <= x <= 150


def test_glare_mask_reads_the_original_pixels(backbone) -> None:
    from fissure.specular import specular_mask

    pc = _fit(backbone, specular="mask")
    img = np.clip(texture(256, 256, 61).astype(np.int16) + 90, 0, 255).astype(np.uint8)
    cv2.circle(img, (120, 130), 8, (255, 255, 255), -1)
    r = pc.predict(img)
    np.testing.assert_array_equal(r.glare, specular_mask(img, dilate=40))


def test_setting_is_saved_and_old_banks_load_as_none(backbone, tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from fissure.anomaly.patchcore import _checksum

    for intensity in ("standardize", None):
        pc = _fit(backbone, intensity)
        p = pc.save(tmp_path / f"{intensity}.safetensors")
        q = PatchCore.load(p, backbone, backend="onnxruntime", precision=None)
        assert q.intensity == intensity
        img = texture(200, 200, 70)
        np.testing.assert_array_equal(q.predict(img).anomaly_map, pc.predict(img).anomaly_map)
    with pytest.raises(TypeError, match="intensity"):
        PatchCore.load(p, backbone, intensity="standardize")
    # a bank written before the option has no "intensity" key: the pixels as they came
    with safe_open(str(p), framework="numpy") as f:
        meta, bank = dict(f.metadata()), f.get_tensor("bank")
    del meta["intensity"]
    meta["sha256"] = _checksum(bank, meta)
    save_file({"bank": bank}, str(tmp_path / "old.safetensors"), metadata=meta)
    assert PatchCore.load(tmp_path / "old.safetensors", backbone).intensity is None
    # a value this fissure does not know is refused as invalid metadata
    meta["intensity"] = json.dumps("histogram")
    meta["sha256"] = _checksum(bank, meta)
    save_file({"bank": bank}, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="invalid PatchCore metadata.*intensity"):
        PatchCore.load(tmp_path / "bad.safetensors", backbone)


@pytest.mark.parametrize("value", ["std", "none", 1, True])
def test_bad_setting(backbone, value) -> None:
    with pytest.raises(ValueError, match="intensity"):
        PatchCore(backbone, intensity=value)
