"""What the commands write and print: overlays as JPEG by default (PNG on request), the
demo's defect-free samples and the next commands it prints (which run, reproduce its bank,
and are the ones README.md shows), the glare warning of ``fissure anomaly``."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import PatchCore
from fissure.anomaly.synthetic import brushed_metal
from fissure.cli import main
from fissure.demo import next_commands
from fissure.io import read_image, write_image_atomic

README = Path(__file__).resolve().parents[2] / "README.md"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-demo") / "fissure-demo"
    rc, out, err = run_cli(["demo", "--width", "640", "--height", "480", "--defects", "3",
                            "--glints", "1", "--train-size", "512", "--out", str(d), "--quiet",
                            "--threads", "2"])
    assert rc == 0, err
    keep = tmp_path_factory.mktemp("cli-demo-bank") / "bank.safetensors"
    keep.write_bytes((d / "bank.safetensors").read_bytes())  # a later test refits d's bank
    return d, out, keep


def bank_file(path: Path) -> tuple[dict, bytes]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.metadata(), f.get_tensor("bank").tobytes()


def test_png_is_lossless_and_smaller_than_opencvs_default(tmp_path) -> None:
    img = brushed_metal(600, 800, seed=3)
    p = write_image_atomic(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_image(p), img)
    ok, default = cv2.imencode(".png", img)
    assert ok and p.stat().st_size < 0.8 * len(default)
    j = write_image_atomic(tmp_path / "a.jpg", img)
    back = read_image(j).astype(int)
    assert np.abs(back - img).mean() < 3  # quality 90
    assert j.stat().st_size < 0.5 * p.stat().st_size


def test_demo_writes_its_training_samples_and_a_jpeg_overlay(demo) -> None:
    d, _, _ = demo
    names = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert names == ["bank.safetensors", "heatmap.jpg", "normal/normal_1.png",
                     "normal/normal_2.png", "report.json", "surface.png"]
    for i in (1, 2):  # the samples the bank was fitted on (demo seed 0: seeds 1 and 2)
        np.testing.assert_array_equal(read_image(d / f"normal/normal_{i}.png"),
                                      brushed_metal(512, 512, seed=i))


def test_the_printed_next_commands_run_and_rebuild_the_bank(demo) -> None:
    d, out, kept = demo
    printed = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("fissure anomaly")]
    assert printed == next_commands(d)
    for cmd in printed:
        argv = shlex.split(cmd)
        assert argv[0] == "fissure"
        rc, _, err = run_cli(argv[1:])
        assert rc == 0, (cmd, err)
    # the command line fits the very bank the demo fitted: same entries, same settings
    assert bank_file(d / "bank.safetensors") == bank_file(kept)
    pred = d / "predict"
    assert (pred / "surface.json").is_file() and (pred / "surface_heatmap.jpg").is_file()
    # PNG on request, exactly the overlay; the JPEG is close to it and far smaller
    rc, _, err = run_cli(["anomaly", "predict", str(d / "bank.safetensors"),
                          str(d / "surface.png"), "--out", str(d / "png"), "--quiet",
                          "--overlay-format", "png"])
    assert rc == 0, err
    surface = read_image(d / "surface.png")
    want = PatchCore.load(d / "bank.safetensors").predict(surface).overlay(surface)
    png = d / "png" / "surface_heatmap.png"
    np.testing.assert_array_equal(read_image(png), want)
    jpg = pred / "surface_heatmap.jpg"
    assert np.abs(read_image(jpg).astype(int) - want).mean() < 3
    assert jpg.stat().st_size < 0.5 * png.stat().st_size


def test_readme_shows_the_demos_next_commands() -> None:
    if not README.exists():
        pytest.skip("not running from a source checkout")
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [ln.strip() for b in blocks for ln in b.splitlines()]
    for cmd in next_commands(Path("fissure-demo")):
        assert cmd in lines, cmd


def test_overlay_format_for_detect_and_specular(tmp_path) -> None:
    img = np.full((64, 80, 3), 90, np.uint8)
    img[10:20, 30:50] = 250
    src = tmp_path / "part.png"
    cv2.imwrite(str(src), img)
    for fmt in ("jpg", "png"):
        rc, _, err = run_cli(["specular", str(src), "--out", str(tmp_path / fmt), "--quiet",
                              "--overlay-format", fmt])
        assert rc == 0, err
        assert [p.name for p in (tmp_path / fmt).glob("part_specular_overlay.*")] == [
            f"part_specular_overlay.{fmt}"]
    with pytest.raises(SystemExit):
        run_cli(["specular", str(src), "--out", str(tmp_path / "x"), "--overlay-format", "gif"])
    assert "--overlay-format" in _help(["detect", "--help"])
    assert "--overlay-format" in _help(["demo", "--help"])


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    return out.getvalue()


def test_anomaly_commands_warn_about_unmasked_glare(demo, tmp_path) -> None:
    d, _, bank = demo
    glary = brushed_metal(256, 256, seed=7)
    glary[100:130, 100:130] = 255  # 1.37% of the pixels: white glare
    little = brushed_metal(256, 256, seed=8)  # no glare
    for name, img in (("glary", glary), ("little", little)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
    # the demo's bank was fitted with glare masked: no warning
    rc, _, err = run_cli(["anomaly", "predict", str(bank), str(tmp_path / "glary.png"),
                          "--out", str(tmp_path / "a"), "--quiet", "--no-overlay"])
    assert rc == 0 and "warning" not in err
    rc, _, err = run_cli(["anomaly", "predict", str(bank), str(tmp_path / "glary.png"),
                          str(tmp_path / "little.png"), "--out", str(tmp_path / "b"), "--quiet",
                          "--no-overlay", "--specular", "off"])
    assert rc == 0
    warns = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warns) == 1 and "glary.png" in warns[0] and "1.37%" in warns[0]
    assert "--specular mask" in warns[0]
    # little glare, but inside a predicted region: warned as well
    surface = read_image(d / "surface.png")
    rc, _, err = run_cli(["anomaly", "predict", str(bank), str(d / "surface.png"),
                          "--out", str(tmp_path / "c"), "--quiet", "--no-overlay",
                          "--specular", "off"])
    res = PatchCore.load(bank, specular=None).predict(surface)
    from fissure.specular import specular_mask

    glare = specular_mask(surface)
    assert glare.mean() < 0.005
    touching = sum(glare[y0:y1, x0:x1].any() for x0, y0, x1, y1 in res.boxes.astype(int))
    assert touching > 0
    warns = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warns) == 1 and f"{touching} of the {len(res.boxes)} regions" in warns[0]
    rc, _, err = run_cli(["anomaly", "fit", str(tmp_path / "glary.png"), str(tmp_path / "little.png"),
                          "--out", str(tmp_path / "bank.safetensors"), "--quiet"])
    assert rc == 0
    warns = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warns) == 1 and "glary.png" in warns[0] and "--specular mask" in warns[0]
