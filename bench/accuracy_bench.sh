#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The accuracy benchmark (docs/accuracy.md), from scratch, in one command:
#
#   bench/accuracy_bench.sh OUT_DIR [--smoke]
#
# PP-OCRv4 recognizer at --ratio 0.5 0.35 0.27 0.2 and the Fashion-MNIST MLP at 0.25 0.1 0.05, each
# weight-only, calibrated (--calibration-data) and calibrated with --compensate (when the binary
# has it); writes OUT_DIR/results.{tsv,md} and OUT_DIR/accuracy.png. --smoke: one ratio per model,
# 20 text lines and 200 images (the ctest accuracy_bench_smoke). All settings are environment
# variables, described in bench/accuracy_bench.js: BUILD_DIR or KFC_COMPRESS (the binary),
# KFC_FLAGS (extra tool flags for every run, e.g. KFC_FLAGS='--allocation sensitivity'), MODELS,
# MODES, OCR_RATIOS, FASHION_RATIOS, OCR_TEST_LINES, OCR_CALIB_LINES, FASHION_TEST, FASHION_CALIB.
#
# Installs the npm dependencies of tests/ort (the models, ONNX Runtime) and tool (the runner) when
# missing. Needs the Debian packages of `cmake/install-deps.sh --test` (python3-pil,
# fonts-dejavu-core, dataset-fashion-mnist, python3-matplotlib).
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 1 ]]; then
  echo "usage: bench/accuracy_bench.sh OUT_DIR [--smoke]" >&2
  exit 2
fi
for dir in tests/ort tool; do
  if [[ ! -d $src_dir/$dir/node_modules/onnxruntime-node ]]; then
    echo "accuracy_bench.sh: installing the npm dependencies of $dir" >&2
    (cd "$src_dir/$dir" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
  fi
done
exec node "$src_dir/bench/accuracy_bench.js" "$@"
