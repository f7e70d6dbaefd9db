#!/usr/bin/env bash
# Quick start demo: install what is missing, build kfc-compress, compress the digits MLP shipped in
# testdata/ (trained on scikit-learn's real 8x8 digits) and print the report. Then, when npm is
# there, install the runner's dependencies (tool/package-lock.json) and calibrate the
# Fashion-MNIST MLP in one command on 2,000 training images (docs/runner.md).
set -euo pipefail
cd "$(dirname "$0")/.."

bash cmake/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target kfc-compress
./build/kfc-compress testdata/digits_mlp.onnx -r 4 -o build/digits_mlp.kfc.onnx

command -v npm >/dev/null 2>&1 || exit 0
(cd tool && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
/usr/bin/python3 -c "import sys; sys.path.insert(0, 'testdata'); import numpy as np
from fashion_data import load_train; np.save('build/fashion_calib.npy', load_train(limit=2000)[0])"
./build/kfc-compress testdata/fashion_mlp.onnx --calibration-data build/fashion_calib.npy \
  --ratio 0.25 -o build/fashion_mlp.kfc.onnx
