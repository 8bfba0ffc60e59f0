"""ONNX export: a fitted estimator as an ONNX graph, built with the ``onnx`` package.

The graph computes what ``predict`` and ``predict_proba`` compute, from raw
float32 rows ``X`` of shape (N, n_features):

* the input scaling as fitted: ``Sub(mean)`` then ``Div(scale)`` in float32,
  the very operations fastmlp applies (a zero mean or a unit scale is left
  out, so "maxabs" has no Sub and "none" neither);
* each layer as one ``Gemm`` (``A W[:, 1:]^T + W[:, 0]``, bias in column 0 of
  fastmlp's weight matrices), then its activation (Sigmoid, Tanh, Relu);
* the output, named as skl2onnx names a scikit-learn model's outputs:

  - a classifier gives ``output_label`` and ``output_probability`` (the
    probabilities as a float tensor, as skl2onnx's ``zipmap=False``):
    softmax; or sigmoid outputs divided by their sum per row (the blog's
    classifier, as :meth:`MLPClassifier.predict_proba` renormalises them);
    the label is the class of the largest probability, gathered from the
    classes (int64, or string for text labels);
  - a multilabel classifier gives each label's sigmoid output as it is, and
    the 0/1 indicator ``output > 0.5`` as int64 labels;
  - a regressor gives ``variable`` (N, n_outputs), float32: the identity
    outputs with the target scaling undone (``* y_scale + y_mean``).

:class:`Emitter` is where nodes and constants go: a fresh graph
(:func:`to_onnx`), or skl2onnx's container when a scikit-learn ``Pipeline``
ends in a fastmlp estimator (:mod:`fastmlp._skl2onnx`).  The same
:func:`emit_model` writes both.  ``onnx`` is imported only by the functions
that need it.  This module knows the estimators only through their fitted
attributes, so it imports none of them.
"""

import os
import tempfile

import numpy as np

__all__ = ["to_onnx", "save_onnx", "emit_model", "Emitter", "check_versions",
           "label_values", "MIN_OPSET", "DEFAULT_OPSET", "OUTPUT_NAMES"]

#: The oldest opset the graph is written for (Gemm without C's broadcasting
#: rules of opset 7, ArgMax, Gather, Softmax over axis 1 of a 2-D tensor).
MIN_OPSET = 11
#: The opset written unless asked otherwise (capped at what the installed
#: onnx knows): old enough for any onnxruntime of the last years.
DEFAULT_OPSET = 17
#: Output names: skl2onnx's for a classifier and for a regressor.
OUTPUT_NAMES = {"classifier": ("output_label", "output_probability"),
                "regressor": ("variable",)}
_ACTIVATION_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError('ONNX export needs the onnx package: pip install "fastmlp[onnx]"'
                          ) from exc
    return onnx


def check_versions(target_opset=None, ir_version=None):
    """``(opset, ir_version)`` to write, checked against the installed onnx.

    ``target_opset=None`` is :data:`DEFAULT_OPSET`, or the newest opset the
    installed onnx knows if that is older; ``ir_version=None`` is the oldest
    IR version that can carry the opset (the widest choice of runtimes).
    ValueError names what the installed onnx cannot write, or what the graph
    needs."""
    onnx = _onnx()
    from onnx import helper
    newest = onnx.defs.onnx_opset_version()
    if target_opset is None:
        target_opset = min(DEFAULT_OPSET, newest)
    if isinstance(target_opset, bool) or not isinstance(target_opset, (int, np.integer)):
        raise TypeError(f"target_opset must be an integer, got {target_opset!r}")
    target_opset = int(target_opset)
    if target_opset > newest:
        raise ValueError(f"target_opset={target_opset}: the installed onnx {onnx.__version__} "
                         f"writes opsets up to {newest}; ask for {newest} or less, or "
                         "upgrade onnx")
    if target_opset < MIN_OPSET:
        raise ValueError(f"target_opset={target_opset}: fastmlp's graph needs opset "
                         f"{MIN_OPSET} or newer")
    least = helper.find_min_ir_version_for([helper.make_opsetid("", target_opset)])
    if ir_version is None:
        return target_opset, least
    if isinstance(ir_version, bool) or not isinstance(ir_version, (int, np.integer)):
        raise TypeError(f"ir_version must be an integer, got {ir_version!r}")
    ir_version = int(ir_version)
    if ir_version > onnx.IR_VERSION:
        raise ValueError(f"ir_version={ir_version}: the installed onnx {onnx.__version__} "
                         f"writes IR versions up to {onnx.IR_VERSION}")
    if ir_version < least:
        raise ValueError(f"ir_version={ir_version} cannot carry opset {target_opset}: that "
                         f"needs IR version {least} or newer")
    return target_opset, ir_version


def label_values(classes):
    """The classes as the label output holds them: ``(array, kind)`` with
    kind "int64" (integers, bools, and floats, which a classifier accepts
    only when they are whole numbers) or "string" (text)."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        return classes.astype(np.int64), "int64"
    if classes.dtype.kind == "U" or (classes.dtype.kind == "O"
                                     and all(isinstance(c, str) for c in classes)):
        return classes.astype(str).astype(object), "string"
    raise TypeError(f"ONNX export: class labels of type {classes.dtype} (e.g. "
                    f"{classes[:3].tolist()!r}) have no ONNX label type; labels must be "
                    "numbers or strings")


class Emitter:
    """Where the graph goes: nodes and named constants.

    ``add_node(op_type, inputs, outputs, name, attrs)`` and
    ``add_const(name, array)`` write them; ``fresh(stem)`` gives an unused
    name.  ``opset`` is the opset written (some operators change form)."""

    def __init__(self, opset, add_node, add_const, fresh):
        self.opset = opset
        self._add_node, self._add_const, self._fresh = add_node, add_const, fresh

    def const(self, stem, array):
        """A constant tensor; returns its name."""
        name = self._fresh(stem)
        self._add_const(name, np.asarray(array))
        return name

    def node(self, op_type, inputs, stem=None, out=None, **attrs):
        """One node; returns the name of its output (``out``, or a fresh one)."""
        out = out or self._fresh(stem or op_type.lower())
        self._add_node(op_type, list(inputs), [out], self._fresh(op_type), attrs)
        return out

    def row_sum(self, x):
        """``x`` summed over axis 1, keeping the axis (ReduceSum's axes moved
        from an attribute to an input in opset 13)."""
        if self.opset >= 13:
            return self.node("ReduceSum", [x, self.const("axes", np.array([1], np.int64))],
                             "row_sum", keepdims=1)
        return self.node("ReduceSum", [x], "row_sum", axes=[1], keepdims=1)


def _kind(model):
    """"labels", "multilabel" or "continuous": what the model predicts."""
    return getattr(model, "_target_kind", "labels")


def emit_model(model, g, x, outputs):
    """Write the fitted ``model``'s graph into ``g`` (an :class:`Emitter`),
    reading float32 rows from the tensor named ``x``; ``outputs`` are the
    names to give the results: (label, probability) for a classifier,
    (values,) for a regressor."""
    mean = np.asarray(model.mean_, np.float32)
    scale = np.asarray(model.scale_, np.float32)
    if np.any(mean != 0):
        x = g.node("Sub", [x, g.const("mean", mean)], "centred")
    if np.any(scale != 1):
        x = g.node("Div", [x, g.const("scale", scale)], "scaled")
    weights = model.coefs_
    for i, W in enumerate(weights):
        W = np.asarray(W, np.float32)
        x = g.node("Gemm", [x, g.const(f"W{i}", np.ascontiguousarray(W[:, 1:])),
                            g.const(f"b{i}", np.ascontiguousarray(W[:, 0]))],
                   f"z{i}", transB=1)
        if i < len(weights) - 1:
            x = g.node(_ACTIVATION_OPS[model.activation], [x], f"a{i}")
    kind, out = _kind(model), model.out_activation_
    if kind == "continuous":
        y_scale = np.asarray(model.y_scale_, np.float32)
        y_mean = np.asarray(model.y_mean_, np.float32)
        if np.any(y_scale != 1):
            x = g.node("Mul", [x, g.const("y_scale", y_scale)], "y_scaled")
        g.node("Add", [x, g.const("y_mean", y_mean)], out=outputs[0])
        return
    label, proba = outputs
    if out == "softmax":
        g.node("Softmax", [x], out=proba, axis=1)
    elif kind == "multilabel":
        g.node("Sigmoid", [x], out=proba)
    else:                                    # sigmoid outputs, renormalised per row
        s = g.node("Sigmoid", [x], "sigmoid")
        total = g.node("Max", [g.row_sum(s), g.const("tiny", np.array(
            [np.finfo(np.float32).tiny], np.float32))], "row_total")
        g.node("Div", [s, total], out=proba)
    if kind == "multilabel":
        above = g.node("Greater", [proba, g.const("half", np.array([0.5], np.float32))],
                       "above")
        g.node("Cast", [above], out=label, to=7)          # TensorProto.INT64
        return
    index = g.node("ArgMax", [proba], "class_index", axis=1, keepdims=0)
    values, _ = label_values(model.classes_)
    g.node("Gather", [g.const("classes", values), index], out=label, axis=0)


def _graph_emitter(opset):
    """An Emitter that collects a fresh graph: (emitter, nodes, constants)."""
    _onnx()
    from onnx import helper, numpy_helper
    nodes, consts, used = [], [], set()

    def fresh(stem):
        name, k = stem, 1
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        return name

    def add_node(op_type, inputs, outputs, name, attrs):
        nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))

    def add_const(name, array):
        consts.append(numpy_helper.from_array(array, name))

    for taken in ("X",) + OUTPUT_NAMES["classifier"] + OUTPUT_NAMES["regressor"]:
        used.add(taken)
    return Emitter(opset, add_node, add_const, fresh), nodes, consts


def to_onnx(model, target_opset=None, ir_version=None):
    """The fitted estimator ``model`` as an ``onnx.ModelProto`` (see the
    module's docstring for the graph); checked with ``onnx.checker``."""
    onnx = _onnx()
    from onnx import TensorProto, helper
    from ._version import __version__
    opset, ir = check_versions(target_opset, ir_version)
    g, nodes, consts = _graph_emitter(opset)
    n_in = int(model.n_features_in_)
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_in])]
    kind = _kind(model)
    if kind == "continuous":
        names = OUTPUT_NAMES["regressor"]
        outputs = [helper.make_tensor_value_info(names[0], TensorProto.FLOAT,
                                                 [None, int(model.n_outputs_)])]
    else:
        names = OUTPUT_NAMES["classifier"]
        k = int(model.n_outputs_)
        if kind == "multilabel":
            label_type, label_shape = TensorProto.INT64, [None, k]
        else:
            label_type = {"int64": TensorProto.INT64,
                          "string": TensorProto.STRING}[label_values(model.classes_)[1]]
            label_shape = [None]
        outputs = [helper.make_tensor_value_info(names[0], label_type, label_shape),
                   helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [None, k])]
    emit_model(model, g, "X", names)
    graph = helper.make_graph(nodes, f"fastmlp_{type(model).__name__}", inputs, outputs,
                              consts)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastmlp", producer_version=__version__,
                              doc_string=f"fastmlp {type(model).__name__}: "
                                         f"{list(model.layers_)} {model.activation}, "
                                         f"{model.out_activation_} outputs")
    proto.ir_version = ir
    onnx.checker.check_model(proto)
    return proto


def save_onnx(proto, path):
    """Write the ModelProto ``proto`` to ``path`` atomically (a temporary file
    in the same folder, renamed into place); returns the path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".onnx", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
