"""What the experiments share: timing fits, the machine, and plot set-up.

* :func:`timed` / :func:`timed_fit` -- wall seconds of one call or one fit;
* :func:`best_of` -- the fastest of several repeats, each after
  :func:`settle`;
* :func:`machine` -- CPU, cores, BLAS, fastmlp's build and library versions
  (:func:`fastmlp._platform.machine`), the record every result carries;
* :func:`pyplot_or_none` and :func:`save_figure` -- matplotlib on the
  file-only Agg backend (:func:`fastmlp._platform.pyplot`), or a printed
  note saying why there is no plot.

The suite (:mod:`fastmlp.experiments.suite`), the study
(:mod:`fastmlp.experiments.study`) and the checkout's ``bench/backends.py``
and ``bench/memory.py`` use these, so every figure they print is measured
and described the same way.
"""

import os
import time

# machine() imports TensorFlow (when installed) for its version: keep its
# start-up log out of the experiments' output, as the Keras rows do
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .._platform import machine, pyplot  # noqa: E402

__all__ = ["timed", "timed_fit", "settle", "best_of", "machine", "pyplot_or_none",
           "save_figure"]

#: Seconds of idleness before each timed run (see :func:`settle`).
SETTLE_SECONDS = 0.5


def timed(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``; return ``(wall seconds, its result)``."""
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def timed_fit(model, X, y, **fit_kw):
    """Wall seconds of ``model.fit(X, y, **fit_kw)``.

    Any object with a ``fit`` method: a fastmlp or scikit-learn estimator, a
    compiled Keras model (``epochs=``, ``batch_size=`` ... go in ``fit_kw``).
    Only the fit is timed: building the model and scoring it are not.
    """
    return timed(model.fit, X, y, **fit_kw)[0]


def settle(seconds=SETTLE_SECONDS):
    """Sleep ``seconds``, so that the idle threads of whatever ran before
    stop spinning before the next timed run.

    An engine's thread pool (OpenBLAS's, an OpenMP runtime's) spins for a
    while after its work ends, on the cores the next run needs.  Measured on
    2 Zen 5 cores: fastmlp's (70,) network at batch 500 takes 0.0155 s an
    epoch right after a scikit-learn fit and 0.0072 s after 0.2 s of sleep,
    so every engine gets the same pause before each run it is timed on.
    """
    time.sleep(seconds)


def best_of(repeats, run):
    """The fastest of ``run(0)``, ..., ``run(repeats - 1)``, each after
    :func:`settle`.

    ``run(r)`` returns a tuple whose first item is its seconds (repeat ``r``
    may use ``r`` as its random seed); the tuple with the fewest seconds is
    returned, the first of equals.  An exception from a repeat propagates.
    """
    if repeats < 1:
        raise ValueError(f"best_of needs at least one repeat, got {repeats}")
    best = None
    for r in range(repeats):
        settle()
        result = run(r)
        if best is None or result[0] < best[0]:
            best = result
    return best


def pyplot_or_none():
    """matplotlib.pyplot on the Agg backend, or None after printing why not
    (matplotlib missing: the note gives the install hint)."""
    try:
        return pyplot()
    except ImportError as exc:
        print(f"(no plot: {exc})")
        return None


def save_figure(fig, path, dpi=120):
    """Lay out ``fig``, write it to ``path`` as PNG, close it and say where it went."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"plot written to {path}")
