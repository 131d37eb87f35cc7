"""``cv2.addWeighted`` on uint8 in hardware: OpenCV's float32 arithmetic, exactly, in integers.

For each value, OpenCV's vector path (:mod:`rasterflow.golden.blend`) computes, in float32
with the weights rounded to float32 (``α, β, γ``)::

    out = saturate(rint(fma(a, α, fma(b, β, γ))))

The inner ``fma(b, β, γ)`` takes 256 values and the product ``a * α`` is exact, so both are
ROMs of 256 fixed-point numbers, and the outer ``fma`` is their exact sum ``S`` rounded to
float32. Only two questions about that rounding matter to ``rint``: which integer ``S`` is
nearest, and whether ``fl(S)`` is exactly a half-integer ``n + 1/2`` (then ``rint`` rounds
it to the even one of ``n``, ``n + 1``). Round to nearest gives ``n + 1/2`` exactly for
``|S - (n + 1/2)| <= 2**(e - 24)``, ``e`` the exponent of ``n + 1/2`` (ties go to it, its
significand being even). Below ``1/2`` float32 is twice as fine, but there both roundings
give 0 anyway: for ``n = 0`` only the bound above, ``1/2 + 2**-25``, matters. Every bound
that matters is a multiple of ``2**-25``.

Fixed point: ``F`` fraction bits, ``25 <= F <= 34``, ``F`` at least the fraction bits of
``α`` when it has at most 34, so that ``a * α`` is exact; each ROM word is
``floor(x * 2**F)`` and a sticky bit for the bits below (left out of a ROM that never sets
it). The sum of two words is then ``floor(S * 2**F)`` with ``S``'s own sticky bit, exactly,
whenever one of them has no sticky bit. Both can only have one when ``α`` has more than 34
fraction bits (``|α| < 2**-11``, so ``|a * α| < 2**-3``) and the ``fma(b, β, γ)`` word has
bits below ``2**-34`` (``|fma(b, β, γ)| < 2**-11``): then ``S`` and the approximate sum (off
by less than ``2**-33``) both lie below ``1/2``, and the answer is 0 either way.

``fma(b, β, γ)`` is clamped to ``±(ceil(255 |α|) + 256)`` (infinities included): beyond that,
``S`` is beyond ``±256`` whatever ``a``, and saturates the same way.
"""
import math
from fractions import Fraction

import numpy as np
from amaranth.hdl import C, Cat, Module, Mux, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.blend import float32_weights, fma32
from ..golden.pixel import PixelFormat
from .arith import bounded_shape
from .payload import joined_stream_signature, pixel_stream_signature
from .pipeline import StallPipeline
from .pointwise import _check_format

__all__ = ["AddWeighted", "fraction_bits", "term_tables", "ROUNDING_BITS", "MAX_FRACTION_BITS"]

#: Fraction bits every rounding decision needs (the bounds are multiples of ``2**-25``).
ROUNDING_BITS = 25
#: Beyond this many fraction bits ``a * α`` keeps a sticky bit (see the module docstring).
MAX_FRACTION_BITS = 34
#: Register stages: ROM read, sum, rounding decision, saturation.
LATENCY = 4


def fraction_bits(alpha):
    """``F`` for the float32 weight ``alpha``: its own fraction bits, within 25..34."""
    own = Fraction(float(alpha)).denominator.bit_length() - 1
    return min(max(ROUNDING_BITS, own), MAX_FRACTION_BITS)


def _fixed(value, frac_bits):
    """``(floor(value * 2**F), 1 if bits were dropped else 0)`` for a rational ``value``."""
    scaled = value * (1 << frac_bits)
    floor = math.floor(scaled)
    return floor, int(scaled != floor)


def term_tables(alpha, beta, gamma):
    """``(F, a_terms, b_terms)`` for the float32 weights: ``a_terms[a]`` is ``a * α`` and
    ``b_terms[b]`` is the clamped ``fma(b, β, γ)``, each as ``(floor(x * 2**F), sticky)``."""
    frac_bits = fraction_bits(alpha)
    alpha = Fraction(float(alpha))
    reach = math.ceil(255 * abs(alpha)) + 256
    a_terms = [_fixed(a * alpha, frac_bits) for a in range(256)]
    b_terms = []
    for value in fma32(np.arange(256), beta, gamma).tolist():
        clamped = reach if value >= reach else -reach if value <= -reach else Fraction(value)
        b_terms.append(_fixed(clamped, frac_bits))
    return frac_bits, a_terms, b_terms


def _bounds(table):
    values = [value for value, _ in table]
    return min(values), max(values)


class AddWeighted(wiring.Component):
    """``cv2.addWeighted(a, alpha, b, beta, gamma)`` on uint8, per channel: OpenCV's vector
    path, ``saturate(rint(fma(a, α, fma(b, β, γ))))`` in float32, exactly (see the module
    docstring). cv2 itself runs a scalar formula on the trailing values of some image sizes,
    which differs when ``gamma != 0``
    (:func:`~rasterflow.golden.blend.scalar_tail`); equal to
    :func:`~rasterflow.golden.blend.add_weighted_vector` for every input.

    Parameters
    ----------
    fmt_a, fmt_b : PixelFormat
        uint8, one channel count ``C``.
    alpha, beta, gamma : float
        Real numbers of magnitude at most float32's largest; the block keeps them rounded to
        float32 (``self.alpha``, ...), as OpenCV does.

    Members: ``i`` joined stream (``data.a[ch]``, ``data.b[ch]``, ``sof``, ``eol``);
    ``o`` pixel stream of ``C`` uint8.

    Latency, throughput, memory
    ---------------------------
    Latency 4 cycles (ROM read, sum, rounding decision, saturation); one pixel per cycle;
    ``schedule_delay`` 0. Per channel: two ROMs of 256 words (``a * α`` and
    ``fma(b, β, γ)`` with ``F`` fraction bits and a sticky bit, about ``F + 12`` bits wide
    for weights of magnitude up to 4 and ``|gamma| <= 255``: 38 bits each for
    ``alpha, beta = 1.5, -0.5`` or ``0.5, 0.5``), one adder of the sum's width, and that
    width + 20 bits of registers.
    """
    schedule_delay = 0

    def __init__(self, fmt_a: PixelFormat, fmt_b: PixelFormat, *, alpha, beta, gamma):
        _check_format("fmt_a", fmt_a, dtype="uint8")
        _check_format("fmt_b", fmt_b, dtype="uint8")
        if fmt_b.channels != fmt_a.channels:
            raise ValueError(f"fmt_b must have the {fmt_a.channels} channel(s) of fmt_a, "
                             f"not {fmt_b}")
        weights = float32_weights(alpha, beta, gamma)
        self.alpha, self.beta, self.gamma = (float(w) for w in weights)
        self.fraction_bits, self.a_terms, self.b_terms = term_tables(*weights)
        self.fmt_a, self.fmt_b = fmt_a, fmt_b
        self.out_fmt = PixelFormat(fmt_a.channels, "uint8")
        self.latency = LATENCY
        super().__init__({"i": In(joined_stream_signature({"a": fmt_a, "b": fmt_b})),
                          "o": Out(pixel_stream_signature(self.out_fmt))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        channels = range(self.out_fmt.channels)
        terms = [self._look_up(m, pipe, ch) for ch in channels]
        pipe.stage()
        sums = [self._sum(pipe, ch, *terms[ch]) for ch in channels]
        pipe.stage()
        decisions = [self._decide(pipe, ch, *sums[ch]) for ch in channels]
        pipe.stage()
        out = [self._saturate(pipe, ch, *decisions[ch]) for ch in channels]
        pipe.stage()
        m.d.comb += [self.o.payload.data[ch].eq(value) for ch, value in enumerate(out)]
        pipe.finish()
        return m

    def _rom(self, m, pipe, name, table, address):
        """``(value, sticky)`` of ``table[address]``, a ROM read when the pipeline advances
        (stage 1); the sticky bit is stored only if some word sets it."""
        fields = {"value": bounded_shape(*_bounds(table))}
        if any(sticky for _, sticky in table):
            fields["sticky"] = 1
        rom = Memory(shape=data.StructLayout(fields), depth=len(table),
                     init=[dict(zip(fields, word)) for word in table])
        m.submodules[name] = rom
        port = rom.read_port()
        m.d.comb += [port.addr.eq(address), port.en.eq(pipe.en)]
        return port.data.value, port.data.sticky if "sticky" in fields else C(0, 1)

    def _look_up(self, m, pipe, ch):
        data_in = self.i.payload.data
        return (self._rom(m, pipe, f"a_terms_c{ch}", self.a_terms, data_in.a[ch]),
                self._rom(m, pipe, f"b_terms_c{ch}", self.b_terms, data_in.b[ch]))

    def _sum(self, pipe, ch, a_term, b_term):
        """``floor(S * 2**F)`` and ``S``'s sticky bit (at most one term has one that
        matters); each term is a ``(value, sticky)`` pair."""
        (a_lo, a_hi), (b_lo, b_hi) = _bounds(self.a_terms), _bounds(self.b_terms)
        # At least F + 8 bits, for the slices of _decide.
        shape = bounded_shape(min(a_lo + b_lo, 0),
                              max(a_hi + b_hi, (256 << self.fraction_bits) - 1))
        total = pipe.register(a_term[0] + b_term[0], name=f"sum_c{ch}", shape=shape)
        sticky = pipe.register(a_term[1] | b_term[1], name=f"sticky_c{ch}")
        return total, sticky

    def _decide(self, pipe, ch, total, sticky):
        """``n = floor(S)`` (low 8 bits), whether ``rint(fl(S))`` is ``n + 1``, and whether
        ``S`` lies below 0 or at or beyond 256."""
        frac = self.fraction_bits
        n = total[frac:frac + 8]
        half, below_half = total[frac - 1], total[:frac - 1]
        captured = _captured(n, half, below_half, sticky, frac)
        return (pipe.register(n, name=f"n_c{ch}"),
                pipe.register(Mux(captured, n[0], half), name=f"up_c{ch}"),
                pipe.register(total < 0, name=f"negative_c{ch}"),
                pipe.register(total >= (256 << frac), name=f"over_c{ch}"))

    def _saturate(self, pipe, ch, n, up, negative, over):
        rounded = n + up
        value = Mux(negative, 0, Mux(over | rounded[8], 255, rounded[:8]))
        return pipe.register(value, name=f"out_c{ch}", shape=unsigned(8))


def _captured(n, half, below_half, sticky, frac_bits):
    """Whether ``fl(S)`` is the half-integer ``n + 1/2``, from ``S``'s fraction (its bit of
    weight 1/2, the ``F - 1`` bits below and the sticky bit) and ``n``'s bit length ``k``:
    ``S`` within ``2**j`` units of ``2**-F`` of ``n + 1/2``, ``j = F - 25 + k``; for
    ``n = 0``, only above it (below 1/2 the answer is 0 either way)."""
    # Above n + 1/2, the distance in units is below_half + (a fraction if sticky): at most
    # 2**j exactly when 2 * below_half + sticky is at most 2**(j + 1). Below, it is
    # 2**(F - 1) - below_half - (a fraction): at most 2**j when below_half >= 2**(F-1) - 2**j.
    lifted = Cat(sticky, below_half)

    def within(j):
        return Mux(half, lifted <= (2 << j), below_half >= (1 << (frac_bits - 1)) - (1 << j))

    result = half & (lifted <= (2 << (frac_bits - 25)))
    for k in range(1, 9):       # the highest set bit of n decides
        result = Mux(n[k - 1], within(frac_bits - 26 + k), result)
    return result
