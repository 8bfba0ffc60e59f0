"""BLAS's thread count while fastmlp computes: one shared, counted limit.

The compiled backend runs its own row slices in parallel and calls BLAS from
each, single-threaded, so BLAS must be held at one thread while it runs (and
the NumPy backend gives the user's ``n_threads`` to BLAS).  BLAS's thread
count is one setting for the whole process, so two fits in two threads
cannot each set it and put it back: the first to finish would restore it
while the other still runs (seen: a concurrent fit then took a 2-thread BLAS
product and ended 1 ulp away from its solo run, and the process was left at
1 thread).

:func:`blas_threads` therefore counts its holders.  The first saves BLAS's
thread counts; while any holder is active, the smallest limit asked for is
in force; the last to leave restores the saved counts.  The libraries are
found once (threadpoolctl's scan of the loaded libraries takes about 2 ms,
which was most of a one-row prediction) and set directly afterwards.

threadpoolctl (3.6 and later) lets only one Python thread, the first to set
a limit, change OpenBLAS's pthreads pool; a fit in any other thread had its
limit ignored and ran its products on all of BLAS's threads.  The counted
holders here already keep threads from fighting over the setting, so it is
set with threadpoolctl's own setter behind that rule (``_real_set_num_threads``,
or ``set_num_threads`` in versions without the rule).
"""

import contextlib
import threading

__all__ = ["blas_threads"]

_lock = threading.Lock()
_holders = []            # the limits (ints) of the active holders
_saved = None            # BLAS libraries' thread counts before the first holder
_libraries = None        # threadpoolctl's controllers of the loaded BLAS libraries


def _blas():
    global _libraries
    if _libraries is None:
        from threadpoolctl import ThreadpoolController
        _libraries = [lib for lib in ThreadpoolController().lib_controllers
                      if lib.user_api == "blas"]
    return _libraries


def _set(lib, n):
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(n)


def _apply(n):
    for lib in _blas():
        if lib.num_threads != n:
            _set(lib, n)


@contextlib.contextmanager
def blas_threads(limit):
    """Hold BLAS at no more than ``limit`` threads inside the block (None:
    leave it as it is).  Safe to nest and to use from several threads at
    once: see the module's docstring."""
    global _saved
    if limit is None:
        yield
        return
    limit = int(limit)
    with _lock:
        if not _holders:
            _saved = [lib.num_threads for lib in _blas()]
        _holders.append(limit)
        _apply(min(_holders))
    try:
        yield
    finally:
        with _lock:
            _holders.remove(limit)
            if _holders:
                _apply(min(_holders))
            else:
                for lib, n in zip(_blas(), _saved):
                    _set(lib, n)
                _saved = None
