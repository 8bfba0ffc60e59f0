"""fastmlp against Keras/TensorFlow: same weights => same gradients, steps, predictions.

TensorFlow comes with the test extra (``pip install ".[test]"``), so these
tests run in CI; they are not skipped when it is missing.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import tensorflow as tf

from fastmlp import MLPClassifier, NetworkState, backends, init_weights
from fastmlp._optim import Optimizer
from fastmlp.datasets import load_digits
from fastmlp.experiments.keras_models import (KerasTwin, blog_cnn, blog_mlp, keras_twin,
                                              mnist_for_keras)

from _reference import blog, dense_targets, random_problem, sample_weights


def steps_in_lockstep(backend, twin, X, Y, B, rates, sample_weight=None):
    """One fastmlp backend step and one twin step per rate, on consecutive
    batches of B rows (weighted by their sample weights, if any); the batch
    costs (before each step) must agree."""
    for s, lr in enumerate(rates):
        idx = np.arange(s * B, (s + 1) * B)
        cost, reg, _ = backend.train_batch(idx, lr)
        w = None if sample_weight is None else sample_weight[idx]
        t_cost = twin.train_step(X[idx], Y[idx], lr, w)
        assert cost + reg == pytest.approx(t_cost, rel=1e-4)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_blog_cnn_has_the_blogs_parameter_count():
    model = blog_cnn()
    assert model.count_params() == 96_844
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D",
                     "Flatten", "Dense", "Dense"]
    assert model.layers[-1].activation.__name__ == "softmax"


def test_blog_cnn_builder_is_parameterised():
    m = blog_cnn(conv=[(8, (3, 3), "tanh")], pool=[(2, 2)], dense=[(10, "sigmoid")])
    # 8*9+8 = 80 conv weights; 13*13*8 = 1352 inputs to the dense layer
    assert m.count_params() == 80 + 1352 * 10 + 10
    with pytest.raises(ValueError, match="pooling"):
        blog_cnn(conv=[(8, (3, 3), "relu")], pool=[(2, 2), (2, 2)])


def test_blog_mlp_is_the_blogs_model():
    m = blog_mlp()
    dense = m.layers
    assert [d.units for d in dense] == [70, 30, 10]
    assert all(d.activation.__name__ == "sigmoid" for d in dense)
    assert dense[0].kernel_regularizer is not None and dense[2].kernel_regularizer is None
    assert m.count_params() == 57_390            # the blog's count for 784-70-30-10
    assert type(m.optimizer).__name__ == "RMSprop"
    X, Y = mnist_for_keras(np.full((3, 784), 255, np.uint8), [0, 3, 9])
    assert X.max() == 1.0 and Y.sum() == 3 and Y[1, 3] == 1.0


def model_with_weights(weights, l2, l1, backend, X, y, activation="sigmoid",
                       output="sigmoid"):
    """A fitted-looking MLPClassifier carrying exactly these weights."""
    m = blog(hidden_layer_sizes=tuple(W.shape[0] for W in weights[:-1]),
                      activation=activation, output=output,
                      epochs=1, batch_size=len(X), learning_rate=1e-30, lr_decay=0.0,
                      momentum=0.0, l2=l2, l1=l1, backend=backend, scaling="none",
                      random_state=0)
    m.fit(X, y)
    m.coefs_ = [W.copy() for W in weights]
    return m


@pytest.mark.parametrize("l2,l1", [(0.0, 0.0), (0.05, 0.0), (0.05, 0.02)])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_gradients_equal_gradient_tape(backend, l2, l1, activation, output):
    layers = (20, 12, 8, 4)
    weights, X, Y = random_problem(layers, batch=64, seed=5)
    y = Y.argmax(axis=1)
    m = model_with_weights(weights, l2, l1, backend, X, y, activation, output)
    cost, reg, grads = m.loss_and_gradients(X, y)
    twin = KerasTwin(weights, l2=l2, l1=l1, activation=activation, output=output)
    t_cost, t_reg, t_grads = twin.gradients(X, Y)
    assert cost == pytest.approx(t_cost, rel=1e-4)
    assert reg == pytest.approx(t_reg, rel=1e-4, abs=1e-8)
    for l, (g, t) in enumerate(zip(grads, t_grads)):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5, err_msg=f"layer {l}")


#: (output, kind of targets, weighted): regression (identity + squared
#: error), multilabel (dense sigmoid targets) and weighted label targets
TARGETS_AND_WEIGHTS = [("identity", "regression", False), ("identity", "regression", True),
                       ("sigmoid", "multilabel", False), ("sigmoid", "multilabel", True),
                       ("sigmoid", "labels", True), ("softmax", "labels", True)]


@pytest.mark.parametrize("output,kind,weighted", TARGETS_AND_WEIGHTS)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_regression_and_weighted_gradients_equal_gradient_tape(backend, output, kind,
                                                               weighted, activation):
    """backends.loss_and_gradients with dense targets or sample weights
    against tf.GradientTape on the twin's loss (1/2 sum (a - y)^2 for the
    identity output; each sample's term times its weight)."""
    layers, n = (20, 12, 8, 4), 64
    weights, X, Y = random_problem(layers, batch=n, seed=5)
    targets = "labels" if kind == "labels" else "dense"
    if targets == "dense":
        Y = dense_targets(kind, n, layers[-1], 5)
    w = sample_weights(n, 5) if weighted else None
    config = backends.BackendConfig(activation=activation, output=output, l2=0.05, l1=0.02,
                                    targets=targets, sample_weight=w)
    cost, reg, grads = backends.loss_and_gradients(backend, weights, X, Y, config)
    twin = KerasTwin(weights, l2=0.05, l1=0.02, activation=activation, output=output)
    t_cost, t_reg, t_grads = twin.gradients(X, Y, w)
    assert cost == pytest.approx(t_cost, rel=1e-4)
    assert reg == pytest.approx(t_reg, rel=1e-4)
    for l, (g, t) in enumerate(zip(grads, t_grads)):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5, err_msg=f"layer {l}")


@pytest.mark.parametrize("output,kind,weighted", TARGETS_AND_WEIGHTS)
def test_regression_and_weighted_steps_equal_keras_steps(backend, output, kind, weighted):
    """Ten steps with fastmlp's momentum rule from the same weights, over the
    same batches: the twin's weights (its loss weighted per sample too)."""
    layers, B, steps, lr, mom = (30, 16, 10), 50, 10, 0.002, 0.5
    weights, X, Y = random_problem(layers, batch=B * steps, seed=9)
    targets = "labels" if kind == "labels" else "dense"
    if targets == "dense":
        Y = dense_targets(kind, B * steps, layers[-1], 9)
    w = sample_weights(B * steps, 9) if weighted else None
    state = NetworkState(layers, [W.copy() for W in weights])   # zero velocities
    config = backends.BackendConfig(activation="tanh", output=output, l2=0.02, l1=0.001,
                                    momentum=mom, batch_size=B, n_threads=1, targets=targets,
                                    sample_weight=w)
    be = backends.backend_class(backend)(X, Y, state, config)
    twin = KerasTwin(weights, l2=0.02, l1=0.001, momentum=mom, activation="tanh",
                     output=output)
    steps_in_lockstep(be, twin, X, Y, B, [lr] * steps, w)
    for l, (a, b) in enumerate(zip(state.weights, twin.weights())):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6, err_msg=f"W[{l}]")


@pytest.mark.parametrize("steps", [1, 10])
def test_training_steps_equal_keras_steps(backend, steps):
    """From the same weights, over the same batches, with fastmlp's momentum rule."""
    layers, B, lr, mom, l2, l1 = (30, 16, 10), 50, 0.01, 0.5, 0.02, 0.001
    weights, X, Y = random_problem(layers, batch=B * steps, seed=9)
    state = NetworkState(layers, [W.copy() for W in weights])   # zero velocities
    config = backends.BackendConfig(l2=l2, l1=l1, momentum=mom, batch_size=B, n_threads=1)
    be = backends.backend_class(backend)(X, Y, state, config)
    twin = KerasTwin(weights, l2=l2, l1=l1, momentum=mom)
    steps_in_lockstep(be, twin, X, Y, B, [lr] * steps)
    for l, (a, b) in enumerate(zip(state.weights, twin.weights())):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6, err_msg=f"W[{l}]")


def test_predictions_agree_with_the_keras_twin(digits, backend):
    (X, y), (Xt, yt) = digits
    m = blog((30, 20), epochs=5, batch_size=64, learning_rate=0.05,
                      random_state=2, backend=backend).fit(X, y)
    twin = keras_twin(m)
    np.testing.assert_allclose(twin.predict_outputs(Xt), m.predict_outputs(Xt),
                               rtol=1e-4, atol=1e-6)
    keras_pred = m.classes_[twin.predict_outputs(Xt).argmax(axis=1)]
    assert np.mean(keras_pred == m.predict(Xt)) >= 0.995


def test_keras_twin_needs_a_fitted_model():
    with pytest.raises(ValueError, match="fitted"):
        keras_twin(MLPClassifier())


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_rmsprop_and_adam_steps_equal_keras_optimizers(backend, optimizer):
    """From the same weights, over the same 10 batches at a decaying rate,
    fastmlp's rmsprop / adam land where keras.optimizers.RMSprop / Adam do."""
    layers, B, steps, l2 = (30, 16, 10), 50, 10, 0.02
    weights, X, Y = random_problem(layers, batch=B * steps, seed=9)
    # fresh optimiser state: zero mean square / moments, step 0
    state = NetworkState(layers, [W.copy() for W in weights], optimizer=optimizer)
    config = backends.BackendConfig(optimizer=Optimizer(optimizer), l2=l2, batch_size=B,
                                    n_threads=1)
    be = backends.backend_class(backend)(X, Y, state, config)
    twin = KerasTwin(weights, l2=l2, optimizer=optimizer)
    steps_in_lockstep(be, twin, X, Y, B, [0.01 / (1 + 0.1 * s) for s in range(steps)])
    # measured: at most 6e-7 apart (rmsprop), 5e-8 (adam); mixing the two
    # rules up moves weights by 0.08
    for l, (a, b) in enumerate(zip(state.weights, twin.weights())):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"W[{l}]")


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_objective_mlp_fit_takes_fastmlps_steps(digits, optimizer):
    """The benchmark's equal-terms Keras model: model.fit over 3 batches from
    fastmlp's initial weights, on the same scaled data and batches, ends at
    fastmlp's weights."""
    from fastmlp.experiments.keras_models import objective_mlp
    (X, y), _ = digits
    X, y = X[:300], y[:300]
    m = blog((20,), optimizer=optimizer, epochs=1, batch_size=100,
                      learning_rate=0.003, lr_decay=0.0, l2=0.05, shuffle=False,
                      random_state=1, n_threads=1)
    m.partial_fit(X, y, classes=np.unique(y))
    # the weights MLPClassifier(random_state=1) started from
    W0 = init_weights(m.layers_, m.init_factor, np.random.default_rng(1))
    model = objective_mlp(W0, l2=0.05, optimizer=optimizer, learning_rate=0.003)
    Xs = ((X.astype(np.float32) - m.mean_) / m.scale_).astype(np.float32)
    Y = np.eye(len(m.classes_), dtype=np.float32)[np.searchsorted(m.classes_, y)]
    model.fit(Xs, Y, epochs=1, batch_size=100, shuffle=False, verbose=0)
    for layer, W in zip(model.layers, m.coefs_):
        np.testing.assert_allclose(layer.kernel.numpy().T, W[:, 1:], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.bias.numpy(), W[:, 0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_regressor_gradients_equal_gradient_tape(backend, activation):
    """MLPRegressor.loss_and_gradients (the backend's own training step) against
    tf.GradientTape on the Keras twin of the fitted regressor, weighted."""
    from fastmlp import MLPRegressor
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 12)).astype(np.float32)
    Y = rng.standard_normal((50, 3)).astype(np.float32)
    w = sample_weights(50, 4)
    m = MLPRegressor((10, 6), activation=activation, epochs=2, l2=0.05, l1=0.01,
                     target_scaling="none",
                     backend=backend, random_state=0).fit(X, Y)
    cost, reg, grads = m.loss_and_gradients(X, Y, sample_weight=w)
    twin = keras_twin(m)
    assert twin.output == "identity"
    t_cost, t_reg, t_grads = twin.gradients(twin.transform(X), Y, sample_weight=w)
    assert cost == pytest.approx(t_cost, rel=1e-4)
    assert reg == pytest.approx(t_reg, rel=1e-4)
    for l, (g, t) in enumerate(zip(grads, t_grads)):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5, err_msg=f"layer {l}")
    np.testing.assert_allclose(twin.predict_outputs(X).ravel(),
                               m.predict(X).ravel(), rtol=1e-5, atol=1e-5)
