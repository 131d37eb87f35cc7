"""golden.elementwise against LiteRT BUILTIN_REF on single-operator int8 models built here.

Every case builds a one-operator .tflite flatbuffer (ADD, CONCATENATION,
RESIZE_NEAREST_NEIGHBOR, PAD, PADV2, QUANTIZE, DEQUANTIZE), runs it in LiteRT with the
reference kernels, and requires the golden model to match bit for bit (0 mismatches).
"""
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.AddOptions import AddOptionsAddFusedActivationFunction, AddOptionsEnd, AddOptionsStart
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions
from tflite.ConcatenationOptions import (ConcatenationOptionsAddAxis,
                                         ConcatenationOptionsAddFusedActivationFunction,
                                         ConcatenationOptionsEnd, ConcatenationOptionsStart)
from tflite.PadOptions import PadOptionsEnd, PadOptionsStart
from tflite.PadV2Options import PadV2OptionsEnd, PadV2OptionsStart
from tflite.ResizeNearestNeighborOptions import (ResizeNearestNeighborOptionsAddAlignCorners,
                                                 ResizeNearestNeighborOptionsAddHalfPixelCenters,
                                                 ResizeNearestNeighborOptionsEnd,
                                                 ResizeNearestNeighborOptionsStart)
from tflite.TensorType import TensorType

from rasterflow.golden.elementwise import (Add, Concatenation, Pad, ResizeNearestNeighbor, dequantize,
                                           quantize)
from rasterflow.golden.quant import activation_range
from test_tflite_import import activation, build_model, constant


# --- option builders and model helpers ------------------------------------------------------

def add_options(act=Act.NONE):
    def build(b):
        AddOptionsStart(b)
        AddOptionsAddFusedActivationFunction(b, act)
        return AddOptionsEnd(b)
    return BuiltinOptions.AddOptions, build


def concatenation_options(axis, act=Act.NONE):
    def build(b):
        ConcatenationOptionsStart(b)
        ConcatenationOptionsAddAxis(b, axis)
        ConcatenationOptionsAddFusedActivationFunction(b, act)
        return ConcatenationOptionsEnd(b)
    return BuiltinOptions.ConcatenationOptions, build


def resize_options(align_corners, half_pixel_centers):
    def build(b):
        ResizeNearestNeighborOptionsStart(b)
        ResizeNearestNeighborOptionsAddAlignCorners(b, align_corners)
        ResizeNearestNeighborOptionsAddHalfPixelCenters(b, half_pixel_centers)
        return ResizeNearestNeighborOptionsEnd(b)
    return BuiltinOptions.ResizeNearestNeighborOptions, build


def pad_options():
    def build(b):
        PadOptionsStart(b)
        return PadOptionsEnd(b)
    return BuiltinOptions.PadOptions, build


def padv2_options():
    def build(b):
        PadV2OptionsStart(b)
        return PadV2OptionsEnd(b)
    return BuiltinOptions.PadV2Options, build


def float_tensor(shape):
    return {"shape": list(shape), "type": TensorType.FLOAT32, "data": None, "scales": [],
            "zero_points": []}


def interpreter_for(model):
    interpreter = Interpreter(model_content=bytes(model),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    return interpreter


def run(interpreter, *xs):
    for detail, x in zip(interpreter.get_input_details(), xs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def assert_exact(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    mismatches = int(np.count_nonzero(got.view(np.uint8 if got.dtype == np.int8 else np.uint32)
                                      != expected.view(np.uint8 if got.dtype == np.int8 else np.uint32)))
    assert mismatches == 0, f"{mismatches} mismatches of {got.size}"


def int8_frames(rng, shape, count=3):
    """Random int8 frames plus the two constant extremes."""
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(count)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


# --- ADD ------------------------------------------------------------------------------------

ACT_NAMES = {Act.NONE: "NONE", Act.RELU: "RELU", Act.RELU6: "RELU6", Act.RELU_N1_TO_1: "RELU_N1_TO_1"}

ADD_CASES = [
    # (in1 (scale, zp), in2 (scale, zp), out (scale, zp), activation)
    ((0.05, 3), (0.05, 3), (0.05, 3), Act.NONE),          # all equal
    ((0.05, 0), (0.05, 0), (0.1, -1), Act.NONE),          # equal inputs, wider output
    ((0.0173, -7), (0.1321, 25), (0.1411, -11), Act.NONE),
    ((0.5, 10), (0.0019, -100), (0.37, 4), Act.NONE),      # very different input scales
    ((0.0019, -100), (0.5, 10), (0.0071, 60), Act.NONE),   # ... swapped, output saturates
    ((1e-4, 127), (3.0, -128), (2.9, 0), Act.NONE),        # ratio 3e4: in1 multiplier tiny
    ((0.023, -3), (0.031, 17), (0.047, -20), Act.RELU),
    ((0.023, -3), (0.031, 17), (0.027, -128), Act.RELU6),  # RELU6 upper clamp bites
    ((0.08, 5), (0.04, -9), (0.031, -5), Act.RELU6),
    ((0.011, 0), (0.013, 2), (0.02, 1), Act.RELU_N1_TO_1),
]

ADD_SHAPES = [
    ((1, 5, 7, 8), (1, 5, 7, 8)),   # same shape
    ((1, 5, 7, 8), (1, 1, 1, 8)),   # per-channel vector
    ((1, 1, 1, 8), (1, 5, 7, 8)),   # broadcast on the first input
    ((1, 5, 7, 8), (1,)),           # scalar-like
    ((2, 4, 1, 3), (1, 1, 6, 1)),   # both sides broadcast
    ((2, 3, 1, 4, 5), (3, 1, 5)),   # 5-D, lower rank second input
    ((2, 1, 3, 1, 2, 3), (1, 2, 1, 2, 1, 3)),  # 6-D
]


@pytest.mark.parametrize("case", range(len(ADD_CASES)))
def test_add_matches_litert(case):
    (s1, z1), (s2, z2), (so, zo), act = ADD_CASES[case]
    rng = np.random.default_rng(case)
    lo, hi = activation_range(ACT_NAMES[act], so, zo)
    golden = Add(s1, z1, s2, z2, so, zo, lo, hi)
    for shape1, shape2 in ADD_SHAPES:
        out_shape = list(np.broadcast_shapes(shape1, shape2))
        model = build_model(
            [activation(list(shape1), s1, z1), activation(list(shape2), s2, z2),
             activation(out_shape, so, zo)],
            [(Op.ADD, [0, 1], [2], add_options(act))], [0, 1], [2])
        interpreter = interpreter_for(model)
        for x1, x2 in zip(int8_frames(rng, shape1), int8_frames(rng, shape2)[::-1]):
            assert_exact(golden(x1, x2), run(interpreter, x1, x2))
        # every pair of int8 values once (same-shape path), ordered across the channels
        if shape1 == shape2 == (1, 5, 7, 8):
            grid = np.stack(np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)), -1).reshape(-1, 2)
            big = [activation([1, 256, 256, 1], s1, z1), activation([1, 256, 256, 1], s2, z2),
                   activation([1, 256, 256, 1], so, zo)]
            full = interpreter_for(build_model(big, [(Op.ADD, [0, 1], [2], add_options(act))],
                                               [0, 1], [2]))
            a = grid[:, 0].astype(np.int8).reshape(1, 256, 256, 1)
            b = grid[:, 1].astype(np.int8).reshape(1, 256, 256, 1)
            assert_exact(golden(a, b), run(full, a, b))


def test_add_multipliers_follow_tflite_prepare():
    add = Add(0.05, 0, 0.1, 0, 0.12, 0)
    assert add.left_shift == 20
    assert add.in2_multiplier == (1 << 30, 0)        # 0.1 / 0.2 = 0.5 exactly
    assert add.in1_multiplier[1] <= 0 and add.out_multiplier[1] <= 0


@pytest.mark.parametrize("kwargs, word", [
    ({"in1_scale": 0.0}, "in1_scale"),
    ({"in2_scale": float("nan")}, "in2_scale"),
    ({"out_zp": 128}, "out_zp"),
    ({"in1_zp": 1.5}, "in1_zp"),
    ({"act_min": 10, "act_max": 5}, "act_min"),
    ({"out_scale": 1e-9}, "output multiplier"),  # 2*max/(2**20*out) >= 1
])
def test_add_rejects_bad_parameters(kwargs, word):
    params = dict(in1_scale=0.05, in1_zp=0, in2_scale=0.05, in2_zp=0, out_scale=0.1, out_zp=0)
    params.update(kwargs)
    with pytest.raises(ValueError, match=word):
        Add(**params)


def test_add_rejects_shapes_that_do_not_broadcast():
    add = Add(0.05, 0, 0.05, 0, 0.1, 0)
    with pytest.raises(ValueError, match="broadcast"):
        add(np.zeros((1, 2, 2, 3), np.int8), np.zeros((1, 2, 2, 4), np.int8))
    with pytest.raises(ValueError, match="int8"):
        add(np.zeros((1, 2, 2, 3), np.int16), np.zeros((1, 2, 2, 3), np.int8))


# --- CONCATENATION --------------------------------------------------------------------------

@pytest.mark.parametrize("axis, channels, q", [
    (3, (3, 5), (0.04, -6)),
    (-1, (2, 1, 4), (0.1, 17)),
    (1, (2, 3, 1), (0.5, 0)),       # along height
    (2, (4, 2), (0.007, -128)),     # along width
])
def test_concatenation_matches_litert(axis, channels, q):
    rng = np.random.default_rng(len(channels) * 10 + axis)
    shapes = []
    for size in channels:
        shape = [1, 4, 5, 3]
        shape[axis] = size
        shapes.append(shape)
    out_shape = list(shapes[0])
    out_shape[axis] = sum(channels)
    n = len(shapes)
    model = build_model([activation(s, *q) for s in shapes] + [activation(out_shape, *q)],
                        [(Op.CONCATENATION, list(range(n)), [n], concatenation_options(axis))],
                        list(range(n)), [n])
    interpreter = interpreter_for(model)
    golden = Concatenation(axis, [q] * n, *q)
    for _ in range(3):
        xs = [rng.integers(-128, 128, size=s, dtype=np.int8) for s in shapes]
        assert_exact(golden(*xs), run(interpreter, *xs))


@pytest.mark.parametrize("in_params", [
    [(0.04, -6), (0.08, -6)],                 # differing scales
    [(0.04, -6), (0.04, 3)],                  # differing zero points
    [(0.04, -6), (0.04, -6), (0.9, 100)],
])
def test_concatenation_with_differing_parameters_is_refused_like_litert(in_params):
    out_q = (0.04, -6)
    shapes = [[1, 2, 2, 2]] * len(in_params)
    n = len(shapes)
    model = build_model([activation(s, *p) for s, p in zip(shapes, in_params)] +
                        [activation([1, 2, 2, 2 * n], *out_q)],
                        [(Op.CONCATENATION, list(range(n)), [n], concatenation_options(3))],
                        list(range(n)), [n])
    with pytest.raises(RuntimeError):
        interpreter_for(model)
    with pytest.raises(ValueError, match=r"in_params\[\d\]"):
        Concatenation(3, in_params, *out_q)


def test_concatenation_with_fused_activation_is_refused_by_litert():
    q = (0.04, -6)
    model = build_model([activation([1, 2, 2, 1], *q)] * 2 + [activation([1, 2, 2, 2], *q)],
                        [(Op.CONCATENATION, [0, 1], [2], concatenation_options(3, Act.RELU))],
                        [0, 1], [2])
    with pytest.raises(RuntimeError):
        interpreter_for(model)


def test_concatenation_rejects_bad_input():
    with pytest.raises(ValueError, match="in_params"):
        Concatenation(3, [], 0.1, 0)
    with pytest.raises(ValueError, match="axis"):
        Concatenation(7, [(0.1, 0)], 0.1, 0)
    golden = Concatenation(3, [(0.1, 0)] * 2, 0.1, 0)
    with pytest.raises(ValueError, match="differ outside axis"):
        golden(np.zeros((1, 2, 2, 1), np.int8), np.zeros((1, 3, 2, 1), np.int8))
    with pytest.raises(ValueError, match="expected 2 inputs"):
        golden(np.zeros((1, 2, 2, 1), np.int8))


# --- RESIZE_NEAREST_NEIGHBOR ----------------------------------------------------------------

RESIZE_SIZES = [
    ((5, 7), (10, 14)),   # x2
    ((4, 4), (8, 8)),     # x2
    ((5, 7), (8, 17)),    # non-integer factors, upscale
    ((9, 10), (4, 3)),    # non-integer factors, downscale
    ((3, 3), (1, 1)),     # single output pixel (align_corners scale falls back to in/out)
    ((1, 1), (3, 2)),
    ((6, 5), (13, 11)),
    # sizes where a float64 scale would pick a different source pixel than TFLite's float32
    # (2->82 plain, 2->41 half-pixel, 2->83 align-corners, 2->42 both)
    ((2, 2), (82, 41)),
    ((2, 2), (83, 42)),
]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("half_pixel_centers", [False, True])
def test_resize_nearest_neighbor_matches_litert(align_corners, half_pixel_centers):
    rng = np.random.default_rng(2 * align_corners + half_pixel_centers)
    q = (0.05, 7)
    for (in_h, in_w), (out_h, out_w) in RESIZE_SIZES:
        in_shape, out_shape = [2, in_h, in_w, 3], [2, out_h, out_w, 3]
        size = constant(np.array([out_h, out_w], np.int32), TensorType.INT32, [])
        model = build_model([activation(in_shape, *q), size, activation(out_shape, *q)],
                            [(Op.RESIZE_NEAREST_NEIGHBOR, [0, 1], [2],
                              resize_options(align_corners, half_pixel_centers))], [0], [2])
        interpreter = interpreter_for(model)
        golden = ResizeNearestNeighbor(out_h, out_w, align_corners, half_pixel_centers)
        # distinct values per pixel so a wrong index cannot hide
        ramp = (np.arange(2 * in_h * in_w * 3) % 256 - 128).astype(np.int8).reshape(in_shape)
        for x in [ramp, rng.integers(-128, 128, size=in_shape, dtype=np.int8)]:
            assert_exact(golden(x), run(interpreter, x))
        assert golden(ramp[0]).shape == (out_h, out_w, 3)


def test_resize_nearest_neighbor_rejects_bad_parameters():
    with pytest.raises(ValueError, match="out_height"):
        ResizeNearestNeighbor(0, 4)
    with pytest.raises(ValueError, match="align_corners"):
        ResizeNearestNeighbor(4, 4, align_corners=1)
    with pytest.raises(ValueError, match="HWC or NHWC"):
        ResizeNearestNeighbor(4, 4)(np.zeros((4, 4), np.int8))


# --- PAD / PADV2 ----------------------------------------------------------------------------

PAD_CASES = [
    [[0, 0], [1, 2], [3, 0], [0, 0]],   # image style, asymmetric
    [[0, 0], [0, 3], [2, 1], [1, 2]],   # channels too
    [[1, 0], [2, 2], [0, 1], [0, 0]],   # batch too
    [[0, 0], [0, 0], [0, 0], [0, 0]],
]


@pytest.mark.parametrize("paddings", PAD_CASES)
@pytest.mark.parametrize("v2", [False, True])
def test_pad_matches_litert(paddings, v2):
    rng = np.random.default_rng(len(str(paddings)) + v2)
    q = (0.03, -17)
    in_shape = [1, 3, 4, 2]
    out_shape = [n + a + b for n, (a, b) in zip(in_shape, paddings)]
    pads = constant(np.array(paddings, np.int32), TensorType.INT32, [])
    tensors = [activation(in_shape, *q), pads]
    if v2:
        fill = 93
        tensors.append({"shape": [], "type": TensorType.INT8, "data": np.array([fill], np.int8).tobytes(),
                        "scales": [q[0]], "zero_points": [q[1]]})
        operator = (Op.PADV2, [0, 1, 2], [3], padv2_options())
    else:
        fill = q[1]
        operator = (Op.PAD, [0, 1], [2], pad_options())
    tensors.append(activation(out_shape, *q))
    interpreter = interpreter_for(build_model(tensors, [operator], [0], [len(tensors) - 1]))
    golden = Pad(paddings, fill)
    for x in int8_frames(rng, in_shape):
        assert_exact(golden(x), run(interpreter, x))


def test_pad_rejects_bad_parameters():
    with pytest.raises(ValueError, match="paddings"):
        Pad([[0, -1]])
    with pytest.raises(ValueError, match="paddings"):
        Pad([[0, 0]] * 5)
    with pytest.raises(ValueError, match="constant"):
        Pad([[0, 0]], 200)
    with pytest.raises(ValueError, match="dimensions"):
        Pad([[0, 0]] * 4)(np.zeros((2, 2), np.int8))


# --- QUANTIZE / DEQUANTIZE ------------------------------------------------------------------

QUANT_PARAMS = [(1.0, 0), (1.0, -5), (0.5, -3), (0.1, 5), (0.0373, -128), (3.7, 127), (1e-3, 12)]


def float_probe(rng, scale, zp):
    """Random floats across (and beyond) the int8 range, exact .5 ties and values one
    float32 ulp either side of them, and non-finite / beyond-int32 values."""
    s = np.float32(scale)
    steps = np.arange(-140, 141, dtype=np.float32)
    ties = (steps + np.float32(0.5)) * s   # float32 products; many are exact ties after / s
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    spread = rng.uniform(-200 * scale, 200 * scale, 4000).astype(np.float32)
    exact_halves = (np.arange(-300, 301, dtype=np.float32) / np.float32(2))
    # beyond int32 (and NaN/inf) the kernel's int32 cast gives INT32_MIN, then + zp wraps
    extremes = [0.0, -0.0, 1e30, -1e30, 3e9, -3e9, 2147483520.0, -2147483648.0, np.inf, -np.inf, np.nan]
    return np.concatenate([ties, near, spread, exact_halves, extremes]).astype(np.float32)


@pytest.mark.parametrize("scale, zp", QUANT_PARAMS)
def test_quantize_matches_litert(scale, zp):
    rng = np.random.default_rng(int(scale * 1000) + zp + 128)
    x = float_probe(rng, scale, zp).reshape(1, -1)
    model = build_model([float_tensor(x.shape), activation(list(x.shape), scale, zp)],
                        [(Op.QUANTIZE, [0], [1], None)], [0], [1])
    got = run(interpreter_for(model), x)
    expected = quantize(x, scale, zp)
    assert_exact(expected, got)
    if (scale, zp) == (1.0, 0):  # ties really are ties here: away from zero, not to even
        assert list(quantize(np.array([0.5, -0.5, 1.5, 2.5, -2.5], np.float32), 1.0, 0)) == [1, -1, 2, 3, -3]


@pytest.mark.parametrize("scale, zp", QUANT_PARAMS + [(0.1, -128), (7e-5, 3)])
def test_dequantize_matches_litert(scale, zp):
    q = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    model = build_model([activation([1, 256], scale, zp), float_tensor([1, 256])],
                        [(Op.DEQUANTIZE, [0], [1], None)], [0], [1])
    assert_exact(dequantize(q, scale, zp), run(interpreter_for(model), q))


def test_quantize_dequantize_reject_bad_parameters():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="scale"):
        quantize(x, -1.0, 0)
    with pytest.raises(ValueError, match="zp"):
        quantize(x, 1.0, 300)
    with pytest.raises(ValueError, match="float32"):
        quantize(x.astype(np.float64), 1.0, 0)
    with pytest.raises(ValueError, match="int8"):
        dequantize(np.zeros(3, np.int16), 1.0, 0)
