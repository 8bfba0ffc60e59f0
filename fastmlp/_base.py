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
from ._trainer import BatchPlan, DivergenceError, Trainer, lr_schedule
from ._validation import (Flag, Integer, LayerSizes, OneOf, Real, Spec, check_params, check_X,
                          check_validation_data)

__all__ = ["BaseMLP", "TRAIN_ACC_KINDS", "DIVERGENCE"]

TRAIN_ACC_KINDS = ("batch", "full", "none")
DIVERGENCE = ("raise", "warn")


class BaseMLP(BaseEstimator):
    """Base of the estimators; see :class:`fastmlp.MLPClassifier` for the parameters."""

    #: Every hyperparameter and how it is checked, in the constructor's order.
    _parameters = {
        "hidden_layer_sizes": LayerSizes(), "activation": OneOf(ACTIVATIONS),
        "output": OneOf(OUTPUTS), "epochs": Integer(1), "batch_size": Integer(1),
        "learning_rate": Real(positive=True), "lr_decay": Real(), "momentum": Real(),
        "optimizer": OneOf(OPTIMIZERS), "rho": Real(), "beta_1": Real(), "beta_2": Real(),
        "epsilon": Real(positive=True), "l2": Real(), "l1": Real(),
        "init_factor": Real(positive=True), "shuffle": Flag(), "scaling": OneOf(SCALINGS),
        "train_accuracy": OneOf(TRAIN_ACC_KINDS), "eval_period": Integer(1),
        "backend": OneOf(backends.BACKENDS), "n_threads": Integer(1, optional=True),
        "divergence": OneOf(DIVERGENCE), "random_state": Spec(), "verbose": Flag(),
    }
    #: Parameters that fix the network and its state: partial_fit refuses changes.
    _structural = ("hidden_layer_sizes", "activation", "output", "scaling", "optimizer")

    def __init__(self, hidden_layer_sizes=(70, 30), *, activation="sigmoid",
                 output="sigmoid", epochs=35, batch_size=500,
                 learning_rate=0.001, lr_decay=1e-6, momentum=5e-5,
                 optimizer="sgd", rho=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 l2=0.01, l1=0.0, init_factor=2.0, shuffle=True, scaling="standard",
                 train_accuracy="batch", eval_period=1, backend="compiled",
                 n_threads=None, divergence="raise", random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output = output
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
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
        self.backend = backend
        self.n_threads = n_threads
        self.divergence = divergence
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ public API
    def fit(self, X, y, validation_data=None, callback=None):
        """Train a new network on (X, y) for ``epochs`` epochs.

        Any earlier training is discarded: the weights are drawn afresh
        from ``random_state`` (use :meth:`partial_fit` to continue).

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            Any real dtype and memory layout; never modified.
        y : array-like (n_samples,)
            The targets (for a classifier: labels of any sortable type, at
            least two classes).
        validation_data : (X_val, y_val), optional
            Evaluated every ``eval_period`` epochs into ``history_.test_acc``.
        callback : callable, optional
            Called after every batch as ``callback(epoch, batch, n_batches,
            cost)`` and after every epoch as ``callback(epoch, None,
            n_batches, record)`` with the epoch's history record (progress
            bars, early inspection).  Epochs count from 0.

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
        p = self._params = self._check_params()
        X = check_X(X)
        y = self._check_targets(y, X.shape[0])
        self._start(X.shape[1], self._outputs_for(y))
        src = training_source(X)
        self.mean_, self.scale_ = fit_scaling(src, p["scaling"])
        self._train(src, y, p["epochs"], validation_data, callback, warn_level=3)
        return self

    def _partial_fit(self, X, y, outputs_from, validation_data, callback):
        """One more epoch on (X, y); ``outputs_from(y)`` sets the outputs of a
        first call, and is checked against them on later calls."""
        first = not hasattr(self, "_state")
        checked = self._check_params()   # every call: a bad value set since is named
        if not first:
            fixed = [k for k in self._structural if checked[k] != self._params[k]]
            if fixed:
                raise ValueError(f"partial_fit: {', '.join(fixed)} changed since the first "
                                 "call; they fix the network and its state (call fit to "
                                 "start afresh)")
        self._params = checked           # later calls use rates, lambdas, batch size set since
        X = check_X(X, n_features=None if first else self.n_features_in_)
        y = self._check_targets(y, X.shape[0])
        n_outputs = outputs_from(y)
        if first:
            self._start(X.shape[1], n_outputs)
        src = training_source(X)
        if first:
            self.mean_, self.scale_ = fit_scaling(src, checked["scaling"])
        self._train(src, y, 1, validation_data, callback, warn_level=4)
        return self

    def predict_outputs(self, X):
        """Raw outputs of the output layer, (n_samples, n_outputs) float32."""
        self._check_fitted()
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
        return _io.save(path, params, self._state, self.classes_, self.mean_, self.scale_)

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
        self.n_features_in_ = state.layers[0]
        if not hasattr(self, "_rng") or self._rng is None:
            self._rng = np.random.default_rng(self.random_state)
        self.history_ = History(self._params["train_accuracy"])

    def _validation(self, validation_data):
        if validation_data is None:
            return None
        Xv, yv = check_validation_data(validation_data)
        Xv = check_X(Xv, "validation X", self.n_features_in_)
        yv = self._check_targets(yv, Xv.shape[0], "validation y")
        _, y_eval = self._targets(yv, "validation y")
        return scaled_copy(Xv, self.mean_, self.scale_), y_eval

    def _outputs(self, Xs):
        """Network outputs for scaled rows (threads as the caller set them)."""
        p = self._params
        cls = self._backend_class()
        out = np.empty((Xs.shape[0], self.layers_[-1]), np.float32)
        config = backends.BackendConfig(activation=p["activation"], output=p["output"],
                                        n_threads=cls.thread_plan(p["n_threads"])[0])
        cls.predict_proba(Xs, self.coefs_, out, config)
        return out

    def _train(self, src, y, epochs, validation_data, callback, warn_level):
        """``epochs`` epochs on the training source ``src`` and targets ``y``;
        a divergence warning points ``warn_level`` frames up (the user's call)."""
        p = self._params
        Y, y_eval = self._targets(y)
        val = self._validation(validation_data)
        state, n = self._state, src.shape[0]
        rates = lr_schedule(p["learning_rate"], p["lr_decay"], epochs, state.epochs)
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
            if val is not None and due:
                record["test_acc"] = self._score_outputs(self._outputs(val[0]), val[1])
            return record

        with threadpool_limits(limits=blas, user_api="blas"):
            backend = cls(src, Y, state, config)
            trainer = Trainer(backend, state, self.history_, plan, p["eval_period"], evaluate,
                              callback, bool(self.verbose))
            try:
                trainer.run(rates)
            except DivergenceError as exc:
                if p["divergence"] == "raise":
                    raise
                warnings.warn(str(exc), RuntimeWarning, stacklevel=warn_level)
