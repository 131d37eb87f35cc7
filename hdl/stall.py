"""Stall-all pipeline bookkeeping shared by the datapath components.

A datapath of N register stages between an input stream ``i`` and an output stream ``o``
advances all its stages together whenever the output can move (``en = ~o.valid | o.ready``).
A bubble travels as ``valid = 0``.

Payload registers are reset-less (:func:`payload_register`); only the valid bits are reset.
A payload is only looked at with its valid bit, so resetting it buys nothing, and on iCE40 it
costs a logic level on every enable: the ``SB_DFFESR`` flip-flop resets only while enabled,
so Yosys would feed it ``en | rst`` instead of ``en``. This keeps every stream rule by construction: ``o.valid``
and the payload are registers that only change when ``en`` is high, and ``en`` is low exactly
when ``o.valid & ~o.ready``; ``o.valid`` never depends on ``o.ready``.
"""
from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .payload import lanes_of

__all__ = ["StallPipeline", "SkidBuffer", "SKID_LATENCY", "LaneParallel", "per_lane",
           "one_lane", "payload_register"]

#: Cycles a :class:`SkidBuffer` adds.
SKID_LATENCY = 1


def payload_register(shape, *, name):
    """A register for payload data: reset-less (see the module docstring)."""
    return Signal(shape, name=name, reset_less=True)


class StallPipeline:
    """Helper that registers values under one shared enable.

    Usage inside ``elaborate``::

        pipe = StallPipeline(m, self.i, self.o)
        pipe.carry("sof", self.i.payload.sof)                  # follows every stage
        a = pipe.register(expr_of(self.i.payload), name="a")   # stage 1
        pipe.stage()
        b = pipe.register(expr_of(a), name="b")                # stage 2
        pipe.stage()
        m.d.comb += self.o.payload.eq(payload_expr_of(b, pipe.carried["sof"]))
        pipe.finish()

    Every :meth:`stage` adds one cycle of latency; :attr:`latency` counts them.

    With ``frame_markers``, the input's ``sof``/``eol`` follow every stage and
    :meth:`finish` drives the output's from them.
    """
    def __init__(self, m, i, o, *, frame_markers=False):
        self._m = m
        self._o = o
        self.en = Signal(name="pipe_en")
        m.d.comb += [self.en.eq(~o.valid | o.ready), i.ready.eq(self.en)]
        self._valid = i.valid
        self.latency = 0
        self.carried = {}
        self._frame_markers = frame_markers
        if frame_markers:
            self.carry("sof", i.payload.sof)
            self.carry("eol", i.payload.eol)

    def carry(self, name, value):
        """Register ``value`` at every later :meth:`stage`; read it from ``carried[name]``."""
        self.carried[name] = value

    def register(self, value, *, name, shape=None):
        """A register that loads ``value`` when the pipeline advances."""
        if shape is None:
            shape = value.shape() if isinstance(value, Value) else Value.cast(value).shape()
        reg = payload_register(shape, name=name)
        with self._m.If(self.en):
            self._m.d.sync += reg.eq(value)
        return reg

    def stage(self):
        """Close a stage: the valid bit moves one register forward."""
        stage = self.latency + 1
        for name, value in self.carried.items():
            self.carried[name] = self.register(value, name=f"{name}_s{stage}")
        valid = Signal(name=f"valid_s{stage}")
        with self._m.If(self.en):
            self._m.d.sync += valid.eq(self._valid)
        self._valid = valid
        self.latency = stage

    def finish(self):
        """Drive the output's ``valid`` from the last stage.

        The caller drives ``o.payload`` from last-stage registers only, so it holds while the
        output is stalled.
        """
        if self.latency == 0:
            raise ValueError("a StallPipeline needs at least one stage before finish()")
        self._m.d.comb += self._o.valid.eq(self._valid)
        if self._frame_markers:
            self._m.d.comb += [self._o.payload.sof.eq(self.carried["sof"]),
                               self._o.payload.eol.eq(self.carried["eol"])]


class SkidBuffer(wiring.Component):
    """A two-entry stream register that breaks the combinational ``ready`` path.

    ``i.ready`` is a register (``~skid_valid``), so the stall-all enable of the component
    feeding ``i`` no longer depends on anything downstream of ``o``. Timing closure across
    a chain of stages needs one of these between them.

    Latency 1 cycle; one transfer per cycle; two payload registers.
    """
    def __init__(self, payload_shape):
        super().__init__({"i": In(stream.Signature(payload_shape)),
                          "o": Out(stream.Signature(payload_shape))})

    def elaborate(self, platform):
        m = Module()
        skid = payload_register(self.i.payload.shape(), name="skid")
        out = payload_register(self.o.payload.shape(), name="out")
        m.d.comb += self.o.payload.eq(out)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        # While empty, the skid register copies the input every cycle, so it already holds
        # the payload of a transfer that the stalled output cannot take: its enable is a
        # flip-flop, not the downstream ready. The valid bits are written as gates of
        # `stalled`, one logic level from the downstream ready (as multiplexers with
        # constants, Yosys would give them reset and enable pins behind extra logic).
        stalled = Signal()
        m.d.comb += stalled.eq(self.o.valid & ~self.o.ready)
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)
        with m.If(~stalled):
            m.d.sync += out.eq(Mux(skid_valid, skid, self.i.payload))
        m.d.sync += [
            skid_valid.eq(stalled & (skid_valid | self.i.valid)),
            self.o.valid.eq(stalled | skid_valid | self.i.valid),
        ]
        return m


def _widen(layout, field, lanes):
    return data.StructLayout({name: lanes_of(f.shape, lanes) if name == field else f.shape
                              for name, f in layout})


class LaneParallel(wiring.Component):
    """``lanes`` copies of a datapath, one per lane of one payload field, run in lockstep.

    For datapaths whose handshake depends only on ``valid``/``ready``, never on the payload
    (every :class:`StallPipeline`-based one): the copies then accept and emit in the same
    cycles, so copy 0's handshake stands for all of them. ``in_field`` of the input and
    ``out_field`` of the output gain a lane dimension; other fields (``emit``, ``sof``,
    ``eol``) are fed to every copy and taken from copy 0.

    Latency and throughput: those of one copy; resources: ``lanes`` copies. A stall-all
    datapath emits item ``n`` ``latency`` cycles after taking it, needing no later input, so
    its ``schedule_delay`` is 0.
    """
    schedule_delay = 0

    def __init__(self, make, lanes, in_field, out_field):
        if not isinstance(lanes, int) or lanes < 2:
            raise ValueError(f"lanes must be an integer of at least 2, not {lanes!r}")
        self.copies = [make() for _ in range(lanes)]
        first = self.copies[0]
        self.latency = first.latency
        self.in_field, self.out_field = in_field, out_field
        super().__init__({
            "i": In(stream.Signature(_widen(first.i.payload.shape(), in_field, lanes))),
            "o": Out(stream.Signature(_widen(first.o.payload.shape(), out_field, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        first = self.copies[0]
        for p, copy in enumerate(self.copies):
            m.submodules[f"lane{p}"] = copy
            for name, _ in self.i.payload.shape():
                source = self.i.payload[name]
                m.d.comb += copy.i.payload[name].eq(source[p] if name == self.in_field
                                                    else source)
            m.d.comb += [copy.i.valid.eq(self.i.valid), copy.o.ready.eq(self.o.ready)]
            m.d.comb += self.o.payload[self.out_field][p].eq(copy.o.payload[self.out_field])
        for name, _ in self.o.payload.shape():
            if name != self.out_field:
                m.d.comb += self.o.payload[name].eq(first.o.payload[name])
        m.d.comb += [self.i.ready.eq(first.i.ready), self.o.valid.eq(first.o.valid)]
        return m


def per_lane(make, lanes, in_field, out_field):
    """``make()`` for one lane, else a :class:`LaneParallel` of ``lanes`` of them."""
    return make() if lanes == 1 else LaneParallel(make, lanes, in_field, out_field)


def one_lane(part):
    """The datapath that :func:`per_lane` made (lane 0's copy), for its parameters."""
    return part.copies[0] if isinstance(part, LaneParallel) else part
