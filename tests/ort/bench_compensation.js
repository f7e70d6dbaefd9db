// SPDX-License-Identifier: Apache-2.0
'use strict';
// Error compensation's effect on the Fashion-MNIST MLP (docs/compensation.md): for each --ratio,
// kfc-compress --calibration-data on the first 2,000 training images, without and with
// --compensate; prints the test accuracy (10,000 images), the model output error on the
// calibration rows, each stage's RMS layer output error without -> with compensation, the
// runner passes and the wall time. Not a test: run by hand after building kfc-compress.
//
//   node tests/ort/bench_compensation.js [--kfc build/kfc-compress] [--out DIR]
//                                        [--ratios 0.25,0.1,0.05] [--shape auto]
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./support');
const fashion = require('./eval_fashion');
const { writeNpy } = require('./npy');

const ROOT = h.sourceDir();
const CALIBRATION_IMAGES = 2000;

function parseArgs(argv) {
  const o = {
    kfc: path.join(ROOT, 'build', 'kfc-compress'),
    out: path.join(ROOT, 'build', 'compensation-bench'),
    ratios: [0.25, 0.1, 0.05],
    shape: 'auto',
  };
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--kfc') o.kfc = argv[++i];
    else if (argv[i] === '--out') o.out = argv[++i];
    else if (argv[i] === '--ratios') o.ratios = argv[++i].split(',').map(Number);
    else if (argv[i] === '--shape') o.shape = argv[++i];
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  const model = h.testdataPath('fashion_mlp.onnx');
  const test = fashion.loadFashion('t10k');
  const original = await fashion.evaluate(model, test);
  const train = fashion.loadFashion('train', CALIBRATION_IMAGES);
  const inputs = path.join(o.out, 'calibration_input.npy');
  writeNpy(inputs, [train.numSamples, train.numFeatures], train.features);
  console.log(`load average ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}; ` +
    `original test accuracy ${(100 * original.accuracy).toFixed(2)}%`);
  console.log('| --ratio | compensate | test accuracy | model output error (calib.) | ' +
    'stages: RMS layer output error, calibrated -> compensated | runner passes | seconds |');
  console.log('|---:|---|---:|---:|---|---:|---:|');
  for (const ratio of o.ratios) {
    for (const compensate of [false, true]) {
      const out = path.join(o.out, `r${ratio}${compensate ? '_comp' : ''}.onnx`);
      const args = [model, '--ratio', String(ratio), '--shape', o.shape, '--calibration-data',
        inputs, '-o', out, '--json', ...(compensate ? ['--compensate'] : [])];
      const start = process.hrtime.bigint();
      const r = spawnSync(o.kfc, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (r.status !== 0) throw new Error(`kfc-compress ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
      const rep = JSON.parse(r.stdout);
      const acc = (await fashion.evaluate(out, test)).accuracy;
      const stages = rep.compensation
        ? (rep.compensation.stage || []).map((s) => `${s.stage}: ${s.uncompensated_output_error.toFixed(4)} -> ` +
          `${s.compensated_output_error.toFixed(4)}`).join('; ')
        : '-';
      console.log(`| ${ratio} | ${compensate ? 'yes' : 'no'} | ${(100 * acc).toFixed(2)}% | ` +
        `${rep.output_errors[0].relative_error.toFixed(5)} | ${stages} | ` +
        `${rep.compensation ? rep.compensation.runner_passes : 0} | ${seconds.toFixed(2)} |`);
    }
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
