"""Builds real anomalib 2.x exports with anomalib's own training and export code.

Run in a separate environment (torch, anomalib; see models/requirements-anomalib.txt), never
in fissure's:

    python3 -m venv /tmp/venv-anomalib
    /tmp/venv-anomalib/bin/pip install -r models/requirements-anomalib.txt
    /tmp/venv-anomalib/bin/python models/build_anomalib.py [--out tests/data/anomalib] \
        [--cache ~/.cache/fissure/anomalib] [--skip-efficientad]

What it writes:

- ``OUT/padim/model.onnx`` + ``model.onnx.data``, ``OUT/padim/model.xml`` + ``.bin``: PaDiM (resnet18 ``layer1``, random
  init: ``pre_trained=False`` downloads nothing; 32 features), trained with ``Engine.fit`` on
  synthetic 64 x 64 images made here (a smooth texture; defects: dark and bright blobs with
  masks), thresholds and min-max calibrated by anomalib's PostProcessor on the validation
  split, exported with ``Engine.export`` at the default dynamic input size.
- ``OUT/patchcore/model.onnx`` (+ ``.data``): PatchCore (resnet18 ``layer1``, random init, coreset 0.1), same
  data, exported with a static ``input_size=(64, 64)``.
- ``OUT/<name>/reference.npz``: the oracle of fissure's tests: ``tiles`` (N, 64, 64, 3) uint8
  BGR, ``input`` (N, 3, 64, 64) float32 RGB in [0, 1] (what anomalib's own inference takes),
  and the torch model's outputs on it in eval mode (``pred_score``, ``pred_label``,
  ``anomaly_map``, ``pred_mask``); PaDiM also ``tiles_96`` / ``input_96`` and outputs
  ``*_96`` for 96 x 80 tiles that the graph resizes inside.
- ``CACHE/efficientad_s/model.onnx`` + ``.data`` (~30 MB, not committed): EfficientAD-S built with random
  weights (its pretrained teacher is a download, which this script never does), teacher
  channel statistics and map quantiles computed by anomalib's own methods on synthetic
  256 x 256 images, thresholds by ``Engine.validate``; exported with ``model.to_onnx`` at the
  dynamic default. Used by benchmarks/bench_anomaly_model.py.

Every export is checked against the torch model (ONNX Runtime, and OpenVINO for the IR);
the script exits non-zero when they differ.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

SIZE = 64


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A defect-free image: a smooth coloured texture plus fine sensor noise (BGR uint8)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = np.stack([
        128 + 30 * np.sin(x / 5.0 + phase[0]) * np.cos(y / 7.0 + phase[1]),
        120 + 25 * np.sin((x + y) / 6.0 + phase[2]),
        110 + 20 * np.cos(x / 9.0 - y / 4.0 + phase[0]),
    ], axis=-1)
    base += rng.normal(0, 4, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def defect(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image with a dark or bright blob, and its mask (uint8 0/255)."""
    h, w = img.shape[:2]
    out = img.copy()
    mask = np.zeros((h, w), np.uint8)
    r = int(rng.integers(max(3, h // 16), max(5, h // 6)))
    cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
    cv2.circle(mask, (cx, cy), r, 255, -1)
    value = 20 if rng.random() < 0.5 else 235
    out[mask > 0] = value
    return out, mask


def write_dataset(root: Path, size: int, n_good: int, n_bad: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for d in ("good", "defect", "mask", "test_good"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        cv2.imwrite(str(root / "good" / f"{i:03d}.png"), texture(rng, size, size))
    for i in range(max(2, n_good // 3)):
        cv2.imwrite(str(root / "test_good" / f"{i:03d}.png"), texture(rng, size, size))
    for i in range(n_bad):
        img, m = defect(rng, texture(rng, size, size))
        cv2.imwrite(str(root / "defect" / f"{i:03d}.png"), img)
        cv2.imwrite(str(root / "mask" / f"{i:03d}.png"), m)


def datamodule(root: Path, batch: int):
    from anomalib.data import Folder

    dm = Folder(name="synthetic", root=root, normal_dir="good", abnormal_dir="defect",
                normal_test_dir="test_good", mask_dir="mask", train_batch_size=batch,
                eval_batch_size=batch, num_workers=0, seed=0)
    dm.setup()
    return dm


def engine(root: Path):
    from anomalib.engine import Engine

    return Engine(default_root_dir=str(root / "results"), accelerator="cpu", devices=1,
                  logger=False, enable_progress_bar=False)


def reference_inputs(seed: int, h: int, w: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """n tiles (half with a defect) as BGR uint8, and the model input: RGB float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n):
        t = texture(rng, h, w)
        if i % 2:
            t, _ = defect(rng, t)
        tiles.append(t)
    bgr = np.stack(tiles)
    x = np.ascontiguousarray(bgr[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32) / 255.0
    return bgr, x


def torch_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return {k: v.detach().cpu().numpy() for k, v in out._asdict().items() if v is not None}


def compare(name: str, got: dict, want: dict, atol: float) -> list[str]:
    errors = []
    for k, v in want.items():
        if k not in got:
            errors.append(f"{name}: output {k} missing (has {sorted(got)})")
            continue
        g = np.asarray(got[k]).reshape(np.shape(v))
        if v.dtype == bool:
            # a pixel within atol of the threshold may flip: allow 0.1 %
            bad = float(np.mean(g != v))
            if bad > 1e-3:
                errors.append(f"{name}: {k} differs in {bad:.2%} of its values")
        else:
            err = float(np.max(np.abs(g.astype(np.float64) - v.astype(np.float64))))
            if not err <= atol:
                errors.append(f"{name}: {k} max abs error {err:.3g} > {atol}")
        print(f"  {name} {k}: ok" if not errors or not errors[-1].startswith(f"{name}: {k}")
              else f"  {errors[-1]}")
    return errors


def run_onnxruntime(path: Path, x: np.ndarray) -> dict:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, {s.get_inputs()[0].name: x})))


def run_openvino(path: Path, x: np.ndarray) -> dict:
    import openvino as ov

    core = ov.Core()
    c = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    r = c(x)
    return {o.get_any_name(): np.asarray(r[o]) for o in c.outputs}


def describe_export(path: Path) -> dict:
    """What the export holds: inputs, outputs, opset, metadata_props (recorded in
    OUT/exports.json)."""
    import onnx

    m = onnx.load(str(path))

    def dims(t):
        return [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim]

    return {
        "inputs": {i.name: dims(i) for i in m.graph.input},
        "outputs": {o.name: dims(o) for o in m.graph.output},
        "opset": [f"{o.domain or 'ai.onnx'}:{o.version}" for o in m.opset_import],
        "metadata_props": {p.key: p.value for p in m.metadata_props},
        "producer": f"{m.producer_name} {m.producer_version}",
    }


def fit_small(kind: str, data: Path):
    from anomalib.models import Padim, Patchcore

    if kind == "padim":
        model = Padim(backbone="resnet18", layers=["layer1"], pre_trained=False, n_features=32,
                      pre_processor=Padim.configure_pre_processor(image_size=(SIZE, SIZE)),
                      visualizer=False)
    else:
        model = Patchcore(backbone="resnet18", layers=["layer1"], pre_trained=False,
                          coreset_sampling_ratio=0.1, num_neighbors=9,
                          pre_processor=Patchcore.configure_pre_processor(image_size=(SIZE, SIZE)),
                          visualizer=False)
    eng = engine(data)
    eng.fit(model=model, datamodule=datamodule(data, 8))
    return eng, model


def export_small(kind: str, out: Path, data: Path, errors: list[str], found: dict) -> None:
    from anomalib.deploy import ExportType

    print(f"{kind}: fit")
    eng, model = fit_small(kind, data)
    pp = model.post_processor
    found[kind] = {"post_processor": {k: float(getattr(pp, k)) for k in (
        "image_min", "image_max", "pixel_min", "pixel_max", "image_threshold",
        "pixel_threshold", "normalized_image_threshold", "normalized_pixel_threshold")}}
    static = (SIZE, SIZE) if kind == "patchcore" else None
    dest = out / kind
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(eng.export(model=model, export_type=ExportType.ONNX, export_root=tmp,
                                    input_size=static))
        found[kind]["onnx_written"] = sorted(str(p.relative_to(tmp))
                                             for p in Path(tmp).rglob("*") if p.is_file())
        # the files as anomalib wrote them: the dynamo exporter keeps the weights in
        # model.onnx.data beside model.onnx (named inside the graph: keep the names)
        for f in onnx_path.parent.iterdir():
            shutil.copyfile(f, dest / f.name)
        if kind == "padim":
            xml = Path(eng.export(model=model, export_type=ExportType.OPENVINO,
                                  export_root=tmp, input_size=static))
            found[kind]["openvino_written"] = sorted(
                str(p.relative_to(tmp)) for p in Path(tmp).rglob("*") if p.is_file()
                and "openvino" in str(p))
            import openvino as ov

            ovm = ov.Core().read_model(str(xml))
            info = ovm.get_rt_info()
            found[kind]["openvino_rt_info_keys"] = sorted(str(k) for k in info.keys())
            found[kind]["openvino_inputs"] = [str(i) for i in ovm.inputs]
            found[kind]["openvino_outputs"] = [str(o) for o in ovm.outputs]
            for f in xml.parent.iterdir():
                shutil.copyfile(f, dest / f.name)
    found[kind]["onnx"] = describe_export(dest / "model.onnx")
    tiles, x = reference_inputs(7, SIZE, SIZE)
    ref = {"tiles": tiles, "input": x}
    want = torch_outputs(model, x)
    ref.update(want)
    errors += compare(f"{kind}/model.onnx onnxruntime", run_onnxruntime(dest / "model.onnx", x),
                      want, 2e-4)
    if kind == "padim":
        errors += compare(f"{kind}/model.xml openvino", run_openvino(dest / "model.xml", x),
                          want, 2e-4)
        tiles96, x96 = reference_inputs(11, 96, 80)
        want96 = torch_outputs(model, x96)
        ref.update({"tiles_96": tiles96, "input_96": x96})
        ref.update({f"{k}_96": v for k, v in want96.items()})
        errors += compare(f"{kind}/model.onnx onnxruntime 96x80",
                          run_onnxruntime(dest / "model.onnx", x96), want96, 2e-4)
    np.savez_compressed(dest / "reference.npz", **ref)


def export_efficientad(cache: Path, data: Path, errors: list[str], found: dict) -> None:
    from anomalib.models import EfficientAd

    print("efficientad: build (random weights), calibrate, export")
    model = EfficientAd(model_size="small", visualizer=False)
    dm = datamodule(data, 4)
    model.model.mean_std.update(model.teacher_channel_mean_std(dm.train_dataloader()))
    eng = engine(data)
    eng.validate(model=model, datamodule=dm)  # map quantiles, then min-max and thresholds
    pp = model.post_processor
    found["efficientad"] = {"post_processor": {k: float(getattr(pp, k)) for k in (
        "image_min", "image_max", "pixel_min", "pixel_max", "image_threshold",
        "pixel_threshold")}}
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / "efficientad_s"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(model.to_onnx(tmp))
        for f in p.parent.iterdir():
            shutil.copyfile(f, dest / f.name)
    found["efficientad"]["onnx"] = describe_export(dest / "model.onnx")
    _, x = reference_inputs(5, 256, 256, n=2)
    want = torch_outputs(model, x)
    np.savez_compressed(dest / "reference.npz", input=x, **want)
    errors += compare("efficientad_s/model.onnx onnxruntime",
                      run_onnxruntime(dest / "model.onnx", x), want, 1e-3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--out", type=Path, default=root / "tests" / "data" / "anomalib")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fissure" / "anomalib")
    ap.add_argument("--skip-efficientad", action="store_true")
    args = ap.parse_args(argv)

    import anomalib
    import torch

    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    found: dict = {"anomalib": anomalib.__version__, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small"
        write_dataset(small, SIZE, n_good=12, n_bad=6, seed=1)
        export_small("padim", args.out, small, errors, found)
        torch.manual_seed(0)
        export_small("patchcore", args.out, small, errors, found)
        if not args.skip_efficientad:
            big = Path(tmp) / "big"
            write_dataset(big, 256, n_good=6, n_bad=3, seed=2)
            torch.manual_seed(0)
            export_efficientad(args.cache, big, errors, found)
    (args.out / "exports.json").write_text(json.dumps(found, indent=1, default=str) + "\n")
    for e in errors:
        print("FAIL", e, file=sys.stderr)
    print("ok" if not errors else f"{len(errors)} check(s) failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
