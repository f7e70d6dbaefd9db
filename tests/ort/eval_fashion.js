// SPDX-License-Identifier: Apache-2.0
'use strict';
// Test accuracy of Fashion-MNIST classifiers (testdata/fashion_mlp.onnx and compressed versions of
// it) in ONNX Runtime, on the 10,000 test images of the Debian package dataset-fashion-mnist.
// Not a test file (node --test only runs *.test.js): run it by hand, or require() it.
//
//   node tests/ort/eval_fashion.js [--json] [--check-metadata] MODEL.onnx [MODEL.onnx ...]
//
// Prints one line per model: path, accuracy (4 decimals), seconds (session creation + inference).
// --json prints a JSON array instead: [{model, accuracy, correct, total, seconds, error?}].
// --check-metadata compares each model's accuracy with the `test_accuracy` its metadata_props
//   carry (train_fashion_mlp.py stores sklearn's score there) and fails on a gap above 0.001.
// A model that does not load or run gets an error (line or JSON field); the others still run.
// Exit code: 0 all fine, 1 a model failed or a check failed, 2 usage error.
//
// Images: FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist), t10k-*-idx?-ubyte[.gz].
// Normalization, as testdata/fashion_data.py: pixel / 255 as float32, 28x28 flattened row-major.
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const h = require('./support');

const DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';
const NUM_CLASSES = 10;
const METADATA_TOLERANCE = 0.001;
const BATCH = 2000;

function dataDir() {
  return process.env.FASHION_MNIST_DIR || DEFAULT_DIR;
}

// Reads an idx file (.gz or plain): {dims, data: Uint8Array}. magic = 0x0800 | number of dims.
function readIdx(name, ndim) {
  const dir = dataDir();
  const file = [`${name}.gz`, name].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  if (!file) {
    throw new Error(`Fashion-MNIST file '${name}[.gz]' not found in ${dir}. Install the Debian ` +
      'package (apt-get install dataset-fashion-mnist) or set FASHION_MNIST_DIR to a folder ' +
      'holding the idx files.');
  }
  let bytes = fs.readFileSync(file);
  if (file.endsWith('.gz')) bytes = zlib.gunzipSync(bytes);
  const header = 4 + 4 * ndim;
  if (bytes.length < header || bytes.readUInt32BE(0) !== (0x800 | ndim)) {
    throw new Error(`${file}: not an idx file of unsigned bytes with ${ndim} dimensions`);
  }
  const dims = Array.from({ length: ndim }, (_, i) => bytes.readUInt32BE(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + size) {
    throw new Error(`${file}: ${bytes.length - header} data bytes, header says ${size}`);
  }
  return { dims, data: bytes.subarray(header) };
}

// split: 't10k' (test, the default) or 'train'; limit: the first `limit` images only.
// Returns {features: Float32Array [n * 784], labels: Uint8Array [n], numSamples, numFeatures}.
function loadFashion(split = 't10k', limit = Infinity) {
  const images = readIdx(`${split}-images-idx3-ubyte`, 3);
  const labels = readIdx(`${split}-labels-idx1-ubyte`, 1);
  if (images.dims[0] !== labels.dims[0] || images.dims[1] !== 28 || images.dims[2] !== 28) {
    throw new Error(`${split}: images [${images.dims}] do not match labels [${labels.dims}]`);
  }
  const numSamples = Math.min(images.dims[0], limit);
  const numFeatures = 28 * 28;
  // b / 255 in float64 rounded to float32 equals numpy's float32(b) / float32(255).
  const features = Float32Array.from(images.data.subarray(0, numSamples * numFeatures),
    (b) => b / 255);
  return { features, labels: labels.data.subarray(0, numSamples), numSamples, numFeatures };
}

// The value of one metadata_props key of an ONNX file (ModelProto field 14, entries
// {1: key, 2: value}), or undefined. A minimal protobuf walk: no dependency on a protobuf library.
function readMetadataProp(modelPath, wanted) {
  const buf = fs.readFileSync(modelPath);
  const varint = (state) => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (state.pos >= state.end) throw new Error(`${modelPath}: truncated protobuf varint`);
      const b = buf[state.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  // Calls visit(field, start, end) for each length-delimited field in [start, end).
  const fields = (start, end, visit) => {
    const state = { pos: start, end };
    while (state.pos < end) {
      const tag = varint(state);
      const wire = tag % 8;
      if (wire === 0) varint(state);
      else if (wire === 1) state.pos += 8;
      else if (wire === 5) state.pos += 4;
      else if (wire === 2) {
        const len = varint(state);
        visit(Math.floor(tag / 8), state.pos, state.pos + len);
        state.pos += len;
      } else throw new Error(`${modelPath}: unsupported protobuf wire type ${wire}`);
    }
  };
  let found;
  fields(0, buf.length, (field, start, end) => {
    if (field !== 14) return;
    const entry = {};
    fields(start, end, (f, s, e) => { entry[f] = buf.toString('utf8', s, e); });
    if (entry[1] === wanted) found = entry[2];
  });
  return found;
}

// Accuracy of one model on `data` (from loadFashion); throws if the model does not load or run.
async function evaluate(modelPath, data) {
  const start = process.hrtime.bigint();
  const session = await h.createSession(modelPath);
  const probs = new Float32Array(data.numSamples * NUM_CLASSES);
  for (let first = 0; first < data.numSamples; first += BATCH) {
    const n = Math.min(BATCH, data.numSamples - first);
    const input = new h.ort.Tensor('float32',
      data.features.subarray(first * data.numFeatures, (first + n) * data.numFeatures),
      [n, data.numFeatures]);
    const out = await h.runSession(session, { [session.inputNames[0]]: input }, modelPath);
    const result = out[session.outputNames[0]];
    if (result.dims.length !== 2 || result.dims[0] !== n || result.dims[1] !== NUM_CLASSES) {
      throw new Error(`${modelPath}: output ${session.outputNames[0]} has shape ` +
        `[${result.dims}], expected [${n}, ${NUM_CLASSES}]`);
    }
    probs.set(result.data, first * NUM_CLASSES);
  }
  await session.release();
  const accuracy = h.argmaxAccuracy(probs, NUM_CLASSES, data.labels);
  return {
    model: modelPath,
    accuracy,
    correct: Math.round(accuracy * data.numSamples),
    total: data.numSamples,
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
  };
}

// Throws unless the ORT accuracy is within METADATA_TOLERANCE of the model's test_accuracy prop.
function checkMetadata(result) {
  const stored = readMetadataProp(result.model, 'test_accuracy');
  if (stored === undefined) throw new Error(`${result.model}: no test_accuracy in metadata_props`);
  const gap = Math.abs(result.accuracy - Number(stored));
  if (!(gap <= METADATA_TOLERANCE)) {
    throw new Error(`${result.model}: ONNX Runtime accuracy ${result.accuracy.toFixed(4)} differs ` +
      `from the stored (sklearn) test_accuracy ${stored} by ${gap.toFixed(4)} > ${METADATA_TOLERANCE}`);
  }
  return Number(stored);
}

async function main() {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const check = args.includes('--check-metadata');
  const models = args.filter((a) => a !== '--json' && a !== '--check-metadata');
  if (models.length === 0 || models.some((m) => m.startsWith('-'))) {
    console.error('usage: node tests/ort/eval_fashion.js [--json] [--check-metadata] MODEL.onnx ...');
    process.exit(2);
  }
  const data = loadFashion('t10k');
  const results = [];
  for (const model of models) {
    let result;
    try {
      result = await evaluate(model, data);
      if (check) result.stored_accuracy = checkMetadata(result);
    } catch (err) {
      result = { ...result, model, error: err.message };
    }
    results.push(result);
    if (!json) {
      const line = result.accuracy === undefined ? model
        : `${model}\t${result.accuracy.toFixed(4)}\t${result.seconds.toFixed(2)} s` +
          (result.stored_accuracy === undefined ? '' : `\t(metadata ${result.stored_accuracy})`);
      console.log(result.error ? `${line}\tERROR: ${result.error}` : line);
    }
  }
  if (json) console.log(JSON.stringify(results, null, 1));
  process.exitCode = results.some((r) => r.error) ? 1 : 0;
}

module.exports = { loadFashion, evaluate, checkMetadata, readMetadataProp, NUM_CLASSES };

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
