"""Exact integer arithmetic for datapaths: bounded shapes, pipelined dot products, rounding.

Widths are derived from exact value bounds computed at elaboration time, so no sum, product
or shift can overflow for any input in range, and no bit is carried that can never be set.
"""
from amaranth.hdl import Mux, Shape, Value, unsigned

__all__ = ["csd_digits", "constant_product", "bounded_shape", "pipelined_dot", "dot_latency", "round_shift", "rounded_bounds",
           "clamp"]


def bounded_shape(lo, hi):
    """The narrowest shape (at least one bit) holding every integer in ``lo..hi``."""
    shape = Shape.cast(range(lo, max(hi, lo) + 1))
    return shape if shape.width else unsigned(1)


def dot_latency(terms):
    """Stages :func:`pipelined_dot` adds for ``terms`` nonzero products."""
    latency, n = 1, max(terms, 1)
    while n > 1:
        n = (n + 1) // 2
        latency += 1
    return latency


def csd_digits(coeff):
    """Canonical signed digits of ``coeff``: ``[(shift, +1 | -1)]`` with ``coeff = sum(d << s)``."""
    digits, shift = [], 0
    while coeff:
        if coeff & 1:
            digit = 2 - (coeff & 3)   # +1 when coeff % 4 == 1, -1 when coeff % 4 == 3
            digits.append((shift, digit))
            coeff -= digit
        coeff >>= 1
        shift += 1
    return digits


def constant_product(value, coeff):
    """``value * coeff`` for a constant ``coeff``: shifts and at most one adder when its
    canonical signed digits allow (no multiplier cell, so no DSP block and no multiplier
    mapping), else a ``*``."""
    digits = csd_digits(coeff)
    if len(digits) > 2:
        return value * coeff
    result = None
    for shift, sign in digits:
        term = value << shift if shift else value
        if result is None:
            result = term if sign > 0 else -term
        else:
            result = result + term if sign > 0 else result - term
    return result


def pipelined_dot(pipe, lanes, *, name):
    """Register ``sum(coeff * value)`` for each lane, one adder-tree level per pipeline stage.

    ``lanes`` is a list (one per channel) of lists of ``(coeff, value, lo, hi)`` where
    ``value`` lies in ``lo..hi``. Zero coefficients are dropped. All lanes share the stage
    boundaries, so every lane arrives in the same cycle. Returns ``[(signal, lo, hi)]`` per
    lane. Latency: ``1 + ceil(log2(max terms))`` stages (products, then pairwise sums).
    """
    levels = []
    for lane in lanes:
        terms = []
        for coeff, value, lo, hi in lane:
            if coeff == 0:
                continue
            t_lo, t_hi = sorted((coeff * lo, coeff * hi))
            terms.append((constant_product(value, coeff), t_lo, t_hi))
        if not terms:
            terms.append((Value.cast(0), 0, 0))
        levels.append(terms)

    def register_level(level_terms, tag):
        out = []
        for lane_index, terms in enumerate(level_terms):
            regs = []
            for k, (expr, lo, hi) in enumerate(terms):
                reg = pipe.register(expr, name=f"{name}_{tag}_c{lane_index}_{k}",
                                    shape=bounded_shape(lo, hi))
                regs.append((reg, lo, hi))
            out.append(regs)
        pipe.stage()
        return out

    levels = register_level(levels, "prod")
    depth = 0
    while max(len(terms) for terms in levels) > 1:
        summed = []
        for terms in levels:
            pairs = []
            for k in range(0, len(terms), 2):
                if k + 1 < len(terms):
                    (a, a_lo, a_hi), (b, b_lo, b_hi) = terms[k], terms[k + 1]
                    pairs.append((a + b, a_lo + b_lo, a_hi + b_hi))
                else:
                    pairs.append(terms[k])
            summed.append(pairs)
        depth += 1
        levels = register_level(summed, f"sum{depth}")
    return [terms[0] for terms in levels]


def round_shift(value, shift, rounding):
    """``round(value / 2**shift)`` with ``half_even`` or ``half_up`` (ties toward +inf).

    Arithmetic shifts floor; the remainder's low bits decide the rounding increment.
    """
    if shift == 0:
        return value
    if rounding == "half_up":
        return (value + (1 << (shift - 1))) >> shift
    if rounding == "half_even":
        floor = value >> shift
        rem = value.as_unsigned()[:shift]
        half = 1 << (shift - 1)
        round_up = (rem > half) | ((rem == half) & floor[0])
        return floor + round_up
    raise ValueError(f"rounding must be 'half_even' or 'half_up', not {rounding!r}")


def rounded_bounds(lo, hi, shift):
    """Bounds of :func:`round_shift` for inputs in ``lo..hi`` (both modes stay inside these)."""
    return lo >> shift, (hi + (1 << shift)) >> shift if shift else hi


def clamp(value, lo, hi, out_lo, out_hi):
    """Saturate ``value`` (known to lie in ``lo..hi``) to ``out_lo..out_hi``."""
    result = value
    if hi > out_hi:
        result = Mux(result > out_hi, out_hi, result)
    if lo < out_lo:
        result = Mux(result < out_lo, out_lo, result)
    return result
