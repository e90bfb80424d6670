"""AUROC against the pairwise definition (P(score_pos > score_neg) + 0.5 P(tie)).

The heatmap overlay's tests are in test_overlay.py."""

from __future__ import annotations

import numpy as np
import pytest

from fissure.anomaly import auroc, pixel_auroc


def pairwise_auc(s, y):
    pos, neg = s[y], s[~y]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


@pytest.mark.parametrize("seed", range(6))
def test_auroc_equals_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    # coarse scores so that ties are common
    s = np.round(rng.normal(size=n) * (3 if seed % 2 else 1000)) / 3
    y = rng.random(n) < rng.uniform(0.1, 0.9)
    y[0], y[1] = True, False
    assert auroc(s, y) == pytest.approx(pairwise_auc(s, y), abs=1e-12)
    assert auroc(s, y.astype(np.int64)) == pytest.approx(pairwise_auc(s, y), abs=1e-12)


def test_auroc_known_values():
    y = np.array([0, 0, 1, 1], bool)
    assert auroc(np.array([0.1, 0.2, 0.3, 0.4]), y) == 1.0
    assert auroc(np.array([0.4, 0.3, 0.2, 0.1]), y) == 0.0
    assert auroc(np.ones(4), y) == 0.5


def test_pixel_auroc_concatenates_maps():
    rng = np.random.default_rng(3)
    maps = [rng.random((7, 9)).astype(np.float32) for _ in range(3)]
    masks = [rng.random((7, 9)) < 0.3 for _ in range(3)]
    s = np.concatenate([m.ravel() for m in maps])
    y = np.concatenate([m.ravel() for m in masks])
    assert pixel_auroc(maps, masks) == pytest.approx(pairwise_auc(s.astype(np.float64), y))
    assert pixel_auroc(maps[0], masks[0]) == pytest.approx(
        pairwise_auc(maps[0].ravel().astype(np.float64), masks[0].ravel()))


@pytest.mark.parametrize("scores,labels,exc", [
    (np.zeros(3), np.zeros(3, bool), ValueError),          # one class
    (np.zeros(3), np.zeros(4, bool), ValueError),          # lengths
    (np.array([0.0, np.nan]), np.array([0, 1], bool), ValueError),
    (np.array([0, 1]), np.array([0, 2]), ValueError),
    (np.array(["a", "b"]), np.array([0, 1]), TypeError),
])
def test_auroc_bad_input(scores, labels, exc):
    with pytest.raises(exc):
        auroc(scores, labels)


def test_pixel_auroc_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc([np.zeros((2, 2))], [np.zeros((2, 3), bool)])
