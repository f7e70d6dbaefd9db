#!/usr/bin/env bash
# Quick start demo: install what is missing, build kfc-compress, compress the digits MLP shipped in
# testdata/ (trained on scikit-learn's real 8x8 digits) and print the report.
set -euo pipefail
cd "$(dirname "$0")/.."

bash cmake/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target kfc-compress
./build/kfc-compress testdata/digits_mlp.onnx -r 4 -o build/digits_mlp.kfc.onnx
