"""FULLY_CONNECTED hardware (hdl/dense.py) vs the golden layer and LiteRT in Amaranth's
simulator: classifier heads (global pool or mean, then FC) with pe/simd folding, per-tensor
and per-channel scales, random valid gaps and ready stalls; the exact integer form of
LiteRT's double-precision output scaling; exact cycle counts; the stage's parameters.
"""
import numpy as np
import pytest

from rasterflow.errors import SpecError
from rasterflow.golden.dense import FullyConnected
from rasterflow.golden.pixel import PixelFormat
from rasterflow.golden.pooling import AveragePool2D, Mean
from rasterflow.hdl.dense import DenseUnit, exact_rescale, golden_rescale
from rasterflow.hdl.payload import pack_pixels
from rasterflow.hdl.timing import StageTiming
from rasterflow.sim.session import simulate
from rasterflow.stages_cnn import stage_from_layer
from rasterflow.stages_dense import FullyConnectedStage

from conftest import make_pipeline, run_layers, unstalled_output_cycles
from test_golden_pooling import fc_options
from test_tflite_import import (Act, Op, TensorType, activation, build_model, constant,
                                reference_interpreter, run_reference)

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def random_fc(rng, cin, cout, *, per_channel, bias=True, activation_name="NONE"):
    """A FULLY_CONNECTED layer with float32 tensor scales, as the importer makes it."""
    weights = rng.integers(-127, 128, (cout, cin)).astype(np.int8)
    w_scales = rng.uniform(1e-3, 1e-2, cout if per_channel else 1).astype(np.float32)
    biases = rng.integers(-20000, 20000, cout).astype(np.int32) if bias else None
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-100, 100))
    return FullyConnected.from_scales(weights, biases, rng.uniform(0.01, 0.05), in_zp, w_scales,
                                      rng.uniform(0.05, 0.2), out_zp, activation_name)


# -- classifier heads ---------------------------------------------------------------------------

HEAD_CASES = [
    # pool, channels, H, W, Cout, per_channel, activation, pe, simd
    ("mean", 8, 4, 5, 5, False, "NONE", 2, 3),
    ("mean", 6, 3, 3, 7, True, "RELU", 3, 6),
    ("average_pool", 10, 4, 4, 4, True, "NONE", 4, 10),     # II = 1
    ("average_pool", 5, 3, 4, 9, False, "RELU6", 4, 2),     # non-divisors: II = 3 * 3
    ("mean", 12, 2, 3, 3, True, "NONE", 1, 1),              # fully folded: II = 36
]


@pytest.mark.parametrize("pool, channels, height, width, cout, per_channel, act, pe, simd",
                         HEAD_CASES)
def test_classifier_head_matches_golden(pool, channels, height, width, cout, per_channel, act,
                                        pe, simd):
    rng = np.random.default_rng(channels * 100 + cout * 10 + pe)
    if pool == "mean":
        first = Mean(0.05, int(rng.integers(-20, 20)), 0.04, int(rng.integers(-20, 20)))
    else:
        first = AveragePool2D(height, width, 1, 1, "valid")
    fc = random_fc(rng, channels, cout, per_channel=per_channel, activation_name=act)
    pipeline = make_pipeline([stage_from_layer(first), stage_from_layer(fc, pe=pe, simd=simd)],
                             width, height, channels, "int8")
    batch = rng.integers(-128, 128, (3, height, width, channels)).astype(np.int8)
    result = run_layers(pipeline, batch, stall=0.3, seed=pe, frames=2)
    layer = result.report()["layers"]["stage1"]
    ii = -(-channels // simd) * -(-cout // pe)
    assert (layer["initiation_interval"], layer["multipliers"]) == (ii, pe * simd)
    assert layer["mac_cycles"] == 6 * ii and layer["useful_macs"] == 6 * channels * cout


def test_head_exact_cycles():
    """A head whose FC keeps up: F frames take ``F*W*H + latency_cycles`` (the FC's latency
    includes ``II - 1``: its output leaves that long after its 1x1 input)."""
    rng = np.random.default_rng(5)
    fc = random_fc(rng, 8, 6, per_channel=True)
    pipeline = make_pipeline([stage_from_layer(Mean(0.05, 3, 0.04, -2)),
                              stage_from_layer(fc, pe=2, simd=4)], 6, 4, 8, "int8")
    assert pipeline.timings()["stage1"].initiation_interval == 2 * 3
    result = run_layers(pipeline, rng.integers(-128, 128, (2, 4, 6, 8)).astype(np.int8), stall=0.0,
                 frames=2)
    assert result.cycles == 4 * 24 + result.latency_cycles


@pytest.mark.parametrize("cin, cout, pe, simd", [(5, 3, 1, 5), (7, 6, 2, 3), (4, 4, 4, 4),
                                                 (9, 5, 3, 2), (1, 1, 1, 1)])
def test_dense_unit_exact_cycles(cin, cout, pe, simd):
    """Pixels offered back to back leave ``latency`` cycles after their transfer, one per
    ``II`` (the first at ``latency``: ``II - 1`` steps, then the datapath)."""
    rng = np.random.default_rng(cin * cout)
    fc = random_fc(rng, cin, cout, per_channel=True)
    dut = DenseUnit(fc.weights, fc.bias, fc.scale, in_zp=fc.in_zp, out_zp=fc.out_zp, pe=pe,
                    simd=simd)
    ii = dut.initiation_interval
    assert ii == -(-cin // simd) * -(-cout // pe)
    assert dut.latency == ii - 1 + 1 + 1 + 1 + (simd - 1).bit_length() + 1 + 4 + 1
    words = pack_pixels(PixelFormat(cin, "int8"),
                        rng.integers(-128, 128, (4, 1, cin)).astype(np.int8))
    cycles = unstalled_output_cycles(dut, words)
    assert cycles == {"first_out": dut.latency, "last_out": dut.latency + 3 * ii}


def test_hardware_matches_litert():
    """A single-operator FULLY_CONNECTED model run by LiteRT's reference kernel, and the
    hardware on the same inputs as 1x1 frames: equal outputs."""
    rng = np.random.default_rng(11)
    cin, cout = 24, 10
    in_q, out_q = (0.004, -128), (0.12, 7)
    weights = rng.integers(-127, 128, (cout, cin)).astype(np.int8)
    w_scales = rng.uniform(0.001, 0.01, cout).astype(np.float32)
    bias = rng.integers(-20000, 20000, cout).astype(np.int32)
    tensors = [activation([1, cin], *in_q), constant(weights, TensorType.INT8, w_scales, 0),
               constant(bias, TensorType.INT32, np.float32(in_q[0]) * w_scales),
               activation([1, cout], *out_q)]
    content = build_model(tensors, [(Op.FULLY_CONNECTED, [0, 1, 2], [3], fc_options(Act.NONE))],
                          [0], [3])
    interpreter = reference_interpreter(content)
    layer = FullyConnected.from_scales(weights, bias, in_q[0], in_q[1], w_scales, out_q[0],
                                       out_q[1])
    pipeline = make_pipeline([stage_from_layer(layer, pe=5, simd=8)], 1, 1, cin, "int8")
    batch = rng.integers(-128, 128, (6, 1, 1, cin)).astype(np.int8)
    result = simulate(pipeline, batch, simulator="amaranth", stall=0.3, seed=2, progress=False)
    for frame, out in zip(batch, result.outputs):
        expected = run_reference(interpreter, frame.reshape(1, cin))
        np.testing.assert_array_equal(out.reshape(1, cout), expected)


# -- the integer form of LiteRT's rounding --------------------------------------------------

def check_rescale(scale, magnitude, limit, samples=None):
    r = exact_rescale(scale, magnitude, limit)
    if samples is None:
        a = np.arange(magnitude + 1, dtype=np.int64)
    else:
        # Around every threshold (where an error would show) and at random.
        k = np.arange(1, limit + 2)
        near = np.ceil((k - 0.5) / scale).astype(np.int64)[:, None] + np.arange(-3, 4)
        a = np.concatenate([near.ravel(), samples]).clip(0, magnitude)
    got = np.array([r(int(x)) for x in a])
    np.testing.assert_array_equal(got, np.minimum(golden_rescale(a, scale), limit))
    return r


@pytest.mark.parametrize("scale", [0.3, 1 / 3, 0.1, 0.0123456789, 2.5, 3e-4, 0.5, 1.0])
def test_rescale_equals_litert_rounding_everywhere(scale):
    for limit in (255, 127, 9):
        check_rescale(scale, 6000, limit)


def test_rescale_of_float32_scales_and_wide_accumulators():
    rng = np.random.default_rng(0)
    for _ in range(40):
        scale = float(np.float32(rng.uniform(0.005, 0.2))) * \
            float(np.float32(rng.uniform(1e-4, 2e-2))) / float(np.float32(rng.uniform(0.02, 0.5)))
        magnitude = int(rng.choice([1 << 20, 1 << 25, 1 << 31]))
        r = check_rescale(scale, magnitude, 255, rng.integers(0, magnitude, 2000))
        assert r.a_max < magnitude and r.a_max * scale >= 254.5
    # Exact ties at a huge |acc|: 5e8 * 1e-9 rounds up (the double is just above 0.5).
    r = check_rescale(1e-9, 1 << 31, 255, rng.integers(0, 1 << 31, 2000))
    assert r(500_000_000) == 1 and r(499_999_999) == 0 and r(1 << 31) == 2


def test_rescale_refuses_rounding_no_line_reproduces():
    """``5 * 0.7`` rounds up to 3.5 in double precision, ``45 * 0.7`` stays below 31.5:
    no ``(a*M + R) >> S`` has both; the hardware refuses, the golden model runs."""
    assert golden_rescale(np.array([5, 45]), 0.7).tolist() == [4, 31]
    with pytest.raises(ValueError, match="double rounding"):
        exact_rescale(0.7, 1000, 255)
    layer = FullyConnected(np.ones((2, 3), np.int8), None, [0.7], 0, 0)
    stage = stage_from_layer(layer)
    with pytest.raises(SpecError) as error:
        make_pipeline([stage], 1, 1, 3, "int8")
    assert error.value.field == "stage[0].scale" and "golden model" in error.value.message
    np.testing.assert_array_equal(layer(np.full((1, 3), 2, np.int8)), [[4, 4]])


@pytest.mark.parametrize("out_zp, act_min, act_max", [(-100, -128, 127), (90, -128, 127),
                                                      (0, -20, 20)])
def test_scales_above_one_saturate(out_zp, act_min, act_max):
    """With a scale above 1 the rounded product steps by more than 1: the magnitude's
    saturation must still land on the clamp, at either end of the range."""
    rng = np.random.default_rng(out_zp & 0xff)
    weights = rng.integers(-3, 4, (3, 5)).astype(np.int8)
    layer = FullyConnected(weights, np.array([0, 7, -7], np.int32), [2.5, 3.7, 1.3], 2, out_zp,
                           act_min, act_max)
    pipeline = make_pipeline([stage_from_layer(layer, simd=2)], 1, 1, 5, "int8")
    batch = rng.integers(-128, 128, (8, 1, 1, 5)).astype(np.int8)
    batch[:2] = rng.integers(-3, 4, (2, 1, 1, 5))       # small outputs, in range
    run_layers(pipeline, batch, stall=0.2)


def test_accumulator_wraps_like_litert():
    """A bias near the int32 limit: the accumulator wraps as LiteRT's int32 does."""
    weights = np.full((2, 4), 127, np.int8)
    bias = np.array([(1 << 31) - 1000, -(1 << 31) + 1000], np.int32)
    layer = FullyConnected(weights, bias, [1e-7], 0, 0)
    pipeline = make_pipeline([stage_from_layer(layer)], 1, 1, 4, "int8")
    batch = np.array([np.full((1, 1, 4), v, np.int8) for v in (127, -128, 3, 0)])
    assert (layer(batch[0].reshape(1, 4)) < 0).all()     # wrapped around
    run_layers(pipeline, batch, stall=0.2)


# -- the stage ----------------------------------------------------------------------------------

def fc_table(**fields):
    return {"op": "fully_connected", "weights": "fc.npz:w", "scale": [0.004], "in_zp": 3,
            "out_zp": -2, **fields}


def test_spec_with_sidecar_and_optional_bias(tmp_path):
    rng = np.random.default_rng(2)
    weights = rng.integers(-127, 128, (4, 6)).astype(np.int8)
    np.savez(tmp_path / "fc.npz", w=weights, b=np.arange(4, dtype=np.int32) * 100)
    doc = {"input": {"width": 1, "height": 1, "channels": 6, "dtype": "int8"}}
    from rasterflow.spec import parse_spec
    without = parse_spec({**doc, "stage": [fc_table(pe=2)]}, base_dir=tmp_path)
    stage = without.stages[0]
    assert (stage.arrays["bias"] == 0).all() and "bias" not in stage.to_table()
    with_bias = parse_spec({**doc, "stage": [fc_table(bias="fc.npz:b", simd=4)]},
                           base_dir=tmp_path)
    assert with_bias.stages[0].to_table()["bias"] == "fc.npz:b"
    batch = rng.integers(-128, 128, (3, 1, 1, 6)).astype(np.int8)
    for pipeline in (without, with_bias):
        run_layers(pipeline, batch, stall=0.3)
    with pytest.raises(SpecError) as error:
        parse_spec({**doc, "stage": [fc_table(bias="fc.npz:nope")]}, base_dir=tmp_path)
    assert error.value.field == "stage[0].bias"


def test_stage_rejects_bad_parameters():
    weights = np.ones((3, 4), np.int8)
    good = dict(weights=weights, scale=[0.01], in_zp=0, out_zp=0)
    cases = [
        (dict(weights=weights.astype(np.int16)), "weights"),
        (dict(weights=np.ones(4, np.int8)), "weights"),
        (dict(bias=np.zeros(2, np.int32)), "bias"),
        (dict(bias=np.zeros(3, np.int64)), "bias"),
        (dict(scale=[0.1, 0.2]), "scale"),
        (dict(scale=[-0.1]), "scale"),
        (dict(scale=[]), "scale"),
        (dict(pe=4), "pe"),
        (dict(simd=5), "simd"),
        (dict(act_min=5, act_max=4), "act_max"),
        (dict(weights="fc.npz:w"), "weights"),
    ]
    for fields, name in cases:
        with pytest.raises(SpecError) as error:
            FullyConnectedStage(**{**good, **fields})
        assert error.value.field == name, fields
    stage = FullyConnectedStage(**good)
    with pytest.raises(SpecError) as error:
        make_pipeline([stage], 2, 2, 4, "int8")
    assert error.value.field == "input.width" and "1x1" in error.value.message
    with pytest.raises(SpecError) as error:
        make_pipeline([stage_from_layer(AveragePool2D(2, 2, 2, 2, "valid")), stage], 4, 4, 4,
                      "int8")
    assert error.value.field == "stage[1]" and "its input (2x2 from stage[0])" in \
        error.value.message
    with pytest.raises(SpecError, match="expects 4 input channels"):
        make_pipeline([stage], 1, 1, 5, "int8")


def test_dense_unit_validates_its_arguments():
    weights = np.ones((3, 4), np.int8)
    args = (weights, np.zeros(3, np.int32), [0.01])
    for pe, simd, match in ((0, 1, "pe"), (4, 1, "pe"), (1, 5, "simd"), (True, 1, "pe")):
        with pytest.raises(ValueError, match=match):
            DenseUnit(*args, in_zp=0, out_zp=0, pe=pe, simd=simd)
    with pytest.raises(ValueError, match="bias"):
        DenseUnit(weights, np.zeros(2, np.int32), [0.01], in_zp=0, out_zp=0)
    with pytest.raises(ValueError, match="scale"):
        DenseUnit(weights, np.zeros(3, np.int32), [0.01, 0.02], in_zp=0, out_zp=0)
    with pytest.raises(ValueError, match="in_zp"):
        DenseUnit(*args, in_zp=300, out_zp=0)


def test_timing_and_folding_plan():
    fc = random_fc(np.random.default_rng(1), 16, 10, per_channel=False)
    stage = stage_from_layer(fc, pe=5, simd=4)
    pipeline = make_pipeline([stage], 1, 1, 16, "int8")
    part = pipeline.hardware().parts[0]
    timing = pipeline.timings()["stage0"]
    assert timing == StageTiming(part.latency, part.schedule_delay, part.initiation_interval,
                                 part.multipliers, 16 * 10)
    assert (timing.initiation_interval, timing.multipliers) == (4 * 2, 20)
    # 16 pixels of budget per output: the fewest multipliers with II <= 16 (pe | 10, simd | 16).
    assert FullyConnectedStage.balanced_folding(fc, 1, 16) == (5, 2)
    assert FullyConnectedStage.balanced_folding(fc, 1, 1000) == (1, 1)
    assert FullyConnectedStage.balanced_folding(fc, 100, 10) == (10, 16)
