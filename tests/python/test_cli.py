from __future__ import annotations

import json
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


def test_demo_json_report_recovers_planted_defects(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--defects", "150", "--seed", "3"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["planted_defects"] == 150
    assert r["tile_predictions"] > r["planted_defects"]  # duplicates across overlapping tiles
    g = r["greedy_nmm"]
    # Ground truth is known: merging must recover nearly every planted defect and must not
    # leave many duplicates behind.
    assert g["recovered_iou50"] >= 0.9 * 150
    assert g["detections"] <= 1.15 * 150


def test_module_entry_point_runs() -> None:
    p = subprocess.run([sys.executable, "-m", "fissure", "info"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "fissure" in p.stdout
