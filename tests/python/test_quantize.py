"""fissure.quantize / ``fissure quantize``: INT8 models calibrated on the user's tiles.

Real models: PP-OCRv4 det (rapidocr-onnxruntime), the bundled PatchCore backbone, an
Ultralytics YOLOv8n export (nudenet's 320n.onnx, skipped when not installed). Oracles:

- the INT8 model's raw outputs against the float model's, both run by plain ONNX Runtime /
  OpenVINO sessions on tiles cut and normalised here with numpy (not fissure's preprocessing);
- the report's recall / precision recomputed from per-tile detections with a naive
  pure-Python one-to-one matcher;
- refusals: a gate no model can pass (min_recall 1.01), calibration on blank pages for text
  pages (a broken calibration), pages with nothing for the float model to find; nothing is
  written (the output folder stays empty);
- a corrupt model or bad arguments: a clear ValueError, exit status 2.

Small pages and tiles keep each quantization to a few seconds.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")
onnx = pytest.importorskip("onnx")

from fissure import TiledDetector  # noqa: E402
from fissure.cli import main  # noqa: E402
from fissure.quantize import (AccuracyGateError, _split, match_detections,  # noqa: E402
                              quantize_model)
from test_backends_real import _package_file  # noqa: E402
from test_detect_real import render_page  # noqa: E402

TILE = 128
OCR = dict(tile_size=TILE, overlap_ratio=0.0, decoder="probability_map",
           decoder_options={"mask_threshold": 0.3}, conf_threshold=0.5,
           preprocess={"mode": "none", "rgb": False, "mean": (0.5, 0.5, 0.5),
                       "std": (0.5, 0.5, 0.5)})


@pytest.fixture(scope="module")
def ocr_model() -> Path:
    return _package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("pages")
    out = []
    for s in range(5):
        img, _ = render_page(256, 300, 8, seed=40 + s, textured=True)
        p = d / f"page{s}.png"
        cv2.imwrite(str(p), img)
        out.append(p)
    return out


def _tiles_numpy(path: Path) -> np.ndarray:
    """The 128-px tiles of a page with overlap 0 (SAHI's grid: the last column snapped
    inward), normalised as rapidocr does: BGR, (x / 255 - 0.5) / 0.5. Plain numpy."""
    img = cv2.imread(str(path)).astype(np.float32)
    h, w = img.shape[:2]
    ys = sorted({min(y, h - TILE) for y in range(0, h, TILE)})
    xs = sorted({min(x, w - TILE) for x in range(0, w, TILE)})
    tiles = [img[y:y + TILE, x:x + TILE] for y in ys for x in xs]
    return np.stack([((t / 255.0 - 0.5) / 0.5).transpose(2, 0, 1) for t in tiles])


def naive_match(ref: list[tuple], found: list[tuple]) -> int:
    """One-to-one matches of ``found`` (box, score, class) to ``ref`` (box, class): highest
    score first, each to the free same-class reference with the largest IoU >= 0.5."""
    def iou(a: tuple, b: tuple) -> float:
        iw = min(a[2], b[2]) - max(a[0], b[0])
        ih = min(a[3], b[3]) - max(a[1], b[1])
        inter = max(iw, 0.0) * max(ih, 0.0)
        u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / u if u > 0 else 0.0

    free = [True] * len(ref)
    n = 0
    for box, _score, cls in sorted(found, key=lambda f: -f[1]):
        best, bj = -1.0, -1
        for j, (rbox, rcls) in enumerate(ref):
            if free[j] and rcls == cls:
                v = iou(box, rbox)
                if v > best:
                    best, bj = v, j
        if bj >= 0 and best >= 0.5:
            free[bj] = False
            n += 1
    return n


@pytest.fixture(scope="module")
def ocr_int8(ocr_model: Path, pages: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("q") / "ocr_int8.onnx"
    report = quantize_model(ocr_model, pages, out, min_recall=0.7, holdout=0.4, **OCR)
    return out, report


def test_int8_outputs_follow_the_float_model(ocr_model: Path, ocr_int8: tuple) -> None:
    out, report = ocr_int8
    assert report.output == str(out) and out.is_file() and report.passed
    q = onnx.load(str(out))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(i.data_type == onnx.TensorProto.INT8 for i in q.graph.initializer)
    assert out.stat().st_size < 0.6 * ocr_model.stat().st_size  # int8 weights
    sf = ort.InferenceSession(str(ocr_model), providers=["CPUExecutionProvider"])
    sq = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name = sf.get_inputs()[0].name
    for src in report.holdout_sources:
        x = _tiles_numpy(Path(src))
        a = sf.run(None, {name: x})[0]
        b = sq.run(None, {name: x})[0]
        assert a.shape == b.shape
        assert float(np.abs(a - b).mean()) < 0.02
        assert float(((a > 0.3) == (b > 0.3)).mean()) > 0.99


def test_report_recall_and_precision_recomputed(ocr_model: Path, ocr_int8: tuple) -> None:
    out, report = ocr_int8
    assert report.task == "detect" and report.holdout_images == 2
    assert report.calibration_images == 3
    from fissure.tiling import slice_grid

    kw = {k: v for k, v in OCR.items() if k != "overlap_ratio"}
    nf = nq = matched = tiles = 0
    with TiledDetector(str(ocr_model), backend="onnxruntime", overlap_ratio=0.0, **kw) as fd, \
            TiledDetector(str(out), backend="onnxruntime", overlap_ratio=0.0, **kw) as qd:
        for src in report.holdout_sources:
            img = cv2.imread(src)
            for t in slice_grid(*img.shape[:2], TILE, TILE, 0.0, 0.0):
                a, b = fd.detect_tiles(img, t[None]), qd.detect_tiles(img, t[None])
                ref = [(tuple(map(float, bx)), int(c)) for bx, c in zip(a.boxes, a.class_ids)]
                got = [(tuple(map(float, bx)), float(s), int(c))
                       for bx, s, c in zip(b.boxes, b.scores, b.class_ids)]
                nf, nq, tiles = nf + len(ref), nq + len(got), tiles + 1
                matched += naive_match(ref, got)
    assert tiles == report.holdout_tiles
    assert (nf, nq, matched) == (report.float_detections, report.int8_detections,
                                 report.matched)
    assert nf > 10
    assert report.recall == pytest.approx(matched / nf)
    assert report.precision == pytest.approx(matched / nq)
    assert report.recall >= 0.7


def test_match_detections_equals_the_naive_matcher() -> None:
    rng = np.random.default_rng(3)
    for _ in range(60):
        n, m = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        def boxes(k: int) -> np.ndarray:
            xy = rng.uniform(0, 50, (k, 2))
            return np.hstack([xy, xy + rng.uniform(4, 30, (k, 2))])
        rb, rc = boxes(n), rng.integers(0, 2, n)
        qb = np.vstack([rb[: m // 2] + rng.normal(0, 2, (min(m // 2, n), 4)), boxes(m)])[:m]
        qs, qc = rng.permutation(m).astype(float), rng.integers(0, 2, len(qb))
        ref = [(tuple(b), int(c)) for b, c in zip(rb, rc)]
        got = [(tuple(b), float(s), int(c)) for b, s, c in zip(qb, qs, qc)]
        assert match_detections(rb, rc, qb, qs, qc) == naive_match(ref, got)


def test_impossible_gate_refuses_and_writes_nothing(ocr_model: Path, pages: list[Path],
                                                      tmp_path: Path, capsys) -> None:
    out = tmp_path / "m" / "int8.onnx"
    rc = main(["quantize", str(ocr_model), *map(str, pages[:3]), "--out", str(out),
               "--tile-size", str(TILE), "--overlap-ratio", "0", "--decoder", "probability_map",
               "--decoder-option", "mask_threshold=0.3", "--conf-threshold", "0.5",
               "--mode", "none", "--bgr", "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5",
               "0.5", "--min-recall", "1.01", "--holdout", "0.34"])
    err = capsys.readouterr()
    assert rc == 2
    assert "refused" in err.err and "below min_recall 1.01" in err.err
    assert "nothing was written" in err.err
    assert "recall" in err.out  # the measurements are shown
    assert not out.exists() and os.listdir(out.parent) == []


def test_broken_calibration_is_refused(ocr_model: Path, pages: list[Path], tmp_path: Path) -> None:
    """Calibrated on blank pages, checked on a text page: the activation ranges of flat paper
    clip the text's, and the gate at 0.9 refuses the model."""
    blank = np.full((256, 300, 3), 255, np.uint8)
    text = cv2.imread(str(pages[0]))
    seed = next(s for s in range(100) if _split(4, 0.25, s)[1] == [3])
    images = [blank, blank.copy(), blank.copy(), text]
    with pytest.raises(AccuracyGateError, match="below min_recall 0.9") as ei:
        quantize_model(ocr_model, images, tmp_path / "int8.onnx", holdout=0.25, seed=seed,
                       **OCR)
    rep = ei.value.report
    assert rep.holdout_sources == ["images[3]"] and rep.float_detections > 5
    assert rep.recall < 0.9 and not rep.passed and rep.output is None
    assert os.listdir(tmp_path) == []


def test_nothing_to_check_against_is_refused(ocr_model: Path, tmp_path: Path) -> None:
    blank = [np.full((128, 128, 3), 255, np.uint8) for _ in range(2)]
    with pytest.raises(AccuracyGateError, match="finds nothing on the held-out tiles"):
        quantize_model(ocr_model, blank, tmp_path / "int8.onnx", holdout=0.5, **OCR)
    assert os.listdir(tmp_path) == []


def test_corrupt_model_and_bad_arguments(tmp_path: Path, pages: list[Path], ocr_model: Path,
                                         capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(ValueError, match="bad.onnx"):
        quantize_model(bad, pages[:2], tmp_path / "o.onnx", **OCR)
    rc = main(["quantize", str(bad), *map(str, pages[:2]), "--out", str(tmp_path / "o.onnx")])
    assert rc == 2 and "fissure: error:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 2 images"):
        quantize_model(ocr_model, pages[:1], tmp_path / "o.onnx", **OCR)
    with pytest.raises(ValueError, match="written as .onnx"):
        quantize_model(ocr_model, pages[:2], tmp_path / "o.xml", **OCR)
    with pytest.raises(ValueError, match="holdout"):
        quantize_model(ocr_model, pages[:2], tmp_path / "o.onnx", holdout=0.0, **OCR)
    with pytest.raises(ValueError, match="backend"):
        quantize_model(ocr_model, pages[:2], tmp_path / "o.onnx", backend="tensorrt", **OCR)
    with pytest.raises(FileNotFoundError):
        quantize_model(tmp_path / "missing.onnx", pages[:2], tmp_path / "o.onnx", **OCR)
    assert sorted(os.listdir(tmp_path)) == ["bad.onnx"]


def _backbone_tiles(path: Path) -> np.ndarray:
    """128-px tiles at overlap 0, normalised as the bundled backbone's manifest says: RGB,
    (x - 127) / 128. Plain numpy."""
    img = cv2.imread(str(path))[:, :, ::-1].astype(np.float32)
    h, w = img.shape[:2]
    tiles = [img[y:y + TILE, x:x + TILE] for y in range(0, h - TILE + 1, TILE)
             for x in range(0, w - TILE + 1, TILE)]
    return np.stack([((t - 127.0) / 128.0).transpose(2, 0, 1) for t in tiles])


@pytest.fixture(scope="module")
def textures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("tex")
    out = []
    for s in range(4):
        rng = np.random.default_rng(s)
        g = cv2.GaussianBlur(cv2.resize(rng.integers(0, 256, (64, 64), dtype=np.uint8),
                                        (256, 256)), (0, 0), 2)
        img = np.dstack([g, np.roll(g, 7, axis=0), np.roll(g, 11, axis=1)])
        p = d / f"t{s}.png"
        cv2.imwrite(str(p), img)
        out.append(p)
    return out


def test_backbone_feature_fidelity(textures: list[Path], tmp_path: Path) -> None:
    from fissure.models import default_backbone

    src = default_backbone()
    out = tmp_path / "bb_int8.onnx"
    r = quantize_model(src, textures, out, tile_size=TILE, overlap_ratio=0.0, holdout=0.5,
                       min_cosine=0.9)
    assert r.task == "features" and r.passed and out.is_file()
    assert r.cosine is not None and 0.9 <= r.cosine <= 1.0
    sf = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    sq = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    num = {"feat8": 0.0, "feat16": 0.0}
    den = dict(num)
    for p in r.holdout_sources:
        x = _backbone_tiles(Path(p))
        fa = dict(zip(["feat8", "feat16"], sf.run(["feat8", "feat16"], {"images": x})))
        fb = dict(zip(["feat8", "feat16"], sq.run(["feat8", "feat16"], {"images": x})))
        for k in num:
            num[k] += float(((fa[k].astype(np.float64) - fb[k]) ** 2).sum())
            den[k] += float((fa[k].astype(np.float64) ** 2).sum())
    for k in num:
        assert r.relative_error[k] == pytest.approx(np.sqrt(num[k] / den[k]), rel=1e-3)
        assert r.relative_error[k] < 0.5
    with pytest.raises(AccuracyGateError, match="below min_cosine 1.5"):
        quantize_model(src, textures, tmp_path / "x.onnx", tile_size=TILE, overlap_ratio=0.0,
                       holdout=0.5, min_cosine=1.5)
    assert sorted(os.listdir(tmp_path)) == ["bb_int8.onnx"]


@pytest.mark.skipif(importlib.util.find_spec("nncf") is None,
                    reason="NNCF (pip install 'fissure[quantize]') is not installed")
def test_openvino_nncf_ir(ocr_model: Path, pages: list[Path], tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    out = tmp_path / "ocr_int8.xml"
    r = quantize_model(ocr_model, pages, out, backend="openvino", min_recall=0.7, holdout=0.4,
                       **OCR)
    assert r.passed and out.is_file() and out.with_suffix(".bin").is_file()
    assert sorted(os.listdir(tmp_path)) == ["ocr_int8.bin", "ocr_int8.xml"]
    core = ov.Core()
    types = {op.get_type_name() for op in core.read_model(str(out)).get_ops()}
    assert "FakeQuantize" in types  # NNCF's INT8 marks
    cf = core.compile_model(str(ocr_model), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    cq = core.compile_model(str(out), "CPU")
    for src in r.holdout_sources:
        x = _tiles_numpy(Path(src))
        a, b = cf(x)[0], cq(x)[0]
        assert float(np.abs(a - b).mean()) < 0.02
        assert float(((a > 0.3) == (b > 0.3)).mean()) > 0.99


def _faces(n: int, seed: int) -> np.ndarray:
    """A 640x640 grey-noise canvas with n copies of skimage's astronaut photo (a face YOLOv8n
    of nudenet finds), scaled 0.4..0.6, at random places."""
    data = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(seed)
    src = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    canvas = rng.integers(90, 140, (640, 640, 3), dtype=np.uint8)
    for _ in range(n):
        s = float(rng.uniform(0.4, 0.6))
        a = cv2.resize(src, None, fx=s, fy=s)
        y, x = (int(rng.integers(0, 640 - a.shape[0])), int(rng.integers(0, 640 - a.shape[1])))
        canvas[y:y + a.shape[0], x:x + a.shape[1]] = a
    return canvas


def test_yolov8_export_quantizes_with_its_own_settings(tmp_path: Path) -> None:
    if importlib.util.find_spec("nudenet") is None:
        pytest.skip("nudenet (an Ultralytics YOLOv8n export) is not installed")
    model = _package_file("nudenet", "320n.onnx")
    images = [_faces(2, s) for s in range(6)]
    out = tmp_path / "y8_int8.onnx"
    # few faces: a loose gate (benchmarks/bench_quantize.py measures the recall on more)
    r = quantize_model(model, images, out, tile_size=320, overlap_ratio=0.0, holdout=0.5,
                       conf_threshold=0.2, min_recall=0.3)
    assert r.task == "detect" and r.input_size == (320, 320)  # from the model's metadata
    assert r.float_detections > 0 and r.passed
    q = onnx.load(str(out))
    meta = {p.key: p.value for p in q.metadata_props}
    assert "names" in meta and "stride" in meta  # the exporter's metadata kept
    assert r.settings["float_head_nodes"] > 0  # the box decoding kept in float
    sf = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    sq = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    img = images[int(r.holdout_sources[0].strip("images[]"))]
    x = (img[:320, :320, ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    a = sf.run(None, {sf.get_inputs()[0].name: x})[0]
    b = sq.run(None, {sq.get_inputs()[0].name: x})[0]
    # boxes (rows 0..3, pixels) within a few pixels, class scores within a few hundredths
    assert float(np.abs(a[:, :4] - b[:, :4]).mean()) < 3.0
    assert float(np.abs(a[:, 4:] - b[:, 4:]).max()) < 0.2


@pytest.mark.parametrize("backend,module", [("onnxruntime", "onnx"), ("openvino", "nncf")])
def test_missing_quantizer_is_named_before_any_work(monkeypatch, capsys, tmp_path: Path,
                                                    backend: str, module: str) -> None:
    """Without the quantizer's package: BackendNotInstalledError naming it and the extra, and
    exit 2 from the command, before any image is read and with nothing written."""
    import importlib.util as iu

    from fissure.backends import BackendNotInstalledError
    from fissure.cli import main
    from fissure.quantize import quantize_model

    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"never read")
    out = tmp_path / "o" / ("q.onnx" if backend == "onnxruntime" else "q.xml")
    with pytest.raises(BackendNotInstalledError, match=rf"needs {module}.*fissure\[quantize\]"):
        quantize_model(model, ["missing-a.png", "missing-b.png"], out, backend=backend)
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"not decoded either")
    assert main(["quantize", str(model), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                 "--out", str(out), "--backend", backend]) == 2
    err = capsys.readouterr().err
    assert f"needs {module}" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
