"""model.to_keras(): the Keras twin with the input scaling inside, on raw X.

TensorFlow comes with the test extra, so these tests run in CI.  The Keras
model's predictions must equal fastmlp's (rtol 1e-5) for every hidden
activation and output, and it must survive Keras's own save and load.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression

import tensorflow as tf

from fastmlp import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(500, 16, n_informative=8, n_classes=3, random_state=0)
    Xm, Ym = make_multilabel_classification(500, 16, n_classes=4, random_state=0)
    Xr, yr = make_regression(500, 16, n_targets=2, noise=3.0, random_state=0)
    return {"labels": (X * 40 + 7, y), "multilabel": (Xm, Ym), "regression": (Xr, yr + 100)}


def fitted(data, output, **params):
    if output == "identity":
        X, y = data["regression"]
        return MLPRegressor(hidden_layer_sizes=(20, 10), epochs=4, random_state=0,
                            **params).fit(X, y), X
    X, y = data["multilabel" if output == "multilabel" else "labels"]
    out = "sigmoid" if output == "multilabel" else output
    return MLPClassifier(hidden_layer_sizes=(20, 10), output=out, epochs=4, random_state=0,
                         **params).fit(X, y), X


def keras_outputs(net, X):
    return net.predict(np.asarray(X, np.float32), verbose=0)


def fastmlp_outputs(model, X):
    if isinstance(model, MLPRegressor):
        return model.predict(X).reshape(len(X), -1)
    return model.predict_proba(X)


def assert_equal_outputs(got, want):
    if np.all((want >= 0) & (want <= 1)):
        # probabilities: relative, but for those under 1e-12, where float32
        # sigmoids and softmaxes of saturated units reach subnormal numbers
        # (and TensorFlow flushes them to 0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    else:           # values near 0 carry the rounding of the larger ones
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "multilabel", "identity"])
def test_to_keras_predicts_what_fastmlp_predicts_from_raw_input(data, activation, output):
    model, X = fitted(data, output, activation=activation)
    net = model.to_keras()
    assert isinstance(net, tf.keras.Model)
    assert net.layers[0].__class__.__name__ == "Normalization"
    assert_equal_outputs(keras_outputs(net, X), fastmlp_outputs(model, X))
    assert_equal_outputs(keras_outputs(net, X[:1]), fastmlp_outputs(model, X[:1]))


@pytest.mark.parametrize("scaling", ["minmax", "maxabs", "none"])
def test_every_scaling(data, scaling):
    model, X = fitted(data, "sigmoid", scaling=scaling)
    net = model.to_keras()
    kinds = [layer.__class__.__name__ for layer in net.layers]
    assert ("Normalization" in kinds) == (scaling != "none")
    assert_equal_outputs(keras_outputs(net, X), fastmlp_outputs(model, X))


def test_a_scale_below_keras_epsilon_is_folded_into_the_first_layer(data):
    """Keras's Normalization divides by max(sqrt(variance), 1e-7), so a
    feature whose spread is smaller is folded into the first Dense layer."""
    X, y = data["labels"]
    X = X.copy()
    X[:, 0] = X[:, 0] * 1e-10
    model = MLPClassifier(hidden_layer_sizes=(20,), epochs=3, random_state=0).fit(X, y)
    assert model.scale_[0] < 1e-7
    net = model.to_keras()
    assert "Normalization" not in [layer.__class__.__name__ for layer in net.layers]
    assert_equal_outputs(keras_outputs(net, X), fastmlp_outputs(model, X))


def test_the_keras_model_saves_and_loads(data, tmp_path):
    model, X = fitted(data, "sigmoid")
    net = model.to_keras()
    net.save(tmp_path / "m.keras")
    back = tf.keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras_outputs(back, X), keras_outputs(net, X))
