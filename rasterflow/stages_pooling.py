"""Int8 pooling stages: ``average_pool`` (TFLite AVERAGE_POOL_2D) and ``mean`` (TFLite MEAN
over H and W).

Their golden models are :class:`~rasterflow.golden.pooling.AveragePool2D` and
:class:`~rasterflow.golden.pooling.Mean`; their hardware is in ``hdl/reduce.py``. Pixels are
``C x int8``. A ``mean``, and an ``average_pool`` whose window covers the whole frame (how
classifiers write a global average pool), turn each frame into one ``1 x 1`` pixel with one
accumulator per channel and one shared datapath; any other ``average_pool`` runs through the
shared window generator.

Spec format (TOML)::

    [[stage]]
    op = "average_pool"
    size_h = 2                          # window, may differ per axis
    size_w = 2
    stride_h = 2
    stride_w = 2
    padding = "valid"                   # or "same" (the window clipped to the image)
    act_min = -128                      # fused activation clamp
    act_max = 127

    [[stage]]
    op = "mean"
    in_scale = 0.0235                   # TFLite float32 tensor scales
    in_zp = -128
    out_scale = 0.0118
    out_zp = -128
    axes = [1, 2]                       # H and W of NHWC (the only axes built)
    keep_dims = true
"""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .errors import SpecError
from .golden import pooling as golden_pooling
from .golden.cnn import window_geometry
from .hdl.reduce import AveragePoolUnit, GlobalAveragePool, GlobalMean, pool_geometry
from .hdl.window import MAX_KERNEL
from .params import MAX_DIMENSION, param
from .stages import Bound, check_window_fits, register_stage
from .stages_cnn import (_check_activation_order, _check_input, _clamp_param, _LayerStage,
                         _padding_param, _zero_point_param)

__all__ = ["AveragePoolStage", "MeanStage"]


def _size_param(doc):
    return param(2, lo=1, hi=MAX_DIMENSION, doc=doc)


@register_stage
@dataclass(frozen=True)
class AveragePoolStage(_LayerStage):
    """``average_pool``: TFLite AVERAGE_POOL_2D int8 (window clipped to the image, the sum
    divided by its in-image taps, rounding half away from zero); a window covering the whole
    frame is a global average pool (a 1x1 output)."""
    op: ClassVar[str] = "average_pool"
    layer_type: ClassVar[type] = golden_pooling.AveragePool2D
    size_h: int = _size_param("window height")
    size_w: int = _size_param("window width")
    stride_h: int = _size_param("vertical stride")
    stride_w: int = _size_param("horizontal stride")
    padding: str = _padding_param("valid")
    act_min: int = _clamp_param(-128, "lowest")
    act_max: int = _clamp_param(127, "highest")

    def __post_init__(self):
        super().__post_init__()
        _check_activation_order(self)
        object.__setattr__(self, "layer", golden_pooling.AveragePool2D(
            self.size_h, self.size_w, self.stride_h, self.stride_w, self.padding, self.act_min,
            self.act_max))

    @classmethod
    def from_layer(cls, layer, **_):
        return cls(layer.size_h, layer.size_w, layer.stride_h, layer.stride_w, layer.padding,
                   layer.act_min, layer.act_max)

    @staticmethod
    def output_size(layer, width, height):
        out_h, out_w, _ = layer.output_shape((height, width, 1))
        return out_w, out_h

    def _geometry(self, width, height):
        """The pool's geometry on a ``width x height`` frame; a window that does not fit an
        axis is a SpecError naming it."""
        for name, size, window, stride in (("input.width", width, self.size_w, self.stride_w),
                                           ("input.height", height, self.size_h,
                                            self.stride_h)):
            try:
                window_geometry(size, window, stride, self.padding)
            except ValueError as error:
                raise SpecError(name, str(error)) from None
        return pool_geometry(width, height, size_h=self.size_h, size_w=self.size_w,
                             stride_h=self.stride_h, stride_w=self.stride_w,
                             padding=self.padding)

    def _is_global(self, bound):
        return self._geometry(bound.width, bound.height).covers_frame(bound.width, bound.height)

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        geometry = self._geometry(width, height)
        if not geometry.covers_frame(width, height):
            for name, size, kernel in (("size_w", self.size_w, geometry.kernel_x),
                                       ("size_h", self.size_h, geometry.kernel_y)):
                if kernel > MAX_KERNEL:
                    raise SpecError(name, f"{size} with {self.padding} padding over a "
                                          f"{width}x{height} frame needs a centred {kernel}-tap "
                                          f"window, and the window generator has at most "
                                          f"{MAX_KERNEL}; a window this large is built only "
                                          f"when it covers the whole frame (a global average "
                                          f"pool)")
            check_window_fits(width, height, geometry.kernel_x, geometry.kernel_y)
        return Bound(self, in_format, width, height, in_format, geometry.out_width,
                     geometry.out_height)

    def hardware(self, bound):
        if self._is_global(bound):
            return GlobalAveragePool(bound.in_format, bound.width, bound.height,
                                     act_min=self.act_min, act_max=self.act_max)
        return AveragePoolUnit(bound.in_format, bound.width, bound.height, size_h=self.size_h,
                               size_w=self.size_w, stride_h=self.stride_h,
                               stride_w=self.stride_w, padding=self.padding,
                               act_min=self.act_min, act_max=self.act_max)

    def timing(self, bound):
        if self._is_global(bound):
            return GlobalAveragePool.timing(bound.in_format.channels, bound.width,
                                            bound.height)
        return AveragePoolUnit.timing(bound.width, bound.height, size_h=self.size_h,
                                      size_w=self.size_w, stride_h=self.stride_h,
                                      stride_w=self.stride_w, padding=self.padding)


def _check_axes(axes):
    if not isinstance(axes, (list, tuple)) or \
            any(not isinstance(a, int) or isinstance(a, bool) for a in axes) or \
            sorted(axes) != [1, 2]:
        raise ValueError(f"must be [1, 2] (H and W of NHWC: the only axes mean reduces in "
                         f"hardware), not {axes!r}")


def _scale_param(which):
    return param(doc=f"{which} scale (TFLite float32 tensor parameter)")


@register_stage
@dataclass(frozen=True)
class MeanStage(_LayerStage):
    """``mean``: TFLite MEAN int8 over H and W (the sum of each channel, requantized with
    the ``1 / (H*W)`` folded into the multiplier as LiteRT does); each frame becomes one
    1x1 pixel."""
    op: ClassVar[str] = "mean"
    layer_type: ClassVar[type] = golden_pooling.Mean
    in_scale: float = _scale_param("input")
    in_zp: int = _zero_point_param("input")
    out_scale: float = _scale_param("output")
    out_zp: int = _zero_point_param("output")
    axes: list = param((1, 2), check=_check_axes, doc="the reduced axes of NHWC: [1, 2] only")
    keep_dims: bool = param(True, doc="TFLite keep_dims (the stream is 1x1xC either way)")

    def __post_init__(self):
        super().__post_init__()
        for name in ("in_scale", "out_scale"):
            value = np.float32(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise SpecError(name, f"must be a positive float32, not {getattr(self, name)!r}")
        object.__setattr__(self, "axes", [int(a) for a in self.axes])
        object.__setattr__(self, "layer", golden_pooling.Mean(
            self.in_scale, self.in_zp, self.out_scale, self.out_zp, tuple(self.axes),
            self.keep_dims))

    @classmethod
    def from_layer(cls, layer, **_):
        return cls(layer.in_scale, layer.in_zp, layer.out_scale, layer.out_zp,
                   list(layer.axes), layer.keep_dims)

    @staticmethod
    def output_size(layer, width, height):
        return 1, 1

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        return Bound(self, in_format, width, height, in_format, 1, 1)

    def golden(self, frame, bound):
        return self.layer(np.asarray(frame)).reshape(1, 1, -1)

    def hardware(self, bound):
        m0, shift = self.layer.folded_multiplier(bound.width * bound.height)
        return GlobalMean(bound.in_format, bound.width, bound.height, in_zp=self.in_zp,
                          out_zp=self.out_zp, m0=m0, shift=shift)

    def timing(self, bound):
        return GlobalMean.timing(bound.in_format.channels, bound.width, bound.height)
