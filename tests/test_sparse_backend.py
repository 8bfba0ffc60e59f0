"""The compiled backend's sparse mode: epochs against the NumPy backend and
against the compiled dense path, determinism, no allocation per batch,
gradients against finite differences, the transposed layout's sync, and
fits of the estimator on scipy.sparse X (rewinds included)."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier, NetworkState, backends
from fastmlp._scaling import fit_scaling
from fastmlp.backends import BackendConfig, backend_class, loss_and_gradients

from _reference import (assert_same_training_state, blog, dense_targets, numeric_gradient,
                        sample_weights)
from test_sparse_kernels import sparse_rows

ck = backends.module("compiled")


@pytest.fixture(autouse=True)
def _both_gemm_paths(gemm_path):
    return gemm_path


def problem(layers, n, seed, kind="labels", weighted=False, values="u8", density=0.25):
    """Sparse rows, initial weights, targets (labels: one-hot; else dense
    multilabel or regression) and sample weights (or None)."""
    X = sparse_rows(n, layers[0], density, values, seed=seed, empty=(3, 17) if n > 17 else (3,))
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-np.sqrt(1 / i), np.sqrt(1 / i), (o, 1 + i)).astype(np.float32)
               for i, o in zip(layers[:-1], layers[1:])]
    if kind == "labels":
        Y = np.eye(layers[-1], dtype=np.float32)[rng.integers(0, layers[-1], n)]
    else:
        Y = dense_targets(kind, n, layers[-1], seed)
    return X, weights, Y, (sample_weights(n, seed) if weighted else None)


def scaling(X, kind):
    """The input scaling ``kind`` fitted to X's values, or (None, None):
    realistic inputs (unscaled pixels would saturate every unit)."""
    return (None, None) if kind == "none" else fit_scaling(X, kind)


def run_epoch(name, X, weights, Y, config, order, lr, optimizer=None):
    """One epoch of backend ``name``: the weights, optimiser states and costs."""
    layers = tuple([X.shape[1]] + [W.shape[0] for W in weights])
    state = NetworkState(layers, [W.copy() for W in weights], optimizer or "sgd")
    be = backend_class(name)(X, Y, state, config)
    B = config.batch_size
    costs = []
    with threadpool_limits(1, user_api="blas"):
        for s in range(0, len(order), B):
            costs.append(be.train_batch(order[s:s + B], lr))
    be.sync_out()
    return state, costs


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("activation,output,kind,weighted", [
    ("sigmoid", "sigmoid", "labels", False), ("tanh", "softmax", "labels", True),
    ("relu", "sigmoid", "multilabel", True), ("tanh", "identity", "regression", False),
    ("relu", "identity", "regression", True)])
@pytest.mark.parametrize("values,scaled", [("u8", "standard"), ("u8", "maxabs"),
                                           ("f32", "none"), ("f32", "standard")])
def test_one_epoch_same_as_numpy(sparse_mode, n_threads, activation, output, kind, weighted,
                                 values, scaled):
    """Same weights, same permutation, a short last batch: the compiled sparse
    step and the NumPy one end the epoch with the same weights and momentum."""
    layers, n, B = (60, 20, 12, 5), 400, 67
    X, weights, Y, w = problem(layers, n, 7, kind, weighted, values)
    mean, scale = scaling(X, scaled)
    config = BackendConfig(activation=activation, output=output, l2=0.01, l1=0.001,
                           momentum=0.3, batch_size=B, n_threads=n_threads, chunk_rows=32,
                           input_scaling=None if scale is None else (mean, scale),
                           targets="labels" if kind == "labels" else "dense",
                           sample_weight=w)
    order = np.random.default_rng(3).permutation(n)
    sn, cn = run_epoch("numpy", X, weights, Y, config, order, 0.005)
    sc, cc = run_epoch("compiled", X, weights, Y, config, order, 0.005)
    for (a, ra, oka), (b, rb, okb) in zip(cn, cc):
        assert b == pytest.approx(a, rel=1e-4)
        assert rb == pytest.approx(ra, rel=1e-5)
        assert abs(okb - oka) <= 1
    assert_same_training_state(sn.weights, sc.weights, sn.state1, sc.state1)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_one_epoch_same_as_numpy_other_optimizers(sparse_mode, optimizer, n_threads):
    layers, n, B, lr = (60, 20, 12, 5), 400, 67, 0.002
    X, weights, Y, _ = problem(layers, n, 9)
    mean, scale = scaling(X, "standard")
    config = BackendConfig(optimizer=optimizer, l2=0.01, batch_size=B, n_threads=n_threads,
                           input_scaling=(mean, scale))
    order = np.random.default_rng(4).permutation(n)
    sn, cn = run_epoch("numpy", X, weights, Y, config, order, lr, optimizer)
    sc, cc = run_epoch("compiled", X, weights, Y, config, order, lr, optimizer)
    np.testing.assert_allclose([c[0] for c in cc], [c[0] for c in cn], rtol=1e-4)
    for l, (a, b) in enumerate(zip(sn.weights, sc.weights)):
        # an update divides by about |G|: as tests/test_optimizers.py compares
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=lr / 50, err_msg=f"W[{l}]")


@pytest.mark.parametrize("activation,output", [("sigmoid", "sigmoid"), ("tanh", "softmax"),
                                               ("relu", "identity")])
@pytest.mark.parametrize("optimizer,lr", [(None, 0.01), ("rmsprop", 0.002), ("adam", 0.002)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_sparse_and_dense_compiled_paths_agree(sparse_mode, activation, output, optimizer,
                                               lr, n_threads):
    """The same rows given sparse (scaling folded into the first layer) and
    dense (scaled as gathered): a few steps land on the same weights."""
    layers, n, B = (50, 16, 8, 4), 240, 60
    X, weights, Y, w = problem(layers, n, 11, "labels" if output != "identity" else
                               "regression", weighted=True)
    mean, scale = scaling(X, "standard")
    config = BackendConfig(activation=activation, output=output, optimizer=optimizer,
                           l2=0.01, l1=0.001, momentum=0.5 if optimizer is None else 0.0,
                           batch_size=B, n_threads=n_threads, input_scaling=(mean, scale),
                           targets="labels" if output != "identity" else "dense",
                           sample_weight=w)
    order = np.random.default_rng(5).permutation(n)
    dense = np.ascontiguousarray(X.to_scipy().toarray(), np.float32)
    ss, cs = run_epoch("compiled", X, weights, Y, config, order, lr, optimizer)
    sd, cd = run_epoch("compiled", dense, weights, Y, config, order, lr, optimizer)
    np.testing.assert_allclose([c[0] for c in cs], [c[0] for c in cd], rtol=1e-4)
    atol = 2e-6 if optimizer is None else lr / 50
    for l, (a, b) in enumerate(zip(sd.weights, ss.weights)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=atol, err_msg=f"W[{l}]")


@pytest.mark.parametrize("n_threads", [1, 2])
def test_sparse_step_is_deterministic_and_its_first_layer_thread_independent(sparse_mode,
                                                                             n_threads):
    """Two runs with the same thread count: bit-identical.  (The first layer's
    update does not depend on the thread count beyond the deltas feeding it,
    which the dense step sums per slice.)"""
    layers, n, B = (80, 24, 6), 500, 100
    X, weights, Y, _ = problem(layers, n, 13, density=0.3)
    mean, scale = scaling(X, "standard")
    config = BackendConfig(l2=0.01, momentum=0.3, batch_size=B, n_threads=n_threads,
                           input_scaling=(mean, scale))
    order = np.random.default_rng(6).permutation(n)
    a, ca = run_epoch("compiled", X, weights, Y, config, order, 0.01)
    b, cb = run_epoch("compiled", X, weights, Y, config, order, 0.01)
    assert ca == cb
    for Wa, Wb in zip(a.arrays(), b.arrays()):
        np.testing.assert_array_equal(Wa, Wb)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sparse_step_allocates_nothing(sparse_mode, n_threads, optimizer):
    """tracemalloc over an epoch of 20 batches: flat (the Python floats returned)."""
    layers, n, B = (300, 40, 10), 4000, 200
    X, weights, Y, w = problem(layers, n, 15, weighted=True, values="f32", density=0.05)
    mean, scale = scaling(X, "standard")
    state = NetworkState(layers, [W.copy() for W in weights], optimizer)
    config = BackendConfig(optimizer=optimizer, l2=0.01, batch_size=B, n_threads=n_threads,
                           input_scaling=(mean, scale), sample_weight=w, keep_steps=False)
    be = backend_class("compiled")(X, Y, state, config)
    order = np.random.default_rng(0).permutation(n)
    with threadpool_limits(1, user_api="blas"):
        be.train_batch(order[:B], 1e-3)
        tracemalloc.start()
        for s in range(0, n, B):
            be.train_batch(order[s:s + B], 1e-3)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 4_000, peak


@pytest.mark.parametrize("backend_name", ["compiled", "numpy"])
@pytest.mark.parametrize("activation,output", [("sigmoid", "sigmoid"), ("tanh", "softmax"),
                                               ("relu", "identity")])
@pytest.mark.parametrize("kind", ["standard", "maxabs"])
def test_sparse_gradients_equal_finite_differences(sparse_mode, backend_name, activation,
                                                   output, kind):
    """loss_and_gradients on sparse rows with the scaling folded in, against
    float64 finite differences of the plain maths on the scaled dense rows."""
    layers = (9, 5, 3)
    X, weights, Y, w = problem(layers, 7, 17, "labels" if output != "identity" else
                               "regression", weighted=True, values="f32", density=0.5)
    mean, scale = scaling(X, kind)
    dense = (X.to_scipy(np.float64).toarray() - mean) / scale
    config = BackendConfig(activation=activation, output=output, l2=0.3, l1=0.2,
                           input_scaling=(mean, scale), sample_weight=w,
                           targets="labels" if output != "identity" else "dense")
    cost, _, grads = loss_and_gradients(backend_name, weights, X, Y, config)
    numeric = numeric_gradient(weights, dense, Y, 0.3, 0.2, activation=activation,
                               output=output, sample_weight=w)
    for l, (g_a, g_n) in enumerate(zip(grads, numeric)):
        assert g_a.dtype == np.float32
        np.testing.assert_allclose(g_a, g_n, rtol=2e-4, atol=2e-5, err_msg=f"W[{l}]")


def test_sync_out_and_sync_in_round_trip(sparse_mode):
    """The backend trains its own transposed layout: sync_out writes it into
    the state's arrays (nothing else does), and after the state is put back
    to a copy taken earlier, sync_in makes the backend continue from it
    exactly as a fresh backend built on that copy would."""
    layers, n, B = (60, 20, 5), 300, 50
    X, weights, Y, _ = problem(layers, n, 19)
    mean, scale = scaling(X, "standard")
    config = BackendConfig(optimizer="adam", l2=0.01, batch_size=B, n_threads=2,
                           input_scaling=(mean, scale))
    state = NetworkState(layers, [W.copy() for W in weights], "adam")
    be = backend_class("compiled")(X, Y, state, config)
    order = np.random.default_rng(8).permutation(n)
    W0 = state.weights[0].copy()
    be.train_batch(order[:B], 0.01)
    np.testing.assert_array_equal(state.weights[0][:, 1:], W0[:, 1:])   # not yet written
    be.sync_out()
    assert not np.array_equal(state.weights[0], W0)
    snap = [a.copy() for a in state.arrays()]
    for s in range(B, 4 * B, B):
        be.train_batch(order[s:s + B], 0.01)
    for a, c in zip(state.arrays(), snap):               # the trainer's restore
        np.copyto(a, c)
    be.sync_in()
    be.step = 1
    fresh_state = NetworkState(layers, [c.copy() for c in snap[:2]], "adam",
                               state1=[c.copy() for c in snap[2:4]],
                               state2=[c.copy() for c in snap[4:]])
    fresh_state.step = 1
    fresh = backend_class("compiled")(X, Y, fresh_state, config)
    for s in range(B, 4 * B, B):
        assert be.train_batch(order[s:s + B], 0.01) == fresh.train_batch(order[s:s + B], 0.01)
    be.sync_out()
    fresh.sync_out()
    for a, b in zip(state.arrays(), fresh_state.arrays()):
        np.testing.assert_array_equal(a, b)


def test_last_step_needs_the_step_kept():
    X, weights, Y, _ = problem((30, 6, 3), 50, 21)
    state = NetworkState((30, 6, 3), [W.copy() for W in weights])
    be = backend_class("compiled")(X, Y, state, BackendConfig(batch_size=10, keep_steps=False))
    be.train_batch(np.arange(10), 0.1)
    with pytest.raises(RuntimeError, match="keep_steps=False"):
        be.last_step()


# ---------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def digits_sparse():
    from fastmlp.datasets import load_digits
    (X, y), (Xt, yt) = load_digits()
    return sp.csr_matrix(X), y, sp.csr_matrix(Xt), yt


@pytest.mark.parametrize("n_threads", [1, 2])
def test_estimator_fits_sparse_x_on_both_backends_alike(digits_sparse, n_threads):
    X, y, Xt, yt = digits_sparse
    kw = dict(hidden_layer_sizes=(30,), epochs=4, batch_size=100, random_state=1,
              n_threads=n_threads, scaling="standard")
    a = MLPClassifier(backend="numpy", **kw).fit(X, y)
    b = MLPClassifier(backend="compiled", **kw).fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(Wb, Wa, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(b.predict_proba(Xt), a.predict_proba(Xt), rtol=1e-3,
                               atol=1e-5)
    c = MLPClassifier(backend="compiled", **kw).fit(X, y)
    for Wb, Wc in zip(b.coefs_, c.coefs_):              # deterministic
        np.testing.assert_array_equal(Wb, Wc)
    dense = MLPClassifier(backend="compiled", **kw).fit(X.toarray(), y)
    assert abs(b.score(Xt, yt) - dense.score(Xt.toarray(), yt)) <= 0.01


def test_divergence_with_sparse_x_keeps_the_last_finite_weights(digits_sparse):
    from fastmlp import DivergenceError
    from test_faults import Recorder
    X, y, _, _ = digits_sparse
    m = blog((30,), activation="relu", learning_rate=1e6, momentum=0.9, batch_size=200,
             epochs=20, random_state=0, backend="compiled")
    rec = Recorder(m)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="diverged"):
        m.fit(X, y, callback=rec)
    assert m.optimizer_steps_ == len(rec.copies)
    for a, b in zip(m.coefs_, rec.copies[-1]):           # exactly the last finite step
        np.testing.assert_array_equal(a, b)


def test_interrupt_with_sparse_x_keeps_the_last_completed_batch(digits_sparse):
    from test_faults import Recorder
    X, y, _, _ = digits_sparse
    m = blog((30,), batch_size=100, epochs=5, random_state=1, backend="compiled")
    rec = Recorder(m, stop_after=23)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, callback=rec)
    assert m.optimizer_steps_ == 23
    for a, b in zip(m.coefs_, rec.copies[-1]):
        np.testing.assert_array_equal(a, b)
    m.partial_fit(X, y)                                   # and it goes on


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_early_stopping_restores_exactly_the_best_epoch_with_sparse_x(digits_sparse, optimizer):
    """The restored model equals a plain fit of best epoch + 1 epochs on the
    same training part: the trainer's best-epoch snapshot and restore go
    through the transposed first layer (sync_out, sync_in) exactly."""
    from sklearn.model_selection import train_test_split
    X, y, _, _ = digits_sparse
    kw = dict(hidden_layer_sizes=(20,), batch_size=64, random_state=0, backend="compiled",
              optimizer=optimizer, learning_rate=0.05 if optimizer == "sgd" else 0.002)
    m = MLPClassifier(early_stopping=True, n_iter_no_change=2, **kw).fit(X, y)
    best = m.history_.restored_epoch
    assert best is not None and best < m.n_iter_ - 1
    Xtr, Xv, ytr, yv = train_test_split(X, y, test_size=0.1, random_state=0, stratify=y)
    ref = MLPClassifier(epochs=best + 1, n_iter_no_change=None, **kw).fit(
        Xtr, ytr, validation_data=(Xv, yv))
    for a, b in zip(m._state.arrays(), ref._state.arrays()):
        np.testing.assert_array_equal(a, b)
    assert m.history_.cost[:best + 1] == ref.history_.cost


def test_the_epoch_snapshot_of_the_transposed_layer_rewinds_exactly(digits_sparse):
    """Without a callback the epoch snapshot copies only the first layer's
    bias column (its other columns wait in the state's arrays until
    sync_out): a divergence still rewinds to exactly the weights that the
    full snapshot (taken when a callback reads coefs_) rewinds to."""
    from fastmlp import DivergenceError
    from test_faults import Recorder
    X, y, _, _ = digits_sparse
    kw = dict(activation="relu", learning_rate=1e6, momentum=0.9, batch_size=200, epochs=20,
              random_state=0, backend="compiled")
    m = blog((30,), **kw)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="diverged"):
        m.fit(X, y)
    full = blog((30,), **kw)
    rec = Recorder(full)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="diverged"):
        full.fit(X, y, callback=rec)
    assert m.history_.stopped["batches_completed"] > 0      # a rewind with a replay
    assert m.optimizer_steps_ == full.optimizer_steps_ == len(rec.copies)
    for a, b in zip(m.coefs_, rec.copies[-1]):
        np.testing.assert_array_equal(a, b)
