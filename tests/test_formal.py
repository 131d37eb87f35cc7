"""Formal proofs of the stream contract (SymbiYosys + Yices through :mod:`rasterflow.sim.formal`).

Every harness wraps one component in :class:`StreamContractHarness`: inputs that keep the
stream rules, a free ``o.ready``, and assertions on the output (rules, item accounting,
markers, drain, acceptance, tags). Geometry is the smallest that still has every border
case: ``W x H = 4 x 3``, ``3 x 3`` windows, one channel of 2-bit pixels (control does not
depend on the pixel width; the solver time does).

Depths: one 4x3 frame takes 12 input cycles; its last output leaves ``hy*W + hx`` ticks plus
the pipeline latency later. A BMC depth covers every input/stall pattern of that length.

``valid`` never depending on ``ready`` is proved by :func:`check_no_combinational_path` (no
combinational path from ``o.ready`` to ``o.valid`` in the netlist), which holds in every
state, not just to a depth.
"""
import pytest
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl import imgproc, link, pointwise, serdes
from rasterflow.hdl.filters import ColumnDot, Filter2D, WindowDot
from rasterflow.hdl.guard import FrameGuard
from rasterflow.hdl.payload import pixel_layout
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
    waits at most one frame (while a broken frame is filled)."""
    harness = StreamContractHarness(FrameGuard(FMT, 3, 2), frame_items=6, width=3,
                                    markers=True, accept_cycles=6 + 2, lossless=False)
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


# -- the filter library's stages and the serial-link adapters --------------------------------
# The output stream rules (k-induction) and valid's independence from ready (netlist path
# check) for every other datapath: whole windowed stages at the smallest geometry, pointwise
# stages, and the byte/pixel/lane adapters of the board bridge.

U8 = PixelFormat(1, "uint8")
OTHER_COMPONENTS = {
    "MedianBlur": lambda: imgproc.MedianBlur(U8, W, H, 3),
    "ErodeRect": lambda: imgproc.Erode(U8, W, H, 3),
    "DilateCross": lambda: imgproc.Dilate(U8, W, H, 3, shape="cross"),
    "GradientL2": lambda: imgproc.GradientMagnitude(U8, W, H, norm="l2"),
    "BoxNormalized": lambda: imgproc.BoxFilter(U8, W, H, 3),
    "Threshold": lambda: pointwise.Threshold(U8, level=9),
    "RGB2Gray": lambda: pointwise.RGB2Gray(),
    "ChannelMin": lambda: pointwise.ChannelMin(PixelFormat(3, "uint8")),
    "BytesToPixels": lambda: serdes.BytesToPixels(PixelFormat(1, "int16"), W, H),
    "PixelsToBytes": lambda: serdes.PixelsToBytes(PixelFormat(1, "int16")),
    "LanePacker": lambda: serdes.LanePacker(U8, 5, H, 2),
    "LaneUnpacker": lambda: serdes.LaneUnpacker(U8, 5, 2),
    "InputFrameChecker": lambda: link.InputFrameChecker(6),
    "OutputFramer": lambda: link.OutputFramer(6),
}


@pytest.mark.parametrize("name", OTHER_COMPONENTS)
def test_other_components_output_rules_prove(name, tmp_path):
    harness = StreamContractHarness(OTHER_COMPONENTS[name](), accept_cycles=1,
                                    rules_only=True)
    assert_proof(run_sby(harness, mode="prove", depth=2, workdir=tmp_path))


@pytest.mark.parametrize("name", OTHER_COMPONENTS)
def test_other_components_valid_has_no_combinational_path_from_ready(name):
    assert check_no_combinational_path(OTHER_COMPONENTS[name]())
