#!/usr/bin/env bash
# Instruction counts (valgrind callgrind) of one fissure::nms / fissure::greedy_nmm call, one
# thread, on the merge benchmark's inputs: repeatable whatever else the machine runs.
# Usage: PYTHON=/path/to/python tools/merge_profile/run.sh [out_dir]
# Prints "op case Ir" per line; the callgrind files stay in out_dir for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
out=${1:-/tmp/fissure-merge-profile}
mkdir -p "$out"
PYTHONPATH=python "$PY" - "$out" <<'PYEOF'
import sys
sys.path.insert(0, "benchmarks")
import numpy as np, _data
out = sys.argv[1]
for name, (n, crowded) in {"20k": (20000, False), "100k": (100000, False), "crowded-20k": (20000, True)}.items():
    c = _data.boxes(n, crowded)
    with open(f"{out}/{name}.bin", "wb") as f:
        np.array([n], np.int64).tofile(f)
        c.boxes.astype(np.float32).tofile(f)
        c.scores.astype(np.float32).tofile(f)
        c.class_ids.astype(np.int64).tofile(f)
PYEOF
# The release flags of the extension (CMake Release) plus -g for the annotations.
g++ -O3 -DNDEBUG -g -std=c++17 -ffp-contract=off -Icpp/include -Icpp/src tools/merge_profile/driver.cpp \
  cpp/src/merge.cpp cpp/src/masks_ops.cpp cpp/src/parallel.cpp -lpthread -o "$out/driver"
for op in nms gnmm; do
  fn=$([ "$op" = nms ] && echo 'fissure::nms(*' || echo 'fissure::greedy_nmm(*')
  for c in 20k 100k crowded-20k; do
    ir=$(valgrind --tool=callgrind --toggle-collect="$fn" --callgrind-out-file="$out/$op.$c.out" \
         "$out/driver" "$op" "$out/$c.bin" 1 1 2>&1 | grep -o "Collected : [0-9]*" | grep -o "[0-9]*")
    echo "$op $c $ir"
  done
done
