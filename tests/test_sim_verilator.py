"""The Verilog-path simulator (cocotb + Verilator) on small hand-written stream designs.

Each design here is a few lines of Amaranth whose exact behaviour is obvious, so that the tests
check the bench — driver, back-pressure, monitor, protocol checker, scoreboard, cycle counts,
build cache — rather than the designs.
"""
import random
import threading

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rasterflow.sim.verilator import (VerilogRunError, _build, load_words, run_verilog,
                                      save_words)


class IncrementBytes(wiring.Component):
    """One-register pipeline adding 1 (mod 256) to every byte of the payload.

    Latency 1 cycle, one transfer per clock: ``i.ready`` is high whenever the output register
    is empty or being emptied.
    """

    def __init__(self, width: int):
        self.width = width
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        incremented = [(self.i.payload[k:k + 8] + 1)[:8] for k in range(0, self.width, 8)]
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.valid.eq(1)
            for k, byte in enumerate(incremented):
                m.d.sync += self.o.payload[8 * k:8 * k + 8].eq(byte)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def increment_bytes_model(words: list[int], width: int) -> list[int]:
    """What :class:`IncrementBytes` computes, byte by byte."""
    out = []
    for word in words:
        result = 0
        for k in range(0, width, 8):
            result |= (((word >> k) + 1) & 0xff) << k
        out.append(result)
    return out


class DropEveryHundredth(IncrementBytes):
    """:class:`IncrementBytes` that accepts every 100th word but never outputs it (a bug)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        count = Signal(range(100))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(count + 1)
            with m.If(count == 99):
                m.d.sync += [count.eq(0), self.o.valid.eq(0)]
        return m


class ValidIgnoresReady(wiring.Component):
    """8-bit register stage that offers each word for one cycle only, ignoring ``o.ready``.

    It breaks the rule that ``valid`` holds until the transfer.
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class PayloadChangesWhileValid(wiring.Component):
    """Always-valid output whose payload counts every cycle, whether taken or not.

    It breaks the rule that ``payload`` holds until the transfer.
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.i.ready.eq(1), self.o.valid.eq(1)]
        m.d.sync += self.o.payload.eq(self.o.payload + 1)
        return m


class NoOutputStream(wiring.Component):
    """A design without the ``o`` stream: the bench cannot drive it and must fail loudly."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "count": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        with m.If(self.i.valid):
            m.d.sync += self.count.eq(self.count + 1)
        return m


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One build cache for the session, so each design is built once."""
    return tmp_path_factory.mktemp("verilator-cache")


def to_verilog(component, name):
    return verilog.convert(component, name=name)


@pytest.fixture(scope="session")
def increment8():
    return to_verilog(IncrementBytes(8), "increment8")


def random_bytes(count, seed=1):
    rng = random.Random(seed)
    return [rng.randrange(256) for _ in range(count)]


def test_verilog_ports_follow_stream_naming(increment8):
    for port in ["input clk", "input rst", "input [7:0] i__payload", "input i__valid",
                 "output i__ready", "output [7:0] o__payload", "output o__valid",
                 "input o__ready"]:
        assert port in increment8


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_pass_through_is_exact_under_stalls(increment8, cache_dir, stall):
    words = random_bytes(3000)
    expected = increment_bytes_model(words, 8)
    run = run_verilog(increment8, "increment8", words, len(words), expected_words=expected,
                      stall=stall, seed=7, cache_dir=cache_dir, progress=False)
    assert run.out_words == expected
    assert run.mismatches == 0
    assert run.in_transfers == run.out_transfers == len(words)
    assert run.protocol_violations == 0


def test_stalls_stretch_the_run(increment8, cache_dir):
    """A run with stalls takes more cycles than one without: the stalls really happen."""
    words = random_bytes(2000)
    steady = run_verilog(increment8, "increment8", words, len(words), cache_dir=cache_dir,
                         progress=False)
    stalled = run_verilog(increment8, "increment8", words, len(words), stall=0.3, seed=3,
                          cache_dir=cache_dir, progress=False)
    assert stalled.out_words == steady.out_words
    # Input gaps alone (probability 0.3 per word) add about 0.43 cycles per word.
    assert stalled.cycles > steady.cycles + len(words) // 4


def test_one_stage_pipeline_cycle_count(increment8, cache_dir):
    """Word k transfers in on cycle k and out on cycle k + 1: N words span N + 1 cycles."""
    words = random_bytes(500)
    run = run_verilog(increment8, "increment8", words, len(words), cache_dir=cache_dir,
                      progress=False)
    assert run.first_output_cycle == 1
    assert run.cycles == len(words) + 1
    assert run.sim_cycles_per_second > 0


def test_dropped_words_are_caught(cache_dir):
    design = to_verilog(DropEveryHundredth(8), "drop_every_100th")
    words = random_bytes(1000)
    with pytest.raises(VerilogRunError, match="timed out") as caught:
        run_verilog(design, "drop_every_100th", words, len(words),
                    expected_words=increment_bytes_model(words, 8), cache_dir=cache_dir,
                    progress=False, timeout_cycles=3000)
    run = caught.value.run
    assert run.timed_out
    assert run.out_transfers == len(words) - len(words) // 100
    assert run.mismatches > 0
    assert run.mismatch_examples[0][0] == 99  # word 99 was dropped, so position 99 is off


@pytest.mark.parametrize("component, top", [(ValidIgnoresReady, "valid_ignores_ready"),
                                            (PayloadChangesWhileValid, "payload_changes")])
def test_protocol_violations_are_caught(cache_dir, component, top):
    words = random_bytes(300)
    with pytest.raises(VerilogRunError, match="protocol violation") as caught:
        run_verilog(to_verilog(component(), top), top, words, len(words), stall=0.3,
                    cache_dir=cache_dir, progress=False, timeout_cycles=2000)
    assert caught.value.run.protocol_violations > 0


def test_bench_failure_raises(cache_dir):
    design = to_verilog(NoOutputStream(), "no_output_stream")
    with pytest.raises(RuntimeError, match="cocotb bench for 'no_output_stream' failed"):
        run_verilog(design, "no_output_stream", [1, 2, 3], 3, cache_dir=cache_dir,
                    progress=False)


def test_build_is_cached(cache_dir):
    design = to_verilog(IncrementBytes(16), "increment16")  # built by no other test
    words = [0x1234, 0xffff, 0x00fe]
    first = run_verilog(design, "increment16", words, 3, cache_dir=cache_dir, progress=False)
    builds = list(cache_dir.glob("*/increment16"))
    assert first.built and len(builds) == 1
    built_at = builds[0].stat().st_mtime_ns
    second = run_verilog(design, "increment16", words, 3, cache_dir=cache_dir, progress=False)
    assert not second.built and second.build_seconds == 0.0
    assert builds[0].stat().st_mtime_ns == built_at
    assert list(cache_dir.glob("*/increment16")) == builds
    assert second.out_words == first.out_words == [0x1335, 0x0000, 0x01ff]


def test_concurrent_builds_build_once(cache_dir):
    """Two workers asking for the same design at once: one builds, the other reuses it."""
    design = to_verilog(IncrementBytes(24), "increment24")  # built by no other test
    results = []
    workers = [threading.Thread(target=lambda: results.append(_build(design, "increment24",
                                                                      cache_dir, trace=False)))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(built for _, built, _ in results) == [False, True]
    assert results[0][0] == results[1][0]
    assert list(cache_dir.glob("*/increment24")) == [results[0][0] / "increment24"]


def test_later_builds_reuse_the_verilator_runtime(tmp_path):
    """The second design's build compiles only its own C++, not Verilator's runtime again.

    A fresh cache directory, so that the first build has to compile the runtime.
    """
    for width in (32, 40):
        name = f"increment{width}"
        run = run_verilog(to_verilog(IncrementBytes(width), name), name, [7], 1,
                          cache_dir=tmp_path, progress=False)
        assert run.built and run.out_words == [sum(1 << k for k in range(0, width, 8)) + 7]
    first_log, second_log = ((next(tmp_path.glob(f"*/increment{width}")).parent / "build.log")
                             .read_text() for width in (32, 40))
    assert "verilated.cpp" in first_log
    assert "verilated.cpp" not in second_log


def test_payload_wider_than_64_bits_round_trips(cache_dir):
    width = 200
    design = to_verilog(IncrementBytes(width), "increment200")
    rng = random.Random(5)
    words = [rng.getrandbits(width) for _ in range(400)] + [0, (1 << width) - 1]
    expected = increment_bytes_model(words, width)
    run = run_verilog(design, "increment200", words, len(words), expected_words=expected,
                      stall=0.3, cache_dir=cache_dir, progress=False)
    assert run.mismatches == 0
    assert run.out_words == expected


@pytest.mark.parametrize("width", [1, 63, 64, 65, 300])
def test_word_files_round_trip(tmp_path, width):
    rng = random.Random(width)
    words = [0, (1 << width) - 1] + [rng.getrandbits(width) for _ in range(50)]
    save_words(tmp_path / "words.npy", words)
    assert load_words(tmp_path / "words.npy") == words


def test_waves_are_dumped(increment8, cache_dir, tmp_path):
    waves = tmp_path / "waves.vcd"
    run = run_verilog(increment8, "increment8", [1, 2, 3], 3, cache_dir=cache_dir,
                      vcd=waves, progress=False)
    assert run.out_words == [2, 3, 4]
    content = waves.read_text()
    assert content.startswith("$") and "o__valid" in content and "#" in content


@pytest.mark.slow
def test_full_frame_512x512(increment8, cache_dir):
    """A whole 512 x 512 frame, one pixel per clock: the size the Verilog path is for."""
    words = random_bytes(512 * 512, seed=11)
    expected = increment_bytes_model(words, 8)
    run = run_verilog(increment8, "increment8", words, len(words), expected_words=expected,
                      cache_dir=cache_dir, progress=False)
    assert run.mismatches == 0
    assert run.cycles == len(words) + 1
    print(f"512x512 frame: {run.sim_cycles_per_second:,.0f} cycles/s, "
          f"{run.wall_seconds:.1f} s simulation")
