"""Compiled kernels against their NumPy twins, on odd sizes and both layouts."""

import numpy as np
import pytest

from fastmlp import _kernels as ck
from fastmlp import _numpy_backend as nb

RTOL = 1e-5

rng = np.random.default_rng(1234)


def rand(shape, low=-1.0, high=1.0, order="C"):
    a = rng.uniform(low, high, shape).astype(np.float32)
    return np.asfortranarray(a) if order == "F" else a


@pytest.mark.parametrize("B,n_next,n", [(1, 1, 1), (7, 3, 5), (37, 11, 23), (500, 10, 30),
                                        (129, 70, 30)])
@pytest.mark.parametrize("order_d", ["C", "F"])
@pytest.mark.parametrize("order_a", ["C", "F"])
def test_hidden_delta_matches_numpy(B, n_next, n, order_d, order_a):
    delta_next = rand((B, n_next), order=order_d)
    W_next = rand((n_next, 1 + n))
    A = rand((B, n), 0.0, 1.0, order=order_a)
    want = np.empty((B, n), np.float32)
    nb.hidden_delta(delta_next, W_next, A, want, np.empty_like(want))
    got = np.full((B, n), np.nan, np.float32)
    ck.hidden_delta(delta_next, W_next, A, got)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)


def test_hidden_delta_uses_the_forward_output_not_z():
    """With A = 0.5 everywhere the derivative factor is exactly 0.25."""
    d = rand((4, 3))
    W = rand((3, 6))
    A = np.full((4, 5), 0.5, np.float32)
    got = np.empty((4, 5), np.float32)
    ck.hidden_delta(d, W, A, got)
    np.testing.assert_allclose(got, 0.25 * (d @ W[:, 1:]), rtol=1e-6)


def test_hidden_delta_accepts_strided_views():
    big = rand((40, 30))
    d = big[::2, :7]          # rows strided by 2, unit column stride
    W = rand((7, 1 + 9))
    A = rand((20, 9), 0.0, 1.0)
    want = np.empty((20, 9), np.float32)
    nb.hidden_delta(np.ascontiguousarray(d), W, A, want, np.empty_like(want))
    got = np.empty((20, 9), np.float32)
    ck.hidden_delta(d, W, A, got)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("case,match", [
    ("W_shape", "W_next: expected shape"),
    ("A_shape", "A: expected shape"),
    ("out_shape", "delta_out: expected shape"),
    ("W_fortran", "W_next: must be C-ordered"),
    ("both_strided", "unit stride"),
])
def test_hidden_delta_rejects_bad_operands(case, match):
    d, W, A, out = rand((5, 3)), rand((3, 5)), rand((5, 4)), np.empty((5, 4), np.float32)
    if case == "W_shape":
        W = rand((3, 4))
    elif case == "A_shape":
        A = rand((6, 4))
    elif case == "out_shape":
        out = np.empty((4, 4), np.float32)
    elif case == "W_fortran":
        W = np.asfortranarray(W)
    elif case == "both_strided":
        d = rand((10, 6))[::2, ::2]
    with pytest.raises(ValueError, match=match):
        ck.hidden_delta(d, W, A, out)


def test_hidden_delta_rejects_wrong_dtype_and_layout_of_output():
    d, W, A = rand((5, 3)), rand((3, 5)), rand((5, 4))
    with pytest.raises(ValueError):
        ck.hidden_delta(d.astype(np.float64), W, A, np.empty((5, 4), np.float32))
    with pytest.raises(ValueError):
        ck.hidden_delta(d, W, A, np.empty((5, 4), np.float32, order="F"))
