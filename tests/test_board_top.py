"""Byte <-> pixel adapters and the UART bridge (BoardTop minus the platform) with its framed,
CRC-checked link, bit by bit."""
import random
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from conftest import OneOutput
from rasterflow.boards.host import (bytes_to_frame, check_answer, frame_to_bytes, input_stream,
                                    link_plan, output_trailer)
from rasterflow.boards.families import FAMILIES
from rasterflow.boards.top import UARTBridge
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.link import STATUS_INPUT_CRC_BAD
from rasterflow.hdl.payload import pack_joined, pixel_stream_signature
from rasterflow.hdl.serdes import BytesToPixels, LaneUnpacker, PixelsToBytes, bytes_per_pixel
from rasterflow.spec import parse_spec
from test_uart import drive_uart_byte, sample_uart_byte


# --- stand-in pipelines (the real Pipeline is the lead's) --------------------------------

class ChannelMap(wiring.Component):
    """Output channel k = input channel (k mod C_in) * scale + offsets[k], wrapped to the
    output type; one register stage (latency 1, one pixel per clock)."""

    def __init__(self, in_fmt, out_fmt, scale, offsets):
        self.in_fmt, self.out_fmt, self.scale, self.offsets = in_fmt, out_fmt, scale, offsets
        super().__init__({"i": In(pixel_stream_signature(in_fmt)),
                          "o": Out(pixel_stream_signature(out_fmt))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            for k in range(self.out_fmt.channels):
                value = self.i.payload.data[k % self.in_fmt.channels] * self.scale + self.offsets[k]
                m.d.sync += self.o.payload.data[k].eq(value)
            m.d.sync += [self.o.payload.sof.eq(self.i.payload.sof),
                         self.o.payload.eol.eq(self.i.payload.eol),
                         self.o.valid.eq(1)]
        return m


@dataclass
class StandInPipeline(OneOutput):
    """Implements the Pipeline contract with a per-pixel channel map."""
    name: str
    input_format: PixelFormat
    output_format: PixelFormat
    width: int
    height: int
    scale: int = 1
    offset_step: int = 1
    latency_lines: int = 0
    lanes: int = 1

    @property
    def out_width(self):
        return self.width

    @property
    def out_height(self):
        return self.height

    @property
    def offsets(self):
        return [1 + self.offset_step * k for k in range(self.output_format.channels)]

    def golden_outputs(self, frame):
        return {self.name: self.golden(frame)}

    def golden(self, frame):
        frame = np.asarray(frame, dtype=np.int64).reshape(self.height, self.width, -1)
        channels = self.output_format.channels
        source = frame[:, :, [k % frame.shape[2] for k in range(channels)]]
        value = source * self.scale + np.array(self.offsets)
        bits, low = self.output_format.bits, self.output_format.min
        return (((value - low) % (1 << bits)) + low).astype(self.output_format.np_dtype)

    def hardware(self):
        return ChannelMap(self.input_format, self.output_format, self.scale, self.offsets)


def plus_one(width=8, height=6):
    return StandInPipeline("plus_one", PixelFormat(1, "uint8"), PixelFormat(1, "uint8"),
                           width, height)


def widen_int16(width=8, height=6):
    return StandInPipeline("widen_int16", PixelFormat(1, "uint8"), PixelFormat(1, "int16"),
                           width, height, scale=-129)


def fan_out_16(width=8, height=6):
    """Worst case for flow control: 1 byte in, 16 bytes out per pixel."""
    return StandInPipeline("fan_out_16", PixelFormat(1, "uint8"), PixelFormat(16, "int8"),
                           width, height, offset_step=17)


def blur_and_edges(width=8, height=6, pixels_per_clock=1):
    """A graph with two outputs of different formats: the input blurred (uint8) and its
    Sobel x gradient (int16)."""
    return parse_spec({"input": {"width": width, "height": height,
                                 "pixels_per_clock": pixels_per_clock},
                       "outputs": ["blur", "edges"],
                       "stage": [{"name": "blur", "op": "gaussian", "ksize": 3},
                                 {"name": "edges", "op": "sobel", "inputs": ["input"]}]})


def blur_and_edges_bytes(blur, edges):
    """The link bytes of the two outputs, spelled out: per pixel, blur's byte, then edges'
    two bytes, little-endian two's complement."""
    return np.concatenate([blur.reshape(-1, 1).astype(np.uint8),
                           edges.astype("<i2").reshape(-1, 1).view(np.uint8)],
                          axis=1).tobytes()


def random_frame(pipeline, seed=0):
    fmt = pipeline.input_format
    rng = np.random.default_rng(seed)
    return rng.integers(fmt.min, fmt.max + 1, size=(pipeline.height, pipeline.width,
                                                     fmt.channels)).astype(fmt.np_dtype)


def test_stand_in_golden_wraps():
    p = fan_out_16(2, 1)
    out = p.golden(np.array([[[0], [255]]], dtype=np.uint8))
    assert out[0, 0, 8] == 1 + 17 * 8 - 256 and out[0, 1, 0] == (256 - 256)  # 255 + 1 wraps


# --- serdes ------------------------------------------------------------------------------

FORMATS = [PixelFormat(1, "uint8"), PixelFormat(3, "uint8"), PixelFormat(2, "int16"),
           PixelFormat(1, "int32")]


# The rejected objects exist before __init__ raises; Amaranth then warns they were not used.
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bytes_per_pixel_and_validation():
    assert [bytes_per_pixel(f) for f in FORMATS] == [1, 3, 4, 4]
    with pytest.raises(ValueError, match="width must be a positive integer, not 0"):
        BytesToPixels(PixelFormat(1, "uint8"), 0, 4)
    with pytest.raises(TypeError, match="PixelFormat"):
        PixelsToBytes("uint8")


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("gaps", [False, True])
def test_serdes_round_trip(fmt, gaps):
    """bytes -> BytesToPixels -> pixels (checked: values, sof, eol) -> PixelsToBytes -> bytes,
    two frames back to back, with random valid gaps and ready stalls, or none (then one byte
    per clock at both ends)."""
    width, height, frames = 3, 2, 2
    rng = np.random.default_rng(hash((str(fmt), gaps)) % 2**32)
    images = rng.integers(fmt.min, fmt.max + 1, size=(frames, height, width, fmt.channels))
    stream_in = b"".join(frame_to_bytes(fmt, img) for img in images)

    m = Module()
    m.submodules.b2p = b2p = BytesToPixels(fmt, width, height)
    m.submodules.p2b = p2b = PixelsToBytes(fmt)
    wiring.connect(m, b2p.o, p2b.i)
    pixels, out_bytes, cycles = [], [], []
    chance = random.Random(1)

    async def source(ctx):
        for byte in stream_in:
            while gaps and chance.random() < 0.3:
                await ctx.tick()
            ctx.set(b2p.i.payload, byte)
            ctx.set(b2p.i.valid, 1)
            await ctx.tick().until(b2p.i.ready)
            ctx.set(b2p.i.valid, 0)

    async def monitor(ctx):
        async for _, _, valid, ready, data, sof, eol in ctx.tick().sample(
                b2p.o.valid, b2p.o.ready, b2p.o.payload.data, b2p.o.payload.sof,
                b2p.o.payload.eol):
            if valid and ready:
                pixels.append(([int(data[c]) for c in range(fmt.channels)], sof, eol))

    async def sink(ctx):
        clock = 0
        while len(out_bytes) < len(stream_in):
            ready = not (gaps and chance.random() < 0.3)
            ctx.set(p2b.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(p2b.o.valid, p2b.o.payload)
            clock += 1
            if valid and ready:
                out_bytes.append(payload)
                cycles.append(clock)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_testbench(monitor, background=True)
    sim.run()

    assert bytes(out_bytes) == stream_in
    expected = [(list(images[f, y, x]), int(x == 0 and y == 0), int(x == width - 1))
                for f in range(frames) for y in range(height) for x in range(width)]
    assert [(p, int(s), int(e)) for p, s, e in pixels] == expected
    if not gaps:
        # Full throughput: after the pipeline fills, one byte leaves every clock.
        assert cycles[-1] - cycles[0] == len(stream_in) - 1


JOINED = {"a": PixelFormat(1, "uint8"), "b": PixelFormat(2, "int16")}


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_joined_pixel_validation():
    assert bytes_per_pixel(JOINED) == 5
    with pytest.raises(ValueError, match="at least one format"):
        PixelsToBytes({})
    with pytest.raises(TypeError, match="mapping of names to PixelFormats, not 'int16'"):
        LaneUnpacker({"a": PixelFormat(1, "uint8"), "b": "int16"}, 4, 2)
    with pytest.raises(TypeError, match="PixelFormat"):
        BytesToPixels(JOINED, 4, 2)


@pytest.mark.parametrize("lanes", [1, 2])
def test_joined_pixels_to_bytes(lanes):
    """A joined stream (``lanes`` pixels per transfer, a 3-pixel line so the last transfer
    of each line has padding at 2 lanes) leaves as each field's pixel bytes in field order,
    with ready stalls on the byte side."""
    width, height = 3, 2
    rng = np.random.default_rng(lanes)
    frames = {name: rng.integers(fmt.min, fmt.max + 1, (height, width, fmt.channels))
              for name, fmt in JOINED.items()}
    words = pack_joined(JOINED, frames, lanes)
    expected = np.concatenate(
        [frames["a"].astype(np.uint8), frames["b"].astype("<i2").view(np.uint8)],
        axis=2).tobytes()

    m = Module()
    m.submodules.p2b = p2b = PixelsToBytes(JOINED)
    if lanes > 1:
        m.submodules.unpack = unpack = LaneUnpacker(JOINED, width, lanes)
        wiring.connect(m, unpack.o, p2b.i)
        sink_port = unpack.i
    else:
        sink_port = p2b.i
    out_bytes = []
    chance = random.Random(lanes)

    async def source(ctx):
        for word in words:
            ctx.set(sink_port.payload.as_value(), word)
            ctx.set(sink_port.valid, 1)
            await ctx.tick().until(sink_port.ready)
            ctx.set(sink_port.valid, 0)

    async def sink(ctx):
        while len(out_bytes) < len(expected):
            ready = chance.random() >= 0.3
            ctx.set(p2b.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(p2b.o.valid, p2b.o.payload)
            if valid and ready:
                out_bytes.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert bytes(out_bytes) == expected


# --- PLL settings ------------------------------------------------------------------------

ice40_pll_config = FAMILIES["ice40"].pll_config
ecp5_pll_config = FAMILIES["ecp5"].pll_config


def test_pll_configs_match_vendor_tools():
    # Reference values from icepll (-i 12 -o 24) and ecppll (-i 25 -o 50).
    assert ice40_pll_config(12e6, 24e6) == (
        dict(DIVR=0, DIVF=63, DIVQ=5, FILTER_RANGE=1), 24e6)
    params, achieved = ecp5_pll_config(25e6, 50e6)
    assert achieved == 50e6 and params["CLKOP_DIV"] * 50e6 >= 400e6
    assert 25e6 / params["CLKI_DIV"] * params["CLKFB_DIV"] == 50e6
    with pytest.raises(ValueError, match="cannot make 500 MHz from 12 MHz"):
        ice40_pll_config(12e6, 500e6)


# --- the bridge, bit by bit at the pins --------------------------------------------------

RESYNC_BYTE_TIMES = 30


def run_bridge(pipeline, streams, *, divisor=4, tx_fifo_depth=8, respect_window=True):
    """Simulate UARTBridge: a host testbench drives ``rx`` bit by bit with each input stream
    in turn as fast as the flow-control window allows (or ignoring it), another decodes
    ``tx`` into one answer per stream, which ends when complete or when the line stayed idle
    for 20 byte times after the stream's last byte. After an incomplete answer or one with a
    status bit set the host stays quiet until nothing has arrived for the bridge's resync time,
    discarding what still arrives.

    Returns (answers, status flags, peak RX FIFO level, whether the window held the sender
    back)."""
    frame_clocks = 10 * divisor
    bridge = UARTBridge(pipeline, divisor, resync_clocks=RESYNC_BYTE_TIMES * frame_clocks,
                        tx_fifo_depth=tx_fifo_depth)
    plan = link_plan(pipeline)
    answers = [bytearray() for _ in streams]
    closed = []          # answers ended (complete, or idle after their stream was sent)
    sent = []            # streams sent completely
    draining = []        # non-empty while the host waits for a resync
    decoded = []         # every byte from tx
    flags = {}
    rx_fifo_levels = []
    throttled = []

    async def host_send(ctx):
        for j, to_send in enumerate(streams):
            for index, byte in enumerate(to_send):
                # (Bytes beyond a frame's input stream, sent to upset the framing, go
                # unthrottled.)
                while (respect_window and index < plan.in_stream_bytes
                       and index >= plan.send_limit(len(answers[j]))):
                    throttled.append(index)
                    await ctx.tick()
                await drive_uart_byte(ctx, bridge.rx, byte, divisor)
            ctx.set(bridge.rx, 1)
            sent.append(j)
            while len(closed) <= j:
                await ctx.tick()
            if len(answers[j]) < plan.out_stream_bytes or answers[j][-5]:
                # Like the host after a failed frame: quiet, discarding what still comes,
                # until the bridge has resynced.
                draining.append(j)
                quiet, seen = 0, len(decoded)
                while quiet < bridge.resync_clocks + frame_clocks:
                    await ctx.tick()
                    quiet = 0 if len(decoded) != seen else quiet + 1
                    seen = len(decoded)
                draining.clear()

    async def host_receive(ctx):
        for j, answer in enumerate(answers):
            while len(answer) < plan.out_stream_bytes:
                byte = await sample_uart_byte(ctx, bridge.tx, divisor,
                                              max_idle_clocks=20 * frame_clocks)
                if byte is None:
                    if j in sent:
                        break
                    continue
                decoded.append(byte)
                if not draining:
                    answer.append(byte)
            closed.append(j)
        await ctx.tick().repeat(2 * frame_clocks)   # nothing more may follow
        assert ctx.get(bridge.tx) == 1
        flags.update(overflow=ctx.get(bridge.overflow),
                     framing_error=ctx.get(bridge.framing_error),
                     frame_done=ctx.get(bridge.frame_done))

    async def rx_fifo_level(ctx):
        async for _, _, level in ctx.tick().sample(bridge.rx_fifo_level):
            rx_fifo_levels.append(level)

    sim = Simulator(bridge)
    sim.add_clock(1e-6)
    sim.add_testbench(host_send)
    sim.add_testbench(host_receive)
    sim.add_testbench(rx_fifo_level, background=True)
    sim.run()
    return [bytes(a) for a in answers], flags, max(rx_fifo_levels), bool(throttled)


def split_answer(pipeline, answer):
    """(output, status) of a complete answer whose trailer the host helpers agree with:
    length and CRC as :func:`output_trailer` computes them. The output is as
    :func:`run_on_board` returns it: a frame, or ``{name: frame}`` for several outputs."""
    plan = link_plan(pipeline)
    assert len(answer) == plan.out_stream_bytes
    payload, trailer = answer[:plan.out_frame_bytes], answer[plan.out_frame_bytes:]
    status = trailer[4]
    assert trailer == output_trailer(payload, status)
    if status == 0:
        assert check_answer(plan, answer) == payload
    return plan.output.result(plan.output.from_bytes(payload)), status


def test_bridge_rejects_a_short_resync_time():
    with pytest.raises(ValueError, match=r"resync_clocks must be an integer >= 20 byte times "
                                         r"\(800 clocks\), not 799"):
        UARTBridge(plus_one(), 4, resync_clocks=799)


@pytest.mark.parametrize("make_pipeline", [plus_one, widen_int16, fan_out_16],
                         ids=lambda f: f.__name__)
def test_bridge_bit_exact_at_window_speed(make_pipeline):
    pipeline = make_pipeline()
    frame = random_frame(pipeline, seed=3)
    stream = input_stream(frame_to_bytes(pipeline.input_format, frame))
    (answer,), flags, rx_peak, throttled = run_bridge(pipeline, [stream])
    out, status = split_answer(pipeline, answer)
    np.testing.assert_array_equal(out, pipeline.golden(frame))
    assert status == 0
    assert flags == {"overflow": 0, "framing_error": 0, "frame_done": 1}
    if make_pipeline is fan_out_16:
        # The worst case really is one: the window held the host back and the RX FIFO
        # filled close to its depth (the rest of the window sits in the serdes and pipeline
        # registers) without overflowing.
        assert throttled
        assert rx_peak >= link_plan(pipeline).window * 3 // 4


@pytest.mark.parametrize("flip", [5, -2], ids=["payload", "trailer"])
def test_bridge_reports_a_corrupted_input_byte(flip):
    """A bit flipped on the way in (in a pixel or in the host's CRC) gives "input CRC bad" in
    a trailer that is itself intact; the next frame on the link is clean again."""
    pipeline = plus_one()
    frame = random_frame(pipeline, seed=6)
    stream = bytearray(input_stream(frame_to_bytes(pipeline.input_format, frame)))
    stream[flip] ^= 0x10
    answers, flags, _, _ = run_bridge(pipeline, [bytes(stream), input_stream(
        frame_to_bytes(pipeline.input_format, frame))])
    received = bytes_to_frame(pipeline.input_format, bytes(stream[:-4]), pipeline.height,
                              pipeline.width)
    out, status = split_answer(pipeline, answers[0])
    assert status == STATUS_INPUT_CRC_BAD
    np.testing.assert_array_equal(out, pipeline.golden(received))   # what the board saw
    out, status = split_answer(pipeline, answers[1])
    assert status == 0
    np.testing.assert_array_equal(out, pipeline.golden(frame))
    assert flags["overflow"] == 0 and flags["framing_error"] == 0


@pytest.mark.parametrize("fault", ["dropped", "extra"])
def test_bridge_resyncs_after_a_quiet_link(fault):
    """A lost input byte leaves the board waiting for the rest of the frame (no trailer); an
    extra one ends the frame early (bad input CRC) and starts the next. Either way, after the
    resync time of quiet the next frame is exact."""
    pipeline = plus_one()
    frame = random_frame(pipeline, seed=9)
    good = input_stream(frame_to_bytes(pipeline.input_format, frame))
    bad = good[:20] + good[21:] if fault == "dropped" else good[:20] + b"\x55" + good[20:]
    answers, _, _, _ = run_bridge(pipeline, [bad, good])
    plan = link_plan(pipeline)
    if fault == "dropped":
        assert 0 < len(answers[0]) < plan.out_stream_bytes
    else:
        assert split_answer(pipeline, answers[0])[1] == STATUS_INPUT_CRC_BAD
    out, status = split_answer(pipeline, answers[1])
    assert status == 0
    np.testing.assert_array_equal(out, pipeline.golden(frame))


def test_ignoring_the_window_overflows_the_rx_fifo():
    """With the worst-case ratio, a host that sends at line rate overflows the RX FIFO: the
    flags checked above do detect a broken window."""
    pipeline = fan_out_16()
    frame = random_frame(pipeline, seed=4)
    (answer,), flags, rx_peak, _ = run_bridge(
        pipeline, [input_stream(frame_to_bytes(pipeline.input_format, frame))],
        respect_window=False)
    assert flags["overflow"] == 1
    assert rx_peak == link_plan(pipeline).window
    assert len(answer) < link_plan(pipeline).out_stream_bytes


def test_bridge_packs_lanes_for_a_multi_pixel_pipeline():
    """A pipeline taking 4 pixels per clock, 10 pixels wide (the last transfer of each line
    has 2 padding lanes): the bridge packs and unpacks lanes, and the bytes are exact."""
    pipeline = parse_spec({"input": {"width": 10, "height": 5, "pixels_per_clock": 4},
                           "stage": [{"op": "gaussian", "ksize": 3},
                                     {"op": "sobel", "dx": 1, "dy": 0}]})
    frame = np.random.default_rng(8).integers(0, 256, (5, 10, 1), dtype=np.uint8)
    (answer,), flags, _, _ = run_bridge(
        pipeline, [input_stream(frame_to_bytes(pipeline.input_format, frame))])
    out, status = split_answer(pipeline, answer)
    assert status == 0
    np.testing.assert_array_equal(out, pipeline.golden(frame))
    assert flags == {"overflow": 0, "framing_error": 0, "frame_done": 1}


@pytest.mark.parametrize("pixels_per_clock", [1, 2])
def test_bridge_sends_every_output_of_a_graph(pixels_per_clock):
    """Two outputs (uint8 and int16) leave as one joined stream: on the link each pixel is
    blur's byte then edges' two, and both outputs are bit-exact; at 2 pixels per clock the
    joined lanes are unpacked first."""
    pipeline = blur_and_edges(pixels_per_clock=pixels_per_clock)
    frame = random_frame(pipeline, seed=11)
    (answer,), flags, _, _ = run_bridge(
        pipeline, [input_stream(frame_to_bytes(pipeline.input_format, frame))])
    golden = pipeline.golden_outputs(frame)
    assert answer[:link_plan(pipeline).out_frame_bytes] == blur_and_edges_bytes(
        golden["blur"], golden["edges"])
    out, status = split_answer(pipeline, answer)
    assert status == 0 and list(out) == ["blur", "edges"]
    for name, expected in golden.items():
        np.testing.assert_array_equal(out[name], expected)
    assert flags == {"overflow": 0, "framing_error": 0, "frame_done": 1}
