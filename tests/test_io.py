"""Save/load round trips and every corrupted-file case; history export; plots."""

import json

import numpy as np
import pytest

import fastmlp
from fastmlp import MLPClassifier, ModelFileError, load
from fastmlp.datasets import load_digits

from _reference import blog


@pytest.fixture(scope="module")
def fitted():
    (X, y), (Xt, yt) = load_digits()
    names = np.array(list("abcdefghij"))
    m = blog((20, 12), epochs=4, batch_size=64, learning_rate=0.05,
                      random_state=0, l1=0.001).fit(X, names[y], validation_data=(Xt, names[yt]))
    return m, Xt


def test_round_trip_gives_identical_predictions(tmp_path, fitted):
    m, Xt = fitted
    path = m.save(tmp_path / "m.npz")
    m2 = load(path)
    np.testing.assert_array_equal(m2.predict_proba(Xt), m.predict_proba(Xt))
    np.testing.assert_array_equal(m2.predict(Xt), m.predict(Xt))
    assert m2.get_params() == m.get_params()
    assert list(m2.classes_) == list(m.classes_) and m2.n_iter_ == 4
    for a, b in zip(m.coefs_, m2.coefs_):
        np.testing.assert_array_equal(a, b)
    # training goes on from the loaded state
    (X, y), _ = load_digits()
    m2.partial_fit(X, np.array(list("abcdefghij"))[y])
    assert m2.n_iter_ == 5


def test_save_is_atomic_and_leaves_no_temporaries(tmp_path, fitted):
    m, _ = fitted
    target = tmp_path / "m.npz"
    target.write_bytes(b"old contents")
    m.save(target)
    assert load(target).n_iter_ == 4
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_load_never_unpickles(tmp_path):
    """An object array (which np.load could only read by unpickling) is refused."""
    path = tmp_path / "evil.npz"
    np.savez(path, __fastmlp__=np.array([{"magic": "x"}], dtype=object))
    with pytest.raises(ModelFileError, match="corrupt|pickle"):
        load(path)


def rewrite(path, out, change):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(out, **arrays)
    return out


def header_change(fn):
    def change(arrays):
        h = json.loads(arrays["__fastmlp__"].tobytes().decode())
        fn(h)
        arrays["__fastmlp__"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    return change


@pytest.mark.parametrize("case,change,match", [
    ("missing weight", lambda a: a.pop("W1"), "missing array 'W1'"),
    ("wrong shape", lambda a: a.__setitem__("W0", a["W0"][:, :5]), "W0 must be float32 of shape"),
    ("wrong dtype", lambda a: a.__setitem__("W2", a["W2"].astype(np.float64)), "W2 must be float32"),
    ("nan weight", lambda a: a["W0"].__setitem__((0, 0), np.nan), "NaN"),
    ("zero scale", lambda a: a["scale"].__setitem__(3, 0.0), "scale holds zeros"),
    ("classes count", lambda a: a.__setitem__("classes", a["classes"][:3]), "classes must be 10"),
    ("extra array", lambda a: a.__setitem__("payload", np.zeros(3)), "unexpected arrays"),
    ("no header", lambda a: a.pop("__fastmlp__"), "missing array '__fastmlp__'"),
    ("garbled header", lambda a: a.__setitem__("__fastmlp__", np.frombuffer(b"{oops", np.uint8)),
     "unreadable header"),
    ("version", header_change(lambda h: h.__setitem__("format_version", 99)), "format version 99"),
    ("magic", header_change(lambda h: h.__setitem__("magic", "other")), "not a fastmlp model"),
    ("layers", header_change(lambda h: h.__setitem__("layers", [64, 20, 99, 10])), "disagree"),
    ("params", header_change(lambda h: h["params"].__setitem__("epochs", -3)), "bad hyperparameters"),
    ("unknown param", header_change(lambda h: h["params"].__setitem__("evil", 1)), "bad hyperparameters"),
    # found by bench/fuzz_load.py: these loaded, and a negative n_iter made the
    # next partial_fit train at an uninitialised learning rate
    ("negative n_iter", header_change(lambda h: h.__setitem__("n_iter", -7)), "n_iter"),
    ("float n_iter", header_change(lambda h: h.__setitem__("n_iter", 1e308)), "n_iter"),
    ("bool steps", header_change(lambda h: h.__setitem__("optimizer_steps", True)),
     "optimizer_steps"),
    ("nan rate", header_change(lambda h: h.__setitem__("learning_rate_", float("nan"))),
     "learning_rate_"),
    ("string shuffle", header_change(lambda h: h["params"].__setitem__("shuffle", "sgd")),
     "shuffle must be a bool"),
])
def test_corrupt_files_give_clear_errors(tmp_path, fitted, case, change, match):
    m, _ = fitted
    good = m.save(tmp_path / "good.npz")
    bad = rewrite(good, tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=match):
        load(bad)


def test_truncated_and_garbage_files(tmp_path, fitted):
    m, _ = fitted
    good = m.save(tmp_path / "good.npz")
    data = open(good, "rb").read()
    for n in (0, 10, len(data) // 2, len(data) - 30):
        p = tmp_path / f"trunc{n}.npz"
        p.write_bytes(data[:n])
        with pytest.raises(ModelFileError):
            load(p)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError):
        load(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="single array"):
        load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")


def test_flipped_bytes_never_crash(tmp_path, fitted):
    """A small fuzz: 200 files with random bytes changed load or raise ModelFileError."""
    m, Xt = fitted
    data = bytearray(open(m.save(tmp_path / "good.npz"), "rb").read())
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(200):
        mutated = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 8)):
            mutated[pos] = rng.integers(0, 256)
        p = tmp_path / "fuzz.npz"
        p.write_bytes(bytes(mutated))
        try:
            loaded = load(p)
        except ModelFileError:
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
            assert loaded.predict(Xt).shape == (len(Xt),)
    assert outcomes["refused"] > 0


def test_history_exports(tmp_path, fitted):
    m, _ = fitted
    text = m.history_.to_json(tmp_path / "h.json")
    d = json.loads((tmp_path / "h.json").read_text())
    assert json.loads(text) == d and len(d["cost"]) == 4 and len(d["batch_cost"][0]) > 1
    m.history_.to_csv(tmp_path / "h.csv")
    rows = (tmp_path / "h.csv").read_text().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("epoch,cost,reg_share,train_acc,test_acc")
    assert "mean_abs_weight_2" in rows[0] and "seconds_forward" in rows[0]


def test_plot_history_writes_a_png(tmp_path, fitted):
    m, _ = fitted
    out = fastmlp.plot_history(m.history_, tmp_path / "h.png")
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    with pytest.raises(ValueError, match="empty"):
        fastmlp.plot_history(fastmlp.History(), tmp_path / "e.png")


def test_structured_fuzz_of_load_only_raises_model_file_errors():
    """bench/fuzz_load.py, small: six mutation strategies (byte flips, zip and
    header regions, truncation, JSON header edits, array swaps, garbage) on
    sgd, adam and string-label model files."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parent.parent / "bench" / "fuzz_load.py"
    spec = importlib.util.spec_from_file_location("fuzz_load", path)
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    counts = fuzz.run(60, seed=7, verbose=False)
    assert set(counts) == set(fuzz.STRATEGIES)
    assert all(c["refused"] + c["loaded"] == 60 for c in counts.values())
    assert counts["truncate"]["refused"] == 60 and counts["header"]["refused"] > 0


DATA = __import__("pathlib").Path(__file__).parent / "data"


@pytest.mark.parametrize("name, key", [("model_v2_sgd.npz", "sgd_proba"),
                                       ("model_v2_adam_strings.npz", "adam_proba")])
def test_files_saved_by_an_earlier_version_load_and_predict_as_they_did(name, key):
    # written by fastmlp at commit ce4e38b (format 2), before the model core
    # was split into estimator, trainer and backends; the expected outputs
    # were computed by that version right after fitting
    m = load(DATA / name)
    ref = np.load(DATA / "model_v2_expected.npz", allow_pickle=False)
    np.testing.assert_allclose(m.predict_proba(ref["X"]), ref[key], rtol=1e-6, atol=1e-7)
    if "adam" in name:
        np.testing.assert_array_equal(m.predict(ref["X"]), ref["adam_pred"])
        assert m.optimizer == "adam" and m.optimizer_steps_ > 0
    (X, y), _ = load_digits()
    before = [W.copy() for W in m.coefs_]
    m.partial_fit(X, m.classes_[y])       # the saved optimiser state trains on
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.coefs_))


def test_round_trip_keeps_the_training_controls(tmp_path):
    """The sample count, the adaptive rate, the no-improvement rule's state
    and the feature names survive save and load (optional header fields)."""
    (X, y), _ = load_digits()
    m = blog((8,), epochs=4, batch_size=64, learning_rate=0.05, random_state=0,
                      schedule="adaptive", tol=1e9, n_iter_no_change=1)
    m.fit(X, y)
    m.feature_names_in_ = np.array([f"f{i}" for i in range(64)], dtype=object)
    back = load(m.save(tmp_path / "m.npz"))
    assert back.t_ == m.t_ == 4 * len(y)
    assert back.best_loss_ == m.best_loss_ and back.best_validation_score_ is None
    assert list(back.feature_names_in_) == list(m.feature_names_in_)
    assert back.get_params() == m.get_params()
    # epochs 0-2 at 0.05, epoch 3 at 0.01 with one epoch counted since; the
    # saved model goes on as the original: 0.01 once more, then 0.002
    assert m.history_.learning_rate == [0.05] * 3 + [0.05 / 5]
    for model in (m, back):
        for _ in range(2):
            with pytest.warns(UserWarning, match="fitted with feature names"):
                model.partial_fit(X, y)
        assert model.history_.learning_rate[-2:] == [0.05 / 5, 0.05 / 5 / 5]


@pytest.mark.parametrize("case,change,match", [
    ("samples", header_change(lambda h: h.__setitem__("samples_seen", -1)), "samples_seen"),
    ("next rate", header_change(lambda h: h.__setitem__("next_rate", 0.0)), "next_rate"),
    ("nan rate", header_change(lambda h: h.__setitem__("next_rate", float("nan"))), "next_rate"),
    ("plateau key", header_change(lambda h: h.__setitem__("plateau", {"key": "x", "count": 0})),
     "plateau"),
    ("plateau count", header_change(lambda h: h["plateau"].__setitem__("count", -2)),
     "plateau count"),
    ("plateau best", header_change(lambda h: h["plateau"].__setitem__("best", "low")),
     "plateau best"),
    ("names", header_change(lambda h: h.__setitem__("feature_names", ["a", "b"])),
     "feature_names"),
    ("bad early_stopping", header_change(lambda h: h["params"].__setitem__("early_stopping", "x")),
     "early_stopping must be a bool"),
    ("bad schedule", header_change(lambda h: h["params"].__setitem__("schedule", "cosine")),
     "schedule must be one of"),
])
def test_corrupt_training_controls_are_refused(tmp_path, fitted, case, change, match):
    m, _ = fitted
    good = m.save(tmp_path / "good.npz")
    bad = rewrite(good, tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=match):
        load(bad)


def test_files_without_the_training_controls_load_with_their_defaults():
    # tests/data holds files from before the training controls existed
    m = load(DATA / "model_v2_sgd.npz")
    assert m.get_params()["early_stopping"] is False and m.schedule == "decay"
    assert m.n_iter_no_change == 10 and m.t_ == 0 and m.best_loss_ is None
    assert not hasattr(m, "feature_names_in_")
    (X, y), _ = load_digits()
    saved_rate = m.learning_rate_
    m.set_params(schedule="adaptive")
    m.partial_fit(X, m.classes_[y])          # adaptive resumes from the saved rate
    assert m.history_.learning_rate == [saved_rate]
    assert m.t_ == len(y)


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_a_model_unpickled_from_out_of_band_buffers_trains_on(offset):
    """Dask sends a model between workers with pickle protocol 5: its arrays
    come back as views of the message, read-only and, in general, not aligned
    to their 4-byte elements, which the kernels refuse.  Unpickling makes them
    owned, aligned and writable again, so partial_fit goes on."""
    import pickle

    (X, y), _ = load_digits()
    model = MLPClassifier(hidden_layer_sizes=(12,), random_state=0).partial_fit(X, y)
    buffers = []
    data = pickle.dumps(model, protocol=5, buffer_callback=buffers.append)
    # each buffer copied into a read-only byte string at an odd offset
    views = [memoryview(bytes(offset) + bytes(b.raw()))[offset:] for b in buffers]
    copy = pickle.loads(data, buffers=views)
    expected = pickle.loads(pickle.dumps(model)).partial_fit(X, y)
    copy.partial_fit(X, y)
    for a, b in zip(copy.coefs_, expected.coefs_):
        np.testing.assert_array_equal(a, b)
    for a in copy._state.arrays() + [copy.mean_, copy.scale_]:
        assert a.flags.aligned and a.flags.writeable and a.flags.c_contiguous


def test_a_model_pickled_mid_fit_leaves_the_fit_alone(tmp_path):
    """Pickling a model during its fit (a callback; Dask spilling a
    partial_fit result the next call is updating in place) leaves out the
    running backend, and the fit goes on to the weights it would reach."""
    import pickle

    (X, y), _ = load_digits()
    copies = []

    def snapshot(epoch, batch, n_batches, cost):
        if batch == 1:
            copies.append(pickle.dumps(model))

    model = MLPClassifier(hidden_layer_sizes=(12,), epochs=2, random_state=0)
    model.fit(X, y, callback=snapshot)
    plain = MLPClassifier(hidden_layer_sizes=(12,), epochs=2, random_state=0).fit(X, y)
    assert len(copies) == 2
    for a, b in zip(model.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, b)
    back = pickle.loads(copies[-1])
    assert "_live_backend" not in back.__dict__
    back.partial_fit(X, y)
