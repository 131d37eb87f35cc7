"""A validated pipeline: a graph of stages bound to their inputs, golden model, hardware top."""
import dataclasses
from dataclasses import dataclass

import numpy as np

from .errors import InputError, SpecError
from .ops import STAGES
from .params import check_name
from .stages import INPUT, Bound, Stage
from .hdl.filters import SharedColumnScanner, SharedWindow
from .hdl.payload import outputs_in_sequence
from .hdl.top import PipelineTop, TopNode, graph_timing

__all__ = ["Node", "Pipeline"]


@dataclass(frozen=True)
class Node:
    """A stage of the graph: its ``name``, the ``stage`` and the names it reads
    (``inputs``: earlier or later stages' names, or ``"input"``; ``None`` reads the stage
    listed before it, or the pipeline input for the first)."""
    name: str
    stage: Stage
    inputs: tuple = None


class Pipeline:
    """A directed acyclic graph of stages on one input stream, each bound to what its inputs
    produce.

    ``stages`` are :class:`Node`s (or bare stages, which read the stage before them: a
    chain, named ``stage0``, ``stage1``, ...). ``outputs`` names the stages whose streams
    leave the pipeline (default: the last stage), in one stream: in lockstep when their
    frames have one size, else each output's whole frame in turn, in this order (then they
    need one pixel dtype). ``nodes`` and ``bound`` are in a
    topological order (the spec's order where it is one), and ``bound[k]`` is ``nodes[k]``
    placed in the graph.
    """
    def __init__(self, input_spec, stages, *, name="rasterflow_top", outputs=None, model=None):
        self.input = input_spec
        self.name = name
        self.model = model
        self.lanes = input_spec.pixels_per_clock
        spec_nodes = [s if isinstance(s, Node) else Node(f"stage{k}", s)
                      for k, s in enumerate(stages)]
        self._spec_index = {}
        resolved = []
        for index, node in enumerate(spec_nodes):
            _check_node_name(index, node.name, self._spec_index)
            self._spec_index[node.name] = index
            previous = resolved[-1].name if resolved else INPUT
            inputs = (previous,) if node.inputs is None else tuple(node.inputs)
            resolved.append(Node(node.name, node.stage, inputs))
        self.outputs = _check_outputs(outputs, resolved)
        self.nodes = _topological_order(resolved, self._spec_index)
        _check_everything_is_read(self.nodes, self.outputs, self._spec_index)
        self.bound = []
        self._bound_by_name = {}
        for node in self.nodes:
            bound = self._bind(node)
            self.bound.append(bound)
            self._bound_by_name[node.name] = bound
        self._check_output_sizes()
        if model is not None:
            self._check_model(model)
        self._share_line_buffers()

    def _check_model(self, model):
        """The ``[model]`` edges must fit the graph: the input tensor is the input stream,
        each output tensor one output stream, and every output stream is an output."""
        fmt = self.input_format
        if tuple(model.input.nhwc_shape[1:]) != (self.height, self.width, fmt.channels) or \
                fmt.dtype != "int8":
            raise SpecError("model.input.shape", f"{list(model.input.shape)} "
                            f"({model.input.layout}) does not describe the input stream "
                            f"{self.width}x{self.height}x{fmt.channels} {fmt.dtype} "
                            "(an int8 stream of the NHWC tensor)")
        for k, output in enumerate(model.outputs):
            if output.node not in self.outputs:
                raise SpecError(f"model.output[{k}].node", f"must be one of the outputs "
                                f"({', '.join(self.outputs)}), not {output.node!r}")
            bound = self._bound_by_name[output.node]
            values = bound.out_width * bound.out_height * bound.out_format.channels
            if output.size != values:
                raise SpecError(f"model.output[{k}].shape", f"{list(output.shape)} holds "
                                f"{output.size} values; stage {output.node!r} streams {values}")
        missing = set(self.outputs) - {output.node for output in model.outputs}
        if missing:
            raise SpecError("model.output", f"lists no tensor for the output(s) "
                                            f"{', '.join(sorted(missing))}")

    def _share_line_buffers(self):
        """Give the line-buffer stages that read one stream with one vertical border a
        :class:`~rasterflow.hdl.filters.SharedWindow` as tall and wide as the largest of
        their windows, so their hardware keeps ``max(Ky) - 1`` lines for all of them. (The
        frame fits the shared window: its height fits the tallest window, its width the
        widest, as each stage's binding checked.)"""
        groups = {}
        for bound in self.bound:
            window = bound.stage.window(bound) if bound.stage.arity == 1 else None
            if window is not None:
                key = (bound.inputs[0], window.border, window.border_value)
                groups.setdefault(key, []).append((bound, window))
        for (_, border, border_value), members in groups.items():
            if len(members) < 2:
                continue
            share = SharedWindow(max(w.kernel_height for _, w in members),
                                 max(w.kernel_width for _, w in members), border, border_value)
            for bound, _ in members:
                self._replace(dataclasses.replace(bound, share=share))

    def _replace(self, bound):
        self.bound[self.bound.index(self._bound_by_name[bound.name])] = bound
        self._bound_by_name[bound.name] = bound

    def _check_output_sizes(self):
        """Outputs of different frame sizes leave one after another in pixels of one dtype
        (:class:`~rasterflow.hdl.graph.SequencedOutputs`), so they need that dtype."""
        bounds = [self._bound_by_name[name] for name in self.outputs]
        if not outputs_in_sequence((b.out_width, b.out_height) for b in bounds):
            return
        if len({b.out_format.dtype for b in bounds}) > 1:
            listed = ", ".join(f"{b.name} is {b.out_width}x{b.out_height} of {b.out_format}"
                               for b in bounds)
            raise SpecError("outputs", f"outputs of different frame sizes leave one after "
                                       f"another in one stream, so they need one pixel "
                                       f"dtype: {listed}")

    @property
    def stages(self):
        return [node.stage for node in self.nodes]

    @property
    def spec_nodes(self):
        """The nodes in the order the spec lists them."""
        return sorted(self.nodes, key=lambda node: self._spec_index[node.name])

    def _where(self, node):
        return f"stage[{self._spec_index[node.name]}]"

    def _source(self, name):
        """``(format, width, height)`` of the stream named ``name``."""
        if name == INPUT:
            return self.input.format, self.input.width, self.input.height
        bound = self._bound_by_name[name]
        return bound.out_format, bound.out_width, bound.out_height

    def _bind(self, node):
        stage, where = node.stage, self._where(node)
        if self.lanes > 1 and not stage.supports_lanes:
            with_lanes = sorted(op for op, cls in STAGES.items() if cls.supports_lanes)
            raise SpecError("input.pixels_per_clock",
                            f"must be 1 for {where} ({stage.op}), which takes one "
                            f"pixel per clock; ops with more: {', '.join(with_lanes)}")
        if len(node.inputs) != stage.arity:
            raise SpecError(f"{where}.inputs", f"{stage.op} takes {stage.arity} input"
                                               f"{'s' if stage.arity > 1 else ''}, not "
                                               f"{len(node.inputs)}")
        sources = [self._source(name) for name in node.inputs]
        try:
            if stage.arity == 1:
                bound = stage.bind(*sources[0])
            else:
                bound = stage.bind_join(sources)
        except SpecError as error:
            raise self._placed_error(error, node, sources[0]) from None
        return dataclasses.replace(bound, lanes=self.lanes, name=node.name,
                                   inputs=node.inputs)

    def _placed_error(self, error, node, source):
        where = self._where(node)
        if not error.field.startswith("input."):
            return error.within(where)
        if node.inputs[0] == INPUT:
            return error
        width, height = source[1], source[2]
        index = self._spec_index[node.inputs[0]]
        return SpecError(where, f"its input ({width}x{height} from stage[{index}]) "
                                f"{error.message}")

    @property
    def input_format(self):
        return self.input.format

    @property
    def width(self):
        return self.input.width

    @property
    def height(self):
        return self.input.height

    def output(self, name=None):
        """The :class:`Bound` stage of output ``name`` (default: the only output)."""
        if name is None:
            if len(self.outputs) != 1:
                raise SpecError("outputs", f"this pipeline has {len(self.outputs)} outputs "
                                           f"({', '.join(self.outputs)}); name one")
            name = self.outputs[0]
        return self._bound_by_name[name]

    @property
    def output_format(self):
        return self.output().out_format

    @property
    def out_width(self):
        return self.output().out_width

    @property
    def out_height(self):
        return self.output().out_height

    @property
    def output_formats(self):
        """Output name -> :class:`PixelFormat`, in the order of ``outputs``."""
        return {name: self._bound_by_name[name].out_format for name in self.outputs}

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

    def golden_outputs(self, frame):
        """Every output of the golden model for one input frame: name -> ``H x W x C``."""
        frames = {INPUT: self.check_frame(np.asarray(frame))}
        for bound in self.bound:
            result = bound.golden(*(frames[name] for name in bound.inputs))
            # A tensor stage may return its TFLite shape (a pooled [C] vector): the stream
            # holds it as out_height x out_width pixels.
            frames[bound.name] = np.asarray(result).reshape(bound.out_height, bound.out_width, -1)
        return {name: frames[name] for name in self.outputs}

    def golden(self, frame):
        """The golden output of a single-output pipeline (``H x W x C``)."""
        name = self.output().name
        return self.golden_outputs(frame)[name]

    def _graph(self):
        """The hardware graph's nodes in order, ``(name, inputs, item)``: ``item`` is a
        stage's :class:`Bound`, or the :class:`~rasterflow.hdl.filters.SharedWindow` of a
        shared line-buffer scanner, placed before the first stage of the group sharing it."""
        nodes, scanners = [], {}
        for b in self.bound:
            inputs = b.inputs
            if b.share is not None:
                key = (b.inputs[0], b.share)
                if key not in scanners:
                    scanners[key] = self._scanner_name(b.inputs[0], len(scanners))
                    nodes.append((scanners[key], b.inputs, b.share))
                inputs = (scanners[key],)
            nodes.append((b.name, inputs, b))
        return nodes

    def hardware(self):
        """The graph's :class:`~rasterflow.hdl.top.PipelineTop`: a node per stage (in the
        order of :attr:`bound`), and before the first stage of each group sharing line buffers
        a node of their :class:`~rasterflow.hdl.filters.SharedColumnScanner`."""
        nodes = []
        for name, inputs, item in self._graph():
            if isinstance(item, Bound):
                nodes.append(TopNode(name, item.hardware(), inputs, item.out_format,
                                     timing=item.stage.timing(item)))
            else:
                fmt, width, height = self._source(inputs[0])
                scanner = SharedColumnScanner(fmt, width, height, item, self.lanes)
                nodes.append(TopNode(name, scanner, inputs, None,
                                     timing=SharedColumnScanner.timing()))
        return PipelineTop(self.input_format, self.width, self.height, self.lanes, nodes,
                           self.outputs)

    def _scanner_name(self, source, index):
        taken = {INPUT, *self._bound_by_name}
        return next(f"lines{k}_{source}" for k in range(index, index + len(taken) + 1)
                    if f"lines{k}_{source}" not in taken)

    def timings(self):
        """Each stage's :class:`~rasterflow.hdl.timing.StageTiming`, by name (in the order of
        :attr:`bound`), from its parameters alone."""
        return {b.name: b.stage.timing(b) for b in self.bound}

    @property
    def latency_cycles(self):
        """``L`` of the hardware: ``F`` frames take ``F*W*H + L`` cycles when nothing stalls.
        For outputs of different frame sizes (in sequence) no such count holds: ``L`` is the
        first output's latency, from an input transfer to the first output's item tied to it
        while nothing stalls that output (as in the first frame; see
        :class:`~rasterflow.hdl.top.PipelineTop`). Computed from the stages' timings by the
        hardware's own rule (:func:`~rasterflow.hdl.top.graph_timing`), without building
        it."""
        return self.graph_timing().latency_cycles

    @property
    def frame_cycles(self):
        """Cycles per frame in steady state (the busiest stage's), from the stages' timings:
        ``clock / frame_cycles`` frames per second."""
        return self.graph_timing().frame_cycles

    def graph_timing(self):
        """The hardware's :class:`~rasterflow.hdl.top.GraphTiming`, computed from the
        stages' timings by its own rule, without building it."""
        timings = self.timings()
        nodes = [(name, inputs, timings[name], (item.out_width, item.out_height))
                 if isinstance(item, Bound) else (name, inputs, SharedColumnScanner.timing())
                 for name, inputs, item in self._graph()]
        return graph_timing(nodes, self.outputs, width=self.width, height=self.height,
                            lanes=self.lanes)

    @property
    def latency_lines(self):
        """Input lines the hardware may hold before its first output (host flow control)."""
        return -(-self.latency_cycles // self.width) + 1

    def to_dict(self):
        doc = {
            "name": self.name,
            "input": {"width": self.width, "height": self.height,
                      "channels": self.input_format.channels, "dtype": self.input_format.dtype,
                      "pixels_per_clock": self.lanes},
            "stage": [],
        }
        order = self.spec_nodes
        previous = INPUT
        for node in order:
            table = node.stage.to_table()
            if not _default_name(node.name):
                table["name"] = node.name
            if node.inputs != (previous,):
                table["inputs"] = list(node.inputs)
            doc["stage"].append(table)
            previous = node.name
        if self.outputs != [order[-1].name]:
            doc["outputs"] = list(self.outputs)
        return doc


def _default_name(name):
    return name.startswith("stage") and name[5:].isdigit()


def _check_node_name(index, name, seen):
    check_name(f"stage[{index}].name", name)
    if name == INPUT:
        raise SpecError(f"stage[{index}].name", f"{INPUT!r} names the pipeline input; choose "
                                                f"another name")
    if name in seen:
        raise SpecError(f"stage[{index}].name",
                        f"duplicate name {name!r} (also stage[{seen[name]}])")


def _check_outputs(outputs, nodes):
    names = [node.name for node in nodes]
    if outputs is None:
        return [names[-1]]
    if not isinstance(outputs, list) or not outputs or \
            not all(isinstance(o, str) for o in outputs):
        raise SpecError("outputs", f"must be a non-empty list of stage names, not {outputs!r}")
    for name in outputs:
        if name not in names:
            raise SpecError("outputs", f"unknown stage {name!r}; stages: {', '.join(names)}")
    if len(set(outputs)) != len(outputs):
        raise SpecError("outputs", f"lists a stage twice: {outputs!r}")
    return list(outputs)


def _topological_order(nodes, spec_index):
    """``nodes`` ordered so that every node comes after the nodes it reads (the given order
    where possible); unknown input names and cycles are :class:`SpecError`s."""
    by_name = {node.name: node for node in nodes}
    for node in nodes:
        where = f"stage[{spec_index[node.name]}].inputs"
        if not isinstance(node.inputs, tuple) or not node.inputs or \
                not all(isinstance(n, str) for n in node.inputs):
            raise SpecError(where, f"must be a non-empty list of stage names or "
                                   f"{INPUT!r}, not {list(node.inputs)!r}")
        for name in node.inputs:
            if name != INPUT and name not in by_name:
                known = ", ".join([INPUT] + list(by_name))
                raise SpecError(where, f"unknown stage {name!r}; known: {known}")
    order, state = [], {}

    def visit(node, path):
        if state.get(node.name) == "done":
            return
        if state.get(node.name) == "visiting":
            cycle = path[path.index(node.name):] + [node.name]
            raise SpecError(f"stage[{spec_index[node.name]}].inputs",
                            f"the graph has a cycle: {' -> '.join(cycle)}")
        state[node.name] = "visiting"
        for name in node.inputs:
            if name != INPUT:
                visit(by_name[name], path + [node.name])
        state[node.name] = "done"
        order.append(node)

    for node in nodes:
        visit(node, [])
    return order


def _check_everything_is_read(nodes, outputs, spec_index):
    read = {name for node in nodes for name in node.inputs} | set(outputs)
    for node in nodes:
        if node.name not in read:
            raise SpecError(f"stage[{spec_index[node.name]}]",
                            f"{node.name!r} is read by no stage and is not in outputs "
                            f"({', '.join(outputs)})")
