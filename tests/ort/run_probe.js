// SPDX-License-Identifier: Apache-2.0
'use strict';
// Runs a kfc-compress calibration probe in ONNX Runtime (onnxruntime-node) and saves the layer
// inputs it exposes, ready for `kfc-compress --calibration DIR`.
//
//   node tests/ort/run_probe.js PROBE.onnx --input NAME=FILE.npy [--input ...] --out DIR
//                               [--batch ROWS]
//
// PROBE.onnx and PROBE.calib.json come from `kfc-compress MODEL.onnx --calibration-probe
// PROBE.onnx`. Each --input gives one model input as a .npy file of the model input's dtype
// (float32, float16, float64, int64, ...: what tool/kfc-runner.js reads, with the same reader);
// all inputs are split along their first axis into batches of ROWS (default 256) and read and run
// batch by batch, so memory stays bounded. For every exposed tensor T and batch b it writes
// DIR/T.bNNNNN.npy (float32, float16 widened to float32, other types as float64, as the runner
// writes them; kfc-compress reads T.npy and T.*.npy, sorted, as one stream of rows) and copies the
// sidecar to DIR/kfc_calibration.json. Exit code 0 on success, 1 on failure, 2 on usage.

const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const { openNpy, readRows, npyBytes } = require('../../tool/kfc-runner.js');

function usage(message) {
  console.error(`run_probe.js: ${message}\nusage: node tests/ort/run_probe.js PROBE.onnx ` +
    '--input NAME=FILE.npy [--input ...] --out DIR [--batch ROWS]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { inputs: {}, batch: 256 };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--input' && i + 1 < argv.length) {
      const eq = argv[++i].indexOf('=');
      if (eq < 1) usage(`--input expects NAME=FILE.npy, got '${argv[i]}'`);
      opts.inputs[argv[i].slice(0, eq)] = argv[i].slice(eq + 1);
    } else if (a === '--out' && i + 1 < argv.length) {
      opts.out = argv[++i];
    } else if (a === '--batch' && i + 1 < argv.length) {
      opts.batch = Number(argv[++i]);
      if (!Number.isInteger(opts.batch) || opts.batch < 1) usage('--batch expects a whole number >= 1');
    } else if (!a.startsWith('--') && !opts.probe) {
      opts.probe = a;
    } else {
      usage(`unexpected argument '${a}'`);
    }
  }
  if (!opts.probe || !opts.out || Object.keys(opts.inputs).length === 0) usage('missing arguments');
  return opts;
}

function sidecarPathFor(probe) {
  return probe.endsWith('.onnx') ? `${probe.slice(0, -5)}.calib.json` : `${probe}.calib.json`;
}

function writeFileAtomic(file, bytes) {
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

async function runProbe(opts) {
  const sidecarPath = sidecarPathFor(opts.probe);
  const sidecar = JSON.parse(fs.readFileSync(sidecarPath, 'utf8'));
  const exposed = sidecar.tensors.map((t) => t.name);
  const session = await ort.InferenceSession.create(opts.probe);
  for (const name of session.inputNames) {
    if (!(name in opts.inputs)) throw new Error(`no --input for the probe's input '${name}'`);
  }
  const meta = {};
  for (const m of session.inputMetadata) meta[m.name] = m;
  const opened = {};
  try {
    let rows = -1;
    for (const [name, file] of Object.entries(opts.inputs)) {
      if (!session.inputNames.includes(name)) throw new Error(`the probe has no input '${name}'`);
      const npy = openNpy(file, `--input '${name}'`);
      opened[name] = npy;
      if (meta[name].type && npy.type !== meta[name].type) {
        throw new Error(`--input '${name}': '${file}' holds ${npy.type}; the model input is ` +
          `${meta[name].type}`);
      }
      const n = npy.dims[0];
      if (rows >= 0 && n !== rows) throw new Error(`inputs disagree on the number of rows (${rows} vs ${n})`);
      rows = n;
    }
    fs.mkdirSync(opts.out, { recursive: true });
    let batchIndex = 0;
    for (let first = 0; first < rows; first += opts.batch, ++batchIndex) {
      const count = Math.min(opts.batch, rows - first);
      const feeds = {};
      for (const name of session.inputNames) {
        const { data, dims } = readRows(opened[name], first, count);
        feeds[name] = new ort.Tensor(opened[name].type, data, dims);
      }
      const out = await session.run(feeds, exposed);
      for (const name of exposed) {
        const { bytes } = npyBytes(out[name], `tensor '${name}'`);
        writeFileAtomic(path.join(opts.out, `${name}.b${String(batchIndex).padStart(5, '0')}.npy`), bytes);
      }
    }
    fs.copyFileSync(sidecarPath, path.join(opts.out, 'kfc_calibration.json'));
    return { rows, batches: batchIndex, tensors: exposed.length };
  } finally {
    for (const npy of Object.values(opened)) fs.closeSync(npy.fd);
    await session.release();
  }
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  runProbe(opts).then((r) => {
    console.log(`run_probe.js: ${r.rows} rows in ${r.batches} batches; ${r.tensors} tensors ` +
      `written to ${opts.out}`);
  }).catch((err) => {
    console.error(`run_probe.js: error: ${err.message}`);
    process.exit(1);
  });
}

module.exports = { runProbe, sidecarPathFor };
