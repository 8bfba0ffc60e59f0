"""What every loader shares: the error type, file-system errors and array checks."""

import hashlib

import numpy as np

__all__ = ["DatasetError", "array_sha256"]

_MNIST_SIDE = 28
_N_CLASSES = 10

# OSError subclasses that describe the file system, not the file's contents;
# these propagate unchanged instead of becoming DatasetError.
_FS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError,
              PermissionError)


class DatasetError(ValueError):
    """A data file is corrupt, truncated, malformed or inconsistent.

    The message names the offending file and says what is wrong with it.
    """


def array_sha256(a):
    """Return the SHA-256 hex digest of an array's raw bytes.

    Parameters
    ----------
    a : array_like
        The array to hash.  Its bytes are taken in C order, so a flattened
        ``(n, 784)`` copy of a ``(n, 28, 28)`` array has the same digest.

    Returns
    -------
    str
        ``hashlib.sha256(np.asarray(a).tobytes()).hexdigest()``, comparable
        with the values in :data:`MNIST_SHA256`.
    """
    return hashlib.sha256(np.asarray(a).tobytes()).hexdigest()


def _check_labels(name, key, y):
    """Check labels are 1-D integers in 0..9; return them as uint8."""
    if y.ndim != 1:
        raise DatasetError(
            f"{name}: {key} has shape {y.shape}, expected a 1-D array of labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{name}: {key} has dtype {y.dtype}, expected an integer dtype")
    if y.size:
        bad = np.flatnonzero((y < 0) | (y >= _N_CLASSES))
        if bad.size:
            i = int(bad[0])
            raise DatasetError(
                f"{name}: {key} holds labels outside 0..{_N_CLASSES - 1} "
                f"({bad.size} of them; the first is {y[i]} at index {i})")
    return np.ascontiguousarray(y, dtype=np.uint8)


def _shape_images(x, flatten):
    """Return images as C-contiguous (n, h*w) or (n, h, w)."""
    n = x.shape[0]
    if flatten:
        x = x.reshape(n, -1)
    elif x.ndim == 2:
        x = x.reshape(n, _MNIST_SIDE, _MNIST_SIDE)
    return np.ascontiguousarray(x)
