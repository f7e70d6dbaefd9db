#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Peer benchmark: kfc-compress against plain NumPy doing the same work, timed in the same run.
#
# (a) The 2.5 GB transformer-like model (bench/make_transformer_model.py, 150 MatMul weights of
#     1024 x 4096 and 4096 x 1024 in external data) at -r RANK: the tool (default --threads, i.e.
#     all cores), then bench/numpy_peer.py (the same per-layer work: read, rearrange, randomized
#     SVD at the same rank, oversampling 10 and 4 power iterations, write the factors; then again
#     with the tool's adaptive stop of the power iterations, --power-tolerance 1e-3), then the
#     tool again. Prints wall time and peak RSS (GNU time) of each, and the ratio.
# (b) One 4096 x 4096 layer at -r RANK --shape 64x64: the whole CLI run against NumPy's full SVD
#     (np.linalg.svd, float64, as bench/numpy_reference.py) of the same rearranged matrix.
# Every line carries the load average. Prints measured numbers only and asserts nothing but exit
# codes. Needs about 2.6 GB of disk in TMPDIR; removed at the end.
#
# Usage: bench/peer_bench.sh [BLOCKS [RANK]]   (BUILD_DIR: default <repo>/build; SKIP_A=1 or
#        SKIP_B=1 to run one part only)
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$src_dir/build}
bin=$build_dir/kfc-compress
blocks=${1:-75}
rank=${2:-8}
py=/usr/bin/python3
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/kfc-peerbench.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
[[ -x $bin ]] || { echo "peer_bench.sh: build $bin first" >&2; exit 2; }

load() { cut -d' ' -f1-3 /proc/loadavg; }

timed() {  # label, command...: prints "label: wall W s, peak RSS R MiB, load L"; sets $wall
  local label=$1
  shift
  /usr/bin/time -f '%e %M' -o "$work_dir/time.txt" "$@" >"$work_dir/out.txt" 2>"$work_dir/err.txt" || {
    cat "$work_dir/err.txt" >&2
    exit 1
  }
  local rss_kb
  read -r wall rss_kb <"$work_dir/time.txt"
  echo "$label: wall ${wall} s, peak RSS $((rss_kb / 1024)) MiB, load average $(load)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)," \
  "load average $(load)"

if [[ -z ${SKIP_A:-} ]]; then
  "$py" "$src_dir/bench/make_transformer_model.py" "$work_dir/model.onnx" --blocks "$blocks" \
    --external model.weights
  echo "(a) model.weights: $(stat -c %s "$work_dir/model.weights") bytes, $((2 * blocks))" \
    "MatMul weights; -r $rank"
  cat "$work_dir/model.weights" >/dev/null
  timed "    kfc-compress -r $rank" "$bin" "$work_dir/model.onnx" -r "$rank" -o "$work_dir/kfc.onnx"
  tool1=$wall
  timed "    numpy_peer.py -r $rank (4 power iterations: the tool's work before the adaptive stop)" \
    "$py" "$src_dir/bench/numpy_peer.py" "$work_dir/model.onnx" "$work_dir/peer.npy" -r "$rank"
  peer=$wall
  timed "    numpy_peer.py -r $rank --power-tolerance 1e-3 (the tool's adaptive stop)" "$py" \
    "$src_dir/bench/numpy_peer.py" "$work_dir/model.onnx" "$work_dir/peer.npy" -r "$rank" \
    --power-tolerance 1e-3
  peer_adaptive=$wall
  timed "    kfc-compress -r $rank (again)" "$bin" "$work_dir/model.onnx" -r "$rank" \
    -o "$work_dir/kfc2.onnx"
  tool2=$wall
  best=$(echo "if ($tool1 < $tool2) $tool1 else $tool2" | bc)
  echo "    numpy (4 iterations) / kfc-compress (faster tool run): $(echo "scale=2; $peer / $best" | bc)x"
  echo "    numpy (adaptive) / kfc-compress (faster tool run):" \
    "$(echo "scale=2; $peer_adaptive / $best" | bc)x"
  rm -f "$work_dir"/model.* "$work_dir"/kfc*.onnx* "$work_dir/peer.npy"
fi

if [[ -z ${SKIP_B:-} ]]; then
  "$py" "$src_dir/bench/make_large_external_model.py" "$work_dir" 1 4096
  cat "$work_dir/large.weights" >/dev/null
  echo "(b) one 4096 x 4096 layer, -r $rank --shape 64x64"
  timed "    kfc-compress (whole CLI run)" "$bin" "$work_dir/large.onnx" -r "$rank" --shape 64x64 \
    -o "$work_dir/kfc.onnx"
  tool=$wall
  timed "    numpy full SVD of R (np.linalg.svd, float64)" "$py" -c "
import sys, time, numpy as np
w = np.fromfile(sys.argv[1], dtype=np.float32).reshape(4096, 4096)
t = time.perf_counter()
r = np.ascontiguousarray(w.reshape(64, 64, 64, 64).transpose(0, 2, 1, 3).reshape(4096, 4096),
                         dtype=np.float64)
u, s, vt = np.linalg.svd(r, full_matrices=False)
print(time.perf_counter() - t)" "$work_dir/large.weights"
  svd=$wall
  echo "    numpy full SVD / kfc-compress: $(echo "scale=1; $svd / $tool" | bc)x"
fi
