"""The pipelined requantizer vs golden MultiplyByQuantizedMultiplier, in Amaranth's simulator.

Corner cases (INT32_MIN/MAX, every shift -31..31, M0 extremes, negative and positive ties of
the rounding divide, the INT32_MIN * INT32_MIN saturation of SRDHM), random values
(hypothesis), the zero point + clamp output, random stalls, and the pointwise LeakyReLU / ReLU
stage built on it (exhaustive over all 256 int8 inputs).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rasterflow.golden.cnn import LeakyRelu, Relu
from rasterflow.golden.pixel import PixelFormat
from rasterflow.golden.quant import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                                     quantize_multiplier, rounding_divide_by_pot,
                                     saturating_rounding_doubling_high_mul, wrap_int32)
from rasterflow.hdl.activation import RequantActivation
from rasterflow.hdl.payload import pack_pixels, unpack_pixels
from rasterflow.hdl.requant import REQUANT_LATENCY, Requantizer
from rasterflow.sim.amaranth_sim import run_stream

SETTINGS = settings(max_examples=8, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def run_requantizer(cases, *, zero_point=0, act_min=-128, act_max=127, signed_m0=False,
                    stall=0.0, seed=0):
    """Run ``(acc, m0, shift)`` cases; return ``[(mbqm, y)]`` and the run."""
    dut = Requantizer(zero_point=zero_point, act_min=act_min, act_max=act_max,
                      signed_m0=signed_m0)
    in_layout, out_layout = dut.i.payload.shape(), dut.o.payload.shape()
    words = [in_layout.const({"acc": a, "m0": m, "shift": s}).as_value().value
             for a, m, s in cases]
    run = run_stream(dut, words, len(words), stall=stall, seed=seed)
    mbqm_field, y_field = out_layout["mbqm"], out_layout["y"]
    results = [(_signed(w >> mbqm_field.offset, 32), _signed(w >> y_field.offset, 8))
               for w in run.out_words]
    return results, run


def check(cases, **kwargs):
    results, run = run_requantizer(cases, **kwargs)
    zp = kwargs.get("zero_point", 0)
    lo, hi = kwargs.get("act_min", -128), kwargs.get("act_max", 127)
    x = np.array([c[0] for c in cases], dtype=np.int64)
    m0 = np.array([c[1] for c in cases], dtype=np.int64)
    shift = np.array([c[2] for c in cases], dtype=np.int64)
    if kwargs.get("signed_m0"):
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        expected = rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(wrap_int32(x << left), m0), right)
    else:
        expected = multiply_by_quantized_multiplier(x, m0, shift)
    got = np.array([r[0] for r in results], dtype=np.int64)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, [(cases[i], int(got[i]), int(expected[i])) for i in bad[:10]]
    got_y = np.array([r[1] for r in results], dtype=np.int64)
    assert np.array_equal(got_y, np.clip(expected + zp, lo, hi))
    return run


ACC_CORNERS = [INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, 0, 1, -1, 2, -2, 3, -3,
               (1 << 30), -(1 << 30), 12345678, -12345678, (1 << 24) + 1, -(1 << 24) - 1]
M0_CORNERS = [0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1, 1518500250]


def test_corner_cases_every_shift():
    cases = [(a, m, s) for a in ACC_CORNERS for m in M0_CORNERS for s in range(-31, 32)]
    check(cases)


def test_rounding_ties_both_signs():
    """With m0 = 2**30 SRDHM halves even values exactly, so ``a = (2t+1) * 2**r`` gives
    ``(2t+1) * 2**(r-1)``: an exact tie of the rounding divide by ``2**r`` (shift = -r)."""
    cases = []
    for r in range(1, 32):
        for t in (0, 1, 2, 5):
            a = (2 * t + 1) << r
            if a <= INT32_MAX:
                cases += [(a, 1 << 30, -r), (-a, 1 << 30, -r)]
                cases += [(a + 2, 1 << 30, -r), (-a - 2, 1 << 30, -r)]
    results, _ = run_requantizer(cases)
    # Spot-check the definition directly (ties away from zero), not only via the golden.
    assert results[0][0] == 1 and results[1][0] == -1            # +-0.5 -> +-1 (r = 1)
    check(cases)


def test_srdhm_int32_min_squared_saturates():
    cases = [(INT32_MIN, INT32_MIN, s) for s in (0, -1, -5, -31)] + \
            [(INT32_MIN, INT32_MAX, 0), (INT32_MAX, INT32_MIN, 0), (INT32_MIN + 1, INT32_MIN, 0),
             (1 << 30, INT32_MIN, 1), (-7, -(1 << 30), -2)]
    results, _ = run_requantizer(cases, signed_m0=True)
    assert results[0][0] == INT32_MAX
    check(cases, signed_m0=True)


def test_left_shift_wraps_like_int32():
    cases = [(a, m, s) for a in (1 << 20, -(1 << 20), 0x12345, -0x12345, INT32_MAX, INT32_MIN)
             for m in (1 << 30, INT32_MAX) for s in (8, 12, 16, 24, 31)]
    check(cases)


def test_zero_point_and_clamp():
    cases = [(a, m, s) for a in (-1000, -129, -5, 0, 5, 127, 1000, INT32_MAX, INT32_MIN)
             for m in (1 << 30, 1518500250) for s in (-3, 0, 1)]
    check(cases, zero_point=-37, act_min=-100, act_max=90)


@SETTINGS
@given(st.lists(st.tuples(st.integers(INT32_MIN, INT32_MAX),
                          st.one_of(st.integers(1 << 30, INT32_MAX), st.integers(0, INT32_MAX)),
                          st.integers(-31, 31)), min_size=1, max_size=150),
       st.integers(-128, 127), st.integers(0, 2**16))
def test_random_values(cases, zero_point, seed):
    check(cases, zero_point=zero_point, stall=0.3, seed=seed)


@SETTINGS
@given(st.lists(st.tuples(st.integers(-(1 << 20), 1 << 20),
                          st.floats(1e-6, 8.0), st.sampled_from([-1, 0, 1])),
                min_size=1, max_size=100))
def test_realistic_multipliers(draws):
    """Multipliers from quantize_multiplier of real scales, accumulators of realistic size."""
    cases = []
    for acc, real, _ in draws:
        m0, shift = quantize_multiplier(real)
        cases.append((acc, m0, shift))
    check(cases)


def test_requantizer_latency_and_throughput():
    cases = [(k * 1000 - 50000, 1 << 30, 0) for k in range(100)]
    run = check(cases)
    assert run.first_output_cycle == REQUANT_LATENCY
    assert run.cycles == len(cases) + REQUANT_LATENCY


# -- the pointwise activation stages -------------------------------------------------------------

def _all_int8_frame(channels):
    values = np.arange(-128, 128, dtype=np.int64)
    frame = np.stack([np.roll(values, 37 * ch) for ch in range(channels)], axis=-1)
    return frame.reshape(16, 16, channels).astype(np.int8)


def _run_activation(dut, frame, stall, seed):
    h, w, _ = frame.shape
    run = run_stream(dut, pack_pixels(dut.fmt, frame), h * w, stall=stall, seed=seed)
    out, sof, eol = unpack_pixels(dut.out_fmt, run.out_words, h, w)
    assert sof[0, 0] and sof.sum() == 1 and eol[:, -1].all() and eol.sum() == h
    return out, run


@pytest.mark.parametrize("in_zp,out_zp,alpha,in_scale,out_scale", [
    (11, -101, 0.1, 0.05, 0.04),       # yolo_block_64's layer
    (-128, 0, 0.1, 0.02, 0.02),
    (127, -128, 0.2, 0.5, 0.01),       # large multipliers: positive shift, saturating outputs
    (0, 5, 0.01, 0.003, 0.25),         # tiny multipliers
])
def test_leaky_relu_exhaustive(in_zp, out_zp, alpha, in_scale, out_scale):
    layer = LeakyRelu.from_scales(in_scale, in_zp, out_scale, out_zp, alpha)
    fmt = PixelFormat(2, "int8")
    dut = RequantActivation(fmt, in_zp=in_zp, out_zp=out_zp,
                            multipliers=[(layer.identity_m0, layer.identity_shift),
                                         (layer.alpha_m0, layer.alpha_shift)])
    frame = _all_int8_frame(2)
    out, run = _run_activation(dut, frame, stall=0.25, seed=in_zp & 0xff)
    assert np.array_equal(out, layer(frame))


@pytest.mark.parametrize("kind", ["RELU", "RELU6", "RELU_N1_TO_1"])
def test_relu_exhaustive(kind):
    layer = Relu.from_scales(0.05, -3, 0.04, -128, kind)
    fmt = PixelFormat(1, "int8")
    dut = RequantActivation(fmt, in_zp=-3, out_zp=-128, multipliers=[(layer.m0, layer.shift)],
                            act_min=layer.act_min, act_max=layer.act_max)
    frame = _all_int8_frame(1)
    out, run = _run_activation(dut, frame, stall=0.0, seed=0)
    assert np.array_equal(out, layer(frame))
    assert run.cycles == 256 + dut.latency


def test_activation_rejects_bad_parameters():
    fmt = PixelFormat(1, "int8")
    with pytest.raises(ValueError, match="multipliers"):
        RequantActivation(fmt, in_zp=0, out_zp=0, multipliers=[])
    with pytest.raises(ValueError, match="shift"):
        RequantActivation(fmt, in_zp=0, out_zp=0, multipliers=[(1 << 30, 32)])
    with pytest.raises(ValueError, match="int8"):
        RequantActivation(PixelFormat(1, "uint8"), in_zp=0, out_zp=0, multipliers=[(1, 0)])
