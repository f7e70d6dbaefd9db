// SPDX-License-Identifier: Apache-2.0
'use strict';
// ONNX Runtime judges what the emitted Kronecker subgraphs compute. For every synthetic case and
// the trained digits MLP, kfc_make_reference writes a compressed model (C) and a dense model (D)
// whose weights are the reconstructions sum_t A_t (x) B_t; both run on the same seeded inputs.
//   rank 2:    C must equal D (the subgraph computes x W_hat, for every layout and attribute)
//   full rank: C must equal the original model (the factorization is exact there)
//   rank 2 at --shape lowrank: C (two products per layer) must equal D

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');

// Relative Frobenius error allowed between two float32 evaluations of the same linear map (a case
// may set its own in cases.json: float16 rounds every intermediate; float64 cases hold to 1e-12,
// since their factors are computed and stored in double).
const TOLERANCE = 1e-5;
const LOW_RANK = 2;
const FULL_RANK = 100000; // clamped by kfc_make_reference to each layer's largest useful rank

const cases = h.loadCases();

// `shape`: a --shape policy for kfc_make_reference (default: its balanced shapes).
async function crossCheck(t, c, rank, mode, shape = null) {
  const env = h.requireHarnessEnv('crosscheck');
  const base = path.join(env.workDir, `${c.name}.r${rank}${shape ? `.${shape}` : ''}`);
  const compressedPath = `${base}.compressed.onnx`;
  const densePath = `${base}.dense.onnx`;

  const budget = shape ? ['--rank', String(rank), '--shape', shape] : rank;
  const layers = h.makeReference(env, c.model, budget, compressedPath, densePath);
  assert.ok(layers >= 1, `${c.name}: kfc_make_reference compressed no layer`);
  assert.equal(layers, c.expectedLayers,
    `${c.name}: kfc_make_reference compressed ${layers} layers, the model has ` +
    `${c.expectedLayers} eligible Gemm/MatMul layers`);

  const original = await h.createSession(c.model);
  const compressed = await h.createSession(compressedPath);
  const dense = await h.createSession(densePath);
  h.assertSameNames(original, compressed, `${c.name} compressed`);
  h.assertSameNames(original, dense, `${c.name} dense`);
  assert.deepEqual(original.outputNames, [c.output], `${c.name}: cases.json output name`);

  const feeds = h.randomFeeds(h.seedFromString(`${c.name}/r${rank}`), c.inputs, c.inputTypes, c.inputValues);
  const tolerance = c.tolerance || TOLERANCE;
  const yOriginal = (await h.runSession(original, feeds, `${c.name} original`))[c.output];
  const yCompressed = (await h.runSession(compressed, feeds, `${c.name} compressed`))[c.output];
  const yDense = (await h.runSession(dense, feeds, `${c.name} dense`))[c.output];
  assert.deepEqual(yCompressed.dims, yOriginal.dims, `${c.name}: compressed output shape`);
  assert.deepEqual(yDense.dims, yOriginal.dims, `${c.name}: dense output shape`);
  assert.ok(h.frobenius(yOriginal.data) > 0, `${c.name}: original output is all zeros`);

  const errVsDense = h.relativeError(yCompressed.data, yDense.data);
  const errVsOriginal = h.relativeError(yCompressed.data, yOriginal.data);
  const denseVsOriginal = h.relativeError(yDense.data, yOriginal.data);
  t.diagnostic(`${c.name} rank ${rank}: ${layers} layer(s); |C-D|/|D| = ${errVsDense.toExponential(2)}, ` +
    `|C-orig|/|orig| = ${errVsOriginal.toExponential(2)}, ` +
    `|D-orig|/|orig| = ${denseVsOriginal.toExponential(2)}`);
  if (mode === 'dense') {
    assert.ok(errVsDense <= tolerance,
      `${c.name} rank ${rank}: compressed vs dense reconstruction relative error ` +
      `${errVsDense.toExponential(3)} > ${tolerance}`);
  } else {
    assert.ok(errVsOriginal <= tolerance,
      `${c.name} full rank: compressed vs original relative error ` +
      `${errVsOriginal.toExponential(3)} > ${tolerance}`);
  }
}

for (const c of cases) {
  test(`${c.name}: rank ${LOW_RANK} subgraph computes the dense reconstruction`, (t) =>
    crossCheck(t, c, LOW_RANK, 'dense'));
}

for (const c of cases) {
  test(`${c.name}: full rank reproduces the original model`, (t) =>
    crossCheck(t, c, FULL_RANK, 'original'));
}

// Low-rank shapes emit two plain products (MatMul, or Gemm with the bias), no Reshape: the same
// check over every layout and attribute (transA, alpha, beta, bias shapes, W X, dtypes, subgraphs).
for (const c of cases) {
  test(`${c.name}: rank ${LOW_RANK} low-rank products compute the dense reconstruction`, (t) =>
    crossCheck(t, c, LOW_RANK, 'dense', 'lowrank'));
}

// Budget modes pick shapes and ranks per layer (and may keep a layer dense); whatever they pick,
// the emitted subgraphs must compute the reconstruction.
const BUDGETS = [
  ['--ratio', '0.3', '--shape', 'auto'],
  ['--ratio', '0.2', '--shape', 'balanced'],
  ['--max-error', '0.4', '--shape', 'lowrank'],
];
const BUDGET_CASES = cases.filter((c) => ['digits_mlp', 'mlp_two_layers', 'matmul_shared_weight']
  .includes(c.name));

for (const c of BUDGET_CASES) {
  for (const budget of BUDGETS) {
    test(`${c.name}: ${budget.join(' ')} subgraphs compute the dense reconstruction`, async (t) => {
      const env = h.requireHarnessEnv('crosscheck');
      const base = path.join(env.workDir, `${c.name}.${budget.join('_').replace(/-/g, '')}`);
      const layers = h.makeReference(env, c.model, budget, `${base}.c.onnx`, `${base}.d.onnx`);
      assert.ok(layers >= 1, `${c.name}: ${budget.join(' ')} compressed no layer`);
      const original = await h.createSession(c.model);
      const compressed = await h.createSession(`${base}.c.onnx`);
      const dense = await h.createSession(`${base}.d.onnx`);
      h.assertSameNames(original, compressed, `${c.name} compressed`);
      const feeds = h.randomFeeds(h.seedFromString(`${c.name}/${budget.join(' ')}`), c.inputs,
        c.inputTypes, c.inputValues);
      const yC = (await h.runSession(compressed, feeds, `${c.name} compressed`))[c.output];
      const yD = (await h.runSession(dense, feeds, `${c.name} dense`))[c.output];
      const err = h.relativeError(yC.data, yD.data);
      t.diagnostic(`${c.name} ${budget.join(' ')}: ${layers} layer(s), |C-D|/|D| = ${err.toExponential(2)}`);
      assert.ok(err <= TOLERANCE, `${c.name}: compressed vs dense ${err.toExponential(3)} > ${TOLERANCE}`);
    });
  }
}

// Models whose weights live in external data files: kfc_make_reference reads them, and with
// --external-data writes both its outputs with external data too, which ONNX Runtime must resolve
// next to each model.
const EXTERNAL_CASES = cases.filter((c) => c.name.startsWith('ext_'));

test('cases.json lists the external data cases', () => {
  assert.deepEqual(EXTERNAL_CASES.map((c) => c.name), ['ext_gemm_matmul', 'ext_constant_node']);
});

for (const c of EXTERNAL_CASES) {
  test(`${c.name}: written with --external-data, rank ${LOW_RANK} computes the dense reconstruction`,
    async (t) => {
      const env = h.requireHarnessEnv('crosscheck');
      const base = path.join(env.workDir, `${c.name}.ext`);
      const budget = ['--rank', String(LOW_RANK), '--external-data'];
      const layers = h.makeReference(env, c.model, budget, `${base}.c.onnx`, `${base}.d.onnx`);
      assert.equal(layers, c.expectedLayers, `${c.name}: layers compressed`);
      for (const p of [`${base}.c.onnx.data`, `${base}.d.onnx.data`]) {
        assert.ok(fs.existsSync(p), `${c.name}: no external data file ${p}`);
      }
      const compressed = await h.createSession(`${base}.c.onnx`);
      const dense = await h.createSession(`${base}.d.onnx`);
      const feeds = h.randomFeeds(h.seedFromString(`${c.name}/ext`), c.inputs);
      const yC = (await h.runSession(compressed, feeds, `${c.name} compressed`))[c.output];
      const yD = (await h.runSession(dense, feeds, `${c.name} dense`))[c.output];
      const err = h.relativeError(yC.data, yD.data);
      t.diagnostic(`${c.name} --external-data: |C-D|/|D| = ${err.toExponential(2)}`);
      assert.ok(h.frobenius(yD.data) > 0, `${c.name}: dense output is all zeros`);
      assert.ok(err <= TOLERANCE, `${c.name}: compressed vs dense ${err.toExponential(3)} > ${TOLERANCE}`);
    });
}
