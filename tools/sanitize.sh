#!/usr/bin/env bash
# The C++ core under AddressSanitizer + UndefinedBehaviorSanitizer: builds the C++ tests and
# the extension into build/asan (-DFISSURE_SANITIZE=ON; the core instrumented, the pybind11
# glue and test drivers not, to keep the build short), runs ctest, then runs the Python
# property tests (a small hypothesis budget) and the edge-input tests against the sanitized
# extension. Any sanitizer report fails the run.
#
# Usage: tools/sanitize.sh                   (CI: short, deterministic)
#        FISSURE_FUZZ=1 tools/sanitize.sh    (long fuzz budget, random examples)
# Environment: PYTHON (default python3), CC/CXX (GCC or Clang; the runtime is found with
# $CXX -print-file-name), FISSURE_SANITIZE_BUILD (build dir, default build/asan),
# FISSURE_SANITIZE_PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
PY=$(command -v "$PY")
CXX=${CXX:-c++}
BUILD=${FISSURE_SANITIZE_BUILD:-build/asan}
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

gen=()
if [ ! -f "$BUILD/CMakeCache.txt" ] && { command -v ninja >/dev/null || [ -x "$(dirname "$PY")/ninja" ]; }; then
  gen=(-G Ninja)
fi
export PATH="$(dirname "$PY"):$PATH"
# -O1 -g: fast enough to build and run, with usable stacks.
cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DFISSURE_SANITIZE=ON -DFISSURE_SANITIZE_CORE_ONLY=ON -DFISSURE_BUILD_TESTS=ON -DFISSURE_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD" -j "$jobs"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_stack_use_after_return=1}
echo "== ctest under ASan/UBSan"
ctest --test-dir "$BUILD" --output-on-failure

# The Python part: a copy of the package (a tree of links) whose _core is the sanitized one.
so=$(ls "$BUILD"/cpp/_core*.so | head -n1)
pkg="$BUILD/pkg"
rm -rf "$pkg"
mkdir -p "$pkg"
cp -rs "$ROOT/python/fissure" "$pkg/"
rm -f "$pkg"/fissure/_core*.so
ln -s "$ROOT/$so" "$pkg/fissure/"

runtime() {  # the sanitizer runtime library, or nothing
  local f
  f=$("$CXX" -print-file-name="$1" 2>/dev/null || true)
  if [ -n "$f" ] && [ "$f" != "$1" ] && [ -e "$f" ]; then readlink -f "$f"; fi
}
preload=$(runtime libasan.so)
if [ -z "$preload" ]; then
  preload=$(runtime libclang_rt.asan-x86_64.so)
fi
if [ -z "$preload" ]; then
  echo "sanitize.sh: no ASan runtime found with $CXX -print-file-name" >&2
  exit 2
fi
ubsan=$(runtime libubsan.so)
if [ -n "$ubsan" ] && ldd "$so" | grep -q libubsan; then preload="$preload:$ubsan"; fi
# The C++ runtime too: Python does not link it, and ASan's __cxa_throw interceptor must find
# the real one when the runtime starts (else the first C++ exception aborts the run).
cxxrt=$(runtime libstdc++.so)
if [ -n "$cxxrt" ]; then preload="$preload:$cxxrt"; fi

if [ "${FISSURE_FUZZ:-0}" = "1" ]; then
  profile=fuzz
else
  profile=sanitize
fi
echo "== Python property and edge-input tests against the sanitized extension (profile $profile)"
# Python itself is not instrumented and leaks by design: no leak checks there.
# shellcheck disable=SC2086
LD_PRELOAD="$preload" \
ASAN_OPTIONS="detect_leaks=0:$ASAN_OPTIONS" \
FISSURE_HYPOTHESIS_PROFILE=$profile \
PYTHONPATH="$ROOT/$pkg" \
  "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
    "$ROOT"/tests/python/test_properties_*.py "$ROOT"/tests/python/test_edge_inputs.py \
    "$ROOT"/tests/python/test_masks_errors.py ${FISSURE_SANITIZE_PYTEST_ARGS:-}
echo "sanitize.sh: passed in $(( $(date +%s) - start )) s"
