"""The optimisers a fit can use, described once for both backends.

* ``"sgd"``: the blog series' momentum rule, ``dW = lr G;  W -= dW + momentum dW_prev``.
* ``"rmsprop"``: Keras ``RMSprop`` (its defaults: rho 0.9, epsilon 1e-7, no
  momentum, not centred)::

      v = rho v + (1 - rho) G^2;   W -= lr G / sqrt(v + epsilon)

* ``"adam"``: Keras ``Adam`` (its defaults: beta_1 0.9, beta_2 0.999, epsilon
  1e-7, no amsgrad), for step ``t = 1, 2, ...``::

      alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
      m += (G - m)(1 - beta_1);   v += (G^2 - v)(1 - beta_2)
      W -= m alpha / (sqrt(v) + epsilon)

``G`` is the regularised gradient of the batch cost, which fastmlp sums over
the samples (Keras averages); rmsprop and adam are nearly invariant to that
scale.  The bias weights are updated by the same rule, without regularisation.

Each rule keeps one state array per weight matrix (``"sgd"``: the velocity,
i.e. the last step's ``lr G``; ``"rmsprop"``: the mean square; ``"adam"``: the
first moment), and adam a second (the second moment) plus the step count;
:data:`fastmlp._registry.OPTIMIZERS` names them.  Both backends apply a rule
in one fused pass per weight row, with the float32 operations in the order
written above, which is Keras's order.
"""

from typing import NamedTuple

import numpy as np

from ._registry import OPTIMIZERS, optimizer_kind

__all__ = ["OPTIMIZERS", "Optimizer"]


class Optimizer(NamedTuple):
    """An optimiser and its hyperparameters (momentum is passed separately,
    as the blog series' rule has always taken it).  Hyperparameters of the other
    rules are ignored."""

    name: str = "sgd"
    rho: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    @classmethod
    def checked(cls, opt):
        """``opt`` (None, a name or an Optimizer) as a validated Optimizer."""
        if opt is None:
            return cls()
        if isinstance(opt, str):
            opt = cls(opt)
        if not isinstance(opt, cls):
            raise TypeError(f"optimizer must be a name or an Optimizer, got {opt!r}")
        optimizer_kind(opt.name)          # ValueError naming the choices
        for name in ("rho", "beta_1", "beta_2"):
            v = getattr(opt, name)
            if not (0.0 <= v < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if not (opt.epsilon > 0.0) or not np.isfinite(opt.epsilon):
            raise ValueError(f"epsilon must be a finite number > 0, got {opt.epsilon!r}")
        return opt

    @property
    def kind(self):
        """The rule's number in the compiled kernels (FM_SGD, FM_RMSPROP, FM_ADAM)."""
        return optimizer_kind(self.name).c_id

    @property
    def n_states(self):
        """State arrays per weight matrix: 2 for adam, else 1."""
        return optimizer_kind(self.name).n_states

    def constants(self, lr, step, dtype=np.float32):
        """Constants of the update with rate ``lr`` at step ``step`` (1 for
        the first step of a fresh model), computed as Keras does:
        ``(lr, rho, 1 - rho, 1 - beta_1, 1 - beta_2, alpha, epsilon)``, alpha in
        ``dtype`` arithmetic from beta^t rounded to ``dtype`` (float32 in training; the NumPy kernels also run
        in float64 for the gradient checks).  The compiled backend computes
        the same float32 values in C (tested equal)."""
        f = np.dtype(dtype).type
        alpha = f(0.0)
        if self.name == "adam":
            # beta^t: the double power of the float32 beta, rounded once (NumPy's
            # float32 power and C's powf differ in the last bit for some t)
            b1p = f(float(np.float32(self.beta_1)) ** float(step))
            b2p = f(float(np.float32(self.beta_2)) ** float(step))
            alpha = f(lr) * np.sqrt(f(1.0) - b2p) / (f(1.0) - b1p)
        return (f(lr), f(self.rho), f(1.0 - self.rho), f(1.0 - self.beta_1), f(1.0 - self.beta_2),
                f(alpha), f(self.epsilon))
