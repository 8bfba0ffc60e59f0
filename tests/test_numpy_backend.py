"""The NumPy reference backend reuses its buffers: no allocation per batch."""

import tracemalloc

import numpy as np

from fastmlp import NetworkState
from fastmlp.backends import BackendConfig
from fastmlp.backends import _numpy_backend as nb

from _reference import random_problem


def peak_bytes_of_batches(B, l1):
    weights, X, Y = random_problem((784, 70, 30, 10), batch=4 * B, seed=0)
    state = NetworkState((784, 70, 30, 10), weights)
    be = nb.NumpyBackend(X, Y, state, BackendConfig(l2=0.01, l1=l1, momentum=5e-5,
                                                    batch_size=B))
    order = np.random.default_rng(0).permutation(4 * B)
    be.train_batch(order[:B], 1e-3)                 # warm up
    tracemalloc.start()
    for b in range(4):
        be.train_batch(order[b * B:(b + 1) * B], 1e-3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_training_batches_allocate_nothing_proportional_to_the_batch():
    """Peak traced memory of four batches does not grow with the batch size.

    What remains is NumPy's fixed-size ufunc buffers (8192 elements) and, with
    l1 > 0, |W| of one weight matrix; a single batch of inputs is 1.5 MB at
    B=500 and 6 MB at B=2000."""
    for l1 in (0.0, 0.001):
        small, large = peak_bytes_of_batches(500, l1), peak_bytes_of_batches(2000, l1)
        assert small < 300_000, small
        assert large - small < 12_000, (small, large)


def test_network_outputs_blocks_cover_all_rows():
    weights, X, _ = random_problem((6, 5, 3), batch=1001, seed=1)
    out = np.empty((1001, 3), np.float32)
    nb.network_outputs(X, weights, out, block_rows=100)
    full = np.empty_like(out)
    nb.network_outputs(X, weights, full, block_rows=5000)
    np.testing.assert_array_equal(out, full)
