// SPDX-License-Identifier: Apache-2.0
'use strict';
// What the run-time form of the Reshape targets costs in ONNX Runtime (onnxruntime-node): one
// MatMul layer compressed twice, once with its input rank known (constant Reshape targets) and once
// unknown (Shape [-> Slice] -> Concat feeding the last Reshape, the first two flattening the leading
// dims). Not a test and it asserts nothing: run it by hand after building kfc-compress.
//
//   node tests/ort/bench_unknown_rank.js [--kfc PATH] [--out DIR] [--k K] [--n N] [--rank R]
//                                        [--opset O] [--runs N]
//
// Both models start with x1 = Reshape(x, s): s is a constant [0, 0, K] in the static model (shape
// inference then knows x1's rank) and a graph input fed [B, T, K] in the other (it does not).
// Sessions: one intra-op thread, sequential. The two models alternate run by run; the table gives
// the median wall time of each and their ratio.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./support');

const ROOT = h.sourceDir();
const PYTHON = '/usr/bin/python3';

const SCRIPT = `
import sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
path, k, n, opset, static = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == '1'
rng = np.random.default_rng(5)
W = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
inits = [numpy_helper.from_array(W, 'W')]
inputs = [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['B', 'T', k])]
if static:
    inits.append(numpy_helper.from_array(np.array([0, 0, k], np.int64), 's'))
else:
    inputs.append(helper.make_tensor_value_info('s', TensorProto.INT64, [3]))
g = helper.make_graph([helper.make_node('Reshape', ['x', 's'], ['x1']),
                       helper.make_node('MatMul', ['x1', 'W'], ['y'], name='fc')], 'layer',
    inputs, [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['B', 'T', n])], initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)]); m.ir_version = 8
onnx.save(m, path)`;

function parseArgs(argv) {
  const o = { kfc: path.join(ROOT, 'build', 'kfc-compress'), out: path.join(ROOT, 'build',
    'unknown-rank-bench'), k: 1024, n: 1024, rank: 4, opset: 13, runs: 200 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in o) || i + 1 >= argv.length) {
      console.error(`usage: node tests/ort/bench_unknown_rank.js [--kfc PATH] [--out DIR] ` +
        `[--k K] [--n N] [--rank R] [--opset O] [--runs N]`);
      process.exit(2);
    }
    o[key] = typeof o[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  const models = {};
  for (const [name, flag] of [['static', '1'], ['runtime', '0']]) {
    const src = path.join(o.out, `${name}.onnx`);
    const out = path.join(o.out, `${name}.kfc.onnx`);
    let r = spawnSync(PYTHON, ['-c', SCRIPT, src, String(o.k), String(o.n), String(o.opset), flag],
      { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    r = spawnSync(o.kfc, [src, '-r', String(o.rank), '-o', out, '-q'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    models[name] = await h.ort.InferenceSession.create(out, { intraOpNumThreads: 1,
      interOpNumThreads: 1, executionMode: 'sequential' });
  }
  console.log(`one MatMul ${o.k} x ${o.n}, -r ${o.rank}, opset ${o.opset}, 1 thread, ` +
    `${o.runs} runs each (median ms)`);
  console.log('B x T      static ms  run-time ms  run-time / static');
  for (const [b, t] of [[1, 1], [1, 16], [1, 128], [8, 128]]) {
    const rng = h.mulberry32(b * 1000 + t);
    const data = new Float32Array(b * t * o.k);
    for (let i = 0; i < data.length; ++i) data[i] = 2 * rng() - 1;
    const x = new h.ort.Tensor('float32', data, [b, t, o.k]);
    const feeds = {
      static: { x },
      runtime: { x, s: new h.ort.Tensor('int64', BigInt64Array.from([b, t, o.k].map(BigInt)), [3]) },
    };
    const times = { static: [], runtime: [] };
    for (let i = 0; i < 5; ++i) for (const m of ['static', 'runtime']) await models[m].run(feeds[m]);
    for (let i = 0; i < o.runs; ++i) {
      for (const m of i % 2 ? ['static', 'runtime'] : ['runtime', 'static']) {
        const start = process.hrtime.bigint();
        await models[m].run(feeds[m]);
        times[m].push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }
    const s = median(times.static), r = median(times.runtime);
    console.log(`${`${b} x ${t}`.padEnd(10)} ${s.toFixed(4).padStart(9)}  ${r.toFixed(4).padStart(11)}` +
      `  ${(r / s).toFixed(3).padStart(17)}`);
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
