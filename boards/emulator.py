"""A board stand-in on a pseudo-terminal, for testing the host side without hardware.

:class:`BoardEmulator` opens a pty pair; the host opens :attr:`BoardEmulator.port` with
pyserial like a board's USB-UART. A thread reads input bytes and answers with the pipeline's
golden output bytes (every output, as :class:`~rasterflow.boards.host.OutputLayout` lays
them out), emitting each output row as soon as the input rows it may depend on have
arrived (``ceil((k + 1) * H / out_H) + latency_lines`` rows for output row ``k``, the
liveness assumption of :mod:`rasterflow.boards.host`) and, for outputs in sequence, the
outputs before it have left, so a host that keeps to its flow-control window makes progress
exactly as with a board. It frames like the board
(:mod:`rasterflow.hdl.link`): it takes the input CRC trailer, checks it, and appends length,
status and CRC once the input trailer is in and the output payload out; it resets a
half-done frame after :data:`~rasterflow.boards.host.RESYNC_GAP` seconds of quiet.
Frames follow each other.

It also checks the host's side of the contract: :attr:`window_violations` counts input bytes
that would have overflowed the board's RX FIFO (more than ``window`` bytes beyond the input
the emitted output proves consumed).

Faults to inject ("on the wire": the trailers describe the bytes the board meant to send):
``drop_input_every=n`` loses every n-th input byte (like an RX overflow: the frame never
completes), ``corrupt_input_every=n`` flips the low bit of every n-th input byte,
``stop_after=n`` stops answering after n output bytes, ``corrupt_output_every=n`` flips the
low bit of every n-th output byte. Counts run over all bytes since the emulator started;
``faulty_frames=k`` limits the drops and flips to the first ``k`` frames (a frame ends
with its trailer or a resync), a transient fault; ``stop_after`` is always permanent.
"""
import math
import os
import select
import threading
import time
import tty
import zlib

from ..hdl.link import STATUS_INPUT_CRC_BAD
from .host import RESYNC_GAP, bytes_to_frame, link_plan, output_trailer

__all__ = ["BoardEmulator"]


class BoardEmulator:
    def __init__(self, pipeline, *, drop_input_every=None, corrupt_input_every=None,
                 stop_after=None, corrupt_output_every=None, faulty_frames=None):
        for name, value in (("drop_input_every", drop_input_every),
                            ("corrupt_input_every", corrupt_input_every),
                            ("stop_after", stop_after),
                            ("corrupt_output_every", corrupt_output_every),
                            ("faulty_frames", faulty_frames)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
        self.pipeline = pipeline
        self.plan = link_plan(pipeline)
        self.drop_input_every = drop_input_every
        self.corrupt_input_every = corrupt_input_every
        self.stop_after = stop_after
        self.corrupt_output_every = corrupt_output_every
        self.faulty_frames = faulty_frames
        self.window_violations = 0
        self.input_bytes = 0
        self.output_bytes = 0
        self.frames = 0           # frames ended (trailer sent) or dropped by a resync
        self.resyncs = 0          # resyncs that dropped a half-done frame
        self._master = self._slave = None
        self._thread = None
        self._stop = threading.Event()

    @property
    def port(self):
        return os.ttyname(self._slave)

    def __enter__(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)   # no echo, no newline translation: a byte pipe
        self._thread = threading.Thread(target=self._serve, name="board-emulator", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._master)
        os.close(self._slave)

    def _bytes_ready(self, rows_in):
        """Output payload bytes computable from ``rows_in`` complete input rows: whole rows,
        block after block of the output layout's parts."""
        total = 0
        for rows, row_bytes in self.plan.output.parts:
            ready = self._rows_ready(rows_in, rows)
            total += ready * row_bytes
            if ready < rows:
                break
        return total

    def _rows_ready(self, rows_in, out_height):
        """Rows of an ``out_height``-row output computable from ``rows_in`` complete input
        rows."""
        height = self.plan.height
        if rows_in >= height:
            return out_height
        ready = 0
        while ready < out_height and min(
                height, math.ceil((ready + 1) * height / out_height)
                + self.pipeline.latency_lines) <= rows_in:
            ready += 1
        return ready

    def _faulty(self, every, count):
        return (every is not None and count % every == 0
                and (self.faulty_frames is None or self.frames < self.faulty_frames))

    def _serve(self):
        plan = self.plan
        frame_in = bytearray()     # input bytes of the current frame (payload, trailer, ...)
        payload_out = bytearray()  # output payload of the current frame computed so far
        frame_out_sent = 0         # bytes of the current answer already written
        pending = bytearray()      # answer bytes computed, not yet written
        trailer_queued = False
        last_activity = time.monotonic()
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.02)
            if readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                last_activity = time.monotonic()
                for byte in data:
                    self.input_bytes += 1
                    if self._faulty(self.drop_input_every, self.input_bytes):
                        continue
                    if self._faulty(self.corrupt_input_every, self.input_bytes):
                        byte ^= 1
                    frame_in.append(byte)
                    allowed = plan.consumed_lower_bound(frame_out_sent) + plan.window
                    if len(frame_in) > allowed:
                        self.window_violations += 1

            ready = self._bytes_ready(len(frame_in) // plan.in_row_bytes)
            if ready > len(payload_out):
                rows = self._golden_bytes(frame_in)[len(payload_out):ready]
                payload_out += rows
                pending += rows
            if (not trailer_queued and len(payload_out) == plan.out_frame_bytes
                    and len(frame_in) >= plan.in_stream_bytes):
                received = bytes(frame_in[:plan.in_frame_bytes])
                crc = int.from_bytes(frame_in[plan.in_frame_bytes:plan.in_stream_bytes],
                                     "little")
                status = 0 if zlib.crc32(received) == crc else STATUS_INPUT_CRC_BAD
                pending += output_trailer(bytes(payload_out), status)
                trailer_queued = True

            if pending and (self.stop_after is None or self.output_bytes < self.stop_after):
                count = len(pending)
                if self.stop_after is not None:
                    count = min(count, self.stop_after - self.output_bytes)
                chunk = bytearray(pending[:count])
                for i in range(count):
                    if self._faulty(self.corrupt_output_every, self.output_bytes + i + 1):
                        chunk[i] ^= 1
                written = os.write(self._master, bytes(chunk))
                del pending[:written]
                self.output_bytes += written
                frame_out_sent += written
                last_activity = time.monotonic()

            finished = frame_out_sent == plan.out_stream_bytes
            quiet = (frame_in or frame_out_sent) and \
                time.monotonic() - last_activity > RESYNC_GAP
            if finished or quiet:
                # Input beyond a finished frame belongs to the next one; a resync drops all.
                frame_in = frame_in[plan.in_stream_bytes:] if finished else bytearray()
                self.resyncs += not finished
                self.frames += 1
                payload_out, pending = bytearray(), bytearray()
                frame_out_sent, trailer_queued = 0, False

    def _golden_bytes(self, frame_in):
        """The golden output payload from the input received so far (rows not yet received
        are zeros: the bytes :meth:`_bytes_ready` counts do not depend on them)."""
        p, plan = self.pipeline, self.plan
        padded = bytes(frame_in[:plan.in_frame_bytes]).ljust(plan.in_frame_bytes, b"\0")
        frame = bytes_to_frame(p.input_format, padded, p.height, p.width)
        return plan.output.to_bytes(p.golden_outputs(frame))
