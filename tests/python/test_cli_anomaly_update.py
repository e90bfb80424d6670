"""`fissure anomaly update` end to end with the bundled backbone on synthetic brushed metal.

Oracles: the Python API (PatchCore.load(bank).update on the same arrays gives the bank and
thresholds the command writes and prints), planted ground truth (a benign variation alarms
against the old bank and not against the updated one) and the files on disk (the old bank is
never touched, a refused or failed run writes nothing)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")
from fissure.anomaly import PatchCore
from fissure.anomaly.synthetic import brushed_metal
from test_cli_anomaly import FAST, run_cli

S = 256
VARIANT = (-20.0, 0.0, 25.0)


def api(path) -> PatchCore:
    return PatchCore.load(path, backend="onnxruntime", num_threads=2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("update")
    (d / "normal").mkdir()
    (d / "review").mkdir()
    for s in range(3):
        cv2.imwrite(str(d / "normal" / f"n{s}.png"), brushed_metal(S, S, seed=s))
    variant = [brushed_metal(S, S, seed=10 + s, tint=VARIANT) for s in range(4)]
    for s, a in enumerate(variant):
        cv2.imwrite(str(d / "review" / f"v{s}.png"), a)
    crop = brushed_metal(S, S, seed=20, tint=VARIANT)[40:88, 100:164]  # a 64 x 48 review crop
    cv2.imwrite(str(d / "crop.png"), crop)
    bank = d / "bank.safetensors"
    rc, _, err = run_cli(["anomaly", "fit", str(d / "normal"), "--out", str(bank),
                          "--tile-size", "128", "--coreset-ratio", "0.1", *FAST])
    assert rc == 0, err
    return {"dir": d, "bank": bank, "variant": variant, "crop": crop}


def test_update_writes_the_bank_the_api_updates(setup) -> None:
    d, bank = setup["dir"], setup["bank"]
    before = bank.read_bytes()
    out = d / "bank2.safetensors"
    rc, line, err = run_cli(["anomaly", "update", str(bank), "--normal", str(d / "review"),
                             str(d / "crop.*"), "--out", str(out), *FAST])
    assert rc == 0, err
    assert bank.read_bytes() == before  # the old bank is kept as it was
    ref = api(bank).update([*setup["variant"], setup["crop"]])
    got = api(out)
    np.testing.assert_array_equal(got.bank, ref.bank)
    assert (got.threshold, got.image_threshold) == (ref.threshold, ref.image_threshold)
    assert got.calibration == ref.calibration and got.calibration["updates"] == 1
    old = api(bank)
    st = ref.stats
    assert line.count("\n") == 1 and "5 image(s)" in line
    assert f"{st['new_tiles']} tile(s)" in line and f"{st['new_patches']} patches" in line
    assert f"bank {old.bank.shape[0]} -> {ref.bank.shape[0]} rows" in line
    assert f"pixel {old.threshold:.4g} -> {ref.threshold:.4g}" in line
    assert f"image {old.image_threshold:.4g} -> {ref.image_threshold:.4g}" in line
    assert str(out) in line
    assert not list(d.glob(".*.tmp"))
    # the feedback loop: a held-out image of the variation alarms before, not after
    probe = brushed_metal(S, S, seed=30, tint=VARIANT)
    assert len(old.predict(probe).boxes) > 0
    assert len(got.predict(probe).boxes) == 0


def test_update_refuses_to_overwrite_the_bank_unless_forced(setup, tmp_path) -> None:
    bank = tmp_path / "bank.safetensors"
    bank.write_bytes(setup["bank"].read_bytes())
    before = bank.read_bytes()
    rc, out, err = run_cli(["anomaly", "update", str(bank), "--normal",
                            str(setup["dir"] / "crop.png"), "--out", str(bank), *FAST])
    assert rc == 2 and "--force" in err and out == "" and bank.read_bytes() == before
    rc, out, err = run_cli(["anomaly", "update", str(bank), "--normal",
                            str(setup["dir"] / "crop.png"), "--out", str(bank), "--force",
                            "--coreset-ratio", "0.5", *FAST])
    assert rc == 0, err
    got = api(bank)
    ref = api(setup["bank"]).update([setup["crop"]], coreset_ratio=0.5)
    np.testing.assert_array_equal(got.bank, ref.bank)
    assert not list(tmp_path.glob(".*.tmp"))


def test_unusable_inputs_are_skipped_or_refused(setup, tmp_path) -> None:
    d, bank = setup["dir"], setup["bank"]
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), setup["crop"][:20, :30])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not an image")
    out = tmp_path / "b2.safetensors"
    # one usable crop, one too small, one unreadable: exit 1, the usable one is added
    rc, line, err = run_cli(["anomaly", "update", str(bank), "--normal", str(small), str(broken),
                             str(d / "crop.png"), "--out", str(out), *FAST])
    assert rc == 1, err
    assert "small.png" in err and "32 x 32" in err and "broken.png" in err
    assert "2 skipped" in line and "1 image(s)" in line and "Traceback" not in err
    np.testing.assert_array_equal(api(out).bank, api(bank).update([setup["crop"]]).bank)
    # nothing usable: exit 2, nothing written
    out3 = tmp_path / "b3.safetensors"
    rc, line, err = run_cli(["anomaly", "update", str(bank), "--normal", str(small),
                             str(broken), "--out", str(out3), *FAST])
    assert rc == 2 and "none of the 2" in err and line == "" and not out3.exists()
    # an input matching nothing, a bad ratio, a folder as --out: exit 2 before any work
    for extra, words in [(["--normal", str(tmp_path / "nothing*.png"), "--out", str(out3)],
                          "matched no file"),
                         (["--normal", str(d / "crop.png"), "--out", str(out3),
                           "--coreset-ratio", "1.5"], "--coreset-ratio"),
                         (["--normal", str(d / "crop.png"), "--out", str(tmp_path)], "folder")]:
        rc, line, err = run_cli(["anomaly", "update", str(bank), *extra, *FAST])
        assert rc == 2 and words in err and not out3.exists(), (extra, err)


def test_a_corrupt_or_missing_bank_is_refused(setup, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    data = setup["bank"].read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    out = tmp_path / "b2.safetensors"
    for bank, words in [(corrupt, "corrupt"), (tmp_path / "none.safetensors", "no such")]:
        rc, line, err = run_cli(["anomaly", "update", str(bank), "--normal",
                                 str(setup["dir"] / "crop.png"), "--out", str(out), *FAST])
        assert rc == 2 and words in err and "Traceback" not in err and not out.exists(), err


def test_a_failed_update_leaves_the_output_as_it_was(setup, tmp_path, monkeypatch) -> None:
    out = tmp_path / "b2.safetensors"
    out.write_bytes(b"the previous file")

    def boom(self, *a, **k):
        raise RuntimeError("backbone failed")

    monkeypatch.setattr(PatchCore, "update", boom)
    rc, line, err = run_cli(["anomaly", "update", str(setup["bank"]), "--normal",
                             str(setup["dir"] / "crop.png"), "--out", str(out), *FAST])
    assert rc == 2 and "backbone failed" in err
    assert out.read_bytes() == b"the previous file" and not list(tmp_path.glob(".*.tmp"))
