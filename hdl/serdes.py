"""Adapters between byte streams and pixel streams.

On the byte side a pixel is its channels in order (channel 0 first), each channel
little-endian, two's complement for signed types: exactly the bit order of the payload's
``data`` field (an array of channels at the LSB), cut into bytes from the LSB up. Host code
produces the same order with ``frame.astype(fmt.np_dtype.newbyteorder("<")).tobytes()``.

:class:`PixelsToBytes` and :class:`LaneUnpacker` also take a joined pixel, given as a
mapping of names to formats (the payload of
:func:`~rasterflow.hdl.payload.joined_stream_layout`): its ``data`` is a struct whose first
field sits at the LSB, so on the byte side a joined pixel is each field's pixel, as above,
in field order.
"""
from collections.abc import Mapping

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.pixel import PixelFormat
from .payload import (joined_stream_layout, lanes_of, pixel_layout, pixel_stream_layout,
                      pixel_stream_signature)

__all__ = ["bytes_per_pixel", "payload_layout", "BytesToPixels", "PixelsToBytes",
           "LanePacker", "LaneUnpacker"]


def _formats(fmt):
    """The formats of a pixel (one) or of a joined pixel (each field's), checked."""
    formats = list(fmt.values()) if isinstance(fmt, Mapping) else [fmt]
    if not formats:
        raise ValueError("a joined pixel needs at least one format")
    for each in formats:
        if not isinstance(each, PixelFormat):
            raise TypeError(f"expected a PixelFormat or a mapping of names to PixelFormats, "
                            f"not {each!r}")
    return formats


def payload_layout(fmt, lanes=1):
    """The stream payload carrying pixels of ``fmt`` with ``lanes`` pixels per transfer:
    :func:`~rasterflow.hdl.payload.pixel_stream_layout` for a :class:`PixelFormat`,
    :func:`~rasterflow.hdl.payload.joined_stream_layout` for a non-empty mapping of names to
    PixelFormats (a joined pixel)."""
    _formats(fmt)
    if isinstance(fmt, Mapping):
        return joined_stream_layout(fmt, lanes)
    return pixel_stream_layout(fmt, lanes)


def bytes_per_pixel(fmt) -> int:
    """Bytes of one pixel of ``fmt`` (a format or a joined pixel, as :func:`payload_layout`
    takes) on the byte side; every channel must be whole bytes."""
    for each in _formats(fmt):
        if each.bits % 8:
            raise ValueError(f"pixel format {each} has {each.bits}-bit channels, not whole "
                             f"bytes")
    return Shape.cast(payload_layout(fmt)["data"].shape).width // 8


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
        if not isinstance(fmt, PixelFormat):
            raise TypeError(f"expected a PixelFormat, not {fmt!r}")
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

    ``fmt`` is a :class:`PixelFormat`, or a mapping of names to formats for a joined stream
    (see :func:`payload_layout`), whose pixel leaves as each field's bytes in field order.

    Latency: 1 clock from a pixel transfer to its first byte on ``o``. Throughput: one byte per
    clock; the next pixel is accepted in the same clock as the last byte of the current one
    leaves (``i.ready`` depends on ``o.ready`` then). Memory: one pixel shift register
    (:func:`bytes_per_pixel` bytes).
    """

    def __init__(self, fmt):
        self.bytes_per_pixel = bytes_per_pixel(fmt)
        self.fmt = fmt
        super().__init__({
            "i": In(stream.Signature(payload_layout(fmt))),
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


class LanePacker(wiring.Component):
    """One pixel per transfer -> ``lanes`` pixels per transfer, line by line.

    Lane ``j`` of a line's transfer ``g`` is pixel ``lanes * g + j``; a line's last transfer
    leaves when the line's last pixel arrives (its lanes past the line end are zero).
    ``sof``/``eol`` are regenerated from the lane geometry.

    Latency 1 cycle from the pixel that completes a transfer; one pixel per cycle in;
    ``lanes`` pixels of registers.
    """
    def __init__(self, fmt: PixelFormat, width: int, height: int, lanes: int):
        for name, value in (("width", width), ("height", height), ("lanes", lanes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.fmt, self.width, self.height, self.lanes = fmt, width, height, lanes
        super().__init__({"i": In(pixel_stream_signature(fmt)),
                          "o": Out(pixel_stream_signature(fmt, lanes))})

    def elaborate(self, platform):
        m = Module()
        lanes, width = self.lanes, self.width
        collected = Signal(lanes_of(pixel_layout(self.fmt), lanes))
        column = Signal(range(width))
        row = Signal(range(self.height))
        lane_index = Signal(range(lanes))
        line_end = column == width - 1
        completes = (lane_index == lanes - 1) | line_end
        m.d.comb += self.i.ready.eq(~completes | ~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(lane_index):
                for j in range(lanes):
                    with m.Case(j):
                        m.d.sync += collected[j].eq(self.i.payload.data)
            with m.If(completes):
                first = (column < lanes) & (row == 0)
                m.d.sync += [self.o.valid.eq(1), self.o.payload.sof.eq(first),
                             self.o.payload.eol.eq(line_end), lane_index.eq(0)]
                # Lanes not yet written this transfer are past the line end: zero them.
                for j in range(lanes):
                    m.d.sync += self.o.payload.data[j].eq(
                        Mux(lane_index == j, self.i.payload.data,
                            Mux(lane_index > j, collected[j], 0)))
            with m.Else():
                m.d.sync += lane_index.eq(lane_index + 1)
            with m.If(line_end):
                m.d.sync += [column.eq(0), row.eq(Mux(row == self.height - 1, 0, row + 1))]
            with m.Else():
                m.d.sync += column.eq(column + 1)
        return m


class LaneUnpacker(wiring.Component):
    """``lanes`` pixels per transfer -> one pixel per transfer, dropping each line's padding
    lanes (``lanes * ceil(W / lanes) - W`` of them, in its last transfer).

    ``fmt`` is a :class:`PixelFormat`, or a mapping of names to formats for a joined stream
    (see :func:`payload_layout`); a lane is then one joined pixel.

    One pixel per cycle out; latency 0 (``o`` is a view of the held input transfer);
    no memory beyond the lane counter.
    """
    def __init__(self, fmt, width: int, lanes: int):
        for name, value in (("width", width), ("lanes", lanes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.fmt, self.width, self.lanes = fmt, width, lanes
        super().__init__({"i": In(stream.Signature(payload_layout(fmt, lanes))),
                          "o": Out(stream.Signature(payload_layout(fmt)))})

    def elaborate(self, platform):
        m = Module()
        lanes, width = self.lanes, self.width
        last_lanes = width - lanes * (-(-width // lanes) - 1)
        lane_index = Signal(range(lanes))
        final_lane = Mux(self.i.payload.eol, lane_index == last_lanes - 1,
                         lane_index == lanes - 1)
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.data.eq(self.i.payload.data[lane_index]),
            self.o.payload.sof.eq(self.i.payload.sof & (lane_index == 0)),
            self.o.payload.eol.eq(self.i.payload.eol & final_lane),
            self.i.ready.eq(self.o.ready & final_lane),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += lane_index.eq(Mux(final_lane, 0, lane_index + 1))
        return m
