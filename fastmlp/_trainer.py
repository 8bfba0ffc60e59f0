"""The training loop: epochs of mini-batches driven through any backend.

Data flows one way: data -> scaling -> batch plan -> backend step -> epoch
record -> history.  A :class:`Trainer` knows a backend only through
:class:`fastmlp.backends.Backend` and the network only through its
:class:`fastmlp._network.NetworkState`; it knows nothing of scikit-learn or
of the estimator.  Per epoch it

* draws the batch plan (a permutation of the samples, or their order);
* runs every batch through ``backend.train_batch``, checking each cost;
* on divergence or Ctrl-C, puts the network back to its last completed,
  finite step: it restores the epoch's snapshot and replays the epoch's
  earlier batches (steps are deterministic, so this is exact);
* builds the epoch's record (cost, regularisation share, rate, timings,
  phases, whatever the ``evaluate`` hook adds) into the :class:`History`;
* calls the callback after every batch and every epoch.
"""

import math
import time

import numpy as np

from ._history import format_epoch

__all__ = ["Trainer", "BatchPlan", "DivergenceError", "lr_schedule"]


class DivergenceError(FloatingPointError):
    """Training diverged: a batch cost or a weight became NaN or infinite.

    The model keeps the weights (and optimiser state) of the last batch whose
    update left every weight finite; ``history_.stopped`` says where."""


class _Diverged(Exception):
    """Internal: batch ``batch`` of the epoch gave a non-finite cost or weight."""

    def __init__(self, batch, cost):
        super().__init__(batch)
        self.batch, self.cost = batch, cost


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


class BatchPlan:
    """Which rows form each mini-batch of an epoch.

    ``n`` samples in batches of ``batch_size`` (the last holds the rest; a
    batch size above ``n`` means one batch of all samples), drawn from a new
    permutation of ``rng`` every epoch when ``shuffle``, else in order."""

    def __init__(self, n, batch_size, shuffle, rng):
        self.n, self.batch = n, min(batch_size, n)
        self.shuffle, self.rng = shuffle, rng
        self.n_batches = -(-n // self.batch)

    def order(self):
        """This epoch's sample order (draws from the rng when shuffling)."""
        return self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def rows(self, order, b):
        """The rows of batch ``b`` in an epoch's ``order``."""
        return order[b * self.batch:(b + 1) * self.batch]


class _Snapshot:
    """Copies of a network's weights and optimiser state, taken at the start
    of every epoch (about three times the weights' size); with the epoch's
    order they let the trainer rebuild the exact state after any batch of
    the epoch by replaying the batches before it."""

    def __init__(self, state):
        self.arrays = state.arrays()
        self.copies = [np.empty_like(a) for a in self.arrays]     # filled by take()
        self.steps = None

    def take(self, steps):
        for a, c in zip(self.arrays, self.copies):
            np.copyto(c, a)
        self.steps = steps

    def restore(self):
        for a, c in zip(self.arrays, self.copies):
            np.copyto(a, c)


class Trainer:
    """Runs epochs of one backend over one data set, recording into a history.

    Parameters
    ----------
    backend : fastmlp.backends.Backend
        Built on the data and on ``state``; updates ``state``'s arrays.
    state : fastmlp._network.NetworkState
        Its ``step``, ``epochs`` and ``learning_rate`` are kept current after
        every batch and epoch, also when training stops early.
    history : fastmlp.History
        Receives one record per completed epoch, and ``stopped``.
    plan : BatchPlan
    eval_period : int
        Every this many epochs (counted over the network's life), and at the
        last epoch of a run, ``evaluate`` is asked for full-set figures.
    evaluate : callable, optional
        ``evaluate(due, correct) -> dict`` of extra record entries (such as
        ``train_acc`` and ``test_acc``); ``correct`` is the epoch's count of
        correctly predicted training rows, from the batches' own outputs.
    callback : callable, optional
        ``callback(epoch, batch, n_batches, cost)`` after every batch and
        ``callback(epoch, None, n_batches, record)`` after every epoch;
        epochs count from 0 over the network's life.
    verbose : bool
        Print one line per epoch.
    """

    def __init__(self, backend, state, history, plan, eval_period=1, evaluate=None,
                 callback=None, verbose=False):
        self.backend, self.state, self.history, self.plan = backend, state, history, plan
        self.eval_period = eval_period
        self.evaluate, self.callback, self.verbose = evaluate, callback, verbose

    def run(self, rates):
        """Train one epoch per entry of ``rates`` (the learning rate of each).

        Raises DivergenceError when a batch cost or a weight becomes NaN or
        infinite, after putting the network back to the previous step and
        recording where in ``history.stopped``; a KeyboardInterrupt passes
        through, likewise after the network was left at its last completed
        step.
        """
        backend, state, plan, history = self.backend, self.state, self.plan, self.history
        callback = self.callback
        history.stopped = None
        n_batches = plan.n_batches
        costs = np.empty(n_batches)
        regs = np.empty(n_batches)
        snap = _Snapshot(state)
        for e, rate in enumerate(rates):
            backend.reset_phases()
            snap.take(backend.step)
            t0 = time.perf_counter()
            order = plan.order()
            correct = 0
            try:
                for b in range(n_batches):
                    cost, reg, ok = backend.train_batch(plan.rows(order, b), rate)
                    state.step = backend.step
                    if not math.isfinite(cost + reg):
                        raise _Diverged(b, cost)
                    costs[b] = cost + reg
                    regs[b] = reg
                    correct += ok
                    if callback is not None:
                        callback(state.epochs, b, n_batches, cost + reg)
            except _Diverged as d:
                self._diverged(d, snap, order, rate, costs)
            except KeyboardInterrupt:
                self._interrupted(snap, order, rate, costs)
                raise
            t1 = time.perf_counter()
            state.epochs += 1
            state.learning_rate = float(rate)
            record = dict(cost=float(costs.mean()), learning_rate=state.learning_rate,
                          train_time=t1 - t0)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(costs > 0, regs / costs, 0.0)
            record["reg_share"] = float(share.mean())
            due = (state.epochs % self.eval_period == 0) or e == len(rates) - 1
            if self.evaluate is not None:
                record.update(self.evaluate(due, correct))
            record["mean_abs_weight"] = [float(np.abs(W[:, 1:]).mean()) for W in state.weights]
            t2 = time.perf_counter()
            record["eval_time"] = t2 - t1
            record["epoch_time"] = t2 - t0
            record["phases"] = dict(backend.phase_seconds, prediction=t2 - t1)
            history._append(state.epochs - 1, costs, share, **record)
            if callback is not None:
                callback(state.epochs - 1, None, n_batches, record)
            if self.verbose:
                print(format_epoch(state.epochs - 1, record), flush=True)

    def _rewind(self, snap, order, done, rate):
        """Set the weights and optimiser state to those after the first
        ``done`` batches of the current epoch: restore the epoch's snapshot
        and replay those batches (a step is deterministic for the same
        inputs and thread count, so this is exact)."""
        snap.restore()
        self.backend.step = snap.steps
        for b in range(done):
            self.backend.train_batch(self.plan.rows(order, b), rate)
        self.state.step = self.backend.step

    def _stop_record(self, reason, done, costs, **extra):
        self.history.stopped = dict(reason=reason, epoch=self.state.epochs,
                                    batches_completed=int(done),
                                    n_batches=int(self.plan.n_batches),
                                    batch_cost=[float(c) for c in costs[:done]], **extra)

    def _diverged(self, d, snap, order, rate, costs):
        """Batch ``d.batch`` gave a non-finite cost or weight: go back to the
        weights after the batch before it, record where training stopped,
        and raise DivergenceError."""
        self._rewind(snap, order, d.batch, rate)
        what = ("a weight became NaN or infinite in its update"
                if math.isfinite(d.cost) else f"its cost is {d.cost}")
        self._stop_record("diverged", d.batch, costs, learning_rate=float(rate))
        raise DivergenceError(
            f"training diverged in epoch {self.state.epochs} (from 0), batch {d.batch} of "
            f"{self.plan.n_batches}: {what} (learning rate {rate:.6g}; a smaller "
            f"learning_rate usually helps).  The model keeps the weights after the last "
            f"finite step ({self.state.step} steps in all); history_.stopped has the "
            "details.") from None

    def _interrupted(self, snap, order, rate, costs):
        """KeyboardInterrupt in the batch loop: keep the weights of the last
        completed batch (rewinding a half-applied NumPy step) and record
        where training stopped.  The caller re-raises."""
        done = self.backend.step - snap.steps
        if self.backend.partial_update:
            self._rewind(snap, order, done, rate)
        self.state.step = self.backend.step
        self._stop_record("interrupted", done, costs)
