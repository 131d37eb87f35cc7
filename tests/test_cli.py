"""The command line: every command, its outputs, and its errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rasterflow import cli
from rasterflow.files import LABEL_HEIGHT
from rasterflow.golden import filters as golden
from rasterflow.stages import Filter2DStage

SPEC = '''
name = "blur_edges"
[input]
width = 12
height = 9
channels = {channels}

[[stage]]
op = "filter2d"
kernel = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
shift = 4

[[stage]]
op = "sepfilter2d"
kx = [-1, 0, 1]
ky = [1, 2, 1]
output = "int16"
'''


@pytest.fixture
def gray(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(channels=1))
    image = tmp_path / "in.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (9, 12), dtype=np.uint8)).save(image)
    return spec, image


def expected_output(image):
    frame = np.asarray(Image.open(image))[:, :, None]
    blurred = golden.filter2d(frame, [[1, 2, 1], [2, 4, 2], [1, 2, 1]], shift=4)
    return golden.sepfilter2d(blurred, [-1, 0, 1], [1, 2, 1], output="int16")


def test_golden_writes_npy_for_int16(gray, tmp_path, capsys):
    spec, image = gray
    out = tmp_path / "g.npy"
    assert cli.main(["golden", str(spec), str(image), "-o", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), expected_output(image).reshape(9, 12))


def test_golden_refuses_png_for_int16_and_writes_nothing(gray, tmp_path, capsys):
    spec, image = gray
    out = tmp_path / "g.png"
    assert cli.main(["golden", str(spec), str(image), "-o", str(out)]) == 2
    assert "a PNG cannot hold" in capsys.readouterr().err
    assert not out.exists()


def test_sim_amaranth_bit_exact_with_report(gray, tmp_path, capsys):
    spec, image = gray
    out, report = tmp_path / "hw.npy", tmp_path / "r.json"
    code = cli.main(["sim", str(spec), str(image), "-o", str(out), "--simulator", "amaranth",
                     "--frames", "2", "--stall", "0.25", "--seed", "4", "--report", str(report),
                     "-q"])
    assert code == 0
    assert "BIT-EXACT" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["bit_exact"] is True and data["mismatches"] == 0
    assert (data["frames"], data["width"], data["height"]) == (2, 12, 9)
    assert data["simulator"] == "amaranth"
    assert data["cycles"] > 2 * 12 * 9 and 0 < data["pixels_per_cycle"] < 1
    for key in ("latency_cycles", "wall_seconds"):
        assert key in data
    np.testing.assert_array_equal(np.load(out), expected_output(image).reshape(9, 12))


def test_sim_unstalled_cycles_match_latency(gray, tmp_path):
    spec, image = gray
    report = tmp_path / "r.json"
    assert cli.main(["sim", str(spec), str(image), "--simulator", "amaranth", "--frames", "3",
                     "--report", str(report), "-q"]) == 0
    data = json.loads(report.read_text())
    assert data["cycles"] == 3 * 12 * 9 + data["latency_cycles"]


def test_sim_reports_mismatch_with_diff_image(gray, tmp_path, monkeypatch, capsys):
    """Hardware that differs from the golden model: exit 1, and a comparison picture."""
    spec, image = gray
    real_hardware = Filter2DStage.hardware

    def off_by_one_kernel(self, bound):
        broken = Filter2DStage([[1, 2, 1], [2, 5, 2], [1, 2, 1]], shift=self.shift)
        return real_hardware(broken, bound)

    monkeypatch.setattr(Filter2DStage, "hardware", off_by_one_kernel)
    out = tmp_path / "hw.npy"
    assert cli.main(["sim", str(spec), str(image), "-o", str(out), "--simulator", "amaranth",
                     "-q"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    diff = tmp_path / "hw_diff.png"
    picture = np.asarray(Image.open(diff))
    assert picture.shape == (LABEL_HEIGHT + 9, 12 * 3 + 8, 3)   # labels, then the panels
    assert (picture[LABEL_HEIGHT:, 12 * 2 + 8:] == (255, 0, 0)).all(axis=-1).any()


def test_verilog_command(gray, tmp_path):
    spec, _ = gray
    out = tmp_path / "top.v"
    assert cli.main(["verilog", str(spec), "-o", str(out), "--name", "edge_top"]) == 0
    text = out.read_text()
    assert "module edge_top(" in text
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"):
        assert port in text


def test_bad_spec_exit_code_and_field(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.format(channels=1).replace("shift = 4", "shift = 99"))
    out = tmp_path / "o.png"
    assert cli.main(["golden", str(spec), "x.png", "-o", str(out)]) == 2
    assert "stage[0].shift: must be an integer in 0..32, not 99" in capsys.readouterr().err
    assert not out.exists()


def test_image_that_does_not_fit_the_spec(gray, tmp_path, capsys):
    spec, _ = gray
    image = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((9, 12, 3), np.uint8)).save(image)
    assert cli.main(["sim", str(spec), str(image), "--simulator", "amaranth"]) == 2
    assert "9x12x3 (H x W x C), but the spec's input is 9x12x1" in capsys.readouterr().err


def test_unreadable_image(gray, tmp_path, capsys):
    spec, _ = gray
    image = tmp_path / "junk.png"
    image.write_bytes(b"not a png")
    assert cli.main(["golden", str(spec), str(image), "-o", str(tmp_path / "o.npy")]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_console_script_entry_point(gray, tmp_path):
    spec, image = gray
    exe = Path(sys.executable).with_name("rasterflow")
    result = subprocess.run([str(exe), "golden", str(spec), str(image), "-o",
                             str(tmp_path / "o.npy")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "golden:" in result.stdout
