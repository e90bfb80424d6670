"""TiledDetector on a real pretrained model: PP-OCRv4 det (DBNet) from rapidocr-onnxruntime.

Small words rendered with cv2.putText on large pages are a real small-object task with exact
ground truth (the renderer's cv2.getTextSize boxes). The oracles:

- the ground truth: tiled detection (640-px tiles, overlap 0.2, SAHI greedy NMM) finds almost
  every word, once, and nothing on the blank parts of the page;
- the same page resized into one 640 input (one tile over the whole page) finds almost
  nothing: the reason to tile at all;
- OpenVINO (f32) and ONNX Runtime, two independent runtimes, find the same words with the
  same boxes (within a pixel);
- SAHI's ``get_slice_bboxes`` gives the tile count.

Preprocessing matches rapidocr's ``ch_ppocr_det`` (``DetPreProcess``): the cv2 image as
loaded (BGR, no channel swap), ``(x / 255 - 0.5) / 0.5``; tiles fed at 640x640 unscaled.
DBNet's boxes are its shrunk text kernels (no unclip here), so a word counts as found when a
detection's centre lies inside its box (padded by 2 px) and at least half of the
detection's box lies inside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

from fissure import TiledDetector
from fissure.preprocess import PreprocessConfig
from test_backends_real import _package_file  # noqa: E402

MODEL_REL = "models/ch_PP-OCRv4_det_infer.onnx"
WORDS = ("defect", "crack", "scratch", "fissure", "tile", "glare", "panel", "cell", "7391",
         "A-42", "edge", "burr", "dent", "pit", "void", "chip", "x0.5", "lot 9", "seam", "QC")
CELL = (64, 150)  # (h, w): one word at most per cell, so neighbours stay apart
PAD = 2  # px of slack around a ground-truth box


def render_page(h: int, w: int, n: int, seed: int, *, textured: bool) -> tuple[np.ndarray, np.ndarray]:
    """A light page (white, or a blurred light-grey texture) with n small dark words, one per
    cell of a 64x150 grid, scale 0.45..0.7 (text 10..16 px tall); (BGR image, ground-truth
    boxes from cv2.getTextSize): :func:`fissure.bench.text_page`."""
    from fissure.bench import text_page

    return text_page(h, w, n, seed, textured=textured, words=WORDS, cell=CELL)


def match(gt: np.ndarray, det: np.ndarray) -> np.ndarray:
    """(G, D) bool: detection d lies on word g (centre inside the padded GT box, and at least
    half of the detection's box inside it)."""
    det = np.asarray(det, np.float64).reshape(-1, 4)
    g = gt + np.array([-PAD, -PAD, PAD, PAD])
    cx, cy = (det[:, 0] + det[:, 2]) / 2, (det[:, 1] + det[:, 3]) / 2
    centre = ((cx[None] >= g[:, 0, None]) & (cx[None] < g[:, 2, None])
              & (cy[None] >= g[:, 1, None]) & (cy[None] < g[:, 3, None]))
    iw = np.minimum(det[None, :, 2], g[:, 2, None]) - np.maximum(det[None, :, 0], g[:, 0, None])
    ih = np.minimum(det[None, :, 3], g[:, 3, None]) - np.maximum(det[None, :, 1], g[:, 1, None])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
    return centre & (inter >= 0.5 * area[None])


def dbnet_config(mode: str = "none") -> PreprocessConfig:
    return PreprocessConfig(input_size=(640, 640), mode=mode, rgb=False,  # type: ignore[arg-type]
                            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def detector(model: Path, backend: str, **kw: object) -> TiledDetector:
    args: dict = {
        "backend": backend, "device": "cpu", "tile_size": 640, "overlap_ratio": 0.2,
        "decoder": "probability_map", "decoder_options": {"mask_threshold": 0.3},
        "conf_threshold": 0.5, "preprocess": dbnet_config(), "num_threads": -1,
    }
    if backend == "openvino":
        args["precision"] = "f32"
    args.update(kw)
    return TiledDetector(str(model), **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model() -> Path:
    return _package_file("rapidocr_onnxruntime", MODEL_REL)


@pytest.fixture(scope="module")
def page12() -> tuple[np.ndarray, np.ndarray]:
    return render_page(3000, 4000, 900, seed=12, textured=True)


@pytest.fixture(scope="module")
def ort12(model: Path, page12: tuple[np.ndarray, np.ndarray]) -> tuple:
    img, _ = page12
    with detector(model, "onnxruntime") as det:
        found = det(img)
        return found, det.stats


def test_tiled_recall_on_12mp_page(page12: tuple, ort12: tuple) -> None:
    _img, gt = page12
    found, stats = ort12
    slicing = pytest.importorskip("sahi.slicing")
    assert stats.tiles == len(slicing.get_slice_bboxes(3000, 4000, 640, 640, 0.2, 0.2)) == 48
    m = match(gt, found.boxes)
    per_word = m.sum(axis=1)
    recall = float((per_word > 0).mean())
    assert recall >= 0.95, recall
    # Merged across tile overlaps: a word seen by two or four tiles is one detection.
    assert float((per_word > 1).mean()) <= 0.02, np.bincount(per_word)
    # DBNet kernel boxes: inside the word, never a whole line of neighbours.
    assert np.all(np.asarray(found.boxes)[:, 2] - np.asarray(found.boxes)[:, 0] <= 160)
    assert found.masks is not None and len(found.masks) == len(found)


def test_few_false_positives_and_none_on_blank_paper(page12: tuple, ort12: tuple) -> None:
    _, gt = page12
    found, _ = ort12
    boxes = np.asarray(found.boxes, np.float64)
    on_word = match(gt, boxes).any(axis=0)
    assert (~on_word).sum() <= max(2, int(0.01 * len(boxes))), boxes[~on_word][:10]
    # No detection at all more than 8 px away from every word (the blank, textured paper).
    g = gt + np.array([-8, -8, 8, 8])
    touches = ((boxes[None, :, 0] < g[:, 2, None]) & (boxes[None, :, 2] > g[:, 0, None])
               & (boxes[None, :, 1] < g[:, 3, None]) & (boxes[None, :, 3] > g[:, 1, None]))
    assert touches.any(axis=0).all(), boxes[~touches.any(axis=0)][:10]


def test_whole_page_in_one_input_finds_far_fewer(model: Path, page12: tuple, ort12: tuple) -> None:
    """The page resized into one 640 input (one tile over the whole page, letterboxed as the
    detector's full_image_pass does) against the tiles."""
    img, gt = page12
    h, w = img.shape[:2]
    with detector(model, "onnxruntime", tile_size=(h, w), overlap_ratio=0.0,
                  preprocess=dbnet_config("letterbox")) as det:
        whole = det(img)
        assert det.stats.tiles == 1
    recall_whole = float(match(gt, whole.boxes).any(axis=1).mean())
    recall_tiled = float(match(gt, ort12[0].boxes).any(axis=1).mean())
    assert recall_whole < 0.3, recall_whole
    assert recall_tiled - recall_whole > 0.6


def test_openvino_f32_agrees_with_onnxruntime(model: Path, page12: tuple, ort12: tuple) -> None:
    pytest.importorskip("openvino")
    img, gt = page12
    with detector(model, "openvino") as det:
        ov = det(img)
    ort = ort12[0]
    m_ort, m_ov = match(gt, ort.boxes), match(gt, ov.boxes)
    np.testing.assert_array_equal(m_ort.any(axis=1), m_ov.any(axis=1))
    # Box for box: pair each ORT detection with the OpenVINO one of the nearest box.
    a, b = np.asarray(ort.boxes, np.float64), np.asarray(ov.boxes, np.float64)
    assert len(a) == len(b)
    d = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)
    nearest = d.min(axis=1)
    assert nearest.max() <= 1.0, np.sort(nearest)[-5:]
    assert len(set(d.argmin(axis=1).tolist())) == len(b)  # a one-to-one pairing


def test_tiled_recall_on_24mp_page_with_2000_words(model: Path) -> None:
    img, gt = render_page(4000, 6000, 2000, seed=24, textured=False)
    with detector(model, "onnxruntime") as det:
        found = det(img)
        assert det.stats.tiles == 96
        assert 0 < det.stats.model_s <= det.stats.total_s
    per_word = match(gt, found.boxes).sum(axis=1)
    assert float((per_word > 0).mean()) >= 0.95
    assert float((per_word > 1).mean()) <= 0.02
    on_word = match(gt, found.boxes).any(axis=0)
    assert (~on_word).sum() <= max(2, int(0.01 * len(found)))
