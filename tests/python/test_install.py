"""The OpenCV policy (docs/install.md): fissure imports and its array functions run without
cv2, and what needs cv2 says so and how to install it.

The install orders themselves were checked in fresh virtual environments with::

    python -m venv v1 && v1/bin/pip install . sahi          # then: v1/bin/fissure info
    python -m venv v2 && v2/bin/pip install sahi && v2/bin/pip install . && v2/bin/fissure demo

Each leaves exactly one OpenCV distribution (opencv-python, from SAHI).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fissure._optional import OPENCV_DISTRIBUTIONS, opencv_distributions


def _run_without_cv2(code: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter where ``import cv2`` fails."""
    prelude = "import sys\nsys.modules['cv2'] = None  # import cv2 -> ImportError\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_array_functions_run_without_opencv() -> None:
    r = _run_without_cv2("""
        import numpy as np
        import fissure
        boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], np.float32)
        keep = fissure.nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), match_threshold=0.5)
        assert keep.tolist() == [0, 2], keep
        img = np.zeros((8, 8, 3), np.uint8); img[2, 3] = 255
        assert fissure.specular_mask(img).sum() == 1
        assert fissure.slice_grid(100, 100, 64, 64, 0.2, 0.2).shape == (4, 4)
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_what_needs_opencv_says_how_to_install_it(tmp_path) -> None:
    r = _run_without_cv2(f"""
        import fissure.io
        try:
            fissure.io.read_image({str(tmp_path / 'x.png')!r})
        except ImportError as e:
            print(e)
    """)
    assert r.returncode == 0, r.stderr
    assert "reading images needs OpenCV" in r.stdout and 'fissure[cv]' in r.stdout


def test_info_reports_the_opencv_distributions() -> None:
    found = opencv_distributions()
    assert set(found) <= set(OPENCV_DISTRIBUTIONS)
    import fissure

    assert fissure.info()["opencv"] == found


def test_a_source_tree_without_the_built_core_says_so(tmp_path) -> None:
    """``PYTHONPATH=python python ...`` on a checkout whose core is not built: one clear
    ImportError saying so and how to build it (not a circular-import message)."""
    import shutil
    from pathlib import Path

    import fissure

    src = Path(fissure.__file__).parent
    dst = tmp_path / "fissure"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd",
                                                           "__pycache__"))
    r = subprocess.run([sys.executable, "-c", "import fissure"], capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": ""}, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "compiled core (fissure._core) is not built" in last, r.stderr
    assert "tools/dev_build.sh" in last and "pip install ." in last
    assert "circular" not in r.stderr
