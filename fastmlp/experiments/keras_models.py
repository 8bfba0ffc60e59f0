"""Keras reference models: the blog series' MLP and CNN, and a Keras twin of a fastmlp model.

Importing this module does not import TensorFlow; each function does, and
raises ImportError with the install hint when it is missing
(``pip install "fastmlp[keras]"``).

* :func:`blog_mlp` -- the blog series' reference Keras MLP exactly as the
  blog experiment trains it (Dense 70/30/10 sigmoid, L2 0.01 on the hidden
  layers, rmsprop, categorical cross-entropy, inputs x/255).
* :func:`blog_cnn` -- the CNN builder of the blog series' "A simple CNN for
  the MNIST datasets": lists of conv, pool and dense layer specs with an
  activation per layer; with the default specs (:data:`BLOG_CNN_LAYERS`) it
  has 96,844 parameters, the blog's count.
* :func:`mnist_for_keras` -- the blog series' Keras preprocessing (x/255,
  one-hot labels).
* :func:`objective_mlp` -- the blog MLP's layers with given (e.g. fastmlp's
  initial, :func:`fastmlp.init_weights`) weights, compiled with fastmlp's objective and an rmsprop or adam
  optimiser that takes the same steps, for ``model.fit``: the Keras side of
  the benchmark's equal-terms comparison.
* :class:`KerasTwin` / :func:`keras_twin` -- the same network as a fastmlp
  model, with its current weights, its scaling, its summed loss (LogLoss,
  cross-entropy or squared error, optionally weighted per sample) with its
  regularisation and its momentum rule, computed by TensorFlow.  The tests use
  it to check fastmlp's gradients, training steps and predictions.
"""

import numpy as np

__all__ = ["blog_mlp", "blog_cnn", "BLOG_CNN_LAYERS", "KerasTwin", "keras_twin",
           "mnist_for_keras", "objective_mlp"]


def _tf():
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the Keras reference models need TensorFlow: "
                          'pip install "fastmlp[keras]"') from exc
    return tf


def blog_mlp(n_inputs=784, hidden=(70, 30), n_classes=10, l2=0.01, optimizer="rmsprop",
             jit_compile=None, steps_per_execution=1):
    """The blog series' reference Keras MLP, compiled as the blog compiles it.

    Dense(70, sigmoid, L2 0.01) -> Dense(30, sigmoid, L2 0.01) ->
    Dense(10, sigmoid); ``optimizer`` rmsprop, loss categorical
    cross-entropy, metric accuracy.  Train it on x/255 inputs and one-hot
    labels (:func:`mnist_for_keras`).  ``jit_compile`` and
    ``steps_per_execution`` are passed to ``compile`` (XLA and several
    batches per call: what Keras recommends for small models).
    """
    tf = _tf()
    keras = tf.keras
    reg = keras.regularizers.l2(l2) if l2 else None
    layers = [keras.Input((n_inputs,))]
    for h in hidden:
        layers.append(keras.layers.Dense(h, activation="sigmoid", kernel_regularizer=reg))
    layers.append(keras.layers.Dense(n_classes, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def objective_mlp(weights, l2=0.0, l1=0.0, optimizer="rmsprop", learning_rate=0.001,
                  rho=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-7, jit_compile=None,
                  steps_per_execution=1):
    """A Keras MLP that solves the problem a fastmlp fit solves, for ``model.fit``.

    Dense sigmoid layers (the blog MLP's for the default sizes) whose kernels
    and biases are ``weights`` (fastmlp layout: ``(n_out, 1 + n_in)``, bias in
    column 0), compiled with fastmlp's objective divided by the number of
    outputs K: Keras's binary cross-entropy averages over the outputs, so
    ``BinaryCrossentropy(reduction="sum")`` is the summed LogLoss / K, and the
    kernel regularisers are ``l2 / (2K)`` and ``l1 / K`` on every layer.  The
    optimiser's epsilon is rescaled (rmsprop eps / K^2, inside the root;
    adam eps / K) so Keras's RMSprop / Adam take the same steps on the
    scaled objective that fastmlp's take on the unscaled one.

    Train it on inputs scaled as the fastmlp model scales them, with one-hot
    targets.  ``jit_compile`` and ``steps_per_execution`` go to ``compile``.
    """
    tf = _tf()
    keras = tf.keras
    weights = [np.asarray(W, np.float32) for W in weights]
    K = weights[-1].shape[0]
    reg = (keras.regularizers.L1L2(l1=l1 / K, l2=l2 / (2 * K))
           if (l2 > 0 or l1 > 0) else None)
    layers = [keras.Input((weights[0].shape[1] - 1,))]
    for W in weights:
        layers.append(keras.layers.Dense(W.shape[0], activation="sigmoid",
                                         kernel_regularizer=reg))
    model = keras.Sequential(layers)
    for layer, W in zip(model.layers, weights):
        layer.set_weights([np.ascontiguousarray(W[:, 1:].T), W[:, 0].copy()])
    if optimizer == "rmsprop":
        opt = keras.optimizers.RMSprop(learning_rate, rho=rho, epsilon=epsilon / K**2)
    elif optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2,
                                    epsilon=epsilon / K)
    else:
        raise ValueError(f"objective_mlp: optimizer must be 'rmsprop' or 'adam', "
                         f"got {optimizer!r}")
    model.compile(optimizer=opt, loss=keras.losses.BinaryCrossentropy(reduction="sum"),
                  metrics=["accuracy"], jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


#: The blog series' CNN: (filters, kernel, activation) per conv layer, pool
#: sizes after the first two, (units, activation) per dense layer.
BLOG_CNN_LAYERS = dict(
    conv=[(32, (3, 3), "relu"), (64, (3, 3), "relu"), (64, (3, 3), "relu")],
    pool=[(2, 2), (2, 2)],
    dense=[(70, "relu"), (10, "softmax")],
)


def blog_cnn(conv=None, pool=None, dense=None, input_shape=(28, 28, 1),
             optimizer="rmsprop"):
    """The blog series' CNN builder: Conv2D layers, each of the first ``len(pool)``
    followed by max-pooling, then Flatten and the dense layers.

    conv  : list of (filters, (kh, kw), activation)
    pool  : list of (ph, pw); needs ``len(pool) <= len(conv)``
    dense : list of (units, activation); the last is the output layer

    Defaults are :data:`BLOG_CNN_LAYERS` (96,844 parameters).  Compiled with
    ``optimizer``, categorical cross-entropy and accuracy.
    """
    tf = _tf()
    keras = tf.keras
    conv = BLOG_CNN_LAYERS["conv"] if conv is None else conv
    pool = BLOG_CNN_LAYERS["pool"] if pool is None else pool
    dense = BLOG_CNN_LAYERS["dense"] if dense is None else dense
    if not conv or not dense:
        raise ValueError("blog_cnn needs at least one conv and one dense layer")
    if len(pool) > len(conv):
        raise ValueError(f"{len(pool)} pooling layers for {len(conv)} conv layers: "
                         "at most one pooling layer follows each conv layer")
    layers = [keras.Input(input_shape)]
    for i, (filters, kernel, act) in enumerate(conv):
        layers.append(keras.layers.Conv2D(filters, kernel, activation=act))
        if i < len(pool):
            layers.append(keras.layers.MaxPooling2D(pool[i]))
    layers.append(keras.layers.Flatten())
    for units, act in dense:
        layers.append(keras.layers.Dense(units, activation=act))
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def mnist_for_keras(X, y, n_classes=10, images=False):
    """The blog series' Keras preprocessing: x/255 as float32 and one-hot labels.

    ``images=True`` reshapes to (n, 28, 28, 1) for the CNN.
    """
    Xk = np.asarray(X, np.float32).reshape(len(X), -1) / np.float32(255.0)
    if images:
        Xk = Xk.reshape(len(X), 28, 28, 1)
    Y = np.zeros((len(y), n_classes), np.float32)
    Y[np.arange(len(y)), np.asarray(y, np.int64)] = 1.0
    return Xk, Y


class KerasTwin:
    """A fastmlp network rebuilt in Keras, computing with TensorFlow.

    Parameters
    ----------
    weights : list of (n_out, 1 + n_in) arrays   fastmlp layout, bias in column 0
    mean, scale : arrays or None                 fastmlp's input scaling
    l2, l1, momentum : float                     fastmlp's hyperparameters
    optimizer, rho, beta_1, beta_2, epsilon      fastmlp's optimiser; "rmsprop"
                                                 and "adam" are Keras's own
                                                 ``keras.optimizers`` classes

    ``model`` is a ``keras.Sequential`` of Dense layers (``activation`` in the
    hidden layers, ``output`` at the output: sigmoid, softmax, or identity as
    Keras's "linear") whose kernel is ``W[:, 1:].T`` and bias ``W[:, 0]``.
    The loss is fastmlp's, summed over outputs and samples: binary
    cross-entropy (sigmoid; one-hot or multilabel targets), categorical
    cross-entropy (softmax) or the squared error ``1/2 sum (a - y)^2``
    (identity), each sample's term times its weight when
    ``sample_weight`` is given; plus ``l2/2 sum W^2 + l1 sum |W|`` over the
    kernels (not weighted).  :meth:`train_step` applies fastmlp's
    momentum rule ``W -= lr G + momentum dW_prev`` with plain TensorFlow ops
    for "sgd", and ``keras.optimizers.RMSprop`` / ``Adam`` for "rmsprop" /
    "adam", so those two are checked against Keras's implementation.
    """

    def __init__(self, weights, mean=None, scale=None, l2=0.0, l1=0.0, momentum=0.0,
                 activation="sigmoid", output="sigmoid", optimizer="sgd", rho=0.9,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        tf = _tf()
        self._tf = tf
        keras = tf.keras
        weights = [np.asarray(W, np.float32) for W in weights]
        layers = [keras.Input((weights[0].shape[1] - 1,))]
        for i, W in enumerate(weights):
            act = output if i == len(weights) - 1 else activation
            act = "linear" if act == "identity" else act
            layers.append(keras.layers.Dense(W.shape[0], activation=act))
        self.model = keras.Sequential(layers)
        for layer, W in zip(self.model.layers, weights):
            layer.set_weights([np.ascontiguousarray(W[:, 1:].T), W[:, 0].copy()])
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.scale = None if scale is None else np.asarray(scale, np.float32)
        self.l2, self.l1, self.momentum = float(l2), float(l1), float(momentum)
        self.output = output
        self._vars = []
        for layer in self.model.layers:
            self._vars += [layer.kernel, layer.bias]
        self._prev = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self.optimizer = optimizer
        if optimizer == "rmsprop":
            self._opt = keras.optimizers.RMSprop(rho=rho, epsilon=epsilon)
        elif optimizer == "adam":
            self._opt = keras.optimizers.Adam(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        elif optimizer == "sgd":
            self._opt = None
        else:
            raise ValueError(f"unknown optimizer {optimizer!r}")

    def transform(self, X):
        """Scale X as the fastmlp model does (float32)."""
        X = np.asarray(X, np.float32)
        if self.mean is not None:
            X = (X - self.mean) / self.scale
        return X

    def _loss(self, Xs, Y, sample_weight=None):
        tf = self._tf
        A = tf.convert_to_tensor(Xs)
        layers = self.model.layers
        for layer in layers[:-1]:
            A = layer(A)
        logits = tf.matmul(A, layers[-1].kernel) + layers[-1].bias
        if self.output == "softmax":
            terms = tf.nn.softmax_cross_entropy_with_logits(labels=Y, logits=logits)
        elif self.output == "identity":
            terms = 0.5 * tf.square(logits - Y)
        else:
            terms = tf.nn.sigmoid_cross_entropy_with_logits(labels=Y, logits=logits)
        if sample_weight is None:
            data = tf.reduce_sum(terms)
        else:
            if len(terms.shape) == 2:                     # one term per output
                terms = tf.reduce_sum(terms, axis=1)
            w = tf.convert_to_tensor(np.asarray(sample_weight, np.float32))
            data = tf.reduce_sum(w * terms)
        reg = tf.constant(0.0)
        for layer in layers:
            if self.l2 > 0:
                reg += 0.5 * self.l2 * tf.reduce_sum(tf.square(layer.kernel))
            if self.l1 > 0:
                reg += self.l1 * tf.reduce_sum(tf.abs(layer.kernel))
        return data, reg

    def _tape(self, Xs, Y, sample_weight=None):
        """(loss, regularisation, d(total)/d(variables)) by tf.GradientTape."""
        tf = self._tf
        Y = tf.convert_to_tensor(np.asarray(Y, np.float32))
        with tf.GradientTape() as tape:
            data, reg = self._loss(Xs, Y, sample_weight)
            total = data + reg
        return data, reg, tape.gradient(total, self._vars)

    def gradients(self, Xs, Y, sample_weight=None):
        """(loss, regularisation, gradients in fastmlp layout) for the scaled
        batch ``Xs`` and targets ``Y`` (one-hot, multilabel or regression
        rows), each sample weighted by ``sample_weight`` (None: 1), by
        tf.GradientTape."""
        data, reg, grads = self._tape(Xs, Y, sample_weight)
        out = []
        for gk, gb in zip(grads[0::2], grads[1::2]):
            out.append(np.column_stack([gb.numpy(), gk.numpy().T]).astype(np.float32))
        return float(data), float(reg), out

    def train_step(self, Xs, Y, lr, sample_weight=None):
        """One optimiser step on the batch at rate ``lr`` (samples weighted by
        ``sample_weight``, None: 1); for "sgd" fastmlp's rule dW = lr G;
        W -= dW + momentum dW_prev; dW_prev = dW.  Returns the batch cost
        before the step."""
        data, reg, grads = self._tape(Xs, Y, sample_weight)
        if self._opt is not None:
            self._opt.learning_rate = float(lr)
            self._opt.apply_gradients(zip(grads, self._vars))
            return float(data + reg)
        for v, g, prev in zip(self._vars, grads, self._prev):
            dw = lr * g
            v.assign_sub(dw + self.momentum * prev)
            prev.assign(dw)
        return float(data + reg)

    def weights(self):
        """Current weights in fastmlp layout (n_out, 1 + n_in), bias in column 0."""
        return [np.column_stack([layer.bias.numpy(), layer.kernel.numpy().T])
                for layer in self.model.layers]

    def predict_outputs(self, X):
        """The output layer's outputs for raw (unscaled) X."""
        return self.model(self.transform(X), training=False).numpy()


def keras_twin(model):
    """The :class:`KerasTwin` of a fitted :class:`fastmlp.MLPClassifier` or
    :class:`fastmlp.MLPRegressor` (its output function as fitted: what
    ``output="auto"`` chose)."""
    if not hasattr(model, "coefs_"):
        raise ValueError(f"keras_twin needs a fitted model; this {type(model).__name__} is "
                         "not fitted")
    return KerasTwin(model.coefs_, model.mean_, model.scale_, l2=model.l2, l1=model.l1,
                     momentum=model.momentum, activation=model.activation,
                     output=model.out_activation_, optimizer=model.optimizer, rho=model.rho,
                     beta_1=model.beta_1, beta_2=model.beta_2, epsilon=model.epsilon)
