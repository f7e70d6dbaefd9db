'use strict';
// SPDX-License-Identifier: Apache-2.0
// --allocation objectives compared (docs/allocation.md): accuracy of the PP-OCRv4 text recognizer
// (character accuracy on rendered lines, bench/ocr_accuracy.{py,js}) and of the Fashion-MNIST MLP
// (testdata/fashion_mlp.onnx, 10,000 test images) at several --ratio values, for each objective,
// weight-only and calibrated in one command (--calibration-data). Calibration: 200 OCR lines
// rendered with another seed and other texts than the 200 test lines; the first 2,000 Fashion
// training images. `sensitivity` needs the data, so it has no weight-only column.
// Not a test: run by hand after building kfc-compress (and `npm ci` in tests/ort and tool).
//
//   node bench/allocation_compare.js [--kfc build/kfc-compress] [--out DIR] [--bench ocr,fashion]
//        [--allocations size-weighted,per-layer,uniform,sensitivity] [--ocr-ratios 0.5,0.35,0.27,0.2]
//        [--fashion-ratios 0.25,0.1,0.05] [--extra "ARGS"] [--weight-only 0|1]
//
// Prints Markdown tables (accuracy in percent; time: the calibrated run's wall seconds) and
// writes DIR/results.tsv.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const ORT = path.join(ROOT, 'tests', 'ort');

function parseArgs(argv) {
  const o = {
    kfc: path.join(ROOT, 'build', 'kfc-compress'),
    out: path.join(ROOT, 'build', 'allocation-compare'),
    bench: ['ocr', 'fashion'],
    allocations: ['size-weighted', 'per-layer', 'uniform', 'sensitivity'],
    ocrRatios: [0.5, 0.35, 0.27, 0.2],
    fashionRatios: [0.25, 0.1, 0.05],
    extra: [],
    weightOnly: true,
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--kfc') o.kfc = path.resolve(next());
    else if (a === '--out') o.out = path.resolve(next());
    else if (a === '--bench') o.bench = next().split(',');
    else if (a === '--allocations') o.allocations = next().split(',');
    else if (a === '--ocr-ratios') o.ocrRatios = next().split(',').map(Number);
    else if (a === '--fashion-ratios') o.fashionRatios = next().split(',').map(Number);
    else if (a === '--extra') o.extra = next().split(' ').filter((s) => s);
    else if (a === '--weight-only') o.weightOnly = next() !== '0';
    else throw new Error(`unexpected argument ${a}`);
  }
  return o;
}

function run(file, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  r.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r;
}

// Compresses; returns {seconds, paramsAfter, paramsBefore, outputError} from the report.
function compress(o, model, out, ratio, allocation, data) {
  const args = [model, '--ratio', String(ratio), '--allocation', allocation, '-o', out,
    '--report', `${out}.json`, '-q', ...o.extra];
  if (data) args.push('--calibration-data', data.arg, '--calibration-batch', String(data.batch));
  const r = run(o.kfc, args);
  const rep = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
  const worst = (rep.output_errors || []).reduce((m, e) => Math.max(m, e.relative_error), 0);
  const ranks = rep.layers.filter((l) => l.compressed)
    .map((l) => `${l.k1}x${l.n1}(x)${l.k2}x${l.n2}r${l.rank}`).join(' ');
  return {
    seconds: r.seconds, after: rep.totals.compressible_params_after,
    before: rep.totals.compressible_params_before, outputError: rep.output_errors ? worst : NaN, ranks,
  };
}

function ocrSetup(o) {
  const assets = path.join(ORT, 'node_modules', '@gutenye', 'ocr-models', 'assets');
  const dir = path.join(o.out, 'ocr');
  for (const [name, seed] of [['test', 1], ['calib', 2]]) {
    if (fs.existsSync(path.join(dir, name, 'lines.npy'))) continue;
    run('/usr/bin/python3', [path.join(ROOT, 'bench', 'ocr_accuracy.py'), path.join(dir, name),
      '--lines', '200', '--seed', String(seed)]);
  }
  const dict = path.join(assets, 'ppocr_keys_v1.txt');
  return {
    name: 'ocr', dir, model: path.join(assets, 'ch_PP-OCRv4_rec_infer.onnx'), ratios: o.ocrRatios,
    data: { arg: `x=${path.join(dir, 'calib', 'lines.npy')}`, batch: 16 },
    evaluate: async (model) => {
      const r = run('node', [path.join(ROOT, 'bench', 'ocr_accuracy.js'), model, dict,
        path.join(dir, 'test')]);
      return JSON.parse(r.stdout).char_accuracy;
    },
  };
}

function fashionSetup(o) {
  const fashion = require(path.join(ORT, 'eval_fashion'));
  const { writeNpy } = require(path.join(ORT, 'npy'));
  const dir = path.join(o.out, 'fashion');
  fs.mkdirSync(dir, { recursive: true });
  const calib = path.join(dir, 'calib.npy');
  if (!fs.existsSync(calib)) {
    const train = fashion.loadFashion('train', 2000);
    writeNpy(calib, [train.numSamples, train.numFeatures], train.features);
  }
  const test = fashion.loadFashion('t10k');
  return {
    name: 'fashion', dir, model: path.join(ROOT, 'testdata', 'fashion_mlp.onnx'),
    ratios: o.fashionRatios, data: { arg: calib, batch: 256 },
    evaluate: async (model) => (await fashion.evaluate(model, test)).accuracy,
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  const pct = (x) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : '-');
  const tsv = [['bench', 'ratio', 'allocation', 'weight_only', 'calibrated', 'calibrated_s',
    'output_error', 'params_after', 'ranks']];
  for (const name of o.bench) {
    const b = name === 'ocr' ? ocrSetup(o) : fashionSetup(o);
    const original = await b.evaluate(b.model);
    let md = `\n${b.name}: original ${pct(original)}; load average ${os.loadavg()[0].toFixed(1)}\n\n` +
      '| --ratio | --allocation | weight-only | calibrated | calibrated run | output error | ranks (calibrated) |\n' +
      '|---:|---|---:|---:|---:|---:|---|\n';
    process.stdout.write(md);
    for (const ratio of b.ratios) {
      for (const allocation of o.allocations) {
        const base = path.join(b.dir, `${allocation}.r${ratio}`);
        let w = NaN;
        if (o.weightOnly && allocation !== 'sensitivity') {
          compress(o, b.model, `${base}.w.onnx`, ratio, allocation, null);
          w = await b.evaluate(`${base}.w.onnx`);
        }
        const c = compress(o, b.model, `${base}.c.onnx`, ratio, allocation, b.data);
        const cAcc = await b.evaluate(`${base}.c.onnx`);
        const row = `| ${ratio} | ${allocation} | ${pct(w)} | ${pct(cAcc)} | ${c.seconds.toFixed(1)} s | ` +
          `${c.outputError.toFixed(4)} | ${c.ranks} |\n`;
        process.stdout.write(row);
        tsv.push([b.name, ratio, allocation, w, cAcc, c.seconds.toFixed(2), c.outputError, c.after, c.ranks]);
      }
    }
  }
  fs.writeFileSync(path.join(o.out, 'results.tsv'), tsv.map((r) => r.join('\t')).join('\n') + '\n');
}

main().catch((err) => {
  console.error(`allocation_compare.js: ${err.stack || err}`);
  process.exit(1);
});
