"""Pipeline specs: TOML files (or Python dicts / objects) describing an image pipeline.

A spec has an ``[input]`` table and one ``[[stage]]`` table per stage; stages form a graph
(``name``, ``inputs``; ``outputs`` at the top level), a chain by default::

    name = "blur"            # optional: the Verilog module name

    [input]
    width = 512
    height = 512
    channels = 1             # 1 (gray) or 3 (RGB, interleaved per pixel)
    dtype = "uint8"
    pixels_per_clock = 1     # 1, 2, 4 or 8 pixels per stream transfer

    [[stage]]
    op = "filter2d"
    kernel = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    shift = 4

A spec imported from a model also has a ``[model]`` table: how the model's input and
output tensors map to the streams (:mod:`rasterflow.model_io`).

Every problem is a :class:`SpecError` whose message starts with the field it concerns
(``stage[1].kernel: ...``) and names the allowed values.
"""
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SpecError
from .model_io import parse_model
from .golden.pixel import DTYPES, PixelFormat
from .params import (MAX_DIMENSION, PIXELS_PER_CLOCK, check_choice, check_int, check_name,
                     from_table)
from .pipeline import Node, Pipeline
from .stages import stage_from_table

__all__ = ["SpecError", "InputSpec", "load_spec", "parse_spec"]

@dataclass(frozen=True)
class InputSpec:
    """The input stream: frame size and pixel format."""
    width: int
    height: int
    channels: int = 1
    dtype: str = "uint8"
    pixels_per_clock: int = 1

    def __post_init__(self):
        check_int("width", self.width, 1, MAX_DIMENSION)
        check_int("height", self.height, 1, MAX_DIMENSION)
        check_int("channels", self.channels, 1, 1024)
        check_choice("dtype", self.dtype, tuple(DTYPES))
        check_choice("pixels_per_clock", self.pixels_per_clock, PIXELS_PER_CLOCK)

    @property
    def format(self):
        return PixelFormat(self.channels, self.dtype)


def parse_spec(doc, *, base_dir=None):
    """Turn a parsed TOML document into a :class:`~rasterflow.pipeline.Pipeline`."""
    if not isinstance(doc, dict):
        raise SpecError("spec", "must be a table")
    allowed = {"name", "input", "stage", "outputs", "model"}
    for key in doc:
        if key not in allowed:
            raise SpecError(key, f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
    name = check_name("name", doc.get("name", "rasterflow_top"))
    if "input" not in doc:
        raise SpecError("input", "is required")
    input_spec = from_table(InputSpec, doc["input"], "input")
    stages = doc.get("stage")
    if not isinstance(stages, list) or not stages:
        raise SpecError("stage", "must be a non-empty array of tables ([[stage]])")
    nodes = []
    for index, table in enumerate(stages):
        stage = stage_from_table(table, f"stage[{index}]", base_dir=base_dir)
        inputs = table.get("inputs")
        if inputs is not None and (not isinstance(inputs, list) or not inputs):
            raise SpecError(f"stage[{index}].inputs",
                            f"must be a non-empty list of stage names or 'input', not {inputs!r}")
        nodes.append(Node(table.get("name", f"stage{index}"), stage,
                          None if inputs is None else tuple(inputs)))
    model = parse_model(doc["model"]) if "model" in doc else None
    return Pipeline(input_spec, nodes, name=name, outputs=doc.get("outputs"), model=model)


def load_spec(path):
    """Read and validate a TOML spec file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError("spec", f"cannot read {path}: {error.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError("spec", f"{path} is not valid TOML: {error}") from None
    return parse_spec(doc, base_dir=path.parent)
