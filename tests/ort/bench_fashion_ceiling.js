// SPDX-License-Identifier: Apache-2.0
'use strict';
// What limits the Fashion-MNIST MLP (testdata/fashion_mlp.onnx, 784-512-256-10, Gemm + Relu, then
// Softmax) at --ratio 0.1 (issue 14: within 0.5 point of the original, calibrated on at most
// 2,000 training images). Refits the two compressed layers in JavaScript, in float64, the way
// kfc-compress does with the defaults auto picks there (low rank, ranks 33 and 13, lambda 10,
// bias correction; it reproduces the tool's 88.32%), and measures variants of the fit the tool
// does not have. Not a test and not the tool: run by hand (docs/compensation.md).
//
//   node tests/ort/bench_fashion_ceiling.js [--methods baseline,refit-fc3,...]
//
// Methods (default: all):
//   baseline          the tool's fit: W_hat = L^-T trunc_r(L^T W), C + 10 mean(diag C) I = L L^T
//   refit-fc3         then fc3 (dense) refitted on the compressed model's inputs X~ to reproduce
//                     the original logits (compensation's formula, lambda 10, 1, 0.1, 0.01)
//   output-weighted   fc2 (and fc1) fitted in the metric of what follows: fc2's output weighted by
//                     E[D2 W3 W3^T D2] (D2: relu2's mask), fc1's by the Jacobian to the logits
//   more-data         the baseline calibrated on 10,000 training images (the data's limit)
//   distill           Adam on the factors (lr 1e-4, batches of 100, 30 epochs) to the original
//                     probabilities (KL), 2,000 images, three batch orders
//   prune             hidden units never active on the calibration rows (relu output always 0)
//                     removed from fc1's columns and fc2's rows, the rest low rank at the same
//                     parameter count (ranks chosen over splits)
// Prints one line per result: method, settings, test accuracy, logits' relative error (test).
const fs = require('node:fs');
const path = require('node:path');
const h = require('./support');
const { loadFashion } = require('./eval_fashion');

const DIMS = [784, 512, 256, 10];
const RANKS = [33, 13];  // what --ratio 0.1 gives with the auto defaults (kfc-compress -v)
const LAMBDA = 10;

// The float initializers of an ONNX file: name -> {dims, data}. A minimal protobuf walk
// (ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto dims 1, float_data 4, name 8,
// raw_data 9).
function initializers(file) {
  const buf = fs.readFileSync(file);
  const varint = (s) => {
    let v = 0;
    for (let sh = 0; ; sh += 7) {
      const b = buf[s.pos++];
      v += (b & 0x7f) * 2 ** sh;
      if (b < 0x80) return v;
    }
  };
  const fields = (start, end, cb) => {
    const s = { pos: start };
    while (s.pos < end) {
      const key = varint(s);
      const f = Math.floor(key / 8);
      const wt = key & 7;
      if (wt === 0) cb(f, wt, varint(s));
      else if (wt === 2) {
        const len = varint(s);
        cb(f, wt, [s.pos, s.pos + len]);
        s.pos += len;
      } else if (wt === 5) s.pos += 4;
      else if (wt === 1) s.pos += 8;
      else throw new Error(`${file}: wire type ${wt}`);
    }
  };
  const out = {};
  fields(0, buf.length, (f, wt, v) => {
    if (f !== 7 || wt !== 2) return;
    fields(v[0], v[1], (gf, gwt, gv) => {
      if (gf !== 5 || gwt !== 2) return;
      const t = { dims: [], data: null };
      let name = '';
      const floats = [];
      fields(gv[0], gv[1], (tf, twt, tv) => {
        if (tf === 1 && twt === 0) t.dims.push(tv);
        else if (tf === 1 && twt === 2) {
          const s = { pos: tv[0] };
          while (s.pos < tv[1]) t.dims.push(varint(s));
        } else if (tf === 8) name = buf.toString('utf8', tv[0], tv[1]);
        else if (tf === 9) {
          const b = Buffer.from(buf.subarray(tv[0], tv[1]));
          t.data = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
        } else if (tf === 4 && twt === 2) {
          for (let p = tv[0]; p < tv[1]; p += 4) floats.push(buf.readFloatLE(p));
        }
      });
      t.data = t.data || Float32Array.from(floats);
      out[name] = t;
    });
  });
  return out;
}

// Dense float64 row-major linear algebra, small sizes only.
function transpose(a, r, c) {
  const o = new Float64Array(r * c);
  for (let i = 0; i < r; ++i) for (let j = 0; j < c; ++j) o[j * r + i] = a[i * c + j];
  return o;
}
function matmul(A, B, n, k, m) {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; ++i) {
    for (let p = 0; p < k; ++p) {
      const a = A[i * k + p];
      if (a === 0) continue;
      for (let j = 0, bo = p * m, co = i * m; j < m; ++j) C[co + j] += a * B[bo + j];
    }
  }
  return C;
}
function cholesky(A, K) {
  const L = new Float64Array(K * K);
  for (let j = 0; j < K; ++j) {
    let d = A[j * K + j];
    for (let p = 0; p < j; ++p) d -= L[j * K + p] ** 2;
    d = Math.sqrt(d);
    L[j * K + j] = d;
    for (let i = j + 1; i < K; ++i) {
      let s = A[i * K + j];
      for (let p = 0; p < j; ++p) s -= L[i * K + p] * L[j * K + p];
      L[i * K + j] = s / d;
    }
  }
  return L;
}
// Solves L^T X = B (L lower triangular K x K, B K x N).
function solveUpper(L, B, K, N) {
  const X = Float64Array.from(B);
  for (let c = 0; c < N; ++c) {
    for (let i = K - 1; i >= 0; --i) {
      let s = X[i * N + c];
      for (let p = i + 1; p < K; ++p) s -= L[p * K + i] * X[p * N + c];
      X[i * N + c] = s / L[i * K + i];
    }
  }
  return X;
}
function jacobiEigen(S, p) {
  const A = Float64Array.from(S);
  const V = new Float64Array(p * p);
  for (let i = 0; i < p; ++i) V[i * p + i] = 1;
  const rotate = (M, i, j, c, s, rows) => {
    for (let k = 0; k < p; ++k) {
      const [x, y] = rows ? [M[i * p + k], M[j * p + k]] : [M[k * p + i], M[k * p + j]];
      if (rows) [M[i * p + k], M[j * p + k]] = [c * x - s * y, s * x + c * y];
      else [M[k * p + i], M[k * p + j]] = [c * x - s * y, s * x + c * y];
    }
  };
  for (let sweep = 0; sweep < 60; ++sweep) {
    let off = 0;
    for (let i = 0; i < p; ++i) for (let j = i + 1; j < p; ++j) off += A[i * p + j] ** 2;
    if (off < 1e-22) break;
    for (let i = 0; i < p; ++i) {
      for (let j = i + 1; j < p; ++j) {
        const aij = A[i * p + j];
        if (Math.abs(aij) < 1e-300) continue;
        const th = (A[j * p + j] - A[i * p + i]) / (2 * aij);
        const t = Math.sign(th || 1) / (Math.abs(th) + Math.sqrt(th * th + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        rotate(A, i, j, c, t * c, false);
        rotate(A, i, j, c, t * c, true);
        rotate(V, i, j, c, t * c, false);
      }
    }
  }
  return { values: Array.from({ length: p }, (_, i) => A[i * p + i]), V };
}
function orthonormalize(Q, n, p) {
  for (let j = 0; j < p; ++j) {
    for (let k = 0; k < j; ++k) {
      let d = 0;
      for (let i = 0; i < n; ++i) d += Q[i * p + j] * Q[i * p + k];
      for (let i = 0; i < n; ++i) Q[i * p + j] -= d * Q[i * p + k];
    }
    let norm = 0;
    for (let i = 0; i < n; ++i) norm += Q[i * p + j] ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; ++i) Q[i * p + j] /= norm;
  }
}
// The top-r right singular vectors of A (m x n), n x r (subspace iteration, then Rayleigh-Ritz).
function topRight(A, m, n, r) {
  const G = matmul(transpose(A, m, n), A, n, m, n);
  const p = Math.min(n, r + 20);
  let Q = new Float64Array(n * p);
  const rng = h.mulberry32(1);
  for (let i = 0; i < n * p; ++i) Q[i] = rng() - 0.5;
  orthonormalize(Q, n, p);
  for (let it = 0; it < 60; ++it) {
    Q = matmul(G, Q, n, n, p);
    orthonormalize(Q, n, p);
  }
  const { values, V } = jacobiEigen(matmul(transpose(Q, n, p), matmul(G, Q, n, n, p), p, n, p), p);
  const order = values.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, r);
  const QV = matmul(Q, V, n, p, p);
  const Vr = new Float64Array(n * r);
  for (let i = 0; i < n; ++i) order.forEach(([, c], j) => { Vr[i * r + j] = QV[i * p + c]; });
  return Vr;
}
function statistics(X, n, K) {
  const mu = new Float64Array(K);
  for (let r = 0; r < n; ++r) for (let i = 0; i < K; ++i) mu[i] += X[r * K + i] / n;
  const C = new Float64Array(K * K);
  const row = new Float64Array(K);
  for (let r = 0; r < n; ++r) {
    for (let i = 0; i < K; ++i) row[i] = X[r * K + i] - mu[i];
    for (let i = 0; i < K; ++i) {
      if (row[i] === 0) continue;
      for (let j = 0; j < K; ++j) C[i * K + j] += row[i] * row[j] / n;
    }
  }
  return { mu, C };
}
function regularized(C, K, lambda) {
  const A = Float64Array.from(C);
  let t = 0;
  for (let i = 0; i < K; ++i) t += C[i * K + i] / K;
  for (let i = 0; i < K; ++i) A[i * K + i] += lambda * t;
  return A;
}
function identity(n) {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; ++i) I[i * n + i] = 1;
  return I;
}
// Rank-r W_hat = U V (U K x r, V r x N) minimizing ||L^T (W - W_hat) R|| (C = L L^T, H = R R^T),
// and the bias b + mu^T (W - W_hat).
function lowRankFit(W, b, K, N, stats, H, r, lambda = LAMBDA) {
  const L = cholesky(regularized(stats.C, K, lambda), K);
  const R = cholesky(H, N);
  const A = matmul(matmul(transpose(L, K, K), W, K, K, N), R, K, N, N);
  const Vr = topRight(A, K, N, r);
  const U = solveUpper(L, matmul(A, Vr, K, N, r), K, r);  // L^-T A Vr
  const V = transpose(solveUpper(R, Vr, N, r), N, r);      // (R^-T Vr)^T = Vr^T R^-1
  const w = matmul(U, V, K, r, N);
  const bias = Float64Array.from(b);
  for (let j = 0; j < N; ++j) for (let i = 0; i < K; ++i) bias[j] += stats.mu[i] * (W[i * N + j] - w[i * N + j]);
  return { U, V, w, b: bias };
}
function layer(X, n, W, b, K, N, relu) {
  const o = matmul(X, W, n, K, N);
  for (let i = 0; i < n; ++i) {
    for (let j = 0; j < N; ++j) {
      const v = o[i * N + j] + b[j];
      o[i * N + j] = relu && v < 0 ? 0 : v;
    }
  }
  return o;
}
function logits(X, n, layers) {
  let x = X;
  layers.forEach((l, i) => { x = layer(x, n, l.w, l.b, l.K, l.N, i < layers.length - 1); });
  return x;
}
function accuracy(z, labels) {
  let ok = 0;
  for (let i = 0; i < labels.length; ++i) {
    let best = 0;
    for (let j = 1; j < 10; ++j) if (z[i * 10 + j] > z[i * 10 + best]) best = j;
    if (best === labels[i]) ++ok;
  }
  return ok / labels.length;
}
function relativeError(a, b) {
  let e = 0;
  let t = 0;
  for (let i = 0; i < a.length; ++i) {
    e += (a[i] - b[i]) ** 2;
    t += b[i] ** 2;
  }
  return Math.sqrt(e / t);
}

function setup() {
  const init = initializers(h.testdataPath('fashion_mlp.onnx'));
  const dense = [1, 2, 3].map((l) => {
    const K = DIMS[l - 1];
    const N = DIMS[l];
    const t = init[`fc${l}.weight`];  // Gemm transB=1: [N, K]
    if (!t || t.dims.join() !== `${N},${K}`) throw new Error(`fc${l}.weight is not [${N}, ${K}]`);
    return { w: transpose(Float64Array.from(t.data), N, K), b: Float64Array.from(init[`fc${l}.bias`].data), K, N };
  });
  const calib = (n) => {
    const X0 = Float64Array.from(loadFashion('train', n).features);
    const X1 = layer(X0, n, dense[0].w, dense[0].b, 784, 512, true);
    const X2 = layer(X1, n, dense[1].w, dense[1].b, 512, 256, true);
    return { n, X: [X0, X1, X2], stats: [statistics(X0, n, 784), statistics(X1, n, 512)] };
  };
  const test = loadFashion('t10k');
  const Xt = Float64Array.from(test.features);
  const original = logits(Xt, test.numSamples, dense);
  const measure = (layers) => {
    const z = logits(Xt, test.numSamples, layers);
    return `test accuracy ${(100 * accuracy(z, test.labels)).toFixed(2)}%, logits' relative error ${relativeError(z, original).toFixed(4)}`;
  };
  console.log(`original: test accuracy ${(100 * accuracy(original, test.labels)).toFixed(2)}%`);
  return { dense, calib, measure };
}

function baseline(env, data, H = [identity(512), identity(256)]) {
  return [0, 1].map((l) => {
    const d = env.dense[l];
    return { ...lowRankFit(d.w, d.b, d.K, d.N, data.stats[l], H[l], RANKS[l]), K: d.K, N: d.N };
  }).concat([env.dense[2]]);
}

// fc3 refitted to the original logits on the compressed model's inputs (kron/compensate.h:
// W* = (C~ + rho I)^-1 (M + rho I) W, bias mu^T W - mu~^T W*).
function refitFc3(env, data) {
  const layers = baseline(env, data);
  const n = data.n;
  const Xt = layer(layer(data.X[0], n, layers[0].w, layers[0].b, 784, 512, true), n, layers[1].w, layers[1].b, 512, 256, true);
  const X = data.X[2];
  const K = 256;
  const N = 10;
  const { w: W, b } = env.dense[2];
  const st = statistics(Xt, n, K);
  const mu = statistics(X, n, K).mu;
  const M = new Float64Array(K * K);
  for (let r = 0; r < n; ++r) {
    for (let i = 0; i < K; ++i) {
      const a = Xt[r * K + i] - st.mu[i];
      if (a === 0) continue;
      for (let j = 0; j < K; ++j) M[i * K + j] += a * (X[r * K + j] - mu[j]) / n;
    }
  }
  console.log(`refit-fc3: before the refit: ${env.measure(layers)}`);
  for (const lambda of [10, 1, 0.1, 0.01]) {
    const A = regularized(st.C, K, lambda);
    const rho = A[0] - st.C[0];
    const L = cholesky(A, K);
    const rhs = matmul(M, W, K, K, N);
    for (let i = 0; i < K * N; ++i) rhs[i] += rho * W[i];
    // A^-1 rhs = L^-T L^-1 rhs
    const Y = Float64Array.from(rhs);
    for (let c = 0; c < N; ++c) {
      for (let i = 0; i < K; ++i) {
        let s = Y[i * N + c];
        for (let p = 0; p < i; ++p) s -= L[i * K + p] * Y[p * N + c];
        Y[i * N + c] = s / L[i * K + i];
      }
    }
    const w = solveUpper(L, Y, K, N);
    const bias = Float64Array.from(b);
    for (let j = 0; j < N; ++j) for (let i = 0; i < K; ++i) bias[j] += mu[i] * W[i * N + j] - st.mu[i] * w[i * N + j];
    console.log(`refit-fc3: lambda ${lambda}: ${env.measure([layers[0], layers[1], { w, b: bias, K, N }])}`);
  }
}

function outputWeighted(env, data) {
  const { n, X } = data;
  const [, W2, W3] = env.dense.map((d) => d.w);
  // fc2: E[D2 W3 W3^T D2] = (W3 W3^T) o E[d2 d2^T].
  const W3W3 = matmul(W3, transpose(W3, 256, 10), 256, 10, 256);
  const H2 = new Float64Array(256 * 256);
  for (let r = 0; r < n; ++r) {
    for (let i = 0; i < 256; ++i) {
      if (!(X[2][r * 256 + i] > 0)) continue;
      for (let j = 0; j < 256; ++j) if (X[2][r * 256 + j] > 0) H2[i * 256 + j] += W3W3[i * 256 + j] / n;
    }
  }
  // fc1: E[J J^T], J = D1 W2 D2 W3 (512 x 10) per row.
  const H1 = new Float64Array(512 * 512);
  for (let r = 0; r < n; ++r) {
    const M2 = new Float64Array(256 * 10);
    for (let k = 0; k < 256; ++k) if (X[2][r * 256 + k] > 0) for (let c = 0; c < 10; ++c) M2[k * 10 + c] = W3[k * 10 + c];
    const J = new Float64Array(512 * 10);
    for (let i = 0; i < 512; ++i) {
      if (!(X[1][r * 512 + i] > 0)) continue;
      for (let k = 0; k < 256; ++k) {
        const w = W2[i * 256 + k];
        for (let c = 0; c < 10; ++c) J[i * 10 + c] += w * M2[k * 10 + c];
      }
    }
    const JJ = matmul(J, transpose(J, 512, 10), 512, 10, 512);
    for (let i = 0; i < 512 * 512; ++i) H1[i] += JJ[i] / n;
  }
  for (const mu of [1, 0.1]) {
    const H = [regularized(H1, 512, mu), regularized(H2, 256, mu)];
    console.log(`output-weighted: fc2 only, output lambda ${mu}: ${env.measure(baseline(env, data, [identity(512), H[1]]))}`);
    console.log(`output-weighted: fc1 and fc2, output lambda ${mu}: ${env.measure(baseline(env, data, H))}`);
  }
}

function softmax(z, m) {
  const p = new Float64Array(z.length);
  for (let i = 0; i < m; ++i) {
    let mx = -Infinity;
    for (let j = 0; j < 10; ++j) mx = Math.max(mx, z[i * 10 + j]);
    let s = 0;
    for (let j = 0; j < 10; ++j) s += (p[i * 10 + j] = Math.exp(z[i * 10 + j] - mx));
    for (let j = 0; j < 10; ++j) p[i * 10 + j] /= s;
  }
  return p;
}

// Adam on U1, V1, b1, U2, V2, b2 (fc3 fixed) to the original probabilities, rows in `order`.
function distill(env, data, seed) {
  const [f1, f2] = baseline(env, data);
  const fc3 = env.dense[2];
  const n = data.n;
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = h.mulberry32(seed);
  if (seed) for (let i = n - 1; i > 0; --i) { const j = Math.floor(rng() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  const X0 = new Float64Array(n * 784);
  order.forEach((o, i) => X0.set(data.X[0].subarray(o * 784, o * 784 + 784), i * 784));
  const P = softmax(logits(X0, n, env.dense), n);
  const [r1, r2] = RANKS;
  const params = [f1.U, f1.V, f1.b, f2.U, f2.V, f2.b];
  const m1 = params.map((p) => new Float64Array(p.length));
  const m2 = params.map((p) => new Float64Array(p.length));
  const B = 100;
  const lr = 1e-4;
  let step = 0;
  for (let epoch = 0; epoch < 30; ++epoch) {
    for (let s0 = 0; s0 < n; s0 += B) {
      const X = X0.subarray(s0 * 784, (s0 + B) * 784);
      const t1 = matmul(X, f1.U, B, 784, r1);
      const h1 = layer(t1, B, f1.V, f1.b, r1, 512, true);
      const t2 = matmul(h1, f2.U, B, 512, r2);
      const h2 = layer(t2, B, f2.V, f2.b, r2, 256, true);
      const p = softmax(layer(h2, B, fc3.w, fc3.b, 256, 10, false), B);
      const dz = new Float64Array(B * 10);
      for (let i = 0; i < B * 10; ++i) dz[i] = (p[i] - P[s0 * 10 + i]) / B;
      const back = (dy, h, W, K, N) => {  // dL/dx through y = x W, then relu'(x) from h = x
        const dx = matmul(dy, transpose(W, K, N), B, N, K);
        if (h) for (let i = 0; i < B * K; ++i) if (h[i] <= 0) dx[i] = 0;
        return dx;
      };
      const sumRows = (d, N) => { const g = new Float64Array(N); for (let i = 0; i < B * N; ++i) g[i % N] += d[i]; return g; };
      const dh2 = back(dz, h2, fc3.w, 256, 10);
      const dt2 = back(dh2, null, f2.V, r2, 256);
      const dh1 = back(dt2, h1, f2.U, 512, r2);
      const dt1 = back(dh1, null, f1.V, r1, 512);
      const grads = [
        matmul(transpose(X, B, 784), dt1, 784, B, r1), matmul(transpose(t1, B, r1), dh1, r1, B, 512), sumRows(dh1, 512),
        matmul(transpose(h1, B, 512), dt2, 512, B, r2), matmul(transpose(t2, B, r2), dh2, r2, B, 256), sumRows(dh2, 256),
      ];
      ++step;
      params.forEach((q, k) => {
        const g = grads[k];
        for (let i = 0; i < q.length; ++i) {
          m1[k][i] = 0.9 * m1[k][i] + 0.1 * g[i];
          m2[k][i] = 0.999 * m2[k][i] + 0.001 * g[i] * g[i];
          q[i] -= lr * (m1[k][i] / (1 - 0.9 ** step)) / (Math.sqrt(m2[k][i] / (1 - 0.999 ** step)) + 1e-8);
        }
      });
    }
    if (epoch % 10 === 9) {
      const l1 = { w: matmul(f1.U, f1.V, 784, r1, 512), b: f1.b, K: 784, N: 512 };
      const l2 = { w: matmul(f2.U, f2.V, 512, r2, 256), b: f2.b, K: 512, N: 256 };
      console.log(`distill: batch order ${seed ? `shuffled (seed ${seed})` : 'as read'}, epoch ${epoch + 1}: ${env.measure([l1, l2, fc3])}`);
    }
  }
}

// Units never active (relu output 0 on every calibration row) removed; the rest low rank. Each
// split is also fitted on the first 1,600 rows and rated on the last 400 (the probabilities'
// relative error), as auto rates its candidates.
function prunedModel(env, data, r1, lambda) {
  const { n, X } = data;
  const alive = (x, N) => Array.from({ length: N }, (_, j) => j).filter((j) => {
    for (let i = 0; i < n; ++i) if (x[i * N + j] > 0) return true;
    return false;
  });
  const a1 = alive(X[1], 512);
  const a2 = alive(X[2], 256);
  const all = (m) => Array.from({ length: m }, (_, i) => i);
  const pick = (d, rows, cols) => {
    const w = new Float64Array(rows.length * cols.length);
    rows.forEach((r, i) => cols.forEach((c, j) => { w[i * cols.length + j] = d.w[r * d.N + c]; }));
    return { w, b: Float64Array.from(cols.map((c) => d.b[c])), K: rows.length, N: cols.length };
  };
  const p = [pick(env.dense[0], all(784), a1), pick(env.dense[1], a1, a2), pick(env.dense[2], a2, all(10))];
  if (r1 === 0) return { layers: p, dead: [512 - a1.length, 256 - a2.length] };
  const X1 = layer(X[0], n, p[0].w, p[0].b, 784, p[0].N, true);
  const stats = [data.stats[0], statistics(X1, n, p[1].K)];
  const budget = RANKS[0] * (784 + 512) + RANKS[1] * (512 + 256);
  const r2 = Math.floor((budget - r1 * (784 + p[0].N)) / (p[1].K + p[1].N));
  const layers = [r1, r2].map((r, l) => ({ ...lowRankFit(p[l].w, p[l].b, p[l].K, p[l].N, stats[l], identity(p[l].N), r, lambda), K: p[l].K, N: p[l].N }));
  const params = r1 * (784 + p[0].N) + r2 * (p[1].K + p[1].N);
  return { layers: [layers[0], layers[1], p[2]], r2, params, ratio: params / (784 * 512 + 512 * 256) };
}

function rows(data, lo, hi) {
  const n = hi - lo;
  const X = data.X.map((x, l) => x.slice(lo * DIMS[l], hi * DIMS[l]));
  return { n, X, stats: [statistics(X[0], n, 784), statistics(X[1], n, 512)] };
}

function prune(env, data) {
  const dense = prunedModel(env, data, 0);
  console.log(`prune: ${dense.dead[0]} of 512 and ${dense.dead[1]} of 256 hidden units never active on ${data.n} rows; dense, pruned: ${env.measure(dense.layers)}`);
  const fit = rows(data, 0, 1600);
  const held = rows(data, 1600, 2000);
  const want = softmax(logits(held.X[0], held.n, env.dense), held.n);
  for (const lambda of [10, 0.1]) {
    for (const r1 of [38, 40, 41, 42, 43, 44]) {
      const rated = prunedModel(env, fit, r1, lambda);
      const heldError = relativeError(softmax(logits(held.X[0], held.n, rated.layers), held.n), want);
      const m = prunedModel(env, data, r1, lambda);
      console.log(`prune: ranks ${r1}, ${m.r2}, lambda ${lambda}, ${m.params} parameters (ratio ${m.ratio.toFixed(4)}), held-out error ${heldError.toFixed(4)}: ${env.measure(m.layers)}`);
    }
  }
}

function main() {
  const all = ['baseline', 'refit-fc3', 'output-weighted', 'more-data', 'distill', 'prune'];
  let methods = all;
  const argv = process.argv.slice(2);
  if (argv[0] === '--methods' && argv.length === 2) methods = argv[1].split(',');
  else if (argv.length) throw new Error('usage: node tests/ort/bench_fashion_ceiling.js [--methods a,b]');
  for (const m of methods) if (!all.includes(m)) throw new Error(`unknown method '${m}'`);
  const env = setup();
  const data = env.calib(2000);
  for (const m of methods) {
    if (m === 'baseline') console.log(`baseline: ranks ${RANKS}, lambda ${LAMBDA}: ${env.measure(baseline(env, data))}`);
    if (m === 'refit-fc3') refitFc3(env, data);
    if (m === 'output-weighted') outputWeighted(env, data);
    if (m === 'more-data') {
      const big = env.calib(10000);
      for (const lambda of [10, 1]) {
        const layers = [0, 1].map((l) => {
          const d = env.dense[l];
          return { ...lowRankFit(d.w, d.b, d.K, d.N, big.stats[l], identity(d.N), RANKS[l], lambda), K: d.K, N: d.N };
        });
        console.log(`more-data: 10,000 calibration images, lambda ${lambda}: ${env.measure([layers[0], layers[1], env.dense[2]])}`);
      }
    }
    if (m === 'distill') for (const seed of [0, 7, 13]) distill(env, data, seed);
    if (m === 'prune') prune(env, data);
  }
}

main();
