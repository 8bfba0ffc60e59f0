# cython: language_level=3
"""The training step's update, one panel of 16 weight rows at a time.

After the slices have run (:meth:`CompiledBackend._slice`), the step's
second parallel loop deals out panels: rows ``j0 .. j0 + 16`` of one weight
matrix, the rows that fill one 16-wide block of the packed weights the
forward product reads.  One panel's job, in one thread:

1. its rows of the gradient, when the layer's gradient goes by panels
   (below): ``G[j0:j1] = sum over slices s of D_s[:, j0:j1]^T . A_s``, slice
   after slice into slice 0's buffer;
2. the update of its rows: the partial gradients summed (T of them, or the
   one from step 1), regularised, and one optimiser step;
3. its block of the packed weights, while the new rows are in the core's
   cache, so the next step needs no separate repack pass; none for a layer
   whose forward product goes by weights in every chunk of a full batch
   (:func:`by_weights_plan`), which reads W itself.

Two ways to the gradient
------------------------
*By rows* (the slices): each slice sums its own rows' partial gradient, as
large as the weights, and the update reads all T of them.  The memory
traffic of that grows as T x the weights per step, whatever the batch.

*By panels*: the slices keep their deltas, and each panel's job reads every
slice's deltas for its 16 columns and every slice's inputs.  No partial
gradient is written or read, but every job reads the layer's whole input
(batch x n_in floats), from the cache when it fits.  It needs each slice to
be one chunk, so its rows are all still there.

The numbers are the same either way, bit for bit: each element is summed
over a slice's rows in order from zero and the slices' sums are added in
slice order, both here and in the update's sum of partial gradients.  Which
way is faster depends on the shape and the thread count: see
:func:`panel_plan`.
"""

import functools
import os

from ._layers cimport (fm_by_weights_floats, fm_forward_by_weights_pays, fm_gemm_gradient,
                       fm_pack_panel, layer_update_row, now, r16)

import numpy as np

from ._layers import aligned_zeros

__all__ = ["Panels", "by_weights_plan", "cache_bytes", "l2_cache_bytes", "panel_plan",
           "panels_cheaper", "split_bytes", "stream_packing"]

SPLITS = ("auto", "rows", "panels")


def panel_plan(n_in, n_out, batch, n_threads, chunk_rows, own, sparse, split=None):
    """Per layer, True when its gradient goes by panels (see the module doc).

    ``n_in`` and ``n_out`` list the layers' sizes; ``batch`` is the largest
    batch, ``n_threads`` the slices, ``chunk_rows`` the rows of a chunk; ``own``
    says whether fastmlp's AVX-512 products are in use (panels need them: a
    block of sgemm's product need not equal that block of the whole);
    ``sparse`` that layer 0 is the sparse first layer (never by panels).
    ``split`` (default: the FASTMLP_SPLIT environment variable, else "auto")
    forces "rows" or "panels" where panels are possible."""
    split = (os.environ.get("FASTMLP_SPLIT") or "auto") if split is None else split
    if split not in SPLITS:
        raise ValueError(f"FASTMLP_SPLIT must be one of {', '.join(SPLITS)}, got {split!r}")
    one_chunk = -(-batch // n_threads) <= chunk_rows
    possible = own and n_threads > 1 and one_chunk and split != "rows"
    cache = l2_cache_bytes()
    out = []
    for l, (k, m) in enumerate(zip(n_in, n_out)):
        ok = possible and not (sparse and l == 0)
        out.append(bool(ok and (split == "panels" or
                                panels_cheaper(k, m, batch, n_threads, cache))))
    return out


def by_weights_plan(n_out, batch, n_threads, chunk_rows, own, sparse):
    """Per layer, True when every chunk of a full batch (``batch`` rows in
    ``n_threads`` slices, each in chunks of ``chunk_rows``, as in
    :func:`panel_plan`) takes the forward product by weights, which reads W
    as it lies: the update then leaves that layer's packed weights stale, and
    a shorter batch (an epoch's last) repacks them before it runs."""
    T = max(1, min(n_threads, batch))
    CH = min(chunk_rows, -(-batch // T))
    sizes = set()
    for s in range(T):
        rows = (s + 1) * batch // T - s * batch // T
        sizes |= {min(CH, rows), rows % CH or CH}
    return [bool(own and not (sparse and l == 0) and
                 all(fm_forward_by_weights_pays(r, m) for r in sizes))
            for l, m in enumerate(n_out)]


cdef class Panels:
    """The update's job table and the buffers of its panel jobs:
    ``Panels(n_in, n_out, batch, n_threads, chunk_rows, own, sparse, keep_steps)``
    with the arguments of :func:`panel_plan` (``keep_steps``: a gradient by
    panels is formed in slice 0's G, for ``last_step``, instead of a small
    buffer per thread); and, with ``own``, each slice's scratch for the
    products by weights of its chunks (up to 64 rows of them)."""

    def __cinit__(self, n_in, n_out, batch, n_threads, chunk_rows, own, sparse, keep_steps):
        flags = np.array(panel_plan(n_in, n_out, batch, n_threads, chunk_rows, own, sparse),
                         np.uint8)
        mode = np.array(stream_packing(n_in, n_out), np.uint8)
        mode[np.array(by_weights_plan(n_out, batch, n_threads, chunk_rows, own, sparse), bool)] = 2
        jobs = np.array([(l, j0) for l, m in enumerate(n_out) for j0 in range(0, m, 16)],
                        np.intc).reshape(-1, 2).T.copy()
        first = np.cumsum([0] + list(n_out)).astype(np.intp)
        self.n_jobs, self.n_rows = jobs.shape[1], int(first[len(n_out)])
        stride = 16 * max(n_in) if flags.any() and not keep_steps else 0
        G = aligned_zeros(max(1, n_threads * stride))
        reg, sec = np.zeros(max(1, self.n_rows)), np.zeros(8 * n_threads)
        CH = min(chunk_rows, -(-batch // n_threads))
        bw = r16(fm_by_weights_floats(min(CH, 64), 0, max(
            [k + m for k, m in zip(n_in, n_out)][sparse:], default=0))) if own else 0
        scratch = aligned_zeros(max(1, n_threads * bw))
        self._keep = (flags, jobs, first, G if stride else None, reg, sec, mode, stride,
                      scratch, bw)
        self.job_layer = <int *><size_t>jobs[0].ctypes.data
        self.job_row = <int *><size_t>jobs[1].ctypes.data
        self.row_first = <Py_ssize_t *><size_t>first.ctypes.data
        self.row_reg = <double *><size_t>reg.ctypes.data
        self.grad_seconds = <double *><size_t>sec.ctypes.data

    cdef void plan_into(self, StepBufs *bf):
        """Point ``bf``'s per-layer plan (gradient by panels, how the update
        packs the weights), its panel buffers and the slices' scratch for the
        products by weights at this object's (which keeps them alive)."""
        flags, _, _, G, _, _, mode, stride, scratch, bw = self._keep
        bf.by_panels = <unsigned char *><size_t>flags.ctypes.data
        bf.pack_mode = <unsigned char *><size_t>mode.ctypes.data
        bf.unpacked = 2 in mode
        bf.panel_G = <float *><size_t>G.ctypes.data if G is not None else NULL
        bf.panel_G_stride = stride
        bf.bw = <float *><size_t>scratch.ctypes.data if bw else NULL
        bf.bw_floats = bw

    @property
    def by_panels_flags(self):
        """Per layer, whether its gradient goes by panels."""
        return [bool(f) for f in self._keep[0]]

    @property
    def pack_modes(self):
        """Per layer, how the update packs its weights: "cached", "streamed"
        (past the caches) or "none" (its forward goes by weights)."""
        return [("cached", "streamed", "none")[m] for m in self._keep[6]]


@functools.lru_cache(maxsize=None)
def cache_bytes(level=2, default=2 ** 20):
    """The first core's cache size at ``level`` (Linux sysfs: index2 is L2,
    index3 L3), or ``default`` when unknown; read once per process."""
    try:
        with open(f"/sys/devices/system/cpu/cpu0/cache/index{level}/size") as f:
            text = f.read().strip().upper()
        number = text.rstrip("KMG")
        scale = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}[text[len(number):]]
        return int(number) * scale
    except (OSError, ValueError, KeyError):
        return default


def l2_cache_bytes():
    """The first core's L2 cache size, or 1 MiB when unknown."""
    return cache_bytes(2)


def stream_packing(n_in, n_out):
    """Per layer, True when the update writes its packed weights with
    non-temporal stores: when they take half the L3 cache or more (16 MiB
    when unknown), so that they would not stay cached until the next
    forward pass anyway.  On Zen 5 (L3 32 MiB), (2048, 2048) at batch 32-500
    took 0.91-0.98 x the time with its 16 MiB layer streamed; streaming every
    layer over 1 MiB made (2048,) and (1024, 1024) at batch 32 1.26-1.30 x
    slower, their 3-6 MiB packed weights no longer found in L3."""
    half_l3 = cache_bytes(3, 2 ** 25) // 2
    return [4 * k * ((m + 15) // 16 * 16) >= half_l3 for k, m in zip(n_in, n_out)]


def split_bytes(n_in, n_out, batch, T, l2_bytes):
    """The cost model: the weighted extra bytes per step of forming an
    (n_out x n_in) layer's gradient (by rows, by panels), in T slices of a
    batch, with an L2 cache of ``l2_bytes``.

    By rows, T - 1 extra partial gradients are written and read back (2 (T-1)
    n_out n_in floats), at full cost when one partial overflows the L2 cache
    and at a quarter when it stays there.  By panels, each of the
    ceil(n_out / 16) jobs reads the layer's whole input (batch x n_in
    floats): a fifth of the cost from L2, half from the shared L3.  (The
    weights were fitted to runs on Zen 5 with 2 threads, in the README's
    "Threads" section: panels took 0.79-0.96 x the time of rows at batch 32
    for widths 1024 and 2048, 0.95-0.98 x at batch 64-128 for widths
    512-2048, and 1.00-1.37 x where slices have 64 rows or more on layers up
    to 256 wide, or 250 rows on any width.)"""
    partial = 4.0 * n_out * n_in
    rows_way = 2.0 * (T - 1) * partial * (1.0 if partial > l2_bytes else 0.25)
    inputs = 4.0 * batch * n_in
    panels_way = (n_out + 15) // 16 * inputs * (0.2 if inputs <= l2_bytes else 0.5)
    return rows_way, panels_way


def panels_cheaper(n_in, n_out, batch, T, l2_bytes):
    """True when :func:`split_bytes` counts fewer bytes by panels (ties go to rows)."""
    rows_way, panels_way = split_bytes(n_in, n_out, batch, T, l2_bytes)
    return panels_way < rows_way


cdef double panel_job(const NetC *net, const StepBufs *bf, int l, Py_ssize_t j0, int T,
                      Py_ssize_t b, float l2, float l1, const fm_opt *o, double *row_reg,
                      int thread) noexcept nogil:
    """The job of the panel at row j0 of layer l (see the module doc) for a
    batch of b rows in T slices, run by ``thread``; row_reg[j] := row j's
    regularisation cost (or NaN).  Returns the seconds spent in its gradient
    (0 by rows).  A gradient by panels is formed in the thread's own panel
    buffer when there is one (it stays in the core's cache), else in slice
    0's G, where :meth:`CompiledBackend.last_step` finds it."""
    cdef int n_in = net.n_in[l], n_out = net.n_out[l]
    cdef int k = 0 if l == 0 and bf.sparse0 else n_in    # weights updated here
    cdef Py_ssize_t j1 = min(j0 + 16, n_out), j, s, r0, r1, CH = bf.CH
    cdef Py_ssize_t ld = n_in + 1
    cdef float *G = bf.G[l]
    cdef const float *A_prev
    cdef int parts = T
    cdef double t0 = 0.0, spent = 0.0
    if bf.by_panels[l]:
        t0 = now()
        if bf.panel_G != NULL:      # rows j0.. of a G of its own
            G = bf.panel_G + thread * bf.panel_G_stride - j0 * n_in
        for s in range(T):
            r0, r1 = s * b // T, (s + 1) * b // T
            A_prev = (bf.A0 if l == 0 else bf.A[l - 1]) + s * r16(CH * n_in)
            fm_gemm_gradient(bf.D[l] + s * r16(CH * n_out) + j0, r1 - r0, j1 - j0, n_out,
                             A_prev, n_in, n_in, G + j0 * n_in, s > 0)
        parts = 1
        spent = now() - t0
    for j in range(j0, j1):
        row_reg[j] = layer_update_row(net.W[l] + j * ld, bf.V[l] + j * ld, bf.V2[l] + j * ld,
                                      G + j * k, bf.gb[l] + j, r16(<Py_ssize_t>n_out * k),
                                      r16(n_out), parts, T, k, l2, l1, o)
    if net.P != NULL and net.P[l] != NULL and bf.pack_mode[l] != 2:
        fm_pack_panel(net.W[l] + 1, n_out, n_in, ld, net.P[l], net.NP[l], j0, bf.pack_mode[l])
    return spent

