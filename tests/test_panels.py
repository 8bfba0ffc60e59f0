"""The update by panels (fastmlp.backends._panels): a layer's gradient formed
by rows (a partial gradient per slice) or by panels (in the update's jobs)
gives the same weights bit for bit, the plan is the documented one, and the
packed weights the update writes stay in step with the weights."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import MLPClassifier, NetworkState
from fastmlp.backends import BackendConfig, backend_class
from fastmlp.backends._panels import panel_plan
from fastmlp.datasets import load_digits

from _reference import random_problem

compiled = pytest.importorskip("fastmlp.backends._compiled")
needs_own = pytest.mark.skipif(not compiled.OWN_GEMM_AVAILABLE,
                               reason="panels need fastmlp's AVX-512 products")


def fit(split, monkeypatch, X, y, **kw):
    monkeypatch.setenv("FASTMLP_SPLIT", split)
    return MLPClassifier(**dict(dict(epochs=3, random_state=0, backend="compiled"), **kw)).fit(X, y)


@needs_own
@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("how", [
    dict(hidden_layer_sizes=(40, 20), batch_size=60, optimizer="adam"),
    dict(hidden_layer_sizes=(70, 30), batch_size=100, activation="sigmoid", output="sigmoid",
         optimizer="sgd", momentum=0.9, l2=0.01, l1=0.001),
    dict(hidden_layer_sizes=(33,), batch_size=37, activation="tanh", optimizer="rmsprop"),
    dict(hidden_layer_sizes=(50, 50), batch_size=64, sparse=True),
], ids=["adam", "sgd-l1-l2", "rmsprop-odd", "sparse"])
def test_rows_and_panels_give_the_same_weights(how, threads, monkeypatch):
    (X, y), _ = load_digits()
    how = dict(how)
    if how.pop("sparse", False):
        X = sp.csr_matrix(X)
    a = fit("rows", monkeypatch, X, y, n_threads=threads, **how)
    b = fit("panels", monkeypatch, X, y, n_threads=threads, **how)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    # and the two plans really were different ones
    plans = []
    for split in ("rows", "panels"):
        monkeypatch.setenv("FASTMLP_SPLIT", split)
        plans.append(make((64, 40, 20, 10), 200, how.get("batch_size", 60), threads).pn
                     .by_panels_flags)
    assert not any(plans[0]) and all(plans[1])


def make(layers, n, batch, threads, keep_steps=True, seed=0, with_state=False):
    """A compiled backend on a random problem (and the state it trains)."""
    weights, X, Y = random_problem(layers, batch=n, seed=seed)
    state = NetworkState(layers, [W.copy() for W in weights])
    cfg = BackendConfig(batch_size=batch, n_threads=threads, keep_steps=keep_steps,
                        momentum=0.5, l2=0.01)
    bk = backend_class("compiled")(X, Y, state, cfg)
    return (bk, state) if with_state else bk


@needs_own
def test_last_step_is_kept_by_panels_unless_asked_not_to(monkeypatch):
    idx = np.arange(40, dtype=np.intp)
    steps = {}
    for split in ("rows", "panels"):
        monkeypatch.setenv("FASTMLP_SPLIT", split)
        bk = make((30, 20, 5), 100, 40, 2)
        bk.train_batch(idx, 0.1)
        steps[split] = bk.last_step()
    for p, q in zip(steps["rows"], steps["panels"]):
        np.testing.assert_array_equal(p, q)
    bk = make((30, 20, 5), 100, 40, 2, keep_steps=False)
    bk.train_batch(idx, 0.1)
    with pytest.raises(RuntimeError, match="keep_steps=False"):
        bk.last_step()


@needs_own
def test_weights_changed_between_steps_are_repacked_after_sync_in(monkeypatch):
    """The update packs the weights it writes for the next step's forward
    pass; weights put back from outside (a rewind) must be packed again."""
    monkeypatch.setenv("FASTMLP_SPLIT", "panels")
    layers, idx = (30, 20, 5), np.arange(40, dtype=np.intp)
    a, sa = make(layers, 100, 40, 2, with_state=True)
    before = [W.copy() for W in sa.weights]
    a.train_batch(idx, 0.1)
    for W, W0 in zip(sa.weights, before):       # back to the start, as a rewind does
        W[...] = W0
    for V in sa.state1:
        V[...] = 0
    a.sync_in()
    a.step = 0
    cost_a = a.train_batch(idx, 0.1)
    b, sb = make(layers, 100, 40, 2, with_state=True)
    cost_b = b.train_batch(idx, 0.1)
    assert cost_a == cost_b
    for p, q in zip(sa.weights, sb.weights):
        np.testing.assert_array_equal(p, q)


def test_panel_plan_follows_the_rules():
    sizes = dict(n_in=[784, 2048], n_out=[2048, 10])
    # two slices of 16 rows: the wide layer by panels, the 10 x 2048 output
    # layer (whose partial gradients stay in L2) by rows
    assert panel_plan(**sizes, batch=32, n_threads=2, chunk_rows=256, own=True,
                      sparse=False) == [True, False]
    # two slices of 250 rows: by rows, as the blog network at batch 500
    assert panel_plan(**sizes, batch=500, n_threads=2, chunk_rows=256, own=True,
                      sparse=False) == [False, False]
    assert panel_plan([784, 70, 30], [70, 30, 10], batch=500, n_threads=2, chunk_rows=256,
                      own=True, sparse=False) == [False, False, False]
    # forced either way; never on one thread, on sgemm or over several chunks
    for split, want in (("rows", [False, False]), ("panels", [True, True])):
        assert panel_plan(**sizes, batch=32, n_threads=2, chunk_rows=256, own=True,
                          sparse=False, split=split) == want
    for kw in (dict(n_threads=1, own=True, batch=32), dict(n_threads=2, own=False, batch=32),
               dict(n_threads=2, own=True, batch=513)):
        assert panel_plan(**sizes, chunk_rows=256, sparse=False, split="panels", **kw) == \
            [False, False]
    # the sparse first layer never
    assert panel_plan(**sizes, batch=32, n_threads=2, chunk_rows=256, own=True, sparse=True,
                      split="panels") == [False, True]
    with pytest.raises(ValueError, match="FASTMLP_SPLIT must be one of"):
        panel_plan(**sizes, batch=32, n_threads=2, chunk_rows=256, own=True, sparse=False,
                   split="columns")


def test_the_cost_model_counts_what_its_doc_says():
    from fastmlp.backends._panels import split_bytes
    MiB = 2 ** 20
    # by rows: 2 (T - 1) partials of 4 n_out n_in bytes, a quarter when one fits in L2
    assert split_bytes(784, 2048, 32, 1, MiB)[0] == 0
    assert split_bytes(784, 2048, 32, 3, MiB)[0] == 2 * 2 * 4 * 784 * 2048
    assert split_bytes(784, 70, 32, 3, MiB)[0] == 2 * 2 * 4 * 784 * 70 / 4
    # by panels: ceil(n_out / 16) reads of the input, a fifth from L2, half beyond
    assert split_bytes(784, 70, 32, 2, MiB)[1] == 5 * 4 * 32 * 784 / 5
    assert split_bytes(784, 70, 500, 2, MiB)[1] == 5 * 4 * 500 * 784 / 2


def test_the_threads_benchmark_runs_and_reports_both_ways(tmp_path, capsys):
    import json
    import runpy
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "bench" / "threads.py"
    out = tmp_path / "threads.json"
    argv = sys.argv
    sys.argv = [str(script), "--shapes", "40:32", "--threads", "1,2", "--repeats", "1",
                "--rows", "400", "--json", str(out)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    cells = json.loads(out.read_text())["cells"]
    assert [c["threads"] for c in cells] == [1, 2]
    assert all(c["rows_seconds"] > 0 and c["panels_seconds"] > 0 for c in cells)
    assert cells[0]["model_rows_bytes"] == 0 and cells[1]["model_rows_bytes"] > 0
    assert "model picks" in capsys.readouterr().out


@needs_own
@pytest.mark.parametrize("threads", [1, 2])
def test_packing_past_the_caches_writes_the_same_weights(threads, monkeypatch):
    """The update writes the packed copy of large layers with non-temporal
    stores; with every layer made 'large' (an L3 of 2 bytes), a fit must
    give the same weights as with cached stores."""
    from fastmlp.backends import _panels
    (X, y), _ = load_digits()
    kw = dict(hidden_layer_sizes=(100, 40), epochs=2, batch_size=50, random_state=0,
              backend="compiled", n_threads=threads)
    a = MLPClassifier(**kw).fit(X, y)
    real = _panels.cache_bytes
    monkeypatch.setattr(_panels, "cache_bytes",
                        lambda level=2, default=0: 2 if level == 3 else real(level, default))
    assert _panels.stream_packing([64, 100, 40], [100, 40, 10]) == [True] * 3
    b = MLPClassifier(**kw).fit(X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)


def test_only_packed_weights_of_half_the_l3_or_more_are_streamed(monkeypatch):
    from fastmlp.backends import _panels
    monkeypatch.setattr(_panels, "cache_bytes", lambda level=2, default=0: 32 * 2 ** 20)
    # 784 x 2048 is 6.1 MiB packed, 2048 x 2048 16 MiB: half of a 32 MiB L3
    assert _panels.stream_packing([784, 2048, 2048], [2048, 2048, 10]) == [False, True, False]


def test_by_weights_plan_follows_the_rules():
    from fastmlp.backends._panels import by_weights_plan
    wide = [256, 2048, 10]
    # slices of 16-64 rows: the forward of 256 and 2048 units goes by weights, not of 10
    for batch in (32, 100, 128):
        assert by_weights_plan(wide, batch=batch, n_threads=2, chunk_rows=256, own=True,
                               sparse=False) == [True, True, False]
    # slices of 8 or 250 rows, a chunk of 100 rows, sgemm, the sparse first layer: never
    for kw in (dict(batch=16), dict(batch=500), dict(batch=100, n_threads=1),
               dict(batch=128, own=False)):
        kw = dict(dict(n_threads=2, chunk_rows=256, own=True, sparse=False), **kw)
        assert by_weights_plan(wide, **kw) == [False] * 3
    assert by_weights_plan(wide, batch=128, n_threads=2, chunk_rows=256, own=True,
                           sparse=True) == [False, True, False]
    # every chunk must qualify: 100 rows in chunks of 45 leave one of 10
    assert by_weights_plan(wide, batch=100, n_threads=1, chunk_rows=45, own=True,
                           sparse=False) == [False] * 3
    assert by_weights_plan(wide, batch=120, n_threads=1, chunk_rows=40, own=True,
                           sparse=False) == [True, True, False]
    # a 70-wide layer keeps the packed product (its last columns by dot products)
    assert by_weights_plan([70, 144], batch=100, n_threads=2, chunk_rows=256, own=True,
                           sparse=False) == [False, True]


@needs_own
@pytest.mark.parametrize("threads,batch,last", [(1, 62, 11), (2, 88, 29)])
def test_weights_left_unpacked_are_packed_for_an_epochs_short_batch(threads, batch, last):
    """Slices of 62 or 44 rows take the 128-wide layer's forward by weights, so
    the update leaves its packed weights stale; the epoch's last batch has
    slices of fewer than 16 rows, which read them, so they must be packed
    again first.  The fit must follow the NumPy twin's."""
    (X, y), _ = load_digits()
    assert X.shape[0] % batch == last
    kw = dict(hidden_layer_sizes=(128,), epochs=2, batch_size=batch, random_state=0,
              n_threads=threads, optimizer="sgd", momentum=0.9)
    bk = make((64, 128, 10), 200, batch, threads)
    assert bk.pn.pack_modes == ["none", "cached"]
    a = MLPClassifier(backend="compiled", **kw).fit(X, y)
    b = MLPClassifier(backend="numpy", **kw).fit(X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)
