// SPDX-License-Identifier: Apache-2.0
'use strict';
// --allocation sensitivity (lib/kfc/pipeline/sensitivity.h, docs/allocation.md): the sensitivity
// the runner measures ranks a layer whose error reaches the output unchanged above one whose error
// a saturating op absorbs, and the allocation then gives the first layer more parameters.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { writeNpy } = require('./npy');

// y = x Wd + Sigmoid(x Ws + 12): both weights 64 x 64 (seeded Gaussian); the pre-activation of
// the Sigmoid sits far in its flat tail, so errors of x Ws barely reach y.
const SCRIPT = `
import sys
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
rng = np.random.default_rng(7)
wd = rng.standard_normal((64, 64)).astype(np.float32) / 8
ws = rng.standard_normal((64, 64)).astype(np.float32) / 8
nodes = [
    helper.make_node('MatMul', ['x', 'Wd'], ['direct_out'], name='direct'),
    helper.make_node('MatMul', ['x', 'Ws'], ['sat_in'], name='saturated'),
    helper.make_node('Add', ['sat_in', 'shift'], ['sat_pre'], name='shift_add'),
    helper.make_node('Sigmoid', ['sat_pre'], ['sat_out'], name='sigmoid'),
    helper.make_node('Add', ['direct_out', 'sat_out'], ['y'], name='sum'),
]
graph = helper.make_graph(
    nodes, 'sensitivity',
    [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 64])],
    [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 64])],
    [numpy_helper.from_array(wd, 'Wd'), numpy_helper.from_array(ws, 'Ws'),
     numpy_helper.from_array(np.full((64,), 12.0, np.float32), 'shift')])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
`;

test('sensitivity ranks the layer feeding the output above the saturated one', () => {
  const env = h.requireHarnessEnv('allocation');
  const model = path.join(env.workDir, 'two_paths.onnx');
  h.run('/usr/bin/python3', ['-c', SCRIPT, model]);
  const rng = h.mulberry32(h.seedFromString('allocation rows'));
  const x = new Float32Array(256 * 64);
  for (let i = 0; i < x.length; ++i) x[i] = 2 * rng() - 1;
  const data = path.join(env.workDir, 'calib.npy');
  writeNpy(data, [256, 64], x);

  const compressed = path.join(env.workDir, 'two_paths.kfc.onnx');
  const report = path.join(env.workDir, 'two_paths.json');
  const args = [model, '--ratio', '0.5', '--allocation', 'sensitivity', '--calibration-data', data,
    '--min-params', '0', '--node-cost', '0', '--shape', 'low-rank', '-o', compressed, '--report',
    report, '-q'];
  const r = spawnSync(env.compress, args, { encoding: 'utf8', timeout: 300000,
    env: { ...process.env, KFC_RUNNER: '' } });
  assert.equal(r.status, 0, `kfc-compress ${args.join(' ')}\n${r.stderr}`);
  const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
  const layer = (name) => rep.layers.find((l) => l.node_name === name);
  const direct = layer('direct');
  const saturated = layer('saturated');
  assert.ok(direct && saturated, 'both layers reported');
  assert.equal(typeof direct.output_sensitivity, 'number', JSON.stringify(direct));
  assert.equal(typeof saturated.output_sensitivity, 'number', JSON.stringify(saturated));
  assert.ok(direct.output_sensitivity > 0.05,
    `direct sensitivity ${direct.output_sensitivity}`);
  assert.ok(direct.output_sensitivity > 100 * saturated.output_sensitivity,
    `direct ${direct.output_sensitivity} vs saturated ${saturated.output_sensitivity}`);
  // The budget goes where it protects the output.
  assert.ok(direct.compressed || direct.params_after === direct.params_before);
  // (Rank 31 of 31 against 1: before the allocator went on past an unaffordable dense form, the
  // saturated layer took rank 14 and the direct one 18.)
  assert.ok(direct.params_after > 4 * saturated.params_after,
    `params direct ${direct.params_after}, saturated ${saturated.params_after}`);
  assert.ok(rep.totals.compressible_params_after <= 0.5 * rep.totals.compressible_params_before);

  // Without --allocation sensitivity, no sensitivity is reported.
  const plain = path.join(env.workDir, 'two_paths.plain.json');
  const p = spawnSync(env.compress, [model, '--ratio', '0.5', '--calibration-data', data,
    '--min-params', '0', '--shape', 'low-rank', '--dry-run', '--report', plain, '-q'],
  { encoding: 'utf8', timeout: 300000, env: { ...process.env, KFC_RUNNER: '' } });
  assert.equal(p.status, 0, p.stderr);
  const prep = JSON.parse(fs.readFileSync(plain, 'utf8'));
  for (const l of prep.layers) assert.equal(l.output_sensitivity, undefined);
});
