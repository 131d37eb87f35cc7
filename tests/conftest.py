"""Shared fixtures and helpers.

The helpers are plain functions, imported by the tests that use them
(``from conftest import make_pipeline, random_frames``): pytest puts ``tests/`` on
``sys.path``, as for ``from test_board_top import plus_one``.

* :func:`make_pipeline`, :func:`random_frames`: a pipeline from stage tables (or stage objects)
  and random input batches for it;
* :func:`run_layers`: a pipeline of layer stages simulated against its golden layers;
* :func:`put_words`, :func:`get_words`, :func:`run_testbenches`, :func:`stream_through`:
  testbenches around :func:`~rasterflow.sim.amaranth_sim.stream_put` /
  :func:`~rasterflow.sim.amaranth_sim.stream_get` for single components in Amaranth's
  simulator; :func:`output_transfer_cycles`, :func:`unstalled_output_cycles`: when their
  outputs leave, unstalled.
"""
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from rasterflow.pipeline import Pipeline
from rasterflow.sim.amaranth_sim import stream_get, stream_put
from rasterflow.sim.session import simulate
from rasterflow.spec import InputSpec, parse_spec

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir():
    return DATA


# -- pipelines and input frames -----------------------------------------------------------------

def make_pipeline(stages, width, height, channels=1, dtype="uint8", *, lanes=1, name=None):
    """A linear pipeline over ``width x height`` frames of ``channels`` x ``dtype`` pixels,
    ``lanes`` pixels per clock.

    ``stages`` are spec tables (dicts, as a TOML spec's ``[[stage]]`` entries), checked like
    a spec (so bad ones raise :class:`~rasterflow.errors.SpecError`; ``name`` is the spec's
    name), or stage objects (e.g. from ``stage_from_layer``), put in a
    :class:`~rasterflow.pipeline.Pipeline` as they are.
    """
    if all(isinstance(stage, dict) for stage in stages):
        doc = {"input": {"width": width, "height": height, "channels": channels,
                         "dtype": dtype, "pixels_per_clock": lanes},
               "stage": stages}
        if name is not None:
            doc["name"] = name
        return parse_spec(doc)
    assert name is None, "a pipeline of stage objects takes no spec name"
    return Pipeline(InputSpec(width, height, channels, dtype, lanes), stages)


def random_frames(pipeline, seed, lo=None, hi=None, frames=2):
    """``frames`` different random frames (an N x H x W x C batch) for the pipeline's input,
    values in ``lo..hi`` (default: the input type's range)."""
    fmt = pipeline.input_format
    rng = np.random.default_rng(seed)
    lo = fmt.min if lo is None else lo
    hi = fmt.max if hi is None else hi
    shape = (frames, pipeline.height, pipeline.width, fmt.channels)
    return rng.integers(lo, hi + 1, size=shape).astype(fmt.np_dtype)


def run_layers(pipeline, batch, *, stall, seed=0, frames=1):
    """Simulate ``batch`` (N x H x W x C), ``frames`` times back to back, through a linear
    pipeline of layer stages in Amaranth's simulator with random stalls (``stall``, ``seed``).
    Every output frame must equal the stages' golden layers applied in turn, the reference
    independent of the hardware (each layer's result shaped as its stage's output frame: a
    mean's or a fully connected layer's vector is ``1 x 1 x C``), and the run must be bit
    exact. Returns the simulation result."""
    result = simulate(pipeline, batch, frames=frames, simulator="amaranth", stall=stall,
                      seed=seed, progress=False)
    assert len(result.outputs) == len(batch) * frames
    for k, out in enumerate(result.outputs):
        expected = batch[k % len(batch)]
        for bound in pipeline.bound:
            expected = np.asarray(bound.stage.layer(expected)).reshape(
                bound.out_height, bound.out_width, -1)
        np.testing.assert_array_equal(out, expected)
    assert result.bit_exact, result.report()
    return result


# -- stream testbenches in Amaranth's simulator -------------------------------------------------

async def put_words(ctx, stream, words, *, rng=None, stall=0.0):
    """Transfer every payload of ``words`` into ``stream`` (``stream_put``, idle cycles with
    probability ``stall`` before each when ``rng`` is given)."""
    for word in words:
        await stream_put(ctx, stream, word, rng=rng, stall=stall)


async def get_words(ctx, stream, count, *, rng=None, stall=0.0, into=None, counted=None):
    """Receive payloads from ``stream`` (``stream_get``, ``ready`` low with probability
    ``stall`` when ``rng`` is given) until ``count`` of them have arrived, or, with
    ``counted``, ``count`` for which ``counted(payload)`` holds. Each payload is appended to
    ``into`` (a new list by default) as it arrives, so another testbench can watch it; the
    list is returned."""
    received = [] if into is None else into
    seen = 0
    while seen < count:
        payload = await stream_get(ctx, stream, rng=rng, stall=stall)
        received.append(payload)
        seen += 1 if counted is None or counted(payload) else 0
    return received


def run_testbenches(dut, *testbenches):
    """Simulate ``dut`` with a 100 MHz clock until every testbench has returned."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.run()


def stream_through(dut, words, count, *, stall=0.0, seed=0, counted=None, after=None):
    """Send ``words`` into ``dut.i`` while receiving ``count`` payloads from ``dut.o`` (see
    :func:`get_words` for ``counted``), each side idle with probability ``stall`` per cycle
    (independent generators seeded from ``seed``). ``after(ctx)`` runs in the receiving
    testbench right after its last transfer (e.g. to read status outputs). Returns the
    payloads received."""
    put_rng = random.Random(seed) if stall else None
    get_rng = random.Random(seed + 1) if stall else None
    received = []

    async def producer(ctx):
        await put_words(ctx, dut.i, words, rng=put_rng, stall=stall)

    async def consumer(ctx):
        await get_words(ctx, dut.o, count, rng=get_rng, stall=stall, into=received,
                        counted=counted)
        if after is not None:
            after(ctx)

    run_testbenches(dut, producer, consumer)
    return received


class OneOutput:
    """The output side of the Pipeline contract for a stand-in pipeline with one output: its
    ``name`` names the output, of ``output_format``, ``out_width`` x ``out_height``; it is no
    imported model (``model`` is None)."""

    model = None

    @property
    def outputs(self):
        return [self.name]

    @property
    def output_formats(self):
        return {self.name: self.output_format}

    def output(self, name):
        return self


def output_transfer_cycles(dut, words, count, *, limit=None):
    """Offer ``words`` to ``dut.i`` back to back with ``dut.o`` always ready; the cycles
    (counted from the first input offered) of the first ``count`` output transfers. With
    ``limit``, fewer than ``count`` in ``limit`` cycles fail the test."""
    cycles = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        sent = 0
        for cycle in itertools.count() if limit is None else range(limit):
            ctx.set(dut.i.payload.as_value(), words[min(sent, len(words) - 1)])
            ctx.set(dut.i.valid, sent < len(words))
            if sent < len(words) and ctx.get(dut.i.ready):
                sent += 1
            if ctx.get(dut.o.valid):
                cycles.append(cycle)
                if len(cycles) == count:
                    return
            await ctx.tick()
        raise AssertionError(f"only {len(cycles)} of {count} outputs in {limit} cycles")

    run_testbenches(dut, bench)
    return cycles


def unstalled_output_cycles(dut, words):
    """:func:`output_transfer_cycles` of a unit with one output per input word: the cycles
    of the first and the last output transfer, as ``{"first_out": c, "last_out": c}``."""
    cycles = output_transfer_cycles(dut, words, len(words))
    return {"first_out": cycles[0], "last_out": cycles[-1]}
