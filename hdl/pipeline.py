"""Stall-all pipeline bookkeeping shared by the datapath components.

A datapath of N register stages between an input stream ``i`` and an output stream ``o``
advances all its stages together whenever the output can move (``en = ~o.valid | o.ready``).
A bubble travels as ``valid = 0``. This keeps every stream rule by construction: ``o.valid``
and the payload are registers that only change when ``en`` is high, and ``en`` is low exactly
when ``o.valid & ~o.ready``; ``o.valid`` never depends on ``o.ready``.
"""
from amaranth.hdl import Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StallPipeline", "SkidBuffer", "SKID_LATENCY"]

#: Cycles a :class:`SkidBuffer` adds.
SKID_LATENCY = 1


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
    """
    def __init__(self, m, i, o):
        self._m = m
        self._o = o
        self.en = Signal(name="pipe_en")
        m.d.comb += [self.en.eq(~o.valid | o.ready), i.ready.eq(self.en)]
        self._valid = i.valid
        self.latency = 0
        self.carried = {}

    def carry(self, name, value):
        """Register ``value`` at every later :meth:`stage`; read it from ``carried[name]``."""
        self.carried[name] = value

    def register(self, value, *, name, shape=None):
        """A register that loads ``value`` when the pipeline advances."""
        if shape is None:
            shape = value.shape() if isinstance(value, Value) else Value.cast(value).shape()
        reg = Signal(shape, name=name)
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
        skid = Signal.like(self.i.payload, name="skid")
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
