"""Saving and loading fitted models as plain .npz files (no pickle).

This module is a leaf: it writes and reads hyperparameters, a network state
(:class:`fastmlp._network.NetworkState`) and the arrays that go with it, and
knows nothing of the estimators; an estimator builds itself from what
:func:`read` returns.

A model file holds only arrays and a JSON header:

* ``__fastmlp__``  JSON (as a uint8 array): format version, the estimator
  (``MLPClassifier`` or ``MLPRegressor``), the kind of targets (``labels``,
  ``multilabel`` or ``continuous``), hyperparameters, layer sizes, epochs
  trained, learning rate;
* ``classes``      the class labels (numbers or unicode strings; for
  multilabel targets the label columns 0 .. K-1; absent for a regressor);
* ``y_mean``, ``y_scale``  a regressor's target scaling (when it has one);
* ``mean``, ``scale``  the input scaling;
* ``W0``, ``W1``, ...  the weight matrices (n_out, 1 + n_in), float32;
* ``V0``, ``V1``, ...  the optimiser's state (sgd: the velocity, i.e. the
  last step's lr G; rmsprop: the mean square; adam: the first moment), so
  training can continue;
* ``S0``, ``S1``, ...  adam's second moments (adam only).

Version 2 added the optimiser (its hyperparameters, ``optimizer_steps`` in
the header and the ``S`` arrays); version 1 files, all sgd, still load.
Four optional header fields came later within version 2, and files without
them load as before: ``samples_seen`` (the training samples the steps used),
``next_rate`` (the adaptive schedule's rate for the next epoch),
``plateau`` (the no-improvement rule's best value, its epoch and count, and
with ``samples_per_epoch`` the pool of the epoch in progress) and
``feature_names`` (a data frame's column names seen in fit).  Version 3
added ``estimator`` and ``targets`` to the header, for regressors and
multilabel classifiers; a file without them is a single-label classifier.

It is read with ``allow_pickle=False``, and every shape and dtype is checked
against the header, so a crafted file cannot run code; anything inconsistent
raises :class:`ModelFileError` naming the problem.  Files are written to a
temporary name in the target folder and renamed into place, so a reader
never sees a half-written file.
"""

import json
import math
import os
import tempfile
import tokenize
import zipfile
import zlib

from typing import NamedTuple

import numpy as np

from ._network import NetworkState
from ._registry import optimizer_kind

__all__ = ["save", "read", "ModelFile", "ModelFileError", "FORMAT_VERSION"]

#: Version of the file layout written by :func:`save`.
FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
#: The estimators a file can hold, and the kinds of targets.
ESTIMATORS = ("MLPClassifier", "MLPRegressor")
TARGET_KINDS = ("labels", "multilabel", "continuous")
_MAGIC = "fastmlp-model"


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, of another version or inconsistent."""


class ModelFile(NamedTuple):
    """What a model file holds: hyperparameters, the network and its scaling."""

    params: dict          # the estimator's get_params(), as JSON data
    state: NetworkState   # layers, weights, optimiser state, counts, last rate
    classes: np.ndarray   # the output nodes' labels (None for a regressor)
    mean: np.ndarray      # input scaling, float32
    scale: np.ndarray
    feature_names: list = None   # column names seen in fit, or None
    estimator: str = "MLPClassifier"
    targets: str = "labels"      # "labels", "multilabel" or "continuous"
    target_scaling: tuple = None  # a regressor's (y_mean, y_scale), or None


def save(path, params, state, classes, mean, scale, feature_names=None,
         estimator="MLPClassifier", targets="labels", target_scaling=None):
    """Write hyperparameters ``params`` (JSON-ready), a network ``state``, the
    class labels (None for continuous targets), the input scaling and the
    feature names (or None) of an ``estimator`` with ``targets`` of a kind in
    :data:`TARGET_KINDS` to ``path`` (.npz), atomically."""
    path = os.fspath(path)
    if estimator not in ESTIMATORS or targets not in TARGET_KINDS:
        raise ValueError(f"cannot save a {estimator} with {targets} targets")
    if classes is not None:
        classes = np.asarray(classes)
        if classes.dtype.kind not in "biufU":
            raise ValueError(f"class labels of dtype {classes.dtype} cannot be saved without "
                             "pickle; use numbers or strings")
    header = {
        "magic": _MAGIC,
        "format_version": FORMAT_VERSION,
        "estimator": estimator,
        "targets": targets,
        "params": params,
        "layers": list(state.layers),
        "n_iter": int(state.epochs),
        "learning_rate_": float(state.learning_rate if state.learning_rate is not None
                                else params["learning_rate"]),
        "optimizer_steps": int(state.step),
        "samples_seen": int(state.samples),
    }
    if state.next_rate is not None:
        header["next_rate"] = float(state.next_rate)
    if state.plateau is not None:
        header["plateau"] = _plain_plateau(state.plateau)
    if feature_names is not None:
        header["feature_names"] = [str(v) for v in feature_names]
    arrays = {
        "__fastmlp__": np.frombuffer(json.dumps(header).encode(), np.uint8),
        "mean": mean, "scale": scale,
    }
    if classes is not None:
        arrays["classes"] = classes
    if target_scaling is not None:
        arrays["y_mean"], arrays["y_scale"] = (np.asarray(a, np.float64)
                                               for a in target_scaling)
    for i, (W, V) in enumerate(zip(state.weights, state.state1)):
        arrays[f"W{i}"] = W
        arrays[f"V{i}"] = V
    for i, S in enumerate(state.state2 or ()):
        arrays[f"S{i}"] = S
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".npz.tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain
        # open() would, so the replaced file is as readable as any other
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _umask():
    """The process's umask, read without changing it where the OS allows
    (Linux /proc), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_plateau(plateau):
    best, epoch = plateau.get("best"), plateau.get("best_epoch")
    plain = dict(key=str(plateau["key"]), best=None if best is None else float(best),
                 best_epoch=None if epoch is None else int(epoch), count=int(plateau["count"]))
    if "pool_mark" in plateau:         # samples_per_epoch: the epoch being pooled
        plain.update(pool_sum=float(plateau["pool_sum"]), pool_n=int(plateau["pool_n"]),
                     pool_mark=int(plateau["pool_mark"]))
    return plain


def _optional(header, name, layers):
    """The optional header fields, checked: (samples, next_rate, plateau,
    feature_names), each None when absent."""
    samples = header.get("samples_seen")
    samples = None if samples is None else _count(samples, "samples_seen")
    rate = header.get("next_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not math.isfinite(rate) or rate <= 0):
        raise ValueError(f"next_rate {rate!r} is not a finite number > 0")
    plateau = header.get("plateau")
    if plateau is not None:
        if not isinstance(plateau, dict) or plateau.get("key") not in ("train_loss",
                                                                      "val_score"):
            raise ValueError(f"plateau {plateau!r} is not a no-improvement rule's state")
        best, epoch = plateau.get("best"), plateau.get("best_epoch")
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))
                                 or not math.isfinite(best)):
            raise ValueError(f"plateau best {best!r} is not a finite number")
        pool = {}
        if "pool_mark" in plateau:
            total = plateau.get("pool_sum")
            if isinstance(total, bool) or not isinstance(total, (int, float)) or \
                    not math.isfinite(total):
                raise ValueError(f"plateau pool_sum {total!r} is not a finite number")
            pool = dict(pool_sum=float(total), pool_n=_count(plateau.get("pool_n"),
                                                             "plateau pool_n"),
                        pool_mark=_count(plateau.get("pool_mark"), "plateau pool_mark"))
        plateau = dict(key=plateau["key"], best=None if best is None else float(best),
                       best_epoch=None if epoch is None else _count(epoch, "plateau best_epoch"),
                       count=_count(plateau.get("count"), "plateau count"), **pool)
    names = header.get("feature_names")
    if names is not None and (not isinstance(names, list) or not layers
                              or len(names) != layers[0]
                              or not all(isinstance(v, str) for v in names)):
        raise ValueError(f"feature_names must be {layers[:1]} strings")
    return samples, (None if rate is None else float(rate)), plateau, names


def _count(value, what):
    """A JSON integer >= 0 (not a bool, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what}: {value!r} is not an integer >= 0")
    return value


def _get(npz, key, name):
    if key not in npz.files:
        raise ModelFileError(f"{name}: missing array {key!r}")
    try:
        return npz[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{name}: array {key!r} is corrupt: {exc}") from exc


# What a damaged zip or .npy inside it can raise while being read; any of
# these becomes a ModelFileError (the fuzz test flips bytes to find them).
# NumPy parses a .npy header with ast.literal_eval, after tokenize: a flipped
# byte there can raise tokenize.TokenError (not a SyntaxError) on Python 3.11.
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                NotImplementedError, RuntimeError, KeyError, TypeError, IndexError,
                OverflowError, MemoryError, UnicodeDecodeError, SyntaxError,
                tokenize.TokenError)


def read(path):
    """Read a file written by :func:`save`; returns a :class:`ModelFile`.

    Raises FileNotFoundError for a missing file and ModelFileError for
    anything else that is not a valid model file; never unpickles.  The
    hyperparameters are returned as stored: the estimator checks them."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such model file")
    try:
        return _read(name)
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{name}: not a readable fastmlp model file "
                             f"({type(exc).__name__}: {exc})") from exc


def _read(name):
    npz = np.load(name, allow_pickle=False)
    if not hasattr(npz, "files"):
        raise ModelFileError(f"{name}: a single array, not a fastmlp model file")
    with npz:
        raw = _get(npz, "__fastmlp__", name)
        try:
            header = json.loads(raw.astype(np.uint8).tobytes().decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{name}: unreadable header: {exc}") from exc
        if not isinstance(header, dict) or header.get("magic") != _MAGIC:
            raise ModelFileError(f"{name}: not a fastmlp model file")
        version = header.get("format_version")
        if version not in _READABLE_VERSIONS:
            raise ModelFileError(f"{name}: format version {version!r}, this fastmlp "
                                 f"reads versions {list(_READABLE_VERSIONS)}")
        try:
            layers = [_count(n, "layers") for n in header["layers"]]
            params = dict(header["params"])
            n_iter = _count(header["n_iter"], "n_iter")
            lr_now = header["learning_rate_"]
            if isinstance(lr_now, bool) or not isinstance(lr_now, (int, float)) \
                    or not math.isfinite(lr_now) or lr_now < 0:
                raise ValueError(f"learning_rate_ {lr_now!r} is not a finite number >= 0")
            lr_now = float(lr_now)
            steps = _count(header["optimizer_steps"], "optimizer_steps") if version >= 2 else None
            samples, next_rate, plateau, names = _optional(header, name, layers)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{name}: header lacks or garbles {exc}") from exc
        if len(layers) < 2 or min(layers) < 1:
            raise ModelFileError(f"{name}: bad layer sizes {layers}")
        hidden = params.get("hidden_layer_sizes")
        hidden = [hidden] if isinstance(hidden, int) and not isinstance(hidden, bool) else hidden
        if isinstance(hidden, (list, tuple)) and list(hidden) != layers[1:-1]:
            raise ModelFileError(f"{name}: hidden layers {layers[1:-1]} disagree with the "
                                 f"hyperparameters {list(hidden)}")
        estimator = header.get("estimator", "MLPClassifier")
        targets = header.get("targets", "labels")
        if estimator not in ESTIMATORS or targets not in TARGET_KINDS or \
                (estimator == "MLPRegressor") != (targets == "continuous"):
            raise ModelFileError(f"{name}: header names an unknown model: {estimator!r} with "
                                 f"{targets!r} targets")
        # version 1 files are all sgd, which was then the default
        params.setdefault("optimizer", "sgd")
        optimizer = params["optimizer"]
        try:
            n_states = optimizer_kind(optimizer).n_states
        except ValueError as exc:
            raise ModelFileError(f"{name}: bad hyperparameters: {exc}") from exc
        classes = None if targets == "continuous" else _get(npz, "classes", name)
        mean, scale = _get(npz, "mean", name), _get(npz, "scale", name)
        if classes is not None and (classes.ndim != 1 or classes.shape[0] != layers[-1]
                                    or classes.dtype.kind not in "biufU"):
            raise ModelFileError(f"{name}: classes must be {layers[-1]} numbers or strings, "
                                 f"got {classes.dtype} {classes.shape}")
        for key, arr in (("mean", mean), ("scale", scale)):
            if arr.shape != (layers[0],) or arr.dtype != np.float32:
                raise ModelFileError(f"{name}: {key} must be float32 of shape ({layers[0]},), "
                                     f"got {arr.dtype} {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ModelFileError(f"{name}: {key} holds NaN or infinity")
        if np.any(scale == 0):
            raise ModelFileError(f"{name}: scale holds zeros")
        if steps is None:      # version 1: sgd, one step per batch, count unknown
            steps = 0
        kinds = "WVS" if n_states == 2 else "WV"
        found = {k: [] for k in kinds}
        for i, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:])):
            for k in kinds:
                key = f"{k}{i}"
                arr = _get(npz, key, name)
                if arr.shape != (n_out, 1 + n_in) or arr.dtype != np.float32:
                    raise ModelFileError(f"{name}: {key} must be float32 of shape "
                                         f"({n_out}, {1 + n_in}), got {arr.dtype} {arr.shape}")
                if not np.all(np.isfinite(arr)):
                    raise ModelFileError(f"{name}: {key} holds NaN or infinity")
                found[k].append(np.ascontiguousarray(arr))
        target_scaling = None
        if targets == "continuous" and "y_mean" in npz.files:
            target_scaling = tuple(_get(npz, k, name) for k in ("y_mean", "y_scale"))
            for key, arr in zip(("y_mean", "y_scale"), target_scaling):
                if arr.shape != (layers[-1],) or arr.dtype != np.float64 \
                        or not np.all(np.isfinite(arr)):
                    raise ModelFileError(f"{name}: {key} must be {layers[-1]} finite float64 "
                                         f"values, got {arr.dtype} {arr.shape}")
            if np.any(target_scaling[1] == 0):
                raise ModelFileError(f"{name}: y_scale holds zeros")
        expected = {"__fastmlp__", "mean", "scale"} | ({"classes"} if classes is not None else set()) \
            | ({"y_mean", "y_scale"} if target_scaling is not None else set())
        extra = set(npz.files) - expected \
            - {f"{k}{i}" for i in range(len(layers) - 1) for k in kinds}
        if extra:
            raise ModelFileError(f"{name}: unexpected arrays {sorted(extra)}")
    state = NetworkState(tuple(layers), found["W"], optimizer, found["V"],
                         found["S"] if n_states == 2 else None, steps, n_iter, lr_now,
                         samples or 0, next_rate, plateau)
    return ModelFile(params, state, classes, mean, scale, names, estimator, targets,
                     target_scaling)
