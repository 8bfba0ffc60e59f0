"""fastmlp's estimators as skl2onnx converters, for Pipelines that end in one.

:func:`register_skl2onnx` tells skl2onnx (``update_registered_converter``)
how to convert :class:`fastmlp.MLPClassifier` and :class:`fastmlp.MLPRegressor`.
Then ``skl2onnx.to_onnx(pipeline, X[:1])`` converts a scikit-learn ``Pipeline``
whose last step is a fastmlp estimator: skl2onnx converts the steps before
it (a scaler, say) as usual, and fastmlp's step writes the graph
:func:`fastmlp._onnx.emit_model` writes for :meth:`MLPClassifier.to_onnx`,
into skl2onnx's container.  skl2onnx's classifier options apply: by default
it turns the probabilities into a list of dicts (``zipmap``);
``options={id(model): {"zipmap": False}}`` keeps the tensor.  skl2onnx and
onnx are imported only when it is called.
"""

from ._classifier import MLPClassifier
from ._onnx import MIN_OPSET, Emitter, emit_model, label_values
from ._regressor import MLPRegressor

__all__ = ["register_skl2onnx"]


def _shapes(operator):
    """skl2onnx's shape calculator: the outputs' types and shapes."""
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    k = int(model.n_outputs_)
    if model._target_kind == "continuous":
        operator.outputs[0].type = FloatTensorType([n, k])
        return
    if model._target_kind == "multilabel":
        operator.outputs[0].type = Int64TensorType([n, k])
    else:
        label = {"int64": Int64TensorType,
                 "string": StringTensorType}[label_values(model.classes_)[1]]
        operator.outputs[0].type = label([n])
    operator.outputs[1].type = FloatTensorType([n, k])


def _convert(scope, operator, container):
    """skl2onnx's converter: the fastmlp graph into skl2onnx's container."""
    from onnx import TensorProto, numpy_helper
    from skl2onnx.common.data_types import FloatTensorType
    opset = container.target_opset
    if opset < MIN_OPSET:
        raise RuntimeError(f"fastmlp's graph needs opset {MIN_OPSET} or newer; "
                           f"target_opset is {opset}")

    def add_node(op_type, inputs, outputs, name, attrs):
        container.add_node(op_type, inputs, outputs, name=name, **attrs)

    def add_const(name, array):
        t = numpy_helper.from_array(array, name)
        if array.dtype == object:
            content = [s.encode() if isinstance(s, str) else s for s in array.ravel()]
        else:
            content = array.ravel().tolist()
        container.add_initializer(name, t.data_type, list(array.shape), content)

    g = Emitter(opset, add_node, add_const, scope.get_unique_variable_name)
    x = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, FloatTensorType):
        x = g.node("Cast", [x], "x_float", to=TensorProto.FLOAT)
    emit_model(operator.raw_operator, g, x, [o.full_name for o in operator.outputs])


def register_skl2onnx():
    """Register fastmlp's MLPClassifier and MLPRegressor with skl2onnx, so that
    ``skl2onnx.to_onnx`` converts a Pipeline ending in one (the classifier
    with skl2onnx's ``zipmap`` and ``nocl`` options).  Safe to call more than
    once.  Needs ``pip install "fastmlp[onnx]"``."""
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError('converting Pipelines needs skl2onnx: pip install "fastmlp[onnx]"'
                          ) from exc
    update_registered_converter(MLPClassifier, "FastmlpMLPClassifier", _shapes, _convert,
                                options={"zipmap": [True, False, "columns"],
                                         "nocl": [True, False]})
    update_registered_converter(MLPRegressor, "FastmlpMLPRegressor", _shapes, _convert)

