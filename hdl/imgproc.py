"""The filter library in hardware: OpenCV's smoothing, derivative, order-statistic and
morphology filters, each bit-exact with its golden model (``golden/imgproc.py``).

All windowed blocks are chains of the shared window generator (:class:`ColumnScanner` ->
optional per-column reduction -> :class:`RowWindow`) and a datapath, assembled by
:class:`~rasterflow.hdl.filters._WindowedStage`, so they inherit its stream behaviour: one
pixel per cycle, back-to-back frames, any input gaps and output stalls. Every block has

* ``latency``: register stages from the tick that completes a window to its output pixel,
* ``schedule_delay``: ``(Ky // 2) * G + ceil((Kx // 2) / P)`` transfers, the input a window
  waits for (``P`` pixels per transfer, ``G = ceil(W / P)`` transfers per line),

and ``F`` unstalled back-to-back frames take ``F * G * H + schedule_delay + latency`` cycles.
With ``lanes = P > 1`` the per-column and per-window datapaths run as ``P`` lockstep copies
(:class:`~rasterflow.hdl.stall.LaneParallel`).
Latencies below are written ``Lw + ...``: ``Lw`` is the window generator's share (scanner,
skid buffer, row window; see :class:`~rasterflow.hdl.filters._WindowedStage`), the rest is
the block's own datapath.
Multi-channel input is filtered per channel in parallel lanes of one datapath.

Linear filters reuse :class:`SepFilter2D` / :class:`Filter2D` with OpenCV's integer taps.
"""
from amaranth.hdl import Cat, Const, Module, Mux, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.imgproc import (LAPLACIAN_SIZES, MAX_SOBEL_ORDER, MEDIAN_SIZES, MORPH_SHAPES,
                              ODD_SIZES, SOBEL_SIZES, gaussian_kernel, sobel_kernels,
                              structuring_element)
from ..golden.pixel import PixelFormat
from .arith import bounded_shape, dot_latency, pipelined_dot
from .filters import (ColumnDot, Filter2D, SepFilter2D, WindowDot, _WindowedStage, column_source,
                      make_row_window, windowed_timing)
from .payload import channel_shape, pixel_layout, pixel_stream_signature
from .stall import StallPipeline, one_lane, per_lane
from .pointwise import ConstantDivide
from .sorting import (batcher_network, maximum, median_network, minimum, network_latency,
                      pipelined_network, pipelined_reduce, reduce_latency)
from .window import RowWindow, column_stream_layout, window_stream_layout

__all__ = ["GaussianBlur", "BoxFilter", "Sobel", "Scharr", "Laplacian", "GradientMagnitude",
           "MedianBlur", "Morphology", "Erode", "Dilate", "ColumnDots", "GradientNorm",
           "pipelined_gradient_norm", "gradient_norm_latency",
           "ColumnSort", "WindowMedian", "ColumnReduce", "WindowReduce", "MORPH_SHAPES",
           "MORPH_OPERATIONS", "GRADIENT_NORMS", "ODD_SIZES", "MEDIAN_SIZES", "SOBEL_SIZES",
           "MAX_SOBEL_ORDER", "LAPLACIAN_SIZES", "LAPLACIAN_KERNELS"]

# The allowed sizes and shapes are the golden models' (ODD_SIZES, ...), imported above: the
# hardware implements exactly what they compute.
MORPH_OPERATIONS = ("erode", "dilate")
GRADIENT_NORMS = ("l1", "l2")
#: ``cv2.Laplacian`` kernels by ksize (1: the 4-neighbour kernel; 3: OpenCV's 3x3 one).
LAPLACIAN_KERNELS = {
    1: [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    3: [[2, 0, 2], [0, -8, 0], [2, 0, 2]],
}
#: Root bits of the l2 magnitude's square root: the result saturates at 255.
ISQRT_BITS = 8
ISQRT_BITS_PER_STAGE = 2


def _check_format(fmt, *, dtype=None):
    if not isinstance(fmt, PixelFormat):
        raise TypeError(f"fmt must be a PixelFormat, not {fmt!r}")
    if dtype is not None and fmt.dtype != dtype:
        raise ValueError(f"fmt must have {dtype} channels, not {fmt}")


def _check_ksize(ksize, allowed, name="ksize"):
    if not isinstance(ksize, int) or isinstance(ksize, bool) or ksize not in allowed:
        shown = f"odd {min(allowed)}..{max(allowed)}" if len(allowed) > 4 else \
            ", ".join(map(str, allowed))
        raise ValueError(f"{name} must be one of {shown}, not {ksize!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


# --- Linear filters (SepFilter2D / Filter2D with OpenCV's taps) ---------------------------


class GaussianBlur(SepFilter2D):
    """``cv2.GaussianBlur(img, (k, k), sigma)`` on uint8: OpenCV's Q0.8 taps
    (``taps``, summing to 256) on both axes, one exact Q16 sum,
    ``saturate((v + 2**15) >> 16)``.

    Latency ``Lw + (1 + ceil(log2 k)) + (1 + ceil(log2 k)) + 1`` cycles after the window
    schedule; one pixel per cycle; memory ``k - 1`` lines of ``W`` pixels.
    """
    def __init__(self, fmt: PixelFormat, width, height, ksize, sigma=0, *, border="reflect101",
                 lanes=1, share=None):
        _check_format(fmt, dtype="uint8")
        _check_ksize(ksize, ODD_SIZES)
        if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or sigma < 0:
            raise ValueError(f"sigma must be a number >= 0, not {sigma!r}")
        self.taps = self.taps_of(ksize, sigma)
        super().__init__(fmt, width, height, self.taps, self.taps, shift=16,
                         rounding="half_up", border=border, output=fmt, lanes=lanes,
                         share=share)

    @staticmethod
    def taps_of(ksize, sigma):
        return [int(t) for t in gaussian_kernel(ksize, sigma)]

    @staticmethod
    def timing(width, ksize, sigma=0, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        taps = GaussianBlur.taps_of(ksize, sigma)
        return SepFilter2D.timing(width, taps, taps, lanes=lanes, share=share)


class BoxFilter(_WindowedStage):
    """``cv2.blur`` (``normalize``: ``(2 s + k*k) // (2 k*k)``, uint8) or
    ``cv2.boxFilter(..., CV_32S, normalize=False)`` (the window sum ``s``, int32), on uint8.

    Column sums, a row window of them, the row sum, then (normalized) an exact
    multiply-shift division. Latency ``Lw + (1 + ceil(log2 k)) + (1 + ceil(log2 k)) + 1``
    (+ 1 normalized) cycles after the window schedule; one pixel per cycle; memory ``k - 1``
    lines of ``W`` pixels.
    """
    def __init__(self, fmt: PixelFormat, width, height, ksize, *, normalize=True,
                 border="reflect101", lanes=1, share=None):
        _check_format(fmt, dtype="uint8")
        _check_ksize(ksize, ODD_SIZES)
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be a bool, not {normalize!r}")
        ones = [1] * ksize
        sums = PixelFormat(fmt.channels, "int32")
        output = fmt if normalize else sums
        scanner = column_source(fmt, width, height, ksize, ksize, border=border, lanes=lanes,
                                share=share)
        column_dot = ColumnDot(fmt, ones, lanes)
        row_window = make_row_window(column_dot.out_element, width, height, ksize,
                                     border=border, constant_column=[0] * fmt.channels,
                                     lanes=lanes, share=share)
        dot = WindowDot(column_dot.out_element, ksize, ones, column_dot.bounds, fmt.channels,
                        shift=0, rounding="half_even", output=sums, lanes=lanes)
        parts = [scanner, column_dot, row_window, dot]
        if normalize:
            parts.append(per_lane(
                lambda: ConstantDivide(sums, ksize * ksize, 255 * ksize * ksize, fmt),
                lanes, "data", "data"))
        super().__init__(fmt, output, parts, lanes)

    @staticmethod
    def timing(width, ksize, *, normalize=True, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        ones = [1] * ksize
        datapath = [ColumnDot.latency_of(ones), RowWindow.LATENCY, WindowDot.latency_of(ones)]
        if normalize:
            datapath.append(ConstantDivide.latency)
        return windowed_timing(width, ksize, ksize, datapath, lanes=lanes, share=share)


class Sobel(SepFilter2D):
    """``cv2.Sobel(img, CV_16S, dx, dy, ksize)`` on uint8: OpenCV's integer derivative taps
    (``kx``, ``ky``), exact sum saturated to int16.

    Latency as :class:`SepFilter2D` for those taps; one pixel per cycle; memory
    ``len(ky) - 1`` lines.
    """
    def __init__(self, fmt: PixelFormat, width, height, dx, dy, ksize=3, *,
                 border="reflect101", lanes=1, share=None):
        _check_format(fmt, dtype="uint8")
        for name, order in (("dx", dx), ("dy", dy)):
            if not isinstance(order, int) or isinstance(order, bool) or \
                    not 0 <= order <= MAX_SOBEL_ORDER:
                raise ValueError(f"{name} must be in 0..{MAX_SOBEL_ORDER}, not {order!r}")
        if dx + dy < 1:
            raise ValueError(f"dx + dy must be at least 1, not dx={dx}, dy={dy}")
        _check_ksize(ksize, SOBEL_SIZES)
        self.kx, self.ky = self.taps_of(dx, dy, ksize)
        super().__init__(fmt, width, height, self.kx, self.ky, border=border,
                         output=PixelFormat(fmt.channels, "int16"), lanes=lanes, share=share)

    @staticmethod
    def taps_of(dx, dy, ksize):
        """``(kx, ky)``: OpenCV's integer taps."""
        return tuple([int(t) for t in taps] for taps in sobel_kernels(dx, dy, ksize))

    @staticmethod
    def timing(width, dx, dy, ksize=3, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        return SepFilter2D.timing(width, *Sobel.taps_of(dx, dy, ksize), lanes=lanes,
                                  share=share)


class Scharr(SepFilter2D):
    """``cv2.Scharr(img, CV_16S, dx, dy)`` on uint8: ``[-1, 0, 1]`` along the derivative,
    ``[3, 10, 3]`` across it, saturated to int16. Latency as :class:`SepFilter2D`
    (3 x 3 taps); memory 2 lines."""
    def __init__(self, fmt: PixelFormat, width, height, dx, dy, *, border="reflect101",
                 lanes=1, share=None):
        _check_format(fmt, dtype="uint8")
        if (dx, dy) not in ((1, 0), (0, 1)):
            raise ValueError(f"(dx, dy) must be (1, 0) or (0, 1), not ({dx!r}, {dy!r})")
        super().__init__(fmt, width, height, *self.taps_of(dx), border=border,
                         output=PixelFormat(fmt.channels, "int16"), lanes=lanes, share=share)

    @staticmethod
    def taps_of(dx):
        """``(kx, ky)``: the derivative along x when ``dx``, else along y."""
        deriv, smooth = [-1, 0, 1], [3, 10, 3]
        return (deriv, smooth) if dx else (smooth, deriv)

    @staticmethod
    def timing(width, dx, dy, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        return SepFilter2D.timing(width, *Scharr.taps_of(dx), lanes=lanes, share=share)


class Laplacian(Filter2D):
    """``cv2.Laplacian(img, CV_16S, ksize)`` on uint8, ksize 1 or 3 (:data:`LAPLACIAN_KERNELS`),
    saturated to int16. Latency as :class:`Filter2D` (3 x 3 kernel); memory 2 lines."""
    def __init__(self, fmt: PixelFormat, width, height, ksize=1, *, border="reflect101",
                 lanes=1, share=None):
        _check_format(fmt, dtype="uint8")
        _check_ksize(ksize, LAPLACIAN_SIZES)
        super().__init__(fmt, width, height, LAPLACIAN_KERNELS[ksize], border=border,
                         output=PixelFormat(fmt.channels, "int16"), lanes=lanes, share=share)

    @staticmethod
    def timing(width, ksize=1, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        return Filter2D.timing(width, LAPLACIAN_KERNELS[ksize], lanes=lanes, share=share)


# --- Gradient magnitude -------------------------------------------------------------------


def _dot_bounds(taps, lo, hi):
    return (sum(min(t * lo, t * hi) for t in taps), sum(max(t * lo, t * hi) for t in taps))


class ColumnDots(wiring.Component):
    """Several vertical FIRs of each column: ``out[s][ch] = sum_dy tapsets[s][dy] *
    column[dy][ch]``, exact (one shared width). ``emit`` passes through.

    Latency ``1 + ceil(log2 T)`` cycles (``T`` = most nonzero taps in a set); one column
    per cycle; no memory.
    """
    def __init__(self, fmt: PixelFormat, tapsets):
        _check_format(fmt)
        tapsets = [list(t) for t in tapsets]
        if not tapsets or len({len(t) for t in tapsets}) != 1 or \
                any(not isinstance(v, int) for t in tapsets for v in t):
            raise ValueError(f"tapsets must be equally long lists of integers, not {tapsets!r}")
        self.fmt, self.tapsets = fmt, tapsets
        self.bounds = [_dot_bounds(t, fmt.min, fmt.max) for t in tapsets]
        shape = bounded_shape(min(b[0] for b in self.bounds), max(b[1] for b in self.bounds))
        self.out_element = data.ArrayLayout(data.ArrayLayout(shape, fmt.channels), len(tapsets))
        self.latency = self.latency_of(tapsets)
        column = data.ArrayLayout(pixel_layout(fmt), len(tapsets[0]))
        super().__init__({"i": In(stream.Signature(column_stream_layout(column))),
                          "o": Out(stream.Signature(column_stream_layout(self.out_element)))})

    @staticmethod
    def latency_of(tapsets):
        """The adder tree of the set with the most nonzero taps."""
        return dot_latency(max(sum(1 for v in t if v) for t in tapsets))

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        pipe.carry("emit", self.i.payload.emit)
        column = self.i.payload.column
        lanes = [[(t, column[dy][ch], self.fmt.min, self.fmt.max) for dy, t in enumerate(taps)]
                 for taps in self.tapsets for ch in range(self.fmt.channels)]
        sums = pipelined_dot(pipe, lanes, name="col")
        channels = self.fmt.channels
        for k, (acc, _, _) in enumerate(sums):
            m.d.comb += self.o.payload.column[k // channels][k % channels].eq(acc)
        m.d.comb += self.o.payload.emit.eq(pipe.carried["emit"])
        pipe.finish()
        return m


class GradientNorm(wiring.Component):
    """``|(gx, gy)|`` as uint8 from a row window of per-column ``(smooth, deriv)`` sums:
    ``gx = sum deriv_x[dx] * window[dx][0]``, ``gy = sum smooth_x[dx] * window[dx][1]``.

    ``l1``: ``min(255, |gx| + |gy|)``; ``l2``: ``min(255, round_half_up(sqrt(gx**2 + gy**2)))``,
    both by :func:`pipelined_gradient_norm` (exact). ``|g|`` beyond int16's range (OpenCV
    saturates Sobel's output to int16 first) saturates the result either way.

    Latency: ``1 + ceil(log2 T)`` (the dots) ``+ 1`` (abs) ``+ 1`` (l1) or
    ``+ 1 + 4 + 1`` (l2: squares, root, rounding) cycles; one window per cycle.
    """
    def __init__(self, element, kernel_width, deriv_x, smooth_x, bounds, channels, norm):
        _check_choice("norm", norm, GRADIENT_NORMS)
        for name, taps in (("deriv_x", deriv_x), ("smooth_x", smooth_x)):
            if len(taps) != kernel_width or any(not isinstance(v, int) for v in taps):
                raise ValueError(f"{name} must be {kernel_width} integers, not {taps!r}")
        self.deriv_x, self.smooth_x = list(deriv_x), list(smooth_x)
        self.in_bounds = bounds     # [(lo, hi) of the smooth sums, (lo, hi) of the deriv sums]
        self.channels, self.norm = channels, norm
        self.latency = self.latency_of(deriv_x, smooth_x, norm)
        super().__init__({"i": In(stream.Signature(window_stream_layout(element, kernel_width))),
                          "o": Out(pixel_stream_signature(PixelFormat(channels, "uint8")))})

    @staticmethod
    def latency_of(deriv_x, smooth_x, norm):
        """The dots' adder tree (the set with the most nonzero taps), then the norm."""
        terms = max(sum(1 for v in t if v) for t in (deriv_x, smooth_x))
        return dot_latency(terms) + gradient_norm_latency(norm)

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        window = self.i.payload.window
        (s_lo, s_hi), (d_lo, d_hi) = self.in_bounds
        lanes = []
        for ch in range(self.channels):
            lanes.append([(t, window[dx][0][ch], s_lo, s_hi) for dx, t in enumerate(self.deriv_x)])
            lanes.append([(t, window[dx][1][ch], d_lo, d_hi) for dx, t in enumerate(self.smooth_x)])
        grads = pipelined_dot(pipe, lanes, name="grad")
        pairs = [(grads[2 * ch][0], grads[2 * ch + 1][0]) for ch in range(self.channels)]
        out = pipelined_gradient_norm(pipe, pairs, self.norm)
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(out)]
        pipe.finish()
        return m


def gradient_norm_latency(norm):
    """Stages :func:`pipelined_gradient_norm` adds: abs, then 1 (``l1``: the sum) or 6
    (``l2``: squares, 4 root stages, rounding)."""
    _check_choice("norm", norm, GRADIENT_NORMS)
    tail = 1 if norm == "l1" else 1 + -(-ISQRT_BITS // ISQRT_BITS_PER_STAGE) + 1
    return 1 + tail


def pipelined_gradient_norm(pipe, pairs, norm):
    """Register ``|(gx, gy)|`` as uint8 for each ``(gx, gy)`` in ``pairs`` (one per channel;
    integer values of at least 10 bits), closing every stage it opens.

    ``l1``: ``min(255, |gx| + |gy|)``. ``l2``: ``min(255, round_half_up(sqrt(gx**2 +
    gy**2)))`` by an exact digit-by-digit integer square root: with ``a = min(|g|, 256)`` per
    axis and ``s = min(ax**2 + ay**2, 65535)``, ``r = isqrt(s)`` (8 root bits, 2 per register
    stage) and the remainder ``s - r**2``; the output is ``min(255, r + (s - r**2 > r))``.
    The clamps never change the result: any ``|g| >= 256`` or ``s >= 65536`` already gives
    255 (``isqrt(65535) = 255`` with remainder 510 > 255 rounds up to 256).

    Stages (:func:`gradient_norm_latency`): abs, then ``l1`` the sum, or ``l2`` the squares,
    the root (4) and the rounding. All channels share the stage boundaries.
    """
    mags = []
    for k, g in enumerate(g for pair in pairs for g in pair):
        # min(|g|, 256): the saturation test compares g itself (beside the negation, not
        # after it), and only the low 10 bits are negated (|g| <= 256 when unsaturated).
        low = g[:10].as_signed()
        saturated = (g > 256) | (g < -256)
        absolute = Mux(low < 0, -low, low)[:9]
        mags.append(pipe.register(Mux(saturated, 256, absolute), name=f"abs{k}",
                                  shape=unsigned(9)))
    pipe.stage()
    pairs = [(mags[2 * ch], mags[2 * ch + 1]) for ch in range(len(pairs))]
    if norm == "l1":
        out = []
        for ch, (ax, ay) in enumerate(pairs):
            total = ax + ay
            out.append(pipe.register(Mux(total > 255, 255, total), name=f"l1_c{ch}",
                                     shape=unsigned(8)))
    else:
        out = _l2(pipe, pairs)
    pipe.stage()
    return out


def _l2(pipe, pairs):
    """Closes the squares and root stages for every channel (the lanes share stage
    boundaries) and returns the rounded roots for the caller's final register stage."""
    squares = []
    for ch, (ax, ay) in enumerate(pairs):
        square = ax * ax + ay * ay
        squares.append(pipe.register(Mux(square > 65535, 65535, square), name=f"sq_c{ch}",
                                     shape=unsigned(16)))
    pipe.stage()
    lanes = [(s, Const(0, 10), Const(0, ISQRT_BITS)) for s in squares]   # (s, rem, root)
    for step in range(ISQRT_BITS):
        bit = ISQRT_BITS - 1 - step
        next_lanes = []
        for s, rem, root in lanes:
            current = Cat(s[2 * bit:2 * bit + 2], rem)      # rem * 4 + next two bits
            trial = Cat(Const(1, 2), root)                   # root * 4 + 1
            fits = current >= trial
            next_lanes.append((s, Mux(fits, current - trial, current), Cat(fits, root)))
        lanes = next_lanes
        if (step + 1) % ISQRT_BITS_PER_STAGE == 0 or step == ISQRT_BITS - 1:
            lanes = [(pipe.register(s, name=f"s_c{ch}_b{bit}", shape=unsigned(16)),
                      pipe.register(rem, name=f"rem_c{ch}_b{bit}", shape=unsigned(10)),
                      pipe.register(root, name=f"root_c{ch}_b{bit}",
                                    shape=unsigned(ISQRT_BITS)))
                     for ch, (s, rem, root) in enumerate(lanes)]
            pipe.stage()
    out = []
    for ch, (_, rem, root) in enumerate(lanes):
        rounded = Mux(rem > root, root + 1, root)
        out.append(pipe.register(Mux(rounded > 255, 255, rounded), name=f"l2_c{ch}",
                                 shape=unsigned(8)))
    return out


class GradientMagnitude(_WindowedStage):
    """Sobel gradient magnitude of uint8 images: ``gx = Sobel(1, 0, ksize)``,
    ``gy = Sobel(0, 1, ksize)`` from one shared ``K x K`` window (``K = 3`` for ksize 1), then
    :class:`GradientNorm` (``l1`` or ``l2``) -> uint8 per channel.

    Per column, the smoothing and derivative vertical taps (:class:`ColumnDots`); per
    window, the derivative horizontal taps on the smoothed sums (``gx``) and the smoothing
    ones on the differentiated sums (``gy``). Latency
    ``Lw + (1 + ceil(log2 Ty)) + GradientNorm.latency`` cycles after the window
    schedule; one pixel per cycle; memory ``K - 1`` lines of ``W`` pixels.
    """
    def __init__(self, fmt: PixelFormat, width, height, *, ksize=3, norm="l1",
                 border="reflect101", lanes=1, share=None):
        _check_format(fmt, dtype="uint8")
        _check_ksize(ksize, SOBEL_SIZES)
        _check_choice("norm", norm, GRADIENT_NORMS)
        size, deriv_x, smooth_x, smooth_y, deriv_y = self.taps_of(ksize)
        scanner = column_source(fmt, width, height, size, size, border=border, lanes=lanes,
                                share=share)
        columns = per_lane(lambda: ColumnDots(fmt, [smooth_y, deriv_y]), lanes,
                           "column", "column")
        sums = one_lane(columns)
        row_window = make_row_window(sums.out_element, width, height, size, border=border,
                                     constant_column=[[0] * fmt.channels] * 2, lanes=lanes,
                                     share=share)
        norm_part = per_lane(
            lambda: GradientNorm(sums.out_element, size, deriv_x, smooth_x, sums.bounds,
                                 fmt.channels, norm), lanes, "window", "data")
        super().__init__(fmt, PixelFormat(fmt.channels, "uint8"),
                         [scanner, columns, row_window, norm_part], lanes)

    @staticmethod
    def taps_of(ksize):
        """``(K, deriv_x, smooth_x, smooth_y, deriv_y)``: Sobel's taps for ``gx`` and ``gy``,
        each centred in ``K`` taps."""
        deriv_x, smooth_y = Sobel.taps_of(1, 0, ksize)
        smooth_x, deriv_y = Sobel.taps_of(0, 1, ksize)
        size = max(len(deriv_x), len(deriv_y))

        def centred(taps):
            pad = (size - len(taps)) // 2
            return [0] * pad + taps + [0] * pad

        return (size, *map(centred, (deriv_x, smooth_x, smooth_y, deriv_y)))

    @staticmethod
    def timing(width, ksize=3, norm="l1", *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        size, deriv_x, smooth_x, smooth_y, deriv_y = GradientMagnitude.taps_of(ksize)
        datapath = [ColumnDots.latency_of([smooth_y, deriv_y]), RowWindow.LATENCY,
                    GradientNorm.latency_of(deriv_x, smooth_x, norm)]
        return windowed_timing(width, size, size, datapath, lanes=lanes, share=share)


# --- Median -------------------------------------------------------------------------------


class ColumnSort(wiring.Component):
    """Sorts each column ascending, per channel, with :func:`batcher_network` (3, 9, 16
    comparators for 3, 5, 7 rows). ``emit`` passes through.

    Latency ``ceil(depth / 2)`` cycles (``depth`` comparator layers: 3, 5, 6 for 3, 5, 7);
    one column per cycle; no memory.
    """
    def __init__(self, fmt: PixelFormat, size):
        _check_format(fmt)
        _check_ksize(size, ODD_SIZES, "size")
        self.fmt, self.size = fmt, size
        self.network = batcher_network(size)
        self.comparators = len(self.network)
        self.latency = self.latency_of(size)
        column = data.ArrayLayout(pixel_layout(fmt), size)
        super().__init__({"i": In(stream.Signature(column_stream_layout(column))),
                          "o": Out(stream.Signature(column_stream_layout(column)))})

    @staticmethod
    def latency_of(size):
        return network_latency(batcher_network(size))

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        pipe.carry("emit", self.i.payload.emit)
        column = self.i.payload.column
        lanes = [[column[dy][ch] for dy in range(self.size)] for ch in range(self.fmt.channels)]
        out = pipelined_network(pipe, lanes, self.network, list(range(self.size)),
                                shape=channel_shape(self.fmt), name="sort")
        for ch, lane in enumerate(out):
            m.d.comb += [self.o.payload.column[dy][ch].eq(v) for dy, v in enumerate(lane)]
        m.d.comb += self.o.payload.emit.eq(pipe.carried["emit"])
        pipe.finish()
        return m


class WindowMedian(wiring.Component):
    """The median of a ``K x K`` window of *sorted* columns (:class:`ColumnSort`), per
    channel, by the pruned network :func:`~rasterflow.hdl.sorting.median_network`.

    ``comparators`` / ``full_comparators`` / ``half_comparators`` count its compare units
    (a half one drives only its min or its max). Latency ``ceil(depth / 2)`` cycles; one
    window per cycle; no memory.
    """
    def __init__(self, fmt: PixelFormat, ksize):
        _check_format(fmt)
        _check_ksize(ksize, MEDIAN_SIZES)
        self.fmt, self.ksize = fmt, ksize
        self.network = median_network(ksize)
        self.comparators = len(self.network)
        self.full_comparators = sum(1 for c in self.network if c[2] and c[3])
        self.half_comparators = self.comparators - self.full_comparators
        self.latency = self.latency_of(ksize)
        column = data.ArrayLayout(pixel_layout(fmt), ksize)
        super().__init__({"i": In(stream.Signature(window_stream_layout(column, ksize))),
                          "o": Out(pixel_stream_signature(fmt))})

    @staticmethod
    def latency_of(ksize):
        return network_latency(median_network(ksize))

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        k, window = self.ksize, self.i.payload.window
        lanes = [[window[dx][dy][ch] for dx in range(k) for dy in range(k)]
                 for ch in range(self.fmt.channels)]
        out = pipelined_network(pipe, lanes, self.network, [k * k // 2],
                                shape=channel_shape(self.fmt), name="median")
        m.d.comb += [self.o.payload.data[ch].eq(lane[0]) for ch, lane in enumerate(out)]
        pipe.finish()
        return m


class MedianBlur(_WindowedStage):
    """``cv2.medianBlur(img, k)``, k = 3, 5, 7 (replicate border), per channel.

    Each column leaving the line buffers is sorted once (:class:`ColumnSort`, shared by the
    ``k`` windows containing it); each window of sorted columns goes through a pruned median
    network (:class:`WindowMedian`). ``comparators`` gives per-pixel, per-channel counts:
    3x3: 3 + 11 (3 of them full), 5x5: 9 + 66 (42 full), 7x7: 16 + 198 (150 full); the window
    network has 7, 16, 24 comparator layers (4, 8, 12 register stages).
    Latency ``Lw + ColumnSort.latency + WindowMedian.latency`` cycles after the window
    schedule; one pixel per cycle; memory ``k - 1`` lines of ``W`` pixels and ``k - 1``
    registers of sorted columns.
    """
    def __init__(self, fmt: PixelFormat, width, height, ksize, *, lanes=1, share=None):
        _check_format(fmt)
        _check_ksize(ksize, MEDIAN_SIZES)
        scanner = column_source(fmt, width, height, ksize, ksize, border="replicate",
                                lanes=lanes, share=share)
        column_sort = per_lane(lambda: ColumnSort(fmt, ksize), lanes, "column", "column")
        column = data.ArrayLayout(pixel_layout(fmt), ksize)
        row_window = make_row_window(column, width, height, ksize, border="replicate",
                                     constant_column=[[0] * fmt.channels] * ksize,  # unused
                                     lanes=lanes, share=share)
        median = per_lane(lambda: WindowMedian(fmt, ksize), lanes, "window", "data")
        self.comparators = {"column": one_lane(column_sort).comparators,
                            "window": one_lane(median).comparators,
                            "window_full": one_lane(median).full_comparators,
                            "window_half": one_lane(median).half_comparators}
        parts = [scanner, column_sort, row_window, median]
        super().__init__(fmt, fmt, parts, lanes)

    @staticmethod
    def timing(width, ksize, *, lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        datapath = [ColumnSort.latency_of(ksize), RowWindow.LATENCY,
                    WindowMedian.latency_of(ksize)]
        return windowed_timing(width, ksize, ksize, datapath, lanes=lanes, share=share)


# --- Morphology ---------------------------------------------------------------------------


class ColumnReduce(wiring.Component):
    """Min or max of each column, per channel (a tree, two levels per register).
    Latency ``max(1, ceil(ceil(log2 K) / 2))`` cycles; one column per cycle."""
    def __init__(self, fmt: PixelFormat, size, operation):
        _check_format(fmt)
        _check_ksize(size, ODD_SIZES, "size")
        _check_choice("operation", operation, ("min", "max"))
        self.fmt, self.size, self.operation = fmt, size, operation
        self.latency = self.latency_of(size)
        column = data.ArrayLayout(pixel_layout(fmt), size)
        super().__init__({"i": In(stream.Signature(column_stream_layout(column))),
                          "o": Out(stream.Signature(column_stream_layout(pixel_layout(fmt))))})

    latency_of = staticmethod(reduce_latency)

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        pipe.carry("emit", self.i.payload.emit)
        column = self.i.payload.column
        lanes = [[column[dy][ch] for dy in range(self.size)] for ch in range(self.fmt.channels)]
        op = minimum if self.operation == "min" else maximum
        out = pipelined_reduce(pipe, lanes, op, shape=channel_shape(self.fmt), name="col")
        m.d.comb += [self.o.payload.column[ch].eq(v) for ch, v in enumerate(out)]
        m.d.comb += self.o.payload.emit.eq(pipe.carried["emit"])
        pipe.finish()
        return m


class WindowReduce(wiring.Component):
    """Min or max over a row window, per channel. With ``mask=None`` each window element is
    a pixel (already reduced per column) and all ``Kx`` take part; with a ``Ky x Kx`` 0/1
    ``mask`` each element is a column of ``Ky`` pixels and the taps where ``mask[dy][dx]``
    take part. Latency ``max(1, ceil(ceil(log2 N) / 2))`` cycles for ``N`` taps."""
    def __init__(self, fmt: PixelFormat, kernel_width, operation, mask=None):
        _check_format(fmt)
        _check_ksize(kernel_width, ODD_SIZES, "kernel_width")
        _check_choice("operation", operation, ("min", "max"))
        if mask is not None:
            mask = [[bool(v) for v in row] for row in mask]
            if any(len(row) != kernel_width for row in mask) or not any(map(any, mask)):
                raise ValueError(f"mask must be rows of {kernel_width} 0/1 values with a 1")
        self.fmt, self.kernel_width, self.operation, self.mask = fmt, kernel_width, operation, mask
        self.latency = self.latency_of(kernel_width, mask)
        element = pixel_layout(fmt) if mask is None else \
            data.ArrayLayout(pixel_layout(fmt), len(mask))
        super().__init__({"i": In(stream.Signature(window_stream_layout(element, kernel_width))),
                          "o": Out(pixel_stream_signature(fmt))})

    @staticmethod
    def latency_of(kernel_width, mask=None):
        """The min/max tree of the taps: all ``kernel_width``, or the ones ``mask`` sets."""
        return reduce_latency(kernel_width if mask is None else sum(map(sum, mask)))

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        window = self.i.payload.window
        lanes = []
        for ch in range(self.fmt.channels):
            if self.mask is None:
                lanes.append([window[dx][ch] for dx in range(self.kernel_width)])
            else:
                lanes.append([window[dx][dy][ch] for dy, row in enumerate(self.mask)
                              for dx, on in enumerate(row) if on])
        op = minimum if self.operation == "min" else maximum
        out = pipelined_reduce(pipe, lanes, op, shape=channel_shape(self.fmt), name="win")
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(out)]
        pipe.finish()
        return m


class Morphology(_WindowedStage):
    """``cv2.erode`` / ``cv2.dilate`` with ``getStructuringElement(shape, (k, k))`` and
    OpenCV's default border (outside counts as the type's max for erode, min for dilate, so
    it never wins), any integer type, per channel.

    ``rect`` is separable: a column min/max between the line buffers and the row window
    (:class:`ColumnReduce`), then a row min/max (:class:`WindowReduce`). ``cross`` and
    ``ellipse`` keep whole columns in the row window and reduce the element's taps.
    Latency ``Lw + [ColumnReduce.latency] + WindowReduce.latency`` cycles after the window
    schedule;
    one pixel per cycle; memory ``k - 1`` lines of ``W`` pixels.
    """
    def __init__(self, fmt: PixelFormat, width, height, ksize, *, shape="rect",
                 operation="erode", lanes=1, share=None):
        _check_format(fmt)
        _check_ksize(ksize, ODD_SIZES)
        _check_choice("shape", shape, MORPH_SHAPES)
        _check_choice("operation", operation, MORPH_OPERATIONS)
        self.shape, self.operation = shape, operation
        reduce = "min" if operation == "erode" else "max"
        outside = fmt.max if operation == "erode" else fmt.min
        scanner = column_source(fmt, width, height, ksize, ksize, border="constant",
                                border_value=outside, lanes=lanes, share=share)
        if shape == "rect":
            column_reduce = per_lane(lambda: ColumnReduce(fmt, ksize, reduce), lanes,
                                     "column", "column")
            row_window = make_row_window(pixel_layout(fmt), width, height, ksize,
                                         border="constant",
                                         constant_column=[outside] * fmt.channels,
                                         lanes=lanes, share=share)
            parts = [scanner, column_reduce, row_window,
                     per_lane(lambda: WindowReduce(fmt, ksize, reduce), lanes, "window", "data")]
        else:
            self.element = self.element_of(shape, ksize)
            column = data.ArrayLayout(pixel_layout(fmt), ksize)
            row_window = make_row_window(column, width, height, ksize, border="constant",
                                         constant_column=[[outside] * fmt.channels] * ksize,
                                         lanes=lanes, share=share)
            parts = [scanner, row_window,
                     per_lane(lambda: WindowReduce(fmt, ksize, reduce, self.element), lanes,
                              "window", "data")]
        super().__init__(fmt, fmt, parts, lanes)

    @staticmethod
    def element_of(shape, ksize):
        """The structuring element as rows of 0/1 ints."""
        return [[int(v) for v in row] for row in structuring_element(shape, ksize)]

    @staticmethod
    def timing(width, ksize, *, shape="rect", lanes=1, share=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        if shape == "rect":
            datapath = [ColumnReduce.latency_of(ksize), RowWindow.LATENCY,
                        WindowReduce.latency_of(ksize)]
        else:
            datapath = [RowWindow.LATENCY,
                        WindowReduce.latency_of(ksize, Morphology.element_of(shape, ksize))]
        return windowed_timing(width, ksize, ksize, datapath, lanes=lanes, share=share)


class Erode(Morphology):
    """:class:`Morphology` with ``operation="erode"``."""
    def __init__(self, fmt, width, height, ksize, *, shape="rect", lanes=1, share=None):
        super().__init__(fmt, width, height, ksize, shape=shape, operation="erode",
                         lanes=lanes, share=share)


class Dilate(Morphology):
    """:class:`Morphology` with ``operation="dilate"``."""
    def __init__(self, fmt, width, height, ksize, *, shape="rect", lanes=1, share=None):
        super().__init__(fmt, width, height, ksize, shape=shape, operation="dilate",
                         lanes=lanes, share=share)
