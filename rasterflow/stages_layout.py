"""Int8 layout stages: ``pad`` (TFLite PAD / PADV2) and ``resize_nearest``
(RESIZE_NEAREST_NEIGHBOR).

Their golden models are :class:`~rasterflow.golden.elementwise.Pad` and
:class:`~rasterflow.golden.elementwise.ResizeNearestNeighbor` on one ``H x W x C`` frame (the
batch axis dropped), their hardware :class:`~rasterflow.hdl.layout.Pad` and
:class:`~rasterflow.hdl.layout.ResizeNearest`. Spec format (TOML)::

    [[stage]]
    op = "pad"
    top = 1                 # rows above the frame; also bottom, left, right
    right = 1
    channels_after = 3      # constant channels after the input's; also channels_before
    value = -128            # PAD: the output zero point; PADV2: its constant value

    [[stage]]
    op = "resize_nearest"
    out_width = 26
    out_height = 26
    align_corners = false
    half_pixel_centers = false
"""
from dataclasses import dataclass
from typing import ClassVar

from .errors import SpecError
from .golden import elementwise as golden_elementwise
from .golden.cnn import INT8_MAX, INT8_MIN
from .golden.elementwise import nearest_indices
from .golden.pixel import PixelFormat
from .hdl.layout import Pad, ResizeNearest
from .params import MAX_DIMENSION, param
from .stages import Bound, register_stage
from .stages_cnn import INT8, MAX_CHANNELS, _check_input, _LayerStage

__all__ = ["PadStage", "ResizeNearestStage"]


def _amount_param(doc):
    return param(0, lo=0, hi=MAX_DIMENSION, doc=doc)


def _check_size(field, what, size, limit):
    if size > limit:
        raise SpecError(field, f"makes the output {what} {size}, more than {limit}")


@register_stage
@dataclass(frozen=True)
class PadStage(_LayerStage):
    """``pad``: TFLite PAD / PADV2 int8: rows, columns and channels of one constant around
    each frame (the batch axis cannot be padded)."""
    op: ClassVar[str] = "pad"
    layer_type: ClassVar[type] = golden_elementwise.Pad
    top: int = _amount_param("rows of the constant above the frame")
    bottom: int = _amount_param("rows of the constant below the frame")
    left: int = _amount_param("columns of the constant left of the frame")
    right: int = _amount_param("columns of the constant right of the frame")
    channels_before: int = _amount_param("constant channels before the input's channels")
    channels_after: int = _amount_param("constant channels after the input's channels")
    value: int = param(0, lo=INT8_MIN, hi=INT8_MAX,
                       doc="the constant (PAD: the output zero point; PADV2: its constant "
                           "value)")

    def __post_init__(self):
        super().__post_init__()
        paddings = ((self.top, self.bottom), (self.left, self.right),
                    (self.channels_before, self.channels_after))
        object.__setattr__(self, "layer", golden_elementwise.Pad(paddings, self.value))

    @classmethod
    def from_layer(cls, layer, **_):
        """The stage for a golden ``Pad`` over an NHWC tensor (no batch padding) or an HWC
        one."""
        pairs = layer.paddings
        if len(pairs) == 4:
            if pairs[0] != (0, 0):
                raise SpecError("paddings", f"pads the batch axis by {pairs[0]}; a stream "
                                            "carries one image per frame, so only the height, "
                                            "width and channel axes can be padded")
            pairs = pairs[1:]
        if len(pairs) != 3:
            raise SpecError("paddings", f"has {len(layer.paddings)} (before, after) pairs; "
                                        "a frame is an NHWC (4) or HWC (3) tensor")
        (top, bottom), (left, right), (before, after) = pairs
        return cls(top=top, bottom=bottom, left=left, right=right, channels_before=before,
                   channels_after=after, value=layer.constant)

    @staticmethod
    def output_size(layer, width, height):
        (top, bottom), (left, right) = layer.paddings[-3:-1]
        return left + width + right, top + height + bottom

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        out_width = self.left + width + self.right
        out_height = self.top + height + self.bottom
        channels = self.channels_before + in_format.channels + self.channels_after
        _check_size("right", "width", out_width, MAX_DIMENSION)
        _check_size("bottom", "height", out_height, MAX_DIMENSION)
        _check_size("channels_after", "channels", channels, MAX_CHANNELS)
        return Bound(self, in_format, width, height, PixelFormat(channels, INT8), out_width,
                     out_height)

    def hardware(self, bound):
        return Pad(bound.in_format, bound.width, bound.height, top=self.top,
                   bottom=self.bottom, left=self.left, right=self.right,
                   channels_before=self.channels_before, channels_after=self.channels_after,
                   value=self.value)

    def timing(self, bound):
        return Pad.timing(bound.width, bound.height, top=self.top, bottom=self.bottom,
                          left=self.left, right=self.right)


@register_stage
@dataclass(frozen=True)
class ResizeNearestStage(_LayerStage):
    """``resize_nearest``: TFLite RESIZE_NEAREST_NEIGHBOR int8 to ``out_width x
    out_height`` (any factors, up or down), TFLite's source-pixel mapping."""
    op: ClassVar[str] = "resize_nearest"
    layer_type: ClassVar[type] = golden_elementwise.ResizeNearestNeighbor
    out_width: int = param(lo=1, hi=MAX_DIMENSION, doc="output frame width")
    out_height: int = param(lo=1, hi=MAX_DIMENSION, doc="output frame height")
    align_corners: bool = param(False, doc="TFLite's align_corners: the corner pixels of "
                                           "input and output are aligned")
    half_pixel_centers: bool = param(False, doc="TFLite's half_pixel_centers: sample at "
                                                "pixel centres")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "layer", golden_elementwise.ResizeNearestNeighbor(
            self.out_height, self.out_width, self.align_corners, self.half_pixel_centers))

    @classmethod
    def from_layer(cls, layer, **_):
        return cls(out_width=layer.out_width, out_height=layer.out_height,
                   align_corners=layer.align_corners,
                   half_pixel_centers=layer.half_pixel_centers)

    @staticmethod
    def output_size(layer, width, height):
        return layer.out_width, layer.out_height

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        return Bound(self, in_format, width, height, in_format, self.out_width,
                     self.out_height)

    def sources(self, bound):
        """``(rows, cols)``: the input row of each output row and the input column of each
        output column, as the golden layer (TFLite) maps them."""
        return tuple(nearest_indices(size, out, self.align_corners, self.half_pixel_centers)
                     .tolist() for size, out in ((bound.height, self.out_height),
                                                 (bound.width, self.out_width)))

    def hardware(self, bound):
        return ResizeNearest(bound.in_format, bound.width, bound.height, *self.sources(bound))

    def timing(self, bound):
        return ResizeNearest.timing(bound.width, bound.height, *self.sources(bound))
