"""Formal proofs of the stream contract (SymbiYosys + Yices through :mod:`rasterflow.sim.formal`).

Every harness wraps one component in :class:`StreamContractHarness`: inputs that keep the
stream rules, a free ``o.ready``, and assertions on the output (rules, item accounting,
markers, drain, acceptance, tags). For the window generator and ``Filter2D`` the geometry is
``W x H = 4 x 3`` with ``3 x 3`` windows, one channel of 2-bit pixels (control does not
depend on the pixel width; the solver time does); every other stage is checked at the
smallest frame its window allows, ``2 x 2`` (section "counting and frame geometry" below).

Depths: one 4x3 frame takes 12 input cycles; its last output leaves ``hy*W + hx`` ticks plus
the pipeline latency later. A BMC depth covers every input/stall pattern of that length.

What closes where: the two output stream rules are local to the output registers, and
k-induction (``prove``) closes on them at k = 2 for every component here except the
lane-parallel copies (see ``LOCKSTEP_LANE_COMPONENTS``); that is a proof for every reachable
state. The counting properties (accounting, markers, drain, acceptance, tags) relate harness
counters to what is inside the component, hold only from reset, and are proved by BMC to the
depth given with each test: a bounded proof, every behaviour up to that many cycles.

``valid`` never depending on ``ready`` is proved by :func:`check_no_combinational_path` (no
combinational path from ``o.ready`` to ``o.valid`` in the netlist), which holds in every
state, not just to a depth.

The UART is proved in ``tests/test_formal_uart.py``, the requantizer's arithmetic in
``tests/test_formal_requant.py``.
"""
import numpy as np
import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl import imgproc, link, pointwise, serdes
from rasterflow.hdl.activation import RequantActivation
from rasterflow.hdl.conv import Conv2DUnit
from rasterflow.hdl.filters import ColumnDot, Filter2D, SepFilter2D, WindowDot
from rasterflow.hdl.guard import FrameGuard
from rasterflow.hdl.payload import pixel_layout
from rasterflow.hdl.stall import SkidBuffer
from rasterflow.hdl.pool import MaxPoolUnit
from rasterflow.hdl.requant import REQUANT_LATENCY, Requantizer
from rasterflow.hdl.window import ColumnScanner, RowWindow
from rasterflow.sim.formal import StreamContractHarness, check_no_combinational_path, run_sby

W, H = 4, 3
HY = HX = 1
IDENTITY = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]


class NarrowPixels(PixelFormat):
    """uint8 as far as validation goes, but 2 bits wide: a small state space for the solver."""
    @property
    def bits(self):
        return 2


FMT = NarrowPixels(1, "uint8")
COLUMN = data.ArrayLayout(pixel_layout(FMT), 3)


def assert_proof(result, expect_pass=True):
    detail = f"{result.status} in {result.seconds:.1f}s; failed: {result.failed}\n" \
             f"trace: {result.trace}\n{result.log_tail}"
    assert result.passed == expect_pass, detail


def filter2d():
    return Filter2D(FMT, W, H, IDENTITY, output=FMT)


def filter_harness(dut, **kwargs):
    return StreamContractHarness(dut, frame_items=W * H, width=W, markers=True, **kwargs)


def capacity(dut):
    """Items a windowed stage may hold: the schedule (``hy*W + hx``), the line the read
    pointer may run ahead of the input in a frame's free rows (``hy*W``), and one per
    register stage. Also the drain bound: each held item needs at most one cycle to leave."""
    return 2 * HY * W + HX + dut.latency


# -- valid never depends on ready ----------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: ColumnScanner(FMT, W, H, 3, 3),
    lambda: RowWindow(COLUMN, W, H, 3, constant_column=[[0]] * 3),
    lambda: ColumnDot(FMT, [1, 2, 1]),
    lambda: WindowDot(COLUMN, 3, IDENTITY, (FMT.min, FMT.max), 1, shift=0,
                      rounding="half_even", output=FMT),
    filter2d,
    lambda: FrameGuard(FMT, W, H),
], ids=["ColumnScanner", "RowWindow", "ColumnDot", "WindowDot", "Filter2D", "FrameGuard"])
def test_valid_has_no_combinational_path_from_ready(make):
    assert check_no_combinational_path(make())


# -- pipelines: ColumnDot, WindowDot --------------------------------------------------------

def column_dot_harness(**kwargs):
    dut = ColumnDot(FMT, [0, 1, 0])
    return StreamContractHarness(
        dut, max_outstanding=dut.latency, drain_cycles=dut.latency, accept_cycles=1,
        tags=(lambda p: Cat(p.column[1][0], p.emit), lambda p: Cat(p.column[0], p.emit)),
        **kwargs)


def window_dot_harness(**kwargs):
    dut = WindowDot(COLUMN, 3, IDENTITY, (FMT.min, FMT.max), 1, shift=0,
                    rounding="half_even", output=FMT)
    return StreamContractHarness(
        dut, max_outstanding=dut.latency, drain_cycles=dut.latency, accept_cycles=1,
        tags=(lambda p: Cat(p.window[1][1][0], p.sof, p.eol),
              lambda p: Cat(p.data[0], p.sof, p.eol)),
        **kwargs)


@pytest.mark.parametrize("harness", [column_dot_harness, window_dot_harness],
                         ids=["ColumnDot", "WindowDot"])
def test_pipeline_bmc(harness, tmp_path):
    """Rules, exact occupancy (<= latency), drain in `latency` cycles, in-order tags."""
    assert_proof(run_sby(harness(), mode="bmc", depth=12, workdir=tmp_path))


@pytest.mark.parametrize("harness", [column_dot_harness, window_dot_harness],
                         ids=["ColumnDot", "WindowDot"])
def test_pipeline_rules_prove(harness, tmp_path):
    """The output rules hold in every reachable state (k-induction closes at k = 2)."""
    assert_proof(run_sby(harness(rules_only=True), mode="prove", depth=2, workdir=tmp_path))


# -- window generator: ColumnScanner, RowWindow ------------------------------------------------

def scanner_harness(**kwargs):
    dut = ColumnScanner(FMT, W, H, 3, 3)
    return StreamContractHarness(
        dut, frame_items=W * H, width=W, out_item=lambda p: p.emit,
        max_outstanding=2 * HY * W + HX + dut.latency, drain_cycles=HY * W + HX + dut.latency,
        accept_cycles=HX, **kwargs)


def row_window_harness(**kwargs):
    dut = RowWindow(COLUMN, W, H, 3, constant_column=[[0]] * 3)
    return StreamContractHarness(
        dut, frame_items=W * H, width=W, markers=True, in_item=lambda p: p.emit,
        max_outstanding=dut.latency, drain_cycles=dut.latency, accept_cycles=1, **kwargs)


def test_row_window_bmc(tmp_path):
    """sof/eol exact on every window of 1.5 frames; one window per emitted column."""
    assert_proof(run_sby(row_window_harness(), mode="bmc", depth=20, workdir=tmp_path))


def test_scanner_bmc(tmp_path):
    """One frame plus its drain with any stalls: W*H emits per frame, none before its input,
    the frame drains without further input, input never refused while the output is ready
    (the one drain tick, hx = 1, only starts when no input is offered)."""
    assert_proof(run_sby(scanner_harness(), mode="bmc", depth=22, workdir=tmp_path))


@pytest.mark.parametrize("harness", [scanner_harness, row_window_harness],
                         ids=["ColumnScanner", "RowWindow"])
def test_window_rules_prove(harness, tmp_path):
    assert_proof(run_sby(harness(rules_only=True), mode="prove", depth=2, workdir=tmp_path))


# -- the whole windowed stage: Filter2D ------------------------------------------------------

@pytest.mark.slow
def test_filter2d_bmc(tmp_path):
    """One frame plus drain (12 + 14 cycles) with any stalls: rules, sof/eol, occupancy,
    drain, acceptance (an offered input waits at most 2 cycles with the output ready: the
    scanner's drain tick, and a skid buffer between the window parts giving back its second
    entry after a stall; fails with 1)."""
    dut = filter2d()
    harness = filter_harness(dut, max_outstanding=capacity(dut), drain_cycles=capacity(dut),
                             accept_cycles=3)
    assert_proof(run_sby(harness, mode="bmc", depth=26, workdir=tmp_path))


@pytest.mark.slow
def test_filter2d_identity_is_in_order_bmc(tmp_path):
    """Identity kernel: output pixel n carries input pixel n (tags), through line buffers,
    borders and the window, for every stall pattern up to 20 cycles."""
    dut = filter2d()
    harness = StreamContractHarness(dut, frame_items=W * H, width=W,
                                    max_outstanding=capacity(dut), drain_cycles=capacity(dut),
                                    accept_cycles=3,
                                    tags=(lambda p: p.data[0], lambda p: p.data[0]))
    assert_proof(run_sby(harness, mode="bmc", depth=20, workdir=tmp_path))


def test_filter2d_rules_prove(tmp_path):
    harness = filter_harness(filter2d(), accept_cycles=2, rules_only=True)
    assert_proof(run_sby(harness, mode="prove", depth=2, workdir=tmp_path))


def test_filter2d_covers_two_back_to_back_frames(tmp_path):
    """Reachability: a frame completes, and two frames complete with the second frame's input
    starting before the first frame's last output."""
    dut = filter2d()
    harness = filter_harness(dut, max_outstanding=capacity(dut), drain_cycles=capacity(dut),
                             accept_cycles=2)
    assert_proof(run_sby(harness, mode="cover", depth=2 * W * H + capacity(dut) + 2,
                         workdir=tmp_path))


# -- FrameGuard: any input markers, always well-formed output ------------------------------

def test_frame_guard_bmc(tmp_path):
    """With arbitrary sof/eol on the input, every output pixel has exact markers, and input
    waits at most two frames (a broken frame is filled, then the held pixel that cut it
    short starts the next frame with a wrong eol, and that frame is filled too)."""
    harness = StreamContractHarness(FrameGuard(FMT, 3, 2), frame_items=6, width=3,
                                    markers=True, accept_cycles=2 * 6 + 2, lossless=False)
    assert_proof(run_sby(harness, mode="bmc", depth=20, workdir=tmp_path))


def test_frame_guard_rules_prove(tmp_path):
    harness = StreamContractHarness(FrameGuard(FMT, 3, 2), frame_items=6, width=3,
                                    accept_cycles=6 + 2, lossless=False, rules_only=True)
    assert_proof(run_sby(harness, mode="prove", depth=2, workdir=tmp_path))


# -- the harness catches broken components -------------------------------------------------

class Chain(wiring.Component):
    """``first`` then ``second``, stream to stream."""
    def __init__(self, first, second):
        self.first, self.second = first, second
        self.latency = first.latency + second.latency
        super().__init__({"i": In(first.i.signature.flip()), "o": Out(second.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.first, m.submodules.second = self.first, self.second
        connect(m, wiring.flipped(self.i), self.first.i)
        connect(m, self.first.o, self.second.i)
        connect(m, self.second.o, wiring.flipped(self.o))
        return m


class LeakySlice(wiring.Component):
    """A register slice with a bug: while its output is stalled, it drops ``valid``."""
    def __init__(self, signature):
        self.latency = 1
        super().__init__({"i": In(signature), "o": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        m.d.sync += self.o.valid.eq(self.i.valid & en)
        with m.If(en):
            m.d.sync += self.o.payload.eq(self.i.payload)
        return m


class BypassSlice(wiring.Component):
    """A slice that passes the input straight through when the output is ready: it keeps the
    hold rules but its ``valid`` depends combinationally on ``ready``."""
    def __init__(self, signature):
        self.latency = 0
        super().__init__({"i": In(signature), "o": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        held = Signal()
        held_payload = Signal.like(self.i.payload)
        m.d.comb += [
            self.o.valid.eq(held | (self.i.valid & self.o.ready)),
            self.o.payload.eq(Mux(held, held_payload, self.i.payload)),
            self.i.ready.eq(~held),
        ]
        with m.If(self.i.valid & ~held & ~self.o.ready):
            m.d.sync += [held.eq(1), held_payload.eq(self.i.payload)]
        with m.If(held & self.o.ready):
            m.d.sync += held.eq(0)
        return m


def test_leaky_slice_after_filter2d_fails_bmc(tmp_path):
    dut = filter2d()
    leaky = Chain(dut, LeakySlice(stream.Signature(dut.o.payload.shape())))
    harness = filter_harness(leaky, max_outstanding=capacity(leaky),
                             drain_cycles=capacity(leaky), accept_cycles=2)
    result = run_sby(harness, mode="bmc", depth=26, workdir=tmp_path)
    assert_proof(result, expect_pass=False)
    assert any("o.valid dropped" in line for line in result.failed), result.failed
    assert result.trace is not None and result.trace.exists()


def test_bypass_slice_is_caught_by_the_path_check(tmp_path):
    dut = filter2d()
    bypass = Chain(dut, BypassSlice(stream.Signature(dut.o.payload.shape())))
    assert not check_no_combinational_path(bypass)
    # The hold rules alone cannot see it: the bounded proof passes.
    harness = filter_harness(bypass, accept_cycles=2, rules_only=True)
    assert_proof(run_sby(harness, mode="bmc", depth=16, workdir=tmp_path))


# -- the filter library's stages, the CNN stages and the serial-link adapters ---------------------
# First the output stream rules (k-induction) and valid's independence from ready (netlist path
# check) for every other datapath; then, below, the full harness at the smallest frames.

U8 = PixelFormat(1, "uint8")
I8 = PixelFormat(1, "int8")
INT16 = PixelFormat(1, "int16")
VERDICT_GAP = 2


def identity_conv(width, height, stride):
    """An int8 3x3 convolution whose output is its window's centre (weight 1 there, bias 0,
    multiplier 1.0 = (2**30, 1)); with stride 2 (SAME), the centres at even positions."""
    weights = np.zeros((1, 3, 3, 1), np.int64)
    weights[0, 1, 1, 0] = 1
    return Conv2DUnit(width, height, weights, [0], [1 << 30], [1], in_zp=0, out_zp=0,
                      stride=stride)


class FramerWithFreeVerdict(wiring.Component):
    """:class:`~rasterflow.hdl.link.OutputFramer` whose verdict input comes from a free source
    that keeps the stream rules and is never without a verdict for more than
    :data:`VERDICT_GAP` cycles in a row; the RX status flags are free. (Left undriven, the
    verdict would be a constant 0 and the trailer would never be sent.)"""
    def __init__(self, frame_bytes):
        self.framer = link.OutputFramer(frame_bytes)
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.framer = framer = self.framer
        connect(m, wiring.flipped(self.i), framer.i)
        connect(m, framer.o, wiring.flipped(self.o))
        verdict = framer.input_ok
        m.d.comb += [verdict.valid.eq(AnySeq(1)), verdict.payload.eq(AnySeq(1)),
                     framer.rx_overflow.eq(AnySeq(1)), framer.rx_framing_error.eq(AnySeq(1))]
        held, last = Signal(), Signal()
        m.d.sync += [held.eq(verdict.valid & ~verdict.ready), last.eq(verdict.payload)]
        with m.If(held):
            m.d.comb += Assume(verdict.valid & (verdict.payload == last))
        missing = Signal(range(VERDICT_GAP + 1))
        m.d.sync += missing.eq(Mux(verdict.valid, 0, missing + 1))
        m.d.comb += Assume(verdict.valid | (missing < VERDICT_GAP))
        return m


class CheckerWithVerdictSink(wiring.Component):
    """:class:`~rasterflow.hdl.link.InputFrameChecker` whose verdict output goes to a free sink
    that never refuses it for more than :data:`VERDICT_GAP` cycles in a row. Asserts the
    verdict stream's rules and, with ``count_verdicts``, one verdict per input frame: offered
    two cycles after the frame's last trailer byte, none without a frame, none lost (counts,
    which hold from reset, not in every state: not for k-induction)."""
    def __init__(self, frame_bytes, *, count_verdicts=True):
        self.frame_bytes = frame_bytes
        self.count_verdicts = count_verdicts
        self.checker = link.InputFrameChecker(frame_bytes)
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.checker = checker = self.checker
        connect(m, wiring.flipped(self.i), checker.i)
        connect(m, checker.o, wiring.flipped(self.o))
        verdict = checker.input_ok
        m.d.comb += verdict.ready.eq(AnySeq(1))
        refused = Signal(range(VERDICT_GAP + 1))
        m.d.sync += refused.eq(Mux(verdict.ready, 0, refused + 1))
        m.d.comb += Assume(verdict.ready | (refused < VERDICT_GAP))

        held, last = Signal(), Signal()
        m.d.sync += [held.eq(verdict.valid & ~verdict.ready), last.eq(verdict.payload)]
        with m.If(held):
            m.d.comb += Assert(verdict.valid, "input_ok.valid dropped before a transfer")
            m.d.comb += Assert(verdict.payload == last, "input_ok.payload changed")
        if not self.count_verdicts:
            return m

        frame = self.frame_bytes + link.IN_TRAILER_BYTES
        position = Signal(range(frame))
        frame_ends = Signal()
        m.d.comb += frame_ends.eq(checker.i.valid & checker.i.ready & (position == frame - 1))
        with m.If(checker.i.valid & checker.i.ready):
            m.d.sync += position.eq(Mux(frame_ends, 0, position + 1))
        owed = Signal(range(3))             # frames ended whose verdict has not been taken
        m.d.sync += owed.eq(owed + frame_ends - (verdict.valid & verdict.ready))
        with m.If(verdict.valid):
            m.d.comb += Assert(owed != 0, "verdict without a frame")
        m.d.comb += Assert(owed <= 1, "a frame's verdict was lost")
        waited = Signal()                   # a verdict was owed and not offered last cycle
        m.d.sync += waited.eq((owed != 0) & ~verdict.valid)
        m.d.comb += Assert(~(waited & (owed != 0) & ~verdict.valid), "verdict not offered")
        return m


OTHER_COMPONENTS = {
    "MedianBlur": lambda: imgproc.MedianBlur(U8, W, H, 3),
    "ErodeRect": lambda: imgproc.Erode(U8, W, H, 3),
    "DilateCross": lambda: imgproc.Dilate(U8, W, H, 3, shape="cross"),
    "GradientL2": lambda: imgproc.GradientMagnitude(U8, W, H, norm="l2"),
    "BoxNormalized": lambda: imgproc.BoxFilter(U8, W, H, 3),
    "SepFilter2D": lambda: SepFilter2D(U8, W, H, [1, 2, 1], [-1, 0, 1], shift=2),
    "Filter2DLanes2": lambda: Filter2D(FMT, 5, H, IDENTITY, output=FMT, lanes=2),
    "Conv2D": lambda: identity_conv(W, H, 1),
    "Conv2DStride2": lambda: identity_conv(W, H, 2),
    "MaxPool2x2Stride2": lambda: MaxPoolUnit(I8, W, H, size=2, stride=2, padding="same"),
    "LeakyReLU": lambda: RequantActivation(I8, in_zp=-3, out_zp=5,
                                           multipliers=[(1 << 30, 1), (1717986918, -3)]),
    "Requantizer": lambda: Requantizer(),
    "Threshold": lambda: pointwise.Threshold(U8, level=9),
    "RGB2Gray": lambda: pointwise.RGB2Gray(),
    "ChannelMin": lambda: pointwise.ChannelMin(PixelFormat(3, "uint8")),
    "BytesToPixels": lambda: serdes.BytesToPixels(INT16, W, H),
    "PixelsToBytes": lambda: serdes.PixelsToBytes(INT16),
    "LanePacker": lambda: serdes.LanePacker(U8, 5, H, 2),
    "LaneUnpacker": lambda: serdes.LaneUnpacker(U8, 5, 2),
    # With their verdict streams driven (and, for the checker, its rules asserted).
    "InputFrameChecker": lambda: CheckerWithVerdictSink(6, count_verdicts=False),
    "OutputFramer": lambda: FramerWithFreeVerdict(6),
}
# Datapaths copied per lane (LaneParallel) advance in lockstep only from reset: from an
# arbitrary state the copies' stage valid bits may differ, and while the output is stalled a
# copy whose last stage is empty loads it under a held o.valid. k-induction does not close
# (tried up to k = 20) without that lockstep invariant, which lies inside the copies; their
# rules are proved from reset by the BMC of the full harness below.
LOCKSTEP_LANE_COMPONENTS = {
    "MedianBlurLanes2": lambda: imgproc.MedianBlur(FMT, 5, H, 3, lanes=2),
}


@pytest.mark.parametrize("name", OTHER_COMPONENTS)
def test_other_components_output_rules_prove(name, tmp_path):
    harness = StreamContractHarness(OTHER_COMPONENTS[name](), accept_cycles=1,
                                    rules_only=True)
    assert_proof(run_sby(harness, mode="prove", depth=2, workdir=tmp_path))


@pytest.mark.parametrize("name", {**OTHER_COMPONENTS, **LOCKSTEP_LANE_COMPONENTS})
def test_other_components_valid_has_no_combinational_path_from_ready(name):
    make = OTHER_COMPONENTS.get(name) or LOCKSTEP_LANE_COMPONENTS[name]
    assert check_no_combinational_path(make())


# -- counting and frame geometry for every other stage, at the smallest frames ------------------
# The full harness in BMC: output rules, item accounting (nothing invented, lost or duplicated;
# bounded occupancy), sof/eol where the frame geometry puts them, the drain of the last frame
# without further input, bounded acceptance, and item order (tags) where a configuration
# passes pixels (or bytes) through unchanged; and, as a cover run, one frame and two
# back-to-back frames leaving.
#
# Geometry: S_W x S_H = 2 x 2, the smallest frame a 3x3 window allows (W, H >= K//2 + 1):
# every pixel is a border pixel in both directions. 2-bit pixels where the format allows
# (control never depends on the pixel width; int8-only stages keep 8 bits, so does the
# normalized box filter, whose divider output must hold 255). Stride-2 stages take 3 x 3
# frames (2 x 2 out); two-lane stages 3 x 2 frames (a padding lane ends each line); the lane
# adapters 3-pixel lines in 2 lanes; the link framers 2-byte payloads.
#
# Depth: for the windowed stages one frame plus its drain, ``frame + drain_cycles + 1`` steps,
# the first depth at which the drain assertion applies (input at full rate, then none): every
# input/stall pattern of that length, which includes the next frame arriving while the first
# drains. Deeper runs get expensive fast (MedianBlur: 2 s at 26 steps, 60 s at 31). The
# pointwise stages and adapters are cheap and get two frames plus the drain (the requantizer,
# whose frame is one item, eight), except the output framer (one: the CRC in its trailer
# makes two frames 10 times slower). None of these
# counting properties is proved by induction: they relate harness counters to pipeline
# contents, which k-induction from an arbitrary state cannot (the rules above do close).
#
# Bounds (structural; measured at these depths, one less: acceptance fails everywhere but for
# the output framer, occupancy and drain fail for the pointwise stages and the adapters but
# the framer, whose trailer bounds this depth does not reach, and pass for the windowed stages,
# so there they are upper bounds, not exact): a windowed stage holds at most its schedule
# (``hy*G + hx``), the line the read pointer may run ahead of the input in free rows
# (``hy*G``), one item per register stage and one more per skid buffer (its second entry);
# behind a decimator each stage holds an output item, worth frame/out-frame input items. With
# the output ready, an offered input waits at most one cycle per skid buffer.

S_W, S_H = 2, 2


def skid_buffers(dut):
    return sum(isinstance(part, SkidBuffer) for part in dut._parts)


def windowed_harness(dut, *, width=S_W, height=S_H, out_size=None, lanes=1, kernel=3,
                     **kwargs):
    """The full harness around a windowed stage of ``width x height`` frames (``out_size``
    output frames when it decimates), ``lanes`` pixels per transfer."""
    groups = -(-width // lanes)
    out_width, out_height = out_size or (groups, height)
    capacity = (2 * (kernel // 2) * groups + -(-(kernel // 2) // lanes) + dut.latency
                + skid_buffers(dut))
    in_items_held = -(-capacity * groups * height // (out_width * out_height))
    return StreamContractHarness(
        dut, frame_items=groups * height, out_frame_items=out_width * out_height,
        width=out_width, markers=True, max_outstanding=in_items_held, drain_cycles=capacity,
        accept_cycles=skid_buffers(dut) + 1, **kwargs)


def pointwise_harness(dut, **kwargs):
    """The full harness around a stall-all pipeline of pixels that carries sof/eol along
    (the input's markers are assumed right)."""
    return StreamContractHarness(
        dut, frame_items=S_W * S_H, width=S_W, markers=True, in_markers=(S_W, S_H),
        max_outstanding=dut.latency, drain_cycles=dut.latency, accept_cycles=1, **kwargs)


PIXEL_TAGS = (lambda p: p.data[0][:2], lambda p: p.data[0][:2])
LANE_TAGS = (lambda p: p.data[0][0][:2], lambda p: p.data[0][0][:2])
BYTE_TAGS = (lambda p: p, lambda p: p)
PIXEL_BYTES = (lambda p: [p.data[0][:8], p.data[0][8:]])   # a 2-byte pixel's bytes, in order
LINK_PAYLOAD_BYTES = 2

# name -> (harness, frames the BMC runs before the drain)
FRAME_PROOFS = {
    "MedianBlur": (lambda: windowed_harness(imgproc.MedianBlur(FMT, S_W, S_H, 3)), 1),
    "ErodeRect": (lambda: windowed_harness(imgproc.Erode(FMT, S_W, S_H, 3)), 1),
    "DilateCross": (lambda: windowed_harness(imgproc.Dilate(FMT, S_W, S_H, 3, shape="cross")),
                    1),
    "GradientL2": (lambda: windowed_harness(imgproc.GradientMagnitude(FMT, S_W, S_H,
                                                                      norm="l2")), 1),
    "BoxNormalized": (lambda: windowed_harness(imgproc.BoxFilter(U8, S_W, S_H, 3)), 1),
    # Identity taps: in order through the line buffers, the column dot and the row window.
    "SepFilter2DIdentity": (lambda: windowed_harness(
        SepFilter2D(FMT, S_W, S_H, [0, 1, 0], [0, 1, 0], output=FMT), tags=PIXEL_TAGS), 1),
    "Filter2DLanes2Identity": (lambda: windowed_harness(
        Filter2D(FMT, 3, S_H, IDENTITY, output=FMT, lanes=2), width=3, lanes=2,
        tags=LANE_TAGS), 1),
    "MedianBlurLanes2": (lambda: windowed_harness(
        imgproc.MedianBlur(FMT, 3, S_H, 3, lanes=2), width=3, lanes=2), 1),
    # Identity weights: in order through the window latch, MAC array and requantizer.
    "Conv2DIdentity": (lambda: windowed_harness(identity_conv(S_W, S_H, 1), tags=PIXEL_TAGS),
                       1),
    "Conv2DStride2": (lambda: windowed_harness(identity_conv(3, 3, 2), width=3, height=3,
                                               out_size=(2, 2)), 1),
    "MaxPool2x2Stride2": (lambda: windowed_harness(
        MaxPoolUnit(I8, 3, 3, size=2, stride=2, padding="same"), width=3, height=3,
        out_size=(2, 2)), 1),
    "Threshold": (lambda: pointwise_harness(pointwise.Threshold(U8, level=9)), 2),
    "RGB2Gray": (lambda: pointwise_harness(pointwise.RGB2Gray()), 2),
    "ChannelMin": (lambda: pointwise_harness(pointwise.ChannelMin(PixelFormat(3, "uint8"))), 2),
    # Both multipliers 1.0: the output is the input, whichever lane the sign picks.
    "LeakyReLUIdentity": (lambda: pointwise_harness(RequantActivation(
        I8, in_zp=0, out_zp=0, multipliers=[(1 << 30, 1), (1 << 30, 1)]), tags=PIXEL_TAGS), 2),
    # A plain pipeline: a "frame" is one item; eight of them (the pipeline fills and stalls).
    "Requantizer": (lambda: StreamContractHarness(
        Requantizer(), max_outstanding=REQUANT_LATENCY, drain_cycles=REQUANT_LATENCY,
        accept_cycles=1), 8),
    # 2-byte pixels: items are bytes on both sides; markers at the 2 x 2 pixel geometry.
    "BytesToPixels": (lambda: StreamContractHarness(
        serdes.BytesToPixels(INT16, S_W, S_H), frame_items=2 * S_W * S_H, width=2 * S_W,
        markers=True, out_item=lambda p: 2, max_outstanding=3, drain_cycles=1,
        accept_cycles=1, tags=(lambda p: p, PIXEL_BYTES)), 2),
    "PixelsToBytes": (lambda: StreamContractHarness(
        serdes.PixelsToBytes(INT16), frame_items=2 * S_W * S_H, in_item=lambda p: 2,
        max_outstanding=2, drain_cycles=2, accept_cycles=2, tags=(PIXEL_BYTES, lambda p: p)),
                      2),
    # Items are pixels on both sides: a line's last transfer carries 1, the others 2.
    "LanePacker": (lambda: StreamContractHarness(
        serdes.LanePacker(FMT, 3, S_H, 2), frame_items=3 * S_H, width=3, markers=True,
        out_item=lambda p: Mux(p.eol, 1, 2), max_outstanding=2, drain_cycles=1,
        accept_cycles=1,
        tags=(lambda p: p.data[0], lambda p: [p.data[0][0], p.data[1][0]])), 2),
    "LaneUnpacker": (lambda: StreamContractHarness(
        serdes.LaneUnpacker(FMT, 3, 2), frame_items=3 * S_H, width=3, markers=True,
        in_item=lambda p: Mux(p.eol, 1, 2), in_markers=(2, S_H), max_outstanding=1,
        drain_cycles=1, accept_cycles=2, pass_through=True, back_to_back_gap=2,
        tags=(lambda p: [p.data[0][0], p.data[1][0]], lambda p: p.data[0])), 2),
    # The 4-byte CRC trailer is consumed, the 9-byte status trailer added; between frames the
    # checker spends 2 cycles on the verdict, the framer sends its trailer.
    "InputFrameChecker": (lambda: StreamContractHarness(
        CheckerWithVerdictSink(LINK_PAYLOAD_BYTES),
        frame_items=LINK_PAYLOAD_BYTES + link.IN_TRAILER_BYTES,
        in_trailer=link.IN_TRAILER_BYTES, max_outstanding=1, drain_cycles=1,
        accept_cycles=VERDICT_GAP + 3, pass_through=True, back_to_back_gap=3,
        tags=BYTE_TAGS), 2),
    "OutputFramer": (lambda: StreamContractHarness(
        FramerWithFreeVerdict(LINK_PAYLOAD_BYTES), frame_items=LINK_PAYLOAD_BYTES,
        out_trailer=link.OUT_TRAILER_BYTES, max_outstanding=1,
        drain_cycles=link.OUT_TRAILER_BYTES + VERDICT_GAP,
        accept_cycles=link.OUT_TRAILER_BYTES + VERDICT_GAP + 1, pass_through=True,
        back_to_back_gap=link.OUT_TRAILER_BYTES + 1, tags=BYTE_TAGS), 1),
}


@pytest.mark.parametrize("name", FRAME_PROOFS)
def test_frame_accounting_bmc(name, tmp_path):
    make, frames = FRAME_PROOFS[name]
    harness = make()
    depth = frames * harness.frame_items + harness.drain_cycles + 1
    assert_proof(run_sby(harness, mode="bmc", depth=depth, workdir=tmp_path))


@pytest.mark.parametrize("name", FRAME_PROOFS)
def test_frames_complete_back_to_back_cover(name, tmp_path):
    """Reachability (the covers stop at the first trace that reaches them; the depth is only
    a limit): one frame leaves, and two frames leave back to back."""
    make, _ = FRAME_PROOFS[name]
    harness = make()
    depth = 2 * max(harness.frame_items, harness.out_frame_items) + harness.drain_cycles + 4
    assert_proof(run_sby(harness, mode="cover", depth=depth, workdir=tmp_path))


# -- the new property families catch broken components --------------------------------------

class SwappedBytes(wiring.Component):
    """A broken pixel-to-byte adapter: each 2-byte pixel leaves high byte first."""
    def __init__(self):
        self.inner = serdes.PixelsToBytes(INT16)
        super().__init__({"i": In(self.inner.i.signature.flip()), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        connect(m, inner.o, wiring.flipped(self.o))
        m.d.comb += [inner.i.valid.eq(self.i.valid), self.i.ready.eq(inner.i.ready),
                     inner.i.payload.eq(self.i.payload),
                     inner.i.payload.data[0].eq(Cat(self.i.payload.data[0][8:],
                                                    self.i.payload.data[0][:8]))]
        return m


class EchoedLineEnd(wiring.Component):
    """A broken register slice: each line's last pixel leaves twice."""
    def __init__(self, signature):
        self.latency = 1
        super().__init__({"i": In(signature), "o": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        echo = Signal()         # the pixel in the output register goes out once more
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en & ~echo)]
        with m.If(en & echo):
            m.d.sync += echo.eq(0)
        with m.Elif(en):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                         echo.eq(self.i.valid & self.i.payload.eol)]
        return m


def test_swapped_bytes_fail_the_multi_unit_tags_bmc(tmp_path):
    harness = StreamContractHarness(SwappedBytes(), frame_items=2 * S_W * S_H,
                                    in_item=lambda p: 2, max_outstanding=2, drain_cycles=2,
                                    accept_cycles=2, tags=(PIXEL_BYTES, lambda p: p))
    result = run_sby(harness, mode="bmc", depth=6, workdir=tmp_path)
    assert_proof(result, expect_pass=False)
    assert any("item out of order" in line for line in result.failed), result.failed


def test_echoed_pixel_fails_the_item_accounting_bmc(tmp_path):
    """No markers, no tags: only the item accounting can see the duplicate."""
    dut = pointwise.Threshold(U8, level=9)
    echoed = Chain(dut, EchoedLineEnd(stream.Signature(dut.o.payload.shape())))
    harness = StreamContractHarness(echoed, frame_items=S_W * S_H, in_markers=(S_W, S_H),
                                    max_outstanding=2, drain_cycles=2, accept_cycles=2)
    result = run_sby(harness, mode="bmc", depth=8, workdir=tmp_path)
    assert_proof(result, expect_pass=False)
    assert any("output item before its input" in line for line in result.failed), \
        result.failed
