"""Early stopping's hold-out: the validation part split off the training data.

As scikit-learn's MLP does it: ``train_test_split`` with ``test_size`` the
validation fraction, stratified by the labels for a classifier and seeded by
the estimator's ``random_state``.  Splitting the row numbers and indexing X
with them gives exactly ``train_test_split(X, y, ...)``'s parts.  A fraction
that cannot give every class to both parts is refused with the numbers.
"""

import math

import numpy as np
from sklearn.model_selection import train_test_split

__all__ = ["hold_out"]


def hold_out(X, y, w, fraction, strata, random_state):
    """``(X_train, y_train, w_train, (X_val, y_val, w_val))``: ``fraction``
    of the rows of (X, y) and of the sample weights ``w`` (or None) held out,
    stratified by ``strata`` (the labels, or None).

    ``random_state`` as the estimator has it: an int or None seeds the
    split; a NumPy Generator gives a seed drawn from it."""
    n = X.shape[0]
    n_val = math.ceil(fraction * n)           # train_test_split's count
    if strata is not None:
        labels, counts = np.unique(strata, return_counts=True)
        k = len(labels)
        if counts.min() < 2:
            raise ValueError(f"early_stopping: class {labels[counts.argmin()].tolist()!r} has only 1 "
                             "sample, but the stratified validation split needs at least 2 of "
                             "every class (pass validation_data instead)")
        if n_val < k:
            raise ValueError(f"validation_fraction={fraction} is too small: it holds out "
                             f"{n_val} of {n} samples, fewer than the {k} classes, so the "
                             f"validation set cannot hold every class; use at least {k / n:.3g}")
        if n - n_val < k:
            raise ValueError(f"validation_fraction={fraction} is too large: it leaves "
                             f"{n - n_val} of {n} samples for training, fewer than the {k} "
                             f"classes; use at most {(n - k) / n:.3g}")
    if n_val < 2 or n_val >= n:
        raise ValueError(f"validation_fraction={fraction} holds out {n_val} of {n} samples; "
                         "early stopping needs at least 2 for validation and 1 for training "
                         "(raise validation_fraction, or give more data)")
    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(2 ** 32 - 1))
    train, val = train_test_split(np.arange(n), test_size=fraction, random_state=random_state,
                                  stratify=strata)
    if strata is not None:
        for part, rows in (("validation", val), ("training", train)):
            absent = np.setdiff1d(labels, strata[rows])
            if absent.size:
                raise ValueError(f"validation_fraction={fraction} leaves no sample of class(es) "
                                 f"{absent[:5].tolist()} in the {part} set ({len(val)} of {n} "
                                 "samples held out); change validation_fraction")
    part = (lambda rows: None) if w is None else (lambda rows: w[rows])
    return X[train], y[train], part(train), (X[val], y[val], part(val))
