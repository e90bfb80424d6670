from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from fissure.cli import main  # noqa: E402
from fissure.io import expand_inputs, read_image, write_image_atomic, write_json_atomic  # noqa: E402


def _ref_mask(img: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    return cv2.inRange(hsv, (0, 0, 241), (180, 29, 255)) > 0


def test_read_image_conversions(tmp_path: Path, rng: np.random.Generator) -> None:
    bgr = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), bgr)
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(gray[..., None], 3, 2))
    bgra = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), bgra[..., :3])
    deep = rng.integers(0, 65536, (4, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png"), (deep >> 8).astype(np.uint8))
    with pytest.raises(FileNotFoundError, match="no such image"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        read_image(tmp_path / "bad.png")


def test_atomic_writes_leave_no_temporaries(tmp_path: Path) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    write_image_atomic(tmp_path / "o" / "x.png", img)
    write_json_atomic(tmp_path / "o" / "x.json", {"a": 1})
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x.json", "x.png"]
    assert json.loads((tmp_path / "o" / "x.json").read_text()) == {"a": 1}


def test_expand_inputs_folders_and_globs(tmp_path: Path) -> None:
    for n in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.jpg", "b.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")])] == ["b.png"]


def test_cli_specular_writes_masks_and_reports_bad_files(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    img[10:20, 30:50] = 250
    cv2.imwrite(str(tmp_path / "part.png"), img)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    out = tmp_path / "out"
    rc = main(["specular", str(tmp_path / "part.png"), str(tmp_path / "broken.png"),
               "--out", str(out), "--quiet"])
    assert rc == 1  # one input failed, the run went on
    assert "skipped" in capsys.readouterr().err
    mask = cv2.imread(str(out / "part_specular_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    np.testing.assert_array_equal(mask, _ref_mask(img))
    report = json.loads((out / "specular.json").read_text())
    assert report["images"][0]["glare_pixels"] == int(_ref_mask(img).sum())
    assert (out / "part_specular_overlay.jpg").exists()
