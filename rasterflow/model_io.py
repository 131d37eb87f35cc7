"""The edges of an imported model: what the host does before and after the pipeline.

A spec made by ``rasterflow import`` has a ``[model]`` table saying how the model's input
tensor (as LiteRT takes it) becomes the int8 NHWC pixel stream and how each output stream
becomes the tensor LiteRT returns::

    [model.input]
    shape = [1, 64, 64, 3]      # batch first; NCHW when layout = "nchw"
    dtype = "float32"           # "int8", or "float32": QUANTIZE on the host
    scale = 0.0078
    zero_point = 0
    layout = "nhwc"             # "nchw": TRANSPOSE [0, 2, 3, 1] on the host

    [[model.output]]
    node = "op31_softmax"       # the stage whose stream carries it
    shape = [1, 5]              # batch first: RESHAPE / SQUEEZE on the host
    dtype = "float32"           # "int8", or "float32": DEQUANTIZE on the host
    scale = 0.00390625
    zero_point = -128

The host's QUANTIZE and DEQUANTIZE are :func:`rasterflow.golden.elementwise.quantize` /
``dequantize``, bit-exact with LiteRT's.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, SpecError
from .golden.elementwise import dequantize, quantize
from .params import check_name, check_params, from_table, param

__all__ = ["ModelInput", "ModelOutput", "ModelIO", "parse_model", "read_model_input",
           "model_outputs"]

DTYPES = ("int8", "float32")
LAYOUTS = ("nhwc", "nchw")
MAX_RANK = 6


def _check_shape(shape):
    if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= MAX_RANK or \
            any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape):
        raise ValueError(f"must be a list of 1..{MAX_RANK} positive integers, batch first, "
                         f"not {shape!r}")
    if shape[0] != 1:
        raise ValueError(f"the batch (first) dimension must be 1, not {shape[0]}")


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(f"must be a positive number, not {scale!r}")


@dataclass(frozen=True)
class ModelInput:
    """The model input as LiteRT takes it, and how it becomes the int8 NHWC stream."""
    shape: list = param(check=_check_shape, doc="the input tensor's shape, batch (1) first")
    scale: float = param(check=_check_scale, doc="quantization scale of the int8 stream")
    zero_point: int = param(lo=-128, hi=127, doc="quantization zero point of the int8 stream")
    dtype: str = param("int8", choices=DTYPES, doc='"float32": the host quantizes it')
    layout: str = param("nhwc", choices=LAYOUTS, doc='"nchw": the host transposes it to NHWC')

    def __post_init__(self):
        check_params(self)
        object.__setattr__(self, "shape", tuple(self.shape))
        if len(self.shape) != 4:
            raise SpecError("shape", f"the input must be a rank-4 NHWC (or NCHW) tensor, not "
                                     f"{list(self.shape)}")

    @property
    def nhwc_shape(self):
        n, *rest = self.shape
        return (n, *rest[1:], rest[0]) if self.layout == "nchw" else self.shape

    def to_stream(self, x):
        """LiteRT-form input ``x`` (batch first) -> int8 NHWC."""
        x = np.asarray(x)
        if self.layout == "nchw":
            x = np.moveaxis(x, 1, -1)
        return quantize(x, self.scale, self.zero_point) if self.dtype == "float32" else x


@dataclass(frozen=True)
class ModelOutput:
    """One model output: the stage whose stream carries it and the tensor LiteRT returns."""
    node: str = param(check=lambda value: check_name("node", value),
                      doc="the stage whose stream carries the output")
    shape: list = param(check=_check_shape, doc="the output tensor's shape, batch (1) first")
    scale: float = param(check=_check_scale, doc="quantization scale of the int8 stream")
    zero_point: int = param(lo=-128, hi=127, doc="quantization zero point of the int8 stream")
    dtype: str = param("int8", choices=DTYPES, doc='"float32": the host dequantizes it')

    def __post_init__(self):
        check_params(self)
        object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def size(self):
        return int(np.prod(self.shape[1:]))

    def from_stream(self, y):
        """int8 output ``y`` (batch first) -> the tensor LiteRT returns."""
        y = np.asarray(y).reshape(len(y), *self.shape[1:])
        return dequantize(y, self.scale, self.zero_point) if self.dtype == "float32" else y


@dataclass(frozen=True)
class ModelIO:
    """A spec's ``[model]`` table: ``input`` and ``outputs`` (model order)."""
    input: ModelInput
    outputs: tuple

    def to_table(self):
        def table(obj):
            return {name: list(v) if isinstance(v, tuple) else v for name, v in vars(obj).items()}
        return {"input": table(self.input), "output": [table(o) for o in self.outputs]}


def parse_model(table):
    """The :class:`ModelIO` of a spec's ``[model]`` table."""
    if not isinstance(table, dict):
        raise SpecError("model", "must be a table")
    for key in table:
        if key not in ("input", "output"):
            raise SpecError(f"model.{key}", "unknown key; allowed keys: input, output")
    if "input" not in table:
        raise SpecError("model.input", "is required")
    outputs = table.get("output")
    if not isinstance(outputs, list) or not outputs:
        raise SpecError("model.output", "must be a non-empty array of tables ([[model.output]])")
    return ModelIO(from_table(ModelInput, table["input"], "model.input"),
                   tuple(from_table(ModelOutput, o, f"model.output[{k}]")
                         for k, o in enumerate(outputs)))


def read_model_input(model_input, path):
    """``(frames, batched)``: the int8 NHWC frames of the ``.npy`` tensor at ``path``, which
    holds the model input as LiteRT takes it without the batch axis (one sample), or with
    a leading batch axis (several)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise InputError(f"input {path}: a model spec takes its input tensor as a .npy array")
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"input {path}: no such file") from None
    except (ValueError, OSError) as error:
        raise InputError(f"input {path}: not a readable .npy array ({error})") from None
    sample = tuple(model_input.shape[1:])
    if x.shape != sample and (x.ndim != len(sample) + 1 or x.shape[1:] != sample or not len(x)):
        raise InputError(f"input {path}: shape {list(x.shape)} is neither the model input "
                         f"{list(sample)} nor a batch of them [N, {', '.join(map(str, sample))}]")
    if x.dtype != np.dtype(model_input.dtype):
        raise InputError(f"input {path}: dtype {x.dtype}; the model takes {model_input.dtype}")
    batched = x.shape != sample
    return model_input.to_stream(x if batched else x[None]), batched


def model_outputs(model_io, by_node, batched):
    """``{"output0": tensor, ...}`` in the model's output order, each as LiteRT returns it,
    from ``by_node`` (stream name -> ``N x H x W x C`` int8 frames)."""
    tensors = {}
    for k, output in enumerate(model_io.outputs):
        y = output.from_stream(np.asarray(by_node[output.node]))
        tensors[f"output{k}"] = y if batched else y[0]
    return tensors
