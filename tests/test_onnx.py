"""ONNX export, checked by running the graphs in onnxruntime.

onnx, onnxruntime and skl2onnx come with the test extra, so these tests run
in CI; they are not skipped when a package is missing.  Every hidden
activation with every output (softmax, the blog's renormalised sigmoid,
multilabel sigmoid, a regressor's identity) and every input scaling must
give fastmlp's probabilities within 1e-5, on one row and on 1,000.
"""

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skl2onnx import to_onnx as skl2onnx_to_onnx

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._onnx import DEFAULT_OPSET, MIN_OPSET

N = 1000


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(N, 20, n_informative=8, n_classes=4, random_state=0)
    Xm, Ym = make_multilabel_classification(N, 20, n_classes=5, random_state=0)
    Xr, yr = make_regression(N, 20, n_targets=2, noise=5.0, random_state=0)
    return dict(labels=(X, y), multilabel=(Xm, Ym), regression=(Xr, yr + 150.0))


def fitted(data, kind, **params):
    X, y = data["regression" if kind == "identity" else
                "multilabel" if kind == "multilabel" else "labels"]
    if kind == "identity":
        return MLPRegressor(hidden_layer_sizes=(24, 12), epochs=3, random_state=0,
                            **params).fit(X, y), X
    output = "sigmoid" if kind == "multilabel" else kind
    return MLPClassifier(hidden_layer_sizes=(24, 12), output=output, epochs=3, random_state=0,
                         **params).fit(X, y), X


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def check_same(model, X, proto=None):
    """The graph's outputs against fastmlp's, on 1 row and on all rows."""
    sess = session(proto or model.to_onnx())
    for rows in (X[:1], X):
        out = sess.run(None, {"X": rows.astype(np.float32)})
        if isinstance(model, MLPRegressor):
            (values,) = out
            want = model.predict(rows).reshape(values.shape)
            # in the network's own units: the standardised targets
            got_units = (values - model.y_mean_) / model.y_scale_
            want_units = (want - model.y_mean_) / model.y_scale_
            np.testing.assert_allclose(got_units, want_units, rtol=0, atol=1e-5)
            np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
        else:
            labels, proba = out
            np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=0, atol=1e-5)
            np.testing.assert_array_equal(labels, model.predict(rows))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "multilabel", "identity"])
def test_every_activation_and_output_matches_fastmlp(data, activation, kind, backend):
    model, X = fitted(data, kind, activation=activation, backend=backend)
    proto = model.to_onnx()
    onnx.checker.check_model(proto, full_check=True)
    check_same(model, X, proto)


@pytest.mark.parametrize("scaling", ["standard", "minmax", "maxabs", "none"])
def test_every_input_scaling(data, scaling):
    model, X = fitted(data, "sigmoid", scaling=scaling)
    proto = model.to_onnx()
    ops = [n.op_type for n in proto.graph.node]
    assert ("Sub" in ops) == (scaling in ("standard", "minmax"))
    assert ops.count("Div") == (scaling != "none") + 1       # + the renormalisation
    check_same(model, X, proto)


def test_outputs_are_named_as_skl2onnx_names_them(data):
    clf, _ = fitted(data, "softmax")
    reg, _ = fitted(data, "identity")
    assert [o.name for o in clf.to_onnx().graph.output] == ["output_label",
                                                            "output_probability"]
    assert [o.name for o in reg.to_onnx().graph.output] == ["variable"]
    assert [i.name for i in clf.to_onnx().graph.input] == ["X"]


@pytest.mark.parametrize("labels", [np.array([3, 7, 11, 40]), np.array(["cat", "dog", "ox", "yak"]),
                                    np.array([-1.0, 2.0, 5.0, 9.0])])
def test_labels_of_every_type(data, labels):
    X, y = data["labels"]
    model = MLPClassifier(hidden_layer_sizes=(16,), epochs=2, random_state=0).fit(X, labels[y])
    check_same(model, X)


def test_opset_11_and_the_default(data):
    model, X = fitted(data, "sigmoid")             # ReduceSum: axes attribute before 13
    proto = model.to_onnx(target_opset=MIN_OPSET)
    assert proto.opset_import[0].version == MIN_OPSET
    check_same(model, X, proto)
    proto = model.to_onnx()
    assert proto.opset_import[0].version == min(DEFAULT_OPSET, onnx.defs.onnx_opset_version())
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid("", proto.opset_import[0].version)])


def test_save_onnx_and_the_command_line(data, tmp_path):
    model, X = fitted(data, "softmax")
    path = model.save_onnx(tmp_path / "m.onnx")
    assert onnx.load(path) == model.to_onnx()
    model.save(tmp_path / "m.npz")
    run = subprocess.run([sys.executable, "-m", "fastmlp", "export", "m.npz", "cli.onnx"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "output_label, output_probability" in run.stdout
    check_same(model, X, onnx.load(tmp_path / "cli.onnx"))
    run = subprocess.run([sys.executable, "-m", "fastmlp", "export", "m.npz", "x.onnx",
                          "--opset", "999"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert run.returncode == 2 and "writes opsets up to" in run.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_bad_input_gets_a_clear_error(data, tmp_path):
    for unfitted in (MLPClassifier(), MLPRegressor()):
        for call in (unfitted.to_onnx, lambda: unfitted.save_onnx(tmp_path / "u.onnx"),
                     unfitted.to_sklearn, unfitted.to_keras):
            with pytest.raises(NotFittedError, match="not fitted yet, so there is nothing to "
                                                     "export"):
                call()
    assert not (tmp_path / "u.onnx").exists()
    model, _ = fitted(data, "softmax")
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ValueError, match=f"writes opsets up to {newest}"):
        model.to_onnx(target_opset=newest + 1)
    with pytest.raises(ValueError, match=f"needs opset {MIN_OPSET} or newer"):
        model.to_onnx(target_opset=MIN_OPSET - 1)
    with pytest.raises(ValueError, match=f"writes IR versions up to {onnx.IR_VERSION}"):
        model.to_onnx(ir_version=onnx.IR_VERSION + 1)
    with pytest.raises(ValueError, match="cannot carry opset 17"):
        model.to_onnx(target_opset=17, ir_version=3)
    with pytest.raises(TypeError, match="target_opset must be an integer"):
        model.to_onnx(target_opset="17")


def test_a_pipeline_with_a_scaler_converts_with_skl2onnx(data):
    fastmlp.register_skl2onnx()
    fastmlp.register_skl2onnx()                     # twice is fine
    X, y = data["labels"]
    names = np.array(["a", "b", "c", "d"])[y]
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), output="sigmoid",
                                                         scaling="none", epochs=3,
                                                         random_state=0)).fit(X, names)
    X32 = X.astype(np.float32)
    proto = skl2onnx_to_onnx(pipe, X32[:1], options={id(pipe[-1]): {"zipmap": False}})
    labels, proba = session(proto).run(None, {"X": X32})
    np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, pipe.predict(X))
    # skl2onnx's default: the probabilities as one {class: p} dict per row
    proto = skl2onnx_to_onnx(pipe, X32[:1])
    labels, maps = session(proto).run(None, {"X": X32})
    proba = np.array([[row[c] for c in pipe.classes_] for row in maps])
    np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, pipe.predict(X))
    # a regressor, with float64 input (cast to float32 before the network)
    Xr, yr = data["regression"]
    pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), epochs=3,
                                                        random_state=0)).fit(Xr, yr)
    (values,) = session(skl2onnx_to_onnx(pipe, Xr[:1])).run(None, {"X": Xr})
    want = pipe.predict(Xr)
    np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
