"""The compiled backend's sparse path: seconds per epoch, per phase, and memory.

Three parts (``--parts``, default all):

* ``mnist``: the blog experiment (``MLPClassifier.blog_experiment()``, batch
  500) on MNIST given dense (uint8) and as a scipy CSR matrix, the two
  alternating in one run, at each thread count: the best repeat's mean
  training seconds per epoch and its phases.
* ``text``: a synthetic CSR of 20 Newsgroups TF-IDF's shape and density
  (11,293 x 42,254, 131 entries a row, float32; scipy.sparse.random, no
  download), one relu hidden layer of 256 units, softmax, adam, batch 256:
  seconds per epoch, phases, and the update's memory traffic in GB/s (the
  first layer's weights and adam's two moments read and written once a step)
  beside a STREAM-like triad and copy measured with NumPy threads.
* ``wide``: 5,000 x 2,000,000 with 50 entries a row, hidden_layer_sizes=(16,),
  fitted and predicted in a fresh subprocess: seconds and peak RSS.

    python bench/sparse_profile.py
    python bench/sparse_profile.py --parts mnist --repeats 5 --epochs 3
    python bench/sparse_profile.py --json bench/results/sparse.json
"""

import argparse
import json
import subprocess
import sys
import threading
import time

import numpy as np
import scipy.sparse as sp

from fastmlp import MLPClassifier
from fastmlp.datasets import load_mnist
from fastmlp.experiments._common import machine

PHASES = ("gather", "forward", "backward", "gradient", "update")


def epoch_figures(model):
    """(mean training seconds per epoch, phases of the fastest epoch in ms)."""
    h = model.history_
    best = int(np.argmin(h.train_time))
    return float(np.mean(h.train_time)), {k: round(1e3 * h.phases[best][k], 1) for k in PHASES}


def part_mnist(args, out):
    (X, y), _ = load_mnist()
    Xs = sp.csr_matrix(X)
    print(f"MNIST 60000x784 ({Xs.nnz / X.shape[0]:.0f} entries a row, uint8), the blog "
          f"experiment, batch 500, {args.epochs} epochs, best of {args.repeats}")
    rows = []
    for T in args.threads:
        best = {}
        for r in range(args.repeats):
            for name, data in (("dense", X), ("sparse", Xs)):
                m = MLPClassifier.blog_experiment(random_state=r, epochs=args.epochs,
                                                  n_threads=T).fit(data, y)
                s, ph = epoch_figures(m)
                if name not in best or s < best[name][0]:
                    best[name] = (s, ph)
        for name in ("dense", "sparse"):
            s, ph = best[name]
            rows.append(dict(threads=T, path=name, s_per_epoch=s, phases_ms=ph))
            print(f"  {T} thread(s)  {name:6s} {s:.4f} s/epoch   phases (ms, best epoch) "
                  + "  ".join(f"{k} {v}" for k, v in ph.items()))
        print(f"  {T} thread(s)  sparse is {best['dense'][0] / best['sparse'][0]:.2f}x "
              "the dense path's speed")
    out["mnist"] = rows


def triad(T, n=64_000_000):
    """(triad GB/s, copy GB/s) with T NumPy threads on separate arrays: the
    triad a = b + s c in NumPy's two passes counts five array streams."""
    n = n // T
    sets = [(np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32))
            for _ in range(T)]

    def tri(a, b, c):
        np.multiply(c, np.float32(3.0), out=a)
        np.add(a, b, out=a)

    figures = []
    for fn, streams in ((tri, 5), (lambda a, b, c: np.copyto(a, b), 2)):
        best = 1e9
        for _ in range(5):
            ths = [threading.Thread(target=fn, args=s) for s in sets]
            t = time.perf_counter()
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            best = min(best, time.perf_counter() - t)
        figures.append(streams * T * n * 4 / best / 1e9)
    return figures


def part_text(args, out):
    n, m, per_row, H, B = 11293, 42254, 131, 256, 256
    rng = np.random.default_rng(0)
    X = sp.random(n, m, density=per_row / m, format="csr", dtype=np.float32, random_state=rng)
    y = rng.integers(0, 20, n)
    steps = -(-n // B)
    traffic = 3 * 2 * m * H * 4 * steps          # W, m, v read and written once a step
    print(f"synthetic text {n}x{m}, {X.nnz / n:.0f} entries a row (float32), relu {H}, "
          f"softmax, adam, batch {B}, {args.epochs} epochs, best of {args.repeats}")
    rows = []
    for T in args.threads:
        best = None
        for r in range(args.repeats):
            model = MLPClassifier(hidden_layer_sizes=(H,), activation="relu", optimizer="adam",
                                  batch_size=B, epochs=args.epochs, n_iter_no_change=None,
                                  random_state=r, n_threads=T).fit(X, y)
            s, ph = epoch_figures(model)
            if best is None or s < best[0]:
                best = (s, ph)
        s, ph = best
        gbs = traffic / (ph["update"] / 1e3) / 1e9
        tri, copy = triad(T)
        rows.append(dict(threads=T, s_per_epoch=s, phases_ms=ph, update_gb_s=gbs,
                         triad_gb_s=tri, copy_gb_s=copy))
        print(f"  {T} thread(s)  {s:.4f} s/epoch   phases (ms) "
              + "  ".join(f"{k} {v}" for k, v in ph.items()))
        print(f"  {T} thread(s)  update {traffic / steps / 1e6:.0f} MB a step at {gbs:.1f} GB/s;"
              f" NumPy triad {tri:.1f} GB/s, copy {copy:.1f} GB/s with {T} thread(s)")
    out["text"] = rows


WIDE = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse as sp
from fastmlp import MLPClassifier
n, m, per_row, epochs = 5000, 2_000_000, 50, int(sys.argv[1])
rng = np.random.default_rng(0)
indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int64)
indices = np.sort(np.concatenate([rng.choice(m, per_row, replace=False) for _ in range(n)])
                  .reshape(n, per_row), axis=1).ravel().astype(np.int32)
X = sp.csr_matrix((rng.random(n * per_row, np.float32), indices, indptr), shape=(n, m))
score = X @ rng.choice(np.float32([-1, 1]), m)
y = (score > np.median(score)).astype(int)
del score


def rss(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])


rss_data, peak_data = rss("VmRSS:"), rss("VmHWM:")
t = time.perf_counter()
model = MLPClassifier(hidden_layer_sizes=(16,), epochs=epochs, n_iter_no_change=None,
                      random_state=0).fit(X, y)
fit = time.perf_counter() - t
t = time.perf_counter()
pred = model.predict(X)
predict = time.perf_counter() - t
print(json.dumps(dict(fit_s=fit, predict_s=predict, s_per_epoch=float(np.mean(
    model.history_.train_time)), train_acc=float((pred == y).mean()),
    rss_before_fit_mb=rss_data / 1e3, peak_rss_mb=rss("VmHWM:") / 1e3,
    peak_before_fit_mb=peak_data / 1e3)))
"""


def part_wide(args, out):
    run = subprocess.run([sys.executable, "-c", WIDE, str(args.epochs)], capture_output=True,
                         text=True, check=True)
    res = json.loads(run.stdout.strip().splitlines()[-1])
    weights_mb = 16 * 2_000_001 * 4 / 1e6
    print(f"wide 5000x2000000, 50 entries a row, hidden (16,), adam, {args.epochs} epochs: "
          f"fit {res['fit_s']:.2f} s ({res['s_per_epoch']:.3f} s/epoch), predict "
          f"{res['predict_s']:.2f} s, training accuracy {res['train_acc']:.3f}; peak RSS "
          f"{res['peak_rss_mb']:.0f} MB (RSS before the fit {res['rss_before_fit_mb']:.0f} MB, "
          f"peak before it {res['peak_before_fit_mb']:.0f} MB; one first-layer matrix is "
          f"{weights_mb:.0f} MB, a dense float32 X would be {5000 * 2_000_000 * 4 / 1e9:.0f} GB)")
    out["wide"] = res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="mnist,text,wide")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    mach = machine()
    print(f"{mach['cores']} cores, {mach['cpu']}; build: {mach['build']}")
    out = dict(machine=mach)
    for part in args.parts.split(","):
        {"mnist": part_mnist, "text": part_text, "wide": part_wide}[part](args, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
