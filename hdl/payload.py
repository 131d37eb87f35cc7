"""Stream payload layouts, defined once.

Every pixel stream in rasterflow carries a :func:`pixel_stream_layout` payload::

    data : ArrayLayout(channel_shape, channels)   # at the LSB; channel 0 first
    sof  : 1   # first pixel of a frame
    eol  : 1   # last pixel of a line

which is the AXI4-Stream-video convention (``sof`` = TUSER, ``eol`` = TLAST). Host software
packs and unpacks payloads with :func:`pack_pixels` / :func:`unpack_pixels`, which take every
offset and width from the layout object itself.
"""
import numpy as np
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, stream

from ..golden.pixel import PixelFormat

__all__ = ["channel_shape", "pixel_layout", "pixel_stream_layout", "pixel_stream_signature",
           "pack_pixels", "unpack_pixels"]


def channel_shape(fmt: PixelFormat) -> Shape:
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def pixel_layout(fmt: PixelFormat) -> data.ArrayLayout:
    return data.ArrayLayout(channel_shape(fmt), fmt.channels)


def pixel_stream_layout(fmt: PixelFormat) -> data.StructLayout:
    return data.StructLayout({
        "data": pixel_layout(fmt),
        "sof": 1,
        "eol": 1,
    })


def pixel_stream_signature(fmt: PixelFormat) -> stream.Signature:
    return stream.Signature(pixel_stream_layout(fmt))


def _channel_fields(fmt):
    layout = pixel_stream_layout(fmt)
    data_field = layout["data"]
    elem = data_field.shape.elem_shape
    elem_width = Shape.cast(elem).width
    offsets = [data_field.offset + i * elem_width for i in range(fmt.channels)]
    return layout, elem_width, offsets


def pack_pixels(fmt: PixelFormat, frame: np.ndarray) -> list[int]:
    """Pack an ``H x W x C`` frame into payload integers, in raster order.

    ``sof`` is set on pixel (0, 0) and ``eol`` on the last pixel of each line.
    """
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    height, width, channels = frame.shape
    if channels != fmt.channels:
        raise ValueError(f"frame has {channels} channels, format {fmt} has {fmt.channels}")
    layout, elem_width, offsets = _channel_fields(fmt)
    mask = (1 << elem_width) - 1
    # Two's complement per channel, then place each field at its layout offset.
    values = frame.reshape(height * width, channels).astype(np.int64) & mask
    words = np.zeros(height * width, dtype=object)
    for ch, offset in enumerate(offsets):
        words = words + (values[:, ch].astype(object) << offset)
    sof = np.zeros(height * width, dtype=object)
    sof[0] = 1
    eol = np.zeros((height, width), dtype=object)
    eol[:, -1] = 1
    words = words + (sof << layout["sof"].offset) + (eol.reshape(-1) << layout["eol"].offset)
    return [int(w) for w in words]


def unpack_pixels(fmt: PixelFormat, words, height: int, width: int):
    """Unpack payload integers into ``(frame, sof, eol)``.

    ``frame`` is ``H x W x C`` of ``fmt``'s numpy dtype; ``sof`` and ``eol`` are ``H x W`` bool
    arrays of the markers as received.
    """
    words = list(words)
    if len(words) != height * width:
        raise ValueError(f"expected {height * width} payloads, got {len(words)}")
    layout, elem_width, offsets = _channel_fields(fmt)
    mask = (1 << elem_width) - 1
    out = np.empty((height * width, fmt.channels), dtype=np.int64)
    packed = np.array(words, dtype=object)
    for ch, offset in enumerate(offsets):
        out[:, ch] = ((packed >> offset) & mask).astype(np.int64)
    if fmt.signed:
        out = np.where(out >= (1 << (elem_width - 1)), out - (1 << elem_width), out)
    sof = ((packed >> layout["sof"].offset) & 1).astype(bool).reshape(height, width)
    eol = ((packed >> layout["eol"].offset) & 1).astype(bool).reshape(height, width)
    return out.reshape(height, width, fmt.channels).astype(fmt.np_dtype), sof, eol
