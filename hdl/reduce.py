"""Int8 reductions: TFLite ``MEAN`` over H and W, and ``AVERAGE_POOL_2D``.

*Over the whole frame* (:class:`GlobalMean`, :class:`GlobalAveragePool`; a classifier's
global pool) the input is ``H x W`` pixels of ``C`` int8 and the output one ``1 x 1`` pixel
of ``C`` int8 per frame::

    pixels -> C accumulators -> latch of C sums -> one datapath, one channel per cycle
              (one pixel per cycle)  (at the frame's        -> output pixel register
                                      last pixel)

Each channel's accumulator adds its value of every pixel. At the frame's last pixel the
``C`` complete sums move to a latch and the accumulators restart, so the next frame streams
in at once while the latch is read out: a shift register whose channel 0 feeds one datapath
(:class:`GlobalMean`: TFLite's requantizer, :class:`GlobalAveragePool`: a division by
``H*W`` rounding half away from zero) once per cycle, ``C`` cycles in all; the results shift
into the output pixel register, which is offered once it holds all ``C``. One datapath for
all channels keeps the multipliers at one, whatever ``C``. The input stalls only when a
frame's last pixel arrives while the latch still holds sums not yet read, i.e. while the
previous frame's result has not left.

*Through a window* (:class:`AveragePoolUnit`) the shared window generator of
:mod:`~rasterflow.hdl.pool` brings each window's pixels: a :class:`~rasterflow.hdl.filters.
ColumnDot` of ones sums each column's taps, :class:`WindowAverage` sums the window's columns,
divides by the window's in-image tap count and keeps only the output positions (stride).
The window is the centred odd window of :func:`~rasterflow.hdl.pool.pool_taps` with border
value 0, so a padded tap adds nothing; its masked taps and the tap count reproduce TFLite's
window clipped to the image. The count depends on the output position only where a SAME
window overhangs the frame: each distinct count has an exact reciprocal (see
:func:`divide_lanes`), chosen by position.
"""
import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.cnn import window_geometry
from ..golden.pixel import PixelFormat
from .arith import bounded_shape, clamp, dot_latency, pipelined_dot
from .filters import ColumnDot, _WindowedStage, windowed_timing
from .payload import pixel_layout, pixel_stream_signature
from .pointwise import _reciprocal
from .pool import pool_taps
from .requant import REQUANT_LATENCY, requantize
from .stall import StallPipeline, payload_register
from .timing import Sampling, StageTiming
from .window import MAX_DIMENSION, MAX_KERNEL, ColumnScanner, RowWindow, window_stream_layout

__all__ = ["DIVIDE_LATENCY", "divide_lanes", "PoolGeometry", "pool_geometry", "GlobalMean",
           "GlobalAveragePool", "WindowAverage", "AveragePoolUnit"]

#: Register stages :func:`divide_lanes` adds.
DIVIDE_LATENCY = 3


def _check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


def _check_int8(fmt):
    if not isinstance(fmt, PixelFormat) or fmt.dtype != "int8":
        raise ValueError(f"fmt must be a PixelFormat of int8 channels, not {fmt!r}")


def _check_clamp(act_min, act_max):
    _check_int("act_min", act_min, -128, 127)
    _check_int("act_max", act_max, act_min, 127)


def divide_lanes(pipe, lanes, divisors, *, select=None, clamp_range, name):
    """Add ``clamp(s / d rounded half away from zero)`` for each lane to ``pipe``: TFLite's
    ``s > 0 ? (s + d/2) / d : (s - d/2) / d`` (C++ division) of AVERAGE_POOL_2D.

    ``lanes``: ``[(s, (lo, hi))]``, signed Values in ``lo..hi`` at the current stage.
    ``divisors``: the possible ``d`` (positive ints); ``select``, a Value at the current
    stage, indexes them (``None`` for one divisor). All lanes share ``d``.

    The magnitude is ``(2|s| + d) // (2d)`` (for C++'s ``(|s| + d/2) / d``, odd and even
    ``d`` alike), computed as ``(2|s| + d) * M >> S`` with each divisor's exact reciprocal
    ``(M, S)`` from :func:`~rasterflow.hdl.pointwise._reciprocal` (exact for every ``|s|``
    up to the lanes' bound). The divisors share the largest ``S`` (``M << (S - S_d)`` is as
    exact), so a choice of divisor is a choice of two constants, not of a shifter.

    Stages: ``2|s| + d`` and the sign, the product, the shift with the sign and clamp
    (:data:`DIVIDE_LATENCY`). One multiplier per lane. Returns the int8 results.
    """
    magnitude = max(max(-lo, hi) for _, (lo, hi) in lanes)
    fits = [_reciprocal(d, magnitude) for d in divisors]
    shift = max(s for _, s in fits)
    multipliers = [mult << (shift - s) for mult, s in fits]
    if select is None:
        divisor, multiplier = divisors[0], multipliers[0]
    else:
        divisor = Array(Const(d, unsigned(max(divisors).bit_length())) for d in divisors)[select]
        multiplier = pipe.register(
            Array(Const(mult, unsigned(max(multipliers).bit_length())) for mult in multipliers)
            [select], name=f"{name}_multiplier")
    t_max = 2 * magnitude + max(divisors)
    numerators = []
    for index, (value, _) in enumerate(lanes):
        pipe.carry(f"{name}{index}_negative", value < 0)
        numerators.append(pipe.register(2 * Mux(value < 0, -value, value) + divisor,
                                        name=f"{name}{index}_t",
                                        shape=unsigned(t_max.bit_length())))
    pipe.stage()
    products = [pipe.register(t * multiplier, name=f"{name}{index}_product",
                              shape=unsigned((t_max * max(multipliers)).bit_length()))
                for index, t in enumerate(numerators)]
    pipe.stage()
    q_max = t_max // (2 * min(divisors))
    act_min, act_max = clamp_range
    results = []
    for index, product in enumerate(products):
        quotient = product >> shift
        signed_quotient = Mux(pipe.carried[f"{name}{index}_negative"], -quotient, quotient)
        results.append(pipe.register(clamp(signed_quotient, -q_max, q_max, act_min, act_max),
                                     name=f"{name}{index}_y",
                                     shape=bounded_shape(act_min, act_max)))
    pipe.stage()
    return results


# -- over the whole frame -------------------------------------------------------------------------

class _GlobalReduction(wiring.Component):
    """The frame reduction of the module docstring; a subclass gives the accumulators'
    start value (``offset``) and the per-channel datapath (``_datapath``, adding
    ``DATAPATH_LATENCY`` stages)."""
    schedule_delay = 0
    DATAPATH_LATENCY: int

    def __init__(self, fmt, width, height, offset):
        _check_int8(fmt)
        _check_int("width", width, 1, MAX_DIMENSION)
        _check_int("height", height, 1, MAX_DIMENSION)
        self.fmt, self.width, self.height = fmt, width, height
        self.count = width * height
        self.offset = offset
        self.out_width = self.out_height = 1
        self.latency = self.latency_of(fmt.channels)
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(fmt))})

    @classmethod
    def latency_of(cls, channels):
        """Cycles from a frame's last input pixel to its output pixel, unstalled: one to
        latch the sums, one per channel fed, the datapath, the output register."""
        return channels + cls.DATAPATH_LATENCY + 1

    @classmethod
    def timing(cls, channels, width, height):
        """The :class:`~rasterflow.hdl.timing.StageTiming` for ``channels`` channels of
        ``width x height`` frames (the one output stands at the frame's last pixel)."""
        return StageTiming(cls.latency_of(channels),
                           sampling=Sampling((height - 1,), (width - 1,)))

    @property
    def sum_bounds(self):
        return self.offset - 128 * self.count, self.offset + 127 * self.count

    def elaborate(self, platform):
        m = Module()
        latch, full = self._accumulators(m)
        feed, last_channel = self._sequencer(m, latch, full)
        result = SimpleNamespace(valid=Signal(name="result_valid"), ready=Const(1))
        pipe = StallPipeline(m, SimpleNamespace(valid=feed, ready=Signal(name="unused_ready")),
                             result)
        pipe.carry("last", last_channel)
        y = self._datapath(pipe, latch[0], self.sum_bounds)
        pipe.finish()
        self._collector(m, result.valid, pipe.carried["last"], y)
        return m

    def _accumulators(self, m):
        """Per channel, the running sum of the frame from ``offset``; the frame's last pixel
        moves the complete sums into the latch (``full``) and restarts the accumulators.
        Frames are delimited by counting ``H * W`` transfers."""
        shape = bounded_shape(*self.sum_bounds)
        accumulators = [Signal(shape, init=self.offset, name=f"acc{c}")
                        for c in range(self.fmt.channels)]
        latch = [payload_register(shape, name=f"sum{c}") for c in range(self.fmt.channels)]
        full = Signal()
        position = Signal(range(self.count))
        last_pixel = Signal()
        m.d.comb += [last_pixel.eq(position == self.count - 1),
                     self.i.ready.eq(~(last_pixel & full))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += position.eq(Mux(last_pixel, 0, position + 1))
            totals = [acc + self.i.payload.data[c] for c, acc in enumerate(accumulators)]
            with m.If(last_pixel):
                m.d.sync += [s.eq(total) for s, total in zip(latch, totals)]
                m.d.sync += [acc.eq(self.offset) for acc in accumulators]
                m.d.sync += full.eq(1)
            with m.Else():
                m.d.sync += [acc.eq(total) for acc, total in zip(accumulators, totals)]
        return latch, full

    def _sequencer(self, m, latch, full):
        """Feeds the latch's channel 0 to the datapath and shifts the latch, one channel per
        cycle. A frame's feed starts only once the output register is free (its previous
        result left, or leaves in this cycle), so the results of two frames never mix.
        Returns the feed strobe and whether it is the last channel."""
        channels = self.fmt.channels
        channel = Signal(range(channels))
        busy = Signal()     # the output register belongs to a frame being fed or offered
        feed = Signal()
        last = Signal()
        leaving = self.o.valid & self.o.ready
        m.d.comb += [feed.eq(full & ((channel != 0) | ~busy | leaving)),
                     last.eq(channel == channels - 1)]
        with m.If(leaving):
            m.d.sync += busy.eq(0)
        with m.If(feed):
            m.d.sync += [a.eq(b) for a, b in zip(latch, latch[1:])]
            m.d.sync += channel.eq(Mux(last, 0, channel + 1))
            with m.If(channel == 0):
                m.d.sync += busy.eq(1)
            with m.If(last):
                m.d.sync += full.eq(0)
        return feed, last

    def _collector(self, m, result_valid, last, y):
        """Results shift into the output pixel (channel ``C - 1`` first in, so channel 0
        ends at index 0); the last channel's result makes it valid."""
        channels = self.fmt.channels
        pixel = payload_register(pixel_layout(self.fmt), name="pixel")
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(result_valid):
            m.d.sync += [pixel[c].eq(pixel[c + 1]) for c in range(channels - 1)]
            m.d.sync += pixel[channels - 1].eq(y)
            with m.If(last):
                m.d.sync += self.o.valid.eq(1)
        m.d.comb += [self.o.payload.data.eq(pixel), self.o.payload.sof.eq(1),
                     self.o.payload.eol.eq(1)]


class GlobalMean(_GlobalReduction):
    """TFLite int8 ``MEAN`` over H and W: per channel, ``clamp(out_zp + MBQM(sum - in_zp *
    H * W, m0, shift), -128, 127)`` for each ``W x H`` frame, as one ``1 x 1`` pixel.

    Parameters
    ----------
    fmt : PixelFormat
        ``C`` x int8 (input and output).
    width, height : int
        Input frame size.
    in_zp, out_zp : int
        Zero points.
    m0, shift : int
        The multiplier with ``1 / (H*W)`` folded in, as LiteRT folds it
        (:meth:`rasterflow.golden.pooling.Mean.folded_multiplier` of ``H * W``); ``shift``
        in -31..31.

    Latency, throughput, memory
    ---------------------------
    ``latency = C + 5 + 1`` cycles from a frame's last input pixel to its output pixel,
    unstalled (latch, ``C`` channels through the 5-stage requantizer, output register);
    ``schedule_delay`` 0. One input pixel per cycle and one frame per ``max(H*W, C + 5)``
    cycles: frames of ``H*W >= C + 5`` pixels stream back to back without a stall (``F``
    frames take ``F*H*W + latency`` cycles). Memory: ``2 C`` sums (accumulators and latch)
    of ``ceil(log2(256*H*W))`` bits, ``C`` int8 output registers; one multiplier.
    """
    DATAPATH_LATENCY = REQUANT_LATENCY

    def __init__(self, fmt, width, height, *, in_zp, out_zp, m0, shift):
        _check_int("in_zp", in_zp, -128, 127)
        _check_int("out_zp", out_zp, -128, 127)
        _check_int("m0", m0, 0, (1 << 31) - 1)
        _check_int("shift", shift, -31, 31)
        self.in_zp, self.out_zp, self.m0, self.shift = in_zp, out_zp, m0, shift
        super().__init__(fmt, width, height, offset=-in_zp * width * height)

    def _datapath(self, pipe, value, bounds):
        y, _, _ = requantize(pipe, value, bounds, self.m0, self.shift, name="mean",
                             zero_point=self.out_zp, clamp_range=(-128, 127))
        return y


class GlobalAveragePool(_GlobalReduction):
    """TFLite int8 ``AVERAGE_POOL_2D`` whose window covers the whole ``W x H`` frame: per
    channel ``clamp(sum / (H*W) rounded half away from zero, act_min, act_max)``, as one
    ``1 x 1`` pixel per frame.

    Parameters
    ----------
    fmt : PixelFormat
        ``C`` x int8 (input and output).
    width, height : int
        Input frame size (the window's).
    act_min, act_max : int
        The fused activation's clamp.

    Latency, throughput, memory
    ---------------------------
    ``latency = C + 3 + 1`` cycles from a frame's last input pixel to its output pixel,
    unstalled (latch, ``C`` channels through the 3-stage :func:`divide_lanes`, output
    register); ``schedule_delay`` 0. One frame per ``max(H*W, C + 3)`` cycles: frames of
    ``H*W >= C + 3`` pixels stream back to back without a stall (``F`` frames take
    ``F*H*W + latency`` cycles). Memory: ``2 C`` sums, ``C`` int8 output registers; one
    constant multiplier.
    """
    DATAPATH_LATENCY = DIVIDE_LATENCY

    def __init__(self, fmt, width, height, *, act_min=-128, act_max=127):
        _check_clamp(act_min, act_max)
        self.act_min, self.act_max = act_min, act_max
        super().__init__(fmt, width, height, offset=0)

    def _datapath(self, pipe, value, bounds):
        y, = divide_lanes(pipe, [(value, bounds)], [self.count],
                          clamp_range=(self.act_min, self.act_max), name="average")
        return y


# -- through a window -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PoolGeometry:
    """A pooling window's geometry over one ``W x H`` frame, per axis (``_x``, ``_y``):
    ``kernel`` (the centred odd window of :func:`~rasterflow.hdl.pool.pool_taps`), ``taps``
    (its offsets the pool uses), ``counts`` (the in-image taps of each output position) and
    ``stride``; output ``o`` is centred at input ``o * stride``."""
    kernel_x: int
    kernel_y: int
    taps_x: tuple
    taps_y: tuple
    counts_x: tuple
    counts_y: tuple
    stride_x: int
    stride_y: int

    @property
    def out_width(self):
        return len(self.counts_x)

    @property
    def out_height(self):
        return len(self.counts_y)

    def covers_frame(self, width, height):
        """Whether there is one output whose window holds the whole frame (a global pool)."""
        return self.counts_x == (width,) and self.counts_y == (height,)

    @property
    def column_taps(self):
        """The ones and zeros that sum a column's used taps."""
        half = self.kernel_y // 2
        return [int(dy - half in self.taps_y) for dy in range(self.kernel_y)]


def _axis(size, window, stride, padding):
    out, pad, _ = window_geometry(size, window, stride, padding)
    kernel, taps = pool_taps(window, pad)
    counts = tuple(min(o * stride - pad + window, size) - max(o * stride - pad, 0)
                   for o in range(out))
    return kernel, tuple(taps), counts


def pool_geometry(width, height, *, size_h, size_w, stride_h, stride_w, padding):
    """The :class:`PoolGeometry` of TFLite's pooling geometry (raises ValueError when the
    window does not fit the frame)."""
    kernel_x, taps_x, counts_x = _axis(width, size_w, stride_w, padding)
    kernel_y, taps_y, counts_y = _axis(height, size_h, stride_h, padding)
    return PoolGeometry(kernel_x, kernel_y, taps_x, taps_y, counts_x, counts_y, stride_w,
                        stride_h)


class WindowAverage(wiring.Component):
    """Per channel, the sum of the window's columns at ``taps_x``, divided by the output
    position's tap count (rounding half away from zero) and clamped; only output positions
    leave, with their own ``sof``/``eol``.

    The input is a window stream over all ``W x H`` centres (a
    :class:`~rasterflow.hdl.window.RowWindow` of per-column sums in ``bounds``); centre
    ``(x, y)`` is output ``(x / stride_x, y / stride_y)`` when both divide. The count of an
    output is ``counts_y[oy] * counts_x[ox]``; each axis's border positions select it
    (one comparison per position whose count differs from the axis's usual one).

    Latency ``1 + ceil(log2 Tx) + 3`` cycles (``Tx`` taps: the column sum, the division);
    one window per cycle, a discarded one included; one multiplier per channel (a
    variable one when the count varies: its reciprocal comes from a table). Memory: the
    position counters.
    """
    def __init__(self, element, bounds, fmt, width, height, kernel_width, geometry, *,
                 act_min=-128, act_max=127):
        _check_clamp(act_min, act_max)
        self.fmt, self.width, self.height = fmt, width, height
        self.geometry, self.bounds = geometry, bounds
        self.kernel_width = kernel_width
        self.act_min, self.act_max = act_min, act_max
        self.latency = self.latency_of(len(geometry.taps_x))
        super().__init__({
            "i": In(stream.Signature(window_stream_layout(element, kernel_width))),
            "o": Out(pixel_stream_signature(fmt)),
        })

    @staticmethod
    def latency_of(taps):
        """The latency for a window sum of ``taps`` columns."""
        return dot_latency(taps) + DIVIDE_LATENCY

    def elaborate(self, platform):
        m = Module()
        keep, sof, eol, x, y = self._positions(m)
        source = SimpleNamespace(valid=self.i.valid & keep, ready=Signal(name="source_ready"))
        m.d.comb += self.i.ready.eq(source.ready)
        pipe = StallPipeline(m, source, self.o)
        divisors, select = self._divisor(m, x, y)
        pipe.carry("sof", sof)
        pipe.carry("eol", eol)
        pipe.carry("divisor", select)
        half = self.kernel_width // 2
        lo, hi = self.bounds
        window = self.i.payload.window
        sums = pipelined_dot(pipe, [[(1, window[half + t][ch], lo, hi)
                                     for t in self.geometry.taps_x]
                                    for ch in range(self.fmt.channels)], name="sum")
        results = divide_lanes(pipe, [(s, (s_lo, s_hi)) for s, s_lo, s_hi in sums], divisors,
                               select=pipe.carried["divisor"] if len(divisors) > 1 else None,
                               clamp_range=(self.act_min, self.act_max), name="average")
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(results)]
        m.d.comb += [self.o.payload.sof.eq(pipe.carried["sof"]),
                     self.o.payload.eol.eq(pipe.carried["eol"])]
        pipe.finish()
        return m

    def _positions(self, m):
        """The centre ``(x, y)`` of the current window, whether it is an output position
        (``keep``), and the output's ``sof``/``eol``."""
        g = self.geometry
        x, y = Signal(range(self.width)), Signal(range(self.height))
        phase_x, phase_y = Signal(range(g.stride_x)), Signal(range(g.stride_y))
        last_x, last_y = (g.out_width - 1) * g.stride_x, (g.out_height - 1) * g.stride_y
        keep = Signal()
        m.d.comb += keep.eq((phase_x == 0) & (phase_y == 0) & (x <= last_x) & (y <= last_y))

        def step(counter, size):
            return Mux(counter == size - 1, 0, counter + 1)

        with m.If(self.i.valid & self.i.ready):
            with m.If(x == self.width - 1):
                m.d.sync += [x.eq(0), phase_x.eq(0), y.eq(step(y, self.height))]
                with m.If(y == self.height - 1):
                    m.d.sync += phase_y.eq(0)
                with m.Else():
                    m.d.sync += phase_y.eq(step(phase_y, g.stride_y))
            with m.Else():
                m.d.sync += [x.eq(x + 1), phase_x.eq(step(phase_x, g.stride_x))]
        return keep, (x == 0) & (y == 0), x == last_x, x, y

    def _divisor(self, m, x, y):
        """The distinct tap counts, and the index of the current position's count (a
        Value, or 0 when every output has the same count)."""
        g = self.geometry
        classes_x = _count_classes(m, x, g.counts_x, g.stride_x, "x")
        classes_y = _count_classes(m, y, g.counts_y, g.stride_y, "y")
        (values_x, index_x), (values_y, index_y) = classes_x, classes_y
        products = [[cy * cx for cx in values_x] for cy in values_y]
        divisors = sorted({d for row in products for d in row})
        if len(divisors) == 1:
            return divisors, 0
        width = bounded_shape(0, len(divisors) - 1)
        table = Array(Array(Const(divisors.index(d), width) for d in row) for row in products)
        return divisors, table[index_y][index_x]


def _count_classes(m, position, counts, stride, axis):
    """``(values, index)``: the distinct tap counts along an axis, the most frequent first,
    and a signal holding the index of the count at ``position`` (an input index, output
    ``o`` at ``o * stride``); 0 (a constant) when the axis has one count."""
    values = sorted(set(counts), key=lambda c: (-counts.count(c), c))
    if len(values) == 1:
        return values, 0
    index = Signal(range(len(values)), name=f"count_class_{axis}")
    with m.Switch(position):
        for k, value in enumerate(values[1:], start=1):
            with m.Case(*(o * stride for o, c in enumerate(counts) if c == value)):
                m.d.comb += index.eq(k)
        with m.Default():
            m.d.comb += index.eq(0)
    return values, index


class AveragePoolUnit(_WindowedStage):
    """TFLite int8 ``AVERAGE_POOL_2D`` through a window: ``size_h x size_w`` window,
    strides ``stride_h``/``stride_w``, SAME or VALID padding (the window clipped to the
    image; see the module docstring).

    Members: ``i``/``o`` pixel streams of ``C`` int8; output frames ``out_width x
    out_height``.

    Latency, throughput, memory
    ---------------------------
    ``latency``: the window generator's (scanner 3, skid buffer 1, row window 1) + column
    sum ``1 + ceil(log2 Ty)`` + :class:`WindowAverage`'s ``1 + ceil(log2 Tx) + 3``;
    ``schedule_delay = (Ky//2)*W + Kx//2`` (the centred ``Kx x Ky`` window's schedule). One
    input pixel per cycle (discarded positions included): with stride 1, ``F`` frames take
    ``F*W*H + latency + schedule_delay`` cycles (plus the pipeline's buffers); a strided pool
    emits its last output before its window schedule ends, so no closed formula is claimed.
    Memory: ``Ky - 1`` lines of ``W x C`` int8, ``Kx - 1`` registers of ``C`` column sums;
    ``C`` multipliers (constant ones when every window holds the same count).
    """
    def __init__(self, fmt: PixelFormat, width, height, *, size_h, size_w, stride_h, stride_w,
                 padding, act_min=-128, act_max=127):
        _check_int8(fmt)
        g = self.geometry(width, height, size_h=size_h, size_w=size_w, stride_h=stride_h,
                          stride_w=stride_w, padding=padding)
        scanner = ColumnScanner(fmt, width, height, g.kernel_y, g.kernel_x, border="constant",
                                border_value=0)
        column_sum = ColumnDot(fmt, g.column_taps)
        row_window = RowWindow(column_sum.out_element, width, height, g.kernel_x,
                               border="constant", constant_column=[0] * fmt.channels)
        average = WindowAverage(column_sum.out_element, column_sum.bounds, fmt, width, height,
                                g.kernel_x, g, act_min=act_min, act_max=act_max)
        self.width, self.height = width, height
        self.out_width, self.out_height = g.out_width, g.out_height
        super().__init__(fmt, fmt, [scanner, column_sum, row_window, average], skid_all=False)

    @staticmethod
    def geometry(width, height, *, size_h, size_w, stride_h, stride_w, padding):
        """The :class:`PoolGeometry`, checked to fit the window generator."""
        for name, value in (("size_h", size_h), ("size_w", size_w), ("stride_h", stride_h),
                            ("stride_w", stride_w)):
            _check_int(name, value, 1, MAX_DIMENSION)
        g = pool_geometry(width, height, size_h=size_h, size_w=size_w, stride_h=stride_h,
                          stride_w=stride_w, padding=padding)
        for name, size, kernel in (("size_w", size_w, g.kernel_x), ("size_h", size_h, g.kernel_y)):
            if kernel > MAX_KERNEL:
                raise ValueError(f"{name} {size} with {padding} padding needs a centred "
                                 f"{kernel}-tap window; the window generator has at most "
                                 f"{MAX_KERNEL}")
        return g

    @staticmethod
    def timing(width, height, *, size_h, size_w, stride_h, stride_w, padding):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the clamp does not change it)."""
        g = AveragePoolUnit.geometry(width, height, size_h=size_h, size_w=size_w,
                                     stride_h=stride_h, stride_w=stride_w, padding=padding)
        datapath = [ColumnDot.latency_of(g.column_taps), RowWindow.LATENCY,
                    WindowAverage.latency_of(len(g.taps_x))]
        timing = windowed_timing(width, g.kernel_y, g.kernel_x, datapath, skid_all=False)
        if (g.stride_x, g.stride_y, g.out_width, g.out_height) == (1, 1, width, height):
            return timing
        return dataclasses.replace(timing, sampling=Sampling.grid(
            g.out_width, g.out_height, stride_x=g.stride_x, stride_y=g.stride_y,
            lead=timing.schedule_delay))
