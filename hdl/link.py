"""Frame checks on the serial link: a CRC-32 trailer after each frame, in both directions.

Byte formats (multi-byte fields little-endian; CRC-32 is the ISO-HDLC one of Ethernet and
Python's :func:`zlib.crc32`)::

    host -> board:  payload (in_frame_bytes)  | CRC-32 of the payload (4)
    board -> host:  payload (out_frame_bytes) | length (4) | status (1) | CRC-32 (4)

The board's CRC covers its payload, length and status, so a corrupted trailer is caught like
corrupted pixels. ``length`` is the payload byte count the board framed; ``status`` holds the
``STATUS_*`` bits. :class:`InputFrameChecker` strips and checks the host's trailer in front of
the byte-to-pixel path (which so sees exactly the payload, and stays aligned);
:class:`OutputFramer` appends the board's trailer behind the pixel-to-byte path.
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out

__all__ = ["CRC", "IN_TRAILER_BYTES", "OUT_TRAILER_BYTES", "STATUS_INPUT_CRC_BAD",
           "STATUS_RX_OVERFLOW", "STATUS_FRAMING_ERROR", "InputFrameChecker", "OutputFramer"]

#: CRC-32/ISO-HDLC on bytes: equal to :func:`zlib.crc32`, sent little-endian.
CRC = catalog.CRC32_ISO_HDLC(8)
#: Bytes the host appends to an input frame: the payload's CRC.
IN_TRAILER_BYTES = 4
#: Bytes the board appends to an output frame: length, status, CRC.
OUT_TRAILER_BYTES = 4 + 1 + 4
#: Status bit: the CRC of the input frame the board received differs from the host's trailer.
STATUS_INPUT_CRC_BAD = 1 << 0
#: Status bit: the UART receiver dropped a byte (RX FIFO full) since the last resync.
STATUS_RX_OVERFLOW = 1 << 1
#: Status bit: the UART receiver saw a zero stop bit (and dropped the byte) since the last
#: resync.
STATUS_FRAMING_ERROR = 1 << 2


def _check_frame_bytes(frame_bytes):
    if not isinstance(frame_bytes, int) or isinstance(frame_bytes, bool) \
            or not 1 <= frame_bytes < 1 << 32:
        raise ValueError(f"frame_bytes must be an integer in 1..2**32-1, not {frame_bytes!r}")


class InputFrameChecker(wiring.Component):
    """Passes the first ``frame_bytes`` bytes of each frame from ``i`` to ``o``, then takes the
    :data:`IN_TRAILER_BYTES` CRC trailer from ``i`` and offers the verdict on ``input_ok``
    (1: the trailer is the CRC-32 of the payload). Frames follow each other.

    The CRC runs over payload and trailer together and the verdict is the CRC processor's
    residue match. The next frame's bytes wait until the verdict has been taken.

    Latency: 0 (``o`` is ``i`` during the payload); the verdict is valid 1 clock after the last
    trailer byte. Throughput: one byte per clock; the input waits 2 clocks per frame
    (the check, then the verdict offered), so a next frame starts 3 clocks after the last
    trailer byte at the earliest (the formal cover shows it).
    Memory: the byte counter and the 32-bit CRC register.
    """

    def __init__(self, frame_bytes):
        _check_frame_bytes(frame_bytes)
        self.frame_bytes = frame_bytes
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "input_ok": Out(stream.Signature(1)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.frame_bytes
        m.submodules.crc = crc = CRC.create()
        index = Signal(range(n + IN_TRAILER_BYTES))
        checking = Signal()   # the last trailer byte went into the CRC last clock
        in_payload = index < n
        blocked = checking | self.input_ok.valid

        m.d.comb += [
            self.o.payload.eq(self.i.payload),
            self.o.valid.eq(self.i.valid & in_payload & ~blocked),
            self.i.ready.eq(~blocked & (~in_payload | self.o.ready)),
            crc.start.eq(index == 0),
            crc.data.eq(self.i.payload),
            crc.valid.eq(self.i.valid & self.i.ready),
        ]
        with m.If(self.input_ok.ready):
            m.d.sync += self.input_ok.valid.eq(0)
        with m.If(checking):
            m.d.sync += [checking.eq(0), self.input_ok.valid.eq(1),
                         self.input_ok.payload.eq(crc.match_detected)]
        with m.If(self.i.valid & self.i.ready):
            with m.If(index == n + IN_TRAILER_BYTES - 1):
                m.d.sync += [index.eq(0), checking.eq(1)]
            with m.Else():
                m.d.sync += index.eq(index + 1)
        return m


class OutputFramer(wiring.Component):
    """Passes ``frame_bytes`` bytes per frame from ``i`` to ``o``, then appends the
    :data:`OUT_TRAILER_BYTES` trailer: ``frame_bytes`` (4 bytes), the status byte and the
    CRC-32 of everything before it in the frame.

    The trailer waits for the input frame's verdict on ``input_ok`` (taken with the first
    trailer byte, when the status is captured from it and from the ``rx_overflow`` and
    ``rx_framing_error`` levels).

    Latency: 0 (``o`` is ``i`` during the payload). Throughput: one byte per clock; the trailer
    takes :data:`OUT_TRAILER_BYTES` clocks once the verdict is there. Memory: the byte
    counter, the status byte and the 32-bit CRC register.
    """

    def __init__(self, frame_bytes):
        _check_frame_bytes(frame_bytes)
        self.frame_bytes = frame_bytes
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "input_ok": In(stream.Signature(1)),
            "rx_overflow": In(1),
            "rx_framing_error": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.frame_bytes
        m.submodules.crc = crc = CRC.create()
        index = Signal(range(n + OUT_TRAILER_BYTES))
        status = Signal(8)
        in_payload = index < n
        transfer = self.o.valid & self.o.ready

        with m.If(in_payload):
            m.d.comb += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid),
                         self.i.ready.eq(self.o.ready)]
        with m.Else():
            m.d.comb += self.o.valid.eq(1)
            with m.Switch(index - n):
                for k, byte in enumerate(n.to_bytes(4, "little")):
                    with m.Case(k):
                        m.d.comb += self.o.payload.eq(byte)
                with m.Case(4):
                    m.d.comb += self.o.payload.eq(status)
                for k in range(4):
                    with m.Case(5 + k):
                        m.d.comb += self.o.payload.eq(crc.crc.word_select(k, 8))
            with m.If(index == n):
                m.d.comb += [self.o.valid.eq(self.input_ok.valid),
                             self.input_ok.ready.eq(self.o.ready)]
                with m.If(transfer):
                    m.d.sync += status.eq(Cat(~self.input_ok.payload, self.rx_overflow,
                                              self.rx_framing_error))

        m.d.comb += [
            crc.start.eq(index == 0),
            crc.data.eq(self.o.payload),
            crc.valid.eq(transfer & (index < n + 5)),
        ]
        with m.If(transfer):
            with m.If(index == n + OUT_TRAILER_BYTES - 1):
                m.d.sync += index.eq(0)
            with m.Else():
                m.d.sync += index.eq(index + 1)
        return m
