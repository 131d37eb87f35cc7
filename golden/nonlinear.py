"""Int8 SOFTMAX and LOGISTIC, bit-exact with LiteRT's reference kernels (``BUILTIN_REF``).

Pure numpy + Python integers: an independent second implementation of what the
interpreter computes, from the published kernel semantics (kernels/activations.cc,
internal/reference/softmax.h, internal/common.h, internal/quantization_util.cc and
gemmlowp's fixedpoint.h).

SOFTMAX (``SoftmaxPrepare`` with ``kReference``, then ``reference_ops::Softmax<int8, int8>``)
---------------------------------------------------------------------------------------
Prepare, in double (``beta`` and ``in_scale`` are the model's float32 values)::

    real = min(beta * in_scale * 2**26, 2**31 - 1)        # 26 = 31 - kScaledDiffIntegerBits(5)
    (input_multiplier, input_left_shift) = QuantizeMultiplier(real)   # real > 1 required
    diff_min = -floor(31 * 2**26 / 2**input_left_shift)   # -CalculateInputRadius(5, shift)

Eval, per row of the last axis (all int32 arithmetic, SRDHM = SaturatingRoundingDoublingHighMul,
RDPOT = RoundingDivideByPOT)::

    d = x - max(row)                                        # <= 0
    kept = d >= diff_min
    s = SRDHM(d << input_left_shift, input_multiplier)      # Q5.26, d << shift wraps in int32
    e = exp_on_negative_values(s)                           # Q0.31, gemmlowp's (exp_on_negative_values below)
    sum = sum over kept of RDPOT(e, 12)                     # Q12.19 (Rescale<12>)
    h = clz(uint32(sum)); nbits = 12 - h
    r = one_over_one_plus_x_for_x_in_0_1((uint32(sum) << h) - 2**31)   # Q0.31, GetReciprocal
    y = clamp(RDPOT(SRDHM(r, e), nbits + 23) - 128, -128, 127) if kept else -128

A row whose sum of exponentials (after the ``diff_min`` cut-off) reaches 512, i.e.
``nbits + 23 > 31`` (e.g. 512 or more equal inputs), makes the C++ kernel abort the process
(``TFLITE_CHECK``); the golden model raises ``ValueError`` instead.

The output quantization must be TFLite's fixed one for int8 softmax: zero point -128 and a
scale within 0.001/256 of 1/256 (``SoftmaxPrepare``'s ``TF_LITE_ENSURE_NEAR``); the input zero
point cancels in ``x - max(row)``.

LOGISTIC (``SigmoidPrepare`` / ``SigmoidEval`` with ``kReference``, int8)
----------------------------------------------------------------------
The reference resolver does *not* run ``reference_integer_ops::Logistic`` for int8 (only the
``kFixedPointOptimized`` kernel computes ``input_multiplier`` / ``input_range_radius``): its
Prepare fills a 256-entry table with ``LUTPopulate<int8_t>`` and Eval is a table lookup.
Each entry, in float32 exactly as the C++ does it::

    xf = float32(in_scale) * float32(q - in_zp)
    sf = 1.0f / (1.0f + expf(-xf))
    y  = clamp(int(round_half_away(sf * (1.0f / out_scale)) + out_zp), -128, 127)

``expf`` is taken as the correctly rounded float32 exponential (computed in double, rounded
once). That matched LiteRT on every table entry tried (the full int8 range for a few thousand
random scales), whereas numpy's own float32 ``np.exp`` differed from it on one entry.
"""
import math

import numpy as np

from .quant import (INT32_MAX, quantize_multiplier, rounding_divide_by_pot,
                    saturating_rounding_doubling_high_mul, wrap_int32)
from .cnn import register_layer

__all__ = ["Softmax", "Logistic", "exp_on_negative_values", "one_over_one_plus_x_for_x_in_0_1"]

INT8_MIN, INT8_MAX = -128, 127
OUTPUT_SCALE = 1.0 / 256
OUTPUT_ZERO_POINT = -128

_SCALED_DIFF_INTEGER_BITS = 5      # Q5.26 input of exp()
_ACCUMULATION_INTEGER_BITS = 12    # Q12.19 sum of exps


# --- gemmlowp fixedpoint helpers (int64 arrays holding int32 values) -------------------------

def _srdhm(a, b):
    return np.asarray(saturating_rounding_doubling_high_mul(np.asarray(a, np.int64),
                                                            np.asarray(b, np.int64)), np.int64)


def _rdpot(x, exponent):
    return np.asarray(rounding_divide_by_pot(np.asarray(x, np.int64), exponent), np.int64)


def _add(a, b):
    """gemmlowp ``Add`` on int32 raw values (wraps like the compiled kernel)."""
    return wrap_int32(np.asarray(a, np.int64) + np.asarray(b, np.int64))


def _saturating_shift_left(x, exponent):
    """``SaturatingRoundingMultiplyByPOT<exponent>`` for ``exponent > 0``."""
    threshold = (1 << (31 - exponent)) - 1
    x = np.asarray(x, np.int64)
    shifted = wrap_int32(x << exponent)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, -(1 << 31), shifted))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """Q0.31 ``exp(a)`` for Q0.31 ``a`` in [-1/4, 0): Taylor series around -1/8."""
    constant_term = 1895147668          # exp(-1/8)
    constant_1_over_3 = 715827883
    x = _add(a, 1 << 28)                # a + 1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdpot(x4, 2)
    poly = _rdpot(_add(_srdhm(_add(x4_over_4, x3), constant_1_over_3), x2), 1)
    return _add(constant_term, _srdhm(constant_term, _add(x, poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))   # exp(-2**k) in Q0.31


def exp_on_negative_values(a, integer_bits=_SCALED_DIFF_INTEGER_BITS):
    """gemmlowp ``exp_on_negative_values`` of raw ``a`` in Q(integer_bits) (``a <= 0``):
    the raw Q0.31 result (``2**31 - 1`` for ``a == 0``)."""
    a = np.asarray(a, np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = _add(a & (one_quarter - 1), -one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
        if integer_bits else a_mod_quarter_minus_one_quarter)
    remainder = _add(a_mod_quarter_minus_one_quarter, -a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, _srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: raw Q0.31 ``1 / (1 + a)``, three
    Newton-Raphson steps in Q2.29."""
    a = np.asarray(a, np.int64)
    total = a + INT32_MAX                                  # RoundingHalfSum(a, One)
    half_denominator = np.where(total >= 0, (total + 1) // 2, -((-(total - 1)) // 2))
    x = _add(1515870810, _srdhm(half_denominator, -1010580540))   # 48/17 - 32/17 * d
    for _ in range(3):
        one_minus = _add(1 << 29, -_srdhm(half_denominator, x))
        x = _add(x, _saturating_shift_left(_srdhm(x, one_minus), 2))
    return _saturating_shift_left(x, 1)


def _count_leading_zeros(x):
    """``CountLeadingZeros(uint32)`` of positive int64 values below 2**32."""
    x = np.asarray(x, np.int64)
    zeros = np.full(x.shape, 32, np.int64)
    for bit in range(32):
        zeros = np.where(x >= (1 << bit), 31 - bit, zeros)
    return zeros


# --- the operators -----------------------------------------------------------------------

def _float32(value, name):
    value32 = np.float32(value)
    if not (np.isfinite(value32) and value32 > 0):
        raise ValueError(f"{name} must be a positive finite float32, not {value!r}")
    return value32


def _zero_point(value, name):
    if isinstance(value, bool) or int(value) != value or not INT8_MIN <= int(value) <= INT8_MAX:
        raise ValueError(f"{name} must be an int8 zero point, not {value!r}")
    return int(value)


def _int8_input(x):
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TypeError(f"input must be int8, not {x.dtype}")
    return x


@register_layer
class Softmax:
    """TFLite ``SOFTMAX`` int8 -> int8 over the last axis, as LiteRT's reference kernel.

    ``in_scale``/``out_scale``/``beta`` are taken as the model's float32 values. Holds the
    Prepare results ``input_multiplier``, ``input_left_shift``, ``diff_min``.
    """

    def __init__(self, in_scale, in_zp, out_scale, out_zp, beta=1.0):
        self.in_scale = _float32(in_scale, "in_scale")
        self.in_zp = _zero_point(in_zp, "in_zp")
        out_scale32 = _float32(out_scale, "out_scale")
        self.out_zp = _zero_point(out_zp, "out_zp")
        if self.out_zp != OUTPUT_ZERO_POINT:
            raise ValueError(f"out_zp must be {OUTPUT_ZERO_POINT} for int8 softmax, not {out_zp}")
        # TF_LITE_ENSURE_NEAR(scale, 1.f / 256, 0.001f * 1.f / 256), compared in double.
        if abs(float(out_scale32) - float(np.float32(1 / 256))) > float(np.float32(0.001) * np.float32(1 / 256)):
            raise ValueError(f"out_scale must be 1/256 for int8 softmax, not {out_scale!r}")
        self.out_scale = out_scale32
        beta32 = np.float32(beta)
        if not (np.isfinite(beta32) and beta32 > 0):
            raise ValueError(f"beta must be a positive finite float32, not {beta!r}")
        self.beta = beta32
        # PreprocessSoftmaxScaling(double beta, double scale, 5, ...)
        real = min(float(beta32) * float(self.in_scale) * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)),
                   float((1 << 31) - 1))
        if not real > 1.0:
            raise ValueError(f"beta * in_scale = {float(beta32) * float(self.in_scale)!r} is too small: "
                             "TFLite needs beta * in_scale * 2**26 > 1")
        self.input_multiplier, self.input_left_shift = quantize_multiplier(real)
        # CalculateInputRadius(5, left_shift, 31), negated.
        radius = math.floor(((1 << _SCALED_DIFF_INTEGER_BITS) - 1)
                            * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS))
                            / float(1 << self.input_left_shift))
        self.diff_min = -radius

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x):
        x = _int8_input(x)
        if x.ndim < 1:
            raise ValueError("softmax needs at least one dimension")
        if x.size == 0:
            return x.copy()
        values = x.astype(np.int64)
        diff = values - values.max(axis=-1, keepdims=True)
        kept = diff >= self.diff_min
        scaled = _srdhm(wrap_int32(diff << self.input_left_shift), self.input_multiplier)
        exps = exp_on_negative_values(np.where(kept, scaled, 0))
        rescaled = _rdpot(exps, _ACCUMULATION_INTEGER_BITS)
        sum_of_exps = wrap_int32(np.where(kept, rescaled, 0).sum(axis=-1, keepdims=True))
        headroom_plus_one = _count_leading_zeros(sum_of_exps)
        num_bits_over_unit = _ACCUMULATION_INTEGER_BITS - headroom_plus_one
        shifted_sum_minus_one = wrap_int32(((sum_of_exps << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
        shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
        exponent = num_bits_over_unit + 31 - 8
        if exponent.min() < 0 or exponent.max() > 31:
            raise ValueError("a row's sum of exponentials reaches 512: TFLite's reference softmax "
                             "aborts there (TFLITE_CHECK(exponent <= 31))")
        unsat = _rdpot(_srdhm(shifted_scale, exps), np.broadcast_to(exponent, exps.shape))
        y = np.clip(unsat + INT8_MIN, INT8_MIN, INT8_MAX)
        return np.where(kept, y, INT8_MIN).astype(np.int8)


@register_layer
class Logistic:
    """TFLite ``LOGISTIC`` int8 -> int8, as LiteRT's reference kernel: the 256-entry table of
    ``LUTPopulate<int8_t>`` (float32 sigmoid, see the module docstring), indexed by the input.

    ``table[q + 128]`` is the output for input ``q``.
    """

    def __init__(self, in_scale, in_zp, out_scale, out_zp):
        self.in_scale = _float32(in_scale, "in_scale")
        self.in_zp = _zero_point(in_zp, "in_zp")
        out_scale32 = _float32(out_scale, "out_scale")
        # SigmoidPrepare: output->params.scale == 1. / 256 (exact).
        if float(out_scale32) != OUTPUT_SCALE:
            raise ValueError(f"out_scale must be exactly 1/256 for int8 logistic, not {out_scale!r}")
        self.out_scale = out_scale32
        self.out_zp = _zero_point(out_zp, "out_zp")
        if self.out_zp != OUTPUT_ZERO_POINT:
            raise ValueError(f"out_zp must be {OUTPUT_ZERO_POINT} for int8 logistic, not {out_zp}")
        q = np.arange(INT8_MIN, INT8_MAX + 1)
        dequantized = self.in_scale * (q - self.in_zp).astype(np.float32)        # float32 product
        with np.errstate(over="ignore"):
            exp_neg = np.exp(-dequantized.astype(np.float64)).astype(np.float32)  # expf, rounded once
        sigmoid = np.float32(1) / (np.float32(1) + exp_neg)                     # float32 ops
        inverse_scale = np.float32(1) / out_scale32
        rescaled = (sigmoid * inverse_scale).astype(np.float64)                 # float32 product
        rounded = np.sign(rescaled) * np.floor(np.abs(rescaled) + 0.5)          # std::round
        table = np.clip(rounded + self.out_zp, INT8_MIN, INT8_MAX).astype(np.int8)
        table.setflags(write=False)
        self.table = table

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x):
        x = _int8_input(x)
        return self.table[x.astype(np.int64) - INT8_MIN]
