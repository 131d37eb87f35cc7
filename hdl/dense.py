"""Int8 ``FULLY_CONNECTED`` on a ``1 x 1 x Cin`` stream: a folded MAC array and LiteRT's
double-precision output scaling, reproduced exactly with integers.

*MAC array* (:class:`DenseUnit`): as :class:`~rasterflow.hdl.conv.MacArray` with a ``1 x 1``
window: ``pe`` output channels in parallel, ``simd`` int8 x int8 products per PE per cycle,
a pipelined adder tree and an accumulator per PE; ``sf = ceil(Cin/simd)`` synapse folds for
each of ``nf = ceil(Cout/pe)`` neuron folds, one step per cycle, ``II = sf * nf``. The
input zero point is folded into the bias (``bias' = bias - in_zp * sum(w)``, exact), so the
products are plain int8 x int8. Weights live in one ROM (``nf*sf`` words of ``pe*simd``
int8); ``bias'`` and the scaling constants in a second (``nf`` words of ``pe`` entries).

*Output scaling.* LiteRT's reference FULLY_CONNECTED does not use
MultiplyByQuantizedMultiplier: it rounds ``double(acc) * scale`` (an IEEE double product,
then C ``round``), see :mod:`rasterflow.golden.dense`. For ``a = |acc|`` that is a
nondecreasing step function ``G(a)`` (and ``G(-a) = -G(a)``), and the output only needs
``min(G(a), K)``: ``K`` is how far the clamp range reaches from the output zero point, at
most 255. So ``G`` is ``K`` thresholds ``T_k = min{a : G(a) >= k}``, which
:func:`exact_rescale` finds with the golden arithmetic itself and then fits with one
integer line: ``q(a) = (a*M + R) >> S`` has exactly those thresholds (checked for every
``k``, the double rounding of near-ties included). The hardware computes
``y = clamp(out_zp +- min(q(min(a, a_max)), K), act_min, act_max)`` with one multiplier per
PE; ``a_max = T_K`` keeps the product narrow (every larger ``a`` saturates anyway).
"""
import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from amaranth.hdl import Array, Module, Mux, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .arith import bounded_shape, clamp
from .folded import FoldedSteps, adder_trees, lane_products
from .payload import pixel_layout, pixel_stream_signature
from .requant import INT32_MAX, INT32_MIN
from .stall import payload_register
from .timing import StageTiming

__all__ = ["Rescale", "exact_rescale", "golden_rescale", "accumulator_magnitude",
           "channel_rescales", "fold_bias", "DenseUnit", "RESCALE_LATENCY"]

#: Register stages of the output scaling: ``acc + bias'``, magnitude, product, clamp.
RESCALE_LATENCY = 4
#: At most how many shifts below the one that surely works :func:`exact_rescale` tries.
_SHIFT_SEARCH = 16


def golden_rescale(magnitude, scale):
    """LiteRT's ``round(double(a) * scale)`` for ``a >= 0`` (numpy arrays), as
    :class:`~rasterflow.golden.dense.FullyConnected` computes it."""
    scaled = np.asarray(magnitude, dtype=np.int64).astype(np.float64) * scale
    whole = np.floor(scaled)
    return (whole + (scaled - whole >= 0.5)).astype(np.int64)


@dataclass(frozen=True)
class Rescale:
    """Integer output scaling of one channel: for ``0 <= a <= magnitude``,
    ``min(((min(a, a_max) * multiplier + offset) >> shift), limit) ==
    min(golden_rescale(a, scale), limit)``."""
    multiplier: int
    offset: int
    shift: int
    limit: int
    a_max: int

    def __call__(self, a):
        a = min(int(a), self.a_max)
        return min((a * self.multiplier + self.offset) >> self.shift, self.limit)

    def shifted(self, shift):
        """The same scaling with a larger ``shift`` (multiplier and offset scaled up)."""
        extra = shift - self.shift
        return Rescale(self.multiplier << extra, self.offset << extra, shift, self.limit,
                       self.a_max)


def _thresholds(scale, magnitude, limit):
    """``T_k`` for ``k = 1..limit``: the least ``a`` in ``0..magnitude`` with
    ``golden_rescale(a) >= k``, or ``magnitude + 1`` when there is none."""
    k = np.arange(1, limit + 1, dtype=np.int64)
    if scale == 0:
        return np.full(limit, magnitude + 1, dtype=np.int64)
    guess = np.ceil((k - 0.5) / scale)
    t = np.clip(np.nan_to_num(guess, posinf=magnitude + 1), 1, magnitude + 1).astype(np.int64)
    # The float guess is within a step or two of the exact threshold; walk to it.
    while True:
        down = (t > 1) & (golden_rescale(t - 1, scale) >= k)
        up = (t <= magnitude) & (golden_rescale(np.minimum(t, magnitude), scale) < k)
        if not (down.any() or up.any()):
            return t
        t = t - down + up


def _constraints(thresholds, magnitude):
    """The conditions on ``q(a) = (a*M + R) >> S`` as ``(a, k)`` pairs: ``lower``, where
    ``a*M + R >= k * 2**S`` (``q(T_k) >= k``, and ``q(0) >= 0``), and ``upper``, where
    ``a*M + R < k * 2**S`` (``q(T_k - 1) < k``, and ``q(magnitude)`` below the first
    unreachable ``k``)."""
    k = np.arange(1, len(thresholds) + 1, dtype=np.int64)
    reachable = thresholds <= magnitude
    lower_a = np.concatenate([[0], thresholds[reachable]])
    lower_k = np.concatenate([[0], k[reachable]])
    upper_a, upper_k = thresholds[reachable] - 1, k[reachable]
    if not reachable.all():
        upper_a = np.append(upper_a, magnitude)
        upper_k = np.append(upper_k, k[~reachable][0])
    return (lower_a, lower_k), (upper_a, upper_k)


def _extreme_slope(dk, da, largest):
    """The largest (or smallest) ``dk / da`` as an exact Fraction (the float ratios only
    pick the candidates)."""
    ratios = dk / da
    best = ratios.max() if largest else ratios.min()
    near = np.abs(ratios - best) <= abs(best) * 1e-9
    common = np.gcd(dk[near], da[near])
    pairs = {(int(n), int(d)) for n, d in zip(dk[near] // common, da[near] // common)}
    candidates = [Fraction(n, d) for n, d in pairs]
    return max(candidates) if largest else min(candidates)


def _slopes(lower, upper):
    """The open interval ``(u_lo, u_hi)`` of the slopes ``u = M / 2**S`` that meet every
    pair of a lower and an upper condition (``u * (a_l - a_u) > k_l - k_u``), or ``None``
    when no line does."""
    (lower_a, lower_k), (upper_a, upper_k) = lower, upper
    da = (lower_a[:, None] - upper_a[None, :]).ravel()
    dk = (lower_k[:, None] - upper_k[None, :]).ravel()
    if np.any((da == 0) & (dk >= 0)):
        return None
    u_lo = _extreme_slope(dk[da > 0], da[da > 0], True) if (da > 0).any() else Fraction(0)
    if not (da < 0).any():
        return u_lo, None
    u_hi = _extreme_slope(dk[da < 0], da[da < 0], False)
    return (u_lo, u_hi) if u_lo < u_hi else None


def _line_at(shift, slopes, lower, upper):
    """``(M, R)`` at ``shift``: ``M`` the least integer above ``u_lo * 2**S``, ``R`` the
    least offset meeting the lower conditions; ``None`` unless the upper ones hold too."""
    (lower_a, lower_k), (upper_a, upper_k) = lower, upper
    one = 1 << shift
    multiplier = math.floor(slopes[0] * one) + 1
    offset = int((lower_k.astype(object) * one - lower_a.astype(object) * multiplier).max())
    if (upper_a.astype(object) * multiplier + offset < upper_k.astype(object) * one).all():
        return multiplier, offset
    return None


@functools.lru_cache(maxsize=None)
def exact_rescale(scale, magnitude, limit):
    """The :class:`Rescale` of ``scale`` for ``|acc| <= magnitude`` and outputs saturating
    at ``limit`` (0..255).

    The thresholds ``T_k`` come from :func:`golden_rescale`; every line meeting them has a
    slope in an open interval ``(u_lo, u_hi)`` (from each pair of conditions), and at
    ``S >= log2(2 / (u_hi - u_lo))`` the least integer ``M > u_lo * 2**S`` meets them all
    with the least offset ``R`` (exact integer arithmetic throughout). Smaller shifts are
    tried down to the first that fails, to keep the product narrow.

    Raises ValueError when no line exists: LiteRT's double rounding can round up
    ``a * scale`` just below ``k - 1/2`` at some ``a`` but not at a larger one, which no
    line does -- for doubles close to a decimal fraction (``0.7``: ``5 * 0.7 == 3.5`` but
    ``45 * 0.7 < 31.5``), never seen for scales made from float32 tensor scales.
    """
    scale = float(scale)
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, not {scale!r}")
    if limit == 0 or scale == 0:
        return Rescale(0, 0, 0, limit, 0)
    thresholds = _thresholds(scale, magnitude, limit)
    a_max = int(min(thresholds[-1], magnitude))
    lower, upper = _constraints(thresholds, magnitude)
    slopes = _slopes(lower, upper)
    if slopes is None:
        raise ValueError(f"no integer line q(a) = (a*M + R) >> S reproduces LiteRT's "
                         f"double rounding of |acc| * {scale!r} for |acc| <= {magnitude}")
    u_lo, u_hi = slopes
    width = (u_hi - u_lo) if u_hi is not None else Fraction(1)
    enough = max(0, math.ceil(math.log2(2 / width)) + 1)
    best = _line_at(enough, slopes, lower, upper)
    for shift in range(enough - 1, max(-1, enough - _SHIFT_SEARCH), -1):
        line = _line_at(shift, slopes, lower, upper)
        if line is None:
            break
        best, enough = line, shift
    if best is not None:
        return Rescale(*best, enough, limit, a_max)
    raise AssertionError("at S >= log2(2 / (u_hi - u_lo)) there is always a line")


def fold_bias(weights, bias, in_zp):
    """``bias - in_zp * sum(w)`` per output channel (exact Python integers): the input zero
    point moved out of the products."""
    sums = np.asarray(weights, dtype=np.int64).sum(axis=1)
    return [int(b) - int(in_zp) * int(w) for b, w in zip(bias, sums)]


def accumulator_magnitude(weights, folded_bias):
    """The largest ``|acc|`` of any output channel: ``acc = sum(w * x) + bias'`` for int8
    ``x``, int32 wrapped (as LiteRT's accumulator) when it can leave the int32 range."""
    weights = np.asarray(weights, dtype=np.int64)
    low = np.minimum(weights * -128, weights * 127).sum(axis=1)
    high = np.maximum(weights * -128, weights * 127).sum(axis=1)
    magnitude = 0
    for lo, hi, bias in zip(low, high, folded_bias):
        lo, hi = int(lo) + bias, int(hi) + bias
        magnitude = max(magnitude, -INT32_MIN if _wraps(lo, hi) else max(-lo, hi))
    return magnitude


def channel_rescales(weights, folded_bias, scale, *, out_zp, act_min, act_max):
    """Per output channel, the :class:`Rescale` of its scale (``scale`` has one entry per
    channel, or one for all), all over :func:`accumulator_magnitude` and with one shift (so
    a per-tensor scale is fitted once). Raises ValueError as :func:`exact_rescale` does."""
    limit = max(act_max - out_zp, out_zp - act_min, 0)
    magnitude = accumulator_magnitude(weights, folded_bias)
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (len(weights),))
    fits = [exact_rescale(float(s), magnitude, limit) for s in scales]
    shift = max(f.shift for f in fits)
    return [f.shifted(shift) for f in fits]


def _wraps(lo, hi):
    """Whether an accumulator in ``lo..hi`` can leave the int32 range (and so wraps)."""
    return lo < INT32_MIN or hi > INT32_MAX


class DenseUnit(wiring.Component):
    """TFLite int8 ``FULLY_CONNECTED`` on each pixel of a stream (see the module docstring).

    Parameters
    ----------
    weights : ndarray
        int8 ``[Cout, Cin]``.
    bias : ndarray
        int32 ``[Cout]``.
    scale : ndarray
        float64 ``[Cout]`` or ``[1]`` (per tensor): ``in_scale * w_scale / out_scale``.
    in_zp, out_zp, act_min, act_max : int
        Input/output zero points and the fused activation's clamp.
    pe, simd : int
        Output channels in parallel (``1..Cout``); products per PE per cycle (``1..Cin``,
        ``None``: ``Cin``).

    Members: ``i`` pixel stream of ``Cin`` int8; ``o`` pixel stream of ``Cout`` int8
    (``sof``/``eol`` of the input pixel).

    Latency, throughput, memory
    ---------------------------
    One pixel every ``II = ceil(Cin/simd) * ceil(Cout/pe)`` cycles. A pixel transferred in
    at cycle ``t`` while the array is idle leaves at ``t + latency`` with ``latency = II -
    1 + 1 (latch) + 1 (operand registers) + 1 (products) + ceil(log2 simd) (adder tree) +
    1 (accumulator) + 4 (scaling) + 1 (output register)``. Memory: weight ROM
    ``nf*sf x pe*simd*8`` bits, parameter ROM ``nf`` words of ``pe`` (bias', ``M``,
    ``R``, ``a_max``), the input latch (``Cin`` int8), ``(nf-1)*pe`` int8 partial outputs.
    ``pe * simd`` int8 multipliers and ``pe`` scaling multipliers.
    """
    def __init__(self, weights, bias, scale, *, in_zp, out_zp, act_min=-128, act_max=127,
                 pe=1, simd=None):
        weights = np.asarray(weights)
        if weights.ndim != 2 or weights.dtype != np.int8:
            raise ValueError(f"weights must be an int8 [Cout, Cin] array, not {weights.dtype} "
                             f"of shape {weights.shape}")
        self.out_channels, self.in_channels = weights.shape
        cout = self.out_channels
        simd = self.in_channels if simd is None else simd
        for name, value, hi in (("pe", pe, cout), ("simd", simd, self.in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
                raise ValueError(f"{name} must be an integer in 1..{hi}, not {value!r}")
        if np.shape(bias) != (cout,):
            raise ValueError(f"bias must have {cout} entries, not shape {np.shape(bias)}")
        scale = np.asarray(scale, dtype=np.float64).reshape(-1)
        if scale.shape[0] not in (1, cout):
            raise ValueError(f"scale must have 1 or {cout} entries, not {scale.shape[0]}")
        for name, value in (("in_zp", in_zp), ("out_zp", out_zp), ("act_min", act_min),
                            ("act_max", act_max)):
            if not isinstance(value, (int, np.integer)) or not -128 <= value <= 127:
                raise ValueError(f"{name} must be an integer in -128..127, not {value!r}")
        if act_min > act_max:
            raise ValueError(f"act_min ({act_min}) must not exceed act_max ({act_max})")
        self.weights = weights.astype(np.int64)
        self.bias = np.asarray(bias, dtype=np.int64)
        self.scale = np.broadcast_to(scale, (cout,))
        self.in_zp, self.out_zp = int(in_zp), int(out_zp)
        self.act_min, self.act_max = int(act_min), int(act_max)
        self.pe, self.simd = pe, simd
        self.folded_bias = fold_bias(self.weights, self.bias, self.in_zp)
        self.sf, self.nf = self.folds(self.in_channels, cout, pe, simd)
        timing = self.timing(self.in_channels, cout, pe, simd)
        self.initiation_interval = timing.initiation_interval
        self.multipliers = timing.multipliers
        self.useful_macs_per_pixel = timing.macs_per_output
        self.latency = timing.latency
        self.schedule_delay = timing.schedule_delay
        self.in_format = PixelFormat(self.in_channels, "int8")
        self.out_format = PixelFormat(cout, "int8")
        self.rescales = channel_rescales(self.weights, self.folded_bias, self.scale,
                                         out_zp=self.out_zp, act_min=self.act_min,
                                         act_max=self.act_max)
        super().__init__({"i": In(pixel_stream_signature(self.in_format)),
                          "o": Out(pixel_stream_signature(self.out_format))})

    @staticmethod
    def folds(in_channels, out_channels, pe, simd):
        """``(sf, nf)``: steps per neuron fold, and neuron folds."""
        return -(-in_channels // simd), -(-out_channels // pe)

    @staticmethod
    def timing(in_channels, out_channels, pe, simd):
        """The :class:`~rasterflow.hdl.timing.StageTiming` for these sizes and folding."""
        sf, nf = DenseUnit.folds(in_channels, out_channels, pe, simd)
        ii = sf * nf
        latency = ii - 1 + 1 + 1 + 1 + (simd - 1).bit_length() + 1 + RESCALE_LATENCY + 1
        return StageTiming(latency, initiation_interval=ii, multipliers=pe * simd,
                           macs_per_output=in_channels * out_channels)

    def elaborate(self, platform):
        m = Module()
        seq = FoldedSteps(m, self.i, self.o, synapse_folds=self.sf, neuron_folds=self.nf)
        pipe = seq.pipe
        step_weights = self._step_weights()
        weights = self._weight_rom(m, seq, step_weights)
        lanes = self._operand_registers(pipe, seq, step_weights)
        pipe.stage()
        terms = lane_products(pipe, weights, lanes, self.pe)
        pipe.stage()
        terms = adder_trees(pipe, terms, (self.simd - 1).bit_length())
        param_port = self._parameter_rom(m, pipe, seq.en)
        accumulators = seq.accumulators(terms, bounded_shape(*self._sum_bounds()))
        pipe.stage()
        results = self._rescale(pipe, accumulators, param_port)
        self._collector(m, seq, results)
        return m

    def _step_weights(self):
        """``[step, p, s]``: the weight of PE ``p``, lane ``s`` at each step (step ``k =
        n * sf + j``: output ``n*pe + p``, input ``j*simd + s``; 0 past the matrix's edge)."""
        padded = np.zeros((self.nf * self.pe, self.sf * self.simd), dtype=np.int64)
        padded[:self.out_channels, :self.in_channels] = self.weights
        folded = padded.reshape(self.nf, self.pe, self.sf, self.simd).transpose(0, 2, 1, 3)
        return folded.reshape(self.nf * self.sf, self.pe, self.simd)

    def _weight_rom(self, m, seq, step_weights):
        """Stage 1: the weight ROM, one word of ``pe x simd`` int8 per step, read at ``k``.
        The words are packed here (weight ``(p, s)`` at bits ``8 * (p*simd + s)``): Amaranth
        would take far longer to cast a nested layout's initial values."""
        steps, width = len(step_weights), self.pe * self.simd * 8
        init = [int.from_bytes(word.astype(np.int8).tobytes(), "little")
                for word in step_weights.reshape(steps, -1)]
        rom = Memory(shape=unsigned(width), depth=steps, init=init)
        m.submodules.weight_rom = rom
        port = rom.read_port()
        m.d.comb += [port.addr.eq(seq.k), port.en.eq(seq.en)]
        word = data.ArrayLayout(data.ArrayLayout(signed(8), self.simd), self.pe)
        return word(port.data)

    def _operand_registers(self, pipe, seq, step_weights):
        """Stage 1: lane ``s``'s input value ``x[j*simd + s]``, registered once for all PEs
        (a mux on the synapse fold ``j``). Lanes whose weight is zero in every step are left
        out. Returns ``{(p, s): (operand register, least weight, greatest weight)}``."""
        values = seq.latch.data
        used = step_weights.any(axis=0)
        operands = {}
        for s in map(int, np.nonzero(used.any(axis=0))[0]):
            inputs = [values[min(j * self.simd + s, self.in_channels - 1)] for j in range(self.sf)]
            value = inputs[0] if self.sf == 1 else Array(inputs)[seq.j]
            operands[s] = pipe.register(value, name=f"x_{s}", shape=signed(8))
        return {(int(p), int(s)): (operands[int(s)], int(step_weights[:, p, s].min()),
                                   int(step_weights[:, p, s].max()))
                for p, s in zip(*np.nonzero(used))}

    def _sum_bounds(self):
        """``(lo, hi)`` of a PE's sum of products over a neuron fold, over every channel."""
        w = self.weights
        low = np.minimum(w * -128, w * 127).sum(axis=1)
        high = np.maximum(w * -128, w * 127).sum(axis=1)
        return min(int(low.min()), 0), max(int(high.max()), 0)

    def _parameter_rom(self, m, pipe, en):
        """Per neuron fold, each PE's ``bias'`` and :class:`Rescale` constants, read at the
        fold the accumulator stage works on."""
        bias = self.folded_bias
        rescales = self.rescales
        fields = {
            "bias": bounded_shape(min(bias + [0]), max(bias + [0])),
            "multiplier": unsigned(max(r.multiplier for r in rescales).bit_length() or 1),
            "offset": unsigned(max(r.offset for r in rescales).bit_length() or 1),
            "a_max": unsigned(max(r.a_max for r in rescales).bit_length() or 1),
        }
        word = data.ArrayLayout(data.StructLayout(fields), self.pe)
        empty = {"bias": 0, "multiplier": 0, "offset": 0, "a_max": 0}
        init = []
        for n in range(self.nf):
            entries = []
            for p in range(self.pe):
                c = n * self.pe + p
                if c < self.out_channels:
                    r = rescales[c]
                    entries.append({"bias": bias[c], "multiplier": r.multiplier,
                                    "offset": r.offset, "a_max": r.a_max})
                else:
                    entries.append(empty)
            init.append(entries)
        rom = Memory(shape=word, depth=self.nf, init=init)
        m.submodules.param_rom = rom
        port = rom.read_port()
        m.d.comb += [port.addr.eq(pipe.carried["n"]), port.en.eq(en)]
        return port

    def _rescale(self, pipe, accumulators, port):
        """Per PE, ``acc + bias'`` (wrapped to int32 when it can leave it), its magnitude
        saturated at ``a_max``, the product ``a*M + R``, and ``clamp(out_zp +- min(q, K))``
        (:data:`RESCALE_LATENCY` stages)."""
        sum_lo, sum_hi = self._sum_bounds()
        bias = self.folded_bias
        lo, hi = sum_lo + min(bias + [0]), sum_hi + max(bias + [0])
        wraps = _wraps(lo, hi)
        totals = []
        for p, acc in enumerate(accumulators):
            value = acc + port.data[p].bias
            if wraps:
                value, lo, hi = value.as_unsigned()[:32].as_signed(), INT32_MIN, INT32_MAX
            totals.append(pipe.register(value, name=f"total_p{p}", shape=bounded_shape(lo, hi)))
        constants = [{name: pipe.register(port.data[p][name], name=f"{name}_p{p}")
                      for name in ("multiplier", "offset", "a_max")} for p in range(self.pe)]
        pipe.stage()
        a_top = max(r.a_max for r in self.rescales)
        magnitudes, negatives = [], []
        for p, total in enumerate(totals):
            a = Mux(total < 0, -total, total)
            a_max = constants[p]["a_max"]
            magnitudes.append(pipe.register(Mux(a > a_max, a_max, a), name=f"magnitude_p{p}",
                                            shape=bounded_shape(0, a_top)))
            negatives.append(pipe.register(total < 0, name=f"negative_p{p}"))
            for name in ("multiplier", "offset"):
                constants[p][name] = pipe.register(constants[p][name], name=f"{name}_p{p}_s2")
        pipe.stage()
        product_top = max(a_top * r.multiplier + r.offset for r in self.rescales)
        products = []
        for p, a in enumerate(magnitudes):
            products.append(pipe.register(a * constants[p]["multiplier"] +
                                          constants[p]["offset"], name=f"product_p{p}",
                                          shape=bounded_shape(0, product_top)))
            negatives[p] = pipe.register(negatives[p], name=f"negative_p{p}_s3")
        pipe.stage()
        limit, shift = self.rescales[0].limit, self.rescales[0].shift
        results = []
        for p, product in enumerate(products):
            q = product >> shift
            q = Mux(q > limit, limit, q)
            signed_q = Mux(negatives[p], -q, q)
            y = clamp(self.out_zp + signed_q, self.out_zp - limit, self.out_zp + limit,
                      self.act_min, self.act_max)
            results.append(pipe.register(y, name=f"y_p{p}",
                                         shape=bounded_shape(self.act_min, self.act_max)))
        pipe.stage()
        return results

    def _collector(self, m, seq, results):
        """The output registers (reset-less, unlike the output's own), loaded with every
        channel at the last neuron fold's step."""
        out = payload_register(pixel_layout(self.out_format), name="out")
        sof, eol = payload_register(1, name="out_sof"), payload_register(1, name="out_eol")
        seq.collect(results, out, sof, eol)
        m.d.comb += [self.o.payload.data.eq(out), self.o.payload.sof.eq(sof),
                     self.o.payload.eol.eq(eol)]
