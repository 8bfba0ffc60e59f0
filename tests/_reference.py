"""An independent float64 statement of the blog series' maths, for the tests.

Written as directly as possible (no buffers, no slicing tricks) so that the
backends' optimised forms are checked against the plain definitions.
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ACT = {"sigmoid": sigmoid, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


OUT = {"sigmoid": sigmoid, "softmax": softmax, "identity": lambda z: z}


def forward(weights, X, activation="sigmoid", output="sigmoid"):
    """List of layer outputs [X, A_1, ..., A_L] in float64."""
    A = [np.asarray(X, np.float64)]
    for i, W in enumerate(weights):
        W = np.asarray(W, np.float64)
        ones = np.ones((A[-1].shape[0], 1))
        if i == len(weights) - 1:
            act = OUT[output]
        else:
            act = ACT[activation]
        A.append(act(np.hstack([ones, A[-1]]) @ W.T))
    return A


def loss(weights, X, Y, l2=0.0, l1=0.0, activation="sigmoid", output="sigmoid",
         sample_weight=None):
    """LogLoss (sigmoid output; Y one-hot or multilabel 0/1), categorical
    cross-entropy (softmax output) or squared error 1/2 sum (a - y)^2
    (identity output), summed over outputs and samples, each sample's term
    times its weight when ``sample_weight`` is given; plus the
    regularisation (not weighted)."""
    a = forward(weights, X, activation, output)[-1]
    Y = np.asarray(Y, np.float64)
    if output == "softmax":
        terms = -(Y * np.log(a))
    elif output == "identity":
        terms = 0.5 * (a - Y) ** 2
    else:
        terms = -(Y * np.log(a) + (1.0 - Y) * np.log(1.0 - a))
    if sample_weight is None:
        data = np.sum(terms)
    else:
        data = np.sum(np.asarray(sample_weight, np.float64) * terms.sum(axis=1))
    reg = 0.0
    for W in weights:
        w = np.asarray(W, np.float64)[:, 1:]
        reg += 0.5 * l2 * np.sum(w * w) + l1 * np.sum(np.abs(w))
    return data, reg


def numeric_gradient(weights, X, Y, l2, l1, eps=1e-6, activation="sigmoid",
                     output="sigmoid", sample_weight=None):
    """Central finite differences of loss() for every weight, float64."""
    weights = [np.array(W, np.float64) for W in weights]
    grads = []
    for W in weights:
        G = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + eps
            up = sum(loss(weights, X, Y, l2, l1, activation, output, sample_weight))
            W[idx] = old - eps
            down = sum(loss(weights, X, Y, l2, l1, activation, output, sample_weight))
            W[idx] = old
            G[idx] = (up - down) / (2 * eps)
        grads.append(G)
    return grads


def random_problem(layers, batch, seed, dtype=np.float32):
    """Weights in the blog series' init range, standardised-looking X, one-hot Y."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        r = np.sqrt(1.0 / n_in)
        weights.append(rng.uniform(-r, r, (n_out, 1 + n_in)).astype(dtype))
    X = rng.standard_normal((batch, layers[0])).astype(dtype)
    labels = rng.integers(0, layers[-1], batch)
    Y = np.zeros((batch, layers[-1]), dtype)
    Y[np.arange(batch), labels] = 1
    return weights, X, Y


def dense_targets(kind, batch, K, seed, dtype=np.float32):
    """Dense targets Y (batch, K): "multilabel" 0/1 rows (each label on with
    probability 0.4, so rows with no label and several labels occur), or
    "regression" values around 0 of both signs."""
    rng = np.random.default_rng(1000 + seed)
    if kind == "multilabel":
        return (rng.uniform(size=(batch, K)) < 0.4).astype(dtype)
    if kind == "regression":
        return rng.normal(0.0, 1.5, (batch, K)).astype(dtype)
    raise ValueError(kind)


def sample_weights(batch, seed, zeros=True):
    """Per-sample float32 weights in [0, 3), a few of them exactly 0."""
    rng = np.random.default_rng(2000 + seed)
    w = rng.uniform(0.0, 3.0, batch).astype(np.float32)
    if zeros:
        w[::5] = 0.0
    return w


def assert_same_training_state(Wa, Wb, Va, Vb):
    """The weights and optimiser states two backends end a run with, compared
    at the tolerances of tests/test_backends.py."""
    for l, (a, b) in enumerate(zip(Wa, Wb)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6, err_msg=f"W[{l}]")
    for l, (a, b) in enumerate(zip(Va, Vb)):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-7, err_msg=f"V[{l}]")



def blog(*hidden, **params):
    """``MLPClassifier.blog_experiment(**params)``, with the hidden layer sizes
    optionally first, as MLPClassifier takes them.  The tests of mechanics
    (layouts, faults, twins, files) were written against the blog experiment's
    settings, which were the estimator's defaults until they became a preset;
    they build their models from it so that they keep testing the same runs."""
    from fastmlp import MLPClassifier
    if hidden:
        params["hidden_layer_sizes"] = hidden[0]
    return MLPClassifier.blog_experiment(**params)
