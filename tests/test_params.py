"""Parameter declarations (rasterflow.params): from one declaration per parameter come the
spec keys, the value checks and their messages, the defaults, docs/ops.md and the fields a
sweep may vary; front end and hardware share their limits."""
import dataclasses
import re

import pytest

from rasterflow.errors import SpecError
from rasterflow.golden import imgproc as golden
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl import imgproc as hdl
from rasterflow.hdl.filters import Filter2D, check_taps
from rasterflow.hdl.window import BORDERS
from rasterflow.ops import OPS_DOC, STAGES, ops_markdown
from rasterflow.params import TYPE_NAMES, check_params, from_table, param, params_of
from rasterflow.spec import parse_spec
from rasterflow.sweep import SweepError, set_field


def _odd_rows(value):
    if len(value) % 2 == 0:
        raise ValueError(f"needs an odd number of rows, not {len(value)}")


@dataclasses.dataclass(frozen=True)
class Toy:
    """A made-up op with one parameter of each kind."""
    taps: list = param(check=_odd_rows, doc="structured")
    weights: list = param(lo=0, hi=9, doc="list of small integers")
    level: int = param(-5, lo=-5, hi=5, doc="integer")
    size: int = param(3, choices=(1, 3, 5), doc="choice")
    gain: float = param(1.0, lo=0, hi=2.5, note="0 = off", doc="number with a note")
    invert: bool = param(False, doc="flag")
    mode: str = param("a", choices=("a", "b"), doc="string choice")
    offset: int = param(0, doc="any integer")

    def __post_init__(self):
        check_params(self)


def toy(**fields):
    return from_table(Toy, {"taps": [1], "weights": [0], **fields}, "stage[0]")


@pytest.mark.parametrize("fields, message", [
    ({"level": 6}, "stage[0].level: must be an integer in -5..5, not 6"),
    ({"level": True}, "stage[0].level: must be an integer in -5..5, not True"),
    ({"level": 1.0}, "stage[0].level: must be an integer in -5..5, not 1.0"),
    ({"size": 4}, "stage[0].size: must be one of 1, 3, 5, not 4"),
    ({"size": True}, "stage[0].size: must be one of 1, 3, 5, not True"),
    ({"gain": 3}, "stage[0].gain: must be a number in 0..2.5 (0 = off), not 3"),
    ({"gain": float("nan")}, "stage[0].gain: must be a number in 0..2.5 (0 = off), not nan"),
    ({"gain": 2 ** 2000}, f"stage[0].gain: must be a number in 0..2.5 (0 = off), "
                          f"not {2 ** 2000}"),
    ({"invert": 1}, "stage[0].invert: must be true or false, not 1"),
    ({"mode": "c"}, "stage[0].mode: must be one of 'a', 'b', not 'c'"),
    ({"taps": [1, 2]}, "stage[0].taps: needs an odd number of rows, not 2"),
    ({"weights": 3}, "stage[0].weights: must be a list of integers, not 3"),
    ({"weights": [1, 10]}, "stage[0].weights: must hold integers in 0..9, not 10"),
    ({"offset": "1"}, "stage[0].offset: must be an integer, not '1'"),
    ({"colour": 1}, "stage[0].colour: unknown key; allowed keys: gain, invert, level, mode, "
                    "offset, size, taps, weights"),
])
def test_declaration_gives_the_error(fields, message):
    with pytest.raises(SpecError) as info:
        toy(**fields)
    assert str(info.value).startswith(message)


def test_required_parameter_is_named():
    with pytest.raises(SpecError, match=r"^stage\[0\]\.taps: is required$"):
        from_table(Toy, {"weights": [1]}, "stage[0]")


def test_declaration_gives_defaults_and_types():
    assert toy() == Toy(taps=[1], weights=[0])
    assert toy(gain=2) == Toy(gain=2, taps=[1], weights=[0])     # an integer is a number
    declared = params_of(Toy)
    assert list(declared) == [f.name for f in dataclasses.fields(Toy)]
    assert declared["taps"].required and not declared["size"].required
    assert (declared["size"].default, declared["size"].type) == (3, int)
    assert declared["gain"].type is float and declared["weights"].type is list


def test_a_range_needs_both_ends():
    with pytest.raises(TypeError, match="lo and hi"):
        param(0, lo=0, doc="half a range")


def test_every_op_declares_every_spec_field():
    """Each stage field is a declared parameter with a doc and a documented type; the only
    other field is the convolutions' resolved ``arrays``."""
    for op, cls in STAGES.items():
        declared = params_of(cls)
        internal = {f.name for f in dataclasses.fields(cls) if f.init} - set(declared)
        assert internal <= {"arrays"}, op
        for p in declared.values():
            assert p.doc and p.type in TYPE_NAMES, (op, p.name)


def test_defaults_round_trip_through_to_table():
    stage = STAGES["gaussian"]()
    assert stage.to_table() == {"op": "gaussian", "ksize": 3, "sigma": 0, "border": "reflect101"}
    assert STAGES["gaussian"](**{k: v for k, v in stage.to_table().items() if k != "op"}) == stage


def test_cross_parameter_rules_run_after_the_declared_checks():
    with pytest.raises(SpecError, match="must be an integer in 0..2, not 3"):
        STAGES["sobel"](dx=3, dy=0)
    with pytest.raises(SpecError, match=r"dx \+ dy must be at least 1"):
        STAGES["sobel"](dx=0, dy=0)


# -- one source of truth for front end, golden model and hardware -----------------------------

@pytest.mark.parametrize("op, field, allowed", [
    ("gaussian", "ksize", hdl.ODD_SIZES), ("box", "ksize", hdl.ODD_SIZES),
    ("erode", "ksize", hdl.ODD_SIZES), ("dilate", "ksize", hdl.ODD_SIZES),
    ("median", "ksize", hdl.MEDIAN_SIZES), ("sobel", "ksize", hdl.SOBEL_SIZES),
    ("laplacian", "ksize", hdl.LAPLACIAN_SIZES), ("gradient_magnitude", "ksize", hdl.SOBEL_SIZES),
    ("gradient_magnitude", "norm", hdl.GRADIENT_NORMS), ("magnitude", "norm", hdl.GRADIENT_NORMS),
    ("erode", "shape", hdl.MORPH_SHAPES), ("gaussian", "border", BORDERS),
    ("filter2d", "border", BORDERS),
])
def test_front_end_takes_its_choices_from_the_hardware(op, field, allowed):
    assert params_of(STAGES[op])[field].choices == tuple(allowed)


def test_gaussian_ksize_agrees_with_golden_and_hardware():
    """ksize 1 is cv2's identity blur: golden model, hardware and front end all take it."""
    assert hdl.ODD_SIZES is golden.ODD_SIZES == (1, 3, 5, 7, 9, 11, 13, 15)
    assert golden.gaussian_kernel(1) == (256,)
    fmt = PixelFormat(1, "uint8")
    for ksize in golden.ODD_SIZES:
        assert hdl.GaussianBlur(fmt, 16, 16, ksize).taps == list(golden.gaussian_kernel(ksize))
    parse_spec({"input": {"width": 4, "height": 4}, "stage": [{"op": "gaussian", "ksize": 1}]})
    with pytest.raises(SpecError) as info:
        parse_spec({"input": {"width": 4, "height": 4},
                    "stage": [{"op": "gaussian", "ksize": 4}]})
    assert str(info.value) == "stage[0].ksize: must be one of 1, 3, 5, 7, 9, 11, 13, 15, not 4"
    with pytest.raises(ValueError, match="not 4"):
        hdl.GaussianBlur(fmt, 16, 16, 4)


@pytest.mark.parametrize("kernel", [[1, 2, 1], [[70000]], [[1, 1, 1], [1]], [[1, 1]],
                                    [[1]] * 17, [[0.5]]])
def test_taps_are_checked_once_for_spec_and_hardware(kernel):
    """The spec error is the hardware checker's message under the field's name."""
    with pytest.raises(ValueError) as hardware:
        check_taps(kernel, two_d=True)
    with pytest.raises(SpecError) as spec:
        STAGES["filter2d"](kernel=kernel)
    assert (spec.value.field, spec.value.message) == ("kernel", str(hardware.value))
    with pytest.raises(ValueError, match=f"^kernel: {re.escape(str(hardware.value))}$"):
        Filter2D(PixelFormat(1, "uint8"), 8, 8, kernel)


def test_check_taps_accepts_valid_taps():
    check_taps([[1, 2, 1]] * 3, two_d=True)
    check_taps([1, -65535, 1], two_d=False)


# -- sweeps ---------------------------------------------------------------------------------

def test_sweep_field_must_be_a_declared_parameter():
    doc = {"input": {"width": 8, "height": 8},
           "stage": [{"op": "box"}, {"op": "rgb2gray"}]}
    with pytest.raises(SweepError) as info:
        set_field(doc, "stage[0].sigma", 1.0)
    assert str(info.value) == (
        "--vary stage[0].sigma: box has no parameter 'sigma'; its parameters: "
        "ksize (1, 3, 5, 7, 9, 11, 13, 15); normalize (boolean); "
        "border ('constant', 'replicate', 'reflect', 'reflect101')")
    with pytest.raises(SweepError, match="rgb2gray has no parameter 'ksize'; it has no "
                                         "parameters"):
        set_field(doc, "stage[1].ksize", 3)
    with pytest.raises(SweepError, match=r"\[input\] has no field 'colour'; its fields: "
                                         "channels, dtype"):
        set_field(doc, "input.colour", 3)
    # Values are the spec's to check: an invalid one becomes a sweep row with its error.
    for index, field, value in ((0, "ksize", 4), (1, "name", "gray"), (0, "op", "gaussian")):
        set_field(doc, f"stage[{index}].{field}", value)
        assert doc["stage"][index][field] == value


# -- docs/ops.md ----------------------------------------------------------------------------

def test_reference_renders_the_declarations():
    text = ops_markdown()
    assert ("| `sigma` | number | 0..1000 (0 = OpenCV's default for ksize) | `0` | "
            "standard deviation of the Gaussian, in pixels |") in text
    assert "| `level` | integer | -2147483648..2147483647 | required |" in text
    assert "| `normalize` | boolean |  | `true` |" in text
    assert "## `rgb2gray`" in text and text.count("## `") == len(STAGES)


def test_docs_ops_md_is_current():
    assert OPS_DOC.read_text() == ops_markdown(), \
        "docs/ops.md is out of date: run python -m rasterflow.ops"
