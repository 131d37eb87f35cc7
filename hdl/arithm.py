"""OpenCV's per-element arithmetic in hardware, each bit-exact with ``golden/arithm.py``.

Two-input ops take one joined stream (:func:`~rasterflow.hdl.payload.joined_stream_signature`
with fields ``a`` and ``b`` of one format, one pixel of each per transfer) and
:class:`BitwiseNot` one pixel stream. Each is a stall-all
:class:`~rasterflow.hdl.stall.StallPipeline`; ``sof``/``eol`` travel with their pixel,
``schedule_delay`` is 0, and ``F`` back-to-back frames of ``W x H`` take
``F * W * H + latency`` cycles. Channels are computed in parallel.
"""
from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import DTYPES as PIXEL_DTYPES
from ..golden.pixel import PixelFormat
from .arith import clamp
from .imgproc import gradient_norm_latency, pipelined_gradient_norm
from .payload import channel_shape, joined_stream_signature, pixel_stream_signature
from .stall import StallPipeline
from .pointwise import _check_format
from .sorting import maximum, minimum

__all__ = ["DTYPES", "Add", "Subtract", "AbsDiff", "Min", "Max", "BitwiseAnd", "BitwiseOr",
           "BitwiseXor", "BitwiseNot", "Magnitude"]

#: Channel types the two-input ops and :class:`BitwiseNot` accept: all of them.
DTYPES = tuple(PIXEL_DTYPES)


class _Elementwise(wiring.Component):
    """A pixel of ``out_fmt`` per input pixel (or pair of pixels), from ``_expression`` of
    each channel's operands, registered once.

    Parameters
    ----------
    fmt : PixelFormat
        Format of the input(s) ``a``, ``b`` and, unless a subclass says otherwise, of the
        output (any channel count and type).
    """
    schedule_delay = 0
    latency = 1
    arity = 2

    def __init__(self, fmt: PixelFormat, out_fmt: PixelFormat = None):
        _check_format("fmt", fmt)
        self.fmt = fmt
        self.out_fmt = fmt if out_fmt is None else out_fmt
        inputs = joined_stream_signature({"a": fmt, "b": fmt}) if self.arity == 2 else \
            pixel_stream_signature(fmt)
        super().__init__({"i": In(inputs), "o": Out(pixel_stream_signature(self.out_fmt))})

    def _operands(self):
        """Per channel, the tuple of input values."""
        data = self.i.payload.data
        if self.arity == 1:
            return [(data[ch],) for ch in range(self.fmt.channels)]
        return [(data.a[ch], data.b[ch]) for ch in range(self.fmt.channels)]

    def _datapath(self, pipe):
        out = [pipe.register(self._expression(*operands), name=f"out_c{ch}",
                             shape=channel_shape(self.out_fmt))
               for ch, operands in enumerate(self._operands())]
        pipe.stage()
        return out

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        out = self._datapath(pipe)
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(out)]
        pipe.finish()
        return m


class Add(_Elementwise):
    """``cv2.add(a, b)``: ``saturate(a + b)`` per channel.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. Per channel: an adder one bit wider than the type
    and a clamp (one comparator and multiplexer per side that can overflow).
    """
    def _expression(self, a, b):
        lo, hi = self.fmt.min, self.fmt.max
        return clamp(a + b, 2 * lo, 2 * hi, lo, hi)


class Subtract(_Elementwise):
    """``cv2.subtract(a, b)``: ``saturate(a - b)`` per channel.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. Per channel: a subtractor one bit wider than the
    type and a clamp (one comparator and multiplexer per side that can overflow: only 0 for
    unsigned types).
    """
    def _expression(self, a, b):
        lo, hi = self.fmt.min, self.fmt.max
        return clamp(a - b, lo - hi, hi - lo, lo, hi)


class AbsDiff(_Elementwise):
    """``cv2.absdiff(a, b)``: ``saturate(|a - b|)`` per channel, of the input type (so signed
    types clamp at their maximum: int8 ``|-128 - 127|`` gives 127).

    Notes
    -----
    ``|a - b|`` is ``a < b ? b - a : a - b``. Latency 1 cycle; one pixel per cycle. Per
    channel: a comparator, two subtractors, a multiplexer and, for signed types, a clamp.
    """
    def _expression(self, a, b):
        return clamp(Mux(a < b, b - a, a - b), 0, self.fmt.max - self.fmt.min,
                     self.fmt.min, self.fmt.max)


class Min(_Elementwise):
    """``cv2.min(a, b)`` per channel.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. Per channel: a comparator and a multiplexer.
    """
    def _expression(self, a, b):
        return minimum(a, b)


class Max(_Elementwise):
    """``cv2.max(a, b)`` per channel.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. Per channel: a comparator and a multiplexer.
    """
    def _expression(self, a, b):
        return maximum(a, b)


class BitwiseAnd(_Elementwise):
    """``cv2.bitwise_and(a, b)``: ``a & b`` on the two's-complement bits.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. One gate per bit.
    """
    def _expression(self, a, b):
        return a & b


class BitwiseOr(_Elementwise):
    """``cv2.bitwise_or(a, b)``: ``a | b`` on the two's-complement bits.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. One gate per bit.
    """
    def _expression(self, a, b):
        return a | b


class BitwiseXor(_Elementwise):
    """``cv2.bitwise_xor(a, b)``: ``a ^ b`` on the two's-complement bits.

    Notes
    -----
    Latency 1 cycle; one pixel per cycle. One gate per bit.
    """
    def _expression(self, a, b):
        return a ^ b


class BitwiseNot(_Elementwise):
    """``cv2.bitwise_not(x)``: every bit inverted, on one pixel stream.

    Parameters
    ----------
    fmt : PixelFormat
        Format of the input and the output (any channel count and type).

    Notes
    -----
    Latency 1 cycle (the register keeps the output stable under stalls); one pixel per
    cycle. One inverter per bit.
    """
    arity = 1

    def _expression(self, x):
        return ~x


class Magnitude(_Elementwise):
    """``|(gx, gy)|`` of two int16 gradient streams (``a = gx``, ``b = gy``) as uint8, per
    channel: ``norm="l1"`` ``min(255, |gx| + |gy|)``, ``norm="l2"``
    ``min(255, round_half_up(sqrt(gx**2 + gy**2)))`` — exactly
    :func:`~rasterflow.golden.arithm.magnitude`, by
    :func:`~rasterflow.hdl.imgproc.pipelined_gradient_norm` (the datapath of
    :class:`~rasterflow.hdl.imgproc.GradientNorm`).

    Parameters
    ----------
    fmt : PixelFormat
        Format of ``gx`` and ``gy``: int16, any channel count (the output has as many uint8
        channels).
    norm : {"l1", "l2"}

    Notes
    -----
    Latency 2 cycles (abs, sum) for ``l1``, 7 for ``l2`` (abs, squares, 4 stages of an
    exact digit-by-digit square root, rounding); one pixel per cycle. Per channel: two
    9-bit absolute values, then ``l1`` a 10-bit adder and clamp, or ``l2`` two 9-bit
    squarers, a 16-bit root of 8 compare-subtract steps and a rounding adder.
    """
    def __init__(self, fmt: PixelFormat, norm):
        _check_format("fmt", fmt, dtype="int16")
        self.latency = self.latency_of(norm)      # raises for a norm not in l1, l2
        self.norm = norm
        super().__init__(fmt, PixelFormat(fmt.channels, "uint8"))

    latency_of = staticmethod(gradient_norm_latency)

    def _datapath(self, pipe):
        return pipelined_gradient_norm(pipe, self._operands(), self.norm)
