"""Linear filter stages: ``filter2d`` (Ky x Kx kernel) and ``sepfilter2d`` (Kx then Ky taps).

Both compute an exact integer weighted sum, then ``round(sum / 2**shift)`` (``half_even`` or
``half_up``) and saturate to the output type, per channel.
"""
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..golden.pixel import PixelFormat
from .arith import bounded_shape, clamp, dot_latency, pipelined_dot, round_shift, rounded_bounds
from .payload import lane, lanes_of, pixel_layout, pixel_stream_signature
from .pipeline import SKID_LATENCY, SkidBuffer, StallPipeline
from .window import (MAX_KERNEL, ColumnScanner, RowWindow, column_stream_layout,
                     window_stream_layout)

__all__ = ["Filter2D", "SepFilter2D", "ColumnDot", "WindowDot", "check_taps", "ROUNDINGS",
           "MAX_SHIFT", "MAX_TAP"]

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
        self.latency = dot_latency(sum(1 for t in taps if t))
        column_in = lanes_of(data.ArrayLayout(pixel_layout(fmt), len(taps)), lanes)
        super().__init__({
            "i": In(stream.Signature(column_stream_layout(column_in))),
            "o": Out(stream.Signature(column_stream_layout(lanes_of(self.out_element, lanes)))),
        })

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
        flat = [w for col in weights for w in (col if isinstance(col, list) else [col])]
        self.latency = dot_latency(sum(1 for w in flat if w)) + 1
        super().__init__({
            "i": In(stream.Signature(window_stream_layout(element, kernel_width, lanes))),
            "o": Out(pixel_stream_signature(output, lanes)),
        })

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


class _WindowedStage(wiring.Component):
    """Pixel stream in, pixel stream out: a :class:`ColumnScanner` and a datapath chain.

    A :class:`SkidBuffer` follows the scanner so the datapath's stall logic and the line
    buffers' are separate timing paths. With ``skid_all`` (the default) one also follows every
    datapath part but the last (the pipeline puts one after the stage), so each part's
    stall-all enable depends only on its own output register and the next skid buffer's
    ``ready`` register: no combinational ``ready`` path crosses a part, and no enable fans out
    over more than one part. Latency: the parts' latencies plus one cycle per skid buffer.
    """
    def __init__(self, fmt, output, parts, lanes=1, *, skid_all=True):
        self.fmt, self.out_fmt = fmt, output
        scanner = parts[0]
        self._parts = []
        for index, part in enumerate(parts[:-1]):
            self._parts.append(part)
            if index == 0 or skid_all:
                self._parts.append(SkidBuffer(part.o.payload.shape()))
        self._parts.append(parts[-1])
        skids = len(self._parts) - len(parts)
        self.latency = sum(p.latency for p in parts) + skids * SKID_LATENCY
        # Transfers between a frame's last input and its last output, beside the latency.
        self.schedule_delay = (scanner.kernel_height // 2) * scanner.groups + scanner.drain_ticks
        super().__init__({"i": In(pixel_stream_signature(fmt, lanes)),
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
                 lanes=1):
        _check_taps_argument("kernel", kernel, two_d=True)
        check_rounding(shift, rounding)
        output = output or PixelFormat(fmt.channels, "uint8")
        _check_output(fmt, output)
        ky, kx = len(kernel), len(kernel[0])
        column = data.ArrayLayout(pixel_layout(fmt), ky)
        scanner = ColumnScanner(fmt, width, height, ky, kx, border=border,
                                border_value=border_value, lanes=lanes)
        row_window = RowWindow(column, width, height, kx, border=border,
                               constant_column=[[border_value] * fmt.channels] * ky,
                               lanes=lanes)
        weights = [[kernel[dy][dx] for dy in range(ky)] for dx in range(kx)]
        dot = WindowDot(column, kx, weights, (fmt.min, fmt.max), fmt.channels,
                        shift=shift, rounding=rounding, output=output, lanes=lanes)
        super().__init__(fmt, output, [scanner, row_window, dot], lanes)


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
                 lanes=1):
        _check_taps_argument("kx", kx, two_d=False)
        _check_taps_argument("ky", ky, two_d=False)
        check_rounding(shift, rounding)
        output = output or PixelFormat(fmt.channels, "uint8")
        _check_output(fmt, output)
        scanner = ColumnScanner(fmt, width, height, len(ky), len(kx), border=border,
                                border_value=border_value, lanes=lanes)
        column_dot = ColumnDot(fmt, ky, lanes)
        row_window = RowWindow(column_dot.out_element, width, height, len(kx), border=border,
                               constant_column=[sum(ky) * border_value] * fmt.channels,
                               lanes=lanes)
        dot = WindowDot(column_dot.out_element, len(kx), list(kx), column_dot.bounds,
                        fmt.channels, shift=shift, rounding=rounding, output=output,
                        lanes=lanes)
        super().__init__(fmt, output, [scanner, column_dot, row_window, dot], lanes)


def _check_output(fmt, output):
    if not isinstance(output, PixelFormat):
        raise TypeError(f"output must be a PixelFormat, not {output!r}")
    if output.channels != fmt.channels:
        raise ValueError(f"output must have {fmt.channels} channels, not {output.channels}")
