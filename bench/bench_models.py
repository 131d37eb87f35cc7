#!/usr/bin/env python3
"""Whole int8 models: the hardware's figures, computed from the stages' timing and the cost
model, beside LiteRT on this CPU in the same run.

For each fixture in ``tests/data/tflite2`` (its ``manifest.json``) the model is imported
(:func:`rasterflow.cli_import.import_model`: MAC stages balanced for ``--cycles-per-pixel``,
or with ``--fold`` folded for ``--board`` by :func:`rasterflow.fold.fold` where that fits);
a model that cannot be imported is reported with the reason. Then, in plain Python, without
simulating:

* MACs per frame: over the MAC stages, output pixels x ``StageTiming.macs_per_output``
  (:func:`rasterflow.hdl.conv.mac_layer_report`, as a simulation reports them);
* multipliers: the MAC arrays' ``StageTiming.multipliers`` (int8 x int8 products);
* cycles per frame in steady state: the slowest stage's, one cycle per input transfer and
  ``initiation_interval`` per output transfer (``FoldReport.frame_cycles``, the pace
  :func:`rasterflow.hdl.top.graph_timing` plans the graph at);
* latency: ``Pipeline.latency_cycles``;
* MAC utilization: MACs per frame / (multipliers x cycles per frame);
* block RAM, LUT4 and DSP block estimates on ``--board`` (:func:`rasterflow.fold.assess`;
  LUTs are rough, within about 2x, and leave out the board top);
* frames/s and GMAC/s at a clock: ``--clock-mhz`` (default 100: a reference clock, not a
  measured Fmax) or, per model, the ``fmax_mhz`` of a ``rasterflow build --report`` given
  as ``--build-report MODEL=report.json``.

With ``--simulate`` (off by default: a whole model's Verilator build takes many minutes),
the fixture's input frames run through the generated Verilog
(:func:`rasterflow.sim.session.simulate`): measured cycles, and whether every output equals
the golden model's and LiteRT's.

LiteRT (``ai_edge_litert``) on this CPU, batch 1 (the fixture's first frame), each timed over
enough invokes to take ``--seconds``: inferences/s with the reference kernels
(``OpResolverType.BUILTIN_REF``, the ones the golden model equals bit for bit; one thread),
and with the default resolver (XNNPACK) at one thread (LiteRT's Python default:
``num_threads`` None is 1) and at ``--threads`` (default: every core). Then, on every frame
of the fixture's input, the number of output values XNNPACK returns that differ from the
reference kernels' (XNNPACK requantizes its own way), and whether the reference kernels
reproduce the fixture's stored outputs. CPU figures are this machine in this run: another
load on the machine slows them.

Writes ``OUT/models.json`` and ``OUT/models.md`` (default ``bench/results``).

Usage: ``python bench/bench_models.py [--models A,B] [--board ulx3s-85f] [--fold]
[--clock-mhz 100] [--build-report MODEL=report.json ...] [--seconds 1.5] [--threads N]
[--simulate] [--out DIR]``
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rasterflow.boards.platforms import BOARDS
from rasterflow.cli_import import import_model
from rasterflow.errors import InputError, SpecError
from rasterflow.files import atomic_write_text, write_json
from rasterflow.fold import DoesNotFit, assess
from rasterflow.hdl.conv import mac_sim_report

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "data" / "tflite2"
DEFAULT_CLOCK_MHZ = 100.0
REFERENCE_CLOCK_NOTE = "reference clock, not a measured Fmax"


def manifest(data=FIXTURES):
    """The fixtures' entries (``name``, ``ops``, ``float_io``, ...), in the manifest's order."""
    return json.loads((Path(data) / "manifest.json").read_text())


def expected_outputs(name, data=FIXTURES):
    """The stored LiteRT ``BUILTIN_REF`` outputs of fixture ``name``, in the model's output
    order, each batch first."""
    path = Path(data) / f"{name}_expected.npy"
    if path.exists():
        return [np.load(path)]
    with np.load(Path(data) / f"{name}_expected.npz") as archive:
        return [archive[f"output{k}"] for k in range(len(archive.files))]


# -- the hardware --------------------------------------------------------------------------

def import_fixture(model_path, out_dir, *, board, fold, cycles_per_pixel):
    """``(pipeline, folding, refusal)``: ``model_path`` imported into ``out_dir``; ``folding``
    says how its MAC stages were folded: with ``fold``, for ``board`` when the model fits it,
    else as the import balances them (``refusal``: why not for ``board``, else ``None``).
    Raises :class:`InputError` / :class:`SpecError` when the model cannot be imported."""
    spec = Path(out_dir) / f"{Path(model_path).stem}.toml"
    refusal = None
    if fold:
        try:
            return import_model(model_path, spec, board=board), f"folded for {board}", None
        except DoesNotFit as error:
            refusal = (f"not folded for {board}, which it does not fit even at pe = simd = 1: "
                       + "; ".join(error.overruns))
    pipeline = import_model(model_path, spec, cycles_per_pixel=cycles_per_pixel)
    return (pipeline, f"import default (balanced for {cycles_per_pixel} cycles per input "
                      "pixel)", refusal)


def hardware_figures(pipeline, board, clock_hz):
    """The pipeline's figures from its stages' timing and the cost model on ``board``
    (a name), with frames/s and GMAC/s at ``clock_hz``; nothing is elaborated."""
    report = assess(pipeline, board)
    cycles = report.frame_cycles
    layers = {b.name: b.stage.sim_report(b, 1, cycles) for b in pipeline.bound}
    macs = mac_sim_report({name: r for name, r in layers.items() if r is not None}, cycles)
    useful, multipliers = macs.get("useful_macs", 0), macs.get("multipliers", 0)
    fps = clock_hz / cycles
    usage = report.usage
    return {
        "macs_per_frame": useful,
        "multipliers": multipliers,
        "cycles_per_frame": cycles,
        "latency_cycles": pipeline.latency_cycles,
        "mac_utilization": useful / (multipliers * cycles) if multipliers else 0.0,
        "clock_mhz": clock_hz / 1e6,
        "fps": fps,
        "gmac_per_s": useful * fps / 1e9,
        "estimate": {"board": usage.board.name, "device": usage.board.device,
                     "bram": usage.bram, "luts": usage.logic, "dsp": usage.dsp,
                     "rom_bits": usage.rom_bits, "ram_bits": usage.ram_bits,
                     "fits": report.fits, "overruns": usage.overruns()},
        "layers": macs.get("layers", {}),
    }


def simulated_figures(pipeline, name, data=FIXTURES):
    """The fixture's input frames through the generated Verilog in Verilator: measured
    cycles, against the golden model and against the stored LiteRT outputs."""
    from rasterflow.model_io import model_outputs, read_model_input
    from rasterflow.sim.session import simulate

    frames, batched = read_model_input(pipeline.model.input, Path(data) / f"{name}_input.npy")
    result = simulate(pipeline, frames, simulator="verilator")
    outputs = [o if len(pipeline.outputs) > 1 else {pipeline.outputs[0]: o}
               for o in result.outputs]
    equals_litert = len(outputs) == len(frames)
    if equals_litert:
        by_node = {node: np.stack([o[node] for o in outputs]) for node in pipeline.outputs}
        got = model_outputs(pipeline.model, by_node, batched)
        equals_litert = all(np.array_equal(got[f"output{k}"], want)
                            for k, want in enumerate(expected_outputs(name, data)))
    return {"frames": result.frames, "cycles": result.cycles,
            "latency_cycles": result.latency_cycles, "bit_exact": result.bit_exact,
            "mismatches": result.mismatches, "equals_litert": bool(equals_litert),
            "wall_seconds": round(result.wall_seconds, 1)}


# -- LiteRT on this CPU ------------------------------------------------------------------------

def _interpreter(model_path, reference, threads):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_path=str(model_path), num_threads=threads,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def _run(interpreter, x):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def inferences_per_second(interpreter, seconds):
    """Invokes per second of wall time on the input already set: a short run estimates the
    rate, then enough invokes for ``seconds`` are timed. ``(rate, invokes)``."""
    interpreter.invoke()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 10:
        interpreter.invoke()
        count += 1
    invokes = max(1, round(count / (time.perf_counter() - start) * seconds))
    start = time.perf_counter()
    for _ in range(invokes):
        interpreter.invoke()
    return invokes / (time.perf_counter() - start), invokes


def litert_figures(model_path, inputs, expected, *, seconds, threads):
    """LiteRT on ``inputs`` (the fixture's input, batch first): inferences/s of the
    reference kernels and of XNNPACK (one thread, ``threads``), XNNPACK's output values that
    differ from the reference kernels' over all the frames, and whether the reference
    kernels' outputs equal ``expected`` (the stored ones, batch first)."""
    configs = {"ref": (True, 1), "xnnpack_1": (False, 1), "xnnpack_n": (False, threads)}
    interpreters = {key: _interpreter(model_path, *config) for key, config in configs.items()}
    frames = [inputs[k:k + 1] for k in range(len(inputs))]
    outputs = {key: [_run(it, x) for x in frames] for key, it in interpreters.items()}

    def mismatches(key):
        return sum(int(np.count_nonzero(a != b)) for got, want in zip(outputs[key], outputs["ref"])
                   for a, b in zip(got, want, strict=True))

    ref_equals_fixture = all(np.array_equal(np.concatenate([o[k] for o in outputs["ref"]]), want)
                             for k, want in enumerate(expected))
    rates, invokes = {}, {}
    for key, interpreter in interpreters.items():
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], frames[0])
        rates[key], invokes[key] = inferences_per_second(interpreter, seconds)
    return {"invokes_timed": invokes,"ref_inf_s": rates["ref"], "xnnpack_1_inf_s": rates["xnnpack_1"],
            "xnnpack_n_inf_s": rates["xnnpack_n"], "xnnpack_threads": threads,
            "xnnpack_mismatches": mismatches("xnnpack_1"),
            "xnnpack_n_mismatches": mismatches("xnnpack_n"),
            "output_values": sum(int(y.size) for y in expected),
            "frames_compared": len(frames), "ref_equals_fixture": ref_equals_fixture}


# -- one model ---------------------------------------------------------------------------------

def bench_model(entry, args, clock, progress):
    """The row of one fixture: its LiteRT figures, and its hardware figures unless it cannot
    be imported (then ``skipped`` says why)."""
    name = entry["name"]
    model_path = FIXTURES / f"{name}.tflite"
    row = {"model": name, "ops": len(entry["ops"]), "float_io": entry["float_io"]}
    progress.set_postfix_str(f"{name}: import")
    with tempfile.TemporaryDirectory(prefix="rasterflow-models-") as tmp:
        try:
            pipeline, folding, refusal = import_fixture(
                model_path, tmp, board=args.board, fold=args.fold,
                cycles_per_pixel=args.cycles_per_pixel)
        except (InputError, SpecError) as error:
            pipeline, row["skipped"] = None, str(error)
            tqdm.write(f"{name}: not imported, no hardware figures: {error}")
    if pipeline is not None:
        tqdm.write(f"{name}: {len(pipeline.bound)} stages; MAC stages {folding}" +
                   (f"; {refusal}" if refusal else ""))
        row.update(folding=folding, fold_refused=refusal, stages=len(pipeline.bound),
                   clock_source=clock[1],
                   **hardware_figures(pipeline, args.board, clock[0] * 1e6))
        if args.simulate:
            progress.set_postfix_str(f"{name}: Verilator")
            row["simulation"] = simulated_figures(pipeline, name)
    progress.set_postfix_str(f"{name}: LiteRT")
    inputs = np.load(FIXTURES / f"{name}_input.npy")
    row["litert"] = litert_figures(model_path, inputs, expected_outputs(name),
                                   seconds=args.seconds, threads=args.threads)
    if "macs_per_frame" in row:
        row["litert"]["xnnpack_1_gmac_per_s"] = \
            row["litert"]["xnnpack_1_inf_s"] * row["macs_per_frame"] / 1e9
    return row


# -- tables ------------------------------------------------------------------------------------

def _cells(row, threads):
    """The table's cells of ``row`` (hardware cells empty for a skipped model)."""
    lite = row["litert"]
    xnn = f"{lite['xnnpack_mismatches']:,}"
    if lite["xnnpack_n_mismatches"] != lite["xnnpack_mismatches"]:
        xnn += f" ({lite['xnnpack_n_mismatches']:,} at {threads} threads)"
    cpu = [f"{lite['ref_inf_s']:,.0f}", f"{lite['xnnpack_1_inf_s']:,.0f}",
           f"{lite['xnnpack_n_inf_s']:,.0f}", f"{xnn} / {lite['output_values']:,}"]
    if "skipped" in row:
        return [row["model"]] + [""] * 8, cpu
    clock = f"{row['clock_mhz']:g}" + (" ref" if row["clock_source"] == "reference" else " Fmax")
    hardware = [row["model"], f"{row['macs_per_frame']:,}", f"{row['multipliers']:,}",
                f"{row['cycles_per_frame']:,}", clock, f"{row['fps']:,.0f}",
                f"{row['gmac_per_s']:.2f}", f"{row['mac_utilization']:.1%}",
                f"{row['estimate']['bram']}"]
    return hardware, cpu


def _headers(threads, simulate):
    return (["model", "MACs/frame", "multipliers", "cycles/frame", "clock MHz", "fps @ clock",
             "GMAC/s", "MAC util", "BRAM est.", "LiteRT REF inf/s", "XNNPACK 1 thr inf/s",
             f"XNNPACK {threads} thr inf/s", "XNNPACK mismatches"] +
            (["sim cycles", "bit-exact"] if simulate else []))


def _sim_cells(row):
    sim = row.get("simulation")
    if sim is None:
        return ["", ""]
    exact = "yes" if sim["bit_exact"] and sim["equals_litert"] else \
        f"NO ({sim['mismatches']} mismatches)"
    return [f"{sim['cycles']:,} / {sim['frames']} frames", exact]


def print_table(rows, threads, simulate):
    headers = _headers(threads, simulate)
    lines = []
    for row in rows:
        hardware, cpu = _cells(row, threads)
        lines.append(hardware + cpu + (_sim_cells(row) if simulate else []))
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(headers)]
    print("  ".join(h.rjust(w) if k else h.ljust(w)
                    for k, (h, w) in enumerate(zip(headers, widths))))
    for line in lines:
        print("  ".join(c.rjust(w) if k else c.ljust(w)
                        for k, (c, w) in enumerate(zip(line, widths))))
    for row in rows:
        if "skipped" in row:
            print(f"{row['model']}: no hardware figures: {row['skipped']}")


def markdown(rows, meta):
    """The results as a markdown page."""
    threads, simulate, board = meta["xnnpack_threads"], meta["simulate"], meta["board"]
    headers = _headers(threads, simulate) + ["latency cycles", "LUT4 est.", "DSP est."]
    lines = [
        "# Whole int8 models: the hardware beside LiteRT on this CPU",
        "",
        "Generated by `bench/bench_models.py` (the fixtures of `tests/data/tflite2`). "
        "Hardware figures come from the stages' timing, without simulating: cycles/frame is "
        "the slowest stage's in steady state (a cycle per input transfer, II per output "
        "transfer), MAC util = MACs/frame / (multipliers x cycles/frame). "
        f"Clock: \"ref\" is {meta['clock_mhz']:g} MHz, a {REFERENCE_CLOCK_NOTE}; \"Fmax\" "
        "is the `fmax_mhz` of a `rasterflow build` report. "
        f"BRAM, LUT4 (rough, within about 2x, no board top) and DSP estimates are the cost "
        f"model's (`rasterflow.fold.assess`) on {board}.",
        "",
        f"LiteRT {meta['litert_version']} on this CPU ({meta['cpu']}, {meta['cpus']} cores; "
        "this run, other load included), batch 1, each rate timed over about "
        f"{meta['seconds']:g} s: REF = the reference kernels (`BUILTIN_REF`, which the golden "
        "model equals bit for bit), XNNPACK = the default resolver at 1 thread (LiteRT's "
        f"default) and at {threads}. XNNPACK mismatches: output values that differ from "
        "REF's over the fixture's input frames / all output values.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    for row in rows:
        hardware, cpu = _cells(row, threads)
        extra = ["", "", ""] if "skipped" in row else [
            f"{row['latency_cycles']:,}", f"{row['estimate']['luts']:,}",
            f"{row['estimate']['dsp']}"]
        cells = hardware + cpu + (_sim_cells(row) if simulate else []) + extra
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""]
    for row in rows:
        if "skipped" in row:
            lines.append(f"- {row['model']}: not imported, so no hardware figures: "
                         f"{row['skipped']}")
            continue
        fit = "fits" if row["estimate"]["fits"] else \
            "does not fit: " + "; ".join(row["estimate"]["overruns"])
        refused = f"; {row['fold_refused']}" if row["fold_refused"] else ""
        lines.append(f"- {row['model']}: {row['stages']} stages, MAC stages {row['folding']}"
                     f"{refused}. On {board} this design {fit}.")
        if not row["litert"]["ref_equals_fixture"]:
            lines.append(f"- {row['model']}: LiteRT REF does NOT reproduce the fixture's "
                         "stored outputs.")
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------

def parse_build_reports(items, names):
    """``MODEL=report.json`` items -> ``{model: (fmax_mhz, "report.json")}``."""
    clocks = {}
    for item in items or ():
        model, sep, path = item.partition("=")
        if not sep or model not in names:
            raise ValueError(f"--build-report must be MODEL=report.json with MODEL one of "
                             f"{', '.join(names)}, not {item!r}")
        try:
            fmax = json.loads(Path(path).read_text())["fmax_mhz"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"--build-report {item}: no fmax_mhz read from {path} "
                             f"({error})") from None
        clocks[model] = (float(fmax), path)
    return clocks


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    entries = manifest()
    names = [entry["name"] for entry in entries]
    parser.add_argument("--models", default=",".join(names),
                        help=f"fixtures to bench (default: all: {', '.join(names)})")
    parser.add_argument("--board", choices=sorted(BOARDS), default="ulx3s-85f",
                        help="board of the block RAM/LUT/DSP estimates (default ulx3s-85f)")
    parser.add_argument("--fold", action="store_true",
                        help="fold the MAC stages for --board where the model fits it")
    parser.add_argument("--cycles-per-pixel", type=int, default=4,
                        help="otherwise, the import's balance (default 4)")
    parser.add_argument("--clock-mhz", type=float, default=DEFAULT_CLOCK_MHZ,
                        help=f"clock of fps and GMAC/s (default {DEFAULT_CLOCK_MHZ:g}: a "
                             f"{REFERENCE_CLOCK_NOTE})")
    parser.add_argument("--build-report", action="append", metavar="MODEL=report.json",
                        help="use the fmax_mhz of a `rasterflow build --report` for MODEL")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="wall time each LiteRT rate is measured over (default 1.5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="XNNPACK's second thread count (default: every core)")
    parser.add_argument("--simulate", action="store_true",
                        help="also run each model in Verilator (many minutes per model)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="write models.json and models.md here (default bench/results)")
    args = parser.parse_args(argv)
    chosen = args.models.split(",")
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    try:
        fmax = parse_build_reports(args.build_report, names)
    except ValueError as error:
        parser.error(str(error))
    if args.seconds <= 0 or args.threads < 1 or args.clock_mhz <= 0:
        parser.error("--seconds and --clock-mhz must be positive, --threads at least 1")
    rows = []
    with tqdm([e for e in entries if e["name"] in chosen], desc="models", unit="model",
              file=sys.stderr) as progress:
        for entry in progress:
            mhz, source = fmax.get(entry["name"], (args.clock_mhz, "reference"))
            rows.append(bench_model(entry, args, (mhz, source), progress))
    print_table(rows, args.threads, args.simulate)
    meta = {"board": args.board, "fold": args.fold, "cycles_per_pixel": args.cycles_per_pixel,
            "clock_mhz": args.clock_mhz, "clock_note": REFERENCE_CLOCK_NOTE,
            "seconds": args.seconds, "xnnpack_threads": args.threads, "simulate": args.simulate,
            "litert_version": version("ai-edge-litert"), "cpu": _cpu_name(),
            "cpus": os.cpu_count(),
            "command": " ".join(["python bench/bench_models.py", *(argv or sys.argv[1:])])}
    write_json(args.out / "models.json", {"meta": meta, "models": rows})
    atomic_write_text(args.out / "models.md", markdown(rows, meta))
    print(f"wrote {args.out / 'models.json'} and {args.out / 'models.md'}")
    sim_failed = any(not (r["simulation"]["bit_exact"] and r["simulation"]["equals_litert"])
                     for r in rows if "simulation" in r)
    return 1 if sim_failed else 0


if __name__ == "__main__":
    sys.exit(main())
