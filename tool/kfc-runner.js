#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
'use strict';
// kfc-runner: runs ONNX models in ONNX Runtime (onnxruntime-node) for kfc-compress and records
// the tensors it asks for as .npy files. kfc-compress starts it once per run and speaks the
// protocol in docs/runner.md over its stdin and stdout:
//   - on start, one hello line: {"protocol":1,"ok":true,"runtime":"onnxruntime-node 1.30.0"};
//   - then, for each request line on stdin (a JSON object: model, inputs, record, batch_size,
//     output_dir), exactly one response line on stdout: {"protocol":1,"id":..,"ok":true,
//     "rows":..,"batches":..,"seconds":..,"tensors":[{"tensor","stem","dtype","files"}]} or
//     {"protocol":1,"id":..,"ok":false,"error":"one line naming the object and the cause"};
//   - exit 0 when stdin ends. stderr carries diagnostics only.
// Every recorded tensor T with stem S is written batch by batch as OUTPUT_DIR/S.bNNNNN.npy
// (C order, little-endian): float32 and float16 tensors as '<f4', all other numeric tensors as
// '<f8'. Model inputs are read from .npy files batch by batch (memory stays bounded) and must
// match the model's input dtype exactly and its shape after the leading (row) axis.
//
// Its npm dependencies are locked in tool/package-lock.json: cd tool &&
// ONNXRUNTIME_NODE_INSTALL=skip npm ci. Installed, it looks for onnxruntime-node next to itself,
// then in ../lib/kfc-compress/node_modules, then in $KFC_RUNNER_NODE_MODULES.

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const PROTOCOL = 1;

function loadOrt() {
  const tried = [];
  const candidates = ['onnxruntime-node',
    path.join(__dirname, '..', 'lib', 'kfc-compress', 'node_modules', 'onnxruntime-node')];
  if (process.env.KFC_RUNNER_NODE_MODULES) {
    candidates.push(path.join(process.env.KFC_RUNNER_NODE_MODULES, 'onnxruntime-node'));
  }
  for (const c of candidates) {
    try {
      const ort = require(c);
      let version = '';
      try {
        version = require(path.join(path.dirname(require.resolve(c)), '..', 'package.json')).version;
      } catch (e) {
        version = ort.env && ort.env.versions ? ort.env.versions.node || '' : '';
      }
      return { ort, version };
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') {
        throw new Error(`onnxruntime-node failed to load: ${firstLine(e.message)}`);
      }
      tried.push(c);
    }
  }
  // Where the locked package.json is: next to the script (source tree) or in the installed
  // lib/kfc-compress folder.
  const installed = path.join(__dirname, '..', 'lib', 'kfc-compress');
  const where = fs.existsSync(path.join(__dirname, 'package-lock.json')) ||
    !fs.existsSync(path.join(installed, 'package-lock.json')) ? __dirname : path.resolve(installed);
  throw new Error(`onnxruntime-node is not installed (run 'ONNXRUNTIME_NODE_INSTALL=skip npm ci' ` +
    `in ${where}, or set KFC_RUNNER_NODE_MODULES to a node_modules folder holding it)`);
}

function firstLine(message) {
  const lines = String(message).split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  return lines.length > 0 ? lines[0] : String(message);
}

// --- .npy -----------------------------------------------------------------------------------

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

// NumPy descr -> [ONNX Runtime tensor type, bytes per element, typed array].
const DESCR = {
  '<f4': ['float32', 4, Float32Array],
  '<f8': ['float64', 8, Float64Array],
  '<f2': ['float16', 2, Uint16Array],
  '<i8': ['int64', 8, BigInt64Array],
  '<u8': ['uint64', 8, BigUint64Array],
  '<i4': ['int32', 4, Int32Array],
  '<u4': ['uint32', 4, Uint32Array],
  '<i2': ['int16', 2, Int16Array],
  '<u2': ['uint16', 2, Uint16Array],
  '|i1': ['int8', 1, Int8Array],
  '|u1': ['uint8', 1, Uint8Array],
  '|b1': ['bool', 1, Uint8Array],
};
const ALIASES = { '<i1': '|i1', '<u1': '|u1', '<b1': '|b1', '|f4': '<f4' };

// Opens a .npy file for reading rows: { fd, type, itemSize, dims, dataStart }.
function openNpy(file, what) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`${what}: cannot open '${file}': ${e.code === 'ENOENT' ? 'no such file' : e.code}`);
  }
  const size = fs.fstatSync(fd).size;
  const head = Buffer.alloc(Math.min(size, 65536 + 12));
  fs.readSync(fd, head, 0, head.length, 0);
  if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC)) {
    fs.closeSync(fd);
    throw new Error(`${what}: '${file}' is not a .npy file`);
  }
  const major = head[6];
  const headerLen = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const dataStart = headerStart + headerLen;
  const header = head.toString('latin1', headerStart, Math.min(dataStart, head.length));
  const descrMatch = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descrMatch || !fortran || !shape) {
    fs.closeSync(fd);
    throw new Error(`${what}: '${file}' has a malformed .npy header`);
  }
  if (fortran[1] !== 'False') {
    fs.closeSync(fd);
    throw new Error(`${what}: '${file}' is in Fortran order (save it in C order)`);
  }
  const descr = ALIASES[descrMatch[1]] || descrMatch[1];
  if (!(descr in DESCR)) {
    fs.closeSync(fd);
    throw new Error(`${what}: '${file}' has dtype '${descrMatch[1]}', which the runner cannot feed`);
  }
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const [type, itemSize, Typed] = DESCR[descr];
  const count = dims.reduce((a, b) => a * b, 1);
  if (size - dataStart < count * itemSize) {
    fs.closeSync(fd);
    throw new Error(`${what}: '${file}' is truncated (${size - dataStart} data bytes, its shape ` +
      `[${dims.join(', ')}] needs ${count * itemSize})`);
  }
  return { fd, file, type, itemSize, Typed, dims, dataStart };
}

function readRows(npy, first, count) {
  const rowElems = npy.dims.slice(1).reduce((a, b) => a * b, 1);
  const bytes = rowElems * count * npy.itemSize;
  const buf = new ArrayBuffer(bytes);
  const view = new Uint8Array(buf);
  let done = 0;
  while (done < bytes) {
    const n = fs.readSync(npy.fd, view, done, bytes - done,
      npy.dataStart + first * rowElems * npy.itemSize + done);
    if (n <= 0) throw new Error(`input: '${npy.file}' ended early`);
    done += n;
  }
  const data = npy.type === 'bool' ? Uint8Array.from(view, (b) => (b !== 0 ? 1 : 0)) : new npy.Typed(buf);
  checkFinite(npy, data, first, rowElems);
  return { data, dims: [count, ...npy.dims.slice(1)] };
}

// A NaN or infinity in the data would surface later as a non-finite activation in a temporary
// file the user never sees: name the input file and row instead.
function checkFinite(npy, data, first, rowElems) {
  let bad = -1;
  if (npy.type === 'float32' || npy.type === 'float64') {
    for (let i = 0; i < data.length && bad < 0; ++i) if (!Number.isFinite(data[i])) bad = i;
  } else if (npy.type === 'float16') {
    for (let i = 0; i < data.length && bad < 0; ++i) if ((data[i] & 0x7c00) === 0x7c00) bad = i;
  }
  if (bad < 0) return;
  const value = npy.type === 'float16' ? float16ToFloat32(data[bad]) : data[bad];
  throw new Error(`input: '${npy.file}' has ${Number.isNaN(value) ? 'a NaN' : 'an infinity'} at ` +
    `row ${first + Math.floor(bad / rowElems)} (calibration data must be finite)`);
}

function float16ToFloat32(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// Recorded tensors: float32 (and float16, widened) as '<f4', every other numeric type as '<f8'.
function npyBytes(tensor, what) {
  let descr;
  let body;
  const { type, data } = tensor;
  if (type === 'float32') {
    descr = '<f4';
    body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  } else if (type === 'float16') {
    descr = '<f4';
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; ++i) out[i] = float16ToFloat32(data[i]);
    body = Buffer.from(out.buffer);
  } else if (type === 'string') {
    throw new Error(`${what} is a string tensor: only numeric tensors can be recorded`);
  } else {
    descr = '<f8';
    const out = new Float64Array(data.length);
    for (let i = 0; i < data.length; ++i) out[i] = Number(data[i]);
    body = Buffer.from(out.buffer);
  }
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return { descr, bytes: Buffer.concat([head, Buffer.from(header, 'latin1'), body]) };
}

// --- one request ----------------------------------------------------------------------------

function shapeText(dims) {
  return `[${dims.map((d) => (typeof d === 'number' && d >= 0 ? String(d) : String(d || '?'))).join(', ')}]`;
}

function checkRequest(req) {
  if (req.protocol !== undefined && req.protocol !== PROTOCOL) {
    throw new Error(`request: protocol ${req.protocol} is not supported (this runner speaks ${PROTOCOL})`);
  }
  if (typeof req.model !== 'string' || req.model === '') throw new Error('request: no model');
  if (typeof req.output_dir !== 'string' || req.output_dir === '') throw new Error('request: no output_dir');
  if (!Array.isArray(req.inputs) || req.inputs.length === 0) throw new Error('request: no inputs');
  if (!Array.isArray(req.record) || req.record.length === 0) throw new Error('request: nothing to record');
  const batch = req.batch_size === undefined ? 256 : Number(req.batch_size);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`request: batch_size ${req.batch_size} is not a whole number >= 1`);
  const stems = new Set();
  for (const r of req.record) {
    if (typeof r.tensor !== 'string' || r.tensor === '') throw new Error('request: a record entry has no tensor');
    const stem = r.stem || r.tensor;
    if (stem.includes('/') || stem.includes('\\') || stem === '.' || stem === '..') {
      throw new Error(`request: stem '${stem}' of tensor '${r.tensor}' is not a plain file name`);
    }
    if (stems.has(stem)) throw new Error(`request: stem '${stem}' is used twice`);
    stems.add(stem);
  }
  return batch;
}

async function runRequest(ort, req) {
  const start = process.hrtime.bigint();
  let batch = checkRequest(req);
  let session;
  try {
    session = await ort.InferenceSession.create(req.model);
  } catch (e) {
    throw new Error(`model '${req.model}': ONNX Runtime cannot load it: ${firstLine(e.message)}`);
  }
  const opened = [];
  try {
    const meta = {};
    for (const m of session.inputMetadata) meta[m.name] = m;
    const given = new Set();
    for (const input of req.inputs) {
      if (!(input.name in meta)) {
        throw new Error(`input '${input.name}': the model has no such input (its inputs: ` +
          `${session.inputNames.map((n) => `'${n}'`).join(', ')})`);
      }
      if (given.has(input.name)) throw new Error(`input '${input.name}': given twice`);
      given.add(input.name);
    }
    for (const name of session.inputNames) {
      if (!given.has(name)) throw new Error(`input '${name}': no data given for this model input`);
    }
    const outputs = new Set(session.outputNames);
    for (const r of req.record) {
      if (!outputs.has(r.tensor)) throw new Error(`tensor '${r.tensor}': not an output of model '${req.model}'`);
    }
    let rows = -1;
    let rowsFrom = '';
    for (const input of req.inputs) {
      const what = `input '${input.name}'`;
      const npy = openNpy(input.file, what);
      opened.push([input.name, npy]);
      const m = meta[input.name];
      if (m.isTensor === false) throw new Error(`${what}: the model input is not a tensor`);
      if (m.type && npy.type !== m.type) {
        throw new Error(`${what}: '${input.file}' holds ${npy.type}; the model input is ${m.type} (convert the array, e.g. numpy's ` +
          `x.astype(np.${m.type}))`);
      }
      const want = m.shape || [];
      if (npy.dims.length === 0) throw new Error(`${what}: '${input.file}' is a scalar; rows go along its first axis`);
      if (want.length > 0 && npy.dims.length !== want.length) {
        throw new Error(`${what}: '${input.file}' has shape ${shapeText(npy.dims)}; the model input ` +
          `is ${shapeText(want)} (rows go along the first axis)`);
      }
      for (let d = 1; d < want.length; ++d) {
        if (typeof want[d] === 'number' && want[d] >= 0 && want[d] !== npy.dims[d]) {
          throw new Error(`${what}: '${input.file}' has shape ${shapeText(npy.dims)}; the model ` +
            `input is ${shapeText(want)}`);
        }
      }
      if (rows >= 0 && npy.dims[0] !== rows) {
        throw new Error(`${what}: '${input.file}' has ${npy.dims[0]} rows, ${rowsFrom} has ${rows}`);
      }
      rows = npy.dims[0];
      rowsFrom = `'${input.file}'`;
      // A fixed leading dim is the batch size the model accepts.
      if (want.length > 0 && typeof want[0] === 'number' && want[0] > 0) {
        if (rows % want[0] !== 0) {
          throw new Error(`${what}: the model takes batches of exactly ${want[0]} rows; ` +
            `'${input.file}' has ${rows}`);
        }
        batch = want[0];
      }
    }
    if (rows < 1) throw new Error(`inputs: no rows in ${rowsFrom}`);
    fs.mkdirSync(req.output_dir, { recursive: true });
    const recorded = req.record.map((r) => ({ tensor: r.tensor, stem: r.stem || r.tensor, dtype: '', files: [] }));
    const fetches = req.record.map((r) => r.tensor);
    let index = 0;
    for (let first = 0; first < rows; first += batch, ++index) {
      const count = Math.min(batch, rows - first);
      const feeds = {};
      for (const [name, npy] of opened) {
        const { data, dims } = readRows(npy, first, count);
        feeds[name] = new ort.Tensor(npy.type, data, dims);
      }
      let out;
      try {
        out = await session.run(feeds, fetches);
      } catch (e) {
        throw new Error(`model '${req.model}': ONNX Runtime failed on rows ${first}-${first + count - 1}: ` +
          firstLine(e.message));
      }
      for (const r of recorded) {
        const { descr, bytes } = npyBytes(out[r.tensor], `tensor '${r.tensor}'`);
        r.dtype = descr === '<f4' ? 'float32' : 'float64';
        const name = `${r.stem}.b${String(index).padStart(5, '0')}.npy`;
        fs.writeFileSync(path.join(req.output_dir, name), bytes);
        r.files.push(name);
      }
    }
    return {
      protocol: PROTOCOL, id: req.id || 0, ok: true, rows, batches: index,
      seconds: Number(process.hrtime.bigint() - start) / 1e9, tensors: recorded,
    };
  } finally {
    for (const [, npy] of opened) fs.closeSync(npy.fd);
    await session.release();
  }
}

// --- the loop -------------------------------------------------------------------------------

function send(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function main() {
  let loaded;
  try {
    loaded = loadOrt();
  } catch (e) {
    console.error(`kfc-runner: error: ${e.message}`);
    process.exit(1);
  }
  const { ort, version } = loaded;
  send({ protocol: PROTOCOL, ok: true, runtime: `onnxruntime-node ${version}`.trim() });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      send({ protocol: PROTOCOL, id: 0, ok: false, error: `request: not JSON: ${firstLine(e.message)}` });
      continue;
    }
    try {
      send(await runRequest(ort, req));
    } catch (e) {
      send({ protocol: PROTOCOL, id: req.id || 0, ok: false, error: firstLine(e.message) });
    }
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`kfc-runner: error: ${firstLine(e.message)}`);
    process.exit(1);
  });
}

// For tests/ort/run_probe.js: the same .npy reading (every dtype above) and writing.
module.exports = { openNpy, readRows, npyBytes };
