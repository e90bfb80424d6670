"""`fissure anomaly predict MODEL ...` with an anomalib export (tests/data/anomalib) in place
of a memory bank. Oracle: the Python API (AnomalyModel.predict on the same arrays gives the
scores, regions and map the command writes)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import AnomalyModel  # noqa: E402
from fissure.cli import main  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "anomalib"
PADIM = DATA / "padim" / "model.onnx"
PADIM_IR = DATA / "padim" / "model.xml"
FAST = ["--backend", "onnxruntime", "--threads", "2", "--quiet"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, dict]:
    """Two mosaics of the reference tiles (normal and defective), and a broken file."""
    d = tmp_path_factory.mktemp("anomalib_cli")
    with np.load(DATA / "padim" / "reference.npz") as z:
        tiles = z["tiles"]
    rng = np.random.default_rng(0)
    arrays = {}
    for name in ("a", "b"):
        rows = [np.concatenate([tiles[rng.integers(len(tiles))] for _ in range(5)], 1)
                for _ in range(4)]
        arrays[name] = np.ascontiguousarray(np.concatenate(rows, 0)[:250, :310])
        cv2.imwrite(str(d / f"{name}.png"), arrays[name])
    (d / "broken.png").write_bytes(b"not a png")
    return d, arrays


def test_predict_with_an_export_matches_the_api(images, tmp_path) -> None:
    d, arrays = images
    out = tmp_path / "out"
    rc, line, err = run_cli(["anomaly", "predict", str(PADIM), str(d), "--out", str(out),
                             "--overlay-format", "png", *FAST])
    assert rc == 1, err  # the broken file is skipped
    assert "skipped" in err and "broken.png" in err
    assert "2 image(s)" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == str(PADIM) and len(summary["images"]) == 2
    assert summary["pixel_threshold"] == 0.5 and summary["image_threshold"] == 0.5
    with AnomalyModel(PADIM, backend="onnxruntime", num_threads=2) as am:
        for name, img in arrays.items():
            doc = json.loads((out / f"{name}.json").read_text())
            res = am.predict(img)
            assert doc["score"] == pytest.approx(res.score, abs=1e-6)
            assert doc["is_anomalous"] == res.is_anomalous
            assert (doc["height"], doc["width"]) == img.shape[:2]
            assert [r["box"] for r in doc["regions"]] == res.boxes.tolist()
            pic = cv2.imread(str(out / f"{name}_heatmap.png"))
            assert pic is not None and pic.shape[:2] == img.shape[:2]
    assert any(json.loads((out / f"{n}.json").read_text())["regions"] for n in arrays)


def test_predict_with_openvino_ir_and_options(images, tmp_path) -> None:
    pytest.importorskip("openvino")
    d, arrays = images
    out = tmp_path / "out"
    rc, _, err = run_cli(["anomaly", "predict", str(PADIM_IR), str(d / "a.png"), "--out",
                          str(out), "--no-overlay", "--threshold", "0.8", "--tile-size", "96",
                          "--overlap-ratio", "0.5", "--specular", "mask", "--backend",
                          "openvino", "--threads", "2", "--quiet"])
    assert rc == 0, err
    doc = json.loads((out / "a.json").read_text())
    assert doc["pixel_threshold"] == 0.8
    with AnomalyModel(PADIM_IR, tile_size=96, overlap_ratio=0.5, threshold=0.8,
                      specular="mask", backend="openvino") as am:
        res = am.predict(arrays["a"])
    assert doc["score"] == pytest.approx(res.score, abs=1e-5)
    assert not list(out.glob("*_heatmap.*"))


def test_export_errors_exit_2_with_one_line(images, tmp_path) -> None:
    from fissure import models

    d, _ = images
    img = str(d / "a.png")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 400, np.uint8)))
    cases = [
        (corrupt, [], "cannot use the anomalib export"),
        (models.default_backbone(), [], "not an anomalib export"),
        (tmp_path / "none.onnx", [], "not found"),
        (PADIM, ["--tile-size", "4"], "tile_size"),
        (PADIM, ["--backbone", str(PADIM)], "--backbone: only for a PatchCore memory bank"),
        (tmp_path / "bank.safetensors", ["--tile-size", "64"], "only for an anomalib export"),
    ]
    for model, extra, words in cases:
        rc, _, err = run_cli(["anomaly", "predict", str(model), img, "--out",
                              str(tmp_path / "o"), *extra, *FAST])
        assert rc == 2, (model, err)
        assert words in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()
