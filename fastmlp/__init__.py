"""fastmlp: fast CPU training of multilayer perceptrons.

The public surface:

* :class:`MLPClassifier` -- the seeds' sigmoid MLP with LogLoss, L1/L2
  regularisation, momentum and learning-rate decay, float32 end to end;
* :mod:`fastmlp.datasets` -- MNIST (shipped with the package), IDX files and
  scikit-learn's digits, all offline;
* :func:`lr_schedule` -- the per-epoch learning-rate decay of the seeds;
* :func:`load` -- read a model written by ``MLPClassifier.save``;
* :func:`plot_history` -- the seeds' training plots as a PNG;
* :func:`build_info` -- how the compiled kernels were built.
"""

__version__ = "0.1.0.dev0"

from . import datasets
from ._history import History
from ._io import ModelFileError, load
from ._mlp import DivergenceError, MLPClassifier, lr_schedule
from ._plot import plot_history

__all__ = ["MLPClassifier", "DivergenceError", "History", "datasets", "lr_schedule", "build_info",
           "load", "ModelFileError", "plot_history", "__version__"]


def build_info():
    """Describe the compiled extension: present or not, OpenMP or not, threads.

    Returns a dict with ``compiled`` (bool), ``openmp`` (bool: without OpenMP
    the compiled backend runs single-threaded), ``max_threads`` (OpenMP's
    default team size), ``gemm`` ("avx512": the step's large products use
    fastmlp's own kernels; "blas": sgemm) and ``module`` (the extension's file).
    """
    try:
        from . import _kernels
    except ImportError as exc:  # pragma: no cover - reported, not hidden
        return {"compiled": False, "openmp": False, "error": str(exc)}
    return {"compiled": True, "openmp": _kernels.HAVE_OPENMP,
            "max_threads": _kernels.max_threads(), "gemm": _kernels.gemm_kind(),
            "module": _kernels.__file__}


def _cpu_name():
    """The CPU's model name (from /proc/cpuinfo on Linux), for reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()
