"""Compiled training step against the NumPy reference, step by step and per epoch."""

import threading
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier, NetworkState
from fastmlp.backends import BACKENDS, BackendConfig, backend_class
from fastmlp.datasets import load_digits

from _reference import assert_same_training_state, random_problem

CompiledBackend = backend_class("compiled")


@pytest.fixture(autouse=True)
def _both_gemm_paths(gemm_path):
    """Every test here runs with fastmlp's AVX-512 products and with sgemm."""
    return gemm_path


def make_backends(layers, n, B, l2, l1, mom, seed, n_threads, chunk_rows=256,
                  activation="sigmoid", output="sigmoid", names=BACKENDS):
    """One backend of each name on the same random problem and the same
    configuration, each on its own copy of the weights and a zero velocity:
    ``{name: (backend, weights, velocities)}``."""
    weights, X, Y = random_problem(layers, batch=n, seed=seed)
    config = BackendConfig(activation=activation, output=output, l2=l2, l1=l1, momentum=mom,
                           batch_size=B, n_threads=n_threads, chunk_rows=chunk_rows)
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
    fits = [MLPClassifier((30,), epochs=3, batch_size=100, learning_rate=0.05,
                          random_state=4, backend=backend, n_threads=2).fit(X, y)
            for _ in range(2)]
    for a, b in zip(fits[0].coefs_, fits[1].coefs_):
        np.testing.assert_array_equal(a, b)


def test_backends_agree_over_a_short_fit():
    (X, y), (Xt, yt) = load_digits()
    kw = dict(hidden_layer_sizes=(30, 20), epochs=5, batch_size=100, learning_rate=0.05,
              random_state=1, n_threads=1, l1=0.001)
    a = MLPClassifier(backend="numpy", **kw).fit(X, y)
    b = MLPClassifier(backend="compiled", **kw).fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(Wb, Wa, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(b.history_.cost, a.history_.cost, rtol=1e-4)
    assert abs(a.score(Xt, yt) - b.score(Xt, yt)) <= 0.005


def test_gil_released_two_fits_in_threads_match_solo_fits():
    (X, y), _ = load_digits()
    X = np.repeat(X, 6, axis=0)          # big enough for the threads to overlap
    y = np.repeat(y, 6)

    def model(seed):
        return MLPClassifier((64, 32), epochs=4, batch_size=200, learning_rate=0.01,
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
