// SPDX-License-Identifier: Apache-2.0
'use strict';
// Minimal NumPy .npy reading and writing (format 1.0/2.0, little-endian, C order) for the
// calibration tools: float32 and float64 read (as Float32Array), int64 read (as BigInt64Array),
// float32 written.

const fs = require('node:fs');

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

function parseHeader(header, file) {
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${file}: malformed .npy header: ${header}`);
  if (fortran[1] !== 'False') throw new Error(`${file}: Fortran-order arrays are not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  return { descr: descr[1], dims };
}

// { dims, data } with data a Float32Array (for <f4/<f8) or BigInt64Array (for <i8).
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const { descr, dims } = parseHeader(buf.toString('latin1', major === 1 ? 10 : 12, start), file);
  const count = dims.reduce((a, b) => a * b, 1);
  const body = buf.subarray(start);
  const copy = (bytes) => {
    if (body.length < count * bytes) throw new Error(`${file}: ${body.length} data bytes, shape needs ${count * bytes}`);
    return new Uint8Array(body.subarray(0, count * bytes)).buffer;
  };
  if (descr === '<f4') return { dims, data: new Float32Array(copy(4)) };
  if (descr === '<f8') return { dims, data: Float32Array.from(new Float64Array(copy(8))) };
  if (descr === '<i8') return { dims, data: new BigInt64Array(copy(8)) };
  throw new Error(`${file}: dtype ${descr} is not supported (<f4, <f8 or <i8)`);
}

function writeNpy(file, dims, data) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([head, Buffer.from(header, 'latin1'),
    Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength)]));
  fs.renameSync(tmp, file);
}

module.exports = { readNpy, writeNpy };
