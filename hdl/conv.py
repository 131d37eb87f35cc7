"""Int8 convolutions: a folded MAC array behind the shared window generator.

Structure of a convolution stage (:class:`Conv2DUnit`)::

    pixels -> ColumnScanner -> RowWindow -> [Decimate] -> MacArray -> pixels
              (constant border = input zero point)       (weights ROM, int32 accumulate,
                                                           per-channel requantizer)

*Padding.* TFLite skips taps outside the image, which equals padding the input with its zero
point, so the window generator's constant border is ``in_zp``. An output ``o`` of TFLite's
geometry (``pad_before = p``) reads rows ``o*s - p .. o*s - p + K - 1``: that is the centred
odd window at ``c = o*s - p + K//2`` — also for SAME with stride 2, where the padding is
asymmetric (``p`` is ``total // 2``, so the extra row is at the bottom/right and appears as
the constant border below the last row).

*Stride* is done by decimating in the stream (:class:`Decimate`): the window generator runs
over all ``W x H`` centres at one window per cycle and only the windows at output centres
reach the MAC array, so no multiplier works on a discarded position.

*MAC array* (:class:`MacArray`): ``pe`` processing elements (output channels in parallel), each
with ``simd`` int8 x int8 multipliers (input-channel x tap products in parallel) and a
pipelined adder tree feeding an accumulator. A window of ``T = K*K*Cin`` values (depthwise:
``K*K`` taps per output channel; with depth multiplier ``M``, output channel ``oc`` reads
input channel ``oc // M``) is processed in ``sf = ceil(T / simd)`` *synapse folds* for each of
``nf = ceil(Cout / pe)`` *neuron folds*: the initiation interval is exactly
``II = sf * nf`` cycles per output pixel, with one step per cycle. The zero point is folded
into the bias at elaboration (``bias' = bias - in_zp * sum(w)``, exact because padded taps
carry ``in_zp``), so the products are plain int8 x int8. Weights live in one ROM
(``amaranth.lib.memory.Memory`` with init, ``nf*sf`` words of ``pe*simd`` int8, read once per
step); ``bias'``, ``m0`` and ``shift`` in a second ROM (``nf`` words of ``pe`` entries, read
once per neuron fold). Each PE's result goes through one pipelined requantizer
(:func:`~rasterflow.hdl.requant.requantize`); a collector assembles the ``Cout`` channels of a
pixel. The current window is latched, so the window generator (and the decimator) move on
while the array works: between two kept windows, discarded windows pass at one per cycle.

*Cycle counts.* ``latency``/``schedule_delay`` keep their meaning from the filters (a window
completed at cycle ``t`` by the schedule leaves ``latency`` cycles later when the array is
idle), so ``PipelineTop.latency_cycles`` is still the sum over stages; what changes is the
rate: an unstalled stride-1 convolution that is a pipeline's only bottleneck makes ``F``
frames take ``F * Wo * Ho * II + L`` cycles instead of ``F * W * H + L`` (asserted in
tests/test_hdl_cnn.py, for a single convolution and for conv -> LeakyReLU -> 2x2/2 pool with
``L`` = every stage's latency + the schedules up to the convolution). Stride-2 convolutions
add the discarded windows that do not overlap array work, so no closed formula is claimed;
:func:`mac_layer_report` gives the exact busy cycles (``F * Wo * Ho * II``) and utilization.

``pe`` may be any value in ``1..Cout`` and ``simd`` any value in ``1..T``; values that do not
divide ``Cout``/``T`` leave zero-weight slots in the last fold (they count as idle multipliers
in the utilization). Lanes whose weight is zero in every step are not built.
"""
import dataclasses

import numpy as np
from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .arith import bounded_shape
from .filters import _WindowedStage, windowed_timing
from .folded import FoldedSteps, adder_trees, lane_products
from .payload import pixel_layout, pixel_stream_signature
from .timing import Sampling, StageTiming
from .requant import REQUANT_LATENCY, requantize_lanes
from .window import ColumnScanner, RowWindow, window_stream_layout

__all__ = ["Decimate", "MacArray", "Conv2DUnit", "conv_geometry", "mac_layer_report",
           "mac_sim_report"]



def conv_geometry(size, kernel, stride, padding):
    """TFLite's ``(out_size, pad_before)`` along one axis, and the centre offset.

    Returns ``(out, pad_before, offset)`` where output ``o`` is the window centred at input
    index ``offset + o * stride``.
    """
    if padding == "same":
        out = -(-size // stride)
    elif padding == "valid":
        out = (size - kernel) // stride + 1
    else:
        raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
    if out < 1:
        raise ValueError(f"a {kernel}-tap window with stride {stride} and {padding} padding does "
                         f"not fit {size} pixels")
    needed = max((out - 1) * stride + kernel - size, 0)
    pad_before = needed // 2
    return out, pad_before, kernel // 2 - pad_before


class Decimate(wiring.Component):
    """Keep only the stream elements at output positions; rewrite ``sof``/``eol``.

    Element ``(y, x)`` of each ``W x H`` input frame is kept when ``x = off_x + s*ox`` and
    ``y = off_y + s*oy`` for ``ox < out_w`` and ``oy < out_h``. ``layout`` is any struct
    layout with ``sof`` and ``eol`` fields.

    Combinational (latency 0): ``o.valid = i.valid & keep``; a discarded element is taken
    in one cycle whatever ``o.ready`` is. Memory: four counters.
    """
    latency = 0

    def __init__(self, layout, width, height, stride, offset_x, offset_y, out_width, out_height):
        self.width, self.height, self.stride = width, height, stride
        self.offset_x, self.offset_y = offset_x, offset_y
        self.out_width, self.out_height = out_width, out_height
        if not (0 <= offset_x and offset_x + (out_width - 1) * stride < width and
                0 <= offset_y and offset_y + (out_height - 1) * stride < height):
            raise ValueError("decimation grid does not fit the frame")
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        s = self.stride
        x = Signal(range(self.width))
        y = Signal(range(self.height))
        px = Signal(range(s), init=(-self.offset_x) % s)
        py = Signal(range(s), init=(-self.offset_y) % s)
        last_x = self.offset_x + (self.out_width - 1) * s
        last_y = self.offset_y + (self.out_height - 1) * s
        keep = Signal()
        m.d.comb += keep.eq((px == 0) & (py == 0) & (x >= self.offset_x) & (x <= last_x) &
                            (y >= self.offset_y) & (y <= last_y))
        m.d.comb += [
            self.o.payload.eq(self.i.payload),
            self.o.payload.sof.eq((x == self.offset_x) & (y == self.offset_y)),
            self.o.payload.eol.eq(x == last_x),
            self.o.valid.eq(self.i.valid & keep),
            self.i.ready.eq(self.o.ready | ~keep),
        ]

        def wrap(counter, size):
            return Mux(counter == size - 1, 0, counter + 1)

        with m.If(self.i.valid & self.i.ready):
            with m.If(x == self.width - 1):
                m.d.sync += [x.eq(0), px.eq((-self.offset_x) % s)]
                m.d.sync += [y.eq(wrap(y, self.height))]
                with m.If(y == self.height - 1):
                    m.d.sync += py.eq((-self.offset_y) % s)
                with m.Else():
                    m.d.sync += py.eq(wrap(py, s))
            with m.Else():
                m.d.sync += [x.eq(x + 1), px.eq(wrap(px, s))]
        return m


def _check_depth_multiplier(depth_multiplier, channels):
    """Raise ValueError unless ``depth_multiplier`` is a positive integer dividing the
    ``channels`` (``Cin * M``) of depthwise weights."""
    if not isinstance(depth_multiplier, int) or isinstance(depth_multiplier, bool) or \
            depth_multiplier < 1:
        raise ValueError(f"depth_multiplier must be a positive integer, not "
                         f"{depth_multiplier!r}")
    if channels % depth_multiplier:
        raise ValueError(f"depth_multiplier {depth_multiplier} does not divide the {channels} "
                         f"weight channels")


class MacArray(wiring.Component):
    """Folded int8 MAC array with per-channel requantization (see the module docstring).

    Parameters
    ----------
    weights : ndarray
        int8 ``[Cout, K, K, Cin]`` (conv, TFLite OHWI) or ``[K, K, Cin * M]`` (``depthwise``).
    bias, m0, shift : ndarray
        Per output channel: int32 bias, TFLite multiplier and exponent.
    in_zp, out_zp, act_min, act_max : int
        Input/output zero points and the fused activation's clamp.
    pe, simd : int
        Output channels in parallel (``1..Cout``); products per PE per cycle (``1..T``).
    depthwise : bool
        A depthwise convolution: output channel ``oc`` reads input channel ``oc // M``.
    depth_multiplier : int
        ``M``, output channels per input channel (depthwise only; it divides the weights'
        last axis): ``Cin = weights.shape[2] // M``, ``Cout = weights.shape[2]``.

    Members: ``i`` window stream (``window[dx][dy][ch]``, ``K x K`` of ``Cin`` int8);
    ``o`` pixel stream of ``Cout`` int8.

    Latency, throughput, memory
    ---------------------------
    One window every ``II = ceil(T/simd) * ceil(Cout/pe)`` cycles. A window transferred in
    at cycle ``t`` while the array is idle leaves at cycle ``t + II - 1 + latency`` with
    ``latency = 1 (latch) + 1 (operand registers) + 1 (products) + ceil(log2 simd)
    (adder tree) + 1 (accumulator) + 5 (requantizer) + 1 (output register)``; for ``II = 1``
    this is the usual "in at t, out at t + latency". Memory: weight ROM
    ``nf*sf x pe*simd*8`` bits, parameter ROM ``nf x pe*(bias+31+6)`` bits, the window latch
    (``K*K*Cin*8`` bits) and ``(nf-1)*pe`` int8 partial-output registers.
    """
    def __init__(self, weights, bias, m0, shift, *, in_zp, out_zp, act_min=-128, act_max=127,
                 pe=1, simd=None, depthwise=False, depth_multiplier=1):
        weights = np.asarray(weights, dtype=np.int64)
        self.depthwise, self.depth_multiplier = depthwise, depth_multiplier
        if depthwise:
            if weights.ndim != 3 or weights.shape[0] != weights.shape[1]:
                raise ValueError(f"depthwise weights must be [K, K, C * M], not {weights.shape}")
            self.kernel, _, self.out_channels = weights.shape
            _check_depth_multiplier(depth_multiplier, self.out_channels)
            self.in_channels = self.out_channels // depth_multiplier
            self.terms = self.kernel ** 2
        else:
            if depth_multiplier != 1:
                raise ValueError(f"depth_multiplier {depth_multiplier!r} needs depthwise=True")
            if weights.ndim != 4 or weights.shape[1] != weights.shape[2]:
                raise ValueError(f"weights must be [Cout, K, K, Cin], not {weights.shape}")
            self.out_channels, self.kernel, _, self.in_channels = weights.shape
            self.terms = self.kernel ** 2 * self.in_channels
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel size must be odd, not {self.kernel}")
        simd = self.terms if simd is None else simd
        for name, value, hi in (("pe", pe, self.out_channels), ("simd", simd, self.terms)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
                raise ValueError(f"{name} must be an integer in 1..{hi}, not {value!r}")
        cout = self.out_channels
        for name, arr in (("bias", bias), ("m0", m0), ("shift", shift)):
            if np.shape(arr) != (cout,):
                raise ValueError(f"{name} must have {cout} entries, not shape {np.shape(arr)}")
        self.weights = weights
        self.bias = np.asarray(bias, dtype=np.int64)
        self.m0 = np.asarray(m0, dtype=np.int64)
        self.shift = np.asarray(shift, dtype=np.int64)
        if self.m0.min() < 0 or self.m0.max() >= 1 << 31 or np.abs(self.shift).max() > 31:
            raise ValueError("m0 must be in 0..2**31-1 and shift in -31..31")
        self.in_zp, self.out_zp = int(in_zp), int(out_zp)
        self.act_min, self.act_max = int(act_min), int(act_max)
        self.pe, self.simd = pe, simd
        self.sf, self.nf = self.folds(self.terms, cout, pe, simd)
        timing = self.timing(self.terms, cout, pe, simd)
        self.initiation_interval = timing.initiation_interval
        self.multipliers = timing.multipliers
        self.useful_macs_per_pixel = timing.macs_per_output   # depthwise: K*K per channel
        self.tree_levels = self.tree_levels_of(simd)
        self.latency = timing.latency
        self.in_format = PixelFormat(self.in_channels, "int8")
        self.out_format = PixelFormat(cout, "int8")
        column = data.ArrayLayout(pixel_layout(self.in_format), self.kernel)
        super().__init__({
            "i": In(stream.Signature(window_stream_layout(column, self.kernel))),
            "o": Out(pixel_stream_signature(self.out_format)),
        })

    @staticmethod
    def folds(terms, out_channels, pe, simd):
        """``(sf, nf)``: steps per output fold, and output folds."""
        return -(-terms // simd), -(-out_channels // pe)

    @staticmethod
    def tree_levels_of(simd):
        """Adder-tree levels summing ``simd`` products."""
        return (simd - 1).bit_length()

    @staticmethod
    def timing(terms, out_channels, pe, simd):
        """The array's :class:`~rasterflow.hdl.timing.StageTiming` for ``terms`` products
        per output channel (``schedule_delay`` 0: the window stage adds it)."""
        sf, nf = MacArray.folds(terms, out_channels, pe, simd)
        latency = 1 + 1 + 1 + MacArray.tree_levels_of(simd) + 1 + REQUANT_LATENCY + 1
        return StageTiming(latency, initiation_interval=sf * nf, multipliers=pe * simd,
                           macs_per_output=terms * out_channels)

    # -- the schedule, at elaboration time ---------------------------------------------------
    def _slot(self, n, j, p, s):
        """``(weight, x_index)`` of PE ``p``, lane ``s`` at neuron fold ``n``, synapse fold ``j``.

        ``x_index`` is the flat window index ``(dy*K + dx)*Cin + ci``; ``None`` for padding.
        A depthwise output channel ``c`` reads input channel ``c // M``.
        """
        c, t = n * self.pe + p, j * self.simd + s
        if c >= self.out_channels or t >= self.terms:
            return 0, None
        if self.depthwise:
            dy, dx = divmod(t, self.kernel)
            return int(self.weights[dy, dx, c]), t * self.in_channels + c // self.depth_multiplier
        return int(self.weights[c].reshape(-1)[t]), t

    def folded_bias(self):
        """``bias - in_zp * sum(w)`` per output channel (exact integers)."""
        if self.depthwise:
            sums = self.weights.sum(axis=(0, 1))
        else:
            sums = self.weights.reshape(self.out_channels, -1).sum(axis=1)
        return [int(b) - self.in_zp * int(w) for b, w in zip(self.bias, sums)]

    def elaborate(self, platform):
        m = Module()
        # Built stage by stage, in pipeline order (which is also the netlist's order: keep it,
        # the committed Fmax figures were measured on it, as they were with a reset on the
        # latch and the partial outputs: hence register=Signal).
        seq = FoldedSteps(m, self.i, self.o, synapse_folds=self.sf, neuron_folds=self.nf,
                          register=Signal, latch_name="win")
        pipe = seq.pipe
        weight_port = self._weight_rom(m, seq)
        lanes = self._operand_registers(pipe, seq)
        pipe.stage()
        terms = lane_products(pipe, weight_port.data, lanes, self.pe)
        pipe.stage()
        terms = adder_trees(pipe, terms, self.tree_levels)
        acc_bounds = self._accumulator_bounds()
        param_port, bias_bounds = self._parameter_rom(m, pipe, seq.en)
        accs = seq.accumulators(terms, bounded_shape(*acc_bounds))
        pipe.stage()
        results = self._requantizers(pipe, accs, param_port, acc_bounds, bias_bounds)
        seq.collect(results, self.o.payload.data, self.o.payload.sof, self.o.payload.eol)
        return m

    def _weight_rom(self, m, seq):
        """Stage 1: the weight ROM, one word of ``pe x simd`` int8 per step, read at ``k``."""
        pe, simd, sf = self.pe, self.simd, self.sf
        steps = sf * self.nf
        weight_word = data.ArrayLayout(data.ArrayLayout(signed(8), simd), pe)
        rom_init = []
        for kk in range(steps):
            nn, jj = divmod(kk, sf)
            rom_init.append([[self._slot(nn, jj, p, s)[0] for s in range(simd)]
                             for p in range(pe)])
        wrom = Memory(shape=weight_word, depth=steps, init=rom_init)
        m.submodules.weight_rom = wrom
        wport = wrom.read_port()
        m.d.comb += [wport.addr.eq(seq.k), wport.en.eq(seq.en)]
        return wport

    def _operand_registers(self, pipe, seq):
        """Stage 1: each multiplier's window operand, registered. Lanes whose weight is zero
        in every step are left out; lanes that read the same window elements over the steps
        share a register; the operand is a constant element, or a mux on ``j`` when it only
        depends on the synapse fold, else a mux on ``k``.

        Returns ``{(p, s): (operand register, least weight, greatest weight)}``."""
        steps, sf = self.sf * self.nf, self.sf
        j, k = seq.j, seq.k
        element = self._window_element(seq.latch)
        operand_regs = {}
        lanes = {}
        for p in range(self.pe):
            for s in range(self.simd):
                slots = [self._slot(*divmod(kk, sf), p, s) for kk in range(steps)]
                ws = [w for w, _ in slots]
                if not any(ws):
                    continue
                fill = next(x for _, x in slots if x is not None)
                idx = [fill if x is None else x for _, x in slots]
                key = tuple(idx)
                if key not in operand_regs:
                    if len(set(idx)) == 1:
                        value = element(idx[0])
                    elif all(idx[kk] == idx[kk % sf] for kk in range(steps)):
                        value = Array([element(x) for x in idx[:sf]])[j]
                    else:
                        value = Array([element(x) for x in idx])[k]
                    operand_regs[key] = pipe.register(value, name=f"x_{len(operand_regs)}",
                                                      shape=signed(8))
                lanes[p, s] = (operand_regs[key], min(ws), max(ws))
        return lanes

    def _window_element(self, win):
        """``element(index)``: the latched window's value at flat index
        ``(dy*K + dx)*Cin + ci``."""
        K, cin = self.kernel, self.in_channels

        def element(index):
            tap, ci = divmod(index, cin)
            dy, dx = divmod(tap, K)
            return win.window[dx][dy][ci]
        return element

    def _accumulator_bounds(self):
        """``(lo, hi)`` of a whole window's sum of products, over every output channel."""
        acc_lo = acc_hi = 0
        for c in range(self.out_channels):
            ws = self.weights[..., c].reshape(-1) if self.depthwise else self.weights[c].reshape(-1)
            acc_lo = min(acc_lo, sum(min(w * -128, w * 127) for w in ws))
            acc_hi = max(acc_hi, sum(max(w * -128, w * 127) for w in ws))
        return acc_lo, acc_hi

    def _parameter_rom(self, m, pipe, en):
        """The parameter ROM: per neuron fold, each PE's folded bias, ``m0`` and ``shift``,
        read at the fold the accumulator stage works on. Returns the read port and the
        bias bounds."""
        pe, nf = self.pe, self.nf
        bias = self.folded_bias()
        b_lo, b_hi = min(bias + [0]), max(bias + [0])
        param_word = data.ArrayLayout(data.StructLayout({
            "bias": bounded_shape(b_lo, b_hi), "m0": range(1 << 31), "shift": range(-31, 32),
        }), pe)
        param_init = []
        for nn in range(nf):
            word = []
            for p in range(pe):
                c = nn * pe + p
                if c < self.out_channels:
                    word.append({"bias": bias[c], "m0": int(self.m0[c]), "shift": int(self.shift[c])})
                else:
                    word.append({"bias": 0, "m0": 0, "shift": 0})
            param_init.append(word)
        prom = Memory(shape=param_word, depth=nf, init=param_init)
        m.submodules.param_rom = prom
        pport = prom.read_port()
        m.d.comb += [pport.addr.eq(pipe.carried["n"]), pport.en.eq(en)]
        return pport, (b_lo, b_hi)

    def _requantizers(self, pipe, accs, pport, acc_bounds, bias_bounds):
        """Per PE, ``accumulator + bias`` through one pipelined requantizer (with the output
        zero point and the activation's clamp). Returns the int8 results."""
        (acc_lo, acc_hi), (b_lo, b_hi) = acc_bounds, bias_bounds
        lanes = [(accs[p] + pport.data[p].bias, (acc_lo + b_lo, acc_hi + b_hi),
                  pport.data[p].m0, pport.data[p].shift) for p in range(self.pe)]
        return [y for y, _, _ in requantize_lanes(
            pipe, lanes, name="rq", zero_point=self.out_zp,
            clamp_range=(self.act_min, self.act_max))]


class Conv2DUnit(_WindowedStage):
    """A whole int8 convolution stage: window generator, decimator, MAC array.

    Parameters are those of :class:`MacArray` (``depthwise`` with any ``depth_multiplier``)
    plus the input frame size ``width x height``, ``stride`` and ``padding``
    (``"same"``/``"valid"``, TFLite's geometry).

    Members: ``i`` pixel stream of ``Cin`` int8; ``o`` pixel stream of ``Cout`` int8, frames
    of ``out_width x out_height``.

    Latency, throughput, memory
    ---------------------------
    ``schedule_delay = (K//2)*W + K//2`` (the window schedule) and ``latency`` = the window
    generator's latency (with its skid buffer) + :attr:`MacArray.latency`. With stride 1,
    unstalled and as a pipeline's only bottleneck, ``F`` frames take exactly
    ``F * Wo * Ho * II + L`` cycles (first input to last output, inclusive), ``L`` being
    ``PipelineTop.latency_cycles`` (asserted in the tests); for ``II = 1`` that is the
    filters' ``F*W*H + L``. Throughput: one output pixel per
    ``II = ceil(T/simd)*ceil(Cout/pe)`` cycles when the array is the bottleneck
    (``T = K*K*Cin``, depthwise ``K*K``); discarded (stride) windows cost one cycle each and
    overlap the array's work on the previous kept window.
    Memory: ``K - 1`` lines of ``W x Cin`` int8 (block RAM), ``K*(K-1)`` window pixels, the
    MAC array's ROMs and window latch.
    """
    def __init__(self, width, height, weights, bias, m0, shift, *, in_zp, out_zp, stride=1,
                 padding="same", act_min=-128, act_max=127, pe=1, simd=None, depthwise=False,
                 depth_multiplier=1):
        mac = MacArray(weights, bias, m0, shift, in_zp=in_zp, out_zp=out_zp, act_min=act_min,
                       act_max=act_max, pe=pe, simd=simd, depthwise=depthwise,
                       depth_multiplier=depth_multiplier)
        K = mac.kernel
        out_w, out_h, off_x, off_y, decimate = self.geometry(width, height, K, stride, padding)
        fmt = mac.in_format
        scanner = ColumnScanner(fmt, width, height, K, K, border="constant", border_value=in_zp)
        column = data.ArrayLayout(pixel_layout(fmt), K)
        row_window = RowWindow(column, width, height, K, border="constant",
                               constant_column=[[in_zp] * fmt.channels] * K)
        parts = [scanner, row_window]
        if decimate:
            parts.append(Decimate(row_window.o.payload.shape(), width, height, stride, off_x,
                                  off_y, out_w, out_h))
        parts.append(mac)
        self.mac = mac
        self.width, self.height = width, height
        self.out_width, self.out_height = out_w, out_h
        self.stride, self.padding = stride, padding
        self.initiation_interval = mac.initiation_interval
        self.multipliers = mac.multipliers
        self.kind = "depthwise_conv2d" if depthwise else "conv2d"
        super().__init__(fmt, mac.out_format, parts, skid_all=False)

    @staticmethod
    def geometry(width, height, kernel, stride, padding):
        """``(out_width, out_height, offset_x, offset_y, decimate)``: TFLite's output size,
        the first kept window centre per axis, and whether a :class:`Decimate` keeps only
        some windows."""
        out_w, _, off_x = conv_geometry(width, kernel, stride, padding)
        out_h, _, off_y = conv_geometry(height, kernel, stride, padding)
        decimate = (stride, off_x, off_y, out_w, out_h) != (1, 0, 0, width, height)
        return out_w, out_h, off_x, off_y, decimate

    @staticmethod
    def timing(width, height, *, kernel, terms, out_channels, stride, padding, pe, simd):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (``terms``: products per output channel, ``K*K*Cin`` or depthwise ``K*K``)."""
        mac = MacArray.timing(terms, out_channels, pe, simd)
        out_w, out_h, off_x, off_y, decimate = Conv2DUnit.geometry(width, height, kernel,
                                                                   stride, padding)
        datapath = [RowWindow.LATENCY, *([Decimate.latency] if decimate else []), mac.latency]
        window = windowed_timing(width, kernel, kernel, datapath, skid_all=False)
        sampling = Sampling.grid(out_w, out_h, stride_x=stride, stride_y=stride,
                                 offset_x=off_x, offset_y=off_y,
                                 lead=window.schedule_delay) if decimate else None
        return dataclasses.replace(mac, latency=window.latency,
                                   schedule_delay=window.schedule_delay, sampling=sampling)


def mac_layer_report(op, pe, simd, timing, out_pixels, cycles):
    """One MAC layer's figures from its :class:`~rasterflow.hdl.timing.StageTiming`, the
    output pixels it produced and the measured total ``cycles``.

    ``mac_cycles``: cycles the array issues steps (``out_pixels * II``, exact);
    ``utilization``: useful MACs / (multipliers x measured cycles).
    """
    useful = out_pixels * timing.macs_per_output
    busy = out_pixels * timing.initiation_interval
    return {
        "op": op, "pe": pe, "simd": simd,
        "multipliers": timing.multipliers, "initiation_interval": timing.initiation_interval,
        "out_pixels": out_pixels, "mac_cycles": busy, "useful_macs": useful,
        "busy_fraction": round(busy / cycles, 4) if cycles else 0.0,
        "utilization": round(useful / (timing.multipliers * cycles), 4) if cycles else 0.0,
    }


def mac_sim_report(layers, cycles):
    """``layers`` (name -> :func:`mac_layer_report`) and the pipeline's MAC utilization
    (useful MACs of all layers / (all multipliers x cycles)); ``{}`` without layers."""
    if not layers:
        return {}
    useful = sum(report["useful_macs"] for report in layers.values())
    multipliers = sum(report["multipliers"] for report in layers.values())
    out = {"layers": dict(layers)}
    if multipliers and cycles:
        out.update(mac_utilization=round(useful / (multipliers * cycles), 4),
                   multipliers=multipliers, useful_macs=useful)
    return out
