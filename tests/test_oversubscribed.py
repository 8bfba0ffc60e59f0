"""More threads than cores: a compiled fit is still deterministic for its
thread count (each slice's share of the batch, the repack's share of the
weights and the update's rows are fixed by the count, not by timing)."""

import os

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import MLPClassifier
from fastmlp.datasets import load_digits


@pytest.mark.parametrize("threads", [3, 2 * (os.cpu_count() or 1) + 1])
@pytest.mark.parametrize("sparse", [False, True])
def test_a_fit_with_more_threads_than_cores_repeats_exactly(threads, sparse, gemm_path):
    (X, y), _ = load_digits()
    if sparse:
        X = sp.csr_matrix(X)
    kw = dict(hidden_layer_sizes=(40, 20), epochs=3, batch_size=100, random_state=0,
              backend="compiled", n_threads=threads, optimizer="adam")
    a = MLPClassifier(**kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)
    one = MLPClassifier(**dict(kw, n_threads=1)).fit(X, y)
    for p, q in zip(a.coefs_, one.coefs_):      # the same model, summed in another order
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4 * np.abs(q).max())
