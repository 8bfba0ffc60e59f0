"""Tests for fastmlp.datasets."""

import gzip
import hashlib
import os
import re
import struct

import numpy as np
import pytest

from fastmlp import datasets
from fastmlp.datasets import (
    MNIST_SHA256,
    DatasetError,
    array_sha256,
    load_digits,
    load_idx,
    load_mnist,
    read_idx,
)

# Published provenance of the shipped copy: fastmlp/data/README.md.
README_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
README_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
README_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _m(*parts):
    """Regex matching the given literal pieces in order."""
    return ".*".join(re.escape(str(p)) for p in parts)


# --------------------------------------------------------------------------
# helpers: small synthetic data, Keras npz and IDX writers
# --------------------------------------------------------------------------

def _small_mnist(n_train=30, n_test=12, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write_npz(path, arrays, compressed=True):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09,
              np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
              np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def _idx_bytes(a):
    a = np.asarray(a)
    header = bytes([0, 0, _IDX_CODES[a.dtype], a.ndim])
    header += struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def _write_bytes(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _write_idx(path, a, gz=None):
    if gz is None:
        gz = str(path).endswith(".gz")
    return _write_bytes(path, _idx_bytes(a), gz)


IDX_NAMES = [("x_train", "train-images", "idx3-ubyte"),
             ("y_train", "train-labels", "idx1-ubyte"),
             ("x_test", "t10k-images", "idx3-ubyte"),
             ("y_test", "t10k-labels", "idx1-ubyte")]


def _write_idx_dir(directory, arrays, gz=False, sep="-"):
    ext = ".gz" if gz else ""
    for key, stem, suffix in IDX_NAMES:
        _write_idx(directory / f"{stem}{sep}{suffix}{ext}", arrays[key], gz)
    return directory


def _assert_same(result, arrays, flatten=True):
    (xtr, ytr), (xte, yte) = result
    for x, key in ((xtr, "x_train"), (xte, "x_test")):
        want = arrays[key]
        if flatten:
            want = want.reshape(len(want), -1)
        assert x.dtype == np.uint8 and x.flags.c_contiguous
        np.testing.assert_array_equal(x, want)
        assert x.shape == want.shape
    for y, key in ((ytr, "y_train"), (yte, "y_test")):
        assert y.dtype == np.uint8 and y.ndim == 1
        np.testing.assert_array_equal(y, arrays[key])


# --------------------------------------------------------------------------
# the shipped MNIST copy
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    return load_mnist()


def test_shipped_shapes_dtypes_contiguity(shipped):
    (xtr, ytr), (xte, yte) = shipped
    assert xtr.shape == (60000, 784) and xte.shape == (10000, 784)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    for a in (xtr, ytr, xte, yte):
        assert a.dtype == np.uint8
        assert a.flags.c_contiguous


def test_shipped_class_counts(shipped):
    (_, ytr), (_, yte) = shipped
    assert np.bincount(ytr, minlength=10).tolist() == README_TRAIN_COUNTS
    assert np.bincount(yte, minlength=10).tolist() == README_TEST_COUNTS


def test_shipped_sha256_matches_readme(shipped):
    (xtr, ytr), (xte, yte) = shipped
    got = {name: hashlib.sha256(a.tobytes()).hexdigest()
           for name, a in (("x_train", xtr), ("y_train", ytr),
                           ("x_test", xte), ("y_test", yte))}
    assert got == README_SHA256
    assert MNIST_SHA256 == README_SHA256
    assert array_sha256(yte) == README_SHA256["y_test"]


def test_shipped_pixel_statistics(shipped):
    (xtr, _), (xte, _) = shipped
    assert xtr.mean(dtype=np.float64) / 255 == pytest.approx(0.130660, abs=5e-7)
    assert xte.mean(dtype=np.float64) / 255 == pytest.approx(0.132515, abs=5e-7)
    assert xtr.min() == 0 and xtr.max() == 255


def test_shipped_unflattened(shipped):
    (xtr, ytr), (xte, yte) = load_mnist(flatten=False)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert xtr.flags.c_contiguous and xte.flags.c_contiguous
    np.testing.assert_array_equal(xte.reshape(10000, 784), shipped[1][0])
    np.testing.assert_array_equal(ytr, shipped[0][1])


# --------------------------------------------------------------------------
# load_mnist from other files
# --------------------------------------------------------------------------

@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("as_str", [True, False])
def test_load_mnist_from_path(tmp_path, flatten, as_str):
    arrays = _small_mnist()
    path = _write_npz(tmp_path / "mine.npz", arrays)
    result = load_mnist(str(path) if as_str else path, flatten=flatten)
    _assert_same(result, arrays, flatten)


def test_load_mnist_accepts_flat_images_and_wide_labels(tmp_path):
    arrays = _small_mnist()
    stored = dict(arrays)
    stored["x_train"] = arrays["x_train"].reshape(-1, 784)
    stored["y_train"] = arrays["y_train"].astype(np.int64)
    path = _write_npz(tmp_path / "flat.npz", stored, compressed=False)
    _assert_same(load_mnist(path, flatten=False), arrays, flatten=False)
    _assert_same(load_mnist(path), arrays, flatten=True)


def test_load_mnist_fortran_order_becomes_c_contiguous(tmp_path):
    arrays = _small_mnist()
    stored = {k: np.asfortranarray(v) for k, v in arrays.items()}
    assert not stored["x_train"].flags.c_contiguous
    path = _write_npz(tmp_path / "fortran.npz", stored)
    _assert_same(load_mnist(path), arrays)
    _assert_same(load_mnist(path, flatten=False), arrays, flatten=False)


def test_load_mnist_keras_cache(tmp_path, monkeypatch):
    arrays = _small_mnist(seed=3)
    cache = tmp_path / ".keras" / "datasets"
    cache.mkdir(parents=True)
    _write_npz(cache / "mnist.npz", arrays)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # Windows
    _assert_same(load_mnist("keras"), arrays)


def test_load_mnist_keras_cache_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    expected = os.path.join(str(tmp_path), ".keras", "datasets", "mnist.npz")
    with pytest.raises(FileNotFoundError, match=_m(expected)):
        load_mnist("keras")


def test_load_mnist_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=_m(path)):
        load_mnist(path)


# --------------------------------------------------------------------------
# load_mnist errors
# --------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, 3, 100, "half", "minus1"])
def test_load_mnist_truncated_npz(tmp_path, keep):
    good = _write_npz(tmp_path / "good.npz", _small_mnist()).read_bytes()
    n = {"half": len(good) // 2, "minus1": len(good) - 1}.get(keep, keep)
    bad = tmp_path / "cut.npz"
    bad.write_bytes(good[:n])
    with pytest.raises(DatasetError, match=_m("cut.npz", "corrupt")):
        load_mnist(bad)


def test_load_mnist_corrupt_member(tmp_path):
    good = bytearray(
        _write_npz(tmp_path / "good.npz", _small_mnist(), compressed=False)
        .read_bytes())
    # flip pixel bytes inside the stored x_train member: CRC check fails
    at = good.index(b"x_train.npy") + 500
    good[at:at + 50] = bytes(255 - b for b in good[at:at + 50])
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(good))
    with pytest.raises(DatasetError, match=_m("flipped.npz", "corrupt")):
        load_mnist(bad)


def test_load_mnist_not_an_npz(tmp_path):
    path = tmp_path / "single.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(DatasetError, match=_m("single.npy", "not an .npz")):
        load_mnist(path)


@pytest.mark.parametrize("key", ["x_train", "y_train", "x_test", "y_test"])
def test_load_mnist_missing_key(tmp_path, key):
    arrays = _small_mnist()
    del arrays[key]
    path = _write_npz(tmp_path / "partial.npz", arrays)
    with pytest.raises(DatasetError,
                       match=_m("partial.npz", "missing array", repr(key))):
        load_mnist(path)


@pytest.mark.parametrize("key,value", [("y_train", 10), ("y_test", -1),
                                       ("y_test", 255)])
def test_load_mnist_labels_out_of_range(tmp_path, key, value):
    arrays = _small_mnist()
    y = arrays[key].astype(np.int16)
    y[5] = value
    arrays[key] = y
    path = _write_npz(tmp_path / "labels.npz", arrays)
    with pytest.raises(DatasetError,
                       match=_m("labels.npz", key, "outside 0..9",
                                f"{value} at index 5")):
        load_mnist(path)


@pytest.mark.parametrize("part", ["train", "test"])
def test_load_mnist_length_mismatch(tmp_path, part):
    arrays = _small_mnist()
    arrays[f"y_{part}"] = arrays[f"y_{part}"][:-2]
    n = len(arrays[f"x_{part}"])
    path = _write_npz(tmp_path / "short.npz", arrays)
    with pytest.raises(DatasetError,
                       match=_m("short.npz", f"x_{part} holds {n} images",
                                f"y_{part} holds {n - 2} labels")):
        load_mnist(path)


@pytest.mark.parametrize("key,value,problem", [
    ("x_train", np.zeros((4, 28, 28), np.float32), "dtype float32"),
    ("x_test", np.zeros((4, 27, 27), np.uint8), "shape (4, 27, 27)"),
    ("x_test", np.zeros((4, 783), np.uint8), "shape (4, 783)"),
    ("y_train", np.zeros((4, 1), np.uint8), "shape (4, 1)"),
    ("y_test", np.zeros(4, np.float64), "dtype float64"),
])
def test_load_mnist_bad_dtype_or_shape(tmp_path, key, value, problem):
    arrays = _small_mnist(n_train=4, n_test=4)
    arrays[key] = value
    path = _write_npz(tmp_path / "odd.npz", arrays)
    with pytest.raises(DatasetError, match=_m("odd.npz", key, problem)):
        load_mnist(path)


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("flatten", [True, False])
def test_load_idx_round_trip(tmp_path, gz, flatten):
    arrays = _small_mnist(seed=1)
    _write_idx_dir(tmp_path, arrays, gz=gz)
    _assert_same(load_idx(tmp_path, flatten=flatten), arrays, flatten)


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_variant_names(tmp_path, gz):
    arrays = _small_mnist(seed=2)
    _write_idx_dir(tmp_path, arrays, gz=gz, sep=".")
    assert (tmp_path / ("train-images.idx3-ubyte" + (".gz" if gz else ""))).exists()
    _assert_same(load_idx(str(tmp_path)), arrays)


def test_load_idx_mixed_names(tmp_path):
    arrays = _small_mnist(seed=4)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", arrays["x_train"])
    _write_idx(tmp_path / "train-labels.idx1-ubyte", arrays["y_train"])
    _write_idx(tmp_path / "t10k-images.idx3-ubyte.gz", arrays["x_test"])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["y_test"])
    _assert_same(load_idx(tmp_path), arrays)


def test_load_idx_missing_file(tmp_path):
    arrays = _small_mnist()
    _write_idx_dir(tmp_path, arrays)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError,
                       match=_m(tmp_path, "t10k-labels-idx1-ubyte",
                                "t10k-labels-idx1-ubyte.gz",
                                "t10k-labels.idx1-ubyte",
                                "t10k-labels.idx1-ubyte.gz")):
        load_idx(tmp_path)


def test_load_idx_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=_m(tmp_path / "absent")):
        load_idx(tmp_path / "absent")


@pytest.mark.parametrize("part", ["train", "test"])
def test_load_idx_count_mismatch(tmp_path, part):
    arrays = _small_mnist()
    arrays[f"y_{part}"] = arrays[f"y_{part}"][:-1]
    _write_idx_dir(tmp_path, arrays)
    n = len(arrays[f"x_{part}"])
    stem = "train" if part == "train" else "t10k"
    with pytest.raises(DatasetError,
                       match=_m(f"{stem}-images-idx3-ubyte", f"{n} images",
                                f"{stem}-labels-idx1-ubyte", f"{n - 1} labels")):
        load_idx(tmp_path)


@pytest.mark.parametrize("key,value,fname,problem", [
    ("x_train", np.zeros((30, 784), np.uint8), "train-images-idx3-ubyte",
     "2-D uint8"),
    ("x_test", np.zeros((12, 28, 28), np.int16), "t10k-images-idx3-ubyte",
     "3-D int16"),
    ("y_train", np.zeros((30, 1), np.uint8), "train-labels-idx1-ubyte",
     "shape (30, 1)"),
    ("y_test", np.full(12, 11, np.uint8), "t10k-labels-idx1-ubyte",
     "outside 0..9"),
])
def test_load_idx_bad_arrays(tmp_path, key, value, fname, problem):
    arrays = _small_mnist()
    arrays[key] = value
    _write_idx_dir(tmp_path, arrays)
    with pytest.raises(DatasetError, match=_m(fname, problem)):
        load_idx(tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32,
                                   np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(7)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, (3, 4, 5), endpoint=True,
                         dtype=dtype)
    else:
        a = (rng.standard_normal((3, 4, 5)) * 1e3).astype(dtype)
    path = _write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), a)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype)  # native byte order
    assert got.dtype.isnative
    assert got.shape == a.shape
    assert got.flags.writeable and got.flags.c_contiguous
    np.testing.assert_array_equal(got, a)


def test_read_idx_big_endian_layout(tmp_path):
    # hand-built: int16 [1, -2, 258] in 1-D
    data = b"\x00\x00\x0b\x01" + b"\x00\x00\x00\x03" + b"\x00\x01\xff\xfe\x01\x02"
    path = _write_bytes(tmp_path / "h.idx", data)
    np.testing.assert_array_equal(read_idx(path), [1, -2, 258])


def test_read_idx_gzip_detected_by_magic_and_plain_gz_name(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    # gzipped content without a .gz name
    gz_no_ext = _write_bytes(tmp_path / "zipped-idx3-ubyte", _idx_bytes(a),
                             gz=True)
    np.testing.assert_array_equal(read_idx(gz_no_ext), a)
    # a .gz name over already-decompressed content
    plain_gz = _write_bytes(tmp_path / "plain-idx3-ubyte.gz", _idx_bytes(a))
    np.testing.assert_array_equal(read_idx(plain_gz), a)


def test_read_idx_empty_dimension(tmp_path):
    a = np.zeros((0, 28, 28), np.uint8)
    got = read_idx(_write_idx(tmp_path / "empty.idx", a))
    assert got.shape == (0, 28, 28) and got.dtype == np.uint8


GOOD_IDX = _idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("data,problem", [
    (b"\x01\x00" + GOOD_IDX[2:], "bad magic"),
    (b"\x00\x08" + GOOD_IDX[2:], "bad magic"),
    (b"\x00\x00\x0a" + GOOD_IDX[3:], "unknown element type code 0x0A"),
    (b"\x00\x00\x08\x00", "zero dimensions"),
    (b"", "truncated header"),
    (b"\x00\x00", "truncated header"),
    (GOOD_IDX[:4], "truncated header"),
    (GOOD_IDX[:13], "truncated header"),
    (GOOD_IDX[:16], "truncated: header says 2×3×4 = 24 uint8 values = 24 bytes"),
    (GOOD_IDX[:-1], "truncated: header says 2×3×4"),
    (GOOD_IDX + b"\x00", "trailing bytes: header says 2×3×4"),
])
def test_read_idx_malformed(tmp_path, gz, data, problem):
    fname = "bad-idx3-ubyte" + (".gz" if gz else "")
    path = _write_bytes(tmp_path / fname, data, gz=gz)
    with pytest.raises(DatasetError, match=_m(fname, problem)):
        read_idx(path)


def test_read_idx_truncated_message_counts(tmp_path):
    header = b"\x00\x00\x08\x03" + struct.pack(">3I", 60000, 28, 28)
    path = _write_bytes(tmp_path / "train-images-idx3-ubyte.gz",
                        header + bytes(1200), gz=True)
    with pytest.raises(DatasetError,
                       match=_m("train-images-idx3-ubyte.gz", "truncated",
                                "60000×28×28", "47040000 bytes", "holds 1200")):
        read_idx(path)


def test_read_idx_int32_size_message(tmp_path):
    data = b"\x00\x00\x0c\x01" + struct.pack(">I", 5) + bytes(19)
    path = _write_bytes(tmp_path / "w.idx", data)
    with pytest.raises(DatasetError, match=_m("w.idx", "truncated",
                                              "5 int32 values = 20 bytes",
                                              "holds 19")):
        read_idx(path)


@pytest.mark.parametrize("damage", ["cut", "flip", "not_gzip"])
def test_read_idx_corrupt_gzip(tmp_path, damage):
    packed = bytearray(gzip.compress(GOOD_IDX * 1))
    if damage == "cut":
        packed = packed[:len(packed) // 2]
    elif damage == "flip":
        packed[-8] ^= 0xFF  # CRC32 in the trailer
    else:
        packed = bytearray(b"PK\x03\x04 this is no gzip stream")
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    problem = "not a gzip stream" if damage == "not_gzip" else "corrupt gzip"
    with pytest.raises(DatasetError,
                       match=_m("labels-idx1-ubyte.gz", problem)):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing-idx1-ubyte")


def test_load_idx_propagates_corrupt_file(tmp_path):
    arrays = _small_mnist()
    _write_idx_dir(tmp_path, arrays, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DatasetError,
                       match=_m("t10k-images-idx3-ubyte.gz", "corrupt gzip")):
        load_idx(tmp_path)


# --------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_shapes_and_dtypes(digits):
    (xtr, ytr), (xte, yte) = digits
    assert len(xtr) + len(xte) == 1797
    assert len(xte) == 360  # ceil(0.2 * 1797)
    assert xtr.shape[1:] == xte.shape[1:] == (64,)
    assert len(ytr) == len(xtr) and len(yte) == len(xte)
    assert xtr.dtype == xte.dtype == np.float32
    assert ytr.dtype == yte.dtype == np.uint8
    assert xtr.flags.c_contiguous and xte.flags.c_contiguous
    both = np.concatenate([xtr, xte])
    assert both.min() == 0 and both.max() == 16
    assert np.all(both == np.round(both))


def test_digits_stratified(digits):
    (_, ytr), (_, yte) = digits
    ctr = np.bincount(ytr, minlength=10)
    cte = np.bincount(yte, minlength=10)
    assert len(ctr) == len(cte) == 10
    assert (ctr > 0).all() and (cte > 0).all()
    # each class split about 80/20
    frac = cte / (ctr + cte)
    assert np.all(np.abs(frac - 0.2) < 0.02)


def test_digits_deterministic(digits):
    (xtr, ytr), (xte, yte) = load_digits(random_state=0)
    np.testing.assert_array_equal(xtr, digits[0][0])
    np.testing.assert_array_equal(ytr, digits[0][1])
    np.testing.assert_array_equal(xte, digits[1][0])
    np.testing.assert_array_equal(yte, digits[1][1])
    (xtr2, _), _ = load_digits(random_state=1)
    assert not np.array_equal(xtr, xtr2)


def test_digits_test_size():
    (xtr, _), (xte, _) = load_digits(test_size=0.5, random_state=3)
    assert len(xte) == 899 and len(xtr) == 898


def test_module_exports():
    for name in ("DatasetError", "MNIST_SHA256", "load_mnist", "read_idx",
                 "load_idx", "load_digits"):
        assert name in datasets.__all__
    assert issubclass(DatasetError, ValueError)
