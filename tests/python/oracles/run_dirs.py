"""What two folder runs (fissure.runs, fissure.distributed) must agree on, and the folder of
photos both test modules run over."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from fissure.runs import MANIFEST


def spot_folder(d: Path, n: int, height: int, width: int, spots: int) -> Path:
    """``d/imgs``: ``n`` photos with bright spots (``p00.png``...), and ``d/blobs.onnx``: the
    toy spot detector that finds them."""
    from fissure.detection.toy import bright_spot_model, bright_spots

    (d / "imgs").mkdir()
    for i in range(n):
        img, _ = bright_spots(height, width, spots, seed=i, value=200)
        cv2.imwrite(str(d / "imgs" / f"p{i:02d}.png"), img)
    (d / "blobs.onnx").write_bytes(bright_spot_model())
    return d


def run_contents(out: Path) -> dict[str, object]:
    """A run directory's files and what must not differ between runs (timings aside): JSON
    documents without their ``seconds`` and ``run`` entries, CSV rows without the seconds
    column, other files as bytes. ``run.json`` and the manifest are left out."""
    got: dict[str, object] = {}
    for f in sorted(out.iterdir()):
        if f.name in ("run.json", MANIFEST):
            continue
        if f.suffix == ".json":
            doc = json.loads(f.read_text())
            doc.pop("seconds", None)
            doc.pop("run", None)
            for r in doc.get("images", []):
                r.pop("seconds", None)
            got[f.name] = doc
        elif f.suffix == ".csv":
            rows = [ln.split(",") for ln in f.read_text().splitlines()]
            col = rows[0].index("seconds")
            got[f.name] = [r[:col] + r[col + 1:] for r in rows]
        else:
            got[f.name] = f.read_bytes()
    return got
