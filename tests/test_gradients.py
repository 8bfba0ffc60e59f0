"""The backends' gradients against finite differences of the plain maths.

The gradients are those of a real training step (fastmlp.backends.loss_and_gradients:
one step of sgd at rate 1 without momentum).  The float64 checks run on the
NumPy backend, which computes in float64 when given float64 data; each
backend's float32 step is checked against float64 finite differences.
"""

import numpy as np
import pytest

from fastmlp import backends
from fastmlp.backends import BackendConfig, loss_and_gradients

from _reference import dense_targets, loss, numeric_gradient, random_problem, sample_weights

nb = backends.module("numpy")


def backend_gradients(weights, X, Y, l2, l1, dtype, activation="sigmoid", output="sigmoid",
                      backend="numpy", targets="labels", sample_weight=None):
    """(cost, gradients) of one batch by one training step of ``backend``, in ``dtype``."""
    Ws = [np.array(W, dtype) for W in weights]
    config = BackendConfig(activation=activation, output=output, l2=l2, l1=l1,
                           targets=targets, sample_weight=sample_weight)
    cost, _, grads = loss_and_gradients(backend, Ws, np.asarray(X, dtype),
                                        np.asarray(Y, dtype), config)
    return cost, grads


@pytest.mark.parametrize("layers", [(5, 4, 3), (6, 5, 4, 3), (4, 6, 5, 3, 2)])
@pytest.mark.parametrize("l2,l1", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.2), (0.3, 0.2)])
def test_gradients_equal_finite_differences_float64(layers, l2, l1):
    weights, X, Y = random_problem(layers, batch=7, seed=len(layers))
    numeric = numeric_gradient(weights, X, Y, l2, l1)
    _, analytic = backend_gradients(weights, X, Y, l2, l1, np.float64)
    for l, (g_a, g_n) in enumerate(zip(analytic, numeric)):
        assert g_a.dtype == np.float64           # the step really ran in float64
        np.testing.assert_allclose(g_a, g_n, rtol=1e-6, atol=1e-7,
                                   err_msg=f"weight matrix {l}")


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("layers", [(5, 4, 3), (6, 5, 4, 3)])
def test_gradients_of_every_combination_equal_finite_differences(layers, activation, output):
    weights, X, Y = random_problem(layers, batch=7, seed=len(layers) + 10)
    numeric = numeric_gradient(weights, X, Y, 0.3, 0.2, activation=activation,
                               output=output)
    cost, analytic = backend_gradients(weights, X, Y, 0.3, 0.2, np.float64, activation,
                                       output)
    assert cost == pytest.approx(loss(weights, X, Y, activation=activation,
                                      output=output)[0], rel=1e-12)
    for l, (g_a, g_n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(g_a, g_n, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{activation}, weight matrix {l}")


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("layers", [(5, 4, 3), (6, 5, 4, 3)])
def test_float32_gradients_of_every_combination_close_to_finite_differences(
        backend, layers, activation, output):
    """Each backend's float32 training step (the compiled one cuts the batch
    into row slices and sums their partial gradients) against float64 finite
    differences, at the float32 tolerances below."""
    weights, X, Y = random_problem(layers, batch=7, seed=len(layers) + 10)
    numeric = numeric_gradient(weights, X, Y, 0.3, 0.2, activation=activation,
                               output=output)
    cost, analytic = backend_gradients(weights, X, Y, 0.3, 0.2, np.float32, activation,
                                       output, backend)
    assert cost == pytest.approx(loss(weights, X, Y, activation=activation,
                                      output=output)[0], rel=1e-5)
    for l, (g_a, g_n) in enumerate(zip(analytic, numeric)):
        assert g_a.dtype == np.float32
        np.testing.assert_allclose(g_a, g_n, rtol=2e-4, atol=2e-5,
                                   err_msg=f"{activation}, weight matrix {l}")


#: (output, targets of the problem): regression, multilabel, and label
#: targets (the last with the identity output: least squares on one-hot rows)
TARGET_CASES = [("identity", "regression"), ("sigmoid", "multilabel"), ("sigmoid", "labels"),
                ("softmax", "labels"), ("identity", "labels")]


def target_problem(layers, output, kind, weighted, seed):
    """weights, X, Y, targets mode and sample weights (or None) of a batch of 7."""
    weights, X, Y = random_problem(layers, batch=7, seed=seed)
    if kind != "labels":
        Y = dense_targets(kind, 7, layers[-1], seed)
    w = sample_weights(7, seed) if weighted else None       # two of them 0
    return weights, X, Y, ("labels" if kind == "labels" else "dense"), w


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output,kind", TARGET_CASES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("layers", [(5, 4, 3), (6, 5, 4, 3)])
def test_gradients_of_targets_and_weights_equal_finite_differences(layers, activation,
                                                                   output, kind, weighted):
    """Identity + squared error, multilabel LogLoss and sample weights: the
    NumPy backend's float64 step against float64 finite differences."""
    weights, X, Y, targets, w = target_problem(layers, output, kind, weighted, len(layers))
    numeric = numeric_gradient(weights, X, Y, 0.3, 0.2, activation=activation, output=output,
                               sample_weight=w)
    cost, analytic = backend_gradients(weights, X, Y, 0.3, 0.2, np.float64, activation,
                                       output, "numpy", targets, w)
    assert cost == pytest.approx(loss(weights, X, Y, activation=activation, output=output,
                                      sample_weight=w)[0], rel=1e-12)
    for l, (g_a, g_n) in enumerate(zip(analytic, numeric)):
        assert g_a.dtype == np.float64
        np.testing.assert_allclose(g_a, g_n, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{activation}, weight matrix {l}")


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output,kind", TARGET_CASES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("layers", [(5, 4, 3), (6, 5, 4, 3)])
def test_float32_gradients_of_targets_and_weights_close_to_finite_differences(
        backend, layers, activation, output, kind, weighted):
    """Each backend's float32 step, with dense targets or sample weights,
    against float64 finite differences, at the float32 tolerances."""
    weights, X, Y, targets, w = target_problem(layers, output, kind, weighted, len(layers))
    numeric = numeric_gradient(weights, X, Y, 0.3, 0.2, activation=activation, output=output,
                               sample_weight=w)
    cost, analytic = backend_gradients(weights, X, Y, 0.3, 0.2, np.float32, activation,
                                       output, backend, targets, w)
    assert cost == pytest.approx(loss(weights, X, Y, activation=activation, output=output,
                                      sample_weight=w)[0], rel=1e-5)
    for l, (g_a, g_n) in enumerate(zip(analytic, numeric)):
        assert g_a.dtype == np.float32
        np.testing.assert_allclose(g_a, g_n, rtol=2e-4, atol=2e-5,
                                   err_msg=f"{activation}, weight matrix {l}")


def test_weighted_gradient_is_the_weighted_sum_of_per_sample_gradients(backend):
    """Linearity: the gradient of the weighted batch equals sum_i w_i times
    the gradient of sample i alone (regularisation off: it is not weighted)."""
    weights, X, Y, targets, w = target_problem((6, 5, 3), "identity", "regression", True, 4)
    dtype = np.float64 if backend == "numpy" else np.float32
    _, whole = backend_gradients(weights, X, Y, 0.0, 0.0, dtype, "tanh", "identity", backend,
                                 targets, w)
    parts = [backend_gradients(weights, X[i:i + 1], Y[i:i + 1], 0.0, 0.0, dtype, "tanh",
                               "identity", backend, targets)[1] for i in range(7)]
    for l, G in enumerate(whole):
        want = sum(np.float64(w[i]) * parts[i][l].astype(np.float64) for i in range(7))
        np.testing.assert_allclose(G, want, rtol=1e-5, atol=1e-6, err_msg=f"matrix {l}")


def test_gradients_float32_close_to_float64_finite_differences(backend):
    weights, X, Y = random_problem((8, 6, 5, 4), batch=9, seed=3)
    numeric = numeric_gradient(weights, X, Y, 0.1, 0.05)
    _, analytic = backend_gradients(weights, X, Y, 0.1, 0.05, np.float32, backend=backend)
    for l, (g_a, g_n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(g_a, g_n, rtol=2e-4, atol=2e-5,
                                   err_msg=f"weight matrix {l}")


def test_bias_column_is_not_regularised(backend):
    """The NumPy backend in float64, the compiled one in its float32."""
    dtype = np.float64 if backend == "numpy" else np.float32
    weights, X, Y = random_problem((5, 4, 3), batch=6, seed=11)
    _, plain = backend_gradients(weights, X, Y, 0.0, 0.0, dtype, backend=backend)
    _, reg = backend_gradients(weights, X, Y, 5.0, 2.0, dtype, backend=backend)
    for g0, g1, W in zip(plain, reg, weights):
        np.testing.assert_allclose(g1[:, 0], g0[:, 0], rtol=1e-12)
        w = np.asarray(W, np.float64)[:, 1:]
        np.testing.assert_allclose(g1[:, 1:] - g0[:, 1:], 5.0 * w + 2.0 * np.sign(w),
                                   rtol=1e-6, atol=1e-6)


def test_batch_cost_is_summed_logloss(backend):
    weights, X, Y = random_problem((5, 4, 3), batch=6, seed=2)
    data, _ = loss(weights, X, Y)
    if backend == "numpy":                       # the only backend that runs float64
        cost, _ = backend_gradients(weights, X, Y, 0.0, 0.0, np.float64)
        assert cost == pytest.approx(data, rel=1e-12)
    cost32, _ = backend_gradients(weights, X, Y, 0.0, 0.0, np.float32, backend=backend)
    assert cost32 == pytest.approx(data, rel=1e-5)


def test_loss_and_gradients_reports_the_regularisation_and_keeps_the_weights(backend):
    """The regularisation cost is the reference's, at the weights before the
    step, and the step runs on copies: the caller's weights do not change."""
    weights, X, Y = random_problem((5, 4, 3), batch=6, seed=7)
    before = [W.copy() for W in weights]
    config = BackendConfig(l2=0.3, l1=0.2)
    cost, reg, _ = loss_and_gradients(backend, weights, X, Y, config)
    data, want_reg = loss(weights, X, Y, 0.3, 0.2)
    assert cost == pytest.approx(data, rel=1e-5)
    assert reg == pytest.approx(want_reg, rel=1e-6)
    for W, W0 in zip(weights, before):
        np.testing.assert_array_equal(W, W0)


def test_regularization_cost_excludes_bias(backend):
    mod = backends.module(backend)
    W = np.array([[100.0, 1.0, -2.0], [-100.0, 3.0, 0.5]], np.float32)
    assert mod.regularization_cost(W, 0.1, 0.0) == pytest.approx(0.05 * (1 + 4 + 9 + 0.25))
    assert mod.regularization_cost(W, 0.0, 0.2) == pytest.approx(0.2 * (1 + 2 + 3 + 0.5))
    assert mod.regularization_cost(W, 0.0, 0.0) == 0.0


def test_momentum_update_follows_the_blog_series_rule():
    """W <- W - (lr G + mom dW_prev) and dW_prev <- lr G, including the bias."""
    weights, X, Y = random_problem((4, 3), batch=5, seed=5, dtype=np.float64)
    W = weights[0]
    _, (G,) = backend_gradients(weights, X, Y, 0.2, 0.0, np.float64)
    prev = np.random.default_rng(0).standard_normal(W.shape)
    W_new = W.copy()
    prev_new = prev.copy()
    A = [X, np.empty((5, 3))]
    nb.forward_layer(X, W_new, A[1])
    D = np.empty((5, 3))
    nb.output_delta(A[1], Y, D, np.empty((5, 3)))
    nb.gradient_update(D, X, W_new, prev_new, 0.01, 0.2, 0.0, 0.9,
                       np.empty((3, 4)), np.empty(3), np.empty((3, 4)))
    np.testing.assert_allclose(W_new, W - (0.01 * G + 0.9 * prev), rtol=1e-12)
    np.testing.assert_allclose(prev_new, 0.01 * G, rtol=1e-12)
