"""The exported models on MNIST: how close they are to fastmlp, and onnxruntime's speed.

Trains two models on the shipped MNIST for a few epochs: the default
classifier (relu, softmax) and the blog experiment's network (sigmoid, the
sigmoid outputs renormalised per row).  For each it exports to ONNX,
scikit-learn and Keras, and prints, over the 10,000 test images, the largest
absolute difference between each export's probabilities and
``predict_proba``, and how many predicted labels differ.  (scikit-learn has
no equivalent of the blog's output over ten classes: that conversion is
refused, and the reason printed.)

Then it times prediction: onnxruntime's ``InferenceSession.run`` against
fastmlp's ``predict_proba`` (and scikit-learn's, on the converted model), on
one row (median of many calls) and on 10,000 rows (best of several).

    python bench/export.py                  # 3 epochs
    python bench/export.py --epochs 5 --json bench/results/export.json
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from fastmlp import MLPClassifier
from fastmlp._platform import machine
from fastmlp.datasets import load_mnist


def timed(call, calls):
    """Median seconds per call over ``calls`` calls (after one warm-up)."""
    call()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def compare(name, model, X):
    import onnxruntime as ort
    want = model.predict_proba(X)
    labels = model.predict(X)
    sess = ort.InferenceSession(model.to_onnx().SerializeToString(),
                                providers=["CPUExecutionProvider"])
    X32 = X.astype(np.float32)
    onnx_labels, onnx_proba = sess.run(None, {"X": X32})
    rows = {"onnx": (float(np.abs(onnx_proba - want).max()),
                     int(np.sum(onnx_labels != labels)))}
    try:
        sk = model.to_sklearn()
        rows["sklearn"] = (float(np.abs(sk.predict_proba(X) - want).max()),
                           int(np.sum(sk.predict(X) != labels)))
    except ValueError as exc:
        sk, rows["sklearn"] = None, str(exc).split(";")[0]
    keras = model.to_keras()
    kp = keras.predict(X32, verbose=0, batch_size=10_000)
    rows["keras"] = (float(np.abs(kp - want).max()),
                     int(np.sum(model.classes_[kp.argmax(axis=1)] != labels)))
    for export, r in rows.items():
        if isinstance(r, tuple):
            print(f"{name:31} {export:8} max |p - fastmlp| {r[0]:.3g}, labels that differ: "
                  f"{r[1]} of {len(X)}")
        else:
            print(f"{name:31} {export:8} refused: {r}")
    return sess, sk, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--calls", type=int, default=2000, help="one-row calls to time")
    p.add_argument("--repeats", type=int, default=20, help="10,000-row calls to time")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    (X, y), (Xt, yt) = load_mnist()
    models = {
        "MLPClassifier() (relu, softmax)": MLPClassifier(epochs=args.epochs, random_state=0),
        "blog_experiment() (sigmoid)": MLPClassifier.blog_experiment(epochs=args.epochs,
                                                                     random_state=0),
    }
    report = {"machine": machine(), "epochs": args.epochs, "equality": {}, "timing": {}}
    print(f"MNIST, {args.epochs} epochs; differences over the {len(Xt)} test images")
    sessions = {}
    for name, model in models.items():
        model.fit(X, y)
        sess, sk, rows = compare(name, model, Xt)
        sessions[name] = (model, sess, sk)
        report["equality"][name] = rows
    print(f"\nprediction time, {'median of ' + str(args.calls)} one-row calls and best of "
          f"{args.repeats} 10,000-row calls")
    print(f"{'model':31} {'engine':12} {'1 row (us)':>10} {'10,000 rows (ms)':>16}")
    for name, (model, sess, sk) in sessions.items():
        one, many = Xt[:1], Xt[:10_000]
        one32, many32 = one.astype(np.float32), many.astype(np.float32)
        engines = {"onnxruntime": (lambda: sess.run(None, {"X": one32}),
                                   lambda: sess.run(None, {"X": many32})),
                   "fastmlp": (lambda: model.predict_proba(one),
                               lambda: model.predict_proba(many))}
        if sk is not None:
            engines["scikit-learn"] = (lambda: sk.predict_proba(one),
                                       lambda: sk.predict_proba(many))
        for engine, (f1, fn) in engines.items():
            t1, _ = timed(f1, args.calls)
            _, tn = timed(fn, args.repeats)
            report["timing"].setdefault(name, {})[engine] = {"one_row_s": t1,
                                                              "rows_10000_s": tn}
            print(f"{name:31} {engine:12} {t1 * 1e6:10.1f} {tn * 1e3:16.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
