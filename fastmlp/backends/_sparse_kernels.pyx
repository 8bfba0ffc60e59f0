# cython: language_level=3
"""Checked kernels of the sparse first layer, with the NumPy twin's signatures.

:func:`sparse_forward_layer` and :func:`sparse_gradient_update` mirror
:mod:`fastmlp.backends._numpy_sparse`; :func:`network_outputs` mirrors the
NumPy backend's (dense X goes to :func:`fastmlp.backends._layers.network_outputs`,
sparse rows through the first layer here).  Each checks its operands (ValueError
naming the operand), builds a :class:`~fastmlp.backends._sparse_layer.SparseLayer`
on its arguments (the first layer transposed into the layout the kernels
need) and calls the very ``sl_*`` functions of the training step
(:mod:`fastmlp.backends._step`), as one slice, with the GIL released.
:mod:`fastmlp.backends._compiled` exports them.
"""

from cython.parallel cimport prange, threadid

import numpy as np

from .._sparse import SparseRows
from ._interface import PREDICT_BLOCK_ROWS
from ._layers import network_outputs as dense_network_outputs
from ._sparse_layer import choose_tiles

from ._layers cimport (NetC, _Net, act_kind, al1, al2, check_lambdas, fm_column_sums, fm_opt,
                       fm_opt_prepare, layer_update_row, n_threads_of, net_forward, own_gemm,
                       r16, set_opt)
from ._sparse_batch cimport sl_forward, sl_gradient, sl_prepare, sl_stage, sl_update
from ._sparse_layer cimport SparseC, SparseLayer, pack_dense_layers

__all__ = ["sparse_forward_layer", "sparse_gradient_update", "network_outputs"]

cdef enum:
    CHUNK_ROWS = 256        # rows per call of the layer's forward (its tile buffers' size)


def _rows_and_idx(X, idx):
    """X checked to be SparseRows, idx as a contiguous intp array of its rows."""
    if not isinstance(X, SparseRows):
        raise TypeError(f"X: expected fastmlp._sparse.SparseRows, got {type(X).__name__}")
    idx = np.ascontiguousarray(idx, dtype=np.intp)
    if idx.ndim != 1:
        raise ValueError(f"idx: expected a 1-D array of row numbers, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= X.shape[0]):
        bad = int(np.argmax((idx < 0) | (idx >= X.shape[0])))
        raise ValueError(f"idx[{bad}] = {idx[bad]} is out of range for {X.shape[0]} rows")
    return idx


def _weights(W, str name, Py_ssize_t n_in, writable=False):
    if not (isinstance(W, np.ndarray) and W.dtype == np.float32 and W.ndim == 2
            and W.flags.c_contiguous and W.flags.aligned):
        raise ValueError(f"{name}: must be an aligned C-contiguous float32 matrix "
                         "(bias in column 0)")
    if W.shape[1] != n_in + 1 or W.shape[0] < 1:
        raise ValueError(f"{name}: expected shape (n_out, {n_in + 1}), got {W.shape}")
    if writable and not W.flags.writeable:
        raise ValueError(f"{name}: must be writable")
    return W


def _scaling(mean, scale):
    if mean is None and scale is None:
        return None
    return (mean, scale)


def sparse_forward_layer(X, idx, W, float[:, ::1] A_out, str activation="sigmoid", mean=None,
                         scale=None):
    """A_out := act(W[:, 1:] ((X[idx] - mean) / scale) + W[:, 0]), X sparse.

    The weights are transposed into the layer's layout, the scaling folded
    in (values read as x / scale, the mean's share in the bias); then
    ``sl_forward`` in chunks of rows, as the training step runs it.

    X     : SparseRows (n, n_in)             # IN  (raw values; never scaled)
    idx   : (B,) intp                        # IN  the rows
    W     : (n_out, 1 + n_in) float32, C     # IN
    A_out : (B, n_out) float32, C            # OUT
    """
    idx = _rows_and_idx(X, idx)
    W = _weights(W, "W", X.shape[1])
    al2(A_out, "A_out")
    cdef int kind = act_kind(activation)
    cdef Py_ssize_t B = idx.shape[0], H = W.shape[0], c0
    if (A_out.shape[0], A_out.shape[1]) != (B, H):
        raise ValueError(f"A_out: expected shape {(B, H)}, got {(A_out.shape[0], A_out.shape[1])}")
    if B == 0:
        return
    cdef SparseLayer layer = SparseLayer(X, W, None, None, _scaling(mean, scale), 1, CHUNK_ROWS,
                                         0, choose_tiles(X, H), own_gemm(), False)
    cdef const Py_ssize_t[::1] ix = idx
    cdef float[::1] scratch = np.empty(r16(H), np.float32)
    with nogil:
        c0 = 0
        while c0 < B:
            sl_forward(&layer.c, 0, &ix[c0], min(CHUNK_ROWS, B - c0), &A_out[c0, 0], &scratch[0],
                       kind)
            c0 += CHUNK_ROWS


def sparse_gradient_update(delta, X, idx, W, dW_prev, double lr, double l2, double l1,
                           double momentum, float[:, ::1] Gw, float[::1] gb, tmp=None,
                           optimizer=None, state2=None, long step=1, mean=None, scale=None):
    """Regularised batch gradient of the first layer on sparse rows, then one
    optimiser step on ``W`` (as :func:`fastmlp.backends._compiled.gradient_update`):

    Gw := (delta^T X[idx]) / scale - gb (mean / scale)^T + l2 W[:, 1:] + l1 sign(W[:, 1:])
    gb := sum_b delta

    The training step's sequence, as one slice: tiles of the rows
    (``sl_stage``, ``sl_gradient``), ``sl_prepare`` (the bias gradient; rows:
    the batch's entries sorted by column), the bias rows' ``layer_update_row``,
    then ``sl_update`` on every block of features; the transposed weights and
    states are written back into W, dW_prev and state2.  Afterwards Gw and gb
    hold the amounts subtracted.

    delta : (B, n_out) float32               # IN
    X     : SparseRows (n, n_in), idx (B,)   # IN
    W, dW_prev, state2 : (n_out, 1 + n_in) float32, C   # IN/OUT
    Gw : (n_out, n_in) float32, C;  gb : (n_out,) float32   # OUT
    tmp   : unused; accepted for the twin's signature
    """
    idx = _rows_and_idx(X, idx)
    cdef Py_ssize_t n_in = X.shape[1]
    W = _weights(W, "W", n_in, True)
    dW_prev = _weights(dW_prev, "dW_prev", n_in, True)
    cdef Py_ssize_t B = idx.shape[0], H = W.shape[0], c0, k
    if dW_prev.shape != W.shape:
        raise ValueError(f"dW_prev: expected shape {W.shape}, got {dW_prev.shape}")
    cdef const float[:, ::1] D = np.ascontiguousarray(delta, np.float32)
    if (D.shape[0], D.shape[1]) != (B, H):
        raise ValueError(f"delta: expected shape {(B, H)}, got {(D.shape[0], D.shape[1])}")
    al2(Gw, "Gw"); al1(gb, "gb")
    if (Gw.shape[0], Gw.shape[1]) != (H, n_in):
        raise ValueError(f"Gw: expected shape {(H, n_in)}, got {(Gw.shape[0], Gw.shape[1])}")
    if gb.shape[0] != H:
        raise ValueError(f"gb: expected shape ({H},), got ({gb.shape[0]},)")
    check_lambdas(lr, l2, l1, momentum)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cdef fm_opt o
    S2 = None
    if set_opt(&o, optimizer, momentum) == 2:
        if state2 is None:
            raise ValueError("state2: adam needs its second-moment array")
        S2 = _weights(state2, "state2", n_in, True)
        if S2.shape != W.shape:
            raise ValueError(f"state2: expected shape {W.shape}, got {S2.shape}")
    fm_opt_prepare(&o, <float>lr, step)
    cdef SparseLayer layer = SparseLayer(X, W, dW_prev, S2, _scaling(mean, scale), 1,
                                         CHUNK_ROWS, max(B, 1), choose_tiles(X, H), own_gemm(),
                                         True)
    cdef const Py_ssize_t[::1] ix = idx
    cdef float[::1] gpart = np.zeros(r16(H), np.float32)
    cdef float[:, ::1] Wm = W, Vm = dW_prev
    cdef float[:, ::1] Sm = S2 if S2 is not None else dW_prev
    with nogil:
        if B > 0:
            fm_column_sums(&gpart[0], &D[0, 0], B, H, 0)
            if layer.c.tiles:
                c0 = 0
                while c0 < B:
                    sl_stage(&layer.c, 0, &ix[c0], min(CHUNK_ROWS, B - c0))
                    sl_gradient(&layer.c, 0, min(CHUNK_ROWS, B - c0), &D[c0, 0], H)
                    c0 += CHUNK_ROWS
        sl_prepare(&layer.c, &gpart[0], r16(H), 1, &ix[0] if B > 0 else NULL, B)
        for k in range(H):
            gb[k] = gpart[k]
            layer_update_row(&Wm[k, 0], &Vm[k, 0], &Sm[k, 0], NULL, &gb[k], 0, 0, 1, 1, 0,
                             <float>l2, <float>l1, &o)
        sl_update(&layer.c, 1, &D[0, 0] if B > 0 else NULL, <float>l2, <float>l1, &o)
    layer.sync_out()
    np.copyto(np.asarray(Gw), layer.recorded())


def network_outputs(X, weights, out, Py_ssize_t block_rows=PREDICT_BLOCK_ROWS, n_threads=None,
                    str activation="sigmoid", str output="sigmoid", input_scaling=None):
    """out := network outputs for every row of X, in row blocks.

    X       : (n, n_in) float32, C, scaled; or SparseRows, raw,  # IN
              with ``input_scaling`` (mean, scale) folded into the first layer
    weights : list of (n_out, 1 + n_in) float32, C  # IN
    out     : (n, K) float32, C                     # OUT

    Dense X goes to ``_layers.network_outputs`` (``input_scaling`` is not
    used: X is scaled).  Sparse rows: the first layer is transposed once per
    call, then each block goes through ``sl_forward`` and the dense layers'
    ``net_forward``, blocks spread over ``n_threads`` OpenMP threads (default:
    all), each with its own buffers allocated once per call.  BLAS must be
    limited to one thread when ``n_threads`` > 1.  Returns ``out``.
    """
    if not isinstance(X, SparseRows):
        return dense_network_outputs(X, weights, out, block_rows, n_threads, activation,
                                     output)
    cdef float[:, ::1] O = out
    al2(O, "out")
    cdef _Net net = _Net(weights, X.shape[1], False, activation, output)
    cdef Py_ssize_t n = X.shape[0], K = net.n_out[net.L - 1], H = net.n_out[0]
    if O.shape[0] != n or O.shape[1] != K:
        raise ValueError(f"out: expected shape {(n, K)}, got {(O.shape[0], O.shape[1])}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    cdef int T = n_threads_of(n_threads)
    cdef SparseLayer layer = SparseLayer(X, weights[0], None, None, input_scaling, T,
                                         block_rows, 0, False, own_gemm(), False)
    pack_dense_layers(net)
    cdef Py_ssize_t width = max(1, net.widest_hidden), n_blocks = (n + block_rows - 1) // block_rows
    cdef float[:, :, ::1] Bf = np.empty((T, 2, block_rows * width), np.float32)
    cdef float[:, ::1] S = np.empty((T, r16(net.widest)), np.float32)
    cdef const Py_ssize_t[::1] rows = np.arange(n, dtype=np.intp)
    cdef Py_ssize_t blk
    cdef int t
    if n == 0:
        return out
    with nogil:
        net.repack()
        if T > 1:
            for blk in prange(n_blocks, schedule="static", num_threads=T):
                t = threadid()
                _sparse_block(&layer.c, &net.c, &rows[0], blk * block_rows,
                              min(n, (blk + 1) * block_rows), &O[0, 0], &Bf[t, 0, 0],
                              &Bf[t, 1, 0], &S[t, 0], t)
        else:
            for blk in range(n_blocks):
                _sparse_block(&layer.c, &net.c, &rows[0], blk * block_rows,
                              min(n, (blk + 1) * block_rows), &O[0, 0], &Bf[0, 0, 0],
                              &Bf[0, 1, 0], &S[0, 0], 0)
    return out


cdef void _sparse_block(SparseC *sl, const NetC *net, const Py_ssize_t *rows, Py_ssize_t r0,
                        Py_ssize_t r1, float *out, float *buf0, float *buf1, float *scratch,
                        int t) noexcept nogil:
    """Rows r0..r1 of sparse X through every layer into rows r0..r1 of out."""
    cdef Py_ssize_t l, m = r1 - r0
    cdef int L = net.L
    cdef float *dst = out + r0 * net.n_out[L - 1] if L == 1 else buf0
    cdef float *tmp
    sl_forward(sl, t, rows + r0, m, dst, scratch, net.out_act if L == 1 else net.hidden_act)
    for l in range(1, L):
        tmp = out + r0 * net.n_out[L - 1] if l == L - 1 else buf1
        net_forward(net, l, dst, m, tmp, scratch, NULL)
        buf1 = dst
        dst = tmp
