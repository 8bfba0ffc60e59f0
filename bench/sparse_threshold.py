"""Where ``input_format="auto"`` should switch a dense X to the sparse path.

The same rows are trained dense (``input_format="dense"``) and sparse
(``input_format="sparse"``) at a range of densities, alternating in one run,
best of ``--repeats`` fits of ``--epochs`` epochs each, and the training
seconds per epoch are compared; the one-off conversion of the dense array is
timed beside them.  Two kinds of data, 60,000 x 784:

* ``mnist``: the shipped MNIST with its faintest pixels zeroed (denser than
  19 % nonzero is not possible that way, so above it random pixels are set):
  image-like rows that share their columns;
* ``uniform``: nonzeros at uniformly random places, values uniform in (0, 1].

Two networks: the blog experiment (784-70-30-10 sigmoid, momentum, batch
500) and the defaults (784-100-10 relu, adam, batch 200).  The crossing
density is where the sparse path stops being faster.

    python bench/sparse_threshold.py --json bench/results/sparse_threshold.json
"""

import argparse
import json
import time

import numpy as np

from fastmlp import MLPClassifier
from fastmlp._sparse import SparseRows
from fastmlp.datasets import load_mnist
from fastmlp.experiments._common import machine

DENSITIES = (0.05, 0.1, 0.15, 0.19, 0.25, 0.3, 0.4, 0.5)


def mnist_at(X, density, rng):
    """MNIST (uint8) with about ``density`` of its entries nonzero."""
    X = X.copy()
    nz = np.count_nonzero(X) / X.size
    if density <= nz:
        cut = np.quantile(X[X > 0], 1 - density / nz)
        X[X <= cut] = 0
    else:
        extra = (density - nz) / (1 - nz)
        add = (X == 0) & (rng.random(X.shape) < extra)
        X[add] = rng.integers(1, 256, int(add.sum()), dtype=np.uint8)
    return X


def uniform_at(n, m, density, rng):
    X = rng.random((n, m), dtype=np.float32)
    X[rng.random((n, m)) >= density] = 0
    return X


NETWORKS = {
    "blog": lambda **kw: MLPClassifier.blog_experiment(**kw),
    "defaults": lambda **kw: MLPClassifier(n_iter_no_change=None, **kw),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--densities", type=float, nargs="+", default=DENSITIES)
    ap.add_argument("--data", nargs="+", default=["mnist", "uniform"])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--backend", default="compiled")
    ap.add_argument("--json")
    args = ap.parse_args()
    print(machine())
    (Xm, y), _ = load_mnist()
    rng = np.random.default_rng(0)
    rows = []
    for data in args.data:
        for d in args.densities:
            X = mnist_at(Xm, d, rng) if data == "mnist" else uniform_at(*Xm.shape, d, rng)
            t = time.perf_counter()
            SparseRows.from_dense(X)
            convert = time.perf_counter() - t
            real = np.count_nonzero(X) / X.size
            for net in args.networks:
                for T in args.threads:
                    best = {}
                    for r in range(args.repeats):
                        for fmt in ("dense", "sparse"):
                            m = NETWORKS[net](epochs=args.epochs, random_state=r, n_threads=T,
                                              input_format=fmt, backend=args.backend)
                            m.fit(X, y)
                            s = float(np.mean(m.history_.train_time))
                            best[fmt] = min(best.get(fmt, np.inf), s)
                    ratio = best["dense"] / best["sparse"]
                    rows.append(dict(data=data, density=real, network=net, threads=T,
                                     dense_s=best["dense"], sparse_s=best["sparse"],
                                     speedup=ratio, convert_s=convert))
                    print(f"{data:8s} {real:6.3f} {net:9s} {T} thr  dense {best['dense']:.4f}"
                          f"  sparse {best['sparse']:.4f} s/epoch  {ratio:5.2f}x"
                          f"  (conversion {convert:.3f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine(), backend=args.backend, epochs=args.epochs,
                           repeats=args.repeats, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
