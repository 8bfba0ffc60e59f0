# cython: language_level=3
"""Compiled kernels of fastmlp (float32, BLAS through scipy.linalg.cython_blas).

Design
------
Two layers per kernel, as in the NumPy twin module ``fastmlp._numpy_backend``:

* a ``cdef ... noexcept nogil`` function on raw pointers, leading dimensions
  and BLAS transpose flags: it never allocates and never touches Python;
* a ``def`` wrapper on float32 memoryviews with the twin's signature: it checks
  every operand's shape and layout, raises ValueError on a mismatch, and calls
  the pointer kernel with the GIL released.

Layout: samples are rows.  BLAS is column-major, so a row-major product
C = op(A) op(B) is computed as its transpose, C^T = op(B)^T op(A)^T, by
swapping the operands (``_gemm_rowmajor``).  A row-major matrix with row
stride ``ld`` is the column-major transpose with leading dimension ``ld``,
so strided views such as ``W[:, 1:]`` (row stride ``1 + n_in``) go to BLAS as
they are.  An F-ordered operand is handed over as its transpose with the
opposite flag; the layout of each operand is checked separately.
"""

from scipy.linalg.cython_blas cimport sgemm

cdef extern from "fastmlp_elementwise.h" nogil:
    void fm_mul_sigmoid_deriv(float *d, const float *a, Py_ssize_t n)


cdef void _gemm_rowmajor(char ta, char tb, int m, int n, int k, float alpha,
                         const float *A, int lda, const float *B, int ldb,
                         float beta, float *C, int ldc) noexcept nogil:
    """C := alpha op(A) op(B) + beta C, all row-major; C is m x n."""
    sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *>B, &ldb, <float *>A, &lda,
          &beta, C, &ldc)


cdef int _operand(const float[:, :] M, str name, char *flag, int *ld) except -1:
    """Describe M for _gemm_rowmajor: row-major ('N', row stride) or F-ordered
    (given as its row-major transpose: 'T', column stride).  Anything else
    (e.g. a matrix whose rows and columns are both strided) is a ValueError."""
    cdef Py_ssize_t r = M.shape[0], c = M.shape[1]
    cdef Py_ssize_t s0 = M.strides[0], s1 = M.strides[1]
    cdef Py_ssize_t isz = sizeof(float)
    if (c == 1 or s1 == isz) and (r == 1 or (s0 % isz == 0 and s0 >= c * isz)):
        flag[0] = b'N'
        ld[0] = <int>(s0 // isz) if r > 1 else <int>max(c, 1)
        return 0
    if (r == 1 or s0 == isz) and (c == 1 or (s1 % isz == 0 and s1 >= r * isz)):
        flag[0] = b'T'
        ld[0] = <int>(s1 // isz) if c > 1 else <int>max(r, 1)
        return 0
    raise ValueError(f"{name}: needs unit stride along one axis (C- or F-ordered "
                     f"rows/columns), got strides {M.strides[0]}, {M.strides[1]}")


cdef inline char _flip(char f) noexcept nogil:
    return b'T' if f == b'N' else b'N'


def _check_shape(str name, tuple got, tuple want):
    if got != want:
        raise ValueError(f"{name}: expected shape {want}, got {got}")


def hidden_delta(const float[:, :] delta_next, const float[:, :] W_next,
                 const float[:, :] A, float[:, ::1] delta_out):
    """delta_out := (delta_next . W_next[:, 1:]) * A * (1 - A).

    The fused sigmoid-derivative delta: one sgemm into ``delta_out`` (the bias
    column of ``W_next`` is skipped through the leading dimension), then one
    elementwise pass that reads the forward output ``A``.

    delta_next : (B, n_next) float32, C or F      # IN
    W_next     : (n_next, 1 + n) float32, C       # IN
    A          : (B, n) float32, C or F           # IN
    delta_out  : (B, n) float32, C                # OUT
    """
    cdef Py_ssize_t B = delta_next.shape[0], n_next = delta_next.shape[1]
    cdef Py_ssize_t n = A.shape[1]
    _check_shape("W_next", (W_next.shape[0], W_next.shape[1]), (n_next, 1 + n))
    _check_shape("A", (A.shape[0], A.shape[1]), (B, n))
    _check_shape("delta_out", (delta_out.shape[0], delta_out.shape[1]), (B, n))
    if W_next.strides[1] != sizeof(float):
        raise ValueError("W_next: must be C-ordered (bias in column 0 of each row)")
    cdef char fd, fw, fa
    cdef int ldd, ldw, lda
    _operand(delta_next, "delta_next", &fd, &ldd)
    _operand(W_next[:, 1:], "W_next", &fw, &ldw)
    _operand(A, "A", &fa, &lda)
    if B == 0 or n == 0:
        return
    cdef Py_ssize_t i, j
    cdef Py_ssize_t sa0 = A.strides[0] // sizeof(float), sa1 = A.strides[1] // sizeof(float)
    cdef const float *pa = &A[0, 0]
    cdef float *pd = &delta_out[0, 0]
    cdef float a
    with nogil:
        _gemm_rowmajor(fd, fw, <int>B, <int>n, <int>n_next, 1.0,
                       &delta_next[0, 0], ldd, &W_next[0, 1], ldw, 0.0, pd, <int>n)
        if fa == b'N':
            for i in range(B):
                fm_mul_sigmoid_deriv(pd + i * n, pa + i * sa0, n)
        else:
            for i in range(B):
                for j in range(n):
                    a = pa[i * sa0 + j * sa1]
                    pd[i * n + j] = (pd[i * n + j] * a) * (1.0 - a)
