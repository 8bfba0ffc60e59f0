"""``fastmlp train``: its options, the data set, the estimator, the progress shown.

The settings start from a preset and the options given replace single
settings.  ``--preset blog`` is the blog experiment
(``MLPClassifier.blog_experiment()``), the default on MNIST, so that
``fastmlp train`` with no options runs it; ``--preset defaults`` is the
estimator's defaults, the default on every other data set.  ``--task``
picks a classifier or a regressor (by default from the targets: numbers
that are not whole make a regression).
"""

import argparse
import os
import sys
import time

import numpy as np

from . import datasets
from ._base import DIVERGENCE, SCHEDULES, TRAIN_ACC_KINDS
from ._classifier import BLOG_EXPERIMENT, MLPClassifier
from ._history import format_epoch
from ._platform import pyplot
from ._registry import ACTIVATIONS, OPTIMIZERS
from ._regressor import MLPRegressor
from ._scaling import SCALINGS
from ._trainer import DivergenceError
from ._version import __version__
from .backends import BACKENDS

__all__ = ["add_train_parser", "run_train", "Progress", "UserError"]


class UserError(Exception):
    """A mistake in the command line or its files: reported in one line."""


def _layers(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one hidden layer size")
    return sizes


def _batch(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}")


def _patience(text):
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}")


#: option name -> (estimator parameter, argparse type, help)
_NUMBERS = {
    "epochs": ("epochs", int, "most epochs to train"),
    "batch-size": ("batch_size", _batch, "samples per batch, or 'auto' (min(200, n))"),
    "learning-rate": ("learning_rate", float, "the step's rate"),
    "lr-decay": ("lr_decay", float, "the rate is divided by 1 + lr_decay * epoch"),
    "momentum": ("momentum", float, "the blog's momentum (sgd only)"),
    "l2": ("l2", float, "L2 factor (bias excluded)"),
    "l1": ("l1", float, "L1 factor (bias excluded)"),
    "init-factor": ("init_factor", float, "initial weights in +-0.5 sqrt(1/n_in) * this"),
    "eval-period": ("eval_period", int, "epochs between full-set scores"),
    "validation-fraction": ("validation_fraction", float, "held out by --early-stopping"),
    "n-iter-no-change": ("n_iter_no_change", _patience,
                         "epochs without improvement before stopping ('none': never)"),
    "tol": ("tol", float, "the improvement that counts"),
}
_CHOICES = {
    "activation": ("activation", tuple(ACTIVATIONS), "hidden-layer activation"),
    "output-layer": ("output", ("auto", "sigmoid", "softmax", "identity"),
                     "output layer and its loss"),
    "scaling": ("scaling", SCALINGS, "input scaling from training statistics"),
    "train-accuracy": ("train_accuracy", TRAIN_ACC_KINDS, "batch-averaged or full-set"),
    "optimizer": ("optimizer", tuple(OPTIMIZERS), "the blog's momentum sgd, or Keras's "
                                                  "rmsprop / adam"),
    "schedule": ("schedule", SCHEDULES, "the blog's decay, or scikit-learn's adaptive rate"),
    "divergence": ("divergence", DIVERGENCE, "on a NaN/infinite cost or weight: stop with an "
                                             "error, or warn and keep the last finite weights"),
    "backend": ("backend", BACKENDS, "compiled kernels or the NumPy reference"),
}


def add_train_parser(sub):
    """Add the ``train`` command and its options to the subparsers ``sub``."""
    t = sub.add_parser(
        "train", help="train a network (default: the blog experiment on MNIST)",
        description="Train a network.  Settings start from a preset (--preset) and every "
                    "option given replaces one of them.")
    t.add_argument("--dataset", default="mnist",
                   help="mnist (shipped), digits, an .npz of arrays (x_train, y_train, "
                        "x_test, y_test, or X and y) or a folder of IDX files "
                        "(default: mnist)")
    t.add_argument("--preset", choices=("blog", "defaults"), default=None,
                   help="'blog': the blog experiment; 'defaults': the estimator's defaults "
                        "(default: blog on mnist, defaults elsewhere)")
    t.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="classifier or regressor (default: auto, from the targets)")
    t.add_argument("--hidden", type=_layers, default=None,
                   help="hidden layer sizes, comma-separated, e.g. 70,30")
    for opt, (_, typ, text) in _NUMBERS.items():
        t.add_argument("--" + opt, type=typ, default=None, help=text)
    for opt, (_, choices, text) in _CHOICES.items():
        t.add_argument("--" + opt, choices=choices, default=None, help=text)
    t.add_argument("--early-stopping", action="store_true",
                   help="hold out --validation-fraction of the training data, stop when its "
                        "score stops improving and keep the best epoch's model")
    t.add_argument("--threads", type=int, default=None,
                   help="threads for training (default: all cores)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--no-shuffle", action="store_true", help="keep the sample order fixed")
    t.add_argument("--output", help="save the trained model to this .npz file")
    t.add_argument("--save-best", metavar="PATH",
                   help="save the model to PATH during training, each time the watched "
                        "figure improves (the validation score with --early-stopping, else "
                        "the training loss)")
    t.add_argument("--history", help="write the history to this .json or .csv file")
    t.add_argument("--plot", help="write the training plots (cost, regularisation share, "
                                  "scores) to this PNG")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output")
    return t


def _load_dataset(name):
    if name == "mnist":
        return datasets.load_mnist()
    if name == "digits":
        return datasets.load_digits()
    if os.path.isdir(name):
        return datasets.load_idx(name)
    if not os.path.exists(name):
        raise UserError(f"dataset {name!r}: no such file or directory (use mnist, digits, "
                        "an .npz of arrays or a folder of IDX files)")
    return datasets.load_npz(name)


def _is_regression(args, y):
    if args.task != "auto":
        return args.task == "regression"
    y = np.asarray(y)
    return y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y)))


def _estimator(args, regression):
    """The estimator the options describe: a preset, then each option given."""
    preset = args.preset or ("blog" if args.dataset == "mnist" and not regression
                             else "defaults")
    if preset == "blog" and regression:
        raise UserError("--preset blog is the blog experiment's classifier; a regression "
                        "starts from --preset defaults")
    params = dict(BLOG_EXPERIMENT) if preset == "blog" else {}
    if args.hidden is not None:
        params["hidden_layer_sizes"] = args.hidden
    for table in (_NUMBERS, _CHOICES):
        for opt, (name, _, _) in table.items():
            value = getattr(args, opt.replace("-", "_"))
            if value is not None:
                params[name] = value
    if args.early_stopping:
        params["early_stopping"] = True
    params.update(shuffle=not args.no_shuffle, n_threads=args.threads, random_state=args.seed)
    cls = MLPRegressor if regression else MLPClassifier
    if regression and params.get("train_accuracy") == "batch":
        raise UserError("--train-accuracy batch needs classes; a regressor can use 'full'")
    return cls(**params), preset


class Progress:
    """Per-epoch progress: a bar redrawn in place on a terminal, else nothing
    until the epoch's summary line.  With ``save_best`` (a model and a path)
    it also saves the model each time the watched figure improves."""

    def __init__(self, epochs, stream=sys.stdout, quiet=False, score="acc", save_best=None,
                 held_out="test"):
        self.epochs, self.stream, self.quiet, self.score = epochs, stream, quiet, score
        self.held_out = held_out
        self.tty = stream.isatty() and not quiet
        self.t_epoch = time.perf_counter()
        self.last_draw = 0.0
        self.save_best, self.best = save_best, None

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
        if self.save_best is not None:
            self._checkpoint(value)
        if self.quiet:
            return
        line = format_epoch(epoch, value, self.epochs, self.score, self.held_out)
        self.stream.write(("\r" + line + " " * 20 + "\n") if self.tty else line + "\n")
        self.stream.flush()

    def _checkpoint(self, record):
        model, path, watch = self.save_best
        value = record.get(watch)
        if value is None or not np.isfinite(value):
            return
        if self.best is None or (value > self.best if watch == "val_score"
                                 else value < self.best):
            self.best = value
            model.save(path)


def _check_optional(args):
    """Refuse, before any training, an output the installed extras cannot write."""
    if args.plot:
        try:
            pyplot()
        except ImportError:
            raise UserError('--plot needs matplotlib, which is not installed: '
                            'pip install "fastmlp[plot]", or leave out --plot') from None


def run_train(args):
    """Train as ``args`` say, report, and write the files asked for."""
    _check_optional(args)
    (X, y), (Xt, yt) = _load_dataset(args.dataset)
    regression = _is_regression(args, y)
    model, preset = _estimator(args, regression)
    score = "R2" if regression else "acc"
    print(f"fastmlp {__version__}: {args.dataset}, {X.shape[0]} training / {Xt.shape[0]} "
          f"test samples; {type(model).__name__}, preset {preset}, backend "
          f"{model.backend}", flush=True)
    # early stopping watches a part held out of the training data; the test
    # data are then only scored at the end, never used to choose the epoch
    validation = None if model.early_stopping else (Xt, yt)
    watch = "val_score" if model.early_stopping else "train_loss"
    progress = Progress(model.epochs, quiet=args.quiet, score=score,
                        save_best=(model, args.save_best, watch) if args.save_best else None,
                        held_out="val" if model.early_stopping else "test")
    t0 = time.perf_counter()
    try:
        model.fit(X, y, validation_data=validation, callback=progress)
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
    _report(model, args, elapsed, Xt, yt, score)
    return 0


def _report(model, args, elapsed, Xt, yt, score):
    h = model.history_
    if h.stopped:                 # the no-improvement rule, or a divergence warned about
        print(f"stopped early in epoch {h.stopped['epoch'] + 1}: "
              f"{h.stopped.get('message', h.stopped['reason'])}")
    if getattr(h, "restored_epoch", None) is not None:
        print(f"kept the model of epoch {h.restored_epoch + 1}, the best validation "
              f"{score} ({model.best_validation_score_:.4f})")
    phases = h.phase_totals()
    total = sum(phases.values()) or 1.0
    print(f"layers {'-'.join(map(str, model.layers_))}, {model.n_iter_} epochs in "
          f"{elapsed:.2f} s; final learning rate {model.learning_rate_!r}")
    print("time shares: " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in phases.items()))
    print(f"test {'R2' if score == 'R2' else 'accuracy'} {model.score(Xt, yt):.4f}")
    if args.save_best:
        print(f"best model written to {args.save_best} during training")
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
