"""cocotb bench for any rasterflow stream design (loaded by cocotb, not imported by users).

:func:`rasterflow.sim.verilator.run_verilog` builds the design with Verilator and runs this
module as the cocotb test module. The host passes its inputs through files in a run directory
named by the ``RASTERFLOW_BENCH_DIR`` environment variable (see :mod:`.verilator` for the
file names) and reads the results back from the same directory.

The bench follows the usual verification split — driver, monitor, back-pressure, protocol
checker, scoreboard — but the per-cycle parts run inside one coroutine loop, one
``await RisingEdge`` per clock: a coroutine or a trigger per component and cycle would make
Python, not the simulated design, the bottleneck.

At a ``RisingEdge`` cocotb (with Verilator) reads the values the signals had just before the
edge, i.e. the ones the design samples on that edge, so the transfers of a cycle are decided
from values read right after the ``await``; values written then take effect after the edge.
"""
import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from .verilator import (BENCH_DIR_ENV, CONFIG_FILE, EXPECTED_FILE, IN_FILE, OUT_FILE,
                        PROGRESS_FILE, RESULT_FILE, load_words, save_words)

#: Clock cycles with ``rst`` high before the stream starts.
RESET_CYCLES = 4
#: How many mismatching positions the scoreboard describes in the result.
MISMATCH_EXAMPLES = 10


class StreamSource:
    """Driver of the design's input stream ``i__*``.

    Presents ``words`` in order. Before each new word it idles (``valid`` low) for a cycle
    with probability ``stall``; once ``valid`` is high, ``valid`` and ``payload`` hold until
    the transfer, as the stream contract requires.
    """

    def __init__(self, dut, words: list[int], stall: float, rng: random.Random):
        self._valid = dut.i__valid
        self._payload = dut.i__payload
        self._ready = dut.i__ready
        self.words = words
        self.stall = stall
        self.rng = rng
        self.sent = 0
        self.valid = False

    def idle(self):
        """Drive ``valid`` low (during reset)."""
        self._valid.value = 0
        self.valid = False

    def transferred(self) -> bool:
        """Whether the word on the bus was transferred at this edge (call right after it)."""
        if self.valid and self._ready.value:
            self.sent += 1
            return True
        return False

    def drive_next(self, transferred: bool):
        """Choose what the bus shows after this edge: the held word, a new one, or nothing."""
        if self.valid and not transferred:
            return
        present = self.sent < len(self.words) and not (self.stall and self.rng.random() < self.stall)
        if present:
            self._payload.value = self.words[self.sent]
        if present != self.valid:
            self._valid.value = int(present)
            self.valid = present


class StreamSink:
    """Monitor and back-pressure generator of the design's output stream ``o__*``.

    Collects ``o__payload`` on each cycle with ``o__valid & o__ready``, drops ``o__ready``
    with probability ``stall`` per cycle, and checks the stream rule on the design's side:
    once ``o__valid`` is high, ``o__valid`` and ``o__payload`` hold until the transfer.
    """

    def __init__(self, dut, stall: float, rng: random.Random):
        self._valid = dut.o__valid
        self._payload = dut.o__payload
        self._ready = dut.o__ready
        self.stall = stall
        self.rng = rng
        self.words: list[int] = []
        self.ready = False
        # The word the design offered on the previous edge without a transfer, if any.
        self.pending: int | None = None
        self.protocol_violations = 0
        self.first_violation: str | None = None

    def idle(self):
        """Drive ``ready`` low (during reset)."""
        self._ready.value = 0
        self.ready = False

    def sample(self, cycle: int) -> bool:
        """Check the protocol and collect a transfer at this edge; return whether one happened."""
        valid = bool(self._valid.value)
        word = self._payload.value.to_unsigned() if valid else None
        if self.pending is not None and word != self.pending:
            self._violation(cycle, "o__valid dropped before the transfer" if word is None else
                            f"o__payload changed from {self.pending:#x} to {word:#x} "
                            "while o__valid was held")
        if valid and self.ready:
            self.words.append(word)
            self.pending = None
            return True
        self.pending = word
        return False

    def drive_next(self):
        """Choose ``ready`` for the next cycle."""
        ready = not (self.stall and self.rng.random() < self.stall)
        if ready != self.ready:
            self._ready.value = int(ready)
            self.ready = ready

    def _violation(self, cycle: int, what: str):
        self.protocol_violations += 1
        if self.first_violation is None:
            self.first_violation = f"cycle {cycle}: {what}"
            cocotb.log.error("stream protocol violation at %s", self.first_violation)


class Scoreboard:
    """Compares the received words with the model's expected words."""

    def __init__(self, expected: list[int] | None):
        self.expected = expected

    def compare(self, received: list[int]) -> dict:
        """Return ``mismatches`` (differing positions plus length difference) and examples."""
        if self.expected is None:
            return {"mismatches": None, "mismatch_examples": []}
        differing = [k for k, (got, want) in enumerate(zip(received, self.expected)) if got != want]
        examples = [(k, received[k], self.expected[k]) for k in differing[:MISMATCH_EXAMPLES]]
        for k, got, want in examples:
            cocotb.log.error("output %d: got %#x, expected %#x", k, got, want)
        return {"mismatches": len(differing) + abs(len(received) - len(self.expected)),
                "mismatch_examples": examples}


class ProgressFile:
    """Publishes the number of received words for the host's progress bar."""

    def __init__(self, path: Path, every_cycles: int):
        self.path = path
        self.every_cycles = every_cycles

    def publish(self, received: int):
        # Write then rename, so that the host never reads a half-written number.
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(received))
        tmp.replace(self.path)


@cocotb.test()
async def stream_bench(dut):
    """Reset, then stream the inputs through the design until ``n_out`` words come out."""
    run_dir = Path(os.environ[BENCH_DIR_ENV])
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    rng = random.Random(config["seed"])
    stall = config["stall"]
    n_out = config["n_out"]
    timeout_cycles = config["timeout_cycles"]
    expected_path = run_dir / EXPECTED_FILE
    source = StreamSource(dut, load_words(run_dir / IN_FILE), stall, rng)
    sink = StreamSink(dut, stall, rng)
    scoreboard = Scoreboard(load_words(expected_path) if expected_path.exists() else None)
    progress = ProgressFile(run_dir / PROGRESS_FILE, config["progress_every_cycles"])

    Clock(dut.clk, 10, "ns").start()
    edge = RisingEdge(dut.clk)
    dut.rst.value = 1
    source.idle()
    sink.idle()
    for _ in range(RESET_CYCLES):
        await edge
    dut.rst.value = 0
    source.drive_next(transferred=False)
    sink.drive_next()

    # Cycle numbers count rising edges after reset; a transfer belongs to the edge it happens on.
    first_in = first_out = last_out = None
    cycle = 0
    started = time.perf_counter()
    while len(sink.words) < n_out and cycle < timeout_cycles:
        await edge
        sent = source.transferred()
        if sent and first_in is None:
            first_in = cycle
        if sink.sample(cycle):
            last_out = cycle
            if first_out is None:
                first_out = cycle
        source.drive_next(sent)
        sink.drive_next()
        cycle += 1
        if cycle % progress.every_cycles == 0:
            progress.publish(len(sink.words))
    loop_seconds = time.perf_counter() - started
    progress.publish(len(sink.words))

    save_words(run_dir / OUT_FILE, sink.words)
    result = {
        "in_transfers": source.sent,
        "out_transfers": len(sink.words),
        "first_in_cycle": first_in,
        "first_out_cycle": first_out,
        "last_out_cycle": last_out,
        "simulated_cycles": cycle,
        "loop_seconds": loop_seconds,
        "timed_out": len(sink.words) < n_out,
        "protocol_violations": sink.protocol_violations,
        "first_violation": sink.first_violation,
        **scoreboard.compare(sink.words),
    }
    (run_dir / RESULT_FILE).write_text(json.dumps(result))
