#!/usr/bin/env bash
# The one check to run on a machine with an NVIDIA GPU (docs/bench.md): installs
# onnxruntime-gpu and nvidia-ml-py, builds and installs fissure from this checkout, runs
# `fissure bench --device cuda` on PP-OCRv4 det (when rapidocr-onnxruntime is installed) and a
# YOLO model over the generated 24 MP image, writes ${OUT:-.}/gpu-check.json, and exits
#   0  every CUDA row ran within the VRAM budget with detections matching the CPU's
#      (f32: matched one to one at IoU >= 0.9, recall and precision >= 0.99;
#       f16: IoU >= 0.8, recall and precision >= 0.95)
#   1  a CUDA row exceeded the budget, its VRAM could not be read, or its detections differ
#   2  fissure could not be built or installed, or no model could be benchmarked
#   3  CUDA unavailable (no onnxruntime-gpu wheel, no GPU, CUDA/cuDNN libraries missing): the
#      CPU rows still ran and the JSON says why
#
# Environment: PYTHON (default python3); FISSURE_WHEELS=DIR installs from wheels in DIR only
# (pip --no-index --find-links DIR: machines without network); VRAM_BUDGET (MiB, default 2048);
# ROUNDS (default 2); OUT (default .); GPU_CHECK_COMPARE=1 adds the SAHI/supervision rows;
# GPU_CHECK_BUILD=0 skips building (uses an installed fissure, else this checkout's python/);
# GPU_CHECK_IMAGE_SIZE=WxH generates a smaller image than 6000x4000 (a quick trial).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUT=${OUT:-.}
BUDGET=${VRAM_BUDGET:-2048}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
say() { echo "gpu-check: $*" >&2; }

pipi() {  # pip install, from FISSURE_WHEELS only when it is set
  if [ -n "${FISSURE_WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --find-links "$FISSURE_WHEELS" "$@"
  else
    "$PY" -m pip install -q "$@"
  fi
}
has() { "$PY" -c "import $1" >/dev/null 2>&1; }

# 1. ONNX Runtime with CUDA. onnxruntime and onnxruntime-gpu install the same module: the CPU
#    build is removed only once the GPU wheel is in hand, so a failure leaves the CPU one.
if "$PY" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  say "onnxruntime with the CUDA provider is already installed"
else
  wheels=$(mktemp -d)
  if [ -n "${FISSURE_WHEELS:-}" ]; then
    dl=("$PY" -m pip download -q --no-deps --no-index --find-links "$FISSURE_WHEELS" -d "$wheels" onnxruntime-gpu)
  else
    dl=("$PY" -m pip download -q --no-deps -d "$wheels" onnxruntime-gpu)
  fi
  if "${dl[@]}" >/dev/null 2>&1 && ls "$wheels"/onnxruntime_gpu-*.whl >/dev/null 2>&1; then
    "$PY" -m pip uninstall -q -y onnxruntime >/dev/null 2>&1 || true
    "$PY" -m pip install -q --no-deps "$wheels"/onnxruntime_gpu-*.whl
    say "installed $(basename "$wheels"/onnxruntime_gpu-*.whl)"
  else
    say "onnxruntime-gpu is not available${FISSURE_WHEELS:+ in $FISSURE_WHEELS}: the CUDA rows will say unavailable"
  fi
  rm -rf "$wheels"
fi

# 2. NVML for the VRAM peaks.
if ! has pynvml; then
  pipi nvidia-ml-py >/dev/null 2>&1 || say "nvidia-ml-py could not be installed: peak VRAM unknown (a failure)"
fi

# The f16 row converts the model with the onnx package.
has onnx || pipi onnx >/dev/null 2>&1 || say "onnx could not be installed: the CUDA f16 row will say unavailable"

# 3. fissure from this checkout (no build isolation: uses the scikit-build-core, pybind11 and
#    cmake that are here; dependencies are not pulled from the network).
if [ "${GPU_CHECK_BUILD:-1}" != 0 ]; then
  if ! has scikit_build_core || ! has pybind11; then
    pipi scikit-build-core pybind11 cmake ninja >/dev/null 2>&1 || true
  fi
  if has scikit_build_core && has pybind11; then
    say "building and installing fissure (pip install --no-build-isolation --no-deps .)"
    if ! "$PY" -m pip install -q --no-build-isolation --no-deps . >"$OUT/gpu-check-build.log" 2>&1; then
      tail -n 20 "$OUT/gpu-check-build.log" >&2
      say "building fissure failed (log: $OUT/gpu-check-build.log)"
      exit 2
    fi
  else
    say "scikit-build-core and pybind11 are missing: not building"
  fi
fi
for dep in tqdm safetensors; do has "$dep" || pipi "$dep" >/dev/null 2>&1 || true; done
if ! (cd /tmp && "$PY" -c "import fissure._core, fissure.bench") 2>/dev/null; then
  if (cd /tmp && PYTHONPATH="$ROOT/python" "$PY" -c "import fissure._core, fissure.bench") 2>"$OUT/gpu-check-import.log"; then
    export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
    say "using this checkout's python/ (its built fissure._core)"
  else
    tail -n 5 "$OUT/gpu-check-import.log" >&2
    say "fissure cannot be imported (not installed, and python/ has no _core for this Python)"
    exit 2
  fi
fi
"$PY" -c "import onnxruntime as o; print('gpu-check: onnxruntime', o.__version__, o.get_available_providers())" >&2 || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true

# 4. The models: PP-OCRv4 det (rapidocr-onnxruntime) and a YOLO export (or the toy detector).
reports=()
run_bench() {  # NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  say "fissure bench $name ($model) --device cuda --vram-budget $BUDGET"
  local extra=()
  [ "${GPU_CHECK_COMPARE:-0}" = 1 ] && extra+=(--compare)
  [ -n "${GPU_CHECK_IMAGE_SIZE:-}" ] && extra+=(--image-size "$GPU_CHECK_IMAGE_SIZE")
  if "$PY" -m fissure bench "$model" --device cuda --vram-budget "$BUDGET" \
        --rounds "$ROUNDS" --json "$OUT/gpu-check-$name.json" "${extra[@]}" "$@"; then
    reports+=("$name=$OUT/gpu-check-$name.json")
  else
    say "fissure bench failed on $name"
    reports+=("$name=FAILED")
  fi
}
ocr=$("$PY" - <<'PYEOF' 2>/dev/null || true
import importlib.util, os
s = importlib.util.find_spec("rapidocr_onnxruntime")
p = s and s.origin and os.path.join(os.path.dirname(s.origin), "models", "ch_PP-OCRv4_det_infer.onnx")
print(p if p and os.path.isfile(p) else "")
PYEOF
)
if [ -n "$ocr" ]; then
  run_bench ppocrv4_det "$ocr" --decoder probability_map --conf-threshold 0.5 --mode none \
    --bgr --mean 0.5 0.5 0.5 --std 0.5 0.5 0.5
else
  say "rapidocr-onnxruntime is not installed: skipping PP-OCRv4 det"
fi
yolo=""
for f in tests/data/models/yolo26_det.onnx tests/data/models/yolov10_det.onnx; do
  [ -f "$f" ] && { yolo="$PWD/$f"; break; }
done
if [ -n "$yolo" ]; then
  # a small test export (its weights find little in the test image): a low threshold gives the
  # CPU/GPU comparison some detections (about 100 on 24 MP)
  run_bench yolo "$yolo" --conf-threshold 0.01
elif has onnx; then
  "$PY" -c "from fissure.detection.toy import bright_spot_model as m; open('$OUT/toy.onnx','wb').write(m())"
  run_bench toy "$OUT/toy.onnx"
else
  say "no YOLO export in tests/data/models and no onnx package for the toy model: skipping"
fi
[ ${#reports[@]} -gt 0 ] || { say "no model to benchmark"; exit 2; }

# 5. The verdict (fissure.bench.gpu_check_verdict), one JSON for all models.
set +e
"$PY" - "$OUT/gpu-check.json" "${reports[@]}" <<'PYEOF'
import json, sys
from fissure.bench import gpu_check_verdict
from fissure.io import write_json_atomic
out, status, doc = sys.argv[1], [], {"models": {}, "verdicts": {}}
for item in sys.argv[2:]:
    name, _, path = item.partition("=")
    if path == "FAILED":
        status.append(1)
        doc["verdicts"][name] = {"status": 1, "lines": ["fissure bench failed (see its output)"]}
        continue
    with open(path) as f:
        rep = json.load(f)
    s, lines = gpu_check_verdict(rep)
    status.append(s)
    doc["models"][name] = rep
    doc["verdicts"][name] = {"status": s, "lines": lines}
    for ln in lines:
        print(f"gpu-check: {name}: {ln}")
final = 1 if 1 in status else (3 if 3 in status else 0)
doc["status"] = final
write_json_atomic(out, doc)
print(f"gpu-check: status {final}; report {out}")
sys.exit(final)
PYEOF
rc=$?
set -e
exit $rc
