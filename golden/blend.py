"""Golden model of ``cv2.addWeighted`` on uint8 images, bit-exact with opencv-python 5.1.

What OpenCV computes
--------------------
``cv2.addWeighted(a, alpha, b, beta, gamma)`` on two uint8 images of one shape
(``modules/core/src/arithm.simd.hpp``: ``add_weighted_loop``, ``op_add_weighted``; read in
OpenCV 4.x, whose formulas 5.1 matches on every pair in the tests):

1. The weights become float32, rounded to nearest (``(float)scalars[i]``): ``α, β, γ``.
2. Each value ``a, b`` takes one of two code paths, both in float32:

   * vector path (``v_fma(a, α, v_fma(b, β, γ))``, fused on x86-64 with FMA)::

         r = fma(a, α, fma(b, β, γ))                 two roundings

   * scalar path (``a*alpha + b*beta + gamma``, compiled with the first product and sum
     contracted into one fused multiply-add)::

         r = fl(fma(a, α, fl(b * β)) + γ)            three roundings

   where ``fma`` rounds ``x * y + z`` once and ``fl`` rounds to float32. (For
   ``β == 1, γ == 0`` OpenCV runs ``op_add_scale``, ``fma(a, α, b)``: the same numbers.)
3. ``out = saturate(rint(r))``: round half to even (``cvRound``), then clamp to 0..255;
   results beyond the int32 range and infinities saturate too (to 0 below, 255 above).

Which values take the scalar path depends only on ``N``, the number of values (``H*W*C``,
the image being one continuous row)::

    N < 32                            all of them
    N > 2**17 and N % 128 < 32        the last N % 128
    otherwise                         none

as if the row were cut into blocks of 128 values beyond ``2**17`` values, and a block (or
row) shorter than one 32-value vector step ran scalar code (:func:`scalar_tail`). This is
measured, not read: opencv-python 5.1.0 on x86-64 with AVX-512 (``tests/test_golden_blend.py``
finds the boundaries value by value). Another CPU dispatch can move them; strided views
(not one continuous row) run each row separately.

The paths agree whenever ``gamma == 0`` (then ``fma(b, β, 0) = fl(b * β)`` and ``+ 0`` is
exact), so blends and unsharp masks are position independent; with ``gamma != 0`` they differ
for a few of the 65536 pairs (e.g. ``alpha, beta, gamma = 0.1, 0.2, 0.3`` and ``a, b = 0,
21``: ``fma(21, β, γ) = 4.5`` exactly gives 4, ``fl(21 * β) + γ = 4.5000005`` gives 5).

:func:`add_weighted` is the call itself; :func:`add_weighted_vector` and
:func:`add_weighted_scalar` apply one path to every value (the hardware,
:class:`~rasterflow.hdl.blend.AddWeighted`, implements the vector path). Weights must be
finite and at most float32's largest value in magnitude, so that ``α, β, γ`` are finite.

Pure numpy: no OpenCV, no hardware imports.
"""
import numpy as np

__all__ = ["FLOAT32_MAX", "VECTOR_STEP", "BLOCKED_ABOVE", "BLOCK", "float32_weights", "fma32",
           "scalar_tail", "add_weighted", "add_weighted_vector", "add_weighted_scalar"]

FLOAT32_MAX = float(np.finfo(np.float32).max)

#: Values per vector step: a shorter row (or block) runs the scalar path.
VECTOR_STEP = 32
#: Above this many values the row runs in blocks of :data:`BLOCK` values.
BLOCKED_ABOVE = 1 << 17
BLOCK = 128


def float32_weights(alpha, beta, gamma):
    """``(α, β, γ)``: the weights as OpenCV rounds them, float32 (nearest, ties to even).

    Each must be a real number of magnitude at most :data:`FLOAT32_MAX`.
    """
    weights = []
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or \
                isinstance(value, (bool, np.bool_)) or not abs(value) <= FLOAT32_MAX:
            raise ValueError(f"{name} must be a real number in -{FLOAT32_MAX!r}.."
                             f"{FLOAT32_MAX!r} (finite as a float32), not {value!r}")
        weights.append(np.float32(value))
    return tuple(weights)


def fma32(x, y, z):
    """``x * y + z`` rounded once to float32 (nearest, ties to even), elementwise.

    ``x`` holds integers in 0..255, ``y`` finite float32 values, ``z`` float32 values
    (infinite ones pass through). Exact for every such input; see the comments.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float32).astype(np.float64)
        z = np.asarray(z, dtype=np.float32).astype(np.float64)
        # 8 bits times a 24-bit significand has at most 32 significant bits: the float64
        # product is exact; |p| <= 255 * FLT_MAX < 2**136, and a nonzero |p| >= 2**-149 is
        # far above float64's subnormals.
        p = x * y
        # TwoSum (Knuth): s = fl64(p + z) and p + z == s + err exactly (|p + z| < 2**137
        # cannot overflow). With z infinite, s is z and err is NaN, unused below.
        s = np.asarray(p + z)
        pv = s - p
        err = (p - (s - pv)) + (z - pv)
        # Round p + z to odd at 53 bits: an inexact s with an even last bit moves one ulp
        # toward the exact value (the next float64 that way, since |err| <= ulp(s) / 2).
        # Rounding that to nearest at 24 bits equals rounding p + z to nearest directly,
        # as 53 >= 24 + 2 (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums:
        # proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008);
        # float32 subnormals and the overflow threshold keep fewer bits, which holds too.
        even = (s.view(np.int64) & 1) == 0
        nudge = np.isfinite(s) & (err != 0) & even
        s = np.where(nudge, np.nextafter(s, np.copysign(np.inf, err)), s)
        return s.astype(np.float32)


def _saturate(r):
    """``saturate_cast<uchar>``: round half to even, clamp (infinities included)."""
    return np.clip(np.rint(r), 0, 255).astype(np.uint8)


def _vector(a, b, alpha, beta, gamma):
    return _saturate(fma32(a, alpha, fma32(b, beta, gamma)))


def _scalar(a, b, alpha, beta, gamma):
    with np.errstate(over="ignore"):
        product = b.astype(np.float32) * beta      # numpy float32 ops round once, to nearest
        return _saturate(fma32(a, alpha, product) + gamma)


def scalar_tail(size):
    """How many values at the end of an image of ``size`` values cv2 runs on the scalar
    path (see the module docstring)."""
    if size < VECTOR_STEP:
        return size
    if size > BLOCKED_ABOVE and size % BLOCK < VECTOR_STEP:
        return size % BLOCK
    return 0


def _check_images(a, b):
    a, b = np.asarray(a), np.asarray(b)
    for name, img in (("a", a), ("b", b)):
        if img.dtype != np.uint8 or img.ndim not in (2, 3):
            raise ValueError(f"{name} must be a uint8 image, H x W or H x W x C, not "
                             f"{img.dtype} of shape {img.shape}")
    if b.shape != a.shape:
        raise ValueError(f"b must have the shape of a, {a.shape}, not {b.shape}")
    return a, b


def add_weighted(a, b, alpha, beta, gamma):
    """``cv2.addWeighted(a, alpha, b, beta, gamma)`` on uint8 images of one shape, as a
    uint8 image of that shape: the vector path, and the scalar path on the last
    :func:`scalar_tail` values in raster order (channels innermost)."""
    a, b = _check_images(a, b)
    weights = float32_weights(alpha, beta, gamma)
    a_flat, b_flat = a.reshape(-1), b.reshape(-1)
    out = _vector(a_flat, b_flat, *weights)
    tail = scalar_tail(a.size)
    if tail:
        out[-tail:] = _scalar(a_flat[-tail:], b_flat[-tail:], *weights)
    return out.reshape(a.shape)


def add_weighted_vector(a, b, alpha, beta, gamma):
    """:func:`add_weighted` with the vector path on every value (what cv2 returns for
    every image without a scalar tail, and what the hardware computes)."""
    a, b = _check_images(a, b)
    return _vector(a, b, *float32_weights(alpha, beta, gamma))


def add_weighted_scalar(a, b, alpha, beta, gamma):
    """:func:`add_weighted` with the scalar path on every value (what cv2 returns for
    images of fewer than 32 values)."""
    a, b = _check_images(a, b)
    return _scalar(a, b, *float32_weights(alpha, beta, gamma))
