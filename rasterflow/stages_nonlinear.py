"""Int8 nonlinear stages: ``logistic`` and ``softmax``.

Each is one TFLite int8 operator (what :mod:`rasterflow.tflite_import` resolves), so its
golden model is the matching layer of :mod:`rasterflow.golden.nonlinear`, built from the
stage's parameters, and its hardware is in ``hdl/nonlinear.py``. Pixels are ``C x int8``
(``[input] dtype = "int8"``); softmax normalizes over each pixel's channels (after a global
pool, the frame's one pixel). The parameters are the model's quantization, as floats::

    [[stage]]
    op = "logistic"
    in_scale = 0.0235
    in_zp = 3
    out_scale = 0.00390625              # 1/256 and -128: TFLite's fixed int8 output
    out_zp = -128

    [[stage]]
    op = "softmax"
    in_scale = 0.1171875
    in_zp = -20
    beta = 1.0
"""
from dataclasses import MISSING, dataclass
from typing import ClassVar

import numpy as np

from .errors import SpecError
from .golden import nonlinear as golden_nonlinear
from .golden.nonlinear import OUTPUT_SCALE, OUTPUT_ZERO_POINT
from .hdl.nonlinear import Logistic, Softmax
from .params import param, params_of
from .stages import Bound, fixed_timing, register_stage
from .stages_cnn import _check_input, _LayerStage, _zero_point_param

__all__ = ["LogisticStage", "SoftmaxStage"]


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_positive_float32(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 < value <= FLOAT32_MAX:
        raise ValueError(f"must be a positive number within the float32 range, not {value!r}")


def _positive_param(default=MISSING, *, doc):
    return param(default, check=_check_positive_float32, doc=doc)


def _scale_param(which):
    return _positive_param(doc=f"scale of the {which} (positive; the model's float32 value)")


def _output_scale_param(rule):
    return _positive_param(OUTPUT_SCALE, doc=f"scale of the output: {rule} for int8 "
                                             "(TFLite's rule)")


def _output_zero_point_param():
    return param(OUTPUT_ZERO_POINT, choices=(OUTPUT_ZERO_POINT,),
                 doc="zero point of the output (TFLite's fixed int8 value)")


@dataclass(frozen=True)
class _QuantizedStage(_LayerStage):
    """A stage whose parameters are its golden layer's constructor arguments, in order."""

    def __post_init__(self):
        super().__post_init__()
        names = list(params_of(type(self)))
        try:
            layer = self.layer_type(*(getattr(self, name) for name in names))
        except ValueError as error:
            raise _spec_error(str(error), names) from None
        object.__setattr__(self, "layer", layer)

    @classmethod
    def from_layer(cls, layer, **_):
        return cls(**{name: _plain(getattr(layer, name)) for name in params_of(cls)})

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        return Bound(self, in_format, width, height, in_format, width, height)


def _spec_error(message, names):
    """The golden layer's error as a SpecError: its messages start with the parameter they
    reject (``out_zp must be -128 ...``, ``beta * in_scale = ... is too small``)."""
    field = next((name for name in names if message.startswith(name)), names[0])
    if message.startswith(f"{field} must"):
        message = message.removeprefix(f"{field} ")
    return SpecError(field, message)


def _plain(value):
    """A layer attribute as a spec value (its numpy float32 scales as Python floats, exact)."""
    return int(value) if isinstance(value, int) else float(value)


@register_stage
@dataclass(frozen=True)
class LogisticStage(_QuantizedStage):
    """``logistic``: TFLite LOGISTIC int8, a 256-entry table per channel (one pixel per
    cycle)."""
    op: ClassVar[str] = "logistic"
    layer_type: ClassVar[type] = golden_nonlinear.Logistic
    in_scale: float = _scale_param("input")
    in_zp: int = _zero_point_param("input")
    out_scale: float = _output_scale_param("exactly 1/256")
    out_zp: int = _output_zero_point_param()

    def hardware(self, bound):
        return Logistic(bound.in_format, self.layer.table)

    def timing(self, bound):
        return fixed_timing(Logistic)


@register_stage
@dataclass(frozen=True)
class SoftmaxStage(_QuantizedStage):
    """``softmax``: TFLite SOFTMAX int8 over each pixel's channels, a sequential unit taking
    ``2*C + 25`` cycles per pixel."""
    op: ClassVar[str] = "softmax"
    layer_type: ClassVar[type] = golden_nonlinear.Softmax
    in_scale: float = _scale_param("input")
    in_zp: int = _zero_point_param("input")
    out_scale: float = _output_scale_param("1/256 (within 0.1%)")
    out_zp: int = _output_zero_point_param()
    beta: float = _positive_param(1.0, doc="the softmax's beta (positive; "
                                           "beta * in_scale * 2**26 > 1)")

    def hardware(self, bound):
        layer = self.layer
        return Softmax(bound.in_format, input_multiplier=layer.input_multiplier,
                       input_left_shift=layer.input_left_shift, diff_min=layer.diff_min)

    def timing(self, bound):
        return Softmax.timing(bound.in_format.channels)
