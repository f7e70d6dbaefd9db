// SPDX-License-Identifier: Apache-2.0
'use strict';
// One-command calibration (--calibration-data) and end-to-end verification through the runner
// (tool/kfc-runner.js, docs/runner.md): the same bytes as the manual probe workflow on the same
// data, output errors that ONNX Runtime confirms, input naming for multi-input models, the
// --fail-if-output-error-above gate, and every runner failure as one line with exit 1, no output
// and no temporary files left behind.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { writeNpy } = require('./npy');
const { runProbe } = require('./run_probe');

const ROWS = 512;
const FASHION = h.testdataPath('fashion_mlp.onnx');
const RUNNER = path.join(h.sourceDir(), 'tool', 'kfc-runner.js');

function freshDir(env, name) {
  const dir = path.join(env.workDir, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// Runs kfc-compress with TMPDIR set to a fresh folder (checked empty afterwards: the tool removes
// its temporary files whatever happens) and `extraEnv`; returns {status, stdout, stderr}.
function kfc(env, args, extraEnv = {}) {
  const tmp = fs.mkdtempSync(path.join(env.workDir, 'tmp-'));
  const r = spawnSync(env.compress, args, {
    encoding: 'utf8', timeout: 300000, maxBuffer: 64 << 20,
    env: { ...process.env, KFC_RUNNER: '', TMPDIR: tmp, ...extraEnv },
  });
  if (r.error) throw new Error(`could not run kfc-compress: ${r.error.message}`);
  if (r.signal) throw new Error(`kfc-compress ${args.join(' ')} was killed by ${r.signal}\n${r.stderr}`);
  const left = fs.readdirSync(tmp);
  assert.deepEqual(left, [], `temporary files left behind in ${tmp}: ${left.join(', ')}`);
  fs.rmdirSync(tmp);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function describe(args, r) {
  return `kfc-compress ${args.join(' ')}\nexit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

// Exit 1 with exactly one line on stderr, `pattern` in it, and `output` not written.
function expectFailure(env, args, pattern, output, extraEnv = {}) {
  args = [...args, '-q']; // info logs are not errors: -q leaves errors only
  const r = kfc(env, args, extraEnv);
  assert.equal(r.status, 1, describe(args, r));
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `stderr is not one line:\n${describe(args, r)}`);
  assert.match(lines[0], /^kfc-compress: error: /);
  assert.match(lines[0], pattern);
  assert.equal(r.stdout, '');
  if (output) assert.ok(!fs.existsSync(output), `${output} was written despite the error`);
  return lines[0];
}

// Seeded rows in [0, 1): Fashion-MNIST-like pixels for the 784-input MLP.
function fashionLike(dir, rows = ROWS, seed = 'runner rows') {
  const rng = h.mulberry32(h.seedFromString(seed));
  const x = new Float32Array(rows * 784);
  for (let i = 0; i < x.length; ++i) x[i] = rng() < 0.5 ? 0 : rng();
  const file = path.join(dir, 'calib.npy');
  writeNpy(file, [rows, 784], x);
  return { file, x };
}

// A .npy of an arbitrary descr (raw little-endian bytes given), for dtype errors.
function writeRawNpy(file, descr, dims, bytes) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), bytes]));
}

function writeModelWithPython(script, model) {
  const py = h.run('/usr/bin/python3', ['-c', script, model]);
  assert.equal(py.status, 0, py.stderr);
}

test('one command gives the bytes of the manual probe workflow, and output errors ORT confirms', async (t) => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'fashion');
  const { file, x } = fashionLike(dir);
  // Explicit values: with --calibration-data they would otherwise be chosen by held-out output
  // error (auto_select.test.js), which the manual workflow cannot do.
  const mode = ['--ratio', '0.25', '--shape', 'lowrank', '--allocation', 'size-weighted',
    '--calibration-regularization', '10'];

  // The manual workflow: probe, run_probe.js (batches of 256), --calibration DIR.
  const probe = path.join(dir, 'probe.onnx');
  let r = kfc(env, [FASHION, '--calibration-probe', probe]);
  assert.equal(r.status, 0, r.stderr);
  const acts = path.join(dir, 'acts');
  await runProbe({ probe, inputs: { input: file }, out: acts, batch: 256 });
  const manual = path.join(dir, 'manual.onnx');
  r = kfc(env, [FASHION, ...mode, '--calibration', acts, '-o', manual, '-q']);
  assert.equal(r.status, 0, r.stderr);

  // One command, unnamed and named.
  const one = path.join(dir, 'one.onnx');
  const reportPath = path.join(dir, 'one.json');
  const args = [FASHION, ...mode, '--calibration-data', file, '-o', one, '--report', reportPath];
  r = kfc(env, args);
  assert.equal(r.status, 0, describe(args, r));
  // The write reads each spilled factor once; the output check before it is not counted again.
  const spilled = r.stderr.match(/(\d+) bytes of factors spilled/);
  const fromSpill = r.stderr.match(/wrote '[^']*' \(\d+ bytes; (\d+) bytes of factors from the spill\)/);
  assert.ok(spilled && fromSpill, describe(args, r));
  assert.equal(fromSpill[1], spilled[1], describe(args, r));
  assert.ok(fs.readFileSync(one).equals(fs.readFileSync(manual)),
    'one-command output differs from the manual probe workflow');
  const named = path.join(dir, 'named.onnx');
  r = kfc(env, [FASHION, ...mode, '--calibration-data', `input=${file}`, '-o', named, '-q']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.readFileSync(named).equals(fs.readFileSync(manual)), 'INPUT=FILE differs');

  // The text report lists the output errors; the logs say what the runner did.
  assert.match(r.stdout, /outputs on 512 calibration rows, original vs compressed \(run by onnxruntime-node 1\.30\.0\):/);
  const text = kfc(env, [FASHION, ...mode, '--calibration-data', file, '--dry-run']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /\n {2}probabilities {2}\d\.\d{6} {2}/);
  assert.match(text.stderr, /runner \(onnxruntime-node 1\.30\.0\): recorded 3 activations and 1 outputs on 512 rows/);

  // The Markdown and HTML reports carry the same figures.
  const md = path.join(dir, 'report.md');
  const html = path.join(dir, 'report.html');
  for (const file of [md, html]) {
    const rr = kfc(env, [FASHION, ...mode, '--calibration-data', path.join(dir, 'calib.npy'),
      '--dry-run', '-q', '--report', file]);
    assert.equal(rr.status, 0, rr.stderr);
  }
  assert.match(fs.readFileSync(md, 'utf8'), /\| output \(512 calibration rows, run by onnxruntime-node 1\.30\.0\) \| relative error \| max abs error \|\n\|:--\|--:\|--:\|\n\| probabilities \| \d\.\d{6} \|/);
  assert.match(fs.readFileSync(html, 'utf8'), /<section id="outputs">[\s\S]*<td>probabilities<\/td><td class="n">\d\.\d{6}<\/td>/);

  const report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
  assert.equal(report.calibration, 'runner');
  assert.deepEqual(report.calibration_data, [`input=${file}`]);
  assert.equal(report.calibration_rows, ROWS);
  assert.equal(report.runner, 'onnxruntime-node 1.30.0');
  for (const l of report.layers.filter((l) => l.compressed)) assert.equal(l.calibrated, true, l.node_name);
  assert.equal(report.output_errors.length, 1);
  const e = report.output_errors[0];
  assert.equal(e.name, 'probabilities');
  assert.equal(e.elements, ROWS * 10);

  // ONNX Runtime, independently: the original against the written model on the same rows.
  const feeds = { input: new h.ort.Tensor('float32', x, [ROWS, 784]) };
  const y = (await h.runSession(await h.createSession(FASHION), feeds, 'original')).probabilities.data;
  const yc = (await h.runSession(await h.createSession(one), feeds, 'compressed')).probabilities.data;
  const rel = h.relativeError(yc, y);
  let maxAbs = 0;
  for (let i = 0; i < y.length; ++i) maxAbs = Math.max(maxAbs, Math.abs(yc[i] - y[i]));
  t.diagnostic(`--ratio 0.25 lowrank, calibrated: output relative error ${e.relative_error} ` +
    `(ORT here: ${rel}), max abs ${e.max_abs_error} (${maxAbs})`);
  assert.ok(e.relative_error > 0 && e.relative_error < 0.5, `implausible error ${e.relative_error}`);
  assert.ok(Math.abs(e.relative_error - rel) <= 1e-3 * rel, `reported ${e.relative_error}, ORT ${rel}`);
  assert.ok(Math.abs(e.max_abs_error - maxAbs) <= 1e-6, `reported ${e.max_abs_error}, ORT ${maxAbs}`);

  // --calibration-batch changes nothing but the batching of the same rows: the same statistics
  // up to rounding; the output error stays within 1e-3 of itself.
  const b100 = kfc(env, [FASHION, ...mode, '--calibration-data', file, '--calibration-batch', '100',
    '--dry-run', '--json']);
  assert.equal(b100.status, 0, b100.stderr);
  const e100 = JSON.parse(b100.stdout).output_errors[0].relative_error;
  assert.ok(Math.abs(e100 - e.relative_error) <= 1e-3 * e.relative_error, `${e100} vs ${e.relative_error}`);
});

test('--fail-if-output-error-above gates on the worst output error', (t) => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'gate');
  const { file } = fashionLike(dir, 300, 'gate rows');
  const out = path.join(dir, 'out.onnx');
  const base = [FASHION, '-r', '2', '--calibration-data', file, '-o', out];

  const fail = kfc(env, [...base, '--fail-if-output-error-above', '1e-9', '--json']);
  assert.equal(fail.status, 3, describe(base, fail));
  assert.ok(!fs.existsSync(out), 'written despite the failed gate');
  const rep = JSON.parse(fail.stdout);
  const worst = Math.max(...rep.output_errors.map((e) => e.relative_error));
  const gate = rep.gates.find((g) => g.gate === 'fail_if_output_error_above');
  assert.ok(gate, 'no output gate in the report');
  assert.equal(gate.passed, false);
  assert.equal(gate.value, worst);
  assert.equal(rep.gates_passed, false);
  assert.equal(rep.output_written, false);
  assert.match(fail.stderr, /gate failed: fail_if_output_error_above: output 'probabilities' relative error [\d.e-]+ exceeds 1e-09 by/);
  t.diagnostic(`-r 2: worst output error ${worst}`);

  const pass = kfc(env, [...base, '--fail-if-output-error-above', String(worst * 1.01), '--json']);
  assert.equal(pass.status, 0, pass.stderr);
  assert.ok(fs.existsSync(out));
  assert.equal(JSON.parse(pass.stdout).gates[0].passed, true);
  fs.rmSync(out);

  const forced = kfc(env, [...base, '--fail-if-output-error-above', '1e-9', '--write-on-gate-failure', '-q']);
  assert.equal(forced.status, 3, forced.stderr);
  assert.ok(fs.existsSync(out), '--write-on-gate-failure did not write');

  // With the other gates: each is judged, the report lists all.
  const both = kfc(env, [...base, '--dry-run', '--json', '--fail-if-output-error-above', '1',
    '--fail-if-ratio-above', '0.01']);
  assert.equal(both.status, 3, both.stderr);
  assert.deepEqual(JSON.parse(both.stdout).gates.map((g) => [g.gate, g.passed]),
    [['fail_if_ratio_above', false], ['fail_if_output_error_above', true]]);
});

test('usage errors: options that need --calibration-data, and exclusive ones', () => {
  const env = h.requireHarnessEnv('runner');
  const cases = [
    [['--fail-if-output-error-above', '0.1', '-r', '2', '--dry-run'], /--fail-if-output-error-above needs --calibration-data/],
    [['--runner', 'node x.js', '-r', '2', '--dry-run'], /--runner needs --calibration-data/],
    [['--calibration-batch', '8', '-r', '2', '--dry-run'], /--calibration-batch needs --calibration-data/],
    [['--calibration-data', 'x.npy', '--calibration', 'dir', '-r', '2', '--dry-run'], /exclude each other/],
    [['--calibration-data', 'x.npy', '--calibration-probe', 'p.onnx'], /exclude each other/],
    [['--calibration-data', 'x.npy', '--calibration-batch', '0', '-r', '2', '--dry-run'], /--calibration-batch must be from 1/],
    [['--calibration-data', 'x.npy', '--fail-if-output-error-above', 'abc', '-r', '2', '--dry-run'], /expected a number/],
    [['--calibration-data', 'x.npy', '--runner', "node 'x.js", '-r', '2', '--dry-run'], /unterminated quote/],
  ];
  for (const [args, pattern] of cases) {
    const r = kfc(env, [FASHION, ...args]);
    assert.equal(r.status, 2, describe(args, r));
    assert.match(r.stderr, pattern, describe(args, r));
  }
});

test('multi-input models: each input by name; missing, unknown, repeated or unnamed inputs fail', async () => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'two_inputs');
  const model = path.join(dir, 'two_inputs.onnx');
  writeModelWithPython(`
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
rng = np.random.default_rng(7)
w1 = numpy_helper.from_array(rng.standard_normal((64, 96)).astype(np.float32), 'w1')
w2 = numpy_helper.from_array(rng.standard_normal((64, 96)).astype(np.float32), 'w2')
nodes = [helper.make_node('MatMul', ['a', 'w1'], ['p'], name='mm_a'),
         helper.make_node('MatMul', ['b', 'w2'], ['q'], name='mm_b'),
         helper.make_node('Add', ['p', 'q'], ['y'], name='add'),
         helper.make_node('Relu', ['p'], ['z'], name='relu')]
g = helper.make_graph(nodes, 'two', [helper.make_tensor_value_info('a', T.FLOAT, ['n', 64]),
                                     helper.make_tensor_value_info('b', T.FLOAT, ['n', 64])],
                      [helper.make_tensor_value_info('y', T.FLOAT, ['n', 96]),
                       helper.make_tensor_value_info('z', T.FLOAT, ['n', 96])], [w1, w2])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])`, model);
  const rng = h.mulberry32(h.seedFromString('two inputs'));
  for (const name of ['a', 'b']) {
    const x = Float32Array.from({ length: 200 * 64 }, () => rng() - 0.5);
    writeNpy(path.join(dir, `${name}.npy`), [200, 64], x);
  }
  const a = path.join(dir, 'a.npy');
  const b = path.join(dir, 'b.npy');
  const out = path.join(dir, 'out.onnx');
  const base = [model, '-r', '4', '-o', out];
  const r = kfc(env, [...base, '--calibration-data', `b=${b}`, '--calibration-data', `a=${a}`, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.deepEqual(rep.output_errors.map((e) => e.name), ['y', 'z']);
  assert.deepEqual(rep.calibration_data, [`b=${b}`, `a=${a}`]);
  assert.deepEqual(rep.layers.map((l) => [l.node_name, l.calibrated]), [['mm_a', true], ['mm_b', true]]);
  fs.rmSync(out);

  expectFailure(env, [...base, '--calibration-data', `a=${a}`], /no data for the model's input 'b'/, out);
  expectFailure(env, [...base, '--calibration-data', a], /the model has 2 inputs \('a', 'b'\): give each as INPUT=FILE\.npy/, out);
  expectFailure(env, [...base, '--calibration-data', `a=${a}`, '--calibration-data', `c=${b}`],
    /the model has no input 'c' \(its inputs: 'a', 'b'\)/, out);
  expectFailure(env, [...base, '--calibration-data', `a=${a}`, '--calibration-data', `a=${b}`],
    /input 'a' is given twice/, out);
  // Row counts must agree.
  writeNpy(path.join(dir, 'short.npy'), [100, 64], new Float32Array(100 * 64));
  expectFailure(env, [...base, '--calibration-data', `a=${a}`, '--calibration-data', `b=${path.join(dir, 'short.npy')}`],
    /runner: input 'b': '.*short\.npy' has 100 rows, '.*a\.npy' has 200/, out);
});

test('runner errors: one line, exit 1, nothing written, no temporary files', () => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'errors');
  const out = path.join(dir, 'out.onnx');
  const base = [FASHION, '-r', '4', '-o', out];
  const { file } = fashionLike(dir, 64, 'error rows');

  // Data: wrong dtype, wrong shape, missing, not .npy, truncated.
  const f64 = path.join(dir, 'f64.npy');
  writeRawNpy(f64, '<f8', [64, 784], Buffer.alloc(64 * 784 * 8));
  expectFailure(env, [...base, '--calibration-data', f64],
    /runner: input 'input': '.*f64\.npy' holds float64; the model input is float32 \(convert the array/, out);
  const i64 = path.join(dir, 'i64.npy');
  writeRawNpy(i64, '<i8', [64, 784], Buffer.alloc(64 * 784 * 8));
  expectFailure(env, [...base, '--calibration-data', i64], /holds int64; the model input is float32/, out);
  const images = path.join(dir, 'images.npy');
  writeNpy(images, [64, 28, 28], new Float32Array(64 * 784));
  expectFailure(env, [...base, '--calibration-data', images],
    /runner: input 'input': '.*images\.npy' has shape \[64, 28, 28\]; the model input is \[batch, 784\]/, out);
  const narrow = path.join(dir, 'narrow.npy');
  writeNpy(narrow, [64, 780], new Float32Array(64 * 780));
  expectFailure(env, [...base, '--calibration-data', narrow], /has shape \[64, 780\]; the model input is \[batch, 784\]/, out);
  expectFailure(env, [...base, '--calibration-data', path.join(dir, 'missing.npy')],
    /runner: input 'input': cannot open '.*missing\.npy': no such file/, out);
  const text = path.join(dir, 'text.npy');
  fs.writeFileSync(text, 'not numpy at all');
  expectFailure(env, [...base, '--calibration-data', text], /'.*text\.npy' is not a \.npy file/, out);
  const truncated = path.join(dir, 'truncated.npy');
  fs.writeFileSync(truncated, fs.readFileSync(file).subarray(0, 1000));
  expectFailure(env, [...base, '--calibration-data', truncated], /'.*truncated\.npy' is truncated/, out);
  const withNaN = path.join(dir, 'nan.npy');
  const nanRows = new Float32Array(64 * 784);
  nanRows[40 * 784 + 5] = NaN;
  writeNpy(withNaN, [64, 784], nanRows);
  expectFailure(env, [...base, '--calibration-data', withNaN],
    /runner: input: '.*nan\.npy' has a NaN at row 40 \(calibration data must be finite\)$/, out);
  expectFailure(env, [...base, '--calibration-data', `image=${file}`],
    /--calibration-data 'image=.*': the model has no input 'image' \(its inputs: 'input'\)/, out);

  // Node.js missing: PATH without node.
  const noNode = fs.mkdtempSync(path.join(env.workDir, 'nonode-'));
  expectFailure(env, [...base, '--calibration-data', file],
    /runner: cannot start 'node': not found on PATH \(the default runner .*kfc-runner\.js needs Node\.js 18 or newer/, out,
    { PATH: noNode });
  // onnxruntime-node missing: the runner copied where no node_modules can be found.
  const lonely = fs.mkdtempSync(path.join(os.tmpdir(), 'kfc-runner-test-'));
  try {
    fs.copyFileSync(RUNNER, path.join(lonely, 'kfc-runner.js'));
    expectFailure(env, [...base, '--calibration-data', file, '--runner', `node ${path.join(lonely, 'kfc-runner.js')}`],
      /runner 'node .*kfc-runner\.js' exited with code 1 before its greeting: kfc-runner: error: onnxruntime-node is not installed/, out);
  } finally {
    fs.rmSync(lonely, { recursive: true, force: true });
  }
  // A runner program that does not exist, one that dies, one that does not speak the protocol.
  expectFailure(env, [...base, '--calibration-data', file, '--runner', '/nonexistent/runner'],
    /runner: cannot start '\/nonexistent\/runner': not found$/, out);
  expectFailure(env, [...base, '--calibration-data', file, '--runner', 'false'],
    /runner 'false' exited with code 1 before its greeting$/, out);
  expectFailure(env, [...base, '--calibration-data', file, '--runner', 'echo hello'],
    /runner 'echo hello': expected its greeting as one JSON line on stdout, got 'hello'/, out);
  expectFailure(env, [...base, '--calibration-data', file, '--runner', `echo '{"protocol":2,"ok":true}'`],
    /speaks protocol 2; kfc-compress speaks 1/, out);
  // A runner that greets, then dies on the request, with its last words on stderr.
  expectFailure(env, [...base, '--calibration-data', file, '--runner',
    `node -e "console.log(JSON.stringify({protocol:1,ok:true}));process.stdin.once('data',()=>{console.error('boom: out of memory');process.exit(9)})"`],
  /runner 'node -e .*' exited with code 9 before answering the request for '.*probe\.onnx': boom: out of memory/, out);
  // KFC_RUNNER is used when --runner is not given; --runner wins over it.
  expectFailure(env, [...base, '--calibration-data', file], /runner 'false' exited with code 1/, out, { KFC_RUNNER: 'false' });
  const r = kfc(env, [...base, '--calibration-data', file, '--runner', `node ${RUNNER}`, '-q'], { KFC_RUNNER: 'false' });
  assert.equal(r.status, 0, r.stderr);
  fs.rmSync(out);
});

test('a model the runtime cannot run is one clear line', () => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'cannot_run');
  const model = path.join(dir, 'custom_op.onnx');
  // The checker accepts an op of an unknown domain; ONNX Runtime has no kernel for it.
  writeModelWithPython(`
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
w = numpy_helper.from_array(np.ones((64, 96), np.float32), 'w')
nodes = [helper.make_node('MatMul', ['x', 'w'], ['h'], name='mm'),
         helper.make_node('Frobnicate', ['h'], ['y'], name='custom', domain='com.example')]
g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', T.FLOAT, ['n', 64])],
                      [helper.make_tensor_value_info('y', T.FLOAT, ['n', 96])], [w])
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13), helper.make_opsetid('com.example', 1)])
onnx.save(m, sys.argv[1])`, model);
  const x = path.join(dir, 'x.npy');
  writeNpy(x, [32, 64], new Float32Array(32 * 64).fill(0.5));
  const out = path.join(dir, 'out.onnx');
  expectFailure(env, [model, '-r', '2', '--calibration-data', x, '-o', out],
    /runner: model '.*probe\.onnx': ONNX Runtime cannot load it: .*Frobnicate/, out);
});

test('external data: the probe and the compressed model run with their weights', () => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'external');
  // Weights of 128 KiB stay in their file when the tool loads the model (above 64 KiB).
  const model = path.join(dir, 'model', 'ext.onnx');
  fs.mkdirSync(path.dirname(model));
  writeModelWithPython(`
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
rng = np.random.default_rng(3)
w1 = numpy_helper.from_array(rng.standard_normal((256, 128)).astype(np.float32), 'w1')
w2 = numpy_helper.from_array(rng.standard_normal((128, 256)).astype(np.float32), 'w2')
nodes = [helper.make_node('MatMul', ['x', 'w1'], ['h'], name='fc1'),
         helper.make_node('Relu', ['h'], ['r'], name='relu'),
         helper.make_node('MatMul', ['r', 'w2'], ['y'], name='fc2')]
g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', T.FLOAT, ['n', 256])],
                      [helper.make_tensor_value_info('y', T.FLOAT, ['n', 256])], [w1, w2])
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
onnx.save(m, sys.argv[1], save_as_external_data=True, location='weights.data', size_threshold=0)`,
  model);
  const rng = h.mulberry32(h.seedFromString('external rows'));
  const file = path.join(dir, 'x.npy');
  writeNpy(file, [128, 256], Float32Array.from({ length: 128 * 256 }, () => rng() - 0.5));
  // TMPDIR on the model's file system: the data file is hard-linked next to the probe; on
  // another (/dev/shm, a tmpfs), where links are impossible: the weights are copied.
  const shm = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/kfc-runner-test-') : null;
  try {
    for (const [tmpRoot, how] of [[null, /data files hard-linked next to it/],
      ...(shm ? [[shm, /data files cannot be hard-linked there; the weights are copied/]] : [])]) {
      const out = path.join(dir, 'out.onnx');
      fs.rmSync(out, { force: true });
      const args = [model, '-r', '2', '--calibration-data', file, '-o', out, '--report',
        path.join(dir, 'out.json'), '--external-data', '-v'];
      const r = tmpRoot ? kfc(env, args, { TMPDIR: tmpRoot }) : kfc(env, args);
      assert.equal(r.status, 0, describe(args, r));
      assert.match(r.stderr, how);
      const rep = JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8'));
      assert.deepEqual(rep.layers.map((l) => [l.node_name, l.calibrated]), [['fc1', true], ['fc2', true]]);
      assert.equal(rep.output_errors.length, 1);
      assert.ok(rep.output_errors[0].relative_error > 0 && rep.output_errors[0].relative_error < 1,
        JSON.stringify(rep.output_errors));
      assert.ok(fs.existsSync(`${out}.data`));
      if (tmpRoot) assert.deepEqual(fs.readdirSync(tmpRoot), [], 'temporary files left in /dev/shm');
    }
  } finally {
    if (shm) fs.rmSync(shm, { recursive: true, force: true });
  }
});

test('the Python runner shown in docs/runner.md speaks the protocol (numpy stand-in for onnxruntime)', (t) => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'python');
  const doc = fs.readFileSync(path.join(h.sourceDir(), 'docs', 'runner.md'), 'utf8');
  const block = /```python\n(#!\/usr\/bin\/env python3[\s\S]*?)```/.exec(doc);
  assert.ok(block, 'no Python runner in docs/runner.md');
  const script = path.join(dir, 'kfc_runner.py');
  fs.writeFileSync(script, block[1]);
  const standin = { PYTHONPATH: path.join(__dirname, 'python_standin') };
  const { file } = fashionLike(dir, 300, 'python rows');
  const runner = ['--runner', `/usr/bin/python3 ${script}`];
  const base = [FASHION, '--ratio', '0.25', '--shape', 'lowrank', '--dry-run', '--json', '-q',
    '--calibration-data', file];
  const py = kfc(env, [...base, ...runner], standin);
  assert.equal(py.status, 0, describe(base, py));
  const node = kfc(env, base);
  assert.equal(node.status, 0, node.stderr);
  const a = JSON.parse(py.stdout);
  const b = JSON.parse(node.stdout);
  assert.equal(a.runner, 'onnxruntime 0.0-numpy-standin (python)');
  assert.equal(a.calibration_rows, 300);
  // numpy and ONNX Runtime round differently: the same figures to a few digits.
  const [ea, eb] = [a.output_errors[0].relative_error, b.output_errors[0].relative_error];
  t.diagnostic(`output error: Python runner ${ea}, Node.js runner ${eb}`);
  assert.ok(Math.abs(ea - eb) <= 1e-4 * eb, `${ea} vs ${eb}`);
  assert.deepEqual(a.layers.map((l) => l.rank), b.layers.map((l) => l.rank));

  const f64 = path.join(dir, 'f64.npy');
  writeRawNpy(f64, '<f8', [8, 784], Buffer.alloc(8 * 784 * 8));
  expectFailure(env, [FASHION, '-r', '2', '--dry-run', '--calibration-data', f64, ...runner],
    /runner: input 'input': '.*f64\.npy' holds float64; the model input is float32/, null, standin);
  // Without the stand-in (where Python has no onnxruntime, as here): the runner's last words.
  if (h.run('/usr/bin/python3', ['-c', 'import onnxruntime']).status !== 0) {
    expectFailure(env, [FASHION, '-r', '2', '--dry-run', '--calibration-data', file, ...runner],
      /exited with code 1 before its greeting: ModuleNotFoundError: No module named 'onnxruntime'/, null);
  }
});

test('int64 inputs (token ids) and models with a fixed batch size', (t) => {
  const env = h.requireHarnessEnv('runner');
  const dir = freshDir(env, 'ids');
  const model = path.join(dir, 'embed.onnx');
  // ids [n, 4] -> Gather(embedding [100, 64]) -> [n, 4, 64] -> MatMul [64, 96]: the layer's input
  // is a 3-D activation computed from integer inputs.
  writeModelWithPython(`
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
rng = np.random.default_rng(5)
emb = numpy_helper.from_array(rng.standard_normal((100, 64)).astype(np.float32), 'emb')
w = numpy_helper.from_array(rng.standard_normal((64, 96)).astype(np.float32), 'w')
nodes = [helper.make_node('Gather', ['emb', 'ids'], ['e'], name='embed'),
         helper.make_node('MatMul', ['e', 'w'], ['y'], name='proj')]
g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('ids', T.INT64, ['n', 4])],
                      [helper.make_tensor_value_info('y', T.FLOAT, ['n', 4, 96])], [emb, w])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])`, model);
  const ids = Buffer.alloc(50 * 4 * 8);
  const rng = h.mulberry32(h.seedFromString('token ids'));
  for (let i = 0; i < 50 * 4; ++i) ids.writeBigInt64LE(BigInt(Math.floor(rng() * 100)), i * 8);
  const idsFile = path.join(dir, 'ids.npy');
  writeRawNpy(idsFile, '<i8', [50, 4], ids);
  const r = kfc(env, [model, '-r', '4', '--calibration-data', idsFile, '--dry-run', '--json', '-q',
    '--calibration-batch', '16']);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.layers[0].calibrated, true);
  assert.equal(rep.calibration_rows, 50);
  assert.equal(rep.output_errors[0].elements, 50 * 4 * 96);
  t.diagnostic(`embedding -> proj at -r 4: output error ${rep.output_errors[0].relative_error}`);

  // gemm_bias_2d takes exactly 4 rows per run: 12 rows run as 3 batches; 10 rows cannot.
  const fixed = h.testdataPath('synthetic', 'gemm_bias_2d.onnx');
  const x12 = path.join(dir, 'x12.npy');
  writeNpy(x12, [12, 80], Float32Array.from({ length: 12 * 80 }, () => rng()));
  const ok = kfc(env, [fixed, '-r', '2', '--min-params', '0', '--calibration-data', x12, '--dry-run', '--json', '-q']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).calibration_rows, 12);
  const x10 = path.join(dir, 'x10.npy');
  writeNpy(x10, [10, 80], new Float32Array(10 * 80));
  expectFailure(env, [fixed, '-r', '2', '--min-params', '0', '--calibration-data', x10, '--dry-run'],
    /runner: input 'x': the model takes batches of exactly 4 rows; '.*x10\.npy' has 10/, null);
});
