"""Golden models of the filter library, each bit-exact with one OpenCV call on uint8 images.

Every function states its exact integer arithmetic in its docstring; ``tests/
test_golden_imgproc.py`` proves each equal to OpenCV (opencv-python 5.0). Images are numpy
arrays H x W x C or H x W; filters work per channel and return the rank they were given
(``rgb2gray`` and ``channel_min`` take H x W x 3 / H x W x C and return H x W x 1).

Pure numpy: no OpenCV, no hardware imports.
"""
import math
import struct
from fractions import Fraction

import numpy as np

from .border import BORDERS, pad
from .filters import MAX_KERNEL_SIDE, as_hwc, filter2d, sepfilter2d

__all__ = [
    "ODD_SIZES", "SOBEL_SIZES", "MAX_SOBEL_ORDER", "LAPLACIAN_SIZES", "MEDIAN_SIZES",
    "GAUSSIAN_FRACTION_BITS", "gaussian_kernel_float", "gaussian_kernel", "gaussian", "box",
    "sobel_kernels", "sobel", "scharr", "laplacian", "gradient_magnitude",
    "median", "MORPH_SHAPES", "structuring_element", "erode", "dilate",
    "THRESHOLD_TYPES", "threshold", "RGB2GRAY_WEIGHTS", "rgb2gray", "channel_min",
]

#: ``ksize`` of ``gaussian``, ``box``, ``erode`` and ``dilate``: every odd size OpenCV takes,
#: up to the largest kernel the filters have.
ODD_SIZES = tuple(range(1, MAX_KERNEL_SIDE + 1, 2))
#: ``ksize`` of OpenCV's Sobel kernels (1: a 3-tap derivative without smoothing).
SOBEL_SIZES = (1, 3, 5, 7)
#: Highest derivative order (``dx``, ``dy``) of the Sobel kernels.
MAX_SOBEL_ORDER = 2
#: ``ksize`` of ``median``: the sizes with a median network (``hdl/sorting.py``).
MEDIAN_SIZES = (3, 5, 7)

#: Fraction bits of :func:`gaussian_kernel` taps (OpenCV's ``ufixedpoint16`` for 8-bit input).
GAUSSIAN_FRACTION_BITS = 8

#: OpenCV's fixed kernels for ``sigma <= 0`` (getGaussianKernelBitExact), times 256.
_BINOMIAL_TAPS = {
    1: (256,),
    3: (64, 128, 64),
    5: (16, 64, 96, 64, 16),
    7: (8, 28, 56, 72, 56, 28, 8),
    9: (4, 13, 30, 51, 60, 51, 30, 13, 4),
}

THRESHOLD_TYPES = ("binary", "binary_inv", "trunc", "tozero", "tozero_inv")

#: Q0.15 weights of ``cv2.COLOR_RGB2GRAY`` on 8-bit input (R, G, B); they sum to 2**15.
RGB2GRAY_WEIGHTS = (9798, 19235, 3735)

MORPH_SHAPES = ("rect", "cross", "ellipse")


def _check_uint8(img):
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"img must be uint8, not {img.dtype}")
    return img


def _check_border(border):
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")


def _check_ksize(ksize, allowed):
    if not isinstance(ksize, (int, np.integer)) or ksize not in allowed:
        shown = f"{min(allowed)}..{max(allowed)} odd" if len(allowed) > 4 else allowed
        raise ValueError(f"ksize must be one of {shown}, not {ksize!r}")


# --- Gaussian ---------------------------------------------------------------------------


def _f64(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


#: OpenCV's softfloat ``exp`` (core/src/softfloat.cpp ``f64_exp``): 2**(1/64) table, a
#: degree-5 polynomial, all in IEEE doubles. It is not correctly rounded, so libm's exp
#: differs from it in the last bit for many arguments; the Gaussian taps need its exact bits.
_EXP_TABLE_SCALE = 6
_EXP_POLY_A0 = _f64(0x3F83CE0F3E46F431)
_EXP_PRESCALE = _f64(0x3FF71547652B82FE) * float(1 << _EXP_TABLE_SCALE)
_EXP_POSTSCALE = 1.0 / float(1 << _EXP_TABLE_SCALE)
_EXP_MAX_ARG = float(3000 * (1 << _EXP_TABLE_SCALE))
_EXP_COEFFS = tuple(_f64(bits) / _EXP_POLY_A0 for bits in (
    0x3F55E7AA1566C2A4, 0x3F83B2A72B4F3CD3, 0x3FAC6B08D81FEC75, 0x3FCEBFBDFF82A45A,
    0x3FE62E42FEFA39F1)) + (1.0 / _EXP_POLY_A0,)
_EXP_TABLE = tuple(_f64(bits) for bits in (
    0x3FF0000000000000, 0x3FF02C9A3E778061, 0x3FF059B0D3158574, 0x3FF0874518759BC8,
    0x3FF0B5586CF9890F, 0x3FF0E3EC32D3D1A2, 0x3FF11301D0125B51, 0x3FF1429AAEA92DE0,
    0x3FF172B83C7D517B, 0x3FF1A35BEB6FCB75, 0x3FF1D4873168B9AA, 0x3FF2063B88628CD6,
    0x3FF2387A6E756238, 0x3FF26B4565E27CDD, 0x3FF29E9DF51FDEE1, 0x3FF2D285A6E4030B,
    0x3FF306FE0A31B715, 0x3FF33C08B26416FF, 0x3FF371A7373AA9CB, 0x3FF3A7DB34E59FF7,
    0x3FF3DEA64C123422, 0x3FF4160A21F72E2A, 0x3FF44E086061892D, 0x3FF486A2B5C13CD0,
    0x3FF4BFDAD5362A27, 0x3FF4F9B2769D2CA7, 0x3FF5342B569D4F82, 0x3FF56F4736B527DA,
    0x3FF5AB07DD485429, 0x3FF5E76F15AD2148, 0x3FF6247EB03A5585, 0x3FF6623882552225,
    0x3FF6A09E667F3BCD, 0x3FF6DFB23C651A2F, 0x3FF71F75E8EC5F74, 0x3FF75FEB564267C9,
    0x3FF7A11473EB0187, 0x3FF7E2F336CF4E62, 0x3FF82589994CCE13, 0x3FF868D99B4492ED,
    0x3FF8ACE5422AA0DB, 0x3FF8F1AE99157736, 0x3FF93737B0CDC5E5, 0x3FF97D829FDE4E50,
    0x3FF9C49182A3F090, 0x3FFA0C667B5DE565, 0x3FFA5503B23E255D, 0x3FFA9E6B5579FDBF,
    0x3FFAE89F995AD3AD, 0x3FFB33A2B84F15FB, 0x3FFB7F76F2FB5E47, 0x3FFBCC1E904BC1D2,
    0x3FFC199BDD85529C, 0x3FFC67F12E57D14B, 0x3FFCB720DCEF9069, 0x3FFD072D4A07897C,
    0x3FFD5818DCFBA487, 0x3FFDA9E603DB3285, 0x3FFDFC97337B9B5F, 0x3FFE502EE78B3FF6,
    0x3FFEA4AFA2A490DA, 0x3FFEFA1BEE615A27, 0x3FFF50765B6E4540, 0x3FFFA7C1819E90D8))


def _softfloat_exp(x):
    """``exp(x)`` for a finite double, bit-identical to OpenCV's ``softdouble`` exp."""
    if abs(x) >= 2048.0:  # OpenCV: biased exponent > 1023 + 10
        scaled = math.copysign(_EXP_MAX_ARG, x)
    else:
        scaled = x * _EXP_PRESCALE
    nearest = round(scaled)  # half to even, like cvRound / f64_roundToInt(round_near_even)
    biased_exponent = min(max((nearest >> _EXP_TABLE_SCALE) + 1023, 0), 2047)
    power_of_two = _f64(biased_exponent << 52)
    fraction = (scaled - nearest) * _EXP_POSTSCALE
    poly = _EXP_COEFFS[0]
    for coeff in _EXP_COEFFS[1:]:
        poly = poly * fraction + coeff
    table = _EXP_TABLE[nearest & ((1 << _EXP_TABLE_SCALE) - 1)]
    return power_of_two * _EXP_POLY_A0 * table * poly


def gaussian_kernel_float(ksize, sigma):
    """OpenCV's getGaussianKernelBitExact (smooth.dispatch.cpp) in IEEE doubles: the same
    operations in the same order, so the result is bit-identical to
    ``cv2.getGaussianKernel(ksize, sigma, cv2.CV_64F)`` (a list of ksize floats). ``ksize``
    odd 1..15; see :func:`gaussian_kernel` for the formula."""
    _check_ksize(ksize, ODD_SIZES)
    if not isinstance(sigma, (int, float)) or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number, not {sigma!r}")
    if sigma <= 0 and ksize in _BINOMIAL_TAPS:
        return [t / 256 for t in _BINOMIAL_TAPS[ksize]]
    if sigma > 0:
        sigma_x = float(sigma)
    else:
        # softdouble mulAdd is a fused multiply-add: one rounding of n*0.15 + 0.35.
        sigma_x = float(Fraction(ksize) * Fraction(0.15) + Fraction(0.35))
    scale_2x = -0.125 / (sigma_x * sigma_x)
    values = [_softfloat_exp(float(x * x) * scale_2x) for x in range(1 - ksize, 0, 2)]
    total = 0.0
    for v in values:
        total += v
    total = total * 2.0 + 1.0
    inv_total = 1.0 / total
    taps = [v * inv_total for v in values]
    return taps + [1.0 * inv_total] + taps[::-1]


def gaussian_kernel(ksize, sigma=0):
    """OpenCV's integer Gaussian taps for 8-bit images: Q0.8, symmetric, summing to 256.

    ``ksize`` odd 1..15. For ``sigma <= 0`` and ksize 1, 3, 5, 7, 9 OpenCV uses fixed
    binomial-like tables (e.g. ksize 5: 16 64 96 64 16; ksize 9 is 4 13 30 51 60 ..., not
    binomial). Otherwise the real kernel is ``k[i] = exp(-x_i**2 / (2 sigma**2)) / sum`` at
    ``x_i = i - ksize//2``, with ``sigma = 0.15*ksize + 0.35`` (fused multiply-add) when
    ``sigma <= 0``, in doubles exactly as OpenCV computes it (:func:`gaussian_kernel_float`),
    then quantized by error diffusion from the outside in (getGaussianKernelFixedPoint_ED)::

        err = 0
        for i < ksize//2:
            v = 256*k[i] + err;  q[i] = q[-1-i] = round_half_even(v);  err = v - q[i]
        q[centre] = 256 - 2*sum(q[:ksize//2])

    Returns a tuple of ints.
    """
    taps = gaussian_kernel_float(ksize, sigma)
    one = 1 << GAUSSIAN_FRACTION_BITS
    half = ksize // 2
    quantized = [0] * ksize
    err = 0.0
    for i in range(half):
        adjusted = taps[i] * one + err
        q = round(adjusted)  # Python round() on a float is half-to-even, like cvRound
        err = adjusted - q
        quantized[i] = quantized[ksize - 1 - i] = q
    quantized[half] = one - 2 * sum(quantized[:half])
    return tuple(quantized)


def gaussian(img, ksize, sigma=0, border="reflect101"):
    """``cv2.GaussianBlur(img, (ksize, ksize), sigma, borderType=border)`` on uint8.

    With ``k = gaussian_kernel(ksize, sigma)`` (Q0.8): a row pass ``r = sum k[j] * x``
    (Q8.8, < 2**16), a column pass ``v = sum k[i] * r`` (Q16.16), then
    ``out = saturate_uint8((v + 2**15) >> 16)``. Both passes are exact, so this is
    ``sepfilter2d(img, k, k, shift=16, rounding="half_up", border=border)``
    (``constant`` pads with 0).
    """
    img = _check_uint8(img)
    _check_border(border)
    taps = np.array(gaussian_kernel(ksize, sigma), dtype=np.int64)
    return sepfilter2d(img, taps, taps, shift=2 * GAUSSIAN_FRACTION_BITS, rounding="half_up",
                       border=border, output="uint8")


# --- Box -------------------------------------------------------------------------------

def box(img, ksize, normalize=True, border="reflect101"):
    """``cv2.blur`` (normalize=True, uint8 out) or
    ``cv2.boxFilter(img, cv2.CV_32S, (k, k), normalize=False)`` (int32 window sums).

    ``ksize`` odd 1..15; ``s`` = the exact sum of the k x k window of the padded image
    (``constant`` pads with 0). Normalized: ``out = floor(s / k**2 + 1/2)``, in integers
    ``(2s + k**2) // (2 k**2)``. k**2 is odd, so s / k**2 is never a tie and this is also
    round-half-even. (OpenCV computes it as ``((s + delta) * scale) >> 23`` with a Q23
    reciprocal; the test shows that equals this for every reachable ``s``.)
    """
    img = _check_uint8(img)
    _check_border(border)
    _check_ksize(ksize, ODD_SIZES)
    ones = np.ones(ksize, dtype=np.int64)
    sums = sepfilter2d(img, ones, ones, border=border, output="int32")
    if not normalize:
        return sums
    area = ksize * ksize
    return ((2 * sums.astype(np.int64) + area) // (2 * area)).astype(np.uint8)


# --- Derivatives -----------------------------------------------------------------------


def _deriv_taps(order, ksize):
    """OpenCV getSobelKernels taps for one axis: smoothing (1 + z)^(ksize-1-order)
    convolved with differencing (z - 1)^order, ksize 1 (order 0 only) or 3..7."""
    if ksize == 1:
        return np.array([1], dtype=np.int64)
    taps = np.array([1], dtype=np.int64)
    for _ in range(ksize - 1 - order):
        taps = np.convolve(taps, [1, 1])
    for _ in range(order):
        taps = np.convolve(taps, [-1, 1])
    return taps


def sobel_kernels(dx, dy, ksize=3):
    """Integer ``(kx, ky)`` like ``cv2.getDerivKernels(dx, dy, ksize)``.

    ``dx, dy`` in 0..2 with ``dx + dy >= 1``; ``ksize`` in 1, 3, 5, 7. As in OpenCV,
    ``ksize == 1`` means a 3-tap kernel on an axis with a derivative (``[-1, 0, 1]`` or
    ``[1, -2, 1]``) and a single tap ``[1]`` (no smoothing) on an axis without one.
    """
    for name, order in (("dx", dx), ("dy", dy)):
        if not isinstance(order, (int, np.integer)) or not 0 <= order <= MAX_SOBEL_ORDER:
            raise ValueError(f"{name} must be in 0..{MAX_SOBEL_ORDER}, not {order!r}")
    if dx + dy < 1:
        raise ValueError(f"dx + dy must be at least 1, not dx={dx}, dy={dy}")
    _check_ksize(ksize, SOBEL_SIZES)
    size_x = 3 if ksize == 1 and dx > 0 else ksize
    size_y = 3 if ksize == 1 and dy > 0 else ksize
    return _deriv_taps(dx, size_x), _deriv_taps(dy, size_y)


def sobel(img, dx, dy, ksize=3, border="reflect101"):
    """``cv2.Sobel(img, cv2.CV_16S, dx, dy, ksize=ksize, borderType=border)`` on uint8.

    ``out = saturate_int16(sum ky[i] kx[j] P[y+i, x+j])`` with ``(kx, ky) =
    sobel_kernels(dx, dy, ksize)``, exact integers, no scaling (``constant`` pads with 0).
    """
    img = _check_uint8(img)
    _check_border(border)
    kx, ky = sobel_kernels(dx, dy, ksize)
    return sepfilter2d(img, kx, ky, border=border, output="int16")


def scharr(img, dx, dy, border="reflect101"):
    """``cv2.Scharr(img, cv2.CV_16S, dx, dy, borderType=border)`` on uint8: ``(dx, dy)`` is
    (1, 0) or (0, 1); taps ``[-1, 0, 1]`` along the derivative and ``[3, 10, 3]`` across
    it, exact integer sum saturated to int16."""
    img = _check_uint8(img)
    _check_border(border)
    if (dx, dy) not in ((1, 0), (0, 1)):
        raise ValueError(f"(dx, dy) must be (1, 0) or (0, 1), not ({dx!r}, {dy!r})")
    deriv = np.array([-1, 0, 1], dtype=np.int64)
    smooth = np.array([3, 10, 3], dtype=np.int64)
    kx, ky = (deriv, smooth) if dx else (smooth, deriv)
    return sepfilter2d(img, kx, ky, border=border, output="int16")


_LAPLACIAN_KERNELS = {
    1: np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.int64),
    3: np.array([[2, 0, 2], [0, -8, 0], [2, 0, 2]], dtype=np.int64),
}
LAPLACIAN_SIZES = tuple(_LAPLACIAN_KERNELS)


def laplacian(img, ksize=1, border="reflect101"):
    """``cv2.Laplacian(img, cv2.CV_16S, ksize=ksize, borderType=border)`` on uint8, ksize 1
    or 3: ``saturate_int16(correlation with`` ``[[0,1,0],[1,-4,1],[0,1,0]]`` (ksize 1) or
    ``[[2,0,2],[0,-8,0],[2,0,2]]`` (ksize 3)``)``, exact integers."""
    img = _check_uint8(img)
    _check_border(border)
    _check_ksize(ksize, LAPLACIAN_SIZES)
    return filter2d(img, _LAPLACIAN_KERNELS[ksize], border=border, output="int16")


def _isqrt(s):
    """Elementwise ``floor(sqrt(s))`` of an int64 array with ``0 <= s < 2**52``, exact:
    s converts to double exactly, sqrt is correctly rounded, ``sqrt(s) >= r`` when
    ``s >= r*r`` (r is representable), and when ``s <= (r+1)**2 - 1`` the real sqrt is
    below ``r + 1`` by more than ``1/(2r + 2)``, which exceeds half an ulp of ``r + 1`` for
    ``r < 2**26``, so rounding never reaches ``r + 1``."""
    return np.floor(np.sqrt(s.astype(np.float64))).astype(np.int64)


def gradient_magnitude(gx, gy, norm="l1"):
    """uint8 magnitude of two int16 gradient images (same shape, any rank).

    * ``"l1"``: ``min(255, |gx| + |gy|)``;
    * ``"l2"``: ``min(255, round_half_up(sqrt(s)))`` with ``s = gx**2 + gy**2``, in
      integers (s <= 2**31): ``r = isqrt(s)`` (floor), then ``r += (s - r*r > r)``. Why:
      sqrt(s) >= r + 1/2  <=>  s >= r*r + r + 1/4  <=>  s > r*r + r for integer s, and
      sqrt(s) is never exactly r + 1/2 (``r*r + r + 1/4`` is not an integer): no ties.
    """
    gx = np.asarray(gx)
    gy = np.asarray(gy)
    if gx.dtype != np.int16 or gy.dtype != np.int16 or gx.shape != gy.shape:
        raise ValueError(
            f"gx and gy must be int16 arrays of one shape, not {gx.dtype} {gx.shape} and "
            f"{gy.dtype} {gy.shape}")
    ax = np.abs(gx.astype(np.int64))
    ay = np.abs(gy.astype(np.int64))
    if norm == "l1":
        magnitude = ax + ay
    elif norm == "l2":
        s = ax * ax + ay * ay
        r = _isqrt(s)
        magnitude = r + (s - r * r > r)
    else:
        raise ValueError(f"norm must be one of l1, l2, not {norm!r}")
    return np.minimum(magnitude, 255).astype(np.uint8)


# --- Order statistics --------------------------------------------------------------------


def _windows(padded, kh, kw):
    """H x W x C x kh x kw view of every window of a padded H+kh-1 x W+kw-1 x C image."""
    return np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(0, 1))


def median(img, ksize):
    """``cv2.medianBlur(img, ksize)`` on uint8, ksize 3, 5 or 7: the median (middle of
    the ksize*ksize sorted values) of each window of the image padded with ``replicate``
    (medianBlur always replicates; it takes no border argument)."""
    img = _check_uint8(img)
    _check_ksize(ksize, MEDIAN_SIZES)
    hwc, was_2d = as_hwc(img)
    r = ksize // 2
    windows = _windows(pad(hwc, r, r, r, r, "replicate"), ksize, ksize)
    flat = windows.reshape(windows.shape[:3] + (ksize * ksize,))
    middle = ksize * ksize // 2
    out = np.partition(flat, middle, axis=-1)[..., middle]
    return out[:, :, 0] if was_2d else out


def structuring_element(shape, ksize):
    """0/1 uint8 ``ksize x ksize`` element equal to ``cv2.getStructuringElement``.

    ``shape``: ``"rect"`` (all ones), ``"cross"`` (centre row and column), ``"ellipse"``:
    with ``r = c = ksize//2``, row ``i`` (``dy = i - r``) has ones in columns
    ``max(c - dx, 0) .. min(c + dx, ksize - 1)`` where
    ``dx = round_half_even(c * sqrt((r*r - dy*dy) / (r*r)))`` in doubles (OpenCV computes
    ``(r*r - dy*dy) * (1/(r*r))``; that exact expression is used). ``ksize`` odd 1..15;
    ksize 1 is a single one for every shape.
    """
    if shape not in MORPH_SHAPES:
        raise ValueError(f"shape must be one of {', '.join(MORPH_SHAPES)}, not {shape!r}")
    _check_ksize(ksize, ODD_SIZES)
    r = c = ksize // 2
    element = np.zeros((ksize, ksize), dtype=np.uint8)
    if shape == "rect" or ksize == 1:
        element[:] = 1
    elif shape == "cross":
        element[r, :] = 1
        element[:, c] = 1
    else:
        dy = np.arange(ksize) - r
        inv_r2 = 1.0 / (r * r)
        dx = np.rint(c * np.sqrt((r * r - dy * dy) * inv_r2)).astype(np.int64)
        cols = np.arange(ksize)
        element[:] = np.abs(cols[None, :] - c) <= dx[:, None]
    return element


def _morphology(img, ksize, shape, operation):
    hwc, was_2d = as_hwc(img)
    element = structuring_element(shape, ksize).astype(bool)
    info = np.iinfo(hwc.dtype)
    reduce, border_value = (np.min, info.max) if operation == "erode" else (np.max, info.min)
    r = ksize // 2
    windows = _windows(pad(hwc, r, r, r, r, "constant", border_value), ksize, ksize)
    out = reduce(windows[..., element], axis=-1)
    return out[:, :, 0] if was_2d else out


def erode(img, ksize, shape="rect"):
    """``cv2.erode(img, cv2.getStructuringElement(shape, (k, k)))``: minimum over the
    element's ones, outside the image counting as the dtype's maximum (OpenCV's default
    border value, which never wins). Any integer dtype."""
    return _morphology(img, ksize, shape, "erode")


def dilate(img, ksize, shape="rect"):
    """``cv2.dilate`` likewise: maximum over the element's ones, outside = the dtype's
    minimum."""
    return _morphology(img, ksize, shape, "dilate")


# --- Point operations --------------------------------------------------------------------


def threshold(img, level, maxval=255, type="binary"):
    """``cv2.threshold(img, level, maxval, THRESH_<TYPE>)[1]`` on uint8, integer ``level``
    (any int) and ``maxval`` (0..255)::

        binary      x > level ? maxval : 0        binary_inv  x > level ? 0 : maxval
        trunc       x > level ? level  : x        tozero      x > level ? x : 0
        tozero_inv  x > level ? 0      : x

    then saturated to uint8 (only ``trunc`` with ``level < 0`` needs it: every pixel is
    above the level and becomes 0).
    """
    img = _check_uint8(img)
    if type not in THRESHOLD_TYPES:
        raise ValueError(f"type must be one of {', '.join(THRESHOLD_TYPES)}, not {type!r}")
    if not isinstance(level, (int, np.integer)):
        raise ValueError(f"level must be an integer, not {level!r}")
    if not isinstance(maxval, (int, np.integer)) or not 0 <= maxval <= 255:
        raise ValueError(f"maxval must be an integer in 0..255, not {maxval!r}")
    value = img.astype(np.int64)
    above = value > level
    if type == "binary":
        out = np.where(above, maxval, 0)
    elif type == "binary_inv":
        out = np.where(above, 0, maxval)
    elif type == "trunc":
        out = np.where(above, level, value)
    elif type == "tozero":
        out = np.where(above, value, 0)
    else:
        out = np.where(above, 0, value)
    return np.clip(out, 0, 255).astype(np.uint8)


def rgb2gray(img):
    """``cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)`` on uint8 H x W x 3 (R, G, B order), as
    H x W x 1: ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` (the weights sum to 2**15, so
    the result is at most 255)."""
    img = _check_uint8(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img must be H x W x 3, not shape {img.shape}")
    weights = np.array(RGB2GRAY_WEIGHTS, dtype=np.int64)
    gray = (img.astype(np.int64) @ weights + (1 << 14)) >> 15
    return gray.astype(np.uint8)[:, :, None]


def channel_min(img):
    """Minimum over channels of an H x W x C integer image, as H x W x 1 (same dtype)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.dtype.kind not in "iu":
        raise ValueError(f"img must be an integer H x W x C array, not {img.dtype} {img.shape}")
    return img.min(axis=2, keepdims=True)
