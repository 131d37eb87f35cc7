"""Int8 ``FULLY_CONNECTED`` golden model, bit-exact with LiteRT's reference kernels
(``BUILTIN_REF``: the ``float input_scale, output_scale, filter_scale(s)`` overloads of
reference_integer_ops::FullyConnected / FullyConnectedPerChannel).

Unlike CONV_2D, the LiteRT reference FC does *not* requantize with
MultiplyByQuantizedMultiplier: it computes ``round(double(acc) * effective_scale)`` in
double precision (checked against the interpreter: the (m0, shift) requantization
differs from it by 1 on a few outputs in ~1,000). Integer accumulation is exact int64
with the int32 wrap-around reproduced; the scaling is one IEEE double multiply, as in C++.
Not a registered layer type.
"""
from dataclasses import dataclass

import numpy as np

from .cnn import (INT8_MAX, INT8_MIN, _check_activation_limits, _check_int, _frozen_array, _set,
                  register_layer)
from .quant import activation_range, wrap_int32

__all__ = ["FullyConnected"]


@register_layer
@dataclass(frozen=True, eq=False)
class FullyConnected:
    """TFLite ``FULLY_CONNECTED`` int8 with int8 weights (zero point 0) and int32 bias.

    The input's last axis holds ``Cin`` values; every other axis is a batch:
    ``acc[b, o] = bias[o] + sum_i w[o, i] * (x[b, i] - in_zp)`` (int32), ``y[b, o] =
    clamp(out_zp + round(double(acc) * scale[o]), act_min, act_max)`` with ``round`` half
    away from zero (C ``round``) and ``scale[o] = double(in_scale) * double(w_scale[o]) /
    double(out_scale)`` (left to right, float32 scales widened to double). Per-tensor
    quantization is ``scale`` with one entry (broadcast).

    Output shape: ``(..., Cout)`` (the input's leading axes) with ``keep_num_dims``, else
    TFLite's ``(size / Cin, Cout)``; a 1-D input ``(Cin,)`` gives ``(1, Cout)`` or, with
    ``keep_num_dims``, ``(Cout,)``.

    Fields: ``weights`` int8 ``[Cout, Cin]``, ``bias`` int32 ``[Cout]`` (``None`` is stored
    as zeros, which is the same arithmetic), ``scale`` float64 ``[Cout]`` or ``[1]``,
    ``in_zp``, ``out_zp``, ``act_min``, ``act_max``, ``keep_num_dims``.
    """
    weights: np.ndarray
    bias: np.ndarray
    scale: np.ndarray
    in_zp: int
    out_zp: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    keep_num_dims: bool = False

    def __post_init__(self):
        weights = _frozen_array(self.weights, np.int8, "weights", 2)
        out_channels = weights.shape[0]
        bias = np.zeros(out_channels, np.int32) if self.bias is None else self.bias
        bias = _frozen_array(bias, np.int32, "bias", 1)
        if bias.shape != (out_channels,):
            raise ValueError(f"bias needs {out_channels} entries, got {bias.shape[0]}")
        scale = np.array(np.reshape(self.scale, -1), dtype=np.float64)
        if scale.shape[0] not in (1, out_channels):
            raise ValueError(f"FullyConnected: scale needs 1 or {out_channels} entries, "
                             f"got {scale.shape[0]}")
        if not (np.all(np.isfinite(scale)) and np.all(scale >= 0)):
            raise ValueError("FullyConnected: scale must be finite and >= 0")
        scale.setflags(write=False)
        _set(self, weights=weights, bias=bias, scale=scale,
             keep_num_dims=bool(self.keep_num_dims),
             in_zp=_check_int(self.in_zp, "in_zp", INT8_MIN, INT8_MAX),
             out_zp=_check_int(self.out_zp, "out_zp", INT8_MIN, INT8_MAX))
        _check_activation_limits(self)

    @classmethod
    def from_scales(cls, weights, bias, in_scale, in_zp, w_scales, out_scale, out_zp,
                    activation="NONE", keep_num_dims=False):
        """``scale = double(in_scale) * double(w_scales) / double(out_scale)`` per tensor
        (one ``w_scales`` value) or per output channel, the scales rounded to float32 first
        as tensor parameters are; the clamp is ``activation_range(activation, out_scale,
        out_zp)``."""
        w_scales = np.asarray(w_scales, dtype=np.float32).reshape(-1).astype(np.float64)
        scale = float(np.float32(in_scale)) * w_scales / float(np.float32(out_scale))
        act_min, act_max = activation_range(activation, out_scale, out_zp)
        return cls(weights, bias, scale, in_zp, out_zp, act_min, act_max, keep_num_dims)

    @property
    def in_channels(self):
        return self.weights.shape[1]

    @property
    def out_channels(self):
        return self.weights.shape[0]

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        size = int(np.prod(input_shape, dtype=np.int64))
        if not input_shape or size % self.in_channels:
            raise ValueError(f"input shape {input_shape} does not hold rows of "
                             f"{self.in_channels} values")
        if self.keep_num_dims:
            if input_shape[-1] != self.in_channels:
                raise ValueError(f"input has {input_shape[-1]} values per row, layer expects "
                                 f"{self.in_channels}")
            return (*input_shape[:-1], self.out_channels)
        return (size // self.in_channels, self.out_channels)

    def __call__(self, x):
        array = np.asarray(x)
        if array.dtype != np.int8:
            raise ValueError(f"input must be int8, not {array.dtype}")
        shape = self.output_shape(array.shape)
        rows = array.reshape(-1, self.in_channels).astype(np.int64) - self.in_zp
        acc = rows @ self.weights.astype(np.int64).T + self.bias
        scaled = wrap_int32(acc).astype(np.float64) * self.scale  # exact int -> double
        magnitude = np.abs(scaled)
        whole = np.floor(magnitude)
        rounded = np.copysign(whole + (magnitude - whole >= 0.5), scaled)  # C round()
        y = np.clip(rounded + self.out_zp, self.act_min, self.act_max).astype(np.int8)
        return y.reshape(shape)
