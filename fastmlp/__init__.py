"""fastmlp: fast CPU training of multilayer perceptrons.

The public surface:

* :class:`MLPClassifier` -- the seeds' sigmoid MLP with LogLoss, L1/L2
  regularisation, momentum and learning-rate decay, float32 end to end;
* :mod:`fastmlp.datasets` -- MNIST (shipped with the package), IDX files and
  scikit-learn's digits, all offline;
* :func:`lr_schedule` -- the per-epoch learning-rate decay of the seeds;
* :func:`build_info` -- how the compiled kernels were built.
"""

__version__ = "0.1.0.dev0"

from . import datasets
from ._history import History
from ._mlp import MLPClassifier, lr_schedule

__all__ = ["MLPClassifier", "History", "datasets", "lr_schedule", "build_info",
           "__version__"]


def build_info():
    """Return a dict describing the compiled extension (present or not)."""
    try:
        from . import _kernels
    except ImportError as exc:  # pragma: no cover - reported, not hidden
        return {"compiled": False, "error": str(exc)}
    return {"compiled": True, "module": _kernels.__file__}
