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
from .pipeline import SkidBuffer, payload_register
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
    1 cycle (an output :class:`~rasterflow.hdl.pipeline.SkidBuffer`). One transfer per cycle
    on well-formed input, back-to-back frames included; the cycle of a ``SHORT_FRAME`` or
    ``MISSING_SOF`` fault emits nothing. Memory: the skid buffer's two pixels, one held
    pixel, the ``x``/``y`` counters with their position flags, the mode and the status.
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
        # The guard's decisions feed a skid buffer: its ready is a flip-flop, so the output
        # side of every decision below is one register, not the downstream's handshake.
        m.submodules.out_skid = out_skid = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, out_skid.o, wiring.flipped(self.o))
        out = out_skid.i
        en = Signal()
        m.d.comb += en.eq(out.ready)

        # The position of the next output transfer; its tests are flip-flops (see
        # RasterCounter), so the mode and handshake logic starts from registers.
        position = RasterCounter(m, groups, height, "pos")
        frame_start = position.position_flag("frame_start", 0, 0)
        frame_end = position.position_flag("frame_end", height - 1, groups - 1)
        line_end = position.last_col

        # The mode is two flip-flops: `checking` (PASS or DISCARD: the input is examined) or
        # not (FILL or REPLAY: the guard emits without it), and `sub` choosing the first of
        # each pair. REPLAY is the one cycle in which a held early-sof pixel starts the next
        # frame. Every decision below is factored into at most three LUT levels from
        # flip-flops (four-input LUTs).
        checking, sub = Signal(init=1, name="checking"), Signal(init=1, name="sub")
        passing, replaying = checking & sub, ~checking & sub
        # The input is taken whenever the output can move in a checking mode: whether a pixel
        # is forwarded, dropped or held depends on its markers, but taking it does not, so
        # ready is one gate from flip-flops and independent of valid and the payload.
        m.d.comb += self.i.ready.eq(en & checking)
        sof, eol, valid = self.i.payload.sof, self.i.payload.eol, self.i.valid
        transfer = Signal()
        m.d.comb += transfer.eq(valid & self.i.ready)
        # In DISCARD the position is always a frame start, so "sof where one is expected"
        # is the forwarding test of both checking modes.
        sof_ok, good, eol_bad, cut_short = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            sof_ok.eq(sof == frame_start),
            good.eq(sof_ok & (eol == line_end)),       # forwarded as it is
            eol_bad.eq(sof_ok & (eol != line_end)),    # forwarded, with a line fault
            cut_short.eq(passing & sof & ~frame_start),  # SHORT_FRAME: held, frame filled
        ]
        take = Signal()           # a pixel is forwarded (when en)
        m.d.comb += take.eq(checking & valid & sof_ok)
        emit = Signal()           # the position moves: a pixel or a filler leaves
        m.d.comb += emit.eq(en & (take | ~checking))

        # The held pixel: every pixel taken is copied, so the copy made by the last transfer
        # before FILL is the early-sof pixel when FILL was entered for one (`holding`).
        # `holding` only matters outside the checking modes, and is loaded at every
        # transfer, so it needs no reset (which would give it a slower enable on iCE40).
        held_data = payload_register(self.i.payload.data.shape(), name="held_data")
        held_eol = payload_register(1, name="held_eol")
        holding = payload_register(1, name="holding")
        with m.If(self.i.ready):
            m.d.sync += [held_data.eq(self.i.payload.data), held_eol.eq(eol)]
        with m.If(en):
            m.d.sync += holding.eq(Mux(checking, valid & cut_short, holding & ~sub))

        # Mode changes (all need en). From a checking mode: to FILL at an early sof or a line
        # fault before the frame's end; PASS -> DISCARD at a missing sof or a line fault at
        # the frame's end; DISCARD -> PASS at a good sof pixel. From FILL at the frame's end:
        # to REPLAY when a pixel is held, else to DISCARD. From REPLAY: to PASS, or on a line
        # fault of the held pixel to FILL (DISCARD at the frame's end).
        to_fill = Signal()        # the input sends a checking mode to FILL
        m.d.comb += to_fill.eq(valid & (cut_short | (eol_bad & ~frame_end)))
        held_ok = Signal()
        m.d.comb += held_ok.eq(held_eol == line_end)
        to_checking = Signal()    # from FILL or REPLAY (when en)
        m.d.comb += to_checking.eq(Mux(sub, held_ok | frame_end, frame_end & ~holding))
        sub_checking = Signal()   # PASS next, from a checking mode (when en)
        m.d.comb += sub_checking.eq(checking & Mux(sub, ~valid | good, valid & good))
        sub_emitting = Signal()   # PASS or REPLAY next, from FILL or REPLAY (when en)
        m.d.comb += sub_emitting.eq(~checking & Mux(sub, held_ok,
                                                    frame_end & holding))
        with m.If(en):
            m.d.sync += [
                checking.eq(Mux(checking, ~to_fill, to_checking)),
                sub.eq(sub_checking | sub_emitting),
            ]

        # Faults, for the status: a transfer in PASS with wrong markers, a forwarded sof pixel
        # in DISCARD with a wrong eol, the held pixel's eol in REPLAY. They are classified
        # from a registered copy of what the decisions saw, so the status logic starts from
        # flip-flops and stays off the handshake's paths.
        seen_transfer, seen_replay = Signal(), Signal()
        seen_sof, seen_eol, seen_start, seen_end, seen_passing, seen_held_eol = (
            payload_register(1, name=f"seen_{name}")
            for name in ("sof", "eol", "start", "end", "passing", "held_eol"))
        m.d.sync += [
            seen_transfer.eq(transfer), seen_replay.eq(replaying & en),
            seen_sof.eq(sof), seen_eol.eq(eol), seen_start.eq(frame_start),
            seen_end.eq(line_end), seen_passing.eq(sub), seen_held_eol.eq(held_eol),
        ]
        fault = Signal(Fault)
        with m.If(seen_transfer & seen_passing & seen_sof & ~seen_start):
            m.d.comb += fault.eq(Fault.SHORT_FRAME)
        with m.Elif(seen_transfer & seen_passing & ~seen_sof & seen_start):
            m.d.comb += fault.eq(Fault.MISSING_SOF)
        with m.Elif(seen_transfer & (seen_sof == seen_start) & (seen_eol != seen_end)):
            m.d.comb += fault.eq(Mux(seen_eol, Fault.SHORT_LINE, Fault.LONG_LINE))
        with m.Elif(seen_replay & (seen_held_eol != seen_end)):
            m.d.comb += fault.eq(Mux(seen_held_eol, Fault.SHORT_LINE, Fault.LONG_LINE))

        # What is offered to the skid buffer: the input pixel in a checking mode, the held one
        # in REPLAY, a filler in FILL, always with the markers of the position.
        m.d.comb += out.valid.eq(take | ~checking)
        for p in range(self.lanes):
            pixel_in = lane(self.i.payload.data, p, self.lanes)
            pixel_held = lane(held_data, p, self.lanes)
            pixel_out = lane(out.payload.data, p, self.lanes)
            for ch in range(self.fmt.channels):
                m.d.comb += pixel_out[ch].eq(Mux(checking, pixel_in[ch],
                                                 Mux(sub, pixel_held[ch], self.fill_value)))
        m.d.comb += [out.payload.sof.eq(frame_start), out.payload.eol.eq(line_end)]
        position.advance(emit)

        # The status is recorded a cycle after the classification.
        recorded = Signal(Fault)
        m.d.sync += recorded.eq(fault)
        with m.If(recorded != Fault.NONE):
            m.d.sync += [self.error.eq(1), self.last_fault.eq(recorded)]
            with m.If(self.errors != (1 << ERROR_COUNTER_BITS) - 1):
                m.d.sync += self.errors.eq(self.errors + 1)
        return m
