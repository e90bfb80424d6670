from __future__ import annotations

import itertools

import numpy as np
import pytest

import fissure

sahi_slicing = pytest.importorskip("sahi.slicing")

SIZES = [1, 7, 100, 511, 512, 513, 640, 1000, 1080, 1920, 2048, 3000, 4000, 6000]
SLICES = [(64, 64), (256, 512), (512, 512), (640, 640), (1024, 768)]
RATIOS = [(0.0, 0.0), (0.1, 0.25), (0.2, 0.2), (0.5, 0.5), (0.99, 0.3)]


@pytest.mark.parametrize(("sh", "sw"), SLICES)
@pytest.mark.parametrize(("rh", "rw"), RATIOS)
def test_slice_grid_equals_sahi(sh: int, sw: int, rh: float, rw: float) -> None:
    for h, w in itertools.product(SIZES, SIZES[::3]):
        ours = fissure.slice_grid(h, w, sh, sw, rh, rw)
        ref = sahi_slicing.get_slice_bboxes(h, w, sh, sw, False, rh, rw)
        assert ours.dtype == np.int64
        assert ours.shape == (len(ref), 4)
        np.testing.assert_array_equal(ours, np.asarray(ref, dtype=np.int64).reshape(-1, 4))


def test_random_sizes_equal_sahi(rng: np.random.Generator) -> None:
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 9000, size=2))
        sh, sw = (int(v) for v in rng.integers(16, 1500, size=2))
        rh, rw = (float(v) for v in rng.uniform(0, 0.95, size=2))
        ours = fissure.slice_grid(h, w, sh, sw, rh, rw)
        ref = sahi_slicing.get_slice_bboxes(h, w, sh, sw, False, rh, rw)
        np.testing.assert_array_equal(ours, np.asarray(ref, dtype=np.int64).reshape(-1, 4))


@pytest.mark.parametrize(
    ("h", "w"),
    [(640, 640), (1024, 1024), (1080, 1920), (1920, 1080), (2048, 2048), (3000, 4000),
     (6000, 8000), (8192, 8192), (300, 200), (5000, 5000), (4000, 6000), (12000, 9000)],
)
def test_auto_slice_equals_sahi(h: int, w: int) -> None:
    assert fissure.auto_slice_params(h, w) == tuple(sahi_slicing.get_auto_slice_params(h, w))
    ours = fissure.slice_grid(h, w, None, None)
    ref = sahi_slicing.get_slice_bboxes(h, w, None, None, True)
    np.testing.assert_array_equal(ours, np.asarray(ref, dtype=np.int64).reshape(-1, 4))


def test_known_examples() -> None:
    g = fissure.slice_grid(1000, 1000, 512, 512)
    assert len(g) == 9 and g[:3, 0].tolist() == [0, 410, 488]
    assert len(fissure.slice_grid(4000, 6000, 640, 640, 0.25, 0.25)) == 104
    one = fissure.slice_grid(600, 600, 640, 640)
    assert one.tolist() == [[0, 0, 600, 600]]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"height": 0, "width": 10}, ValueError, "height"),
        ({"height": 10, "width": -3}, ValueError, "width"),
        ({"height": 10.5, "width": 10}, TypeError, "height"),
        ({"height": 10, "width": 10, "slice_height": 0}, ValueError, "slice_height"),
        ({"height": 10, "width": 10, "overlap_height_ratio": 1.0}, ValueError, r"\[0, 1\)"),
        ({"height": 10, "width": 10, "overlap_width_ratio": -0.1}, ValueError, "overlap_width"),
        ({"height": 10, "width": 10, "overlap_width_ratio": float("nan")}, ValueError, "ratio"),
        ({"height": 10, "width": 10, "overlap_width_ratio": "0.2"}, TypeError, "ratio"),
    ],
)
def test_bad_input(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fissure.slice_grid(**kwargs)


def test_thread_pool_rethrows_worker_errors_as_value_error() -> None:
    from fissure import _core

    assert _core._parallel_selftest(10000) == 10000 * 9999 // 2
    with pytest.raises(ValueError, match="selftest failure at 777"):
        _core._parallel_selftest(10000, 777)


def test_info_reports_core() -> None:
    d = fissure.info()
    assert d["simd"] in {"scalar", "sse4", "avx2", "avx512", "neon"}
    assert d["threads"] >= 1
    assert set(d["backends"]) == {"onnxruntime", "openvino"}


# ---------------------------------------------------------------------------------------------
# Sizes past 2^31: exact (SAHI's arithmetic on Python ints) and prompt, or a ValueError
# ---------------------------------------------------------------------------------------------

_HUGE = [(2**31, 2**31 + 1), (2**40, 2**40), (2**62, 3), (2**63 - 1, 2**63 - 1), (1, 2**63 - 1),
         (2**19, 1), (2**19 + 1, 1), (2**21 + 1, 1), (2**24, 1), (2**24 + 1, 1)]


def _in_subprocess(code: str, timeout: float = 60.0) -> object:
    """Runs `code` (which prints a JSON value) in a fresh interpreter; fails on a hang."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not return within {timeout} s")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _sahi_exact_auto(height: int, width: int) -> tuple[int, int, int, int]:
    """SAHI's get_auto_slice_params with its one numpy-int64 loop (calc_resolution_factor,
    which never ends once the area passes 2^62) replaced by the same definition on Python
    ints: expo - 1 for the smallest expo with 2^expo >= area."""
    slicing = pytest.importorskip("sahi.slicing")
    orig = slicing.calc_resolution_factor
    slicing.calc_resolution_factor = lambda res: (int(res) - 1).bit_length() - 1
    try:
        return tuple(int(v) for v in slicing.get_auto_slice_params(height, width))
    finally:
        slicing.calc_resolution_factor = orig


def test_huge_sizes_return_promptly_and_exactly() -> None:
    got = _in_subprocess(
        "import json, fissure\n"
        f"sizes = {_HUGE!r}\n"
        "out = [list(fissure.auto_slice_params(h, w)) for h, w in sizes]\n"
        "grid = fissure.slice_grid(2**31, 2**31 + 1, None, None).tolist()\n"
        "print(json.dumps([out, grid]))\n"
    )
    params, grid = got  # type: ignore[misc]
    for (h, w), p in zip(_HUGE, params):
        assert tuple(p) == _sahi_exact_auto(h, w), (h, w)
    # The grid: SAHI's get_slice_bboxes (Python ints throughout) with the same auto params.
    slicing = pytest.importorskip("sahi.slicing")
    orig = slicing.calc_resolution_factor
    slicing.calc_resolution_factor = lambda res: (int(res) - 1).bit_length() - 1
    try:
        want = slicing.get_slice_bboxes(2**31, 2**31 + 1, auto_slice_resolution=True)
    finally:
        slicing.calc_resolution_factor = orig
    assert grid == want


def test_huge_grids_raise_value_error_promptly() -> None:
    got = _in_subprocess(
        "import json, fissure\n"
        "out = []\n"
        "for args in [(2**40, 2**40, 640, 640), (2**63 - 1, 2**63 - 1, 1, 1), (2**64, 10, 5, 5),\n"
        "             (10, 10, 2**63, 5)]:\n"
        "    try:\n"
        "        fissure.slice_grid(*args)\n"
        "        out.append('returned')\n"
        "    except ValueError as e:\n"
        "        out.append(str(e))\n"
        "print(json.dumps(out))\n"
    )
    assert "2147483648 x 2147483648 tiles, more than the 1073741824" in got[0]  # type: ignore[index]
    assert "tiles, more than" in got[1]  # type: ignore[index]
    assert "at most 2**63 - 1" in got[2] and "at most 2**63 - 1" in got[3]  # type: ignore[index]


def test_sizes_near_int64_max_match_sahi() -> None:
    sahi = pytest.importorskip("sahi.slicing")
    M = 2**63 - 1
    for h, w, s, r in [(M, M, M - 1, 0.5), (M, 3, 2**62, 0.25), (2**62 + 7, 2**40, 2**61, 0.1)]:
        want = sahi.get_slice_bboxes(h, w, s, s, False, r, r)
        assert fissure.slice_grid(h, w, s, s, r, r).tolist() == want
