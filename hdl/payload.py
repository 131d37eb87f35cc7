"""Stream payload layouts, defined once.

Every pixel stream in rasterflow carries a :func:`pixel_stream_layout` payload::

    data : ArrayLayout(channel_shape, channels)   # at the LSB; channel 0 first
    sof  : 1   # first pixel of a frame
    eol  : 1   # last pixel of a line

which is the AXI4-Stream-video convention (``sof`` = TUSER, ``eol`` = TLAST). With ``P``
pixels per clock (``lanes``), ``data`` is ``ArrayLayout(pixel, P)``: lane ``j`` of a line's
transfer ``g`` is pixel ``x = P*g + j``. A line of ``W`` pixels takes ``ceil(W / P)``
transfers; in the last one, lanes at ``x >= W`` are padding: ignored on input, and of no
defined value on output. ``sof`` marks a frame's first transfer, ``eol`` each line's last.

Host software packs and unpacks payloads with :func:`pack_pixels` / :func:`unpack_pixels`,
which take every offset and width from the layout object itself.

Several outputs leave a pipeline as one stream: in lockstep when their frames have one size
(a :func:`joined_stream_layout` payload: :func:`pack_joined` / :func:`unpack_joined`), else
in sequence, each output's whole frame after the previous one's in pixels of
:func:`sequenced_format` (:func:`pack_sequenced` / :func:`unpack_sequenced`).
"""
import numpy as np
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, stream

from ..golden.pixel import PixelFormat

__all__ = ["channel_shape", "pixel_layout", "pixel_stream_layout", "pixel_stream_signature",
           "joined_stream_layout", "joined_stream_signature", "pack_pixels", "unpack_pixels",
           "pack_joined", "unpack_joined", "outputs_in_sequence", "sequenced_format",
           "pack_sequenced", "unpack_sequenced", "sequenced_words",
           "lanes_of", "lane", "transfers_per_line"]


def channel_shape(fmt: PixelFormat) -> Shape:
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def pixel_layout(fmt: PixelFormat) -> data.ArrayLayout:
    return data.ArrayLayout(channel_shape(fmt), fmt.channels)


def lanes_of(shape, lanes):
    """``shape`` itself for one lane, else ``lanes`` of it."""
    return shape if lanes == 1 else data.ArrayLayout(shape, lanes)


def lane(value, index, lanes):
    """Lane ``index`` of a value shaped by :func:`lanes_of`."""
    return value if lanes == 1 else value[index]


def transfers_per_line(width, lanes):
    return -(-width // lanes)


def pixel_stream_layout(fmt: PixelFormat, lanes=1) -> data.StructLayout:
    return data.StructLayout({
        "data": lanes_of(pixel_layout(fmt), lanes),
        "sof": 1,
        "eol": 1,
    })


def pixel_stream_signature(fmt: PixelFormat, lanes=1) -> stream.Signature:
    return stream.Signature(pixel_stream_layout(fmt, lanes))


def joined_stream_layout(formats, lanes=1) -> data.StructLayout:
    """The payload of several pixel streams taken in lockstep (a join)::

        data : lanes_of(StructLayout({name: pixel_layout(fmt) for name, fmt in formats}), P)
        sof  : 1
        eol  : 1

    ``formats`` maps each joined stream's name (``"a"``, ``"b"``, ...) to its
    :class:`PixelFormat`, in field order. Lanes are outermost, so a datapath for one pixel
    (``payload.data.a``, ``payload.data.b``) runs per lane under
    :func:`~rasterflow.hdl.stall.per_lane` like any other.
    """
    pixel = data.StructLayout({name: pixel_layout(fmt) for name, fmt in formats.items()})
    return data.StructLayout({"data": lanes_of(pixel, lanes), "sof": 1, "eol": 1})


def joined_stream_signature(formats, lanes=1) -> stream.Signature:
    return stream.Signature(joined_stream_layout(formats, lanes))


def _channel_fields(fmt, lanes):
    """The layout and, per (lane, channel), the bit offset of its value."""
    layout = pixel_stream_layout(fmt, lanes)
    data_field = layout["data"]
    pixel = data_field.shape if lanes == 1 else data_field.shape.elem_shape
    elem_width = Shape.cast(pixel.elem_shape).width
    pixel_width = Shape.cast(pixel).width
    offsets = [[data_field.offset + j * pixel_width + ch * elem_width
                for ch in range(fmt.channels)] for j in range(lanes)]
    return layout, elem_width, offsets


def pack_pixels(fmt: PixelFormat, frame: np.ndarray, lanes=1) -> list[int]:
    """Pack an ``H x W x C`` frame into payload integers, one per transfer, in raster order.

    ``sof`` is set on the first transfer and ``eol`` on the last transfer of each line;
    padding lanes of a line's last transfer are zero.
    """
    layout, elem_width, offsets = _channel_fields(fmt, lanes)
    frame = _hwc(frame, fmt)
    words = _pack_values(frame, elem_width, offsets, lanes)
    return _with_markers(words, layout, *frame.shape[:2], lanes)


def pack_joined(formats, frames, lanes=1) -> list[int]:
    """Pack ``{name: H x W x C frame}`` (one frame per joined stream, one size) into
    :func:`joined_stream_layout` payload integers, as :func:`pack_pixels` does per stream."""
    layout = joined_stream_layout(formats, lanes)
    words = 0
    for name, (elem_width, offsets) in _joined_fields(formats, lanes).items():
        frame = _hwc(frames[name], formats[name])
        words = words + _pack_values(frame, elem_width, offsets, lanes)
    return _with_markers(words, layout, *frame.shape[:2], lanes)


def outputs_in_sequence(sizes) -> bool:
    """Whether outputs of frame sizes ``sizes`` (any iterable of sizes) leave in sequence:
    when their sizes differ (else in lockstep, or alone)."""
    return len(set(map(tuple, sizes))) > 1


def sequenced_format(formats) -> PixelFormat:
    """The pixel of a sequenced stream of outputs (``formats``: name -> :class:`PixelFormat`,
    every one of the same dtype): that dtype, with the most channels of any output. An
    output of fewer channels fills the lower ones; its upper channels are zero."""
    formats = dict(formats)
    dtypes = sorted({fmt.dtype for fmt in formats.values()})
    if len(dtypes) != 1:
        listed = ", ".join(f"{name} is {fmt}" for name, fmt in formats.items())
        raise ValueError(f"outputs in sequence need one pixel dtype, not {' and '.join(dtypes)}: "
                         f"{listed}")
    return PixelFormat(max(fmt.channels for fmt in formats.values()), dtypes[0])


def _padded(frame, fmt, channels):
    """``frame`` (of ``fmt``) with zero channels appended up to ``channels``."""
    frame = _hwc(frame, fmt)
    return np.pad(frame, ((0, 0), (0, 0), (0, channels - frame.shape[2])))


def pack_sequenced(formats, frames, lanes=1) -> list[int]:
    """Pack ``{name: frame}`` (``formats``' order, any sizes) as a sequenced stream: each
    frame, its channels padded to :func:`sequenced_format`'s, as :func:`pack_pixels` packs it
    (``sof`` on its first transfer, ``eol`` on its lines' last), one frame after another."""
    wide = sequenced_format(formats)
    return [word for name, fmt in formats.items()
            for word in pack_pixels(wide, _padded(frames[name], fmt, wide.channels), lanes)]


def sequenced_words(sizes, lanes=1):
    """Transfers of each output's frame in a sequenced stream: name -> ``ceil(W/P) * H`` for
    ``sizes``: name -> ``(width, height)``."""
    return {name: transfers_per_line(width, lanes) * height
            for name, (width, height) in sizes.items()}


def unpack_sequenced(formats, words, sizes, lanes=1):
    """Unpack a sequenced stream's payload integers (one frame of every output) into
    ``({name: frame}, {name: sof}, {name: eol})``, each as :func:`unpack_pixels` gives it
    for that output's ``(width, height)`` in ``sizes`` (the padding channels dropped)."""
    wide = sequenced_format(formats)
    words = list(words)
    counts = sequenced_words(sizes, lanes)
    if len(words) != sum(counts.values()):
        raise ValueError(f"expected {sum(counts.values())} payloads, got {len(words)}")
    frames, sofs, eols = {}, {}, {}
    start = 0
    for name, fmt in formats.items():
        width, height = sizes[name]
        frame, sofs[name], eols[name] = unpack_pixels(
            wide, words[start:start + counts[name]], height, width, lanes)
        frames[name] = frame[:, :, :fmt.channels]
        start += counts[name]
    return frames, sofs, eols


def _hwc(frame, fmt):
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] != fmt.channels:
        raise ValueError(f"frame has {frame.shape[2]} channels, format {fmt} has "
                         f"{fmt.channels}")
    return frame


def _pack_values(frame, elem_width, offsets, lanes):
    """Each value's two's complement at its offset, lines padded to whole transfers."""
    height, width, channels = frame.shape
    groups = transfers_per_line(width, lanes)
    mask = (1 << elem_width) - 1
    values = np.zeros((height, groups * lanes, channels), np.int64)
    values[:, :width] = frame.astype(np.int64) & mask
    values = values.reshape(height * groups, lanes, channels)
    words = np.zeros(height * groups, dtype=object)
    for j in range(lanes):
        for ch in range(channels):
            words = words + (values[:, j, ch].astype(object) << offsets[j][ch])
    return words


def _with_markers(words, layout, height, width, lanes):
    groups = transfers_per_line(width, lanes)
    sof = np.zeros(height * groups, dtype=object)
    sof[0] = 1
    eol = np.zeros((height, groups), dtype=object)
    eol[:, -1] = 1
    words = words + (sof << layout["sof"].offset) + (eol.reshape(-1) << layout["eol"].offset)
    return [int(w) for w in words]


def _joined_fields(formats, lanes):
    """Per joined stream, its channel width and the bit offset of each (lane, channel)."""
    data_field = joined_stream_layout(formats, lanes)["data"]
    pixel = data_field.shape if lanes == 1 else data_field.shape.elem_shape
    pixel_width = Shape.cast(pixel).width
    fields = {}
    for name, fmt in formats.items():
        elem_width = Shape.cast(channel_shape(fmt)).width
        base = data_field.offset + pixel[name].offset
        fields[name] = (elem_width, [[base + j * pixel_width + ch * elem_width
                                      for ch in range(fmt.channels)] for j in range(lanes)])
    return fields


def unpack_pixels(fmt: PixelFormat, words, height: int, width: int, lanes=1):
    """Unpack payload integers into ``(frame, sof, eol)``.

    ``frame`` is ``H x W x C`` of ``fmt``'s numpy dtype (padding lanes dropped); ``sof`` and
    ``eol`` are ``H x ceil(W / lanes)`` bool arrays of the markers as received.
    """
    layout, elem_width, offsets = _channel_fields(fmt, lanes)
    packed = _packed(words, height, width, lanes)
    return (_unpack_values(packed, fmt, elem_width, offsets, height, width, lanes),
            *_unpack_markers(packed, layout, height, width, lanes))


def unpack_joined(formats, words, height: int, width: int, lanes=1):
    """Unpack :func:`joined_stream_layout` payload integers into ``{name: frame}`` (as
    :func:`unpack_pixels` does per stream) and the shared ``sof``, ``eol`` arrays."""
    layout = joined_stream_layout(formats, lanes)
    packed = _packed(words, height, width, lanes)
    frames = {name: _unpack_values(packed, formats[name], elem_width, offsets, height, width,
                                   lanes)
              for name, (elem_width, offsets) in _joined_fields(formats, lanes).items()}
    return frames, *_unpack_markers(packed, layout, height, width, lanes)


def _packed(words, height, width, lanes):
    words = list(words)
    groups = transfers_per_line(width, lanes)
    if len(words) != height * groups:
        raise ValueError(f"expected {height * groups} payloads, got {len(words)}")
    return np.array(words, dtype=object)


def _unpack_values(packed, fmt, elem_width, offsets, height, width, lanes):
    groups = transfers_per_line(width, lanes)
    mask = (1 << elem_width) - 1
    out = np.empty((height * groups, lanes, fmt.channels), dtype=np.int64)
    for j in range(lanes):
        for ch in range(fmt.channels):
            out[:, j, ch] = ((packed >> offsets[j][ch]) & mask).astype(np.int64)
    if fmt.signed:
        out = np.where(out >= (1 << (elem_width - 1)), out - (1 << elem_width), out)
    frame = out.reshape(height, groups * lanes, fmt.channels)[:, :width]
    return frame.astype(fmt.np_dtype)


def _unpack_markers(packed, layout, height, width, lanes):
    groups = transfers_per_line(width, lanes)
    sof = ((packed >> layout["sof"].offset) & 1).astype(bool).reshape(height, groups)
    eol = ((packed >> layout["eol"].offset) & 1).astype(bool).reshape(height, groups)
    return sof, eol
