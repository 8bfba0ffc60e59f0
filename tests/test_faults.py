"""Faults during training and concurrency: divergence, interrupts, threads,
and a model file replaced while another process reads it."""

import os
import signal
import threading

import numpy as np
import pytest

import fastmlp
from fastmlp import DivergenceError

from _reference import blog


class Recorder:
    """Callback keeping a copy of the weights after every completed batch."""

    def __init__(self, model, stop_after=None):
        self.model, self.stop_after, self.copies = model, stop_after, []

    def __call__(self, epoch, batch, n_batches, value):
        if batch is None:
            return
        self.copies.append([W.copy() for W in self.model.coefs_])
        if self.stop_after is not None and len(self.copies) == self.stop_after:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def digits_data():
    (X, y), _ = fastmlp.datasets.load_digits()
    return X, y


@pytest.mark.parametrize("activation,optimizer", [("sigmoid", "sgd"), ("relu", "sgd"),
                                                  ("relu", "adam")])
def test_divergence_raises_and_keeps_the_last_finite_weights(digits_data, backend,
                                                             activation, optimizer):
    X, y = digits_data
    lr = 1e6 if optimizer == "sgd" else 1e36
    m = blog((30,), activation=activation, optimizer=optimizer, learning_rate=lr,
                      momentum=0.9, batch_size=200, epochs=20, backend=backend,
                      random_state=0)
    rec = Recorder(m)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="diverged in epoch"):
        m.fit(X, y, callback=rec)
    st = m.history_.stopped
    assert st["reason"] == "diverged" and st["n_batches"] == 8
    assert m.optimizer_steps_ == len(rec.copies) == st["epoch"] * 8 + st["batches_completed"]
    assert all(np.isfinite(W).all() for W in m.coefs_)
    for a, b in zip(m.coefs_, rec.copies[-1]):        # exactly the last finite step
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(m.predict_proba(X)).all()


def test_divergence_warn_returns_a_usable_model(digits_data):
    X, y = digits_data
    m = blog((30,), activation="relu", learning_rate=1e6, momentum=0.9, epochs=20,
                      batch_size=200, divergence="warn", random_state=0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        assert m.fit(X, y) is m
    assert m.history_.stopped["reason"] == "diverged"
    assert m.predict(X).shape == y.shape
    with pytest.raises(ValueError, match="divergence"):
        blog(divergence="ignore").fit(X, y)


def test_interrupt_keeps_the_last_completed_batch_and_can_continue(digits_data, backend):
    X, y = digits_data
    m = blog((30,), batch_size=100, epochs=5, backend=backend, random_state=1)
    rec = Recorder(m, stop_after=23)                  # epoch 1, batch 8 of 15
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, callback=rec)
    assert m.history_.stopped == dict(
        reason="interrupted", epoch=1, batches_completed=8, n_batches=15,
        batch_cost=m.history_.stopped["batch_cost"])
    assert len(m.history_.stopped["batch_cost"]) == 8 and m.n_iter_ == 1
    assert m.optimizer_steps_ == 23
    for a, b in zip(m.coefs_, rec.copies[-1]):
        np.testing.assert_array_equal(a, b)
    m.partial_fit(X, y)                                # usable: training goes on
    assert m.n_iter_ == 2 and m.history_.stopped is None


def test_interrupt_inside_a_numpy_step_rewinds_the_half_applied_update(digits_data,
                                                                       monkeypatch):
    """The NumPy step updates layer by layer with the GIL held, so an
    interrupt can land between two layers' updates; the model must still end
    with the weights of the last completed batch, not a mix."""
    from fastmlp.backends import _numpy_backend as nb
    X, y = digits_data
    m = blog((30, 20), batch_size=100, epochs=3, backend="numpy", random_state=2)
    rec = Recorder(m)
    real, calls = nb.gradient_update, [0]

    def flaky(*args, **kw):
        calls[0] += 1
        if calls[0] == 3 * 17 + 2:               # batch 18, after its first layer
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(nb, "gradient_update", flaky)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, callback=rec)
    monkeypatch.setattr(nb, "gradient_update", real)
    assert len(rec.copies) == 17 and m.optimizer_steps_ == 17
    assert m.history_.stopped["batches_completed"] == 2      # 15 per epoch
    for a, b in zip(m.coefs_, rec.copies[-1]):
        np.testing.assert_array_equal(a, b)


def test_real_sigint_during_a_compiled_fit(digits_data):
    """A real SIGINT while the compiled kernels run without the GIL: the fit
    stops with KeyboardInterrupt, and the weights are exactly those of a run
    stopped after the same number of steps."""
    X, y = digits_data
    X = np.repeat(X, 20, axis=0)                       # ~0.3 s per epoch
    y = np.repeat(y, 20)
    kw = dict(hidden_layer_sizes=(200, 100), batch_size=50, epochs=200, random_state=3,
              n_threads=2)
    m = blog(**kw)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            m.fit(X, y)
    finally:
        timer.cancel()
    steps = m.optimizer_steps_
    assert 0 < steps < 200 * 575
    again = blog(**kw)
    with pytest.raises(KeyboardInterrupt):
        again.fit(X, y, callback=Recorder(again, stop_after=steps))
    for a, b in zip(m.coefs_, again.coefs_):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------- concurrency
def test_predictions_in_threads_beside_a_fit_of_another_model(digits_data, backend):
    """Four threads predict with a fitted model while a fifth fits another:
    every prediction equals the one made alone, and the fit equals a solo fit.
    Both models fix their thread count: BLAS's is one setting for the whole
    process, which the fit holds at its n_threads while it runs, so a NumPy
    model that left it open (n_threads=None) would predict with whatever is
    in force, and OpenBLAS's sums differ in the last bit between thread counts."""
    X, y = digits_data
    Xb, yb = np.repeat(X, 4, axis=0), np.repeat(y, 4)
    fitted = blog((40,), epochs=3, random_state=0, backend=backend, n_threads=1).fit(X, y)
    expect = fitted.predict_proba(X)
    kw = dict(hidden_layer_sizes=(64, 32), epochs=4, batch_size=200, learning_rate=0.01,
              random_state=5, n_threads=1, backend=backend)
    solo = blog(**kw).fit(Xb, yb)
    other = blog(**kw)
    errors, results = [], []

    def predict():
        try:
            for _ in range(20):
                results.append(fitted.predict_proba(X))
        except Exception as exc:      # pragma: no cover - reported below
            errors.append(exc)

    def fit():
        try:
            other.fit(Xb, yb)
        except Exception as exc:      # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=predict) for _ in range(4)]
    threads.append(threading.Thread(target=fit))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, expect)
    for a, b in zip(solo.coefs_, other.coefs_):
        np.testing.assert_array_equal(a, b)


_READER = r"""
import sys, time
import fastmlp
path, deadline = sys.argv[1], time.time() + float(sys.argv[2])
n = 0
while time.time() < deadline:
    m = fastmlp.load(path)          # any half-written file raises ModelFileError
    assert m.coefs_[0].shape == (20, 65), m.coefs_[0].shape
    n += 1
print(n)
"""


def test_saving_while_another_process_reads_is_atomic(digits_data, tmp_path):
    """One process loads the model file in a loop while this one saves two
    different models over it 200 times: every load succeeds."""
    import subprocess
    import sys
    X, y = digits_data
    models = [blog((20,), epochs=1, random_state=s).fit(X, y) for s in (0, 1)]
    path = tmp_path / "model.npz"
    models[0].save(path)
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(path), "6"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saves = 0
    while reader.poll() is None and saves < 5000:
        models[saves % 2].save(path)
        saves += 1
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err[-2000:]
    assert saves >= 200 and int(out) >= 20, (saves, out)
    assert not [p for p in os.listdir(tmp_path) if p != "model.npz"]   # no temp files left
    from fastmlp._io import _umask
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()    # not mkstemp's 0600


def test_a_fit_in_another_thread_equals_the_same_fit_in_the_main_thread():
    """BLAS's thread limit holds in whichever Python thread fits.  (threadpoolctl
    lets only the first thread that set a limit change OpenBLAS's pool, so a
    fit in a worker thread used to run its products on every BLAS thread and
    ended some ulps away from the same fit in the main thread.)"""
    from fastmlp.backends import _compiled
    from threadpoolctl import threadpool_info
    (X, y), _ = fastmlp.datasets.load_digits()
    X, y = np.repeat(X, 6, axis=0), np.repeat(y, 6)

    def model():
        return blog((64, 32), epochs=2, batch_size=200, learning_rate=0.01, random_state=1,
                    n_threads=1)

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    previous = _compiled.set_own_gemm(False)            # every product through sgemm
    try:
        here = model().fit(X, y)
        there = model()
        worker = threading.Thread(target=there.fit, args=(X, y))
        worker.start()
        worker.join()
        pair = [model(), model()]
        workers = [threading.Thread(target=m.fit, args=(X, y)) for m in pair]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        _compiled.set_own_gemm(previous)
    for m in [there] + pair:
        for a, b in zip(here.coefs_, m.coefs_):
            np.testing.assert_array_equal(a, b)
    # the last fit to finish put BLAS back as it found it
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
