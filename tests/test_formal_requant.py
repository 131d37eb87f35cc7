"""Formal equivalence of the pipelined requantizer (``hdl/requant.py``) with a direct
specification of TFLite's MultiplyByQuantizedMultiplier (design guide section 4).

The harness drives :class:`~rasterflow.hdl.requant.Requantizer` with inputs that are
arbitrary constants (``AnyConst``), keeps ``i.valid`` and ``o.ready`` high, and asserts that
whenever ``o.valid`` is high, ``o.mbqm`` equals the specification evaluated combinationally
on those inputs, written here from the guide's definition, independently of ``hdl/requant.py``::

    a   = int32(acc << max(shift, 0))                       # wraps like int32_t
    p   = a * m0                                            # exact 64-bit product
    hi  = trunc((p + (2**30 if p >= 0 else 1 - 2**30)) / 2**31)
    out = RoundingDivideByPOT(hi, max(-shift, 0))           # ties away from zero

The requantizer is a feed-forward pipeline whose only state is its stage registers, so with
constant inputs and no stalls the first valid output (step ``REQUANT_LATENCY``) is the
function of the inputs; BMC to that depth therefore covers every value of the inputs
allowed — it is a proof for that input set, not a bounded sample of it.

Reduced widths: SMT solving of the full 32 x 31-bit product against an independently
written product does not finish in minutes (measured: > 150 s for 8-bit ``acc`` and 8-bit
``m0`` with Yices), so the proof takes every shift in -31..31 and every ``acc`` of
:data:`ACC_BITS` bits (sign-extended to 32) and every ``m0`` whose top :data:`M0_BITS` bits
are free and the rest zero (``m0 = k * 2**(31 - M0_BITS)``, which includes TFLite's
normalized range ``[2**30, 2**31)`` at that granularity). The left shift up to 31 still drives
``a`` across the whole int32 range, including the wrap, and the product across the full
64-bit range, so the nudge, the toward-zero truncation of negative products and every
rounding-divide width are exercised at full width; what the reduction does not cover is
carries between low product bits that these operand patterns keep zero. Those are covered
by ``tests/test_hdl_requant.py`` (corner cases and random full-width values in simulation
against ``golden/quant.py``).
"""
import pytest
from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Const, Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.hdl import signed, unsigned

from rasterflow.hdl.requant import REQUANT_LATENCY, Requantizer
from rasterflow.sim.formal import run_sby

ACC_BITS = 4
M0_BITS = 4


def mbqm_spec(m, acc, m0, shift, *, ties_away=True):
    """MultiplyByQuantizedMultiplier of the guide, as combinational logic in ``m``.

    ``ties_away=False`` rounds the final divide's ties toward +inf instead (a wrong
    specification, to show the proof can fail)."""
    left = Mux(shift > 0, shift.as_unsigned()[:5], 0)
    right = Mux(shift < 0, (-shift).as_unsigned()[:5], 0)
    a = Signal(signed(32))
    product = Signal(signed(64))
    nudged = Signal(signed(65))
    high = Signal(signed(33))
    mask = Signal(unsigned(32))
    out = Signal(signed(34))
    m.d.comb += [
        a.eq((acc << left)[:32].as_signed()),
        product.eq(a * m0),
        nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30))),
        high.eq(Mux(nudged < 0, -((-nudged) >> 31), nudged >> 31)),
        mask.eq((Const(1, 33) << right) - 1),
    ]
    remainder = high.as_unsigned()[:32] & mask
    threshold = (mask >> 1) + ((high < 0) if ties_away else 0)
    m.d.comb += out.eq((high >> right) + (remainder > threshold))
    return out


class RequantEquivalence(Elaboratable):
    def __init__(self, *, ties_away=True):
        self.ties_away = ties_away

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = Requantizer()
        m.d.comb += Assume(~ResetSignal())
        acc, m0, shift = Signal(signed(32)), Signal(unsigned(31)), Signal(signed(6))
        m.d.comb += [acc.eq(AnyConst(signed(ACC_BITS))),
                     m0.eq(AnyConst(unsigned(M0_BITS)) << (31 - M0_BITS)),
                     shift.eq(AnyConst(signed(6))),
                     Assume((shift >= -31) & (shift <= 31))]
        m.d.comb += [dut.i.valid.eq(1), dut.o.ready.eq(1), dut.i.payload.acc.eq(acc),
                     dut.i.payload.m0.eq(m0), dut.i.payload.shift.eq(shift)]
        expected = mbqm_spec(m, acc, m0, shift, ties_away=self.ties_away)
        with m.If(dut.o.valid):
            m.d.comb += Assert(dut.o.payload.mbqm == expected, "requantizer != MBQM spec")
        return m


@pytest.mark.slow
def test_requantizer_equals_mbqm_spec(tmp_path):
    result = run_sby(RequantEquivalence(), mode="bmc", depth=REQUANT_LATENCY + 2,
                     workdir=tmp_path)
    assert result.passed, f"{result.status}: {result.failed}\n{result.log_tail}"


@pytest.mark.slow
def test_wrong_rounding_spec_is_refuted(tmp_path):
    """A spec rounding negative ties toward +inf differs from the hardware: the same harness
    must find the counterexample (so a pass above is not vacuous)."""
    result = run_sby(RequantEquivalence(ties_away=False), mode="bmc",
                     depth=REQUANT_LATENCY + 2, workdir=tmp_path)
    assert result.status == "FAIL", result.log_tail
