#!/usr/bin/env bash
# Puts "SPDX-License-Identifier: Apache-2.0" on the first line of every tracked source file that
# lacks it (after a #! line): // for C++, protobuf and JavaScript; # for CMake, shell and Python.
# Data (models, JSON, golden reports), docs and config files get none. --check only lists the
# files that lack it (exit 1 if any).
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = "--check" ] && check=true

tag="SPDX-License-Identifier: Apache-2.0"
missing=0
while IFS= read -r f; do
  case "$f" in
    *.cc | *.h | *.proto | *.js) line="// $tag" ;;
    *.py | *.sh | *.cmake | *.cmake.in | CMakeLists.txt | */CMakeLists.txt) line="# $tag" ;;
    *) continue ;;
  esac
  head -n 3 "$f" | grep -q "SPDX-License-Identifier" && continue
  missing=$((missing + 1))
  if $check; then
    echo "$f"
  elif head -n 1 "$f" | grep -q '^#!'; then
    sed -i "1a $line" "$f"
  else
    sed -i "1i $line" "$f"
  fi
done < <(git ls-files)
if $check && [ "$missing" -gt 0 ]; then
  echo "spdx_headers: $missing files lack an SPDX line (run tool/spdx_headers.sh)" >&2
  exit 1
fi
$check || echo "spdx_headers: added to $missing files"
