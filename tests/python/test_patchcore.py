"""PatchCore end to end with a small computing backbone (average pools at stride 8 and 16, an
onnx.helper graph): planted defects light up the map, scores follow anomalib's formulas
recomputed in numpy, and banks save, load and refuse bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import PatchCore
from onnx import TensorProto, helper


def pool_backbone(path) -> str:
    """images (N, 3, H, W) -> feat8 = AvgPool 8x8 / 8 and feat16 = AvgPool 16x16 / 16, plus a
    squared copy of feat8 so that texture statistics are features too."""
    nodes = [
        helper.make_node("AveragePool", ["images"], ["a8"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Mul", ["images", "images"], ["sq"]),
        helper.make_node("AveragePool", ["sq"], ["s8"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Concat", ["a8", "s8"], ["feat8"], axis=1),
        helper.make_node("AveragePool", ["images"], ["feat16"], kernel_shape=[16, 16], strides=[16, 16]),
    ]
    g = helper.make_graph(
        nodes, "pools",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("feat8", TensorProto.FLOAT, ["N", 6, "h8", "w8"]),
         helper.make_tensor_value_info("feat16", TensorProto.FLOAT, ["N", 3, "h16", "w16"])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    p = str(path / "pools.onnx")
    onnx.save(m, p)
    return p


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(128, 20, (h, w, 3))
    return np.clip(cv2.GaussianBlur(base, (0, 0), 2), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("pc")
    bb = pool_backbone(d)
    pc = PatchCore(bb, tile_size=128, overlap_ratio=0.25, coreset_ratio=0.25, backend="onnxruntime",
                   precision=None)
    pc.fit([texture(384, 384, s) for s in range(4)])
    return pc, bb


def test_planted_defect_is_found(fitted) -> None:
    pc, _ = fitted
    img = texture(512, 640, 99)
    img[300:324, 400:430] = 250  # a bright stain
    r = pc.predict(img)
    assert r.anomaly_map.shape == (512, 640) and r.anomaly_map.dtype == np.float32
    y, x = np.unravel_index(np.argmax(r.anomaly_map), r.anomaly_map.shape)
    assert 280 <= y <= 344 and 380 <= x <= 450
    assert r.is_anomalous and r.score > r.image_threshold
    assert len(r.boxes) >= 1
    hit = [(b[0] <= 430 and b[2] >= 400 and b[1] <= 324 and b[3] >= 300) for b in r.boxes]
    assert any(hit)
    clean = pc.predict(texture(512, 640, 123))
    assert clean.score < r.score
    assert clean.anomaly_map.max() < r.anomaly_map.max()


def test_scores_follow_anomalib_formulas(fitted) -> None:
    """Patch scores are sqrt of the nearest squared distance; the image score is anomalib's
    reweighting around the worst patch, recomputed here with brute-force numpy."""
    pc, _ = fitted
    img = texture(128, 128, 7)  # one tile: the embedding is the backbone's on the whole image
    img[40:60, 40:60] = 255
    r = pc.predict(img)
    # the backbone sees the image after the intensity standardisation (its own test:
    # test_patchcore_intensity.py)
    emb = next(iter(pc._embed_tiles(pc._prepare(img), pc._tiles(128, 128))))[1][0]
    rows = emb.reshape(-1, emb.shape[-1]).astype(np.float64)
    bank = pc.bank.astype(np.float64)
    d2 = ((rows[:, None, :] - bank[None]) ** 2).sum(-1)
    s = np.sqrt(d2.min(1))
    worst = int(np.argmax(s))
    m_star = int(np.argmin(d2[worst]))
    nb = np.argsort(((bank - bank[m_star]) ** 2).sum(1), kind="stable")[: pc.num_neighbors]
    dist = np.sqrt(((bank[nb] - rows[worst]) ** 2).sum(1))
    w = 1 - np.exp(dist[0]) / np.exp(dist).sum()
    assert r.score == pytest.approx(w * s[worst], rel=1e-4)
    pc.scoring = "max"
    try:
        assert pc.predict(img).score == pytest.approx(s.max(), rel=1e-4)
    finally:
        pc.scoring = "anomalib"


def test_save_load_round_trip_and_refusals(fitted, tmp_path) -> None:
    pc, bb = fitted
    p = pc.save(tmp_path / "bank.safetensors")
    q = PatchCore.load(p, bb, backend="onnxruntime", precision=None)
    np.testing.assert_array_equal(q.bank, pc.bank)
    assert (q.threshold, q.image_threshold, q.tile_size) == (pc.threshold, pc.image_threshold, pc.tile_size)
    img = texture(256, 256, 5)
    np.testing.assert_array_equal(q.predict(img).anomaly_map, pc.predict(img).anomaly_map)
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt|truncated|checksum"):
        PatchCore.load(tmp_path / "trunc.safetensors", bb)
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        PatchCore.load(tmp_path / "flip.safetensors", bb)
    from safetensors.numpy import save_file

    save_file({"weights": np.zeros((2, 2), np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not a fissure PatchCore bank"):
        PatchCore.load(tmp_path / "foreign.safetensors", bb)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError):
        PatchCore.load(tmp_path / "junk.safetensors", bb)
    other = tmp_path / "other.onnx"
    other.write_bytes(Path(bb).read_bytes())  # same bytes: accepted
    PatchCore.load(p, other)
    m = onnx.load(bb)
    m.doc_string = "another build"
    onnx.save(m, str(other))
    with pytest.raises(ValueError, match="backbone"):
        PatchCore.load(p, other)
    with pytest.raises(FileNotFoundError):
        PatchCore.load(tmp_path / "missing.safetensors", bb)


def test_errors(fitted, tmp_path) -> None:
    pc, bb = fitted
    with pytest.raises(RuntimeError, match="fit"):
        PatchCore(bb).predict(texture(64, 64, 1))
    with pytest.raises(ValueError, match="coreset_ratio"):
        PatchCore(bb, coreset_ratio=0)
    with pytest.raises(ValueError, match="scoring"):
        PatchCore(bb, scoring="mean")
    with pytest.raises(ValueError, match="at least one"):
        PatchCore(bb).fit([])
    with pytest.raises(ValueError, match="no output named"):
        PatchCore(bb, layers=("layer2",), backend="onnxruntime", precision=None).fit([texture(64, 64, 1)])
    with pytest.raises(TypeError, match="uint8"):
        pc.predict(np.zeros((64, 64, 3), np.float32))


def test_fit_streams_a_generator_and_margin_scales_thresholds(fitted) -> None:
    pc, bb = fitted
    kw = dict(tile_size=128, overlap_ratio=0.25, coreset_ratio=0.25, backend="onnxruntime",
              precision=None)
    g = PatchCore(bb, threshold_margin=0.0, **kw).fit(texture(384, 384, s) for s in range(4))
    np.testing.assert_array_equal(g.bank, pc.bank)  # same images, same bank
    # the default margin (0.25) multiplies the held-out maxima
    assert pc.threshold == pytest.approx(g.threshold * 1.25, rel=1e-6)
    assert pc.image_threshold == pytest.approx(g.image_threshold * 1.25, rel=1e-6)
    h = PatchCore(bb, threshold_margin=0.5, **kw).fit(texture(384, 384, s) for s in range(4))
    assert h.threshold == pytest.approx(g.threshold * 1.5, rel=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        PatchCore(bb, **kw).fit(iter(()))
    # defect-free images of the same texture stay under the calibrated pixel threshold
    for s in (10, 11):
        assert len(pc.predict(texture(256, 384, s)).boxes) == 0


def test_glare_is_suppressed_with_its_halo(fitted, tmp_path) -> None:
    from fissure.specular import specular_mask

    pc, bb = fitted
    img = texture(384, 384, 7)
    cv2.circle(img, (200, 180), 9, (255, 255, 255), -1)  # a specular glint
    plain = pc.predict(img)
    assert plain.mask[180, 200] and len(plain.boxes) >= 1  # without suppression: a false defect
    sup = PatchCore.load(pc.save(tmp_path / "b.safetensors"), bb, backend="onnxruntime",
                         precision=None, specular="mask", specular_dilate=40)
    r = sup.predict(img)
    glare = specular_mask(img, dilate=40)
    np.testing.assert_array_equal(r.glare, glare)
    assert (r.anomaly_map[glare] == 0).all()
    assert not r.mask.any()
    # saved with the bank, restored on load unless overridden
    q = PatchCore.load(sup.save(tmp_path / "s.safetensors"), bb)
    assert (q.specular, q.specular_dilate) == ("mask", 40)
    q = PatchCore.load(tmp_path / "s.safetensors", bb, specular=None)
    assert q.specular is None


@pytest.mark.parametrize("kw,match", [
    ({"specular_dilate": -1}, "specular_dilate"), ({"specular_dilate": 1.5}, "specular_dilate"),
    ({"threshold_margin": -0.1}, "threshold_margin"), ({"threshold_margin": "1"}, "threshold_margin"),
    ({"specular": "drop"}, "specular"), ({"holdout": 1.0}, "holdout"),
])
def test_parameter_errors(fitted, kw, match) -> None:
    _, bb = fitted
    with pytest.raises(ValueError, match=match):
        PatchCore(bb, **kw)


@pytest.mark.parametrize("input_size", [None, (64, 80)])
def test_thresholds_are_the_held_out_image_as_predict_scores_it(fitted, input_size) -> None:
    # One tile per image (tile_size=None) and holdout 0.2: the 5th image is held out of the bank.
    # Its predicted map maximum and image score are then exactly the unmargined thresholds,
    # also when input_size resizes the tile (the calibration map is upsampled to the tile's
    # own size, as predict does, not to 8x the patch grid). Held-out embeddings are kept in
    # float16, hence the tolerance.
    _, bb = fitted
    imgs = [texture(100, 124, s) for s in range(20, 25)]
    pc = PatchCore(bb, tile_size=None, input_size=input_size, coreset_ratio=0.5, holdout=0.2,
                   threshold_margin=0.0, backend="onnxruntime", precision=None).fit(imgs)
    assert pc.stats["holdout_tiles"] == 1
    res = pc.predict(imgs[4])
    assert res.anomaly_map.shape == (100, 124)
    assert pc.threshold == pytest.approx(float(res.anomaly_map.max()), rel=2e-3)
    assert pc.image_threshold == pytest.approx(res.score, rel=2e-3)
