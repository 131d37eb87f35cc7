"""Pointwise stages: one output pixel per input pixel, no window, no line buffers.

Each is a stall-all :class:`~rasterflow.hdl.stall.StallPipeline` between two pixel streams;
``sof``/``eol`` travel with their pixel. ``schedule_delay`` is 0 (an output needs no later
input), so ``F`` back-to-back frames take ``F * W * H + latency`` cycles.
"""
from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .arith import dot_latency, pipelined_dot
from .payload import channel_shape, pixel_stream_signature
from .stall import StallPipeline
from .sorting import minimum, pipelined_reduce, reduce_latency

__all__ = ["THRESHOLD_TYPES", "RGB2GRAY_WEIGHTS", "Threshold", "RGB2Gray", "ChannelMin",
           "ConstantDivide"]

THRESHOLD_TYPES = ("binary", "binary_inv", "trunc", "tozero", "tozero_inv")

#: OpenCV's Q0.15 ``COLOR_RGB2GRAY`` weights for 8-bit input (R, G, B); they sum to 2**15.
RGB2GRAY_WEIGHTS = (9798, 19235, 3735)


def _check_format(name, fmt, *, dtype=None, channels=None):
    if not isinstance(fmt, PixelFormat):
        raise TypeError(f"{name} must be a PixelFormat, not {fmt!r}")
    if dtype is not None and fmt.dtype != dtype:
        raise ValueError(f"{name} must have {dtype} channels, not {fmt}")
    if channels is not None and fmt.channels != channels:
        raise ValueError(f"{name} must have {channels} channels, not {fmt}")


def _check_int(name, value, lo=None, hi=None):
    if not isinstance(value, int) or isinstance(value, bool) or \
            (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f" in {lo}..{hi}" if lo is not None else ""
        raise ValueError(f"{name} must be an integer{bounds}, not {value!r}")


class _Pointwise(wiring.Component):
    schedule_delay = 0

    def __init__(self, fmt, out_fmt):
        self.fmt, self.out_fmt = fmt, out_fmt
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(out_fmt))})

    def _pipe(self, m):
        return StallPipeline(m, self.i, self.o, frame_markers=True)

    def _finish(self, m, pipe, values):
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(values)]
        pipe.finish()


class Threshold(_Pointwise):
    """``cv2.threshold`` on uint8, per channel, with an integer ``level`` (any) and ``maxval``
    (0..255)::

        binary      x > level ? maxval : 0        binary_inv  x > level ? 0 : maxval
        trunc       x > level ? level  : x        tozero      x > level ? x : 0
        tozero_inv  x > level ? 0      : x

    (saturated to uint8). Latency 1 cycle; one pixel per cycle; no memory.
    """
    latency = 1

    def __init__(self, fmt: PixelFormat, *, level, maxval=255, type="binary"):
        _check_format("fmt", fmt, dtype="uint8")
        _check_int("level", level)
        _check_int("maxval", maxval, 0, 255)
        if type not in THRESHOLD_TYPES:
            raise ValueError(f"type must be one of {', '.join(THRESHOLD_TYPES)}, not {type!r}")
        self.level, self.maxval, self.type = level, maxval, type
        super().__init__(fmt, fmt)

    def elaborate(self, platform):
        m = Module()
        pipe = self._pipe(m)
        # Compare against the level clipped to -1..255 (same answer for every uint8 x).
        level = min(max(self.level, -1), 255)
        truncated = min(max(self.level, 0), 255)
        out = []
        for ch in range(self.fmt.channels):
            x = self.i.payload.data[ch]
            above = x > level if 0 <= level < 255 else (level < 0)
            if_above, otherwise = {
                "binary": (self.maxval, 0),
                "binary_inv": (0, self.maxval),
                "trunc": (truncated, x),
                "tozero": (x, 0),
                "tozero_inv": (0, x),
            }[self.type]
            value = Mux(above, if_above, otherwise)
            out.append(pipe.register(value, name=f"out_c{ch}", shape=unsigned(8)))
        pipe.stage()
        self._finish(m, pipe, out)
        return m


class RGB2Gray(_Pointwise):
    """``cv2.cvtColor(RGB2GRAY)`` on 3 x uint8 (R, G, B):
    ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` -> 1 x uint8.

    Latency 4 cycles (products, two adder levels, rounding shift); one pixel per cycle.
    """
    latency = dot_latency(3) + 1

    def __init__(self, fmt: PixelFormat = PixelFormat(3, "uint8")):
        _check_format("fmt", fmt, dtype="uint8", channels=3)
        super().__init__(fmt, PixelFormat(1, "uint8"))

    def elaborate(self, platform):
        m = Module()
        pipe = self._pipe(m)
        terms = [(w, self.i.payload.data[ch], 0, 255) for ch, w in enumerate(RGB2GRAY_WEIGHTS)]
        (acc, _, _), = pipelined_dot(pipe, [terms], name="gray")
        gray = pipe.register((acc + (1 << 14)) >> 15, name="gray", shape=unsigned(8))
        pipe.stage()
        self._finish(m, pipe, [gray])
        return m


class ChannelMin(_Pointwise):
    """Minimum over the channels of each pixel (any integer type) -> 1 channel, same type.

    Latency ``max(1, ceil(ceil(log2 C) / 2))`` cycles (a min tree, two levels per register);
    one pixel per cycle.
    """
    def __init__(self, fmt: PixelFormat):
        _check_format("fmt", fmt)
        self.latency = self.latency_of(fmt)
        super().__init__(fmt, PixelFormat(1, fmt.dtype))

    @staticmethod
    def latency_of(fmt):
        """The min tree over ``fmt``'s channels."""
        return reduce_latency(fmt.channels)

    def elaborate(self, platform):
        m = Module()
        pipe = self._pipe(m)
        values = [self.i.payload.data[ch] for ch in range(self.fmt.channels)]
        out = pipelined_reduce(pipe, [values], minimum, shape=channel_shape(self.fmt),
                               name="min")
        self._finish(m, pipe, out)
        return m


class ConstantDivide(_Pointwise):
    """``(2 s + d) // (2 d)`` — ``s / d`` rounded half up — for each channel ``s`` in
    ``0..max_input`` (a non-negative input type), as ``output`` (which must hold the result).

    Exact multiply-shift: ``(2 s + d) * M >> S`` with the smallest ``S`` for which the
    reciprocal ``M = ceil(2**S / (2 d))`` provably gives the exact quotient for every ``s``
    in range (see :func:`_reciprocal`). Latency 1 cycle; one pixel per cycle.
    """
    latency = 1

    def __init__(self, fmt: PixelFormat, divisor, max_input, output: PixelFormat):
        _check_format("fmt", fmt)
        _check_format("output", output, channels=fmt.channels)
        _check_int("divisor", divisor, 1, 1 << 16)
        _check_int("max_input", max_input, 0, min(fmt.max, 1 << 24))
        if (2 * max_input + divisor) // (2 * divisor) > output.max:
            raise ValueError(f"output {output} cannot hold {max_input} / {divisor}")
        self.divisor, self.max_input = divisor, max_input
        self.multiplier, self.shift = _reciprocal(divisor, max_input)
        super().__init__(fmt, output)

    def elaborate(self, platform):
        m = Module()
        pipe = self._pipe(m)
        d, mult, shift = self.divisor, self.multiplier, self.shift
        out = []
        for ch in range(self.fmt.channels):
            s = self.i.payload.data[ch]
            product = pipe.register((2 * s + d) * mult, name=f"product_c{ch}",
                                    shape=unsigned(((2 * self.max_input + d) * mult).bit_length()))
            out.append(product >> shift)
        pipe.stage()
        self._finish(m, pipe, out)
        return m


def _reciprocal(divisor, max_input):
    """Smallest ``(M, S)`` with ``t * M >> S == t // D`` for all ``0 <= t <= t_max``
    (``D = 2 * divisor``, ``t_max = 2 * max_input + divisor``). With ``M = ceil(2**S / D)``
    and ``e = M * D - 2**S`` (``0 <= e < D``): ``t * M / 2**S = t / D + t * e / (D * 2**S)``,
    and the floor is unchanged when ``(t mod D) + t * e / 2**S < D``; ``t mod D <= D - 1``,
    so ``t_max * e < 2**S`` suffices."""
    d2, t_max = 2 * divisor, 2 * max_input + divisor
    shift = 0
    while True:
        mult = -(-(1 << shift) // d2)
        if t_max * (mult * d2 - (1 << shift)) < (1 << shift):
            return mult, shift
        shift += 1
