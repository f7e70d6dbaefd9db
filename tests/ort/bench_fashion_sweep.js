// SPDX-License-Identifier: Apache-2.0
'use strict';
// Accuracy against parameter ratio for testdata/fashion_mlp.onnx under three shape policies.
// Not a test (node --test only runs *.test.js): run it by hand after building kfc-compress.
//
//   node tests/ort/bench_fashion_sweep.js [options]
//     --kfc PATH          the kfc-compress binary (default build/kfc-compress)
//     --model PATH        the model (default testdata/fashion_mlp.onnx)
//     --out DIR           results folder (default build/fashion-bench)
//     --ratios LIST       comma-separated targets for --ratio (default 0.5,0.3,0.25,0.2,0.1,0.05)
//     --policies LIST     --shape values (default balanced,lowrank,auto; with --ranks: balanced)
//     --ranks [LIST]      fallback: sweep -r (default 4,8,16,32,64) instead of --ratio
//     --no-plot           do not call testdata/plot_fashion_sweep.py
//
// For each policy and target it runs (cwd = repository root):
//   KFC MODEL --ratio F --shape POLICY -o OUT.onnx --report OUT.json --json      (ratio mode)
//   KFC MODEL -r R --shape POLICY -o OUT.onnx --report OUT.json --json           (--ranks mode)
// reads totals.layer_params_after / totals.layer_params_before (the achieved FC parameter ratio)
// and totals.param_ratio from OUT.json, and measures OUT.onnx's test accuracy in ONNX Runtime
// (eval_fashion.js). A run that fails (exit code, missing report field, ORT error) is recorded
// with its error and the sweep goes on.
//
// Writes to DIR: results.tsv (one row per run, plus an `original` row), results.md (Markdown
// table), sweep.png (via testdata/plot_fashion_sweep.py), and per run OUT.onnx, OUT.json, OUT.log.
// Exit code: 0 every run and the plot succeeded, 1 something failed (outputs are still written),
// 2 usage error.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./support');
const fashion = require('./eval_fashion');

const ROOT = h.sourceDir();
const PYTHON = '/usr/bin/python3'; // Debian's, with matplotlib (the pyenv one on PATH lacks it)

function parseArgs(argv) {
  const opts = {
    kfc: path.join(ROOT, 'build', 'kfc-compress'),
    model: h.testdataPath('fashion_mlp.onnx'),
    out: path.join(ROOT, 'build', 'fashion-bench'),
    ratios: [0.5, 0.3, 0.25, 0.2, 0.1, 0.05],
    ranks: null,
    policies: null,
    plot: true,
  };
  const list = (text, flag) => {
    const values = String(text).split(',').filter((s) => s !== '');
    if (values.length === 0) throw new Error(`${flag} needs a comma-separated list`);
    return values;
  };
  const numbers = (text, flag) => list(text, flag).map((s) => {
    const v = Number(s);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag}: '${s}' is not a positive number`);
    return v;
  });
  for (let i = 0; i < argv.length; ++i) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--kfc') opts.kfc = path.resolve(value());
    else if (flag === '--model') opts.model = path.resolve(value());
    else if (flag === '--out') opts.out = path.resolve(value());
    else if (flag === '--ratios') opts.ratios = numbers(value(), flag);
    else if (flag === '--policies') opts.policies = list(value(), flag);
    else if (flag === '--no-plot') opts.plot = false;
    else if (flag === '--ranks') {
      const next = argv[i + 1];
      opts.ranks = next !== undefined && !next.startsWith('--')
        ? numbers(argv[++i], flag) : [4, 8, 16, 32, 64];
    } else throw new Error(`unknown option '${flag}'`);
  }
  if (!opts.policies) opts.policies = opts.ranks ? ['balanced'] : ['balanced', 'lowrank', 'auto'];
  return opts;
}

// What the sweep reads of a report: ratios and a short description of each layer's choice.
function summarizeReport(report) {
  const t = report && report.totals;
  if (!t) throw new Error('the report has no totals');
  for (const key of ['layer_params_before', 'layer_params_after', 'param_ratio']) {
    if (typeof t[key] !== 'number') throw new Error(`the report has no numeric totals.${key}`);
  }
  const layers = (report.layers || []).map((l) => (l.compressed
    ? `${l.node_name} ${l.k1}x${l.n1}(x)${l.k2}x${l.n2} r${l.rank} e${l.relative_error.toFixed(3)}`
    : `${l.node_name} kept`));
  return {
    fc_ratio: t.layer_params_after / t.layer_params_before,
    param_ratio: t.param_ratio,
    file_ratio: t.file_ratio,
    layers: layers.join('; '),
  };
}

// One kfc-compress run plus its evaluation; never throws: failures land in row.error.
async function runOne(opts, data, policy, mode, target) {
  const base = path.join(opts.out, `${policy}_${mode}${target}`);
  const files = { onnx: `${base}.onnx`, json: `${base}.json`, log: `${base}.log` };
  for (const f of Object.values(files)) fs.rmSync(f, { force: true });
  const setting = mode === 'ratio' ? ['--ratio', String(target)] : ['-r', String(target)];
  const args = [opts.model, ...setting, '--shape', policy, '-o', files.onnx,
    '--report', files.json, '--json'];
  const row = { policy, mode, target, status: 'failed' };
  const start = process.hrtime.bigint();
  const result = spawnSync(opts.kfc, args, { cwd: ROOT, encoding: 'utf8', timeout: 1800000,
    maxBuffer: 64 * 1024 * 1024 });
  row.compress_s = Number(process.hrtime.bigint() - start) / 1e9;
  fs.writeFileSync(files.log, `$ ${opts.kfc} ${args.join(' ')}\nexit code: ${result.status}` +
    `${result.signal ? ` (signal ${result.signal})` : ''}\n--- stdout\n${result.stdout || ''}` +
    `--- stderr\n${result.stderr || ''}${result.error ? `\n${result.error.message}` : ''}\n`);
  try {
    if (result.error || result.status !== 0) {
      const lines = (result.stderr || '').trim().split('\n');
      const reason = lines.filter((l) => /error/i.test(l)).pop() || lines.pop();
      throw new Error(`kfc-compress ${result.error ? result.error.message
        : `exited ${result.status ?? result.signal}`}: ${reason}`);
    }
    if (!fs.existsSync(files.json)) throw new Error(`kfc-compress exited 0 but wrote no ${files.json}`);
    Object.assign(row, summarizeReport(JSON.parse(fs.readFileSync(files.json, 'utf8'))));
    const evaluation = await fashion.evaluate(files.onnx, data);
    row.accuracy = evaluation.accuracy;
    row.eval_s = evaluation.seconds;
    row.status = 'ok';
  } catch (err) {
    row.error = err.message.replace(/\s+/g, ' ');
  }
  return row;
}

const COLUMNS = ['policy', 'mode', 'target', 'status', 'fc_ratio', 'param_ratio', 'file_ratio',
  'accuracy', 'compress_s', 'eval_s', 'layers', 'error'];

function writeTsv(file, rows) {
  const cell = (row, col) => {
    const v = row[col];
    if (v === undefined || v === null) return '';
    if (typeof v === 'number') return col.endsWith('_s') ? v.toFixed(2) : String(Number(v.toFixed(6)));
    return String(v).replace(/[\t\n]/g, ' ');
  };
  const lines = [COLUMNS.join('\t'), ...rows.map((r) => COLUMNS.map((c) => cell(r, c)).join('\t'))];
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

function markdown(opts, original, rows) {
  const flag = opts.ranks ? '-r' : '--ratio';
  const fixed = (v, d) => (typeof v === 'number' ? v.toFixed(d) : '-');
  const out = [
    `Model \`${path.relative(ROOT, opts.model)}\`: ONNX Runtime test accuracy ` +
      `${fixed(original.accuracy, 4)} on ${original.total} Fashion-MNIST test images.`,
    '',
    `| policy | ${flag} | FC params after/before | model params after/before | accuracy | ` +
      'change | layers (A shape (x) B shape, rank, rel. error) |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const change = typeof r.accuracy === 'number' && typeof original.accuracy === 'number'
      ? `${r.accuracy >= original.accuracy ? '+' : ''}${(100 * (r.accuracy - original.accuracy)).toFixed(2)} pt`
      : '-';
    const detail = r.status === 'ok' ? r.layers : `FAILED: ${r.error}`;
    out.push(`| ${r.policy} | ${r.target} | ${fixed(r.fc_ratio, 4)} | ${fixed(r.param_ratio, 4)} | ` +
      `${fixed(r.accuracy, 4)} | ${change} | ${detail.replace(/\|/g, '\\|')} |`);
  }
  return `${out.join('\n')}\n`;
}

async function main() {
  const opts = h.parseArgsOrExit('bench_fashion_sweep', 'node tests/ort/bench_fashion_sweep.js ' +
    '[--kfc PATH] [--model PATH] [--out DIR] [--ratios LIST] [--policies LIST] [--ranks [LIST]] ' +
    '[--no-plot]', parseArgs);
  fs.mkdirSync(opts.out, { recursive: true });
  const data = fashion.loadFashion('t10k');

  // The original must score what sklearn scored (stored in its metadata) in ONNX Runtime.
  const original = await fashion.evaluate(opts.model, data);
  const stored = fashion.checkMetadata(original);
  console.log(`original ${path.relative(ROOT, opts.model)}: ORT accuracy ` +
    `${original.accuracy.toFixed(4)} (sklearn ${stored}), ${original.seconds.toFixed(2)} s`);

  const mode = opts.ranks ? 'r' : 'ratio';
  const rows = [];
  for (const policy of opts.policies) {
    for (const target of opts.ranks || opts.ratios) {
      const row = await runOne(opts, data, policy, mode, target);
      rows.push(row);
      console.log(`${policy}\t${mode === 'r' ? '-r' : '--ratio'} ${target}\t` + (row.status === 'ok'
        ? `fc ratio ${row.fc_ratio.toFixed(4)}\tmodel ratio ${row.param_ratio.toFixed(4)}\t` +
          `accuracy ${row.accuracy.toFixed(4)}\t(${row.compress_s.toFixed(1)} s)\t${row.layers}`
        : `FAILED: ${row.error}`));
    }
  }

  const tsv = path.join(opts.out, 'results.tsv');
  writeTsv(tsv, [{ policy: 'original', mode, target: '', status: 'ok', fc_ratio: 1, param_ratio: 1,
    file_ratio: 1, accuracy: original.accuracy, eval_s: original.seconds }, ...rows]);
  const md = path.join(opts.out, 'results.md');
  fs.writeFileSync(md, markdown(opts, original, rows));
  console.log(`\nwrote ${tsv} and ${md}\n`);
  process.stdout.write(fs.readFileSync(md, 'utf8'));

  let plotOk = true;
  if (opts.plot) {
    const png = path.join(opts.out, 'sweep.png');
    const plot = spawnSync(PYTHON, [path.join(ROOT, 'testdata', 'plot_fashion_sweep.py'), tsv, png],
      { cwd: ROOT, encoding: 'utf8' });
    plotOk = plot.status === 0;
    process.stdout.write(plot.stdout || '');
    if (!plotOk) console.error(`plot failed (exit ${plot.status}): ${plot.stderr || plot.error}`);
  }
  const failed = rows.filter((r) => r.status !== 'ok').length;
  if (failed) console.error(`${failed} of ${rows.length} runs failed: see the *.log files in ${opts.out}`);
  process.exitCode = failed || !plotOk ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
