"""Board top: a pipeline behind a UART image bridge.

Data path (all in the ``sync`` domain)::

    rx pin -> UARTReceiver -> RX FIFO -> InputFrameChecker -> BytesToPixels -> pipeline
           -> PixelsToBytes -> OutputFramer -> TX FIFO -> UARTTransmitter -> tx pin
                                ^ input CRC verdict, RX error flags

A pipeline with several outputs of one frame size emits them as one joined stream;
PixelsToBytes sends each pixel of it as every output's pixel bytes in turn. Outputs of
different frame sizes leave in sequence, each output's whole frame in turn, each pixel in the
most channels of any output; PixelsToBytes sends them as they come. Both are the output byte
layout of :class:`rasterflow.boards.host.OutputLayout`.

Both directions carry a CRC-32 trailer per frame (format in :mod:`rasterflow.hdl.link`):
the checker strips the host's trailer so the byte-to-pixel path sees exactly the frame's
payload, and the framer appends the board's length, status and CRC.

*Resync:* when neither a byte arrives nor one is waiting or being sent for
``resync_clocks`` clocks (:data:`rasterflow.boards.host.RESYNC_GAP` seconds on a board), the
whole data path is reset: a frame cut short by a lost byte is dropped and the next byte
starts a new frame. Mid-frame the link is never that quiet: the host sends whenever its
window allows and the board sends whenever it has output.

:class:`UARTBridge` is that data path with plain pins, so it simulates without a platform;
:class:`BoardTop` adds the board: clock (directly from the oscillator, or through a PLL when
a faster clock is asked for), UART pins and status LEDs.

The RX FIFO holds the host's flow-control window (see :mod:`rasterflow.boards.host`, whose
argument shows it never overflows whatever the TX side does); the TX FIFO only lets the
pipeline run ahead of the slow TX UART.
"""
import math

from amaranth.hdl import (ClockDomain, ClockSignal, Elaboratable, Module, ResetInserter,
                          ResetSignal, Signal)
from amaranth.lib import cdc, fifo, io, wiring
from amaranth.lib.wiring import In, Out

from ..hdl.link import InputFrameChecker, OutputFramer
from ..hdl.serdes import BytesToPixels, LanePacker, LaneUnpacker, PixelsToBytes
from ..hdl.uart import UARTReceiver, UARTTransmitter, check_divisor, uart_divisor
from .host import RESYNC_GAP, link_plan
from .platforms import get_board

__all__ = ["UARTBridge", "BoardTop"]

#: Default TX FIFO depth in bytes: one iCE40 EBR (512 x 8 bit).
DEFAULT_TX_FIFO_DEPTH = 512


class UARTBridge(wiring.Component):
    """UART <-> pipeline bridge with plain serial pins and framed, CRC-checked frames.

    ``pipeline`` follows the rasterflow Pipeline contract (``hardware()``, formats, sizes,
    ``outputs``, ``output_formats``, ``output(name)``, ``latency_lines``); every output
    leaves, in the byte layout of :class:`~rasterflow.boards.host.OutputLayout`. ``divisor``
    is the UART's clocks per bit; ``resync_clocks`` the quiet time after which the data path
    resets (at least 20 byte times, so that a host that is merely between two bytes is never
    mistaken for a quiet link).

    Status outputs: ``overflow`` (latched until reset: a byte arrived while the RX FIFO was
    full, i.e. the host broke the flow-control window), ``framing_error`` (latched until
    reset), ``frame_done`` (toggles when the pipeline has emitted a complete output frame),
    ``rx_fifo_level`` (bytes waiting in the RX FIFO; never above the flow-control window).
    The status byte of each output frame reports the receiver's flags since the last resync
    (one happens after every frame, the link being quiet then).

    Latency: UART framing (about 10 bit times each way) + a few clocks of FIFOs and serdes +
    the pipeline's own latency; the output trailer follows the last output byte once the
    input trailer is checked. Throughput: bounded by the UART, one byte per ``10 * divisor``
    clocks each way, plus the trailers (4 bytes in, 9 out per frame). Memory: RX FIFO of
    :attr:`rx_fifo_depth` bytes (the flow-control window) + TX FIFO of ``tx_fifo_depth`` bytes
    + the pipeline's own + two CRC-32 registers and the resync timer.
    """

    def __init__(self, pipeline, divisor, *, resync_clocks, tx_fifo_depth=DEFAULT_TX_FIFO_DEPTH):
        if not isinstance(tx_fifo_depth, int) or tx_fifo_depth < 2:
            raise ValueError(f"tx_fifo_depth must be an integer >= 2, not {tx_fifo_depth!r}")
        check_divisor(divisor)
        if not isinstance(resync_clocks, int) or resync_clocks < 200 * divisor:
            raise ValueError(f"resync_clocks must be an integer >= 20 byte times "
                             f"({200 * divisor} clocks), not {resync_clocks!r}")
        self.pipeline = pipeline
        self.plan = link_plan(pipeline)   # also validates the pixel formats
        widths = {width for _, width in self.plan.output.frame_shapes.values()}
        if pipeline.lanes > 1 and len(widths) > 1:
            raise ValueError(f"outputs of different widths ({sorted(widths)}) at "
                             f"{pipeline.lanes} pixels per clock: the lane unpacker before "
                             f"the UART takes one line width")
        self.divisor = divisor
        self.resync_clocks = resync_clocks
        self.rx_fifo_depth = self.plan.window
        self.tx_fifo_depth = tx_fifo_depth
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "overflow": Out(1),
            "framing_error": Out(1),
            "frame_done": Out(1),
            "rx_fifo_level": Out(range(self.rx_fifo_depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.pipeline
        output = self.plan.output
        resync = Signal()
        blocks = {
            "receiver": UARTReceiver(self.divisor),
            "rx_fifo": fifo.SyncFIFOBuffered(width=8, depth=self.rx_fifo_depth),
            "check_input": InputFrameChecker(self.plan.in_frame_bytes),
            "to_pixels": BytesToPixels(p.input_format, p.width, p.height),
            "pipeline": p.hardware(),
            "to_bytes": PixelsToBytes(output.stream_formats),
            "frame_output": OutputFramer(self.plan.out_frame_bytes),
            "tx_fifo": fifo.SyncFIFOBuffered(width=8, depth=self.tx_fifo_depth),
            "transmitter": UARTTransmitter(self.divisor),
        }
        if p.lanes > 1:
            blocks["packer"] = LanePacker(p.input_format, p.width, p.height, p.lanes)
            blocks["unpacker"] = LaneUnpacker(output.stream_formats, output.width, p.lanes)
        for name, block in blocks.items():
            m.submodules[name] = ResetInserter(resync)(block)
        b = blocks

        m.d.comb += b["receiver"].rx.eq(self.rx)
        wiring.connect(m, b["receiver"].o, b["rx_fifo"].w_stream)
        wiring.connect(m, b["rx_fifo"].r_stream, b["check_input"].i)
        wiring.connect(m, b["check_input"].o, b["to_pixels"].i)
        if p.lanes == 1:
            wiring.connect(m, b["to_pixels"].o, b["pipeline"].i)
            wiring.connect(m, b["pipeline"].o, b["to_bytes"].i)
        else:
            wiring.connect(m, b["to_pixels"].o, b["packer"].i)
            wiring.connect(m, b["packer"].o, b["pipeline"].i)
            wiring.connect(m, b["pipeline"].o, b["unpacker"].i)
            wiring.connect(m, b["unpacker"].o, b["to_bytes"].i)
        wiring.connect(m, b["to_bytes"].o, b["frame_output"].i)
        wiring.connect(m, b["check_input"].input_ok, b["frame_output"].input_ok)
        wiring.connect(m, b["frame_output"].o, b["tx_fifo"].w_stream)
        wiring.connect(m, b["tx_fifo"].r_stream, b["transmitter"].i)
        m.d.comb += [
            self.tx.eq(b["transmitter"].tx),
            b["frame_output"].rx_overflow.eq(b["receiver"].overflow),
            b["frame_output"].rx_framing_error.eq(b["receiver"].framing_error),
            self.rx_fifo_level.eq(b["rx_fifo"].level),
        ]
        with m.If(b["receiver"].overflow):
            m.d.sync += self.overflow.eq(1)
        with m.If(b["receiver"].framing_error):
            m.d.sync += self.framing_error.eq(1)

        # Quiet link: no byte received, none queued or being sent.
        quiet = Signal(range(self.resync_clocks + 1))
        busy = (b["receiver"].o.valid | b["tx_fifo"].r_stream.valid
                | ~b["transmitter"].i.ready)
        m.d.comb += resync.eq(quiet == self.resync_clocks - 1)
        with m.If(busy):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.resync_clocks):
            m.d.sync += quiet.eq(quiet + 1)

        # A frame's output is the rows of every part of the output layout (the outputs'
        # frames one after another, for outputs in sequence).
        pipeline_o = b["pipeline"].o
        out_rows = sum(rows for rows, _ in output.parts)
        out_row = Signal(range(out_rows))
        with m.If(pipeline_o.valid & pipeline_o.ready & pipeline_o.payload.eol):
            with m.If(out_row == out_rows - 1):
                m.d.sync += [out_row.eq(0), self.frame_done.eq(~self.frame_done)]
            with m.Else():
                m.d.sync += out_row.eq(out_row + 1)
        with m.If(resync):
            m.d.sync += out_row.eq(0)
        return m


class BoardTop(Elaboratable):
    """:class:`UARTBridge` on a board from :data:`rasterflow.boards.platforms.BOARDS`.

    ``baud`` defaults to the board's ``default_baud``; the UART divisor is computed from the
    real ``sync`` frequency (the PLL's achieved frequency when ``clock_hz`` asks for a clock
    other than the oscillator's; the board's family makes the PLL), the resync time from
    :data:`rasterflow.boards.host.RESYNC_GAP`.
    Status LEDs (those the board has): ``heartbeat`` (about
    1 Hz: the clock runs), ``error`` (RX overflow or framing error, latched), ``frame_done``
    (toggles per output frame).
    """

    def __init__(self, pipeline, board, baud=None, *, clock_hz=None,
                 tx_fifo_depth=DEFAULT_TX_FIFO_DEPTH):
        self.board = get_board(board) if isinstance(board, str) else board
        self.baud = self.board.default_baud if baud is None else baud
        self.oscillator_hz = self.board.clock_hz
        self.pll_config = None
        if clock_hz is None or clock_hz == self.oscillator_hz:
            self.clock_hz = self.oscillator_hz
        else:
            self.pll_config, self.clock_hz = self.board.family_info.pll_config(
                self.oscillator_hz, clock_hz)
        self.divisor = uart_divisor(self.clock_hz, self.baud)
        self.bridge = UARTBridge(pipeline, self.divisor,
                                 resync_clocks=math.ceil(RESYNC_GAP * self.clock_hz),
                                 tx_fifo_depth=tx_fifo_depth)

    def elaborate(self, platform):
        m = Module()
        if self.pll_config is not None:
            self._add_pll_domain(m, platform)

        m.submodules.bridge = bridge = self.bridge
        uart = platform.request(*self.board.uart, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.d.comb += [bridge.rx.eq(uart_rx.i), uart_tx.o.eq(bridge.tx)]

        heartbeat = Signal(max(1, math.ceil(math.log2(self.clock_hz))))
        m.d.sync += heartbeat.eq(heartbeat + 1)
        status = {
            "heartbeat": heartbeat[-1],
            "error": bridge.overflow | bridge.framing_error,
            "frame_done": bridge.frame_done,
        }
        for name, resource in self.board.leds.items():
            led = io.Buffer("o", platform.request(*resource, dir="-"))
            m.submodules[f"led_{name}"] = led
            m.d.comb += led.o.eq(status[name])
        return m

    def _add_pll_domain(self, m, platform):
        clk = Signal()
        locked = Signal()
        self.board.family_info.add_pll(
            m, platform.request(self.board.clock, 0, dir="-"), self.pll_config,
            f_in=self.oscillator_hz, f_out=self.clock_hz, clk=clk, locked=locked)
        platform.add_clock_constraint(clk, self.clock_hz)

        # Hold reset until the PLL has locked and then 15 us more: iCE40 block RAMs read as
        # zero for ~3 us after configuration (see Amaranth's iCE40 create_missing_domain).
        m.domains.sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += [ClockSignal("sync").eq(clk), ClockSignal("por").eq(clk)]
        locked_sync = Signal()
        m.submodules.lock_sync = cdc.FFSynchronizer(locked, locked_sync, o_domain="por")
        delay = int(15e-6 * self.clock_hz)
        timer = Signal(range(delay + 1))
        with m.If(~locked_sync):
            m.d.por += timer.eq(0)
        with m.Elif(timer != delay):
            m.d.por += timer.eq(timer + 1)
        m.d.comb += ResetSignal("sync").eq(timer != delay)
