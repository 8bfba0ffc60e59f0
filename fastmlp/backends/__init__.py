"""The backends that run fastmlp's per-batch computation, behind one interface.

* ``"compiled"`` (:mod:`fastmlp.backends._compiled`): Cython/C kernels, the
  whole training step without the GIL and without allocation;
* ``"numpy"`` (:mod:`fastmlp.backends._numpy_backend`, with its kernels in
  ``_numpy`` and ``_numpy_sparse``): the NumPy reference, which needs no
  compiled code at all.

Each backend module offers the same kernel functions with the same
signatures (``forward_layer``, ``output_delta``, ``hidden_delta``,
``gradient_update``, ``regularization_cost``, ``network_outputs``, and the
sparse first layer's ``sparse_forward_layer`` and ``sparse_gradient_update``)
and a ``Backend`` class implementing :class:`Backend`; the tests run every
kernel and every training step on both.  :func:`module` picks one by name.
"""

import importlib

import numpy as np

from .._network import NetworkState
from ._interface import PHASES, PREDICT_BLOCK_ROWS, Backend, BackendConfig

__all__ = ["BACKENDS", "Backend", "BackendConfig", "PHASES", "PREDICT_BLOCK_ROWS",
           "module", "backend_class", "loss_and_gradients"]

#: Backend names, the default first.
BACKENDS = ("compiled", "numpy")

_MODULES = {"compiled": "._compiled", "numpy": "._numpy_backend"}
_LOADED = {}


def module(name):
    """The module of backend ``name``: its kernels and its ``Backend`` class.

    The compiled module is imported only when asked for, so the NumPy
    backend works where the extension was not built; asking for it there
    raises ImportError saying so."""
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    loaded = _LOADED.get(name)           # (import_module costs ~4 us a call:
    if loaded is not None:               # a tenth of a one-row prediction)
        return loaded
    try:
        loaded = _LOADED[name] = importlib.import_module(_MODULES[name], __name__)
        return loaded
    except ImportError as exc:
        raise ImportError(f"the {name} backend is not available ({exc}); "
                          "backend='numpy' needs no compiled code") from exc


def backend_class(name):
    """The :class:`Backend` implementation called ``name``."""
    return module(name).Backend


def loss_and_gradients(name, weights, X, Y, config):
    """``(loss, regularisation cost, gradients)`` of the batch ``(X, Y)``.

    Computed by backend ``name``'s own training step: one step of plain sgd
    at rate 1 without momentum, on copies of ``weights``, whose subtracted
    amounts are then the regularised gradients (one ``(n_out, 1 + n_in)``
    array per matrix, bias in column 0).  A dense ``X`` is taken as scaled
    already (sparse rows get ``config.input_scaling`` folded in);
    its dtype is the arithmetic's (the NumPy backend also runs in float64,
    for gradient checks).  ``config`` gives the activation, output, lambdas,
    target mode and sample weights (one per row of ``X``); its optimiser,
    momentum and batch size are replaced.  The loss is weighted by
    the sample weights, the regularisation is not.
    """
    copies = [np.array(W, dtype=X.dtype, order="C") for W in weights]
    state = NetworkState(tuple([X.shape[1]] + [W.shape[0] for W in copies]), copies)
    cfg = BackendConfig(activation=config.activation, output=config.output, l2=config.l2,
                        l1=config.l1, momentum=0.0, batch_size=X.shape[0],
                        n_threads=config.n_threads, chunk_rows=config.chunk_rows,
                        input_scaling=config.input_scaling,
                        targets=config.targets, sample_weight=config.sample_weight)
    step = backend_class(name)(X, Y, state, cfg)
    cost, reg, _ = step.train_batch(np.arange(X.shape[0], dtype=np.intp), 1.0)
    return float(cost), float(reg), step.last_step()
