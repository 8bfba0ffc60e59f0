# cython: language_level=3
"""The compiled backend's output layer: a batch's delta, cost and correct rows.

Design
------
:class:`Targets` records where a run's targets and sample weights lie, as
the C kernels read them (:mod:`fastmlp.backends._targets` says what the two
target modes and the weights mean):

* targets "labels": the label of each one-hot row of Y (``Y.argmax(1)``,
  int32), kept once per fit;
* targets "dense": Y itself, read where it lies when it is float32, aligned
  and has unit column stride (else copied once, to a C-ordered float32 array);
* sample weights: read where they lie, never copied.

:func:`output_layer` is the layer-level ``cdef ... noexcept nogil`` function
that the training step (:mod:`fastmlp.backends._step`, once per chunk) and
the checked ``def`` kernel ``output_delta`` (:mod:`fastmlp.backends._compiled`)
both call:

    D := w (A - Y);  cost := sum_i w_i L_i;  correct += rows that are right

Row i of the rows given is sample ``idx[i]`` (``i`` when idx is NULL): its
label, its target row and its weight are read through that index, so a
batch's targets are never gathered into a copy.  It calls the C function of
the target mode, ``fm_output_delta`` (labels) or ``fm_output_delta_dense``
(dense), from csrc/fastmlp_elementwise.h, which documents the losses.
"""

import numpy as np

from .._registry import output as _output
from ._targets import check_sample_weight, check_targets


cdef double output_layer(const TargetsC *t, const float *A, const Py_ssize_t *idx, float *D,
                         Py_ssize_t rows, long *correct) noexcept nogil:
    """D (rows x K, row stride K) := w (A - Y) for rows of A (row stride K);
    returns the rows' weighted loss and adds their correct rows to *correct."""
    if t.labels != NULL:
        return fm_output_delta(A, t.labels, t.sw, idx, D, rows, t.K, correct, t.kind)
    return fm_output_delta_dense(A, t.Y, t.ldy, t.sw, idx, D, rows, t.K, correct, t.kind)


def _row_stride_in_place(Y):
    """Y's row stride in floats when its rows can be read where they lie
    (float32, aligned, unit column stride, rows one after another), else 0."""
    if Y.dtype != np.float32 or not Y.flags.aligned:
        return 0
    n, K = Y.shape
    s0, s1 = Y.strides
    if K > 1 and s1 != 4:
        return 0
    if n > 1 and (s0 % 4 or s0 < 4 * K):
        return 0
    return s0 // 4 if n > 1 else max(K, 1)


cdef class Targets:
    """The targets (n, K) and sample weights of n samples, as :func:`output_layer`
    reads them.

    ``Targets(Y, sample_weight, n, K, output="sigmoid", targets="labels",
    weights_name="sample_weight")`` checks them as both backends do
    (:mod:`fastmlp.backends._targets`, ValueError naming the operand; the
    weights are called ``weights_name``) and keeps the arrays it points to
    alive.  ``targets`` and ``sample_weight`` are readable attributes.
    """

    def __cinit__(self, Y, sample_weight, Py_ssize_t n, Py_ssize_t K, str output="sigmoid",
                  str targets="labels", str weights_name="sample_weight"):
        check_targets(Y, n, K, output, targets)
        w = check_sample_weight(sample_weight, n, weights_name)
        self.targets = targets
        self.sample_weight = w
        self.c.kind = _output(output).c_id
        self.c.K = K
        self.c.labels = NULL
        self.c.Y = NULL
        self.c.ldy = K
        self.c.sw = NULL
        cdef const int32_t[::1] lab
        cdef const float[:, :] Ym
        cdef const float[::1] wm
        if targets == "labels":
            kept = np.ascontiguousarray(np.asarray(Y).argmax(axis=1), dtype=np.int32)
            if n > 0:
                lab = kept
                self.c.labels = &lab[0]
        else:
            ldy = _row_stride_in_place(Y)
            kept = Y if ldy else np.ascontiguousarray(Y, dtype=np.float32)
            self.c.ldy = ldy or K
            if n > 0 and K > 0:
                Ym = kept
                self.c.Y = &Ym[0, 0]
        if w is not None and n > 0:
            wm = w
            self.c.sw = &wm[0]
        self._keep = (kept, w)

    def addresses(self):
        """The data addresses the kernels read, ``{"labels", "Y", "sample_weight"}``
        (0 for what is not used): a test can see that nothing was copied."""
        return {"labels": <size_t>self.c.labels, "Y": <size_t>self.c.Y,
                "sample_weight": <size_t>self.c.sw}
