"""Streams that fork and join: the pieces of a pipeline shaped as a DAG.

A stream forks (:class:`Fork`) to several branches of different latency; the branches meet
again at a join (:class:`Join`), which takes one transfer from every branch in lockstep. So
that the fork never waits on the slow branch in steady state, each faster branch gets a
:class:`SkewBuffer` before the join, sized by :func:`skew_depth`.

Outputs whose frames differ in size cannot leave in lockstep: :class:`SequencedOutputs`
sends them one whole frame after another, buffering all but the first.

All three keep the stream rules by construction (proved in ``tests/test_formal_graph.py``):
``Fork`` and ``Join`` are combinational (zero latency; ``valid`` never depends on ``ready``),
``SkewBuffer`` is a FIFO whose ``o.valid`` and ``i.ready`` are registers.

Skew buffers in pixels
----------------------
:func:`skew_depth` counts cycles: it holds for *rigid* branches, which move one item per
cycle. A CNN branch is not rigid: a folded MAC array takes ``II`` cycles per output, a
stride or a pooling keeps a quarter of the positions, a resize repeats rows. There the buffer
is sized in items of the join's stream (:func:`paced_skew_depth`), from two facts:

* *Deadlock.* While the join waits for item ``n`` of its slowest branch ``A``, the fork feeds
  ``A`` only as long as every other branch ``B`` takes the same items; ``B`` keeps what it
  emits meanwhile in its buffer. ``A`` emits item ``n`` once it has the input transfer that
  item is *tied* to (:class:`~rasterflow.hdl.timing.Sampling`), and ``B`` cannot take that
  transfer before it has emitted its items tied to earlier ones. So ``B``'s buffer holds at
  least every item of ``B`` tied before ``A``'s item ``n``. Counted in transfers of the
  stream ``S`` where the branches part (``P`` transfers a frame), item ``n`` of a stream
  ``X`` is tied to transfer ``n * P_S / P_X + l`` of ``S``, ``l`` within bounds
  ``lo_X..hi_X`` that add up along the branch's stages (:func:`tie_bounds`: a stage's bounds
  in its own input transfers, scaled by ``P_S / P_stage_input``); the buffer needs
  ``(hi_A - lo_B) * P_join / P_S + 1`` items.
* *Throughput.* In steady state items move at the rate of the graph's slowest stage; a
  branch's registers hold their latency times that rate, which the buffer must also cover
  for the fork never to wait. Adding ``latency x rate`` to the bounds gives the *arrival*
  bounds, and the cycle rule of :func:`skew_depth` on them; for rigid branches at one item
  per cycle it is :func:`skew_depth` itself.
"""
import math
from fractions import Fraction

import numpy as np
from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .payload import (joined_stream_layout, lane, pixel_stream_signature, sequenced_format,
                      transfers_per_line)

__all__ = ["Fork", "Join", "SkewBuffer", "SequencedOutputs", "SKEW_LATENCY", "skew_depth",
           "joined_latency", "frame_transfers", "tie_bounds", "paced_skew_depth"]

#: Cycles a :class:`SkewBuffer` of depth 2 or more adds (input transfer to ``o.valid``).
SKEW_LATENCY = 2


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, not {value!r}")


class Fork(wiring.Component):
    """Broadcast stream ``i`` to ``n`` streams ``o[0]`` .. ``o[n-1]`` (an eager fork).

    Members: ``i`` (``In(stream.Signature(layout))``) and ``o``
    (``Out(stream.Signature(layout)).array(n)``: a list of ``n`` stream interfaces, ports
    ``o__0__valid``, ``o__1__valid``, ...).

    Each output shows the input item until it has taken it: a *taken* flip-flop per output
    remembers a transfer made while another output still stalls, so
    ``o[k].valid = i.valid & ~taken[k]`` depends on no ``ready``, and no output sees an item
    twice. ``i.ready`` is high when every output is either ready now or has taken the item;
    that input transfer clears the flags.

    Latency 0 (``o[k]`` is a view of ``i``). Throughput one item per cycle when every output
    is ready. Memory: ``n`` flip-flops. ``i.ready`` is one AND of the outputs' readies (and
    flags): a :class:`SkewBuffer` on a branch also cuts that combinational path.

    Parameters
    ----------
    layout : shape-castable
        Payload of the input and of every output.
    n : int
        Number of outputs, at least 2.
    """

    def __init__(self, layout, n):
        _check_int("n", n, 2)
        self.n = n
        self.latency = 0
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout)).array(n)})

    def elaborate(self, platform):
        m = Module()
        taken = Signal(self.n)
        done = Signal(self.n)   # output k has the current item, or takes it in this cycle
        for k, out in enumerate(self.o):
            m.d.comb += [out.valid.eq(self.i.valid & ~taken[k]),
                         out.payload.eq(self.i.payload),
                         done[k].eq(taken[k] | out.ready)]
        m.d.comb += self.i.ready.eq(done.all())
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += taken.eq(done)
        return m


def _check_formats(formats):
    """``formats``: at least two inputs, ``{identifier: PixelFormat}``."""
    if not isinstance(formats, dict) or len(formats) < 2:
        raise ValueError(f"formats must be a dict of at least 2 inputs, not {formats!r}")
    for name, fmt in formats.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"input names must be Python identifiers, not {name!r}")
        if not isinstance(fmt, PixelFormat):
            raise ValueError(f"format of input {name!r} must be a PixelFormat, not {fmt!r}")


class Join(wiring.Component):
    """Pixel streams ``i_<name>``, one per entry of ``formats``, taken in lockstep into ``o``.

    Members: ``i_<name>`` (``In(pixel_stream_signature(formats[name], lanes))``) for each
    name of ``formats``, in its order, and ``o`` (``Out(joined_stream_signature(formats,
    lanes))``). :attr:`names` lists the names; ``getattr(join, f"i_{name}")`` is an input.

    ``o.valid`` is the AND of the input valids; input ``k`` is ready when ``o.ready`` and
    every other input is valid, so all inputs and the output transfer in the same cycle.
    ``o.payload.data[lane][name]`` is input ``name``'s pixel of that lane.

    ``sof``/``eol`` are those of the first input. The branches of a join come from one fork
    and keep every item in order, so item ``n`` carries the same markers on every input; the
    join does not compare them (an in-circuit check would land in synthesis and formal
    netlists too).

    Latency 0 (combinational). Throughput one transfer per cycle when every input is valid
    and the output ready. Memory: none.

    Parameters
    ----------
    formats : dict of str to PixelFormat
        At least two inputs: name (a Python identifier) -> pixel format.
    lanes : int
        Pixels per transfer on every input and on the output, at least 1.
    """

    def __init__(self, formats, lanes=1):
        _check_formats(formats)
        _check_int("lanes", lanes, 1)
        self.names = tuple(formats)
        self.lanes = lanes
        self.latency = 0
        members = {f"i_{name}": In(pixel_stream_signature(fmt, lanes))
                   for name, fmt in formats.items()}
        members["o"] = Out(stream.Signature(joined_stream_layout(formats, lanes)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        inputs = [getattr(self, f"i_{name}") for name in self.names]
        valids = Signal(len(inputs))
        m.d.comb += [valids[k].eq(port.valid) for k, port in enumerate(inputs)]
        m.d.comb += self.o.valid.eq(valids.all())
        for k, (name, port) in enumerate(zip(self.names, inputs)):
            others = [valids[j] for j in range(len(inputs)) if j != k]
            m.d.comb += port.ready.eq(self.o.ready & Cat(others).all())
            for j in range(self.lanes):
                m.d.comb += lane(self.o.payload.data, j, self.lanes)[name].eq(
                    lane(port.payload.data, j, self.lanes))
        m.d.comb += [self.o.payload.sof.eq(inputs[0].payload.sof),
                     self.o.payload.eol.eq(inputs[0].payload.eol)]
        return m


class SkewBuffer(wiring.Component):
    """A stream FIFO of ``depth`` entries that aligns a fast branch with a slow one.

    Members: ``i`` (``In(stream.Signature(layout))``) and ``o``
    (``Out(stream.Signature(layout))``). A stream wrapper around Amaranth's
    :class:`~amaranth.lib.fifo.SyncFIFOBuffered`: a memory of ``depth - 1`` entries with a
    synchronous read port (block RAM when deep) followed by an output register.
    ``o.valid`` (the output register's flag) and ``i.ready`` ("memory not full") are
    registers, so the buffer also cuts the combinational ``ready`` path.

    Latency: :data:`SKEW_LATENCY` = 2 cycles from an input transfer to the item being valid at
    ``o`` (write, then read into the output register) for ``depth >= 2``; 1 for
    ``depth == 1`` (a single register). Throughput: one item per cycle for ``depth >= 3``;
    depths 1 and 2 take one item every other cycle, because "memory not full" does not count
    the entry read out in the same cycle. :func:`skew_depth` only gives depths of 3 or more.
    Memory: ``depth x width`` bits (``(depth - 1) x width`` memory plus the output register).

    Parameters
    ----------
    layout : shape-castable
        Payload of ``i`` and ``o``.
    depth : int
        Entries, at least 1.
    """

    def __init__(self, layout, depth):
        _check_int("depth", depth, 1)
        self.depth = depth
        self.latency = SKEW_LATENCY if depth >= 2 else 1
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=self.depth)
        m.d.comb += [fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid),
                     self.i.ready.eq(fifo.w_rdy),
                     self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.o.ready)]
        return m


class SequencedOutputs(wiring.Component):
    """Pixel streams whose frames differ in size, sent one after another as one stream: for
    each frame, ``o`` carries the whole frame of the first input, then of the second, ...

    Members: ``i_<name>`` (``In(pixel_stream_signature(formats[name], lanes))``) for each
    name of ``formats``, in its order (:attr:`names`), and ``o``
    (``Out(pixel_stream_signature(sequenced_format(formats), lanes))``): each pixel in the
    most channels of any input, a narrower input's upper channels zero. Every frame keeps
    its own markers: ``sof`` on its first transfer, ``eol`` on its lines' last.

    Every input but the first passes through a :class:`SkewBuffer` (Amaranth's
    :class:`~amaranth.lib.fifo.SyncFIFOBuffered`) of one whole frame of it
    (:attr:`fifo_depths`: ``ceil(W_k / P) * H_k`` entries), so no input is stalled by the
    sequencing while its frame is produced, whatever the order in which the frames arrive.
    A register names the input being sent and a counter its transfers; ``o`` shows that
    input (``o.valid`` is its ``valid``: never depends on ``ready``) and only that input sees
    ``o.ready``. After its frame's last transfer the next input is sent.

    *No deadlock.* While ``o`` waits for input ``j`` of frame ``f``, an input ``k`` is
    stalled only on an item of a later frame: frame ``f`` of the inputs before ``j`` has
    left, and a buffered input holds nothing older than frame ``f`` (the sequence took it
    all before it moved to frame ``f``), so its frame ``f`` fits in its one-frame buffer.
    A stage emits an item of frame ``f + 1`` only after it has taken all of frame ``f`` from
    its inputs (it completes a frame before the next), streams keep their order, and a fork
    offers its next item only once every
    branch has taken the current one: so every stream feeding a stalled input has delivered
    all of frame ``f`` to all of its readers, and the stall holds back no frame ``f`` item.
    Every stage completes a frame from that frame's input alone, so input ``j`` completes
    frame ``f``. (Without the buffers it deadlocks: when the first output's frame comes at
    the end of the input frame and the second's throughout, the second's items stall its
    producer, the fork feeding both and so the first.)

    Latency 0 from the first input (``o`` is a view of it); a buffered input's item reaches
    ``o`` :data:`SKEW_LATENCY` cycles after its transfer at the soonest, and as late as the
    sequence comes to it. Throughput: one transfer per cycle, ``sum_k ceil(W_k / P) * H_k``
    transfers a frame. The first input is not buffered: its next frame waits while the
    others' frames drain, and if its producer has items of it meanwhile, it stalls (and
    what feeds it) for up to ``sum_{k>=1} ceil(W_k / P) * H_k`` cycles a frame: not at all
    when its next frame starts after the others have drained (YOLO-tiny's heads: the 16
    pixels of the 4x4 head leave long before the 8x8 head's next frame), about an input
    frame for a max pool 2/2 first and a relu of the whole frame second.
    Memory: ``fifo_depths[k] x payload_k`` bits per buffered input (each in its own format),
    the transfer counter and the input register.

    Parameters
    ----------
    formats : dict of str to PixelFormat
        At least two inputs: name (a Python identifier) -> pixel format, in the order they
        are sent; one dtype for all.
    sizes : dict of str to ``(width, height)``
        Each input's frame size.
    lanes : int
        Pixels per transfer, at least 1.
    """

    #: Cycles from the first input to ``o`` (a view of it).
    latency = 0

    def __init__(self, formats, sizes, lanes=1):
        _check_formats(formats)
        if not isinstance(sizes, dict) or set(sizes) != set(formats):
            raise ValueError(f"sizes must give the (width, height) of every input "
                             f"({', '.join(formats)}), not {sizes!r}")
        for name, size in sizes.items():
            if not isinstance(size, tuple) or len(size) != 2:
                raise ValueError(f"size of input {name!r} must be (width, height), "
                                 f"not {size!r}")
            for value in size:
                _check_int(f"a dimension of input {name!r}", value, 1)
        _check_int("lanes", lanes, 1)
        self.names = tuple(formats)
        self.formats = dict(formats)
        self.lanes = lanes
        self.format = sequenced_format(formats)
        self.transfers = {name: frame_transfers(sizes[name], lanes) for name in self.names}
        self.fifo_depths = self.buffer_depths({name: sizes[name] for name in self.names}, lanes)
        members = {f"i_{name}": In(pixel_stream_signature(fmt, lanes))
                   for name, fmt in formats.items()}
        members["o"] = Out(pixel_stream_signature(self.format, lanes))
        super().__init__(members)

    @staticmethod
    def buffer_depths(sizes, lanes=1):
        """The entries of each buffered input's frame buffer (every input but the first):
        its frame's transfers. ``sizes``: name -> ``(width, height)``, in the inputs'
        order (for planning memories without building the component)."""
        return {name: frame_transfers(size, lanes) for name, size in list(sizes.items())[1:]}

    def elaborate(self, platform):
        m = Module()
        sources = [self._buffered(m, name) for name in self.names]
        current = Signal(range(len(self.names)))
        position = Signal(range(max(self.transfers.values())))
        with m.Switch(current):
            for k, (name, source) in enumerate(zip(self.names, sources)):
                with m.Case(k):
                    self._send(m, source)
                    with m.If(self.o.valid & self.o.ready):
                        with m.If(position == self.transfers[name] - 1):
                            m.d.sync += [position.eq(0),
                                         current.eq((k + 1) % len(self.names))]
                        with m.Else():
                            m.d.sync += position.eq(position + 1)
        return m

    def _buffered(self, m, name):
        """Input ``name``'s stream as the sequence reads it: through its one-frame buffer,
        except for the first input."""
        port = wiring.flipped(getattr(self, f"i_{name}"))
        if name not in self.fifo_depths:
            return port
        fifo = SkewBuffer(port.payload.shape(), self.fifo_depths[name])
        m.submodules[f"frame_{name}"] = fifo
        wiring.connect(m, port, fifo.i)
        return fifo.o

    def _send(self, m, source):
        """Show ``source`` on ``o``, its channels zero-extended to ``o``'s (an array of
        channels is a plain bit vector, channel 0 at the LSB)."""
        m.d.comb += [self.o.valid.eq(source.valid), source.ready.eq(self.o.ready),
                     self.o.payload.sof.eq(source.payload.sof),
                     self.o.payload.eol.eq(source.payload.eol)]
        for j in range(self.lanes):
            m.d.comb += lane(self.o.payload.data, j, self.lanes).as_value().eq(
                lane(source.payload.data, j, self.lanes).as_value())


def _check_latencies(branch_latencies):
    if not isinstance(branch_latencies, (list, tuple)) or len(branch_latencies) < 2:
        raise ValueError(f"branch_latencies must be a list of at least 2 latencies, "
                         f"not {branch_latencies!r}")
    for latency in branch_latencies:
        _check_int("a branch latency", latency, 0)


def joined_latency(branch_latencies):
    """Cycles from a fork transfer to the join transfer of the same item, unstalled, once
    every faster branch has its :func:`skew_depth` buffer.

    The slowest branch's latency, unless some branch is faster than the slowest by less than
    a :class:`SkewBuffer`'s own latency (by 1 cycle): buffering it would make it the slowest,
    so every branch is buffered and the join waits :data:`SKEW_LATENCY` cycles more.
    """
    _check_latencies(branch_latencies)
    slowest = max(branch_latencies)
    if any(0 < slowest - latency < SKEW_LATENCY for latency in branch_latencies):
        return slowest + SKEW_LATENCY
    return slowest


def skew_depth(branch_latencies):
    """Depths of the :class:`SkewBuffer` before a join on each branch (0: no buffer).

    ``branch_latencies[k]`` = ``L_k``: cycles from the fork's transfer of an item into branch
    ``k`` to that item being valid at the branch's output, with nothing stalled (for this
    project's stages ``latency + schedule_delay``, summed along the branch, registers and skid
    buffers included). With ``T`` = :func:`joined_latency` (``max L_k``, or ``max L_k + 2``
    when some branch is exactly 1 cycle faster than the slowest)::

        depth_k = 0               if L_k == T
        depth_k = T - L_k + 1     otherwise (always >= 3)

    each buffer sitting at the end of its branch, right before the join.

    Why: in steady state one item per cycle forks and joins, ``T`` cycles apart, so each
    branch has ``T`` items in flight; branch ``k`` itself holds ``L_k`` of them and its buffer
    the other ``T - L_k``: one in the FIFO's output register, ``T - L_k - 1`` in its memory of
    ``depth - 1`` entries. The FIFO takes a new item only while that memory is not full, not
    counting the entry read out in the same cycle, hence ``T - L_k - 1 < depth - 1``. With one
    entry fewer the branch stalls every few cycles and the fork with it: the join no longer
    moves every cycle (``tests/test_graph_hw.py`` measures both on register delay lines).

    Assumption: each branch is *rigid*, like a stall-all register pipeline: item ``n`` leaves
    exactly ``L_k`` cycles after it entered, for every ``n``, and the branch holds no more
    than ``L_k`` items when its output stalls. A branch that buffers more on its own, or
    whose latency varies (a window stage's line buffers fill at a frame's start and drain at
    its end) is outside this derivation and needs its own check.
    """
    target = joined_latency(branch_latencies)
    return [0 if latency == target else target - latency + 1 for latency in branch_latencies]


def frame_transfers(size, lanes=1):
    """Transfers of a ``(width, height)`` frame at ``lanes`` pixels per transfer."""
    width, height = size
    return transfers_per_line(width, lanes) * height


#: Output transfers :func:`tie_bounds` looks at together (bounds its memory).
_TIE_CHUNK = 1 << 20


def tie_bounds(timing, in_size, out_size, lanes=1):
    """``(lo, hi)``: over a frame's output transfers ``n``, the least and the greatest
    ``tie(n) - n * P_i / P_o`` of a stage, in its input transfers (exact fractions).

    ``tie`` is as :class:`~rasterflow.hdl.timing.Sampling` defines it from ``timing``'s
    sampling; ``P_i``, ``P_o``: the transfers of an input and an output frame
    (``in_size``, ``out_size``: ``(width, height)``). Without a sampling, a stage that keeps
    the frame size has ``lo = hi = schedule_delay``; one that changes it is taken to need
    any transfer of its input frame for any output (no later one: every stage completes a
    frame from that frame), the widest bounds there are.
    """
    p_in, p_out = frame_transfers(in_size, lanes), frame_transfers(out_size, lanes)
    sampling = timing.sampling
    if sampling is None:
        if tuple(in_size) == tuple(out_size):
            return Fraction(timing.schedule_delay), Fraction(timing.schedule_delay)
        return -1 - Fraction((p_out - 1) * p_in, p_out), Fraction(p_in - 1)
    if sampling.out_size != tuple(out_size):
        raise ValueError(f"the sampling describes a {sampling.out_size} frame, not "
                         f"{tuple(out_size)}")
    groups = transfers_per_line(out_size[0], lanes)
    last_pixel = np.minimum(np.arange(groups) * lanes + lanes - 1, out_size[0] - 1)
    columns = np.asarray(sampling.cols, dtype=np.int64)[last_pixel] // lanes
    rows = np.asarray(sampling.rows, dtype=np.int64) * transfers_per_line(in_size[0], lanes)
    lo, hi = _scaled_tie_extremes(rows, columns, sampling.lead, p_in, p_out)
    return Fraction(lo, p_out), Fraction(hi, p_out)


def _scaled_tie_extremes(rows, columns, lead, p_in, p_out):
    """The least and greatest ``(tie(n) - n * p_in / p_out) * p_out`` (integers) of output
    transfer ``n`` in row ``r`` and column ``c`` tied to ``rows[r] + columns[c]``, or to the
    previous row's last (rows and columns only grow), plus ``lead``."""
    previous = np.concatenate(([np.iinfo(np.int64).min // 2], rows[:-1] + columns[-1]))
    lo = hi = None
    step = max(1, _TIE_CHUNK // len(columns))
    for start in range(0, len(rows), step):
        chunk = slice(start, start + step)
        ties = np.maximum(rows[chunk, None] + columns[None, :], previous[chunk, None])
        n = np.arange(start * len(columns), start * len(columns) + ties.size)
        scaled = (ties.reshape(-1) + lead) * p_out - n * p_in
        lo = int(scaled.min()) if lo is None else min(lo, int(scaled.min()))
        hi = int(scaled.max()) if hi is None else max(hi, int(scaled.max()))
    return lo, hi


def _buffer(items):
    """A buffer covering a gap of ``items``: one entry more, and at least 3 (one item per
    cycle; see :class:`SkewBuffer`)."""
    return max(3, math.ceil(items) + 1)


def _gaps(late, early):
    """Per branch ``k``: how far the other branches' latest items may trail ``k``'s
    earliest."""
    return [max(late[:k] + late[k + 1:]) - early[k] for k in range(len(late))]


def paced_skew_depth(arrivals, ties, skew_items):
    """Depths of the :class:`SkewBuffer` before a join on each branch (0: no buffer), for
    branches that are not rigid (see the module docstring).

    Parameters
    ----------
    arrivals : list of ``(early, late)``
        Per branch, in items of the join's stream: bounds of when item ``n`` arrives, less
        ``n`` (its tie bounds plus its registers' latency at the steady rate).
    ties : list of ``(early, late)``
        Per branch, the tie bounds alone, in the same unit.
    skew_items : number
        A :class:`SkewBuffer`'s own latency in items (``SKEW_LATENCY`` x the rate).

    Each branch ``k`` gets what the cycle rule of :func:`skew_depth` gives on the arrivals
    (``late`` of the others against ``early`` of ``k``; every branch buffered when one trails
    another by less than ``skew_items``), and no less than the deadlock bound: one more than
    the other branches' latest tie less ``k``'s earliest.
    """
    late, early = [a[1] for a in arrivals], [a[0] for a in arrivals]
    gaps = _gaps(late, early)
    if any(0 < gap < skew_items for gap in gaps):
        top = max(late) + skew_items
        depths = [_buffer(top - e) for e in early]
    else:
        depths = [_buffer(gap) if gap > 0 else 0 for gap in gaps]
    deadlock = _gaps([t[1] for t in ties], [t[0] for t in ties])
    return [max(depth, _buffer(gap) if gap > 0 else 0) for depth, gap in zip(depths, deadlock)]
