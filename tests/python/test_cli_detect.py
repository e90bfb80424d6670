"""`fissure detect`: per-image COCO JSON and overlays, bad files reported and skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fissure.cli import main

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
from test_detect import blob_model, planted, sort_rows  # noqa: E402


def test_detect_command_writes_json_and_overlays(tmp_path, capsys) -> None:
    model = tmp_path / "blobs.onnx"
    model.write_bytes(blob_model())
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    a, gt_a = planted(600, 900, 15, seed=11)
    b, gt_b = planted(500, 500, 6, seed=12)
    cv2.imwrite(str(imgs / "a.png"), a)
    cv2.imwrite(str(imgs / "b.png"), b[:, :, 0])  # grayscale file
    (imgs / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    rc = main(["detect", str(model), str(imgs), "--out", str(out), "--backend", "onnxruntime",
               "--tile-size", "256", "--conf-threshold", "0.5", "--classes", "blob", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1  # one input could not be read
    assert "skipped" in captured.err and "broken.png" in captured.err
    assert "2 image(s)" in captured.out
    for stem, gt, shape in (("a", gt_a, a.shape), ("b", gt_b, b.shape)):
        doc = json.loads((out / f"{stem}.json").read_text())
        assert doc["image"]["height"] == shape[0] and doc["image"]["width"] == shape[1]
        assert doc["categories"] == [{"id": 0, "name": "blob"}]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in
                          (ann["bbox"] for ann in doc["annotations"])])
        got = {tuple(r) for r in sort_rows(boxes).tolist()}
        assert {tuple(r) for r in sort_rows(gt).tolist()} <= got
        for ann in doc["annotations"]:
            assert ann["image_id"] == doc["image"]["id"]
            assert ann["segmentation"]["size"] == [shape[0], shape[1]]
        overlay = cv2.imread(str(out / f"{stem}_overlay.jpg"))
        assert overlay.shape[:2] == shape[:2]
    assert not (out / "broken.json").exists()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_detect_command_errors(tmp_path, capsys) -> None:
    assert main(["detect", str(tmp_path / "none.onnx"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    model = tmp_path / "blobs.onnx"
    model.write_bytes(blob_model())
    assert main(["detect", str(model), str(tmp_path / "empty_dir_*.png"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no input images" in err
