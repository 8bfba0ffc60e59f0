"""The cost of sample weights: a weighted fit against the same fit unweighted.

Fits the blog experiment's network on the shipped MNIST with and without
``sample_weight`` (random weights in [0.5, 1.5]), alternating, and prints
the best repeat of each: the fit's batch-loop seconds per epoch, and their
ratio.  The weights are read per row inside the output layer's kernel; the
estimator makes one float32 copy of them per fit and none per batch.

    python bench/weights.py                 # 5 epochs, best of 5, both backends
    python bench/weights.py --backends compiled --epochs 35 --repeats 3
"""

import argparse
import sys

import numpy as np

from fastmlp import MLPClassifier
from fastmlp._platform import machine
from fastmlp.datasets import load_mnist


def per_epoch(X, y, w, backend, epochs, seed):
    m = MLPClassifier.blog_experiment(backend=backend, epochs=epochs, random_state=seed)
    m.fit(X, y, sample_weight=w)
    return float(np.mean(m.history_.train_time))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--backends", default="compiled,numpy")
    args = p.parse_args(argv)
    (X, y), _ = load_mnist()
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(y))
    print(f"machine: {machine()['cpu']}; blog experiment on MNIST, {args.epochs} epochs, "
          f"best of {args.repeats}")
    for backend in args.backends.split(","):
        plain, weighted = [], []
        for r in range(args.repeats):            # alternate, so drift hits both alike
            plain.append(per_epoch(X, y, None, backend, args.epochs, r))
            weighted.append(per_epoch(X, y, w, backend, args.epochs, r))
        a, b = min(plain), min(weighted)
        print(f"  {backend:9s} unweighted {a:.4f} s/epoch, weighted {b:.4f} s/epoch: "
              f"weighted / unweighted = {b / a:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
