"""The network's named choices, and their numbers in the C kernels, in one table.

Activations, output layers (each with its loss) and optimizers travel through
the package as names.  This module is the only place that maps a name to
what the kernels need: the compiled backend reads ``c_id`` from here (and
checks at import that the numbers equal the C header's enums), the NumPy
backend dispatches on the name, and the estimator and the command line take
their lists of choices from here.  It imports nothing from the package.
"""

from typing import NamedTuple

__all__ = ["Activation", "Output", "OptimizerKind", "ACTIVATIONS", "OUTPUTS",
           "OPTIMIZERS", "activation", "output", "kernel_kind", "optimizer_kind"]


class Activation(NamedTuple):
    """A hidden-layer activation; its derivative is taken from the output A."""

    name: str
    c_id: int            # FM_SIGMOID, FM_TANH, FM_RELU in csrc/fastmlp_elementwise.h
    derivative: str      # in terms of the layer's output A


class Output(NamedTuple):
    """An output layer with the loss it is trained on.  For each, the
    loss's gradient with respect to the output layer's input is A - Y."""

    name: str
    c_id: int            # the kind the C kernels apply (FM_SIGMOID, FM_SOFTMAX, FM_IDENTITY)
    loss: str


class OptimizerKind(NamedTuple):
    """An update rule and the state arrays it keeps per weight matrix."""

    name: str
    c_id: int            # FM_SGD, FM_RMSPROP, FM_ADAM
    state: tuple         # names of its per-matrix state arrays, in kernel order

    @property
    def n_states(self):
        """State arrays per weight matrix: 2 for adam, else 1."""
        return len(self.state)


def _table(*entries):
    return {e.name: e for e in entries}


#: Hidden-layer activations.
ACTIVATIONS = _table(
    Activation("sigmoid", 0, "A (1 - A)"),
    Activation("tanh", 1, "1 - A^2"),
    Activation("relu", 2, "[A > 0]"),
)

#: Output layers and their losses, each summed over outputs and samples (a
#: sample's term weighted by its sample weight, when there are weights).
#: "identity" adds the bias and applies nothing else; its squared error
#: carries the 1/2, so that its gradient is A - Y like the others'.
OUTPUTS = _table(
    Output("sigmoid", 0, "LogLoss: -sum(y log a + (1 - y) log(1 - a))"),
    Output("softmax", 3, "categorical cross-entropy: -sum(y log a)"),
    Output("identity", 4, "squared error: 1/2 sum (a - y)^2"),
)

#: Update rules (see :mod:`fastmlp._optim` for their formulas).
OPTIMIZERS = _table(
    OptimizerKind("sgd", 0, ("velocity",)),
    OptimizerKind("rmsprop", 1, ("mean_square",)),
    OptimizerKind("adam", 2, ("first_moment", "second_moment")),
)


def _lookup(table, what, name):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {name!r}; choose one of {tuple(table)}") from None


def activation(name):
    """The :class:`Activation` called ``name``; ValueError naming the choices."""
    return _lookup(ACTIVATIONS, "activation", name)


def output(name):
    """The :class:`Output` called ``name``; ValueError naming the choices."""
    return _lookup(OUTPUTS, "output", name)


def kernel_kind(name):
    """The C kernels' number for a layer's activation: a hidden activation
    or an output layer's (the kernels apply either to any layer)."""
    entry = ACTIVATIONS.get(name) if isinstance(name, str) else None
    entry = entry or (OUTPUTS.get(name) if isinstance(name, str) else None)
    if entry is None:
        choices = tuple(dict.fromkeys(list(ACTIVATIONS) + list(OUTPUTS)))
        raise ValueError(f"unknown activation {name!r}; choose one of {choices}")
    return entry.c_id


def optimizer_kind(name):
    """The :class:`OptimizerKind` called ``name``; ValueError naming the choices."""
    return _lookup(OPTIMIZERS, "optimizer", name)
