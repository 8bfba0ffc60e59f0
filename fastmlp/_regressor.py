"""The regressor: :class:`MLPRegressor`, a thin layer over :class:`BaseMLP`.

It says what a regressor's targets are: numbers, standardised by default
(``target_scaling``), one identity output per target column, the squared
error as the loss and R^2 as the score.
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
        BaseMLP._parameters, after="scaling",
        output=Param(OneOf(("auto", "identity")), "auto"),
        train_accuracy=Param(OneOf(tuple(k for k in TRAIN_ACC_KINDS if k != "batch")), "none"),
        target_scaling=Param(OneOf(("standard", "none")), "standard"))
    __init__ = make_init(_parameters)
    _structural = BaseMLP._structural + ("target_scaling",)

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
        def outputs_from(y, sample_weight):
            if "_state" not in self.__dict__:
                return self._outputs_for(y, sample_weight=sample_weight)
            self._check_outputs(y, "partial_fit: ")
            return self.n_outputs_

        return self._partial_fit(X, y, sample_weight, outputs_from, validation_data, callback)

    def predict(self, X):
        """Predicted targets, float64 as scikit-learn's regressors give them:
        (n_samples,) for one target, else (n_samples, n_outputs)."""
        self._check_fitted()
        out = self._unscaled(self.predict_outputs(X))
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True       # y may have several columns
        tags.input_tags.sparse = True              # trained on the sparse path
        return tags

    # ------------------------------------------------ what the targets are
    def _check_targets(self, y, n_samples, name="y"):
        return check_continuous(y, n_samples, name)

    def _outputs_for(self, y, n_samples=None, sample_weight=None):
        """The number of outputs, one per target column; sets the targets'
        scaling from y: the mean and standard deviation of each column,
        weighted by ``sample_weight`` (so that a weight of k is k copies)."""
        Y = y.reshape(y.shape[0], -1)
        if self._params["target_scaling"] == "standard":
            mean = np.average(Y, axis=0, weights=sample_weight)
            std = np.sqrt(np.average((Y - mean) ** 2, axis=0, weights=sample_weight))
            self.y_mean_, self.y_scale_ = mean, np.where(std > 0, std, 1.0)
        else:
            self.y_mean_, self.y_scale_ = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        return Y.shape[1]

    def _set_target_kind(self, kind, classes, n_outputs, target_scaling=None):
        if kind != "continuous":
            raise ValueError(f"an MLPRegressor has continuous targets, not {kind}")
        if target_scaling is None:
            target_scaling = (np.zeros(n_outputs), np.ones(n_outputs))
        self.y_mean_, self.y_scale_ = target_scaling

    def _target_scaling(self):
        return self.y_mean_, self.y_scale_

    def _unscaled(self, outputs):
        """Network outputs back in the targets' units (float64)."""
        return outputs.astype(np.float64) * self.y_scale_ + self.y_mean_

    def _check_outputs(self, y, what=""):
        n = 1 if y.ndim == 1 else y.shape[1]
        if n != self.n_outputs_:
            raise ValueError(f"{what}y has {n} target column(s), but the model was fitted on "
                             f"{self.n_outputs_}")

    def _targets(self, y, name="y"):
        """(float32 target matrix the network trains on: y scaled by
        ``target_scaling``; the targets as given, for R^2)."""
        Y = y.reshape(y.shape[0], -1)
        if "_state" in self.__dict__ and Y.shape[1] != self.n_outputs_:
            self._check_outputs(y, f"{name}: " if name != "y" else "")
        Y = np.ascontiguousarray((Y - self.y_mean_) / self.y_scale_, dtype=np.float32)
        return Y, y

    def _score_outputs(self, outputs, y_eval, sample_weight=None):
        """R^2 of the outputs (averaged over the targets, as ``score``)."""
        pred = self._unscaled(outputs)
        pred = pred.ravel() if y_eval.ndim == 1 else pred
        return float(r2_score(y_eval, pred, sample_weight=sample_weight))

    def _loss_outputs(self, outputs, y_eval, sample_weight=None):
        """The training loss of ``outputs``, mean per sample (weighted by
        ``sample_weight``), in float64: 1/2 the squared error summed over
        the outputs, in the scaled units the network trains in."""
        target = (y_eval.reshape(y_eval.shape[0], -1) - self.y_mean_) / self.y_scale_
        d = outputs.astype(np.float64) - target
        return float(np.average(0.5 * (d * d).sum(axis=1), weights=sample_weight))


MLPRegressor.__doc__ = """Multilayer perceptron regressor trained by mini-batch gradient descent.

    An identity output per target column, trained on the squared error
    ``1/2 sum (a - y)^2``, summed over the outputs and the samples of a
    batch like the classifier's LogLoss (scikit-learn averages it over the
    samples; with adam the sum hardly matters, and ``l2`` equals its
    ``alpha``).  The targets are standardised for training
    (``target_scaling``; scikit-learn's MLPRegressor does not, and a target
    of mean 150 then needs thousands of steps of 0.001 just to reach its
    level), so the loss is in units of each target's standard deviation;
    ``predict`` answers in the targets' own units.  y may be 1-D
    (``predict`` then returns 1-D) or 2-D (several targets).  ``score`` is
    R^2.  The other defaults are those of :class:`MLPClassifier`: one hidden
    layer of 100 relu units, Glorot's initial weights, adam, batches of 200,
    L2 1e-4, up to 200 epochs until the training loss stops improving;
    inputs are standardised.
""" + parameters_section(
    MLPRegressor._parameters,
    {"output": '''output : {"auto", "identity"}, default "auto"
    The output layer: identity, with the squared error as the loss.
    Scikit-learn's ``out_activation_`` is "identity" too.''',
     "target_scaling": '''target_scaling : {"standard", "none"}, default "standard"
    "standard": train on each target column minus its mean, divided by its
    standard deviation (from the first fit's y; a constant column is not
    divided), and undo it in ``predict``; "none": train on y as it is.
    (scikit-learn: no such option; it trains on y as it is).''',
     "train_accuracy": '''train_accuracy : {"none", "full"}, default "none"
    "full": the R^2 of the whole training set every ``eval_period`` epochs,
    in ``history_.train_acc``; "none": not measured.'''}) + attributes_section(
    ["coefs_", "layers_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
     "feature_names_in_", "mean_", "y_mean_", "history_", "n_iter_", "t_", "loss_curve_", "best_loss_",
     "validation_scores_", "best_validation_score_", "optimizer_steps_", "learning_rate_"],
    {"y_mean_": '''y_mean_, y_scale_ : ndarray
    The targets' scaling: the network's output o stands for
    ``o * y_scale_ + y_mean_`` (0 and 1 with ``target_scaling="none"``).''',
     "validation_scores_": '''validation_scores_ : list of float or None
    With early stopping, the validation R^2 of every epoch of the last fit;
    else None.'''}) + "    "
