"""Per-element arithmetic hardware vs golden.arithm, in Amaranth's simulator.

Every op on every type it accepts: a frame of a few hundred pixels (every pair of the type's
corner values, then random values with a fifth at the extremes) through random input gaps
and output stalls, compared pixel for pixel with ``sof``/``eol``; the exact latency and one
pixel per cycle unstalled; a 3-channel case; parameter validation.
"""

import numpy as np
import pytest

from conftest import stream_through, unstalled_output_cycles
from rasterflow.golden import arithm as golden
from rasterflow.golden.pixel import DTYPES, PixelFormat
from rasterflow.hdl import arithm
from rasterflow.hdl.payload import pack_joined, pack_pixels, unpack_pixels

# Blocks built only to read their attributes or to be rejected are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

BINARY = {
    arithm.Add: golden.add,
    arithm.Subtract: golden.subtract,
    arithm.AbsDiff: golden.absdiff,
    arithm.Min: golden.minimum,
    arithm.Max: golden.maximum,
    arithm.BitwiseAnd: golden.bitwise_and,
    arithm.BitwiseOr: golden.bitwise_or,
    arithm.BitwiseXor: golden.bitwise_xor,
}
HEIGHT, WIDTH = 6, 50


def corner_pairs(fmt):
    """Every pair of min, min + 1, -1, 0, 1, max - 1, max (those in range)."""
    corners = [v for v in (fmt.min, fmt.min + 1, -1, 0, 1, fmt.max - 1, fmt.max)
               if fmt.min <= v <= fmt.max]
    a, b = np.meshgrid(corners, corners)
    return a.reshape(-1), b.reshape(-1)


def random_frames(fmt, seed, lo=None, hi=None):
    """Two HEIGHT x WIDTH frames: the corner pairs on every channel, then random values in
    ``lo..hi`` (default: the type's range) with a fifth at the type's extremes."""
    rng = np.random.default_rng(seed)
    shape = (HEIGHT * WIDTH, fmt.channels)
    lo, hi = (fmt.min if lo is None else lo), (fmt.max if hi is None else hi)
    frames = []
    for corners in corner_pairs(fmt):
        values = rng.integers(lo, hi, size=shape, endpoint=True)
        extreme = rng.random(shape) < 0.2
        values[extreme] = rng.choice([fmt.min, fmt.max], size=int(extreme.sum()))
        values[:len(corners)] = corners[:, None]
        frames.append(values.reshape(HEIGHT, WIDTH, fmt.channels).astype(fmt.np_dtype))
    return frames


def check(dut, inputs, expected, *, seed):
    words = pack_joined({"a": dut.fmt, "b": dut.fmt}, dict(zip("ab", inputs))) \
        if len(inputs) == 2 else pack_pixels(dut.fmt, *inputs)
    received = stream_through(dut, words, len(words), stall=0.3, seed=seed)
    out, sof, eol = unpack_pixels(dut.out_fmt, received, HEIGHT, WIDTH)
    assert sof.sum() == 1 and sof[0, 0], "sof must mark exactly the first pixel"
    assert eol[:, -1].all() and eol.sum() == HEIGHT, "eol must mark each line's last pixel"
    mismatches = np.argwhere(out != expected)
    assert mismatches.size == 0, [(tuple(p), [int(v[tuple(p)]) for v in inputs],
                                   int(out[tuple(p)]), int(expected[tuple(p)]))
                                  for p in mismatches[:10]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.__name__)
def test_binary_op_equals_golden(op, dtype):
    fmt = PixelFormat(1, dtype)
    a, b = random_frames(fmt, seed=len(op.__name__) + DTYPES[dtype][0])
    check(op(fmt), (a, b), BINARY[op](a, b), seed=DTYPES[dtype][0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_not_equals_golden(dtype):
    fmt = PixelFormat(1, dtype)
    a, _ = random_frames(fmt, seed=DTYPES[dtype][0])
    check(arithm.BitwiseNot(fmt), (a,), golden.bitwise_not(a), seed=3)


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("lo, hi", [(-300, 300), (None, None)], ids=["small", "full"])
def test_magnitude_equals_golden(norm, lo, hi):
    """Small gradients reach every rounding of the root below the 255 saturation; the
    full int16 range, with its extremes, saturates."""
    fmt = PixelFormat(1, "int16")
    gx, gy = random_frames(fmt, seed=7, lo=lo, hi=hi)
    check(arithm.Magnitude(fmt, norm), (gx, gy), golden.magnitude(gx, gy, norm), seed=8)


@pytest.mark.parametrize("make, reference, dtype", [
    (arithm.AbsDiff, golden.absdiff, "int16"),
    (lambda fmt: arithm.Magnitude(fmt, "l2"), lambda a, b: golden.magnitude(a, b, "l2"),
     "int16"),
], ids=["absdiff", "magnitude-l2"])
def test_three_channels(make, reference, dtype):
    fmt = PixelFormat(3, dtype)
    a, b = random_frames(fmt, seed=11, lo=-400, hi=400)
    check(make(fmt), (a, b), reference(a, b), seed=12)


ALL_BLOCKS = [
    *[(op.__name__, lambda op=op: op(PixelFormat(2, "uint8")), 1) for op in BINARY],
    ("BitwiseNot", lambda: arithm.BitwiseNot(PixelFormat(2, "int32")), 1),
    ("Magnitude-l1", lambda: arithm.Magnitude(PixelFormat(2, "int16"), "l1"), 2),
    ("Magnitude-l2", lambda: arithm.Magnitude(PixelFormat(2, "int16"), "l2"), 7),
]


@pytest.mark.parametrize("name, make, latency", ALL_BLOCKS, ids=[b[0] for b in ALL_BLOCKS])
def test_latency_and_throughput(name, make, latency):
    """Unstalled, the first output comes ``latency`` cycles after the first input, and
    ``N`` pixels leave within ``N + latency`` cycles of the first input."""
    dut = make()
    assert (dut.latency, dut.schedule_delay) == (latency, 0)
    count = 20
    words = [dut.i.payload.shape().const({"sof": k == 0}).as_value().value
             for k in range(count)]
    assert unstalled_output_cycles(dut, words) == {"first_out": latency,
                                                   "last_out": count - 1 + latency}


def test_formats():
    fmt = PixelFormat(3, "int16")
    for op in BINARY:
        assert (op(fmt).fmt, op(fmt).out_fmt) == (fmt, fmt)
    magnitude = arithm.Magnitude(fmt, "l1")
    assert (magnitude.fmt, magnitude.out_fmt, magnitude.norm) == \
        (fmt, PixelFormat(3, "uint8"), "l1")
    assert arithm.DTYPES == tuple(DTYPES)


@pytest.mark.parametrize("make, error, message", [
    (lambda: arithm.Add("uint8"), TypeError, "fmt must be a PixelFormat, not 'uint8'"),
    (lambda: arithm.BitwiseNot(None), TypeError, "fmt must be a PixelFormat, not None"),
    (lambda: arithm.Magnitude(PixelFormat(1, "uint8"), "l1"), ValueError,
     "fmt must have int16 channels, not 1xuint8"),
    (lambda: arithm.Magnitude(PixelFormat(1, "int16"), "l3"), ValueError,
     "norm must be one of l1, l2, not 'l3'"),
])
def test_parameters_are_validated(make, error, message):
    with pytest.raises(error, match=message):
        make()
