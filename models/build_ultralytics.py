#!/usr/bin/env python3
"""Build small, real Ultralytics ONNX exports and their reference outputs (test oracles).

Run once, by hand, in a separate environment (see models/requirements-ultralytics.txt); fissure's
tests never import torch or ultralytics. Every model is built from a YAML (no weights are
downloaded; the weights are PyTorch's random initialisation under a fixed seed), exported with
Ultralytics' own ``model.export(format="onnx", ...)``, and written to tests/data/models/ with an
``.npz`` holding:

  input       (1, 3, H, W) float32: the Ultralytics predictor's own preprocess() of the reference
              image (LetterBox, pad 114, BGR->RGB, /255; RT-DETR: scale_fill stretch)
  orig_shape  (h, w) of the reference image before preprocessing
  orig_image  (h, w, 3) uint8 RGB reference image (a crop of skimage.data.astronaut())
  out_<i>     raw ONNX Runtime outputs on ``input``, in output order; out_names their names
  dets        (N, 6) float32 x1, y1, x2, y2, score, class in MODEL-INPUT pixels, from the
              predictor's own postprocess() called with an original image of the input's shape
              (so scale_boxes is the identity apart from its clip to the input)
  masks       (N, H, W) bool (segmentation only): Results.masks of that same postprocess()
              (ops.process_mask(..., upsample=True) then the predictor's empty-mask filter)
  conf        the threshold given to the predictor (the library keeps score > conf)
  plus versions and the ONNX metadata_props as JSON.

The random networks get BatchNorm running statistics from the reference image (train-mode forward
passes, no weight updates; see calibrate_batchnorm), else every score and box of an untrained head is
identical. ``conf`` is chosen per model between the 30th and 31st highest raw score.

Checks (non-zero exit at the first failure): onnx.checker (full_check), ONNX Runtime vs the PyTorch
model on ``input`` (max abs difference <= 5e-4 x the output's max |value|; top-k rows whose scores tie
within float error are matched before comparing), 5..60 detections, each file <= 3 MiB.

    python models/build_ultralytics.py                 # the five Ultralytics models
    python models/build_ultralytics.py yolo26_seg ...  # some of them
    python models/build_ultralytics.py rfdetr          # RF-DETR check (rfdetr_det.npz only, no ONNX shipped)
    python models/build_ultralytics.py all             # everything
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: is_online() is False, nothing is fetched
_CFG = tempfile.mkdtemp(prefix="ultra-cfg-")
os.environ.setdefault("YOLO_CONFIG_DIR", _CFG)  # keep the settings file out of $HOME

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import ultralytics  # noqa: E402
from ultralytics import RTDETR, YOLO  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "models"
NAMES = {0: "crack", 1: "scratch", 2: "stain"}
MAX_BYTES = 3 * 1024 * 1024
TARGET_DETS = 30  # conf is set between the 30th and 31st highest score
MIN_DETS, MAX_DETS = 5, 60

# ---------------------------------------------------------------------------------------------
# YAMLs: the layer lists of Ultralytics' own yolo26.yaml, yolo26-seg.yaml, yolov10n.yaml,
# rtdetr-l.yaml and yolo11-seg.yaml (8.4.x), with a tiny width scale (channels rounded to 8 by
# Ultralytics), nc=3. Only the scales line and, for RT-DETR, the explicit channel numbers differ.
# ---------------------------------------------------------------------------------------------
_Y26_BODY = """
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
  - [-1, 2, C3k2, [256, False, 0.25]]
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 2, C3k2, [512, False, 0.25]]
  - [-1, 1, Conv, [512, 3, 2]] # 5-P4/16
  - [-1, 2, C3k2, [512, True]]
  - [-1, 1, Conv, [1024, 3, 2]] # 7-P5/32
  - [-1, 2, C3k2, [1024, True]]
  - [-1, 1, SPPF, [1024, 5, 3, True]] # 9
  - [-1, 2, C2PSA, [1024]] # 10
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 6], 1, Concat, [1]]
  - [-1, 2, C3k2, [512, True]] # 13
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 2, C3k2, [256, True]] # 16 (P3/8)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 13], 1, Concat, [1]]
  - [-1, 2, C3k2, [512, True]] # 19 (P4/16)
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 10], 1, Concat, [1]]
  - [-1, 1, C3k2, [1024, True, 0.5, True]] # 22 (P5/32)
"""

YOLO26_DET = (
    """nc: 3
end2end: True
reg_max: 1
scales:
  n: [0.50, 0.0625, 1024]
"""
    + _Y26_BODY
    + "  - [[16, 19, 22], 1, Detect, [nc]]\n"
)

YOLO26_SEG = (
    """nc: 3
end2end: True
reg_max: 1
scales:
  n: [0.50, 0.0625, 1024]
"""
    + _Y26_BODY
    + "  - [[16, 19, 22], 1, Segment26, [nc, 32, 256]]\n"
)

YOLOV10_DET = """nc: 3
scales:
  n: [0.33, 0.0625, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
  - [-1, 3, C2f, [128, True]]
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 6, C2f, [256, True]]
  - [-1, 1, SCDown, [512, 3, 2]] # 5-P4/16
  - [-1, 6, C2f, [512, True]]
  - [-1, 1, SCDown, [1024, 3, 2]] # 7-P5/32
  - [-1, 3, C2f, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]] # 9
  - [-1, 1, PSA, [1024]] # 10
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 6], 1, Concat, [1]]
  - [-1, 3, C2f, [512]] # 13
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 3, C2f, [256]] # 16 (P3/8)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 13], 1, Concat, [1]]
  - [-1, 3, C2f, [512]] # 19 (P4/16)
  - [-1, 1, SCDown, [512, 3, 2]]
  - [[-1, 10], 1, Concat, [1]]
  - [-1, 3, C2fCIB, [1024, True, True]] # 22 (P5/32)
  - [[16, 19, 22], 1, v10Detect, [nc]]
"""

# rtdetr-l.yaml with the same module types in the same order; HGStem/HGBlock/AIFI channels and the
# decoder's hidden dim / heads / layers / FFN written small here (Ultralytics does not width-scale
# them), one HGBlock per stage, RepC3 depth 1. RTDETRDecoder args: nc, hd, nq, ndp, nh, ndl, d_ffn.
RTDETR_DET = """nc: 3
scales:
  l: [0.34, 0.25, 1024]
backbone:
  - [-1, 1, HGStem, [16, 16]] # 0-P2/4
  - [-1, 1, HGBlock, [16, 32, 3]] # stage 1
  - [-1, 1, DWConv, [128, 3, 2, 1, False]] # 2-P3/8 (32 after width 0.25)
  - [-1, 1, HGBlock, [24, 64, 3]] # stage 2
  - [-1, 1, DWConv, [256, 3, 2, 1, False]] # 4-P4/16 (64)
  - [-1, 1, HGBlock, [32, 96, 5, True, False]] # cm, c2, k, light, shortcut
  - [-1, 1, HGBlock, [32, 96, 5, True, True]] # 6
  - [-1, 1, HGBlock, [32, 96, 5, True, True]] # 7 stage 3
  - [-1, 1, DWConv, [384, 3, 2, 1, False]] # 8-P5/32 (96)
  - [-1, 1, HGBlock, [48, 128, 5, True, False]] # 9 stage 4
head:
  - [-1, 1, Conv, [256, 1, 1, None, 1, 1, False]] # 10 input_proj.2 (64)
  - [-1, 1, AIFI, [128, 4]]
  - [-1, 1, Conv, [256, 1, 1]] # 12, Y5, lateral_convs.0
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [7, 1, Conv, [256, 1, 1, None, 1, 1, False]] # 14 input_proj.1
  - [[-2, -1], 1, Concat, [1]]
  - [-1, 3, RepC3, [256]] # 16, fpn_blocks.0
  - [-1, 1, Conv, [256, 1, 1]] # 17, Y4, lateral_convs.1
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [3, 1, Conv, [256, 1, 1, None, 1, 1, False]] # 19 input_proj.0
  - [[-2, -1], 1, Concat, [1]]
  - [-1, 3, RepC3, [256]] # X3 (21), fpn_blocks.1
  - [-1, 1, Conv, [256, 3, 2]] # 22, downsample_convs.0
  - [[-1, 17], 1, Concat, [1]]
  - [-1, 3, RepC3, [256]] # F4 (24), pan_blocks.0
  - [-1, 1, Conv, [256, 3, 2]] # 25, downsample_convs.1
  - [[-1, 12], 1, Concat, [1]]
  - [-1, 3, RepC3, [256]] # F5 (27), pan_blocks.1
  - [[21, 24, 27], 1, RTDETRDecoder, [nc, 64, 300, 4, 4, 2, 128]]
"""

YOLO11_SEG = """nc: 3
scales:
  n: [0.50, 0.0625, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
  - [-1, 2, C3k2, [256, False, 0.25]]
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 2, C3k2, [512, False, 0.25]]
  - [-1, 1, Conv, [512, 3, 2]] # 5-P4/16
  - [-1, 2, C3k2, [512, True]]
  - [-1, 1, Conv, [1024, 3, 2]] # 7-P5/32
  - [-1, 2, C3k2, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]] # 9
  - [-1, 2, C2PSA, [1024]] # 10
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 6], 1, Concat, [1]]
  - [-1, 2, C3k2, [512, False]] # 13
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 2, C3k2, [256, False]] # 16 (P3/8)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 13], 1, Concat, [1]]
  - [-1, 2, C3k2, [512, False]] # 19 (P4/16)
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 10], 1, Concat, [1]]
  - [-1, 2, C3k2, [1024, True]] # 22 (P5/32)
  - [[16, 19, 22], 1, Segment, [nc, 32, 256]]
"""

# name, yaml, model class, export kwargs. nms=False selects the NMS-free (one-to-one, end-to-end)
# branch in Ultralytics 8.4.x; nms=None (the default) exports the raw one-to-many head instead.
SPECS = [
    ("yolo26_det", YOLO26_DET, YOLO, dict(imgsz=320, dynamic=True, nms=False)),
    ("yolo26_seg", YOLO26_SEG, YOLO, dict(imgsz=320, nms=False)),
    ("yolov10_det", YOLOV10_DET, YOLO, dict(imgsz=320, nms=False)),
    ("rtdetr_det", RTDETR_DET, RTDETR, dict(imgsz=320)),
    # NMS inside the graph: conf / iou are baked into the graph at export
    ("yolo11_seg_nms", YOLO11_SEG, YOLO, dict(imgsz=320, nms=True, conf=None, iou=0.7)),
]


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def reference_image() -> np.ndarray:
    """RGB uint8 (384, 512, 3): rows 32..415 of skimage.data.astronaut() (CC0), non-square on purpose."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[32:416])


def calibrate_batchnorm(net: torch.nn.Module, image_rgb: np.ndarray) -> None:
    """Give the random network usable BatchNorm statistics (the image, flipped and channel-swapped).

    With PyTorch's default init and BN running stats of (0, 1) the untrained head's outputs are all
    equal (every score identical, every box the same size), which makes a useless oracle. Recomputing
    the running statistics on a few real images in train mode (cumulative average, no gradient, no
    weight changes) gives varied scores and boxes. Nothing else is changed.
    """
    import cv2

    x = torch.from_numpy(cv2.resize(image_rgb, (320, 320))).permute(2, 0, 1)[None].float() / 255
    for b in net.modules():
        if isinstance(b, torch.nn.modules.batchnorm._BatchNorm):
            b.reset_running_stats()
            b.momentum = None
    net.train()
    with torch.no_grad():
        for xx in (x, x.flip(3), x.flip(2), x[:, [2, 1, 0]]):
            net(xx)
    net.eval()


def first_tensor(y):
    while isinstance(y, (list, tuple)):
        y = y[0]
    return y


def flat_tensors(y):
    if isinstance(y, torch.Tensor):
        return [y]
    out = []
    for v in y:
        out += flat_tensors(v) if isinstance(v, (list, tuple)) else ([v] if isinstance(v, torch.Tensor) else [])
    return out


def pick_conf(scores: np.ndarray) -> float:
    """A float32-representable threshold between the TARGET_DETS-th and next highest distinct score."""
    s = np.unique(scores.astype(np.float32))[::-1]
    k = min(TARGET_DETS, len(s) - 1)
    hi, lo = float(s[k - 1]), float(s[k])
    return float(np.float32((hi + lo) / 2))


def candidate_scores(name: str, raw: np.ndarray) -> np.ndarray:
    if raw.ndim == 3 and raw.shape[1] == 300:  # (1, 300, 6[+32]) end-to-end / NMS-in-graph: score column
        return raw[0, :, 4]
    return raw[0, 4 : 4 + len(NAMES)].max(0)  # raw one-to-many head (1, 4+nc[+32], A): best class per anchor


def build(name: str, yaml_text: str, cls, kw: dict, work: Path, image_rgb: np.ndarray) -> dict:
    print(f"\n===== {name} =====", flush=True)
    yaml_path = work / f"{name}.yaml"
    yaml_path.write_text(yaml_text)
    torch.manual_seed(0)
    model = cls(str(yaml_path))
    model.model.names = dict(NAMES)
    calibrate_batchnorm(model.model, image_rgb)
    task = model.task
    im_bgr = np.ascontiguousarray(image_rgb[..., ::-1])  # Ultralytics takes cv2-style BGR arrays

    kw = dict(kw)
    if name == "yolo11_seg_nms":
        # conf is baked into the NMS graph: pick it from the raw head of the same torch model first
        model.predict(im_bgr, imgsz=320, verbose=False, save=False)
        tp = model.predictor
        x0 = tp.preprocess([im_bgr])
        raw0 = first_tensor(tp.inference(x0)).detach().numpy()
        kw["conf"] = pick_conf(candidate_scores(name, raw0))

    exported = Path(model.export(format="onnx", simplify=True, **kw))
    dst = OUT / f"{name}.onnx"
    shutil.copyfile(exported, dst)
    size = dst.stat().st_size
    print(f"{dst.relative_to(ROOT)}: {size} bytes", flush=True)
    if size > MAX_BYTES:
        fail(f"{name}: {size} bytes > {MAX_BYTES}")

    om = onnx.load(str(dst))
    onnx.checker.check_model(om, full_check=True)
    meta = {p.key: p.value for p in om.metadata_props}
    io = {
        "inputs": [(v.name, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim],
                    onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)) for v in om.graph.input],
        "outputs": [(v.name, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim],
                     onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)) for v in om.graph.output],
        "opset": [(o.domain, o.version) for o in om.opset_import],
    }

    # The library's own predictor on the exported ONNX (AutoBackend + ONNX Runtime)
    omodel = RTDETR(str(dst)) if cls is RTDETR else YOLO(str(dst), task=task)
    omodel.predict(im_bgr, imgsz=320, verbose=False, save=False)
    p = omodel.predictor
    x = p.preprocess([im_bgr])  # LetterBox (or scale_fill for RT-DETR), BGR->RGB, /255
    xin = x.detach().cpu().numpy().astype(np.float32)

    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    outs = sess.run(None, {sess.get_inputs()[0].name: xin})

    # The torch model (the library's fused AutoBackend around the in-memory model) on the same input
    # nms=False makes the predictor select the end-to-end head, as the export did
    model.predict(im_bgr, imgsz=320, verbose=False, save=False, **({"nms": False} if kw.get("nms") is False else {}))
    tp = model.predictor
    with torch.no_grad():
        ty = tp.inference(x)
    if name == "yolo11_seg_nms":
        # the graph holds NMS: compare its inputs (the raw head) via the same export wrapper in torch
        from ultralytics.engine.exporter import NMSModel
        from types import SimpleNamespace

        inner = tp.model.model
        head = inner.model[-1]
        head.export, head.format, head.xyxy = True, "onnx", True
        args = SimpleNamespace(**{**vars(p.args), "format": "onnx", "conf": kw["conf"], "iou": kw["iou"],
                                   "max_det": 300, "dynamic": False, "batch": 1, "agnostic_nms": False,
                                   "opset": None, "quantize": None})
        with torch.no_grad():
            tlist = [t.numpy() for t in flat_tensors(NMSModel(inner, args)(x))]
        head.export, head.xyxy = False, False
    else:
        tlist = [t.detach().numpy() for t in flat_tensors(ty)]
    for i, o in enumerate(outs):
        match = [t for t in tlist if t.shape == o.shape]
        if not match:
            fail(f"{name}: no torch output of shape {o.shape} among {[t.shape for t in tlist]}")
        # boxes are in pixels (up to ~400): compare relative to each output's scale
        scale = max(1.0, float(np.abs(o).max()))
        err = min(float(np.abs(t - o).max()) for t in match)
        if err > 1e-4 * scale and o.ndim == 3 and o.shape[1] == 300:
            # top-k rows whose scores tie within float error may come out in another order: match each
            # ONNX row to its nearest torch row (one-to-one) and compare those
            t = match[0][0]
            d = np.abs(o[0][:, None, :] - t[None, :, :]).max(-1)
            j = d.argmin(1)
            if len(set(j.tolist())) == len(j):
                err2 = float(d[np.arange(len(j)), j].max())
                moved = int((j != np.arange(len(j))).sum())
                print(f"  {out_names[i]}: {moved} rows in another order (scores within "
                      f"{float(np.abs(o[0][:, 4] - t[j, 4]).max()):.2g}); matched rows differ by {err2:.3g}")
                err = err2
        errs = [np.abs(t - o).reshape(-1, o.shape[-1]).max(0).round(6).tolist() for t in match]
        print(f"  {out_names[i]} {o.shape}: max |onnxruntime - torch| = {err:.3g} (max |value| {scale:.4g}); "
              f"per last-axis column {errs[0][:8]}")
        if err > 5e-4 * scale:  # float32 with random weights: activations reach the hundreds
            fail(f"{name}: ONNX Runtime differs from torch on {out_names[i]}: {err}")

    # conf: between the 30th and 31st best score of the raw output (the library keeps score > conf)
    conf = kw["conf"] if name == "yolo11_seg_nms" else pick_conf(candidate_scores(name, outs[0]))
    p.args.conf = conf
    preds = p.inference(x)
    zeros = [np.zeros((xin.shape[2], xin.shape[3], 3), np.uint8)]  # orig shape == input shape: no rescale
    res = p.postprocess(preds, x, zeros)[0]
    dets = res.boxes.data.detach().cpu().numpy().astype(np.float32)
    n = len(dets)
    n_above = int((candidate_scores(name, outs[0]) > conf).sum())
    print(f"  conf={conf!r}: {n} detections ({n_above} raw rows/anchors with score > conf)")
    if not MIN_DETS <= n <= MAX_DETS:
        fail(f"{name}: {n} detections with conf {conf}")

    rec = dict(
        input=xin,
        orig_shape=np.array(image_rgb.shape[:2], np.int64),
        orig_image=image_rgb,
        out_names=np.array(out_names),
        dets=dets,
        conf=np.float32(conf),
        conf_float64=np.float64(conf),
        n_raw_above_conf=np.int64(n_above),
        task=np.array(task),
        names=np.array(json.dumps(NAMES)),
        ultralytics_version=np.array(ultralytics.__version__),
        torch_version=np.array(torch.__version__),
        onnxruntime_version=np.array(ort.__version__),
        onnx_version=np.array(onnx.__version__),
        metadata_props=np.array(json.dumps(meta)),
        image_source=np.array("skimage.data.astronaut()[32:416] (RGB, 384x512), BGR copy given to Ultralytics"),
    )
    for i, o in enumerate(outs):
        rec[f"out_{i}"] = o
    if res.masks is not None:
        masks = res.masks.data.detach().cpu().numpy().astype(bool)
        rec["masks"] = masks
        print(f"  masks {masks.shape}, pixels per mask {masks.reshape(len(masks), -1).sum(1).tolist()[:8]}...")
    elif task == "segment":
        fail(f"{name}: no masks")
    np.savez_compressed(OUT / f"{name}.npz", **rec)
    print(f"  {name}.npz: {(OUT / f'{name}.npz').stat().st_size} bytes")
    return dict(name=name, size=size, io=io, meta=meta, conf=conf, n=n, input_shape=list(xin.shape),
                outputs=[(nm, list(o.shape)) for nm, o in zip(out_names, outs)],
                masks=list(rec["masks"].shape) if "masks" in rec else None)


def build_rfdetr(image_rgb: np.ndarray, work: Path) -> dict:
    """RF-DETR Nano, random init (pretrain_weights=None: no download), exported by RF-DETR's own exporter.

    The ONNX (~107 MB: a DINOv2-small backbone) is NOT shipped; rfdetr_det.npz holds the library's
    preprocessed input, the raw ONNX outputs and RF-DETR's own PostProcess result in input pixels.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import rfdetr
    from rfdetr import RFDETRNano

    print("\n===== rfdetr_det =====", flush=True)
    torch.manual_seed(0)
    m = RFDETRNano(pretrain_weights=None, num_classes=len(NAMES), device="cpu")
    net = m.model.model
    # RF-DETR zero-initialises the last layer of every box-regression MLP, so an untrained model returns
    # its encoder anchors unchanged (all boxes 0.05 x 0.05 on the grid). Small random weights there make
    # the boxes vary (the layout and every op stay RF-DETR's own).
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, prm in net.named_parameters():
            if "bbox_embed" in n and n.endswith("layers.2.weight") and not prm.any():
                prm.copy_(torch.randn(prm.shape, generator=g) * 0.02)
    cap: dict = {}
    h1 = net.register_forward_pre_hook(lambda mod, args: cap.__setitem__("x", args[0].detach().clone()))
    h2 = net.register_forward_hook(lambda mod, args, out: cap.__setitem__("y", out))
    # RFDETR.predict's own preprocessing (to float /255, F.resize(antialias=False) to 384x384 stretch,
    # F.normalize with ImageNet mean/std), captured at the network's input
    sv0 = m.predict(image_rgb, threshold=0.0)
    h1.remove()
    h2.remove()
    x = cap["x"]
    y = cap["y"]
    t_boxes = (y["pred_boxes"] if isinstance(y, dict) else y[0]).detach().numpy()
    t_logits = (y["pred_logits"] if isinstance(y, dict) else y[1]).detach().numpy()

    onnx_path = Path(m.export(output_dir=str(work / "rfdetr"), format="onnx", verbose=False))
    size = onnx_path.stat().st_size
    om = onnx.load(str(onnx_path), load_external_data=False)
    onnx.checker.check_model(str(onnx_path))
    meta = {p.key: p.value for p in om.metadata_props}
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_meta = sess.get_inputs()[0]
    out_names = [o.name for o in sess.get_outputs()]
    xin = x.numpy().astype(np.float32)
    outs = sess.run(None, {in_meta.name: xin})
    print(f"  {onnx_path.name}: {size} bytes (not shipped); input {in_meta.name} {in_meta.shape} {in_meta.type}; "
          f"outputs {[(o.name, o.shape, o.type) for o in sess.get_outputs()]}; metadata_props {meta}")
    for nm, o, t in zip(out_names, outs, (t_boxes, t_logits)):
        err = float(np.abs(o - t).max())
        print(f"  {nm} {o.shape}: max |onnxruntime - torch| = {err:.3g} (max |value| {float(np.abs(o).max()):.4g})")
        if err > 5e-4 * max(1.0, float(np.abs(o).max())):
            fail(f"rfdetr: ONNX Runtime differs from torch on {nm}: {err}")

    # RF-DETR's own PostProcess (sigmoid, top-300 over queries x classes, cxcywh -> xyxy times the
    # target size, clamp to [0, size]) with target size == input size, then predict()'s `scores > threshold`
    boxes, logits = outs[out_names.index("dets")], outs[out_names.index("labels")]
    H, W = xin.shape[2:]
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    conf = pick_conf(np.sort(probs.reshape(-1))[::-1][:300])
    res = m.model.postprocess({"pred_logits": torch.from_numpy(logits), "pred_boxes": torch.from_numpy(boxes)},
                              target_sizes=torch.tensor([[H, W]]), score_threshold=conf)[0]
    keep = (res["scores"] > conf).nonzero(as_tuple=True)[0]
    dets = torch.cat([res["boxes"][keep], res["scores"][keep, None], res["labels"][keep, None].float()], 1)
    dets = dets.numpy().astype(np.float32)
    sv = m.predict(image_rgb, threshold=conf)  # the full library path on the original image (torch)
    print(f"  conf={conf!r}: {len(dets)} detections in input pixels; predict() on the original image: {len(sv)}")
    if not MIN_DETS <= len(dets) <= MAX_DETS:
        fail(f"rfdetr: {len(dets)} detections")
    rec = dict(
        input=xin,
        orig_shape=np.array(image_rgb.shape[:2], np.int64),
        out_names=np.array(out_names),
        dets=dets,
        conf=np.float32(conf),
        conf_float64=np.float64(conf),
        dets_orig_xyxy=sv.xyxy.astype(np.float32),
        dets_orig_score=sv.confidence.astype(np.float32),
        dets_orig_class=sv.class_id.astype(np.int64),
        means=np.array(m.means, np.float32),
        stds=np.array(m.stds, np.float32),
        onnx_size_bytes=np.int64(size),
        onnx_input=np.array(json.dumps([in_meta.name, in_meta.shape, in_meta.type])),
        onnx_outputs=np.array(json.dumps([(o.name, o.shape, o.type) for o in sess.get_outputs()])),
        metadata_props=np.array(json.dumps(meta)),
        rfdetr_version=np.array(rfdetr.__version__ if hasattr(rfdetr, "__version__") else "1.11.2"),
        torch_version=np.array(torch.__version__),
        onnxruntime_version=np.array(ort.__version__),
        image_source=np.array("skimage.data.astronaut()[32:416] (RGB, 384x512), RGB array given to RF-DETR"),
    )
    for i, o in enumerate(outs):
        rec[f"out_{i}"] = o
    np.savez_compressed(OUT / "rfdetr_det.npz", **rec)
    print(f"  rfdetr_det.npz: {(OUT / 'rfdetr_det.npz').stat().st_size} bytes")
    return dict(name="rfdetr_det", onnx_size=size, meta=meta, conf=conf, n=len(dets), input_shape=list(xin.shape),
                outputs=[(nm, list(o.shape)) for nm, o in zip(out_names, outs)], n_orig=len(sv))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    if "all" in only:
        only = {name for name, *_ in SPECS} | {"rfdetr"}
    image = reference_image()
    summary = []
    with tempfile.TemporaryDirectory(prefix="ultra-build-") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # Ultralytics writes runs/ etc. relative to the working directory
        try:
            for name, yaml_text, cls, kw in SPECS:
                if only and name not in only:
                    continue
                summary.append(build(name, yaml_text, cls, kw, Path(tmp), image))
            if "rfdetr" in only:  # separate, on request only: needs rfdetr installed (see requirements)
                summary.append(build_rfdetr(image, Path(tmp)))
        finally:
            os.chdir(cwd)
    print("\n===== summary =====")
    for s in summary:
        print(json.dumps(s, default=str))
    print(f"ultralytics {ultralytics.__version__}, torch {torch.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}")


if __name__ == "__main__":
    main()
