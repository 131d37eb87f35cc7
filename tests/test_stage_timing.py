"""The stage timing contract: ``Stage.timing(bound)`` and ``Pipeline.latency_cycles`` are
computed without building hardware, and must equal what the built hardware reports, for
every registered op and for graphs with joins and shared line buffers. This is what keeps
the hardware classes' timing functions the single source of truth."""
import dataclasses

import numpy as np
import pytest

from rasterflow.hdl.conv import Conv2DUnit
from rasterflow.hdl.dense import DenseUnit
from rasterflow.hdl.nonlinear import Softmax
from rasterflow.hdl.filters import SharedColumnScanner
from rasterflow.hdl.merge import QuantizedAdd
from rasterflow.hdl.timing import StageTiming
from rasterflow.ops import STAGES
from rasterflow.pipeline import Node, Pipeline
from rasterflow.spec import InputSpec, parse_spec
from rasterflow.stages_cnn import (Conv2DStage, DepthwiseConv2DStage, LeakyReluStage,
                                   MaxPoolStage, Relu6Stage, ReluN1To1Stage, ReluStage)
from rasterflow.stages_dense import FullyConnectedStage
from rasterflow.stages_layout import PadStage, ResizeNearestStage
from rasterflow.stages_merge import ConcatenationStage, QuantizedAddStage
from rasterflow.stages_nonlinear import LogisticStage, SoftmaxStage
from rasterflow.stages_pooling import AveragePoolStage, MeanStage
from rasterflow.sweep import pipeline_pixels_per_cycle

from test_graph import FAN_OUT, GRAPHS, graph

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def chain(*stages, lanes=1, **sizes):
    return graph(*stages, pixels_per_clock=lanes, **sizes)


def join(op, **params):
    """``op`` on two streams of one format: the input and its inverse."""
    return [{"name": "inv", "op": "bitwise_not"},
            {"name": "j", "op": op, "inputs": ["input", "inv"], **params}]


GRADIENTS = [{"name": "gx", "op": "sobel", "dx": 1, "dy": 0},
             {"name": "gy", "op": "sobel", "dx": 0, "dy": 1, "inputs": ["input"]}]

#: Spec stages per op: each entry is a list of ``[[stage]]`` tables run as one graph.
SPEC_EXAMPLES = {
    "filter2d": [[{"op": "filter2d", "kernel": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]}],
                 [{"op": "filter2d", "kernel": [[1, 0, 0, 0, 3]], "shift": 2,
                   "border": "constant"}]],
    "sepfilter2d": [[{"op": "sepfilter2d", "kx": [1, 2, 1], "ky": [1, 0, 0, 0, 1]}],
                    [{"op": "sepfilter2d", "kx": [1, 1, 1, 1, 1, 1, 1], "ky": [3]}]],
    "gaussian": [[{"op": "gaussian", "ksize": k}] for k in (1, 3, 5, 7)]
    + [[{"op": "gaussian", "ksize": 5, "sigma": 0.5}]],
    "box": [[{"op": "box", "ksize": 3}], [{"op": "box", "ksize": 5, "normalize": False}]],
    "sobel": [[{"op": "sobel", "dx": 1, "dy": 0, "ksize": 1}],
              [{"op": "sobel", "dx": 1, "dy": 1, "ksize": 5}]],
    "scharr": [[{"op": "scharr", "dx": 1, "dy": 0}], [{"op": "scharr", "dx": 0, "dy": 1}]],
    "laplacian": [[{"op": "laplacian", "ksize": 1}], [{"op": "laplacian", "ksize": 3}]],
    "gradient_magnitude": [[{"op": "gradient_magnitude", "norm": "l1", "ksize": 1}],
                           [{"op": "gradient_magnitude", "norm": "l2", "ksize": 5}]],
    "median": [[{"op": "median", "ksize": k}] for k in (3, 5, 7)],
    "erode": [[{"op": "erode", "ksize": 3}], [{"op": "erode", "ksize": 5, "shape": "cross"}]],
    "dilate": [[{"op": "dilate", "ksize": 7, "shape": "ellipse"}],
               [{"op": "dilate", "ksize": 1}]],
    "threshold": [[{"op": "threshold", "level": 7, "type": "trunc"}]],
    "rgb2gray": [[{"op": "rgb2gray"}]],
    "channel_min": [[{"op": "channel_min"}]],
    "bitwise_not": [[{"op": "bitwise_not"}]],
    **{op: [join(op)] for op in ("add", "subtract", "absdiff", "min", "max", "bitwise_and",
                                 "bitwise_or", "bitwise_xor")},
    "add_weighted": [join("add_weighted", alpha=1.5, beta=-0.5)],
    "magnitude": [GRADIENTS + [{"op": "magnitude", "norm": n, "inputs": ["gx", "gy"]}]
                  for n in ("l1", "l2")],
}
#: Ops whose examples need three channels.
RGB = {"rgb2gray", "channel_min"}


def conv(cout, k, cin, **params):
    rng = np.random.default_rng(k * 10 + cout)
    return Conv2DStage(weights=rng.integers(-8, 8, (cout, k, k, cin), dtype=np.int8),
                       bias=np.arange(cout, dtype=np.int32), m0=[1 << 30] * cout,
                       shift=[-3] * cout, in_zp=1, out_zp=-2, **params)


def depthwise(k, channels, **params):
    rng = np.random.default_rng(k)
    return DepthwiseConv2DStage(weights=rng.integers(-8, 8, (k, k, channels), dtype=np.int8),
                                bias=np.zeros(channels, np.int32), m0=[1 << 30] * channels,
                                shift=[-2] * channels, in_zp=0, out_zp=0, **params)


RELU = dict(in_zp=3, out_zp=-1, m0=1 << 30, shift=0)
#: CNN stages per op (arrays come as ndarrays, so they are built directly), on int8 frames
#: of ``(channels, width, height)``.
CNN_EXAMPLES = {
    "conv2d": [(conv(4, 3, 2), (2, 9, 7)), (conv(4, 3, 2, pe=2, simd=5), (2, 9, 7)),
               (conv(3, 5, 1, stride=2), (1, 11, 9)),
               (conv(2, 1, 3, stride=2, padding="valid", simd=1), (3, 8, 6))],
    "depthwise_conv2d": [(depthwise(3, 4), (4, 8, 6)),
                         (depthwise(3, 2, simd=4, stride=2), (2, 9, 7))],
    "leaky_relu": [(LeakyReluStage(in_zp=0, out_zp=0, identity_m0=1 << 30, identity_shift=1,
                                   alpha_m0=1 << 29, alpha_shift=-1), (2, 6, 5))],
    "relu": [(ReluStage(**RELU), (1, 6, 5))],
    "relu6": [(Relu6Stage(**RELU), (1, 6, 5))],
    "relu_n1_to_1": [(ReluN1To1Stage(**RELU), (1, 6, 5))],
    "max_pool": [(MaxPoolStage(), (2, 8, 6)), (MaxPoolStage(size=3, stride=1, padding="same"),
                                               (1, 7, 5)),
                 (MaxPoolStage(size=2, stride=1, padding="same"), (1, 7, 5))],
    "pad": [(PadStage(top=1, bottom=2, left=0, right=3, channels_after=1, value=-5), (2, 7, 5))],
    "resize_nearest": [(ResizeNearestStage(out_width=14, out_height=10), (2, 7, 5)),
                       (ResizeNearestStage(out_width=4, out_height=3, half_pixel_centers=True),
                        (1, 9, 7))],
    "average_pool": [(AveragePoolStage(), (2, 8, 6)),
                     (AveragePoolStage(3, 3, 1, 1, "same"), (1, 7, 5)),
                     (AveragePoolStage(5, 7, 1, 1, "valid"), (3, 7, 5))],
    "mean": [(MeanStage(0.05, 3, 0.02, -1), (4, 6, 5))],
    "fully_connected": [(FullyConnectedStage(
        weights=np.arange(-12, 12, dtype=np.int8).reshape(4, 6), scale=[0.01], in_zp=1,
        out_zp=-2, pe=2, simd=4), (6, 1, 1))],
    "logistic": [(LogisticStage(in_scale=0.05, in_zp=3), (3, 6, 5))],
    "softmax": [(SoftmaxStage(in_scale=0.1, in_zp=0), (10, 1, 1)),
                (SoftmaxStage(in_scale=0.05, in_zp=-4, beta=0.5), (4, 3, 2))],
}


def spec_pipelines():
    for op, examples in SPEC_EXAMPLES.items():
        lanes = (1, 2) if STAGES[op].supports_lanes else (1,)
        for index, stages in enumerate(examples):
            for p in lanes:
                yield pytest.param(op, lambda s=stages, p=p, rgb=op in RGB: parse_spec(
                    chain(*s, lanes=p, width=13, height=9, channels=3 if rgb else 1)),
                    id=f"{op}-{index}-lanes{p}")


ADD = dict(in1_scale=0.05, in1_zp=-3, in2_scale=0.08, in2_zp=9, out_scale=0.1, out_zp=-1)
#: Int8 join stages per op, each joining the input and a requantization of it (3 channels).
JOIN_EXAMPLES = {
    "quantized_add": [QuantizedAddStage(**ADD), QuantizedAddStage(**ADD, channels_per_cycle=2)],
    "concatenation": [ConcatenationStage()],
}


def join_pipelines():
    for op, examples in JOIN_EXAMPLES.items():
        for index, stage in enumerate(examples):
            yield pytest.param(op, lambda s=stage: Pipeline(InputSpec(9, 7, 3, "int8"), [
                Node("r", ReluStage(**RELU), ("input",)), Node("j", s, ("input", "r"))]),
                id=f"{op}-{index}")


def cnn_pipelines():
    for op, examples in CNN_EXAMPLES.items():
        for index, (stage, (channels, width, height)) in enumerate(examples):
            yield pytest.param(op, lambda s=stage, c=channels, w=width, h=height: Pipeline(
                InputSpec(w, h, c, "int8"), [s]), id=f"{op}-{index}")


def test_every_op_has_examples():
    ops = {op for op, _ in SPEC_EXAMPLES.items()} | set(CNN_EXAMPLES) | set(JOIN_EXAMPLES)
    assert ops == set(STAGES)


def check_pipeline(pipeline):
    """Every stage's timing and the pipeline's latency equal the built hardware's."""
    top = pipeline.hardware()
    for bound in pipeline.bound:
        part, timing = top.parts_by_name[bound.name], bound.stage.timing(bound)
        assert isinstance(timing, StageTiming)
        built = StageTiming(part.latency, part.schedule_delay)
        if isinstance(part, Conv2DUnit):
            built = dataclasses.replace(built, initiation_interval=part.initiation_interval,
                                        multipliers=part.multipliers,
                                        macs_per_output=part.mac.useful_macs_per_pixel)
        elif isinstance(part, DenseUnit):
            built = dataclasses.replace(built, initiation_interval=part.initiation_interval,
                                        multipliers=part.multipliers,
                                        macs_per_output=part.useful_macs_per_pixel)
        elif isinstance(part, (Softmax, QuantizedAdd)):
            built = dataclasses.replace(built, initiation_interval=part.initiation_interval)
        # The sampling (a stride's, a resize's) is the stage's geometry, not a figure of
        # the part; tests/test_hdl_merge.py checks what it implies.
        assert dataclasses.replace(timing, sampling=None) == built, bound.name
    for name, part in top.parts_by_name.items():
        if isinstance(part, SharedColumnScanner):
            assert SharedColumnScanner.timing() == StageTiming(part.latency,
                                                               part.schedule_delay)
    assert pipeline.latency_cycles == top.latency_cycles


@pytest.mark.parametrize("op, make", [*spec_pipelines(), *cnn_pipelines(), *join_pipelines()])
def test_stage_timing_equals_the_hardware(op, make):
    pipeline = make()
    assert op in {b.stage.op for b in pipeline.bound}
    check_pipeline(pipeline)


@pytest.mark.parametrize("doc", [
    *GRAPHS,
    pytest.param(FAN_OUT, id="shared-lines"),
    pytest.param({**FAN_OUT, "input": {**FAN_OUT["input"], "pixels_per_clock": 2}},
                 id="shared-lines-2px"),
    pytest.param(graph({"name": "a", "op": "median", "ksize": 5},
                       {"name": "b", "op": "box", "ksize": 3, "border": "replicate",
                        "inputs": ["input"]},
                       {"name": "c", "op": "max", "inputs": ["a", "b"]},
                       {"name": "d", "op": "erode", "ksize": 3, "inputs": ["c"]},
                       {"name": "e", "op": "dilate", "ksize": 5, "shape": "cross",
                        "inputs": ["c"]},
                       outputs=["d", "e", "a"], width=11, height=7),
                 id="shared-lines-joined-twice"),
])
def test_graph_latency_equals_the_hardware(doc):
    pipeline = parse_spec(doc)
    check_pipeline(pipeline)


def test_cnn_chain_latency_and_throughput_come_from_the_timing():
    pipeline = Pipeline(InputSpec(9, 7, 2, "int8"),
                        [conv(4, 3, 2, pe=2, simd=6), ReluStage(**RELU), MaxPoolStage()])
    check_pipeline(pipeline)
    timing = pipeline.bound[0].stage.timing(pipeline.bound[0])
    assert (timing.initiation_interval, timing.multipliers) == (3 * 2, 12)
    assert pipeline_pixels_per_cycle(pipeline) == pytest.approx(1 / 6)
