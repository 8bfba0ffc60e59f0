"""Fingerprints of trained weights: proof that a restructuring changed no number.

Fits a few fixed configurations on the shipped MNIST (``random_state=0``,
3 epochs) and prints the SHA-256 of the concatenated bytes of ``coefs_`` for
each.  Run it before and after a change on the same machine: equal hashes
mean bit-identical training.  The hashes depend on the CPU (the products'
instruction set) and the BLAS build, so compare runs on one machine only.

    python bench/fingerprint.py                 # print the table
    python bench/fingerprint.py --json fp.json  # also write it
    python bench/fingerprint.py --compare fp.json   # exit 1 if any hash differs

Only the public API is used (``MLPClassifier(...).fit``, ``coefs_``), so the
same script runs against any version of the package.
"""

import argparse
import hashlib
import json
import sys

import numpy as np

from fastmlp import MLPClassifier
from fastmlp.datasets import load_mnist

#: (name, MLPClassifier keyword arguments).  The blog experiment's settings are
#: the estimator's defaults at the time this script was written; they are
#: spelled out so that a later change of defaults does not change the run.
BLOG = dict(hidden_layer_sizes=(70, 30), activation="sigmoid", output="sigmoid",
            batch_size=500, learning_rate=0.001, lr_decay=1e-6, momentum=5e-5,
            optimizer="sgd", l2=0.01, l1=0.0, init_factor=2.0, shuffle=True,
            scaling="standard")
# parameters added later, set to the values that keep the old runs (an older
# fastmlp, which lacks them, runs the same settings without them)
BLOG.update({k: v for k, v in dict(init="blog", n_iter_no_change=None,
                                       input_format="dense").items()
             if k in MLPClassifier().get_params()})
CONFIGS = [
    ("blog, compiled, 1 thread", dict(BLOG, backend="compiled", n_threads=1)),
    ("blog, compiled, 2 threads", dict(BLOG, backend="compiled", n_threads=2)),
    ("blog, numpy, 1 thread", dict(BLOG, backend="numpy", n_threads=1)),
    ("blog, numpy, 2 threads", dict(BLOG, backend="numpy", n_threads=2)),
    ("tanh + adam, compiled", dict(BLOG, activation="tanh", optimizer="adam",
                                   backend="compiled", n_threads=2)),
    ("tanh + adam, numpy", dict(BLOG, activation="tanh", optimizer="adam",
                                backend="numpy", n_threads=2)),
    ("relu + softmax + rmsprop, compiled", dict(BLOG, activation="relu", output="softmax",
                                                optimizer="rmsprop", backend="compiled",
                                                n_threads=2)),
    ("relu + softmax + rmsprop, numpy", dict(BLOG, activation="relu", output="softmax",
                                             optimizer="rmsprop", backend="numpy",
                                             n_threads=2)),
]


def fingerprint(coefs):
    """SHA-256 of the weight matrices' bytes, concatenated in layer order."""
    h = hashlib.sha256()
    for W in coefs:
        h.update(np.ascontiguousarray(W).tobytes())
    return h.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", help="write the hashes to this file")
    p.add_argument("--compare", help="compare with the hashes in this file; exit 1 on a "
                                     "difference")
    args = p.parse_args(argv)
    (X, y), _ = load_mnist()
    hashes = {}
    for name, kw in CONFIGS:
        m = MLPClassifier(epochs=args.epochs, random_state=0, **kw).fit(X, y)
        hashes[name] = fingerprint(m.coefs_)
        print(f"{hashes[name]}  {name}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(epochs=args.epochs, hashes=hashes), f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            ref = json.load(f)["hashes"]
        diff = [k for k in hashes if ref.get(k) != hashes[k]]
        print("all equal" if not diff else f"DIFFERENT: {diff}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
