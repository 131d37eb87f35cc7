"""Spec stages of the filter library: OpenCV's image-processing ops by name.

Each stage's golden model is the function of :mod:`rasterflow.golden.imgproc` that equals
the OpenCV call; its hardware is a block of :mod:`rasterflow.hdl.imgproc` or
:mod:`rasterflow.hdl.pointwise`. ``bind`` checks the input the previous stage produces
(e.g. ``gradient_magnitude`` needs uint8, so ``sobel -> gradient_magnitude`` is an error) and
raises :class:`SpecError` naming the allowed values.
"""
from dataclasses import dataclass
from typing import ClassVar

from .errors import SpecError
from .golden import imgproc as golden
from .golden.pixel import PixelFormat
from .hdl import imgproc as hdl
from .hdl.filters import SharedWindow
from .hdl import pointwise
from .hdl.stall import per_lane
from .params import param
from .stages import (Bound, Stage, border_param, check_window_fits, fixed_timing,
                     register_stage)

__all__ = ["GaussianStage", "BoxStage", "SobelStage", "ScharrStage", "LaplacianStage",
           "GradientMagnitudeStage", "MedianStage", "ErodeStage", "DilateStage",
           "ThresholdStage", "RGB2GrayStage", "ChannelMinStage"]

MAX_SIGMA = 1000.0


# Parameters several ops share, declared once (functions: see params.param).

def _ksize_param(default, sizes):
    return param(default, choices=sizes, doc="window side (a ksize x ksize window)")


def _sobel_ksize_param():
    return param(3, choices=hdl.SOBEL_SIZES,
                 doc="Sobel aperture (1: a 3-tap derivative without smoothing)")


def _order_param(default, top, axis):
    return param(default, lo=0, hi=top, doc=f"derivative order along {axis}")


def norm_param():
    """The gradient magnitude's norm (``gradient_magnitude``, ``magnitude``)."""
    return param("l1", choices=hdl.GRADIENT_NORMS,
                 doc="``l1``: ``min(255, |gx| + |gy|)``; ``l2``: the rounded square root of "
                     "``gx**2 + gy**2``, saturated")


def _require_input(op, in_format, *, dtypes=None, channels=None):
    """Raise ``SpecError("op", ...)`` unless the input format is one this op takes."""
    ok_dtype = dtypes is None or in_format.dtype in dtypes
    ok_channels = channels is None or in_format.channels == channels
    if not (ok_dtype and ok_channels):
        kind = " or ".join(dtypes) if dtypes is not None else "integer"
        count = f"{channels} channels" if channels is not None else "any number of channels"
        raise SpecError("op", f"{op} needs {kind} input with {count}, not {in_format}")


def _same_size(stage, in_format, width, height, out_format, kernel=1):
    check_window_fits(width, height, kernel, kernel)
    return Bound(stage, in_format, width, height, out_format, width, height)


# --- Linear filters -----------------------------------------------------------------------


@register_stage
@dataclass(frozen=True)
class GaussianStage(Stage):
    """``gaussian``: ``cv2.GaussianBlur`` on uint8 (OpenCV's integer Q0.8 taps)."""
    op: ClassVar[str] = "gaussian"
    supports_lanes: ClassVar[bool] = True
    ksize: int = _ksize_param(3, hdl.ODD_SIZES)
    sigma: float = param(0, lo=0, hi=MAX_SIGMA, note="0 = OpenCV's default for ksize",
                         doc="standard deviation of the Gaussian, in pixels")
    border: str = border_param()

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        return _same_size(self, in_format, width, height, in_format, self.ksize)

    def golden(self, frame, bound):
        return golden.gaussian(frame, self.ksize, self.sigma, border=self.border)

    def hardware(self, bound):
        return hdl.GaussianBlur(bound.in_format, bound.width, bound.height, self.ksize,
                                self.sigma, border=self.border, lanes=bound.lanes,
                                share=bound.share)

    def window(self, bound):
        return SharedWindow(self.ksize, self.ksize, self.border)

    def timing(self, bound):
        return hdl.GaussianBlur.timing(bound.width, self.ksize, self.sigma,
                                       lanes=bound.lanes, share=bound.share)


@register_stage
@dataclass(frozen=True)
class BoxStage(Stage):
    """``box``: ``cv2.blur`` (normalize, uint8) or the int32 window sum (``boxFilter``)."""
    op: ClassVar[str] = "box"
    supports_lanes: ClassVar[bool] = True
    ksize: int = _ksize_param(3, hdl.ODD_SIZES)
    normalize: bool = param(True, doc="the mean (uint8) instead of the sum (int32)")
    border: str = border_param()

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        out = in_format if self.normalize else PixelFormat(in_format.channels, "int32")
        return _same_size(self, in_format, width, height, out, self.ksize)

    def golden(self, frame, bound):
        return golden.box(frame, self.ksize, normalize=self.normalize, border=self.border)

    def hardware(self, bound):
        return hdl.BoxFilter(bound.in_format, bound.width, bound.height, self.ksize,
                             normalize=self.normalize, border=self.border, lanes=bound.lanes,
                             share=bound.share)

    def window(self, bound):
        return SharedWindow(self.ksize, self.ksize, self.border)

    def timing(self, bound):
        return hdl.BoxFilter.timing(bound.width, self.ksize, normalize=self.normalize,
                                    lanes=bound.lanes, share=bound.share)


@register_stage
@dataclass(frozen=True)
class SobelStage(Stage):
    """``sobel``: ``cv2.Sobel(img, CV_16S, dx, dy, ksize)`` on uint8 -> int16."""
    op: ClassVar[str] = "sobel"
    supports_lanes: ClassVar[bool] = True
    dx: int = _order_param(1, hdl.MAX_SOBEL_ORDER, "x")
    dy: int = _order_param(0, hdl.MAX_SOBEL_ORDER, "y")
    ksize: int = _sobel_ksize_param()
    border: str = border_param()

    def __post_init__(self):
        super().__post_init__()
        if self.dx + self.dy < 1:
            raise SpecError("dx", f"dx + dy must be at least 1 (dx, dy in "
                                  f"0..{hdl.MAX_SOBEL_ORDER})")

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        kernel = max(3, self.ksize)
        return _same_size(self, in_format, width, height,
                          PixelFormat(in_format.channels, "int16"), kernel)

    def golden(self, frame, bound):
        return golden.sobel(frame, self.dx, self.dy, self.ksize, border=self.border)

    def hardware(self, bound):
        return hdl.Sobel(bound.in_format, bound.width, bound.height, self.dx, self.dy,
                         self.ksize, border=self.border, lanes=bound.lanes, share=bound.share)

    def window(self, bound):
        kx, ky = golden.sobel_kernels(self.dx, self.dy, self.ksize)
        return SharedWindow(len(ky), len(kx), self.border)

    def timing(self, bound):
        return hdl.Sobel.timing(bound.width, self.dx, self.dy, self.ksize,
                                lanes=bound.lanes, share=bound.share)


@register_stage
@dataclass(frozen=True)
class ScharrStage(Stage):
    """``scharr``: ``cv2.Scharr(img, CV_16S, dx, dy)`` on uint8 -> int16."""
    op: ClassVar[str] = "scharr"
    supports_lanes: ClassVar[bool] = True
    dx: int = _order_param(1, 1, "x")
    dy: int = _order_param(0, 1, "y")
    border: str = border_param()

    def __post_init__(self):
        super().__post_init__()
        if self.dx + self.dy != 1:
            raise SpecError("dx", "(dx, dy) must be (1, 0) or (0, 1)")

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        return _same_size(self, in_format, width, height,
                          PixelFormat(in_format.channels, "int16"), 3)

    def golden(self, frame, bound):
        return golden.scharr(frame, self.dx, self.dy, border=self.border)

    def hardware(self, bound):
        return hdl.Scharr(bound.in_format, bound.width, bound.height, self.dx, self.dy,
                          border=self.border, lanes=bound.lanes, share=bound.share)

    def timing(self, bound):
        return hdl.Scharr.timing(bound.width, self.dx, self.dy,
                                 lanes=bound.lanes, share=bound.share)

    def window(self, bound):
        return SharedWindow(3, 3, self.border)


@register_stage
@dataclass(frozen=True)
class LaplacianStage(Stage):
    """``laplacian``: ``cv2.Laplacian(img, CV_16S, ksize)`` on uint8, ksize 1 or 3 -> int16."""
    op: ClassVar[str] = "laplacian"
    supports_lanes: ClassVar[bool] = True
    ksize: int = param(1, choices=hdl.LAPLACIAN_SIZES,
                       doc="1: the 4-neighbour kernel; 3: OpenCV's 3x3 kernel")
    border: str = border_param()

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        return _same_size(self, in_format, width, height,
                          PixelFormat(in_format.channels, "int16"), 3)

    def golden(self, frame, bound):
        return golden.laplacian(frame, self.ksize, border=self.border)

    def hardware(self, bound):
        return hdl.Laplacian(bound.in_format, bound.width, bound.height, self.ksize,
                             border=self.border, lanes=bound.lanes, share=bound.share)

    def timing(self, bound):
        return hdl.Laplacian.timing(bound.width, self.ksize, lanes=bound.lanes,
                                    share=bound.share)

    def window(self, bound):
        return SharedWindow(3, 3, self.border)


@register_stage
@dataclass(frozen=True)
class GradientMagnitudeStage(Stage):
    """``gradient_magnitude``: Sobel ``gx``, ``gy`` (int16, saturated like cv2) of a uint8
    image from one window, then ``l1`` ``min(255, |gx| + |gy|)`` or ``l2`` (rounded exact
    square root, saturated) -> uint8."""
    op: ClassVar[str] = "gradient_magnitude"
    supports_lanes: ClassVar[bool] = True
    norm: str = norm_param()
    ksize: int = _sobel_ksize_param()
    border: str = border_param()

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        return _same_size(self, in_format, width, height, in_format, max(3, self.ksize))

    def golden(self, frame, bound):
        gx = golden.sobel(frame, 1, 0, self.ksize, border=self.border)
        gy = golden.sobel(frame, 0, 1, self.ksize, border=self.border)
        return golden.gradient_magnitude(gx, gy, self.norm)

    def hardware(self, bound):
        return hdl.GradientMagnitude(bound.in_format, bound.width, bound.height,
                                     ksize=self.ksize, norm=self.norm, border=self.border,
                                     lanes=bound.lanes, share=bound.share)

    def window(self, bound):
        size = max(3, self.ksize)
        return SharedWindow(size, size, self.border)

    def timing(self, bound):
        return hdl.GradientMagnitude.timing(bound.width, self.ksize, self.norm,
                                            lanes=bound.lanes, share=bound.share)


# --- Order statistics and morphology ------------------------------------------------------


@register_stage
@dataclass(frozen=True)
class MedianStage(Stage):
    """``median``: ``cv2.medianBlur(img, ksize)`` on uint8 (replicate border)."""
    op: ClassVar[str] = "median"
    supports_lanes: ClassVar[bool] = True
    ksize: int = _ksize_param(3, hdl.MEDIAN_SIZES)

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        return _same_size(self, in_format, width, height, in_format, self.ksize)

    def golden(self, frame, bound):
        return golden.median(frame, self.ksize)

    def hardware(self, bound):
        return hdl.MedianBlur(bound.in_format, bound.width, bound.height, self.ksize,
                              lanes=bound.lanes, share=bound.share)

    def window(self, bound):
        return SharedWindow(self.ksize, self.ksize, "replicate")   # cv2.medianBlur's border

    def timing(self, bound):
        return hdl.MedianBlur.timing(bound.width, self.ksize, lanes=bound.lanes, share=bound.share)


@dataclass(frozen=True)
class _MorphologyStage(Stage):
    ksize: int = _ksize_param(3, hdl.ODD_SIZES)
    shape: str = param("rect", choices=hdl.MORPH_SHAPES,
                       doc="structuring element (``cv2.getStructuringElement``)")

    def bind(self, in_format, width, height):
        return _same_size(self, in_format, width, height, in_format, self.ksize)

    def golden(self, frame, bound):
        return getattr(golden, self.op)(frame, self.ksize, self.shape)

    def hardware(self, bound):
        return hdl.Morphology(bound.in_format, bound.width, bound.height, self.ksize,
                              shape=self.shape, operation=self.op, lanes=bound.lanes,
                              share=bound.share)

    def window(self, bound):
        # OpenCV's default border never wins: the type's max for erode, min for dilate.
        fmt = bound.in_format
        return SharedWindow(self.ksize, self.ksize, "constant",
                            fmt.max if self.op == "erode" else fmt.min)

    def timing(self, bound):
        return hdl.Morphology.timing(bound.width, self.ksize, shape=self.shape,
                                     lanes=bound.lanes, share=bound.share)


@register_stage
@dataclass(frozen=True)
class ErodeStage(_MorphologyStage):
    """``erode``: ``cv2.erode`` with a rect / cross / ellipse element (any integer type)."""
    op: ClassVar[str] = "erode"
    supports_lanes: ClassVar[bool] = True


@register_stage
@dataclass(frozen=True)
class DilateStage(_MorphologyStage):
    """``dilate``: ``cv2.dilate`` with a rect / cross / ellipse element (any integer type)."""
    op: ClassVar[str] = "dilate"
    supports_lanes: ClassVar[bool] = True


# --- Pointwise ----------------------------------------------------------------------------


@register_stage
@dataclass(frozen=True)
class ThresholdStage(Stage):
    """``threshold``: ``cv2.threshold(img, level, maxval, THRESH_<type>)`` on uint8."""
    op: ClassVar[str] = "threshold"
    supports_lanes: ClassVar[bool] = True
    level: int = param(lo=-(1 << 31), hi=(1 << 31) - 1, doc="the threshold (``thresh``)")
    maxval: int = param(255, lo=0, hi=255, doc="the value of pixels that pass (uint8)")
    type: str = param("binary", choices=pointwise.THRESHOLD_TYPES,
                      doc="``THRESH_<type>``: what passes and what it becomes")

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",))
        return _same_size(self, in_format, width, height, in_format)

    def golden(self, frame, bound):
        return golden.threshold(frame, self.level, self.maxval, self.type)

    def hardware(self, bound):
        return per_lane(lambda: pointwise.Threshold(bound.in_format, level=self.level, maxval=self.maxval,
                                   type=self.type), bound.lanes, "data", "data")

    def timing(self, bound):
        return fixed_timing(pointwise.Threshold)


@register_stage
@dataclass(frozen=True)
class RGB2GrayStage(Stage):
    """``rgb2gray``: ``cv2.cvtColor(img, COLOR_RGB2GRAY)``, 3 x uint8 (R, G, B) -> 1 x uint8."""
    op: ClassVar[str] = "rgb2gray"
    supports_lanes: ClassVar[bool] = True

    def bind(self, in_format, width, height):
        _require_input(self.op, in_format, dtypes=("uint8",), channels=3)
        return _same_size(self, in_format, width, height, PixelFormat(1, "uint8"))

    def golden(self, frame, bound):
        return golden.rgb2gray(frame)

    def hardware(self, bound):
        return per_lane(lambda: pointwise.RGB2Gray(bound.in_format), bound.lanes,
                        "data", "data")

    def timing(self, bound):
        return fixed_timing(pointwise.RGB2Gray)


@register_stage
@dataclass(frozen=True)
class ChannelMinStage(Stage):
    """``channel_min``: minimum over the channels -> 1 channel of the same type."""
    op: ClassVar[str] = "channel_min"
    supports_lanes: ClassVar[bool] = True

    def bind(self, in_format, width, height):
        return _same_size(self, in_format, width, height, PixelFormat(1, in_format.dtype))

    def golden(self, frame, bound):
        return golden.channel_min(frame)

    def hardware(self, bound):
        return per_lane(lambda: pointwise.ChannelMin(bound.in_format), bound.lanes,
                        "data", "data")

    def timing(self, bound):
        return fixed_timing(pointwise.ChannelMin,
                            pointwise.ChannelMin.latency_of(bound.in_format))
