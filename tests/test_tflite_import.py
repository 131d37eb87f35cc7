"""The TFLite importer and golden layers against LiteRT's reference kernels.

Three sources of truth: the stored fixtures (``<name>_expected.npy``, produced by LiteRT
BUILTIN_REF), the LiteRT interpreter run here with ``OpResolverType.BUILTIN_REF`` on
random inputs (whole models and every intermediate tensor), and small single-operator
models built here with the flatbuffer builder to reach variants the fixtures lack
(stride 2 VALID, 1x1, per-tensor weights, no bias, RELU6 clamps that bite, standalone
ReLUs, pools with fused activations) and the importer's error paths.
"""
import collections
import json
import os
import tomllib
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import tflite
import tomli_w
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.Buffer import BufferAddData, BufferEnd, BufferStart
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions
from tflite.Conv2DOptions import (Conv2DOptionsAddDilationHFactor, Conv2DOptionsAddDilationWFactor,
                                  Conv2DOptionsAddFusedActivationFunction, Conv2DOptionsAddPadding,
                                  Conv2DOptionsAddStrideH, Conv2DOptionsAddStrideW, Conv2DOptionsEnd,
                                  Conv2DOptionsStart)
from tflite.DepthwiseConv2DOptions import (
    DepthwiseConv2DOptionsAddDepthMultiplier, DepthwiseConv2DOptionsAddFusedActivationFunction,
    DepthwiseConv2DOptionsAddPadding, DepthwiseConv2DOptionsAddStrideH, DepthwiseConv2DOptionsAddStrideW,
    DepthwiseConv2DOptionsEnd, DepthwiseConv2DOptionsStart)
from tflite.LeakyReluOptions import LeakyReluOptionsAddAlpha, LeakyReluOptionsEnd, LeakyReluOptionsStart
from tflite.Model import (ModelAddBuffers, ModelAddOperatorCodes, ModelAddSubgraphs, ModelAddVersion,
                          ModelEnd, ModelStart)
from tflite.Operator import (OperatorAddBuiltinOptions, OperatorAddBuiltinOptionsType, OperatorAddInputs,
                             OperatorAddOpcodeIndex, OperatorAddOutputs, OperatorEnd, OperatorStart)
from tflite.OperatorCode import (OperatorCodeAddBuiltinCode, OperatorCodeAddDeprecatedBuiltinCode,
                                 OperatorCodeAddVersion, OperatorCodeEnd, OperatorCodeStart)
from tflite.Padding import Padding
from tflite.Pool2DOptions import (Pool2DOptionsAddFilterHeight, Pool2DOptionsAddFilterWidth,
                                  Pool2DOptionsAddFusedActivationFunction, Pool2DOptionsAddPadding,
                                  Pool2DOptionsAddStrideH, Pool2DOptionsAddStrideW, Pool2DOptionsEnd,
                                  Pool2DOptionsStart)
from tflite.QuantizationParameters import (QuantizationParametersAddQuantizedDimension,
                                           QuantizationParametersAddScale,
                                           QuantizationParametersAddZeroPoint, QuantizationParametersEnd,
                                           QuantizationParametersStart)
from tflite.SubGraph import (SubGraphAddInputs, SubGraphAddOperators, SubGraphAddOutputs,
                             SubGraphAddTensors, SubGraphEnd, SubGraphStart)
from tflite.Tensor import (TensorAddBuffer, TensorAddName, TensorAddQuantization, TensorAddShape,
                           TensorAddType, TensorEnd, TensorStart)
from tflite.TensorType import TensorType

from rasterflow.golden.cnn import (LAYER_TYPES, Conv2D, DepthwiseConv2D, LeakyRelu, MaxPool2D, Relu,
                                   Sequential)
from rasterflow.ops import STAGES
from rasterflow.stages_cnn import LAYER_STAGES, Conv2DStage, plan_folding, stage_from_layer
from rasterflow.tflite_import import (ImportedModel, ModelError, layer_from_dict, layer_to_dict,
                                      load_sidecar, load_tflite, save_sidecar)
import rasterflow.tflite_import as tflite_import

DATA = Path(__file__).parent / "data" / "tflite"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
NAMES = [entry["name"] for entry in MANIFEST]


def reference_interpreter(model, batch=None, preserve=False):
    """LiteRT with the reference kernels; ``model`` is a path or flatbuffer bytes."""
    source = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": bytes(model)}
    interpreter = Interpreter(**source, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=preserve)
    if batch is not None:
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interpreter.allocate_tensors()
    return interpreter


def run_reference(interpreter, x):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def probe_inputs(rng, shape):
    """Random int8 frames plus the two constant extremes (saturation paths)."""
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


# --- the stored fixtures --------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_fixture_reproduces_expected_output(name):
    model = load_tflite(DATA / f"{name}.tflite")
    x = np.load(DATA / f"{name}_input.npy")
    expected = np.load(DATA / f"{name}_expected.npy")
    entry = MANIFEST[NAMES.index(name)]
    assert list(model.op_names) == entry["ops"]
    assert list(x.shape) == entry["input_shape"] and list(expected.shape) == entry["expected_shape"]
    np.testing.assert_array_equal(model(x), expected)


@pytest.mark.parametrize("name", NAMES)
def test_golden_matches_litert_reference_on_random_inputs(name):
    path = DATA / f"{name}.tflite"
    model = load_tflite(path)
    interpreter = reference_interpreter(path, batch=2)
    for x in probe_inputs(np.random.default_rng(len(name)), (2, *model.input_shape[1:])):
        np.testing.assert_array_equal(model(x), run_reference(interpreter, x))


def operator_io(path):
    """[(input tensor index, output tensor index)] per operator, read with the tflite package."""
    graph = tflite.Model.GetRootAs(path.read_bytes(), 0).Subgraphs(0)
    return [(graph.Operators(i).Inputs(0), graph.Operators(i).Outputs(0))
            for i in range(graph.OperatorsLength())]


@pytest.mark.parametrize("name", NAMES)
def test_every_layer_matches_litert_intermediate_tensors(name):
    """``layers=(i, i+1)`` reproduces operator i's output from its interpreter input, and
    ``layers=(1, n)`` the rest of the chain from the first intermediate tensor."""
    path = DATA / f"{name}.tflite"
    interpreter = reference_interpreter(path, preserve=True)
    io = operator_io(path)
    x = np.random.default_rng(7).integers(-128, 128, size=load_tflite(path).input_shape, dtype=np.int8)
    run_reference(interpreter, x)
    for index, (source, result) in enumerate(io):
        layer_model = load_tflite(path, layers=(index, index + 1))
        assert layer_model.op_indices == (index,)
        np.testing.assert_array_equal(layer_model(interpreter.get_tensor(source)),
                                      interpreter.get_tensor(result), err_msg=f"operator {index}")
    tail = load_tflite(path, layers=(1, len(io)))
    np.testing.assert_array_equal(tail(interpreter.get_tensor(io[1][0])), interpreter.get_tensor(io[-1][1]))


WHOLE = Path(__file__).parent / "data" / "tflite2"
WHOLE_MODELS = json.loads((WHOLE / "manifest.json").read_text())


def expected_outputs(name):
    path = WHOLE / f"{name}_expected.npy"
    if path.exists():
        return [np.load(path)]
    with np.load(WHOLE / f"{name}_expected.npz") as archive:
        return [archive[f"output{k}"] for k in range(len(archive.files))]


def reference_outputs(interpreter, x):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]


@pytest.mark.parametrize("entry", WHOLE_MODELS, ids=lambda entry: entry["name"])
def test_whole_model_fixture_reproduces_expected_outputs(entry):
    model = load_tflite(WHOLE / f"{entry['name']}.tflite")
    relabelling = tflite_import.LAYOUT_OPS + tflite_import.EDGE_OPS
    assert list(model.op_names) == [op for op in entry["ops"] if op not in relabelling]
    assert (model.input.dtype == "float32") == entry["float_io"]
    outputs = model.predict(np.load(WHOLE / f"{entry['name']}_input.npy"))
    expected = expected_outputs(entry["name"])
    assert [list(y.shape) for y in outputs] == entry["output_shapes"]
    for got, want in zip(outputs, expected, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("entry", WHOLE_MODELS, ids=lambda entry: entry["name"])
def test_whole_model_matches_litert_reference_on_random_inputs(entry):
    path = WHOLE / f"{entry['name']}.tflite"
    model = load_tflite(path)
    interpreter = reference_interpreter(path)
    rng = np.random.default_rng(7)
    shape = model.input.shape
    for _ in range(2):
        x = (rng.uniform(-1.2, 1.2, size=shape).astype(np.float32) if entry["float_io"]
             else rng.integers(-128, 128, size=shape, dtype=np.int8))
        for got, want in zip(model.predict(x), reference_outputs(interpreter, x), strict=True):
            np.testing.assert_array_equal(got, want)


def test_fixture_parameters_are_extracted():
    model = load_tflite(DATA / "mobile_block_40.tflite")
    conv, depthwise, pointwise = model.layers
    assert isinstance(conv, Conv2D) and isinstance(depthwise, DepthwiseConv2D)
    assert (conv.stride, conv.padding, conv.weights.shape) == (2, "same", (8, 3, 3, 3))
    assert depthwise.weights.shape == (3, 3, 8) and pointwise.weights.shape == (16, 1, 1, 8)
    assert model.input_shape == (1, 40, 40, 3) and model.outputs[0].shape == (1, 20, 20, 16)
    assert model.input_zero_point == -128 and np.isclose(model.input_scale, 0.00392064)
    assert (model.outputs[0].zero_point == -128 and np.isclose(model.outputs[0].scale, 0.00184964)
            and model.outputs[0].dtype == "int8")
    yolo = load_tflite(DATA / "yolo_block_64.tflite")
    leaky, pool = yolo.layers[1:]
    assert isinstance(leaky, LeakyRelu) and (leaky.in_zp, leaky.out_zp) == (11, -101)
    assert (pool.size, pool.stride, pool.padding) == (2, 2, "same")
    assert load_tflite(DATA / "yolo_pool_s1_26.tflite").layers[2].stride == 1


# --- a small TFLite model builder -----------------------------------------------------------

def activation(shape, scale, zero_point, type_=TensorType.INT8):
    return {"shape": shape, "type": type_, "data": None, "scales": [scale], "zero_points": [zero_point]}


def constant(array, type_, scales, dimension=0):
    return {"shape": list(array.shape), "type": type_, "data": array.tobytes(), "scales": list(scales),
            "zero_points": [0] * len(scales), "dimension": dimension}


def conv_options(padding=Padding.SAME, stride=1, act=Act.NONE, stride_h=None, dilation=1):
    def build(b):
        Conv2DOptionsStart(b)
        Conv2DOptionsAddPadding(b, padding)
        Conv2DOptionsAddStrideW(b, stride)
        Conv2DOptionsAddStrideH(b, stride if stride_h is None else stride_h)
        Conv2DOptionsAddFusedActivationFunction(b, act)
        Conv2DOptionsAddDilationWFactor(b, dilation)
        Conv2DOptionsAddDilationHFactor(b, dilation)
        return Conv2DOptionsEnd(b)
    return BuiltinOptions.Conv2DOptions, build


def depthwise_options(padding=Padding.SAME, stride=1, act=Act.NONE, multiplier=1):
    def build(b):
        DepthwiseConv2DOptionsStart(b)
        DepthwiseConv2DOptionsAddPadding(b, padding)
        DepthwiseConv2DOptionsAddStrideW(b, stride)
        DepthwiseConv2DOptionsAddStrideH(b, stride)
        DepthwiseConv2DOptionsAddDepthMultiplier(b, multiplier)
        DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
        return DepthwiseConv2DOptionsEnd(b)
    return BuiltinOptions.DepthwiseConv2DOptions, build


def pool_options(size, stride, padding=Padding.SAME, act=Act.NONE):
    def build(b):
        Pool2DOptionsStart(b)
        Pool2DOptionsAddPadding(b, padding)
        Pool2DOptionsAddStrideW(b, stride)
        Pool2DOptionsAddStrideH(b, stride)
        Pool2DOptionsAddFilterWidth(b, size)
        Pool2DOptionsAddFilterHeight(b, size)
        Pool2DOptionsAddFusedActivationFunction(b, act)
        return Pool2DOptionsEnd(b)
    return BuiltinOptions.Pool2DOptions, build


def leaky_options(alpha):
    def build(b):
        LeakyReluOptionsStart(b)
        LeakyReluOptionsAddAlpha(b, alpha)
        return LeakyReluOptionsEnd(b)
    return BuiltinOptions.LeakyReluOptions, build


def _vector(b, values, prepend, width):
    b.StartVector(width, len(values), width)
    for value in reversed(values):
        prepend(value)
    return b.EndVector()


def build_model(tensors, operators, inputs, outputs):
    """Serialize a one-subgraph TFLite model.

    ``tensors``: dicts from :func:`activation` / :func:`constant`; ``operators``: tuples
    ``(builtin code, input indices, output indices, (options type, builder) or None)``.
    """
    b = flatbuffers.Builder(4096)
    buffers = []
    for data in [None] + [t["data"] for t in tensors]:
        vector = None
        if data:
            b.Prep(16, len(data))  # keep constant data 16-byte aligned, like the converter
            vector = b.CreateByteVector(data)
        BufferStart(b)
        if vector is not None:
            BufferAddData(b, vector)
        buffers.append(BufferEnd(b))
    tensor_offsets = []
    for index, t in enumerate(tensors):
        name = b.CreateString(f"t{index}")
        shape = _vector(b, t["shape"], b.PrependInt32, 4)
        scales = _vector(b, t["scales"], b.PrependFloat32, 4)
        zero_points = _vector(b, t["zero_points"], b.PrependInt64, 8)
        QuantizationParametersStart(b)
        QuantizationParametersAddScale(b, scales)
        QuantizationParametersAddZeroPoint(b, zero_points)
        QuantizationParametersAddQuantizedDimension(b, t.get("dimension", 0))
        quantization = QuantizationParametersEnd(b)
        TensorStart(b)
        TensorAddShape(b, shape)
        TensorAddType(b, t["type"])
        TensorAddBuffer(b, index + 1)
        TensorAddName(b, name)
        TensorAddQuantization(b, quantization)
        tensor_offsets.append(TensorEnd(b))
    codes = sorted({op[0] for op in operators})
    operator_offsets = []
    for code, op_inputs, op_outputs, options in operators:
        input_vector = _vector(b, op_inputs, b.PrependInt32, 4)
        output_vector = _vector(b, op_outputs, b.PrependInt32, 4)
        options_offset = options[1](b) if options else None
        OperatorStart(b)
        OperatorAddOpcodeIndex(b, codes.index(code))
        OperatorAddInputs(b, input_vector)
        OperatorAddOutputs(b, output_vector)
        if options:
            OperatorAddBuiltinOptionsType(b, options[0])
            OperatorAddBuiltinOptions(b, options_offset)
        operator_offsets.append(OperatorEnd(b))
    tensor_vector = _vector(b, tensor_offsets, b.PrependUOffsetTRelative, 4)
    operator_vector = _vector(b, operator_offsets, b.PrependUOffsetTRelative, 4)
    input_vector = _vector(b, inputs, b.PrependInt32, 4)
    output_vector = _vector(b, outputs, b.PrependInt32, 4)
    SubGraphStart(b)
    SubGraphAddTensors(b, tensor_vector)
    SubGraphAddInputs(b, input_vector)
    SubGraphAddOutputs(b, output_vector)
    SubGraphAddOperators(b, operator_vector)
    subgraph = SubGraphEnd(b)
    code_offsets = []
    for code in codes:
        OperatorCodeStart(b)
        OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        OperatorCodeAddBuiltinCode(b, code)
        OperatorCodeAddVersion(b, 1)
        code_offsets.append(OperatorCodeEnd(b))
    code_vector = _vector(b, code_offsets, b.PrependUOffsetTRelative, 4)
    subgraph_vector = _vector(b, [subgraph], b.PrependUOffsetTRelative, 4)
    buffer_vector = _vector(b, buffers, b.PrependUOffsetTRelative, 4)
    ModelStart(b)
    ModelAddVersion(b, 3)
    ModelAddOperatorCodes(b, code_vector)
    ModelAddSubgraphs(b, subgraph_vector)
    ModelAddBuffers(b, buffer_vector)
    b.Finish(ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def conv_model(rng, in_shape, out_channels, kernel, options, out_shape, out_q=(0.05, -10),
               per_tensor=False, with_bias=True, depthwise=False):
    in_channels = in_shape[-1]
    if depthwise:
        weights = rng.integers(-127, 128, size=(1, kernel, kernel, out_channels), dtype=np.int8)
        dimension = 3
    else:
        weights = rng.integers(-127, 128, size=(out_channels, kernel, kernel, in_channels), dtype=np.int8)
        dimension = 0
    w_scales = rng.uniform(0.001, 0.01, size=1 if per_tensor else out_channels).astype(np.float32)
    in_q = (0.02, 5)
    tensors = [activation(in_shape, *in_q), constant(weights, TensorType.INT8, w_scales, dimension)]
    op_inputs = [0, 1]
    if with_bias:
        bias = rng.integers(-20000, 20000, size=out_channels).astype(np.int32)
        tensors.append(constant(bias, TensorType.INT32, np.float32(in_q[0]) * np.resize(w_scales, out_channels)))
        op_inputs.append(2)
    tensors.append(activation(out_shape, *out_q))
    code = Op.DEPTHWISE_CONV_2D if depthwise else Op.CONV_2D
    return build_model(tensors, [(code, op_inputs, [len(tensors) - 1], options)], [0], [len(tensors) - 1])


def unary_model(code, shape, in_q, out_q, options=None, out_shape=None, in_type=TensorType.INT8):
    tensors = [activation(shape, *in_q, type_=in_type), activation(out_shape or shape, *out_q, type_=in_type)]
    return build_model(tensors, [(code, [0], [1], options)], [0], [1])


SINGLE_OP_MODELS = {
    "conv3x3_s2_valid_relu": lambda rng: conv_model(
        rng, [1, 9, 9, 3], 5, 3, conv_options(Padding.VALID, 2, Act.RELU), [1, 4, 4, 5]),
    "conv3x3_s2_same_relu6_clamps": lambda rng: conv_model(
        rng, [1, 8, 7, 3], 4, 3, conv_options(Padding.SAME, 2, Act.RELU6), [1, 4, 4, 4], out_q=(0.03, -100)),
    "conv3x3_s1_same_relu_n1_to_1": lambda rng: conv_model(
        rng, [1, 6, 6, 2], 3, 3, conv_options(Padding.SAME, 1, Act.RELU_N1_TO_1), [1, 6, 6, 3], out_q=(0.01, 3)),
    "conv1x1_per_tensor": lambda rng: conv_model(
        rng, [1, 5, 6, 4], 6, 1, conv_options(), [1, 5, 6, 6], per_tensor=True),
    "conv1x1_s2_same": lambda rng: conv_model(
        rng, [1, 7, 6, 3], 4, 1, conv_options(Padding.SAME, 2), [1, 4, 3, 4]),
    "conv2x2_s2_same": lambda rng: conv_model(
        rng, [1, 7, 7, 2], 3, 2, conv_options(Padding.SAME, 2), [1, 4, 4, 3]),
    "conv5x5_s1_valid": lambda rng: conv_model(
        rng, [1, 8, 9, 2], 3, 5, conv_options(Padding.VALID, 1), [1, 4, 5, 3]),
    "depthwise_s2_same_relu6": lambda rng: conv_model(
        rng, [1, 9, 8, 4], 4, 3, depthwise_options(Padding.SAME, 2, Act.RELU6), [1, 5, 4, 4],
        out_q=(0.02, -90), depthwise=True),
    "depthwise_s1_valid_no_bias": lambda rng: conv_model(
        rng, [1, 6, 7, 3], 3, 3, depthwise_options(Padding.VALID, 1), [1, 4, 5, 3], depthwise=True,
        with_bias=False),
    "maxpool_2_1_valid": lambda rng: unary_model(
        Op.MAX_POOL_2D, [1, 6, 5, 3], (0.1, 4), (0.1, 4), pool_options(2, 1, Padding.VALID), [1, 5, 4, 3]),
    "maxpool_2_2_valid_odd": lambda rng: unary_model(
        Op.MAX_POOL_2D, [1, 7, 5, 3], (0.1, 4), (0.1, 4), pool_options(2, 2, Padding.VALID), [1, 3, 2, 3]),
    "maxpool_3_2_same_relu": lambda rng: unary_model(
        Op.MAX_POOL_2D, [1, 7, 6, 2], (0.1, 4), (0.1, 4), pool_options(3, 2, Padding.SAME, Act.RELU),
        [1, 4, 3, 2]),
    # Scales for which the float32 and double alpha multipliers differ (see test_golden_cnn).
    "leaky_relu_float32_multiplier": lambda rng: unary_model(
        Op.LEAKY_RELU, [1, 4, 4, 8], (0.032211121171712875, 7), (0.014219548553228378, -30),
        leaky_options(0.1)),
    "leaky_relu_alpha_0.2": lambda rng: unary_model(
        Op.LEAKY_RELU, [1, 4, 4, 8], (0.01, -3), (0.02, 20), leaky_options(0.2)),
    "relu_rescaling": lambda rng: unary_model(Op.RELU, [1, 4, 4, 8], (0.05, 10), (0.03, -100)),
    "relu6_rescaling": lambda rng: unary_model(Op.RELU6, [1, 4, 4, 8], (0.05, 10), (0.025, -128)),
    "relu_n1_to_1": lambda rng: unary_model(Op.RELU_N1_TO_1, [1, 4, 4, 8], (0.02, 0), (0.01, 0)),
}


@pytest.mark.parametrize("name", SINGLE_OP_MODELS)
def test_single_operator_models_match_litert(name, tmp_path):
    rng = np.random.default_rng(len(name))
    content = SINGLE_OP_MODELS[name](rng)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(content)
    model = load_tflite(path)
    interpreter = reference_interpreter(content)
    for x in probe_inputs(rng, model.input_shape):
        expected = run_reference(interpreter, x)
        np.testing.assert_array_equal(model(x), expected)
    assert expected.shape == model.outputs[0].shape


def test_single_operator_models_exercise_the_clamps(tmp_path):
    """The RELU6 variants above are only meaningful if their clamp is active."""
    path = tmp_path / "m.tflite"
    path.write_bytes(SINGLE_OP_MODELS["conv3x3_s2_same_relu6_clamps"](np.random.default_rng(0)))
    conv = load_tflite(path).layers[0]
    assert (conv.act_min, conv.act_max) == (-100, 100)
    path.write_bytes(SINGLE_OP_MODELS["relu6_rescaling"](np.random.default_rng(0)))
    relu = load_tflite(path).layers[0]
    assert isinstance(relu, Relu) and (relu.act_min, relu.act_max) == (-128, 112)
    path.write_bytes(SINGLE_OP_MODELS["conv1x1_per_tensor"](np.random.default_rng(0)))
    assert len(set(load_tflite(path).layers[0].m0.tolist())) == 1


# --- errors ---------------------------------------------------------------------------------

def write(tmp_path, content, name="model.tflite"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def expect_operator_error(path, index, op_name, reason):
    with pytest.raises(ModelError) as info:
        load_tflite(path)
    message = str(info.value)
    assert f"operator {index} ({op_name})" in message and reason in message and str(path) in message
    return message


def test_unsupported_operator_is_named_with_its_index(tmp_path):
    tensors = [activation([1, 4, 4, 2], 0.1, 0), activation([1, 4, 4, 2], 0.1, 0),
               activation([1, 4, 4, 2], 0.1, 0)]
    content = build_model(tensors, [(Op.RELU, [0], [1], None), (Op.TANH, [1], [2], None)], [0], [2])
    path = write(tmp_path, content)
    expect_operator_error(path, 1, "TANH", "unsupported operator")
    assert load_tflite(path, layers=(0, 1)).op_names == ("RELU",)  # the supported prefix imports


def test_float_model_is_rejected(tmp_path):
    path = write(tmp_path, unary_model(Op.RELU, [1, 4, 4, 2], (0.1, 0), (0.1, 0), in_type=TensorType.FLOAT32))
    expect_operator_error(path, 0, "RELU", "float (FLOAT32)")


def test_uint8_activation_is_rejected(tmp_path):
    path = write(tmp_path, unary_model(Op.RELU, [1, 4, 4, 2], (0.1, 0), (0.1, 0), in_type=TensorType.UINT8))
    expect_operator_error(path, 0, "RELU", "only int8 activations")


@pytest.mark.parametrize("options, reason", [
    (conv_options(dilation=2), "dilation 2x2"),
    (conv_options(stride=2, stride_h=1), "non-square stride 1x2"),
    (conv_options(act=Act.TANH), "fused activation TANH"),
])
def test_conv_options_outside_the_supported_set(tmp_path, options, reason):
    path = write(tmp_path, conv_model(np.random.default_rng(0), [1, 8, 8, 2], 3, 3, options, [1, 8, 4, 3]
                                      if "stride" in reason else [1, 8, 8, 3]))
    expect_operator_error(path, 0, "CONV_2D", reason)


def test_conv_without_bias_is_rejected_like_tflite(tmp_path):
    content = conv_model(np.random.default_rng(0), [1, 5, 5, 2], 3, 3, conv_options(), [1, 5, 5, 3],
                         with_bias=False)
    with pytest.raises(RuntimeError, match="has_bias"):
        reference_interpreter(content)
    expect_operator_error(write(tmp_path, content), 0, "CONV_2D", "needs a bias tensor")


def test_depth_multiplier_two_imports_and_matches_litert(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, size=(1, 3, 3, 4), dtype=np.int8)
    tensors = [activation([1, 5, 5, 2], 0.02, 0), constant(weights, TensorType.INT8, [0.01] * 4, 3),
               activation([1, 5, 5, 4], 0.05, 0)]
    content = build_model(tensors, [(Op.DEPTHWISE_CONV_2D, [0, 1], [2], depthwise_options(multiplier=2))],
                          [0], [2])
    model = load_tflite(write(tmp_path, content))
    assert model.layers[0].depth_multiplier == 2
    interpreter = reference_interpreter(content)
    for x in probe_inputs(rng, model.input_shape):
        np.testing.assert_array_equal(model(x), run_reference(interpreter, x))


def test_per_channel_scales_on_the_wrong_dimension_are_rejected(tmp_path):
    weights = np.ones((3, 1, 1, 3), np.int8)
    tensors = [activation([1, 4, 4, 3], 0.02, 0), constant(weights, TensorType.INT8, [0.01] * 3, dimension=3),
               constant(np.zeros(3, np.int32), TensorType.INT32, [0.0002] * 3), activation([1, 4, 4, 3], 0.05, 0)]
    content = build_model(tensors, [(Op.CONV_2D, [0, 1, 2], [3], conv_options())], [0], [3])
    expect_operator_error(write(tmp_path, content), 0, "CONV_2D", "3 scales on dimension 3")


def test_a_branching_graph_imports_with_both_outputs(tmp_path):
    tensors = [activation([1, 4, 4, 2], 0.1, 0), activation([1, 4, 4, 2], 0.05, -3),
               activation([1, 4, 4, 2], 0.02, 5)]
    content = build_model(tensors, [(Op.RELU, [0], [1], None), (Op.RELU6, [0], [2], None)], [0], [1, 2])
    model = load_tflite(write(tmp_path, content))
    assert [node.inputs for node in model.nodes] == [("input",), ("input",)]
    assert [output.node for output in model.outputs] == ["op0_relu", "op1_relu6"]
    interpreter = reference_interpreter(content)
    for x in probe_inputs(np.random.default_rng(1), model.input_shape):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        for got, detail in zip(model.run(x), interpreter.get_output_details()):
            np.testing.assert_array_equal(got, interpreter.get_tensor(detail["index"]))


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file") as info:
        load_tflite(tmp_path / "absent.tflite")
    assert "absent.tflite" in str(info.value)
    with pytest.raises(ModelError, match="cannot read"):
        load_tflite(tmp_path)


@pytest.mark.parametrize("content", [b"", b"TFL3", b"\x00" * 64, os.urandom(512)])
def test_files_that_are_not_tflite(tmp_path, content):
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        load_tflite(write(tmp_path, content))


def test_corrupt_flatbuffer_with_a_valid_header(tmp_path):
    real = (DATA / "yolo_block_64.tflite").read_bytes()
    corrupt = real[:8] + bytes(np.random.default_rng(0).integers(0, 256, len(real) - 8, dtype=np.uint8))
    with pytest.raises(ModelError, match="corrupt") as info:
        load_tflite(write(tmp_path, corrupt))
    assert "model.tflite" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_truncated_fixtures_are_rejected(tmp_path, name):
    real = (DATA / f"{name}.tflite").read_bytes()
    for length in (8, 64, len(real) // 4, len(real) // 2, len(real) - 64, len(real) - 1):
        with pytest.raises(ModelError) as info:
            load_tflite(write(tmp_path, real[:length]))
        assert "model.tflite" in str(info.value)


@pytest.mark.parametrize("layers", [(0, 0), (2, 1), (0, 4), (-1, 2)])
def test_bad_layer_ranges(layers):
    with pytest.raises(ModelError, match="not a non-empty range"):
        load_tflite(DATA / "yolo_block_64.tflite", layers=layers)


# --- sidecar ------------------------------------------------------------------------------

def all_layer_kinds():
    return (load_tflite(DATA / "mobile_block_40.tflite").layers + load_tflite(DATA / "yolo_block_64.tflite").layers
            + (Relu.from_scales(0.05, 10, 0.025, -128, "RELU6"), MaxPool2D(3, 1, "valid", -5, 100)))


@pytest.mark.parametrize("layer", all_layer_kinds(), ids=lambda layer: type(layer).__name__)
def test_layer_dict_round_trip_is_exact_and_toml_able(layer):
    params, arrays = layer_to_dict(layer, "stage3")
    assert params["type"] == type(layer).__name__
    assert all(type(value) in (int, str, float, bool, list) for value in params.values())
    assert tomllib.loads(tomli_w.dumps(params)) == params
    assert all(key.startswith("stage3.") and params[key.split(".", 1)[1]] == key for key in arrays)
    rebuilt = layer_from_dict(params, arrays)
    assert type(rebuilt) is type(layer)
    for key, value in vars(layer).items():
        np.testing.assert_array_equal(getattr(rebuilt, key), value)
    channels = {Conv2D: "in_channels", DepthwiseConv2D: "channels"}.get(type(layer))
    shape = (1, 8, 8, getattr(layer, channels) if channels else 4)
    x = np.random.default_rng(0).integers(-128, 128, size=shape, dtype=np.int8)
    np.testing.assert_array_equal(rebuilt(x), layer(x))


def test_layer_from_dict_rejects_bad_input():
    params, arrays = layer_to_dict(MaxPool2D(2, 2, "same"), "p")
    with pytest.raises(ValueError, match="unknown layer type"):
        layer_from_dict({**params, "type": "Tanh"}, arrays)
    with pytest.raises(ValueError, match="lack 'stride'"):
        layer_from_dict({k: v for k, v in params.items() if k != "stride"}, arrays)
    with pytest.raises(ValueError, match="unknown keys"):
        layer_from_dict({**params, "colour": 1}, arrays)
    conv_params, _ = layer_to_dict(load_tflite(DATA / "yolo_block_64.tflite").layers[0], "c")
    with pytest.raises(ValueError, match="no array named"):
        layer_from_dict(conv_params, {})


def test_sidecar_round_trip(tmp_path):
    model = load_tflite(DATA / "yolo_two_blocks_32.tflite")
    target = tmp_path / "model.npz"
    save_sidecar(model, target)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary left behind
    loaded = load_sidecar(target)
    assert isinstance(loaded, ImportedModel)
    for field in ("op_names", "op_indices", "input", "outputs"):
        assert getattr(loaded, field) == getattr(model, field), field
    assert [node.inputs for node in loaded.nodes] == [node.inputs for node in model.nodes]
    x = np.load(DATA / "yolo_two_blocks_32_input.npy")
    np.testing.assert_array_equal(loaded(x), np.load(DATA / "yolo_two_blocks_32_expected.npy"))


def test_sidecar_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "model.npz"
    save_sidecar(load_tflite(DATA / "yolo_block_64.tflite"), target)
    before = target.read_bytes()

    def failing_savez(handle, **arrays):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tflite_import.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_sidecar(load_tflite(DATA / "mobile_block_40.tflite"), target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


# --- registries ---------------------------------------------------------------------------

def test_importer_registration_is_refused_twice_or_for_unknown_operators():
    before = dict(tflite_import.IMPORTERS)
    with pytest.raises(ValueError, match="CONV_2D already has an importer"):
        tflite_import.importer("CONV_2D")(lambda op: None)
    with pytest.raises(ValueError, match="RELU6 already has an importer"):
        tflite_import.importer("TANH", "RELU6")(lambda op: None)
    with pytest.raises(ValueError, match="not a TFLite builtin operator"):
        tflite_import.importer("CONV_3X3")(lambda op: None)
    assert dict(tflite_import.IMPORTERS) == before  # a refused registration adds nothing
    with pytest.raises(TypeError):
        tflite_import.IMPORTERS["TANH"] = before["CONV_2D"]  # read-only


def test_unsupported_operator_lists_exactly_the_registered_importers(tmp_path):
    tensors = [activation([1, 4, 4, 2], 0.1, 0), activation([1, 4, 4, 2], 0.1, 0)]
    path = write(tmp_path, build_model(tensors, [(Op.TANH, [0], [1], None)], [0], [1]))
    message = expect_operator_error(path, 0, "TANH", "unsupported operator")
    listed = message.split("(supported: ", 1)[1].rstrip(")").split(", ")
    assert listed == [*tflite_import.IMPORTERS, *tflite_import.LAYOUT_OPS, *tflite_import.EDGE_OPS]
    assert set(tflite_import.IMPORTERS) == {
        "CONV_2D", "DEPTHWISE_CONV_2D", "LEAKY_RELU", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
        "FULLY_CONNECTED", "SOFTMAX", "LOGISTIC", "ADD", "CONCATENATION",
        "RESIZE_NEAREST_NEIGHBOR", "PAD", "PADV2", "RELU", "RELU6", "RELU_N1_TO_1"}


def test_every_golden_layer_type_has_exactly_one_stage_class():
    # Every class along the spec stages' MROs that declares a layer type "is made from" it.
    makers = {cls for stage in STAGES.values() for cls in stage.__mro__
              if vars(cls).get("layer_type") is not None}
    counts = collections.Counter(cls.layer_type for cls in makers)
    assert counts == collections.Counter(LAYER_TYPES.values())
    assert dict(LAYER_STAGES) == {cls.layer_type: cls for cls in makers}


@pytest.mark.parametrize("layer", all_layer_kinds(), ids=lambda layer: type(layer).__name__)
def test_stage_from_layer_builds_the_registered_stage(layer):
    stage = stage_from_layer(layer)
    assert isinstance(stage, LAYER_STAGES[type(layer)]) and type(stage.layer) is type(layer)


def test_a_second_stage_class_for_a_layer_type_is_refused():
    with pytest.raises(TypeError, match="Conv2D already makes Conv2DStage"):
        class AnotherConv(Conv2DStage):
            layer_type = Conv2D
    with pytest.raises(TypeError, match="not a registered golden layer class"):
        class NotGolden(Conv2DStage):
            layer_type = ImportedModel
    assert LAYER_STAGES[Conv2D] is Conv2DStage and ImportedModel not in LAYER_STAGES


def test_layers_without_a_stage_are_named():
    with pytest.raises(TypeError, match="no stage for Sequential"):
        stage_from_layer(Sequential(()))
    with pytest.raises(TypeError, match="no stage for Sequential"):
        plan_folding([MaxPool2D(2, 2, "same"), Sequential(())], 8, 8)
