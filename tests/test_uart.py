"""UART receiver/transmitter: bit timing at the pins in Amaranth's simulator."""
import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from rasterflow.hdl.uart import UARTReceiver, UARTTransmitter, uart_divisor


# --- bit-level helpers shared with test_board_top.py -------------------------------------

async def drive_uart_byte(ctx, pin, byte, bit_clocks, *, stop_bit=1):
    """Drive one 8N1 frame on ``pin``; ``bit_clocks`` may be fractional (a sender whose baud
    rate is off): bit edges fall on the rounded cumulative times."""
    bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop_bit]
    clock = 0
    for index, bit in enumerate(bits):
        ctx.set(pin, bit)
        end = round((index + 1) * bit_clocks)
        await ctx.tick().repeat(end - clock)
        clock = end


async def sample_uart_byte(ctx, pin, divisor, *, max_idle_clocks):
    """Wait for a start bit on ``pin`` and decode one 8N1 frame sampling mid-bit.

    Returns the byte, or None if no start bit came within ``max_idle_clocks``; fails on a
    glitchy start bit or a zero stop bit."""
    for _ in range(max_idle_clocks):
        if ctx.get(pin) == 0:
            break
        await ctx.tick()
    else:
        return None
    await ctx.tick().repeat(divisor // 2)
    assert ctx.get(pin) == 0, "start bit did not last half a bit"
    byte = 0
    for i in range(8):
        await ctx.tick().repeat(divisor)
        byte |= ctx.get(pin) << i
    await ctx.tick().repeat(divisor)
    assert ctx.get(pin) == 1, "stop bit is 0"
    return byte


# --- divisor validation ------------------------------------------------------------------

def test_divisor_from_clock_and_baud():
    assert uart_divisor(12e6, 1_000_000) == 12
    assert uart_divisor(25e6, 1_000_000) == 25
    assert uart_divisor(12e6, 921_600) == 13   # 0.2% off: accepted


@pytest.mark.parametrize("clk_hz, baud, words", [
    (12e6, 4_000_000, "divisor 3"),
    (12e6, 2_600_000, "off by 7.7%"),
    (12e6, 0, "baud rate must be positive, not 0"),
])
def test_divisor_rejects(clk_hz, baud, words):
    with pytest.raises(ValueError, match=words):
        uart_divisor(clk_hz, baud)


# The rejected objects exist before __init__ raises; Amaranth then warns they were not used.
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("cls", [UARTReceiver, UARTTransmitter])
@pytest.mark.parametrize("divisor", [3, 4.0, True])
def test_components_reject_bad_divisor(cls, divisor):
    with pytest.raises(ValueError, match=repr(divisor)):
        cls(divisor)


# --- transmitter -------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 7])
def test_transmitter_bit_timing(divisor):
    rng = random.Random(divisor)
    payload = [rng.randrange(256) for _ in range(12)]
    dut = UARTTransmitter(divisor)
    received = []

    async def producer(ctx):
        for byte in payload:
            # Random idle gaps between bytes, and back-to-back bytes.
            for _ in range(rng.choice([0, 0, 3, 25])):
                await ctx.tick()
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def line(ctx):
        assert ctx.get(dut.tx) == 1
        for _ in payload:
            received.append(await sample_uart_byte(ctx, dut.tx, divisor, max_idle_clocks=100))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(line)
    sim.run()
    assert received == payload


def test_transmitter_back_to_back_throughput():
    divisor = 5
    dut = UARTTransmitter(divisor)
    starts = []

    async def producer(ctx):
        ctx.set(dut.i.valid, 1)
        for byte in (0x00, 0xFF, 0x80):   # one falling edge per frame: the start bit
            ctx.set(dut.i.payload, byte)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def edges(ctx):
        previous = 1
        for clock in range(40 * divisor):
            level = ctx.get(dut.tx)
            if previous == 1 and level == 0:
                starts.append(clock)
            previous = level
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(edges)
    sim.run()
    # Start bits exactly one frame (10 bits) apart: no idle gap between queued bytes.
    assert [b - a for a, b in zip(starts, starts[1:])] == [10 * divisor, 10 * divisor]


# --- receiver ----------------------------------------------------------------------------

def _run_receiver(divisor, frames, *, ready=True, bit_clocks=None):
    """Drive ``frames`` (byte, stop_bit) into a receiver; return (bytes seen on o, flags)."""
    dut = UARTReceiver(divisor)
    seen = []
    flags = {}

    async def sender(ctx):
        await ctx.tick().repeat(3)
        for byte, stop_bit in frames:
            await drive_uart_byte(ctx, dut.rx, byte, bit_clocks or divisor, stop_bit=stop_bit)
            ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * divisor)
        flags.update(overflow=ctx.get(dut.overflow), framing_error=ctx.get(dut.framing_error),
                     framing_errors=ctx.get(dut.framing_errors))

    async def sink(ctx):
        ctx.set(dut.o.ready, int(ready))
        while True:
            await ctx.tick()
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                seen.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(sink, background=True)
    sim.run()
    return seen, flags


@pytest.mark.parametrize("divisor, bit_clocks", [
    (4, 4), (8, 8), (10, 10.2), (10, 9.8), (16, 16 * 1.02), (16, 16 / 1.02),
])
def test_receiver_samples_mid_bit(divisor, bit_clocks):
    # Senders up to 2% slow or fast, back-to-back frames (drift accumulates within a frame).
    rng = random.Random(divisor)
    payload = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(8)]
    seen, flags = _run_receiver(divisor, [(b, 1) for b in payload], bit_clocks=bit_clocks)
    assert seen == payload
    assert flags == {"overflow": 0, "framing_error": 0, "framing_errors": 0}


def test_receiver_framing_error_drops_byte_and_counts():
    seen, flags = _run_receiver(6, [(0x12, 1), (0x34, 0), (0x56, 1), (0x00, 0)])
    assert seen == [0x12, 0x56]
    assert flags == {"overflow": 0, "framing_error": 1, "framing_errors": 2}


def test_receiver_overflow_latches_and_keeps_first_byte():
    dut_divisor = 4
    seen, flags = _run_receiver(dut_divisor, [(0x11, 1), (0x22, 1)], ready=False)
    assert seen == []
    assert flags["overflow"] == 1 and flags["framing_error"] == 0


def test_receiver_ignores_glitch():
    divisor = 8
    dut = UARTReceiver(divisor)
    seen = []

    async def sender(ctx):
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 0)          # a 2-clock low pulse: shorter than half a bit
        await ctx.tick().repeat(2)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        await drive_uart_byte(ctx, dut.rx, 0xC3, divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(dut.o.valid):
                seen.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert seen == [0xC3]


def test_loopback_transmitter_to_receiver():
    divisor = 6
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    payload = list(range(0, 256, 7))
    seen = []

    async def producer(ctx):
        ctx.set(tx.i.valid, 1)
        for byte in payload:
            ctx.set(tx.i.payload, byte)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        while len(seen) < len(payload):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                seen.append(ctx.get(rx.o.payload))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert seen == payload
