"""Streaming data through partial_fit in blocks: samples_per_epoch.

partial_fit is one pass over its block, so by default the learning-rate
schedule and the no-improvement rule advance once per call.  With
``samples_per_epoch=n`` they count samples instead: blocks of any sizes meet
the rates a fit over n rows would use, and the rule sees one pooled figure
per n samples.  A fit over n rows is unchanged by it, bit for bit.
"""

import numpy as np
import pytest

from fastmlp import MLPClassifier, load, lr_schedule
from fastmlp.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = load_digits()
    return X[:1200], y[:1200]


def model(**params):
    settings = dict(hidden_layer_sizes=(24,), optimizer="sgd", learning_rate=0.001,
                    lr_decay=0.3, batch_size=100, n_threads=1, random_state=0)
    settings.update(params)
    return MLPClassifier(**settings)


def stream(m, X, y, sizes, passes):
    """``passes`` passes over (X, y) cut into blocks of ``sizes`` (cycled)."""
    classes = np.unique(y)
    for _ in range(passes):
        start, k = 0, 0
        while start < len(X):
            stop = start + sizes[k % len(sizes)]
            m.partial_fit(X[start:stop], y[start:stop], classes=classes)
            start, k = stop, k + 1
    return m


@pytest.mark.parametrize("params", [dict(), dict(optimizer="adam", schedule="adaptive",
                                                 n_iter_no_change=1, tol=0.5)])
def test_a_fit_over_n_rows_is_unchanged(digits, params, backend):
    X, y = digits
    plain = model(epochs=6, backend=backend, **params).fit(X, y)
    counted = model(epochs=6, backend=backend, samples_per_epoch=len(X), **params).fit(X, y)
    assert plain.history_.learning_rate == counted.history_.learning_rate
    for a, b in zip(plain.coefs_, counted.coefs_):
        np.testing.assert_array_equal(a, b)
    if params:
        assert min(plain.history_.learning_rate) < 0.001      # the rule did cut the rate


def test_blocks_meet_the_rates_of_the_epochs_they_belong_to(digits):
    X, y = digits
    n, passes = len(X), 3
    per_call = stream(model(), X, y, [300], passes)
    assert per_call.n_iter_ == 4 * passes
    np.testing.assert_allclose(per_call.history_.learning_rate,
                               lr_schedule(0.001, 0.3, 4 * passes), rtol=0, atol=0)
    counted = stream(model(samples_per_epoch=n), X, y, [300], passes)
    assert counted.n_iter_ == 4 * passes                      # n_iter_ still counts calls
    np.testing.assert_allclose(counted.history_.learning_rate,
                               np.repeat(lr_schedule(0.001, 0.3, passes), 4), rtol=0, atol=0)
    # uneven blocks: each call's rate is that of the epoch its first sample is in
    uneven = stream(model(samples_per_epoch=n), X, y, [100, 250, 50, 350], passes)
    seen, expected = 0, []
    rates = lr_schedule(0.001, 0.3, passes + 1)
    for _ in range(passes):
        start, k = 0, 0
        while start < n:
            size = min([100, 250, 50, 350][k % 4], n - start)
            expected.append(rates[seen // n])
            seen, start, k = seen + size, start + size, k + 1
    np.testing.assert_allclose(uneven.history_.learning_rate, expected, rtol=0, atol=0)


def test_the_rule_counts_one_pooled_figure_per_epoch(digits):
    """Adaptive rate, n_iter_no_change=1 and a tol nothing reaches: the rate
    is cut on the third epoch that counts.  Per call that is the third
    block; counted in samples, the end of the third pass."""
    X, y = digits
    settings = dict(optimizer="adam", schedule="adaptive", n_iter_no_change=1, tol=1e9,
                    lr_decay=0.0)
    per_call = stream(model(**settings), X, y, [300], 4).history_.learning_rate
    assert per_call[:3] == [0.001] * 3 and per_call[3] == pytest.approx(0.001 / 5)
    counted = stream(model(samples_per_epoch=len(X), **settings), X, y, [300], 4)
    rates = counted.history_.learning_rate
    assert rates[:12] == [0.001] * 12 and rates[12:] == [pytest.approx(0.001 / 5)] * 4
    # the figure it watched: the training loss pooled over each pass's blocks
    losses = np.array(counted.history_.train_loss)
    sizes = np.full(16, 300)
    pooled = [np.average(losses[p * 4:(p + 1) * 4], weights=sizes[:4]) for p in range(4)]
    assert counted.best_loss_ == pytest.approx(min(pooled), rel=1e-12)
    assert counted.best_loss_ > losses.min()         # not one block's own loss


def test_the_pool_survives_the_model_file(digits, tmp_path):
    X, y = digits
    settings = dict(optimizer="adam", schedule="adaptive", n_iter_no_change=2, tol=0.0,
                    lr_decay=0.0, shuffle=False, samples_per_epoch=len(X))
    whole = stream(model(**settings), X, y, [300], 1)
    half = model(**settings)
    classes = np.unique(y)
    for s in (0, 300):                              # two blocks of the first pass
        half.partial_fit(X[s:s + 300], y[s:s + 300], classes=classes)
    half.save(tmp_path / "half.npz")
    rest = load(tmp_path / "half.npz")
    assert rest.samples_per_epoch == len(X)
    for s in (600, 900):
        rest.partial_fit(X[s:s + 300], y[s:s + 300])
    # the first epoch's figure pools all four blocks, two of them from before the file
    losses = whole.history_.train_loss
    assert whole.best_loss_ == pytest.approx(np.mean(losses), rel=1e-12)
    assert rest.best_loss_ == whole.best_loss_
    for a, b in zip(rest.coefs_, whole.coefs_):
        np.testing.assert_array_equal(a, b)


def test_bad_values_are_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="samples_per_epoch"):
        model(samples_per_epoch=0).fit(X, y)
    with pytest.raises(TypeError, match="samples_per_epoch"):
        model(samples_per_epoch="all").fit(X, y)
