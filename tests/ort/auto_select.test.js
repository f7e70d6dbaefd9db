// SPDX-License-Identifier: Apache-2.0
'use strict';
// --allocation auto / --calibration-regularization auto (lib/kfc/pipeline/auto_select.h,
// docs/allocation.md#auto), the defaults with --calibration-data and --ratio: the candidates are
// judged by the model's output error on the held-out rows, the lowest wins, and the report lists
// them; explicit values skip the search; too few rows fall back to the documented defaults.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { writeNpy } = require('./npy');

// y = x W1 W2, 64 -> 64 -> 64 (seeded Gaussian weights).
const SCRIPT = `
import sys
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
rng = np.random.default_rng(11)
w1 = rng.standard_normal((64, 64)).astype(np.float32) / 8
w2 = rng.standard_normal((64, 64)).astype(np.float32) / 8
nodes = [helper.make_node('MatMul', ['x', 'W1'], ['h'], name='first'),
         helper.make_node('MatMul', ['h', 'W2'], ['y'], name='second')]
graph = helper.make_graph(
    nodes, 'loud',
    [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 64])],
    [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 64])],
    [numpy_helper.from_array(w1, 'W1'), numpy_helper.from_array(w2, 'W2')])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
`;

// Rows of 64 features in a 16-dimensional subspace, 4 of them 100x louder than the rest (as in
// PP-OCRv4's activations): lambda 10 (times the mean variance, which the loud channels set)
// swamps the quiet directions, lambda 0.1 whitens them, so the two lambdas differ clearly.
function loudRows(rows, seed) {
  const rng = h.mulberry32(h.seedFromString(seed));
  const basis = Array.from({ length: 16 }, () => Array.from({ length: 64 }, () => 2 * rng() - 1));
  const x = new Float32Array(rows * 64);
  for (let r = 0; r < rows; ++r) {
    for (let b = 0; b < 16; ++b) {
      const c = 2 * rng() - 1;
      for (let j = 0; j < 64; ++j) x[r * 64 + j] += c * basis[b][j];
    }
    for (let j = 0; j < 4; ++j) x[r * 64 + j] *= 100;
  }
  return x;
}

// The model and `rows` calibration rows in the work folder, named by `tag`; `common`: a dry run
// of --ratio 0.3 on them with --calibration-data.
function setup(tag, rows) {
  const env = h.requireHarnessEnv('auto_select');
  const model = path.join(env.workDir, `${tag}.onnx`);
  h.run('/usr/bin/python3', ['-c', SCRIPT, model]);
  const data = path.join(env.workDir, `${tag}.npy`);
  writeNpy(data, [rows, 64], loudRows(rows, tag));
  const mode = ['--ratio', '0.3', '--min-params', '0', '--node-cost', '0', '--shape', 'low-rank'];
  return { env, model, data, mode, common: [model, ...mode, '--calibration-data', data, '--dry-run'] };
}

function compress(env, args) {
  const r = spawnSync(env.compress, args, { encoding: 'utf8', timeout: 300000,
    env: { ...process.env, KFC_RUNNER: '' } });
  assert.equal(r.status, 0, `kfc-compress ${args.join(' ')}\n${r.stderr}`);
  return r;
}

test('auto picks the candidate with the least held-out output error and reports them all', () => {
  const { env, model, data, mode } = setup('pick', 100);
  const common = [...mode, '--calibration-data', data];

  const out = path.join(env.workDir, 'auto.onnx');
  const report = path.join(env.workDir, 'auto.json');
  const r = compress(env, [model, ...common, '-o', out, '--report', report, '-v']);
  const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
  const a = rep.auto_selection;
  assert.ok(a, 'the report has auto_selection');
  assert.equal(a.searched, true);
  assert.equal(a.rows_fit, 80);
  assert.equal(a.rows_held_out, 20);
  assert.equal(a.searched_allocation, true);
  assert.equal(a.searched_regularization, true);
  const errors = a.candidates.map((c) => c.held_out_error);
  assert.equal(a.candidates.length, 4, JSON.stringify(a.candidates));
  assert.deepEqual(a.candidates.map((c) => `${c.allocation} ${c.regularization}`),
    ['size-weighted 10', 'uniform 10', 'size-weighted 0.1', 'uniform 0.1']);
  for (const e of errors) assert.ok(e > 0, JSON.stringify(a.candidates));
  const best = Math.min(...errors);
  assert.equal(a.chosen, errors.indexOf(best));
  // The two lambdas differ clearly on these rows, and the least-error one is chosen.
  assert.equal(a.candidates[a.chosen].regularization, 0.1, JSON.stringify(a.candidates));
  assert.ok(best < 0.8 * Math.min(errors[0], errors[1]), JSON.stringify(a.candidates));
  assert.equal(a.regularization, 0.1);
  assert.equal(a.allocation, a.candidates[a.chosen].allocation);
  // --verbose logs each candidate; the whole set is verified (100 rows).
  assert.equal((r.stderr.match(/auto: candidate /g) || []).length, 4, r.stderr);
  assert.equal(rep.calibration_rows, 100);
  assert.equal(rep.output_errors.length, 1);
  // The text report lists the candidates.
  const text = compress(env, [model, ...common, '--dry-run']).stdout;
  assert.match(text, /auto: .*lambda 0\.1: the least model output error on 20 held-out rows/);
  assert.match(text, /chosen/);

  // The chosen values given explicitly: no search, and the same factors (the same bytes but for
  // provenance's record of how the values were chosen).
  const explicit = path.join(env.workDir, 'explicit.json');
  compress(env, [model, ...common, '--allocation', a.allocation,
    '--calibration-regularization', '0.1', '--dry-run', '--report', explicit]);
  const erep = JSON.parse(fs.readFileSync(explicit, 'utf8'));
  assert.equal(erep.auto_selection, undefined);
  assert.deepEqual(erep.layers.map((l) => [l.rank, l.data_relative_error]),
    rep.layers.map((l) => [l.rank, l.data_relative_error]));
  assert.deepEqual(erep.output_errors, rep.output_errors);
});

test('explicit values skip the search and only one may be searched', () => {
  const { env, common } = setup('explicit', 50);
  const both = path.join(env.workDir, 'both.json');
  const r = compress(env, [...common, '--allocation', 'size-weighted',
    '--calibration-regularization', '10', '--report', both, '-v']);
  assert.equal(JSON.parse(fs.readFileSync(both, 'utf8')).auto_selection, undefined);
  assert.doesNotMatch(r.stderr, /auto: candidate/);

  const lambdaOnly = path.join(env.workDir, 'lambda_only.json');
  compress(env, [...common, '--allocation', 'uniform', '--report', lambdaOnly]);
  const a = JSON.parse(fs.readFileSync(lambdaOnly, 'utf8')).auto_selection;
  assert.equal(a.searched_allocation, false);
  assert.equal(a.searched_regularization, true);
  assert.deepEqual(a.candidates.map((c) => `${c.allocation} ${c.regularization}`),
    ['uniform 10', 'uniform 0.1']);
});

test('too few rows: no search, the defaults (size-weighted, lambda 10), and the report says so', () => {
  const { env, common } = setup('few', 8);
  const auto = path.join(env.workDir, 'few.json');
  compress(env, [...common, '--report', auto]);
  const rep = JSON.parse(fs.readFileSync(auto, 'utf8'));
  const a = rep.auto_selection;
  assert.equal(a.searched ?? false, false);
  assert.equal((a.candidates || []).length, 0);
  assert.match(a.note, /8 calibration rows, fewer than 10/);
  assert.equal(a.allocation, 'size-weighted');
  assert.equal(a.regularization, 10);
  const defaults = path.join(env.workDir, 'few_defaults.json');
  compress(env, [...common, '--allocation', 'size-weighted', '--calibration-regularization', '10',
    '--report', defaults]);
  const drep = JSON.parse(fs.readFileSync(defaults, 'utf8'));
  assert.deepEqual(drep.layers.map((l) => [l.rank, l.data_relative_error]),
    rep.layers.map((l) => [l.rank, l.data_relative_error]));
});

test('--calibration DIR: no runner to measure outputs, so the defaults, and the report says so', async () => {
  const { runProbe } = require('./run_probe');
  const { env, model, data, mode } = setup('dir', 50);
  const probe = path.join(env.workDir, 'dir.probe.onnx');
  const r = spawnSync(env.compress, [model, '--calibration-probe', probe], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const acts = path.join(env.workDir, 'acts4');
  fs.rmSync(acts, { recursive: true, force: true });
  await runProbe({ probe, inputs: { x: data }, out: acts, batch: 64 });
  const common = [model, ...mode, '--calibration', acts, '--dry-run'];
  const auto = path.join(env.workDir, 'dir_auto.json');
  compress(env, [...common, '--report', auto]);
  const rep = JSON.parse(fs.readFileSync(auto, 'utf8'));
  const a = rep.auto_selection;
  assert.equal(a.searched ?? false, false);
  assert.match(a.note, /--calibration DIR/);
  assert.equal(a.allocation, 'size-weighted');
  assert.equal(a.regularization, 10);
  const explicit = path.join(env.workDir, 'dir_explicit.json');
  compress(env, [...common, '--allocation', 'size-weighted', '--calibration-regularization', '10',
    '--report', explicit]);
  const erep = JSON.parse(fs.readFileSync(explicit, 'utf8'));
  assert.equal(erep.auto_selection, undefined);
  assert.deepEqual(erep.layers, rep.layers);
});
