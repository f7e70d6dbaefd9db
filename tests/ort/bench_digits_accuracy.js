// SPDX-License-Identifier: Apache-2.0
'use strict';
// Accuracy of the digits MLP (testdata/digits_mlp.onnx) after kfc-compress at several ranks,
// measured in ONNX Runtime on the 200 held-out samples of testdata/digits_test.json.
// Prints a Markdown table (the README's). Not a test: run it by hand after building:
//   node tests/ort/bench_digits_accuracy.js build/kfc-compress [--shape S] [rank ...]
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./support');

async function accuracy(modelPath, digits) {
  const session = await h.createSession(modelPath);
  const feeds = {
    [session.inputNames[0]]: new h.ort.Tensor('float32', digits.features,
      [digits.numSamples, digits.numFeatures]),
  };
  const out = (await session.run(feeds))[session.outputNames[0]];
  return h.argmaxAccuracy(out.data, 10, digits.labels);
}

async function main() {
  const [bin, ...rest] = process.argv.slice(2);
  const shapeArgs = rest[0] === '--shape' ? ['--shape', rest[1]] : [];
  const rankArgs = rest.slice(shapeArgs.length);
  if (!bin) {
    console.error('usage: node tests/ort/bench_digits_accuracy.js path/to/kfc-compress [--shape S] [rank ...]');
    process.exit(2);
  }
  const ranks = rankArgs.length ? rankArgs.map(Number) : [1, 2, 4, 8, 16, 32];
  const input = h.testdataPath('digits_mlp.onnx');
  const digits = h.loadDigitsTest();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kfc-bench-'));
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  console.log(`original: accuracy ${pct(await accuracy(input, digits))} on ${digits.numSamples} ` +
    `held-out samples, ${fs.statSync(input).size} bytes`);
  console.log('');
  console.log('| -r | fc1 shape | fc1 rel. error | fc2 shape | fc2 rel. error | ' +
    'model params | file bytes | accuracy |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const rank of ranks) {
    const output = path.join(dir, `digits_r${rank}.onnx`);
    const report = JSON.parse(execFileSync(bin,
      [input, '-r', String(rank), ...shapeArgs, '-o', output, '--json', '-q']).toString());
    const layer = (name) => report.layers.find((l) => l.node_name === name);
    const cell = (l) => l.compressed
      ? [`${l.k1}x${l.n1} (x) ${l.k2}x${l.n2}`, l.relative_error.toFixed(3)]
      : ['-', l.skip_reason];
    const t = report.totals;
    console.log(`| ${rank} | ${cell(layer('fc1')).join(' | ')} | ${cell(layer('fc2')).join(' | ')} | ` +
      `${t.model_params_before} -> ${t.model_params_after} | ` +
      `${t.file_bytes_before} -> ${t.file_bytes_after} | ${pct(await accuracy(output, digits))} |`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
