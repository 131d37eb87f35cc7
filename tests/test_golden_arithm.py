"""golden.arithm against the OpenCV call each model defines, with zero mismatches.

cv2 facts these tests rely on (opencv-python 5.1, checked by the tests themselves):

* add / subtract saturate on every type, int32 included (no wrap-around), on every image
  size (SIMD body and scalar tail alike);
* absdiff returns the input type, saturated: on signed types ``|a - b|`` above the maximum
  gives the maximum (int8 ``absdiff(-128, 127) == 127``, int32 ``|MIN - MAX| == 2**31 - 1``);
* every op returns the input type; cv2 drops a trailing channel axis of 1.
"""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from rasterflow.golden import arithm
from rasterflow.golden.pixel import DTYPES

BINARY = {
    "add": (arithm.add, cv2.add),
    "subtract": (arithm.subtract, cv2.subtract),
    "absdiff": (arithm.absdiff, cv2.absdiff),
    "min": (arithm.minimum, cv2.min),
    "max": (arithm.maximum, cv2.max),
    "bitwise_and": (arithm.bitwise_and, cv2.bitwise_and),
    "bitwise_or": (arithm.bitwise_or, cv2.bitwise_or),
    "bitwise_xor": (arithm.bitwise_xor, cv2.bitwise_xor),
}
# Sizes around cv2's SIMD widths, so vector bodies and scalar tails both run.
SIZES = [(1, 1), (5, 7), (17, 33), (48, 64)]
FAST = settings(deadline=None, max_examples=60)


def random_image(rng, dtype, shape):
    """Uniform values with a fifth of them at the type's minimum or maximum."""
    info = np.iinfo(dtype)
    img = rng.integers(info.min, info.max, size=shape, dtype=np.int64, endpoint=True)
    extreme = rng.random(shape) < 0.2
    img[extreme] = rng.choice([info.min, info.max], size=int(extreme.sum()))
    return img.astype(dtype)


def assert_equal_cv2(got, expected, like):
    assert expected.dtype == like.dtype      # cv2 keeps the input type, absdiff too
    assert got.dtype == like.dtype and got.shape == like.shape
    np.testing.assert_array_equal(got, expected.reshape(like.shape))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY)
def test_binary_op_equals_cv2_random(op, dtype, channels):
    ours, theirs = BINARY[op]
    rng = np.random.default_rng([len(op), channels, DTYPES[dtype][0]])
    for height, width in SIZES:
        shape = (height, width, channels)
        a, b = random_image(rng, dtype, shape), random_image(rng, dtype, shape)
        assert_equal_cv2(ours(a, b), theirs(a, b), a)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("op", BINARY)
def test_binary_op_equals_cv2_every_8bit_pair(op, dtype):
    ours, theirs = BINARY[op]
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype)
    a, b = np.meshgrid(values, values)
    assert_equal_cv2(ours(a, b), theirs(a, b), a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY)
def test_binary_op_equals_cv2_extreme_pairs(op, dtype):
    """Every pair of min, min + 1, -1, 0, 1, max - 1, max (those in range)."""
    ours, theirs = BINARY[op]
    info = np.iinfo(dtype)
    corners = [v for v in (info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max)
               if info.min <= v <= info.max]
    a, b = (np.array(v, dtype=dtype) for v in np.meshgrid(corners, corners))
    assert_equal_cv2(ours(a, b), theirs(a, b), a)


@pytest.mark.parametrize("op, a, b, expected", [
    ("add", 2**31 - 1, 1, 2**31 - 1), ("add", -2**31, -1, -2**31),
    ("subtract", -2**31, 1, -2**31), ("subtract", 2**31 - 1, -1, 2**31 - 1),
    ("absdiff", -2**31, 2**31 - 1, 2**31 - 1),
])
def test_int32_saturates(op, a, b, expected):
    ours, theirs = BINARY[op]
    a, b = np.full((4, 20), a, np.int32), np.full((4, 20), b, np.int32)
    assert_equal_cv2(ours(a, b), theirs(a, b), a)
    assert (ours(a, b) == expected).all()


def test_absdiff_signed_saturates_to_input_type():
    a, b = np.array([[-128, 127, -1]], np.int8), np.array([[127, -128, 127]], np.int8)
    assert_equal_cv2(arithm.absdiff(a, b), cv2.absdiff(a, b), a)
    assert arithm.absdiff(a, b).tolist() == [[127, 127, 127]]


@st.composite
def image_pairs(draw):
    dtype = draw(st.sampled_from(list(DTYPES)))
    shape = (draw(st.integers(1, 9)), draw(st.integers(1, 40)), draw(st.sampled_from([1, 3])))
    return draw(arrays(dtype, shape)), draw(arrays(dtype, shape))


@FAST
@given(image_pairs(), st.sampled_from(list(BINARY)))
def test_binary_op_equals_cv2_hypothesis(pair, op):
    ours, theirs = BINARY[op]
    a, b = pair
    assert_equal_cv2(ours(a, b), theirs(a, b), a)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_not_equals_cv2(dtype, channels):
    rng = np.random.default_rng(channels)
    for height, width in SIZES:
        a = random_image(rng, dtype, (height, width, channels))
        assert_equal_cv2(arithm.bitwise_not(a), cv2.bitwise_not(a), a)


def cv2_magnitude(gx, gy, norm):
    if norm == "l1":
        return cv2.add(cv2.convertScaleAbs(gx), cv2.convertScaleAbs(gy))
    return cv2.convertScaleAbs(cv2.magnitude(gx.astype(np.float64), gy.astype(np.float64)))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_magnitude_equals_cv2_random(norm, channels):
    rng = np.random.default_rng(channels)
    for height, width in SIZES:
        shape = (height, width, channels)
        small = [rng.integers(-300, 301, shape).astype(np.int16) for _ in range(2)]
        full = [random_image(rng, "int16", shape) for _ in range(2)]
        for gx, gy in (small, full):    # around the 255 saturation, and int16's extremes
            got = arithm.magnitude(gx, gy, norm)
            expected = cv2_magnitude(gx, gy, norm)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, expected.reshape(shape))


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_magnitude_equals_cv2_every_small_pair(norm):
    """Every (gx, gy) in -300..300: all sums of squares up to past the saturation."""
    values = np.arange(-300, 301, dtype=np.int16)
    gx, gy = np.meshgrid(values, values)
    np.testing.assert_array_equal(arithm.magnitude(gx, gy, norm), cv2_magnitude(gx, gy, norm))


@pytest.mark.parametrize("call, message", [
    (lambda: arithm.add(np.zeros(3, np.uint8), np.zeros(3, np.int8)),
     r"b must have a's dtype and shape \(uint8 \(3,\)\), not int8 \(3,\)"),
    (lambda: arithm.absdiff(np.zeros((2, 3), np.int16), np.zeros((3, 2), np.int16)),
     r"b must have a's dtype and shape \(int16 \(2, 3\)\), not int16 \(3, 2\)"),
    (lambda: arithm.minimum(np.zeros(3, np.float32), np.zeros(3, np.float32)),
     "a must have dtype uint8, int8, uint16, int16, int32, not float32"),
    (lambda: arithm.bitwise_xor(np.zeros(3, np.uint8), np.zeros(3, np.uint32)),
     "b must have dtype uint8, int8, uint16, int16, int32, not uint32"),
    (lambda: arithm.bitwise_not(np.zeros(3, np.int64)),
     "a must have dtype uint8, int8, uint16, int16, int32, not int64"),
    (lambda: arithm.magnitude(np.zeros(3, np.int16), np.zeros(3, np.uint8), "l1"),
     "gx and gy must be int16 arrays of one shape"),
    (lambda: arithm.magnitude(np.zeros(3, np.int16), np.zeros(3, np.int16), "l3"),
     "norm must be one of l1, l2, not 'l3'"),
])
def test_invalid_arguments_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
