"""NumPy reference of the sparse first layer: scipy.sparse products, scaling folded in.

A sparse input X (:class:`fastmlp._sparse.SparseRows`) is never scaled or
densified.  The first layer folds the input scaling ``(x - mean) / scale``
into its weights instead, which keeps zeros zero::

    forward   z = W[:, 1:] ((x - mean) / scale) + W[:, 0]
                = (W[:, 1:] / scale) x + (W[:, 0] - (W[:, 1:] / scale) mean)
    gradient  dW[:, 1:] = (delta^T X) / scale - (sum_b delta) (mean / scale)^T
              dW[:, 0]  = sum_b delta

The compiled twins (:mod:`fastmlp.backends._compiled`) have the same
signatures.  ``mean=None`` and ``scale=None`` mean no scaling; a zero mean
(the "maxabs" and "none" scalings) skips the centring terms.  In exact
arithmetic this is the dense first layer on scaled rows; in float32 the
sums run in another order (the tests compare at rtol 1e-4).
"""

import numpy as np

from ._numpy import _checked_optimizer, activate, regularised_step

__all__ = ["sparse_forward_layer", "sparse_gradient_update", "folded_weights"]


def _scaling(W, mean, scale):
    n_in = W.shape[1] - 1
    real = W.dtype.type
    mean = np.zeros(n_in, W.dtype) if mean is None else np.asarray(mean, W.dtype)
    scale = np.ones(n_in, W.dtype) if scale is None else np.asarray(scale, W.dtype)
    if mean.shape != (n_in,) or scale.shape != (n_in,):
        raise ValueError(f"mean, scale: expected shape ({n_in},), got {mean.shape} and "
                         f"{scale.shape}")
    return mean, scale, real


def folded_weights(W, mean=None, scale=None):
    """The first layer with the scaling folded in: a new ``(n_out, 1 + n_in)``
    matrix ``[W[:, 0] - (W[:, 1:] / scale) mean | W[:, 1:] / scale]``."""
    mean, scale, _ = _scaling(W, mean, scale)
    F = np.empty_like(W)
    np.divide(W[:, 1:], scale, out=F[:, 1:])
    F[:, 0] = W[:, 0]
    if np.any(mean):
        F[:, 0] -= F[:, 1:] @ mean
    return F


def _rows(X, idx):
    """Rows ``idx`` of X (SparseRows) as a scipy CSR matrix of float32 values."""
    return X[np.asarray(idx)].to_scipy(np.float32)


def sparse_forward_layer(X, idx, W, A_out, activation="sigmoid", mean=None, scale=None):
    """A_out := act(W[:, 1:] ((X[idx] - mean) / scale) + W[:, 0]), X sparse.

    X     : SparseRows (n, n_in)             # IN  (raw values; never scaled)
    idx   : (B,) intp                        # IN  the rows
    W     : (n_out, 1 + n_in) float32, C     # IN
    A_out : (B, n_out) float32, C            # OUT
    """
    F = folded_weights(W, mean, scale)
    Xb = _rows(X, idx)
    np.copyto(A_out, np.asarray(Xb @ F[:, 1:].T, dtype=A_out.dtype))
    A_out += F[:, 0]
    activate(A_out, activation)


def sparse_gradient_update(delta, X, idx, W, dW_prev, lr, l2, l1, momentum, Gw, gb, tmp,
                           optimizer=None, state2=None, step=1, mean=None, scale=None):
    """Regularised batch gradient of the first layer on sparse rows, then one
    optimiser step on ``W`` (as :func:`fastmlp.backends._numpy.gradient_update`):

    Gw := (delta^T X[idx]) / scale - gb (mean / scale)^T + l2 W[:, 1:] + l1 sign(W[:, 1:])
    gb := sum_b delta

    delta : (B, n_out) float32               # IN
    X     : SparseRows (n, n_in), idx (B,)   # IN
    W, dW_prev, state2 : as gradient_update  # IN/OUT
    Gw, gb : the amounts subtracted after    # OUT
    """
    _checked_optimizer(optimizer, state2, W)
    mean, scale, real = _scaling(W, mean, scale)
    Xb = _rows(X, idx)
    np.sum(delta, axis=0, out=gb)
    np.copyto(Gw, np.asarray((Xb.T @ delta).T, dtype=Gw.dtype))
    Gw /= scale
    if np.any(mean):
        Gw -= np.outer(gb, mean / scale)
    regularised_step(W, dW_prev, lr, l2, l1, momentum, Gw, gb, tmp, optimizer, state2, step)
