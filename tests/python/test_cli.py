from __future__ import annotations

import subprocess
import sys

import pytest

from fissure.cli import main


def test_info_prints_core_facts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "simd path" in out and "threads" in out
    assert "onnxruntime" in out and "openvino" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_module_entry_point_runs() -> None:
    p = subprocess.run([sys.executable, "-m", "fissure", "info"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "fissure" in p.stdout
