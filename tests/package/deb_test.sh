#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `cpack -G DEB` builds a .deb whose Depends come from dpkg-shlibdeps; unpacked into a scratch root
# (dpkg -x), its kfc-compress and Python module compress testdata/digits_mlp.onnx at rank 4 to the
# same bytes as the build tree's binary.
# KFC_PYTHON_ENV: VAR=VALUE words for Python only (a sanitized build's LD_PRELOAD).
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR WORK_DIR [PYTHON]
set -euo pipefail
build=$1 source=$2 work=$3 python=${4:-}
model=$source/testdata/digits_mlp.onnx
fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }

rm -rf "$work" && mkdir -p "$work"
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg" >"$work/cpack.log") ||
  { cat "$work/cpack.log"; fail "cpack"; }
debs=("$work"/pkg/*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one .deb, got: ${debs[*]}"
deb=${debs[0]}
depends=$(dpkg-deb -f "$deb" Depends)
echo "deb_test: $(basename "$deb"): Depends: $depends"
# Libraries the binary loads, as dpkg-shlibdeps names their packages.
for lib in libprotobuf libonnx libopenblas liblapacke libstdc++6 libc6; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (is CPACK_DEBIAN_PACKAGE_SHLIBDEPS on?)"
done

dpkg -x "$deb" "$work/root"
"$build/kfc-compress" -q "$model" -r 4 -o "$work/expected.onnx" >/dev/null
"$work/root/usr/bin/kfc-compress" -q "$model" -r 4 -o "$work/deb.onnx" >/dev/null
cmp "$work/expected.onnx" "$work/deb.onnx" || fail "packaged binary: different bytes"
for f in usr/lib/libkfc.a usr/include/kfc/pipeline/compress.h usr/lib/cmake/kfc/kfcConfig.cmake; do
  [ -e "$work/root/$f" ] || fail "$f not in the package"
done

if [ -n "$python" ]; then
  site=$work/root/usr/lib/python3/dist-packages
  env ${KFC_PYTHON_ENV:-} PYTHONPATH="$site" "$python" - "$model" "$work/expected.onnx" "$site" <<'PY' || fail "Python module"
import sys, kfc_compress
model, expected, site = sys.argv[1:]
assert kfc_compress.__file__.startswith(site), kfc_compress.__file__
data, _ = kfc_compress.compress(open(model, "rb").read(), rank=4)
assert data == open(expected, "rb").read(), "different bytes"
PY
fi
echo "deb_test: OK"
