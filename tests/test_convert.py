"""scikit-learn conversion both ways: model.to_sklearn() and fastmlp.from_sklearn().

to_sklearn must predict what fastmlp predicts (rtol 1e-5) wherever
scikit-learn's output layer can express the model, and name the reason
where it cannot; the two-class sigmoid boundary is tested exactly.
from_sklearn must predict what scikit-learn predicts and go on training.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor

N = 600


@pytest.fixture(scope="module")
def data():
    X3, y3 = make_classification(N, 12, n_informative=6, n_classes=3, random_state=0)
    X2, y2 = make_classification(N, 12, random_state=1)
    Xm, Ym = make_multilabel_classification(N, 12, n_classes=4, random_state=0)
    Xr, yr = make_regression(N, 12, n_targets=2, noise=3.0, random_state=0)
    return {"softmax3": (X3, y3), "softmax2": (X2, np.array(["no", "yes"])[y2]),
            "multilabel": (Xm, Ym), "regression": (Xr, yr + 100.0), "sigmoid3": (X3, y3),
            "sigmoid2": (X2, y2)}


def fastmlp_model(data, case, **params):
    X, y = data[case]
    if case == "regression":
        return MLPRegressor(hidden_layer_sizes=(20, 10), epochs=4, random_state=0,
                            **params).fit(X, y)
    output = "sigmoid" if case.startswith("sigmoid") else "auto"
    return MLPClassifier(hidden_layer_sizes=(20, 10), output=output, epochs=4, random_state=0,
                         **params).fit(X, y)


def assert_same_predictions(a, b, X):
    """``a`` and ``b`` predict alike on X: labels equal, probabilities (or
    values) within rtol 1e-5; a regressor's values within rtol 1e-5 of their
    magnitude (a value near 0 carries the rounding of the larger ones)."""
    if hasattr(b, "predict_proba"):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5, atol=0)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    else:
        want = b.predict(X)
        np.testing.assert_allclose(a.predict(X), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("case", ["softmax3", "softmax2", "multilabel", "regression"])
@pytest.mark.parametrize("scaling", ["standard", "minmax", "maxabs", "none"])
def test_to_sklearn_predicts_what_fastmlp_predicts(data, activation, case, scaling):
    model = fastmlp_model(data, case, activation=activation, scaling=scaling)
    sk = model.to_sklearn()
    assert type(sk).__name__ == type(model).__name__
    assert sk.__module__.startswith("sklearn.")
    X = data[case][0]
    assert_same_predictions(sk, model, X)
    assert sk.score(X, data[case][1]) == pytest.approx(model.score(X, data[case][1]), abs=1e-6)
    if case == "softmax2":
        assert sk.n_outputs_ == 1 and sk.out_activation_ == "logistic"


def test_to_sklearn_can_go_on_training_in_scikit_learn(data):
    for case in ("softmax3", "softmax2", "multilabel", "regression"):
        X, y = data[case]
        model = fastmlp_model(data, case)
        sk = model.to_sklearn()
        before = sk.score(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(3):
                sk.partial_fit(X, y)
        assert sk.t_ == model.t_ + 3 * len(X)        # went on from fastmlp's weights
        assert sk.score(X, y) > before - 0.05, case


def test_the_blog_output_with_several_classes_has_no_sklearn_equivalent(data):
    model = fastmlp_model(data, "sigmoid3")
    with pytest.raises(ValueError, match="3 sigmoid outputs renormalised per row.*no such "
                                         "output layer"):
        model.to_sklearn()


def test_the_two_class_sigmoid_boundary(data):
    """Two renormalised sigmoid rows have a logistic equivalent exactly when
    they are negatives of each other, equal, or independent of the hidden
    layer; a trained pair is none of these."""
    model = fastmlp_model(data, "sigmoid2")
    with pytest.raises(ValueError, match="not an affine function of the last hidden layer"):
        model.to_sklearn()
    X = data["sigmoid2"][0]
    coefs = [W.copy() for W in model.coefs_]
    last = coefs[-1]
    # negatives: p1 = s(z1) / (s(-z1) + s(z1)) = s(z1)
    last[0] = -last[1]
    model.coefs_ = coefs
    sk = model.to_sklearn()
    assert_same_predictions(sk, model, X)
    np.testing.assert_allclose(sk.coefs_[-1][:, 0], last[1, 1:], rtol=0, atol=0)
    # one bit off is not negatives any more
    coefs[-1][0, 3] = np.nextafter(coefs[-1][0, 3], np.float32(np.inf))
    model.coefs_ = coefs
    with pytest.raises(ValueError, match="not an affine function"):
        model.to_sklearn()
    # equal rows: p = 1/2 everywhere
    coefs[-1][0] = coefs[-1][1]
    model.coefs_ = coefs
    sk = model.to_sklearn()
    np.testing.assert_allclose(sk.predict_proba(X), 0.5, rtol=0, atol=0)
    np.testing.assert_allclose(model.predict_proba(X), 0.5, rtol=0, atol=1e-7)
    # zero weights, different biases: a constant probability
    coefs[-1][:, 1:] = 0
    coefs[-1][:, 0] = [0.3, -1.2]
    model.coefs_ = coefs
    assert_same_predictions(model.to_sklearn(), model, X)
    # a softmax pair always converts (the other side of the boundary)
    assert_same_predictions(fastmlp_model(data, "softmax2").to_sklearn(),
                            fastmlp_model(data, "softmax2"), data["softmax2"][0])


def sk_model(data, case, **params):
    X, y = data[case]
    est = SkRegressor if case == "regression" else SkClassifier
    settings = dict(hidden_layer_sizes=(20, 10), max_iter=20, random_state=0)
    settings.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est(**settings).fit(X, y)


@pytest.mark.parametrize("case", ["softmax3", "softmax2", "multilabel", "regression"])
@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu"])
def test_from_sklearn_predicts_what_sklearn_predicts_and_trains_on(data, case, activation,
                                                                   tmp_path):
    sk = sk_model(data, case, activation=activation)
    model = fastmlp.from_sklearn(sk)
    assert isinstance(model, MLPRegressor if case == "regression" else MLPClassifier)
    X, y = data[case]
    assert_same_predictions(model, sk, X)
    assert model.optimizer == "adam" and model.n_iter_ == sk.n_iter_
    before = model.score(X, y)
    for _ in range(3):
        model.partial_fit(X, y)
    assert model.n_iter_ == sk.n_iter_ + 3
    assert model.score(X, y) > before - 0.05
    model.save(tmp_path / "m.npz")
    assert_same_predictions(fastmlp.load(tmp_path / "m.npz"), model, X)
    if case != "regression" or activation != "relu":
        assert_same_predictions(model.to_sklearn(), model, X)


def test_from_sklearn_sgd_takes_scikit_learns_step(data):
    """Without momentum, scikit-learn's sgd step on the batch's mean gradient
    is fastmlp's step on the sum at the rate divided by the batch size: one
    full-batch step from the same weights lands on the same weights."""
    for case, rate in (("softmax3", 0.05), ("regression", 1e-4)):
        X, y = data[case]
        sk = sk_model(data, case, solver="sgd", momentum=0.0, batch_size=N,
                      learning_rate_init=rate, max_iter=5, shuffle=False)
        model = fastmlp.from_sklearn(sk, n_threads=1)
        assert model.optimizer == "sgd" and model.learning_rate == pytest.approx(rate / N)
        before = [W.copy() for W in model.coefs_]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.partial_fit(X, y)
        model.partial_fit(X, y)
        assert min(np.abs(W - B).max() for W, B in zip(model.coefs_, before)) > 1e-4
        for W, k, b in zip(model.coefs_, sk.coefs_, sk.intercepts_):
            np.testing.assert_allclose(W[:, 1:], k.T, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(W[:, 0], b, rtol=1e-5, atol=1e-6)


def test_from_sklearn_refuses_what_fastmlp_cannot_represent(data):
    X, y = data["softmax3"]
    with pytest.raises(ValueError, match="activation='identity'.*sigmoid.*tanh or relu"):
        fastmlp.from_sklearn(sk_model(data, "softmax3", activation="identity"))
    lbfgs = sk_model(data, "softmax3", solver="lbfgs")
    with pytest.raises(ValueError, match="solver='lbfgs', which has no fastmlp equivalent.*"
                                         "pass optimizer="):
        fastmlp.from_sklearn(lbfgs)
    model = fastmlp.from_sklearn(lbfgs, optimizer="adam", learning_rate=1e-3)
    assert_same_predictions(model, lbfgs, X)
    model.partial_fit(X, y)
    with pytest.raises(ValueError, match="momentum=0.9.*the two rules differ"):
        fastmlp.from_sklearn(sk_model(data, "softmax3", solver="sgd", momentum=0.9))
    with pytest.raises(ValueError, match="invscaling"):
        fastmlp.from_sklearn(sk_model(data, "softmax3", solver="sgd", momentum=0.0,
                                      learning_rate="invscaling", batch_size=100))
    with pytest.raises(ValueError, match="batch_size='auto'.*batch size must be known"):
        fastmlp.from_sklearn(sk_model(data, "softmax3", solver="sgd", momentum=0.0))
    with pytest.raises(NotFittedError, match="not fitted"):
        fastmlp.from_sklearn(SkClassifier())
    with pytest.raises(TypeError, match="takes a scikit-learn MLPClassifier or MLPRegressor"):
        fastmlp.from_sklearn(MLPClassifier())
    with pytest.raises(ValueError, match="come from the estimator"):
        fastmlp.from_sklearn(sk_model(data, "softmax3"), activation="relu")
