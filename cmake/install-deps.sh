#!/usr/bin/env bash
# Installs the Debian 12 packages kfc-compress needs to build and test, only those that are
# missing. Runs unattended (no prompts); uses sudo when not root.
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  libonnx-dev libprotobuf-dev protobuf-compiler
  liblapacke-dev libopenblas-dev
  libspdlog-dev libgtest-dev libcli11-dev
  python3-onnx python3-numpy python3-sklearn
  dataset-fashion-mnist
  python3-pil fonts-dejavu-core
  clang libclang-rt-14-dev
)
# Tests: the HTML report is checked in headless Chromium (tests/cli/html_report_browser_test.py).
packages+=(chromium)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

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
