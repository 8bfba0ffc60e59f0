# cython: language_level=3
# The compiled backend's sparse first layer: its state and layout
# (_sparse_layer.pyx: SparseC, SparseLayer, the centring term) and the
# per-batch work on it (_sparse_batch.pyx, declared in _sparse_batch.pxd).
# The training step (_step.pyx) and the checked def kernels
# (_sparse_kernels.pyx) both use them.

from libc.stdint cimport int32_t, int64_t, uint8_t

from ._layers cimport _Net, fm_opt


cdef extern from "fastmlp_sparse.h" nogil:
    ctypedef struct fm_rows:
        const int64_t *indptr
        const void *indices
        const void *values
        int idx32
        int val32


cdef struct SparseC:
    fm_rows X
    Py_ssize_t n_rows, n_in, H, HP
    int tiles                # 1: four-row tiles over the union of columns; 0: rows
    int own                  # 1: the AVX-512 kernels; 0: plain C
    int T                    # slices (threads) the buffers are sized for
    float *W                 # the network state's (H, 1 + n_in) matrix (its bias column)
    Py_ssize_t ldw
    float *Wt                # (n_in, HP) weights, feature j's in row j
    float *S1t               # the optimiser's first state, same layout
    float *S2t               # adam's second moments (else S1t)
    const float *inv         # value j is read as x inv[j], inv = 1 / scale; NULL: as x
    const float *ms          # mean / scale per feature; NULL: no centring
    float *c                 # (HP,) sum_j ms[j] Wt[j]: the mean's share
    float *fbias             # (H,) W[:, 0] - c: the forward's bias
    float *cpart             # (NB, HP) c per block of features
    Py_ssize_t FBU, NB       # features per update block, blocks
    float *gbuf              # (T, FBU * HP) a block's gradient rows
    float *rec               # (n_in, HP) what the last update subtracted, or NULL
    float *D0                # (Bmax, H) the batch's deltas (the step writes them)
    float *gbsum             # (HP,) the bias gradient of the batch
    double *block_reg        # (NB,) each block's regularisation cost
    Py_ssize_t CH            # most rows per call of sl_forward
    # tiles
    float *Xd                # (T, n_in * 4) scratch, zero
    uint8_t *flags           # (T, flags_len) scratch, zero
    Py_ssize_t flags_len     # n_in rounded up to 64
    Py_ssize_t tile_cap      # union entries a slice's chunk can hold
    int32_t *uj              # (T, tile_cap) union columns of the chunk's tiles
    float *ux                # (T, 4 tile_cap) their values
    Py_ssize_t *tileU        # (T, CH / 4 + 1) union size of each tile
    float *G                 # (T, n_in * HP) partial gradients, zero between steps
    # rows
    Py_ssize_t maxnnz        # entries of the longest row
    int32_t *js              # (T, 2 maxnnz) a row's columns (two rows, prefetching)
    float *xs                # (T, 2 maxnnz) its values times inv
    Py_ssize_t ecap          # entries the largest batch can have
    int32_t *ej
    int32_t *er
    float *ex
    int32_t *tj
    int32_t *tr
    float *tx
    int32_t *cnt             # 2049 counters of the radix sort
    int32_t *sj              # the batch's entries sorted by column: column,
    int32_t *sr              # batch row,
    float *sx                # value times inv
    Py_ssize_t *bstart       # (NB + 1,) first sorted entry of each block


cdef int pack_dense_layers(_Net net) except -1


cdef class SparseLayer:
    cdef SparseC c
    cdef object _keep
    cdef readonly object state_arrays
    cdef int sync_out_arrays(self) except -1
    cdef int sync_in_arrays(self) except -1


cdef void sl_centre_block(SparseC *sl, Py_ssize_t blk) noexcept nogil
cdef void sl_finish_centre(SparseC *sl) noexcept nogil
