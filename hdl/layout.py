"""Layout stages that change a frame's geometry: constant padding and nearest-neighbour resize.

Both emit one output pixel per cycle and stall their input while they emit pixels that take
no input (padding, repeated rows), so they change the pixel rate: their
``schedule_delay`` is what follows a frame's last input transfer (the padding after it, the
replays of the last row), and an unstalled pipeline in which such a stage is the only
bottleneck takes ``F * Wo * Ho + L - schedule_delay`` cycles for ``F`` frames of
``Wo x Ho`` outputs (``L`` = ``PipelineTop.latency_cycles``; asserted in
tests/test_hdl_layout.py). Neither looks at the input's ``sof``/``eol``: the frame guard in
front of a pipeline makes every frame whole, so counters know where each pixel is.
"""
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .bram import line_memory
from .payload import pixel_layout, pixel_stream_signature
from .stall import StallPipeline, payload_register
from .timing import Sampling, StageTiming
from .window import MAX_DIMENSION

__all__ = ["Pad", "ResizeNearest"]

#: Register stages of a :func:`~rasterflow.hdl.bram.line_memory` read (its read register and
#: its output register).
LINE_READ_STAGES = 2


def _check_count(name, value, lo, hi):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or \
            not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    return int(value)


class Pad(wiring.Component):
    """Constant padding: ``top``/``bottom`` rows and ``left``/``right`` columns around each
    frame, and ``channels_before``/``channels_after`` channels around each pixel, all of
    ``value`` (TFLite PAD/PADV2 on a frame).

    Parameters
    ----------
    fmt : PixelFormat
        The input pixels (``C`` channels); ``value`` must fit its type.
    width, height : int
        The input frame size ``W x H``.
    top, bottom, left, right : int
        Rows above and below, columns left and right of the frame (each ``0..4096``).
    channels_before, channels_after : int
        Constant channels before and after the input's ``C`` (each ``0..4096``).
    value : int
        The pad constant, in every padded channel.

    Members: ``i`` pixel stream of ``fmt``; ``o`` pixel stream of ``channels_before + C +
    channels_after`` channels of ``fmt``'s type, frames of ``Wo x Ho`` =
    ``(left + W + right) x (top + H + bottom)``.

    Latency, throughput, memory
    ---------------------------
    ``latency`` 1 (an input pixel transferred at cycle ``t`` leaves at ``t + 1``): one output
    pixel per cycle, the input stalled while padding leaves. A frame's output waits for its
    first input pixel (no frame starts before its input does); the ``right + bottom * Wo``
    padding pixels after its last input are ``schedule_delay``. Unstalled and the only
    bottleneck, ``F`` frames take ``F * Wo * Ho + L - schedule_delay`` cycles.
    Memory: the output register and two position counters; no line memory.
    """
    latency = 1

    def __init__(self, fmt: PixelFormat, width, height, *, top=0, bottom=0, left=0, right=0,
                 channels_before=0, channels_after=0, value=0):
        self.width = _check_count("width", width, 1, MAX_DIMENSION)
        self.height = _check_count("height", height, 1, MAX_DIMENSION)
        amounts = dict(top=top, bottom=bottom, left=left, right=right,
                       channels_before=channels_before, channels_after=channels_after)
        for name, amount in amounts.items():
            setattr(self, name, _check_count(name, amount, 0, MAX_DIMENSION))
        self.value = _check_count("value", value, fmt.min, fmt.max)
        self.fmt = fmt
        self.out_fmt = PixelFormat(channels_before + fmt.channels + channels_after, fmt.dtype)
        self.out_width = left + width + right
        self.out_height = top + height + bottom
        self.schedule_delay = self.timing(width, height, top=top, bottom=bottom, left=left,
                                          right=right).schedule_delay
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(self.out_fmt))})

    @staticmethod
    def timing(width, height, *, top, bottom, left, right):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of a ``Pad`` of ``width x
        height`` frames (the channel padding does not matter). Its sampling: the padding
        above the frame and left of a row comes before that row's first input pixel, the
        padding right of a row and below the frame after the last one."""
        rows = (-1,) * top + tuple(range(height)) + (height - 1,) * bottom
        cols = (-1,) * left + tuple(range(width)) + (width - 1,) * right
        return StageTiming(Pad.latency, right + bottom * (left + width + right),
                           sampling=Sampling(rows, cols))

    def elaborate(self, platform):
        m = Module()
        x = Signal(range(self.out_width))
        y = Signal(range(self.out_height))
        inside, go, en = Signal(), Signal(), Signal()
        m.d.comb += [
            inside.eq((x >= self.left) & (x < self.left + self.width) &
                      (y >= self.top) & (y < self.top + self.height)),
            # The first pixel of a frame, padding or not, waits for the frame's first input.
            go.eq(Mux(inside | ((x == 0) & (y == 0)), self.i.valid, 1)),
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en & inside),
        ]
        out = payload_register(self.o.payload.shape(), name="out")
        m.d.comb += self.o.payload.eq(out)
        with m.If(en):
            m.d.sync += self.o.valid.eq(go)
        with m.If(en & go):
            m.d.sync += [out.data[ch].eq(v) for ch, v in enumerate(self._pixel(inside))]
            m.d.sync += [out.sof.eq((x == 0) & (y == 0)), out.eol.eq(x == self.out_width - 1)]
            self._advance(m, x, y)
        return m

    def _pixel(self, inside):
        """The output channels: the input's inside the frame, else the constant."""
        padded = [Const(self.value)] * self.channels_before
        return (padded + [Mux(inside, ch, self.value) for ch in self.i.payload.data] +
                [Const(self.value)] * self.channels_after)

    def _advance(self, m, x, y):
        with m.If(x == self.out_width - 1):
            m.d.sync += [x.eq(0), y.eq(Mux(y == self.out_height - 1, 0, y + 1))]
        with m.Else():
            m.d.sync += x.eq(x + 1)


def _source_counts(table, size, what):
    """How many outputs read each of the ``size`` sources, after checking that ``table``
    (the source of each output) is non-decreasing and in ``0..size-1``."""
    table = np.asarray(table)
    if table.ndim != 1 or not 1 <= len(table) <= MAX_DIMENSION or \
            table.dtype.kind not in "iu":
        raise ValueError(f"{what} must be a list of 1..{MAX_DIMENSION} integers, not {table!r}")
    if table.min() < 0 or table.max() >= size:
        raise ValueError(f"{what} must be in 0..{size - 1}, not {table.tolist()}")
    if np.any(np.diff(table) < 0):
        raise ValueError(f"{what} must be non-decreasing, not {table.tolist()}")
    return np.bincount(table, minlength=size).tolist()


def _lookup(table, index):
    """``table[index]`` for a table fixed at elaboration: a constant when every entry is the
    same (an integer scale factor), else a read-only multiplexer over the entries."""
    shape = range(max(table) + 1)
    if len(set(table)) == 1:
        return Const(table[0], shape)
    return Array(Const(v, shape) for v in table)[index]


class ResizeNearest(wiring.Component):
    """Nearest-neighbour resampling by tables: output pixel ``(y, x)`` is input pixel
    ``(rows[y], cols[x])``, for any non-decreasing ``rows`` and ``cols`` (TFLite's
    RESIZE_NEAREST_NEIGHBOR mapping is one, up- or downscaling).

    Parameters
    ----------
    fmt : PixelFormat
        The pixels (input and output).
    width, height : int
        The input frame size ``W x H``.
    rows, cols : sequence of int
        The source row of each of the ``Ho`` output rows (in ``0..H-1``) and the source
        column of each of the ``Wo`` output columns (in ``0..W-1``), non-decreasing.

    Members: ``i``/``o`` pixel streams of ``fmt``; output frames ``Wo x Ho``.

    Each input row ``r`` is read by the ``n_r`` output rows with ``rows[y] = r`` in passes over
    its columns, column ``c`` for each of the ``u_c`` outputs with ``cols[x] = c``. The first
    pass is *live*: it emits each input pixel ``u_c`` times as it arrives (holding it at the
    input, untaken, until its last use), takes the pixels no output reads without emitting,
    and writes every pixel into the line memory. The ``n_r - 1`` further passes *replay* the
    row from the line memory (columns ``cols[0]..cols[-1]``) while the input is stalled. A row
    no output reads (``n_r = 0``) is taken and dropped at one pixel per cycle.

    Latency, throughput, memory
    ---------------------------
    One step per cycle: an output pixel (a live one in a cycle its input pixel is valid),
    or a column no output reads. ``latency``: a step leaves ``1 + 2`` cycles after it is
    made (line memory read, output register), or 1 without replays. Upscaling (every
    ``u_c, n_r >= 1``) emits one pixel per cycle; a column or row no output reads costs a
    cycle without output. ``schedule_delay``: the replays of the last row,
    ``(n_last - 1) * sum(max(u_c, 1) for c in cols[0]..cols[-1])`` (0 when the last input row
    is dropped: the frame's last output then precedes its last input). Unstalled and the only
    bottleneck, ``F`` frames of an upscale take ``F * Wo * Ho + L - schedule_delay`` cycles.
    Memory: one line of ``W`` pixels (block RAM) when some row is replayed (``n_r >= 2``),
    else none; the tables ``u_c`` and ``n_r`` are constants when uniform (integer factors),
    else ``W``- and ``H``-entry read-only multiplexers.
    """
    def __init__(self, fmt: PixelFormat, width, height, rows, cols):
        self.fmt = self.out_fmt = fmt
        self.width = _check_count("width", width, 1, MAX_DIMENSION)
        self.height = _check_count("height", height, 1, MAX_DIMENSION)
        self.row_uses = _source_counts(rows, height, "rows")
        self.col_uses = _source_counts(cols, width, "cols")
        self.rows, self.cols = [int(r) for r in rows], [int(c) for c in cols]
        self.out_width, self.out_height = len(self.cols), len(self.rows)
        self.replays = max(self.row_uses) > 1
        timing = self.timing(width, height, self.rows, self.cols)
        self.latency, self.schedule_delay = timing.latency, timing.schedule_delay
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(fmt))})

    @staticmethod
    def timing(width, height, rows, cols):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of a ``ResizeNearest`` with these
        parameters."""
        row_uses = _source_counts(rows, height, "rows")
        col_uses = _source_counts(cols, width, "cols")
        latency = 1 + (LINE_READ_STAGES if max(row_uses) > 1 else 0)
        replay_steps = sum(max(u, 1) for u in col_uses[cols[0]:cols[-1] + 1])
        return StageTiming(latency, max(row_uses[-1] - 1, 0) * replay_steps,
                           sampling=Sampling(tuple(rows), tuple(cols)))

    def elaborate(self, platform):
        m = Module()
        seq = self._sequencer(m)
        pipe = StallPipeline(m, seq.source, self.o)
        for name in ("sof", "eol", "live"):
            pipe.carry(name, getattr(seq, name))
        pipe.carry("pixel", self.i.payload.data)
        m.d.comb += self.i.ready.eq(pipe.en & seq.take)
        pixel = pipe.carried["pixel"]
        if self.replays:
            pixel = self._replayed(m, pipe, seq, platform)
        out = pipe.register(pixel, name="out", shape=pixel_layout(self.fmt))
        pipe.stage()
        m.d.comb += [self.o.payload.data.eq(out), self.o.payload.sof.eq(pipe.carried["sof"]),
                     self.o.payload.eol.eq(pipe.carried["eol"])]
        pipe.finish()
        self._advance(m, seq, pipe.en)
        return m

    def _sequencer(self, m):
        """The step counters (row ``r``, pass ``p``, column ``c``, use ``k`` of the column)
        and what the current step does."""
        W, H = self.width, self.height
        s = SimpleNamespace()
        s.r, s.c = Signal(range(H)), Signal(range(W))
        s.p = Signal(range(max(self.row_uses)))
        s.k = Signal(range(max(self.col_uses)))
        row_read = _lookup([int(n > 0) for n in self.row_uses], s.r)
        col_read = _lookup([int(u > 0) for u in self.col_uses], s.c)
        s.last_pass = _lookup([max(n - 1, 0) for n in self.row_uses], s.r)
        s.live, s.col_done, s.pass_end, s.take = Signal(), Signal(), Signal(), Signal()
        s.sof, s.eol, emit, s.step = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            s.live.eq(s.p == 0),
            # A dropped row emits nothing: each of its columns is done at once.
            s.col_done.eq((s.k == _lookup([max(u - 1, 0) for u in self.col_uses], s.c)) |
                          ~row_read),
            s.pass_end.eq(s.col_done & (s.c == Mux(s.live, W - 1, self.cols[-1]))),
            s.take.eq(s.live & s.col_done),
            emit.eq(row_read & col_read),
            s.step.eq(Mux(s.live, self.i.valid, 1)),
            s.sof.eq((s.r == self.rows[0]) & s.live & (s.c == self.cols[0]) & (s.k == 0)),
            s.eol.eq((s.c == self.cols[-1]) & s.col_done),
        ]
        s.source = SimpleNamespace(valid=s.step & emit, ready=Signal(name="unused_ready"))
        return s

    def _replayed(self, m, pipe, seq, platform):
        """The line memory: live passes write each input pixel taken, replay steps read
        column ``c``; returns the pixel of the step after the read (live or replayed)."""
        taken = self.i.valid & self.i.ready
        # Reads while a live pass writes are never used (its pixels come from the input).
        word = line_memory(m, "line", pixel_layout(self.fmt), self.width, write_en=taken,
                           write_addr=seq.c, write_data=self.i.payload.data, read_en=pipe.en,
                           read_addr=seq.c, out_en=pipe.en, collision_free=True,
                           platform=platform)
        for _ in range(LINE_READ_STAGES):
            pipe.stage()
        return Mux(pipe.carried["live"], pipe.carried["pixel"], word)

    def _advance(self, m, seq, en):
        """After a step: the next use of the column, the next column, the next pass of the
        row (a replay starts at ``cols[0]``), or the next row."""
        with m.If(en & seq.step):
            with m.If(~seq.col_done):
                m.d.sync += seq.k.eq(seq.k + 1)
            with m.Elif(~seq.pass_end):
                m.d.sync += [seq.k.eq(0), seq.c.eq(seq.c + 1)]
            with m.Elif(seq.p != seq.last_pass):
                m.d.sync += [seq.k.eq(0), seq.c.eq(self.cols[0]), seq.p.eq(seq.p + 1)]
            with m.Else():
                m.d.sync += [seq.k.eq(0), seq.c.eq(0), seq.p.eq(0),
                             seq.r.eq(Mux(seq.r == self.height - 1, 0, seq.r + 1))]
