# cython: language_level=3
"""The compiled backend: checked kernels with the NumPy twin's signatures.

Design
------
The compiled backend has these modules:

* :mod:`fastmlp.backends._layers`: the layer-level ``cdef ... noexcept nogil``
  kernels on raw pointers (forward, hidden delta, gradient, row update);
* :mod:`fastmlp.backends._output`: the output layer's kernel (delta, cost and
  correct rows, for label or dense targets, with or without sample weights);
* :mod:`fastmlp.backends._sparse_layer` and ``_sparse_batch``: the sparse
  first layer (its weights kept transposed, a batch through it), with its
  checked kernels ``sparse_forward_layer``, ``sparse_gradient_update`` and
  the sparse rows' ``network_outputs`` in :mod:`fastmlp.backends._sparse_kernels`,
  exported here;
* this module: a ``def`` kernel per function of the NumPy twin
  (:mod:`fastmlp.backends._numpy`), with the same signature and meaning.
  Each checks every operand's shape, layout and alignment, raises
  ValueError naming the operand on a mismatch, and then calls the very
  layer-level function the training step calls, with the GIL released;
* :mod:`fastmlp.backends._step`: :class:`CompiledBackend`, the whole
  training step (gather, forward, deltas, gradients, optimiser step) without
  the GIL and without allocation.

Layout contract
---------------
Samples are rows.  The kernels accept C- or F-ordered float32 inputs (an
F-ordered one is copied to C order first, as the layer-level functions take
row-major operands only); each operand's layout is checked on its own, never
inferred from another one.  (This is the blog series' Step II problem: a
transposed slice silently turns C into F order, and NumPy would copy it.)
Outputs and weight matrices must be C-ordered; a weight matrix is
``(n_out, 1 + n_in)`` with the bias in column 0, its rows one after another.
"""

from libc.string cimport memcpy

import numpy as np

from ._interface import PHASES, PREDICT_BLOCK_ROWS
from ._layers import (HAVE_OPENMP, OWN_GEMM_AVAILABLE, aligned_zeros, gemm_kind, max_threads,
                      set_own_gemm)
from ._sparse_kernels import network_outputs, sparse_forward_layer, sparse_gradient_update
from ._sparse_layer import set_sparse_mode

from ._layers cimport (_Net, al1, al2, alidx, aligned, act_kind, check_lambdas, fm_opt,
                       fm_opt_prepare, forward_block, layer_forward, layer_gradient,
                       layer_hidden_delta, layer_update_row, ld_of, n_threads_of, operand,
                       own_gemm, set_opt, fm_by_weights_floats, fm_packed_width, fm_pack_weights)
from ._output cimport Targets, output_layer

__all__ = ["forward_layer", "output_delta", "hidden_delta", "gradient_update",
           "regularization_cost", "network_outputs", "sparse_forward_layer",
           "sparse_gradient_update", "column_mean_var", "gather_rows", "Backend",
           "CompiledBackend", "HAVE_OPENMP", "OWN_GEMM_AVAILABLE", "PHASES", "gemm_kind",
           "max_threads", "set_by_weights", "set_own_gemm", "set_sparse_mode"]

_by_weights = True


def set_by_weights(bint flag):
    """Whether :func:`forward_layer` and :func:`hidden_delta` take their
    products by weights where that pays, as the training step does (True,
    the default), or never (False: to check that both ways give the same
    numbers); returns the previous setting."""
    global _by_weights
    previous, _by_weights = _by_weights, flag
    return previous


def _check_shape(str name, tuple got, tuple want):
    if got != want:
        raise ValueError(f"{name}: expected shape {want}, got {got}")


def _check_weights(str name, const float[:, :] W):
    if W.shape[1] < 1:
        raise ValueError(f"{name}: needs a bias column, got shape {(W.shape[0], W.shape[1])}")
    if W.shape[0] > 1 and W.strides[1] != sizeof(float):
        raise ValueError(f"{name}: must be C-ordered (bias in column 0 of each row)")
    if W.shape[1] > 1 and W.strides[1] != sizeof(float):
        raise ValueError(f"{name}: must be C-ordered (bias in column 0 of each row)")
    # BLAS and ld_of() take the row stride as a leading dimension >= the row
    # length: rows running backwards (W[::-1]), repeated (broadcast, stride 0)
    # or overlapping would be read past the end of the matrix.
    cdef Py_ssize_t isz = sizeof(float)
    if W.shape[0] > 1 and (W.strides[0] < W.shape[1] * isz or W.strides[0] % isz != 0):
        raise ValueError(f"{name}: rows must follow one another in memory (row stride "
                         f"{W.strides[0]} bytes, needs a multiple of {isz} and at least "
                         f"{W.shape[1] * isz})")


def _row_major(M, str name):
    """M itself when its rows have unit stride, else its C-ordered copy (an
    F-ordered operand); raises, naming M, for any other layout."""
    cdef char flag
    cdef int ld
    operand(M, name, &flag, &ld)
    return M if flag == b'N' else np.ascontiguousarray(M)


# ------------------------------------------------------------- the kernels
def forward_layer(const float[:, :] A_prev, const float[:, :] W, float[:, ::1] A_out,
                  str activation="sigmoid"):
    """A_out := act(A_prev . W[:, 1:]^T + W[:, 0]), act a hidden activation or an output.

    One product into ``A_out`` (fastmlp's AVX-512 kernel on freshly packed
    weights, or sgemm with the bias column of ``W`` skipped through the
    leading dimension), then one fused pass that adds the bias and applies
    the activation in place: ``layer_forward``.

    A_prev : (B, n_in) float32, C or F       # IN
    W      : (n_out, 1 + n_in) float32, C    # IN
    A_out  : (B, n_out) float32, C           # OUT
    """
    al2(A_prev, "A_prev"); al2(W, "W"); al2(A_out, "A_out")
    _check_weights("W", W)
    cdef int kind = act_kind(activation)
    cdef Py_ssize_t B = A_prev.shape[0], n_in = A_prev.shape[1], n_out = W.shape[0]
    _check_shape("W", (W.shape[0], W.shape[1]), (n_out, 1 + n_in))
    _check_shape("A_out", (A_out.shape[0], A_out.shape[1]), (B, n_out))
    cdef const float[:, :] Ar = _row_major(A_prev, "A_prev")
    if B == 0 or n_out == 0:
        return
    cdef int ldw = ld_of(W), lda = ld_of(Ar) if n_in > 0 else 1
    cdef float[::1] bias = np.empty(n_out, np.float32)
    cdef Py_ssize_t NP = fm_packed_width(n_out)
    cdef bint own = own_gemm() and n_in > 0
    cdef float[::1] P = aligned_zeros(n_in * NP if own else 1)
    cdef bint bw = own and _by_weights
    cdef float[::1] S = aligned_zeros(fm_by_weights_floats(B, n_in, n_out) if bw else 1)
    with nogil:
        if own:
            fm_pack_weights(&W[0, 1], n_out, n_in, ldw, &P[0], NP)
        layer_forward(&Ar[0, 0] if n_in > 0 else NULL, lda, B, <int>n_in, &W[0, 0], ldw,
                      <int>n_out, &P[0] if own else NULL, NP, &A_out[0, 0], &bias[0], kind,
                      &S[0] if bw else NULL)


def output_delta(const float[:, ::1] A_L, const float[:, :] Y, float[:, ::1] delta_out,
                 tmp=None, str output="sigmoid", weights=None, str targets="labels"):
    """delta_out := w (A_L - Y); return (loss summed over the batch, n correct).

    The loss is the output layer's (:data:`fastmlp._registry.OUTPUTS`), each
    row's term times its weight w (1 without ``weights``): LogLoss for
    sigmoid outputs, the categorical cross-entropy -sum(y log a) for softmax
    outputs, the squared error 1/2 sum (a - y)^2 for identity outputs.  The
    log's argument is clipped at the smallest normal float32.  With label
    targets a row is correct when the first maximum of its outputs is at its
    label; with dense targets a sigmoid row is correct when every output is
    on its target's side of 0.5, and no identity row is.  It calls
    ``output_layer``, as the training step does (``fm_output_delta`` for
    label targets, ``fm_output_delta_dense`` for dense ones).

    A_L       : (B, K) float32, C, the output layer's    # IN
    Y         : (B, K) float32, the targets               # IN
    delta_out : (B, K) float32, C                         # OUT
    tmp       : unused; accepted for the twin's signature
    weights   : (B,) float32, C, or None, row i's weight  # IN
    targets   : "labels" (one-hot Y, one label per row) or "dense" (Y itself:
                sigmoid multilabel in [0, 1], or identity regression)
    """
    al2(A_L, "A_L"); al2(Y, "Y"); al2(delta_out, "delta_out")
    cdef Py_ssize_t B = A_L.shape[0], K = A_L.shape[1]
    _check_shape("Y", (Y.shape[0], Y.shape[1]), (B, K))
    _check_shape("delta_out", (delta_out.shape[0], delta_out.shape[1]), (B, K))
    if K == 0:
        raise ValueError("A_L: needs at least one output column")
    cdef Targets t = Targets(np.asarray(Y), weights, B, K, output, targets, "weights")
    cdef long correct = 0
    cdef double cost = 0.0
    if B == 0:
        return 0.0, 0
    with nogil:
        cost = output_layer(&t.c, &A_L[0, 0], NULL, &delta_out[0, 0], B, &correct)
    return cost, correct


def hidden_delta(const float[:, :] delta_next, const float[:, :] W_next,
                 const float[:, :] A, float[:, ::1] delta_out, tmp=None,
                 str activation="sigmoid"):
    """delta_out := (delta_next . W_next[:, 1:]) * act'(A).

    One sgemm into ``delta_out`` (the bias column of ``W_next`` skipped
    through the leading dimension), then one elementwise pass that takes the
    derivative from the forward output ``A``: sigmoid A (1 - A), tanh
    1 - A^2, relu [A > 0] (``layer_hidden_delta``).

    delta_next : (B, n_next) float32, C or F      # IN
    W_next     : (n_next, 1 + n) float32, C       # IN
    A          : (B, n) float32, C or F           # IN
    delta_out  : (B, n) float32, C                # OUT
    tmp        : unused; accepted for the twin's signature
    """
    al2(delta_next, "delta_next"); al2(W_next, "W_next"); al2(A, "A")
    al2(delta_out, "delta_out")
    cdef int kind = act_kind(activation)
    cdef Py_ssize_t B = delta_next.shape[0], n_next = delta_next.shape[1]
    cdef Py_ssize_t n = A.shape[1]
    _check_shape("W_next", (W_next.shape[0], W_next.shape[1]), (n_next, 1 + n))
    _check_shape("A", (A.shape[0], A.shape[1]), (B, n))
    _check_shape("delta_out", (delta_out.shape[0], delta_out.shape[1]), (B, n))
    _check_weights("W_next", W_next)
    if n_next == 0:
        raise ValueError("delta_next: needs at least one column")
    cdef const float[:, :] Dr = _row_major(delta_next, "delta_next")
    cdef const float[:, :] Ar = _row_major(A, "A")
    if B == 0 or n == 0:
        return
    cdef int ldd = ld_of(Dr), lda = ld_of(Ar), ldw = ld_of(W_next)
    cdef bint bw = own_gemm() and _by_weights
    cdef float[::1] S = aligned_zeros(fm_by_weights_floats(B, n_next, n) if bw else 1)
    with nogil:
        layer_hidden_delta(&Dr[0, 0], ldd, B, <int>n_next, &W_next[0, 0], ldw, &Ar[0, 0],
                           lda, <int>n, &delta_out[0, 0], kind, &S[0] if bw else NULL)


def gradient_update(const float[:, :] delta, const float[:, :] A_prev, float[:, ::1] W,
                    float[:, ::1] dW_prev, double lr, double l2, double l1,
                    double momentum, float[:, ::1] Gw, float[::1] gb, tmp=None,
                    optimizer=None, state2=None, long step=1):
    """Regularised batch gradient, then one optimiser step on ``W``.

    Gw := delta^T . A_prev + l2 W[:, 1:] + l1 sign(W[:, 1:]);  gb := sum_b delta
    then, with G = [gb | Gw] (see :mod:`fastmlp._optim`):

    sgd      dW := lr G;  W -= dW + momentum dW_prev;  dW_prev := dW
    rmsprop  dW_prev := rho dW_prev + (1 - rho) G^2;  W -= lr G / sqrt(dW_prev + eps)
    adam     dW_prev (m) and state2 (v) as Keras updates them at step ``step``;
             W -= m alpha / (sqrt(v) + eps)

    ``layer_gradient`` (one product into ``Gw``, the column sums into
    ``gb``), then ``layer_update_row`` on each row of ``W``, which adds the
    regularisation (only the terms whose lambda > 0) and applies the step.
    After the call ``Gw`` and ``gb`` hold the amounts subtracted from
    ``W[:, 1:]`` and ``W[:, 0]`` (for sgd: dW), as in the NumPy twin.

    delta   : (B, n_out) float32, C or F         # IN
    A_prev  : (B, n_in) float32, C or F          # IN
    W       : (n_out, 1 + n_in) float32, C       # IN/OUT
    dW_prev : (n_out, 1 + n_in) float32, C       # IN/OUT  the optimiser's first state
                                                   (sgd's velocity, rmsprop's mean
                                                   square, adam's first moment)
    Gw      : (n_out, n_in) float32, C           # OUT
    gb      : (n_out,) float32                   # OUT
    tmp     : unused; accepted for the twin's signature
    optimizer : None (sgd), a name or an :class:`fastmlp._optim.Optimizer`
    state2  : (n_out, 1 + n_in) float32, C       # IN/OUT adam's second moment
    step    : 1-based number of this step (adam's bias correction)
    """
    al2(delta, "delta"); al2(A_prev, "A_prev"); al2(W, "W"); al2(dW_prev, "dW_prev")
    al2(Gw, "Gw"); al1(gb, "gb")
    cdef Py_ssize_t B = delta.shape[0], n_out = delta.shape[1], n_in = A_prev.shape[1]
    _check_shape("A_prev", (A_prev.shape[0], A_prev.shape[1]), (B, n_in))
    _check_shape("W", (W.shape[0], W.shape[1]), (n_out, 1 + n_in))
    _check_shape("dW_prev", (dW_prev.shape[0], dW_prev.shape[1]), (n_out, 1 + n_in))
    _check_shape("Gw", (Gw.shape[0], Gw.shape[1]), (n_out, n_in))
    _check_shape("gb", (gb.shape[0],), (n_out,))
    check_lambdas(lr, l2, l1, momentum)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cdef fm_opt o
    cdef float[:, ::1] S2 = dW_prev
    if set_opt(&o, optimizer, momentum) == 2:
        if state2 is None:
            raise ValueError("state2: adam needs its second-moment array")
        S2 = state2
        _check_shape("state2", (S2.shape[0], S2.shape[1]), (n_out, 1 + n_in))
        al2(S2, "state2")
    fm_opt_prepare(&o, <float>lr, step)
    # the layer-level gradient reads delta's rows one after another
    cdef const float[:, ::1] Dc = np.ascontiguousarray(_row_major(delta, "delta"))
    cdef const float[:, :] Ar = _row_major(A_prev, "A_prev")
    if n_out == 0:
        return
    cdef Py_ssize_t k
    cdef int lda = ld_of(Ar) if n_in > 0 else 1
    cdef bint own = own_gemm()
    with nogil:
        if B > 0:
            layer_gradient(&Dc[0, 0], B, <int>n_out, &Ar[0, 0] if n_in > 0 else NULL, lda,
                           <int>n_in, &Gw[0, 0] if n_in > 0 else NULL, &gb[0], 0, own)
        else:
            if n_in > 0:
                Gw[:, :] = 0.0
            gb[:] = 0.0
        for k in range(n_out):
            layer_update_row(&W[k, 0], &dW_prev[k, 0], &S2[k, 0],
                             &Gw[k, 0] if n_in > 0 else NULL, &gb[k], 0, 0, 1, 1, <int>n_in,
                             <float>l2, <float>l1, &o)


def regularization_cost(const float[:, :] W, double l2, double l1):
    """Return l2/2 sum(W[:, 1:]^2) + l1 sum|W[:, 1:]| (bias column excluded)."""
    al2(W, "W")
    cdef Py_ssize_t i, j
    cdef double sq = 0.0, ab = 0.0, w
    with nogil:
        for i in range(W.shape[0]):
            for j in range(1, W.shape[1]):
                w = W[i, j]
                sq += w * w
                ab += w if w >= 0 else -w
    return (0.5 * l2 * sq if l2 > 0 else 0.0) + (l1 * ab if l1 > 0 else 0.0)


ctypedef fused source_t:
    unsigned char
    float
    double


def column_mean_var(const source_t[:, ::1] X):
    """Mean and (population) variance of every column, accumulated in double.

    X may be uint8, float32 or float64; each value is taken as the float32 the
    model trains on (so float64 data gives the statistics of its float32
    copy).  Two passes over X (the mean, then the squared deviations from it),
    each a loop over rows with the columns innermost.  Returns two float64
    arrays.
    """
    if X.shape[0] > 0 and X.shape[1] > 0:
        aligned("X", &X[0, 0], X.strides[0] if X.shape[0] > 1 else 0, 0, sizeof(X[0, 0]))
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], i, j
    mean_arr = np.zeros(m, np.float64)
    var_arr = np.zeros(m, np.float64)
    cdef double[::1] mean = mean_arr, var = var_arr
    cdef double d
    if n == 0:
        raise ValueError("X: needs at least one row")
    with nogil:
        for i in range(n):
            for j in range(m):
                mean[j] += <float>X[i, j]
        for j in range(m):
            mean[j] /= n
        for i in range(n):
            for j in range(m):
                d = <float>X[i, j] - mean[j]
                var[j] += d * d
        for j in range(m):
            var[j] /= n
    return mean_arr, var_arr


def gather_rows(const float[:, ::1] X, const Py_ssize_t[::1] idx, float[:, ::1] out):
    """out[i] := X[idx[i]] for every i (rows copied with memcpy).

    X   : (n, m) float32, C              # IN
    idx : (B,) intp, each in [0, n)      # IN
    out : (B, m) float32, C              # OUT
    """
    al2(X, "X"); alidx(idx, "idx"); al2(out, "out")
    cdef Py_ssize_t B = idx.shape[0], m = X.shape[1], n = X.shape[0], i, bad = -1
    _check_shape("out", (out.shape[0], out.shape[1]), (B, m))
    with nogil:
        for i in range(B):
            if idx[i] < 0 or idx[i] >= n:
                bad = i
                break
            if m > 0:
                memcpy(&out[i, 0], &X[idx[i], 0], m * sizeof(float))
    if bad >= 0:
        raise ValueError(f"idx[{bad}] = {idx[bad]} is out of range for {n} rows")


from ._step import CompiledBackend  # noqa: E402  (the step module imports nothing from here)

Backend = CompiledBackend
