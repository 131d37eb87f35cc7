"""The example specs in examples/: what they compute (OpenCV, directly), and their hardware
through cocotb + Verilator on the full image each is written for (slow)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rasterflow import cli
from rasterflow.files import read_image
from rasterflow.sim.session import simulate
from rasterflow.spec import load_spec

EXAMPLES = Path(__file__).parent.parent / "examples"

#: example -> (image in tests/data, frames, stall)
RUNS = {
    "edges": ("astronaut.png", 1, 0.0),
    "dark_channel": ("chelsea.png", 2, 0.0),
    "denoise": ("astronaut.png", 1, 0.1),
    "unsharp": ("camera.png", 1, 0.0),
    "dog": ("camera.png", 2, 0.1),
    "sobel_xy": ("astronaut.png", 1, 0.0),
}


def opencv_reference(name, image):
    """Each example written as the OpenCV calls it stands for (images are RGB)."""
    if name == "edges":
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        blurred = cv2.GaussianBlur(gray, (5, 5), 0)
        gx = cv2.Sobel(blurred, cv2.CV_16S, 1, 0, ksize=3)
        gy = cv2.Sobel(blurred, cv2.CV_16S, 0, 1, ksize=3)
        magnitude = np.minimum(np.abs(gx.astype(np.int32)) + np.abs(gy.astype(np.int32)), 255)
        return cv2.threshold(magnitude.astype(np.uint8), 80, 255, cv2.THRESH_BINARY)[1]
    if name == "dark_channel":
        return cv2.erode(image.min(axis=2), cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    if name == "denoise":
        return cv2.medianBlur(image, 5)
    if name == "unsharp":
        return cv2.addWeighted(image, 1.5, cv2.GaussianBlur(image, (5, 5), 0), -0.5, 0)
    if name == "dog":
        return cv2.subtract(cv2.GaussianBlur(image, (3, 3), 0), cv2.GaussianBlur(image, (9, 9), 0))
    if name == "sobel_xy":
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        gx = cv2.Sobel(gray, cv2.CV_16S, 1, 0)
        gy = cv2.Sobel(gray, cv2.CV_16S, 0, 1)
        magnitude = cv2.convertScaleAbs(cv2.magnitude(gx.astype(np.float64),
                                                      gy.astype(np.float64)))
        return {"magnitude": magnitude, "gx": gx, "gy": gy}
    raise KeyError(name)


def load(name, data_dir):
    pipeline = load_spec(EXAMPLES / f"{name}.toml")
    image = read_image(data_dir / RUNS[name][0])
    return pipeline, pipeline.check_frame(image)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_golden_is_the_opencv_chain(name, data_dir):
    pipeline, image = load(name, data_dir)
    reference = opencv_reference(name, image[:, :, 0] if image.shape[2] == 1 else image)
    if not isinstance(reference, dict):
        reference = {pipeline.outputs[0]: reference}
    golden = pipeline.golden_outputs(image)
    assert list(golden) == list(reference)
    for output, expected in reference.items():
        np.testing.assert_array_equal(golden[output].reshape(expected.shape), expected)
    assert f"tests/data/{RUNS[name][0]}" in (EXAMPLES / f"{name}.toml").read_text()


def test_examples_exist():
    assert set(RUNS) <= {p.stem for p in EXAMPLES.glob("*.toml")}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_on_verilator_full_image(name, data_dir):
    pipeline, image = load(name, data_dir)
    _, frames, stall = RUNS[name]
    result = simulate(pipeline, image, frames=frames, simulator="verilator", stall=stall,
                      seed=3, progress=False)
    assert result.mismatches == 0 and result.marker_errors == 0, result.report()
    assert result.frames == frames
    if stall == 0:
        assert result.cycles == frames * pipeline.width * pipeline.height + result.latency_cycles


@pytest.mark.slow
def test_example_through_the_cli(tmp_path, data_dir):
    report = tmp_path / "report.json"
    out = tmp_path / "dark.png"
    status = cli.main(["sim", str(EXAMPLES / "dark_channel.toml"),
                       str(data_dir / "chelsea.png"), "--simulator", "verilator", "-q",
                       "-o", str(out), "--report", str(report)])
    assert status == 0
    assert json.loads(report.read_text())["bit_exact"]
    expected = opencv_reference("dark_channel", read_image(data_dir / "chelsea.png"))
    np.testing.assert_array_equal(read_image(out)[:, :, 0], expected)
