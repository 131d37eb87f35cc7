"""Board subcommands for the rasterflow CLI: ``boards``, ``build``, ``flash``, ``run``.

The CLI owner calls :func:`add_board_commands` with its argparse subparsers and a
``load_pipeline(spec_path)`` callable; every subcommand sets ``func`` so that
``args.func(args)`` runs it and returns the exit status (0 on success; 1 on an error or, for
``run``, on a frame the link could not carry intact after its retries, or on any difference
from the golden model). ``run`` writes its outputs (every output of a graph pipeline, see
:func:`rasterflow.files.write_outputs`) only from a frame that passed the link's CRC, length
and status checks, and atomically: a failed run leaves no output file.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .files import (atomic_write_bytes, comparison_image, output_paths, write_image,
                    write_outputs)
from .model_io import model_outputs, read_model_input

__all__ = ["add_board_commands", "find_port", "load_frame"]


_PNG_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def load_frame(path, fmt, height, width):
    """An ``H x W x C`` input frame from a PNG/JPEG (uint8 formats with 1, 3 or 4 channels)
    or a ``.npy`` array."""
    path = Path(path)
    if path.suffix == ".npy":
        frame = np.load(path)
    else:
        if fmt.dtype != "uint8" or fmt.channels not in _PNG_MODES:
            raise ValueError(f"pipeline input {fmt} cannot come from an image file; pass a "
                             f".npy array of shape ({height}, {width}, {fmt.channels})")
        from PIL import Image
        with Image.open(path) as image:
            frame = np.asarray(image.convert(_PNG_MODES[fmt.channels]))
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape != (height, width, fmt.channels):
        raise ValueError(f"{path} is {frame.shape} (H x W x C); the pipeline takes "
                         f"({height}, {width}, {fmt.channels})")
    if frame.size and (frame.min() < fmt.min or frame.max() > fmt.max):
        raise ValueError(f"{path} has values outside {fmt}")
    return frame.astype(fmt.np_dtype)


#: Channel counts of uint8 frames that :func:`rasterflow.files.write_image` writes as PNG.
_PNG_OUTPUT_CHANNELS = (1, 3)


def _check_output_path(path, formats):
    """Refuse, before the board runs, an output path that cannot hold every output."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".png", ".npz"):
        raise ValueError(f"output path {path} must end in .npy, .png or .npz")
    for name, fmt in formats.items():
        if suffix == ".png" and (fmt.dtype != "uint8"
                                 or fmt.channels not in _PNG_OUTPUT_CHANNELS):
            which = f"output {name!r} ({fmt})" if len(formats) > 1 else f"output {fmt}"
            raise ValueError(f"{which} cannot be saved as PNG; use a .npy output path")


def _diff_paths(path, names):
    """``<stem>.diff.png`` beside each output's file (per output, also when an ``.npz`` holds
    them all)."""
    return {name: each.with_suffix(".diff.png")
            for name, each in output_paths(path.with_suffix(".png"), names).items()}


def _diff_picture(expected, got, name, single):
    """One output's diff picture: for a single output, differing pixels white on black; for
    one of several, the labelled golden | board | diff comparison."""
    if single:
        return (np.any(got != expected, axis=2) * 255).astype(np.uint8)[:, :, None]
    return comparison_image(expected, got, title=name)


def find_port(board):
    """The serial device of ``board``'s USB-UART, from its USB ids and interface."""
    from serial.tools import list_ports
    vid, pid, interface = board.usb_uart
    matches = []
    for port in list_ports.comports():
        if port.vid != vid or port.pid != pid:
            continue
        # location ends in ":<configuration>.<interface>" on Linux.
        location = port.location or ""
        if ":" in location and location.rsplit(".", 1)[-1] != str(interface):
            continue
        matches.append(port.device)
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(matches)
        raise ValueError(f"cannot pick the serial port of {board.name} (USB {vid:04x}:{pid:04x} "
                         f"interface {interface}; found {found}): pass --port")
    return matches[0]


def _cmd_boards(args):
    from .boards.platforms import BOARDS
    print(f"{'board':<12} {'device':<11} {'clock':>9}  {'UART rx/tx (FPGA pins)':<24} "
          f"{'baud':>9}  programmer")
    for board in BOARDS.values():
        pins = board.uart_pins()
        print(f"{board.name:<12} {board.device:<11} {board.clock_hz / 1e6:>5g} MHz  "
              f"{pins['rx'] + ' / ' + pins['tx']:<24} {board.default_baud:>9}  "
              f"{board.programmer.command}")
    return 0


def _default_build_dir(board_name):
    return Path("build") / board_name


def _cmd_build(args, load_pipeline):
    from .boards.build import BuildError, build
    pipeline = load_pipeline(args.spec)
    build_dir = args.build_dir or _default_build_dir(args.board)
    try:
        report = build(pipeline, args.board, build_dir, baud=args.baud,
                       clock_mhz=args.clock_mhz, progress=not args.quiet)
    except (BuildError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.report:
        atomic_write_bytes(args.report, (json.dumps(report, indent=2) + "\n").encode())
    print(f"{report['board']} ({report['device']}): {report['luts']} LUTs, {report['ffs']} FFs, "
          f"{report['brams']} BRAM, {report['dsps']} DSP; Fmax {report['fmax_mhz']:.1f} MHz "
          f"at {report['clock_mhz']:g} MHz; {report['build_seconds']:.0f} s")
    print(f"bitstream: {report['bitstream']}")
    if "fps_at_fmax" in report:
        print(f"pipeline: {report['frame_cycles']:,} cycles per frame: "
              f"{report['fps_at_fmax']:,.1f} frames/s at Fmax")
    if not report["timing_met"]:
        print(f"warning: Fmax {report['fmax_mhz']:.1f} MHz is below the "
              f"{report['clock_mhz']:g} MHz clock", file=sys.stderr)
        return 1
    return 0


def _cmd_flash(args):
    from .boards.build import ProgrammerError, flash
    from .boards.platforms import get_board
    try:
        board = get_board(args.board)
        bitstream = args.bitstream or (_default_build_dir(args.board)
                                       / f"top.{board.family_info.bitstream_suffix}")
        output = flash(args.board, bitstream)
    except (ProgrammerError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if output:
        print(output, end="")
    print(f"flashed {bitstream} to {args.board}")
    return 0


def _cmd_run(args, load_pipeline):
    import serial

    from .boards.host import LinkError, link_plan, run_on_board
    from .boards.platforms import get_board
    pipeline = load_pipeline(args.spec)
    output_path = Path(args.output or f"{Path(args.image).stem}.{pipeline.name}.{args.board}.npy")
    try:
        board = get_board(args.board)
        layout = link_plan(pipeline).output
        _check_output_path(output_path, layout.formats)
        frame = _input_frame(pipeline, args.image)
        port = args.port or find_port(board)
        baud = args.baud or board.default_baud
        got = layout.named(run_on_board(pipeline, frame, port, baud, timeout=args.timeout,
                                        retries=args.retries,
                                        report=lambda message: print(f"warning: {message}",
                                                                     file=sys.stderr)))
    except (LinkError, serial.SerialException, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return _save_and_compare(layout, got, pipeline.golden_outputs(frame), output_path,
                             pipeline.model)


def _input_frame(pipeline, path):
    """The frame ``rasterflow run`` sends: from an image, or for a model spec from the
    model's input tensor (one, without the batch axis) as LiteRT takes it."""
    if pipeline.model is None:
        return load_frame(path, pipeline.input_format, pipeline.height, pipeline.width)
    frames, batched = read_model_input(pipeline.model.input, path)
    if batched:
        raise ValueError(f"{path} holds {len(frames)} inputs; run sends one input tensor "
                         f"{list(pipeline.model.input.shape[1:])} (no batch axis)")
    return frames[0]


def _save_and_compare(layout, got, golden, output_path, model=None):
    """Write the board's outputs (a model spec's: the tensors LiteRT returns) and a diff
    picture per output; compare each with the golden model and report. The exit status: 1 if
    any output differs."""
    tensors = got if model is None else model_outputs(
        model, {name: frame[None] for name, frame in got.items()}, batched=False)
    written = write_outputs(output_path, tensors)
    diff_paths = _diff_paths(output_path, list(got))
    mismatched = False
    for name, fmt in layout.formats.items():
        expected = np.asarray(golden[name]).reshape(got[name].shape).astype(fmt.np_dtype)
        written.append(write_image(diff_paths[name], _diff_picture(expected, got[name], name,
                                                                   layout.single)))
        label = "" if layout.single else f"output {name!r}: "
        mismatched |= _report_mismatch(label, expected, got[name], diff_paths[name])
    if mismatched:
        return 1
    shapes = {name: f"{'x'.join(map(str, got[name].shape))} {fmt.dtype}"
              for name, fmt in layout.formats.items()}
    if layout.single:
        (shape,) = shapes.values()
        what = f"{shape} output matches"
    else:
        what = "outputs " + ", ".join(f"{name} ({shape})" for name, shape in shapes.items()) \
            + " match"
    paths = [str(path) for path in written]
    print(f"bit-exact: {what} the golden model; wrote {', '.join(paths[:-1])} and "
          f"{paths[-1]}")
    return 0


def _report_mismatch(label, expected, got, diff_path):
    """Print where an output (named in ``label``) differs from the golden model; whether it
    does."""
    differs = np.any(got != expected, axis=2)
    if not differs.any():
        return False
    ys, xs = np.nonzero(differs)
    print(f"MISMATCH: {label}{differs.sum()} of {differs.size} output pixels differ from the "
          f"golden model (first at row {ys[0]}, column {xs[0]}: board "
          f"{got[ys[0], xs[0]].tolist()}, golden {expected[ys[0], xs[0]].tolist()}); "
          f"diff image {diff_path}", file=sys.stderr)
    return True


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def add_board_commands(subparsers, load_pipeline):
    """Register ``boards``, ``build``, ``flash`` and ``run`` on an argparse subparsers object."""
    from .boards.platforms import BOARDS
    board_names = sorted(BOARDS)

    p = subparsers.add_parser("boards", help="list supported boards")
    p.set_defaults(func=_cmd_boards)

    p = subparsers.add_parser("build", help="build a bitstream of a pipeline behind the "
                                            "UART bridge")
    p.add_argument("spec", help="pipeline spec file")
    p.add_argument("--board", required=True, choices=board_names)
    p.add_argument("--build-dir", type=Path, help="default: build/<board>")
    p.add_argument("--report", type=Path, help="write the build report (JSON) here")
    p.add_argument("--baud", type=int, help="UART baud rate (default: the board's)")
    p.add_argument("--clock-mhz", type=float, help="pipeline clock through the PLL "
                                                   "(default: the board oscillator)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=lambda args: _cmd_build(args, load_pipeline))

    p = subparsers.add_parser("flash", help="load a bitstream into the board's FPGA")
    p.add_argument("bitstream", nargs="?", type=Path,
                   help="default: build/<board>/top.bin or top.bit")
    p.add_argument("--board", required=True, choices=board_names)
    p.set_defaults(func=_cmd_flash)

    p = subparsers.add_parser("run", help="send an image through the board and compare "
                                          "with the golden model")
    p.add_argument("spec", help="pipeline spec file")
    p.add_argument("image", help="input image (PNG/JPEG) or .npy array (H x W x C)")
    p.add_argument("--board", required=True, choices=board_names)
    p.add_argument("--port", help="serial port (default: found from the board's USB ids)")
    p.add_argument("--baud", type=int, help="UART baud rate (default: the board's)")
    p.add_argument("--timeout", type=float, default=2.0,
                   help="seconds without data before an attempt fails (default: 2)")
    p.add_argument("--retries", type=_non_negative_int, default=2,
                   help="times to resend a frame that failed the link's CRC, length or "
                        "status check or timed out (default: 2)")
    p.add_argument("-o", "--output",
                   help="output .npy (any format), .png (uint8, 1 or 3 channels) or .npz "
                        "(every output in one file); several outputs go to "
                        "<stem>_<name><suffix> each; a <stem>.diff.png per output file "
                        "marks differing pixels")
    p.set_defaults(func=lambda args: _cmd_run(args, load_pipeline))
