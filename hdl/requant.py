"""Pipelined int8 requantization, bit-exact with TFLite's ``MultiplyByQuantizedMultiplier``.

Written from the definition (design guide section 4), not from the golden code::

    left, right = max(shift, 0), max(-shift, 0)
    a   = int32(acc << left)                                   # wraps like the C++ kernel
    p   = a * m0                                               # 64-bit product
    hi  = (p + (2**30 if p >= 0 else 1 - 2**30)) / 2**31      # truncating toward zero
    hi  = INT32_MAX if a == b == INT32_MIN                     # SRDHM saturation
    out = (hi >> right) + ((hi & mask) > (mask >> 1) + (hi < 0)),  mask = 2**right - 1
    y   = clamp(out + zero_point, act_min, act_max)

:func:`requantize` adds these steps to a :class:`~rasterflow.hdl.stall.StallPipeline`
(one register stage per line above: shift, multiply, nudge/truncate, rounding divide, zero
point/clamp), so it can sit at the end of any datapath. ``m0``/``shift`` may be constants
(elaboration-time ints, e.g. from ``golden.quant.quantize_multiplier``) or signals (a
per-channel ROM's output), which travel with the value through the stages.

Widths follow exact bounds: when ``acc << left`` cannot leave the int32 range (a LeakyReLU's
9-bit input), the product is only as wide as needed; otherwise the shifted value is wrapped to
32 bits exactly like the C++ ``int32_t`` arithmetic.

:class:`Requantizer` wraps it as a stream component (used by the unit tests).
"""
from amaranth.hdl import Const, Module, Mux, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import bounded_shape
from .stall import StallPipeline

__all__ = ["INT32_MIN", "INT32_MAX", "REQUANT_LATENCY", "requantize", "rounding_divide_by_pot",
           "requantize_lanes", "Requantizer"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
#: Register stages :func:`requantize` adds (with ``clamp``); 4 without it.
REQUANT_LATENCY = 5


def _bounds(x):
    """(lo, hi) of an int or a Value (from its shape)."""
    if isinstance(x, int):
        return x, x
    shape = Value.cast(x).shape()
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def _as_value(x, shape=None):
    if isinstance(x, int):
        return Const(x, shape if shape is not None else bounded_shape(x, x))
    return Value.cast(x)


def _carry(pipe, x, name):
    """``x`` one stage later: constants stay constants, signals are registered."""
    return x if isinstance(x, int) else pipe.register(x, name=name)


def _nudge_truncate(product, p_lo, p_hi):
    """``(product + nudge) / 2**31`` truncated toward zero, with its bounds."""
    n_lo, n_hi = p_lo + 1 - (1 << 30), p_hi + (1 << 30)
    nudged = Value.cast(product) + Mux(product >= 0, Const(1 << 30, signed(32)),
                                       Const(1 - (1 << 30), signed(32)))
    # Toward-zero division of a negative value: add 2**31 - 1 before the flooring shift.
    biased = nudged + Mux(nudged < 0, Const((1 << 31) - 1, signed(33)), Const(0, signed(33)))
    high = biased >> 31

    def toward_zero(n):
        return -((-n) >> 31) if n < 0 else n >> 31
    return high, min(toward_zero(n_lo), 0), max(toward_zero(n_hi), 0)


def rounding_divide_by_pot(x, right):
    """Combinational gemmlowp RoundingDivideByPOT of signed ``x`` by ``2**right``.

    ``right`` is an int or an unsigned Value (0..31); ties round away from zero.
    """
    x = Value.cast(x)
    # Sign-extend a narrow (bounded) value so the remainder sees the bits above its width.
    x = x | Const(0, signed(33))
    if isinstance(right, int):
        if right == 0:
            return x
        mask = (1 << right) - 1
        remainder = x.as_unsigned()[:right]
        threshold = (mask >> 1) + (x < 0)
        return (x >> right) + (remainder > threshold)
    mask = (Const(1, 33) << right) - 1
    remainder = x.as_unsigned() & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> right) + (remainder > threshold)


def requantize(pipe, value, bounds, m0, shift, *, name, zero_point=None, clamp_range=None):
    """Add MultiplyByQuantizedMultiplier (+ zero point and clamp) to ``pipe``.

    ``value``: a signed Value lying in ``bounds = (lo, hi)`` at the current stage; it is
    wrapped to int32 first when the bounds leave the int32 range (C++ int32 accumulation).
    ``m0``: int in 0..2**31-1 or an unsigned Value (TFLite's range; a signed int32 Value is
    accepted too, which makes this a general SRDHM + RoundingDivideByPOT);
    ``shift``: int in -31..31 or a signed Value (TFLite's exponent). Both are taken at the
    current stage, like ``value``.
    ``zero_point``/``clamp_range``: with both given, a fifth stage adds the zero point and
    clamps to ``(act_min, act_max)``.

    Returns ``(result, lo, hi)`` after the last stage (4 stages without the clamp, 5 with).
    """
    return requantize_lanes(pipe, [(value, bounds, m0, shift)], name=name,
                            zero_point=zero_point, clamp_range=clamp_range)[0]


def requantize_lanes(pipe, lanes, *, name, zero_point=None, clamp_range=None):
    """:func:`requantize` for several lanes ``[(value, bounds, m0, shift)]`` sharing stages."""
    states = []
    for index, (value, (lo, hi), m0, shift) in enumerate(lanes):
        value = Value.cast(value)
        if lo < INT32_MIN or hi > INT32_MAX:
            value = value.as_unsigned()[:32].as_signed()
            lo, hi = INT32_MIN, INT32_MAX
        s_lo, s_hi = _bounds(shift)
        if not isinstance(shift, int):   # a signed(6) field also holds -32: outside the contract
            s_lo, s_hi = max(s_lo, -31), min(s_hi, 31)
        if s_lo < -31 or s_hi > 31:
            raise ValueError(f"shift must lie in -31..31, not {s_lo}..{s_hi}")
        m_lo, m_hi = _bounds(m0)
        if m_lo < INT32_MIN or m_hi > INT32_MAX:
            raise ValueError(f"m0 must lie in the int32 range, not {m_lo}..{m_hi}")
        states.append(dict(name=f"{name}{index}" if len(lanes) > 1 else name, value=value,
                           lo=lo, hi=hi, m0=m0, shift=shift, s_hi=s_hi, m_lo=m_lo, m_hi=m_hi))

    # -- stage 1: a = int32(value << left) ---------------------------------------------------
    for st in states:
        value, lo, hi, shift, nm = st["value"], st["lo"], st["hi"], st["shift"], st["name"]
        max_left = max(st["s_hi"], 0)
        if isinstance(shift, int):
            shifted = value << max(shift, 0)
        else:
            shift_v = Value.cast(shift)
            shifted = value << Mux(shift_v > 0, shift_v.as_unsigned()[:5], 0)
        a_lo, a_hi = min(lo << max_left, lo), max(hi << max_left, hi)
        if a_lo < INT32_MIN or a_hi > INT32_MAX:
            shifted = shifted.as_unsigned()[:32].as_signed()
            a_lo, a_hi = INT32_MIN, INT32_MAX
        st["a"] = pipe.register(shifted, name=f"{nm}_a", shape=bounded_shape(a_lo, a_hi))
        st["a_lo"], st["a_hi"] = a_lo, a_hi
        st["m0"] = _carry(pipe, st["m0"], f"{nm}_m0_s1")
        st["shift"] = _carry(pipe, shift, f"{nm}_shift_s1")
    pipe.stage()

    # -- stage 2: the 64-bit product (exact width) --------------------------------------------
    for st in states:
        nm, a, a_lo, a_hi, m_lo, m_hi = st["name"], st["a"], st["a_lo"], st["a_hi"], st["m_lo"], st["m_hi"]
        corners = [x * y for x in (a_lo, a_hi) for y in (m_lo, m_hi)]
        st["p_lo"], st["p_hi"] = min(corners), max(corners)
        st["product"] = pipe.register(a * _as_value(st["m0"]), name=f"{nm}_product",
                                      shape=bounded_shape(st["p_lo"], st["p_hi"]))
        st["saturate"] = None
        if a_lo <= INT32_MIN and m_lo <= INT32_MIN:  # never for m0 >= 0; kept for generality
            st["saturate"] = pipe.register((a == INT32_MIN) & (_as_value(st["m0"]) == INT32_MIN),
                                           name=f"{nm}_sat")
        st["shift"] = _carry(pipe, st["shift"], f"{nm}_shift_s2")
    pipe.stage()

    # -- stage 3: nudge, truncating division by 2**31 ------------------------------------------
    for st in states:
        nm = st["name"]
        high, h_lo, h_hi = _nudge_truncate(st["product"], st["p_lo"], st["p_hi"])
        if st["saturate"] is not None:
            high = Mux(st["saturate"], INT32_MAX, high)
            h_hi = max(h_hi, INT32_MAX)
        st["h_lo"], st["h_hi"] = h_lo, h_hi
        st["high"] = pipe.register(high, name=f"{nm}_high", shape=bounded_shape(h_lo, h_hi))
        st["shift"] = _carry(pipe, st["shift"], f"{nm}_shift_s3")
    pipe.stage()

    # -- stage 4: rounding divide by 2**right ------------------------------------------------
    for st in states:
        shift = st["shift"]
        if isinstance(shift, int):
            right = max(-shift, 0)
        else:
            shift_v = Value.cast(shift)
            right = Mux(shift_v < 0, (-shift_v).as_unsigned()[:5], 0)
        st["out"] = pipe.register(rounding_divide_by_pot(st["high"], right),
                                  name=f"{st['name']}_out", shape=bounded_shape(st["h_lo"], st["h_hi"]))
    pipe.stage()
    if zero_point is None or clamp_range is None:
        return [(st["out"], st["h_lo"], st["h_hi"]) for st in states]

    # -- stage 5: zero point and clamp --------------------------------------------------------
    act_min, act_max = clamp_range
    results = []
    for st in states:
        result = st["out"] + zero_point
        if st["h_hi"] + zero_point > act_max:
            result = Mux(result > act_max, act_max, result)
        if st["h_lo"] + zero_point < act_min:
            result = Mux(result < act_min, act_min, result)
        y = pipe.register(result, name=f"{st['name']}_y", shape=bounded_shape(act_min, act_max))
        results.append((y, act_min, act_max))
    pipe.stage()
    return results


class Requantizer(wiring.Component):
    """Stream wrapper of :func:`requantize` with per-transfer ``m0``/``shift`` (for tests).

    ``i.payload``: ``acc`` (signed 32), ``m0`` (unsigned 31; signed 32 with ``signed_m0``,
    which exercises SRDHM's ``INT32_MIN * INT32_MIN`` saturation), ``shift`` (signed 6,
    -31..31).
    ``o.payload``: ``mbqm`` (signed 32, MultiplyByQuantizedMultiplier) and ``y`` (signed 8,
    ``clamp(mbqm + zero_point, act_min, act_max)``).
    Latency :data:`REQUANT_LATENCY` cycles; one transfer per cycle; no memory.
    """
    def __init__(self, *, zero_point=0, act_min=-128, act_max=127, signed_m0=False):
        self.zero_point, self.act_min, self.act_max = zero_point, act_min, act_max
        self.signed_m0 = signed_m0
        self.latency = REQUANT_LATENCY
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(
                {"acc": signed(32), "m0": signed(32) if signed_m0 else unsigned(31),
                 "shift": signed(6)}))),
            "o": Out(stream.Signature(data.StructLayout({"mbqm": signed(32), "y": signed(8)}))),
        })

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        p = self.i.payload
        mbqm, lo, hi = requantize(pipe, p.acc, (INT32_MIN, INT32_MAX), p.m0, p.shift, name="rq")
        y = pipe.register(_clamp(mbqm + self.zero_point, self.act_min, self.act_max),
                          name="y", shape=signed(8))
        mbqm_r = pipe.register(mbqm, name="mbqm_out", shape=signed(32))
        pipe.stage()
        m.d.comb += [self.o.payload.mbqm.eq(mbqm_r), self.o.payload.y.eq(y)]
        pipe.finish()
        return m


def _clamp(value, lo, hi):
    return Mux(value > hi, hi, Mux(value < lo, lo, value))
