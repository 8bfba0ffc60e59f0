"""``fastmlp.from_sklearn``: a scikit-learn MLP's weights as a fastmlp model.

The result predicts what the scikit-learn estimator predicts and can go on
training with ``partial_fit`` (or ``fit`` with ``warm_start=True``).  Its
weights are scikit-learn's ``coefs_`` and ``intercepts_`` in fastmlp's layout
(float32, bias in column 0); its input scaling is "none" (scikit-learn's MLP
has none: put the scaler in front, as before).  The output layer:

* several classes, softmax: softmax;
* two classes (one logistic output, the second class's probability): a
  two-class softmax whose rows are ``-w/2`` and ``w/2``, since
  ``softmax(-z/2, z/2)[1] = sigmoid(z)``; its cross-entropy is scikit-learn's
  log loss, term for term;
* multilabel (logistic outputs): sigmoid outputs, multilabel targets;
* a regressor: identity outputs, ``target_scaling="none"``.

The optimiser starts afresh: scikit-learn averages the loss over a batch
where fastmlp sums it, so its optimiser state and rates mean other things.
The solver is mapped where fastmlp has the same rule: ``adam`` becomes adam
with the same rate and betas (adam does not care about the scale of the
gradient, but for epsilon); ``sgd`` without momentum becomes fastmlp's sgd
with the rate divided by the batch size (a step on the summed gradient),
with the "constant" or "adaptive" schedule.  scikit-learn's momentum (a
velocity ``v = mu v - lr g``), Nesterov's, "invscaling" and lbfgs have no
fastmlp equivalent: ValueError names them, and passing ``optimizer=...``
(with any other fastmlp parameters) chooses fastmlp's rule instead.
"""

import numpy as np
from sklearn.exceptions import NotFittedError

from ._classifier import MLPClassifier
from ._network import NetworkState
from ._regressor import MLPRegressor

__all__ = ["from_sklearn"]

#: scikit-learn's hidden activations by fastmlp's names (identity has none).
_ACTIVATIONS = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


def _solver_params(est, name, overrides):
    """fastmlp's optimiser parameters for the estimator's solver."""
    if "optimizer" in overrides:
        return {}
    solver = est.solver
    if solver == "adam":
        return dict(optimizer="adam", learning_rate=est.learning_rate_init,
                    beta_1=est.beta_1, beta_2=est.beta_2)
    remedy = ("; pass optimizer='adam' (or 'sgd' or 'rmsprop', with its learning_rate) to "
              "start fastmlp's own optimiser from these weights")
    if solver == "sgd":
        if est.momentum > 0:
            raise ValueError(f"{name} uses solver='sgd' with momentum={est.momentum}: "
                             "scikit-learn keeps a velocity v = momentum v - lr g (Nesterov's "
                             "or not), fastmlp's sgd adds momentum times the previous step "
                             f"lr G; the two rules differ{remedy}")
        if est.learning_rate == "invscaling":
            raise ValueError(f"{name} uses learning_rate='invscaling', which fastmlp has "
                             f"not{remedy}")
        if not isinstance(est.batch_size, (int, np.integer)):
            raise ValueError(f"{name} uses solver='sgd' with batch_size={est.batch_size!r}: "
                             "its rate is a step on the batch's mean gradient and fastmlp's "
                             "on the sum, so the batch size must be known to convert it; set "
                             f"batch_size to a number{remedy}")
        return dict(optimizer="sgd", momentum=0.0, batch_size=int(est.batch_size),
                    learning_rate=est.learning_rate_init / est.batch_size,
                    schedule="adaptive" if est.learning_rate == "adaptive" else "decay")
    raise ValueError(f"{name} uses solver={solver!r}, which has no fastmlp equivalent (fastmlp "
                     f"trains by mini-batches with sgd, rmsprop or adam){remedy}")


def from_sklearn(estimator, **params):
    """A fitted fastmlp :class:`MLPClassifier` or :class:`MLPRegressor` with
    the weights of a fitted ``sklearn.neural_network.MLPClassifier`` or
    ``MLPRegressor`` (see the module's docstring for the mapping).

    ``params`` set or replace fastmlp hyperparameters (``epochs``,
    ``batch_size``, ``optimizer``, ``learning_rate``, ``n_threads``, ...).
    The layers, activation and output come from the estimator and cannot be
    replaced; ``scaling`` is "none".  Raises TypeError for another kind of
    estimator, NotFittedError for an unfitted one, and ValueError for what
    fastmlp cannot represent: a hidden activation other than logistic,
    tanh or relu, or a solver whose rule fastmlp has not."""
    from sklearn.neural_network import MLPClassifier as SkClassifier
    from sklearn.neural_network import MLPRegressor as SkRegressor
    if not isinstance(estimator, (SkClassifier, SkRegressor)):
        raise TypeError("from_sklearn takes a scikit-learn MLPClassifier or MLPRegressor, got "
                        f"{type(estimator).__name__}")
    name = f"the scikit-learn {type(estimator).__name__}"
    if not hasattr(estimator, "coefs_"):
        raise NotFittedError(f"{name} is not fitted: it has no weights to take")
    fixed = {"hidden_layer_sizes", "activation", "output", "scaling", "target_scaling"}
    if fixed & set(params):
        raise ValueError(f"from_sklearn: {sorted(fixed & set(params))} come from the "
                         "estimator and cannot be set")
    if estimator.activation not in _ACTIVATIONS:
        raise ValueError(f"{name} has activation={estimator.activation!r}; fastmlp's hidden "
                         "layers are sigmoid (scikit-learn's 'logistic'), tanh or relu")
    layers = [estimator.coefs_[0].shape[0]] + [c.shape[1] for c in estimator.coefs_]
    weights = [np.ascontiguousarray(np.column_stack([b, k.T]), np.float32)
               for k, b in zip(estimator.coefs_, estimator.intercepts_)]
    regressor = isinstance(estimator, SkRegressor)
    settings = dict(hidden_layer_sizes=tuple(layers[1:-1]),
                    activation=_ACTIVATIONS[estimator.activation], l2=float(estimator.alpha),
                    epochs=int(estimator.max_iter), tol=float(estimator.tol),
                    shuffle=bool(estimator.shuffle), n_iter_no_change=int(
                        estimator.n_iter_no_change), scaling="none",
                    batch_size=estimator.batch_size)
    seed = estimator.random_state
    settings["random_state"] = seed if isinstance(seed, (int, np.integer)) else None
    settings.update(_solver_params(estimator, name, params))
    if regressor:
        settings.update(output="identity", target_scaling="none")
        kind, classes, target = "continuous", None, (np.zeros(layers[-1]), np.ones(layers[-1]))
    else:
        binarizer = estimator._label_binarizer
        if binarizer.y_type_.startswith("multilabel"):
            settings["output"], kind = "sigmoid", "multilabel"
        elif estimator.out_activation_ == "logistic":          # two classes, one output
            settings["output"], kind = "softmax", "labels"
            W = weights[-1]
            weights[-1] = np.ascontiguousarray(np.vstack([-W / 2, W / 2]), np.float32)
            layers[-1] = 2
        else:
            settings["output"], kind = "softmax", "labels"
        classes, target = np.asarray(estimator.classes_), None
    settings.update(params)
    model = (MLPRegressor if regressor else MLPClassifier)(**settings)
    model._params = model._check_params()
    model._set_target_kind(kind, classes, layers[-1], target)
    model._set_network(NetworkState(tuple(layers), weights, model._params["optimizer"].name,
                                    epochs=int(getattr(estimator, "n_iter_", 0)),
                                    samples=int(getattr(estimator, "t_", 0))))
    n = layers[0]
    model.mean_, model.scale_ = np.zeros(n, np.float32), np.ones(n, np.float32)
    model.validation_scores_ = None
    if hasattr(estimator, "feature_names_in_"):
        model.feature_names_in_ = np.asarray(estimator.feature_names_in_, dtype=object)
    return model
