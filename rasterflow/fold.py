"""Folding a pipeline onto a device: what its hardware costs, and the ``pe``/``simd`` that fit.

:func:`assess` is a cost model in plain Python (nothing is elaborated or synthesized) of a
bound pipeline on a board: per stage its variable products, its memories and its other logic;
then, as synthesis for the board's family would place them, DSP blocks or LUTs for the
products, block RAM or LUTs for the memories, and the totals against the board's budget.

:func:`fold` chooses the ``pe``/``simd`` of the pipeline's MAC stages (those whose class has a
``balanced_folding``: ``conv2d``, ``depthwise_conv2d``, ``fully_connected``) for the most frames
per second: the smallest frame budget ``B`` (cycles per frame) for which every MAC stage's
fewest-multiplier folding with ``output pixels * II <= B`` (its ``balanced_folding``) fits the
board. ``B`` is at least one cycle per input transfer and each other stage's own cycles per
frame. The search is a bisection over the budgets at which some stage's folding changes,
which finds the smallest when fitting only gets easier as ``B`` grows (fewer products and
LUTs); where the block RAM count does not (deeper weight ROMs move from LUTs to block RAM),
it may stop at a larger ``B`` than the smallest that fits, never at one that does not fit.
When even the most folded design (``pe = simd = 1`` everywhere) does not fit, :func:`fold`
raises :class:`DoesNotFit` naming each resource and by how much.

:func:`certain_overruns` is the part of the model that is beyond doubt, which
:func:`rasterflow.boards.build.build` checks before running any tool.

The model
---------
*Products* (exact): a MAC array has ``pe * simd`` int8 x int8 products
(``StageTiming.multipliers``) and a requantizer per PE whose ``m0`` comes from its parameter
ROM, a 32 x 32 product; a softmax has one 32 x 32 product. They take DSP blocks in the order
:func:`~rasterflow.boards.build.plan_multipliers` gives them (most LUT bits saved per block
first) while the board's DSP blocks last, each ``Multiplier.dsp_blocks`` blocks; the rest are
LUTs (about :data:`LUTS_PER_PRODUCT_BIT` per operand bit pair). Products by constants (the
activations', additions', pools') are part of the logic estimate.

*Memories* (exact sizes, but for a dense layer's parameter word; image stages' constant
tables are left out): a MAC array's weight ROM is ``nf*sf`` words of ``pe*simd*8`` bits
(``II`` words of ``multipliers * 8``), its parameter ROM ``nf`` words of ``pe * (bias bits +
31 + 6)`` (bias folded with the input zero point, ``m0``, ``shift``; a ``fully_connected``'s
parameter word is taken the same); a windowed stage's :class:`~rasterflow.hdl.window.ColumnScanner`
keeps ``Ky - 1`` lines of ``W`` pixels (shared line buffers once per group); an upscaling
``resize_nearest`` one line; a join's skew FIFOs ``depth - 1`` words of its input's pixel
payload, the depths from :func:`~rasterflow.hdl.top.graph_timing` over the stages' timings;
``softmax``'s exp table and ``logistic``'s lookup table. Placement follows Yosys'
``memory_libmap`` rule: a memory goes to the cheapest of block RAM (its best block shape,
:data:`MEMORY_LIBRARIES`), LUT RAM (ECP5 RAMs) or logic (ROM bits cost 1/16, RAM bits 1); ECP5
line memories of 128 words or more are ``DP16KD`` blocks as :mod:`rasterflow.hdl.bram`
builds them; a one-word memory is a constant or a register. The block counts match the
memories' shapes; Yosys' own choice may differ by a block or two near a cost tie.

*Logic* (rough: within a factor of about two): LUT4s (an iCE40 logic cell, an ECP5 LUT4 with
carry cells as two) from per-part constants (``LUTS_PER_*``) calibrated on the one CNN build
measured (``bench/results``: the YOLOv3-tiny block, 3x3x3 -> 16 conv at ``pe = 4, simd = 27``,
LeakyReLU, 2x2 pool: 20,149 LUT4 and 124 DSP blocks on the ULX3S = 108 products + 4
requantizers x 4 blocks; 33,751 logic cells on the iCEBreaker, whose 8 DSP blocks take two
requantizers), plus the LUT products and the memories left in LUTs. That build has no
operand multiplexers and few window bits: their constants are guesses, and they weigh most in
depthwise layers (a folded one chooses among all ``K*K*C`` window elements, whatever its
``pe``/``simd``). The board top (UART bridge, FIFOs) is not included. Flip-flops are not
estimated.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape

from .boards.build import Multiplier
from .boards.platforms import Board, get_board
from .errors import RasterflowError
from .hdl.arith import bounded_shape
from .hdl.bram import DP16KD_MIN_DEPTH, dp16kd_geometry
from .hdl.filters import SharedColumnScanner
from .hdl.graph import SequencedOutputs, frame_transfers
from .hdl.payload import (lanes_of, outputs_in_sequence, pixel_layout, pixel_stream_layout,
                          sequenced_format, transfers_per_line)
from .hdl.pool import MaxPoolUnit
from .hdl.reduce import pool_geometry
from .hdl.top import INPUT, graph_timing
from .pipeline import Node, Pipeline
from .stages import Bound
from .stages_cnn import Conv2DStage, DepthwiseConv2DStage, divisors

__all__ = ["REFERENCE_CLOCK_HZ", "MEMORY_LIBRARIES", "DoesNotFit", "MemoryNeed", "StageCost",
           "Usage", "LayerFold", "FoldReport", "Folding", "stage_costs", "place_memory",
           "device_usage", "assess", "fold", "refolded", "certain_overruns"]

#: The clock the report's frames per second are given at: a reference, not the board's Fmax
#: (which only a build measures).
REFERENCE_CLOCK_HZ = 100e6

# Logic per part, in LUT4s (see the module docstring for the calibration).
LUTS_PER_PRODUCT_LANE = 20       # a MAC lane's operand register/mux and adder-tree input
LUTS_PER_PE = 350                # accumulator, requantizer datapath, output collection
LUTS_PER_PRODUCT_BIT = 1.5       # a variable product in LUTs, per operand bit pair
LUTS_PER_REQUANT_LANE = 300      # a requantizer by a constant (activation, add, pool)
LUTS_PER_WINDOW_BIT = 0.5        # border multiplexers of a window's registers
LUTS_PER_MUX_INPUT_BIT = 0.5     # a MAC operand multiplexer, per bit of each input
LUTS_PER_STAGE = 150             # counters, schedule, handshakes, skid buffer
LUTS_PER_CHANNEL = 24            # a per-channel datapath (compare, add, clamp)
LUTS_PER_LUTRAM_CELL = 4         # an ECP5 TRELLIS_DPR16X4 (16 x 4 bits)
SOFTMAX_LUTS = 1500              # softmax's sum, normalization and reciprocal

#: Cost per bit of a memory left in logic, as Yosys' ``memory_libmap`` weighs it (its
#: defaults ``-logic-cost-rom 1/16``, ``-logic-cost-ram 1``).
ROM_LOGIC_COST = 1 / 16
RAM_LOGIC_COST = 1.0
#: Requantizer products: a 32-bit accumulator by a 31-bit ``m0`` from a ROM (signed 32 x 32).
REQUANT_PRODUCT = (32, 32)
INT8_PRODUCT = (8, 8)


@dataclass(frozen=True)
class _MemoryLibrary:
    """What ``memory_libmap`` may map a family's memories to: ``shapes`` ``(width, depth)`` of
    one block RAM, its ``block_cost``, and the LUT RAM cell ``(width, depth, cost)`` if any."""
    shapes: tuple
    block_cost: int
    lutram: tuple = None


#: Per family (``Family.name``), from Yosys' library files (``share/lattice/brams_16kd.txt``,
#: ``lutrams_trellis.txt``, ``share/ice40/brams.txt``).
MEMORY_LIBRARIES = {
    "ecp5": _MemoryLibrary(((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
                           128, (4, 16, 4)),
    "ice40": _MemoryLibrary(((2, 2048), (4, 1024), (8, 512), (16, 256)), 64),
}


class DoesNotFit(RasterflowError):
    """The design cannot fit the board, per the estimate; ``overruns`` has one message per
    resource."""
    def __init__(self, message, overruns):
        super().__init__(message)
        self.overruns = overruns


@dataclass(frozen=True)
class MemoryNeed:
    """``count`` memories of ``depth`` words of ``width`` bits: a ROM (``rom``) or a RAM;
    ``line`` for a window generator's line memory (built from ``DP16KD`` blocks on ECP5)."""
    what: str
    width: int
    depth: int
    rom: bool
    count: int = 1
    line: bool = False

    @property
    def bits(self):
        return self.width * self.depth * self.count


@dataclass(frozen=True)
class StageCost:
    """What one node of the hardware graph needs: ``products`` ``((a_bits, b_bits, count),
    ...)`` (variable x variable), ``memories`` and ``logic`` (LUT4s besides the products and
    memories that end up in LUTs)."""
    name: str
    op: str
    products: tuple = ()
    memories: tuple = ()
    logic: int = 0


# -- per stage ------------------------------------------------------------------------------

def _is_mac(stage):
    """Whether ``stage`` is a MAC array folded by ``pe``/``simd`` (its class's
    ``balanced_folding`` gives a folding)."""
    balanced = getattr(stage, "balanced_folding", None)
    return balanced is not None and balanced(stage.layer, 1, 1) is not None


def _pixel_bits(fmt, lanes=1):
    return Shape.cast(lanes_of(pixel_layout(fmt), lanes)).width


def _lines(bound, kernel_height):
    """The line memories of a window generator over the stage's input (none when it shares
    them: the shared scanner has them)."""
    if bound.share is not None or kernel_height < 2:
        return ()
    return (MemoryNeed("line buffers", _pixel_bits(bound.in_format, bound.lanes),
                       transfers_per_line(bound.width, bound.lanes), rom=False,
                       count=kernel_height - 1, line=True),)


def _window_logic(bound, kernel_height, kernel_width):
    bits = kernel_height * kernel_width * _pixel_bits(bound.in_format, bound.lanes)
    return round(bits * LUTS_PER_WINDOW_BIT)


def _bias_bits(stage):
    """Width of a MAC stage's bias with the input zero point folded in (``bias - in_zp *
    sum(w)`` per output channel), as its parameter ROM stores it."""
    weights = np.asarray(stage.arrays["weights"], dtype=np.int64)
    if isinstance(stage, DepthwiseConv2DStage):
        weights = np.moveaxis(weights, -1, 0)
    sums = weights.reshape(weights.shape[0], -1).sum(axis=1)
    folded = np.asarray(stage.arrays["bias"], dtype=np.int64) - int(stage.in_zp) * sums
    return bounded_shape(min(int(folded.min()), 0), max(int(folded.max()), 0)).width


def _operand_mux_inputs(stage, timing):
    """Window elements the MAC lanes' operand multiplexers choose from, over all lanes. A
    conv's (or dense's) lane ``s`` reads element ``j*simd + s`` at synapse fold ``j``
    whatever the PE, so ``simd`` shared operands choose among ``sf``; a depthwise lane reads
    a channel of its own per neuron fold, so each of ``pe*simd`` chooses among every step's
    (``II``), or ``sf`` with one neuron fold. A single choice is a wire."""
    pe, simd = stage.folding
    terms = timing.macs_per_output // stage.out_channels
    synapse_folds = -(-terms // simd)
    if not isinstance(stage, DepthwiseConv2DStage):
        return simd * synapse_folds if synapse_folds > 1 else 0
    choices = synapse_folds if pe >= stage.out_channels else timing.initiation_interval
    return pe * simd * choices if choices > 1 else 0


def _mac_cost(bound, timing):
    stage = bound.stage
    pe, _ = stage.folding
    neuron_folds = -(-stage.out_channels // pe)
    memories = [MemoryNeed("weights", timing.multipliers * 8, timing.initiation_interval,
                           rom=True),
                MemoryNeed("parameters", pe * (_bias_bits(stage) + 31 + 6), neuron_folds,
                           rom=True)]
    logic = (timing.multipliers * LUTS_PER_PRODUCT_LANE + pe * LUTS_PER_PE + LUTS_PER_STAGE +
             round(_operand_mux_inputs(stage, timing) * 8 * LUTS_PER_MUX_INPUT_BIT))
    if isinstance(stage, (Conv2DStage, DepthwiseConv2DStage)):
        memories += _lines(bound, stage.kernel)
        logic += _window_logic(bound, stage.kernel, stage.kernel)
    return StageCost(bound.name, stage.op,
                     ((*INT8_PRODUCT, timing.multipliers), (*REQUANT_PRODUCT, pe)),
                     tuple(memories), logic)


def _requant_cost(lanes_per_channel):
    def cost(bound, timing):
        channels = bound.out_format.channels
        return StageCost(bound.name, bound.stage.op,
                         logic=channels * lanes_per_channel * LUTS_PER_REQUANT_LANE +
                         LUTS_PER_STAGE)
    return cost


def _max_pool_cost(bound, timing):
    stage = bound.stage
    _, _, (kx, _), (ky, _), _ = MaxPoolUnit.geometry(bound.width, bound.height, stage.size,
                                                     stage.stride, stage.padding)
    logic = (_window_logic(bound, ky, kx) + 2 * bound.in_format.channels * LUTS_PER_CHANNEL +
             LUTS_PER_STAGE)
    return StageCost(bound.name, stage.op, memories=_lines(bound, ky), logic=logic)


def _global_pool_logic(channels):
    return channels * LUTS_PER_CHANNEL + LUTS_PER_REQUANT_LANE + LUTS_PER_STAGE


def _average_pool_cost(bound, timing):
    stage = bound.stage
    geometry = pool_geometry(bound.width, bound.height, size_h=stage.size_h,
                             size_w=stage.size_w, stride_h=stage.stride_h,
                             stride_w=stage.stride_w, padding=stage.padding)
    channels = bound.in_format.channels
    if geometry.covers_frame(bound.width, bound.height):
        return StageCost(bound.name, stage.op, logic=_global_pool_logic(channels))
    logic = (_window_logic(bound, geometry.kernel_y, geometry.kernel_x) +
             channels * LUTS_PER_REQUANT_LANE + LUTS_PER_STAGE)
    return StageCost(bound.name, stage.op, memories=_lines(bound, geometry.kernel_y),
                     logic=logic)


def _mean_cost(bound, timing):
    return StageCost(bound.name, bound.stage.op,
                     logic=_global_pool_logic(bound.in_format.channels))


def _softmax_cost(bound, timing):
    channels = bound.in_format.channels
    return StageCost(bound.name, bound.stage.op, ((*REQUANT_PRODUCT, 1),),
                     (MemoryNeed("exp table", 31, 256, rom=True),),
                     channels * LUTS_PER_CHANNEL + SOFTMAX_LUTS)


def _logistic_cost(bound, timing):
    channels = bound.in_format.channels
    # One table read by a port per channel: a copy per two read ports.
    table = MemoryNeed("lookup table", 8, 256, rom=True, count=-(-channels // 2))
    return StageCost(bound.name, bound.stage.op, memories=(table,), logic=LUTS_PER_STAGE)


def _resize_cost(bound, timing):
    # Upscaling replays rows from one line memory.
    lines = _lines(bound, 2) if bound.out_height > bound.height else ()
    return StageCost(bound.name, bound.stage.op, memories=lines,
                     logic=bound.in_format.channels * LUTS_PER_CHANNEL + LUTS_PER_STAGE)


def _generic_cost(bound, timing):
    """Any other stage: a per-channel datapath, and its window generator if it has one."""
    window = bound.stage.window(bound) if bound.stage.arity == 1 else None
    logic = bound.out_format.channels * bound.lanes * LUTS_PER_CHANNEL + LUTS_PER_STAGE
    if window is None:
        return StageCost(bound.name, bound.stage.op, logic=logic)
    logic += _window_logic(bound, window.kernel_height, window.kernel_width)
    return StageCost(bound.name, bound.stage.op, memories=_lines(bound, window.kernel_height),
                     logic=logic)


_OP_COSTS = {
    "leaky_relu": _requant_cost(2), "relu": _requant_cost(1), "relu6": _requant_cost(1),
    "relu_n1_to_1": _requant_cost(1), "quantized_add": _requant_cost(3),
    "max_pool": _max_pool_cost, "average_pool": _average_pool_cost, "mean": _mean_cost,
    "softmax": _softmax_cost, "logistic": _logistic_cost, "resize_nearest": _resize_cost,
}


def _bound_cost(bound, timing):
    if _is_mac(bound.stage):
        return _mac_cost(bound, timing)
    return _OP_COSTS.get(bound.stage.op, _generic_cost)(bound, timing)


# -- the graph ---------------------------------------------------------------------------------

def _graph(pipeline, bounds):
    """The hardware graph's nodes ``(name, inputs, item)`` with ``bounds`` (by name) in place
    of the pipeline's own."""
    return [(name, inputs, bounds.get(name, item) if isinstance(item, Bound) else item)
            for name, inputs, item in pipeline._graph()]


def _graph_plan(pipeline, graph, timings):
    """:func:`~rasterflow.hdl.top.graph_timing` of the graph with these stages."""
    entries = [(name, inputs, timings[name], (item.out_width, item.out_height))
               if isinstance(item, Bound) else (name, inputs, SharedColumnScanner.timing())
               for name, inputs, item in graph]
    return graph_timing(entries, pipeline.outputs, width=pipeline.width,
                        height=pipeline.height, lanes=pipeline.lanes)


def _skew_memories(pipeline, graph, timings):
    """``{node or "output": skew FIFO memories}`` of the joins, sized as
    :class:`~rasterflow.hdl.top.PipelineTop` sizes them (from the stages' timings)."""
    formats = {INPUT: pipeline.input_format}
    inputs_of = {"output": tuple(pipeline.outputs)}
    for name, inputs, item in graph:
        inputs_of[name] = inputs
        if isinstance(item, Bound):
            formats[name] = item.out_format
    plan = _graph_plan(pipeline, graph, timings)
    skews = {}
    for (key, position), depth in plan.skews.items():
        source = inputs_of[key][position]
        width = Shape.cast(pixel_stream_layout(formats[source], pipeline.lanes)).width
        skews.setdefault(key, []).append(
            MemoryNeed(f"skew buffer ({source})", width, depth - 1, rom=False))
    sizes = {name: _out_size(pipeline, name) for name in pipeline.outputs}
    if outputs_in_sequence(sizes.values()):
        width = Shape.cast(pixel_stream_layout(
            sequenced_format({n: formats[n] for n in pipeline.outputs}), pipeline.lanes)).width
        for name, depth in SequencedOutputs.buffer_depths(sizes, pipeline.lanes).items():
            skews.setdefault("output", []).append(
                MemoryNeed(f"output buffer ({name})", width, depth - 1, rom=False))
    return skews


def _out_size(pipeline, name):
    bound = pipeline.output(name)
    return bound.out_width, bound.out_height


def _shared_scanner_cost(pipeline, name, inputs, share):
    source = inputs[0]
    if source == INPUT:
        fmt, width = pipeline.input_format, pipeline.width
    else:
        bound = next(b for b in pipeline.bound if b.name == source)
        fmt, width = bound.out_format, bound.out_width
    lines = MemoryNeed("line buffers", _pixel_bits(fmt, pipeline.lanes),
                       transfers_per_line(width, pipeline.lanes), rom=False,
                       count=share.kernel_height - 1, line=True)
    return StageCost(name, "shared line buffers",
                     memories=(lines,) if share.kernel_height > 1 else (),
                     logic=LUTS_PER_STAGE)


def _design(pipeline, stages):
    """``(graph, timings, costs)`` of ``pipeline`` with ``stages`` (``{name: stage}``, may be
    empty) in place of its own: the hardware graph's nodes, each stage's timing by name, and
    a :class:`StageCost` per node (and ``"output"`` when several outputs are joined)."""
    bounds = {b.name: dataclasses.replace(b, stage=stages[b.name])
              for b in pipeline.bound if b.name in stages}
    graph = _graph(pipeline, bounds)
    timings = {name: item.stage.timing(item) for name, _, item in graph
               if isinstance(item, Bound)}
    skews = _skew_memories(pipeline, graph, timings)
    costs = []
    for name, inputs, item in graph:
        if isinstance(item, Bound):
            cost = _bound_cost(item, timings[name])
        else:
            cost = _shared_scanner_cost(pipeline, name, inputs, item)
        costs.append(dataclasses.replace(cost, memories=cost.memories +
                                         tuple(skews.get(name, ()))))
    if "output" in skews:
        costs.append(StageCost("output", "output join", memories=tuple(skews["output"])))
    return graph, timings, costs


def stage_costs(pipeline, stages=None):
    """A :class:`StageCost` per node of ``pipeline``'s hardware graph (stages, shared line
    buffers, and ``"output"`` when several outputs are joined), with ``stages`` (``{name:
    stage}``) in place of the pipeline's own."""
    return _design(pipeline, stages or {})[2]


# -- on a device -------------------------------------------------------------------------------

def _rom_luts(width, depth):
    """LUT4s of a ROM in logic: a LUT per 16 words of each bit, and a multiplexer tree."""
    return width * (2 * -(-depth // 16) - 1)


def _blocks(memory, library):
    return min(-(-memory.width // w) * -(-memory.depth // d) for w, d in library.shapes)


def _placements(memory, family):
    """``[(cost, blocks, luts)]`` of one of the memories, the options ``memory_libmap``
    weighs (hand-placed ``DP16KD`` line memories have one)."""
    if memory.line and family.line_memory_primitive == "dp16kd" and \
            memory.depth >= DP16KD_MIN_DEPTH:
        return [(0, dp16kd_geometry(memory.width, memory.depth)[1], 0)]
    library = MEMORY_LIBRARIES[family.name]
    blocks = _blocks(memory, library)
    bits = memory.width * memory.depth
    options = [(blocks * library.block_cost, blocks, 0)]
    if memory.rom:
        options.append((bits * ROM_LOGIC_COST, 0, _rom_luts(memory.width, memory.depth)))
    else:
        # Flip-flops, and their read multiplexers.
        options.append((bits * RAM_LOGIC_COST, 0, bits // 2))
        if library.lutram:
            width, depth, cost = library.lutram
            cells = -(-memory.width // width) * -(-memory.depth // depth)
            options.append((cells * cost, 0, cells * LUTS_PER_LUTRAM_CELL))
    return options


def place_memory(memory, family):
    """``(block RAMs, LUTs)`` of ``memory`` (all ``count`` of them) on ``family`` as synthesis
    would place it (see the module docstring); a one-word memory is a constant or a
    register."""
    if memory.depth <= 1:
        return 0, 0
    _, blocks, luts = min(_placements(memory, family))
    return blocks * memory.count, luts * memory.count


def _certainly_block_ram(memory, family):
    """Whether synthesis is sure to put ``memory`` in block RAM: hand-placed, or block RAM
    costing under half of every other option."""
    if memory.depth <= 1:
        return False
    options = _placements(memory, family)
    cost, blocks, _ = min(options)
    return blocks > 0 and all(other >= 2 * cost for other, b, _ in options if not b)


@dataclass(frozen=True)
class Usage:
    """Estimated use of ``board``: DSP blocks (``dsp``) and the variable products on them /
    in LUTs, block RAMs (``bram``), LUT4s (``logic``: ``product_luts`` of them for the LUT
    products, ``memory_luts`` for the memories in logic; ``stage_luts``, ``(name, LUT4s)``
    per node, most first, without the LUT products), and the memory bits (ROM, RAM, and
    those placed in block RAM)."""
    board: Board
    dsp: int
    products_on_dsp: int
    products_in_luts: int
    bram: int
    logic: int
    product_luts: int
    memory_luts: int
    stage_luts: tuple
    rom_bits: int
    ram_bits: int
    block_ram_bits: int

    @property
    def budget(self):
        return self.board.budget

    @property
    def block_ram_capacity(self):
        """Bits in the board's block RAM."""
        return self.budget["bram"] * self.board.family_info.bram_bits

    def overruns(self):
        """One message per resource over the board's budget (empty: it fits)."""
        messages = []
        if self.bram > self.budget["bram"]:
            messages.append(self._bram_overrun())
        if self.logic > self.budget["logic"]:
            messages.append(self._logic_overrun())
        return messages

    def _bram_overrun(self):
        name, capacity = self.board.name, self.block_ram_capacity
        blocks = f"{self.budget['bram']} x {_format_bits(self.board.family_info.bram_bits)}"
        if self.rom_bits > capacity:
            return (f"weights need {_format_bits(self.rom_bits)} of ROM; {name} has "
                    f"{_format_bits(capacity)} of block RAM ({blocks}): "
                    f"{_format_bits(self.rom_bits - capacity)} over")
        if self.block_ram_bits > capacity:
            return (f"the memories placed in block RAM need "
                    f"{_format_bits(self.block_ram_bits)}; {name} has "
                    f"{_format_bits(capacity)} ({blocks}): "
                    f"{_format_bits(self.block_ram_bits - capacity)} over")
        return (f"the memories need {self.bram} block RAMs for "
                f"{_format_bits(self.block_ram_bits)} (narrow or shallow memories leave "
                f"blocks part empty); {name} has {self.budget['bram']}: "
                f"{self.bram - self.budget['bram']} over")

    def _logic_overrun(self):
        largest = ", ".join(f"{name} {luts:,}" for name, luts in self.stage_luts[:3])
        return (f"logic needs about {self.logic:,} LUTs (a rough estimate; "
                f"{self.product_luts:,} of them for {self.products_in_luts:,} products beyond "
                f"the {self.budget['dsp']} DSP blocks, {self.memory_luts:,} for memories in "
                f"LUTs; the most: {largest}); {self.board.name} has "
                f"{self.budget['logic']:,}: {self.logic - self.budget['logic']:,} over")


def _format_bits(bits):
    for unit, scale, decimals in (("Mbit", 1 << 20, 2), ("Kbit", 1 << 10, 1)):
        if bits >= scale:
            value = bits / scale
            return f"{value:.{0 if value == round(value) else decimals}f} {unit}"
    return f"{bits} bit"


def _plan_products(costs, family, dsp_budget):
    """``(on DSP, in LUTs, DSP blocks, LUTs)`` of the variable products: the choice
    :func:`~rasterflow.boards.build.plan_multipliers` makes cell by cell (most operand bits
    per DSP block first, while the blocks last), made per group of equal products."""
    groups = [(Multiplier(cost.name, f"{a}x{b}", a, b, a + b), count)
              for cost in costs for a, b, count in cost.products if count]

    def lut_bits_per_block(group):
        blocks = group[0].dsp_blocks(family)
        return group[0].a_width * group[0].b_width / blocks if blocks else 0

    left = dsp_budget
    on_dsp = in_luts = luts = 0
    for product, count in sorted(groups, key=lut_bits_per_block, reverse=True):
        blocks = product.dsp_blocks(family)
        taken = min(count, left // blocks) if blocks else 0
        left -= taken * blocks
        on_dsp += taken
        in_luts += count - taken
        luts += (count - taken) * round(LUTS_PER_PRODUCT_BIT * product.a_width *
                                        product.b_width)
    return on_dsp, in_luts, dsp_budget - left, luts


def device_usage(costs, board):
    """The :class:`Usage` of the :class:`StageCost` ``costs`` on ``board``."""
    family = board.family_info
    on_dsp, in_luts, dsp, product_luts = _plan_products(costs, family, board.budget["dsp"])
    placed = [[(memory, *place_memory(memory, family)) for memory in cost.memories]
              for cost in costs]
    memories = [entry for entries in placed for entry in entries]
    stage_luts = sorted(((cost.name, cost.logic + sum(luts for _, _, luts in entries))
                         for cost, entries in zip(costs, placed)), key=lambda e: -e[1])
    memory_luts = sum(luts for _, _, luts in memories)
    return Usage(board, dsp, on_dsp, in_luts, sum(blocks for _, blocks, _ in memories),
                 sum(cost.logic for cost in costs) + product_luts + memory_luts,
                 product_luts, memory_luts, tuple(stage_luts),
                 sum(m.bits for m, _, _ in memories if m.rom),
                 sum(m.bits for m, _, _ in memories if not m.rom),
                 sum(m.bits for m, blocks, _ in memories if blocks))


# -- reports -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerFold:
    """One MAC stage's folding and what it costs per frame."""
    name: str
    op: str
    pe: int
    simd: int
    initiation_interval: int
    out_pixels: int
    multipliers: int

    @property
    def cycles(self):
        """Cycles per frame the stage's MAC array is busy."""
        return self.out_pixels * self.initiation_interval


@dataclass(frozen=True)
class FoldReport:
    """A design's cycles per frame (``frame_cycles``, its slowest stage's), its
    :class:`Usage` and its MAC layers."""
    frame_cycles: int
    usage: Usage
    layers: tuple

    @property
    def board(self):
        return self.usage.board

    @property
    def fits(self):
        return not self.usage.overruns()

    def fps(self, clock_hz=REFERENCE_CLOCK_HZ):
        """Frames per second at ``clock_hz``, one frame every ``frame_cycles`` cycles."""
        return clock_hz / self.frame_cycles

    def text(self, clock_hz=REFERENCE_CLOCK_HZ):
        """The report as a table."""
        u, board = self.usage, self.board
        budget = board.budget
        reference = (" (a reference clock, not the board's Fmax: a build measures that)"
                     if clock_hz == REFERENCE_CLOCK_HZ else "")
        lines = [
            f"{board.name} ({board.device}): B = {self.frame_cycles:,} cycles per frame; "
            f"{self.fps(clock_hz):,.1f} frames/s at {clock_hz / 1e6:g} MHz{reference}",
            f"{'resource':<12} {'estimate':>10} {'budget':>8} {'use':>5}",
            _resource_row("DSP blocks", u.dsp, budget["dsp"],
                          f"{u.products_on_dsp:,} variable products on them, "
                          f"{u.products_in_luts:,} in LUTs"),
            _resource_row("block RAM", u.bram, budget["bram"],
                          f"ROM {_format_bits(u.rom_bits)}, RAM {_format_bits(u.ram_bits)}; "
                          f"{_format_bits(u.block_ram_bits)} in block RAM"),
            _resource_row("logic (LUT4)", u.logic, budget["logic"],
                          "rough, within about 2x; without the board top"),
        ]
        if self.layers:
            lines.append(f"{'layer':<28} {'op':<18} {'pe':>5} {'simd':>5} {'II':>6} "
                         f"{'pixels':>7} {'cycles':>9} {'products':>8}")
            lines += [f"{layer.name:<28} {layer.op:<18} {layer.pe:>5} {layer.simd:>5} "
                      f"{layer.initiation_interval:>6} {layer.out_pixels:>7} "
                      f"{layer.cycles:>9,} {layer.multipliers:>8}" for layer in self.layers]
        return "\n".join(lines)


def _resource_row(name, used, available, note):
    return f"{name:<12} {used:>10,} {available:>8,} {used / available:>5.0%}  ({note})"


@dataclass(frozen=True)
class Folding:
    """:func:`fold`'s result: the MAC stages with their new ``pe``/``simd`` (``stages``, by
    name), the pipeline with them (``pipeline``) and its :class:`FoldReport`."""
    stages: dict
    pipeline: Pipeline
    report: FoldReport


def _board(board):
    return get_board(board) if isinstance(board, str) else board


def _frame_cycles(pipeline, graph, timings):
    """Cycles per frame of the slowest stage (as :func:`~rasterflow.hdl.top.graph_timing`
    paces the graph)."""
    return _graph_plan(pipeline, graph, timings).frame_cycles


def _layers(graph, timings):
    return tuple(LayerFold(name, item.stage.op, *item.stage.folding,
                           timings[name].initiation_interval,
                           item.out_width * item.out_height, timings[name].multipliers)
                 for name, _, item in graph
                 if isinstance(item, Bound) and _is_mac(item.stage))


def _report(pipeline, board, stages):
    graph, timings, costs = _design(pipeline, stages)
    return FoldReport(_frame_cycles(pipeline, graph, timings), device_usage(costs, board),
                      _layers(graph, timings))


def assess(pipeline, board):
    """The :class:`FoldReport` of ``pipeline`` as it is (its own ``pe``/``simd``) on
    ``board`` (a :class:`~rasterflow.boards.platforms.Board` or its name)."""
    return _report(pipeline, _board(board), {})


# -- folding -----------------------------------------------------------------------------------

class _Designs:
    """The designs of one pipeline at frame budgets: each MAC stage folded by its
    ``balanced_folding`` (the folded stages remembered, as building one checks its arrays)."""

    def __init__(self, pipeline, board):
        self.pipeline, self.board = pipeline, board
        self.macs = [b for b in pipeline.bound if _is_mac(b.stage)]
        self._stages = {}

    @staticmethod
    def pixels(bound):
        return bound.out_width * bound.out_height

    def budgets(self, floor):
        """Every budget from ``floor`` up at which some MAC stage's folding may change, in
        order; the last has every stage at ``pe = simd = 1``."""
        values = {floor}
        for b in self.macs:
            pixels = self.pixels(b)
            # With no folding in budget, balanced_folding gives the full array.
            channels, terms = b.stage.balanced_folding(b.stage.layer, pixels, 0)
            values.update(pixels * (terms // simd) * (channels // pe)
                          for pe in divisors(channels) for simd in divisors(terms))
        return sorted(v for v in values if v >= floor)

    def stages(self, budget):
        stages = {}
        for b in self.macs:
            pe, simd = b.stage.balanced_folding(b.stage.layer, self.pixels(b), budget)
            key = (b.name, pe, simd)
            if key not in self._stages:
                self._stages[key] = dataclasses.replace(b.stage, pe=pe, simd=simd)
            stages[b.name] = self._stages[key]
        return stages

    def report(self, budget):
        stages = self.stages(budget)
        return stages, _report(self.pipeline, self.board, stages)


def _frame_floor(pipeline):
    """The fewest cycles per frame whatever the folding: one per input transfer, and each
    stage's own (MAC stages: their input transfers)."""
    timings = {b.name: b.stage.timing(b) for b in pipeline.bound}
    floor = frame_transfers((pipeline.width, pipeline.height), pipeline.lanes)
    for b in pipeline.bound:
        floor = max(floor, frame_transfers((b.width, b.height), pipeline.lanes))
        if not _is_mac(b.stage):
            floor = max(floor, frame_transfers((b.out_width, b.out_height), pipeline.lanes) *
                        timings[b.name].initiation_interval)
    return floor


def fold(pipeline, board):
    """Choose the MAC stages' ``pe``/``simd`` for the most frames per second on ``board`` (a
    :class:`~rasterflow.boards.platforms.Board` or its name); see the module docstring.

    Returns a :class:`Folding`. Raises :class:`DoesNotFit` when even ``pe = simd = 1``
    everywhere does not fit.
    """
    board = _board(board)
    designs = _Designs(pipeline, board)
    budgets = designs.budgets(_frame_floor(pipeline))
    best = designs.report(budgets[-1])
    overruns = best[1].usage.overruns()
    if overruns:
        raise DoesNotFit(f"{pipeline.name} cannot fit {board.name} ({board.device}), even "
                         f"with every MAC layer at pe = simd = 1: " + "; ".join(overruns),
                         overruns)
    fitting, failing = len(budgets) - 1, -1
    while fitting - failing > 1:
        middle = (fitting + failing) // 2
        design = designs.report(budgets[middle])
        if design[1].fits:
            fitting, best = middle, design
        else:
            failing = middle
    stages, report = best
    return Folding(stages, refolded(pipeline, stages), report)


def refolded(pipeline, stages):
    """``pipeline`` with ``stages`` (``{name: stage}``) in place of its own."""
    nodes = [Node(node.name, stages.get(node.name, node.stage), node.inputs)
             for node in pipeline.spec_nodes]
    return Pipeline(pipeline.input, nodes, name=pipeline.name, outputs=pipeline.outputs,
                    model=pipeline.model)


def certain_overruns(pipeline, board):
    """What ``pipeline`` (as it is) is sure to exceed on ``board``, as messages: only what
    the model shows beyond doubt, the memory bits. Synthesis is sure to put a memory in block
    RAM when it is hand-placed or block RAM costs it under half of any other option; and a
    LUT4 holds at most 16 bits of memory, so the memories cannot fit when their bits exceed
    the block RAM's plus 16 per LUT."""
    board = _board(board)
    family = board.family_info
    costs = stage_costs(pipeline)
    memories = [memory for cost in costs for memory in cost.memories]
    capacity = board.budget["bram"] * family.bram_bits
    blocks = f"{board.budget['bram']} x {_format_bits(family.bram_bits)}"
    in_block_ram = sum(m.bits for m in memories if _certainly_block_ram(m, family))
    if in_block_ram > capacity:
        what = "weights" if all(m.rom for m in memories
                                if _certainly_block_ram(m, family)) else "memories"
        return [f"{what} that synthesis puts in block RAM need {_format_bits(in_block_ram)}; "
                f"{board.name} has {_format_bits(capacity)} of block RAM ({blocks}): "
                f"{_format_bits(in_block_ram - capacity)} over"]
    total = sum(m.bits for m in memories)
    anywhere = capacity + 16 * board.budget["logic"]
    if total > anywhere:
        return [f"memories need {_format_bits(total)}; {board.name} holds at most "
                f"{_format_bits(anywhere)} (block RAM {_format_bits(capacity)}, and 16 bits "
                f"in each of {board.budget['logic']:,} LUTs): "
                f"{_format_bits(total - anywhere)} over"]
    return []
