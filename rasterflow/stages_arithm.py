"""Spec stages of OpenCV's per-element arithmetic: the ops that join two streams.

``add``, ``subtract``, ``absdiff``, ``min``, ``max``, ``bitwise_and``, ``bitwise_or``,
``bitwise_xor`` take two inputs of one format and size and produce that format;
``magnitude`` takes two int16 gradient streams and produces uint8; ``add_weighted`` blends
two uint8 streams (``cv2.addWeighted``); ``bitwise_not`` takes one stream. A join stage
reads its ``inputs`` in order (``a``, ``b``); its hardware gets them as one joined stream.
"""
from dataclasses import dataclass
from typing import ClassVar

from .errors import SpecError
from .golden import arithm as golden
from .golden import blend as golden_blend
from .golden.pixel import PixelFormat
from .hdl import arithm as hdl
from .hdl import blend as hdl_blend
from .hdl.stall import per_lane
from .params import param
from .stages import Bound, Stage, fixed_timing, register_stage
from .stages_imgproc import norm_param

__all__ = ["JoinStage", "AddWeightedStage", "MagnitudeStage", "BitwiseNotStage"]

MAX_WEIGHT = 1e6


def _describe(source):
    fmt, width, height = source
    return f"{width}x{height}x{fmt.channels} {fmt.dtype}"


class JoinStage(Stage):
    """A stage of two inputs of one size and one format (of ``input_dtypes``)."""
    arity: ClassVar[int] = 2
    supports_lanes: ClassVar[bool] = True
    input_dtypes: ClassVar[tuple] = tuple(hdl.DTYPES)
    hardware_class: ClassVar[type]

    def output_format(self, fmt):
        return fmt

    def bind_join(self, sources):
        first = sources[0]
        fmt, width, height = first
        if any(source != first for source in sources) or fmt.dtype not in self.input_dtypes:
            kinds = " or ".join(self.input_dtypes)
            raise SpecError("inputs", f"{self.op} needs two {width}x{height}x{fmt.channels} "
                                      f"{kinds} inputs of one format, got "
                                      f"{' and '.join(_describe(s) for s in sources)}")
        return Bound(self, fmt, width, height, self.output_format(fmt), width, height,
                     in_formats=tuple(s[0] for s in sources))

    def golden(self, frames, bound):
        return self.golden_function(*frames)

    def hardware(self, bound):
        return per_lane(lambda: self.make_hardware(bound.in_format), bound.lanes,
                        "data", "data")

    def make_hardware(self, fmt):
        return self.hardware_class(fmt)

    def timing(self, bound):
        return fixed_timing(self.hardware_class)


def _join_op(op, hardware_class, golden_function, summary):
    """Register a parameterless join stage ``op``."""
    cls = dataclass(frozen=True)(type(f"{hardware_class.__name__}Stage", (JoinStage,), {
        "__doc__": f"``{op}``: {summary}",
        "__annotations__": {"op": ClassVar[str]},
        "op": op,
        "hardware_class": hardware_class,
        "golden_function": staticmethod(golden_function),
    }))
    return register_stage(cls)


for _op, _hardware, _golden, _summary in [
        ("add", hdl.Add, golden.add, "``cv2.add``, saturating"),
        ("subtract", hdl.Subtract, golden.subtract, "``cv2.subtract`` (a - b), saturating"),
        ("absdiff", hdl.AbsDiff, golden.absdiff, "``cv2.absdiff``"),
        ("min", hdl.Min, golden.minimum, "``cv2.min``"),
        ("max", hdl.Max, golden.maximum, "``cv2.max``"),
        ("bitwise_and", hdl.BitwiseAnd, golden.bitwise_and, "``cv2.bitwise_and``"),
        ("bitwise_or", hdl.BitwiseOr, golden.bitwise_or, "``cv2.bitwise_or``"),
        ("bitwise_xor", hdl.BitwiseXor, golden.bitwise_xor, "``cv2.bitwise_xor``")]:
    _join_op(_op, _hardware, _golden, _summary)


@register_stage
@dataclass(frozen=True)
class MagnitudeStage(JoinStage):
    """``magnitude``: two int16 gradient streams (``gx``, ``gy``) -> uint8, ``l1``
    ``min(255, |gx| + |gy|)`` or ``l2`` (rounded exact square root, saturated)."""
    op: ClassVar[str] = "magnitude"
    input_dtypes: ClassVar[tuple] = ("int16",)
    norm: str = norm_param()

    def output_format(self, fmt):
        return PixelFormat(fmt.channels, "uint8")

    def golden(self, frames, bound):
        return golden.magnitude(*frames, self.norm)

    def make_hardware(self, fmt):
        return hdl.Magnitude(fmt, self.norm)

    def timing(self, bound):
        return fixed_timing(hdl.Magnitude, hdl.Magnitude.latency_of(self.norm))


@register_stage
@dataclass(frozen=True)
class AddWeightedStage(JoinStage):
    """``add_weighted``: ``cv2.addWeighted(a, alpha, b, beta, gamma)`` on uint8."""
    op: ClassVar[str] = "add_weighted"
    input_dtypes: ClassVar[tuple] = ("uint8",)
    alpha: float = param(lo=-MAX_WEIGHT, hi=MAX_WEIGHT, doc="weight of ``a``")
    beta: float = param(lo=-MAX_WEIGHT, hi=MAX_WEIGHT, doc="weight of ``b``")
    gamma: float = param(0.0, lo=-MAX_WEIGHT, hi=MAX_WEIGHT, doc="added to the weighted sum")

    def bind_join(self, sources):
        bound = super().bind_join(sources)
        values = bound.width * bound.height * bound.in_format.channels
        tail = golden_blend.scalar_tail(values)
        if tail and golden_blend.float32_weights(self.alpha, self.beta, self.gamma)[2] != 0:
            # The hardware computes OpenCV's vector path for every value; the two paths
            # differ only when gamma is not 0.
            raise SpecError("gamma", f"must be 0 for a {bound.width}x{bound.height}x"
                                     f"{bound.in_format.channels} frame: OpenCV computes the "
                                     f"last {tail} of its {values} values on a scalar path "
                                     f"that rounds differently when gamma is not 0, which the "
                                     f"hardware does not reproduce")
        return bound

    def golden(self, frames, bound):
        return golden_blend.add_weighted(*frames, self.alpha, self.beta, self.gamma)

    def make_hardware(self, fmt):
        return hdl_blend.AddWeighted(fmt, fmt, alpha=self.alpha, beta=self.beta,
                                     gamma=self.gamma)

    def timing(self, bound):
        return fixed_timing(hdl_blend.AddWeighted)


@register_stage
@dataclass(frozen=True)
class BitwiseNotStage(Stage):
    """``bitwise_not``: ``cv2.bitwise_not`` (every bit inverted, any integer type)."""
    op: ClassVar[str] = "bitwise_not"
    supports_lanes: ClassVar[bool] = True

    def bind(self, in_format, width, height):
        return Bound(self, in_format, width, height, in_format, width, height)

    def golden(self, frame, bound):
        return golden.bitwise_not(frame)

    def hardware(self, bound):
        return per_lane(lambda: hdl.BitwiseNot(bound.in_format), bound.lanes, "data", "data")

    def timing(self, bound):
        return fixed_timing(hdl.BitwiseNot)
