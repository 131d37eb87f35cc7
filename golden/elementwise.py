"""Int8 element-wise and layout operators, bit-exact with LiteRT's reference kernels.

Pure numpy + Python integers. Each operator is a frozen dataclass holding every integer
parameter the kernel needs, callable on ``int8`` arrays; :func:`quantize` and
:func:`dequantize` are plain functions. Tensor scales are ``float32`` (as in the
flatbuffer), zero points int8.

Arithmetic, from the TFLite sources (kernels/*.cc and kernels/internal/reference/*):

* :class:`Add` (``add.cc`` Prepare + ``reference_integer_ops::Add`` /
  ``BroadcastAdd*DSlow``): ``left_shift = 20``; ``twice_max = 2 * max(s1, s2)`` (float32,
  exact), then in double ``r1 = s1 / twice_max``, ``r2 = s2 / twice_max``,
  ``r_out = twice_max / (2**20 * s_out)``, each quantized with
  ``QuantizeMultiplierSmallerThanOneExp`` (``QuantizeMultiplier`` with the requirement
  ``0 < r < 1``, shift <= 0). Per element::

      a = ((x1 - zp1) << 20) * r1     # MultiplyByQuantizedMultiplierSmallerThanOneExp
      b = ((x2 - zp2) << 20) * r2
      y = clamp(MBQM(a + b, r_out) + zp_out, act_min, act_max)

  Broadcasting follows numpy's rules (TFLite's ``CalculateShapeForBroadcast``), either
  input may be the broadcast one.
* :class:`Concatenation`: for int8 TFLite's Prepare *requires* every input's scale and
  zero point to equal the output's (``ConcatenationWithScaling``, which requantizes in
  float, is the uint8 kernel only) and no fused activation; the op is then a plain copy.
  Mismatched parameters are refused here as LiteRT refuses them.
* :class:`ResizeNearestNeighbor` (``GetNearestNeighbor``), all in float32:
  ``scale = (in - 1) / (out - 1)`` if ``align_corners and out > 1`` else ``in / out``;
  ``v = (o + (0.5 if half_pixel_centers else 0)) * scale``;
  ``i = min(round_half_away(v) if align_corners else floor(v), in - 1)``, then
  ``max(i, 0)`` with half-pixel centers. Any output size >= 1 (non-integer factors too).
* :class:`Pad` (PAD / PADV2): ``np.pad`` with a constant int8 value; PAD uses the output
  zero point, PADV2 the raw int8 of its constant tensor (whose scale/zero point must equal
  the output's). At most 4 dimensions.
* :func:`quantize`: ``clamp(int32(roundf(x / scale)) + zp, -128, 127)`` with the division
  in float32 and ``roundf`` = round half away from zero (on the float32 quotient); an
  out-of-int32-range or NaN quotient casts to ``INT32_MIN`` and ``+ zp`` wraps, as the
  compiled x86-64 kernel does.
* :func:`dequantize`: ``float32(double(scale) * (q - zp))``, which equals the correctly
  rounded float32 product (the double product is exact).
"""
import math
from dataclasses import dataclass, field

import numpy as np

from .quant import INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32
from .cnn import register_layer

__all__ = ["Add", "Concatenation", "ResizeNearestNeighbor", "Pad", "quantize", "dequantize",
           "ADD_LEFT_SHIFT", "nearest_indices"]

#: TFLite's ``left_shift`` for the 8-bit ADD path.
ADD_LEFT_SHIFT = 20
_INT8_MIN, _INT8_MAX = -128, 127
_MAX_DIMS = 6


# --- parameter checks -----------------------------------------------------------------------

def _scale(value, name):
    try:
        scale = np.float32(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite float32, not {value!r}") from None
    if isinstance(value, bool) or not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"{name} must be a positive finite float32, not {value!r}")
    return scale


def _int(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in {low}..{high}, not {value}")
    return int(value)


def _bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def _int8_array(x, name="input"):
    array = np.asarray(x)
    if array.dtype != np.int8:
        raise ValueError(f"{name} must be an int8 array, not {array.dtype}")
    return array


def _multiplier_smaller_than_one(real, name):
    """TFLite ``QuantizeMultiplierSmallerThanOneExp``: needs ``0 < real < 1``."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"{name} = {real!r} must be in (0, 1) (TFLite's "
                         "QuantizeMultiplierSmallerThanOneExp)")
    m0, shift = quantize_multiplier(real)
    if shift > 0:  # unreachable for real < 1, kept as TFLite's TFLITE_CHECK_LE(shift, 0)
        raise ValueError(f"{name} gives a positive shift {shift}")
    return m0, shift


def _set(obj, **values):
    for key, value in values.items():
        object.__setattr__(obj, key, value)


# --- ADD -----------------------------------------------------------------------------------

@register_layer
@dataclass(frozen=True)
class Add:
    """Quantized int8 ADD with an optional fused clamp ``[act_min, act_max]``.

    Use :func:`~rasterflow.golden.quant.activation_range` for RELU / RELU6 bounds.
    Derived (read-only) fields: ``left_shift`` and the ``(m0, shift)`` pairs
    ``in1_multiplier``, ``in2_multiplier``, ``out_multiplier``.
    """
    in1_scale: float
    in1_zp: int
    in2_scale: float
    in2_zp: int
    out_scale: float
    out_zp: int
    act_min: int = _INT8_MIN
    act_max: int = _INT8_MAX
    left_shift: int = field(init=False, default=ADD_LEFT_SHIFT)
    in1_multiplier: tuple = field(init=False, default=None)
    in2_multiplier: tuple = field(init=False, default=None)
    out_multiplier: tuple = field(init=False, default=None)

    def __post_init__(self):
        s1 = _scale(self.in1_scale, "in1_scale")
        s2 = _scale(self.in2_scale, "in2_scale")
        so = _scale(self.out_scale, "out_scale")
        _set(self, in1_scale=float(s1), in2_scale=float(s2), out_scale=float(so),
             in1_zp=_int(self.in1_zp, "in1_zp", _INT8_MIN, _INT8_MAX),
             in2_zp=_int(self.in2_zp, "in2_zp", _INT8_MIN, _INT8_MAX),
             out_zp=_int(self.out_zp, "out_zp", _INT8_MIN, _INT8_MAX),
             act_min=_int(self.act_min, "act_min", _INT8_MIN, _INT8_MAX),
             act_max=_int(self.act_max, "act_max", _INT8_MIN, _INT8_MAX))
        if self.act_min > self.act_max:
            raise ValueError(f"act_min {self.act_min} must be <= act_max {self.act_max}")
        twice_max = float(np.float32(2) * max(s1, s2))            # float32, exact
        shifted_out = float(np.float32(1 << ADD_LEFT_SHIFT) * so)  # float32, exact
        if not math.isfinite(twice_max) or not math.isfinite(shifted_out):
            raise ValueError("in1_scale, in2_scale and out_scale must stay finite when doubled "
                             "and multiplied by 2**20")
        _set(self,
             in1_multiplier=_multiplier_smaller_than_one(float(s1) / twice_max, "in1 multiplier"),
             in2_multiplier=_multiplier_smaller_than_one(float(s2) / twice_max, "in2 multiplier"),
             out_multiplier=_multiplier_smaller_than_one(
                 twice_max / shifted_out,
                 "output multiplier 2*max(in1_scale, in2_scale) / (2**20 * out_scale)"))

    def output_shape(self, shape1, shape2):
        shape1, shape2 = tuple(shape1), tuple(shape2)
        if max(len(shape1), len(shape2)) > _MAX_DIMS:
            raise ValueError(f"inputs may have at most {_MAX_DIMS} dimensions, got {shape1} and {shape2}")
        try:
            return tuple(np.broadcast_shapes(shape1, shape2))
        except ValueError:
            raise ValueError(f"input shapes {shape1} and {shape2} do not broadcast") from None

    def __call__(self, x1, x2):
        a1 = _int8_array(x1, "x1")
        a2 = _int8_array(x2, "x2")
        shape = self.output_shape(a1.shape, a2.shape)
        m1, e1 = self.in1_multiplier
        m2, e2 = self.in2_multiplier
        mo, eo = self.out_multiplier
        v1 = (a1.astype(np.int64) - self.in1_zp) << self.left_shift
        v2 = (a2.astype(np.int64) - self.in2_zp) << self.left_shift
        scaled1 = np.asarray(multiply_by_quantized_multiplier(v1, m1, e1))
        scaled2 = np.asarray(multiply_by_quantized_multiplier(v2, m2, e2))
        raw_sum = np.broadcast_to(scaled1, shape) + np.broadcast_to(scaled2, shape)
        raw = np.asarray(multiply_by_quantized_multiplier(raw_sum, mo, eo)) + self.out_zp
        return np.clip(raw, self.act_min, self.act_max).astype(np.int8).reshape(shape)


# --- CONCATENATION -------------------------------------------------------------------------

@register_layer
@dataclass(frozen=True)
class Concatenation:
    """Int8 CONCATENATION along ``axis`` (negative counts from the end).

    ``in_params``: one ``(scale, zero_point)`` per input. LiteRT's int8 kernel refuses
    inputs whose scale or zero point differ from the output's, and so does this class.
    """
    axis: int
    in_params: tuple
    out_scale: float
    out_zp: int

    def __post_init__(self):
        _int(self.axis, "axis", -_MAX_DIMS, _MAX_DIMS - 1)
        so = _scale(self.out_scale, "out_scale")
        zo = _int(self.out_zp, "out_zp", _INT8_MIN, _INT8_MAX)
        try:
            params = tuple(tuple(p) for p in self.in_params)
        except TypeError:
            raise ValueError("in_params must be a sequence of (scale, zero_point) pairs") from None
        if not params:
            raise ValueError("in_params must name at least one input")
        checked = []
        for index, pair in enumerate(params):
            if len(pair) != 2:
                raise ValueError(f"in_params[{index}] must be a (scale, zero_point) pair, not {pair!r}")
            scale = _scale(pair[0], f"in_params[{index}] scale")
            zp = _int(pair[1], f"in_params[{index}] zero point", _INT8_MIN, _INT8_MAX)
            if scale != so or zp != zo:
                raise ValueError(
                    f"in_params[{index}] = ({float(scale)!r}, {zp}) must equal the output's "
                    f"({float(so)!r}, {zo}): TFLite's int8 CONCATENATION does no rescaling")
            checked.append((float(scale), zp))
        _set(self, axis=int(self.axis), in_params=tuple(checked), out_scale=float(so), out_zp=zo)

    def _axis(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 <= axis < ndim:
            raise ValueError(f"axis {self.axis} is out of range for {ndim}-dimensional inputs")
        return axis

    def output_shape(self, *shapes):
        if len(shapes) != len(self.in_params):
            raise ValueError(f"expected {len(self.in_params)} inputs, got {len(shapes)}")
        shapes = [tuple(s) for s in shapes]
        ndim = len(shapes[0])
        if ndim > _MAX_DIMS or any(len(s) != ndim for s in shapes):
            raise ValueError(f"inputs must share a rank of at most {_MAX_DIMS}, got {shapes}")
        axis = self._axis(ndim)
        for shape in shapes[1:]:
            if any(a != b for d, (a, b) in enumerate(zip(shape, shapes[0])) if d != axis):
                raise ValueError(f"input shapes {shapes} differ outside axis {axis}")
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def __call__(self, *xs):
        arrays = [_int8_array(x, f"input {i}") for i, x in enumerate(xs)]
        self.output_shape(*(a.shape for a in arrays))
        return np.concatenate(arrays, axis=self._axis(arrays[0].ndim))


# --- RESIZE_NEAREST_NEIGHBOR ---------------------------------------------------------------

def nearest_indices(in_size, out_size, align_corners, half_pixel_centers):
    """TFLite ``GetNearestNeighbor`` for every output coordinate, in float32."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    value = (np.arange(out_size, dtype=np.float32) + offset) * scale  # float32 throughout
    floor = np.floor(value)
    if align_corners:  # TfLiteRound: half away from zero (value >= 0; value - floor is exact)
        index = floor + (value - floor >= np.float32(0.5))
    else:
        index = floor
    index = np.minimum(index.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        index = np.maximum(index, 0)
    return index


@register_layer
@dataclass(frozen=True)
class ResizeNearestNeighbor:
    """RESIZE_NEAREST_NEIGHBOR on NHWC (or HWC) int8 arrays to ``out_height x out_width``."""
    out_height: int
    out_width: int
    align_corners: bool = False
    half_pixel_centers: bool = False

    def __post_init__(self):
        _set(self, out_height=_int(self.out_height, "out_height", 1, (1 << 31) - 1),
             out_width=_int(self.out_width, "out_width", 1, (1 << 31) - 1),
             align_corners=_bool(self.align_corners, "align_corners"),
             half_pixel_centers=_bool(self.half_pixel_centers, "half_pixel_centers"))

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) not in (3, 4):
            raise ValueError(f"input must be HWC or NHWC, got shape {shape}")
        return shape[:-3] + (self.out_height, self.out_width, shape[-1])

    def __call__(self, x):
        array = _int8_array(x)
        self.output_shape(array.shape)
        in_h, in_w = array.shape[-3], array.shape[-2]
        if in_h < 1 or in_w < 1:
            raise ValueError(f"input height and width must be >= 1, got shape {array.shape}")
        rows = nearest_indices(in_h, self.out_height, self.align_corners, self.half_pixel_centers)
        cols = nearest_indices(in_w, self.out_width, self.align_corners, self.half_pixel_centers)
        return array[..., rows, :, :][..., :, cols, :]


# --- PAD / PADV2 ---------------------------------------------------------------------------

@register_layer
@dataclass(frozen=True)
class Pad:
    """PAD / PADV2 on int8: ``paddings`` is one ``(before, after)`` pair per dimension (at
    most 4), ``constant`` the int8 fill value (PAD: the output zero point)."""
    paddings: tuple
    constant: int = 0

    def __post_init__(self):
        try:
            pairs = tuple(tuple(p) for p in self.paddings)
        except TypeError:
            raise ValueError("paddings must be a sequence of (before, after) pairs") from None
        if not 1 <= len(pairs) <= 4:
            raise ValueError(f"paddings must have 1..4 (before, after) pairs, got {len(pairs)}")
        checked = []
        for index, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"paddings[{index}] must be a (before, after) pair, not {pair!r}")
            checked.append(tuple(_int(v, f"paddings[{index}]", 0, (1 << 31) - 1) for v in pair))
        _set(self, paddings=tuple(checked),
             constant=_int(self.constant, "constant", _INT8_MIN, _INT8_MAX))

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != len(self.paddings):
            raise ValueError(f"input has {len(shape)} dimensions, paddings has {len(self.paddings)} pairs")
        return tuple(size + before + after for size, (before, after) in zip(shape, self.paddings))

    def __call__(self, x):
        array = _int8_array(x)
        self.output_shape(array.shape)
        return np.pad(array, self.paddings, mode="constant", constant_values=np.int8(self.constant))


# --- QUANTIZE / DEQUANTIZE -----------------------------------------------------------------

def quantize(x, scale, zp):
    """QUANTIZE float32 -> int8: ``clamp(int32(roundf(x / scale)) + zp, -128, 127)``.

    ``x / scale`` is a float32 division; ``roundf`` rounds half away from zero. When the
    rounded quotient does not fit int32 (or is NaN) the C++ ``static_cast<int32>`` is
    undefined; the compiled x86-64 kernel yields ``INT32_MIN`` (cvttss2si's "integer
    indefinite"), and ``+ zp`` then wraps in int32. Both are reproduced, so e.g. ``+inf``
    quantizes to -128 for ``zp >= 0`` and to 127 for ``zp < 0``, exactly as LiteRT does
    on x86-64.
    """
    s = _scale(scale, "scale")
    z = _int(zp, "zp", _INT8_MIN, _INT8_MAX)
    array = np.asarray(x)
    if array.dtype != np.float32:
        raise ValueError(f"x must be a float32 array, not {array.dtype}")
    with np.errstate(invalid="ignore", over="ignore"):
        quotient = (array / s).astype(np.float64)  # float32 division, widened exactly
        magnitude = np.abs(quotient)
        whole = np.floor(magnitude)
        rounded = np.copysign(whole + (magnitude - whole >= 0.5), quotient)
        fits = np.isfinite(rounded) & (rounded >= -2.0 ** 31) & (rounded < 2.0 ** 31)
    as_int32 = np.where(fits, np.where(fits, rounded, 0).astype(np.int64), INT32_MIN)
    return np.clip(wrap_int32(as_int32 + z), _INT8_MIN, _INT8_MAX).astype(np.int8)


def dequantize(q, scale, zp):
    """DEQUANTIZE int8 -> float32: ``float32(double(scale) * (q - zp))``."""
    s = _scale(scale, "scale")
    z = _int(zp, "zp", _INT8_MIN, _INT8_MAX)
    array = _int8_array(q, "q")
    return (np.float64(s) * (array.astype(np.int64) - z)).astype(np.float32)
