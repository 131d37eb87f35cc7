"""Int8 CNN hardware vs the golden layers in Amaranth's simulator.

Every shared TFLite fixture runs as one streaming pipeline on a crop of its two input images
(the golden layers are exact at any size, and `Pipeline` rebuilds the geometry for the crop),
back to back, with random valid gaps and ready stalls. Random layers cover what the fixtures
do not (VALID padding, odd sizes, 5x5 stride 2, non-divisor pe/simd, RELU6 clamps). Exact
cycle counts are asserted where the formula is exact: a stride-1 convolution that is the only
bottleneck takes ``F * Wo * Ho * II + latency + schedule_delay`` cycles.

The slow tests run the full-size fixtures through cocotb + Verilator.
"""
from pathlib import Path

import numpy as np
import pytest

from rasterflow.golden.cnn import Conv2D, DepthwiseConv2D, MaxPool2D
from rasterflow.golden.quant import activation_range, quantize_multiplier
from rasterflow.hdl.conv import Conv2DUnit, MacArray
from rasterflow.sim.session import simulate
from rasterflow.spec import load_spec
from rasterflow.stages_cnn import stage_from_layer
from rasterflow.tflite_import import load_tflite

from conftest import make_pipeline, run_layers

DATA = Path(__file__).parent / "data" / "tflite"
EXAMPLES = Path(__file__).parent.parent / "examples"


def fixture(name):
    model = load_tflite(DATA / f"{name}.tflite")
    return model, np.load(DATA / f"{name}_input.npy"), np.load(DATA / f"{name}_expected.npy")


def build(layers, height, width, channels, folding=None, op_names=None):
    folding = folding or {}
    stages = []
    for index, layer in enumerate(layers):
        pe, simd = folding.get(index, (0, 0))
        stages.append(stage_from_layer(layer, op_name=op_names[index] if op_names else None,
                                       pe=pe, simd=simd))
    return make_pipeline(stages, width, height, channels, "int8")


# -- the shared fixtures, cropped, as whole pipelines -----------------------------------------------

FIXTURE_CASES = [
    # name, crop H x W, folding overrides {layer: (pe, simd)}, stall
    ("yolo_block_64", 8, 8, {0: (4, 27)}, 0.3),
    ("yolo_two_blocks_32", 8, 8, {0: (8, 27), 3: (4, 48)}, 0.2),
    ("mobile_block_40", 10, 10, {0: (2, 9), 1: (4, 9), 2: (4, 8)}, 0.3),
    ("mobile_block_40", 7, 9, {0: (8, 27), 1: (3, 5), 2: (5, 3)}, 0.25),   # odd sizes
    ("yolo_pool_s1_26", 7, 9, {0: (2, 27)}, 0.3),
]


@pytest.mark.parametrize("name,height,width,folding,stall", FIXTURE_CASES,
                         ids=[f"{c[0]}-{c[1]}x{c[2]}" for c in FIXTURE_CASES])
def test_fixture_pipeline(name, height, width, folding, stall):
    model, inputs, _ = fixture(name)
    batch = inputs[:, :height, :width]
    pipeline = build(model.layers, height, width, inputs.shape[-1], folding, model.op_names)
    result = run_layers(pipeline, batch, stall=stall, seed=len(name))
    report = result.report()
    assert 0 < report["mac_utilization"] <= 1
    for index, layer in report["layers"].items():
        assert layer["mac_cycles"] == layer["out_pixels"] * layer["initiation_interval"]
        assert layer["mac_cycles"] <= result.cycles


def test_fixture_matches_tflite_expected_at_full_size_golden():
    """The pipeline's golden path reproduces LiteRT's expected output (sanity for the crops)."""
    for name in ("yolo_block_64", "mobile_block_40", "yolo_pool_s1_26", "yolo_two_blocks_32"):
        model, inputs, expected = fixture(name)
        pipeline = build(model.layers, inputs.shape[1], inputs.shape[2], inputs.shape[3],
                         op_names=model.op_names)
        for k in range(len(inputs)):
            np.testing.assert_array_equal(pipeline.golden(inputs[k]), expected[k])


# -- random layers --------------------------------------------------------------------------------

def random_conv(rng, kernel, cin, cout, stride, padding, *, depthwise=False, activation="NONE"):
    shape = (kernel, kernel, cin) if depthwise else (cout, kernel, kernel, cin)
    weights = rng.integers(-127, 128, shape).astype(np.int8)
    channels = cin if depthwise else cout
    bias = rng.integers(-20000, 20000, channels).astype(np.int32)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    pairs = [quantize_multiplier(float(rng.uniform(2e-5, 4e-3))) for _ in range(channels)]
    act_min, act_max = activation_range(activation, 0.05, out_zp)
    cls = DepthwiseConv2D if depthwise else Conv2D
    return cls(weights, bias, stride, padding, in_zp, out_zp, [m for m, _ in pairs],
               [s for _, s in pairs], act_min, act_max)


CONV_CASES = [
    # kernel, cin, cout, stride, padding, depthwise, activation, H, W, pe, simd
    (3, 2, 5, 1, "valid", False, "NONE", 6, 7, 2, 5),
    (3, 3, 4, 2, "valid", False, "RELU6", 9, 8, 4, 9),
    (5, 2, 3, 2, "same", False, "RELU", 8, 9, 3, 10),
    (5, 2, 3, 2, "same", False, "NONE", 7, 6, 1, 50),
    (1, 6, 7, 1, "same", False, "RELU6", 5, 6, 3, 4),
    (1, 4, 3, 2, "valid", False, "NONE", 7, 5, 3, 4),
    (3, 5, 5, 2, "same", True, "RELU6", 9, 10, 2, 4),
    (5, 3, 3, 1, "valid", True, "NONE", 8, 7, 3, 25),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_random_conv_layers(case):
    kernel, cin, cout, stride, padding, depthwise, activation, height, width, pe, simd = case
    rng = np.random.default_rng(sum(map(hash, map(str, case))) & 0xffff)
    layer = random_conv(rng, kernel, cin, cout, stride, padding, depthwise=depthwise,
                        activation=activation)
    pipeline = build([layer], height, width, cin, {0: (pe, simd)})
    batch = rng.integers(-128, 128, (2, height, width, cin)).astype(np.int8)
    result = run_layers(pipeline, batch, stall=0.3, seed=kernel * 7 + stride)
    layer_report = result.report()["layers"]["stage0"]
    out_pixels = 2 * pipeline.out_width * pipeline.out_height
    macs = kernel * kernel * cin * (1 if depthwise else cout)
    assert layer_report["useful_macs"] == out_pixels * macs
    assert layer_report["multipliers"] == pe * simd


POOL_CASES = [
    # size, stride, padding, H, W
    (2, 2, "valid", 7, 9), (2, 2, "same", 7, 9), (2, 2, "same", 6, 8), (2, 1, "same", 5, 7),
    (2, 1, "valid", 5, 4), (3, 2, "same", 7, 8), (3, 1, "same", 4, 5),
]


@pytest.mark.parametrize("size,stride,padding,height,width", POOL_CASES)
def test_max_pool_variants(size, stride, padding, height, width):
    rng = np.random.default_rng(size * 100 + stride * 10 + height)
    layer = MaxPool2D(size, stride, padding, -100, 90)
    pipeline = build([layer], height, width, 3)
    batch = rng.integers(-128, 128, (2, height, width, 3)).astype(np.int8)
    batch[0, :, -1] = -128          # a border column of minimum values: padding must not win
    run_layers(pipeline, batch, stall=0.3, seed=stride)


# -- exact cycle counts ------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel,cin,cout,pe,simd,height,width", [
    (3, 3, 8, 4, 27, 6, 7),      # II = 2
    (3, 3, 8, 3, 10, 5, 5),      # non-divisors: II = 3 * 3 = 9
    (1, 4, 6, 2, 4, 4, 6),       # pointwise, II = 3
    (3, 2, 4, 4, 18, 5, 6),      # II = 1: the filters' F*W*H + L
])
def test_conv_exact_cycles(kernel, cin, cout, pe, simd, height, width):
    rng = np.random.default_rng(kernel + cin + cout)
    layer = random_conv(rng, kernel, cin, cout, 1, "same")
    pipeline = build([layer], height, width, cin, {0: (pe, simd)})
    batch = rng.integers(-128, 128, (2, height, width, cin)).astype(np.int8)
    result = run_layers(pipeline, batch, stall=0.0, frames=2)
    unit = pipeline.hardware().parts[0]
    ii = -(-(kernel * kernel * cin) // simd) * -(-cout // pe)
    assert unit.initiation_interval == ii
    frames = 4
    # PipelineTop.latency_cycles: the stage's latency + schedule (+ the pipeline's buffers).
    assert result.latency_cycles >= unit.latency + unit.schedule_delay
    assert result.cycles == frames * height * width * ii + result.latency_cycles
    report = result.report()["layers"]["stage0"]
    useful = frames * height * width * kernel * kernel * cin * cout
    assert report["useful_macs"] == useful
    assert report["utilization"] == round(useful / (pe * simd * result.cycles), 4)


def chain_cycles(top, frames):
    """``F * Wo * Ho * II`` of the first (bottleneck) convolution + ``latency_cycles`` minus the
    window schedules after that convolution: exact for conv -> pointwise -> 2x2/2 pool chains
    whose convolution is the only bottleneck (the pool's last output is completed by its last
    input pixel, so its schedule adds nothing after the convolution's last output)."""
    conv_index = next(k for k, p in enumerate(top.parts) if hasattr(p, "initiation_interval"))
    conv = top.parts[conv_index]
    return (frames * conv.out_width * conv.out_height * conv.initiation_interval
            + top.latency_cycles
            - sum(getattr(p, "schedule_delay", 0) for p in top.parts[conv_index + 1:]))


def test_yolo_block_exact_cycles():
    model, inputs, _ = fixture("yolo_block_64")
    pipeline = build(model.layers, 8, 6, 3, {0: (8, 27)}, model.op_names)
    result = run_layers(pipeline, inputs[:, :8, :6], stall=0.0)
    assert result.cycles == chain_cycles(pipeline.hardware(), 2)


def test_frame_cycles_is_the_measured_steady_pace():
    """``Pipeline.frame_cycles`` (the busiest stage's cycles per frame, from the timings
    alone) is what one more back-to-back frame costs in simulation: here the convolution's
    8 x 6 outputs at II = 2."""
    model, inputs, _ = fixture("yolo_block_64")
    pipeline = build(model.layers, 8, 6, 3, {0: (8, 27)}, model.op_names)
    frame = inputs[:1, :8, :6]
    cycles = [run_layers(pipeline, frame, stall=0.0, frames=f).cycles for f in (2, 3)]
    assert cycles[1] - cycles[0] == pipeline.frame_cycles == 8 * 6 * 2


def test_mac_array_validates_folding():
    weights = np.zeros((4, 3, 3, 2), np.int8)
    args = (weights, np.zeros(4, np.int32), [1 << 30] * 4, [0] * 4)
    for pe, simd, match in ((0, 1, "pe"), (5, 1, "pe"), (1, 0, "simd"), (1, 19, "simd"),
                            (1.5, 1, "pe")):
        with pytest.raises(ValueError, match=match):
            MacArray(*args, in_zp=0, out_zp=0, pe=pe, simd=simd)
    with pytest.raises(ValueError, match="odd"):
        MacArray(np.zeros((4, 2, 2, 2), np.int8), *args[1:], in_zp=0, out_zp=0)
    with pytest.raises(ValueError, match="entries"):
        MacArray(weights, np.zeros(3, np.int32), *args[2:], in_zp=0, out_zp=0)
    unit = Conv2DUnit(8, 8, *args, in_zp=0, out_zp=0, stride=2, pe=3, simd=7)
    assert (unit.out_width, unit.initiation_interval, unit.multipliers) == (4, 3 * 2, 21)


# -- Verilog path: full-size fixtures ---------------------------------------------------------------

def _verilator_run(spec_path, name):
    pipeline = load_spec(spec_path)
    _, inputs, expected = fixture(name)
    result = simulate(pipeline, inputs, simulator="verilator", progress=False)
    assert result.bit_exact, result.report()
    for k in range(len(inputs)):
        np.testing.assert_array_equal(result.outputs[k], expected[k])
    return result


@pytest.mark.slow
def test_verilator_yolo_block_64_full_size():
    result = _verilator_run(EXAMPLES / "yolov3_tiny_block1.toml", "yolo_block_64")
    report = result.report()
    assert report["layers"]["op0_conv_2d"]["mac_cycles"] == 2 * 64 * 64 * 4
    assert result.cycles == chain_cycles(load_spec(EXAMPLES / "yolov3_tiny_block1.toml")
                                         .hardware(), 2)
    assert report["mac_utilization"] > 0.9


@pytest.mark.slow
def test_verilator_yolo_two_blocks_32_full_size(tmp_path):
    from rasterflow.cli_import import import_model
    spec = tmp_path / "two_blocks.toml"
    import_model(DATA / "yolo_two_blocks_32.tflite", spec)
    result = _verilator_run(spec, "yolo_two_blocks_32")
    assert result.report()["mac_utilization"] > 0.5


# -- depthwise convolution with a depth multiplier --------------------------------------------------

def random_multiplied_depthwise(rng, kernel, channels, multiplier, stride, padding):
    """A random DEPTHWISE_CONV_2D of ``channels`` inputs and ``channels * multiplier``
    outputs."""
    outputs = channels * multiplier
    pairs = [quantize_multiplier(float(rng.uniform(2e-5, 4e-3))) for _ in range(outputs)]
    return DepthwiseConv2D(rng.integers(-127, 128, (kernel, kernel, outputs)).astype(np.int8),
                           rng.integers(-20000, 20000, outputs).astype(np.int32), stride,
                           padding, int(rng.integers(-128, 128)), int(rng.integers(-128, 128)),
                           [m for m, _ in pairs], [s for _, s in pairs], -128, 127,
                           depth_multiplier=multiplier)


MULTIPLIER_CASES = [
    # channels, multiplier, stride, padding, H, W, pe, simd
    (1, 8, 2, "same", 9, 8, 4, 9),       # the grey MobileNet stem: 1 -> 8 channels, 3x3/2
    (1, 8, 2, "same", 7, 6, 8, 3),
    (3, 2, 1, "same", 6, 7, 2, 5),
    (3, 2, 2, "valid", 7, 6, 6, 9),
]


@pytest.mark.parametrize("case", MULTIPLIER_CASES,
                         ids=[str(i) for i in range(len(MULTIPLIER_CASES))])
def test_depthwise_depth_multiplier_hardware(case):
    channels, multiplier, stride, padding, height, width, pe, simd = case
    rng = np.random.default_rng(channels * 100 + multiplier * 10 + stride + width)
    layer = random_multiplied_depthwise(rng, 3, channels, multiplier, stride, padding)
    pipeline = build([layer], height, width, channels, {0: (pe, simd)})
    stage = pipeline.stages[0]
    assert (stage.depth_multiplier, stage.in_channels, stage.out_channels) == \
        (multiplier, channels, channels * multiplier)
    batch = rng.integers(-128, 128, (2, height, width, channels)).astype(np.int8)
    result = run_layers(pipeline, batch, stall=0.3, seed=multiplier)
    report = result.report()["layers"]["stage0"]
    assert report["useful_macs"] == 2 * pipeline.out_width * pipeline.out_height * 9 * \
        channels * multiplier


def test_depthwise_depth_multiplier_exact_cycles():
    rng = np.random.default_rng(7)
    layer = random_multiplied_depthwise(rng, 3, 2, 3, 1, "same")
    pipeline = build([layer], 5, 6, 2, {0: (2, 9)})
    batch = rng.integers(-128, 128, (2, 5, 6, 2)).astype(np.int8)
    result = run_layers(pipeline, batch, stall=0.0, frames=2)
    assert pipeline.hardware().parts[0].initiation_interval == 3
    assert result.cycles == 4 * 5 * 6 * 3 + result.latency_cycles


def test_depthwise_depth_multiplier_stage_and_errors():
    rng = np.random.default_rng(3)
    layer = random_multiplied_depthwise(rng, 3, 2, 4, 1, "same")
    stage = stage_from_layer(layer)
    table = stage.to_table()
    assert table["depth_multiplier"] == 4
    again = type(stage)(**{k: v for k, v in table.items() if k != "op"})
    frame = rng.integers(-128, 128, (5, 4, 2)).astype(np.int8)
    np.testing.assert_array_equal(again.layer(frame), layer(frame))
    # Folding counts the C * M output channels: pe may be any of 1..8.
    assert type(stage).balanced_folding(layer, 10, 10) == (8, 9)
    args = dict(weights=np.asarray(layer.weights), bias=np.asarray(layer.bias),
                m0=table["m0"], shift=table["shift"], in_zp=0, out_zp=0)
    with pytest.raises(ValueError, match="depth_multiplier: must divide the 8 weight channels, "
                                         "not 3"):
        type(stage)(**args, depth_multiplier=3)
    with pytest.raises(ValueError, match="depth_multiplier: must be an integer in 1..1024"):
        type(stage)(**args, depth_multiplier=0)
    with pytest.raises(ValueError, match="op: depthwise_conv2d expects 2 input channels"):
        make_pipeline([stage], 4, 4, 8, "int8")
    weights = np.zeros((3, 3, 6), np.int8)
    mac_args = (weights, np.zeros(6, np.int32), [1 << 30] * 6, [0] * 6)
    with pytest.raises(ValueError, match="depth_multiplier 4 does not divide the 6 weight"):
        MacArray(*mac_args, in_zp=0, out_zp=0, depthwise=True, depth_multiplier=4)
    with pytest.raises(ValueError, match="depth_multiplier must be a positive integer"):
        MacArray(*mac_args, in_zp=0, out_zp=0, depthwise=True, depth_multiplier=0)
    with pytest.raises(ValueError, match="depth_multiplier 2 needs depthwise=True"):
        MacArray(np.zeros((2, 1, 1, 3), np.int8), *mac_args[1:], in_zp=0, out_zp=0,
                 depth_multiplier=2)
    mac = MacArray(*mac_args, in_zp=0, out_zp=0, depthwise=True, depth_multiplier=3)
    assert (mac.in_channels, mac.out_channels, mac.terms) == (2, 6, 9)


def test_grey_mobilenet_stem_on_a_crop():
    """The grey MobileNet fixture's first layer, DEPTHWISE_CONV_2D 1 -> 8 channels
    (``M = 8``, 3x3, stride 2, SAME), in hardware on a crop of its input images."""
    folder = DATA.parent / "tflite2"
    model = load_tflite(folder / "mnv1_025_96g.tflite")
    stem = model.layers[0]
    assert (stem.depth_multiplier, stem.in_channels, stem.out_channels) == (8, 1, 8)
    inputs = np.load(folder / "mnv1_025_96g_input.npy")
    run_layers(build([stem], 10, 12, 1, {0: (4, 9)}), inputs[:, :10, :12], stall=0.3, seed=8)
