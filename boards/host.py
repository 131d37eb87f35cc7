"""Host side of the UART image bridge: the flow-control plan and running a frame on a board.

Flow control
------------
The board's UART receiver cannot stall the host, so the host must never have more bytes in
the board's RX FIFO than it holds. The host cannot see the FIFO, but it sees the output bytes
coming back, and output implies consumed input:

*Assumption (pipeline causality):* output row ``r`` depends on input row
``floor(r * H / out_H)`` through its last pixel, so it cannot be complete before the
pipeline has taken that whole input row. After ``k >= 1`` complete output rows have arrived,
the board has therefore drained at least ``floor((k - 1) * H / out_H) + 1`` input rows from
its RX FIFO (:meth:`LinkPlan.consumed_lower_bound`).

*Rule:* the host sends input byte ``s`` only while ``s < consumed_lower_bound + window``,
with ``window`` equal to the RX FIFO depth. The FIFO then holds at most ``sent - consumed <=
window`` bytes whatever the pipeline or the TX side does: output backing up into the pipeline
merely stalls the pipeline's input, the host then stops receiving and so stops sending, and
nothing is dropped. The TX FIFO therefore only smooths the pipeline's bursts; its depth does
not enter the safety argument. The worst case for the RX side is a pipeline whose output
has more bytes per pixel than its input (the TX UART is then the bottleneck and the pipeline
stalls most of the time); the rule holds there too because it never counts on the pipeline
draining.

*Liveness:* producing output row ``k`` needs input up to row
``ceil((k + 1) * H / out_H) + latency_lines`` (plus one row of slack for implementations
that emit a line's last pixels only when the next line starts), and the host may already
have sent ``floor((k - 1) * H / out_H) + 1`` rows plus the window. So a window of
``latency_lines + 2 + 2 * ceil(H / out_H)`` input rows never lets the host wait for output
that needs input it has not sent. :func:`link_plan` computes it; the board top sizes its RX
FIFO from the same plan.
"""
import math
import time
from dataclasses import dataclass

import numpy as np
import serial

from ..hdl.serdes import bytes_per_pixel

__all__ = ["LinkPlan", "link_plan", "frame_to_bytes", "bytes_to_frame", "BoardTimeoutError",
           "run_on_board"]


@dataclass(frozen=True)
class LinkPlan:
    """Byte counts of one frame over the UART link and the host's send window."""
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
        return self.out_row_bytes * self.out_height

    @property
    def window(self):
        """Input bytes the host may have in flight beyond the consumed lower bound; equal to
        the board's RX FIFO depth."""
        return self.window_rows * self.in_row_bytes

    def consumed_lower_bound(self, received):
        """Input bytes the board has certainly taken from its RX FIFO, given ``received``
        output bytes of the current frame."""
        rows_out = received // self.out_row_bytes
        if rows_out == 0:
            return 0
        rows_in = (rows_out - 1) * self.height // self.out_height + 1
        return rows_in * self.in_row_bytes

    def send_limit(self, received):
        """How many input bytes of the frame the host may have sent in total."""
        return min(self.in_frame_bytes, self.consumed_lower_bound(received) + self.window)


def link_plan(pipeline) -> LinkPlan:
    latency_lines = pipeline.latency_lines
    if not isinstance(latency_lines, int) or latency_lines < 0:
        raise ValueError(f"pipeline latency_lines must be a non-negative integer, "
                         f"not {latency_lines!r}")
    in_bpp = bytes_per_pixel(pipeline.input_format)
    out_bpp = bytes_per_pixel(pipeline.output_format)
    window_rows = min(pipeline.height,
                      latency_lines + 2 + 2 * math.ceil(pipeline.height / pipeline.out_height))
    return LinkPlan(
        in_bytes_per_pixel=in_bpp,
        out_bytes_per_pixel=out_bpp,
        height=pipeline.height,
        out_height=pipeline.out_height,
        in_row_bytes=pipeline.width * in_bpp,
        out_row_bytes=pipeline.out_width * out_bpp,
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


class BoardTimeoutError(TimeoutError):
    pass


def _check_frame_shape(pipeline, frame):
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    expected = (pipeline.height, pipeline.width, pipeline.input_format.channels)
    if frame.shape != expected:
        raise ValueError(f"frame shape {frame.shape} does not match the pipeline's input "
                         f"{expected} (H x W x C)")
    return frame


def run_on_board(pipeline, frame, port, baud, timeout=2.0) -> np.ndarray:
    """Send ``frame`` through the board on serial ``port`` and return its output frame.

    Input is sent within the flow-control window of :func:`link_plan`. ``timeout`` is the
    longest time in seconds to wait without receiving any byte; after it a
    :class:`BoardTimeoutError` says how many of the expected bytes arrived (a board that lost
    input bytes never completes the frame). Returns ``out_H x out_W x out_C`` of the output
    format's dtype.
    """
    frame = _check_frame_shape(pipeline, frame)
    plan = link_plan(pipeline)
    payload = frame_to_bytes(pipeline.input_format, frame)
    expected = plan.out_frame_bytes
    received = bytearray()
    sent = 0
    with serial.Serial(port, baud, timeout=0.01, write_timeout=timeout) as link:
        link.reset_input_buffer()
        last_progress = time.monotonic()
        while len(received) < expected:
            limit = plan.send_limit(len(received))
            if sent < limit:
                sent += link.write(payload[sent:limit])
                link.flush()
            chunk = link.read(min(max(link.in_waiting, 1), expected - len(received)))
            if chunk:
                received += chunk
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > timeout:
                raise BoardTimeoutError(
                    f"board on {port} stopped answering: received {len(received)} of "
                    f"{expected} output bytes after sending {sent} of "
                    f"{plan.in_frame_bytes} input bytes ({timeout:g} s without data)")
    return bytes_to_frame(pipeline.output_format, bytes(received),
                          pipeline.out_height, pipeline.out_width)
