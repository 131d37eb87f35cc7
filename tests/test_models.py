"""Whole int8 models: imported as specs and run through the spec's golden model, each
output compared with what LiteRT's reference kernels returned for the fixture's inputs.

The fixtures (``tests/data/tflite2``, see its ``manifest.json``) are random-weight int8 models
written by the TF 2.21 converter; ``<name>_expected`` holds LiteRT ``BUILTIN_REF``'s outputs.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from rasterflow.cli import main
from rasterflow.cli_import import import_model
from rasterflow.model_io import model_outputs, read_model_input
from rasterflow.spec import load_spec

DATA = Path(__file__).parent / "data" / "tflite2"
MANIFEST = {entry["name"]: entry for entry in json.loads((DATA / "manifest.json").read_text())}


def expected_outputs(name):
    path = DATA / f"{name}_expected.npy"
    if path.exists():
        return {"output0": np.load(path)}
    with np.load(DATA / f"{name}_expected.npz") as archive:
        return {key: archive[key] for key in archive.files}


def imported(name, tmp_path):
    spec = tmp_path / f"{name}.toml"
    import_model(DATA / f"{name}.tflite", spec)
    return load_spec(spec)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_imported_spec_golden_equals_litert(name, tmp_path):
    pipeline = imported(name, tmp_path)
    frames, batched = read_model_input(pipeline.model.input, DATA / f"{name}_input.npy")
    assert batched
    results = [pipeline.golden_outputs(frame) for frame in frames]
    by_node = {node: np.stack([r[node] for r in results]) for node in pipeline.outputs}
    got = model_outputs(pipeline.model, by_node, batched)
    expected = expected_outputs(name)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(got[key], expected[key])


@pytest.mark.parametrize("name", ["yolov3_tiny_w025_128", "mnv1_025_64_floatio"])
def test_cli_import_and_golden_write_the_tensors_litert_returns(name, tmp_path, capsys):
    """``rasterflow import`` then ``rasterflow golden`` on one input tensor (no batch
    axis): the file holds what LiteRT returned for it (several outputs: ``output<k>`` in an
    ``.npz``; a float model's outputs dequantized)."""
    spec = tmp_path / "model.toml"
    assert main(["import", str(DATA / f"{name}.tflite"), "-o", str(spec)]) == 0
    sample = tmp_path / "sample.npy"
    np.save(sample, np.load(DATA / f"{name}_input.npy")[1])
    expected = {key: value[1] for key, value in expected_outputs(name).items()}
    out = tmp_path / ("out.npz" if len(expected) > 1 else "out.npy")
    assert main(["golden", str(spec), str(sample), "-o", str(out)]) == 0, capsys.readouterr()
    if out.suffix == ".npz":
        with np.load(out) as archive:
            got = {key: archive[key] for key in archive.files}
    else:
        got = {"output0": np.load(out)}
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and got[key].shape == want.shape
        np.testing.assert_array_equal(got[key], want)
