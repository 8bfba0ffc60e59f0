"""A fitted fastmlp model as a scikit-learn MLP or as a Keras model.

:func:`to_sklearn` gives a fitted ``sklearn.neural_network.MLPClassifier`` or
``MLPRegressor`` that predicts what the fastmlp model predicts, from raw X.
scikit-learn's MLP has no input scaling, so the scaling is folded into the
first layer (``W' = W / scale``, ``b' = b - W' mean``); a regressor's target
scaling is folded into the last (``W' = y_scale W``, ``b' = y_scale b +
y_mean``).  The weights become float64, scikit-learn's usual type.

scikit-learn's output layer is softmax (several classes), logistic (two
classes: one output, the second class's probability; or one per label for
multilabel targets) or identity (regression).  So:

* softmax outputs convert; with two classes the two output rows become one
  logistic row ``w1 - w0``, since ``softmax(z0, z1)[1] = sigmoid(z1 - z0)``;
* multilabel sigmoid outputs and identity outputs convert as they are;
* the blog's sigmoid outputs renormalised per row, ``p_k = s(z_k) / sum_j
  s(z_j)``, have no equivalent with three or more classes.  With two,
  ``logit(p_1) = softplus(-z_0) - softplus(-z_1)``, which is an affine
  function of the last hidden layer (what a logistic output computes) only
  when the two rows are exact negatives (``w0 = -w1``, ``b0 = -b1``: then
  ``p_1 = s(z_1)``), equal (``p = 1/2``), or free of the hidden layer (zero
  weights: a constant).  Those convert; any other two-class sigmoid model
  raises ValueError saying why.

:func:`to_keras` gives a ``keras.Sequential`` on raw X: a ``Normalization``
layer holding the input scaling, the Dense layers, and the output as
``predict_proba`` (classifier) or ``predict`` (regressor) gives it.  The
renormalised sigmoid output is written with Keras's own layers:
``log_sigmoid`` then ``softmax`` is exactly ``s(z_k) / sum_j s(z_j)``.

Neither imports the estimators; scikit-learn's neural network and
TensorFlow are imported when called.
"""

import numpy as np

__all__ = ["to_sklearn", "to_keras", "fold_input_scaling", "SKLEARN_ACTIVATIONS"]

#: fastmlp's hidden activations by scikit-learn's names.
SKLEARN_ACTIVATIONS = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}


def fold_input_scaling(W, mean, scale):
    """The first layer's ``(kernel (n_out, n_in), bias)`` in float64 for raw
    inputs: ``W[:, 1:] (x - mean) / scale + W[:, 0]`` rewritten as
    ``kernel x + bias``."""
    W = np.asarray(W, np.float64)
    kernel = W[:, 1:] / np.asarray(scale, np.float64)
    return kernel, W[:, 0] - kernel @ np.asarray(mean, np.float64)


def _layers64(model):
    """Each layer as float64 ``(kernel (n_out, n_in), bias)``, the input
    scaling folded into the first and a regressor's target scaling into the
    last."""
    weights = [np.asarray(W, np.float64) for W in model.coefs_]
    layers = [(W[:, 1:].copy(), W[:, 0].copy()) for W in weights]
    layers[0] = fold_input_scaling(weights[0], model.mean_, model.scale_)
    if model._target_kind == "continuous":
        kernel, bias = layers[-1]
        ys, ym = np.asarray(model.y_scale_, np.float64), np.asarray(model.y_mean_, np.float64)
        layers[-1] = (kernel * ys[:, None], bias * ys + ym)
    return layers


def _softplus(x):
    return np.logaddexp(0.0, x)


def _two_class_sigmoid(kernel, bias, name):
    """The one logistic row equal to two renormalised sigmoid rows, or
    ValueError (see the module's docstring for which rows have one)."""
    (w0, w1), (b0, b1) = kernel, bias
    if np.array_equal(w0, -w1) and b0 == -b1:
        return w1[None, :], np.array([b1])
    if np.array_equal(w0, w1) and b0 == b1:
        return np.zeros_like(w1)[None, :], np.zeros(1)
    if not np.any(w0) and not np.any(w1):
        return np.zeros_like(w1)[None, :], np.array([_softplus(-b0) - _softplus(-b1)])
    raise ValueError(
        f"{name} has two sigmoid outputs renormalised per row (p1 = s(z1) / (s(z0) + s(z1)), "
        "the blog's output), and scikit-learn's two-class MLP has one logistic output: "
        "logit(p1) = softplus(-z0) - softplus(-z1) is not an affine function of the last "
        "hidden layer unless the two output rows are exact negatives (or equal, or have "
        "zero weights), and these are not.  Train with output='softmax' (or 'auto') to "
        "convert, or export to ONNX or Keras instead, which compute this output as it is")


def _output_layer(model, layers):
    """scikit-learn's out_activation_ for the model, rewriting the last layer
    where two classes need one logistic output; ValueError where it has none."""
    kind, out, name = model._target_kind, model.out_activation_, type(model).__name__
    if kind == "continuous":
        return "identity"
    if kind == "multilabel":
        return "logistic"
    kernel, bias = layers[-1]
    n = kernel.shape[0]
    if out == "softmax":
        if n == 2:
            layers[-1] = ((kernel[1] - kernel[0])[None, :], np.array([bias[1] - bias[0]]))
            return "logistic"
        return "softmax"
    if n == 2:
        layers[-1] = _two_class_sigmoid(kernel, bias, name)
        return "logistic"
    raise ValueError(
        f"{name} has {n} sigmoid outputs renormalised per row (the blog's output: p_k = "
        "s(z_k) / sum_j s(z_j)); scikit-learn's MLPClassifier has no such output layer "
        "(softmax for several classes, one logistic output for two), so it cannot be "
        "converted.  Train with output='softmax' (or 'auto') to convert, or export to "
        "ONNX or Keras instead, which compute this output as it is")


def to_sklearn(model):
    """A fitted scikit-learn ``MLPClassifier`` / ``MLPRegressor`` equal to the
    fitted fastmlp ``model`` (predictions within float rounding); ValueError
    for an output layer scikit-learn cannot express (module docstring).

    The hyperparameters that mean the same are copied (layers, activation,
    ``l2`` as ``alpha``, ``learning_rate`` as ``learning_rate_init``,
    batch size, epochs, adam's betas, ``tol``, ``shuffle``, the random
    seed), with solver "adam", so ``partial_fit`` can go on training in
    scikit-learn, from a fresh optimiser state.  ``loss_curve_`` starts
    empty; ``n_iter_`` and ``t_`` are fastmlp's."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import LabelBinarizer
    layers = _layers64(model)
    out = _output_layer(model, layers)
    p = model.get_params()
    batch = p["batch_size"]
    seed = p["random_state"]
    settings = dict(
        hidden_layer_sizes=tuple(model.layers_[1:-1]),
        activation=SKLEARN_ACTIVATIONS[p["activation"]], solver="adam", alpha=p["l2"],
        batch_size=batch,
        learning_rate_init=p["learning_rate"], max_iter=p["epochs"], shuffle=bool(p["shuffle"]),
        random_state=seed if seed is None or isinstance(seed, (int, np.integer)) else None,
        tol=p["tol"], beta_1=p["beta_1"], beta_2=p["beta_2"],
        n_iter_no_change=p["n_iter_no_change"] or 2**31 - 1)
    if model._target_kind == "continuous":
        est = MLPRegressor(**settings)
    else:
        est = MLPClassifier(**settings)
        binarizer = LabelBinarizer()
        if model._target_kind == "multilabel":
            binarizer.fit(np.eye(len(model.classes_), dtype=np.int64))
        else:
            binarizer.fit(model.classes_)
        est._label_binarizer = binarizer
        est.classes_ = binarizer.classes_
    est.coefs_ = [np.ascontiguousarray(k.T) for k, _ in layers]
    est.intercepts_ = [b for _, b in layers]
    est.n_features_in_ = int(model.n_features_in_)
    if hasattr(model, "feature_names_in_"):
        est.feature_names_in_ = model.feature_names_in_
    est.n_layers_ = len(model.layers_)
    est.n_outputs_ = layers[-1][0].shape[0]
    est.out_activation_ = out
    est.n_iter_, est.t_ = int(model.n_iter_), int(model.t_)
    est.loss_curve_ = []
    est.best_loss_ = np.inf
    est._no_improvement_count = 0
    est.validation_scores_ = est.best_validation_score_ = None
    return est


def _keras():
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError('to_keras needs TensorFlow: pip install "fastmlp[keras]"') from exc
    return tf.keras


def to_keras(model):
    """A ``keras.Sequential`` equal to the fitted fastmlp ``model`` on raw X
    (see the module's docstring): ``predict`` gives ``predict_proba``'s
    probabilities for a classifier, ``predict``'s values (as a 2-D array)
    for a regressor."""
    keras = _keras()
    weights = [np.asarray(W, np.float32) for W in model.coefs_]
    mean = np.asarray(model.mean_, np.float64)
    scale = np.asarray(model.scale_, np.float64)
    layers = [keras.Input((int(model.n_features_in_),), name="X")]
    kernels = [np.ascontiguousarray(W[:, 1:].T) for W in weights]
    biases = [W[:, 0].copy() for W in weights]
    if np.any(scale < keras.backend.epsilon()):
        # Normalization divides by max(sqrt(variance), epsilon): fold instead
        k, b = fold_input_scaling(weights[0], mean, scale)
        kernels[0], biases[0] = np.ascontiguousarray(k.T, np.float32), b.astype(np.float32)
    elif np.any(mean != 0) or np.any(scale != 1):
        layers.append(keras.layers.Normalization(mean=mean, variance=scale * scale,
                                                 name="scaling"))
    if model._target_kind == "continuous":
        ys = np.asarray(model.y_scale_, np.float64)
        kernels[-1] = (kernels[-1] * ys).astype(np.float32)
        biases[-1] = (biases[-1] * ys + np.asarray(model.y_mean_, np.float64)).astype(np.float32)
    dense = []
    for i, k in enumerate(kernels):
        last = i == len(kernels) - 1
        act = model.activation
        if last:
            act = {"softmax": "softmax", "identity": "linear"}.get(model.out_activation_)
            if act is None:
                act = "sigmoid" if model._target_kind == "multilabel" else "log_sigmoid"
        dense.append(keras.layers.Dense(k.shape[1], activation=act, name=f"dense_{i}"))
        layers.append(dense[-1])
    if model.out_activation_ == "sigmoid" and model._target_kind == "labels":
        layers.append(keras.layers.Activation("softmax", name="renormalise"))
    net = keras.Sequential(layers, name=f"fastmlp_{type(model).__name__}")
    for layer, k, b in zip(dense, kernels, biases):
        layer.set_weights([k, b])
    return net
