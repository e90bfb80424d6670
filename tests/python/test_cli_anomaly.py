"""`fissure anomaly fit` and `fissure anomaly predict` end to end on generated textures with
the bundled backbone. Oracles: planted defects (their boxes are known) and the Python API
(PatchCore.fit on the same arrays gives the same bank; PatchCore.load(bank).predict gives the
same scores, regions and heatmap as the files the command writes)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import PatchCore
from fissure.cli import main
from test_patchcore import pool_backbone, texture

FAST = ["--backend", "onnxruntime", "--threads", "2", "--quiet"]
SIZE = 256
DARK = (150, 60, 174, 84)     # x0, y0, x1, y1 of the planted dark blob
BRIGHT = (40, 160, 64, 184)   # and of the bright (white, glare-like) one


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def planted(seed: int, box: tuple[int, int, int, int], value: int) -> np.ndarray:
    img = texture(SIZE, SIZE, seed)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = value
    return img


def region_boxes(doc: dict) -> np.ndarray:
    return np.array([r["box"] for r in doc["regions"]], np.float32).reshape(-1, 4)


def contains(outer: list[float], inner: tuple[int, int, int, int]) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1]
            and outer[2] >= inner[2] and outer[3] >= inner[3])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Six normal textures and one broken file, fitted by the command."""
    d = tmp_path_factory.mktemp("anomaly")
    normal = d / "normal"
    normal.mkdir()
    arrays = [texture(SIZE, SIZE, s) for s in range(6)]
    for s, a in enumerate(arrays):
        cv2.imwrite(str(normal / f"n{s}.png"), a)
    (normal / "broken.png").write_bytes(b"\x89PNG not an image")  # sorts first
    bank = d / "bank.safetensors"
    rc, out, err = run_cli(["anomaly", "fit", str(normal), "--out", str(bank), "--no-tile",
                            "--coreset-ratio", "0.25", "--threshold-margin", "0.3", *FAST])
    return {"dir": d, "arrays": arrays, "bank": bank, "rc": rc, "out": out, "err": err}


def api(bank: Path) -> PatchCore:
    return PatchCore.load(bank, backend="onnxruntime", num_threads=2)


def test_fit_writes_the_bank_the_api_fits(fitted) -> None:
    assert fitted["rc"] == 1, fitted["err"]  # one unreadable file, skipped
    assert "skipped" in fitted["err"] and "broken.png" in fitted["err"]
    assert "Traceback" not in fitted["err"]
    ref = PatchCore(tile_size=None, coreset_ratio=0.25, threshold_margin=0.3, backend="onnxruntime",
                    num_threads=2)
    ref.fit(fitted["arrays"])
    got = api(fitted["bank"])
    assert got.bank is not None and ref.bank is not None
    np.testing.assert_array_equal(got.bank, ref.bank)
    assert (got.threshold, got.image_threshold, got.tile_size) == (ref.threshold, ref.image_threshold, None)
    assert (got.specular, got.specular_dilate) == (None, ref.specular_dilate)
    assert got.intensity == ref.intensity == "standardize"  # the default, stored in the bank
    line = fitted["out"]
    assert line.count("\n") == 1 and "6 image(s)" in line
    assert f"{ref.stats['train_patches']} patches" in line
    assert f"bank {ref.bank.shape[0]} x {ref.bank.shape[1]} (float32)" in line
    assert str(fitted["bank"]) in line and "1 skipped" in line
    assert not list(fitted["dir"].glob(".*.tmp"))


def test_fit_options_reach_patchcore(tmp_path) -> None:
    """Every fit option lands in the bank as the API's own argument would; predict follows the
    bank's glare setting unless told otherwise."""
    arrays = [texture(128, 128, 40 + s) for s in range(3)]
    for s, a in enumerate(arrays):
        cv2.imwrite(str(tmp_path / f"n{s}.png"), a)
    bank = tmp_path / "sub" / "bank.safetensors"
    rc, out, err = run_cli(["anomaly", "fit", *(str(tmp_path / f"n{s}.png") for s in range(3)),
                            "--out", str(bank), "--tile-size", "64", "--overlap-ratio", "0.5",
                            "--input-size", "96", "--coreset-ratio", "0.5",
                            "--bank-dtype", "float16", "--scoring", "max", "--neighbors", "3",
                            "--threshold-margin", "0.5", "--specular", "mask",
                            "--specular-dilate", "2", "--intensity", "none", *FAST])
    assert rc == 0, err
    ref = PatchCore(tile_size=64, overlap_ratio=0.5, input_size=96, coreset_ratio=0.5,
                    bank_dtype="float16", scoring="max", num_neighbors=3, threshold_margin=0.5,
                    intensity=None, backend="onnxruntime", num_threads=2).fit(arrays)
    got = api(bank)
    assert got.bank is not None and got.bank.dtype == np.float16
    np.testing.assert_array_equal(got.bank, ref.bank)
    assert (got.tile_size, got.overlap_ratio, got.input_size) == ((64, 64), 0.5, (96, 96))
    assert (got.scoring, got.num_neighbors) == ("max", 3)
    assert (got.threshold, got.image_threshold) == (ref.threshold, ref.image_threshold)
    assert (got.specular, got.specular_dilate, got.intensity) == ("mask", 2, None)
    assert "3 image(s)" in out and "(float16)" in out
    glint = texture(128, 128, 50)
    glint[30:50, 70:90] = 255
    cv2.imwrite(str(tmp_path / "glint.png"), glint)
    scores = {}
    for mode in ("bank", "off"):
        res = tmp_path / mode
        extra = [] if mode == "bank" else ["--specular", "off"]
        rc, _, err = run_cli(["anomaly", "predict", str(bank), str(tmp_path / "glint.png"),
                              "--out", str(res), "--no-overlay", *extra, *FAST])
        assert rc == 0, err
        scores[mode] = json.loads((res / "glint.json").read_text())["score"]
    assert scores["bank"] == pytest.approx(got.predict(glint).score, rel=1e-6)
    got.specular = None
    assert scores["off"] == pytest.approx(got.predict(glint).score, rel=1e-6)
    assert scores["bank"] < scores["off"]  # the glint is glare: suppressed, it scores less


@pytest.fixture(scope="module")
def tests_dir(fitted):
    """Held-out normals, a dark and a bright planted blob, a name clash, and a file named like
    the summary."""
    t = fitted["dir"] / "test"
    (t / "other").mkdir(parents=True)
    images = {
        "dark": planted(100, DARK, 15),
        "bright": planted(101, BRIGHT, 250),
        "ok1": texture(SIZE, SIZE, 102),
        "ok2": texture(SIZE, SIZE, 103),
        "summary": texture(SIZE, SIZE, 104),
    }
    for name, img in images.items():
        cv2.imwrite(str(t / f"{name}.png"), img)
    cv2.imwrite(str(t / "other" / "ok1.png"), texture(SIZE, SIZE, 105))  # same stem as ok1
    images["other/ok1"] = texture(SIZE, SIZE, 105)
    return t, images


def test_predict_matches_the_api_and_finds_planted_blobs(fitted, tests_dir, tmp_path) -> None:
    t, images = tests_dir
    out = tmp_path / "out"
    rc, line, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(t), str(t / "other"),
                             "--out", str(out), "--overlay-format", "png", *FAST])
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    rows = {Path(r["path"]).relative_to(t).with_suffix("").as_posix(): r for r in summary["images"]}
    assert set(rows) == set(images)
    assert summary["failed"] == []
    # two inputs named ok1 and one named summary: nothing overwrites anything
    assert len({r["result"] for r in rows.values()}) == len(rows)
    assert rows["summary"]["result"] != "summary.json"
    pc = api(fitted["bank"])
    assert summary["image_threshold"] == pc.image_threshold
    assert summary["pixel_threshold"] == pc.threshold
    for name, img in images.items():
        row = rows[name]
        doc = json.loads((out / row["result"]).read_text())
        assert doc["path"] == row["path"] and doc["seconds"] > 0
        ref = pc.predict(img)
        assert doc["score"] == pytest.approx(ref.score, rel=1e-6) == row["score"]
        assert doc["is_anomalous"] == ref.is_anomalous == row["is_anomalous"]
        assert (doc["height"], doc["width"]) == (SIZE, SIZE)
        np.testing.assert_array_equal(region_boxes(doc), ref.boxes)
        assert row["regions"] == len(doc["regions"]) == len(ref.boxes)
        heat = cv2.imread(str(out / row["result"].replace(".json", "_heatmap.png")))
        np.testing.assert_array_equal(heat, ref.overlay(img))
    assert summary["anomalous"] == sum(r["is_anomalous"] for r in rows.values())
    # ground truth: held-out normals are normal; each blob makes its image anomalous and lies
    # in its strongest region
    normals = ("ok1", "ok2", "summary", "other/ok1")
    assert not any(rows[n]["is_anomalous"] for n in normals)
    normal_worst = max(rows[n]["score"] for n in normals)
    for name, box in (("dark", DARK), ("bright", BRIGHT)):
        doc = json.loads((out / rows[name]["result"]).read_text())
        assert doc["is_anomalous"] and doc["score"] > 2 * doc["image_threshold"]
        assert doc["score"] > 2 * normal_worst
        top = max(doc["regions"], key=lambda r: r["score"])
        assert contains(top["box"], box)
    assert f"{len(images)} image(s), {summary['anomalous']} anomalous" in line


def test_predict_threshold_overrides(fitted, tests_dir, tmp_path) -> None:
    """With the image threshold halved every image is anomalous, normals included (their scores
    lie near the calibrated threshold); --threshold moves the pixel mask as the API's does."""
    t, images = tests_dir
    pc = api(fitted["bank"])
    assert pc.threshold is not None and pc.image_threshold is not None
    pix, img_t = 1.5 * pc.threshold, 0.5 * pc.image_threshold
    out = tmp_path / "out"
    rc, _, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(t), "--out", str(out),
                          "--threshold", repr(pix), "--image-threshold", repr(img_t),
                          "--no-overlay", *FAST])
    assert rc == 0, err
    assert not list(out.glob("*.png"))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["pixel_threshold"], summary["image_threshold"]) == (pix, img_t)
    pc.threshold, pc.image_threshold = pix, img_t
    for row in summary["images"]:
        name = Path(row["path"]).stem
        doc = json.loads((out / row["result"]).read_text())
        assert doc["pixel_threshold"] == pix and doc["image_threshold"] == img_t
        assert doc["is_anomalous"] and doc["score"] > img_t
        ref = pc.predict(images[name])
        np.testing.assert_array_equal(region_boxes(doc), ref.boxes)


def test_predict_specular_suppress_and_bad_images(fitted, tests_dir, tmp_path) -> None:
    t, images = tests_dir
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    rc, line, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(t / "bright.png"),
                             str(broken), str(empty), "--out", str(out),
                             "--specular", "mask", "--specular-dilate", "3", *FAST])
    assert rc == 1
    assert "broken.png" in err and "empty.png" in err and "Traceback" not in err
    assert "1 image(s)" in line and "2 failed" in line
    summary = json.loads((out / "summary.json").read_text())
    assert [f["path"] for f in summary["failed"]] == [str(broken), str(empty)]
    assert not (out / "broken.json").exists()
    pc = api(fitted["bank"])
    plain = pc.predict(images["bright"]).score
    pc.specular, pc.specular_dilate = "mask", 3
    ref = pc.predict(images["bright"])
    doc = json.loads((out / "bright.json").read_text())
    assert doc["score"] == pytest.approx(ref.score, rel=1e-6)
    assert ref.score < plain  # the white blob is glare: suppressing it lowers the score


def test_bank_errors_exit_2_with_one_line(fitted, tests_dir, tmp_path) -> None:
    t, _ = tests_dir
    img = str(t / "ok1.png")
    data = fitted["bank"].read_bytes()
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 400, np.uint8)))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.numpy import save_file

    save_file({"weights": np.zeros((4, 4), np.float32)}, str(foreign))
    cases = [
        (corrupt, [], "corrupt"),
        (truncated, [], "corrupt or truncated"),
        (foreign, [], "not a fissure PatchCore bank"),
        (tmp_path / "none.safetensors", [], "no such memory-bank file"),
        (fitted["bank"], ["--backbone", pool_backbone(tmp_path)], "backbone sha256"),
    ]
    for bank, extra, words in cases:
        rc, _, err = run_cli(["anomaly", "predict", str(bank), img, "--out",
                              str(tmp_path / "o"), *extra, *FAST])
        assert rc == 2, (bank, err)
        assert words in err and "cannot use the memory bank" in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_input_and_option_errors(fitted, tmp_path) -> None:
    bank = str(fitted["bank"])
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run_cli(["anomaly", "predict", bank, str(empty), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no input images" in err
    rc, _, err = run_cli(["anomaly", "fit", str(empty), "--out", str(tmp_path / "b.safetensors")])
    assert rc == 2 and "no input images" in err
    bad = [tmp_path / "a.png", tmp_path / "b.jpg"]
    for p in bad:
        p.write_bytes(b"garbage")
    rc, _, err = run_cli(["anomaly", "fit", *map(str, bad), "--out", str(tmp_path / "b.safetensors"),
                          *FAST])
    assert rc == 2 and "none of the 2 normal image(s) could be read" in err
    assert not (tmp_path / "b.safetensors").exists()
    rc, _, err = run_cli(["anomaly", "fit", str(fitted["dir"] / "normal"), "--out",
                          str(tmp_path / "b.safetensors"), "--coreset-ratio", "2", *FAST])
    assert rc == 2 and "coreset_ratio" in err and "got 2.0" in err
    rc, _, err = run_cli(["anomaly", "fit", str(fitted["dir"] / "normal"), "--out", str(empty), *FAST])
    assert rc == 2 and "--out" in err and "folder" in err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    rc, _, err = run_cli(["anomaly", "predict", bank, str(fitted["dir"] / "normal"),
                          "--out", str(a_file), *FAST])
    assert rc == 2 and "--out" in err
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as cap:
        main(["anomaly", "predict", bank, str(bad[0]), "--out", str(tmp_path), "--threshold", "nan"])
    assert e.value.code == 2 and "finite number" in cap.getvalue()
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()):
        main(["anomaly", "fit", str(bad[0]), "--out", "x", "--tile-size", "64", "--no-tile"])
    assert e.value.code == 2


def test_entry_point_runs_predict(fitted, tests_dir, tmp_path) -> None:
    t, _ = tests_dir
    p = subprocess.run([sys.executable, "-m", "fissure", "anomaly", "predict", str(fitted["bank"]),
                        str(t / "dark.png"), "--out", str(tmp_path), "--no-overlay", *FAST],
                       check=False, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "1 image(s), 1 anomalous" in p.stdout
    doc = json.loads((tmp_path / "dark.json").read_text())
    assert doc["is_anomalous"] and any(contains(r["box"], DARK) for r in doc["regions"])


def test_model_failures_are_reported_not_raised(fitted, tests_dir, tmp_path, monkeypatch) -> None:
    """A backend error on one image skips that image (exit 1); during fit it is an error (2)."""
    t, _ = tests_dir
    real = PatchCore.predict

    def flaky(self, image):
        if int(image[0, 0, 0]) == 7:
            raise RuntimeError("backend\nfell over")
        return real(self, image)

    odd = texture(SIZE, SIZE, 106)
    odd[0, 0] = 7
    cv2.imwrite(str(tmp_path / "odd.png"), odd)
    monkeypatch.setattr(PatchCore, "predict", flaky)
    out = tmp_path / "out"
    rc, line, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(tmp_path / "odd.png"),
                             str(t / "ok1.png"), "--out", str(out), *FAST])
    assert rc == 1 and "odd.png" in err and "RuntimeError: backend fell over" in err
    assert "1 image(s)" in line and "1 failed" in line
    summary = json.loads((out / "summary.json").read_text())
    assert [r["result"] for r in summary["images"]] == ["ok1.json"]
    assert summary["failed"] == [{"path": str(tmp_path / "odd.png"),
                                  "error": "RuntimeError: backend fell over"}]

    def broken_fit(self, images, **kw):
        next(iter(images))
        raise RuntimeError("out of device memory")

    monkeypatch.setattr(PatchCore, "fit", broken_fit)
    bank = tmp_path / "b.safetensors"
    rc, _, err = run_cli(["anomaly", "fit", str(t / "ok1.png"), "--out", str(bank), *FAST])
    assert rc == 2 and "fit failed (RuntimeError: out of device memory)" in err
    assert "Traceback" not in err and not bank.exists()


def test_predict_resume_processes_only_what_is_left(fitted, tmp_path) -> None:
    """--resume: the images done before are not predicted again; the summary covers all."""
    t = tmp_path / "imgs"
    t.mkdir()
    for s in range(3):
        cv2.imwrite(str(t / f"p{s}.png"), planted(20 + s, DARK, 10))
    out = tmp_path / "out"
    rc, line, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(t / "p0.png"),
                             str(t / "p1.png"), "--out", str(out), *FAST])
    assert rc == 0, err
    first = json.loads((out / "p0.json").read_text())
    calls = []
    real = PatchCore.predict

    def counting(self, image, *a, **k):
        calls.append(1)
        return real(self, image, *a, **k)

    PatchCore.predict = counting
    try:
        rc, line, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(t), "--out",
                                 str(out), "--resume", *FAST])
    finally:
        PatchCore.predict = real
    assert rc == 0, err
    assert len(calls) == 1 and "2 done before, resumed" in line
    summary = json.loads((out / "summary.json").read_text())
    assert [r["result"] for r in summary["images"]] == ["p0.json", "p1.json", "p2.json"]
    assert json.loads((out / "p0.json").read_text()) == first  # untouched
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 3
    # other thresholds are another run: refused
    rc, line, err = run_cli(["anomaly", "predict", str(fitted["bank"]), str(t), "--out",
                             str(out), "--resume", "--threshold", "0.1", *FAST])
    assert rc == 2 and "other settings" in err and "threshold" in err
