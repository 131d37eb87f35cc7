"""``rasterflow import``: TFLite fixture -> spec + sidecar; ``golden``/``sim`` on the result;
bad models, layer ranges and sidecar references give clear errors and leave no files."""
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from rasterflow.cli import main
from rasterflow.errors import SpecError
from rasterflow.spec import load_spec

DATA = Path(__file__).parent / "data" / "tflite"
FIXTURES = ["yolo_block_64", "yolo_two_blocks_32", "mobile_block_40", "yolo_pool_s1_26"]
EXAMPLE = Path(__file__).parent.parent / "examples" / "yolov3_tiny_block1.toml"


def files_in(directory):
    return sorted(p.name for p in Path(directory).iterdir())


@pytest.mark.parametrize("name", FIXTURES)
def test_import_then_golden_reproduces_expected(name, tmp_path, capsys):
    spec = tmp_path / f"{name}.toml"
    assert main(["import", str(DATA / f"{name}.tflite"), "-o", str(spec)]) == 0
    assert files_in(tmp_path) == [f"{name}.npz", f"{name}.toml"]
    assert "import:" in capsys.readouterr().out
    out = tmp_path / "out.npy"
    assert main(["golden", str(spec), str(DATA / f"{name}_input.npy"), "-o", str(out)]) == 0
    expected = np.load(DATA / f"{name}_expected.npy")
    result = np.load(out)
    assert result.dtype == np.int8 and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)
    # The spec is plain TOML with scalars and sidecar references.
    doc = tomllib.loads(spec.read_text())
    assert doc["input"]["dtype"] == "int8"
    for stage in doc["stage"]:
        if stage["op"] in ("conv2d", "depthwise_conv2d"):
            assert stage["weights"].startswith(f"{name}.npz:")
            assert stage["pe"] >= 1 and stage["simd"] >= 1


def test_layer_range(tmp_path):
    spec = tmp_path / "first.toml"
    assert main(["import", str(DATA / "yolo_two_blocks_32.tflite"), "-o", str(spec),
                 "--layers", "0:2"]) == 0
    pipeline = load_spec(spec)
    assert [s.op for s in pipeline.stages] == ["conv2d", "leaky_relu"]
    assert (pipeline.out_width, pipeline.out_height, pipeline.output_format.channels) == (32, 32, 16)
    tail = tmp_path / "tail.toml"
    assert main(["import", str(DATA / "yolo_two_blocks_32.tflite"), "-o", str(tail),
                 "--layers", "3:"]) == 0
    pipeline = load_spec(tail)
    assert [s.op for s in pipeline.stages] == ["conv2d", "leaky_relu", "max_pool"]
    assert (pipeline.width, pipeline.input_format.channels) == (16, 16)


@pytest.mark.parametrize("layers,message", [
    ("4:9", "not a non-empty range"), ("2:2", "not a non-empty range"),
    ("a:b", "--layers"), ("3", "--layers"), ("-1:2", "not a non-empty range"),
])
def test_bad_layer_range_leaves_nothing(layers, message, tmp_path, capsys):
    spec = tmp_path / "out" / "spec.toml"
    code = main(["import", str(DATA / "yolo_block_64.tflite"), "-o", str(spec),
                 f"--layers={layers}"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


@pytest.mark.parametrize("content,message", [
    (b"not a model at all", "not a TFLite flatbuffer"),
    (None, "corrupt or truncated"),          # a real model cut in half
])
def test_corrupt_model_leaves_nothing(content, message, tmp_path, capsys):
    model = tmp_path / "bad.tflite"
    if content is None:
        data = (DATA / "yolo_block_64.tflite").read_bytes()
        content = data[:len(data) // 3]
    model.write_bytes(content)
    code = main(["import", str(model), "-o", str(tmp_path / "spec.toml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ")
    assert message in err or "operator" in err
    assert files_in(tmp_path) == ["bad.tflite"]


def test_missing_model_and_bad_output_name(tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.tflite"), "-o", str(tmp_path / "s.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["import", str(DATA / "yolo_block_64.tflite"), "-o", str(tmp_path / "s.json")]) == 2
    assert ".toml" in capsys.readouterr().err
    assert files_in(tmp_path) == []


# -- sidecar references ---------------------------------------------------------------------------

@pytest.fixture
def imported(tmp_path):
    spec = tmp_path / "m.toml"
    assert main(["import", str(DATA / "mobile_block_40.tflite"), "-o", str(spec)]) == 0
    return spec, tomllib.loads(spec.read_text())


def _rewrite(spec, doc):
    spec.write_text(tomli_w.dumps(doc))


@pytest.mark.parametrize("field,value,message", [
    ("weights", "m.npz:nope", "has no array 'nope'"),
    ("weights", "missing.npz:layer0.weights", "does not exist"),
    ("bias", "no-colon", "sidecar reference"),
    ("weights", "m.npz:layer0.bias", "int8 array"),             # wrong dtype / rank
    ("bias", "m.npz:layer2.bias", "entries"),                   # 16 biases for 8 channels
])
def test_bad_sidecar_reference_is_a_spec_error(imported, field, value, message):
    spec, doc = imported
    doc["stage"][0][field] = value
    _rewrite(spec, doc)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert info.value.field == f"stage[0].{field}"
    assert message in info.value.message


def test_corrupt_sidecar_and_bad_scalars(imported, tmp_path):
    spec, doc = imported
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    doc["stage"][1]["weights"] = "junk.npz:layer1.weights"
    _rewrite(spec, doc)
    with pytest.raises(SpecError, match=r"stage\[1\]\.weights: cannot read sidecar"):
        load_spec(spec)
    doc = tomllib.loads(spec.read_text())
    doc["stage"][1]["weights"] = "m.npz:layer1.weights"
    for key, value, field in (("m0", [1, 2], "m0"), ("pe", 99, "pe"), ("padding", "full", "padding"),
                              ("arrays", 1, "arrays"), ("shift", [40] * 8, "shift")):
        bad = json.loads(json.dumps(doc))
        bad["stage"][1][key] = value
        _rewrite(spec, bad)
        with pytest.raises(SpecError) as info:
            load_spec(spec)
        assert info.value.field == f"stage[1].{field}"


def test_spec_relative_to_its_directory(imported, tmp_path, monkeypatch):
    spec, _ = imported
    monkeypatch.chdir("/")
    assert len(load_spec(spec).stages) == 3


def test_sim_command_on_cropped_import(tmp_path, capsys):
    """``rasterflow sim`` on an imported spec (cropped to 6x6 for Amaranth's simulator)."""
    spec = tmp_path / "y.toml"
    assert main(["import", str(DATA / "yolo_pool_s1_26.tflite"), "-o", str(spec)]) == 0
    doc = tomllib.loads(spec.read_text())
    doc["input"].update(width=6, height=5)
    del doc["model"]  # cropped, the pipeline no longer takes the model's input tensor
    spec.write_text(tomli_w.dumps(doc))
    crop = tmp_path / "crop.npy"
    np.save(crop, np.load(DATA / "yolo_pool_s1_26_input.npy")[:, :5, :6])
    report = tmp_path / "report.json"
    out = tmp_path / "hw.npy"
    code = main(["sim", str(spec), str(crop), "--simulator", "amaranth", "-q", "--stall", "0.2",
                 "--report", str(report), "-o", str(out)])
    assert code == 0, capsys.readouterr()
    data = json.loads(report.read_text())
    assert data["bit_exact"] and data["frames"] == 2
    assert 0 < data["mac_utilization"] <= 1
    assert data["layers"]["op0_conv_2d"]["op"] == "conv2d"
    assert np.load(out).shape == (2, 5, 6, 8)


def test_example_spec_is_current():
    """examples/yolov3_tiny_block1.toml (+ .npz) is what the import command produces."""
    pipeline = load_spec(EXAMPLE)
    inputs = np.load(DATA / "yolo_block_64_input.npy")
    expected = np.load(DATA / "yolo_block_64_expected.npy")
    for k in range(len(inputs)):
        np.testing.assert_array_equal(pipeline.golden(inputs[k]), expected[k])
    assert [s.op for s in pipeline.stages] == ["conv2d", "leaky_relu", "max_pool"]
