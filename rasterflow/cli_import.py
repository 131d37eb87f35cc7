"""``rasterflow import MODEL.tflite -o SPEC.toml [--layers A:B]``: int8 TFLite -> spec + sidecar.

The spec gets one named ``[[stage]]`` per imported node (see :mod:`rasterflow.stages_cnn`),
reading the stages (or the ``input``) the model's graph says, the model's outputs as the
spec's ``outputs``, and a ``[model]`` table with the edges the host handles
(:mod:`rasterflow.model_io`). Scalars are in the TOML, the weight/bias arrays in ``SPEC.npz``
beside it (written by :func:`rasterflow.tflite_import.save_sidecar`; keys
``layer<i>.<field>``). MAC stages get rate-balanced ``pe``/``simd`` from
:func:`~rasterflow.stages_cnn.fold_for_budget`, or with ``--board B`` the folding
:func:`rasterflow.fold.fold` chooses for that board.

Everything is validated first (model import, stages, the pipeline's geometry, with a board
the fit); then the sidecar and the spec are each written atomically (temporary file +
``os.replace``). On any error nothing is left behind.
"""
import tomllib
from pathlib import Path

import numpy as np
import tomli_w

from .errors import InputError, SpecError
from .files import atomic_write_text
from .model_io import ModelIO
from .tflite_import import stream_shape

__all__ = ["add_import_command", "cmd_import", "import_model", "parse_layers"]

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def parse_layers(text):
    """``"A:B"`` -> ``(A, B)`` (operators ``A .. B-1``); ``A`` or ``B`` may be omitted."""
    if text is None:
        return None
    start, sep, stop = text.partition(":")
    if not sep:
        raise InputError(f"--layers must be A:B (operators A..B-1), not {text!r}")
    try:
        return (int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError:
        raise InputError(f"--layers must be A:B with integers, not {text!r}") from None


def _module_name(stem):
    name = "".join(c if c in _NAME_CHARS else "_" for c in stem) or "cnn"
    return "m_" + name if name[0].isdigit() else name


def _stream_size(shape):
    height, width, channels = stream_shape(shape)
    return width, height, channels


def _stage_tables(model, sidecar, cycles_per_pixel, model_path):
    """``(nodes, tables)``: a pipeline node and a spec table per imported node."""
    from .pipeline import Node
    from .stages_cnn import fold_for_budget, stage_from_layer
    from .tflite_import import layer_dicts

    width, height, _ = _stream_size(model.input_shape)
    plan = fold_for_budget([(node.layer, np.prod(node.stream_shape[:2])) for node in model.nodes],
                           cycles_per_pixel * width * height)
    nodes, tables = [], []
    for node, fold, (params, arrays) in zip(model.nodes, plan, layer_dicts(model)):
        # Each array field refers to the key save_sidecar stores it under.
        refs = {name: f"{sidecar.name}:{key}" for name, key in params.items()
                if isinstance(key, str) and key in arrays}
        pe, simd = fold if fold else (0, 0)
        try:
            stage = stage_from_layer(node.layer, op_name=node.op_name, refs=refs, pe=pe,
                                     simd=simd)
        except SpecError as error:
            raise InputError(f"model {model_path}: operator {node.op_index} "
                             f"({node.op_name}) cannot be a stage: {error}") from None
        nodes.append(Node(node.name, stage, node.inputs))
        tables.append({"name": node.name, "inputs": list(node.inputs), **stage.to_table()})
    return nodes, tables


def import_model(model_path, spec_path, *, layers=None, name=None, cycles_per_pixel=4,
                 board=None):
    """Import ``model_path`` and write ``spec_path`` (TOML) + its ``.npz`` sidecar.

    ``board`` (a board name): fold the MAC stages for it (:func:`rasterflow.fold.fold`)
    instead of balancing them for ``cycles_per_pixel``.

    Returns the validated :class:`~rasterflow.pipeline.Pipeline`. Raises
    :class:`InputError` (bad model, range, paths), :class:`SpecError` or
    :class:`~rasterflow.fold.DoesNotFit`; on error no file is written or left behind.
    """
    from .pipeline import Pipeline
    from .spec import InputSpec, parse_spec
    from .tflite_import import ModelError, load_tflite, save_sidecar

    model_path, spec_path = Path(model_path), Path(spec_path)
    if spec_path.suffix.lower() != ".toml":
        raise InputError(f"output {spec_path}: the spec must be a .toml file")
    sidecar = spec_path.with_suffix(".npz")
    if cycles_per_pixel < 1:
        raise InputError(f"--cycles-per-pixel must be at least 1, not {cycles_per_pixel}")
    try:
        model = load_tflite(model_path,
                            layers=None if layers is None else (layers[0] or 0, layers[1]))
    except ModelError as error:
        raise InputError(f"model {error}") from None
    width, height, channels = _stream_size(model.input_shape)
    nodes, tables = _stage_tables(model, sidecar, cycles_per_pixel, model_path)
    outputs = list(dict.fromkeys(output.node for output in model.outputs))
    edges = ModelIO(model.input, model.outputs)
    name = name or _module_name(spec_path.stem)
    try:
        input_spec = InputSpec(width=width, height=height, channels=channels, dtype="int8")
        pipeline = Pipeline(input_spec, nodes, name=name, outputs=outputs, model=edges)
    except SpecError as error:
        raise InputError(f"model {model_path}: the imported layers do not form a pipeline: "
                         f"{error}") from None
    note = f"pe/simd: rate-balanced for one input pixel every {cycles_per_pixel} cycles."
    if board is not None:
        pipeline, tables, note = _fold_for_board(pipeline, tables, board)
    doc = {"name": name, "outputs": outputs,
           "input": {"width": width, "height": height, "channels": channels, "dtype": "int8"},
           "model": edges.to_table(), "stage": tables}
    text = ("# Imported by `rasterflow import` from "
            f"{model_path.name} (operators {min(model.op_indices)}..{max(model.op_indices)}).\n"
            f"# Arrays: {sidecar.name}. {note}\n" + tomli_w.dumps(doc))
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    existed = sidecar.exists()
    save_sidecar(model, sidecar)
    try:
        atomic_write_text(spec_path, text)
        # The written pair must load back as the same pipeline.
        parse_spec(tomllib.loads(text), base_dir=spec_path.parent)
    except BaseException:
        if not existed:
            sidecar.unlink(missing_ok=True)
        raise
    return pipeline


def _fold_for_board(pipeline, tables, board):
    """The pipeline and spec tables with the MAC stages folded for ``board``, and the
    spec's note on the folding."""
    from .cli_fold import folding_note
    from .fold import fold

    folding = fold(pipeline, board)
    tables = [{**table, "pe": folding.stages[table["name"]].pe,
               "simd": folding.stages[table["name"]].simd}
              if table["name"] in folding.stages else table for table in tables]
    return folding.pipeline, tables, folding_note(folding.report)


def cmd_import(args):
    layers = parse_layers(args.layers)
    pipeline = import_model(args.model, args.output, layers=layers, name=args.name,
                            cycles_per_pixel=args.cycles_per_pixel, board=args.board)
    sidecar = Path(args.output).with_suffix(".npz")
    outputs = ", ".join(f"{'x'.join(map(str, o.shape[1:]))} {o.dtype}" for o in pipeline.model.outputs)
    print(f"import: {args.output} + {sidecar} ({len(pipeline.stages)} stages; input "
          f"{'x'.join(map(str, pipeline.model.input.shape[1:]))} {pipeline.model.input.dtype} "
          f"-> {outputs})")
    if args.board:
        from .fold import assess
        print(assess(pipeline, args.board).text())
    return 0


def add_import_command(subparsers):
    """Register ``import`` on the CLI's subparsers."""
    p = subparsers.add_parser("import", help="turn an int8 TFLite model into a spec + sidecar")
    p.add_argument("model", help="int8 .tflite model")
    p.add_argument("-o", "--output", required=True, help="spec to write (.toml); the arrays "
                                                          "go to the same name with .npz")
    p.add_argument("--layers", help="operators A:B to import (A..B-1; default all)")
    p.add_argument("--name", help="Verilog module name (default: from the spec's file name)")
    p.add_argument("--cycles-per-pixel", type=int, default=4,
                   help="input pixel rate the pe/simd folding is balanced for (default 4; "
                        "not used with --board)")
    from .boards.platforms import BOARDS
    p.add_argument("--board", choices=sorted(BOARDS),
                   help="fold pe/simd for the most frames per second on this board "
                        "(`rasterflow fold`), refusing a model that cannot fit")
    p.set_defaults(func=cmd_import)
    return p
