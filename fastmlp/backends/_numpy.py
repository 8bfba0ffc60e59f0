"""NumPy reference kernels: the blog series' optimised NumPy form of a training step.

Design
------
Every kernel here has a compiled twin in :mod:`fastmlp.backends._compiled`
with the same signature and meaning; the tests run both on the same inputs.
Kernels write into buffers the caller allocated (``# OUT``);
:class:`NumpyBackend` allocates those buffers once per fit, sized for the
largest batch, and every batch uses leading row slices of them.  Nothing here
needs the compiled extension.

Layout: samples are rows.  A batch of layer outputs ``A`` is a C-ordered
``(batch, n_nodes)`` float32 array; a weight matrix ``W`` is C-ordered
``(n_out, 1 + n_in)`` with the bias weights in column 0.  ``W[:, 1:]`` is a
strided view (row stride ``1 + n_in``) that ``np.matmul`` hands to BLAS as it
is: no ones-column is ever appended to ``A`` and no bias-free copy of ``W`` is
made.  (``np.dot`` copies such a view and ``np.matmul`` into a strided ``out``
allocates a temporary, so the gradient goes to a contiguous buffer ``Gw`` and
the bias gradient to ``gb``.)

The maths, per layer ``l`` (``L`` is the output layer)::

    forward   A_l = act(A_{l-1} . W_l[:, 1:]^T + W_l[:, 0])
    output    delta_L = w (A_L - Y)    (sigmoid + LogLoss, softmax + cross-entropy,
                                        identity + squared error; w the sample
                                        weights, 1 without them)
    hidden    delta_l = (delta_{l+1} . W_{l+1}[:, 1:]) * act'(A_l)
              act' from the output: sigmoid A (1 - A), tanh 1 - A^2, relu [A > 0]
    gradient  Gw_l = delta_l^T . A_{l-1} + l2 W_l[:, 1:] + l1 sign(W_l[:, 1:])
              gb_l = sum over the batch of delta_l
    update    one optimiser step (fastmlp._optim), e.g. sgd:
              dW = lr G_l;  W_l -= dW + momentum dW_prev;  dW_prev = dW

No delta is computed for the input layer.  The kernels compute in the dtype of
their operands: float32 in training, float64 in the gradient checks.
"""

import numpy as np
from scipy.special import expit

from .._optim import Optimizer
from .._registry import activation as _activation
from .._registry import kernel_kind
from ._targets import check_mode

__all__ = [
    "forward_layer",
    "activate",
    "output_delta",
    "hidden_delta",
    "gradient_update",
    "regularised_step",
    "regularization_cost",
]

_TINY = np.float32(np.finfo(np.float32).tiny)


def forward_layer(A_prev, W, A_out, activation="sigmoid"):
    """A_out := act(A_prev . W[:, 1:]^T + W[:, 0]), act a hidden activation or an output.

    A_prev : (B, n_in) float32          # IN
    W      : (n_out, 1 + n_in) float32  # IN
    A_out  : (B, n_out) float32, C      # OUT
    """
    np.matmul(A_prev, W[:, 1:].T, out=A_out)
    A_out += W[:, 0]
    activate(A_out, activation)


def activate(A_out, activation):
    """A_out := act(A_out) in place (the activation of :func:`forward_layer`)."""
    if activation == "sigmoid":
        expit(A_out, out=A_out)
    elif activation == "tanh":
        np.tanh(A_out, out=A_out)
    elif activation == "relu":
        np.maximum(A_out, 0.0, out=A_out)
    elif activation == "softmax":
        # shift by the row maximum: no overflow; the smallest terms underflow
        A_out -= A_out.max(axis=1, keepdims=True)
        np.exp(A_out, out=A_out)
        A_out /= A_out.sum(axis=1, keepdims=True)
    elif activation == "identity":
        pass                             # the bias added, nothing else
    else:
        kernel_kind(activation)          # raises, naming the choices


def output_delta(A_L, Y, delta_out, tmp, output="sigmoid", weights=None, targets="labels"):
    """delta_out := w (A_L - Y); return (loss summed over the batch, n correct).

    The loss is the output layer's (:data:`fastmlp._registry.OUTPUTS`), each
    row's term times its weight w (1 without ``weights``): LogLoss for
    sigmoid outputs, the categorical cross-entropy -sum(y log a) for softmax
    outputs, the squared error 1/2 sum (a - y)^2 for identity outputs.  For
    each, the gradient with respect to the output layer's input is A_L - Y.

    A_L       : (B, K) float32, the output layer's    # IN
    Y         : (B, K) float32, the targets           # IN
    delta_out : (B, K) float32                        # OUT
    tmp       : (B, K) float32 scratch                # OUT (clobbered)
    weights   : (B,) float32 or None, row i's weight  # IN
    targets   : "labels" (one-hot Y, one label per row) or "dense" (Y itself:
                sigmoid multilabel in [0, 1], or identity regression)

    With label targets, LogLoss's terms are log(a) where y = 1 and
    log(1 - a) where y = 0, and a row is correct when the first maximum of
    its outputs is at its label.  With dense targets, LogLoss is
    -sum(y log a + (1 - y) log(1 - a)) and a sigmoid row is correct when
    every output is on its target's side of 0.5 (a > 0.5 exactly where
    y > 0.5); no identity row is.  The argument of every log is clipped at
    the smallest normal float32, so a saturated output gives a large finite
    cost instead of inf.
    """
    output = check_mode(output, targets)
    w = None if weights is None else weights[:, None]
    np.subtract(A_L, Y, out=delta_out)
    if output == "identity":
        cost = 0.5 * _weighted_sum(delta_out, delta_out, weights)
    elif targets == "dense":
        # y log a, then (1 - y) log(1 - a), with delta_out as scratch for 1 - y
        np.maximum(A_L, _TINY, out=tmp)
        np.log(tmp, out=tmp)
        tmp *= Y
        cost = -_weighted_sum(tmp, None, weights)
        np.subtract(1.0, A_L, out=tmp)
        np.maximum(tmp, _TINY, out=tmp)
        np.log(tmp, out=tmp)
        np.subtract(1.0, Y, out=delta_out)
        tmp *= delta_out
        cost -= _weighted_sum(tmp, None, weights)
        np.subtract(A_L, Y, out=delta_out)
    else:
        if output == "softmax":
            tmp[...] = 1.0               # log 1 = 0 off the target class
        else:
            np.subtract(1.0, A_L, out=tmp)
        np.copyto(tmp, A_L, where=Y > 0.5)
        np.maximum(tmp, _TINY, out=tmp)
        np.log(tmp, out=tmp)
        cost = -_weighted_sum(tmp, None, weights)
    if w is not None:
        delta_out *= w
    if targets == "labels":
        correct = int(np.count_nonzero(A_L.argmax(axis=1) == Y.argmax(axis=1)))
    elif output == "sigmoid":
        correct = int(np.count_nonzero(((A_L > 0.5) == (Y > 0.5)).all(axis=1)))
    else:
        correct = 0
    return cost, correct


def _weighted_sum(T, U, weights):
    """sum_ij T_ij U_ij w_i in float64 (U and w left out when None).  With
    neither, T's own float64 sum: the unweighted numbers stay bit for bit
    those from before sample weights existed."""
    if U is None and weights is None:
        return float(T.sum(dtype=np.float64))
    ops = [T] + ([] if U is None else [U]) + ([] if weights is None else [weights])
    spec = ",".join(["ij"] * (1 if U is None else 2) + ([] if weights is None else ["i"]))
    return float(np.einsum(spec + "->", *ops, dtype=np.float64))


def hidden_delta(delta_next, W_next, A, delta_out, tmp, activation="sigmoid"):
    """delta_out := (delta_next . W_next[:, 1:]) * act'(A).

    The derivative comes from the forward output ``A`` (the activation is
    never recomputed from Z): sigmoid A (1 - A), tanh 1 - A^2, relu [A > 0].
    The bias column of ``W_next`` is skipped by slicing.

    delta_next : (B, n_next) float32         # IN
    W_next     : (n_next, 1 + n) float32     # IN
    A          : (B, n) float32              # IN
    delta_out  : (B, n) float32, C           # OUT
    tmp        : (B, n) float32 scratch      # OUT (clobbered)
    """
    np.matmul(delta_next, W_next[:, 1:], out=delta_out)
    if activation == "sigmoid":
        np.subtract(1.0, A, out=tmp)
        delta_out *= A
        delta_out *= tmp
    elif activation == "tanh":
        np.multiply(A, A, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        delta_out *= tmp
    elif activation == "relu":
        np.greater(A, 0.0, out=tmp)      # 1.0 where A > 0, else 0.0
        delta_out *= tmp
    else:
        _activation(activation)          # raises, naming the choices


def regularization_cost(W, l2, l1):
    """Return l2/2 sum(W[:, 1:]^2) + l1 sum|W[:, 1:]| (bias column excluded)."""
    Ww = W[:, 1:]
    cost = 0.0
    if l2 > 0.0:
        cost += 0.5 * l2 * float(np.einsum("ij,ij->", Ww, Ww, dtype=np.float64))
    if l1 > 0.0:
        cost += l1 * float(np.abs(Ww).sum(dtype=np.float64))
    return cost


def gradient_update(delta, A_prev, W, dW_prev, lr, l2, l1, momentum, Gw, gb, tmp,
                    optimizer=None, state2=None, step=1):
    """Regularised batch gradient, then one optimiser step on ``W``.

    Gw := delta^T . A_prev + l2 W[:, 1:] + l1 sign(W[:, 1:]);  gb := sum_b delta
    then, with G = [gb | Gw] (see :mod:`fastmlp._optim`):

    sgd      dW := lr G;  W -= dW + momentum dW_prev;  dW_prev := dW
    rmsprop  dW_prev := rho dW_prev + (1 - rho) G^2;  W -= lr G / sqrt(dW_prev + eps)
    adam     dW_prev (m) and state2 (v) as Keras updates them at step ``step``;
             W -= m alpha / (sqrt(v) + eps)

    delta   : (B, n_out) float32                # IN
    A_prev  : (B, n_in) float32                 # IN
    W       : (n_out, 1 + n_in) float32, C      # IN/OUT
    dW_prev : (n_out, 1 + n_in) float32, C      # IN/OUT  the optimiser's first state
                                                  (sgd's velocity, rmsprop's mean
                                                  square, adam's first moment)
    Gw      : (n_out, n_in) float32, C          # OUT (the amount subtracted from
    gb      : (n_out,) float32                  # OUT  W[:, 1:] / W[:, 0] after)
    tmp     : (n_out, n_in) float32 scratch     # OUT (clobbered)
    optimizer : None (sgd), a name or an :class:`fastmlp._optim.Optimizer`
    state2  : like dW_prev, adam's second moment  # IN/OUT (adam only)
    step    : 1-based number of this step (adam's bias correction)

    Terms whose lambda is 0 are not computed.
    """
    _checked_optimizer(optimizer, state2, W)       # before anything is written
    np.matmul(delta.T, A_prev, out=Gw)
    np.sum(delta, axis=0, out=gb)
    regularised_step(W, dW_prev, lr, l2, l1, momentum, Gw, gb, tmp, optimizer, state2, step)


def _checked_optimizer(optimizer, state2, W):
    opt = Optimizer.checked(optimizer)
    if opt.n_states == 2 and (state2 is None or state2.shape != W.shape):
        raise ValueError(f"state2: adam needs a second state array of shape {W.shape}")
    return opt


def regularised_step(W, dW_prev, lr, l2, l1, momentum, Gw, gb, tmp, optimizer=None,
                     state2=None, step=1):
    """The second half of :func:`gradient_update`, for a gradient computed
    elsewhere: Gw += l2 W[:, 1:] + l1 sign(W[:, 1:]), then one optimiser step
    on W with G = [gb | Gw]; Gw and gb end as the amounts subtracted."""
    opt = _checked_optimizer(optimizer, state2, W)
    Ww = W[:, 1:]
    real = W.dtype.type        # float32 in training; float64 in gradient tests
    if l2 > 0.0:
        np.multiply(Ww, real(l2), out=tmp)
        Gw += tmp
    if l1 > 0.0:
        np.sign(Ww, out=tmp)
        tmp *= real(l1)
        Gw += tmp
    consts = opt.constants(lr, step, real)
    s2 = state2 if state2 is not None else dW_prev
    _opt_step(opt.name, Ww, dW_prev[:, 1:], s2[:, 1:], Gw, tmp, consts, real(momentum))
    _opt_step(opt.name, W[:, 0], dW_prev[:, 0], s2[:, 0], gb, tmp.reshape(-1)[:gb.shape[0]],
              consts, real(momentum))


def _opt_step(name, w, s1, s2, g, tmp, consts, mom):
    """One optimiser step in place, float operations in the compiled kernel's
    order (csrc fm_opt_step); ``g`` holds the amount subtracted from ``w``
    afterwards."""
    lr, rho, omr, omb1, omb2, alpha, eps = consts
    if name == "rmsprop":
        s1 *= rho
        np.multiply(g, g, out=tmp)
        tmp *= omr
        s1 += tmp                       # v = v rho + (g g) (1 - rho)
        np.add(s1, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        g *= lr
        g /= tmp                        # inc = (g lr) / sqrt(v + eps)
        w -= g
    elif name == "adam":
        np.subtract(g, s1, out=tmp)
        tmp *= omb1
        s1 += tmp                       # m = m + (g - m)(1 - b1)
        np.multiply(g, g, out=tmp)
        tmp -= s2
        tmp *= omb2
        s2 += tmp                       # v = v + (g g - v)(1 - b2)
        np.sqrt(s2, out=tmp)
        tmp += eps
        np.multiply(s1, alpha, out=g)
        g /= tmp                        # inc = (m alpha) / (sqrt(v) + eps)
        w -= g
    else:
        g *= lr                         # dw = g lr
        s1 *= mom
        s1 += g                         # step = v mom + dw
        w -= s1
        s1[...] = g                     # v = dw
