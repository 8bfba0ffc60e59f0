"""The classifier: :class:`MLPClassifier`, a thin layer over :class:`BaseMLP`.

It says what a classifier's targets are: class labels, one output node per
class, one-hot targets, accuracy as the score.  Everything else (parameters,
data preparation, the training loop) is the base's and the trainer's.
"""

import os

import numpy as np
from sklearn.base import ClassifierMixin

from . import _io
from ._base import BaseMLP
from ._validation import check_y

__all__ = ["MLPClassifier", "load"]


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier trained by mini-batch gradient descent.

    By default the network of the blog experiment (see the README): sigmoid
    hidden and output layers, binary cross-entropy summed over the output
    nodes and over the samples of a mini-batch ("LogLoss"), L2 and L1
    regularisation of the non-bias weights, momentum, a learning rate that
    decays per epoch, and mini-batches drawn from a fresh permutation every
    epoch.  Inputs are standardised with statistics of the training data,
    and all arithmetic is float32.  tanh and relu hidden layers, a softmax
    output and the rmsprop and adam optimizers are options.

    Each weight matrix is ``(n_out, 1 + n_in)`` with the bias weights in column
    0 (``coefs_``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (70, 30)
        Nodes per hidden layer; input and output sizes come from the data.
        Blog: ``ay_nodes_layers = [0, 70, 30, 0]``.
    activation : {"sigmoid", "tanh", "relu"}, default "sigmoid"
        Activation of the hidden layers.  Each derivative is taken from the
        layer's output A: A (1 - A), 1 - A^2, [A > 0].
    output : {"sigmoid", "softmax"}, default "sigmoid"
        Output layer and loss: sigmoid + LogLoss (the blog's) or softmax +
        categorical cross-entropy (max-shifted, no log(0)).  Blog:
        ``my_out_function`` / ``my_loss_function``.
    epochs : int, default 35
        Epochs a fit trains, unless the no-improvement rule (``n_iter_no_change``)
        or the callback stops it first.  Blog: ``n_epochs``; scikit-learn:
        ``max_iter``.
    batch_size : int, default 500
        Samples per mini-batch; the last batch of an epoch holds the
        remainder.  A batch size above the number of samples means one batch
        of all samples.  Blog: ``n_size_mini_batch``.
    learning_rate : float, default 0.001
        Blog: ``learn_rate``; scikit-learn: ``learning_rate_init``.
    lr_decay : float, default 1e-6
        At the start of epoch e the rate is divided by ``1 + lr_decay * e``
        (``schedule="decay"`` only).  Blog: ``decrease_const``.
    schedule : {"decay", "adaptive"}, default "decay"
        How the rate changes from epoch to epoch.  "decay": the blog's
        division above.  "adaptive" (scikit-learn's ``learning_rate=
        "adaptive"``): the rate stays at ``learning_rate`` while the watched
        figure improves (validation score with ``early_stopping``, else the
        training loss); each time it has not improved by ``tol`` for more
        than ``n_iter_no_change`` epochs in a row, the rate is divided by 5
        and the count starts again, and once the rate is at or below 1e-6
        such a plateau stops training.  ``lr_decay`` is not used.  The rate
        carries over to partial_fit, warm-started fits and the model file.
    momentum : float, default 5e-5
        ``W -= lr G + momentum dW_prev``.  Blog: ``mom_rate``.  Used by the
        "sgd" optimizer only.
    optimizer : {"sgd", "rmsprop", "adam"}, default "sgd"
        "sgd": the blog's momentum rule above.  "rmsprop" and "adam": the
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
        L2 factor; adds ``l2/2 sum W^2`` to each batch cost.  Blog:
        ``lambda2_reg``.
    l1 : float, default 0.0
        L1 factor; adds ``l1 sum |W|`` to each batch cost.  Blog:
        ``lambda1_reg``.
    init_factor : float, default 2.0
        Initial weights are uniform in ``+-0.5 sqrt(1/n_in) init_factor``.
        Blog: ``init_weight_fact`` with ``init_weight_meth = "sqrt_nodes"``.
    shuffle : bool, default True
        Draw a new permutation of the samples every epoch.  Blog:
        ``b_shuffle_batches``.
    scaling : {"standard", "minmax", "none"}, default "standard"
        How inputs are scaled, with statistics of the training data only:
        "standard" subtracts the mean and divides by the standard deviation
        of each feature (the statistics of scikit-learn's ``StandardScaler``,
        the blog's choice);
        "minmax" maps each feature's training range to [0, 1] (for MNIST
        pixels this is x/255 for every pixel that reaches 255); "none" leaves
        the inputs as they are.  Blog: ``scaler1``/``scaler2``.
    train_accuracy : {"batch", "full", "none"}, default "batch"
        "batch": average the accuracy of each batch's own forward outputs
        during the epoch (cheap).  "full": predict the whole training set
        every ``eval_period`` epochs.  Blog: ``b_predictions_train``.
    eval_period : int, default 1
        Epochs between full-set accuracy measurements: the training set when
        ``train_accuracy="full"``, and ``history_.test_acc`` on the validation
        data (``val_score`` and ``val_loss`` are recorded every epoch).
        Blog: ``prediction_train_period`` / ``prediction_test_period``.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified by
        class, split with ``random_state``, by scikit-learn's
        ``train_test_split``), train on the rest, score the held-out part
        after every epoch, and stop when the score has not improved by at
        least ``tol`` for more than ``n_iter_no_change`` epochs in a row.
        Given ``validation_data`` replaces the held-out part.  At the end of
        the fit, however it ends (except by divergence or Ctrl-C), the model
        is put back to the epoch with the best validation score: its
        weights, optimiser state and step count, learning rate and adaptive
        schedule; ``n_iter_``, ``t_`` and ``history_`` keep counting every
        epoch trained, as scikit-learn's do.  Input scaling comes from the
        training part.  partial_fit refuses it.  Scikit-learn: the same name.
    validation_fraction : float in (0, 1), default 0.1
        Share of the training data held out by ``early_stopping``.  It must
        leave every class at least one sample on both sides.  Scikit-learn:
        the same name.
    n_iter_no_change : int >= 1 or None, default 10
        The no-improvement rule's patience, as scikit-learn counts it: when
        the watched figure (validation score with ``early_stopping``, else
        the training loss ``history_.train_loss``) has not improved by at
        least ``tol`` for more than this many epochs in a row, the fit stops
        (``history_.stopped``), or the "adaptive" schedule lowers the rate.
        None (or ``float("inf")``) never stops early: every epoch runs.
        Scikit-learn: the same name.
    tol : float >= 0, default 1e-4
        The improvement that counts for ``n_iter_no_change``, in the watched
        figure's units (per-sample loss, or score).  Scikit-learn: the same
        name.
    warm_start : bool, default False
        ``fit`` on a fitted model trains ``epochs`` more epochs from its
        weights, optimiser state, learning-rate schedule, input scaling and
        random stream, appending to ``history_`` (like ``epochs`` calls of
        partial_fit, but with early stopping and the no-improvement rule
        counted afresh for the fit).  The data must have the same features
        and classes.  Scikit-learn: the same name (whose optimiser starts
        afresh).
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
        The random generator's seed for the weight initialisation and the
        permutations: the same value gives the same run.
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
    n_layers_ : int
        ``len(layers_)``, input and output layers included (scikit-learn's
        count).
    n_outputs_ : int
        Output nodes: one per class.
    out_activation_ : str
        The output layer's function, ``output``'s value ("sigmoid", which
        scikit-learn calls "logistic", or "softmax").
    n_features_in_ : int
        Features seen in fit.
    feature_names_in_ : ndarray of str
        Column names of a data frame X seen in fit, when they are all
        strings; only then set.  Data frames given later must have the same
        columns (ValueError naming the differences); a plain array is
        accepted with a UserWarning, as in scikit-learn.
    mean_, scale_ : ndarray
        Standardisation statistics of the training data (float32).
    history_ : History
        Per-batch and per-epoch record of the training.
    n_iter_ : int
        Epochs trained so far, over the model's life (also those after the
        best epoch that early stopping put back).
    t_ : int
        Training samples the weight updates have used so far.
    loss_curve_ : list of float
        ``history_.cost``: the mean batch cost of every epoch (the blog's
        figure; ``history_.train_loss`` is the per-sample loss).
    best_loss_ : float or None
        Lowest ``history_.train_loss`` the no-improvement rule saw; None
        with early stopping (see ``best_validation_score_``).
    validation_scores_ : list of float or None
        With early stopping, the validation score of every epoch of the
        last fit; else None.
    best_validation_score_ : float or None
        With early stopping, the best of ``validation_scores_``: that of
        the epoch the model was put back to; else None.
    optimizer_steps_ : int
        Weight updates (batches) behind the current weights; adam's bias
        correction counts them.  After early stopping, those up to the best
        epoch.
    learning_rate_ : float
        Rate used in the last epoch (after early stopping: in the best
        epoch).
    """

    def partial_fit(self, X, y, classes=None, validation_data=None, callback=None):
        """Train one more epoch on (X, y), continuing from the current weights.

        The first call starts a new network; it needs ``classes`` (every label
        that will ever be seen), or takes the labels present in ``y``.  It also
        fixes the input scaling from this first X.  Later calls continue the
        learning-rate schedule and the optimiser state, and record into the
        same ``history_``.  Hyperparameters changed with ``set_params``
        between calls (rates, lambdas, momentum, batch size, threads, backend)
        take effect; changing the layers, activation, output, scaling or
        optimizer raises ValueError.  The adaptive schedule and the
        no-improvement count go on from call to call; when the rule fires
        and cannot lower the rate, ``history_.stopped`` says so (reason "no
        improvement"), so a loop of calls can stop.  ``early_stopping=True``
        is refused, as in scikit-learn.

        ``callback`` is as for :meth:`fit`.

        Returns
        -------
        self
        """
        def outputs_from(y):
            if "_state" not in self.__dict__:
                return self._outputs_for(y if classes is None else np.asarray(classes),
                                         n_samples=y.shape[0])
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes {np.unique(classes)!r} differ from the classes of "
                                 f"the first call {self.classes_!r}")
            return len(self.classes_)

        return self._partial_fit(X, y, outputs_from, validation_data, callback)

    def predict_proba(self, X):
        """Class probabilities: the outputs normalised to sum to 1 per row."""
        out = self.predict_outputs(X)
        out /= np.maximum(out.sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)
        return out

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (-inf where a probability is 0)."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def predict(self, X):
        """Predicted class label for each row of X."""
        self._check_fitted()
        return self.classes_[self.predict_outputs(X).argmax(axis=1)]

    # ------------------------------------------------ what the targets are
    def _check_targets(self, y, n_samples, name="y"):
        return check_y(y, n_samples, name)

    def _outputs_for(self, y, n_samples=None):
        """Set ``classes_`` from the labels ``y``; return the number of outputs."""
        classes = np.unique(y)
        if classes.shape[0] < 2:
            n = y.shape[0] if n_samples is None else n_samples
            raise ValueError(f"y has one class only ({classes[0]!r}, {n} "
                             "sample(s)); a classifier needs at least two classes")
        self._set_outputs(classes)
        return classes.shape[0]

    def _check_outputs(self, y, what=""):
        """Refuse labels whose classes differ from the fitted ``classes_``
        (a warm-started fit, as scikit-learn)."""
        classes = np.unique(y)
        same = classes.shape == self.classes_.shape
        try:
            same = same and bool(np.all(classes == self.classes_))
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(f"{what}y has the classes {classes[:10].tolist()}, but the "
                             f"fitted model has {self.classes_[:10].tolist()}; a warm-started "
                             "fit needs the same classes (set warm_start=False to fit a new "
                             "network)")

    def _strata(self, y):
        return y

    def _set_outputs(self, classes):
        self.classes_ = classes

    def _targets(self, y, name="y"):
        """(one-hot float32 targets, output-node index of each label)."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"{name} contains labels not seen in fit: {np.unique(y[bad])[:5]}")
        Y = np.zeros((idx.shape[0], len(self.classes_)), np.float32)
        Y[np.arange(idx.shape[0]), idx] = 1.0
        return Y, idx

    @staticmethod
    def _score_outputs(outputs, y_idx):
        """Accuracy of outputs against output-node indices."""
        return float(np.mean(outputs.argmax(axis=1) == y_idx))

    def _loss_outputs(self, outputs, y_idx):
        """The output layer's loss of ``outputs`` against output-node indices,
        mean per sample, in float64: LogLoss summed over the output nodes
        for sigmoid outputs, categorical cross-entropy for softmax.  Each
        log's argument is clipped at the smallest normal float32, as in
        training."""
        tiny = float(np.finfo(np.float32).tiny)
        a = outputs.astype(np.float64)
        rows = np.arange(a.shape[0])
        target = np.log(np.maximum(a[rows, y_idx], tiny))
        if self._params["output"] == "softmax":
            return float(-target.mean())
        off = np.log(np.maximum(1.0 - a, tiny))
        off[rows, y_idx] = target
        return float(-off.sum(axis=1).mean())


def load(path):
    """Read a model written by ``save``; returns the fitted estimator.

    Raises FileNotFoundError for a missing file and
    :class:`fastmlp.ModelFileError` for anything else that is not a valid
    model file; never unpickles."""
    name = os.fspath(path)
    return MLPClassifier._from_model_file(name, _io.read(name))
