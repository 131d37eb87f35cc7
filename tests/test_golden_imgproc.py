"""golden.imgproc against the OpenCV call each model defines, with zero mismatches.

cv2 facts these tests rely on (opencv-python 5.0, checked by the tests themselves):

* GaussianBlur on uint8 is an exact integer pipeline (Q0.8 taps, row pass, column pass,
  ``(v + 2**15) >> 16``) on every image size; for images 1 pixel high/wide cv2 drops the
  kernel on that axis, which is the identity the Q0.8 taps give anyway (they sum to 256).
* blur on uint8 divides in Q23 fixed point; that equals round-half-up of s / k**2
  (test_box_fixed_point_division_is_round_half_up).
* Sobel ksize=1 is a 3-tap derivative with *no* smoothing across it ([1] on the other axis),
  and accepts orders up to 2. Laplacian ksize 1 and 3 are fixed 3x3 kernels.
* medianBlur always replicates the border, also on images smaller than the window.
* erode/dilate's default border value (DBL_MAX) becomes the dtype max / min: never wins.
* threshold with a negative level and THRESH_TRUNC gives 0 (the level saturates).
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rasterflow.golden.border import BORDERS
from rasterflow.golden.filters import sepfilter2d
from rasterflow.golden.imgproc import (
    MORPH_SHAPES, RGB2GRAY_WEIGHTS, THRESHOLD_TYPES, box, channel_min, dilate, erode, gaussian,
    gaussian_kernel, gaussian_kernel_float, gradient_magnitude, laplacian, median, rgb2gray,
    scharr, sobel, sobel_kernels, structuring_element, threshold)

DATA = Path(__file__).parent / "data"
CV_BORDER = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
}
CV_MORPH = {"rect": cv2.MORPH_RECT, "cross": cv2.MORPH_CROSS, "ellipse": cv2.MORPH_ELLIPSE}
CV_THRESH = {
    "binary": cv2.THRESH_BINARY, "binary_inv": cv2.THRESH_BINARY_INV,
    "trunc": cv2.THRESH_TRUNC, "tozero": cv2.THRESH_TOZERO,
    "tozero_inv": cv2.THRESH_TOZERO_INV,
}
ODD_SIZES = (1, 3, 5, 7, 9, 11, 13, 15)
SIGMAS = (0, 0.5, 0.8, 1.1, 1.5, 2.0, 3.1, 5.0)
DERIVATIVES = [(dx, dy) for dx in range(3) for dy in range(3) if dx + dy >= 1]
FAST = settings(deadline=None, max_examples=40)


def load(name):
    img = cv2.imread(str(DATA / name), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"missing test image {name}"
    return img


IMAGES = {name: load(name) for name in ("camera.png", "astronaut.png", "chelsea.png")}


def like_input(cv_result, img):
    """cv2 drops a trailing channel axis of 1; put it back so ranks match the golden model."""
    return cv_result[:, :, None] if img.ndim == 3 and cv_result.ndim == 2 else cv_result


def assert_equal_cv2(golden, cv_result, img):
    np.testing.assert_array_equal(golden, like_input(cv_result, img))


def random_image(seed, h, w, channels):
    shape = (h, w) if channels is None else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def images(max_side=20):
    """Random uint8 images H x W, H x W x 1 or H x W x 3, tiny sizes included."""
    return st.builds(random_image, st.integers(0, 2 ** 32 - 1), st.integers(1, max_side),
                     st.integers(1, max_side), st.sampled_from([None, 1, 3]))


def tiny_images(ksize):
    """Images around the window size: H or W = K//2 + 1, single rows / columns, odd sizes."""
    r = ksize // 2
    sizes = {(r + 1, r + 1), (1, ksize), (ksize, 1), (r + 1, 2 * ksize + 1), (2, 3), (1, 1)}
    return [random_image(h * 31 + w, h, w, c) for h, w in sorted(sizes) for c in (None, 3)]


# --- Gaussian ------------------------------------------------------------------------------


@pytest.mark.parametrize("ksize", ODD_SIZES)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_double_kernel_equals_cv2_bit_for_bit(ksize, sigma):
    """The doubles quantized by gaussian_kernel are exactly OpenCV's (softfloat exp ported)."""
    expected = cv2.getGaussianKernel(ksize, sigma, ktype=cv2.CV_64F).ravel().tolist()
    assert gaussian_kernel_float(ksize, sigma) == expected


@pytest.mark.parametrize("ksize", ODD_SIZES)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_kernel_is_q8_symmetric_and_sums_to_256(ksize, sigma):
    taps = gaussian_kernel(ksize, sigma)
    assert len(taps) == ksize and sum(taps) == 256
    assert taps == taps[::-1] and all(t >= 0 for t in taps)


def test_gaussian_kernel_fixed_tables():
    assert gaussian_kernel(3) == (64, 128, 64)
    assert gaussian_kernel(5) == (16, 64, 96, 64, 16)
    assert gaussian_kernel(7) == (8, 28, 56, 72, 56, 28, 8)
    assert gaussian_kernel(9) == (4, 13, 30, 51, 60, 51, 30, 13, 4)


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("ksize", ODD_SIZES[1:])
@pytest.mark.parametrize("border", BORDERS)
def test_gaussian_shared_images_equal_cv2(name, ksize, border):
    img = IMAGES[name]
    assert_equal_cv2(gaussian(img, ksize, 0, border),
                     cv2.GaussianBlur(img, (ksize, ksize), 0, borderType=CV_BORDER[border]), img)


@pytest.mark.parametrize("ksize", ODD_SIZES[1:])
@pytest.mark.parametrize("sigma", SIGMAS[1:])
def test_gaussian_sigmas_equal_cv2(ksize, sigma):
    img = IMAGES["chelsea.png"]
    assert_equal_cv2(gaussian(img, ksize, sigma), cv2.GaussianBlur(img, (ksize, ksize), sigma),
                     img)


def test_gaussian_is_sepfilter_half_up():
    img = IMAGES["camera.png"]
    taps = np.array(gaussian_kernel(5))
    np.testing.assert_array_equal(gaussian(img, 5),
                                  sepfilter2d(img, taps, taps, 16, "half_up"))


@FAST
@given(img=images(), ksize=st.sampled_from(ODD_SIZES),
       sigma=st.one_of(st.just(0), st.floats(0.3, 8.0)), border=st.sampled_from(BORDERS))
def test_gaussian_random_equals_cv2(img, ksize, sigma, border):
    assert_equal_cv2(gaussian(img, ksize, sigma, border),
                     cv2.GaussianBlur(img, (ksize, ksize), sigma, borderType=CV_BORDER[border]),
                     img)


# --- box -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ksize", ODD_SIZES)
def test_box_fixed_point_division_is_round_half_up(ksize):
    """OpenCV's ColumnSum<ushort, uchar> (box_filter.simd.hpp) divides an 8-bit window sum s
    by d = k*k as ((s + delta) * scale) >> 23 with a Q23 reciprocal; for every reachable s
    that is round-half-up s / d, which box() uses. (d = 1 skips the division.)"""
    d = ksize * ksize
    s = np.arange(255 * d + 1, dtype=np.int64)
    if d == 1:
        opencv = s
    else:
        scale = (1 << 23) // d
        fraction_below_half = ((1 << 23) - scale * d) * 2 < d
        scale += not fraction_below_half
        delta = d // 2 + fraction_below_half
        opencv = ((s + delta) * scale) >> 23
    np.testing.assert_array_equal(opencv, (2 * s + d) // (2 * d))


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("ksize", (1, 3, 5, 9, 15))
@pytest.mark.parametrize("border", BORDERS)
def test_box_shared_images_equal_cv2(name, ksize, border):
    img = IMAGES[name]
    assert_equal_cv2(box(img, ksize, True, border),
                     cv2.blur(img, (ksize, ksize), borderType=CV_BORDER[border]), img)
    assert_equal_cv2(box(img, ksize, False, border),
                     cv2.boxFilter(img, cv2.CV_32S, (ksize, ksize), normalize=False,
                                   borderType=CV_BORDER[border]), img)


@FAST
@given(img=images(), ksize=st.sampled_from(ODD_SIZES), border=st.sampled_from(BORDERS))
def test_box_random_equals_cv2(img, ksize, border):
    assert_equal_cv2(box(img, ksize, True, border),
                     cv2.blur(img, (ksize, ksize), borderType=CV_BORDER[border]), img)
    assert_equal_cv2(box(img, ksize, False, border),
                     cv2.boxFilter(img, cv2.CV_32S, (ksize, ksize), normalize=False,
                                   borderType=CV_BORDER[border]), img)


# --- derivatives ---------------------------------------------------------------------------


@pytest.mark.parametrize("ksize", (1, 3, 5, 7))
@pytest.mark.parametrize("dx, dy", DERIVATIVES)
def test_sobel_kernels_equal_cv2_get_deriv_kernels(ksize, dx, dy):
    kx, ky = sobel_kernels(dx, dy, ksize)
    cv_kx, cv_ky = cv2.getDerivKernels(dx, dy, ksize, normalize=False, ktype=cv2.CV_64F)
    np.testing.assert_array_equal(kx, cv_kx.ravel())
    np.testing.assert_array_equal(ky, cv_ky.ravel())


def test_sobel_ksize1_has_no_smoothing():
    kx, ky = sobel_kernels(1, 0, 1)
    assert kx.tolist() == [-1, 0, 1] and ky.tolist() == [1]
    kx, ky = sobel_kernels(2, 1, 1)
    assert kx.tolist() == [1, -2, 1] and ky.tolist() == [-1, 0, 1]


@pytest.mark.parametrize("ksize", (1, 3, 5, 7))
@pytest.mark.parametrize("dx, dy", DERIVATIVES)
@pytest.mark.parametrize("border", BORDERS)
def test_sobel_shared_image_equals_cv2(ksize, dx, dy, border):
    img = IMAGES["chelsea.png"]
    assert_equal_cv2(sobel(img, dx, dy, ksize, border),
                     cv2.Sobel(img, cv2.CV_16S, dx, dy, ksize=ksize,
                               borderType=CV_BORDER[border]), img)


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("border", BORDERS)
def test_sobel_scharr_laplacian_all_shared_images_equal_cv2(name, border):
    img = IMAGES[name]
    b = CV_BORDER[border]
    for dx, dy in ((1, 0), (0, 1)):
        assert_equal_cv2(sobel(img, dx, dy, 3, border),
                         cv2.Sobel(img, cv2.CV_16S, dx, dy, ksize=3, borderType=b), img)
        assert_equal_cv2(scharr(img, dx, dy, border),
                         cv2.Scharr(img, cv2.CV_16S, dx, dy, borderType=b), img)
    for ksize in (1, 3):
        assert_equal_cv2(laplacian(img, ksize, border),
                         cv2.Laplacian(img, cv2.CV_16S, ksize=ksize, borderType=b), img)


def test_sobel_saturates_int16():
    """7x7 second derivatives of a hard edge exceed int16: cv2 saturates, and so must we."""
    img = np.zeros((16, 16), np.uint8)
    img[:, 8:] = 255
    got = sobel(img, 2, 0, 7)
    assert got.max() == 32767 and got.min() == -32768
    np.testing.assert_array_equal(got, cv2.Sobel(img, cv2.CV_16S, 2, 0, ksize=7))


@FAST
@given(img=images(), ksize=st.sampled_from((1, 3, 5, 7)), order=st.sampled_from(DERIVATIVES),
       border=st.sampled_from(BORDERS))
def test_derivatives_random_equal_cv2(img, ksize, order, border):
    dx, dy = order
    b = CV_BORDER[border]
    assert_equal_cv2(sobel(img, dx, dy, ksize, border),
                     cv2.Sobel(img, cv2.CV_16S, dx, dy, ksize=ksize, borderType=b), img)
    if dx + dy == 1:
        assert_equal_cv2(scharr(img, dx, dy, border),
                         cv2.Scharr(img, cv2.CV_16S, dx, dy, borderType=b), img)
    if ksize in (1, 3):
        assert_equal_cv2(laplacian(img, ksize, border),
                         cv2.Laplacian(img, cv2.CV_16S, ksize=ksize, borderType=b), img)


# --- gradient magnitude --------------------------------------------------------------------


def test_gradient_magnitude_l2_exhaustive():
    """Every (gx, gy) with |gx|, |gy| <= 256 reaches every s = gx**2 + gy**2 <= 65536 that
    exists, and the result saturates for s >= 65281 (sqrt >= 255.5), beyond which both
    sides are 255 (monotone). The float reference is exact here: s < 2**53, and sqrt(s)
    + 0.5 is never within an ulp of an integer for integer s < 2**32."""
    values = np.arange(-256, 257, dtype=np.int16)
    gx, gy = np.meshgrid(values, values)
    s = gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2
    expected = np.minimum(255, np.floor(np.sqrt(s) + 0.5))
    np.testing.assert_array_equal(gradient_magnitude(gx, gy, "l2"), expected)


def test_gradient_magnitude_extremes():
    rng = np.random.default_rng(5)
    gx = np.concatenate([rng.integers(-32768, 32768, 10000), [-32768, 32767, -32768, 0, 255]])
    gy = np.concatenate([rng.integers(-300, 300, 10000), [-32768, 32767, 0, -32768, 18]])
    gx, gy = gx.astype(np.int16), gy.astype(np.int16)
    s = gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2
    np.testing.assert_array_equal(gradient_magnitude(gx, gy, "l2"),
                                  np.minimum(255, np.floor(np.sqrt(s) + 0.5)))
    l1 = np.abs(gx.astype(np.int64)) + np.abs(gy.astype(np.int64))
    np.testing.assert_array_equal(gradient_magnitude(gx, gy, "l1"), np.minimum(255, l1))


def test_gradient_magnitude_of_sobel_shared_image():
    img = IMAGES["camera.png"]
    gx = cv2.Sobel(img, cv2.CV_16S, 1, 0)
    gy = cv2.Sobel(img, cv2.CV_16S, 0, 1)
    s = gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2
    got = gradient_magnitude(sobel(img, 1, 0), sobel(img, 0, 1), "l2")
    np.testing.assert_array_equal(got, np.minimum(255, np.floor(np.sqrt(s) + 0.5)))
    np.testing.assert_array_equal(
        gradient_magnitude(gx, gy, "l1"), cv2.convertScaleAbs(
            np.abs(gx.astype(np.int32)) + np.abs(gy.astype(np.int32))))


# --- median / morphology -------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("ksize", (3, 5, 7))
def test_median_shared_images_equal_cv2(name, ksize):
    img = IMAGES[name]
    assert_equal_cv2(median(img, ksize), cv2.medianBlur(img, ksize), img)


@FAST
@given(img=images(), ksize=st.sampled_from((3, 5, 7)))
def test_median_random_equals_cv2(img, ksize):
    assert_equal_cv2(median(img, ksize), cv2.medianBlur(img, ksize), img)


@pytest.mark.parametrize("shape", MORPH_SHAPES)
@pytest.mark.parametrize("ksize", ODD_SIZES)
def test_structuring_element_equals_cv2(shape, ksize):
    np.testing.assert_array_equal(structuring_element(shape, ksize),
                                  cv2.getStructuringElement(CV_MORPH[shape], (ksize, ksize)))


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("shape", MORPH_SHAPES)
@pytest.mark.parametrize("ksize", (3, 5, 7))
def test_erode_dilate_shared_images_equal_cv2(name, shape, ksize):
    img = IMAGES[name]
    element = cv2.getStructuringElement(CV_MORPH[shape], (ksize, ksize))
    assert_equal_cv2(erode(img, ksize, shape), cv2.erode(img, element), img)
    assert_equal_cv2(dilate(img, ksize, shape), cv2.dilate(img, element), img)


@FAST
@given(img=images(), shape=st.sampled_from(MORPH_SHAPES), ksize=st.sampled_from(ODD_SIZES))
def test_erode_dilate_random_equal_cv2(img, shape, ksize):
    element = cv2.getStructuringElement(CV_MORPH[shape], (ksize, ksize))
    assert_equal_cv2(erode(img, ksize, shape), cv2.erode(img, element), img)
    assert_equal_cv2(dilate(img, ksize, shape), cv2.dilate(img, element), img)


# --- tiny images, every window op and border -------------------------------------------------


@pytest.mark.parametrize("ksize", (3, 5, 7, 15))
def test_window_ops_on_tiny_images_equal_cv2(ksize):
    for img in tiny_images(ksize):
        for border in BORDERS:
            b = CV_BORDER[border]
            assert_equal_cv2(gaussian(img, ksize, 0, border),
                             cv2.GaussianBlur(img, (ksize, ksize), 0, borderType=b), img)
            assert_equal_cv2(box(img, ksize, True, border),
                             cv2.blur(img, (ksize, ksize), borderType=b), img)
            if ksize <= 7:
                assert_equal_cv2(sobel(img, 1, 1, ksize, border),
                                 cv2.Sobel(img, cv2.CV_16S, 1, 1, ksize=ksize, borderType=b),
                                 img)
        if ksize <= 7:
            assert_equal_cv2(median(img, ksize), cv2.medianBlur(img, ksize), img)
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ksize, ksize))
        assert_equal_cv2(erode(img, ksize, "ellipse"), cv2.erode(img, element), img)
        assert_equal_cv2(dilate(img, ksize, "ellipse"), cv2.dilate(img, element), img)


# --- point operations ----------------------------------------------------------------------


@pytest.mark.parametrize("type", THRESHOLD_TYPES)
def test_threshold_exhaustive_equals_cv2(type):
    """Every uint8 value, every level from -2 to 257, a spread of maxvals."""
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for level in range(-2, 258):
        for maxval in (0, 1, 128, 254, 255):
            expected = cv2.threshold(img, level, maxval, CV_THRESH[type])[1]
            np.testing.assert_array_equal(threshold(img, level, maxval, type), expected,
                                          err_msg=f"level={level} maxval={maxval}")


@pytest.mark.parametrize("name", IMAGES)
def test_threshold_shared_images_equal_cv2(name):
    img = IMAGES[name]
    for type in THRESHOLD_TYPES:
        assert_equal_cv2(threshold(img, 100, 200, type),
                         cv2.threshold(img, 100, 200, CV_THRESH[type])[1], img)


def test_rgb2gray_exhaustive_equals_cv2():
    """All 2**24 colours, one red value per call: the weights in GUIDE hold on this cv2."""
    assert sum(RGB2GRAY_WEIGHTS) == 1 << 15
    green, blue = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
    for red in range(256):
        img = np.stack([np.full_like(green, red), green, blue], axis=2)
        assert_equal_cv2(rgb2gray(img), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], img)


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png"])
def test_rgb2gray_and_channel_min_shared_images(name):
    img = IMAGES[name]
    np.testing.assert_array_equal(rgb2gray(img)[:, :, 0], cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(channel_min(img)[:, :, 0], img.min(axis=2))


def test_channel_min_keeps_dtype_and_rank():
    img = np.array([[[3, -7, 5], [0, 1, 2]]], dtype=np.int16)
    got = channel_min(img)
    assert got.dtype == np.int16 and got.shape == (1, 2, 1)
    np.testing.assert_array_equal(got[:, :, 0], [[-7, 0]])


# --- arguments -----------------------------------------------------------------------------


def test_bad_arguments_raise():
    img = np.zeros((8, 8), np.uint8)
    cases = [
        (lambda: gaussian_kernel(4), "ksize must be"),
        (lambda: gaussian_kernel(17), "ksize must be"),
        (lambda: gaussian_kernel(5, float("nan")), "sigma must be"),
        (lambda: gaussian(img.astype(np.int16), 3), "img must be uint8"),
        (lambda: gaussian(img, 3, border="wrap"), "border must be one of"),
        (lambda: box(img, 2), "ksize must be"),
        (lambda: sobel(img, 3, 0), "dx must be"),
        (lambda: sobel(img, 0, 0), "dx \\+ dy must be"),
        (lambda: sobel(img, 1, 0, 9), "ksize must be"),
        (lambda: scharr(img, 1, 1), "\\(dx, dy\\) must be"),
        (lambda: laplacian(img, 5), "ksize must be"),
        (lambda: gradient_magnitude(img, img), "gx and gy must be int16"),
        (lambda: gradient_magnitude(img.astype(np.int16), img.astype(np.int16), "linf"),
         "norm must be"),
        (lambda: median(img, 9), "ksize must be"),
        (lambda: structuring_element("diamond", 3), "shape must be one of"),
        (lambda: erode(img, 3, "diamond"), "shape must be one of"),
        (lambda: threshold(img, 3, 256), "maxval must be"),
        (lambda: threshold(img, 3.5, 255), "level must be"),
        (lambda: threshold(img, 3, 255, "otsu"), "type must be one of"),
        (lambda: rgb2gray(img), "img must be H x W x 3"),
        (lambda: channel_min(img), "img must be an integer H x W x C"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
