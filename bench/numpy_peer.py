#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The peer kfc-compress has to beat: the same per-layer work as `kfc-compress MODEL -r RANK`, in
plain NumPy, layer by layer.

For every MatMul/Gemm whose second input is a 2-D float32 initializer (inline or external data):
read W (K x N), rearrange it, R[i1*n1 + j1, i2*n2 + j2] = W[i1*k2 + i2, j1*n2 + j2], and take
the randomized SVD the tool uses (Halko, Martinsson and Tropp 2011): l = rank + oversampling
Gaussian columns, Y = R Omega, Q = qr(Y), POWER times Q = qr(R qr(R^T Q)), B = Q^T R, the SVD of
B, factors A_t = sqrt(s_t) (Q U_B)[:, t] and B_t = sqrt(s_t) V_B[:, t]; the relative error
sqrt(||W||^2 - sum s_t^2) / ||W|| (in float64). Everything else in float32, NumPy's natural
precision. Writes every factor to OUT (one .npy stream per factor, concatenated) and prints one
line per layer with --verbose, then a summary line.

The shape is the balanced one the tool picks under -r for square-ish layers: k1 and n1 the
divisors of K and N nearest their square roots from below (1024 x 4096 -> 32x64 (x) 32x64), or
--shape k1xn1 (the tool's `--shape k1xn1`).

    /usr/bin/python3 bench/numpy_peer.py MODEL.onnx OUT.npy [-r 8] [--oversampling 10]
        [--power 4] [--power-tolerance 0] [--shape k1xn1] [--verbose]

--power-tolerance 1e-3 stops the power iterations early with the tool's adaptive rule
(kfc::kron::AdaptivePowerStop, SvdOptions::power_tolerance): after iteration k of POWER, when
2 (POWER - k) (e_{k-1/2} - e_k) <= TOL e_k and e_k >= 0.1, e the error estimates from the top
rank eigenvalues of the Gram matrices of R^T Q and R Z. The default 0 runs all POWER iterations.

Uses NumPy's BLAS with its default threads (all cores, like the tool's default --threads).
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto


def nearest_divisor(x):
    d = int(math.isqrt(x))
    while x % d:
        d -= 1
    return d


def weights(model_path):
    """Yields (name, W as float32 K x N) for each MatMul/Gemm with a constant 2-D float32 weight."""
    model = onnx.load(model_path, load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    base = os.path.dirname(os.path.abspath(model_path))
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        t = inits.get(node.input[1])
        if t is None or t.data_type != TensorProto.FLOAT or len(t.dims) != 2:
            continue
        k, n = t.dims
        if t.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            offset = int(info.get("offset", 0))
            with open(os.path.join(base, info["location"]), "rb") as f:
                f.seek(offset)
                w = np.fromfile(f, dtype=np.float32, count=k * n).reshape(k, n)
        else:
            w = onnx.numpy_helper.to_array(t).astype(np.float32, copy=False)
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            w = np.ascontiguousarray(w.T)
        yield node.name, w


def sketch_error(x, rank, norm2):
    """sqrt(||R||^2 - sum of the top `rank` eigenvalues of x^T x) / ||R||, x = R Z or R^T Q."""
    x64 = x.astype(np.float64)
    eig = np.linalg.eigvalsh(x64.T @ x64)[::-1]
    return math.sqrt(max(0.0, norm2 - float(np.sum(np.maximum(eig[:rank], 0.0)))) / norm2)


def factorize(w, k1, n1, rank, oversampling, power, rng, power_tolerance=0.0):
    k, n = w.shape
    k2, n2 = k // k1, n // n1
    r = np.ascontiguousarray(w.reshape(k1, k2, n1, n2).transpose(0, 2, 1, 3)).reshape(
        k1 * n1, k2 * n2)
    m, cols = r.shape
    l = min(rank + oversampling, m, cols)
    omega = rng.standard_normal((cols, l), dtype=np.float32)
    norm2 = float(np.dot(w.ravel().astype(np.float64), w.ravel().astype(np.float64)))
    adaptive = power_tolerance > 0 and norm2 > 0
    q, _ = np.linalg.qr(r @ omega)
    for it in range(power):
        z = r.T @ q
        half = sketch_error(z, rank, norm2) if adaptive else 0.0
        z, _ = np.linalg.qr(z)
        y = r @ z
        stop = False
        if adaptive and it + 1 < power:
            # The tool's adaptive stop (kfc::kron::AdaptivePowerStop).
            err = sketch_error(y, rank, norm2)
            stop = err >= 0.1 and 2 * (power - it - 1) * (half - err) <= power_tolerance * err
        q, _ = np.linalg.qr(y)
        if stop:
            break
    b = q.T @ r
    ub, s, vt = np.linalg.svd(b, full_matrices=False)
    root = np.sqrt(s[:rank])
    a_factors = ((q @ ub[:, :rank]) * root).T.reshape(rank, k1, n1)
    b_factors = (vt[:rank] * root[:, None]).reshape(rank, k2, n2)
    kept = float(np.sum(s[:rank].astype(np.float64) ** 2))
    error = math.sqrt(max(0.0, norm2 - kept) / norm2) if norm2 > 0 else 0.0
    return a_factors, b_factors, error


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("-r", "--rank", type=int, default=8)
    parser.add_argument("--oversampling", type=int, default=10)
    parser.add_argument("--power", type=int, default=4)
    parser.add_argument("--power-tolerance", type=float, default=0.0,
                        help="adaptive power iterations as the tool's (1e-3 there); "
                        "0: always --power iterations (the tool's work before the adaptive stop)")
    parser.add_argument("--shape", default="", help="k1xn1, as the tool's --shape")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0x6B6663)
    start = time.perf_counter()
    layers = 0
    with open(args.out, "wb") as out:
        for name, w in weights(args.model):
            k, n = w.shape
            if args.shape:
                k1, n1 = (int(x) for x in args.shape.split("x"))
            else:
                k1, n1 = nearest_divisor(k), nearest_divisor(n)
            if k % k1 or n % n1:
                continue
            a, b, error = factorize(w, k1, n1, args.rank, args.oversampling, args.power, rng,
                                     args.power_tolerance)
            np.save(out, a)
            np.save(out, b)
            layers += 1
            if args.verbose:
                print(f"{name}: {k}x{n} -> {k1}x{n1} (x) {k // k1}x{n // n1} rank {args.rank}, "
                      f"relative error {error:.6f}", flush=True)
    print(f"numpy_peer: {layers} layers factorized in {time.perf_counter() - start:.3f} s")
    return 0 if layers else 1


if __name__ == "__main__":
    sys.exit(main())
