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
from amaranth.hdl import C, Cat, Module, Mux, Shape, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.blend import float32_weights, fma32
from ..golden.pixel import PixelFormat
from .arith import bounded_shape
from .payload import joined_stream_signature, pixel_stream_signature
from .stall import StallPipeline
from .pointwise import _check_format

__all__ = ["AddWeighted", "fraction_bits", "term_tables", "ROUNDING_BITS", "MAX_FRACTION_BITS"]

#: Fraction bits every rounding decision needs (the bounds are multiples of ``2**-25``).
ROUNDING_BITS = 25
#: Beyond this many fraction bits ``a * α`` keeps a sticky bit (see the module docstring).
MAX_FRACTION_BITS = 34


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
    docstring); equal to :func:`~rasterflow.golden.blend.add_weighted_vector` for every
    input. cv2 itself runs a scalar formula on the trailing values of some image sizes,
    which differs when ``gamma != 0`` (:func:`~rasterflow.golden.blend.scalar_tail`).

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
    Latency 7 cycles: ROM read, ROM output register (block RAM clock-to-out stays out of
    the adder), the sum in two halves (two short carry chains), bit tests of the fraction,
    rounding decision, saturation. One pixel per cycle; ``schedule_delay`` 0.

    Per channel: two ROMs of 256 words, ``floor(x * 2**F)`` (``F + 7`` to ``F + 11`` bits
    for weights of magnitude up to 4 and ``|gamma| <= 255``) and a sticky bit where some
    word needs one; an adder of ``F + 8`` to ``F + 12`` bits; about 100 LUTs and 200
    flip-flops. Yosys drops the ROM bits no word sets: a channel takes 4 iCE40
    ``SB_RAM40_4K`` or 2 ECP5 ``DP16KD`` for ``0.1, 0.2, 0.3`` (``F = 27``, words of 32 and
    33 bits), 2 of either for the unsharp mask ``1.5, -0.5, 0``. The ROMs are inferred
    block RAM, which on ECP5 leaves the ``DP16KD`` output register unused (see
    :mod:`rasterflow.hdl.bram`): its clock-to-out bounds the clock near 138 MHz there.
    """
    schedule_delay = 0
    #: The per-channel steps, one register stage each.
    _STEPS = ("_look_up", "_hold", "_sum_low", "_sum_high", "_test", "_decide", "_saturate")
    latency = len(_STEPS)

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
        super().__init__({"i": In(joined_stream_signature({"a": fmt_a, "b": fmt_b})),
                          "o": Out(pixel_stream_signature(self.out_fmt))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        values = [() for _ in range(self.out_fmt.channels)]
        for step in self._STEPS:
            values = [getattr(self, step)(m, pipe, ch, *v) for ch, v in enumerate(values)]
            pipe.stage()
        m.d.comb += [self.o.payload.data[ch].eq(out) for ch, (out,) in enumerate(values)]
        pipe.finish()
        return m

    def _rom(self, m, pipe, name, table, address):
        """``(value, sticky)`` of ``table[address]``, a ROM read when the pipeline advances;
        the sticky bit is stored only if some word sets it."""
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
        """``a * α`` and ``fma(b, β, γ)``, each as ``(value, sticky)``."""
        data_in = self.i.payload.data
        return (*self._rom(m, pipe, f"a_terms_c{ch}", self.a_terms, data_in.a[ch]),
                *self._rom(m, pipe, f"b_terms_c{ch}", self.b_terms, data_in.b[ch]))

    def _hold(self, m, pipe, ch, *terms):
        """The ROM words, registered, values extended to the sum's width."""
        names = ("a_value", "a_sticky", "b_value", "b_sticky")
        shapes = (self._sum_shape(), 1, self._sum_shape(), 1)
        return tuple(pipe.register(term, name=f"{name}_c{ch}", shape=shape)
                     for name, term, shape in zip(names, terms, shapes))

    def _sum_low(self, m, pipe, ch, a_value, a_sticky, b_value, b_sticky):
        """The sum of the low halves with its carry, and the high halves: two short carry
        chains instead of one long one. All are bits of words of the sum's width, whose
        sum modulo ``2**width`` is the exact one (it lies in the sum's range)."""
        split = self._split()
        return (pipe.register(a_value[:split] + b_value[:split], name=f"sum_low_c{ch}"),
                pipe.register(a_value[split:], name=f"a_high_c{ch}"),
                pipe.register(b_value[split:], name=f"b_high_c{ch}"),
                pipe.register(a_sticky | b_sticky, name=f"sticky_s3_c{ch}"))

    def _sum_high(self, m, pipe, ch, low, a_high, b_high, sticky):
        """``floor(S * 2**F)`` and ``S``'s sticky bit (at most one term has one that
        matters)."""
        split = self._split()
        high = (a_high + b_high + low[split])[:len(a_high)]
        return (pipe.register(Cat(low[:split], high), name=f"sum_c{ch}",
                              shape=self._sum_shape()),
                pipe.register(sticky, name=f"sticky_s4_c{ch}"))

    def _sum_shape(self):
        """The sum's bounds, widened to at least ``F + 8`` bits for the slices of _test."""
        (a_lo, a_hi), (b_lo, b_hi) = _bounds(self.a_terms), _bounds(self.b_terms)
        return bounded_shape(min(a_lo + b_lo, 0),
                             max(a_hi + b_hi, (256 << self.fraction_bits) - 1))

    def _split(self):
        return Shape.cast(self._sum_shape()).width // 2

    def _test(self, m, pipe, ch, total, sticky):
        """``n = floor(S)`` (low 8 bits), ``S``'s bit of weight 1/2, per bit length ``k``
        of ``n`` whether ``fl(S)`` would be ``n + 1/2`` (:func:`_captured`), which ``k`` is
        ``n``'s, and whether ``S`` lies below 0 or at or beyond 256."""
        frac = self.fraction_bits
        n = total[frac:frac + 8]
        half = total[frac - 1]
        negative = total < 0
        return (pipe.register(n, name=f"n_s5_c{ch}"),
                pipe.register(half, name=f"half_c{ch}"),
                pipe.register(_captured(half, total[:frac - 1], sticky, frac),
                              name=f"captured_c{ch}"),
                pipe.register(_bit_length(n), name=f"length_c{ch}"),
                pipe.register(negative, name=f"negative_s5_c{ch}"),
                pipe.register(~negative & (total[frac + 8:] != 0), name=f"over_s5_c{ch}"))

    def _decide(self, m, pipe, ch, n, half, captured, length, negative, over):
        """Whether ``rint(fl(S))`` is ``n + 1``: to the even neighbour if ``fl(S)`` is
        ``n + 1/2``, else up when ``S`` is above it."""
        tie = (captured & length).any()
        return (pipe.register(n, name=f"n_s6_c{ch}"),
                pipe.register(Mux(tie, n[0], half), name=f"up_c{ch}"),
                pipe.register(negative, name=f"negative_s6_c{ch}"),
                pipe.register(over, name=f"over_s6_c{ch}"))

    def _saturate(self, m, pipe, ch, n, up, negative, over):
        rounded = n + up
        value = Mux(negative, 0, Mux(over | rounded[8], 255, rounded[:8]))
        return (pipe.register(value, name=f"out_c{ch}", shape=unsigned(8)),)


def _bit_length(n):
    """One-hot ``n``'s bit length ``k`` (bit ``k``): 0 for ``n = 0``."""
    return Cat(n == 0, *(n[k - 1] & (n[k:] == 0) for k in range(1, len(n) + 1)))


def _captured(half, below_half, sticky, frac_bits):
    """Per bit length ``k`` of ``n`` (bit ``k``, 0..8), whether ``fl(S)`` is ``n + 1/2``,
    from ``S``'s fraction (its bit of weight 1/2, the ``F - 1`` bits below and the sticky
    bit): ``S`` within ``2**j`` units of ``2**-F`` of ``n + 1/2``, ``j = F - 25 + k``; for
    ``n = 0``, only above it (below 1/2 the answer is 0 either way)."""
    # Above n + 1/2, the distance in units is below_half plus a fraction if sticky: at most
    # 2**j exactly when lifted = 2 * below_half + sticky is at most 2**(j + 1), that is, has
    # no bit above j + 1, and bit j + 1 clear or nothing below it. Below n + 1/2, the
    # distance is 2**(F - 1) - below_half less that fraction: at most 2**j when
    # below_half >= 2**(F - 1) - 2**j, that is, has every bit from j up. Bit tests rather
    # than comparisons: no carry chains.
    lifted = Cat(sticky, below_half)

    def at_most(j):
        return (lifted[j + 2:] == 0) & (~lifted[j + 1] | (lifted[:j + 1] == 0))

    first = frac_bits - 25
    return Cat(half & at_most(first),
               *(Mux(half, at_most(first + k), below_half[first + k:].all())
                 for k in range(1, 9)))
