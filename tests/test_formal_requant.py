"""Formal equivalence of the pipelined requantizer (``hdl/requant.py``) with a direct
specification of TFLite's MultiplyByQuantizedMultiplier (design guide section 4), at full
width: every int32 ``acc``, every ``m0`` the hardware accepts, every shift in -31..31.

What is proved
--------------
For :class:`~rasterflow.hdl.requant.Requantizer` in both of its configurations,

* ``Requantizer()``: ``m0`` is ``unsigned(31)``, i.e. every value in ``0 .. 2**31 - 1``;
* ``Requantizer(signed_m0=True)``: ``m0`` is ``signed(32)``, every int32 value, so the SRDHM
  saturation ``INT32_MIN * INT32_MIN -> INT32_MAX`` is live,

and every ``acc`` in int32 and ``shift`` in -31..31 (``signed(6)`` can also hold -32, outside
the contract; it is assumed away), each output satisfies ``o.mbqm == MBQM(acc, m0, shift)``
and ``o.y == clamp(MBQM + zero_point, act_min, act_max)`` (the ``y`` part for the default
zero point/clamp and for ``zero_point=-7``, ``-100..90``). ``MBQM`` is :func:`mbqm_spec`,
written here from the guide's definition, independently of ``hdl/requant.py``::

    a   = int32(acc << max(shift, 0))                            # spec_shifted; wraps
    p   = a * m0                                                 # exact 64-bit product
    hi  = trunc((p + (2**30 if p >= 0 else 1 - 2**30)) / 2**31)  # spec_srdhm_tail
    hi  = INT32_MAX if a == m0 == INT32_MIN                      # (signed m0 only)
    out = RoundingDivideByPOT(hi, max(-shift, 0))                # spec_rdp; ties away from 0

and :func:`test_spec_matches_golden_model` simulates it against ``golden/quant.py`` (itself
checked against exact-rational references in ``tests/test_golden_quant.py``) on corner values,
ties of both roundings and random full-width values, so the proofs are about the function
they claim.

SRDHM saturation and the m0 range: ``requantize`` only builds the saturation logic when ``m0``
can be ``INT32_MIN``; with the default ``unsigned(31)`` port it cannot, so the hardware has no
saturation path and needs none. That configuration is complete for TFLite: ``QuantizeMultiplier``
(``golden.quant.quantize_multiplier``) returns ``m0`` in ``[2**30, 2**31)`` or 0, inside
``0 .. 2**31 - 1``. The saturating path is proved in the ``signed_m0=True`` configuration.

Why BMC is a proof here
-----------------------
The harnesses drive the inputs with ``AnyConst`` (one unknown value for the whole trace), hold
``i.valid`` and ``o.ready`` high and assume reset low, so every register starts at its ``init``
value and the pipeline enable is high in every step. The requantizer is a feed-forward
pipeline: each stage register loads a function of the previous stage's registers (stage 1: of
the inputs), nothing feeds back. So from step ``s`` on, every stage-``s`` register holds one
fixed function of the inputs, and from step ``REQUANT_LATENCY`` (5, the first ``o.valid``) the
whole state - including the harness's own delay registers, at most 3 deep behind stage 2 -
is a fixed point: step 6 repeats step 5, and so would every later step. BMC to depth
``REQUANT_LATENCY + 2`` checks steps 0..6, and an UNSAT answer holds for *every* value of the
``AnyConst`` inputs: this is a proof for all inputs (with the pipeline never stalled), not a
sample.

Stage-wise proofs
-----------------
One SMT query of the whole datapath against the spec does not finish: the solver must prove
two differently built 32 x 31-bit multipliers equal (the unsplit harness below already ran
over 150 s with Yices for 8-bit ``acc`` and ``m0``). The proof is therefore split at the stage
registers, which the harness reads through :class:`_TapPipeline`: ``Requantizer.elaborate`` is
run unchanged, with the ``StallPipeline`` it builds on swapped (for that call only) for a
subclass that records each register
:meth:`~rasterflow.hdl.stall.StallPipeline.register` makes and each stage's valid bit.
The registers, by the step they are first valid in::

    1  rq_a = int32(acc << left)   rq_m0_s1 = m0          rq_shift_s1 = shift
    2  rq_product = rq_a * rq_m0_s1 (one $mul)            rq_shift_s2    [rq_sat, signed m0]
    3  rq_high = SRDHM tail of rq_product                 rq_shift_s3
    4  rq_out = RoundingDivideByPOT(rq_high, right)
    5  mbqm_out -> o.mbqm,  y -> o.y

Proof families (:class:`StageHarness`), each at full width:

``front``
    At ``valid_s1``: ``rq_a == spec_shifted(acc, shift)``, ``rq_m0_s1 == m0``,
    ``rq_shift_s1 == shift``. No multiplication.
``multiply``
    At ``valid_s2``: ``rq_product`` equals the *exact* (64-bit) product of ``rq_a`` and
    ``rq_m0_s1`` one step earlier, ``rq_shift_s2`` is ``rq_shift_s1`` one step earlier, and (signed
    m0) ``rq_sat == (rq_a == rq_m0_s1 == INT32_MIN)``. The spec multiplies the same registers as
    the hardware's ``$mul``, so the solver does not compare two multipliers; what it does check
    is the register width: the exact 64-bit product always equals the (63-bit for unsigned m0)
    register sign-extended, i.e. the product never overflows it.
``post``
    The post-multiply stages for a *free* product: ``rq_product``'s input is cut and replaced
    by an ``AnyConst`` ``P`` anywhere in the interval hull of ``a * m0`` (:func:`product_hull`),
    ``rq_sat``'s by a free bit; then ``o.mbqm`` and ``o.y`` equal the spec's post-multiply part
    of ``P`` (and the input shift, which travels through the real shift registers). No
    multiplication is left in the model.
``compose``
    On the uncut circuit: ``o.mbqm`` and ``o.y`` equal the spec's post-multiply part of the
    circuit's *own* ``rq_product``/``rq_shift_s2`` (and ``rq_sat``) three steps earlier. The
    multiplier is in the model but both sides read its output, so the solver only reasons
    about the product's bits; stepping-stone assertions (``rq_high`` and ``rq_out`` against the
    spec of the registers one stage earlier, ``rq_shift_s3`` against ``rq_shift_s2``) keep
    each step's query small - BMC proves them at steps 3 and 4 and assumes them afterwards.

Composition. For the first output (step 5; later steps repeat it, see above)::

    o.mbqm@5 = post(rq_product@2, rq_shift_s2@2, rq_sat@2)              compose
    rq_product@2 = rq_a@1 * rq_m0_s1@1 exactly,  rq_shift_s2@2 = rq_shift_s1@1,
    rq_sat@2 = (rq_a@1 == rq_m0_s1@1 == INT32_MIN)                      multiply
    rq_a@1 = int32(acc << left),  rq_m0_s1@1 = m0,  rq_shift_s1@1 = shift   front
    =>  o.mbqm@5 = post(int32(acc << left) * m0, shift, a == m0 == INT32_MIN) = MBQM

(``o.y`` likewise). Each line is a proved assertion about the same circuit at the named steps;
the last is substitution of equals into the definition of :func:`mbqm_spec`. ``post`` gives
the first line a second time, independently of the multiplier: the cut only replaces the
inputs of ``rq_product`` (and ``rq_sat``), everything downstream is the component's own logic,
and every value the uncut register takes lies in the hull, so each run of the uncut circuit
has a run of the cut one with the same stage-2 registers and therefore the same outputs.

int32 result (signed m0). Over the hull with a free saturation bit, the post-multiply part can
reach ``2**31`` (a product of at least ``2**62 - 2**30`` without saturation), so the signed-m0
harnesses compare ``o.mbqm`` with the spec truncated to int32 (the C++ ``int32_t`` result);
``o.y`` is compared untruncated. No int32 operands get there: unless ``a == m0 == INT32_MIN``
(saturated, ``INT32_MAX``), ``|a * m0| <= 2**31 * (2**31 - 1) = 2**62 - 2**31``, so
``|p + nudge| <= 2**62 - 2**30`` and the truncated quotient lies in ``-2**31 + 1 .. 2**31 - 1``;
RoundingDivideByPOT keeps an int32 value in int32. So the truncation is the identity on every
value the hardware sees. (Yices does not prove this bound through a multiplier within 5
minutes, hence the argument.) For unsigned m0 the quotient stays in int32 over the whole
hull (``-2**31 * (2**31 - 1) .. (2**31 - 1)**2``) and the harnesses compare exactly, so the
solver checks the bound itself.

Not vacuous. Each family's harness with a wrong specification must FAIL
(:func:`test_wrong_stage_spec_is_refuted`): ``front`` saturating the left shift instead of
wrapping, ``multiply`` claiming the product fits 62 bits, ``post`` rounding the divide's ties
toward +inf, ``compose`` flooring the SRDHM quotient instead of truncating toward zero. The
counterexamples come from the same assumptions and reach the output, so the assumptions are
satisfiable and the assertions are checked.

Cross-check at reduced width: :class:`RequantEquivalence` compares ``o.mbqm`` directly with
:func:`mbqm_spec` of the inputs (its own multiplier) for 4-bit ``acc`` (sign-extended), ``m0``
with 4 free top bits, and every shift - the unsplit equivalence where it is cheap.

Not covered here: stalls (``o.ready`` low; the stall-all enable is exercised with random
stalls in ``tests/test_hdl_requant.py``), and other instantiations of
:func:`~rasterflow.hdl.requant.requantize` - elaboration-time constant ``m0``/``shift`` and the
narrower value bounds of the CNN datapaths specialize the same code to other widths and are
checked by simulation (``tests/test_hdl_requant.py``, ``tests/test_hdl_cnn.py``).

Runtimes, measured on a 2-core machine shared with other jobs (load average 3-4): the whole
module 33-51 s wall with ``pytest -n 2``, 45 s serially. Per test, serially: ``compose``
signed m0 6-10 s (14-25 s when it shares a core under ``-n 2``), ``compose`` unsigned 3-4.5 s,
the reduced-width end-to-end check 3.5 s, each ``post`` about 3 s, ``front``, ``multiply``
and the negative tests 1.2-3 s each, the specification against the golden model 0.2 s. None
is marked slow: none takes 20 s on a core of its own.
"""
from unittest import mock

import numpy as np
import pytest
from amaranth.asserts import AnyConst
from amaranth.hdl import (Assert, Assume, Const, Elaboratable, Fragment, Module, Mux,
                          ResetSignal, Signal, Value, signed, unsigned)
from amaranth.sim import Simulator

import rasterflow.hdl.requant as requant_module
from rasterflow.golden.quant import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                                     rounding_divide_by_pot,
                                     saturating_rounding_doubling_high_mul, wrap_int32)
from rasterflow.hdl.stall import StallPipeline
from rasterflow.hdl.requant import REQUANT_LATENCY, Requantizer
from rasterflow.sim.formal import run_sby

#: Seconds before SymbiYosys gives up (status TIMEOUT, a test failure rather than a hang).
SBY_TIMEOUT = 300

#: Reduced widths of the end-to-end cross-check (:class:`RequantEquivalence`).
ACC_BITS = 4
M0_BITS = 4

#: The ``m0`` values the hardware accepts, by ``signed_m0``: ``unsigned(31)`` or ``signed(32)``.
M0_RANGE = {False: (0, INT32_MAX), True: (INT32_MIN, INT32_MAX)}


def product_hull(signed_m0):
    """Interval hull ``(lo, hi)`` of ``a * m0`` for int32 ``a`` and ``m0`` in
    :data:`M0_RANGE` (a bilinear function takes its extremes at the corners)."""
    m_lo, m_hi = M0_RANGE[signed_m0]
    corners = [a * b for a in (INT32_MIN, INT32_MAX) for b in (m_lo, m_hi)]
    return min(corners), max(corners)


# -- the specification, written from the guide's definition ---------------------------------

def left_amount(shift):
    return Mux(shift > 0, shift.as_unsigned()[:5], 0)


def right_amount(shift):
    return Mux(shift < 0, (-shift).as_unsigned()[:5], 0)


def spec_shifted(acc, shift, *, wrap=True):
    """``int32(acc << max(shift, 0))``: the C++ ``int32_t`` product ``acc * (1 << left)``.

    ``wrap=False`` saturates to the int32 range instead (a wrong specification)."""
    wide = acc << left_amount(shift)                         # exact, 63 bits
    if wrap:
        return wide[:32].as_signed()
    return Mux(wide > INT32_MAX, INT32_MAX, Mux(wide < INT32_MIN, INT32_MIN, wide))


def spec_srdhm_tail(m, product, *, saturate=None, toward_zero=True):
    """SRDHM after its product: ``trunc((p + nudge) / 2**31)``, ``INT32_MAX`` if
    ``saturate``. ``toward_zero=False`` floors instead (a wrong specification)."""
    nudged = Signal(signed(66))
    high = Signal(signed(36))
    if toward_zero:
        quotient = Mux(nudged < 0, -((-nudged) >> 31), nudged >> 31)
    else:
        quotient = nudged >> 31
    m.d.comb += [
        nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30))),
        high.eq(quotient if saturate is None else Mux(saturate, INT32_MAX, quotient)),
    ]
    return high


def spec_rdp(m, high, shift, *, ties_away=True):
    """RoundingDivideByPOT(high, max(-shift, 0)); ``ties_away=False`` rounds ties toward
    +inf (a wrong specification)."""
    right = right_amount(shift)
    mask = Signal(unsigned(32))
    out = Signal(signed(37))
    m.d.comb += mask.eq((Const(1, 33) << right) - 1)
    remainder = high.as_unsigned()[:32] & mask
    threshold = (mask >> 1) + ((high < 0) if ties_away else 0)
    m.d.comb += out.eq((high >> right) + (remainder > threshold))
    return out


def spec_post(m, product, shift, *, saturate=None, ties_away=True, toward_zero=True):
    """Everything after the 64-bit product, as combinational logic in ``m``::

        hi  = trunc((p + (2**30 if p >= 0 else 1 - 2**30)) / 2**31)   # SRDHM
        hi  = INT32_MAX if saturate                                     # a == m0 == INT32_MIN
        out = RoundingDivideByPOT(hi, max(-shift, 0))                  # ties away from zero
    """
    high = spec_srdhm_tail(m, product, saturate=saturate, toward_zero=toward_zero)
    return spec_rdp(m, high, shift, ties_away=ties_away)


def spec_clamp(value, lo, hi):
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def mbqm_spec(m, acc, m0, shift, *, ties_away=True):
    """MultiplyByQuantizedMultiplier: :func:`spec_post` of ``spec_shifted(acc) * m0``."""
    a = Signal(signed(32))
    product = Signal(signed(64))
    m.d.comb += [a.eq(spec_shifted(acc, shift)), product.eq(a * m0)]
    saturate = None
    if m0.shape().signed:
        saturate = (a == INT32_MIN) & (m0 == INT32_MIN)
    return spec_post(m, product, shift, saturate=saturate, ties_away=ties_away)


# -- access to the requantizer's stage registers --------------------------------------------

class _TapPipeline(StallPipeline):
    """A :class:`StallPipeline` that records every register it makes (``taps[name]``) and
    every stage's valid bit (``taps["valid_s<k>"]``), and loads the registers named in
    ``cuts`` from the given values instead of their own inputs (cut points)."""
    def __init__(self, m, i, o, *, taps, cuts, **kwargs):
        super().__init__(m, i, o, **kwargs)
        self._taps, self._cuts = taps, cuts

    def register(self, value, *, name, shape=None):
        if shape is None:
            shape = Value.cast(value).shape()
        if name in self._cuts:
            value = self._cuts[name]
        reg = super().register(value, name=name, shape=shape)
        self._taps[name] = reg
        return reg

    def stage(self):
        super().stage()
        self._taps[f"valid_s{self.latency}"] = self._valid


def elaborate_tapped(dut, platform, cuts=None):
    """Elaborate ``dut`` (which builds its datapath on ``requant_module.StallPipeline``)
    with a :class:`_TapPipeline`; return ``(fragment, taps)``. Nothing else changes: the
    hardware is the component's own ``elaborate``, with the cut registers' inputs replaced."""
    taps, cuts = {}, dict(cuts or {})

    def make(m, i, o, **kwargs):
        return _TapPipeline(m, i, o, taps=taps, cuts=cuts, **kwargs)
    with mock.patch.object(requant_module, "StallPipeline", make):
        fragment = Fragment.get(dut, platform)
    missing = set(cuts) - set(taps)
    if missing or "valid_s1" not in taps:
        raise AssertionError(f"requantizer registers not found: {sorted(missing)}")
    return fragment, taps


def delayed(m, value, cycles):
    """``value`` ``cycles`` steps earlier (the pipeline never stalls in these harnesses).
    Call outside ``m.If``: inside one, the delay registers would only load under it."""
    for _ in range(cycles):
        reg = Signal(Value.cast(value).shape())
        m.d.sync += reg.eq(value)
        value = reg
    return value


# -- stage-wise harness ---------------------------------------------------------------------

CHECKS = ("front", "multiply", "post", "compose")


class StageHarness(Elaboratable):
    """One proof family on the full-width :class:`Requantizer` (see the module docstring).

    ``wrong`` swaps in a wrong specification for the family's assertion."""
    def __init__(self, check, *, signed_m0=False, zero_point=0, act_min=-128, act_max=127,
                 wrong=False):
        assert check in CHECKS
        self.check, self.signed_m0, self.wrong = check, signed_m0, wrong
        self.zero_point, self.act_min, self.act_max = zero_point, act_min, act_max

    def elaborate(self, platform):
        m = Module()
        dut = Requantizer(zero_point=self.zero_point, act_min=self.act_min,
                          act_max=self.act_max, signed_m0=self.signed_m0)
        m0_shape = signed(32) if self.signed_m0 else unsigned(31)
        p_lo, p_hi = product_hull(self.signed_m0)
        free_p = Signal(signed(64))
        free_sat = Signal()
        cuts = {}
        if self.check == "post":
            cuts["rq_product"] = free_p
            if self.signed_m0:
                cuts["rq_sat"] = free_sat
        fragment, taps = elaborate_tapped(dut, platform, cuts)
        m.submodules.dut = fragment
        m.d.comb += Assume(~ResetSignal())

        acc, m0, shift = Signal(signed(32)), Signal(m0_shape), Signal(signed(6))
        m.d.comb += [acc.eq(AnyConst(signed(32))), m0.eq(AnyConst(m0_shape)),
                     shift.eq(AnyConst(signed(6))), Assume((shift >= -31) & (shift <= 31))]
        m.d.comb += [dut.i.valid.eq(1), dut.o.ready.eq(1), dut.i.payload.acc.eq(acc),
                     dut.i.payload.m0.eq(m0), dut.i.payload.shift.eq(shift)]

        if self.check == "front":
            with m.If(taps["valid_s1"]):
                m.d.comb += [
                    Assert(taps["rq_a"] == spec_shifted(acc, shift, wrap=not self.wrong),
                           "a != int32(acc << left)"),
                    Assert(taps["rq_m0_s1"] == m0, "m0 not carried"),
                    Assert(taps["rq_shift_s1"] == shift, "shift not carried"),
                ]

        if self.check == "multiply":
            a, m0_r = delayed(m, taps["rq_a"], 1), delayed(m, taps["rq_m0_s1"], 1)
            shift_r = delayed(m, taps["rq_shift_s1"], 1)
            exact = Signal(signed(64))
            m.d.comb += exact.eq(a * m0_r)
            claim = exact[:62].as_signed() if self.wrong else exact
            with m.If(taps["valid_s2"]):
                m.d.comb += [
                    Assert(taps["rq_product"] == claim, "product register != a * m0"),
                    Assert(taps["rq_shift_s2"] == shift_r, "shift not carried"),
                ]
                if self.signed_m0:
                    m.d.comb += Assert(taps["rq_sat"] == ((a == INT32_MIN) & (m0_r == INT32_MIN)),
                                       "sat != (a == m0 == INT32_MIN)")

        if self.check in ("post", "compose"):
            if self.check == "post":
                m.d.comb += [free_p.eq(AnyConst(signed(64))),
                             Assume((free_p >= p_lo) & (free_p <= p_hi))]
                product, shift_r = free_p, shift
                saturate = None
                if self.signed_m0:
                    m.d.comb += free_sat.eq(AnyConst(1))
                    saturate = free_sat
            else:
                post = REQUANT_LATENCY - 2      # output step - product register's step
                product = delayed(m, taps["rq_product"], post)
                shift_r = delayed(m, taps["rq_shift_s2"], post)
                saturate = None
                if self.signed_m0:
                    saturate = delayed(m, taps["rq_sat"], post)
            if self.check == "compose":
                # Stepping stones: each post-multiply register against the spec of the
                # registers one stage earlier (proved, then assumed at later steps by BMC).
                sat_r = delayed(m, taps["rq_sat"], 1) if self.signed_m0 else None
                high = spec_srdhm_tail(m, delayed(m, taps["rq_product"], 1), saturate=sat_r,
                                       toward_zero=not self.wrong)
                out = spec_rdp(m, delayed(m, taps["rq_high"], 1),
                               delayed(m, taps["rq_shift_s3"], 1))
                shift_s2 = delayed(m, taps["rq_shift_s2"], 1)
                with m.If(taps["valid_s3"]):
                    m.d.comb += [Assert(taps["rq_high"] == high, "high != SRDHM tail"),
                                 Assert(taps["rq_shift_s3"] == shift_s2, "shift not carried")]
                with m.If(taps["valid_s4"]):
                    m.d.comb += Assert(taps["rq_out"] == out, "out != RoundingDivideByPOT")
            mbqm = spec_post(m, product, shift_r, saturate=saturate,
                             ties_away=not (self.wrong and self.check == "post"),
                             toward_zero=not (self.wrong and self.check == "compose"))
            y = spec_clamp(mbqm + self.zero_point, self.act_min, self.act_max)
            if self.signed_m0:
                # Over the hull the spec can reach 2**31 (never from int32 operands: module
                # docstring); compare as the C++ int32_t result.
                mbqm = mbqm[:32].as_signed()
            with m.If(dut.o.valid):
                m.d.comb += [Assert(dut.o.payload.mbqm == mbqm, "mbqm != spec"),
                             Assert(dut.o.payload.y == y, "y != clamp(mbqm + zero_point)")]
        return m


def run_stage(check, tmp_path, **kwargs):
    return run_sby(StageHarness(check, **kwargs), mode="bmc", depth=REQUANT_LATENCY + 2,
                   workdir=tmp_path, timeout=SBY_TIMEOUT)


#: ``Requantizer()`` (TFLite's m0 range) and ``Requantizer(signed_m0=True)`` (any int32 m0).
STAGE_CONFIGS = [
    pytest.param(dict(), id="m0_u31"),
    pytest.param(dict(signed_m0=True), id="m0_s32"),
]
#: ... and a zero point with a narrower clamp, for the output ``y``.
POST_CONFIGS = STAGE_CONFIGS + [
    pytest.param(dict(zero_point=-7, act_min=-100, act_max=90), id="m0_u31_zp_clamp"),
]


#: Each stage family with the configurations it is proved for.
STAGE_CASES = [pytest.param(stage, config.values[0], id=f"{stage}-{config.id}")
               for stage, configs in (("front", STAGE_CONFIGS), ("multiply", STAGE_CONFIGS),
                                      ("post", POST_CONFIGS), ("compose", STAGE_CONFIGS))
               for config in configs]


@pytest.mark.parametrize("stage, config", STAGE_CASES)
def test_stage_meets_its_spec(stage, config, tmp_path):
    """front: ``a == int32(acc << left)``; multiply: the product register is the product of
    its own operands; post: the spec for any product; compose: the output is the spec of
    its own product three cycles earlier."""
    result = run_stage(stage, tmp_path, **config)
    assert result.passed, f"{result.status}: {result.failed}\n{result.log_tail}"


@pytest.mark.parametrize("check", CHECKS)
def test_wrong_stage_spec_is_refuted(check, tmp_path):
    """Each family's harness with a wrong specification must find a counterexample."""
    result = run_stage(check, tmp_path, wrong=True)
    assert result.status == "FAIL", result.log_tail


# -- end-to-end at reduced widths (a cross-check of the composition) -------------------------

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


def test_requantizer_equals_mbqm_spec_reduced_width(tmp_path):
    result = run_sby(RequantEquivalence(), mode="bmc", depth=REQUANT_LATENCY + 2,
                     workdir=tmp_path, timeout=SBY_TIMEOUT)
    assert result.passed, f"{result.status}: {result.failed}\n{result.log_tail}"


def test_wrong_rounding_spec_is_refuted_reduced_width(tmp_path):
    """A spec rounding negative ties toward +inf differs from the hardware: the same harness
    must find the counterexample (so a pass above is not vacuous)."""
    result = run_sby(RequantEquivalence(ties_away=False), mode="bmc",
                     depth=REQUANT_LATENCY + 2, workdir=tmp_path, timeout=SBY_TIMEOUT)
    assert result.status == "FAIL", result.log_tail


# -- the specification itself against the golden model --------------------------------------

def _spec_cases(rng):
    """Corner values x every shift, SRDHM and divide ties, and random full-width values."""
    accs = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -1, 0, 1, 3, 1 << 30, INT32_MAX]
    m0s = [0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX, -1, INT32_MIN + 1, INT32_MIN]
    cases = [(a, b, s) for a in accs for b in m0s for s in (-31, -17, -1, 0, 1, 17, 31)]
    for right in range(1, 32):     # m0 = 2**30 halves: high = acc / 2 = odd * 2**(right - 1),
        for k in (-3, -1, 1, 3):   # a tie of the divide by 2**right
            if INT32_MIN <= k << right <= INT32_MAX:
                cases.append((k << right, 1 << 30, -right))
    cases += [(2 * k + 1, 1 << 30, 0) for k in range(-4, 4)]   # SRDHM ties, both signs
    n = 400
    cases += list(zip(rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True).tolist(),
                      rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True).tolist(),
                      rng.integers(-31, 31, n, endpoint=True).tolist()))
    return cases


def test_spec_matches_golden_model():
    """The formal specification, simulated, equals ``golden/quant.py`` (which is checked
    against TFLite elsewhere): the proofs above are about the function they claim."""
    cases = _spec_cases(np.random.default_rng(7))
    m = Module()
    acc, m0, shift = Signal(signed(32)), Signal(signed(32)), Signal(signed(6))
    out = mbqm_spec(m, acc, m0, shift)
    got = []

    async def bench(ctx):
        for a, b, s in cases:
            ctx.set(acc, a)
            ctx.set(m0, b)
            ctx.set(shift, s)
            got.append(ctx.get(out))
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    x, m0s, shifts = (np.array(column, dtype=np.int64) for column in zip(*cases))
    left, right = np.maximum(shifts, 0), np.maximum(-shifts, 0)
    expected = rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrap_int32(x << left), m0s), right)
    tflite = m0s >= 0
    assert np.array_equal(expected[tflite], multiply_by_quantized_multiplier(
        x[tflite], m0s[tflite], shifts[tflite]))
    assert got == expected.tolist()
