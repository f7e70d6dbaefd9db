#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install what is missing, build, run every
# test (unit, rewrite, CLI, ONNX Runtime cross-checks) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash cmake/install-deps.sh
# ONNX Runtime for the cross-checks, pinned by tests/ort/package-lock.json. Its postinstall would
# try to download extra binaries, which this environment cannot reach; the npm package already
# carries the CPU runtime.
(cd tests/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
# The same for the runner that --calibration-data starts (tool/kfc-runner.js), pinned by
# tool/package-lock.json.
(cd tool && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)

cmake -S . -B build -DKFC_BUILD_TESTS=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"

# The same suite again with AddressSanitizer and UndefinedBehaviorSanitizer on our code (the ONNX
# Runtime cross-checks then drive the sanitized binaries too).
cmake -S . -B build-asan -DKFC_BUILD_TESTS=ON -DKFC_BUILD_BENCH=OFF -DKFC_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j"$(nproc)"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$(nproc)"

# The loader/matcher fuzz target (libFuzzer, clang, ASan + UBSan) for a bounded time.
bash tests/fuzz/run_fuzzer.sh "${KFC_FUZZ_SECONDS:-60}"
