#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the small models that kfc-compress is tested on, plus synthetic/cases.json.

Run with Debian's interpreter (python3-onnx, python3-numpy):

    /usr/bin/python3 testdata/make_synthetic_models.py

Deterministic: a fixed numpy seed per case, so re-running rewrites byte-identical files.

Each model has one graph input, one graph output and the layer(s) under test between them
(sometimes followed by a Relu). Weights are constant initializers with at least 4096 elements,
above the tool's default --min-params, and with K and N that have many divisors, so that a
Kronecker factorization is both possible and profitable. Dynamic dims have symbolic names.

cases.json lists, per model: "name", "file" (relative to testdata/synthetic), "inputs" (input name
-> the concrete shape to feed), "output" (the graph output's name) and "expected_layers" (how many
Gemm/MatMul layers in it have a constant weight and static K, N: all of them are eligible), and
optionally "input_types" (input name -> "float16"/"float64"; float32 when absent) and "tolerance"
(the relative error allowed in the ONNX Runtime cross-check; 1e-5 when absent).
"""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "synthetic")
INPUT = "x"
OUTPUT = "y"


def weight(rng, shape):
    # Scaled like a trained layer's init (std 1/sqrt(fan_in)) so outputs stay O(1).
    fan_in = shape[0] if len(shape) > 1 else 1
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def bias(rng, shape):
    return np.asarray(0.1 * rng.standard_normal(shape), dtype=np.float32)


def init(name, array):
    # np.array, not ascontiguousarray: the latter turns a rank-0 bias into shape [1].
    return numpy_helper.from_array(np.array(array, dtype=np.float32, order="C"), name)


def value_info(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def finish(name, nodes, in_dims, out_dims, initializers, doc, opset=13, ir_version=8):
    # onnx 1.12's checker knows IR versions up to 8: newer ones are checked as 8, then stamped.
    graph = helper.make_graph(
        nodes,
        name,
        [value_info(INPUT, in_dims)],
        [value_info(OUTPUT, out_dims)],
        initializer=initializers,
        doc_string=doc,
    )
    model = helper.make_model(
        graph,
        producer_name="kfc-tests",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", opset)],
        doc_string=doc,
    )
    model.ir_version = min(ir_version, 8)
    helper.set_model_props(
        model, {"author": "kfc-tests", "case": name, "generator": "make_synthetic_models.py"}
    )
    onnx.checker.check_model(model, full_check=True)
    model.ir_version = ir_version
    return model


def gemm_case(name, k, n, *, trans_b, bias_shape, alpha=None, beta=None, m="batch", relu=False,
              opset=13, ir_version=8, trans_a=False, seed):
    """Y = alpha * X @ op(B) + beta * C, with B constant ([K,N], or [N,K] when transB=1)."""
    rng = np.random.default_rng(seed)
    w = weight(rng, (k, n))  # W is K x N whatever the storage
    inits = [init("W", w.T if trans_b else w)]
    inputs = [INPUT, "W"]
    if bias_shape is not None:
        inits.append(init("C", bias(rng, bias_shape)))
        inputs.append("C")
    attrs = {}
    if trans_a:  # the input is stored [K, M]
        attrs["transA"] = 1
    if trans_b:
        attrs["transB"] = 1
    if alpha is not None:
        attrs["alpha"] = alpha
    if beta is not None:
        attrs["beta"] = beta
    gemm_out = "gemm_out" if relu else OUTPUT
    nodes = [helper.make_node("Gemm", inputs, [gemm_out], name="gemm", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", [gemm_out], [OUTPUT], name="relu"))
    doc = (f"Gemm K={k} N={n} transB={int(trans_b)} bias={bias_shape} alpha={alpha} beta={beta}"
           f"{' + Relu' if relu else ''}; weight initializer 'W'")
    in_dims = [k, m] if trans_a else [m, k]
    model = finish(name, nodes, in_dims, [m, n], inits, doc, opset, ir_version)
    feed_m = m if isinstance(m, int) else 3
    return model, {INPUT: [k, feed_m] if trans_a else [feed_m, k]}, 1


def matmul_case(name, lead_dims, feed_lead, k, n, *, relu=False, opset=13, ir_version=8, seed):
    """Y = X @ W for X [..., K] with any number of leading (batch) dims, W constant [K, N]."""
    rng = np.random.default_rng(seed)
    inits = [init("W", weight(rng, (k, n)))]
    mm_out = "matmul_out" if relu else OUTPUT
    nodes = [helper.make_node("MatMul", [INPUT, "W"], [mm_out], name="matmul")]
    if relu:
        nodes.append(helper.make_node("Relu", [mm_out], [OUTPUT], name="relu"))
    doc = f"MatMul on a rank-{len(lead_dims) + 1} input, K={k} N={n}{' + Relu' if relu else ''}"
    model = finish(name, nodes, lead_dims + [k], lead_dims + [n], inits, doc, opset, ir_version)
    return model, {INPUT: feed_lead + [k]}, 1


def constant_node_weight(seed):
    """MatMul whose weight is a Constant node (no node name) reached through an Identity."""
    rng = np.random.default_rng(seed)
    w = weight(rng, (64, 96))
    nodes = [
        helper.make_node("Constant", [], ["w_const"], value=numpy_helper.from_array(w, "w_value")),
        helper.make_node("Identity", ["w_const"], ["w_id"], name="weight_identity"),
        helper.make_node("MatMul", [INPUT, "w_id"], [OUTPUT], name="matmul"),
    ]
    doc = "MatMul with its weight in a nameless Constant node, through an Identity"
    model = finish("matmul_constant_node", nodes, ["batch", 64], ["batch", 96], [], doc)
    return model, {INPUT: [3, 64]}, 1


def cast_fp16_weight(seed):
    """Gemm(transB=1) whose weight is stored as float16 and Cast to float32."""
    rng = np.random.default_rng(seed)
    w16 = weight(rng, (96, 64)).astype(np.float16)  # stored [N, K]
    inits = [numpy_helper.from_array(w16, "W16"), init("C", bias(rng, (96,)))]
    nodes = [
        helper.make_node("Cast", ["W16"], ["W"], name="weight_cast", to=TensorProto.FLOAT),
        helper.make_node("Gemm", [INPUT, "W", "C"], [OUTPUT], name="gemm", transB=1),
    ]
    doc = "Gemm whose weight is a float16 initializer Cast to float32"
    model = finish("gemm_cast_fp16", nodes, ["batch", 64], ["batch", 96], inits, doc)
    return model, {INPUT: [3, 64]}, 1


def shared_weight(seed):
    """Two MatMuls reading one weight (x W, Relu, then W again): factorized once, shared."""
    rng = np.random.default_rng(seed)
    inits = [init("W", weight(rng, (96, 96)))]
    nodes = [
        helper.make_node("MatMul", [INPUT, "W"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "W"], [OUTPUT], name="second"),
    ]
    doc = "One 96x96 weight used by two MatMul layers"
    model = finish("matmul_shared_weight", nodes, ["batch", 96], ["batch", 96], inits, doc)
    return model, {INPUT: [4, 96]}, 2


def mlp_two_layers(seed):
    """MatMul + Add + Relu + Gemm(transB=1): two compressible layers in a chain."""
    rng = np.random.default_rng(seed)
    k, h, n = 64, 128, 96
    w1 = weight(rng, (k, h))
    b1 = bias(rng, (h,))
    w2 = weight(rng, (h, n))
    b2 = bias(rng, (n,))
    inits = [init("fc1.weight", w1), init("fc1.bias", b1),
             init("fc2.weight", w2.T), init("fc2.bias", b2)]
    nodes = [
        helper.make_node("MatMul", [INPUT, "fc1.weight"], ["fc1_mm"], name="fc1"),
        helper.make_node("Add", ["fc1_mm", "fc1.bias"], ["fc1_out"], name="fc1_bias"),
        helper.make_node("Relu", ["fc1_out"], ["relu1"], name="relu1"),
        helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], [OUTPUT], name="fc2",
                         transB=1),
    ]
    doc = f"MLP {k} -> {h} (MatMul+Add+Relu) -> {n} (Gemm transB=1)"
    model = finish("mlp_two_layers", nodes, ["batch", k], ["batch", n], inits, doc)
    return model, {INPUT: [5, k]}, 2


def externalize(tensors, data_file, align, last_without_length=False):
    """Moves the tensors' raw_data into synthetic/<data_file>, each at an offset aligned to
    `align`; returns the file's bytes. The last tensor may omit `length` (runs to the end)."""
    blob = b""
    for i, t in enumerate(tensors):
        blob += b"\0" * (-len(blob) % align)
        offset, raw = len(blob), t.raw_data
        blob += raw
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        entries = [("location", data_file), ("offset", str(offset)), ("length", str(len(raw)))]
        if last_without_length and i == len(tensors) - 1:
            entries.pop()
        for key, value in entries:
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    return blob


def ext_gemm_matmul(seed):
    """Gemm(transB=1) + Relu + MatMul with both weights in ext_weights.data (the second without a
    length: it runs to the end of the file)."""
    rng = np.random.default_rng(seed)
    k, h, n = 64, 96, 128
    w1 = weight(rng, (k, h))
    b1 = bias(rng, (h,))
    w2 = weight(rng, (h, n))
    inits = [init("fc1.weight", w1.T), init("fc1.bias", b1), init("fc2.weight", w2)]
    nodes = [
        helper.make_node("Gemm", [INPUT, "fc1.weight", "fc1.bias"], ["fc1_out"], name="fc1",
                         transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu1"], name="relu1"),
        helper.make_node("MatMul", ["relu1", "fc2.weight"], [OUTPUT], name="fc2"),
    ]
    doc = f"Gemm {k} -> {h} + Relu + MatMul -> {n}; weights in external data ext_weights.data"
    model = finish("ext_gemm_matmul", nodes, ["batch", k], ["batch", n], inits, doc)
    data = {"ext_weights.data": externalize(
        [model.graph.initializer[0], model.graph.initializer[2]], "ext_weights.data", 64,
        last_without_length=True)}
    return model, {INPUT: [3, k]}, 2, data


def ext_constant_node(seed):
    """MatMul whose weight is a Constant node's value, stored at offset 4096 of ext_const.data."""
    rng = np.random.default_rng(seed)
    w = weight(rng, (96, 64))
    nodes = [
        helper.make_node("Constant", [], ["w_const"], name="weight_const",
                         value=numpy_helper.from_array(w, "w_value")),
        helper.make_node("MatMul", [INPUT, "w_const"], [OUTPUT], name="matmul"),
    ]
    doc = "MatMul with its weight in a Constant node whose value is external data"
    model = finish("ext_constant_node", nodes, ["batch", 96], ["batch", 64], [], doc)
    value = model.graph.node[0].attribute[0].t
    data = {"ext_const.data": b"\0" * 4096 + externalize([value], "ext_const.data", 1)}
    return model, {INPUT: [2, 96]}, 1, data


def weight_first_case(name, lead_dims, feed_lead, k, m, cols, feed_cols, *, seed):
    """Y = W @ X with W constant [M, K] first and X [..., K, C]: Y [..., M, C]."""
    rng = np.random.default_rng(seed)
    inits = [init("W", weight(rng, (k, m)).T)]
    nodes = [helper.make_node("MatMul", ["W", INPUT], [OUTPUT], name="matmul_wx")]
    doc = f"MatMul(W, X), W constant [{m}, {k}], X rank {len(lead_dims) + 2}, C={cols}"
    model = finish(name, nodes, lead_dims + [k, cols], lead_dims + [m, cols], inits, doc)
    return model, {INPUT: feed_lead + [k, feed_cols]}, 1


def if_gemm_branches(seed):
    """If with a Gemm in each branch: the then-branch's weight is the branch's own initializer,
    the else-branch's an initializer of the main graph (visible in subgraphs)."""
    rng = np.random.default_rng(seed)
    k, n = 64, 96
    then_g = helper.make_graph(
        [helper.make_node("Gemm", [INPUT, "W_then", "C_then"], ["a"], name="fc", transB=1)],
        "then_branch", [], [value_info("a", ["batch", n])],
        initializer=[init("W_then", weight(rng, (k, n)).T), init("C_then", bias(rng, (n,)))])
    else_g = helper.make_graph(
        [helper.make_node("Relu", [INPUT], ["r"], name="relu"),
         helper.make_node("Gemm", ["r", "W_else"], ["b"], name="fc_else", alpha=0.5)],
        "else_branch", [], [value_info("b", ["batch", n])])
    nodes = [helper.make_node("If", ["cond"], [OUTPUT], name="branch", then_branch=then_g,
                              else_branch=else_g)]
    graph = helper.make_graph(
        nodes, "if_gemm_branches",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), value_info(INPUT, ["batch", k])],
        [value_info(OUTPUT, ["batch", n])], initializer=[init("W_else", weight(rng, (k, n)))],
        doc_string="If with a Gemm in each branch (branch initializer / main-graph initializer)")
    return typed_model("if_gemm_branches", graph), {"cond": [], INPUT: [3, k]}, 2


def loop_matmul_outer(seed):
    """Loop (3 iterations) whose body multiplies the carried state by a main-graph initializer."""
    rng = np.random.default_rng(seed)
    k = 96
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
         helper.make_node("MatMul", ["h", "W"], ["m"], name="step"),
         helper.make_node("Tanh", ["m"], ["h_next"], name="tanh")],
        "loop_body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         value_info("h", ["batch", k])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         value_info("h_next", ["batch", k])])
    inits = [init("W", weight(rng, (k, k))),
             numpy_helper.from_array(np.array(3, dtype=np.int64), "trip_count"),
             numpy_helper.from_array(np.array(True), "keep_going_init")]
    nodes = [helper.make_node("Loop", ["trip_count", "keep_going_init", INPUT], [OUTPUT],
                              name="loop", body=body)]
    graph = helper.make_graph(nodes, "loop_matmul_outer", [value_info(INPUT, ["batch", k])],
                              [value_info(OUTPUT, ["batch", k])], initializer=inits,
                              doc_string="Loop body MatMul on an outer initializer, 3 iterations")
    return typed_model("loop_matmul_outer", graph), {INPUT: [4, k]}, 1


def scan_matmul(seed):
    """Scan over the first axis; the body's MatMul weight is the body's own initializer."""
    rng = np.random.default_rng(seed)
    k, n = 64, 128
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "W_body"], ["y_t"], name="scan_fc")],
        "scan_body", [value_info("x_t", ["batch", k])], [value_info("y_t", ["batch", n])],
        initializer=[init("W_body", weight(rng, (k, n)))])
    nodes = [helper.make_node("Scan", [INPUT], [OUTPUT], name="scan", body=body,
                              num_scan_inputs=1)]
    graph = helper.make_graph(nodes, "scan_matmul", [value_info(INPUT, ["time", "batch", k])],
                              [value_info(OUTPUT, ["time", "batch", n])],
                              doc_string="Scan whose body holds a MatMul and its weight")
    return typed_model("scan_matmul", graph), {INPUT: [3, 2, k]}, 1


def old_opset_mlp(name, opset, ir_version, seed):
    """Gemm(transA=1, transB=1, alpha, beta, bias) + Relu + MatMul: a two-layer MLP at an old
    opset; at IR 3 every initializer is listed as a graph input too, as that IR requires."""
    rng = np.random.default_rng(seed)
    k, h, n = 64, 96, 128
    inits = [init("fc1.weight", weight(rng, (k, h)).T), init("fc1.bias", bias(rng, (h,))),
             init("fc2.weight", weight(rng, (h, n)))]
    nodes = [
        helper.make_node("Gemm", [INPUT, "fc1.weight", "fc1.bias"], ["fc1"], name="fc1",
                         transA=1, transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
        helper.make_node("MatMul", ["relu1", "fc2.weight"], [OUTPUT], name="fc2"),
    ]
    inputs = [value_info(INPUT, [k, "batch"])]
    if ir_version < 4:
        inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
                   for t in inits]
    graph = helper.make_graph(nodes, name, inputs, [value_info(OUTPUT, ["batch", n])],
                              initializer=inits,
                              doc_string=f"Gemm(transA, transB, alpha, beta) + Relu + MatMul, "
                                         f"opset {opset}, IR {ir_version}")
    model = typed_model(name, graph, opset)
    model.ir_version = ir_version
    onnx.checker.check_model(model, full_check=True)
    return model, {INPUT: [k, 3]}, 2


NP_TYPES = {TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}
JS_TYPES = {TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64"}


def typed_matmul(name, dtype, seed):
    """MatMul computing in float16 or float64 on a 3-D input: the factors keep the dtype."""
    rng = np.random.default_rng(seed)
    k, n = 96, 128
    inits = [numpy_helper.from_array(weight(rng, (k, n)).astype(NP_TYPES[dtype]), "W")]
    nodes = [helper.make_node("MatMul", [INPUT, "W"], [OUTPUT], name="matmul")]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(INPUT, dtype, ["batch", "seq", k])],
        [helper.make_tensor_value_info(OUTPUT, dtype, ["batch", "seq", n])], initializer=inits,
        doc_string=f"MatMul in {JS_TYPES[dtype]} on a rank-3 input, K={k} N={n}")
    return typed_model(name, graph), {INPUT: [2, 3, k]}, 1


def typed_gemm(name, dtype, seed):
    """Gemm(transB=1, alpha, beta) with a bias, computing in float16 or float64."""
    rng = np.random.default_rng(seed)
    k, n = 64, 96
    np_type = NP_TYPES[dtype]
    inits = [numpy_helper.from_array(weight(rng, (k, n)).T.astype(np_type), "W"),
             numpy_helper.from_array(bias(rng, (n,)).astype(np_type), "C")]
    nodes = [helper.make_node("Gemm", [INPUT, "W", "C"], [OUTPUT], name="gemm", transB=1,
                              alpha=0.5, beta=2.0)]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(INPUT, dtype, ["batch", k])],
        [helper.make_tensor_value_info(OUTPUT, dtype, ["batch", n])], initializer=inits,
        doc_string=f"Gemm in {JS_TYPES[dtype]}, transB=1, alpha=0.5, beta=2, bias [N]")
    return typed_model(name, graph), {INPUT: [3, k]}, 1


def typed_model(name, graph, opset=13):
    model = helper.make_model(graph, producer_name="kfc-tests", producer_version="1",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    helper.set_model_props(
        model, {"author": "kfc-tests", "case": name, "generator": "make_synthetic_models.py"})
    onnx.checker.check_model(model, full_check=True)
    return model


# Per-case extras for cases.json: the input element types ("float32" when absent) and the relative
# error ONNX Runtime may show between two evaluations of the same map (1e-5 when absent): float16
# rounds every intermediate to 11 bits; float64 layers are factorized and stored in double, so
# their outputs agree to double rounding (measured: 3e-15 at most).
CASE_EXTRAS = {
    "matmul_fp16": {"input_types": {INPUT: "float16"}, "tolerance": 2e-3},
    "gemm_fp16": {"input_types": {INPUT: "float16"}, "tolerance": 2e-3},
    "matmul_fp64": {"input_types": {INPUT: "float64"}, "tolerance": 1e-12},
    "gemm_fp64": {"input_types": {INPUT: "float64"}, "tolerance": 1e-12},
    # W X maps [..., K, C] to [..., M, C]; "output_dims" is the output shape for the given feed.
    "matmul_wx_2d": {"output_dims": [96, 5]},
    "matmul_wx_3d_static": {"output_dims": [2, 128, 7]},
    "matmul_wx_4d": {"output_dims": [2, 2, 64, 3]},
    # "input_values" fixes an input's data: each branch of the If gets a case of its own.
    "if_gemm_branches": {"input_types": {"cond": "bool"}, "input_values": {"cond": [1]},
                         "output_dims": [3, 96]},
    "if_gemm_branches_else": {"input_types": {"cond": "bool"}, "input_values": {"cond": [0]},
                              "output_dims": [3, 96]},
    "scan_matmul": {"output_dims": [3, 2, 128]},
    "mlp_opset7_ir3": {"output_dims": [3, 128]},
    "mlp_opset9_ir4": {"output_dims": [3, 128]},
}
# Second cases for models listed in build_cases(): (case name, model name).
EXTRA_CASES = [("if_gemm_branches_else", "if_gemm_branches")]


def build_cases():
    # (name, builder) in a fixed order; each builder gets its own seed.
    return [
        ("gemm_transb0", lambda s: gemm_case(
            "gemm_transb0", 96, 128, trans_b=False, bias_shape=(128,), seed=s)),
        ("gemm_transb1", lambda s: gemm_case(
            "gemm_transb1", 128, 96, trans_b=True, bias_shape=(96,), seed=s)),
        ("gemm_alpha_beta", lambda s: gemm_case(
            "gemm_alpha_beta", 64, 128, trans_b=True, bias_shape=(1, 128), alpha=0.5, beta=2.0,
            seed=s)),
        ("gemm_bias_2d", lambda s: gemm_case(
            "gemm_bias_2d", 80, 96, trans_b=False, bias_shape=(4, 96), m=4, seed=s)),
        ("gemm_bias_scalar", lambda s: gemm_case(
            "gemm_bias_scalar", 128, 64, trans_b=False, bias_shape=(), seed=s)),
        ("gemm_bias_len1", lambda s: gemm_case(
            "gemm_bias_len1", 64, 96, trans_b=True, bias_shape=(1,), beta=0.5, seed=s)),
        ("gemm_no_bias", lambda s: gemm_case(
            "gemm_no_bias", 96, 96, trans_b=True, bias_shape=None, relu=True, seed=s)),
        ("matmul_2d", lambda s: matmul_case(
            "matmul_2d", ["batch"], [3], 64, 128, seed=s)),
        ("matmul_3d", lambda s: matmul_case(
            "matmul_3d", ["batch", "seq"], [2, 5], 96, 64, relu=True, seed=s)),
        ("matmul_4d", lambda s: matmul_case(
            "matmul_4d", ["batch", 2, "seq"], [2, 2, 3], 64, 96, seed=s)),
        ("mlp_two_layers", mlp_two_layers),
        ("gemm_opset11", lambda s: gemm_case(
            "gemm_opset11", 128, 128, trans_b=True, bias_shape=(128,), opset=11, ir_version=6,
            seed=s)),
        ("matmul_opset17", lambda s: matmul_case(
            "matmul_opset17", ["batch"], [4], 128, 80, opset=17, seed=s)),
        # What current exporters write: IR 10 at opset 21 (newer than onnx 1.12 knows).
        ("matmul_opset21_ir10", lambda s: matmul_case(
            "matmul_opset21_ir10", ["batch", "seq"], [2, 3], 96, 128, opset=21, ir_version=10,
            seed=s)),
        ("gemm_transa", lambda s: gemm_case(
            "gemm_transa", 64, 96, trans_b=True, bias_shape=(96,), trans_a=True, seed=s)),
        ("matmul_constant_node", constant_node_weight),
        ("gemm_cast_fp16", cast_fp16_weight),
        ("matmul_shared_weight", shared_weight),
        # Weights in external data files next to the model (appended last: earlier seeds stay).
        ("ext_gemm_matmul", ext_gemm_matmul),
        ("ext_constant_node", ext_constant_node),
        ("matmul_fp16", lambda s: typed_matmul("matmul_fp16", TensorProto.FLOAT16, s)),
        ("gemm_fp16", lambda s: typed_gemm("gemm_fp16", TensorProto.FLOAT16, s)),
        ("matmul_fp64", lambda s: typed_matmul("matmul_fp64", TensorProto.DOUBLE, s)),
        ("gemm_fp64", lambda s: typed_gemm("gemm_fp64", TensorProto.DOUBLE, s)),
        ("matmul_wx_2d", lambda s: weight_first_case(
            "matmul_wx_2d", [], [], 64, 96, "cols", 5, seed=s)),
        ("matmul_wx_3d_static", lambda s: weight_first_case(
            "matmul_wx_3d_static", ["batch"], [2], 96, 128, 7, 7, seed=s)),
        ("matmul_wx_4d", lambda s: weight_first_case(
            "matmul_wx_4d", ["batch", 2], [2, 2], 128, 64, "cols", 3, seed=s)),
        ("if_gemm_branches", if_gemm_branches),
        ("loop_matmul_outer", loop_matmul_outer),
        ("scan_matmul", scan_matmul),
        ("mlp_opset7_ir3", lambda s: old_opset_mlp("mlp_opset7_ir3", 7, 3, s)),
        ("mlp_opset9_ir4", lambda s: old_opset_mlp("mlp_opset9_ir4", 9, 4, s)),
    ]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = []
    for index, (name, build) in enumerate(build_cases()):
        model, feeds, expected_layers, *data = build(1000 + index)
        for data_name, blob in (data[0] if data else {}).items():
            with open(os.path.join(OUT_DIR, data_name), "wb") as f:
                f.write(blob)
        file_name = name + ".onnx"
        with open(os.path.join(OUT_DIR, file_name), "wb") as f:
            f.write(model.SerializeToString())
        cases.append({"name": name, "file": file_name, "inputs": feeds, "output": OUTPUT,
                      "expected_layers": expected_layers, **CASE_EXTRAS.get(name, {})})
    for name, model_name in EXTRA_CASES:
        base = next(c for c in cases if c["name"] == model_name)
        cases.append({**base, "name": name, **CASE_EXTRAS.get(name, {})})
    # One case per line: short enough to read, and diffs stay per case.
    with open(os.path.join(OUT_DIR, "cases.json"), "w") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(c) for c in cases) + "\n]\n")


if __name__ == "__main__":
    main()
