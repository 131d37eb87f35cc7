"""The Verilog path: generated Verilog under cocotb + Verilator on full-size shared images."""
import json

import numpy as np
import pytest

from rasterflow import cli
from rasterflow.files import read_image
from rasterflow.sim.session import simulate
from rasterflow.spec import parse_spec

pytestmark = pytest.mark.slow


def test_gray_512_two_frames_bit_exact_with_exact_cycles(data_dir):
    frame = read_image(data_dir / "camera.png")
    pipeline = parse_spec({
        "name": "blur7",
        "input": {"width": 512, "height": 512},
        "stage": [{"op": "sepfilter2d", "kx": [1, 6, 15, 20, 15, 6, 1],
                   "ky": [1, 6, 15, 20, 15, 6, 1], "shift": 12, "border": "reflect"}],
    })
    result = simulate(pipeline, frame, frames=2, simulator="verilator", progress=False)
    assert result.mismatches == 0 and result.marker_errors == 0
    assert result.bit_exact
    assert result.cycles == 2 * 512 * 512 + result.latency_cycles


def test_rgb_with_stalls_bit_exact(data_dir):
    frame = read_image(data_dir / "astronaut.png")
    pipeline = parse_spec({
        "name": "rgb_sharpen",
        "input": {"width": 512, "height": 512, "channels": 3},
        "stage": [{"op": "filter2d", "kernel": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
                   "border": "constant", "border_value": 128, "output": "int16"}],
    })
    result = simulate(pipeline, frame, simulator="verilator", stall=0.2, seed=5, progress=False)
    assert result.bit_exact, result.report()
    assert result.outputs[0].dtype == np.int16


def test_demo_command(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out-dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] and report["mismatches"] == 0
    assert report["cycles"] == 512 * 512 + report["latency_cycles"]
    np.testing.assert_array_equal(read_image(out / "hardware.png"), read_image(out / "golden.png"))
    for name in ("input.png", "comparison.png", "demo_blur_sharpen.v", "demo.toml"):
        assert (out / name).stat().st_size > 0
    assert "BIT-EXACT" in capsys.readouterr().out
