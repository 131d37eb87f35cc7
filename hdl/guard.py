"""Input frame guard: the pipeline behind it only ever sees well-formed ``W x H`` frames.

The window generators (:mod:`rasterflow.hdl.window`) delimit frames by counting pixels, so a
malformed input frame (a short or long line, a frame cut short, a lost ``sof``) would shift
every later frame. :class:`FrameGuard` checks the markers of each input pixel against its own
position counters and repairs the stream at the first mismatch.
"""
from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .payload import lane, pixel_stream_signature, transfers_per_line
from .stall import SkidBuffer, payload_register
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
        The ``sof`` pixel is held; filler pixels complete the current frame, then the
        held pixel starts the next one. No input is lost.
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

    ``error``, ``errors`` and ``last_fault`` change two cycles after the faulty pixel arrives.

    The input's ``ready`` is one gate from flip-flops (the output can move, and the guard is
    passing or discarding), never a function of ``valid`` or the markers: a pixel is always
    taken, then forwarded, dropped or held. While it fills a frame, the guard takes no input.

    Latency, throughput, memory
    ---------------------------
    1 cycle (an output :class:`~rasterflow.hdl.stall.SkidBuffer`). One transfer per cycle
    on well-formed input, back-to-back frames included; the cycle of a ``SHORT_FRAME`` or
    ``MISSING_SOF`` fault emits nothing. Memory: the skid buffer's two pixels, one held
    pixel, the ``x``/``y`` counters with their position flags, the mode and the status.
    """
    #: The output skid buffer's cycle.
    latency = 1

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
        super().__init__({
            "i": In(pixel_stream_signature(fmt, lanes)),
            "o": Out(pixel_stream_signature(fmt, lanes)),
            "error": Out(1),
            "errors": Out(ERROR_COUNTER_BITS),
            "last_fault": Out(Fault),
        })

    def elaborate(self, platform):
        m = Module()
        # The parts share one namespace of signals, each adding what it builds; their order
        # is the netlist's (keep it: the committed Fmax figures were measured on it).
        g = SimpleNamespace()
        self._output_skid(m, g)
        self._position(m, g)
        self._input_decision(m, g)
        self._held_pixel(m, g)
        self._mode_changes(m, g)
        self._fault_classification(m, g)
        self._output_offer(m, g)
        g.position.advance(g.emit)
        self._status(m, g)
        return m

    def _output_skid(self, m, g):
        """The output skid buffer: the guard's decisions feed it, and its ready is a
        flip-flop, so the output side of every decision is one register, not the
        downstream's handshake. ``en``: the skid buffer takes what the guard offers."""
        m.submodules.out_skid = out_skid = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, out_skid.o, wiring.flipped(self.o))
        g.out = out_skid.i
        g.en = Signal()
        m.d.comb += g.en.eq(g.out.ready)

    def _position(self, m, g):
        """The position of the next output transfer; its tests are flip-flops (see
        RasterCounter), so the mode and handshake logic starts from registers."""
        groups, height = transfers_per_line(self.width, self.lanes), self.height
        g.position = position = RasterCounter(m, groups, height, "pos")
        g.frame_start = position.position_flag("frame_start", 0, 0)
        g.frame_end = position.position_flag("frame_end", height - 1, groups - 1)
        g.line_end = position.last_col

    def _input_decision(self, m, g):
        """The mode, the input's ready, and what happens to an input pixel.

        The mode is two flip-flops: ``checking`` (PASS or DISCARD: the input is examined) or
        not (FILL or REPLAY: the guard emits without it), and ``sub`` choosing the first of
        each pair. REPLAY is the one cycle in which a held early-sof pixel starts the next
        frame. Every decision here and in :meth:`_mode_changes` is factored into at most
        three LUT levels from flip-flops (four-input LUTs).
        """
        checking, sub = Signal(init=1, name="checking"), Signal(init=1, name="sub")
        g.checking, g.sub = checking, sub
        g.passing, g.replaying = checking & sub, ~checking & sub
        # The input is taken whenever the output can move in a checking mode: whether a pixel
        # is forwarded, dropped or held depends on its markers, but taking it does not, so
        # ready is one gate from flip-flops and independent of valid and the payload.
        m.d.comb += self.i.ready.eq(g.en & checking)
        g.sof, g.eol, g.valid = self.i.payload.sof, self.i.payload.eol, self.i.valid
        g.transfer = Signal()
        m.d.comb += g.transfer.eq(g.valid & self.i.ready)
        # In DISCARD the position is always a frame start, so "sof where one is expected"
        # is the forwarding test of both checking modes.
        sof_ok, good, eol_bad, cut_short = Signal(), Signal(), Signal(), Signal()
        g.sof_ok, g.good, g.eol_bad, g.cut_short = sof_ok, good, eol_bad, cut_short
        m.d.comb += [
            sof_ok.eq(g.sof == g.frame_start),
            good.eq(sof_ok & (g.eol == g.line_end)),       # forwarded as it is
            eol_bad.eq(sof_ok & (g.eol != g.line_end)),    # forwarded, with a line fault
            cut_short.eq(g.passing & g.sof & ~g.frame_start),  # SHORT_FRAME: held, filled
        ]
        g.take = Signal()           # a pixel is forwarded (when en)
        m.d.comb += g.take.eq(checking & g.valid & sof_ok)
        g.emit = Signal()           # the position moves: a pixel or a filler leaves
        m.d.comb += g.emit.eq(g.en & (g.take | ~checking))

    def _held_pixel(self, m, g):
        """The held pixel: every pixel taken is copied, so the copy made by the last transfer
        before FILL is the early-sof pixel when FILL was entered for one (``holding``).
        ``holding`` only matters outside the checking modes, and is loaded at every
        transfer, so it needs no reset (which would give it a slower enable on iCE40)."""
        g.held_data = payload_register(self.i.payload.data.shape(), name="held_data")
        g.held_eol = payload_register(1, name="held_eol")
        g.holding = holding = payload_register(1, name="holding")
        with m.If(self.i.ready):
            m.d.sync += [g.held_data.eq(self.i.payload.data), g.held_eol.eq(g.eol)]
        with m.If(g.en):
            m.d.sync += holding.eq(Mux(g.checking, g.valid & g.cut_short, holding & ~g.sub))

    def _mode_changes(self, m, g):
        """Mode changes (all need ``en``). From a checking mode: to FILL at an early sof or a
        line fault before the frame's end; PASS -> DISCARD at a missing sof or a line fault
        at the frame's end; DISCARD -> PASS at a good sof pixel. From FILL at the frame's
        end: to REPLAY when a pixel is held, else to DISCARD. From REPLAY: to PASS, or on a
        line fault of the held pixel to FILL (DISCARD at the frame's end)."""
        checking, sub, valid, frame_end = g.checking, g.sub, g.valid, g.frame_end
        to_fill = Signal()        # the input sends a checking mode to FILL
        m.d.comb += to_fill.eq(valid & (g.cut_short | (g.eol_bad & ~frame_end)))
        held_ok = Signal()
        m.d.comb += held_ok.eq(g.held_eol == g.line_end)
        to_checking = Signal()    # from FILL or REPLAY (when en)
        m.d.comb += to_checking.eq(Mux(sub, held_ok | frame_end, frame_end & ~g.holding))
        sub_checking = Signal()   # PASS next, from a checking mode (when en)
        m.d.comb += sub_checking.eq(checking & Mux(sub, ~valid | g.good, valid & g.good))
        sub_emitting = Signal()   # PASS or REPLAY next, from FILL or REPLAY (when en)
        m.d.comb += sub_emitting.eq(~checking & Mux(sub, held_ok,
                                                    frame_end & g.holding))
        with m.If(g.en):
            m.d.sync += [
                checking.eq(Mux(checking, ~to_fill, to_checking)),
                sub.eq(sub_checking | sub_emitting),
            ]

    def _fault_classification(self, m, g):
        """Faults, for the status: a transfer in PASS with wrong markers, a forwarded sof
        pixel in DISCARD with a wrong eol, the held pixel's eol in REPLAY. They are
        classified from a registered copy of what the decisions saw, so the status logic
        starts from flip-flops and stays off the handshake's paths."""
        seen_transfer, seen_replay = Signal(), Signal()
        seen_sof, seen_eol, seen_start, seen_end, seen_passing, seen_held_eol = (
            payload_register(1, name=f"seen_{name}")
            for name in ("sof", "eol", "start", "end", "passing", "held_eol"))
        m.d.sync += [
            seen_transfer.eq(g.transfer), seen_replay.eq(g.replaying & g.en),
            seen_sof.eq(g.sof), seen_eol.eq(g.eol), seen_start.eq(g.frame_start),
            seen_end.eq(g.line_end), seen_passing.eq(g.sub), seen_held_eol.eq(g.held_eol),
        ]
        g.fault = fault = Signal(Fault)
        with m.If(seen_transfer & seen_passing & seen_sof & ~seen_start):
            m.d.comb += fault.eq(Fault.SHORT_FRAME)
        with m.Elif(seen_transfer & seen_passing & ~seen_sof & seen_start):
            m.d.comb += fault.eq(Fault.MISSING_SOF)
        with m.Elif(seen_transfer & (seen_sof == seen_start) & (seen_eol != seen_end)):
            m.d.comb += fault.eq(Mux(seen_eol, Fault.SHORT_LINE, Fault.LONG_LINE))
        with m.Elif(seen_replay & (seen_held_eol != seen_end)):
            m.d.comb += fault.eq(Mux(seen_held_eol, Fault.SHORT_LINE, Fault.LONG_LINE))

    def _output_offer(self, m, g):
        """What is offered to the skid buffer: the input pixel in a checking mode, the held
        one in REPLAY, a filler in FILL, always with the markers of the position."""
        out = g.out
        m.d.comb += out.valid.eq(g.take | ~g.checking)
        for p in range(self.lanes):
            pixel_in = lane(self.i.payload.data, p, self.lanes)
            pixel_held = lane(g.held_data, p, self.lanes)
            pixel_out = lane(out.payload.data, p, self.lanes)
            for ch in range(self.fmt.channels):
                m.d.comb += pixel_out[ch].eq(Mux(g.checking, pixel_in[ch],
                                                 Mux(g.sub, pixel_held[ch], self.fill_value)))
        m.d.comb += [out.payload.sof.eq(g.frame_start), out.payload.eol.eq(g.line_end)]

    def _status(self, m, g):
        """The status, recorded a cycle after the classification: ``error`` (sticky),
        ``last_fault`` and the saturating ``errors`` count."""
        recorded = Signal(Fault)
        m.d.sync += recorded.eq(g.fault)
        with m.If(recorded != Fault.NONE):
            m.d.sync += [self.error.eq(1), self.last_fault.eq(recorded)]
            with m.If(self.errors != (1 << ERROR_COUNTER_BITS) - 1):
                m.d.sync += self.errors.eq(self.errors + 1)
