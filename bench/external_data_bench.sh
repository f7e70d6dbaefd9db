#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Models past protobuf's 2 GiB: writes a MatMul chain whose external weights add up to 2.06 GiB
# (bench/make_large_external_model.py), then times kfc-compress on it and reports its peak memory
# (GNU time's maximum resident set size):
#   1. -r 4 on the first layer only: the output keeps 32 dense weights (2.0 GiB), so it is
#      written with external data automatically;
#   2. -r 4 on every layer: a small inline output.
# ONNX Runtime then loads and runs the automatic output when tests/ort/node_modules exists.
# Prints measured numbers only; asserts nothing beyond exit codes. Needs about 5 GB of disk
# and 7 GB of memory; the temporary folder is removed at the end.
#
# Usage: bench/external_data_bench.sh [LAYERS [SIZE]]     (BUILD_DIR: default <repo>/build)
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$src_dir/build}
bin=$build_dir/kfc-compress
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/kfc-extbench.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
[[ -x $bin ]] || { echo "external_data_bench.sh: build $bin first" >&2; exit 2; }

start=$(date +%s.%N)
/usr/bin/python3 "$src_dir/bench/make_large_external_model.py" "$work_dir" "$@"
echo "generated: large.onnx $(stat -c %s "$work_dir/large.onnx") bytes, large.weights" \
  "$(stat -c %s "$work_dir/large.weights") bytes in $(echo "$(date +%s.%N) - $start" | bc) s"

run() {  # label, kfc-compress arguments...
  local label=$1
  shift
  /usr/bin/time -f '%e %M' -o "$work_dir/time.txt" "$bin" "$work_dir/large.onnx" "$@" \
    >"$work_dir/report.txt" 2>"$work_dir/log.txt" || {
    cat "$work_dir/log.txt" >&2
    exit 1
  }
  read -r wall rss_kb <"$work_dir/time.txt"
  echo "== $label: wall ${wall} s, peak RSS $((rss_kb / 1024)) MiB"
  grep -E "info: (loaded|wrote|factorized|rewrote)|warn" "$work_dir/log.txt" | sed 's/^/   /'
  head -1 "$work_dir/report.txt" | sed 's/^/   /'
}

run "first layer compressed, automatic external data" -r 4 --include '^l0$' \
  -o "$work_dir/one.onnx"
ls -l "$work_dir"/one.onnx* | awk '{print "   " $5 " bytes " $9}'
run "every layer compressed" -r 4 -o "$work_dir/all.onnx"
ls -l "$work_dir"/all.onnx* | awk '{print "   " $5 " bytes " $9}'

if [[ -d $src_dir/tests/ort/node_modules/onnxruntime-node ]]; then
  (cd "$src_dir/tests/ort" && node -e '
    const ort = require("onnxruntime-node");
    (async () => {
      const t0 = Date.now();
      const s = await ort.InferenceSession.create(process.argv[1]);
      const n = Number(process.argv[2]);
      const x = new ort.Tensor("float32", new Float32Array(2 * n).fill(0.01), [2, n]);
      const y = (await s.run({ x })).y;
      console.log(`== ONNX Runtime loaded and ran the automatic output in ${(Date.now() - t0) / 1000} s: ` +
        `y dims [${y.dims}], finite: ${y.data.every(Number.isFinite)}`);
    })().catch((e) => { console.error(e.message); process.exit(1); });' \
    "$work_dir/one.onnx" "${2:-4096}")
fi
