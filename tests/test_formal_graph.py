"""Formal proofs for Fork, Join and SkewBuffer (hdl/graph.py), with SymbiYosys + Yices through
:mod:`rasterflow.sim.formal`, in the style of ``tests/test_formal.py``.

Payloads are a few bits wide (control does not depend on the width; solver time does).

* ``valid`` never depends on ``ready``: :func:`check_no_combinational_path` on every
  ready/valid pair of each component (and, for the SkewBuffer, ``i.ready`` does not depend
  on ``o.ready`` either: it cuts the ready path). A netlist property: every state, any depth.
* Fork: any source that keeps the stream rules, any ready pattern on every output.
  k-induction proves each output's rules (valid and payload hold until its transfer). BMC
  proves that every output sees exactly the input's sequence: input item ``n`` carries tag
  ``n``; output ``k``'s ``n``-th transfer carries tag ``n``; an output never shows an item it
  has already taken; when the input transfer completes, every output has taken it. A cover
  shows the eager case (one output takes an item while another still stalls) is reachable.
* Join: any sources, any output ready. k-induction proves, in every reachable state, the
  output rules and lockstep: each input transfers exactly when the output does, the output
  carries every input's payload, and with input ``k``'s ``n``-th item tagged ``n``, the
  output's ``n``-th transfer carries tag ``n`` from every input (the pairing of the input
  sequences).
* SkewBuffer: :class:`StreamContractHarness` (rules by k-induction; accounting, in-order tags,
  drain and acceptance by BMC; covers).

A fork without taken flags (duplicates) and a join that lets one input run ahead (loses
items) are shown to fail.
"""
import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cat, Cover, Elaboratable, Module, ResetSignal, Signal, \
    Value

from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.graph import Fork, Join, SkewBuffer
from rasterflow.sim.formal import StreamContractHarness, check_no_combinational_path, run_sby

TAG_BITS = 3
COUNT_BITS = 6      # transfer counters: no wrap within the BMC depths here


class NarrowPixels(PixelFormat):
    """uint8 as far as validation goes, but 2 bits wide: a small state space for the solver."""
    @property
    def bits(self):
        return 2


FMT = NarrowPixels(1, "uint8")
JOIN_FORMATS = {"a": FMT, "b": FMT, "c": FMT}


def assert_proof(result, expect_pass=True):
    detail = f"{result.status} in {result.seconds:.1f}s; failed: {result.failed}\n" \
             f"trace: {result.trace}\n{result.log_tail}"
    assert result.passed == expect_pass, detail


def free_source(m, port):
    """Drive ``port`` (valid, payload) freely, keeping the stream rules (by ``Assume``)."""
    payload = Value.cast(port.payload)
    m.d.comb += [port.valid.eq(AnySeq(1)), payload.eq(AnySeq(len(payload)))]
    held, last = Signal(), Signal.like(payload)
    m.d.sync += [held.eq(port.valid & ~port.ready), last.eq(payload)]
    with m.If(held):
        m.d.comb += Assume(port.valid & (payload == last))


def assert_output_rules(m, port):
    """Once ``port.valid`` is high, it and the payload hold until the transfer."""
    payload = Value.cast(port.payload)
    held, last = Signal(), Signal.like(payload)
    m.d.sync += [held.eq(port.valid & ~port.ready), last.eq(payload)]
    with m.If(held):
        m.d.comb += Assert(port.valid, "valid dropped before a transfer")
        m.d.comb += Assert(payload == last, "payload changed before a transfer")


def transfers(m, port):
    """Transfers on ``port`` before this cycle."""
    count = Signal(COUNT_BITS)
    with m.If(port.valid & port.ready):
        m.d.sync += count.eq(count + 1)
    return count


def tag_inputs(m, port, tag, count):
    """The source tags its ``n``-th item ``n`` (mod ``2**len(tag)``)."""
    with m.If(port.valid):
        m.d.comb += Assume(tag == count[:len(tag)])


# -- valid never depends on ready ------------------------------------------------------------

def test_fork_valids_have_no_combinational_path_from_any_ready():
    for source in range(3):
        for sink in range(3):
            assert check_no_combinational_path(Fork(TAG_BITS, 3), f"o__{source}__ready",
                                               f"o__{sink}__valid")


def test_join_valid_has_no_combinational_path_from_ready():
    assert check_no_combinational_path(Join(JOIN_FORMATS))


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_skew_buffer_valid_and_input_ready_have_no_path_from_output_ready(depth):
    assert check_no_combinational_path(SkewBuffer(TAG_BITS, depth))
    assert check_no_combinational_path(SkewBuffer(TAG_BITS, depth), "o__ready", "i__ready")


# -- Fork -------------------------------------------------------------------------------------

class ForkHarness(Elaboratable):
    """A free source into ``fork``, free readies on its outputs; see the module docstring."""
    def __init__(self, fork, rules_only=False):
        self.fork = fork
        self.rules_only = rules_only

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork = fork = self.fork
        m.d.comb += Assume(~ResetSignal())
        free_source(m, fork.i)
        for out in fork.o:
            m.d.comb += out.ready.eq(AnySeq(1))
            assert_output_rules(m, out)
        if self.rules_only:
            return m

        offered = transfers(m, fork.i)
        tag_inputs(m, fork.i, fork.i.payload, offered)
        in_fire = fork.i.valid & fork.i.ready
        early = Signal()   # an output took an item before the input transfer completed
        for out in fork.o:
            seen = transfers(m, out)
            fire = out.valid & out.ready
            with m.If(out.valid):
                m.d.comb += Assert(seen == offered, "output shows an item it already took")
                m.d.comb += Assert(out.payload == seen[:TAG_BITS], "item out of order")
            m.d.comb += Assert((seen == offered) | (seen == offered + 1), "output ran ahead")
            with m.If(in_fire):
                m.d.comb += Assert(seen + fire == offered + 1, "input left an output without it")
            with m.If(fire & ~in_fire):
                m.d.sync += early.eq(1)
        with m.If(fork.i.valid & Cat(out.ready for out in fork.o).all()):
            m.d.comb += Assert(fork.i.ready, "input refused with every output ready")
        m.d.comb += Cover(early & (offered == 3))
        return m


class NaiveFork(Fork):
    """A broken fork without taken flags: an output that took an item sees it again while
    another output stalls."""
    def elaborate(self, platform):
        m = Module()
        for out in self.o:
            m.d.comb += [out.valid.eq(self.i.valid), out.payload.eq(self.i.payload)]
        m.d.comb += self.i.ready.eq(Cat(out.ready for out in self.o).all())
        return m


@pytest.mark.parametrize("n", [2, 3])
def test_fork_rules_prove(n, tmp_path):
    assert_proof(run_sby(ForkHarness(Fork(TAG_BITS, n), rules_only=True), mode="prove",
                         depth=2, workdir=tmp_path))


@pytest.mark.parametrize("n", [2, 3])
def test_fork_every_output_sees_the_input_sequence_bmc(n, tmp_path):
    assert_proof(run_sby(ForkHarness(Fork(TAG_BITS, n)), mode="bmc", depth=14,
                         workdir=tmp_path))


def test_fork_eager_split_is_reachable_cover(tmp_path):
    assert_proof(run_sby(ForkHarness(Fork(TAG_BITS, 2)), mode="cover", depth=10,
                         workdir=tmp_path))


def test_naive_fork_fails_the_sequence_bmc(tmp_path):
    result = run_sby(ForkHarness(NaiveFork(TAG_BITS, 2)), mode="bmc", depth=6, workdir=tmp_path)
    assert_proof(result, expect_pass=False)
    assert any("already took" in line for line in result.failed), result.failed


# -- Join -------------------------------------------------------------------------------------

class JoinHarness(Elaboratable):
    """Free sources into every input of ``join``, a free ``o.ready``; see the module
    docstring. Every property is per cycle or between counters that move together, so
    k-induction closes on all of them."""
    def __init__(self, join):
        self.join = join

    def elaborate(self, platform):
        m = Module()
        m.submodules.join = join = self.join
        m.d.comb += Assume(~ResetSignal())
        inputs = {name: getattr(join, f"i_{name}") for name in join.names}
        out = join.o
        m.d.comb += out.ready.eq(AnySeq(1))
        assert_output_rules(m, out)
        out_fire = out.valid & out.ready
        joined = transfers(m, out)
        m.d.comb += Assert(out.valid == Cat(p.valid for p in inputs.values()).all(),
                           "o.valid is not the AND of the input valids")
        for name, port in inputs.items():
            free_source(m, port)
            taken = transfers(m, port)
            data = port.payload.data.as_value()
            tag_inputs(m, port, data, taken)
            m.d.comb += Assert((port.valid & port.ready) == out_fire, "input transferred alone")
            m.d.comb += Assert(taken == joined, "input count differs from the output's")
            with m.If(out.valid):
                m.d.comb += Assert(out.payload.data[name].as_value() == data,
                                   "output is not the input's payload")
                m.d.comb += Assert(out.payload.data[name].as_value() == joined[:len(data)],
                                   "pairing out of order")
        first = next(iter(inputs.values()))
        with m.If(out.valid):
            m.d.comb += Assert((out.payload.sof == first.payload.sof) &
                               (out.payload.eol == first.payload.eol), "markers not the first's")
        m.d.comb += Cover(joined == 3)
        return m


class GreedyJoin(Join):
    """A broken join: input ``a`` is taken whenever the output is ready, even alone."""
    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i_a.ready.eq(self.o.ready)
        return m


def test_join_lockstep_prove(tmp_path):
    assert_proof(run_sby(JoinHarness(Join(JOIN_FORMATS)), mode="prove", depth=2,
                         workdir=tmp_path))


def test_join_pairing_bmc(tmp_path):
    """The same properties from reset (BMC), as a cross-check of the induction."""
    assert_proof(run_sby(JoinHarness(Join(JOIN_FORMATS)), mode="bmc", depth=12,
                         workdir=tmp_path))


def test_join_completes_transfers_cover(tmp_path):
    assert_proof(run_sby(JoinHarness(Join(JOIN_FORMATS)), mode="cover", depth=8,
                         workdir=tmp_path))


def test_greedy_join_fails_the_lockstep_bmc(tmp_path):
    result = run_sby(JoinHarness(GreedyJoin(JOIN_FORMATS)), mode="bmc", depth=4,
                     workdir=tmp_path)
    assert_proof(result, expect_pass=False)
    assert any("input transferred alone" in line for line in result.failed), result.failed


# -- SkewBuffer -------------------------------------------------------------------------------

def skew_harness(depth, **kwargs):
    """Holds at most ``depth`` items and drains them in ``depth`` cycles; with the output
    ready an offered input waits at most one cycle (the memory was full: it frees an entry in
    the next cycle). Each bound fails with one less."""
    return StreamContractHarness(SkewBuffer(TAG_BITS, depth), max_outstanding=depth,
                                 drain_cycles=depth, accept_cycles=2,
                                 tags=(lambda p: p, lambda p: p), **kwargs)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_skew_buffer_rules_prove(depth, tmp_path):
    assert_proof(run_sby(skew_harness(depth, rules_only=True), mode="prove", depth=2,
                         workdir=tmp_path))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_skew_buffer_accounting_bmc(depth, tmp_path):
    """Long enough to fill (``depth`` transfers, output stalled) and drain (``depth``
    cycles) with slack: no loss, no duplication, in order, bounded wait."""
    assert_proof(run_sby(skew_harness(depth), mode="bmc", depth=2 * depth + 5,
                         workdir=tmp_path))


@pytest.mark.parametrize("depth, gap", [(1, 2), (2, None), (3, None)])
def test_skew_buffer_cover(depth, gap, tmp_path):
    """Items leave; a second one is taken in before the first leaves, except at depth 1 (a
    single register: the next item comes in 2 cycles after the previous one)."""
    harness = skew_harness(depth, back_to_back_gap=gap)
    assert_proof(run_sby(harness, mode="cover", depth=12, workdir=tmp_path))
