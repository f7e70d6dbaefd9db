'use strict';
// Calibration in ONNX Runtime: the probe model runs and its extra outputs equal the layers'
// inputs (checked against numpy), run_probe.js writes what --calibration reads, calibrated outputs
// compute their dense reconstruction plus the bias correction, the data-weighted error is never
// worse than weight-only, and a layer without data falls back to weight-only with a note.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { readNpy, writeNpy } = require('./npy');
const { runProbe } = require('./run_probe');

const ROWS = 300;

function setUp(env) {
  const dir = path.join(env.workDir, 'digits');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const rng = h.mulberry32(h.seedFromString('calibration inputs'));
  const x = new Float32Array(ROWS * 64);
  for (let i = 0; i < x.length; ++i) x[i] = Math.floor(rng() * 17); // digits pixels are 0..16
  writeNpy(path.join(dir, 'input.npy'), [ROWS, 64], x);
  const probe = path.join(dir, 'probe.onnx');
  const args = [h.testdataPath('digits_mlp.onnx'), '--calibration-probe', probe];
  const r = h.run(env.compress, args);
  assert.equal(r.status, 0, h.describeRun(env.compress, args, r));
  assert.match(r.stdout, /3 exposed activations for 3 layers/);
  return { dir, probe, x };
}

test('probe outputs equal the layers inputs; calibrated models compute what they claim', async (t) => {
  const env = h.requireHarnessEnv('calibration');
  const { dir, probe, x } = setUp(env);
  const acts = path.join(dir, 'acts');
  const summary = await runProbe({ probe, inputs: { input: path.join(dir, 'input.npy') }, out: acts, batch: 64 });
  assert.deepEqual(summary, { rows: ROWS, batches: 5, tensors: 3 });
  assert.ok(fs.existsSync(path.join(acts, 'kfc_calibration.json')));

  // kfc_calib_0 is the model input itself; kfc_calib_1 is relu(x W1^T + b1), computed by numpy
  // from the model's initializers (an independent judge).
  const first = readNpy(path.join(acts, 'kfc_calib_0.b00000.npy'));
  assert.deepEqual(first.dims, [64, 64]);
  assert.deepEqual(Array.from(first.data), Array.from(x.subarray(0, 64 * 64)));
  const script = `
import sys, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1]); w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
x = np.load(sys.argv[2])[:64]
np.save(sys.argv[3], np.maximum(x @ w['fc1.weight'].T + w['fc1.bias'], 0).astype(np.float32))`;
  const expected = path.join(dir, 'expected.npy');
  const py = h.run('/usr/bin/python3', ['-c', script, h.testdataPath('digits_mlp.onnx'),
    path.join(dir, 'input.npy'), expected]);
  assert.equal(py.status, 0, py.stderr);
  const got = readNpy(path.join(acts, 'kfc_calib_1.b00000.npy'));
  const want = readNpy(expected);
  assert.deepEqual(got.dims, want.dims);
  assert.ok(h.relativeError(got.data, want.data) < 1e-5, 'kfc_calib_1 differs from relu(fc1)');

  // The probe still computes the model's own output.
  const original = await h.createSession(h.testdataPath('digits_mlp.onnx'));
  const probed = await h.createSession(probe);
  const feeds = { input: new h.ort.Tensor('float32', x.subarray(0, 64 * 64), [64, 64]) };
  const y0 = (await h.runSession(original, feeds, 'original'))[original.outputNames[0]];
  const y1 = (await h.runSession(probed, feeds, 'probe'))[original.outputNames[0]];
  assert.deepEqual(Array.from(y1.data), Array.from(y0.data));

  // Compressed with calibration vs its dense reconstruction plus the bias correction.
  for (const budget of [['--rank', '4'], ['--ratio', '0.3', '--shape', 'auto'],
    ['--ratio', '0.3', '--shape', 'balanced']]) {
    const base = path.join(dir, budget.join('_').replace(/-/g, ''));
    const layers = h.makeReference(env, h.testdataPath('digits_mlp.onnx'),
      [...budget, '--calibration', acts], `${base}.c.onnx`, `${base}.d.onnx`);
    assert.ok(layers >= 2);
    const c = await h.createSession(`${base}.c.onnx`);
    const d = await h.createSession(`${base}.d.onnx`);
    const yc = (await h.runSession(c, feeds, 'compressed'))[c.outputNames[0]];
    const yd = (await h.runSession(d, feeds, 'dense'))[d.outputNames[0]];
    const err = h.relativeError(yc.data, yd.data);
    t.diagnostic(`${budget.join(' ')} --calibration: |C-D|/|D| = ${err.toExponential(2)}`);
    assert.ok(err <= 1e-5, `${budget.join(' ')}: ${err}`);
  }

  // The report: calibrated layers never do worse on the calibration data than weight-only.
  const out = path.join(dir, 'cal.onnx');
  const args = [h.testdataPath('digits_mlp.onnx'), '--ratio', '0.3', '--calibration', acts,
    '--min-params', '0', '-o', out, '--json', '-q'];
  const r = h.run(env.compress, args);
  assert.equal(r.status, 0, h.describeRun(env.compress, args, r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.calibration, acts);
  for (const l of report.layers.filter((x) => x.compressed)) {
    assert.equal(l.calibrated, true, l.node_name);
    assert.ok(l.data_relative_error <= l.weight_only_data_relative_error + 1e-12, l.node_name);
  }

  // Without data for fc2's input, fc2 falls back to weight-only, with a note and a warning.
  const partial = path.join(dir, 'partial');
  fs.mkdirSync(partial, { recursive: true });
  for (const f of fs.readdirSync(acts).filter((f) => !f.startsWith('kfc_calib_1.'))) {
    fs.copyFileSync(path.join(acts, f), path.join(partial, f));
  }
  const r2 = h.run(env.compress, [h.testdataPath('digits_mlp.onnx'), '-r', '4', '--calibration',
    partial, '--dry-run', '--json']);
  assert.equal(r2.status, 0, r2.stderr);
  const fc2 = JSON.parse(r2.stdout).layers.find((l) => l.node_name === 'fc2');
  assert.equal(fc2.calibrated, false);
  assert.match(fc2.calibration_note, /weight-only: no kfc_calib_1\*\.npy files/);
  assert.match(r2.stderr, /fc2.*falls back to weight-only/);
});

// Gemm with transA=1 and MatMul(W, X) read features along the activation's second-to-last axis:
// each column is a sample. Their probes expose the activation, --calibration reads it by columns,
// and the compressed model computes its dense reconstruction plus the bias correction.
test('column-sample layers (Gemm transA=1, W·X) are calibrated and compute what they claim', async (t) => {
  const env = h.requireHarnessEnv('calibration');
  const cases = h.loadCases().filter((c) => ['gemm_transa', 'matmul_wx_2d', 'matmul_wx_3d_static',
    'matmul_wx_4d'].includes(c.name));
  assert.equal(cases.length, 4);
  for (const c of cases) {
    const dir = path.join(env.workDir, `columns_${c.name}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const { model } = c;
    const probe = path.join(dir, 'probe.onnx');
    const r = h.run(env.compress, [model, '--calibration-probe', probe]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /1 exposed activations for 1 layers/, c.name);
    const sidecar = JSON.parse(fs.readFileSync(probe.replace(/\.onnx$/, '.calib.json'), 'utf8'));
    assert.equal(sidecar.tensors[0].columns, true, c.name);

    // One batch: the first axis of a 2-D activation here is K, which must not be split.
    const [name, dims] = Object.entries(c.inputs)[0];
    const feeds = h.randomFeeds(h.seedFromString(`columns ${c.name}`), c.inputs);
    const input = path.join(dir, 'x.npy');
    writeNpy(input, dims, feeds[name].data);
    const acts = path.join(dir, 'acts');
    await runProbe({ probe, inputs: { [name]: input }, out: acts, batch: 1 << 20 });

    const base = path.join(dir, 'r2');
    const layers = h.makeReference(env, model, ['--rank', '2', '--calibration', acts],
      `${base}.c.onnx`, `${base}.d.onnx`);
    assert.equal(layers, c.expectedLayers, c.name);
    const cs = await h.createSession(`${base}.c.onnx`);
    const ds = await h.createSession(`${base}.d.onnx`);
    const yc = (await h.runSession(cs, feeds, 'compressed'))[c.output];
    const yd = (await h.runSession(ds, feeds, 'dense'))[c.output];
    const err = h.relativeError(yc.data, yd.data);
    t.diagnostic(`${c.name} -r 2 --calibration: |C-D|/|D| = ${err.toExponential(2)}`);
    assert.ok(err <= 1e-5, `${c.name}: ${err}`);

    const rep = h.run(env.compress, [model, '-r', '2', '--calibration', acts, '--dry-run', '--json']);
    assert.equal(rep.status, 0, rep.stderr);
    const layer = JSON.parse(rep.stdout).layers.find((l) => l.compressed);
    assert.equal(layer.calibrated, true, c.name);
    assert.ok(layer.data_relative_error <= layer.weight_only_data_relative_error + 1e-12, c.name);
  }
});
