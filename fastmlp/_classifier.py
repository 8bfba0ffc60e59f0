"""The classifier: :class:`MLPClassifier`, a thin layer over :class:`BaseMLP`.

It says what a classifier's targets are: class labels (one output node per
class, one-hot targets, accuracy as the score) or a multilabel indicator
matrix (one sigmoid output per label, subset accuracy), and how class
weights enter the loss.  Everything else (parameters, data preparation, the
training loop) is the base's and the trainer's.
"""

import numpy as np
from sklearn.base import ClassifierMixin

from ._base import BaseMLP
from ._docs import attributes_section, parameters_section
from ._params import ClassWeight, OneOf, Param, extended, make_init
from ._validation import check_indicator, check_y

__all__ = ["MLPClassifier", "BLOG_EXPERIMENT"]

#: The blog experiment: the blog series' MNIST run, which
#: :meth:`MLPClassifier.blog_experiment` sets up.  Every epoch runs.
BLOG_EXPERIMENT = dict(
    hidden_layer_sizes=(70, 30), activation="sigmoid", output="sigmoid", epochs=35,
    batch_size=500, learning_rate=0.001, lr_decay=1e-6, schedule="decay", momentum=5e-5,
    optimizer="sgd", l2=0.01, l1=0.0, init="blog", init_factor=2.0, scaling="standard",
    early_stopping=False, n_iter_no_change=None)


class MLPClassifier(ClassifierMixin, BaseMLP):
    _parameters = extended(BaseMLP._parameters, after="l1",
                           output=Param(OneOf(("auto", "sigmoid", "softmax")), "auto"),
                           class_weight=Param(ClassWeight(), None))
    __init__ = make_init(_parameters)

    @classmethod
    def blog_experiment(cls, **overrides):
        """The blog experiment's classifier: a 784-70-30-10 sigmoid network
        (hidden layers 70 and 30) with LogLoss, L2 0.01, the blog's momentum
        rule, a rate of 0.001 decayed per epoch, batches of 500, standardised
        inputs and always 35 epochs (:data:`BLOG_EXPERIMENT`).  ``overrides``
        replace any of these or set other parameters, e.g.
        ``MLPClassifier.blog_experiment(random_state=0, n_threads=1)``."""
        return cls(**dict(BLOG_EXPERIMENT, **overrides))

    def partial_fit(self, X, y, classes=None, sample_weight=None, *, validation_data=None,
                    callback=None):
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

        ``sample_weight``, ``validation_data`` and ``callback`` are as for
        :meth:`fit`.

        Returns
        -------
        self
        """
        def outputs_from(y, sample_weight):
            if "_state" not in self.__dict__:
                given = y if classes is None or y.ndim == 2 else np.asarray(classes)
                return self._outputs_for(given, n_samples=y.shape[0])
            self._check_same_kind(y, "partial_fit: ")
            if classes is not None and self._target_kind == "labels" and \
                    not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes {np.unique(classes)!r} differ from the classes of "
                                 f"the first call {self.classes_!r}")
            return len(self.classes_)

        return self._partial_fit(X, y, sample_weight, outputs_from, validation_data, callback)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes): the outputs normalised
        to sum to 1 per row.  For multilabel targets, each label's own
        probability (the sigmoid outputs as they are, not normalised)."""
        out = self.predict_outputs(X)
        if self._target_kind == "labels":
            out /= np.maximum(out.sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)
        return out

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (-inf where a probability is 0)."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def predict(self, X):
        """Predicted class label for each row of X; for multilabel targets the
        0/1 indicator matrix of the labels whose probability exceeds 0.5."""
        self._check_fitted()
        out = self.predict_outputs(X)
        if self._target_kind == "multilabel":
            return (out > 0.5).astype(np.int64)
        return self.classes_[out.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True          # trained on the sparse path, never densified
        return tags

    # ------------------------------------------------ what the targets are
    def _check_targets(self, y, n_samples, name="y"):
        arr = y if y is None else np.asarray(y)
        if arr is not None and arr.ndim == 2 and arr.shape[1] > 1:
            return check_indicator(arr, n_samples, name)
        return check_y(y, n_samples, name)

    def _outputs_for(self, y, n_samples=None, sample_weight=None):
        """Set ``classes_`` from the targets ``y`` (labels, or an indicator
        matrix); return the number of outputs."""
        if y.ndim == 2:
            self._set_target_kind("multilabel", None, y.shape[1])
            return y.shape[1]
        classes = np.unique(y)
        if classes.shape[0] < 2:
            n = y.shape[0] if n_samples is None else n_samples
            raise ValueError(f"y has one class only ({classes[0]!r}, {n} "
                             "sample(s)); a classifier needs at least two classes")
        self._set_target_kind("labels", classes, classes.shape[0])
        return classes.shape[0]

    def _set_target_kind(self, kind, classes, n_outputs, target_scaling=None):
        self._target_kind = kind
        self.classes_ = np.arange(n_outputs) if kind == "multilabel" else classes

    def _check_same_kind(self, y, what):
        kind = "multilabel" if y.ndim == 2 else "labels"
        if kind != self._target_kind:
            given = "a label indicator matrix" if y.ndim == 2 else "a vector of labels"
            raise ValueError(f"{what}y is {given}, but the model was fitted on "
                             f"{self._target_kind} targets")
        if kind == "multilabel" and y.shape[1] != len(self.classes_):
            raise ValueError(f"{what}y has {y.shape[1]} label columns, but the model was "
                             f"fitted on {len(self.classes_)}")

    def _check_outputs(self, y, what=""):
        """Refuse targets unlike the fitted ones (a warm-started fit, as
        scikit-learn): other classes, or labels where the fit had a matrix."""
        self._check_same_kind(y, what)
        if self._target_kind == "multilabel":
            return
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
        return y if y.ndim == 1 else None

    def _targets(self, y, name="y"):
        """(float32 targets, what scores compare with): one-hot rows and each
        label's output-node index, or the indicator matrix twice."""
        if self._target_kind == "multilabel":
            self._check_same_kind(y, f"{name}: " if name != "y" else "")
            return np.ascontiguousarray(y, dtype=np.float32), y
        if y.ndim != 1:
            self._check_same_kind(y, "")
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"{name} contains labels not seen in fit: {np.unique(y[bad])[:5]}")
        Y = np.zeros((idx.shape[0], len(self.classes_)), np.float32)
        Y[np.arange(idx.shape[0]), idx] = 1.0
        return Y, idx

    def _loss_weights(self, y, sample_weight):
        """``sample_weight`` times each sample's ``class_weight`` (None when
        neither is given)."""
        cw = self._params.get("class_weight")
        if cw is None:
            return sample_weight
        if self._target_kind == "multilabel":
            raise ValueError("class_weight is not supported for multilabel targets; weigh "
                             "the samples with sample_weight instead")
        if isinstance(cw, str):               # "balanced", scikit-learn's formula
            counts = np.bincount(self._targets(y)[1], minlength=len(self.classes_))
            per_class = len(y) / (len(self.classes_) * np.maximum(counts, 1))
        else:
            classes = self.classes_.tolist()      # Python values: 3 == np.int64(3) as keys
            unknown = [k for k in cw if k not in classes]
            if unknown:
                raise ValueError(f"class_weight has keys {unknown[:5]!r} that are not classes; "
                                 f"the classes are {classes[:10]}")
            per_class = np.array([float(cw.get(c, 1.0)) for c in classes])
        w = per_class[self._targets(y)[1]].astype(np.float32)
        return w if sample_weight is None else w * sample_weight

    def _score_outputs(self, outputs, y_eval, sample_weight=None):
        """Accuracy: of the largest output against the label's node, or for
        multilabel targets subset accuracy (every label right at 0.5)."""
        if self._target_kind == "multilabel":
            right = np.all((outputs > 0.5) == (y_eval > 0.5), axis=1)
        else:
            right = outputs.argmax(axis=1) == y_eval
        return float(np.average(right, weights=sample_weight))

    def _loss_outputs(self, outputs, y_eval, sample_weight=None):
        """The output layer's loss of ``outputs``, mean per sample (weighted
        by ``sample_weight``), in float64: LogLoss summed over the output
        nodes for sigmoid outputs, categorical cross-entropy for softmax.
        Each log's argument is clipped at the smallest normal float32, as in
        training."""
        tiny = float(np.finfo(np.float32).tiny)
        a = outputs.astype(np.float64)
        if self._target_kind == "multilabel":
            y = y_eval.astype(np.float64)
            per = -(y * np.log(np.maximum(a, tiny))
                    + (1 - y) * np.log(np.maximum(1 - a, tiny))).sum(axis=1)
            return float(np.average(per, weights=sample_weight))
        rows = np.arange(a.shape[0])
        target = np.log(np.maximum(a[rows, y_eval], tiny))
        if self.out_activation_ == "softmax":
            return float(np.average(-target, weights=sample_weight))
        off = np.log(np.maximum(1.0 - a, tiny))
        off[rows, y_eval] = target
        return float(np.average(-off.sum(axis=1), weights=sample_weight))


MLPClassifier.__doc__ = """Multilayer perceptron classifier trained by mini-batch gradient descent.

    Its defaults suit any data set a scikit-learn user brings, much as
    scikit-learn's own MLPClassifier: one hidden layer of 100 relu units, a
    softmax output (sigmoid outputs for multilabel targets), adam, batches
    of 200, L2 1e-4, and up to 200 epochs until the training loss stops
    improving.  :meth:`blog_experiment` gives the blog experiment's network
    and settings instead (see the README).  The loss is summed over the
    output nodes and the samples of a batch (the blog's "LogLoss" for
    sigmoid outputs), L2 and L1 regularise the non-bias weights, inputs are
    standardised with statistics of the training data, and all arithmetic
    is float32.

    y may be a vector of class labels of any sortable type, or a 2-D 0/1
    indicator matrix for multilabel classification (then ``predict``
    returns such a matrix, thresholded at 0.5, and ``predict_proba`` each
    label's probability).  Each weight matrix is ``(n_out, 1 + n_in)`` with
    the bias weights in column 0 (``coefs_``).
""" + parameters_section(MLPClassifier._parameters) + attributes_section(
    ["coefs_", "classes_", "layers_", "n_layers_", "n_outputs_", "out_activation_",
     "n_features_in_", "feature_names_in_", "mean_", "history_", "n_iter_", "t_",
     "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_",
     "optimizer_steps_", "learning_rate_"]) + "    "
