"""Int8 joins of two tensors: TFLite ADD (:class:`QuantizedAdd`) and CONCATENATION along the
channels (:class:`ChannelConcat`).

Both read one joined stream (:func:`~rasterflow.hdl.payload.joined_stream_layout`, fields
``a`` and ``b``: the two inputs' pixels at one position) and write one pixel stream, so a
:class:`~rasterflow.hdl.top.PipelineTop` feeds them through its fork, skew buffers and join
like any other join stage.

*ADD.* TFLite's int8 kernel (``reference_integer_ops::Add``, ``left_shift = 20``) computes per
value ``s_k = MBQM((x_k - zp_k) << 20, m_k, e_k)`` for both inputs and
``y = clamp(MBQM(s_1 + s_2, m_out, e_out) + zp_out, act_min, act_max)``, each multiplier below
one (``e <= 0``, ``m`` in ``{0} u [2**30, 2**31)``). The input side is narrow: the doubling
high multiply of ``d << 20`` (``d = x - zp``, 9 bits) by ``m`` is, exactly,

    SRDHM(d << 20, m) = trunc((d*m*2**20 + nudge) / 2**31) = (d*m + 2**10) >> 11

(floor division; ``nudge = 2**30`` for a non-negative product, ``1 - 2**30`` otherwise, and
the two cases meet in one floor), so with ``d*m = x*m - zp*m`` the product is the 8-bit
input times a constant, and the zero point joins the rounding constant: ``h = (x*m + (2**10 -
zp*m)) >> 11``, then ``s = RoundingDivideByPOT(h, -e)``. The output side is the project's
requantizer (:func:`~rasterflow.hdl.requant.requantize_lanes`) on the sum.
"""
from amaranth.hdl import Array, Cat, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .arith import bounded_shape, rounded_bounds
from .folded import FoldedSteps
from .payload import joined_stream_signature, pixel_stream_signature
from .requant import REQUANT_LATENCY, requantize_lanes, rounding_divide_by_pot
from .stall import StallPipeline
from .timing import StageTiming

__all__ = ["QuantizedAdd", "ChannelConcat", "ADD_LEFT_SHIFT"]

#: TFLite's ``left_shift`` of the int8 ADD.
ADD_LEFT_SHIFT = 20
#: ``SRDHM(d << 20, m) = (d*m + _HALF) >> _DROPPED``: the 31 bits SRDHM drops, less the 20
#: zero bits of ``d << 20``.
_DROPPED = 31 - ADD_LEFT_SHIFT
_HALF = 1 << (_DROPPED - 1)
#: Register stages of one input's rescaling: product, nudge and shift, rounding divide.
_INPUT_STAGES = 3
#: Register stages folding adds: the pixel latch, the fold's operands, the output register.
_FOLD_STAGES = 3


def _check_int8(name, fmt):
    if not isinstance(fmt, PixelFormat) or fmt.dtype != "int8":
        raise ValueError(f"{name} must be a PixelFormat of int8 channels, not {fmt!r}")


def _check_multiplier(name, multiplier, *, below_one):
    """``(m0, shift)`` in TFLite's ranges; ``below_one``: a multiplier smaller than one."""
    try:
        m0, shift = (int(v) for v in multiplier)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an (m0, shift) pair, not {multiplier!r}") from None
    lowest_shift, highest_shift = -31, 0 if below_one else 31
    if not 0 <= m0 < 1 << 31 or not lowest_shift <= shift <= highest_shift:
        raise ValueError(f"{name} must have m0 in 0..2**31-1 and shift in "
                         f"{lowest_shift}..{highest_shift}, not {multiplier!r}")
    return m0, shift


def _check_zero_point(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
        raise ValueError(f"{name} must be an integer in -128..127, not {value!r}")
    return value


class QuantizedAdd(wiring.Component):
    """TFLite int8 ADD of two ``C``-channel pixels, per channel (see the module docstring).

    Parameters
    ----------
    fmt : PixelFormat
        ``C`` x int8: both inputs and the output.
    in1_zp, in2_zp, out_zp : int
        Zero points of the inputs and the output.
    in1_multiplier, in2_multiplier : (m0, shift)
        TFLite's input multipliers (each below one: ``shift <= 0``).
    out_multiplier : (m0, shift)
        TFLite's output multiplier.
    act_min, act_max : int
        The fused activation's clamp.
    channels_per_cycle : int or None
        ``k`` channels computed in parallel, ``1..C`` (``None``: all ``C``). With ``k < C``
        a pixel is latched and its ``F = ceil(C / k)`` folds of ``k`` channels go through
        one datapath of ``k`` lanes, a fold per cycle.

    Members: ``i`` joined stream (``a``: input 1, ``b``: input 2); ``o`` pixel stream of
    ``fmt``. ``sof``/``eol`` pass through.

    Latency, throughput, resources
    ------------------------------
    All channels at once: latency 8 cycles (each input's product ``x*m``, its nudge and
    shift, its rounding divide; the sum and the output requantizer's 5), one pixel per
    cycle, no memory. Folded: a pixel taken at cycle ``t`` while the unit is idle leaves at
    ``t + F - 1 + latency`` with ``latency = 11`` (the latch, the fold's operand registers
    and the output register besides the 8), one pixel per ``II = F`` cycles; memory: the
    latched pixel (``2C`` int8) and ``(F - 1) * k`` int8 partial results. Multipliers, per
    lane: two by constants of 8 x 31 bits and one by a constant of the sum's width (29
    bits) x 31 bits.
    """
    schedule_delay = 0

    def __init__(self, fmt, *, in1_zp, in1_multiplier, in2_zp, in2_multiplier, out_zp,
                 out_multiplier, act_min=-128, act_max=127, channels_per_cycle=None):
        _check_int8("fmt", fmt)
        self.fmt = self.out_format = fmt
        self.inputs = (
            (_check_zero_point("in1_zp", in1_zp),
             _check_multiplier("in1_multiplier", in1_multiplier, below_one=True)),
            (_check_zero_point("in2_zp", in2_zp),
             _check_multiplier("in2_multiplier", in2_multiplier, below_one=True)))
        self.out_zp = _check_zero_point("out_zp", out_zp)
        self.out_multiplier = _check_multiplier("out_multiplier", out_multiplier,
                                                below_one=False)
        _check_zero_point("act_min", act_min)
        _check_zero_point("act_max", act_max)
        if act_min > act_max:
            raise ValueError(f"act_min ({act_min}) must not exceed act_max ({act_max})")
        self.act_min, self.act_max = act_min, act_max
        timing = self.timing(fmt.channels, channels_per_cycle)
        self.channels_per_cycle = channels_per_cycle or fmt.channels
        self.folds = timing.initiation_interval
        self.latency, self.initiation_interval = timing.latency, timing.initiation_interval
        super().__init__({"i": In(joined_stream_signature({"a": fmt, "b": fmt})),
                          "o": Out(pixel_stream_signature(fmt))})

    @staticmethod
    def timing(channels, channels_per_cycle=None):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of a ``QuantizedAdd`` of
        ``channels`` channels, ``channels_per_cycle`` at a time."""
        if channels_per_cycle is None:
            channels_per_cycle = channels
        if isinstance(channels_per_cycle, bool) or not isinstance(channels_per_cycle, int) \
                or not 1 <= channels_per_cycle <= channels:
            raise ValueError(f"channels_per_cycle must be an integer in 1..{channels}, not "
                             f"{channels_per_cycle!r}")
        folds = -(-channels // channels_per_cycle)
        latency = _INPUT_STAGES + REQUANT_LATENCY + (_FOLD_STAGES if folds > 1 else 0)
        return StageTiming(latency, initiation_interval=folds)

    def elaborate(self, platform):
        m = Module()
        if self.folds == 1:
            pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
            channels = range(self.fmt.channels)
            pixel = self.i.payload.data
            results = self._datapath(pipe, [pixel.a[ch] for ch in channels],
                                     [pixel.b[ch] for ch in channels])
            m.d.comb += [self.o.payload.data[ch].eq(y) for ch, y in enumerate(results)]
            pipe.finish()
            return m
        # A fold is a neuron fold of FoldedSteps: k channels computed in one step.
        seq = FoldedSteps(m, self.i, self.o, synapse_folds=1, neuron_folds=self.folds)
        results = self._datapath(seq.pipe, *self._fold_operands(seq))
        seq.collect(results, self.o.payload.data, self.o.payload.sof, self.o.payload.eol)
        return m

    def _datapath(self, pipe, first, second):
        """The lanes' sums, rescaled and requantized: ``[y]`` per lane, after eight stages
        (``first``, ``second``: the two inputs' int8 value per lane)."""
        scaled = self._rescaled(pipe, (first, second))
        m0, shift = self.out_multiplier
        lanes = [(s1 + s2, (lo1 + lo2, hi1 + hi2), m0, shift)
                 for (s1, lo1, hi1), (s2, lo2, hi2) in zip(*scaled)]
        return [y for y, _, _ in requantize_lanes(pipe, lanes, name="out",
                                                  zero_point=self.out_zp,
                                                  clamp_range=(self.act_min, self.act_max))]

    def _rescaled(self, pipe, inputs):
        """Each input's ``MBQM((x - zp) << 20, m, e)`` per lane, in three stages: the
        product ``x*m``, ``(x*m + 2**10 - zp*m) >> 11``, the rounding divide by ``2**-e``.
        Returns, per input, ``[(value, lo, hi)]`` per lane."""
        scales = [_InputScale(f"in{k + 1}", zp, m0, shift)
                  for k, (zp, (m0, shift)) in enumerate(self.inputs)]
        values = inputs
        for step in ("product", "high", "scaled"):
            values = [[pipe.register(getattr(scale, step)(value),
                                     name=f"{scale.name}_{step}{lane}",
                                     shape=bounded_shape(*scale.bounds[step]))
                       for lane, value in enumerate(row)]
                      for scale, row in zip(scales, values)]
            pipe.stage()
        return [[(value, *scale.bounds["scaled"]) for value in row]
                for scale, row in zip(scales, values)]

    def _fold_operands(self, seq):
        """Stage 1: lane ``l``'s two operands, channel ``n * k + l`` of each input at fold
        ``n`` (a lane past the last channel repeats it: its result is not used)."""
        k, channels = self.channels_per_cycle, self.fmt.channels
        operands = []
        for name in ("a", "b"):
            values = seq.latch.data[name]
            operands.append([seq.pipe.register(
                Array(values[min(f * k + lane, channels - 1)] for f in range(self.folds))[
                    seq.n], name=f"{name}_lane{lane}", shape=signed(8))
                for lane in range(k)])
        seq.pipe.stage()
        return operands


class _InputScale:
    """One input's rescaling ``MBQM((x - zp) << 20, m0, shift)`` as three steps, and the
    bounds of each step's result for an int8 ``x``."""
    def __init__(self, name, zp, m0, shift):
        self.name, self.m0, self.right = name, m0, -shift
        self.rounding = _HALF - zp * m0
        p_bounds = (-128 * m0, 127 * m0)
        h_bounds = tuple((p + self.rounding) >> _DROPPED for p in p_bounds)
        self.bounds = {"product": p_bounds, "high": h_bounds,
                       "scaled": rounded_bounds(*h_bounds, self.right)}

    def product(self, x):
        return x * self.m0

    def high(self, product):
        return (product + self.rounding) >> _DROPPED

    def scaled(self, high):
        return rounding_divide_by_pot(high, self.right)


class ChannelConcat(wiring.Component):
    """TFLite int8 CONCATENATION along the channels: ``C1`` then ``C2`` channels.

    The int8 kernel requires every input's scale and zero point to equal the output's, so
    it copies. Members: ``i`` joined stream (``a``: ``first``, ``b``: ``second``); ``o`` pixel
    stream of ``C1 + C2`` int8. ``o`` is ``i`` rewired: ``o.valid = i.valid``,
    ``i.ready = o.ready``, ``sof``/``eol`` pass through.

    Latency 0 (wiring); one pixel per cycle; no memory.

    Parameters
    ----------
    first, second : PixelFormat
        ``C1`` and ``C2`` x int8.
    """
    latency = 0
    schedule_delay = 0

    def __init__(self, first, second):
        _check_int8("first", first)
        _check_int8("second", second)
        if first.channels + second.channels > 1024:
            raise ValueError(f"first and second have {first.channels} + {second.channels} "
                             f"channels, more than 1024")
        self.first, self.second = first, second
        self.out_format = PixelFormat(first.channels + second.channels, "int8")
        super().__init__({"i": In(joined_stream_signature({"a": first, "b": second})),
                          "o": Out(pixel_stream_signature(self.out_format))})

    def elaborate(self, platform):
        m = Module()
        pixel = self.i.payload.data
        m.d.comb += [self.o.payload.data.eq(Cat(pixel.a, pixel.b)),
                     self.o.payload.sof.eq(self.i.payload.sof),
                     self.o.payload.eol.eq(self.i.payload.eol),
                     self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        return m
