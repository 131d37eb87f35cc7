"""Sliding-window generation: line buffers, border handling, back-to-back frames.

A ``Ky x Kx`` window over a ``W x H`` raster stream is built in two streaming steps:

:class:`ColumnScanner`
    Keeps the last ``Ky - 1`` lines in block RAM and, once per *tick*, emits the image column
    under the read pointer with the vertical border already applied (``Ky`` pixels).
:class:`RowWindow`
    Shifts those columns through a ``Kx``-deep register and, for every output pixel, selects
    the ``Kx`` columns of its window with the horizontal border applied.

Between the two a column may be reduced (a separable filter's vertical pass, a vertical
min/max), so a separable ``Kx + Ky`` datapath shares the same line buffers and border logic.

Schedule
--------
Output pixel ``(y, x)`` of a frame is complete once input pixel ``(y + hy, x + hx)`` has
arrived (``hy = Ky // 2``, ``hx = Kx // 2``). The scanner's read pointer walks a virtual
timeline one tick per input pixel; the tick at input position ``(r, c)`` reads column ``c``
of the lines for output row ``r - hy`` and, through :class:`RowWindow`, completes output
``(r - hy, c - hx)`` (wrapping to the previous row when ``c < hx``).

The first ``hy`` rows of a frame's timeline complete no output of that frame: they finish the
last ``hy`` rows of the *previous* frame, which need border handling, not new input. These
ticks run whether or not the next frame's pixels arrive; when they do arrive, they are written
into lines the previous frame no longer needs. This is how frames stream back to back with no
blanking, and how the last frame drains with no further input, in ``Ky - 1`` lines of memory.
The last ``hx`` outputs of a frame are completed by the ticks of the next frame's row ``hy``;
when that frame is not there yet, the scanner *drains* them with ``hx`` ticks that shift the
row window without input.
"""
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .bram import line_memory
from .payload import lane, lanes_of, pixel_layout, pixel_stream_signature, transfers_per_line
from .stall import payload_register

__all__ = ["BORDERS", "border_source", "ColumnScanner", "RowWindow",
           "column_stream_layout", "window_stream_layout", "check_window_geometry",
           "check_lanes", "MAX_LANES", "drain_ticks", "window_schedule"]

BORDERS = ("constant", "replicate", "reflect", "reflect101")

MAX_DIMENSION = 4096
MAX_KERNEL = 15


def border_source(i, n, border):
    """Index of the in-image sample that stands at virtual index ``i`` of an axis of ``n``.

    Returns ``None`` for ``constant`` borders outside the image. The formulas are the
    definitions of the modes (``aaa|abcd|ddd``, ``cba|abcd|dcb``, ``dcb|abcd|cba``), written
    here for elaboration-time tables; they hold for ``|i - clamp(i)| < n``, which the
    ``W, H >= K // 2 + 1`` rule guarantees.
    """
    if 0 <= i < n:
        return i
    if border == "constant":
        return None
    if border == "replicate":
        return 0 if i < 0 else n - 1
    if border == "reflect":
        return -i - 1 if i < 0 else 2 * n - 1 - i
    if border == "reflect101":
        return -i if i < 0 else 2 * n - 2 - i
    raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")


#: Pixels per transfer the window generator supports.
MAX_LANES = 8


def check_lanes(lanes):
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be an integer in 1..{MAX_LANES}, not {lanes!r}")


def check_window_geometry(width, height, kernel_width, kernel_height, border):
    for name, k in (("kernel_width", kernel_width), ("kernel_height", kernel_height)):
        if not isinstance(k, int) or k < 1 or k > MAX_KERNEL or k % 2 == 0:
            raise ValueError(f"{name} must be an odd integer in 1..{MAX_KERNEL}, not {k!r}")
    for name, n, k in (("width", width, kernel_width), ("height", height, kernel_height)):
        if not isinstance(n, int) or not k // 2 + 1 <= n <= MAX_DIMENSION:
            raise ValueError(f"{name} must be an integer in {k // 2 + 1}..{MAX_DIMENSION} "
                             f"for a {k}-tap window, not {n!r}")
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")


def drain_ticks(kernel_width, lanes):
    """Ticks after a line's last transfer that finish its windows: ``ceil((Kx // 2) / P)``."""
    return -(-(kernel_width // 2) // lanes)


def window_schedule(kernel_height, groups, drain):
    """Transfers between a frame's last input and its last window: the ``Ky // 2`` lines
    below the last one (``groups`` transfers each) and the ``drain`` ticks of the last line."""
    return (kernel_height // 2) * groups + drain


def column_stream_layout(column_shape):
    """Payload between :class:`ColumnScanner` and :class:`RowWindow`: a column and an emit flag.

    ``emit`` is set on ticks that complete an output pixel; every transfer shifts the row window.
    """
    return data.StructLayout({"column": column_shape, "emit": 1})


def window_stream_layout(element_shape, count, lanes=1):
    """Payload of :class:`RowWindow`'s output: ``window[dx]`` (``window[p][dx]`` for lane
    ``p`` when there are several) is the column at offset ``dx - Kx//2``."""
    return data.StructLayout({
        "window": lanes_of(data.ArrayLayout(element_shape, count), lanes),
        "sof": 1,
        "eol": 1,
    })


def _membership(value, members, limit):
    """Hardware test of ``value in members`` for ``value`` in ``0..limit-1``: one comparison
    for an empty, full or contiguous set, else a few equalities."""
    members = sorted(members)
    if not members:
        return Const(0)
    if len(members) == limit:
        return Const(1)
    lo, hi = members[0], members[-1]
    if hi - lo + 1 == len(members):
        test = Const(1)
        if lo > 0:
            test = test & (value >= lo)
        if hi < limit - 1:
            test = test & (value <= hi)
        return test
    result = Const(0)
    for v in members:
        result = result | (value == v)
    return result


class RasterCounter:
    """Raster position ``(x, y)`` whose comparisons with constants are registers.

    Each flag is loaded, whenever the position moves, with its value for the *next*
    position, computed from the current one; logic that reads the flags starts from
    registers instead of from a comparator of ``x`` or ``y``. Create every flag before
    calling :meth:`advance`.
    """
    def __init__(self, m, width, height, name):
        self._m = m
        self.width, self.height = width, height
        self._name = name
        self.x = Signal(range(width), name=f"{name}_x")
        self.y = Signal(range(height), name=f"{name}_y")
        self._col_flags = []
        self._row_values = []
        self._position_flags = []
        self.last_col = self.col_flag("last_col", lambda c: c == width - 1)
        self.last_row = self.row_value("last_row", lambda r: int(r == height - 1), 1)

    def col_flag(self, name, predicate):
        flag = Signal(name=f"{self._name}_{name}", init=int(predicate(0)))
        self._col_flags.append((flag, predicate))
        return flag

    def row_value(self, name, function, limit):
        """A register holding ``function(y)``, an integer in ``0..limit``."""
        reg = Signal(range(limit + 1), name=f"{self._name}_{name}", init=function(0))
        self._row_values.append((reg, function))
        return reg

    def row_flag(self, name, predicate):
        return self.row_value(name, lambda r: int(predicate(r)), 1)

    def col_onehot(self, name, columns):
        """``{c: flag}``: registers set exactly while ``x == c``, for each ``c`` in ``columns``.
        A flag whose column follows another's takes that flag's value when ``x`` steps, so a
        run of adjacent columns costs one comparator."""
        columns = sorted(set(columns))
        flags = {c: Signal(name=f"{self._name}_{name}{c}", init=int(c == 0)) for c in columns}
        for c, flag in flags.items():
            if c == 0:
                within = Const(0)
            elif c - 1 in flags:
                within = flags[c - 1]
            else:
                within = self.col_flag(f"{name}{c}_before", lambda x, c=c: x == c - 1)
            self._position_flags.append((flag, within, Const(int(c == 0))))
        return flags

    def position_flag(self, name, row, col):
        """A register set exactly while the position is ``(row, col)``; its next value is one
        AND of two other flags, so it costs no comparator."""
        flag = Signal(name=f"{self._name}_{name}", init=int(row == 0 and col == 0))
        # Next position (y, x + 1) within a line, (y + 1, 0) after its last column.
        within = (self.col_flag(f"{name}_col_before", lambda c: c == col - 1)
                  & self.row_flag(f"{name}_row", lambda r: r == row)) if col else Const(0)
        after_line = (self.row_flag(f"{name}_row_before",
                                    lambda r: (r + 1) % self.height == row)
                      if col == 0 else Const(0))
        self._position_flags.append((flag, within, after_line))
        return flag

    def advance(self, condition):
        """Move to the next raster position in cycles where ``condition`` holds.

        Every register here loads under ``condition`` alone: the choices between "next
        column" and "next line" (and the wrap to the frame start) are written as gates, not
        as multiplexers with constant or feedback inputs, which Yosys would turn into reset
        and enable pins whose logic then starts after ``condition``'s. The row values of the
        next line are computed ahead into registers, since they are needed no sooner than
        ``width`` cycles after ``y`` changes: the tests of ``y`` and the values from them
        take a register stage each (from three columns on; one stage with two), so no
        comparator of ``y`` stands in front of them either.
        """
        m, width, height = self._m, self.width, self.height
        last_col, last_row = self.last_col, self.last_row
        # The rows whose next-row value is not the most common one, tested one by one.
        next_values = [(reg, fn, *self._next_row_values(fn)) for reg, fn in self._row_values]
        rows = sorted({v for *_, uncommon in next_values for v in uncommon})
        at_row = {}
        for v in rows:
            at_row[v] = Signal(name=f"{self._name}_y_is{v}", init=int(v == 0))
            if width >= 3:
                m.d.sync += at_row[v].eq(self.y == v)
            else:
                m.d.comb += at_row[v].eq(self.y == v)
        next_line = []
        for reg, fn, common, uncommon in next_values:
            upcoming = Signal.like(reg, name=f"{reg.name}_next",
                                   init=fn(1 % height) if width >= 2 else 0)
            value = _from_row_flags(common, uncommon, at_row)
            if width >= 2:
                m.d.sync += upcoming.eq(value)
            else:
                m.d.comb += upcoming.eq(value)
            next_line.append((reg, _choose(last_row, fn(0), upcoming)))
        with m.If(condition):
            m.d.sync += self.x.eq(_choose(last_col, 0, self.x + 1))
            for flag, predicate in self._col_flags:
                members = [c for c in range(width - 1) if predicate(c + 1)]
                m.d.sync += flag.eq(_choose(last_col, int(predicate(0)),
                                            _membership(self.x, members, width - 1)))
            for flag, within, after_line in self._position_flags:
                m.d.sync += flag.eq(_choose(last_col, after_line, within))
            m.d.sync += self.y.eq(_choose(last_col & last_row, 0, self.y + last_col))
            for reg, value in next_line:
                m.d.sync += reg.eq(_choose(last_col, value, reg))

    def _next_row_values(self, function):
        """``function(y + 1)`` for ``y`` in ``0..height-2`` as ``(common, {y: value})``: the
        most common value, and the rows whose value differs from it."""
        nexts = [function(v + 1) for v in range(self.height - 1)]
        common = max(set(nexts), key=nexts.count) if nexts else 0
        return common, {v: n for v, n in enumerate(nexts) if n != common}


def _from_row_flags(common, uncommon, at_row):
    """The value of :meth:`RasterCounter._next_row_values` for the current row, an AND-OR of
    the row flags ``at_row``."""
    bits = max([*uncommon.values(), common, 1]).bit_length()
    result = Const(0, bits)
    for v, n in uncommon.items():
        result = result | Mux(at_row[v], n, 0)
    if uncommon and common:
        result = result | Mux(Cat(*[at_row[v] for v in uncommon]).any(), 0, common)
    elif common:
        result = Const(common, bits)
    return result


def _choose(select, when_set, when_clear):
    """``when_set if select else when_clear`` as AND/OR gates. Yosys turns a multiplexer with
    a constant or a flip-flop's own output as an input into that flip-flop's reset or enable
    pin, with the select's logic in front of it; gates stay in the D input's logic."""
    when_set, when_clear = Value.cast(when_set), Value.cast(when_clear)
    width = max(len(when_set), len(when_clear))
    mask = select.replicate(width)
    return (when_set.as_unsigned() & mask) | (when_clear.as_unsigned() & ~mask)


class ColumnScanner(wiring.Component):
    """Line buffers and vertical border handling.

    Parameters
    ----------
    fmt : PixelFormat
        Input pixel format.
    width, height : int
        Frame size; ``height >= kernel_height // 2 + 1``.
    kernel_height, kernel_width : int
        Window size ``Ky x Kx`` (odd, 1..15). ``Kx`` sets how many ticks finish a frame's
        last line (the :class:`RowWindow` that follows uses it).
    border : str
        ``constant`` | ``replicate`` | ``reflect`` | ``reflect101``.
    border_value : int
        Pixel value (all channels) outside the image for ``constant``.
    lanes : int
        Pixels per transfer ``P`` (1..8): a tick handles ``P`` adjacent columns.
    collision_monitor : bool
        Add :attr:`line_collision` (for formal checks; no effect on the stream).

    Members
    -------
    i : ``In(pixel stream of P lanes)``
        Raster-order pixels; frames back to back. ``sof``/``eol`` are not used: frames are
        delimited by counting ``ceil(width / P) * height`` transfers.
    o : ``Out(stream of column_stream_layout(...))``
        One transfer per tick; ``column[j]`` (``column[p][j]`` for lane ``p`` when ``P > 1``)
        is window row ``j - Ky//2``.

    Latency, throughput, memory
    ---------------------------
    3 cycles from a tick to its column (memory read, its register, the border mux). One tick
    per cycle while neither side stalls, so a frame takes ``G * H`` ticks (``G =
    ceil(W / P)``); after the last transfer of a stream, ``hy * G + ceil(hx / P)`` ticks
    finish it without input (``hy = Ky//2``, ``hx = Kx//2``).
    Memory: ``Ky - 1`` lines of ``G * P`` pixels, one line memory each
    (:func:`~rasterflow.hdl.bram.line_memory`: collision-free when ``G >= 2``, so bare block
    RAM, and on ECP5 ``DP16KD`` blocks with their output register).
    """
    #: Cycles from a tick to its column.
    LATENCY = 3

    def __init__(self, fmt: PixelFormat, width, height, kernel_height, kernel_width, *,
                 border="reflect101", border_value=0, lanes=1, collision_monitor=False):
        check_window_geometry(width, height, kernel_width, kernel_height, border)
        check_lanes(lanes)
        if not fmt.min <= border_value <= fmt.max:
            raise ValueError(f"border_value must be in {fmt.min}..{fmt.max} for {fmt.dtype} "
                             f"pixels, not {border_value!r}")
        self.fmt = fmt
        self.width = width
        self.height = height
        self.lanes = lanes
        self.groups = transfers_per_line(width, lanes)
        self.kernel_height = kernel_height
        self.drain_ticks = drain_ticks(kernel_width, lanes)
        self.border = border
        self.border_value = border_value
        self.latency = self.LATENCY
        #: With ``collision_monitor``: high when the border mux takes a word read while its
        #: line memory wrote the same address (never, when a line has two or more transfers:
        #: the formal tests check it). Verification only; builds leave it out.
        self.line_collision = Signal() if collision_monitor else None
        super().__init__({
            "i": In(pixel_stream_signature(fmt, lanes)),
            "o": Out(stream.Signature(column_stream_layout(
                lanes_of(data.ArrayLayout(pixel_layout(fmt), kernel_height), lanes)))),
        })

    def _row_ages(self):
        """Per tick row ``r`` with non-default ages: ``{r: [age or None per window row]}``.

        A tick at row ``r`` serves output row ``r - hy`` (or, for ``r < hy``, row
        ``H - hy + r`` of the previous frame); window row ``dy`` needs image row
        ``border(y + dy)``, which the line buffers hold at age ``y + hy - border(y + dy)``.
        """
        hy, height = self.kernel_height // 2, self.height
        default = [hy - dy for dy in range(-hy, hy + 1)]
        table = {}
        for r in range(height):
            y = r - hy if r >= hy else height - hy + r
            ages = []
            for dy in range(-hy, hy + 1):
                src = border_source(y + dy, height, self.border)
                ages.append(None if src is None else y + hy - src)
            if ages != default:
                table[r] = ages
        return default, table

    def elaborate(self, platform):
        m = Module()
        # The parts share one namespace of signals, each adding what it builds. They are
        # built in schedule order, which is also the order of the netlist (and of the
        # statements Yosys sees): keep it, the committed Fmax figures were measured on it.
        s = self._geometry()
        self._read_pointer(m, s)
        self._schedule_state(m, s)
        self._tick_decision(m, s)
        self._line_write_side(m, s)
        self._line_memories(m, s, platform)
        self._advance_pointers(m, s)
        self._emit_decision(m, s)
        self._drain_and_schedule_flags(m, s)
        self._vertical_border_select(m, s)
        self._read_stages(m, s)
        self._output_register(m, s)
        return m

    def _geometry(self):
        """The elaboration's namespace, with the sizes every part uses. The scanner works on
        transfers: a "column" is ``P`` image columns side by side, and ``width`` counts
        transfers."""
        hy = self.kernel_height // 2
        return SimpleNamespace(
            width=self.groups, height=self.height, lanes=self.lanes, hy=hy,
            slots=2 * hy,   # line memories: Ky - 1
            pixel=lanes_of(pixel_layout(self.fmt), self.lanes),
            drain_ticks=self.drain_ticks)

    def _read_pointer(self, m, s):
        """The read pointer (the tick position) and its flags: where a tick stands in the
        schedule (free rows, tail row, output columns, the previous frame's last output) and
        which row-age table its row uses. Every decision reads these registered flags, not
        comparators, to keep the control short."""
        width, height, hy, drain_ticks = s.width, s.height, s.hy, s.drain_ticks
        s.read = read = RasterCounter(m, width, height, "read")
        s.in_free_rows = read.row_flag("free_rows", lambda r: r < hy)
        s.in_tail_row = read.row_flag("tail_row", lambda r: r == hy)
        s.past_tail_row = read.row_flag("past_tail_row", lambda r: r > hy)
        s.at_output_col = read.col_flag("output_col", lambda c: c >= drain_ticks)
        # Tick position of the previous frame's last output, as (row, column).
        tail_row, tail_col = (hy, drain_ticks - 1) if drain_ticks else (hy - 1, width - 1)
        s.at_tail_end = read.position_flag("tail_end", tail_row, tail_col)
        s.at_tail_start = read.position_flag("tail_start", hy, 0)
        s.at_frame_end = read.position_flag("frame_end", height - 1, width - 1)
        s.before_tail_start = (read.position_flag("tail_start_before", (hy - 1) % height,
                                                  width - 1) if drain_ticks else None)
        default_ages, edge_ages = self._row_ages()
        s.age_choices = [default_ages] + [list(a) for a in
                                          dict.fromkeys(tuple(a) for a in edge_ages.values())]
        s.age_choice = read.row_value(
            "age_choice", lambda r: s.age_choices.index(edge_ages.get(r, default_ages)),
            len(s.age_choices) - 1)

    def _schedule_state(self, m, s):
        """The scheduler's state besides the pointers, and the output enable."""
        # How many ticks the read pointer is ahead of the write pointer (only in free rows).
        s.lag = Signal(range(s.hy * s.width + 1))
        s.caught_up = Signal(init=1)
        # caught_up & ~draining, as a flip-flop of its own: a lockstep tick may take the input.
        s.input_ok = Signal(init=1)
        # The previous frame still has outputs to complete (its last hy rows and hx pixels).
        s.prev_pending = Signal()
        s.draining = Signal()
        s.drain_count = Signal(range(max(s.drain_ticks, 1)))
        s.en = Signal()
        m.d.comb += s.en.eq(~self.o.valid | self.o.ready)

    def _tick_decision(self, m, s):
        """Whether the read pointer moves this cycle (a tick), and which kind of tick it is.

        Written so that every signal here is at most two logic levels from flip-flops (the
        control loop is the scanner's critical path). Two facts of the schedule shorten it:
        draining, and a pending drain, happen only with the read pointer at (tail row, column
        0), never in a free row; so a free row needs no test of either, and there
        ``input_ok`` is ``caught_up``.
        """
        en, valid, input_ok, in_free_rows = s.en, self.i.valid, s.input_ok, s.in_free_rows
        s.input_here = Signal()  # the input pixel at the read pointer is offered
        # The previous frame's last outputs wait for a drain: at_tail_start & prev_pending &
        # ~draining, kept as a flip-flop of its own (loaded in _drain_and_schedule_flags).
        s.drain_due = Signal()
        m.d.comb += s.input_here.eq(s.caught_up & valid)
        s.lockstep = Signal()   # tick that consumes the input pixel at the read pointer
        s.free_tick = Signal()  # tick with no input (free rows)
        s.drain_tick = Signal()
        s.lag_write = Signal()  # input pixel written behind the read pointer
        s.tick = Signal()
        m.d.comb += [
            s.drain_tick.eq(en & (s.draining | (s.drain_due & ~s.input_here))
                            if s.drain_ticks else 0),
            s.lockstep.eq(en & valid & input_ok),
            s.free_tick.eq(en & in_free_rows & ~(valid & input_ok)),
            s.tick.eq(en & (in_free_rows | (valid & input_ok))),
            s.lag_write.eq(~s.caught_up & valid),
            # Ready for a lag write, or for a lockstep tick; written without valid, so the
            # input's handshake is one gate from flip-flops.
            self.i.ready.eq(~s.caught_up | (en & input_ok)),
        ]

    def _line_write_side(self, m, s):
        """The line memories' write side: the write and its data, the write pointer, and the
        slot (line memory) being written.

        Writes reach the memories one cycle late, from registers, so no memory ever reads and
        writes one address in one cycle (see :func:`~rasterflow.hdl.bram.line_memory`): a
        pixel is read back no sooner than a line (``width >= 2`` transfers) after it was
        written, and the old word at its address was read no later than the cycle of the
        write. With one transfer per line the next tick reads that address at once, so the
        write stays undelayed. The write column is a counter that moves after each memory
        write (so with delayed writes its enable is a flip-flop, not the input handshake);
        the slot is a one-hot rotated at each line end, so every memory's write enable is one
        gate from flip-flops.
        """
        s.delayed_write = s.width >= 2
        s.write_en = Signal()
        m.d.comb += s.write_en.eq(self.i.valid & self.i.ready)
        s.r_slot = Signal(range(max(s.slots, 1)))
        s.mem_we = Signal(name="line_we")
        s.mem_data = payload_register(s.pixel, name="line_wdata")
        domain = m.d.sync if s.delayed_write else m.d.comb
        domain += [s.mem_we.eq(s.write_en), s.mem_data.eq(self.i.payload.data)]
        s.write = RasterCounter(m, s.width, 1, "write")
        s.mem_addr = s.write.x
        w_slots = Signal(max(s.slots, 1), init=1, name="w_slots")
        s.slot_write_en = [Signal(name=f"line{k}_we") for k in range(s.slots)]
        m.d.comb += [we.eq(s.mem_we & w_slots[k]) for k, we in enumerate(s.slot_write_en)]
        with m.If(s.mem_we & s.write.last_col):
            m.d.sync += w_slots.eq(w_slots.rotate_left(1))

    def _line_memories(self, m, s, platform):
        """One line memory per slot, read at the read pointer on every tick; ``line_data``
        is each slot's read word, registered (stage 2 of the tick)."""
        s.line_data = []
        for k in range(s.slots):
            s.line_data.append(line_memory(
                m, f"line{k}", s.pixel, s.width, write_en=s.slot_write_en[k],
                write_addr=s.mem_addr, write_data=s.mem_data, read_en=s.tick,
                read_addr=s.read.x, out_en=s.en, collision_free=s.delayed_write,
                platform=platform))

    def _advance_pointers(self, m, s):
        """Move the read pointer on ticks, the write pointer on memory writes, the read slot
        at each tick line end; count the lag between the pointers (free ticks run ahead,
        lag writes catch up)."""
        read, slots, r_slot = s.read, s.slots, s.r_slot
        read.advance(s.tick)
        s.write.advance(s.mem_we)
        if slots:
            with m.If(s.tick):
                m.d.sync += r_slot.eq(_choose(read.last_col,
                                              Mux(r_slot == slots - 1, 0, r_slot + 1), r_slot))
        caught_up_next, draining_next = Signal(), Signal()
        s.caught_up_next, s.draining_next = caught_up_next, draining_next
        m.d.comb += [caught_up_next.eq(s.caught_up), draining_next.eq(s.draining)]
        if s.hy:
            with m.If(s.free_tick & ~s.lag_write):
                m.d.sync += s.lag.eq(s.lag + 1)
                m.d.comb += caught_up_next.eq(0)
            with m.Elif(s.lag_write & ~s.free_tick):
                m.d.sync += s.lag.eq(s.lag - 1)
                m.d.comb += caught_up_next.eq(s.lag == 1)

    def _emit_decision(self, m, s):
        """Which ticks complete an output, and when the previous frame is done
        (``prev_pending``)."""
        s.emit = Signal()
        current_row_output = Signal()
        m.d.comb += current_row_output.eq(s.past_tail_row | (s.in_tail_row & s.at_output_col))
        m.d.comb += s.emit.eq(s.drain_tick | (s.tick & (current_row_output | s.prev_pending)))
        if s.hy or s.drain_ticks:
            # The frame's last tick is never in a free row (height > hy), so it is a lockstep.
            # A drain clears it at its first tick (no tick, so no output, can come between
            # the drain ticks, which the draining flag and count carry on).
            pending_clear = s.tick & s.at_tail_end
            if s.drain_ticks:
                pending_clear = pending_clear | s.drain_tick
            prev_pending_next = Signal()
            m.d.comb += prev_pending_next.eq(Mux(s.at_frame_end & s.lockstep, 1,
                                                 s.prev_pending & ~pending_clear))
            m.d.sync += s.prev_pending.eq(prev_pending_next)

    def _drain_and_schedule_flags(self, m, s):
        """Count the drain ticks, load the registered scheduler flags (``caught_up``,
        ``draining``, ``input_ok``) and decide whether a drain is due."""
        drain_ticks, drain_tick = s.drain_ticks, s.drain_tick
        if drain_ticks:
            with m.If(drain_tick):
                with m.If(s.drain_count == drain_ticks - 1):
                    m.d.sync += s.drain_count.eq(0)
                    m.d.comb += s.draining_next.eq(0)
                with m.Else():
                    m.d.sync += s.drain_count.eq(s.drain_count + 1)
                    m.d.comb += s.draining_next.eq(1)
        m.d.sync += [s.caught_up.eq(s.caught_up_next), s.draining.eq(s.draining_next),
                     s.input_ok.eq(s.caught_up_next & ~s.draining_next)]
        if drain_ticks:
            # A drain tick ends the wait (it clears prev_pending); a tick that reaches the tail
            # start begins one if the previous frame is pending, or finishes now (a tick at
            # the frame end is a lockstep, which sets prev_pending); the wait lasts otherwise.
            m.d.sync += s.drain_due.eq(~drain_tick & Mux(
                s.tick, s.before_tail_start & (s.prev_pending | s.at_frame_end), s.drain_due))

    def _vertical_border_select(self, m, s):
        """Per window row, which source feeds it (``select``): line slots ``0..slots-1``,
        then the input pixel (age 0), then the constant. The row's age table gives each
        window row's age; the tick row's own slot holds the line written ``slots`` rows
        earlier, so an age is a slot relative to ``r_slot``."""
        slots, r_slot = s.slots, s.r_slot
        src_input, src_const = slots, slots + 1
        s.select = [Signal(range(slots + 2), name=f"vsel{j}")
                    for j in range(self.kernel_height)]

        def slot_of_age(age):
            if age is None:
                return Const(src_const, range(slots + 2))
            if age == 0:
                return Const(src_input, range(slots + 2))
            return Mux(r_slot >= age % slots, r_slot - age % slots, r_slot + slots - age % slots)

        s.s1_select = [payload_register(sel.shape(), name=f"s1_vsel{j}")
                       for j, sel in enumerate(s.select)]
        with m.Switch(s.age_choice):
            for index, ages in enumerate(s.age_choices):
                with m.Case(index):
                    m.d.comb += [sel.eq(slot_of_age(a)) for sel, a in zip(s.select, ages)]

    def _read_stages(self, m, s):
        """Stage 1: the memory read; stage 2: its data registered with nothing in between, so
        block RAM clock-to-out does not add to the border mux (stage 3, the output register).
        The tick's emit flag, input pixel and row sources follow the read through both."""
        pixel = s.pixel
        s1_valid = Signal()
        s1_emit = payload_register(1, name="s1_emit")
        s1_input = payload_register(pixel, name="s1_input")
        s2_valid = Signal()
        s2_emit = payload_register(1, name="s2_emit")
        s2_input = payload_register(pixel, name="s2_input")
        s.s2_valid, s.s2_emit, s.s2_input = s2_valid, s2_emit, s2_input
        # Stage 2 holds each window row's source one-hot: the border mux is then an AND-OR
        # of the sources, two logic levels for up to eight of them.
        s.s2_select = [payload_register(s.slots + 2, name=f"s2_vsel{j}")
                       for j in range(len(s.select))]
        self._collision_monitor(m, s)
        with m.If(s.en):
            m.d.sync += [
                s1_valid.eq(s.tick | s.drain_tick),
                s1_emit.eq(s.emit),
                s1_input.eq(self.i.payload.data),
                s2_valid.eq(s1_valid),
                s2_emit.eq(s1_emit),
                s2_input.eq(s1_input),
            ]
            m.d.sync += [d.eq(src) for d, src in zip(s.s1_select, s.select)]
            m.d.sync += [d.eq(1 << src) for d, src in zip(s.s2_select, s.s1_select)]

    def _collision_monitor(self, m, s):
        """:attr:`line_collision`, for the formal check of the delayed writes (see
        :meth:`_line_write_side`): a read made while its memory writes the same address is
        marked, the mark follows the read word through stages 1 and 2, and the monitor is
        raised if the border mux then takes that word. (A free row's tick can read a line
        being overwritten a whole line behind; it never uses it.)"""
        if self.line_collision is None or not s.slots:
            return
        poisoned = Cat(*[s.tick & we & (s.mem_addr == s.read.x) for we in s.slot_write_en])
        s1_poisoned = Signal(s.slots)
        s2_poisoned = Signal(s.slots)
        with m.If(s.en):
            m.d.sync += [s1_poisoned.eq(poisoned), s2_poisoned.eq(s1_poisoned)]
        used = Cat(*[Cat(*[onehot[k] for onehot in s.s2_select]).any()
                     for k in range(s.slots)])
        m.d.comb += self.line_collision.eq(s.en & s.s2_valid & (s2_poisoned & used).any())

    def _output_register(self, m, s):
        """Stage 3, the column register: per lane and window row, the border mux (an AND-OR
        of the line words, the input pixel and the constant, under the one-hot source)."""
        lanes = s.lanes
        constant = Signal(pixel_layout(self.fmt))
        m.d.comb += [constant[ch].eq(self.border_value) for ch in range(self.fmt.channels)]
        out = payload_register(self.o.payload.shape(), name="out")
        m.d.comb += self.o.payload.eq(out)
        with m.If(s.en):
            m.d.sync += [
                self.o.valid.eq(s.s2_valid),
                out.emit.eq(s.s2_emit),
            ]
            for p in range(lanes):
                sources = [lane(v, p, lanes).as_value() for v in s.line_data + [s.s2_input]]
                sources.append(constant.as_value())
                column = lane(out.column, p, lanes)
                for j, onehot in enumerate(s.s2_select):
                    picked = 0
                    for k, source in enumerate(sources):
                        picked = picked | (source & onehot[k].replicate(len(source)))
                    m.d.sync += column[j].eq(picked)


class RowWindow(wiring.Component):
    """Horizontal shift register and horizontal border handling.

    Parameters
    ----------
    element_shape : shape-like
        What one column is (``Ky`` pixels, or a per-column reduction of them).
    width, height : int
        Output frame size in pixels (for ``sof``/``eol`` and the border columns).
    kernel_width : int
        Window width ``Kx`` (odd, 1..15).
    border : str
        Horizontal border mode.
    constant_column : constant-castable
        Column value outside the image for ``constant`` borders.
    lanes : int
        Columns per transfer ``P``; output ``P`` windows per transfer.

    Members
    -------
    i : ``In(stream of column_stream_layout(lanes_of(element_shape, P)))`` — every transfer
        shifts; those with ``emit`` produce an output.
    o : ``Out(stream of window_stream_layout(element_shape, Kx, P))``

    Latency 1 cycle; one transfer per cycle; ``2 * ceil(hx / P)`` registers of ``P``
    columns (``hx = Kx // 2``).
    """
    #: Cycles from a column transfer to its window.
    LATENCY = 1

    def __init__(self, element_shape, width, height, kernel_width, *, border="reflect101",
                 constant_column=0, lanes=1):
        check_window_geometry(width, height, kernel_width, 1, border)
        check_lanes(lanes)
        self.element_shape = element_shape
        self.width = width
        self.height = height
        self.kernel_width = kernel_width
        self.border = border
        self.constant_column = constant_column
        self.lanes = lanes
        self.latency = self.LATENCY
        super().__init__({
            "i": In(stream.Signature(column_stream_layout(lanes_of(element_shape, lanes)))),
            "o": Out(stream.Signature(window_stream_layout(element_shape, kernel_width, lanes))),
        })

    def _choices(self):
        """Per output transfer ``g``: for each lane and window column, the (age, lane) it
        selects, or ``None`` for the constant. Returns the distinct choices (interior first)
        and the index of each transfer's."""
        hx, lanes, width = self.kernel_width // 2, self.lanes, self.width
        groups = transfers_per_line(width, lanes)
        delay = -(-hx // lanes)

        def choice_at(g):
            picks = []
            for j in range(lanes):
                for dx in range(-hx, hx + 1):
                    col = lanes * g + j + dx
                    src = border_source(col, width, self.border) if lanes * g + j < width \
                        else None  # a padding lane: its window is of no concern
                    picks.append(None if src is None else (g + delay - src // lanes,
                                                           src % lanes))
            return tuple(picks)

        interior = tuple((delay - (j + dx) // lanes, (j + dx) % lanes)
                         for j in range(lanes) for dx in range(-hx, hx + 1))
        choices = [interior]
        index_of_group = []
        for g in range(groups):
            picks = choice_at(g)
            if picks not in choices:
                choices.append(picks)
            index_of_group.append(choices.index(picks))
        return choices, index_of_group, delay

    def elaborate(self, platform):
        m = Module()
        choices, index_of_group, delay = self._choices()
        # Transfers whose window choice is not the interior one (the edges of a line).
        special = {g: index for g, index in enumerate(index_of_group) if index != 0}
        position, first_pixel, before = self._output_position(m, special)
        en, transfer = self._handshake(m)
        by_age = self._column_history(m, transfer, delay)
        choice = Signal(range(len(choices)), init=index_of_group[0])
        advance = Signal()
        m.d.comb += advance.eq(transfer & self.i.payload.emit)
        self._output_register(m, en, position, first_pixel, choice, choices, by_age)
        self._next_choice(m, advance, choice, position, before, special, index_of_group)
        position.advance(advance)
        return m

    def _output_position(self, m, special):
        """The output position, with every test of it a register (see RasterCounter): the
        frame's first pixel, and one-hot flags of the transfers just before the edge
        transfers in ``special`` (the window mux's choice is registered for the next
        ``x``, from them)."""
        groups = transfers_per_line(self.width, self.lanes)
        position = RasterCounter(m, groups, self.height, "out")
        first_pixel = position.position_flag("first", 0, 0)
        before = position.col_onehot("before", [g - 1 for g in special if g > 0])
        return position, first_pixel, before

    def _handshake(self, m):
        """``en``: the output register can load; every input transfer shifts."""
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        transfer = Signal()
        m.d.comb += transfer.eq(self.i.valid & en)
        return en, transfer

    def _column_history(self, m, transfer, delay):
        """The shift register of past transfers. Returns ``by_age``: ``by_age[a]`` is the
        transfer shifted in ``a`` transfers ago (``by_age[0]`` the incoming one)."""
        group_shape = lanes_of(self.element_shape, self.lanes)
        history = [payload_register(group_shape, name=f"cols_age{a}")
                   for a in range(1, 2 * delay + 1)]
        with m.If(transfer):
            if history:
                m.d.sync += history[0].eq(self.i.payload.column)
                m.d.sync += [history[a].eq(history[a - 1]) for a in range(1, len(history))]
        return [self.i.payload.column] + history

    def _output_register(self, m, en, position, first_pixel, choice, choices, by_age):
        """The output register and the window mux: under ``choice``, each lane's window
        column takes the (age, lane) its border choice names, or the constant column. It
        loads whenever the output can move (``o.valid`` tells whether it was an emission), so
        its enable is not the longer emit condition."""
        lanes, kx = self.lanes, self.kernel_width
        constant = Signal(self.element_shape, init=self.constant_column)

        def source(pick):
            if pick is None:
                return constant
            age, src_lane = pick
            return lane(by_age[age], src_lane, lanes)

        out = payload_register(self.o.payload.shape(), name="out")
        m.d.comb += self.o.payload.eq(out)
        with m.If(en):
            m.d.sync += [
                self.o.valid.eq(self.i.valid & self.i.payload.emit),
                out.sof.eq(first_pixel),
                out.eol.eq(position.last_col),
            ]
            with m.Switch(choice):
                for index, picks in enumerate(choices):
                    with m.Case(index):
                        for j in range(lanes):
                            window = lane(out.window, j, lanes)
                            m.d.sync += [window[k].eq(source(picks[j * kx + k]))
                                         for k in range(kx)]

    def _next_choice(self, m, advance, choice, position, before, special, index_of_group):
        """Load the window choice of the next output transfer: an edge transfer's when the
        ``before`` flag of that transfer is set, the line start's after a line end, else
        the interior's (0)."""
        with m.If(advance):
            following = Const(0, choice.shape())
            for g, index in special.items():
                if g > 0:
                    following = following | Mux(before[g - 1], index, 0)
            m.d.sync += choice.eq(_choose(position.last_col, index_of_group[0], following))
