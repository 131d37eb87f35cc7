"""Pointwise int8 activations: LeakyReLU and (re-quantizing) ReLU / ReLU6 stream stages.

Both are TFLite int8 kernels of the form ``y = clamp(z_out + MBQM(x - z_in, M), lo, hi)``:

* ``LEAKY_RELU``: two quantized multipliers, ``M_id = QM(s_in/s_out)`` for ``x - z_in >= 0``
  and ``M_alpha = QM(s_in*alpha/s_out)`` otherwise; clamp to int8.
* ``RELU`` / ``RELU6`` (standalone operators): one multiplier ``QM(s_in/s_out)``; clamp to
  the activation range (quantized 0 and 6). Fused RELU/RELU6 of a convolution are the
  ``act_min``/``act_max`` clamp of :class:`~rasterflow.hdl.conv.MacArray`.

:class:`RequantActivation` builds, per channel, one requantizer lane per multiplier with the
multiplier as an elaboration-time constant (so each is a constant-coefficient multiply of the
9-bit ``x - z_in``, shifted left by ``max(e, 0)``), and picks the lane by the sign of
``x - z_in`` before adding the zero point and clamping.
"""
from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .arith import bounded_shape
from .payload import pixel_stream_signature
from .stall import StallPipeline
from .requant import requantize_lanes

__all__ = ["RequantActivation"]


class RequantActivation(wiring.Component):
    """``y = clamp(out_zp + MBQM(x - in_zp, M), act_min, act_max)`` per channel.

    Parameters
    ----------
    fmt : PixelFormat
        ``C`` x int8 (input and output).
    in_zp, out_zp : int
        Zero points.
    multipliers : list of ``(m0, shift)``
        One pair (ReLU: the same ``M`` for every input) or two (LeakyReLU: ``M_id`` for
        ``x - in_zp >= 0``, ``M_alpha`` for ``x - in_zp < 0``).
    act_min, act_max : int
        The output clamp.

    Latency 5 cycles (shift, multiply, nudge/truncate, rounding divide, select + zero point
    + clamp); one pixel per cycle; no memory. ``C * len(multipliers)`` constant multipliers.
    """
    latency = 5
    schedule_delay = 0

    def __init__(self, fmt: PixelFormat, *, in_zp, out_zp, multipliers, act_min=-128,
                 act_max=127):
        if fmt.dtype != "int8":
            raise ValueError(f"activations take int8 pixels, not {fmt.dtype}")
        if len(multipliers) not in (1, 2):
            raise ValueError("multipliers must hold one (m0, shift) pair or two")
        for m0, shift in multipliers:
            if not 0 <= m0 < 1 << 31 or not -31 <= shift <= 31:
                raise ValueError(f"m0 must be in 0..2**31-1 and shift in -31..31, not "
                                 f"({m0}, {shift})")
        if not -128 <= act_min <= act_max <= 127:
            raise ValueError(f"act_min..act_max must be an int8 range, not {act_min}..{act_max}")
        self.fmt = self.out_fmt = fmt
        self.in_zp, self.out_zp = int(in_zp), int(out_zp)
        self.multipliers = [(int(m0), int(shift)) for m0, shift in multipliers]
        self.act_min, self.act_max = int(act_min), int(act_max)
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(fmt))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, frame_markers=True)
        d_lo, d_hi = -128 - self.in_zp, 127 - self.in_zp
        lanes = []
        for ch in range(self.fmt.channels):
            d = self.i.payload.data[ch] - self.in_zp
            if len(self.multipliers) == 2:
                pipe.carry(f"neg{ch}", d < 0)
            for m0, shift in self.multipliers:
                lanes.append((d, (d_lo, d_hi), m0, shift))
        outs = requantize_lanes(pipe, lanes, name="act")
        per = len(self.multipliers)
        results = []
        for ch in range(self.fmt.channels):
            (v, lo, hi) = outs[ch * per]
            if per == 2:
                (va, alo, ahi) = outs[ch * per + 1]
                v = Mux(pipe.carried[f"neg{ch}"], va, v)
                lo, hi = min(lo, alo), max(hi, ahi)
            total = v + self.out_zp
            if hi + self.out_zp > self.act_max:
                total = Mux(total > self.act_max, self.act_max, total)
            if lo + self.out_zp < self.act_min:
                total = Mux(total < self.act_min, self.act_min, total)
            results.append(pipe.register(total, name=f"y{ch}",
                                         shape=bounded_shape(self.act_min, self.act_max)))
        pipe.stage()
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(results)]
        pipe.finish()
        return m
