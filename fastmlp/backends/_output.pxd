# cython: language_level=3
# The compiled backend's output layer (_output.pyx): the delta, cost and
# count of correct rows of a batch, for label or dense targets, with or
# without sample weights.  The training step (_step.pyx) and the checked
# def kernel (_compiled.output_delta) both call output_layer().

from libc.stdint cimport int32_t


cdef extern from "fastmlp_elementwise.h" nogil:
    double fm_output_delta(const float *a, const int32_t *labels, const float *sw,
                           const Py_ssize_t *idx, float *delta, Py_ssize_t rows,
                           Py_ssize_t K, long *correct, int kind)
    double fm_output_delta_dense(const float *a, const float *Y, Py_ssize_t ldy,
                                 const float *sw, const Py_ssize_t *idx, float *delta,
                                 Py_ssize_t rows, Py_ssize_t K, long *correct, int kind)


cdef struct TargetsC:
    int kind                 # the output's kind (registry c_id)
    Py_ssize_t K             # outputs per row
    const int32_t *labels    # targets "labels": each sample's label; else NULL
    const float *Y           # targets "dense": the target rows; else NULL
    Py_ssize_t ldy           # row stride of Y, in floats
    const float *sw          # each sample's weight, or NULL


cdef class Targets:
    cdef TargetsC c
    cdef readonly str targets
    cdef readonly object sample_weight
    cdef object _keep


cdef double output_layer(const TargetsC *t, const float *A, const Py_ssize_t *idx, float *D,
                         Py_ssize_t rows, long *correct) noexcept nogil
