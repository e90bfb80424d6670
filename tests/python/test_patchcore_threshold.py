"""Image thresholds for a target false-alarm or miss rate (``threshold_for``, ``rates_at``,
``PatchCore.calibrate``) against a brute-force numpy reference that tries every candidate
threshold, and the position-aware search against a naive numpy nearest neighbour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fissure.anomaly import rates_at, threshold_for
from fissure.anomaly.positional import position_knn, position_regions


def candidates(*arrays: np.ndarray) -> np.ndarray:
    v = np.unique(np.concatenate(arrays))
    return np.unique(np.r_[v, np.nextafter(v, -np.inf)])


def naive_far(normal: np.ndarray, f: float) -> float:
    allowed = math.floor(f * normal.size + 1e-9)
    ok = [t for t in candidates(normal) if np.sum(normal > t) <= allowed]
    return float(min(ok))


def naive_miss(defective: np.ndarray, normal: np.ndarray, m: float) -> float:
    allowed = math.floor(m * defective.size + 1e-9)
    ok = [t for t in candidates(defective, normal) if np.sum(defective <= t) <= allowed]
    return float(max(ok))


@pytest.mark.parametrize("seed", range(6))
def test_threshold_for_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    normal = rng.normal(1.0, 0.3, rng.integers(5, 200))
    defective = rng.normal(1.6, 0.5, rng.integers(5, 120))
    if seed % 2:  # ties
        normal, defective = np.round(normal, 1), np.round(defective, 1)
    for f in (0.0, 0.01, 0.05, 0.2, 0.5):
        t = threshold_for(normal, false_alarm_rate=f)
        assert t == naive_far(normal, f)
        fa, _ = rates_at(t, normal)
        assert fa <= f + 1e-12
        assert fa == np.mean(normal > t)
    for m in (0.0, 0.1, 0.3, 0.9):
        t = threshold_for(normal, defective, miss_rate=m)
        assert t == naive_miss(defective, normal, m)
        fa, miss = rates_at(t, normal, defective)
        assert miss <= m + 1e-12 and miss == np.mean(defective <= t)


def test_threshold_for_rejects_bad_input() -> None:
    n = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="exactly one"):
        threshold_for(n)
    with pytest.raises(ValueError, match="exactly one"):
        threshold_for(n, n, false_alarm_rate=0.1, miss_rate=0.1)
    with pytest.raises(ValueError, match="defective"):
        threshold_for(n, miss_rate=0.1)
    with pytest.raises(ValueError, match="false_alarm_rate"):
        threshold_for(n, false_alarm_rate=1.0)
    with pytest.raises(ValueError, match="NaN"):
        threshold_for(np.array([1.0, np.nan]), false_alarm_rate=0.1)
    with pytest.raises(ValueError, match="at least one"):
        threshold_for(np.array([]), false_alarm_rate=0.1)
    with pytest.raises(TypeError):
        threshold_for(np.array(["a"]), false_alarm_rate=0.1)


def test_position_regions_cover_the_grid_once() -> None:
    seen = np.zeros((9, 7), int)
    for (y0, y1, x0, x1), (gy0, gy1, gx0, gx1) in position_regions(9, 7, 4, 2):
        seen[y0:y1, x0:x1] += 1
        assert gy0 == max(0, y0 - 2) and gy1 == min(9, y1 + 2)
        assert gx0 == max(0, x0 - 2) and gx1 == min(7, x1 + 2)
    assert (seen == 1).all()
    with pytest.raises(ValueError, match="block"):
        position_regions(9, 7, 0, 1)


@pytest.mark.parametrize("block,reach,k", [(4, 1, 1), (3, 0, 2), (5, 2, 3), (9, 0, 1)])
def test_position_knn_matches_naive(block: int, reach: int, k: int) -> None:
    rng = np.random.default_rng(block * 10 + reach)
    gh, gw, d = 9, 7, 5
    pos = np.stack(np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij"), -1).reshape(-1, 2)
    bank_pos = np.tile(pos, (3, 1))[rng.permutation(3 * gh * gw)[:120]]
    bank = rng.normal(size=(len(bank_pos), d)).astype(np.float32)
    q = rng.normal(size=(2 * gh * gw, d)).astype(np.float32)
    dist, ids = position_knn(bank, bank_pos, q, (gh, gw), block, reach, k)
    qpos = np.tile(pos, (2, 1))
    for i in range(len(q)):
        y, x = qpos[i]
        y0, x0 = (y // block) * block, (x // block) * block
        y1, x1 = min(y0 + block, gh), min(x0 + block, gw)
        ok = np.flatnonzero((bank_pos[:, 0] >= y0 - reach) & (bank_pos[:, 0] < y1 + reach)
                            & (bank_pos[:, 1] >= x0 - reach) & (bank_pos[:, 1] < x1 + reach))
        dd = ((bank[ok].astype(np.float64) - q[i]) ** 2).sum(1)
        order = np.argsort(dd, kind="stable")[:k]
        n = len(order)
        np.testing.assert_array_equal(ids[i, :n], ok[order])
        np.testing.assert_allclose(dist[i, :n], dd[order], rtol=1e-4, atol=1e-5)
        assert (ids[i, n:] == -1).all()


def test_patchcore_calibrate(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("safetensors")
    cv2 = pytest.importorskip("cv2")
    from fissure.anomaly import PatchCore
    from test_patchcore import pool_backbone, texture

    bb = pool_backbone(tmp_path)
    pc = PatchCore(bb, tile_size=None, coreset_ratio=0.25, backend="onnxruntime",
                   precision=None)
    pc.fit([texture(96, 96, s) for s in range(6)])
    normal = [texture(96, 96, 100 + s) for s in range(10)]
    defective = []
    for s in range(6):
        img = texture(96, 96, 200 + s)
        cv2.circle(img, (48, 48), 6 + s, (255, 255, 255), -1)
        defective.append(img)
    ns = np.array([pc.predict(x).score for x in normal])
    ds = np.array([pc.predict(x).score for x in defective])
    old = pc.image_threshold
    rep = pc.calibrate(normal, defective, false_alarm_rate=0.1)
    assert rep["previous"] == old
    assert rep["image_threshold"] == pc.image_threshold == naive_far(ns, 0.1)
    assert rep["false_alarm_rate"] == np.mean(ns > pc.image_threshold) <= 0.1
    assert rep["miss_rate"] == np.mean(ds <= pc.image_threshold)
    assert rep["previous_miss_rate"] == np.mean(ds <= old)
    np.testing.assert_array_equal(rep["scores"]["normal"], ns)
    rep = pc.calibrate(normal, defective, miss_rate=0.0)
    assert pc.image_threshold == naive_miss(ds, ns, 0.0)
    assert all(pc.predict(x).is_anomalous for x in defective)
    back = PatchCore.load(pc.save(tmp_path / "bank.safetensors"), bb, backend="onnxruntime",
                          precision=None)
    assert back.image_threshold == pc.image_threshold
    assert back.calibration["image_target"]["miss_rate"] == 0.0
    with pytest.raises(ValueError, match="miss_rate needs"):
        pc.calibrate(normal, miss_rate=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        pc.calibrate(normal)
