"""The ``rasterflow`` command line."""
import argparse
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError, RasterflowError
from .files import (atomic_write_text, comparison_image, read_image, write_image, write_json,
                    write_outputs)
from .model_io import model_outputs, read_model_input
from .spec import load_spec

__all__ = ["main"]


def _check_output_path(out, pipeline):
    """``OUT`` as given, unless it names a ``.png`` that cannot hold an output."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        return out
    for name, fmt in pipeline.output_formats.items():
        if fmt.dtype != "uint8" or fmt.channels not in (1, 3):
            which = f"output {name!r}" if len(pipeline.outputs) > 1 else "the pipeline"
            raise InputError(f"output {out}: {which} produces {fmt.channels} channel(s) of "
                             f"{fmt.dtype}, which a PNG cannot hold; name the output .npy "
                             f"(or .npz)")
    return out


def _by_output(results, pipeline, batched):
    """``{name: frame or batch}`` from per-frame ``{name: frame}`` results; for a model spec
    ``{"output0": tensor, ...}`` as LiteRT returns them."""
    if pipeline.model is not None:
        frames = {name: np.stack([r[name] for r in results]) for name in pipeline.outputs}
        return model_outputs(pipeline.model, frames, batched)
    return {name: _as_written([r[name] for r in results], batched) for name in pipeline.outputs}


def _named(outputs, pipeline):
    """A simulation's per-frame outputs as ``{name: frame}`` (one output: bare arrays)."""
    return [{pipeline.outputs[0]: o} if len(pipeline.outputs) == 1 else o for o in outputs]


def load_batch(pipeline, path):
    """The frames in an image file (a model spec: its input tensor), checked against the
    spec, and whether it was a batch."""
    if pipeline.model is not None:
        frames, batched = read_model_input(pipeline.model.input, path)
        return np.stack([pipeline.check_frame(f, f"input {path}") for f in frames]), batched
    array = read_image(path)
    frames = list(array) if array.ndim == 4 else [array]
    checked = [pipeline.check_frame(f, f"image {path}" + (f" frame {k}" if array.ndim == 4 else ""))
               for k, f in enumerate(frames)]
    return np.stack(checked), array.ndim == 4


def _as_written(frames, batched):
    return np.stack(frames) if batched else frames[0]


def cmd_golden(args):
    pipeline = load_spec(args.spec)
    batch, batched = load_batch(pipeline, args.image)
    out = _check_output_path(args.output, pipeline)
    results = [pipeline.golden_outputs(f) for f in batch]
    paths = write_outputs(out, _by_output(results, pipeline, batched))
    formats = ", ".join(f"{name}: {b.out_width}x{b.out_height} {b.out_format}"
                        for name, b in ((n, pipeline.output(n)) for n in pipeline.outputs))
    print(f"golden: {', '.join(map(str, paths))} ({formats})")
    return 0


def _sim_and_report(pipeline, batch, batched, *, output, simulator, frames, stall, seed, vcd, report,
                    progress=True, comparison=None):
    from .sim.session import simulate

    if frames < 1:
        raise InputError(f"--frames must be at least 1, not {frames}")
    if not 0.0 <= stall < 1.0:
        raise InputError(f"--stall must be in [0, 1), not {stall}")
    out_path = _check_output_path(output, pipeline) if output else None
    result = simulate(pipeline, batch, frames=frames, simulator=simulator, stall=stall,
                      seed=seed, vcd=vcd, progress=progress)
    written = []
    if out_path is not None and len(result.outputs) >= len(batch):
        written += write_outputs(out_path, _by_output(_named(result.outputs[:len(batch)],
                                                             pipeline), pipeline, batched))
    if result.outputs and (comparison or not result.bit_exact):
        worst = max(range(len(result.outputs)), key=lambda k: result.frame_mismatches[k])
        picture = comparison or (out_path.with_name(out_path.stem + "_diff.png") if out_path
                                 else Path("rasterflow_diff.png"))
        write_image(picture, _comparisons(pipeline, result.expected[worst],
                                          result.outputs[worst]))
        written.append(Path(picture))
    data = result.report()
    if report:
        write_json(report, data)
        written.append(Path(report))
    verdict = "BIT-EXACT" if result.bit_exact else "MISMATCH"
    print(f"{verdict}: {result.frames} frame(s) of {result.width}x{result.height} on "
          f"{result.simulator}: {result.mismatches} mismatching values, "
          f"{result.marker_errors} sof/eol errors")
    print(f"cycles {result.cycles} (latency {result.latency_cycles}), "
          f"{data['pixels_per_cycle']:.4f} pixels/cycle, "
          f"{result.sim_cycles_per_second:,.0f} sim cycles/s, {result.wall_seconds:.1f} s")
    for path in written:
        print(f"wrote {path}")
    return result


def _comparisons(pipeline, expected, actual):
    """Labelled golden | hardware | diff rows, one per output, stacked."""
    if len(pipeline.outputs) == 1:
        return comparison_image(expected, actual)
    rows = [comparison_image(expected[name], actual[name], title=name)
            for name in pipeline.outputs]
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)),
                                  constant_values=255) for row in rows])


def cmd_sim(args):
    pipeline = load_spec(args.spec)
    batch, batched = load_batch(pipeline, args.image)
    result = _sim_and_report(pipeline, batch, batched, output=args.output, simulator=args.simulator,
                             frames=args.frames, stall=args.stall, seed=args.seed, vcd=args.vcd,
                             report=args.report, progress=not args.quiet)
    return 0 if result.bit_exact else 1


def cmd_verilog(args):
    from .sim.session import pipeline_verilog

    pipeline = load_spec(args.spec)
    if args.name:
        pipeline.name = args.name
    text = pipeline_verilog(pipeline)
    atomic_write_text(args.output, text)
    print(f"wrote {args.output} (module {pipeline.name}, {len(text.splitlines())} lines)")
    return 0


def cmd_demo(args):
    out_dir = Path(args.out_dir)
    data = resources.files("rasterflow") / "data"
    with resources.as_file(data / "demo.toml") as spec_path:
        pipeline = load_spec(spec_path)
        spec_text = spec_path.read_text()
    with resources.as_file(data / "camera.png") as image_path:
        frame = pipeline.check_frame(read_image(image_path))
    print(f"rasterflow demo: {pipeline.name}, {pipeline.width}x{pipeline.height} "
          f"{pipeline.input_format} -> {pipeline.output_format}")
    atomic_write_text(out_dir / "demo.toml", spec_text)
    write_image(out_dir / "input.png", frame)
    golden = pipeline.golden(frame)
    write_image(out_dir / "golden.png", golden)
    from .sim.session import pipeline_verilog
    atomic_write_text(out_dir / f"{pipeline.name}.v", pipeline_verilog(pipeline))
    print(f"wrote {out_dir / (pipeline.name + '.v')}")
    result = _sim_and_report(pipeline, frame[None], False, output=out_dir / "hardware.png",
                             simulator=args.simulator, frames=args.frames, stall=0.0, seed=0,
                             vcd=None, report=out_dir / "report.json",
                             comparison=out_dir / "comparison.png")
    return 0 if result.bit_exact else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rasterflow",
        description="Streaming image pipelines for FPGAs, proven bit-exact in simulation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("golden", help="run the numpy golden model")
    p.add_argument("spec")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help=".png (uint8 1/3 channels) or .npy")
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("sim", help="simulate the hardware and compare with the golden model")
    p.add_argument("spec")
    p.add_argument("image")
    p.add_argument("-o", "--output", help="hardware output (.png or .npy)")
    p.add_argument("--simulator", choices=("amaranth", "verilator"), default="verilator")
    p.add_argument("--frames", type=int, default=1, help="back-to-back frames (default 1)")
    p.add_argument("--stall", type=float, default=0.0,
                   help="probability of an input gap / output stall per cycle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vcd", help="waveform file")
    p.add_argument("--report", help="JSON report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("verilog", help="write the pipeline's Verilog")
    p.add_argument("spec")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--name", help="top module name (default: the spec's name)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("demo", help="filter the bundled sample image and prove it bit-exact")
    p.add_argument("--out-dir", default="demo-output")
    p.add_argument("--simulator", choices=("amaranth", "verilator"), default="verilator")
    p.add_argument("--frames", type=int, default=1)
    p.set_defaults(func=cmd_demo)
    from .cli_import import add_import_command
    add_import_command(sub)
    from .cli_fold import add_fold_command
    add_fold_command(sub)
    from .cli_boards import add_board_commands
    add_board_commands(sub, load_spec)
    from .cli_sweep import add_sweep_command
    add_sweep_command(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RasterflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
