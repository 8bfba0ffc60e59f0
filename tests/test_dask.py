"""fastmlp on a real Dask cluster: GridSearchCV through joblib, dask-ml's Incremental.

A ``dask.distributed.LocalCluster`` with two worker processes (one thread
each, 450 MB of memory each, nannies that restart a worker over its limit)
runs every test here: no mocks.  dask, distributed and dask-ml come with the
test extra, so CI runs these; ``pytest -m "not dask"`` leaves them out.

* GridSearchCV under ``joblib.parallel_config(backend="dask")`` fits on
  the workers and finds what it finds on one process, score for score;
* ``dask_ml.wrappers.Incremental`` streams a chunked dask array through
  ``partial_fit``, one call per block, and lands on the weights of the same
  calls made in one process, bit for bit;
* each fit uses the one thread its worker task was given;
* a data set larger than a worker's memory limit trains, block by block,
  from a chunked dask array stored on disk, without a worker being killed.
"""

import os

import joblib
import numpy as np
import pytest

import dask
import dask.array as da
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.datasets import load_digits

pytestmark = pytest.mark.dask

# bytes per worker; the nanny restarts a worker at 95 %.  Workers hold about
# 300 MB once fastmlp and dask-ml are imported: 450 MB leaves 125 MB of room
MEMORY_LIMIT = 450e6


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit=MEMORY_LIMIT, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def worker_pids(client):
    return client.run(os.getpid)


def test_grid_search_runs_on_the_workers_and_finds_the_same(client, digits):
    (X, y), _ = digits
    grid = {"hidden_layer_sizes": [(16,), (32,)], "learning_rate": [1e-3, 3e-3]}
    model = MLPClassifier(epochs=8, n_threads=1, random_state=0)
    local = GridSearchCV(model, grid, cv=3).fit(X, y)
    with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(model, grid, cv=3).fit(X, y)
    workers = {t["worker"] for t in tasks.data}
    assert workers == set(client.scheduler_info()["workers"])        # both workers fitted
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert remote.best_params_ == local.best_params_
    assert remote.score(X, y) == local.score(X, y)


@pytest.mark.parametrize("estimator", ["classifier", "regressor"])
def test_incremental_is_one_partial_fit_per_block(client, digits, estimator):
    (X, y), _ = digits
    X = X[:1400].astype(np.float32)
    y = y[:1400] if estimator == "classifier" else X[:1400, :8].sum(axis=1)
    make = MLPClassifier if estimator == "classifier" else MLPRegressor
    model = make(hidden_layer_sizes=(20,), n_threads=1, random_state=0)
    kwargs = {"classes": np.unique(y)} if estimator == "classifier" else {}
    Xd, yd = da.from_array(X, chunks=(200, -1)), da.from_array(y, chunks=200)
    inc = Incremental(model, shuffle_blocks=False).fit(Xd, yd, **kwargs)
    inc.partial_fit(Xd, yd, **kwargs)                   # a second pass goes on
    here = make(**model.get_params())
    for _ in range(2):
        for s in range(0, len(X), 200):
            here.partial_fit(X[s:s + 200], y[s:s + 200], **kwargs)
    assert inc.estimator_.n_iter_ == here.n_iter_ == 14          # one per block
    for a, b in zip(inc.estimator_.coefs_, here.coefs_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(inc.predict(Xd).compute(), here.predict(X))


def test_each_fit_uses_the_thread_its_task_was_given(client, digits):
    """Dask gives each task one thread of its worker (its nanny sets
    OMP_NUM_THREADS=1 in the worker process); the compiled backend's
    default threads follow OpenMP's, so fits on two workers of a 2-core
    machine do not take 2 x 2 threads."""
    from fastmlp.backends import backend_class

    def plan():
        return os.environ.get("OMP_NUM_THREADS"), backend_class("compiled").thread_plan(None)

    for env, (threads, blas) in client.run(plan).values():
        assert env == "1" and threads == 1

    def os_threads():
        return len(os.listdir("/proc/self/task"))

    def fit_threads(X, y):
        counts = {"before": os_threads()}
        for n_threads in (None, 2):              # the default, then 2 forced
            seen = []
            MLPClassifier(epochs=2, n_threads=n_threads, random_state=0).fit(
                X, y, callback=lambda *a: seen.append(os_threads()) and None)
            counts[n_threads] = max(seen)
        return counts

    (X, y), _ = digits
    counts = client.submit(fit_threads, X, y, pure=False).result()
    assert counts[None] == counts["before"]       # the default fit starts no thread
    assert counts[2] > counts["before"]           # (a forced second thread is seen)


def test_data_larger_than_a_worker_trains_block_by_block(client, tmp_path):
    """717 MB of float32 rows, stored as a chunked dask array on disk (10 MB
    blocks), train through Incremental on workers limited to 450 MB each:
    every block is read (memory-mapped) where it is needed, and no worker is
    restarted.  (Workers with fastmlp and dask-ml imported hold about 300 MB
    before the first block; bench/dask_scaling.py measures the rest.)"""
    n, d, rows = 700_000, 256, 10_000
    rng = da.random.default_rng(0)
    X = rng.standard_normal((n, d), chunks=(rows, d), dtype=np.float32)
    y = (X[:, :16].sum(axis=1) > 0).astype(np.int64)
    path = str(tmp_path / "big")
    with dask.config.set(scheduler="synchronous"):           # written here, block by block
        da.to_npy_stack(path + "_X", X)
        da.to_npy_stack(path + "_y", y)
    Xd, yd = da.from_npy_stack(path + "_X"), da.from_npy_stack(path + "_y")
    assert Xd.nbytes > 1.4 * MEMORY_LIMIT
    pids = worker_pids(client)
    client.run(_reset_peak)
    model = MLPClassifier(hidden_layer_sizes=(32,), n_threads=1, random_state=0)
    inc = Incremental(model, shuffle_blocks=False).fit(Xd, yd, classes=[0, 1])
    assert worker_pids(client) == pids                           # none was restarted
    peaks = client.run(_peak_rss)
    assert max(peaks.values()) < 0.95 * MEMORY_LIMIT, peaks
    assert inc.estimator_.n_iter_ == n // rows
    assert inc.estimator_.t_ == n
    assert inc.score(Xd[:50_000], yd[:50_000]) > 0.9


def _reset_peak():
    """Reset the process's peak RSS (VmHWM) to its current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss():
    """The process's peak RSS in bytes since the last reset (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
