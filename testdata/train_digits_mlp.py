#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains a small MLP on real data and exports it to ONNX: testdata/digits_mlp.onnx.

Run with Debian's interpreter (python3-sklearn, python3-onnx, python3-numpy):

    /usr/bin/python3 testdata/train_digits_mlp.py

Data: sklearn.datasets.load_digits, the UCI 8x8 handwritten digits shipped inside scikit-learn
(1797 samples, 64 features with integer values 0..16, 10 classes). No download.
Preprocessing: features are divided by 16, so the model's input is in [0, 1]. Anyone feeding the
model must scale the same way; digits_test.json already holds scaled features.
Split: train_test_split(test_size=0.25, random_state=0, stratify=labels) -> 1347 train, 450 test.
Model: MLPClassifier(hidden_layer_sizes=(256, 128), relu, adam, alpha=0.1, random_state=0).
alpha is the L2 penalty (weight decay). With sklearn's default 1e-4 the weights stay about half
random-init noise after the ~100 epochs the data needs (a rank-16 Kronecker fit of fc1 leaves 50%
relative error); weight decay removes that noise, as it does in real trained models, so the weight
spectra decay and compression can be judged on a realistic model. Accuracy is the same (~97.8%).

ONNX graph (opset 13, IR 8):
    input "input" float ['batch', 64]
    fc1 = Gemm(input, fc1.weight [256, 64], fc1.bias [256], transB=1) -> Relu
    fc2 = Gemm(.., fc2.weight [128, 256], fc2.bias [128], transB=1) -> Relu
    fc3 = Gemm(.., fc3.weight [10, 128], fc3.bias [10], transB=1) -> Softmax(axis=-1)
    output "probabilities" float ['batch', 10]
Weights are stored [N, K] (= coefs_.T), as PyTorch's Linear does.

Also writes testdata/digits_test.json: the first 200 samples of the test split (scaled features,
row-major flat list, and labels) for accuracy checks in the ONNX Runtime harness.

Deterministic: re-running writes byte-identical files.
"""

import json
import os
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_PATH = os.path.join(HERE, "digits_mlp.onnx")
TEST_JSON_PATH = os.path.join(HERE, "digits_test.json")
SCALE = 16.0
NUM_JSON_SAMPLES = 200


def load_data():
    digits = load_digits()
    x = (digits.data / SCALE).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def train(x_train, y_train):
    clf = MLPClassifier(hidden_layer_sizes=(256, 128), activation="relu", solver="adam",
                        alpha=0.1, max_iter=1000, random_state=0)
    with warnings.catch_warnings():
        # Converges in ~320 epochs; should a numpy/sklearn update change that, the model is
        # still usable and the accuracy is printed, so keep the output quiet.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return clf


def numpy_forward(weights, biases, x):
    """What the ONNX graph computes, in numpy: Gemm(transB=1)+Relu layers, then Softmax."""
    h = x.astype(np.float32)
    for i, (w_nk, b) in enumerate(zip(weights, biases)):
        h = h @ w_nk.T + b
        if i + 1 < len(weights):
            h = np.maximum(h, 0)
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return e / e.sum(axis=1, keepdims=True)


def export(clf, test_accuracy, num_train, num_test):
    weights = [np.ascontiguousarray(w.T, dtype=np.float32) for w in clf.coefs_]  # [N, K]
    biases = [np.asarray(b, dtype=np.float32) for b in clf.intercepts_]
    nodes, inits = [], []
    prev = "input"
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        name = f"fc{i}"
        inits += [numpy_helper.from_array(w, f"{name}.weight"),
                  numpy_helper.from_array(b, f"{name}.bias")]
        out = f"{name}_out"
        nodes.append(helper.make_node("Gemm", [prev, f"{name}.weight", f"{name}.bias"], [out],
                                      name=name, transB=1))
        prev = out
        if i < len(weights):
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}_out"], name=f"relu{i}"))
            prev = f"relu{i}_out"
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], name="softmax", axis=-1))
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    doc = ("sklearn MLPClassifier " + "-".join(map(str, sizes)) +
           " trained on sklearn load_digits (8x8 digits); input = pixel value / 16, in [0, 1]; "
           "output = class probabilities for digits 0..9")
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=inits, doc_string=doc)
    model = helper.make_model(graph, producer_name="kfc-tests", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 13)], doc_string=doc)
    model.ir_version = 8
    helper.set_model_props(model, {
        "author": "kfc-tests",
        "source": "sklearn.datasets.load_digits",
        "preprocessing": "x / 16",
        "split": f"train_test_split(test_size=0.25, random_state=0, stratify=y): "
                 f"{num_train} train, {num_test} test",
        "test_accuracy": f"{test_accuracy:.4f}",
        "training": f"MLPClassifier(hidden_layer_sizes=(256, 128), alpha=0.1, "
                    f"random_state=0), {clf.n_iter_} epochs",
        "generator": "train_digits_mlp.py",
    })
    onnx.checker.check_model(model, full_check=True)
    with open(MODEL_PATH, "wb") as f:
        f.write(model.SerializeToString())
    return weights, biases


def main():
    x_train, x_test, y_train, y_test = load_data()
    clf = train(x_train, y_train)
    test_accuracy = float(clf.score(x_test, y_test))
    weights, biases = export(clf, test_accuracy, len(y_train), len(y_test))

    # The exported graph must compute what sklearn computes.
    got = numpy_forward(weights, biases, x_test)
    want = clf.predict_proba(x_test)
    max_diff = float(np.abs(got - want).max())
    assert max_diff < 1e-5, f"ONNX-equivalent forward differs from predict_proba by {max_diff}"
    onnx_accuracy = float((got.argmax(axis=1) == y_test).mean())
    assert onnx_accuracy == test_accuracy, (onnx_accuracy, test_accuracy)

    subset_x = x_test[:NUM_JSON_SAMPLES]
    subset_y = y_test[:NUM_JSON_SAMPLES]
    subset_accuracy = float((got[:NUM_JSON_SAMPLES].argmax(axis=1) == subset_y).mean())
    with open(TEST_JSON_PATH, "w") as f:
        json.dump({
            "description": "first 200 samples of the digits test split; features = pixel / 16",
            "num_samples": int(len(subset_y)),
            "num_features": int(subset_x.shape[1]),
            "features": [float(v) for v in subset_x.reshape(-1)],
            "labels": [int(v) for v in subset_y],
            "reference_accuracy": round(subset_accuracy, 4),
        }, f, separators=(",", ":"))
        f.write("\n")

    print(f"digits MLP: test accuracy {test_accuracy:.4f} on {len(y_test)} samples "
          f"({subset_accuracy:.4f} on the first {len(subset_y)}); "
          f"max |onnx - predict_proba| = {max_diff:.2e}; wrote {os.path.basename(MODEL_PATH)}")


if __name__ == "__main__":
    main()
