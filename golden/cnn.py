"""Int8 CNN layers, bit-exact with the LiteRT/TFLite reference kernels.

Each layer is a frozen dataclass that holds every integer parameter the kernel needs
(so a spec stage can carry it, and ``hdl/`` can read its constants) and is callable on
NHWC ``int8`` arrays, with or without the leading batch axis. Arrays held by a layer are
read-only copies. ``output_shape(input_shape)`` maps an ``(N, H, W, C)`` or ``(H, W, C)``
shape the same way ``__call__`` does.

All arithmetic is exact int64 (products of int8/int32 values and their sums cannot overflow
it); the int32 wrap-around of TFLite's ``int32_t`` accumulator is reproduced explicitly
(:func:`~rasterflow.golden.quant.wrap_int32`), although it never triggers for realistic
layers.

Geometry follows TFLite (kernels/padding.h): for ``"same"`` the output size is
``ceil(in / stride)`` and the total padding ``max((out - 1) * stride + k - in, 0)`` is
split ``total // 2`` before and the rest after (more at the bottom/right); for
``"valid"`` the output size is ``(in - k) // stride + 1`` and there is no padding. Taps
falling in the padding are skipped by the kernels, which for a convolution equals padding
the input with its zero point.
"""
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .quant import activation_range, multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32

__all__ = [
    "Conv2D", "DepthwiseConv2D", "LeakyRelu", "MaxPool2D", "Relu", "Sequential",
    "window_geometry", "LAYER_TYPES", "register_layer",
]

PADDINGS = ("same", "valid")
INT8_MIN, INT8_MAX = -128, 127

_LAYER_TYPES = {}
#: The layer classes by name (serializers rebuild layers from it), in registration order;
#: read-only, filled by :func:`register_layer`.
LAYER_TYPES = MappingProxyType(_LAYER_TYPES)


def register_layer(cls):
    """Class decorator: enter a golden layer class in :data:`LAYER_TYPES` under its name.

    Serializers store layers by class name, so a name taken twice is refused rather than
    silently rebinding what saved files mean.
    """
    if cls.__name__ in _LAYER_TYPES:
        raise ValueError(f"golden layer type {cls.__name__} is already registered")
    _LAYER_TYPES[cls.__name__] = cls
    return cls


def window_geometry(in_size, kernel, stride, padding):
    """``(out_size, pad_before, pad_after)`` along one axis, as TFLite computes them."""
    if padding == "same":
        out_size = -(-in_size // stride)
    elif padding == "valid":
        out_size = (in_size - kernel) // stride + 1
    else:
        raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
    if out_size < 1:
        raise ValueError(f"a {kernel}-tap window with stride {stride} and {padding!r} padding "
                         f"does not fit an input of size {in_size}")
    needed = max((out_size - 1) * stride + kernel - in_size, 0)
    pad_before = needed // 2
    return out_size, pad_before, needed - pad_before


def _frozen_array(values, dtype, name, ndim):
    array = np.asarray(values)
    if array.dtype != np.dtype(dtype):
        if array.dtype.kind not in "iu" or not np.array_equal(array, array.astype(dtype)):
            raise ValueError(f"{name} must hold {dtype} values, got {array.dtype}")
    array = np.array(array, dtype=dtype)  # private copy
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    array.setflags(write=False)
    return array


def _check_int(value, name, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in {low}..{high}, not {value}")
    return int(value)


def _check_activation_limits(layer):
    _check_int(layer.act_min, "act_min", INT8_MIN, INT8_MAX)
    _check_int(layer.act_max, "act_max", INT8_MIN, INT8_MAX)
    if layer.act_min > layer.act_max:
        raise ValueError(f"act_min {layer.act_min} > act_max {layer.act_max}")


def _check_multipliers(m0, shift, count, what):
    if m0.shape != (count,) or shift.shape != (count,):
        raise ValueError(f"{what}: m0 and shift need {count} entries, got {m0.shape} and {shift.shape}")
    if m0.size and (m0.min() < 0 or shift.min() < -31 or shift.max() > 31):
        raise ValueError(f"{what}: m0 must be >= 0 and shift in -31..31")


def _set(layer, **values):
    for name, value in values.items():
        object.__setattr__(layer, name, value)


def _batched(x, channels):
    """Check an NHWC/HWC int8 input; return it as NHWC int64 plus whether a batch was added."""
    array = np.asarray(x)
    if array.dtype != np.int8:
        raise ValueError(f"input must be int8, not {array.dtype}")
    if array.ndim not in (3, 4):
        raise ValueError(f"input must be HWC or NHWC, got shape {array.shape}")
    if channels is not None and array.shape[-1] != channels:
        raise ValueError(f"input has {array.shape[-1]} channels, layer expects {channels}")
    added = array.ndim == 3
    return (array[None] if added else array).astype(np.int64), added


def _unbatched(y, added):
    return y[0] if added else y


def _spatial_windows(x, kernel, stride, padding, pad_value):
    """NHWC int64 -> (N, OH, OW, C, K, K) windows after padding with ``pad_value``."""
    out_h, top, bottom = window_geometry(x.shape[1], kernel, stride, padding)
    out_w, left, right = window_geometry(x.shape[2], kernel, stride, padding)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    windows = sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    return windows[:, ::stride, ::stride][:, :out_h, :out_w]


def _spatial_shape(input_shape, channels, kernel, stride, padding, out_channels):
    *batch, height, width, in_channels = input_shape
    if channels is not None and in_channels != channels:
        raise ValueError(f"input has {in_channels} channels, layer expects {channels}")
    out_h = window_geometry(height, kernel, stride, padding)[0]
    out_w = window_geometry(width, kernel, stride, padding)[0]
    return (*batch, out_h, out_w, out_channels if out_channels is not None else in_channels)


def _requantize(acc, m0, shift, out_zp, act_min, act_max):
    """int32 accumulator -> int8: ``clamp(out_zp + MBQM(acc, m0[c], shift[c]))``."""
    scaled = multiply_by_quantized_multiplier(wrap_int32(acc), m0, shift)
    return np.clip(scaled + out_zp, act_min, act_max).astype(np.int8)


def _conv_multipliers(in_scale, w_scales, out_scale, channels):
    """Per-channel ``QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out))``.

    Mirrors ``PopulateConvolutionQuantizationParams`` (kernel_util.cc): the scales are
    float32 tensor parameters, promoted to double before the product.
    """
    w_scales = np.broadcast_to(np.asarray(w_scales, dtype=np.float32).reshape(-1), (channels,))
    s_in = float(np.float32(in_scale))
    s_out = float(np.float32(out_scale))
    pairs = [quantize_multiplier(s_in * float(s_w) / s_out) for s_w in w_scales]
    return (np.array([m for m, _ in pairs], dtype=np.int64),
            np.array([s for _, s in pairs], dtype=np.int64))


@register_layer
@dataclass(frozen=True, eq=False)
class Conv2D:
    """TFLite ``CONV_2D`` int8, per-channel (reference_integer_ops::ConvPerChannel).

    ``acc[c] = bias[c] + sum_{taps inside the image} w[c, ky, kx, ci] * (x - in_zp)``
    (int32), ``y = clamp(out_zp + MultiplyByQuantizedMultiplier(acc, m0[c], shift[c]),
    act_min, act_max)``.

    Fields: ``weights`` int8 ``[Cout, K, K, Cin]`` (TFLite's OHWI layout), ``bias`` int32
    ``[Cout]``, ``stride`` (same in both axes), ``padding`` ``"same"``/``"valid"``,
    ``in_zp``, ``out_zp``, ``m0`` int64 ``[Cout]``, ``shift`` int64 ``[Cout]`` (TFLite's
    signed exponent), ``act_min``/``act_max`` (the fused activation's clamp).
    """
    weights: np.ndarray
    bias: np.ndarray
    stride: int
    padding: str
    in_zp: int
    out_zp: int
    m0: np.ndarray
    shift: np.ndarray
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self):
        weights = _frozen_array(self.weights, np.int8, "weights", 4)
        out_channels, kernel_h, kernel_w, _ = weights.shape
        if kernel_h != kernel_w:
            raise ValueError(f"kernel must be square, got {kernel_h}x{kernel_w}")
        bias = _frozen_array(self.bias, np.int32, "bias", 1)
        if bias.shape != (out_channels,):
            raise ValueError(f"bias needs {out_channels} entries, got {bias.shape[0]}")
        m0 = _frozen_array(self.m0, np.int64, "m0", 1)
        shift = _frozen_array(self.shift, np.int64, "shift", 1)
        _check_multipliers(m0, shift, out_channels, "Conv2D")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {self.padding!r}")
        _set(self, weights=weights, bias=bias, m0=m0, shift=shift,
             stride=_check_int(self.stride, "stride", 1),
             in_zp=_check_int(self.in_zp, "in_zp", INT8_MIN, INT8_MAX),
             out_zp=_check_int(self.out_zp, "out_zp", INT8_MIN, INT8_MAX))
        _check_activation_limits(self)

    @classmethod
    def from_scales(cls, weights, bias, in_scale, in_zp, w_scales, out_scale, out_zp,
                    activation="NONE", stride=1, padding="same"):
        """Build from real scales as TFLite's Prepare does.

        ``w_scales`` is per output channel, or one value (per-tensor, broadcast);
        ``m0[c], shift[c] = QuantizeMultiplier(double(in_scale) * double(w_scales[c]) /
        double(out_scale))``; ``act_min/act_max = activation_range(activation, out_scale,
        out_zp)``.
        """
        out_channels = np.shape(weights)[0]
        m0, shift = _conv_multipliers(in_scale, w_scales, out_scale, out_channels)
        act_min, act_max = activation_range(activation, out_scale, out_zp)
        return cls(weights, bias, stride, padding, in_zp, out_zp, m0, shift, act_min, act_max)

    @property
    def kernel(self):
        return self.weights.shape[1]

    @property
    def in_channels(self):
        return self.weights.shape[3]

    @property
    def out_channels(self):
        return self.weights.shape[0]

    def output_shape(self, input_shape):
        return _spatial_shape(input_shape, self.in_channels, self.kernel, self.stride,
                              self.padding, self.out_channels)

    def __call__(self, x):
        inputs, added = _batched(x, self.in_channels)
        # Padding (x - in_zp) with 0 is the same as skipping out-of-image taps.
        windows = _spatial_windows(inputs - self.in_zp, self.kernel, self.stride, self.padding, 0)
        acc = np.tensordot(windows, self.weights.astype(np.int64), axes=([3, 4, 5], [3, 1, 2]))
        acc += self.bias
        y = _requantize(acc, self.m0, self.shift, self.out_zp, self.act_min, self.act_max)
        return _unbatched(y, added)


@register_layer
@dataclass(frozen=True, eq=False)
class DepthwiseConv2D:
    """TFLite ``DEPTHWISE_CONV_2D`` int8, any depth multiplier
    (reference_integer_ops::DepthwiseConvPerChannel).

    With ``C`` input channels and depth multiplier ``M`` there are ``C * M`` output
    channels; output channel ``oc = ic * M + m`` reads input channel ``ic = oc // M``:
    ``acc[oc] = bias[oc] + sum_{taps inside the image} w[ky, kx, oc] * (x[.., oc // M] -
    in_zp)``, then requantized per output channel like :class:`Conv2D`. For ``M = 1`` this
    is the plain per-channel depthwise convolution.

    Fields: ``weights`` int8 ``[K, K, C * M]`` (TFLite's ``[1, K, K, C * M]`` without the
    leading axis), ``bias`` int32 ``[C * M]``, ``stride``, ``padding``, ``in_zp``,
    ``out_zp``, ``m0``, ``shift`` (``[C * M]``), ``act_min``, ``act_max``,
    ``depth_multiplier`` (``M``, default 1).
    """
    weights: np.ndarray
    bias: np.ndarray
    stride: int
    padding: str
    in_zp: int
    out_zp: int
    m0: np.ndarray
    shift: np.ndarray
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    depth_multiplier: int = 1

    def __post_init__(self):
        weights = _frozen_array(self.weights, np.int8, "weights", 3)
        kernel_h, kernel_w, out_channels = weights.shape
        if kernel_h != kernel_w:
            raise ValueError(f"kernel must be square, got {kernel_h}x{kernel_w}")
        multiplier = _check_int(self.depth_multiplier, "depth_multiplier", 1)
        if out_channels % multiplier:
            raise ValueError(f"{out_channels} weight channels are not a multiple of the depth "
                             f"multiplier {multiplier}")
        bias = _frozen_array(self.bias, np.int32, "bias", 1)
        if bias.shape != (out_channels,):
            raise ValueError(f"bias needs {out_channels} entries, got {bias.shape[0]}")
        m0 = _frozen_array(self.m0, np.int64, "m0", 1)
        shift = _frozen_array(self.shift, np.int64, "shift", 1)
        _check_multipliers(m0, shift, out_channels, "DepthwiseConv2D")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {self.padding!r}")
        _set(self, weights=weights, bias=bias, m0=m0, shift=shift, depth_multiplier=multiplier,
             stride=_check_int(self.stride, "stride", 1),
             in_zp=_check_int(self.in_zp, "in_zp", INT8_MIN, INT8_MAX),
             out_zp=_check_int(self.out_zp, "out_zp", INT8_MIN, INT8_MAX))
        _check_activation_limits(self)

    @classmethod
    def from_scales(cls, weights, bias, in_scale, in_zp, w_scales, out_scale, out_zp,
                    activation="NONE", stride=1, padding="same", depth_multiplier=1):
        """Like :meth:`Conv2D.from_scales`, with ``w_scales`` per output channel (last axis)."""
        channels = np.shape(weights)[-1]
        m0, shift = _conv_multipliers(in_scale, w_scales, out_scale, channels)
        act_min, act_max = activation_range(activation, out_scale, out_zp)
        return cls(weights, bias, stride, padding, in_zp, out_zp, m0, shift, act_min, act_max,
                   depth_multiplier)

    @property
    def kernel(self):
        return self.weights.shape[0]

    @property
    def channels(self):
        """Input channels ``C`` (equal to the output channels for depth multiplier 1)."""
        return self.weights.shape[2] // self.depth_multiplier

    @property
    def in_channels(self):
        return self.channels

    @property
    def out_channels(self):
        return self.weights.shape[2]

    def output_shape(self, input_shape):
        return _spatial_shape(input_shape, self.channels, self.kernel, self.stride,
                              self.padding, self.out_channels)

    def __call__(self, x):
        inputs, added = _batched(x, self.channels)
        windows = _spatial_windows(inputs - self.in_zp, self.kernel, self.stride, self.padding, 0)
        # [K, K, C * M] -> [K, K, C, M]: output channel c * M + m reads input channel c.
        weights = self.weights.astype(np.int64).reshape(
            self.kernel, self.kernel, self.channels, self.depth_multiplier)
        acc = np.einsum("nhwcij,ijcm->nhwcm", windows, weights)
        acc = acc.reshape(*acc.shape[:3], self.out_channels) + self.bias
        y = _requantize(acc, self.m0, self.shift, self.out_zp, self.act_min, self.act_max)
        return _unbatched(y, added)


@register_layer
@dataclass(frozen=True, eq=False)
class LeakyRelu:
    """TFLite ``LEAKY_RELU`` int8 (reference_ops::QuantizeLeakyRelu).

    ``d = x - in_zp``; ``y = clamp(out_zp + MBQM(d, identity_m0, identity_shift))`` if
    ``d >= 0`` else ``clamp(out_zp + MBQM(d, alpha_m0, alpha_shift))``, clamped to int8.
    """
    in_zp: int
    out_zp: int
    identity_m0: int
    identity_shift: int
    alpha_m0: int
    alpha_shift: int

    def __post_init__(self):
        _set(self, in_zp=_check_int(self.in_zp, "in_zp", INT8_MIN, INT8_MAX),
             out_zp=_check_int(self.out_zp, "out_zp", INT8_MIN, INT8_MAX),
             identity_m0=_check_int(self.identity_m0, "identity_m0", 0, (1 << 31) - 1),
             identity_shift=_check_int(self.identity_shift, "identity_shift", -31, 31),
             alpha_m0=_check_int(self.alpha_m0, "alpha_m0", 0, (1 << 31) - 1),
             alpha_shift=_check_int(self.alpha_shift, "alpha_shift", -31, 31))

    @classmethod
    def from_scales(cls, in_scale, in_zp, out_scale, out_zp, alpha):
        """As ``LeakyReluPrepare`` (kernels/activations.cc): both multipliers are computed in
        *float32* (``in_scale * alpha / out_scale`` and ``in_scale / out_scale`` are
        ``float`` expressions there) and only then widened to double for QuantizeMultiplier.
        """
        s_in, s_out, alpha32 = np.float32(in_scale), np.float32(out_scale), np.float32(alpha)
        identity_m0, identity_shift = quantize_multiplier(float(s_in / s_out))
        alpha_m0, alpha_shift = quantize_multiplier(float(s_in * alpha32 / s_out))
        return cls(in_zp, out_zp, identity_m0, identity_shift, alpha_m0, alpha_shift)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x):
        inputs, added = _batched(x, None)
        centred = inputs - self.in_zp
        positive = centred >= 0
        scaled = multiply_by_quantized_multiplier(
            centred, np.where(positive, self.identity_m0, self.alpha_m0),
            np.where(positive, self.identity_shift, self.alpha_shift))
        y = np.clip(scaled + self.out_zp, INT8_MIN, INT8_MAX).astype(np.int8)
        return _unbatched(y, added)


@register_layer
@dataclass(frozen=True, eq=False)
class Relu:
    """TFLite standalone ``RELU`` / ``RELU6`` / ``RELU_N1_TO_1`` int8 (``QuantizedReluX``
    with reference ``ReluX``): a requantization plus a clamp,
    ``y = clamp(out_zp + MBQM(x - in_zp, m0, shift), act_min, act_max)``.

    With equal input/output quantization (``m0 = 2**30, shift = 1``, i.e. ``M = 1``) this is
    the plain quantized clamp.
    """
    in_zp: int
    out_zp: int
    m0: int
    shift: int
    act_min: int
    act_max: int

    def __post_init__(self):
        _set(self, in_zp=_check_int(self.in_zp, "in_zp", INT8_MIN, INT8_MAX),
             out_zp=_check_int(self.out_zp, "out_zp", INT8_MIN, INT8_MAX),
             m0=_check_int(self.m0, "m0", 0, (1 << 31) - 1),
             shift=_check_int(self.shift, "shift", -31, 31))
        _check_activation_limits(self)

    @classmethod
    def from_scales(cls, in_scale, in_zp, out_scale, out_zp, kind="RELU"):
        """As ``ReluPrepare`` + ``QuantizedReluX``: ``M = float32(in_scale / out_scale)``;
        the clamp is ``activation_range(kind, out_scale, out_zp)`` (the same float32
        ``roundf(bound / scale)`` rule). ``kind`` is RELU, RELU6 or RELU_N1_TO_1.
        """
        if str(kind).upper() == "NONE":
            raise ValueError("a Relu layer needs kind RELU, RELU6 or RELU_N1_TO_1")
        m0, shift = quantize_multiplier(float(np.float32(in_scale) / np.float32(out_scale)))
        act_min, act_max = activation_range(kind, out_scale, out_zp)
        return cls(in_zp, out_zp, m0, shift, act_min, act_max)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x):
        inputs, added = _batched(x, None)
        scaled = multiply_by_quantized_multiplier(inputs - self.in_zp, self.m0, self.shift)
        y = np.clip(scaled + self.out_zp, self.act_min, self.act_max).astype(np.int8)
        return _unbatched(y, added)


@register_layer
@dataclass(frozen=True, eq=False)
class MaxPool2D:
    """TFLite ``MAX_POOL_2D`` int8 (reference_integer_ops::MaxPool).

    ``y = clamp(max over the window clipped to the image, act_min, act_max)``; input and
    output share scale and zero point. Padding with -128 equals clipping, because TFLite's
    running maximum starts at -128 anyway.
    """
    size: int
    stride: int
    padding: str
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self):
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {self.padding!r}")
        _set(self, size=_check_int(self.size, "size", 1), stride=_check_int(self.stride, "stride", 1))
        _check_activation_limits(self)

    def output_shape(self, input_shape):
        return _spatial_shape(input_shape, None, self.size, self.stride, self.padding, None)

    def __call__(self, x):
        inputs, added = _batched(x, None)
        windows = _spatial_windows(inputs, self.size, self.stride, self.padding, INT8_MIN)
        y = np.clip(windows.max(axis=(4, 5)), self.act_min, self.act_max).astype(np.int8)
        return _unbatched(y, added)


@dataclass(frozen=True, eq=False)
class Sequential:
    """Layers applied in order; ``layers`` is stored as a tuple."""
    layers: tuple

    def __post_init__(self):
        _set(self, layers=tuple(self.layers))
        for layer in self.layers:
            if not (callable(layer) and hasattr(layer, "output_shape")):
                raise ValueError(f"{layer!r} is not a golden layer")

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
