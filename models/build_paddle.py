"""Build tiny PaddleDetection PP-YOLOE+ ONNX exports and Paddle's own reference outputs.

Run once, by hand, in the environment of models/requirements-paddle.txt (NOT in CI):

    python3 -m venv /tmp/venv-paddle
    /tmp/venv-paddle/bin/pip install -r models/requirements-paddle.txt
    /tmp/venv-paddle/bin/pip install --no-deps paddledet==2.6.0
    /tmp/venv-paddle/bin/python models/build_paddle.py

What it does, for each model:
  1. writes a PaddleDetection config (our own YAML text below, with the layout of PP-YOLOE+:
     CSPResNet backbone, CustomCSPPAN neck, PPYOLOEHead with MultiClassNMS; tiny
     width_mult/depth_mult, nc=3, eval size 320x320) and builds it with ppdet's own
     `load_config` + `Trainer(cfg, mode='test')`;
  2. gives the prediction convs of the head seeded random weights (ppdet initialises them to
     constants, which would make every score 0.01 and every box the same);
  3. exports with ppdet's own `Trainer.export` (paddle.jit.to_static + paddle.jit.save, the
     path of PaddleDetection's tools/export_model.py; `exclude_nms: true` for the raw model);
  4. converts the inference model with paddle2onnx (opset 11);
  5. preprocesses a fixed image with ppdet's own TestReader transforms (Decode, Resize,
     NormalizeImage, Permute), runs Paddle Inference (paddle.inference predictor) and ONNX
     Runtime on the same feeds and checks that they agree;
  6. for the raw model also runs Paddle's own multiclass_nms op (the config's MultiClassNMS
     object, dygraph) on the raw boxes/scores;
  7. writes tests/data/models/<name>.onnx and <name>.npz.

Files: ppyoloe_{nms,raw} (PP-YOLOE+) and ppyoloe_sod_{nms,raw} (PP-YOLOE+-SOD neck).
npz keys, per case prefix "" (reference image, scale_factor [1, 1]), "scaled_" (same image
tensor as "", the image's real scale_factor [sy, sx]), "blank_" (black image, no detection),
"batch2_" (reference image with [1, 1] + its mirror image with the real factor):
  <p>input (B,3,320,320) float32 (absent for scaled_), <p>scale_factor (B,2) float32,
  <p>out_<i> (ONNX Runtime; absent for batch2_ of the NMS models, which ONNX Runtime rejects),
  <p>paddle_out_<i> (Paddle Inference), raw models only: <p>paddle_nms_out_{0,1} (Paddle's
  multiclass_nms on <p>paddle_out_*: rows (N,6), counts (B,) int32);
plus out_names, input_names, nms_settings (JSON), preprocess (JSON), orig_image (256x384x3
uint8 RGB), real_scale_factor, notes, paddle2onnx_warnings.

Exit status is non-zero at the first failed check.
"""
# ppdet must be imported before paddle: with paddlepaddle 2.6.2 wheels, importing scipy /
# sklearn / pycocotools after paddle crashes in zlib (inflateReset2); ppdet's own import order
# avoids it.
import ppdet  # noqa: F401  (import order matters, see above)
from ppdet.core.workspace import load_config
from ppdet.data.reader import Compose
from ppdet.engine import Trainer

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import paddle
from paddle import inference as paddle_infer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "data", "models")
SIZE = 320          # static H = W of the exported models (TestReader inputs_def.image_shape)
NUM_CLASSES = 3
OPSET = 11
SEED = 20260412
# std of the random weights of the head's class / box prediction convs (see randomize_head);
# the SOD neck ends in a transformer encoder whose features are larger
HEAD_STD = {"plus": (4.0, 0.5), "sod": (0.08, 0.1)}

# NMS settings. nms_top_k / keep_top_k / nms_threshold are those of PP-YOLOE+'s config;
# score_threshold is raised from 0.01 so that the untrained model keeps a few dozen rows.
NMS = {
    "plus": dict(score_threshold=0.30, nms_threshold=0.7, nms_top_k=1000, keep_top_k=300),
    "sod": dict(score_threshold=0.20, nms_threshold=0.7, nms_top_k=1000, keep_top_k=300),
}

CONFIG = """\
architecture: YOLOv3
use_gpu: false
use_xpu: false
use_mlu: false
use_npu: false
log_iter: 20
save_dir: {save_dir}
snapshot_epoch: 1
weights: none
metric: COCO
num_classes: {nc}
norm_type: bn
use_ema: false
depth_mult: 0.33
width_mult: 0.125
exclude_nms: {exclude_nms}
eval_size: [{size}, {size}]

TestDataset:
  !ImageFolder
    anno_path: null

YOLOv3:
  backbone: CSPResNet
  neck: CustomCSPPAN
  yolo_head: PPYOLOEHead
  post_process: ~

CSPResNet:
  layers: [3, 6, 6, 3]
  channels: [64, 128, 256, 512, 1024]
  return_idx: [1, 2, 3]
  use_large_stem: true
  use_alpha: true

CustomCSPPAN:
  out_channels: [768, 384, 192]
  stage_num: 1
  block_num: 3
  act: swish
  spp: true
{neck_extra}
PPYOLOEHead:
  fpn_strides: [32, 16, 8]
  grid_cell_scale: 5.0
  grid_cell_offset: 0.5
  static_assigner_epoch: {static_assigner_epoch}
  use_varifocal_loss: true
  loss_weight: {{class: 1.0, iou: 2.5, dfl: 0.5}}
{head_extra}
  static_assigner:
    name: ATSSAssigner
    topk: 9
  assigner:
    name: {assigner}
    topk: 13
    alpha: 1.0
    beta: 6.0
  nms:
    name: MultiClassNMS
    nms_top_k: {nms_top_k}
    keep_top_k: {keep_top_k}
    score_threshold: {score_threshold}
    nms_threshold: {nms_threshold}

TestReader:
  inputs_def:
    image_shape: [3, {size}, {size}]
  sample_transforms:
    - Decode: {{}}
    - Resize: {{target_size: [{size}, {size}], keep_ratio: false, interp: 2}}
    - NormalizeImage: {{mean: [0., 0., 0.], std: [1., 1., 1.], norm_type: none}}
    - Permute: {{}}
  batch_size: 1
"""

VARIANTS = {
    # PP-YOLOE+ (ppyoloe_plus_crn_*): plain CustomCSPPAN, reg_max 16.
    "plus": dict(neck_extra="", head_extra="", static_assigner_epoch=30,
                 assigner="TaskAlignedAssigner"),
    # PP-YOLOE+-SOD (ppyoloe_plus_sod_crn_*): transformer encoder on the stride-32 feature
    # of the neck (use_trans) and reg_range [-2, 17]. Tiny: 1 encoder layer, feed-forward 256
    # (the real configs: 4 layers, 2048) to keep the file small.
    "sod": dict(neck_extra="  use_trans: true\n  num_layers: 1\n  dim_feedforward: 256\n",
                head_extra="  reg_range: [-2, 17]", static_assigner_epoch=-1,
                assigner="TaskAlignedAssigner_CR\n    center_radius: 1"),
}


def fail(msg):
    print("FAILED:", msg, file=sys.stderr)
    sys.exit(1)


def check_close(name, a, b, atol=1e-4, rtol=1e-4):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        fail(f"{name}: shapes differ {a.shape} vs {b.shape}")
    if a.dtype.kind in "iu":
        if not np.array_equal(a, b):
            fail(f"{name}: integer outputs differ {a} vs {b}")
        return
    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
    if not np.allclose(a, b, atol=atol, rtol=rtol):
        bad = np.argwhere(~np.isclose(a, b, atol=atol, rtol=rtol))
        print(f"{name}: {len(bad)} values differ, first at {bad[:5].tolist()}")
        if a.ndim == 2:
            for r in sorted(set(bad[:5, 0].tolist())):
                print("   row", r, a[r].tolist(), "vs", b[r].tolist())
        fail(f"{name}: max abs diff {err}")
    print(f"  ok {name} {a.shape} {a.dtype} max|diff|={err:.2e}")


def sort_rows(rows):
    """NMS rows (class, score, x1, y1, x2, y2) in a canonical order: class, then score
    descending, then coordinates."""
    keys = [rows[:, k].round(2) for k in (5, 4, 3, 2)] + [-rows[:, 1].round(4), rows[:, 0]]
    return rows[np.lexsort(keys)]


def write_config(tmp, variant, exclude_nms):
    text = CONFIG.format(save_dir=os.path.join(tmp, "save"), nc=NUM_CLASSES, size=SIZE,
                         exclude_nms="true" if exclude_nms else "false",
                         **VARIANTS[variant], **NMS[variant])
    name = f"ppyoloe_{variant}_{'raw' if exclude_nms else 'nms'}"
    path = os.path.join(tmp, name + ".yml")
    with open(path, "w") as f:
        f.write(text)
    return path


def randomize_head(model, variant):
    """Seeded random weights for the head's prediction convs (ppdet initialises them to
    constants). Everything else keeps ppdet's own random initialisation under paddle.seed."""
    rng = np.random.default_rng(SEED)
    head = model.yolo_head
    for conv in head.pred_cls:
        # logits = -4.6 (ppdet's prior-0.01 bias) + a strong random projection of the features
        w = conv.weight.numpy()
        conv.weight.set_value(rng.normal(0.0, HEAD_STD[variant][0], w.shape).astype("float32"))
    rc = head.reg_channels
    for conv in head.pred_reg:
        # distribution-focal bins: bias highest at the bin of distance 1.5 (in strides) and
        # falling off around it (boxes a few strides wide), plus a random projection of the
        # features
        w = conv.weight.numpy()
        conv.weight.set_value(rng.normal(0.0, HEAD_STD[variant][1], w.shape).astype("float32"))
        dist = head.reg_range[0] + np.arange(rc)
        bias = np.tile(-0.5 * np.abs(dist - 1.5), 4) + rng.normal(0.0, 0.3, 4 * rc)
        conv.bias.set_value(bias.astype("float32"))


def export(cfg_path, out_dir, variant, state=None):
    cfg = load_config(cfg_path)
    paddle.seed(SEED)
    trainer = Trainer(cfg, mode="test")
    if state is None:
        randomize_head(trainer.model, variant)
    else:
        trainer.model.set_state_dict(state)
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    # paddledet 2.6.0 was written for paddle 2.4, where to_static traced the whole graph (AST);
    # since paddle 2.5 the default is the bytecode (SOT) path, on which ppdet's export cannot
    # read `forward.main_program`. full_graph=True restores the AST path (later ppdet releases
    # pass it themselves).
    to_static = paddle.jit.to_static
    paddle.jit.to_static = functools.partial(to_static, full_graph=True)
    try:
        trainer.export(out_dir)
    finally:
        paddle.jit.to_static = to_static
    name = os.path.splitext(os.path.basename(cfg_path))[0]
    return cfg, trainer.model, state, os.path.join(out_dir, name)


def to_onnx(model_dir, onnx_path):
    cmd = ["paddle2onnx", "--model_dir", model_dir, "--model_filename", "model.pdmodel",
           "--params_filename", "model.pdiparams", "--save_file", onnx_path,
           "--opset_version", str(OPSET), "--enable_onnx_checker", "True"]
    exe = os.path.join(os.path.dirname(sys.executable), "paddle2onnx")
    cmd[0] = exe if os.path.exists(exe) else cmd[0]
    print(" ", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    log = r.stdout + r.stderr
    print("\n".join("    " + line for line in log.splitlines() if "WARN" in line))
    if r.returncode != 0 or not os.path.exists(onnx_path):
        print(log)
        fail("paddle2onnx")
    onnx.checker.check_model(onnx.load(onnx_path))
    return log


class PaddlePredictor:
    """Paddle Inference, set up like PaddleDetection's deploy/python/infer.py on the CPU."""

    def __init__(self, model_dir):
        config = paddle_infer.Config(os.path.join(model_dir, "model.pdmodel"),
                                     os.path.join(model_dir, "model.pdiparams"))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(1)
        config.disable_glog_info()
        config.enable_memory_optim()
        config.switch_use_feed_fetch_ops(False)
        self.predictor = paddle_infer.create_predictor(config)

    def __call__(self, feeds):
        for name in self.predictor.get_input_names():
            self.predictor.get_input_handle(name).copy_from_cpu(feeds[name])
        self.predictor.run()
        return [self.predictor.get_output_handle(n).copy_to_cpu()
                for n in self.predictor.get_output_names()]


def preprocess(cfg, rgb):
    """ppdet's own TestReader sample transforms on an RGB uint8 image (fed to Decode as PNG
    bytes, which Decode turns back into the same RGB array)."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    sample = Compose(cfg["TestReader"]["sample_transforms"], NUM_CLASSES)(
        {"image": png.tobytes(), "im_id": np.array([0])})
    return (sample["image"][None].astype(np.float32),
            np.asarray(sample["scale_factor"], np.float32)[None])


def reference_image():
    from skimage import data
    img = data.astronaut()            # 512x512 RGB, CC0
    return np.ascontiguousarray(img[16:272, 64:448])   # 256 x 384 crop (H x W): face, flag


def build(variant):
    tmp = tempfile.mkdtemp(prefix=f"ppyoloe_{variant}_")
    exp = os.path.join(tmp, "export")
    results = {}
    state = None
    for exclude_nms in (False, True):
        kind = "raw" if exclude_nms else "nms"
        name = "ppyoloe" + ("" if variant == "plus" else "_sod") + "_" + kind
        print(f"== {name}")
        cfg_path = write_config(tmp, variant, exclude_nms)
        cfg, model, state, model_dir = export(cfg_path, exp, variant, state)
        onnx_path = os.path.join(OUT_DIR, name + ".onnx")
        p2o_log = to_onnx(model_dir, onnx_path)

        img = reference_image()
        x, real_sf = preprocess(cfg, img)
        one = np.ones((1, 2), np.float32)
        blank_x, _ = preprocess(cfg, np.zeros_like(img))
        flip_x, _ = preprocess(cfg, np.ascontiguousarray(img[:, ::-1]))
        cases = {
            "": (x, one),
            "scaled_": (x, real_sf),
            "blank_": (blank_x, one),
            "batch2_": (np.concatenate([x, flip_x]), np.concatenate([one, real_sf])),
        }

        pred = PaddlePredictor(model_dir)
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        in_names = [i.name for i in sess.get_inputs()]
        out_names = [o.name for o in sess.get_outputs()]
        npz = {
            "input_names": np.array(in_names), "out_names": np.array(out_names),
            "orig_image": img, "real_scale_factor": real_sf,
            "nms_settings": np.array(json.dumps(dict(NMS[variant], normalized=True,
                                                     nms_eta=1.0, background_label=-1))),
            "preprocess": np.array(json.dumps(cfg["TestReader"]["sample_transforms"])),
        }
        nms_obj = model.yolo_head.nms
        notes = []
        for prefix, (xi, sfi) in cases.items():
            feeds = {"image": xi, "scale_factor": sfi,
                     "im_shape": np.tile(np.array([[SIZE, SIZE]], np.float32), (len(xi), 1))}
            p_out = pred(feeds)
            if prefix != "scaled_":      # scaled_ runs the same image as the first case
                npz[prefix + "input"] = xi
            npz[prefix + "scale_factor"] = sfi
            for i, o in enumerate(p_out):
                npz[f"{prefix}paddle_out_{i}"] = o
            try:
                o_out = sess.run(None, {n: feeds[n] for n in in_names})
            except Exception as e:  # recorded, and only tolerated for NMS at batch 2
                o_out = None
                msg = f"{prefix or 'ref_'}: onnxruntime raised {type(e).__name__}: {e}"
                notes.append(msg)
                print("  NOTE", msg)
                if not (kind == "nms" and prefix == "batch2_"):
                    fail(msg)
            if o_out is not None:
                for i, o in enumerate(o_out):
                    npz[f"{prefix}out_{i}"] = o
                same = (len(o_out) == len(p_out)
                        and all(a.shape == b.shape for a, b in zip(o_out, p_out))
                        and all(np.allclose(a, b, atol=1e-4, rtol=1e-4)
                                for a, b in zip(o_out, p_out)))
                if kind == "nms" and prefix == "batch2_" and not same:
                    msg = ("batch2_: ONNX Runtime differs from Paddle: onnx shapes "
                           f"{[a.shape for a in o_out]} {o_out[1].tolist()} vs paddle "
                           f"{[a.shape for a in p_out]} {p_out[1].tolist()}")
                    notes.append(msg)
                    print("  NOTE", msg)
                elif kind == "nms" and not same and o_out[0].shape == p_out[0].shape:
                    # the same rows in another order?
                    check_close(f"{name} {prefix}out_0 (rows as a set)",
                                sort_rows(o_out[0]), sort_rows(p_out[0]))
                    check_close(f"{name} {prefix}out_1", o_out[1], p_out[1])
                    msg = (f"{prefix or 'ref_'}: ONNX Runtime and Paddle give the same rows in "
                           "another order")
                    notes.append(msg)
                    print("  NOTE", msg)
                    print("    onnx  ", o_out[0][:, :2].round(3).tolist())
                    print("    paddle", p_out[0][:, :2].round(3).tolist())
                else:
                    for i, (a, b) in enumerate(zip(o_out, p_out)):
                        check_close(f"{name} {prefix}out_{i}", a, b)
            if kind == "raw":
                boxes, scores = p_out
                print("  score quantiles 0 .5 .9 .99 1:",
                      np.quantile(scores, [0, .5, .9, .99, 1]).round(4).tolist(), "top 5,20,60:", np.sort(scores.max(1).ravel())[::-1][[4, 19, 59]].round(4).tolist())
                nb, nn_, _ = ppdet.modeling.ops.multiclass_nms(
                    paddle.to_tensor(boxes), paddle.to_tensor(scores),
                    score_threshold=nms_obj.score_threshold, nms_top_k=nms_obj.nms_top_k,
                    keep_top_k=nms_obj.keep_top_k, nms_threshold=nms_obj.nms_threshold,
                    normalized=nms_obj.normalized, nms_eta=nms_obj.nms_eta,
                    return_index=False, return_rois_num=True)
                npz[prefix + "paddle_nms_out_0"] = nb.numpy()
                npz[prefix + "paddle_nms_out_1"] = nn_.numpy()
            print(f"  {prefix or 'ref_'}: paddle outputs "
                  f"{[(o.shape, o.dtype.name) for o in p_out]}"
                  + (f" counts {p_out[1].tolist()}" if kind == "nms" else
                     f" nms rows {npz[prefix + 'paddle_nms_out_0'].shape} counts "
                     f"{npz[prefix + 'paddle_nms_out_1'].tolist()}"))
        # boxes in the scaled case are those of scale_factor 1 divided by (sx, sy, sx, sy)
        sy, sx = real_sf[0]
        div = np.array([1.0, 1.0, sx, sy, sx, sy], np.float32)
        if kind == "raw":
            check_close(f"{name} scaled boxes == boxes / scale_factor",
                        npz["scaled_paddle_out_0"], npz["paddle_out_0"] / div[2:], atol=1e-3)
        else:
            check_close(f"{name} scaled rows == rows / scale_factor",
                        npz["scaled_paddle_out_0"], npz["paddle_out_0"] / div, atol=1e-3)
        npz["notes"] = np.array("\n".join(notes))
        npz["paddle2onnx_warnings"] = np.array(
            "\n".join(l for l in p2o_log.splitlines() if "WARN" in l))
        np.savez_compressed(os.path.join(OUT_DIR, name + ".npz"), **npz)
        results[name] = (npz, onnx_path, model_dir)

    # the NMS model on the raw model's outputs: same weights, so Paddle's NMS on the raw
    # outputs must equal the NMS model's rows
    pre = "ppyoloe" + ("" if variant == "plus" else "_sod")
    a, b = results[pre + "_nms"][0], results[pre + "_raw"][0]
    for prefix in ("", "scaled_", "blank_", "batch2_"):
        check_close(f"{pre} nms-model vs NMS(raw) {prefix}rows",
                    a[prefix + "paddle_out_0"], b[prefix + "paddle_nms_out_0"])
        check_close(f"{pre} nms-model vs NMS(raw) {prefix}counts",
                    a[prefix + "paddle_out_1"], b[prefix + "paddle_nms_out_1"])
    n_rows = int(a["paddle_out_1"].sum())
    if not 5 <= n_rows <= 60:
        fail(f"{pre}: {n_rows} rows on the reference input, want 5..60 "
             "(adjust NMS score_threshold)")
    if os.environ.get("KEEP_EXPORT"):
        print("exported Paddle inference models kept in", exp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main():
    paddle.set_device("cpu")
    os.makedirs(OUT_DIR, exist_ok=True)
    variants = sys.argv[1:] or ["plus", "sod"]
    for v in variants:
        build(v)
    for f in sorted(os.listdir(OUT_DIR)):
        if f.startswith("ppyoloe"):
            print(f"{f}: {os.path.getsize(os.path.join(OUT_DIR, f))} bytes")
    print("versions:", "paddlepaddle", paddle.__version__, "paddledet", ppdet.__version__
          if hasattr(ppdet, "__version__") else "?", "onnx", onnx.__version__,
          "onnxruntime", ort.__version__)


if __name__ == "__main__":
    main()
