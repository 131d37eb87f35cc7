#!/usr/bin/env python3
"""Filter benchmark: throughput, latency, line-buffer memory and simulation speed per (K, W).

For each kernel size K and line width W it builds a K x K ``filter2d`` pipeline and reports

* pixels/cycle over F back-to-back frames (from the Verilator run's exact cycle count),
* latency L in cycles (``F*W*H + L`` cycles for F frames),
* line-buffer bits in the generated RTL (Yosys ``memory`` cells) against the
  ``(K-1) * W * bits`` minimum,
* Verilator simulation speed in pixels per second of wall time.

Then, for the graph examples (``examples/*.toml`` with a stage reading a named input), the
line-buffer bits of the whole graph against the minimum: per stream that window stages read,
``(max K - 1) * W * bits`` (what one shared set of line buffers holds), beside what separate
line buffers per stage would take.

Usage: ``python bench/bench_filters.py [--kernels 3,5,7] [--widths 64,640] [--json OUT]``
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from amaranth.back import rtlil

from rasterflow.boards.build import rtlil_memories
from rasterflow.files import write_json
from rasterflow.sim.session import simulate
from rasterflow.spec import load_spec, parse_spec


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def memory_bits(top, prefix=""):
    """Bits of every memory in the design (whose name starts with ``prefix``), read from its
    RTLIL."""
    return sum(bits for _, name, bits, _ in rtlil_memories(rtlil.convert(top))
               if name.startswith(prefix))


def graph_line_buffers(pipeline):
    """Line-buffer bits of a graph pipeline's hardware, the minimum for its window stages,
    and what one set of line buffers per stage would take."""
    windows = {}
    for bound in pipeline.bound:
        window = bound.stage.window(bound)
        if window is not None:
            windows.setdefault(bound.inputs[0], []).append((bound, window.kernel_height))
    minimum = separate = 0
    for members in windows.values():
        bound = members[0][0]
        line = bound.width * bound.in_format.bits * bound.in_format.channels
        minimum += (max(k for _, k in members) - 1) * line
        separate += sum(k - 1 for _, k in members) * line
    return {"name": pipeline.name, "line_buffer_bits": memory_bits(pipeline.hardware(), "line"),
            "line_buffer_min_bits": minimum, "separate_line_buffer_bits": separate}


def graph_examples():
    """The example specs whose stages read named inputs."""
    return [load_spec(path) for path in sorted(EXAMPLES.glob("*.toml"))
            if "inputs" in path.read_text()]


def bench_case(kernel_size, width, *, height, frames, simulator):
    kernel = [[1] * kernel_size for _ in range(kernel_size)]
    shift = (kernel_size * kernel_size).bit_length() - 1
    pipeline = parse_spec({
        "name": f"box{kernel_size}_w{width}",
        "input": {"width": width, "height": height, "channels": 1, "dtype": "uint8"},
        "stage": [{"op": "filter2d", "kernel": kernel, "shift": shift}],
    })
    rng = np.random.default_rng(kernel_size * 1000 + width)
    frame = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
    start = time.perf_counter()
    result = simulate(pipeline, frame, frames=frames, simulator=simulator, progress=False)
    wall = time.perf_counter() - start
    bits = memory_bits(pipeline.hardware())
    minimum = (kernel_size - 1) * width * 8
    pixels = frames * width * height
    return {
        "kernel": kernel_size,
        "width": width,
        "height": height,
        "frames": frames,
        "bit_exact": result.bit_exact,
        "cycles": result.cycles,
        "pixels_per_cycle": pixels / result.cycles,
        "latency_cycles": result.latency_cycles,
        "line_buffer_bits": bits,
        "line_buffer_min_bits": minimum,
        "line_buffer_ratio": bits / minimum if minimum else 1.0,
        "simulator": simulator,
        # Simulation speed alone (the run's own clock), not the Verilator build before it.
        "sim_pixels_per_second": result.sim_cycles_per_second * pixels / result.cycles,
        "wall_seconds_with_build": wall,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", default="3,5,7,15")
    parser.add_argument("--widths", default="64,640")
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--simulator", choices=("verilator", "amaranth"), default="verilator")
    parser.add_argument("--json", help="write the rows as JSON")
    args = parser.parse_args(argv)
    rows = []
    header = (f"{'K':>3} {'W':>5} {'px/cycle':>9} {'latency':>8} {'LB bits':>8} "
              f"{'min bits':>8} {'ratio':>6} {'sim px/s':>10} {'exact':>6}")
    print(header)
    for k in (int(v) for v in args.kernels.split(",")):
        for w in (int(v) for v in args.widths.split(",")):
            height = max(args.height, k)
            row = bench_case(k, w, height=height, frames=args.frames, simulator=args.simulator)
            rows.append(row)
            print(f"{k:>3} {w:>5} {row['pixels_per_cycle']:>9.4f} {row['latency_cycles']:>8} "
                  f"{row['line_buffer_bits']:>8} {row['line_buffer_min_bits']:>8} "
                  f"{row['line_buffer_ratio']:>6.2f} {row['sim_pixels_per_second']:>10,.0f} "
                  f"{str(row['bit_exact']):>6}", flush=True)
    graphs = [graph_line_buffers(pipeline) for pipeline in graph_examples()]
    print(f"\n{'graph':>10} {'LB bits':>8} {'min bits':>8} {'separate':>9}")
    for row in graphs:
        print(f"{row['name']:>10} {row['line_buffer_bits']:>8} {row['line_buffer_min_bits']:>8} "
              f"{row['separate_line_buffer_bits']:>9}")
    if args.json:
        write_json(Path(args.json), {"filters": rows, "graphs": graphs})
        print(f"wrote {args.json}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
