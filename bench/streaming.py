"""Streaming MNIST through partial_fit in blocks: the learning-rate schedule.

``partial_fit`` is one pass over its block, so by default the schedule and
the no-improvement rule advance once per call.  This script trains the same
network on the shipped MNIST for a few passes three ways:

* ``fit``: whole epochs (the reference);
* ``partial_fit`` on blocks, one epoch per call (the default);
* ``partial_fit`` on blocks with ``samples_per_epoch=60000``: the schedule
  and the rule count samples, so the blocks meet fit's rates.

for two schedules: the blog's decay (sgd, ``lr_decay=0.2``, a decay one can
see in five epochs) and scikit-learn's adaptive rate (adam).  It prints the
learning rate of the last pass, how often the rule cut the rate, the test
accuracy and the time.

    python bench/streaming.py                    # 5 passes, blocks of 1000
    python bench/streaming.py --passes 3 --block 500
"""

import argparse
import time

import numpy as np

from fastmlp import MLPClassifier
from fastmlp.datasets import load_mnist

SCHEDULES = {
    "decay": dict(optimizer="sgd", learning_rate=0.001, lr_decay=0.2, batch_size=500,
                  n_iter_no_change=None),
    "adaptive": dict(optimizer="adam", learning_rate=0.001, schedule="adaptive",
                     batch_size=200),
}


def run(X, y, Xt, yt, how, params, passes, block):
    model = MLPClassifier(hidden_layer_sizes=(100,), random_state=0, **params)
    classes = np.unique(y)
    t0 = time.perf_counter()
    if how == "fit":
        model.set_params(epochs=passes).fit(X, y)
    else:
        if how == "per samples":
            model.set_params(samples_per_epoch=len(X))
        for _ in range(passes):
            for s in range(0, len(X), block):
                model.partial_fit(X[s:s + block], y[s:s + block], classes=classes)
    seconds = time.perf_counter() - t0
    rates = model.history_.learning_rate
    cuts = int(np.sum(np.diff(rates) < 0)) if params.get("schedule") == "adaptive" else None
    return dict(rate=rates[-1], cuts=cuts, acc=model.score(Xt, yt), calls=model.n_iter_,
                seconds=seconds)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--block", type=int, default=1000)
    args = p.parse_args(argv)
    (X, y), (Xt, yt) = load_mnist()
    print(f"MNIST, {args.passes} passes, blocks of {args.block} rows "
          f"({-(-len(X) // args.block)} per pass); hidden (100,)")
    print(f"{'schedule':9} {'how':22} {'n_iter_':>7} {'last rate':>10} {'cuts':>5} "
          f"{'test acc':>8} {'seconds':>7}")
    for name, params in SCHEDULES.items():
        for how in ("fit", "one epoch per call", "per samples"):
            r = run(X, y, Xt, yt, how, params, args.passes, args.block)
            label = {"fit": "fit", "one epoch per call": "partial_fit (default)",
                     "per samples": "partial_fit, samples"}[how]
            cuts = "" if r["cuts"] is None else r["cuts"]
            print(f"{name:9} {label:22} {r['calls']:7d} {r['rate']:10.3g} {cuts:>5} "
                  f"{r['acc']:8.4f} {r['seconds']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
