#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains a 784-512-256-10 MLP on Fashion-MNIST and exports it to ONNX: testdata/fashion_mlp.onnx.

Run with Debian's interpreter (python3-sklearn, python3-onnx, python3-numpy) after
`apt-get install dataset-fashion-mnist`:

    /usr/bin/python3 testdata/train_fashion_mlp.py

Data: the Debian package's idx files, read by testdata/fashion_data.py (60,000 train and 10,000
test images of 28x28 grey clothing pictures, 10 classes). The model trains on all 60,000 training
images and is scored on the 10,000 test images.
Preprocessing: pixel / 255 in float32, flattened row-major to 784 features in [0, 1]. Anyone
feeding the model must scale the same way (tests/ort/eval_fashion.js does).
Model: MLPClassifier(hidden_layer_sizes=(512, 256), relu, adam, alpha=0.1, batch_size=200,
max_iter=30, random_state=0): a fixed budget of 30 epochs, about 100 s on 2 cores, test accuracy
0.8901 (train 0.9285), the same family as train_digits_mlp.py. alpha is the L2 penalty
(weight decay); as there, it clears the random-init noise out of the weights (the border pixels of
Fashion-MNIST are nearly always 0, so without decay their fc1 weights would stay pure noise),
which makes the weight spectra realistic for judging compression.

ONNX graph (opset 13, IR 8), laid out as train_digits_mlp.py's: input "input" float
['batch', 784] -> fc1 Gemm (fc1.weight [512, 784], fc1.bias, transB=1) -> Relu -> fc2 Gemm
([256, 512]) -> Relu -> fc3 Gemm ([10, 256]) -> Softmax(axis=-1) -> output "probabilities" float
['batch', 10]. Weights are stored [N, K] (= coefs_.T), as PyTorch's Linear does. The builder,
build_model(), is generic over the layer sizes.

Deterministic: re-running on the same numpy/sklearn/BLAS writes a byte-identical file.
"""

import os
import sys
import time
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fashion_data import load_test, load_train  # noqa: E402
from train_digits_mlp import numpy_forward  # noqa: E402  (Gemm+Relu layers, then Softmax)

MODEL_PATH = os.path.join(HERE, "fashion_mlp.onnx")
HIDDEN = (512, 256)
ALPHA = 0.1
EPOCHS = 30


def train(x_train, y_train):
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam",
                        alpha=ALPHA, batch_size=200, max_iter=EPOCHS, random_state=0)
    with warnings.catch_warnings():
        # A fixed epoch budget: stopping at max_iter is the plan, not a failure.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return clf


def build_model(weights, biases, graph_name, doc, props):
    """An opset-13 MLP: Gemm(transB=1) layers fc1.. (weights [N, K] as fcI.weight, fcI.bias),
    Relu between them, Softmax at the end; input 'input' and output 'probabilities' with a
    dynamic 'batch' dimension. Checked with onnx.checker. Generic: any MLP script can use it."""
    nodes, inits = [], []
    prev = "input"
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        name = f"fc{i}"
        inits += [numpy_helper.from_array(w, f"{name}.weight"),
                  numpy_helper.from_array(b, f"{name}.bias")]
        nodes.append(helper.make_node("Gemm", [prev, f"{name}.weight", f"{name}.bias"],
                                      [f"{name}_out"], name=name, transB=1))
        prev = f"{name}_out"
        if i < len(weights):
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}_out"], name=f"relu{i}"))
            prev = f"relu{i}_out"
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], name="softmax", axis=-1))
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=inits, doc_string=doc)
    model = helper.make_model(graph, producer_name="kfc-tests", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 13)], doc_string=doc)
    model.ir_version = 8
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    x_train, y_train = load_train()
    x_test, y_test = load_test()
    start = time.perf_counter()
    clf = train(x_train, y_train)
    seconds = time.perf_counter() - start
    train_accuracy = float(clf.score(x_train, y_train))
    test_accuracy = float(clf.score(x_test, y_test))

    weights = [np.ascontiguousarray(w.T, dtype=np.float32) for w in clf.coefs_]  # [N, K]
    biases = [np.asarray(b, dtype=np.float32) for b in clf.intercepts_]
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    doc = ("sklearn MLPClassifier " + "-".join(map(str, sizes)) + " trained on Fashion-MNIST "
           "(Debian dataset-fashion-mnist); input = pixel value / 255, in [0, 1], 28x28 "
           "flattened row-major; output = class probabilities for the 10 clothing classes")
    model = build_model(weights, biases, "fashion_mlp", doc, {
        "author": "kfc-tests",
        "source": "Debian dataset-fashion-mnist (Fashion-MNIST, Zalando Research)",
        "preprocessing": "x / 255 (float32), 28x28 flattened row-major",
        "split": f"official: {len(y_train)} train, {len(y_test)} test",
        "test_accuracy": f"{test_accuracy:.4f}",
        "training": f"MLPClassifier(hidden_layer_sizes={HIDDEN}, alpha={ALPHA}, batch_size=200, "
                    f"random_state=0), {clf.n_iter_} epochs",
        "generator": "train_fashion_mlp.py",
    })
    with open(MODEL_PATH, "wb") as f:
        f.write(model.SerializeToString())

    # The exported graph must compute what sklearn computes.
    got = numpy_forward(weights, biases, x_test)
    want = clf.predict_proba(x_test)
    max_diff = float(np.abs(got - want).max())
    assert max_diff < 1e-4, f"ONNX-equivalent forward differs from predict_proba by {max_diff}"
    onnx_accuracy = float((got.argmax(axis=1) == y_test).mean())
    assert abs(onnx_accuracy - test_accuracy) <= 1e-3, (onnx_accuracy, test_accuracy)

    print(f"fashion MLP: trained {clf.n_iter_} epochs in {seconds:.1f} s (final loss "
          f"{clf.loss_:.4f}); train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f} on {len(y_test)} images (numpy forward of the ONNX weights: "
          f"{onnx_accuracy:.4f}, max |diff| {max_diff:.2e}); wrote "
          f"{os.path.basename(MODEL_PATH)} ({os.path.getsize(MODEL_PATH)} bytes)")


if __name__ == "__main__":
    main()
