"""Simulate a whole pipeline on real frames and compare every output with the golden model."""
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.back import verilog as verilog_backend
from tqdm import tqdm

from ..boards.families import FAMILIES
from ..hdl.payload import (outputs_in_sequence, pack_joined, pack_pixels, pack_sequenced,
                           sequenced_words, transfers_per_line, unpack_joined, unpack_pixels,
                           unpack_sequenced)
from .amaranth_sim import run_stream

__all__ = ["SIMULATORS", "FAMILY_MODELS", "FamilyTarget", "SimResult", "simulate",
           "pipeline_verilog"]

#: What the hardware can be elaborated for, with the Verilog simulation models (in
#: ``sim/models``) of the primitives it then instantiates: ``"generic"`` (no device
#: primitives) and each registered family whose netlists have primitives of their own. A
#: family without any (iCE40) elaborates exactly as ``"generic"``, so it is not offered.
FAMILY_MODELS = {"generic": (), **{name: family.simulation_models
                                   for name, family in FAMILIES.items()
                                   if family.simulation_models}}
MODELS_DIR = Path(__file__).resolve().parent / "models"

SIMULATORS = ("amaranth", "verilator")


@dataclass
class SimResult:
    simulator: str
    frames: int
    width: int
    height: int
    outputs: list                 # per frame, as the hardware produced it: an H x W x C array,
                                  # or {name: array} for a pipeline with several outputs
    expected: list                # the golden output of each frame, likewise
    mismatches: int               # differing channel values over all frames
    frame_mismatches: list        # per frame
    marker_errors: int            # output pixels whose sof/eol disagree with the geometry
    cycles: int
    latency_cycles: int           # the design's L: F frames take F*W*H + L cycles unstalled
                                  # (outputs in sequence: the first output's latency)
    first_output_cycle: int
    wall_seconds: float
    sim_cycles_per_second: float
    stall: float
    extra: dict = field(default_factory=dict)

    @property
    def bit_exact(self):
        return (self.mismatches == 0 and self.marker_errors == 0 and
                not self.extra.get("error") and len(self.outputs) == self.frames)

    def report(self):
        out_pixels = self.frames * self.width * self.height
        return {
            "bit_exact": self.bit_exact,
            "mismatches": self.mismatches,
            "frame_mismatches": self.frame_mismatches,
            "marker_errors": self.marker_errors,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "cycles": self.cycles,
            "latency_cycles": self.latency_cycles,
            "first_output_cycle": self.first_output_cycle,
            "pixels_per_cycle": out_pixels / self.cycles if self.cycles else 0.0,
            "simulator": self.simulator,
            "stall": self.stall,
            "wall_seconds": round(self.wall_seconds, 3),
            "sim_cycles_per_second": round(self.sim_cycles_per_second, 1),
            **self.extra,
        }


class FamilyTarget:
    """Stands in for a build platform while elaborating for ``family`` (a key of
    :data:`FAMILY_MODELS`): it carries what hardware reads from a platform, the family's
    ``line_memory_primitive`` (see :class:`rasterflow.hdl.bram.LineMemoryTarget`)."""
    def __init__(self, family):
        if family not in FAMILY_MODELS:
            raise ValueError(f"family must be one of {', '.join(FAMILY_MODELS)}, "
                             f"not {family!r}")
        self.family = family
        self.line_memory_primitive = (FAMILIES[family].line_memory_primitive
                                      if family in FAMILIES else "generic")


def pipeline_verilog(pipeline, top=None, *, family="generic", with_models=False):
    """Verilog text of ``pipeline``'s hardware (``top`` from :meth:`Pipeline.hardware`).

    ``family`` (a key of :data:`FAMILY_MODELS`) elaborates with that family's primitives
    (``"ecp5"``: ``DP16KD`` line memories); ``with_models`` appends the primitives'
    simulation models, for Verilator.
    """
    top = top if top is not None else pipeline.hardware()
    platform = None if family == "generic" else FamilyTarget(family)
    text = verilog_backend.convert(top, name=pipeline.name, emit_src=False, platform=platform)
    if with_models:
        text += "".join((MODELS_DIR / model).read_text() for model in FAMILY_MODELS[family])
    return text


def simulate(pipeline, batch, *, frames=1, simulator="amaranth", stall=0.0, seed=0, vcd=None,
             progress=True, cache_dir=None, family="generic"):
    """Run ``batch`` (one ``H x W x C`` frame or an ``N x H x W x C`` batch), repeated
    ``frames`` times, back to back through the hardware and compare every output frame.

    ``family`` (Verilator only) elaborates the hardware with a device family's primitives and
    simulates them with their models."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if family != "generic" and simulator != "verilator":
        raise ValueError(f"family {family!r} needs simulator 'verilator' (its primitives have "
                         f"Verilog models only), not {simulator!r}")
    batch = np.asarray(batch)
    batch = list(batch) if batch.ndim == 4 else [batch]
    batch = [pipeline.check_frame(f, f"frame {k}") for k, f in enumerate(batch)] * frames
    frames = len(batch)
    codec = _OutputCodec(pipeline)
    expected = [codec.outputs(pipeline.golden_outputs(f)) for f in batch]
    lanes = pipeline.lanes
    in_words = [w for f in batch for w in pack_pixels(pipeline.input_format, f, lanes)]
    per_frame = codec.words_per_frame
    n_out = per_frame * frames
    top = pipeline.hardware()
    timeout_cycles = _timeout_cycles(pipeline, len(in_words), n_out, frames)

    start = time.perf_counter()
    extra = {"pixels_per_clock": lanes}
    if simulator == "amaranth":
        with tqdm(total=n_out, unit="px", desc="amaranth sim", disable=not progress,
                  leave=False, mininterval=0.5) as bar:
            def report_progress(count, _step=max(n_out // 200, 1)):
                if count % _step == 0 or count == n_out:
                    bar.n = count
                    bar.refresh()
            run = run_stream(top, in_words, n_out, stall=stall, seed=seed, vcd=vcd,
                             timeout_cycles=timeout_cycles,
                             progress=report_progress if progress else None)
    else:
        from .verilator import VerilogRunError, run_verilog
        expected_words = [w for e in expected for w in codec.pack(e)]
        try:
            text = pipeline_verilog(pipeline, top, family=family, with_models=True)
            run = run_verilog(text, pipeline.name, in_words, n_out,
                              expected_words=expected_words, stall=stall, seed=seed, vcd=vcd,
                              progress=progress, cache_dir=cache_dir,
                              timeout_cycles=timeout_cycles)
        except VerilogRunError as error:
            # A timeout or a broken stream rule: report what arrived, as a failed run.
            run = error.run
            extra["error"] = str(error)
        extra["protocol_violations"] = run.protocol_violations
        extra["timed_out"] = run.timed_out
        extra["verilator_build_seconds"] = round(run.build_seconds, 2)
    wall = time.perf_counter() - start

    outputs, frame_mismatches, marker_errors = [], [], 0
    received = list(run.out_words)
    for index in range(frames):
        words = received[index * per_frame:(index + 1) * per_frame]
        if len(words) < per_frame:
            frame_mismatches.append(codec.values_per_frame)
            continue
        out, wrong_markers = codec.unpack(words)
        outputs.append(out)
        frame_mismatches.append(codec.mismatches(out, expected[index]))
        marker_errors += wrong_markers
    return SimResult(
        simulator=simulator, frames=frames, width=codec.width, height=codec.height,
        outputs=outputs,
        expected=expected, mismatches=sum(frame_mismatches), frame_mismatches=frame_mismatches,
        marker_errors=marker_errors, cycles=run.cycles, latency_cycles=top.latency_cycles,
        first_output_cycle=run.first_output_cycle, wall_seconds=wall,
        sim_cycles_per_second=run.sim_cycles_per_second, stall=stall,
        extra={**extra, **_stage_reports(pipeline, frames, run.cycles)})


def _timeout_cycles(pipeline, in_words, out_words, frames):
    """Cycles after which a run is declared hung: generous for the transfers (stalls
    included) plus twice the busiest stage's work (its output pixels times its initiation
    interval, for a folded MAC array or a sequential unit far above one per transfer)."""
    timings = pipeline.timings()
    busy = frames * max(b.out_width * b.out_height * timings[b.name].initiation_interval
                        for b in pipeline.bound)
    return 20 * (in_words + out_words) + 10_000 + 2 * busy


class _OutputCodec:
    """The pipeline's output stream, host side: one output's frames as arrays; several
    outputs' as ``{name: frame}`` dicts, from one joined stream when their frames have one
    size, else from a sequenced one (each output's whole frame in turn, see
    :class:`~rasterflow.hdl.graph.SequencedOutputs`). ``width`` and ``height``: the first
    output's."""
    def __init__(self, pipeline):
        self.formats = pipeline.output_formats
        self.single = len(self.formats) == 1
        self.lanes = pipeline.lanes
        self.sizes = {name: (b.out_width, b.out_height)
                      for name, b in ((n, pipeline.output(n)) for n in pipeline.outputs)}
        self.sequenced = outputs_in_sequence(self.sizes.values())
        self.width, self.height = next(iter(self.sizes.values()))
        words = sequenced_words(self.sizes, self.lanes)
        self.words_per_frame = sum(words.values()) if self.sequenced else next(
            iter(words.values()))
        self.values_per_frame = sum(w * h * self.formats[name].channels
                                    for name, (w, h) in self.sizes.items())

    def outputs(self, by_name):
        return next(iter(by_name.values())) if self.single else by_name

    def pack(self, outputs):
        if self.single:
            return pack_pixels(next(iter(self.formats.values())), outputs, self.lanes)
        if self.sequenced:
            return pack_sequenced(self.formats, outputs, self.lanes)
        return pack_joined(self.formats, outputs, self.lanes)

    def unpack(self, words):
        """``(output, marker errors)`` of one frame's words: the output as :meth:`outputs`
        gives it, and the count of transfers whose ``sof``/``eol`` disagree with the
        geometry of the frame they belong to."""
        if self.sequenced:
            frames, sofs, eols = unpack_sequenced(self.formats, words, self.sizes, self.lanes)
            return frames, sum(self._marker_errors(sofs[name], eols[name], *self.sizes[name])
                               for name in frames)
        if self.single:
            frame, sof, eol = unpack_pixels(next(iter(self.formats.values())), words,
                                            self.height, self.width, self.lanes)
        else:
            frame, sof, eol = unpack_joined(self.formats, words, self.height, self.width,
                                            self.lanes)
        return frame, self._marker_errors(sof, eol, self.width, self.height)

    def _marker_errors(self, sof, eol, width, height):
        want_sof = np.zeros((height, transfers_per_line(width, self.lanes)), bool)
        want_sof[0, 0] = True
        want_eol = np.zeros_like(want_sof)
        want_eol[:, -1] = True
        return int(np.count_nonzero(sof != want_sof) + np.count_nonzero(eol != want_eol))

    def mismatches(self, got, expected):
        if self.single:
            return int(np.count_nonzero(got != expected))
        return sum(int(np.count_nonzero(got[name] != expected[name])) for name in got)


def _stage_reports(pipeline, frames, cycles):
    """Figures that stages compute from their timing and the measured cycles (per-layer MAC
    cycles and utilization of CNN layers; see ``hdl/conv.py``'s ``mac_sim_report``), keyed
    by stage name."""
    from ..hdl.conv import mac_sim_report
    reports = {bound.name: bound.stage.sim_report(bound, frames, cycles)
               for bound in pipeline.bound}
    return mac_sim_report({key: r for key, r in reports.items() if r is not None}, cycles)
