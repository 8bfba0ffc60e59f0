"""The real MNIST: the blog experiment (784-70-30-10, 35 epochs at batch 500,
both backends), the estimator's defaults, and early stopping."""

import numpy as np
import pytest

from fastmlp import MLPClassifier, backends
from fastmlp.datasets import load_mnist

from _reference import blog


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def blog_runs(mnist):
    """The blog experiment (``MLPClassifier.blog_experiment()``) trained once
    per backend (same random seed, 2 threads)."""
    (X, y), (Xt, yt) = mnist
    runs = {}
    for backend in backends.BACKENDS:
        m = blog(random_state=0, backend=backend, n_threads=2)
        assert (m.hidden_layer_sizes, m.epochs, m.batch_size) == ((70, 30), 35, 500)
        m.fit(X, y)
        runs[backend] = (m, m.score(Xt, yt))
    return runs


@pytest.mark.slow
def test_blog_experiment_reaches_096_on_mnist(blog_runs, backend):
    m, acc = blog_runs[backend]
    assert acc >= 0.96, acc
    assert m.layers_ == (784, 70, 30, 10)
    assert m.learning_rate_ == 0.0009994051838157095
    # the batch-averaged training accuracy sits above the test accuracy
    assert m.history_.train_acc[-1] > acc
    assert np.all(np.diff(m.history_.cost[:10]) < 0)


@pytest.mark.slow
def test_backends_reach_the_same_accuracy(blog_runs):
    (_, a), (_, b) = blog_runs["compiled"], blog_runs["numpy"]
    assert abs(a - b) <= 0.005, (a, b)


@pytest.mark.slow
def test_minmax_scaling_and_rate_0003_beat_the_blog_settings(mnist):
    """What closes most of the gap to the blog's "over 97.7 %": inputs x/255
    (min-max) instead of standardised, learning rate 0.003.  Measured over
    random seeds 0-3: 0.9755-0.9783, against 0.9641-0.9667 with the blog
    experiment's settings."""
    (X, y), (Xt, yt) = mnist
    m = blog(random_state=0, scaling="minmax", learning_rate=0.003, n_threads=2)
    acc = m.fit(X, y).score(Xt, yt)
    assert acc >= 0.972, acc


@pytest.mark.slow
def test_defaults_reach_097_on_mnist(mnist):
    (X, y), (Xt, yt) = mnist
    m = MLPClassifier(random_state=0).fit(X, y)
    assert m.score(Xt, yt) >= 0.97
    assert m.history_.stopped["reason"] == "no improvement" and m.n_iter_ < m.epochs


@pytest.mark.slow
def test_early_stopping_on_mnist_keeps_the_best_epoch(mnist):
    """Early stopping holds out 10 % of MNIST's training set, stops when its
    accuracy has not improved for 10 epochs, and puts back the best epoch's
    model: its accuracy on that held-out part is best_validation_score_."""
    from fastmlp._split import hold_out
    (X, y), (Xt, yt) = mnist
    m = MLPClassifier(early_stopping=True, random_state=0).fit(X, y)
    stopped = m.history_.stopped
    assert stopped["reason"] == "no improvement" and m.n_iter_ < m.epochs
    best = int(np.argmax(m.validation_scores_))
    assert m.best_validation_score_ == m.validation_scores_[best]
    assert m.history_.restored_epoch == best
    assert m.n_iter_ - 1 - best >= m.n_iter_no_change          # waited the patience out
    _, _, _, (Xv, yv, _) = hold_out(X, y, None, m.validation_fraction, y, m.random_state)
    assert m.score(Xv, yv) == pytest.approx(m.best_validation_score_, abs=1e-12)
    assert m.score(Xt, yt) >= 0.97
