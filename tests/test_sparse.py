"""Sparse X at the estimator level: every entry point, exact scaling, bad input.

The first layer of a sparse fit folds the input scaling into its weights, so
a sparse fit equals the dense fit on the same data up to float32 summation
order: the weights after a few epochs agree at rtol 1e-4 for every
activation, output and optimizer.  Nothing here may densify X or write to
the caller's arrays.
"""

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import MaxAbsScaler

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._sparse import SparseRows, as_rows
from fastmlp.datasets import load_digits


class NoDense(sp.csr_matrix):
    """A CSR matrix that refuses to be densified."""

    def toarray(self, *a, **k):
        raise AssertionError("densified: toarray")

    def todense(self, *a, **k):
        raise AssertionError("densified: todense")

    def __array__(self, *a, **k):
        raise AssertionError("densified: __array__")


@pytest.fixture(scope="module")
def digits():
    (X, y), (Xt, yt) = load_digits()
    return X, y, Xt, yt


def digest(M):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes()
                                   for a in (M.data, M.indices, M.indptr))).hexdigest()


def quick(backend, **kw):
    params = dict(hidden_layer_sizes=(12,), epochs=3, batch_size=64, random_state=0,
                  backend=backend, n_threads=2)
    params.update(kw)
    return MLPClassifier(**params)


def close(a, b, rtol=1e-4, floor=1e-5):
    """Weights equal at ``rtol``, with an absolute floor of ``floor`` times the
    matrix's largest weight (sums in another order move a near-zero weight by
    about that much)."""
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=floor * np.abs(q).max())


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "csr_array", "csc_array",
                                  "coo_matrix"])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_every_entry_point_takes_any_sparse_kind(digits, backend, kind, index):
    X, y, Xt, yt = digits
    make = getattr(sp, kind)

    def sparse(M):
        S = make(M)
        if hasattr(S, "indices"):
            S.indices = S.indices.astype(index)
            S.indptr = S.indptr.astype(index)
        return S

    dense = quick(backend, scaling="standard").fit(X, y)
    m = quick(backend, scaling="standard").fit(sparse(X), y)
    close(dense, m)
    np.testing.assert_allclose(m.predict_proba(sparse(Xt)), dense.predict_proba(Xt),
                               rtol=1e-4, atol=1e-6)
    assert m.score(sparse(Xt), yt) == pytest.approx(dense.score(Xt, yt), abs=0.01)
    np.testing.assert_array_equal(m.predict(sparse(Xt)), m.predict(Xt))   # either input
    m.partial_fit(sparse(X), y)
    assert m.n_iter_ == 4


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output,optimizer", [("sigmoid", "sgd"), ("softmax", "adam"),
                                              ("softmax", "rmsprop")])
@pytest.mark.parametrize("scaling", ["standard", "minmax", "maxabs", "none"])
def test_sparse_fit_equals_the_dense_fit(digits, backend, activation, output, optimizer,
                                         scaling):
    X, y, _, _ = digits
    # a few steps (one epoch: 23 batches) at rates that do not amplify rounding
    kw = dict(activation=activation, output=output, optimizer=optimizer, scaling=scaling,
              learning_rate=0.001, momentum=0.5, l2=0.01, l1=0.001, epochs=1)
    dense = quick(backend, **kw).fit(X, y)
    sparse = quick(backend, **kw).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(dense.mean_, sparse.mean_)
    np.testing.assert_allclose(dense.scale_, sparse.scale_, rtol=1e-6)
    close(dense, sparse)


def test_maxabs_is_scikit_learns_maxabs_scaler(digits, backend):
    X, y, _, _ = digits
    m = quick(backend, scaling="maxabs").fit(sp.csr_matrix(X), y)
    ref = MaxAbsScaler().fit(X)
    np.testing.assert_allclose(m.scale_, ref.scale_, rtol=1e-6)
    assert not m.mean_.any()
    # "auto" is maxabs for a sparse matrix and standard for a dense array
    auto = quick(backend).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(auto.scale_, m.scale_)
    assert quick(backend).fit(X, y).mean_.any()


def test_nothing_is_densified_and_the_callers_matrix_is_untouched(digits, backend):
    X, y, Xt, _ = digits
    # unsorted indices and duplicates: canonicalised on a copy
    M = sp.coo_matrix(X)
    order = np.random.default_rng(0).permutation(M.nnz)
    half = M.data[order] / 2
    S = NoDense(sp.csr_matrix((np.r_[half, half], (np.r_[M.row[order], M.row[order]],
                                                     np.r_[M.col[order], M.col[order]])),
                              shape=X.shape))
    S.has_canonical_format = False
    before = digest(S)
    m = quick(backend, scaling="standard").fit(S, y)
    m.predict(NoDense(sp.csr_matrix(Xt)))
    m.partial_fit(S, y)
    quick(backend, early_stopping=True).fit(S, y)
    assert digest(S) == before
    close(m, quick(backend, scaling="standard", epochs=4).fit(X, y), rtol=1e-3, floor=1e-4)


def test_input_format(digits, backend):
    X, y, _, _ = digits
    a = quick(backend, input_format="sparse", scaling="standard").fit(X, y)
    b = quick(backend, scaling="standard").fit(sp.csr_matrix(X), y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)          # the same rows, the same path
    with pytest.raises(ValueError, match="input_format='dense'; fastmlp never densifies"):
        quick(backend, input_format="dense").fit(sp.csr_matrix(X), y)


def test_auto_trains_mostly_zero_dense_x_sparse_and_predicts_it_dense(backend, monkeypatch):
    from fastmlp import _sparse
    from fastmlp.datasets import load_mnist
    (X, y), _ = load_mnist()
    X, y = X[:600], y[:600]                                 # 19 % nonzero, 784 columns
    assert _sparse.mostly_zero(X)
    params = dict(hidden_layer_sizes=(8,), epochs=2, batch_size=100, random_state=0,
                  backend=backend, n_threads=2)
    auto = MLPClassifier(**params).fit(X, y)
    as_sparse = MLPClassifier(input_format="sparse", **params).fit(X, y)
    as_dense = MLPClassifier(input_format="dense", **params).fit(X, y)
    for p, q in zip(auto.coefs_, as_sparse.coefs_):
        np.testing.assert_array_equal(p, q)
    close(auto, as_dense)                                   # the same model, other sums
    dense_half = X.copy()
    dense_half[:, ::2] += 1                                 # over 20 % nonzero: dense
    assert not _sparse.mostly_zero(dense_half)
    a = MLPClassifier(**params).fit(dense_half, y)
    b = MLPClassifier(input_format="dense", **params).fit(dense_half, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)

    expected = as_sparse.predict_proba(X)                   # "sparse" converts, and
                                                            # auto's weights are the same

    def refuse(*args, **kw):
        raise AssertionError("converted to sparse rows outside training")
    monkeypatch.setattr(_sparse.SparseRows, "from_dense", staticmethod(refuse))
    np.testing.assert_allclose(auto.predict_proba(X), expected, rtol=1e-5, atol=1e-7)


def test_sparse_regression_weights_and_multilabel(digits, backend):
    X, y, _, _ = digits
    S = sp.csr_matrix(X)
    target = X[:, :3] @ np.array([1.0, -2.0, 0.5])
    kw = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0, backend=backend,
              scaling="standard")
    close(MLPRegressor(**kw).fit(X, target), MLPRegressor(**kw).fit(S, target))
    w = np.linspace(0.2, 2.0, len(y))
    close(quick(backend, scaling="standard").fit(X, y, sample_weight=w),
          quick(backend, scaling="standard").fit(S, y, sample_weight=w))
    Y = np.c_[y % 2, y > 4, y == 3].astype(int)
    close(quick(backend, scaling="standard").fit(X, Y),
          quick(backend, scaling="standard").fit(S, Y))


def test_empty_rows_and_an_all_zero_matrix_train(digits, backend):
    X, y, _, _ = digits
    Z = X.copy()
    Z[::3] = 0                                   # a third of the rows empty
    m = quick(backend).fit(sp.csr_matrix(Z), y)
    assert np.isfinite(m.predict_proba(sp.csr_matrix(Z[:5]))).all()
    zero = quick(backend).fit(sp.csr_matrix(X.shape, dtype=np.float32), y)
    proba = zero.predict_proba(sp.csr_matrix((4, X.shape[1]), dtype=np.float32))
    np.testing.assert_array_equal(proba, np.tile(proba[0], (4, 1)))
    assert np.isfinite(proba).all() and zero.n_iter_ == 3


@pytest.mark.parametrize("case, match", [
    ("index too big", r"column index 64 \(row 0\) outside 0..63"),
    ("negative index", r"column index -1 \(row 0\) outside 0..63"),
    ("nan", r"X contains NaN or infinity \(first at row 1, column 5: nan\)"),
    ("inf", r"X contains NaN or infinity \(first at row 1, column 5: inf\)"),
    ("columns", "X has 63 features, but MLPClassifier is expecting 64"),
    ("complex", "Complex data not supported"),
])
def test_bad_sparse_input_is_named(digits, case, match):
    X, y, _, _ = digits
    m = quick("numpy", epochs=1).fit(X, y)
    S = sp.csr_matrix(X[:5])
    if case in ("index too big", "negative index"):
        S.indices = S.indices.copy()
        S.indices[0] = 64 if case == "index too big" else -1
    elif case in ("nan", "inf"):
        S = sp.csr_matrix(X[:5])
        S.data = S.data.copy()
        row1 = S.indptr[1]
        S.indices[row1] = 5
        S.data[row1] = np.nan if case == "nan" else np.inf
    elif case == "columns":
        S = sp.csr_matrix(X[:5, 1:])
    else:
        S = sp.csr_matrix(X[:5].astype(complex))
    with pytest.raises((ValueError, TypeError), match=match):
        m.predict(S)


def test_sparse_targets_and_too_many_columns_are_refused(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="y is a sparse matrix"):
        quick("numpy").fit(X, sp.csr_matrix(y[:, None]))
    big = sp.csr_matrix((np.ones(1), (np.zeros(1), np.zeros(1))), shape=(1, 2**31))
    with pytest.raises(ValueError, match=r"columns; fastmlp indexes columns with 32 bits"):
        as_rows(big)


def test_sparse_rows_are_stored_narrow():
    pixels = as_rows(sp.csr_matrix(np.array([[0, 3, 255], [7, 0, 0]], np.float64)))
    assert pixels.data.dtype == np.uint8 and pixels.indices.dtype == np.uint16
    text = as_rows(sp.random(3, 70_000, 0.001, format="csr", dtype=np.float64,
                             random_state=0))
    assert text.data.dtype == np.float32 and text.indices.dtype == np.int32
    sub = text[np.array([2, 0])]
    assert isinstance(sub, SparseRows) and sub.shape == (2, 70_000)
    np.testing.assert_array_equal(sub.to_scipy().toarray()[1], text.to_scipy().toarray()[0])


@pytest.mark.parametrize("values", ["uint8", "float32"])
@pytest.mark.parametrize("chunk", [7, 1 << 18])
def test_column_stats_equal_the_dense_statistics(values, chunk, monkeypatch):
    from fastmlp import _sparse
    monkeypatch.setattr(_sparse, "STATS_CHUNK", chunk)
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (50, 9)).astype(np.float64)
    X[rng.random(X.shape) < 0.6] = 0
    X[:, 4] = 0                                             # an empty column
    X[:, 5] = 7                                             # a column without zeros
    if values == "float32":
        X[:, :3] = rng.standard_normal((50, 3)).astype(np.float32) * (X[:, :3] != 0)
    rows = as_rows(sp.csr_matrix(X))
    assert rows.data.dtype == np.dtype(values)
    n, total, sq, lo, hi = _sparse.column_stats(rows)
    assert n == 50
    np.testing.assert_allclose(total, X.sum(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(sq, ((X - X.mean(0)) ** 2).sum(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(lo, X.min(0))
    np.testing.assert_array_equal(hi, X.max(0))


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64", "int16"])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "wide"])
def test_from_dense_equals_the_scipy_conversion(dtype, layout):
    rng = np.random.default_rng(4)
    shape = (3, 70000) if layout == "wide" else (40, 30)
    X = rng.integers(-3, 200, shape)
    X[rng.random(shape) < 0.7] = 0
    X = X.astype(dtype)
    if dtype.startswith("float"):
        X[X == 5] = -0.0                                    # a negative zero is a zero
        X[X == 6] = np.float32(0.3)                         # not a whole number: float32
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = X[::2, ::3]
    rows = SparseRows.from_dense(X)
    ref = as_rows(sp.csr_matrix(X))
    for a, b in [(rows.indptr, ref.indptr), (rows.indices, ref.indices), (rows.data, ref.data)]:
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert rows.shape == X.shape
