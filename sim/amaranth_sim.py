"""Run rasterflow streams in Amaranth's simulator.

:func:`stream_put` / :func:`stream_get` are the shared testbench helpers (with optional random
stalls) for unit tests of single components. :func:`run_stream` drives a whole design with one
cycle-accurate loop (driver, back-pressure, monitor, protocol checker) and reports exact cycle
counts, the same way the Verilator bench does.
"""
import random
import time
from dataclasses import dataclass

from amaranth.hdl import Value
from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "run_stream", "StreamRun", "ProtocolError"]


class ProtocolError(AssertionError):
    """The design broke a stream rule on its output."""


async def stream_put(ctx, stream, payload, *, rng=None, stall=0.0):
    """Transfer one payload (an integer packed through the layout, e.g. by
    :func:`~rasterflow.hdl.payload.pack_pixels`) into ``stream``, after random idle cycles
    if ``stall`` > 0."""
    while rng is not None and rng.random() < stall:
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(Value.cast(stream.payload), payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, stall=0.0):
    """Receive one payload (as an integer) from ``stream``, holding ``ready`` low on random
    cycles."""
    while True:
        ready = rng is None or rng.random() >= stall
        ctx.set(stream.ready, ready)
        if ready and ctx.get(stream.valid):
            payload = ctx.get(Value.cast(stream.payload))
            await ctx.tick()
            ctx.set(stream.ready, 0)
            return payload
        await ctx.tick()


@dataclass
class StreamRun:
    out_words: list
    cycles: int                 # first input transfer .. last output transfer, inclusive
    first_output_cycle: int     # cycles from the first input transfer to the first output
    wall_seconds: float
    sim_cycles_per_second: float


def run_stream(dut, in_words, n_out, *, stall=0.0, seed=0, vcd=None, timeout_cycles=None,
               progress=None):
    """Drive ``dut.i`` with ``in_words`` and collect ``n_out`` payloads from ``dut.o``.

    With ``stall`` = p, the driver leaves ``valid`` low and the receiver leaves ``ready`` low
    each with probability p per cycle (valid, once raised, holds until the transfer).
    ``progress`` is an optional callable taking the number of outputs received so far.
    Raises :class:`ProtocolError` if ``o.valid`` drops, or the payload changes, before a
    transfer; raises ``TimeoutError`` after ``timeout_cycles`` without all outputs.
    """
    rng = random.Random(seed)
    if timeout_cycles is None:
        timeout_cycles = 20 * (len(in_words) + n_out) + 10_000
    out_payload = dut.o.payload.as_value()
    in_payload = dut.i.payload.as_value()
    result = {}

    async def bench(ctx):
        cycle = 0
        sent = 0
        received = []
        first_in = first_out = last_out = None
        in_valid = False
        held = None   # (payload) the output showed last cycle without being taken
        while len(received) < n_out:
            if cycle > timeout_cycles:
                raise TimeoutError(f"{len(received)} of {n_out} outputs after {cycle} cycles")
            if not in_valid and sent < len(in_words) and rng.random() >= stall:
                in_valid = True
                ctx.set(in_payload, in_words[sent])
            ctx.set(dut.i.valid, in_valid)
            out_ready = rng.random() >= stall
            ctx.set(dut.o.ready, out_ready)

            in_fire = in_valid and ctx.get(dut.i.ready)
            out_valid = ctx.get(dut.o.valid)
            payload = ctx.get(out_payload) if out_valid else None
            if held is not None:
                if not out_valid:
                    raise ProtocolError(f"cycle {cycle}: o.valid dropped before a transfer")
                if payload != held:
                    raise ProtocolError(f"cycle {cycle}: o.payload changed before a transfer")
            if in_fire:
                if first_in is None:
                    first_in = cycle
                sent += 1
                in_valid = False
            if out_valid and out_ready:
                received.append(payload)
                if first_out is None:
                    first_out = cycle
                last_out = cycle
                held = None
                if progress is not None:
                    progress(len(received))
            else:
                held = payload if out_valid else None
            await ctx.tick()
            cycle += 1
        result.update(out_words=received, first_in=first_in, first_out=first_out,
                      last_out=last_out, total=cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    start = time.perf_counter()
    if vcd is not None:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    wall = time.perf_counter() - start
    first_in = result["first_in"] if result["first_in"] is not None else 0
    return StreamRun(
        out_words=result["out_words"],
        cycles=result["last_out"] - first_in + 1 if result["out_words"] else 0,
        first_output_cycle=(result["first_out"] - first_in) if result["out_words"] else 0,
        wall_seconds=wall,
        sim_cycles_per_second=result["total"] / wall if wall > 0 else 0.0,
    )
