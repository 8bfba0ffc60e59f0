"""The compiled sparse first layer's kernels against their NumPy twins.

``sparse_forward_layer``, ``sparse_gradient_update`` and ``network_outputs``
with SparseRows, on uint8 and float32 values, uint16 and int32 column
indices, empty rows and all-zero batches, with and without the scaling, for
every activation, output and optimiser; each test runs both ways through a
batch (four-row tiles and rows, :func:`set_sparse_mode`) and both product
paths (the conftest ``gemm_path``: AVX-512 kernels or plain C).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import backends
from fastmlp._optim import Optimizer
from fastmlp._sparse import as_rows

ck = backends.module("compiled")
nb = backends.module("numpy")


@pytest.fixture(autouse=True)
def _both_gemm_paths(gemm_path):
    return gemm_path


def sparse_rows(n, m, density, values="u8", seed=0, empty=()):
    """SparseRows of a random (n, m) matrix: uint8 values 1..255 ("u8") or
    float32 values of both signs ("f32"); rows ``empty`` have no entry.  The
    indices are uint16 up to 65,536 columns, else int32."""
    rng = np.random.default_rng(seed)
    A = sp.random(n, m, density=density, random_state=rng, format="csr")
    A.data = (np.floor(A.data * 255) + 1) if values == "u8" else (A.data - 0.5) * 4
    A = A.tolil()
    for i in empty:
        A.rows[i], A.data[i] = [], []
    rows = as_rows(A.tocsr())
    assert rows.data.dtype == (np.uint8 if values == "u8" else np.float32)
    assert rows.indices.dtype == (np.uint16 if m <= 65536 else np.int32)
    return rows


def scaling(m, kind, seed=1):
    """(mean, scale) for the kernels: None, zero mean (maxabs), or both."""
    rng = np.random.default_rng(seed)
    if kind == "none":
        return None, None
    scale = rng.uniform(0.5, 3.0, m).astype(np.float32)
    mean = np.zeros(m, np.float32) if kind == "maxabs" else \
        rng.uniform(-1, 2, m).astype(np.float32)
    return mean, scale


def folded_dense(X, idx, mean, scale):
    """The rows as the dense path reads them: ((x - mean) / scale), float64."""
    D = X.to_scipy(np.float64)[idx].toarray()
    if scale is not None:
        D = (D - mean) / scale
    return D


#: (rows, columns, density, values) of the problems: narrow and dense-ish
#: (pixels), narrow and sparse, and wide enough for int32 indices
PROBLEMS = [(40, 37, 0.3, "u8"), (50, 300, 0.02, "f32"), (30, 70000, 0.0005, "f32"),
            (33, 100, 0.2, "f32")]


@pytest.mark.parametrize("n,m,density,values", PROBLEMS)
@pytest.mark.parametrize("kind", ["none", "maxabs", "standard"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "softmax", "identity"])
def test_sparse_forward_layer_matches_numpy(sparse_mode, n, m, density, values, kind,
                                            activation):
    X = sparse_rows(n, m, density, values, seed=n, empty=(0, 5))
    mean, scale = scaling(m, kind)
    rng = np.random.default_rng(2)
    W = rng.uniform(-0.5, 0.5, (23, m + 1)).astype(np.float32)
    idx = rng.permutation(n)[: n - 3]
    idx[1] = 5                                    # an empty row
    want = np.empty((len(idx), 23), np.float32)
    nb.sparse_forward_layer(X, idx, W, want, activation, mean, scale)
    got = np.full_like(want, np.nan)
    ck.sparse_forward_layer(X, idx, W, got, activation, mean, scale)
    # sums of float32 products in another order: a few ulps of sum |x w|
    D = folded_dense(X, idx, mean, scale)
    size = (np.abs(D) @ np.abs(W[:, 1:].T.astype(np.float64))).max() + np.abs(W[:, 0]).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=max(1e-7, 8e-7 * size))
    if activation == "identity":
        exact = D @ W[:, 1:].T.astype(np.float64) + W[:, 0]
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=max(1e-7, 8e-7 * size))


def test_sparse_forward_of_an_empty_row_is_the_bias_and_the_mean_share(sparse_mode):
    X = sparse_rows(6, 20, 0.3, "u8", empty=(2,))
    mean, scale = scaling(20, "standard")
    W = np.random.default_rng(3).uniform(-1, 1, (5, 21)).astype(np.float32)
    got = np.empty((1, 5), np.float32)
    ck.sparse_forward_layer(X, [2], W, got, "identity", mean, scale)
    want = W[:, 0] - (W[:, 1:] / scale) @ mean
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


OPTIMIZERS = [(None, 0.0), (None, 0.9), ("rmsprop", 0.0), ("adam", 0.0)]


@pytest.mark.parametrize("n,m,density,values", PROBLEMS)
@pytest.mark.parametrize("kind", ["none", "maxabs", "standard"])
@pytest.mark.parametrize("optimizer,momentum", OPTIMIZERS)
@pytest.mark.parametrize("l2,l1", [(0.0, 0.0), (0.05, 0.01)])
def test_sparse_gradient_update_matches_numpy(sparse_mode, n, m, density, values, kind,
                                              optimizer, momentum, l2, l1):
    """Two steps of each twin from the same state: weights, optimiser states,
    and what each step subtracted.  A weight of a feature absent from the
    batch still moves (L2, momentum, adam's moments: every weight, every step)."""
    X = sparse_rows(n, m, density, values, seed=n + 1, empty=(1,))
    mean, scale = scaling(m, kind)
    rng = np.random.default_rng(4)
    H, lr = 19, 0.01
    W0 = rng.uniform(-0.5, 0.5, (H, m + 1)).astype(np.float32)
    W0[0, 1] = 0.0                                # sign(0) = 0 for the L1 term
    V0 = rng.uniform(-0.01, 0.01, W0.shape).astype(np.float32)
    if optimizer is not None:
        V0 = np.abs(V0) if optimizer == "rmsprop" else V0
    S0 = np.abs(rng.uniform(0, 1e-3, W0.shape)).astype(np.float32)
    idx = rng.permutation(n)[: n // 2 + 1]
    delta = rng.uniform(-1, 1, (len(idx), H)).astype(np.float32)
    outs = {}
    for name, mod in (("numpy", nb), ("compiled", ck)):
        W, V, S2 = W0.copy(), V0.copy(), S0.copy()
        Gw, gb = np.empty((H, m), np.float32), np.empty(H, np.float32)
        for step in (1, 2):
            mod.sparse_gradient_update(delta, X, idx, W, V, lr, l2, l1, momentum, Gw, gb,
                                       np.empty_like(Gw), optimizer, S2, step, mean, scale)
        outs[name] = (W, V, S2, Gw, gb)
    ref, got = outs["numpy"], outs["compiled"]
    # an update divides by about |G| (rmsprop, adam): where G is near 0 its
    # rounding moves the step by up to ~lr (as tests/test_optimizers.py)
    w_atol = lr / 100 if optimizer else 1e-7 * np.sqrt(len(idx)) * 4
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=w_atol, err_msg="W")
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-6, err_msg="dW_prev")
    if optimizer == "adam":
        np.testing.assert_allclose(got[2], ref[2], rtol=1e-4, atol=1e-6, err_msg="state2")
    np.testing.assert_allclose(got[4], ref[4], rtol=1e-5, atol=1e-6, err_msg="gb")
    np.testing.assert_allclose(got[3], ref[3], rtol=1e-4, atol=w_atol, err_msg="Gw")
    # the weights of features absent from the batch move too where their rule
    # moves them without a gradient (L2, momentum, adam's first moment; the
    # twin, which updates every weight, agreed above; a step below an ulp
    # leaves a few)
    if l2 > 0 or momentum > 0 or optimizer == "adam":
        absent = np.setdiff1d(np.arange(m), X[idx].indices)
        if absent.size:
            moved = got[0][:, 1 + absent] != W0[:, 1 + absent]
            assert moved.mean() > 0.5, moved.mean()


@pytest.mark.parametrize("kind", ["none", "standard"])
def test_sparse_gradient_of_an_all_zero_batch(sparse_mode, kind):
    """No entry in the batch: the weights' gradient is the mean's share and
    the regularisation only."""
    X = sparse_rows(8, 30, 0.3, "f32", empty=(2, 3, 4))
    mean, scale = scaling(30, kind)
    W = np.random.default_rng(5).uniform(-0.5, 0.5, (6, 31)).astype(np.float32)
    delta = np.random.default_rng(6).uniform(-1, 1, (3, 6)).astype(np.float32)
    outs = []
    for mod in (nb, ck):
        Wc, V = W.copy(), np.zeros_like(W)
        Gw, gb = np.empty((6, 30), np.float32), np.empty(6, np.float32)
        mod.sparse_gradient_update(delta, X, [2, 3, 4], Wc, V, 1.0, 0.1, 0.0, 0.0, Gw, gb,
                                   np.empty_like(Gw), None, None, 1, mean, scale)
        outs.append((Wc, Gw, gb))
    gsum = delta.sum(axis=0)
    want = 0.1 * W[:, 1:]
    if kind != "none":
        want = want - np.outer(gsum, mean / scale)
    for Wc, Gw, gb in outs:
        np.testing.assert_allclose(Gw, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gb, gsum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layers", [(37, 5, 3), (300, 20, 12, 10), (70000, 16, 4)])
@pytest.mark.parametrize("n_threads,block", [(1, 1000), (2, 17), (3, 1)])
@pytest.mark.parametrize("kind", ["none", "standard"])
def test_sparse_network_outputs_match_numpy(layers, n_threads, block, kind):
    X = sparse_rows(61, layers[0], 0.3 if layers[0] < 100 else 0.01, "f32", empty=(3,))
    mean, scale = scaling(layers[0], kind)
    rng = np.random.default_rng(7)
    Ws = [rng.uniform(-0.5, 0.5, (o, 1 + i)).astype(np.float32)
          for i, o in zip(layers[:-1], layers[1:])]
    scaling_arg = None if kind == "none" else (mean, scale)
    want = np.empty((61, layers[-1]), np.float32)
    nb.network_outputs(X, Ws, want, input_scaling=scaling_arg)
    got = np.full_like(want, np.nan)
    assert ck.network_outputs(X, Ws, got, block_rows=block, n_threads=n_threads,
                              input_scaling=scaling_arg) is got
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


def test_the_two_ways_and_prediction_give_the_same_forward_bit_for_bit():
    """A row's forward sums its terms in increasing column order whichever
    way runs it: tiles (absent columns add exact zeros), rows, and the
    prediction kernel."""
    X = sparse_rows(41, 200, 0.25, "u8")
    mean, scale = scaling(200, "standard")
    W = np.random.default_rng(8).uniform(-0.5, 0.5, (30, 201)).astype(np.float32)
    outs = []
    try:
        for mode in ("tiles", "rows"):
            ck.set_sparse_mode(mode)
            out = np.empty((41, 30), np.float32)
            ck.sparse_forward_layer(X, np.arange(41), W, out, "identity", mean, scale)
            outs.append(out)
    finally:
        ck.set_sparse_mode("auto")
    pred = np.empty((41, 30), np.float32)
    ck.network_outputs(X, [W], pred, block_rows=7, n_threads=2, output="identity",
                       input_scaling=(mean, scale))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], pred)


def test_choose_tiles_picks_tiles_for_pixels_and_rows_for_text():
    from fastmlp.backends._sparse_layer import choose_tiles
    from fastmlp.datasets import load_mnist
    (X, _), _ = load_mnist()
    assert choose_tiles(as_rows(sp.csr_matrix(X[:5000])), 70)
    assert not choose_tiles(sparse_rows(2000, 40000, 0.003, "f32"), 256)
    assert not choose_tiles(sparse_rows(2000, 300, 0.01, "f32"), 70)    # little overlap


@pytest.mark.parametrize("case,match", [
    ("dense X", "expected fastmlp._sparse.SparseRows"),
    ("idx", r"idx\[1\] = 40 is out of range for 40 rows"),
    ("W shape", r"W: expected shape \(n_out, 38\)"),
    ("W order", "W: must be an aligned C-contiguous float32"),
    ("A_out", r"A_out: expected shape \(3, 5\)"),
    ("scaling", r"input_scaling: expected two arrays of shape \(37,\)"),
])
def test_sparse_forward_layer_refuses_bad_operands(case, match):
    X = sparse_rows(40, 37, 0.3)
    W = np.zeros((5, 38), np.float32)
    idx, out, mean, scale = [0, 1, 2], np.empty((3, 5), np.float32), None, None
    if case == "dense X":
        X = X.to_scipy().toarray()
    elif case == "idx":
        idx = [0, 40, 1]
    elif case == "W shape":
        W = np.zeros((5, 37), np.float32)
    elif case == "W order":
        W = np.asfortranarray(W)
    elif case == "A_out":
        out = np.empty((4, 5), np.float32)
    elif case == "scaling":
        mean, scale = np.zeros(36, np.float32), np.ones(36, np.float32)
    with pytest.raises((ValueError, TypeError), match=match):
        ck.sparse_forward_layer(X, idx, W, out, "sigmoid", mean, scale)


def test_sparse_gradient_update_refuses_bad_operands():
    X = sparse_rows(40, 37, 0.3)
    W, V = np.zeros((5, 38), np.float32), np.zeros((5, 38), np.float32)
    d, Gw, gb = np.zeros((3, 5), np.float32), np.empty((5, 37), np.float32), np.empty(5,
                                                                                   np.float32)
    with pytest.raises(ValueError, match="delta: expected shape"):
        ck.sparse_gradient_update(d[:2], X, [0, 1, 2], W, V, 0.1, 0, 0, 0, Gw, gb)
    with pytest.raises(ValueError, match="Gw: expected shape"):
        ck.sparse_gradient_update(d, X, [0, 1, 2], W, V, 0.1, 0, 0, 0,
                                  np.empty((5, 36), np.float32), gb)
    with pytest.raises(ValueError, match="l2 must be"):
        ck.sparse_gradient_update(d, X, [0, 1, 2], W, V, 0.1, -1, 0, 0, Gw, gb)
    with pytest.raises(ValueError, match="state2"):
        ck.sparse_gradient_update(d, X, [0, 1, 2], W, V, 0.1, 0, 0, 0, Gw, gb,
                                  optimizer=Optimizer("adam"))


@pytest.mark.parametrize("H", [81, 100, 150])
def test_layers_wider_than_one_register_panel(sparse_mode, H):
    """Output panels: 80 columns a tile panel, 128 a row panel; a layer wider
    than one is split across several (forward and gradient)."""
    X = sparse_rows(45, 120, 0.2, "u8", seed=3, empty=(4,))
    mean, scale = scaling(120, "standard")
    rng = np.random.default_rng(9)
    W0 = rng.uniform(-0.5, 0.5, (H, 121)).astype(np.float32)
    idx = rng.permutation(45)[:30]
    want, got = np.empty((30, H), np.float32), np.empty((30, H), np.float32)
    nb.sparse_forward_layer(X, idx, W0, want, "tanh", mean, scale)
    ck.sparse_forward_layer(X, idx, W0, got, "tanh", mean, scale)
    D = folded_dense(X, idx, mean, scale)
    size = (np.abs(D) @ np.abs(W0[:, 1:].T.astype(np.float64))).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=8e-7 * size)
    delta = rng.uniform(-1, 1, (30, H)).astype(np.float32)
    outs = []
    for mod in (nb, ck):
        W, V = W0.copy(), np.zeros_like(W0)
        Gw, gb = np.empty((H, 120), np.float32), np.empty(H, np.float32)
        mod.sparse_gradient_update(delta, X, idx, W, V, 0.01, 0.01, 0.0, 0.5, Gw, gb,
                                   np.empty_like(Gw), None, None, 1, mean, scale)
        outs.append((W, Gw))
    # sums of 30 products in another order: within a few ulps of the largest
    # gradient, and the weights within the rate times that
    g_atol = 1e-5 * np.abs(outs[0][1]).max()
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-4, atol=g_atol)
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-5, atol=2 * 0.01 * g_atol)
