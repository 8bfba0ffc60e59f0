"""Early stopping, the no-improvement rule, the adaptive schedule, callbacks
that stop a fit, warm_start, and the bad input around them.

Every fit here is on scikit-learn's digits (1437 training rows) and takes a
fraction of a second; each test that takes the ``backend`` fixture runs on
both backends.  "Equal" means bit for bit.
"""

import math
import warnings

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from fastmlp import StopTraining, load
from fastmlp._split import hold_out
from fastmlp.datasets import load_digits

from _reference import blog


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def model(backend, **kw):
    params = dict(hidden_layer_sizes=(20, 12), epochs=40, batch_size=64, learning_rate=0.05,
                  random_state=0, backend=backend, n_threads=1)
    params.update(kw)
    return blog(**params)


def state_arrays(m, path):
    """Every array of the model's state (weights, optimiser state), through
    the model file: the public way to read the optimiser's state."""
    with np.load(m.save(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k[0] in "WVS"}


def assert_same_state(a, b, tmp_path):
    sa, sb = state_arrays(a, tmp_path / "a.npz"), state_arrays(b, tmp_path / "b.npz")
    assert sorted(sa) == sorted(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.optimizer_steps_ == b.optimizer_steps_


# ------------------------------------------------------------ early stopping
def test_early_stopping_stops_and_records_why(digits, backend):
    (X, y), _ = digits
    m = model(backend, early_stopping=True, n_iter_no_change=3).fit(X, y)
    h = m.history_
    assert m.n_iter_ < 40 and len(h) == m.n_iter_
    st = h.stopped
    assert st["reason"] == "no improvement" and st["monitor"] == "val_score"
    assert st["epoch"] == m.n_iter_ - 1 and st["batches_completed"] == st["n_batches"]
    assert st["n_iter_no_change"] == 3 and st["tol"] == 1e-4
    assert "validation score did not improve" in st["message"]
    # one validation score per epoch; the best is the one put back
    assert m.validation_scores_ == h.val_score and len(m.validation_scores_) == m.n_iter_
    assert m.best_validation_score_ == max(m.validation_scores_)
    assert h.restored_epoch == st["best_epoch"] == int(np.argmax(m.validation_scores_))
    assert h.restored_epoch < m.n_iter_ - 4        # more than 3 epochs without improvement
    assert m.best_loss_ is None                    # as scikit-learn, with early stopping
    # the model predicts as the best epoch did: its score on the held-out part
    Xtr, Xv, ytr, yv = train_test_split(X, y, test_size=0.1, random_state=0, stratify=y)
    assert m.score(Xv, yv) == m.best_validation_score_


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_early_stopping_restores_exactly_the_best_epoch(digits, backend, optimizer, tmp_path):
    """The stopped model's weights, optimiser state and step count equal those
    of a plain fit of best epoch + 1 epochs on the same training part: the
    hold-out is scikit-learn's stratified train_test_split seeded with
    random_state, and the input scaling comes from the training part."""
    (X, y), _ = digits
    kw = dict(optimizer=optimizer, learning_rate=0.05 if optimizer == "sgd" else 0.002)
    m = model(backend, early_stopping=True, n_iter_no_change=2, **kw).fit(X, y)
    best = m.history_.restored_epoch
    assert best is not None and best < m.n_iter_ - 1
    Xtr, Xv, ytr, yv = train_test_split(X, y, test_size=0.1, random_state=0, stratify=y)
    ref = model(backend, epochs=best + 1, n_iter_no_change=None, **kw).fit(
        Xtr, ytr, validation_data=(Xv, yv))
    assert_same_state(m, ref, tmp_path)
    np.testing.assert_array_equal(m.mean_, ref.mean_)
    assert m.learning_rate_ == ref.learning_rate_
    # the counts of the training done stay as trained, as scikit-learn's
    assert m.n_iter_ == len(m.history_) > ref.n_iter_
    assert m.t_ == m.n_iter_ * len(ytr)
    assert m.history_.cost[:best + 1] == ref.history_.cost
    assert m.history_.val_score[:best + 1] == ref.history_.val_score


def test_early_stopping_runs_every_epoch_without_patience_and_still_restores(digits):
    (X, y), _ = digits
    m = model("compiled", epochs=12, early_stopping=True, n_iter_no_change=None,
              learning_rate=0.5).fit(X, y)
    assert m.n_iter_ == 12 and m.history_.stopped is None
    assert m.history_.restored_epoch == int(np.argmax(m.validation_scores_))


def test_validation_split_is_stratified_and_reproducible(digits):
    (X, y), _ = digits
    Xtr, ytr, _, (Xv, yv, _) = hold_out(X, y, None, 0.1, y, 0)
    sk = train_test_split(X, y, test_size=0.1, random_state=0, stratify=y)
    for ours, theirs in zip((Xtr, Xv, ytr, yv), sk):
        np.testing.assert_array_equal(ours, theirs)
    assert len(yv) == math.ceil(0.1 * len(y))
    expected = np.bincount(y) * 0.1
    assert np.all(np.abs(np.bincount(yv, minlength=10) - expected) <= 1)
    a = model("compiled", early_stopping=True, n_iter_no_change=2).fit(X, y)
    b = model("compiled", early_stopping=True, n_iter_no_change=2).fit(X, y)
    c = model("compiled", early_stopping=True, n_iter_no_change=2, random_state=1).fit(X, y)
    assert a.validation_scores_ == b.validation_scores_
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)
    assert a.validation_scores_ != c.validation_scores_
    # a Generator seeds the split too
    g = model("compiled", epochs=2, early_stopping=True, random_state=np.random.default_rng(5))
    assert g.fit(X, y).t_ == 2 * (len(y) - len(yv))


def test_validation_data_overrides_the_hold_out(digits, backend):
    (X, y), (Xt, yt) = digits
    m = model(backend, early_stopping=True, n_iter_no_change=2).fit(
        X, y, validation_data=(Xt, yt))
    assert m.t_ == m.n_iter_ * len(y)                    # nothing held out
    assert m.score(Xt, yt) == m.best_validation_score_
    plain = model(backend, epochs=m.history_.restored_epoch + 1, n_iter_no_change=None).fit(X, y)
    for Wa, Wb in zip(m.coefs_, plain.coefs_):
        np.testing.assert_array_equal(Wa, Wb)


def test_validation_loss_and_score_every_epoch(digits, backend):
    """val_loss is the output's own loss, mean per sample, at the epoch's
    weights (LogLoss for sigmoid outputs, cross-entropy for softmax);
    val_score the accuracy.  Both every epoch; test_acc every eval_period."""
    (X, y), (Xt, yt) = digits
    for output in ("sigmoid", "softmax"):
        m = model(backend, epochs=4, eval_period=3, output=output).fit(
            X, y, validation_data=(Xt, yt))
        h = m.history_
        assert not any(np.isnan(h.val_loss)) and not any(np.isnan(h.val_score))
        assert np.isnan(h.test_acc[0]) and h.test_acc[2] == h.val_score[2]
        assert h.val_score[-1] == m.score(Xt, yt)
        a = m.predict_outputs(Xt).astype(np.float64)
        Y = np.eye(10)[yt]
        if output == "softmax":
            ref = -np.sum(Y * np.log(a)) / len(yt)
        else:
            ref = -np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a)) / len(yt)
        assert h.val_loss[-1] == pytest.approx(ref, rel=1e-9)
        assert m.validation_scores_ is None and m.best_validation_score_ is None
    bare = model(backend, epochs=2).fit(X, y)
    assert all(np.isnan(bare.history_.val_loss)) and all(np.isnan(bare.history_.val_score))


# ------------------------------------------------------- the plateau rule
def test_plateau_rule_stops_on_the_training_loss(digits, backend):
    """Without early stopping the rule watches the training loss: with a tol
    no epoch can meet, epoch 0 sets the best and epochs 1..4 count; the
    fourth exceeds n_iter_no_change=3 and the fit stops after 5 epochs."""
    (X, y), _ = digits
    m = model(backend, tol=1e9, n_iter_no_change=3).fit(X, y)
    assert m.n_iter_ == 5
    st = m.history_.stopped
    assert st["reason"] == "no improvement" and st["monitor"] == "train_loss"
    assert st["epoch"] == 4 and "training loss did not improve" in st["message"]
    h = m.history_
    for e in range(5):        # the training loss: the epoch's batch costs per sample
        assert h.train_loss[e] == pytest.approx(h.batch_cost[e].sum() / len(y), rel=1e-12)
    assert m.best_loss_ == min(h.train_loss)
    assert m.validation_scores_ is None and m.best_validation_score_ is None
    # the plain rule keeps the last weights: the same as a 5-epoch fit
    ref = model(backend, epochs=5, n_iter_no_change=None).fit(X, y)
    for Wa, Wb in zip(m.coefs_, ref.coefs_):
        np.testing.assert_array_equal(Wa, Wb)
    assert m.history_.restored_epoch is None


def test_no_patience_runs_every_epoch(digits):
    (X, y), _ = digits
    m = model("compiled", epochs=15, tol=1e9, n_iter_no_change=None).fit(X, y)
    assert m.n_iter_ == 15 and m.history_.stopped is None
    inf = model("compiled", epochs=15, tol=1e9, n_iter_no_change=float("inf")).fit(X, y)
    assert inf.n_iter_ == 15


def test_decay_without_the_rule_is_35_epochs_equal_to_35_partial_fits(digits, backend):
    """With the new features off, a 35-epoch fit runs every epoch and equals,
    bit for bit, the same run split into 35 partial_fit calls."""
    (X, y), _ = digits
    kw = dict(epochs=35, learning_rate=0.001, lr_decay=1e-6, batch_size=500, momentum=5e-5,
              n_iter_no_change=None, early_stopping=False, schedule="decay")
    full = model(backend, **kw).fit(X, y)
    assert full.n_iter_ == 35 and full.history_.stopped is None
    assert full.learning_rate_ == 0.0009994051838157095
    part = model(backend, **kw)
    for _ in range(35):
        part.partial_fit(X, y, classes=np.unique(y))
    for a, b in zip(full.coefs_, part.coefs_):
        np.testing.assert_array_equal(a, b)
    assert part.loss_curve_ == full.loss_curve_
    assert part.history_.learning_rate == full.history_.learning_rate
    assert part.t_ == full.t_ == 35 * len(y)


# ------------------------------------------------------- adaptive schedule
def test_adaptive_divides_by_five_and_stops_under_1e_6(digits, backend):
    """tol no epoch can meet and patience 1: the rate is divided by 5 every
    second epoch after the first plateau, until a plateau finds it at or
    below 1e-6 (6.4e-7 here, after 0.01 / 5^6), as in scikit-learn."""
    (X, y), _ = digits
    m = model(backend, epochs=100, learning_rate=0.01, schedule="adaptive", tol=1e9,
              n_iter_no_change=1).fit(X, y)
    rates = [0.01]
    while rates[-1] > 1e-6:
        rates.append(rates[-1] / 5.0)
    expected = [0.01] * 3 + [r for r in rates[1:] for _ in range(2)]
    assert m.history_.learning_rate == expected
    assert m.n_iter_ == 15 and m.learning_rate_ == expected[-1] < 1e-6
    st = m.history_.stopped
    assert st["reason"] == "no improvement" and "at or below 1e-06" in st["message"]


def test_adaptive_keeps_its_rate_while_the_loss_falls(digits):
    (X, y), _ = digits
    m = model("compiled", epochs=6, learning_rate=0.01, lr_decay=0.5,
              schedule="adaptive").fit(X, y)
    assert m.history_.learning_rate == [0.01] * 6         # lr_decay is not used


def test_adaptive_continues_through_partial_fit_and_the_model_file(digits, tmp_path):
    """partial_fit carries the adaptive rate and the no-improvement count
    from call to call, and the model file carries them too: 4 calls, save,
    load, 4 calls equal 8 calls and an 8-epoch fit."""
    (X, y), _ = digits
    kw = dict(epochs=8, learning_rate=0.01, schedule="adaptive", tol=1e9, n_iter_no_change=1,
              shuffle=False)
    full = model("compiled", **kw).fit(X, y)
    calls = model("compiled", **kw)
    for _ in range(8):
        calls.partial_fit(X, y, classes=np.unique(y))
    saved = model("compiled", **kw)
    for _ in range(4):
        saved.partial_fit(X, y, classes=np.unique(y))
    resumed = load(saved.save(tmp_path / "m.npz"))
    for _ in range(4):
        resumed.partial_fit(X, y)
    assert full.history_.learning_rate[-1] == 0.01 / 5 / 5 / 5     # epochs 0-2, 3-4, 5-6, 7
    for m in (calls, resumed):
        for a, b in zip(full.coefs_, m.coefs_):
            np.testing.assert_array_equal(a, b)
    assert calls.history_.learning_rate == full.history_.learning_rate
    assert resumed.history_.learning_rate == full.history_.learning_rate[4:]
    assert resumed.t_ == full.t_ and resumed.best_loss_ == full.best_loss_


# -------------------------------------------------------- callbacks stop
def test_callback_false_stops_after_the_batch(digits, backend):
    (X, y), _ = digits
    m = model(backend, epochs=5)
    kept = {}

    def cb(epoch, batch, n_batches, value):
        if epoch == 1 and batch == 3:
            kept["W"] = [W.copy() for W in m.coefs_]
            return False
        return None if batch is not None else 0        # None and 0 go on

    m.fit(X, y, callback=cb)
    n_batches = -(-len(y) // 64)
    assert m.n_iter_ == 1 and m.optimizer_steps_ == n_batches + 4
    assert m.t_ == len(y) + 4 * 64
    st = m.history_.stopped
    assert st == dict(reason="callback", epoch=1, batches_completed=4, n_batches=n_batches,
                      batch_cost=st["batch_cost"], how="returned False")
    assert len(st["batch_cost"]) == 4 and len(m.history_) == 1
    for a, b in zip(kept["W"], m.coefs_):
        np.testing.assert_array_equal(a, b)


def test_stop_training_at_the_end_of_an_epoch(digits, backend):
    (X, y), _ = digits

    def cb(epoch, batch, n_batches, value):
        if batch is None and epoch == 2:
            raise StopTraining("enough")

    m = model(backend, epochs=6).fit(X, y, callback=cb)
    assert m.n_iter_ == 3 and len(m.history_) == 3
    st = m.history_.stopped
    assert st["reason"] == "callback" and st["how"] == "StopTraining: enough"
    assert st["epoch"] == 2 and st["batches_completed"] == st["n_batches"]
    ref = model(backend, epochs=3).fit(X, y)
    for a, b in zip(ref.coefs_, m.coefs_):
        np.testing.assert_array_equal(a, b)
    # a StopTraining after a batch, in partial_fit
    p = model(backend)

    def stop_at_2(epoch, batch, n_batches, value):
        if batch == 2:
            raise StopTraining

    p.partial_fit(X, y, classes=np.unique(y), callback=stop_at_2)
    assert p.n_iter_ == 0 and p.optimizer_steps_ == 3
    assert p.history_.stopped["how"] == "StopTraining"


def test_a_callback_stop_with_early_stopping_puts_back_the_best_epoch(digits):
    (X, y), _ = digits

    def cb(epoch, batch, n_batches, value):
        return False if batch is None and epoch == 9 else None

    m = model("compiled", early_stopping=True, n_iter_no_change=None,
              learning_rate=0.5).fit(X, y, callback=cb)
    assert m.n_iter_ == 10 and m.history_.stopped["reason"] == "callback"
    assert m.history_.restored_epoch == int(np.argmax(m.validation_scores_))


# ------------------------------------------------------------- warm_start
def test_warm_start_continues_as_one_longer_fit(digits, backend, tmp_path):
    (X, y), _ = digits
    whole = model(backend, epochs=5, n_iter_no_change=None, optimizer="adam",
                  learning_rate=0.002).fit(X, y)
    m = model(backend, epochs=3, n_iter_no_change=None, optimizer="adam",
              learning_rate=0.002).fit(X, y)
    m.set_params(warm_start=True, epochs=2)
    m.fit(X, y)
    assert m.n_iter_ == 5 and len(m.history_) == 5
    assert_same_state(m, whole, tmp_path)
    assert m.loss_curve_ == whole.loss_curve_ and m.t_ == whole.t_
    # warm_start=False starts afresh
    m.set_params(warm_start=False, epochs=5)
    m.fit(X, y)
    assert_same_state(m, whole, tmp_path)
    # on an unfitted model warm_start is a plain fit
    fresh = model(backend, epochs=5, n_iter_no_change=None, optimizer="adam",
                  learning_rate=0.002, warm_start=True).fit(X, y)
    assert_same_state(fresh, whole, tmp_path)


def test_warm_start_refuses_other_features_classes_or_network(digits):
    (X, y), _ = digits
    m = model("compiled", epochs=1, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start: X has 63 features, but the fitted model "
                                         "has 64"):
        m.fit(X[:, 1:], y)
    with pytest.raises(ValueError, match=r"warm_start: y has the classes \[0, 1, 2, 3, 4\], but "
                                         "the fitted model has"):
        m.fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match="warm_start: y has the classes"):
        m.fit(X, np.array(list("abcdefghij"))[y])
    m.set_params(hidden_layer_sizes=(7,))
    with pytest.raises(ValueError, match="warm_start: hidden_layer_sizes changed"):
        m.fit(X, y)
    assert m.n_iter_ == 1


# ------------------------------------------------------------ attributes
def test_scikit_learn_attributes(digits, backend, tmp_path):
    (X, y), (Xt, _) = digits
    m = model(backend, epochs=2).fit(X, y)
    assert m.n_layers_ == 4 == len(m.layers_)
    assert m.n_outputs_ == 10 and m.out_activation_ == "sigmoid"
    assert m.t_ == 2 * len(y) and m.n_features_in_ == 64
    assert m.best_loss_ == min(m.history_.train_loss)
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(m.predict_log_proba(Xt), np.log(m.predict_proba(Xt)))
    soft = model(backend, epochs=1, output="softmax", hidden_layer_sizes=(5,)).fit(X, y)
    assert soft.out_activation_ == "softmax" and soft.n_layers_ == 3
    back = load(m.save(tmp_path / "m.npz"))
    assert (back.n_layers_, back.n_outputs_, back.out_activation_, back.t_) == (4, 10, "sigmoid",
                                                                              m.t_)
    assert back.best_loss_ == m.best_loss_ and back.validation_scores_ is None
    unfitted = model(backend)
    for name in ("t_", "n_layers_", "best_loss_", "best_validation_score_", "n_outputs_"):
        assert not hasattr(unfitted, name)


# ---------------------------------------------------------- feature names
class Frame:
    """The least a data frame offers (``columns`` and ``__array__``): feature
    names work without pandas."""

    def __init__(self, X, columns):
        self.X, self.columns = np.asarray(X), list(columns)

    def __array__(self, dtype=None, copy=None):
        return self.X if dtype is None else self.X.astype(dtype)


def test_feature_names_without_pandas(digits, tmp_path):
    (X, y), (Xt, _) = digits
    names = [f"px{i}" for i in range(64)]
    m = model("compiled", epochs=1).fit(Frame(X, names), y)
    assert m.feature_names_in_.dtype == object and list(m.feature_names_in_) == names
    m.predict(Frame(Xt, names))
    other = names[:-1] + ["extra"]
    with pytest.raises(ValueError, match="The feature names should match those that were "
                                         "passed during fit.\nFeature names unseen at fit "
                                         "time:\n- extra\nFeature names seen at fit time, yet "
                                         "now missing:\n- px63\n"):
        m.predict(Frame(Xt, other))
    with pytest.raises(ValueError, match="must be in the same order"):
        m.predict_proba(Frame(Xt, names[::-1]))
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                         "MLPClassifier was fitted with feature names"):
        m.predict(Xt)
    with pytest.raises(ValueError, match="unseen at fit time"):
        m.fit(Frame(X, names), y, validation_data=(Frame(Xt, other), np.zeros(len(Xt), int)))
    assert list(load(m.save(tmp_path / "m.npz")).feature_names_in_) == names
    # names that are not all strings: none kept (ints) or refused (mixed)
    ints = model("compiled", epochs=1).fit(Frame(X, range(64)), y)
    assert not hasattr(ints, "feature_names_in_")
    with pytest.raises(TypeError, match="only supported if all input features have string"):
        model("compiled", epochs=1).fit(Frame(X, names[:63] + [5]), y)
    # a fit on a plain array forgets the names; then a frame warns
    m.fit(X, y)
    assert not hasattr(m, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but MLPClassifier was fitted "
                                         "without"):
        m.predict(Frame(Xt, names))


def test_feature_names_with_pandas(digits):
    pd = pytest.importorskip("pandas")
    from sklearn.utils.estimator_checks import check_dataframe_column_names_consistency
    (X, y), (Xt, yt) = digits
    cols = [f"c{i}" for i in range(64)]
    df = pd.DataFrame(X, columns=cols)
    m = model("compiled", epochs=2).fit(df, y, validation_data=(pd.DataFrame(Xt, columns=cols),
                                                                yt))
    np.testing.assert_array_equal(m.feature_names_in_, cols)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert m.score(pd.DataFrame(Xt, columns=cols), yt) > 0.5
    with pytest.raises(ValueError, match="- c0\n"):
        m.predict(pd.DataFrame(Xt, columns=["z" + c for c in cols]))
    p = model("compiled").partial_fit(df, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="The feature names should match"):
        p.partial_fit(pd.DataFrame(X, columns=cols[::-1]), y)
    # scikit-learn's own check of column-name consistency
    check_dataframe_column_names_consistency(
        "MLPClassifier", blog((10,), epochs=3, batch_size=32, learning_rate=0.05))


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw,exc,match", [
    (dict(validation_fraction=0.0), ValueError,
     r"validation_fraction must be strictly between 0 and 1, got 0\.0"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction must be strictly between"),
    (dict(validation_fraction=-0.2), ValueError, "validation_fraction must be strictly between"),
    (dict(validation_fraction="0.1"), TypeError, "validation_fraction must be a number"),
    (dict(n_iter_no_change=0), ValueError, "n_iter_no_change must be >= 1, or None"),
    (dict(n_iter_no_change=-3), ValueError, "n_iter_no_change must be >= 1"),
    (dict(n_iter_no_change=2.5), TypeError, "n_iter_no_change must be an integer >= 1 or None"),
    (dict(tol=-1e-3), ValueError, "tol must be a finite number >= 0"),
    (dict(tol=float("nan")), ValueError, "tol must be a finite number"),
    (dict(schedule="cosine"), ValueError, "schedule must be one of 'decay', 'adaptive'"),
    (dict(early_stopping="yes"), TypeError, "early_stopping must be a bool"),
    (dict(warm_start=None), TypeError, "warm_start must be a bool"),
])
def test_bad_parameters_are_named(digits, kw, exc, match):
    (X, y), _ = digits
    with pytest.raises(exc, match=match):
        model("compiled", **kw).fit(X, y)
    with pytest.raises(exc, match=match):
        model("compiled", **kw).partial_fit(X, y)


def test_validation_fraction_that_cannot_hold_every_class(digits):
    (X, y), _ = digits
    with pytest.raises(ValueError, match=r"validation_fraction=0.005 is too small: it holds out "
                                         r"8 of 1437 samples, fewer than the 10 classes"):
        model("compiled", early_stopping=True, validation_fraction=0.005).fit(X, y)
    with pytest.raises(ValueError, match=r"validation_fraction=0.995 is too large: it leaves 7 "
                                         r"of 1437 samples for training, fewer than the 10"):
        model("compiled", early_stopping=True, validation_fraction=0.995).fit(X, y)
    # enough rows in all, but a rare class cannot be on both sides
    rare = np.concatenate([np.flatnonzero(y != 3), np.flatnonzero(y == 3)[:2]])
    with pytest.raises(ValueError, match=r"leaves no sample of class\(es\) \[3\] in the "
                                         "validation set"):
        model("compiled", early_stopping=True, validation_fraction=0.02).fit(X[rare], y[rare])
    one = np.concatenate([np.flatnonzero(y != 3), np.flatnonzero(y == 3)[:1]])
    with pytest.raises(ValueError, match="class 3 has only 1 sample"):
        model("compiled", early_stopping=True).fit(X[one], y[one])
    # the same fractions are fine without early stopping (nothing is held out)
    model("compiled", epochs=1, validation_fraction=0.005).fit(X, y)


def test_partial_fit_refuses_early_stopping(digits):
    (X, y), _ = digits
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        model("compiled", early_stopping=True).partial_fit(X, y)
    m = model("compiled").partial_fit(X, y)
    m.set_params(early_stopping=True)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        m.partial_fit(X, y)
    assert m.n_iter_ == 1


def test_a_refused_refit_leaves_the_fitted_model_as_it_was(digits):
    (X, y), (Xt, _) = digits
    m = model("compiled", epochs=1).fit(X, y)
    before = m.predict_proba(Xt)
    few = np.isin(y, [0, 1, 2])
    with pytest.raises(ValueError, match="too small"):
        m.set_params(early_stopping=True, validation_fraction=0.001).fit(X[few], y[few])
    assert len(m.classes_) == 10
    np.testing.assert_array_equal(m.predict_proba(Xt), before)
