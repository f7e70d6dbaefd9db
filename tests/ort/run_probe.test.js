// SPDX-License-Identifier: Apache-2.0
'use strict';
// tests/ort/run_probe.js feeds every input dtype tool/kfc-runner.js feeds (it shares the runner's
// .npy reader and writer): float64 and float16 models are recorded batch by batch, the recordings
// equal what ONNX Runtime gives on the whole input at once, --calibration compresses with them,
// and a file of another dtype than the model input is one clear error.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const h = require('./support');
const { runProbe } = require('./run_probe');

const ROWS = 12;
const BATCH = 5;  // 12 rows: batches of 5, 5 and 2

const DESCR = { float32: ['<f4', 4], float64: ['<f8', 8], float16: ['<f2', 2] };

function writeTensorNpy(file, tensor) {
  const [descr] = DESCR[tensor.type];
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  head.writeUInt16LE(header.length, 8);
  const d = tensor.data;
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'),
    Buffer.from(d.buffer, d.byteOffset, d.byteLength)]));
}

// { dims, data: Float64Array } of a '<f4' or '<f8' .npy file.
function readFloatNpy(file) {
  const buf = fs.readFileSync(file);
  const len = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + len);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const dims = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim())
    .filter((s) => s.length > 0).map(Number);
  const body = new Uint8Array(buf.subarray(10 + len)).buffer;
  const data = descr === '<f4' ? new Float32Array(body) : new Float64Array(body);
  return { descr, dims, data: Float64Array.from(data) };
}

const CASES = [
  { model: 'gemm_fp64.onnx', type: 'float64', rowShape: [64], recorded: '<f8' },
  { model: 'matmul_fp64.onnx', type: 'float64', rowShape: [3, 96], recorded: '<f8' },
  { model: 'gemm_fp16.onnx', type: 'float16', rowShape: [64], recorded: '<f4' },
  { model: 'matmul_fp16.onnx', type: 'float16', rowShape: [3, 96], recorded: '<f4' },
];

for (const c of CASES) {
  test(`run_probe.js records ${c.model} from a ${c.type} .npy`, async () => {
    const env = h.requireHarnessEnv(path.join('run_probe', c.model));
    const model = h.testdataPath('synthetic', c.model);
    const probe = path.join(env.workDir, 'probe.onnx');
    const out = path.join(env.workDir, 'calib');
    fs.rmSync(out, { recursive: true, force: true });
    const p = h.run(env.compress, [model, '--calibration-probe', probe]);
    assert.equal(p.status, 0, h.describeRun(env.compress, [model, '--calibration-probe', probe], p));

    const input = h.randomFeeds(h.seedFromString(c.model), { x: [ROWS, ...c.rowShape] }, { x: c.type }).x;
    const file = path.join(env.workDir, `x.${c.type}.npy`);
    writeTensorNpy(file, input);
    const r = await runProbe({ probe, inputs: { x: file }, out, batch: BATCH });
    assert.deepEqual(r, { rows: ROWS, batches: 3, tensors: r.tensors });
    assert.ok(r.tensors >= 1);

    // The recordings, batch after batch, equal one run of the probe on all rows.
    const session = await h.createSession(probe);
    const whole = await h.runSession(session, { x: input }, c.model);
    await session.release();
    const sidecar = JSON.parse(fs.readFileSync(path.join(out, 'kfc_calibration.json'), 'utf8'));
    for (const t of sidecar.tensors) {
      const parts = [0, 1, 2].map((b) => readFloatNpy(path.join(out, `${t.name}.b0000${b}.npy`)));
      for (const part of parts) assert.equal(part.descr, c.recorded, t.name);
      assert.deepEqual(parts.map((x) => x.dims[0]), [5, 5, 2], t.name);
      const got = parts.flatMap((x) => Array.from(x.data));
      const want = Array.from(whole[t.name].data, Number);
      assert.equal(got.length, want.length, t.name);
      for (let i = 0; i < want.length; ++i) {
        assert.ok(Math.abs(got[i] - want[i]) <= 1e-6 * Math.max(1, Math.abs(want[i])),
          `${t.name}[${i}]: recorded ${got[i]}, ORT ${want[i]}`);
      }
    }

    // --calibration compresses with them.
    const compressed = path.join(env.workDir, 'out.onnx');
    const args = [model, '--calibration', out, '-r', '2', '--node-cost', '0', '-o', compressed,
      '--json', '-q'];
    const k = h.run(env.compress, args);
    assert.equal(k.status, 0, h.describeRun(env.compress, args, k));
    const report = JSON.parse(k.stdout);
    assert.equal(report.calibration, out);
    assert.ok(report.layers.some((l) => l.compressed), k.stdout);

    // A float32 file for this model: one clear error naming both dtypes.
    const wrong = path.join(env.workDir, 'x.float32.npy');
    writeTensorNpy(wrong, h.randomFeeds(1, { x: [ROWS, ...c.rowShape] }).x);
    await assert.rejects(runProbe({ probe, inputs: { x: wrong }, out, batch: BATCH }),
      new RegExp(`--input 'x': '.*x\\.float32\\.npy' holds float32; the model input is ${c.type}`));
  });
}
