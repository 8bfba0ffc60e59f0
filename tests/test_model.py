"""MLPClassifier: the blog experiment's semantics, reproducibility, history, input handling."""

import hashlib

import numpy as np
import pytest

import fastmlp
from fastmlp import MLPClassifier, lr_schedule
from fastmlp._scaling import scaled_copy
from fastmlp.datasets import load_digits

from _reference import blog, forward, loss


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture
def small(backend):
    """Factory of small, quick models with the blog experiment's settings;
    every test using it runs on both backends."""
    def make(**kw):
        params = dict(hidden_layer_sizes=(20, 12), epochs=3, batch_size=64,
                      learning_rate=0.05, random_state=0, backend=backend)
        params.update(kw)
        return blog(**params)
    return make


def test_learning_rate_after_35_epochs_is_the_blog_figure():
    rates = lr_schedule(0.001, 1e-6, 35)
    assert rates[0] == 0.001
    assert rates[-1] == 0.0009994051838157095
    # the blog's batch-20000 run started from 0.0001
    assert lr_schedule(0.0001, 1e-6, 35)[-1] == 9.994051838157101e-05


def test_schedule_continues_across_calls():
    whole = lr_schedule(0.001, 1e-3, 10)
    np.testing.assert_array_equal(lr_schedule(0.001, 1e-3, 4, start_epoch=6), whole[6:])


def test_fitted_model_ends_at_the_blog_rate(digits, small):
    (X, y), _ = digits
    m = small(epochs=35, learning_rate=0.001, lr_decay=1e-6, batch_size=500).fit(X, y)
    assert m.learning_rate_ == 0.0009994051838157095
    assert m.history_.learning_rate[-1] == m.learning_rate_
    assert m.n_iter_ == 35


def test_same_seed_same_run_other_seed_other_run(digits, small):
    (X, y), _ = digits
    a = small(random_state=7).fit(X, y)
    b = small(random_state=7).fit(X, y)
    c = small(random_state=8).fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)
    assert a.history_.cost == b.history_.cost
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_initial_weights_fill_the_blog_interval():
    Ws = fastmlp.init_weights((64, 300, 10), 2.0, np.random.default_rng(0))
    assert [W.shape for W in Ws] == [(300, 65), (10, 301)]
    for W, n_in in zip(Ws, (64, 300)):
        r = 0.5 * np.sqrt(1.0 / n_in) * 2.0
        assert W.dtype == np.float32
        assert np.abs(W).max() <= r
        assert np.abs(W).max() > 0.95 * r      # the interval is used, not a narrower one
        assert abs(W.mean()) < 0.05 * r


def test_shapes_dtypes_and_bias_layout(digits, small):
    (X, y), _ = digits
    m = small().fit(X, y)
    assert m.layers_ == (64, 20, 12, 10)
    assert [W.shape for W in m.coefs_] == [(20, 65), (12, 21), (10, 13)]
    assert all(W.dtype == np.float32 and W.flags.c_contiguous for W in m.coefs_)
    assert m.mean_.dtype == np.float32 and m.scale_.dtype == np.float32
    assert m.predict_outputs(X).dtype == np.float32


def test_first_batch_cost_matches_plain_maths(digits, small):
    """With shuffling off, the first recorded cost is LogLoss + reg of the
    initial weights on the first batch, computed in float64 from scratch."""
    (X, y), _ = digits
    m = small(shuffle=False, epochs=1, l2=0.05, l1=0.01, batch_size=100)
    # the fit's random_state (0) gives these initial weights
    W0 = fastmlp.init_weights((64, 20, 12, 10), m.init_factor, np.random.default_rng(0))
    m.fit(X, y)
    Xs = (X[:100].astype(np.float32) - m.mean_) / m.scale_
    Y = np.eye(10)[np.searchsorted(m.classes_, y[:100])]
    data, reg = loss(W0, Xs, Y, l2=0.05, l1=0.01)
    assert m.history_.batch_cost[0][0] == pytest.approx(data + reg, rel=1e-5)
    assert m.history_.batch_reg_share[0][0] == pytest.approx(reg / (data + reg), rel=1e-4)


def test_standardisation_uses_training_statistics_only(digits, small):
    (X, y), (Xt, yt) = digits
    m = small(epochs=1).fit(X, y, validation_data=(Xt, yt))
    Xf = X.astype(np.float64)
    np.testing.assert_allclose(m.mean_, Xf.mean(axis=0), rtol=1e-6, atol=1e-6)
    std = Xf.std(axis=0)
    np.testing.assert_allclose(m.scale_, np.where(std > 0, std, 1.0), rtol=1e-5)


def test_standard_scaling_equals_standardscaler():
    from sklearn.preprocessing import StandardScaler
    from fastmlp._scaling import standard_scaler_stats
    rng = np.random.default_rng(0)
    X = rng.normal(50.0, 3.0, (500, 6)).astype(np.float32)
    X[:, 1] = 7.0                      # constant
    X[:, 2] = 1e6                      # constant, large
    X[::2, 3] = 0.0                    # half zeros
    X[:, 4] = 1e6 + rng.normal(0, 1e-3, 500).astype(np.float32)  # within rounding
    mean, scale = standard_scaler_stats(X)
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(mean, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, ref.scale_, rtol=1e-9)
    assert scale[1] == 1.0 and scale[2] == 1.0


def test_scaling_none_keeps_raw_inputs(digits, small):
    (X, y), _ = digits
    m = small(epochs=1, scaling="none").fit(X, y)
    np.testing.assert_array_equal(m.mean_, 0)
    np.testing.assert_array_equal(m.scale_, 1)


def test_minmax_scaling_maps_the_training_range_to_unit(digits, small):
    (X, y), (Xt, _) = digits
    m = small(epochs=1, scaling="minmax").fit(X, y)
    Xs = scaled_copy(X, m.mean_, m.scale_)
    lo, hi = Xs.min(axis=0), Xs.max(axis=0)
    varying = X.max(axis=0) > X.min(axis=0)
    np.testing.assert_allclose(lo, 0.0, atol=1e-6)
    np.testing.assert_allclose(hi[varying], 1.0, rtol=1e-6)
    # MNIST-like pixels that reach the top of their range are simply x/255
    pix = np.array([[0, 255], [255, 0], [51, 102]], np.uint8)
    m2 = small(epochs=1, scaling="minmax").fit(pix, [0, 1, 0])
    np.testing.assert_allclose(scaled_copy(pix, m2.mean_, m2.scale_), pix / 255.0, rtol=1e-6)


def test_predictions_follow_the_forward_pass(digits, small):
    (X, y), (Xt, yt) = digits
    m = small(epochs=2).fit(X, y)
    Xs = (Xt.astype(np.float32) - m.mean_) / m.scale_
    ref = forward(m.coefs_, Xs)[-1]
    np.testing.assert_allclose(m.predict_outputs(Xt), ref, rtol=1e-5, atol=1e-6)
    proba = m.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(m.predict(Xt), m.classes_[ref.argmax(axis=1)])
    assert m.score(Xt, yt) == pytest.approx(np.mean(m.predict(Xt) == yt))


def test_history_records_every_epoch(digits, small):
    (X, y), (Xt, yt) = digits
    m = small(epochs=6, eval_period=3).fit(X, y, validation_data=(Xt, yt))
    h = m.history_
    n_batches = -(-X.shape[0] // 64)
    assert len(h) == 6 and h.epochs == list(range(6))
    assert all(c.shape == (n_batches,) for c in h.batch_cost)
    for e in range(6):      # each epoch keeps its own batch costs
        assert h.cost[e] == pytest.approx(h.batch_cost[e].mean())
    assert not np.array_equal(h.batch_cost[0], h.batch_cost[5])
    assert all(0.0 <= s <= 1.0 for s in h.reg_share)
    assert all(np.isnan(h.test_acc[e]) for e in (0, 1, 3, 4))
    assert 0.5 < h.test_acc[2] < h.test_acc[5] <= 1.0
    assert h.test_acc[5] == pytest.approx(m.score(Xt, yt))
    assert all(len(w) == 3 for w in h.mean_abs_weight)
    assert h.mean_abs_weight[-1][0] == pytest.approx(np.abs(m.coefs_[0][:, 1:]).mean())
    assert all(t > 0 for t in h.epoch_time)
    for ph, train_t, eval_t in zip(h.phases, h.train_time, h.eval_time):
        assert set(ph) == {"gather", "forward", "backward", "gradient", "update", "prediction"}
        assert all(v >= 0 for v in ph.values()) and ph["forward"] > 0
        assert sum(v for k, v in ph.items() if k != "prediction") <= train_t * 1.01
        assert ph["prediction"] == eval_t
    assert h.phase_totals()["forward"] == pytest.approx(sum(p["forward"] for p in h.phases))
    assert h.cost[0] > h.cost[-1]
    d = h.to_dict()
    assert d["train_acc_kind"] == "batch" and len(d["batch_cost"]) == 6


def test_full_training_accuracy_is_a_prediction_over_the_set(digits, small):
    (X, y), _ = digits
    m = small(epochs=2, train_accuracy="full").fit(X, y)
    assert m.history_.train_acc[-1] == pytest.approx(m.score(X, y))
    m2 = small(epochs=2, train_accuracy="none").fit(X, y)
    assert all(np.isnan(m2.history_.train_acc))


def test_batch_accuracy_counts_each_batchs_own_outputs(digits, small):
    """One epoch, one batch, no learning: batch accuracy is the accuracy of
    the initial weights on the whole set."""
    (X, y), _ = digits
    m = small(epochs=1, batch_size=10_000, learning_rate=1e-30, lr_decay=0.0,
              momentum=0.0, shuffle=False)
    m.fit(X, y)
    assert m.history_.train_acc[0] == pytest.approx(m.score(X, y))


def test_arbitrary_labels(digits, small):
    (X, y), (Xt, yt) = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    m = small(epochs=3).fit(X, names[y])
    assert set(m.predict(Xt)) <= set(names)
    assert m.score(Xt, names[yt]) > 0.5
    sparse = np.array([3, 17, 99])[y % 3]
    m2 = small(epochs=1).fit(X, sparse)
    np.testing.assert_array_equal(m2.classes_, [3, 17, 99])


def test_user_arrays_are_never_modified(digits, small):
    (X, y), (Xt, yt) = digits
    X64 = np.asfortranarray(X.astype(np.float64))
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    for data in (X64, X32, X[::1]):
        before = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
        ybefore = y.copy()
        m = small(epochs=1).fit(data, y, validation_data=(Xt, yt))
        m.predict(data)
        assert hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest() == before
        np.testing.assert_array_equal(y, ybefore)


def test_layouts_and_dtypes_train_the_same(digits, small):
    (X, y), _ = digits
    ref = small(epochs=2).fit(X, y)
    for data in (np.asfortranarray(X), X.astype(np.float64), X.astype(np.int64)):
        m = small(epochs=2).fit(data, y)
        for Wa, Wb in zip(ref.coefs_, m.coefs_):
            np.testing.assert_array_equal(Wa, Wb)
    ro = X.copy()
    ro.flags.writeable = False
    m = small(epochs=1).fit(ro, y)
    assert m.n_iter_ == 1


def test_batch_larger_than_data_is_one_batch(digits, small):
    (X, y), _ = digits
    m = small(epochs=1, batch_size=100_000).fit(X, y)
    assert m.history_.batch_cost[0].shape == (1,)


def test_last_batch_holds_the_remainder(digits, small):
    (X, y), _ = digits
    m = small(epochs=1, batch_size=500).fit(X, y)
    assert m.history_.batch_cost[0].shape == (-(-X.shape[0] // 500),)


@pytest.mark.parametrize("kw,match", [
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(l2=-0.1), "l2"),
    (dict(l1=float("nan")), "l1"),
    (dict(momentum=-0.5), "momentum"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
    (dict(backend="gpu"), "backend"),
    (dict(train_accuracy="sometimes"), "train_accuracy"),
    (dict(eval_period=0), "eval_period"),
    (dict(scaling="robust"), "scaling"),
    (dict(activation="swish"), "activation"),
    (dict(output="linear"), "output"),
])
def test_bad_parameters_are_named(digits, kw, match, small):
    (X, y), _ = digits
    with pytest.raises(ValueError, match=match):
        small(**kw).fit(X, y)


def test_bad_parameter_types(digits, small):
    (X, y), _ = digits
    with pytest.raises(TypeError, match="epochs"):
        small(epochs=2.5).fit(X, y)
    with pytest.raises(TypeError, match="hidden_layer_sizes"):
        small(hidden_layer_sizes=None).fit(X, y)


def test_bad_data_is_named(digits, small):
    (X, y), _ = digits
    Xn = X.copy()
    Xn[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity.*row 3, column 5"):
        small().fit(Xn, y)
    Xi = X.astype(np.float64)
    Xi[7, 2] = -np.inf
    with pytest.raises(ValueError, match="NaN or infinity.*row 7, column 2"):
        small().fit(Xi, y)
    Xi[7, 2] = 1e300
    with pytest.raises(ValueError, match="float32 range"):
        small().fit(Xi, y)
    with pytest.raises(ValueError, match="2-D"):
        small().fit(X[0], y[:1])
    with pytest.raises(ValueError, match="labels but X has"):
        small().fit(X, y[:-1])
    with pytest.raises(ValueError, match="one class"):
        small().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="empty"):
        small().fit(X[:0], y[:0])
    m = small(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="63 features, but MLPClassifier is expecting 64"):
        m.predict(X[:, 1:])


def test_unfitted_model_says_so():
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError, match="not fitted"):
        MLPClassifier().predict(np.zeros((2, 3)))


def test_package_metadata():
    assert fastmlp.__version__
    info = fastmlp.build_info()
    assert info["compiled"] is True, info
    assert isinstance(info["openmp"], bool) and info["max_threads"] >= 1


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_other_hidden_activations_learn(digits, small, activation):
    (X, y), (Xt, yt) = digits
    m = small(activation=activation, epochs=8, learning_rate=0.01).fit(X, y)
    assert m.score(Xt, yt) > 0.8
    assert m.predict_outputs(Xt).min() >= 0.0     # the output layer stays sigmoid


def test_softmax_output_learns_and_sums_to_one(digits, small):
    (X, y), (Xt, yt) = digits
    m = small(output="softmax", activation="relu", epochs=8, learning_rate=0.01).fit(X, y)
    np.testing.assert_allclose(m.predict_outputs(Xt).sum(axis=1), 1.0, rtol=1e-5)
    assert m.score(Xt, yt) > 0.8
