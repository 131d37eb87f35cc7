"""``rasterflow import MODEL.tflite -o SPEC.toml [--layers A:B]``: int8 TFLite -> spec + sidecar.

The spec gets one ``[[stage]]`` per imported operator (see :mod:`rasterflow.stages_cnn`) with
the scalars in the TOML and the weight/bias arrays in ``SPEC.npz`` beside it (written by
:func:`rasterflow.tflite_import.save_sidecar`; keys ``layer<i>.<field>``). Convolutions get
rate-balanced ``pe``/``simd`` from :func:`~rasterflow.stages_cnn.plan_folding`.

Everything is validated first (model import, stages, the pipeline's geometry); then the
sidecar and the spec are each written atomically (temporary file + ``os.replace``). On any
error nothing is left behind.
"""
import tomllib
from pathlib import Path

import tomli_w

from .errors import InputError, SpecError
from .files import atomic_write_text

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


def import_model(model_path, spec_path, *, layers=None, name=None, cycles_per_pixel=4):
    """Import ``model_path`` and write ``spec_path`` (TOML) + its ``.npz`` sidecar.

    Returns the validated :class:`~rasterflow.pipeline.Pipeline`. Raises
    :class:`InputError` (bad model, range, paths) or :class:`SpecError`; on error no file is
    written or left behind.
    """
    from .pipeline import Pipeline
    from .spec import InputSpec, parse_spec
    from .stages_cnn import plan_folding, stage_from_layer
    from .tflite_import import ModelError, layer_dicts, load_tflite, save_sidecar

    model_path, spec_path = Path(model_path), Path(spec_path)
    if spec_path.suffix.lower() != ".toml":
        raise InputError(f"output {spec_path}: the spec must be a .toml file")
    sidecar = spec_path.with_suffix(".npz")
    if cycles_per_pixel < 1:
        raise InputError(f"--cycles-per-pixel must be at least 1, not {cycles_per_pixel}")
    try:
        with_count = layers
        if layers is not None and (layers[0] is None or layers[1] is None):
            count = len(load_tflite(model_path).layers) if layers[1] is None else None
            with_count = (layers[0] or 0, layers[1] if layers[1] is not None else count)
        model = load_tflite(model_path, layers=with_count)
    except ModelError as error:
        raise InputError(f"model {error}") from None
    shape = tuple(model.input_shape)
    if len(shape) != 4:
        raise InputError(f"model {model_path}: input shape {list(shape)} is not NHWC")
    _, height, width, channels = shape
    plan = plan_folding(model.layers, height, width, cycles_per_pixel)
    stages, tables = [], []
    for index, (layer, op_name, fold, (params, arrays)) in enumerate(
            zip(model.layers, model.op_names, plan, layer_dicts(model))):
        # Each array field refers to the key save_sidecar stores it under.
        refs = {name: f"{sidecar.name}:{key}" for name, key in params.items() if key in arrays}
        pe, simd = fold if fold else (0, 0)
        try:
            stage = stage_from_layer(layer, op_name=op_name, refs=refs, pe=pe, simd=simd)
        except SpecError as error:
            raise InputError(f"model {model_path}: operator {model.op_indices[index]} "
                             f"({op_name}) cannot be a stage: {error}") from None
        stages.append(stage)
        table = stage.to_table()
        tables.append(table)
    name = name or _module_name(spec_path.stem)
    try:
        input_spec = InputSpec(width=width, height=height, channels=channels, dtype="int8")
        pipeline = Pipeline(input_spec, stages, name=name)
    except SpecError as error:
        raise InputError(f"model {model_path}: the imported layers do not form a pipeline: "
                         f"{error}") from None
    doc = {"name": name,
           "input": {"width": width, "height": height, "channels": channels, "dtype": "int8"},
           "stage": tables}
    text = ("# Imported by `rasterflow import` from "
            f"{model_path.name} (operators {model.op_indices[0]}..{model.op_indices[-1]}: "
            f"{', '.join(model.op_names)}).\n"
            f"# Arrays: {sidecar.name}. pe/simd: rate-balanced for one input pixel every "
            f"{cycles_per_pixel} cycles.\n" + tomli_w.dumps(doc))
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


def cmd_import(args):
    layers = parse_layers(args.layers)
    pipeline = import_model(args.model, args.output, layers=layers, name=args.name,
                            cycles_per_pixel=args.cycles_per_pixel)
    sidecar = Path(args.output).with_suffix(".npz")
    print(f"import: {args.output} + {sidecar} ({len(pipeline.stages)} stages: "
          f"{', '.join(s.op for s in pipeline.stages)}; {pipeline.width}x{pipeline.height}x"
          f"{pipeline.input_format.channels} -> {pipeline.out_width}x{pipeline.out_height}x"
          f"{pipeline.output_format.channels} int8)")
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
                   help="input pixel rate the pe/simd folding is balanced for (default 4)")
    p.set_defaults(func=cmd_import)
    return p
