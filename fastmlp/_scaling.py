"""Input scaling: statistics of the training data and scaled float32 copies.

``"standard"`` uses the statistics scikit-learn's ``StandardScaler`` computes
(the blog series' choice), ``"minmax"`` maps each feature's training range to
[0, 1], ``"maxabs"`` divides each feature by its largest absolute value
(scikit-learn's ``MaxAbsScaler``: zeros stay zeros, nothing is centred),
``"none"`` leaves the inputs alone; ``"auto"`` is "standard" for dense X and
"maxabs" for sparse X.  A sparse X is never scaled: its statistics are
computed from the nonzeros and the first layer folds them in.  Statistics are those of the
float32 values the network trains on.  The compiled extension computes the
standard statistics fast when it is present; a NumPy loop computes the same
statistics where it is not.
"""

import numpy as np

__all__ = ["SCALINGS", "fit_scaling", "scaled_copy", "standard_scaler_stats",
           "training_source"]

#: Names accepted for ``scaling``.
SCALINGS = ("auto", "standard", "minmax", "maxabs", "none")


def _column_mean_var_numpy(X, rows=4096):
    """Mean and population variance of every column of X's float32 values,
    accumulated in float64 over blocks of rows (no float64 copy of X)."""
    n, m = X.shape
    if n == 0:
        raise ValueError("X: needs at least one row")
    total = np.zeros(m)
    for s in range(0, n, rows):
        total += X[s:s + rows].astype(np.float32).sum(axis=0, dtype=np.float64)
    mean = total / n
    var = np.zeros(m)
    for s in range(0, n, rows):
        d = X[s:s + rows].astype(np.float32).astype(np.float64) - mean
        var += np.einsum("ij,ij->j", d, d)
    return mean, var / n


def standard_scaler_stats(X32):
    """Mean and scale as scikit-learn's StandardScaler computes them on the
    float32 values of X32 (uint8, float32 or float64, C-ordered), faster.

    Mean and population variance accumulate in double (the compiled two-pass
    loop, about 20x faster than StandardScaler.fit on MNIST, or a blocked
    NumPy loop without the extension); a feature whose variance is within
    rounding of zero (StandardScaler's bound n eps var + (n mean eps)^2)
    gets scale 1.  The tests check both against StandardScaler.
    """
    try:
        from .backends._compiled import column_mean_var
    except ImportError:
        column_mean_var = _column_mean_var_numpy
    mean, var = column_mean_var(X32)
    n, eps = X32.shape[0], np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def _constant(var, mean, n):
    """StandardScaler's test of a feature whose variance is rounding only."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * mean * eps) ** 2


def _sparse_scaling(rows, kind):
    from ._sparse import column_stats
    n, total, sq, lo, hi = column_stats(rows)
    m = rows.shape[1]
    if kind == "standard":
        mean, var = total / n, sq / n
        scale = np.sqrt(var)
        scale[_constant(var, mean, n)] = 1.0
    elif kind == "minmax":
        span = hi - lo
        mean, scale = lo, np.where(span > 0, span, 1.0)
    elif kind == "maxabs":
        top = np.maximum(np.abs(lo), np.abs(hi))
        mean, scale = np.zeros(m), np.where(top > 0, top, 1.0)
    else:
        mean, scale = np.zeros(m), np.ones(m)
    return np.asarray(mean, np.float32), np.asarray(scale, np.float32)


def fit_scaling(src, kind):
    """``(mean, scale)`` as float32 arrays for the training inputs ``src``
    (dense, or :class:`fastmlp._sparse.SparseRows`); a row is scaled as
    ``(x - mean) / scale``.  ``kind="auto"`` is "maxabs" for sparse rows and
    "standard" otherwise."""
    from ._sparse import SparseRows
    if kind not in SCALINGS:
        raise ValueError(f"unknown scaling {kind!r}; choose one of {SCALINGS}")
    sparse = isinstance(src, SparseRows)
    if kind == "auto":
        kind = "maxabs" if sparse else "standard"
    if sparse:
        return _sparse_scaling(src, kind)
    n = src.shape[1]
    if kind == "standard":
        mean, scale = standard_scaler_stats(src)
    elif kind == "minmax":
        lo = src.min(axis=0).astype(np.float32).astype(np.float64)
        span = src.max(axis=0).astype(np.float32).astype(np.float64) - lo
        mean, scale = lo, np.where(span > 0, span, 1.0)
    elif kind == "maxabs":
        top = np.abs(src).max(axis=0).astype(np.float32).astype(np.float64)
        mean, scale = np.zeros(n), np.where(top > 0, top, 1.0)
    else:
        mean, scale = np.zeros(n), np.ones(n)
    return np.asarray(mean, np.float32), np.asarray(scale, np.float32)


def scaled_copy(X, mean, scale):
    """A fresh C-ordered float32 copy of X, scaled: ``(x - mean) / scale`` in float32."""
    X32 = np.array(X, dtype=np.float32, order="C", copy=True)
    X32 -= mean
    X32 /= scale
    return X32


def training_source(X):
    """X as the backends read it: the caller's array itself when it is an
    aligned C-ordered uint8, float32 or float64 matrix (read, never
    written), else its one float32 copy.  Scaling is applied batch by batch.
    Sparse rows are used as they are."""
    if not isinstance(X, np.ndarray):
        return X
    if X.flags.c_contiguous and X.flags.aligned and \
            X.dtype in (np.uint8, np.float32, np.float64):
        return X
    # np.array, not ascontiguousarray: that returns an unaligned C array as is
    return np.array(X, dtype=np.float32, order="C", copy=True)
