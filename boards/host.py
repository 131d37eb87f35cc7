"""Host side of the UART image bridge: the link's framing, the flow-control plan and running
a frame on a board.

Output bytes
------------
The link carries the bytes of the pipeline hardware's output stream, each pixel as
:mod:`rasterflow.hdl.serdes` cuts it into bytes (channels in order, little-endian, two's
complement). With one output these are exactly that output's frame bytes. Several outputs
of one frame size leave in lockstep: an output pixel is each output's pixel in
``pipeline.outputs`` order, and a frame ``out_H x out_W`` such pixels in raster order.
Outputs of different frame sizes leave in sequence
(:class:`~rasterflow.hdl.graph.SequencedOutputs`): each output's whole frame in
``pipeline.outputs`` order, each pixel in the most channels of any output (a narrower
output's upper channels zero). :class:`OutputLayout` converts between those bytes and
``{name: frame}``; the board top, this host side and the emulator all take it from
:func:`link_plan`.

Framing
-------
Each frame travels with a CRC-32 trailer both ways (:mod:`rasterflow.hdl.link` has the byte
format): the host sends ``payload | crc32(payload)``, the board answers ``payload | length |
status | crc32(all before)``. The host checks, in this order, the board's CRC (else the
output was corrupted on the way back, and the trailer cannot be trusted either), the length
(else the board frames another pipeline's output) and the status (input CRC bad: the host's
bytes were corrupted on the way in; RX overflow or framing error: bytes were lost on the way
in). A lost byte leaves one side waiting: the host sees no byte for ``timeout`` seconds.

*Resync and retry:* when the link has been quiet both ways for :data:`RESYNC_GAP` seconds
the board resets its data path, so the next byte starts a new frame. After any failed check
or timeout the host stays quiet (discarding what still arrives) until the line has been
silent for ``RESYNC_GAP`` with margin, then sends the frame again, up to ``retries`` times.
Mid-frame the link is never that quiet: the host sends as soon as its window allows, the
board as soon as it has output.

Flow control
------------
The board's UART receiver cannot stall the host, so the host must never have more bytes in
the board's RX FIFO than it holds. The host cannot see the FIFO, but it sees the output bytes
coming back, and output implies consumed input:

*Assumption (pipeline causality):* output row ``r`` depends on input row
``floor(r * H / out_H)`` through its last pixel, so it cannot be complete before the
pipeline has taken that whole input row. After ``k >= 1`` complete output rows have arrived,
the board has therefore drained at least ``floor((k - 1) * H / out_H) + 1`` input rows from
its RX FIFO (:meth:`LinkPlan.consumed_lower_bound`). For outputs in sequence, ``out_H`` and
the rows counted are the first output's (the rows of the others prove no more input taken
than the first output's whole frame does).

*Rule:* the host sends byte ``s`` of the frame's input stream (payload, then its 4-byte
trailer) only while ``s < consumed_lower_bound + window``, with ``window`` equal to the RX
FIFO depth. The FIFO then holds at most ``sent - consumed <= window`` bytes whatever the
pipeline or the TX side does: output backing up into the pipeline merely stalls the
pipeline's input, the host then stops receiving and so stops sending, and nothing is
dropped. The TX FIFO therefore only smooths the pipeline's bursts; its depth does not enter
the safety argument. The worst case for the RX side is a pipeline whose output has more
bytes per pixel than its input (the TX UART is then the bottleneck and the pipeline stalls
most of the time); the rule holds there too because it never counts on the pipeline
draining. The next frame starts only after the board's trailer has arrived, and the board
sends its trailer only after it has taken the input trailer: frames never share the FIFO.

*Liveness:* producing output row ``k`` needs input up to row
``ceil((k + 1) * H / out_H) + latency_lines`` (plus one row of slack for implementations
that emit a line's last pixels only when the next line starts), and the host may already
have sent ``floor((k - 1) * H / out_H) + 1`` rows plus the window. So a window of
``latency_lines + 2 + 2 * ceil(H / out_H)`` input rows never lets the host wait for output
that needs input it has not sent; :func:`link_plan` computes it (all ``H`` rows if fewer)
and adds the 4 trailer bytes. Once the whole output payload has arrived, the bound is at
least ``H - ceil(H / out_H)`` rows, so the window lets the trailer out too. The board top
sizes its RX FIFO from the same plan. Outputs in sequence keep this argument for the first
output: it leaves first, and nothing stalls it within a frame (the others wait in
one-frame buffers; ``latency_lines`` is its latency). Once its frame has arrived the
window lets the whole input and trailer out, and the other outputs need no more.
"""
import math
import time
import zlib
from dataclasses import dataclass

import numpy as np
import serial

from ..hdl.link import (IN_TRAILER_BYTES, OUT_TRAILER_BYTES, STATUS_FRAMING_ERROR,
                        STATUS_INPUT_CRC_BAD, STATUS_RX_OVERFLOW)
from ..hdl.payload import outputs_in_sequence, sequenced_format
from ..hdl.serdes import bytes_per_pixel

__all__ = ["RESYNC_GAP", "OutputLayout", "LinkPlan", "link_plan", "frame_to_bytes",
           "bytes_to_frame", "input_stream", "output_trailer", "check_answer", "LinkError",
           "BoardTimeoutError", "FrameCheckError", "run_on_board"]

#: Seconds of silence in both directions after which the board resets its data path.
RESYNC_GAP = 0.2


@dataclass(frozen=True)
class OutputLayout:
    """A pipeline's outputs on the link (see "Output bytes" above): ``formats`` maps each
    output's name to its :class:`PixelFormat`, in ``pipeline.outputs`` order; ``height x
    width`` is the first output's frame, and every output's unless ``shapes`` (name ->
    ``(height, width)``) says otherwise: outputs of different sizes leave in sequence."""
    formats: dict
    height: int
    width: int
    shapes: dict = None

    @classmethod
    def of(cls, pipeline):
        bounds = {name: pipeline.output(name) for name in pipeline.outputs}
        shapes = {name: (b.out_height, b.out_width) for name, b in bounds.items()}
        first = next(iter(shapes.values()))
        return cls(dict(pipeline.output_formats), *first, shapes)

    @property
    def single(self):
        return len(self.formats) == 1

    @property
    def frame_shapes(self):
        """Each output's ``(height, width)``."""
        return self.shapes or {name: (self.height, self.width) for name in self.formats}

    @property
    def sequenced(self):
        """Whether the outputs leave one whole frame after another (their sizes differ)."""
        return outputs_in_sequence(self.frame_shapes.values())

    @property
    def stream_formats(self):
        """What the pipeline hardware's ``o`` carries, as the serdes take it: the output's
        format, for several outputs of one size the mapping (a joined stream), for outputs
        in sequence their :func:`~rasterflow.hdl.payload.sequenced_format`."""
        if self.sequenced:
            return sequenced_format(self.formats)
        return next(iter(self.formats.values())) if self.single else self.formats

    @property
    def bytes_per_pixel(self):
        return bytes_per_pixel(self.stream_formats)

    @property
    def parts(self):
        """The frame's bytes as consecutive blocks of whole rows, ``(rows, row_bytes)`` each:
        one block of every output's rows pixel by pixel (one frame size), or one block per
        output in order (in sequence)."""
        if not self.sequenced:
            return [(self.height, self.width * self.bytes_per_pixel)]
        return [(height, width * self.bytes_per_pixel)
                for height, width in self.frame_shapes.values()]

    @property
    def frame_bytes(self):
        return sum(rows * row_bytes for rows, row_bytes in self.parts)

    def to_bytes(self, outputs) -> bytes:
        """The link bytes of ``{name: frame}``: for outputs of one frame size any number of
        rows, the same for all; for outputs in sequence their whole frames."""
        if self.sequenced:
            wide = self.stream_formats
            return b"".join(frame_to_bytes(wide, _padded(outputs[name], wide.channels))
                            for name in self.formats)
        pixels = [np.frombuffer(frame_to_bytes(fmt, outputs[name]), np.uint8)
                  .reshape(-1, bytes_per_pixel(fmt)) for name, fmt in self.formats.items()]
        return np.concatenate(pixels, axis=1).tobytes()

    def from_bytes(self, data: bytes) -> dict:
        """``{name: height x width x C frame}`` from a frame's link bytes."""
        if self.sequenced:
            return self._from_sequenced_bytes(data)
        pixels = np.frombuffer(data, np.uint8).reshape(self.height * self.width,
                                                       self.bytes_per_pixel)
        frames, start = {}, 0
        for name, fmt in self.formats.items():
            end = start + bytes_per_pixel(fmt)
            frames[name] = bytes_to_frame(fmt, pixels[:, start:end].tobytes(), self.height,
                                          self.width)
            start = end
        return frames

    def _from_sequenced_bytes(self, data):
        wide = self.stream_formats
        frames, start = {}, 0
        for (name, fmt), (height, width) in zip(self.formats.items(),
                                                self.frame_shapes.values()):
            end = start + height * width * self.bytes_per_pixel
            frames[name] = bytes_to_frame(wide, data[start:end], height,
                                          width)[:, :, :fmt.channels].copy()
            start = end
        return frames

    def result(self, outputs):
        """``outputs`` as :func:`run_on_board` returns them: the frame of a single output,
        else the ``{name: frame}`` dict itself."""
        return next(iter(outputs.values())) if self.single else outputs

    def named(self, result):
        """The inverse of :meth:`result`: ``{name: frame}``."""
        return {next(iter(self.formats)): result} if self.single else result


def _padded(frame, channels):
    """An ``H x W x C`` (or ``H x W``) frame with zero channels appended up to ``channels``."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return np.pad(frame, ((0, 0), (0, 0), (0, channels - frame.shape[2])))


@dataclass(frozen=True)
class LinkPlan:
    """Byte counts of one frame over the UART link, the host's send window and the output
    bytes' layout. ``out_height`` and ``out_row_bytes`` are the first output's (all the
    outputs' rows when they leave in lockstep), the rows the flow control counts."""
    output: OutputLayout
    in_bytes_per_pixel: int
    out_bytes_per_pixel: int
    height: int
    out_height: int
    in_row_bytes: int
    out_row_bytes: int
    window_rows: int

    @property
    def in_frame_bytes(self):
        return self.in_row_bytes * self.height

    @property
    def out_frame_bytes(self):
        return self.output.frame_bytes

    @property
    def in_stream_bytes(self):
        """Input payload and trailer."""
        return self.in_frame_bytes + IN_TRAILER_BYTES

    @property
    def out_stream_bytes(self):
        """Output payload and trailer."""
        return self.out_frame_bytes + OUT_TRAILER_BYTES

    @property
    def window(self):
        """Input bytes the host may have in flight beyond the consumed lower bound; equal to
        the board's RX FIFO depth."""
        return self.window_rows * self.in_row_bytes + IN_TRAILER_BYTES

    def consumed_lower_bound(self, received):
        """Input bytes the board has certainly taken from its RX FIFO, given ``received``
        output bytes of the current frame."""
        rows_out = min(received, self.out_row_bytes * self.out_height) // self.out_row_bytes
        if rows_out == 0:
            return 0
        rows_in = (rows_out - 1) * self.height // self.out_height + 1
        return rows_in * self.in_row_bytes

    def send_limit(self, received):
        """How many bytes of the frame's input stream the host may have sent in total."""
        return min(self.in_stream_bytes, self.consumed_lower_bound(received) + self.window)


def link_plan(pipeline) -> LinkPlan:
    latency_lines = pipeline.latency_lines
    if not isinstance(latency_lines, int) or latency_lines < 0:
        raise ValueError(f"pipeline latency_lines must be a non-negative integer, "
                         f"not {latency_lines!r}")
    output = OutputLayout.of(pipeline)
    in_bpp = bytes_per_pixel(pipeline.input_format)
    window_rows = min(pipeline.height,
                      latency_lines + 2 + 2 * math.ceil(pipeline.height / output.height))
    return LinkPlan(
        output=output,
        in_bytes_per_pixel=in_bpp,
        out_bytes_per_pixel=output.bytes_per_pixel,
        height=pipeline.height,
        out_height=output.height,
        in_row_bytes=pipeline.width * in_bpp,
        out_row_bytes=output.width * output.bytes_per_pixel,
        window_rows=window_rows,
    )


def frame_to_bytes(fmt, frame) -> bytes:
    """Raster order, channel 0 first, each channel little-endian (the serdes byte order)."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] != fmt.channels:
        raise ValueError(f"frame has {frame.shape[2]} channels, format {fmt} has "
                         f"{fmt.channels}")
    if frame.size and (frame.min() < fmt.min or frame.max() > fmt.max):
        raise ValueError(f"frame values {frame.min()}..{frame.max()} do not fit {fmt}")
    return frame.astype(fmt.np_dtype.newbyteorder("<")).tobytes()


def bytes_to_frame(fmt, data: bytes, height, width) -> np.ndarray:
    frame = np.frombuffer(data, dtype=fmt.np_dtype.newbyteorder("<"))
    return frame.reshape(height, width, fmt.channels).astype(fmt.np_dtype)


def input_stream(payload: bytes) -> bytes:
    """An input frame as sent: ``payload`` and its CRC-32 (little-endian)."""
    return payload + zlib.crc32(payload).to_bytes(4, "little")


def output_trailer(payload: bytes, status: int) -> bytes:
    """The board's trailer after output ``payload``: length, ``status``, CRC-32 of both and
    the payload."""
    head = len(payload).to_bytes(4, "little") + bytes([status])
    return head + zlib.crc32(head, zlib.crc32(payload)).to_bytes(4, "little")


class LinkError(Exception):
    """A frame could not be carried over the serial link intact."""


class BoardTimeoutError(LinkError, TimeoutError):
    """No byte arrived for the timeout."""


class FrameCheckError(LinkError):
    """A complete answer failed its CRC, length or status check."""


_STATUS_NAMES = ((STATUS_INPUT_CRC_BAD, "input CRC bad (the host's bytes were corrupted on "
                                        "the way in)"),
                 (STATUS_RX_OVERFLOW, "RX overflow (input bytes lost)"),
                 (STATUS_FRAMING_ERROR, "UART framing error (input bytes lost)"))


def check_answer(plan, answer: bytes) -> bytes:
    """The output payload of ``answer`` (payload and trailer, ``plan.out_stream_bytes``
    long), or :class:`FrameCheckError` naming the check that failed."""
    n = plan.out_frame_bytes
    head, crc = answer[:n + 5], int.from_bytes(answer[n + 5:], "little")
    ours = zlib.crc32(head)
    if ours != crc:
        raise FrameCheckError(f"output corrupted on the way back: CRC-32 of the {n + 5} "
                              f"received bytes is {ours:08x}, the board's trailer says "
                              f"{crc:08x}")
    length, status = int.from_bytes(head[n:n + 4], "little"), head[n + 4]
    if length != n:
        raise FrameCheckError(f"the board framed {length} output bytes, this pipeline makes "
                              f"{n}: is the board loaded with another pipeline?")
    if status:
        problems = [name for bit, name in _STATUS_NAMES if status & bit]
        raise FrameCheckError(f"board status {status:#04x}: " + "; ".join(
            problems or ["unknown bits"]))
    return head[:n]


def _check_frame_shape(pipeline, frame):
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    expected = (pipeline.height, pipeline.width, pipeline.input_format.channels)
    if frame.shape != expected:
        raise ValueError(f"frame shape {frame.shape} does not match the pipeline's input "
                         f"{expected} (H x W x C)")
    return frame


def run_on_board(pipeline, frame, port, baud, timeout=2.0, retries=2,
                 report=lambda message: None):
    """Send ``frame`` through the board on serial ``port`` and return its verified output.

    Input is sent with its CRC trailer within the flow-control window of :func:`link_plan`;
    the answer's CRC, length and status are checked (:func:`check_answer`). ``timeout`` is the
    longest time in seconds to wait without receiving any byte. A failed check or a timeout
    is passed to ``report`` and the frame sent again after a quiet :data:`RESYNC_GAP`, up to
    ``retries`` times; then :class:`BoardTimeoutError` or :class:`FrameCheckError` (of the
    last attempt) says what happened and how many bytes arrived. Returns the output,
    ``out_H x out_W x out_C`` of its format's dtype, or for a pipeline with several outputs
    ``{name: frame}`` of every output (:meth:`OutputLayout.result`).
    """
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    frame = _check_frame_shape(pipeline, frame)
    plan = link_plan(pipeline)
    to_send = input_stream(frame_to_bytes(pipeline.input_format, frame))
    attempts = retries + 1
    with serial.Serial(port, baud, timeout=0.01, write_timeout=timeout) as link:
        link.reset_input_buffer()
        for attempt in range(1, attempts + 1):
            try:
                payload = check_answer(plan, _exchange(link, plan, to_send, timeout))
            except LinkError as error:
                if attempt == attempts:
                    raise type(error)(f"board on {port}, attempt {attempt} of {attempts}: "
                                      f"{error}") from None
                report(f"attempt {attempt} of {attempts} failed: {error}; resending after "
                       f"{RESYNC_GAP:g} s of quiet")
                _wait_for_quiet(link)
            else:
                return plan.output.result(plan.output.from_bytes(payload))


def _exchange(link, plan, to_send, timeout):
    """Send one input stream within the window; return the board's whole answer."""
    expected = plan.out_stream_bytes
    received = bytearray()
    sent = 0
    last_progress = time.monotonic()
    while len(received) < expected:
        limit = plan.send_limit(len(received))
        if sent < limit:
            sent += link.write(to_send[sent:limit])
            link.flush()
        chunk = link.read(min(max(link.in_waiting, 1), expected - len(received)))
        if chunk:
            received += chunk
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > timeout:
            raise BoardTimeoutError(
                f"stopped answering: received {len(received)} of {expected} bytes "
                f"({plan.out_frame_bytes} output + {OUT_TRAILER_BYTES} trailer) after sending "
                f"{sent} of {len(to_send)} ({plan.in_frame_bytes} input + {IN_TRAILER_BYTES} "
                f"trailer) ({timeout:g} s without data)")
    return bytes(received)


def _wait_for_quiet(link):
    """Discard incoming bytes until none has come for 1.5 x :data:`RESYNC_GAP` (the board
    has then reset its data path)."""
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 1.5 * RESYNC_GAP:
        if link.read(max(link.in_waiting, 1)):
            quiet_since = time.monotonic()
