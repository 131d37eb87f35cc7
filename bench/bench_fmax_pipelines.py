#!/usr/bin/env python3
"""Fmax of a spec's pipeline hardware alone (no UART bridge), and its ratio to the device's
block RAM -> register ceiling.

Builds ``Pipeline.hardware()`` (frame guard, skid buffers, stages) bare on a board's device:
its input stream is driven by registers (a 32-bit LFSR gives the pixel data and random
``valid``; a raster counter gives ``sof``/``eol``), its output ``ready`` is random too (so
the stall logic is exercised and not optimised away), and every output transfer is folded
into an XOR accumulator whose parity drives an LED, so no part of the datapath is removed.
The reference is :mod:`bench_fmax_reference`'s ``bram_register`` design on the same board.

Built-in designs (640 x 480 grey unless ``--width/--height``):

* ``gaussian5``: ``op = "gaussian", ksize = 5`` (reflect101);
* ``gradient_l1``: ``op = "gradient_magnitude", norm = "l1"`` (Sobel 3x3, reflect101).

``--spec FILE`` builds a TOML spec instead.

Usage: ``python bench/bench_fmax_pipelines.py [--boards icebreaker,ulx3s-85f]
[--designs gaussian5,gradient_l1] [--build-dir DIR] [--json OUT] [--no-reference]``
"""
import argparse
import sys
import tempfile
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib.wiring import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fmax_reference import build_bare, build_reference  # noqa: E402

from rasterflow.boards.platforms import get_board  # noqa: E402
from rasterflow.files import write_json  # noqa: E402
from rasterflow.hdl.stall import SkidBuffer  # noqa: E402
from rasterflow.spec import load_spec, parse_spec  # noqa: E402

STAGES = {
    "gaussian5": {"op": "gaussian", "ksize": 5, "sigma": 0, "border": "reflect101"},
    "gradient_l1": {"op": "gradient_magnitude", "norm": "l1", "ksize": 3,
                    "border": "reflect101"},
}


def builtin_pipeline(design, width, height):
    return parse_spec({"name": design,
                       "input": {"width": width, "height": height, "channels": 1,
                                 "dtype": "uint8"},
                       "stage": [dict(STAGES[design])]})


class BarePipeline(Elaboratable):
    """``pipeline.hardware()`` between register-driven stimulus and an XOR accumulator."""

    def __init__(self, board, pipeline):
        self.board, self.pipeline = board, pipeline

    def elaborate(self, platform):
        m = Module()
        m.submodules.pipeline = pipeline = self.pipeline.hardware()
        # The stimulus feeds a skid buffer, as any registered source would: the pipeline's
        # own input ready is combinational (its frame guard), and the stimulus' counters
        # should not be on the measured paths.
        m.submodules.source_skid = dut = SkidBuffer(pipeline.i.payload.shape())
        connect(m, dut.o, pipeline.i)
        lfsr = Signal(32, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[1] ^ lfsr[21] ^ lfsr[31]))
        data_bits = len(dut.i.payload.data.as_value())
        source = Signal(max(data_bits, 1))
        with m.If(~dut.i.valid | dut.i.ready):
            m.d.sync += source.eq(Cat(*[lfsr[(7 * k) % 32] ^ lfsr[(7 * k + 3) % 32]
                                        for k in range(data_bits)]))
        # Raster position of the next input transfer; sof/eol and the last-row test are
        # registered flags, so the stimulus is never the critical path itself.
        groups = -(-self.pipeline.width // self.pipeline.lanes)
        height = self.pipeline.height
        x = Signal(range(groups))
        y = Signal(range(height))
        sof, eol = Signal(init=1), Signal(init=groups == 1)
        last_row = Signal(init=height == 1)
        valid = Signal()
        m.d.comb += [dut.i.valid.eq(valid), dut.i.payload.data.eq(source),
                     dut.i.payload.sof.eq(sof), dut.i.payload.eol.eq(eol)]
        with m.If(~valid | dut.i.ready):
            m.d.sync += valid.eq(lfsr[3] | lfsr[17] | lfsr[29])
        with m.If(valid & dut.i.ready):
            with m.If(eol):
                m.d.sync += [x.eq(0), eol.eq(groups == 1), sof.eq(last_row)]
                with m.If(last_row):
                    m.d.sync += [y.eq(0), last_row.eq(height == 1)]
                with m.Else():
                    m.d.sync += [y.eq(y + 1), last_row.eq(y == height - 2)]
            with m.Else():
                m.d.sync += [x.eq(x + 1), eol.eq(x == groups - 2), sof.eq(0)]
        out = pipeline.o
        m.d.comb += out.ready.eq(lfsr[5] | lfsr[9])
        acc = Signal(len(out.payload.as_value()))
        with m.If(out.valid & out.ready):
            m.d.sync += acc.eq(acc ^ out.payload.as_value())
        parity = Signal()
        m.d.sync += parity.eq(acc.xor() ^ pipeline.error)
        led = platform.request(*self.board.leds["heartbeat"])
        m.d.comb += led.o.eq(parity)
        return m


def critical_path(build_dir):
    """The end points and the top contributors of nextpnr's critical path report."""
    log = Path(build_dir) / "top.tim"
    if not log.exists():
        return None
    text = log.read_text(errors="replace")
    start = text.rfind("Critical path report for clock")
    if start < 0:
        return None
    lines = text[start:].splitlines()
    path = []
    for line in lines[1:]:
        if not line.startswith("Info:") or "Critical path report" in line \
                or "Max frequency" in line:
            break
        path.append(line[6:])
    return path


def over_seeds(build, build_dir, seeds):
    """Run ``build(build_dir, seed)`` for each placement seed; nextpnr's estimate moves by
    several percent from seed to seed, so the result is the median seed's build (its path
    included), with every seed's Fmax beside it."""
    runs = []
    for seed in range(1, seeds + 1):
        run_dir = Path(build_dir) / f"seed{seed}"
        runs.append({**build(run_dir, seed), "critical_path": critical_path(run_dir)})
    runs.sort(key=lambda r: r["fmax_mhz"])
    median = runs[(len(runs) - 1) // 2]
    return {**median, "fmax_by_seed": {r["seed"]: round(r["fmax_mhz"], 1) for r in runs}}


def build_pipeline(board_name, pipeline, build_dir, seeds=1):
    board = get_board(board_name)
    return over_seeds(lambda run_dir, seed: build_bare(board, BarePipeline(board, pipeline),
                                                       run_dir, seed=seed),
                      build_dir, seeds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", default="icebreaker,ulx3s-85f")
    parser.add_argument("--designs", default=",".join(STAGES))
    parser.add_argument("--spec", help="a TOML spec to build instead of the built-in designs")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--build-dir", help="keep the builds here (default: a temp folder)")
    parser.add_argument("--json", help="write the results as JSON")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the block RAM reference build (no ratio)")
    parser.add_argument("--path", action="store_true", help="print each critical path")
    parser.add_argument("--seeds", type=int, default=5,
                        help="placement seeds per design; Fmax is the median (default 5)")
    args = parser.parse_args(argv)
    build_root = Path(args.build_dir or tempfile.mkdtemp(prefix="rasterflow-fmax-"))
    if args.spec:
        designs = {Path(args.spec).stem: load_spec(args.spec)}
    else:
        designs = {d: builtin_pipeline(d, args.width, args.height)
                   for d in args.designs.split(",")}
    results = {}
    for board in args.boards.split(","):
        results[board] = {}
        reference = None
        if not args.no_reference:
            reference = over_seeds(
                lambda run_dir, seed, board=board: build_reference(board, "bram_register",
                                                                   run_dir, seed=seed),
                build_root / f"reference-{board}", args.seeds)
            results[board]["bram_register"] = reference
        for name, pipeline in designs.items():
            r = build_pipeline(board, pipeline, build_root / f"{name}-{board}", args.seeds)
            if reference:
                r["ratio"] = round(r["fmax_mhz"] / reference["fmax_mhz"], 3)
            results[board][name] = r
    print(f"{'board':<12} {'device':<12} {'design':<14} {'Fmax MHz':>9} {'ratio':>6} "
          f"{'LUTs':>6} {'BRAMs':>6} {'build s':>8}  Fmax by seed")
    for board, rows in results.items():
        for name, r in rows.items():
            by_seed = " ".join(f"{v:.1f}" for v in r["fmax_by_seed"].values())
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            print(f"{board:<12} {r['device']:<12} {name:<14} {r['fmax_mhz']:>9.1f} "
                  f"{ratio:>6} {r['luts']:>6} {r['brams']:>6} {r['build_seconds']:>8.0f}  "
                  f"{by_seed}")
    if args.path:
        for board, rows in results.items():
            for name, r in rows.items():
                if r.get("critical_path"):
                    print(f"\n== {board} {name} critical path")
                    print("\n".join(r["critical_path"]))
    if args.json:
        write_json(args.json, {"fmax_pipelines": results})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
