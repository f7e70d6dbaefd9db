#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes testdata/exporters/: small models built the way real exporters build them, plus cases.json.

Run with Debian's interpreter (python3-onnx 1.12, python3-numpy):

    /usr/bin/python3 testdata/make_exporter_models.py

Deterministic (a fixed numpy seed per model): re-running rewrites byte-identical files.

Each pattern reproduces what a converter really emits, in the ops and names it uses:
  paddle_opset9, paddle_opset11   paddle2onnx: weights in Constant nodes with empty node names,
                                  activations flattened by Reshape(x, Concat(Slice(Shape(x)), [-1]))
                                  and Transpose, MatMul on [B, T, C] with T known only at run time,
                                  LayerNorm spelled out (ReduceMean/Sub/Pow/Sqrt/Div), hardswish as
                                  Clip/Div/Mul; opset 11 adds attention with a Reshape whose shape is
                                  Concat(Cast(Slice(Shape))) and Slice/Squeeze on the q, k, v axis.
  torch_opset17/18/20             torch.onnx: a pre-LN transformer block; attention Reshapes through
                                  Shape/Gather/Unsqueeze/Concat; nodes named /attn/qkv/MatMul,
                                  /mlp/fc1/MatMul; weights stored [K, N] as 'onnx::MatMul_*' (17, 20)
                                  or as Gemm(transB=1) 'mlp.fc1.weight' [N, K] on a 2-D view (18);
                                  LayerNormalization-17 (17, 20) or ReduceMean-18 with axes as an
                                  input (18); Gelu in its Erf form (17, 18) or Gelu-20 (20).
  tf2onnx_opset15                 tf2onnx: NHWC input, Transposes around a depthwise Conv, weights
                                  behind Identity nodes, MatMul + Add instead of Gemm, ':0' names.
  custom_domain_opset17           com.microsoft FastGelu and FusedMatMul (ONNX Runtime contrib ops)
                                  between and beside standard MatMul layers.
  fp16_opset21                    float16 throughout at opset 21, IR 10.
Every pattern also comes as <name>_kron: the same graph whose eligible weights are exactly sums of two
Kronecker products (float16: with entries exact in float16), so `--max-error 1e-4` must find them.

cases.json lists, per model: "name", "file", "exporter", "opset", "planted", "expected_layers"
(Gemm/MatMul layers with a constant weight of >= 4096 elements: what the tool should compress),
"outputs", "untouched_outputs" (outputs no eligible layer feeds: they must stay bit-identical),
"input_types" (input name -> ORT type), "feeds" (a list of {input name: shape} to run at several
batch and sequence sizes) and "tolerance" (relative output error allowed for planted variants).

Weights are >= 4096 elements (the tool's default --min-params), every file < 200 KB. The ONNX checker
runs on the models whose ops onnx 1.12 knows (opset <= 17, default domain only).
"""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "exporters")
F32 = TensorProto.FLOAT
F16 = TensorProto.FLOAT16
I64 = TensorProto.INT64


def divisor_near(n, target):
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - target), d))


class Weights:
    """Makes the weights of one model: random (std 1/sqrt(K)) or planted sums of Kronecker products."""

    def __init__(self, seed, planted, dtype=np.float32):
        self.rng = np.random.default_rng(seed)
        self.planted = planted
        self.dtype = dtype

    def matrix(self, k, n, terms=2):
        """The K x N matrix W of Y = X W."""
        if not self.planted:
            return (self.rng.standard_normal((k, n)) / np.sqrt(k)).astype(self.dtype)
        k1 = divisor_near(k, np.sqrt(k))
        n1 = divisor_near(n, np.sqrt(n))
        k2, n2 = k // k1, n // n1
        w = np.zeros((k, n))
        for _ in range(terms):
            if self.dtype == np.float16:
                # Entries a/8 and b/8 with |a|, |b| <= 8: every sum of two products is j/64 with
                # |j| <= 128, exact in float16; scaled by a power of two, still exact.
                a = self.rng.integers(-8, 9, (k1, n1)) / 8.0
                b = self.rng.integers(-8, 9, (k2, n2)) / 8.0
            else:
                a = self.rng.standard_normal((k1, n1))
                b = self.rng.standard_normal((k2, n2))
            w += np.kron(a, b)
        scale = 1.0 / (np.sqrt(k) * w.std())
        if self.dtype == np.float16:
            scale = 2.0 ** np.round(np.log2(scale))
        out = (w * scale).astype(self.dtype)
        if self.dtype == np.float16:
            assert np.array_equal(out.astype(np.float64), w * scale), "float16 weight not exact"
        return out

    def vector(self, n, std=0.1, mean=0.0):
        return (mean + std * self.rng.standard_normal(n)).astype(self.dtype)


def tensor(name, array):
    return numpy_helper.from_array(np.array(array, order="C"), name)


def i64(values):
    return np.asarray(values, dtype=np.int64)


class Graph:
    """Node list builder with exporter-like automatic names."""

    def __init__(self, prefix):
        self.nodes = []
        self.inits = []
        self.prefix = prefix
        self.count = 0

    def name(self, op):
        self.count += 1
        return f"{self.prefix}{op}.{self.count}"

    def node(self, op, inputs, output=None, name=None, domain=None, **attrs):
        out = output or self.name(op) + "_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op) if name is None
                                           else name, domain=domain, **attrs))
        return out

    def const(self, array, output=None, name=""):
        """A Constant node (paddle2onnx and torch emit these with empty or numbered names)."""
        out = output or self.name("Constant") + "_out"
        self.nodes.append(helper.make_node("Constant", [], [out], name=name,
                                           value=tensor(out + "_value", array)))
        return out

    def init(self, name, array):
        self.inits.append(tensor(name, array))
        return name


def finish(name, g, inputs, outputs, opset, doc, ir_version=8, extra_opsets=(), check=True):
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits, doc_string=doc)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, producer_name="kfc-tests", producer_version="1",
                              opset_imports=opsets, doc_string=doc)
    model.ir_version = min(ir_version, 8)
    helper.set_model_props(model, {"case": name, "generator": "make_exporter_models.py"})
    if check:
        onnx.checker.check_model(model, full_check=True)
    model.ir_version = ir_version
    return model


def vi(name, dims, elem=F32):
    return helper.make_tensor_value_info(name, elem, dims)


# ---------------------------------------------------------------- paddle2onnx


def paddle_layer_norm(g, x, c, w, opset):
    """paddle2onnx's layer_norm at opsets < 17: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div."""
    mean = g.node("ReduceMean", [x], axes=[-1], keepdims=1)
    centered = g.node("Sub", [x, mean])
    sq = g.node("Pow", [centered, g.const(np.float32(2.0))])
    var = g.node("ReduceMean", [sq], axes=[-1], keepdims=1)
    std = g.node("Sqrt", [g.node("Add", [var, g.const(np.float32(1e-5))])])
    normed = g.node("Div", [centered, std])
    return g.node("Add", [g.node("Mul", [normed, g.const(w.vector(c, mean=1.0))]),
                          g.const(w.vector(c))])


def paddle_linear(g, x, k, n, w, index):
    """matmul_v2 + elementwise_add with weights in nameless Constant nodes (linear_N.w_0/.b_0)."""
    weight = g.const(w.matrix(k, n), output=f"linear_{index}.w_0")
    bias = g.const(w.vector(n), output=f"linear_{index}.b_0")
    return g.node("Add", [g.node("MatMul", [x, weight]), bias])


def paddle_hardswish(g, x, opset):
    if opset >= 11:
        clipped = g.node("Clip", [g.node("Add", [x, g.const(np.float32(3.0))]),
                                  g.const(np.float32(0.0)), g.const(np.float32(6.0))])
    else:
        clipped = g.node("Clip", [g.node("Add", [x, g.const(np.float32(3.0))])], min=0.0, max=6.0)
    return g.node("Mul", [x, g.node("Div", [clipped, g.const(np.float32(6.0))])])


def paddle_slice(g, x, start, end, opset):
    if opset >= 10:
        return g.node("Slice", [x, g.const(i64([start])), g.const(i64([end])), g.const(i64([0]))])
    return g.node("Slice", [x], axes=[0], starts=[start], ends=[end])


def paddle_model(name, opset, planted, seed):
    """x [B, C, 1, W] -> flatten(2) -> transpose -> [B, W, C] -> LN -> (attention) -> MLP/head."""
    c = 64 if opset < 11 else 96
    w = Weights(seed, planted)
    g = Graph("p2o.")
    x = "x"
    # flatten_N: Reshape(x, Concat(Slice(Shape(x), 0, 2), [-1])): [B, C, H*W]
    shape = g.node("Shape", [x])
    flat_shape = g.node("Concat", [paddle_slice(g, shape, 0, 2, opset), g.const(i64([-1]))], axis=0)
    flat = g.node("Reshape", [x, flat_shape], output="flatten_0.tmp_0")
    seq = g.node("Transpose", [flat], output="transpose_0.tmp_0", perm=[0, 2, 1])  # [B, T, C]
    h = paddle_layer_norm(g, seq, c, w, opset)
    layers = 0
    if opset >= 11:
        heads, hd = 4, c // 4
        qkv = paddle_linear(g, h, c, 3 * c, w, 0)
        layers += 1
        # reshape2 to [0, -1, 3, heads, hd]: Concat of Cast(Slice(Shape)) pieces, as p2o emits
        s = g.node("Shape", [qkv])
        pieces = [g.node("Cast", [paddle_slice(g, s, 0, 1, opset)], to=I64),
                  g.node("Cast", [paddle_slice(g, s, 1, 2, opset)], to=I64),
                  g.const(i64([3])), g.const(i64([heads])), g.const(i64([hd]))]
        r = g.node("Reshape", [qkv, g.node("Concat", pieces, axis=0)], output="reshape2_0.tmp_0")
        t = g.node("Transpose", [r], output="transpose_1.tmp_0", perm=[2, 0, 3, 1, 4])
        qkv_parts = []
        for i in range(3):
            sl = g.node("Slice", [t, g.const(i64([i])), g.const(i64([i + 1])), g.const(i64([0]))])
            qkv_parts.append(g.node("Squeeze", [sl], axes=[0]))
        q, k, v = qkv_parts
        q = g.node("Mul", [q, g.const(np.float32(hd ** -0.5))])
        kt = g.node("Transpose", [k], perm=[0, 1, 3, 2])
        att = g.node("Softmax", [g.node("MatMul", [q, kt])], axis=-1)
        o = g.node("Transpose", [g.node("MatMul", [att, v])], perm=[0, 2, 1, 3])
        s2 = g.node("Shape", [o])
        back_shape = g.node("Concat", [g.node("Cast", [paddle_slice(g, s2, 0, 1, opset)], to=I64),
                                       g.node("Cast", [paddle_slice(g, s2, 1, 2, opset)], to=I64),
                                       g.const(i64([c]))], axis=0)
        o = g.node("Reshape", [o, back_shape], output="reshape2_1.tmp_0")
        seq = g.node("Add", [seq, paddle_linear(g, o, c, c, w, 1)])
        layers += 1
        head = paddle_linear(g, seq, c, 48, w, 2)
        layers += 1
    else:
        m = paddle_hardswish(g, paddle_linear(g, h, c, 3 * c, w, 0), opset)
        seq = g.node("Add", [seq, paddle_linear(g, m, 3 * c, c, w, 1)])
        head = paddle_linear(g, seq, c, 96, w, 2)
        layers += 3
    out = g.node("Softmax", [head], output="softmax_0.tmp_0", axis=2)
    n_out = 48 if opset >= 11 else 96
    inputs = [vi(x, ["p2o.DynamicDimension.0", c, 1, "p2o.DynamicDimension.1"])]
    outputs = [vi(out, ["p2o.DynamicDimension.2", "p2o.DynamicDimension.3", n_out])]
    doc = f"paddle2onnx-style recognizer head, opset {opset}"
    model = finish(name, g, inputs, outputs, opset, doc)
    feeds = [{x: [b, c, 1, t]} for b, t in [(1, 1), (1, 40), (3, 7), (2, 25)]]
    return model, {"exporter": "paddle2onnx", "expected_layers": layers, "feeds": feeds}


# ---------------------------------------------------------------- torch.onnx


def torch_layer_norm(g, x, c, w, opset, prefix):
    scale = g.init(f"{prefix}.weight", w.vector(c, mean=1.0))
    bias = g.init(f"{prefix}.bias", w.vector(c))
    if opset >= 17 and opset != 18:
        return g.node("LayerNormalization", [x, scale, bias],
                      name=f"/{prefix}/LayerNormalization", axis=-1, epsilon=1e-5)
    # torch 2.5 at opset 18 (decomposed): ReduceMean-18 takes its axes as an input
    axes = g.const(i64([-1]), name=f"/{prefix}/Constant")
    mean = g.node("ReduceMean", [x, axes], name=f"/{prefix}/ReduceMean", keepdims=1)
    centered = g.node("Sub", [x, mean], name=f"/{prefix}/Sub")
    sq = g.node("Pow", [centered, g.const(np.float32(2.0))], name=f"/{prefix}/Pow")
    var = g.node("ReduceMean", [sq, axes], name=f"/{prefix}/ReduceMean_1", keepdims=1)
    std = g.node("Sqrt", [g.node("Add", [var, g.const(np.float32(1e-5))], name=f"/{prefix}/Add")],
                 name=f"/{prefix}/Sqrt")
    normed = g.node("Div", [centered, std], name=f"/{prefix}/Div")
    return g.node("Add", [g.node("Mul", [normed, scale], name=f"/{prefix}/Mul"), bias],
                  name=f"/{prefix}/Add_1")


def torch_gelu(g, x, opset, prefix):
    if opset >= 20:
        return g.node("Gelu", [x], name=f"/{prefix}/Gelu", approximate="none")
    # torch's exact gelu before opset 20: x * 0.5 * (1 + erf(x / sqrt(2)))
    e = g.node("Erf", [g.node("Div", [x, g.const(np.float32(np.sqrt(2.0)))],
                              name=f"/{prefix}/Div")], name=f"/{prefix}/Erf")
    one = g.node("Add", [e, g.const(np.float32(1.0))], name=f"/{prefix}/Add")
    return g.node("Mul", [g.node("Mul", [x, one], name=f"/{prefix}/Mul"),
                          g.const(np.float32(0.5))], name=f"/{prefix}/Mul_1")


def torch_linear_matmul(g, x, k, n, w, prefix, counter):
    """nn.Linear on a 3-D input: MatMul with W^T folded into 'onnx::MatMul_N' [K, N], then Add."""
    weight = g.init(f"onnx::MatMul_{counter}", w.matrix(k, n))
    bias = g.init(f"{prefix.replace('/', '.').strip('.')}.bias", w.vector(n))
    mm = g.node("MatMul", [x, weight], name=f"/{prefix}/MatMul")
    return g.node("Add", [bias, mm], name=f"/{prefix}/Add")


def torch_dim(g, shape, index, prefix):
    """Unsqueeze(Gather(shape, index), 0): one run-time dim as a 1-element tensor."""
    idx = g.const(np.int64(index), name=f"/{prefix}/Constant_{index}")
    dim = g.node("Gather", [shape, idx], name=f"/{prefix}/Gather_{index}", axis=0)
    return g.node("Unsqueeze", [dim, g.const(i64([0]))], name=f"/{prefix}/Unsqueeze_{index}")


def torch_model(name, opset, planted, seed):
    """Pre-LN transformer block on x [batch, sequence, 72]."""
    c, heads = 72, 4
    hd = c // heads
    w = Weights(seed, planted)
    g = Graph("/")
    x = "input"
    h = torch_layer_norm(g, x, c, w, opset, "ln_1")
    qkv = torch_linear_matmul(g, h, c, 3 * c, w, "attn/qkv", 101)
    shape = g.node("Shape", [x], name="/attn/Shape")
    b_dim, t_dim = torch_dim(g, shape, 0, "attn"), torch_dim(g, shape, 1, "attn")
    split_shape = g.node("Concat", [b_dim, t_dim, g.const(i64([3, heads, hd]))],
                         name="/attn/Concat", axis=0)
    r = g.node("Reshape", [qkv, split_shape], name="/attn/Reshape")
    t = g.node("Transpose", [r], name="/attn/Transpose", perm=[2, 0, 3, 1, 4])
    q, k, v = (g.node("Gather", [t, g.const(np.int64(i))], name=f"/attn/Gather_q{i}", axis=0)
               for i in range(3))
    kt = g.node("Transpose", [k], name="/attn/Transpose_1", perm=[0, 1, 3, 2])
    scores = g.node("Mul", [g.node("MatMul", [q, kt], name="/attn/MatMul"),
                            g.const(np.float32(hd ** -0.5))], name="/attn/Mul")
    att = g.node("Softmax", [scores], name="/attn/Softmax", axis=-1)
    o = g.node("Transpose", [g.node("MatMul", [att, v], name="/attn/MatMul_1")],
               name="/attn/Transpose_2", perm=[0, 2, 1, 3])
    merge_shape = g.node("Concat", [b_dim, t_dim, g.const(i64([c]))], name="/attn/Concat_1", axis=0)
    o = g.node("Reshape", [o, merge_shape], name="/attn/Reshape_1")
    x1 = g.node("Add", [x, torch_linear_matmul(g, o, c, c, w, "attn/proj", 102)], name="/Add")
    h2 = torch_layer_norm(g, x1, c, w, opset, "ln_2")
    if opset == 18:
        # The MLP on a 2-D view with Gemm(transB=1): nn.Linear weights stored [N, K] by their names.
        flat = g.node("Reshape", [h2, g.const(i64([-1, c]))], name="/mlp/Reshape")
        fc1 = g.node("Gemm", [flat, g.init("mlp.fc1.weight", w.matrix(c, 2 * c).T.copy()),
                              g.init("mlp.fc1.bias", w.vector(2 * c))], name="/mlp/fc1/Gemm",
                     alpha=1.0, beta=1.0, transB=1)
        act = torch_gelu(g, fc1, opset, "mlp/act")
        fc2 = g.node("Gemm", [act, g.init("mlp.fc2.weight", w.matrix(2 * c, c).T.copy()),
                              g.init("mlp.fc2.bias", w.vector(c))], name="/mlp/fc2/Gemm",
                     alpha=1.0, beta=1.0, transB=1)
        mlp = g.node("Reshape", [fc2, g.node("Shape", [x1], name="/mlp/Shape")],
                     name="/mlp/Reshape_1")
    else:
        fc1 = torch_linear_matmul(g, h2, c, 2 * c, w, "mlp/fc1", 103)
        mlp = torch_linear_matmul(g, torch_gelu(g, fc1, opset, "mlp/act"), 2 * c, c, w,
                                  "mlp/fc2", 104)
    out = g.node("Add", [x1, mlp], output="output", name="/Add_1")
    inputs = [vi(x, ["batch_size", "sequence_length", c])]
    outputs = [vi(out, ["batch_size", "sequence_length", c])]
    doc = f"torch.onnx-style pre-LN transformer block, opset {opset}"
    model = finish(name, g, inputs, outputs, opset, doc, ir_version=8 if opset < 18 else 9,
                   check=opset <= 17)
    feeds = [{x: [b, t, c]} for b, t in [(1, 1), (1, 16), (2, 5), (4, 9)]]
    return model, {"exporter": "torch.onnx", "expected_layers": 4, "feeds": feeds}


# ---------------------------------------------------------------- tf2onnx


def tf_dense(g, x, k, n, w, scope):
    """Keras Dense through tf2onnx: ReadVariableOp -> Identity -> MatMul, then Add (BiasAdd)."""
    kernel = g.init(f"{scope}/MatMul/ReadVariableOp:0", w.matrix(k, n))
    read = g.node("Identity", [kernel], output=f"{scope}/MatMul/ReadVariableOp/resource:0",
                  name=f"{scope}/MatMul/ReadVariableOp")
    bias = g.init(f"{scope}/BiasAdd/ReadVariableOp:0", w.vector(n))
    mm = g.node("MatMul", [x, read], output=f"{scope}/MatMul:0", name=f"{scope}/MatMul")
    return g.node("Add", [mm, bias], output=f"{scope}/BiasAdd:0", name=f"{scope}/BiasAdd")


def tf2onnx_model(name, opset, planted, seed):
    """NHWC image [N, H, W, 48]: depthwise Conv (NCHW inside Transposes), per-pixel Dense layers
    on the 4-D tensor, global average pool and a Dense head: two outputs."""
    c = 48
    w = Weights(seed, planted)
    g = Graph("")
    x = "input_1:0"
    nchw = g.node("Transpose", [x], output="model/conv/Conv2D__6:0", name="model/conv/Conv2D__6",
                  perm=[0, 3, 1, 2])
    dw = g.init("model/conv/depthwise_kernel:0", w.vector(c * 9, std=0.3).reshape(c, 1, 3, 3))
    conv = g.node("Conv", [nchw, dw], output="model/conv/depthwise:0", name="model/conv/depthwise",
                  group=c, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    nhwc = g.node("Transpose", [conv], output="model/conv/depthwise__9:0",
                  name="model/conv/depthwise__9", perm=[0, 2, 3, 1])
    act = g.node("Relu", [nhwc], output="model/conv/Relu:0", name="model/conv/Relu")
    d1 = g.node("Relu", [tf_dense(g, act, c, 2 * c, w, "model/dense")], output="model/dense/Relu:0",
                name="model/dense/Relu")
    d2 = tf_dense(g, d1, 2 * c, c, w, "model/dense_1")
    feat = g.node("Add", [act, d2], output="Identity:0", name="model/add")
    pooled = g.node("ReduceMean", [feat], output="model/gap/Mean:0", name="model/gap/Mean",
                    axes=[1, 2], keepdims=0)
    logits = tf_dense(g, pooled, c, 128, w, "model/head")
    head = g.node("Identity", [logits], output="Identity_1:0", name="Identity_1")
    # A second output no eligible layer feeds: the conv features, NCHW (must stay bit-identical).
    side = g.node("Identity", [conv], output="Identity_2:0", name="Identity_2")
    inputs = [vi(x, ["unk__0", "unk__1", "unk__2", c])]
    outputs = [vi(feat, ["unk__3", "unk__4", "unk__5", c]), vi(head, ["unk__6", 128]),
               vi(side, ["unk__7", c, "unk__8", "unk__9"])]
    model = finish(name, g, inputs, outputs, opset, f"tf2onnx-style NHWC model, opset {opset}")
    feeds = [{x: [b, hh, ww, c]} for b, hh, ww in [(1, 1, 1), (1, 6, 5), (3, 4, 4), (2, 7, 3)]]
    return model, {"exporter": "tf2onnx", "expected_layers": 3, "feeds": feeds,
                   "untouched_outputs": [side]}


# ---------------------------------------------------------------- custom domain, float16


def custom_domain_model(name, opset, planted, seed):
    """MatMul -> com.microsoft FastGelu(x, bias) -> MatMul; beside it, com.microsoft FusedMatMul on
    the input (no standard op the tool would touch: its output must stay bit-identical)."""
    c = 72
    w = Weights(seed, planted)
    g = Graph("")
    x = "x"
    fc1 = g.node("MatMul", [x, g.init("fc1.weight", w.matrix(c, 2 * c))], name="fc1/MatMul")
    gelu = g.node("FastGelu", [fc1, g.init("fc1.bias", w.vector(2 * c))], name="fc1/FastGelu",
                  domain="com.microsoft")
    y = g.node("MatMul", [gelu, g.init("fc2.weight", w.matrix(2 * c, c))], output="y",
               name="fc2/MatMul")
    side_w = g.init("side.weight", w.vector(32 * c, std=0.1).reshape(32, c))
    side = g.node("FusedMatMul", [x, side_w], output="side", name="side/FusedMatMul",
                  domain="com.microsoft", transA=0, transB=1, alpha=0.5)
    inputs = [vi(x, ["batch", "seq", c])]
    outputs = [vi(y, ["batch", "seq", c]), vi(side, ["batch", "seq", 32])]
    model = finish(name, g, inputs, outputs, opset, "com.microsoft FastGelu and FusedMatMul",
                   extra_opsets=[("com.microsoft", 1)], check=False)
    feeds = [{x: [b, t, c]} for b, t in [(1, 1), (1, 12), (3, 5), (2, 31)]]
    return model, {"exporter": "custom domain (com.microsoft)", "expected_layers": 2,
                   "feeds": feeds, "untouched_outputs": [side]}


def fp16_model(name, opset, planted, seed):
    """float16 MLP at opset 21, IR 10: MatMul + Add + Relu + MatMul."""
    w = Weights(seed, planted, np.float16)
    g = Graph("")
    x = "x"
    fc1 = g.node("Add", [g.node("MatMul", [x, g.init("fc1.weight", w.matrix(64, 128))],
                                name="fc1/MatMul"),
                         g.init("fc1.bias", w.vector(128))], name="fc1/Add")
    y = g.node("MatMul", [g.node("Relu", [fc1], name="relu"),
                          g.init("fc2.weight", w.matrix(128, 64))], output="y", name="fc2/MatMul")
    inputs = [vi(x, ["batch", "seq", 64], F16)]
    outputs = [vi(y, ["batch", "seq", 64], F16)]
    model = finish(name, g, inputs, outputs, opset, "float16 MLP at opset 21", ir_version=10,
                   check=False)
    feeds = [{x: [b, t, 64]} for b, t in [(1, 1), (1, 10), (3, 4), (2, 17)]]
    return model, {"exporter": "float16 (opset 21)", "expected_layers": 2, "feeds": feeds,
                   "input_types": {x: "float16"}}


PATTERNS = [
    ("paddle_opset9", paddle_model, 9),
    ("paddle_opset11", paddle_model, 11),
    ("torch_opset17", torch_model, 17),
    ("torch_opset18", torch_model, 18),
    ("torch_opset20", torch_model, 20),
    ("tf2onnx_opset15", tf2onnx_model, 15),
    ("custom_domain_opset17", custom_domain_model, 17),
    ("fp16_opset21", fp16_model, 21),
]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = []
    for seed, (base, build, opset) in enumerate(PATTERNS):
        for planted in (False, True):
            name = base + ("_kron" if planted else "")
            model, info = build(name, opset, planted, 1000 + 2 * seed + int(planted))
            path = os.path.join(OUT_DIR, name + ".onnx")
            onnx.save(model, path)
            size = os.path.getsize(path)
            assert size < 200 * 1024, f"{name}: {size} bytes"
            case = {"name": name, "file": name + ".onnx", "opset": opset, "planted": planted,
                    "outputs": [o.name for o in model.graph.output],
                    "untouched_outputs": [], "input_types": {}}
            case.update(info)
            # float16 rounds every intermediate: planted outputs hold to float16 precision only.
            case["tolerance"] = 2e-3 if case["input_types"] else 1e-5
            cases.append(case)
            print(f"{name}: {size} bytes, {case['expected_layers']} layers")
    with open(os.path.join(OUT_DIR, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
