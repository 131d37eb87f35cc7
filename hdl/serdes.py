"""Adapters between byte streams and pixel streams.

On the byte side a pixel is its channels in order (channel 0 first), each channel
little-endian, two's complement for signed types: exactly the bit order of the payload's
``data`` field (an array of channels at the LSB), cut into bytes from the LSB up. Host code
produces the same order with ``frame.astype(fmt.np_dtype.newbyteorder("<")).tobytes()``.
"""
from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .payload import pixel_layout, pixel_stream_signature

__all__ = ["bytes_per_pixel", "BytesToPixels", "PixelsToBytes"]


def bytes_per_pixel(fmt: PixelFormat) -> int:
    if not isinstance(fmt, PixelFormat):
        raise TypeError(f"expected a PixelFormat, not {fmt!r}")
    if fmt.bits % 8:
        raise ValueError(f"pixel format {fmt} has {fmt.bits}-bit channels, not whole bytes")
    return Shape.cast(pixel_layout(fmt)).width // 8


class BytesToPixels(wiring.Component):
    """Byte stream ``i`` -> pixel stream ``o`` of ``width x height`` frames.

    Collects :func:`bytes_per_pixel` bytes per pixel and marks ``sof`` on the first pixel of
    each frame and ``eol`` on the last pixel of each line from its own column/row counters
    (frames follow each other back to back).

    Latency: 1 clock from the last byte of a pixel to ``o.valid``. Throughput: one byte per
    clock (so one pixel per clock for 1-byte pixels); ``i.ready`` depends on ``o.ready`` only
    when the byte completes a pixel and the output register is full. Memory: one pixel of
    partial bytes plus the output register.
    """

    def __init__(self, fmt: PixelFormat, width: int, height: int):
        self.bytes_per_pixel = bytes_per_pixel(fmt)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.fmt, self.width, self.height = fmt, width, height
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(pixel_stream_signature(fmt)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.bytes_per_pixel

        partial = Signal(8 * (n - 1))   # bytes 0..n-2 of the pixel being collected
        byte_index = Signal(range(n))
        column = Signal(range(self.width))
        row = Signal(range(self.height))
        completes_pixel = byte_index == n - 1

        m.d.comb += self.i.ready.eq(~completes_pixel | ~self.o.valid | self.o.ready)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(self.i.valid & self.i.ready):
            with m.If(completes_pixel):
                m.d.sync += [
                    self.o.payload.data.eq(Cat(partial, self.i.payload)),
                    self.o.payload.sof.eq((column == 0) & (row == 0)),
                    self.o.payload.eol.eq(column == self.width - 1),
                    self.o.valid.eq(1),
                    byte_index.eq(0),
                ]
                with m.If(column == self.width - 1):
                    m.d.sync += [column.eq(0), row.eq(Mux(row == self.height - 1, 0, row + 1))]
                with m.Else():
                    m.d.sync += column.eq(column + 1)
            with m.Else():
                m.d.sync += byte_index.eq(byte_index + 1)
                if n > 1:
                    m.d.sync += partial.word_select(byte_index, 8).eq(self.i.payload)
        return m


class PixelsToBytes(wiring.Component):
    """Pixel stream ``i`` -> byte stream ``o`` (``sof``/``eol`` are not transmitted).

    Latency: 1 clock from a pixel transfer to its first byte on ``o``. Throughput: one byte per
    clock; the next pixel is accepted in the same clock as the last byte of the current one
    leaves (``i.ready`` depends on ``o.ready`` then). Memory: one pixel shift register.
    """

    def __init__(self, fmt: PixelFormat):
        self.bytes_per_pixel = bytes_per_pixel(fmt)
        self.fmt = fmt
        super().__init__({
            "i": In(pixel_stream_signature(fmt)),
            "o": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.bytes_per_pixel

        shift = Signal(8 * n)
        bytes_left = Signal(range(n + 1))

        m.d.comb += [
            self.o.payload.eq(shift[:8]),
            self.o.valid.eq(bytes_left != 0),
            self.i.ready.eq((bytes_left == 0) | ((bytes_left == 1) & self.o.ready)),
        ]

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(self.i.payload.data), bytes_left.eq(n)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [shift.eq(shift >> 8), bytes_left.eq(bytes_left - 1)]
        return m
