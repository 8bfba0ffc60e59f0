"""The package's structure: what the restructuring promises, checked.

* every backend implements :class:`fastmlp.backends.Backend` in full;
* the two backend modules offer the same kernels with the same signatures;
* the registry's C ids are the C header's enums, and a registry that drifts
  from them is refused at import;
* the NumPy backend, and scaling, work without the compiled extension.
"""

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import MLPClassifier, NetworkState, _registry, _scaling, backends
from fastmlp.backends import BACKENDS, PHASES, Backend, BackendConfig

from _reference import random_problem

ROOT = Path(fastmlp.__file__).resolve().parent.parent   # where the tested fastmlp is
CHECKOUT = Path(__file__).resolve().parent.parent       # csrc/ is not installed

#: The kernels every backend module offers (fastmlp/backends/__init__.py).
KERNELS = ("forward_layer", "output_delta", "hidden_delta", "gradient_update",
           "regularization_cost", "network_outputs", "sparse_forward_layer",
           "sparse_gradient_update")


# ------------------------------------------------------------ the interface
def test_interface_declares_what_the_trainer_uses():
    assert Backend.__abstractmethods__ == {"train_batch", "step", "phase_seconds",
                                           "reset_phases", "last_step", "thread_plan",
                                           "predict_proba"}


def _method_params(member):
    """Parameter names of a method or staticmethod found by getattr_static."""
    func = member.__func__ if isinstance(member, staticmethod) else member
    return list(inspect.signature(func).parameters)


@pytest.mark.parametrize("member", sorted(Backend.__abstractmethods__))
def test_every_backend_class_provides_every_abstract_member(backend, member):
    """Present, of the same kind (property, staticmethod or method) and, for
    a callable, with the interface's parameter names."""
    cls = backends.backend_class(backend)
    assert issubclass(cls, Backend)
    want = inspect.getattr_static(Backend, member)
    have = inspect.getattr_static(cls, member)
    assert not getattr(have, "__isabstractmethod__", False), f"{member} is still abstract"
    if isinstance(want, property):
        assert inspect.isdatadescriptor(have), f"{member}: not a property ({type(have)})"
    elif isinstance(want, staticmethod):
        assert isinstance(have, staticmethod), f"{member}: not a staticmethod ({type(have)})"
        assert _method_params(have) == _method_params(want)
    else:
        assert callable(have) and not isinstance(have, (staticmethod, classmethod))
        assert _method_params(have) == _method_params(want)


def test_every_backend_instance_is_a_backend_and_behaves_as_documented(backend):
    layers = (6, 5, 3)
    weights, X, Y = random_problem(layers, batch=12, seed=4)
    state = NetworkState(layers, [W.copy() for W in weights])
    config = BackendConfig(batch_size=4, n_threads=1, l2=0.01)
    cls = backends.backend_class(backend)
    be = cls(X, Y, state, config)
    assert isinstance(be, Backend)
    assert be.name == backend and be.partial_update is False
    # train_batch: (loss, reg, n correct), and the step count
    cost, reg, correct = be.train_batch(np.arange(4, dtype=np.intp), 0.1)
    assert np.isfinite(cost) and reg > 0 and 0 <= correct <= 4
    assert be.step == 1 and not np.array_equal(state.weights[0], weights[0])
    # last_step: one (n_out, 1 + n_in) array per matrix, what was subtracted
    steps = be.last_step()
    assert [s.shape for s in steps] == [W.shape for W in weights]
    for W0, W1, S in zip(weights, state.weights, steps):
        np.testing.assert_allclose(W0 - W1, S, rtol=1e-5, atol=1e-7)
    # step is settable (the trainer rewinds it), never below 0
    be.step = 0
    assert be.step == 0
    with pytest.raises(ValueError, match="step"):
        be.step = -1
    # phase timers
    assert set(be.phase_seconds) == set(PHASES)
    be.reset_phases()
    assert all(v == 0.0 for v in be.phase_seconds.values())
    # the static members work without an instance
    plan = cls.thread_plan(1)
    assert isinstance(plan, tuple) and len(plan) == 2
    out = np.empty((12, 3), np.float32)
    assert cls.predict_proba(X, state.weights, out, config) is out
    want = np.empty_like(out)
    assert backends.module(backend).network_outputs(X, state.weights, want) is want
    np.testing.assert_array_equal(out, want)


# ---------------------------------------------------------- the kernel twins
def _docstring_params(func):
    """Parameter names from the first docstring line that Cython's
    embedsignature writes: ``name(type arg, arg=default, ...)``."""
    first = func.__doc__.strip().splitlines()[0]
    m = re.fullmatch(rf"{func.__name__}\((.*)\)", first.strip())
    assert m, f"{func.__name__}: no embedded signature in {first!r}"
    params, depth, cur = [], 0, ""
    for ch in m.group(1):                # split at commas outside brackets
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            params.append(cur)
            cur = ""
        else:
            cur += ch
    params.append(cur)
    return [p.split("=")[0].split()[-1] for p in params if p.strip()]


def test_backend_modules_export_the_same_kernels():
    mods = {name: backends.module(name) for name in BACKENDS}
    for name, mod in mods.items():
        exported = set(mod.__all__)
        assert set(KERNELS) <= exported, f"{name} lacks {set(KERNELS) - exported}"
        assert all(callable(getattr(mod, k)) for k in KERNELS)
        assert issubclass(mod.Backend, Backend)
    # every function the NumPy reference exports has a compiled twin
    ref = mods["numpy"]
    assert {k for k in ref.__all__ if inspect.isfunction(getattr(ref, k))} == set(KERNELS)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_twins_have_the_same_signature(kernel):
    """The same parameter names in the same order; every default of the
    NumPy twin is the compiled one's too (the compiled kernels also give the
    unused scratch ``tmp`` a default of None)."""
    ref = inspect.signature(getattr(backends.module("numpy"), kernel))
    compiled = getattr(backends.module("compiled"), kernel)
    assert _docstring_params(compiled) == list(ref.parameters)
    try:
        sig = inspect.signature(compiled)
    except (TypeError, ValueError):       # pragma: no cover - Cython without binding
        return
    assert list(sig.parameters) == list(ref.parameters)
    for name, p in ref.parameters.items():
        q = sig.parameters[name]
        assert q.kind == p.kind, name
        if p.default is not inspect.Parameter.empty:
            assert q.default == p.default, name


# ------------------------------------------------------------------ registry
def _header_enums():
    text = (CHECKOUT / "csrc" / "fastmlp_elementwise.h").read_text()
    enums = {}
    for body in re.findall(r"enum\s*\{([^}]*)\}", text):
        for name, value in re.findall(r"(FM_\w+)\s*=\s*(\d+)", body):
            enums[name] = int(value)
    return enums


def test_registry_ids_equal_the_c_header_enums():
    """Read from csrc/fastmlp_elementwise.h itself, independently of the
    compiled module's own check."""
    enums = _header_enums()
    for table in (_registry.ACTIVATIONS, _registry.OUTPUTS, _registry.OPTIMIZERS):
        for name, entry in table.items():
            assert entry.c_id == enums["FM_" + name.upper()], name


def test_compiled_import_check_passes_and_detects_a_tampered_registry(monkeypatch):
    from fastmlp.backends import _layers
    assert _layers._check_registry() is None
    tanh = _registry.ACTIVATIONS["tanh"]
    monkeypatch.setitem(_registry.ACTIVATIONS, "tanh", tanh._replace(c_id=tanh.c_id + 7))
    with pytest.raises(ImportError, match="disagree"):
        _layers._check_registry()
    monkeypatch.undo()
    assert _layers._check_registry() is None


@pytest.mark.parametrize("table,key,change", [
    ("OUTPUTS", "softmax", dict(c_id=0)),                       # softmax run as a sigmoid
    ("OUTPUTS", "identity", dict(c_id=0)),                      # regression squashed
    ("OUTPUTS", "identity", dict(c_id=3)),                      # ... or run as a softmax
    ("OPTIMIZERS", "adam", dict(c_id=1)),                       # adam run as rmsprop
    ("ACTIVATIONS", "gelu", None),                              # a name the C code lacks
])
def test_registry_check_refuses_every_kind_of_drift(monkeypatch, table, key, change):
    from fastmlp.backends import _layers
    entries = getattr(_registry, table)
    if change is None:
        monkeypatch.setitem(entries, key, _registry.Activation(key, 9, "?"))
    else:
        monkeypatch.setitem(entries, key, entries[key]._replace(**change))
    with pytest.raises(ImportError, match="disagree"):
        _layers._check_registry()


# ------------------------------------------------- without the extension
_NO_EXTENSION = r"""
import importlib.abc, json, sys

BLOCKED = {"fastmlp.backends._compiled", "fastmlp.backends._layers",
           "fastmlp.backends._output", "fastmlp.backends._step",
           "fastmlp.backends._sparse_layer", "fastmlp.backends._sparse_batch",
           "fastmlp.backends._sparse_kernels", "fastmlp.backends._arrays"}
tried = []


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in BLOCKED:
            tried.append(name)
            raise ImportError(f"no compiled extension here ({name} blocked)")
        return None


sys.meta_path.insert(0, Block())

import numpy as np
import fastmlp
from fastmlp import MLPClassifier

(X, y), (Xt, yt) = fastmlp.datasets.load_digits()
m = MLPClassifier(backend="numpy", hidden_layer_sizes=(8,), epochs=2, batch_size=32,
                  scaling="standard", random_state=0).fit(X, y)
pred = m.predict(Xt)
try:
    MLPClassifier(backend="compiled", hidden_layer_sizes=(8,), epochs=1).fit(X, y)
    compiled_error = None
except ImportError as exc:
    compiled_error = str(exc)
print(json.dumps({
    "build_info": fastmlp.build_info(),
    "pred": pred.tolist(), "score": m.score(Xt, yt),
    "coefs": [W.tolist() for W in m.coefs_],
    "mean": m.mean_.tolist(), "scale": m.scale_.tolist(),
    "compiled_error": compiled_error,
    "loaded": sorted(k for k in sys.modules if k in BLOCKED), "tried": sorted(set(tried)),
}))
"""


def test_numpy_backend_works_without_the_compiled_extension():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    run = subprocess.run([sys.executable, "-c", _NO_EXTENSION], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["build_info"]["compiled"] is False
    assert res["loaded"] == [] and "fastmlp.backends._compiled" in res["tried"]
    assert res["compiled_error"] is not None and "backend='numpy'" in res["compiled_error"]
    (X, y), (Xt, yt) = fastmlp.datasets.load_digits()
    pred = np.array(res["pred"])
    assert pred.shape == yt.shape and np.isin(pred, np.unique(y)).all()
    # the same fit as with the extension present: the scaler's NumPy fallback
    # gives the compiled statistics, and the NumPy backend never used the rest
    here = MLPClassifier(backend="numpy", hidden_layer_sizes=(8,), epochs=2, batch_size=32,
                         scaling="standard", random_state=0).fit(X, y)
    np.testing.assert_array_equal(np.float32(res["mean"]), here.mean_)
    np.testing.assert_array_equal(np.float32(res["scale"]), here.scale_)
    for W, V in zip(res["coefs"], here.coefs_):
        np.testing.assert_array_equal(np.float32(W), V)
    np.testing.assert_array_equal(pred, here.predict(Xt))


# ------------------------------------------------- scaling without it too
def _scaling_data(dtype, n=9000, seed=0):
    """Columns a scaler gets wrong easily: an offset mean, a constant, a
    large constant, half zeros, a spread within float32 rounding of 1e6."""
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        X = rng.integers(0, 256, (n, 5)).astype(np.uint8)
        X[:, 1] = 7
        X[::2, 3] = 0
        return X
    X = rng.normal(50.0, 3.0, (n, 6))
    X[:, 1] = 7.0
    X[:, 2] = 1e6
    X[::2, 3] = 0.0
    X[:, 4] = 1e6 + rng.normal(0, 1e-3, n)
    return np.ascontiguousarray(X.astype(dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_numpy_column_mean_var_equals_the_compiled_one(dtype):
    column_mean_var = backends.module("compiled").column_mean_var
    X = _scaling_data(dtype)
    for rows in (4096, 7):                       # several blocks, and many
        mean, var = _scaling._column_mean_var_numpy(X, rows=rows)
        want_mean, want_var = column_mean_var(X)
        np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
        np.testing.assert_allclose(var, want_var, rtol=1e-12)
    with pytest.raises(ValueError, match="at least one row"):
        _scaling._column_mean_var_numpy(np.empty((0, 3), dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_standard_scaler_stats_fallback_equals_standardscaler(dtype, monkeypatch):
    """With the compiled module unimportable, standard_scaler_stats uses the
    NumPy loop and still gives StandardScaler's statistics of the float32
    values the network trains on."""
    from sklearn.preprocessing import StandardScaler
    calls = []
    fallback = _scaling._column_mean_var_numpy

    def spy(X, *args, **kw):
        calls.append(X.dtype)
        return fallback(X, *args, **kw)

    monkeypatch.setattr(_scaling, "_column_mean_var_numpy", spy)
    monkeypatch.setitem(sys.modules, "fastmlp.backends._compiled", None)   # ImportError
    X = _scaling_data(dtype)
    mean, scale = _scaling.standard_scaler_stats(X)
    assert calls == [np.dtype(dtype)]
    ref = StandardScaler().fit(X.astype(np.float32))
    np.testing.assert_allclose(mean, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(scale, ref.scale_, rtol=1e-6)
    assert scale[1] == 1.0                       # the constant column
