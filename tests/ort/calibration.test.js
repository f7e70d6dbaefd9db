// SPDX-License-Identifier: Apache-2.0
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

// Runs a Python (onnx 1.12) script that writes a model to its first argument, `model`.
function writeModelWithPython(script, model) {
  const py = h.run('/usr/bin/python3', ['-c', script, model]);
  assert.equal(py.status, 0, py.stderr);
}

// env.workDir/name, emptied.
function freshDir(env, name) {
  const dir = path.join(env.workDir, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// Compresses `model` at -r 2 with the calibration in `acts` (kfc_make_reference writes the
// compressed model and its dense reconstruction plus the bias correction), runs both on `feeds`
// and asserts they agree to 1e-5; returns the number of layers compressed.
async function expectCalibratedReference(t, env, model, acts, feeds, output, dir, label) {
  const base = path.join(dir, 'r2');
  const layers = h.makeReference(env, model, ['--rank', '2', '--calibration', acts],
    `${base}.c.onnx`, `${base}.d.onnx`);
  const cs = await h.createSession(`${base}.c.onnx`);
  const ds = await h.createSession(`${base}.d.onnx`);
  const yc = (await h.runSession(cs, feeds, 'compressed'))[output];
  const yd = (await h.runSession(ds, feeds, 'dense'))[output];
  const err = h.relativeError(yc.data, yd.data);
  t.diagnostic(`${label} -r 2 --calibration: |C-D|/|D| = ${err.toExponential(2)}`);
  assert.ok(err <= 1e-5, `${label}: ${err}`);
  return layers;
}

function setUp(env) {
  const dir = freshDir(env, 'digits');
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
    const dir = freshDir(env, `columns_${c.name}`);
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

    assert.equal(await expectCalibratedReference(t, env, model, acts, feeds, c.output, dir, c.name),
      c.expectedLayers, c.name);

    const rep = h.run(env.compress, [model, '-r', '2', '--node-cost', '0', '--calibration', acts,
      '--dry-run', '--json']);
    assert.equal(rep.status, 0, rep.stderr);
    const layer = JSON.parse(rep.stdout).layers.find((l) => l.compressed);
    assert.equal(layer.calibrated, true, c.name);
    assert.ok(layer.data_relative_error <= layer.weight_only_data_relative_error + 1e-12, c.name);
  }
});

// K above 8192: Kronecker-factored statistics for the balanced shape's split of K; the layer is
// calibrated, says so, and the compressed model computes its dense reconstruction plus the bias
// correction.
test('a layer with K = 16384 is calibrated with Kronecker-factored statistics', async (t) => {
  const env = h.requireHarnessEnv('calibration');
  const dir = freshDir(env, 'wide_k');
  const model = path.join(dir, 'wide.onnx');
  const script = `
import sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(41)
w = (rng.standard_normal((16384, 8)) / 128).astype(np.float32)
g = helper.make_graph([helper.make_node('MatMul', ['x', 'W'], ['y'], name='wide')], 'wide',
    [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['B', 16384])],
    [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['B', 8])],
    initializer=[numpy_helper.from_array(w, 'W')])
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]); m.ir_version = 8
onnx.save(m, sys.argv[1])`;
  writeModelWithPython(script, model);
  const probe = path.join(dir, 'probe.onnx');
  const r = h.run(env.compress, [model, '--calibration-probe', probe]);
  assert.equal(r.status, 0, r.stderr);
  const feeds = h.randomFeeds(h.seedFromString('wide k'), { x: [48, 16384] });
  writeNpy(path.join(dir, 'x.npy'), [48, 16384], feeds.x.data);
  const acts = path.join(dir, 'acts');
  await runProbe({ probe, inputs: { x: path.join(dir, 'x.npy') }, out: acts, batch: 16 });

  const rep = h.run(env.compress, [model, '-r', '2', '--node-cost', '0', '--calibration', acts,
    '--dry-run', '--json']);
  assert.equal(rep.status, 0, rep.stderr);
  const layer = JSON.parse(rep.stdout).layers[0];
  assert.equal(layer.compressed, true);
  assert.equal(layer.calibrated, true);
  assert.match(layer.calibration_note, /K = 16384 is above 8192 .*Kronecker-factored statistics/);
  assert.ok(layer.data_relative_error <= layer.weight_only_data_relative_error + 1e-12);

  const few = { x: new h.ort.Tensor('float32', feeds.x.data.subarray(0, 4 * 16384), [4, 16384]) };
  assert.equal(await expectCalibratedReference(t, env, model, acts, few, 'y', dir, 'K = 16384'), 1);
});

// Layers in If branches, a Loop body and a Scan body: values made inside the subgraph leave it as
// an extra output (a scan output for Loop and Scan; for If, the other branch outputs an empty
// tensor), values of the main graph are exposed there. The probe runs in ONNX Runtime, the
// calibrated models compute their dense reconstruction plus the correction, and a branch that
// never ran leaves its layer weight-only with a note.
test('layers in If, Loop and Scan bodies are probed and calibrated', async (t) => {
  const env = h.requireHarnessEnv('calibration');
  const cases = h.loadCases().filter((c) => ['if_gemm_branches', 'if_gemm_branches_else',
    'loop_matmul_outer', 'scan_matmul'].includes(c.name));
  assert.equal(cases.length, 4);
  for (const c of cases) {
    const dir = freshDir(env, `subgraph_${c.name}`);
    const probe = path.join(dir, 'probe.onnx');
    const r = h.run(env.compress, [c.model, '--calibration-probe', probe]);
    assert.equal(r.status, 0, r.stderr);
    const sidecar = path.join(dir, 'probe.calib.json');
    const names = JSON.parse(fs.readFileSync(sidecar, 'utf8')).tensors.map((x) => x.name);
    assert.equal(names.length, c.expectedLayers, c.name);

    // The probe in ONNX Runtime: its own output unchanged, every exposed tensor saved.
    const feeds = h.randomFeeds(h.seedFromString(`subgraph ${c.name}`), c.inputs, c.inputTypes,
      c.inputValues);
    const original = await h.createSession(c.model);
    const probed = await h.createSession(probe);
    const y0 = (await h.runSession(original, feeds, 'original'))[c.output];
    const outs = await h.runSession(probed, feeds, 'probe');
    assert.deepEqual(Array.from(outs[c.output].data), Array.from(y0.data), c.name);
    const acts = path.join(dir, 'acts');
    fs.mkdirSync(acts);
    for (const name of names) writeNpy(path.join(acts, `${name}.npy`), outs[name].dims, outs[name].data);
    fs.copyFileSync(sidecar, path.join(acts, 'kfc_calibration.json'));

    assert.equal(await expectCalibratedReference(t, env, c.model, acts, feeds, c.output, dir,
      c.name), c.expectedLayers, c.name);

    const rep = h.run(env.compress, [c.model, '-r', '2', '--min-params', '0', '--node-cost', '0',
      '--calibration',
      acts, '--dry-run', '--json']);
    assert.equal(rep.status, 0, rep.stderr);
    for (const l of JSON.parse(rep.stdout).layers) {
      // fc_else's branch runs only when cond is false; fc reads x from the main graph.
      const ran = !(c.name === 'if_gemm_branches' && l.node_name === 'fc_else');
      assert.equal(l.calibrated, ran, `${c.name} ${l.node_name}: ${l.calibration_note}`);
      if (!ran) assert.match(l.calibration_note, /hold no rows/);
    }
  }
});

// A layer two graphs deep (a MatMul in an If branch inside a Loop body): its input leaves the If
// (the other branch gives an empty tensor) and then the Loop (a scan output), so the probe's
// output stacks iterations. With the branch taken the layer is calibrated; with it never taken,
// weight-only with a note.
test('a layer nested two subgraphs deep is probed through both', async (t) => {
  const env = h.requireHarnessEnv('calibration');
  const dir = freshDir(env, 'nested');
  const model = path.join(dir, 'nested.onnx');
  const script = `
import sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(43)
w = (rng.standard_normal((32, 32)) / 6).astype(np.float32)
then_g = helper.make_graph(
    [helper.make_node('Relu', ['h'], ['r'], name='relu'),
     helper.make_node('MatMul', ['r', 'W'], ['m'], name='inner_fc')], 'then_branch', [],
    [helper.make_tensor_value_info('m', TensorProto.FLOAT, ['B', 32])])
else_g = helper.make_graph([helper.make_node('Identity', ['h'], ['e'], name='keep')], 'else_branch',
    [], [helper.make_tensor_value_info('e', TensorProto.FLOAT, ['B', 32])])
body = helper.make_graph(
    [helper.make_node('Identity', ['cond_in'], ['cond_out'], name='keep_going'),
     helper.make_node('If', ['flag'], ['h_next'], name='branch', then_branch=then_g,
                      else_branch=else_g)], 'body',
    [helper.make_tensor_value_info('iter', TensorProto.INT64, []),
     helper.make_tensor_value_info('cond_in', TensorProto.BOOL, []),
     helper.make_tensor_value_info('h', TensorProto.FLOAT, ['B', 32])],
    [helper.make_tensor_value_info('cond_out', TensorProto.BOOL, []),
     helper.make_tensor_value_info('h_next', TensorProto.FLOAT, ['B', 32])])
g = helper.make_graph(
    [helper.make_node('Loop', ['trip', 'go', 'x'], ['y'], name='loop', body=body)], 'nested',
    [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['B', 32]),
     helper.make_tensor_value_info('flag', TensorProto.BOOL, [])],
    [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['B', 32])],
    initializer=[numpy_helper.from_array(w, 'W'), numpy_helper.from_array(np.array(3, np.int64), 'trip'),
                 numpy_helper.from_array(np.array(True), 'go')])
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]); m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, sys.argv[1])
`;
  writeModelWithPython(script, model);
  const probe = path.join(dir, 'probe.onnx');
  const r = h.run(env.compress, [model, '--calibration-probe', probe]);
  assert.equal(r.status, 0, r.stderr);
  const probed = await h.createSession(probe);
  const original = await h.createSession(model);
  for (const taken of [true, false]) {
    const feeds = h.randomFeeds(h.seedFromString(`nested ${taken}`), { x: [40, 32] });
    feeds.flag = new h.ort.Tensor('bool', [taken], []);
    const outs = await h.runSession(probed, feeds, 'probe');
    assert.deepEqual(outs.kfc_calib_0.dims, [3, taken ? 40 : 0, 32]);
    const y0 = (await h.runSession(original, feeds, 'original')).y;
    assert.deepEqual(Array.from(outs.y.data), Array.from(y0.data));
    const acts = path.join(dir, `acts_${taken}`);
    fs.mkdirSync(acts);
    writeNpy(path.join(acts, 'kfc_calib_0.npy'), outs.kfc_calib_0.dims, outs.kfc_calib_0.data);
    fs.copyFileSync(path.join(dir, 'probe.calib.json'), path.join(acts, 'kfc_calibration.json'));
    const rep = h.run(env.compress, [model, '-r', '2', '--min-params', '0', '--node-cost', '0',
      '--calibration', acts,
      '--dry-run', '--json']);
    assert.equal(rep.status, 0, rep.stderr);
    const layer = JSON.parse(rep.stdout).layers[0];
    assert.equal(layer.calibrated, taken, layer.calibration_note);
    if (taken) {
      const sub = path.join(dir, 'ref');
      fs.mkdirSync(sub, { recursive: true });
      assert.equal(await expectCalibratedReference(t, env, model, acts, feeds, 'y', sub,
        'Loop > If > MatMul'), 1);
    } else {
      assert.match(layer.calibration_note, /hold no rows/);
    }
  }
});
