"""Out-of-the-box accuracy: estimators with no arguments on common data sets.

For each scikit-learn data set (digits, breast_cancer, wine, iris; a 75/25
stratified split with ``random_state=0``) it fits, side by side:

  sklearn      scikit-learn's ``MLPClassifier()`` after a StandardScaler
               (``random_state=0``), the usual way to use it
  fastmlp      fastmlp's ``MLPClassifier(random_state=0)``: its defaults
  blog         ``MLPClassifier.blog_experiment(random_state=0)``, the blog
               experiment's settings, which suit MNIST and not these

and prints test accuracy, epochs run and seconds.  ``--mnist`` adds the
shipped MNIST (60000/10000) for the fastmlp defaults and the blog preset.
``--regression`` prints the regressors side by side instead: R^2 on
diabetes and on make_friedman1(n_samples=5000), each library with the same
hidden layer sizes and at most the same epochs.

    python bench/defaults.py
    python bench/defaults.py --mnist --json bench/results/defaults.json
    python bench/defaults.py --regression
"""

import argparse
import json
import sys
import time
import warnings

from sklearn import datasets as skd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp
from fastmlp import MLPClassifier
from fastmlp._platform import machine

CLASSIFICATION = ("digits", "breast_cancer", "wine", "iris")


def split(X, y, stratify=True):
    """(X_train, y_train, X_test, y_test): 75/25, stratified, random_state 0."""
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0,
                                          stratify=y if stratify else None)
    return Xtr, ytr, Xte, yte


def run(model, Xtr, ytr, Xte, yte):
    """(test score, epochs run, seconds) of one fit."""
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(Xtr, ytr)
    seconds = time.perf_counter() - t
    est = model[-1] if hasattr(model, "steps") else model
    return float(model.score(Xte, yte)), int(est.n_iter_), seconds


def classification_rows(mnist):
    from sklearn.neural_network import MLPClassifier as SkMLP
    rows = []
    for name in CLASSIFICATION:
        X, y = getattr(skd, f"load_{name}")(return_X_y=True)
        parts = split(X, y)
        for label, model in (("sklearn", make_pipeline(StandardScaler(), SkMLP(random_state=0))),
                             ("fastmlp", MLPClassifier(random_state=0)),
                             ("blog", MLPClassifier.blog_experiment(random_state=0))):
            rows.append((name, label) + run(model, *parts))
            print(f"  {name:14s} {label:8s} {rows[-1][2]:.3f}", flush=True)
    if mnist:
        (X, y), (Xt, yt) = fastmlp.datasets.load_mnist()
        for label, model in (("fastmlp", MLPClassifier(random_state=0)),
                             ("blog", MLPClassifier.blog_experiment(random_state=0))):
            rows.append(("mnist", label) + run(model, X, y, Xt, yt))
            print(f"  {'mnist':14s} {label:8s} {rows[-1][2]:.4f}", flush=True)
    return rows


def regression_rows():
    from sklearn.neural_network import MLPRegressor as SkReg

    from fastmlp import MLPRegressor
    rows = []
    sets = {"diabetes": skd.load_diabetes(return_X_y=True),
            "friedman1": skd.make_friedman1(n_samples=5000, random_state=0)}
    for name, (X, y) in sets.items():
        parts = split(X, y, stratify=False)
        for label, model in (("sklearn", make_pipeline(StandardScaler(), SkReg(random_state=0))),
                             ("fastmlp", MLPRegressor(random_state=0))):
            rows.append((name, label) + run(model, *parts))
            print(f"  {name:14s} {label:8s} R2 {rows[-1][2]:.3f}", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", action="store_true", help="also the shipped MNIST")
    p.add_argument("--regression", action="store_true",
                   help="the regressors on diabetes and friedman1 instead")
    p.add_argument("--json", help="write the rows and the machine to this file")
    args = p.parse_args(argv)
    mach = machine()
    print(f"machine: {mach['cpu']}, {mach['cores']} cores")
    rows = regression_rows() if args.regression else classification_rows(args.mnist)
    score = "R2" if args.regression else "accuracy"
    print(f"\n{'data set':14s} {'model':8s} {score:>8s} {'epochs':>7s} {'seconds':>8s}")
    for name, label, acc, epochs, sec in rows:
        print(f"{name:14s} {label:8s} {acc:8.4f} {epochs:7d} {sec:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=mach, score=score,
                           rows=[dict(zip(("data", "model", score, "epochs", "seconds"), r))
                                 for r in rows]), f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
