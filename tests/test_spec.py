"""Spec loading: valid specs build pipelines; each invalid one names its field."""
import numpy as np
import pytest

from rasterflow.errors import InputError, SpecError
from rasterflow.spec import load_spec, parse_spec

BLUR = {"op": "filter2d", "kernel": [[1, 2, 1], [2, 4, 2], [1, 2, 1]], "shift": 4}


def spec(**overrides):
    doc = {"input": {"width": 16, "height": 12, "channels": 1, "dtype": "uint8"},
           "stage": [dict(BLUR)]}
    doc.update(overrides)
    return doc


def test_issue_example_spec_parses(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('''
[input]
width = 512
height = 512
channels = 1
dtype = "uint8"

[[stage]]
op = "filter2d"
kernel = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
shift = 4
rounding = "half_even"
border = "reflect101"
border_value = 0
output = "uint8"

[[stage]]
op = "sepfilter2d"
kx = [1, 4, 6, 4, 1]
ky = [1, 4, 6, 4, 1]
shift = 8
''')
    pipeline = load_spec(path)
    assert [b.stage.op for b in pipeline.bound] == ["filter2d", "sepfilter2d"]
    assert (pipeline.out_width, pipeline.out_height) == (512, 512)
    assert str(pipeline.output_format) == "1xuint8"


def test_round_trip_through_dict():
    pipeline = parse_spec(spec())
    again = parse_spec(pipeline.to_dict())
    assert again.to_dict() == pipeline.to_dict()


def stage_with(**fields):
    return spec(stage=[{**BLUR, **fields}])


@pytest.mark.parametrize("doc, field, allowed", [
    (spec(input={"width": 0, "height": 8}), "input.width", "1..4096"),
    (spec(input={"width": 5000, "height": 8}), "input.width", "1..4096"),
    (spec(input={"width": 8, "height": 8, "dtype": "float32"}), "input.dtype", "'uint8'"),
    (spec(input={"width": 8, "height": 8, "channels": 0}), "input.channels", "1..1024"),
    (spec(input={"width": 8, "height": 8, "colour": 1}), "input.colour", "allowed keys"),
    (spec(input={"height": 8}), "input.width", "required"),
    ({"stage": [BLUR]}, "input", "required"),
    (spec(stage=[]), "stage", "non-empty"),
    (spec(stage=[{"kernel": [[1]]}]), "stage[0].op", "one of"),
    (spec(stage=[{"op": "fft"}]), "stage[0].op", "filter2d"),
    (stage_with(kernel=[[1, 2], [3, 4]]), "stage[0].kernel", "odd"),
    (stage_with(kernel=[[1] * 17] * 17), "stage[0].kernel", "1..15"),
    (stage_with(kernel=[[1, 2, 3], [1, 2]]), "stage[0].kernel", "same length"),
    (stage_with(kernel=[[0.5]]), "stage[0].kernel", "integers"),
    (stage_with(kernel="box"), "stage[0].kernel", "list of lists"),
    (stage_with(shift=-1), "stage[0].shift", "0..32"),
    (stage_with(rounding="floor"), "stage[0].rounding", "'half_even', 'half_up'"),
    (stage_with(border="wrap"), "stage[0].border", "'reflect101'"),
    (stage_with(border_value=256), "stage[0].border_value", "0..255"),
    (stage_with(output="float"), "stage[0].output", "'int16'"),
    (stage_with(gain=2), "stage[0].gain", "allowed keys"),
    (spec(input={"width": 1, "height": 8}), "input.width", "at least 2"),
    (spec(input={"width": 8, "height": 1}), "input.height", "at least 2"),
    (spec(name="9lives"), "name", "identifier"),
    (spec(input={"width": 8, "height": 8, "pixels_per_clock": 3}), "input.pixels_per_clock",
     "1, 2, 4, 8"),
    (spec(input={"width": 8, "height": 8, "pixels_per_clock": 2, "dtype": "int8"},
          stage=[{"op": "max_pool", "size": 2, "stride": 2}]), "input.pixels_per_clock",
     "filter2d"),
    (spec(extra=1), "extra", "allowed keys"),
    (spec(stage=[{"op": "sepfilter2d", "kx": [1, 2, 1]}]), "stage[0].ky", "required"),
])
def test_invalid_spec_names_field(doc, field, allowed):
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert allowed in str(info.value)


def test_second_stage_too_small_names_stage():
    doc = spec(input={"width": 4, "height": 4},
               stage=[BLUR, {"op": "filter2d", "kernel": [[1] * 9] * 9}])
    with pytest.raises(SpecError, match=r"stage\[1\].*at least 5"):
        parse_spec(doc)


def test_invalid_toml_is_reported(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[input\nwidth = 3")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.toml")


def test_frame_checks_name_shape_and_dtype():
    pipeline = parse_spec(spec())
    with pytest.raises(InputError, match="12x16x1"):
        pipeline.golden(np.zeros((10, 16, 1), np.uint8))
    with pytest.raises(InputError, match="input.dtype is uint8"):
        pipeline.golden(np.zeros((12, 16, 1), np.int16))
