"""Compiled training step against the NumPy reference, step by step and per epoch."""

import threading
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastmlp import NetworkState
from fastmlp.backends import BACKENDS, BackendConfig, backend_class
from fastmlp.datasets import load_digits

from _reference import (assert_same_training_state, blog, dense_targets, random_problem,
                        sample_weights)

CompiledBackend = backend_class("compiled")


@pytest.fixture(autouse=True)
def _both_gemm_paths(gemm_path):
    """Every test here runs with fastmlp's AVX-512 products and with sgemm."""
    return gemm_path


def make_backends(layers, n, B, l2, l1, mom, seed, n_threads, chunk_rows=256,
                  activation="sigmoid", output="sigmoid", names=BACKENDS, kind="labels",
                  weighted=False):
    """One backend of each name on the same random problem and the same
    configuration, each on its own copy of the weights and a zero velocity:
    ``{name: (backend, weights, velocities)}``.  ``kind`` "labels" trains on
    one-hot rows; "multilabel" and "regression" on dense targets
    (``targets="dense"``); ``weighted`` adds sample weights, some of them 0."""
    weights, X, Y = random_problem(layers, batch=n, seed=seed)
    targets = "labels" if kind == "labels" else "dense"
    if targets == "dense":
        Y = dense_targets(kind, n, layers[-1], seed)
    sw = sample_weights(n, seed) if weighted else None
    config = BackendConfig(activation=activation, output=output, l2=l2, l1=l1, momentum=mom,
                           batch_size=B, n_threads=n_threads, chunk_rows=chunk_rows,
                           targets=targets, sample_weight=sw)
    runs = {}
    for name in names:
        state = NetworkState(layers, [W.copy() for W in weights])
        runs[name] = (backend_class(name)(X, Y, state, config), state.weights, state.state1)
    return runs


@pytest.mark.parametrize("layers", [(30, 20, 5), (40, 30, 20, 15, 10, 4)],
                         ids=["1-hidden", "4-hidden"])
@pytest.mark.parametrize("l2,l1", [(0.0, 0.0), (0.01, 0.0), (0.05, 0.01)])
@pytest.mark.parametrize("n_threads,chunk_rows", [(1, 256), (2, 256), (3, 256), (1, 16),
                                                   (2, 7)])
def test_one_epoch_same_weights(layers, l2, l1, n_threads, chunk_rows):
    """Same initial weights, same permutation, an epoch whose last batch is
    short (1000 = 7 x 137 + 41): the two backends end with the same weights,
    whether a slice goes through the network in one chunk or in several."""
    n, B = 1000, 137
    runs = make_backends(layers, n, B, l2, l1, 0.3, 7, n_threads, chunk_rows)
    (nbk, Wn, Vn), (cbk, Wc, Vc) = runs["numpy"], runs["compiled"]
    order = np.random.default_rng(3).permutation(n)
    with threadpool_limits(1, user_api="blas"):
        for s in range(0, n, B):
            idx = order[s:s + B]
            cn, rn, okn = nbk.train_batch(idx, 0.01)
            cc, rc, okc = cbk.train_batch(idx, 0.01)
            assert cc == pytest.approx(cn, rel=1e-4)
            assert rc == pytest.approx(rn, rel=1e-5, abs=1e-12)
            assert abs(okc - okn) <= 1
    assert_same_training_state(Wn, Wc, Vn, Vc)


@pytest.mark.parametrize("activation,output", [("tanh", "sigmoid"), ("relu", "sigmoid"),
                                               ("sigmoid", "softmax"), ("relu", "softmax")])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_one_epoch_same_weights_other_activations(activation, output, n_threads):
    n, B = 600, 97
    runs = make_backends((30, 20, 15, 5), n, B, 0.01, 0.001, 0.3, 5, n_threads, 32,
                         activation, output)
    (nbk, Wn, _), (cbk, Wc, _) = runs["numpy"], runs["compiled"]
    order = np.random.default_rng(4).permutation(n)
    with threadpool_limits(1, user_api="blas"):
        for s in range(0, n, B):
            cn = nbk.train_batch(order[s:s + B], 0.005)[0]
            cc = cbk.train_batch(order[s:s + B], 0.005)[0]
            assert cc == pytest.approx(cn, rel=1e-4)
    for l, (a, b) in enumerate(zip(Wn, Wc)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6, err_msg=f"W[{l}]")


@pytest.mark.parametrize("output,kind,weighted", [
    ("identity", "regression", False), ("identity", "regression", True),
    ("sigmoid", "multilabel", False), ("sigmoid", "multilabel", True),
    ("sigmoid", "labels", True), ("softmax", "labels", True), ("identity", "labels", True)])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_one_epoch_same_weights_dense_targets_and_sample_weights(output, kind, weighted,
                                                                n_threads):
    """Regression (identity + squared error), multilabel (dense sigmoid
    targets) and weighted runs: an epoch of each backend, chunks of 32 rows,
    short last batch; the same costs, counts of correct rows and weights."""
    n, B = 600, 97
    runs = make_backends((30, 20, 15, 5), n, B, 0.01, 0.001, 0.3, 5, n_threads, 32, "tanh",
                         output, kind=kind, weighted=weighted)
    (nbk, Wn, Vn), (cbk, Wc, Vc) = runs["numpy"], runs["compiled"]
    order = np.random.default_rng(4).permutation(n)
    with threadpool_limits(1, user_api="blas"):
        for s in range(0, n, B):
            cn, rn, okn = nbk.train_batch(order[s:s + B], 0.002)
            cc, rc, okc = cbk.train_batch(order[s:s + B], 0.002)
            assert cc == pytest.approx(cn, rel=1e-4)
            assert rc == pytest.approx(rn, rel=1e-5)
            assert abs(okc - okn) <= 1
            if output == "identity" and kind == "regression":
                assert okc == okn == 0
    assert_same_training_state(Wn, Wc, Vn, Vc)


def full_batch_step(name, weights, X, Y, output, targets, sample_weight=None, n_threads=1):
    """Weights and batch cost after one sgd step (no momentum) on all rows."""
    layers = tuple([X.shape[1]] + [W.shape[0] for W in weights])
    state = NetworkState(layers, [W.copy() for W in weights])
    config = BackendConfig(activation="tanh", output=output, l2=0.01, l1=0.001,
                           batch_size=X.shape[0], n_threads=n_threads, targets=targets,
                           sample_weight=sample_weight)
    be = backend_class(name)(X, Y, state, config)
    with threadpool_limits(1, user_api="blas"):
        cost, _, _ = be.train_batch(np.arange(X.shape[0], dtype=np.intp), 0.01)
    return state.weights, cost


#: (output, kind of targets) of the weight tests
WEIGHTED_PROBLEMS = [("sigmoid", "labels"), ("softmax", "labels"), ("sigmoid", "multilabel"),
                     ("identity", "regression")]


def weighted_problem(output, kind, n, seed):
    weights, X, Y = random_problem((12, 9, 4), batch=n, seed=seed)
    if kind != "labels":
        Y = dense_targets(kind, n, 4, seed)
    return weights, X, Y, "labels" if kind == "labels" else "dense"


@pytest.mark.parametrize("output,kind", WEIGHTED_PROBLEMS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_integer_weight_equals_repeating_the_sample(backend, output, kind, n_threads):
    """A full-batch step with sample i weighted w_i (integers 1 to 5) lands on
    the weights of a step on the data with row i repeated w_i times."""
    weights, X, Y, targets = weighted_problem(output, kind, 60, 21)
    w = np.random.default_rng(5).integers(1, 6, 60).astype(np.float32)
    rows = np.repeat(np.arange(60), w.astype(int))
    Wa, ca = full_batch_step(backend, weights, X, Y, output, targets, w, n_threads)
    Wb, cb = full_batch_step(backend, weights, X[rows], Y[rows], output, targets, None,
                             n_threads)
    assert ca == pytest.approx(cb, rel=1e-5)
    for l, (a, b) in enumerate(zip(Wa, Wb)):
        # the sums run in another order: weights near 0 need an atol, of a
        # few float32 ulps of the weights' size (0.3: ulp 3e-8)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"W[{l}]")


@pytest.mark.parametrize("output,kind", WEIGHTED_PROBLEMS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_zero_weight_equals_dropping_the_sample(backend, output, kind, n_threads):
    weights, X, Y, targets = weighted_problem(output, kind, 60, 22)
    w = np.ones(60, np.float32)
    w[[0, 7, 8, 30, 59]] = 0.0
    keep = w > 0
    Wa, ca = full_batch_step(backend, weights, X, Y, output, targets, w, n_threads)
    Wb, cb = full_batch_step(backend, weights, X[keep], Y[keep], output, targets, None,
                             n_threads)
    assert ca == pytest.approx(cb, rel=1e-5)
    for l, (a, b) in enumerate(zip(Wa, Wb)):
        # the sums run in another order: weights near 0 need an atol, of a
        # few float32 ulps of the weights' size (0.3: ulp 3e-8)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"W[{l}]")


def test_weights_and_dense_targets_are_read_where_they_lie(backend):
    """The backend keeps the caller's weight array: weights changed in place
    after construction are those of the next step (here all 0: no loss, and
    only the regularisation moves the weights).  The compiled kernels read
    the caller's weights and dense targets at their own addresses."""
    n = 50
    weights, X, _ = random_problem((8, 6, 3), batch=n, seed=3)
    Y = dense_targets("regression", n, 3, 3)
    w = sample_weights(n, 3, zeros=False)
    state = NetworkState((8, 6, 3), [W.copy() for W in weights])
    config = BackendConfig(output="identity", targets="dense", sample_weight=w, l2=0.1,
                           batch_size=n, n_threads=1)
    be = backend_class(backend)(X, Y, state, config)
    if backend == "compiled":
        assert be.target_data.addresses() == {"labels": 0, "Y": Y.ctypes.data,
                                              "sample_weight": w.ctypes.data}
        assert np.shares_memory(be.target_data.sample_weight, w)
    idx = np.arange(n, dtype=np.intp)
    assert be.train_batch(idx, 0.01)[0] > 0
    w[:] = 0.0
    before = [W.copy() for W in state.weights]
    cost, reg, _ = be.train_batch(idx, 0.01)
    assert cost == 0.0 and reg > 0
    for W0, W1, S in zip(before, state.weights, be.last_step()):
        np.testing.assert_array_equal(S[:, 0], 0.0)             # no loss gradient
        np.testing.assert_allclose(S[:, 1:], 0.01 * 0.1 * W0[:, 1:], rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(W1, W0 - S, rtol=1e-6, atol=1e-9)


def test_no_allocation_proportional_to_the_data_with_weights(backend):
    """tracemalloc: a backend built on 200,000 weighted rows with dense
    targets, and its training steps, allocate nothing of the weights' size
    (800 kB): neither the weights nor the targets are copied."""
    n, layers = 200_000, (4, 3, 2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    Y = dense_targets("multilabel", n, 2, 0)
    w = sample_weights(n, 0)
    weights = random_problem(layers, batch=1, seed=0)[0]
    state = NetworkState(layers, [W.copy() for W in weights])
    config = BackendConfig(targets="dense", sample_weight=w, batch_size=256, n_threads=1)
    order = rng.permutation(n)
    cls = backend_class(backend)        # imported before tracing starts
    with threadpool_limits(1, user_api="blas"):
        tracemalloc.start()
        be = cls(X, Y, state, config)
        base, built = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for s in range(0, 256 * 20, 256):
            be.train_batch(order[s:s + 256], 1e-3)
        steps = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    assert built < w.nbytes // 8, built
    assert steps < 64_000, steps


def test_single_slice_step_equals_numpy_closely():
    """One thread, one batch: every weight within a few float32 ulps."""
    runs = make_backends((50, 20, 10), 300, 300, 0.01, 0.0, 0.0, 1, 1)
    (nbk, Wn, _), (cbk, Wc, _) = runs["numpy"], runs["compiled"]
    idx = np.arange(300)
    with threadpool_limits(1, user_api="blas"):
        nbk.train_batch(idx, 0.05)
        cbk.train_batch(idx, 0.05)
    for a, b in zip(Wn, Wc):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_train_batch_rejects_bad_indices_and_sizes():
    cbk = make_backends((6, 4, 3), 50, 10, 0.0, 0.0, 0.0, 2, 2, names=["compiled"])[
        "compiled"][0]
    with pytest.raises(ValueError, match="out of range"):
        cbk.train_batch(np.array([0, 50], np.intp), 0.1)
    with pytest.raises(ValueError, match="expected 1..10"):
        cbk.train_batch(np.arange(11), 0.1)
    with pytest.raises(ValueError, match="expected 1..10"):
        cbk.train_batch(np.arange(0), 0.1)
    with pytest.raises(ValueError, match="lr must be"):
        cbk.train_batch(np.arange(3), float("nan"))


def test_compiled_backend_rejects_inconsistent_construction():
    weights, X, Y = random_problem((6, 4, 3), batch=20, seed=0)
    V = [np.zeros_like(W) for W in weights]
    state = NetworkState((6, 4, 3), weights, state1=V)
    config = BackendConfig(batch_size=5)
    with pytest.raises(ValueError, match="Y: expected shape"):
        CompiledBackend(X, Y[:, :2], state, config)
    with pytest.raises(ValueError, match=r"velocities\[1\]"):
        bad = NetworkState((6, 4, 3), weights, state1=[V[0], V[1][:, :2].copy()])
        CompiledBackend(X, Y, bad, config)
    with pytest.raises(ValueError, match="batch_size"):
        CompiledBackend(X, Y, state, BackendConfig(batch_size=0))
    with pytest.raises(ValueError, match="l2 must be"):
        CompiledBackend(X, Y, state, BackendConfig(batch_size=5, l2=-0.1))
    with pytest.raises(ValueError, match="chunk_rows"):
        CompiledBackend(X, Y, state, BackendConfig(batch_size=5, n_threads=1, chunk_rows=0))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_compiled_epoch_allocates_nothing(n_threads):
    """tracemalloc over a whole epoch: flat (only the Python floats returned)."""
    cbk = make_backends((784, 70, 30, 10), 6000, 500, 0.01, 0.001, 5e-5, 0, n_threads,
                        names=["compiled"])["compiled"][0]
    order = np.random.default_rng(0).permutation(6000)
    with threadpool_limits(1, user_api="blas"):
        cbk.train_batch(order[:500], 1e-3)
        tracemalloc.start()
        for s in range(0, 6000, 500):
            cbk.train_batch(order[s:s + 500], 1e-3)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 4_000, peak


def test_fit_is_deterministic_for_seed_and_threads(backend):
    (X, y), _ = load_digits()
    fits = [blog((30,), epochs=3, batch_size=100, learning_rate=0.05,
                          random_state=4, backend=backend, n_threads=2).fit(X, y)
            for _ in range(2)]
    for a, b in zip(fits[0].coefs_, fits[1].coefs_):
        np.testing.assert_array_equal(a, b)


def test_backends_agree_over_a_short_fit():
    (X, y), (Xt, yt) = load_digits()
    kw = dict(hidden_layer_sizes=(30, 20), epochs=5, batch_size=100, learning_rate=0.05,
              random_state=1, n_threads=1, l1=0.001)
    a = blog(backend="numpy", **kw).fit(X, y)
    b = blog(backend="compiled", **kw).fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(Wb, Wa, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(b.history_.cost, a.history_.cost, rtol=1e-4)
    assert abs(a.score(Xt, yt) - b.score(Xt, yt)) <= 0.005


def test_gil_released_two_fits_in_threads_match_solo_fits():
    (X, y), _ = load_digits()
    X = np.repeat(X, 6, axis=0)          # big enough for the threads to overlap
    y = np.repeat(y, 6)

    def model(seed):
        return blog((64, 32), epochs=4, batch_size=200, learning_rate=0.01,
                             random_state=seed, n_threads=1)

    solo = [model(s).fit(X, y) for s in (1, 2)]
    pair = [model(s) for s in (1, 2)]
    errors = []

    def run(m):
        try:
            m.fit(X, y)
        except Exception as exc:          # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for s, p in zip(solo, pair):
        for a, b in zip(s.coefs_, p.coefs_):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_compiled_backend_scales_rows_as_it_gathers(dtype):
    """The compiled backend reads X in the caller's dtype and scales each row
    while gathering; the NumPy backend scales one float32 copy up front.  The
    inputs they train on are the same float32 values, so the runs agree."""
    rng = np.random.default_rng(11)
    X = rng.integers(0, 256, (400, 30)).astype(dtype)
    weights, _, Y = random_problem((30, 12, 5), batch=400, seed=3)
    mean = X.astype(np.float32).mean(axis=0)
    scale = X.astype(np.float32).std(axis=0) + 1
    config = BackendConfig(l2=0.01, momentum=0.1, batch_size=64, n_threads=1,
                           input_scaling=(mean, scale))
    runs = {}
    for name in BACKENDS:
        state = NetworkState((30, 12, 5), [W.copy() for W in weights])
        be = backend_class(name)(X, Y, state, config)
        costs = [be.train_batch(np.arange(s, min(400, s + 64)), 0.01)[0]
                 for s in range(0, 400, 64)]
        runs[name] = (state.weights, costs)
    np.testing.assert_allclose(runs["compiled"][1], runs["numpy"][1], rtol=1e-5)
    for a, b in zip(runs["numpy"][0], runs["compiled"][0]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case,match", [
    ("long", r"sample_weight: must be a float32 array of shape \(20,\)"),
    ("float64", r"sample_weight: must be a float32 array"),
    ("2-D", r"sample_weight: must be a float32 array"),
    ("list", r"sample_weight: must be a float32 array"),
    ("strided", "sample_weight: must be contiguous"),
    ("negative", "sample_weight: weights must be >= 0"),
    ("nan", "sample_weight: weights must be finite"),
    ("inf", "sample_weight: weights must be finite"),
])
def test_backends_refuse_bad_sample_weights(backend, case, match):
    weights, X, Y = random_problem((6, 4, 3), batch=20, seed=0)
    w = {"long": np.ones(21, np.float32), "float64": np.ones(20),
         "2-D": np.ones((20, 1), np.float32), "list": [1.0] * 20,
         "strided": np.ones(40, np.float32)[::2]}.get(case, np.ones(20, np.float32))
    if case in ("negative", "nan", "inf"):
        w[3] = {"negative": -1.0, "nan": np.nan, "inf": np.inf}[case]
    state = NetworkState((6, 4, 3), weights)
    with pytest.raises(ValueError, match=match):
        backend_class(backend)(X, Y, state, BackendConfig(batch_size=5, sample_weight=w))


@pytest.mark.parametrize("output,targets,Y_case,match", [
    ("sigmoid", "dense", "wide", r"Y: expected shape \(20, 3\)"),
    ("identity", "dense", "short", r"Y: expected shape \(20, 3\)"),
    ("sigmoid", "labels", "wide", r"Y: expected shape \(20, 3\)"),
    ("softmax", "dense", "ok", "targets='dense' with output='softmax' is not supported"),
    ("sigmoid", "one-hot", "ok", "unknown targets 'one-hot'"),
    ("sigmoid", "dense", "2", r"Y: dense targets of a sigmoid output .* \[0, 1\]"),
    ("identity", "dense", "nan", "Y: dense targets must be finite"),
])
def test_backends_refuse_senseless_targets(backend, output, targets, Y_case, match):
    weights, X, Y = random_problem((6, 4, 3), batch=20, seed=0)
    Y = {"wide": np.zeros((20, 4), np.float32), "short": Y[:19], "2": Y * 2,
         "nan": np.where(Y > 0, np.nan, 0).astype(np.float32)}.get(Y_case, Y)
    state = NetworkState((6, 4, 3), weights)
    config = BackendConfig(batch_size=5, output=output, targets=targets)
    with pytest.raises(ValueError, match=match):
        backend_class(backend)(X, Y, state, config)


def test_compiled_backend_rejects_unsupported_inputs():
    weights, X, Y = random_problem((6, 4, 3), batch=20, seed=0)
    state = NetworkState((6, 4, 3), weights)
    config = BackendConfig(batch_size=5)
    with pytest.raises(ValueError, match="uint8, float32 or float64"):
        CompiledBackend(X.astype(np.int64), Y, state, config)
    with pytest.raises(ValueError, match="C-contiguous"):
        CompiledBackend(np.asfortranarray(X), Y, state, config)
    with pytest.raises(ValueError, match="input_scaling"):
        CompiledBackend(X, Y, state,
                        BackendConfig(batch_size=5, input_scaling=(np.zeros(5), np.ones(5))))
    with pytest.raises(ValueError, match="non-zero"):
        CompiledBackend(X, Y, state,
                        BackendConfig(batch_size=5, input_scaling=(np.zeros(6), np.zeros(6))))
