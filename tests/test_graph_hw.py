"""Fork, Join and SkewBuffer (hdl/graph.py) in Amaranth's simulator.

Every item reaches every fork output in order under random per-output stalls; a join pairs
its inputs' items in order under random gaps and stalls; and :func:`skew_depth` is exact on
a diamond of register delay lines: with the computed depths the join moves every cycle
(``N`` items take ``N + T`` cycles), with one entry fewer on any buffer it does not.
"""
import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect
from amaranth.sim import Simulator

from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.graph import Fork, Join, SkewBuffer, joined_latency, skew_depth
from rasterflow.hdl.payload import pack_pixels, pixel_stream_layout
from rasterflow.hdl.stall import StallPipeline
from rasterflow.sim.amaranth_sim import run_stream, stream_get, stream_put

U8 = PixelFormat(1, "uint8")
I16 = PixelFormat(1, "int16")
RGB = PixelFormat(3, "uint8")
WORD = data.StructLayout({"x": 8})
ITEMS = 200
W = 16


class DelayLine(wiring.Component):
    """``stages`` stall-all register stages: a rigid branch of latency ``stages``."""
    def __init__(self, layout, stages):
        self.latency = stages
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        value = self.i.payload
        for stage in range(self.latency):
            value = pipe.register(value, name=f"d{stage}")
            pipe.stage()
        m.d.comb += self.o.payload.eq(value)
        pipe.finish()
        return m


class Diamond(wiring.Component):
    """Fork -> per branch ``k``: DelayLine(latencies[k]) -> SkewBuffer(depths[k]) (none for
    depth 0) -> Join of branches ``b0``, ``b1``, ... -> ``o``."""
    def __init__(self, fmt, latencies, depths):
        layout = pixel_stream_layout(fmt)
        self.fork = Fork(layout, len(latencies))
        self.lines = [DelayLine(layout, latency) for latency in latencies]
        self.skews = [SkewBuffer(layout, depth) if depth else None for depth in depths]
        self.join = Join({f"b{k}": fmt for k in range(len(latencies))})
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(self.join.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork, m.submodules.join = self.fork, self.join
        connect(m, wiring.flipped(self.i), self.fork.i)
        for k, (line, skew) in enumerate(zip(self.lines, self.skews)):
            m.submodules[f"line{k}"] = line
            connect(m, self.fork.o[k], line.i)
            end = line.o
            if skew is not None:
                m.submodules[f"skew{k}"] = skew
                connect(m, line.o, skew.i)
                end = skew.o
            connect(m, end, getattr(self.join, f"i_b{k}"))
        connect(m, self.join.o, wiring.flipped(self.o))
        return m


def pixel_words(fmt, count, seed, lanes=1):
    """``count`` transfers of random pixels with sof/eol of 8-transfer lines."""
    frame = np.random.default_rng(seed).integers(fmt.min, fmt.max + 1,
                                                 (count // 8, 8 * lanes, fmt.channels))
    return pack_pixels(fmt, frame.astype(fmt.np_dtype), lanes)


def assert_joined(out_words, joined, inputs, lanes=1):
    """Output transfer ``n`` carries transfer ``n`` of every input (``inputs``: name ->
    (format, words)) and the first input's markers."""
    first_fmt, first = next(iter(inputs.values()))
    assert len(out_words) == len(first)
    for n, word in enumerate(out_words):
        out = joined.from_bits(word)
        for name, (fmt, words) in inputs.items():
            item = pixel_stream_layout(fmt, lanes).from_bits(words[n])
            for j in range(lanes):
                got = out.data[j][name] if lanes > 1 else out.data[name]
                want = item.data[j] if lanes > 1 else item.data
                assert got.as_bits() == want.as_bits(), f"transfer {n}, input {name}, lane {j}"
        marker = pixel_stream_layout(first_fmt, lanes).from_bits(first[n])
        assert (out.sof, out.eol) == (marker.sof, marker.eol), f"transfer {n} markers"


def run_benches(dut, benches):
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()   # the join alone has no register, hence no domain
    sim = Simulator(top)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


# -- Fork -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3])
def test_fork_delivers_every_item_to_every_output_in_order(n):
    fork = Fork(WORD, n)
    items = [random.Random(n).randrange(256) for _ in range(150)]
    received = [[] for _ in range(n)]

    async def source(ctx):
        rng = random.Random(10)
        for item in items:
            await stream_put(ctx, fork.i, item, rng=rng, stall=0.3)

    def sink(k):
        async def bench(ctx):
            rng = random.Random(20 + k)
            for _ in items:
                received[k].append(await stream_get(ctx, fork.o[k], rng=rng,
                                                    stall=0.2 + 0.2 * k))
        return bench

    run_benches(fork, [source] + [sink(k) for k in range(n)])
    assert received == [items] * n


# -- Join -------------------------------------------------------------------------------------

@pytest.mark.parametrize("formats, lanes", [({"a": U8, "b": I16}, 1),
                                            ({"a": RGB, "b": U8, "c": I16}, 1),
                                            ({"a": U8, "b": RGB}, 2)],
                         ids=["u8-i16", "three", "lanes2"])
def test_join_pairs_items_in_order_under_gaps_and_stalls(formats, lanes):
    join = Join(formats, lanes)
    inputs = {name: (fmt, pixel_words(fmt, 96, k, lanes))
              for k, (name, fmt) in enumerate(formats.items())}
    out_words = []

    def source(k, name):
        async def bench(ctx):
            rng = random.Random(30 + k)
            for word in inputs[name][1]:
                await stream_put(ctx, getattr(join, f"i_{name}"), word, rng=rng,
                                 stall=0.2 + 0.2 * k)
        return bench

    async def sink(ctx):
        rng = random.Random(40)
        for _ in range(96):
            out_words.append(await stream_get(ctx, join.o, rng=rng, stall=0.3))

    run_benches(join, [source(k, name) for k, name in enumerate(formats)] + [sink])
    assert_joined(out_words, join.o.payload.shape(), inputs, lanes)


# -- SkewBuffer -------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, latency, cycles", [(1, 1, 2 * ITEMS), (2, 2, 2 * ITEMS + 1),
                                                    (3, 2, ITEMS + 2), (64, 2, ITEMS + 2)])
def test_skew_buffer_latency_and_throughput(depth, latency, cycles):
    """Documented figures: 2 cycles to the output (1 at depth 1); one item per cycle from
    depth 3, every other cycle below."""
    buffer = SkewBuffer(WORD, depth)
    words = list(range(ITEMS))
    run = run_stream(buffer, [w % 256 for w in words], ITEMS)
    assert run.out_words == [w % 256 for w in words]
    assert (buffer.latency, run.first_output_cycle, run.cycles) == (latency, latency, cycles)


def test_skew_buffer_is_in_order_under_stalls():
    words = [random.Random(5).randrange(256) for _ in range(300)]
    run = run_stream(SkewBuffer(WORD, 5), words, len(words), stall=0.3, seed=5)
    assert run.out_words == words


# -- skew_depth is exact on delay lines -------------------------------------------------------

# (latencies, expected depths): a 1-cycle gap is narrower than a SkewBuffer's own latency,
# so every branch is buffered; 2*W+2 is a 5x5 window's schedule against a 1x1 path.
SKEW_CASES = [
    ([1, 3], [3, 0]),
    ([2, 7], [6, 0]),
    ([3, 3], [0, 0]),
    ([4, 5], [4, 3]),
    ([1, 1 + 2 * W + 2], [2 * W + 3, 0]),
    ([1, 6, 9], [9, 4, 0]),
]


def diamond_cycles(latencies, depths, words):
    run = run_stream(Diamond(U8, latencies, depths), words, len(words))
    return run.cycles


@pytest.mark.parametrize("latencies, depths", SKEW_CASES,
                         ids=[str(c[0]) for c in SKEW_CASES])
def test_skew_depth_is_exact(latencies, depths):
    """No stalls: with the computed depths, N items take exactly N + T cycles (one output
    per cycle after the first, T = joined_latency); one entry fewer on any buffer costs
    throughput."""
    assert skew_depth(latencies) == depths
    words = pixel_words(U8, ITEMS, 1)
    assert diamond_cycles(latencies, depths, words) == ITEMS + joined_latency(latencies)
    for k, depth in enumerate(depths):
        if depth:
            short = depths[:k] + [depth - 1] + depths[k + 1:]
            assert diamond_cycles(latencies, short, words) > ITEMS + joined_latency(latencies)


@pytest.mark.parametrize("depth", [3, 4, 8])
def test_one_cycle_gap_needs_a_buffer_on_the_slowest_branch(depth):
    """Buffering only the faster branch of [4, 5] makes it the slower one (4 + 2 > 5); the
    unbuffered branch then holds too few items and the join loses throughput whatever the
    depth."""
    words = pixel_words(U8, ITEMS, 2)
    assert diamond_cycles([4, 5], [depth, 0], words) > ITEMS + 5 + 2


@pytest.mark.parametrize("latencies", [[1, 1 + 2 * W + 2], [4, 5], [1, 6, 9]],
                         ids=["window", "gap1", "three"])
def test_diamond_is_bit_exact_under_random_stalls(latencies):
    words = pixel_words(U8, 320, 3)
    dut = Diamond(U8, latencies, skew_depth(latencies))
    run = run_stream(dut, words, len(words), stall=0.3, seed=len(latencies))
    assert_joined(run.out_words, dut.o.payload.shape(),
                  {f"b{k}": (U8, words) for k in range(len(latencies))})


# -- parameter validation ---------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: Fork(WORD, 1), "n must be an integer of at least 2, not 1"),
    (lambda: Fork(WORD, 2.0), "n must be an integer of at least 2, not 2.0"),
    (lambda: Join({"a": U8}), "formats must be a dict of at least 2 inputs"),
    (lambda: Join([U8, U8]), "formats must be a dict of at least 2 inputs"),
    (lambda: Join({"a": U8, "1b": U8}), "input names must be Python identifiers, not '1b'"),
    (lambda: Join({"a": U8, "b": "uint8"}),
     "format of input 'b' must be a PixelFormat, not 'uint8'"),
    (lambda: Join({"a": U8, "b": U8}, lanes=0), "lanes must be an integer of at least 1, not 0"),
    (lambda: SkewBuffer(WORD, 0), "depth must be an integer of at least 1, not 0"),
    (lambda: SkewBuffer(WORD, True), "depth must be an integer of at least 1, not True"),
    (lambda: skew_depth([3]),
     r"branch_latencies must be a list of at least 2 latencies, not \[3\]"),
    (lambda: skew_depth([1, -1]), "a branch latency must be an integer of at least 0, not -1"),
    (lambda: joined_latency((1, 2.5)),
     "a branch latency must be an integer of at least 0, not 2.5"),
])
def test_parameters_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()
