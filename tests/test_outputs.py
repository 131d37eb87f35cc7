"""Outputs of different frame sizes, in sequence: the spec check, the payload codec,
:class:`~rasterflow.hdl.graph.SequencedOutputs` on its own, whole graphs in Amaranth's
simulator against the golden model (random stalls, back-to-back frames, sof/eol of every
output frame), the first output's timing, the imported YOLOv3-tiny's two heads and the UART
bridge carrying them."""
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from rasterflow.boards.host import frame_to_bytes, input_stream
from rasterflow.cli_import import import_model
from rasterflow.errors import SpecError
from rasterflow.golden.cnn import Conv2D
from rasterflow.golden.pixel import PixelFormat
from rasterflow.golden.quant import quantize_multiplier
from rasterflow.hdl.graph import SequencedOutputs
from rasterflow.hdl.payload import (joined_stream_layout, pack_pixels, pack_sequenced,
                                    pixel_stream_layout, sequenced_format, unpack_pixels,
                                    unpack_sequenced)
from rasterflow.pipeline import Node, Pipeline
from rasterflow.sim.amaranth_sim import run_stream, stream_get, stream_put
from rasterflow.sim.session import simulate
from rasterflow.spec import InputSpec, load_spec, parse_spec
from rasterflow.stages import stage_from_table
from rasterflow.stages_cnn import stage_from_layer

from conftest import output_transfer_cycles
from test_board_top import run_bridge, split_answer

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

I8 = "int8"
POOL = {"op": "max_pool", "size": 2, "stride": 2}
RELU = {"op": "relu", "in_zp": -5, "out_zp": 9, "m0": 1518500250, "shift": 1}
YOLO = Path(__file__).parent / "data" / "tflite2" / "yolov3_tiny_w025_128.tflite"


def table_stage(table):
    return stage_from_table(dict(table), "stage")


def slow_conv():
    """A 3x3 SAME convolution of random weights, 3 -> 4 channels, folded to II = 6: an
    output of the input's size, slower than the input."""
    rng = np.random.default_rng(7)
    pairs = [quantize_multiplier(float(rng.uniform(2e-5, 4e-3))) for _ in range(4)]
    layer = Conv2D(rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
                   rng.integers(-20000, 20000, 4).astype(np.int32), 1, "same", -3, 5,
                   [m for m, _ in pairs], [shift for _, shift in pairs], -128, 127)
    return stage_from_layer(layer, pe=2, simd=9)


def two_sizes(outputs, *, width=8, height=8, channels=3, larger=None):
    """``pool`` (max pool 2/2 of the input) and ``big`` (``larger``, default a relu of the
    input), both outputs, in the order ``outputs``."""
    nodes = [Node("pool", table_stage(POOL), ("input",)),
             Node("big", larger or table_stage(RELU), ("input",))]
    return Pipeline(InputSpec(width, height, channels, I8), nodes, outputs=list(outputs))


def pool_chain():
    """Three outputs: ``half`` (pool of the input, also read by ``quarter``), ``quarter``
    (pool of ``half``) and ``big`` (relu of the input)."""
    nodes = [Node("half", table_stage(POOL), ("input",)),
             Node("quarter", table_stage(POOL), ("half",)),
             Node("big", table_stage(RELU), ("input",))]
    return Pipeline(InputSpec(8, 8, 3, I8), nodes, outputs=["half", "quarter", "big"])


def random_batch(pipeline, frames, seed):
    shape = (frames, pipeline.height, pipeline.width, pipeline.input_format.channels)
    return np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)


# --- the spec ------------------------------------------------------------------------------

def test_outputs_of_different_sizes_and_dtypes_are_refused():
    doc = {"input": {"width": 8, "height": 8, "dtype": "int8"}, "outputs": ["a", "b"],
           "stage": [{"name": "a", **POOL},
                     {"name": "b", "op": "filter2d", "kernel": [[1]], "output": "int16",
                      "inputs": ["input"]}]}
    with pytest.raises(SpecError, match=r"^outputs: outputs of different frame sizes leave "
                                        r"one after another in one stream, so they need one "
                                        r"pixel dtype: a is 4x4 of 1xint8, b is 8x8 of "
                                        r"1xint16$"):
        parse_spec(doc)
    doc["stage"][1]["output"] = "int8"
    pipeline = parse_spec(doc)
    assert pipeline.hardware().sequencer is not None


def test_outputs_of_one_size_stay_in_lockstep():
    pipeline = Pipeline(InputSpec(8, 8, 3, I8),
                        [Node("a", table_stage(POOL), ("input",)),
                         Node("b", table_stage(RELU), ("a",))], outputs=["a", "b"])
    top = pipeline.hardware()
    assert top.sequencer is None
    assert top.o.payload.shape() == joined_stream_layout(pipeline.output_formats)


# --- the payload ---------------------------------------------------------------------------

@pytest.mark.parametrize("lanes", [1, 2])
def test_sequenced_payload_round_trip(lanes):
    formats = {"a": PixelFormat(2, I8), "b": PixelFormat(5, I8)}
    sizes = {"a": (3, 2), "b": (5, 4)}
    rng = np.random.default_rng(lanes)
    frames = {name: rng.integers(-128, 128, (h, w, formats[name].channels)).astype(np.int8)
              for name, (w, h) in sizes.items()}
    words = pack_sequenced(formats, frames, lanes)
    wide = sequenced_format(formats)
    assert wide == PixelFormat(5, I8)
    a_words = 2 * -(-3 // lanes)
    padded = np.pad(frames["a"], ((0, 0), (0, 0), (0, 3)))
    assert words[:a_words] == pack_pixels(wide, padded, lanes)
    assert words[a_words:] == pack_pixels(wide, frames["b"], lanes)
    back, sofs, eols = unpack_sequenced(formats, words, sizes, lanes)
    for name in formats:
        np.testing.assert_array_equal(back[name], frames[name])
        assert sofs[name][0, 0] and sofs[name].sum() == 1
        assert eols[name][:, -1].all() and eols[name].sum() == sizes[name][1]
    with pytest.raises(ValueError, match=r"expected \d+ payloads"):
        unpack_sequenced(formats, words[:-1], sizes, lanes)


def test_sequenced_format_needs_one_dtype():
    with pytest.raises(ValueError, match=r"one pixel dtype, not int16 and int8: a is 1xint8, "
                                         r"b is 2xint16"):
        sequenced_format({"a": PixelFormat(1, I8), "b": PixelFormat(2, "int16")})


# --- SequencedOutputs alone ----------------------------------------------------------------

@pytest.mark.parametrize("lanes", [1, 2])
def test_sequencer_buffers_a_whole_frame_and_sends_in_order(lanes):
    """``b`` delivers its whole frame on consecutive cycles while ``o`` waits for ``a``, and
    not one transfer more; then ``o`` sends ``a``'s frame, its channel padded with zeros,
    then ``b``'s, each with its own markers."""
    formats = {"a": PixelFormat(1, I8), "b": PixelFormat(3, I8)}
    sizes = {"a": (3, 2), "b": (4, 3)}
    dut = SequencedOutputs(formats, sizes, lanes)
    a_count, b_count = (6, 12) if lanes == 1 else (4, 6)
    assert dut.fifo_depths == {"b": b_count}
    rng = np.random.default_rng(3)
    frames = {name: rng.integers(-128, 128, (h, w, formats[name].channels)).astype(np.int8)
              for name, (w, h) in sizes.items()}
    words = {name: pack_pixels(formats[name], frames[name], lanes) for name in formats}
    received, b_ready = [], []

    async def producer(ctx):
        for word in words["b"] + words["b"][:1]:        # a frame and the next one's first
            ctx.set(dut.i_b.payload.as_value(), word)
            ctx.set(dut.i_b.valid, 1)
            b_ready.append(ctx.get(dut.i_b.ready))
            await ctx.tick()
        ctx.set(dut.i_b.valid, 0)
        for word in words["a"]:
            await stream_put(ctx, dut.i_a, word)

    async def consumer(ctx):
        while len(received) < a_count + b_count:
            received.append(await stream_get(ctx, dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 1000)
    assert b_ready == [1] * b_count + [0]
    assert received == pack_sequenced(formats, frames, lanes)
    a_padded, _, _ = unpack_pixels(sequenced_format(formats), received[:a_count], 2, 3, lanes)
    assert not a_padded[:, :, 1:].any()


@pytest.mark.parametrize("args, message", [
    (({"a": PixelFormat(1, I8)}, {"a": (1, 1)}), "at least 2 inputs"),
    (({"a": PixelFormat(1, I8), "b": PixelFormat(1, "uint8")}, {"a": (1, 1), "b": (2, 1)}),
     "one pixel dtype"),
    (({"a": PixelFormat(1, I8), "b": PixelFormat(1, I8)}, {"a": (1, 1)}),
     r"sizes must give the \(width, height\) of every input \(a, b\)"),
    (({"a": PixelFormat(1, I8), "b": PixelFormat(1, I8)}, {"a": (1, 1), "b": (0, 1)}),
     "a dimension of input 'b' must be an integer of at least 1, not 0"),
    (({"a": PixelFormat(1, I8), "0b": PixelFormat(1, I8)}, {"a": (1, 1), "0b": (1, 1)}),
     "Python identifiers, not '0b'"),
])
def test_sequencer_parameters_are_validated(args, message):
    with pytest.raises(ValueError, match=message):
        SequencedOutputs(*args)


# --- whole graphs in hardware --------------------------------------------------------------

GRAPHS = [
    pytest.param(lambda: two_sizes(["pool", "big"]), id="small-first"),
    pytest.param(lambda: two_sizes(["big", "pool"]), id="large-first"),
    pytest.param(lambda: two_sizes(["big", "pool"], larger=slow_conv()), id="slow-large-first"),
    pytest.param(lambda: two_sizes(["pool", "big"], larger=slow_conv()), id="slow-large-last"),
    pytest.param(pool_chain, id="three-outputs"),
]


@pytest.mark.parametrize("make", GRAPHS)
def test_outputs_in_sequence_are_exact_under_stalls(make):
    """Two different frames, twice, back to back, with random valid gaps and ready stalls:
    every output of every frame equals the golden model, and each output frame has its own
    sof and eol."""
    pipeline = make()
    batch = random_batch(pipeline, 2, seed=len(pipeline.outputs))
    result = simulate(pipeline, batch, frames=2, stall=0.3, seed=5, progress=False)
    assert result.bit_exact, (result.frame_mismatches, result.marker_errors)
    assert len(result.outputs) == 4 and list(result.outputs[0]) == pipeline.outputs
    for k, out in enumerate(result.outputs):
        for name, frame in pipeline.golden_outputs(batch[k % 2]).items():
            np.testing.assert_array_equal(out[name], frame)
    assert pipeline.latency_cycles == result.latency_cycles


@pytest.mark.parametrize("outputs, larger", [
    (["pool", "big"], None), (["big", "pool"], None), (["big", "pool"], slow_conv)])
def test_first_output_leaves_as_if_alone(outputs, larger):
    """``latency_cycles`` is the first output's latency: in the first frame its transfers
    leave on exactly the cycles they leave in a pipeline of that output alone (the other
    output waits in its buffer), and both pipelines state the same latency."""
    stage = larger() if larger else None
    pipeline = two_sizes(outputs, larger=stage)
    first = pipeline.output(outputs[0])
    alone = Pipeline(InputSpec(8, 8, 3, I8), [Node(first.name, first.stage, ("input",))])
    frame = random_batch(pipeline, 1, seed=9)[0]
    words = pack_pixels(pipeline.input_format, frame)
    count = first.out_width * first.out_height
    top, alone_top = pipeline.hardware(), alone.hardware()
    assert pipeline.latency_cycles == top.latency_cycles == alone.latency_cycles
    cycles = output_transfer_cycles(top, words, count)
    assert cycles == output_transfer_cycles(alone_top, words, count)
    if larger is None:
        # Its first pixel is tied to the first input transfer (and computed in one cycle,
        # unlike a folded convolution's): it leaves L cycles later.
        assert cycles[0] == top.latency_cycles


def test_without_the_frame_buffer_the_graph_deadlocks():
    """The first output (a pool of a pool) comes late in the frame, the second (a relu)
    throughout: with a 4-entry buffer instead of a frame's, the relu stalls the input fork
    and the pools starve."""
    nodes = [Node("half", table_stage(POOL), ("input",)),
             Node("quarter", table_stage(POOL), ("half",)),
             Node("big", table_stage(RELU), ("input",))]
    pipeline = Pipeline(InputSpec(8, 8, 3, I8), nodes, outputs=["quarter", "big"])
    words = pack_pixels(pipeline.input_format, random_batch(pipeline, 1, seed=1)[0])
    top = pipeline.hardware()
    assert top.sequencer.fifo_depths == {"big": 64}
    assert len(run_stream(top, words, 4 + 64).out_words) == 68
    top = pipeline.hardware()
    top.sequencer.fifo_depths["big"] = 4
    with pytest.raises(TimeoutError):
        run_stream(top, words, 4 + 64, timeout_cycles=3000)


# --- the imported YOLOv3-tiny --------------------------------------------------------------

def test_yolo_heads_leave_in_sequence(tmp_path):
    """The two heads (8x8x24, then 4x4x24, the model's output order) leave one after the
    other; the 4x4 head waits in a buffer of its 16 pixels; the words of the golden heads
    unpack to them."""
    spec = tmp_path / "yolo.toml"
    import_model(YOLO, spec)
    pipeline = load_spec(spec)
    sizes = {name: (pipeline.output(name).out_width, pipeline.output(name).out_height)
             for name in pipeline.outputs}
    assert list(sizes.values()) == [(8, 8), (4, 4)]
    top = pipeline.hardware()
    assert top.sequencer.fifo_depths == {pipeline.outputs[1]: 16}
    assert top.o.payload.shape() == pixel_stream_layout(PixelFormat(24, I8))
    assert pipeline.latency_cycles == top.latency_cycles
    frame = random_batch(pipeline, 1, seed=0)[0]
    golden = pipeline.golden_outputs(frame)
    words = pack_sequenced(pipeline.output_formats, golden)
    assert len(words) == 64 + 16
    back, _, _ = unpack_sequenced(pipeline.output_formats, words, sizes)
    for name in pipeline.outputs:
        np.testing.assert_array_equal(back[name], golden[name])


# --- the UART bridge -----------------------------------------------------------------------

@pytest.mark.parametrize("outputs", [["pool", "big"], ["big", "pool"]])
def test_bridge_carries_outputs_in_sequence(outputs):
    """The board's data path bit by bit at the pins: the answer is every output's frame in
    turn (the host's window respected, no overflow), as the golden model has them."""
    pipeline = two_sizes(outputs, width=6, height=4, channels=2)
    frame = random_batch(pipeline, 1, seed=4)[0]
    stream = input_stream(frame_to_bytes(pipeline.input_format, frame))
    (answer,), flags, _, _ = run_bridge(pipeline, [stream], tx_fifo_depth=16)
    got, status = split_answer(pipeline, answer)
    assert status == 0
    assert flags == {"overflow": 0, "framing_error": 0, "frame_done": 1}
    assert list(got) == outputs
    for name, expected in pipeline.golden_outputs(frame).items():
        np.testing.assert_array_equal(got[name], expected)
