"""The blog series' training plots: cost per batch, regularisation share, accuracy."""

import numpy as np

from ._platform import pyplot

__all__ = ["plot_history"]


def plot_history(history, path, title=None):
    """Write the blog series' three training plots of a :class:`History` to ``path`` (PNG).

    Top: the cost of every mini-batch over the whole training (log scale).
    Middle: the regularisation term's share of each batch's cost.
    Bottom: training and test accuracy per epoch (where measured).
    Needs matplotlib (``pip install "fastmlp[plot]"``).
    """
    plt = pyplot()
    if len(history) == 0:
        raise ValueError("the history is empty: fit a model first")
    costs = np.concatenate(history.batch_cost)
    shares = np.concatenate(history.batch_reg_share)
    per_epoch = len(history.batch_cost[0])
    x = np.arange(costs.size) / max(per_epoch, 1)
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    axes[0].plot(x, costs, lw=0.6)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("cost per batch")
    axes[1].plot(x, shares, lw=0.6, color="tab:purple")
    axes[1].set_ylabel("regularisation share\nof batch cost")
    epochs = np.asarray(history.epochs) + 1
    for key, label in (("train_acc", f"train ({history.train_acc_kind})"),
                       ("test_acc", "test")):
        vals = np.asarray(getattr(history, key), float)
        ok = ~np.isnan(vals)
        if ok.any():
            axes[2].plot(epochs[ok], vals[ok], marker="o", ms=3, label=label)
    axes[2].set_ylabel("accuracy")
    axes[2].set_xlabel("epoch")
    axes[2].legend(loc="lower right")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.suptitle(title or f"fastmlp training, {len(history)} epochs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
