"""What every fastmlp estimator shares: parameters, data preparation, fit plumbing.

:class:`BaseMLP` declares the hyperparameters in one table, checks them on
every call, prepares the data (validation, the training source, input
scaling), builds the backend configuration and hands the epochs to a
:class:`fastmlp._trainer.Trainer`.  A subclass says what its targets are:
how labels become the output layer's targets, and how outputs are scored
(:mod:`fastmlp._classifier`).
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from . import _io, backends
from ._history import History
from ._network import NetworkState
from ._optim import Optimizer
from ._registry import ACTIVATIONS, OPTIMIZERS, OUTPUTS
from ._scaling import SCALINGS, fit_scaling, scaled_copy, training_source
from ._schedule import AdaptiveSchedule, DecaySchedule
from ._split import hold_out
from ._trainer import BatchPlan, DivergenceError, Plateau, Trainer
from ._validation import (Flag, Fraction, Integer, LayerSizes, OneOf, Patience, Real, Spec,
                          check_feature_names, check_params, check_X, check_validation_data,
                          feature_names)

__all__ = ["BaseMLP", "TRAIN_ACC_KINDS", "DIVERGENCE", "SCHEDULES"]

TRAIN_ACC_KINDS = ("batch", "full", "none")
DIVERGENCE = ("raise", "warn")
SCHEDULES = ("decay", "adaptive")


class BaseMLP(BaseEstimator):
    """Base of the estimators; see :class:`fastmlp.MLPClassifier` for the parameters."""

    #: Every hyperparameter and how it is checked, in the constructor's order.
    _parameters = {
        "hidden_layer_sizes": LayerSizes(), "activation": OneOf(ACTIVATIONS),
        "output": OneOf(OUTPUTS), "epochs": Integer(1), "batch_size": Integer(1),
        "learning_rate": Real(positive=True), "lr_decay": Real(),
        "schedule": OneOf(SCHEDULES), "momentum": Real(),
        "optimizer": OneOf(OPTIMIZERS), "rho": Real(), "beta_1": Real(), "beta_2": Real(),
        "epsilon": Real(positive=True), "l2": Real(), "l1": Real(),
        "init_factor": Real(positive=True), "shuffle": Flag(), "scaling": OneOf(SCALINGS),
        "train_accuracy": OneOf(TRAIN_ACC_KINDS), "eval_period": Integer(1),
        "early_stopping": Flag(), "validation_fraction": Fraction(),
        "n_iter_no_change": Patience(), "tol": Real(), "warm_start": Flag(),
        "backend": OneOf(backends.BACKENDS), "n_threads": Integer(1, optional=True),
        "divergence": OneOf(DIVERGENCE), "random_state": Spec(), "verbose": Flag(),
    }
    #: Parameters that fix the network and its state: partial_fit refuses changes.
    _structural = ("hidden_layer_sizes", "activation", "output", "scaling", "optimizer")

    def __init__(self, hidden_layer_sizes=(70, 30), *, activation="sigmoid",
                 output="sigmoid", epochs=35, batch_size=500,
                 learning_rate=0.001, lr_decay=1e-6, schedule="decay", momentum=5e-5,
                 optimizer="sgd", rho=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 l2=0.01, l1=0.0, init_factor=2.0, shuffle=True, scaling="standard",
                 train_accuracy="batch", eval_period=1, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, warm_start=False,
                 backend="compiled", n_threads=None, divergence="raise", random_state=None,
                 verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output = output
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.schedule = schedule
        self.momentum = momentum
        self.optimizer = optimizer
        self.rho = rho
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.l2 = l2
        self.l1 = l1
        self.init_factor = init_factor
        self.shuffle = shuffle
        self.scaling = scaling
        self.train_accuracy = train_accuracy
        self.eval_period = eval_period
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.backend = backend
        self.n_threads = n_threads
        self.divergence = divergence
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ public API
    def fit(self, X, y, validation_data=None, callback=None):
        """Train a network on (X, y) for ``epochs`` epochs, or until the
        no-improvement rule or the callback stops it.

        Any earlier training is discarded: the weights are drawn afresh
        from ``random_state`` (use :meth:`partial_fit`, or ``warm_start``, to
        continue).  With ``warm_start`` a fitted model trains ``epochs`` more
        epochs from its weights, optimiser state, learning-rate schedule and
        input scaling, appending to ``history_``.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            Any real dtype and memory layout; never modified.  A data frame
            with string column names sets ``feature_names_in_``.
        y : array-like (n_samples,)
            The targets (for a classifier: labels of any sortable type, at
            least two classes).
        validation_data : (X_val, y_val), optional
            Scored every epoch into ``history_.val_score`` and
            ``history_.val_loss``, and every ``eval_period`` epochs into
            ``history_.test_acc``.  With ``early_stopping`` these are the
            data it watches, and nothing is held out of (X, y).
        callback : callable, optional
            Called after every batch as ``callback(epoch, batch, n_batches,
            cost)`` and after every epoch as ``callback(epoch, None,
            n_batches, record)`` with the epoch's history record (progress
            bars, early inspection).  Epochs count from 0.  Returning False
            (exactly; None goes on) or raising :class:`fastmlp.StopTraining`
            ends the fit after that batch or epoch, which returns normally;
            ``history_.stopped`` says where.

        Returns
        -------
        self

        Raises
        ------
        DivergenceError
            When a batch cost or a weight becomes NaN or infinite and
            ``divergence="raise"``; the model keeps the last finite weights.
        KeyboardInterrupt
            Passed on after the model was left with the weights of the last
            completed batch; ``history_.stopped`` says where.
        """
        p = self._check_params()
        warm = bool(p["warm_start"]) and "_state" in self.__dict__
        if warm:
            self._check_unchanged(p, "warm_start: ", "set warm_start=False to fit a new network")
        self._params = p
        self._check_feature_names(X, reset=not warm)
        X = check_X(X)
        y = self._check_targets(y, X.shape[0])
        if warm:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"warm_start: X has {X.shape[1]} features, but the fitted "
                                 f"model has {self.n_features_in_}; set warm_start=False to "
                                 "fit a new network")
            self._check_outputs(y, "warm_start: ")
        val = self._check_validation(validation_data, X.shape[1])
        y_all = y
        if p["early_stopping"] and val is None:
            X, y, val = self._hold_out(X, y)
        if not warm:               # the model changes only once the data are accepted
            self._start(X.shape[1], self._outputs_for(y_all))
        src = training_source(X)
        if not warm:
            self.mean_, self.scale_ = fit_scaling(src, p["scaling"])
        self._train(src, y, p["epochs"], val, callback, warn_level=3, new_run=True)
        return self

    def _partial_fit(self, X, y, outputs_from, validation_data, callback):
        """One more epoch on (X, y); ``outputs_from(y)`` sets the outputs of a
        first call, and is checked against them on later calls."""
        first = not hasattr(self, "_state")
        checked = self._check_params()   # every call: a bad value set since is named
        if checked["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True (nor does "
                             "scikit-learn): early stopping holds out part of a fit's data and "
                             "puts back the best epoch at its end, but partial_fit trains one "
                             "epoch per call.  Set early_stopping=False; validation_data "
                             "still records val_score and val_loss every call")
        if not first:
            self._check_unchanged(checked, "partial_fit: ", "call fit to start afresh")
        self._params = checked           # later calls use rates, lambdas, batch size set since
        self._check_feature_names(X, reset=first)
        X = check_X(X, n_features=None if first else self.n_features_in_)
        y = self._check_targets(y, X.shape[0])
        n_outputs = outputs_from(y)
        val = self._check_validation(validation_data, X.shape[1])
        if first:
            self._start(X.shape[1], n_outputs)
        src = training_source(X)
        if first:
            self.mean_, self.scale_ = fit_scaling(src, checked["scaling"])
        self._train(src, y, 1, val, callback, warn_level=4, new_run=False)
        return self

    def predict_outputs(self, X):
        """Raw outputs of the output layer, (n_samples, n_outputs) float32."""
        self._check_fitted()
        self._check_feature_names(X, reset=False)
        Xs = scaled_copy(check_X(X, n_features=self.n_features_in_), self.mean_, self.scale_)
        _, blas = self._backend_class().thread_plan(self._params["n_threads"])
        if blas is None:
            return self._outputs(Xs)
        with threadpool_limits(limits=blas, user_api="blas"):
            return self._outputs(Xs)

    def loss_and_gradients(self, X, y):
        """Loss, regularisation cost and gradient of the batch (X, y) at the
        current weights, computed by one step of the model's backend.

        Returns ``(cost, reg, gradients)`` with one ``(n_out, 1 + n_in)``
        float32 gradient per weight matrix (bias in column 0), summed over the
        batch and regularised as in training.  The weights are not changed.
        For checking the maths (finite differences, the Keras twin).
        """
        self._check_fitted()
        self._check_feature_names(X, reset=False)
        Xs = scaled_copy(check_X(X, n_features=self.n_features_in_), self.mean_, self.scale_)
        Y, _ = self._targets(self._check_targets(y, Xs.shape[0]))
        p = self._params
        threads, blas = self._backend_class().thread_plan(p["n_threads"])
        config = backends.BackendConfig(activation=p["activation"], output=p["output"],
                                        l2=p["l2"], l1=p["l1"], n_threads=threads)
        with threadpool_limits(limits=blas, user_api="blas"):
            return backends.loss_and_gradients(p["backend"], self.coefs_, Xs, Y, config)

    def save(self, path):
        """Write the fitted model to ``path`` as a pickle-free .npz file, atomically.

        Holds the weights, the optimiser state, architecture, hyperparameters,
        input scaling, the outputs' labels and a format version;
        :func:`fastmlp.load` reads it back.  The history is not saved.
        """
        self._check_fitted()
        params = self.get_params()
        params["hidden_layer_sizes"] = list(self._params["hidden_layer_sizes"])
        rs = params.get("random_state")
        if rs is not None and not isinstance(rs, (int, np.integer)):
            params["random_state"] = None   # a Generator is not data
        return _io.save(path, params, self._state, self.classes_, self.mean_, self.scale_,
                        getattr(self, "feature_names_in_", None))

    @classmethod
    def _from_model_file(cls, name, contents):
        """The fitted estimator a model file describes (:func:`fastmlp.load`)."""
        params = dict(contents.params)
        if "hidden_layer_sizes" in params:
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
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
        model._set_outputs(contents.classes)
        model._set_network(contents.state)
        model.mean_, model.scale_ = contents.mean, contents.scale
        model.validation_scores_ = None        # not saved, like the history
        if contents.feature_names is not None:
            model.feature_names_in_ = np.asarray(contents.feature_names, dtype=object)
        return model

    # --------------------------------------------------------- fitted state
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

    def _fitted_state(self):
        try:
            return self.__dict__["_state"]
        except KeyError:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet") from None

    def _check_fitted(self):
        if "_state" not in self.__dict__:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit "
                                 "first")

    # ------------------------------------------------------------ internals
    def _check_params(self):
        """The hyperparameters, checked, with ``optimizer`` as an Optimizer."""
        p = check_params(self._parameters, self)
        try:
            p["optimizer"] = Optimizer.checked(Optimizer(
                p["optimizer"], float(self.rho), float(self.beta_1), float(self.beta_2),
                float(self.epsilon)))
        except ValueError as exc:
            raise ValueError(f"{exc} (optimizer {self.optimizer!r})") from None
        return p

    def _check_unchanged(self, checked, what, remedy):
        """Refuse a change of the parameters that fix the network since it was fitted."""
        fixed = [k for k in self._structural if checked[k] != self._params[k]]
        if fixed:
            raise ValueError(f"{what}{', '.join(fixed)} changed since the model was fitted; "
                             f"they fix the network and its state ({remedy})")

    def _check_feature_names(self, X, reset, name="X"):
        """Set (``reset``) or check ``feature_names_in_`` from a data frame's columns."""
        if reset:
            names = feature_names(X)
            if names is not None:
                self.feature_names_in_ = names
            else:
                self.__dict__.pop("feature_names_in_", None)
        else:
            check_feature_names(getattr(self, "feature_names_in_", None), X,
                                type(self).__name__, name)

    def _check_validation(self, validation_data, n_features):
        """``(X_val, y_val)`` checked (not yet scaled), or None."""
        if validation_data is None:
            return None
        Xv, yv = check_validation_data(validation_data)
        if Xv is not None:
            self._check_feature_names(Xv, reset=False, name="validation X")
        Xv = check_X(Xv, "validation X", n_features)
        return Xv, self._check_targets(yv, Xv.shape[0], "validation y")

    def _hold_out(self, X, y):
        """The training part of (X, y) and the validation pair early stopping
        holds out (:func:`fastmlp._split.hold_out`)."""
        return hold_out(X, y, self._params["validation_fraction"], self._strata(y),
                        self.random_state)

    def _strata(self, y):
        """Labels to stratify the early-stopping split by; None: not stratified
        (a subclass hook, like ``_check_targets``, ``_outputs_for``,
        ``_check_outputs``, ``_targets``, ``_score_outputs`` and
        ``_loss_outputs``)."""
        return None

    def _backend_class(self):
        return backends.backend_class(self._params["backend"])

    def _start(self, n_features, n_outputs):
        """A fresh network for ``n_features`` inputs and ``n_outputs`` outputs."""
        p = self._params
        self._rng = np.random.default_rng(self.random_state)
        layers = (n_features,) + p["hidden_layer_sizes"] + (n_outputs,)
        self._set_network(NetworkState.fresh(layers, p["init_factor"], self._rng,
                                             p["optimizer"].name))

    def _set_network(self, state):
        """Adopt ``state`` as the fitted network (new, or read from a file)."""
        self._state = state
        self.layers_ = state.layers
        self.n_layers_ = len(state.layers)
        self.n_outputs_ = state.layers[-1]
        self.out_activation_ = self._params["output"]
        self.n_features_in_ = state.layers[0]
        if not hasattr(self, "_rng") or self._rng is None:
            self._rng = np.random.default_rng(self.random_state)
        self.history_ = History(self._params["train_accuracy"])

    def _outputs(self, Xs):
        """Network outputs for scaled rows (threads as the caller set them)."""
        p = self._params
        cls = self._backend_class()
        out = np.empty((Xs.shape[0], self.layers_[-1]), np.float32)
        config = backends.BackendConfig(activation=p["activation"], output=p["output"],
                                        n_threads=cls.thread_plan(p["n_threads"])[0])
        cls.predict_proba(Xs, self.coefs_, out, config)
        return out

    def _train(self, src, y, epochs, val, callback, warn_level, new_run):
        """``epochs`` epochs on the training source ``src`` and targets ``y``,
        scored on ``val`` (checked ``(X_val, y_val)`` or None) every epoch; a
        divergence warning points ``warn_level`` frames up (the user's call).
        A ``new_run`` (fit) starts the no-improvement count afresh; partial_fit
        continues it."""
        p = self._params
        Y, y_eval = self._targets(y)
        if val is not None:
            val = (scaled_copy(val[0], self.mean_, self.scale_),
                   self._targets(val[1], "validation y")[1])
        state, n = self._state, src.shape[0]
        if p["schedule"] == "adaptive":
            schedule = AdaptiveSchedule(state, p["learning_rate"])
        else:
            state.next_rate = None
            schedule = DecaySchedule(p["learning_rate"], p["lr_decay"])
        if p["early_stopping"]:
            monitor = Plateau("val_score", p["n_iter_no_change"], p["tol"], maximize=True,
                              keep_best=True)
        else:
            prior = state.plateau if not new_run else None
            monitor = Plateau("train_loss", p["n_iter_no_change"], p["tol"],
                              state=prior if (prior or {}).get("key") == "train_loss" else None)
        cls = self._backend_class()
        threads, blas = cls.thread_plan(p["n_threads"])
        plan = BatchPlan(n, p["batch_size"], p["shuffle"], self._rng)
        config = backends.BackendConfig(
            activation=p["activation"], output=p["output"], optimizer=p["optimizer"],
            l2=p["l2"], l1=p["l1"], momentum=p["momentum"], batch_size=plan.batch,
            n_threads=threads, input_scaling=(self.mean_, self.scale_))
        full = []          # the scaled training set, made once if "full" asks

        def evaluate(due, correct):
            record = {}
            if p["train_accuracy"] == "batch":
                record["train_acc"] = correct / n
            elif p["train_accuracy"] == "full" and due:
                if not full:
                    full.append(scaled_copy(src, self.mean_, self.scale_))
                record["train_acc"] = self._score_outputs(self._outputs(full[0]), y_eval)
            if val is not None:
                out = self._outputs(val[0])
                record["val_score"] = self._score_outputs(out, val[1])
                record["val_loss"] = self._loss_outputs(out, val[1])
                if due:
                    record["test_acc"] = record["val_score"]
            return record

        first_epoch = len(self.history_)
        with threadpool_limits(limits=blas, user_api="blas"):
            backend = cls(src, Y, state, config)
            trainer = Trainer(backend, state, self.history_, plan, p["eval_period"], evaluate,
                              callback, bool(self.verbose))
            try:
                trainer.run(schedule, epochs, monitor)
            except DivergenceError as exc:
                if p["divergence"] == "raise":
                    raise
                warnings.warn(str(exc), RuntimeWarning, stacklevel=warn_level)
            finally:
                self.validation_scores_ = (list(self.history_.val_score[first_epoch:])
                                           if p["early_stopping"] else None)
