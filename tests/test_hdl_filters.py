"""filter2d / sepfilter2d hardware vs the golden model in Amaranth's simulator.

Random kernels, frame sizes (down to the minimum K//2+1), border modes, stall patterns and
back-to-back frames, plus exact cycle counts.
"""
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rasterflow.golden import filters as golden
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.filters import Filter2D, SepFilter2D
from rasterflow.hdl.payload import pack_pixels, transfers_per_line, unpack_pixels
from rasterflow.hdl.window import BORDERS
from rasterflow.sim.amaranth_sim import run_stream

from conftest import get_words, put_words, run_testbenches

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_frames(dut, fmt, out_fmt, frames, *, stall, seed, lanes=1):
    height, width = frames[0].shape[:2]
    per_frame = height * transfers_per_line(width, lanes)
    words = [w for f in frames for w in pack_pixels(fmt, f, lanes)]
    run = run_stream(dut, words, len(frames) * per_frame, stall=stall, seed=seed)
    outputs = []
    for k in range(len(frames)):
        chunk = run.out_words[k * per_frame:(k + 1) * per_frame]
        out, sof, eol = unpack_pixels(out_fmt, chunk, height, width, lanes)
        assert sof.sum() == 1 and sof[0, 0], "sof must mark exactly the first transfer"
        assert eol[:, -1].all() and eol.sum() == height, "eol must mark each line's last transfer"
        outputs.append(out)
    return outputs, run


@st.composite
def filter_cases(draw, separable):
    ky = draw(st.sampled_from([1, 3, 5, 7]))
    kx = draw(st.sampled_from([1, 3, 5, 7]))
    width = draw(st.integers(kx // 2 + 1, 11))
    height = draw(st.integers(ky // 2 + 1, 8))
    channels = draw(st.sampled_from([1, 1, 3]))
    taps = st.integers(-8, 8)
    if separable:
        kernel = (draw(st.lists(taps, min_size=kx, max_size=kx)),
                  draw(st.lists(taps, min_size=ky, max_size=ky)))
    else:
        kernel = draw(st.lists(st.lists(taps, min_size=kx, max_size=kx), min_size=ky,
                               max_size=ky))
    return dict(
        width=width, height=height, channels=channels, kernel=kernel,
        shift=draw(st.integers(0, 6)),
        rounding=draw(st.sampled_from(["half_even", "half_up"])),
        border=draw(st.sampled_from(BORDERS)),
        border_value=draw(st.integers(0, 255)),
        output=draw(st.sampled_from(["uint8", "int16"])),
        frames=draw(st.integers(1, 3)),
        lanes=draw(st.sampled_from([1, 1, 2, 4, 8])),
        stall=draw(st.sampled_from([0.0, 0.2, 0.5])),
        seed=draw(st.integers(0, 2**16)),
    )


def check_case(case, separable):
    fmt = PixelFormat(case["channels"], "uint8")
    out_fmt = PixelFormat(case["channels"], case["output"])
    rng = np.random.default_rng(case["seed"])
    frames = [rng.integers(0, 256, (case["height"], case["width"], case["channels"]),
                           dtype=np.uint8) for _ in range(case["frames"])]
    options = dict(shift=case["shift"], rounding=case["rounding"], border=case["border"],
                   border_value=case["border_value"])
    lanes = case.get("lanes", 1)
    if separable:
        kx, ky = case["kernel"]
        dut = SepFilter2D(fmt, case["width"], case["height"], kx, ky, output=out_fmt,
                          lanes=lanes, **options)
        expect = [golden.sepfilter2d(f, kx, ky, output=case["output"], **options) for f in frames]
    else:
        dut = Filter2D(fmt, case["width"], case["height"], case["kernel"], output=out_fmt,
                       lanes=lanes, **options)
        expect = [golden.filter2d(f, case["kernel"], output=case["output"], **options)
                  for f in frames]
    outputs, run = run_frames(dut, fmt, out_fmt, frames, stall=case["stall"], seed=case["seed"],
                              lanes=lanes)
    for k, (out, exp) in enumerate(zip(outputs, expect)):
        exp = exp.reshape(out.shape)
        mismatches = np.argwhere(out != exp)
        assert len(mismatches) == 0, f"frame {k}: {len(mismatches)} mismatches, first at " \
                                     f"{mismatches[0].tolist()}"
    if case["stall"] == 0.0:
        transfers = case["frames"] * transfers_per_line(case["width"], lanes) * case["height"]
        assert run.cycles == transfers + dut.schedule_delay + dut.latency


@SETTINGS
@given(filter_cases(separable=False))
def test_filter2d_matches_golden(case):
    check_case(case, separable=False)


@SETTINGS
@given(filter_cases(separable=True))
def test_sepfilter2d_matches_golden(case):
    check_case(case, separable=True)


@pytest.mark.parametrize("border", BORDERS)
def test_smallest_frame_every_border(border):
    """W = H = K//2 + 1: every output pixel is a border pixel on two sides."""
    case = dict(width=3, height=3, channels=1, kernel=[[1, 2, 3, 4, 5]] * 5, shift=3,
                rounding="half_even", border=border, border_value=200, output="int16",
                frames=3, stall=0.3, seed=7)
    check_case(case, separable=False)


def test_cycle_count_back_to_back_is_exact():
    """F frames with no stalls take exactly F*W*H + L cycles, L = hy*W + hx + pipeline."""
    fmt = PixelFormat(1, "uint8")
    width, height = 16, 9
    kernel = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    frames = [np.full((height, width, 1), k * 40, np.uint8) for k in range(4)]
    dut = Filter2D(fmt, width, height, kernel, shift=4)
    # scanner 3 + skid buffer 1 + row window 1 + skid buffer 1 + products 1
    # + 4 adder levels (9 taps) + rounding 1 = 12
    assert dut.latency == 12
    assert dut.schedule_delay == 1 * width + 1
    _, run = run_frames(dut, fmt, fmt, frames, stall=0.0, seed=0)
    assert run.cycles == 4 * width * height + width + 1 + 12
    assert run.first_output_cycle == width + 1 + 12


def test_output_stall_only_and_input_gaps_only_agree():
    """Gaps on one side only: same values, and never a protocol violation."""
    fmt = PixelFormat(1, "uint8")
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (6, 7, 1), dtype=np.uint8) for _ in range(2)]
    kernel = [[1, -2, 1], [0, 5, 0], [1, -2, 1]]
    expect = [golden.filter2d(f, kernel, shift=1, output="int16") for f in frames]
    for stall in (0.0, 0.6):
        dut = Filter2D(fmt, 7, 6, kernel, shift=1, output=PixelFormat(1, "int16"))
        outputs, _ = run_frames(dut, fmt, PixelFormat(1, "int16"), frames, stall=stall, seed=11)
        for out, exp in zip(outputs, expect):
            np.testing.assert_array_equal(out, exp.reshape(out.shape))


def test_int16_input_chain():
    """A signed 16-bit input (e.g. a previous Sobel stage) keeps exact bit growth."""
    fmt = PixelFormat(1, "int16")
    rng = np.random.default_rng(5)
    frame = rng.integers(-32768, 32768, (5, 6, 1)).astype(np.int16)
    frame[0, 0, 0], frame[1, 1, 0] = -32768, 32767
    kernel = [[255, -255, 255], [-255, 255, -255], [255, -255, 255]]
    dut = Filter2D(fmt, 6, 5, kernel, shift=0, border="constant", border_value=-32768,
                   output=PixelFormat(1, "int32"))
    outputs, _ = run_frames(dut, fmt, PixelFormat(1, "int32"), [frame], stall=0.2, seed=1)
    expect = golden.filter2d(frame, kernel, border="constant", border_value=-32768,
                             output="int32")
    np.testing.assert_array_equal(outputs[0], expect.reshape(outputs[0].shape))


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel=[[1, 2]]), "width must be odd"),
    (dict(kernel=[[1]] * 17), "height must be odd and in 1..15"),
    (dict(kernel=[[1, 2, 1], [1, 2]]), "same length"),
    (dict(kernel=[[1.5]]), "integers"),
    (dict(kernel=[[1]], shift=40), "shift must be an integer in 0..32"),
    (dict(kernel=[[1]], rounding="nearest"), "rounding must be one of"),
    (dict(kernel=[[1]], border="wrap"), "border must be one of"),
    (dict(kernel=[[1]], border_value=300), "border_value must be in 0..255"),
    (dict(kernel=[[1, 1, 1]] * 3, width=1), "width must be an integer in 2..4096"),
])
def test_parameters_are_validated(kwargs, message):
    args = {"width": 8, "height": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        Filter2D(PixelFormat(1, "uint8"), args.pop("width"), args.pop("height"),
                 args.pop("kernel"), **args)


def test_frame_drains_without_next_frame_then_resumes():
    """Frame A's last lines leave with no further input; frame B, sent only after all of A has
    come out, is still exact (the drain left the line buffers and row window consistent)."""
    fmt = PixelFormat(1, "uint8")
    width, height = 6, 5
    kernel = [[1, 2, 3, 2, 1]] * 5
    rng = np.random.default_rng(9)
    frames = [rng.integers(0, 256, (height, width, 1), dtype=np.uint8) for _ in range(2)]
    dut = Filter2D(fmt, width, height, kernel, shift=3, border="reflect", output=fmt)
    received = []

    async def producer(ctx):
        for index, frame in enumerate(frames):
            if index:
                for _ in range(4 * width * height):
                    if len(received) == width * height:
                        break
                    await ctx.tick()
                assert len(received) == width * height, \
                    f"frame A did not drain: {len(received)} of {width * height} outputs"
            await put_words(ctx, dut.i, pack_pixels(fmt, frame))

    async def consumer(ctx):
        await get_words(ctx, dut.o, 2 * width * height, rng=random.Random(2), stall=0.3,
                        into=received)

    run_testbenches(dut, producer, consumer)
    words = received
    for k, frame in enumerate(frames):
        out, _, _ = unpack_pixels(fmt, words[k * width * height:(k + 1) * width * height],
                                  height, width)
        expect = golden.filter2d(frame, kernel, shift=3, border="reflect")
        np.testing.assert_array_equal(out, expect.reshape(out.shape))


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_pixels_per_clock_cycle_count(lanes):
    """P pixels per transfer: F frames of W x H (W a multiple of P) take F*W*H/P + L cycles,
    and L's schedule part shrinks to hy*W/P + ceil(hx/P) transfers."""
    fmt = PixelFormat(1, "uint8")
    width, height = 16, 6
    kernel = [[1, 2, 3, 2, 1]] * 3
    rng = np.random.default_rng(lanes)
    frames = [rng.integers(0, 256, (height, width, 1), dtype=np.uint8) for _ in range(3)]
    dut = Filter2D(fmt, width, height, kernel, shift=4, lanes=lanes)
    assert dut.schedule_delay == width // lanes + -(-2 // lanes)
    outputs, run = run_frames(dut, fmt, fmt, frames, stall=0.0, seed=0, lanes=lanes)
    assert run.cycles == 3 * width * height // lanes + dut.schedule_delay + dut.latency
    for out, frame in zip(outputs, frames):
        np.testing.assert_array_equal(out, golden.filter2d(frame, kernel, shift=4))
