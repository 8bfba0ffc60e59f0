# cython: language_level=3
"""Array helpers of the compiled backend, importing nothing from fastmlp.

:func:`aligned_empty` and :func:`aligned_zeros` give the 64-byte aligned
buffers the kernels load whole cache lines from.  :func:`dense_nonzeros` is
what :meth:`fastmlp._sparse.SparseRows.from_dense` builds its rows from when
``input_format`` sends a dense X down the sparse path: two passes over X
(count per row, then copy), no temporaries.  :mod:`fastmlp._sparse` imports
it without an import cycle; without the compiled extension, ``from_dense``
goes through scipy instead.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t

import numpy as np

__all__ = ["aligned_empty", "aligned_zeros", "dense_nonzeros"]


def _aligned(shape, dtype, align, allocate):
    """A C-ordered ``dtype`` array of ``shape`` carved from ``allocate``'s bytes
    so that its data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(shape) if isinstance(shape, int) else int(np.prod(shape))
    raw = allocate(n * dtype.itemsize + align, np.uint8)
    cdef unsigned char[::1] view = raw
    start = (-int(<size_t>&view[0])) % align          # (Python's modulo: >= 0)
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def aligned_empty(shape, dtype=np.float32, align=64):
    """:func:`aligned_zeros` without the zeros: for buffers that are written
    before they are read (no page of a large one is touched here)."""
    return _aligned(shape, dtype, align, np.empty)


def aligned_zeros(shape, dtype=np.float32, align=64):
    """A zeroed C-ordered array whose data starts on an ``align``-byte boundary.

    NumPy's allocations here start 16 bytes past a cache line, so every
    64-byte vector load of a packed weight row would straddle two lines."""
    return _aligned(shape, dtype, align, np.zeros)


ctypedef fused dense_t:
    uint8_t
    float
    double

ctypedef fused index_t:
    uint16_t
    int32_t


cdef void _nonzeros(const dense_t[:, :] X, const int64_t[::1] indptr, index_t[::1] indices,
                    dense_t[::1] data) noexcept nogil:
    cdef Py_ssize_t i, j, k
    cdef dense_t v
    for i in range(X.shape[0]):
        k = indptr[i]
        for j in range(X.shape[1]):
            v = X[i, j]
            if v != 0:
                indices[k] = <index_t>j
                data[k] = v
                k += 1


cdef void _row_counts(const dense_t[:, :] X, int64_t[::1] indptr) noexcept nogil:
    cdef Py_ssize_t i, j, c
    for i in range(X.shape[0]):
        c = 0
        for j in range(X.shape[1]):
            c += X[i, j] != 0
        indptr[i + 1] = indptr[i] + c


def dense_nonzeros(X):
    """``(indptr, indices, data)`` of the nonzero entries of the 2-D uint8,
    float32 or float64 array X, row by row in column order: int64 row
    pointers, uint16 column indices up to 65,536 columns (else int32), values
    in X's dtype.  Two passes over X (count, then copy) and no temporaries:
    what :meth:`fastmlp._sparse.SparseRows.from_dense` builds its rows from.
    TypeError for another dtype."""
    if X.dtype not in (np.uint8, np.float32, np.float64) or X.ndim != 2:
        raise TypeError(f"X: expected a 2-D uint8, float32 or float64 array, got {X.dtype} "
                        f"with {X.ndim} dimension(s)")
    n, m = X.shape
    indptr = np.zeros(n + 1, np.int64)
    _counts(X, indptr)                  # (fused: one of uint8, float32, float64)
    nnz = int(indptr[n])
    indices = np.empty(nnz, np.uint16 if m <= 65536 else np.int32)
    data = np.empty(nnz, X.dtype)
    _fill(X, indptr, indices, data)
    return indptr, indices, data


def _counts(const dense_t[:, :] X, int64_t[::1] indptr):
    with nogil:
        _row_counts(X, indptr)


def _fill(const dense_t[:, :] X, const int64_t[::1] indptr, index_t[::1] indices,
          dense_t[::1] data):
    with nogil:
        _nonzeros(X, indptr, indices, data)
