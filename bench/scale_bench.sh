#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scale benchmark: a transformer-like model with about 2.5 GB of float32 weights in external data
# (bench/make_transformer_model.py: 75 FFN blocks, MatMul weights [1024, 4096] and [4096, 1024],
# input [batch, seq, 1024]), compressed at -r 8 with 1 and with all threads. For each run it prints
# the wall time, the peak resident memory (GNU time's maximum RSS) as a share of the weight bytes,
# and the tool's own phase times: reading and checking the weights the decision needs (none at
# -r 8), deciding, factorizing (at -r 8 the only read of each weight, checked there for NaN/Inf),
# rewriting, writing. It then checks that both outputs are the same bytes. Prints measured numbers only; asserts nothing beyond exit codes and that
# equality. Needs about 2.6 GB of disk; the temporary folder is removed at the end.
#
# Usage: bench/scale_bench.sh [BLOCKS [RANK]]     (BUILD_DIR: default <repo>/build)
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$src_dir/build}
bin=$build_dir/kfc-compress
blocks=${1:-75}
rank=${2:-8}
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/kfc-scalebench.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
[[ -x $bin ]] || { echo "scale_bench.sh: build $bin first" >&2; exit 2; }

start=$(date +%s.%N)
/usr/bin/python3 "$src_dir/bench/make_transformer_model.py" "$work_dir/model.onnx" \
  --blocks "$blocks" --external model.weights
weights=$(stat -c %s "$work_dir/model.weights")
echo "generated: model.onnx $(stat -c %s "$work_dir/model.onnx") bytes, model.weights $weights" \
  "bytes ($((2 * blocks)) MatMul weights) in $(echo "$(date +%s.%N) - $start" | bc) s"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
cat "$work_dir/model.weights" >/dev/null
echo "cat model.weights >/dev/null (page cache warm): $(echo "$(date +%s.%N) - $start" | bc) s"

run() {  # threads
  local threads=$1 out=$work_dir/out$1
  mkdir -p "$out"
  /usr/bin/time -f '%e %M' -o "$work_dir/time.txt" "$bin" "$work_dir/model.onnx" -r "$rank" \
    --threads "$threads" -o "$out/model.onnx" >"$work_dir/report.txt" 2>"$work_dir/log.txt" || {
    cat "$work_dir/log.txt" >&2
    exit 1
  }
  read -r wall rss_kb <"$work_dir/time.txt"
  echo "== -r $rank --threads $threads: wall ${wall} s, peak RSS $((rss_kb / 1024)) MiB" \
    "($(echo "scale=1; 100 * $rss_kb * 1024 / $weights" | bc)% of the weight bytes)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E "info: (loaded|read and checked|decided|factorized|rewrote|wrote|external data)" \
    "$work_dir/log.txt" | sed 's/^kfc-compress: info: /   /'
  grep -E "^totals|layer params|layer MACs|file bytes" "$work_dir/report.txt" | sed 's/^/   /'
}

run 1
run 0
if cmp -s "$work_dir/out1/model.onnx" "$work_dir/out0/model.onnx"; then
  echo "outputs of --threads 1 and --threads 0 ($(nproc) threads): identical bytes"
else
  echo "outputs of --threads 1 and --threads 0 DIFFER" >&2
  exit 1
fi
