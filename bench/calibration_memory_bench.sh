#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Calibration memory benchmark (issue 18, item 5): LAYERS MatMul layers, each reading its own
# activation of width K (default 6 layers, K = 8192) with a K x N weight (N: environment, default
# 4), and ROWS calibration rows per activation (default 4). Statistics take 8*K^2 bytes per activation (512 MiB at K = 8192).
# Writes the model, its probe and the calibration folder (.npy files written directly, no ONNX
# Runtime needed), then compresses with --calibration in MODE (default "-r 1") at --threads 1 and
# 2, printing wall time and peak RSS (GNU time) with the load average. Prints measured numbers
# only; asserts nothing but exit codes and that both outputs are the same bytes.
#
# Usage: bench/calibration_memory_bench.sh [LAYERS [K [ROWS [MODE...]]]]  (BUILD_DIR: <repo>/build)
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BUILD_DIR:-$src_dir/build}/kfc-compress
layers=${1:-6}
k=${2:-8192}
rows=${3:-4}
shift $(($# < 3 ? $# : 3))
mode=("$@")
[[ ${#mode[@]} -gt 0 ]] || mode=(-r 1)
n=${N:-4}
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/kfc-calibbench.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
[[ -x $bin ]] || { echo "calibration_memory_bench.sh: build $bin first" >&2; exit 2; }

/usr/bin/python3 - "$work_dir/model.onnx" "$layers" "$k" "$n" <<'PY'
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

path, layers, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(7)
inputs, outputs, nodes, inits = [], [], [], []
for i in range(layers):
    inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, ["N", k]))
    outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["N", n]))
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"W{i}"))
    nodes.append(helper.make_node("MatMul", [f"x{i}", f"W{i}"], [f"y{i}"], name=f"l{i}"))
graph = helper.make_graph(nodes, "calibration_memory", inputs, outputs, inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, path)
PY
"$bin" "$work_dir/model.onnx" --calibration-probe "$work_dir/probe.onnx" >/dev/null
mkdir "$work_dir/calib"
cp "$work_dir/probe.calib.json" "$work_dir/calib/kfc_calibration.json"
/usr/bin/python3 - "$work_dir/calib" "$rows" <<'PY'
import json, os, sys
import numpy as np

folder, rows = sys.argv[1], int(sys.argv[2])
sidecar = json.load(open(os.path.join(folder, "kfc_calibration.json")))
rng = np.random.default_rng(11)
for t in sidecar["tensors"]:
    k = int(t["k"])
    np.save(os.path.join(folder, t["name"] + ".npy"), rng.standard_normal((rows, k)).astype(np.float32))
PY
echo "model: $layers MatMul layers [$k, $n], $rows calibration rows per activation;" \
  "statistics $((8 * k * k / 1048576)) MiB per activation; mode: ${mode[*]}"

run() {  # threads
  local threads=$1
  /usr/bin/time -f '%e %M %U %S' -o "$work_dir/time.txt" "$bin" "$work_dir/model.onnx" "${mode[@]}" \
    --calibration "$work_dir/calib" --threads "$threads" -o "$work_dir/out$threads.onnx" \
    >"$work_dir/report.txt" 2>"$work_dir/log.txt" || { cat "$work_dir/log.txt" >&2; exit 1; }
  read -r wall rss_kb user sys <"$work_dir/time.txt"
  echo "== --threads $threads: wall ${wall} s (user ${user} s, sys ${sys} s), peak RSS" \
    "$((rss_kb / 1024)) MiB," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

run 1
[[ -n ${ONE_RUN:-} ]] && exit 0
run 2
if cmp -s "$work_dir/out1.onnx" "$work_dir/out2.onnx"; then
  echo "outputs of --threads 1 and 2: identical bytes"
else
  echo "outputs of --threads 1 and 2 DIFFER" >&2
  exit 1
fi
if [[ -n ${SAVE_OUTPUT:-} ]]; then cp "$work_dir/out1.onnx" "$SAVE_OUTPUT"; fi
