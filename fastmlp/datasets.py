"""Datasets for training and testing fastmlp models.

This module loads handwritten-digit data sets into plain NumPy arrays, always
returned as ``(X_train, y_train), (X_test, y_test)``:

* :func:`load_mnist` -- MNIST from a Keras-format ``mnist.npz``: the copy shipped
  inside this package (the default), the Keras cache
  ``~/.keras/datasets/mnist.npz``, or any other file in that layout.
* :func:`load_idx` -- MNIST (or a data set in the same layout) from the four
  original IDX files, gzipped or not.
* :func:`read_idx` -- one IDX file of any IDX element type, as an array.
* :func:`load_digits` -- scikit-learn's small 8x8 digits set, split into
  train and test parts; handy for quick runs and tests.

Images are returned as raw ``uint8`` pixels (``float32`` for the digits set)
and labels as ``uint8``; scaling is left to the model.  Nothing here touches
the network.  Corrupt, truncated or inconsistent files raise
:class:`DatasetError`, whose message names the file and the problem.

:data:`MNIST_SHA256` holds the SHA-256 digest of the raw bytes
(``hashlib.sha256(a.tobytes())``) of each array of the shipped ``mnist.npz``.
"""

import gzip
import hashlib
import os
import zipfile
import zlib
from importlib import resources

import numpy as np

__all__ = [
    "DatasetError",
    "MNIST_SHA256",
    "load_mnist",
    "read_idx",
    "load_idx",
    "load_digits",
    "array_sha256",
]

#: SHA-256 of ``a.tobytes()`` for each array of the shipped ``mnist.npz``
#: (see ``fastmlp/data/README.md``).
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
_MNIST_SIDE = 28
_N_CLASSES = 10

# IDX element type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

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


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

def read_idx(path):
    """Read one file in the IDX format of the original MNIST distribution.

    The file may be gzip-compressed; compression is recognised by the gzip
    magic bytes ``1f 8b``, so a ``.gz`` file that has already been
    decompressed (as some browsers do) is read as well.

    Format: two zero bytes; one element-type byte (``0x08`` uint8, ``0x09``
    int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
    float64); one byte giving the number of dimensions; one big-endian
    uint32 per dimension; then the elements in C order, multi-byte types
    big-endian.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file, plain or gzipped.

    Returns
    -------
    numpy.ndarray
        A new, writable array in native byte order with the file's shape and
        element type.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DatasetError
        If the gzip stream is corrupt or truncated, the magic bytes are
        wrong, the element-type code is unknown, the number of dimensions is
        zero, the header is truncated, or the data is shorter or longer than
        the header's dimensions say.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(
                f"{name}: corrupt gzip stream: {str(exc) or type(exc).__name__}"
            ) from exc
        where = "decompressed data holds"
    elif name.endswith(".gz") and raw[:2] != b"\0\0":
        raise DatasetError(
            f"{name}: not a gzip stream (magic bytes {raw[:2].hex(' ')!r}, "
            "expected '1f 8b') and not a plain IDX file either")
    else:
        data = raw
        where = "file holds"

    if len(data) < 4:
        raise DatasetError(
            f"{name}: truncated header: {len(data)} bytes, an IDX header "
            "needs at least 4")
    if data[:2] != b"\0\0":
        raise DatasetError(
            f"{name}: bad magic: first two bytes are {data[:2].hex(' ')!r}, "
            "an IDX file starts with '00 00'")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DatasetError(
            f"{name}: unknown element type code 0x{code:02X} "
            f"(known codes: {known})")
    if ndim == 0:
        raise DatasetError(f"{name}: header gives zero dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(
            f"{name}: truncated header: {ndim} dimensions need a "
            f"{header_len}-byte header, {where} {len(data)} bytes")
    dims = tuple(int(d) for d in
                 np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    available = len(data) - header_len
    if available != expected:
        problem = "truncated" if available < expected else "trailing bytes"
        shape = "×".join(str(d) for d in dims)
        raise DatasetError(
            f"{name}: {problem}: header says {shape} = {count} {dtype.name} "
            f"values = {expected} bytes of data, {where} {available} after the "
            f"{header_len}-byte header")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header_len)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


_IDX_FILES = {
    "train_images": ("train-images", "idx3-ubyte"),
    "train_labels": ("train-labels", "idx1-ubyte"),
    "test_images": ("t10k-images", "idx3-ubyte"),
    "test_labels": ("t10k-labels", "idx1-ubyte"),
}


def _idx_candidates(stem, suffix):
    names = []
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            names.append(f"{stem}{sep}{suffix}{ext}")
    return names


def _find_idx_file(directory, stem, suffix):
    candidates = _idx_candidates(stem, suffix)
    for fname in candidates:
        full = os.path.join(directory, fname)
        if os.path.isfile(full):
            return full
    raise FileNotFoundError(
        f"{directory}: no {stem}-{suffix} file; looked for "
        f"{', '.join(candidates)}")


def load_idx(directory, *, flatten=True):
    """Load MNIST (or a data set in its layout) from the four IDX files.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``.  Each may also be named with a ``.``
        instead of the ``-`` before ``idx`` (``train-images.idx3-ubyte``) and
        may carry a ``.gz`` suffix; the first of ``-``, ``-``+``.gz``, ``.``,
        ``.``+``.gz`` that exists is used.
    flatten : bool, optional
        If true (the default) images are returned as ``(n, rows * cols)``
        rows, otherwise as ``(n, rows, cols)``.

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray
        ``X_*`` are C-contiguous ``uint8`` pixel arrays; ``y_*`` are ``uint8``
        labels 0..9 of shape ``(n,)``.  For MNIST, rows = cols = 28.

    Raises
    ------
    FileNotFoundError
        If one of the four files is missing; the message lists the names
        looked for.
    DatasetError
        If a file is corrupt (see :func:`read_idx`), images are not 3-D
        ``uint8``, labels are not 1-D integers in 0..9, a label file's count
        differs from its image file's, or train and test images differ in
        size.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such directory")
    paths = {key: _find_idx_file(directory, *parts)
             for key, parts in _IDX_FILES.items()}
    splits = []
    for part in ("train", "test"):
        xpath, ypath = paths[f"{part}_images"], paths[f"{part}_labels"]
        x = read_idx(xpath)
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DatasetError(
                f"{xpath}: expected 3-D uint8 images, found {x.ndim}-D "
                f"{x.dtype} of shape {x.shape}")
        y = _check_labels(ypath, "labels", read_idx(ypath))
        if x.shape[0] != y.shape[0]:
            raise DatasetError(
                f"{xpath} holds {x.shape[0]} images but {ypath} holds "
                f"{y.shape[0]} labels")
        splits.append((x, y))
    (x_train, y_train), (x_test, y_test) = splits
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{paths['train_images']} holds {x_train.shape[1]}×"
            f"{x_train.shape[2]} images but {paths['test_images']} holds "
            f"{x_test.shape[1]}×{x_test.shape[2]}")

    def shaped(x):
        return np.ascontiguousarray(
            x.reshape(x.shape[0], -1) if flatten else x)

    return (shaped(x_train), y_train), (shaped(x_test), y_test)


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
