"""A network's trainable state: layer sizes, weights and optimiser state.

:class:`NetworkState` is everything a training run changes and everything
needed to continue it: the weight matrices, the optimiser's state arrays,
the step, sample and epoch counts, the last learning rate and the state of
the adaptive schedule and of the no-improvement rule.  The estimator owns
one, a backend updates its arrays in place, the trainer snapshots and
restores them, and :mod:`fastmlp._io` writes and reads them.
"""

from dataclasses import dataclass, field

import numpy as np

from ._registry import optimizer_kind

__all__ = ["NetworkState", "init_weights", "INITS", "owned_array"]


def owned_array(a):
    """``a`` itself when it is an aligned, writable, C-ordered array that owns
    its memory, else such a copy.  An array unpickled from out-of-band
    buffers (pickle protocol 5, as Dask sends objects between workers) is a
    view of the message: read-only, and perhaps not aligned to its elements,
    which the kernels refuse."""
    if isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.aligned and \
            a.flags.writeable and a.flags.owndata:
        return a
    return np.array(a, order="C", copy=True)


#: Initialisation rules: the blog series' and Glorot's (scikit-learn's).
INITS = ("glorot", "blog")


def init_weights(layers, init_factor, rng, method="blog", activation="sigmoid"):
    """Initial weight matrices of a network with node counts ``layers``.

    Each matrix is ``(n_out, 1 + n_in)`` float32 with the bias weights in
    column 0, drawn uniformly, layer after layer, from ``rng`` (a NumPy
    Generator), within

    * ``method="blog"``: ``+-0.5 sqrt(1/n_in) init_factor`` (the blog series'
      "sqrt_nodes" rule);
    * ``method="glorot"``: ``+-sqrt(f / (n_in + n_out))``, with f = 2 for a
      sigmoid ``activation`` and 6 otherwise, scikit-learn's choice
      (``init_factor`` is not used).

    A fit with ``random_state=s`` starts from
    ``init_weights(layers, init_factor, np.random.default_rng(s), init, activation)``.
    """
    if method not in INITS:
        raise ValueError(f"unknown init {method!r}; choose one of {INITS}")
    weights = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        if method == "blog":
            r = 0.5 * np.sqrt(1.0 / n_in) * init_factor
        else:
            r = np.sqrt((2.0 if activation == "sigmoid" else 6.0) / (n_in + n_out))
        weights.append(rng.uniform(-r, r, size=(n_out, 1 + n_in)).astype(np.float32))
    return weights


@dataclass(eq=False)
class NetworkState:
    """The trainable state of one network.

    Attributes
    ----------
    layers : tuple of int
        Nodes per layer, input to output, e.g. (784, 70, 30, 10).
    weights : list of ndarray
        ``(n_out, 1 + n_in)`` float32 C-ordered matrices, bias in column 0.
    optimizer : str
        The update rule whose state this holds ("sgd", "rmsprop", "adam").
    state1, state2 : list of ndarray, list or None
        The rule's state arrays, each shaped like its weight matrix:
        ``state1`` is sgd's velocity (the last step's ``lr G``), rmsprop's
        mean square or adam's first moment; ``state2`` is adam's second
        moment (None for the other rules).  Also reachable by their names:
        :attr:`velocity`, :attr:`mean_square`, :attr:`first_moment`,
        :attr:`second_moment`.
    step : int
        Optimiser steps (batches) taken; adam's bias correction counts them.
    epochs : int
        Epochs completed; the learning-rate schedule counts them.
    learning_rate : float or None
        Rate of the last completed epoch (None before the first).
    samples : int
        Training samples the steps have used (scikit-learn's ``t_``).
    next_rate : float or None
        The adaptive schedule's rate for the next epoch (None when the
        network was not trained with it, or it starts from the last rate).
    plateau : dict or None
        The no-improvement rule's state after the last epoch: the record
        entry it watches (``key``), the ``best`` value, its ``best_epoch`` and
        the ``count`` of epochs without improvement since.
    """

    layers: tuple
    weights: list
    optimizer: str = "sgd"
    state1: list = None
    state2: list = None
    step: int = 0
    epochs: int = 0
    learning_rate: float = None
    samples: int = 0
    next_rate: float = None
    plateau: dict = None
    _names: tuple = field(init=False, repr=False)

    def __post_init__(self):
        self.layers = tuple(int(n) for n in self.layers)
        self._names = optimizer_kind(self.optimizer).state
        if self.state1 is None:
            self.state1 = [np.zeros_like(W) for W in self.weights]
        if self.state2 is None and len(self._names) == 2:
            self.state2 = [np.zeros_like(W) for W in self.weights]

    @classmethod
    def fresh(cls, layers, init_factor, rng, optimizer="sgd", init="blog",
              activation="sigmoid"):
        """A new network: :func:`init_weights` and zero optimiser state."""
        return cls(tuple(layers), init_weights(layers, init_factor, rng, init, activation),
                   optimizer)

    def __setstate__(self, state):
        """Unpickling: the arrays as the kernels need them (:func:`owned_array`)."""
        for key in ("weights", "state1", "state2"):
            if state.get(key) is not None:
                state[key] = [owned_array(a) for a in state[key]]
        self.__dict__.update(state)

    def _named(self, name):
        if name not in self._names:
            raise AttributeError(f"the {self.optimizer} optimizer keeps no {name} "
                                 f"(it keeps: {', '.join(self._names)})")
        return self.state1 if self._names.index(name) == 0 else self.state2

    velocity = property(lambda self: self._named("velocity"),
                        doc="sgd's velocity: the last step's lr G, per matrix.")
    mean_square = property(lambda self: self._named("mean_square"),
                           doc="rmsprop's running mean of squared gradients, per matrix.")
    first_moment = property(lambda self: self._named("first_moment"),
                            doc="adam's first moment estimate, per matrix.")
    second_moment = property(lambda self: self._named("second_moment"),
                             doc="adam's second moment estimate, per matrix.")

    def arrays(self):
        """Every array a training step writes: weights, then state1, then state2."""
        return list(self.weights) + list(self.state1) + list(self.state2 or ())
