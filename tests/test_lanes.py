"""Several pixels per clock (input.pixels_per_clock): every filter op, through the whole
pipeline, with widths that are and are not multiples of P, stalls, and exact cycle counts
(F frames take F * ceil(W/P) * H + L cycles)."""
import numpy as np
import pytest

from rasterflow.sim.session import simulate

from conftest import make_pipeline

OPS = [
    {"op": "filter2d", "kernel": [[1, 2, 1], [2, -4, 2], [1, 2, 3]], "shift": 2,
     "border": "constant", "border_value": 17, "output": "int16"},
    {"op": "sepfilter2d", "kx": [1, 4, 6, 4, 1], "ky": [1, 2, 1], "shift": 6,
     "border": "reflect"},
    {"op": "gaussian", "ksize": 7, "sigma": 1.3},
    {"op": "box", "ksize": 5},
    {"op": "box", "ksize": 3, "normalize": False},
    {"op": "sobel", "dx": 1, "dy": 1, "ksize": 5, "border": "replicate"},
    {"op": "scharr", "dx": 0, "dy": 1},
    {"op": "laplacian", "ksize": 3},
    {"op": "gradient_magnitude", "norm": "l2"},
    {"op": "median", "ksize": 5},
    {"op": "erode", "ksize": 7},
    {"op": "dilate", "ksize": 5, "shape": "cross"},
    {"op": "threshold", "level": 90, "maxval": 200, "type": "binary_inv"},
]


@pytest.mark.parametrize("lanes, width", [(2, 12), (4, 13), (8, 9)])
@pytest.mark.parametrize("op", OPS, ids=lambda op: op["op"])
def test_op_with_lanes(op, lanes, width):
    height = 6
    pipeline = make_pipeline([op], width, height, lanes=lanes)
    rng = np.random.default_rng(lanes * 100 + width)
    batch = rng.integers(0, 256, (2, height, width, 1), dtype=np.uint8)
    stalled = simulate(pipeline, batch, stall=0.3, seed=lanes, progress=False)
    assert stalled.bit_exact, stalled.frame_mismatches
    steady = simulate(pipeline, batch, progress=False)
    assert steady.bit_exact
    assert steady.cycles == 2 * -(-width // lanes) * height + steady.latency_cycles


@pytest.mark.parametrize("lanes", [2, 8])
def test_rgb_chain_with_lanes(lanes):
    pipeline = make_pipeline([{"op": "rgb2gray"}, {"op": "gaussian", "ksize": 5},
                              {"op": "gradient_magnitude", "norm": "l1"},
                              {"op": "threshold", "level": 40}], 10, 5, 3, lanes=lanes)
    frame = np.random.default_rng(lanes).integers(0, 256, (5, 10, 3), dtype=np.uint8)
    result = simulate(pipeline, frame, frames=2, stall=0.2, seed=1, progress=False)
    assert result.bit_exact
    assert result.report()["pixels_per_clock"] == lanes
