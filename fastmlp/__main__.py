"""Command line: ``fastmlp train | predict | info`` (also ``python -m fastmlp``).

* ``fastmlp train`` runs the blog experiment (the 784-70-30-10 sigmoid network
  of the blog series, on the shipped MNIST) by default;
  every hyperparameter, the dataset, backend and threads are options.  On a
  terminal it draws a progress bar per epoch; otherwise (a pipe, a log file)
  it prints one line per epoch.  It ends with the test accuracy and where the
  time went, and can save the model, the history and the training plots.
* ``fastmlp predict MODEL INPUT`` prints (or writes) predictions for a .npy,
  .npz or IDX file.
* ``fastmlp info`` shows the version, the compiled kernels, BLAS and threads,
  and the CPU.
* ``fastmlp bench`` runs the benchmark suite (:mod:`fastmlp.experiments.suite`).
* ``fastmlp study`` runs the blog series' regularisation study
  (:mod:`fastmlp.experiments.study`).

Exit status: 0 on success; 2 with one line on stderr for a user mistake (a
missing file, a bad option value, unusable data); 130 when interrupted.
``FASTMLP_DEBUG=1`` shows the full traceback instead of the one line.
"""

import argparse
import os
import sys
import time

import numpy as np

from . import datasets
from ._base import DIVERGENCE, TRAIN_ACC_KINDS
from ._classifier import MLPClassifier, load
from ._history import format_epoch
from ._io import ModelFileError
from ._platform import build_info, cpu_name, pyplot
from ._registry import ACTIVATIONS, OPTIMIZERS, OUTPUTS
from ._scaling import SCALINGS
from ._trainer import DivergenceError
from ._version import __version__
from .backends import BACKENDS


class UserError(Exception):
    """A mistake in the command line or its files: reported in one line."""


# ------------------------------------------------------------------ train
def _layers(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one hidden layer size")
    return sizes


def _load_dataset(name):
    if name == "mnist":
        return datasets.load_mnist()
    if name == "digits":
        return datasets.load_digits()
    if os.path.isdir(name):
        return datasets.load_idx(name)
    if not os.path.exists(name):
        raise UserError(f"dataset {name!r}: no such file or directory (use mnist, digits, "
                        "a Keras-format mnist.npz or a folder of IDX files)")
    return datasets.load_mnist(name)


class Progress:
    """Per-epoch progress: a bar redrawn in place on a terminal, else nothing
    until the epoch's summary line."""

    def __init__(self, epochs, stream=sys.stdout, quiet=False):
        self.epochs, self.stream, self.quiet = epochs, stream, quiet
        self.tty = stream.isatty() and not quiet
        self.t_epoch = time.perf_counter()
        self.last_draw = 0.0

    def __call__(self, epoch, batch, n_batches, value):
        if batch is not None:
            if batch == 0:
                self.t_epoch = time.perf_counter()
            now = time.perf_counter()
            if self.tty and (now - self.last_draw > 0.1 or batch == n_batches - 1):
                self.last_draw = now
                done = (batch + 1) / n_batches
                bar = "#" * int(25 * done) + "." * (25 - int(25 * done))
                self.stream.write(f"\repoch {epoch + 1:3d}/{self.epochs} [{bar}] "
                                  f"{batch + 1}/{n_batches} batches  cost {value:10.4f}  "
                                  f"{now - self.t_epoch:6.2f} s")
                self.stream.flush()
            return
        if self.quiet:
            return
        line = format_epoch(epoch, value, self.epochs)
        self.stream.write(("\r" + line + " " * 20 + "\n") if self.tty else line + "\n")
        self.stream.flush()


def _check_optional(args):
    """Refuse, before any training, an output the installed extras cannot write."""
    if args.plot:
        try:
            pyplot()
        except ImportError:
            raise UserError('--plot needs matplotlib, which is not installed: '
                            'pip install "fastmlp[plot]", or leave out --plot') from None


def _train(args):
    _check_optional(args)
    (X, y), (Xt, yt) = _load_dataset(args.dataset)
    model = MLPClassifier(
        args.hidden, activation=args.activation, output=args.output_layer, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, lr_decay=args.lr_decay, momentum=args.momentum,
        l2=args.l2, l1=args.l1, init_factor=args.init_factor, shuffle=not args.no_shuffle,
        scaling=args.scaling, train_accuracy=args.train_accuracy,
        eval_period=args.eval_period, backend=args.backend, n_threads=args.threads,
        optimizer=args.optimizer, divergence=args.divergence, random_state=args.seed)
    print(f"fastmlp {__version__}: {args.dataset}, {X.shape[0]} training / {Xt.shape[0]} "
          f"test samples, backend {args.backend}", flush=True)
    t0 = time.perf_counter()
    try:
        model.fit(X, y, validation_data=(Xt, yt),
                  callback=Progress(args.epochs, quiet=args.quiet))
    except (KeyboardInterrupt, DivergenceError):
        # the model holds the weights of the last completed batch: keep them
        if args.output and hasattr(model, "coefs_"):
            model.save(args.output)
            st = model.history_.stopped or {}
            print(f"\nstopped in epoch {st.get('epoch', '?')} after "
                  f"{st.get('batches_completed', '?')} of {st.get('n_batches', '?')} "
                  f"batches; the model so far was written to {args.output}",
                  file=sys.stderr, flush=True)
        raise
    elapsed = time.perf_counter() - t0
    h = model.history_
    if h.stopped:                 # the no-improvement rule, or a divergence warned about
        print(f"stopped early in epoch {h.stopped['epoch'] + 1}: "
              f"{h.stopped.get('message', h.stopped['reason'])}")
    phases = h.phase_totals()
    total = sum(phases.values()) or 1.0
    print(f"layers {'-'.join(map(str, model.layers_))}, {model.n_iter_} epochs in "
          f"{elapsed:.2f} s; final learning rate {model.learning_rate_!r}")
    print("time shares: " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in phases.items()))
    print(f"test accuracy {model.score(Xt, yt):.4f}")
    if args.output:
        model.save(args.output)
        print(f"model written to {args.output}")
    if args.history:
        if args.history.endswith(".csv"):
            h.to_csv(args.history)
        else:
            h.to_json(args.history)
        print(f"history written to {args.history}")
    if args.plot:
        from ._plot import plot_history
        plot_history(h, args.plot, title=f"fastmlp on {args.dataset}, "
                                         f"layers {'-'.join(map(str, model.layers_))}")
        print(f"plot written to {args.plot}")
    return 0


# ---------------------------------------------------------------- predict
def _read_input(path):
    if not os.path.exists(path):
        raise UserError(f"input {path!r}: no such file")
    if path.endswith(".npy"):
        X = np.load(path, allow_pickle=False)
    elif path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            key = next((k for k in ("X", "x", "x_test", "X_test") if k in z.files),
                       z.files[0] if z.files else None)
            if key is None:
                raise UserError(f"input {path!r}: the .npz holds no arrays")
            X = z[key]
    else:
        X = datasets.read_idx(path)
    X = np.asarray(X)
    if X.ndim == 3:                       # images: flatten each to a row
        X = X.reshape(X.shape[0], -1)
    return X


def _predict(args):
    model = load(args.model)
    X = _read_input(args.input)
    if args.proba:
        out = model.predict_proba(X)
        rows = (" ".join(f"{p:.6f}" for p in row) for row in out)
    else:
        out = model.predict(X)
        rows = (str(v) for v in out)
    if args.output:
        if args.output.endswith(".npy"):
            np.save(args.output, out)
        else:
            with open(args.output, "w") as f:
                f.write("\n".join(rows) + "\n")
        print(f"{len(out)} predictions written to {args.output}")
    else:
        sys.stdout.write("\n".join(rows) + "\n")
    return 0


# ------------------------------------------------------------------- info
def _info(args):
    from threadpoolctl import threadpool_info
    print(f"fastmlp {__version__}")
    b = build_info()
    print(f"compiled kernels: {'yes' if b.get('compiled') else 'NO: ' + b.get('error', '')}")
    if b.get("compiled"):
        print(f"OpenMP: {'yes' if b['openmp'] else 'no (single-threaded)'}, "
              f"default threads {b['max_threads']}")
        print(f"large products: {b['gemm']}")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    for lib in threadpool_info():
        print(f"{lib['internal_api']}: {lib.get('version')} "
              f"({os.path.basename(lib['filepath'])}), {lib['num_threads']} threads")
    return 0


# ------------------------------------------------------------------- main
def _parser():
    p = argparse.ArgumentParser(prog="fastmlp",
                                description="Train multilayer perceptrons fast on the CPU.")
    p.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network (default: the blog experiment on MNIST)")
    t.add_argument("--dataset", default="mnist",
                   help="mnist (shipped), digits, a Keras-format mnist.npz path, or a folder "
                        "of MNIST IDX files (default: mnist)")
    t.add_argument("--hidden", type=_layers, default=(70, 30),
                   help="hidden layer sizes, comma-separated (default: 70,30)")
    d = MLPClassifier()
    for name, typ in (("epochs", int), ("batch_size", int), ("learning_rate", float),
                      ("lr_decay", float), ("momentum", float), ("l2", float),
                      ("l1", float), ("init_factor", float), ("eval_period", int)):
        t.add_argument("--" + name.replace("_", "-"), type=typ, default=getattr(d, name),
                       help=f"(default: {getattr(d, name)})")
    t.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                   help="hidden-layer activation (default: sigmoid)")
    t.add_argument("--output-layer", choices=OUTPUTS, default=d.output,
                   help="sigmoid + LogLoss or softmax + cross-entropy (default: sigmoid)")
    t.add_argument("--scaling", choices=SCALINGS, default=d.scaling,
                   help="input scaling from training statistics (default: standard)")
    t.add_argument("--train-accuracy", choices=TRAIN_ACC_KINDS, default=d.train_accuracy,
                   help="batch-averaged (cheap) or full-set training accuracy (default: batch)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                   help="the blog's momentum sgd, or Keras's rmsprop / adam (default: sgd)")
    t.add_argument("--divergence", choices=DIVERGENCE, default=d.divergence,
                   help="on a NaN/infinite cost or weight: stop with an error, or warn and "
                        "keep the last finite weights (default: raise)")
    t.add_argument("--backend", choices=BACKENDS, default=d.backend)
    t.add_argument("--threads", type=int, default=None,
                   help="threads for training (default: all cores)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--no-shuffle", action="store_true", help="keep the sample order fixed")
    t.add_argument("--output", help="save the trained model to this .npz file")
    t.add_argument("--history", help="write the history to this .json or .csv file")
    t.add_argument("--plot", help="write the training plots (cost, regularisation share, "
                                  "accuracy) to this PNG")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output")

    pr = sub.add_parser("predict", help="predict with a saved model")
    pr.add_argument("model", help="a model file written by fastmlp train --output / model.save")
    pr.add_argument("input", help="samples: .npy, .npz (array X, x_test or the first one) "
                                  "or an IDX image file; images are flattened")
    pr.add_argument("--proba", action="store_true", help="class probabilities, not labels")
    pr.add_argument("--output", help="write to this file (.npy, or text otherwise)")

    sub.add_parser("info", help="version, compiled kernels, BLAS, threads and CPU")
    sub.add_parser("bench", add_help=False,
                   help="fastmlp vs Keras, PyTorch, scikit-learn (fastmlp bench --help)")
    sub.add_parser("study", add_help=False,
                   help="the blog series' lambda2 regularisation study "
                        "(fastmlp study --help)")
    return p


def main(argv=None):
    """Entry point of ``fastmlp`` / ``python -m fastmlp``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:                 # these parse their own options
        from .experiments.suite import main as bench_main
        return bench_main(argv[1:])
    if argv[:1] == ["study"]:
        from .experiments.study import main as study_main
        return study_main(argv[1:])
    args = _parser().parse_args(argv)
    run = {"train": _train, "predict": _predict, "info": _info}[args.command]
    try:
        return run(args)
    except BrokenPipeError:
        # the reader went away (fastmlp info | head -3): stop quietly, with the
        # status of a process ended by SIGPIPE, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except (UserError, FileNotFoundError, IsADirectoryError, PermissionError,
            datasets.DatasetError, ModelFileError, ValueError, TypeError,
            DivergenceError) as exc:
        if os.environ.get("FASTMLP_DEBUG"):
            raise                     # the full traceback, for bug reports
        print(f"fastmlp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastmlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
