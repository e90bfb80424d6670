"""``fissure.AnomalyModel`` on real anomalib 2.7 exports (tests/data/anomalib, built by
models/build_anomalib.py with anomalib's own Engine.fit and Engine.export).

Oracles: anomalib's own torch inference on fixed tiles (reference.npz, written by the build
script from the torch model in eval mode), and an independent per-tile loop over a mosaic
(the backend run tile by tile, each map resized with a naive numpy bilinear, blended with a
2-D weight written out here), against which the stitched map must agree everywhere and be the
tile's own map exactly where only one tile covers a pixel.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from fissure import AnomalyModel, AnomalyResult, slice_grid  # noqa: E402
from fissure.backends import ModelLoadError, open_model  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "anomalib"
PADIM = DATA / "padim" / "model.onnx"
PADIM_IR = DATA / "padim" / "model.xml"
PATCHCORE = DATA / "patchcore" / "model.onnx"
ATOL = 2e-4


def _backends() -> list[str]:
    out = ["onnxruntime"]
    try:
        import openvino  # noqa: F401

        out.append("openvino")
    except ImportError:
        pass
    return out


BACKENDS = _backends()
EXPORTS = [(PADIM, "onnxruntime"), (PATCHCORE, "onnxruntime")] + (
    [(PADIM_IR, "openvino"), (PADIM, "openvino")] if "openvino" in BACKENDS else [])


def ref(path: Path) -> dict:
    with np.load(path.parent / "reference.npz") as z:
        return {k: z[k] for k in z.files}


def masks_agree(got: np.ndarray, want: np.ndarray, values: np.ndarray, thr: float = 0.5) -> None:
    """Equal, except where the value lies within ATOL of the threshold (rounding may flip it)."""
    differ = got != want
    assert not np.any(differ & (np.abs(values - thr) > ATOL))


# -- (a) the exports as anomalib's torch model computes them ---------------------------------
@pytest.mark.parametrize("path,backend", EXPORTS, ids=lambda v: getattr(v, "name", v))
def test_backend_equals_anomalib_torch(path: Path, backend: str) -> None:
    r = ref(path)
    with open_model(path, backend, "cpu", precision="f32") as m:
        assert [t.name for t in m.outputs] == ["pred_score", "pred_label", "anomaly_map",
                                                "pred_mask"]
        out = m.run({"input": r["input"]})
    for k in ("pred_score", "anomaly_map"):
        np.testing.assert_allclose(out[k].reshape(r[k].shape), r[k], atol=ATOL, rtol=0)
    masks_agree(out["pred_mask"].reshape(r["pred_mask"].shape), r["pred_mask"], r["anomaly_map"])
    masks_agree(out["pred_label"].reshape(r["pred_label"].shape), r["pred_label"],
                r["pred_score"])
    # the reference tiles hold both outcomes, so the comparison means something
    assert r["pred_label"].any() and not r["pred_label"].all()


# -- (b) one tile through AnomalyModel -------------------------------------------------------
@pytest.mark.parametrize("path,backend", EXPORTS, ids=lambda v: getattr(v, "name", v))
def test_one_tile_is_anomalibs_output(path: Path, backend: str) -> None:
    r = ref(path)
    with AnomalyModel(path, backend=backend) as am:
        assert am.input_size == (64, 64) and am.tile_size == (64, 64)
        assert am.dynamic_input == (path != PATCHCORE)
        # the thresholds come from the graph: the constant its Greater nodes compare with
        assert (am.threshold, am.image_threshold) == (0.5, 0.5)
        assert am.threshold_source == {"threshold": "graph", "image_threshold": "graph"}
        for i, tile in enumerate(r["tiles"]):
            res = am.predict(tile)
            assert isinstance(res, AnomalyResult)
            want = r["anomaly_map"][i, 0]
            assert res.anomaly_map.shape == (64, 64) and res.anomaly_map.dtype == np.float32
            np.testing.assert_allclose(res.anomaly_map, want, atol=ATOL, rtol=0)
            assert res.score == pytest.approx(float(r["pred_score"].reshape(-1)[i]), abs=ATOL)
            assert res.is_anomalous == bool(r["pred_label"].reshape(-1)[i])
            masks_agree(res.mask, r["pred_mask"][i, 0], want)


def bilinear(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Naive bilinear resize with half-pixel centres (torch align_corners=False, cv2
    INTER_LINEAR when enlarging): each output pixel from its four neighbours."""
    ih, iw = a.shape

    def axis(n: int, size: int):
        s = np.clip((np.arange(n) + 0.5) * size / n - 0.5, 0.0, size - 1)
        i0 = np.floor(s).astype(int)
        return i0, np.minimum(i0 + 1, size - 1), s - i0

    y0, y1, fy = axis(h, ih)
    x0, x1, fx = axis(w, iw)
    fy, fx = fy[:, None], fx[None, :]
    return ((1 - fy) * ((1 - fx) * a[y0][:, x0] + fx * a[y0][:, x1])
            + fy * ((1 - fx) * a[y1][:, x0] + fx * a[y1][:, x1]))


def test_dynamic_export_resizes_inside_and_fissure_resizes_back() -> None:
    """A 96 x 80 tile goes in at its own size (PaDiM's graph resizes it to 64 x 64); its map
    is anomalib's 64 x 64 map, brought back to 96 x 80 by bilinear resizing."""
    r = ref(PADIM)
    with AnomalyModel(PADIM, tile_size=(96, 80), backend="onnxruntime") as am:
        for i, tile in enumerate(r["tiles_96"]):
            res = am.predict(tile)
            want = bilinear(r["anomaly_map_96"][i, 0].astype(np.float64), 96, 80)
            np.testing.assert_allclose(res.anomaly_map, want, atol=ATOL, rtol=0)
            assert res.score == pytest.approx(float(r["pred_score_96"].reshape(-1)[i]), abs=ATOL)


# -- (c) a mosaic, stitched, against a per-tile loop -----------------------------------------
def mosaic(h: int, w: int, seed: int) -> np.ndarray:
    """Reference tiles laid side by side (each 64 x 64, normal and defective), jittered."""
    r = ref(PATCHCORE)
    rng = np.random.default_rng(seed)
    t = r["tiles"]
    rows = []
    for _ in range(-(-h // 64)):
        rows.append(np.concatenate([t[rng.integers(len(t))] for _ in range(-(-w // 64))], 1))
    img = np.concatenate(rows, 0)[:h, :w].astype(np.int16)
    img += rng.integers(-3, 4, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def ramp(n: int, lo: bool, hi: bool, r: int) -> np.ndarray:
    w = np.ones(n)
    for i in range(n):
        if lo and i < r:
            w[i] = min(w[i], (i + 0.5) / r)
        if hi and n - 1 - i < r:
            w[i] = min(w[i], (n - 1 - i + 0.5) / r)
    return w


def per_tile_loop(path: Path, image: np.ndarray, tile: tuple[int, int], ratio: float,
                  static: bool):
    """The oracle: every tile run alone, its map resized naively, blended with a 2-D weight
    summed per pixel; returns (stitched map, coverage count, per-tile maps, pred_scores)."""
    h, w = image.shape[:2]
    grid = slice_grid(h, w, tile[0], tile[1], ratio, ratio)
    acc = np.zeros((h, w))
    wsum = np.zeros((h, w))
    cover = np.zeros((h, w), int)
    maps, scores = [], []
    with open_model(path, "onnxruntime", "cpu") as m:
        for x0, y0, x1, y1 in grid.tolist():
            crop = image[y0:y1, x0:x1]
            if static:
                crop = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_LINEAR)
            x = crop[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
            out = m.run({"input": np.ascontiguousarray(x)})
            amap = out["anomaly_map"][0, 0].astype(np.float64)
            if amap.shape != (y1 - y0, x1 - x0):
                amap = bilinear(amap, y1 - y0, x1 - x0)
            wt = np.outer(ramp(y1 - y0, y0 > 0, y1 < h, int(ratio * tile[0])),
                          ramp(x1 - x0, x0 > 0, x1 < w, int(ratio * tile[1])))
            acc[y0:y1, x0:x1] += wt * amap
            wsum[y0:y1, x0:x1] += wt
            cover[y0:y1, x0:x1] += 1
            maps.append(((x0, y0, x1, y1), amap))
            scores.append(float(out["pred_score"].reshape(-1)[0]))
    return acc / wsum, cover, maps, scores


@pytest.mark.parametrize("path,tile,size", [(PADIM, (256, 256), (700, 900)),
                                            (PATCHCORE, (96, 96), (300, 340))],
                         ids=["padim-dynamic", "patchcore-static"])
def test_stitched_map_equals_per_tile_loop(path: Path, tile, size) -> None:
    img = mosaic(*size, seed=3)
    static = path == PATCHCORE
    want, cover, maps, scores = per_tile_loop(path, img, tile, 0.25, static)
    with AnomalyModel(path, tile_size=tile, overlap_ratio=0.25, backend="onnxruntime",
                      batch_size=3) as am:
        res = am.predict(img)
    assert res.anomaly_map.shape == size
    np.testing.assert_allclose(res.anomaly_map, want, atol=ATOL, rtol=0)
    # interiors: where one tile alone covers a pixel, the stitched map is that tile's map
    assert (cover == 1).any() and (cover > 1).any()
    for (x0, y0, x1, y1), amap in maps:
        alone = cover[y0:y1, x0:x1] == 1
        np.testing.assert_allclose(res.anomaly_map[y0:y1, x0:x1][alone], amap[alone],
                                   atol=ATOL, rtol=0)
    assert res.score == pytest.approx(max(scores), abs=ATOL)
    np.testing.assert_array_equal(res.mask, res.anomaly_map > 0.5)
    assert len(res.boxes) == len(res.box_scores)
    d = res.to_dict()
    assert (d["height"], d["width"]) == size and d["pixel_threshold"] == 0.5


def test_batching_does_not_change_the_result() -> None:
    img = mosaic(200, 260, seed=5)
    with AnomalyModel(PADIM, backend="onnxruntime", batch_size=1) as a, \
            AnomalyModel(PADIM, backend="onnxruntime", batch_size=7) as b:
        ra, rb = a.predict(img), b.predict(img)
    np.testing.assert_allclose(ra.anomaly_map, rb.anomaly_map, atol=1e-5, rtol=0)
    assert ra.score == pytest.approx(rb.score, abs=1e-5)


def test_specular_mask_zeroes_glare_and_its_tiles_scores() -> None:
    img = mosaic(192, 192, seed=7)
    img[60:90, 100:140] = 255  # a white, saturated highlight
    with AnomalyModel(PADIM, backend="onnxruntime", specular="mask", specular_dilate=3) as am:
        res = am.predict(img)
        plain = AnomalyModel(PADIM, backend="onnxruntime").predict(img)
    assert res.glare is not None and res.glare[60:90, 100:140].all()
    assert not res.anomaly_map[res.glare].any()
    np.testing.assert_array_equal(res.anomaly_map[~res.glare], plain.anomaly_map[~res.glare])
    assert not res.mask[res.glare].any()
    assert res.score <= plain.score
    pic = res.overlay(img)
    assert pic.shape[:2] == img.shape[:2] and pic.dtype == np.uint8


def test_thresholds_from_arguments_and_metadata(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    am = AnomalyModel(PADIM, backend="onnxruntime", threshold=0.7, image_threshold=0.8)
    assert (am.threshold, am.image_threshold) == (0.7, 0.8)
    assert am.threshold_source == {"threshold": "argument", "image_threshold": "argument"}
    res = am.predict(ref(PADIM)["tiles"][1])
    np.testing.assert_array_equal(res.mask, res.anomaly_map > 0.7)
    # keys a user added to the file's metadata win over the graph's constants
    m = onnx.load(str(PADIM), load_external_data=False)
    for k, v in (("pixel_threshold", "0.6"), ("image_threshold", "0.65")):
        p = m.metadata_props.add()
        p.key, p.value = k, v
    shutil.copyfile(PADIM.parent / "model.onnx.data", tmp_path / "model.onnx.data")
    onnx.save(m, str(tmp_path / "model.onnx"))
    am = AnomalyModel(tmp_path / "model.onnx", backend="onnxruntime")
    assert (am.threshold, am.image_threshold) == (0.6, 0.65)
    assert am.threshold_source["threshold"] == "metadata"


# -- (d) what it refuses ---------------------------------------------------------------------
def test_refuses_what_is_not_an_anomalib_export(tmp_path: Path) -> None:
    from fissure import models

    with pytest.raises(ValueError, match="not an anomalib export: expected the outputs "
                       "pred_score, pred_label, anomaly_map, pred_mask"):
        AnomalyModel(models.default_backbone(), backend="onnxruntime")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(ModelLoadError):
        AnomalyModel(bad, backend="onnxruntime")
    with pytest.raises(FileNotFoundError):
        AnomalyModel(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="expected an anomalib export"):
        AnomalyModel(tmp_path / "model.pt")
    with pytest.raises(TypeError, match="path"):
        AnomalyModel(b"bytes")  # type: ignore[arg-type]


def test_refuses_an_anomalib_1x_export_and_a_missing_data_file(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # anomalib 1.x: the bare torch model, one output named "output", metadata.json beside it
    g = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "v1",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         [1, 3, 64, 64])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                         [1, 3, 64, 64])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    onnx.save(m, str(tmp_path / "model.onnx"))
    with pytest.raises(ValueError, match="anomalib 1.x export"):
        AnomalyModel(tmp_path / "model.onnx", backend="onnxruntime")
    # a 2.x export without the model.onnx.data beside it
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copyfile(PADIM, lone / "model.onnx")
    for backend in BACKENDS:
        with pytest.raises(ModelLoadError, match="model.onnx.data next to model.onnx"):
            AnomalyModel(lone / "model.onnx", backend=backend)


@pytest.mark.parametrize("kwargs,match", [
    ({"tile_size": 4}, "tile_size"), ({"overlap_ratio": 0.95}, "overlap_ratio"),
    ({"batch_size": 0}, "batch_size"), ({"specular": "inpaint"}, "specular"),
    ({"specular_dilate": -1}, "specular_dilate"), ({"threshold": float("nan")}, "threshold"),
])
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyModel(PADIM, backend="onnxruntime", **kwargs)


def test_bad_images() -> None:
    with AnomalyModel(PADIM, backend="onnxruntime") as am:
        with pytest.raises(TypeError, match="uint8"):
            am.predict(np.zeros((64, 64, 3), np.float64))
        with pytest.raises(ValueError, match="shape"):
            am.predict(np.zeros((64, 64, 5), np.uint8))
        with pytest.raises(ValueError, match="non-empty"):
            am.predict(np.zeros((0, 64, 3), np.uint8))
        with pytest.raises(FileNotFoundError):
            am.predict("no/such/image.png")
        # an image smaller than a tile is one tile of its own size
        res = am.predict(np.full((20, 30, 3), 128, np.uint8))
        assert res.anomaly_map.shape == (20, 30)


def test_a_graph_whose_map_follows_its_input(tmp_path: Path) -> None:
    """A hand-built graph with anomalib's input and outputs whose map is the tile's own
    channel mean: the probe finds no working size (256 then), and the stitched map must be
    the image's channel mean everywhere, overlaps included (every tile agrees there)."""
    pytest.importorskip("onnx")
    from oracles.anomaly_graphs import mean_map_export

    mean_map_export(tmp_path / "mean.onnx")
    img = mosaic(600, 700, seed=11)
    with AnomalyModel(tmp_path / "mean.onnx", backend="onnxruntime", overlap_ratio=0.3,
                      batch_size=2) as am:
        assert am.input_size == (256, 256) and am.tile_size == (256, 256)
        assert am.threshold_source == {"threshold": "default", "image_threshold": "default"}
        res = am.predict(img)
    want = img.astype(np.float64).mean(axis=2) / 255.0
    np.testing.assert_allclose(res.anomaly_map, want, atol=1e-5, rtol=0)
    assert res.score == pytest.approx(want.max(), abs=1e-5)


EFFICIENTAD = Path(os.environ.get(
    "FISSURE_ANOMALIB_EFFICIENTAD",
    str(Path.home() / ".cache" / "fissure" / "anomalib" / "efficientad_s" / "model.onnx")))


@pytest.mark.skipif(not EFFICIENTAD.is_file(),
                    reason="no EfficientAD-S export (models/build_anomalib.py writes it)")
def test_efficientad_export_when_built() -> None:
    """The EfficientAD-S export models/build_anomalib.py leaves in its cache (not shipped):
    ONNX Runtime equals anomalib's torch outputs, and two overlapping tiles stitch to each
    tile's own map where it alone covers a pixel."""
    r = ref(EFFICIENTAD)
    with open_model(EFFICIENTAD, "onnxruntime", "cpu") as m:
        out = m.run({"input": r["input"]})
    np.testing.assert_allclose(out["anomaly_map"], r["anomaly_map"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(out["pred_score"].reshape(-1), r["pred_score"].reshape(-1),
                               atol=1e-3, rtol=0)
    img = mosaic(256, 448, seed=13)
    want, cover, maps, scores = per_tile_loop(EFFICIENTAD, img, (256, 256), 0.25, False)
    with AnomalyModel(EFFICIENTAD, backend="onnxruntime") as am:
        assert am.input_size == (256, 256)
        res = am.predict(img)
    np.testing.assert_allclose(res.anomaly_map, want, atol=ATOL, rtol=0)
    for (x0, y0, x1, y1), amap in maps:
        alone = cover[y0:y1, x0:x1] == 1
        np.testing.assert_allclose(res.anomaly_map[y0:y1, x0:x1][alone], amap[alone],
                                   atol=ATOL, rtol=0)
    assert res.score == pytest.approx(max(scores), abs=ATOL)
