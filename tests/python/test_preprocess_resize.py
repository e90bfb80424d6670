"""The preprocessing resize and normalisation at every SIMD level this CPU has, against
cv2.resize (INTER_LINEAR / INTER_NEAREST / INTER_AREA) on uint8 and numpy float32 arithmetic:
hypothesis-drawn sizes (shrinking, enlarging, mixed, integer factors, 1-pixel edges), crops read
in place, and the sizes of tiled inference (640 -> 640, 1024 / 800 -> 640, 320 -> 640,
letterbox)."""

from __future__ import annotations

import numpy as np
import pytest

from fissure import PreprocessConfig, _core, preprocess_tiles

cv2 = pytest.importorskip("cv2")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from oracles.simd import forced_level  # noqa: E402
from test_preprocess import CV_INTERP, oracle  # noqa: E402

LEVELS = ["scalar"] + (["avx2"] if _core.cpu_simd_level() in ("avx2", "avx512") else [])


@pytest.fixture(params=LEVELS)
def level(request):
    with forced_level("preprocess", request.param) as got:
        assert got == request.param
        yield request.param


def _check(img: np.ndarray, dh: int, dw: int, interp: str) -> None:
    ours = _core._resize_u8(img, dh, dw, interp)
    ref = cv2.resize(img, (dw, dh), interpolation=CV_INTERP[interp])
    np.testing.assert_array_equal(ours, ref, err_msg=f"{img.shape[:2]} -> {(dh, dw)} {interp}")


sizes = st.integers(1, 240)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(sh=sizes, sw=sizes, dh=sizes, dw=sizes, interp=st.sampled_from(list(CV_INTERP)),
       seed=st.integers(0, 2**32 - 1))
def test_resize_u8_hypothesis_equals_cv2(level, sh, sw, dh, dw, interp, seed) -> None:
    img = np.random.default_rng(seed).integers(0, 256, (sh, sw, 3), dtype=np.uint8)
    _check(img, dh, dw, interp)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(dh=st.integers(1, 120), dw=st.integers(1, 120), kx=st.integers(1, 5),
       ky=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_area_integer_factors_equal_cv2(level, dh, dw, kx, ky, seed) -> None:
    # cv2's block-mean path ((s + 2) >> 2 for 2 x 2, else the float mean rounded to even).
    img = np.random.default_rng(seed).integers(0, 256, (dh * ky, dw * kx, 3), dtype=np.uint8)
    for interp in CV_INTERP:
        _check(img, dh, dw, interp)


@pytest.mark.parametrize("interp", list(CV_INTERP))
@pytest.mark.parametrize("src,dst", [((640, 640), (640, 640)), ((1024, 1024), (640, 640)),
                                     ((800, 800), (640, 640)), ((320, 320), (640, 640)),
                                     ((480, 640), (640, 640)), ((1, 640), (640, 640)),
                                     ((640, 1), (3, 640)), ((2, 2), (1, 1)),
                                     # one axis kept, the other shrunk / enlarged
                                     ((480, 640), (480, 500)), ((100, 37), (61, 37)),
                                     ((100, 37), (100, 90)), ((50, 60), (20, 60))])
def test_tiled_inference_sizes_equal_cv2(level, src, dst, interp) -> None:
    rng = np.random.default_rng(sum(src) + sum(dst))
    img = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    _check(img, *dst, interp)
    # Smooth content too: equal neighbours make ties of the rounding rules common.
    ramp = np.broadcast_to(np.arange(src[1], dtype=np.uint8)[None, :, None], (*src, 3)).copy()
    _check(ramp, *dst, interp)


@pytest.mark.parametrize("interp", list(CV_INTERP))
@pytest.mark.parametrize("mode", ["resize", "letterbox"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_batch_equals_cv2_numpy_oracle(level, interp, mode, dtype) -> None:
    rng = np.random.default_rng(21)
    image = rng.integers(0, 256, (1100, 1300, 3), dtype=np.uint8)
    tiles = np.array([[0, 0, 640, 640], [100, 50, 1124, 1074], [300, 200, 1100, 1000],
                      [900, 700, 1220, 1020], [0, 0, 1300, 1100], [5, 7, 8, 9],
                      [1290, 0, 1300, 1100]], np.int64)
    cfg = PreprocessConfig(input_size=(640, 640), mode=mode, interpolation=interp, dtype=dtype,
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    np.testing.assert_array_equal(preprocess_tiles(image, tiles, cfg), oracle(image, tiles, cfg))


def test_normalisation_identity_path_every_value(level) -> None:
    # All 256 values in every channel through the normaliser (no resize), odd row lengths for
    # the kernels' tails, RGB and BGR, with and without the division.
    img = np.stack(np.meshgrid(np.arange(256), np.arange(3), indexing="ij"), -1)[..., 0]
    img = np.stack([np.roll(img, k, 0) for k in range(3)], -1).astype(np.uint8)  # (256, 3, 3)
    img = np.ascontiguousarray(np.tile(img.reshape(1, 256 * 3, 3), (3, 1, 1))[:, :767])
    tiles = np.array([[0, 0, 767, 3]], np.int64)
    for rgb in (True, False):
        for mean, std in [((0, 0, 0), (1, 1, 1)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]:
            for dtype in ("float32", "float16"):
                cfg = PreprocessConfig(input_size=(3, 767), mode="none", rgb=rgb, mean=mean,
                                       std=std, dtype=dtype)
                np.testing.assert_array_equal(preprocess_tiles(img, tiles, cfg),
                                              oracle(img, tiles, cfg))


def test_crops_read_in_place(level) -> None:
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    for view in (big[13:613, 7:887], big[::-1], big[::2]):
        for interp in CV_INTERP:
            cfg = PreprocessConfig(input_size=(256, 320), interpolation=interp)
            tiles = np.array([[0, 0, view.shape[1], view.shape[0]], [3, 1, 500, 300]], np.int64)
            np.testing.assert_array_equal(preprocess_tiles(view, tiles, cfg),
                                          oracle(np.ascontiguousarray(view), tiles, cfg))


def test_simd_level_hook_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="level"):
        _core._preprocess_force_simd("sse4")
    assert _core.preprocess_simd_level() in ("scalar", "avx2")


def test_batch_feeder_passes_area_through() -> None:
    # The double-buffered feeder takes the same interpolation names as preprocess_tiles.
    rng = np.random.default_rng(8)
    image = rng.integers(0, 256, (900, 1000, 3), dtype=np.uint8)
    tiles = np.array([[0, 0, 800, 800], [100, 50, 900, 850], [10, 10, 330, 330]], np.int64)
    cfg = PreprocessConfig(input_size=(320, 320), interpolation="area")
    ref = oracle(image, tiles, cfg)
    slots = [np.empty((2, 3, 320, 320), np.float32) for _ in range(2)]
    feeder = _core.BatchFeeder(image, tiles, slots[0], slots[1], 2, 320, 320,
                               interpolation="area")
    got = []
    try:
        for b in range(feeder.num_batches):
            feeder.start(b)
            slot = feeder.wait(b)
            got.append(slots[slot][:feeder.batch_count(b)].copy())
    finally:
        feeder.close()
    np.testing.assert_array_equal(np.concatenate(got), ref)
    with pytest.raises(ValueError, match="interpolation"):
        _core.BatchFeeder(image, tiles, slots[0], slots[1], 2, 320, 320, interpolation="cubic")
