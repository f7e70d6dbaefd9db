// SPDX-License-Identifier: Apache-2.0
'use strict';
// Calibration's effect on the Fashion-MNIST MLP: accuracy on the 10,000 test images with and
// without --calibration, for --shape auto across --ratio targets, plus the time and memory the
// calibration step adds. Calibration uses the first 2,000 training images (never the test set).
// Not a test: run by hand after building kfc-compress.
//
//   node tests/ort/bench_fashion_calibration.js [--kfc build/kfc-compress] [--out DIR]
//                                               [--ratios 0.5,0.3,0.25,0.2,0.1,0.05]
//
// Writes DIR/results.tsv (the sweep's columns; policies `auto` and `auto+calibration`),
// DIR/results.md, and DIR/sweep.png via testdata/plot_fashion_sweep.py, merged with the rows of
// build/fashion-bench/results.tsv when that exists (the three-policy sweep).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./support');
const fashion = require('./eval_fashion');
const { writeNpy } = require('./npy');
const { runProbe } = require('./run_probe');

const ROOT = h.sourceDir();
const CALIBRATION_IMAGES = 2000;

function parseArgs(argv) {
  const o = {
    kfc: path.join(ROOT, 'build', 'kfc-compress'),
    out: path.join(ROOT, 'build', 'fashion-calibration'),
    ratios: [0.5, 0.3, 0.25, 0.2, 0.1, 0.05],
  };
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--kfc') o.kfc = argv[++i];
    else if (argv[i] === '--out') o.out = argv[++i];
    else if (argv[i] === '--ratios') o.ratios = argv[++i].split(',').map(Number);
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  return o;
}

// Runs a command under /usr/bin/time: {status, stdout, stderr, seconds, peakKb}.
function timed(file, args) {
  const r = spawnSync('/usr/bin/time', ['-f', 'KFC_TIME %e %M', file, ...args],
    { encoding: 'utf8', maxBuffer: 64 << 20 });
  const m = /KFC_TIME ([\d.]+) (\d+)/.exec(r.stderr || '');
  return { ...r, seconds: m ? Number(m[1]) : NaN, peakKb: m ? Number(m[2]) : NaN };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  const model = h.testdataPath('fashion_mlp.onnx');
  const test = fashion.loadFashion('t10k');
  const original = await fashion.evaluate(model, test);

  // 1. Calibration inputs, probe, activations.
  const train = fashion.loadFashion('train', CALIBRATION_IMAGES);
  const inputs = path.join(o.out, 'calibration_input.npy');
  writeNpy(inputs, [train.numSamples, train.numFeatures], train.features);
  const probe = path.join(o.out, 'probe.onnx');
  const p = timed(o.kfc, [model, '--calibration-probe', probe]);
  if (p.status !== 0) throw new Error(`probe failed: ${p.stderr}`);
  const acts = path.join(o.out, 'acts');
  fs.rmSync(acts, { recursive: true, force: true });
  const t0 = process.hrtime.bigint();
  await runProbe({ probe, inputs: { input: inputs }, out: acts, batch: 256 });
  const probeRunSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const actBytes = fs.readdirSync(acts).reduce((s, f) => s + fs.statSync(path.join(acts, f)).size, 0);

  // 2. The sweep.
  const header = ['policy', 'mode', 'target', 'status', 'fc_ratio', 'param_ratio', 'file_ratio',
    'accuracy', 'compress_s', 'eval_s', 'layers', 'error', 'peak_rss_mb'];
  const rows = [['original', 'ratio', '', 'ok', 1, 1, 1, original.accuracy, '', original.seconds, '', '', '']];
  for (const ratio of o.ratios) {
    for (const calibrated of [false, true]) {
      const policy = calibrated ? 'auto+calibration' : 'auto';
      const base = path.join(o.out, `${policy}.r${ratio}`);
      const args = [model, '--ratio', String(ratio), '--shape', 'auto', '-o', `${base}.onnx`,
        '--report', `${base}.json`, '-q', ...(calibrated ? ['--calibration', acts] : [])];
      const r = timed(o.kfc, args);
      if (r.status !== 0) {
        rows.push([policy, 'ratio', ratio, 'failed', '', '', '', '', '', '', '', r.stderr.trim(), '']);
        continue;
      }
      const rep = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8'));
      const acc = await fashion.evaluate(`${base}.onnx`, test);
      const layers = rep.layers.map((l) => (l.compressed
        ? `${l.node_name} ${l.k1}x${l.n1}(x)${l.k2}x${l.n2} r${l.rank} e${l.relative_error.toFixed(3)}` +
          (l.calibrated ? ` data ${l.data_relative_error.toFixed(3)} (w/o ${l.weight_only_data_relative_error.toFixed(3)})` : '')
        : `${l.node_name} kept`)).join('; ');
      rows.push([policy, 'ratio', ratio, 'ok', rep.totals.layer_params_after / rep.totals.layer_params_before,
        rep.totals.param_ratio, rep.totals.file_ratio, acc.accuracy, r.seconds, acc.seconds, layers, '',
        (r.peakKb / 1024).toFixed(1)]);
      console.error(`${policy} --ratio ${ratio}: accuracy ${acc.accuracy.toFixed(4)}, ${r.seconds} s, ` +
        `${(r.peakKb / 1024).toFixed(1)} MB`);
    }
  }
  const tsv = path.join(o.out, 'results.tsv');
  fs.writeFileSync(tsv, [header, ...rows].map((r) => r.join('\t')).join('\n') + '\n');

  // 3. Markdown and the plot (merged with the three-policy sweep when it exists).
  const pct = (x) => `${(100 * x).toFixed(2)}%`;
  let md = `Fashion-MNIST MLP, --shape auto; original ${pct(original.accuracy)} on 10,000 test images; ` +
    `calibration: ${CALIBRATION_IMAGES} training images, load average ${os.loadavg()[0].toFixed(1)}\n\n` +
    `Calibration step: probe written in ${p.seconds} s; probe run in ONNX Runtime ${probeRunSeconds.toFixed(2)} s; ` +
    `activations ${(actBytes / 1048576).toFixed(1)} MB on disk\n\n` +
    '| --ratio | accuracy without | accuracy with calibration | change | time without -> with | peak RSS without -> with |\n' +
    '|---:|---:|---:|---:|---:|---:|\n';
  for (const ratio of o.ratios) {
    const a = rows.find((r) => r[0] === 'auto' && r[2] === ratio);
    const b = rows.find((r) => r[0] === 'auto+calibration' && r[2] === ratio);
    if (!a || !b || a[3] !== 'ok' || b[3] !== 'ok') continue;
    md += `| ${ratio} | ${pct(a[7])} | ${pct(b[7])} | ${((b[7] - a[7]) * 100).toFixed(2)} pt | ` +
      `${a[8]} s -> ${b[8]} s | ${a[12]} -> ${b[12]} MB |\n`;
  }
  fs.writeFileSync(path.join(o.out, 'results.md'), md);
  process.stdout.write(md);
  const sweep = path.join(ROOT, 'build', 'fashion-bench', 'results.tsv');
  let merged = tsv;
  if (fs.existsSync(sweep)) {
    merged = path.join(o.out, 'merged.tsv');
    const own = fs.readFileSync(tsv, 'utf8').split('\n').filter((l) => l.startsWith('auto+calibration'));
    const cols = fs.readFileSync(sweep, 'utf8').trimEnd().split('\n');
    fs.writeFileSync(merged, [...cols, ...own.map((l) => l.split('\t').slice(0, cols[0].split('\t').length).join('\t'))].join('\n') + '\n');
  }
  const plot = spawnSync('/usr/bin/python3', [path.join(ROOT, 'testdata', 'plot_fashion_sweep.py'), merged,
    path.join(o.out, 'sweep.png')], { encoding: 'utf8' });
  if (plot.status !== 0) throw new Error(`plot failed: ${plot.stderr}`);
}

main().catch((err) => {
  console.error(`bench_fashion_calibration.js: ${err.stack || err}`);
  process.exit(1);
});
