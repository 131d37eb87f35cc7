"""Fixed-point requantization primitives, bit-exact with TFLite / LiteRT.

Everything here is pure numpy + Python integers (no TFLite import), so the golden models
are an independent second implementation of the interpreter's integer arithmetic.

Conventions
-----------
* A real multiplier ``M`` is represented as ``(m0, shift)`` with
  ``M ~= m0 * 2**(shift - 31)``, ``m0`` in ``[2**30, 2**31)`` (or 0), exactly as TFLite's
  ``QuantizeMultiplier`` returns it: ``shift`` is TFLite's *signed* exponent (positive
  means a left shift before the fixed-point multiply, negative a rounding right shift
  after it).
* The array functions accept Python ints, numpy integer scalars or integer arrays; they
  compute in ``int64`` (wide enough for every intermediate product of two int32 values)
  and return ``int64`` arrays, or a Python ``int`` when every argument was a scalar.
  Arguments broadcast against each other (e.g. per-channel ``m0``/``shift`` along the
  last axis of ``x``).
"""
import math

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX", "ACTIVATIONS",
    "quantize_multiplier", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "round_half_away_from_zero", "activation_range",
    "wrap_int32",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Fused activations of TFLite's ``ActivationFunctionType`` that are a plain clamp:
#: name -> (real lower bound, real upper bound); ``None`` means "the dtype's limit".
ACTIVATIONS = {
    "NONE": (None, None),
    "RELU": (0.0, None),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}

_DTYPE_LIMITS = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def _as_int64(value, name):
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer, not {array.dtype}")
    return array.astype(np.int64)


def _check_int32(array, name):
    if array.size and (array.min() < INT32_MIN or array.max() > INT32_MAX):
        raise ValueError(f"{name} must hold int32 values")


def _result(array, *scalars):
    """A Python int when every input was a scalar, else the int64 array."""
    if all(np.ndim(s) == 0 for s in scalars):
        return int(array)
    return array


def wrap_int32(values):
    """Reduce int64 values modulo 2**32 into the int32 range (two's complement wrap).

    TFLite accumulates in ``int32_t`` and computes ``x * (1 << left_shift)`` in
    ``int32_t``; signed overflow is undefined in C++, and the compiled kernels wrap.
    """
    values = np.asarray(values, dtype=np.int64)
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def round_half_away_from_zero(value):
    """``std::round`` (TFLite's ``TfLiteRound``) of a float, as a Python int.

    Done on the exact double value (``math.floor``/subtraction of a double and its floor
    are exact), so no intermediate ``+ 0.5`` can round up by accident.
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot round {value}")
    magnitude = abs(value)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return int(math.copysign(whole, value)) if whole else 0


def quantize_multiplier(real, single_rounding=False):
    """TFLite ``QuantizeMultiplier`` (kernels/internal/quantization_util.cc).

    ``q, e = frexp(real)``; ``m0 = round(q * 2**31)`` (half away from zero); if
    ``m0 == 2**31`` then ``m0 //= 2, e += 1``; if ``e < -31`` then ``m0 = e = 0`` (the
    multiplier is flushed to zero). With ``single_rounding`` (the
    ``TFLITE_SINGLE_ROUNDING`` build) an exponent above 30 saturates to
    ``(2**31 - 1, 30)``. ``real`` is taken as a double; returns ``(m0, shift)`` as ints.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    fraction, exponent = math.frexp(real)
    m0 = round_half_away_from_zero(fraction * (1 << 31))  # exact: scaling by 2**31
    if abs(m0) == 1 << 31:
        m0 //= 2
        exponent += 1
    if exponent < -31:
        return 0, 0
    if single_rounding and exponent > 30:
        return INT32_MAX, 30
    return m0, exponent


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values.

    ``p = a * b`` (64-bit); ``nudge = 2**30`` if ``p >= 0`` else ``1 - 2**30``;
    result ``(p + nudge) / 2**31`` truncated toward zero (so positive ties round up and
    negative ties round toward zero); ``a == b == INT32_MIN`` saturates to ``INT32_MAX``.
    """
    a64 = _as_int64(a, "a")
    b64 = _as_int64(b, "b")
    _check_int32(a64, "a")
    _check_int32(b64, "b")
    product = a64 * b64  # |product| <= 2**62: no int64 overflow
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    # Division truncating toward zero, as C++ does; numpy's >> floors.
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return _result(np.where(overflow, INT32_MAX, high), a, b)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded, ties away from zero.

    ``mask = 2**exponent - 1``; ``remainder = x & mask``;
    ``threshold = (mask >> 1) + (x < 0)``; result ``(x >> exponent) + (remainder >
    threshold)`` with an arithmetic shift. ``exponent`` in 0..31.
    """
    x64 = _as_int64(x, "x")
    exponent64 = _as_int64(exponent, "exponent")
    _check_int32(x64, "x")
    if exponent64.size and (exponent64.min() < 0 or exponent64.max() > 31):
        raise ValueError("exponent must be in 0..31")
    mask = (np.int64(1) << exponent64) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0)
    return _result((x64 >> exponent64) + (remainder > threshold), x, exponent)


def multiply_by_quantized_multiplier(x, m0, shift, single_rounding=False):
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, int32 m0, int shift)`` (common.h).

    Default (double rounding, what the shipped interpreter is built with)::

        left, right = max(shift, 0), max(-shift, 0)
        RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2**left, m0), right)

    where ``x * 2**left`` is an int32 product (wrapped, like the compiled kernel).

    ``single_rounding`` (``TFLITE_SINGLE_ROUNDING``), for ``shift`` in -31..30::

        total = 31 - shift
        (x * m0 + 2**(total - 1)) >> total      # 64-bit, arithmetic shift
    """
    x64, m064, shift64 = np.broadcast_arrays(
        _as_int64(x, "x"), _as_int64(m0, "m0"), _as_int64(shift, "shift"))
    _check_int32(x64, "x")
    if m064.size and (m064.min() < 0 or m064.max() > INT32_MAX):
        raise ValueError("m0 must be in 0..2**31-1")
    if single_rounding:
        if shift64.size and (shift64.min() < -31 or shift64.max() > 30):
            raise ValueError("shift must be in -31..30 with single rounding")
        total_shift = 31 - shift64
        rounded = (x64 * m064 + (np.int64(1) << (total_shift - 1))) >> total_shift
        return _result(rounded, x, m0, shift)
    if shift64.size and (shift64.min() < -31 or shift64.max() > 31):
        raise ValueError("shift must be in -31..31")
    left = np.maximum(shift64, 0)
    right = np.maximum(-shift64, 0)
    high = saturating_rounding_doubling_high_mul(wrap_int32(x64 << left), m064)
    return _result(rounding_divide_by_pot(high, right), x, m0, shift)


def activation_range(kind, scale, zero_point, dtype="int8"):
    """TFLite ``CalculateActivationRangeQuantized`` (kernels/kernel_util.cc).

    A bound ``f`` (0, 6, -1 or 1) is quantized as
    ``zero_point + TfLiteRound(f / scale)`` with the division in *float32* (the tensor's
    scale is a ``float``), then clamped to the dtype's range. ``kind`` is one of
    :data:`ACTIVATIONS` (case-insensitive). Returns ``(act_min, act_max)`` as ints.
    """
    name = str(kind).upper()
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {kind!r}; expected one of {', '.join(ACTIVATIONS)}")
    if dtype not in _DTYPE_LIMITS:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPE_LIMITS)}, not {dtype!r}")
    qmin, qmax = _DTYPE_LIMITS[dtype]
    scale32 = np.float32(scale)
    if not (np.isfinite(scale32) and scale32 > 0):
        raise ValueError(f"scale must be a positive float32, not {scale!r}")

    def quantize(bound):
        steps = round_half_away_from_zero(np.float32(bound) / scale32)
        if not INT32_MIN <= steps <= INT32_MAX:
            raise ValueError(f"activation bound {bound} overflows int32 at scale {scale}")
        return int(zero_point) + steps

    low, high = ACTIVATIONS[name]
    act_min = qmin if low is None else max(qmin, quantize(low))
    act_max = qmax if high is None else min(qmax, quantize(high))
    return act_min, act_max
