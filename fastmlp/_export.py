"""The estimators' ways out of Python: ONNX, scikit-learn and Keras.

:class:`ExportMixin` gives :class:`fastmlp.MLPClassifier` and
:class:`fastmlp.MLPRegressor` their ``to_onnx``, ``save_onnx``,
``to_sklearn`` and ``to_keras`` methods.  Each is a thin call into the module
that does the work (:mod:`fastmlp._onnx`, :mod:`fastmlp._convert`), imported
when first called, so ``import fastmlp`` needs none of onnx, TensorFlow or
scikit-learn's neural-network internals.
"""

from sklearn.exceptions import NotFittedError

__all__ = ["ExportMixin"]


class ExportMixin:
    """Export methods of a fitted estimator."""

    def _check_exportable(self, what):
        if "_state" not in self.__dict__:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet, so there is "
                                 f"nothing to export ({what}); call fit or partial_fit first")

    def to_onnx(self, target_opset=None, ir_version=None):
        """The fitted model as an ``onnx.ModelProto`` that takes raw float32
        rows ``X`` (n_samples, n_features), scales them as fitted and runs the
        network.  A classifier's outputs are ``output_label`` and
        ``output_probability`` (skl2onnx's names; the probabilities as a
        tensor, equal to :meth:`predict_proba`); a regressor's is
        ``variable``, :meth:`predict` as (n_samples, n_outputs) float32.

        ``target_opset`` (default 17, or the newest the installed onnx
        knows) and ``ir_version`` (default: the oldest that carries the
        opset) are checked against the installed onnx: ValueError names
        what it cannot write.  Needs ``pip install "fastmlp[onnx]"``.
        """
        self._check_exportable("to_onnx")
        from ._onnx import to_onnx
        return to_onnx(self, target_opset, ir_version)

    def save_onnx(self, path, target_opset=None, ir_version=None):
        """Write :meth:`to_onnx`'s model to ``path`` (atomically: a reader
        never sees half a file); returns the path."""
        self._check_exportable("save_onnx")
        from ._onnx import save_onnx, to_onnx
        return save_onnx(to_onnx(self, target_opset, ir_version), path)

    def to_sklearn(self):
        """A fitted ``sklearn.neural_network.MLPClassifier`` /
        ``MLPRegressor`` that predicts what this model predicts, on raw X:
        the input scaling is folded into the first layer (and a regressor's
        target scaling into the last).  Possible for softmax outputs, a
        regressor's identity outputs, multilabel sigmoid outputs, and a
        two-class sigmoid model whose two output rows are exact negatives;
        ValueError otherwise, naming the reason (see
        :func:`fastmlp._convert.to_sklearn`)."""
        self._check_exportable("to_sklearn")
        from ._convert import to_sklearn
        return to_sklearn(self)

    def to_keras(self):
        """A ``keras.Sequential`` that takes raw X: a Normalization layer
        holding the input scaling, the Dense layers, and outputs equal to
        :meth:`predict_proba` (classifier) or :meth:`predict` (regressor,
        as (n_samples, n_outputs)).  Needs TensorFlow
        (``pip install "fastmlp[keras]"``)."""
        self._check_exportable("to_keras")
        from ._convert import to_keras
        return to_keras(self)
