"""specular_mask is bit for bit OpenCV's cvtColor(BGR2HSV) + inRange, on every SIMD path.

The oracle is cv2 itself; the pure-numpy twin (FISSURE_BACKEND=python) is checked against it
too, so the C++ and numpy implementations are both pinned to OpenCV.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fissure
from fissure import _core, _reference, specular
from oracles.simd import forced_level

cv2 = pytest.importorskip("cv2")

LEVELS = ["scalar", "sse4", "avx2", "avx512"]
_ORDER = {name: i for i, name in enumerate(LEVELS)}


def cv_mask(img: np.ndarray, v_min: int = 240, s_max: int = 30) -> np.ndarray:
    """The accepted rule, computed by OpenCV."""
    bgr = img if img.ndim == 3 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2BGR)
    hsv = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2HSV)
    return cv2.inRange(hsv, (0, 0, v_min + 1), (180, s_max - 1, 255)) > 0


def available_levels() -> list[str]:
    cpu = _core.cpu_simd_level()
    top = _ORDER.get(cpu, 0)
    return [lv for lv in LEVELS if _ORDER[lv] <= top]


@pytest.fixture(params=LEVELS)
def level(request: pytest.FixtureRequest):
    """Caps the specular kernels at one SIMD level for the test (skips levels the CPU lacks)."""
    name = request.param
    if name not in available_levels():
        pytest.skip(f"CPU has no {name}")
    with forced_level("specular", name) as got:
        if got != name:
            pytest.skip(f"FISSURE_SIMD caps the level below {name}")
        yield name


def all_pairs_image(rng: np.random.Generator) -> np.ndarray:
    """256 x 256 pixels, one per (V, min) pair; the third channel random in between and the
    channel order shuffled, so every (V, diff) OpenCV can see is covered."""
    v = np.arange(256)[:, None].repeat(256, 1)
    mn = np.minimum(np.arange(256)[None, :], v)
    mid = mn + np.floor(rng.random(v.shape) * (v - mn + 1)).astype(np.int64)
    chans = np.stack([v, mn, np.minimum(mid, v)], -1)
    perm = rng.permuted(np.tile(np.arange(3), (256 * 256, 1)), axis=1).reshape(256, 256, 3)
    return np.take_along_axis(chans, perm, axis=2).astype(np.uint8)


def near_threshold_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Half the pixels close to V = 240 / S = 30, so both outcomes occur everywhere."""
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    sel = rng.random((h, w)) < 0.5
    v = rng.integers(228, 256, (h, w))
    spread = (rng.integers(0, 45, (h, w)) * v) // 255
    near = v[..., None] - (rng.random((h, w, 3)) * (spread[..., None] + 1)).astype(np.int64)
    near[np.arange(h)[:, None], np.arange(w)[None, :], rng.integers(0, 3, (h, w))] = v
    img[sel] = np.clip(near, 0, 255).astype(np.uint8)[sel]
    return img


THRESHOLDS = [(240, 30), (239, 30), (241, 29), (240, 31), (0, 30), (254, 30), (255, 30),
              (240, 0), (240, 1), (240, 255), (0, 255), (100, 100), (200, 10), (223, 30),
              (224, 30), (17, 200), (0, 1), (254, 255)]


def test_saturation_table_is_opencv_for_every_pair() -> None:
    v = np.arange(256)[:, None].repeat(256, 1)
    mn = np.minimum(np.arange(256)[None, :], v)
    img = np.stack([v, mn, mn], -1).astype(np.uint8)
    s_cv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 1].astype(np.int64)
    ours = np.vectorize(_core.opencv_hsv_saturation)(v, v - mn)
    assert np.array_equal(ours, s_cv)
    # The plain rounding round(255 * diff / V) is NOT OpenCV's: it differs on ties.
    plain = np.where(v > 0, (510 * (v - mn) + v) // np.maximum(2 * v, 1), 0)
    assert (plain != s_cv).sum() == 207


@pytest.mark.parametrize(("v_min", "s_max"), [(240, 30), (0, 0), (0, 255), (128, 64), (254, 1)])
def test_threshold_table_core_equals_numpy_twin(v_min: int, s_max: int) -> None:
    assert np.array_equal(_core.specular_threshold_table(v_min, s_max),
                          _reference.specular.threshold_table(v_min, s_max))


def test_all_pairs_every_threshold_grid(level: str, rng: np.random.Generator) -> None:
    img = all_pairs_image(rng)
    for v_min, s_max in THRESHOLDS:
        got = fissure.specular_mask(img, v_min=v_min, s_max=s_max, num_threads=1)
        assert got.dtype == np.bool_ and got.shape == (256, 256)
        assert np.array_equal(got, cv_mask(img, v_min, s_max)), (level, v_min, s_max)


def test_all_pairs_all_s_max(level: str, rng: np.random.Generator) -> None:
    img = all_pairs_image(rng)
    for s_max in range(256):
        assert np.array_equal(fissure.specular_mask(img, v_min=0, s_max=s_max),
                              cv_mask(img, 0, s_max)), s_max


def test_edge_values(level: str) -> None:
    px = {
        "v240": (240, 240, 240), "v241": (241, 241, 241), "v255_s0": (255, 255, 255),
        "black": (0, 0, 0), "s29": None, "s30": None,
    }
    # S = 29 and S = 30 at V = 250: search the diff that gives each.
    for target in (29, 30):
        d = next(d for d in range(251) if _core.opencv_hsv_saturation(250, d) == target)
        px[f"s{target}"] = (250, 250 - d, 250 - d // 2)
    img = np.array([list(px.values())], dtype=np.uint8)
    got = fissure.specular_mask(img)[0]
    want = dict(zip(px, cv_mask(img)[0]))
    assert dict(zip(px, got)) == want
    assert want == {"v240": False, "v241": True, "v255_s0": True, "black": False,
                    "s29": True, "s30": False}


def test_all_grey_levels(level: str) -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    bgr = np.repeat(grey[..., None], 3, axis=2)
    for v_min, s_max in THRESHOLDS:
        want = cv_mask(bgr, v_min, s_max)
        assert np.array_equal(fissure.specular_mask(bgr, v_min=v_min, s_max=s_max), want)
        assert np.array_equal(fissure.specular_mask(grey, v_min=v_min, s_max=s_max), want)
        assert np.array_equal(fissure.specular_mask(grey[..., None], v_min=v_min, s_max=s_max),
                              want)


SHAPES = [(1, 1), (1, 2), (1, 15), (1, 16), (1, 17), (1, 333), (2, 1), (57, 1), (3, 31), (5, 32),
          (4, 33), (3, 63), (3, 64), (3, 65), (2, 127), (2, 128), (2, 129), (7, 191), (3, 192),
          (6, 193), (9, 255), (11, 1000), (13, 4097)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_odd_sizes(level: str, shape: tuple[int, int], rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, *shape)
    want = cv_mask(img)
    assert np.array_equal(fissure.specular_mask(img), want)
    grey = img[..., 1].copy()
    assert np.array_equal(fissure.specular_mask(grey, v_min=200), cv_mask(grey, 200))


@pytest.mark.parametrize("threads", [1, 2, -1])
def test_random_images_threads(level: str, threads: int, rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, 347, 611)  # > 64k pixels: runs on the pool
    for v_min, s_max in [(240, 30), (200, 60), (10, 200)]:
        want = cv_mask(img, v_min, s_max)
        got = fissure.specular_mask(img, v_min=v_min, s_max=s_max, num_threads=threads)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("threads", [1, -1])
def test_large_contiguous_image_streaming_stores(level: str, threads: int,
                                                 rng: np.random.Generator) -> None:
    """Whole images run as one long row with non-temporal stores after an unaligned head."""
    img = near_threshold_image(rng, 700, 1001)
    want = cv_mask(img)
    assert np.array_equal(fissure.specular_mask(img, num_threads=threads), want)
    buf = np.zeros(700 * 1001 + 64, np.uint8)
    for shift in (1, 13, 32, 63):
        buf[:] = 9
        out = buf[shift:shift + 700 * 1001].reshape(700, 1001)
        fissure.specular_mask(img, out=out, num_threads=threads)
        assert np.array_equal(out, want)
        assert (buf[:shift] == 9).all() and (buf[shift + 700 * 1001:] == 9).all()


def _views(img: np.ndarray) -> dict[str, np.ndarray]:
    big = np.zeros((img.shape[0] + 7, img.shape[1] + 9, 3), np.uint8)
    big[3:3 + img.shape[0], 4:4 + img.shape[1]] = img
    return {
        "crop (row stride > width)": big[3:3 + img.shape[0], 4:4 + img.shape[1]],
        "flipped rows (negative stride)": img[::-1],
        "channel-reversed (RGB view)": img[..., ::-1],
        "every other column": img[:, ::2],
        "every other row": img[::2],
        "mirrored columns": img[:, ::-1],
        "fortran order": np.asfortranarray(img),
        "transposed": img.transpose(1, 0, 2),
        "read-only": np.frombuffer(img.tobytes(), np.uint8).reshape(img.shape),
        "broadcast row (row stride 0)": np.broadcast_to(img[5], img.shape),
        "broadcast pixel (strides 0)": np.broadcast_to(img[5, 7], img.shape),
    }


def test_non_contiguous_views(level: str, rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, 61, 203)
    for name, view in _views(img).items():
        want = cv_mask(np.ascontiguousarray(view))
        assert np.array_equal(fissure.specular_mask(view), want), name
        assert np.array_equal(fissure.specular_mask(view, dilate=3),
                              cv2.dilate(want.astype(np.uint8), fissure.disc_kernel(3)) > 0), name


def test_views_read_in_place() -> None:
    """Crops, flipped rows and channel-reversed views reach the core without a copy."""
    img = np.zeros((10, 12, 3), np.uint8)
    assert specular._as_image(img[2:8, 3:9]).base is not None
    assert np.shares_memory(specular._as_image(img[::-1]), img)
    assert np.shares_memory(specular._as_image(img[..., ::-1]), img)
    assert np.shares_memory(specular._as_image(img[2:8, 3:9]), img)
    assert not np.shares_memory(specular._as_image(img[:, ::2]), img)


def test_rgb_flag_same_mask(rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, 40, 90)
    rgb = np.ascontiguousarray(img[..., ::-1])
    assert np.array_equal(fissure.specular_mask(rgb, rgb=True), cv_mask(img))
    assert np.array_equal(fissure.specular_mask(rgb, rgb=True),
                          cv2.inRange(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV), (0, 0, 241),
                                      (180, 29, 255)) > 0)


def test_out_parameter(rng: np.random.Generator) -> None:
    img = near_threshold_image(rng, 30, 70)
    want = cv_mask(img)
    out = np.ones((30, 70), bool)
    assert fissure.specular_mask(img, out=out) is out
    assert np.array_equal(out, want)
    out8 = np.full((30, 70), 7, np.uint8)
    fissure.specular_mask(img, out=out8)
    assert np.array_equal(out8, want.astype(np.uint8))
    wide = np.zeros((30, 80), bool)
    fissure.specular_mask(img, out=wide[:, 5:75])
    assert np.array_equal(wide[:, 5:75], want) and not wide[:, :5].any() and not wide[:, 75:].any()


def test_numpy_twin_equals_opencv(monkeypatch: pytest.MonkeyPatch,
                                  rng: np.random.Generator, twin_calls) -> None:
    monkeypatch.setenv("FISSURE_BACKEND", "python")
    img = all_pairs_image(rng)
    for v_min, s_max in THRESHOLDS[:8]:
        assert np.array_equal(fissure.specular_mask(img, v_min=v_min, s_max=s_max),
                              cv_mask(img, v_min, s_max))
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(fissure.specular_mask(grey), cv_mask(grey))
    small = near_threshold_image(rng, 20, 33)
    assert np.array_equal(fissure.specular_mask(small, dilate=2),
                          cv2.dilate(cv_mask(small).astype(np.uint8), fissure.disc_kernel(2)) > 0)
    assert twin_calls == {"specular_mask": 10}  # every call above ran the twin


@pytest.mark.parametrize("env_level", LEVELS)
def test_fissure_simd_env_selects_the_path(env_level: str) -> None:
    """FISSURE_SIMD (read once per process) lowers the path; each path still matches OpenCV."""
    if env_level not in available_levels():
        pytest.skip(f"CPU has no {env_level}")
    code = textwrap.dedent("""
        import numpy as np, cv2, fissure
        from fissure import _core
        rng = np.random.default_rng(5)
        img = rng.integers(0, 256, (97, 301, 3), dtype=np.uint8)
        img[rng.random((97, 301)) < 0.5] = rng.integers(235, 256, 3, dtype=np.uint8)
        want = cv2.inRange(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), (0, 0, 241), (180, 29, 255)) > 0
        got = fissure.specular_mask(img)
        print(_core.specular_simd_level(), bool((got == want).all()), bool(got.any()))
    """)
    env = dict(os.environ, FISSURE_SIMD=env_level)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [env_level, "True", "True"]


def test_simd_hook_round_trip() -> None:
    prev = _core._specular_force_simd("scalar")
    try:
        assert _core.specular_simd_level() == "scalar"
        assert _core._specular_force_simd("none") == "scalar"
        assert _core.specular_simd_level() == _core.simd_level()
    finally:
        _core._specular_force_simd(prev)
    with pytest.raises(ValueError, match="expected scalar"):
        _core._specular_force_simd("avx1024")


def test_concurrent_python_threads(rng: np.random.Generator) -> None:
    """Calls from several Python threads at once (the GIL is released inside) give the same
    masks as serial calls."""
    from concurrent.futures import ThreadPoolExecutor

    img = near_threshold_image(rng, 400, 700)
    params = [(240, 30, 0), (200, 60, 0), (240, 30, 4), (230, 40, 9)] * 3
    serial = [fissure.specular_mask(img, v_min=v, s_max=s, dilate=d) for v, s, d in params]
    with ThreadPoolExecutor(max_workers=4) as ex:
        got = list(ex.map(lambda p: fissure.specular_mask(img, v_min=p[0], s_max=p[1],
                                                          dilate=p[2]), params))
    for a, b in zip(serial, got):
        assert np.array_equal(a, b)
