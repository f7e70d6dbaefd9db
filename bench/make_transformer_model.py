#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a transformer-like ONNX model: BLOCKS feed-forward blocks on a [batch, seq, D] input,

    h = LayerNormalization(x);  x = x + MatMul(Relu(MatMul(h, W1[D, F]) + b1), W2[F, D]) + b2

(opset 17, IR 8), with float32 weights drawn at the scale of a trained layer (1/sqrt(fan in)).
With --external NAME, every MatMul weight is stored in NAME next to the model (external data,
4096-aligned offsets), as exporters write models past 2 GiB; biases and norms stay inline.

    /usr/bin/python3 bench/make_transformer_model.py OUT.onnx [--blocks 75] [--d-model 1024]
        [--d-ff 4096] [--external OUT.weights] [--seed 7]

The defaults give 150 MatMul weights of 16 MiB: 2.52 GB (2.35 GiB) of weights. Generation
streams one weight at a time, so it needs little memory.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def external_tensor(name, dims, location, offset, length):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--blocks", type=int, default=75)
    parser.add_argument("--d-model", type=int, default=1024)
    parser.add_argument("--d-ff", type=int, default=4096)
    parser.add_argument("--external", default="", help="data file name, next to OUT")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    d, f = args.d_model, args.d_ff
    rng = np.random.default_rng(args.seed)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    data = open(os.path.join(out_dir, args.external), "wb") if args.external else None

    inits, nodes = [], []

    def weight(name, rows, cols):
        w = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(1.0 / np.sqrt(rows))
        if data is None:
            inits.append(numpy_helper.from_array(w, name))
            return
        data.write(b"\0" * (-data.tell() % 4096))
        offset = data.tell()
        w.tofile(data)
        inits.append(external_tensor(name, [rows, cols], args.external, offset, w.nbytes))

    def vector(name, values):
        inits.append(numpy_helper.from_array(values.astype(np.float32), name))

    prev = "x"
    for i in range(args.blocks):
        p = f"b{i}."
        vector(p + "ln_scale", np.ones(d))
        vector(p + "ln_bias", np.zeros(d))
        weight(p + "w1", d, f)
        vector(p + "b1", rng.standard_normal(f) * 0.01)
        weight(p + "w2", f, d)
        vector(p + "b2", rng.standard_normal(d) * 0.01)
        nodes += [
            helper.make_node("LayerNormalization", [prev, p + "ln_scale", p + "ln_bias"],
                             [p + "h"], name=p + "ln", axis=-1),
            helper.make_node("MatMul", [p + "h", p + "w1"], [p + "u"], name=p + "fc1"),
            helper.make_node("Add", [p + "u", p + "b1"], [p + "ub"], name=p + "fc1_bias"),
            helper.make_node("Relu", [p + "ub"], [p + "a"], name=p + "relu"),
            helper.make_node("MatMul", [p + "a", p + "w2"], [p + "v"], name=p + "fc2"),
            helper.make_node("Add", [p + "v", p + "b2"], [p + "vb"], name=p + "fc2_bias"),
            helper.make_node("Add", [prev, p + "vb"], ["y" if i == args.blocks - 1 else p + "out"],
                             name=p + "residual"),
        ]
        prev = nodes[-1].output[0]
    if data is not None:
        data.close()
    graph = helper.make_graph(
        nodes, "transformer_ffn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", d])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="kfc-compress bench")
    model.ir_version = 8
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
