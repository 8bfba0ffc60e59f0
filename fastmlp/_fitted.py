"""A fitted estimator's attributes, read from its network state, and its model file.

:class:`FittedAttributes` is mixed into the estimators.  Every fitted
attribute that training changes (``coefs_``, ``n_iter_``, ``t_``,
``optimizer_steps_``, ``learning_rate_``, the best scores) is a view of the
estimator's :class:`fastmlp._network.NetworkState`, so one object holds
them and :mod:`fastmlp._io` saves them together.
"""

import numpy as np
from sklearn.exceptions import NotFittedError

from . import _io
from ._network import owned_array

__all__ = ["FittedAttributes"]


class FittedAttributes:
    """The fitted attributes and the model file of an estimator."""

    @property
    def coefs_(self):
        """Weight matrices ``(n_out, 1 + n_in)`` float32, bias in column 0."""
        return self._fitted_state().weights

    @coefs_.setter
    def coefs_(self, weights):
        state = self._fitted_state()
        new = [np.array(W, dtype=np.float32, order="C") for W in weights]
        if [W.shape for W in new] != [W.shape for W in state.weights]:
            raise ValueError(f"coefs_: expected shapes {[W.shape for W in state.weights]}, "
                             f"got {[W.shape for W in new]}")
        state.weights = new

    n_iter_ = property(lambda self: self._fitted_state().epochs,
                       doc="Epochs trained so far.")
    optimizer_steps_ = property(lambda self: self._fitted_state().step,
                                doc="Weight updates (batches) trained so far; adam's bias "
                                    "correction counts them.")
    t_ = property(lambda self: self._fitted_state().samples,
                  doc="Training samples the weight updates have used (scikit-learn's t_).")

    @property
    def best_loss_(self):
        """Lowest training loss per sample (``history_.train_loss``) that the
        no-improvement rule has seen; None with early stopping, as in
        scikit-learn (see ``best_validation_score_``)."""
        rule = self._fitted_state().plateau or {}
        return rule.get("best") if rule.get("key") == "train_loss" else None

    @property
    def best_validation_score_(self):
        """Best validation score of the last fit with early stopping, else None."""
        rule = self._fitted_state().plateau or {}
        return rule.get("best") if rule.get("key") == "val_score" else None

    @property
    def learning_rate_(self):
        """Rate used in the last completed epoch."""
        rate = self._fitted_state().learning_rate
        if rate is None:
            raise AttributeError("learning_rate_: no epoch has been completed yet")
        return rate

    @property
    def loss_curve_(self):
        """Mean batch cost of every epoch trained so far (scikit-learn's name)."""
        self._check_fitted()
        return list(self.history_.cost)

    def __getstate__(self):
        """Pickling: everything but a running fit's backend (mid-fit, as when
        a callback pickles the model, or Dask spills a partial_fit result that
        the next partial_fit is updating in place).  A copy: the estimator
        itself is left alone."""
        state = dict(super().__getstate__())
        state.pop("_live_backend", None)
        return state

    def __setstate__(self, state):
        """Unpickling (a model sent to a Dask worker, say): the fitted arrays
        owned, aligned and writable again (:func:`fastmlp._network.owned_array`)."""
        for key in ("mean_", "scale_", "y_mean_", "y_scale_"):
            if isinstance(state.get(key), np.ndarray):
                state[key] = owned_array(state[key])
        super().__setstate__(state)

    def _fitted_state(self):
        try:
            state = self.__dict__["_state"]
        except KeyError:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet") from None
        live = self.__dict__.get("_live_backend")
        if live is not None:       # mid-fit (a callback): bring the arrays up to date
            live.sync_out()
        return state

    def _check_fitted(self):
        if "_state" not in self.__dict__:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit "
                                 "first")

    # ------------------------------------------------------------ model file
    def save(self, path):
        """Write the fitted model to ``path`` as a pickle-free .npz file, atomically.

        Holds the weights, the optimiser state, architecture, hyperparameters,
        input scaling, the outputs' labels and a format version;
        :func:`fastmlp.load` reads it back.  The history is not saved.
        """
        state = self._fitted_state()
        params = self.get_params()
        params["hidden_layer_sizes"] = list(self._params["hidden_layer_sizes"])
        rs = params.get("random_state")
        if rs is not None and not isinstance(rs, (int, np.integer)):
            params["random_state"] = None   # a Generator is not data
        cw = params.get("class_weight")
        if isinstance(cw, dict):            # JSON keys are strings: keep the labels' types
            params["class_weight"] = [[k.item() if hasattr(k, "item") else k, float(v)]
                                      for k, v in cw.items()]
        return _io.save(path, params, state, getattr(self, "classes_", None), self.mean_,
                        self.scale_, getattr(self, "feature_names_in_", None),
                        type(self).__name__, self._target_kind,
                        getattr(self, "_target_scaling", lambda: None)())

    @classmethod
    def _from_model_file(cls, name, contents):
        """The fitted estimator a model file describes (:func:`fastmlp.load`)."""
        params = dict(contents.params)
        if "hidden_layer_sizes" in params:
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        if isinstance(params.get("class_weight"), list):
            try:
                params["class_weight"] = {k: w for k, w in params["class_weight"]}
            except (TypeError, ValueError):
                raise _io.ModelFileError(f"{name}: bad hyperparameters: class_weight "
                                         f"{params['class_weight']!r}") from None
        try:
            model = cls(**params)
            model._params = model._check_params()
        except (TypeError, ValueError) as exc:
            raise _io.ModelFileError(f"{name}: bad hyperparameters: {exc}") from exc
        layers = list(contents.state.layers)
        if list(model._params["hidden_layer_sizes"]) != layers[1:-1]:
            raise _io.ModelFileError(f"{name}: hidden layers {layers[1:-1]} disagree with "
                                     "the hyperparameters "
                                     f"{list(model._params['hidden_layer_sizes'])}")
        model._set_target_kind(contents.targets, contents.classes, layers[-1],
                               contents.target_scaling)
        model._set_network(contents.state)
        model.mean_, model.scale_ = contents.mean, contents.scale
        model.validation_scores_ = None        # not saved, like the history
        if contents.feature_names is not None:
            model.feature_names_in_ = np.asarray(contents.feature_names, dtype=object)
        return model
