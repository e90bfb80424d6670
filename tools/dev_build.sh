#!/usr/bin/env bash
# Developer loop without pip: builds fissure._core into build/dev and links it into
# python/fissure so that `PYTHONPATH=python pytest` runs against the fresh build.
# Usage: tools/dev_build.sh [--tests]   (--tests also builds and runs the C++ tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tests=OFF; [ "${1:-}" = "--tests" ] && tests=ON
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DFISSURE_BUILD_TESTS=$tests \
  -DPython_EXECUTABLE="$($PY -c 'import sys; print(sys.executable)')" \
  -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" >/dev/null
cmake --build build/dev -j "$(nproc)"
so=$(ls build/dev/cpp/_core*.so | head -n1)
ln -sf "$PWD/$so" python/fissure/
[ "$tests" = ON ] && ctest --test-dir build/dev --output-on-failure
echo "built $so"
