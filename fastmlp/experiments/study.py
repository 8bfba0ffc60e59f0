"""The blog series' regularisation study ("MLP - XIII"): a sweep over lambda2.

For each lambda2 the blog experiment's network (784-70-30-10) is trained with
the study's settings. These are standardised inputs, learning rate 0.001,
decrease 1e-5, momentum 5e-5, batch 500, and weights in +-0.5 sqrt(1/n). The
run records the regularisation term's share of every mini-batch's cost and
the cost itself. It then reports acc_train (a prediction over all 60000),
acc_test, and the epoch where the cost stopped falling, beside the blog
series' own figures (:data:`BLOG_RESULTS`). The lambda values run in parallel
processes, one per core by default.

"Stopped falling" is defined here as the first epoch whose mean batch cost is
within 1 % of the lowest mean batch cost of the whole run.

    fastmlp study                                       # the blog's 800 epochs
    fastmlp study --epochs 100 --lambdas 0.01,0.2 --out-dir study

(``python bench/regularisation.py`` from a checkout is the same.)
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ._common import machine, pyplot_or_none, save_figure, timed_fit

#: The blog series' results: lambda2 -> (acc_train, acc_test, converged near epoch).
BLOG_RESULTS = {0.01: (1.0, 0.9656, 350), 0.1: (0.999, 0.9714, 600),
                0.2: (0.9946, 0.9728, 700), 0.4: (0.9858, 0.9693, 600),
                0.8: (0.9705, 0.9588, 400)}


def converged_epoch(costs, tol=0.01):
    """First epoch (1-based) whose cost is within ``tol`` of the run's lowest."""
    costs = np.asarray(costs)
    return int(np.argmax(costs <= costs.min() * (1 + tol))) + 1


def run_one(lam, epochs, threads, seed):
    """Train with lambda2 = lam; return the figures and the per-batch curves.

    The settings the study changes are passed here; the rest (layers 70, 30,
    sigmoid, LogLoss, sgd, L1 0, shuffling, every epoch: the plateau is what
    it studies) are the blog experiment's (``blog_experiment()``).
    """
    from fastmlp import MLPClassifier
    from fastmlp.datasets import load_mnist
    (X, y), (Xt, yt) = load_mnist()
    m = MLPClassifier.blog_experiment(l2=lam, epochs=epochs, learning_rate=0.001,
                                      lr_decay=1e-5, momentum=5e-5, batch_size=500,
                                      init_factor=1.0, scaling="standard", n_threads=threads,
                                      random_state=seed, eval_period=max(1, epochs // 20))
    seconds = timed_fit(m, X, y, validation_data=(Xt, yt))
    h = m.history_
    return dict(
        lambda2=lam, seconds=seconds, acc_train=m.score(X, y), acc_test=m.score(Xt, yt),
        converged_epoch=converged_epoch(h.cost), final_cost=h.cost[-1],
        final_reg_share=float(np.mean(h.batch_reg_share[-1])),
        epoch_cost=list(map(float, h.cost)),
        test_acc=[None if np.isnan(a) else float(a) for a in h.test_acc],
        batch_cost=np.concatenate(h.batch_cost).tolist(),
        batch_reg_share=np.concatenate(h.batch_reg_share).tolist())


def plot(results, path, epochs):
    """Write the per-batch regularisation share and cost of every lambda2 to
    ``path`` as PNG (a printed note instead when matplotlib is missing)."""
    plt = pyplot_or_none()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    for r in results:
        share = np.asarray(r["batch_reg_share"])
        cost = np.asarray(r["batch_cost"])
        x = np.arange(share.size) * epochs / share.size
        axes[0].plot(x, share, lw=0.4, label=f"λ2 = {r['lambda2']:g}")
        axes[1].plot(x, cost, lw=0.4, label=f"λ2 = {r['lambda2']:g}")
    axes[0].set_ylabel("regularisation share of batch cost")
    axes[1].set_ylabel("batch cost")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("Regularisation study: MNIST 784-70-30-10, batch 500")
    save_figure(fig, path, dpi=110)


def main(argv=None):
    """``fastmlp study``: train every lambda2, print the table beside
    :data:`BLOG_RESULTS`, write study.json and study.png.  Returns the exit
    status (0)."""
    p = argparse.ArgumentParser(prog="fastmlp study", description=__doc__.split("\n\n")[0])
    p.add_argument("--lambdas", default="0.01,0.1,0.2,0.4,0.8")
    p.add_argument("--epochs", type=int, default=800)
    p.add_argument("--processes", type=int, default=os.cpu_count(),
                   help="lambda values trained at once (default: one per core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=".", help="where study.json and study.png go")
    p.add_argument("--save-curves", action="store_true",
                   help="also put the per-batch curves in study.json (large)")
    args = p.parse_args(argv)
    lambdas = [float(v) for v in args.lambdas.split(",") if v]
    if not lambdas or min(lambdas) < 0:
        p.error("--lambdas needs non-negative numbers")
    if args.epochs < 1 or args.processes < 1:
        p.error("--epochs and --processes must be >= 1")
    os.makedirs(args.out_dir, exist_ok=True)
    procs = min(args.processes, len(lambdas))
    threads = max(1, (os.cpu_count() or 1) // procs)
    print(f"lambda2 sweep {lambdas}, {args.epochs} epochs, {procs} processes x "
          f"{threads} threads", flush=True)
    t = time.perf_counter()
    with ProcessPoolExecutor(procs) as pool:
        results = list(pool.map(run_one, lambdas, [args.epochs] * len(lambdas),
                                [threads] * len(lambdas), [args.seed] * len(lambdas)))
    wall = time.perf_counter() - t
    print(f"\n{'lambda2':>8} {'acc_train':>9} {'acc_test':>9} {'converged':>9} "
          f"{'reg share':>9}   blog: acc_train acc_test converged")
    for r in results:
        blog = BLOG_RESULTS.get(r["lambda2"])
        ref = (f"{blog[0]:9.4f} {blog[1]:8.4f}   ~{blog[2]}" if blog else "")
        print(f"{r['lambda2']:8g} {r['acc_train']:9.4f} {r['acc_test']:9.4f} "
              f"{r['converged_epoch']:9d} {r['final_reg_share']:9.3f}   {ref}")
    print(f"\nwall time {wall:.0f} s ({args.epochs} epochs per lambda)")
    out_json = os.path.join(args.out_dir, "study.json")
    with open(out_json, "w") as f:
        keep = [r if args.save_curves else
                {k: v for k, v in r.items() if not k.startswith("batch_")} for r in results]
        json.dump(dict(epochs=args.epochs, wall_seconds=wall, blog_results=BLOG_RESULTS,
                       machine=machine(), results=keep), f, indent=1, default=str)
    print(f"JSON written to {out_json}")
    plot(results, os.path.join(args.out_dir, "study.png"), args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
