"""Learning-rate schedules: what rate each epoch trains at.

The trainer asks a schedule for the rate at the start of every epoch
(:meth:`rate`, with the epoch counted from 0 over the network's life) and,
when the no-improvement rule fires (:class:`fastmlp._trainer.Plateau`),
whether it can answer by lowering the rate (:meth:`reduce`) or training
must stop.  Three schedules:

* :class:`DecaySchedule`, the blog series' decay, whose rates are known in
  advance (:func:`lr_schedule`); it never reduces on a plateau;
* :class:`AdaptiveSchedule`, scikit-learn's ``learning_rate="adaptive"``:
  constant until a plateau, then divided by 5, and exhausted once at or
  below 1e-6;
* :class:`FixedRates`, a given list (tests, and ``Trainer.run(rates)``).

:class:`SampleClock` makes any of them count epochs in training samples
(``samples_per_epoch``): data streamed through ``partial_fit`` in blocks of
any size then meets the rates a fit over the whole data set would use.

Like the trainer, this module knows nothing of scikit-learn or the
estimators.
"""

import numpy as np

__all__ = ["lr_schedule", "DecaySchedule", "AdaptiveSchedule", "FixedRates", "SampleClock"]


def lr_schedule(learning_rate, lr_decay, epochs, start_epoch=0):
    """Learning rate used in each epoch, as the blog series decays it.

    At the start of epoch ``e`` (counted from 0 over the model's life) the rate
    is divided by ``1 + lr_decay * e``.  With learning_rate 0.001 and lr_decay
    1e-6 the rate in the 35th epoch is 0.0009994051838157095, the figure the
    blog prints.  Returns a float64 array of length ``epochs`` for epochs
    ``start_epoch .. start_epoch + epochs - 1``.
    """
    rate = float(learning_rate)
    out = np.empty(epochs)
    for e in range(start_epoch + epochs):
        rate /= 1.0 + lr_decay * e
        if e >= start_epoch:
            out[e - start_epoch] = rate
    return out


class _Unreduced:
    """A schedule that a plateau does not change and that keeps no state."""

    def reduce(self):
        return False

    def get_state(self):
        return None

    def set_state(self, value):
        pass


class DecaySchedule(_Unreduced):
    """The blog's decay: the rate of epoch ``e`` is ``lr_schedule``'s, a
    function of the epoch count alone, so a run continued later (partial_fit,
    warm_start) goes on where it stopped.  A plateau does not change it: the
    no-improvement rule then stops training."""

    name = "decay"

    def __init__(self, learning_rate, lr_decay):
        self.learning_rate, self.lr_decay = learning_rate, lr_decay
        self._start, self._rates = 0, np.empty(0)

    def rate(self, epoch):
        if not self._start <= epoch < self._start + len(self._rates):
            # the rates of the next 64 epochs at once: the same divisions, in
            # the same order, as lr_schedule for any single epoch
            self._start, self._rates = epoch, lr_schedule(self.learning_rate, self.lr_decay,
                                                          64, epoch)
        return self._rates[epoch - self._start]


class AdaptiveSchedule:
    """scikit-learn's ``learning_rate="adaptive"``.

    The rate stays constant while the monitored figure keeps improving.  On
    each plateau (see :class:`fastmlp._trainer.Plateau`) it is divided by
    ``factor`` (5) and training goes on; a plateau that finds the rate already
    at or below ``min_rate`` (1e-6) stops training, as in scikit-learn, so the
    last epochs may run at a rate just under 1e-6.

    The current rate lives in ``state.next_rate`` (a
    :class:`fastmlp._network.NetworkState`), so it carries over to the next
    partial_fit or warm-started fit and into the model file.  When it is
    unset, the schedule starts from the rate of the network's last epoch, or
    from ``learning_rate`` for a new network.
    """

    name = "adaptive"
    factor = 5.0
    min_rate = 1e-6

    def __init__(self, state, learning_rate):
        self.state, self.learning_rate = state, float(learning_rate)

    def rate(self, epoch):
        s = self.state
        if s.next_rate is None:
            s.next_rate = float(s.learning_rate if s.learning_rate is not None
                                else self.learning_rate)
        return s.next_rate

    def reduce(self):
        s = self.state
        if s.next_rate <= self.min_rate:
            return False
        s.next_rate = s.next_rate / self.factor
        return True

    def get_state(self):
        return self.state.next_rate

    def set_state(self, value):
        self.state.next_rate = value


class FixedRates(_Unreduced):
    """The rates of a list, one per epoch, for the epochs from ``start`` on."""

    name = "fixed"

    def __init__(self, rates, start=0):
        self.rates, self.start = list(rates), start

    def rate(self, epoch):
        return self.rates[epoch - self.start]


class SampleClock:
    """``schedule`` with its epochs counted in samples: the rate of a pass
    that starts after ``state.samples`` training samples is the wrapped
    schedule's rate for epoch ``state.samples // samples_per_epoch``.

    A fit whose data set has ``samples_per_epoch`` rows gets the same rates
    as without the clock; ``partial_fit`` calls on blocks of that data set
    get, block after block, the rate of the epoch the blocks belong to,
    whatever their size, where one epoch per call would decay the rate once
    per block.  Everything else is the wrapped schedule's."""

    def __init__(self, schedule, state, samples_per_epoch):
        self.schedule, self.state = schedule, state
        self.samples_per_epoch = int(samples_per_epoch)

    @property
    def name(self):
        return self.schedule.name

    def rate(self, epoch):
        return self.schedule.rate(self.state.samples // self.samples_per_epoch)

    def reduce(self):
        return self.schedule.reduce()

    def get_state(self):
        return self.schedule.get_state()

    def set_state(self, value):
        self.schedule.set_state(value)

    def __getattr__(self, name):           # min_rate, factor, ...
        if name in ("schedule", "state"):
            raise AttributeError(name)
        return getattr(self.schedule, name)
