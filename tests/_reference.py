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


def forward(weights, X, activation="sigmoid", output="sigmoid"):
    """List of layer outputs [X, A_1, ..., A_L] in float64."""
    A = [np.asarray(X, np.float64)]
    for i, W in enumerate(weights):
        W = np.asarray(W, np.float64)
        ones = np.ones((A[-1].shape[0], 1))
        if i == len(weights) - 1:
            act = softmax if output == "softmax" else sigmoid
        else:
            act = ACT[activation]
        A.append(act(np.hstack([ones, A[-1]]) @ W.T))
    return A


def loss(weights, X, Y, l2=0.0, l1=0.0, activation="sigmoid", output="sigmoid"):
    """LogLoss (sigmoid output) or categorical cross-entropy (softmax output)
    summed over outputs and samples, plus the regularisation."""
    a = forward(weights, X, activation, output)[-1]
    Y = np.asarray(Y, np.float64)
    if output == "softmax":
        data = -np.sum(Y * np.log(a))
    else:
        data = -np.sum(Y * np.log(a) + (1.0 - Y) * np.log(1.0 - a))
    reg = 0.0
    for W in weights:
        w = np.asarray(W, np.float64)[:, 1:]
        reg += 0.5 * l2 * np.sum(w * w) + l1 * np.sum(np.abs(w))
    return data, reg


def numeric_gradient(weights, X, Y, l2, l1, eps=1e-6, activation="sigmoid",
                     output="sigmoid"):
    """Central finite differences of loss() for every weight, float64."""
    weights = [np.array(W, np.float64) for W in weights]
    grads = []
    for W in weights:
        G = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + eps
            up = sum(loss(weights, X, Y, l2, l1, activation, output))
            W[idx] = old - eps
            down = sum(loss(weights, X, Y, l2, l1, activation, output))
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


def assert_same_training_state(Wa, Wb, Va, Vb):
    """The weights and optimiser states two backends end a run with, compared
    at the tolerances of tests/test_backends.py."""
    for l, (a, b) in enumerate(zip(Wa, Wb)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6, err_msg=f"W[{l}]")
    for l, (a, b) in enumerate(zip(Va, Vb)):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-7, err_msg=f"V[{l}]")

