"""The trainer on its own: a backend, a network state and a history, no estimator.

These tests build what ``MLPClassifier.fit`` builds (a NetworkState, a
backend, a BatchPlan) by hand and drive :class:`fastmlp._trainer.Trainer`
directly, so the epoch loop, its records, callbacks and rewinds are checked
apart from scikit-learn's estimator machinery.
"""

import numpy as np
import pytest

from fastmlp import History, NetworkState, backends, init_weights
from fastmlp._trainer import BatchPlan, DivergenceError, Trainer, lr_schedule
from fastmlp.backends import BackendConfig


def problem(n=90, n_in=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    Y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return X, Y


def setup(backend, n=90, batch=20, optimizer="sgd", seed=0, **cfg):
    X, Y = problem(n)
    rng = np.random.default_rng(seed)
    state = NetworkState((6, 5, 3), init_weights((6, 5, 3), 2.0, rng), optimizer)
    config = BackendConfig(batch_size=batch, n_threads=1, l2=0.01, momentum=0.1,
                           optimizer=None if optimizer == "sgd" else optimizer, **cfg)
    be = backends.backend_class(backend)(X, Y, state, config)
    plan = BatchPlan(n, batch, True, rng)
    return be, state, plan


def test_batch_plan_covers_every_row_once_per_epoch():
    plan = BatchPlan(23, 5, True, np.random.default_rng(0))
    assert plan.n_batches == 5
    order = plan.order()
    rows = np.concatenate([plan.rows(order, b) for b in range(plan.n_batches)])
    assert sorted(rows) == list(range(23)) and len(plan.rows(order, 4)) == 3
    assert not np.array_equal(order, plan.order())            # a new permutation
    fixed = BatchPlan(23, 50, False, None)                    # larger than n: one batch
    assert fixed.n_batches == 1 and list(fixed.order()) == list(range(23))


def test_run_records_every_epoch_and_keeps_the_state_current(backend):
    be, state, plan = setup(backend)
    history, seen = History(), []
    rates = lr_schedule(0.01, 0.1, 3)
    trainer = Trainer(be, state, history, plan, eval_period=2,
                      evaluate=lambda due, correct: {"test_acc": float(due)},
                      callback=lambda *a: seen.append(a[:3]))
    trainer.run(rates)
    assert state.epochs == 3 and state.step == 3 * plan.n_batches == be.step
    assert state.learning_rate == rates[-1]
    assert len(history) == 3 and history.stopped is None
    assert history.learning_rate == list(rates)
    # evaluate is due every eval_period epochs and at the run's last epoch
    assert history.test_acc == [0.0, 1.0, 1.0]
    assert all(len(c) == plan.n_batches and np.isfinite(c).all() for c in history.batch_cost)
    assert history.cost[0] == pytest.approx(np.mean(history.batch_cost[0]))
    # one call per batch, then one per epoch (batch None), epochs from 0
    per_epoch = [(e, b) for e, b, _ in seen]
    assert per_epoch[:plan.n_batches + 1] == [(0, b) for b in range(plan.n_batches)] + [(0, None)]
    assert len(seen) == 3 * (plan.n_batches + 1)
    # a second run continues the counts
    Trainer(be, state, history, plan).run(lr_schedule(0.01, 0.1, 1, start_epoch=3))
    assert state.epochs == 4 and len(history) == 4 and history.epochs[-1] == 3


def test_divergence_rewinds_to_the_last_finite_step(backend):
    """A batch with a NaN cost makes the trainer restore the epoch's snapshot
    and replay the batches before it: the weights equal those a clean run
    has after the same batches."""
    be, state, plan = setup(backend, optimizer="adam")
    clean_be, clean_state, clean_plan = setup(backend, optimizer="adam")

    class Poisoned:
        """The backend, except that step 7 reports a NaN cost."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        @property
        def step(self):
            return self.inner.step

        @step.setter
        def step(self, value):
            self.inner.step = value

        def train_batch(self, idx, lr):
            cost, reg, ok = self.inner.train_batch(idx, lr)
            return (float("nan") if self.inner.step == 7 else cost), reg, ok

    history = History()
    # steps 1-5 are epoch 0; step 7 is batch 1 of epoch 1
    with pytest.raises(DivergenceError, match=r"epoch 1 \(from 0\), batch 1 of 5: its cost is nan"):
        Trainer(Poisoned(be), state, history, plan).run([0.01, 0.01])
    assert history.stopped["reason"] == "diverged" and history.stopped["batches_completed"] == 1
    assert state.step == 6 and state.epochs == 1 and len(history) == 1
    Trainer(clean_be, clean_state, History(), clean_plan).run([0.01])
    order = clean_plan.order()
    for b in range(1):
        clean_be.train_batch(clean_plan.rows(order, b), 0.01)
    for a, c in zip(state.arrays(), clean_state.arrays()):
        np.testing.assert_array_equal(a, c)


def test_interrupt_keeps_the_last_completed_batch(backend):
    be, state, plan = setup(backend)

    def stop(epoch, batch, n_batches, value):
        if batch == 3:
            raise KeyboardInterrupt

    history = History()
    with pytest.raises(KeyboardInterrupt):
        Trainer(be, state, history, plan, callback=stop).run([0.01, 0.01])
    assert history.stopped == dict(reason="interrupted", epoch=0, batches_completed=4,
                                   n_batches=plan.n_batches,
                                   batch_cost=history.stopped["batch_cost"])
    assert len(history.stopped["batch_cost"]) == 4 and state.step == 4
