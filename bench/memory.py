"""Peak memory (RSS) of a fit on MNIST, per backend and batch size.

    python bench/memory.py                                 # 3 epochs, batches 500 and 20000
    python bench/memory.py --epochs 10 --json bench/results/memory.json
    python bench/memory.py --backends numpy --batches 20000 --tracemalloc
    python bench/memory.py --memmap      # X and y as np.load(mmap_mode="r") of .npy files

Every (backend, batch) pair runs in a fresh subprocess, so each peak belongs
to that fit alone.  The child reads its peak resident set size
(``VmHWM`` in /proc/self/status, and ``ru_maxrss`` from getrusage, which
agree on Linux) and its current RSS (``VmRSS``) at three points: after the
imports, after ``load_mnist()``, and after the fit; and its RSS after every
epoch, so growth with the number of epochs would show.  "fit increase" is the
peak after the fit minus the RSS after loading: what the fit itself needed
on top of the data.

For comparison the script prints what the data and the batch buffers should
take:

* the dataset: the uint8 training images (60000 x 784 bytes, 47 MB), and
  the float32 copy the NumPy backend makes (188 MB; the blog series' form:
  one scaled float32 copy of X).  The compiled backend reads the uint8 array
  as it is and scales each row as it gathers it, so it makes no copy.
* the NumPy backend's batch buffers, allocated once per fit: the gathered
  inputs (batch x 784) and, per layer, three (batch x width) arrays
  (outputs, deltas, scratch): 4 bytes x batch x (784 + 10 + 3 x sum of
  widths).
* the compiled backend's buffers: the same per row, but for one chunk of
  at most 256 rows per thread, whatever the batch size.

MB here is 10^6 bytes.  Linux only (/proc and ru_maxrss in KiB).

Measured on the 2-core machine, 3 epochs (bench/results/memory.json): the
data take 56 MB over the imports (train + test images); the compiled fit
adds 6 MB at batch 500 and at batch 20000; the NumPy fit adds 196 MB at
batch 500 and 315 MB at batch 20000.  RSS does not grow from epoch to epoch.
The NumPy fit at batch 20000 is 34 MB above its own arrays: tracemalloc's
peak (which sees every NumPy allocation) is 283.0 MB, as expected, and with
``--threads 1`` the excess is gone (283.0 MB): it is OpenBLAS's working
memory for two-threaded sgemm on 20000-row operands, not a copy of the data.
With ``--memmap`` (bench/results/memory_memmap.json) the compiled fit adds
7 MB of anonymous memory at either batch size and reads the mapped file in
place (its pages are page cache, reclaimable: the path for data larger than
memory); the NumPy fit adds its float32 copy as anonymous memory (+197 MB at
batch 500, +316 MB at batch 20000), so it needs the data to fit in memory.
"""

import argparse
import json
import os
import resource
import subprocess
import sys

MB = 1e6
N_TRAIN, N_FEATURES, N_CLASSES = 60000, 784, 10
HIDDEN = (70, 30)
CHUNK_ROWS = 256          # the compiled backend's default (BackendConfig.chunk_rows)


def _status():
    """VmRSS, VmHWM, RssAnon and RssFile of this process in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _point():
    st = _status()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss": st["VmRSS"], "hwm": st["VmHWM"], "anon": st["RssAnon"],
            "file": st["RssFile"], "ru_maxrss": maxrss}


def child(backend, batch, epochs, threads, use_tracemalloc, mmap_dir=None):
    """One fit; print one JSON line with the memory figures.  With ``mmap_dir``
    the training set is opened from its .npy files there with
    ``np.load(mmap_mode="r")`` instead of loaded from mnist.npz."""
    points = {}
    import numpy as np
    import fastmlp
    from fastmlp import MLPClassifier
    from fastmlp.datasets import load_mnist
    from fastmlp.experiments._common import timed_fit
    import fastmlp.backends._compiled  # noqa: F401  (the compiled backend's module)
    points["imports"] = _point()

    if mmap_dir:
        X = np.load(os.path.join(mmap_dir, "X.npy"), mmap_mode="r")
        y = np.load(os.path.join(mmap_dir, "y.npy"), mmap_mode="r")
    else:
        (X, y), _ = load_mnist()
    points["data"] = _point()

    per_epoch = []

    def cb(epoch, b, n_batches, record):
        if b is None:
            per_epoch.append(_point())

    if use_tracemalloc:
        import tracemalloc
        tracemalloc.start(25)
    clf = MLPClassifier.blog_experiment(hidden_layer_sizes=HIDDEN, epochs=epochs,
                                        batch_size=batch, backend=backend, n_threads=threads,
                                        random_state=0)
    seconds = timed_fit(clf, X, y, callback=cb)
    points["fit"] = _point()
    result = {"backend": backend, "batch": batch, "epochs": epochs, "threads": threads,
              "memmap": bool(mmap_dir),
              "points": points, "per_epoch": per_epoch, "fit_seconds": seconds,
              "X": {"dtype": str(X.dtype), "shape": list(X.shape), "nbytes": X.nbytes},
              "build": fastmlp.build_info(),
              "train_acc": float(clf.history_.train_acc[-1])}
    if use_tracemalloc:
        current, peak = tracemalloc.get_traced_memory()
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        # the largest blocks still alive after the fit, by allocation site
        top = snap.statistics("traceback")[:5]
        result["tracemalloc"] = {
            "peak": peak, "current": current,
            "top_alive": [{"bytes": s.size, "where": s.traceback.format()[-1].strip()}
                          for s in top]}
    del np
    print(json.dumps(result))


def expected(batch, threads):
    """What the data and the per-fit buffers should take, in bytes."""
    widths = HIDDEN + (N_CLASSES,)
    per_row = 4 * (N_FEATURES + N_CLASSES + 3 * sum(widths))
    chunk = min(CHUNK_ROWS, -(-batch // threads))
    return {
        "uint8 X": N_TRAIN * N_FEATURES,
        "float32 X": 4 * N_TRAIN * N_FEATURES,
        "numpy buffers": batch * per_row,
        "compiled buffers": threads * chunk * per_row,
        # one-hot Y (float32), labels and a permutation: O(n), not O(n x 784)
        "per-sample arrays": N_TRAIN * (4 * N_CLASSES + 8 + 8 + 4),
    }


def run(args):
    """One child process per (backend, batch) pair; returns (their results,
    the thread count used)."""
    results = []
    threads = args.threads or os.cpu_count()
    mmap_dir = None
    if args.memmap:
        import tempfile
        import numpy as np
        from fastmlp.datasets import load_mnist
        tmp = tempfile.TemporaryDirectory(prefix="fastmlp-memory-")
        mmap_dir = tmp.name
        (X, y), _ = load_mnist()
        np.save(os.path.join(mmap_dir, "X.npy"), X)
        np.save(os.path.join(mmap_dir, "y.npy"), y)
        del X, y
    for backend in args.backends:
        for batch in args.batches:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", backend,
                   str(batch), str(args.epochs), str(threads)]
            if args.tracemalloc:
                cmd.append("--tracemalloc")
            if mmap_dir:
                cmd += ["--mmap-dir", mmap_dir]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"child {backend} batch {batch} failed "
                                 f"(exit {proc.returncode})")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["expected"] = expected(batch, threads)
            results.append(r)
    return results, threads


def report(results, threads, epochs):
    """Print the expected sizes and one table row per child's result."""
    e = expected(500, threads)
    print(f"MNIST training set: uint8 60000x784 = {e['uint8 X'] / MB:.1f} MB; "
          f"float32 copy = {e['float32 X'] / MB:.1f} MB")
    widths = HIDDEN + (N_CLASSES,)
    print(f"net 784-{'-'.join(map(str, widths))}; batch buffers = 4 B x rows x "
          f"(784 + 10 + 3 x {sum(widths)}) = {4 * (N_FEATURES + N_CLASSES + 3 * sum(widths))} "
          f"B per row; compiled: rows = {threads} threads x min(256, batch/threads)")
    print(f"{epochs} epochs, {threads} threads; MB = 1e6 bytes; peak = VmHWM "
          "(ru_maxrss agrees within 1 MB)")
    if results and results[0].get("memmap"):
        print("training set: np.load(mmap_mode='r') of X.npy and y.npy (test set not loaded)")
    print()
    head = (f"{'backend':9s} {'batch':>6s} {'imports':>8s} {'data':>8s} {'fit peak':>9s} "
            f"{'fit incr':>9s} {'expected':>9s} {'RSS/epoch':>24s} {'time s':>7s}")
    print(head)
    print("-" * len(head))
    for r in results:
        p = r["points"]
        ex = r["expected"]
        exp = (ex["float32 X"] + ex["numpy buffers"] if r["backend"] == "numpy"
               else ex["compiled buffers"]) + ex["per-sample arrays"]
        incr = p["fit"]["hwm"] - p["data"]["rss"]
        epochs_rss = ",".join(f"{q['rss'] / MB:.0f}" for q in r["per_epoch"])
        print(f"{r['backend']:9s} {r['batch']:6d} {p['imports']['hwm'] / MB:8.1f} "
              f"{p['data']['hwm'] / MB:8.1f} {p['fit']['hwm'] / MB:9.1f} {incr / MB:9.1f} "
              f"{exp / MB:9.1f} {epochs_rss:>24s} {r['fit_seconds']:7.2f}")
        if abs(p["fit"]["ru_maxrss"] - p["fit"]["hwm"]) > MB:
            print(f"   note: ru_maxrss {p['fit']['ru_maxrss'] / MB:.1f} MB differs from VmHWM")
        if r.get("memmap"):
            anon = max(q["anon"] for q in r["per_epoch"])
            print(f"   memmap: anonymous RSS {p['data']['anon'] / MB:.1f} MB with the data "
                  f"mapped, {anon / MB:.1f} MB at most after an epoch "
                  f"(+{(anon - p['data']['anon']) / MB:.1f}); file-backed RSS after the fit "
                  f"{p['fit']['file'] / MB:.1f} MB (page cache, reclaimable)")
        if "tracemalloc" in r:
            t = r["tracemalloc"]
            print(f"   tracemalloc during fit: peak {t['peak'] / MB:.1f} MB, alive after "
                  f"{t['current'] / MB:.1f} MB")
            for s in t["top_alive"]:
                print(f"     {s['bytes'] / MB:8.2f} MB  {s['where']}")
    print("\nexpected = fit's own allocations: the float32 copy and batch buffers "
          "(numpy) or the chunk buffers (compiled), plus the per-sample arrays "
          f"({e['per-sample arrays'] / MB:.1f} MB); RSS/epoch = VmRSS after each epoch.")


def main(argv=None):
    """Measure every (backend, batch) pair in its own subprocess and print the
    table (``--child`` is that subprocess).  Returns the exit status (0)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", default="500,20000",
                    type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--backends", default="compiled,numpy",
                    type=lambda s: s.split(","))
    ap.add_argument("--threads", type=int, default=None,
                    help="n_threads of the fit (default: all cores)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python/NumPy allocations during the fit (slower)")
    ap.add_argument("--memmap", action="store_true",
                    help="train from np.load(mmap_mode='r') of the training set "
                         "saved as .npy (the path for data larger than memory)")
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--mmap-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=4, metavar=("BACKEND", "BATCH", "EPOCHS", "THREADS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        b, batch, epochs, threads = args.child
        child(b, int(batch), int(epochs), int(threads), args.tracemalloc, args.mmap_dir)
        return 0
    results, threads = run(args)
    report(results, threads, args.epochs)
    if args.json:
        from fastmlp.experiments._common import machine
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, "threads": threads, "mb": MB,
                       "machine": machine(), "results": results}, f, indent=1,
                      default=str)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
