"""MNIST from a Keras-format ``mnist.npz``: the shipped copy, the Keras cache, any file."""

import os
import zipfile
import zlib
from importlib import resources

import numpy as np

from ._common import _FS_ERRORS, _MNIST_SIDE, DatasetError, _check_labels, _shape_images

__all__ = ["MNIST_SHA256", "load_mnist"]

#: SHA-256 of ``a.tobytes()`` for each array of the shipped ``mnist.npz``
#: (see ``fastmlp/data/README.md``).
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


# --------------------------------------------------------------------------
# Keras-format mnist.npz
# --------------------------------------------------------------------------

def _keras_cache_path():
    return os.path.join(os.path.expanduser("~"), ".keras", "datasets",
                        "mnist.npz")


def load_mnist(path=None, *, flatten=True):
    """Load MNIST from a Keras-format ``mnist.npz`` file.

    Parameters
    ----------
    path : None, "keras", str or os.PathLike, optional
        Where to read from.  ``None`` (the default) loads the copy shipped
        inside the ``fastmlp`` package; ``"keras"`` loads the Keras cache
        ``~/.keras/datasets/mnist.npz`` (``~`` is expanded at call time);
        anything else is the path of a file in the Keras ``mnist.npz`` layout,
        an ``.npz`` archive holding ``x_train``, ``y_train``, ``x_test`` and
        ``y_test``.
    flatten : bool, optional
        If true (the default) images are returned as ``(n, 784)`` rows,
        otherwise as ``(n, 28, 28)``.

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray
        ``X_*`` are C-contiguous ``uint8`` pixel arrays (0..255) of shape
        ``(n, 784)`` or ``(n, 28, 28)``; ``y_*`` are ``uint8`` labels 0..9 of
        shape ``(n,)``.

    Raises
    ------
    FileNotFoundError
        If the file (or, for ``"keras"``, the Keras cache) does not exist; the
        message gives the full path.
    DatasetError
        If the file is not a readable ``.npz`` archive (corrupt or truncated),
        lacks one of the four arrays, or holds arrays of the wrong dtype or
        shape, image and label counts that disagree, or labels outside 0..9.
    """
    if path is None:
        ref = resources.files("fastmlp") / "data" / "mnist.npz"
        with resources.as_file(ref) as real_path:
            name = os.fspath(real_path)
            arrays = _read_mnist_npz(
                name, "the copy shipped with fastmlp is missing; the package "
                "was installed without its data files")
    elif isinstance(path, str) and path == "keras":
        name = _keras_cache_path()
        arrays = _read_mnist_npz(
            name, "no Keras MNIST cache there (keras.datasets.mnist."
            "load_data() creates it; fastmlp never downloads)")
    else:
        name = os.fspath(path)
        arrays = _read_mnist_npz(name)
    splits = []
    for part in ("train", "test"):
        x, y = _check_mnist_split(name, f"x_{part}", arrays[f"x_{part}"],
                                  f"y_{part}", arrays[f"y_{part}"])
        splits.append((_shape_images(x, flatten), y))
    return tuple(splits)


def _read_mnist_npz(name, missing_hint="no such file"):
    """Read the four MNIST arrays from ``name`` into a dict."""
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: {missing_hint}")
    if os.path.isdir(name):
        raise IsADirectoryError(
            f"{name}: is a directory, not an mnist.npz file "
            "(for a directory of IDX files use load_idx)")
    try:
        npz = np.load(name, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DatasetError(
                f"{name}: not an .npz archive (it holds a single .npy array)")
        with npz:
            missing = [k for k in _MNIST_KEYS if k not in npz.files]
            if missing:
                held = ", ".join(npz.files) or "nothing"
                raise DatasetError(
                    f"{name}: missing array {', '.join(map(repr, missing))} "
                    f"(the archive holds: {held})")
            arrays = {}
            for key in _MNIST_KEYS:
                try:
                    arrays[key] = npz[key]
                except _FS_ERRORS:
                    raise
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError,
                        ValueError) as exc:
                    raise DatasetError(
                        f"{name}: corrupt array {key!r}: {exc}") from exc
    except DatasetError:
        raise
    except _FS_ERRORS:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError,
            ValueError) as exc:
        raise DatasetError(
            f"{name}: corrupt or truncated .npz file: {exc}") from exc
    return arrays


def _check_mnist_split(name, xkey, x, ykey, y):
    """Validate one (images, labels) pair of a Keras mnist.npz."""
    side = _MNIST_SIDE
    if x.dtype != np.uint8:
        raise DatasetError(
            f"{name}: {xkey} has dtype {x.dtype}, expected uint8")
    if not ((x.ndim == 3 and x.shape[1:] == (side, side))
            or (x.ndim == 2 and x.shape[1] == side * side)):
        raise DatasetError(
            f"{name}: {xkey} has shape {x.shape}, expected (n, {side}, {side}) "
            f"or (n, {side * side})")
    y = _check_labels(name, ykey, y)
    if x.shape[0] != y.shape[0]:
        raise DatasetError(
            f"{name}: {xkey} holds {x.shape[0]} images but {ykey} holds "
            f"{y.shape[0]} labels")
    return x, y
