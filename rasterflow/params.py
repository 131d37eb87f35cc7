"""Spec parameters: the checks every op's fields go through, each naming the field and the
allowed values in its :class:`~rasterflow.errors.SpecError`.
"""
import dataclasses

from .errors import SpecError

__all__ = ["MAX_DIMENSION", "PIXELS_PER_CLOCK", "NAME_CHARS", "check_int", "check_choice",
           "check_name", "from_table"]

MAX_DIMENSION = 4096
PIXELS_PER_CLOCK = (1, 2, 4, 8)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_name(field, value):
    """An identifier: letters, digits and ``_``, not starting with a digit."""
    if not isinstance(value, str) or not value or not set(value) <= NAME_CHARS or \
            value[0].isdigit():
        raise SpecError(field, f"must be an identifier (letters, digits, _), not {value!r}")
    return value


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
