#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes DIR/large.onnx: a chain of LAYERS MatMuls with SIZE x SIZE float32 weights, all stored
in DIR/large.weights (external data, 4096-aligned offsets). The .onnx file is a few KB; the
weights add up to LAYERS * SIZE^2 * 4 bytes (33 x 4096^2 x 4 = 2.06 GiB, past protobuf's 2 GiB).

    /usr/bin/python3 bench/make_large_external_model.py DIR [LAYERS] [SIZE]

One random base matrix, scaled per layer, keeps generation fast; each layer differs.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper


def main():
    out_dir = sys.argv[1]
    layers = int(sys.argv[2]) if len(sys.argv) > 2 else 33
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    rng = np.random.default_rng(5)
    base = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    inits, nodes = [], []
    prev = "x"
    with open(os.path.join(out_dir, "large.weights"), "wb") as f:
        for i in range(layers):
            f.write(b"\0" * (-f.tell() % 4096))
            offset = f.tell()
            (base * np.float32(1.0 + 0.01 * i)).tofile(f)
            t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[size, size])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", "large.weights"), ("offset", str(offset)),
                               ("length", str(size * size * 4))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            inits.append(t)
            out = "y" if i == layers - 1 else f"h{i}"
            nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [out], name=f"l{i}"))
            prev = out
    graph = helper.make_graph(
        nodes, "large", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", size])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, os.path.join(out_dir, "large.onnx"))


if __name__ == "__main__":
    main()
