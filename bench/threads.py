"""How the step's cost grows with its slices: rows against panels, 1 to 8 threads.

The compiled step cuts a batch into one row slice per thread, and forms each
layer's gradient by rows (a partial gradient per slice, summed by the update)
or by panels (fastmlp.backends._panels).  The cost model there says the rows
way moves 2 (T - 1) x the weights more per step as the slice count T grows,
and the panels way does not.  Machines with 16-64 cores are where that
matters; on a machine with fewer cores this script still runs T slices, as
OpenMP threads time-sharing the cores, so the *work* of T slices can be
measured even where their speed-up cannot: at T > cores the seconds are
the total work spread over the cores.

For each shape and T it prints the seconds per epoch by rows and by panels
(best of --repeats, 10,000 MNIST rows, the blog preset), the extra bytes per
step that the model predicts for each way, and which way the model picks.

    python bench/threads.py --threads 1,2,3,4,6,8 --json bench/results/threads_2cores.json
"""

import argparse
import json
import os
import sys

import numpy as np

SHAPES = ["2048:32", "1024-1024:32", "1024:128", "256:128", "70-30:500"]


def parse(shape):
    hidden, batch = shape.split(":")
    return tuple(int(h) for h in hidden.split("-")), int(batch)


def model_bytes(layers, batch, T):
    """(rows way, panels way) extra bytes per step by the cost model, summed over layers."""
    from fastmlp.backends._panels import l2_cache_bytes, split_bytes
    ways = [split_bytes(n_in, n_out, batch, T, l2_cache_bytes())
            for n_in, n_out in zip(layers[:-1], layers[1:])]
    return sum(r for r, _ in ways), sum(p for _, p in ways)


def seconds(X, y, hidden, batch, T, split, repeats):
    from fastmlp import MLPClassifier
    os.environ["FASTMLP_SPLIT"] = split
    best = float("inf")
    for _ in range(repeats):
        m = MLPClassifier.blog_experiment(hidden_layer_sizes=hidden, batch_size=batch, epochs=2,
                                          n_threads=T, random_state=0, input_format="dense",
                                          train_accuracy="none").fit(X, y)
        best = min(best, min(m.history_.train_time))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default=",".join(SHAPES),
                   help="hidden widths and batch, as 1024-1024:32,70-30:500")
    p.add_argument("--threads", default="1,2,3,4,6,8")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    from fastmlp._platform import machine
    from fastmlp.backends._panels import panel_plan
    from fastmlp.datasets import load_mnist
    (X, y), _ = load_mnist()
    X, y = X[:args.rows], y[:args.rows]
    mach = machine()
    print(f"CPU: {mach.get('cpu')}, {os.cpu_count()} cores; s/epoch on {args.rows} rows, "
          f"best of {args.repeats}")
    print(f"{'hidden':>12} {'batch':>5} {'T':>2} {'rows s':>8} {'panels s':>8} "
          f"{'model rows MB':>13} {'panels MB':>9} {'model picks':>11}")
    out = []
    saved = os.environ.get("FASTMLP_SPLIT")
    try:
        for shape in args.shapes.split(","):
            hidden, batch = parse(shape)
            layers = (784,) + hidden + (10,)
            for T in (int(t) for t in args.threads.split(",")):
                r = seconds(X, y, hidden, batch, T, "rows", args.repeats)
                q = seconds(X, y, hidden, batch, T, "panels", args.repeats)
                mr, mp = model_bytes(layers, batch, T)
                plan = panel_plan(layers[:-1], layers[1:], batch, T, 256, True, False,
                                  split="auto")
                pick = "panels" if any(plan) else "rows"
                print(f"{str(hidden):>12} {batch:5d} {T:2d} {r:8.4f} {q:8.4f} {mr / 1e6:13.2f} "
                      f"{mp / 1e6:9.2f} {pick:>11}", flush=True)
                out.append(dict(hidden=list(hidden), batch=batch, threads=T, rows_seconds=r,
                                panels_seconds=q, model_rows_bytes=mr, model_panels_bytes=mp,
                                plan=plan))
    finally:
        if saved is None:
            os.environ.pop("FASTMLP_SPLIT", None)
        else:
            os.environ["FASTMLP_SPLIT"] = saved
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=mach, rows=args.rows, repeats=args.repeats,
                           cells=out, numpy=np.__version__), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
