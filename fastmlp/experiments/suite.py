"""fastmlp against Keras, PyTorch and scikit-learn on MNIST, side by side, in one run.

Every row trains the seed network's layers (784-70-30-10) on the shipped MNIST
for the same number of epochs, batch size and thread count; the figure of a
row is its best of ``--repeats`` runs (fit time, then the test accuracy of
that run).  fastmlp, PyTorch and scikit-learn use the seeds' learning rate
for the batch size (0.001 below 10000, 0.0001 above, as the seeds ran batch
500 and 20000).  Rows:

  fastmlp compiled   the product (seed hyperparameters, standardised inputs)
  fastmlp numpy      fastmlp's NumPy reference backend, same settings
  keras seed         the seeds' Keras MLP as they ran it: rmsprop, categorical
                     cross-entropy, L2 0.01, x/255 inputs
  keras seed xla     the same model with jit_compile=True and
                     steps_per_execution = batches per epoch
  torch sgd          PyTorch, the same network, summed LogLoss, L2 and SGD as
                     fastmlp does it (skipped, with the reason, if not installed)
  sklearn sgd        scikit-learn MLPClassifier(70, 30), logistic, sgd; its
                     rate and alpha scaled to match fastmlp's summed loss
  fastmlp rmsprop    fastmlp with optimizer="rmsprop" (lr 0.001, no decay, L2 0.01)
  keras rmsprop      the seed MLP's layers in Keras, started from the same initial
                     weights as the fastmlp rmsprop row, trained by model.fit with
                     Keras's RMSprop on the same standardised data and the same
                     objective (keras_models.objective_mlp): equal terms
  keras cnn          (only with --cnn) the seeds' CNN, --cnn-epochs epochs

The per-phase breakdown (like the seeds' t1..t6) comes from one fastmlp
compiled fit that also measures test accuracy every epoch.

    fastmlp bench                                     # batch 500 and 20000, 35 epochs
    fastmlp bench --batch-sizes 100,500,2000,20000 --repeats 2
    fastmlp bench --cnn --json bench.json --plot bench.png

(``python bench/suite.py`` from a checkout is the same.)  Keras rows need the
``keras`` extra, PyTorch is optional, the plot needs the ``plot`` extra.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import fastmlp
from fastmlp import MLPClassifier
from fastmlp.datasets import load_mnist

ROWS = ("fastmlp", "numpy", "keras", "keras-xla", "torch", "sklearn", "fastmlp-rmsprop",
        "keras-rmsprop")
LABELS = {"fastmlp": "fastmlp compiled", "numpy": "fastmlp numpy", "keras": "keras seed",
          "keras-xla": "keras seed xla", "torch": "torch sgd", "sklearn": "sklearn sgd",
          "fastmlp-rmsprop": "fastmlp rmsprop", "keras-rmsprop": "keras rmsprop",
          "cnn": "keras cnn (seed)"}


class Skip(Exception):
    """A row that cannot run here; the message says why."""


# ------------------------------------------------------------------ rows
def seed_learning_rate(batch):
    """The seeds' learning rate for a batch size: 0.001 at batch 500, 0.0001 at
    batch 20000 (their two runs); the gradient is summed over the batch, so
    large batches need the smaller rate (0.001 at 20000 saturates the net)."""
    return 0.001 if batch < 10_000 else 0.0001


def run_fastmlp(data, batch, epochs, threads, seed, backend="compiled"):
    (X, y), (Xt, yt) = data
    m = MLPClassifier(backend=backend, batch_size=batch, epochs=epochs, n_threads=threads,
                      learning_rate=seed_learning_rate(batch), random_state=seed)
    t = time.perf_counter()
    m.fit(X, y)
    return time.perf_counter() - t, m.score(Xt, yt)


#: The equal-terms rmsprop rows: Keras's default rate, no decay (Keras has
#: none), fastmlp's default L2.  rmsprop's step hardly depends on the scale
#: of the gradient, so one rate serves every batch size.
RMSPROP = dict(optimizer="rmsprop", learning_rate=0.001, lr_decay=0.0, l2=0.01)


def initial_weights(n_features, n_classes, seed, hidden=(70, 30)):
    """The weights an MLPClassifier with ``random_state=seed`` starts from."""
    m = MLPClassifier(hidden, random_state=seed)
    m._params = m._check_params()
    m.layers_ = (n_features,) + tuple(hidden) + (n_classes,)
    return m._init_weights(np.random.default_rng(seed))


def run_fastmlp_rmsprop(data, batch, epochs, threads, seed):
    (X, y), (Xt, yt) = data
    m = MLPClassifier(batch_size=batch, epochs=epochs, n_threads=threads,
                      random_state=seed, **RMSPROP)
    t = time.perf_counter()
    m.fit(X, y)
    return time.perf_counter() - t, m.score(Xt, yt)


def run_keras_rmsprop(data, batch, epochs, threads, seed):
    tf = _tf(threads)
    from fastmlp.keras_models import objective_mlp
    (X, y), (Xt, yt) = _standardised(data)
    Y = np.eye(10, dtype=np.float32)[y]
    tf.keras.utils.set_random_seed(seed)
    model = objective_mlp(initial_weights(X.shape[1], 10, seed), l2=RMSPROP["l2"],
                          optimizer="rmsprop", learning_rate=RMSPROP["learning_rate"])
    t = time.perf_counter()
    model.fit(X, Y, epochs=epochs, batch_size=batch, shuffle=True, verbose=0)
    elapsed = time.perf_counter() - t
    acc = float(np.mean(model.predict(Xt, batch_size=10_000, verbose=0).argmax(1) == yt))
    return elapsed, acc


def run_numpy(data, batch, epochs, threads, seed):
    return run_fastmlp(data, batch, epochs, threads, seed, backend="numpy")


def _tf(threads):
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise Skip(f"TensorFlow not installed ({exc}); pip install 'fastmlp[keras]'")
    if not getattr(_tf, "configured", False):
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            # TensorFlow ran before in this process (e.g. under pytest): its
            # thread pools are fixed; say what they are instead of guessing
            intra = tf.config.threading.get_intra_op_parallelism_threads()
            if intra not in (0, threads):
                print(f"  note: TensorFlow already runs with {intra} intra-op threads")
        _tf.configured = threads
    elif _tf.configured != threads:
        raise Skip(f"TensorFlow threads were already set to {_tf.configured} in this run")
    return tf


def run_keras(data, batch, epochs, threads, seed, xla=False):
    tf = _tf(threads)
    from fastmlp.keras_models import mnist_for_keras, seed_mlp
    (X, y), (Xt, yt) = data
    Xk, Yk = mnist_for_keras(X, y)
    Xtk, Ytk = mnist_for_keras(Xt, yt)
    tf.keras.utils.set_random_seed(seed)
    steps = max(1, -(-len(Xk) // batch)) if xla else 1
    model = seed_mlp(jit_compile=True if xla else None, steps_per_execution=steps)
    t = time.perf_counter()
    model.fit(Xk, Yk, epochs=epochs, batch_size=batch, shuffle=True, verbose=0)
    elapsed = time.perf_counter() - t
    _, acc = model.evaluate(Xtk, Ytk, batch_size=10_000, verbose=0)
    return elapsed, float(acc)


def run_keras_xla(data, batch, epochs, threads, seed):
    return run_keras(data, batch, epochs, threads, seed, xla=True)


def _standardised(data):
    """The inputs standardised exactly as fastmlp standardises them, for the
    rows of other libraries that train on the same data."""
    from fastmlp._mlp import _standard_scaler_stats
    (X, y), (Xt, yt) = data
    mean, scale = (a.astype(np.float32) for a in _standard_scaler_stats(X))
    return (((X.astype(np.float32) - mean) / scale, y),
            ((Xt.astype(np.float32) - mean) / scale, yt))


def run_torch(data, batch, epochs, threads, seed, l2=0.01):
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"PyTorch not installed ({exc})")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    lr = seed_learning_rate(batch)
    (X, y), (Xt, yt) = _standardised(data)
    X, Xt = torch.from_numpy(X), torch.from_numpy(Xt)
    Y = torch.nn.functional.one_hot(torch.from_numpy(y.astype(np.int64)), 10).float()
    net = torch.nn.Sequential(torch.nn.Linear(784, 70), torch.nn.Sigmoid(),
                              torch.nn.Linear(70, 30), torch.nn.Sigmoid(),
                              torch.nn.Linear(30, 10))
    kernels = [p for name, p in net.named_parameters() if name.endswith("weight")]
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    n = X.shape[0]
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[idx]), Y[idx])
            loss = loss + 0.5 * l2 * sum((w * w).sum() for w in kernels)
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - t
    with torch.no_grad():
        acc = float((net(Xt).argmax(1).numpy() == yt).mean())
    return elapsed, acc


def run_sklearn(data, batch, epochs, threads, seed, l2=0.01):
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP
    (X, y), (Xt, yt) = _standardised(data)
    lr = seed_learning_rate(batch)
    # scikit-learn averages the loss over the batch where fastmlp sums it:
    # the same step needs lr * batch, and its alpha/(2 batch) penalty is l2/2
    clf = SkMLP(hidden_layer_sizes=(70, 30), activation="logistic", solver="sgd",
                batch_size=batch, learning_rate_init=lr * batch, momentum=0.0,
                alpha=l2, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                shuffle=True, random_state=seed)
    t = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    elapsed = time.perf_counter() - t
    return elapsed, float(clf.score(Xt, yt))


def run_cnn(data, batch, epochs, threads, seed):
    tf = _tf(threads)
    from fastmlp.keras_models import mnist_for_keras, seed_cnn
    (X, y), (Xt, yt) = data
    Xk, Yk = mnist_for_keras(X, y, images=True)
    Xtk, Ytk = mnist_for_keras(Xt, yt, images=True)
    tf.keras.utils.set_random_seed(seed)
    model = seed_cnn()
    t = time.perf_counter()
    model.fit(Xk, Yk, epochs=epochs, batch_size=batch, shuffle=True, verbose=0)
    elapsed = time.perf_counter() - t
    _, acc = model.evaluate(Xtk, Ytk, batch_size=1000, verbose=0)
    return elapsed, float(acc)


RUNNERS = {"fastmlp": run_fastmlp, "numpy": run_numpy, "keras": run_keras,
           "keras-xla": run_keras_xla, "torch": run_torch, "sklearn": run_sklearn,
           "fastmlp-rmsprop": run_fastmlp_rmsprop, "keras-rmsprop": run_keras_rmsprop}


# ---------------------------------------------------------------- helpers
def machine():
    """CPU, cores, BLAS and library versions, for the JSON record."""
    cpu = fastmlp._cpu_name()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "fastmlp": fastmlp.__version__}
    for mod in ("scipy", "sklearn", "tensorflow", "keras", "torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            pass
    blas = [{k: i.get(k) for k in ("internal_api", "version", "num_threads",
                                     "architecture", "filepath")}
            for i in threadpool_info()]
    return dict(cpu=cpu, cores=os.cpu_count(), platform=platform.platform(), blas=blas,
                versions=versions, build=fastmlp.build_info())


def phase_breakdown(data, batch, epochs, threads):
    """Per-phase seconds of a fastmlp compiled fit with test accuracy every epoch."""
    (X, y), (Xt, yt) = data
    m = MLPClassifier(batch_size=batch, epochs=epochs, n_threads=threads, random_state=0)
    m.fit(X, y, validation_data=(Xt, yt))
    return m.history_.phase_totals()


def plot(results, batch_sizes, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no plot: matplotlib not installed; pip install 'fastmlp[plot]')")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ROWS:
        pts = [(r["batch_size"], r["seconds"]) for r in results
               if r["row"] == key and r.get("seconds")]
        if pts:
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, marker="o", label=LABELS[key])
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("batch size")
    ax.set_ylabel("training time, s (lower is better)")
    ax.set_title("MNIST 784-70-30-10, same epochs and threads for every row")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


# ------------------------------------------------------------------ main
def main(argv=None):
    p = argparse.ArgumentParser(prog="fastmlp bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="500,20000",
                   help="comma-separated batch sizes (default 500,20000)")
    p.add_argument("--epochs", type=int, default=35)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per row")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for every row (default: all cores)")
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"rows to run (default: all of {','.join(ROWS)})")
    p.add_argument("--cnn", action="store_true", help="also train the seeds' CNN (slow)")
    p.add_argument("--cnn-epochs", type=int, default=5)
    p.add_argument("--cnn-batch", type=int, default=128)
    p.add_argument("--json", help="write every figure and the machine to this file")
    p.add_argument("--plot", help="write a PNG of time against batch size")
    args = p.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; choose from {', '.join(ROWS)}")

    data = load_mnist()
    mach = machine()
    print(f"MNIST 60000/10000, layers 784-70-30-10, {args.epochs} epochs, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"machine: {mach['cpu']}, {mach['cores']} cores; fastmlp {mach['build']}")
    results, skipped = [], {}
    for B in batch_sizes:
        for key in rows:
            if key in skipped:
                continue
            best = None
            try:
                for r in range(args.repeats):
                    sec, acc = RUNNERS[key](data, B, args.epochs, args.threads, r)
                    if best is None or sec < best[0]:
                        best = (sec, acc)
            except Skip as why:
                skipped[key] = str(why)
                print(f"  {LABELS[key]:18s} skipped: {why}")
                continue
            results.append(dict(row=key, label=LABELS[key], batch_size=B, epochs=args.epochs,
                                threads=args.threads, seconds=best[0],
                                s_per_epoch=best[0] / args.epochs, test_acc=best[1]))
            print(f"  batch {B:6d}  {LABELS[key]:18s} {best[0]:8.2f} s  "
                  f"acc {best[1]:.4f}", flush=True)

    print()
    print(f"{'batch':>6}  {'row':18s} {'seconds':>8} {'s/epoch':>8} {'test acc':>8} "
          f"{'fastmlp is':>11}")
    for B in batch_sizes:
        ours = next((r for r in results if r["row"] == "fastmlp" and r["batch_size"] == B), None)
        for r in (r for r in results if r["batch_size"] == B):
            ratio = ours["seconds"] / r["seconds"] if ours else float("nan")
            r["fastmlp_speedup"] = r["seconds"] / ours["seconds"] if ours else None
            speed = f"{r['fastmlp_speedup']:.2f}x" if ours else "-"
            print(f"{B:6d}  {r['label']:18s} {r['seconds']:8.2f} {r['s_per_epoch']:8.3f} "
                  f"{r['test_acc']:8.4f} {speed:>11}")
    for key, why in skipped.items():
        print(f"{'':6}  {LABELS[key]:18s} skipped: {why}")
    for B in batch_sizes:
        pair = [next((r for r in results if r["row"] == k and r["batch_size"] == B), None)
                for k in ("fastmlp-rmsprop", "keras-rmsprop")]
        if all(pair):
            f, k = pair
            f["keras_rmsprop_speedup"] = k["seconds"] / f["seconds"]
            print(f"equal terms, batch {B} (rmsprop, same initial weights, data, objective):"
                  f" fastmlp {f['seconds']:.2f} s acc {f['test_acc']:.4f}, keras "
                  f"{k['seconds']:.2f} s acc {k['test_acc']:.4f}: fastmlp is "
                  f"{f['keras_rmsprop_speedup']:.2f}x faster")

    B0 = batch_sizes[0]
    phases = phase_breakdown(data, B0, args.epochs, args.threads)
    total = sum(phases.values())
    print(f"\nfastmlp compiled, batch {B0}, {args.epochs} epochs with test accuracy every "
          f"epoch: where the time goes")
    for k, v in phases.items():
        print(f"  {k:10s} {v:7.3f} s  {100 * v / total:5.1f} %")

    cnn = None
    if args.cnn:
        try:
            sec, acc = run_cnn(data, args.cnn_batch, args.cnn_epochs, args.threads, 0)
            ours = next((r for r in results if r["row"] == "fastmlp"), None)
            cnn = dict(seconds=sec, test_acc=acc, epochs=args.cnn_epochs,
                       batch_size=args.cnn_batch, params=96_844)
            print(f"\nCNN vs MLP: the seeds' CNN, {args.cnn_epochs} epochs at batch "
                  f"{args.cnn_batch}: {sec:.1f} s, test accuracy {acc:.4f}")
            if ours:
                print(f"            fastmlp MLP, {args.epochs} epochs at batch "
                      f"{ours['batch_size']}: {ours['seconds']:.1f} s, test accuracy "
                      f"{ours['test_acc']:.4f}")
        except Skip as why:
            print(f"\nCNN skipped: {why}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(command=" ".join(sys.argv), time=time.strftime("%Y-%m-%d %H:%M:%S"),
                           machine=mach, results=results, skipped=skipped,
                           phases_fastmlp=dict(batch_size=B0, seconds=phases), cnn=cnn),
                      f, indent=1, default=str)
        print(f"JSON written to {args.json}")
    if args.plot:
        plot(results, batch_sizes, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
