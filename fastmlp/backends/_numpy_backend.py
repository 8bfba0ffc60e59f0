"""The NumPy backend: :class:`NumpyBackend` and prediction, composed of the twin kernels.

:mod:`fastmlp.backends._numpy` holds the dense twin kernels and
:mod:`fastmlp.backends._numpy_sparse` the sparse first layer's; this module
composes them into the training step and the forward pass of prediction,
and exports the kernels too, so that it offers what the compiled module
:mod:`fastmlp.backends._compiled` offers (``backends.module("numpy")``).
Nothing here needs the compiled extension.
"""

from time import perf_counter

import numpy as np

from .._optim import Optimizer
from .._registry import activation as _activation
from .._registry import output as _output
from .._sparse import SparseRows
from ._interface import PHASES, Backend as _Backend
from ._numpy import (forward_layer, gradient_update, hidden_delta, output_delta,
                     regularization_cost)
from ._numpy_sparse import sparse_forward_layer, sparse_gradient_update
from ._targets import check_sample_weight, check_targets

__all__ = ["forward_layer", "output_delta", "hidden_delta", "gradient_update",
           "regularization_cost", "network_outputs", "sparse_forward_layer",
           "sparse_gradient_update", "NumpyBackend", "Backend", "PHASES"]


def network_outputs(X, weights, out, block_rows=1024, n_threads=None, activation="sigmoid",
                    output="sigmoid", input_scaling=None):
    """out := network outputs for every row of X, computed in row blocks.

    X       : (n, n_in) float32, scaled; or SparseRows, raw,  # IN
              with ``input_scaling`` (mean, scale) folded into the first layer
    weights : list of (n_out, 1 + n_in) float32     # IN
    out     : (n, K) float32, C                     # OUT

    The block buffers are allocated once per call, not per block.
    ``n_threads`` is accepted for the compiled twin's signature; NumPy's only
    threads are BLAS's, which the caller limits.
    """
    if isinstance(X, SparseRows):
        return _sparse_outputs(X, weights, out, block_rows, activation, output, input_scaling)
    n = X.shape[0]
    widths = [W.shape[0] for W in weights[:-1]]
    bufs = [np.empty((min(block_rows, n), w), np.float32) for w in widths]
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        A = X[s:e]
        for W, buf in zip(weights[:-1], bufs):
            nxt = buf[: e - s]
            forward_layer(A, W, nxt, activation)
            A = nxt
        forward_layer(A, weights[-1], out[s:e], output)
    return out


def _sparse_outputs(X, weights, out, block_rows, activation, output, input_scaling):
    from ._numpy_sparse import sparse_forward_layer
    mean, scale = input_scaling if input_scaling is not None else (None, None)
    n, L = X.shape[0], len(weights)
    for s in range(0, n, block_rows):
        rows = np.arange(s, min(n, s + block_rows))
        A = out[s:s + len(rows)] if L == 1 else np.empty((len(rows), weights[0].shape[0]),
                                                            np.float32)
        sparse_forward_layer(X, rows, weights[0], A, output if L == 1 else activation, mean,
                             scale)
        for l in range(1, L):
            nxt = out[s:s + len(rows)] if l == L - 1 else \
                np.empty((len(rows), weights[l].shape[0]), np.float32)
            forward_layer(A, weights[l], nxt, output if l == L - 1 else activation)
            A = nxt
    return out


class NumpyBackend(_Backend):
    """One fit's training state for the NumPy kernels (see :class:`fastmlp.backends.Backend`).

    ``NumpyBackend(X, Y, state, config)``: with ``config.input_scaling`` set,
    X is scaled once, here, into a float32 copy (the blog series' form);
    without it, X is used as it is and sets, with the weights, the dtype of
    the arithmetic.  ``config.n_threads`` is ignored: NumPy's only threads
    are BLAS's, which the caller limits (:meth:`thread_plan`).  Y is read as
    ``config.targets`` says (dense targets in another dtype than the
    arithmetic's are converted once, here); ``config.sample_weight`` is
    kept as it is, and each batch's weights are gathered into a buffer.

    All buffers are allocated here, once; :meth:`train_batch` only writes
    into leading row slices of them.
    """

    name = "numpy"

    def __init__(self, X, Y, state, config):
        weights = state.weights
        self.optimizer = Optimizer.checked(config.optimizer)
        states2 = state.state2
        if self.optimizer.n_states == 2:
            if states2 is None or len(states2) != len(weights) or any(
                    S.shape != W.shape or S.dtype != W.dtype for S, W in zip(states2, weights)):
                raise ValueError("states2: adam needs one second-moment array per weight "
                                 "matrix, of the matrix's shape and dtype")
        self.states2 = states2
        self._step = int(state.step)
        self.partial_update = False
        self.activation = _activation(config.activation).name
        self.output = _output(config.output).name
        self.targets = config.targets
        K = weights[-1].shape[0]
        check_targets(Y, X.shape[0], K, self.output, self.targets)
        self.sample_weight = check_sample_weight(config.sample_weight, X.shape[0])
        self.sparse = isinstance(X, SparseRows)
        self._mean = self._scale = None
        if self.sparse:
            # never scaled nor densified: the first layer folds the scaling in
            if config.input_scaling is not None:
                self._mean, self._scale = config.input_scaling
        elif config.input_scaling is not None:
            # the blog series' form: one scaled float32 copy of the whole training set
            mean, scale = config.input_scaling
            X = np.array(X, dtype=np.float32, order="C", copy=True)
            X -= np.asarray(mean, np.float32)
            X /= np.asarray(scale, np.float32)
        self.X, self.Y = X, Y
        self.weights, self.velocities = weights, state.state1
        self.l2, self.l1 = float(config.l2), float(config.l1)
        self.momentum = float(config.momentum)
        B = int(config.batch_size)
        dt = weights[0].dtype          # float32 in training; float64 in gradient checks
        if self.targets == "dense":
            self.Y = Y = np.asarray(Y, dtype=dt)
        self._Xb = None if self.sparse else np.empty((B, X.shape[1]), dt)
        self._Yb = np.empty((B, Y.shape[1]), dt)
        self._wb = None if self.sample_weight is None else np.empty(B, np.float32)
        self._A = [np.empty((B, W.shape[0]), dt) for W in weights]
        self._D = [np.empty((B, W.shape[0]), dt) for W in weights]
        self._T = [np.empty((B, W.shape[0]), dt) for W in weights]
        self._Gw = [np.empty((W.shape[0], W.shape[1] - 1), dt) for W in weights]
        self._gb = [np.empty(W.shape[0], dt) for W in weights]
        # scratch of weight shape for the regularisation terms
        self._Wtmp = [np.empty((W.shape[0], W.shape[1] - 1), dt) for W in weights]
        self.reset_phases()

    @staticmethod
    def thread_plan(n_threads, predict=False):
        """NumPy's only threads are BLAS's: ``n_threads`` limits them (None
        leaves BLAS as it is), in training and prediction alike."""
        return None, n_threads

    @staticmethod
    def predict_proba(X, weights, out, config):
        """out := the network's outputs for the rows of X: dense and scaled,
        or SparseRows with ``config.input_scaling`` folded into the first layer."""
        return network_outputs(X, weights, out, config.block_rows, None, config.activation,
                               config.output, config.input_scaling)

    @property
    def step(self):
        """Optimiser steps taken (those before construction included)."""
        return self._step

    @step.setter
    def step(self, value):
        if int(value) < 0:
            raise ValueError(f"step must be >= 0, got {value}")
        self._step = int(value)

    def train_batch(self, idx, lr):
        """Train on rows ``idx`` of X; return (loss, regularisation cost, n correct).

        The costs are those of the weights before this step's update, except
        that the regularisation cost is NaN when the update made a weight NaN
        or infinite (as in the compiled backend).
        """
        t0 = perf_counter()
        b = idx.shape[0]
        Yb = self._Yb[:b]
        # mode="clip": the indices are valid by construction, and the default
        # mode="raise" gathers into a hidden temporary before copying to out
        if not self.sparse:
            Xb = self._Xb[:b]
            np.take(self.X, idx, axis=0, out=Xb, mode="clip")
        np.take(self.Y, idx, axis=0, out=Yb, mode="clip")
        wb = None
        if self._wb is not None:
            wb = self._wb[:b]
            np.take(self.sample_weight, idx, out=wb, mode="clip")
        t1 = perf_counter()
        Ws = self.weights
        A = [None if self.sparse else Xb] + [a[:b] for a in self._A]
        D = [d[:b] for d in self._D]
        T = [t[:b] for t in self._T]
        last = len(Ws) - 1
        for l, W in enumerate(Ws):
            act = self.output if l == last else self.activation
            if l == 0 and self.sparse:
                sparse_forward_layer(self.X, idx, W, A[1], act, self._mean, self._scale)
            else:
                forward_layer(A[l], W, A[l + 1], act)
        t2 = perf_counter()
        cost, correct = output_delta(A[-1], Yb, D[-1], T[-1], self.output, wb, self.targets)
        reg = 0.0
        if self.l2 > 0.0 or self.l1 > 0.0:
            for W in Ws:
                reg += regularization_cost(W, self.l2, self.l1)
        for l in range(len(Ws) - 1, 0, -1):
            hidden_delta(D[l], Ws[l], A[l], D[l - 1], T[l - 1], self.activation)
        t3 = perf_counter()
        s2 = self.states2
        # an interrupt between the layer updates leaves this True: the
        # trainer then rewinds the weights to the last completed step
        self.partial_update = True
        for l, W in enumerate(Ws):
            args = (W, self.velocities[l], lr, self.l2, self.l1, self.momentum, self._Gw[l],
                    self._gb[l], self._Wtmp[l], self.optimizer, None if s2 is None else s2[l],
                    self._step + 1)
            if l == 0 and self.sparse:
                sparse_gradient_update(D[0], self.X, idx, *args, mean=self._mean,
                                       scale=self._scale)
            else:
                gradient_update(D[l], A[l], *args)
            if not np.isfinite(W).all():
                reg = float("nan")       # divergence, as the compiled kernel reports it
        self._step += 1
        self.partial_update = False
        t4 = perf_counter()
        ph = self._phase
        ph[0] += t1 - t0
        ph[1] += t2 - t1
        ph[2] += t3 - t2
        ph[3] += t4 - t3
        return cost, reg, correct

    def last_step(self):
        """What the last step subtracted from each W, ``[gb | Gw]`` per matrix."""
        return [np.column_stack([gb, Gw]) for gb, Gw in zip(self._gb, self._Gw)]

    @property
    def phase_seconds(self):
        """Seconds per phase (``PHASES``) since construction or the last
        :meth:`reset_phases`.  Here the update is done inside the gradient
        kernel, so its time is part of "gradient" and "update" stays 0."""
        return dict(zip(PHASES, self._phase))

    def reset_phases(self):
        """Set the phase timers to zero."""
        self._phase = [0.0] * len(PHASES)


Backend = NumpyBackend
