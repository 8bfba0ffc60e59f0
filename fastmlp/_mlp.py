"""The MLP classifier: data preparation, the epoch loop and the history.

Flow: data -> model (weights, layout) -> backend kernels -> history.  This
module validates and standardises the data, initialises the weights, runs
the epoch loop and records the history; a backend object (NumPy or compiled)
does every per-batch computation.  The model does not know which backend it
drives beyond its name.
"""

import math
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from . import _numpy_backend
from ._history import History
from ._optim import OPTIMIZERS, Optimizer
from ._validation import (check_X, check_choice, check_nonneg_float,
                          check_positive_int, check_validation_data, check_y)

__all__ = ["MLPClassifier", "lr_schedule", "DivergenceError"]

BACKENDS = ("compiled", "numpy")
TRAIN_ACC_KINDS = ("batch", "full", "none")
SCALINGS = ("standard", "minmax", "none")
DIVERGENCE = ("raise", "warn")


class DivergenceError(FloatingPointError):
    """Training diverged: a batch cost or a weight became NaN or infinite.

    The model keeps the weights (and optimiser state) of the last batch whose
    update left every weight finite; ``history_.stopped`` says where."""


class _Diverged(Exception):
    """Internal: batch ``batch`` of the epoch gave a non-finite cost or weight."""

    def __init__(self, batch, cost):
        super().__init__(batch)
        self.batch, self.cost = batch, cost


class _Snapshot:
    """Copies of a model's weights and optimiser state, taken at the start of
    every epoch (about three times the weights' size, once per epoch); with
    the epoch's permutation they let the trainer rebuild the exact state
    after any batch of the epoch by replaying the batches before it."""

    def __init__(self, model):
        self.arrays = list(model.coefs_) + list(model._velocities) + list(model._states2 or ())
        self.copies = [np.empty_like(a) for a in self.arrays]     # filled by take()
        self.steps = None

    def take(self, steps):
        for a, c in zip(self.arrays, self.copies):
            np.copyto(c, a)
        self.steps = steps

    def restore(self):
        for a, c in zip(self.arrays, self.copies):
            np.copyto(a, c)


def _backend_module(name):
    """The module that provides ``Backend`` and ``predict_proba`` for a name."""
    if name == "numpy":
        return _numpy_backend
    if name == "compiled":
        from . import _kernels
        return _kernels
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")


def _thread_plan(backend, n_threads):
    """(threads for the backend's own slices, BLAS thread limit) for a fit.

    The compiled backend cuts each batch into one row slice per thread and
    calls single-threaded sgemm on each, so BLAS is limited to 1 thread while
    it runs with more than one slice.  The NumPy backend's only threads are
    BLAS's: ``n_threads`` limits them (None leaves BLAS as it is).
    """
    if backend == "compiled":
        from . import _kernels
        T = n_threads if n_threads is not None else _kernels.max_threads()
        T = T if _kernels.HAVE_OPENMP else 1
        return T, (1 if T > 1 else n_threads)
    return None, n_threads


def _standard_scaler_stats(X32):
    """Mean and scale as scikit-learn's StandardScaler computes them on the
    float32 values of X32 (uint8, float32 or float64, C-ordered), faster.

    Mean and population variance accumulate in double (a compiled two-pass
    loop, about 20x faster than StandardScaler.fit on MNIST); a feature whose
    variance is within rounding of zero (StandardScaler's bound
    n eps var + (n mean eps)^2) gets scale 1.  The tests check the result
    against StandardScaler.
    """
    from ._kernels import column_mean_var
    mean, var = column_mean_var(X32)
    n, eps = X32.shape[0], np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def batch_loss_and_gradients(mod, weights, X, Y, l2, l1, activation="sigmoid",
                             output="sigmoid"):
    """(loss, regularisation cost, gradients) of one batch, by a backend's kernels.

    ``mod`` is a backend module (its forward_layer, output_delta, hidden_delta,
    regularization_cost and gradient_update); X (scaled inputs) and Y (one-hot)
    fix the dtype, so the NumPy kernels also run this in float64.  The
    gradients come out of gradient_update with lr 1 and no momentum, applied
    to copies: the weights are not changed.  One (n_out, 1 + n_in) gradient
    per weight matrix, bias in column 0.
    """
    dtype, B, last = X.dtype, X.shape[0], len(weights) - 1
    A = [X] + [np.empty((B, W.shape[0]), dtype) for W in weights]
    D = [np.empty((B, W.shape[0]), dtype) for W in weights]
    T = [np.empty((B, W.shape[0]), dtype) for W in weights]
    for l, W in enumerate(weights):
        mod.forward_layer(A[l], W, A[l + 1], output if l == last else activation)
    cost, _ = mod.output_delta(A[-1], Y, D[-1], T[-1], output)
    reg = sum(mod.regularization_cost(W, l2, l1) for W in weights)
    for l in range(last, 0, -1):
        mod.hidden_delta(D[l], weights[l], A[l], D[l - 1], T[l - 1], activation)
    grads = []
    for l, W in enumerate(weights):
        Gw = np.empty((W.shape[0], W.shape[1] - 1), dtype)
        gb = np.empty(W.shape[0], dtype)
        mod.gradient_update(D[l], A[l], W.copy(), np.zeros_like(W), 1.0, l2, l1, 0.0,
                            Gw, gb, np.empty_like(Gw))
        grads.append(np.column_stack([gb, Gw]))
    return float(cost), float(reg), grads


def format_epoch(epoch, record, epochs=None):
    """One line summing up an epoch's history record (verbose output, CLI)."""
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {epoch + 1:3d}{total}", f"cost {record['cost']:10.4f}",
             f"reg share {record['reg_share']:.4f}"]
    if "train_acc" in record:
        parts.append(f"train acc {record['train_acc']:.4f}")
    if "test_acc" in record:
        parts.append(f"test acc {record['test_acc']:.4f}")
    parts += [f"lr {record['learning_rate']:.6g}", f"{record['epoch_time']:.3f} s"]
    return "  ".join(parts)


def lr_schedule(learning_rate, lr_decay, epochs, start_epoch=0):
    """Learning rate used in each epoch, as the seeds decay it.

    At the start of epoch ``e`` (counted from 0 over the model's life) the rate
    is divided by ``1 + lr_decay * e``.  With learning_rate 0.001 and lr_decay
    1e-6 the rate in the 35th epoch is 0.0009994051838157095, the figure the
    seeds print.  Returns a float64 array of length ``epochs`` for epochs
    ``start_epoch .. start_epoch + epochs - 1``.
    """
    rate = float(learning_rate)
    out = np.empty(epochs)
    for e in range(start_epoch + epochs):
        rate /= 1.0 + lr_decay * e
        if e >= start_epoch:
            out[e - start_epoch] = rate
    return out


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron with sigmoid units trained on the LogLoss.

    The network of the seeds: sigmoid hidden and output layers, binary
    cross-entropy summed over the output nodes and over the samples of a
    mini-batch ("LogLoss"), L2 and L1 regularisation of the non-bias weights,
    momentum, a learning rate that decays per epoch, and mini-batches drawn
    from a fresh permutation every epoch.  Inputs are standardised with
    statistics of the training data, and all arithmetic is float32.

    Each weight matrix is ``(n_out, 1 + n_in)`` with the bias weights in column
    0 (``coefs_``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (70, 30)
        Nodes per hidden layer; input and output sizes come from the data.
        Seeds: ``ay_nodes_layers = [0, 70, 30, 0]``.
    activation : {"sigmoid", "tanh", "relu"}, default "sigmoid"
        Activation of the hidden layers.  Each derivative is taken from the
        layer's output A: A (1 - A), 1 - A^2, [A > 0].
    output : {"sigmoid", "softmax"}, default "sigmoid"
        Output layer and loss: sigmoid + LogLoss (the seeds') or softmax +
        categorical cross-entropy (max-shifted, no log(0)).  Seeds:
        ``my_out_function`` / ``my_loss_function``.
    epochs : int, default 35
        Seeds: ``n_epochs``.
    batch_size : int, default 500
        Samples per mini-batch; the last batch of an epoch holds the
        remainder.  A batch size above the number of samples means one batch
        of all samples.  Seeds: ``n_size_mini_batch``.
    learning_rate : float, default 0.001
        Seeds: ``learn_rate``.
    lr_decay : float, default 1e-6
        At the start of epoch e the rate is divided by ``1 + lr_decay * e``.
        Seeds: ``decrease_const``.
    momentum : float, default 5e-5
        ``W -= lr G + momentum dW_prev``.  Seeds: ``mom_rate``.  Used by the
        "sgd" optimizer only.
    optimizer : {"sgd", "rmsprop", "adam"}, default "sgd"
        "sgd": the seeds' momentum rule above.  "rmsprop" and "adam": the
        rules of Keras's ``RMSprop`` and ``Adam`` (see ``rho``, ``beta_1``,
        ``beta_2``, ``epsilon``), applied to the regularised gradient of the
        summed batch cost, with ``learning_rate`` and its decay as the rate.
        Keras's defaults for both are learning_rate 0.001 and no decay.
    rho : float, default 0.9
        rmsprop: decay of the running mean of squared gradients.
    beta_1, beta_2 : float, default 0.9, 0.999
        adam: decays of the first and second moment estimates.
    epsilon : float, default 1e-7
        rmsprop and adam: the small constant of the denominator (Keras's
        placement: inside the square root for rmsprop, outside for adam).
    l2 : float, default 0.01
        L2 factor; adds ``l2/2 sum W^2`` to each batch cost.  Seeds:
        ``lambda2_reg``.
    l1 : float, default 0.0
        L1 factor; adds ``l1 sum |W|`` to each batch cost.  Seeds:
        ``lambda1_reg``.
    init_factor : float, default 2.0
        Initial weights are uniform in ``+-0.5 sqrt(1/n_in) init_factor``.
        Seeds: ``init_weight_fact`` with ``init_weight_meth = "sqrt_nodes"``.
    shuffle : bool, default True
        Draw a new permutation of the samples every epoch.  Seeds:
        ``b_shuffle_batches``.
    scaling : {"standard", "minmax", "none"}, default "standard"
        How inputs are scaled, with statistics of the training data only:
        "standard" subtracts the mean and divides by the standard deviation
        of each feature (the statistics of scikit-learn's ``StandardScaler``,
        the seeds' choice);
        "minmax" maps each feature's training range to [0, 1] (for MNIST
        pixels this is x/255 for every pixel that reaches 255); "none" leaves
        the inputs as they are.  Seeds: ``scaler1``/``scaler2``.
    train_accuracy : {"batch", "full", "none"}, default "batch"
        "batch": average the accuracy of each batch's own forward outputs
        during the epoch (cheap).  "full": predict the whole training set
        every ``eval_period`` epochs.  Seeds: ``b_predictions_train``.
    eval_period : int, default 1
        Epochs between full-set accuracy measurements (training set when
        ``train_accuracy="full"``, validation data when given).  Seeds:
        ``prediction_train_period`` / ``prediction_test_period``.
    backend : {"compiled", "numpy"}, default "compiled"
        Which kernels run the training step: the Cython/C kernels or the NumPy
        reference.  Both compute the same numbers.
    n_threads : int or None, default None
        Threads used during fit and predict.  The compiled backend splits each
        batch into one row slice per thread (OpenMP) and keeps BLAS at one
        thread; the NumPy backend gives them to BLAS.  None: all cores for the
        compiled backend, BLAS's default for NumPy.  A fit is deterministic
        for a given ``random_state`` and ``n_threads``.
    divergence : {"raise", "warn"}, default "raise"
        What happens when training diverges, i.e. a batch cost or an updated
        weight becomes NaN or infinite (checked every batch, inside the
        update pass): the model goes back to the weights and optimiser state
        after the last finite step, records where it stopped in
        ``history_.stopped``, and either raises :class:`DivergenceError`
        ("raise") or warns with a RuntimeWarning and returns ("warn").
    random_state : int, numpy Generator or None, default None
        Seeds the weight initialisation and the permutations: the same value
        gives the same run.
    verbose : int, default 0
        1 prints one line per epoch.

    Attributes
    ----------
    coefs_ : list of ndarray
        Weight matrices ``(n_out, 1 + n_in)`` float32, bias in column 0.
    classes_ : ndarray
        The class labels, in the order of the output nodes.
    layers_ : tuple of int
        Nodes per layer, input to output, e.g. (784, 70, 30, 10).
    mean_, scale_ : ndarray
        Standardisation statistics of the training data (float32).
    history_ : History
        Per-batch and per-epoch record of the training.
    n_iter_ : int
        Epochs trained so far.
    optimizer_steps_ : int
        Weight updates (batches) trained so far; adam's bias correction
        counts them.
    learning_rate_ : float
        Rate used in the last epoch.
    """

    def __init__(self, hidden_layer_sizes=(70, 30), *, activation="sigmoid",
                 output="sigmoid", epochs=35,
                 batch_size=500,
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

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if isinstance(hidden, str):      # tuple("70") would be ("7", "0")
            raise TypeError(f"hidden_layer_sizes must be a tuple of ints, got {hidden!r}")
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise TypeError("hidden_layer_sizes must be a tuple of ints, got "
                            f"{self.hidden_layer_sizes!r}") from None
        hidden = tuple(check_positive_int("hidden_layer_sizes entries", h) for h in hidden)
        p = dict(
            hidden=hidden,
            epochs=check_positive_int("epochs", self.epochs),
            batch_size=check_positive_int("batch_size", self.batch_size),
            learning_rate=check_nonneg_float("learning_rate", self.learning_rate,
                                             allow_zero=False),
            lr_decay=check_nonneg_float("lr_decay", self.lr_decay),
            momentum=check_nonneg_float("momentum", self.momentum),
            l2=check_nonneg_float("l2", self.l2),
            l1=check_nonneg_float("l1", self.l1),
            init_factor=check_nonneg_float("init_factor", self.init_factor,
                                           allow_zero=False),
            train_accuracy=check_choice("train_accuracy", self.train_accuracy,
                                        TRAIN_ACC_KINDS),
            eval_period=check_positive_int("eval_period", self.eval_period),
            scaling=check_choice("scaling", self.scaling, SCALINGS),
            activation=check_choice("activation", self.activation,
                                    _numpy_backend.ACTIVATIONS),
            output=check_choice("output", self.output, _numpy_backend.OUTPUTS),
            backend=check_choice("backend", self.backend, BACKENDS),
            divergence=check_choice("divergence", self.divergence, DIVERGENCE),
        )
        for name in ("shuffle", "verbose"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_, int, np.integer)):
                raise TypeError(f"{name} must be a bool or an int, got {type(v).__name__} {v!r}")
        optimizer = check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("rho", "beta_1", "beta_2", "epsilon"):
            check_nonneg_float(name, getattr(self, name), allow_zero=(name != "epsilon"))
        try:
            p["optimizer"] = Optimizer.checked(Optimizer(
                optimizer, float(self.rho), float(self.beta_1), float(self.beta_2),
                float(self.epsilon)))
        except ValueError as exc:
            raise ValueError(f"{exc} (optimizer {optimizer!r})") from None
        if self.n_threads is not None:
            p["n_threads"] = check_positive_int("n_threads", self.n_threads)
        else:
            p["n_threads"] = None
        return p

    # ------------------------------------------------------------- data prep
    def _standardized(self, X):
        """Return a fresh C-ordered float32 copy of X, scaled with ``mean_`` and
        ``scale_``: ``(x - mean_) / scale_`` in float32."""
        X32 = np.array(X, dtype=np.float32, order="C", copy=True)
        X32 -= self.mean_
        X32 /= self.scale_
        return X32

    @staticmethod
    def _training_source(X):
        """X as the backends read it: the caller's array itself when it is an
        aligned C-ordered uint8, float32 or float64 matrix (read, never
        written), else its one float32 copy.  Scaling is applied batch by batch."""
        if X.flags.c_contiguous and X.flags.aligned and \
                X.dtype in (np.uint8, np.float32, np.float64):
            return X
        # np.array, not ascontiguousarray: that returns an unaligned C array as is
        return np.array(X, dtype=np.float32, order="C", copy=True)

    def _fit_scaling(self, src):
        """Set ``mean_`` and ``scale_`` from the training inputs, as ``scaling``
        says; the statistics are those of the float32 values trained on."""
        n = src.shape[1]
        if self._params["scaling"] == "standard":
            mean, scale = _standard_scaler_stats(src)
        elif self._params["scaling"] == "minmax":
            lo = src.min(axis=0).astype(np.float32).astype(np.float64)
            span = src.max(axis=0).astype(np.float32).astype(np.float64) - lo
            mean, scale = lo, np.where(span > 0, span, 1.0)
        else:
            mean, scale = np.zeros(n), np.ones(n)
        self.mean_ = np.asarray(mean, np.float32)
        self.scale_ = np.asarray(scale, np.float32)

    def _encode(self, y, name="y"):
        """Map labels to output-node indices; unknown labels raise."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"{name} contains labels not seen in fit: {np.unique(y[bad])[:5]}")
        return idx

    def _one_hot(self, idx):
        Y = np.zeros((idx.shape[0], len(self.classes_)), np.float32)
        Y[np.arange(idx.shape[0]), idx] = 1.0
        return Y

    def _init_weights(self, rng):
        weights = []
        for n_in, n_out in zip(self.layers_[:-1], self.layers_[1:]):
            r = 0.5 * np.sqrt(1.0 / n_in) * self._params["init_factor"]
            weights.append(rng.uniform(-r, r, size=(n_out, 1 + n_in)).astype(np.float32))
        return weights

    # ------------------------------------------------------------------- fit
    def fit(self, X, y, validation_data=None, callback=None):
        """Train a new network on (X, y) for ``epochs`` epochs.

        Any earlier training is discarded: the weights are drawn afresh
        from ``random_state`` (use :meth:`partial_fit` to continue).

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            Any real dtype and memory layout; never modified.
        y : array-like (n_samples,)
            Class labels (any sortable type); at least two classes.
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
        y = check_y(y, X.shape[0])
        self._start(X, np.unique(y))
        src = self._training_source(X)
        self._fit_scaling(src)
        self._train(src, self._encode(y), p["epochs"], self._validation(validation_data),
                    callback)
        return self

    def partial_fit(self, X, y, classes=None, validation_data=None, callback=None):
        """Train one more epoch on (X, y), continuing from the current weights.

        The first call starts a new network; it needs ``classes`` (every label
        that will ever be seen), or takes the labels present in ``y``.  It also
        fixes the input scaling from this first X.  Later calls continue the
        learning-rate schedule and the optimiser state, and record into the
        same ``history_``.  Hyperparameters changed with ``set_params``
        between calls (rates, lambdas, momentum, batch size, threads, backend)
        take effect; changing the layers, activation, output, scaling or
        optimizer raises ValueError.

        ``callback`` is as for :meth:`fit`.

        Returns
        -------
        self
        """
        first = not hasattr(self, "coefs_")
        checked = self._check_params()   # every call: a bad value set since is named
        if not first:
            fixed = [k for k in ("hidden", "activation", "output", "scaling")
                     if checked[k] != self._params[k]]
            if checked["optimizer"].name != self._params["optimizer"].name:
                fixed.append("optimizer")
            if fixed:
                raise ValueError(f"partial_fit: {', '.join(fixed)} changed since the first "
                                 "call; they fix the network and its state (call fit to "
                                 "start afresh)")
        self._params = checked           # later calls use rates, lambdas, batch size set since
        X = check_X(X, n_features=None if first else self.n_features_in_)
        y = check_y(y, X.shape[0])
        if first:
            all_classes = np.unique(y if classes is None else np.asarray(classes))
            self._start(X, all_classes)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes {np.unique(classes)!r} differ from the classes of "
                             f"the first call {self.classes_!r}")
        src = self._training_source(X)
        if first:
            self._fit_scaling(src)
        self._train(src, self._encode(y), 1, self._validation(validation_data), callback)
        return self

    def _start(self, X, classes):
        """Fresh network for X's features and the given classes."""
        p = self._params
        if classes.shape[0] < 2:
            raise ValueError(f"y has one class only ({classes[0]!r}, {X.shape[0]} "
                             "sample(s)); a classifier needs at least two classes")
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.layers_ = (X.shape[1],) + p["hidden"] + (classes.shape[0],)
        self._rng = np.random.default_rng(self.random_state)
        self.coefs_ = self._init_weights(self._rng)
        self._velocities = [np.zeros_like(W) for W in self.coefs_]
        self._states2 = ([np.zeros_like(W) for W in self.coefs_]
                         if p["optimizer"].n_states == 2 else None)
        self.optimizer_steps_ = 0
        self.n_iter_ = 0
        self.history_ = History(p["train_accuracy"])

    def _validation(self, validation_data):
        if validation_data is None:
            return None
        Xv, yv = check_validation_data(validation_data)
        Xv = check_X(Xv, "validation X", self.n_features_in_)
        yv = check_y(yv, Xv.shape[0], "validation y")
        return self._standardized(Xv), self._encode(yv, "validation y")

    @property
    def loss_curve_(self):
        """Mean batch cost of every epoch trained so far (scikit-learn's name)."""
        self._check_fitted()
        return list(self.history_.cost)

    def _train(self, src, y_idx, epochs, val, callback=None):
        p = self._params
        n = src.shape[0]
        batch = min(p["batch_size"], n)
        Y = self._one_hot(y_idx)
        mod = _backend_module(p["backend"])
        rates = lr_schedule(self.learning_rate, p["lr_decay"], epochs, self.n_iter_)
        self.history_.stopped = None
        n_batches = -(-n // batch)
        slices, blas = _thread_plan(p["backend"], p["n_threads"])
        with threadpool_limits(limits=blas, user_api="blas"):
            trainer = mod.Backend(src, Y, self.coefs_, self._velocities, batch,
                                  p["l2"], p["l1"], p["momentum"], slices,
                                  input_scaling=(self.mean_, self.scale_),
                                  activation=p["activation"], output=p["output"],
                                  optimizer=p["optimizer"], states2=self._states2,
                                  step=self.optimizer_steps_)
            Xs_full = None       # the scaled training set, made if "full" asks
            costs = np.empty(n_batches)
            regs = np.empty(n_batches)
            snap = _Snapshot(self)
            for e in range(epochs):
                trainer.reset_phases()
                snap.take(trainer.step)
                t0 = time.perf_counter()
                order = self._rng.permutation(n) if self.shuffle else np.arange(n)
                correct = 0
                try:
                    for b in range(n_batches):
                        idx = order[b * batch:(b + 1) * batch]
                        cost, reg, ok = trainer.train_batch(idx, rates[e])
                        self.optimizer_steps_ = trainer.step
                        if not math.isfinite(cost + reg):
                            raise _Diverged(b, cost)
                        costs[b] = cost + reg
                        regs[b] = reg
                        correct += ok
                        if callback is not None:
                            callback(self.n_iter_, b, n_batches, cost + reg)
                except _Diverged as d:
                    return self._diverged(d, trainer, snap, order, batch, rates[e], costs,
                                          n_batches)
                except KeyboardInterrupt:
                    self._interrupted(trainer, snap, order, batch, rates[e], costs, n_batches)
                    raise
                t1 = time.perf_counter()
                self.n_iter_ += 1
                self.learning_rate_ = float(rates[e])
                record = dict(cost=float(costs.mean()),
                              learning_rate=self.learning_rate_,
                              train_time=t1 - t0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    share = np.where(costs > 0, regs / costs, 0.0)
                record["reg_share"] = float(share.mean())
                due = (self.n_iter_ % p["eval_period"] == 0) or e == epochs - 1
                if p["train_accuracy"] == "batch":
                    record["train_acc"] = correct / n
                elif p["train_accuracy"] == "full" and due:
                    if Xs_full is None:
                        Xs_full = self._standardized(src)
                    record["train_acc"] = self._accuracy(Xs_full, y_idx)
                if val is not None and due:
                    record["test_acc"] = self._accuracy(*val)
                record["mean_abs_weight"] = [float(np.abs(W[:, 1:]).mean())
                                             for W in self.coefs_]
                t2 = time.perf_counter()
                record["eval_time"] = t2 - t1
                record["epoch_time"] = t2 - t0
                record["phases"] = dict(trainer.phase_seconds, prediction=t2 - t1)
                self.history_._append(self.n_iter_ - 1, costs, share, **record)
                if callback is not None:
                    callback(self.n_iter_ - 1, None, n_batches, record)
                if self.verbose:
                    self._print_epoch(record)
        return self

    def _rewind(self, trainer, snap, order, batch, done, rate):
        """Set the weights and optimiser state to those after the first
        ``done`` batches of the current epoch: restore the epoch's snapshot
        and replay those batches (a step is deterministic for the same
        inputs and thread count, so this is exact)."""
        snap.restore()
        trainer.step = snap.steps
        for b in range(done):
            trainer.train_batch(order[b * batch:(b + 1) * batch], rate)
        self.optimizer_steps_ = trainer.step

    def _stop_record(self, reason, done, n_batches, costs, **extra):
        self.history_.stopped = dict(reason=reason, epoch=self.n_iter_,
                                     batches_completed=int(done), n_batches=int(n_batches),
                                     batch_cost=[float(c) for c in costs[:done]], **extra)

    def _diverged(self, d, trainer, snap, order, batch, rate, costs, n_batches):
        """Batch ``d.batch`` gave a non-finite cost or weight: go back to the
        weights after the batch before it, record where training stopped,
        then raise DivergenceError or warn, as ``divergence`` says."""
        self._rewind(trainer, snap, order, batch, d.batch, rate)
        what = ("a weight became NaN or infinite in its update"
                if math.isfinite(d.cost) else f"its cost is {d.cost}")
        self._stop_record("diverged", d.batch, n_batches, costs, learning_rate=float(rate))
        msg = (f"training diverged in epoch {self.n_iter_} (from 0), batch {d.batch} of "
               f"{n_batches}: {what} (learning rate {rate:.6g}; a smaller learning_rate "
               f"usually helps).  The model keeps the weights after the last finite "
               f"step ({self.optimizer_steps_} steps in all); history_.stopped has the "
               "details.")
        if self._params["divergence"] == "raise":
            raise DivergenceError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return self

    def _interrupted(self, trainer, snap, order, batch, rate, costs, n_batches):
        """KeyboardInterrupt in the batch loop: keep the weights of the last
        completed batch (rewinding a half-applied NumPy step) and record
        where training stopped.  The caller re-raises."""
        done = trainer.step - snap.steps
        if trainer.partial_update:
            self._rewind(trainer, snap, order, batch, done, rate)
        self.optimizer_steps_ = trainer.step
        self._stop_record("interrupted", done, n_batches, costs)

    def _print_epoch(self, r):
        print(format_epoch(self.n_iter_ - 1, r), flush=True)

    # --------------------------------------------------------------- predict
    def _check_fitted(self):
        if not hasattr(self, "coefs_"):
            raise NotFittedError("this MLPClassifier is not fitted yet; call fit first")

    def _outputs(self, Xs):
        """Network outputs for standardised rows (threads as the caller set them)."""
        out = np.empty((Xs.shape[0], len(self.classes_)), np.float32)
        slices, _ = _thread_plan(self._params["backend"], self._params["n_threads"])
        _backend_module(self._params["backend"]).predict_proba(
            Xs, self.coefs_, out, n_threads=slices, activation=self._params["activation"],
            output=self._params["output"])
        return out

    def _accuracy(self, Xs, y_idx):
        return float(np.mean(self._outputs(Xs).argmax(axis=1) == y_idx))

    def predict_outputs(self, X):
        """Raw outputs of the output layer (sigmoid or softmax), (n_samples, n_classes)."""
        self._check_fitted()
        Xs = self._standardized(check_X(X, n_features=self.n_features_in_))
        _, blas = _thread_plan(self._params["backend"], self._params["n_threads"])
        if blas is None:
            return self._outputs(Xs)
        with threadpool_limits(limits=blas, user_api="blas"):
            return self._outputs(Xs)

    def save(self, path):
        """Write the fitted model to ``path`` as a pickle-free .npz file, atomically.

        Holds the weights, momentum, architecture, hyperparameters, input
        scaling, class labels and a format version; :func:`fastmlp.load`
        reads it back.  The history is not saved.
        """
        from ._io import save
        return save(self, path)

    def loss_and_gradients(self, X, y):
        """LogLoss, regularisation cost and gradient of the batch (X, y) at the
        current weights, computed by the model's backend kernels.

        Returns ``(cost, reg, gradients)`` with one ``(n_out, 1 + n_in)``
        float32 gradient per weight matrix (bias in column 0), summed over the
        batch and regularised as in training.  The weights are not changed.
        For checking the maths (finite differences, the Keras twin).
        """
        self._check_fitted()
        Xs = self._standardized(check_X(X, n_features=self.n_features_in_))
        y_idx = self._encode(check_y(y, Xs.shape[0]))
        Y = self._one_hot(y_idx)
        p = self._params
        return batch_loss_and_gradients(_backend_module(p["backend"]), self.coefs_, Xs, Y,
                                        p["l2"], p["l1"], p["activation"], p["output"])

    def predict_proba(self, X):
        """Class probabilities: the outputs normalised to sum to 1 per row."""
        out = self.predict_outputs(X)
        out /= np.maximum(out.sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)
        return out

    def predict(self, X):
        """Predicted class label for each row of X."""
        self._check_fitted()
        return self.classes_[self.predict_outputs(X).argmax(axis=1)]
