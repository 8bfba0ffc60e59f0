"""fastmlp against Keras, PyTorch and scikit-learn on MNIST, side by side, in one run.

Every row trains the blog experiment's layers (784-70-30-10) on the shipped
MNIST for the same number of epochs, batch size and thread count; the figure
of a row is its best of ``--repeats`` runs (fit time, then the test accuracy
of that run), each run started after half a second's pause
(:func:`fastmlp.experiments._common.settle`), so that the idle threads of the
run before are not still spinning on the cores.  fastmlp, PyTorch and
scikit-learn use the blog experiment's learning rate for the batch size (0.001
below 10000, 0.0001 above, as the blog series ran batch 500 and 20000).  Rows:

  fastmlp compiled   the product with the blog experiment's hyperparameters
                     (``MLPClassifier.blog_experiment()``; standardised inputs,
                     folded into the sparse first layer that
                     ``input_format="auto"`` picks for MNIST's zeros)
  fastmlp compiled dense   the same on the dense path (input_format="dense")
  fastmlp numpy      fastmlp's NumPy reference backend, same settings
  keras blog         the blog series' Keras MLP as it ran it: rmsprop,
                     categorical cross-entropy, L2 0.01, x/255 inputs
  keras blog xla     the same model with jit_compile=True and
                     steps_per_execution = batches per epoch
  torch sgd          PyTorch, the same network, summed LogLoss, L2 and SGD as
                     fastmlp does it (skipped, with the reason, if not installed)
  sklearn sgd        scikit-learn MLPClassifier(70, 30), logistic, sgd; its
                     rate and alpha scaled to match fastmlp's summed loss
  fastmlp rmsprop    fastmlp with optimizer="rmsprop" (lr 0.001, no decay, L2 0.01)
  keras rmsprop      the blog MLP's layers in Keras, started from the same initial
                     weights as the fastmlp rmsprop row (fastmlp.init_weights),
                     trained by model.fit with Keras's RMSprop on the same
                     standardised data and the same objective
                     (keras_models.objective_mlp): equal terms
  keras cnn          (only with --cnn) the blog series' CNN, --cnn-epochs epochs

The per-phase breakdown (like the blog's t1..t6) comes from one fastmlp
compiled fit that also measures test accuracy every epoch.

    fastmlp bench                                     # batch 500 and 20000, 35 epochs
    fastmlp bench --batch-sizes 100,500,2000,20000 --repeats 2
    fastmlp bench --cnn --json bench.json --plot bench.png

(``python bench/suite.py`` from a checkout is the same.)  Keras rows need the
``keras`` extra, PyTorch is optional, the plot needs the ``plot`` extra.
"""

import argparse
import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before any Keras row imports TF

import numpy as np
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import MLPClassifier
from fastmlp._scaling import standard_scaler_stats
from fastmlp.datasets import load_mnist

from ._common import best_of, machine, pyplot_or_none, save_figure, timed, timed_fit

ROWS = ("fastmlp", "fastmlp-dense", "numpy", "keras", "keras-xla", "torch", "sklearn", "fastmlp-rmsprop",
        "keras-rmsprop")
LABELS = {"fastmlp": "fastmlp compiled", "fastmlp-dense": "fastmlp compiled dense",
          "numpy": "fastmlp numpy", "keras": "keras blog",
          "keras-xla": "keras blog xla", "torch": "torch sgd", "sklearn": "sklearn sgd",
          "fastmlp-rmsprop": "fastmlp rmsprop", "keras-rmsprop": "keras rmsprop",
          "cnn": "keras cnn (blog)"}


class Skip(Exception):
    """A row that cannot run here; the message says why."""


# ------------------------------------------------------------------ rows
def blog_learning_rate(batch):
    """The blog series' learning rate for a batch size: 0.001 at batch 500,
    0.0001 at batch 20000 (its two runs); the gradient is summed over the
    batch, so large batches need the smaller rate (0.001 at 20000 saturates
    the net)."""
    return 0.001 if batch < 10_000 else 0.0001


def run_fastmlp(data, batch, epochs, threads, seed, backend="compiled", **kw):
    """fastmlp with the blog experiment's settings (``blog_experiment()``)
    and :func:`blog_learning_rate`; returns (fit seconds, test accuracy).
    MNIST's pixels are 81 % zeros, so ``input_format="auto"`` trains them
    on the sparse first layer."""
    (X, y), (Xt, yt) = data
    m = MLPClassifier.blog_experiment(backend=backend, batch_size=batch, epochs=epochs,
                                      n_threads=threads, random_state=seed,
                                      learning_rate=blog_learning_rate(batch), **kw)
    return timed_fit(m, X, y), m.score(Xt, yt)


def run_fastmlp_dense(data, batch, epochs, threads, seed):
    """:func:`run_fastmlp` on the dense path (``input_format="dense"``)."""
    return run_fastmlp(data, batch, epochs, threads, seed, input_format="dense")


#: The equal-terms rmsprop rows: Keras's default rate, no decay (Keras has
#: none), fastmlp's default L2.  rmsprop's step hardly depends on the scale
#: of the gradient, so one rate serves every batch size.
RMSPROP = dict(optimizer="rmsprop", learning_rate=0.001, lr_decay=0.0, l2=0.01)


def _rmsprop_model(batch, epochs, threads, seed):
    """The fastmlp rmsprop row's estimator (unfitted)."""
    return MLPClassifier.blog_experiment(batch_size=batch, epochs=epochs, n_threads=threads,
                                         random_state=seed, **RMSPROP)


def run_fastmlp_rmsprop(data, batch, epochs, threads, seed):
    """fastmlp with :data:`RMSPROP`; returns (fit seconds, test accuracy)."""
    (X, y), (Xt, yt) = data
    m = _rmsprop_model(batch, epochs, threads, seed)
    return timed_fit(m, X, y), m.score(Xt, yt)


def run_keras_rmsprop(data, batch, epochs, threads, seed):
    """Keras's RMSprop on fastmlp's objective, from the initial weights of the
    fastmlp rmsprop row with the same ``seed`` and on the same standardised
    data; returns (fit seconds, test accuracy)."""
    tf = _tf(threads)
    from .keras_models import objective_mlp
    (X, y), (Xt, yt) = _standardised(data)
    n_classes = 10
    Y = np.eye(n_classes, dtype=np.float32)[y]
    tf.keras.utils.set_random_seed(seed)
    # MLPClassifier(random_state=seed) starts from exactly these weights
    twin = _rmsprop_model(batch, epochs, threads, seed)
    layers = (X.shape[1],) + tuple(twin.hidden_layer_sizes) + (n_classes,)
    W0 = fastmlp.init_weights(layers, twin.init_factor, np.random.default_rng(seed))
    model = objective_mlp(W0, l2=RMSPROP["l2"], optimizer="rmsprop",
                          learning_rate=RMSPROP["learning_rate"])
    elapsed = timed_fit(model, X, Y, epochs=epochs, batch_size=batch, shuffle=True,
                        verbose=0)
    acc = float(np.mean(model.predict(Xt, batch_size=10_000, verbose=0).argmax(1) == yt))
    return elapsed, acc


def run_numpy(data, batch, epochs, threads, seed):
    """:func:`run_fastmlp` on the NumPy backend."""
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
    """The blog series' Keras MLP as it ran it (:func:`keras_models.blog_mlp`
    on x/255 inputs); returns (fit seconds, test accuracy)."""
    tf = _tf(threads)
    from .keras_models import blog_mlp, mnist_for_keras
    (X, y), (Xt, yt) = data
    Xk, Yk = mnist_for_keras(X, y)
    Xtk, Ytk = mnist_for_keras(Xt, yt)
    tf.keras.utils.set_random_seed(seed)
    steps = max(1, -(-len(Xk) // batch)) if xla else 1
    model = blog_mlp(jit_compile=True if xla else None, steps_per_execution=steps)
    elapsed = timed_fit(model, Xk, Yk, epochs=epochs, batch_size=batch, shuffle=True,
                        verbose=0)
    _, acc = model.evaluate(Xtk, Ytk, batch_size=10_000, verbose=0)
    return elapsed, float(acc)


def run_keras_xla(data, batch, epochs, threads, seed):
    """:func:`run_keras` compiled by XLA, all of an epoch's batches per call."""
    return run_keras(data, batch, epochs, threads, seed, xla=True)


def _standardised(data):
    """The inputs standardised exactly as fastmlp standardises them, for the
    rows of other libraries that train on the same data."""
    (X, y), (Xt, yt) = data
    mean, scale = (a.astype(np.float32) for a in standard_scaler_stats(X))
    return (((X.astype(np.float32) - mean) / scale, y),
            ((Xt.astype(np.float32) - mean) / scale, yt))


def run_torch(data, batch, epochs, threads, seed, l2=0.01):
    """PyTorch: the same network, summed LogLoss, L2 and plain SGD at
    :func:`blog_learning_rate`, on fastmlp's standardised inputs; returns
    (training seconds, test accuracy).  :class:`Skip` without PyTorch."""
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"PyTorch not installed ({exc})")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    lr = blog_learning_rate(batch)
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

    def train():
        for _ in range(epochs):
            perm = torch.randperm(n)
            for s in range(0, n, batch):
                idx = perm[s:s + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(X[idx]), Y[idx])
                loss = loss + 0.5 * l2 * sum((w * w).sum() for w in kernels)
                loss.backward()
                opt.step()

    elapsed, _ = timed(train)
    with torch.no_grad():
        acc = float((net(Xt).argmax(1).numpy() == yt).mean())
    return elapsed, acc


def run_sklearn(data, batch, epochs, threads, seed, l2=0.01):
    """scikit-learn's MLPClassifier(70, 30), logistic, sgd, its rate and alpha
    scaled to fastmlp's summed loss; returns (fit seconds, test accuracy)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP
    (X, y), (Xt, yt) = _standardised(data)
    lr = blog_learning_rate(batch)
    # scikit-learn averages the loss over the batch where fastmlp sums it:
    # the same step needs lr * batch, and its alpha/(2 batch) penalty is l2/2
    clf = SkMLP(hidden_layer_sizes=(70, 30), activation="logistic", solver="sgd",
                batch_size=batch, learning_rate_init=lr * batch, momentum=0.0,
                alpha=l2, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                shuffle=True, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        elapsed = timed_fit(clf, X, y)
    return elapsed, float(clf.score(Xt, yt))


def run_cnn(data, batch, epochs, threads, seed):
    """The blog series' CNN (:func:`keras_models.blog_cnn`) on x/255 images;
    returns (fit seconds, test accuracy)."""
    tf = _tf(threads)
    from .keras_models import blog_cnn, mnist_for_keras
    (X, y), (Xt, yt) = data
    Xk, Yk = mnist_for_keras(X, y, images=True)
    Xtk, Ytk = mnist_for_keras(Xt, yt, images=True)
    tf.keras.utils.set_random_seed(seed)
    model = blog_cnn()
    elapsed = timed_fit(model, Xk, Yk, epochs=epochs, batch_size=batch, shuffle=True,
                        verbose=0)
    _, acc = model.evaluate(Xtk, Ytk, batch_size=1000, verbose=0)
    return elapsed, float(acc)


RUNNERS = {"fastmlp": run_fastmlp, "fastmlp-dense": run_fastmlp_dense, "numpy": run_numpy, "keras": run_keras,
           "keras-xla": run_keras_xla, "torch": run_torch, "sklearn": run_sklearn,
           "fastmlp-rmsprop": run_fastmlp_rmsprop, "keras-rmsprop": run_keras_rmsprop}


# ---------------------------------------------------------------- helpers
def phase_breakdown(data, batch, epochs, threads):
    """Per-phase seconds of a fastmlp compiled fit with test accuracy every epoch."""
    (X, y), (Xt, yt) = data
    m = MLPClassifier.blog_experiment(batch_size=batch, epochs=epochs, n_threads=threads,
                                      random_state=0)
    m.fit(X, y, validation_data=(Xt, yt))
    return m.history_.phase_totals()


def plot(results, batch_sizes, path):
    """Write a PNG of each row's training time against batch size to ``path``
    (a printed note instead when matplotlib is missing)."""
    plt = pyplot_or_none()
    if plt is None:
        return
    from matplotlib.ticker import FormatStrFormatter
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ROWS:
        pts = [(r["batch_size"], r["seconds"]) for r in results
               if r["row"] == key and r.get("seconds")]
        if pts:
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, marker="o", label=LABELS[key])
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("batch size")
    ax.set_ylabel("training time, s (lower is better)")
    ax.set_title("MNIST 784-70-30-10, same epochs and threads for every row")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, path, dpi=120)


# ------------------------------------------------------------------ main
def main(argv=None):
    """``fastmlp bench``: run the rows, print the table, optionally write JSON
    and a plot.  Returns the exit status (0)."""
    p = argparse.ArgumentParser(prog="fastmlp bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="500,20000",
                   help="comma-separated batch sizes (default 500,20000)")
    p.add_argument("--epochs", type=int, default=35)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per row")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for every row (default: all cores)")
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"rows to run (default: all of {','.join(ROWS)})")
    p.add_argument("--cnn", action="store_true", help="also train the blog series' CNN (slow)")
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
            try:
                # repeat r runs with random seed r
                best = best_of(args.repeats, functools.partial(
                    RUNNERS[key], data, B, args.epochs, args.threads))
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
            print(f"\nCNN vs MLP: the blog series' CNN, {args.cnn_epochs} epochs at batch "
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
