# cython: language_level=3
"""Layer-level kernels of the compiled backend, shared by its wrappers and its step.

Design
------
The C primitives of csrc/ (products, fused elementwise passes, the optimiser
step) are composed here into one layer's work, on raw pointers and leading
dimensions, as ``cdef ... noexcept nogil`` functions that never allocate:

* :func:`layer_forward`       A_out := act(A_prev . W[:, 1:]^T + W[:, 0])
* :func:`layer_hidden_delta`  D_out := (D_next . W_next[:, 1:]) * act'(A)
* :func:`layer_gradient`      G := D^T . A_prev,  gb := column sums of D
                              (or += both, to accumulate chunk after chunk)
* :func:`layer_update_row`    sum of the threads' partial gradients of one
                              weight row, its regularisation, one optimiser step

The training step (:mod:`fastmlp.backends._step`) and the checked ``def``
kernels that the twin tests call (:mod:`fastmlp.backends._compiled`) call
these same functions, so a kernel-twin test tests the code that trains.
Prediction (:func:`network_outputs`, checked, and re-exported by
``_compiled``) sends blocks of rows through every layer with the same
``layer_forward``.

Every operand here is row-major: a matrix with row stride ``ld`` (in
floats) and unit column stride.  BLAS is column-major, so a row-major product
C = op(A) op(B) is computed as its transpose, C^T = op(B)^T op(A)^T, by
swapping the operands (:func:`gemm_rowmajor`); a strided view such as
``W[:, 1:]`` (row stride 1 + n_in) goes to BLAS as it is, and no ones-column
is built.  The checks of operands that the ``def`` wrappers share live here
too: each raises ValueError naming the operand.

Activation and optimiser kinds are the registry's numbers
(:mod:`fastmlp._registry`); importing this module checks that they equal the
C header's enums.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport NAN
from libc.stdlib cimport calloc, free
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import os

import numpy as np

from ._arrays import aligned_empty, aligned_zeros

from .._optim import Optimizer
from .._registry import ACTIVATIONS, OPTIMIZERS, OUTPUTS, kernel_kind
from .._registry import activation as _activation
from .._registry import output as _output
from ._interface import PREDICT_BLOCK_ROWS

from scipy.linalg.cython_blas cimport sgemm

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FM_HAVE_OPENMP 1
    static int fm_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define FM_HAVE_OPENMP 0
    static int fm_max_threads(void) { return 1; }
    #endif
    """
    const int FM_HAVE_OPENMP
    int fm_max_threads() nogil


def _check_registry():
    """The registry's numbers must be the header's: fail at import otherwise."""
    want = {("activation", "sigmoid"): FM_SIGMOID, ("activation", "tanh"): FM_TANH,
            ("activation", "relu"): FM_RELU, ("output", "sigmoid"): FM_SIGMOID,
            ("output", "softmax"): FM_SOFTMAX, ("output", "identity"): FM_IDENTITY,
            ("optimizer", "sgd"): FM_SGD, ("optimizer", "rmsprop"): FM_RMSPROP,
            ("optimizer", "adam"): FM_ADAM}
    have = {(t, n): e.c_id for t, table in (("activation", ACTIVATIONS), ("output", OUTPUTS),
                                            ("optimizer", OPTIMIZERS)) for n, e in table.items()}
    if have != want:
        raise ImportError(f"fastmlp._registry and csrc/fastmlp_elementwise.h disagree: "
                          f"registry {have}, header {want}")


_check_registry()

#: True when the extension was built with OpenMP (multi-threaded slices).
HAVE_OPENMP = bool(FM_HAVE_OPENMP)

# The step's products (forward, hidden delta, gradient) use fastmlp's own
# AVX-512 kernels (csrc/fastmlp_gemm.h) where the CPU has AVX-512F, else sgemm;
# FASTMLP_GEMM=blas in the environment makes every product go to sgemm.
cdef bint _OWN_AVAILABLE = fm_own_gemm_available() != 0
cdef bint _OWN = _OWN_AVAILABLE and os.environ.get("FASTMLP_GEMM", "").lower() != "blas"

#: True when the CPU can run fastmlp's AVX-512 products.
OWN_GEMM_AVAILABLE = bool(_OWN_AVAILABLE)


cdef bint own_gemm() noexcept nogil:
    """Whether objects created now use fastmlp's AVX-512 products."""
    return _OWN


def gemm_kind():
    """'avx512' when the large products use fastmlp's kernels, else 'blas'."""
    return "avx512" if _OWN else "blas"


def set_own_gemm(bint flag):
    """Use (True, where the CPU allows) or bypass fastmlp's AVX-512 kernels from
    now on; returns the previous setting (for tests comparing the two paths)."""
    global _OWN
    previous = _OWN
    _OWN = flag and _OWN_AVAILABLE
    return previous


def max_threads():
    """Threads an OpenMP region would use by default (1 without OpenMP)."""
    return fm_max_threads()


cdef double now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef Py_ssize_t r16(Py_ssize_t n) noexcept nogil:
    """n rounded up to a multiple of 16 floats (one 64-byte cache line)."""
    return (n + 15) // 16 * 16


cdef int n_threads_of(object n_threads) except -1:
    if n_threads is None:
        return max(1, fm_max_threads())
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    return int(n_threads) if FM_HAVE_OPENMP else 1


cdef int act_kind(str name) except -1:
    """C kind of a layer's activation: a hidden activation or an output's."""
    return kernel_kind(name)


cdef int out_kind(str name) except -1:
    return _output(name).c_id


cdef int set_opt(fm_opt *o, object optimizer, double momentum) except -1:
    """Fill ``o`` from an Optimizer (or name or None) and the momentum; the
    rate and alpha are set per step by fm_opt_prepare.  Returns the number
    of state arrays per weight matrix."""
    opt = Optimizer.checked(optimizer)
    lr, rho, omr, omb1, omb2, alpha, eps = opt.constants(0.0, 1)
    o.kind = opt.kind
    o.lr, o.mom = 0.0, <float>momentum
    o.rho, o.omr, o.omb1, o.omb2, o.alpha, o.eps = rho, omr, omb1, omb2, alpha, eps
    o.beta1, o.beta2 = <float>opt.beta_1, <float>opt.beta_2
    return opt.n_states


# ------------------------------------------------------------- operand checks
cdef int check_lambdas(double lr, double l2, double l1, double momentum) except -1:
    """Raise unless the rate, lambdas and momentum are finite numbers >= 0."""
    for name, v in (("lr", lr), ("l2", l2), ("l1", l1), ("momentum", momentum)):
        if not (v >= 0.0) or v == float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return 0


cdef int operand(const float[:, :] M, str name, char *flag, int *ld) except -1:
    """Describe M for a row-major product.

    Row-major M gives flag 'N' and its row stride.  F-ordered M gives flag
    'T' and its column stride (it is the row-major transpose).  Anything
    else (both axes strided) raises ValueError."""
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


cdef int aligned(str name, const void *p, Py_ssize_t s0, Py_ssize_t s1,
                 Py_ssize_t isz) except -1:
    """Raise unless the data pointer and the strides that matter (s0, s1; 0
    for an axis of length <= 1) are multiples of the element size: a view
    that starts inside an element (a byte offset into a buffer) would make
    every load a misaligned one, which C leaves undefined."""
    if (<size_t>p) % <size_t>isz or s0 % isz or s1 % isz:
        raise ValueError(f"{name}: data not aligned to its {isz}-byte elements (a view "
                         "starting inside an element); pass a copy (np.array(...))")
    return 0


cdef int al2(const float[:, :] M, str name) except -1:
    if M.shape[0] == 0 or M.shape[1] == 0:
        return 0
    return aligned(name, &M[0, 0], M.strides[0] if M.shape[0] > 1 else 0,
                   M.strides[1] if M.shape[1] > 1 else 0, sizeof(float))


cdef int al1(const float[:] v, str name) except -1:
    if v.shape[0] == 0:
        return 0
    return aligned(name, &v[0], v.strides[0] if v.shape[0] > 1 else 0, 0, sizeof(float))


cdef int alidx(const Py_ssize_t[::1] v, str name) except -1:
    if v.shape[0] == 0:
        return 0
    return aligned(name, &v[0], 0, 0, sizeof(Py_ssize_t))


cdef int ld_of(const float[:, :] M) noexcept:
    """Row stride of a matrix with unit column stride, in elements."""
    return <int>max(M.strides[0] // <Py_ssize_t>sizeof(float), M.shape[1], 1)


# ---------------------------------------------------------------------- BLAS
cdef void gemm_rowmajor(char ta, char tb, int m, int n, int k, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc) noexcept nogil:
    """C := alpha op(A) op(B) + beta C, all row-major; C is m x n."""
    sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *>B, &ldb, <float *>A, &lda,
          &beta, C, &ldc)


# --------------------------------------------------------- layer-level kernels
cdef void layer_forward(const float *A_prev, Py_ssize_t lda, Py_ssize_t rows, int n_in,
                        const float *W, Py_ssize_t ldw, int n_out, const float *P,
                        Py_ssize_t NP, float *A_out, float *scratch, int kind,
                        float *bw) noexcept nogil:
    """A_out (rows x n_out, row stride n_out) := act(A_prev . W[:, 1:]^T + W[:, 0]).

    A_prev has row stride lda, W row stride ldw (bias in column 0).  With P
    (W[:, 1:]^T packed by fm_pack_weights_part, NP wide) the product runs on
    fastmlp's AVX-512 kernels (fm_forward_product: by weights with ``bw``'s
    scratch), else sgemm; then one fused pass adds the bias and applies
    activation ``kind`` (softmax row by row).  ``scratch``: n_out floats."""
    if P != NULL and n_in > 0:
        fm_forward_product(A_prev, rows, n_in, lda, P, NP, A_out, n_out, W + 1, ldw, bw)
    elif n_in > 0:
        gemm_rowmajor(b'N', b'T', <int>rows, n_out, n_in, 1.0, A_prev, <int>lda,
                      W + 1, <int>ldw, 0.0, A_out, n_out)
    else:
        memset(A_out, 0, rows * n_out * sizeof(float))
    fm_bias_act(A_out, rows, n_out, n_out, W, ldw, scratch, kind)


cdef void layer_hidden_delta(const float *D_next, Py_ssize_t ldd, Py_ssize_t rows,
                             int n_next, const float *W_next, Py_ssize_t ldw,
                             const float *A, Py_ssize_t lda, int n, float *D_out,
                             int kind, float *bw) noexcept nogil:
    """D_out (rows x n, row stride n) := (D_next . W_next[:, 1:]) * act'(A).

    One product (the bias column of W_next skipped through its leading
    dimension; fastmlp's AVX-512 kernels read W_next as it lies, with ``bw``
    as scratch or NULL: fm_delta_product; else sgemm), then one elementwise
    pass that takes the derivative from the forward output A (row stride
    lda): sigmoid A (1 - A), tanh 1 - A^2, relu [A > 0]."""
    cdef Py_ssize_t i
    if _OWN:
        fm_delta_product(D_next, rows, n_next, ldd, W_next + 1, ldw, D_out, n, bw)
    else:
        gemm_rowmajor(b'N', b'N', <int>rows, n, n_next, 1.0, D_next, <int>ldd,
                      W_next + 1, <int>ldw, 0.0, D_out, n)
    if lda == n:
        fm_mul_act_deriv(D_out, A, rows * n, kind)
    else:
        for i in range(rows):
            fm_mul_act_deriv(D_out + i * n, A + i * lda, n, kind)


cdef void layer_gradient(const float *D, Py_ssize_t rows, int n_out, const float *A_prev,
                         Py_ssize_t lda, int n_in, float *G, float *gb, bint accumulate,
                         bint own) noexcept nogil:
    """G (n_out x n_in, row stride n_in) := D^T . A_prev and gb := the column
    sums of D (rows x n_out, row stride n_out), or += both when
    ``accumulate``: one chunk's share of a gradient.  ``own`` picks
    fastmlp's AVX-512 product over sgemm.  Rows are summed in order."""
    if n_in > 0:
        if own:
            fm_gemm_gradient(D, rows, n_out, n_out, A_prev, lda, n_in, G, accumulate)
        else:
            gemm_rowmajor(b'T', b'N', n_out, n_in, <int>rows, 1.0, D, n_out, A_prev,
                          <int>lda, 1.0 if accumulate else 0.0, G, n_in)
    fm_column_sums(gb, D, rows, n_out, accumulate)


cdef double layer_update_row(float *w, float *s1, float *s2, float *G, float *gb,
                             Py_ssize_t G_part_stride, Py_ssize_t gb_part_stride, int parts,
                             int gb_parts, int n_in, float l2, float l1,
                             const fm_opt *o) noexcept nogil:
    """Update one row of a weight matrix: w[0] the bias, w[1:] n_in weights.

    The partial gradients of the row (``parts`` in G for the weights,
    ``gb_parts`` in gb for the bias, each ``*_part_stride`` floats after the
    last) are summed in part order into part 0; the weights get their
    regularisation term (l2 w + l1 sign w, the bias none), then one optimiser
    step updates w, its state s1 (and s2 for adam).  Afterwards G[0:n_in] and
    gb[0] hold the amounts subtracted.  Returns the row's regularisation cost
    before the step, or NaN when a new weight is NaN or infinite."""
    cdef int bad = fm_update_bias(w, s1, s2, gb, gb_part_stride, gb_parts, o)
    cdef double reg = 0.0
    if n_in > 0:
        reg = fm_update_row(w + 1, s1 + 1, s2 + 1, G, G_part_stride, parts, n_in, l2, l1, o)
    return NAN if bad else reg


cdef void net_forward(const NetC *net, Py_ssize_t l, const float *A_prev, Py_ssize_t rows,
                      float *A_out, float *scratch, float *bw) noexcept nogil:
    """Layer l on contiguous rows: A_out := act(A_prev . W_l[:, 1:]^T + W_l[:, 0]); bw: NULL
    or the scratch of layer_forward's product by weights."""
    cdef int n_in = net.n_in[l], n_out = net.n_out[l]
    layer_forward(A_prev, n_in, rows, n_in, net.W[l], n_in + 1, n_out,
                  net.P[l] if net.P != NULL else NULL, net.NP[l] if net.P != NULL else 0,
                  A_out, scratch, net.out_act if l == net.L - 1 else net.hidden_act, bw)


cdef void forward_block(const NetC *net, const float *X, float *out, Py_ssize_t r0,
                        Py_ssize_t r1, float *buf0, float *buf1, float *scratch) noexcept nogil:
    """Forward rows r0..r1 of X through every layer into rows r0..r1 of out."""
    cdef Py_ssize_t rows = r1 - r0, l
    cdef const float *src = X + r0 * net.n_in[0]
    cdef float *dst
    cdef float *tmp
    for l in range(net.L):
        dst = out + r0 * net.n_out[l] if l == net.L - 1 else buf0
        net_forward(net, l, src, rows, dst, scratch, NULL)
        src = dst
        tmp = buf0
        buf0 = buf1
        buf1 = tmp


# ------------------------------------------------------------------ prediction
def network_outputs(const float[:, ::1] X, weights, float[:, ::1] out,
                    Py_ssize_t block_rows=PREDICT_BLOCK_ROWS, n_threads=None,
                    str activation="sigmoid", str output="sigmoid"):
    """out := network outputs for every row of X, in row blocks.

    X       : (n, n_in) float32, C                  # IN
    weights : list of (n_out, 1 + n_in) float32, C  # IN
    out     : (n, K) float32, C                     # OUT

    Each block goes through every layer (``layer_forward``, the training
    step's) before the next; blocks are spread over ``n_threads`` OpenMP
    threads (default: all), each owning two ping-pong buffers allocated once
    per call.  BLAS must be limited to one thread when ``n_threads`` > 1.
    Returns ``out``.
    """
    al2(X, "X"); al2(out, "out")
    cdef _Net net = _Net(weights, X.shape[1], False, activation, output)
    cdef Py_ssize_t n = X.shape[0], K = net.n_out[net.L - 1]
    if out.shape[0] != n or out.shape[1] != K:
        raise ValueError(f"out: expected shape {(n, K)}, got {(out.shape[0], out.shape[1])}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    block_rows = max(1, min(block_rows, n))      # buffers no larger than the rows
    cdef Py_ssize_t n_blocks = (n + block_rows - 1) // block_rows, blk
    cdef int T = max(1, min(n_threads_of(n_threads), n_blocks))
    cdef Py_ssize_t width = max(1, net.widest_hidden)
    bufs = np.empty((T, 2, block_rows * width), np.float32)
    scratch = np.empty((T, net.widest), np.float32)
    cdef float[:, :, ::1] B = bufs
    cdef float[:, ::1] S = scratch
    cdef int t
    if n == 0:
        return out.base                   # the caller's array, as the twin returns it
    net.enable_packing()
    with nogil:
        net.repack()
        if T > 1:
            for blk in prange(n_blocks, schedule="static", num_threads=T):
                t = threadid()
                forward_block(&net.c, &X[0, 0], &out[0, 0], blk * block_rows,
                              min(n, (blk + 1) * block_rows), &B[t, 0, 0], &B[t, 1, 0],
                              &S[t, 0])
        else:
            for blk in range(n_blocks):
                forward_block(&net.c, &X[0, 0], &out[0, 0], blk * block_rows,
                              min(n, (blk + 1) * block_rows), &B[0, 0, 0], &B[0, 1, 0],
                              &S[0, 0])
    return out.base                   # the caller's array, as the twin returns it


# ---------------------------------------------------------------- the network
cdef class _Net:
    """Raw pointers to a list of weight matrices (kept alive by this object),
    their layer sizes and activation kinds, and optionally their packed form
    for fastmlp's forward product."""

    def __cinit__(self, weights, Py_ssize_t n_in0, bint writable=False,
                  str activation="sigmoid", str output="sigmoid"):
        weights = list(weights)
        if not weights:
            raise ValueError("weights: need at least one weight matrix")
        self.L = len(weights)
        self.n_in = <int *>calloc(self.L, sizeof(int))
        self.n_out = <int *>calloc(self.L, sizeof(int))
        self.W = <float **>calloc(self.L, sizeof(float *))
        if self.n_in == NULL or self.n_out == NULL or self.W == NULL:
            raise MemoryError()
        self._keep = weights
        cdef float[:, ::1] Wm
        cdef const float[:, ::1] Wc
        cdef Py_ssize_t prev = n_in0
        self.widest = 1
        self.widest_hidden = 1
        for l, W in enumerate(weights):
            if not isinstance(W, np.ndarray) or W.dtype != np.float32 or W.ndim != 2:
                raise ValueError(f"weights[{l}]: must be a 2-D float32 ndarray, got "
                                 f"{getattr(W, 'dtype', type(W).__name__)} "
                                 f"{getattr(W, 'shape', '')}")
            if not W.flags.c_contiguous:
                raise ValueError(f"weights[{l}]: must be C-contiguous (bias in column 0)")
            if not W.flags.aligned:
                raise ValueError(f"weights[{l}]: data not aligned to its 4-byte elements; "
                                 "pass a copy (np.array(...))")
            if W.shape[1] != prev + 1 or W.shape[0] < 1:
                raise ValueError(f"weights[{l}]: expected shape (n_out, {prev + 1}), "
                                 f"got {W.shape}")
            if writable:
                if not W.flags.writeable:
                    raise ValueError(f"weights[{l}]: must be writable to be trained")
                Wm = W
                self.W[l] = &Wm[0, 0]
            else:
                # read only (prediction): never written through this pointer
                Wc = W
                self.W[l] = <float *>&Wc[0, 0]
            self.n_in[l] = <int>prev
            self.n_out[l] = <int>W.shape[0]
            self.widest = max(self.widest, W.shape[0])
            if l < self.L - 1:
                self.widest_hidden = max(self.widest_hidden, W.shape[0])
            prev = W.shape[0]
        self.c.L, self.c.n_in, self.c.n_out, self.c.W = self.L, self.n_in, self.n_out, self.W
        self.c.P, self.c.NP = NULL, NULL
        self.c.hidden_act = _activation(activation).c_id
        self.c.out_act = out_kind(output)
        self.P, self.NP = NULL, NULL

    cdef int enable_packing(self) except -1:
        """Allocate the packed weights for fm_gemm_forward, if it is in use."""
        if not _OWN or self.c.P != NULL:
            return 0
        self.P = <float **>calloc(self.L, sizeof(float *))
        self.NP = <Py_ssize_t *>calloc(self.L, sizeof(Py_ssize_t))
        if self.P == NULL or self.NP == NULL:
            raise MemoryError()
        # one buffer for all layers (each part a whole number of 16-float
        # vectors, so every part stays 64-byte aligned); repack fills it
        cdef Py_ssize_t total = 0
        for l in range(self.L):
            self.NP[l] = fm_packed_width(self.n_out[l])
            total += self.n_in[l] * self.NP[l]
        self._packed = aligned_empty(max(1, total))
        cdef float[::1] m = self._packed
        total = 0
        for l in range(self.L):
            self.P[l] = &m[0] + total
            total += self.n_in[l] * self.NP[l]
        self.c.P = self.P
        self.c.NP = self.NP
        return 0

    cdef void repack(self) noexcept nogil:
        """Copy the current weights into the packed form (before a prediction;
        a training step's update packs each panel it writes)."""
        self.repack_part(0, 1)

    cdef void repack_part(self, int part, int parts) noexcept nogil:
        """:meth:`repack`'s share ``part`` of ``parts`` (16-column blocks)."""
        cdef int l
        if self.c.P == NULL:
            return
        for l in range(self.L):
            fm_pack_weights_part(self.W[l] + 1, self.n_out[l], self.n_in[l], self.n_in[l] + 1,
                                 self.P[l], self.NP[l], part, parts)

    def __dealloc__(self):
        free(self.n_in)
        free(self.n_out)
        free(self.W)
        free(self.P)
        free(self.NP)
