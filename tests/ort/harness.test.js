// SPDX-License-Identifier: Apache-2.0
'use strict';
// Checks of the harness itself and of the committed test data; these need no kfc binary.
// The original models must load and run in ONNX Runtime, or the cross-checks prove nothing.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const test = require('node:test');
const h = require('./support');

test('mulberry32 matches the reference sequence and is uniform on [0, 1)', () => {
  const rng = h.mulberry32(42);
  // First values of the published mulberry32 for seed 42.
  assert.deepEqual([rng(), rng(), rng()],
    [0.6011037519201636, 0.44829055899754167, 0.8524657934904099]);
  const again = h.mulberry32(42);
  assert.equal(again(), 0.6011037519201636);
  const r = h.mulberry32(7);
  let sum = 0;
  const n = 100000;
  for (let i = 0; i < n; ++i) {
    const v = r();
    assert.ok(v >= 0 && v < 1);
    sum += v;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
});

test('seeded feeds are reproducible and lie in [-1, 1)', () => {
  assert.equal(h.seedFromString('a'), 0xe40c292c); // FNV-1a test vector
  const a = h.randomFeeds(123, { x: [3, 4], w: [2] });
  const b = h.randomFeeds(123, { w: [2], x: [3, 4] });
  assert.deepEqual(Array.from(a.x.data), Array.from(b.x.data));
  assert.deepEqual(Array.from(a.x.dims), [3, 4]);
  const c = h.randomFeeds(124, { x: [3, 4] });
  assert.notDeepEqual(Array.from(a.x.data), Array.from(c.x.data));
  for (const v of a.x.data) assert.ok(v >= -1 && v < 1);
});

test('relativeError is the relative Frobenius distance', () => {
  assert.equal(h.relativeError([3, 4], [3, 4]), 0);
  assert.equal(h.relativeError([0, 0], [3, 4]), 1);
  assert.ok(Math.abs(h.relativeError([3, 5], [3, 4]) - 0.2) < 1e-15);
  assert.equal(h.relativeError([NaN, 0], [3, 4]), Infinity);
});

test('missing environment variables fail with a message naming them', () => {
  const saved = process.env.KFC_MAKE_REFERENCE;
  delete process.env.KFC_MAKE_REFERENCE;
  try {
    assert.throws(() => h.requireEnv('KFC_MAKE_REFERENCE'), /KFC_MAKE_REFERENCE is not set.*ctest/s);
  } finally {
    if (saved !== undefined) process.env.KFC_MAKE_REFERENCE = saved;
  }
});

test('cases.json lists existing models with concrete feed shapes', () => {
  const cases = h.loadCases();
  assert.ok(cases.length >= 13);
  const names = new Set();
  for (const c of cases) {
    assert.ok(!names.has(c.name), `duplicate case ${c.name}`);
    names.add(c.name);
    assert.ok(fs.existsSync(c.model), `${c.name}: ${c.model} is missing`);
    assert.ok(Number.isInteger(c.expectedLayers) && c.expectedLayers >= 1, c.name);
    for (const [name, dims] of Object.entries(c.inputs)) {
      assert.ok(dims.every((d) => Number.isInteger(d) && d > 0), `${c.name}.${name}: ${dims}`);
    }
  }
});

for (const c of h.loadCases()) {
  test(`${c.name}: original model runs in ONNX Runtime`, async () => {
    const session = await h.createSession(c.model);
    assert.deepEqual([...session.inputNames].sort(), Object.keys(c.inputs).sort());
    assert.deepEqual(session.outputNames, [c.output]);
    const feeds = h.randomFeeds(h.seedFromString(c.name), c.inputs, c.inputTypes, c.inputValues);
    const y = (await h.runSession(session, feeds, c.name))[c.output];
    const x = Object.values(c.inputs)[0];
    // Most cases map [..., K] to [..., N] with the leading dims kept; Gemm with transA=1 takes
    // its input as [K, M]; cases that do neither (MatMul(W, X)) give their output dims.
    if (c.outputDims) {
      assert.deepEqual(y.dims, c.outputDims);
    } else {
      const lead = c.name === 'gemm_transa' ? x.slice(1) : x.slice(0, -1);
      assert.deepEqual(y.dims.slice(0, -1), lead);
    }
    assert.ok(y.data.every(Number.isFinite));
    assert.ok(h.frobenius(y.data) > 0);
  });
}

test('digits_mlp in ONNX Runtime matches the accuracy sklearn measured', async () => {
  const digits = h.loadDigitsTest();
  const recorded = JSON.parse(fs.readFileSync(h.testdataPath('digits_test.json'), 'utf8'));
  const session = await h.createSession(h.testdataPath('digits_mlp.onnx'));
  const feeds = { input: new h.ort.Tensor('float32', digits.features, [digits.numSamples, 64]) };
  const y = (await h.runSession(session, feeds, 'digits_mlp'))['probabilities'];
  assert.deepEqual(y.dims, [digits.numSamples, 10]);
  for (let i = 0; i < digits.numSamples; ++i) {
    let s = 0;
    for (let j = 0; j < 10; ++j) s += y.data[i * 10 + j];
    assert.ok(Math.abs(s - 1) < 1e-5, `row ${i} sums to ${s}`);
  }
  const accuracy = h.argmaxAccuracy(y.data, 10, digits.labels);
  assert.equal(accuracy, recorded.reference_accuracy);
});
