"""MEAN and AVERAGE_POOL_2D hardware (hdl/reduce.py) vs the golden layers in Amaranth's
simulator, through whole pipelines (several back-to-back frames, random valid gaps and ready
stalls, zero mismatches), with the exact cycle counts the timing functions claim, and the
stages' parameter errors.

The golden layers equal LiteRT's BUILTIN_REF (tests/test_golden_pooling.py); here the
hardware is compared with them.
"""
import dataclasses

import numpy as np
import pytest

from rasterflow.errors import SpecError
from rasterflow.golden.pixel import PixelFormat
from rasterflow.golden.pooling import AveragePool2D, Mean
from rasterflow.hdl.payload import pack_pixels
from rasterflow.hdl.reduce import (AveragePoolUnit, GlobalAveragePool, GlobalMean,
                                   WindowAverage, pool_geometry)
from rasterflow.hdl.timing import StageTiming
from rasterflow.stages_cnn import stage_from_layer
from rasterflow.stages_pooling import AveragePoolStage, MeanStage

from conftest import make_pipeline, output_transfer_cycles, run_layers

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def int8_batch(rng, frames, height, width, channels):
    return rng.integers(-128, 128, (frames, height, width, channels)).astype(np.int8)


def check_timing(pipeline):
    """The stages' timing functions equal the built hardware's figures."""
    top = pipeline.hardware()
    for bound in pipeline.bound:
        part = top.parts_by_name[bound.name]
        timing = dataclasses.replace(bound.stage.timing(bound), sampling=None)
        assert timing == StageTiming(part.latency, part.schedule_delay)
    assert pipeline.latency_cycles == top.latency_cycles
    return top


# -- mean ---------------------------------------------------------------------------------------

MEAN_CASES = [
    # channels, height, width, in (scale, zp), out (scale, zp), keep_dims, stall
    (5, 4, 5, (0.05, -7), (0.03, 12), True, 0.3),
    (3, 7, 7, (0.02, 100), (0.06, -128), False, 0.4),
    (8, 3, 3, (0.1, -128), (0.1, -128), True, 0.2),        # H*W = 9 < C + 5: stalls
    (2, 1, 1, (0.05, 5), (0.05, 6), True, 0.3),            # a 1x1 frame
    (4, 8, 8, (0.0037, -1), (0.0041, 0), False, 0.3),      # H*W a power of two
    (6, 2, 9, (0.5, 3), (0.004, -20), True, 0.3),          # saturating outputs
]


@pytest.mark.parametrize("channels, height, width, in_q, out_q, keep_dims, stall", MEAN_CASES)
def test_mean_hardware_matches_golden(channels, height, width, in_q, out_q, keep_dims, stall):
    rng = np.random.default_rng(channels * 100 + height * 10 + width)
    layer = Mean(in_q[0], in_q[1], out_q[0], out_q[1], keep_dims=keep_dims)
    pipeline = make_pipeline([stage_from_layer(layer)], width, height, channels, "int8")
    assert (pipeline.out_width, pipeline.out_height) == (1, 1)
    batch = int8_batch(rng, 3, height, width, channels)
    batch[0] = 127          # extremes: the whole frame at one end of the range
    batch[1] = -128
    run_layers(pipeline, batch, stall=stall, seed=channels, frames=2)
    check_timing(pipeline)


def test_mean_from_a_spec_table():
    pipeline = make_pipeline([{"op": "mean", "in_scale": 0.05, "in_zp": -7, "out_scale": 0.03,
                               "out_zp": 12, "axes": [2, 1], "keep_dims": False}], 5, 4, 3,
                             "int8")
    stage = pipeline.stages[0]
    assert stage.axes == [2, 1] and stage.to_table()["axes"] == [2, 1]
    run_layers(pipeline, int8_batch(np.random.default_rng(1), 2, 4, 5, 3), stall=0.3)


@pytest.mark.parametrize("channels, height, width", [(3, 4, 5), (6, 3, 4), (2, 5, 6),
                                                     (4, 1, 2)])
def test_global_reduction_exact_cycles(channels, height, width):
    """Frames of ``H*W >= C + L_d`` pixels stream without a stall: the last output leaves
    ``latency`` cycles after the last input pixel; smaller frames take ``C + L_d`` cycles
    each (``L_d``: the datapath's stages)."""
    fmt = PixelFormat(channels, "int8")
    rng = np.random.default_rng(channels)
    frames = 4
    words = pack_pixels(fmt, int8_batch(rng, 1, frames * height, width, channels)[0])
    pixels = height * width
    for dut in (GlobalMean(fmt, width, height, in_zp=3, out_zp=-1, m0=1 << 30, shift=-2),
                GlobalAveragePool(fmt, width, height)):
        period = max(pixels, channels + dut.DATAPATH_LATENCY)
        assert dut.latency == channels + dut.DATAPATH_LATENCY + 1
        assert output_transfer_cycles(dut, words, frames, limit=10_000) == \
            [pixels - 1 + dut.latency + k * period for k in range(frames)]


def test_mean_pipeline_exact_cycles():
    rng = np.random.default_rng(7)
    layer = Mean(0.05, -7, 0.03, 12)
    pipeline = make_pipeline([stage_from_layer(layer)], 6, 4, 8, "int8")   # 24 >= 8 + 5
    result = run_layers(pipeline, int8_batch(rng, 2, 4, 6, 8), stall=0.0, frames=2)
    assert result.cycles == 4 * 24 + result.latency_cycles


# -- average_pool --------------------------------------------------------------------------------

POOL_CASES = [
    # size_h, size_w, stride_h, stride_w, padding, height, width, channels
    (2, 2, 2, 2, "valid", 6, 7, 3),
    (2, 2, 2, 2, "same", 7, 9, 2),
    (3, 3, 1, 1, "same", 5, 6, 3),
    (3, 3, 2, 2, "same", 7, 8, 2),
    (3, 2, 2, 1, "same", 7, 5, 3),          # different sizes and strides per axis
    (2, 3, 1, 2, "valid", 6, 7, 2),
    (5, 5, 2, 2, "same", 7, 8, 1),          # counts 9, 12, 15, 20, 25 by position
    (3, 3, 3, 3, "valid", 9, 10, 2),
    (4, 4, 3, 3, "same", 6, 6, 2),          # window overhangs on both sides
    (5, 3, 1, 1, "same", 4, 5, 2),          # window taller than the frame
    (2, 2, 2, 2, "valid", 3, 3, 2),         # a 1x1 output that is not a global pool
    (1, 1, 1, 1, "valid", 3, 4, 2),         # the identity
]


@pytest.mark.parametrize("size_h, size_w, stride_h, stride_w, padding, height, width, channels",
                         POOL_CASES)
def test_average_pool_windowed_matches_golden(size_h, size_w, stride_h, stride_w, padding,
                                              height, width, channels):
    rng = np.random.default_rng(size_h * 1000 + size_w * 100 + stride_h * 10 + height)
    layer = AveragePool2D(size_h, size_w, stride_h, stride_w, padding, -120, 100)
    pipeline = make_pipeline([stage_from_layer(layer)], width, height, channels, "int8")
    top = check_timing(pipeline)
    assert isinstance(top.parts[0], AveragePoolUnit)
    batch = int8_batch(rng, 3, height, width, channels)
    batch[0, :, :2] = 127     # large sums at a border: counts and clamp both matter
    run_layers(pipeline, batch, stall=0.3, seed=height)


@pytest.mark.parametrize("size_h, size_w, stride_h, stride_w, padding, height, width", [
    (7, 7, 1, 1, "valid", 7, 7),            # a classifier's global average pool
    (4, 6, 2, 2, "valid", 4, 6),
    (5, 5, 5, 5, "same", 5, 4),             # SAME, window and stride beyond the frame
    (3, 5, 9, 9, "same", 2, 3),
    (9, 9, 1, 1, "valid", 9, 9),            # too large for the window generator
])
def test_average_pool_global_matches_golden(size_h, size_w, stride_h, stride_w, padding,
                                            height, width):
    rng = np.random.default_rng(size_h * 10 + width)
    layer = AveragePool2D(size_h, size_w, stride_h, stride_w, padding, -100, 90)
    pipeline = make_pipeline([stage_from_layer(layer)], width, height, 4, "int8")
    top = check_timing(pipeline)
    assert isinstance(top.parts[0], GlobalAveragePool)
    assert (pipeline.out_width, pipeline.out_height) == (1, 1)
    batch = int8_batch(rng, 3, height, width, 4)
    batch[1] = 127
    run_layers(pipeline, batch, stall=0.3, seed=width, frames=2)


def test_average_pool_stride_1_exact_cycles():
    """Stride 1 (no decimation): F frames take ``F*W*H + latency_cycles``, as a filter."""
    rng = np.random.default_rng(3)
    pipeline = make_pipeline([{"op": "average_pool", "size_h": 3, "size_w": 3, "stride_h": 1,
                               "stride_w": 1, "padding": "same"}], 7, 6, 3, "int8")
    result = run_layers(pipeline, int8_batch(rng, 2, 6, 7, 3), stall=0.0, frames=2)
    assert result.cycles == 4 * 42 + result.latency_cycles


def test_window_divisor_table_is_per_position():
    geometry = pool_geometry(8, 7, size_h=5, size_w=5, stride_h=2, stride_w=2,
                             padding="same")
    # x: pad_before 1, windows -1..3, 1..5, 3..7, 5..9 of 0..7; y: pad_before 2.
    assert geometry.counts_x == (4, 5, 5, 3) and geometry.counts_y == (3, 5, 5, 3)
    assert (geometry.kernel_x, geometry.taps_x) == (7, (-1, 0, 1, 2, 3))
    assert (geometry.kernel_y, geometry.taps_y) == (5, (-2, -1, 0, 1, 2))
    assert not geometry.covers_frame(8, 7)
    unit = AveragePoolUnit(PixelFormat(1, "int8"), 8, 7, size_h=5, size_w=5, stride_h=2,
                           stride_w=2, padding="same")
    average = unit._parts[-1]
    assert isinstance(average, WindowAverage)
    assert average.latency == WindowAverage.latency_of(5) == 1 + 3 + 3


# -- parameters ------------------------------------------------------------------------------------

def bind_error(stage, width, height, channels=2):
    with pytest.raises(SpecError) as error:
        make_pipeline([stage], width, height, channels, "int8")
    return error.value


def test_average_pool_rejects_what_it_does_not_build():
    error = bind_error(AveragePoolStage(9, 9, 1, 1, "valid"), 12, 12)
    assert error.field == "stage[0].size_w" and "at most 15" in error.message
    assert "global" in error.message
    error = bind_error(AveragePoolStage(3, 8, 1, 1, "valid"), 7, 5)
    assert error.field == "input.width" and "does not fit" in error.message
    error = bind_error(AveragePoolStage(8, 3, 1, 1, "valid"), 7, 5)
    assert error.field == "input.height"
    with pytest.raises(SpecError, match="act_max"):
        AveragePoolStage(act_min=10, act_max=5)
    with pytest.raises(SpecError, match="padding"):
        AveragePoolStage(padding="full")
    with pytest.raises(SpecError, match="int8"):
        make_pipeline([AveragePoolStage()], 6, 6, 1, "uint8")


def test_mean_rejects_bad_parameters():
    good = dict(in_scale=0.05, in_zp=0, out_scale=0.05, out_zp=0)
    for axes in ([3], [1, 2, 3], [0, 1], "hw", [True, 2], ["a", 1], [1.0, 2]):
        with pytest.raises(SpecError) as error:
            MeanStage(**good, axes=axes)
        assert error.value.field == "axes" and "[1, 2]" in error.value.message
    for name in ("in_scale", "out_scale"):
        with pytest.raises(SpecError) as error:
            MeanStage(**{**good, name: 0.0})
        assert error.value.field == name
    with pytest.raises(SpecError, match="in_zp"):
        MeanStage(**{**good, "in_zp": 200})
    with pytest.raises(SpecError, match="out_scale"):
        make_pipeline([{"op": "mean", "in_scale": 0.05, "in_zp": 0, "out_zp": 0}], 4, 4, 1,
                      "int8")


def test_hardware_validates_its_arguments():
    fmt = PixelFormat(2, "int8")
    with pytest.raises(ValueError, match="int8"):
        GlobalMean(PixelFormat(2, "uint8"), 4, 4, in_zp=0, out_zp=0, m0=1 << 30, shift=0)
    with pytest.raises(ValueError, match="shift"):
        GlobalMean(fmt, 4, 4, in_zp=0, out_zp=0, m0=1 << 30, shift=40)
    with pytest.raises(ValueError, match="width"):
        GlobalAveragePool(fmt, 0, 4)
    with pytest.raises(ValueError, match="act_max"):
        GlobalAveragePool(fmt, 4, 4, act_min=5, act_max=4)
    with pytest.raises(ValueError, match="size_w 9 with valid padding"):
        AveragePoolUnit(fmt, 12, 12, size_h=2, size_w=9, stride_h=1, stride_w=1,
                        padding="valid")


def test_stages_round_trip_through_their_tables():
    for stage in (AveragePoolStage(3, 2, 1, 2, "same", -5, 100),
                  MeanStage(0.05, -7, 0.03, 12, keep_dims=False)):
        table = {k: v for k, v in stage.to_table().items() if k != "op"}
        again = type(stage)(**table)
        assert dataclasses.astuple(again) == dataclasses.astuple(stage)
