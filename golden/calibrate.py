"""Offline helpers to quantize a float CNN layer the way the TFLite converter does.

For users who start from float weights rather than a ``.tflite`` file: fold BatchNorm into
the convolution, quantize weights symmetric per channel, quantize the bias at
``s_in * s_w[c]``, and choose activation scale/zero point from calibration data. The
results feed :meth:`rasterflow.golden.cnn.Conv2D.from_scales` and friends.

These follow the converter's rules, not its exact float rounding: a value that lands
exactly on a rounding tie may round differently than in TensorFlow. They are for producing
a model, not for reproducing one; import ``.tflite`` files for bit-exactness.
"""
import numpy as np

from .quant import INT32_MAX, INT32_MIN

__all__ = ["fold_batchnorm", "quantize_weights_per_channel", "quantize_bias", "activation_qparams"]

WEIGHT_QMAX = 127  # symmetric int8 weights use -127..127 (TFLite's narrow range)


def _round_half_away(values):
    """``std::round`` elementwise; ``|v| - floor(|v|)`` is exact, unlike ``|v| + 0.5``."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    whole = np.floor(magnitude)
    return np.sign(values) * (whole + (magnitude - whole >= 0.5))


def fold_batchnorm(w, b, gamma, beta, mean, var, eps=1e-3, axis=0):
    """Fold an inference-mode BatchNorm that follows a convolution into it.

    With ``k = gamma / sqrt(var + eps)`` (per output channel):
    ``w' = w * k`` broadcast along ``axis`` (the output-channel axis: 0 for TFLite's
    ``[Cout, K, K, Cin]`` conv filters, -1 for depthwise ``[.., C]``) and
    ``b' = (b - mean) * k + beta``. ``b`` may be None (a conv without bias).
    Keras' default ``eps`` is 1e-3. Returns float64 ``(w', b')``.
    """
    w = np.asarray(w, dtype=np.float64)
    channels = w.shape[axis]
    gamma, beta, mean, var = (np.broadcast_to(np.asarray(v, dtype=np.float64), (channels,))
                              for v in (gamma, beta, mean, var))
    if np.any(var + eps <= 0):
        raise ValueError("var + eps must be positive")
    b = np.zeros(channels) if b is None else np.asarray(b, dtype=np.float64)
    factor = gamma / np.sqrt(var + eps)
    shape = [1] * w.ndim
    shape[axis] = channels
    return w * factor.reshape(shape), (b - mean) * factor + beta


def quantize_weights_per_channel(w_float, axis):
    """Symmetric int8 per-channel weights: ``scale[c] = max|w[c]| / 127`` (float32),
    ``q = clamp(round_half_away(w / scale[c]), -127, 127)``.

    A channel that is all zero gets scale 1.0 (its weights quantize to 0 either way, and a
    zero scale would make the requantization multiplier meaningless).
    Returns ``(q int8 of w's shape, scales float32[channels])``.
    """
    w = np.asarray(w_float, dtype=np.float64)
    reduce_axes = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    max_abs = np.abs(w).max(axis=reduce_axes)
    scales = np.where(max_abs > 0, max_abs / WEIGHT_QMAX, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = scales.size
    q = _round_half_away(w / scales.astype(np.float64).reshape(shape))
    return np.clip(q, -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8), scales


def quantize_bias(b_float, in_scale, w_scales):
    """int32 bias at scale ``s_in * s_w[c]`` (float32 product, as the converter stores it):
    ``clamp(round_half_away(b / (s_in * s_w[c])), INT32_MIN, INT32_MAX)``."""
    bias_scales = (np.float32(in_scale) * np.asarray(w_scales, dtype=np.float32)).astype(np.float64)
    q = _round_half_away(np.asarray(b_float, dtype=np.float64) / bias_scales)
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def activation_qparams(samples, qmin=-128, qmax=127):
    """``(scale, zero_point)`` for an activation from calibration samples, as TFLite's
    ``ChooseQuantizationParams`` (kernels/internal/quantization_util.h).

    The range ``[min(samples, 0), max(samples, 0)]`` always contains 0;
    ``scale = (rmax - rmin) / (qmax - qmin)``; the zero point is ``qmin - rmin / scale``
    or ``qmax - rmax / scale`` (whichever has the smaller error term), rounded half away
    from zero and clamped ("nudged") into ``[qmin, qmax]``, so 0.0 is exactly
    representable. All-zero samples raise ValueError (TFLite would return scale 0).
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("calibration samples must be a non-empty set of finite values")
    rmin = min(float(values.min()), 0.0)
    rmax = max(float(values.max()), 0.0)
    if rmin == rmax:
        raise ValueError("calibration samples are all zero: no scale can be chosen")
    scale = (rmax - rmin) / (qmax - qmin)
    from_min = qmin - rmin / scale
    from_max = qmax - rmax / scale
    from_min_error = abs(qmin) + abs(rmin / scale)
    from_max_error = abs(qmax) + abs(rmax / scale)
    zero_point = from_min if from_min_error < from_max_error else from_max
    return scale, int(np.clip(_round_half_away(zero_point), qmin, qmax))
