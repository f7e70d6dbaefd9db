#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Per-layer overhead on a model with many tiny layers (issue 18: 100k layers, a 32 MB model):
# peak RSS and wall time of kfc-compress --dry-run with the text report, with --json, and with
# --report FILE.md / FILE.html, for one or more binaries side by side (same model, same load).
#
#   bench/many_layers_memory.sh [--layers N] BIN [BIN...]
#
# Writes the model with bench/make_many_layers_model.py (Debian's python3-onnx) into a temporary
# folder, removed at the end. Prints one line per binary and form: peak RSS (MB), seconds, and the
# load average at the start (the machine may be shared).
set -euo pipefail
layers=100000
if [ "${1:-}" = --layers ]; then
  layers=$2
  shift 2
fi
[ $# -ge 1 ] || { echo "usage: $0 [--layers N] BIN [BIN...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kfc-many-layers-XXXXXX")
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$here/make_many_layers_model.py" "$work/many.onnx" --layers "$layers"
echo "model: $layers layers, $(stat -c %s "$work/many.onnx") bytes"
for bin in "$@"; do
  for form in text json md html; do
    case $form in
      text) extra=() ;;
      json) extra=(--json) ;;
      *) extra=(--report "$work/r.$form") ;;
    esac
    load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f "%M %e" -o "$work/time" "$bin" "$work/many.onnx" -r 4 --dry-run -q \
      "${extra[@]}" > /dev/null
    read -r kb seconds < "$work/time"
    printf '%s  %-5s peak RSS %5d MB  %6.1f s  (load %s)\n' "$bin" "$form" $((kb / 1024)) \
      "$seconds" "$load"
  done
done
