"""The window generator (hdl/window.py) on its own, in Amaranth's simulator.

* :func:`border_source` against the golden border (``golden.border.border_index``) and the
  geometry checks;
* :class:`RasterCounter`: its position and every kind of registered flag match their
  definitions at every cycle, under random advances;
* :class:`ColumnScanner` with random input gaps and output stalls: every emitted column is
  "the ``Ky`` rows around ``y`` with the vertical border applied" (a numpy model written
  here), frames back to back, and the stream drains without further input;
* :class:`RowWindow` fed the scanner's schedule (with and without drains between frames):
  every window is the ``Kx`` columns around ``x`` with the horizontal border applied, and
  ``sof``/``eol`` are exact;
* the formal check that the scanner never uses a word read while its line memory wrote that
  address (what lets line memories drop Yosys's collision logic and use ``DP16KD``).

The stream contract of the scanner and the row window is proved in tests/test_formal.py;
whole filters built on them are tested in tests/test_hdl_filters.py and
tests/test_hdl_imgproc.py.
"""
import random

import numpy as np
import pytest
from amaranth.hdl import Assert, Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from rasterflow.golden.border import border_index
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.payload import lane, lanes_of, pack_pixels, transfers_per_line
from rasterflow.hdl.window import (BORDERS, MAX_KERNEL, MAX_LANES, ColumnScanner, RasterCounter,
                                   RowWindow, border_source, check_lanes, check_window_geometry,
                                   column_stream_layout, window_stream_layout)
from rasterflow.sim.amaranth_sim import stream_get
from rasterflow.sim.formal import StreamContractHarness, run_sby

from conftest import put_words, run_testbenches, stream_through

U8 = PixelFormat(1, "uint8")


# -- border_source and the geometry checks -------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
def test_border_source_is_the_golden_border(border):
    """Within the reach the geometry rule allows (``|i - clamp(i)| < n``)."""
    for n in range(1, 13):
        for i in range(-(n - 1), 2 * n - 1):
            expected = border_index(i, n, border)
            assert border_source(i, n, border) == (None if expected < 0 else expected), (i, n)


def test_border_source_rejects_unknown_border():
    with pytest.raises(ValueError, match="border must be one of"):
        border_source(-1, 4, "wrap")


@pytest.mark.parametrize("args, message", [
    ((8, 8, 2, 3, "reflect"), "kernel_width must be an odd integer in 1..15, not 2"),
    ((8, 8, 3, 17, "reflect"), "kernel_height must be an odd integer in 1..15, not 17"),
    ((8, 8, 3.0, 3, "reflect"), "kernel_width must be an odd integer"),
    ((1, 8, 3, 3, "reflect"), "width must be an integer in 2..4096 for a 3-tap window, not 1"),
    ((8, 3, 3, 7, "reflect"), "height must be an integer in 4..4096 for a 7-tap window, not 3"),
    ((4097, 8, 1, 1, "reflect"), "width must be an integer in 1..4096"),
    ((8, 8, 3, 3, "wrap"), "border must be one of constant, replicate, reflect, reflect101"),
])
def test_window_geometry_is_checked(args, message):
    with pytest.raises(ValueError, match=message):
        check_window_geometry(*args)


def test_smallest_and_largest_geometry_pass():
    check_window_geometry(MAX_KERNEL // 2 + 1, MAX_KERNEL // 2 + 1, MAX_KERNEL, MAX_KERNEL,
                          "constant")
    check_window_geometry(4096, 4096, 1, 1, "reflect101")


@pytest.mark.parametrize("lanes", [0, MAX_LANES + 1, 2.0, True, None])
def test_lanes_are_checked(lanes):
    with pytest.raises(ValueError, match=f"lanes must be an integer in 1..{MAX_LANES}"):
        check_lanes(lanes)


def test_components_check_their_parameters():
    with pytest.raises(ValueError, match="border_value must be in 0..255 for uint8 pixels"):
        ColumnScanner(U8, 8, 8, 3, 3, border="constant", border_value=256)
    with pytest.raises(ValueError, match="lanes must be an integer"):
        ColumnScanner(U8, 8, 8, 3, 3, lanes=9)
    with pytest.raises(ValueError, match="height must be an integer in 3..4096"):
        ColumnScanner(U8, 8, 2, 5, 3)
    with pytest.raises(ValueError, match="width must be an integer in 4..4096"):
        RowWindow(unsigned(8), 3, 8, 7)


# -- RasterCounter --------------------------------------------------------------------------------

class CounterHarness(wiring.Component):
    """A RasterCounter that advances while ``step`` is high, with one flag of each kind;
    ``checks`` lists ``(signal, value of the position)`` pairs for the testbench."""
    step: In(1)

    def __init__(self, width, height):
        self.width, self.height = width, height
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        width, height = self.width, self.height
        pos = RasterCounter(m, width, height, "pos")
        self.x, self.y = pos.x, pos.y

        def row_function(r):     # a value in 0..4
            return (3 * r + 1) % 5

        checks = [
            (pos.last_col, lambda x, y: x == width - 1),
            (pos.last_row, lambda x, y: y == height - 1),
            (pos.col_flag("odd", lambda c: c % 2), lambda x, y: x % 2),
            (pos.col_flag("far", lambda c: c >= 2), lambda x, y: x >= 2),
            (pos.row_value("mod5", row_function, 4), lambda x, y: row_function(y)),
            (pos.row_flag("edge_row", lambda r: r in (0, height - 1)),
             lambda x, y: y in (0, height - 1)),
        ]
        columns = sorted({0, 1, width // 2, width - 2, width - 1} & set(range(width)))
        for c, flag in pos.col_onehot("at", columns).items():
            checks.append((flag, lambda x, y, c=c: x == c))
        for name, row, col in (("start", 0, 0), ("end", height - 1, width - 1),
                               ("middle", height // 2, width // 2), ("second", 0, 1 % width),
                               ("line_start", height - 1, 0)):
            checks.append((pos.position_flag(name, row, col),
                           lambda x, y, row=row, col=col: (y, x) == (row, col)))
        self.checks = checks
        pos.advance(self.step)
        return m


@pytest.mark.parametrize("width, height", [(1, 1), (1, 4), (2, 1), (2, 3), (3, 2), (5, 4),
                                           (7, 9)])
def test_raster_counter_flags_follow_the_position(width, height):
    """Random advances over about three frames: ``x``, ``y`` and every flag, each cycle."""
    dut = CounterHarness(width, height)
    rng = random.Random(width * 100 + height)

    async def bench(ctx):
        x = y = 0
        for cycle in range(3 * width * height * 2 + 10):
            assert (ctx.get(dut.x), ctx.get(dut.y)) == (x, y), f"cycle {cycle}"
            for signal, value in dut.checks:
                assert ctx.get(signal) == int(value(x, y)), \
                    f"cycle {cycle}: {signal.name} at (y={y}, x={x})"
            step = rng.random() < 0.6
            ctx.set(dut.step, step)
            await ctx.tick()
            if step:
                x, y = (0, (y + 1) % height) if x == width - 1 else (x + 1, y)

    run_testbenches(dut, bench)


# -- ColumnScanner ---------------------------------------------------------------------------------

def random_images(fmt, frames, height, width, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(fmt.min, fmt.max + 1,
                        (frames, height, width, fmt.channels)).astype(fmt.np_dtype)


def expected_column(image, y, x, kernel_height, border, border_value):
    """The ``Ky`` pixels around row ``y`` of column ``x`` (``Ky x C``), vertical border
    applied."""
    hy = kernel_height // 2
    rows = border_index(np.arange(y - hy, y + hy + 1), image.shape[0], border)
    return [[int(v) for v in image[r, x]] if r >= 0 else [border_value] * image.shape[2]
            for r in rows]


def check_emitted_columns(dut, images, emitted):
    """Emitted column ``n`` completes output pixel ``n`` of the frames' raster order. A tick at
    position ``(r, c)`` of a frame's timeline (``r`` counted on into the next frame's) carries
    column ``c`` of row ``r - hy`` and completes output ``ceil(hx / P)`` transfers back, so
    the emitted transfer of output ``e`` is tick ``hy*G + dg + e``. The frame's last ``dg``
    emits are next-frame or drain ticks whose column no window uses: not checked."""
    frames, height, width, _ = images.shape
    lanes, ky = dut.lanes, dut.kernel_height
    groups, hy, dg = dut.groups, ky // 2, dut.drain_ticks
    assert len(emitted) == frames * groups * height
    for n, word in enumerate(emitted):
        f, e = divmod(n, groups * height)
        t = hy * groups + dg + e
        if t >= (height + hy) * groups:
            continue
        r, c = divmod(t, groups)
        y = r - hy
        for p in range(lanes):
            x = c * lanes + p
            if x >= width:
                continue   # a padding lane
            column = lane(word.column, p, lanes)
            got = [[column[j][ch] for ch in range(images.shape[3])] for j in range(ky)]
            assert got == expected_column(images[f], y, x, ky, dut.border, dut.border_value), \
                f"frame {f}, output row {y}, column {x}"


def run_scanner(kernel_height, kernel_width, width, height, border, *, lanes=1, channels=1,
                dtype="uint8", border_value=0, frames=2, stall=0.3, seed=0):
    fmt = PixelFormat(channels, dtype)
    images = random_images(fmt, frames, height, width, seed)
    dut = ColumnScanner(fmt, width, height, kernel_height, kernel_width, border=border,
                        border_value=border_value, lanes=lanes)
    layout = dut.o.payload.shape()
    words = [w for image in images for w in pack_pixels(fmt, image, lanes)]
    received = stream_through(dut, words, frames * dut.groups * height, stall=stall,
                              seed=seed, counted=lambda w: data.Const(layout, w).emit)
    decoded = [data.Const(layout, w) for w in received]
    return dut, images, decoded


SCANNER_CASES = [
    # Ky, Kx, W, H, border, lanes, channels
    (1, 1, 4, 2, "reflect101", 1, 1),
    (1, 5, 6, 1, "constant", 2, 1),
    (3, 3, 2, 2, "constant", 1, 1),          # the smallest frame for 3 x 3
    (3, 3, 7, 5, "replicate", 1, 3),
    (3, 1, 1, 3, "reflect", 1, 1),           # one transfer per line: undelayed writes
    (3, 3, 2, 4, "reflect101", 2, 1),        # the same with two lanes
    (3, 7, 13, 4, "reflect101", 4, 1),       # hx = 3 in one drain tick
    (5, 5, 6, 3, "reflect", 1, 3),           # H = Ky//2 + 1
    (5, 3, 9, 6, "replicate", 2, 1),
    (5, 9, 10, 4, "constant", 2, 1),         # two drain ticks
    (7, 7, 4, 4, "reflect101", 1, 1),
    (7, 5, 11, 8, "constant", 4, 3),
    (9, 3, 13, 5, "reflect", 8, 1),          # eight lanes, a padding lane
    (15, 15, 8, 8, "reflect", 1, 1),         # the largest window at its smallest frame
    (15, 3, 5, 9, "replicate", 2, 1),
]


@pytest.mark.parametrize("case", SCANNER_CASES, ids=lambda c: "-".join(map(str, c)))
def test_scanner_columns_match_the_vertical_border_model(case):
    ky, kx, width, height, border, lanes, channels = case
    dut, images, decoded = run_scanner(ky, kx, width, height, border, lanes=lanes,
                                       channels=channels, border_value=201, frames=3,
                                       stall=0.3, seed=sum(case[:4]) + lanes)
    check_emitted_columns(dut, images, [w for w in decoded if w.emit])


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("stall", [0.0, 0.6])
def test_scanner_every_border_and_stall_rate(border, stall):
    dut, images, decoded = run_scanner(5, 3, 6, 4, border, border_value=17, stall=stall,
                                       seed=BORDERS.index(border))
    check_emitted_columns(dut, images, [w for w in decoded if w.emit])


def test_scanner_signed_pixels_and_negative_border_value():
    dut, images, decoded = run_scanner(3, 3, 5, 4, "constant", dtype="int16",
                                       border_value=-300, seed=4)
    check_emitted_columns(dut, images, [w for w in decoded if w.emit])


@pytest.mark.parametrize("kernel, width, lanes", [(1, 3, 1), (3, 5, 1), (5, 7, 2), (7, 9, 4),
                                                  (3, 2, 2)])
def test_scanner_schedule_without_stalls(kernel, width, lanes):
    """Unstalled, back to back: the only transfers that emit nothing are the first frame's
    ``hy*G`` free-row ticks and ``dg`` ticks before its first output; after the last frame,
    its last ``hy*G + dg`` outputs leave without further input, and then nothing does."""
    height, frames = kernel // 2 + 2, 2
    images = random_images(U8, frames, height, width, kernel)
    dut = ColumnScanner(U8, width, height, kernel, kernel, lanes=lanes)
    layout = dut.o.payload.shape()
    groups, hy, dg = dut.groups, kernel // 2, dut.drain_ticks
    received, late = [], []

    async def consumer(ctx):
        emits = 0
        while emits < frames * groups * height:
            received.append(data.Const(layout, await stream_get(ctx, dut.o)))
            emits += received[-1].emit
        ctx.set(dut.o.ready, 1)
        for _ in range(4 * groups * height):
            late.append(ctx.get(dut.o.valid))
            await ctx.tick()

    async def producer(ctx):
        await put_words(ctx, dut.i, [w for im in images for w in pack_pixels(U8, im, lanes)])

    run_testbenches(dut, producer, consumer)
    assert [w.emit for w in received] == [0] * (hy * groups + dg) + [1] * (frames * groups
                                                                          * height)
    assert not any(late), "a transfer after the last output"
    check_emitted_columns(dut, images, [w for w in received if w.emit])


# -- RowWindow -------------------------------------------------------------------------------------

ELEMENT = unsigned(10)
CONSTANT = 1000     # no column value (0..999) equals it


def row_window_input(dut, images, rng, *, lead, drain_between):
    """The transfers a ColumnScanner would send: ``lead`` free-row ticks (no output), then
    each frame's columns in raster order; the first ``dg`` transfers of a frame complete the
    previous frame's last outputs unless that frame was drained (``dg`` ticks with garbage
    columns, as after the last frame), when they complete nothing."""
    lanes, height = dut.lanes, dut.height
    groups = transfers_per_line(dut.width, lanes)
    dg = -(-(dut.kernel_width // 2) // lanes)
    layout = column_stream_layout(lanes_of(ELEMENT, lanes))

    def word(values, emit):
        values = [int(v) for v in values]
        return layout.const({"column": values if lanes > 1 else values[0],
                             "emit": emit}).as_value().value

    def garbage(emit):
        return word(rng.integers(0, 1000, lanes), emit)

    words = [garbage(0) for _ in range(lead)]
    drained = True
    for f, image in enumerate(images):
        for i in range(groups * height):
            y, g = divmod(i, groups)
            words.append(word(image[y, g * lanes:(g + 1) * lanes], int(i >= dg or not drained)))
        drained = f == len(images) - 1 or rng.random() < drain_between
        if drained:
            words += [garbage(1) for _ in range(dg)]
    return words


def check_row_window(kernel_width, width, height, border, lanes, *, frames=3, stall=0.3,
                     drain_between=0.5, seed=0):
    rng = np.random.default_rng(seed)
    groups = transfers_per_line(width, lanes)
    images = rng.integers(0, 1000, (frames, height, groups * lanes))   # with padding lanes
    dut = RowWindow(ELEMENT, width, height, kernel_width, border=border,
                    constant_column=CONSTANT, lanes=lanes)
    words = row_window_input(dut, images, rng, lead=int(rng.integers(0, 4)),
                             drain_between=drain_between)
    received = stream_through(dut, words, frames * groups * height, stall=stall, seed=seed)
    layout = window_stream_layout(ELEMENT, kernel_width, lanes)
    hx = kernel_width // 2
    for n, w in enumerate(received):
        out = data.Const(layout, w)
        f, rest = divmod(n, groups * height)
        y, g = divmod(rest, groups)
        assert (out.sof, out.eol) == (int(rest == 0), int(g == groups - 1)), \
            f"markers of frame {f}, transfer ({y}, {g})"
        for p in range(lanes):
            x = g * lanes + p
            if x >= width:
                continue
            sources = border_index(np.arange(x - hx, x + hx + 1), width, border)
            expected = [int(images[f, y, s]) if s >= 0 else CONSTANT for s in sources]
            window = lane(out.window, p, lanes)
            assert [window[dx] for dx in range(kernel_width)] == expected, \
                f"frame {f}, pixel ({y}, {x})"


ROW_WINDOW_CASES = [
    # Kx, W, H, border, lanes
    (1, 1, 3, "reflect101", 1),
    (1, 5, 2, "constant", 2),
    (3, 2, 2, "constant", 1),
    (3, 7, 3, "replicate", 1),
    (3, 5, 2, "reflect", 2),
    (5, 3, 2, "reflect101", 1),
    (5, 9, 2, "constant", 4),
    (7, 4, 2, "reflect", 1),
    (7, 13, 2, "replicate", 2),
    (9, 11, 2, "reflect101", 8),
    (15, 8, 2, "reflect", 1),
    (15, 17, 2, "constant", 3),
]


@pytest.mark.parametrize("case", ROW_WINDOW_CASES, ids=lambda c: "-".join(map(str, c)))
def test_row_window_matches_the_horizontal_border_model(case):
    kx, width, height, border, lanes = case
    check_row_window(kx, width, height, border, lanes, seed=sum(case[:3]) + lanes)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("stall, drain_between", [(0.0, 0.0), (0.6, 1.0)])
def test_row_window_every_border_lockstep_and_drained(border, stall, drain_between):
    """Frames all lockstep (the next frame completes the last outputs) or all drained."""
    check_row_window(5, 6, 3, border, 2, stall=stall, drain_between=drain_between,
                     seed=BORDERS.index(border))


# -- the line memories are never read where they are written -------------------------------------

class NoCollisionHarness(StreamContractHarness):
    """The stream-rules harness (free input holding its word until taken, free output
    ready), plus: the scanner never uses a word read while its line memory wrote the same
    address."""

    def __init__(self, scanner):
        super().__init__(scanner, accept_cycles=1, rules_only=True)

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += Assert(~self.dut.line_collision, "used a line word read during its write")
        return m


@pytest.mark.parametrize("width, kernel, lanes", [(3, 3, 1), (3, 5, 1), (4, 5, 2)])
def test_scanner_never_reads_the_address_it_writes(width, kernel, lanes, tmp_path):
    """BMC over two back-to-back frames, for every input and stall pattern (3 rows, 2 or 3
    transfers per line): no word the border mux takes was read while
    its memory wrote that address, which is what lets the memories drop Yosys's collision
    logic and use DP16KD on ECP5."""
    scanner = ColumnScanner(U8, width, 3, kernel, kernel, lanes=lanes, collision_monitor=True)
    groups = -(-width // lanes)
    result = run_sby(NoCollisionHarness(scanner), mode="bmc", depth=2 * 3 * groups + 4,
                     workdir=tmp_path)
    assert result.passed, f"{result.status}: {result.failed}\n{result.log_tail}"


def test_one_transfer_lines_do_collide_and_keep_yosys_bypass(tmp_path):
    """With one transfer per line the next tick reads the address just written, so the
    scanner writes undelayed and leaves the memory to Yosys's collision logic; the check
    above finds that the oldest line's word is read as it is overwritten, and used (so the
    check is not vacuous)."""
    scanner = ColumnScanner(U8, 2, 3, 3, 3, lanes=2, collision_monitor=True)
    result = run_sby(NoCollisionHarness(scanner), mode="bmc", depth=12, workdir=tmp_path)
    assert result.status == "FAIL", result.log_tail
