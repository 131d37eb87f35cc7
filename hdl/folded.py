"""Folded datapaths: one latched input worked on in steps, one step per cycle.

A folded unit (:class:`~rasterflow.hdl.conv.MacArray`, :class:`~rasterflow.hdl.dense.DenseUnit`,
:class:`~rasterflow.hdl.merge.QuantizedAdd` with fewer lanes than channels) latches its input
and runs ``steps = sf * nf`` steps on it: synapse fold ``j`` (the part of a sum a step adds)
inside neuron fold ``n`` (the output channels a step computes). The steps travel down a
stall-all :class:`~rasterflow.hdl.stall.StallPipeline`; each neuron fold's results wait in
partial registers until the last fold's arrive, and the whole output leaves at once.
:class:`FoldedSteps` builds the parts these units share: the latch and step counters, the
step pipeline, the accumulators and the output collector. The MAC arrays' products and
adder trees are :func:`lane_products` and :func:`adder_trees`.
"""
from types import SimpleNamespace

from amaranth.hdl import Mux, Signal, signed

from .arith import bounded_shape
from .stall import StallPipeline, payload_register

__all__ = ["FoldedSteps", "lane_products", "adder_trees"]


class FoldedSteps:
    """The latch, step counters and step pipeline of a folded unit inside ``elaborate``.

    Usage::

        steps = FoldedSteps(m, self.i, self.o, synapse_folds=sf, neuron_folds=nf)
        x = steps.pipe.register(operand_of(steps.latch, steps.j), name="x")  # stage 1
        steps.pipe.stage()
        ...                                     # the datapath, on steps.pipe
        accs = steps.accumulators(sums, shape)  # adds each synapse fold's sum
        steps.pipe.stage()
        ...
        steps.collect(results, out.data, out.sof, out.eol)

    An input transferred on ``i`` is latched (``have``) and worked on for ``sf * nf`` steps,
    one per cycle while ``en = ~o.valid | o.ready``: step ``k``, synapse fold ``j`` inside
    neuron fold ``n``. The next input is taken at the last step, so the producer moves on
    meanwhile. :attr:`pipe` is the :class:`StallPipeline` (on ``o``) the steps travel
    through; it carries each step's valid bit ``v``, whether it is the first and the last
    synapse fold (``first``, ``last``), its neuron fold ``n`` and the input's ``sof`` and
    ``eol``.

    Parameters
    ----------
    m : Module
    i, o : stream interfaces
        The unit's input (its payload has ``sof`` and ``eol``) and output.
    synapse_folds, neuron_folds : int
        ``sf`` and ``nf``, at least 1 each.
    register : callable
        ``register(shape, name=...)`` makes the payload registers (the latch and the
        partial outputs): :func:`~rasterflow.hdl.stall.payload_register` by default.
    latch_name : str
        The latch's name.

    Throughput: one input every ``sf * nf`` cycles. Latency: the latch's cycle, then the
    last step leaves the pipeline ``sf * nf - 1`` cycles after the first. Memory: the latch
    (one input payload), the counters and ``(nf - 1) * pe`` int8 partial outputs
    (:meth:`collect`).
    """
    def __init__(self, m, i, o, *, synapse_folds, neuron_folds, register=payload_register,
                 latch_name="pixel"):
        for name, value in (("synapse_folds", synapse_folds), ("neuron_folds", neuron_folds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self._m, self._o = m, o
        self.synapse_folds, self.neuron_folds = synapse_folds, neuron_folds
        self._register = register
        self._sequencer(i, register(i.payload.shape(), name=latch_name))
        self.pipe = self._step_pipeline()

    def _sequencer(self, i, latch):
        """The latch (``have``) and the step counters ``k``, ``j``, ``n``."""
        m, sf, nf = self._m, self.synapse_folds, self.neuron_folds
        steps = sf * nf
        en, have, last_step = Signal(name="en"), Signal(name="have"), Signal(name="last_step")
        k = Signal(range(steps), name="k")
        j = Signal(range(sf), name="j")
        n = Signal(range(nf), name="n")
        m.d.comb += [en.eq(~self._o.valid | self._o.ready), last_step.eq(k == steps - 1)]
        m.d.comb += i.ready.eq(~have | (en & last_step))
        with m.If(i.valid & i.ready):
            m.d.sync += [latch.eq(i.payload), have.eq(1)]
        with m.Elif(have & en & last_step):
            m.d.sync += have.eq(0)
        with m.If(have & en):
            m.d.sync += k.eq(Mux(last_step, 0, k + 1))
            m.d.sync += j.eq(Mux(j == sf - 1, 0, j + 1))
            with m.If(j == sf - 1):
                m.d.sync += n.eq(Mux(n == nf - 1, 0, n + 1))
        self.en, self.latch, self.have, self.k, self.j, self.n = en, latch, have, k, j, n

    def _step_pipeline(self):
        """The stall-all pipeline, with the carried step fields."""
        source = SimpleNamespace(valid=self.have, ready=Signal(name="unused_ready"))
        pipe = StallPipeline(self._m, source, self._o)
        pipe.carry("v", self.have)
        pipe.carry("first", self.j == 0)
        pipe.carry("last", self.j == self.synapse_folds - 1)
        pipe.carry("n", self.n)
        pipe.carry("sof", self.latch.sof)
        pipe.carry("eol", self.latch.eol)
        return pipe

    def accumulators(self, sums, shape):
        """Per PE, an accumulator of ``shape``: loaded with the first synapse fold's sum,
        added to by the others. ``sums``: ``{p: [(sum, lo, hi)]}`` with one term per PE, or
        none for a PE without weights (its accumulator keeps 0)."""
        m, carried = self._m, self.pipe.carried
        accumulators = []
        for p in range(len(sums)):
            acc = Signal(shape, name=f"acc_p{p}")
            if sums[p]:
                total, _, _ = sums[p][0]
                with m.If(self.en & carried["v"]):
                    m.d.sync += acc.eq(Mux(carried["first"], 0, acc) + total)
            accumulators.append(acc)
        return accumulators

    def collect(self, results, data, sof, eol):
        """The output registers ``data`` (every channel), ``sof``, ``eol`` and ``o.valid``.
        ``results[p]`` is the int8 result of channel ``n * pe + p`` at the last synapse fold
        of neuron fold ``n``: those of every fold but the last wait in partial registers,
        and the last fold's step loads the output."""
        m, en, nf, pe = self._m, self.en, self.neuron_folds, len(results)
        v, last, fold = self.pipe.carried["v"], self.pipe.carried["last"], self.pipe.carried["n"]
        partial = [[self._register(signed(8), name=f"part_n{n}_p{p}") for p in range(pe)]
                   for n in range(nf - 1)]
        done = Signal(name="done")
        m.d.comb += done.eq(v & last & (fold == nf - 1))
        with m.If(en):
            m.d.sync += self._o.valid.eq(done)
        with m.If(en & done):
            for c in range(len(data)):
                n, p = divmod(c, pe)
                m.d.sync += data[c].eq(results[p] if n == nf - 1 else partial[n][p])
            m.d.sync += [sof.eq(self.pipe.carried["sof"]), eol.eq(self.pipe.carried["eol"])]
        if nf > 1:
            with m.If(en & v & last & (fold != nf - 1)):
                with m.Switch(fold):
                    for n in range(nf - 1):
                        with m.Case(n):
                            m.d.sync += [partial[n][p].eq(results[p]) for p in range(pe)]


def lane_products(pipe, weights, lanes, pe):
    """One register stage of int8 x int8 products: ``weights[p][s] * operand`` for each
    multiplier ``(p, s)`` of ``lanes``, ``{(p, s): (operand, w_lo, w_hi)}`` (its weights over
    the steps range over ``w_lo..w_hi``), each register as wide as that range allows.
    Returns ``{p: [(product, lo, hi)]}`` for the ``pe`` PEs (a PE without lanes: none)."""
    terms = {p: [] for p in range(pe)}
    for (p, s), (operand, w_lo, w_hi) in lanes.items():
        corners = [w * x for w in (w_lo, w_hi) for x in (-128, 127)]
        lo, hi = min(corners), max(corners)
        product = pipe.register(weights[p][s] * operand, name=f"prod_p{p}_s{s}",
                                shape=bounded_shape(lo, hi))
        terms[p].append((product, lo, hi))
    return terms


def adder_trees(pipe, terms, levels):
    """Per PE, a pipelined adder tree of ``levels`` stages, one level a stage (an odd term
    out is carried to the next level in a register). ``terms``: ``{p: [(term, lo, hi)]}``;
    returns the same with one term left per PE (none for a PE without terms)."""
    for level in range(levels):
        for p, ts in list(terms.items()):
            summed = []
            for q in range(0, len(ts), 2):
                if q + 1 < len(ts):
                    (a, a_lo, a_hi), (b, b_lo, b_hi) = ts[q], ts[q + 1]
                    value, lo, hi = a + b, a_lo + b_lo, a_hi + b_hi
                else:
                    value, lo, hi = ts[q]
                summed.append((pipe.register(value, name=f"sum{level}_p{p}_{q}",
                                             shape=bounded_shape(lo, hi)), lo, hi))
            terms[p] = summed
        pipe.stage()
    return terms
