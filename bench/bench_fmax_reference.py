#!/usr/bin/env python3
"""Fmax ceiling of each device: block RAM -> register, and block RAM -> 10-bit adder -> register.

A line-buffer pipeline reads block RAM every cycle, so the fastest it can be on a device is
about the speed of a block RAM read into a register. This builds two bare reference designs
(no UART bridge: only the path under test, a counter to drive it and one LED to keep it
alive), and reports nextpnr's Fmax estimate for each, so the
bench can give each pipeline's Fmax as a fraction of its device's ceiling:

* ``bram_register``: a 512 x 8 delay line built like the window generator's line buffers
  (:func:`rasterflow.hdl.bram.line_memory`, collision-free: block RAM with its read register
  and, on ECP5, the ``DP16KD`` output register) whose read data goes straight into a
  register;
* ``bram_adder``: the same with a 10-bit adder (read data + a 10-bit counter) before the
  register.

Builds are constrained at the family's target clock (:data:`TARGET_MHZ`).

Usage: ``python bench/bench_fmax_reference.py [--boards icebreaker,ulx3s-85f] [--json OUT]``
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal

from rasterflow.boards.build import HIDE_INDEXED_NAMES, prepared_tool_environment
from rasterflow.hdl.bram import line_memory
from rasterflow.boards.platforms import get_board
from rasterflow.files import write_json

DESIGNS = ("bram_register", "bram_adder")
#: Clock constraint of the Fmax builds: the performance target of each family. nextpnr's
#: timing-driven placer and router stop optimising once the constraint is met, so a build
#: constrained at the oscillator's 12 or 25 MHz reports whatever Fmax wirelength-driven
#: placement happens to give.
TARGET_MHZ = {"ice40": 60, "ecp5": 200}
DEPTH = 512
ADDER_BITS = 10


class BramReference(Elaboratable):
    """Line memory read data -> (10-bit adder ->) register, written and addressed by a free
    running counter; the register's parity drives an LED so nothing is optimized away."""

    def __init__(self, board, adder):
        self.board, self.adder = board, adder

    def elaborate(self, platform):
        m = Module()
        count = Signal(ADDER_BITS + 8)
        m.d.sync += count.eq(count + 1)
        # Read one word ahead of the write, so no address is read and written together; both
        # addresses are counters of their own, so no adder feeds the memory.
        write_addr = Signal(range(DEPTH))
        read_addr = Signal(range(DEPTH), init=1)
        m.d.sync += [write_addr.eq(write_addr + 1), read_addr.eq(read_addr + 1)]
        data = line_memory(m, "line", 8, DEPTH, write_en=1, write_addr=write_addr,
                           write_data=count[ADDER_BITS:], read_en=1, read_addr=read_addr,
                           out_en=1, collision_free=True, platform=platform)
        result = Signal(ADDER_BITS if self.adder else 8)
        m.d.sync += result.eq(data + count[:ADDER_BITS] if self.adder else data)
        parity = Signal()
        m.d.sync += parity.eq(result.xor())
        led = platform.request(*self.board.leds["heartbeat"])
        m.d.comb += led.o.eq(parity)
        return m


def build_bare(board, top, build_dir, target_mhz=None, seed=1):
    """Build ``top`` (an elaboratable using ``board``'s pins) with the board's tools, the
    clock constrained at ``target_mhz`` (default: the family's :data:`TARGET_MHZ`), placed
    with nextpnr's ``seed``; return nextpnr's Fmax and the utilisation."""
    target_mhz = target_mhz or TARGET_MHZ[board.family]
    platform = board.make_platform(clock_constraint_hz=target_mhz * 1e6)
    plan = platform.prepare(top, "top", nextpnr_opts=f"--report top.report.json "
                                                     f"--timing-allow-fail --seed {seed}",
                            synth_opts=board.family_info.synth_opts,
                            script_after_read=HIDE_INDEXED_NAMES)
    build_dir = Path(build_dir)
    plan.extract(str(build_dir))
    started = time.monotonic()
    done = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir,
                          env=prepared_tool_environment(board), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"build in {build_dir} failed ({done.returncode}):\n"
                           + "\n".join((done.stdout + done.stderr).splitlines()[-20:]))
    report = json.loads((build_dir / "top.report.json").read_text())
    used = report["utilization"]
    cells = board.family_info.nextpnr_cells
    return {"device": board.device, "target_mhz": target_mhz, "seed": seed,
            "fmax_mhz": min(clock["achieved"] for clock in report["fmax"].values()),
            "luts": used[cells["logic"]]["used"], "brams": used[cells["bram"]]["used"],
            "build_seconds": round(time.monotonic() - started, 1)}


def build_reference(board_name, design, build_dir, seed=1):
    """nextpnr's Fmax and the utilisation of one reference design on one board."""
    board = get_board(board_name)
    return build_bare(board, BramReference(board, design == "bram_adder"), build_dir,
                      seed=seed)


def measure(boards, build_root):
    """``{board: {design: report}}`` for every reference design on every board."""
    return {board: {design: build_reference(board, design,
                                            Path(build_root) / f"{design}-{board}")
                    for design in DESIGNS} for board in boards}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", default="icebreaker,ulx3s-85f")
    parser.add_argument("--build-dir", help="keep the builds here (default: a temp folder)")
    parser.add_argument("--json", help="write the results as JSON")
    args = parser.parse_args(argv)
    build_root = Path(args.build_dir or tempfile.mkdtemp(prefix="rasterflow-fmax-"))
    results = measure(args.boards.split(","), build_root)
    print(f"{'board':<12} {'device':<10} {'design':<14} {'Fmax MHz':>9} {'LUTs':>6} "
          f"{'BRAMs':>6} {'build s':>8}")
    for board, designs in results.items():
        for design, r in designs.items():
            print(f"{board:<12} {r['device']:<10} {design:<14} {r['fmax_mhz']:>9.1f} "
                  f"{r['luts']:>6} {r['brams']:>6} {r['build_seconds']:>8.0f}")
    if args.json:
        write_json(args.json, {"fmax_reference": results})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
