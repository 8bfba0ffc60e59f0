"""What every backend offers: one configuration object and one interface.

A backend runs the per-batch computation of a training run (gather, forward
pass, deltas, gradients, optimiser step) and the forward pass of
prediction.  The trainer drives any backend through :class:`Backend` alone;
the estimator builds the :class:`BackendConfig`.  Two implementations exist,
with the same constructor and the same numbers: ``"numpy"``
(:mod:`fastmlp.backends._numpy`, the reference) and ``"compiled"``
(:mod:`fastmlp.backends._compiled`, Cython/C).
"""

import abc
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._optim import Optimizer

__all__ = ["BackendConfig", "Backend", "PHASES", "PREDICT_BLOCK_ROWS"]

#: Phases of a training step, in the order of :attr:`Backend.phase_seconds`.
PHASES = ("gather", "forward", "backward", "gradient", "update")

#: Rows per block when predicting (both backends): each block goes through
#: every layer before the next one starts, so its buffers stay in cache.
PREDICT_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class BackendConfig:
    """Everything a backend needs besides the data and the network state.

    activation : hidden-layer activation name (:data:`fastmlp._registry.ACTIVATIONS`)
    output     : output layer name (:data:`fastmlp._registry.OUTPUTS`)
    optimizer  : the update rule and its hyperparameters (None: plain sgd)
    l2, l1     : regularisation factors (bias weights excluded)
    momentum   : sgd's momentum
    batch_size : the largest batch :meth:`Backend.train_batch` will be given
    n_threads  : the backend's own threads (the compiled backend's row slices
                 per batch; None: all cores); see :meth:`Backend.thread_plan`
    input_scaling : (mean, scale) applied to X's rows, ``(x - mean) / scale``
                 in float32, or None when X is already scaled; for sparse X
                 (:class:`fastmlp._sparse.SparseRows`) folded into the first
                 layer's weights instead
    chunk_rows : rows the compiled backend sends through the network at a time
    block_rows : rows per block in :meth:`Backend.predict_proba`
    targets    : how Y is read (:mod:`fastmlp.backends._targets`): "labels",
                 one-hot single-label rows (any output), or "dense", Y itself
                 (sigmoid: multilabel LogLoss; identity: squared error)
    sample_weight : None, or an (n,) float32 array of finite weights >= 0
                 aligned with X's rows: each sample's loss term, and its output
                 delta, times its weight (the regularisation is not weighted);
                 read where it lies, never copied
    keep_steps : keep what each step subtracts, for :meth:`Backend.last_step`.
                 The compiled backend's sparse first layer forms its gradient
                 in registers and never stores it, and a layer whose gradient
                 goes by panels forms it in a small buffer per thread; with
                 False they skip writing the step out (a fit does not need
                 it), and ``last_step`` raises for those layers
    """

    activation: str = "sigmoid"
    output: str = "sigmoid"
    optimizer: Optional[Optimizer] = None
    l2: float = 0.0
    l1: float = 0.0
    momentum: float = 0.0
    batch_size: int = 1
    n_threads: Optional[int] = None
    input_scaling: Optional[tuple] = None
    chunk_rows: int = 256
    block_rows: int = PREDICT_BLOCK_ROWS
    targets: str = "labels"
    sample_weight: Optional[np.ndarray] = None
    keep_steps: bool = True


class Backend(abc.ABC):
    """One training run's computation on one data set.

    ``Backend(X, Y, state, config)`` allocates every buffer the run needs,
    once.  ``X`` is the training input (n, n_in) and ``Y`` the targets
    (n, K) float32, read as ``config.targets`` says; ``state`` is a :class:`fastmlp._network.NetworkState`
    whose weight and optimiser arrays the backend updates in place, and
    whose ``step`` it starts counting from.  The backend never changes X,
    Y or the layer sizes.
    """

    #: The backend's name ("numpy" or "compiled").
    name = None

    #: True while a step is half applied (an interrupt between two layers'
    #: updates); the trainer then rewinds.  The compiled step runs without
    #: the GIL and cannot be interrupted half-way, so it is always False.
    partial_update = False

    @abc.abstractmethod
    def train_batch(self, idx, lr):
        """One optimiser step on rows ``idx`` (intp array) of X at rate ``lr``.

        Returns ``(loss, regularisation cost, n correct)``: the batch's loss
        summed over samples and outputs (each sample's term times its
        weight, with ``config.sample_weight``), and the regularisation cost,
        both at the weights before the step (the regularisation cost is NaN
        when the step made a weight NaN or infinite), and how many rows were
        right: with label targets, rows whose largest output was at their
        label; with dense targets and a sigmoid output, rows whose every
        output was on its target's side of 0.5; with dense targets and an
        identity output, 0.
        """

    @property
    @abc.abstractmethod
    def step(self):
        """Optimiser steps taken so far (settable: the trainer rewinds it)."""

    @property
    @abc.abstractmethod
    def phase_seconds(self):
        """Seconds per phase (:data:`PHASES`) since construction or :meth:`reset_phases`."""

    @abc.abstractmethod
    def reset_phases(self):
        """Set the phase timers to zero."""

    @abc.abstractmethod
    def last_step(self):
        """Per weight matrix, a new ``(n_out, 1 + n_in)`` array holding what the
        last :meth:`train_batch` subtracted from it (bias in column 0).  With
        sgd at rate 1 and no momentum this is the regularised gradient.  (A
        backend built with ``keep_steps=False`` may not have kept it.)"""

    def sync_out(self):
        """Bring the network state's arrays up to date.  A backend may train a
        layer in a layout of its own (the compiled backend's sparse first
        layer keeps its weights transposed); the trainer calls this before it
        reads or snapshots the state, and the estimator before it hands out
        ``coefs_`` mid-fit.  Nothing to do for a backend that trains the
        state's arrays in place."""

    def sync_in(self):
        """Take the network state's arrays as they are now (after the trainer
        restored a snapshot into them)."""

    def epoch_views(self, arrays):
        """The parts of the network state's ``arrays`` that training steps
        write between :meth:`sync_in` and :meth:`sync_out`: the whole arrays
        for a backend that trains them in place.  The rest keep their values
        from the last sync until the next :meth:`sync_out`, so the trainer's
        epoch snapshot (taken right after one) copies only these views."""
        return list(arrays)

    @staticmethod
    @abc.abstractmethod
    def thread_plan(n_threads, predict=False):
        """``(backend threads, BLAS thread limit)`` for a user's ``n_threads``
        (in a prediction with ``predict``).

        The first goes into :attr:`BackendConfig.n_threads`; the second is the
        limit the caller sets on BLAS while the backend runs (None: leave
        BLAS alone)."""

    @staticmethod
    @abc.abstractmethod
    def predict_proba(X, weights, out, config):
        """``out`` := the network's outputs for the scaled rows of ``X``
        (float32, C-ordered), in blocks of ``config.block_rows`` rows."""
