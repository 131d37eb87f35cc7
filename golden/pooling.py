"""Int8 ``AVERAGE_POOL_2D`` and ``MEAN`` golden models, bit-exact with LiteRT's reference
kernels (``BUILTIN_REF``).

Pure numpy, exact integer arithmetic in int64 (every sum here fits int32, as in TFLite).
Layers are frozen dataclasses callable on NHWC int8 arrays (or HWC, without the batch
axis), like those of :mod:`rasterflow.golden.cnn`; they are not registered layer types.
"""
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .cnn import (INT8_MAX, INT8_MIN, PADDINGS, _batched, _check_activation_limits, _check_int,
                  _set, _unbatched, register_layer, window_geometry)
from .quant import activation_range, multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32

__all__ = ["AveragePool2D", "Mean", "divide_round_half_away"]


def divide_round_half_away(acc, count):
    """TFLite's ``acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count`` with C++
    integer division (truncating toward zero): ``acc / count`` rounded to the nearest
    integer, ties away from zero. ``count > 0``; ``acc`` and ``count`` broadcast."""
    acc = np.asarray(acc, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    half = count // 2
    positive = (acc + half) // count  # both operands >= 0 where used: floor == trunc
    negative = -((half - acc) // count)  # acc <= 0: -(|acc| + half) / count truncated
    return np.where(acc > 0, positive, negative)


@register_layer
@dataclass(frozen=True, eq=False)
class AveragePool2D:
    """TFLite ``AVERAGE_POOL_2D`` int8 (reference_integer_ops::AveragePool).

    Per output pixel and channel, over the window clipped to the image (padding taps are
    skipped, not counted): ``acc = sum(x)`` of the raw int8 values (no zero point: input
    and output share scale and zero point, which TFLite's Prepare enforces),
    ``n = number of in-image taps``, ``y = clamp(round(acc / n), act_min, act_max)`` with
    the rounding of :func:`divide_round_half_away` (half away from zero).

    Geometry per axis as :func:`~rasterflow.golden.cnn.window_geometry` (TFLite's
    padding.h); the window (``size_h x size_w``) and strides may differ between axes.
    """
    size_h: int
    size_w: int
    stride_h: int
    stride_w: int
    padding: str
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self):
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {self.padding!r}")
        _set(self, size_h=_check_int(self.size_h, "size_h", 1),
             size_w=_check_int(self.size_w, "size_w", 1),
             stride_h=_check_int(self.stride_h, "stride_h", 1),
             stride_w=_check_int(self.stride_w, "stride_w", 1))
        _check_activation_limits(self)

    @classmethod
    def from_scales(cls, size_h, size_w, stride_h, stride_w, padding, out_scale, out_zp,
                    activation="NONE"):
        """The fused activation's clamp from the (shared) output quantization."""
        act_min, act_max = activation_range(activation, out_scale, out_zp)
        return cls(size_h, size_w, stride_h, stride_w, padding, act_min, act_max)

    def _geometry(self, height, width):
        return (window_geometry(height, self.size_h, self.stride_h, self.padding),
                window_geometry(width, self.size_w, self.stride_w, self.padding))

    def output_shape(self, input_shape):
        *batch, height, width, channels = input_shape
        (out_h, _, _), (out_w, _, _) = self._geometry(height, width)
        return (*batch, out_h, out_w, channels)

    def _windows(self, x, top, bottom, left, right, out_h, out_w):
        padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        windows = sliding_window_view(padded, (self.size_h, self.size_w), axis=(1, 2))
        return windows[:, ::self.stride_h, ::self.stride_w][:, :out_h, :out_w]

    def __call__(self, x):
        inputs, added = _batched(x, None)
        (out_h, top, bottom), (out_w, left, right) = self._geometry(*inputs.shape[1:3])
        sums = self._windows(inputs, top, bottom, left, right, out_h, out_w).sum(axis=(4, 5))
        inside = np.ones((1, *inputs.shape[1:3], 1), dtype=np.int64)
        counts = self._windows(inside, top, bottom, left, right, out_h, out_w).sum(axis=(4, 5))
        y = np.clip(divide_round_half_away(sums, counts), self.act_min, self.act_max)
        return _unbatched(y.astype(np.int8), added)


@register_layer
@dataclass(frozen=True, eq=False)
class Mean:
    """TFLite ``MEAN`` int8 over the spatial axes H and W of NHWC, as LiteRT's
    ``BUILTIN_REF`` computes it (kernels/reduce.cc ``EvalMean`` ->
    reference_ops::QuantizedMeanOrSum with ``compute_sum = false``).

    In the LiteRT build here every int8 case takes that one integer path: with and
    without ``keep_dims``, equal or different input/output quantization (checked against
    the interpreter; the older reference_integer_ops::Mean, the raw-code division and the
    float32 QuantizedMeanOrSum of earlier TensorFlow releases all differ from it):

    * ``(m0, shift) = QuantizeMultiplier(double(in_scale) / double(out_scale))`` (Prepare;
      the scales are float32 tensor parameters);
    * ``n = H * W``; ``s = min(floor(log2 n), 32, 31 + shift)``;
      ``m0' = (m0 * 2**s) // n`` (int64, truncating; all operands positive),
      ``shift' = shift - s`` -- the ``1 / n`` folded into the multiplier;
    * ``acc = sum(x) - in_zp * n`` (int32);
      ``y = clamp(MultiplyByQuantizedMultiplier(acc, m0', shift') + out_zp, -128, 127)``.

    ``keep_dims`` gives ``(N, 1, 1, C)``, otherwise ``(N, C)``; the arithmetic is the same.
    ``axes`` must be ``(1, 2)`` or ``(2, 1)``.
    """
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    axes: tuple = (1, 2)
    keep_dims: bool = True

    def __post_init__(self):
        axes = tuple(int(a) for a in self.axes)
        if sorted(axes) != [1, 2]:
            raise ValueError(f"Mean supports axes (1, 2) of NHWC only, not {self.axes!r}")
        in_scale, out_scale = np.float32(self.in_scale), np.float32(self.out_scale)
        for name, scale in (("in_scale", in_scale), ("out_scale", out_scale)):
            if not (np.isfinite(scale) and scale > 0):
                raise ValueError(f"{name} must be a positive float32, not {scale!r}")
        m0, shift = quantize_multiplier(float(in_scale) / float(out_scale))
        _set(self, axes=axes, keep_dims=bool(self.keep_dims),
             in_scale=float(in_scale), out_scale=float(out_scale),
             in_zp=_check_int(self.in_zp, "in_zp", INT8_MIN, INT8_MAX),
             out_zp=_check_int(self.out_zp, "out_zp", INT8_MIN, INT8_MAX))
        object.__setattr__(self, "m0", m0)
        object.__setattr__(self, "shift", shift)

    def folded_multiplier(self, count):
        """``(m0', shift')``: the multiplier with ``1 / count`` folded in, as the kernel
        readapts it."""
        bits = min(int(count).bit_length() - 1, 32, 31 + self.shift)
        return (self.m0 << bits) // int(count), self.shift - bits

    def output_shape(self, input_shape):
        *batch, _, _, channels = input_shape
        return (*batch, 1, 1, channels) if self.keep_dims else (*batch, channels)

    def __call__(self, x):
        inputs, added = _batched(x, None)
        count = inputs.shape[1] * inputs.shape[2]
        if count == 0:
            raise ValueError("Mean of an empty image")
        m0, shift = self.folded_multiplier(count)
        acc = inputs.sum(axis=(1, 2), keepdims=self.keep_dims) - self.in_zp * count
        scaled = multiply_by_quantized_multiplier(wrap_int32(acc), m0, shift)
        y = np.clip(scaled + self.out_zp, INT8_MIN, INT8_MAX)
        return _unbatched(np.asarray(y).astype(np.int8), added)
