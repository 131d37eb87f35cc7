"""FrameGuard in front of a real Filter2D: malformed input frames never reach the filter.

Each fault case sends [good frame, malformed frame, good frame] with random valid gaps and
ready stalls and checks: the first and last output frames are bit-exact against the golden
filter, every output frame is whole with exact markers, the error counter counts the faults,
and everything leaves within a bounded number of cycles.
"""
import random

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect
from amaranth.sim import Simulator

from rasterflow.golden import filters as golden
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.filters import Filter2D
from rasterflow.hdl.guard import Fault, FrameGuard
from rasterflow.hdl.payload import pack_pixels, pixel_stream_layout, pixel_stream_signature, \
    unpack_pixels
from rasterflow.sim.amaranth_sim import run_stream

from conftest import make_pipeline, stream_through

FMT = PixelFormat(1, "uint8")
WIDTH, HEIGHT = 7, 5
KERNEL = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
SHIFT = 4
LAYOUT = pixel_stream_layout(FMT)


class GuardedFilter(wiring.Component):
    """FrameGuard -> Filter2D, with the guard's status brought out."""
    def __init__(self, lanes=1):
        self.guard = FrameGuard(FMT, WIDTH, HEIGHT, lanes=lanes)
        self.filter = Filter2D(FMT, WIDTH, HEIGHT, KERNEL, shift=SHIFT, lanes=lanes)
        super().__init__({"i": In(pixel_stream_signature(FMT, lanes)),
                          "o": Out(pixel_stream_signature(FMT, lanes)),
                          "errors": Out(16), "error": Out(1), "last_fault": Out(Fault)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.guard = self.guard
        m.submodules.filter = self.filter
        connect(m, wiring.flipped(self.i), self.guard.i)
        connect(m, self.guard.o, self.filter.i)
        connect(m, self.filter.o, wiring.flipped(self.o))
        m.d.comb += [self.errors.eq(self.guard.errors), self.error.eq(self.guard.error),
                     self.last_fault.eq(self.guard.last_fault)]
        return m


def word(value, sof, eol):
    return LAYOUT.const({"data": [value], "sof": sof, "eol": eol}).as_value().value


def frame_pixels(frame):
    """A well-formed frame as a list of [value, sof, eol] (mutable, for the fault cases)."""
    return [[int(frame[y, x, 0]), int(y == 0 and x == 0), int(x == WIDTH - 1)]
            for y in range(HEIGHT) for x in range(WIDTH)]


def short_line(pixels):
    """Line 2 ends (eol) after 3 of its 7 pixels; the rest of the frame follows."""
    start = 2 * WIDTH
    pixels[start + 2][2] = 1
    del pixels[start + 3:start + WIDTH]
    return pixels


def long_line(pixels):
    """Line 1 carries 2 extra pixels before its eol."""
    end = 2 * WIDTH - 1
    pixels[end][2] = 0
    pixels[end + 1:end + 1] = [[9, 0, 0], [10, 0, 1]]
    return pixels


def short_frame(pixels):
    """The frame stops after 2.5 lines; the next frame's sof follows."""
    return pixels[:2 * WIDTH + 3]


def missing_sof(pixels):
    pixels[0][1] = 0
    return pixels


# fault case -> (mutation, faults, last_fault, output frames for [good, bad, good])
CASES = {
    "short_line": (short_line, Fault.SHORT_LINE, 3),
    "long_line": (long_line, Fault.LONG_LINE, 3),
    "short_frame": (short_frame, Fault.SHORT_FRAME, 3),
    "missing_sof": (missing_sof, Fault.MISSING_SOF, 2),
}


def random_inputs(seed, count):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8) for _ in range(count)]


def expected(frame):
    return golden.filter2d(frame, KERNEL, shift=SHIFT).reshape(HEIGHT, WIDTH, 1)


def split_frames(words, count):
    """Unpack ``count`` whole frames and check their markers are exact."""
    assert len(words) == count * WIDTH * HEIGHT
    frames = []
    for k in range(count):
        out, sof, eol = unpack_pixels(FMT, words[k * WIDTH * HEIGHT:(k + 1) * WIDTH * HEIGHT],
                                      HEIGHT, WIDTH)
        assert sof.sum() == 1 and sof[0, 0], f"frame {k}: sof must mark only the first pixel"
        assert eol[:, -1].all() and eol.sum() == HEIGHT, f"frame {k}: eol misplaced"
        frames.append(out)
    return frames


def stream(dut, words, n_out, *, stall, seed, reset_after=None, reset=None, max_cycles=4000):
    """Drive ``words`` into ``dut.i`` and collect outputs until ``n_out`` have arrived after
    the reset, or ``max_cycles`` passed. With ``reset_after``, ``reset`` is high for one cycle
    once that many words were accepted; the source keeps offering its words across it.
    Returns (outputs after the reset, errors, last_fault, cycles)."""
    rng = random.Random(seed)
    in_payload = Value.cast(dut.i.payload)
    out_payload = Value.cast(dut.o.payload)
    result = {}

    async def bench(ctx):
        sent, received, in_valid, cycle, reset_done = 0, [], False, 0, False
        while (len(received) < n_out or reset is not None and not reset_done) \
                and cycle < max_cycles:
            resetting = reset is not None and not reset_done and sent == reset_after
            if reset is not None:
                ctx.set(reset, resetting)
            if resetting:
                reset_done = True
                received = []
            if not in_valid and sent < len(words) and rng.random() >= stall:
                in_valid = True
                ctx.set(in_payload, words[sent])
            ctx.set(dut.i.valid, in_valid)
            out_ready = rng.random() >= stall
            ctx.set(dut.o.ready, out_ready)
            if in_valid and ctx.get(dut.i.ready) and not resetting:
                sent += 1
                in_valid = False
            if out_ready and ctx.get(dut.o.valid) and not resetting:
                received.append(ctx.get(out_payload))
            await ctx.tick()
            cycle += 1
        result.update(received=received, errors=ctx.get(dut.errors),
                      last_fault=ctx.get(dut.last_fault), cycles=cycle)

    sim = Simulator(dut if reset is None else ResetInserter(reset)(dut))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["received"], result["errors"], result["last_fault"], result["cycles"]


@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fault_is_repaired_and_counted(case, stall):
    mutate, fault, out_frames = CASES[case]
    first, bad, last = random_inputs(sorted(CASES).index(case), 3)
    pixels = frame_pixels(first) + mutate(frame_pixels(bad)) + frame_pixels(last)
    dut = GuardedFilter()
    received, errors, last_fault, cycles = stream(
        dut, [word(*p) for p in pixels], out_frames * WIDTH * HEIGHT, stall=stall, seed=5)
    assert len(received) == out_frames * WIDTH * HEIGHT, \
        f"{len(received)} of {out_frames * WIDTH * HEIGHT} outputs after {cycles} cycles"
    frames = split_frames(received, out_frames)
    np.testing.assert_array_equal(frames[0], expected(first))
    np.testing.assert_array_equal(frames[-1], expected(last))
    assert errors == 1
    assert last_fault == fault


def test_several_faults_are_counted():
    """Every fault kind once, each followed by a good frame: 4 faults, 4 exact good frames."""
    good = random_inputs(21, 5)
    pixels = frame_pixels(good[0])
    for k, name in enumerate(["short_line", "short_frame", "long_line", "missing_sof"]):
        pixels += CASES[name][0](frame_pixels(good[k])) + frame_pixels(good[k + 1])
    dut = GuardedFilter()
    # good[0], then per fault: the repaired frame (none for missing_sof) and a good frame
    n_frames = 1 + 2 + 2 + 2 + 1
    received, errors, _, _ = stream(dut, [word(*p) for p in pixels],
                                    n_frames * WIDTH * HEIGHT, stall=0.25, seed=8)
    frames = split_frames(received, n_frames)
    for index, source in ((0, 0), (2, 1), (4, 2), (6, 3), (7, 4)):
        np.testing.assert_array_equal(frames[index], expected(good[source]))
    assert errors == 4


def test_well_formed_input_is_untouched_at_full_rate():
    """No fault, no error; guard + filter latency is the filter's plus one cycle."""
    frames = random_inputs(3, 3)
    words = [w for f in frames for w in pack_pixels(FMT, f)]
    dut = GuardedFilter()
    run = run_stream(dut, words, len(frames) * WIDTH * HEIGHT)
    for out, frame in zip(split_frames(run.out_words, len(frames)), frames):
        np.testing.assert_array_equal(out, expected(frame))
    latency = dut.guard.latency + dut.filter.latency + dut.filter.schedule_delay
    assert run.cycles == len(frames) * WIDTH * HEIGHT + latency


@pytest.mark.parametrize("reset_after", [WIDTH * HEIGHT + 1, WIDTH * HEIGHT + 17,
                                         2 * WIDTH * HEIGHT - 1])
def test_reset_mid_frame_then_next_frame_is_exact(reset_after):
    """Reset guard and filter while the second frame streams; the source is not reset and
    goes on with the rest of that frame (no sof), which the guard drops as MISSING_SOF; the
    third frame is then exact."""
    frames = random_inputs(4, 3)
    words = [w for f in frames for w in pack_pixels(FMT, f)]
    dut = GuardedFilter()
    reset = Signal()
    received, errors, last_fault, cycles = stream(
        dut, words, WIDTH * HEIGHT, stall=0.2, seed=reset_after, reset_after=reset_after,
        reset=reset)
    [out] = split_frames(received, 1)
    np.testing.assert_array_equal(out, expected(frames[2]))
    assert errors == 1 and last_fault == Fault.MISSING_SOF


def test_long_frame_is_dropped_up_to_the_next_sof():
    """A frame with an extra line: the extra line shows up as MISSING_SOF and is dropped."""
    first, last = random_inputs(6, 2)
    extra = [[7, 0, int(x == WIDTH - 1)] for x in range(WIDTH)]
    pixels = frame_pixels(first) + extra + frame_pixels(last)
    received, errors, last_fault, _ = stream(GuardedFilter(), [word(*p) for p in pixels],
                                             2 * WIDTH * HEIGHT, stall=0.3, seed=2)
    out_first, out_last = split_frames(received, 2)
    np.testing.assert_array_equal(out_first, expected(first))
    np.testing.assert_array_equal(out_last, expected(last))
    assert errors == 1 and last_fault == Fault.MISSING_SOF


def test_two_lanes_short_frame_and_missing_sof():
    """Two pixels per transfer (a 7-pixel line is 4 transfers): a frame cut after 6
    transfers, then a frame without sof, each between good frames."""
    lanes = 2
    layout = pixel_stream_layout(FMT, lanes)
    good = random_inputs(11, 3)
    bad = random_inputs(12, 2)
    words = [pack_pixels(FMT, f, lanes) for f in good + bad]
    no_sof = [words[4][0] & ~(1 << layout["sof"].offset)] + words[4][1:]
    stream_words = words[0] + words[3][:6] + words[1] + no_sof + words[2]
    received, errors, last_fault, _ = stream(GuardedFilter(lanes), stream_words,
                                             4 * 4 * HEIGHT, stall=0.3, seed=4)
    outputs = [unpack_pixels(FMT, received[k * 4 * HEIGHT:(k + 1) * 4 * HEIGHT], HEIGHT,
                             WIDTH, lanes)[0] for k in range(4)]
    for out, source in ((outputs[0], good[0]), (outputs[2], good[1]), (outputs[3], good[2])):
        np.testing.assert_array_equal(out, expected(source))
    assert errors == 2 and last_fault == Fault.MISSING_SOF


def test_error_counter_saturates():
    """For 1x1 frames, pixels with sof but no eol are a LONG_LINE fault every cycle (the
    fault goes to DISCARD, which forwards the next sof pixel at once); the counter, forced
    near its top, stops at 65535 instead of wrapping."""
    guard = FrameGuard(FMT, 1, 1)

    async def bench(ctx):
        ctx.set(guard.o.ready, 1)
        ctx.set(guard.i.valid, 1)
        ctx.set(Value.cast(guard.i.payload), word(0, 1, 0))
        await ctx.tick().repeat(3)  # the status registers follow a fault by two cycles
        assert ctx.get(guard.errors) == 1 and ctx.get(guard.error)
        assert ctx.get(guard.last_fault) == Fault.LONG_LINE
        ctx.set(guard.errors, 0xFFFD)
        for _ in range(8):
            await ctx.tick()
        assert ctx.get(guard.errors) == 0xFFFF

    sim = Simulator(guard)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=0), "width must be an integer in 1..4096, not 0"),
    (dict(height=5000), "height must be an integer in 1..4096, not 5000"),
    (dict(fill_value=256), "fill_value must be an integer in 0..255"),
    (dict(fill_value=1.5), "fill_value must be an integer"),
    (dict(lanes=0), "lanes must be an integer"),
])
def test_parameters_are_validated(kwargs, message):
    args = {"width": 4, "height": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        FrameGuard(FMT, args.pop("width"), args.pop("height"), **args)


def test_pipeline_top_is_guarded():
    """The guard sits at every pipeline's input: a frame with a short line (one pixel
    missing) is counted and repaired, and the next frame comes out exact."""
    pipeline = make_pipeline([{"op": "gaussian", "ksize": 3}], 6, 4)
    top = pipeline.hardware()
    fmt = pipeline.input_format
    rng = np.random.default_rng(12)
    frames = [rng.integers(0, 256, (4, 6, 1), dtype=np.uint8) for _ in range(3)]
    words = [pack_pixels(fmt, f) for f in frames]
    broken = words[1][:8] + words[1][9:]        # line 1 loses a pixel: its eol comes early
    stream_in = words[0] + broken + words[2]
    status = {}
    received = stream_through(top, stream_in, 3 * 24, after=lambda ctx: status.update(
        errors=ctx.get(top.errors), error=ctx.get(top.error)))
    assert status == {"errors": 1, "error": 1}
    for k in (0, 2):
        out, _, _ = unpack_pixels(fmt, received[k * 24:(k + 1) * 24], 4, 6)
        np.testing.assert_array_equal(out, pipeline.golden(frames[k]))
