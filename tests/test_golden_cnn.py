"""golden.cnn against hand-computed cases and a slow per-pixel reference written here,
plus golden.calibrate consistency checks.

The per-pixel reference re-derives TFLite's geometry from kernels/padding.h (C++ integer
division) and skips out-of-image taps explicitly; it shares only the scalar
MultiplyByQuantizedMultiplier with the code under test (verified on its own in
test_golden_quant.py).
"""
import dataclasses
import time
import zlib

import numpy as np
import pytest

from rasterflow.golden.calibrate import (activation_qparams, fold_batchnorm, quantize_bias,
                                         quantize_weights_per_channel)
from rasterflow.golden.cnn import (Conv2D, DepthwiseConv2D, LeakyRelu, MaxPool2D, Relu, Sequential,
                                   window_geometry)
from rasterflow.golden.dense import FullyConnected
from rasterflow.golden.elementwise import Add, Concatenation, Pad, ResizeNearestNeighbor
from rasterflow.golden.nonlinear import Logistic, Softmax
from rasterflow.golden.pooling import AveragePool2D, Mean
from rasterflow.golden.quant import multiply_by_quantized_multiplier, quantize_multiplier
import rasterflow.golden.cnn as golden_cnn

IDENTITY = quantize_multiplier(1.0)  # (2**30, 1)


# --- slow reference -------------------------------------------------------------------------

def ref_geometry(size, kernel, stride, padding):
    """TFLite ComputeOutSize / ComputePadding (C++ division truncates toward zero)."""
    out = (size + stride - 1) // stride if padding == "same" else (size + stride - kernel) // stride
    total = (out - 1) * stride + kernel - size
    return out, max(int(total / 2), 0)


def ref_conv(x, weights, bias, stride, padding, in_zp, out_zp, m0, shift, act_min, act_max,
             depthwise=False):
    batches, height, width, in_channels = x.shape
    kernel = weights.shape[0] if depthwise else weights.shape[1]
    out_channels = in_channels if depthwise else weights.shape[0]
    out_h, pad_top = ref_geometry(height, kernel, stride, padding)
    out_w, pad_left = ref_geometry(width, kernel, stride, padding)
    y = np.zeros((batches, out_h, out_w, out_channels), dtype=np.int8)
    for n in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                for co in range(out_channels):
                    acc = 0
                    for ky in range(kernel):
                        for kx in range(kernel):
                            iy, ix = oy * stride - pad_top + ky, ox * stride - pad_left + kx
                            if not (0 <= iy < height and 0 <= ix < width):
                                continue
                            if depthwise:
                                acc += int(weights[ky, kx, co]) * (int(x[n, iy, ix, co]) - in_zp)
                            else:
                                for ci in range(in_channels):
                                    acc += int(weights[co, ky, kx, ci]) * (int(x[n, iy, ix, ci]) - in_zp)
                    acc += int(bias[co])
                    value = multiply_by_quantized_multiplier(acc, int(m0[co]), int(shift[co])) + out_zp
                    y[n, oy, ox, co] = min(max(value, act_min), act_max)
    return y


def ref_max_pool(x, size, stride, padding, act_min=-128, act_max=127):
    batches, height, width, channels = x.shape
    out_h, pad_top = ref_geometry(height, size, stride, padding)
    out_w, pad_left = ref_geometry(width, size, stride, padding)
    y = np.zeros((batches, out_h, out_w, channels), dtype=np.int8)
    for n in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                for c in range(channels):
                    best = -128
                    for ky in range(size):
                        for kx in range(size):
                            iy, ix = oy * stride - pad_top + ky, ox * stride - pad_left + kx
                            if 0 <= iy < height and 0 <= ix < width:
                                best = max(best, int(x[n, iy, ix, c]))
                    y[n, oy, ox, c] = min(max(best, act_min), act_max)
    return y


def case_rng(*case):
    """A generator seeded from the test case, stable across runs (unlike ``hash``)."""
    return np.random.default_rng(zlib.crc32(repr(case).encode()))


def random_int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def random_requant(rng, channels):
    m0 = rng.integers(1 << 30, 1 << 31, size=channels)
    shift = rng.integers(-12, -5, size=channels)
    return m0, shift


# --- Conv2D -----------------------------------------------------------------------------------

CONV_CASES = [  # (height, width, kernel, stride, padding)
    (5, 6, 3, 1, "same"), (5, 6, 3, 2, "same"), (6, 6, 3, 2, "same"), (5, 6, 3, 1, "valid"),
    (7, 6, 3, 2, "valid"), (4, 5, 1, 1, "same"), (5, 5, 1, 2, "same"), (6, 5, 1, 2, "valid"),
    (6, 7, 2, 2, "same"), (5, 5, 2, 1, "same"), (7, 7, 5, 2, "same"), (5, 6, 5, 1, "valid"),
]


@pytest.mark.parametrize("height, width, kernel, stride, padding", CONV_CASES)
def test_conv2d_matches_per_pixel_reference(height, width, kernel, stride, padding):
    rng = case_rng(height, width, kernel, stride, padding)
    in_channels, out_channels = 3, 4
    x = random_int8(rng, (2, height, width, in_channels))
    weights = random_int8(rng, (out_channels, kernel, kernel, in_channels))
    bias = rng.integers(-5000, 5000, size=out_channels).astype(np.int32)
    m0, shift = random_requant(rng, out_channels)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    act_min, act_max = sorted(int(v) for v in rng.integers(-128, 128, size=2))
    layer = Conv2D(weights, bias, stride, padding, in_zp, out_zp, m0, shift, act_min, act_max)
    got = layer(x)
    expected = ref_conv(x, weights, bias, stride, padding, in_zp, out_zp, m0, shift, act_min, act_max)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == layer.output_shape(x.shape)
    assert got.dtype == np.int8


def test_conv2d_same_stride2_pads_bottom_right_and_skips_padding_taps():
    # 4x4 input 0..15, 3x3 ones, stride 2 SAME: 2x2 output, total padding 1 -> all of it at
    # the bottom/right. in_zp = 1, so every in-image tap adds x - 1 and a padded tap adds 0.
    x = np.arange(16, dtype=np.int8).reshape(1, 4, 4, 1)
    layer = Conv2D(np.ones((1, 3, 3, 1), np.int8), [0], 2, "same", 1, 0, [IDENTITY[0]],
                   [IDENTITY[1]])
    # [0,0]: rows 0-2, cols 0-2: 45 - 9 taps; [0,1]: rows 0-2, cols 2-3: 39 - 6;
    # [1,0]: rows 2-3, cols 0-2: 66 - 6;        [1,1]: rows 2-3, cols 2-3: 50 - 4.
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[36, 33], [60, 46]])


def test_conv2d_accepts_hwc_without_batch():
    rng = np.random.default_rng(1)
    x = random_int8(rng, (5, 5, 2))
    weights = random_int8(rng, (3, 3, 3, 2))
    layer = Conv2D(weights, np.zeros(3, np.int32), 1, "same", 0, 0, *random_requant(rng, 3))
    np.testing.assert_array_equal(layer(x), layer(x[None])[0])
    assert layer.output_shape((5, 5, 2)) == (5, 5, 3)


def test_conv2d_from_scales_computes_multipliers_in_double_per_channel():
    weights = np.ones((3, 1, 1, 2), np.int8)
    in_scale, out_scale = 0.0039215689, 0.0102812
    w_scales = np.array([0.00122638, 0.00213686, 0.0016441], np.float32)
    layer = Conv2D.from_scales(weights, np.zeros(3, np.int32), in_scale, -128, w_scales,
                               out_scale, 11, "RELU6", stride=2, padding="valid")
    expected = [quantize_multiplier(float(np.float32(in_scale)) * float(s) / float(np.float32(out_scale)))
                for s in w_scales]
    assert list(zip(layer.m0.tolist(), layer.shift.tolist())) == expected
    assert (layer.act_min, layer.act_max) == (11, 127)
    assert (layer.stride, layer.padding) == (2, "valid")
    per_tensor = Conv2D.from_scales(weights, np.zeros(3, np.int32), in_scale, -128, w_scales[0],
                                    out_scale, 11)
    assert per_tensor.m0.tolist() == [expected[0][0]] * 3


def test_conv2d_is_frozen_and_its_arrays_read_only():
    layer = Conv2D(np.zeros((1, 1, 1, 1), np.int8), [0], 1, "same", 0, 0, [1 << 30], [0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.stride = 2
    with pytest.raises(ValueError):
        layer.weights[0, 0, 0, 0] = 1


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": np.zeros((1, 3, 3, 1), np.float32)}, "int8"),
    ({"weights": np.zeros((1, 3, 2, 1), np.int8)}, "square"),
    ({"bias": [0, 0]}, "bias"),
    ({"padding": "full"}, "padding"),
    ({"stride": 0}, "stride"),
    ({"in_zp": 128}, "in_zp"),
    ({"m0": [1, 2]}, "m0"),
    ({"act_min": 10, "act_max": 5}, "act_min"),
])
def test_conv2d_rejects_bad_parameters(kwargs, message):
    params = dict(weights=np.zeros((1, 3, 3, 1), np.int8), bias=[0], stride=1, padding="same",
                  in_zp=0, out_zp=0, m0=[1 << 30], shift=[0])
    params.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Conv2D(**params)


def test_conv2d_rejects_bad_inputs():
    layer = Conv2D(np.zeros((1, 3, 3, 2), np.int8), [0], 1, "valid", 0, 0, [1 << 30], [0])
    with pytest.raises(ValueError, match="int8"):
        layer(np.zeros((1, 4, 4, 2), np.int16))
    with pytest.raises(ValueError, match="channels"):
        layer(np.zeros((1, 4, 4, 3), np.int8))
    with pytest.raises(ValueError, match="does not fit"):
        layer(np.zeros((1, 2, 4, 2), np.int8))


def test_conv2d_2x64x64x3_to_16_channels_is_fast():
    rng = np.random.default_rng(2)
    layer = Conv2D(random_int8(rng, (16, 3, 3, 3)), np.zeros(16, np.int32), 1, "same", -128, 0,
                   *random_requant(rng, 16))
    x = random_int8(rng, (2, 64, 64, 3))
    start = time.perf_counter()
    y = layer(x)
    assert time.perf_counter() - start < 1.0
    assert y.shape == (2, 64, 64, 16)


# --- DepthwiseConv2D ----------------------------------------------------------------------

@pytest.mark.parametrize("height, width, kernel, stride, padding", CONV_CASES[:8])
def test_depthwise_matches_per_pixel_reference(height, width, kernel, stride, padding):
    rng = case_rng("dw", height, width, kernel, stride, padding)
    channels = 5
    x = random_int8(rng, (2, height, width, channels))
    weights = random_int8(rng, (kernel, kernel, channels))
    bias = rng.integers(-3000, 3000, size=channels).astype(np.int32)
    m0, shift = random_requant(rng, channels)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    layer = DepthwiseConv2D(weights, bias, stride, padding, in_zp, out_zp, m0, shift, -100, 100)
    expected = ref_conv(x, weights, bias, stride, padding, in_zp, out_zp, m0, shift, -100, 100,
                        depthwise=True)
    np.testing.assert_array_equal(layer(x), expected)
    assert layer(x).shape == layer.output_shape(x.shape)


def test_depthwise_hand_case_counts_only_in_image_taps():
    x = np.full((1, 3, 3, 2), 5, np.int8)
    weights = np.ones((3, 3, 2), np.int8)
    weights[..., 1] = 2
    layer = DepthwiseConv2D(weights, [0, 100], 1, "same", 3, 0, [IDENTITY[0]] * 2, [IDENTITY[1]] * 2)
    # Each in-image tap adds (5 - 3) * w: corners 4 taps, edges 6, centre 9.
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[8, 12, 8], [12, 18, 12], [8, 12, 8]])
    np.testing.assert_array_equal(layer(x)[0, :, :, 1], [[116, 124, 116], [124, 127, 124], [116, 124, 116]])


# --- MaxPool2D ----------------------------------------------------------------------------

@pytest.mark.parametrize("height, width, size, stride, padding", [
    (6, 6, 2, 2, "same"), (5, 7, 2, 2, "same"), (5, 7, 2, 2, "valid"), (6, 5, 2, 1, "same"),
    (6, 5, 2, 1, "valid"), (7, 7, 3, 2, "same"), (7, 6, 3, 1, "valid"),
])
def test_max_pool_matches_per_pixel_reference(height, width, size, stride, padding):
    rng = case_rng("pool", height, width, size, stride, padding)
    x = random_int8(rng, (2, height, width, 3))
    layer = MaxPool2D(size, stride, padding, -120, 110)
    np.testing.assert_array_equal(layer(x), ref_max_pool(x, size, stride, padding, -120, 110))
    assert layer(x).shape == layer.output_shape(x.shape)


def test_max_pool_2_stride_1_same_hand_case_ignores_padding():
    x = -np.array([[10, 50, 20], [70, 30, 90], [40, 80, 60]], np.int8)[None, :, :, None]
    expected = -np.array([[10, 20, 20], [30, 30, 60], [40, 60, 60]])
    np.testing.assert_array_equal(MaxPool2D(2, 1, "same")(x)[0, :, :, 0], expected)


def test_max_pool_2_stride_2_valid_and_same_on_odd_size():
    x = np.arange(25, dtype=np.int8).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(MaxPool2D(2, 2, "valid")(x)[0, :, :, 0], [[6, 8], [16, 18]])
    np.testing.assert_array_equal(MaxPool2D(2, 2, "same")(x)[0, :, :, 0],
                                  [[6, 8, 9], [16, 18, 19], [21, 23, 24]])


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    (4, 3, 2, "same", (2, 0, 1)), (5, 3, 2, "same", (3, 1, 1)), (6, 2, 2, "same", (3, 0, 0)),
    (3, 2, 1, "same", (3, 0, 1)), (5, 3, 2, "valid", (2, 0, 0)), (6, 1, 2, "same", (3, 0, 0)),
    (7, 4, 1, "same", (7, 1, 2)),
])
def test_window_geometry(size, kernel, stride, padding, expected):
    assert window_geometry(size, kernel, stride, padding) == expected


# --- LeakyRelu and Relu ---------------------------------------------------------------------

def test_leaky_relu_hand_case():
    layer = LeakyRelu(0, 0, *IDENTITY, 1 << 30, -1)  # alpha multiplier 0.25
    x = np.array([-8, -6, -2, 0, 5, 127, -128], np.int8).reshape(1, 1, 7, 1)
    # -6 * 0.25 = -1.5 -> -2 and -2 * 0.25 = -0.5 -> -1 (double rounding, ties away).
    np.testing.assert_array_equal(layer(x).ravel(), [-2, -2, -1, 0, 5, 127, -32])


def test_leaky_relu_matches_elementwise_reference():
    rng = np.random.default_rng(3)
    layer = LeakyRelu.from_scales(0.0102812, 11, 0.00524818, -101, 0.1)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    expected = []
    for value in x.ravel().tolist():
        d = value - 11
        m0, shift = (layer.identity_m0, layer.identity_shift) if d >= 0 else (layer.alpha_m0, layer.alpha_shift)
        expected.append(min(max(multiply_by_quantized_multiplier(d, m0, shift) - 101, -128), 127))
    np.testing.assert_array_equal(layer(x).ravel(), expected)
    assert layer(random_int8(rng, (3, 4, 5))).shape == (3, 4, 5)


def test_leaky_relu_from_scales_computes_in_float32():
    # For these scales float32(s_in * alpha / s_out) and the double product quantize
    # differently; TFLite's Prepare evaluates the float expression.
    s_in, s_out = 0.032211121171712875, 0.014219548553228378
    layer = LeakyRelu.from_scales(s_in, 0, s_out, 0, 0.1)
    assert (layer.alpha_m0, layer.alpha_shift) == (1945852416, -2)
    assert quantize_multiplier(s_in * float(np.float32(0.1)) / s_out)[0] != 1945852416


def test_relu_requantizes_then_clamps():
    layer = Relu.from_scales(0.05, 10, 0.025, -20, "RELU6")
    assert (layer.m0, layer.shift) == quantize_multiplier(2.0)
    assert (layer.act_min, layer.act_max) == (-20, 127)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256, 1)
    expected = np.clip(2 * (np.arange(-128, 128) - 10) - 20, -20, 127)
    np.testing.assert_array_equal(layer(x).ravel(), expected)
    plain = Relu.from_scales(0.1, -5, 0.1, -5, "RELU")
    np.testing.assert_array_equal(plain(x).ravel(), np.maximum(np.arange(-128, 128), -5))
    with pytest.raises(ValueError):
        Relu.from_scales(0.1, 0, 0.1, 0, "NONE")


def test_sequential_chains_layers_and_shapes():
    rng = np.random.default_rng(4)
    conv = Conv2D(random_int8(rng, (4, 3, 3, 3)), np.zeros(4, np.int32), 2, "same", 0, 0,
                  *random_requant(rng, 4))
    pool = MaxPool2D(2, 2, "valid")
    model = Sequential([conv, pool])
    x = random_int8(rng, (2, 9, 9, 3))
    np.testing.assert_array_equal(model(x), pool(conv(x)))
    assert model.output_shape(x.shape) == (2, 2, 2, 4) == model(x).shape
    with pytest.raises(ValueError):
        Sequential([conv, "not a layer"])


# --- calibration helpers --------------------------------------------------------------------

def float_conv_same(x, w, b):
    """Plain float64 stride-1 SAME conv, NHWC input, [Cout, K, K, Cin] weights."""
    kernel = w.shape[1]
    pad = (kernel - 1) // 2
    padded = np.pad(x, ((0, 0), (pad, kernel - 1 - pad), (pad, kernel - 1 - pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (w.shape[0],))
    for ky in range(kernel):
        for kx in range(kernel):
            out += padded[:, ky:ky + height, kx:kx + width, :] @ w[:, ky, kx, :].T
    return out + b


def test_fold_batchnorm_matches_conv_then_batchnorm():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 6, 6, 3))
    w, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mean, var = rng.normal(size=4), rng.uniform(0.1, 2, 4)
    folded_w, folded_b = fold_batchnorm(w, b, gamma, beta, mean, var, eps=1e-3)
    expected = (float_conv_same(x, w, b) - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(float_conv_same(x, folded_w, folded_b), expected, rtol=1e-12, atol=1e-12)
    dw_w, dw_b = fold_batchnorm(rng.normal(size=(3, 3, 4)), None, gamma, beta, mean, var, axis=-1)
    assert dw_w.shape == (3, 3, 4)
    np.testing.assert_allclose(dw_b, -mean * gamma / np.sqrt(var + 1e-3) + beta)


def test_quantize_weights_per_channel_error_within_half_a_step():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(5, 3, 3, 2)) * np.array([1, 0.01, 3, 0.5, 0])[:, None, None, None]
    q, scales = quantize_weights_per_channel(w, axis=0)
    assert q.dtype == np.int8 and scales.dtype == np.float32 and scales.shape == (5,)
    assert np.abs(q).max() <= 127
    assert [int(np.abs(q[c]).max()) for c in range(4)] == [127] * 4  # full range used
    assert scales[4] == 1.0 and not q[4].any()
    error = np.abs(q * scales[:, None, None, None].astype(np.float64) - w)
    assert np.all(error <= scales[:, None, None, None] * (0.5 + 1e-6))


def test_quantize_bias_error_within_half_a_step():
    rng = np.random.default_rng(7)
    b = rng.normal(size=6)
    in_scale, w_scales = 0.0039, rng.uniform(1e-3, 1e-2, 6).astype(np.float32)
    q = quantize_bias(b, in_scale, w_scales)
    step = np.float32(in_scale) * w_scales
    assert q.dtype == np.int32
    assert np.all(np.abs(q * step.astype(np.float64) - b) <= step * (0.5 + 1e-6))


@pytest.mark.parametrize("low, high", [(-1.0, 3.0), (0.5, 7.0), (-6.0, -0.25), (-2.0, 2.0), (-0.001, 100.0)])
def test_activation_qparams_represent_zero_and_cover_the_range(low, high):
    samples = np.random.default_rng(8).uniform(low, high, 1000)
    samples[:2] = low, high
    scale, zp = activation_qparams(samples)
    assert -128 <= zp <= 127 and isinstance(zp, int)
    assert scale * (zp - zp) == 0.0  # 0.0 dequantizes exactly from q = zp
    rmin, rmax = min(low, 0.0), max(high, 0.0)
    assert np.isclose(scale, (rmax - rmin) / 255)
    # Both range ends quantize within one step of the int8 limits.
    assert -129 <= rmin / scale + zp and rmax / scale + zp <= 128
    if low >= 0:
        assert zp == -128
    if high <= 0:
        assert zp == 127
    with pytest.raises(ValueError):
        activation_qparams(np.zeros(4))


def test_calibrated_quantized_conv_approximates_float_conv():
    """BN-fold + quantize + golden Conv2D, dequantized, stays within the error bound
    ``s_out (output rounding, both roundings) + s_w/2 * sum|x| (weights) + s_in*s_w/2 (bias)``."""
    rng = np.random.default_rng(9)
    in_scale, in_zp = activation_qparams(np.array([0.0, 1.0]))  # an image in [0, 1]
    x_q = random_int8(rng, (2, 8, 8, 3))
    x_real = in_scale * (x_q.astype(np.float64) - in_zp)
    w, b = rng.normal(size=(6, 3, 3, 3)) * 0.3, rng.normal(size=6) * 0.1
    w, b = fold_batchnorm(w, b, rng.uniform(0.5, 2, 6), rng.normal(size=6) * 0.1,
                          rng.normal(size=6) * 0.1, rng.uniform(0.5, 2, 6))
    y_float = float_conv_same(x_real, w, b)
    out_scale, out_zp = activation_qparams(y_float)
    w_q, w_scales = quantize_weights_per_channel(w, axis=0)
    b_q = quantize_bias(b, in_scale, w_scales)
    layer = Conv2D.from_scales(w_q, b_q, in_scale, in_zp, w_scales, out_scale, out_zp)
    y_real = out_scale * (layer(x_q).astype(np.float64) - out_zp)
    abs_window_sum = float_conv_same(np.abs(x_real), np.ones((1, 3, 3, 3)), 0)
    bound = (out_scale + w_scales / 2 * abs_window_sum + np.float32(in_scale) * w_scales / 2) * (1 + 1e-6)
    assert np.all(np.abs(y_real - y_float) <= bound)
    assert np.abs(y_real - y_float).max() > 0  # the comparison is not vacuous


# --- layer type registry ------------------------------------------------------------------

def test_layer_types_hold_each_layer_class_once_by_name():
    assert dict(golden_cnn.LAYER_TYPES) == {cls.__name__: cls for cls in (
        Conv2D, DepthwiseConv2D, LeakyRelu, Relu, MaxPool2D, Add, Concatenation,
        ResizeNearestNeighbor, Pad, AveragePool2D, Mean, FullyConnected, Softmax, Logistic)}
    with pytest.raises(TypeError):
        golden_cnn.LAYER_TYPES["Softmax"] = Relu  # read-only: registration is the decorator


def test_a_layer_type_name_is_registered_once():
    with pytest.raises(ValueError, match="Conv2D is already registered"):
        golden_cnn.register_layer(Conv2D)
    impostor = type("Relu", (), {})
    with pytest.raises(ValueError, match="Relu is already registered"):
        golden_cnn.register_layer(impostor)
    assert golden_cnn.LAYER_TYPES["Relu"] is Relu


# --- DepthwiseConv2D with a depth multiplier (against LiteRT BUILTIN_REF) -------------------

DEPTH_MULTIPLIER_CASES = [  # (in shape, multiplier, kernel, stride, padding, per tensor, bias)
    ((1, 7, 6, 3), 2, 3, 1, "same", False, True),
    ((2, 8, 7, 2), 2, 3, 2, "valid", True, False),
    ((1, 9, 9, 1), 8, 3, 2, "same", False, True),     # one channel into eight
    ((1, 6, 7, 2), 8, 5, 1, "same", False, True),
    ((1, 8, 8, 1), 8, 1, 2, "same", True, True),
]


@pytest.mark.parametrize("in_shape, multiplier, kernel, stride, padding, per_tensor, with_bias",
                         DEPTH_MULTIPLIER_CASES)
def test_depthwise_depth_multiplier_matches_litert(in_shape, multiplier, kernel, stride, padding,
                                                    per_tensor, with_bias):
    from test_tflite_import import (Act, Op, Padding, TensorType, activation, build_model, constant,
                                    depthwise_options, probe_inputs, reference_interpreter, run_reference)
    rng = case_rng("dwm", in_shape, multiplier, kernel, stride, padding)
    out_channels = in_shape[-1] * multiplier
    weights = rng.integers(-127, 128, size=(kernel, kernel, out_channels), dtype=np.int8)
    w_scales = rng.uniform(0.001, 0.01, size=1 if per_tensor else out_channels).astype(np.float32)
    in_q, out_q = (0.02, 5), (0.03, -20)
    tensors = [activation(list(in_shape), *in_q), constant(weights[None], TensorType.INT8, w_scales, 3)]
    bias = rng.integers(-20000, 20000, size=out_channels).astype(np.int32)
    if with_bias:
        tensors.append(constant(bias, TensorType.INT32, np.float32(in_q[0]) * np.resize(w_scales, out_channels)))
    else:
        bias = np.zeros(out_channels, np.int32)
    op_inputs = [0, 1, 2] if with_bias else [0, 1]
    layer = DepthwiseConv2D.from_scales(weights, bias, in_q[0], in_q[1], w_scales, out_q[0], out_q[1],
                                        "RELU6", stride, padding, depth_multiplier=multiplier)
    out_shape = list(layer.output_shape(in_shape))
    assert out_shape[-1] == out_channels and layer.in_channels == in_shape[-1]
    tensors.append(activation(out_shape, *out_q))
    options = depthwise_options(Padding.SAME if padding == "same" else Padding.VALID, stride, Act.RELU6,
                                multiplier)
    content = build_model(tensors, [(Op.DEPTHWISE_CONV_2D, op_inputs, [len(tensors) - 1], options)],
                          [0], [len(tensors) - 1])
    interpreter = reference_interpreter(content)
    for x in probe_inputs(rng, in_shape) + [random_int8(rng, in_shape) for _ in range(3)]:
        np.testing.assert_array_equal(layer(x), run_reference(interpreter, x))


def test_depthwise_multiplier_maps_output_channel_to_input_channel():
    # Two input channels (values 1 and 2), multiplier 3: outputs 0-2 read channel 0, 3-5 channel 1.
    x = np.stack([np.full((1, 1), 1, np.int8), np.full((1, 1), 2, np.int8)], axis=-1)
    weights = np.arange(1, 7, dtype=np.int8).reshape(1, 1, 6)
    layer = DepthwiseConv2D(weights, np.zeros(6, np.int32), 1, "same", 0, 0, [IDENTITY[0]] * 6,
                            [IDENTITY[1]] * 6, depth_multiplier=3)
    np.testing.assert_array_equal(layer(x)[0, 0], [1, 2, 3, 8, 10, 12])
    assert (layer.channels, layer.in_channels, layer.out_channels) == (2, 2, 6)
    assert layer.output_shape((4, 5, 2)) == (4, 5, 6)
    with pytest.raises(ValueError, match="multiple of the depth multiplier"):
        DepthwiseConv2D(weights, np.zeros(6, np.int32), 1, "same", 0, 0, [IDENTITY[0]] * 6,
                        [IDENTITY[1]] * 6, depth_multiplier=4)
    with pytest.raises(ValueError, match="channels"):
        layer(np.zeros((3, 3, 6), np.int8))
