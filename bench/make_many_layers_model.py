#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a model with many tiny layers, for measuring per-layer overhead (memory, time).

usage: /usr/bin/python3 bench/make_many_layers_model.py OUT.onnx [--layers N] [--width W]

A chain of N MatMuls y_i = y_{i-1} W_i, each W_i a W x W float32 initializer (seeded random),
input x [batch, W]. The defaults (100,000 layers of 8 x 8) give a 32 MB model: every layer is
below --min-params, so the tool finds and reports 100,000 layers and compresses none.
Run with Debian's interpreter (python3-onnx, python3-numpy).
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=100000)
    parser.add_argument("--width", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    w = args.width
    nodes, inits = [], []
    prev = "x"
    for i in range(args.layers):
        weight = "w%d" % i
        out = "y" if i == args.layers - 1 else "h%d" % i
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((w, w)) / np.sqrt(w)).astype(np.float32), weight))
        nodes.append(helper.make_node("MatMul", [prev, weight], [out], name="layer%d" % i))
        prev = out
    graph = helper.make_graph(
        nodes, "many_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
