"""The hardware of a whole pipeline graph: frame guard, stages, forks, skew buffers, joins.

:class:`PipelineTop` wires the stages' hardware stream to stream as their graph says. A
stream read by several consumers (or read and also an output) goes through a
:class:`~rasterflow.hdl.graph.Fork`; a stage reading several streams gets them through a
:class:`~rasterflow.hdl.graph.Join`, each input delayed by a
:class:`~rasterflow.hdl.graph.SkewBuffer` sized from the branches' timing (in cycles for
rigid branches, :func:`~rasterflow.hdl.graph.skew_depth`; in items of the join's stream
for CNN branches, :func:`~rasterflow.hdl.graph.paced_skew_depth`); several outputs leave as
one joined stream when their frames have one size, else one after another through a
:class:`~rasterflow.hdl.graph.SequencedOutputs`.
"""
from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..golden.pixel import PixelFormat
from .graph import (SKEW_LATENCY, Fork, Join, SequencedOutputs, SkewBuffer, frame_transfers,
                    paced_skew_depth, skew_depth, tie_bounds)
from .guard import Fault, FrameGuard
from .payload import (joined_stream_layout, outputs_in_sequence, pixel_stream_layout,
                      pixel_stream_signature, sequenced_format)
from .stall import SKID_LATENCY, SkidBuffer
from .timing import StageTiming

__all__ = ["INPUT", "TopNode", "PipelineTop", "GraphTiming", "graph_timing", "join_names"]

#: The name of the pipeline's input stream in a graph.
INPUT = "input"


def join_names(count):
    """The field names of a join's inputs in a ``joined_stream_layout``: ``a``, ``b``, ..."""
    return tuple("abcdefghijklmnopqrstuvwxyz"[:count])


@dataclass(frozen=True)
class GraphTiming:
    """The arrival times of a graph's streams, its joins' skew buffers and its latency (see
    :class:`PipelineTop`): ``arrival`` (stream name -> cycles after its input transfer),
    ``skews`` (``(node name or "output", input position)`` -> skew buffer depth, for the
    inputs that need one), ``latency_cycles`` (the output stream's arrival: the joined
    outputs', or for outputs in sequence the first output's), ``sizes`` (stream name ->
    ``(width, height)`` of its frames) and ``frame_cycles`` (cycles per frame in steady
    state: the busiest stage's, one cycle per input transfer and ``initiation_interval``
    per output transfer)."""
    arrival: dict
    skews: dict
    latency_cycles: int
    sizes: dict
    frame_cycles: int


def graph_timing(nodes, outputs, *, width=1, height=1, lanes=1):
    """The :class:`GraphTiming` of a graph, from each node's timing alone.

    The one place the arrival-time and skew-buffer rules are written, for
    :class:`PipelineTop` (which sizes its skew buffers from it) and for planning a pipeline
    without building its hardware.

    Arrival times are cycles of rigid pipelines (see :class:`PipelineTop`). A join's skew
    buffers come from :func:`~rasterflow.hdl.graph.skew_depth` when its branches are rigid
    and one item per cycle reaches it, else from
    :func:`~rasterflow.hdl.graph.paced_skew_depth`, in items of the join's stream (see
    :mod:`rasterflow.hdl.graph`): each branch is measured from the stream that dominates
    the join (the last one every path to it goes through), where they part.

    Parameters
    ----------
    nodes : iterable of ``(name, inputs, timing)`` or ``(name, inputs, timing, out_size)``
        In a topological order: the node's name, the names of the streams it reads, its
        :class:`~rasterflow.hdl.timing.StageTiming` (or an int, the ``latency +
        schedule_delay`` of a stage that keeps its frame size) and the ``(width, height)``
        of its output frame (default: its timing's sampling's, else its input's).
    outputs : list of str
        The names of the streams that leave the graph (joined when several of one frame
        size, else in sequence).
    width, height, lanes : int
        The input frame and its pixels per transfer.
    """
    plan = _GraphPlan(nodes, (width, height), lanes)
    for node in plan.nodes.values():
        plan.cycles[node.name] = (plan.join(node.name, node.inputs) + node.timing.delay
                                  + SKID_LATENCY)
    return GraphTiming(plan.cycles, plan.skews, plan.output(outputs), plan.sizes,
                       int(1 / plan.frame_rate))


@dataclass(frozen=True)
class _PlanNode:
    """A node as :func:`graph_timing` sees it; ``ties``: its stage's
    :func:`~rasterflow.hdl.graph.tie_bounds`."""
    name: str
    inputs: tuple
    timing: StageTiming
    in_size: tuple
    out_size: tuple
    ties: tuple


@dataclass(frozen=True)
class _Bounds:
    """A stream's item ``n`` measured from a reference stream ``R`` (``P`` transfers a
    frame), in ``R``'s transfers: tied to transfer ``n * P_R / P + l`` with ``l`` in
    ``ties``, and arriving (its registers' latency at the steady rate added) in
    ``arrivals``; both ``(early, late)``."""
    ties: tuple
    arrivals: tuple

    def then(self, ties, held):
        """These bounds followed by a stage of tie bounds ``ties`` (in ``R``'s transfers)
        holding ``held`` more."""
        lo, hi = ties
        return _Bounds((self.ties[0] + lo, self.ties[1] + hi),
                       (self.arrivals[0] + lo + held, self.arrivals[1] + hi + held))


_ORIGIN = _Bounds((Fraction(0), Fraction(0)), (Fraction(0), Fraction(0)))


class _GraphPlan:
    """The quantities :func:`graph_timing` derives: node sizes and tie bounds, the steady
    frame rate, each stream's dominators, and, filled by :meth:`join` in topological order,
    the streams' arrival ``cycles``, the joins' ``depths`` and the ``skews``."""

    def __init__(self, nodes, size, lanes):
        self.lanes = lanes
        self.sizes = {INPUT: tuple(size)}
        self.nodes = {}
        for entry in nodes:
            node = self._node(*entry)
            self.nodes[node.name] = node
            self.sizes[node.name] = node.out_size
        self.transfers = {name: frame_transfers(s, lanes) for name, s in self.sizes.items()}
        self.frame_rate = self._frame_rate()
        self.dominators = {INPUT: (INPUT,)}
        for node in self.nodes.values():
            self.dominators[node.name] = self._common_dominators(node.inputs) + (node.name,)
        self.cycles = {INPUT: FrameGuard.latency + SKID_LATENCY}
        self.depths = {}
        self.skews = {}

    def _node(self, name, inputs, timing, out_size=None):
        if isinstance(timing, int):
            timing = StageTiming(timing)
        in_size = self.sizes[inputs[0]]
        if out_size is None:
            out_size = timing.sampling.out_size if timing.sampling else in_size
        out_size = tuple(out_size)
        return _PlanNode(name, tuple(inputs), timing, in_size, out_size,
                         tie_bounds(timing, in_size, out_size, self.lanes))

    def _frame_rate(self):
        """Frames per cycle in steady state, at most: every stage takes a cycle per input
        transfer and ``initiation_interval`` cycles per output transfer."""
        busiest = max([self.transfers[INPUT]] + [
            max(frame_transfers(node.in_size, self.lanes),
                self.transfers[node.name] * node.timing.initiation_interval)
            for node in self.nodes.values()])
        return Fraction(1, busiest)

    def _common_dominators(self, names):
        """The streams every path to each of ``names`` goes through, in topological order
        (a common prefix of their dominator chains)."""
        chains = [self.dominators[name] for name in names]
        common = []
        for entries in zip(*chains):
            if len(set(entries)) > 1:
                break
            common.append(entries[0])
        return tuple(common)

    def output(self, outputs):
        """The arrival cycles of the output stream: the outputs' join's, or for outputs in
        sequence the first output's (the later ones leave when the sequence comes to them:
        no fixed time)."""
        if outputs_in_sequence(self.sizes[name] for name in outputs):
            return self.cycles[outputs[0]] + SequencedOutputs.latency
        return self.join("output", outputs)

    def join(self, key, inputs):
        """The arrival cycles of the stream ``key`` reads: its input's, or for several
        inputs their join's (skew buffers sized, a skid buffer after it)."""
        if len(inputs) == 1:
            return self.cycles[inputs[0]]
        if len({self.sizes[name] for name in inputs}) > 1:
            raise ValueError(f"{key} joins frames of different sizes: "
                             f"{[self.sizes[name] for name in inputs]}")
        depths = self._skew_depths(inputs)
        self.depths[key] = depths
        self.skews.update({(key, k): depth for k, depth in enumerate(depths) if depth})
        return max(self.cycles[name] + (SKEW_LATENCY if depth else 0)
                   for name, depth in zip(inputs, depths)) + SKID_LATENCY

    def _skew_depths(self, inputs):
        reference = self._common_dominators(inputs)[-1]
        branches = self._measured(reference, inputs)
        per_item = Fraction(self.transfers[inputs[0]], self.transfers[reference])
        items_per_cycle = self.frame_rate * self.transfers[inputs[0]]
        ties = [tuple(t * per_item for t in b.ties) for b in branches]
        arrivals = [tuple(a * per_item for a in b.arrivals) for b in branches]
        rigid = all(lo == hi and lo.denominator == 1 for lo, hi in arrivals)
        if rigid and items_per_cycle == 1:
            return skew_depth([int(late) for _, late in arrivals])
        return paced_skew_depth(arrivals, ties, SKEW_LATENCY * items_per_cycle)

    def _measured(self, reference, names):
        """The :class:`_Bounds` of the streams ``names`` measured from ``reference``, which
        dominates them: stage by stage, over the streams it dominates that have arrived."""
        per_cycle = self.frame_rate * self.transfers[reference]
        measured = {reference: _ORIGIN}
        for node in self.nodes.values():
            if node.name not in self.cycles or node.name in measured or \
                    reference not in self.dominators[node.name]:
                continue
            source = self._joined([measured[name] for name in node.inputs],
                                  self.depths.get(node.name), per_cycle)
            scale = Fraction(self.transfers[reference],
                             frame_transfers(node.in_size, self.lanes))
            held = (node.timing.latency + SKID_LATENCY) * per_cycle
            measured[node.name] = source.then(tuple(t * scale for t in node.ties), held)
        return [measured[name] for name in names]

    @staticmethod
    def _joined(sources, depths, per_cycle):
        """The :class:`_Bounds` of a stage's input: its one source's, or its join's (each
        buffered branch later by the buffer, all by the join's skid buffer)."""
        if len(sources) == 1:
            return sources[0]
        delays = [SKEW_LATENCY * per_cycle if depth else 0 for depth in depths]
        return _Bounds(
            tuple(max(b.ties[k] for b in sources) for k in (0, 1)),
            tuple(max(b.arrivals[k] + d for b, d in zip(sources, delays)) +
                  SKID_LATENCY * per_cycle for k in (0, 1)))


@dataclass(frozen=True)
class TopNode:
    """One stage of the graph for :class:`PipelineTop`: its ``name``, its hardware ``part``
    (``i``: the stream it reads, or for ``len(inputs) > 1`` a joined stream of the inputs
    under :func:`join_names`; ``o``: a pixel stream), the names of the streams it reads and
    the pixel format it produces (``None`` for a node whose ``o`` is not a pixel stream, such
    as shared line buffers' column stream: it cannot be joined or be an output).

    ``timing``: the stage's :class:`~rasterflow.hdl.timing.StageTiming` (with its sampling,
    for a stage that changes the frame size); without it, the part's ``latency``,
    ``schedule_delay`` and ``initiation_interval`` (and ``out_width``/``out_height`` if it
    changes the frame size, then taken to need any pixel of its input frame: see
    :func:`~rasterflow.hdl.graph.tie_bounds`)."""
    name: str
    part: wiring.Component
    inputs: tuple
    out_format: PixelFormat
    timing: StageTiming = None

    def plan_entry(self):
        """The node as :func:`graph_timing` takes it."""
        part = self.part
        timing = self.timing or StageTiming(part.latency, part.schedule_delay,
                                            getattr(part, "initiation_interval", 1))
        out_size = None
        if timing.sampling is None and hasattr(part, "out_width"):
            out_size = (part.out_width, part.out_height)
        return self.name, self.inputs, timing, out_size


class PipelineTop(wiring.Component):
    """A pipeline graph's hardware behind a frame guard, skid buffers after every stage.

    Members: ``i`` (pixel stream of the pipeline input), ``o`` (the output's pixel stream;
    with several outputs of one frame size their
    :func:`~rasterflow.hdl.payload.joined_stream_layout` stream, fields named as the
    outputs; with outputs of different frame sizes, a pixel stream of
    :func:`~rasterflow.hdl.payload.sequenced_format` carrying for each input frame every
    output's whole frame in turn, from :attr:`sequencer`, a
    :class:`~rasterflow.hdl.graph.SequencedOutputs`), and the
    :class:`~rasterflow.hdl.guard.FrameGuard`'s status: ``error`` (sticky), ``errors``
    (malformed input frames seen, saturating) and ``last_fault``. The guard repairs
    malformed input frames, so the stages only ever see whole frames.

    Latency: each stream's arrival time ``T`` (cycles after its input transfer, unstalled)
    is the guard's latency plus a skid buffer for the input, and for a stage's output the
    latest of its inputs' arrivals (a join adds a skid buffer) plus the stage's
    ``latency + schedule_delay`` plus a skid buffer; ``latency_cycles`` is the latest
    output's (:func:`graph_timing`). Skew buffers
    give the earlier inputs of a join the depth that keeps the fork feeding them from
    stalling, so a graph of rigid stages (one transfer per cycle, frame size kept) takes
    ``F * ceil(W/P) * H + latency_cycles`` cycles for ``F`` frames. In a graph of CNN stages
    (folded MAC arrays, strides, resizes) they have the depth that never deadlocks and keeps
    the slowest stage's pace (:func:`~rasterflow.hdl.graph.paced_skew_depth`).
    Outputs in sequence: ``latency_cycles`` is the first output's arrival; its items leave
    that many cycles after their input transfer while nothing stalls it, as in the first
    frame. The exact count ``F * ceil(W/P) * H + latency_cycles`` does not hold for them:
    the last frame's other outputs leave after the first's, and a frame's first output
    waits while the previous frame's others drain.
    Throughput: one transfer per cycle, or the slowest stage's pace (for outputs in
    sequence, at most one output transfer per cycle for all the outputs' frames together).
    Memory: the stages' plus ``depth x payload`` bits per skew buffer (and the sequenced
    outputs' frame buffers, see :class:`~rasterflow.hdl.graph.SequencedOutputs`).
    """
    def __init__(self, in_format, width, height, lanes, nodes, outputs):
        names = [node.name for node in nodes]
        if len(set(names)) != len(names) or INPUT in names:
            raise ValueError(f"node names must be unique and not {INPUT!r}: {names!r}")
        self.lanes = lanes
        self.nodes = list(nodes)
        self.parts = [node.part for node in nodes]
        self.parts_by_name = {node.name: node.part for node in nodes}
        self.outputs = list(outputs)
        self.guard = FrameGuard(in_format, width, height, lanes=lanes)
        self._formats = {INPUT: in_format, **{n.name: n.out_format for n in nodes}}
        self._shapes = {INPUT: pixel_stream_layout(in_format, lanes),
                        **{n.name: n.part.o.payload.shape() for n in nodes}}
        self._readers = self._count_readers()
        timing = graph_timing([n.plan_entry() for n in nodes], self.outputs, width=width,
                              height=height, lanes=lanes)
        self.arrival = timing.arrival
        self.skews = timing.skews     # (node or "output", input position) -> depth
        self.latency_cycles = timing.latency_cycles
        self.output_sizes = {name: timing.sizes[name] for name in self.outputs}
        self.sequencer = None
        if len(outputs) == 1:
            out_signature = pixel_stream_signature(self._formats[outputs[0]], lanes)
        elif outputs_in_sequence(self.output_sizes.values()):
            self.sequencer = SequencedOutputs(self.output_formats, self.output_sizes, lanes)
            out_signature = pixel_stream_signature(sequenced_format(self.output_formats), lanes)
        else:
            out_signature = stream.Signature(joined_stream_layout(self.output_formats, lanes))
        super().__init__({
            "i": In(pixel_stream_signature(in_format, lanes)),
            "o": Out(out_signature),
            "error": Out(1),
            "errors": Out(self.guard.errors.shape()),
            "last_fault": Out(Fault),
        })

    @property
    def output_formats(self):
        return {name: self._formats[name] for name in self.outputs}

    def _count_readers(self):
        readers = {INPUT: 0, **{node.name: 0 for node in self.nodes}}
        for node in self.nodes:
            for name in node.inputs:
                readers[name] += 1
        for name in self.outputs:
            readers[name] += 1
        return readers

    def elaborate(self, platform):
        m = Module()
        m.submodules.guard = self.guard
        m.d.comb += [self.error.eq(self.guard.error), self.errors.eq(self.guard.errors),
                     self.last_fault.eq(self.guard.last_fault)]
        connect(m, wiring.flipped(self.i), self.guard.i)
        sources = _Sources(m, self._readers)
        input_skid = SkidBuffer(self._shapes[INPUT])
        m.submodules.input_skid = input_skid
        connect(m, self.guard.o, input_skid.i)
        sources.add(INPUT, input_skid.o, self._shapes[INPUT])
        for node in self.nodes:
            m.submodules[f"stage_{node.name}"] = node.part
            self._feed(m, sources, node.name, node.inputs, node.part.i)
            skid = SkidBuffer(self._shapes[node.name])
            m.submodules[f"skid_{node.name}"] = skid
            connect(m, node.part.o, skid.i)
            sources.add(node.name, skid.o, self._shapes[node.name])
        if self.sequencer is not None:
            m.submodules.sequence_outputs = self.sequencer
            for name in self.outputs:
                connect(m, sources.take(name), getattr(self.sequencer, f"i_{name}"))
            connect(m, self.sequencer.o, wiring.flipped(self.o))
        else:
            self._feed(m, sources, "output", self.outputs, wiring.flipped(self.o))
        return m

    def _feed(self, m, sources, key, inputs, sink):
        """Connect the streams named ``inputs`` to ``sink``: directly, or through skew
        buffers and a join."""
        if len(inputs) == 1:
            connect(m, sources.take(inputs[0]), sink)
            return
        fields = join_names(len(inputs)) if key != "output" else tuple(inputs)
        join = Join(dict(zip(fields, (self._formats[n] for n in inputs))), lanes=self.lanes)
        m.submodules[f"join_{key}"] = join
        for position, (field, name) in enumerate(zip(fields, inputs)):
            source = sources.take(name)
            depth = self.skews.get((key, position))
            if depth:
                skew = SkewBuffer(self._shapes[name], depth)
                m.submodules[f"skew_{key}_{field}"] = skew
                connect(m, source, skew.i)
                source = skew.o
            connect(m, source, getattr(join, f"i_{field}"))
        # The join's input readies are its output's ready: without this register, a stalling
        # stage's enable would reach through the join into the skew buffers and the fork.
        skid = SkidBuffer(join.o.payload.shape())
        m.submodules[f"join_skid_{key}"] = skid
        connect(m, join.o, skid.i)
        connect(m, skid.o, sink)


class _Sources:
    """Every stream of the graph by name, forked when it has several readers; each reader
    takes the next branch."""
    def __init__(self, m, readers):
        self._m, self._readers = m, readers
        self._branches = {}

    def add(self, name, source, shape):
        count = self._readers[name]
        if count <= 1:
            self._branches[name] = [source]
            return
        fork = Fork(shape, count)
        self._m.submodules[f"fork_{name}"] = fork
        connect(self._m, source, fork.i)
        self._branches[name] = list(fork.o)

    def take(self, name):
        return self._branches[name].pop(0)
