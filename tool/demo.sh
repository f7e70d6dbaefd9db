#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Quick start demo: install what building needs (not the test tools: cmake/install-deps.sh --test),
# build kfc-compress, compress the digits MLP shipped in testdata/ (trained on scikit-learn's real
# 8x8 digits) and print the report.
set -euo pipefail
cd "$(dirname "$0")/.."

bash cmake/install-deps.sh
cmake -S . -B build -DKFC_BUILD_TESTS=OFF -DKFC_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" --target kfc-compress
./build/kfc-compress testdata/digits_mlp.onnx -r 4 -o build/digits_mlp.kfc.onnx

