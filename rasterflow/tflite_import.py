"""Import int8 TFLite models into golden layers, and store their parameters.

:func:`load_tflite` parses a ``.tflite`` flatbuffer with the ``tflite`` package, walks the
operators of subgraph 0 in order and maps each to a layer of :mod:`rasterflow.golden.cnn`
with every quantization parameter resolved to integers exactly as the interpreter's
``Prepare`` functions resolve them. Each supported operator has one importer, registered
with :func:`importer` beside its code (its docstring names the layer and the limits);
:data:`IMPORTERS` lists them.

Only a linear chain of int8 activations is accepted (each operator consumes the previous
one's output). Anything else raises :class:`ModelError` naming the operator index, its
name and the reason.

Sidecar format
--------------
:func:`layer_to_dict` turns a layer into ``(params, arrays)``: ``params`` holds only
TOML-able scalars (``str``/``int``) — ``"type"`` (the golden class name), the scalar
fields, and for each array field the *name* of its array in ``arrays``
(``"<prefix>.<field>"``). :func:`layer_from_dict` inverts it. :func:`save_sidecar`
writes every layer's arrays plus a JSON copy of the parameters to one ``.npz`` file
(atomically), and :func:`load_sidecar` rebuilds the :class:`ImportedModel` from it. A spec
file can carry the same ``params`` dicts and point at the ``.npz`` for the arrays.
"""
import io
import json
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType

import numpy as np
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.BuiltinOperator import BuiltinOperator
from tflite.Padding import Padding
from tflite.TensorType import TensorType

from .golden.cnn import LAYER_TYPES, Conv2D, DepthwiseConv2D, LeakyRelu, MaxPool2D, Relu, Sequential
from .files import atomic_write_bytes
from .golden.quant import ACTIVATIONS, activation_range

__all__ = ["ModelError", "ImportedModel", "IMPORTERS", "importer", "load_tflite", "layer_to_dict",
           "layer_from_dict", "layer_dicts", "save_sidecar", "load_sidecar"]


class ModelError(ValueError):
    """A model the importer cannot turn into golden layers.

    Operator problems read ``"<file>: operator <index> (<OP_NAME>): <reason>"``; file
    problems ``"<file>: <reason>"``.
    """


_OP_NAMES = {code: name for name, code in vars(BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {code: name for name, code in vars(TensorType).items() if not name.startswith("_")}
_ACTIVATION_NAMES = {code: name for name, code in vars(ActivationFunctionType).items()
                     if not name.startswith("_")}
_PADDINGS = {Padding.SAME: "same", Padding.VALID: "valid"}
#: Low-level exceptions the flatbuffer accessors raise on corrupt or truncated data.
_FLATBUFFER_ERRORS = (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError,
                      OverflowError, KeyError, AttributeError)


@dataclass(frozen=True, eq=False)
class ImportedModel:
    """Golden layers of an imported model, with its boundary quantization.

    ``layers`` (tuple of golden layers), ``op_names`` (TFLite operator names, one per
    layer), ``op_indices`` (their operator indices in subgraph 0), ``input_shape`` (NHWC
    as stored in the model, batch included), ``input_scale``/``input_zero_point`` and
    ``output_scale``/``output_zero_point`` (per-tensor quantization of the chain's first
    input and last output).
    """
    layers: tuple
    op_names: tuple
    op_indices: tuple
    input_shape: tuple
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    @property
    def sequential(self):
        return Sequential(self.layers)

    @property
    def output_shape(self):
        return self.sequential.output_shape(self.input_shape)

    def __call__(self, x):
        return self.sequential(x)


class _Operator:
    """One operator being imported: its accessors plus error messages naming it."""

    def __init__(self, path, index, name, op, tensors):
        self.path, self.index, self.name, self.op, self._tensors = path, index, name, op, tensors

    def error(self, reason):
        return ModelError(f"{self.path}: operator {self.index} ({self.name}): {reason}")

    def tensor(self, slot, kind):
        """Tensor ``slot`` of the inputs (``kind == "input"``) or outputs, or None if absent."""
        length = self.op.InputsLength() if kind == "input" else self.op.OutputsLength()
        if slot >= length:
            return None
        index = self.op.Inputs(slot) if kind == "input" else self.op.Outputs(slot)
        if index < 0:  # -1 marks an omitted optional input
            return None
        if index >= len(self._tensors):
            raise self.error(f"{kind} {slot} refers to tensor {index}, which does not exist")
        return self._tensors[index]

    def options(self, options_class):
        table = self.op.BuiltinOptions()
        if table is None:
            raise self.error("builtin options are missing")
        options = options_class()
        options.Init(table.Bytes, table.Pos)
        return options

    def activation(self, code):
        name = _ACTIVATION_NAMES.get(code, f"code {code}")
        if name not in ACTIVATIONS:
            raise self.error(f"fused activation {name} is not supported")
        return name

    def padding(self, code):
        if code not in _PADDINGS:
            raise self.error(f"padding code {code} is not supported")
        return _PADDINGS[code]

    def square_stride(self, options):
        if options.StrideW() != options.StrideH():
            raise self.error(f"non-square stride {options.StrideH()}x{options.StrideW()} "
                             "(height x width) is not supported")
        if options.StrideW() < 1:
            raise self.error(f"stride must be positive, not {options.StrideW()}")
        return options.StrideW()


@dataclass(frozen=True)
class _Tensor:
    """The parts of a TFLite tensor the importer needs, read once."""
    index: int
    name: str
    type_name: str
    shape: tuple
    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int
    data: bytes

    def activation_qparams(self, op, role):
        """(scale, zero point) of an int8 per-tensor activation, or a ModelError."""
        if self.type_name != "INT8":
            what = "float" if self.type_name.startswith("FLOAT") else self.type_name
            raise op.error(f"{role} tensor {self.index} '{self.name}' is {what} "
                           f"({self.type_name}); only int8 activations are supported")
        if self.scales.size != 1 or self.zero_points.size != 1:
            raise op.error(f"{role} tensor {self.index} '{self.name}' needs per-tensor "
                           f"quantization, has {self.scales.size} scales")
        if self.data:
            raise op.error(f"{role} tensor {self.index} '{self.name}' is a constant")
        return float(self.scales[0]), int(self.zero_points[0])

    def constant(self, op, role, type_name, dtype):
        if self.type_name != type_name:
            raise op.error(f"{role} tensor {self.index} '{self.name}' is {self.type_name}, "
                           f"expected {type_name}")
        expected = int(np.prod(self.shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if len(self.data) != expected:
            raise op.error(f"{role} tensor {self.index} '{self.name}' holds {len(self.data)} "
                           f"bytes, its shape {list(self.shape)} needs {expected}")
        return np.frombuffer(self.data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(self.shape)

    def channel_scales(self, op, role, dimension, channels):
        """Symmetric weight scales per channel of ``dimension`` (per-tensor is broadcast)."""
        if np.any(self.zero_points != 0):
            raise op.error(f"{role} tensor {self.index} '{self.name}' has a nonzero zero point; "
                           "int8 weights must be symmetric")
        if self.scales.size == 1:
            return np.full(channels, self.scales[0], dtype=np.float32)
        if self.scales.size != channels or self.quantized_dimension != dimension:
            raise op.error(f"{role} tensor {self.index} '{self.name}' has {self.scales.size} "
                           f"scales on dimension {self.quantized_dimension}; expected 1 or "
                           f"{channels} on dimension {dimension}")
        return self.scales.astype(np.float32)


def _read_tensors(model, subgraph):
    tensors = []
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        quantization = tensor.Quantization()
        scales = np.zeros(0, dtype=np.float32)
        zero_points = np.zeros(0, dtype=np.int64)
        dimension = 0
        if quantization is not None:
            if quantization.ScaleLength():
                scales = quantization.ScaleAsNumpy().astype(np.float32)
            if quantization.ZeroPointLength():
                zero_points = quantization.ZeroPointAsNumpy().astype(np.int64)
            dimension = quantization.QuantizedDimension()
        buffer_index = tensor.Buffer()
        if not 0 <= buffer_index < model.BuffersLength():
            raise ValueError(f"tensor {index} refers to buffer {buffer_index}, which does not exist")
        buffer = model.Buffers(buffer_index)
        data = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        tensors.append(_Tensor(index, (tensor.Name() or b"").decode(), _TYPE_NAMES.get(
            tensor.Type(), f"type {tensor.Type()}"), shape, scales, zero_points, dimension, data))
    return tensors


_IMPORTERS = {}
#: ``{TFLite operator name: importer}`` in registration order; read-only, filled by
#: :func:`importer`.
IMPORTERS = MappingProxyType(_IMPORTERS)


def importer(*op_names):
    """Decorator: register ``function(op) -> golden layer`` as the importer of the TFLite
    builtin operators ``op_names``. An operator has one importer; a second is refused."""
    def register(function):
        for name in op_names:
            if name not in _OP_NAMES.values():
                raise ValueError(f"{name} is not a TFLite builtin operator")
            if name in _IMPORTERS:
                raise ValueError(f"TFLite operator {name} already has an importer "
                                 f"({_IMPORTERS[name].__name__})")
        _IMPORTERS.update(dict.fromkeys(op_names, function))
        return function
    return register


@importer("CONV_2D")
def _conv(op):
    """:class:`~rasterflow.golden.cnn.Conv2D`."""
    x, w, b, y = op.tensor(0, "input"), op.tensor(1, "input"), op.tensor(2, "input"), op.tensor(0, "output")
    in_scale, in_zp = x.activation_qparams(op, "input")
    out_scale, out_zp = y.activation_qparams(op, "output")
    options = op.options(tflite.Conv2DOptions)
    if (options.DilationHFactor(), options.DilationWFactor()) != (1, 1):
        raise op.error(f"dilation {options.DilationHFactor()}x{options.DilationWFactor()} is "
                       "not supported (only 1)")
    weights = w.constant(op, "filter", "INT8", np.int8)
    if weights.ndim != 4 or weights.shape[1] != weights.shape[2]:
        raise op.error(f"filter shape {list(weights.shape)} is not [Cout, K, K, Cin]")
    if weights.shape[3] != x.shape[-1]:
        raise op.error(f"filter has {weights.shape[3]} input channels, input has "
                       f"{x.shape[-1]} (grouped convolution is not supported)")
    channels = weights.shape[0]
    if b is None:  # conv.cc Prepare: quantized CONV_2D must have a bias
        raise op.error("an int8 CONV_2D needs a bias tensor (TFLite rejects it without one)")
    bias = b.constant(op, "bias", "INT32", np.int32)
    return Conv2D.from_scales(
        weights, bias, in_scale, in_zp, w.channel_scales(op, "filter", 0, channels), out_scale,
        out_zp, op.activation(options.FusedActivationFunction()), op.square_stride(options),
        op.padding(options.Padding()))


@importer("DEPTHWISE_CONV_2D")
def _depthwise(op):
    """:class:`~rasterflow.golden.cnn.DepthwiseConv2D` (depth multiplier 1)."""
    x, w, b, y = op.tensor(0, "input"), op.tensor(1, "input"), op.tensor(2, "input"), op.tensor(0, "output")
    in_scale, in_zp = x.activation_qparams(op, "input")
    out_scale, out_zp = y.activation_qparams(op, "output")
    options = op.options(tflite.DepthwiseConv2DOptions)
    if (options.DilationHFactor(), options.DilationWFactor()) != (1, 1):
        raise op.error(f"dilation {options.DilationHFactor()}x{options.DilationWFactor()} is "
                       "not supported (only 1)")
    weights = w.constant(op, "filter", "INT8", np.int8)
    if weights.ndim != 4 or weights.shape[0] != 1 or weights.shape[1] != weights.shape[2]:
        raise op.error(f"filter shape {list(weights.shape)} is not [1, K, K, C]")
    channels = weights.shape[3]
    # The kernel derives the multiplier from the shapes (output / input channels).
    if channels != x.shape[-1] or options.DepthMultiplier() not in (0, 1):
        raise op.error(f"depth multiplier {channels // max(x.shape[-1], 1)} (option "
                       f"{options.DepthMultiplier()}) is not supported (only 1)")
    # Unlike CONV_2D, the depthwise kernel accepts an omitted bias (treated as zeros).
    bias = np.zeros(channels, np.int32) if b is None else b.constant(op, "bias", "INT32", np.int32)
    return DepthwiseConv2D.from_scales(
        weights[0], bias, in_scale, in_zp, w.channel_scales(op, "filter", 3, channels),
        out_scale, out_zp, op.activation(options.FusedActivationFunction()),
        op.square_stride(options), op.padding(options.Padding()))


@importer("LEAKY_RELU")
def _leaky_relu(op):
    """:class:`~rasterflow.golden.cnn.LeakyRelu`."""
    in_scale, in_zp = op.tensor(0, "input").activation_qparams(op, "input")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    alpha = op.options(tflite.LeakyReluOptions).Alpha()
    return LeakyRelu.from_scales(in_scale, in_zp, out_scale, out_zp, alpha)


@importer("MAX_POOL_2D")
def _max_pool(op):
    """:class:`~rasterflow.golden.cnn.MaxPool2D` (square window and stride)."""
    in_qparams = op.tensor(0, "input").activation_qparams(op, "input")
    out_qparams = op.tensor(0, "output").activation_qparams(op, "output")
    if in_qparams != out_qparams:
        raise op.error(f"input quantization {in_qparams} differs from output {out_qparams}")
    options = op.options(tflite.Pool2DOptions)
    if options.FilterWidth() != options.FilterHeight():
        raise op.error(f"non-square window {options.FilterHeight()}x{options.FilterWidth()} "
                       "is not supported")
    act_min, act_max = activation_range(op.activation(options.FusedActivationFunction()),
                                        *out_qparams)
    return MaxPool2D(options.FilterWidth(), op.square_stride(options),
                     op.padding(options.Padding()), act_min, act_max)


@importer("RELU", "RELU6", "RELU_N1_TO_1")
def _relu(op):
    """:class:`~rasterflow.golden.cnn.Relu`; the operator's name is the clamp's activation kind."""
    in_scale, in_zp = op.tensor(0, "input").activation_qparams(op, "input")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    return Relu.from_scales(in_scale, in_zp, out_scale, out_zp, op.name)


def _op_name(model, op):
    index = op.OpcodeIndex()
    if not 0 <= index < model.OperatorCodesLength():
        raise ValueError(f"operator code index {index} does not exist")
    code = model.OperatorCodes(index)
    # Schema rule: the real code is the larger of builtin_code and deprecated_builtin_code.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == BuiltinOperator.CUSTOM:
        return f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _import_operator(operator, previous=None):
    """Map one :class:`_Operator` to a golden layer, or raise :class:`ModelError` naming it.

    ``previous`` is the operator before it in the chain (its output must be this one's
    input). The layer's computed output shape must match the model's output tensor.
    """
    if operator.name not in _IMPORTERS:
        raise operator.error(f"unsupported operator (supported: {', '.join(_IMPORTERS)})")
    try:
        if operator.op.InputsLength() < 1 or operator.op.OutputsLength() != 1:
            raise operator.error("expected one activation input and one output")
        source, result = operator.tensor(0, "input"), operator.tensor(0, "output")
        if source is None or result is None:
            raise operator.error("the activation input or the output is missing")
        if previous is not None and source.index != previous.tensor(0, "output").index:
            raise operator.error(f"input tensor {source.index} is not the previous operator's "
                                 "output; only linear chains are supported")
        for role, tensor in (("input", source), ("output", result)):
            if len(tensor.shape) != 4 or min(tensor.shape) < 1:
                raise operator.error(f"{role} tensor {tensor.index} '{tensor.name}' has shape "
                                     f"{list(tensor.shape)}; expected NHWC")
        layer = _IMPORTERS[operator.name](operator)
        try:
            computed = tuple(layer.output_shape(source.shape))
        except ValueError as exc:
            raise operator.error(f"input shape {list(source.shape)} does not fit: {exc}") from exc
        if computed[1:] != result.shape[1:]:
            raise operator.error(f"output shape {list(result.shape)} does not match the "
                                 f"computed {list(computed)}")
        return layer
    except ModelError:
        raise
    except _FLATBUFFER_ERRORS as exc:
        raise operator.error(f"corrupt or inconsistent operator data ({type(exc).__name__}: {exc})") from exc


def _select(count, layers, path):
    """The operator range ``[start, stop)`` to import; all operators when ``layers`` is None."""
    if count == 0:
        raise ModelError(f"{path}: subgraph 0 has no operators")
    start, stop = (0, count) if layers is None else layers
    if not 0 <= start < stop <= count:
        raise ModelError(f"{path}: layers {start}:{stop} is not a non-empty range of the "
                         f"operators 0..{count - 1}")
    return start, stop


def load_tflite(path, layers=None):
    """Import subgraph 0 of the ``.tflite`` file at ``path`` as an :class:`ImportedModel`.

    ``layers=(a, b)`` imports only operators ``a .. b-1`` (the CLI's ``--layers A:B``);
    the model's boundary quantization is then that of operator ``a``'s input and operator
    ``b-1``'s output. Raises :class:`ModelError` for a missing, unreadable, corrupt or
    truncated file and for any operator it cannot map exactly.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = tflite.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{path}: the model has no subgraph")
        subgraph = model.Subgraphs(0)
        tensors = _read_tensors(model, subgraph)
        operators = [subgraph.Operators(i) for i in range(subgraph.OperatorsLength())]
        names = [_op_name(model, op) for op in operators]
    except ModelError:
        raise
    except _FLATBUFFER_ERRORS as exc:
        raise ModelError(f"{path}: corrupt or truncated TFLite flatbuffer "
                         f"({type(exc).__name__}: {exc})") from exc
    start, stop = _select(len(operators), layers, path)

    chain = [_Operator(path, index, names[index], operators[index], tensors)
             for index in range(start, stop)]
    golden_layers = tuple(_import_operator(operator, chain[position - 1] if position else None)
                          for position, operator in enumerate(chain))
    in_scale, in_zp = chain[0].tensor(0, "input").activation_qparams(chain[0], "input")
    out_scale, out_zp = chain[-1].tensor(0, "output").activation_qparams(chain[-1], "output")
    return ImportedModel(golden_layers, tuple(names[start:stop]), tuple(range(start, stop)),
                         chain[0].tensor(0, "input").shape, in_scale, in_zp, out_scale, out_zp)


def layer_to_dict(layer, prefix):
    """``(params, arrays)`` for a golden layer.

    ``params`` maps ``"type"`` to the class name and every field to a Python ``int`` or
    ``str``; an ndarray field is replaced by the key ``f"{prefix}.{field}"`` under which
    ``arrays`` holds it. TOML can hold ``params`` as-is.
    """
    params = {"type": type(layer).__name__}
    arrays = {}
    for field in fields(layer):
        name, value = field.name, getattr(layer, field.name)
        if isinstance(value, np.ndarray):
            key = f"{prefix}.{name}"
            arrays[key] = value
            params[name] = key
        elif isinstance(value, str):
            params[name] = value
        else:
            params[name] = int(value)
    return params, arrays


def layer_from_dict(params, arrays):
    """Inverse of :func:`layer_to_dict`: rebuild the layer from ``params`` and ``arrays``
    (any mapping from array keys to arrays, e.g. an open ``np.load`` result)."""
    params = dict(params)
    layer_type = params.pop("type", None)
    if layer_type not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {layer_type!r}; expected one of {', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[layer_type]
    values = {}
    for field in fields(cls):
        if field.name not in params:
            raise ValueError(f"{layer_type} parameters lack {field.name!r}")
        value = params.pop(field.name)
        if field.type is np.ndarray:
            if value not in arrays:
                raise ValueError(f"{layer_type}.{field.name}: no array named {value!r}")
            value = np.asarray(arrays[value])
        values[field.name] = value
    if params:
        raise ValueError(f"{layer_type} parameters have unknown keys {sorted(params)}")
    return cls(**values)


def layer_dicts(model):
    """:func:`layer_to_dict` of each of ``model``'s layers, under the array keys
    ``layer<i>.<field>`` that :func:`save_sidecar` writes."""
    return [layer_to_dict(layer, f"layer{position}") for position, layer in enumerate(model.layers)]


_MODEL_KEY = "model_json"


def save_sidecar(model, npz_path):
    """Write ``model``'s layer arrays and parameters to ``npz_path`` atomically.

    Written with :func:`~rasterflow.files.atomic_write_bytes` — readers see the old file or
    the new one, never a partial write. Keys: ``layer<i>.<field>`` for arrays, and ``model_json`` (a
    string array) with the boundary quantization and each layer's ``params``.
    """
    npz_path = Path(npz_path)
    arrays = {}
    layer_params = []
    for params, layer_arrays in layer_dicts(model):
        layer_params.append(params)
        arrays.update(layer_arrays)
    description = {
        "layers": layer_params, "op_names": list(model.op_names),
        "op_indices": list(model.op_indices), "input_shape": list(model.input_shape),
        "input_scale": model.input_scale, "input_zero_point": model.input_zero_point,
        "output_scale": model.output_scale, "output_zero_point": model.output_zero_point,
    }
    arrays[_MODEL_KEY] = np.array(json.dumps(description))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(npz_path, buffer.getvalue())


def load_sidecar(npz_path):
    """Read a file written by :func:`save_sidecar` back into an :class:`ImportedModel`."""
    with np.load(npz_path, allow_pickle=False) as archive:
        description = json.loads(str(archive[_MODEL_KEY]))
        arrays = {key: archive[key] for key in archive.files if key != _MODEL_KEY}
    layers = tuple(layer_from_dict(params, arrays) for params in description["layers"])
    return ImportedModel(layers, tuple(description["op_names"]), tuple(description["op_indices"]),
                         tuple(description["input_shape"]), description["input_scale"],
                         description["input_zero_point"], description["output_scale"],
                         description["output_zero_point"])
