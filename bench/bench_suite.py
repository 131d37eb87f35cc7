#!/usr/bin/env python3
"""The benchmark suite: every example pipeline on every board, against each device's Fmax
ceiling and against this CPU.

For each pipeline (``rasterflow/data/demo.toml``, ``examples/*.toml``; a missing one is
skipped) and board: pixels per clock, Fmax (nextpnr's estimate), Fmax as a fraction of the
device's block RAM -> register ceiling (``bench_fmax_reference.py``), Mpixel/s at Fmax, LUTs,
FFs, block RAMs, DSP blocks, line-buffer bits against the ``(K-1) * W * bits`` minimum,
bitstream build time; per pipeline, Verilator simulation speed and the same pipeline in
OpenCV and in the numpy golden model on this CPU (Mpixel/s, this run). Then throughput
against kernel size (a binomial K x K ``filter2d``, one sweep per board) and, once the spec
has ``input.pixels_per_clock``, against pixels per clock; plotted in ``throughput.png``.

Builds run on a Dask LocalCluster through :func:`rasterflow.sweep.run_sweep`, cached by design
hash (``--cache-dir``), so a re-run only rebuilds what changed.

Writes ``OUT/README.md``, ``OUT/bench.json`` and ``OUT/throughput.png`` (default
``bench/results``). Usage: ``python bench/bench_suite.py [--quick] [--out DIR]``
"""
import argparse
import dataclasses
import glob
import io
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from amaranth.hdl import UnusedElaboratable

from bench_boards import cpu_rates
from bench_filters import memory_bits
from bench_fmax_pipelines import STAGES as FMAX_DESIGNS
from bench_fmax_pipelines import build_pipeline, builtin_pipeline
from bench_fmax_reference import TARGET_MHZ
from bench_fmax_reference import measure as measure_reference
from rasterflow.boards.platforms import get_board
from rasterflow.files import atomic_write_bytes, atomic_write_text, write_json
from rasterflow.hdl.window import ColumnScanner
from rasterflow.spec import InputSpec, load_spec
from rasterflow.sweep import default_cache_dir, parse_vary, run_sweep

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ("icebreaker", "ulx3s-85f")
#: Frame and placement seeds of the Fmax-target builds (the performance issue's 640-wide stream).
FMAX_FRAME = (640, 480)
FMAX_SEEDS = 5
BINOMIAL = {3: [1, 2, 1], 5: [1, 4, 6, 4, 1], 7: [1, 6, 15, 20, 15, 6, 1],
            9: [1, 8, 28, 56, 70, 56, 28, 8, 1]}
KERNEL_SPEC = """# Binomial {k} x {k} blur, written by bench_suite.py.
name = "binomial{k}"
[input]
width = 512
height = 512
[[stage]]
op = "filter2d"
kernel = {kernel!r}
shift = {shift}
"""


def example_specs():
    return [ROOT / "rasterflow/data/demo.toml"] + sorted(
        Path(p) for p in glob.glob(str(ROOT / "examples/*.toml")))


def _scanners(obj, seen):
    """Every :class:`ColumnScanner` (a line buffer) inside a hardware object."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, ColumnScanner):
        yield obj
        return
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if hasattr(item, "elaborate"):
                yield from _scanners(item, seen)


def line_buffer_bits(pipeline):
    """``(bits in the RTL's memories, minimum)``: the minimum is ``(Ky - 1)`` lines of ``W``
    pixels for each windowed stage."""
    top = pipeline.hardware()
    minimum = sum((s.kernel_height - 1) * s.width * s.fmt.channels * s.fmt.bits
                  for s in _scanners(top, set()))
    return memory_bits(top), minimum


def verilator_rate(pipeline):
    """``(Mpixel/s of simulated hardware, bit-exact?)`` over one random frame."""
    from rasterflow.sim.session import simulate
    fmt = pipeline.input_format
    frame = np.random.default_rng(1).integers(
        fmt.min, fmt.max + 1, (pipeline.height, pipeline.width, fmt.channels)).astype(fmt.np_dtype)
    simulate(pipeline, frame, simulator="verilator", progress=False)   # build (cached) first
    result = simulate(pipeline, frame, simulator="verilator", progress=False)
    return pipeline.width * pipeline.height / result.wall_seconds / 1e6, result.bit_exact


def kernel_spec(folder, k):
    """A spec file of the binomial ``k x k`` blur (sum ``4**(k-1)``, so ``shift = 2(k-1)``)."""
    taps = BINOMIAL[k]
    path = Path(folder) / f"binomial{k}.toml"
    path.write_text(KERNEL_SPEC.format(k=k, kernel=[[a * b for b in taps] for a in taps],
                                       shift=2 * (k - 1)))
    return path


def main(argv=None):
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="demo pipeline, iCEBreaker only, kernels 3 and 5")
    parser.add_argument("--boards", help=f"comma-separated (default {','.join(BOARDS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    boards = args.boards.split(",") if args.boards else \
        (["icebreaker"] if args.quick else list(BOARDS))
    specs = example_specs()[:1] if args.quick else example_specs()
    kernels = (3, 5) if args.quick else (3, 5, 7)
    started = time.monotonic()

    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1,
                           dashboard_address=":0")
    client = Client(cluster)
    try:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            fmax_dir = Path(tempfile.mkdtemp(prefix="rasterflow-fmax-"))
            reference = pool.submit(measure_reference, boards, fmax_dir)
            targets = {(board, design): pool.submit(
                build_pipeline, board, builtin_pipeline(design, *FMAX_FRAME),
                fmax_dir / f"{design}-{board}", FMAX_SEEDS)
                for board in boards for design in FMAX_DESIGNS}
            builds = {(spec, board): pool.submit(run_sweep, spec, board, [], client=client,
                                                 cache_dir=args.cache_dir, progress=False)
                      for spec in specs if spec.exists() for board in boards}
            kernel_dir = tempfile.mkdtemp(prefix="rasterflow-kernels-")
            kernel_sweeps = {(board, k): pool.submit(
                run_sweep, kernel_spec(kernel_dir, k), board, [], client=client,
                cache_dir=args.cache_dir, progress=False) for board in boards for k in kernels}
            ppc_supported = "pixels_per_clock" in {f.name for f in dataclasses.fields(InputSpec)}
            ppc_sweeps = {board: pool.submit(
                run_sweep, kernel_spec(kernel_dir, 3), board,
                [parse_vary("input.pixels_per_clock=1,2,4")], client=client,
                cache_dir=args.cache_dir, progress=False)
                for board in boards} if ppc_supported else {}
            rows, cpu = [], {}
            for (spec, board), future in builds.items():
                pipeline = load_spec(spec)
                name = str(spec.relative_to(ROOT))
                if name not in cpu:
                    golden_rate, opencv_rate = cpu_rates(pipeline)
                    bits, minimum = line_buffer_bits(pipeline)
                    sim_rate, exact = verilator_rate(pipeline)
                    cpu[name] = {"golden_mpix_s": golden_rate, "opencv_mpix_s": opencv_rate,
                                 "line_buffer_bits": bits, "line_buffer_min_bits": minimum,
                                 "verilator_mpix_s": sim_rate, "verilator_bit_exact": exact,
                                 "width": pipeline.width, "height": pipeline.height}
                row = {"spec": name, "board": board, **cpu[name], **future.result().rows[0]}
                rows.append(row)
                print(f"{name} on {board}: " + (row["error"] or
                      f"Fmax {row['fmax_mhz']:.1f} MHz, {row['throughput_mpix_s']:.1f} Mpixel/s"),
                      flush=True)
            reference = reference.result()
            target_rows = [{"board": board, "design": design,
                            "target_mhz": TARGET_MHZ[get_board(board).family],
                            **{k: v for k, v in f.result().items() if k != "critical_path"}}
                           for (board, design), f in targets.items()]
            kernel_rows = {}
            for (board, k), future in kernel_sweeps.items():
                kernel_rows.setdefault(board, []).append({"kernel": k, **future.result().rows[0]})
            ppc_rows = {board: f.result().rows for board, f in ppc_sweeps.items()}
    finally:
        client.close()
        cluster.close()

    for row in rows:
        ceiling = reference[row["board"]]["bram_register"]["fmax_mhz"]
        row["fmax_ratio_to_bram"] = row["fmax_mhz"] / ceiling if row.get("fmax_mhz") else None
    for row in target_rows:
        row["fmax_ratio_to_bram"] = (row["fmax_mhz"]
                                     / reference[row["board"]]["bram_register"]["fmax_mhz"])
    result = {"reference": reference, "fmax_targets": target_rows, "pipelines": rows,
              "kernel_sweep": kernel_rows,
              "pixels_per_clock_sweep": ppc_rows if ppc_supported else "skipped: the spec "
              "has no input.pixels_per_clock", "quick": args.quick,
              "suite_seconds": round(time.monotonic() - started, 1)}
    write_json(args.out / "bench.json", result)
    atomic_write_text(args.out / "README.md", markdown(result, kernels))
    atomic_write_bytes(args.out / "throughput.png", plot(result, kernels))
    print(markdown(result, kernels))
    print(f"wrote {args.out / 'README.md'}, bench.json, throughput.png "
          f"({result['suite_seconds']:.0f} s)")
    return 0 if all(r["verilator_bit_exact"] for r in rows) else 1


def _num(value, fmt):
    return "n/a" if value is None else format(value, fmt)


def markdown(result, kernels):
    lines = ["# Benchmark results", "",
             "Generated by `bench/bench_suite.py`" + (" --quick" if result["quick"] else "") +
             ". Fmax is nextpnr's estimate; \"of ceiling\" is Fmax over the same board's block "
             "RAM -> register reference design; Mpixel/s = Fmax x pixels/clock. CPU figures "
             "are this machine, this run.", "",
             "## Fmax ceilings (block RAM reference designs)", "",
             "Built like the line buffers (block RAM with its read register; on ECP5 the "
             "DP16KD output register), clock constrained at the family's target.", "",
             "| board | device | BRAM -> register MHz | BRAM -> 10-bit adder -> register MHz |",
             "|---|---|---|---|"]
    for board, designs in result["reference"].items():
        lines.append(f"| {board} | {designs['bram_register']['device']} | "
                     f"{designs['bram_register']['fmax_mhz']:.1f} | "
                     f"{designs['bram_adder']['fmax_mhz']:.1f} |")
    lines += ["", f"## Fmax targets (bare pipeline, {FMAX_FRAME[0]} x {FMAX_FRAME[1]} grey, "
              f"median of {FMAX_SEEDS} placement seeds)", "",
              "The pipeline alone (frame guard, skid buffers, stage) between register-driven "
              "stimulus and an XOR accumulator (`bench_fmax_pipelines.py`), its clock "
              "constrained at the family's target.", "",
              "| board | design | target MHz | Fmax MHz | by seed | of ceiling | LUTs | BRAMs |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["fmax_targets"]:
        seeds = " / ".join(f"{v:.1f}" for v in r["fmax_by_seed"].values())
        lines.append(f"| {r['board']} | {r['design']} | {r['target_mhz']} | "
                     f"{r['fmax_mhz']:.1f} | {seeds} | {r['fmax_ratio_to_bram']:.0%} | "
                     f"{r['luts']} | {r['brams']} |")
    lines += ["", "## Pipelines", "",
              "Board designs (UART bridge included) built at the board's clock "
              "constraint.", "",
              "| pipeline | board | px/clk | Fmax MHz | of ceiling | Mpixel/s | LUTs | FFs | "
              "BRAMs | DSPs | line-buffer bits (min) | build s | Verilator Mpixel/s | "
              "OpenCV Mpixel/s | golden Mpixel/s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["pipelines"]:
        cpu = (f"{r['verilator_mpix_s']:.2f} | {_num(r['opencv_mpix_s'], '.0f')} | "
               f"{r['golden_mpix_s']:.1f}")
        bits = f"{r['line_buffer_bits']} ({r['line_buffer_min_bits']})"
        if r["error"]:
            lines.append(f"| {r['spec']} | {r['board']} | {r['pixels_per_cycle']:.3g} | "
                         f"{r['error'][:120]} |||||||| {bits} | | {cpu} |")
            continue
        lines.append(f"| {r['spec']} | {r['board']} | {r['pixels_per_cycle']:.3g} | "
                     f"{r['fmax_mhz']:.1f} | {r['fmax_ratio_to_bram']:.0%} | "
                     f"{r['throughput_mpix_s']:.1f} | {r['luts']} | {r['ffs']} | {r['brams']} | "
                     f"{r['dsps']} | {bits} | {r['build_seconds']:.0f} | {cpu} |")
    lines += ["", "## Throughput against kernel size (binomial K x K filter2d, 512 x 512)", "",
              "| board | K | Fmax MHz | Mpixel/s | LUTs | BRAMs | DSPs |", "|---|---|---|---|---|---|---|"]
    for board, rows in result["kernel_sweep"].items():
        for r in rows:
            lines.append(f"| {board} | {r['kernel']} | {_num(r.get('fmax_mhz'), '.1f')} | "
                         f"{_num(r.get('throughput_mpix_s'), '.1f')} | {r.get('luts', '')} | "
                         f"{r.get('brams', '')} | {r.get('dsps', '')} |" if not r["error"] else
                         f"| {board} | {r['kernel']} | {r['error'][:120]} |||||")
    ppc = result["pixels_per_clock_sweep"]
    lines += ["", "## Throughput against pixels per clock", ""]
    if isinstance(ppc, str):
        lines.append(ppc)
    else:
        lines += ["| board | px/clk | Fmax MHz | Mpixel/s | LUTs | BRAMs |", "|---|---|---|---|---|---|"]
        for board, rows in ppc.items():
            for r in rows:
                lines.append(f"| {board} | {r['values']['input.pixels_per_clock']} | "
                             f"{_num(r.get('fmax_mhz'), '.1f')} | "
                             f"{_num(r.get('throughput_mpix_s'), '.1f')} | {r.get('luts', '')} | "
                             f"{r.get('brams', '')} |")
    lines += ["", "![throughput](throughput.png)", ""]
    return "\n".join(lines)


def plot(result, kernels):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ppc = result["pixels_per_clock_sweep"]
    figure = Figure(figsize=(11 if isinstance(ppc, dict) else 6, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2 if isinstance(ppc, dict) else 1, squeeze=False)[0]
    for board, rows in result["kernel_sweep"].items():
        done = [r for r in rows if r.get("throughput_mpix_s") is not None]
        panels[0].plot([r["kernel"] for r in done], [r["throughput_mpix_s"] for r in done],
                       marker="o", label=board)
    panels[0].set(xlabel="kernel size K (K x K)", ylabel="throughput, Mpixel/s",
                  xticks=list(kernels), title="binomial filter2d, 512 x 512")
    if isinstance(ppc, dict):
        for board, rows in ppc.items():
            done = [r for r in rows if r.get("throughput_mpix_s") is not None]
            panels[1].plot([r["values"]["input.pixels_per_clock"] for r in done],
                           [r["throughput_mpix_s"] for r in done], marker="o", label=board)
        panels[1].set(xlabel="pixels per clock", ylabel="throughput, Mpixel/s",
                      title="3 x 3 binomial filter2d")
    for axes in panels:
        axes.grid(alpha=0.3)
        axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
