"""Spec parameters: each op parameter declared once, and everything derived from it.

A stage class declares each of its op's parameters as a dataclass field whose annotation is
its type and whose default is :func:`param`::

    ksize: int = param(3, choices=ODD_SIZES, doc="window side")
    sigma: float = param(0, lo=0, hi=1000, note="0 = OpenCV's default for ksize", doc=...)
    level: int = param(lo=-(1 << 31), hi=(1 << 31) - 1, doc=...)    # no default: required

From that declaration (:func:`params_of`) come the spec keys a stage table may have and must
have (:func:`from_table`), the check of every value (:func:`check_params`, a
:class:`~rasterflow.errors.SpecError` naming the field and the allowed values), the op
reference ``docs/ops.md`` (:func:`ops_markdown`; regenerate it with
``python -m rasterflow.params``) and the fields ``rasterflow sweep --vary`` accepts. Rules
that relate several parameters (sobel's ``dx + dy >= 1``) stay code in the stage's
``__post_init__``, after the declared checks.
"""
import dataclasses
import functools
import math
from dataclasses import MISSING, dataclass
from typing import Callable

from .errors import SpecError

__all__ = ["MAX_DIMENSION", "PIXELS_PER_CLOCK", "NAME_CHARS", "TYPE_NAMES", "Param",
           "SidecarArray", "param", "params_of", "check_params", "check_value", "check_int",
           "check_choice", "check_name", "from_table", "allowed_values", "default_text"]

MAX_DIMENSION = 4096
PIXELS_PER_CLOCK = (1, 2, 4, 8)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_PARAM = "rasterflow.param"


class SidecarArray:
    """The type of an array parameter: an ndarray in Python, ``"FILE.npz:KEY"`` in a spec.
    The stage resolves and checks it (its shape depends on the other parameters)."""


TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
              SidecarArray: 'array ("FILE.npz:KEY")'}
_NOUNS = {int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Param:
    """One declared parameter. ``name``, ``type`` (the field's annotation, a key of
    :data:`TYPE_NAMES`) and ``default`` (``MISSING``: required) come from its dataclass field.

    Allowed values: ``choices``; or ``lo..hi`` (for a ``list``, of each item); or ``check``,
    for structured values, which raises ValueError saying what is wrong. ``note`` says what
    special values mean; ``doc`` is the one-line description.
    """
    name: str = None
    type: type = None
    default: object = None
    doc: str = ""
    lo: object = None
    hi: object = None
    choices: tuple = None
    check: Callable = None
    note: str = ""

    @property
    def required(self):
        return self.default is MISSING


def param(default=MISSING, *, doc, lo=None, hi=None, choices=None, check=None, note=""):
    """A stage field declaring one op parameter (see :class:`Param`); no default: required.

    Each field needs its own call (a dataclass takes over its field objects), so ops share a
    declaration through a function returning ``param(...)``, e.g. ``border_param()``.
    """
    if (lo is None) != (hi is None):
        raise TypeError("a range needs both lo and hi")
    declared = Param(doc=doc, lo=lo, hi=hi, note=note, check=check,
                     choices=None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={_PARAM: declared})


@functools.cache
def params_of(cls):
    """``{name: Param}``: the parameters stage class ``cls`` declares, in field order."""
    return {f.name: dataclasses.replace(f.metadata[_PARAM], name=f.name, type=f.type,
                                        default=f.default)
            for f in dataclasses.fields(cls) if _PARAM in f.metadata}


def check_params(obj):
    """Check every declared parameter of ``obj`` (a stage) against its declaration."""
    for declared in params_of(type(obj)).values():
        check_value(declared, getattr(obj, declared.name))


def check_value(declared, value):
    """``value`` if parameter ``declared`` allows it, else a SpecError naming the parameter
    and saying what it allows."""
    if declared.check is not None:
        try:
            declared.check(value)
        except ValueError as error:
            raise SpecError(declared.name, str(error)) from None
    elif declared.type is list:
        _check_items(declared, value)
    elif declared.type is not SidecarArray and not _allows(declared, value):
        raise SpecError(declared.name, f"must be {_expected(declared)}, not {value!r}")
    return value


def _check_items(declared, value):
    if not isinstance(value, list):
        raise SpecError(declared.name, f"must be a list of integers, not {value!r}")
    for item in value:
        if not (_is_a(int, item) and _in_bounds(declared, item)):
            raise SpecError(declared.name, f"must hold integers in {_bounds(declared)}, "
                                           f"not {item!r}")


def _is_a(kind, value):
    if kind is bool or isinstance(value, bool):   # True is an int to Python, not to a spec
        return kind is bool and isinstance(value, bool)
    if kind is float:   # an integer is a number too; huge ones do not fit a float
        return isinstance(value, int) or isinstance(value, float) and math.isfinite(value)
    return isinstance(value, kind)


def _in_bounds(declared, value):
    return (declared.lo is None or declared.lo <= value) and \
        (declared.hi is None or value <= declared.hi)


def _allows(declared, value):
    if not _is_a(declared.type, value):
        return False
    if declared.choices is not None:
        return value in declared.choices
    return _in_bounds(declared, value)


def _bounds(declared):
    spec = "g" if declared.type is float else ""
    return f"{declared.lo:{spec}}..{declared.hi:{spec}}"


def _expected(declared):
    """What ``declared`` must be, as its errors say it: ``an integer in 0..32``."""
    if declared.choices is not None:
        return f"one of {allowed_values(declared)}"
    if declared.type is bool:
        return "true or false"
    bounded = declared.lo is not None
    return _NOUNS[declared.type] + (f" in {allowed_values(declared)}" if bounded else "")


def allowed_values(declared):
    """The values ``declared`` allows, as the docs and errors list them (``3, 5, 7``,
    ``0..32``, ``each in 0..255``), with its ``note``; ``""`` when only its doc says."""
    if declared.choices is not None:
        text = ", ".join(map(repr, declared.choices))
    elif declared.lo is not None:
        text = ("each in " if declared.type is list else "") + _bounds(declared)
    else:
        return ""
    return f"{text} ({declared.note})" if declared.note else text


def check_int(field, value, lo, hi):
    """``value`` if it is an integer in ``lo..hi``, else a SpecError naming ``field``."""
    return check_value(Param(field, int, lo=lo, hi=hi), value)


def check_choice(field, value, choices):
    """``value`` if it is one of ``choices`` (all of one type), else a SpecError naming
    ``field``."""
    return check_value(Param(field, type(choices[0]), choices=tuple(choices)), value)


def check_name(field, value):
    """An identifier: letters, digits and ``_``, not starting with a digit."""
    if not isinstance(value, str) or not value or not set(value) <= NAME_CHARS or \
            value[0].isdigit():
        raise SpecError(field, f"must be an identifier (letters, digits, _), not {value!r}")
    return value


def _check_keys(table, where, allowed, required):
    """Raise a SpecError unless ``table`` is a table with only ``allowed`` keys and every
    ``required`` one (``where`` names the table)."""
    if not isinstance(table, dict):
        raise SpecError(where, f"must be a table, not {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise SpecError(f"{where}.{key}",
                            f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
    for name in required:
        if name not in table:
            raise SpecError(f"{where}.{name}", "is required")


def from_table(cls, table, where, **internal):
    """Build dataclass ``cls`` from TOML table ``table``: its keys are the parameters ``cls``
    declares or, if it declares none, its init fields; ``internal`` are constructor
    arguments a spec cannot set. Errors are named within ``where``."""
    declared = params_of(cls)
    if declared:
        allowed = list(declared)
        required = [name for name, p in declared.items() if p.required]
    else:
        fields = [f for f in dataclasses.fields(cls) if f.init]
        allowed = [f.name for f in fields]
        required = [f.name for f in fields
                    if f.default is MISSING and f.default_factory is MISSING]
    _check_keys(table, where, allowed, required)
    try:
        return cls(**table, **internal)
    except SpecError as error:
        raise error.within(where) from None


# -- the op reference ------------------------------------------------------------------------

def default_text(declared):
    if declared.required:
        return "required"
    value = declared.default
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f'`"{value}"`' if isinstance(value, str) else f"`{value}`"
