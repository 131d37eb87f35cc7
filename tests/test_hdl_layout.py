"""Layout stages (``pad``, ``resize_nearest``) in Amaranth's simulator against their golden
layers (which equal LiteRT: tests/test_golden_elementwise.py).

Whole pipelines run several back-to-back frames with random valid gaps and ready stalls;
the bare components run through the stream-rule checker of ``run_stream`` (output valid and
payload hold until taken). Exact cycle counts are asserted where the docstrings claim them:
unstalled, a padding stage or an upscale as the only bottleneck takes
``F * Wo * Ho + latency_cycles - schedule_delay`` cycles.
"""
import numpy as np
import pytest

from rasterflow.errors import SpecError
from rasterflow.golden.elementwise import Pad as GoldenPad
from rasterflow.golden.elementwise import ResizeNearestNeighbor
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.layout import Pad, ResizeNearest
from rasterflow.hdl.payload import pack_pixels, unpack_pixels
from rasterflow.sim.amaranth_sim import run_stream
from rasterflow.stages_cnn import DepthwiseConv2DStage, MaxPoolStage, stage_from_layer
from rasterflow.stages_layout import PadStage, ResizeNearestStage

from conftest import make_pipeline, run_layers, run_testbenches

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def random_batch(rng, height, width, channels, frames=2):
    return rng.integers(-128, 128, (frames, height, width, channels)).astype(np.int8)


def run_pipeline(stages, batch, *, stall, seed=0, frames=2):
    """``batch`` ``frames`` times back to back through the stages; every output frame must
    equal the golden layers applied in turn. Returns the pipeline and the result."""
    _, height, width, channels = batch.shape
    pipeline = make_pipeline(stages, width, height, channels, "int8")
    return pipeline, run_layers(pipeline, batch, stall=stall, seed=seed, frames=frames)


def bottleneck_cycles(pipeline, frames):
    """``F * Wo * Ho + L - schedule_delay``: a single rate-changing stage that emits one
    pixel per cycle from its first output to its last."""
    bound = pipeline.bound[0]
    return (frames * bound.out_width * bound.out_height + pipeline.latency_cycles
            - bound.stage.timing(bound).schedule_delay)


def last_output_cycle(dut, words, count):
    """Feed ``words`` with ``valid`` high from cycle 0 into ``dut.i``, ``dut.o`` always ready;
    the cycle of the ``count``-th output transfer."""
    last = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        sent = received = 0
        for cycle in range(20 * (len(words) + count)):
            ctx.set(dut.i.payload.as_value(), words[min(sent, len(words) - 1)])
            ctx.set(dut.i.valid, sent < len(words))
            sent += sent < len(words) and ctx.get(dut.i.ready)
            received += ctx.get(dut.o.valid)
            if received == count:
                last["cycle"] = cycle
                return
            await ctx.tick()

    run_testbenches(dut, bench)
    return last["cycle"]


def through_component(dut, batch, out_fmt, out_height, out_width, *, stall, seed):
    """The bare component's output frames for ``batch``, with its stream rules and frame
    markers checked."""
    words = [w for frame in batch for w in pack_pixels(dut.fmt, frame)]
    per_frame = out_height * out_width
    run = run_stream(dut, words, per_frame * len(batch), stall=stall, seed=seed)
    frames = []
    for k in range(len(batch)):
        frame, sof, eol = unpack_pixels(out_fmt, run.out_words[k * per_frame:(k + 1) * per_frame],
                                        out_height, out_width)
        assert sof[0, 0] and np.count_nonzero(sof) == 1
        assert eol[:, -1].all() and np.count_nonzero(eol) == out_height
        frames.append(frame)
    return frames


# -- pad ----------------------------------------------------------------------------------------

PAD_CASES = [
    # spec parameters, input H, W, C
    (dict(top=1, bottom=1, left=1, right=1, value=-128), 5, 6, 3),
    (dict(top=2, bottom=0, left=0, right=3, value=17), 4, 3, 2),
    (dict(top=0, bottom=3, left=2, right=0, value=0), 3, 5, 1),
    (dict(channels_before=2, channels_after=1, value=-5), 4, 4, 3),
    (dict(top=1, right=1, channels_after=3, value=99), 3, 4, 1),
    (dict(), 3, 4, 2),                                           # no padding at all
    (dict(top=2, bottom=1, left=1, right=2, value=7), 1, 1, 1),  # a one-pixel frame
]


@pytest.mark.parametrize("params,height,width,channels", PAD_CASES,
                         ids=[str(k) for k in range(len(PAD_CASES))])
def test_pad_matches_golden_under_stalls(params, height, width, channels):
    rng = np.random.default_rng(height * 10 + width)
    batch = random_batch(rng, height, width, channels)
    run_pipeline([PadStage(**params)], batch, stall=0.35, seed=width)


@pytest.mark.parametrize("params,height,width,channels", PAD_CASES[:5],
                         ids=[str(k) for k in range(5)])
def test_pad_exact_cycles(params, height, width, channels):
    rng = np.random.default_rng(channels)
    batch = random_batch(rng, height, width, channels)
    pipeline, result = run_pipeline([PadStage(**params)], batch, stall=0.0)
    assert result.cycles == bottleneck_cycles(pipeline, 4)


def test_pad_component_keeps_the_stream_rules():
    fmt = PixelFormat(2, "int8")
    dut = Pad(fmt, 4, 3, top=1, bottom=2, left=2, right=1, channels_after=1, value=-3)
    rng = np.random.default_rng(5)
    batch = random_batch(rng, 3, 4, 2, frames=3)
    golden = GoldenPad(((1, 2), (2, 1), (0, 1)), -3)
    frames = through_component(dut, batch, dut.out_fmt, dut.out_height, dut.out_width,
                               stall=0.5, seed=3)
    for frame, source in zip(frames, batch):
        np.testing.assert_array_equal(frame, golden(source))


def test_pad_from_nhwc_layer():
    layer = GoldenPad(((0, 0), (1, 2), (3, 0), (0, 2)), -20)
    stage = stage_from_layer(layer)
    assert (stage.top, stage.bottom, stage.left, stage.right) == (1, 2, 3, 0)
    assert (stage.channels_before, stage.channels_after, stage.value) == (0, 2, -20)
    assert PadStage.output_size(layer, 5, 4) == (8, 7)
    frame = random_batch(np.random.default_rng(0), 4, 5, 3, frames=1)
    np.testing.assert_array_equal(stage.layer(frame[0]), layer(frame)[0])
    assert stage_from_layer(GoldenPad(((1, 0), (0, 1), (0, 0)), 4)).top == 1   # HWC paddings


def test_pad_rejects_what_it_cannot_do():
    with pytest.raises(SpecError, match="paddings: pads the batch axis by"):
        stage_from_layer(GoldenPad(((1, 0), (0, 0), (0, 0), (0, 0)), 0))
    with pytest.raises(SpecError, match="paddings: has 2 .* pairs"):
        stage_from_layer(GoldenPad(((1, 0), (0, 0)), 0))
    with pytest.raises(SpecError, match=r"value: must be an integer in -128..127, not 200"):
        PadStage(value=200)
    with pytest.raises(SpecError, match=r"left: must be an integer in 0..4096, not -1"):
        PadStage(left=-1)
    with pytest.raises(SpecError, match="right: makes the output width 4097, more than 4096"):
        make_pipeline([{"op": "pad", "left": 4000, "right": 1}], 96, 4, 1, "int8")
    with pytest.raises(SpecError, match="channels_after: makes the output channels 1025"):
        make_pipeline([{"op": "pad", "channels_after": 1024}], 4, 4, 1, "int8")
    with pytest.raises(SpecError, match="op: pad takes int8 pixels"):
        make_pipeline([{"op": "pad", "top": 1}], 4, 4, 1, "uint8")
    with pytest.raises(ValueError, match="value must be an integer in 0..255, not -1"):
        Pad(PixelFormat(1, "uint8"), 4, 4, value=-1)
    with pytest.raises(ValueError, match="bottom must be an integer in 0..4096"):
        Pad(PixelFormat(1, "int8"), 4, 4, bottom=2.5)


# -- resize_nearest -----------------------------------------------------------------------------

RESIZE_CASES = [
    # out W, H, align_corners, half_pixel_centers, input H, W, C
    (10, 8, False, False, 4, 5, 3),      # x2 (YOLOv3-tiny's upsample)
    (9, 6, False, False, 2, 3, 2),       # x3
    (7, 11, False, True, 4, 5, 1),       # non-integer upscale, half-pixel centres
    (9, 7, True, False, 3, 4, 2),        # align corners
    (3, 2, False, False, 5, 7, 2),       # downscale
    (4, 2, False, True, 3, 6, 1),        # downscale, half-pixel centres
    (3, 9, True, False, 3, 6, 1),        # down in x, up in y: replays pass the dropped columns
    (3, 3, False, False, 1, 1, 2),       # one pixel everywhere
    (1, 1, True, False, 3, 4, 2),        # one output pixel
]


def resize_stage(out_width, out_height, align_corners, half_pixel_centers):
    return ResizeNearestStage(out_width=out_width, out_height=out_height,
                              align_corners=align_corners,
                              half_pixel_centers=half_pixel_centers)


@pytest.mark.parametrize("case", RESIZE_CASES, ids=[str(k) for k in range(len(RESIZE_CASES))])
def test_resize_matches_golden_under_stalls(case):
    *params, height, width, channels = case
    rng = np.random.default_rng(sum(case[:2]) + height)
    batch = random_batch(rng, height, width, channels)
    run_pipeline([resize_stage(*params)], batch, stall=0.35, seed=height)


@pytest.mark.parametrize("case", RESIZE_CASES[:4], ids=[str(k) for k in range(4)])
def test_resize_upscale_exact_cycles(case):
    *params, height, width, channels = case
    batch = random_batch(np.random.default_rng(1), height, width, channels)
    pipeline, result = run_pipeline([resize_stage(*params)], batch, stall=0.0)
    assert result.cycles == bottleneck_cycles(pipeline, 4)


def test_resize_x2_of_a_yolo_sized_map():
    batch = random_batch(np.random.default_rng(13), 13, 13, 4, frames=1)
    pipeline, result = run_pipeline([resize_stage(26, 26, False, False)], batch, stall=0.0)
    part = pipeline.hardware().parts[0]
    assert (part.row_uses, part.col_uses) == ([2] * 13, [2] * 13)
    assert (part.latency, part.schedule_delay) == (3, 26)
    assert result.cycles == bottleneck_cycles(pipeline, 2)


def test_resize_component_keeps_the_stream_rules():
    fmt = PixelFormat(3, "int8")
    rows, cols = [0, 0, 1, 1, 1, 3], [0, 2, 2, 3, 3, 3, 4]   # replays, drops, repeats
    dut = ResizeNearest(fmt, 5, 4, rows, cols)
    batch = random_batch(np.random.default_rng(2), 4, 5, 3, frames=3)
    frames = through_component(dut, batch, fmt, len(rows), len(cols), stall=0.5, seed=9)
    for frame, source in zip(frames, batch):
        np.testing.assert_array_equal(frame, source[rows][:, cols])


def resize_steps(height, width, rows, cols):
    """Steps (cycles) one frame takes, as ResizeNearest's docstring counts them: a live or
    dropping pass over every column (``max(u_c, 1)`` steps each, ``W`` for a dropped row),
    then ``n_r - 1`` replays over columns ``cols[0]..cols[-1]``."""
    row_uses = np.bincount(rows, minlength=height)
    col_steps = np.maximum(np.bincount(cols, minlength=width), 1)
    replay = int(col_steps[cols[0]:cols[-1] + 1].sum())
    return sum(int(col_steps.sum()) + (n - 1) * replay if n else width for n in row_uses)


@pytest.mark.parametrize("height,width,rows,cols", [
    (4, 5, [0, 0, 1, 1, 1, 3], [0, 2, 2, 3, 3, 3, 4]),
    (5, 6, [1, 1, 4, 4], [2, 3, 3]),            # replays start at cols[0] = 2
    (6, 3, [0, 2, 5], [0, 0, 1, 2, 2]),          # dropped rows: one cycle per pixel
    (3, 3, [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]),
])
def test_resize_makes_one_step_per_cycle(height, width, rows, cols):
    # (Each frame's last step is an output: its last row is read, ending at column W-1 or
    # replayed.)
    dut = ResizeNearest(PixelFormat(2, "int8"), width, height, rows, cols)
    batch = random_batch(np.random.default_rng(0), height, width, 2, frames=3)
    words = [w for frame in batch for w in pack_pixels(dut.fmt, frame)]
    assert last_output_cycle(dut, words, 3 * len(rows) * len(cols)) == \
        3 * resize_steps(height, width, rows, cols) - 1 + dut.latency


def test_pad_makes_one_output_per_cycle():
    dut = Pad(PixelFormat(1, "int8"), 3, 2, top=2, bottom=1, left=1, right=2, value=1)
    words = [w for frame in random_batch(np.random.default_rng(0), 2, 3, 1, frames=3)
             for w in pack_pixels(dut.fmt, frame)]
    assert last_output_cycle(dut, words, 3 * 6 * 5) == 3 * 6 * 5 - 1 + dut.latency


def test_resize_without_replays_has_no_line_memory_latency():
    part = ResizeNearest(PixelFormat(1, "int8"), 6, 6, [1, 3, 5], [0, 2, 4])
    assert (part.replays, part.latency, part.schedule_delay) == (False, 1, 0)
    assert ResizeNearest.timing(6, 6, [0, 0, 5, 5], [0, 1]).schedule_delay == 1 * 2


def test_resize_from_layer_and_errors():
    layer = ResizeNearestNeighbor(26, 24, align_corners=True)
    stage = stage_from_layer(layer)
    assert stage.to_table() == {"op": "resize_nearest", "out_width": 24, "out_height": 26,
                                "align_corners": True, "half_pixel_centers": False}
    assert ResizeNearestStage.output_size(layer, 13, 13) == (24, 26)
    with pytest.raises(SpecError, match="out_height: is required"):
        make_pipeline([{"op": "resize_nearest", "out_width": 4}], 4, 4, 1, "int8")
    with pytest.raises(SpecError, match="align_corners: must be true or false"):
        make_pipeline([{"op": "resize_nearest", "out_width": 4, "out_height": 4,
                        "align_corners": 1}], 4, 4, 1, "int8")
    with pytest.raises(SpecError, match="out_width: must be an integer in 1..4096, not 0"):
        resize_stage(0, 4, False, False)
    fmt = PixelFormat(1, "int8")
    with pytest.raises(ValueError, match="cols must be non-decreasing"):
        ResizeNearest(fmt, 4, 4, [0, 1], [1, 0])
    with pytest.raises(ValueError, match=r"rows must be in 0..3, not \[0, 4\]"):
        ResizeNearest(fmt, 4, 4, [0, 4], [0])
    with pytest.raises(ValueError, match="cols must be a list of 1..4096 integers"):
        ResizeNearest(fmt, 4, 4, [0], [])


# -- in chains ----------------------------------------------------------------------------------

def test_pad_then_valid_conv_and_resize_then_pool():
    """TFLite's explicit PAD before a VALID convolution, and an upsample feeding a pool:
    rate-changing stages next to windowed ones, under stalls."""
    rng = np.random.default_rng(4)
    conv = DepthwiseConv2DStage(weights=rng.integers(-100, 100, (3, 3, 2)).astype(np.int8),
                                bias=np.array([5, -9], np.int32), m0=[1 << 30] * 2,
                                shift=[-6] * 2, in_zp=-3, out_zp=4, stride=2, padding="valid")
    batch = random_batch(rng, 5, 6, 2)
    run_pipeline([PadStage(top=1, bottom=1, left=1, right=1, value=-3), conv], batch,
                 stall=0.3, seed=1)
    run_pipeline([resize_stage(12, 10, False, False), MaxPoolStage()], batch, stall=0.3,
                 seed=2)
