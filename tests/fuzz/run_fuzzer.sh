#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer target with clang (ASan + UBSan) in build-fuzz and runs it for a bounded
# time (default 60 s; first argument) over a corpus of the repository's own small models. Exit
# code 0 when no crash, leak, timeout or sanitizer report was found; the fuzzer's reproducer
# (crash-*, leak-*, timeout-*) is left in build-fuzz/findings otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DKFC_FUZZ=ON -DKFC_BUILD_TESTS=OFF \
  -DKFC_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g" >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target kfc_model_fuzzer kfc_paths_fuzzer

corpus=build-fuzz/corpus
findings=build-fuzz/findings
rm -rf "$corpus" "$findings"
mkdir -p "$corpus" "$findings"
cp testdata/digits_mlp.onnx testdata/synthetic/*.onnx "$corpus"/
echo "run_fuzzer.sh: fuzzing for ${seconds} s over $(ls "$corpus" | wc -l) seed models" >&2
build-fuzz/tests/fuzz/kfc_model_fuzzer "$corpus" -max_total_time="$seconds" -max_len=65536 \
  -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 -artifact_prefix="$findings/" \
  2>build-fuzz/fuzz.log || {
  tail -n 60 build-fuzz/fuzz.log >&2
  echo "run_fuzzer.sh: the fuzzer found a problem; reproducer in $findings" >&2
  exit 1
}
grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" build-fuzz/fuzz.log >&2

# The writers' path checks (io::RunFiles, io::AtomicFile) over generated folder layouts, for a
# quarter of the time (no corpus: the layouts come from the bytes).
paths_seconds=$(( (seconds + 3) / 4 ))
mkdir -p build-fuzz/paths_corpus
build-fuzz/tests/fuzz/kfc_paths_fuzzer build-fuzz/paths_corpus -max_total_time="$paths_seconds" \
  -max_len=64 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 -artifact_prefix="$findings/paths-" \
  2>build-fuzz/paths_fuzz.log || {
  tail -n 60 build-fuzz/paths_fuzz.log >&2
  echo "run_fuzzer.sh: the paths fuzzer found a problem; reproducer in $findings" >&2
  exit 1
}
grep -E "^stat::(number_of_executed_units|new_units_added)" build-fuzz/paths_fuzz.log >&2
