"""fastmlp on a Dask LocalCluster: threads per worker, and data larger than a worker.

Threads.  The same GridSearchCV (MNIST rows, 4 candidates x 2 folds, 8 fits)
under ``joblib.parallel_config(backend="dask")`` on

* 2 workers x 1 thread,
* 1 worker x 2 threads,
* 2 workers x 1 thread with ``n_threads=2`` forced on every fit (what
  happens when each fit takes every core: 4 threads on 2 cores);
* for scale, no Dask: the fits one after another in this process, each on
  both cores.

Dask's nanny starts each worker with OMP_NUM_THREADS=1, and fastmlp's
compiled backend takes OpenMP's default, so each task's fit runs on the one
thread the task was given.  It prints each run's seconds and the fits'
CPU seconds.

Memory.  A chunked dask array of float32 rows larger than a worker's memory
limit, stored on disk (``da.to_npy_stack``), trains through
``dask_ml.wrappers.Incremental`` (one partial_fit per block, each block
memory-mapped where it runs); then the same file is fitted whole with
``fit`` on a memory map inside one worker task.  It prints each worker's
peak RSS (VmHWM) and whether a worker was restarted.

    python bench/dask_scaling.py                 # both parts
    python bench/dask_scaling.py --part threads --repeats 3
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

# bench/sparse.py would shadow the `sparse` package that dask.array imports
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def threads(repeats, rows):
    import joblib
    from distributed import Client, LocalCluster
    from sklearn.model_selection import GridSearchCV

    from fastmlp import MLPClassifier
    from fastmlp.datasets import load_mnist

    (X, y), _ = load_mnist()
    X, y = X[:rows], y[:rows]
    grid = {"hidden_layer_sizes": [(100,), (200,)], "learning_rate": [1e-3, 2e-3]}
    setups = [("2 workers x 1 thread", 2, 1, None), ("1 worker x 2 threads", 1, 2, None),
              ("2 workers x 1 thread, n_threads=2", 2, 1, 2)]
    print(f"GridSearchCV: {rows} MNIST rows, 4 candidates x 2 folds, 5 epochs each; "
          f"best of {repeats}")
    print(f"{'cluster':36} {'seconds':>8} {'fit CPU s':>9}")
    for label, workers, per_worker, forced in setups:
        with LocalCluster(n_workers=workers, threads_per_worker=per_worker, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            model = MLPClassifier(epochs=5, random_state=0, n_threads=forced)
            best, cpu = np.inf, None
            for _ in range(repeats):
                before = sum(client.run(_cpu_seconds).values())
                t0 = time.perf_counter()
                with joblib.parallel_config(backend="dask"):
                    GridSearchCV(model, grid, cv=2, refit=False).fit(X, y)
                seconds = time.perf_counter() - t0
                if seconds < best:
                    best = seconds
                    cpu = sum(client.run(_cpu_seconds).values()) - before
            print(f"{label:36} {best:8.2f} {cpu:9.2f}", flush=True)
    model = MLPClassifier(epochs=5, random_state=0)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        GridSearchCV(model, grid, cv=2, refit=False).fit(X, y)
        best = min(best, time.perf_counter() - t0)
    print(f"{'no Dask: one process, 2 threads/fit':36} {best:8.2f}", flush=True)


def memory(limit_mb, size_mb, rows):
    import dask
    import dask.array as da
    from dask_ml.wrappers import Incremental
    from distributed import Client, LocalCluster

    from fastmlp import MLPClassifier

    d = 256
    n = int(size_mb * 1e6 / (4 * d)) // rows * rows
    folder = tempfile.mkdtemp(prefix="fastmlp-dask-")
    rng = da.random.default_rng(0)
    X = rng.standard_normal((n, d), chunks=(rows, d), dtype=np.float32)
    y = (X[:, :16].sum(axis=1) > 0).astype(np.int64)
    with dask.config.set(scheduler="synchronous"):
        da.to_npy_stack(os.path.join(folder, "X"), X)
        da.to_npy_stack(os.path.join(folder, "y"), y)
        Xd, yd = da.from_npy_stack(os.path.join(folder, "X")), \
            da.from_npy_stack(os.path.join(folder, "y"))
        # the same rows as one .npy file, for the memory-mapped fit
        flat = os.path.join(folder, "X.npy")
        out = np.lib.format.open_memmap(flat, mode="w+", dtype=np.float32, shape=(n, d))
        for s in range(0, n, rows):
            out[s:s + rows] = Xd[s:s + rows].compute()
        out.flush()
        del out
        labels = yd.compute()
    print(f"data: {n} x {d} float32 = {Xd.nbytes / 1e6:.0f} MB; workers: 2 x 1 thread, "
          f"memory limit {limit_mb} MB each (the nanny restarts a worker at 95 %)")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit=f"{limit_mb}MB", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: [__import__(m) for m in ("fastmlp", "dask_ml._partial")])
        base = client.run(_peak_rss)
        print("workers' RSS with fastmlp and dask-ml imported: "
              + ", ".join(f"{v / 1e6:.0f} MB" for v in base.values()))
        pids = client.run(os.getpid)
        client.run(_reset_peak)
        t0 = time.perf_counter()
        model = MLPClassifier(hidden_layer_sizes=(32,), n_threads=1, random_state=0)
        inc = Incremental(model, shuffle_blocks=False).fit(Xd, yd, classes=[0, 1])
        seconds = time.perf_counter() - t0
        peaks = client.run(_peak_rss)
        print(f"Incremental over {len(Xd.chunks[0])} blocks of {rows} rows: {seconds:.1f} s, "
              f"peak RSS per worker " + ", ".join(f"{v / 1e6:.0f} MB" for v in peaks.values())
              + f", restarted: {client.run(os.getpid) != pids}, accuracy on the first 50000 "
              f"rows {inc.score(Xd[:50_000], yd[:50_000]):.4f}", flush=True)

        def fit_memmap(path, labels):
            X = np.load(path, mmap_mode="r")
            MLPClassifier(hidden_layer_sizes=(32,), epochs=1, n_threads=1,
                          random_state=0).fit(X, labels)
            return _peak_rss()

        client.run(_reset_peak)
        t0 = time.perf_counter()
        future = client.submit(fit_memmap, flat, labels, pure=False, retries=0)
        try:
            peak = future.result(timeout=600)
            what = f"finished, peak RSS {peak / 1e6:.0f} MB"
        except Exception as exc:                   # KilledWorker, as the nanny restarts it
            what = f"failed: {type(exc).__name__}"
        print(f"fit() on the whole memory-mapped file in one task: {what} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("threads", "memory", "both"), default="both")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--limit-mb", type=int, default=400)
    p.add_argument("--size-mb", type=int, default=600)
    p.add_argument("--block-rows", type=int, default=25_000)
    args = p.parse_args(argv)
    if args.part in ("threads", "both"):
        threads(args.repeats, args.rows)
    if args.part in ("memory", "both"):
        memory(args.limit_mb, args.size_mb, args.block_rows)


if __name__ == "__main__":
    main()
