"""A validated pipeline: stages bound to their inputs, golden model, hardware top."""
import dataclasses
import gc
import warnings

import numpy as np
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from .errors import InputError, SpecError
from .stages import STAGES
from .hdl.guard import Fault, FrameGuard
from .hdl.payload import pixel_stream_layout, pixel_stream_signature
from .hdl.pipeline import SKID_LATENCY, SkidBuffer

__all__ = ["Pipeline", "PipelineTop"]


class PipelineTop(wiring.Component):
    """The stages' hardware chained stream to stream, behind a frame guard, with skid buffers
    around each stage.

    Members: ``i`` (pixel stream of the pipeline input), ``o`` (pixel stream of its output),
    and the :class:`~rasterflow.hdl.guard.FrameGuard`'s status: ``error`` (sticky),
    ``errors`` (malformed input frames seen, saturating) and ``last_fault``. The guard
    repairs malformed input frames (short or long lines, frames cut short, a missing
    ``sof``), so the stages only ever see whole frames and the frame after a fault is exact.
    Latency: the sum of the stages' latencies (each stage delays the stream by its window
    schedule plus its register stages) and one cycle per skid buffer; throughput one pixel
    per cycle. The skid buffers make every ``ready`` at a stage boundary (and at the
    pipeline's input) a register, so no combinational path crosses a stage boundary.
    """
    def __init__(self, bound_stages):
        self._bound = bound_stages
        first = bound_stages[0]
        lanes = first.lanes
        self.guard = FrameGuard(first.in_format, first.width, first.height, lanes=lanes)
        self.parts = [b.hardware() for b in bound_stages]
        self._chain = [self.guard, SkidBuffer(pixel_stream_layout(first.in_format, lanes))]
        for part, bound in zip(self.parts, bound_stages):
            self._chain += [part, SkidBuffer(pixel_stream_layout(bound.out_format, lanes))]
        self.latency_cycles = self.guard.latency + SKID_LATENCY + sum(
            p.latency + getattr(p, "schedule_delay", 0) + SKID_LATENCY for p in self.parts)
        super().__init__({
            "i": In(pixel_stream_signature(first.in_format, lanes)),
            "o": Out(pixel_stream_signature(bound_stages[-1].out_format, lanes)),
            "error": Out(1),
            "errors": Out(self.guard.errors.shape()),
            "last_fault": Out(Fault),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.guard = self.guard
        m.submodules.input_skid = self._chain[1]
        for index, part in enumerate(self._chain[2:]):
            m.submodules[f"stage{index // 2}" if index % 2 == 0 else f"skid{index // 2}"] = part
        m.d.comb += [self.error.eq(self.guard.error), self.errors.eq(self.guard.errors),
                     self.last_fault.eq(self.guard.last_fault)]
        for a, b in zip(self._chain, self._chain[1:]):
            connect(m, a.o, b.i)
        connect(m, wiring.flipped(self.i), self._chain[0].i)
        connect(m, self._chain[-1].o, wiring.flipped(self.o))
        return m


class Pipeline:
    """An input spec and its stages, each checked against what the previous one produces."""
    def __init__(self, input_spec, stages, *, name="rasterflow_top"):
        self.input = input_spec
        self.stages = list(stages)
        self.name = name
        fmt, width, height = input_spec.format, input_spec.width, input_spec.height
        self.lanes = input_spec.pixels_per_clock
        self.bound = []
        for index, stage in enumerate(self.stages):
            if self.lanes > 1 and not stage.supports_lanes:
                with_lanes = sorted(op for op, cls in STAGES.items() if cls.supports_lanes)
                raise SpecError("input.pixels_per_clock",
                                f"must be 1 for stage[{index}] ({stage.op}), which takes one "
                                f"pixel per clock; ops with more: {', '.join(with_lanes)}")
            try:
                bound = dataclasses.replace(stage.bind(fmt, width, height), lanes=self.lanes)
            except SpecError as error:
                if error.field.startswith("input."):
                    raise error if index == 0 else SpecError(
                        f"stage[{index}]", f"its input ({width}x{height} from stage "
                        f"[{index - 1}]) {error.message}") from None
                raise error.within(f"stage[{index}]") from None
            self.bound.append(bound)
            fmt, width, height = bound.out_format, bound.out_width, bound.out_height

    @property
    def input_format(self):
        return self.input.format

    @property
    def width(self):
        return self.input.width

    @property
    def height(self):
        return self.input.height

    @property
    def output_format(self):
        return self.bound[-1].out_format

    @property
    def out_width(self):
        return self.bound[-1].out_width

    @property
    def out_height(self):
        return self.bound[-1].out_height

    def check_frame(self, frame, what="image"):
        """Raise :class:`InputError` unless ``frame`` is an ``H x W x C`` array of the input."""
        fmt = self.input_format
        expected = (self.height, self.width, fmt.channels)
        if frame.ndim == 2 and fmt.channels == 1:
            frame = frame[:, :, None]
        if frame.shape != expected:
            raise InputError(f"{what} is {'x'.join(map(str, frame.shape))} (H x W x C), but "
                             f"the spec's input is {'x'.join(map(str, expected))}")
        if frame.dtype != fmt.np_dtype:
            raise InputError(f"{what} has dtype {frame.dtype}, but the spec's input.dtype is "
                             f"{fmt.dtype}")
        return frame

    def golden(self, frame):
        frame = self.check_frame(np.asarray(frame))
        for bound in self.bound:
            frame = bound.golden(frame)
            if frame.ndim == 2:
                frame = frame[:, :, None]
        return frame

    def hardware(self):
        return PipelineTop(self.bound)

    @property
    def latency_cycles(self):
        """``L`` of the hardware: ``F`` frames take ``F*W*H + L`` cycles when nothing stalls."""
        # The hardware is built only to read its latency; it is never elaborated, which is
        # intended, so Amaranth's unused-elaboratable reminder is silenced for it alone.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnusedElaboratable)
            top = self.hardware()
            latency = top.latency_cycles
            del top
            gc.collect()
        return latency

    @property
    def latency_lines(self):
        """Input lines the hardware may hold before its first output (host flow control)."""
        return -(-self.latency_cycles // self.width) + 1

    def to_dict(self):
        return {
            "name": self.name,
            "input": {"width": self.width, "height": self.height,
                      "channels": self.input_format.channels, "dtype": self.input_format.dtype,
                      "pixels_per_clock": self.lanes},
            "stage": [stage.to_table() for stage in self.stages],
        }
