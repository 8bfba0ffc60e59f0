"""Fuzz fastmlp.load with mutated model files: only clear exceptions allowed.

Saves small fitted models (sgd, adam and rmsprop; numeric and string labels), then
loads many mutated copies of their files.  Every load must either succeed --
and then the model must predict finite outputs of the right shape -- or raise
``ModelFileError`` (``FileNotFoundError`` never applies here).  Anything
else, or a crash of the interpreter, is a failure.  Mutation strategies:

  flip       1-8 random bytes anywhere set to random values
  region     1-4 bytes flipped inside one zip member's header or the JSON header
  truncate   the file cut at a random length
  header     the JSON header re-written with a key deleted, a value replaced
             by another type, a huge or negative number, or a nested mess
  arrays     one array replaced: other dtype or shape, NaN, an object array,
             a 0-d or 3-d array, or an extra or missing member
  garbage    random bytes, an empty file, a single .npy

    python bench/fuzz_load.py                  # 2000 cases per strategy
    python bench/fuzz_load.py --cases 200 --seed 1
"""

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile

import numpy as np

import fastmlp
from fastmlp import MLPClassifier, ModelFileError

STRATEGIES = ("flip", "region", "truncate", "header", "arrays", "garbage")


def model_files(folder):
    """Saved model files to mutate (sgd and adam with numeric labels, rmsprop
    with string labels, fitted on scikit-learn's digits), and the rows to
    predict with."""
    (X, y), (Xt, _) = fastmlp.datasets.load_digits()
    files = []
    for i, (opt, labels) in enumerate((("sgd", y), ("adam", y),
                                       ("rmsprop", np.array(["c%d" % v for v in y])))):
        m = MLPClassifier((8, 5), optimizer=opt, epochs=1, random_state=i).fit(X, labels)
        files.append(m.save(os.path.join(folder, f"model{i}.npz")))
    return files, Xt[:50]


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _rezip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _odd_value(rng):
    choices = [None, -1, 0, 2**63, 1e308, float("nan"), "x" * 10, [], {}, [[1, [2]]],
               True, -7.5, {"a": {"b": [None]}}, "sgd", [70, -3], [0]]
    return choices[rng.integers(len(choices))]


def mutate(kind, data, rng):
    """One mutated copy of a model file's bytes."""
    if kind == "flip":
        out = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 9)):
            out[pos] = rng.integers(0, 256)
        return bytes(out)
    if kind == "region":
        out = bytearray(data)
        # zip local headers, the central directory and the JSON header member
        spots = [i for i in range(len(data) - 4) if data[i:i + 2] == b"PK"]
        j = data.find(b"{\"magic\"")
        if j >= 0:
            spots += list(range(j, min(len(data), j + 400), 7))
        base = spots[rng.integers(len(spots))]
        for _ in range(rng.integers(1, 5)):
            pos = min(len(out) - 1, base + int(rng.integers(0, 48)))
            out[pos] = rng.integers(0, 256)
        return bytes(out)
    if kind == "truncate":
        return data[:rng.integers(0, len(data))]
    if kind == "header":
        members = _members(data)
        header = json.loads(np.load(io.BytesIO(members["__fastmlp__.npy"])).tobytes())
        target = header
        path = []
        while isinstance(target, dict) and target and rng.random() < 0.6:
            key = list(target)[rng.integers(len(target))]
            if not isinstance(target[key], dict):
                break
            path.append(key)
            target = target[key]
        key = list(target)[rng.integers(len(target))]
        if rng.random() < 0.3:
            del target[key]
        else:
            target[key] = _odd_value(rng)
        raw = json.dumps(header).encode()
        members["__fastmlp__.npy"] = _npy(np.frombuffer(raw, np.uint8))
        return _rezip(members)
    if kind == "arrays":
        members = _members(data)
        names = [n for n in members if n != "__fastmlp__.npy"]
        name = names[rng.integers(len(names))]
        arr = np.load(io.BytesIO(members[name]))
        r = rng.integers(8)
        if r == 0:
            other = np.int64 if arr.dtype.kind == "U" else (
                np.float64 if arr.dtype != np.float64 else np.float32)
            members[name] = _npy(np.zeros(arr.shape, other) if arr.dtype.kind == "U"
                                 else arr.astype(other))
        elif r == 1:
            members[name] = _npy(arr.reshape(-1)[:max(0, arr.size - 1)])
        elif r == 2 and arr.dtype.kind == "f":
            bad = arr.copy()
            bad.reshape(-1)[rng.integers(bad.size)] = np.nan
            members[name] = _npy(bad)
        elif r == 3:
            members[name] = _npy(np.array([object(), 1], dtype=object)[1:])
        elif r == 4:
            members[name] = _npy(np.array(3.0))
        elif r == 5:
            members[name] = _npy(np.zeros((2, 2, 2), np.float32))
        elif r == 6:
            members["extra.npy"] = _npy(np.zeros(3))
        else:
            del members[name]
        return _rezip(members)
    # garbage
    r = rng.integers(3)
    if r == 0:
        return rng.integers(0, 256, rng.integers(0, 4000)).astype(np.uint8).tobytes()
    if r == 1:
        return b""
    return _npy(np.zeros((3, 3), np.float32))


def run(cases, seed=0, verbose=True):
    """Fuzz ``cases`` files per strategy; returns {strategy: {outcome: count}}
    and raises AssertionError on the first escape (an exception other than
    ModelFileError, or a loaded model that cannot predict)."""
    rng = np.random.default_rng(seed)
    counts = {k: {"loaded": 0, "refused": 0} for k in STRATEGIES}
    with tempfile.TemporaryDirectory() as folder:
        files, Xt = model_files(folder)
        originals = [open(f, "rb").read() for f in files]
        target = os.path.join(folder, "fuzz.npz")
        for kind in STRATEGIES:
            for i in range(cases):
                data = mutate(kind, originals[i % len(originals)], rng)
                with open(target, "wb") as f:
                    f.write(data)
                try:
                    model = fastmlp.load(target)
                except ModelFileError:
                    counts[kind]["refused"] += 1
                    continue
                except Exception as exc:
                    raise AssertionError(f"{kind} case {i}: {type(exc).__name__} escaped "
                                         f"load: {exc}") from exc
                try:
                    out = model.predict_proba(Xt)
                except Exception as exc:
                    raise AssertionError(f"{kind} case {i}: loaded, but predict raised "
                                         f"{type(exc).__name__}: {exc}") from exc
                assert out.shape == (len(Xt), len(model.classes_)) and np.isfinite(out).all(), \
                    f"{kind} case {i}: loaded model predicts {out.shape} / non-finite"
                counts[kind]["loaded"] += 1
            if verbose:
                print(f"  {kind:9s} {cases} cases: {counts[kind]['refused']} refused with "
                      f"ModelFileError, {counts[kind]['loaded']} loaded and predicted",
                      flush=True)
    return counts


def main(argv=None):
    """Run the fuzzer from the command line; exit status 0, or an
    AssertionError naming the first case that escaped."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=2000, help="cases per strategy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t = time.perf_counter()
    counts = run(args.cases, args.seed)
    total = sum(sum(c.values()) for c in counts.values())
    print(f"{total} mutated files, no exception but ModelFileError escaped, every loaded "
          f"model predicted finite outputs ({time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
