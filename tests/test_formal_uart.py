"""Formal proofs of the 8N1 UART (``hdl/uart.py``) at divisor 4, the smallest the receiver
allows (:data:`~rasterflow.hdl.uart.MIN_DIVISOR`): SymbiYosys + Yices through
:mod:`rasterflow.sim.formal`.

What is proved, and how far (k-induction = every reachable state; BMC = every behaviour up to
the depth, from reset):

* the receiver's byte stream keeps the stream rules (k-induction, k = 2), and neither block
  has a combinational path from an input to what it drives: ``o.valid`` not from ``o.ready``
  (receiver), the ``tx`` pin not from the byte stream (transmitter: the pin is a register,
  it cannot glitch), ``i.ready`` not from ``i.valid``;
* the transmitter's pin, for any byte stream that keeps the rules: after each accepted byte,
  start bit 0, the 8 data bits LSB first, stop bit 1, each held exactly ``divisor`` cycles,
  and high whenever no frame is being sent; a byte is accepted exactly when the transmitter
  is idle or in the last cycle of a stop bit (no frame is cut short, queued bytes follow back
  to back). k-induction, closes at one frame (k = 40);
* the receiver, for any pin waveform made of well-formed frames (start bit 0, data bits and
  stop bit 1 each constant for ``divisor`` cycles, back to back or with any idle gap) and a
  consumer that takes each byte within :data:`CONSUMER_STALL` cycles: each frame's byte is
  offered exactly once, equal to the data bits on the pin, within a fixed time of its stop
  bit; no byte is invented, no overflow, no framing error. k-induction, closes at k = 46;
* the receiver on frames with a zero stop bit (any data, followed by at least one idle bit
  time) and on breaks (zero data and stop bits, then the line low for any time, then idle for
  at least a bit): ``framing_error`` raised, ``framing_errors`` counts each exactly once, no
  byte from them, and the next frame's byte right. BMC over such a frame, idle, and a good
  frame with its byte (90 cycles); k-induction does not close (see the test);
* the two together (transmitter pin wired to receiver pin): every byte the transmitter
  accepts arrives at the receiver unchanged and in order, none lost, none invented, with no
  overflow, for a consumer that stalls up to :data:`LOOPBACK_STALL` cycle. BMC over two
  back-to-back bytes and the drain of the second (85 cycles).

Mutants that must fail: a transmitter sending MSB first (waveform), a receiver at the wrong
divisor (frames), a loopback with mismatched divisors. The break proof fails on the receiver
as it was before it waited for the line to rise after a break (it took the low line for a
start bit and delivered a phantom byte when the line rose).
"""
import pytest
from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import (Assert, Assume, Cat, Const, Elaboratable, Module, Mux, ResetSignal,
                          Signal)

from rasterflow.hdl.uart import UARTReceiver, UARTTransmitter
from rasterflow.sim.formal import check_no_combinational_path, run_sby

DIVISOR = 4
FRAME_BITS = 10                         # start, 8 data bits, stop
FRAME_CYCLES = FRAME_BITS * DIVISOR
#: Cycles from a frame's start edge on the pin to its byte on the receiver's output: 2 for
#: the synchroniser, half a bit to re-check the start bit, 9 bits to the middle of the stop
#: bit, 1 for the output register (``UARTReceiver``'s docstring).
RX_LATENCY = 2 + DIVISOR // 2 + 9 * DIVISOR + 1
#: Longest the consumer of received bytes leaves one waiting.
CONSUMER_STALL = 3
#: The same in the loopback, shorter to save solver time (the receiver's own proofs cover
#: the longer stall).
LOOPBACK_STALL = 1


def assert_proof(result, expect_pass=True):
    detail = f"{result.status} in {result.seconds:.1f}s; failed: {result.failed}\n" \
             f"trace: {result.trace}\n{result.log_tail}"
    assert result.passed == expect_pass, detail


def byte_source(m, stream):
    """Drive ``stream`` (valid, payload) freely, keeping the stream rules (by ``Assume``)."""
    m.d.comb += [stream.valid.eq(AnySeq(1)), stream.payload.eq(AnySeq(8))]
    held, last = Signal(), Signal(8)
    m.d.sync += [held.eq(stream.valid & ~stream.ready), last.eq(stream.payload)]
    with m.If(held):
        m.d.comb += Assume(stream.valid & (stream.payload == last))


def byte_sink(m, stream, stall):
    """Drive ``stream.ready`` freely, but never leave a valid byte waiting more than ``stall``
    cycles (by ``Assume``)."""
    m.d.comb += stream.ready.eq(AnySeq(1))
    waited = Signal(range(stall + 1))
    with m.If(stream.valid & ~stream.ready):
        m.d.sync += waited.eq(waited + 1)
    with m.Else():
        m.d.sync += waited.eq(0)
    m.d.comb += Assume(stream.ready | (waited < stall))


class MSBFirstTransmitter(UARTTransmitter):
    """A broken transmitter: the data bits go out MSB first."""
    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = UARTTransmitter(self.divisor)
        m.d.comb += [inner.i.valid.eq(self.i.valid), self.i.ready.eq(inner.i.ready),
                     inner.i.payload.eq(self.i.payload[::-1]), self.tx.eq(inner.tx)]
        return m


# -- stream rules and combinational paths ----------------------------------------------------

class ReceiverOutputRules(Elaboratable):
    """Any pin waveform, any consumer: once ``o.valid`` is high, it and ``o.payload`` hold
    until ``o.ready``."""
    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTReceiver(DIVISOR)
        m.d.comb += [Assume(~ResetSignal()), rx.rx.eq(AnySeq(1)), rx.o.ready.eq(AnySeq(1))]
        held, last = Signal(), Signal(8)
        m.d.sync += [held.eq(rx.o.valid & ~rx.o.ready), last.eq(rx.o.payload)]
        with m.If(held):
            m.d.comb += Assert(rx.o.valid, "o.valid dropped before a transfer")
            m.d.comb += Assert(rx.o.payload == last, "o.payload changed before a transfer")
        return m


def test_receiver_output_rules_prove(tmp_path):
    assert_proof(run_sby(ReceiverOutputRules(), mode="prove", depth=2, workdir=tmp_path))


def test_receiver_valid_has_no_combinational_path_from_ready():
    assert check_no_combinational_path(UARTReceiver(DIVISOR))


def test_transmitter_pin_has_no_combinational_path_from_the_byte_stream():
    for source in ("i__valid", "i__payload"):
        assert check_no_combinational_path(UARTTransmitter(DIVISOR), source=source, sink="tx")
    # ... and i.ready, which the source may wait for, does not wait for i.valid.
    assert check_no_combinational_path(UARTTransmitter(DIVISOR), source="i__valid",
                                       sink="i__ready")


# -- transmitter: the pin waveform ---------------------------------------------------------------

class TransmitterWaveform(Elaboratable):
    """A reference frame generator started by each accepted byte; the pin must equal it."""
    def __init__(self, transmitter):
        self.tx = transmitter

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = self.tx
        m.d.comb += Assume(~ResetSignal())
        byte_source(m, tx.i)
        accepted = tx.i.valid & tx.i.ready

        sending = Signal()                  # a reference frame is on the pin
        bits = Signal(FRAME_BITS)           # its bits, LSB first
        bit = Signal(range(FRAME_BITS))     # which one is on the pin
        tick = Signal(range(DIVISOR))       # cycles of it shown so far
        last_cycle = sending & (bit == FRAME_BITS - 1) & (tick == DIVISOR - 1)
        with m.If(accepted):
            m.d.sync += [sending.eq(1), bits.eq(Cat(0, tx.i.payload, 1)), bit.eq(0), tick.eq(0)]
        with m.Elif(last_cycle):
            m.d.sync += [sending.eq(0), bit.eq(0), tick.eq(0)]
        with m.Elif(sending):
            m.d.sync += tick.eq(Mux(tick == DIVISOR - 1, 0, tick + 1))
            with m.If(tick == DIVISOR - 1):
                m.d.sync += bit.eq(bit + 1)

        # The reference's own invariant (its counters stay in range), for the induction.
        m.d.comb += Assert((bit < FRAME_BITS) & (sending | (bit == 0) & (tick == 0)),
                           "reference out of its range")
        m.d.comb += Assert(tx.tx == Mux(sending, bits.bit_select(bit, 1), 1), "pin wrong")
        m.d.comb += Assert(tx.i.ready == (~sending | last_cycle),
                           "ready outside idle and the stop bit's last cycle")
        return m


def test_transmitter_waveform_prove(tmp_path):
    """k-induction closes at one frame (k = 10 * divisor; not at k = 30)."""
    assert_proof(run_sby(TransmitterWaveform(UARTTransmitter(DIVISOR)), mode="prove",
                         depth=FRAME_CYCLES, workdir=tmp_path))


def test_msb_first_transmitter_fails_the_waveform_bmc(tmp_path):
    result = run_sby(TransmitterWaveform(MSBFirstTransmitter(DIVISOR)), mode="bmc",
                     depth=FRAME_CYCLES + 2, workdir=tmp_path)
    assert_proof(result, expect_pass=False)
    assert any("pin wrong" in line for line in result.failed), result.failed


# -- receiver: well-formed frames on a free pin --------------------------------------------------

class ReceiverOnFrames(Elaboratable):
    """The pin is free but assumed to carry frames: idle high until it falls, then a start bit
    0, 8 data bits and a stop bit, each constant for ``divisor`` cycles; then idle (high) or
    the next start bit at once. The stop bit is 1, except:

    * with ``breaks``, after 8 zero data bits it may be 0 too: a *break*, the line then stays
      low for any time and, once it rises, idles for at least one bit time;
    * with ``bad_stops``, it is free after any data; after a zero one the line idles for at
      least one bit time (it takes that to tell the next start bit from the low stop bit).

    A reference tracks the frame on the pin and, at the start of the stop bit, knows the byte
    (the data bits as they were on the pin). Asserted: the receiver offers that byte exactly
    once, within ``RX_LATENCY - 9 * divisor`` cycles after the stop bit began (plus the
    consumer's stall), never offers a byte no frame carried, never overflows; a zero stop bit
    raises ``framing_error``, adds exactly one to ``framing_errors`` within the same time, and
    offers no byte.
    """
    def __init__(self, receiver, *, breaks=False, bad_stops=False, stall=CONSUMER_STALL):
        self.rx = receiver
        self.breaks = breaks
        self.bad_stops = bad_stops
        self.stall = stall

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        m.d.comb += Assume(~ResetSignal())
        pin = Signal(init=1)
        m.d.comb += [pin.eq(AnySeq(1)), rx.rx.eq(pin)]
        byte_sink(m, rx.o, self.stall)

        in_frame = Signal()
        bit = Signal(range(FRAME_BITS))
        tick = Signal(range(DIVISOR))
        pin_last = Signal(init=1)
        data = Signal(8)
        breaking = Signal()                         # low after a break, until the line rises
        idle_owed = Signal(range(DIVISOR + 1))      # idle cycles due before the next start
        m.d.sync += pin_last.eq(pin)
        with m.If(~in_frame):
            with m.If(breaking):
                with m.If(pin):
                    m.d.sync += [breaking.eq(0), idle_owed.eq(DIVISOR - 1)]
            with m.Elif(idle_owed != 0):
                m.d.comb += Assume(pin)
                m.d.sync += idle_owed.eq(idle_owed - 1)
            with m.Elif(~pin):              # the start bit's first cycle
                m.d.sync += [in_frame.eq(1), bit.eq(0), tick.eq(1)]
        with m.Else():
            with m.If(tick != 0):           # within a bit: the pin holds
                m.d.comb += Assume(pin == pin_last)
            if self.bad_stops:
                stop_may_be_zero = Const(1)
            else:
                stop_may_be_zero = (data == 0) if self.breaks else Const(0)
            with m.If((bit == FRAME_BITS - 1) & (tick == 0) & ~stop_may_be_zero):
                m.d.comb += Assume(pin)
            with m.If((bit >= 1) & (bit <= 8) & (tick == 0)):
                m.d.sync += data.eq(Cat(data[1:], pin))
            m.d.sync += tick.eq(Mux(tick == DIVISOR - 1, 0, tick + 1))
            with m.If((tick == DIVISOR - 1) & (bit == FRAME_BITS - 1)):
                m.d.sync += [in_frame.eq(0), bit.eq(0)]
                with m.If(~pin & (data == 0) & self.breaks):
                    m.d.sync += breaking.eq(1)
                with m.Elif(~pin):
                    m.d.sync += idle_owed.eq(DIVISOR)
            with m.Elif(tick == DIVISOR - 1):
                m.d.sync += bit.eq(bit + 1)
        # The reference's own invariant (its counters stay in range), for the induction.
        m.d.comb += Assert((bit < FRAME_BITS) & (in_frame | (bit == 0) & (tick == 0)) &
                           ~(in_frame & (breaking | (idle_owed != 0))),
                           "reference out of its range")

        stop_begins = in_frame & (bit == FRAME_BITS - 1) & (tick == 0)
        receiving = rx.o.valid & rx.o.ready
        deadline = RX_LATENCY - 9 * DIVISOR + self.stall     # cycles after stop_begins

        owed = Signal()                     # a good frame's byte, not yet taken
        expected = Signal(8)
        owed_for = Signal(range(deadline + 1))
        with m.If(stop_begins & pin):
            m.d.comb += Assert(~owed | receiving, "byte not taken by the next stop bit")
            m.d.sync += [owed.eq(1), expected.eq(data), owed_for.eq(0)]
        with m.Elif(receiving):
            m.d.sync += owed.eq(0)
        with m.Elif(owed & (owed_for != deadline)):
            m.d.sync += owed_for.eq(owed_for + 1)
        with m.If(rx.o.valid):
            m.d.comb += Assert(owed, "byte offered that no frame carried")
            m.d.comb += Assert(rx.o.payload == expected, "byte differs from the pin's bits")
        m.d.comb += Assert(~owed | (owed_for < deadline), "byte not delivered in time")
        m.d.comb += Assert(~rx.overflow, "overflow")

        # A zero stop bit is counted once, within the receiver's latency of the stop bit.
        counted = Signal(16)                # framing_errors, one cycle ago
        m.d.sync += counted.eq(rx.framing_errors)
        counts = rx.framing_errors != counted
        uncounted = Signal()                # a zero stop bit began and was not counted yet
        uncounted_for = Signal(range(deadline + 1))
        with m.If(stop_begins & ~pin):
            m.d.comb += Assert(~uncounted, "zero stop bit not counted by the next one")
            m.d.sync += [uncounted.eq(1), uncounted_for.eq(0)]
        with m.Elif(counts):
            m.d.sync += uncounted.eq(0)
        with m.Elif(uncounted & (uncounted_for != deadline)):
            m.d.sync += uncounted_for.eq(uncounted_for + 1)
        with m.If(counts):
            m.d.comb += Assert(uncounted, "framing error without a zero stop bit")
            m.d.comb += Assert(rx.framing_errors == counted + 1, "framing_errors jumped")
        m.d.comb += Assert(~uncounted | (uncounted_for < deadline), "zero stop bit not counted")
        m.d.comb += Assert(rx.framing_error == (rx.framing_errors != 0),
                           "framing_error does not follow the count")
        if not (self.breaks or self.bad_stops):
            m.d.comb += Assert(~rx.framing_error, "framing error on a good frame")
        return m


#: Cycles from the start of a stop bit to the receiver's byte: the rest of the frame up to the
#: middle of the stop bit, behind the synchroniser, and the output register.
STOP_TO_BYTE = RX_LATENCY - 9 * DIVISOR


def test_receiver_on_wellformed_frames_prove(tmp_path):
    """k-induction closes at a frame plus the delay from its stop bit to its byte (k = 46; not
    at k = 44): from any state that keeps the assertions for that long, the receiver is in
    step with the frames on the pin."""
    assert_proof(run_sby(ReceiverOnFrames(UARTReceiver(DIVISOR)), mode="prove",
                         depth=FRAME_CYCLES + STOP_TO_BYTE + 1, workdir=tmp_path))


@pytest.mark.slow
def test_receiver_on_zero_stop_bits_and_breaks_bmc(tmp_path):
    """A frame with a zero stop bit (any data; a break, of any length, when the data bits are
    zero too), a little idle, then a good frame and its byte: flagged and counted once, no
    byte from it, none invented, and the next frame's byte right. BMC only: k-induction does
    not close (up to k = 90 tried): from a state out of step with the frames on the pin, the
    receiver can stay out of step when zero stop bits come along; from reset it cannot. The
    receiver before its ``in_break`` fix fails this (at step 80): it takes the rest of a
    break for a start bit and receives a phantom frame over the idle line and the next real
    frame's start, which ends in a byte no frame carried (0x81 in one counterexample: a break
    half a bit longer than its stop bit, 5 idle cycles, a frame) or a second framing error;
    the real frame is lost."""
    # The consumer is always ready here (its stalls are covered by the proof above): a third
    # less solver time.
    harness = ReceiverOnFrames(UARTReceiver(DIVISOR), breaks=True, bad_stops=True, stall=0)
    assert_proof(run_sby(harness, mode="bmc",
                         depth=2 * FRAME_CYCLES + DIVISOR + STOP_TO_BYTE + 1,
                         workdir=tmp_path))


def test_receiver_at_the_wrong_divisor_fails_bmc(tmp_path):
    result = run_sby(ReceiverOnFrames(UARTReceiver(DIVISOR + 1)), mode="bmc",
                     depth=FRAME_CYCLES + 2 * STOP_TO_BYTE, workdir=tmp_path)
    assert_proof(result, expect_pass=False)


# -- loopback: transmitter pin -> receiver pin ---------------------------------------------------

class Loopback(Elaboratable):
    """Every byte the transmitter accepts must leave the receiver unchanged and in order.

    Bytes are arbitrary; one accepted byte, its index ``pick`` chosen freely by the solver
    (``AnyConst``), is recorded and must be the receiver's ``pick``-th byte, so every byte is
    checked. Counts: the receiver never offers more bytes than were sent, and ``drain_cycles``
    cycles after the last byte was offered it has delivered them all.
    """
    def __init__(self, transmitter, receiver, drain_cycles, *, stall=LOOPBACK_STALL):
        self.tx, self.rx = transmitter, receiver
        self.drain_cycles = drain_cycles
        self.stall = stall

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = tx, rx = self.tx, self.rx
        m.d.comb += [Assume(~ResetSignal()), rx.rx.eq(tx.tx)]
        byte_source(m, tx.i)
        byte_sink(m, rx.o, self.stall)

        # Counts modulo 4: within the depth at most 3 bytes are sent and 2 are in flight, so
        # they cannot alias.
        sent = Signal(2)
        received = Signal(2)
        sending = tx.i.valid & tx.i.ready
        receiving = rx.o.valid & rx.o.ready
        m.d.sync += [sent.eq(sent + sending), received.eq(received + receiving)]
        pick = Signal(2)
        picked = Signal(8)
        m.d.comb += pick.eq(AnyConst(2))
        with m.If(sending & (sent == pick)):
            m.d.sync += picked.eq(tx.i.payload)
        with m.If(rx.o.valid):
            m.d.comb += Assert(received != sent, "byte received that was not sent")
            with m.If(received == pick):
                m.d.comb += Assert(rx.o.payload == picked, "byte changed or out of order")
        m.d.comb += Assert(~rx.overflow & ~rx.framing_error, "receiver error")

        quiet = Signal(range(self.drain_cycles + 1))
        with m.If(tx.i.valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.drain_cycles):
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(quiet == self.drain_cycles):
            m.d.comb += Assert(received == sent, "byte lost")
        return m


#: From a byte's last offer (its acceptance) to its delivery: the frame (start bit after 1
#: cycle), the receiver's latency behind the start edge, the consumer's stall.
LOOPBACK_DRAIN = 1 + RX_LATENCY + LOOPBACK_STALL


def test_loopback_bmc(tmp_path):
    """Two bytes back to back and the drain of the second."""
    harness = Loopback(UARTTransmitter(DIVISOR), UARTReceiver(DIVISOR), LOOPBACK_DRAIN)
    assert_proof(run_sby(harness, mode="bmc", depth=FRAME_CYCLES + LOOPBACK_DRAIN + 2,
                         workdir=tmp_path))


def test_loopback_with_mismatched_divisors_fails_bmc(tmp_path):
    harness = Loopback(UARTTransmitter(DIVISOR), UARTReceiver(DIVISOR + 1), LOOPBACK_DRAIN)
    result = run_sby(harness, mode="bmc", depth=LOOPBACK_DRAIN + 2, workdir=tmp_path)
    assert_proof(result, expect_pass=False)
