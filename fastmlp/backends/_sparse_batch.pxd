# cython: language_level=3
# A batch through the sparse first layer (_sparse_batch.pyx), on the state
# of _sparse_layer.pxd: called by the training step (_step.pyx) and the
# checked def kernels (_sparse_kernels.pyx).

from ._layers cimport fm_opt
from ._sparse_layer cimport SparseC


cdef void sl_stage(SparseC *sl, int s, const Py_ssize_t *idx, Py_ssize_t rows) noexcept nogil
cdef void sl_forward(SparseC *sl, int s, const Py_ssize_t *idx, Py_ssize_t rows, float *A,
                     float *scratch, int kind) noexcept nogil
cdef void sl_gradient(SparseC *sl, int s, Py_ssize_t rows, const float *D,
                      Py_ssize_t ldd) noexcept nogil
cdef void sl_sort(SparseC *sl, const Py_ssize_t *idx, Py_ssize_t b) noexcept nogil
cdef double sl_update_block(SparseC *sl, Py_ssize_t blk, int t, const float *gb, const float *D,
                            Py_ssize_t ldd, float l2, float l1, const fm_opt *o) noexcept nogil
cdef void sl_prepare(SparseC *sl, const float *gb, Py_ssize_t part, int T,
                     const Py_ssize_t *idx, Py_ssize_t b) noexcept nogil
cdef double sl_update(SparseC *sl, int T, const float *D, float l2, float l1,
                      const fm_opt *o) noexcept nogil
cdef double sl_update_done(SparseC *sl) noexcept nogil
