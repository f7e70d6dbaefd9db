#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a model with every MatMul(X[.., K], W[K, N]) (W an initializer) replaced by one form of
the Kronecker subgraph, to time emitted-subgraph alternatives in ONNX Runtime:

    /usr/bin/python3 bench/subgraph_variants.py IN.onnx VARIANT OUT.onnx [--rank 4]
    node tests/ort/bench_inference.js --blocks 0 --no-mlps --pair NAME=A.onnx,B.onnx ...

The factors are seeded random numbers of the squarest balanced shape (k1 the largest divisor of K
with k1 <= sqrt(K), likewise n1), the same in every variant, so the variants compute the same
function (to float rounding) and can be checked against each other. X: [.., K] of any rank >= 2;
forms that flatten the leading dims rebuild them with Shape, Mul and Add.

Variants, per input row x reshaped to X [k1, k2] (y = sum_t A_t^T X B_t):
  bfirst       today's B first: MatMul(X4, Bcat), Reshape, MatMul(Acat, .): the second product
               has the constant on the left, one small GEMM per row
  afirst       today's A first: MatMul(Acat, X4) (constant on the left), Reshape, MatMul(., Bstack)
  mixed        per layer, the order whose constant-on-the-right product has more MACs
  bfirst_flat  bfirst on X flattened to [-1, k1, k2]
  bfirst_t2    both products as one GEMM over all rows, with a Transpose of the middle tensor and
               one of the output
  afirst_t2    the same for A first: Transpose of X and of the middle tensor
  bfirst_outer rows moved into the GEMM columns: [k1*r, rows*n2] by Transpose [1, 0, 2], one 2-D
               GEMM with Acat, Transpose back
  afirst_outer the same with A first
  einsum       one Einsum 'bsij,tik,tjl->bskl'-style node (opset raised to 12 when lower)
"""

import argparse

import numpy as np
import onnx
from onnx import helper, numpy_helper

VARIANTS = ["bfirst", "afirst", "mixed", "bfirst_flat", "bfirst_t2", "afirst_t2", "bfirst_outer",
            "afirst_outer", "einsum"]


def squarest(d):
    return max(a for a in range(1, int(np.sqrt(d)) + 1) if d % a == 0)


class Emitter:
    def __init__(self, prefix, x, y, rank_x, inits):
        self.p, self.x, self.y, self.rank_x, self.inits = prefix, x, y, rank_x, inits
        self.nodes = []
        # perm swapping the last two axes of [.., k1, k2]
        self.swap = list(range(rank_x - 1)) + [rank_x, rank_x - 1]

    def node(self, op, inputs, out, **attrs):
        name = out if out == self.y else self.p + out
        self.nodes.append(helper.make_node(op, inputs, [name], name=name + "_node", **attrs))
        return name

    def const(self, name, array, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype),
                                                  self.p + name))
        return self.p + name

    def shape(self, name, dims):
        return self.const(name, dims, np.int64)

    def lead(self, tail):
        """Reshape target keeping X's leading dims (0 copies them)."""
        return [0] * (self.rank_x - 1) + tail

    def out_shape(self, n):
        """X's shape with the last dim replaced by n: Shape(X) * [1.., 0] + [0.., n]."""
        keep = self.shape("keep", [1] * (self.rank_x - 1) + [0])
        last = self.shape("last", [0] * (self.rank_x - 1) + [n])
        s = self.node("Shape", [self.x], "shape_x")
        return self.node("Add", [self.node("Mul", [s, keep], "shape_kept"), last], "shape_out")


def emit(e, variant, k1, k2, n1, n2, a, b):
    r = a.shape[0]
    n = n1 * n2
    bcat = b.transpose(1, 0, 2).reshape(k2, r * n2)        # [i2, t*n2 + j2]
    acat = a.transpose(2, 1, 0).reshape(n1, k1 * r)        # [j1, i1*r + t]
    acat_a = a.transpose(2, 0, 1).reshape(n1 * r, k1)      # [j1*r + t, i1]
    bstack = b.reshape(r * k2, n2)                         # [t*k2 + i2, j2]
    flat = variant in ("bfirst_flat", "bfirst_outer", "afirst_outer")
    # X as [.., k1, k2], or [rows, k1, k2] with the leading dims flattened
    x4 = e.node("Reshape", [e.x, e.shape("s_in", [-1, k1, k2] if flat else e.lead([k1, k2]))], "x4")
    if variant in ("bfirst", "bfirst_flat"):
        t = e.node("MatMul", [x4, e.const("bcat", bcat)], "t")
        mid = [-1, k1 * r, n2] if flat else e.lead([k1 * r, n2])
        t2 = e.node("Reshape", [t, e.shape("s_mid", mid)], "t2")
        y4 = e.node("MatMul", [e.const("acat", acat), t2], "y4")
        out = e.out_shape(n) if flat else e.shape("s_out", e.lead([n]))
        e.node("Reshape", [y4, out], e.y)
    elif variant == "afirst":
        u = e.node("MatMul", [e.const("acat", acat_a), x4], "u")
        u2 = e.node("Reshape", [u, e.shape("s_mid", e.lead([n1, r * k2]))], "u2")
        y4 = e.node("MatMul", [u2, e.const("bstack", bstack)], "y4")
        e.node("Reshape", [y4, e.shape("s_out", e.lead([n]))], e.y)
    elif variant == "bfirst_t2":
        # T [.., i1, j2, t] -> Transpose -> [.., j2*r + t, i1] read as [.., j2, t*k1 + i1]
        t = e.node("MatMul", [x4, e.const("bcat", b.transpose(1, 2, 0).reshape(k2, n2 * r))], "t")
        tt = e.node("Transpose", [t], "tt", perm=e.swap)
        tt2 = e.node("Reshape", [tt, e.shape("s_tt", e.lead([n2, r * k1]))], "tt2")
        z = e.node("MatMul", [tt2, e.const("acat", a.reshape(r * k1, n1))], "z")  # [.., j2, j1]
        zt = e.node("Transpose", [z], "zt", perm=e.swap)
        e.node("Reshape", [zt, e.shape("s_out", e.lead([n]))], e.y)
    elif variant == "afirst_t2":
        xt = e.node("Transpose", [x4], "xt", perm=e.swap)  # [.., i2, i1]
        u = e.node("MatMul", [xt, e.const("acat", a.transpose(1, 2, 0).reshape(k1, n1 * r))], "u")
        ut = e.node("Transpose", [u], "ut", perm=e.swap)  # [.., j1*r + t, i2]
        u2 = e.node("Reshape", [ut, e.shape("s_mid", e.lead([n1, r * k2]))], "u2")
        y4 = e.node("MatMul", [u2, e.const("bstack", bstack)], "y4")
        e.node("Reshape", [y4, e.shape("s_out", e.lead([n]))], e.y)
    elif variant == "bfirst_outer":
        t = e.node("MatMul", [x4, e.const("bcat", bcat)], "t")
        t3 = e.node("Reshape", [t, e.shape("s_mid", [-1, k1 * r, n2])], "t3")
        tt = e.node("Transpose", [t3], "tt", perm=[1, 0, 2])  # [k1*r, rows, n2]
        t2 = e.node("Reshape", [tt, e.shape("s_2d", [k1 * r, -1])], "t2")
        z = e.node("MatMul", [e.const("acat", acat), t2], "z")  # [n1, rows*n2]
        z3 = e.node("Reshape", [z, e.shape("s_z3", [n1, -1, n2])], "z3")
        zt = e.node("Transpose", [z3], "zt", perm=[1, 0, 2])
        e.node("Reshape", [zt, e.out_shape(n)], e.y)
    elif variant == "afirst_outer":
        xt = e.node("Transpose", [x4], "xt", perm=[1, 0, 2])  # [k1, rows, k2]
        x2 = e.node("Reshape", [xt, e.shape("s_2d", [k1, -1])], "x2")
        u = e.node("MatMul", [e.const("acat", acat_a), x2], "u")  # [n1*r, rows*k2]
        u3 = e.node("Reshape", [u, e.shape("s_u3", [n1 * r, -1, k2])], "u3")
        ut = e.node("Transpose", [u3], "ut", perm=[1, 0, 2])
        u2 = e.node("Reshape", [ut, e.shape("s_mid", [-1, n1, r * k2])], "u2")
        y4 = e.node("MatMul", [u2, e.const("bstack", bstack)], "y4")
        e.node("Reshape", [y4, e.out_shape(n)], e.y)
    elif variant == "einsum":
        letters = "bcdefg"[:e.rank_x - 1]
        eq = f"{letters}ij,tik,tjl->{letters}kl"
        y4 = e.node("Einsum", [x4, e.const("a", a), e.const("b", b)], "y4", equation=eq)
        e.node("Reshape", [y4, e.shape("s_out", e.lead([n]))], e.y)
    else:
        raise SystemExit(f"unknown variant '{variant}'; one of {', '.join(VARIANTS)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("out")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    model = onnx.load(args.model)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in g.input}
    inferred = onnx.shape_inference.infer_shapes(model).graph
    ranks.update({v.name: len(v.type.tensor_type.shape.dim) for v in inferred.value_info})
    rng = np.random.default_rng(args.seed)
    nodes, new_inits, dead = [], [], set()
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or ranks.get(node.input[0], 0) < 2:
            nodes.append(node)
            continue
        k, n = w.dims
        k1, n1 = squarest(k), squarest(n)
        k2, n2 = k // k1, n // n1
        a = rng.standard_normal((args.rank, k1, n1)) / np.sqrt(k1 * args.rank)
        b = rng.standard_normal((args.rank, k2, n2)) / np.sqrt(k2)
        variant = args.variant
        if variant == "mixed":  # B first's right-hand GEMM r*K*n2 against A first's r*k2*N
            variant = "bfirst" if k * n2 >= k2 * n else "afirst"
        e = Emitter(node.name + "/", node.input[0], node.output[0], ranks[node.input[0]], new_inits)
        emit(e, variant, k1, k2, n1, n2, a, b)
        nodes += e.nodes
        dead.add(w.name)
    del g.node[:]
    g.node.extend(nodes)
    kept = [t for t in g.initializer if t.name not in dead]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    if args.variant == "einsum" and model.opset_import[0].version < 12:
        model.opset_import[0].version = 12
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
