"""Pipeline specs: TOML files (or Python dicts / objects) describing an image pipeline.

A spec has an ``[input]`` table and one ``[[stage]]`` table per stage::

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

Every problem is a :class:`SpecError` whose message starts with the field it concerns
(``stage[1].kernel: ...``) and names the allowed values.
"""
import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SpecError
from .golden.pixel import DTYPES, PixelFormat

__all__ = ["SpecError", "InputSpec", "load_spec", "parse_spec", "from_table", "check_int",
           "check_choice", "MAX_DIMENSION"]

MAX_DIMENSION = 4096
PIXELS_PER_CLOCK = (1, 2, 4, 8)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_int(field, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SpecError(field, f"must be an integer in {lo}..{hi}, not {value!r}")
    return value


def check_choice(field, value, choices):
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise SpecError(field, f"must be one of {allowed}, not {value!r}")
    return value


def from_table(cls, table, where):
    """Build dataclass ``cls`` from a TOML table, naming unknown and missing keys."""
    if not isinstance(table, dict):
        raise SpecError(where, f"must be a table, not {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in table:
        if key not in fields:
            raise SpecError(f"{where}.{key}",
                            f"unknown key; allowed keys: {', '.join(sorted(fields))}")
    for name, f in fields.items():
        if name not in table and f.default is dataclasses.MISSING and \
                f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{where}.{name}", "is required")
    try:
        return cls(**table)
    except SpecError as error:
        raise error.within(where) from None


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
    from .pipeline import Pipeline
    from .stages import stage_from_table

    if not isinstance(doc, dict):
        raise SpecError("spec", "must be a table")
    allowed = {"name", "input", "stage"}
    for key in doc:
        if key not in allowed:
            raise SpecError(key, f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
    name = doc.get("name", "rasterflow_top")
    if not isinstance(name, str) or not name or not set(name) <= NAME_CHARS or name[0].isdigit():
        raise SpecError("name", f"must be an identifier (letters, digits, _), not {name!r}")
    if "input" not in doc:
        raise SpecError("input", "is required")
    input_spec = from_table(InputSpec, doc["input"], "input")
    stages = doc.get("stage")
    if not isinstance(stages, list) or not stages:
        raise SpecError("stage", "must be a non-empty array of tables ([[stage]])")
    parsed = [stage_from_table(table, f"stage[{index}]", base_dir=base_dir)
              for index, table in enumerate(stages)]
    return Pipeline(input_spec, parsed, name=name)


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
