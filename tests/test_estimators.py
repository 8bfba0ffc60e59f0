"""The estimator family: defaults, the blog preset, MLPRegressor, multilabel
targets, sample and class weights, and their bad input."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_friedman1, make_multilabel_classification
from sklearn.metrics import f1_score, hamming_loss, r2_score
from sklearn.model_selection import train_test_split

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._classifier import BLOG_EXPERIMENT
from fastmlp.datasets import load_digits

from _reference import loss, numeric_gradient


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def friedman():
    X, y = make_friedman1(n_samples=1200, random_state=0)
    return train_test_split(X, y, test_size=0.25, random_state=0)


@pytest.fixture(scope="module")
def multilabel():
    X, Y = make_multilabel_classification(n_samples=600, n_features=20, n_classes=5,
                                          random_state=0)
    return train_test_split(X, Y, test_size=0.25, random_state=0)


# ----------------------------------------------------------------- defaults
def test_defaults_are_scikit_learns_and_learn_digits(digits):
    (X, y), (Xt, yt) = digits
    m = MLPClassifier(random_state=0)
    p = m.get_params()
    assert (p["hidden_layer_sizes"], p["activation"], p["optimizer"], p["batch_size"],
            p["l2"], p["epochs"], p["n_iter_no_change"], p["tol"]) == \
        ((100,), "relu", "adam", "auto", 1e-4, 200, 10, 1e-4)
    m.fit(X, y)
    assert m.out_activation_ == "softmax"
    assert m.score(Xt, yt) > 0.95
    assert m.n_iter_ < 200 and m.history_.stopped["reason"] == "no improvement"


def test_blog_preset_is_the_blog_experiment(digits):
    m = MLPClassifier.blog_experiment(random_state=3, epochs=2)
    p = m.get_params()
    for k, v in BLOG_EXPERIMENT.items():
        assert p[k] == (2 if k == "epochs" else v), k
    assert p["random_state"] == 3 and p["n_iter_no_change"] is None
    # it runs every epoch and is the sgd/sigmoid network
    (X, y), _ = digits
    m.fit(X, y)
    assert m.n_iter_ == 2 and m.out_activation_ == "sigmoid" and m.layers_ == (64, 70, 30, 10)


# ---------------------------------------------------------------- regressor
def test_regressor_learns_friedman1_and_scores_r2(friedman, backend):
    Xtr, Xte, ytr, yte = friedman
    m = MLPRegressor(random_state=0, backend=backend).fit(Xtr, ytr)
    pred = m.predict(Xte)
    assert pred.shape == yte.shape and pred.dtype == np.float64
    assert m.score(Xte, yte) == pytest.approx(r2_score(yte, pred))
    assert m.score(Xte, yte) > 0.8
    assert m.out_activation_ == "identity" and m.n_outputs_ == 1
    assert not np.isnan(m.history_.train_loss).any()


def test_regressor_takes_2d_targets(friedman):
    Xtr, Xte, ytr, yte = friedman
    Y = np.c_[ytr, -2 * ytr + 1]
    m = MLPRegressor(random_state=0, epochs=50).fit(Xtr, Y)
    assert m.n_outputs_ == 2 and m.predict(Xte).shape == (len(Xte), 2)
    one = MLPRegressor(random_state=0, epochs=2).fit(Xtr, ytr[:, None])
    assert one.predict(Xte).shape == (len(Xte),)          # one target: 1-D, as scikit-learn


def test_regressor_partial_fit_save_load_and_early_stopping(friedman, tmp_path):
    Xtr, Xte, ytr, yte = friedman
    m = MLPRegressor(random_state=0)
    for _ in range(3):
        m.partial_fit(Xtr, ytr)
    assert m.n_iter_ == 3
    path = m.save(tmp_path / "r.npz")
    back = fastmlp.load(path)
    assert isinstance(back, MLPRegressor)
    np.testing.assert_array_equal(back.predict(Xte), m.predict(Xte))
    back.partial_fit(Xtr, ytr)                           # trains on from the file
    es = MLPRegressor(random_state=0, early_stopping=True).fit(Xtr, ytr)
    assert es.best_validation_score_ == max(es.validation_scores_)
    with pytest.raises(ValueError, match=r"y has 2 target column\(s\), but the model was "
                                         r"fitted on 1"):
        m.partial_fit(Xtr, np.c_[ytr, ytr])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_regressor_gradients_equal_finite_differences(backend, activation):
    """The estimator's loss_and_gradients (one real training step of its
    backend, float32) against float64 central differences of the weighted
    1/2 sum w (a - y)^2 plus the L2 term (tests/_reference.py)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 5)).astype(np.float32)
    y = rng.standard_normal((9, 2)).astype(np.float32)
    w = rng.uniform(0.2, 2.0, 9).astype(np.float32)
    m = MLPRegressor((4,), activation=activation, epochs=1, learning_rate=1e-30, l2=0.3,
                     target_scaling="none",
                     l1=0.0, scaling="none", backend=backend, random_state=0).fit(X, y)
    cost, reg, grads = m.loss_and_gradients(X, y, sample_weight=w)
    numeric = numeric_gradient(m.coefs_, X, y, 0.3, 0.0, activation=activation,
                               output="identity", sample_weight=w)
    data, penalty = loss(m.coefs_, X, y, 0.3, 0.0, activation, "identity", sample_weight=w)
    assert cost == pytest.approx(data, rel=1e-5) and reg == pytest.approx(penalty, rel=1e-5)
    for g, n in zip(grads, numeric):
        np.testing.assert_allclose(g, n, rtol=2e-4, atol=2e-5)


def test_regressor_bad_targets_are_named(friedman):
    Xtr, _, ytr, _ = friedman
    bad = ytr.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN or infinity \(first at \(7,\)\)"):
        MLPRegressor().fit(Xtr, bad)
    with pytest.raises(ValueError, match="y has 899 values but X has 900 samples"):
        MLPRegressor().fit(Xtr, ytr[:-1])
    with pytest.raises(ValueError, match="y must hold numbers"):
        MLPRegressor().fit(Xtr, np.array(["a"] * len(ytr)))
    with pytest.raises(ValueError, match="'batch'"):
        MLPRegressor(train_accuracy="batch").fit(Xtr, ytr)


def test_regressor_against_scikit_learn_on_diabetes():
    """Same hidden sizes and epoch budget as scikit-learn's default
    MLPRegressor (after a StandardScaler): fastmlp's R^2 is not worse by more
    than 0.05 (the figures themselves are in bench/defaults.py --regression)."""
    from sklearn.neural_network import MLPRegressor as SkMLP
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = make_pipeline(StandardScaler(), SkMLP(random_state=0)).fit(Xtr, ytr)
    ours = MLPRegressor(random_state=0).fit(Xtr, ytr)
    assert ours.score(Xte, yte) > sk.score(Xte, yte) - 0.05


# --------------------------------------------------------------- multilabel
def test_multilabel_fits_predicts_an_indicator_and_per_label_probabilities(multilabel,
                                                                          backend):
    Xtr, Xte, Ytr, Yte = multilabel
    m = MLPClassifier(random_state=0, backend=backend).fit(Xtr, Ytr)
    assert m.out_activation_ == "sigmoid" and list(m.classes_) == [0, 1, 2, 3, 4]
    pred = m.predict(Xte)
    assert pred.shape == Yte.shape and set(np.unique(pred)) <= {0, 1}
    proba = m.predict_proba(Xte)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert not np.allclose(proba.sum(axis=1), 1.0)            # not renormalised
    assert hamming_loss(Yte, pred) < 0.2 and f1_score(Yte, pred, average="micro") > 0.7
    assert m.score(Xte, Yte) == pytest.approx(np.mean(np.all(pred == Yte, axis=1)))


def test_multilabel_save_load_partial_fit_and_bad_input(multilabel, tmp_path):
    Xtr, Xte, Ytr, Yte = multilabel
    m = MLPClassifier(random_state=0, epochs=5).fit(Xtr, Ytr)
    back = fastmlp.load(m.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.predict(Xte), m.predict(Xte))
    back.partial_fit(Xtr, Ytr)
    bad = Ytr.copy()
    bad[3, 2] = 2
    with pytest.raises(ValueError, match=r"every entry must be 0 or 1, but row 3, column 2 "
                                         r"holds 2"):
        MLPClassifier().fit(Xtr, bad)
    with pytest.raises(ValueError, match="output='softmax' cannot train on multilabel"):
        MLPClassifier(output="softmax").fit(Xtr, Ytr)
    with pytest.raises(ValueError, match="class_weight is not supported for multilabel"):
        MLPClassifier(class_weight="balanced").fit(Xtr, Ytr)
    with pytest.raises(ValueError, match="label indicator matrix, but the model was fitted"):
        MLPClassifier(epochs=1).fit(Xtr, Ytr[:, 0]).partial_fit(Xtr, Ytr)


# ------------------------------------------------------------------ weights
def _full_batch(backend, cls=MLPClassifier, **kw):
    """One sgd step on the whole data set, in order: weighting a sample by k
    must then equal repeating it k times."""
    return cls((6,), epochs=1, batch_size=10_000, shuffle=False, optimizer="sgd",
               momentum=0.0, learning_rate=0.01, scaling="none", backend=backend,
               random_state=0, **kw)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_integer_weight_equals_repetition_and_zero_weight_equals_dropping(backend, cls):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40) if cls is MLPClassifier else rng.standard_normal(40)
    w = rng.integers(0, 4, 40).astype(np.float64)
    w[:3] = [0, 2, 3]
    weighted = _full_batch(backend, cls).fit(X, y, sample_weight=w)
    rows = np.repeat(np.arange(40), w.astype(int))
    repeated = _full_batch(backend, cls).fit(X[rows], y[rows])
    for a, b in zip(weighted.coefs_, repeated.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    keep = w > 0
    dropped = _full_batch(backend, cls).fit(X[keep], y[keep], sample_weight=w[keep])
    for a, b in zip(weighted.coefs_, dropped.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_class_weight_is_sample_weight_by_class(digits, backend):
    (X, y), (Xt, yt) = digits
    cw = {0: 3.0, 1: 0.5, 7: 2.0}
    kw = dict(epochs=2, random_state=0, backend=backend)
    a = MLPClassifier(class_weight=cw, **kw).fit(X, y)
    w = np.array([cw.get(int(c), 1.0) for c in y])
    b = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)
    from sklearn.utils.class_weight import compute_class_weight
    bal = compute_class_weight("balanced", classes=np.unique(y), y=y)
    c = MLPClassifier(class_weight="balanced", **kw).fit(X, y)
    d = MLPClassifier(**kw).fit(X, y, sample_weight=bal[y])
    for p, q in zip(c.coefs_, d.coefs_):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weights, match", [
    (lambda n: -np.ones(n), r"sample_weight must be >= 0, but entry 0 is -1.0"),
    (lambda n: np.r_[np.nan, np.ones(n - 1)], "sample_weight contains NaN or infinity"),
    (lambda n: np.ones(n - 1), r"sample_weight has shape \(\d+,\), but X has \d+ samples"),
    (lambda n: np.zeros(n), "sample_weight is zero for every sample"),
])
def test_bad_sample_weights_are_named(digits, weights, match):
    (X, y), _ = digits
    w = weights(len(y))
    with pytest.raises(ValueError, match=match):
        MLPClassifier(epochs=1).fit(X, y, sample_weight=w)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(epochs=1).partial_fit(X, y, sample_weight=w)


def test_bad_class_weight_is_named(digits):
    (X, y), _ = digits
    with pytest.raises(ValueError, match=r"class_weight has keys \[11\] that are not classes"):
        MLPClassifier(epochs=1, class_weight={11: 2.0}).fit(X, y)
    with pytest.raises(ValueError, match=r"class_weight\[3\] must be a finite number >= 0"):
        MLPClassifier(epochs=1, class_weight={3: -1.0}).fit(X, y)
    with pytest.raises(TypeError, match="class_weight must be None, 'balanced' or a dict"):
        MLPClassifier(epochs=1, class_weight="auto").fit(X, y)


def test_weights_are_never_modified_and_weighted_validation_scores(digits):
    (X, y), (Xt, yt) = digits
    w = np.linspace(0.5, 2.0, len(y))
    w_before = w.copy()
    wv = np.where(yt == 3, 5.0, 1.0)
    m = MLPClassifier(epochs=2, random_state=0).fit(X, y, sample_weight=w,
                                                   validation_data=(Xt, yt, wv))
    np.testing.assert_array_equal(w, w_before)
    assert m.history_.val_score[-1] == pytest.approx(m.score(Xt, yt, sample_weight=wv))
