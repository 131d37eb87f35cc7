"""The timing contract of a stage's hardware, computed without building it.

Every stage's hardware class has a ``timing`` function of its parameters returning a
:class:`StageTiming`; its constructor sets ``latency``/``schedule_delay`` (and for MAC
arrays ``initiation_interval``/``multipliers``) from the same per-part formulas, so the
front end can plan a pipeline (latency, throughput, MAC counts) in plain Python.
"""
from dataclasses import dataclass

__all__ = ["StageTiming"]


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
    """
    latency: int
    schedule_delay: int = 0
    initiation_interval: int = 1
    multipliers: int = 0
    macs_per_output: int = 0

    @property
    def delay(self):
        """Cycles the stage adds to a stream's arrival time: ``latency + schedule_delay``."""
        return self.latency + self.schedule_delay
