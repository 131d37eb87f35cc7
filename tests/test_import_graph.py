"""The whole-graph TFLite importer against LiteRT BUILTIN_REF on small models built here.

Every model is written with the flatbuffer builder of test_tflite_import, imported with
:func:`~rasterflow.tflite_import.load_tflite` and run with ``run`` / ``predict``; LiteRT's
reference kernels on the same bytes must give the same outputs with zero mismatches, on
random inputs and the constant -128 / 127 frames. Covered: every operator the whole-model
importer added (single-operator models, plus the joins fed by branches of the input), the
model's edges done by the host (float32 I/O, an NCHW input, layout-only reshapes, the order
of several outputs), the operators it refuses (a ModelError naming the operator), filters and
biases written with a stale ``quantized_dimension``, and ``layers=(a, b)`` cuts.
"""
import numpy as np
import pytest
from test_golden_elementwise import (add_options, concatenation_options, float_tensor, pad_options,
                                     padv2_options, resize_options)
from test_golden_nonlinear import softmax_options
from test_golden_pooling import fc_options, reducer_options
from test_tflite_import import (Act, Op, Padding, TensorType, activation, build_model, constant,
                                conv_options, depthwise_options, expect_operator_error, pool_options,
                                probe_inputs, reference_interpreter, reference_outputs, write)

from rasterflow.golden.elementwise import Concatenation
from rasterflow.tflite_import import INPUT, ModelError, load_tflite

SOFTMAX_OUT = (1.0 / 256, -128)  # LiteRT's required int8 SOFTMAX / LOGISTIC output quantization


def import_and_compare(tmp_path, content, inputs=None, seed=0):
    """Import ``content``, require ``run`` and ``predict`` to equal LiteRT on ``inputs`` (default:
    :func:`probe_inputs` of the model's input shape) and return the imported model."""
    model = load_tflite(write(tmp_path, content))
    interpreter = reference_interpreter(content)
    if inputs is None:
        inputs = probe_inputs(np.random.default_rng(seed), model.input.shape)
    for x in inputs:
        expected = reference_outputs(interpreter, x)
        predicted = model.predict(x)
        assert len(predicted) == len(expected) == len(model.outputs)
        for got, want in zip(predicted, expected):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
        if model.input.dtype == "int8" and model.input.layout == "nhwc":
            for spec, got, want in zip(model.outputs, model.run(x), expected):
                if spec.dtype == "int8":  # run() gives the int8 streams, before the host's edges
                    np.testing.assert_array_equal(got, want)
    return model


def int32_constant(values):
    return constant(np.array(values, np.int32), TensorType.INT32, [])


def conv1x1(rng, in_q, in_channels, out_channels):
    """Weights and bias tensors of a per-channel 1x1 CONV_2D."""
    weights = rng.integers(-127, 128, size=(out_channels, 1, 1, in_channels), dtype=np.int8)
    scales = rng.uniform(0.002, 0.01, size=out_channels).astype(np.float32)
    bias = rng.integers(-3000, 3000, size=out_channels).astype(np.int32)
    return [constant(weights, TensorType.INT8, scales),
            constant(bias, TensorType.INT32, np.float32(in_q[0]) * scales)]


# --- 1. the newly imported operators --------------------------------------------------------

@pytest.mark.parametrize("shape, size, stride, padding, act, out_shape", [
    ([1, 6, 8, 3], 2, 2, Padding.VALID, Act.NONE, [1, 3, 4, 3]),
    ([1, 7, 5, 3], 2, 2, Padding.SAME, Act.RELU6, [1, 4, 3, 3]),
    ([1, 5, 5, 4], 5, 5, Padding.VALID, Act.NONE, [1, 1, 1, 4]),   # global pool
])
def test_average_pool(tmp_path, shape, size, stride, padding, act, out_shape):
    q = (0.05, -7)
    content = build_model([activation(shape, *q), activation(out_shape, *q)],
                          [(Op.AVERAGE_POOL_2D, [0], [1], pool_options(size, stride, padding, act))],
                          [0], [1])
    model = import_and_compare(tmp_path, content)
    assert model.op_names == ("AVERAGE_POOL_2D",) and model.outputs[0].shape == tuple(out_shape)


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean(tmp_path, keep_dims):
    out_shape = [1, 1, 1, 4] if keep_dims else [1, 4]
    content = build_model([activation([1, 5, 6, 4], 0.05, -7), int32_constant([1, 2]),
                           activation(out_shape, 0.03, 12)],
                          [(Op.MEAN, [0, 1], [2], reducer_options(keep_dims))], [0], [2])
    model = import_and_compare(tmp_path, content)
    assert model.nodes[0].shape == tuple(out_shape) and model.nodes[0].stream_shape == (1, 1, 4)


def fully_connected_model(rng, feed, per_channel, with_bias, channels=8, out_channels=5):
    """``feed`` makes the [1, C] (or [1, 1, 1, C]) operand: "mean" (keep_dims false),
    "mean_keep" (keep_dims true) or "reshape" (of a [1, 1, 1, C] model input). With a bias
    the FULLY_CONNECTED has a fused RELU."""
    in_q, mid_q, out_q = (0.05, -7), (0.03, 4), (0.07, -10)
    if feed == "reshape":
        mid_q = in_q
        tensors = [activation([1, 1, 1, channels], *in_q), int32_constant([1, channels]),
                   activation([1, channels], *mid_q)]
        operators = [(Op.RESHAPE, [0, 1], [2], None)]
    else:
        keep = feed == "mean_keep"
        tensors = [activation([1, 4, 5, channels], *in_q), int32_constant([1, 2]),
                   activation([1, 1, 1, channels] if keep else [1, channels], *mid_q)]
        operators = [(Op.MEAN, [0, 1], [2], reducer_options(keep))]
    weights = rng.integers(-127, 128, size=(out_channels, channels), dtype=np.int8)
    scales = rng.uniform(0.002, 0.01, size=out_channels if per_channel else 1).astype(np.float32)
    tensors.append(constant(weights, TensorType.INT8, scales))
    fc_inputs = [2, 3, -1]
    if with_bias:
        bias = rng.integers(-20000, 20000, size=out_channels).astype(np.int32)
        bias_scales = np.float32(mid_q[0]) * np.resize(scales, out_channels)
        tensors.append(constant(bias, TensorType.INT32, bias_scales))
        fc_inputs[2] = 4
    tensors.append(activation([1, out_channels], *out_q))
    out = len(tensors) - 1
    operators.append((Op.FULLY_CONNECTED, fc_inputs, [out], fc_options(Act.RELU if with_bias else Act.NONE)))
    return build_model(tensors, operators, [0], [out])


@pytest.mark.parametrize("feed", ["mean", "mean_keep", "reshape"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fully_connected(tmp_path, feed, per_channel, with_bias):
    rng = np.random.default_rng([len(feed), per_channel, with_bias])
    model = import_and_compare(tmp_path, fully_connected_model(rng, feed, per_channel, with_bias))
    expected_ops = ("FULLY_CONNECTED",) if feed == "reshape" else ("MEAN", "FULLY_CONNECTED")
    assert model.op_names == expected_ops
    fc = model.layers[-1]
    assert len(np.unique(fc.scale)) == (5 if per_channel else 1)
    assert np.any(fc.bias != 0) == with_bias
    assert model.outputs[0].shape == (1, 5)


def test_softmax_after_a_layout_only_reshape_is_one_node(tmp_path):
    """RESHAPE [1, 1, 1, C] -> [1, C] relabels the one-pixel stream: no node."""
    channels = 10
    content = build_model([activation([1, 1, 1, channels], 0.1, 5), int32_constant([1, channels]),
                           activation([1, channels], 0.1, 5), activation([1, channels], *SOFTMAX_OUT)],
                          [(Op.RESHAPE, [0, 1], [2], None),
                           (Op.SOFTMAX, [2], [3], softmax_options(1.0))], [0], [3])
    rng = np.random.default_rng(3)
    inputs = probe_inputs(rng, (1, 1, 1, channels)) + [np.where(np.arange(channels) == 3, 90, -100)
                                                       .astype(np.int8).reshape(1, 1, 1, channels)]
    model = import_and_compare(tmp_path, content, inputs)
    (node,) = model.nodes
    assert (node.op_name, node.op_index, node.inputs) == ("SOFTMAX", 1, (INPUT,))
    assert node.input_shapes == ((1, channels),) and model.outputs[0].shape == (1, channels)


def test_logistic(tmp_path):
    content = build_model([activation([1, 4, 5, 6], 0.05, 3), activation([1, 4, 5, 6], *SOFTMAX_OUT)],
                          [(Op.LOGISTIC, [0], [1], None)], [0], [1])
    ramp = (np.arange(120) * 2 - 120).clip(-128, 127).astype(np.int8).reshape(1, 4, 5, 6)
    inputs = probe_inputs(np.random.default_rng(4), (1, 4, 5, 6)) + [ramp]
    assert import_and_compare(tmp_path, content, inputs).op_names == ("LOGISTIC",)


def test_add_of_two_branches_of_the_input(tmp_path):
    shape = [1, 5, 6, 3]
    content = build_model([activation(shape, 0.05, -3), activation(shape, 0.04, -128),
                           activation(shape, 0.03, -100), activation(shape, 0.06, 7)],
                          [(Op.RELU, [0], [1], None), (Op.RELU6, [0], [2], None),
                           (Op.ADD, [1, 2], [3], add_options(Act.RELU6))], [0], [3])
    model = import_and_compare(tmp_path, content)
    assert [(node.name, node.inputs) for node in model.nodes] == [
        ("op0_relu", (INPUT,)), ("op1_relu6", (INPUT,)), ("op2_add", ("op0_relu", "op1_relu6"))]


def concatenation_model(rng, operand_channels, axis=3):
    """CONCATENATION of the input (3 channels) and 1x1 convolutions of it with
    ``operand_channels[1:]`` channels; every operand shares the output's quantization."""
    q = (0.05, -3)
    tensors = [activation([1, 4, 5, operand_channels[0]], *q)]
    operators, operands = [], [0]
    for channels in operand_channels[1:]:
        tensors += conv1x1(rng, q, operand_channels[0], channels)
        tensors.append(activation([1, 4, 5, channels], *q))
        n = len(tensors)
        operators.append((Op.CONV_2D, [0, n - 3, n - 2], [n - 1], conv_options()))
        operands.append(n - 1)
    out_shape = [1, 4, 5, sum(operand_channels)]
    if axis != 3:
        out_shape = [1, 4, 5, operand_channels[0]]
        out_shape[axis] *= len(operand_channels)
    tensors.append(activation(out_shape, *q))
    operators.append((Op.CONCATENATION, operands, [len(tensors) - 1], concatenation_options(axis)))
    return build_model(tensors, operators, [0], [len(tensors) - 1])


def test_concatenation_of_two(tmp_path):
    model = import_and_compare(tmp_path, concatenation_model(np.random.default_rng(5), [3, 2]))
    assert [(node.name, node.inputs) for node in model.nodes] == [
        ("op0_conv_2d", (INPUT,)), ("op1_concatenation", (INPUT, "op0_conv_2d"))]
    assert model.nodes[-1].shape == (1, 4, 5, 5)


def test_concatenation_of_three_is_a_chain_of_two_input_joins(tmp_path):
    model = import_and_compare(tmp_path, concatenation_model(np.random.default_rng(6), [3, 2, 4]))
    first, last = model.nodes[2:]
    assert (first.name, first.inputs, first.op_index) == ("op2_concatenation_1", (INPUT, "op0_conv_2d"), 2)
    assert first.input_shapes == ((1, 4, 5, 3), (1, 4, 5, 2)) and first.shape == (1, 4, 5, 5)
    assert (last.name, last.inputs, last.op_index) == (
        "op2_concatenation", ("op2_concatenation_1", "op1_conv_2d"), 2)
    assert last.input_shapes == ((1, 4, 5, 5), (1, 4, 5, 4)) and last.shape == (1, 4, 5, 9)
    assert all(isinstance(node.layer, Concatenation) and len(node.layer.in_params) == 2
               for node in (first, last))
    assert model.outputs[0].node == "op2_concatenation"


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("half_pixel_centers", [False, True])
@pytest.mark.parametrize("size", [(8, 10), (7, 13)])  # x2; a factor where half_pixel_centers bites
def test_resize_nearest_neighbor(tmp_path, align_corners, half_pixel_centers, size):
    q = (0.05, 7)
    content = build_model([activation([1, 4, 5, 3], *q), int32_constant(size), activation([1, *size, 3], *q)],
                          [(Op.RESIZE_NEAREST_NEIGHBOR, [0, 1], [2],
                            resize_options(align_corners, half_pixel_centers))], [0], [2])
    ramp = (np.arange(60) * 4 - 128).astype(np.int8).reshape(1, 4, 5, 3)  # distinct pixels
    inputs = probe_inputs(np.random.default_rng(7), (1, 4, 5, 3)) + [ramp]
    model = import_and_compare(tmp_path, content, inputs)
    assert model.nodes[0].stream_shape == (*size, 3)


@pytest.mark.parametrize("v2", [False, True])
def test_pad_spatial(tmp_path, v2):
    q = (0.03, -17)
    paddings = [[0, 0], [1, 2], [2, 1], [0, 0]]
    tensors = [activation([1, 3, 4, 2], *q), int32_constant(paddings)]
    if v2:
        tensors.append({"shape": [], "type": TensorType.INT8, "data": np.array([93], np.int8).tobytes(),
                        "scales": [q[0]], "zero_points": [q[1]]})
        operator = (Op.PADV2, [0, 1, 2], [3], padv2_options())
    else:
        operator = (Op.PAD, [0, 1], [2], pad_options())
    tensors.append(activation([1, 6, 7, 2], *q))
    model = import_and_compare(tmp_path, build_model(tensors, [operator], [0], [len(tensors) - 1]))
    assert model.layers[0].constant == (93 if v2 else -17)


def test_depthwise_multiplier_8_on_one_channel(tmp_path):
    rng = np.random.default_rng(8)
    weights = rng.integers(-127, 128, size=(1, 3, 3, 8), dtype=np.int8)
    scales = rng.uniform(0.002, 0.02, size=8).astype(np.float32)
    bias = rng.integers(-5000, 5000, size=8).astype(np.int32)
    content = build_model([activation([1, 7, 7, 1], 0.02, -128),
                           constant(weights, TensorType.INT8, scales, 3),
                           constant(bias, TensorType.INT32, np.float32(0.02) * scales),
                           activation([1, 4, 4, 8], 0.05, -10)],
                          [(Op.DEPTHWISE_CONV_2D, [0, 1, 2], [3],
                            depthwise_options(Padding.SAME, 2, Act.RELU6, multiplier=8))], [0], [3])
    model = import_and_compare(tmp_path, content)
    assert model.layers[0].depth_multiplier == 8


# --- 2. the model's edges -------------------------------------------------------------------

def float_inputs(rng, shape, scale):
    """Floats across and beyond the int8 range of ``scale``, ties (k + 0.5 steps: TFLite
    rounds them away from zero) and the two saturating constants."""
    ties = (rng.integers(-140, 140, size=shape) + np.float32(0.5)).astype(np.float32) * np.float32(scale)
    return [rng.uniform(-200 * scale, 200 * scale, size=shape).astype(np.float32), ties,
            np.full(shape, -1e6, np.float32), np.full(shape, 1e6, np.float32)]


def float_conv_model(rng, in_shape):
    """float32 -> QUANTIZE -> CONV_2D 3x3 -> DEQUANTIZE -> float32; an NCHW ``in_shape``
    (channels second) gets a TRANSPOSE [0, 2, 3, 1] first."""
    in_q, out_q = (0.02, 3), (0.05, -2)
    nchw = in_shape[1] < in_shape[-1]
    nhwc = [in_shape[0], *in_shape[2:], in_shape[1]] if nchw else in_shape
    weights = rng.integers(-127, 128, size=(4, 3, 3, nhwc[-1]), dtype=np.int8)
    scales = rng.uniform(0.002, 0.01, size=4).astype(np.float32)
    bias = rng.integers(-3000, 3000, size=4).astype(np.int32)
    tensors = [float_tensor(in_shape), float_tensor(nhwc), activation(nhwc, *in_q),
               constant(weights, TensorType.INT8, scales),
               constant(bias, TensorType.INT32, np.float32(in_q[0]) * scales),
               activation([*nhwc[:3], 4], *out_q), float_tensor([*nhwc[:3], 4]), int32_constant([0, 2, 3, 1])]
    operators = [(Op.TRANSPOSE, [0, 7], [1], None)] if nchw else []
    operators += [(Op.QUANTIZE, [1 if nchw else 0], [2], None),
                  (Op.CONV_2D, [2, 3, 4], [5], conv_options(act=Act.RELU)),
                  (Op.DEQUANTIZE, [5], [6], None)]
    return build_model(tensors, operators, [0], [6])


def test_float_model_predicts_bit_for_bit(tmp_path):
    rng = np.random.default_rng(9)
    content = float_conv_model(rng, [1, 6, 5, 2])
    model = import_and_compare(tmp_path, content, float_inputs(rng, (1, 6, 5, 2), 0.02))
    assert model.op_names == ("CONV_2D",) and model.op_indices == (1,)
    assert (model.input.dtype, model.input.layout, model.input.shape) == ("float32", "nhwc", (1, 6, 5, 2))
    assert np.isclose(model.input.scale, 0.02) and model.input.zero_point == 3
    assert model.outputs[0].dtype == "float32" and model.outputs[0].zero_point == -2


def test_nchw_float_model(tmp_path):
    rng = np.random.default_rng(10)
    content = float_conv_model(rng, [1, 2, 6, 5])
    model = import_and_compare(tmp_path, content, float_inputs(rng, (1, 2, 6, 5), 0.02))
    assert (model.input.layout, model.input.dtype, model.input.shape) == ("nchw", "float32", (1, 2, 6, 5))
    assert model.input_shape == (1, 6, 5, 2) and model.op_names == ("CONV_2D",)
    assert model.outputs[0].shape == (1, 6, 5, 4)


def test_reshape_that_changes_the_pixel_layout_is_done_by_the_host_at_an_output(tmp_path):
    shape = [1, 4, 4, 2]
    content = build_model([activation(shape, 0.1, 0), activation(shape, 0.05, -3),
                           int32_constant([1, 2, 8, 2]), activation([1, 2, 8, 2], 0.05, -3)],
                          [(Op.RELU, [0], [1], None), (Op.RESHAPE, [1, 2], [3], None)], [0], [3])
    model = import_and_compare(tmp_path, content)
    assert model.op_names == ("RELU",) and model.outputs[0].shape == (1, 2, 8, 2)


def test_outputs_follow_the_subgraph_output_order(tmp_path):
    """Outputs listed against operator order, one dequantized by the host, one read by a
    later operator too."""
    shape, pooled = [1, 6, 6, 2], [1, 3, 3, 2]
    tensors = [activation(shape, 0.1, 0), activation(shape, 0.05, -100), activation(shape, 0.04, -128),
               activation(pooled, 0.05, -100), float_tensor(pooled)]
    content = build_model(tensors, [(Op.RELU, [0], [1], None), (Op.RELU6, [0], [2], None),
                                    (Op.MAX_POOL_2D, [1], [3], pool_options(2, 2, Padding.VALID)),
                                    (Op.DEQUANTIZE, [3], [4], None)], [0], [4, 2, 1])
    model = import_and_compare(tmp_path, content)
    assert [(o.node, o.dtype, o.shape) for o in model.outputs] == [
        ("op2_max_pool_2d", "float32", tuple(pooled)), ("op1_relu6", "int8", tuple(shape)),
        ("op0_relu", "int8", tuple(shape))]


# --- 3. refused graphs ----------------------------------------------------------------------

def relu_chain(shape, code, middle_output, constants=()):
    """input -> RELU -> ``code`` (its extra inputs ``constants``) -> ``middle_output`` -> RELU."""
    q = (0.05, -3)
    tensors = [activation(shape, *q), activation(shape, *q), middle_output,
               activation(middle_output["shape"], *q), *constants]
    middle_inputs = [1, *range(4, 4 + len(constants))]
    return build_model(tensors, [(Op.RELU, [0], [1], None), (code, middle_inputs, [2], None),
                                 (Op.RELU, [2], [3], None)], [0], [3])


def test_reshape_that_changes_the_pixel_layout_before_an_operator(tmp_path):
    content = relu_chain([1, 4, 4, 2], Op.RESHAPE, activation([1, 2, 8, 2], 0.05, -3),
                         [int32_constant([1, 2, 8, 2])])
    reference_interpreter(content)  # a valid model
    expect_operator_error(write(tmp_path, content), 2, "RELU", "changes the pixel layout")


def test_quantize_int8_to_int8_in_the_middle(tmp_path):
    content = relu_chain([1, 4, 4, 2], Op.QUANTIZE, activation([1, 4, 4, 2], 0.02, 9))
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 1, "QUANTIZE", "only at the model's edges")


def test_transpose_in_the_middle(tmp_path):
    content = relu_chain([1, 4, 4, 4], Op.TRANSPOSE, activation([1, 4, 4, 4], 0.05, -3),
                         [int32_constant([0, 2, 3, 1])])
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 1, "TRANSPOSE", "only at the model's edges")


@pytest.mark.parametrize("perm", [[0, 3, 1, 2], [0, 2, 1, 3]])
def test_transpose_with_another_permutation(tmp_path, perm):
    in_shape = [1, 2, 3, 4]
    out_shape = [in_shape[p] for p in perm]
    content = build_model([activation(in_shape, 0.05, 0), activation(out_shape, 0.05, 0),
                           int32_constant(perm), activation(out_shape, 0.05, 0)],
                          [(Op.TRANSPOSE, [0, 2], [1], None), (Op.RELU, [1], [3], None)], [0], [3])
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 0, "TRANSPOSE", f"permutation {perm} is not supported")


def test_dequantize_before_an_operator(tmp_path):
    """A float round trip inside the graph: the QUANTIZE back is not at the input."""
    shape = [1, 4, 4, 2]
    content = build_model([activation(shape, 0.05, -3), activation(shape, 0.05, -3), float_tensor(shape),
                           activation(shape, 0.05, -3), activation(shape, 0.05, -3)],
                          [(Op.RELU, [0], [1], None), (Op.DEQUANTIZE, [1], [2], None),
                           (Op.QUANTIZE, [2], [3], None), (Op.RELU, [3], [4], None)], [0], [4])
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 2, "QUANTIZE", "only at the model's edges")


def test_float_operator_after_a_dequantize(tmp_path):
    shape = [1, 4, 4, 2]
    content = build_model([activation(shape, 0.05, -3), activation(shape, 0.05, -3), float_tensor(shape),
                           float_tensor(shape)],
                          [(Op.RELU, [0], [1], None), (Op.DEQUANTIZE, [1], [2], None),
                           (Op.RELU, [2], [3], None)], [0], [3])
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 2, "RELU", "is float (FLOAT32)")


def test_concatenation_along_a_non_channel_axis(tmp_path):
    content = concatenation_model(np.random.default_rng(11), [3, 3], axis=2)
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 1, "CONCATENATION", "along axis 2")


def test_add_with_a_constant_operand(tmp_path):
    shape = [1, 4, 4, 2]
    addend = constant(np.arange(32, dtype=np.int8).reshape(shape), TensorType.INT8, [0.05])
    content = build_model([activation(shape, 0.05, 0), addend, activation(shape, 0.1, 0)],
                          [(Op.ADD, [0, 1], [2], add_options())], [0], [2])
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 0, "ADD", "is a constant")


@pytest.mark.parametrize("axes, out_shape", [([1], [1, 1, 5, 3]), ([3], [1, 4, 5, 1]),
                                             ([1, 2, 3], [1, 1, 1, 1])])
def test_mean_over_other_axes(tmp_path, axes, out_shape):
    content = build_model([activation([1, 4, 5, 3], 0.05, 0), int32_constant(axes),
                           activation(out_shape, 0.05, 0)],
                          [(Op.MEAN, [0, 1], [2], reducer_options(True))], [0], [2])
    reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 0, "MEAN", f"MEAN over axes {axes}")


# --- 4. a stale quantized_dimension -------------------------------------------------------

def stale_conv_model(filter_dimension, bias_dimension):
    """A per-tensor CONV_2D whose filter and bias carry one scale on ``*_dimension`` (older
    converters wrote 3 there)."""
    rng = np.random.default_rng(12)
    weights = rng.integers(-127, 128, size=(4, 3, 3, 2), dtype=np.int8)
    bias = rng.integers(-4000, 4000, size=4).astype(np.int32)
    tensors = [activation([1, 6, 6, 2], 0.02, 3),
               constant(weights, TensorType.INT8, [0.005], filter_dimension),
               constant(bias, TensorType.INT32, [np.float32(0.02) * np.float32(0.005)], bias_dimension),
               activation([1, 6, 6, 4], 0.05, -2)]
    return build_model(tensors, [(Op.CONV_2D, [0, 1, 2], [3], conv_options(act=Act.RELU))], [0], [3])


@pytest.mark.parametrize("filter_dimension, bias_dimension", [(3, 0), (0, 3), (3, 3)])
def test_stale_quantized_dimension_imports_like_dimension_0(tmp_path, filter_dimension, bias_dimension):
    stale = stale_conv_model(filter_dimension, bias_dimension)
    fresh = stale_conv_model(0, 0)
    if bias_dimension:  # LiteRT 2.x checks the dimension against the rank-1 bias
        with pytest.raises(ValueError, match="quantized_dimension"):
            reference_interpreter(stale)
    reference = fresh if bias_dimension else stale  # a one-scale filter's dimension is ignored
    stale_model = load_tflite(write(tmp_path, stale, "stale.tflite"))
    fresh_model = import_and_compare(tmp_path, fresh, seed=12)
    for name in ("m0", "shift", "bias", "weights"):
        np.testing.assert_array_equal(getattr(stale_model.layers[0], name),
                                      getattr(fresh_model.layers[0], name))
    interpreter = reference_interpreter(reference)
    for x in probe_inputs(np.random.default_rng(13), (1, 6, 6, 2)):
        np.testing.assert_array_equal(stale_model(x), reference_outputs(interpreter, x)[0])


# --- 5. layers=(a, b) cuts ------------------------------------------------------------------

def branching_model():
    """0 CONV_2D 1x1 x -> a; 1 RELU a -> b; 2 RELU6 a -> c; 3 ADD b, c -> d;
    4 MAX_POOL_2D d -> e (the model output). Tensors: x 0, a 3, b 4, c 5, d 6, e 7."""
    rng = np.random.default_rng(14)
    shape = [1, 6, 6, 3]
    tensors = [activation([1, 6, 6, 2], 0.05, -3), *conv1x1(rng, (0.05, -3), 2, 3),
               activation(shape, 0.04, 10), activation(shape, 0.03, -128), activation(shape, 0.02, -128),
               activation(shape, 0.06, -20), activation([1, 3, 3, 3], 0.06, -20)]
    operators = [(Op.CONV_2D, [0, 1, 2], [3], conv_options()), (Op.RELU, [3], [4], None),
                 (Op.RELU6, [3], [5], None), (Op.ADD, [4, 5], [6], add_options()),
                 (Op.MAX_POOL_2D, [6], [7], pool_options(2, 2, Padding.VALID))]
    return build_model(tensors, operators, [0], [7])


def litert_run(content, x):
    """LiteRT after running ``x``, every intermediate tensor kept."""
    interpreter = reference_interpreter(content, preserve=True)
    reference_outputs(interpreter, x)
    return interpreter


@pytest.mark.parametrize("layers, start, outputs, names", [
    ((1, 4), 3, [6], ["op1_relu", "op2_relu6", "op3_add"]),
    ((1, 5), 3, [7], ["op1_relu", "op2_relu6", "op3_add", "op4_max_pool_2d"]),
    ((2, 4), 3, [6], None),    # starts in a branch: ADD's other operand is computed before the cut
    # The fork of tensor a crosses the cut's end: operator 2, after the cut, reads a too.
    ((0, 2), 0, [3, 4], ["op0_conv_2d", "op1_relu"]),
])
def test_layers_cut_of_a_branching_model(tmp_path, layers, start, outputs, names):
    content = branching_model()
    path = write(tmp_path, content)
    if names is None:
        with pytest.raises(ModelError, match=r"operator 3 \(ADD\): input 0 .* not produced by an "
                                              "imported operator"):
            load_tflite(path, layers=layers)
        return
    model = load_tflite(path, layers=layers)
    assert [node.name for node in model.nodes] == names
    for x in probe_inputs(np.random.default_rng(15), (1, 6, 6, 2)):
        interpreter = litert_run(content, x)
        quantization = {d["index"]: d["quantization"] for d in interpreter.get_tensor_details()}
        assert model.input.shape == interpreter.get_tensor(start).shape
        assert np.isclose(model.input.scale, quantization[start][0])
        assert model.input.zero_point == quantization[start][1]
        assert [(o.shape, o.zero_point) for o in model.outputs] == [
            (interpreter.get_tensor(t).shape, quantization[t][1]) for t in outputs]
        for y, t in zip(model.run(interpreter.get_tensor(start)), outputs, strict=True):
            np.testing.assert_array_equal(y, interpreter.get_tensor(t))
