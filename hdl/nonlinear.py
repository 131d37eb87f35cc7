"""Int8 LOGISTIC and SOFTMAX, bit-exact with LiteRT's reference kernels (``golden/nonlinear.py``).

:class:`Logistic` is a table: its output is a function of one int8 input, so the 256 outputs
are computed at elaboration (from the golden layer's float32 ``LUTPopulate`` table) and each
channel reads a 256-entry ROM. That is how TFLite itself runs int8 LOGISTIC: its reference
kernel and its default (generic optimized) kernel both fill a 256-entry table in Prepare
(``LUTPopulate``) and look the input up in Eval.

:class:`Softmax` is a small sequential unit per pixel (a classifier head: a 1x1 frame of ``C``
channels; any ``H x W`` works, one softmax per pixel over its channels). It follows
``reference_ops::Softmax`` step by step::

    max   = max over the channels                                    (scan)
    e[c]  = exp_on_negative_values(SRDHM((x[c] - max) << shift, mult)) if x[c] - max >= diff_min
            else 0                                                   (256-entry ROM on max - x)
    sum   = sum over c of RDPOT(e[c], 12)                            (Q12.19, exact)
    h     = clz(sum); r = one_over_one_plus_x_for_x_in_0_1((sum << h) - 2**31)
    y[c]  = clamp(RDPOT(SRDHM(r, e[c]), 35 - h) - 128, -128, 127)

The input to ``exp`` depends on ``x - max`` alone (``0..255`` down), so one ROM holds every
``e`` the pixel can need; an entry below ``diff_min`` holds 0, which contributes nothing to the
sum and gives -128, exactly what the reference does for a cut-off channel. The reciprocal is
computed in hardware with gemmlowp's arithmetic on one shared 32 x 32 multiplier (seven
dependent saturating rounding doubling high multiplies, three cycles each); the same
multiplier then makes ``SRDHM(r, e[c])`` for one channel per cycle.

A pixel whose sum of exponentials reaches 512 (only possible with ``C >= 512``: a channel adds
at most 1) makes TFLite's reference kernel abort (``TFLITE_CHECK(exponent <= 31)``); the golden
model raises. There every probability is at most 1/512, half an output step, and the hardware
outputs -128 for every channel: its rounding division by ``2**32`` or ``2**33`` of a value
below ``2**31`` is 0.
"""
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.nonlinear import exp_on_negative_values
from ..golden.pixel import PixelFormat
from ..golden.quant import saturating_rounding_doubling_high_mul, wrap_int32
from .arith import bounded_shape
from .payload import pixel_stream_signature
from .requant import INT32_MAX, INT32_MIN, rounding_divide_by_pot
from .stall import StallPipeline, payload_register
from .timing import StageTiming

__all__ = ["Logistic", "Softmax", "exp_table"]

_EXP_BITS = 31                   # an exp_on_negative_values result: Q0.31 in 0..2**31 - 1
_SUM_FRACTION_BITS = 19          # Q12.19 accumulation: RDPOT(e, 31 - 19)
_ONE_SUM = 1 << _SUM_FRACTION_BITS   # RDPOT(2**31 - 1, 12): the maximum channel's term
_OUTPUT_EXPONENT_BASE = 35       # RDPOT exponent num_bits_over_unit + 31 - 8 = 35 - clz(sum)

# one_over_one_plus_x_for_x_in_0_1, gemmlowp: Newton-Raphson in Q2.29 from 48/17 - 32/17 d.
_CONSTANT_48_OVER_17 = 1515870810
_CONSTANT_NEG_32_OVER_17 = -1010580540
_ONE_Q2_29 = 1 << 29
_NEWTON_STEPS = 3
#: Multiplies of the reciprocal: the initial estimate, then two per Newton-Raphson step.
_RECIPROCAL_MULTIPLIES = 1 + 2 * _NEWTON_STEPS
#: Cycles from writing the multiplier's operands to using its result (product, high half).
_MULTIPLY_CYCLES = 3
#: Cycles from an output step to its byte in the output register: ROM read, operand,
#: product, high half, rounding (the output is valid the cycle after).
_OUTPUT_STEP_CYCLES = 5


def _int8_format(fmt):
    if not isinstance(fmt, PixelFormat) or fmt.dtype != "int8":
        raise ValueError(f"fmt must be a PixelFormat of int8 channels, not {fmt!r}")


class Logistic(wiring.Component):
    """TFLite int8 ``LOGISTIC``: ``y = table[x + 128]`` per channel.

    The table is the golden layer's (:attr:`rasterflow.golden.nonlinear.Logistic.table`, the
    float32 sigmoid LiteRT's ``LUTPopulate`` fills), computed at elaboration; tables derived
    from the golden function are how TFLite's own int8 kernels run this operator.

    Parameters
    ----------
    fmt : PixelFormat
        ``C`` x int8 (input and output).
    table : sequence of 256 int
        int8 outputs, ``table[q + 128]`` for input ``q``.

    Latency 1 cycle (the ROM read); one pixel per cycle; memory: a 256 x 8 bit ROM read by
    ``C`` ports (one per channel; ``C`` block RAMs or LUT tables after synthesis).
    """
    latency = 1
    schedule_delay = 0

    def __init__(self, fmt: PixelFormat, table):
        _int8_format(fmt)
        table = [int(v) for v in table]
        if len(table) != 256 or not all(-128 <= v <= 127 for v in table):
            raise ValueError(f"table must hold 256 int8 values, not {len(table)} values in "
                             f"{min(table, default=0)}..{max(table, default=0)}")
        self.fmt = self.out_fmt = fmt
        self.table = table
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(fmt))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        m.submodules.table = table = Memory(shape=signed(8), depth=256, init=self.table)
        for ch in range(self.fmt.channels):
            port = table.read_port()
            # q + 128 modulo 256: the two's complement byte with its top bit flipped.
            m.d.comb += [port.addr.eq(self.i.payload.data[ch].as_unsigned() ^ 0x80),
                         port.en.eq(pipe.en),
                         self.o.payload.data[ch].eq(port.data)]
        pipe.stage()
        pipe.finish()
        return m


def exp_table(input_multiplier, input_left_shift, diff_min):
    """The 256 exponentials a softmax pixel can need: entry ``d`` is the reference's Q0.31
    ``exp_on_negative_values(SRDHM(-d << input_left_shift, input_multiplier))`` for the
    difference ``x - max = -d``, or 0 when ``-d < diff_min`` (a cut-off channel)."""
    diff = -np.arange(256, dtype=np.int64)
    scaled = saturating_rounding_doubling_high_mul(wrap_int32(diff << input_left_shift),
                                                   input_multiplier)
    exps = exp_on_negative_values(scaled)
    return [int(e) for e in np.where(diff >= diff_min, exps, 0)]


def _saturating_shift_left(x, exponent):
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` of a signed 32-bit value."""
    threshold = (1 << (31 - exponent)) - 1
    return Mux(x > threshold, INT32_MAX,
               Mux(x < -threshold, INT32_MIN, (x << exponent)[:32].as_signed()))


def _wrap32(value):
    """``value`` modulo ``2**32`` as a signed 32-bit value (C++ int32 addition)."""
    return value[:32].as_signed()


class Softmax(wiring.Component):
    """TFLite int8 ``SOFTMAX`` over each pixel's channels (see the module docstring).

    Parameters
    ----------
    fmt : PixelFormat
        ``C`` x int8 (input and output); with ``C <= 1024`` (a pixel format's limit) the
        sum of exponentials fits 30 bits.
    input_multiplier, input_left_shift, diff_min : int
        The Prepare results of the golden :class:`~rasterflow.golden.nonlinear.Softmax`
        (``beta * in_scale * 2**26`` as a Q0.31 multiplier and left shift, and the cut-off).
    monitor : bool
        Add :attr:`monitor` (for verification; no effect on the stream).

    Schedule, per pixel
    -------------------
    *Scan*: while the pixel waits at the input (not yet taken), one channel per cycle is
    compared with the running maximum; the last comparison takes the pixel into a latch.
    *Sum*: ``C`` cycles, one channel per cycle through the exp ROM into the sum; one cycle
    drains the ROM read. *Normalize*: ``clz(sum)``, then the operands of the first multiply.
    *Reciprocal*: 7 multiplies x 3 cycles. *Output*: ``C`` cycles, one channel per cycle
    through the ROM and the multiplier into the output shift register (it starts only once
    the previous pixel's output has left; the last channel leaves the pipeline 5 cycles after
    it entered). The scan of the next pixel runs during the current pixel's work, so it costs
    nothing once the unit is busy.

    Latency, throughput, memory
    ---------------------------
    ``II = 2*C + 25`` cycles per pixel. A pixel offered at cycle ``t`` to an idle unit leaves
    at cycle ``t + II - 1 + latency`` with ``latency = C + 4`` (``3*C + 28`` cycles: scan
    ``C``, sum ``C + 1``, normalize 2, reciprocal 21, output ``C + 4``), the convention of
    :class:`~rasterflow.hdl.conv.MacArray`; ``N`` back-to-back pixels take
    ``N * II + latency`` cycles to the last output. Resources: a 256 x 31 bit exp ROM, one
    32 x 32 signed multiplier, a ``C`` x 8 bit latch (rotated one channel per step) and
    ``C`` x 8 bit output shift register, an 8 bit ``C``-to-1 multiplexer on the input for the
    scan, the ``bitlen(C) + 19`` bit sum and a few 32-bit registers.
    """
    schedule_delay = 0

    def __init__(self, fmt: PixelFormat, *, input_multiplier, input_left_shift, diff_min,
                 monitor=False):
        _int8_format(fmt)
        if not 0 < input_multiplier <= INT32_MAX:
            raise ValueError(f"input_multiplier must be in 1..2**31-1, not {input_multiplier}")
        if not 0 <= input_left_shift <= 31:
            raise ValueError(f"input_left_shift must be in 0..31, not {input_left_shift}")
        if diff_min > 0:
            raise ValueError(f"diff_min must be at most 0, not {diff_min}")
        self.fmt = self.out_fmt = fmt
        self.channels = fmt.channels
        self.exp_table = exp_table(input_multiplier, input_left_shift, diff_min)
        timing = self.timing(fmt.channels)
        self.latency = timing.latency
        self.initiation_interval = timing.initiation_interval
        #: With ``monitor``: a pixel's intermediate values, ``valid`` for one cycle (its first
        #: output step): the ``sum`` of exponentials (Q12.19), the ``reciprocal`` (Q0.31,
        #: the multiplier's fixed operand) and the output rounding ``exponent``. Only the
        #: rounded bytes of the output show them, so simulation checks them here.
        self.monitor = Signal(data.StructLayout({
            "valid": 1, "sum": unsigned(32), "reciprocal": signed(32),
            "exponent": self._output_exponent_shape()})) if monitor else None
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(fmt))})

    @staticmethod
    def timing(channels):
        """The unit's :class:`~rasterflow.hdl.timing.StageTiming` for ``channels`` channels:
        ``II`` is the cycles from taking a pixel to being able to take the next (take 1, sum
        ``C``, drain 1, normalize 2, reciprocal 21, output ``C``); a pixel's last output step
        is ``II - 1`` cycles after it was taken, and ``latency`` adds the scan before taking
        it (``C - 1`` cycles) and the output step's cycles."""
        reciprocal = _RECIPROCAL_MULTIPLIES * _MULTIPLY_CYCLES
        interval = 1 + (channels + 1) + 2 + reciprocal + channels
        return StageTiming(latency=(channels - 1) + _OUTPUT_STEP_CYCLES,
                           initiation_interval=interval)

    def _sum_bounds(self):
        return _ONE_SUM, self.channels * _ONE_SUM

    def _output_exponent_shape(self):
        lowest_clz = 32 - self._sum_bounds()[1].bit_length()
        return bounded_shape(_OUTPUT_EXPONENT_BASE - 12, _OUTPUT_EXPONENT_BASE - lowest_clz)

    def elaborate(self, platform):
        m = Module()
        m.submodules.exp_rom = rom = Memory(shape=unsigned(_EXP_BITS), depth=256,
                                            init=self.exp_table)
        regs = self._registers(rom.read_port())
        scan_max, scan_done = self._max_scan(m)
        self._sequencer(m, regs, scan_max, scan_done)
        self._channel_pipeline(m, regs)
        self._multiplier(m, regs)
        self._outputs(m, regs)
        return m

    def _registers(self, rom):
        """The datapath's registers and step flags, by name."""
        c = self.channels
        return SimpleNamespace(
            latch=payload_register(8 * c, name="latch"),
            pixel_max=payload_register(signed(8), name="pixel_max"),
            pixel_sof=payload_register(1, name="pixel_sof"),
            pixel_eol=payload_register(1, name="pixel_eol"),
            count=Signal(range(c), name="count"),
            rom=rom,
            issue_sum=Signal(name="issue_sum"),
            issue_out=Signal(name="issue_out"),
            sum=payload_register(bounded_shape(0, self._sum_bounds()[1]), name="sum"),
            headroom=payload_register(range(33), name="headroom"),
            half_denominator=payload_register(signed(32), name="half_denominator"),
            exponent=payload_register(self._output_exponent_shape(), name="exponent"),
            estimate=payload_register(signed(32), name="estimate"),
            mul_a=payload_register(signed(32), name="mul_a"),
            mul_b=payload_register(signed(32), name="mul_b"),
            high=payload_register(signed(32), name="high"),
            step=Signal(range(_RECIPROCAL_MULTIPLIES), name="step"),
            phase=Signal(range(_MULTIPLY_CYCLES), name="phase"),
            out=payload_register(8 * c, name="out"),
            out_sof=payload_register(1, name="out_sof"),
            out_eol=payload_register(1, name="out_eol"),
        )

    def _max_scan(self, m):
        """The running maximum over the waiting input pixel's channels, one per cycle.

        Returns ``(maximum, done)``: ``done`` while the last channel is being compared, with
        ``maximum`` the pixel's (combinational); the scan restarts when the pixel is taken.
        """
        c = self.channels
        index = Signal(range(c), name="scan_index")
        running = Signal(signed(8), name="scan_max")
        value = self.i.payload.data[index] if c > 1 else self.i.payload.data[0]
        maximum = Signal(signed(8), name="scan_maximum")
        last = index == c - 1
        m.d.comb += maximum.eq(Mux((index == 0) | (value > running), value, running))
        with m.If(self.i.valid):
            m.d.sync += running.eq(maximum)
            with m.If(~last):
                m.d.sync += index.eq(index + 1)
        with m.If(self.i.ready):
            m.d.sync += index.eq(0)
        return maximum, self.i.valid & last

    def _sequencer(self, m, regs, scan_max, scan_done):
        """The per-pixel schedule (see the class docstring)."""
        with m.FSM(name="softmax"):
            with m.State("ACCEPT"):
                with m.If(scan_done):
                    m.d.comb += self.i.ready.eq(1)
                    m.d.sync += [regs.latch.eq(self.i.payload.data),
                                 regs.pixel_max.eq(scan_max),
                                 regs.pixel_sof.eq(self.i.payload.sof),
                                 regs.pixel_eol.eq(self.i.payload.eol),
                                 regs.sum.eq(0)]
                    m.next = "SUM"
            with m.State("SUM"):
                self._issue(m, regs, regs.issue_sum, "DRAIN")
            with m.State("DRAIN"):
                m.next = "NORMALIZE"
            with m.State("NORMALIZE"):
                m.d.sync += regs.headroom.eq(self._count_leading_zeros(regs.sum))
                m.next = "LOAD"
            with m.State("LOAD"):
                self._load_reciprocal(m, regs)
                m.next = "RECIPROCAL"
            with m.State("RECIPROCAL"):
                with m.If(regs.phase == _MULTIPLY_CYCLES - 1):
                    m.d.sync += [regs.phase.eq(0), regs.step.eq(regs.step + 1)]
                    self._newton_raphson(m, regs)
                with m.Else():
                    m.d.sync += regs.phase.eq(regs.phase + 1)
            with m.State("OUTPUT"):
                with m.If(~self.o.valid):
                    m.d.sync += [regs.out_sof.eq(regs.pixel_sof),
                                 regs.out_eol.eq(regs.pixel_eol)]
                    self._issue(m, regs, regs.issue_out, "ACCEPT")

    def _issue(self, m, regs, flag, after):
        """Send the latch's channel ``count`` (its head) into the channel pipeline, rotate the
        latch to the next; after the last, go to state ``after``."""
        c = self.channels
        m.d.comb += flag.eq(1)
        m.d.sync += [regs.latch.eq(regs.latch.rotate_right(8)), regs.count.eq(regs.count + 1)]
        with m.If(regs.count == c - 1):
            m.d.sync += regs.count.eq(0)
            m.next = after

    def _count_leading_zeros(self, value):
        """``clz(uint32(value))`` for ``value`` in the sum's range (at least ``2**19``)."""
        lo, hi = self._sum_bounds()
        zeros = Const(32 - lo.bit_length())
        for bit in range(lo.bit_length(), hi.bit_length()):
            zeros = Mux(value[bit], 31 - bit, zeros)
        return zeros

    def _load_reciprocal(self, m, regs):
        """The denominator ``d``, the output exponent ``35 - h`` and the first multiply,
        ``SRDHM(d, -32/17)``. The reference's ``d`` is gemmlowp's ``RoundingHalfSum`` of
        ``a = (sum << h) - 2**31`` and one (``2**31 - 1``): ``(a + 2**31 - 1 + 1) / 2``, which
        is ``(sum << h) >> 1`` (``a >= 0``)."""
        shifted = (regs.sum << regs.headroom)[:32]
        half = shifted[1:32]
        m.d.sync += [regs.half_denominator.eq(half),
                     regs.exponent.eq(_OUTPUT_EXPONENT_BASE - regs.headroom),
                     regs.mul_a.eq(half), regs.mul_b.eq(_CONSTANT_NEG_32_OVER_17),
                     regs.step.eq(0), regs.phase.eq(0)]

    def _newton_raphson(self, m, regs):
        """Take multiply ``step``'s result ``H`` and start the next multiply. Step 0,
        ``H = SRDHM(d, -32/17)``: the estimate ``x = 48/17 + H``, next ``SRDHM(d, x)``. Odd
        steps, ``H = SRDHM(d, x)``: next ``SRDHM(x, 1 - H)``. Even steps,
        ``H = SRDHM(x, 1 - d*x)``: ``x += 4*H`` (saturating), next ``SRDHM(d, x)``; after the
        last, ``r = 2*x`` (saturating) becomes the multiplier's fixed operand (all in Q2.29
        but ``d`` and ``r``, Q0.31)."""
        high, estimate, step = regs.high, regs.estimate, regs.step
        initial = _wrap32(_CONSTANT_48_OVER_17 + high)
        improved = _wrap32(estimate + _saturating_shift_left(high, 2))
        with m.If(step == 0):
            m.d.sync += [estimate.eq(initial), regs.mul_a.eq(regs.half_denominator),
                         regs.mul_b.eq(initial)]
        with m.Elif(step[0]):
            m.d.sync += [regs.mul_a.eq(estimate), regs.mul_b.eq(_wrap32(_ONE_Q2_29 - high))]
        with m.Elif(step == _RECIPROCAL_MULTIPLIES - 1):
            m.d.sync += regs.mul_a.eq(_saturating_shift_left(improved, 1))
            m.next = "OUTPUT"
        with m.Else():
            m.d.sync += [estimate.eq(improved), regs.mul_a.eq(regs.half_denominator),
                         regs.mul_b.eq(improved)]

    def _channel_pipeline(self, m, regs):
        """The ROM read of the issued channel (``max - x``), then: in the sum pass, its
        ``RDPOT(e, 12)`` into the sum; in the output pass, ``e`` to the multiplier, and four
        cycles later ``RDPOT(H, exponent) - 128`` (clamped) into the output shift register,
        whose last entry makes the output valid."""
        head = regs.latch[:8].as_signed()
        m.d.comb += regs.rom.addr.eq((regs.pixel_max - head)[:8])
        e = regs.rom.data
        summing, = self._delayed(m, regs.issue_sum, 1, "sum")
        with m.If(summing):
            m.d.sync += regs.sum.eq(regs.sum + ((e + (1 << 11)) >> 12))
        tail = _OUTPUT_STEP_CYCLES - 1
        out_flags = self._delayed(m, regs.issue_out, tail, "out")
        last_flags = self._delayed(m, regs.issue_out & (regs.count == self.channels - 1), tail,
                                   "last")
        with m.If(out_flags[0]):
            m.d.sync += regs.mul_b.eq(e)
        quotient = rounding_divide_by_pot(regs.high, regs.exponent)
        y = Mux(quotient > 255, 127, quotient - 128)[:8]
        with m.If(out_flags[-1]):
            m.d.sync += regs.out.eq(Cat(regs.out[8:], y))
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(last_flags[-1]):
            m.d.sync += self.o.valid.eq(1)

    @staticmethod
    def _delayed(m, value, cycles, name):
        """``value`` delayed by 1, ..., ``cycles`` cycles."""
        delayed = []
        for k in range(cycles):
            register = Signal(name=f"{name}_d{k + 1}")
            m.d.sync += register.eq(value)
            delayed.append(register)
            value = register
        return delayed

    def _multiplier(self, m, regs):
        """The shared multiplier, free running: ``high = SRDHM(mul_a, mul_b)`` two cycles
        after its operands (product, then the rounded high half with gemmlowp's saturation
        of ``INT32_MIN * INT32_MIN``)."""
        product = payload_register(signed(64), name="product")
        m.d.sync += product.eq(regs.mul_a * regs.mul_b)
        nudged = product + Mux(product >= 0, 1 << 30, 1 - (1 << 30))
        toward_zero = Mux(nudged < 0, nudged + ((1 << 31) - 1), nudged) >> 31
        m.d.sync += regs.high.eq(Mux(toward_zero > INT32_MAX, INT32_MAX, toward_zero))

    def _outputs(self, m, regs):
        """The output stream's payload (its ``valid``: :meth:`_channel_pipeline`), and the
        :attr:`monitor`."""
        m.d.comb += [self.o.payload.data.eq(regs.out), self.o.payload.sof.eq(regs.out_sof),
                     self.o.payload.eol.eq(regs.out_eol)]
        if self.monitor is not None:
            m.d.comb += [self.monitor.valid.eq(regs.issue_out & (regs.count == 0)),
                         self.monitor.sum.eq(regs.sum), self.monitor.reciprocal.eq(regs.mul_a),
                         self.monitor.exponent.eq(regs.exponent)]
