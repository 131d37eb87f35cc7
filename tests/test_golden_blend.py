"""golden.blend against cv2.addWeighted, with zero mismatches.

cv2 facts these tests establish (opencv-python 5.1.0, x86-64 with AVX-512):

* Every (a, b) pair, for each parameter set below: the vector path
  ``fma(a, α, fma(b, β, γ))`` on images of 32..2**17 values, the scalar path
  ``fl(fma(a, α, fl(b * β)) + γ)`` on rows of fewer than 32 values, then round half to even
  and saturate (also beyond the int32 range and for float32 infinities).
* Which values take the scalar path (:func:`scalar_tail`), value by value, on images filled
  with pairs where the two paths differ, for sizes around every boundary.
* Random weights on random images of 1..64 columns, 1 and 3 channels.
"""
import math
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rasterflow.golden.blend import (
    BLOCK, BLOCKED_ABOVE, FLOAT32_MAX, VECTOR_STEP, add_weighted, add_weighted_scalar,
    add_weighted_vector, float32_weights, fma32, scalar_tail)

#: Every (a, b) pair: a 256 x 256 image pair, ``a`` down the rows, ``b`` along them.
PAIR_A, PAIR_B = (v.astype(np.uint8) for v in np.meshgrid(np.arange(256), np.arange(256),
                                                           indexing="ij"))

PARAMETERS = [
    pytest.param((0.5, 0.5, 0.0), id="mean-ties"),
    pytest.param((1.5, -0.5, 0.0), id="unsharp"),
    pytest.param((0.25, 0.75, 0.5), id="ties-with-gamma"),
    pytest.param((0.1, 0.9, 0.0), id="inexact-weights"),
    pytest.param((1 / 3, 1 / 3, 1 / 3), id="thirds"),
    pytest.param((0.1, 0.2, 0.3), id="paths-differ"),
    pytest.param((-0.3, 1.2, 100.5), id="negative-alpha"),
    pytest.param((2.0, -1.0, 0.5), id="negative-beta"),
    pytest.param((1.0, 1.0, -255.0), id="negative-gamma"),
    pytest.param((0.5, 1.0, 0.0), id="beta-one"),
    pytest.param((0.001, 0.999, 0.4999), id="near-half"),
    pytest.param((1e-8, 1e-8, 0.5 + 2 ** -25), id="tiny-weights"),
    pytest.param((2 ** -28, 1.0, 0.5), id="rounding-bounds-above"),
    pytest.param((-2 ** -24, 1.0, 0.5), id="rounding-bounds-below"),
    pytest.param((2 ** -24 + 2 ** -40, 1.0, 0.5), id="rounding-bounds-sticky"),
    pytest.param((1e9, 1e9, 0.0), id="beyond-int32"),
    pytest.param((0.5, 0.5, 3e9), id="large-gamma"),
    pytest.param((-0.5, -0.5, -3e9), id="large-negative-gamma"),
    pytest.param((3e38, 3e38, 3e38), id="float32-overflow"),
    pytest.param((-3e38, 3e38, 1e38), id="float32-overflow-mixed"),
    pytest.param((1e20, -1e20, 0.0), id="cancellation"),
]


def like_input(cv_result, img):
    """cv2 drops a trailing channel axis of 1; put it back so ranks match the golden model."""
    return cv_result[:, :, None] if img.ndim == 3 and cv_result.ndim == 2 else cv_result


def assert_equal(golden, expected, a, b):
    mismatches = np.argwhere(golden != expected)
    assert mismatches.size == 0, [(tuple(p), int(a[tuple(p)]), int(b[tuple(p)]),
                                   int(golden[tuple(p)]), int(expected[tuple(p)]))
                                  for p in mismatches[:10]]


def scalar_rows(img, width=16):
    """``img``'s values as the rows of a strided view ``width`` < 32 values wide, which cv2
    runs one row at a time, all on the scalar path."""
    flat = img.reshape(-1, width)
    padded = np.zeros((flat.shape[0], 64), np.uint8)
    padded[:, :width] = flat
    return padded[:, :width]


@pytest.mark.parametrize("weights", PARAMETERS)
def test_vector_path_equals_cv2_on_every_pair(weights):
    expected = cv2.addWeighted(PAIR_A, weights[0], PAIR_B, weights[1], weights[2])
    assert_equal(add_weighted(PAIR_A, PAIR_B, *weights), expected, PAIR_A, PAIR_B)
    assert_equal(add_weighted_vector(PAIR_A, PAIR_B, *weights), expected, PAIR_A, PAIR_B)


@pytest.mark.parametrize("weights", PARAMETERS)
def test_scalar_path_equals_cv2_on_every_pair(weights):
    a, b = scalar_rows(PAIR_A), scalar_rows(PAIR_B)
    expected = cv2.addWeighted(a, weights[0], b, weights[1], weights[2]).reshape(256, 256)
    assert_equal(add_weighted_scalar(PAIR_A, PAIR_B, *weights), expected, PAIR_A, PAIR_B)


@settings(deadline=None, max_examples=25)
@given(alpha=st.floats(-4, 4), beta=st.floats(-4, 4))
def test_paths_agree_without_gamma(alpha, beta):
    np.testing.assert_array_equal(add_weighted_vector(PAIR_A, PAIR_B, alpha, beta, 0),
                                  add_weighted_scalar(PAIR_A, PAIR_B, alpha, beta, 0))


def test_paths_differ_with_gamma():
    """The module docstring's example: fma(21, β, γ) is 4.5 exactly, fl(21 β) + γ is not."""
    a, b = np.zeros((1, 1), np.uint8), np.full((1, 1), 21, np.uint8)
    assert add_weighted_vector(a, b, 0.1, 0.2, 0.3)[0, 0] == 4
    assert add_weighted_scalar(a, b, 0.1, 0.2, 0.3)[0, 0] == 5


# --- which values take the scalar path --------------------------------------------------

DIFFERING = (0.1, 0.2, 0.3)
_DIFFERENT = np.argwhere(add_weighted_vector(PAIR_A, PAIR_B, *DIFFERING)
                         != add_weighted_scalar(PAIR_A, PAIR_B, *DIFFERING))


def revealing_images(size, seed):
    """Two images of ``size`` values drawn from the pairs whose paths differ, so cv2's
    output shows the path of every value."""
    pick = np.random.default_rng(seed).integers(0, len(_DIFFERENT), size)
    return (_DIFFERENT[pick, 0].astype(np.uint8).reshape(1, size),
            _DIFFERENT[pick, 1].astype(np.uint8).reshape(1, size))


_RNG = np.random.default_rng(2)
SIZES = sorted({
    *range(1, 3 * BLOCK + 40),
    *(BLOCKED_ABOVE + d for d in range(-BLOCK - 8, 2 * BLOCK + 8, 3)),
    *(k * BLOCK + r for k in (1, 2, 100, 1023, 1025, 3000, 8191) for r in (0, 1, 31, 32, 33)),
    *(int(n) for n in _RNG.integers(BLOCKED_ABOVE, 3 << 20, 6)),
    *(int(k) * BLOCK + int(r) for k, r in zip(_RNG.integers(BLOCKED_ABOVE // BLOCK, 3 << 13, 6),
                                             _RNG.integers(0, VECTOR_STEP, 6))),
})


def test_scalar_tail_rule():
    assert [scalar_tail(n) for n in (1, 31, 32, 33, 127, 5000)] == [1, 31, 0, 0, 0, 0]
    assert [scalar_tail(BLOCKED_ABOVE + r) for r in (0, 1, 31, 32, BLOCK)] == [0, 1, 31, 0, 0]
    assert scalar_tail(5 * BLOCKED_ABOVE + 7 * BLOCK + 17) == 17


def test_scalar_tail_equals_cv2_value_by_value():
    for size in SIZES:
        a, b = revealing_images(size, seed=size)
        expected = cv2.addWeighted(a, DIFFERING[0], b, DIFFERING[1], DIFFERING[2])
        golden = add_weighted(a, b, *DIFFERING)
        assert_equal(golden, expected, a, b)
        # Not vacuous: every value of the tail differs from the vector path.
        tail = slice(size - scalar_tail(size), size)
        assert (golden[:, tail] != add_weighted_vector(a[:, tail], b[:, tail], *DIFFERING)).all()


@pytest.mark.parametrize("shape", [(7, 3), (3, 5, 2), (40, 1), (2, 16, 1), (43691, 3),
                                   (1, 43691, 3), (256, 513)])
def test_scalar_tail_counts_all_values_of_a_continuous_image(shape):
    """cv2 sees a continuous image as one row of ``H * W * C`` values."""
    size = math.prod(shape)
    a, b = (v.reshape(shape) for v in revealing_images(size, seed=size))
    expected = like_input(cv2.addWeighted(a, DIFFERING[0], b, DIFFERING[1], DIFFERING[2]), a)
    assert_equal(add_weighted(a, b, *DIFFERING), expected, a, b)


# --- random images and weights ----------------------------------------------------------

def random_pair(seed, h, w, channels):
    shape = (h, w) if channels is None else (h, w, channels)
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2))


weight_values = st.one_of(st.floats(-4, 4), st.integers(-64, 64).map(lambda k: k / 16))
gamma_values = st.one_of(st.floats(-300, 300), st.integers(-600, 600).map(lambda k: k / 2))


@settings(deadline=None, max_examples=150)
@given(seed=st.integers(0, 2 ** 32 - 1), h=st.integers(1, 8), w=st.integers(1, 64),
       channels=st.sampled_from([None, 1, 3]), alpha=weight_values, beta=weight_values,
       gamma=gamma_values)
def test_random_images_equal_cv2(seed, h, w, channels, alpha, beta, gamma):
    a, b = random_pair(seed, h, w, channels)
    expected = like_input(cv2.addWeighted(a, alpha, b, beta, gamma), a)
    assert_equal(add_weighted(a, b, alpha, beta, gamma), expected, a, b)


@pytest.mark.parametrize("width", range(1, 41))
def test_narrow_images_equal_cv2(width):
    for channels in (None, 3):
        a, b = random_pair(width, 3, width, channels)
        for alpha, beta, gamma in (DIFFERING, (-0.3, 1.2, 100.5), (0.5, 0.5, 0.0)):
            expected = like_input(cv2.addWeighted(a, alpha, b, beta, gamma), a)
            assert_equal(add_weighted(a, b, alpha, beta, gamma), expected, a, b)


# --- fma32 against exact rational arithmetic --------------------------------------------

def nearest_float32(x: Fraction) -> float:
    """``x`` rounded to float32, nearest, ties to even, by exact arithmetic."""
    if x == 0:
        return 0.0
    exponent = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** exponent > abs(x):
        exponent -= 1
    ulp = Fraction(2) ** (max(exponent, -126) - 23)     # subnormals share the last ulp
    result = round(x / ulp) * ulp                        # Fraction rounds half to even
    return math.copysign(math.inf, x) if abs(result) > FLOAT32_MAX else float(result)


def fma_inputs(seed, count=4000):
    """``x``, ``y``, ``z``: random bytes, float32 weights of random magnitude (subnormals
    included), and addends near ``-x * y`` (cancellation), near it in magnitude, or short
    dyadic values (ties)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, count)
    y = (rng.uniform(-1, 1, count) * 2.0 ** rng.integers(-140, 120, count)).astype(np.float32)
    y[::7] = (rng.integers(-2 ** 12, 2 ** 12, len(y[::7])) / 2.0 ** 10).astype(np.float32)
    kind = rng.integers(0, 3, count)
    near = (-x * y.astype(np.float64) * (1 + rng.uniform(-1e-6, 1e-6, count)))
    z = np.where(kind == 0, near, np.where(kind == 1, -near * rng.uniform(-2, 2, count),
                                           rng.integers(-2 ** 12, 2 ** 12, count) / 2.0 ** 9))
    with np.errstate(over="ignore"):
        return x, y, z.astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_fma32_is_correctly_rounded(seed):
    x, y, z = fma_inputs(seed)
    got = fma32(x, y, z)
    for k in range(len(x)):
        exact = int(x[k]) * Fraction(float(y[k])) + Fraction(float(z[k]))
        assert got[k] == nearest_float32(exact), (int(x[k]), float(y[k]), float(z[k]))


def test_fma32_passes_infinities():
    assert fma32(3, np.float32(2.0), np.float32(np.inf)) == np.inf
    assert fma32(255, np.float32(FLOAT32_MAX), np.float32(FLOAT32_MAX)) == np.inf
    assert fma32(255, np.float32(-FLOAT32_MAX), np.float32(0)) == -np.inf


# --- arguments ---------------------------------------------------------------------------

U8 = np.zeros((2, 3), np.uint8)


@pytest.mark.parametrize("call, message", [
    (lambda: add_weighted(U8.astype(np.int16), U8, 1, 1, 0),
     r"a must be a uint8 image, H x W or H x W x C, not int16 of shape \(2, 3\)"),
    (lambda: add_weighted(U8, U8.astype(np.float32), 1, 1, 0), r"b must be a uint8 image"),
    (lambda: add_weighted(U8.reshape(-1), U8.reshape(-1), 1, 1, 0),
     r"a must be a uint8 image, H x W or H x W x C, not uint8 of shape \(6,\)"),
    (lambda: add_weighted(U8, U8.T, 1, 1, 0),
     r"b must have the shape of a, \(2, 3\), not \(3, 2\)"),
    (lambda: add_weighted_vector(U8, U8[:, :, None], 1, 1, 0), r"b must have the shape of a"),
    (lambda: add_weighted(U8, U8, math.inf, 1, 0), r"alpha must be a real number in "
     r"-3\.4028234663852886e\+38\.\.3\.4028234663852886e\+38 \(finite as a float32\), not inf"),
    (lambda: add_weighted(U8, U8, 1, math.nan, 0), r"beta must be a real number .* not nan"),
    (lambda: add_weighted_scalar(U8, U8, 1, 1, 1e39), r"gamma must be a real number .* not 1e\+39"),
    (lambda: add_weighted(U8, U8, True, 1, 0), r"alpha must be a real number .* not True"),
    (lambda: add_weighted(U8, U8, 1, "1", 0), r"beta must be a real number .* not '1'"),
    (lambda: float32_weights(1, 1, None), r"gamma must be a real number .* not None"),
    (lambda: float32_weights(10 ** 400, 1, 0), r"alpha must be a real number .* not 1000"),
])
def test_arguments_are_validated(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_weights_round_to_float32():
    assert float32_weights(0.1, -1.5, 3) == (np.float32(0.1), np.float32(-1.5), np.float32(3))
    assert float32_weights(FLOAT32_MAX, -FLOAT32_MAX, 0)[0] == np.finfo(np.float32).max
