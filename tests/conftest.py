"""Shared fixtures."""

import pytest

from fastmlp import _kernels


@pytest.fixture(params=["own-gemm", "blas-gemm"])
def gemm_path(request):
    """Run a test once with fastmlp's AVX-512 products and once with sgemm.

    Objects created inside the test pick the setting up; it is restored after.
    """
    if request.param == "own-gemm" and not _kernels.OWN_GEMM_AVAILABLE:
        pytest.skip("this CPU has no AVX-512F: only the sgemm path exists here")
    previous = _kernels._set_own_gemm(request.param == "own-gemm")
    yield request.param
    _kernels._set_own_gemm(previous)
