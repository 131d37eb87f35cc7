"""Multipliers on DSP blocks: which products the build puts there, and the LUT fallback when
a design has more than the device (iCE40UP5K: 8 SB_MAC16) or the budget allows."""
from dataclasses import dataclass

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from conftest import OneOutput
from rasterflow.boards.build import Multiplier, build, plan_multipliers, rtlil_multipliers
from rasterflow.boards.families import FAMILIES
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl.payload import pixel_stream_signature

ICE40, ECP5 = FAMILIES["ice40"], FAMILIES["ecp5"]


class PairProducts(wiring.Component):
    """Output channel k = input channel 2k * input channel 2k+1 (variable x variable), one
    register stage."""

    def __init__(self, pairs):
        self.pairs = pairs
        super().__init__({"i": In(pixel_stream_signature(PixelFormat(2 * pairs, "uint8"))),
                          "o": Out(pixel_stream_signature(PixelFormat(pairs, "uint16")))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            data = self.i.payload.data
            m.d.sync += [self.o.payload.data[k].eq(data[2 * k] * data[2 * k + 1])
                         for k in range(self.pairs)]
            m.d.sync += [self.o.payload.sof.eq(self.i.payload.sof),
                         self.o.payload.eol.eq(self.i.payload.eol), self.o.valid.eq(1)]
        return m


@dataclass
class ProductsPipeline(OneOutput):
    """The parts of the Pipeline contract a board build uses, around :class:`PairProducts`."""
    pairs: int
    width: int = 8
    height: int = 4
    latency_lines: int = 1
    lanes: int = 1

    @property
    def name(self):
        return f"products{self.pairs}"

    @property
    def input_format(self):
        return PixelFormat(2 * self.pairs, "uint8")

    @property
    def output_format(self):
        return PixelFormat(self.pairs, "uint16")

    out_width = property(lambda self: self.width)
    out_height = property(lambda self: self.height)

    def hardware(self):
        return PairProducts(self.pairs)


class Taps(wiring.Component):
    """Two constant taps and one variable product, inside a submodule used twice."""
    a: In(8)
    b: In(8)
    y: Out(20)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a * 6 + self.a * 8 + self.a * self.b)
        return m


class TwoTaps(wiring.Component):
    a: In(8)
    b: In(8)
    y: Out(21)

    def elaborate(self, platform):
        m = Module()
        m.submodules.left = left = Taps()
        m.submodules.right = right = Taps()
        m.d.comb += [left.a.eq(self.a), left.b.eq(self.b), right.a.eq(self.b),
                     right.b.eq(self.a), self.y.eq(left.y + right.y)]
        return m


def test_rtlil_multipliers_finds_constants_and_instances():
    found = rtlil_multipliers(rtlil.convert(TwoTaps()))
    # Each Taps instance is its own RTLIL module here, instantiated once.
    described = sorted((m.module, m.constant or 0, m.a_width, m.b_width) for m in found)
    assert described == [("\\top.left", 0, 8, 8), ("\\top.left", 6, 8, 3),
                         ("\\top.left", 8, 8, 4), ("\\top.right", 0, 8, 8),
                         ("\\top.right", 6, 8, 3), ("\\top.right", 8, 8, 4)]
    assert all(m.instances == 1 for m in found)
    assert all("/" in m.selector and not m.selector.startswith("\\") for m in found)


def test_dsp_blocks_follow_the_yosys_mapping_rules():
    variable = Multiplier("\\top", "$1", 8, 8, 16)
    assert variable.dsp_blocks(ICE40) == variable.dsp_blocks(ECP5) == 1
    wide = Multiplier("\\top", "$2", 32, 32, 63)
    assert wide.dsp_blocks(ICE40) == 4 and wide.dsp_blocks(ECP5) == 4
    assert Multiplier("\\top", "$3", 20, 16, 36).dsp_blocks(ICE40) == 2
    assert Multiplier("\\top", "$3", 20, 16, 36).dsp_blocks(ECP5) == 2
    # a power of two is a shift; 6 is 3 << 1, a 10-bit product, under SB_MAC16's 11-bit minimum
    assert Multiplier("\\top", "$4", 8, 5, 13, constant=16).dsp_blocks(ECP5) == 0
    assert Multiplier("\\top", "$5", 8, 4, 12, constant=6).dsp_blocks(ICE40) == 0
    assert Multiplier("\\top", "$5", 8, 4, 12, constant=6).dsp_blocks(ECP5) == 1
    assert Multiplier("\\top", "$6", 8, 5, 13, constant=13).dsp_blocks(ICE40) == 1


def test_plan_keeps_constants_in_luts_and_fills_the_budget_best_first():
    eights = [Multiplier("\\top", f"$v{k}", 8, 8, 16) for k in range(10)]
    wide = Multiplier("\\top", "$wide", 32, 32, 63)
    tap = Multiplier("\\top", "$tap", 8, 5, 13, constant=13)
    tiny = Multiplier("\\top", "$tiny", 1, 8, 9)
    on_dsp, in_luts = plan_multipliers(eights + [wide, tap, tiny], ICE40, 8)
    # the 32x32 product saves the most LUTs per block: its 4 blocks go first, then 4 of 8x8
    assert wide in on_dsp and sum(m.dsp_blocks(ICE40) for m in on_dsp) == 8
    assert len(on_dsp) == 5 and tap in in_luts and tiny in in_luts
    assert len(in_luts) == 8
    on_dsp, in_luts = plan_multipliers(eights, ECP5, 156)
    assert len(on_dsp) == 10 and not in_luts
    on_dsp, _ = plan_multipliers(eights, ECP5, 0)
    assert not on_dsp


def test_plan_counts_every_instance_of_a_module():
    shared = Multiplier("\\top.pe", "$1", 8, 8, 16, instances=3)
    on_dsp, in_luts = plan_multipliers([shared], ICE40, 2)
    assert in_luts == [shared]          # 3 blocks needed, 2 available
    on_dsp, in_luts = plan_multipliers([shared], ICE40, 3)
    assert on_dsp == [shared]


@pytest.mark.slow
def test_variable_products_use_sb_mac16(tmp_path):
    report = build(ProductsPipeline(3), "icebreaker", tmp_path, progress=False)
    assert report["multipliers"] == {"dsp": 3, "lut": 0}
    assert report["dsps"] == 3
    print(f"3 products on iCE40: {report['dsps']} SB_MAC16, {report['luts']} LCs, "
          f"Fmax {report['fmax_mhz']:.1f} MHz, {report['build_seconds']} s")


@pytest.mark.slow
def test_more_products_than_sb_mac16_fall_back_to_luts(tmp_path):
    report = build(ProductsPipeline(10), "icebreaker", tmp_path / "fallback", progress=False)
    assert report["multipliers"] == {"dsp": 8, "lut": 2}
    assert report["dsps"] == 8
    lean = build(ProductsPipeline(10), "icebreaker", tmp_path / "budget", progress=False,
                 dsp_budget=4)
    assert lean["multipliers"] == {"dsp": 4, "lut": 6} and lean["dsps"] == 4
    assert lean["luts"] > report["luts"]      # the products moved off the DSP blocks
    print(f"10 products on iCE40: 8 SB_MAC16 + 2 in LUTs -> {report['luts']} LCs, "
          f"Fmax {report['fmax_mhz']:.1f} MHz; 4 + 6 -> {lean['luts']} LCs, "
          f"Fmax {lean['fmax_mhz']:.1f} MHz")
