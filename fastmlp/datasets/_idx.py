"""IDX files, the format of the original MNIST distribution."""

import gzip
import os
import zlib

import numpy as np

from ._common import DatasetError, _check_labels

__all__ = ["read_idx", "load_idx"]

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
