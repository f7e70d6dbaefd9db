#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hostile-input suite (issue 18): generated cases, each run in a fresh folder, each with its
# expected exit code, the files that must exist afterwards, and the files that must not. Every file
# present before a case that it does not list as an output must be byte-identical afterwards (the
# tool never changes what it reads), no temporary file may be left, and no case may hang (each
# runs under `timeout`).
# Usage: hostile_suite.sh KFC_COMPRESS_BINARY SOURCE_DIR
set -uo pipefail
KFC=$(realpath "$1")
SRC=$(realpath "$2")
DIGITS=$SRC/testdata/digits_mlp.onnx
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/kfc-hostile-XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
failures=0
cases=0

snapshot() { (cd "$1" && find . -type f -o -type p -o -type l | sort | while read -r f; do
  if [ -f "$f" ] && [ ! -p "$f" ]; then echo "$f $(md5sum < "$f" | cut -c1-32)"; else echo "$f special"; fi
done); }

# run_case NAME EXPECTED_EXIT "OUTPUTS (must exist)" "ABSENT (must not exist)" -- COMMAND...
# Runs COMMAND in $D (prepared by the caller) with stdout to $D/../stdout.
run_case() {
  local name=$1 expect=$2 outputs=$3 absent=$4
  shift 5
  cases=$((cases + 1))
  local before after rc
  before=$(snapshot "$D")
  (cd "$D" && timeout 30 "$@" > "$D.stdout" 2> "$D.stderr")
  rc=$?
  after=$(snapshot "$D")
  local bad=""
  [ "$rc" -eq "$expect" ] || bad+=" exit $rc (want $expect);"
  for f in $outputs; do [ -e "$D/$f" ] || bad+=" missing $f;"; done
  for f in $absent; do [ -e "$D/$f" ] || [ -L "$D/$f" ] && bad+=" unexpected $f;"; done
  # Unchanged: every file from before that is not an output.
  while read -r line; do
    local f=${line%% *}
    f=${f#./}
    case " $outputs " in *" $f "*) continue ;; esac
    grep -qxF "$line" <<< "$after" || bad+=" changed $f;"
  done <<< "$before"
  # No leftovers: nothing new beyond the outputs.
  while read -r line; do
    [ -n "$line" ] || continue
    local f=${line%% *}
    f=${f#./}
    case " $outputs " in *" $f "*) continue ;; esac
    grep -q "^./$f " <<< "$before" || bad+=" leftover $f;"
  done <<< "$after"
  if [ "$rc" -ne 0 ] && [ "$(wc -l < "$D.stderr")" -lt 1 ]; then bad+=" no error line;"; fi
  if [ -n "$bad" ]; then
    failures=$((failures + 1))
    echo "FAIL $name:$bad"
    sed 's/^/    /' "$D.stderr" | tail -3
  else
    echo "ok   $name (exit $rc)"
  fi
}

fresh() { D=$ROOT/$1; mkdir -p "$D"; cp "$DIGITS" "$D/in.onnx"; }

# A model whose weights (fc1, fc2, fc3: 64 KiB, 128 KiB, 5 KiB) are in an external file w.data,
# written by the tool itself at full rank from the digits MLP.
external_model() {
  "$KFC" "$DIGITS" -r 1 -q --include none --external-data=w.data -o "$1/ext.onnx" > /dev/null
}

# --- 1. no output may be an input ---
fresh out_is_input; run_case out_is_input 1 "" "" -- "$KFC" in.onnx -r 4 -o in.onnx
fresh out_is_input_link; ln -s in.onnx "$D/l.onnx"
run_case out_is_input_link 1 "" "" -- "$KFC" in.onnx -r 4 -o l.onnx
fresh out_is_input_hardlink; ln "$D/in.onnx" "$D/h.onnx"
run_case out_is_input_hardlink 1 "" "" -- "$KFC" in.onnx -r 4 -o h.onnx
fresh data_is_input; run_case data_is_input 1 "" "o.onnx" -- "$KFC" in.onnx -r 4 --external-data=in.onnx -o o.onnx
fresh input_is_data; mv "$D/in.onnx" "$D/o.onnx.data"
run_case input_is_data 1 "" "o.onnx" -- "$KFC" o.onnx.data -r 4 --external-data -o o.onnx
fresh report_is_input; run_case report_is_input 1 "" "" -- "$KFC" in.onnx -r 4 --dry-run --report ./in.onnx
D=$ROOT/ext; mkdir -p "$D"; external_model "$D"
for flag in --report --plan-out; do
  run_case "ext$flag" 1 "" "o.onnx" -- "$KFC" ext.onnx -r 2 -o o.onnx "$flag" w.data
done
run_case ext_probe 1 "" "w.calib.json" -- "$KFC" ext.onnx --calibration-probe w.data
run_case ext_output_data 1 "" "o.onnx" -- "$KFC" ext.onnx -r 2 --external-data=w.data -o o.onnx
run_case ext_ok 0 "o.onnx o.onnx.data" "" -- "$KFC" ext.onnx -r 2 --external-data -o o.onnx
fresh plan_is_report; "$KFC" "$D/in.onnx" -r 4 --dry-run -q --plan-out "$D/p.txt" > /dev/null
run_case plan_is_report 1 "" "" -- "$KFC" in.onnx --plan p.txt --dry-run --report p.txt
fresh report_is_plan_out; run_case report_is_plan_out 1 "" "r.json" -- "$KFC" in.onnx -r 4 --dry-run --report r.json --plan-out ./r.json
fresh report_is_output; run_case report_is_output 1 "" "o.onnx" -- "$KFC" in.onnx -r 4 -o o.onnx --report o.onnx

# --- 2. only regular files are replaced ---
# Device nodes are made in the scratch folder (a copy of /dev/null's numbers, as root), never the
# system's own: a tool that replaced them would break the machine, not just fail the case.
fresh special; mkfifo "$D/fifo"; ln -s fifo "$D/to_fifo"; ln -s nowhere "$D/dangling"; mkdir "$D/dir"
if mknod "$D/null" c 1 3 2> /dev/null; then
  run_case out_dev_null 1 "" "" -- "$KFC" in.onnx -r 4 -o null
  run_case report_dev_null 1 "" "o.onnx" -- "$KFC" in.onnx -r 4 -o o.onnx --report null
  run_case probe_dev_null 1 "" "" -- "$KFC" in.onnx --calibration-probe null
  [ -c "$D/null" ] || { echo "FAIL device node replaced"; failures=$((failures + 1)); }
else
  echo "skip device-node cases (not root)"
fi
run_case out_fifo 1 "" "" -- "$KFC" in.onnx -r 4 -o fifo
run_case out_link_to_fifo 1 "" "" -- "$KFC" in.onnx -r 4 -o to_fifo
run_case out_dangling 1 "" "" -- "$KFC" in.onnx -r 4 -o dangling
run_case out_dir 1 "" "" -- "$KFC" in.onnx -r 4 -o dir
run_case plan_out_fifo 1 "" "" -- "$KFC" in.onnx -r 4 --dry-run --plan-out fifo
[ -p "$D/fifo" ] && [ -L "$D/to_fifo" ] || { echo "FAIL special files changed"; failures=$((failures + 1)); }

# --- 3. FIFO inputs: refused at once ---
fresh fifo_model; rm "$D/in.onnx"; mkfifo "$D/in.onnx"
run_case fifo_model 1 "" "o.onnx" -- "$KFC" in.onnx -r 4 -o o.onnx
fresh fifo_plan; mkfifo "$D/p.txt"; run_case fifo_plan 2 "" "o.onnx" -- "$KFC" in.onnx --plan p.txt -o o.onnx
D=$ROOT/fifo_data; mkdir -p "$D"; external_model "$D"; rm "$D/w.data"; mkfifo "$D/w.data"
run_case fifo_data 1 "" "o.onnx" -- "$KFC" ext.onnx -r 2 -o o.onnx
fresh fifo_npy; "$KFC" "$D/in.onnx" --calibration-probe "$D/p.onnx" > /dev/null 2>&1
mkdir "$D/acts"; cp "$D/p.calib.json" "$D/acts/kfc_calibration.json"; mkfifo "$D/acts/kfc_calib_0.npy"
run_case fifo_npy 1 "" "o.onnx" -- "$KFC" in.onnx -r 4 --calibration acts -o o.onnx

# --- 4. outputs appear only when everything succeeded ---
fresh full_stdout; "$KFC" "$D/in.onnx" -r 8 -q --external-data -o "$D/old.onnx" > /dev/null
run_case full_stdout 1 "" "" -- sh -c "'$KFC' in.onnx -r 2 --external-data -o old.onnx --report r.json --plan-out p.txt > /dev/full"
run_case full_stdout_probe 1 "" "p.onnx p.calib.json" -- sh -c "'$KFC' in.onnx --calibration-probe p.onnx > /dev/full"
fresh gate; run_case gate_failed 3 "r.json" "o.onnx" -- "$KFC" in.onnx -r 1 --fail-if-error-above 0.01 -o o.onnx --report r.json

# --- 8. no leftovers; long names ---
fresh xfsz; run_case file_size_limit 1 "" "o.onnx" -- sh -c "ulimit -f 8; exec '$KFC' in.onnx -r 16 -o o.onnx"
fresh long; name=$(printf 'n%.0s' $(seq 1 250)).onnx
run_case long_name_255 0 "$name" "" -- "$KFC" in.onnx -r 4 -o "$name"
fresh toolong; name=$(printf 'n%.0s' $(seq 1 251)).onnx
run_case name_too_long 1 "" "" -- "$KFC" in.onnx -r 4 -o "$name"

# --- 8b. the runner (--calibration-data): a hang times out, interrupts leave nothing ---
# Stand-in runners (outside the case folders): one greets, starts a child, and never answers; one
# never greets. Each writes its pid and its child's to $KFC_TEST_PIDS.*, so the case can check
# that no process survives. The tool's TMPDIR is the case's tmp/ folder, which must end empty.
SLEEPER=$ROOT/sleeper.sh
MUTE=$ROOT/mute.sh
printf '%s\n' '#!/bin/sh' 'echo $$ > "$KFC_TEST_PIDS.runner"' 'sleep 600 &' \
  'echo $! > "$KFC_TEST_PIDS.child"' \
  "echo '{\"protocol\":1,\"ok\":true,\"runtime\":\"sleeper\"}'" 'wait' > "$SLEEPER"
printf '%s\n' '#!/bin/sh' 'echo $$ > "$KFC_TEST_PIDS.runner"' 'sleep 600 &' \
  'echo $! > "$KFC_TEST_PIDS.child"' 'wait' > "$MUTE"
# A 16 x 64 float32 .npy of zeros: rows for the digits model's one input.
calib_npy() {
  printf '\x93NUMPY\x01\x00\x76\x00'
  printf "%-117s\n" "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 64), }"
  head -c $((16 * 64 * 4)) /dev/zero
}
alive() {  # PID is running (not gone, not a zombie)
  local st
  st=$(ps -o stat= -p "$1" 2> /dev/null) || return 1
  [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
# runner_case NAME EXPECTED_EXIT SIGNAL|- "STDERR PATTERN" RUNNER_SCRIPT -- OPTIONS...: runs the
# tool on the digits model with a stand-in runner, and sends SIGNAL once the runner has started
# its child (- sends none). Checks the exit status, no o.onnx, tmp/ empty and no .kfc-* file, no
# runner or child left, and (when a pattern is given) one error line matching it. SIGINT is reset
# to its default for the tool: a background job of a script would otherwise start with it ignored.
runner_case() {
  local name=$1 expect=$2 sig=$3 pattern=$4 script=$5
  shift 6
  cases=$((cases + 1))
  fresh "$name"
  mkdir "$D/tmp"
  calib_npy > "$D/calib.npy"
  local pids=$ROOT/$name.pids bad="" rc tool watchdog left pid who
  (cd "$D" && exec env --default-signal=INT,QUIT TMPDIR="$D/tmp" KFC_TEST_PIDS="$pids" \
    "$KFC" in.onnx -r 4 -q --calibration-data calib.npy --runner "sh $script" -o o.onnx "$@" \
    > "$D.stdout" 2> "$D.stderr") &
  tool=$!
  (sleep 60 && kill -9 "$tool" 2> /dev/null) &
  watchdog=$!
  if [ "$sig" != - ]; then
    for _ in $(seq 1 300); do [ -s "$pids.child" ] && break; sleep 0.1; done
    [ -s "$pids.child" ] || bad+=" the runner never started;"
    kill -s "$sig" "$tool"
  fi
  wait "$tool" 2> /dev/null
  rc=$?
  kill "$watchdog" 2> /dev/null
  wait "$watchdog" 2> /dev/null
  [ "$rc" -eq "$expect" ] || bad+=" exit $rc (want $expect);"
  [ -e "$D/o.onnx" ] && bad+=" o.onnx written;"
  left="$(ls -A "$D/tmp")$(find "$D" -name '.kfc-*')"
  [ -z "$left" ] || bad+=" leftovers: $left;"
  for who in runner child; do
    pid=$(cat "$pids.$who" 2> /dev/null)
    [ -n "$pid" ] || { bad+=" no $who pid;"; continue; }
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      bad+=" the $who ($pid) survived;"
      kill -9 "$pid"
    fi
  done
  if [ -n "$pattern" ]; then
    { [ "$(wc -l < "$D.stderr")" -eq 1 ] && grep -qE "$pattern" "$D.stderr"; } ||
      bad+=" stderr is not one line matching '$pattern';"
  fi
  if [ -n "$bad" ]; then
    failures=$((failures + 1))
    echo "FAIL $name:$bad"
    sed 's/^/    /' "$D.stderr" | tail -3
  else
    echo "ok   $name (exit $rc)"
  fi
}
runner_case runner_hangs 1 - "^kfc-compress: error: runner 'sh .*sleeper\.sh' did not answer within 1 s while running '.*/probe\.onnx' on '.*calib\.npy' \(recording [0-9]+ tensors\); it was stopped" \
  "$SLEEPER" -- --runner-timeout 1
runner_case runner_never_greets 1 - "did not answer within 0\.5 s while starting up; it was stopped" \
  "$MUTE" -- --runner-timeout 0.5
runner_case runner_sigint 130 INT "" "$SLEEPER" --
runner_case runner_sigterm 143 TERM "" "$SLEEPER" --
runner_case runner_sighup 129 HUP "" "$SLEEPER" --
fresh runner_timeout_usage
run_case runner_timeout_negative 2 "" "o.onnx" -- "$KFC" in.onnx -r 4 --calibration-data x.npy --runner-timeout -1 -o o.onnx
run_case runner_timeout_needs_data 2 "" "o.onnx" -- "$KFC" in.onnx -r 4 --runner-timeout 5 -o o.onnx

# --- 9. numbers and regexes ---
fresh numbers
for flag in --max-error --ratio --fail-if-error-above --fail-if-ratio-above; do
  run_case "minus_one$flag" 2 "" "o.onnx" -- "$KFC" in.onnx -r 4 "$flag" -1 -o o.onnx
done
run_case backreference 2 "" "o.onnx" -- "$KFC" in.onnx -r 4 --include '(.*)(.*)(.*)\3x' -o o.onnx
run_case re2_classes 0 "o.onnx" "" -- "$KFC" in.onnx -r 4 --include 'fc\d' -o o.onnx

echo "hostile suite: $cases cases, $failures failed"
[ "$failures" -eq 0 ]
