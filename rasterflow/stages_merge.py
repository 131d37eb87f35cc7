"""Int8 join stages: ``quantized_add`` (TFLite ADD) and ``concatenation`` (TFLite
CONCATENATION along the channels).

Each reads two streams (its ``inputs``, in order: ``a`` then ``b``) of one frame size, which
the pipeline's hardware joins into one stream (fork, skew buffers, join; see
:mod:`rasterflow.hdl.top`). Their golden models are :class:`~rasterflow.golden.elementwise.Add`
and :class:`~rasterflow.golden.elementwise.Concatenation`, their hardware
:class:`~rasterflow.hdl.merge.QuantizedAdd` and :class:`~rasterflow.hdl.merge.ChannelConcat`.
Spec format (TOML)::

    [[stage]]
    name = "sum"
    op = "quantized_add"
    inputs = ["skip", "block"]
    in1_scale = 0.05                    # float32 scales, int8 zero points (TFLite's)
    in1_zp = -3
    in2_scale = 0.08
    in2_zp = 7
    out_scale = 0.1
    out_zp = -1
    act_min = -128                      # fused activation clamp (RELU/RELU6 in int8)
    act_max = 127
    channels_per_cycle = 0              # 0: all channels, a pixel per cycle; k: C / k cycles

    [[stage]]
    name = "route"
    op = "concatenation"
    inputs = ["up", "skip"]             # output channels: up's, then skip's
    scale = 0.1                         # the one quantization of both inputs and the output
    zero_point = -5

``quantized_add`` takes two inputs of one shape (TFLite's broadcasting, which the golden layer
has, is not streamed); ``concatenation`` two of one frame size and any channel counts, and a
TFLite CONCATENATION of more tensors is a chain of them.
"""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .errors import SpecError
from .golden import elementwise as golden_elementwise
from .golden.cnn import INT8_MAX, INT8_MIN
from .golden.pixel import PixelFormat
from .hdl.merge import ChannelConcat, QuantizedAdd
from .hdl.stall import per_lane
from .params import param
from .stages import Bound, fixed_timing, register_stage
from .stages_arithm import _describe
from .stages_cnn import (INT8, MAX_CHANNELS, _LayerStage, _check_activation_order,
                         _clamp_param, _zero_point_param)

__all__ = ["QuantizedAddStage", "ConcatenationStage"]

#: Scales a spec may give: positive float32 values that stay finite times 2**21.
MIN_SCALE, MAX_SCALE = 2.0 ** -126, 2.0 ** 100
#: The axes of an NHWC tensor that are its channels.
CHANNEL_AXES = (-1, 3)


def _scale_param(which, default=None):
    kwargs = {} if default is None else {"default": default}
    return param(**kwargs, lo=MIN_SCALE, hi=MAX_SCALE, doc=f"scale of the {which} (float32)")


class _JoinLayerStage(_LayerStage):
    """A TFLite layer of two int8 tensors, streamed as a join of two inputs."""
    arity: ClassVar[int] = 2
    supports_lanes: ClassVar[bool] = True

    def _check_sources(self, sources, *, same_channels):
        """SpecError naming ``inputs`` unless both are int8 frames of one size (and, with
        ``same_channels``, one channel count)."""
        (fa, wa, ha), (fb, wb, hb) = sources
        same = (wa, ha) == (wb, hb) and (fa.channels == fb.channels or not same_channels)
        if fa.dtype != INT8 or fb.dtype != INT8 or not same:
            shape = "one shape" if same_channels else "one frame size"
            raise SpecError("inputs", f"{self.op} needs two int8 inputs of {shape}, got "
                                      f"{_describe(sources[0])} and {_describe(sources[1])}")

    def golden(self, frames, bound):
        return self.layer(*(np.asarray(frame) for frame in frames))


@register_stage
@dataclass(frozen=True)
class QuantizedAddStage(_JoinLayerStage):
    """``quantized_add``: TFLite ADD int8 of two tensors of one shape (each input rescaled,
    summed, requantized, fused activation clamp)."""
    op: ClassVar[str] = "quantized_add"
    layer_type: ClassVar[type] = golden_elementwise.Add
    in1_scale: float = _scale_param("first input")
    in1_zp: int = _zero_point_param("first input")
    in2_scale: float = _scale_param("second input")
    in2_zp: int = _zero_point_param("second input")
    out_scale: float = param(lo=MIN_SCALE, hi=MAX_SCALE,
                             doc="scale of the output (float32), above "
                                 "2 * max(in1_scale, in2_scale) / 2**20")
    out_zp: int = _zero_point_param("output")
    act_min: int = _clamp_param(INT8_MIN, "lowest")
    act_max: int = _clamp_param(INT8_MAX, "highest")
    channels_per_cycle: int = param(0, lo=0, hi=MAX_CHANNELS,
                                    doc="channels added in parallel, 0..C (0: all C, a pixel "
                                        "per cycle); k < C takes ceil(C / k) cycles a pixel "
                                        "with a k-lane datapath")

    def __post_init__(self):
        super().__post_init__()
        _check_activation_order(self)
        try:
            layer = golden_elementwise.Add(self.in1_scale, self.in1_zp, self.in2_scale,
                                           self.in2_zp, self.out_scale, self.out_zp,
                                           self.act_min, self.act_max)
        except ValueError as error:
            # The declared ranges leave one rule across the scales: TFLite's output
            # multiplier 2 * max(in1_scale, in2_scale) / (2**20 * out_scale) must be below 1.
            raise SpecError("out_scale", str(error)) from None
        object.__setattr__(self, "layer", layer)

    @classmethod
    def from_layer(cls, layer, *, pe=0, **_):
        """The stage of a golden ``Add``; ``pe`` (output channels in parallel, as for a
        convolution) is its ``channels_per_cycle``."""
        return cls(layer.in1_scale, layer.in1_zp, layer.in2_scale, layer.in2_zp,
                   layer.out_scale, layer.out_zp, layer.act_min, layer.act_max, pe)

    def bind_join(self, sources):
        self._check_sources(sources, same_channels=True)
        fmt, width, height = sources[0]
        if self.channels_per_cycle > fmt.channels:
            raise SpecError("channels_per_cycle", f"must be at most the inputs' "
                                                  f"{fmt.channels} channels, not "
                                                  f"{self.channels_per_cycle}")
        return Bound(self, fmt, width, height, fmt, width, height,
                     in_formats=tuple(source[0] for source in sources))

    def hardware(self, bound):
        layer = self.layer
        return per_lane(lambda: QuantizedAdd(
            bound.in_format, in1_zp=layer.in1_zp, in1_multiplier=layer.in1_multiplier,
            in2_zp=layer.in2_zp, in2_multiplier=layer.in2_multiplier, out_zp=layer.out_zp,
            out_multiplier=layer.out_multiplier, act_min=layer.act_min,
            act_max=layer.act_max, channels_per_cycle=self.channels_per_cycle or None),
            bound.lanes, "data", "data")

    def timing(self, bound):
        return QuantizedAdd.timing(bound.in_format.channels, self.channels_per_cycle or None)


@register_stage
@dataclass(frozen=True)
class ConcatenationStage(_JoinLayerStage):
    """``concatenation``: TFLite CONCATENATION int8 of two tensors along the channels (the
    int8 kernel requires one scale and zero point for the inputs and the output, so it
    copies): the first input's channels, then the second's."""
    op: ClassVar[str] = "concatenation"
    layer_type: ClassVar[type] = golden_elementwise.Concatenation
    scale: float = _scale_param("inputs and the output", default=1.0)
    zero_point: int = param(0, lo=INT8_MIN, hi=INT8_MAX,
                            doc="zero point of the inputs and the output")

    def __post_init__(self):
        super().__post_init__()
        quantization = (self.scale, self.zero_point)
        object.__setattr__(self, "layer", golden_elementwise.Concatenation(
            CHANNEL_AXES[0], (quantization, quantization), *quantization))

    @classmethod
    def from_layer(cls, layer, **_):
        if len(layer.in_params) != 2:
            raise SpecError("inputs", f"a concatenation stage joins 2 tensors, not "
                                      f"{len(layer.in_params)}: concatenate more as a chain")
        if layer.axis not in CHANNEL_AXES:
            raise SpecError("axis", f"must be the channel axis of an NHWC tensor "
                                    f"({' or '.join(map(str, CHANNEL_AXES))}), not "
                                    f"{layer.axis}")
        return cls(layer.out_scale, layer.out_zp)

    def bind_join(self, sources):
        self._check_sources(sources, same_channels=False)
        (first, width, height), (second, _, _) = sources
        channels = first.channels + second.channels
        if channels > MAX_CHANNELS:
            raise SpecError("inputs", f"{self.op} of {first.channels} and {second.channels} "
                                      f"channels makes {channels}, more than {MAX_CHANNELS}")
        return Bound(self, first, width, height, PixelFormat(channels, INT8), width, height,
                     in_formats=(first, second))

    def hardware(self, bound):
        first, second = bound.in_formats
        return per_lane(lambda: ChannelConcat(first, second), bound.lanes, "data", "data")

    def timing(self, bound):
        return fixed_timing(ChannelConcat)
