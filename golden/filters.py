"""Exact integer linear filters: the arithmetic every filter block in hardware implements.

A filter here is an integer kernel, an exact int64 sum of products over a padded window, a
rounding right shift and a saturating cast::

    acc[y, x] = sum_{i, j} kernel[i, j] * padded[y + i, x + j]      (correlation, anchor = centre)
    out[y, x] = saturate(round_shift(acc[y, x], shift, rounding), output)

so a real-valued kernel ``kernel / 2**shift`` is applied without any intermediate rounding.
This equals ``cv2.filter2D`` (which accumulates in float32 and rounds half to even) whenever
cv2's float32 sum is exact; see ``tests/test_golden_filters.py``.

Images are numpy integer arrays H x W x C or H x W; every channel is filtered independently
and the result has the rank of the input.
"""
import numpy as np

from .border import BORDERS, pad

__all__ = ["ROUNDINGS", "SATURATE_DTYPES", "round_shift", "saturate", "filter2d", "sepfilter2d"]

ROUNDINGS = ("half_even", "half_up")

#: Output types :func:`saturate` clamps to.
SATURATE_DTYPES = ("uint8", "int8", "uint16", "int16", "int32")

#: Largest kernel side (rows or columns) :func:`filter2d` accepts.
MAX_KERNEL_SIDE = 15


def round_shift(acc, shift, rounding):
    """``round(acc / 2**shift)`` on an integer array, exactly, as int64.

    ``rounding``:

    * ``"half_even"``: ties go to the even integer (IEEE / ``cvRound`` / ``np.rint``);
    * ``"half_up"``: ties go toward +infinity, ``floor(acc / 2**shift + 1/2)``, which in
      integers is ``(acc + 2**(shift - 1)) >> shift`` (arithmetic shift = floor, so
      negative values are correct: -2.5 -> -2, -2.6 -> -3).

    ``shift == 0`` returns ``acc`` unchanged (as int64).
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    if not isinstance(shift, (int, np.integer)) or not 0 <= shift <= 62:
        raise ValueError(f"shift must be an integer in 0..62, not {shift!r}")
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise ValueError(f"acc must be an integer array, not {acc.dtype}")
    acc = acc.astype(np.int64)
    if shift == 0:
        return acc
    half = np.int64(1) << (shift - 1)
    if rounding == "half_up":
        return (acc + half) >> shift
    floor = acc >> shift
    remainder = acc - (floor << shift)  # 0 .. 2**shift - 1, also for negative acc
    round_up = (remainder > half) | ((remainder == half) & (floor & 1 == 1))
    return floor + round_up


def saturate(x, dtype):
    """Clamp integer array ``x`` to the range of ``dtype`` (a name in :data:`SATURATE_DTYPES`)
    and return it as that dtype, like OpenCV's ``saturate_cast`` from an integer."""
    if dtype not in SATURATE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(SATURATE_DTYPES)}, not {dtype!r}")
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise ValueError(f"x must be an integer array, not {x.dtype}")
    info = np.iinfo(dtype)
    return np.clip(x.astype(np.int64), info.min, info.max).astype(dtype)


def _integer_kernel(kernel, name, ndim):
    kernel = np.asarray(kernel)
    if kernel.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D integer array, not shape {kernel.shape}")
    if kernel.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, not {kernel.dtype}")
    for side in kernel.shape:
        if side % 2 == 0 or not 1 <= side <= MAX_KERNEL_SIDE:
            raise ValueError(
                f"{name} sides must be odd in 1..{MAX_KERNEL_SIDE}, not shape {kernel.shape}")
    return kernel.astype(np.int64)


def _check_options(border, rounding, output):
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    if output not in SATURATE_DTYPES:
        raise ValueError(f"output must be one of {', '.join(SATURATE_DTYPES)}, not {output!r}")


def as_hwc(img):
    """``(img as H x W x C, was_2d)``; raises ValueError unless ``img`` is a 2-D or 3-D
    integer array."""
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.dtype.kind not in "iu":
        raise ValueError(
            f"img must be an integer H x W or H x W x C array, not {img.dtype} shape {img.shape}")
    return (img[:, :, None], True) if img.ndim == 2 else (img, False)


def correlate_valid(padded, kernel):
    """Exact int64 ``sum_{i,j} kernel[i, j] * padded[y + i, x + j]`` for every window that
    fits in ``padded`` (H + kh - 1) x (W + kw - 1) x C; returns H x W x C int64."""
    kh, kw = kernel.shape
    h, w = padded.shape[0] - kh + 1, padded.shape[1] - kw + 1
    padded = padded.astype(np.int64)
    acc = np.zeros((h, w) + padded.shape[2:], dtype=np.int64)
    for (i, j), tap in np.ndenumerate(kernel):
        if tap:
            acc += tap * padded[i:i + h, j:j + w]
    return acc


def filter2d(img, kernel, shift=0, rounding="half_even", border="reflect101", border_value=0,
             output="uint8"):
    """Correlate ``img`` with the integer kernel (Ky x Kx, both odd, 1..15), anchor at the
    centre, like ``cv2.filter2D(img, ddepth, kernel / 2**shift, borderType=...)``.

    ``out = saturate(round_shift(acc, shift, rounding), output)`` with
    ``acc[y, x] = sum_{i,j} kernel[i, j] * P[y + i, x + j]`` (exact int64), where ``P`` is
    ``img`` padded by Ky//2 rows and Kx//2 columns each side with :func:`pad`
    (``border_value`` is used by ``"constant"``). Per channel; returns the input's rank.
    """
    _check_options(border, rounding, output)
    kernel = _integer_kernel(kernel, "kernel", 2)
    img, was_2d = as_hwc(img)
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    acc = correlate_valid(pad(img, ry, ry, rx, rx, border, border_value), kernel)
    out = saturate(round_shift(acc, shift, rounding), output)
    return out[:, :, 0] if was_2d else out


def sepfilter2d(img, kx, ky, shift=0, rounding="half_even", border="reflect101", border_value=0,
                output="uint8"):
    """Separable filter: exactly ``filter2d(img, np.outer(ky, kx), shift, ...)``.

    ``kx`` (odd length, horizontal taps) is applied along rows, then ``ky`` (vertical)
    along columns, both on the once-padded image with exact int64 sums, so the row pass
    keeps full precision (no intermediate rounding) and only the final sum is rounded.
    """
    _check_options(border, rounding, output)
    kx = _integer_kernel(kx, "kx", 1)
    ky = _integer_kernel(ky, "ky", 1)
    img, was_2d = as_hwc(img)
    ry, rx = len(ky) // 2, len(kx) // 2
    padded = pad(img, ry, ry, rx, rx, border, border_value)
    rows = correlate_valid(padded, kx[None, :])
    acc = correlate_valid(rows, ky[:, None])
    out = saturate(round_shift(acc, shift, rounding), output)
    return out[:, :, 0] if was_2d else out
