"""Datasets for training and testing fastmlp models.

This package loads data sets into plain NumPy arrays, always
returned as ``(X_train, y_train), (X_test, y_test)``:

* :func:`load_mnist` -- MNIST from a Keras-format ``mnist.npz``: the copy shipped
  inside this package (the default), the Keras cache
  ``~/.keras/datasets/mnist.npz``, or any other file in that layout.
* :func:`load_idx` -- MNIST (or a data set in the same layout) from the four
  original IDX files, gzipped or not.
* :func:`read_idx` -- one IDX file of any IDX element type, as an array.
* :func:`load_digits` -- scikit-learn's small 8x8 digits set, split into
  train and test parts; handy for quick runs and tests.
* :func:`load_npz` -- any data set stored as plain arrays in an .npz file
  (a train/test split, or X and y split here), with class labels or
  continuous targets.

Images are returned as raw ``uint8`` pixels (``float32`` for the digits set)
and labels as ``uint8``; scaling is left to the model.  Nothing here touches
the network.  Corrupt, truncated or inconsistent files raise
:class:`DatasetError`, whose message names the file and the problem.

:data:`MNIST_SHA256` holds the SHA-256 digest of the raw bytes
(``hashlib.sha256(a.tobytes())``) of each array of the shipped ``mnist.npz``.
"""

from ._common import DatasetError, array_sha256
from ._idx import load_idx, read_idx
from ._mnist import MNIST_SHA256, load_mnist
from ._tables import load_digits, load_npz

__all__ = [
    "DatasetError",
    "MNIST_SHA256",
    "load_mnist",
    "read_idx",
    "load_idx",
    "load_digits",
    "load_npz",
    "array_sha256",
]
