"""Compiled kernels against their NumPy twins, on odd sizes and both layouts."""

import numpy as np
import pytest

from fastmlp import backends

ck = backends.module("compiled")     # the kernels under test
nb = backends.module("numpy")        # their NumPy twins, the reference

RTOL = 1e-5

rng = np.random.default_rng(1234)

@pytest.fixture(autouse=True)
def _both_gemm_paths(gemm_path):
    """Every test here runs with fastmlp's AVX-512 products and with sgemm."""
    return gemm_path



def rand(shape, low=-1.0, high=1.0, order="C"):
    a = rng.uniform(low, high, shape).astype(np.float32)
    return np.asfortranarray(a) if order == "F" else a


# up to 64 rows from 64 or more outputs go by weights on the AVX-512 path
# (fm_delta_by_weights): (37, 70, 23), (64, 130, 200), (5, 64, 17)
@pytest.mark.parametrize("B,n_next,n", [(1, 1, 1), (7, 3, 5), (37, 11, 23), (500, 10, 30),
                                        (129, 70, 30), (37, 70, 23), (64, 130, 200),
                                        (5, 64, 17)])
@pytest.mark.parametrize("order_d", ["C", "F"])
@pytest.mark.parametrize("order_a", ["C", "F"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_hidden_delta_matches_numpy(B, n_next, n, order_d, order_a, activation):
    delta_next = rand((B, n_next), order=order_d)
    W_next = rand((n_next, 1 + n))
    low = {"sigmoid": 0.0, "tanh": -1.0, "relu": -0.5}[activation]
    A = rand((B, n), low, 1.0, order=order_a)
    if activation == "relu":
        A = np.maximum(A, 0.0)                  # outputs of a relu are >= 0
    want = np.empty((B, n), np.float32)
    nb.hidden_delta(delta_next, W_next, A, want, np.empty_like(want), activation)
    got = np.full((B, n), np.nan, np.float32)
    ck.hidden_delta(delta_next, W_next, A, got, None, activation)
    # a sum of n_next products in another order: a few ulps of sum |d w| (times
    # act' <= 1), which for 130 terms exceeds 1e-6 where the terms cancel
    terms = np.abs(delta_next).astype(np.float64) @ np.abs(W_next[:, 1:]).astype(np.float64)
    atol = max(1e-6, 4 * np.finfo(np.float32).eps * terms.max())
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=atol)


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


def _rows_not_one_after_another(W):
    """Views of W's values whose rows run backwards, repeat, or sit 18 bytes
    apart (not a whole number of floats)."""
    n_out, m = W.shape
    rev = np.ascontiguousarray(W[::-1])[::-1]
    rep = np.broadcast_to(W[:1], W.shape)
    buf = np.zeros(18 * n_out + 4, np.uint8)
    odd = np.ndarray(W.shape, np.float32, buffer=buf, strides=(18, 4))
    odd[...] = W
    return {"reversed": rev, "repeated": rep, "odd stride": odd}


@pytest.mark.parametrize("case", ["reversed", "repeated", "odd stride"])
def test_weights_whose_rows_do_not_follow_each_other_are_refused(case):
    """Regression (found by tests/test_properties.py): such a W was accepted,
    its row stride replaced by the row length, and read past its end."""
    A, d = rand((5, 3)), rand((5, 4))
    W = _rows_not_one_after_another(rand((4, 4)))[case]
    # an odd byte stride is also a misaligned one: either message names it
    match = "rows must follow one another|not aligned"
    with pytest.raises(ValueError, match=match):
        ck.forward_layer(A, W, np.empty((5, 4), np.float32))
    with pytest.raises(ValueError, match=match):
        ck.hidden_delta(d, W, A, np.empty((5, 3), np.float32))


def test_hidden_delta_rejects_wrong_dtype_and_layout_of_output():
    d, W, A = rand((5, 3)), rand((3, 5)), rand((5, 4))
    with pytest.raises(ValueError):
        ck.hidden_delta(d.astype(np.float64), W, A, np.empty((5, 4), np.float32))
    with pytest.raises(ValueError):
        ck.hidden_delta(d, W, A, np.empty((5, 4), np.float32, order="F"))


# ----------------------------------------------------------------- forward
# widths with 1-8 columns past a multiple of 16 (70, 24, 40, 136) take their last
# columns as dot products with W's rows on the AVX-512 path: rows and k's not
# multiples of 4 and 16 are among them.  16-64 rows into 128 or more outputs
# go by weights (fm_forward_by_weights): (33, 23, 128), (64, 100, 203), (17, 40, 160)
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (7, 5, 3), (37, 23, 11), (129, 784, 70),
                                         (500, 30, 10), (5, 17, 24), (3, 15, 136),
                                         (66, 33, 40), (33, 23, 128), (64, 100, 203),
                                         (17, 40, 160)])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_forward_layer_matches_numpy(B, n_in, n_out, order, activation):
    A = rand((B, n_in), -2, 2, order=order)
    W = rand((n_out, 1 + n_in), -0.5, 0.5)
    want = np.empty((B, n_out), np.float32)
    nb.forward_layer(A, W, want, activation)
    got = np.full((B, n_out), np.nan, np.float32)
    ck.forward_layer(A, W, got, activation)
    # a sum of n_in float32 products in another order: its rounding error is
    # bounded by a few ulps of sum |a w|, not by the activation's output
    scale = (np.abs(A).astype(np.float64) @ np.abs(W[:, 1:]).T.astype(np.float64)).max()
    atol = max(1e-7, 4 * np.finfo(np.float32).eps * scale)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=atol)


def only_own_products(gemm_path):
    """Products by weights are fastmlp's AVX-512 kernels': on sgemm both runs
    of a comparison would take the same path, and prove nothing."""
    if gemm_path != "own-gemm":
        pytest.skip("products by weights exist on fastmlp's AVX-512 path only")


@pytest.mark.parametrize("B,n_in,n_out", [(33, 23, 128), (64, 100, 203), (17, 40, 160),
                                         (45, 17, 144), (64, 2048, 256)])
def test_forward_by_weights_gives_the_packed_products_numbers(B, n_in, n_out, gemm_path):
    """The forward product by weights (Z^T = W . A^T, then transposed) sums
    each element in the same order as the one on packed weights."""
    only_own_products(gemm_path)
    A, W = rand((B, n_in), -2, 2), rand((n_out, 1 + n_in), -0.5, 0.5)
    got = [np.full((B, n_out), np.nan, np.float32) for _ in range(2)]
    for out, by_weights in zip(got, (True, False)):
        previous = ck.set_by_weights(by_weights)
        try:
            ck.forward_layer(A, W, out, "tanh")
        finally:
            ck.set_by_weights(previous)
    np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.parametrize("B,n_next,n", [(37, 70, 23), (64, 130, 200), (5, 64, 17),
                                        (64, 2048, 300)])
def test_delta_by_weights_gives_the_numbers_of_the_product_on_w(B, n_next, n, gemm_path):
    only_own_products(gemm_path)
    D, W = rand((B, n_next)), rand((n_next, 1 + n))
    A = rand((B, n), 0.0, 1.0)
    got = [np.full((B, n), np.nan, np.float32) for _ in range(2)]
    for out, by_weights in zip(got, (True, False)):
        previous = ck.set_by_weights(by_weights)
        try:
            ck.hidden_delta(D, W, A, out, None, "sigmoid")
        finally:
            ck.set_by_weights(previous)
    np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.parametrize("B,K", [(1, 2), (9, 10), (300, 10), (5, 77)])
def test_softmax_forward_matches_numpy_and_is_stable(B, K):
    A = rand((B, 6), -2, 2)
    W = rand((K, 7), -3, 3)
    W[:, 0] = np.linspace(-200, 200, K)        # huge logits: no overflow, no NaN
    want = np.empty((B, K), np.float32)
    nb.forward_layer(A, W, want, "softmax")
    got = np.empty_like(want)
    with np.errstate(all="raise"):
        ck.forward_layer(A, W, got, "softmax")
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    assert np.isfinite(got).all()


def test_softmax_nan_logit_makes_its_row_nan_only():
    """A NaN goes through the exponential of every activation; the sanitizer
    build (.ci/sanitize) checks that this is not undefined behaviour."""
    A = rand((3, 4))
    W = rand((10, 5))
    A[1, 2] = np.nan                            # row 1: every logit NaN
    W[4, 0] = np.nan                            # bias of output 4: NaN in every row
    got = np.empty((3, 10), np.float32)
    ck.forward_layer(A, W, got, "softmax")
    assert np.isnan(got).all()
    W[4, 0] = 0.0
    ck.forward_layer(A, W, got, "softmax")
    assert np.isnan(got[1]).all()
    assert np.isfinite(got[[0, 2]]).all()


def test_tanh_and_relu_are_safe_for_any_float32():
    z = np.concatenate([np.linspace(-60, 60, 12001, dtype=np.float32),
                        np.array([-3.4e38, -1e10, 1e10, 3.4e38, 0.0, -0.0, 1e-30, -1e-30,
                                  1e-4, -1e-4], np.float32)])
    W = np.zeros((z.size, 2), np.float32)
    W[:, 0] = z
    got = np.empty((1, z.size), np.float32)
    with np.errstate(all="raise"):
        ck.forward_layer(np.zeros((1, 1), np.float32), W, got, "tanh")
    np.testing.assert_allclose(got[0], np.tanh(z.astype(np.float64)), rtol=1e-5, atol=2e-7)
    assert got[0].max() == 1.0 and got[0].min() == -1.0
    ck.forward_layer(np.zeros((1, 1), np.float32), W, got, "relu")
    np.testing.assert_array_equal(got[0], np.maximum(z, 0))
    W[0, 0] = np.nan
    for act in ("tanh", "relu"):
        ck.forward_layer(np.zeros((1, 1), np.float32), W, got, act)
        assert np.isnan(got[0, 0]), act
    with pytest.raises(ValueError, match="unknown activation"):
        ck.forward_layer(np.zeros((1, 1), np.float32), W, got, "swish")


def test_sigmoid_is_safe_for_any_float32():
    """Extreme, tiny and special inputs: no warning, correct saturation, NaN kept."""
    from scipy.special import expit
    z = np.concatenate([np.linspace(-120, 120, 24001, dtype=np.float32),
                        np.array([-3.4e38, -1e10, -88.8, -87.5, 87.5, 1e10, 3.4e38, 0.0,
                                  -0.0, 1e-30, -1e-30], np.float32)])
    W = np.zeros((z.size, 2), np.float32)
    W[:, 0] = z                                   # the bias column carries z
    got = np.empty((1, z.size), np.float32)
    with np.errstate(all="raise"):
        ck.forward_layer(np.zeros((1, 1), np.float32), W, got)
    want = expit(z.astype(np.float64))
    np.testing.assert_allclose(got[0], want, rtol=3e-7, atol=2e-38)
    assert got[0, z > 20].min() == 1.0 and got[0].min() >= 0.0
    W[0, 0] = np.nan
    ck.forward_layer(np.zeros((1, 1), np.float32), W, got)
    assert np.isnan(got[0, 0])


# ---------------------------------------------------------------- output delta
@pytest.mark.parametrize("B,K", [(1, 2), (13, 10), (500, 10), (77, 3)])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_output_delta_matches_numpy(B, K, output):
    A = rand((B, K), 0.0, 1.0)
    A[0, 0] = 0.0                                  # saturated outputs stay finite
    A[-1, -1] = 1.0
    Y = np.eye(K, dtype=np.float32)[rng.integers(0, K, B)]
    want_d, got_d = np.empty_like(A), np.empty_like(A)
    want = nb.output_delta(A, Y, want_d, np.empty_like(A), output)
    got = ck.output_delta(A, Y, got_d, None, output)
    np.testing.assert_array_equal(got_d, want_d)
    assert got[1] == want[1]
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    assert np.isfinite(got[0])


def test_output_delta_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="Y: expected shape"):
        ck.output_delta(rand((4, 3)), rand((4, 2)), np.empty((4, 3), np.float32))


#: (output, targets) pairs the output layer trains on
OUTPUT_MODES = [("sigmoid", "labels"), ("softmax", "labels"), ("identity", "labels"),
                ("sigmoid", "dense"), ("identity", "dense")]


def targets_for(output, targets, B, K):
    """One-hot rows, multilabel 0/1 rows, or regression values."""
    if targets == "labels":
        return np.eye(K, dtype=np.float32)[rng.integers(0, K, B)]
    if output == "sigmoid":
        return (rng.uniform(size=(B, K)) < 0.4).astype(np.float32)
    return rng.normal(0.0, 2.0, (B, K)).astype(np.float32)


def outputs_for(output, B, K):
    """Outputs such a layer gives: in [0, 1] (two saturated), or any value."""
    if output == "identity":
        return rand((B, K), -3.0, 3.0)
    A = rand((B, K), 0.0, 1.0)
    A[0, 0] = 0.0
    A[-1, -1] = 1.0
    return A


@pytest.mark.parametrize("B,K", [(1, 2), (13, 10), (500, 10), (77, 3)])
@pytest.mark.parametrize("output,targets", OUTPUT_MODES)
@pytest.mark.parametrize("weighted", [False, True])
def test_output_delta_of_every_target_mode_matches_numpy(B, K, output, targets, weighted):
    A, Y = outputs_for(output, B, K), targets_for(output, targets, B, K)
    w = rng.uniform(0.0, 3.0, B).astype(np.float32) if weighted else None
    if weighted:
        w[::4] = 0.0
    want_d, got_d = np.empty_like(A), np.full_like(A, np.nan)
    want = nb.output_delta(A, Y, want_d, np.empty_like(A), output, w, targets)
    got = ck.output_delta(A, Y, got_d, None, output, w, targets)
    np.testing.assert_allclose(got_d, want_d, rtol=RTOL, atol=0)
    np.testing.assert_allclose(want_d, (A - Y) * (1 if w is None else w[:, None]), rtol=1e-6)
    assert got[1] == want[1]
    assert got[0] == pytest.approx(want[0], rel=RTOL)
    assert np.isfinite(got[0])


@pytest.mark.parametrize("output,targets", OUTPUT_MODES)
def test_unit_weights_give_the_unweighted_numbers_bit_for_bit(backend, output, targets):
    """A weight of 1 multiplies exactly: the weighted pass with all weights 1
    gives the unweighted deltas bit for bit in each backend, and in the C
    kernels the unweighted cost too (NumPy sums the weighted terms with
    einsum, in another order)."""
    mod = backends.module(backend)
    B, K = 41, 6
    A, Y = outputs_for(output, B, K), targets_for(output, targets, B, K)
    d0, d1 = np.empty_like(A), np.empty_like(A)
    plain = mod.output_delta(A, Y, d0, np.empty_like(A), output, None, targets)
    ones = mod.output_delta(A, Y, d1, np.empty_like(A), output, np.ones(B, np.float32),
                            targets)
    np.testing.assert_array_equal(d1, d0)
    assert ones[1] == plain[1]
    if backend == "compiled":
        assert ones[0] == plain[0]
    else:
        assert ones[0] == pytest.approx(plain[0], rel=1e-12)


def test_output_delta_losses_are_the_documented_ones(backend):
    """Squared error with its 1/2, LogLoss on multilabel rows, each row's
    term times its weight; and the dense count of correct rows."""
    mod = backends.module(backend)
    A = np.array([[0.9, 0.2, 0.6], [0.4, 0.7, 0.1]], np.float32)
    Y = np.array([[1, 0, 1], [1, 1, 0]], np.float32)
    w = np.array([2.0, 0.5], np.float32)
    d = np.empty_like(A)
    cost, correct = mod.output_delta(A, Y, d, np.empty_like(A), "identity", w, "dense")
    a, y = A.astype(np.float64), Y.astype(np.float64)
    assert cost == pytest.approx(0.5 * (w * ((a - y) ** 2).sum(axis=1)).sum(), rel=1e-6)
    assert correct == 0
    cost, correct = mod.output_delta(A, Y, d, np.empty_like(A), "sigmoid", w, "dense")
    logloss = -(y * np.log(a) + (1 - y) * np.log(1 - a)).sum(axis=1)
    assert cost == pytest.approx((w * logloss).sum(), rel=1e-6)
    assert correct == 1                  # row 0: every label right; row 1: 0.4 < 0.5
    np.testing.assert_allclose(d, (A - Y) * w[:, None], rtol=1e-7)


def test_dense_targets_are_read_in_place_from_strided_rows():
    """The compiled kernel reads a row-strided Y where it lies (row stride
    given to the C function); the results are those of a contiguous copy."""
    B, K = 23, 4
    big = (rng.uniform(size=(2 * B, K + 3)) < 0.5).astype(np.float32)
    Y = big[::2, 1:K + 1]
    A = outputs_for("sigmoid", B, K)
    w = rng.uniform(0.5, 2.0, B).astype(np.float32)
    want_d, got_d = np.empty_like(A), np.empty_like(A)
    want = nb.output_delta(A, np.ascontiguousarray(Y), want_d, np.empty_like(A), "sigmoid",
                           w, "dense")
    got = ck.output_delta(A, Y, got_d, None, "sigmoid", w, "dense")
    np.testing.assert_allclose(got_d, want_d, rtol=RTOL)
    assert got[0] == pytest.approx(want[0], rel=RTOL) and got[1] == want[1]


@pytest.mark.parametrize("case,match", [
    ("softmax dense", "targets='dense' with output='softmax'"),
    ("unknown targets", "unknown targets 'onehot'"),
])
def test_output_delta_refuses_senseless_target_modes(backend, case, match):
    mod = backends.module(backend)
    A, Y = rand((4, 3), 0, 1), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    output, targets = ("softmax", "dense") if case == "softmax dense" else ("sigmoid", "onehot")
    with pytest.raises(ValueError, match=match):
        mod.output_delta(A, Y, np.empty_like(A), np.empty_like(A), output, None, targets)


@pytest.mark.parametrize("weights,match", [
    (np.ones(5, np.float32), r"weights: must be a float32 array of shape \(4,\)"),
    (np.ones(4, np.float64), r"weights: must be a float32 array"),
    (np.ones((4, 1), np.float32), r"weights: must be a float32 array"),
    (np.ones(8, np.float32)[::2], "weights: must be contiguous"),
    (np.array([1, -0.5, 1, 1], np.float32), "weights: weights must be >= 0"),
    (np.array([1, np.nan, 1, 1], np.float32), "weights: weights must be finite"),
    (np.array([1, np.inf, 1, 1], np.float32), "weights: weights must be finite"),
])
def test_output_delta_refuses_bad_weights(weights, match):
    A, Y = rand((4, 3), 0, 1), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    with pytest.raises(ValueError, match=match):
        ck.output_delta(A, Y, np.empty_like(A), None, "sigmoid", weights)


@pytest.mark.parametrize("output,Y,match", [
    ("sigmoid", np.full((4, 3), 1.5, np.float32), r"must lie in \[0, 1\]"),
    ("sigmoid", np.full((4, 3), -0.1, np.float32), r"must lie in \[0, 1\]"),
    ("identity", np.full((4, 3), np.nan, np.float32), "must be finite"),
    ("identity", np.full((4, 3), -np.inf, np.float32), "must be finite"),
])
def test_output_delta_refuses_dense_targets_out_of_range(output, Y, match):
    A = rand((4, 3), 0, 1)
    with pytest.raises(ValueError, match="Y: dense targets .*" + match):
        ck.output_delta(A, Y, np.empty_like(A), None, output, None, "dense")


@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (37, 23, 11), (129, 784, 70)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_identity_forward_adds_the_bias_and_nothing_else(B, n_in, n_out, order):
    A = rand((B, n_in), -2, 2, order=order)
    W = rand((n_out, 1 + n_in), -0.5, 0.5)
    want = np.empty((B, n_out), np.float32)
    nb.forward_layer(A, W, want, "identity")
    got = np.full((B, n_out), np.nan, np.float32)
    ck.forward_layer(A, W, got, "identity")
    scale = (np.abs(A).astype(np.float64) @ np.abs(W[:, 1:]).T.astype(np.float64)).max()
    atol = max(1e-7, 4 * np.finfo(np.float32).eps * scale)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=atol)
    exact = A.astype(np.float64) @ W[:, 1:].T.astype(np.float64) + W[:, 0]
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=atol)   # nothing squashed


# ------------------------------------------------------------ gradient update
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (9, 6, 4), (37, 23, 11), (500, 784, 70)])
@pytest.mark.parametrize("l2,l1,mom", [(0.0, 0.0, 0.0), (0.01, 0.0, 5e-5), (0.2, 0.05, 0.9),
                                       (0.0, 0.1, 0.5)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_gradient_update_matches_numpy(B, n_in, n_out, l2, l1, mom, order):
    delta = rand((B, n_out), order=order)
    A_prev = rand((B, n_in), 0.0, 1.0, order=order)
    W = rand((n_out, 1 + n_in), -0.5, 0.5)
    W[0, 1] = 0.0                                  # sign(0) = 0 for the L1 term
    prev = rand((n_out, 1 + n_in), -0.01, 0.01)
    outs = {}
    for name in backends.BACKENDS:
        Wc, pc = W.copy(), prev.copy()
        Gw, gb = np.empty((n_out, n_in), np.float32), np.empty(n_out, np.float32)
        backends.module(name).gradient_update(delta, A_prev, Wc, pc, 0.01, l2, l1, mom, Gw,
                                              gb, np.empty_like(Gw))
        outs[name] = (Wc, pc, Gw, gb)
    # the gradient sums B products; summed in another order its error scales
    # with sqrt(B) times the terms, so entries that cancel to ~0 need an atol
    atol = 1e-7 * max(1.0, np.sqrt(B))
    for (a, b, name) in zip(outs["numpy"], outs["compiled"], ("W", "dW_prev", "Gw", "gb")):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=atol, err_msg=name)


def test_regularization_cost_matches_numpy():
    W = rand((11, 24))
    for l2, l1 in ((0.0, 0.0), (0.3, 0.0), (0.0, 0.2), (0.3, 0.2)):
        assert ck.regularization_cost(W, l2, l1) == pytest.approx(
            nb.regularization_cost(W, l2, l1), rel=1e-6)


def test_gradient_update_rejects_bad_operands():
    d, A, W = rand((5, 3)), rand((5, 4)), rand((3, 5))
    P, Gw, gb = np.zeros_like(W), np.empty((3, 4), np.float32), np.empty(3, np.float32)
    with pytest.raises(ValueError, match="W: expected shape"):
        ck.gradient_update(d, A, rand((3, 4)), P, 0.1, 0, 0, 0, Gw, gb)
    with pytest.raises(ValueError, match="Gw: expected shape"):
        ck.gradient_update(d, A, W, P, 0.1, 0, 0, 0, np.empty((4, 3), np.float32), gb)
    with pytest.raises(ValueError, match="l2 must be"):
        ck.gradient_update(d, A, W, P, 0.1, -1.0, 0, 0, Gw, gb)
    with pytest.raises(ValueError, match="A_prev: expected shape"):
        ck.gradient_update(d, rand((6, 4)), W, P, 0.1, 0, 0, 0, Gw, gb)


# ------------------------------------------------- gather, network outputs
def test_gather_rows_copies_the_indexed_rows():
    X = rand((50, 7))
    idx = np.array([49, 0, 3, 3, 17], np.intp)
    out = np.empty((5, 7), np.float32)
    ck.gather_rows(X, idx, out)
    np.testing.assert_array_equal(out, X[idx])
    with pytest.raises(ValueError, match="out of range"):
        ck.gather_rows(X, np.array([0, 50], np.intp), np.empty((2, 7), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        ck.gather_rows(X, np.array([-1], np.intp), np.empty((1, 7), np.float32))


@pytest.mark.parametrize("layers", [(13, 5, 3), (64, 20, 12, 10), (9, 8, 7, 6, 5, 4)])
@pytest.mark.parametrize("n_threads,block", [(1, 1000), (2, 17), (2, 1)])
def test_network_outputs_matches_numpy(layers, n_threads, block):
    X = rand((203, layers[0]))
    Ws = [rand((o, 1 + i), -0.5, 0.5) for i, o in zip(layers[:-1], layers[1:])]
    want = np.empty((203, layers[-1]), np.float32)
    nb.network_outputs(X, Ws, want)
    got = np.full_like(want, np.nan)
    ck.network_outputs(X, Ws, got, block_rows=block, n_threads=n_threads)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-7)


def test_network_outputs_rejects_inconsistent_weights():
    X = rand((5, 4))
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape"):
        ck.network_outputs(X, [rand((3, 5)), rand((2, 3))], np.empty((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"weights\[0\]: must be a 2-D float32"):
        ck.network_outputs(X, [rand((3, 5)).astype(np.float64)], np.empty((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"weights\[0\]: must be C-contiguous"):
        ck.network_outputs(X, [np.asfortranarray(rand((3, 5)))], np.empty((5, 3), np.float32))


def test_column_mean_var_matches_numpy_float64():
    X = rand((301, 17), -3, 5)
    mean, var = ck.column_mean_var(X)
    np.testing.assert_allclose(mean, X.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, X.astype(np.float64).var(axis=0), rtol=1e-10)
    with pytest.raises(ValueError, match="at least one row"):
        ck.column_mean_var(np.empty((0, 3), np.float32))


def test_operands_starting_inside_a_float_are_refused():
    """Regression (found by the sanitizer run of tests/test_properties.py):
    a float32 view one byte into a buffer was read with misaligned loads,
    undefined behaviour in C.  Every kernel now refuses such an operand."""
    def misaligned(shape):
        n = int(np.prod(shape))
        a = np.ndarray(shape, np.float32, np.zeros(4 * n + 1, np.uint8), 1)
        a[...] = 0.25
        return a
    A, W, d = rand((5, 3)), rand((4, 4)), rand((5, 4))
    out = np.empty((5, 4), np.float32)
    with pytest.raises(ValueError, match="A_prev: data not aligned"):
        ck.forward_layer(misaligned((5, 3)), W, out)
    with pytest.raises(ValueError, match="A_out: data not aligned"):
        ck.forward_layer(A, W, misaligned((5, 4)))
    with pytest.raises(ValueError, match="Y: data not aligned"):
        ck.output_delta(rand((5, 4)), misaligned((5, 4)), out)
    with pytest.raises(ValueError, match="W: data not aligned"):
        ck.regularization_cost(misaligned((4, 4)), 0.1, 0.0)
    with pytest.raises(ValueError, match="gb: data not aligned"):
        ck.gradient_update(d, A, rand((4, 4)), np.zeros((4, 4), np.float32),
                           0.1, 0, 0, 0, np.empty((4, 3), np.float32), misaligned((4,)))
    with pytest.raises(ValueError, match="X: data not aligned"):
        ck.network_outputs(misaligned((5, 3)), [W], out)
