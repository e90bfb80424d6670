"""preprocess_tiles against OpenCV + numpy oracles: cv2.resize (INTER_LINEAR / INTER_NEAREST /
INTER_AREA),
Ultralytics' letterbox built from cv2.resize + cv2.copyMakeBorder, numpy float32
normalisation and astype(float16), transposed to NCHW."""

from __future__ import annotations

import numpy as np
import pytest

from fissure import PreprocessConfig, letterbox_params, preprocess_tiles, slice_grid
from fissure import _core

cv2 = pytest.importorskip("cv2")

CV_INTERP = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}


def normalise(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """numpy oracle: channel swap, float32 (x * scale - mean) / std, HWC -> CHW, dtype."""
    if cfg.rgb:
        img = img[:, :, ::-1]
    x = img.astype(np.float32) * np.float32(cfg.scale)
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    with np.errstate(over="ignore"):
        return x.transpose(2, 0, 1).astype(cfg.dtype)


def ultralytics_letterbox(img: np.ndarray, new_shape: tuple[int, int], pad: int,
                          interp: int) -> np.ndarray:
    """Ultralytics LetterBox (auto=False, scaleup=True, center=True), written out."""
    shape = img.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=interp)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(pad, pad, pad))


def oracle(image: np.ndarray, tiles: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    h, w = cfg.input_size
    out = []
    for x1, y1, x2, y2 in tiles.tolist():
        crop = image[y1:y2, x1:x2]
        if cfg.mode == "letterbox":
            r = ultralytics_letterbox(crop, (h, w), cfg.pad_value, CV_INTERP[cfg.interpolation])
        elif crop.shape[:2] == (h, w):
            r = crop
        else:
            r = cv2.resize(crop, (w, h), interpolation=CV_INTERP[cfg.interpolation])
        out.append(normalise(r, cfg))
    return np.stack(out) if out else np.empty((0, 3, h, w), cfg.dtype)


def random_tiles(rng, H, W, n, max_side=None):
    t = np.empty((n, 4), np.int64)
    for i in range(n):
        tw = int(rng.integers(1, (max_side or W) + 1)) if W > 1 else 1
        th = int(rng.integers(1, (max_side or H) + 1)) if H > 1 else 1
        tw, th = min(tw, W), min(th, H)
        x1 = int(rng.integers(0, W - tw + 1))
        y1 = int(rng.integers(0, H - th + 1))
        t[i] = (x1, y1, x1 + tw, y1 + th)
    return t


# ---------------------------------------------------------------------------------------------
# uint8 resize alone vs cv2.resize
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interp", ["linear", "nearest", "area"])
@pytest.mark.parametrize(
    "src,dst",
    [((640, 640), (320, 320)), ((100, 137), (640, 640)), ((333, 517), (211, 640)),
     ((17, 9), (5, 31)), ((1, 1), (7, 3)), ((1000, 1000), (640, 640)), ((641, 639), (640, 640)),
     ((3, 200), (64, 9)), ((480, 640), (640, 640))],
)
def test_resize_u8_equals_cv2(src, dst, interp) -> None:
    rng = np.random.default_rng(hash((src, dst)) % 2**32)
    img = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    ours = _core._resize_u8(img, dst[0], dst[1], interp)
    ref = cv2.resize(img, (dst[1], dst[0]), interpolation=CV_INTERP[interp])
    np.testing.assert_array_equal(ours, ref)


def test_resize_u8_random_sizes_match_cv2() -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 300, 4))
        img = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        for interp in CV_INTERP:
            ours = _core._resize_u8(img, dh, dw, interp)
            ref = cv2.resize(img, (dw, dh), interpolation=CV_INTERP[interp])
            np.testing.assert_array_equal(ours, ref, err_msg=f"{(sh, sw, dh, dw, interp)}")


# ---------------------------------------------------------------------------------------------
# preprocess_tiles vs the oracle
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
@pytest.mark.parametrize("interp", ["linear", "nearest", "area"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_random_tiles_equal_oracle(mode, interp, dtype) -> None:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (257, 391, 3), dtype=np.uint8)
    tiles = random_tiles(rng, 257, 391, 12)
    # Border tiles and the full image.
    tiles = np.vstack([tiles, [[0, 0, 391, 257], [391 - 50, 257 - 33, 391, 257], [0, 200, 7, 257]]])
    cfg = PreprocessConfig(input_size=(96, 80), mode=mode, interpolation=interp, dtype=dtype,
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), pad_value=114)
    got = preprocess_tiles(image, tiles, cfg)
    assert got.dtype == np.dtype(dtype) and got.shape == (len(tiles), 3, 96, 80)
    np.testing.assert_array_equal(got, oracle(image, tiles, cfg))


@pytest.mark.parametrize("rgb", [True, False])
def test_tile_equal_to_input_size_is_not_resized(rgb) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    tiles = slice_grid(300, 500, 128, 160, 0.2, 0.2)
    for mode in ("none", "resize", "letterbox"):
        cfg = PreprocessConfig(input_size=(128, 160), mode=mode, rgb=rgb, scale=1.0,
                               mean=(10, 20, 30), std=(2, 4, 8))
        got = preprocess_tiles(image, tiles, cfg)
        ref = np.stack([normalise(image[y1:y2, x1:x2], cfg) for x1, y1, x2, y2 in tiles.tolist()])
        np.testing.assert_array_equal(got, ref)


def test_upscaling_and_downscaling_odd_sizes() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (411, 613, 3), dtype=np.uint8)
    tiles = np.array([[0, 0, 13, 7], [5, 9, 406, 410], [600, 400, 613, 411], [1, 1, 612, 2]],
                     np.int64)
    for size in [(33, 65), (641, 639), (1, 1), (7, 300)]:
        for mode in ("resize", "letterbox"):
            cfg = PreprocessConfig(input_size=size, mode=mode)
            use = tiles
            if mode == "letterbox":  # keep the tiles whose letterboxed size is not empty
                use = np.array([t for t in tiles.tolist() if min(
                    round((t[2] - t[0]) * min(size[0] / (t[3] - t[1]), size[1] / (t[2] - t[0]))),
                    round((t[3] - t[1]) * min(size[0] / (t[3] - t[1]), size[1] / (t[2] - t[0]))))
                    > 0], np.int64).reshape(-1, 4)
            np.testing.assert_array_equal(preprocess_tiles(image, use, cfg),
                                          oracle(image, use, cfg))


def test_float16_equals_numpy_astype() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tiles = np.array([[0, 0, 64, 64]], np.int64)
    # Large scales reach float16's overflow, subnormals and ties.
    for scale, mean, std in [(1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                             (300.0, (0, 0, 0), (1, 1, 1)),
                             (1e-6, (0, 0, 0), (1, 1, 1)), (1.0, (0, 1000, -3), (1e-3, 7, 0.1))]:
        cfg = PreprocessConfig(input_size=(64, 64), mode="none", scale=scale, mean=mean,
                               std=std, dtype="float16")
        f32 = preprocess_tiles(image, tiles, PreprocessConfig(
            input_size=(64, 64), mode="none", scale=scale, mean=mean, std=std))
        got = preprocess_tiles(image, tiles, cfg)
        with np.errstate(over="ignore"):
            ref = f32.astype(np.float16)
        np.testing.assert_array_equal(got.view(np.uint16), ref.view(np.uint16))


def test_float_to_half_matches_numpy_bits() -> None:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    # Every float near float16's range edges and ties, plus specials.
    edges = np.concatenate([
        np.arange(0x33000000 - 4096, 0x33000000 + 4096, dtype=np.uint32),  # 2^-25 (half of min subnormal)
        np.arange(0x38800000 - 8192, 0x38800000 + 8192, dtype=np.uint32),  # smallest normal
        np.arange(0x477fe000, 0x47800100, dtype=np.uint32),                 # 65504 .. overflow
        np.array([0, 0x7f800000, 0x7fc00000, 0x7f800001, 0x3f800000], np.uint32),
    ])
    bits = np.concatenate([bits, edges, edges | np.uint32(0x80000000)])
    x = bits.view(np.float32)
    got = _core._float_to_half(x)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(got[~nan], ref[~nan])
    assert np.isnan(got[nan].view(np.float16)).all()


def test_threads_give_identical_results() -> None:
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (500, 700, 3), dtype=np.uint8)
    tiles = random_tiles(rng, 500, 700, 20)
    for mode in ("resize", "letterbox"):
        cfg = PreprocessConfig(input_size=(100, 120), mode=mode)
        one = preprocess_tiles(image, tiles, cfg, num_threads=1)
        many = preprocess_tiles(image, tiles, cfg, num_threads=-1)
        three = preprocess_tiles(image, tiles, cfg, num_threads=3)
        np.testing.assert_array_equal(one, many)
        np.testing.assert_array_equal(one, three)


def test_strided_and_flipped_views_are_read_in_place() -> None:
    rng = np.random.default_rng(4)
    big = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tiles = np.array([[0, 0, 100, 80], [50, 20, 150, 120]], np.int64)
    cfg = PreprocessConfig(input_size=(64, 64))
    for view in (big[10:250, 30:390], big[::-1], big[::2], big[:, ::-1], big[..., ::-1]):
        got = preprocess_tiles(view, tiles, cfg)
        np.testing.assert_array_equal(got, oracle(np.ascontiguousarray(view), tiles, cfg))


def test_out_is_reused() -> None:
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    tiles = np.array([[0, 0, 100, 100], [100, 100, 200, 200]], np.int64)
    for dtype in ("float32", "float16"):
        cfg = PreprocessConfig(input_size=(50, 50), dtype=dtype)
        buf = np.full((2, 3, 50, 50), -1, dtype)
        got = preprocess_tiles(image, tiles, cfg, out=buf)
        assert got is buf
        np.testing.assert_array_equal(buf, oracle(image, tiles, cfg))


def test_empty_tile_list() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    got = preprocess_tiles(img, np.empty((0, 4), np.int64), PreprocessConfig(input_size=(4, 4)))
    assert got.shape == (0, 3, 4, 4)


def test_full_pipeline_with_slice_grid() -> None:
    rng = np.random.default_rng(8)
    image = rng.integers(0, 256, (1000, 1500, 3), dtype=np.uint8)
    tiles = slice_grid(1000, 1500, 320, 320, 0.2, 0.2)
    cfg = PreprocessConfig(input_size=(256, 256), mode="letterbox")
    np.testing.assert_array_equal(preprocess_tiles(image, tiles, cfg), oracle(image, tiles, cfg))


# ---------------------------------------------------------------------------------------------
# letterbox geometry
# ---------------------------------------------------------------------------------------------


def test_letterbox_params_match_ultralytics_formula() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        th, tw, h, w = (int(v) for v in rng.integers(1, 1500, 4))
        r = min(h / th, w / tw)
        nw, nh = int(round(tw * r)), int(round(th * r))
        if nw == 0 or nh == 0:
            with pytest.raises(ValueError):
                letterbox_params(th, tw, h, w)
            continue
        dw, dh = (w - nw) / 2, (h - nh) / 2
        assert letterbox_params(th, tw, h, w) == (r, int(round(dw - 0.1)), int(round(dh - 0.1)))


def test_letterbox_known_values() -> None:
    assert letterbox_params(480, 640, 640, 640) == (1.0, 0, 80)
    assert letterbox_params(640, 640, 640, 640) == (1.0, 0, 0)
    r, px, py = letterbox_params(100, 301, 640, 640)
    assert r == 640 / 301 and px == 0 and py == (640 - round(100 * r)) // 2
