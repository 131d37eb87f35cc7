"""Golden models of OpenCV's per-element arithmetic, each bit-exact with one OpenCV call.

Two inputs ``a``, ``b`` of one shape and one integer type (a key of
:data:`~rasterflow.golden.pixel.DTYPES`), result of that type and shape, per element:

* :func:`add`: ``cv2.add``, ``saturate(a + b)``;
* :func:`subtract`: ``cv2.subtract``, ``saturate(a - b)``;
* :func:`absdiff`: ``cv2.absdiff``, ``saturate(|a - b|)`` — the input type also for signed
  inputs, so ``absdiff(-128, 127)`` on int8 is 127 (and int32's ``|MIN - MAX|`` is
  ``2**31 - 1``);
* :func:`minimum`, :func:`maximum`: ``cv2.min``, ``cv2.max``;
* :func:`bitwise_and`, :func:`bitwise_or`, :func:`bitwise_xor`: ``cv2.bitwise_*`` on the
  two's-complement bits;

where ``saturate`` clamps the exact integer result to the type's range (OpenCV's
``saturate_cast``; int32 ``add``/``subtract`` saturate too, they do not wrap). One input:
:func:`bitwise_not`, ``cv2.bitwise_not`` (every bit inverted: ``-1 - x`` for signed types).
:func:`magnitude` takes two int16 gradient images and returns uint8
(:func:`~rasterflow.golden.imgproc.gradient_magnitude`).

``tests/test_golden_arithm.py`` proves each equal to OpenCV (opencv-python 5.1).
Pure numpy: no OpenCV, no hardware imports.
"""
import numpy as np

from .filters import saturate
from .imgproc import gradient_magnitude
from .pixel import DTYPES

__all__ = ["add", "subtract", "absdiff", "minimum", "maximum", "bitwise_and", "bitwise_or",
           "bitwise_xor", "bitwise_not", "magnitude"]


def _check_image(name, img):
    img = np.asarray(img)
    if img.dtype.name not in DTYPES:
        raise ValueError(f"{name} must have dtype {', '.join(DTYPES)}, not {img.dtype}")
    return img


def _check_pair(a, b):
    a, b = _check_image("a", a), _check_image("b", b)
    if b.dtype != a.dtype or b.shape != a.shape:
        raise ValueError(f"b must have a's dtype and shape ({a.dtype} {a.shape}), "
                         f"not {b.dtype} {b.shape}")
    return a, b


def _wide(a, b):
    """``a``, ``b`` as int64: every sum and difference of two DTYPES values is exact."""
    a, b = _check_pair(a, b)
    return a.astype(np.int64), b.astype(np.int64), a.dtype.name


def add(a, b):
    """``cv2.add(a, b)``: ``saturate(a + b)``."""
    a, b, dtype = _wide(a, b)
    return saturate(a + b, dtype)


def subtract(a, b):
    """``cv2.subtract(a, b)``: ``saturate(a - b)``."""
    a, b, dtype = _wide(a, b)
    return saturate(a - b, dtype)


def absdiff(a, b):
    """``cv2.absdiff(a, b)``: ``saturate(|a - b|)``, of the input type."""
    a, b, dtype = _wide(a, b)
    return saturate(np.abs(a - b), dtype)


def minimum(a, b):
    """``cv2.min(a, b)``."""
    return np.minimum(*_check_pair(a, b))


def maximum(a, b):
    """``cv2.max(a, b)``."""
    return np.maximum(*_check_pair(a, b))


def bitwise_and(a, b):
    """``cv2.bitwise_and(a, b)``."""
    return np.bitwise_and(*_check_pair(a, b))


def bitwise_or(a, b):
    """``cv2.bitwise_or(a, b)``."""
    return np.bitwise_or(*_check_pair(a, b))


def bitwise_xor(a, b):
    """``cv2.bitwise_xor(a, b)``."""
    return np.bitwise_xor(*_check_pair(a, b))


def bitwise_not(a):
    """``cv2.bitwise_not(a)``: every bit inverted."""
    return np.invert(_check_image("a", a))


def magnitude(gx, gy, norm):
    """uint8 magnitude of two int16 gradient images of one shape, ``norm`` ``"l1"``
    (``min(255, |gx| + |gy|)``) or ``"l2"`` (``min(255, round_half_up(sqrt(gx**2 + gy**2)))``,
    exact): :func:`~rasterflow.golden.imgproc.gradient_magnitude`. OpenCV: ``l1`` is
    ``cv2.add(cv2.convertScaleAbs(gx), cv2.convertScaleAbs(gy))``, ``l2`` is
    ``cv2.convertScaleAbs(cv2.magnitude(gx, gy))`` on float64 copies."""
    return gradient_magnitude(gx, gy, norm)
