"""Reliability: memory-mapped data, every input layout and dtype, bad inputs.

* Training from an ``np.memmap`` (``np.load(mmap_mode=...)`` or ``np.memmap``)
  with more rows than a batch gives the weights of a fit on the same data in
  memory, bit for bit, and leaves the file as it was.
* float64, int, F-ordered, sliced, reversed, read-only and memory-mapped X
  train to the weights of a plain C-ordered float64 copy, through fit,
  partial_fit, predict, predict_proba and score, and none of these calls
  changes the caller's X or y (hashed before and after).  The model trains on
  the float32 value of every input: a float64 or an int is rounded to the
  nearest float32 once, whether the model reads the caller's C-ordered array
  (the compiled gather casts each value) or makes its one float32 copy
  (``astype``), so both routes see the same numbers, and so do the scaling
  statistics (taken on the float32 values).  Integers above 2**24 and float64
  values with more than 24 significant bits are included to show it.
* Bad inputs and parameters raise ValueError or TypeError naming the problem.
"""

import hashlib

import numpy as np
import pytest

from fastmlp._scaling import training_source

from _reference import blog

N, F = 240, 12
BATCH = 32


def model(be, **kw):
    """A small quick model on backend ``be``; ``kw`` overrides (even the backend)."""
    params = dict(hidden_layer_sizes=(9, 7), epochs=3, batch_size=BATCH,
                  learning_rate=0.05, random_state=0, backend=be)
    params.update(kw)
    return blog(**params)


def digest(a):
    """Contents and layout of an array: its bytes in C order, shape, strides,
    dtype and writeable flag."""
    a = np.asarray(a)
    h = hashlib.sha256(np.ascontiguousarray(a).tobytes())
    h.update(repr((a.shape, a.strides, a.dtype.str, a.flags.writeable)).encode())
    return h.hexdigest()


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assert_same_weights(a, b):
    assert len(a.coefs_) == len(b.coefs_)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)


def labels(X):
    """Three classes from the first two columns (learnable, all present)."""
    Xf = np.asarray(X, np.float64)
    a = Xf[:, 0] > np.median(Xf[:, 0])
    b = Xf[:, 1] > np.median(Xf[:, 1])
    return (a.astype(np.int64) + b)


# ----------------------------------------------------------------- B: memmap

def pixels(n=N, f=F, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, f), dtype=np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("opener", ["np.load r", "np.load c", "np.memmap r", "np.memmap r+"])
def test_memmap_trains_as_in_memory_and_leaves_the_file(tmp_path, backend, dtype, opener):
    X = pixels().astype(dtype)
    if dtype == np.float32:
        X = X / np.float32(7.0)           # not integers: a real float32 file
    y = labels(X)
    if opener.startswith("np.load"):
        path = tmp_path / "X.npy"
        np.save(path, X)
        Xm = np.load(path, mmap_mode=opener.split()[1])
    else:
        path = tmp_path / "X.raw"
        X.tofile(path)
        Xm = np.memmap(path, dtype=dtype, mode=opener.split()[1], shape=X.shape)
    ypath = tmp_path / "y.npy"
    np.save(ypath, y)
    ym = np.load(ypath, mmap_mode="r")
    before, ybefore = file_digest(path), file_digest(ypath)
    assert isinstance(Xm, np.memmap) and Xm.shape[0] > BATCH

    m = model(backend).fit(Xm, ym)
    ref = model(backend).fit(X, y)
    assert_same_weights(m, ref)
    np.testing.assert_array_equal(m.predict_proba(Xm), ref.predict_proba(X))
    assert m.score(Xm, ym) == ref.score(X, y)
    m.partial_fit(Xm, ym)
    ref.partial_fit(X, y)
    assert_same_weights(m, ref)
    del Xm, ym
    assert file_digest(path) == before
    assert file_digest(ypath) == ybefore


def test_memmap_is_read_in_place_not_copied(tmp_path):
    """The compiled backend reads a C-ordered uint8/float32/float64 memmap
    where it lies (what lets data larger than memory train); anything else
    becomes one float32 copy."""
    X = pixels()
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert training_source(Xm) is Xm
    src = training_source(np.asfortranarray(Xm))
    assert src.dtype == np.float32 and src.flags.c_contiguous


# ------------------------------------------------- C: layouts and dtypes

def base_data(kind):
    """(X, y) of the given dtype kind, C-ordered, with 2 * N rows (slicing
    layouts take every other row)."""
    rng = np.random.default_rng(2)
    if kind == "float64":
        # most of these values are not float32 numbers: each is rounded once
        X = rng.normal(1.0, 3.0, size=(2 * N, F))
    elif kind == "float32":
        X = rng.normal(1.0, 3.0, size=(2 * N, F)).astype(np.float32)
    elif kind == "int64":
        X = rng.integers(-50, 200, size=(2 * N, F))
    elif kind == "int64-large":
        # beyond 2**24 an int is not exactly a float32: rounding happens here
        X = rng.integers(-2**40, 2**40, size=(2 * N, F))
    elif kind == "int32":
        X = rng.integers(-1000, 1000, size=(2 * N, F)).astype(np.int32)
    elif kind == "uint8":
        X = rng.integers(0, 256, size=(2 * N, F)).astype(np.uint8)
    else:
        raise AssertionError(kind)
    return X, labels(X)


def layout(X, y, kind, tmp_path):
    """X and y in the given layout; y follows X's rows."""
    if kind == "C":
        return X[:N].copy(), y[:N].copy()
    if kind == "F":
        return np.asfortranarray(X[:N]), y[:N].copy()
    if kind == "rows-sliced":
        return X[::2], y[::2]                      # non-contiguous rows, y too
    if kind == "cols-sliced":
        return X[:N, ::-1][:, 1::2], y[:N]          # every other column, reversed
    if kind == "reversed":
        return X[N - 1::-1], y[N - 1::-1]           # negative row stride
    if kind == "read-only":
        Xr, yr = X[:N].copy(), y[:N].copy()
        Xr.flags.writeable = False
        yr.flags.writeable = False
        return Xr, yr
    if kind == "memmap":
        np.save(tmp_path / "X.npy", X[:N])
        np.save(tmp_path / "y.npy", y[:N])
        return (np.load(tmp_path / "X.npy", mmap_mode="r"),
                np.load(tmp_path / "y.npy", mmap_mode="r"))
    raise AssertionError(kind)


DTYPES = ["float64", "float32", "int64", "int64-large", "int32", "uint8"]
LAYOUTS = ["C", "F", "rows-sliced", "cols-sliced", "reversed", "read-only", "memmap"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_layout_and_dtype_train_as_a_float64_copy_and_are_not_modified(
        tmp_path, backend, dtype, kind):
    X, y = layout(*base_data(dtype), kind, tmp_path)
    hx, hy = digest(X), digest(y)
    X64 = np.array(X, dtype=np.float64, order="C")       # the plain reference copy
    y64 = np.array(y)

    m = model(backend).fit(X, y, validation_data=(X, y))
    ref = model(backend).fit(X64, y64, validation_data=(X64, y64))
    assert_same_weights(m, ref)
    np.testing.assert_array_equal(m.mean_, ref.mean_)
    np.testing.assert_array_equal(m.scale_, ref.scale_)
    assert m.history_.test_acc == ref.history_.test_acc
    np.testing.assert_array_equal(m.predict(X), ref.predict(X64))
    np.testing.assert_array_equal(m.predict_proba(X), ref.predict_proba(X64))
    assert m.score(X, y) == ref.score(X64, y64)
    m.partial_fit(X, y)
    ref.partial_fit(X64, y64)
    assert_same_weights(m, ref)

    # partial_fit from scratch (scaling fixed by its first X)
    p = model(backend).partial_fit(X, y, classes=[0, 1, 2])
    pref = model(backend).partial_fit(X64, y64, classes=[0, 1, 2])
    assert_same_weights(p, pref)

    assert digest(X) == hx, "X was modified"
    assert digest(y) == hy, "y was modified"


def test_float64_input_is_rounded_to_float32_once(backend):
    """Why a float64 X trains exactly as its float32 rounding: both routes
    (the C-ordered array read in place, an F-ordered one copied) see the same
    float32 numbers as X.astype(float32)."""
    X, y = base_data("float64")
    X, y = X[:N], y[:N]
    assert not np.array_equal(X, X.astype(np.float32))   # rounding does happen
    m64 = model(backend).fit(X, y)
    m32 = model(backend).fit(X.astype(np.float32), y)
    mF = model(backend).fit(np.asfortranarray(X), y)
    assert_same_weights(m64, m32)
    assert_same_weights(mF, m32)


# ----------------------------------------------------------- D: bad inputs

def data():
    X, y = base_data("float64")
    return X[:N].copy(), y[:N].copy()


def with_value(value, row=3, col=5):
    X, y = data()
    X[row, col] = value
    return X, y


@pytest.mark.parametrize("value,name", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
@pytest.mark.parametrize("call", ["fit", "partial_fit", "predict", "predict_proba", "score"])
def test_nan_and_inf_in_X_are_named(backend, value, name, call):
    Xbad, y = with_value(value)
    fitted = model(backend, epochs=1).fit(*data())
    calls = {
        "fit": lambda: model(backend).fit(Xbad, y),
        "partial_fit": lambda: fitted.partial_fit(Xbad, y),
        "predict": lambda: fitted.predict(Xbad),
        "predict_proba": lambda: fitted.predict_proba(Xbad),
        "score": lambda: fitted.score(Xbad, y),
    }
    with pytest.raises(ValueError, match=r"X contains NaN or infinity.*row 3, column 5"):
        calls[call]()
    Xv, yv = with_value(value)
    with pytest.raises(ValueError, match="validation X contains NaN or infinity"):
        model(backend).fit(*data(), validation_data=(Xv, yv))


@pytest.mark.parametrize("shape", [(), (N,), (N, 3, 4)])
def test_X_not_2d_is_named(backend, shape):
    X = np.zeros(shape)
    with pytest.raises(ValueError, match=r"X must be 2-D .*got shape"):
        model(backend).fit(X, np.arange(N) % 2)
    fitted = model(backend, epochs=1).fit(*data())
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        fitted.predict(X)


def test_ragged_X_is_named(backend):
    with pytest.raises(ValueError, match="X is not a rectangular 2-D array"):
        model(backend).fit([[1.0, 2.0], [3.0]], [0, 1])


@pytest.mark.parametrize("call", ["predict", "predict_proba", "partial_fit", "score",
                                  "validation"])
def test_wrong_feature_count_for_a_fitted_model(backend, call):
    X, y = data()
    fitted = model(backend, epochs=1).fit(X, y)
    Xs = X[:, :-1]
    calls = {
        "predict": lambda: fitted.predict(Xs),
        "predict_proba": lambda: fitted.predict_proba(Xs),
        "partial_fit": lambda: fitted.partial_fit(Xs, y),
        "score": lambda: fitted.score(Xs, y),
        "validation": lambda: model(backend).fit(X, y, validation_data=(Xs, y)),
    }
    prefix = "validation X" if call == "validation" else "X"
    with pytest.raises(ValueError, match=f"{prefix} has {F - 1} features, but "
                                         f"MLPClassifier is expecting {F} features"):
        calls[call]()


@pytest.mark.parametrize("case", ["short", "long", "nan", "inf", "object-nan", "none",
                                  "one-class", "2-D"])
def test_bad_y_is_named(backend, case):
    X, y = data()
    yf = y.astype(np.float64)
    bad, match = {
        "short": (y[:-1], f"y has {N - 1} labels but X has {N} samples"),
        "long": (np.r_[y, 0], f"y has {N + 1} labels but X has {N} samples"),
        "nan": (np.where(np.arange(N) == 4, np.nan, yf), "y contains NaN"),
        "inf": (np.where(np.arange(N) == 4, np.inf, yf), "y contains NaN or infinity"),
        # string labels with a missing value, as pandas gives them
        "object-nan": (np.array(["a", np.nan] + ["b"] * (N - 2), dtype=object),
                       "y contains NaN"),
        "none": (np.array(["a", None] + ["b"] * (N - 2), dtype=object), "y contains None"),
        "one-class": (np.full(N, 7), "y has one class only"),
        # two columns make a multilabel indicator matrix, which holds 0s and 1s
        "2-D": (np.c_[y, y], r"y is a multilabel indicator matrix, so every entry must be 0 "
                             r"or 1, but row \d+, column 0 holds 2"),
    }[case]
    with pytest.raises(ValueError, match=match):
        model(backend).fit(X, bad)
    with pytest.raises(ValueError, match=match):
        model(backend).partial_fit(X, bad, **({} if case == "one-class" else
                                               dict(classes=[0, 1, 2])))
    with pytest.raises(ValueError, match=match.replace("y ", "validation y ", 1)
                       if case not in ("one-class",) else "validation y contains labels"):
        model(backend).fit(X, y, validation_data=(X, bad))


def test_one_class_in_classes_for_partial_fit(backend):
    X, y = data()
    with pytest.raises(ValueError, match="one class only"):
        model(backend).partial_fit(X, np.zeros(N), classes=[0])


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_score_with_bad_y_is_named(backend):
    """score is scikit-learn's: its own messages, which name y_true and the counts."""
    X, y = data()
    fitted = model(backend, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[239, 240\]"):
        fitted.score(X, y[:-1])
    with pytest.raises(ValueError, match="y_true contains NaN"):
        fitted.score(X, np.where(np.arange(N) == 4, np.nan, y))


def test_unseen_labels_are_named(backend):
    X, y = data()
    fitted = model(backend, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"^y contains labels not seen in fit: \[9\]"):
        fitted.partial_fit(X, np.where(np.arange(N) == 0, 9, y))
    with pytest.raises(ValueError, match=r"validation y contains labels not seen in fit"):
        model(backend).fit(X, y, validation_data=(X, y + 5))


@pytest.mark.parametrize("X", [np.zeros((0, F)), np.zeros((N, 0))], ids=["no-rows", "no-cols"])
def test_empty_X_is_named(backend, X):
    with pytest.raises(ValueError, match=r"X (is empty|has 0 feature)"):
        model(backend).fit(X, np.zeros(X.shape[0]))
    fitted = model(backend, epochs=1).fit(*data())
    with pytest.raises(ValueError, match=r"X (is empty|has 0 feature)"):
        fitted.predict(X)


@pytest.mark.parametrize("kw,exc,match", [
    (dict(batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
    (dict(batch_size=-5), ValueError, "batch_size must be >= 1, got -5"),
    (dict(batch_size=2.0), TypeError, "batch_size must be an integer"),
    (dict(epochs=0), ValueError, "epochs must be >= 1, got 0"),
    (dict(epochs=-3), ValueError, "epochs must be >= 1, got -3"),
    (dict(l2=-0.1), ValueError, "l2 must be a finite number >= 0"),
    (dict(l1=-0.1), ValueError, "l1 must be a finite number >= 0"),
    (dict(learning_rate=-0.1), ValueError, "learning_rate must be a finite number > 0"),
    (dict(learning_rate=0.0), ValueError, "learning_rate must be a finite number > 0"),
    (dict(momentum=-0.1), ValueError, "momentum must be a finite number >= 0"),
    (dict(lr_decay=-0.1), ValueError, "lr_decay must be a finite number >= 0"),
    (dict(l2=float("nan")), ValueError, "l2 must be a finite number"),
    (dict(learning_rate=float("inf")), ValueError, "learning_rate must be a finite number"),
    (dict(l2="0.1"), TypeError, "l2 must be a number"),
    (dict(hidden_layer_sizes=(9, 0)), ValueError, "hidden_layer_sizes entries must be >= 1"),
    (dict(hidden_layer_sizes=-3), ValueError, "hidden_layer_sizes entries must be >= 1"),
    (dict(hidden_layer_sizes=(4.5,)), TypeError, "hidden_layer_sizes entries must be an integer"),
    (dict(hidden_layer_sizes="70"), TypeError, "hidden_layer_sizes must be a tuple of ints"),
    (dict(hidden_layer_sizes=None), TypeError, "hidden_layer_sizes must be a tuple of ints"),
    (dict(activation="swish"), ValueError, "activation must be one of"),
    (dict(output="linear"), ValueError, "output must be one of"),
    (dict(backend="gpu"), ValueError, "backend must be one of"),
])
def test_bad_parameters_are_named(backend, kw, exc, match):
    X, y = data()
    with pytest.raises(exc, match=match):
        model(backend, **kw).fit(X, y)
    with pytest.raises(exc, match=match):
        model(backend, **kw).partial_fit(X, y)


@pytest.mark.parametrize("kw,exc,match", [
    (dict(learning_rate=-1.0), ValueError, "learning_rate must be a finite number > 0"),
    (dict(learning_rate="0.1"), TypeError, "learning_rate must be a number"),
    (dict(l2=-1.0), ValueError, "l2 must be a finite number >= 0"),
    (dict(momentum=-1.0), ValueError, "momentum must be a finite number >= 0"),
])
def test_bad_parameter_set_between_partial_fits_is_named(backend, kw, exc, match):
    """partial_fit checks the parameters on every call, not on the first only:
    a negative learning rate set with set_params used to train (gradient
    ascent) on the NumPy backend, and to fail inside the compiled one with a
    message about "lr" and a decayed value."""
    X, y = data()
    m = model(backend).partial_fit(X, y)
    W = [w.copy() for w in m.coefs_]
    m.set_params(**kw)
    with pytest.raises(exc, match=match):
        m.partial_fit(X, y)
    for a, b in zip(W, m.coefs_):
        np.testing.assert_array_equal(a, b)


def test_batch_larger_than_the_data_is_one_batch_of_all_samples(backend):
    X, y = data()
    big = model(backend, batch_size=10 * N).fit(X, y)
    assert [c.shape for c in big.history_.batch_cost] == [(1,)] * 3
    exact = model(backend, batch_size=N).fit(X, y)
    assert_same_weights(big, exact)
    big.partial_fit(X, y)
    exact.partial_fit(X, y)
    assert_same_weights(big, exact)


@pytest.mark.parametrize("vd", ["X only", "quadruple", "None pair"])
def test_validation_data_not_a_pair_is_named(backend, vd):
    X, y = data()
    bad = {"X only": X, "quadruple": (X, y, y, y), "None pair": (None, y)}[vd]
    exc_match = (r"validation X is None" if vd == "None pair"
                 else r"validation_data must be a pair \(X_val, y_val\), or a triple")
    with pytest.raises(ValueError, match=exc_match):
        model(backend).fit(X, y, validation_data=bad)


def test_float_data_starting_inside_a_float_trains_like_aligned_data(backend):
    """A float32 X one byte into a buffer (not aligned) is copied once rather
    than read with misaligned loads, and trains to the same weights."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 7)).astype(np.float32)
    y = rng.integers(0, 3, 120)
    odd = np.ndarray(X.shape, np.float32, np.zeros(X.nbytes + 1, np.uint8), 1)
    odd[...] = X
    assert not odd.flags.aligned
    kw = dict(hidden_layer_sizes=(6,), epochs=2, batch_size=50, backend=backend,
              random_state=0)
    a = blog(**kw).fit(X, y)
    b = blog(**kw).fit(odd, y)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict_proba(odd), a.predict_proba(X))
