"""The machine's own limits, and how close fastmlp's phases come to them.

First it measures the machine:

* single-precision GEMM peak, with 1 thread and with all threads, as the
  best of three products: NumPy's sgemm (the BLAS it links) on 4096 x 4096,
  PyTorch's matmul on the same (where installed), and fastmlp's own AVX-512
  forward product on a 4096 x 784 by 784 x 80 shape (one call per thread,
  in parallel).  Which one is fastest depends on the CPU: OpenBLAS picks
  AVX2 kernels on some AVX-512 CPUs (its "Haswell" target on the AMD EPYC
  family 26 of the development machine);
* memory bandwidth: a STREAM-like add ``a = b + c`` over arrays far larger
  than the caches (three streams of float32 counted).

It writes them to ``~/.cache/fastmlp/machine.json``; ``fastmlp info`` shows
them there when the CPU is the same.  Then, unless ``--machine-only``, it
runs a grid: hidden widths {32, 70, 256, 1024, 2048} with one and with two
hidden layers, batch sizes {32, 128, 500, 4096, 20000}, on MNIST rows
(``--rows`` of them), a blog-style sigmoid network trained with sgd on the
dense path.  For each cell: fastmlp's seconds per epoch; the GFLOP/s of the
forward and gradient products (their phases' times, which include the
weights' repack and the bias and activation pass) and their share of the
all-threads peak (a phase is timed on the first row slice, which holds
1/threads of the batch; a figure above 100 % means the other slice took
longer, so read it as "at the peak"); GB/s of gather and update; and, where installed, the
seconds of PyTorch and scikit-learn on the same cell and their ratio to
fastmlp.  Every timed run, of every engine, starts after half a second of
sleep (:func:`settled`), once the idle threads of the run before have stopped
spinning.  ``--repeats`` is the number of passes over the whole grid, and each
cell reports its best pass, so that a busy minute of the host spoils one pass
of a few cells rather than every repeat of them; the peaks are measured
before and after the passes, the higher kept.  JSON, and a PNG heatmap of
fastmlp's speed-up over torch.

    python bench/roofline.py --machine-only
    python bench/roofline.py --rows 10000 --json bench/results/roofline.json \\
        --plot bench/results/roofline.png
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp._platform import limits_path
from fastmlp.experiments._common import settle

WIDTHS = (32, 70, 256, 1024, 2048)
BATCHES = (32, 128, 500, 4096, 20000)
CACHE = limits_path()


def gemm_gflops(threads, n=4096, repeats=3):
    """Best GFLOP/s of a float32 n x n x n product on ``threads`` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    best = float("inf")
    with threadpool_limits(threads, user_api="blas"):
        np.matmul(a, b, out=c)                         # warm up
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def torch_gflops(threads, n=4096, repeats=3):
    """Best GFLOP/s of a float32 n x n x n torch.matmul on ``threads``
    threads, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def own_gflops(threads, rows=16384, k=784, n=80, repeats=10):
    """Best GFLOP/s of fastmlp's own forward product (AVX-512) run by
    ``threads`` Python threads at once (the kernel releases the GIL), or
    None where the CPU or the build has none.  (Best of 10 runs of about
    8 ms: with 3 runs of 2 ms, one busy moment of the other core gave 310
    GFLOP/s on 2 threads of Zen 5 instead of 431.)"""
    from concurrent.futures import ThreadPoolExecutor
    try:
        from fastmlp.backends import _compiled
    except ImportError:
        return None
    if _compiled.gemm_kind() != "avx512":
        return None
    rng = np.random.default_rng(0)
    work = [(rng.standard_normal((rows, k), dtype=np.float32),
             rng.standard_normal((n, k + 1), dtype=np.float32) * 0.01,
             np.empty((rows, n), np.float32)) for _ in range(threads)]

    def one(i):
        A, W, out = work[i]
        _compiled.forward_layer(A, W, out, "relu")

    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(threads)))
        for _ in range(repeats):
            t = time.perf_counter()
            list(pool.map(one, range(threads)))
            best = min(best, time.perf_counter() - t)
    return threads * 2.0 * rows * k * n / best / 1e9


def add_gbs(n=64 * 2 ** 20, repeats=5):
    """Best GB/s of ``a = b + c`` on float32 arrays of n elements (three
    streams: two read, one written)."""
    b = np.ones(n, np.float32)
    c = np.ones(n, np.float32)
    a = np.empty(n, np.float32)
    np.add(b, c, out=a)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.add(b, c, out=a)
        best = min(best, time.perf_counter() - t)
    return 3 * 4 * n / best / 1e9


def measure_machine(before=None):
    """The machine's GEMM peaks and bandwidth, with its description, written
    to the cache.  With ``before`` (an earlier measurement of this run) each
    figure is the higher of the two: a busy moment of the host only lowers a
    peak, and a low peak would flatter every percentage."""
    from fastmlp._platform import machine
    cores = os.cpu_count() or 1
    out = dict(cpu=machine()["cpu"], cores=cores, measured=time.strftime("%Y-%m-%d %H:%M:%S"))
    for threads, key in ((1, "1_thread"), (cores, "all_threads")):
        each = dict(blas=gemm_gflops(threads), torch=torch_gflops(threads),
                    fastmlp=own_gflops(threads))
        if before:
            each = {k: max((x for x in (v, before[f"gemm_gflops_{key}_by_engine"].get(k))
                            if x is not None), default=None) for k, v in each.items()}
        out[f"gemm_gflops_{key}_by_engine"] = each
        out[f"gemm_gflops_{key}"] = max(v for v in each.values() if v is not None)
    out["add_gbs"] = max(add_gbs(), before["add_gbs"] if before else 0.0)
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    with open(CACHE, "w") as f:
        json.dump(out, f, indent=1)
    return out


def flops(layers, rows):
    """Multiply-add FLOPs of the forward products of ``rows`` samples (the
    gradient's are the same; the hidden deltas' those without layer 0)."""
    return 2.0 * rows * sum(a * b for a, b in zip(layers[:-1], layers[1:]))


def settled(run, *args):
    """``run(*args)`` after :func:`fastmlp.experiments._common.settle`: every
    engine's timed run starts once the previous engine's idle threads (which
    spin for about 0.2 s) have stopped taking the cores."""
    settle()
    return run(*args)


def cell(X, y, hidden, batch, threads):
    """fastmlp's seconds per epoch and per-phase rates on one grid cell."""
    from fastmlp import MLPClassifier
    m = MLPClassifier.blog_experiment(hidden_layer_sizes=hidden, batch_size=batch, epochs=2,
                                      n_threads=threads, random_state=0,
                                      input_format="dense", train_accuracy="none")
    m.fit(X, y)
    ph = m.history_.phases[-1]
    layers, n = m.layers_, X.shape[0]
    fwd, bwd = flops(layers, n), flops(layers[1:], n)
    weights = sum(W.size for W in m.coefs_)
    return dict(seconds=float(m.history_.train_time[-1]),
                forward_gflops=fwd / ph["forward"] / 1e9,
                gradient_gflops=fwd / ph["gradient"] / 1e9,
                backward_gflops=bwd / max(ph["backward"], 1e-12) / 1e9,
                # gather reads the rows (float32 here) and writes them scaled
                gather_gbs=2 * X.nbytes / max(ph["gather"], 1e-12) / 1e9,
                # the update reads and writes weights and state, reads the gradient
                update_gbs=weights * 4 * 5 * m.optimizer_steps_ / 2 / max(ph["update"], 1e-12)
                / 1e9)


def torch_seconds(X, y, hidden, batch, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(np.eye(10, dtype=np.float32)[y])
    layers, size = [], X.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(size, h), torch.nn.Sigmoid()]
        size = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(size, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.001)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    t = time.perf_counter()
    perm = torch.randperm(X.shape[0])
    for s in range(0, X.shape[0], batch):
        idx = perm[s:s + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(net(Xt[idx]), Yt[idx]).backward()
        opt.step()
    return time.perf_counter() - t


def sklearn_seconds(X, y, hidden, batch, threads):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    m = MLPClassifier(hidden, activation="logistic", solver="sgd",
                      batch_size=min(batch, X.shape[0]),
                      learning_rate_init=0.01, momentum=0.0, max_iter=1, shuffle=True,
                      random_state=0)
    t = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(X, y)
    return time.perf_counter() - t


def print_machine(mach):
    """One line: the CPU, its GEMM peaks by engine and its bandwidth."""
    def engines(key):
        return ", ".join(f"{k} {v:.0f}" for k, v in mach[key + "_by_engine"].items()
                         if v is not None)
    print(f"machine: {mach['cpu']}, {mach['cores']} cores: GEMM peak "
          f"{mach['gemm_gflops_1_thread']:.0f} GFLOP/s on 1 thread "
          f"({engines('gemm_gflops_1_thread')}), {mach['gemm_gflops_all_threads']:.0f} "
          f"on {mach['cores']} ({engines('gemm_gflops_all_threads')}); add "
          f"{mach['add_gbs']:.1f} GB/s (written to {CACHE})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--machine-only", action="store_true")
    p.add_argument("--rows", type=int, default=20000, help="MNIST rows per epoch")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--others", default="torch,sklearn", help="peers to time ('' for none)")
    p.add_argument("--repeats", type=int, default=2,
                   help="passes over the grid; each cell's figures are its best pass")
    p.add_argument("--json")
    p.add_argument("--plot")
    args = p.parse_args(argv)
    mach = measure_machine()
    if args.machine_only:
        print_machine(mach)
        return 0
    from fastmlp.datasets import load_mnist
    (X, y), _ = load_mnist()
    X = ((X[:args.rows].astype(np.float32) - 33.3) / 78.6).astype(np.float32)
    y = y[:args.rows]
    peers = [o for o in args.others.split(",") if o]
    widths = [int(v) for v in args.widths.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    grid = [((w,) * n_layers, b) for n_layers in (1, 2) for w in widths for b in batches]
    # --repeats passes over the whole grid, each cell's figures its best pass
    # (by fastmlp's seconds; the peers' seconds likewise): a busy minute of
    # the host then spoils one pass of a few cells, not every repeat of them
    best = {}
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        for hidden, b in grid:
            r = settled(cell, X, y, hidden, b, args.threads)
            # the cell's record so far: fastmlp's fields from its fastest pass,
            # each peer's seconds its fastest
            kept = best.get((hidden, b))
            if kept is None or r["seconds"] < kept["seconds"]:
                best[(hidden, b)] = kept = dict(kept or {}, hidden=list(hidden), batch=b, **r)
            for o in peers:
                try:
                    run = {"torch": torch_seconds, "sklearn": sklearn_seconds}[o]
                    sec = settled(run, X, y, hidden, b, args.threads)
                    kept[f"{o}_seconds"] = min(sec, kept.get(f"{o}_seconds") or sec)
                except ImportError:
                    kept[f"{o}_seconds"] = None
        print(f"pass {rep + 1}/{args.repeats}: {len(grid)} cells in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    mach = measure_machine(mach)          # the peak: the higher of before and after
    print_machine(mach)
    peak = mach["gemm_gflops_all_threads" if args.threads > 1 else "gemm_gflops_1_thread"]
    rows = [best[key] for key in grid]
    print(f"{'hidden':>12} {'batch':>6} {'s/epoch':>8} {'fwd %':>6} {'grad %':>6} "
          + "".join(f"{o + ' x':>10}" for o in peers))
    for r in rows:
        r["forward_pct"] = 100 * r["forward_gflops"] / peak
        r["gradient_pct"] = 100 * r["gradient_gflops"] / peak
        for o in peers:
            sec = r[f"{o}_seconds"]
            r[f"{o}_ratio"] = sec / r["seconds"] if sec else None
        ratios = "".join(f"{r[o + '_ratio']:10.2f}" if r.get(o + "_ratio") else
                         f"{'-':>10}" for o in peers)
        print(f"{str(tuple(r['hidden'])):>12} {r['batch']:6d} {r['seconds']:8.4f} "
              f"{r['forward_pct']:6.1f} {r['gradient_pct']:6.1f} {ratios}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=mach, threads=args.threads, rows=args.rows, cells=rows), f,
                      indent=1)
    if args.plot and "torch" in peers:
        from fastmlp._platform import pyplot
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, n_layers in zip(axes, (1, 2)):
            ratio = np.array([[best[((w,) * n_layers, b)]["torch_ratio"] or np.nan
                               for b in batches] for w in widths])
            im = ax.imshow(ratio, cmap="RdYlGn", vmin=0, vmax=3, origin="lower")
            ax.set_xticks(range(len(batches)), batches)
            ax.set_yticks(range(len(widths)), widths)
            ax.set_xlabel("batch")
            if n_layers == 1:
                ax.set_ylabel("hidden width")
            ax.set_title(f"{n_layers} hidden layer(s): torch time / fastmlp time")
            for i in range(len(widths)):
                for j in range(len(batches)):
                    ax.text(j, i, f"{ratio[i, j]:.1f}", ha="center", va="center", fontsize=8)
        fig.colorbar(im, ax=axes, shrink=0.8)
        fig.suptitle(f"{mach['cpu']}, {args.threads} threads")
        fig.savefig(args.plot, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
