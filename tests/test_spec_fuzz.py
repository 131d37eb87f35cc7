"""Fuzzing the spec loader: any document either builds a pipeline or raises SpecError."""
import tomllib

from hypothesis import HealthCheck, given, settings, strategies as st

from rasterflow.errors import SpecError
from rasterflow.spec import parse_spec
from rasterflow.stages import STAGES

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=True), st.text(max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20)
keys = st.sampled_from(["op", "kernel", "kx", "ky", "shift", "rounding", "border",
                        "border_value", "output", "width", "height", "channels", "dtype",
                        "ksize", "sigma", "norm", "level", "type", "shape", "x"])
op_names = st.sampled_from(sorted(STAGES) + ["nope"])


@st.composite
def documents(draw):
    stage = draw(st.dictionaries(keys, values, max_size=6))
    if draw(st.booleans()):
        stage["op"] = draw(op_names)
    doc = {"input": draw(st.one_of(
        st.dictionaries(keys, values, max_size=5),
        st.fixed_dictionaries({"width": st.integers(-3, 40), "height": st.integers(-3, 40)}))),
        "stage": draw(st.one_of(st.lists(st.just(stage), max_size=2), values))}
    if draw(st.booleans()):
        doc["name"] = draw(values)
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_loader_raises_only_spec_errors(doc):
    try:
        parse_spec(doc)
    except SpecError as error:
        assert error.field and str(error).startswith(f"{error.field}: ")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_toml_text(text):
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        parse_spec(doc)
    except SpecError:
        pass
