"""What a backend trains towards: the target modes, sample weights, and their checks.

Both backends take the targets ``Y`` as an ``(n, K)`` matrix aligned with X's
rows, read in one of two modes (:attr:`BackendConfig.targets`):

* ``"labels"``: ``Y`` is one-hot, one label per row (single-label
  classification).  The compiled backend keeps only each row's label
  (``Y.argmax(1)``); the NumPy backend uses ``Y`` as it is.  Any output.
* ``"dense"``: ``Y`` itself is the target, read where it lies.  For a
  sigmoid output (multilabel classification, LogLoss) its entries are in
  [0, 1]; for an identity output (regression, squared error) any finite
  numbers.  A softmax output has no dense mode.

``sample_weight`` (None, or an ``(n,)`` float32 array of finite weights
>= 0) weights each sample's loss term: the batch cost is ``sum_i w_i L_i``
and the output delta of row i is multiplied by ``w_i``; the regularisation
is not weighted.  The checks here are shared by both backends, so both
refuse the same operands with the same ValueError, naming the operand.
"""

import numpy as np

from .._registry import output as _output

__all__ = ["TARGETS", "check_mode", "check_targets", "check_sample_weight"]

#: The target modes, the default first.
TARGETS = ("labels", "dense")


def check_mode(output, targets):
    """The output's name, after checking that it can train on ``targets``."""
    name = _output(output).name
    if targets not in TARGETS:
        raise ValueError(f"unknown targets {targets!r}; choose one of {TARGETS}")
    if targets == "dense" and name == "softmax":
        raise ValueError("targets='dense' with output='softmax' is not supported: a softmax "
                         "output trains on single labels (targets='labels'); dense targets "
                         "need output='sigmoid' (multilabel) or 'identity' (regression)")
    return name


def check_targets(Y, n, K, output, targets):
    """``Y`` after checking it is an ``(n, K)`` array whose values suit the mode.

    Dense targets must be finite, and within [0, 1] for a sigmoid output
    (LogLoss).  The values are checked with a minimum and a maximum, which
    allocate nothing; one-hot label targets are not inspected."""
    name = check_mode(output, targets)
    shape = getattr(Y, "shape", None)
    if not isinstance(Y, np.ndarray) or shape != (n, K):
        raise ValueError(f"Y: expected shape {(n, K)}, got {shape}")
    if targets == "dense" and Y.size:
        if Y.dtype.kind not in "fiub":
            raise ValueError(f"Y: dense targets must be real numbers, got dtype {Y.dtype}")
        lo, hi = Y.min(), Y.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("Y: dense targets must be finite (found NaN or infinity)")
        if name == "sigmoid" and (lo < 0 or hi > 1):
            raise ValueError(f"Y: dense targets of a sigmoid output (LogLoss) must lie in "
                             f"[0, 1], got values from {lo} to {hi}")
    return Y


def check_sample_weight(sample_weight, n, name="sample_weight"):
    """``sample_weight`` after checking it is None or a contiguous, aligned
    ``(n,)`` float32 array of finite weights >= 0 (it is never copied);
    ``name`` is the operand's name in the error messages."""
    w = sample_weight
    if w is None:
        return None
    if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.shape != (n,):
        raise ValueError(f"{name}: must be a float32 array of shape ({n},), got "
                         f"{getattr(w, 'dtype', type(w).__name__)} {getattr(w, 'shape', '')}")
    if not (w.flags.c_contiguous and w.flags.aligned):
        raise ValueError(f"{name}: must be contiguous and aligned to its 4-byte elements "
                         "(it is read where it lies); pass np.ascontiguousarray(...)")
    if n:
        lo, hi = w.min(), w.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name}: weights must be finite (found NaN or infinity)")
        if lo < 0:
            raise ValueError(f"{name}: weights must be >= 0, got {lo}")
    return w
