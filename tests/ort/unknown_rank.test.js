// SPDX-License-Identifier: Apache-2.0
'use strict';
// Layers whose input rank shape inference cannot work out take the Reshape targets at run time
// (Shape -> Slice -> Concat, or Shape<end> from opset 15). ONNX Runtime runs the compressed model
// and its dense reconstruction (kfc_make_reference) on inputs of several batch and sequence sizes,
// and of several ranks: the same model must serve all of them.
//
// The models: x = Reshape(xs, xshape) with xshape a graph input (so x's rank is unknown), then
// y = MatMul(x, W) (X W) and, on v = Reshape(vs, vshape), u = MatMul(V, v) (W X); at opset 18 and
// later a ReduceMean-18 (axes as an input) centres x first, at 20 and later a Gelu-20 follows it.
// At --shape lowrank the same models get two plain MatMuls per layer and nothing else.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');

const TOLERANCE = 1e-5;
const OPSETS = [9, 11, 13, 17, 18, 20, 21];
const IR_OF = { 9: 4, 11: 6, 13: 7, 17: 8, 18: 8, 20: 9, 21: 10 };

const SCRIPT = `
import sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
opset = int(sys.argv[2])
rng = np.random.default_rng(opset)
W = (rng.standard_normal((64, 96)) / 8).astype(np.float32)
V = (rng.standard_normal((48, 64)) / 8).astype(np.float32)
inits = [numpy_helper.from_array(W, 'W'), numpy_helper.from_array(V, 'V'),
         numpy_helper.from_array(np.array([-1], np.int64), 'flat')]
nodes = [helper.make_node('Reshape', ['xs', 'xshape'], ['x0'])]
x = 'x0'
if opset >= 18:
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), 'axes'))
    nodes += [helper.make_node('ReduceMean', ['x0', 'axes'], ['m'], keepdims=1),
              helper.make_node('Sub', ['x0', 'm'], ['x1'])]
    x = 'x1'
if opset >= 20:
    nodes.append(helper.make_node('Gelu', [x], ['x2']))
    x = 'x2'
nodes += [helper.make_node('MatMul', [x, 'W'], ['t'], name='proj'),
          helper.make_node('Reshape', ['t', 'flat'], ['y']),
          helper.make_node('Reshape', ['vs', 'vshape'], ['v']),
          helper.make_node('MatMul', ['V', 'v'], ['w'], name='left'),
          helper.make_node('Reshape', ['w', 'flat'], ['u'])]
g = helper.make_graph(nodes, 'unknown_rank',
    [helper.make_tensor_value_info('xs', TensorProto.FLOAT, ['N']),
     helper.make_tensor_value_info('xshape', TensorProto.INT64, ['R']),
     helper.make_tensor_value_info('vs', TensorProto.FLOAT, ['M']),
     helper.make_tensor_value_info('vshape', TensorProto.INT64, ['Q'])],
    [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['P']),
     helper.make_tensor_value_info('u', TensorProto.FLOAT, ['S'])],
    initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
m.ir_version = int(sys.argv[3])
onnx.save(m, sys.argv[1])`;

// x shapes (last dim K = 64) and v shapes (second-to-last K = 64): ranks 1-4, batch and sequence
// sizes 1-5.
const X_SHAPES = [[64], [1, 64], [3, 64], [2, 5, 64], [1, 1, 64], [2, 3, 4, 64]];
const V_SHAPES = [[64, 1], [64, 7], [2, 64, 3], [1, 64, 5], [2, 2, 64, 4], [3, 64, 1]];

// Seeded uniform values in [-1, 1), flat.
function randomFlat(rng, dims) {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; ++i) data[i] = 2 * rng() - 1;
  return new h.ort.Tensor('float32', data, [n]);
}

function feedsFor(i, seed) {
  const rng = h.mulberry32(seed);
  const xdims = X_SHAPES[i], vdims = V_SHAPES[i];
  const xs = randomFlat(rng, xdims);
  const vs = randomFlat(rng, vdims);
  return {
    xs,
    xshape: new h.ort.Tensor('int64', BigInt64Array.from(xdims.map(BigInt)), [xdims.length]),
    vs,
    vshape: new h.ort.Tensor('int64', BigInt64Array.from(vdims.map(BigInt)), [vdims.length]),
  };
}

for (const opset of OPSETS) {
  test(`opset ${opset}: MatMuls on inputs of unknown rank match their dense reconstruction`,
    async () => {
      const env = h.requireHarnessEnv('unknown_rank');
      const model = path.join(env.workDir, `unknown_rank_${opset}.onnx`);
      const py = h.run('/usr/bin/python3', ['-c', SCRIPT, model, String(opset),
        String(IR_OF[opset])]);
      assert.equal(py.status, 0, py.stderr);

      // The tool compresses both layers and says the rank was unknown by emitting Shape nodes.
      const out = path.join(env.workDir, `unknown_rank_${opset}.kfc.onnx`);
      fs.rmSync(out, { force: true });
      const r = h.run(env.compress, [model, '-r', '2', '--min-params', '0', '--node-cost', '0',
        '-o', out, '--json']);
      assert.equal(r.status, 0, h.describeRun(env.compress, [model], r));
      assert.equal(JSON.parse(r.stdout).totals.layers_compressed, 2, r.stdout);

      const compressedPath = path.join(env.workDir, `unknown_rank_${opset}.c.onnx`);
      const densePath = path.join(env.workDir, `unknown_rank_${opset}.d.onnx`);
      assert.equal(h.makeReference(env, model, 2, compressedPath, densePath), 2);
      const original = await h.createSession(model);
      const tool = await h.createSession(out);
      const compressed = await h.createSession(compressedPath);
      const dense = await h.createSession(densePath);
      for (let i = 0; i < X_SHAPES.length; ++i) {
        const feeds = feedsFor(i, h.seedFromString(`unknown rank ${opset} ${i}`));
        const label = `opset ${opset}, x ${JSON.stringify(X_SHAPES[i])}, v ` +
          JSON.stringify(V_SHAPES[i]);
        const c = await h.runSession(compressed, feeds, `compressed (${label})`);
        const d = await h.runSession(dense, feeds, `dense (${label})`);
        const o = await h.runSession(original, feeds, `original (${label})`);
        const t = await h.runSession(tool, feeds, `kfc-compress output (${label})`);
        for (const name of ['y', 'u']) {
          assert.deepEqual(c[name].dims, o[name].dims, `${label}: ${name} dims`);
          assert.deepEqual(t[name].dims, o[name].dims, `${label}: ${name} dims`);
          const err = h.relativeError(c[name].data, d[name].data);
          assert.ok(err <= TOLERANCE, `${label}: ${name} differs from the dense reconstruction ` +
            `by ${err}`);
          // The tool's own output (rank 2 of a random weight) is an approximation of the original:
          // finite and of the same size.
          assert.ok(h.relativeError(t[name].data, o[name].data) < 1.5, `${label}: ${name}`);
        }
      }
    });
}

// Low-rank shapes emit two plain products (MatMul broadcasts over any leading dims): no run-time
// Shape/Concat, no Reshape of their own, and the same model serves every rank, 1-D included.
const OPS_SCRIPT = `
import sys, onnx
print(' '.join(n.op_type for n in onnx.load(sys.argv[1]).graph.node))`;

for (const opset of [9, 13, 21]) {
  test(`opset ${opset}: low-rank layers on inputs of unknown rank are two products`, async () => {
    const env = h.requireHarnessEnv('unknown_rank');
    const model = path.join(env.workDir, `unknown_rank_lr_${opset}.onnx`);
    const py = h.run('/usr/bin/python3', ['-c', SCRIPT, model, String(opset),
      String(IR_OF[opset])]);
    assert.equal(py.status, 0, py.stderr);
    const mode = ['--rank', '3', '--shape', 'lowrank'];
    const out = path.join(env.workDir, `unknown_rank_lr_${opset}.kfc.onnx`);
    fs.rmSync(out, { force: true });
    const r = h.run(env.compress, [model, ...mode, '--min-params', '0', '--node-cost', '0', '-o',
      out, '--json']);
    assert.equal(r.status, 0, h.describeRun(env.compress, [model], r));
    assert.equal(JSON.parse(r.stdout).totals.layers_compressed, 2, r.stdout);
    const ops = h.run('/usr/bin/python3', ['-c', OPS_SCRIPT, out]);
    assert.equal(ops.status, 0, ops.stderr);
    const own = (s) => s.trim().split(' ').filter((op) => op !== 'MatMul');
    const before = h.run('/usr/bin/python3', ['-c', OPS_SCRIPT, model]).stdout;
    assert.deepEqual(own(ops.stdout), own(before), `only the model's own ops besides MatMul`);
    assert.equal(ops.stdout.trim().split(' ').filter((op) => op === 'MatMul').length, 4,
      ops.stdout);

    const compressedPath = path.join(env.workDir, `unknown_rank_lr_${opset}.c.onnx`);
    const densePath = path.join(env.workDir, `unknown_rank_lr_${opset}.d.onnx`);
    assert.equal(h.makeReference(env, model, mode, compressedPath, densePath), 2);
    const original = await h.createSession(model);
    const compressed = await h.createSession(compressedPath);
    const dense = await h.createSession(densePath);
    for (let i = 0; i < X_SHAPES.length; ++i) {
      const feeds = feedsFor(i, h.seedFromString(`unknown rank lr ${opset} ${i}`));
      const label = `opset ${opset}, x ${JSON.stringify(X_SHAPES[i])}, v ` +
        JSON.stringify(V_SHAPES[i]);
      const c = await h.runSession(compressed, feeds, `compressed (${label})`);
      const d = await h.runSession(dense, feeds, `dense (${label})`);
      const o = await h.runSession(original, feeds, `original (${label})`);
      for (const name of ['y', 'u']) {
        assert.deepEqual(c[name].dims, o[name].dims, `${label}: ${name} dims`);
        const err = h.relativeError(c[name].data, d[name].data);
        assert.ok(err <= TOLERANCE, `${label}: ${name} differs from the dense reconstruction ` +
          `by ${err}`);
      }
    }
  });
}
