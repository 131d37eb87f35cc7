"""Input frame guard: the pipeline behind it only ever sees well-formed ``W x H`` frames.

The window generators (:mod:`rasterflow.hdl.window`) delimit frames by counting pixels, so a
malformed input frame (a short or long line, a frame cut short, a lost ``sof``) would shift
every later frame. :class:`FrameGuard` checks the markers of each input pixel against its own
position counters and repairs the stream at the first mismatch.
"""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .payload import lane, pixel_stream_signature, transfers_per_line
from .window import MAX_DIMENSION, check_lanes

__all__ = ["Fault", "FrameGuard"]

ERROR_COUNTER_BITS = 16


class Fault(enum.Enum, shape=3):
    """What :class:`FrameGuard` saw at a fault (``last_fault``)."""
    NONE = 0
    SHORT_LINE = 1    # eol on a pixel before x = W-1
    LONG_LINE = 2     # no eol on the pixel at x = W-1
    SHORT_FRAME = 3   # sof before the frame's W*H pixels arrived
    MISSING_SOF = 4   # the pixel at a frame start has no sof


class _Mode(enum.Enum, shape=2):
    PASS = 0      # in step with the input: forward pixels
    FILL = 1      # complete the broken frame with filler pixels
    DISCARD = 2   # drop input until a sof


class FrameGuard(wiring.Component):
    """Checks ``sof``/``eol`` against ``W x H`` counters and forwards only well-formed frames.

    Parameters
    ----------
    fmt : PixelFormat
        Pixel format (input and output).
    width, height : int
        Frame size, 1..4096 each.
    fill_value : int
        Value (all channels) of the filler pixels that complete a broken frame.
    lanes : int
        Pixels per transfer, as in the pipeline behind the guard: a line is
        ``ceil(width / lanes)`` transfers and the markers are per transfer.

    Members
    -------
    i : ``In(pixel stream)``
        Untrusted input: ``sof`` should mark each frame's first pixel and ``eol`` each
        line's last.
    o : ``Out(pixel stream)``
        Whole frames of exactly ``width * height`` pixels; ``sof``/``eol`` are always exact.
    error : ``Out(1)``
        Sticky: set at the first fault, cleared only by reset.
    errors : ``Out(16)``
        Faults seen since reset, saturating at 65535.
    last_fault : ``Out(Fault)``
        The most recent fault.

    Behaviour
    ---------
    The guard keeps the position ``(x, y)`` of its next output transfer (``x`` counts
    transfers, ``X = ceil(W / lanes)`` per line; "pixel" below means one transfer). An input
    pixel is checked against it (``sof`` expected iff ``x = y = 0``, ``eol`` iff
    ``x = X-1``); on a mismatch ``error`` is set, ``errors`` counts one and ``last_fault``
    records which:

    ``SHORT_FRAME`` (``sof`` at a position other than the frame start; takes precedence)
        The ``sof`` pixel is kept waiting; filler pixels complete the current frame, then the
        waiting pixel starts the next one. No input is lost.
    ``MISSING_SOF`` (no ``sof`` at the frame start; also how a frame with too many lines, or
    a stream that starts mid-frame, shows up)
        That pixel and all input up to the next ``sof`` are dropped; nothing is emitted for
        them (the output stays at a frame boundary).
    ``SHORT_LINE`` (``eol`` before ``x = X-1``) and ``LONG_LINE`` (no ``eol`` at ``x = X-1``)
        The pixel is forwarded at its position with corrected markers; filler pixels complete
        the frame; input up to the next ``sof`` is dropped.

    Input examined while the guard fills or discards is not checked, so a broken frame
    counts one fault (a pixel that has both an early ``sof`` and a wrong ``eol`` counts
    ``SHORT_FRAME`` now and, if it starts the next frame wrongly, a line fault there).
    Every frame the guard emits has ``W * H`` pixels; a well-formed frame
    that arrives after a fault (once its ``sof`` is seen) passes unchanged.

    Latency, throughput, memory
    ---------------------------
    1 cycle (one output register). One transfer per cycle on well-formed input, back-to-back
    frames included; leaving ``DISCARD`` at a ``sof`` costs one idle output cycle. Memory:
    the output register, the ``x``/``y`` counters and 22 bits of mode and status.
    """
    def __init__(self, fmt: PixelFormat, width, height, *, fill_value=0, lanes=1):
        if not isinstance(fmt, PixelFormat):
            raise TypeError(f"fmt must be a PixelFormat, not {fmt!r}")
        for name, n in (("width", width), ("height", height)):
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_DIMENSION:
                raise ValueError(f"{name} must be an integer in 1..{MAX_DIMENSION}, not {n!r}")
        if not isinstance(fill_value, int) or not fmt.min <= fill_value <= fmt.max:
            raise ValueError(f"fill_value must be an integer in {fmt.min}..{fmt.max} for "
                             f"{fmt.dtype} pixels, not {fill_value!r}")
        check_lanes(lanes)
        self.fmt = fmt
        self.width = width
        self.height = height
        self.fill_value = fill_value
        self.lanes = lanes
        self.latency = 1
        super().__init__({
            "i": In(pixel_stream_signature(fmt, lanes)),
            "o": Out(pixel_stream_signature(fmt, lanes)),
            "error": Out(1),
            "errors": Out(ERROR_COUNTER_BITS),
            "last_fault": Out(Fault),
        })

    def elaborate(self, platform):
        m = Module()
        groups, height = transfers_per_line(self.width, self.lanes), self.height
        mode = Signal(_Mode)
        x = Signal(range(groups))
        y = Signal(range(height))
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        # Position flags are registers, loaded with their value for the next position when
        # the position moves, so the mode and handshake logic starts from flip-flops rather
        # than from comparators of x and y.
        frame_start = Signal(init=1)
        line_end = Signal(init=int(groups == 1))
        last_row = Signal(init=int(height == 1))
        frame_end = Signal()
        m.d.comb += frame_end.eq(line_end & last_row)

        fault = Signal(Fault)
        emit = Signal()          # load the output register this cycle
        emit_input = Signal()    # ... with the input pixel (else a filler)
        with m.Switch(mode):
            with m.Case(_Mode.PASS):
                with m.If(self.i.valid):
                    with m.If(self.i.payload.sof & ~frame_start):
                        m.d.comb += fault.eq(Fault.SHORT_FRAME)
                        m.d.sync += mode.eq(_Mode.FILL)
                    with m.Elif(~self.i.payload.sof & frame_start):
                        m.d.comb += [fault.eq(Fault.MISSING_SOF), self.i.ready.eq(1)]
                        m.d.sync += mode.eq(_Mode.DISCARD)
                    with m.Else():
                        m.d.comb += [self.i.ready.eq(en), emit.eq(en), emit_input.eq(1)]
                        with m.If(en & (self.i.payload.eol != line_end)):
                            m.d.comb += fault.eq(Mux(self.i.payload.eol, Fault.SHORT_LINE,
                                                     Fault.LONG_LINE))
                            m.d.sync += mode.eq(Mux(frame_end, _Mode.DISCARD, _Mode.FILL))
            with m.Case(_Mode.FILL):
                m.d.comb += emit.eq(en)
                with m.If(en & frame_end):
                    m.d.sync += mode.eq(_Mode.DISCARD)
            with m.Case(_Mode.DISCARD):
                # Stay at the frame boundary; a sof pixel is left waiting for PASS.
                with m.If(self.i.valid & self.i.payload.sof):
                    m.d.sync += mode.eq(_Mode.PASS)
                with m.Else():
                    m.d.comb += self.i.ready.eq(1)

        with m.If(en):
            m.d.sync += self.o.valid.eq(emit)
        with m.If(emit):
            for p in range(self.lanes):
                pixel_in = lane(self.i.payload.data, p, self.lanes)
                pixel_out = lane(self.o.payload.data, p, self.lanes)
                for ch in range(self.fmt.channels):
                    m.d.sync += pixel_out[ch].eq(Mux(emit_input, pixel_in[ch], self.fill_value))
            m.d.sync += [self.o.payload.sof.eq(frame_start), self.o.payload.eol.eq(line_end)]
            with m.If(line_end):
                m.d.sync += [x.eq(0), line_end.eq(int(groups == 1)), frame_start.eq(last_row)]
                with m.If(last_row):
                    m.d.sync += [y.eq(0), last_row.eq(int(height == 1))]
                with m.Else():
                    m.d.sync += [y.eq(y + 1), last_row.eq(y == height - 2)]
            with m.Else():
                m.d.sync += [x.eq(x + 1), line_end.eq(x == groups - 2), frame_start.eq(0)]

        with m.If(fault != Fault.NONE):
            m.d.sync += [self.error.eq(1), self.last_fault.eq(fault)]
            with m.If(self.errors != (1 << ERROR_COUNTER_BITS) - 1):
                m.d.sync += self.errors.eq(self.errors + 1)
        return m
