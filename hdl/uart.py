"""8N1 UART receiver and transmitter with byte streams.

The serial pins are plain 1-bit signals (idle high); the board top connects them to the
platform's UART resource. Both blocks run in the ``sync`` domain and count bits with a
divisor ``clocks per bit``; :func:`uart_divisor` computes it from the real domain frequency
and the baud rate and refuses rates the receiver could not sample reliably.
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["check_divisor", "uart_divisor", "UARTReceiver", "UARTTransmitter", "MAX_BAUD_ERROR",
           "MIN_DIVISOR"]

#: Largest tolerated relative error between the requested and the real baud rate. The receiver
#: samples mid-bit, so the accumulated drift over the 9.5 bit times up to the stop-bit sample
#: must stay well below half a bit together with the host's own error: 2% leaves margin.
MAX_BAUD_ERROR = 0.02
#: Smallest divisor: the receiver needs a start-bit half-time of at least 2 clocks to sample
#: near the middle of a bit after its 2-flip-flop synchroniser.
MIN_DIVISOR = 4


def check_divisor(divisor):
    """Raise unless ``divisor`` is a valid clocks-per-bit count."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be an integer >= {MIN_DIVISOR} clocks per bit, "
                         f"not {divisor!r}")


def uart_divisor(clk_hz, baud):
    """Clocks per bit, ``round(clk_hz / baud)``, checked against :data:`MIN_DIVISOR` and
    :data:`MAX_BAUD_ERROR`."""
    if not clk_hz > 0:
        raise ValueError(f"clock frequency must be positive, not {clk_hz!r}")
    if not baud > 0:
        raise ValueError(f"baud rate must be positive, not {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud rate {baud} is too fast for a {clk_hz / 1e6:g} MHz clock: "
                         f"divisor {divisor} < {MIN_DIVISOR}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud rate {baud} from a {clk_hz / 1e6:g} MHz clock with divisor "
                         f"{divisor} is off by {error:.1%} (> {MAX_BAUD_ERROR:.0%})")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 receiver: serial ``rx`` pin -> byte stream ``o``.

    ``rx`` passes through a 2-flip-flop synchroniser. A falling edge starts a frame; the start
    bit is re-checked half a bit later (a glitch shorter than that is ignored), then each data
    bit (LSB first) and the stop bit are sampled in the middle of their bit times. After the
    stop-bit sample the receiver is immediately ready for the next start bit, which absorbs a
    sender that runs up to half a bit per frame fast.

    A UART cannot wait, so ``o`` has no real backpressure: each received byte is offered on
    ``o`` until taken; if another byte completes while ``o`` is still valid, the new byte is
    dropped and ``overflow`` latches high (until reset). A zero stop bit drops the byte, latches
    ``framing_error`` and counts in ``framing_errors`` (saturating). If the data bits were all
    zero too, the line is in a *break* (held low longer than a frame): the receiver then waits
    for the line to go high before it looks for a start bit, so a break of any length counts
    once and yields no byte (taking the low line for start bits would receive phantom frames
    through the break, and deliver one, of whatever bits, when the line rises). After any other
    zero stop bit the low line is taken as the next start bit, as a 16550 does to resynchronise
    on a frame that follows at once.

    Latency: ``o.valid`` rises 2 clocks (synchroniser) + 9.5 bit times after the start edge.
    Throughput: one byte per 10 bit times (``10 * divisor`` clocks). Memory: registers only.
    """

    def __init__(self, divisor):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "overflow": Out(1),
            "framing_error": Out(1),
            "framing_errors": Out(16),
        })

    def elaborate(self, platform):
        m = Module()

        rx = Signal(init=1)
        m.submodules.rx_sync = cdc.FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bit_index = Signal(range(8))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        in_break = Signal()     # a break was received: the line has to rise before a start

        with m.FSM():
            with m.State("idle"):
                with m.If(rx):
                    m.d.sync += in_break.eq(0)
                with m.Elif(~in_break):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "start"
            with m.State("start"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.d.sync += in_break.eq(0)
                    m.next = "idle"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit_index.eq(0)]
                    m.next = "data"
            with m.State("data"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), shift.eq(Cat(shift[1:], rx))]
                    m.d.sync += bit_index.eq(bit_index + 1)
                    with m.If(bit_index == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    # Every way back to idle sets in_break, so it never outlives a frame.
                    m.d.sync += in_break.eq(~rx & (shift == 0))
                    with m.If(~rx):
                        m.d.sync += self.framing_error.eq(1)
                        with m.If(self.framing_errors != (1 << 16) - 1):
                            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overflow.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "idle"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter: byte stream ``i`` -> serial ``tx`` pin (idle high, LSB first).

    ``i.ready`` is high while the transmitter is idle and in the last clock of a stop bit; a
    transfer starts the start bit on the next clock. Latency: 1 clock from transfer to the
    start bit. Throughput: one byte per ``10 * divisor`` clocks (back to back, no idle gap).
    Memory: registers only.
    """

    def __init__(self, divisor):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()

        timer = Signal(range(self.divisor))
        # Start bit, 8 data bits, stop bit; shifted out LSB first. Idle value is all ones.
        frame = Signal(10, init=(1 << 10) - 1)
        bits_left = Signal(range(11))

        # Ready in the last clock of the stop bit too, so queued bytes follow back to back.
        m.d.comb += [
            self.tx.eq(frame[0]),
            self.i.ready.eq((bits_left == 0) | ((bits_left == 1) & (timer == 0))),
        ]

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                frame.eq(Cat(0, self.i.payload, 1)),
                bits_left.eq(10),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif(bits_left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [
                    timer.eq(self.divisor - 1),
                    frame.eq(Cat(frame[1:], 1)),
                    bits_left.eq(bits_left - 1),
                ]
        return m
