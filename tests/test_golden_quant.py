"""golden.quant against plain-Python-int references written here from the definitions."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rasterflow.golden.quant import (
    INT32_MAX, INT32_MIN, activation_range, multiply_by_quantized_multiplier, quantize_multiplier,
    round_half_away_from_zero, rounding_divide_by_pot, saturating_rounding_doubling_high_mul, wrap_int32,
)

int32s = st.integers(INT32_MIN, INT32_MAX)


# --- scalar references, from the definitions (exact rationals, no bit tricks) -----------

def ref_srdhm(a, b):
    """round(a * b / 2**31): positive ties up, negative ties toward zero; MIN*MIN saturates."""
    if a == b == INT32_MIN:
        return INT32_MAX
    exact = Fraction(a * b, 1 << 31)
    if exact >= 0:
        return math.floor(exact + Fraction(1, 2))
    return math.ceil(exact - Fraction(1, 2) + Fraction(1, 1 << 31))


def ref_rdbpot(x, exponent):
    """x / 2**exponent rounded to nearest, ties away from zero."""
    magnitude = Fraction(abs(x), 1 << exponent)
    rounded = math.floor(magnitude + Fraction(1, 2))
    return rounded if x >= 0 else -rounded


def ref_wrap(value):
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def ref_mbqm(x, m0, shift):
    scaled = ref_wrap(x * 2 ** max(shift, 0))
    return ref_rdbpot(ref_srdhm(scaled, m0), max(-shift, 0))


def ref_mbqm_single(x, m0, shift):
    """floor(x * m0 / 2**(31 - shift) + 1/2)."""
    return math.floor(Fraction(x * m0, 1 << (31 - shift)) + Fraction(1, 2))


def ref_quantize_multiplier(real):
    exact = Fraction(real)
    exponent = 0
    while exact / Fraction(2) ** exponent >= 1:
        exponent += 1
    while exact / Fraction(2) ** exponent < Fraction(1, 2):
        exponent -= 1
    significand = exact / Fraction(2) ** exponent * (1 << 31)
    m0 = math.floor(significand + Fraction(1, 2))  # positive: half away == half up
    if m0 == 1 << 31:
        m0, exponent = 1 << 30, exponent + 1
    if exponent < -31:
        return 0, 0
    return m0, exponent


# --- SaturatingRoundingDoublingHighMul ---------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    (INT32_MIN, INT32_MIN, INT32_MAX),             # the one saturating case
    (INT32_MIN, INT32_MAX, INT32_MIN + 1),
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),
    (INT32_MIN, 1 << 30, -(1 << 30)),
    (3, 1 << 30, 2),                               # +1.5 -> 2
    (-3, 1 << 30, -1),                             # -1.5 -> -1 (negative ties toward zero)
    (-5, 1 << 30, -2),                             # -2.5 -> -2
    (0, INT32_MIN, 0),
])
def test_srdhm_corner_cases(a, b, expected):
    assert saturating_rounding_doubling_high_mul(a, b) == expected
    assert ref_srdhm(a, b) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=50))
def test_srdhm_matches_reference(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    got = saturating_rounding_doubling_high_mul(a, b)
    assert got.tolist() == [ref_srdhm(x, y) for x, y in pairs]


def test_srdhm_rejects_values_outside_int32():
    with pytest.raises(ValueError):
        saturating_rounding_doubling_high_mul(1 << 31, 1)


# --- RoundingDivideByPOT ------------------------------------------------------------------

@pytest.mark.parametrize("x, exponent, expected", [
    (5, 1, 3), (-5, 1, -3),                        # ties away from zero
    (-1, 1, -1), (1, 1, 1), (-3, 1, -2),
    (-6, 2, -2), (-2, 2, -1), (2, 2, 1), (-7, 2, -2),
    (INT32_MIN, 31, -1), (INT32_MAX, 31, 1),
    (-(1 << 30), 31, -1), (1 << 30, 31, 1), ((1 << 30) - 1, 31, 0), (-(1 << 30) + 1, 31, 0),
    (INT32_MIN, 0, INT32_MIN), (INT32_MAX, 0, INT32_MAX),
])
def test_rdbpot_corner_cases(x, exponent, expected):
    assert rounding_divide_by_pot(x, exponent) == expected


CORNERS = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, INT32_MAX - 1, INT32_MAX]


@pytest.mark.parametrize("exponent", range(32))
def test_rdbpot_every_exponent_on_corners_and_ties(exponent):
    half = 1 << max(exponent - 1, 0)
    ties = [sign * (2 * k + 1) * half for k in range(3) for sign in (1, -1)] if exponent else []
    values = CORNERS + [v for v in ties if INT32_MIN <= v <= INT32_MAX]
    got = rounding_divide_by_pot(np.array(values), exponent)
    assert got.tolist() == [ref_rdbpot(v, exponent) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(int32s, st.integers(0, 31)), min_size=1, max_size=50))
def test_rdbpot_matches_reference(pairs):
    x = np.array([p[0] for p in pairs])
    exponent = np.array([p[1] for p in pairs])
    assert rounding_divide_by_pot(x, exponent).tolist() == [ref_rdbpot(*p) for p in pairs]


def test_rdbpot_rejects_exponent_out_of_range():
    with pytest.raises(ValueError):
        rounding_divide_by_pot(1, 32)
    with pytest.raises(ValueError):
        rounding_divide_by_pot(1, -1)


# --- MultiplyByQuantizedMultiplier ---------------------------------------------------------

def test_mbqm_double_and_single_rounding_differ_on_a_known_case():
    # M = 0.25, x = -6: exact -1.5. Double rounding: SRDHM(-6, 2**30) = -3 (-3.5 rounded
    # toward zero), then RDBPOT(-3, 1) = -2. Single rounding: floor(-1.5 + 0.5) = -1.
    assert multiply_by_quantized_multiplier(-6, 1 << 30, -1) == -2
    assert multiply_by_quantized_multiplier(-6, 1 << 30, -1, single_rounding=True) == -1


def test_mbqm_identity_multiplier():
    m0, shift = quantize_multiplier(1.0)
    small = np.arange(-1000, 1001)
    assert np.array_equal(multiply_by_quantized_multiplier(small, m0, shift), small)
    assert np.array_equal(multiply_by_quantized_multiplier(small, m0, shift, single_rounding=True), small)
    # x * 2**shift is an int32 product in TFLite: it wraps for |x| >= 2**30.
    assert multiply_by_quantized_multiplier(INT32_MAX, m0, shift) == -1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(int32s, st.integers(0, INT32_MAX), st.integers(-31, 31)),
                min_size=1, max_size=40))
def test_mbqm_double_rounding_matches_reference(triples):
    x, m0, shift = (np.array(column) for column in zip(*triples))
    got = multiply_by_quantized_multiplier(x, m0, shift)
    assert got.tolist() == [ref_mbqm(*t) for t in triples]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(int32s, st.integers(0, INT32_MAX), st.integers(-31, 30)),
                min_size=1, max_size=40))
def test_mbqm_single_rounding_matches_reference(triples):
    x, m0, shift = (np.array(column) for column in zip(*triples))
    got = multiply_by_quantized_multiplier(x, m0, shift, single_rounding=True)
    assert got.tolist() == [ref_mbqm_single(*t) for t in triples]


def test_mbqm_broadcasts_per_channel_and_returns_int_for_scalars():
    x = np.arange(-40, 40).reshape(2, 10, 4) * 1000
    m0 = np.array([1 << 30, 1500000000, 2000000000, INT32_MAX])
    shift = np.array([-3, 0, 2, -31])
    got = multiply_by_quantized_multiplier(x, m0, shift)
    expected = [[[ref_mbqm(int(v), int(m0[c]), int(shift[c])) for c, v in enumerate(row)]
                 for row in plane] for plane in x]
    assert got.tolist() == expected
    scalar = multiply_by_quantized_multiplier(100, 1 << 30, -2)
    assert type(scalar) is int and scalar == ref_mbqm(100, 1 << 30, -2)


def test_mbqm_single_rounding_rejects_shift_31():
    with pytest.raises(ValueError):
        multiply_by_quantized_multiplier(1, 1 << 30, 31, single_rounding=True)


# --- QuantizeMultiplier ------------------------------------------------------------------

@pytest.mark.parametrize("real, expected", [
    (0.0, (0, 0)),
    (1.0, (1 << 30, 1)),
    (0.5, (1 << 30, 0)),
    (0.75, (1610612736, 0)),
    (1 - 2.0 ** -33, (1 << 30, 1)),      # rounds to 2**31: the fix-up halves it
    (2.0 ** -32, (1 << 30, -31)),        # smallest exponent kept
    (2.0 ** -33, (0, 0)),                # e < -31 flushes to zero
    (3.0, (3 << 29, 2)),
])
def test_quantize_multiplier_known_values(real, expected):
    assert quantize_multiplier(real) == expected


def test_quantize_multiplier_single_rounding_saturates_large_exponents():
    assert quantize_multiplier(2.0 ** 31) == (1 << 30, 32)
    assert quantize_multiplier(2.0 ** 31, single_rounding=True) == (INT32_MAX, 30)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=2.0 ** -40, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_matches_exact_reference(real):
    assert quantize_multiplier(real) == ref_quantize_multiplier(real)


@settings(max_examples=100, deadline=None)
@given(st.integers(1 << 30, INT32_MAX), st.integers(-20, 20))
def test_quantize_multiplier_inverts_exact_representation(m0, shift):
    # m0 * 2**(shift - 31) is exactly representable, so it must come back unchanged.
    assert quantize_multiplier(m0 * 2.0 ** (shift - 31)) == (m0, shift)


def test_wrap_int32_is_twos_complement():
    values = [INT32_MAX + 1, INT32_MIN - 1, 1 << 32, -(1 << 33) + 5, 7]
    assert wrap_int32(values).tolist() == [ref_wrap(v) for v in values] == [INT32_MIN, INT32_MAX, 0, 5, 7]


def test_round_half_away_from_zero():
    assert [round_half_away_from_zero(v) for v in (0.5, -0.5, 1.5, -1.5, 2.5, 0.49999999999999994)] \
        == [1, -1, 2, -2, 3, 0]


# --- activation ranges -------------------------------------------------------------------

@pytest.mark.parametrize("kind, scale, zp, dtype, expected", [
    ("NONE", 0.1, 3, "int8", (-128, 127)),
    ("NONE", 0.1, 3, "uint8", (0, 255)),
    ("RELU", 0.1, -5, "int8", (-5, 127)),
    ("relu", 0.1, -200, "int8", (-128, 127)),        # clamped to the dtype
    ("RELU6", 4.0, 0, "int8", (0, 2)),               # 6 / 4 = 1.5 -> 2 (half away)
    ("RELU6", 6 / 255, -128, "int8", (-128, 127)),
    ("RELU6", 0.05, 10, "int8", (10, 127)),
    ("RELU_N1_TO_1", 2.0, 3, "int8", (2, 4)),        # -0.5 -> -1, 0.5 -> 1
    ("RELU_N1_TO_1", 0.01, 0, "int8", (-100, 100)),
    # float32(6) / float32(2.4) is exactly 2.5 in float32 (-> 3); in double it is
    # 2.49999990... (-> 2). TFLite divides in float.
    ("RELU6", 2.4000000953674316, 0, "int8", (0, 3)),
])
def test_activation_range(kind, scale, zp, dtype, expected):
    assert activation_range(kind, scale, zp, dtype) == expected


def test_activation_range_rejects_unknown_kind_and_bad_scale():
    with pytest.raises(ValueError, match="TANH"):
        activation_range("TANH", 0.1, 0)
    with pytest.raises(ValueError):
        activation_range("RELU", 0.0, 0)
