// SPDX-License-Identifier: Apache-2.0
'use strict';
// Inference latency of original and compressed models in ONNX Runtime (onnxruntime-node), next to
// the MAC reduction the compression report predicts. Not a test (node --test only runs *.test.js)
// and it asserts nothing: run it by hand after building kfc-compress.
//
//   node tests/ort/bench_inference.js [options]
//     --kfc PATH          the kfc-compress binary (default build/kfc-compress)
//     --out DIR           work folder for generated models and reports (default build/infer-bench)
//     --blocks N          transformer-like model: FFN blocks to generate (default 2; 0: none)
//     --rank R            -r for every model this script compresses (default 4)
//     --no-mlps           leave out testdata/digits_mlp.onnx and testdata/fashion_mlp.onnx
//     --case NAME=MODEL[,ARG...]
//                         also compress MODEL with these kfc-compress arguments instead of -r R
//                         (repeatable), e.g. fashion_r0.1=testdata/fashion_mlp.onnx,--ratio,0.1
//     --kfc-old PATH      also compress every model with this binary (an older emitted form) and
//                         time its output in the same alternation: original, old, new
//     --pair NAME=ORIG,COMP[,REPORT]
//                         also measure this pair as given (repeatable); REPORT is the JSON report
//                         (--report) that predicts its MACs
//     --batches LIST      batch sizes (default 1,64)
//     --seq N             sequence length for inputs with a second dynamic dim (default 128)
//     --threads LIST      intraOpNumThreads settings (default 1,2)
//     --warmup N          warm-up runs per model and setting (default 1)
//     --min-runs N        timed runs per model and setting, at least (default 5)
//     --max-runs N        at most (default 200)
//     --budget S          after --min-runs, keep timing while a setting has taken less than S
//                         seconds (default 4)
//
// The transformer-like model comes from bench/make_transformer_model.py (run with
// /usr/bin/python3, which has onnx and numpy) and is compressed with `KFC MODEL -r R -o OUT
// --report OUT.json`, as are the MLPs. Sessions use interOpNumThreads 1 and sequential execution.
// Original and compressed runs alternate, so load from other processes hits both alike; the table
// gives the median of each. Inputs: a dynamic first dim is the batch, a second dynamic dim of a
// 3-D input is --seq; values are seeded uniform [-1, 1).
//
// Columns: model, batch, seq, threads, timed runs, original and compressed median wall ms, the
// measured speedup (original / compressed), the same ratio of median CPU times (see timeRun), the
// ratio of the fastest runs' wall times, and the predicted MAC ratio (see macRatio). On a loaded
// machine the medians favour the shorter model: a run of several ms is preempted more often than
// one of 0.2 ms (measured at load 10: Fashion --ratio 0.1, batch 256, 1 thread, 12.87x by median
// wall time, 6.21x by median CPU time); the fastest runs, like the CPU times, are what the work
// costs when nothing interrupts it. Exit code: 0 measured, 1 failure, 2 usage error.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./support');

const ROOT = h.sourceDir();
// Debian's, with onnx and numpy (the pyenv one on PATH lacks them)
const PYTHON = '/usr/bin/python3';

function parseArgs(argv) {
  const opts = {
    kfc: path.join(ROOT, 'build', 'kfc-compress'),
    kfcOld: null,
    cases: [],
    out: path.join(ROOT, 'build', 'infer-bench'),
    blocks: 2,
    rank: 4,
    mlps: true,
    pairs: [],
    batches: [1, 64],
    seq: 128,
    threads: [1, 2],
    warmup: 1,
    minRuns: 5,
    maxRuns: 200,
    budget: 4,
  };
  const count = (text, flag, min = 1) => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < min) {
      throw new Error(`${flag}: '${text}' is not a whole number >= ${min}`);
    }
    return v;
  };
  const counts = (text, flag) => String(text).split(',').filter((s) => s !== '')
    .map((s) => count(s, flag));
  for (let i = 0; i < argv.length; ++i) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--kfc') opts.kfc = path.resolve(value());
    else if (flag === '--kfc-old') opts.kfcOld = path.resolve(value());
    else if (flag === '--case') {
      const m = /^([^=]+)=([^,]+)((?:,[^,]+)*)$/.exec(value());
      if (!m) throw new Error('--case expects NAME=MODEL[,ARG...]');
      opts.cases.push({ name: m[1], model: path.resolve(m[2]),
        args: m[3] ? m[3].slice(1).split(',') : null });
    } else if (flag === '--out') opts.out = path.resolve(value());
    else if (flag === '--blocks') opts.blocks = count(value(), flag, 0);
    else if (flag === '--rank') opts.rank = count(value(), flag);
    else if (flag === '--no-mlps') opts.mlps = false;
    else if (flag === '--batches') opts.batches = counts(value(), flag);
    else if (flag === '--seq') opts.seq = count(value(), flag);
    else if (flag === '--threads') opts.threads = counts(value(), flag);
    else if (flag === '--warmup') opts.warmup = count(value(), flag, 0);
    else if (flag === '--min-runs') opts.minRuns = count(value(), flag);
    else if (flag === '--max-runs') opts.maxRuns = count(value(), flag);
    else if (flag === '--budget') {
      opts.budget = Number(value());
      if (!(opts.budget >= 0)) throw new Error('--budget needs a number of seconds >= 0');
    } else if (flag === '--pair') {
      const m = /^([^=]+)=([^,]+),([^,]+)(?:,(.+))?$/.exec(value());
      if (!m) throw new Error('--pair expects NAME=ORIG.onnx,COMP.onnx[,REPORT.json]');
      opts.pairs.push({ name: m[1], original: path.resolve(m[2]), compressed: path.resolve(m[3]),
        report: m[4] ? path.resolve(m[4]) : null });
    } else throw new Error(`unknown option '${flag}'`);
  }
  if (opts.maxRuns < opts.minRuns) throw new Error('--max-runs is below --min-runs');
  if (opts.batches.length === 0 || opts.threads.length === 0) throw new Error('empty list');
  return opts;
}

function check(file, args, what) {
  const result = spawnSync(file, args, { cwd: ROOT, encoding: 'utf8', timeout: 1800000,
    maxBuffer: 64 * 1024 * 1024 });
  if (result.error || result.status !== 0) {
    throw new Error(`${what} failed (${result.error ? result.error.message
      : `exit ${result.status ?? result.signal}`}): ${path.basename(file)} ${args.join(' ')}\n` +
      `${result.stderr || ''}`);
  }
}

// KFC ORIG ARGS -o COMP --report REPORT (ARGS: -r R unless given); with --kfc-old, the old
// binary's output too (pair.old). Returns the pair.
function compress(opts, name, original, args = null) {
  const modeArgs = args || ['-r', String(opts.rank)];
  const base = path.join(opts.out, args ? name : `${name}.r${opts.rank}`);
  const pair = { name, original, compressed: `${base}.onnx`, report: `${base}.json` };
  check(opts.kfc, [original, ...modeArgs, '-o', pair.compressed, '--report', pair.report, '-q'],
    `compressing ${name}`);
  if (opts.kfcOld) {
    pair.old = `${base}.old.onnx`;
    check(opts.kfcOld, [original, ...modeArgs, '-o', pair.old, '-q'], `compressing ${name} (old)`);
  }
  return pair;
}

function transformerPair(opts) {
  const model = path.join(opts.out, `transformer${opts.blocks}.onnx`);
  if (!fs.existsSync(model)) {
    check(PYTHON, [path.join(ROOT, 'bench', 'make_transformer_model.py'), model, '--blocks',
      String(opts.blocks)], 'generating the transformer-like model');
  }
  return compress(opts, `transformer${opts.blocks}`, model);
}

// The report's totals.layer_macs_before / layer_macs_after (MACs per input row). Skipped layers
// count there at their dense MACs, so for models whose only MACs are in MatMul and Gemm nodes with
// constant weights (all the models here) it is the whole-model MAC ratio.
function macRatio(reportPath) {
  if (!reportPath) return null;
  const t = JSON.parse(fs.readFileSync(reportPath, 'utf8')).totals || {};
  return t.layer_macs_after > 0 ? t.layer_macs_before / t.layer_macs_after : null;
}

// Feed dims from the session's input metadata: the first dynamic dim is the batch, a second one
// (3-D inputs) the sequence length.
function feedDims(session, batch, seq) {
  const inputs = {};
  let has3d = false;
  for (const meta of session.inputMetadata) {
    let dynamic = 0;
    inputs[meta.name] = meta.shape.map((d) => {
      if (typeof d === 'number' && d > 0) return d;
      return dynamic++ === 0 ? batch : seq;
    });
    has3d = has3d || dynamic > 1;
  }
  return { inputs, seq: has3d ? seq : null };
}

const SESSION = (threads) => ({ intraOpNumThreads: threads, interOpNumThreads: 1,
  executionMode: 'sequential', graphOptimizationLevel: 'all' });

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Wall time and the process's CPU time (all threads, user + system) of one run, in ms. On a
// loaded machine the CPU time at 1 thread depends less on other processes than the wall time (they
// still share caches and memory bandwidth); at 2 threads it also counts the time ORT's pool
// threads spin while waiting for work.
async function timeRun(session, feeds) {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await session.run(feeds);
  const wall = Number(process.hrtime.bigint() - start) / 1e6;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1e3 };
}

// One (pair, batch, threads) setting: all sessions (original, compressed, and the old compressed
// one when given) warmed up, then alternating timed runs.
async function measure(opts, pair, batch, threads) {
  const sessions = [];
  const files = [pair.original, pair.compressed, ...(pair.old ? [pair.old] : [])];
  for (const file of files) {
    sessions.push(await h.ort.InferenceSession.create(file, SESSION(threads)));
  }
  const { inputs, seq } = feedDims(sessions[0], batch, opts.seq);
  const feeds = h.randomFeeds(h.seedFromString(pair.name), inputs);
  for (const s of sessions) {
    for (let i = 0; i < opts.warmup; ++i) await s.run(feeds);
  }
  const times = files.map(() => []);
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
  while (times[0].length < opts.maxRuns &&
         (times[0].length < opts.minRuns || elapsed() < opts.budget)) {
    // The order rotates each round, so no model always runs right after the same other one.
    const round = times[0].length;
    for (let k = 0; k < files.length; ++k) {
      const i = (k + round) % files.length;
      times[i].push(await timeRun(sessions[i], feeds));
    }
  }
  for (const s of sessions) await s.release();
  const [original, compressed, old] = times.map((t) => median(t.map((x) => x.wall)));
  const [originalCpu, compressedCpu] = times.map((t) => median(t.map((x) => x.cpu)));
  const [originalBest, compressedBest] = times.map((t) => Math.min(...t.map((x) => x.wall)));
  return { batch, seq, threads, runs: times[0].length, original, compressed, originalCpu,
    compressedCpu, originalBest, compressedBest, old };
}

function table(rows) {
  const withOld = rows.some((r) => r.old !== undefined);
  const header = ['model', 'batch', 'seq', 'threads', 'runs', 'original ms', 'compressed ms',
    'measured speedup', 'CPU-time speedup', 'best-run speedup', 'predicted MAC ratio',
    ...(withOld ? ['old compressed ms', 'old speedup'] : [])];
  const fixed = (v, d) => (typeof v === 'number' ? v.toFixed(d) : '-');
  const ms = (v) => fixed(v, v < 1 ? 3 : v < 100 ? 2 : 1);
  const lines = [`| ${header.join(' | ')} |`, `|---|${'---:|'.repeat(header.length - 1)}`];
  for (const r of rows) {
    lines.push(`| ${[r.name, r.batch, r.seq ?? '-', r.threads, r.runs, ms(r.original),
      ms(r.compressed), `${fixed(r.original / r.compressed, 2)}x`,
      `${fixed(r.originalCpu / r.compressedCpu, 2)}x`,
      `${fixed(r.originalBest / r.compressedBest, 2)}x`,
      r.predicted ? `${fixed(r.predicted, 2)}x` : '-',
      ...(withOld ? [ms(r.old), r.old ? `${fixed(r.original / r.old, 2)}x` : '-'] : [])]
      .join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

async function main() {
  const opts = h.parseArgsOrExit('bench_inference', 'node tests/ort/bench_inference.js ' +
    '[--kfc PATH] [--kfc-old PATH] [--case NAME=MODEL[,ARG...]]... [--out DIR] [--blocks N] [--rank R] [--no-mlps] ' +
    '[--pair NAME=ORIG,COMP[,REPORT]]... [--batches LIST] [--seq N] [--threads LIST] ' +
    '[--warmup N] [--min-runs N] [--max-runs N] [--budget S]', parseArgs);
  fs.mkdirSync(opts.out, { recursive: true });
  const pairs = [];
  if (opts.blocks > 0) pairs.push(transformerPair(opts));
  if (opts.mlps) {
    for (const name of ['digits_mlp', 'fashion_mlp']) {
      pairs.push(compress(opts, name, h.testdataPath(`${name}.onnx`)));
    }
  }
  for (const c of opts.cases) pairs.push(compress(opts, c.name, c.model, c.args));
  pairs.push(...opts.pairs);
  const [load1, load5] = os.loadavg();
  console.log(`onnxruntime-node ${h.ort.env.versions.common}, ${os.cpus().length} CPUs, ` +
    `load average ${load1.toFixed(2)} ${load5.toFixed(2)} (1, 5 min) at start`);
  const rows = [];
  for (const pair of pairs) {
    const predicted = macRatio(pair.report);
    for (const threads of opts.threads) {
      for (const batch of opts.batches) {
        const row = { name: pair.name, predicted,
          ...(await measure(opts, pair, batch, threads)) };
        rows.push(row);
        console.log(`${pair.name}\tbatch ${batch}${row.seq ? ` x seq ${row.seq}` : ''}\t` +
          `threads ${threads}\t${row.original.toFixed(3)} ms -> ${row.compressed.toFixed(3)} ms\t` +
          `${(row.original / row.compressed).toFixed(2)}x` +
          `${row.old ? ` (old form ${row.old.toFixed(3)} ms, ${(row.original / row.old).toFixed(2)}x)` : ''}` +
          `, CPU time ` +
          `${row.originalCpu.toFixed(3)} ms -> ${row.compressedCpu.toFixed(3)} ms ` +
          `(${row.runs} runs)`);
      }
    }
  }
  const [end1, end5] = os.loadavg();
  console.log(`load average ${end1.toFixed(2)} ${end5.toFixed(2)} (1, 5 min) at end\n`);
  process.stdout.write(table(rows));
}

main().catch((err) => {
  console.error(err.message || err);
  process.exit(1);
});
