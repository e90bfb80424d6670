"""PatchCore patch embedding against OpenCV oracles of torch's ops: cv2.boxFilter with a zero
border (AvgPool2d(3, 1, 1), count_include_pad=True) and cv2.resize INTER_LINEAR on float32
(F.interpolate bilinear, align_corners=False, when upsampling)."""

from __future__ import annotations

import numpy as np
import pytest

from fissure.anomaly import embed_patches

cv2 = pytest.importorskip("cv2")


def ref_pool(plane: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return plane
    return cv2.boxFilter(plane, -1, (k, k), normalize=True, borderType=cv2.BORDER_CONSTANT)


def ref_embed(maps: list[np.ndarray], grid: tuple[int, int], pool: int) -> np.ndarray:
    b = maps[0].shape[0]
    cols = []
    for m in maps:
        out = np.empty((b, grid[0], grid[1], m.shape[1]), np.float32)
        for i in range(b):
            for c in range(m.shape[1]):
                p = ref_pool(m[i, c], pool)
                if p.shape != grid:
                    p = cv2.resize(p, (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR)
                out[i, :, :, c] = p
        cols.append(out)
    return np.concatenate(cols, axis=3)


@pytest.mark.parametrize("h,w", [(28, 28), (32, 32), (7, 9), (40, 61), (1, 1), (2, 3)])
@pytest.mark.parametrize("pool", [3, 1, 5])
def test_embed_equals_opencv_oracles(h: int, w: int, pool: int) -> None:
    rng = np.random.default_rng(h * 100 + w + pool)
    f8 = rng.standard_normal((2, 5, h, w)).astype(np.float32)
    f16 = rng.standard_normal((2, 7, (h + 1) // 2, (w + 1) // 2)).astype(np.float32)
    got = embed_patches([f8, f16], pool=pool)
    want = ref_embed([f8, f16], (h, w), pool)
    assert got.shape == (2, h, w, 12) and got.dtype == np.float32
    # cv2 computes the float weights its own way: agreement to float32 rounding of O(1) values
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_embed_reads_layers_in_order_and_explicit_grid() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((1, 3, 8, 8), dtype=np.float32)
    b = rng.random((1, 4, 4, 4), dtype=np.float32)
    e = embed_patches([a, b], grid=(16, 16), pool=1, num_threads=1)
    np.testing.assert_allclose(e, ref_embed([a, b], (16, 16), 1), rtol=1e-5, atol=1e-6)
    # layer 0 channels come first; a map already on the grid is copied exactly
    same = embed_patches([a], pool=1)
    np.testing.assert_array_equal(same[0], a[0].transpose(1, 2, 0))


def test_pool_counts_zero_padding() -> None:
    ones = np.ones((1, 1, 4, 4), np.float32)
    e = embed_patches([ones])[0, :, :, 0]
    assert e[0, 0] == np.float32(4 / 9) and e[0, 1] == np.float32(6 / 9) and e[1, 1] == 1.0


def test_embed_errors() -> None:
    good = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="non-empty list"):
        embed_patches([])
    with pytest.raises(ValueError, match="non-empty list"):
        embed_patches(good)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        embed_patches([np.zeros((2, 4, 4), np.float32)])
    with pytest.raises(ValueError, match="batch"):
        embed_patches([good, np.zeros((2, 2, 2, 2), np.float32)])
    with pytest.raises(TypeError, match="float"):
        embed_patches([good.astype(np.int32)])
    with pytest.raises(ValueError, match="finite"):
        embed_patches([np.full((1, 1, 2, 2), np.nan, np.float32)])
    with pytest.raises(ValueError, match="pool"):
        embed_patches([good], pool=2)
    with pytest.raises(ValueError, match="grid"):
        embed_patches([good], grid=(0, 4))
    # float64 input is converted visibly to float32
    assert embed_patches([good.astype(np.float64)]).dtype == np.float32
