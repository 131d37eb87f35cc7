"""Stage definitions: what each spec ``op`` means in golden, hardware, and spec terms.

Op modules (this one, ``stages_imgproc``, ``stages_arithm``, ``stages_cnn``) register their
stages in :data:`STAGES` with :func:`register_stage`; :mod:`rasterflow.ops` imports them all.

Each stage is a frozen dataclass of its spec parameters, each declared once with
:func:`~rasterflow.params.param` (type, default, allowed values, doc); constructing a stage
checks them all. A :class:`~rasterflow.pipeline.Pipeline` binds it to its input
(:meth:`Stage.bind`), which checks the parameters against the pixel format and frame size it
receives and says what it produces; :meth:`Stage.timing` says what its hardware promises
about cycles, from the hardware classes' own timing functions, without building it.
"""
import copy
import functools
from dataclasses import dataclass
from typing import ClassVar

from .errors import SpecError
from .golden import filters as golden_filters
from .golden.pixel import DTYPES, PixelFormat
from .hdl.filters import (MAX_SHIFT, MAX_TAP, ROUNDINGS, Filter2D, SepFilter2D, SharedWindow,
                          check_taps)
from .hdl.timing import StageTiming
from .hdl.top import INPUT
from .hdl.window import BORDERS, MAX_KERNEL
from .params import check_params, from_table, param, params_of

__all__ = ["Stage", "Bound", "StageTiming", "STAGES", "INPUT", "GRAPH_KEYS", "register_stage",
           "fixed_timing",
           "stage_from_table", "border_param", "check_window_fits", "Filter2DStage",
           "SepFilter2DStage"]

STAGES = {}
#: Keys of a ``[[stage]]`` table that place it in the graph rather than configure its op.
GRAPH_KEYS = ("name", "inputs")


def register_stage(cls):
    STAGES[cls.op] = cls
    return cls


def stage_from_table(table, where, *, base_dir=None):
    """The stage a ``[[stage]]`` table configures (graph keys ``name``/``inputs`` excluded)."""
    if not isinstance(table, dict):
        raise SpecError(where, "must be a table")
    if "op" not in table:
        raise SpecError(f"{where}.op", f"is required; one of {', '.join(sorted(STAGES))}")
    op = table["op"]
    if not isinstance(op, str) or op not in STAGES:
        raise SpecError(f"{where}.op", f"must be one of {', '.join(sorted(STAGES))}, not {op!r}")
    fields = {k: v for k, v in table.items() if k != "op" and k not in GRAPH_KEYS}
    return STAGES[op].from_spec(fields, where, base_dir=base_dir)


@dataclass(frozen=True)
class Bound:
    """A stage placed in a pipeline: its input and output formats and frame sizes (a join
    stage's ``in_format`` is its first input's; ``in_formats`` has them all)."""
    stage: "Stage"
    in_format: PixelFormat
    width: int
    height: int
    out_format: PixelFormat
    out_width: int
    out_height: int
    lanes: int = 1        # pixels per transfer (the spec's input.pixels_per_clock)
    name: str = None      # the stage's name in the graph
    inputs: tuple = ()    # the names of the streams it reads
    in_formats: tuple = ()
    share: SharedWindow = None   # the line buffers it shares with other readers of its input

    def golden(self, *frames):
        return self.stage.golden(frames[0] if len(frames) == 1 else list(frames), self)

    def hardware(self):
        return self.stage.hardware(self)


class Stage:
    op: ClassVar[str]
    #: Whether the stage's hardware takes ``Bound.lanes`` > 1 (several pixels per clock).
    supports_lanes: ClassVar[bool] = False
    #: How many streams the stage reads; a stage of arity 2 or more is a join, bound by
    #: :meth:`bind_join` and fed one ``joined_stream_layout`` stream.
    arity: ClassVar[int] = 1
    #: The stage's array parameters by name (a CNN layer's weights and bias), which a spec
    #: refers to by file; ``None`` for a stage without any.
    arrays = None

    def __post_init__(self):
        """Check the declared parameters; a stage with rules across parameters extends this
        (calling it first)."""
        check_params(self)

    @classmethod
    def from_spec(cls, table, where, *, base_dir=None):
        return from_table(cls, table, where)

    def to_table(self):
        return {"op": self.op, **{name: copy.deepcopy(getattr(self, name))
                                  for name in params_of(type(self))}}

    def bind(self, in_format: PixelFormat, width, height) -> Bound:
        raise NotImplementedError

    def bind_join(self, sources) -> Bound:
        """Bind a join stage to its inputs, ``[(format, width, height), ...]``."""
        raise NotImplementedError

    def window(self, bound) -> SharedWindow:
        """The ``Ky x Kx`` window and vertical border the stage's hardware scans its input
        with, if it is a line-buffer stage that can share them (``bound.share``) with other
        readers of the same stream; else ``None``."""
        return None

    def golden(self, frame, bound: Bound):
        raise NotImplementedError

    def hardware(self, bound: Bound):
        raise NotImplementedError

    def timing(self, bound: Bound) -> StageTiming:
        """The cycles ``hardware(bound)`` takes (its ``latency``, ``schedule_delay``, ...),
        computed from the parameters without building it."""
        raise NotImplementedError

    def sim_report(self, bound: Bound, frames, cycles):
        """Figures of this stage after a simulation of ``frames`` frames that took
        ``cycles`` (a MAC layer's utilization), or ``None`` when it has none."""
        return None


def fixed_timing(hardware_class, latency=None):
    """The :class:`StageTiming` of a pointwise ``hardware_class`` (its class attributes
    ``latency`` unless given, and ``schedule_delay``); lane copies keep both."""
    return StageTiming(hardware_class.latency if latency is None else latency,
                       hardware_class.schedule_delay)


def check_window_fits(width, height, kernel_width, kernel_height):
    for field, n, k in (("input.width", width, kernel_width),
                        ("input.height", height, kernel_height)):
        if n < k // 2 + 1:
            raise SpecError(field, f"must be at least {k // 2 + 1} for a {k}-tap window, not {n}")


# Parameters several ops share, declared once (functions: see params.param).

def border_param():
    return param("reflect101", choices=BORDERS,
                 doc="where a window leaves the image: OpenCV's border mode")


_TAPS = f"integers in -{MAX_TAP}..{MAX_TAP}"


def _taps_param(two_d, doc):
    return param(check=functools.partial(check_taps, two_d=two_d), doc=doc)


def _shift_param():
    return param(0, lo=0, hi=MAX_SHIFT, doc="the exact sum is divided by ``2**shift``")


def _rounding_param():
    return param("half_even", choices=ROUNDINGS, doc="how ``sum / 2**shift`` is rounded")


def _border_value_param():
    return param(0, doc='the value outside the image when border is "constant" (in the input '
                        'type\'s range)')


def _output_param():
    return param("uint8", choices=tuple(DTYPES), doc="output pixel type (saturated)")


@dataclass(frozen=True)
class _LinearFilter(Stage):
    """Binding shared by ``filter2d`` and ``sepfilter2d``."""

    def _bind(self, in_format, width, height, kernel_width, kernel_height):
        check_window_fits(width, height, kernel_width, kernel_height)
        if not in_format.min <= self.border_value <= in_format.max:
            raise SpecError("border_value", f"must be in {in_format.min}..{in_format.max} for "
                                            f"{in_format.dtype} input, not {self.border_value}")
        out = PixelFormat(in_format.channels, self.output)
        return Bound(self, in_format, width, height, out, width, height)


@register_stage
@dataclass(frozen=True)
class Filter2DStage(_LinearFilter):
    """``filter2d``: integer kernel correlation, ``round(sum / 2**shift)``, saturate."""
    op: ClassVar[str] = "filter2d"
    supports_lanes: ClassVar[bool] = True
    kernel: list = _taps_param(True, f"the kernel: rows of {_TAPS}, odd width and height "
                                     f"in 1..{MAX_KERNEL}")
    shift: int = _shift_param()
    rounding: str = _rounding_param()
    border: str = border_param()
    border_value: int = _border_value_param()
    output: str = _output_param()

    def bind(self, in_format, width, height):
        return self._bind(in_format, width, height, len(self.kernel[0]), len(self.kernel))

    def window(self, bound):
        return SharedWindow(len(self.kernel), len(self.kernel[0]), self.border,
                            self.border_value)

    def golden(self, frame, bound):
        return golden_filters.filter2d(frame, self.kernel, shift=self.shift,
                                       rounding=self.rounding, border=self.border,
                                       border_value=self.border_value, output=self.output)

    def timing(self, bound):
        return Filter2D.timing(bound.width, self.kernel, lanes=bound.lanes, share=bound.share)

    def hardware(self, bound):
        return Filter2D(bound.in_format, bound.width, bound.height, self.kernel,
                        shift=self.shift, rounding=self.rounding, border=self.border,
                        border_value=self.border_value, output=bound.out_format,
                        lanes=bound.lanes, share=bound.share)


@register_stage
@dataclass(frozen=True)
class SepFilter2DStage(_LinearFilter):
    """``sepfilter2d``: ``kx`` along rows then ``ky`` along columns, one exact rounding."""
    op: ClassVar[str] = "sepfilter2d"
    supports_lanes: ClassVar[bool] = True
    kx: list = _taps_param(False, f"taps along a row: {_TAPS}, an odd count in 1..{MAX_KERNEL}")
    ky: list = _taps_param(False, f"taps along a column: {_TAPS}, an odd count in "
                                  f"1..{MAX_KERNEL}")
    shift: int = _shift_param()
    rounding: str = _rounding_param()
    border: str = border_param()
    border_value: int = _border_value_param()
    output: str = _output_param()

    def bind(self, in_format, width, height):
        return self._bind(in_format, width, height, len(self.kx), len(self.ky))

    def window(self, bound):
        return SharedWindow(len(self.ky), len(self.kx), self.border, self.border_value)

    def golden(self, frame, bound):
        return golden_filters.sepfilter2d(frame, self.kx, self.ky, shift=self.shift,
                                          rounding=self.rounding, border=self.border,
                                          border_value=self.border_value, output=self.output)

    def timing(self, bound):
        return SepFilter2D.timing(bound.width, self.kx, self.ky, lanes=bound.lanes,
                                  share=bound.share)

    def hardware(self, bound):
        return SepFilter2D(bound.in_format, bound.width, bound.height, self.kx, self.ky,
                           shift=self.shift, rounding=self.rounding, border=self.border,
                           border_value=self.border_value, output=bound.out_format,
                           lanes=bound.lanes, share=bound.share)
