"""Int8 LOGISTIC and SOFTMAX hardware (hdl/nonlinear.py) against the golden layers and LiteRT.

Each stage runs as a pipeline in Amaranth's simulator on several frames of several pixels,
back to back, with random valid gaps and ready stalls, and must equal the golden layer with
zero mismatches. Softmax inputs include what the golden tests use to reach its corners:
rows whose spread crosses the ``diff_min`` cut-off, all-equal rows, one-hot rows (an output
saturating at 127), constant extremes and a peak above a plateau. The exact cycle counts the
timing functions claim are asserted unstalled. Single-operator .tflite models check the
imported stages against LiteRT BUILTIN_REF itself.
"""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from tflite.BuiltinOperator import BuiltinOperator as Op

from rasterflow.errors import SpecError
from rasterflow.golden.nonlinear import (Logistic as GoldenLogistic, Softmax as GoldenSoftmax,
                                         exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1)
from rasterflow.golden.pixel import PixelFormat
from rasterflow.golden.quant import (rounding_divide_by_pot,
                                     saturating_rounding_doubling_high_mul, wrap_int32)
from rasterflow.hdl.nonlinear import Logistic, Softmax, exp_table
from rasterflow.hdl.payload import pack_pixels, unpack_pixels
from rasterflow.pipeline import Pipeline
from rasterflow.sim.amaranth_sim import run_stream
from rasterflow.spec import InputSpec
from rasterflow.stages import stage_from_table
from rasterflow.stages_cnn import stage_from_layer
from rasterflow.stages_nonlinear import LogisticStage, SoftmaxStage
from rasterflow.tflite_import import load_tflite

from conftest import (get_words, make_pipeline, put_words, run_layers,
                      unstalled_output_cycles)
from test_golden_nonlinear import softmax_inputs, softmax_options
from test_tflite_import import activation, build_model, reference_interpreter, run_reference

OUT_Q = (1.0 / 256, -128)


def run(stage, batch, *, stall, seed=0):
    """``batch`` (N x H x W x C int8) through a pipeline of ``stage`` alone; every output
    must equal the stage's golden layer. Returns the simulation result."""
    _, height, width, channels = batch.shape
    pipeline = make_pipeline([stage], width, height, channels, "int8")
    return run_layers(pipeline, batch, stall=stall, seed=seed)


def softmax_batch(rng, shape, layer):
    """The golden tests' softmax corner frames of ``shape`` (H x W x C), stacked."""
    span = max(1, min(254, -layer.diff_min + 2))
    return np.stack(softmax_inputs(rng, shape, span))


# -- logistic ------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_q", [(0.05, 3), (0.5, -100), (0.001, 127), (0.0235, -128)])
def test_logistic_matches_golden(in_q):
    rng = np.random.default_rng(int(in_q[0] * 1e4))
    stage = LogisticStage(*in_q)
    every_input = np.arange(-128, 128, dtype=np.int8).reshape(4, 16, 4)
    batch = np.stack([every_input, rng.integers(-128, 128, (4, 16, 4), dtype=np.int8)])
    result = run(stage, batch, stall=0.3, seed=in_q[1])
    outputs = np.concatenate([out.ravel() for out in result.outputs])
    assert len(set(outputs.tolist())) > 2    # not a constant table


def test_logistic_cycles():
    stage = LogisticStage(0.05, 0)
    batch = np.random.default_rng(1).integers(-128, 128, (3, 3, 5, 2), dtype=np.int8)
    result = run(stage, batch, stall=0.0)
    assert result.cycles == 3 * 3 * 5 + result.latency_cycles
    part = Logistic(PixelFormat(2, "int8"), stage.layer.table)
    words = pack_pixels(PixelFormat(2, "int8"), batch[0])
    assert unstalled_output_cycles(part, words) == {"first_out": 1, "last_out": len(words)}


# -- softmax -------------------------------------------------------------------------------------

def softmax_unit(channels, monitor=False):
    layer = GoldenSoftmax(0.1, 0, *OUT_Q)
    return layer, Softmax(PixelFormat(channels, "int8"), input_multiplier=layer.input_multiplier,
                          input_left_shift=layer.input_left_shift, diff_min=layer.diff_min,
                          monitor=monitor)


def through_unit(unit, frames, stall):
    """Frames (N x H x W x C) through a bare unit (random valid gaps and ready stalls, the
    stream rules checked); the output frames."""
    fmt, (_, height, width, _) = unit.fmt, frames.shape
    words = [word for frame in frames for word in pack_pixels(fmt, frame)]
    limit = 10 * len(words) * (unit.initiation_interval + unit.latency)
    out = run_stream(unit, words, len(words), stall=stall, seed=len(words),
                     timeout_cycles=limit).out_words
    per_frame = height * width
    return np.stack([unpack_pixels(fmt, out[k:k + per_frame], height, width)[0]
                     for k in range(0, len(out), per_frame)])


def simulate_benches(unit, main, *background):
    """Simulate ``unit`` until testbench ``main`` returns, with ``background`` testbenches
    (a producer, a consumer) running beside it."""
    sim = Simulator(unit)
    sim.add_clock(1e-8)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.add_testbench(main)
    sim.run()


def litert_accepts(layer, frame):
    """Whether LiteRT runs the frame (the golden model raises where it aborts)."""
    try:
        layer(frame)
    except ValueError:
        return False
    return True


def reference_exps(layer, rows):
    """The reference's Q0.31 exponentials of ``rows`` (N x C int8), 0 where cut off, from
    the golden helpers as the golden model computes them."""
    diff = rows.astype(np.int64) - rows.max(axis=1, keepdims=True)
    kept = diff >= layer.diff_min
    scaled = saturating_rounding_doubling_high_mul(wrap_int32(diff << layer.input_left_shift),
                                                   layer.input_multiplier)
    return np.where(kept, exp_on_negative_values(np.where(kept, scaled, 0)), 0)


def reference_sum(exps):
    return rounding_divide_by_pot(exps, 12).sum(axis=1, keepdims=True)


def reciprocal_and_exponent(total):
    """The reference's Q0.31 ``1 / total`` and output rounding exponent for sums ``total``
    (N x 1, Q12.19)."""
    headroom = 32 - np.array([int(t).bit_length() for t in total.ravel()]).reshape(total.shape)
    return one_over_one_plus_x_for_x_in_0_1((total << headroom) - (1 << 31)), 35 - headroom


def outputs_for_sum(exps, total):
    """The reference's output step for ``exps`` (N x C) whose sum is taken to be
    ``total``."""
    reciprocal, exponent = reciprocal_and_exponent(total)
    scaled = saturating_rounding_doubling_high_mul(np.broadcast_to(reciprocal, exps.shape), exps)
    unsaturated = rounding_divide_by_pot(scaled, np.broadcast_to(exponent, exps.shape))
    return np.clip(unsaturated - 128, -128, 127)


def sum_sensitive_rows(layer, channels, rng, tries=30000):
    """Random rows whose output changes if their sum of exponentials is one unit (2**-19)
    off: an error in the exponentials, their rescaling, the sum or anything after it shows
    on these rows, where on most rows it would round away."""
    rows = rng.integers(-128, 128, (tries, channels)).astype(np.int8)
    exps = reference_exps(layer, rows)
    total = reference_sum(exps)
    exact = outputs_for_sum(exps, total)
    assert np.array_equal(exact, layer(rows))       # the same steps as the golden model
    sensitive = ((outputs_for_sum(exps, total - 1) != exact) |
                 (outputs_for_sum(exps, total + 1) != exact)).any(axis=1)
    return rows[sensitive]


SOFTMAX_CASES = [
    # channels, (in_scale, in_zp), beta
    (1, (0.1, 5), 1.0),
    (2, (0.0390625, -10), 1.0),
    (3, (1.0, 0), 1.0),           # diff_min = -15: the cut-off bites
    (10, (0.2371, 3), 0.5),
    (10, (100.0, 0), 1.0),        # diff_min = 0: only the maximum is kept
    (17, (0.0123, -128), 2.0),
    (33, (0.5, 127), 1.0),
]


@pytest.mark.parametrize("channels,in_q,beta", SOFTMAX_CASES)
def test_softmax_matches_golden(channels, in_q, beta):
    rng = np.random.default_rng(channels * 31 + in_q[1])
    stage = SoftmaxStage(*in_q, *OUT_Q, beta=beta)
    batch = softmax_batch(rng, (2, 3, channels), stage.layer)
    result = run(stage, batch, stall=0.3, seed=channels)
    outputs = np.stack(result.outputs)
    assert channels == 1 or np.unique(outputs).size > 5    # not a degenerate case


@pytest.mark.parametrize("channels,in_scale", [(5, 0.02), (10, 0.1)])
def test_softmax_rows_at_rounding_boundaries(channels, in_scale):
    stage = SoftmaxStage(in_scale, 0)
    rows = sum_sensitive_rows(stage.layer, channels, np.random.default_rng(channels))
    assert len(rows) >= 8
    run(stage, rows[None, None, :16], stall=0.3, seed=channels)


def test_softmax_intermediate_values_are_the_reference():
    """Each pixel's sum of exponentials, reciprocal and output exponent equal the
    reference's: an error in their low bits would show in the output bytes of few rows."""
    layer, unit = softmax_unit(3, monitor=True)
    rng = np.random.default_rng(12)
    rows = np.concatenate([rng.integers(-128, 128, (150, 3)),
                           rng.integers(-20, 20, (80, 3)),
                           np.repeat(rng.integers(-128, 128, (10, 1)), 3, axis=1)]).astype(np.int8)
    words = pack_pixels(unit.fmt, rows[None])
    samples = []

    async def producer(ctx):
        await put_words(ctx, unit.i, words, rng=random.Random(1), stall=0.3)

    async def consumer(ctx):
        await get_words(ctx, unit.o, len(words), rng=random.Random(2), stall=0.3)

    async def watcher(ctx):
        for _ in range(100 * len(words) * unit.initiation_interval):
            if len(samples) == len(words):
                return
            if ctx.get(unit.monitor.valid):
                samples.append([ctx.get(unit.monitor[name])
                                for name in ("sum", "reciprocal", "exponent")])
            await ctx.tick()

    simulate_benches(unit, watcher, producer, consumer)
    total = reference_sum(reference_exps(layer, rows))
    reciprocal, exponent = reciprocal_and_exponent(total)
    np.testing.assert_array_equal(samples, np.hstack([total, reciprocal, exponent]))


def test_exp_table_is_the_golden_exp_with_the_cut_off():
    """Entry ``d`` is the golden model's exponential of ``x - max = -d``, 0 past
    ``diff_min``; entry 0 (the maximum) is one in Q0.31. (At ``in_scale`` 0.1,
    ``diff_min`` is -248 and the smallest kept exponentials round to 0.)"""
    for in_scale in (1.0, 0.1, 100.0):
        layer = GoldenSoftmax(in_scale, 0, *OUT_Q)
        table = exp_table(layer.input_multiplier, layer.input_left_shift, layer.diff_min)
        rows = np.stack([np.full(256, 127), 127 - np.arange(256)], axis=1).astype(np.int8)
        assert table == reference_exps(layer, rows)[:, 1].tolist()
        assert table[0] == (1 << 31) - 1
        assert all(e == 0 for e in table[-layer.diff_min + 1:])
        assert all(a >= b for a, b in zip(table, table[1:]))     # exp decreases


@pytest.mark.parametrize("channels", [1, 2, 10])
def test_softmax_exact_cycles(channels):
    """A pixel offered to the idle unit at cycle 0 leaves at ``II - 1 + latency``
    (``3*C + 28``), the next ones every ``II = 2*C + 25``; in a pipeline, ``F`` frames of
    ``N`` pixels take ``F * N * II + latency_cycles``."""
    stage = SoftmaxStage(0.1, 0)
    fmt = PixelFormat(channels, "int8")
    batch = np.random.default_rng(channels).integers(-128, 128, (2, 2, 3, channels),
                                                     dtype=np.int8)
    timing = Softmax.timing(channels)
    assert (timing.latency, timing.initiation_interval) == (channels + 4, 2 * channels + 25)
    part = stage.hardware(Pipeline(InputSpec(3, 2, channels, "int8"), [stage]).bound[0])
    assert (part.latency, part.initiation_interval) == (timing.latency,
                                                        timing.initiation_interval)
    words = pack_pixels(fmt, batch[0])
    cycles = unstalled_output_cycles(part, words)
    assert cycles == {"first_out": 3 * channels + 28,
                      "last_out": len(words) * timing.initiation_interval + timing.latency - 1}
    result = run(stage, batch, stall=0.0)
    assert result.cycles == 2 * 6 * timing.initiation_interval + result.latency_cycles


def test_softmax_output_held_for_long():
    """A consumer that keeps ``ready`` low for longer than a pixel's work (``II`` = 29
    cycles): the next pixel waits for the held output to leave, which does not change
    until then."""
    layer, unit = softmax_unit(2)
    fmt = unit.fmt
    frames = np.random.default_rng(2).integers(-128, 128, (2, 3, 4, 2), dtype=np.int8)
    words = [word for frame in frames for word in pack_pixels(fmt, frame)]
    received = []

    async def producer(ctx):
        await put_words(ctx, unit.i, words)

    async def slow_consumer(ctx):
        rng, held = random.Random(9), None
        for _ in range(200 * len(words)):
            ready = rng.random() >= 0.97
            ctx.set(unit.o.ready, ready)
            if ctx.get(unit.o.valid):
                payload = ctx.get(unit.o.payload.as_value())
                assert held in (None, payload), "the output changed before its transfer"
                held = None if ready else payload
                if ready:
                    received.append(payload)
            if len(received) == len(words):
                return
            await ctx.tick()

    simulate_benches(unit, slow_consumer, producer)
    assert len(received) == len(words)
    got = [unpack_pixels(fmt, received[k:k + 12], 3, 4)[0] for k in (0, 12)]
    np.testing.assert_array_equal(got, [layer(frame) for frame in frames])


def test_softmax_sum_of_512_gives_the_minimum_where_tflite_aborts():
    """600 equal maxima: the sum of exponentials passes 512, where LiteRT's kernel aborts
    and the golden model raises; every probability is below 1/512, and the hardware gives
    -128 throughout. The pixel after it is exact again."""
    layer, unit = softmax_unit(600)
    rng = np.random.default_rng(5)
    equal = np.full((1, 1, 600), 9, np.int8)
    normal = rng.integers(-128, 128, (1, 1, 600), dtype=np.int8)
    with pytest.raises(ValueError, match="512"):
        layer(equal)
    got = through_unit(unit, np.stack([equal, normal]), stall=0.1)
    assert (got[0] == -128).all()
    np.testing.assert_array_equal(got[1], layer(normal))


@pytest.mark.slow
def test_softmax_1000_channels():
    """A classifier head: 1x1 frames of 1000 logits through a pipeline, and 1x2 frames
    through the bare unit (the pipeline simulation's timeout is for one pixel per cycle),
    every corner frame that LiteRT accepts."""
    rng = np.random.default_rng(1000)
    stage = SoftmaxStage(0.0625, -7)
    batch = softmax_batch(rng, (1, 2, 1000), stage.layer)
    batch = np.stack([frame for frame in batch if litert_accepts(stage.layer, frame)])
    assert len(batch) >= 3
    run(stage, batch[:, :, :1], stall=0.2, seed=4)
    unit = stage.hardware(Pipeline(InputSpec(2, 1, 1000, "int8"), [stage]).bound[0])
    np.testing.assert_array_equal(through_unit(unit, batch, stall=0.2),
                                  [stage.layer(frame) for frame in batch])


# -- against LiteRT, through the importer --------------------------------------------------------

def single_op_model(tmp_path, code, shape, in_q, options=None):
    model = build_model([activation(list(shape), *in_q), activation(list(shape), *OUT_Q)],
                        [(code, [0], [1], options)], [0], [1])
    path = tmp_path / "model.tflite"
    path.write_bytes(bytes(model))
    return path


@pytest.mark.parametrize("code,in_q,beta", [(Op.SOFTMAX, (0.2371, 3), 0.7),
                                            (Op.SOFTMAX, (1.0, 0), 1.0),
                                            (Op.LOGISTIC, (0.0432, -11), None)])
def test_imported_operator_matches_litert(tmp_path, code, in_q, beta):
    shape = (1, 2, 3, 6)
    options = softmax_options(beta) if code == Op.SOFTMAX else None
    path = single_op_model(tmp_path, code, shape, in_q, options)
    model = load_tflite(path)
    stage = stage_from_layer(model.layers[0], op_name=model.op_names[0])
    rng = np.random.default_rng(7)
    batch = (softmax_batch(rng, shape[1:], stage.layer) if code == Op.SOFTMAX
             else rng.integers(-128, 128, (3, *shape[1:]), dtype=np.int8))
    result = run(stage, batch, stall=0.25, seed=11)
    interpreter = reference_interpreter(path)
    for frame, out in zip(batch, result.outputs):
        np.testing.assert_array_equal(out, run_reference(interpreter, frame[None])[0])


# -- parameters ----------------------------------------------------------------------------------

def test_stage_round_trips_from_layer_and_table():
    for layer in (GoldenSoftmax(np.float32(0.0123), -128, *OUT_Q, beta=np.float32(0.3)),
                  GoldenLogistic(np.float32(0.0235), 3, *OUT_Q)):
        stage = stage_from_layer(layer)
        assert type(stage.layer) is type(layer)
        assert vars(stage.layer).keys() == vars(layer).keys()
        for name, value in vars(layer).items():
            assert np.array_equal(getattr(stage.layer, name), value), name
        assert stage_from_table(stage.to_table(), "stage[0]") == stage


@pytest.mark.parametrize("op,overrides,field,message", [
    ("softmax", {"out_zp": 0}, "out_zp", "one of -128"),
    ("softmax", {"out_scale": 0.5}, "out_scale", "1/256"),
    ("logistic", {"out_scale": 1 / 256 * 1.0005}, "out_scale", "exactly 1/256"),
    ("softmax", {"in_scale": -0.1}, "in_scale", "positive number"),
    ("logistic", {"in_scale": 1e300}, "in_scale", "float32 range"),
    ("logistic", {"in_scale": 1e-300}, "in_scale", "positive finite float32"),
    ("softmax", {"in_scale": 1e-9}, "beta", "too small"),
    ("softmax", {"beta": "1"}, "beta", "positive number"),
    ("softmax", {"beta": True}, "beta", "positive number"),
    ("logistic", {"in_zp": 128}, "in_zp", "-128..127"),
    ("logistic", {"in_scale": None}, "in_scale", "is required"),
    ("softmax", {"alpha": 1}, "alpha", "unknown key"),
])
def test_bad_parameters_name_the_field(op, overrides, field, message):
    table = {"op": op, "in_scale": 0.1, "in_zp": 0, **overrides}
    table = {key: value for key, value in table.items() if value is not None}
    with pytest.raises(SpecError, match=message) as error:
        make_pipeline([table], 2, 2, 4, "int8")
    assert error.value.field == f"stage[0].{field}"


def test_an_input_the_stages_cannot_take():
    with pytest.raises(SpecError, match="int8") as error:
        make_pipeline([{"op": "logistic", "in_scale": 0.1, "in_zp": 0}], 2, 2, 1, "uint8")
    assert error.value.field == "stage[0].op"


def test_hardware_validates_its_parameters():
    table = list(range(-128, 128))
    with pytest.raises(ValueError, match="int8"):
        Logistic(PixelFormat(2, "uint8"), table)
    with pytest.raises(ValueError, match="256 int8 values"):
        Logistic(PixelFormat(2, "int8"), table[:-1])
    with pytest.raises(ValueError, match="256 int8 values"):
        Logistic(PixelFormat(2, "int8"), [200] * 256)
    good = dict(input_multiplier=1 << 30, input_left_shift=20, diff_min=-100)
    for name, value in (("input_multiplier", 0), ("input_multiplier", 1 << 31),
                        ("input_left_shift", 32), ("diff_min", 1)):
        with pytest.raises(ValueError, match=name):
            Softmax(PixelFormat(4, "int8"), **{**good, name: value})
