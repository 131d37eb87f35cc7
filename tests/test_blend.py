"""AddWeighted hardware vs golden.blend, in Amaranth's simulator.

Every (a, b) pair for three weight sets, through random input gaps and output stalls,
compared value for value with ``sof``/``eol``; sums swept across every rounding bound (with
and without a sticky bit); for random weights, the pairs whose sum lies nearest a
half-integer; a 3-channel frame; the exact latency and one pixel per cycle unstalled;
parameter validation.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import stream_through, unstalled_output_cycles
from rasterflow.golden import blend as golden
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.blend import MAX_FRACTION_BITS, ROUNDING_BITS, AddWeighted
from rasterflow.hdl.payload import pack_joined, unpack_pixels

# Blocks built only to read their attributes or to be rejected are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

GRAY, RGB = PixelFormat(1, "uint8"), PixelFormat(3, "uint8")


def joined_words(dut, a, b):
    """Payloads of the joined stream for ``H x W x C`` frames ``a``, ``b``, one per pixel."""
    return pack_joined({"a": dut.fmt_a, "b": dut.fmt_b}, {"a": a, "b": b})


def check(dut, a, b, *, seed):
    """Stream frames ``a``, ``b`` (``H x W x C``) through ``dut``; compare with the golden
    vector path and the frame markers."""
    height, width = a.shape[:2]
    out, sof, eol = unpack_pixels(dut.out_fmt, stream_through(dut, joined_words(dut, a, b), a.shape[0] * a.shape[1], stall=0.3, seed=seed),
                                  height, width)
    assert sof.sum() == 1 and sof[0, 0], "sof must mark exactly the first pixel"
    assert eol[:, -1].all() and eol.sum() == height, "eol must mark each line's last pixel"
    expected = golden.add_weighted_vector(a, b, dut.alpha, dut.beta, dut.gamma)
    mismatches = np.argwhere(out != expected)
    assert mismatches.size == 0, [(tuple(p), int(a[tuple(p)]), int(b[tuple(p)]),
                                   int(out[tuple(p)]), int(expected[tuple(p)]))
                                  for p in mismatches[:10]]


#: Every (a, b) pair as one 256 x 256 frame: ``a`` down the rows, ``b`` along them.
PAIR_A, PAIR_B = (v.astype(np.uint8)[:, :, None] for v in
                  np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))


def test_joined_words_follow_the_layout():
    dut = AddWeighted(RGB, RGB, alpha=1, beta=1, gamma=0)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 2, 3, 3), dtype=np.uint8)
    layout = dut.i.payload.shape()
    expected = [layout.const({"data": {"a": a[y, x].tolist(), "b": b[y, x].tolist()},
                              "sof": (y, x) == (0, 0), "eol": x == 2}).as_value().value
                for y in range(2) for x in range(3)]
    assert joined_words(dut, a, b) == expected


@pytest.mark.parametrize("weights", [
    pytest.param((0.5, 0.5, 0.0), id="mean-ties"),
    pytest.param((1.5, -0.5, 0.0), id="unsharp"),
    pytest.param((0.1, 0.2, 0.3), id="inexact-weights"),
])
def test_every_pair_equals_golden(weights):
    alpha, beta, gamma = weights
    check(AddWeighted(GRAY, GRAY, alpha=alpha, beta=beta, gamma=gamma), PAIR_A, PAIR_B,
          seed=7)


def test_sticky_products_equal_golden():
    """A weight with more than MAX_FRACTION_BITS fraction bits: ``a * α`` keeps a sticky
    bit; ``γ`` puts sums next to the 1/2 boundary. An eighth of the pairs, at random."""
    dut = AddWeighted(GRAY, GRAY, alpha=1e-8, beta=3e-9, gamma=0.5 + 2 ** -25)
    assert dut.fraction_bits == MAX_FRACTION_BITS
    assert any(sticky for _, sticky in dut.a_terms)
    pick = np.random.default_rng(3).permutation(65536)[:8192].reshape(32, 256)
    check(dut, PAIR_A.reshape(-1, 1)[pick], PAIR_B.reshape(-1, 1)[pick], seed=9)


def hard_pairs(weights, count):
    """``a``, ``b`` of the ``count`` pairs whose exact sum ``a * α + fma(b, β, γ)`` (in
    float64, close enough to rank them) lies nearest a half-integer in -1..257."""
    alpha, beta, gamma = golden.float32_weights(*weights)
    values = np.arange(256)
    with np.errstate(invalid="ignore"):
        total = values[:, None] * np.float64(alpha) + \
            golden.fma32(values, beta, gamma)[None, :].astype(np.float64)
        distance = np.abs(total - np.floor(total) - 0.5)
    distance[~((total > -1) & (total < 257))] = np.inf
    return np.unravel_index(np.argsort(distance, axis=None, kind="stable")[:count], total.shape)


weight_values = st.one_of(st.floats(-4, 4), st.integers(-64, 64).map(lambda k: k / 16),
                          st.floats(1e-9, 1e-3), st.sampled_from([1 / 3, 0.1, 0.7]))
gamma_values = st.one_of(st.floats(-300, 300), st.integers(-600, 600).map(lambda k: k / 2))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alpha=weight_values, beta=weight_values, gamma=gamma_values,
       seed=st.integers(0, 1 << 16))
def test_random_weights_near_ties_equal_golden(alpha, beta, gamma, seed):
    """The 256 pairs nearest a rounding boundary and 56 random pairs, as a 4 x 78 frame."""
    dut = AddWeighted(GRAY, GRAY, alpha=alpha, beta=beta, gamma=gamma)
    assert ROUNDING_BITS <= dut.fraction_bits <= MAX_FRACTION_BITS
    a, b = hard_pairs((alpha, beta, gamma), 256)
    rng = np.random.default_rng(seed)
    a, b = (np.concatenate([v, rng.integers(0, 256, 56)]).astype(np.uint8).reshape(4, 78, 1)
            for v in (a, b))
    check(dut, a, b, seed=seed)


#: ``alpha`` for ``beta, gamma = 1, 1/2``: the ``b`` term is ``b + 1/2`` exactly and ``a * α``
#: is the distance from it, in steps of ``|α|``, above (``α > 0``) or below: ``2**-28`` crosses
#: the capture bounds of ``n = b < 16`` (2**-25..2**-21) at ``a = 8..128``, ``2**-24`` those of
#: ``n >= 1`` (2**-24..2**-17) at ``a = 1..128``, both landing on each bound exactly. The last
#: pair has 40 fraction bits, so ``a * α`` keeps a sticky bit and lands just beyond a bound at
#: ``a = 2**k < 64``.
BOUNDARY_ALPHAS = [2 ** -28, -2 ** -28, 2 ** -24, -2 ** -24, 2 ** -24 + 2 ** -40,
                   -2 ** -24 - 2 ** -40]
#: ``b`` at both ends of every bit length.
EDGES = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 254, 255]


@pytest.mark.parametrize("alpha", BOUNDARY_ALPHAS)
def test_rounding_boundaries_equal_golden(alpha):
    """Every ``a`` against each ``b`` of :data:`EDGES`, a row per ``b``."""
    a = np.tile(np.arange(256, dtype=np.uint8), (len(EDGES), 1))[:, :, None]
    b = np.repeat(np.array(EDGES, dtype=np.uint8)[:, None], 256, axis=1)[:, :, None]
    check(AddWeighted(GRAY, GRAY, alpha=alpha, beta=1, gamma=0.5), a, b, seed=5)


def test_three_channels_equal_golden():
    rng = np.random.default_rng(11)
    a, b = rng.integers(0, 256, (2, 6, 50, 3), dtype=np.uint8)
    dut = AddWeighted(RGB, RGB, alpha=0.7, beta=0.3, gamma=12.25)
    check(dut, a, b, seed=12)
    # 900 values: cv2 runs the vector path on all of them, so this is cv2's answer too.
    assert golden.scalar_tail(a.size) == 0


def test_latency_and_throughput():
    """Unstalled, the first output comes ``latency`` cycles after the first input, and
    ``N`` pixels leave within ``N + latency`` cycles of the first input."""
    dut = AddWeighted(GRAY, GRAY, alpha=0.5, beta=0.5, gamma=0)
    assert (dut.latency, dut.schedule_delay) == (7, 0)
    count = 20
    words = [dut.i.payload.shape().const({"sof": k == 0}).as_value().value
             for k in range(count)]
    assert unstalled_output_cycles(dut, words) == {"first_out": dut.latency,
                                                   "last_out": count - 1 + dut.latency}


def test_attributes():
    dut = AddWeighted(RGB, RGB, alpha=0.1, beta=-1.5, gamma=3)
    assert (dut.fmt_a, dut.fmt_b, dut.out_fmt) == (RGB, RGB, RGB)
    assert (dut.alpha, dut.beta, dut.gamma) == (float(np.float32(0.1)), -1.5, 3.0)
    assert dut.fraction_bits == 27       # float32 0.1 has 27 fraction bits


@pytest.mark.parametrize("make, error, message", [
    (lambda: AddWeighted("uint8", GRAY, alpha=1, beta=1, gamma=0), TypeError,
     "fmt_a must be a PixelFormat, not 'uint8'"),
    (lambda: AddWeighted(PixelFormat(1, "int16"), GRAY, alpha=1, beta=1, gamma=0),
     ValueError, "fmt_a must have uint8 channels, not 1xint16"),
    (lambda: AddWeighted(GRAY, PixelFormat(1, "uint16"), alpha=1, beta=1, gamma=0),
     ValueError, "fmt_b must have uint8 channels, not 1xuint16"),
    (lambda: AddWeighted(GRAY, RGB, alpha=1, beta=1, gamma=0), ValueError,
     r"fmt_b must have the 1 channel\(s\) of fmt_a, not 3xuint8"),
    (lambda: AddWeighted(GRAY, GRAY, alpha=float("inf"), beta=1, gamma=0), ValueError,
     r"alpha must be a real number in .* \(finite as a float32\), not inf"),
    (lambda: AddWeighted(GRAY, GRAY, alpha=1, beta=float("nan"), gamma=0), ValueError,
     "beta must be a real number .* not nan"),
    (lambda: AddWeighted(GRAY, GRAY, alpha=1, beta=1, gamma=1e39), ValueError,
     r"gamma must be a real number .* not 1e\+39"),
    (lambda: AddWeighted(GRAY, GRAY, alpha="1", beta=1, gamma=0), ValueError,
     "alpha must be a real number .* not '1'"),
])
def test_parameters_are_validated(make, error, message):
    with pytest.raises(error, match=message):
        make()
