"""``rasterflow fold SPEC.toml --board B -o OUT.toml``: fold a spec's MAC stages onto a board.

Loads the spec, chooses the ``pe``/``simd`` of its MAC stages for the most frames per second
on the board (:func:`rasterflow.fold.fold`), and writes the spec again with only those two
values changed in each MAC stage's table; everything else stays as it was (array references
name the same sidecar keys, their file made relative to ``OUT``'s folder when that differs;
the comment lines heading the file are kept, their ``pe/simd:`` note replaced). The report
(cycles per frame, frames per second at a reference clock, resources against the board's
budget, each MAC layer's folding) goes to stdout.

Nothing is written when the design cannot fit (:class:`~rasterflow.fold.DoesNotFit`) or when
the new spec would not load back; the output is written atomically.
"""
import os
import re
import tomllib
from pathlib import Path

import tomli_w

from .boards.platforms import BOARDS
from .errors import InputError
from .files import atomic_write_text
from .fold import REFERENCE_CLOCK_HZ, fold
from .params import SidecarArray, params_of
from .spec import load_spec, parse_spec

__all__ = ["add_fold_command", "cmd_fold", "fold_spec", "folding_note"]

_NOTE = re.compile(r"pe/simd: .*$")


def folding_note(report):
    """The spec comment saying how its ``pe``/``simd`` were chosen."""
    return (f"pe/simd: folded for {report.board.name} ({report.frame_cycles:,} cycles per "
            f"frame).")


def _header(text, note):
    """The comment lines heading ``text``, their ``pe/simd:`` note replaced by ``note`` (or
    ``note`` added as a line of its own)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    noted = [_NOTE.sub(lambda _: note, line) for line in lines]
    if noted == lines:
        noted.append(f"# {note}")
    return "\n".join(noted) + "\n"


def _rebase_references(table, stage, from_dir, to_dir):
    """Point ``table``'s sidecar references (``"FILE.npz:KEY"``, relative to ``from_dir``)
    at the same files from ``to_dir``."""
    for name, declared in params_of(type(stage)).items():
        reference = table.get(name)
        if declared.type is SidecarArray and isinstance(reference, str) and ":" in reference:
            file, key = reference.rsplit(":", 1)
            moved = os.path.relpath(Path(from_dir) / file, to_dir)
            table[name] = f"{Path(moved).as_posix()}:{key}"


def fold_spec(spec_path, out_path, board):
    """Fold the spec at ``spec_path`` onto ``board`` and write it to ``out_path``.

    Returns the :class:`~rasterflow.fold.Folding`. Raises
    :class:`~rasterflow.fold.DoesNotFit`, :class:`SpecError` or :class:`InputError` (also
    for a spec without MAC stages); on error nothing is written.
    """
    spec_path, out_path = Path(spec_path), Path(out_path)
    if out_path.suffix.lower() != ".toml":
        raise InputError(f"output {out_path}: the spec must be a .toml file")
    pipeline = load_spec(spec_path)
    text = spec_path.read_text()
    doc = tomllib.loads(text)
    folding = fold(pipeline, board)
    if not folding.stages:
        raise InputError(f"spec {spec_path} has no MAC stages (conv2d, depthwise_conv2d, "
                         f"fully_connected): there is no pe/simd to fold")
    from_dir, to_dir = spec_path.resolve().parent, out_path.resolve().parent
    # The spec's tables are in the order of its nodes.
    for table, node in zip(doc["stage"], pipeline.spec_nodes):
        if node.name in folding.stages:
            stage = folding.stages[node.name]
            table["pe"], table["simd"] = stage.pe, stage.simd
        if from_dir != to_dir:
            _rebase_references(table, node.stage, from_dir, to_dir)
    new_text = _header(text, folding_note(folding.report)) + tomli_w.dumps(doc)
    # The written spec must load back as the folded pipeline (its references, relative to
    # its folder, need the folder to exist).
    out_path.parent.mkdir(parents=True, exist_ok=True)
    parse_spec(tomllib.loads(new_text), base_dir=to_dir)
    atomic_write_text(out_path, new_text)
    return folding


def cmd_fold(args):
    if args.clock_mhz <= 0:
        raise InputError(f"--clock-mhz must be positive, not {args.clock_mhz}")
    folding = fold_spec(args.spec, args.output, args.board)
    print(f"fold: wrote {args.output} ({len(folding.stages)} MAC stages folded)")
    print(folding.report.text(args.clock_mhz * 1e6))
    return 0


def add_fold_command(subparsers):
    """Register ``fold`` on the CLI's subparsers."""
    p = subparsers.add_parser("fold", help="choose a spec's MAC pe/simd for the most frames "
                                           "per second on a board")
    p.add_argument("spec", help="spec (.toml) with MAC stages (conv2d, depthwise_conv2d, "
                                "fully_connected)")
    p.add_argument("--board", required=True, choices=sorted(BOARDS))
    p.add_argument("-o", "--output", required=True, help="folded spec to write (.toml)")
    p.add_argument("--clock-mhz", type=float, default=REFERENCE_CLOCK_HZ / 1e6,
                   help="clock for the frames/s figure (default 100: a reference, not the "
                        "board's Fmax)")
    p.set_defaults(func=cmd_fold)
    return p
