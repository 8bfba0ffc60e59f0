# cython: language_level=3
"""The compiled backend's sparse first layer: its state, layout and way through a batch.

Design
------
A sparse X (:class:`fastmlp._sparse.SparseRows`) is never densified or
scaled.  The first layer keeps its non-bias weights and their optimiser
states transposed, ``Wt`` (n_in, HP): feature j's H weights in row j, zero
padded to HP (H rounded up to 16 floats), so that a feature's weights are
whole vectors and a block of features is one contiguous run.  Its bias
stays in column 0 of the network state's matrix and is updated there by the
dense update.  The scaling is folded in as
:mod:`fastmlp.backends._numpy_sparse` states it: a value is read as
x inv[j] (inv = 1 / scale, once per fit: a product per entry is cheaper
than a division), and the mean's share is the forward bias term
``c = sum_j Wt[j] mean[j] / scale[j]`` (kept per block of features, summed
in block order) and the gradient term ``-(sum_b delta) mean[j] / scale[j]``.

:class:`SparseLayer` holds this state and every buffer a fit needs, copies
the weights in from the network state's arrays and back
(:meth:`SparseLayer.sync_out`, which the trainer calls around snapshots and
epoch ends), and picks the way through a batch (:func:`choose_tiles`):
four-row tiles over the union of their columns for narrow inputs whose rows
share columns, or row by row with the batch's entries sorted by column for
wide ones.  The per-batch work is :mod:`fastmlp.backends._sparse_batch`.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc
from libc.string cimport memset

import numpy as np

from .._sparse import SparseRows
from ._inputs import scaling_arrays
from ._layers import aligned_zeros

from ._layers cimport _Net, fm_packed_width, own_gemm, r16

cdef extern from "fastmlp_sparse.h" nogil:
    int fm_sp_avx512bw_available()
    void fm_sp_centre(const float *Wt, const float *ms, Py_ssize_t n, Py_ssize_t HP, float *c)
    void fm_sp_transpose_in(const float *W, Py_ssize_t ldw, Py_ssize_t H, Py_ssize_t n,
                            float *Wt, Py_ssize_t HP)
    void fm_sp_transpose_out(const float *Wt, Py_ssize_t HP, Py_ssize_t H, Py_ssize_t n,
                             float *W, Py_ssize_t ldw)

cdef enum:
    BLOCK_FLOATS = 2048     # floats of a block's gradient rows (FBU = this // HP features)

#: "auto" picks tiles or rows per fit (choose_tiles); tests force one.
_MODE = "auto"


def set_sparse_mode(str mode):
    """Force the sparse layer's way through a batch ("tiles" or "rows") for
    layers built from now on, or let each fit choose ("auto"); returns the
    previous setting.  For tests and benchmarks that compare the two."""
    global _MODE
    if mode not in ("auto", "tiles", "rows"):
        raise ValueError(f"mode must be 'auto', 'tiles' or 'rows', got {mode!r}")
    previous, _MODE = _MODE, mode
    return previous


def choose_tiles(X, Py_ssize_t H):
    """Whether four-row tiles pay on X: its partial gradients stay small
    (n_in x HP floats within 1 MiB) and four random rows share enough columns
    that their union is at most 3/4 of their entries (estimated from the
    column frequencies: MNIST's pixels give 0.51, text far above)."""
    if _MODE != "auto":
        return _MODE == "tiles"
    n, m = X.shape
    if m * r16(H) > 262144 or X.nnz == 0:
        return False
    p = np.bincount(X.indices, minlength=m) / n
    union = float(np.sum(1.0 - (1.0 - p) ** 4))
    return union <= 0.75 * 4.0 * float(p.sum())


cdef int pack_dense_layers(_Net net) except -1:
    """fastmlp's packed weights for layers 1, 2, ... of ``net`` (as
    ``_Net.enable_packing``), none for the sparse layer 0: its packed copy
    would be as large as the dense input it never builds."""
    if not own_gemm() or net.c.P != NULL:
        return 0
    net.P = <float **>calloc(net.L, sizeof(float *))
    net.NP = <Py_ssize_t *>calloc(net.L, sizeof(Py_ssize_t))
    if net.P == NULL or net.NP == NULL:
        raise MemoryError()
    net._packed = []
    cdef float[::1] m
    for l in range(1, net.L):
        net.NP[l] = fm_packed_width(net.n_out[l])
        a = aligned_zeros(max(1, net.n_in[l] * net.NP[l]))
        net._packed.append(a)
        m = a
        net.P[l] = &m[0]
    net.c.P = net.P
    net.c.NP = net.NP
    return 0


cdef class SparseLayer:
    """A sparse first layer's state and buffers for one fit (or one kernel call).

    ``SparseLayer(X, W, S1, S2, scaling, T, CH, Bmax, tiles, own, record)``:
    X is :class:`SparseRows`; W, S1 (and S2 for adam, else None) the network
    state's (H, 1 + n_in) arrays, which it copies into its own transposed
    layout (and back with :meth:`sync_out`); ``scaling`` is (mean, scale) or
    None; T slices of at most CH rows per call of ``sl_forward``, batches of
    at most Bmax rows; ``tiles`` the way through a batch; ``own`` the AVX-512
    kernels; ``record`` keeps what each update subtracts (``c.rec``).
    """

    def __cinit__(self, X, W, S1, S2, scaling, int T, Py_ssize_t CH, Py_ssize_t Bmax,
                  bint tiles, bint own, bint record):
        if not isinstance(X, SparseRows):
            raise TypeError("X: expected SparseRows")
        cdef Py_ssize_t n_in = X.shape[1], H = W.shape[0], HP = r16(H)
        keep = [X, W, S1, S2]
        cdef bint train = S1 is not None      # else the forward only (prediction)
        for name, a in (("W", W), ("S1", S1), ("S2", S2)):
            if a is None and name != "W":
                continue
            if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
                    and a.flags.aligned and a.shape == (H, n_in + 1)):
                raise ValueError(f"{name}: must be an aligned C-contiguous float32 array of "
                                 f"shape {(H, n_in + 1)}")
        self.state_arrays = (W, S1, S2)
        cdef const int64_t[::1] ip = X.indptr
        self.c.X.indptr = &ip[0]
        self.c.X.idx32 = X.indices.dtype == np.int32
        self.c.X.val32 = X.data.dtype == np.float32
        # an empty matrix has no entries to point at: any valid address will do
        ind = X.indices if X.nnz else np.zeros(1, X.indices.dtype)
        val = X.data if X.nnz else np.zeros(1, X.data.dtype)
        keep += [ind, val]
        self.c.X.indices = <const void *><size_t>ind.ctypes.data
        self.c.X.values = <const void *><size_t>val.ctypes.data
        self.c.n_rows, self.c.n_in, self.c.H, self.c.HP = X.shape[0], n_in, H, HP
        self.c.tiles, self.c.T, self.c.CH = tiles, T, CH
        self.c.own = own and fm_sp_avx512bw_available()     # (tiles: byte compares)
        self.c.ldw = n_in + 1

        def buf(n, dtype=np.float32):
            a = aligned_zeros(max(1, int(n)), dtype)
            keep.append(a)
            return a

        cdef float[::1] f
        cdef int32_t[::1] i4
        cdef uint8_t[::1] u1
        cdef Py_ssize_t[::1] ip8
        cdef const float[:, ::1] w2 = W
        self.c.W = <float *>&w2[0, 0]        # written only by a training step
        f = buf(n_in * HP); self.c.Wt = &f[0]
        self.c.S1t = self.c.S2t = NULL
        if train:
            f = buf(n_in * HP); self.c.S1t = &f[0]
            self.c.S2t = self.c.S1t
        if S2 is not None and train:
            f = buf(n_in * HP); self.c.S2t = &f[0]
        self.c.inv = self.c.ms = NULL
        if scaling is not None:
            mean, scale = scaling_arrays(scaling, n_in)
            if np.any(scale != 1):
                a = buf(n_in); a[:] = np.float32(1) / scale; f = a; self.c.inv = &f[0]
            if np.any(mean != 0):
                a = buf(n_in); a[:] = mean / scale; f = a; self.c.ms = &f[0]
        self.c.FBU = max(1, BLOCK_FLOATS // HP)
        self.c.NB = (n_in + self.c.FBU - 1) // self.c.FBU
        f = buf(HP); self.c.c = &f[0]
        f = buf(HP); self.c.fbias = &f[0]
        f = buf(self.c.NB * HP if self.c.ms != NULL else 1); self.c.cpart = &f[0]
        f = buf(T * self.c.FBU * HP if train else 1); self.c.gbuf = &f[0]
        f = buf(Bmax * H if train else 1); self.c.D0 = &f[0]
        f = buf(HP); self.c.gbsum = &f[0]
        cdef double[::1] d8 = buf(self.c.NB if train else 1, np.float64)
        self.c.block_reg = &d8[0]
        self.c.rec = NULL
        if record and train:
            f = buf(n_in * HP); self.c.rec = &f[0]
        lengths = np.diff(X.indptr)
        self.c.maxnnz = max(1, int(lengths.max()))
        if tiles:
            f = buf(T * n_in * 4); self.c.Xd = &f[0]
            self.c.flags_len = (n_in + 63) // 64 * 64
            u1 = buf(T * self.c.flags_len, np.uint8); self.c.flags = &u1[0]
            self.c.tile_cap = ((CH + 3) // 4) * min(n_in, 4 * self.c.maxnnz)
            i4 = buf(T * self.c.tile_cap, np.int32); self.c.uj = &i4[0]
            f = buf(T * 4 * self.c.tile_cap); self.c.ux = &f[0]
            ip8 = buf(T * (CH // 4 + 1), np.intp); self.c.tileU = &ip8[0]
            f = buf(T * n_in * HP if train else 1); self.c.G = &f[0]
        else:
            i4 = buf(T * 2 * self.c.maxnnz, np.int32); self.c.js = &i4[0]
            f = buf(T * 2 * self.c.maxnnz); self.c.xs = &f[0]
            self.c.ecap = int(np.sort(lengths)[-min(Bmax, len(lengths)):].sum()) if train else 0
            arrays = [buf(self.c.ecap, t) for t in (np.int32, np.int32, np.float32) * 2]
            i4 = arrays[0]; self.c.ej = &i4[0]
            i4 = arrays[1]; self.c.er = &i4[0]
            f = arrays[2]; self.c.ex = &f[0]
            i4 = arrays[3]; self.c.tj = &i4[0]
            i4 = arrays[4]; self.c.tr = &i4[0]
            f = arrays[5]; self.c.tx = &f[0]
            i4 = buf(2049, np.int32); self.c.cnt = &i4[0]
            ip8 = buf(self.c.NB + 1, np.intp); self.c.bstart = &ip8[0]
            self.c.sj, self.c.sr, self.c.sx = self.c.ej, self.c.er, self.c.ex
        self._keep = keep
        self.sync_in_arrays()

    @property
    def tiles(self):
        """True: four-row tiles; False: rows and the batch sorted by column."""
        return bool(self.c.tiles)

    @property
    def n_blocks(self):
        """Update jobs (blocks of features) per step."""
        return self.c.NB

    cdef int sync_out_arrays(self) except -1:
        """Write the weights and states into the state's arrays (columns 1:)."""
        W, S1, S2 = self.state_arrays
        cdef float[:, ::1] a
        cdef const float *src
        for arr, src_p in ((W, 0), (S1, 1), (S2, 2)):
            if arr is None:
                continue
            a = arr
            src = self.c.Wt if src_p == 0 else (self.c.S1t if src_p == 1 else self.c.S2t)
            with nogil:
                fm_sp_transpose_out(src, self.c.HP, self.c.H, self.c.n_in, &a[0, 1],
                                    self.c.ldw)
        return 0

    cdef int sync_in_arrays(self) except -1:
        """Take the weights and states from the state's arrays, and the
        centring term from the weights."""
        W, S1, S2 = self.state_arrays
        cdef const float[:, ::1] a
        cdef float *dst
        cdef Py_ssize_t blk
        for arr, dst_p in ((W, 0), (S1, 1), (S2, 2)):
            if arr is None:
                continue
            a = arr
            dst = self.c.Wt if dst_p == 0 else (self.c.S1t if dst_p == 1 else self.c.S2t)
            with nogil:
                fm_sp_transpose_in(&a[0, 1], self.c.ldw, self.c.H, self.c.n_in, dst,
                                   self.c.HP)
        with nogil:
            if self.c.ms != NULL:
                for blk in range(self.c.NB):
                    sl_centre_block(&self.c, blk)
            sl_finish_centre(&self.c)
        return 0

    def sync_out(self):
        self.sync_out_arrays()

    def epoch_views(self, arrays):
        """``arrays`` (the network state's), with only the bias column of the
        first layer's weights and states: their other columns are trained
        here, transposed, and written back by :meth:`sync_out` alone."""
        held = [a for a in self.state_arrays if a is not None]
        return [a[:, :1] if any(a is h for h in held) else a for a in arrays]

    def sync_in(self):
        self.sync_in_arrays()

    def recorded(self):
        """What the last update subtracted from W[:, 1:], (H, n_in); RuntimeError
        when the layer was built not to keep it."""
        if self.c.rec == NULL:
            raise RuntimeError("last_step: the sparse first layer's step was not kept "
                               "(BackendConfig(keep_steps=False))")
        cdef Py_ssize_t n = self.c.n_in * self.c.HP
        rec = np.asarray(<float[:n]>self.c.rec).reshape(self.c.n_in, self.c.HP)
        return np.ascontiguousarray(rec[:, :self.c.H].T)


# ------------------------------------------------------------ the centring term
cdef void sl_centre_block(SparseC *sl, Py_ssize_t blk) noexcept nogil:
    """The centring term's share of block blk: sum_j ms[j] Wt[j] over its features."""
    cdef Py_ssize_t j0 = blk * sl.FBU, j1 = min(sl.n_in, j0 + sl.FBU)
    fm_sp_centre(sl.Wt + j0 * sl.HP, sl.ms + j0, j1 - j0, sl.HP, sl.cpart + blk * sl.HP)


cdef void sl_finish_centre(SparseC *sl) noexcept nogil:
    """c := the blocks' shares summed in block order; fbias := W[:, 0] - c."""
    cdef Py_ssize_t blk, k
    memset(sl.c, 0, sl.HP * sizeof(float))
    if sl.ms != NULL:
        for blk in range(sl.NB):
            for k in range(sl.HP):
                sl.c[k] = sl.c[k] + sl.cpart[blk * sl.HP + k]
    for k in range(sl.H):
        sl.fbias[k] = sl.W[k * sl.ldw] - sl.c[k]
