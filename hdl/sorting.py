"""Compare-exchange networks and reduction trees, pipelined under a :class:`StallPipeline`.

Everything here is elaboration-time Python that builds exact integer datapaths:

* :func:`batcher_network` — Batcher's odd-even merge sort on ``n`` wires (``n`` padded to a
  power of two with ``+inf`` wires, whose comparators are then no-ops and are dropped). For
  3, 5 and 7 wires it has 3, 9 and 16 comparators, the known optimum sizes.
* :data:`MEDIAN_NETWORKS` — for a ``K x K`` window whose columns are already sorted
  (:class:`~rasterflow.hdl.imgproc.ColumnSort` does that once per column, shared by the
  ``K`` windows that contain it), a comparator network whose wire ``K*K // 2`` ends up holding
  the median. The tables were derived by :func:`derive_median_network` and are checked by
  :func:`check_median_network` (0-1 principle, exhaustive) in the tests.
* :func:`pipelined_network`, :func:`pipelined_reduce` — the hardware for a network or a
  min/max tree, a register stage after every ``layers_per_stage`` comparator layers.

A comparator ``(a, b)`` with ``a < b`` puts the minimum on wire ``a`` and the maximum on
wire ``b``. A *half* comparator is one where only one of those outputs is used later
(one compare and one multiplexer instead of two).
"""
import itertools
from functools import lru_cache

import numpy as np
from amaranth.hdl import Mux

__all__ = ["batcher_network", "MEDIAN_NETWORKS", "median_network", "check_median_network",
           "derive_median_network", "network_layers", "network_latency", "pipelined_network",
           "reduce_latency", "pipelined_reduce", "minimum", "maximum", "LAYERS_PER_STAGE"]

#: Comparator (or min/max) layers between two pipeline registers.
LAYERS_PER_STAGE = 2


def minimum(a, b):
    return Mux(a < b, a, b)


def maximum(a, b):
    return Mux(a < b, b, a)


def batcher_network(n):
    """Comparators ``(a, b)`` of Batcher's odd-even merge sort of ``n`` wires, ascending."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (p * 2) == (i + j + k) // (p * 2):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # Wires n..size-1 hold +inf and never move: comparators touching them are no-ops.
    return [(a, b) for a, b in pairs if b < n]


# Median networks for K x K windows of column-sorted data; wire index = dx * K + dy (column
# dx, rank dy ascending). Derived by derive_median_network(K): row sorts + Batcher's sort of
# all K*K wires, minus every comparator that never swaps on column-sorted inputs, minus every
# comparator the median does not depend on, then greedy removal of comparators (last first)
# while the 0-1 check still passes.
MEDIAN_NETWORKS = {
    3: (
        (0, 3), (3, 6), (1, 4), (1, 7), (4, 7), (2, 8), (2, 3), (4, 6), (5, 6), (3, 5),
        (3, 4),
    ),
    5: (
        (0, 5), (10, 15), (0, 10), (5, 15), (5, 10), (1, 6), (11, 16), (1, 11), (6, 16),
        (6, 11), (11, 21), (6, 11), (16, 21), (2, 7), (12, 17), (2, 12), (7, 17), (7, 12),
        (2, 22), (12, 22), (7, 12), (17, 22), (3, 8), (13, 18), (3, 13), (8, 18), (8, 13),
        (3, 23), (13, 23), (8, 13), (4, 9), (14, 19), (4, 14), (9, 19), (14, 24), (9, 14),
        (4, 5), (14, 15), (5, 7), (8, 10), (9, 11), (12, 14), (13, 14), (16, 20), (17, 21),
        (3, 5), (10, 12), (11, 13), (18, 20), (5, 6), (11, 12), (13, 14), (17, 18), (6, 10),
        (7, 11), (7, 9), (11, 13), (9, 10), (11, 12), (9, 17), (10, 18), (12, 16), (13, 17),
        (10, 12), (11, 13), (11, 12),
    ),
    7: (
        (0, 7), (14, 21), (28, 35), (0, 14), (7, 21), (28, 42), (7, 14), (35, 42), (7, 35),
        (14, 42), (14, 28), (21, 35), (21, 28), (35, 42), (1, 8), (15, 22), (29, 36),
        (1, 15), (8, 22), (29, 43), (8, 15), (36, 43), (1, 29), (8, 36), (15, 43), (15, 29),
        (22, 36), (22, 29), (36, 43), (2, 9), (16, 23), (30, 37), (2, 16), (9, 23),
        (30, 44), (9, 16), (37, 44), (2, 30), (9, 37), (16, 44), (16, 30), (23, 37),
        (23, 30), (37, 44), (3, 10), (17, 24), (31, 38), (3, 17), (10, 24), (31, 45),
        (10, 17), (38, 45), (3, 31), (10, 38), (17, 45), (17, 31), (24, 38), (10, 17),
        (24, 31), (38, 45), (4, 11), (18, 25), (32, 39), (4, 18), (11, 25), (32, 46),
        (11, 18), (39, 46), (4, 32), (11, 39), (18, 46), (18, 32), (25, 39), (11, 18),
        (25, 32), (5, 12), (19, 26), (33, 40), (5, 19), (12, 26), (33, 47), (12, 19),
        (40, 47), (5, 33), (12, 40), (19, 47), (19, 33), (26, 40), (12, 19), (26, 33),
        (6, 13), (20, 27), (34, 41), (6, 20), (13, 27), (34, 48), (13, 20), (41, 48),
        (6, 34), (13, 41), (20, 48), (20, 34), (6, 7), (20, 21), (34, 35), (4, 6), (12, 14),
        (13, 15), (21, 23), (32, 34), (40, 42), (41, 43), (5, 6), (21, 22), (16, 20),
        (17, 21), (18, 22), (24, 28), (25, 29), (26, 30), (27, 31), (33, 37), (34, 38),
        (11, 13), (18, 20), (19, 21), (26, 28), (27, 29), (34, 36), (42, 44), (19, 20),
        (21, 22), (25, 26), (27, 28), (33, 34), (35, 36), (5, 9), (6, 10), (7, 11),
        (20, 24), (21, 25), (22, 26), (23, 27), (36, 40), (37, 41), (38, 42), (10, 12),
        (11, 13), (22, 24), (23, 25), (26, 28), (27, 29), (34, 36), (35, 37), (9, 10),
        (11, 12), (13, 14), (23, 24), (25, 26), (33, 34), (35, 36), (37, 38), (10, 18),
        (11, 19), (12, 20), (13, 21), (14, 22), (15, 23), (14, 18), (15, 19), (20, 24),
        (21, 25), (22, 26), (23, 27), (15, 17), (18, 20), (19, 21), (22, 24), (23, 25),
        (17, 18), (19, 20), (21, 22), (23, 24), (18, 34), (19, 35), (20, 36), (21, 37),
        (24, 32), (25, 33), (26, 34), (27, 35), (20, 24), (21, 25), (22, 26), (23, 27),
        (22, 24), (23, 25), (23, 24),
    ),
}


def _zero_one_windows(ksize):
    """All 0-1 ``K x K`` windows with ascending columns, one bit-packed array per wire, and
    the expected median bit of each. Column ``dx`` is fixed by its count of ones."""
    counts = np.array(list(itertools.product(range(ksize + 1), repeat=ksize)), dtype=np.int8)
    wires = [np.packbits(counts[:, dx] >= ksize - dy)
             for dx in range(ksize) for dy in range(ksize)]
    mid = ksize * ksize // 2
    return wires, np.packbits(counts.sum(axis=1) >= mid + 1)


def _run_zero_one(wires, comparators):
    wires = list(wires)
    for a, b in comparators:
        x, y = wires[a], wires[b]
        wires[a], wires[b] = x & y, x | y
    return wires


def check_median_network(ksize, comparators):
    """Whether ``comparators`` leave the median on wire ``K*K//2`` for every window with
    sorted columns. Exhaustive over the ``(K+1)**K`` 0-1 windows with sorted columns, which
    suffices: thresholding commutes with every comparator and keeps columns sorted."""
    wires, want = _zero_one_windows(ksize)
    return bool(np.array_equal(_run_zero_one(wires, comparators)[ksize * ksize // 2], want))


def _median_dependencies(comparators, mid):
    """Keep only comparators the median wire depends on; returns ``(a, b, min_used, max_used)``."""
    live, kept = {mid}, []
    for a, b in reversed(comparators):
        use_min, use_max = a in live, b in live
        if use_min or use_max:
            kept.append((a, b, use_min, use_max))
            live |= {a, b}
    return kept[::-1]


def derive_median_network(ksize):
    """Derive a median network for column-sorted ``K x K`` windows (K = 7 takes minutes: the tables are precomputed)."""
    n = ksize * ksize
    rows = [(a * ksize + dy, b * ksize + dy)
            for dy in range(ksize) for a, b in batcher_network(ksize)]
    wires, _ = _zero_one_windows(ksize)
    kept = []
    for a, b in rows + batcher_network(n):
        if np.any(wires[a] & ~wires[b]):      # swaps on some input: needed
            kept.append((a, b))
        wires[a], wires[b] = wires[a] & wires[b], wires[a] | wires[b]
    kept = [(a, b) for a, b, _, _ in _median_dependencies(kept, n // 2)]
    for index in reversed(range(len(kept))):
        trial = kept[:index] + kept[index + 1:]
        if check_median_network(ksize, trial):
            kept = trial
    return tuple((a, b) for a, b, _, _ in _median_dependencies(kept, n // 2))


@lru_cache(maxsize=None)
def median_network(ksize):
    """``((a, b, min_used, max_used), ...)`` leaving the median of a column-sorted window on
    wire ``K*K // 2``."""
    if ksize not in MEDIAN_NETWORKS:
        raise ValueError(f"ksize must be one of {', '.join(map(str, MEDIAN_NETWORKS))}, "
                         f"not {ksize!r}")
    return tuple(_median_dependencies(MEDIAN_NETWORKS[ksize], ksize * ksize // 2))


def network_layers(comparators):
    """ASAP layer (1-based) of each comparator: one more than the last layer touching its wires."""
    last, layers = {}, []
    for c in comparators:
        a, b = c[0], c[1]
        layer = max(last.get(a, 0), last.get(b, 0)) + 1
        last[a] = last[b] = layer
        layers.append(layer)
    return layers


def network_latency(comparators, layers_per_stage=LAYERS_PER_STAGE):
    """Pipeline stages :func:`pipelined_network` adds (at least 1)."""
    depth = max(network_layers(comparators), default=0)
    return max(1, -(-depth // layers_per_stage))


def pipelined_network(pipe, lanes, comparators, outputs, *, shape, name,
                      layers_per_stage=LAYERS_PER_STAGE):
    """Apply a comparator network to each lane (a list of wire values), registering the wires
    still needed after every ``layers_per_stage`` layers. ``comparators`` are ``(a, b)`` or
    ``(a, b, min_used, max_used)``; returns, per lane, the registered values of ``outputs``.
    Adds :func:`network_latency` stages."""
    comps = [c if len(c) == 4 else (c[0], c[1], True, True) for c in comparators]
    layers = network_layers(comps)
    stages = network_latency(comps, layers_per_stage)
    order = sorted(range(len(comps)), key=lambda k: layers[k])   # stable: a valid order
    wires = [list(lane) for lane in lanes]
    for stage in range(stages):
        end = (stage + 1) * layers_per_stage
        for k in order:
            if end - layers_per_stage < layers[k] <= end:
                a, b, use_min, use_max = comps[k]
                for lane in wires:
                    x, y = lane[a], lane[b]
                    if use_min:
                        lane[a] = minimum(x, y)
                    if use_max:
                        lane[b] = maximum(x, y)
        live = set(outputs)
        live |= {w for k in order if layers[k] > end for w in comps[k][:2]}
        for index, lane in enumerate(wires):
            for w in sorted(live):
                lane[w] = pipe.register(lane[w], name=f"{name}_s{stage + 1}_c{index}_w{w}",
                                        shape=shape)
        pipe.stage()
    return [[lane[w] for w in outputs] for lane in wires]


def reduce_latency(n, layers_per_stage=LAYERS_PER_STAGE):
    """Pipeline stages :func:`pipelined_reduce` adds for ``n`` values (at least 1)."""
    depth = (max(n, 1) - 1).bit_length()
    return max(1, -(-depth // layers_per_stage))


def pipelined_reduce(pipe, lanes, op, *, shape, name, layers_per_stage=LAYERS_PER_STAGE):
    """Reduce each lane (a list of values) with the associative ``op`` (e.g. :func:`minimum`)
    as a balanced tree, registering after every ``layers_per_stage`` levels. Returns one
    registered value per lane; adds :func:`reduce_latency` stages."""
    current = [list(lane) for lane in lanes]
    stage = 0
    while True:
        for _ in range(layers_per_stage):
            if max(len(lane) for lane in current) <= 1:
                break
            current = [[op(lane[k], lane[k + 1]) if k + 1 < len(lane) else lane[k]
                        for k in range(0, len(lane), 2)] for lane in current]
        stage += 1
        current = [[pipe.register(v, name=f"{name}_s{stage}_c{index}_{k}", shape=shape)
                    for k, v in enumerate(lane)] for index, lane in enumerate(current)]
        pipe.stage()
        if max(len(lane) for lane in current) <= 1:
            return [lane[0] for lane in current]
