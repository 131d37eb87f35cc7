"""Import int8 TFLite models into a graph of golden layers, and store their parameters.

:func:`load_tflite` parses a ``.tflite`` flatbuffer with the ``tflite`` package, walks the
operators of subgraph 0 in order (TFLite stores them topologically sorted) and maps each to
a layer of :mod:`rasterflow.golden` with every quantization parameter resolved to integers
exactly as the interpreter's ``Prepare`` functions resolve them. Each supported operator has
one importer, registered with :func:`importer` beside its code (its docstring names the
layer and the limits); :data:`IMPORTERS` lists them.

The result is an :class:`ImportedModel`: a graph of :class:`ImportedNode` (a node reads the
model input or other nodes' outputs; a tensor read twice forks) with the model's outputs in
its order. Operators that only relabel a tensor become no node:

* ``RESHAPE`` / ``SQUEEZE`` keep the stream (a tensor ``[1, H, W, C]`` streams as ``H x W``
  pixels of ``C`` channels, ``[1, C]`` as one pixel); one that would change the pixel layout
  is refused unless only the model output reads it (the host then reshapes).
* At the model's edges, done by the host exactly as TFLite does them: ``QUANTIZE`` of a
  float32 input, ``DEQUANTIZE`` of an output, ``TRANSPOSE`` of an NCHW input to NHWC
  (:class:`ModelInput`, :class:`ModelOutput`, :meth:`ImportedModel.predict`).

Anything else raises :class:`ModelError` naming the operator index, its name and the
reason.

Sidecar format
--------------
:func:`layer_to_dict` turns a layer into ``(params, arrays)``: ``params`` holds only
TOML-able values (``str``/``int``/``float``/``bool`` and lists of them) — ``"type"`` (the
golden class name), the constructor's arguments, and for each array argument the *name*
of its array in ``arrays`` (``"<prefix>.<field>"``). :func:`layer_from_dict` inverts it.
:func:`save_sidecar` writes every node's arrays plus a JSON description of the graph to
one ``.npz`` file (atomically), and :func:`load_sidecar` rebuilds the
:class:`ImportedModel` from it. A spec file points at the same ``.npz`` for the arrays.
"""
import inspect
import io
import json
import numbers
import struct
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.BuiltinOperator import BuiltinOperator
from tflite.Padding import Padding
from tflite.TensorType import TensorType

from .files import atomic_write_bytes
from .golden.cnn import LAYER_TYPES, Conv2D, DepthwiseConv2D, LeakyRelu, MaxPool2D, Relu
from .golden.dense import FullyConnected
from .golden.elementwise import Add, Concatenation, Pad, ResizeNearestNeighbor
from .golden.nonlinear import Logistic, Softmax
from .golden.pooling import AveragePool2D, Mean
from .golden.quant import ACTIVATIONS, activation_range
from .model_io import ModelInput, ModelOutput

__all__ = ["ModelError", "ImportedModel", "ImportedNode", "ModelInput", "ModelOutput", "INPUT",
           "IMPORTERS", "importer", "load_tflite", "stream_shape", "layer_to_dict",
           "layer_from_dict", "layer_dicts", "save_sidecar", "load_sidecar"]

#: The name under which nodes read the model's input.
INPUT = "input"


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


def stream_shape(shape):
    """``(height, width, channels)`` of the pixel stream that carries a tensor of TFLite
    ``shape`` (batch first), or None for a rank the stream cannot carry."""
    shape = tuple(shape)
    return {4: lambda: shape[1:], 3: lambda: (1, *shape[1:]), 2: lambda: (1, 1, shape[1]),
            1: lambda: (1, 1, shape[0])}.get(len(shape), lambda: None)()


@dataclass(frozen=True)
class ImportedNode:
    """One imported operator: ``name`` (unique, ``op<index>_<operator>``), its golden
    ``layer``, the TFLite ``op_name`` and ``op_index``, the names of the nodes it reads
    (:data:`INPUT` for the model input) with the TFLite ``input_shapes`` it reads them as,
    and the TFLite ``shape`` of its output (batch included)."""
    name: str
    layer: object
    op_name: str
    op_index: int
    inputs: tuple
    input_shapes: tuple
    shape: tuple

    @property
    def stream_shape(self):
        return stream_shape(self.shape)


@dataclass(frozen=True, eq=False)
class ImportedModel:
    """An imported model: ``nodes`` (topologically ordered :class:`ImportedNode`),
    ``input`` (:class:`ModelInput`) and ``outputs`` (:class:`ModelOutput`, in the model's
    output order).

    :meth:`run` is the int8 golden model on NHWC batches; :meth:`predict` takes and returns
    the tensors LiteRT takes and returns (float I/O and NCHW input included).
    """
    nodes: tuple
    input: ModelInput
    outputs: tuple

    @property
    def layers(self):
        return tuple(node.layer for node in self.nodes)

    @property
    def op_names(self):
        return tuple(node.op_name for node in self.nodes)

    @property
    def op_indices(self):
        return tuple(node.op_index for node in self.nodes)

    @property
    def input_shape(self):
        """The int8 NHWC stream's shape, batch first."""
        return self.input.nhwc_shape

    @property
    def input_scale(self):
        return self.input.scale

    @property
    def input_zero_point(self):
        return self.input.zero_point

    def run(self, x):
        """The int8 outputs (a list, model order) for an int8 NHWC batch ``x``."""
        x = np.asarray(x)
        values = {INPUT: x}
        for node in self.nodes:
            args = [values[name].reshape(len(x), *shape[1:])
                    for name, shape in zip(node.inputs, node.input_shapes)]
            values[node.name] = np.asarray(node.layer(*args)).reshape(len(x), *node.shape[1:])
        return [values[output.node].reshape(len(x), *output.shape[1:]) for output in self.outputs]

    def __call__(self, x):
        """The output of a single-output model for an int8 NHWC batch ``x``."""
        if len(self.outputs) != 1:
            raise ValueError(f"the model has {len(self.outputs)} outputs; use run()")
        return self.run(x)[0]

    def predict(self, x):
        """The outputs LiteRT returns (a list, model order) for its input tensor ``x``."""
        outputs = self.run(self.input.to_stream(x))
        return [spec.from_stream(y) for spec, y in zip(self.outputs, outputs)]


class _Operator:
    """One operator being imported: its accessors plus error messages naming it."""

    def __init__(self, path, index, name, op, tensors):
        self.path, self.index, self.name, self.op, self._tensors = path, index, name, op, tensors

    def error(self, reason):
        return ModelError(f"{self.path}: operator {self.index} ({self.name}): {reason}")

    def golden(self, layer_type, *args):
        """``layer_type(*args)``, its ValueError said as this operator's error."""
        try:
            return layer_type(*args)
        except ValueError as exc:
            raise self.error(str(exc)) from exc

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
#: Operators that relabel a tensor (no node): layout-only reshapes and the model's edges.
LAYOUT_OPS = ("RESHAPE", "SQUEEZE")
EDGE_OPS = ("QUANTIZE", "DEQUANTIZE", "TRANSPOSE")


def importer(*op_names, streams=1):
    """Decorator: register ``function(op) -> golden layer`` as the importer of the TFLite
    builtin operators ``op_names``, whose first ``streams`` inputs are activations (None:
    every input). An operator has one importer; a second is refused."""
    def register(function):
        for name in op_names:
            if name not in _OP_NAMES.values():
                raise ValueError(f"{name} is not a TFLite builtin operator")
            if name in _IMPORTERS:
                raise ValueError(f"TFLite operator {name} already has an importer "
                                 f"({_IMPORTERS[name].__name__})")
        function.streams = streams
        _IMPORTERS.update(dict.fromkeys(op_names, function))
        return function
    return register


def _no_dilation(op, options):
    if (options.DilationHFactor(), options.DilationWFactor()) != (1, 1):
        raise op.error(f"dilation {options.DilationHFactor()}x{options.DilationWFactor()} is "
                       "not supported (only 1)")


@importer("CONV_2D")
def _conv(op):
    """:class:`~rasterflow.golden.cnn.Conv2D`."""
    x, w, b, y = op.tensor(0, "input"), op.tensor(1, "input"), op.tensor(2, "input"), op.tensor(0, "output")
    in_scale, in_zp = x.activation_qparams(op, "input")
    out_scale, out_zp = y.activation_qparams(op, "output")
    options = op.options(tflite.Conv2DOptions)
    _no_dilation(op, options)
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
    """:class:`~rasterflow.golden.cnn.DepthwiseConv2D`, any depth multiplier."""
    x, w, b, y = op.tensor(0, "input"), op.tensor(1, "input"), op.tensor(2, "input"), op.tensor(0, "output")
    in_scale, in_zp = x.activation_qparams(op, "input")
    out_scale, out_zp = y.activation_qparams(op, "output")
    options = op.options(tflite.DepthwiseConv2DOptions)
    _no_dilation(op, options)
    weights = w.constant(op, "filter", "INT8", np.int8)
    if weights.ndim != 4 or weights.shape[0] != 1 or weights.shape[1] != weights.shape[2]:
        raise op.error(f"filter shape {list(weights.shape)} is not [1, K, K, C * M]")
    channels, in_channels = weights.shape[3], x.shape[-1]
    # The kernel derives the multiplier from the shapes (output / input channels).
    if channels % in_channels:
        raise op.error(f"filter has {channels} channels, not a multiple of the input's "
                       f"{in_channels}")
    # Unlike CONV_2D, the depthwise kernel accepts an omitted bias (treated as zeros).
    bias = np.zeros(channels, np.int32) if b is None else b.constant(op, "bias", "INT32", np.int32)
    return DepthwiseConv2D.from_scales(
        weights[0], bias, in_scale, in_zp, w.channel_scales(op, "filter", 3, channels),
        out_scale, out_zp, op.activation(options.FusedActivationFunction()),
        op.square_stride(options), op.padding(options.Padding()),
        depth_multiplier=channels // in_channels)


@importer("LEAKY_RELU")
def _leaky_relu(op):
    """:class:`~rasterflow.golden.cnn.LeakyRelu`."""
    in_scale, in_zp = op.tensor(0, "input").activation_qparams(op, "input")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    alpha = op.options(tflite.LeakyReluOptions).Alpha()
    return LeakyRelu.from_scales(in_scale, in_zp, out_scale, out_zp, alpha)


def _same_qparams(op):
    in_qparams = op.tensor(0, "input").activation_qparams(op, "input")
    out_qparams = op.tensor(0, "output").activation_qparams(op, "output")
    if in_qparams != out_qparams:
        raise op.error(f"input quantization {in_qparams} differs from output {out_qparams} "
                       "(TFLite requires them equal)")
    return out_qparams


@importer("MAX_POOL_2D")
def _max_pool(op):
    """:class:`~rasterflow.golden.cnn.MaxPool2D` (square window and stride)."""
    qparams = _same_qparams(op)
    options = op.options(tflite.Pool2DOptions)
    if options.FilterWidth() != options.FilterHeight():
        raise op.error(f"non-square window {options.FilterHeight()}x{options.FilterWidth()} "
                       "is not supported")
    act_min, act_max = activation_range(op.activation(options.FusedActivationFunction()),
                                        *qparams)
    return MaxPool2D(options.FilterWidth(), op.square_stride(options),
                     op.padding(options.Padding()), act_min, act_max)


@importer("AVERAGE_POOL_2D")
def _average_pool(op):
    """:class:`~rasterflow.golden.pooling.AveragePool2D` (any window, strides, padding)."""
    out_scale, out_zp = _same_qparams(op)
    options = op.options(tflite.Pool2DOptions)
    if min(options.StrideH(), options.StrideW(), options.FilterHeight(), options.FilterWidth()) < 1:
        raise op.error("window and strides must be positive")
    return AveragePool2D.from_scales(
        options.FilterHeight(), options.FilterWidth(), options.StrideH(), options.StrideW(),
        op.padding(options.Padding()), out_scale, out_zp,
        op.activation(options.FusedActivationFunction()))


@importer("MEAN")
def _mean(op):
    """:class:`~rasterflow.golden.pooling.Mean` over height and width."""
    x = op.tensor(0, "input")
    in_scale, in_zp = x.activation_qparams(op, "input")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    axes = op.tensor(1, "input").constant(op, "axes", "INT32", np.int32).reshape(-1)
    rank = len(x.shape)
    normalized = sorted({int(a) % rank for a in axes}) if rank else []
    if rank != 4 or normalized != [1, 2]:
        raise op.error(f"MEAN over axes {axes.tolist()} of a rank-{rank} tensor is not "
                       "supported (only height and width of NHWC)")
    keep_dims = op.options(tflite.ReducerOptions).KeepDims()
    return Mean(in_scale, in_zp, out_scale, out_zp, (1, 2), keep_dims)


@importer("FULLY_CONNECTED")
def _fully_connected(op):
    """:class:`~rasterflow.golden.dense.FullyConnected` (per-tensor or per-channel weights,
    optional bias)."""
    x, w, b, y = op.tensor(0, "input"), op.tensor(1, "input"), op.tensor(2, "input"), op.tensor(0, "output")
    in_scale, in_zp = x.activation_qparams(op, "input")
    out_scale, out_zp = y.activation_qparams(op, "output")
    options = op.options(tflite.FullyConnectedOptions)
    if options.WeightsFormat() != 0:
        raise op.error(f"weights format {options.WeightsFormat()} is not supported (only DEFAULT)")
    weights = w.constant(op, "weights", "INT8", np.int8)
    if weights.ndim != 2:
        raise op.error(f"weights shape {list(weights.shape)} is not [Cout, Cin]")
    bias = None if b is None else b.constant(op, "bias", "INT32", np.int32)
    return FullyConnected.from_scales(
        weights, bias, in_scale, in_zp, w.channel_scales(op, "weights", 0, weights.shape[0]),
        out_scale, out_zp, op.activation(options.FusedActivationFunction()),
        options.KeepNumDims())


@importer("SOFTMAX")
def _softmax(op):
    """:class:`~rasterflow.golden.nonlinear.Softmax` over the last axis (the channels)."""
    in_scale, in_zp = op.tensor(0, "input").activation_qparams(op, "input")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    return op.golden(Softmax, in_scale, in_zp, out_scale, out_zp,
                     op.options(tflite.SoftmaxOptions).Beta())


@importer("LOGISTIC")
def _logistic(op):
    """:class:`~rasterflow.golden.nonlinear.Logistic`."""
    in_scale, in_zp = op.tensor(0, "input").activation_qparams(op, "input")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    return op.golden(Logistic, in_scale, in_zp, out_scale, out_zp)


@importer("ADD", streams=2)
def _add(op):
    """:class:`~rasterflow.golden.elementwise.Add` of two activations of one shape."""
    s1, z1 = op.tensor(0, "input").activation_qparams(op, "input 0")
    s2, z2 = op.tensor(1, "input").activation_qparams(op, "input 1")
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    act_min, act_max = activation_range(
        op.activation(op.options(tflite.AddOptions).FusedActivationFunction()), out_scale, out_zp)
    return op.golden(Add, s1, z1, s2, z2, out_scale, out_zp, act_min, act_max)


@importer("CONCATENATION", streams=None)
def _concatenation(op):
    """:class:`~rasterflow.golden.elementwise.Concatenation` along the channels."""
    options = op.options(tflite.ConcatenationOptions)
    if options.FusedActivationFunction() != ActivationFunctionType.NONE:
        raise op.error("a fused activation on CONCATENATION is not supported")
    rank = len(op.tensor(0, "output").shape)
    if options.Axis() % max(rank, 1) != rank - 1:
        raise op.error(f"concatenation along axis {options.Axis()} of a rank-{rank} tensor is "
                       "not supported (only the last axis, the channels)")
    in_params = [op.tensor(k, "input").activation_qparams(op, f"input {k}")
                 for k in range(op.op.InputsLength())]
    out_scale, out_zp = op.tensor(0, "output").activation_qparams(op, "output")
    return op.golden(Concatenation, -1, in_params, out_scale, out_zp)


@importer("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(op):
    """:class:`~rasterflow.golden.elementwise.ResizeNearestNeighbor`."""
    _same_qparams(op)
    size = op.tensor(1, "input").constant(op, "size", "INT32", np.int32).reshape(-1)
    if size.shape != (2,):
        raise op.error(f"size must hold [height, width], not {size.tolist()}")
    options = op.options(tflite.ResizeNearestNeighborOptions)
    return op.golden(ResizeNearestNeighbor, int(size[0]), int(size[1]),
                     options.AlignCorners(), options.HalfPixelCenters())


@importer("PAD", "PADV2")
def _pad(op):
    """:class:`~rasterflow.golden.elementwise.Pad` (PAD fills with the zero point, PADV2 with
    its constant)."""
    out_scale, out_zp = _same_qparams(op)
    paddings_tensor = op.tensor(1, "input")
    kind = "INT64" if paddings_tensor.type_name == "INT64" else "INT32"
    paddings = paddings_tensor.constant(op, "paddings", kind,
                                        np.int64 if kind == "INT64" else np.int32)
    constant = out_zp
    value = op.tensor(2, "input") if op.name == "PADV2" else None
    if value is not None:
        constant = int(value.constant(op, "constant value", "INT8", np.int8).reshape(-1)[0])
    return op.golden(Pad, [tuple(int(v) for v in pair) for pair in paddings.reshape(-1, 2)],
                     constant)


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


def _checked_output_shape(operator, layer, sources, result):
    try:
        computed = tuple(layer.output_shape(*(source.shape for source in sources)))
    except ValueError as exc:
        raise operator.error(f"input shape(s) {[list(s.shape) for s in sources]} do not fit: "
                             f"{exc}") from exc
    if computed[1:] != result.shape[1:] or len(computed) != len(result.shape):
        raise operator.error(f"output shape {list(result.shape)} does not match the "
                             f"computed {list(computed)}")


class _GraphBuilder:
    """The walk over subgraph 0's operators ``start .. stop-1`` that makes the nodes.

    ``source[t]`` is the node (or :data:`INPUT`) whose stream holds tensor ``t``; the host's
    work at the edges is collected in ``dtype``/``qparams`` (a QUANTIZE of the float input),
    ``layout`` (a TRANSPOSE of an NCHW input) and ``dequantized`` (output tensor -> the
    quantization its DEQUANTIZE undoes).
    """

    def __init__(self, path, tensors, start_tensor):
        self.path, self.tensors, self.start_tensor = path, tensors, start_tensor
        self.source = {start_tensor.index: INPUT}
        self.nodes = []
        self.dtype, self.layout, self.input_consumed = "int8", "nhwc", False
        self.qparams = None
        self.dequantized = {}

    def add(self, operator):
        """Import one operator: a node, a relabelled tensor, or a ModelError."""
        try:
            if operator.op.OutputsLength() != 1:
                raise operator.error(f"expected one output, got {operator.op.OutputsLength()}")
            if operator.name in EDGE_OPS:
                return self._edge(operator)
            if operator.name in LAYOUT_OPS:
                return self._reshape(operator)
            if operator.name not in _IMPORTERS:
                raise operator.error(f"unsupported operator (supported: "
                                     f"{', '.join([*_IMPORTERS, *LAYOUT_OPS, *EDGE_OPS])})")
            self._node(operator)
        except ModelError:
            raise
        except _FLATBUFFER_ERRORS as exc:
            raise operator.error(f"corrupt or inconsistent operator data "
                                 f"({type(exc).__name__}: {exc})") from exc

    def _activations(self, operator):
        function = _IMPORTERS[operator.name]
        count = operator.op.InputsLength() if function.streams is None else function.streams
        sources = [operator.tensor(k, "input") for k in range(count)]
        for k, tensor in enumerate(sources):
            if tensor is None:
                raise operator.error(f"activation input {k} is missing")
            if tensor.index not in self.source:
                what = "a constant" if tensor.data else "not produced by an imported operator"
                raise operator.error(f"input {k} (tensor {tensor.index} '{tensor.name}') is "
                                     f"{what}; only activations computed from the input "
                                     "are supported here")
        return sources

    def _check_streams(self, operator, sources):
        for k, tensor in enumerate(sources):
            carried = self._stream_of(self.source[tensor.index])
            if stream_shape(tensor.shape) != carried:
                raise operator.error(
                    f"input {k} (tensor {tensor.index} '{tensor.name}') has shape "
                    f"{list(tensor.shape)}, but its stream carries {carried[0]}x{carried[1]} "
                    f"pixels of {carried[2]} channels: a RESHAPE before it changes the pixel "
                    "layout (only layout-preserving reshapes are supported)")

    def _stream_of(self, name):
        """(height, width, channels) of the stream ``name`` (a node or the input)."""
        if name == INPUT:
            return stream_shape(self.model_input().nhwc_shape)
        return next(node.stream_shape for node in self.nodes if node.name == name)

    def _node(self, operator):
        sources = self._activations(operator)
        result = operator.tensor(0, "output")
        if result is None:
            raise operator.error("the output is missing")
        # The importer checks the tensors' types and quantization first: its errors are the
        # ones that say what is wrong with the operator itself.
        layer = _IMPORTERS[operator.name](operator)
        self._check_streams(operator, sources)
        if stream_shape(result.shape) is None:
            raise operator.error(f"the output has shape {list(result.shape)}, which no pixel "
                                 "stream carries")
        _checked_output_shape(operator, layer, sources, result)
        base = f"op{operator.index}_{operator.name.lower()}"
        inputs = [self.source[t.index] for t in sources]
        shapes = [t.shape for t in sources]
        if isinstance(layer, Concatenation) and len(sources) > 2:
            # A join has two inputs: a wider concatenation is a chain of them.
            for k in range(1, len(sources) - 1):
                shape = (*shapes[0][:-1], sum(s[-1] for s in shapes[:2]))
                part = Concatenation(-1, layer.in_params[:2], layer.out_scale, layer.out_zp)
                self._append(f"{base}_{k}", part, operator, inputs[:2], shapes[:2], shape)
                inputs, shapes = [f"{base}_{k}", *inputs[2:]], [shape, *shapes[2:]]
            layer = Concatenation(-1, layer.in_params[:2], layer.out_scale, layer.out_zp)
        self._append(base, layer, operator, inputs, shapes, result.shape)
        self.source[result.index] = base

    def _append(self, name, layer, operator, inputs, shapes, shape):
        self.input_consumed |= INPUT in inputs
        self.nodes.append(ImportedNode(name, layer, operator.name, operator.index, tuple(inputs),
                                       tuple(tuple(s) for s in shapes), tuple(shape)))

    def _reshape(self, operator):
        source, result = operator.tensor(0, "input"), operator.tensor(0, "output")
        if source is None or source.index not in self.source:
            raise operator.error("reshapes only a computed activation")
        if int(np.prod(source.shape)) != int(np.prod(result.shape)):
            raise operator.error(f"cannot reshape {list(source.shape)} to {list(result.shape)}")
        self.source[result.index] = self.source[source.index]
        self._inherit_dequantize(source, result)

    def _inherit_dequantize(self, source, result):
        if source.index in self.dequantized:
            self.dequantized[result.index] = self.dequantized[source.index]

    def _edge(self, operator):
        source, result = operator.tensor(0, "input"), operator.tensor(0, "output")
        if source is None or result is None:
            raise operator.error("the input or the output is missing")
        at_input = self.source.get(source.index) == INPUT and not self.input_consumed
        if operator.name == "QUANTIZE" and at_input and source.type_name == "FLOAT32" \
                and self.dtype == "int8":
            self.dtype = "float32"
            self.qparams = result.activation_qparams(operator, "output")
        elif operator.name == "TRANSPOSE" and at_input and self.layout == "nhwc":
            perm = operator.tensor(1, "input").constant(operator, "perm", "INT32", np.int32)
            if perm.tolist() != [0, 2, 3, 1]:
                raise operator.error(f"a TRANSPOSE with permutation {perm.tolist()} is not "
                                     "supported (only [0, 2, 3, 1] of the model's NCHW input)")
            self.layout = "nchw"
        elif operator.name == "DEQUANTIZE" and source.index in self.source and \
                source.type_name == "INT8" and source.index not in self.dequantized:
            self.dequantized[result.index] = source.activation_qparams(operator, "input")
        else:
            raise operator.error(f"{operator.name} is supported only at the model's edges: "
                                 "QUANTIZE of the float input, TRANSPOSE [0, 2, 3, 1] of the "
                                 "(NCHW) input, DEQUANTIZE of an output")
        self.source[result.index] = self.source[source.index]

    def model_outputs(self, indices):
        outputs = []
        for index in indices:
            tensor = self.tensors[index]
            node = self.source.get(index)
            if node is None or node == INPUT:
                raise ModelError(f"{self.path}: output tensor {index} '{tensor.name}' is not "
                                 "computed by an imported operator")
            if index in self.dequantized:
                scale, zp = self.dequantized[index]
                outputs.append(ModelOutput(node=node, shape=tensor.shape, scale=scale,
                                           zero_point=zp, dtype="float32"))
            else:
                scale, zp = tensor.activation_qparams(_FileContext(self.path), "output")
                outputs.append(ModelOutput(node=node, shape=tensor.shape, scale=scale,
                                           zero_point=zp))
        return tuple(outputs)

    def model_input(self):
        if self.dtype == "float32":
            scale, zp = self.qparams
        else:
            scale, zp = self.start_tensor.activation_qparams(_FileContext(self.path), "input")
        return ModelInput(shape=self.start_tensor.shape, scale=scale, zero_point=zp, dtype=self.dtype,
                          layout=self.layout)


class _FileContext:
    """Error context for tensors checked outside an operator."""

    def __init__(self, path):
        self.path = path

    def error(self, reason):
        return ModelError(f"{self.path}: {reason}")


def _select(count, layers, path):
    """The operator range ``[start, stop)`` to import; all operators when ``layers`` is None."""
    if count == 0:
        raise ModelError(f"{path}: subgraph 0 has no operators")
    start, stop = (0, count) if layers is None else layers
    stop = count if stop is None else stop
    if not 0 <= start < stop <= count:
        raise ModelError(f"{path}: layers {start}:{stop} is not a non-empty range of the "
                         f"operators 0..{count - 1}")
    return start, stop


def _read_model(path):
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
        operators = [_Operator(path, index, _op_name(model, op), op, tensors)
                     for index, op in enumerate(subgraph.Operators(i)
                                                for i in range(subgraph.OperatorsLength()))]
        inputs = [subgraph.Inputs(i) for i in range(subgraph.InputsLength())]
        outputs = [subgraph.Outputs(i) for i in range(subgraph.OutputsLength())]
    except ModelError:
        raise
    except _FLATBUFFER_ERRORS as exc:
        raise ModelError(f"{path}: corrupt or truncated TFLite flatbuffer "
                         f"({type(exc).__name__}: {exc})") from exc
    return operators, tensors, inputs, outputs


def _range_outputs(operators, produced_range, model_outputs):
    """Tensors produced in the range that a later operator reads, that are model outputs,
    or that no operator of the range reads, in order."""
    stop = produced_range[-1].index + 1
    read_inside = {op.op.Inputs(k) for op in produced_range for k in range(op.op.InputsLength())}
    read_after = {op.op.Inputs(k) for op in operators[stop:] for k in range(op.op.InputsLength())}
    produced = [op.op.Outputs(0) for op in produced_range]
    return [t for t in produced if t in model_outputs or t in read_after or t not in read_inside]


def load_tflite(path, layers=None):
    """Import subgraph 0 of the ``.tflite`` file at ``path`` as an :class:`ImportedModel`.

    ``layers=(a, b)`` imports only operators ``a .. b-1`` (the CLI's ``--layers A:B``):
    their input is operator ``a``'s first input, their outputs every tensor they produce
    that a later operator reads, that is a model output, or that no operator of the range
    reads; ``b`` may be None (to the last operator). Raises
    :class:`ModelError` for a missing, unreadable, corrupt or truncated file and for any
    operator it cannot map exactly.
    """
    path = Path(path)
    operators, tensors, inputs, outputs = _read_model(path)
    start, stop = _select(len(operators), layers, path)
    chosen = operators[start:stop]
    if layers is None:
        if len(inputs) != 1:
            raise ModelError(f"{path}: the model has {len(inputs)} inputs; only one is supported")
        start_tensor = tensors[inputs[0]]
        output_indices = outputs
    else:
        first = chosen[0].tensor(0, "input")
        if first is None:
            raise chosen[0].error("has no input")
        start_tensor = first
        output_indices = _range_outputs(operators, chosen, set(outputs))
    for role, tensor in (("input", start_tensor),):
        if len(tensor.shape) != 4 or min(tensor.shape) < 1 or tensor.shape[0] != 1:
            raise ModelError(f"{path}: {role} tensor {tensor.index} '{tensor.name}' has shape "
                             f"{list(tensor.shape)}; expected NHWC (or NCHW) with batch 1")
    builder = _GraphBuilder(path, tensors, start_tensor)
    for operator in chosen:
        builder.add(operator)
    if not builder.nodes:
        raise ModelError(f"{path}: operators {start}..{stop - 1} compute nothing")
    return ImportedModel(tuple(builder.nodes), builder.model_input(),
                         builder.model_outputs(output_indices))


def _constructor_fields(cls):
    """The names a golden layer class is constructed from (a dataclass's init fields, else
    its ``__init__`` parameters)."""
    if is_dataclass(cls):
        return [f.name for f in fields(cls) if f.init]
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


def _is_array_field(cls, name):
    return is_dataclass(cls) and any(f.name == name and f.type is np.ndarray for f in fields(cls))


def _plain(value):
    """``value`` as TOML/JSON-able Python (nested tuples become lists)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} layer parameter")


def layer_to_dict(layer, prefix):
    """``(params, arrays)`` for a golden layer.

    ``params`` maps ``"type"`` to the class name and every constructor argument to plain
    Python values; an ndarray argument is replaced by the key ``f"{prefix}.{field}"`` under
    which ``arrays`` holds it. TOML can hold ``params`` as-is.
    """
    params = {"type": type(layer).__name__}
    arrays = {}
    for name in _constructor_fields(type(layer)):
        value = getattr(layer, name)
        if isinstance(value, np.ndarray):
            key = f"{prefix}.{name}"
            arrays[key] = value
            params[name] = key
        else:
            params[name] = _plain(value)
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
    for name in _constructor_fields(cls):
        if name not in params:
            raise ValueError(f"{layer_type} parameters lack {name!r}")
        value = params.pop(name)
        if _is_array_field(cls, name):
            if value not in arrays:
                raise ValueError(f"{layer_type}.{name}: no array named {value!r}")
            value = np.asarray(arrays[value])
        values[name] = value
    if params:
        raise ValueError(f"{layer_type} parameters have unknown keys {sorted(params)}")
    return cls(**values)


def layer_dicts(model):
    """:func:`layer_to_dict` of each of ``model``'s nodes, under the array keys
    ``layer<i>.<field>`` that :func:`save_sidecar` writes."""
    return [layer_to_dict(node.layer, f"layer{position}")
            for position, node in enumerate(model.nodes)]


_MODEL_KEY = "model_json"


def _description(model, layer_params):
    nodes = [{"name": node.name, "layer": params, "op_name": node.op_name,
              "op_index": node.op_index, "inputs": list(node.inputs),
              "input_shapes": _plain(node.input_shapes), "shape": list(node.shape)}
             for node, params in zip(model.nodes, layer_params)]
    return {"nodes": nodes, "input": {key: _plain(value) for key, value in vars(model.input).items()},
            "outputs": [{key: _plain(value) for key, value in vars(output).items()}
                        for output in model.outputs]}


def save_sidecar(model, npz_path):
    """Write ``model``'s layer arrays and its graph to ``npz_path`` atomically.

    Written with :func:`~rasterflow.files.atomic_write_bytes` — readers see the old file or
    the new one, never a partial write. Keys: ``layer<i>.<field>`` for arrays, and
    ``model_json`` (a string array) with the nodes, their layers' ``params``, the input and
    the outputs.
    """
    arrays = {}
    layer_params = []
    for params, layer_arrays in layer_dicts(model):
        layer_params.append(params)
        arrays.update(layer_arrays)
    arrays[_MODEL_KEY] = np.array(json.dumps(_description(model, layer_params)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(Path(npz_path), buffer.getvalue())


def load_sidecar(npz_path):
    """Read a file written by :func:`save_sidecar` back into an :class:`ImportedModel`."""
    with np.load(npz_path, allow_pickle=False) as archive:
        description = json.loads(str(archive[_MODEL_KEY]))
        arrays = {key: archive[key] for key in archive.files if key != _MODEL_KEY}
    nodes = tuple(ImportedNode(d["name"], layer_from_dict(d["layer"], arrays), d["op_name"],
                               d["op_index"], tuple(d["inputs"]),
                               tuple(tuple(s) for s in d["input_shapes"]), tuple(d["shape"]))
                  for d in description["nodes"])
    model_input = description["input"]
    return ImportedModel(nodes, ModelInput(**{**model_input, "shape": tuple(model_input["shape"])}),
                         tuple(ModelOutput(**{**o, "shape": tuple(o["shape"])})
                               for o in description["outputs"]))
