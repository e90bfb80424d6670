"""The bundled backbones by name: each file matches its manifest, runs with the manifest's
outputs, and a memory bank remembers which one it was built with (refused under another,
with a message naming both; a bank from before banks recorded the name loads as lite0)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
from fissure import models
from fissure.anomaly import PatchCore
from fissure.io import sha256_file


@pytest.mark.parametrize("name", sorted(models.BACKBONES))
def test_bundled_backbone_matches_manifest(name: str) -> None:
    m = models.backbone_manifest(name)
    path = models.backbone_file(name)
    assert sha256_file(path) == m["sha256"] == models.verify_backbone(None, name)
    assert path.stat().st_size == m["size_bytes"] < 6_000_000
    assert m["source"]["license"] == "Apache-2.0"
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = s.run(["feat8", "feat16"], {"images": np.zeros((1, 3, 64, 96), np.float32)})
    chans = {o["name"]: o["channels"] for o in m["outputs"]}
    assert outs[0].shape == (1, chans["feat8"], 8, 12)
    assert outs[1].shape == (1, chans["feat16"], 4, 6)


def test_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="lite0"):
        models.backbone_file("resnet")


def _fit(name: str) -> PatchCore:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(90, 160, (64, 64), dtype=np.uint8) for _ in range(5)]
    return PatchCore(name, tile_size=None, coreset_ratio=0.5, num_threads=1).fit(imgs)


def test_bank_records_its_backbone(tmp_path) -> None:
    pc = _fit("lite2")
    assert pc.bank.shape[1] == 48 + 120
    p = pc.save(tmp_path / "lite2.safetensors")
    back = PatchCore.load(p)  # the name comes from the file
    assert back.backbone_name == "lite2"
    np.testing.assert_array_equal(back.bank, pc.bank)
    img = np.random.default_rng(1).integers(90, 160, (64, 64), dtype=np.uint8)
    assert back.predict(img).score == pc.predict(img).score
    with pytest.raises(ValueError, match="built with the bundled 'lite2'.*lite0"):
        PatchCore.load(p, "lite0")


def test_old_bank_without_name_loads_as_lite0(tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from fissure.anomaly.patchcore import _checksum

    p = _fit("lite0").save(tmp_path / "new.safetensors")
    with safe_open(str(p), framework="numpy") as f:
        meta, bank = dict(f.metadata()), f.get_tensor("bank")
    del meta["backbone"]  # as written before banks recorded the name
    meta["sha256"] = _checksum(bank, meta)
    old = tmp_path / "old.safetensors"
    save_file({"bank": bank}, str(old), metadata=meta)
    assert PatchCore.load(old).backbone_name == "lite0"
    with pytest.raises(ValueError, match="built with the bundled 'lite0'.*lite2"):
        PatchCore.load(old, "lite2")
    assert json.loads(meta["layers"]) == ["feat8", "feat16"]
