"""Small data sets for quick runs: scikit-learn's digits, and arrays from any .npz."""

import os
import zipfile
import zlib

import numpy as np

from ._common import _FS_ERRORS, DatasetError

__all__ = ["load_digits", "load_npz"]

_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")

# --------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------

def load_digits(*, test_size=0.2, random_state=0):
    """Load scikit-learn's 8x8 digits, split into train and test parts.

    The 1797 images of ``sklearn.datasets.load_digits`` (bundled with
    scikit-learn, so nothing is downloaded) have 64 pixels with values
    0..16.  The split is stratified by class.

    Parameters
    ----------
    test_size : float or int, optional
        Fraction (0 < test_size < 1) or absolute number of samples put in the
        test part, as for ``sklearn.model_selection.train_test_split``.
        Default 0.2.
    random_state : int, numpy.random.RandomState or None, optional
        Seed of the shuffle before splitting; the same integer gives the same
        split.  Default 0.

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray
        ``X_*`` are C-contiguous ``float32`` arrays of shape ``(n, 64)`` with
        values 0..16; ``y_*`` are ``uint8`` labels 0..9.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    ValueError
        If ``test_size`` is invalid (raised by scikit-learn).
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ImportError(
            "fastmlp.datasets.load_digits needs scikit-learn "
            "(pip install scikit-learn)") from exc
    bunch = _sk_load_digits()
    X = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.uint8)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y)
    c = np.ascontiguousarray
    return (c(X_train), c(y_train)), (c(X_test), c(y_test))


def load_npz(path, *, test_size=0.25, random_state=0):
    """Load a data set from an .npz file of plain arrays.

    The file holds either the four arrays of a Keras-style split,
    ``x_train``, ``y_train``, ``x_test``, ``y_test`` (a Keras ``mnist.npz``
    is one), or one ``X`` and one ``y`` (also ``x``), which are split here
    into train and test parts (``test_size``, ``random_state``, stratified
    when y holds integer class labels).  Images are flattened to rows.  The
    targets are returned as stored: class labels, an indicator matrix or
    numbers for a regressor.

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DatasetError
        If it is not a readable .npz, lacks the arrays above, or they
        disagree in length.
    """
    name = os.fspath(path)
    try:
        with np.load(name, allow_pickle=False) as npz:
            keys = set(npz.files)
            if set(_SPLIT_KEYS) <= keys:
                arrays = [npz[k] for k in _SPLIT_KEYS]
            else:
                xk = "X" if "X" in keys else ("x" if "x" in keys else None)
                if xk is None or "y" not in keys:
                    raise DatasetError(f"{name}: expected arrays x_train, y_train, x_test, "
                                       f"y_test, or X and y; found {sorted(keys)}")
                arrays = [npz[xk], npz["y"]]
    except _FS_ERRORS:
        raise
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DatasetError(f"{name}: not a readable .npz file of arrays: {exc}") from exc
    rows = [a.reshape(a.shape[0], -1) if a.ndim > 2 else a for a in arrays]
    for x, y, part in zip(rows[0::2], rows[1::2], ("train", "test")):
        if x.ndim != 2 or y.ndim not in (1, 2) or x.shape[0] != y.shape[0]:
            raise DatasetError(f"{name}: the {part} inputs {x.shape} and targets {y.shape} "
                               "do not form a data set (one row of X per target)")
    if len(rows) == 4:
        return (rows[0], rows[1]), (rows[2], rows[3])
    from sklearn.model_selection import train_test_split
    X, y = rows
    labels = y.ndim == 1 and (y.dtype.kind in "iub" or y.dtype.kind == "U")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size,
                                          random_state=random_state,
                                          stratify=y if labels else None)
    return (Xtr, ytr), (Xte, yte)
