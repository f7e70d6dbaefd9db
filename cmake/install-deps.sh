#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages kfc-compress needs, only those that are missing. Runs unattended
# (no prompts); uses sudo when not root.
#   bash cmake/install-deps.sh          what building needs: the tool, the library, the Python
#                                       module (pybind11-dev, python3-dev)
#   bash cmake/install-deps.sh --test   that plus what the test suite adds: GoogleTest, ONNX
#                                       Runtime's node runner, Python ONNX/NumPy/scikit-learn and a
#                                       dataset for the model scripts, clang for the fuzzer,
#                                       dpkg-dev and file for the .deb test (dpkg-shlibdeps),
#                                       chromium for the HTML report test
set -euo pipefail

build=(
  cmake make g++ pkg-config
  libonnx-dev libprotobuf-dev protobuf-compiler
  liblapacke-dev libopenblas-dev
  libspdlog-dev libcli11-dev libre2-dev
  python3-dev pybind11-dev
)
test=(
  libgtest-dev
  python3-onnx python3-numpy python3-sklearn
  dataset-fashion-mnist
  python3-pil fonts-dejavu-core python3-matplotlib
  clang libclang-rt-14-dev
  dpkg-dev file
  chromium
)

packages=("${build[@]}")
case "${1:-}" in
  "") ;;
  --test)
    packages+=("${test[@]}")
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
    command -v npm >/dev/null 2>&1 || packages+=(npm)
    ;;
  *)
    echo "usage: install-deps.sh [--test]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
