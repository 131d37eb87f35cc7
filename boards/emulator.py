"""A board stand-in on a pseudo-terminal, for testing the host side without hardware.

:class:`BoardEmulator` opens a pty pair; the host opens :attr:`BoardEmulator.port` with
pyserial like a board's USB-UART. A thread reads input bytes and answers with the pipeline's
golden output bytes, emitting each output row as soon as the input rows it may depend on have
arrived (``ceil((k + 1) * H / out_H) + latency_lines`` rows for output row ``k``, the
liveness assumption of :mod:`rasterflow.boards.host`), so a host that keeps to its
flow-control window makes progress exactly as with a board. Frames follow each other.

It also checks the host's side of the contract: :attr:`window_violations` counts input bytes
that would have overflowed the board's RX FIFO (more than ``window`` bytes beyond the input
the emitted output proves consumed).

Faults to inject: ``drop_input_every=n`` loses every n-th input byte (like an RX overflow:
the frame never completes), ``stop_after=n`` stops answering after n output bytes,
``corrupt_output_every=n`` flips the low bit of every n-th output byte.
"""
import math
import os
import select
import threading
import tty

import numpy as np

from .host import bytes_to_frame, frame_to_bytes, link_plan

__all__ = ["BoardEmulator"]


class BoardEmulator:
    def __init__(self, pipeline, *, drop_input_every=None, stop_after=None,
                 corrupt_output_every=None):
        for name, value in (("drop_input_every", drop_input_every), ("stop_after", stop_after),
                            ("corrupt_output_every", corrupt_output_every)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
        self.pipeline = pipeline
        self.plan = link_plan(pipeline)
        self.drop_input_every = drop_input_every
        self.stop_after = stop_after
        self.corrupt_output_every = corrupt_output_every
        self.window_violations = 0
        self.input_bytes = 0
        self.output_bytes = 0
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

    def _rows_ready(self, rows_in):
        """Output rows computable from ``rows_in`` complete input rows."""
        p = self.pipeline
        if rows_in >= p.height:
            return p.out_height
        ready = 0
        while ready < p.out_height and min(
                p.height, math.ceil((ready + 1) * p.height / p.out_height)
                + p.latency_lines) <= rows_in:
            ready += 1
        return ready

    def _serve(self):
        plan, p = self.plan, self.pipeline
        frame_in = bytearray()     # input bytes of the current frame
        frame_out_sent = 0         # output bytes of the current frame already written
        pending = bytearray()      # output bytes computed, not yet written
        rows_emitted = 0
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.02)
            if readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                for byte in data:
                    self.input_bytes += 1
                    if self.drop_input_every and self.input_bytes % self.drop_input_every == 0:
                        continue
                    frame_in.append(byte)
                    allowed = plan.consumed_lower_bound(frame_out_sent) + plan.window
                    if len(frame_in) > allowed:
                        self.window_violations += 1

            rows_ready = self._rows_ready(len(frame_in) // plan.in_row_bytes)
            if rows_ready > rows_emitted:
                pending += self._golden_rows(frame_in, rows_emitted, rows_ready)
                rows_emitted = rows_ready

            if pending and (self.stop_after is None or self.output_bytes < self.stop_after):
                count = len(pending)
                if self.stop_after is not None:
                    count = min(count, self.stop_after - self.output_bytes)
                chunk = bytearray(pending[:count])
                if self.corrupt_output_every:
                    for i in range(count):
                        if (self.output_bytes + i + 1) % self.corrupt_output_every == 0:
                            chunk[i] ^= 1
                written = os.write(self._master, bytes(chunk))
                del pending[:written]
                self.output_bytes += written
                frame_out_sent += written

            if frame_out_sent == plan.out_frame_bytes:
                # Frame complete: input beyond it belongs to the next frame.
                frame_in = frame_in[plan.in_frame_bytes:]
                frame_out_sent, rows_emitted = 0, 0

    def _golden_rows(self, frame_in, first, last):
        """Golden output rows ``first..last-1``, from the input received so far (rows not yet
        received are zeros: the output rows asked for do not depend on them)."""
        p, plan = self.pipeline, self.plan
        padded = bytes(frame_in[:plan.in_frame_bytes]).ljust(plan.in_frame_bytes, b"\0")
        frame = bytes_to_frame(p.input_format, padded, p.height, p.width)
        out = np.asarray(p.golden(frame)).reshape(p.out_height, p.out_width, -1)
        return frame_to_bytes(p.output_format, out[first:last])
