#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds kfc_kron_bench, runs it, runs the NumPy reference on the weights it dumped, and prints
# kfc's table, numpy's table and one combined Markdown table with the target check.
#
# Usage: bench/run_benchmarks.sh [kfc_kron_bench options...]     e.g. --quick, --ranks 4,16
# Environment:
#   BUILD_DIR    configured CMake build tree (default: <repo>/build)
#   WORK_DIR     where the .npy weights and result files go (default: a new temporary folder)
#   NUMPY_LIMIT  seconds allowed per numpy SVD (default 600)
#   KEEP_NPY=1   keep the dumped .npy weights (they are deleted otherwise; 4096x16384 is 256 MB)
# OPENBLAS_* variables are passed through untouched; both programs print what they saw.
# Takes about an hour for the default sizes on 2 cores (SearchShape and numpy's 8192x8192 SVD
# dominate); --quick takes about a minute; --no-search or --search-limit shorten it.
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$src_dir/build}
work_dir=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kfc-bench.XXXXXX")}
numpy_limit=${NUMPY_LIMIT:-600}
mkdir -p "$work_dir"

if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  echo "run_benchmarks.sh: $build_dir is not a configured build tree (set BUILD_DIR)" >&2
  exit 2
fi
if ! cmake --build "$build_dir" --target kfc_kron_bench -j"$(nproc)" \
  >"$work_dir/build.log" 2>&1; then
  tail -n 30 "$work_dir/build.log" >&2
  echo "run_benchmarks.sh: building kfc_kron_bench failed (is add_subdirectory(bench) in the" \
    "top-level CMakeLists.txt?); log: $work_dir/build.log" >&2
  exit 1
fi

cleanup() {
  if [[ ${KEEP_NPY:-0} != 1 ]]; then rm -f "$work_dir"/*.npy; fi
}
trap cleanup EXIT

echo "run_benchmarks.sh: results in $work_dir" >&2
"$build_dir/bench/kfc_kron_bench" --dump "$work_dir" --tsv "$work_dir/kfc_results.tsv" "$@" \
  >"$work_dir/kfc.md"
/usr/bin/python3 "$src_dir/bench/numpy_reference.py" --dir "$work_dir" \
  --kfc-tsv "$work_dir/kfc_results.tsv" --limit "$numpy_limit" --json "$work_dir/numpy.json" \
  >"$work_dir/numpy.md"

{
  echo "# kfc-compress decomposition benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs," \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)})"
  echo
  echo "## kfc_kron_bench"
  echo
  cat "$work_dir/kfc.md"
  echo
  cat "$work_dir/numpy.md"
} | tee "$work_dir/report.md"
