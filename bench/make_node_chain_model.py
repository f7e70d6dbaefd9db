#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a chain of LAYERS layers y = Relu(x W + b), W D x D (opset 13), on a [batch, D] input,
each in one of the forms kfc-compress emits: the models that measure ONNX Runtime's cost per node
at batch 1.

    /usr/bin/python3 bench/make_node_chain_model.py OUT.onnx --layers 8 --dim 16
        [--form dense|lowrank|kron] [--seed 3]

Forms (D = d*d for kron): dense: Gemm(x, W, b) (1 node); lowrank: Gemm(MatMul(x, U), V, b) with U
D x 1 (2 nodes); kron: the rank-1 Kronecker subgraph of rewrite/kron_layer.h, B first (Reshape,
MatMul, Reshape, MatMul, Reshape, Add: 6 nodes); every layer then a Relu (ONNX Runtime folds it
into a Gemm). Timed in pairs with tests/ort/bench_inference.js --pair, the dense chain as the
"original": at D = 16 a layer does at most 256 MACs per row, so the time per layer above the dense
one is the cost of the form's extra nodes. docs/benchmarks.md ("Cost of a node at batch 1") gives
the figures and the constant the never-slower policy takes from them.
"""

import argparse
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--form", choices=["dense", "lowrank", "kron"], default="dense")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    dim = args.dim
    side = math.isqrt(dim)
    if args.form == "kron" and side * side != dim:
        parser.error("--form kron needs a square --dim")
    nodes, inits = [], []

    def const(name, array, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def node(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def rand(*shape):
        return rng.standard_normal(shape) / math.sqrt(shape[0])

    prev = "x"
    for i in range(args.layers):
        p = f"l{i}"
        b = const(f"{p}.b", rand(dim))
        if args.form == "dense":
            h = node("Gemm", [prev, const(f"{p}.w", rand(dim, dim)), b], f"{p}/gemm")
        elif args.form == "lowrank":
            u = node("MatMul", [prev, const(f"{p}.u", rand(dim, 1))], f"{p}/mm")
            h = node("Gemm", [u, const(f"{p}.v", rand(1, dim)), b], f"{p}/gemm")
        else:
            x4 = node("Reshape", [prev, const(f"{p}.s_in", [0, side, side], np.int64)], f"{p}/x4")
            t = node("MatMul", [x4, const(f"{p}.bcat", rand(side, side))], f"{p}/t")
            t2 = node("Reshape", [t, const(f"{p}.s_mid", [0, side, side], np.int64)], f"{p}/t2")
            y4 = node("MatMul", [const(f"{p}.acat", rand(side, side)), t2], f"{p}/y4")
            y = node("Reshape", [y4, const(f"{p}.s_out", [0, dim], np.int64)], f"{p}/y")
            h = node("Add", [y, b], f"{p}/add")
        prev = node("Relu", [h], "y" if i + 1 == args.layers else f"{p}/relu")
    graph = helper.make_graph(
        nodes, "node_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dim])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
