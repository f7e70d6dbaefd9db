#!/usr/bin/env bash
# Byte-identity harness: runs two kfc-compress binaries on the same models and options and compares
# everything they write (model, external data file, --plan-out plan, --json report on stdout, exit
# code) with cmp. The reports carry no timings; paths are relative to each run's own folder, so
# they compare byte for byte too.
#
#   tests/identity/run_identity.sh OLD_BIN NEW_BIN [OUTDIR]
#
# 12 models x 8 modes x -j 1/2, plus digits_mlp with --calibration (its probe from OLD_BIN and
# deterministic activations) x 4 modes x -j 1/2: 200 runs of each binary. KFC_IDENTITY_QUICK=1 runs
# -j 1 only. Prints 'N passed, N failed'; exits 1 on any difference, 2 on bad usage.
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 OLD_BIN NEW_BIN [OUTDIR]" >&2
  exit 2
fi
old_bin=$(realpath "$1")
new_bin=$(realpath "$2")
out=${3:-$(mktemp -d /tmp/kfc_identity.XXXXXX)}
mkdir -p "$out"
out=$(realpath "$out")
root=$(cd "$(dirname "$0")/../.." && pwd)
syn="$root/testdata/synthetic"

models=(
  "$syn/ext_gemm_matmul.onnx"      # external data, Gemm and MatMul
  "$syn/ext_constant_node.onnx"    # external data behind a Constant node
  "$syn/if_gemm_branches.onnx"     # subgraphs: If
  "$syn/loop_matmul_outer.onnx"    # subgraphs: Loop reading an outer initializer
  "$syn/scan_matmul.onnx"          # subgraphs: Scan
  "$syn/gemm_fp16.onnx"            # float16
  "$syn/matmul_fp64.onnx"          # float64
  "$syn/matmul_shared_weight.onnx" # one weight, two layers
  "$syn/gemm_alpha_beta.onnx"      # alpha folding, beta
  "$syn/matmul_wx_3d_static.onnx"  # MatMul(W, X)
  "$root/testdata/fashion_mlp.onnx"
  "$root/testdata/digits_mlp.onnx"
)
# name|options (a run folder per model, mode and thread count)
modes=(
  "r4|-r 4"
  "r64|-r 64"
  "auto|-r 4 --shape auto"
  "lowrank|-r 8 --shape lowrank"
  "maxerr|--max-error 0.05"
  "ratio|--ratio 0.25"
  "extdata|-r 8 --external-data --external-data-threshold 1024"
  "plan|PLAN"
)
threads=(1 2)
[ "${KFC_IDENTITY_QUICK:-0}" = 1 ] && threads=(1)

# run BIN DIR MODEL OPTIONS...: in DIR, writes out.onnx (+ data), report.json, stderr.txt, rc.
run() {
  local bin=$1 dir=$2 model=$3
  shift 3
  mkdir -p "$dir"
  (cd "$dir" && "$bin" "$model" -o out.onnx --json --min-params 0 "$@" >report.json 2>stderr.txt
   echo $? >rc)
}

# run_mode BIN DIR MODEL MODE_OPTIONS J
run_mode() {
  local bin=$1 dir=$2 model=$3 opts=$4 j=$5
  if [ "$opts" = PLAN ]; then
    # Round trip: a dry run writes the plan it used, a second run pins it.
    run "$bin" "$dir/first" "$model" -j "$j" --max-error 0.1 --dry-run --plan-out plan.json
    run "$bin" "$dir" "$model" -j "$j" --plan first/plan.json
  else
    # shellcheck disable=SC2086
    run "$bin" "$dir" "$model" -j "$j" $opts
  fi
}

passed=0
failed=0
compare() {  # compare NAME: every file of old/NAME against new/NAME, both ways
  local name=$1 a="$out/old/$1" b="$out/new/$1" ok=1 f rel
  for f in $( (cd "$a" && find . -type f ! -name stderr.txt; cd "$b" && find . -type f \
                ! -name stderr.txt) | sort -u); do
    rel=${f#./}
    if [ ! -f "$a/$rel" ] || [ ! -f "$b/$rel" ]; then
      echo "DIFF $name: $rel exists on one side only"
      ok=0
    elif ! cmp -s "$a/$rel" "$b/$rel"; then
      echo "DIFF $name: $rel differs"
      ok=0
    fi
  done
  if [ $ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

rm -rf "$out/old" "$out/new"
for model in "${models[@]}"; do
  base=$(basename "$model" .onnx)
  for m in "${modes[@]}"; do
    mname=${m%%|*}
    opts=${m#*|}
    for j in "${threads[@]}"; do
      name="$base/$mname/j$j"
      run_mode "$old_bin" "$out/old/$name" "$model" "$opts" "$j"
      run_mode "$new_bin" "$out/new/$name" "$model" "$opts" "$j"
      compare "$name"
    done
  done
done
# --calibration: digits_mlp's probe (from OLD_BIN) and 40 deterministic rows per exposed tensor.
digits="$root/testdata/digits_mlp.onnx"
calib="$out/calibration"
rm -rf "$calib"
mkdir -p "$calib"
if "$old_bin" "$digits" --calibration-probe "$calib/probe.onnx" >/dev/null 2>&1 &&
   python3 - "$calib" <<'PY'
import json, struct, sys
d = sys.argv[1]
side = json.load(open(d + "/probe.calib.json"))
json.dump(side, open(d + "/kfc_calibration.json", "w"))
state = 12345
for t in side["tensors"]:
    rows, k = 40, int(t["k"])
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, k)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    values = []
    for _ in range(rows * k):
        state = (state * 1103515245 + 12345) % 2**31
        values.append(state / 2**31 - 0.5)
    with open("%s/%s.npy" % (d, t["name"]), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % len(values), *values))
PY
then
  for m in "r4|-r 4" "auto|-r 4 --shape auto" "maxerr|--max-error 0.05" "ratio|--ratio 0.25"; do
    for j in "${threads[@]}"; do
      name="digits_calibrated/${m%%|*}/j$j"
      # shellcheck disable=SC2086
      run "$old_bin" "$out/old/$name" "$digits" -j "$j" --calibration "$calib" ${m#*|}
      # shellcheck disable=SC2086
      run "$new_bin" "$out/new/$name" "$digits" -j "$j" --calibration "$calib" ${m#*|}
      compare "$name"
    done
  done
else
  echo "FAIL: could not make the calibration data in $calib"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed (outputs in $out)"
[ $failed = 0 ]
