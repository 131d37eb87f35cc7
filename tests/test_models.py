"""Whole int8 models: imported, run in the golden model and simulated in Verilator, each
output compared with what LiteRT's reference kernels returned for the fixture's inputs.

The fixtures (``tests/data/tflite2``, see its ``manifest.json``) are random-weight int8 models
written by the TF 2.21 converter; ``<name>_expected`` holds LiteRT ``BUILTIN_REF``'s outputs.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from rasterflow.cli_import import import_model
from rasterflow.model_io import model_outputs, read_model_input
from rasterflow.sim.session import simulate
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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnv1_025_96g", "mnv2_small_64"])
def test_whole_model_in_verilator_is_bit_exact(name, tmp_path):
    pipeline = imported(name, tmp_path)
    frames, _ = read_model_input(pipeline.model.input, DATA / f"{name}_input.npy")
    result = simulate(pipeline, frames, simulator="verilator", progress=False)
    assert result.bit_exact and result.mismatches == 0 and result.marker_errors == 0
    outputs = [o if len(pipeline.outputs) > 1 else {pipeline.outputs[0]: o}
               for o in result.outputs]
    by_node = {node: np.stack([o[node] for o in outputs]) for node in pipeline.outputs}
    got = model_outputs(pipeline.model, by_node, True)
    for key, want in expected_outputs(name).items():
        np.testing.assert_array_equal(got[key], want)
