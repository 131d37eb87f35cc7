"""golden.pooling (AVERAGE_POOL_2D, MEAN) and golden.dense (FULLY_CONNECTED) against
LiteRT's reference kernels (``BUILTIN_REF``) on single-operator int8 models built here,
plus hand-computed cases for the rounding rules."""
import time
import zlib

import numpy as np
import pytest
from test_tflite_import import (Act, BuiltinOptions, Op, Padding, TensorType, activation, build_model,
                                constant, pool_options, probe_inputs, reference_interpreter,
                                run_reference)
from tflite.FullyConnectedOptions import (FullyConnectedOptionsAddFusedActivationFunction,
                                          FullyConnectedOptionsAddKeepNumDims, FullyConnectedOptionsEnd,
                                          FullyConnectedOptionsStart)
from tflite.ReducerOptions import ReducerOptionsAddKeepDims, ReducerOptionsEnd, ReducerOptionsStart

from rasterflow.golden.cnn import window_geometry
from rasterflow.golden.dense import FullyConnected
from rasterflow.golden.pooling import AveragePool2D, Mean, divide_round_half_away

ACT_NAMES = {Act.NONE: "NONE", Act.RELU: "RELU", Act.RELU6: "RELU6", Act.RELU_N1_TO_1: "RELU_N1_TO_1"}


def case_rng(*case):
    return np.random.default_rng(zlib.crc32(repr(case).encode()))


def fc_options(act=Act.NONE, keep_num_dims=False):
    def build(b):
        FullyConnectedOptionsStart(b)
        FullyConnectedOptionsAddFusedActivationFunction(b, act)
        FullyConnectedOptionsAddKeepNumDims(b, keep_num_dims)
        return FullyConnectedOptionsEnd(b)
    return BuiltinOptions.FullyConnectedOptions, build


def reducer_options(keep_dims):
    def build(b):
        ReducerOptionsStart(b)
        ReducerOptionsAddKeepDims(b, keep_dims)
        return ReducerOptionsEnd(b)
    return BuiltinOptions.ReducerOptions, build


def assert_matches_litert(content, golden, in_shape, rng, extra=2):
    interpreter = reference_interpreter(content)
    inputs = probe_inputs(rng, in_shape) + [rng.integers(-128, 128, size=in_shape, dtype=np.int8)
                                            for _ in range(extra)]
    for x in inputs:
        expected = run_reference(interpreter, x)
        got = golden(x)
        assert got.shape == expected.shape and got.dtype == np.int8
        np.testing.assert_array_equal(got, expected)
    return expected


# --- divide_round_half_away -----------------------------------------------------------------

def test_division_rounds_half_away_from_zero():
    acc = np.array([2, -2, 1, -1, 6, -6, 5, -5, 0, 7, -7])
    count = np.array([4, 4, 4, 4, 4, 4, 9, 9, 4, 2, 2])
    np.testing.assert_array_equal(divide_round_half_away(acc, count), [1, -1, 0, 0, 2, -2, 1, -1, 0, 4, -4])


# --- AVERAGE_POOL_2D ------------------------------------------------------------------------

POOL_CASES = [  # (height, width, size, stride, padding, act, (scale, zero point))
    (6, 6, 2, 2, Padding.VALID, Act.NONE, (0.05, -7)),
    (7, 5, 2, 2, Padding.SAME, Act.NONE, (0.02, 40)),
    (7, 7, 3, 1, Padding.SAME, Act.RELU, (0.04, -20)),
    (8, 7, 3, 2, Padding.SAME, Act.RELU6, (0.03, -100)),
    (9, 8, 4, 2, Padding.VALID, Act.NONE, (0.1, 3)),
    (9, 9, 4, 3, Padding.SAME, Act.RELU_N1_TO_1, (0.01, 5)),
    (10, 9, 5, 1, Padding.SAME, Act.NONE, (0.02, -128)),
    (11, 10, 5, 2, Padding.VALID, Act.RELU, (0.05, 10)),
    (9, 11, 6, 2, Padding.SAME, Act.NONE, (0.07, -3)),
    (7, 7, 7, 1, Padding.SAME, Act.RELU6, (0.03, -100)),
    (7, 7, 7, 7, Padding.VALID, Act.NONE, (0.05, -7)),   # global pool
    (7, 7, 7, 1, Padding.VALID, Act.RELU, (0.02, 17)),   # global pool, stride 1
    (3, 3, 3, 3, Padding.VALID, Act.NONE, (0.05, 0)),    # global pool
    (3, 3, 3, 1, Padding.SAME, Act.NONE, (0.05, 60)),
    (5, 6, 2, 1, Padding.SAME, Act.NONE, (0.05, -50)),
]


@pytest.mark.parametrize("height, width, size, stride, padding, act, quant", POOL_CASES)
def test_average_pool_matches_litert(height, width, size, stride, padding, act, quant):
    rng = case_rng("avg", height, width, size, stride, padding, act)
    name = "same" if padding == Padding.SAME else "valid"
    out_h = window_geometry(height, size, stride, name)[0]
    out_w = window_geometry(width, size, stride, name)[0]
    in_shape, out_shape = [2, height, width, 3], [2, out_h, out_w, 3]
    content = build_model([activation(in_shape, *quant), activation(out_shape, *quant)],
                          [(Op.AVERAGE_POOL_2D, [0], [1], pool_options(size, stride, padding, act))],
                          [0], [1])
    layer = AveragePool2D.from_scales(size, size, stride, stride, name, quant[0], quant[1], ACT_NAMES[act])
    assert layer.output_shape(tuple(in_shape)) == tuple(out_shape)
    assert_matches_litert(content, layer, in_shape, rng)


def test_average_pool_counts_only_in_image_taps_and_rounds_half_away():
    # 2x2 image, 3x3 SAME stride 1: every window holds all four pixels (count 4).
    x = np.array([[1, 0], [0, 1]], np.int8).reshape(2, 2, 1)      # sum 2 -> 0.5 -> 1
    np.testing.assert_array_equal(AveragePool2D(3, 3, 1, 1, "same")(x)[..., 0], [[1, 1], [1, 1]])
    np.testing.assert_array_equal(AveragePool2D(3, 3, 1, 1, "same")(-x)[..., 0], [[-1, -1], [-1, -1]])
    # 3x1 column 9, 0, 0 with a 2x1 SAME window: [9, 0] -> 4.5 -> 5, [0, 0] -> 0, [0] -> 0.
    column = np.array([9, 0, 0], np.int8).reshape(3, 1, 1)
    np.testing.assert_array_equal(AveragePool2D(2, 1, 1, 1, "same")(column)[:, 0, 0], [5, 0, 0])
    assert AveragePool2D(2, 3, 2, 1, "valid").output_shape((1, 5, 6, 4)) == (1, 2, 4, 4)


# --- MEAN -----------------------------------------------------------------------------------

MEAN_CASES = [  # (batch, height, width, keep_dims, in quant, out quant)
    (1, 7, 7, True, (0.05, -7), (0.05, -7)),
    (2, 3, 3, True, (0.02, 40), (0.02, 40)),
    (1, 7, 7, True, (0.05, -7), (0.03, 12)),
    (2, 5, 4, True, (0.02, 100), (0.06, -128)),
    (1, 6, 6, True, (0.1, 0), (0.011, -3)),
    (1, 7, 7, False, (0.05, -7), (0.05, -7)),
    (2, 3, 3, False, (0.02, 40), (0.02, 40)),
    (2, 4, 5, False, (0.1, -128), (0.1, -128)),
    (1, 7, 7, False, (0.05, -7), (0.03, 12)),
    (2, 5, 4, False, (0.02, 100), (0.06, -128)),
    (1, 6, 6, False, (0.1, 0), (0.011, -3)),
    (2, 3, 3, False, (0.05, 5), (0.05, 6)),        # same scale, different zero point
    (1, 8, 8, False, (0.0037, -1), (0.0041, 0)),   # n = 64, a power of two
]


@pytest.mark.parametrize("batch, height, width, keep_dims, in_q, out_q", MEAN_CASES)
def test_mean_matches_litert(batch, height, width, keep_dims, in_q, out_q):
    rng = case_rng("mean", batch, height, width, keep_dims, in_q, out_q)
    channels = 5
    in_shape = [batch, height, width, channels]
    out_shape = [batch, 1, 1, channels] if keep_dims else [batch, channels]
    axes = np.array([1, 2], np.int32)
    content = build_model([activation(in_shape, *in_q), constant(axes, TensorType.INT32, []),
                           activation(out_shape, *out_q)],
                          [(Op.MEAN, [0, 1], [2], reducer_options(keep_dims))], [0], [2])
    layer = Mean(in_q[0], in_q[1], out_q[0], out_q[1], axes=(1, 2), keep_dims=keep_dims)
    assert layer.output_shape(tuple(in_shape)) == tuple(out_shape)
    assert_matches_litert(content, layer, in_shape, rng, extra=4)


# --- FULLY_CONNECTED ------------------------------------------------------------------------

FC_CASES = [  # (input shape, out channels, per channel, bias, keep_num_dims, act, in q, out q)
    ([1, 16], 8, False, True, False, Act.NONE, (0.02, 5), (0.05, -10)),
    ([1, 16], 8, True, True, False, Act.RELU, (0.02, 5), (0.05, -10)),
    ([4, 12], 6, True, False, False, Act.NONE, (0.05, -128), (0.1, 3)),
    ([4, 12], 6, False, False, False, Act.RELU6, (0.05, -128), (0.02, -90)),
    ([10], 7, True, True, False, Act.NONE, (0.03, 0), (0.04, 20)),
    ([10], 7, False, True, True, Act.NONE, (0.03, 0), (0.04, 20)),
    ([2, 3, 9], 5, True, True, True, Act.RELU_N1_TO_1, (0.01, -3), (0.01, 1)),
    ([2, 3, 9], 5, False, True, False, Act.NONE, (0.01, -3), (0.2, 1)),
    ([3, 64], 10, True, True, False, Act.NONE, (0.004, -128), (0.12, 7)),
]


@pytest.mark.parametrize("in_shape, out_channels, per_channel, with_bias, keep_num_dims, act, in_q, out_q",
                         FC_CASES)
def test_fully_connected_matches_litert(in_shape, out_channels, per_channel, with_bias, keep_num_dims,
                                        act, in_q, out_q):
    rng = case_rng("fc", in_shape, out_channels, per_channel, with_bias, keep_num_dims, act)
    in_channels = in_shape[-1]
    weights = rng.integers(-127, 128, size=(out_channels, in_channels), dtype=np.int8)
    w_scales = rng.uniform(0.001, 0.01, size=out_channels if per_channel else 1).astype(np.float32)
    tensors = [activation(in_shape, *in_q), constant(weights, TensorType.INT8, w_scales, 0)]
    op_inputs = [0, 1]
    bias = None
    if with_bias:
        bias = rng.integers(-20000, 20000, size=out_channels).astype(np.int32)
        tensors.append(constant(bias, TensorType.INT32,
                                np.float32(in_q[0]) * np.resize(w_scales, out_channels)))
        op_inputs.append(2)
    else:
        op_inputs.append(-1)
    layer = FullyConnected.from_scales(weights, bias, in_q[0], in_q[1], w_scales, out_q[0], out_q[1],
                                       ACT_NAMES[act], keep_num_dims=keep_num_dims)
    out_shape = list(layer.output_shape(tuple(in_shape)))
    tensors.append(activation(out_shape, *out_q))
    content = build_model(tensors, [(Op.FULLY_CONNECTED, op_inputs, [len(tensors) - 1],
                                     fc_options(act, keep_num_dims))], [0], [len(tensors) - 1])
    expected = assert_matches_litert(content, layer, in_shape, rng, extra=4)
    assert expected.shape == tuple(out_shape)


def test_fully_connected_hand_case_and_shapes():
    weights = np.array([[1, 2, 3], [-1, 0, 1]], np.int8)
    layer = FullyConnected(weights, [10, -10], [1.0], in_zp=1, out_zp=0)
    x = np.array([2, 3, 4], np.int8)  # x - in_zp = 1, 2, 3
    np.testing.assert_array_equal(layer(x), [[1 + 4 + 9 + 10, -1 + 3 - 10]])
    assert layer(x).shape == (1, 2)
    keep = FullyConnected(weights, None, [1.0], 1, 0, keep_num_dims=True)
    half = FullyConnected(weights, None, [0.25, 0.5], 0, 0)  # ties round away from zero
    np.testing.assert_array_equal(half(np.array([2, 0, 0], np.int8)), [[1, -1]])
    assert keep(x).shape == (2,) and keep(np.zeros((4, 5, 3), np.int8)).shape == (4, 5, 2)
    assert layer(np.zeros((4, 5, 3), np.int8)).shape == (20, 2)
    with pytest.raises(ValueError):
        layer(np.zeros((4, 5), np.int8))


def test_new_golden_ops_are_fast():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(2, 56, 56, 64), dtype=np.int8)
    start = time.perf_counter()
    AveragePool2D(3, 3, 2, 2, "same")(x)
    Mean(0.05, 3, 0.04, -2, keep_dims=True)(x)
    Mean(0.05, 3, 0.04, -2, keep_dims=False)(x)
    FullyConnected(rng.integers(-127, 128, size=(100, 64), dtype=np.int8), None,
                   [0.003], 0, 0)(x)
    assert time.perf_counter() - start < 2.0


def test_mean_folds_the_element_count_into_the_multiplier():
    layer = Mean(0.05, -7, 0.05, -7)
    assert (layer.m0, layer.shift) == (1 << 30, 1)
    # n = 49: s = floor(log2 49) = 5, m0' = 2**35 // 49, shift' = 1 - 5.
    assert layer.folded_multiplier(49) == ((1 << 35) // 49, -4)
    # All codes equal to the zero point: the mean is exactly the output zero point.
    x = np.full((7, 7, 3), -7, np.int8)
    np.testing.assert_array_equal(layer(x), np.full((1, 1, 3), -7))
    assert Mean(0.05, -7, 0.05, -7, keep_dims=False)(x).shape == (3,)
