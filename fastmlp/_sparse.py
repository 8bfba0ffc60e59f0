"""Sparse inputs: a checked, canonical CSR copy that the backends read row by row.

:class:`SparseRows` is how a sparse X reaches a backend: the CSR arrays of the
matrix with sorted, unique column indices in each row, stored once per fit in
the narrowest types that hold them (``uint8`` values when every value is a
whole number 0..255, as pixels are, else ``float32``; ``uint16`` column
indices up to 65,536 columns, else ``int32``; ``int64`` row pointers).  It is
never densified.  The input scaling is not applied to it: the first layer
folds it into its weights (see :mod:`fastmlp.backends`), so zeros stay zeros
and nothing is centred.

:func:`as_rows` takes any scipy.sparse matrix or array (CSR, CSC, COO, ...,
any index dtype) and checks it, naming the problem: the shape, the index
range, non-finite values.  A dense array can be turned into rows too
(:meth:`SparseRows.from_dense`), which ``input_format`` uses for mostly-zero
dense X.  Neither ever writes to the caller's arrays.
"""

import numpy as np
import scipy.sparse as sp

from ._validation import check_shape

__all__ = ["SparseRows", "as_rows", "is_sparse", "column_stats", "mostly_zero",
           "AUTO_SPARSE_DENSITY"]


def is_sparse(X):
    """True for a scipy.sparse matrix or array, or a :class:`SparseRows`."""
    return isinstance(X, SparseRows) or sp.issparse(X)


class SparseRows:
    """The rows of a sparse matrix: CSR arrays with canonical rows.

    Attributes
    ----------
    indptr : (n_rows + 1,) int64       row i's entries are ``indptr[i]:indptr[i + 1]``
    indices : (nnz,) uint16 or int32   their column numbers, increasing in each row
    data : (nnz,) uint8 or float32     their values (no NaN or infinity)
    shape : (n_rows, n_cols)
    """

    def __init__(self, indptr, indices, data, shape):
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = (int(shape[0]), int(shape[1]))

    ndim = 2
    #: the dtype of the arithmetic on these rows (values are read as float32)
    dtype = np.dtype(np.float32)

    @property
    def nnz(self):
        return int(self.indptr[-1])

    @property
    def nbytes(self):
        """Bytes of the three arrays."""
        return self.indptr.nbytes + self.indices.nbytes + self.data.nbytes

    @property
    def density(self):
        return self.nnz / max(1, self.shape[0] * self.shape[1])

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        """The rows ``rows`` (an integer array, or a slice) as new SparseRows."""
        rows = np.arange(self.shape[0])[rows] if isinstance(rows, slice) else np.asarray(rows)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        take = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1])
        return SparseRows(indptr, self.indices[take], self.data[take],
                          (len(rows), self.shape[1]))

    def to_scipy(self, dtype=np.float32):
        """A scipy CSR matrix of these rows, values as ``dtype`` (a new array;
        the index arrays are shared, so it must not be modified)."""
        indices = self.indices.astype(np.int32 if self.shape[1] < 2**31 else np.int64)
        return sp.csr_matrix((self.data.astype(dtype), indices, self.indptr),
                             shape=self.shape)

    @classmethod
    def from_dense(cls, X):
        """The nonzero entries of a dense 2-D array, as SparseRows.  A uint8,
        float32 or float64 array is read straight into the narrow arrays by
        the compiled kernel (no scipy temporaries); anything else, or without
        the compiled extension, goes through a scipy CSR copy."""
        X = np.asarray(X)
        if X.ndim == 2 and X.dtype in (np.uint8, np.float32, np.float64):
            try:
                from .backends._arrays import dense_nonzeros
            except ImportError:
                dense_nonzeros = None
            if dense_nonzeros is not None:
                indptr, indices, data = dense_nonzeros(X)
                return cls(indptr, indices, _narrow_values(data), X.shape)
        return as_rows(sp.csr_matrix(X))

    def __repr__(self):
        return (f"SparseRows({self.shape[0]}x{self.shape[1]}, nnz={self.nnz}, "
                f"{self.data.dtype} values, {self.indices.dtype} indices)")


def _narrow_values(data):
    """uint8 when every value is a whole number 0..255, else float32."""
    if data.dtype == np.uint8:
        return data
    if data.size and data.dtype.kind in "biuf":
        lo, hi = data.min(), data.max()
        if lo >= 0 and hi <= 255 and (data.dtype.kind in "biu"
                                      or np.array_equal(data, np.round(data))):
            return data.astype(np.uint8)
    return data.astype(np.float32)


def as_rows(X, name="X", n_features=None, owner="MLPClassifier"):
    """``X`` (a scipy.sparse matrix or array, or SparseRows) checked and
    stored as :class:`SparseRows`; ValueError or TypeError naming the
    problem.  The caller's arrays are never modified: unsorted or duplicate
    indices are summed in a copy."""
    if isinstance(X, SparseRows):
        rows = X
    else:
        if not sp.issparse(X):
            raise TypeError(f"{name} is not a sparse matrix")
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
        if np.iscomplexobj(X.data if hasattr(X, "data") else np.zeros(0)):
            raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
        n_rows, n_cols = X.shape
        if n_cols >= 2**31:
            raise ValueError(f"{name} has {n_cols} columns; fastmlp indexes columns with 32 "
                             "bits (at most 2**31 - 1)")
        csr = X.tocsr()                      # a new matrix unless X is CSR already
        indptr = np.asarray(csr.indptr)
        indices = np.asarray(csr.indices)
        if indptr.shape != (n_rows + 1,) or (n_rows and (indptr[0] != 0 or
                                                         np.any(np.diff(indptr) < 0))):
            raise ValueError(f"{name}: its row pointers (indptr) are not a non-decreasing "
                             f"sequence of {n_rows + 1} numbers from 0")
        nnz = int(indptr[-1]) if n_rows else 0
        if indices.shape[0] < nnz or np.asarray(csr.data).shape[0] < nnz:
            raise ValueError(f"{name}: indptr says {nnz} entries, but indices and data hold "
                             f"{indices.shape[0]} and {np.asarray(csr.data).shape[0]}")
        indices, data = indices[:nnz], np.asarray(csr.data)[:nnz]
        if nnz:
            lo, hi = int(indices.min()), int(indices.max())
            if lo < 0 or hi >= n_cols:
                bad = int(np.argmax((indices < 0) | (indices >= n_cols)))
                row = int(np.searchsorted(indptr, bad, side="right") - 1)
                raise ValueError(f"{name} has a column index {int(indices[bad])} (row {row}) "
                                 f"outside 0..{n_cols - 1}")
            if data.dtype.kind == "f" and not np.isfinite(data).all():
                bad = int(np.argmax(~np.isfinite(data)))
                row = int(np.searchsorted(indptr, bad, side="right") - 1)
                raise ValueError(f"{name} contains NaN or infinity (first at row {row}, column "
                                 f"{int(indices[bad])}: {data[bad]}); remove or impute these "
                                 "values")
            if data.dtype.itemsize > 4 and data.dtype.kind == "f" and \
                    np.abs(data).max() > np.finfo(np.float32).max:
                raise ValueError(f"{name} has values beyond the float32 range")
        canonical = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols), copy=False)
        if not canonical.has_canonical_format:
            canonical = canonical.copy()     # sorted, duplicates summed: on a copy
            canonical.sum_duplicates()
            indptr, indices, data = canonical.indptr, canonical.indices, canonical.data
        rows = SparseRows(np.asarray(indptr, np.int64),
                          np.asarray(indices, np.uint16 if n_cols <= 65536 else np.int32),
                          _narrow_values(np.asarray(data)), (n_rows, n_cols))
    check_shape(rows.shape, name, n_features, owner)
    return rows


#: Entries per chunk of :func:`column_stats` (its buffers stay small and are
#: reused, so a large X costs no large temporaries and no fresh pages).
STATS_CHUNK = 1 << 18


def column_stats(rows):
    """``(n, sum, sum of squares about the mean, min, max)`` of every column
    of the float32 values, zeros included, in float64: what the scalings need.
    The squares are summed about the mean (two passes: the nonzeros, then the
    implicit zeros' share), as the dense statistics are.  uint8 values are
    counted into a (column, value) histogram instead, which gives the same
    figures in one pass."""
    n, m = rows.shape
    if rows.data.dtype == np.uint8:
        return _uint8_column_stats(rows)
    size = min(STATS_CHUNK, max(rows.nnz, 1))
    cols, x, d = np.empty(size, np.intp), np.empty(size, np.float64), np.empty(size)
    total, count = np.zeros(m), np.zeros(m, np.int64)
    lo, hi = np.full(m, np.inf), np.full(m, -np.inf)
    for c, v in _entry_chunks(rows, cols, x):
        total += np.bincount(c, weights=v, minlength=m)
        count += np.bincount(c, minlength=m)
        np.minimum.at(lo, c, v)
        np.maximum.at(hi, c, v)
    mean = total / n
    sq = (n - count) * mean * mean
    for c, v in _entry_chunks(rows, cols, x):
        e = d[:len(c)]
        np.take(mean, c, out=e)
        np.subtract(v, e, out=e)
        np.multiply(e, e, out=e)
        sq += np.bincount(c, weights=e, minlength=m)
    has_zero = count < n
    lo[has_zero] = np.minimum(lo[has_zero], 0.0)
    hi[has_zero] = np.maximum(hi[has_zero], 0.0)
    return n, total, sq, lo, hi


def _entry_chunks(rows, cols, values):
    """The entries of ``rows`` chunk by chunk, as views of the buffers
    ``cols`` (intp) and ``values`` (float64), refilled for each chunk."""
    nnz, size = rows.nnz, len(cols)
    for s in range(0, nnz, size):
        k = min(size, nnz - s)
        c, v = cols[:k], values[:k]
        np.copyto(c, rows.indices[s:s + k], casting="unsafe")
        np.copyto(v, rows.data[s:s + k], casting="unsafe")
        yield c, v


def _uint8_column_stats(rows):
    """:func:`column_stats` for uint8 values, from a per-column histogram."""
    n, m = rows.shape
    nnz = rows.nnz
    size = min(STATS_CHUNK, max(nnz, 1))
    key = np.empty(size, np.intp)
    hist = np.zeros(m * 256, np.int64)
    for s in range(0, nnz, size):
        k = min(size, nnz - s)
        h = key[:k]
        np.copyto(h, rows.indices[s:s + k], casting="unsafe")
        np.multiply(h, 256, out=h)
        np.add(h, rows.data[s:s + k], out=h, casting="unsafe")
        hist += np.bincount(h, minlength=m * 256)
    hist = hist.reshape(m, 256)
    hist[:, 0] += n - hist.sum(axis=1)             # the implicit zeros
    values = np.arange(256, dtype=np.float64)
    total = hist @ values
    mean = total / n
    sq = (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1)
    present = hist > 0
    lo = np.argmax(present, axis=1).astype(np.float64)
    hi = (255 - np.argmax(present[:, ::-1], axis=1)).astype(np.float64)
    return n, total, sq, lo, hi


#: ``input_format="auto"`` trains a dense X on the sparse path when at most
#: this share of its entries are nonzero.  Measured with
#: bench/sparse_threshold.py (bench/results/sparse_threshold.json, AMD EPYC
#: family 26 model 2 (Zen 5), 2 cores, compiled backend, s/epoch dense over sparse): image-like
#: rows (MNIST thinned or noised) gain 3.2-3.7x at 2 % nonzero, 1.4-1.5x at
#: MNIST's own 19 %, 1.1-1.2x at 25 % and break even near 30 %; rows with
#: nonzeros at uniformly random places break even sooner, near 15-20 %
#: (1.04-1.10x at 19 %, 0.92-0.99x at 25 %).  0.2 keeps both kinds on the
#: faster side, and MNIST on the sparse path.  The one-off conversion (0.2 s
#: for MNIST) is paid back within a few epochs.
AUTO_SPARSE_DENSITY = 0.2
#: ... and only when X has at least this many columns (a narrow X is cheap).
AUTO_SPARSE_MIN_COLUMNS = 64


def mostly_zero(X):
    """Whether ``input_format="auto"`` sends the dense array X down the
    sparse path (see :data:`AUTO_SPARSE_DENSITY`)."""
    if AUTO_SPARSE_DENSITY <= 0 or X.ndim != 2 or X.shape[1] < AUTO_SPARSE_MIN_COLUMNS:
        return False
    return np.count_nonzero(X) <= AUTO_SPARSE_DENSITY * X.size
