#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A fresh prefix install works end to end: `cmake --install BUILD --prefix P` into an empty P, then
# P/bin/kfc-compress, a CMake project built against P (find_package(kfc), tests/package/consumer)
# and the Python module from P's Python path each compress testdata/digits_mlp.onnx at rank 4 to
# the same bytes as the build tree's binary.
# KFC_PYTHON_ENV: VAR=VALUE words for Python only (a sanitized build's LD_PRELOAD).
# Usage: install_test.sh BUILD_DIR SOURCE_DIR WORK_DIR [PYTHON]
set -euo pipefail
build=$1 source=$2 work=$3 python=${4:-}
model=$source/testdata/digits_mlp.onnx
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"

for f in bin/kfc-compress lib/libkfc.a lib/libkfc_proto.a include/kfc/kfc_report.pb.h \
         include/kfc/pipeline/compress.h include/kfc/core/status.h \
         lib/cmake/kfc/kfcConfig.cmake lib/cmake/kfc/kfcConfigVersion.cmake \
         lib/cmake/kfc/kfcTargets.cmake; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
# Installed files name nothing in the source or build tree.
if grep -rlF -e "$source/" -e "$build/" "$prefix/lib/cmake" "$prefix/include"; then
  fail "installed CMake files or headers refer to the source or build tree"
fi

"$build/kfc-compress" -q "$model" -r 4 -o "$work/expected.onnx" >/dev/null
"$prefix/bin/kfc-compress" -q "$model" -r 4 -o "$work/installed.onnx" >/dev/null
cmp "$work/expected.onnx" "$work/installed.onnx" || fail "installed binary: different bytes"

# The consumer sees only the prefix (and the system's packages).
cmake -S "$source/tests/package/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/consumer-configure.log" ||
  { cat "$work/consumer-configure.log"; fail "consumer: configure"; }
cmake --build "$work/consumer" >"$work/consumer-build.log" 2>&1 ||
  { cat "$work/consumer-build.log"; fail "consumer: build"; }
"$work/consumer/kfc_consumer" "$model" "$work/consumer.onnx" | tail -1
cmp "$work/expected.onnx" "$work/consumer.onnx" || fail "consumer: different bytes"

if [ -n "$python" ]; then
  site=$prefix/lib/python3/dist-packages
  ls "$site"/kfc_compress*.so >/dev/null || fail "Python module not installed in $site"
  env ${KFC_PYTHON_ENV:-} PYTHONPATH="$site" "$python" - "$model" "$work/expected.onnx" "$site" <<'PY' || fail "Python module"
import sys, kfc_compress
model, expected, site = sys.argv[1:]
assert kfc_compress.__file__.startswith(site), kfc_compress.__file__
data, report = kfc_compress.compress(open(model, "rb").read(), rank=4)
assert data == open(expected, "rb").read(), "different bytes"
print("python module:", kfc_compress.__file__, report["totals"]["layers_compressed"], "layers")
PY
fi
echo "install_test: OK"
