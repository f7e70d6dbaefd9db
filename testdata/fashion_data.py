#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fashion-MNIST from the Debian package dataset-fashion-mnist, as float32 arrays.

    from fashion_data import load_train, load_test
    x, y = load_train()             # x float32 [60000, 784] in [0, 1], y int64 [60000]
    x, y = load_train(limit=2000)   # the first 2,000 training images (e.g. for calibration)
    x, y = load_test()              # x float32 [10000, 784], y int64 [10000]

Files: /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
(install with: apt-get install dataset-fashion-mnist). Set FASHION_MNIST_DIR to read them from
another folder; plain (not gzipped) idx files are read too.

Preprocessing, the model's input contract: pixel / 255 (exactly, in float32), rows flattened in
row-major order (28 x 28 -> 784). tests/ort/eval_fashion.js normalizes the same way.

Run as a script to print the shapes and label counts: /usr/bin/python3 testdata/fashion_data.py
"""

import gzip
import os
import struct

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
NUM_FEATURES = 28 * 28
NUM_CLASSES = 10
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# idx magic numbers: 0x0000 | type 0x08 (unsigned byte) | number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def data_dir():
    return os.environ.get("FASHION_MNIST_DIR", DEFAULT_DIR)


def _idx_path(name):
    """The path of an idx file, .gz or plain; a clear error when neither exists."""
    folder = data_dir()
    for candidate in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file '{name}[.gz]' not found in {folder}. Install the Debian package "
        f"(apt-get install dataset-fashion-mnist) or set FASHION_MNIST_DIR to a folder holding "
        f"the idx files.")


def _read_idx(name, magic, ndim, limit):
    path = _idx_path(name)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
        if len(header) < 4 + 4 * ndim:
            raise ValueError(f"{path}: truncated idx header")
        got_magic, *dims = struct.unpack(f">I{ndim}I", header)
        if got_magic != magic:
            raise ValueError(f"{path}: idx magic {got_magic:#010x}, expected {magic:#010x}")
        count = dims[0] if limit is None else min(int(limit), dims[0])
        item = int(np.prod(dims[1:], dtype=np.int64))
        data = np.frombuffer(f.read(count * item), dtype=np.uint8)
    if data.size != count * item:
        raise ValueError(f"{path}: expected {count * item} bytes of data, read {data.size}")
    return data.reshape([count] + dims[1:])


def _load(prefix, limit):
    images = _read_idx(f"{prefix}-images-idx3-ubyte", IMAGES_MAGIC, 3, limit)
    labels = _read_idx(f"{prefix}-labels-idx1-ubyte", LABELS_MAGIC, 1, limit)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"{prefix}: images {images.shape} do not match labels {labels.shape}")
    x = images.reshape(len(images), NUM_FEATURES).astype(np.float32) / np.float32(255)
    return x, labels.astype(np.int64)


def load_train(limit=None):
    """The training split (60,000 images), or its first `limit` images, in file order."""
    return _load("train", limit)


def load_test(limit=None):
    """The test split (10,000 images), or its first `limit` images, in file order."""
    return _load("t10k", limit)


def main():
    for name, loader in (("train", load_train), ("test", load_test)):
        x, y = loader()
        counts = np.bincount(y, minlength=NUM_CLASSES)
        print(f"{name}: x {x.shape} {x.dtype} in [{x.min()}, {x.max()}], y {y.shape}, "
              f"per class {counts.tolist()}")
    print(f"from {data_dir()}")


if __name__ == "__main__":
    main()
