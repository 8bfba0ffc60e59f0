"""rmsprop and adam: kernels against a float64 reference and against each
other, the backends over an epoch, the estimator's state across partial_fit
and save/load.  (The Keras comparison is in test_keras.py.)"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import NetworkState, backends
from fastmlp.backends import BACKENDS, BackendConfig
from fastmlp._optim import Optimizer

from _reference import blog, random_problem

#: Every backend module by name, for the twin comparisons.
MODS = {name: backends.module(name) for name in BACKENDS}


@pytest.fixture(autouse=True)
def _both_gemm_paths(gemm_path):
    return gemm_path


def exact_problem(B, n_in, n_out, seed):
    """delta and A_prev of small multiples of 1/8, so every product and sum of
    the gradient is exact in float32 and both backends start from the same G."""
    r = np.random.default_rng(seed)
    delta = (r.integers(-8, 9, (B, n_out)) / 8).astype(np.float32)
    A = (r.integers(0, 9, (B, n_in)) / 8).astype(np.float32)
    W = r.uniform(-0.5, 0.5, (n_out, 1 + n_in)).astype(np.float32)
    return delta, A, W


def reference_steps(W, grads, name, lr, l2, steps):
    """The rules of fastmlp._optim in float64, straight from their formulas,
    for a fixed list of data gradients (bias in column 0, not regularised)."""
    W = W.astype(np.float64)
    s1, s2 = np.zeros_like(W), np.zeros_like(W)
    rho, b1, b2, eps = 0.9, 0.9, 0.999, 1e-7
    for t in range(1, steps + 1):
        G = grads[t - 1].astype(np.float64).copy()
        G[:, 1:] += l2 * W[:, 1:]
        if name == "rmsprop":
            s1 = rho * s1 + (1 - rho) * G**2
            W = W - lr * G / np.sqrt(s1 + eps)
        else:
            s1 = s1 + (G - s1) * (1 - b1)
            s2 = s2 + (G**2 - s2) * (1 - b2)
            alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            W = W - s1 * alpha / (np.sqrt(s2) + eps)
    return W


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (4, 9, 5), (16, 37, 11), (8, 100, 70)])
@pytest.mark.parametrize("l2", [0.0, 0.25])
def test_optimizer_step_twins_are_bit_identical_and_follow_the_formula(name, B, n_in, n_out,
                                                                       l2):
    """With an exactly representable gradient both kernels take bit-identical
    steps (same float32 operations in the same order, alpha included), and
    five steps stay within float32 rounding of the float64 formula."""
    delta, A, W0 = exact_problem(B, n_in, n_out, seed=B + n_in)
    grad = np.column_stack([delta.sum(0), delta.T.astype(np.float64) @ A])
    out = {}
    for key, mod in MODS.items():
        W, s1, s2 = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
        Gw, gb = np.empty((n_out, n_in), np.float32), np.empty(n_out, np.float32)
        for t in range(1, 6):
            mod.gradient_update(delta, A, W, s1, 0.01, l2, 0.0, 0.0, Gw, gb,
                                np.empty_like(Gw), optimizer=name, state2=s2, step=t)
        out[key] = (W, s1, s2)
    for a, b, what in zip(out["numpy"], out["compiled"], ("W", "state1", "state2")):
        np.testing.assert_array_equal(b, a, err_msg=what)
    ref = reference_steps(W0, [grad] * 5, name, 0.01, l2, 5)
    np.testing.assert_allclose(out["compiled"][0], ref, rtol=1e-5, atol=1e-6)


def test_adam_alpha_is_keras_float32_formula(backend):
    """Bias correction of step t: a single weight with gradient g makes the
    first adam step alpha * g (1-b1) / (|g| sqrt(1-b2) + eps); checked for
    t = 1 and 1000 against the float32 formula, on each backend's kernel."""
    for t in (1, 7, 1000):
        opt = Optimizer("adam")
        lr, _, _, omb1, omb2, alpha, eps = opt.constants(0.003, t)
        f = np.float32
        b1p, b2p = f(float(f(0.9)) ** t), f(float(f(0.999)) ** t)
        expect = f(0.003) * np.sqrt(f(1) - b2p) / (f(1) - b1p)
        assert alpha == expect and alpha.dtype == np.float32
        delta, A = np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)
        W = np.zeros((1, 2), np.float32)
        MODS[backend].gradient_update(delta, A, W, np.zeros_like(W), 0.003, 0, 0, 0,
                                      np.empty((1, 1), np.float32), np.empty(1, np.float32),
                                      np.empty((1, 1), np.float32), optimizer="adam",
                                      state2=np.zeros_like(W), step=t)
        m, v = f(1) * omb1, f(1) * omb2
        assert W[0, 1] == -(m * alpha) / (np.sqrt(v) + eps)


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("l2,l1", [(0.0, 0.0), (0.05, 0.01)])
def test_optimizer_kernels_agree_on_random_gradients(name, order, l2, l1):
    """Random float data: the gradients differ by summation order, so the
    steps agree to a tolerance.  An update divides by about |G|, so where G
    is near zero its rounding moves the step by up to ~lr: the weights are
    compared with an absolute tolerance of lr / 100."""
    r = np.random.default_rng(3)
    B, n_in, n_out, lr = 200, 60, 20, 0.001
    delta = r.uniform(-1, 1, (B, n_out)).astype(np.float32)
    A = r.uniform(0, 1, (B, n_in)).astype(np.float32)
    if order == "F":
        delta, A = np.asfortranarray(delta), np.asfortranarray(A)
    W0 = r.uniform(-0.5, 0.5, (n_out, 1 + n_in)).astype(np.float32)
    outs = {}
    for key, mod in MODS.items():
        W, s1, s2 = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
        Gw, gb = np.empty((n_out, n_in), np.float32), np.empty(n_out, np.float32)
        for t in (1, 2, 3):
            mod.gradient_update(delta, A, W, s1, lr, l2, l1, 0.0, Gw, gb, np.empty_like(Gw),
                                optimizer=name, state2=s2, step=t)
        outs[key] = (W, s1, s2)
    ref, got = outs["numpy"], outs["compiled"]
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=lr / 100)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-4, atol=1e-6)
    assert not np.array_equal(got[0], W0)


def test_optimizer_kernels_reject_bad_arguments():
    d, A, W = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32), np.zeros((3, 5),
                                                                              np.float32)
    Gw, gb = np.empty((3, 4), np.float32), np.empty(3, np.float32)
    for mod in MODS.values():
        with pytest.raises(ValueError, match="unknown optimizer 'nesterov'"):
            mod.gradient_update(d, A, W, np.zeros_like(W), 0.1, 0, 0, 0, Gw, gb,
                                np.empty_like(Gw), optimizer="nesterov")
        with pytest.raises(ValueError, match="state2"):
            mod.gradient_update(d, A, W, np.zeros_like(W), 0.1, 0, 0, 0, Gw, gb,
                                np.empty_like(Gw), optimizer="adam")
        with pytest.raises(ValueError, match="state2"):
            mod.gradient_update(d, A, W, np.zeros_like(W), 0.1, 0, 0, 0, Gw, gb,
                                np.empty_like(Gw), optimizer="adam",
                                state2=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="beta_2 must be in"):
        Optimizer.checked(Optimizer("adam", beta_2=1.0))
    with pytest.raises(ValueError, match="epsilon"):
        Optimizer.checked(Optimizer("rmsprop", epsilon=0.0))


# ------------------------------------------------------------------ backends
@pytest.mark.parametrize("name", ["rmsprop", "adam"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_backends_agree_over_an_epoch(name, n_threads):
    layers, n, B, lr = (30, 20, 12, 5), 600, 97, 0.002
    weights, X, Y = random_problem(layers, batch=n, seed=11)
    config = BackendConfig(optimizer=Optimizer(name), l2=0.01, batch_size=B,
                           n_threads=n_threads)
    runs = {}
    for key in BACKENDS:
        # zero optimiser state: both moments for adam, the mean square for rmsprop
        state = NetworkState(layers, [W.copy() for W in weights], name)
        be = MODS[key].Backend(X, Y, state, config)
        order = np.random.default_rng(2).permutation(n)
        costs = []
        with threadpool_limits(1, user_api="blas"):
            for s in range(0, n, B):
                costs.append(be.train_batch(order[s:s + B], lr)[0])
        assert be.step == -(-n // B)
        runs[key] = (state.weights, costs)
    np.testing.assert_allclose(runs["compiled"][1], runs["numpy"][1], rtol=1e-4)
    for l, (a, b) in enumerate(zip(runs["numpy"][0], runs["compiled"][0])):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=lr / 50, err_msg=f"W[{l}]")


def test_backend_needs_second_moments_for_adam(backend):
    weights, X, Y = random_problem((5, 4, 3), batch=10, seed=1)
    state = NetworkState((5, 4, 3), [W.copy() for W in weights])     # sgd: no state2
    assert state.state2 is None
    with pytest.raises(ValueError, match="states2"):
        MODS[backend].Backend(X, Y, state, BackendConfig(optimizer=Optimizer("adam"),
                                                         batch_size=5, n_threads=1))


# ------------------------------------------------------------------ estimator
@pytest.fixture(scope="module")
def digits():
    return fastmlp.datasets.load_digits()


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_estimator_learns_digits(digits, name, backend):
    (X, y), (Xt, yt) = digits
    m = blog((30,), optimizer=name, epochs=20, batch_size=64, learning_rate=0.003,
                      backend=backend, random_state=0).fit(X, y)
    assert m.optimizer_steps_ == 20 * -(-len(X) // 64)
    assert m.score(Xt, yt) >= 0.93


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_partial_fit_and_save_load_continue_the_optimizer_state(digits, name, tmp_path):
    """Three partial_fit calls equal fit(epochs=3); a model saved after one
    epoch and loaded continues to the same weights (adam's step count and both
    moments travel in the file)."""
    (X, y), _ = digits
    kw = dict(hidden_layer_sizes=(20,), optimizer=name, batch_size=100, learning_rate=0.002,
              random_state=4, n_threads=1)
    full = blog(epochs=3, **kw).fit(X, y)
    part = blog(**kw)
    part.partial_fit(X, y)
    path = tmp_path / "m.npz"
    part.save(path)
    loaded = fastmlp.load(path)
    assert loaded.optimizer == name and loaded.optimizer_steps_ == part.optimizer_steps_
    # partial_fit draws its permutation from the model's rng; the loaded model
    # gets a fresh one, so carry the state over to compare the arithmetic
    loaded._rng = part._rng.__class__(part._rng.bit_generator.__class__())
    loaded._rng.bit_generator.state = part._rng.bit_generator.state
    for m in (part, loaded):
        m.partial_fit(X, y)
        m.partial_fit(X, y)
    for a, b, c in zip(full.coefs_, part.coefs_, loaded.coefs_):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(c, a)


def test_unknown_optimizer_and_bad_hyperparameters_are_named(digits):
    (X, y), _ = digits
    with pytest.raises(ValueError, match="optimizer"):
        blog(optimizer="nadam").fit(X, y)
    with pytest.raises(ValueError, match="beta_1"):
        blog(optimizer="adam", beta_1=1.5).fit(X, y)
    with pytest.raises(ValueError, match="epsilon"):
        blog(optimizer="rmsprop", epsilon=0.0).fit(X, y)
    with pytest.raises(ValueError, match="rho"):
        blog(optimizer="rmsprop", rho=-0.1).fit(X, y)


def test_version_1_model_files_still_load(digits, tmp_path):
    """Files written before the optimiser existed (format 1, sgd) load as sgd."""
    import json
    (X, y), _ = digits
    m = blog((10,), epochs=1, random_state=0).fit(X, y)
    path = tmp_path / "new.npz"
    m.save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["__fastmlp__"].tobytes())
    header["format_version"] = 1
    del header["optimizer_steps"]
    for k in ("optimizer", "rho", "beta_1", "beta_2", "epsilon"):
        del header["params"][k]
    arrays["__fastmlp__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    loaded = fastmlp.load(old)
    assert loaded.optimizer == "sgd"
    np.testing.assert_array_equal(loaded.predict_outputs(X), m.predict_outputs(X))


def test_partial_fit_takes_new_rates_and_refuses_structural_changes(digits):
    (X, y), _ = digits
    same, m = (blog((10,), random_state=0, l2=0.0).partial_fit(X, y)
               for _ in range(2))
    m.set_params(l2=50.0)                   # a huge penalty: smaller weights than
    for model in (same, m):                 # the same epoch without it
        model.partial_fit(X, y)
    sq = [sum(float((W[:, 1:] ** 2).sum()) for W in mod.coefs_) for mod in (same, m)]
    assert sq[1] < 0.9 * sq[0]
    assert m.history_.reg_share[1] > 0 == same.history_.reg_share[1]
    for change in (dict(hidden_layer_sizes=(11,)), dict(activation="tanh"),
                   dict(optimizer="adam"), dict(scaling="minmax")):
        bad = blog((10,), random_state=0).partial_fit(X, y)
        bad.set_params(**change)
        with pytest.raises(ValueError, match=f"{next(iter(change)).split('_layer')[0]}"):
            bad.partial_fit(X, y)
