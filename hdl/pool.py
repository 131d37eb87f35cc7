"""Int8 max-pooling through the shared window generator, with masked taps and decimation.

TFLite's pooling window for output ``o`` covers input rows ``o*s - p .. o*s - p + size - 1``
(``p`` = TFLite's ``pad_before``, 0 for every 2x2 case). The hardware centres an odd window
of ``K = 2*max(p, size-1-p) + 1`` taps at ``c = o*s`` and masks the taps outside
``-p .. size-1-p``; the border value is -128, which never beats an in-image tap, so padded
taps are ignored exactly as TFLite's clipped window ignores them (for 2x2 SAME stride 1 the
padding is at the bottom/right: the tap below the last row is the border).
Stride: :class:`~rasterflow.hdl.conv.Decimate` keeps the centres ``o*s``.

Pipeline: ColumnScanner -> ColumnMax (masked rows) -> RowWindow (of column maxima) ->
WindowMax (masked columns, activation clamp) -> [Decimate].
"""
import dataclasses

from amaranth.hdl import Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .conv import Decimate, conv_geometry
from .filters import _WindowedStage, windowed_timing
from .payload import pixel_layout, pixel_stream_signature
from .stall import StallPipeline
from .timing import Sampling
from .window import ColumnScanner, RowWindow, column_stream_layout, window_stream_layout

__all__ = ["ColumnMax", "WindowMax", "MaxPoolUnit", "pool_taps"]


def pool_taps(size, pad_before):
    """``(K, taps)``: the centred window size and the tap offsets a pooling window uses."""
    taps = list(range(-pad_before, size - pad_before))
    return 2 * max(abs(t) for t in taps) + 1, taps


def _max(values):
    result = values[0]
    for v in values[1:]:
        result = Mux(v > result, v, result)
    return result


class ColumnMax(wiring.Component):
    """Per-channel maximum of the column rows at offsets ``taps`` (relative to the centre).

    Latency 1 cycle; one column per cycle; no memory.
    """
    latency = 1

    def __init__(self, fmt, kernel_height, taps):
        self.fmt, self.taps, self.kernel_height = fmt, taps, kernel_height
        column = data.ArrayLayout(pixel_layout(fmt), kernel_height)
        super().__init__({"i": In(stream.Signature(column_stream_layout(column))),
                          "o": Out(stream.Signature(column_stream_layout(pixel_layout(fmt))))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        hy = self.kernel_height // 2
        col = self.i.payload.column
        out = [pipe.register(_max([col[hy + t][ch] for t in self.taps]), name=f"max{ch}")
               for ch in range(self.fmt.channels)]
        emit = pipe.register(self.i.payload.emit, name="emit")
        pipe.stage()
        m.d.comb += [self.o.payload.column[ch].eq(v) for ch, v in enumerate(out)]
        m.d.comb += self.o.payload.emit.eq(emit)
        pipe.finish()
        return m


class WindowMax(wiring.Component):
    """Per-channel maximum over the window columns at ``taps``, clamped to
    ``act_min..act_max``. Latency 1 cycle; one window per cycle; no memory."""
    latency = 1

    def __init__(self, fmt, kernel_width, taps, act_min, act_max):
        self.fmt, self.taps, self.kernel_width = fmt, taps, kernel_width
        self.act_min, self.act_max = act_min, act_max
        super().__init__({
            "i": In(stream.Signature(window_stream_layout(pixel_layout(fmt), kernel_width))),
            "o": Out(pixel_stream_signature(fmt))})

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        hx = self.kernel_width // 2
        win = self.i.payload.window
        out = []
        for ch in range(self.fmt.channels):
            v = _max([win[hx + t][ch] for t in self.taps])
            if self.act_max < 127:
                v = Mux(v > self.act_max, self.act_max, v)
            if self.act_min > -128:
                v = Mux(v < self.act_min, self.act_min, v)
            out.append(pipe.register(v, name=f"max{ch}", shape=pixel_layout(self.fmt).elem_shape))
        sof = pipe.register(self.i.payload.sof, name="sof")
        eol = pipe.register(self.i.payload.eol, name="eol")
        pipe.stage()
        m.d.comb += [self.o.payload.data[ch].eq(v) for ch, v in enumerate(out)]
        m.d.comb += [self.o.payload.sof.eq(sof), self.o.payload.eol.eq(eol)]
        pipe.finish()
        return m


class MaxPoolUnit(_WindowedStage):
    """TFLite ``MAX_POOL_2D`` int8 with a square ``size`` window, ``stride`` and padding.

    Members: ``i``/``o`` pixel streams of ``C`` int8; output frames ``out_width x out_height``.

    Latency, throughput, memory
    ---------------------------
    ``latency``: the window generator's (with its skid buffer) + column max 1 + window max 1;
    ``schedule_delay = (K//2)*W + K//2`` (set by ``_WindowedStage``); one input pixel per
    cycle (discarded positions included), so it never limits a pipeline fed at one pixel per cycle or slower.
    Memory: ``K - 1`` lines of ``W x C`` int8 — for every 2x2 pool ``K = 3``, i.e. two lines
    (one more than a 2x2 window strictly needs: the price of sharing the centred window
    generator) — plus ``K - 1`` registers of ``C`` column maxima.
    """
    def __init__(self, fmt: PixelFormat, width, height, *, size, stride, padding,
                 act_min=-128, act_max=127):
        if fmt.dtype != "int8":
            raise ValueError(f"max_pool takes int8 pixels, not {fmt.dtype}")
        out_w, out_h, (kx, taps_x), (ky, taps_y), decimate = self.geometry(
            width, height, size, stride, padding)
        scanner = ColumnScanner(fmt, width, height, ky, kx, border="constant", border_value=-128)
        column_max = ColumnMax(fmt, ky, taps_y)
        row_window = RowWindow(pixel_layout(fmt), width, height, kx, border="constant",
                               constant_column=[-128] * fmt.channels)
        window_max = WindowMax(fmt, kx, taps_x, act_min, act_max)
        parts = [scanner, column_max, row_window, window_max]
        if decimate:
            parts.append(Decimate(window_max.o.payload.shape(), width, height, stride, 0, 0,
                                  out_w, out_h))
        self.width, self.height = width, height
        self.out_width, self.out_height = out_w, out_h
        super().__init__(fmt, fmt, parts, skid_all=False)

    @staticmethod
    def geometry(width, height, size, stride, padding):
        """``(out_width, out_height, (Kx, taps_x), (Ky, taps_y), decimate)``: the output
        size, the centred window and masked taps per axis, and whether a
        :class:`~rasterflow.hdl.conv.Decimate` keeps only some positions."""
        out_w, pad_x, _ = conv_geometry(width, size, stride, padding)
        out_h, pad_y, _ = conv_geometry(height, size, stride, padding)
        return (out_w, out_h, pool_taps(size, pad_x), pool_taps(size, pad_y),
                (stride, out_w, out_h) != (1, width, height))

    @staticmethod
    def timing(width, height, *, size, stride, padding):
        """The :class:`~rasterflow.hdl.timing.StageTiming` of the stage these parameters
        build (the others do not change it)."""
        out_w, out_h, (kx, _), (ky, _), decimate = MaxPoolUnit.geometry(width, height, size,
                                                                        stride, padding)
        datapath = [ColumnMax.latency, RowWindow.LATENCY, WindowMax.latency]
        if decimate:
            datapath.append(Decimate.latency)
        timing = windowed_timing(width, ky, kx, datapath, skid_all=False)
        if not decimate:
            return timing
        return dataclasses.replace(timing, sampling=Sampling.grid(
            out_w, out_h, stride_x=stride, stride_y=stride, lead=timing.schedule_delay))
