// SPDX-License-Identifier: Apache-2.0
'use strict';
// Character accuracy of a PP-OCRv4 text recognizer on rendered lines (bench/ocr_accuracy.py), in
// ONNX Runtime (tests/ort/node_modules/onnxruntime-node; run `npm ci` in tests/ort first).
//
//   node bench/ocr_accuracy.js MODEL.onnx DICT.txt LINES_DIR [--batch N]
//
// Or require() it: evaluate({model, dict, lines, batch}) resolves to the JSON object printed here
// (bench/accuracy_bench.js does this).
//
// CTC greedy decoding as PaddleOCR's CTCLabelDecode: argmax per time step, repeats merged, blanks
// (class 0) dropped; classes 1..6623 are DICT.txt's lines and the last one is the space.
// Character accuracy = 1 - sum(edit distance) / sum(reference length) over all lines; also the
// same with spaces removed from both texts, and the fraction of lines read exactly. Prints one JSON object on stdout. Exit 0, 1 on failure, 2 on usage.

const fs = require('node:fs');
const path = require('node:path');
const ortDir = path.join(__dirname, '..', 'tests', 'ort', 'node_modules');
const ort = require(path.join(ortDir, 'onnxruntime-node'));
const { readNpy } = require('../tests/ort/npy');

function usage(message) {
  console.error(`ocr_accuracy.js: ${message}\nusage: node bench/ocr_accuracy.js MODEL.onnx ` +
    'DICT.txt LINES_DIR [--batch N]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { batch: 16, positional: [] };
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--batch' && i + 1 < argv.length) {
      opts.batch = Number(argv[++i]);
      if (!Number.isInteger(opts.batch) || opts.batch < 1) usage('--batch expects a whole number >= 1');
    } else if (argv[i].startsWith('--')) {
      usage(`unexpected argument '${argv[i]}'`);
    } else {
      opts.positional.push(argv[i]);
    }
  }
  if (opts.positional.length !== 3) usage('expected MODEL.onnx DICT.txt LINES_DIR');
  [opts.model, opts.dict, opts.lines] = opts.positional;
  return opts;
}

function loadCharacters(dictFile) {
  const lines = fs.readFileSync(dictFile, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return ['', ...lines.map((l) => l.replace(/\r$/, '')), ' ']; // blank, dictionary, space
}

function editDistance(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; ++i) {
    const cur = [i];
    for (let j = 1; j <= y.length; ++j) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[y.length];
}

function ctcDecode(probs, dims, index, characters) {
  const [, steps, classes] = dims;
  if (classes !== characters.length) {
    throw new Error(`the model has ${classes} classes, the dictionary gives ${characters.length}`);
  }
  let text = '';
  let last = -1;
  for (let t = 0; t < steps; ++t) {
    const row = (index * steps + t) * classes;
    let best = 0;
    for (let c = 1; c < classes; ++c) if (probs[row + c] > probs[row + best]) best = c;
    if (best !== 0 && best !== last) text += characters[best];
    last = best;
  }
  return text;
}

async function evaluate(opts) {
  const characters = loadCharacters(opts.dict);
  const images = readNpy(path.join(opts.lines, 'lines.npy'));
  const texts = JSON.parse(fs.readFileSync(path.join(opts.lines, 'lines.json'), 'utf8'));
  const [n, ...rest] = images.dims;
  if (n !== texts.length) throw new Error(`${n} images but ${texts.length} texts`);
  const rowSize = rest.reduce((a, b) => a * b, 1);
  const session = await ort.InferenceSession.create(opts.model,
    { intraOpNumThreads: 1, interOpNumThreads: 1 });
  let distance = 0;
  let length = 0;
  let exact = 0;
  let distanceNoSpace = 0;
  let lengthNoSpace = 0;
  const start = process.hrtime.bigint();
  for (let first = 0; first < n; first += opts.batch) {
    const count = Math.min(opts.batch, n - first);
    const data = images.data.subarray(first * rowSize, (first + count) * rowSize);
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data,
      [count, ...rest]) });
    const y = out[session.outputNames[0]];
    const dims = Array.from(y.dims, Number);
    for (let i = 0; i < count; ++i) {
      const got = ctcDecode(y.data, dims, i, characters);
      const want = texts[first + i];
      const d = editDistance(got, want);
      distance += d;
      length += Array.from(want).length;
      if (d === 0) ++exact;
      const strip = (text) => text.replace(/ /g, '');
      distanceNoSpace += editDistance(strip(got), strip(want));
      lengthNoSpace += Array.from(strip(want)).length;
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await session.release();
  return {
    model: opts.model,
    lines: n,
    char_accuracy: 1 - distance / length,
    line_accuracy: exact / n,
    char_accuracy_ignoring_spaces: 1 - distanceNoSpace / lengthNoSpace,
    edit_distance: distance,
    characters: length,
    seconds: Number(seconds.toFixed(2)),
  };
}

if (require.main === module) {
  evaluate(parseArgs(process.argv.slice(2))).then((r) => console.log(JSON.stringify(r)))
    .catch((err) => {
      console.error(`ocr_accuracy.js: error: ${err.message}`);
      process.exit(1);
    });
}

module.exports = { evaluate, editDistance, ctcDecode, loadCharacters };
