// SPDX-License-Identifier: Apache-2.0
'use strict';
// Shared helpers for the ONNX Runtime cross-checks. Not a test file: `node --test tests/ort/`
// only runs files named *.test.js (and the other test-name patterns), so this one is a module.
//
// Environment (set by ctest, see tests/CMakeLists.txt):
//   KFC_COMPRESS        path of the kfc-compress binary
//   KFC_MAKE_REFERENCE  path of tests/support's kfc_make_reference binary
//   KFC_SOURCE_DIR      repository root (testdata/ lives there)
//   KFC_WORK_DIR        scratch folder for the models the tests write (created if missing)

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');

const ENV_VARS = ['KFC_COMPRESS', 'KFC_MAKE_REFERENCE', 'KFC_SOURCE_DIR', 'KFC_WORK_DIR'];

// Returns the variable's value, or throws an error saying how to run the harness. Tests call this
// inside their body so that a missing variable fails each test (never a silent skip).
function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `environment variable ${name} is not set. The ONNX Runtime cross-checks need ` +
        `${ENV_VARS.join(', ')}; run them through ctest (ctest -R ort_crosscheck in the build ` +
        `folder), or set all four by hand and run: node --test tests/ort/`);
  }
  return value;
}

function requireExecutable(name) {
  const file = requireEnv(name);
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch (err) {
    throw new Error(`${name}='${file}' is not an executable file (${err.code}): build it first`);
  }
  return file;
}

// All four variables, checked, with the work dir created. `subdir` keeps the test files (which
// node runs in parallel processes) from writing over each other's outputs.
function requireHarnessEnv(subdir) {
  const env = {
    compress: requireExecutable('KFC_COMPRESS'),
    makeReference: requireExecutable('KFC_MAKE_REFERENCE'),
    sourceDir: requireEnv('KFC_SOURCE_DIR'),
    workDir: path.join(requireEnv('KFC_WORK_DIR'), subdir),
  };
  if (!fs.existsSync(path.join(env.sourceDir, 'testdata'))) {
    throw new Error(`KFC_SOURCE_DIR='${env.sourceDir}' has no testdata/ folder`);
  }
  fs.mkdirSync(env.workDir, { recursive: true });
  return env;
}

// The repository root for reading test data: KFC_SOURCE_DIR when set, else found from this file.
// Used to list the cases at load time (tests are declared before any of them runs).
function sourceDir() {
  return process.env.KFC_SOURCE_DIR || path.resolve(__dirname, '..', '..');
}

function testdataPath(...parts) {
  return path.join(sourceDir(), 'testdata', ...parts);
}

// The synthetic cases (testdata/synthetic/cases.json) plus the trained digits MLP, in one format:
// {name, model (absolute path), inputs {name: shape}, output, expectedLayers}.
function loadCases() {
  const file = testdataPath('synthetic', 'cases.json');
  const cases = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(Array.isArray(cases) && cases.length > 0, `${file}: expected a non-empty list`);
  const out = cases.map((c) => {
    for (const key of ['name', 'file', 'inputs', 'output', 'expected_layers']) {
      assert.ok(key in c, `${file}: case ${JSON.stringify(c.name)} has no '${key}'`);
    }
    return {
      name: c.name,
      model: testdataPath('synthetic', c.file),
      inputs: c.inputs,
      output: c.output,
      expectedLayers: c.expected_layers,
      inputTypes: c.input_types || {},
      tolerance: c.tolerance,
      outputDims: c.output_dims,
      inputValues: c.input_values || {},
    };
  });
  out.push({
    name: 'digits_mlp',
    model: testdataPath('digits_mlp.onnx'),
    inputs: { input: [7, 64] },
    output: 'probabilities',
    expectedLayers: 3, // fc1, fc2, fc3: kfc_make_reference compresses small layers too
  });
  return out;
}

// testdata/digits_test.json: {features: flat row-major [n * 64], labels: [n], ...}.
function loadDigitsTest() {
  const file = testdataPath('digits_test.json');
  const data = JSON.parse(fs.readFileSync(file, 'utf8'));
  const n = data.labels.length;
  assert.equal(data.num_samples, n, `${file}: num_samples does not match labels`);
  assert.equal(data.features.length, n * data.num_features, `${file}: features size`);
  return {
    features: Float32Array.from(data.features),
    labels: data.labels,
    numSamples: n,
    numFeatures: data.num_features,
  };
}

// mulberry32: a small seeded PRNG with a 32-bit state; returns floats in [0, 1).
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// FNV-1a of a string: a per-case seed that does not shift when cases are added or reordered.
function seedFromString(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; ++i) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function numElements(dims) {
  return dims.reduce((a, b) => a * b, 1);
}

// float32 <-> IEEE half bits (round to nearest even), for float16 feeds and outputs: Node 20 has
// no Float16Array, so onnxruntime-node passes float16 data as Uint16Array bit patterns.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function floatToHalf(value) {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    f32[0] = Math.abs(value) * 16777216;
    const v = f32[0];
    const r = Math.round(v);
    return sign | (r - v === 0.5 && r % 2 === 1 ? r - 1 : r);  // half to even
  }
  let h = ((((abs >>> 23) - 112) << 10) | ((abs & 0x7fffff) >>> 13)) >>> 0;
  const rest = abs & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1;
  return sign | h;
}

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

// Uniform values in [-1, 1) from a seeded generator, as `type` (float32, float16 or float64).
function randomTensor(rng, dims, type = 'float32') {
  const n = numElements(dims);
  if (type === 'float16') {
    const data = new Uint16Array(n);
    for (let i = 0; i < n; ++i) data[i] = floatToHalf(2 * rng() - 1);
    return new ort.Tensor('float16', data, dims);
  }
  const data = type === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; ++i) data[i] = 2 * rng() - 1;
  return new ort.Tensor(type, data, dims);
}

// One feed per graph input, in sorted-name order so the values do not depend on JSON key order.
// `types`: input name -> element type, float32 when absent. `values`: input name -> fixed data
// (an If condition, say), used instead of random values.
function randomFeeds(seed, inputs, types = {}, values = {}) {
  const rng = mulberry32(seed);
  const feeds = {};
  for (const name of Object.keys(inputs).sort()) {
    const type = types[name] || 'float32';
    if (name in values) {
      const data = type === 'bool' ? Uint8Array.from(values[name]) : values[name];
      feeds[name] = new ort.Tensor(type, data, inputs[name]);
    } else {
      feeds[name] = randomTensor(rng, inputs[name], type);
    }
  }
  return feeds;
}

const SESSION_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1 };

async function createSession(modelPath) {
  try {
    return await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
  } catch (err) {
    throw new Error(`onnxruntime could not load '${modelPath}': ${err.message}`);
  }
}

// Runs the session and returns {name: {dims, data}} for every output; float16 data comes back as
// numbers.
async function runSession(session, feeds, label) {
  let results;
  try {
    results = await session.run(feeds);
  } catch (err) {
    throw new Error(`onnxruntime failed to run ${label}: ${err.message}`);
  }
  const out = {};
  for (const name of session.outputNames) {
    const r = results[name];
    const data = r.type === 'float16' ? Float64Array.from(r.data, halfToFloat) : r.data;
    out[name] = { dims: Array.from(r.dims, Number), data };
  }
  return out;
}

function frobenius(data) {
  let sum = 0;
  for (let i = 0; i < data.length; ++i) sum += data[i] * data[i];
  return Math.sqrt(sum);
}

// ||got - want||_F / ||want||_F, accumulated in float64. Non-finite values give Infinity.
function relativeError(got, want) {
  assert.equal(got.length, want.length, 'relativeError: sizes differ');
  let diff = 0;
  for (let i = 0; i < got.length; ++i) {
    const d = got[i] - want[i];
    diff += d * d;
  }
  const norm = frobenius(want);
  const rel = Math.sqrt(diff) / (norm > 0 ? norm : 1);
  return Number.isFinite(rel) ? rel : Infinity;
}

// Runs a binary and returns {status, stdout, stderr}; a failed spawn or a signal throws.
function run(file, args, options = {}) {
  const result = spawnSync(file, args, {
    encoding: 'utf8',
    timeout: options.timeout || 300000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) {
    throw new Error(`could not run ${file}: ${result.error.message}`);
  }
  if (result.signal) {
    throw new Error(`${path.basename(file)} ${args.join(' ')} was killed by ${result.signal}\n` +
      `stderr:\n${result.stderr}`);
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function describeRun(file, args, result) {
  return `${path.basename(file)} ${args.join(' ')}\nexit code: ${result.status}\n` +
    `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

// kfc_make_reference INPUT --rank R --compressed OUT_C --dense OUT_D; returns layers_compressed.
// `budget`: a rank, or the mode arguments as a list (e.g. ['--ratio', '0.3', '--shape', 'auto']).
function makeReference(env, model, budget, compressedPath, densePath) {
  for (const p of [compressedPath, densePath]) fs.rmSync(p, { force: true });
  const mode = Array.isArray(budget) ? budget : ['--rank', String(budget)];
  const args = [model, ...mode, '--compressed', compressedPath, '--dense', densePath];
  const result = run(env.makeReference, args);
  assert.equal(result.status, 0, `kfc_make_reference failed:\n${describeRun(env.makeReference, args, result)}`);
  let report;
  try {
    report = JSON.parse(result.stdout.trim());
  } catch (err) {
    assert.fail(`kfc_make_reference stdout is not one JSON object (${err.message}):\n` +
      describeRun(env.makeReference, args, result));
  }
  assert.equal(typeof report.layers_compressed, 'number',
    `kfc_make_reference: no numeric layers_compressed in ${result.stdout.trim()}`);
  for (const p of [compressedPath, densePath]) {
    assert.ok(fs.existsSync(p), `kfc_make_reference exited 0 but did not write ${p}`);
  }
  return report.layers_compressed;
}

function assertSameNames(original, other, label) {
  assert.deepEqual(other.inputNames, original.inputNames, `${label}: graph input names changed`);
  assert.deepEqual(other.outputNames, original.outputNames, `${label}: graph output names changed`);
}

function argmaxAccuracy(probs, numClasses, labels) {
  let correct = 0;
  for (let i = 0; i < labels.length; ++i) {
    let best = 0;
    for (let j = 1; j < numClasses; ++j) {
      if (probs[i * numClasses + j] > probs[i * numClasses + best]) best = j;
    }
    if (best === labels[i]) ++correct;
  }
  return correct / labels.length;
}

// For the benchmark scripts: `parse(argv)` on the command line's arguments, or, when it throws,
// `script: message` and the usage line on stderr and exit code 2 (usage error).
function parseArgsOrExit(script, usage, parse) {
  try {
    return parse(process.argv.slice(2));
  } catch (err) {
    console.error(`${script}: ${err.message}\nusage: ${usage}`);
    return process.exit(2);
  }
}

module.exports = {
  ort,
  requireEnv,
  requireHarnessEnv,
  sourceDir,
  testdataPath,
  loadCases,
  loadDigitsTest,
  mulberry32,
  seedFromString,
  randomFeeds,
  floatToHalf,
  halfToFloat,
  createSession,
  runSession,
  relativeError,
  frobenius,
  run,
  describeRun,
  makeReference,
  assertSameNames,
  argmaxAccuracy,
  parseArgsOrExit,
};
