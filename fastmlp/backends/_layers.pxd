# cython: language_level=3
# Declarations shared by the compiled backend's modules:
#   _layers.pyx    layer-level nogil kernels and the checks of operands
#   _output.pyx    the output layer's kernel and targets (see _output.pxd)
#   _compiled.pyx  the checked def kernels (the NumPy twin's signatures)
#   _step.pyx      CompiledBackend, the whole training step
# The C primitives come from the headers in csrc/.


cdef extern from "fastmlp_elementwise.h" nogil:
    enum:
        FM_SIGMOID
        FM_TANH
        FM_RELU
        FM_SOFTMAX
        FM_IDENTITY
        FM_SGD
        FM_RMSPROP
        FM_ADAM
    void fm_bias_act(float *a, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t lda,
                     const float *W, Py_ssize_t ldw, float *bias, int kind)
    void fm_mul_act_deriv(float *d, const float *a, Py_ssize_t n, int kind)
    ctypedef struct fm_opt:
        int kind
        float lr, mom, rho, omr, omb1, omb2, alpha, eps, beta1, beta2
    void fm_opt_prepare(fm_opt *o, float lr, long step)
    double fm_update_row(float *w, float *s1, float *s2, float *G,
                         Py_ssize_t part_stride, int parts, Py_ssize_t n,
                         float l2, float l1, const fm_opt *o)
    int fm_update_bias(float *w, float *s1, float *s2, float *gb,
                       Py_ssize_t part_stride, int parts, const fm_opt *o)
    void fm_column_sums(float *gb, const float *d, Py_ssize_t rows, Py_ssize_t K,
                        int accumulate)
    void fm_gather_scale_u8(float *out, const unsigned char *X, const Py_ssize_t *idx,
                            Py_ssize_t rows, Py_ssize_t n, const float *mean,
                            const float *scale)
    void fm_gather_scale_f32(float *out, const float *X, const Py_ssize_t *idx,
                             Py_ssize_t rows, Py_ssize_t n, const float *mean,
                             const float *scale)
    void fm_gather_scale_f64(float *out, const double *X, const Py_ssize_t *idx,
                             Py_ssize_t rows, Py_ssize_t n, const float *mean,
                             const float *scale)

cdef extern from "fastmlp_gemm.h" nogil:
    int fm_own_gemm_available()
    Py_ssize_t fm_packed_width(Py_ssize_t n_out)
    void fm_pack_weights(const float *W, Py_ssize_t n_out, Py_ssize_t K, Py_ssize_t ldw,
                         float *P, Py_ssize_t NP)
    void fm_pack_weights_part(const float *W, Py_ssize_t n_out, Py_ssize_t K,
                              Py_ssize_t ldw, float *P, Py_ssize_t NP, int part, int parts)
    void fm_pack_panel(const float *W, Py_ssize_t n_out, Py_ssize_t K, Py_ssize_t ldw,
                       float *P, Py_ssize_t NP, Py_ssize_t j0, int stream)
    void fm_gemm_forward(const float *A, Py_ssize_t rows, Py_ssize_t K, Py_ssize_t lda,
                         const float *P, Py_ssize_t NP, float *Z, Py_ssize_t n_out,
                         const float *W, Py_ssize_t ldw)
    void fm_gemm_gradient(const float *D, Py_ssize_t rows, Py_ssize_t n_out, Py_ssize_t ldd,
                          const float *A, Py_ssize_t lda, Py_ssize_t K, float *G,
                          int accumulate)
    size_t fm_by_weights_floats(Py_ssize_t rows, Py_ssize_t n_a, Py_ssize_t n_b)
    int fm_forward_by_weights_pays(Py_ssize_t rows, Py_ssize_t n_out)
    void fm_forward_product(const float *A, Py_ssize_t rows, Py_ssize_t K, Py_ssize_t lda,
                            const float *P, Py_ssize_t NP, float *Z, Py_ssize_t n_out,
                            const float *W, Py_ssize_t ldw, float *scratch)
    void fm_delta_product(const float *D, Py_ssize_t rows, Py_ssize_t n_next, Py_ssize_t ldd,
                          const float *W, Py_ssize_t ldw, float *Dout, Py_ssize_t n,
                          float *scratch)

cdef struct NetC:
    int L
    int *n_in      # inputs of each layer (without the bias)
    int *n_out     # outputs of each layer
    float **W      # (n_out, 1 + n_in) C-ordered weight matrices
    float **P      # packed W[:, 1:]^T per layer for fm_gemm_forward, or NULL
    int hidden_act # activation kind of the hidden layers (registry c_id)
    int out_act    # activation kind of the output layer (registry c_id)
    Py_ssize_t *NP # packed width per layer


cdef class _Net:
    cdef NetC c
    cdef int L
    cdef int *n_in
    cdef int *n_out
    cdef float **W
    cdef Py_ssize_t widest, widest_hidden
    cdef object _keep
    cdef float **P
    cdef Py_ssize_t *NP
    cdef object _packed
    cdef int enable_packing(self) except -1
    cdef void repack(self) noexcept nogil
    cdef void repack_part(self, int part, int parts) noexcept nogil


# --- switches and small helpers
cdef bint own_gemm() noexcept nogil
cdef double now() noexcept nogil
cdef Py_ssize_t r16(Py_ssize_t n) noexcept nogil
cdef int n_threads_of(object n_threads) except -1
cdef int set_opt(fm_opt *o, object optimizer, double momentum) except -1
cdef int act_kind(str name) except -1
cdef int out_kind(str name) except -1

# --- checks of operands (raise ValueError naming the operand)
cdef int check_lambdas(double lr, double l2, double l1, double momentum) except -1
cdef int operand(const float[:, :] M, str name, char *flag, int *ld) except -1
cdef int aligned(str name, const void *p, Py_ssize_t s0, Py_ssize_t s1,
                 Py_ssize_t isz) except -1
cdef int al2(const float[:, :] M, str name) except -1
cdef int al1(const float[:] v, str name) except -1
cdef int alidx(const Py_ssize_t[::1] v, str name) except -1
cdef int ld_of(const float[:, :] M) noexcept

# --- BLAS
cdef void gemm_rowmajor(char ta, char tb, int m, int n, int k, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc) noexcept nogil

# --- layer-level kernels: the training step and the def wrappers call these
cdef void layer_forward(const float *A_prev, Py_ssize_t lda, Py_ssize_t rows, int n_in,
                        const float *W, Py_ssize_t ldw, int n_out, const float *P,
                        Py_ssize_t NP, float *A_out, float *scratch, int kind,
                        float *bw) noexcept nogil
cdef void layer_hidden_delta(const float *D_next, Py_ssize_t ldd, Py_ssize_t rows,
                             int n_next, const float *W_next, Py_ssize_t ldw,
                             const float *A, Py_ssize_t lda, int n, float *D_out,
                             int kind, float *bw) noexcept nogil
cdef void layer_gradient(const float *D, Py_ssize_t rows, int n_out, const float *A_prev,
                         Py_ssize_t lda, int n_in, float *G, float *gb, bint accumulate,
                         bint own) noexcept nogil
cdef double layer_update_row(float *w, float *s1, float *s2, float *G, float *gb,
                             Py_ssize_t G_part_stride, Py_ssize_t gb_part_stride, int parts,
                             int gb_parts, int n_in, float l2, float l1,
                             const fm_opt *o) noexcept nogil
cdef void net_forward(const NetC *net, Py_ssize_t l, const float *A_prev, Py_ssize_t rows,
                      float *A_out, float *scratch, float *bw) noexcept nogil
cdef void forward_block(const NetC *net, const float *X, float *out, Py_ssize_t r0,
                        Py_ssize_t r1, float *buf0, float *buf1, float *scratch) noexcept nogil
