"""Linear filter stages: ``filter2d`` (Ky x Kx kernel) and ``sepfilter2d`` (Kx then Ky taps).

Both compute an exact integer weighted sum, then ``round(sum / 2**shift)`` (``half_even`` or
``half_up``) and saturate to the output type, per channel.
"""
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..golden.pixel import PixelFormat
from .arith import bounded_shape, clamp, dot_latency, pipelined_dot, round_shift, rounded_bounds
from .payload import lane, lanes_of, pixel_layout, pixel_stream_signature, transfers_per_line
from .stall import SKID_LATENCY, SkidBuffer, StallPipeline
from .timing import StageTiming
from .window import (MAX_KERNEL, ColumnScanner, RowWindow, column_stream_layout, drain_ticks,
                     window_schedule, window_stream_layout)

__all__ = ["Filter2D", "SepFilter2D", "ColumnDot", "WindowDot", "check_taps", "ROUNDINGS",
           "MAX_SHIFT", "MAX_TAP", "SharedWindow", "SharedColumnScanner", "ColumnCrop",
           "CroppedRowWindow", "column_source", "make_row_window", "windowed_latency",
           "windowed_timing"]

ROUNDINGS = ("half_even", "half_up")
MAX_SHIFT = 32
#: Largest tap magnitude (17-bit signed taps), for the hardware and the spec alike.
MAX_TAP = (1 << 16) - 1


def check_taps(taps, *, two_d):
    """Raise ValueError unless ``taps`` is a kernel (``two_d``: a list of equally long rows)
    or a tap list, of integers in -MAX_TAP..MAX_TAP, each side odd in 1..MAX_KERNEL.

    The message says what is wrong, not which argument: the spec front end reports it under
    the field's name, the hardware blocks under the argument's (:func:`_check_taps_argument`).
    """
    rows = taps if two_d else [taps]
    if not isinstance(taps, (list, tuple)) or not taps or \
            any(not isinstance(r, (list, tuple)) for r in rows):
        raise ValueError(f"must be a {'list of lists' if two_d else 'list'} of integers, "
                         f"not {taps!r}")
    for r in rows:
        for v in r:
            if not isinstance(v, int) or isinstance(v, bool) or abs(v) > MAX_TAP:
                raise ValueError(f"taps must be integers in -{MAX_TAP}..{MAX_TAP}, not {v!r}")
    lengths = sorted({len(r) for r in rows})
    if len(lengths) != 1:
        raise ValueError(f"rows must all have the same length, not {lengths}")
    for what, n in (("width", lengths[0]), ("height", len(rows) if two_d else 1)):
        if n % 2 == 0 or not 1 <= n <= MAX_KERNEL:
            raise ValueError(f"{what} must be odd and in 1..{MAX_KERNEL}, not {n}")


def _check_taps_argument(name, taps, *, two_d):
    try:
        check_taps(taps, two_d=two_d)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def check_rounding(shift, rounding):
    if not isinstance(shift, int) or isinstance(shift, bool) or not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"shift must be an integer in 0..{MAX_SHIFT}, not {shift!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")


class ColumnDot(wiring.Component):
    """Per-channel dot product of each column with ``taps`` (a vertical FIR), exact width.

    Members: ``i`` column stream of ``Ky`` pixels; ``o`` column stream of one exact sum per
    channel (``out_element``); ``emit`` passes through.
    Latency ``1 + ceil(log2 T)`` cycles (``T`` nonzero taps); one column per cycle.
    """
    def __init__(self, fmt: PixelFormat, taps, lanes=1):
        _check_taps_argument("ky", list(taps), two_d=False)
        self.fmt = fmt
        self.taps = list(taps)
        self.lanes = lanes
        self.bounds = _dot_bounds(self.taps, fmt.min, fmt.max)
        self.out_element = data.ArrayLayout(bounded_shape(*self.bounds), fmt.channels)
        self.latency = self.latency_of(taps)
        column_in = lanes_of(data.ArrayLayout(pixel_layout(fmt), len(taps)), lanes)
        super().__init__({
            "i": In(stream.Signature(column_stream_layout(column_in))),
            "o": Out(stream.Signature(column_stream_layout(lanes_of(self.out_element, lanes)))),
        })

    @staticmethod
    def latency_of(taps):
        """The latency for ``taps``: the adder tree of the nonzero ones."""
        return dot_latency(sum(1 for t in taps if t))

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        pipe.carry("emit", self.i.payload.emit)
        outputs = [(lane(self.o.payload.column, p, self.lanes)[ch],
                    lane(self.i.payload.column, p, self.lanes))
                   for p in range(self.lanes) for ch in range(self.fmt.channels)]
        dots = [[(t, column[dy][ch % self.fmt.channels], self.fmt.min, self.fmt.max)
                 for dy, t in enumerate(self.taps)]
                for ch, (_, column) in enumerate(outputs)]
        sums = pipelined_dot(pipe, dots, name="col")
        m.d.comb += [out.eq(acc) for (out, _), (acc, _, _) in zip(outputs, sums)]
        m.d.comb += self.o.payload.emit.eq(pipe.carried["emit"])
        pipe.finish()
        return m


def _dot_bounds(taps, lo, hi):
    return (sum(min(t * lo, t * hi) for t in taps), sum(max(t * lo, t * hi) for t in taps))


class WindowDot(wiring.Component):
    """Per-channel weighted sum of a window, rounded, shifted and saturated to a pixel.

    ``weights[dx][dy]`` multiplies ``window[dx][dy][ch]`` (``window[dx]`` is a column of
    ``element``s, each ``channels`` values in ``lo..hi``); for a window of per-column sums the
    column has no ``dy`` level and ``weights[dx]`` is a single integer.
    ``out = saturate(round(sum / 2**shift))``.

    Latency ``1 + ceil(log2 T) + 1`` cycles; one window per cycle.
    """
    def __init__(self, element, kernel_width, weights, bounds, channels, *, shift, rounding,
                 output: PixelFormat, lanes=1):
        check_rounding(shift, rounding)
        self.weights = weights
        self.in_bounds = bounds
        self.channels = channels
        self.shift, self.rounding = shift, rounding
        self.out_fmt = output
        self.lanes = lanes
        self.latency = self.latency_of(
            [w for col in weights for w in (col if isinstance(col, list) else [col])])
        super().__init__({
            "i": In(stream.Signature(window_stream_layout(element, kernel_width, lanes))),
            "o": Out(pixel_stream_signature(output, lanes)),
        })

    @staticmethod
    def latency_of(weights):
        """The latency for the flat list of ``weights``: the adder tree of the nonzero ones
        and the rounding register."""
        return dot_latency(sum(1 for w in weights if w)) + 1

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        lo, hi = self.in_bounds
        dots, outputs = [], []
        for p in range(self.lanes):
            window = lane(self.i.payload.window, p, self.lanes)
            for ch in range(self.channels):
                terms = []
                for dx, col in enumerate(self.weights):
                    if isinstance(col, list):
                        terms += [(w, window[dx][dy][ch], lo, hi) for dy, w in enumerate(col)]
                    else:
                        terms.append((col, window[dx][ch], lo, hi))
                dots.append(terms)
                outputs.append(lane(self.o.payload.data, p, self.lanes)[ch])
        sums = pipelined_dot(pipe, dots, name="win")
        out_elem = pixel_layout(self.out_fmt).elem_shape
        results = []
        for ch, (acc, a_lo, a_hi) in enumerate(sums):
            r_lo, r_hi = rounded_bounds(a_lo, a_hi, self.shift)
            value = clamp(round_shift(acc, self.shift, self.rounding), r_lo, r_hi,
                          self.out_fmt.min, self.out_fmt.max)
            results.append(pipe.register(value, name=f"out_{ch}", shape=out_elem))
        pipe.stage()
        m.d.comb += [out.eq(v) for out, v in zip(outputs, results)]
        pipe.finish()
        return m


@dataclass(frozen=True)
class SharedWindow:
    """The line buffers that several windowed stages reading one stream share: one
    :class:`ColumnScanner` of ``kernel_height x kernel_width`` (each stage's window fits
    inside, centred) with one vertical ``border`` (and ``border_value``). A stage built with
    ``share=`` takes the scanner's column stream instead of pixels, crops its columns to its
    own height (:class:`ColumnCrop`) and its row window to its own width
    (:class:`CroppedRowWindow`); border handling selects rows and columns by their image
    position alone, so the centre of a larger window with the same border is the smaller
    window itself."""
    kernel_height: int
    kernel_width: int
    border: str
    border_value: int = 0

    def check_fits(self, kernel_height, kernel_width, border, border_value):
        """Raise ValueError unless a ``kernel_height x kernel_width`` window with this border
        is the centre of the shared one."""
        if (border, border_value) != (self.border, self.border_value) or \
                kernel_height > self.kernel_height or kernel_width > self.kernel_width:
            raise ValueError(f"a {kernel_height}x{kernel_width} window with border {border!r} "
                             f"({border_value}) does not fit the shared {self!r}")


class SharedColumnScanner(wiring.Component):
    """The :class:`ColumnScanner` of a :class:`SharedWindow` and the :class:`SkidBuffer` a
    :class:`_WindowedStage` puts after its own scanner; its column stream is forked to the
    stages that share it.

    Latency: the scanner's 3 cycles plus the skid buffer's 1; ``schedule_delay`` 0 (each
    sharing stage counts the window schedule). Throughput one tick per cycle. Memory:
    ``kernel_height - 1`` lines, once for all the stages that share it.
    """
    schedule_delay = 0
    latency = ColumnScanner.LATENCY + SKID_LATENCY

    def __init__(self, fmt, width, height, share, lanes=1):
        self.scanner = ColumnScanner(fmt, width, height, share.kernel_height,
                                     share.kernel_width, border=share.border,
                                     border_value=share.border_value, lanes=lanes)
        self.skid = SkidBuffer(self.scanner.o.payload.shape())
        super().__init__({"i": In(pixel_stream_signature(fmt, lanes)),
                          "o": Out(stream.Signature(self.scanner.o.payload.shape()))})

    @classmethod
    def timing(cls):
        return StageTiming(cls.latency, cls.schedule_delay)

    def elaborate(self, platform):
        m = Module()
        m.submodules.scanner, m.submodules.skid = self.scanner, self.skid
        connect(m, wiring.flipped(self.i), self.scanner.i)
        connect(m, self.scanner.o, self.skid.i)
        connect(m, self.skid.o, wiring.flipped(self.o))
        return m


class ColumnCrop(wiring.Component):
    """The centre ``kernel_height`` rows of a :class:`SharedWindow`'s columns.

    Stands where a sharing stage's own :class:`ColumnScanner` would, with the shared
    scanner's schedule (``kernel_height``, ``groups``, ``drain_ticks`` are the shared
    window's). Latency 0 (wiring); one transfer per cycle; no memory.
    """
    latency = 0

    def __init__(self, fmt, width, share, kernel_height, lanes=1):
        self.kernel_height = share.kernel_height
        self.groups = transfers_per_line(width, lanes)
        self.drain_ticks = drain_ticks(share.kernel_width, lanes)
        self.offset = (share.kernel_height - kernel_height) // 2
        self.lanes = lanes

        def columns(rows):
            return column_stream_layout(lanes_of(data.ArrayLayout(pixel_layout(fmt), rows),
                                                 lanes))
        super().__init__({"i": In(stream.Signature(columns(share.kernel_height))),
                          "o": Out(stream.Signature(columns(kernel_height)))})

    def elaborate(self, platform):
        m = Module()
        rows = len(lane(self.o.payload.column, 0, self.lanes))
        for p in range(self.lanes):
            source, sink = (lane(x.payload.column, p, self.lanes) for x in (self.i, self.o))
            m.d.comb += [sink[j].eq(source[j + self.offset]) for j in range(rows)]
        m.d.comb += [self.o.payload.emit.eq(self.i.payload.emit),
                     self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        return m


class CroppedRowWindow(wiring.Component):
    """A :class:`RowWindow` as wide as a :class:`SharedWindow` (its ``emit`` schedule is the
    shared scanner's), cropped to the centre ``kernel_width`` columns.

    Latency 1 cycle (the row window's); one transfer per cycle; the shared width's registers.
    """
    def __init__(self, element_shape, width, height, kernel_width, shared_width, *,
                 border="reflect101", constant_column=0, lanes=1):
        self.window = RowWindow(element_shape, width, height, shared_width, border=border,
                                constant_column=constant_column, lanes=lanes)
        self.latency = self.window.latency
        self.offset = (shared_width - kernel_width) // 2
        self.kernel_width, self.lanes = kernel_width, lanes
        super().__init__({
            "i": In(stream.Signature(self.window.i.payload.shape())),
            "o": Out(stream.Signature(window_stream_layout(element_shape, kernel_width,
                                                           lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = self.window
        connect(m, wiring.flipped(self.i), window.i)
        for p in range(self.lanes):
            source, sink = (lane(x.payload.window, p, self.lanes) for x in (window.o, self.o))
            m.d.comb += [sink[dx].eq(source[dx + self.offset])
                         for dx in range(self.kernel_width)]
        m.d.comb += [self.o.payload.sof.eq(window.o.payload.sof),
                     self.o.payload.eol.eq(window.o.payload.eol),
                     self.o.valid.eq(window.o.valid), window.o.ready.eq(self.o.ready)]
        return m


def column_source(fmt, width, height, kernel_height, kernel_width, *, border,
                  border_value=0, lanes=1, share=None):
    """The first part of a windowed stage: its own :class:`ColumnScanner`, or with ``share``
    a :class:`ColumnCrop` of the shared scanner's columns."""
    if share is None:
        return ColumnScanner(fmt, width, height, kernel_height, kernel_width, border=border,
                             border_value=border_value, lanes=lanes)
    share.check_fits(kernel_height, kernel_width, border, border_value)
    return ColumnCrop(fmt, width, share, kernel_height, lanes)


def make_row_window(element_shape, width, height, kernel_width, *, border, constant_column=0,
               lanes=1, share=None):
    """A windowed stage's :class:`RowWindow`, or with ``share`` a :class:`CroppedRowWindow`
    as wide as the shared window."""
    if share is None:
        return RowWindow(element_shape, width, height, kernel_width, border=border,
                         constant_column=constant_column, lanes=lanes)
    return CroppedRowWindow(element_shape, width, height, kernel_width, share.kernel_width,
                            border=border, constant_column=constant_column, lanes=lanes)


def windowed_latency(latencies, *, shared, skid_all=True):
    """The latency of a :class:`_WindowedStage` whose parts (scanner first) have
    ``latencies``: theirs plus a skid buffer after the scanner (unless ``shared``: the
    :class:`SharedColumnScanner` has it) and, with ``skid_all``, after every datapath part
    but the last."""
    skids = (not shared) + (len(latencies) - 2 if skid_all else 0)
    return sum(latencies) + skids * SKID_LATENCY


def windowed_timing(width, kernel_height, kernel_width, datapath, *, lanes=1, share=None,
                    skid_all=True):
    """The :class:`~rasterflow.hdl.timing.StageTiming` of a :class:`_WindowedStage`.

    Parameters
    ----------
    width : int
        Input frame width.
    kernel_height, kernel_width : int
        The stage's own window (a ``share`` replaces it for the schedule).
    datapath : list of int
        Latencies of the parts after the scanner, the row window included.
    lanes : int
        Pixels per transfer.
    share : SharedWindow or None
        The shared line buffers the stage reads (its first part is then a
        :class:`ColumnCrop`).
    skid_all : bool
        As for :class:`_WindowedStage`.
    """
    if share is not None:
        kernel_height, kernel_width = share.kernel_height, share.kernel_width
    scanner = ColumnCrop.latency if share is not None else ColumnScanner.LATENCY
    latency = windowed_latency([scanner, *datapath], shared=share is not None,
                               skid_all=skid_all)
    schedule = window_schedule(kernel_height, transfers_per_line(width, lanes),
                               drain_ticks(kernel_width, lanes))
    return StageTiming(latency, schedule)


class _WindowedStage(wiring.Component):
    """Pixel stream in, pixel stream out: a :class:`ColumnScanner` and a datapath chain.

    A :class:`SkidBuffer` follows the scanner so the datapath's stall logic and the line
    buffers' are separate timing paths. With ``skid_all`` (the default) one also follows every
    datapath part but the last (the pipeline puts one after the stage), so each part's
    stall-all enable depends only on its own output register and the next skid buffer's
    ``ready`` register: no combinational ``ready`` path crosses a part, and no enable fans out
    over more than one part. Latency: the parts' latencies plus one cycle per skid buffer.

    A stage sharing its line buffers (``parts[0]`` a :class:`ColumnCrop`) takes the
    :class:`SharedColumnScanner`'s column stream as ``i``; that component has the scanner
    and its skid buffer, so neither counts here.
    """
    def __init__(self, fmt, output, parts, lanes=1, *, skid_all=True):
        self.fmt, self.out_fmt = fmt, output
        scanner = parts[0]
        shared = isinstance(scanner, ColumnCrop)
        self._parts = []
        for index, part in enumerate(parts[:-1]):
            self._parts.append(part)
            if (index == 0 and not shared) or (index > 0 and skid_all):
                self._parts.append(SkidBuffer(part.o.payload.shape()))
        self._parts.append(parts[-1])
        self.latency = windowed_latency([p.latency for p in parts], shared=shared,
                                        skid_all=skid_all)
        # Transfers between a frame's last input and its last output, beside the latency.
        self.schedule_delay = window_schedule(scanner.kernel_height, scanner.groups,
                                              scanner.drain_ticks)
        source = stream.Signature(scanner.i.payload.shape()) if shared else \
            pixel_stream_signature(fmt, lanes)
        super().__init__({"i": In(source),
                          "o": Out(pixel_stream_signature(output, lanes))})

    def elaborate(self, platform):
        m = Module()
        for k, part in enumerate(self._parts):
            m.submodules[f"part{k}"] = part
        for a, b in zip(self._parts, self._parts[1:]):
            connect(m, a.o, b.i)
        connect(m, wiring.flipped(self.i), self._parts[0].i)
        connect(m, self._parts[-1].o, wiring.flipped(self.o))
        return m


class Filter2D(_WindowedStage):
    """``filter2d``: correlation with an integer ``Ky x Kx`` kernel, then round and saturate.

    ``out[y][x] = saturate(round(sum k[dy][dx] * p[y+dy-hy][x+dx-hx] / 2**shift))`` per
    channel; ``p`` outside the image comes from the border mode.

    Members: ``i`` pixel stream of ``fmt``; ``o`` pixel stream of ``output``.

    Latency (cycles from the input pixel that completes a window to its output):
    ``3 + 1 + 1 + (1 + ceil(log2 T)) + 1`` (scanner, skid buffer, row window, products and
    adder tree, rounding) for ``T`` nonzero taps; a frame's last output leaves
    ``hy * W + hx`` ticks after its last input. Throughput one pixel per cycle.
    Memory: ``Ky - 1`` lines of ``W`` pixels; ``Ky * (Kx - 1)`` window pixel registers.
    """
    def __init__(self, fmt: PixelFormat, width, height, kernel, *, shift=0,
                 rounding="half_even", border="reflect101", border_value=0, output=None,
                 lanes=1, share=None):
        _check_taps_argument("kernel", kernel, two_d=True)
        check_rounding(shift, rounding)
        output = output or PixelFormat(fmt.channels, "uint8")
        _check_output(fmt, output)
        ky, kx = len(kernel), len(kernel[0])
        column = data.ArrayLayout(pixel_layout(fmt), ky)
        scanner = column_source(fmt, width, height, ky, kx, border=border,
                                border_value=border_value, lanes=lanes, share=share)
        row_window = make_row_window(column, width, height, kx, border=border,
                                     constant_column=[[border_value] * fmt.channels] * ky,
                                     lanes=lanes, share=share)
        weights = [[kernel[dy][dx] for dy in range(ky)] for dx in range(kx)]
        dot = WindowDot(column, kx, weights, (fmt.min, fmt.max), fmt.channels,
                        shift=shift, rounding=rounding, output=output, lanes=lanes)
        super().__init__(fmt, output, [scanner, row_window, dot], lanes)

    @staticmethod
    def timing(width, kernel, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        datapath = [RowWindow.LATENCY, WindowDot.latency_of([t for row in kernel for t in row])]
        return windowed_timing(width, len(kernel), len(kernel[0]), datapath, lanes=lanes,
                               share=share)


class SepFilter2D(_WindowedStage):
    """``sepfilter2d``: ``kx`` along rows and ``ky`` along columns, one exact sum, one rounding.

    Equal to :class:`Filter2D` with the outer-product kernel ``ky ⊗ kx``, computed with
    ``Ky + Kx`` multipliers per channel: the vertical taps run on each column as it leaves the
    line buffers, the horizontal taps on the row window of column sums.

    Latency ``3 + 1 + (1 + ceil(log2 Ty)) + 1 + (1 + ceil(log2 Tx)) + 1`` cycles plus the window
    schedule; one pixel per cycle; memory ``Ky - 1`` lines of ``W`` pixels and ``Kx - 1``
    registers of column sums.
    """
    def __init__(self, fmt: PixelFormat, width, height, kx, ky, *, shift=0,
                 rounding="half_even", border="reflect101", border_value=0, output=None,
                 lanes=1, share=None):
        _check_taps_argument("kx", kx, two_d=False)
        _check_taps_argument("ky", ky, two_d=False)
        check_rounding(shift, rounding)
        output = output or PixelFormat(fmt.channels, "uint8")
        _check_output(fmt, output)
        scanner = column_source(fmt, width, height, len(ky), len(kx), border=border,
                                border_value=border_value, lanes=lanes, share=share)
        column_dot = ColumnDot(fmt, ky, lanes)
        row_window = make_row_window(column_dot.out_element, width, height, len(kx),
                                     border=border,
                                     constant_column=[sum(ky) * border_value] * fmt.channels,
                                     lanes=lanes, share=share)
        dot = WindowDot(column_dot.out_element, len(kx), list(kx), column_dot.bounds,
                        fmt.channels, shift=shift, rounding=rounding, output=output,
                        lanes=lanes)
        super().__init__(fmt, output, [scanner, column_dot, row_window, dot], lanes)

    @staticmethod
    def timing(width, kx, ky, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        datapath = [ColumnDot.latency_of(ky), RowWindow.LATENCY, WindowDot.latency_of(kx)]
        return windowed_timing(width, len(ky), len(kx), datapath, lanes=lanes, share=share)


def _check_output(fmt, output):
    if not isinstance(output, PixelFormat):
        raise TypeError(f"output must be a PixelFormat, not {output!r}")
    if output.channels != fmt.channels:
        raise ValueError(f"output must have {fmt.channels} channels, not {output.channels}")
