"""What every fastmlp estimator shares: parameters, data preparation, fit plumbing.

:class:`BaseMLP` declares the hyperparameters in one table
(:mod:`fastmlp._params`), checks them on every call, prepares the data
(validation, sample weights, the training source, input scaling, the
early-stopping hold-out), builds the backend configuration and hands the
epochs to a :class:`fastmlp._trainer.Trainer`.  A subclass says what its
targets are: how y becomes the output layer's targets, which output function
suits them, and how outputs are scored (:mod:`fastmlp._classifier`,
:mod:`fastmlp._regressor`).  The fitted attributes and the model file are
:class:`fastmlp._fitted.FittedAttributes`'.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from . import backends
from ._export import ExportMixin
from ._fitted import FittedAttributes
from ._history import History
from ._network import INITS, NetworkState
from ._optim import Optimizer
from ._params import (BatchSize, Flag, Fraction, Integer, LayerSizes, OneOf, Param, Patience,
                      Real, Spec, check_params, make_init)
from ._registry import ACTIVATIONS, OPTIMIZERS
from ._scaling import SCALINGS, fit_scaling, scaled_copy, training_source
from ._sparse import SparseRows, as_rows, is_sparse, mostly_zero
from ._schedule import AdaptiveSchedule, DecaySchedule, SampleClock
from ._split import hold_out
from ._threads import blas_threads
from ._trainer import BatchPlan, DivergenceError, Plateau, PooledPlateau, Trainer
from ._validation import (check_feature_names, check_sample_weight, check_validation_data,
                          check_X, feature_names)

__all__ = ["BaseMLP", "TRAIN_ACC_KINDS", "DIVERGENCE", "SCHEDULES", "AUTO_BATCH"]

TRAIN_ACC_KINDS = ("batch", "full", "none")
DIVERGENCE = ("raise", "warn")
SCHEDULES = ("decay", "adaptive")
INPUT_FORMATS = ("auto", "dense", "sparse")
#: batch_size="auto" means min(AUTO_BATCH, n_samples), as in scikit-learn.
AUTO_BATCH = 200


class BaseMLP(ExportMixin, FittedAttributes, BaseEstimator):
    """Base of the estimators; see :class:`fastmlp.MLPClassifier` for the parameters."""

    #: Every hyperparameter, how it is checked and its default, in the
    #: constructor's order (a subclass adds its own and sets ``output``'s).
    _parameters = {
        "hidden_layer_sizes": Param(LayerSizes(), (100,)),
        "activation": Param(OneOf(ACTIVATIONS), "relu"),
        "output": Param(OneOf(("auto",)), "auto"),
        "epochs": Param(Integer(1), 200),
        "batch_size": Param(BatchSize(), "auto"),
        "learning_rate": Param(Real(positive=True), 0.001),
        "lr_decay": Param(Real(), 0.0),
        "schedule": Param(OneOf(SCHEDULES), "decay"),
        "samples_per_epoch": Param(Integer(1, optional=True), None),
        "momentum": Param(Real(), 0.0),
        "optimizer": Param(OneOf(OPTIMIZERS), "adam"),
        "rho": Param(Real(), 0.9),
        "beta_1": Param(Real(), 0.9),
        "beta_2": Param(Real(), 0.999),
        "epsilon": Param(Real(positive=True), 1e-7),
        "l2": Param(Real(), 1e-4),
        "l1": Param(Real(), 0.0),
        "init": Param(OneOf(INITS), "glorot"),
        "init_factor": Param(Real(positive=True), 2.0),
        "shuffle": Param(Flag(), True),
        "scaling": Param(OneOf(SCALINGS), "auto"),
        "input_format": Param(OneOf(INPUT_FORMATS), "auto"),
        "train_accuracy": Param(OneOf(TRAIN_ACC_KINDS), "batch"),
        "eval_period": Param(Integer(1), 1),
        "early_stopping": Param(Flag(), False),
        "validation_fraction": Param(Fraction(), 0.1),
        "n_iter_no_change": Param(Patience(), 10),
        "tol": Param(Real(), 1e-4),
        "warm_start": Param(Flag(), False),
        "backend": Param(OneOf(backends.BACKENDS), "compiled"),
        "n_threads": Param(Integer(1, optional=True), None),
        "divergence": Param(OneOf(DIVERGENCE), "raise"),
        "random_state": Param(Spec(), None),
        "verbose": Param(Flag(), 0),
    }
    #: Parameters that fix the network and its state: partial_fit refuses changes.
    _structural = ("hidden_layer_sizes", "activation", "output", "scaling", "optimizer")

    __init__ = make_init(_parameters)

    # ------------------------------------------------------------ public API
    def fit(self, X, y, sample_weight=None, *, validation_data=None, callback=None):
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
        y : array-like (n_samples,) or (n_samples, n_outputs)
            The targets: class labels of any sortable type or a 0/1 label
            indicator matrix (multilabel) for a classifier, numbers for a
            regressor.
        sample_weight : array-like (n_samples,), optional
            Each sample's weight in the loss (>= 0, not all 0): the batch cost
            is ``sum_i w_i L_i`` and each sample's gradient is weighted alike.
            A classifier's ``class_weight`` multiplies in.  Never copied per
            batch; never modified.
        validation_data : (X_val, y_val) or (X_val, y_val, w_val), optional
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
        scaling = self._scaling_for(X)
        X = self._prepare(X)
        y = self._check_targets(y, X.shape[0])
        w = check_sample_weight(sample_weight, X.shape[0])
        if warm:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"warm_start: X has {X.shape[1]} features, but the fitted "
                                 f"model has {self.n_features_in_}; set warm_start=False to "
                                 "fit a new network")
            self._check_outputs(y, "warm_start: ")
        val = self._check_validation(validation_data, X.shape[1])
        y_all, w_all = y, w
        if p["early_stopping"] and val is None:
            X, y, w, val = self._hold_out(X, y, w)
        if not warm:               # the model changes only once the data are accepted
            self._start(X.shape[1], self._outputs_for(y_all, sample_weight=w_all))
        src = training_source(X)
        if not warm:
            self.mean_, self.scale_ = fit_scaling(src, scaling)
        self._train(src, y, w, p["epochs"], val, callback, warn_level=3, new_run=True)
        return self

    def _partial_fit(self, X, y, sample_weight, outputs_from, validation_data, callback):
        """One more epoch on (X, y); ``outputs_from(y, sample_weight)`` sets
        the outputs of a first call, and is checked against them on later
        calls."""
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
        scaling = self._scaling_for(X)
        X = self._prepare(X, n_features=None if first else self.n_features_in_)
        y = self._check_targets(y, X.shape[0])
        w = check_sample_weight(sample_weight, X.shape[0])
        n_outputs = outputs_from(y, w)
        val = self._check_validation(validation_data, X.shape[1])
        if first:
            self._start(X.shape[1], n_outputs)
        src = training_source(X)
        if first:
            self.mean_, self.scale_ = fit_scaling(src, scaling)
        self._train(src, y, w, 1, val, callback, warn_level=4, new_run=False)
        return self

    def predict_outputs(self, X):
        """Raw outputs of the output layer, (n_samples, n_outputs) float32."""
        self._check_fitted()
        self._check_feature_names(X, reset=False)
        Xs = self._scaled(self._prepare(X, n_features=self.n_features_in_, training=False))
        _, blas = self._backend_class().thread_plan(self._params["n_threads"], predict=True)
        with blas_threads(blas):
            return self._outputs(Xs)

    def loss_and_gradients(self, X, y, sample_weight=None):
        """Loss, regularisation cost and gradient of the batch (X, y) at the
        current weights, computed by one step of the model's backend
        (``sample_weight`` and a classifier's ``class_weight`` weigh the loss).

        Returns ``(cost, reg, gradients)`` with one ``(n_out, 1 + n_in)``
        float32 gradient per weight matrix (bias in column 0), summed over the
        batch and regularised as in training.  The weights are not changed.
        For checking the maths (finite differences, the Keras twin).
        """
        self._check_fitted()
        self._check_feature_names(X, reset=False)
        Xs = self._scaled(self._prepare(X, n_features=self.n_features_in_, training=False))
        y = self._check_targets(y, Xs.shape[0])
        w = self._loss_weights(y, check_sample_weight(sample_weight, Xs.shape[0]))
        Y, _ = self._targets(y)
        p = self._params
        threads, blas = self._backend_class().thread_plan(p["n_threads"])
        config = backends.BackendConfig(activation=p["activation"], output=self.out_activation_,
                                        l2=p["l2"], l1=p["l1"], n_threads=threads,
                                        targets=self._backend_targets(), sample_weight=w,
                                        input_scaling=self._folded(Xs))
        with blas_threads(blas):
            return backends.loss_and_gradients(p["backend"], self.coefs_, Xs, Y, config)

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
        """``(X_val, y_val, w_val)`` checked (not yet scaled; w_val may be
        None), or None."""
        if validation_data is None:
            return None
        Xv, yv, wv = check_validation_data(validation_data)
        if Xv is not None:
            self._check_feature_names(Xv, reset=False, name="validation X")
        Xv = self._prepare(Xv, "validation X", n_features)
        yv = self._check_targets(yv, Xv.shape[0], "validation y")
        return Xv, yv, check_sample_weight(wv, Xv.shape[0], "validation sample_weight")

    def _prepare(self, X, name="X", n_features=None, training=True):
        """X checked, as the backends read it: a dense array, or
        :class:`fastmlp._sparse.SparseRows` for a sparse matrix (never
        densified) and, as ``input_format`` says, for mostly-zero dense X.
        Outside training (``training=False``) "auto" keeps a dense X dense:
        one forward pass does not earn back the conversion."""
        fmt, owner = self._params["input_format"], type(self).__name__
        if is_sparse(X):
            if fmt == "dense":
                raise ValueError(f"{name} is a sparse matrix, but input_format='dense'; "
                                 "fastmlp never densifies a sparse matrix: use "
                                 "input_format='auto' or 'sparse' (or pass X.toarray())")
            return as_rows(X, name, n_features, owner)
        X = check_X(X, name, n_features, owner)
        if fmt == "sparse" or (fmt == "auto" and training and mostly_zero(X)):
            return SparseRows.from_dense(X)
        return X

    def _scaling_for(self, X):
        """The scaling to fit: ``scaling``, with "auto" resolved by the kind of
        X the user gave ("maxabs" for a sparse matrix, else "standard")."""
        kind = self._params["scaling"]
        if kind == "auto":
            kind = "maxabs" if is_sparse(X) else "standard"
        return kind

    def _scaled(self, X):
        """Prepared X ready for a forward pass: a dense array scaled (a new
        float32 copy); sparse rows as they are (the scaling is folded in)."""
        return X if isinstance(X, SparseRows) else scaled_copy(X, self.mean_, self.scale_)

    def _folded(self, X):
        """The input scaling a backend folds into the first layer: for sparse
        rows, which are never scaled; None for scaled dense rows."""
        return (self.mean_, self.scale_) if isinstance(X, SparseRows) else None

    def _hold_out(self, X, y, w):
        """The training part of (X, y, w) and the validation triple early
        stopping holds out (:func:`fastmlp._split.hold_out`)."""
        return hold_out(X, y, w, self._params["validation_fraction"], self._strata(y),
                        self.random_state)

    def _strata(self, y):
        """Labels to stratify the early-stopping split by; None: not stratified
        (a subclass hook, like ``_check_targets``, ``_outputs_for``,
        ``_set_target_kind``, ``_check_outputs``, ``_targets``, ``_loss_weights``,
        ``_score_outputs`` and ``_loss_outputs``)."""
        return None

    #: What the targets are: "labels" (one class per sample), "multilabel"
    #: (a 0/1 indicator matrix) or "continuous" (regression); set in fit.
    _target_kind = "labels"
    #: The output function "auto" stands for, per kind of targets.
    _AUTO_OUTPUT = {"labels": "softmax", "multilabel": "sigmoid", "continuous": "identity"}

    def _output_function(self):
        """The output layer's function: ``output``, or what "auto" means for
        the fitted targets; ValueError when it cannot train on them."""
        kind, output = self._target_kind, self._params["output"]
        if output == "auto":
            return self._AUTO_OUTPUT[kind]
        if kind == "multilabel" and output != "sigmoid":
            raise ValueError(f"output={output!r} cannot train on multilabel targets (a 0/1 "
                             "indicator matrix): each label needs its own sigmoid output; use "
                             "output='sigmoid' or 'auto'")
        return output

    def _backend_targets(self):
        """How the backend reads the targets: one label per row, or the matrix."""
        return "labels" if self._target_kind == "labels" else "dense"

    def _loss_weights(self, y, sample_weight):
        """The weight of each sample in the loss (a hook: the classifier
        multiplies its class weights in); None when all are 1."""
        return sample_weight

    def _backend_class(self):
        return backends.backend_class(self._params["backend"])

    def _start(self, n_features, n_outputs):
        """A fresh network for ``n_features`` inputs and ``n_outputs`` outputs."""
        p = self._params
        self._rng = np.random.default_rng(self.random_state)
        layers = (n_features,) + p["hidden_layer_sizes"] + (n_outputs,)
        self._set_network(NetworkState.fresh(layers, p["init_factor"], self._rng,
                                             p["optimizer"].name, p["init"], p["activation"]))

    def _set_network(self, state):
        """Adopt ``state`` as the fitted network (new, or read from a file)."""
        self._state = state
        self.layers_ = state.layers
        self.n_layers_ = len(state.layers)
        self.n_outputs_ = state.layers[-1]
        self.out_activation_ = self._output_function()
        self.n_features_in_ = state.layers[0]
        if not hasattr(self, "_rng") or self._rng is None:
            self._rng = np.random.default_rng(self.random_state)
        self.history_ = History(self._params["train_accuracy"])

    def _outputs(self, Xs):
        """Network outputs for scaled rows (threads as the caller set them)."""
        p = self._params
        cls = self._backend_class()
        out = np.empty((Xs.shape[0], self.layers_[-1]), np.float32)
        config = backends.BackendConfig(activation=p["activation"], output=self.out_activation_,
                                        n_threads=cls.thread_plan(p["n_threads"])[0],
                                        input_scaling=self._folded(Xs))
        cls.predict_proba(Xs, self.coefs_, out, config)
        return out

    def _train(self, src, y, w, epochs, val, callback, warn_level, new_run):
        """``epochs`` epochs on the training source ``src``, targets ``y`` and
        sample weights ``w`` (or None), scored on ``val`` (checked ``(X_val,
        y_val, w_val)`` or None) every epoch; a divergence warning points
        ``warn_level`` frames up (the user's call).  A ``new_run`` (fit)
        starts the no-improvement count afresh; partial_fit continues it."""
        p = self._params
        Y, y_eval = self._targets(y)
        w = self._loss_weights(y, w)
        if val is not None:
            val = (self._scaled(val[0]),
                   self._targets(val[1], "validation y")[1], val[2])
        state, n = self._state, src.shape[0]
        if p["schedule"] == "adaptive":
            schedule = AdaptiveSchedule(state, p["learning_rate"])
        else:
            state.next_rate = None
            schedule = DecaySchedule(p["learning_rate"], p["lr_decay"])
        every = p["samples_per_epoch"]
        if every is not None:                  # epochs counted in samples (streamed blocks)
            schedule = SampleClock(schedule, state, every)

        def rule(key, **kw):
            if every is None:
                return Plateau(key, p["n_iter_no_change"], p["tol"], **kw)
            return PooledPlateau(key, p["n_iter_no_change"], p["tol"], every, state, **kw)
        if p["early_stopping"]:
            monitor = rule("val_score", maximize=True, keep_best=True)
        else:
            prior = state.plateau if not new_run else None
            monitor = rule("train_loss",
                           state=prior if (prior or {}).get("key") == "train_loss" else None)
        cls = self._backend_class()
        threads, blas = cls.thread_plan(p["n_threads"])
        batch = min(AUTO_BATCH, n) if p["batch_size"] == "auto" else p["batch_size"]
        plan = BatchPlan(n, batch, p["shuffle"], self._rng)
        config = backends.BackendConfig(
            activation=p["activation"], output=self.out_activation_, optimizer=p["optimizer"],
            l2=p["l2"], l1=p["l1"], momentum=p["momentum"], batch_size=plan.batch,
            n_threads=threads, input_scaling=(self.mean_, self.scale_),
            targets=self._backend_targets(), sample_weight=w, keep_steps=False)
        full = []          # the scaled training set, made once if "full" asks

        def evaluate(due, correct):
            record = {}
            if p["train_accuracy"] == "batch" and self._target_kind != "continuous":
                record["train_acc"] = correct / n        # a regressor has no accuracy
            elif p["train_accuracy"] == "full" and due:
                if not full:
                    full.append(self._scaled(src))
                record["train_acc"] = self._score_outputs(self._outputs(full[0]), y_eval, w)
            if val is not None:
                out = self._outputs(val[0])
                record["val_score"] = self._score_outputs(out, val[1], val[2])
                record["val_loss"] = self._loss_outputs(out, val[1], val[2])
                if due:
                    record["test_acc"] = record["val_score"]
            return record

        first_epoch = len(self.history_)
        with blas_threads(blas):
            backend = cls(src, Y, state, config)
            trainer = Trainer(backend, state, self.history_, plan, p["eval_period"], evaluate,
                              callback, bool(self.verbose))
            self._live_backend = backend      # coefs_ read in a callback syncs through it
            try:
                trainer.run(schedule, epochs, monitor)
            except DivergenceError as exc:
                if p["divergence"] == "raise":
                    raise
                warnings.warn(str(exc), RuntimeWarning, stacklevel=warn_level)
            finally:
                del self._live_backend
                self.validation_scores_ = (list(self.history_.val_score[first_epoch:])
                                           if p["early_stopping"] else None)
