"""Pixel formats shared by the golden models, the hardware and the host tools.

A :class:`PixelFormat` is pure data (no Amaranth): how many channels a pixel has and the
integer type of each channel. ``golden/`` uses it to pick numpy dtypes; ``hdl/`` turns it
into an Amaranth layout (:mod:`rasterflow.hdl.payload`).
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["PixelFormat", "DTYPES"]

#: Channel types a stream may carry, by name: (bits, signed).
DTYPES = {
    "uint8": (8, False),
    "int8": (8, True),
    "uint16": (16, False),
    "int16": (16, True),
    "int32": (32, True),
}


@dataclass(frozen=True)
class PixelFormat:
    """``channels`` values of type ``dtype`` per pixel (``dtype`` is a key of :data:`DTYPES`)."""
    channels: int
    dtype: str

    def __post_init__(self):
        if not isinstance(self.channels, int) or not 1 <= self.channels <= 1024:
            raise ValueError(f"channels must be an integer in 1..1024, not {self.channels!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")

    @property
    def bits(self):
        return DTYPES[self.dtype][0]

    @property
    def signed(self):
        return DTYPES[self.dtype][1]

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    @property
    def min(self):
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def __str__(self):
        return f"{self.channels}x{self.dtype}"
