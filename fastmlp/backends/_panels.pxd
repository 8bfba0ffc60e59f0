# cython: language_level=3
# The training step's update by panels of 16 weight rows (see _panels.pyx).

from ._layers cimport NetC, fm_opt


cdef struct StepBufs:
    # the step's per-slice buffers: slice s's part of each starts
    # s * r16(part size) floats in (see CompiledBackend)
    float *A0           # gathered inputs (CH x n_in[0]), dense X only
    float **A           # layer outputs (CH x n_out[l])
    float **D           # layer deltas (CH x n_out[l])
    float **G           # partial weight gradients (n_out[l] x n_in[l])
    float **gb          # partial bias gradients (n_out[l])
    float **V           # the optimiser's first state per matrix
    float **V2          # adam's second moments (else V again)
    Py_ssize_t CH       # rows per chunk of a slice
    bint sparse0        # layer 0 is the sparse first layer (weights updated elsewhere)
    unsigned char *by_panels    # per layer: gradient by panels after the slices
    unsigned char *pack_mode    # per layer: the update packs its weights with cached
                                # stores (0), past the caches (1), or not at all (2)
    float *panel_G      # per thread (panel_G_stride apart): a panel's gradient, or
    Py_ssize_t panel_G_stride   # NULL to form it in slice 0's G (kept for last_step)
    float *bw           # per slice (bw_floats apart): scratch of the products by weights
    Py_ssize_t bw_floats        # (fm_forward_product, fm_delta_product), or NULL
    bint unpacked       # some layer's pack_mode is 2: its packed weights go stale


cdef class Panels:
    # the update's jobs: one per panel of 16 rows of a weight matrix
    cdef Py_ssize_t n_jobs
    cdef int *job_layer         # layer of each panel
    cdef int *job_row           # its first row in the layer
    cdef Py_ssize_t *row_first  # first row of each layer among all layers' rows
    cdef Py_ssize_t n_rows      # rows of all layers
    cdef double *row_reg        # each row's regularisation cost in the last step
    cdef double *grad_seconds   # per thread (8 apart): seconds in panel gradients
    cdef object _keep
    cdef void plan_into(self, StepBufs *bf)


cdef double panel_job(const NetC *net, const StepBufs *bf, int l, Py_ssize_t j0, int T,
                      Py_ssize_t b, float l2, float l1, const fm_opt *o, double *row_reg,
                      int thread) noexcept nogil
