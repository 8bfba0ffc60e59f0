"""The regressor: :class:`MLPRegressor`, a thin layer over :class:`BaseMLP`.

It says what a regressor's targets are: numbers, one identity output per
target column, the squared error as the loss and R^2 as the score.
Everything else (parameters, data preparation, the training loop) is the
base's and the trainer's.
"""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score

from ._base import TRAIN_ACC_KINDS, BaseMLP
from ._docs import attributes_section, parameters_section
from ._params import OneOf, Param, extended, make_init
from ._validation import check_continuous

__all__ = ["MLPRegressor"]


class MLPRegressor(RegressorMixin, BaseMLP):
    _parameters = extended(
        BaseMLP._parameters,
        output=Param(OneOf(("auto", "identity")), "auto"),
        train_accuracy=Param(OneOf(tuple(k for k in TRAIN_ACC_KINDS if k != "batch")), "none"))
    __init__ = make_init(_parameters)

    _target_kind = "continuous"

    def partial_fit(self, X, y, sample_weight=None, *, validation_data=None, callback=None):
        """Train one more epoch on (X, y), continuing from the current weights.

        The first call starts a new network and fixes the input scaling from
        its X; later calls continue the learning-rate schedule, the optimiser
        state and ``history_``, and need y with as many columns.
        Hyperparameters changed with ``set_params`` between calls take
        effect, except those that fix the network (ValueError).
        ``early_stopping=True`` is refused, as in scikit-learn.
        ``sample_weight``, ``validation_data`` and ``callback`` are as for
        :meth:`fit`.

        Returns
        -------
        self
        """
        def outputs_from(y):
            if "_state" not in self.__dict__:
                return self._outputs_for(y)
            self._check_outputs(y, "partial_fit: ")
            return self.n_outputs_

        return self._partial_fit(X, y, sample_weight, outputs_from, validation_data, callback)

    def predict(self, X):
        """Predicted targets, float64 as scikit-learn's regressors give them:
        (n_samples,) for one target, else (n_samples, n_outputs)."""
        self._check_fitted()
        out = self.predict_outputs(X).astype(np.float64)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True       # y may have several columns
        return tags

    # ------------------------------------------------ what the targets are
    def _check_targets(self, y, n_samples, name="y"):
        return check_continuous(y, n_samples, name)

    def _outputs_for(self, y, n_samples=None):
        """The number of outputs: one per target column."""
        return 1 if y.ndim == 1 else y.shape[1]

    def _set_target_kind(self, kind, classes, n_outputs):
        if kind != "continuous":
            raise ValueError(f"an MLPRegressor has continuous targets, not {kind}")

    def _check_outputs(self, y, what=""):
        n = 1 if y.ndim == 1 else y.shape[1]
        if n != self.n_outputs_:
            raise ValueError(f"{what}y has {n} target column(s), but the model was fitted on "
                             f"{self.n_outputs_}")

    def _targets(self, y, name="y"):
        """(float32 target matrix, the targets as given, for R^2)."""
        Y = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=np.float32)
        if "_state" in self.__dict__ and Y.shape[1] != self.n_outputs_:
            self._check_outputs(y, f"{name}: " if name != "y" else "")
        return Y, y

    def _score_outputs(self, outputs, y_eval, sample_weight=None):
        """R^2 of the outputs (averaged over the targets, as ``score``)."""
        pred = outputs.ravel() if y_eval.ndim == 1 else outputs
        return float(r2_score(y_eval, pred, sample_weight=sample_weight))

    def _loss_outputs(self, outputs, y_eval, sample_weight=None):
        """The training loss of ``outputs``, mean per sample (weighted by
        ``sample_weight``), in float64: 1/2 the squared error summed over
        the outputs."""
        d = outputs.astype(np.float64) - y_eval.reshape(y_eval.shape[0], -1)
        return float(np.average(0.5 * (d * d).sum(axis=1), weights=sample_weight))


MLPRegressor.__doc__ = """Multilayer perceptron regressor trained by mini-batch gradient descent.

    An identity output per target column, trained on the squared error
    ``1/2 sum (a - y)^2``, summed over the outputs and the samples of a
    batch like the classifier's LogLoss (scikit-learn averages it over the
    samples; with adam the sum hardly matters, and ``l2`` equals its
    ``alpha``).  y may be 1-D (``predict`` then returns 1-D) or 2-D
    (several targets).  ``score`` is R^2.  The defaults are those of
    :class:`MLPClassifier`: one hidden layer of 100 relu units, adam,
    batches of 200, L2 1e-4, up to 200 epochs until the training loss stops
    improving; inputs are standardised, targets are used as they are.
""" + parameters_section(
    MLPRegressor._parameters,
    {"output": '''output : {"auto", "identity"}, default "auto"
    The output layer: identity, with the squared error as the loss.
    Scikit-learn's ``out_activation_`` is "identity" too.''',
     "train_accuracy": '''train_accuracy : {"none", "full"}, default "none"
    "full": the R^2 of the whole training set every ``eval_period`` epochs,
    in ``history_.train_acc``; "none": not measured.'''}) + attributes_section(
    ["coefs_", "layers_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
     "feature_names_in_", "mean_", "history_", "n_iter_", "t_", "loss_curve_", "best_loss_",
     "validation_scores_", "best_validation_score_", "optimizer_steps_", "learning_rate_"],
    {"validation_scores_": '''validation_scores_ : list of float or None
    With early stopping, the validation R^2 of every epoch of the last fit;
    else None.'''}) + "    "
