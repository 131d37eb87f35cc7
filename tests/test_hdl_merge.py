"""Int8 joins (``quantized_add``, ``concatenation``) and the skew buffers of CNN graphs.

The joins' hardware runs in Amaranth's simulator against their golden layers (which equal
LiteRT: tests/test_golden_elementwise.py), as bare components with random valid gaps and
ready stalls, and inside graphs. The graphs are the two shapes CNNs join in: a residual
block (fork -> 1x1 conv -> 3x3 depthwise -> 1x1 conv -> add with the fork's other branch),
its convolutions folded to II > 1, and a route (fork -> 2x2/2 max pool -> 3x3 conv -> 1x1 conv
-> resize x2 -> concatenation with the other branch). For both, the skew buffer has the depth
the rule in ``hdl/graph.py`` gives; every output is exact under stalls; more depth does not
make the unstalled graph faster (for the residual block, one entry less makes it slower), and
a buffer below the rule's deadlock bound deadlocks while one at it does not.
"""
import dataclasses
import itertools
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module

from rasterflow.errors import SpecError
from rasterflow.golden.cnn import Conv2D, DepthwiseConv2D
from rasterflow.golden.elementwise import Add, Concatenation
from rasterflow.golden.pixel import PixelFormat
from rasterflow.golden.quant import activation_range, quantize_multiplier
from rasterflow.hdl import top as hdl_top
from rasterflow.hdl.graph import tie_bounds
from rasterflow.hdl.merge import ChannelConcat, QuantizedAdd
from rasterflow.hdl.payload import pack_joined, pack_pixels, unpack_pixels
from rasterflow.hdl.stall import SKID_LATENCY
from rasterflow.hdl.timing import Sampling, StageTiming
from rasterflow.hdl.top import PipelineTop, TopNode, graph_timing
from rasterflow.pipeline import Node, Pipeline
from rasterflow.sim.amaranth_sim import run_stream
from rasterflow.sim.session import simulate
from rasterflow.spec import InputSpec, parse_spec
from rasterflow.stages_cnn import MaxPoolStage, stage_from_layer
from rasterflow.stages_layout import ResizeNearestStage
from rasterflow.stages_merge import ConcatenationStage, QuantizedAddStage

from conftest import stream_through

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def int8_frames(rng, height, width, channels):
    """Two random int8 frames whose first rows hold the extremes against each other."""
    a, b = (rng.integers(-128, 128, (height, width, channels)).astype(np.int8)
            for _ in range(2))
    a[0], b[0] = -128, 127
    a[1], b[1] = 127, 127
    return a, b


class Clocked(Elaboratable):
    """``dut`` with a ``sync`` domain of its own (a combinational one has none)."""
    def __init__(self, dut):
        self.dut, self.i, self.o = dut, dut.i, dut.o

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.domains.sync = ClockDomain()
        return m


def join_through(dut, formats, frames, *, stall, seed):
    """Frames ``{"a": ..., "b": ...}`` through a join component with random gaps and stalls;
    the output frame, its ``sof`` and ``eol`` markers."""
    height, width = frames["a"].shape[:2]
    words = pack_joined(formats, frames)
    out = stream_through(Clocked(dut), words, len(words), stall=stall, seed=seed)
    return unpack_pixels(dut.out_format, out, height, width)


# -- quantized_add ----------------------------------------------------------------------------

ADD_CASES = [
    # (in1 (scale, zp), in2 (scale, zp), out (scale, zp), activation)
    ((0.05, 3), (0.05, 3), (0.05, 3), "NONE"),
    ((0.0173, -7), (0.1321, 25), (0.1411, -11), "NONE"),
    ((0.0019, -100), (0.5, 10), (0.0071, 60), "NONE"),     # the output saturates
    ((1e-4, 127), (3.0, -128), (2.9, 0), "NONE"),           # in1's multiplier is tiny
    ((3e-12, 0), (0.4, 5), (0.3, 1), "NONE"),               # ... flushed to (0, 0)
    ((0.023, -3), (0.031, 17), (0.027, -128), "RELU6"),
]


def add_layer(case):
    (s1, z1), (s2, z2), (so, zo), activation = case
    return Add(s1, z1, s2, z2, so, zo, *activation_range(activation, so, zo))


def add_part(layer, fmt, channels_per_cycle=None):
    return QuantizedAdd(fmt, in1_zp=layer.in1_zp, in1_multiplier=layer.in1_multiplier,
                        in2_zp=layer.in2_zp, in2_multiplier=layer.in2_multiplier,
                        out_zp=layer.out_zp, out_multiplier=layer.out_multiplier,
                        act_min=layer.act_min, act_max=layer.act_max,
                        channels_per_cycle=channels_per_cycle)


@pytest.mark.parametrize("case", range(len(ADD_CASES)))
def test_quantized_add_is_exact(case):
    layer = add_layer(ADD_CASES[case])
    assert (layer.in1_multiplier == (0, 0)) == (case == 4)
    rng = np.random.default_rng(case)
    fmt = PixelFormat(5, "int8")
    a, b = int8_frames(rng, 6, 7, fmt.channels)
    out, sof, eol = join_through(add_part(layer, fmt), {"a": fmt, "b": fmt},
                                 {"a": a, "b": b}, stall=0.3, seed=case)
    np.testing.assert_array_equal(out, layer(a, b))
    assert sof[0, 0] and sof.sum() == 1 and eol[:, -1].all() and eol.sum() == 6


@pytest.mark.parametrize("channels_per_cycle, folds", [(1, 5), (2, 3), (4, 2)])
def test_folded_quantized_add_is_exact(channels_per_cycle, folds):
    layer = add_layer(ADD_CASES[5])
    fmt = PixelFormat(5, "int8")
    part = add_part(layer, fmt, channels_per_cycle)
    assert (part.initiation_interval, part.latency) == (folds, 11)
    a, b = int8_frames(np.random.default_rng(folds), 4, 6, fmt.channels)
    out, sof, eol = join_through(part, {"a": fmt, "b": fmt}, {"a": a, "b": b}, stall=0.3,
                                 seed=folds)
    np.testing.assert_array_equal(out, layer(a, b))
    assert sof[0, 0] and sof.sum() == 1 and eol[:, -1].all() and eol.sum() == 4


@pytest.mark.parametrize("case", [2, 3])
def test_quantized_add_is_exact_on_every_pair_of_values(case):
    """All 65536 pairs of int8 values, 64 channels a pixel."""
    layer = add_layer(ADD_CASES[case])
    fmt = PixelFormat(64, "int8")
    pairs = np.stack(np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)), -1)
    a, b = (pairs[..., k].astype(np.int8).reshape(16, 64, 64) for k in (0, 1))
    out, _, _ = join_through(add_part(layer, fmt), {"a": fmt, "b": fmt}, {"a": a, "b": b},
                             stall=0.2, seed=case)
    np.testing.assert_array_equal(out, layer(a, b))


# -- concatenation ----------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [(3, 5), (1, 1), (8, 2)])
def test_channel_concat_is_exact(channels):
    rng = np.random.default_rng(sum(channels))
    first, second = (PixelFormat(c, "int8") for c in channels)
    a = rng.integers(-128, 128, (5, 6, channels[0])).astype(np.int8)
    b = rng.integers(-128, 128, (5, 6, channels[1])).astype(np.int8)
    dut = ChannelConcat(first, second)
    out, sof, eol = join_through(dut, {"a": first, "b": second}, {"a": a, "b": b},
                                 stall=0.3, seed=channels[0])
    layer = ConcatenationStage(0.02, -4).layer
    np.testing.assert_array_equal(out, layer(a, b))
    assert sof.sum() == 1 and eol.sum() == 5


# -- the stages in pipelines ------------------------------------------------------------------

def join_graph(join, *, width=6, height=5, channels=3, lanes=1):
    """input -> relu (a requantization) -> ``join`` of (input, relu); with several pixels per
    clock (which relu does not take), ``join`` of (input, input)."""
    relu = {"name": "r", "op": "relu", "in_zp": -5, "out_zp": 9, "m0": 1518500250, "shift": 1}
    return parse_spec({
        "input": {"width": width, "height": height, "channels": channels, "dtype": "int8",
                  "pixels_per_clock": lanes},
        "stage": ([relu] if lanes == 1 else []) +
                 [{"name": "j", "inputs": ["input", "r" if lanes == 1 else "input"], **join}]})


ADD_SPEC = {"op": "quantized_add", "in1_scale": 0.05, "in1_zp": -3, "in2_scale": 0.08,
            "in2_zp": 9, "out_scale": 0.1, "out_zp": -1, "act_min": -100, "act_max": 110}


@pytest.mark.parametrize("join, lanes, ii", [
    (ADD_SPEC, 1, 1), (ADD_SPEC, 2, 1), ({**ADD_SPEC, "channels_per_cycle": 2}, 1, 2),
    ({"op": "concatenation"}, 1, 1), ({"op": "concatenation"}, 2, 1)],
    ids=["add", "add-2px", "add-folded", "concat", "concat-2px"])
def test_join_stages_in_a_pipeline(join, lanes, ii):
    """Exact under stalls; unstalled, ``F * transfers * II + latency_cycles`` cycles (the
    join the only bottleneck when folded)."""
    pipeline = join_graph(join, width=7, lanes=lanes)
    batch = np.random.default_rng(lanes).integers(-128, 128, (2, 5, 7, 3)).astype(np.int8)
    result = simulate(pipeline, batch, stall=0.3, seed=lanes, progress=False)
    assert result.bit_exact, result.report()
    result = simulate(pipeline, batch, progress=False)
    assert result.bit_exact
    assert result.cycles == 2 * 5 * -(-7 // lanes) * ii + result.latency_cycles
    golden = pipeline.golden(batch[0])
    assert golden.shape == (5, 7, 6 if join["op"] == "concatenation" else 3)


def test_stages_round_trip_and_import_from_layers():
    add = stage_from_layer(add_layer(ADD_CASES[1]), pe=2)
    assert isinstance(add, QuantizedAddStage) and add.channels_per_cycle == 2
    assert QuantizedAddStage(**{k: v for k, v in add.to_table().items() if k != "op"}) == add
    concat = stage_from_layer(Concatenation(3, ((0.5, 2), (0.5, 2)), 0.5, 2))
    assert (concat.scale, concat.zero_point) == (0.5, 2)


@pytest.mark.parametrize("make, field, message", [
    (lambda: parse_spec({
        "input": {"width": 6, "height": 5, "channels": 3, "dtype": "int8"},
        "stage": [{"name": "p", "op": "max_pool"},
                  {"name": "j", "inputs": ["input", "p"], **ADD_SPEC}]}),
     "stage[1].inputs", "quantized_add needs two int8 inputs of one shape, got 6x5x3 int8 "
                        "and 3x2x3 int8"),
    (lambda: parse_spec({
        "input": {"width": 6, "height": 5, "channels": 3, "dtype": "uint8"},
        "stage": [{"name": "b", "op": "bitwise_not"},
                  {"name": "j", "op": "concatenation", "inputs": ["input", "b"]}]}),
     "stage[1].inputs", "concatenation needs two int8 inputs of one frame size"),
    (lambda: QuantizedAddStage(**{**{k: v for k, v in ADD_SPEC.items() if k != "op"},
                                  "out_scale": 1e-9}),
     "out_scale", "output multiplier"),
    (lambda: QuantizedAddStage(**{**{k: v for k, v in ADD_SPEC.items() if k != "op"},
                                  "in1_scale": 0.0}),
     "in1_scale", "must be a number in"),
    (lambda: QuantizedAddStage(**{**{k: v for k, v in ADD_SPEC.items() if k != "op"},
                                  "act_min": 50, "act_max": 40}),
     "act_max", "must be at least act_min (50)"),
    (lambda: ConcatenationStage(zero_point=200), "zero_point", "must be an integer in"),
    (lambda: join_graph({**ADD_SPEC, "channels_per_cycle": 4}), "stage[1].channels_per_cycle",
     "must be at most the inputs' 3 channels, not 4"),
    (lambda: stage_from_layer(Concatenation(-1, ((0.5, 2),) * 3, 0.5, 2)),
     "inputs", "joins 2 tensors, not 3: concatenate more as a chain"),
    (lambda: stage_from_layer(Concatenation(1, ((0.5, 2),) * 2, 0.5, 2)),
     "axis", "must be the channel axis of an NHWC tensor (-1 or 3), not 1"),
])
def test_bad_parameters_name_their_field(make, field, message):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field
    assert message in info.value.message


def test_concatenation_of_too_many_channels_is_refused():
    with pytest.raises(SpecError, match=r"^stage\[2\]\.inputs: concatenation of 1000 and "
                                        r"1000 channels makes 2000, more than 1024"):
        parse_spec({"input": {"width": 4, "height": 4, "channels": 1000, "dtype": "int8"},
                    "stage": [{"name": "a", "op": "relu", "in_zp": 0, "out_zp": 0,
                               "m0": 1 << 30, "shift": 1},
                              {"name": "b", "op": "relu", "in_zp": 0, "out_zp": 0,
                               "m0": 1 << 30, "shift": 1, "inputs": ["input"]},
                              {"name": "c", "op": "concatenation", "inputs": ["a", "b"]}]})


def two_channel_add(fmt=PixelFormat(2, "int8"), **overrides):
    """A QuantizedAdd of two channels (zero points 0, multipliers 1/2) but ``overrides``."""
    half = (1 << 30, 0)
    return QuantizedAdd(fmt, **{"in1_zp": 0, "in1_multiplier": half, "in2_zp": 0,
                                "in2_multiplier": half, "out_zp": 0, "out_multiplier": half,
                                **overrides})


@pytest.mark.parametrize("make, message", [
    (lambda: two_channel_add(PixelFormat(2, "uint8")),
     "fmt must be a PixelFormat of int8 channels"),
    (lambda: two_channel_add(in1_multiplier=(1 << 30, 1)),
     r"in1_multiplier must have m0 in 0..2\*\*31-1 and shift in -31..0, not \(1073741824, 1\)"),
    (lambda: two_channel_add(out_zp=300), "out_zp must be an integer in -128..127, not 300"),
    (lambda: two_channel_add(act_min=5, act_max=4),
     r"act_min \(5\) must not exceed act_max \(4\)"),
    (lambda: two_channel_add(channels_per_cycle=3),
     "channels_per_cycle must be an integer in 1..2, not 3"),
    (lambda: ChannelConcat(PixelFormat(1000, "int8"), PixelFormat(100, "int8")),
     "first and second have 1000 \\+ 100 channels, more than 1024"),
    (lambda: Sampling((0, 2, 1), (0,)), "rows must be a nondecreasing list"),
    (lambda: Sampling((0,), (-2,)), "cols must be a nondecreasing list"),
    (lambda: Sampling((0,), (0,), -1), "lead must be an integer of at least 0, not -1"),
])
def test_hardware_parameters_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- tie bounds -------------------------------------------------------------------------------

def brute_tie_bounds(sampling, in_size, lanes):
    """``tie(n) - n * P_i / P_o`` over every output transfer, as Sampling defines it."""
    (w_in, h_in), (w_out, h_out) = in_size, sampling.out_size
    g_in, g_out = -(-w_in // lanes), -(-w_out // lanes)
    ratio = Fraction(g_in * h_in, g_out * h_out)
    values, latest = [], None
    for oy, g in itertools.product(range(h_out), range(g_out)):
        x = min(g * lanes + lanes - 1, w_out - 1)
        tie = sampling.rows[oy] * g_in + sampling.cols[x] // lanes
        latest = tie if latest is None else max(latest, tie)
        values.append(latest + sampling.lead - (oy * g_out + g) * ratio)
    return min(values), max(values)


def random_sampling(rng, size, out_size, lead):
    rows = np.sort(rng.integers(-1, size[1], out_size[1]))
    cols = np.sort(rng.integers(-1, size[0], out_size[0]))
    return Sampling(tuple(map(int, rows)), tuple(map(int, cols)), lead)


@pytest.mark.parametrize("seed", range(6))
def test_tie_bounds_are_the_extremes_over_a_frame(seed):
    rng = np.random.default_rng(seed)
    size = tuple(int(v) for v in rng.integers(1, 12, 2))
    out_size = tuple(int(v) for v in rng.integers(1, 12, 2))
    lanes = [1, 2, 3][seed % 3]
    sampling = random_sampling(rng, size, out_size, int(rng.integers(0, 20)))
    got = tie_bounds(StageTiming(3, sampling=sampling), size, out_size, lanes)
    assert got == brute_tie_bounds(sampling, size, lanes)


def test_tie_bounds_without_a_sampling():
    assert tie_bounds(StageTiming(5, 17), (16, 9), (16, 9)) == (17, 17)
    # A stage changing the frame size without a sampling may need any input of its frame.
    assert tie_bounds(StageTiming(5, 17), (8, 8), (4, 4)) == (Fraction(-1 - 15 * 4), 63)


# -- the skew rule ----------------------------------------------------------------------------

def test_rigid_graphs_keep_the_cycle_rule():
    """Branches of full-rate stages that keep the frame: skew_depth on the arrival cycles
    (here [0, 42, 41] after the input: the 1-cycle gap has every branch buffered)."""
    nodes = [("blur", ("input",), StageTiming(7, 34)), ("one", ("input",), StageTiming(40)),
             ("sum", ("input", "blur", "one"), StageTiming(1))]
    timing = graph_timing(nodes, ["sum"], width=16, height=6)
    assert timing.skews == {("sum", 0): 42 + 2 + 1, ("sum", 1): 3, ("sum", 2): 4}
    assert timing.arrival["sum"] == timing.arrival["input"] + 42 + 2 + 1 + 1 + 1


def test_a_paced_branch_is_measured_in_items():
    """A 2x2/2 grid and a x2 resize back on a 16x8 frame, the grid stage the bottleneck
    (II 5 on 32 outputs: 160 cycles a frame, so the fork moves 128/160 items a cycle)."""
    pool = StageTiming(4, 17, initiation_interval=5,
                       sampling=Sampling.grid(8, 4, stride_x=2, stride_y=2, lead=17))
    up = StageTiming(3, sampling=Sampling(tuple(y // 2 for y in range(8)),
                                          tuple(x // 2 for x in range(16))))
    nodes = [("pool", ("input",), pool), ("up", ("pool",), up),
             ("cat", ("up", "input"), StageTiming(0))]
    pool_lo, pool_hi = tie_bounds(pool, (16, 8), (8, 4))
    up_lo, up_hi = tie_bounds(up, (8, 4), (16, 8))
    assert (pool_hi, pool_lo) == (17, 17 - 2 * 7)     # tie 32 oy + 2 ox + 17 vs 4 n
    late = pool_hi + 4 * up_hi + Fraction(128, 160) * (4 + 1 + 3 + 1)
    timing = graph_timing(nodes, ["cat"], width=16, height=8)
    assert timing.skews == {("cat", 1): int(np.ceil(late)) + 1}


# -- CNN graphs in hardware -------------------------------------------------------------------

def random_conv(rng, kernel, cin, cout, *, depthwise=False, activation="NONE"):
    shape = (kernel, kernel, cin) if depthwise else (cout, kernel, kernel, cin)
    channels = cin if depthwise else cout
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    pairs = [quantize_multiplier(float(rng.uniform(2e-5, 4e-3))) for _ in range(channels)]
    layer = DepthwiseConv2D if depthwise else Conv2D
    return layer(rng.integers(-127, 128, shape).astype(np.int8),
                 rng.integers(-20000, 20000, channels).astype(np.int32), 1, "same", in_zp,
                 out_zp, [m for m, _ in pairs], [s for _, s in pairs],
                 *activation_range(activation, 0.05, out_zp))


def residual_block(size=8, channels=4, expanded=8):
    """input -> expand 1x1 (II 8) -> depthwise 3x3 (II 6) -> project 1x1 (II 4) -> add."""
    rng = np.random.default_rng(3)
    expand = random_conv(rng, 1, channels, expanded, activation="RELU6")
    depthwise = random_conv(rng, 3, expanded, expanded, depthwise=True, activation="RELU6")
    project = random_conv(rng, 1, expanded, channels)
    add = Add(0.05, int(expand.in_zp), 0.07, int(project.out_zp), 0.09, 3)
    stages = [Node("expand", stage_from_layer(expand, pe=2, simd=2), ("input",)),
              Node("dw", stage_from_layer(depthwise, pe=4, simd=3)),
              Node("project", stage_from_layer(project, pe=2, simd=4)),
              Node("sum", stage_from_layer(add), ("input", "project"))]
    return Pipeline(InputSpec(size, size, channels, "int8"), stages)


def route(size=8, channels=4):
    """input -> max pool 2x2/2 -> conv 3x3 (II 6) -> conv 1x1 (II 2) -> resize x2 ->
    concatenation of (that, input)."""
    rng = np.random.default_rng(5)
    conv = random_conv(rng, 3, channels, 8, activation="RELU")
    point = random_conv(rng, 1, 8, 3)
    stages = [Node("pool", MaxPoolStage(2, 2, "valid"), ("input",)),
              Node("conv", stage_from_layer(conv, pe=4, simd=12)),
              Node("point", stage_from_layer(point, pe=3, simd=4)),
              Node("up", ResizeNearestStage(out_width=size, out_height=size)),
              Node("route", ConcatenationStage(), ("up", "input"))]
    return Pipeline(InputSpec(size, size, channels, "int8"), stages)


def sampled_timing(bound):
    """The stage's timing with the sampling of a strided pool or a resize."""
    timing = bound.stage.timing(bound)
    if timing.sampling is not None:
        return timing
    if isinstance(bound.stage, MaxPoolStage):
        stride = bound.stage.stride
        return dataclasses.replace(timing, sampling=Sampling.grid(
            bound.out_width, bound.out_height, stride_x=stride, stride_y=stride,
            lead=timing.schedule_delay))
    if isinstance(bound.stage, ResizeNearestStage):
        return dataclasses.replace(timing, sampling=Sampling(*bound.stage.sources(bound)))
    return timing


def with_sampled_timings(pipeline):
    """Build the pipeline's hardware with each stage's timing (samplings included)."""
    def hardware():
        nodes = [TopNode(b.name, b.hardware(), b.inputs, b.out_format,
                         timing=sampled_timing(b)) for b in pipeline.bound]
        return PipelineTop(pipeline.input_format, pipeline.width, pipeline.height,
                           pipeline.lanes, nodes, pipeline.outputs)
    pipeline.hardware = hardware
    return pipeline


def run(pipeline, *, stall, seed=0, frames=2):
    batch = np.random.default_rng(seed).integers(
        -128, 128, (2, pipeline.height, pipeline.width, pipeline.input_format.channels)
    ).astype(np.int8)
    result = simulate(pipeline, batch, frames=frames, stall=stall, seed=seed, progress=False)
    assert result.bit_exact, result.report()
    return result


def deadlocks(pipeline, cycles):
    """Whether one frame through the pipeline's hardware, unstalled, leaves outputs missing
    after ``cycles`` cycles (it takes far fewer)."""
    frame = np.zeros((pipeline.height, pipeline.width, pipeline.input_format.channels),
                     np.int8)
    out = pipeline.output()
    try:
        run_stream(pipeline.hardware(), pack_pixels(pipeline.input_format, frame),
                   out.out_width * out.out_height, timeout_cycles=cycles)
    except TimeoutError:
        return True
    return False


def shifted(monkeypatch, extra):
    """Make every skew buffer the rule sizes ``extra`` entries deeper (or shallower)."""
    computed = hdl_top.paced_skew_depth
    monkeypatch.setattr(hdl_top, "paced_skew_depth",
                        lambda *args: [d + extra if d else 0 for d in computed(*args)])


def test_residual_block_skew_buffer_is_sized_in_items():
    """The skip buffer holds the depthwise window's lead (``W + 1`` items) plus what the
    branch's registers hold at the expand convolution's pace (64 outputs x II 8 = 512 cycles
    a frame: 1/8 item a cycle) — not the branch's cycles, as the rigid rule would."""
    pipeline = residual_block()
    top = pipeline.hardware()
    parts = top.parts_by_name
    held = sum(parts[name].latency + SKID_LATENCY for name in ("expand", "dw", "project"))
    lead = parts["dw"].schedule_delay
    assert lead == 8 + 1
    assert top.skews == {("sum", 0): int(np.ceil(lead + Fraction(held, 8))) + 1}
    rigid = top.arrival["project"] - top.arrival["input"] + 1
    assert top.skews[("sum", 0)] < rigid / 3


def test_residual_block_is_exact_under_stalls():
    run(residual_block(), stall=0.3, seed=1)


def test_residual_block_buffer_keeps_the_pace_exactly(monkeypatch):
    """Unstalled, a deeper buffer is no faster, and one entry fewer is slower: the fork
    then waits for the join's room."""
    pipeline = residual_block()
    cycles = run(pipeline, stall=0.0, frames=1).cycles
    shifted(monkeypatch, 32)
    assert run(pipeline, stall=0.0, frames=1).cycles == cycles
    monkeypatch.undo()
    shifted(monkeypatch, -1)
    assert run(pipeline, stall=0.0, frames=1).cycles > cycles


def test_residual_block_below_the_deadlock_bound_deadlocks(monkeypatch):
    """Eight entries hold less than the depthwise window's lead (a line and a pixel, and
    the pixel itself): the fork starves the branch. The rule's deadlock bound, 10, does
    not (9 is the least that does not; then the fork waits on every pixel, and one frame
    takes about 2000 cycles instead of 64 x 8)."""
    pipeline = residual_block()
    depth = pipeline.hardware().skews[("sum", 0)]
    shifted(monkeypatch, 8 - depth)
    assert deadlocks(pipeline, 4000)
    monkeypatch.undo()
    shifted(monkeypatch, 10 - depth)       # the rule's deadlock bound: the lead 9, plus 1
    assert not deadlocks(pipeline, 4000)


def test_route_is_exact_under_stalls():
    """As :meth:`Pipeline.hardware` builds it, whatever the stages' timings say of their
    samplings (a stage changing the frame size without one is taken at its widest, see
    tie_bounds: deep buffers, still exact)."""
    run(route(), stall=0.3, seed=2)


def route_bounds(pipeline):
    """The route's tie and arrival bounds, stage by stage, in input transfers."""
    top = pipeline.hardware()
    ties = late = Fraction(0)
    items = Fraction(64, 16 * 6)     # the 3x3 convolution's 96 cycles a frame
    for bound in pipeline.bound[:-1]:
        timing = sampled_timing(bound)
        scale = Fraction(64, bound.width * bound.height)
        hi = tie_bounds(timing, (bound.width, bound.height),
                        (bound.out_width, bound.out_height))[1]
        ties += hi * scale
        late += hi * scale + (top.parts_by_name[bound.name].latency + SKID_LATENCY) * items
    return top, ties, late


def test_route_skew_buffer_follows_the_samplings():
    """With the pool's and the resize's samplings, the skip buffer is the branch's latest
    tie (the pool's window lead, the 3x3 window's lead of a pooled line and a pixel, 36
    input transfers in all) plus its registers at the pace of the 3x3 convolution."""
    pipeline = with_sampled_timings(route())
    top, ties, late = route_bounds(pipeline)
    assert ties == 9 + 4 * 5 + 4 * Fraction(3, 2)
    assert top.skews == {("route", 1): int(np.ceil(late)) + 1}


def test_route_with_samplings_is_exact_under_stalls():
    run(with_sampled_timings(route()), stall=0.3, seed=3)


def test_route_below_its_lead_deadlocks(monkeypatch):
    """A buffer one entry short of the branch's latest tie bound (35 input transfers)
    deadlocks; the rule's deadlock bound, 36, does not (35 is the least that does not; one
    frame takes about 16 x 6 cycles)."""
    pipeline = with_sampled_timings(route())
    _, ties, _ = route_bounds(pipeline)
    depth = pipeline.hardware().skews[("route", 1)]
    shifted(monkeypatch, int(ties) - 1 - depth)
    assert deadlocks(pipeline, 1500)
    monkeypatch.undo()
    shifted(monkeypatch, int(ties) + 1 - depth)    # the rule's deadlock bound
    assert not deadlocks(pipeline, 1500)
