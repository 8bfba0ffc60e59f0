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


# ------------------------------------------------ schedules and the monitor
def test_decay_schedule_gives_lr_schedules_rates_bit_for_bit():
    from fastmlp._schedule import DecaySchedule
    s = DecaySchedule(0.001, 1e-3)
    whole = lr_schedule(0.001, 1e-3, 200)
    assert [s.rate(e) for e in range(200)] == list(whole)
    assert s.rate(7) == whole[7] and s.rate(150) == whole[150]     # any order
    assert s.reduce() is False


def test_adaptive_schedule_divides_by_five_then_gives_up():
    from fastmlp._schedule import AdaptiveSchedule
    state = NetworkState((2, 2), init_weights((2, 2), 1.0, np.random.default_rng(0)))
    s = AdaptiveSchedule(state, 1e-4)
    assert s.rate(0) == 1e-4 and state.next_rate == 1e-4
    seen = []
    while s.reduce():
        seen.append(s.rate(0))
    assert seen == [1e-4 / 5, 1e-4 / 5 / 5, 1e-4 / 5 / 5 / 5]        # 8e-7 <= 1e-6: no more
    assert state.next_rate == seen[-1] <= 1e-6 < seen[-2]
    # a network trained before starts from its last rate
    state2 = NetworkState((2, 2), init_weights((2, 2), 1.0, np.random.default_rng(0)),
                          learning_rate=0.03)
    assert AdaptiveSchedule(state2, 1e-4).rate(5) == 0.03


@pytest.mark.parametrize("maximize", [False, True])
def test_plateau_counts_as_scikit_learn_does(maximize):
    """The monitor's count, best and firing agree with scikit-learn's own
    ``_update_no_improvement_count`` on random figures, ties and exact tol
    steps included."""
    from sklearn.neural_network import MLPClassifier as SkMLP
    from fastmlp._trainer import Plateau
    rng = np.random.default_rng(1)
    for trial in range(30):
        tol = [0.0, 1e-4, 0.05][trial % 3]
        values = np.round(rng.uniform(0, 1, 40), 2)        # ties happen
        values[5:9] = values[4] + (tol if maximize else -tol)       # exactly tol better
        n = int(rng.integers(1, 5))
        sk = SkMLP(tol=tol, n_iter_no_change=n)
        sk._no_improvement_count, sk.coefs_, sk.intercepts_ = 0, [], []
        if maximize:
            sk.validation_scores_, sk.best_validation_score_ = [], -np.inf
            feed = iter(values)
            sk._score = lambda X, y, sample_weight=None: next(feed)
        else:
            sk.loss_curve_, sk.best_loss_ = [], np.inf
        ours = Plateau("val_score" if maximize else "train_loss", n, tol, maximize=maximize)
        for e, v in enumerate(values):
            if not maximize:
                sk.loss_curve_.append(v)
            sk._update_no_improvement_count(maximize, None, None, None)
            ours.update(v, e)
            best = sk.best_validation_score_ if maximize else sk.best_loss_
            assert (ours.count, ours.best) == (sk._no_improvement_count, best)
            assert ours.fired == (sk._no_improvement_count > n)
            if ours.fired:        # scikit-learn stops here (or lowers the rate and recounts)
                ours.reset()
                sk._no_improvement_count = 0


def test_plateau_counts_nan_as_no_improvement_and_none_never_fires():
    from fastmlp._trainer import Plateau
    p = Plateau("train_loss", None, 1e-3)
    for e, v in enumerate([3.0, float("nan"), 2.0] + [2.0] * 50):
        p.update(v, e)
    assert p.best == 2.0 and p.best_epoch == 2 and p.count == 50 and not p.fired
    q = Plateau("val_score", 1, 0.0, maximize=True)
    assert q.update(0.5, 0) and not q.update(float("nan"), 1) and q.count == 1
    assert not q.update(0.4, 2) and q.fired
    assert q.get_state() == dict(key="val_score", best=0.5, best_epoch=0, count=2)
    assert Plateau("val_score", 1, 0.0, True, state=q.get_state()).count == 2


def scripted(scores):
    """An evaluate hook that reports the given validation scores, epoch by epoch."""
    it = iter(scores)
    return lambda due, correct: {"val_score": next(it)}


def test_monitor_stops_and_puts_back_the_best_epoch(backend):
    """A keep_best monitor: scores peak at epoch 1, patience 2, so the run
    stops after epoch 4 and the network is put back to the state after epoch
    1, which equals a clean 2-epoch run; the epoch and sample counts stay."""
    from fastmlp._trainer import Plateau
    be, state, plan = setup(backend, optimizer="adam")
    history = History()
    trainer = Trainer(be, state, history, plan, evaluate=scripted([0.2, 0.6, 0.5, 0.55, 0.4, 0.9]))
    trainer.run([0.01] * 10, monitor=Plateau("val_score", 2, 0.0, maximize=True,
                                             keep_best=True))
    assert len(history) == 5 and state.epochs == 5 and state.samples == 5 * 90
    assert history.stopped["reason"] == "no improvement" and history.stopped["epoch"] == 4
    assert history.stopped["best_epoch"] == 1 and history.restored_epoch == 1
    assert state.step == be.step == 2 * plan.n_batches and state.learning_rate == 0.01
    assert state.plateau == dict(key="val_score", best=0.6, best_epoch=1, count=3)
    clean_be, clean_state, clean_plan = setup(backend, optimizer="adam")
    Trainer(clean_be, clean_state, History(), clean_plan).run([0.01, 0.01])
    for a, c in zip(state.arrays(), clean_state.arrays()):
        np.testing.assert_array_equal(a, c)


def test_monitor_lowers_an_adaptive_rate_before_stopping(backend):
    from fastmlp._schedule import AdaptiveSchedule
    from fastmlp._trainer import Plateau
    be, state, plan = setup(backend)
    history = History()
    trainer = Trainer(be, state, history, plan, evaluate=scripted([0.5] * 20))
    trainer.run(AdaptiveSchedule(state, 4e-6), 20, Plateau("val_score", 1, 0.0, True))
    # ties count as improvement at tol 0, so nothing fires: constant rate
    assert history.learning_rate == [4e-6] * 20 and history.stopped is None
    history2 = History()
    be2, state2, plan2 = setup(backend)
    Trainer(be2, state2, history2, plan2, evaluate=scripted([0.5] * 20)).run(
        AdaptiveSchedule(state2, 4e-6), 20, Plateau("val_score", 1, 1e-3, True))
    assert history2.learning_rate == [4e-6] * 3 + [4e-6 / 5] * 2
    assert history2.stopped["reason"] == "no improvement"
    assert "at or below 1e-06" in history2.stopped["message"]


def test_a_callback_stops_the_run_by_returning_false_or_raising(backend):
    from fastmlp import StopTraining
    be, state, plan = setup(backend)
    history = History()

    def cb(epoch, batch, n_batches, value):
        if epoch == 1 and batch == 2:
            return False

    Trainer(be, state, history, plan, callback=cb).run([0.01] * 3)
    assert state.epochs == 1 and state.step == plan.n_batches + 3 == be.step
    assert state.samples == 90 + 3 * 20 and len(history) == 1
    assert history.stopped["reason"] == "callback" and history.stopped["batches_completed"] == 3

    def raiser(epoch, batch, n_batches, value):
        if batch is None:
            raise StopTraining("at the epoch's end")

    Trainer(be, state, history, plan, callback=raiser).run([0.01] * 3)
    assert state.epochs == 2 and len(history) == 2
    assert history.stopped["how"] == "StopTraining: at the epoch's end"
    assert history.stopped["epoch"] == 1 and history.stopped["batches_completed"] == plan.n_batches


def test_interrupt_counts_only_the_completed_batches_samples(backend):
    be, state, plan = setup(backend)

    def stop(epoch, batch, n_batches, value):
        if epoch == 1 and batch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(be, state, History(), plan, callback=stop).run([0.01] * 3)
    assert state.samples == 90 + 2 * 20 and state.step == plan.n_batches + 2
