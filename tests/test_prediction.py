"""The prediction path: one row at a time gives what a whole batch gives,
and a prediction leaves BLAS's thread setting alone where it never calls it."""

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.backends import backend_class
from fastmlp.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    (X, y), (Xt, _) = load_digits()
    return X, y, Xt[:40]


@pytest.mark.parametrize("activation,output", [("sigmoid", "sigmoid"), ("relu", "softmax"),
                                               ("tanh", "softmax")])
def test_one_row_at_a_time_equals_the_batch(digits, gemm_path, activation, output):
    """Bit for bit on fastmlp's own products (every row's sums run over k in
    order, whatever the block and thread count); at float32 rounding on
    sgemm, whose kernels for one row and for many differ."""
    X, y, Xt = digits
    m = MLPClassifier((24, 12), activation=activation, output=output, epochs=3,
                      batch_size=64, random_state=0, backend="compiled", n_threads=2).fit(X, y)
    whole = m.predict_proba(Xt)
    rows = np.vstack([m.predict_proba(Xt[i:i + 1]) for i in range(len(Xt))])
    if gemm_path == "own-gemm":
        np.testing.assert_array_equal(rows, whole)
    else:
        np.testing.assert_allclose(rows, whole, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal([m.predict(Xt[i:i + 1])[0] for i in range(len(Xt))],
                                  m.predict(Xt))


def test_a_regressor_predicts_one_row_as_in_the_batch(digits, gemm_path):
    X, y, Xt = digits
    m = MLPRegressor((16,), epochs=3, random_state=0, backend="compiled").fit(X, y / 10)
    rows = np.concatenate([m.predict(Xt[i:i + 1]) for i in range(len(Xt))])
    np.testing.assert_allclose(rows, m.predict(Xt), rtol=1e-5, atol=1e-7)


def test_prediction_leaves_blas_alone_only_where_it_never_calls_it(gemm_path):
    compiled = backend_class("compiled")
    train = compiled.thread_plan(2)
    predict = compiled.thread_plan(2, predict=True)
    assert train[1] == 1                                # slices in parallel: BLAS at 1
    assert predict[0] == train[0]
    assert predict[1] == (None if gemm_path == "own-gemm" else 1)
    assert backend_class("numpy").thread_plan(3, predict=True) == (None, 3)
