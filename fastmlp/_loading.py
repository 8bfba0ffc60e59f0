"""``fastmlp.load``: a model file back as the estimator that saved it."""

import os

from . import _io
from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

__all__ = ["load"]

_ESTIMATORS = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


def load(path):
    """Read a model written by ``save``; returns the fitted estimator
    (an :class:`MLPClassifier` or :class:`MLPRegressor`, as saved).

    Raises FileNotFoundError for a missing file and
    :class:`fastmlp.ModelFileError` for anything else that is not a valid
    model file; never unpickles."""
    name = os.fspath(path)
    contents = _io.read(name)
    return _ESTIMATORS[contents.estimator]._from_model_file(name, contents)
