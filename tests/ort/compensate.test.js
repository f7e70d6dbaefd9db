// SPDX-License-Identifier: Apache-2.0
'use strict';
// Error compensation (--compensate, docs/compensation.md): on the 3-layer Fashion MLP with
// calibration data, the stages and their refits are reported, the final output error on the
// calibration rows is lower than with calibration alone, the written model runs in ONNX Runtime
// and gives the error the report states; --compensate without --calibration-data is a usage error.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { writeNpy } = require('./npy');

const ROWS = 600;
const FASHION = h.testdataPath('fashion_mlp.onnx');

function kfc(env, args) {
  const r = spawnSync(env.compress, args, {
    encoding: 'utf8', timeout: 300000, maxBuffer: 64 << 20, env: { ...process.env, KFC_RUNNER: '' },
  });
  if (r.error) throw new Error(`could not run kfc-compress: ${r.error.message}`);
  return r;
}

function describe(args, r) {
  return `kfc-compress ${args.join(' ')}\nexit ${r.status}\nstderr:\n${r.stderr}`;
}

test('--compensate lowers the output error of calibration alone, and the model runs in ORT', async (t) => {
  const env = h.requireHarnessEnv('compensate');
  const dir = path.join(env.workDir, 'fashion');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  // Fashion-like pixels: seeded, half of them 0.
  const rng = h.mulberry32(h.seedFromString('compensate rows'));
  const x = new Float32Array(ROWS * 784);
  for (let i = 0; i < x.length; ++i) x[i] = rng() < 0.5 ? 0 : rng();
  const file = path.join(dir, 'calib.npy');
  writeNpy(file, [ROWS, 784], x);

  const mode = ['--ratio', '0.1', '--shape', 'lowrank', '--min-params', '0', '--node-cost', '0',
    '--calibration-data', file];
  const plainOut = path.join(dir, 'plain.onnx');
  const compOut = path.join(dir, 'compensated.onnx');
  const plainArgs = [FASHION, ...mode, '-o', plainOut, '--json'];
  const plain = kfc(env, plainArgs);
  assert.equal(plain.status, 0, describe(plainArgs, plain));
  const compArgs = [FASHION, ...mode, '--compensate', '-o', compOut, '--json'];
  const comp = kfc(env, compArgs);
  assert.equal(comp.status, 0, describe(compArgs, comp));
  const rp = JSON.parse(plain.stdout);
  const rc = JSON.parse(comp.stdout);
  assert.equal(rp.compensation, undefined, 'a compensation summary without --compensate');

  // Stages: the three layers in a chain, one stage each; two runner passes (stages 2 and 3).
  const layers = rc.layers.filter((l) => l.compressed);
  assert.equal(layers.length, 3);
  assert.deepEqual(layers.map((l) => l.compensation.stage), [1, 2, 3]);
  assert.equal(layers[0].compensation.compensated, false);
  assert.equal(rc.compensation.stages, 3);
  assert.equal(rc.compensation.runner_passes, 2);
  assert.match(comp.stderr, /runner: compensation pass 2 recorded 1 activations/);
  for (const l of layers.slice(1)) {
    const c = l.compensation;
    assert.equal(c.compensated, true, l.node_name);
    assert.ok(c.compensated_output_error > 0, `${l.node_name}: ${JSON.stringify(c)}`);
    assert.ok(c.compensated_output_error < c.uncompensated_output_error,
      `${l.node_name}: ${c.compensated_output_error} >= ${c.uncompensated_output_error}`);
    t.diagnostic(`${l.node_name} (stage ${c.stage}): output error on its stage's inputs ` +
      `${c.uncompensated_output_error} -> ${c.compensated_output_error}`);
  }
  // Shapes and ranks as decided without compensation.
  assert.deepEqual(layers.map((l) => [l.k1, l.n1, l.k2, l.n2, l.rank]),
    rp.layers.filter((l) => l.compressed).map((l) => [l.k1, l.n1, l.k2, l.n2, l.rank]));

  // The final output error, measured by the runner, is lower.
  const ep = rp.output_errors[0].relative_error;
  const ec = rc.output_errors[0].relative_error;
  t.diagnostic(`--ratio 0.1 lowrank: model output error ${ep} calibrated, ${ec} compensated`);
  assert.ok(ec < ep, `compensated ${ec} is not below calibrated ${ep}`);

  // The written model runs in ONNX Runtime and gives the error the report states.
  const feeds = { input: new h.ort.Tensor('float32', x, [ROWS, 784]) };
  const y = (await h.runSession(await h.createSession(FASHION), feeds, 'original')).probabilities.data;
  const yc = (await h.runSession(await h.createSession(compOut), feeds, 'compensated')).probabilities.data;
  const rel = h.relativeError(yc, y);
  assert.ok(Math.abs(rel - ec) <= 1e-3 * ec, `ORT ${rel}, reported ${ec}`);

  // Deterministic: the same bytes again.
  const again = path.join(dir, 'again.onnx');
  const r = kfc(env, [FASHION, ...mode, '--compensate', '-o', again, '-q']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.readFileSync(again).equals(fs.readFileSync(compOut)), 'not deterministic');
});

test('--compensate without --calibration-data is a usage error', () => {
  const env = h.requireHarnessEnv('compensate');
  for (const extra of [[], ['--calibration', env.workDir]]) {
    const args = [FASHION, '--ratio', '0.25', '--compensate', ...extra, '--dry-run'];
    const r = kfc(env, args);
    assert.equal(r.status, 2, describe(args, r));
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    assert.match(lines[0], /^kfc-compress: error: --compensate needs --calibration-data: it runs the partly compressed model/);
  }
});
