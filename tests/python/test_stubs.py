"""The hand-checked stub python/fissure/_core.pyi matches the compiled module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_core_stub_matches_runtime() -> None:
    pytest.importorskip("mypy.stubtest")
    p = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fissure._core", "--allowlist",
         str(Path(__file__).with_name("stubtest_allowlist.txt"))],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
