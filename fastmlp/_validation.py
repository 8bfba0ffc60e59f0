"""Input checks shared by the model and the kernels' callers.

Each check raises ValueError (or TypeError for a wrong type) with a message
that names the argument and the problem.  None of them modifies its input.
"""

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import DataConversionWarning


def check_positive_int(name, value, minimum=1):
    """Return ``value`` as int, or raise if it is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_nonneg_float(name, value, allow_zero=True):
    """Return ``value`` as float, or raise if it is not a finite number >= 0 (> 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0.0 or (value == 0.0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise naming them."""
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {opts}; got {value!r}")
    return value


def check_shape(shape, name="X", n_features=None, owner="MLPClassifier"):
    """ValueError unless the 2-D ``shape`` has rows, columns, and (when
    given) ``n_features`` columns: the checks a dense X and a sparse one share."""
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: 0 sample(s) (shape={shape}) while a "
                         "minimum of 1 is required.")
    if shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={shape}) while a minimum "
                         "of 1 is required.")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(f"{name} has {shape[1]} features, but {owner} is "
                         f"expecting {n_features} features as input")


def check_X(X, name="X", n_features=None, owner="MLPClassifier"):
    """Validate a feature matrix; return it as an ndarray (no copy when possible).

    Accepts any 2-D array-like of real numbers (ints, float32/64, F-ordered,
    strided, read-only, memory-mapped).  Rejects anything not 2-D, empty,
    non-numeric, NaN or infinite values, and a feature count different from
    ``n_features`` when given.  The dtype is left as it is: the caller makes
    the one float32 copy it trains on.
    """
    if X is None:
        raise ValueError(f"{name} is None; expected a 2-D array (n_samples, n_features)")
    if sp.issparse(X):
        raise TypeError(f"{name} is a sparse matrix, but fastmlp needs dense data: "
                        f"convert it with {name}.toarray()")
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular 2-D array of numbers "
                         f"(rows of different lengths?): {exc}") from None
    kind = arr.dtype.kind          # (dtype kinds, not np.issubdtype: a prediction
    if kind == "c":                # of one row is some 25 us in all)
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold real numbers; its objects do not "
                            f"convert to float: {exc}") from None
    if arr.dtype.kind not in "biuf" and not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = (" Reshape your data: X.reshape(-1, 1) for a single feature or "
                "X.reshape(1, -1) for a single sample." if arr.ndim == 1 else "")
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape "
                         f"{arr.shape}.{hint}")
    check_shape(arr.shape, name, n_features, owner)
    if arr.dtype.kind == "f":
        # fast path: a float64 sum of finite float values is finite unless
        # they are near the float64 limit; only then look element by element
        if not np.isfinite(arr.sum(dtype=np.float64)):
            finite = np.isfinite(arr)
            if not finite.all():
                r, c = np.argwhere(~finite)[0]
                raise ValueError(f"{name} contains NaN or infinity (first at row {r}, "
                                 f"column {c}: {arr[r, c]}); remove or impute these values")
        if arr.dtype.itemsize > 4 and max(arr.max(), -arr.min()) > np.finfo(np.float32).max:
            raise ValueError(f"{name} has values beyond the float32 range "
                             f"(|x| > {np.finfo(np.float32).max:.3g}); fastmlp computes in float32")
    return arr


def check_y(y, n_samples, name="y"):
    """Validate a label vector of length ``n_samples``; return it as an ndarray.

    A column vector (n, 1) is accepted with a DataConversionWarning, as in
    scikit-learn; continuous (float, non-integer) targets are rejected."""
    if y is None:
        raise ValueError("MLPClassifier requires y to be passed, but the target y is None")
    if sp.issparse(y):
        raise ValueError(f"{name} is a sparse matrix; give the targets as a dense array "
                         f"(e.g. {name}.toarray())")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(f"A column-vector {name} was passed when a 1d array was expected; "
                      "it is used as y.ravel()", DataConversionWarning, stacklevel=3)
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n_samples} samples")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if arr.dtype == object and any(v is None for v in arr):
        raise ValueError(f"{name} contains None")
    if arr.dtype == object and any(isinstance(v, (float, np.floating)) and v != v
                                   for v in arr):
        # a missing value among string labels; np.unique would fail on it
        # with "'<' not supported between instances of 'float' and 'str'"
        raise ValueError(f"{name} contains NaN")
    if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
        raise ValueError(f"Unknown label type: continuous. {name} holds non-integer "
                         "floats; a classifier needs class labels")
    return arr


def check_validation_data(validation_data):
    """Return ``(X_val, y_val, w_val)`` from ``validation_data``, a pair or a
    triple with sample weights (w_val None for a pair), or raise naming it."""
    try:
        items = tuple(validation_data)
    except TypeError:
        items = None
    if items is None or len(items) not in (2, 3):
        what = (f"{len(validation_data)} items" if hasattr(validation_data, "__len__")
                else type(validation_data).__name__)
        raise ValueError("validation_data must be a pair (X_val, y_val), or a triple "
                         f"(X_val, y_val, sample_weight_val), got {what}")
    return items if len(items) == 3 else items + (None,)


def check_sample_weight(sample_weight, n_samples, name="sample_weight"):
    """``sample_weight`` as a new float32 array of ``n_samples`` finite
    weights >= 0, not all 0; None stays None.  The caller's array is never
    modified (a copy is made once per call)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (numbers.Real, np.number)) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, sample_weight)
    try:
        w = np.array(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"{name} has shape {w.shape}, but X has {n_samples} samples: give one "
                         "weight per sample")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} contains NaN or infinity (first at {i}: {w[i]})")
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise ValueError(f"{name} must be >= 0, but entry {i} is {w[i]}")
    if n_samples and not (w > 0).any():
        raise ValueError(f"{name} is zero for every sample: nothing would be learned")
    if w.max(initial=0.0) > np.finfo(np.float32).max:
        raise ValueError(f"{name} has weights beyond the float32 range")
    return w.astype(np.float32)


def check_indicator(y, n_samples, name="y"):
    """A 2-D multilabel indicator matrix of 0s and 1s with ``n_samples``
    rows, as an int8 array."""
    arr = np.asarray(y)
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_samples} samples")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} is a label indicator matrix with no columns")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} is 2-D, so it must be a multilabel indicator matrix of 0 and "
                         f"1, but its dtype is {arr.dtype}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name} is a multilabel indicator matrix, so every entry must be 0 or "
                         f"1, but row {r}, column {c} holds {arr[r, c].item()!r}")
    return arr.astype(np.int8)


def check_continuous(y, n_samples, name="y"):
    """Regression targets: ``n_samples`` rows of finite numbers, 1-D or 2-D,
    as float64."""
    if y is None:
        raise ValueError("MLPRegressor requires y to be passed, but the target y is None")
    if sp.issparse(y):
        raise ValueError(f"{name} is a sparse matrix; give the targets as a dense array "
                         f"(e.g. {name}.toarray())")
    arr = np.asarray(y)
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] < 1):
        raise ValueError(f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_outputs), got "
                         f"shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} values but X has {n_samples} samples")
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers for a regressor, got dtype "
                         f"{arr.dtype}") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{name} contains NaN or infinity (first at {tuple(where.tolist())}); "
                         "remove or impute these values")
    if np.abs(arr).max(initial=0.0) > np.finfo(np.float32).max:
        raise ValueError(f"{name} has values beyond the float32 range")
    return arr


# ------------------------------------------------------------- feature names
def feature_names(X):
    """The column names of a data frame ``X`` (pandas, polars, ...) as an
    object array when they are all strings; None for an array, a frame
    without columns or one whose names are not strings (as scikit-learn).
    Mixed string and other names raise TypeError.  Imports no data-frame
    library."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    try:
        columns = list(columns)
    except TypeError:
        return None
    if not columns:
        return None
    names = np.empty(len(columns), dtype=object)
    names[:] = columns
    kinds = sorted({type(v).__qualname__ for v in columns})
    if len(kinds) > 1 and "str" in kinds:
        raise TypeError("Feature names are only supported if all input features have string "
                        f"names, but your input has {kinds} as feature name / column name "
                        "types. Convert them all to strings (X.columns = X.columns.astype(str)) "
                        "or to a non-string type")
    return names if kinds == ["str"] else None


def check_feature_names(fitted, X, owner, name="X"):
    """Check the column names of ``X`` against ``fitted`` (the names seen in
    fit, or None), as scikit-learn does: a mismatch raises ValueError naming
    the unexpected and missing columns; names on one side only warn."""
    names = feature_names(X)
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"{name} has feature names, but {owner} was fitted without feature names",
                      UserWarning, stacklevel=4)
        return
    if names is None:
        warnings.warn(f"{name} does not have valid feature names, but {owner} was fitted with "
                      "feature names", UserWarning, stacklevel=4)
        return
    if len(names) == len(fitted) and np.all(names == fitted):
        return
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))

    def listed(items):
        shown = [f"- {v}\n" for v in items[:5]]
        return "".join(shown) + ("- ...\n" if len(items) > 5 else "")

    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)
