"""The blog experiment on the real MNIST: 784-70-30-10, 35 epochs at batch 500, both backends."""

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
    """The blog experiment (the estimator's defaults) trained once per backend
    (same random seed, 2 threads)."""
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
