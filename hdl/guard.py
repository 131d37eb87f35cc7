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
from .window import MAX_DIMENSION, RasterCounter, check_lanes

__all__ = ["Fault", "FrameGuard"]

ERROR_COUNTER_BITS = 16


class Fault(enum.Enum, shape=3):
    """What :class:`FrameGuard` saw at a fault (``last_fault``)."""
    NONE = 0
    SHORT_LINE = 1    # eol on a pixel before x = W-1
    LONG_LINE = 2     # no eol on the pixel at x = W-1
    SHORT_FRAME = 3   # sof before the frame's W*H pixels arrived
    MISSING_SOF = 4   # the pixel at a frame start has no sof


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

    ``error``, ``errors`` and ``last_fault`` change one cycle after the faulty pixel arrives.

    Latency, throughput, memory
    ---------------------------
    1 cycle (one output register). One transfer per cycle on well-formed input, back-to-back
    frames included; leaving ``DISCARD`` at a ``sof`` costs one idle output cycle. Memory:
    the output register, the ``x``/``y`` counters and 29 bits of position flags, mode and
    status.
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
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        # The position of the next output transfer; its tests are flip-flops (see
        # RasterCounter), so the mode and handshake logic starts from registers.
        position = RasterCounter(m, groups, height, "pos")
        frame_start = position.position_flag("frame_start", 0, 0)
        line_end, last_row = position.last_col, position.last_row
        frame_end = Signal()
        m.d.comb += frame_end.eq(line_end & last_row)

        # One flip-flop per mode, and the marker checks written out, so the mode and
        # handshake logic is a few levels from flip-flops.
        passing, filling, discarding = (Signal(init=1, name="passing"), Signal(name="filling"),
                                        Signal(name="discarding"))
        sof, eol, valid = self.i.payload.sof, self.i.payload.eol, self.i.valid
        early_sof = Signal()      # SHORT_FRAME
        missing_sof = Signal()    # MISSING_SOF
        take = Signal()           # a well-marked pixel is forwarded
        line_fault = Signal()     # ... with a wrong eol
        m.d.comb += [
            early_sof.eq(passing & valid & sof & ~frame_start),
            missing_sof.eq(passing & valid & ~sof & frame_start),
            take.eq(passing & valid & (sof == frame_start) & en),
            line_fault.eq(take & (eol != line_end)),
        ]
        # Ready without valid (a transfer needs both): PASS takes a pixel whose sof matches
        # when the output can move, and drops a frame start without sof; DISCARD drops all
        # but a sof. Leaving valid out keeps the upstream's handshake logic short.
        drop = Signal()     # taken without waiting for the output
        match = Signal()    # taken when the output can move
        m.d.comb += [drop.eq(((passing & frame_start) | discarding) & ~sof),
                     match.eq(passing & (sof == frame_start)),
                     self.i.ready.eq(drop | (match & en))]
        emit = Signal()           # the position moves: a pixel or a filler leaves
        m.d.comb += emit.eq(take | (filling & en))

        fault = Signal(Fault)
        with m.If(early_sof):
            m.d.comb += fault.eq(Fault.SHORT_FRAME)
        with m.Elif(missing_sof):
            m.d.comb += fault.eq(Fault.MISSING_SOF)
        with m.Elif(line_fault):
            m.d.comb += fault.eq(Mux(eol, Fault.SHORT_LINE, Fault.LONG_LINE))

        # Mode changes; a frame's end while filling or at a line fault goes to DISCARD.
        to_fill = early_sof | (line_fault & ~frame_end)
        to_discard = missing_sof | (line_fault & frame_end) | (filling & en & frame_end)
        to_pass = discarding & valid & sof
        m.d.sync += [
            passing.eq(Mux(passing, ~(early_sof | missing_sof | line_fault), to_pass)),
            filling.eq(Mux(filling, ~(en & frame_end), to_fill)),
            discarding.eq(Mux(discarding, ~to_pass, to_discard)),
        ]

        # The output register loads whenever the output can move: with the input pixel in
        # PASS, a filler otherwise; o.valid says whether it was an emission.
        with m.If(en):
            m.d.sync += self.o.valid.eq(emit)
            for p in range(self.lanes):
                pixel_in = lane(self.i.payload.data, p, self.lanes)
                pixel_out = lane(self.o.payload.data, p, self.lanes)
                for ch in range(self.fmt.channels):
                    m.d.sync += pixel_out[ch].eq(Mux(passing, pixel_in[ch], self.fill_value))
            m.d.sync += [self.o.payload.sof.eq(frame_start), self.o.payload.eol.eq(line_end)]
        position.advance(emit)

        # Status is recorded one cycle after the fault, off the handshake's paths.
        seen = Signal(Fault)
        m.d.sync += seen.eq(fault)
        with m.If(seen != Fault.NONE):
            m.d.sync += [self.error.eq(1), self.last_fault.eq(seen)]
            with m.If(self.errors != (1 << ERROR_COUNTER_BITS) - 1):
                m.d.sync += self.errors.eq(self.errors + 1)
        return m
