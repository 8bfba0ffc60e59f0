"""The training loop: epochs of mini-batches driven through any backend.

Data flows one way: data -> scaling -> batch plan -> backend step -> epoch
record -> history.  A :class:`Trainer` knows a backend only through
:class:`fastmlp.backends.Backend` and the network only through its
:class:`fastmlp._network.NetworkState`; it knows nothing of scikit-learn or
of the estimator.  Per epoch it

* asks its schedule (:mod:`fastmlp._schedule`) for the epoch's learning rate;
* draws the batch plan (a permutation of the samples, or their order);
* runs every batch through ``backend.train_batch``, checking each cost;
* on divergence or Ctrl-C, puts the network back to its last completed,
  finite step: it restores the epoch's snapshot and replays the epoch's
  earlier batches (steps are deterministic, so this is exact);
* builds the epoch's record (cost, training loss, regularisation share,
  rate, timings, phases, whatever the ``evaluate`` hook adds) into the
  :class:`History`;
* hands the record to its :class:`Plateau` monitor, if any, which keeps the
  best epoch's state and says when the figure it watches stopped improving:
  the schedule then lowers the rate, or training stops;
* calls the callback after every batch and every epoch; a callback that
  returns False or raises :class:`StopTraining` stops training.
"""

import math
import time

import numpy as np

from ._history import format_epoch
from ._schedule import FixedRates, lr_schedule

__all__ = ["Trainer", "BatchPlan", "Plateau", "PooledPlateau", "DivergenceError",
           "StopTraining", "lr_schedule"]


class DivergenceError(FloatingPointError):
    """Training diverged: a batch cost or a weight became NaN or infinite.

    The model keeps the weights (and optimiser state) of the last batch whose
    update left every weight finite; ``history_.stopped`` says where."""


class StopTraining(Exception):
    """Raise it in a fit's callback to end training there.

    It stops training as a callback that returns False does: after the batch
    (or epoch) the callback was called for, keeping the weights of that last
    completed batch (with ``early_stopping``, the best epoch's, as at any end
    of such a fit).  Fit returns normally; ``history_.stopped`` records where,
    with reason ``"callback"`` and the exception's message."""


class _Diverged(Exception):
    """Internal: batch ``batch`` of the epoch gave a non-finite cost or weight."""

    def __init__(self, batch, cost):
        super().__init__(batch)
        self.batch, self.cost = batch, cost


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


def _mean_abs(V, chunk=1 << 16):
    """Mean absolute value of V, in float64, a few rows at a time (no
    temporary of V's size: the first layer of a wide input is large)."""
    rows = max(1, chunk // max(1, V.shape[1]))
    total = sum(float(np.abs(V[r:r + rows]).sum(dtype=np.float64))
                for r in range(0, V.shape[0], rows))
    return total / V.size if V.size else float("nan")


class _Snapshot:
    """Copies of a network's weights and optimiser state (about three times
    the weights' size), with its step and sample counts.

    The trainer takes one at the start of every epoch: with the epoch's order
    it rebuilds the exact state after any batch of the epoch by replaying the
    batches before it.  Early stopping keeps another of the best epoch, with
    that epoch's learning rate and schedule state in ``extra``."""

    def __init__(self, state, views=None):
        """``views``: the parts of ``state.arrays()`` to copy (default: all)."""
        self.arrays = state.arrays() if views is None else views
        self.copies = [np.empty_like(a) for a in self.arrays]     # filled by take()
        self.steps = self.samples = None
        self.extra = None

    def take(self, steps, samples=None, **extra):
        for a, c in zip(self.arrays, self.copies):
            np.copyto(c, a)
        self.steps, self.samples, self.extra = steps, samples, extra

    def restore(self):
        for a, c in zip(self.arrays, self.copies):
            np.copyto(a, c)


class Plateau:
    """scikit-learn's no-improvement rule, on one entry of the epoch records.

    ``key`` names the record entry watched: ``"train_loss"`` (lower is
    better) or ``"val_score"`` (higher is better, ``maximize=True``).  After
    each epoch, :meth:`update` counts the epoch as one without improvement
    when its value is not better than the best so far by at least ``tol``
    (a NaN counts as none), else resets the count; a value better than the
    best by any amount becomes the new best.  The rule :attr:`fired` when the
    count exceeds ``n_iter_no_change``: scikit-learn tolerates that many
    epochs without improvement and acts on the next one in a row.  None
    means never.  With ``keep_best``, the trainer keeps the best epoch's
    state and puts it back when the run ends.

    :meth:`get_state` / the ``state`` argument carry ``best``, its epoch and
    the count from one run to the next (partial_fit calls).
    """

    def __init__(self, key, n_iter_no_change, tol, maximize=False, keep_best=False,
                 state=None):
        self.key, self.n_iter_no_change, self.tol = key, n_iter_no_change, float(tol)
        self.maximize, self.keep_best = maximize, keep_best
        state = state or {}
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.count = int(state.get("count", 0))

    def update(self, value, epoch):
        """Count epoch ``epoch``'s ``value``; True when it is a new best."""
        value = float(value)
        if math.isnan(value):
            self.count += 1
            return False
        if self.best is None:
            improved = better = True
        elif self.maximize:      # scikit-learn's comparisons, to the last bit
            improved, better = not value < self.best + self.tol, value > self.best
        else:
            improved, better = not value > self.best - self.tol, value < self.best
        self.count = 0 if improved else self.count + 1
        if better:
            self.best, self.best_epoch = value, epoch
        return better

    @property
    def fired(self):
        """The figure has not improved for more than n_iter_no_change epochs."""
        return self.n_iter_no_change is not None and self.count > self.n_iter_no_change

    def reset(self):
        """Start counting afresh (after the schedule lowered the rate)."""
        self.count = 0

    def get_state(self):
        return dict(key=self.key, best=self.best, best_epoch=self.best_epoch,
                    count=self.count)

    def describe(self):
        what = "validation score" if self.key == "val_score" else "training loss"
        return (f"{what} did not improve by at least tol={self.tol:g} for {self.count} "
                f"consecutive epochs (n_iter_no_change={self.n_iter_no_change})")


class PooledPlateau(Plateau):
    """The no-improvement rule on epochs counted in training samples.

    Each :meth:`update` (one pass, over a whole data set or one streamed
    block) adds its value, weighted by the samples the pass trained
    (``network.samples`` since the last update), to a pool.  When
    ``network.samples`` crosses a multiple of ``samples_per_epoch``, the
    pool's mean is the epoch's value for the rule, and the pool empties.
    Between two such points the rule neither counts nor fires, so small
    blocks' noisy losses do not each count as an epoch.  The pool travels
    in :meth:`get_state` (``pool_sum``, ``pool_n``, ``pool_mark``)."""

    def __init__(self, key, n_iter_no_change, tol, samples_per_epoch, network,
                 maximize=False, keep_best=False, state=None):
        super().__init__(key, n_iter_no_change, tol, maximize, keep_best, state)
        state = state or {}
        self.samples_per_epoch, self.network = int(samples_per_epoch), network
        self.pool_sum = float(state.get("pool_sum", 0.0))
        self.pool_n = int(state.get("pool_n", 0))
        self.mark = int(state.get("pool_mark", network.samples))
        self._counted = False

    def update(self, value, epoch):
        now, every = self.network.samples, self.samples_per_epoch
        n, self.mark = now - self.mark, now
        self.pool_sum += float(value) * n
        self.pool_n += n
        self._counted = now // every != (now - n) // every
        if not self._counted:
            return False
        pooled = self.pool_sum / self.pool_n if self.pool_n else float("nan")
        self.pool_sum, self.pool_n = 0.0, 0
        return super().update(pooled, epoch)

    @property
    def fired(self):
        return self._counted and super().fired

    def get_state(self):
        return dict(super().get_state(), pool_sum=self.pool_sum, pool_n=self.pool_n,
                    pool_mark=self.mark)


def _ask(callback, *args):
    """Call the callback; None to go on, else why it asked to stop."""
    try:
        answer = callback(*args)
    except StopTraining as exc:
        return f"StopTraining: {exc}" if str(exc) else "StopTraining"
    return "returned False" if answer is False else None


class Trainer:
    """Runs epochs of one backend over one data set, recording into a history.

    Parameters
    ----------
    backend : fastmlp.backends.Backend
        Built on the data and on ``state``; updates ``state``'s arrays.
    state : fastmlp._network.NetworkState
        Its ``step``, ``samples``, ``epochs`` and ``learning_rate`` are kept
        current after every batch and epoch, also when training stops early;
        ``plateau`` after every epoch when a monitor watches.
    history : fastmlp.History
        Receives one record per completed epoch, ``stopped`` and
        ``restored_epoch``.
    plan : BatchPlan
    eval_period : int
        Every this many epochs (counted over the network's life), and at the
        last epoch of a run, ``evaluate`` is told its full-set figures are due.
    evaluate : callable, optional
        ``evaluate(due, correct) -> dict`` of extra record entries (such as
        ``train_acc``, ``test_acc``, ``val_loss``, ``val_score``); ``correct``
        is the epoch's count of correctly predicted training rows, from the
        batches' own outputs.
    callback : callable, optional
        ``callback(epoch, batch, n_batches, cost)`` after every batch and
        ``callback(epoch, None, n_batches, record)`` after every epoch;
        epochs count from 0 over the network's life.  Returning False
        (exactly; None goes on) or raising :class:`StopTraining` stops
        training after that batch or epoch.
    verbose : bool
        Print one line per epoch, and why training stopped.
    """

    def __init__(self, backend, state, history, plan, eval_period=1, evaluate=None,
                 callback=None, verbose=False):
        self.backend, self.state, self.history, self.plan = backend, state, history, plan
        self.eval_period = eval_period
        self.evaluate, self.callback, self.verbose = evaluate, callback, verbose

    def run(self, schedule, epochs=None, monitor=None):
        """Train ``epochs`` epochs at the rates ``schedule`` gives, unless
        something stops training first.

        ``schedule`` is a schedule object (:mod:`fastmlp._schedule`) or a
        list of rates, one epoch per entry (then ``epochs`` defaults to its
        length).  ``monitor`` is an optional :class:`Plateau`: when it fires,
        ``schedule.reduce()`` lowers the rate or, if it cannot, training stops
        with ``history.stopped["reason"] == "no improvement"``.  A callback
        can stop training too (reason ``"callback"``).  With a ``keep_best``
        monitor, the network is put back to its best epoch when the run ends
        so (every epoch run, the rule or the callback).

        Raises DivergenceError when a batch cost or a weight becomes NaN or
        infinite, after putting the network back to the previous step and
        recording where in ``history.stopped``; a KeyboardInterrupt passes
        through, likewise after the network was left at its last completed
        step.  Neither puts back the best epoch.
        """
        backend, state, plan, history = self.backend, self.state, self.plan, self.history
        if not hasattr(schedule, "rate"):
            schedule = FixedRates(schedule, state.epochs)
            epochs = len(schedule.rates) if epochs is None else epochs
        callback = self.callback
        history.stopped = history.restored_epoch = None
        n_batches = plan.n_batches
        costs = np.empty(n_batches)
        regs = np.empty(n_batches)
        # the epoch's snapshot holds what the epoch's steps write: a backend
        # that trains a layer in its own layout leaves the state's copy alone
        # until sync_out (the sparse first layer: 3 x its weights' size).  A
        # callback may read coefs_ mid-epoch, which syncs out: then all of it,
        # as the best epoch's, which outlives later epochs
        snap = _Snapshot(state, None if callback is not None else
                         backend.epoch_views(state.arrays()))
        best = _Snapshot(state) if monitor is not None and monitor.keep_best else None
        for e in range(epochs):
            rate = schedule.rate(state.epochs)
            backend.reset_phases()
            snap.take(backend.step, state.samples)
            t0 = time.perf_counter()
            order = plan.order()
            correct = 0
            why = None
            try:
                for b in range(n_batches):
                    rows = plan.rows(order, b)
                    cost, reg, ok = backend.train_batch(rows, rate)
                    state.step = backend.step
                    if not math.isfinite(cost + reg):
                        raise _Diverged(b, cost)
                    state.samples += rows.shape[0]
                    costs[b] = cost + reg
                    regs[b] = reg
                    correct += ok
                    if callback is not None:
                        why = _ask(callback, state.epochs, b, n_batches, cost + reg)
                        if why is not None:
                            break
            except _Diverged as d:
                self._diverged(d, snap, order, rate, costs)
            except KeyboardInterrupt:
                self._interrupted(snap, order, rate, costs)
                raise
            backend.sync_out()                    # the state's arrays are current again
            if why is not None:                   # stopped by the callback mid-epoch
                self._stop_record("callback", b + 1, costs, how=why)
                break
            t1 = time.perf_counter()
            state.epochs += 1
            state.learning_rate = float(rate)
            record = dict(cost=float(costs.mean()), learning_rate=state.learning_rate,
                          train_loss=float(costs.sum() / plan.n), train_time=t1 - t0)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(costs > 0, regs / costs, 0.0)
            record["reg_share"] = float(share.mean())
            due = (state.epochs % self.eval_period == 0) or e == epochs - 1
            if self.evaluate is not None:
                record.update(self.evaluate(due, correct))
            record["mean_abs_weight"] = [_mean_abs(W[:, 1:]) for W in state.weights]
            t2 = time.perf_counter()
            record["eval_time"] = t2 - t1
            record["epoch_time"] = t2 - t0
            record["phases"] = dict(backend.phase_seconds, prediction=t2 - t1)
            history._append(state.epochs - 1, costs, share, **record)
            notes = []
            verdict = (None if monitor is None
                       else self._watch(monitor, schedule, record, best, notes))
            if callback is not None:
                why = _ask(callback, state.epochs - 1, None, n_batches, record)
            if self.verbose:
                for line in [format_epoch(state.epochs - 1, record)] + notes:
                    print(line, flush=True)
            if why is not None:
                self._stop_record("callback", n_batches, costs, epoch=state.epochs - 1, how=why)
                break
            if verdict is not None:
                self._stop_record("no improvement", n_batches, costs, epoch=state.epochs - 1,
                                  **verdict)
                break
        if best is not None and best.steps is not None:
            self._restore_best(best, schedule)

    def _watch(self, monitor, schedule, record, best, notes):
        """Give the epoch's record to the monitor; keep the state of a new best
        epoch; on a plateau lower the rate, or return why training stops.
        What it did goes to ``notes`` (printed when verbose)."""
        state = self.state
        if monitor.update(record.get(monitor.key, float("nan")), state.epochs - 1) \
                and best is not None:
            best.take(state.step, state.samples, learning_rate=state.learning_rate,
                      schedule=schedule.get_state(), epoch=state.epochs - 1)
        verdict = None
        if monitor.fired:
            message = monitor.describe()
            if schedule.reduce():
                monitor.reset()
                notes.append(f"{message}.  Learning rate now {schedule.rate(state.epochs):g}.")
            else:
                if schedule.name == "adaptive":
                    message += (f", and the learning rate {record['learning_rate']:g} is at "
                                f"or below {schedule.min_rate:g}")
                verdict = dict(monitor=monitor.key, best=monitor.best,
                               best_epoch=monitor.best_epoch, tol=monitor.tol,
                               n_iter_no_change=monitor.n_iter_no_change,
                               learning_rate=record["learning_rate"], message=message + ".")
                notes.append(verdict["message"] + "  Stopping.")
        state.plateau = monitor.get_state()
        return verdict

    def _restore_best(self, best, schedule):
        """Put the network back to the best epoch's weights, optimiser state
        and step count, learning rate and schedule state (early stopping).
        The epoch and sample counts stay: they count the training done."""
        best.restore()
        self.backend.sync_in()
        self.backend.step = self.state.step = best.steps
        self.state.learning_rate = best.extra["learning_rate"]
        schedule.set_state(best.extra["schedule"])
        self.history.restored_epoch = best.extra["epoch"]

    def _rewind(self, snap, order, done, rate):
        """Set the weights and optimiser state to those after the first
        ``done`` batches of the current epoch: restore the epoch's snapshot
        and replay those batches (a step is deterministic for the same
        inputs and thread count, so this is exact)."""
        snap.restore()
        self.backend.sync_in()
        self.backend.step = snap.steps
        for b in range(done):
            self.backend.train_batch(self.plan.rows(order, b), rate)
        self.backend.sync_out()
        self.state.step = self.backend.step

    def _stop_record(self, reason, done, costs, epoch=None, **extra):
        self.history.stopped = dict(reason=reason,
                                    epoch=self.state.epochs if epoch is None else epoch,
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
        else:
            self.backend.sync_out()
        self.state.step = self.backend.step
        self.state.samples = snap.samples + min(done * self.plan.batch, self.plan.n)
        self._stop_record("interrupted", done, costs)
