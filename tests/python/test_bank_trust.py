"""A memory bank is not trusted: its checksum covers every metadata field as well as the
bank (format version 2), every field is checked at load by the constructor's own rules (a
forged checksum does not get a bad value through), a version-1 bank is refused with a
message to re-fit it; a one-row bank still scores (the plain nearest distance; oracle:
numpy distances to the one row); a failed construction raises the same clear error on every
call; and the CLI refuses a bad bank before it processes any image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
safetensors = pytest.importorskip("safetensors")
cv2 = pytest.importorskip("cv2")

from safetensors import safe_open  # noqa: E402
from safetensors.numpy import save as st_save  # noqa: E402

from fissure.anomaly import PatchCore  # noqa: E402
from fissure.anomaly.patchcore import _checksum  # noqa: E402
from fissure.cli import main  # noqa: E402
from test_patchcore import texture  # noqa: E402

KW = {"backend": "onnxruntime", "num_threads": 2}


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("trust")
    pc = PatchCore(tile_size=64, overlap_ratio=0.25, coreset_ratio=0.25, **KW)
    pc.fit([texture(128, 128, s) for s in range(3)])
    return pc.save(d / "bank.safetensors")


def read(p: Path) -> tuple[dict, np.ndarray]:
    with safe_open(str(p), framework="numpy") as f:
        return dict(f.metadata()), f.get_tensor("bank")


def write(p: Path, meta: dict, arr: np.ndarray, *, reseal: bool) -> Path:
    meta = dict(meta)
    if reseal:  # what a careful forger does: recompute the checksum
        meta["sha256"] = _checksum(arr, meta)
    p.write_bytes(st_save({"bank": arr}, metadata=meta))
    return p


TAMPERED = [
    ("tile_size", "[512]", "tile_size"),
    ("tile_size", "[1, 1]", "tile_size"),
    ("tile_size", "[16, 16]", "tile_size"),
    ("input_size", "[1, 1]", "input_size"),
    ("input_size", '"big"', "input_size"),
    ("overlap_ratio", "NaN", "overlap_ratio"),
    ("overlap_ratio", "0.99", "overlap_ratio"),
    ("threshold", "nan", "threshold"),
    ("threshold", "-1.0", "threshold"),
    ("image_threshold", "inf", "image_threshold"),
    ("num_neighbors", "-3", "num_neighbors"),
    ("num_neighbors", "2.5", "num_neighbors"),
    ("scoring", "bogus", "scoring"),
    ("layers", "[]", "layers"),
    ("layers", "[1, 2]", "layers"),
    ("specular", '"paint"', "specular"),
    ("specular_dilate", "999", "specular_dilate"),
    ("normalisation", '{"scale": 0, "mean": [0, 0, 0], "std": [1, 1, 1], "rgb": true}',
     "normalisation scale"),
    ("normalisation", '{"scale": 1, "mean": [0, 0, 0], "std": [0, 1, 1], "rgb": true}',
     "normalisation std"),
    ("normalisation", '{"scale": 1, "mean": [0, 0], "std": [1, 1, 1], "rgb": true}',
     "normalisation"),
]


@pytest.mark.parametrize(("field", "value", "words"), TAMPERED,
                         ids=[f"{f}={v}" for f, v, _ in TAMPERED])
def test_tampered_metadata_is_refused(bank, tmp_path, field, value, words) -> None:
    meta, arr = read(bank)
    meta[field] = value
    # edited in place: the checksum catches it
    with pytest.raises(ValueError, match="checksum does not match"):
        PatchCore.load(write(tmp_path / "edited.safetensors", meta, arr, reseal=False), **KW)
    # edited and resealed: the value itself is refused, naming the field
    with pytest.raises(ValueError, match="invalid PatchCore metadata") as e:
        PatchCore.load(write(tmp_path / "forged.safetensors", meta, arr, reseal=True), **KW)
    assert words in str(e.value) and "forged.safetensors" in str(e.value)


def test_the_bank_round_trips_and_the_checksum_covers_it(bank, tmp_path) -> None:
    pc = PatchCore.load(bank, **KW)
    meta, arr = read(bank)
    assert meta["format_version"] == "2" and meta["sha256"] == _checksum(arr, meta)
    assert pc.tile_size == (64, 64) and pc.num_neighbors == 9 and np.isfinite(pc.threshold)
    flipped = arr.copy()
    flipped[0, 0] += 1.0
    with pytest.raises(ValueError, match="checksum"):
        PatchCore.load(write(tmp_path / "b.safetensors", meta, flipped, reseal=False), **KW)
    with pytest.raises(TypeError, match="tile_size"):
        PatchCore.load(bank, tile_size=128, **KW)


def test_a_version_1_bank_is_refused_with_a_re_fit_message(bank, tmp_path) -> None:
    meta, arr = read(bank)
    meta["format_version"] = "1"
    del meta["sha256"]
    import hashlib

    meta["bank_sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
    p = write(tmp_path / "v1.safetensors", meta, arr, reseal=False)
    with pytest.raises(ValueError, match="version 1.*re-fit the bank"):
        PatchCore.load(p, **KW)


def test_the_constructor_keeps_tiles_at_least_twice_the_coarsest_stride() -> None:
    for bad in (16, 31, (32, 8)):
        with pytest.raises(ValueError, match=r"tile_size.*32\.\.8192"):
            PatchCore(tile_size=bad)
        with pytest.raises(ValueError, match=r"input_size.*32\.\.8192"):
            PatchCore(input_size=bad)
    assert PatchCore(tile_size=32, input_size=32).tile_size == (32, 32)


def test_a_one_row_bank_scores_the_plain_nearest_distance() -> None:
    """With one row, anomalib's reweighting over min(b, 1) = 1 neighbour gives weight 0: every
    image scored 0 and a defect was called normal. Oracle: the largest distance of the test
    image's patches to the one row (the bank's only entry), by numpy."""
    pc = PatchCore(tile_size=None, coreset_ratio=1e-6, holdout=0.0, **KW)
    pc.fit([texture(64, 64, 1)])
    assert pc.bank.shape[0] == 1
    assert pc.threshold > 0 and pc.image_threshold > 0
    defect = texture(64, 64, 2)
    defect[20:36, 20:36] = 15
    (_, emb), = pc._embed_tiles(pc._prepare(defect), pc._tiles(64, 64))
    rows = emb.reshape(-1, emb.shape[-1]).astype(np.float64)
    oracle = float(np.sqrt(((rows - pc.bank[0].astype(np.float64)) ** 2).sum(1)).max())
    res = pc.predict(defect)
    assert res.score == pytest.approx(oracle, rel=1e-4)
    assert res.score > pc.image_threshold and res.is_anomalous
    normal = pc.predict(texture(64, 64, 1))
    assert 0 < normal.score < res.score


def test_a_failed_construction_raises_the_same_error_every_time() -> None:
    pc = PatchCore(layers=("nope",), **KW)
    for _ in range(3):
        with pytest.raises(ValueError, match=r"no output named \['nope'\]"):
            pc.model  # noqa: B018
    with pytest.raises(ValueError, match=r"no output named \['nope'\]"):
        pc.fit([texture(64, 64, 0)])
    with pytest.raises(ValueError, match=r"no output named \['nope'\]"):
        pc.fit([texture(64, 64, 0)])


def test_the_cli_refuses_a_bad_bank_before_any_image(bank, tmp_path, monkeypatch,
                                                    capsys) -> None:
    meta, arr = read(bank)
    meta["layers"] = json.dumps(["feat8", "nope"])
    forged = write(tmp_path / "forged.safetensors", meta, arr, reseal=True)
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), texture(64, 64, 5))
    seen = []
    real = PatchCore.predict
    monkeypatch.setattr(PatchCore, "predict", lambda self, image: seen.append(1) or real(self, image))
    rc = main(["anomaly", "predict", str(forged), str(img), "--out", str(tmp_path / "o"),
               "--backend", "onnxruntime", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot use the memory bank" in err and "nope" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not seen and not (tmp_path / "o").exists()
