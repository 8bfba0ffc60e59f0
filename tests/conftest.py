"""Shared fixtures: the backends, the compiled backend's two product paths and
its sparse first layer's two ways through a batch."""

import pytest

from fastmlp import backends


@pytest.fixture(params=backends.BACKENDS)
def backend(request):
    """The name of each backend in turn ("compiled", "numpy"): a test that
    takes this fixture runs once per backend."""
    return request.param


@pytest.fixture(params=["own-gemm", "blas-gemm"])
def gemm_path(request):
    """Run a test once with fastmlp's AVX-512 products and once with sgemm.

    Objects created inside the test pick the setting up; it is restored after.
    """
    from fastmlp.backends import _compiled
    if request.param == "own-gemm" and not _compiled.OWN_GEMM_AVAILABLE:
        pytest.skip("this CPU has no AVX-512F: only the sgemm path exists here")
    previous = _compiled.set_own_gemm(request.param == "own-gemm")
    yield request.param
    _compiled.set_own_gemm(previous)


@pytest.fixture(params=["tiles", "rows"])
def sparse_mode(request):
    """Each test once with the sparse first layer's four-row tiles and once
    row by row (layers built inside the test pick it up)."""
    from fastmlp.backends import _compiled
    previous = _compiled.set_sparse_mode(request.param)
    yield request.param
    _compiled.set_sparse_mode(previous)
