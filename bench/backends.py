"""Compiled vs NumPy backend: seconds per epoch on MNIST, side by side.

Trains the blog experiment's network (784-70-30-10 with its hyperparameters,
``MLPClassifier.blog_experiment()``) on the shipped MNIST with each backend
and thread count, for a few epochs, repeated; the figure per row is the best
repeat's mean training seconds per epoch (the batch loop: gather, forward,
backward, update -- no evaluation).  Ratios are taken
within this one run, so machine noise hits every row alike.

    python bench/backends.py                       # batch 500 and 20000
    python bench/backends.py --batch-sizes 100,500,2000 --epochs 3 --repeats 5
    python bench/backends.py --json out.json
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from fastmlp import MLPClassifier
from fastmlp.datasets import load_mnist
from fastmlp.experiments._common import best_of, machine


def measure(X, y, backend, n_threads, batch_size, epochs, repeats):
    """``(seconds per epoch, fitted model)`` of the best repeat (repeat r with
    random seed r): the mean of the fit's per-epoch batch-loop seconds."""
    def run(r):
        m = MLPClassifier.blog_experiment(backend=backend, n_threads=n_threads,
                                          batch_size=batch_size, epochs=epochs, random_state=r)
        m.fit(X, y)
        return float(np.mean(m.history_.train_time)), m

    return best_of(repeats, run)


def main(argv=None):
    """Time both backends at every batch size and thread count; print the
    table (and write JSON with ``--json``).  Returns the exit status (0)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="500,20000")
    p.add_argument("--threads", default="1,2", help="thread counts to try (default 1,2)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    (X, y), (Xt, yt) = load_mnist()
    rows = []
    mach = machine()
    print(f"fastmlp backends on MNIST 60000x784, the blog experiment's network, "
          f"{args.epochs} epochs, best of {args.repeats}; {mach['cores']} cores, "
          f"{mach['cpu']}")
    print(f"build: {mach['build']}")
    for B in batch_sizes:
        for T in threads:
            for backend in ("numpy", "compiled"):
                s, m = measure(X, y, backend, T, B, args.epochs, args.repeats)
                rows.append(dict(batch_size=B, n_threads=T, backend=backend,
                                 s_per_epoch=s, s_35_epochs=35 * s))
                print(f"  batch {B:6d}  threads {T}  {backend:9s} {s:8.4f} s/epoch "
                      f"({35 * s:6.2f} s for 35)", flush=True)
    print()
    print(f"{'batch':>6} {'threads':>7} {'numpy s/ep':>11} {'compiled s/ep':>14} {'speed-up':>9}")
    for B in batch_sizes:
        best_numpy = min(r["s_per_epoch"] for r in rows
                         if r["batch_size"] == B and r["backend"] == "numpy")
        for T in threads:
            n = next(r for r in rows if (r["batch_size"], r["n_threads"], r["backend"]) == (B, T, "numpy"))
            c = next(r for r in rows if (r["batch_size"], r["n_threads"], r["backend"]) == (B, T, "compiled"))
            print(f"{B:6d} {T:7d} {n['s_per_epoch']:11.4f} {c['s_per_epoch']:14.4f} "
                  f"{n['s_per_epoch'] / c['s_per_epoch']:8.2f}x")
        best_comp = min(r["s_per_epoch"] for r in rows
                        if r["batch_size"] == B and r["backend"] == "compiled")
        print(f"{B:6d}   best   {best_numpy:11.4f} {best_comp:14.4f} {best_numpy / best_comp:8.2f}x"
              "   (each backend at its best thread count)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows=rows, epochs=args.epochs, repeats=args.repeats,
                           cores=os.cpu_count(), python=sys.version, machine=mach,
                           time=time.strftime("%Y-%m-%d %H:%M:%S")), f, indent=1,
                      default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
