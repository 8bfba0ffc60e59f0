"""fastmlp: fast CPU training of multilayer perceptrons.

The public surface:

* :class:`MLPClassifier` and :class:`MLPRegressor` -- scikit-learn
  estimators whose defaults suit any data set (relu, adam, a stopping
  rule); ``MLPClassifier.blog_experiment()`` is the blog series' sigmoid MLP
  with LogLoss, momentum and learning-rate decay;
* :mod:`fastmlp.datasets` -- MNIST (shipped with the package), IDX files and
  scikit-learn's digits, all offline;
* :func:`lr_schedule` -- the per-epoch learning-rate decay;
* :class:`StopTraining` -- raise it in a fit's callback to end training there;
* :func:`init_weights` -- the initial weights a fit starts from;
* :func:`load` -- read a model written by ``save``;
* :func:`from_sklearn` -- a scikit-learn MLP's weights as a fastmlp model
  that can go on training; the estimators' ``to_onnx``, ``save_onnx``,
  ``to_sklearn`` and ``to_keras`` go the other way;
* :func:`register_skl2onnx` -- let skl2onnx convert Pipelines that end in a
  fastmlp estimator;
* :func:`plot_history` -- the blog series' training plots as a PNG;
* :func:`build_info` -- how the compiled kernels were built;
* :mod:`fastmlp.backends` -- the compiled and NumPy backends behind one interface;
* :mod:`fastmlp.experiments` -- the benchmark suite, the regularisation study
  and the Keras reference models.
"""

from . import datasets
from ._classifier import MLPClassifier
from ._from_sklearn import from_sklearn
from ._loading import load
from ._regressor import MLPRegressor
from ._history import History
from ._io import ModelFileError
from ._network import NetworkState, init_weights
from ._platform import build_info
from ._plot import plot_history
from ._skl2onnx import register_skl2onnx
from ._trainer import DivergenceError, StopTraining, lr_schedule
from ._version import __version__

__all__ = ["MLPClassifier", "MLPRegressor", "DivergenceError", "StopTraining", "History", "NetworkState", "datasets",
           "lr_schedule", "init_weights", "build_info", "load", "ModelFileError",
           "plot_history", "from_sklearn", "register_skl2onnx", "__version__"]
