"""What the compiled backend trains on: a dense X checked, and its scaling's arrays.

A dense X is read where it lies, row by row, and each gathered row is scaled
as ``(x - mean) / scale`` in float32 (:class:`fastmlp.backends._step.CompiledBackend`).
A sparse X (:class:`fastmlp._sparse.SparseRows`) goes to the sparse first
layer instead (:mod:`fastmlp.backends._sparse_layer`), which folds the
scaling into its weights.
"""

import numpy as np

__all__ = ["dense_source", "scaling_arrays", "check_state"]

#: the kind number of each dtype the gather reads (csrc fm_gather_scale_*)
KINDS = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.float64): 2}


def scaling_arrays(input_scaling, n_in):
    """``(mean, scale)`` as contiguous float32 arrays of shape (n_in,), checked
    (finite, non-zero scales): ValueError naming ``input_scaling`` otherwise."""
    mean = np.ascontiguousarray(input_scaling[0], np.float32)
    scale = np.ascontiguousarray(input_scaling[1], np.float32)
    if mean.shape != (n_in,) or scale.shape != (n_in,):
        raise ValueError(f"input_scaling: expected two arrays of shape ({n_in},)")
    if not (np.all(np.isfinite(scale)) and np.all(scale != 0)):
        raise ValueError("input_scaling: scales must be finite and non-zero")
    return mean, scale


def dense_source(X, input_scaling):
    """``(kind, scaling)`` for a dense training X: its dtype's kind (0
    float32, 1 uint8, 2 float64) and the ``(mean, scale)`` arrays its rows
    are gathered with (zeros and ones for a uint8 or float64 X given without
    scaling, converted as they are read), or None (float32 rows copied as
    they are).  ValueError for an X the backend cannot read where it lies."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or not X.flags.c_contiguous \
            or X.dtype not in KINDS:
        raise ValueError("X: must be a 2-D C-contiguous uint8, float32 or float64 array, "
                         f"got {getattr(X, 'dtype', type(X).__name__)} "
                         f"{getattr(X, 'shape', '')}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X: needs at least one row and one column, got {X.shape}")
    if not X.flags.aligned:
        raise ValueError("X: data not aligned to its elements; pass a copy "
                         "(np.array(...))")
    kind = KINDS[X.dtype]
    if input_scaling is not None:
        return kind, scaling_arrays(input_scaling, X.shape[1])
    if kind != 0:
        return kind, (np.zeros(X.shape[1], np.float32), np.ones(X.shape[1], np.float32))
    return kind, None


def check_state(V, name, n_out, n_in):
    """V, after checking it is an aligned C-contiguous float32 array of shape
    (n_out, 1 + n_in): an optimiser state array the kernels write in place."""
    if not (isinstance(V, np.ndarray) and V.dtype == np.float32 and V.flags.aligned
            and V.flags.c_contiguous and V.shape == (n_out, n_in + 1)):
        raise ValueError(f"{name}: must be an aligned C-contiguous float32 "
                         f"array of shape {(n_out, n_in + 1)}")
    return V
