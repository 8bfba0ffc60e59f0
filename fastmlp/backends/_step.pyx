# cython: language_level=3
"""The compiled backend's training step: :class:`CompiledBackend`.

One call of :meth:`CompiledBackend.train_batch` runs the whole step with the
GIL released and without allocating: every buffer is allocated once, in the
constructor, for the largest batch.  The step is composed of the layer-level
kernels of :mod:`fastmlp.backends._layers`, the same functions the checked
``def`` kernels call.

Threads
-------
A batch of B rows is cut into ``n_threads`` row slices.  Each slice runs its
own gather, forward pass and deltas, in an OpenMP loop over the slices; the
products inside a slice are single-threaded.  A second parallel loop then
updates the weights by panels of 16 rows (:mod:`fastmlp.backends._panels`).
Each layer's weight gradient is formed one of two ways, chosen per layer by
a cost model (:func:`~fastmlp.backends._panels.panel_plan`): by rows, a
partial gradient per slice, summed in slice order by the update; or by
panels, in the update's jobs from every slice's deltas.  Both give the same
numbers, and a run is deterministic for a given ``n_threads``.  The caller
must limit BLAS to one thread while more than one slice runs
(:meth:`CompiledBackend.thread_plan` says so).  Without OpenMP at build
time, the slices run one after another.

A sparse X (:class:`fastmlp._sparse.SparseRows`) goes through the sparse
first layer (:mod:`fastmlp.backends._sparse_layer`): its forward and its
share of the gradient run in the slices, its weights are updated by blocks of
features in a second parallel loop after the dense update, and it keeps them
transposed during a fit (:meth:`CompiledBackend.sync_out` writes them into
the network state's arrays).
"""

from cython.parallel cimport prange, threadid
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

import numpy as np

from .._sparse import SparseRows
from ._inputs import check_state, dense_source
from ._interface import PHASES
from ._interface import Backend as _Backend
from ._layers import HAVE_OPENMP, aligned_zeros, gemm_kind, max_threads
from ._sparse_kernels import network_outputs
from ._sparse_layer import choose_tiles

from ._layers cimport (_Net, alidx, check_lambdas, fm_gather_scale_f32, fm_gather_scale_f64,
                       fm_gather_scale_u8, fm_opt, fm_opt_prepare, layer_gradient,
                       layer_hidden_delta, layer_update_row, n_threads_of, net_forward, now,
                       own_gemm, r16, set_opt)
from ._output cimport Targets, output_layer
from ._panels cimport Panels, StepBufs, panel_job
from ._sparse_batch cimport (sl_forward, sl_gradient, sl_prepare, sl_update_block,
                             sl_update_done)
from ._sparse_layer cimport SparseC, SparseLayer, pack_dense_layers

__all__ = ["CompiledBackend"]



cdef class CompiledBackend:
    """One fit's training state for the compiled kernels (see
    :class:`fastmlp.backends.Backend`).

    ``CompiledBackend(X, Y, state, config)``: X (n, n_in) is a C-ordered
    uint8, float32 or float64 array, used where it lies (never copied);
    ``config.input_scaling`` is applied to each row as it is gathered,
    ``(x - mean) / scale`` in float32.  Or X is SparseRows, never densified,
    with the scaling folded into the first layer (see the module's doc).
    Y (n, K) float32 holds the targets, read as ``config.targets`` says:
    one-hot rows of which only each row's label is kept, or dense rows read
    where they lie (copied once only when not aligned float32 with unit
    column stride).  ``config.sample_weight`` is read where it lies.  The
    output layer reads each row's target and weight through the batch's
    indices (:mod:`fastmlp.backends._output`).  ``state``'s weights and
    optimiser state are updated in place.  ``config.n_threads`` row slices
    per batch (None: all cores), of ``config.chunk_rows`` rows at a time.

    Every buffer is allocated here, once.  Each slice owns a chunk's worth of
    inputs, layer outputs and deltas (``chunk_rows`` rows, C-ordered) and a
    partial gradient per layer; a slice larger than a chunk is processed chunk
    by chunk with the partial gradient accumulated, so the memory and cache
    footprint does not grow with the batch size.  (Measured on MNIST: at
    batch 20000 this took an epoch from 0.26 s to 0.17 s on one thread.)
    :meth:`train_batch` allocates nothing and runs with the GIL released.
    """

    cdef _Net net
    cdef int T
    cdef Py_ssize_t n_rows, Bmax
    cdef const void *X              # training inputs: uint8, float32 or float64
    cdef int x_kind                 # 0 float32, 1 uint8, 2 float64
    cdef const float *x_mean        # scaling applied while gathering, or NULL
    cdef const float *x_scale
    cdef readonly Targets target_data   # the targets and sample weights, where they lie
    cdef StepBufs bf                # the slices' buffers (see _panels.pxd)
    cdef fm_opt opt
    cdef long step_count
    cdef double *slice_cost
    cdef long *slice_correct
    cdef readonly Panels pn         # the update's jobs
    cdef bint packed                # the packed weights hold the current ones (see bf.unpacked)
    cdef float *scratch
    cdef float l2, l1
    cdef double phase[5]
    cdef object _keep
    cdef public str name
    cdef SparseLayer sp             # the sparse first layer, or None
    cdef float *D0                  # its deltas of the whole batch (sp.c.D0), or NULL

    def __cinit__(self, X, Y, state, config):
        self.name = "compiled"
        cdef bint sparse = isinstance(X, SparseRows)
        self.X, self.x_kind, scaling = NULL, -1, None
        if not sparse:
            self.x_kind, scaling = dense_source(X, config.input_scaling)
            self.X = <const void *><size_t>X.ctypes.data
        weights, velocities, states2 = state.weights, state.state1, state.state2
        self.net = _Net(weights, X.shape[1], True, config.activation, config.output)
        cdef int L = self.net.L, l
        cdef Py_ssize_t K = self.net.n_out[L - 1]
        self.target_data = Targets(Y, config.sample_weight, X.shape[0], K, config.output,
                                   config.targets)
        if len(velocities) != L:
            raise ValueError(f"velocities: expected {L} matrices, got {len(velocities)}")
        self.Bmax = int(config.batch_size)
        if self.Bmax < 1:
            raise ValueError(f"batch_size must be >= 1, got {config.batch_size}")
        l2, l1, momentum = config.l2, config.l1, config.momentum
        check_lambdas(1.0, l2, l1, momentum)
        self.l2, self.l1 = l2, l1
        cdef int n_states = set_opt(&self.opt, config.optimizer, momentum)
        if int(state.step) < 0:
            raise ValueError(f"step must be >= 0, got {state.step}")
        self.step_count = int(state.step)
        if n_states == 2 and (states2 is None or len(states2) != L):
            raise ValueError(f"states2: adam needs {L} second-moment matrices")
        self.T = n_threads_of(config.n_threads)
        if self.T > self.Bmax:
            self.T = <int>self.Bmax
        chunk_rows = config.chunk_rows
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.bf.CH = min(int(chunk_rows), (self.Bmax + self.T - 1) // self.T)
        self.n_rows = X.shape[0]

        f32 = np.float32
        T = self.T
        keep = [X, weights, velocities, states2, scaling]
        cdef const float[::1] sm, ss
        self.x_mean = self.x_scale = NULL
        if scaling is not None:
            sm, ss = scaling
            self.x_mean, self.x_scale = &sm[0], &ss[0]

        def buf(shape, dtype=f32):
            a = aligned_zeros(shape, dtype)
            keep.append(a)
            return a

        self.bf.A = <float **>calloc(L, sizeof(float *))
        self.bf.D = <float **>calloc(L, sizeof(float *))
        self.bf.G = <float **>calloc(L, sizeof(float *))
        self.bf.gb = <float **>calloc(L, sizeof(float *))
        self.bf.V = <float **>calloc(L, sizeof(float *))
        self.bf.V2 = <float **>calloc(L, sizeof(float *))
        if not (self.bf.A and self.bf.D and self.bf.G and self.bf.gb and self.bf.V and self.bf.V2):
            raise MemoryError()
        cdef float[::1] m1
        cdef double[::1] md
        cdef long[::1] ml
        # every slice's part of a buffer starts on a cache line (r16 floats),
        # so no two threads write the same line and vector loads are aligned
        CH = self.bf.CH
        m1 = buf(1 if sparse else T * r16(CH * self.net.n_in[0]))
        self.bf.A0 = &m1[0]
        for l in range(L):
            n_out, n_in = self.net.n_out[l], (0 if sparse and l == 0 else self.net.n_in[l])
            m1 = buf(T * r16(CH * n_out))
            self.bf.A[l] = &m1[0]
            m1 = buf(T * r16(CH * n_out))
            self.bf.D[l] = &m1[0]
            m1 = buf(T * r16(n_out * max(n_in, 1)))
            self.bf.G[l] = &m1[0]
            m1 = buf(T * r16(n_out))
            self.bf.gb[l] = &m1[0]
            V = check_state(velocities[l], f"velocities[{l}]", n_out, self.net.n_in[l])
            self.bf.V[l] = self.bf.V2[l] = <float *><size_t>V.ctypes.data
            if n_states == 2:
                V = check_state(states2[l], f"states2[{l}]", n_out, self.net.n_in[l])
                self.bf.V2[l] = <float *><size_t>V.ctypes.data
        md = buf(8 * T, np.float64)
        self.slice_cost = &md[0]
        ml = buf(8 * T, np.int_)
        self.slice_correct = &ml[0]
        self.pn = Panels([self.net.n_in[l] for l in range(L)],
                         [self.net.n_out[l] for l in range(L)], self.Bmax, T, chunk_rows,
                         own_gemm(), sparse, config.keep_steps)
        self.pn.plan_into(&self.bf)
        self.bf.sparse0 = sparse
        self.packed = False
        m1 = buf(T * r16(self.net.widest))
        self.scratch = &m1[0]
        self.sp, self.D0 = None, NULL
        if sparse:
            self.sp = SparseLayer(X, weights[0], velocities[0],
                                  states2[0] if n_states == 2 else None, config.input_scaling,
                                  T, CH, self.Bmax, choose_tiles(X, self.net.n_out[0]),
                                  own_gemm(), config.keep_steps)
            self.D0 = self.sp.c.D0
            pack_dense_layers(self.net)
        else:
            self.net.enable_packing()
        self._keep = keep

    def __dealloc__(self):
        free(self.bf.A)
        free(self.bf.D)
        free(self.bf.G)
        free(self.bf.gb)
        free(self.bf.V)
        free(self.bf.V2)

    @staticmethod
    def thread_plan(n_threads, predict=False):
        """(row slices per batch, BLAS thread limit) for a user's ``n_threads``.

        Each slice calls single-threaded products, so BLAS is held at one
        thread while more than one slice runs.  None means all cores.  A
        prediction on fastmlp's own products never calls BLAS: left alone."""
        T = n_threads if n_threads is not None else max_threads()
        T = T if HAVE_OPENMP else 1
        return T, (None if predict and gemm_kind() != "blas" else 1 if T > 1 else n_threads)

    @staticmethod
    def predict_proba(X, weights, out, config):
        """out := the network's outputs for the scaled rows of X (float32, C), or
        for SparseRows with ``config.input_scaling`` folded into the first layer."""
        return network_outputs(X, weights, out, config.block_rows, config.n_threads,
                               config.activation, config.output, config.input_scaling)

    @property
    def step(self):
        """Optimiser steps taken (those before construction included); the
        trainer sets it back when it rewinds the weights."""
        return self.step_count

    @step.setter
    def step(self, value):
        if int(value) < 0:
            raise ValueError(f"step must be >= 0, got {value}")
        self.step_count = int(value)
        self.packed = False         # (set when the trainer rewinds the weights)

    #: The compiled step cannot be interrupted half-way: it runs without the
    #: GIL, so a KeyboardInterrupt is raised only once it has returned.
    partial_update = False

    @property
    def n_threads(self):
        """Row slices per batch."""
        return self.T

    @property
    def phase_seconds(self):
        """Seconds spent per phase (``PHASES``) since construction or the last
        :meth:`reset_phases`; the slice phases are timed on slice 0, whose
        rows are a 1/n_threads share like every other slice's."""
        return {name: self.phase[i] for i, name in enumerate(PHASES)}

    def reset_phases(self):
        """Set the phase timers to zero."""
        memset(self.phase, 0, sizeof(self.phase))

    def sync_out(self):
        """The sparse first layer's (transposed) weights and states into the state's."""
        if self.sp is not None:
            self.sp.sync_out_arrays()

    def sync_in(self):
        """Take the sparse first layer's weights and states from the state's arrays."""
        self.packed = False
        if self.sp is not None:
            self.sp.sync_in_arrays()

    def epoch_views(self, arrays):
        """See :meth:`Backend.epoch_views` and :meth:`SparseLayer.epoch_views`."""
        return list(arrays) if self.sp is None else self.sp.epoch_views(arrays)

    def last_step(self):
        """What the last step subtracted from each W, ``[gb | G]`` per matrix
        (the first slice's buffers, where the update pass leaves them)."""
        out = []
        cdef int l
        cdef Py_ssize_t n_out, n_in
        for l in range(self.net.L):
            n_out, n_in = self.net.n_out[l], self.net.n_in[l]
            step = np.empty((n_out, 1 + n_in), np.float32)
            step[:, 0] = np.asarray(<float[:n_out]>self.bf.gb[l])
            if l == 0 and self.sp is not None:
                step[:, 1:] = self.sp.recorded()
            elif self.bf.by_panels[l] and self.bf.panel_G != NULL:
                raise RuntimeError(f"last_step: layer {l}'s step was not kept "
                                   "(BackendConfig(keep_steps=False))")
            else:
                step[:, 1:] = np.asarray(<float[:n_out * n_in]>self.bf.G[l]).reshape(n_out, n_in)
            out.append(step)
        return out

    def train_batch(self, const Py_ssize_t[::1] idx, double lr):
        """Train on rows ``idx`` of X; return (loss, regularisation cost, n correct).

        The costs are those of the weights before this step's update, except
        that the regularisation cost is NaN when the update made a weight NaN
        or infinite (how the trainer detects divergence at no extra pass).
        The whole step runs without the GIL and without allocating.
        """
        cdef Py_ssize_t b = idx.shape[0], i, bad = -1
        if b < 1 or b > self.Bmax:
            raise ValueError(f"idx: batch of {b} rows, expected 1..{self.Bmax}")
        alidx(idx, "idx")
        if not (lr >= 0.0) or lr == float("inf"):
            raise ValueError(f"lr must be a finite number >= 0, got {lr}")
        cdef int T = self.T if self.T <= b else <int>b
        cdef int s
        cdef double cost = 0.0, reg = 0.0, t0
        cdef long correct = 0
        with nogil:
            for i in range(b):
                if idx[i] < 0 or idx[i] >= self.n_rows:
                    bad = i
                    break
        if bad >= 0:
            raise ValueError(f"idx[{bad}] = {idx[bad]} is out of range for {self.n_rows} rows")
        with nogil:
            # the last update packed all it wrote but the layers of bf.unpacked
            if not self.packed or (self.bf.unpacked and b != self.Bmax):
                t0 = now()
                for s in prange(T, schedule="static", chunksize=1, num_threads=T):
                    self.net.repack_part(s, T)
                self.phase[1] += now() - t0
                self.packed = True
            if T > 1:
                for s in prange(T, schedule="static", chunksize=1, num_threads=T):
                    self._slice(s, T, &idx[0], b)
            else:
                self._slice(0, 1, &idx[0], b)
            for s in range(T):
                cost += self.slice_cost[8 * s]
                correct += self.slice_correct[8 * s]
            t0 = now()
            if self.sp is not None:         # its bias gradient summed, its entries sorted
                sl_prepare(&self.sp.c, self.bf.gb[0], r16(self.net.n_out[0]), T, &idx[0], b)
                self.phase[0] += now() - t0
            t0 = now()
            self.step_count += 1
            fm_opt_prepare(&self.opt, <float>lr, self.step_count)
            reg = self._update(T, b)
            if self.sp is not None:         # its blocks' costs, centring term, bias
                reg += sl_update_done(&self.sp.c)
            self.phase[4] += now() - t0
        return cost, reg, correct

    cdef void _gather(self, float *A0, const Py_ssize_t *idx, Py_ssize_t rows) noexcept nogil:
        """A0 := the scaled input rows idx[0:rows]."""
        cdef Py_ssize_t i, n0 = self.net.n_in[0]
        if self.x_mean == NULL:
            for i in range(rows):
                memcpy(A0 + i * n0, <const float *>self.X + idx[i] * n0, n0 * sizeof(float))
        elif self.x_kind == 1:
            fm_gather_scale_u8(A0, <const unsigned char *>self.X, idx, rows, n0,
                               self.x_mean, self.x_scale)
        elif self.x_kind == 0:
            fm_gather_scale_f32(A0, <const float *>self.X, idx, rows, n0,
                                self.x_mean, self.x_scale)
        else:
            fm_gather_scale_f64(A0, <const double *>self.X, idx, rows, n0,
                                self.x_mean, self.x_scale)

    cdef void _slice(self, int s, int T, const Py_ssize_t *idx, Py_ssize_t b) noexcept nogil:
        """Gather, forward, deltas and partial gradient of row slice s of T.

        The slice's rows go through in chunks of at most CH rows, each through
        the whole network, with the partial gradient accumulated over the
        chunks: the working set of a chunk (its inputs, outputs and deltas)
        stays in the core's cache whatever the batch size.  Every buffer used
        here belongs to slice s alone."""
        cdef Py_ssize_t r0 = s * b // T, r1 = (s + 1) * b // T, c0, rows
        cdef Py_ssize_t CH = self.bf.CH
        cdef int L = self.net.L, l, first = 1
        cdef int n0 = self.net.n_in[0], n_in, n_out, K = self.net.n_out[L - 1]
        cdef float *scratch = self.scratch + s * r16(self.net.widest)
        cdef float *bw = self.bf.bw + s * self.bf.bw_floats if self.bf.bw != NULL else NULL
        cdef float *A0 = self.bf.A0 + s * r16(CH * n0)
        cdef const float *A_prev
        cdef double t0 = now(), t1
        self.slice_cost[8 * s] = 0.0
        self.slice_correct[8 * s] = 0
        cdef SparseC *sp = &self.sp.c if self.sp is not None else NULL
        c0 = r0
        while c0 < r1:
            rows = min(CH, r1 - c0)
            if sp == NULL:
                self._gather(A0, idx + c0, rows)
            if s == 0:
                t1 = now(); self.phase[0] += t1 - t0; t0 = t1
            # forward (the sparse first layer's from the CSR rows)
            A_prev = A0
            if sp != NULL:
                A_prev = self.bf.A[0] + s * r16(CH * self.net.n_out[0])
                sl_forward(sp, s, idx + c0, rows, <float *>A_prev, scratch,
                           self.net.c.hidden_act if L > 1 else self.net.c.out_act)
            for l in range(1 if sp != NULL else 0, L):
                n_out = self.net.n_out[l]
                net_forward(&self.net.c, l, A_prev, rows, self.bf.A[l] + s * r16(CH * n_out),
                            scratch, bw)
                A_prev = self.bf.A[l] + s * r16(CH * n_out)
            if s == 0:
                t1 = now(); self.phase[1] += t1 - t0; t0 = t1
            # output delta, cost and accuracy of the chunk: targets and
            # weights read through the chunk's indices
            self.slice_cost[8 * s] += output_layer(&self.target_data.c, self.bf.A[L - 1] + s * r16(CH * K),
                                                   idx + c0, self.bf.D[L - 1] + s * r16(CH * K),
                                                   rows, &self.slice_correct[8 * s])
            # hidden deltas: D_{l-1} = (D_l . W_l[:, 1:]) * act'(A_{l-1})
            for l in range(L - 1, 0, -1):
                n_out, n_in = self.net.n_out[l], self.net.n_in[l]
                layer_hidden_delta(self._delta(l, s, c0), n_out, rows, n_out,
                                   self.net.W[l], n_in + 1, self.bf.A[l - 1] + s * r16(CH * n_in),
                                   n_in, n_in, self._delta(l - 1, s, c0),
                                   self.net.c.hidden_act, bw)
            if s == 0:
                t1 = now(); self.phase[2] += t1 - t0; t0 = t1
            # this chunk's share of the slice's partial gradient
            for l in range(L):
                n_out, n_in = self.net.n_out[l], self.net.n_in[l]
                A_prev = A0 if l == 0 else self.bf.A[l - 1] + s * r16(CH * n_in)
                if l == 0 and sp != NULL:       # its bias here, its weights by tiles
                    n_in = 0
                    sl_gradient(sp, s, rows, self._delta(0, s, c0), n_out)
                elif self.bf.by_panels[l]:      # its bias here, its weights by panels
                    n_in = 0
                layer_gradient(self._delta(l, s, c0), rows, n_out, A_prev, n_in,
                               n_in, self.bf.G[l] + s * r16(n_out * n_in),
                               self.bf.gb[l] + s * r16(n_out), not first, self.net.c.P != NULL)
            if s == 0:
                t1 = now(); self.phase[3] += t1 - t0; t0 = t1
            first = 0
            c0 += rows

    cdef inline float *_delta(self, int l, int s, Py_ssize_t c0) noexcept nogil:
        """Layer l's deltas of the chunk at batch row c0 of slice s: the
        slice's buffer, or the sparse first layer's rows of the batch-wide D0."""
        if l == 0 and self.D0 != NULL:
            return self.D0 + c0 * self.net.n_out[0]
        return self.bf.D[l] + s * r16(self.bf.CH * self.net.n_out[l])

    cdef double _update(self, int T, Py_ssize_t b) noexcept nogil:
        """Sum the T partial gradients, regularise and update every weight,
        one panel of 16 rows of a matrix per job (:func:`_panels.panel_job`,
        which also forms the gradient of a layer that goes by panels, and
        packs the panel's new weights for the next forward pass).

        Jobs are dealt out round robin; each row's part of the regularisation
        cost is summed afterwards in row order, so the result does not depend
        on the thread count.  The sparse first layer's blocks of features are
        jobs of the same loop (one fork and join a step)."""
        cdef Py_ssize_t j, n = self.pn.n_jobs + (self.sp.c.NB if self.D0 != NULL else 0)
        cdef double reg = 0.0
        for j in range(T):
            self.pn.grad_seconds[8 * j] = 0.0
        if T > 1:
            for j in prange(n, schedule="static", chunksize=1, num_threads=T):
                self._job(j, T, b)
        else:
            for j in range(n):
                self._job(j, T, b)
        # summed even when both lambdas are 0: a row whose update made a
        # weight NaN or infinite reports NaN, and so does the batch
        for j in range(self.pn.n_rows):
            reg += self.pn.row_reg[j]
        self.phase[3] += self.pn.grad_seconds[0]    # (thread 0's share, like the slices')
        self.phase[4] -= self.pn.grad_seconds[0]
        return reg

    cdef inline void _job(self, Py_ssize_t j, int T, Py_ssize_t b) noexcept nogil:
        cdef int t = threadid(), l
        if j >= self.pn.n_jobs:
            j -= self.pn.n_jobs
            self.sp.c.block_reg[j] = sl_update_block(&self.sp.c, j, t, self.sp.c.gbsum,
                                                     self.D0, self.net.n_out[0], self.l2,
                                                     self.l1, &self.opt)
            return
        l = self.pn.job_layer[j]
        cdef double *seconds = self.pn.grad_seconds + 8 * t
        seconds[0] += panel_job(&self.net.c, &self.bf, l, self.pn.job_row[j], T, b, self.l2,
                                self.l1, &self.opt, self.pn.row_reg + self.pn.row_first[l], t)


_Backend.register(CompiledBackend)
