"""The link's frame checks: InputFrameChecker and OutputFramer against the host's CRC helpers
(zlib.crc32), with stalls on both sides, several frames back to back."""
import random
import zlib

import pytest
from amaranth.sim import Simulator

from rasterflow.boards.host import (FrameCheckError, check_answer, input_stream, link_plan,
                                    output_trailer)
from rasterflow.hdl.link import (CRC, STATUS_FRAMING_ERROR, STATUS_INPUT_CRC_BAD,
                                 STATUS_RX_OVERFLOW, InputFrameChecker, OutputFramer)
from test_board_top import plus_one


def test_crc_is_zlib_crc32():
    data = bytes(range(256)) * 3
    assert CRC.compute(data) == zlib.crc32(data)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("block", [InputFrameChecker, OutputFramer])
@pytest.mark.parametrize("bad", [0, 2**32, 2.0, True])
def test_frame_bytes_validated(block, bad):
    with pytest.raises(ValueError, match="frame_bytes must be an integer in 1..2\\*\\*32-1"):
        block(bad)


async def _send(ctx, port, data, chance, stall):
    for byte in data:
        while chance.random() < stall:
            await ctx.tick()
        ctx.set(port.payload, byte)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def _collect(ctx, port, count, chance, stall, into):
    while len(into) < count:
        ready = chance.random() >= stall
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid and ready:
            into.append(payload)
    ctx.set(port.ready, 0)


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_input_checker_strips_and_checks_the_trailer(stall):
    """Three frames: intact, a flipped payload bit, a flipped CRC bit. The payload passes
    unchanged and aligned; the verdicts say which frames were intact."""
    n = 7
    rng = random.Random(2)
    payloads = [bytes(rng.randrange(256) for _ in range(n)) for _ in range(3)]
    streams = [bytearray(input_stream(p)) for p in payloads]
    streams[1][3] ^= 0x04
    streams[2][n + 1] ^= 0x80
    checker = InputFrameChecker(n)
    passed, verdicts = [], []
    chance = random.Random(3)

    async def sink(ctx):
        await _collect(ctx, checker.o, 3 * n, chance, stall, passed)

    async def verdict(ctx):
        while len(verdicts) < 3:
            ctx.set(checker.input_ok.ready, chance.random() >= stall)
            _, _, valid, ready, ok = await ctx.tick().sample(
                checker.input_ok.valid, checker.input_ok.ready, checker.input_ok.payload)
            if valid and ready:
                verdicts.append(ok)

    async def source(ctx):
        await _send(ctx, checker.i, b"".join(streams), chance, stall)

    sim = Simulator(checker)
    sim.add_clock(1e-6)
    for bench in (source, sink, verdict):
        sim.add_testbench(bench)
    sim.run()
    assert bytes(passed) == b"".join(bytes(s[:n]) for s in streams)
    assert verdicts == [1, 0, 0]


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_output_framer_trailer_matches_the_host(stall):
    """Two frames: the trailer after each is the host's output_trailer of the payload, with
    the verdict and the receiver flags (captured at the trailer's start) in the status."""
    n = 5
    rng = random.Random(4)
    payloads = [bytes(rng.randrange(256) for _ in range(n)) for _ in range(2)]
    framer = OutputFramer(n)
    out = []
    chance = random.Random(5)
    total = 2 * (n + 9)

    async def source(ctx):
        await _send(ctx, framer.i, b"".join(payloads), chance, stall)

    async def verdicts(ctx):
        for ok, overflow, framing in ((1, 0, 0), (0, 1, 1)):
            await ctx.tick().repeat(3 * n)          # the verdict comes late: the trailer waits
            ctx.set(framer.rx_overflow, overflow)
            ctx.set(framer.rx_framing_error, framing)
            ctx.set(framer.input_ok.payload, ok)
            ctx.set(framer.input_ok.valid, 1)
            await ctx.tick().until(framer.input_ok.ready)
            ctx.set(framer.input_ok.valid, 0)

    async def sink(ctx):
        await _collect(ctx, framer.o, total, chance, stall, out)

    sim = Simulator(framer)
    sim.add_clock(1e-6)
    for bench in (source, verdicts, sink):
        sim.add_testbench(bench)
    sim.run()
    statuses = [0, STATUS_INPUT_CRC_BAD | STATUS_RX_OVERFLOW | STATUS_FRAMING_ERROR]
    assert bytes(out) == b"".join(p + output_trailer(p, s) for p, s in zip(payloads, statuses))


def test_host_checks_name_what_failed():
    plan = link_plan(plus_one(2, 2))
    payload = b"\x01\x02\x03\x04"
    good = payload + output_trailer(payload, 0)
    assert check_answer(plan, good) == payload
    flipped = bytearray(good)
    flipped[8] ^= 1                               # the trailer's status byte
    with pytest.raises(FrameCheckError, match="output corrupted on the way back: CRC-32 of "
                                              "the 9 received bytes is"):
        check_answer(plan, bytes(flipped))
    with pytest.raises(FrameCheckError, match="framed 3 output bytes, this pipeline makes 4"):
        head = payload + (3).to_bytes(4, "little") + b"\0"
        check_answer(plan, head + zlib.crc32(head).to_bytes(4, "little"))
    with pytest.raises(FrameCheckError, match=r"status 0x03: input CRC bad \(the host's bytes "
                                              r"were corrupted on the way in\); RX overflow"):
        check_answer(plan, payload + output_trailer(payload, 3))
