# cython: language_level=3
"""A batch through the compiled backend's sparse first layer.

Design
------
The training step (:mod:`fastmlp.backends._step`) and the checked ``def``
kernels (:mod:`fastmlp.backends._sparse_kernels`) call these functions on a
:class:`~fastmlp.backends._sparse_layer.SparseLayer`'s state, without the GIL
and without allocating:

* :func:`sl_forward`: a slice's chunk of rows, tiles (four rows over the
  union of their columns, staged tile by tile between the products: a
  weight row loaded once per tile) or row by row (prefetching the next row's CSR lines and, for wide
  inputs, its weight rows), then the forward bias and activation;
* :func:`sl_gradient`: tiles add the chunk's share into the slice's partial
  gradient (four rows into a gradient row at once), from the staged tiles;
* :func:`sl_prepare`: the bias gradient summed over the slices; rows sort the
  batch's entries by column (a radix sort), so that each feature's gradient
  is formed in registers from the batch's deltas right before its update and
  is never stored;
* :func:`sl_update` / :func:`sl_update_block`: blocks of FBU features, each a
  job of its own over the threads (the slices' partials summed, or the
  sorted entries accumulated; the centring term; ``fm_update_row``'s
  regularised optimiser step on the block's contiguous run of weights).  L2,
  momentum and adam's moments touch every weight every step, including those
  of features absent from the batch.  A block's result does not depend on
  which thread runs it: the first layer's update does not depend on the
  thread count beyond the deltas that feed it (the dense step's, per slice).

A row's forward sums its terms in increasing column order, one product at a
time, in tiles (absent columns add exact zeros) as row by row: the two ways
and prediction give the same outputs bit for bit.
"""

from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memcpy, memset

from ._layers cimport fm_bias_act, fm_opt, fm_update_row
from ._sparse_layer cimport SparseC, fm_rows, sl_centre_block, sl_finish_centre

cdef extern from "fastmlp_sparse.h" nogil:
    void fm_sp_prefetch_ptr(const fm_rows *X, int64_t r)
    void fm_sp_prefetch_row(const fm_rows *X, int64_t r)
    void fm_sp_prefetch_weights(const int32_t *js, Py_ssize_t n, const float *Wt,
                                Py_ssize_t HP)
    Py_ssize_t fm_sp_entries(const fm_rows *X, int64_t r, const float *inv, int32_t *js,
                             float *xs)
    void fm_sp_tile_mark(const fm_rows *X, const Py_ssize_t *rows, int R, const float *inv,
                         float *Xd, uint8_t *flags)
    Py_ssize_t fm_sp_collect_forward(int own, Py_ssize_t n_cols, float *Xd, uint8_t *flags,
                                     int32_t *uj, float *ux, int R, const float *Wt,
                                     Py_ssize_t HP, Py_ssize_t H, float *A, Py_ssize_t lda)
    Py_ssize_t fm_sp_tile_stage(int own, const fm_rows *X, const Py_ssize_t *rows, int R,
                                const float *inv, Py_ssize_t n_cols, float *Xd,
                                uint8_t *flags, int32_t *uj, float *ux)
    void fm_sp_row_dot(int own, const int32_t *js, const float *xs, Py_ssize_t n,
                       const float *Wt, Py_ssize_t HP, Py_ssize_t H, float *z)
    void fm_sp_tile_forward(int own, Py_ssize_t U, const int32_t *uj, const float *ux, int R,
                            const float *Wt, Py_ssize_t HP, Py_ssize_t H, float *A,
                            Py_ssize_t lda)
    void fm_sp_tile_gradient(int own, Py_ssize_t U, const int32_t *uj, const float *ux, int R,
                             const float *D, Py_ssize_t ldd, Py_ssize_t H, float *G,
                             Py_ssize_t HP)
    Py_ssize_t fm_sp_sort_entries(const fm_rows *X, const Py_ssize_t *idx, Py_ssize_t b,
                                  const float *inv, Py_ssize_t n_cols, int32_t *ej,
                                  int32_t *er, float *ex, int32_t *tj, int32_t *tr, float *tx,
                                  int32_t *cnt, int32_t **out_j, int32_t **out_r,
                                  float **out_x)
    void fm_sp_accumulate(int own, const int32_t *er, const float *ex, Py_ssize_t k0,
                          Py_ssize_t k1, const float *D, Py_ssize_t ldd, Py_ssize_t H,
                          Py_ssize_t HP, float *g)
    void fm_sp_sum_parts(float *g, float *G, Py_ssize_t part, int T, Py_ssize_t HP)
    void fm_sp_centre_grad(float *g, const float *gb, float m, Py_ssize_t HP)

cdef enum:
    PREFETCH_ROWS = 4       # rows ahead whose CSR lines the forward prefetches


cdef inline void _prefetch_tile(SparseC *sl, const Py_ssize_t *idx, Py_ssize_t rows,
                                Py_ssize_t t) noexcept nogil:
    """Before tile t (rows 4t..4t+3 of idx[0:rows]): the CSR lines of the rows
    two tiles on prefetched, and the row pointers of those four tiles on
    (the lines need them)."""
    cdef Py_ssize_t q
    if t == 0:
        for q in range(min(rows, 16)):
            fm_sp_prefetch_ptr(&sl.X, idx[q])
    for q in range(4 * t + 16, min(rows, 4 * t + 20)):
        fm_sp_prefetch_ptr(&sl.X, idx[q])
    for q in range(4 * t + 8, min(rows, 4 * t + 12)):
        fm_sp_prefetch_row(&sl.X, idx[q])


cdef inline Py_ssize_t _stage_tile(SparseC *sl, int s, const Py_ssize_t *idx, Py_ssize_t rows,
                                   Py_ssize_t t, int32_t *uj, float *ux) noexcept nogil:
    """Tile t of slice s staged into uj, ux; returns its union size."""
    _prefetch_tile(sl, idx, rows, t)
    return fm_sp_tile_stage(sl.own, &sl.X, idx + 4 * t, <int>min(4, rows - 4 * t), sl.inv,
                            sl.n_in, sl.Xd + s * sl.n_in * 4, sl.flags + s * sl.flags_len, uj,
                            ux)


cdef void sl_stage(SparseC *sl, int s, const Py_ssize_t *idx, Py_ssize_t rows) noexcept nogil:
    """Tiles: the union of columns of rows idx[0:rows] (at most CH), four rows
    at a time, into slice s's stage buffers (sl_forward does this itself)."""
    cdef Py_ssize_t t, U
    cdef int32_t *uj = sl.uj + s * sl.tile_cap
    cdef float *ux = sl.ux + s * 4 * sl.tile_cap
    cdef Py_ssize_t *tU = sl.tileU + s * (sl.CH // 4 + 1)
    for t in range((rows + 3) // 4):
        U = _stage_tile(sl, s, idx, rows, t, uj, ux)
        tU[t] = U
        uj += U
        ux += 4 * U


cdef void sl_forward(SparseC *sl, int s, const Py_ssize_t *idx, Py_ssize_t rows, float *A,
                     float *scratch, int kind) noexcept nogil:
    """A (rows x H) := act(X[idx] . W^T + fbias), as slice s: the folded
    scaling, bias ``sl.fbias`` and activation ``kind``."""
    cdef Py_ssize_t H = sl.H, HP = sl.HP, i, t, n0, n1 = 0
    cdef int32_t *uj
    cdef float *ux
    cdef Py_ssize_t *tU
    cdef int32_t *ja
    cdef int32_t *jb
    cdef int32_t *jt
    cdef float *xa
    cdef float *xb
    cdef float *xt
    cdef bint wide = sl.n_in * HP > 524288        # weights beyond L2: prefetch them
    if rows <= 0:
        return
    if sl.tiles:
        # each tile marked right before its product, and collected with it
        # (the rows' cache misses then overlap the arithmetic of the tiles
        # before); the staged tiles are kept for sl_gradient
        uj = sl.uj + s * sl.tile_cap
        ux = sl.ux + s * 4 * sl.tile_cap
        tU = sl.tileU + s * (sl.CH // 4 + 1)
        for t in range((rows + 3) // 4):
            _prefetch_tile(sl, idx, rows, t)
            fm_sp_tile_mark(&sl.X, idx + 4 * t, <int>min(4, rows - 4 * t), sl.inv,
                            sl.Xd + s * sl.n_in * 4, sl.flags + s * sl.flags_len)
            tU[t] = fm_sp_collect_forward(sl.own, sl.n_in, sl.Xd + s * sl.n_in * 4,
                                          sl.flags + s * sl.flags_len, uj, ux,
                                          <int>min(4, rows - 4 * t), sl.Wt, HP, H,
                                          A + 4 * t * H, H)
            uj += tU[t]
            ux += 4 * tU[t]
    else:
        ja = sl.js + s * 2 * sl.maxnnz
        jb = ja + sl.maxnnz
        xa = sl.xs + s * 2 * sl.maxnnz
        xb = xa + sl.maxnnz
        n0 = fm_sp_entries(&sl.X, idx[0], sl.inv, ja, xa)
        for i in range(min(rows, 2 * PREFETCH_ROWS)):
            fm_sp_prefetch_ptr(&sl.X, idx[i])
        for i in range(rows):
            if i + 2 * PREFETCH_ROWS < rows:
                fm_sp_prefetch_ptr(&sl.X, idx[i + 2 * PREFETCH_ROWS])
            if i + PREFETCH_ROWS < rows:
                fm_sp_prefetch_row(&sl.X, idx[i + PREFETCH_ROWS])
            if i + 1 < rows:
                n1 = fm_sp_entries(&sl.X, idx[i + 1], sl.inv, jb, xb)
                if wide:
                    fm_sp_prefetch_weights(jb, n1, sl.Wt, HP)
            fm_sp_row_dot(sl.own, ja, xa, n0, sl.Wt, HP, H, A + i * H)
            jt = ja; ja = jb; jb = jt
            xt = xa; xa = xb; xb = xt
            n0 = n1
    fm_bias_act(A, rows, H, H, sl.fbias, 1, scratch, kind)


cdef void sl_gradient(SparseC *sl, int s, Py_ssize_t rows, const float *D,
                      Py_ssize_t ldd) noexcept nogil:
    """Tiles: slice s's partial gradient += the share of the rows staged last
    (by sl_forward or sl_stage), D (rows x H, row stride ldd) their deltas.
    Rows: nothing (see sl_sort)."""
    if not sl.tiles:
        return
    cdef int32_t *uj = sl.uj + s * sl.tile_cap
    cdef float *ux = sl.ux + s * 4 * sl.tile_cap
    cdef Py_ssize_t *tU = sl.tileU + s * (sl.CH // 4 + 1)
    cdef Py_ssize_t t
    for t in range((rows + 3) // 4):
        fm_sp_tile_gradient(sl.own, tU[t], uj, ux, <int>min(4, rows - 4 * t), D + 4 * t * ldd,
                            ldd, sl.H, sl.G + s * sl.n_in * sl.HP, sl.HP)
        uj += tU[t]
        ux += 4 * tU[t]


cdef void sl_sort(SparseC *sl, const Py_ssize_t *idx, Py_ssize_t b) noexcept nogil:
    """Rows: the entries of batch rows idx[0:b] sorted by column, and the
    first entry of each block of features."""
    if sl.tiles:
        return
    cdef Py_ssize_t n = fm_sp_sort_entries(&sl.X, idx, b, sl.inv, sl.n_in, sl.ej, sl.er,
                                           sl.ex, sl.tj, sl.tr, sl.tx, sl.cnt, &sl.sj, &sl.sr,
                                           &sl.sx)
    cdef Py_ssize_t k = 0, blk
    for blk in range(sl.NB + 1):
        while k < n and sl.sj[k] < blk * sl.FBU:
            k += 1
        sl.bstart[blk] = k


cdef double sl_update_block(SparseC *sl, Py_ssize_t blk, int t, const float *gb, const float *D,
                            Py_ssize_t ldd, float l2, float l1, const fm_opt *o) noexcept nogil:
    """Gradient and optimiser step of the features of block blk, in thread t's
    buffer: tiles sum the slices' partials (and zero them), rows accumulate
    the sorted entries against the batch's deltas D (row stride ldd); minus
    gb (the bias gradient, HP floats) times mean / scale; then fm_update_row.
    Returns the block's regularisation cost (NaN if a weight diverged)."""
    cdef Py_ssize_t HP = sl.HP, j0 = blk * sl.FBU, j1 = min(sl.n_in, j0 + sl.FBU), j, k, k1, end
    cdef float *g = sl.gbuf + t * sl.FBU * HP
    cdef double reg
    if sl.tiles:
        for j in range(j0, j1):
            fm_sp_sum_parts(g + (j - j0) * HP, sl.G + j * HP, sl.n_in * HP, sl.T, HP)
    else:
        k, end = sl.bstart[blk], sl.bstart[blk + 1]
        for j in range(j0, j1):
            k1 = k
            while k1 < end and sl.sj[k1] == j:
                k1 += 1
            if k1 > k:
                fm_sp_accumulate(sl.own, sl.sr, sl.sx, k, k1, D, ldd, sl.H, HP, g + (j - j0) * HP)
            else:
                memset(g + (j - j0) * HP, 0, HP * sizeof(float))
            k = k1
    if sl.ms != NULL:
        for j in range(j0, j1):
            fm_sp_centre_grad(g + (j - j0) * HP, gb, sl.ms[j], HP)
    reg = fm_update_row(sl.Wt + j0 * HP, sl.S1t + j0 * HP, sl.S2t + j0 * HP, g, 0, 1,
                        (j1 - j0) * HP, l2, l1, o)
    if sl.rec != NULL:
        memcpy(sl.rec + j0 * HP, g, (j1 - j0) * HP * sizeof(float))
    if sl.ms != NULL:
        sl_centre_block(sl, blk)
    return reg


cdef void sl_prepare(SparseC *sl, const float *gb, Py_ssize_t part, int T,
                     const Py_ssize_t *idx, Py_ssize_t b) noexcept nogil:
    """A step's work between its slices and its update: sl.gbsum := the bias
    gradient, the T slices' parts of gb (``part`` floats apart) summed in
    order as fm_update_bias sums them (the bias update then overwrites the
    parts); rows: the batch's entries sorted by column (sl_sort)."""
    cdef Py_ssize_t k
    cdef int t
    for k in range(sl.H):
        sl.gbsum[k] = gb[k]
        for t in range(1, T):
            sl.gbsum[k] = sl.gbsum[k] + gb[t * part + k]
    sl_sort(sl, idx, b)


cdef double sl_update(SparseC *sl, int T, const float *D, float l2, float l1,
                      const fm_opt *o) noexcept nogil:
    """The update of every block of features over T threads (any thread may
    run any block: the result is the same), D the batch's deltas (row stride
    H); then sl_update_done.  (The training step runs the blocks in the
    dense update's loop instead, as further jobs.)"""
    cdef Py_ssize_t blk
    if T > 1:
        for blk in prange(sl.NB, schedule="dynamic", num_threads=T):
            sl.block_reg[blk] = sl_update_block(sl, blk, threadid(), sl.gbsum, D, sl.H, l2, l1,
                                                o)
    else:
        for blk in range(sl.NB):
            sl.block_reg[blk] = sl_update_block(sl, blk, 0, sl.gbsum, D, sl.H, l2, l1, o)
    return sl_update_done(sl)


cdef double sl_update_done(SparseC *sl) noexcept nogil:
    """After the blocks' updates (and the bias's): their regularisation costs
    summed in block order, returned; the centring term and forward bias of
    the next step (sl_finish_centre)."""
    cdef Py_ssize_t blk
    cdef double reg = 0.0
    for blk in range(sl.NB):
        reg += sl.block_reg[blk]
    sl_finish_centre(sl)
    return reg
