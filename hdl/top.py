"""The hardware of a whole pipeline graph: frame guard, stages, forks, skew buffers, joins.

:class:`PipelineTop` wires the stages' hardware stream to stream as their graph says. A
stream read by several consumers (or read and also an output) goes through a
:class:`~rasterflow.hdl.graph.Fork`; a stage reading several streams gets them through a
:class:`~rasterflow.hdl.graph.Join`, each input delayed by a
:class:`~rasterflow.hdl.graph.SkewBuffer` sized from the branches' latencies (see
:func:`~rasterflow.hdl.graph.skew_depth`); several outputs leave as one joined stream.
"""
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..golden.pixel import PixelFormat
from .graph import Fork, Join, SkewBuffer, joined_latency, skew_depth
from .guard import Fault, FrameGuard
from .payload import joined_stream_layout, pixel_stream_layout, pixel_stream_signature
from .stall import SKID_LATENCY, SkidBuffer

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
    inputs that need one) and ``latency_cycles``."""
    arrival: dict
    skews: dict
    latency_cycles: int


def graph_timing(nodes, outputs):
    """The :class:`GraphTiming` of a graph, from each node's timing alone.

    The one place the arrival-time rule is written, for :class:`PipelineTop` (which sizes
    its skew buffers from it) and for planning a pipeline without building its hardware.

    Parameters
    ----------
    nodes : iterable of ``(name, inputs, delay)``
        In a topological order: the node's name, the names of the streams it reads, and its
        ``latency + schedule_delay``.
    outputs : list of str
        The names of the streams that leave the graph (joined when several).
    """
    arrival = {INPUT: FrameGuard.latency + SKID_LATENCY}
    skews = {}

    def join_arrival(key, inputs):
        # One input needs no join; several meet at a join, each faster one behind a buffer,
        # and leave it through a skid buffer.
        arrivals = [arrival[name] for name in inputs]
        if len(inputs) == 1:
            return arrivals[0]
        for position, depth in enumerate(skew_depth(arrivals)):
            if depth:
                skews[key, position] = depth
        return joined_latency(arrivals) + SKID_LATENCY

    for name, inputs, delay in nodes:
        arrival[name] = join_arrival(name, inputs) + delay + SKID_LATENCY
    return GraphTiming(arrival, skews, join_arrival("output", outputs))


@dataclass(frozen=True)
class TopNode:
    """One stage of the graph for :class:`PipelineTop`: its ``name``, its hardware ``part``
    (``i``: the stream it reads, or for ``len(inputs) > 1`` a joined stream of the inputs
    under :func:`join_names`; ``o``: a pixel stream), the names of the streams it reads and
    the pixel format it produces (``None`` for a node whose ``o`` is not a pixel stream, such
    as shared line buffers' column stream: it cannot be joined or be an output)."""
    name: str
    part: wiring.Component
    inputs: tuple
    out_format: PixelFormat


class PipelineTop(wiring.Component):
    """A pipeline graph's hardware behind a frame guard, skid buffers after every stage.

    Members: ``i`` (pixel stream of the pipeline input), ``o`` (the output's pixel stream,
    or with several outputs their :func:`~rasterflow.hdl.payload.joined_stream_layout`
    stream, fields named as the outputs), and the
    :class:`~rasterflow.hdl.guard.FrameGuard`'s status: ``error`` (sticky), ``errors``
    (malformed input frames seen, saturating) and ``last_fault``. The guard repairs
    malformed input frames, so the stages only ever see whole frames.

    Latency: each stream's arrival time ``T`` (cycles after its input transfer, unstalled)
    is the guard's latency plus a skid buffer for the input, and for a stage's output the
    latest of its inputs' arrivals (a join adds a skid buffer) plus the stage's
    ``latency + schedule_delay`` plus a skid buffer; ``latency_cycles`` is the latest
    output's (:func:`graph_timing`). Skew buffers
    give the earlier inputs of a join the depth that keeps the fork feeding them from
    stalling, so ``F`` frames take ``F * ceil(W/P) * H + latency_cycles`` cycles.
    Throughput: one transfer per cycle.
    Memory: the stages' plus ``depth x payload`` bits per skew buffer.
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
        timing = graph_timing([(n.name, n.inputs, n.part.latency + n.part.schedule_delay)
                               for n in nodes], self.outputs)
        self.arrival = timing.arrival
        self.skews = timing.skews     # (node or "output", input position) -> depth
        self.latency_cycles = timing.latency_cycles
        out_signature = (pixel_stream_signature(self._formats[outputs[0]], lanes)
                         if len(outputs) == 1 else
                         stream.Signature(joined_stream_layout(self.output_formats, lanes)))
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
