"""A numpy stand-in for the part of the onnxruntime Python API that the Python runner shown in
docs/runner.md uses (InferenceSession, get_inputs/get_outputs with name/type/shape, run), enough
for the Fashion MLP, its probe and its low-rank compressed form: Gemm, MatMul, Add, Relu,
Softmax, Reshape, Identity. PyPI (and so onnxruntime for Python) is out of reach here; this lets
tests/ort/runner.test.js run that runner's protocol handling end to end. Not ONNX Runtime."""
import os
import numpy as np
import onnx
from onnx import numpy_helper

__version__ = "0.0-numpy-standin"
_TYPES = {1: "tensor(float)", 11: "tensor(double)", 7: "tensor(int64)"}


class _Arg:
    def __init__(self, vi):
        self.name = vi.name
        t = vi.type.tensor_type
        self.type = _TYPES.get(t.elem_type, "tensor(other)")
        self.shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                      for d in t.shape.dim]


class InferenceSession:
    def __init__(self, path, providers=None):
        if not os.path.exists(path):
            raise RuntimeError(f"Load model from {path} failed: File doesn't exist")
        self.m = onnx.load(path)
        self.w = {t.name: numpy_helper.to_array(t) for t in self.m.graph.initializer}
        inits = set(self.w)
        self._in = [_Arg(v) for v in self.m.graph.input if v.name not in inits]
        self._out = [_Arg(v) for v in self.m.graph.output]

    def get_inputs(self):
        return self._in

    def get_outputs(self):
        return self._out

    def run(self, names, feeds):
        env = dict(self.w)
        env.update(feeds)
        for n in self.m.graph.node:
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            i = [env[x] if x else None for x in n.input]
            op = n.op_type
            if op == "Gemm":
                A = i[0].T if a.get("transA", 0) else i[0]
                B = i[1].T if a.get("transB", 0) else i[1]
                y = a.get("alpha", 1.0) * (A @ B)
                if len(i) > 2 and i[2] is not None:
                    y = y + a.get("beta", 1.0) * i[2]
            elif op == "MatMul":
                y = i[0] @ i[1]
            elif op == "Add":
                y = i[0] + i[1]
            elif op == "Relu":
                y = np.maximum(i[0], 0)
            elif op == "Softmax":
                e = np.exp(i[0] - i[0].max(axis=a.get("axis", -1), keepdims=True))
                y = e / e.sum(axis=a.get("axis", -1), keepdims=True)
            elif op == "Reshape":
                shape = [d if d != 0 else i[0].shape[k] for k, d in enumerate(i[1])]
                y = i[0].reshape(shape)
            elif op == "Identity":
                y = i[0]
            else:
                raise RuntimeError(f"op {op} not in the stand-in")
            env[n.output[0]] = np.asarray(y, dtype=i[0].dtype)
        return [env[k] for k in names]
