"""The timing contract of a stage's hardware, computed without building it.

Every stage's hardware class has a ``timing`` function of its parameters returning a
:class:`StageTiming`; its constructor sets ``latency``/``schedule_delay`` (and for MAC
arrays ``initiation_interval``/``multipliers``) from the same per-part formulas, so the
front end can plan a pipeline (latency, throughput, MAC counts, skew buffers) in plain Python.
"""
from dataclasses import dataclass
from numbers import Integral

__all__ = ["StageTiming", "Sampling"]


@dataclass(frozen=True)
class Sampling:
    """Where a stage's outputs stand in its input frame, for a stage whose output frame is not
    its input frame position for position (a stride, a resize, padding, a pooling to 1x1).

    Output pixel ``(oy, ox)`` is *tied* to input transfer ``t(oy, ox) + lead`` of its frame,
    ``t`` being the latest ``rows[y] * G + cols[x] // P`` over the outputs ``(y, x)`` up to
    ``(oy, ox)`` in raster order (``G`` transfers per input line, ``P`` pixels per transfer;
    ``-1`` stands before the frame's first transfer): the stage cannot emit that output
    before that transfer has reached it (it needs it), and takes that transfer only once
    every output tied to an earlier one is on its way (in its pipeline or emitted). The
    pipeline sizes its skew buffers from these ties (:func:`~rasterflow.hdl.top.graph_timing`).
    The output frame is ``len(cols)`` wide and ``len(rows)`` high.

    A stage whose :class:`StageTiming` has no sampling keeps its frame size, and output
    transfer ``n`` is tied to input transfer ``n + schedule_delay``.

    Attributes
    ----------
    rows, cols : tuple of int
        Per output row (column), the input row (column) it stands at, nondecreasing.
    lead : int
        Transfers after that position that the output needs (a window's schedule).
    """
    rows: tuple
    cols: tuple
    lead: int = 0

    def __post_init__(self):
        for name in ("rows", "cols"):
            values = tuple(getattr(self, name))
            if not values or any(isinstance(v, bool) or not isinstance(v, Integral) or v < -1
                                 for v in values) or \
                    any(b < a for a, b in zip(values, values[1:])):
                raise ValueError(f"{name} must be a nondecreasing list of input indices (-1 "
                                 f"or more), not {values!r}")
            object.__setattr__(self, name, tuple(int(v) for v in values))
        if not isinstance(self.lead, int) or self.lead < 0:
            raise ValueError(f"lead must be an integer of at least 0, not {self.lead!r}")

    @classmethod
    def grid(cls, out_width, out_height, *, stride_x, stride_y, offset_x=0, offset_y=0,
             lead=0):
        """Outputs at input positions ``(offset_y + stride_y * oy, offset_x + stride_x *
        ox)``, each complete ``lead`` transfers later: a strided window stage (its window's
        schedule as ``lead``; e.g. a window generator followed by
        :class:`~rasterflow.hdl.conv.Decimate`)."""
        return cls(tuple(offset_y + stride_y * oy for oy in range(out_height)),
                   tuple(offset_x + stride_x * ox for ox in range(out_width)), lead)

    @property
    def out_size(self):
        """``(width, height)`` of the output frame."""
        return len(self.cols), len(self.rows)


@dataclass(frozen=True)
class StageTiming:
    """What a stage's hardware promises about cycles.

    Attributes
    ----------
    latency : int
        Cycles from the input transfer that completes an output's inputs to that output,
        unstalled (``part.latency``).
    schedule_delay : int
        Transfers between a frame's last input and its last output beside the latency (a
        windowed stage's window schedule; 0 for pointwise stages).
    initiation_interval : int
        Cycles per output transfer (1 except for folded MAC arrays).
    multipliers : int
        Variable x variable products in parallel (CNN MAC arrays; 0 otherwise).
    macs_per_output : int
        Useful multiply-accumulates per output pixel (CNN MAC arrays; 0 otherwise).
    sampling : Sampling or None
        For a stage that changes the frame size: where its outputs stand in its input
        frame. ``None``: the stage keeps the frame size, output ``n`` standing at input
        ``n``.
    """
    latency: int
    schedule_delay: int = 0
    initiation_interval: int = 1
    multipliers: int = 0
    macs_per_output: int = 0
    sampling: Sampling = None

    @property
    def delay(self):
        """Cycles the stage adds to a stream's arrival time: ``latency + schedule_delay``."""
        return self.latency + self.schedule_delay
