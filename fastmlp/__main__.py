"""Command line: ``fastmlp train | predict | info`` (also ``python -m fastmlp``).

* ``fastmlp train`` runs the blog experiment (the 784-70-30-10 sigmoid network
  of the blog series, on the shipped MNIST) by default; on other data sets it
  starts from the estimator's defaults, and trains a regressor when the
  targets are continuous (:mod:`fastmlp._cli_train`).  Every
  hyperparameter, the dataset, backend and threads are options.  On a
  terminal it draws a progress bar per epoch; otherwise (a pipe, a log file)
  it prints one line per epoch.  It ends with the test accuracy and where the
  time went, and can save the model, the history and the training plots.
* ``fastmlp predict MODEL INPUT`` prints (or writes) predictions for a .npy,
  .npz or IDX file.
* ``fastmlp export MODEL.npz MODEL.onnx`` writes a saved model as ONNX (the
  graph of :meth:`MLPClassifier.to_onnx`: scaling, layers, outputs).
* ``fastmlp info`` shows the version, the compiled kernels, BLAS and threads,
  the CPU, and the limits ``bench/roofline.py`` measured on it.
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

import numpy as np

from . import datasets
from ._cli_train import UserError, add_train_parser, run_train
from ._io import ModelFileError
from ._loading import load
from ._platform import build_info, cpu_name, measured_limits
from ._trainer import DivergenceError
from ._version import __version__


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
    if args.proba and not hasattr(model, "predict_proba"):
        raise UserError(f"--proba: {args.model} holds a regressor, which predicts numbers, "
                        "not probabilities")
    if args.proba:
        out = model.predict_proba(X)
        rows = (" ".join(f"{p:.6f}" for p in row) for row in out)
    else:
        out = model.predict(X)
        rows = (" ".join(str(v) for v in row) if np.ndim(row) else str(row) for row in out)
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


# ----------------------------------------------------------------- export
def _export(args):
    model = load(args.model)
    try:
        proto = model.to_onnx(target_opset=args.opset)
    except ImportError as exc:
        raise UserError(str(exc)) from None
    from ._onnx import save_onnx
    save_onnx(proto, args.output)
    outputs = ", ".join(o.name for o in proto.graph.output)
    print(f"{args.output}: ONNX opset {proto.opset_import[0].version}, IR version "
          f"{proto.ir_version}; input X (n, {model.n_features_in_}) float32, "
          f"outputs {outputs}")
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
    limits = measured_limits()
    if limits:
        print(f"measured ({limits['measured']}, bench/roofline.py): GEMM peak "
              f"{limits['gemm_gflops_1_thread']:.0f} GFLOP/s on 1 thread, "
              f"{limits['gemm_gflops_all_threads']:.0f} on {limits['cores']}; memory "
              f"{limits['add_gbs']:.1f} GB/s (add)")
    else:
        print("measured peaks: none for this CPU yet (run python bench/roofline.py "
              "--machine-only)")
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

    add_train_parser(sub)

    pr = sub.add_parser("predict", help="predict with a saved model")
    pr.add_argument("model", help="a model file written by fastmlp train --output / model.save")
    pr.add_argument("input", help="samples: .npy, .npz (array X, x_test or the first one) "
                                  "or an IDX image file; images are flattened")
    pr.add_argument("--proba", action="store_true", help="class probabilities, not labels")
    pr.add_argument("--output", help="write to this file (.npy, or text otherwise)")

    ex = sub.add_parser("export", help="write a saved model as ONNX (needs fastmlp[onnx])")
    ex.add_argument("model", help="a model file written by fastmlp train --output / model.save")
    ex.add_argument("output", help="the .onnx file to write")
    ex.add_argument("--opset", type=int, default=None,
                    help="ONNX opset to write (default 17, or the newest the installed onnx "
                         "knows if older)")

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
    run = {"train": run_train, "predict": _predict, "export": _export,
           "info": _info}[args.command]
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
