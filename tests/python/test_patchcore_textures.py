"""PatchCore on a real texture with small planted defects, scored against the defects' exact
ground-truth masks: tiled PatchCore at native resolution localises them, one whole-image pass
at low resolution does not.

A fast version of benchmarks/bench_textures.py (docs/patchcore_textures.md): scikit-image's
CC0 ``brick`` texture (512x512 gray), its top-left quarter for training and the quarter below
it for testing (no test pixel is seen in training), each upscaled x4 with ``INTER_CUBIC`` to
1024x1024 (1 MP) and converted to BGR; four flips of the training quarter are the normal
samples. Two test images carry 8 defects each from ``plant_defects`` (window half-size
12..32 px: defects of tens of pixels); a third is the test quarter without defects.

The whole-image model sees the picture at the scale the benchmark's does (its 2048-px-wide
images at 640 px): long side 320 here, where a defect of 30 px shrinks to ~5 px, under one
stride-8 cell. Floors come from the benchmark and from 11 defect placements here
(``FISSURE_TEST_SEED`` 0..9 and the default, PatchCore's default threshold margin 0.25):
tiled pixel AUROC 0.998..0.9995 with 14..16 of the 16 defects found and every defect image
scored above the clean one; whole image 0.93..0.98 with 1..4 found. The assertions keep
margins below those.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
skdata = pytest.importorskip("skimage.data")

from fissure.anomaly import PatchCore, auroc, pixel_auroc
from fissure.anomaly.synthetic import plant_defects
from fissure.demo import evaluate

SCALE = 4
N_DEFECTS = 8


def upscale_bgr(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    up = cv2.resize(gray, (w * SCALE, h * SCALE), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(up, cv2.COLOR_GRAY2BGR)


def flips(a: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(f) for f in (a, a[:, ::-1], a[::-1], a[::-1, ::-1])]


@pytest.fixture(scope="module")
def scored() -> dict:
    gray = skdata.brick()
    assert gray.shape == (512, 512) and gray.dtype == np.uint8
    train = flips(upscale_bgr(gray[:256, :256]))
    test = upscale_bgr(gray[256:, :256])
    seed = int(os.environ.get("FISSURE_TEST_SEED", "20261123")) % 100000
    surfaces = [plant_defects(img, N_DEFECTS, size_range=(12, 32), margin=32, seed=seed * 10 + i)
                for i, img in enumerate(flips(test)[:2])]
    assert all(len(s.defects) == N_DEFECTS for s in surfaces)
    models = {
        "tiled": PatchCore(tile_size=512, coreset_ratio=0.01, holdout=0.25),
        "whole": PatchCore(tile_size=None, input_size=(320, 320), coreset_ratio=1.0, holdout=0.25),
    }
    out: dict[str, Any] = {}
    for name, pc in models.items():
        pc.fit(train)
        res = [pc.predict(s.image) for s in surfaces]
        clean = pc.predict(test)
        evs = [evaluate(r.mask, s.labels) for r, s in zip(res, surfaces)]
        out[name] = {
            "pixel_auroc": pixel_auroc([r.anomaly_map for r in res] + [clean.anomaly_map],
                                       [s.labels > 0 for s in surfaces]
                                       + [np.zeros(test.shape[:2], bool)]),
            "found": sum(len(e["found"]) for e in evs),
            "scores": [r.score for r in res],
            "clean_score": clean.score,
            "shape": res[0].anomaly_map.shape,
            "mask_shape": res[0].mask.shape,
        }
    out["planted"] = sum(len(s.defects) for s in surfaces)
    return out


def test_maps_come_back_at_full_resolution(scored) -> None:
    for name in ("tiled", "whole"):
        assert scored[name]["shape"] == (1024, 1024)
        assert scored[name]["mask_shape"] == (1024, 1024)


def test_tiled_localises_small_defects(scored) -> None:
    t = scored["tiled"]
    assert t["pixel_auroc"] > 0.99
    # most planted defects are touched by a region of the calibrated mask
    assert t["found"] >= 0.75 * scored["planted"]


def test_tiled_scores_defect_images_above_the_clean_one(scored) -> None:
    t = scored["tiled"]
    n = len(t["scores"])
    assert auroc(np.array(t["scores"] + [t["clean_score"]]),
                 np.array([True] * n + [False])) == 1.0


def test_tiled_beats_whole_image(scored) -> None:
    t, w = scored["tiled"], scored["whole"]
    assert t["pixel_auroc"] > w["pixel_auroc"] + 0.005
    assert t["found"] >= w["found"] + 4
