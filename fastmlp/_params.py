"""The estimators' hyperparameters, declared in one table.

Each estimator class lists its parameters as ``name: Param(spec, default)``
in the order of its constructor.  From that table come:

* the constructor itself (:func:`make_init`): it stores each argument
  under its name and nothing else, as scikit-learn requires, and carries
  an explicit signature, so ``help()``, ``get_params`` and ``clone`` see
  every parameter and its default;
* the checks (:func:`check_params`): every call to fit checks every
  parameter with its spec, and the message names the parameter.
"""

import inspect
import numbers
from typing import NamedTuple

import numpy as np

from ._validation import check_choice, check_nonneg_float, check_positive_int

__all__ = ["Param", "Spec", "Integer", "Real", "Fraction", "Patience", "OneOf", "Flag",
           "LayerSizes", "BatchSize", "ClassWeight", "check_params", "extended", "make_init"]


class Param(NamedTuple):
    """One hyperparameter: how it is checked and its default."""

    spec: object
    default: object


class Spec:
    """How one hyperparameter is checked: ``check(name, value)`` returns the
    value to train with or raises TypeError / ValueError naming it."""

    def check(self, name, value):
        return value


class Integer(Spec):
    """An integer >= ``minimum``; None too when ``optional``."""

    def __init__(self, minimum=1, optional=False):
        self.minimum, self.optional = minimum, optional

    def check(self, name, value):
        if value is None and self.optional:
            return None
        return check_positive_int(name, value, self.minimum)


class Real(Spec):
    """A finite number >= 0 (> 0 when ``positive``)."""

    def __init__(self, positive=False):
        self.positive = positive

    def check(self, name, value):
        return check_nonneg_float(name, value, allow_zero=not self.positive)


class Fraction(Spec):
    """A number strictly between 0 and 1."""

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
        return float(value)


class Patience(Spec):
    """An integer >= 1, or None (or infinity, scikit-learn's spelling) for never."""

    def check(self, name, value):
        if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)
                             and value == float("inf")):
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer >= 1 or None (never), got "
                            f"{type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, or None to never stop early, got {value}")
        return int(value)


class OneOf(Spec):
    """One of a fixed set of names."""

    def __init__(self, choices):
        self.choices = tuple(choices)

    def check(self, name, value):
        return check_choice(name, value, self.choices)


class Flag(Spec):
    """A bool (an int is taken as one)."""

    def check(self, name, value):
        if not isinstance(value, (bool, np.bool_, int, np.integer)):
            raise TypeError(f"{name} must be a bool or an int, got {type(value).__name__} "
                            f"{value!r}")
        return value


class LayerSizes(Spec):
    """A tuple of layer sizes >= 1 (one int means one layer)."""

    def check(self, name, value):
        hidden = value
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if isinstance(hidden, str):      # tuple("70") would be ("7", "0")
            raise TypeError(f"{name} must be a tuple of ints, got {hidden!r}")
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise TypeError(f"{name} must be a tuple of ints, got {value!r}") from None
        return tuple(check_positive_int(f"{name} entries", h) for h in hidden)


class BatchSize(Spec):
    """An integer >= 1, or "auto": min(200, n_samples), as scikit-learn."""

    def check(self, name, value):
        if isinstance(value, str):
            if value != "auto":
                raise ValueError(f"{name} must be an integer >= 1 or 'auto', got {value!r}")
            return value
        return check_positive_int(name, value)


class ClassWeight(Spec):
    """None, "balanced", or a dict from class label to a weight >= 0."""

    def check(self, name, value):
        if value is None or (isinstance(value, str) and value == "balanced"):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"{name} must be None, 'balanced' or a dict {{class: weight}}, got "
                            f"{type(value).__name__} {value!r}")
        for label, w in value.items():
            check_nonneg_float(f"{name}[{label!r}]", w)
        return value


def extended(table, after=None, **params):
    """A copy of ``table`` with ``params`` (name=Param) replacing entries of
    the same name where they stand, and new ones inserted after ``after``."""
    new = {k: v for k, v in params.items() if k not in table}
    out = {}
    for name, param in table.items():
        out[name] = params.get(name, param)
        if name == after:
            out.update(new)
            new = {}
    out.update(new)
    return out


def check_params(table, obj):
    """``{name: checked value}`` for every parameter in ``table`` (name ->
    Param), read from ``obj``'s attributes, in the table's order."""
    return {name: param.spec.check(name, getattr(obj, name)) for name, param in table.items()}


def make_init(table):
    """A scikit-learn constructor for the parameters of ``table``.

    The first parameter may be given by position, the others by keyword
    only; each is stored under its own name.  The signature is explicit
    (``__signature__``), so ``inspect.signature``, ``help`` and scikit-learn's
    ``get_params`` see the names and defaults; a wrong or repeated argument
    raises TypeError as any Python function would."""
    names = list(table)
    kinds = [inspect.Parameter.POSITIONAL_OR_KEYWORD] + \
        [inspect.Parameter.KEYWORD_ONLY] * (len(names) - 1)
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, k, default=table[n].default) for n, k in zip(names, kinds)])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        for name in names:
            setattr(self, name, bound.arguments.get(name, table[name].default))

    __init__.__signature__ = signature
    __init__.__doc__ = "Store the hyperparameters (see the class docstring); nothing is checked here."
    return __init__
