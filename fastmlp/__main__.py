"""Command line: ``fastmlp train`` (or ``python -m fastmlp train``) trains the
seed network on the shipped MNIST.

Exit status 0 on success; on a user mistake (bad option value, missing file)
one line on stderr and status 2, without a traceback.
"""

import argparse
import sys
import time

from . import __version__, build_info, datasets
from ._mlp import BACKENDS, MLPClassifier


def _layers(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one hidden layer size")
    return sizes


def _parser():
    p = argparse.ArgumentParser(prog="fastmlp",
                                description="Train multilayer perceptrons fast on the CPU.")
    p.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the seed network (784-70-30-10) on the shipped MNIST")
    t.add_argument("--dataset", default="mnist",
                   help="'mnist' (shipped), 'digits', a Keras-format mnist.npz path, "
                        "or a directory of MNIST IDX files (default: mnist)")
    t.add_argument("--hidden", type=_layers, default=(70, 30),
                   help="hidden layer sizes, comma-separated (default: 70,30)")
    d = MLPClassifier()
    for name, typ in (("epochs", int), ("batch_size", int), ("learning_rate", float),
                      ("lr_decay", float), ("momentum", float), ("l2", float),
                      ("l1", float), ("init_factor", float), ("eval_period", int)):
        t.add_argument("--" + name.replace("_", "-"), type=typ, default=getattr(d, name),
                       help=f"(default: {getattr(d, name)})")
    t.add_argument("--scaling", choices=("standard", "minmax", "none"), default="standard",
                   help="input scaling from training statistics (default: standard)")
    t.add_argument("--train-accuracy", choices=("batch", "full", "none"), default="batch",
                   help="batch-averaged (cheap) or full-set training accuracy (default: batch)")
    t.add_argument("--backend", choices=BACKENDS, default=d.backend)
    t.add_argument("--threads", type=int, default=None, help="BLAS threads (default: library's)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--no-shuffle", action="store_true", help="keep the sample order fixed")
    t.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    sub.add_parser("info", help="version and build of the compiled kernels")
    return p


def _load(name):
    import os
    if name == "mnist":
        return datasets.load_mnist()
    if name == "digits":
        return datasets.load_digits()
    if os.path.isdir(name):
        return datasets.load_idx(name)
    return datasets.load_mnist(name)


def _train(args):
    (X, y), (Xt, yt) = _load(args.dataset)
    model = MLPClassifier(
        args.hidden, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, lr_decay=args.lr_decay, momentum=args.momentum,
        l2=args.l2, l1=args.l1, init_factor=args.init_factor, shuffle=not args.no_shuffle, scaling=args.scaling,
        train_accuracy=args.train_accuracy, eval_period=args.eval_period,
        backend=args.backend, n_threads=args.threads, random_state=args.seed,
        verbose=0 if args.quiet else 1)
    print(f"fastmlp {__version__}: {X.shape[0]} training / {Xt.shape[0]} test samples, "
          f"backend {args.backend}", flush=True)
    t0 = time.perf_counter()
    model.fit(X, y, validation_data=(Xt, yt))
    elapsed = time.perf_counter() - t0
    h = model.history_
    train_s = sum(h.train_time)
    print(f"layers {'-'.join(map(str, model.layers_))}, {model.n_iter_} epochs in "
          f"{elapsed:.2f} s ({train_s:.2f} s training, {elapsed - train_s:.2f} s evaluation)")
    print(f"final learning rate {model.learning_rate_!r}")
    print(f"test accuracy {model.score(Xt, yt):.4f}")
    return 0


def main(argv=None):
    """Entry point of ``python -m fastmlp``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "info":
            print(f"fastmlp {__version__}")
            for k, v in build_info().items():
                print(f"{k}: {v}")
            return 0
    except (FileNotFoundError, datasets.DatasetError, ValueError, TypeError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
