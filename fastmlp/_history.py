"""Training history: what a fit records per batch and per epoch."""

import numpy as np

__all__ = ["History", "format_epoch"]


def _plain(v):
    """A value as JSON-ready floats, lists and dicts."""
    if isinstance(v, dict):
        return {k: float(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [float(x) for x in v]
    return float(v)


def format_epoch(epoch, record, epochs=None, score="acc", held_out="test"):
    """One line summing up an epoch's history record (verbose output, CLI);
    ``score`` names the scores ("acc", or "R2" for a regressor) and
    ``held_out`` the data of ``test_acc`` ("test", or "val" for a part held
    out of the training data)."""
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {epoch + 1:3d}{total}", f"cost {record['cost']:10.4f}",
             f"reg share {record['reg_share']:.4f}"]
    if "train_acc" in record:
        parts.append(f"train {score} {record['train_acc']:.4f}")
    if "test_acc" in record:
        parts.append(f"{held_out} {score} {record['test_acc']:.4f}")
    parts += [f"lr {record['learning_rate']:.6g}", f"{record['epoch_time']:.3f} s"]
    return "  ".join(parts)


class History:
    """Record of a training run, filled by the trainer during ``fit``.

    Per batch (one row per epoch, one column per batch):

    ``batch_cost``       loss of the batch plus its regularisation term
    ``batch_reg_share``  regularisation term / batch cost (the blog series'
                         "rel. reg. contrib. to batch costs")

    Per epoch (one entry per epoch, ``nan`` where not measured):

    ``cost``            mean batch cost over the epoch
    ``train_loss``      the batch costs summed over the epoch, per training
                        sample: loss plus regularisation, the objective, as
                        scikit-learn's ``loss_curve_`` counts it; the figure
                        the no-improvement rule watches without early
                        stopping
    ``reg_share``       mean relative regularisation share over the batches
    ``train_acc``       training accuracy: batch-averaged or full, see
                        ``train_acc_kind``
    ``test_acc``        accuracy on the validation data (every
                        ``eval_period`` epochs)
    ``val_loss``        the model's loss on the validation data (held out
                        by early stopping, or given) at the epoch's end
                        weights, mean per sample, without regularisation;
                        every epoch
    ``val_score``       the estimator's score on the validation data
                        (accuracy for the classifier), every epoch; the
                        figure early stopping watches
    ``learning_rate``   rate used in the epoch
    ``mean_abs_weight`` mean |W| of each weight matrix (bias excluded) after
                        the epoch, a list per epoch
    ``train_time``      seconds in the batch loop (gather, forward, backward,
                        update)
    ``eval_time``       seconds spent on full-set predictions
    ``epoch_time``      wall seconds of the whole epoch
    ``phases``          seconds per phase of the epoch: gather, forward,
                        backward, gradient, update (as the backend times them)
                        and prediction (full-set accuracy)

    ``stopped`` is None when the last fit or partial_fit ran to its end, else
    a dict saying where and why it stopped.  ``reason`` is

    * ``"diverged"``: a cost or weight became NaN or infinite (fit raised
      DivergenceError, or warned);
    * ``"interrupted"``: Ctrl-C (KeyboardInterrupt, passed on);
    * ``"callback"``: the callback returned False or raised StopTraining
      (``how`` says which, with the exception's message);
    * ``"no improvement"``: the no-improvement rule (``n_iter_no_change``,
      ``tol``) ended the fit: ``monitor`` names the figure watched
      ("val_score" with early stopping, else "train_loss"), with its
      ``best`` value, ``best_epoch``, ``tol``, ``n_iter_no_change``, the
      last ``learning_rate`` and a ``message``.  partial_fit, which trains
      one epoch per call anyway, records it too: the rule says a loop of
      calls can stop.

    ``epoch`` is the epoch in which training stopped, counted from 0 over
    the model's life, with ``batches_completed`` of its ``n_batches`` and the
    ``batch_cost`` of those batches.  When ``batches_completed <
    n_batches`` the epoch is unfinished and not in the per-epoch lists (a
    divergence, an interrupt, or a callback stop after a batch); otherwise
    it is the last epoch of the lists.  The model's weights are those after
    the last completed batch, except after early stopping.

    ``restored_epoch`` is None, or, after a fit with early stopping, the
    epoch (from 0) whose weights and optimiser state the model was put back
    to: the one with the best validation score.
    """

    PER_EPOCH = ("cost", "train_loss", "reg_share", "train_acc", "test_acc", "val_loss",
                 "val_score", "learning_rate", "mean_abs_weight", "train_time", "eval_time",
                 "epoch_time", "phases")

    restored_epoch = None     # also for histories pickled before it existed

    def __init__(self, train_acc_kind="batch"):
        self.train_acc_kind = train_acc_kind
        self.epochs = []
        self.batch_cost = []
        self.batch_reg_share = []
        self.stopped = None
        self.restored_epoch = None
        for key in self.PER_EPOCH:
            setattr(self, key, [])

    def __len__(self):
        return len(self.epochs)

    def _append(self, epoch, batch_cost, batch_reg_share, **values):
        self.epochs.append(int(epoch))
        # copies: the trainer reuses its per-batch arrays every epoch
        self.batch_cost.append(np.array(batch_cost, dtype=np.float64))
        self.batch_reg_share.append(np.array(batch_reg_share, dtype=np.float64))
        for key in self.PER_EPOCH:
            getattr(self, key).append(values.get(key, float("nan")))

    def to_dict(self):
        """Return the history as plain Python lists and floats (JSON-ready)."""
        out = {"train_acc_kind": self.train_acc_kind, "epochs": list(self.epochs),
               "batch_cost": [c.tolist() for c in self.batch_cost],
               "batch_reg_share": [c.tolist() for c in self.batch_reg_share],
               "stopped": self.stopped, "restored_epoch": self.restored_epoch}
        for key in self.PER_EPOCH:
            out[key] = [_plain(v) for v in getattr(self, key)]
        return out

    def to_json(self, path=None):
        """The history as JSON text; also written to ``path`` when given."""
        import json
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def to_csv(self, path):
        """Write one row per epoch (scalars, mean |W| and phase seconds as
        columns) to ``path`` as CSV."""
        import csv
        n_layers = max((len(w) for w in self.mean_abs_weight
                        if isinstance(w, (list, tuple))), default=0)
        phases = sorted({k for ph in self.phases if isinstance(ph, dict) for k in ph})
        scalar = ["cost", "reg_share", "train_acc", "test_acc", "train_loss", "val_loss",
                  "val_score", "learning_rate", "train_time", "eval_time", "epoch_time"]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch"] + scalar + [f"mean_abs_weight_{i}" for i in range(n_layers)]
                       + [f"seconds_{p}" for p in phases])
            for i, epoch in enumerate(self.epochs):
                maw = list(self.mean_abs_weight[i]) if isinstance(
                    self.mean_abs_weight[i], (list, tuple)) else []
                ph = self.phases[i] if isinstance(self.phases[i], dict) else {}
                w.writerow([epoch] + [getattr(self, k)[i] for k in scalar]
                           + maw + [ph.get(p, "") for p in phases])

    def phase_totals(self):
        """Seconds per phase summed over all epochs (see ``phases``)."""
        total = {}
        for ph in self.phases:
            if isinstance(ph, dict):
                for k, v in ph.items():
                    total[k] = total.get(k, 0.0) + v
        return total

    def __repr__(self):
        if not self.epochs:
            return "History(empty)"
        last = len(self.epochs) - 1
        return (f"History({len(self.epochs)} epochs, last cost {self.cost[last]:.4g}, "
                f"train_acc {self.train_acc[last]:.4f}, test_acc {self.test_acc[last]:.4f})")
